//! The `ringsfu` global table: logging, errors, sleeping, JSON helpers, configuration.

use std::rc::Rc;

use mlua::{LuaSerdeExt, MultiValue, Table, Value};

use super::error::{internal, invalid};
use super::Host;

/// Installs `ringsfu` and trims the standard library to what room scripts may use.
pub(crate) fn install(host: &Rc<Host>) -> mlua::Result<()> {
    let lua = &host.lua;
    let g = lua.globals();
    // Scripts only do signaling decisions: no file, process or module loading while serving.
    for name in [
        "io", "os", "package", "require", "dofile", "loadfile", "load", "debug",
    ] {
        g.raw_remove(name)?;
    }
    // os.time/os.clock are harmless and handy.
    let os = lua.create_table()?;
    os.set(
        "time",
        lua.create_function(|_, ()| {
            Ok(std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0))
        })?,
    )?;
    g.set("os", os)?;

    let r = lua.create_table()?;
    r.set("version", env!("CARGO_PKG_VERSION"))?;
    r.set("worker", host.worker)?;
    r.set("null", lua.null())?;
    r.set("config", lua.to_value(&host.settings.script_config)?)?;

    r.set(
        "log",
        lua.create_function(|lua, (level, rest): (String, MultiValue)| {
            let level = match level.as_str() {
                "error" => log::Level::Error,
                "warn" => log::Level::Warn,
                "info" => log::Level::Info,
                "debug" => log::Level::Debug,
                "trace" => log::Level::Trace,
                other => {
                    return Err(invalid(format!(
                        "ringsfu.log: unknown level {other:?} (error, warn, info, debug, trace)"
                    )))
                }
            };
            if log::log_enabled!(target: "ringsfu::lua", level) {
                let tostring: mlua::Function = lua.globals().get("tostring")?;
                let mut parts = Vec::with_capacity(rest.len());
                for v in rest {
                    parts.push(tostring.call::<String>(v)?);
                }
                log::log!(target: "ringsfu::lua", level, "{}", parts.join(" "));
            }
            Ok(())
        })?,
    )?;

    super::error::install(lua, &r)?;

    r.set(
        "sleep",
        lua.create_async_function(|_, seconds: f64| async move {
            tokio::time::sleep(super::runner::delay(seconds)?).await;
            Ok(())
        })?,
    )?;

    let started = host.started;
    r.set(
        "now",
        lua.create_function(move |_, ()| Ok(started.elapsed().as_secs_f64() * 1000.0))?,
    )?;

    r.set(
        "array",
        lua.create_function(|lua, t: Option<Table>| {
            let t = match t {
                Some(t) => t,
                None => lua.create_table()?,
            };
            t.set_metatable(Some(lua.array_metatable()))?;
            Ok(t)
        })?,
    )?;

    // ringsfu.turn_credentials(user?, ttl?): TURN REST API credentials for ringsfu's TURN
    // server, as an RTCIceServer table {urls, username, credential}; nil without TURN.
    let mint = host.settings.turn.clone();
    r.set(
        "turn_credentials",
        lua.create_function(move |lua, (user, ttl): (Option<String>, Option<u64>)| {
            let Some(m) = &mint else {
                return Ok(Value::Nil);
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let expiry = now + ttl.unwrap_or(m.ttl).clamp(1, 30 * 86_400);
            let username = match user {
                Some(u) if !u.is_empty() => format!("{expiry}:{u}"),
                _ => expiry.to_string(),
            };
            let credential = ringsfu_core::turn::rest_password(&m.secret, &username);
            let t = lua.create_table()?;
            let urls = lua.create_sequence_from(m.urls.iter().cloned())?;
            urls.set_metatable(Some(lua.array_metatable()))?;
            t.set("urls", urls)?;
            t.set("username", username)?;
            t.set("credential", credential)?;
            Ok(Value::Table(t))
        })?,
    )?;

    super::sdp_api::install(lua, &r)?;
    r.set(
        "json_encode",
        lua.create_function(|lua, v: Value| {
            let json: serde_json::Value = lua.from_value(v)?;
            Ok(json.to_string())
        })?,
    )?;
    r.set(
        "json_decode",
        lua.create_function(|lua, s: String| {
            let json: serde_json::Value =
                serde_json::from_str(&s).map_err(|e| invalid(format!("json_decode: {e}")))?;
            lua.to_value(&json)
        })?,
    )?;

    // `ringsfu.include(path)`: another loaded script's hook table (a fresh copy), so a policy
    // script can extend the demo room. Only scripts loaded at start/reload: no disk access here.
    let scripts = host.settings.scripts.clone();
    r.set(
        "include",
        lua.create_function(move |_, path: String| {
            let host = Host::current().ok_or_else(|| internal("no Lua host on this thread"))?;
            let script = scripts
                .by_path(&path)
                .ok_or_else(|| internal(format!("ringsfu.include: no loaded script {path:?}")))?;
            host.eval_module(&script.name, &script.source)
        })?,
    )?;

    // `ringsfu.spawn(fn, ...)`: runs fn(...) in a new coroutine (its own budget) once the
    // current one yields or ends; failures are logged.
    r.set(
        "spawn",
        lua.create_function(|_, (f, args): (mlua::Function, MultiValue)| {
            let host = Host::current().ok_or_else(|| internal("no Lua host on this thread"))?;
            let what = match f.info().short_src {
                Some(src) => format!(
                    "spawned function ({src}:{})",
                    f.info().line_defined.unwrap_or(0)
                ),
                None => "spawned function".to_owned(),
            };
            super::runner::spawn(&host, what, f, args);
            Ok(())
        })?,
    )?;

    crate::ops::jwt::install(lua, &r)?;
    crate::ops::limits::install(lua, &r)?;
    g.set("ringsfu", r)?;
    Ok(())
}
