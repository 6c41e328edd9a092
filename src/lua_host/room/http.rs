//! The HTTP flow of a room: `/rooms/:roomId/...` requests for the HTTP API script (and
//! `/whip`, `/whep` for lua/http/whip.lua), behind the room script's `on_http` gate.

use std::rc::Rc;
use std::sync::Arc;

use mlua::{Function, Lua, LuaSerdeExt, Table, Value};
use ringsfu_plugins::HttpResponse;
use serde_json::Value as Json;
use tokio::sync::oneshot;

use super::super::error::HandlerError;
use super::super::json::{to_json, to_lua};
use super::super::runner;
use super::super::{Host, HostSettings};
use super::{close_if_unused, get_or_create_room, http_status, LuaRoom, Room};

/// A `/rooms/:roomId/...` HTTP request for the HTTP API script.
#[derive(Debug, Clone)]
pub struct HttpCall {
    /// The roomId.
    pub room_id: String,
    /// HTTP method (`GET`, `POST`, ...).
    pub method: String,
    /// Path segments after `/rooms/:roomId`, percent-decoded.
    pub segments: Vec<String>,
    /// Query parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// The JSON body, if any.
    pub body: Option<Json>,
    /// The `Authorization` header, if any (for the room script's `on_http` gate).
    pub authorization: Option<String>,
    /// Another script than the HTTP API script (`lua/http/whip.lua` for `/whip` and `/whep`);
    /// its `handle` gets a sixth argument `{text, headers, remoteAddress}`.
    pub script: Option<String>,
    /// The body as text (SDP bodies).
    pub text: Option<String>,
    /// Request headers (lower-case names).
    pub headers: Vec<(String, String)>,
}

/// Serves an HTTP API request on this worker (called on the worker thread): finds or creates
/// the room, runs the script's `handle(room, method, segments, query, body)` and answers
/// `reply`. Releases the registry reference the caller took for the request.
pub fn http_call(
    settings: Arc<HostSettings>,
    worker: usize,
    call: HttpCall,
    reply: oneshot::Sender<HttpResponse>,
) {
    let registry = settings.registry.clone();
    let fail = |reply: oneshot::Sender<HttpResponse>, status: u16, text: String| {
        registry.release(&call.room_id);
        let _ = reply.send(HttpResponse::text(status, text));
    };
    let host = match Host::get_or_init(&settings, worker) {
        Ok(h) => h,
        Err(e) => return fail(reply, 500, format!("Error: {e}")),
    };
    let existing = host.rooms.borrow().get(&call.room_id).cloned();
    let room = match existing {
        Some(r) => r,
        None if !settings.create_rooms_over_http => {
            let text = format!("Error: room with id \"{}\" not found", call.room_id);
            return fail(reply, 404, text);
        }
        None => match get_or_create_room(&host, &call.room_id) {
            Ok(r) => r,
            Err(rej) => {
                return fail(
                    reply,
                    http_status(rej.status),
                    format!("Error: {}", rej.reason),
                )
            }
        },
    };
    room.holds.set(room.holds.get() + 1);
    tokio::task::spawn_local(async move {
        let room_id = call.room_id.clone();
        let answer = run_http(&host, &room, call).await;
        let _ = reply.send(answer);
        room.holds.set(room.holds.get().saturating_sub(1));
        host.settings.registry.release(&room_id);
        close_if_unused(&host, &room, "no peer and no hold left");
    });
}

/// The room's instance of the HTTP API script (evaluated once per room, like room scripts, so
/// a reload reaches new rooms only).
fn http_module(host: &Rc<Host>, room: &Room, name: &str) -> Result<Table, String> {
    if let Some(m) = room.http_module.borrow().get(name) {
        return Ok(m.clone());
    }
    let script = host
        .settings
        .scripts
        .by_path(name)
        .ok_or_else(|| format!("HTTP API script {name:?} is not loaded"))?;
    let module = host
        .eval_module(&script.name, &script.source)
        .map_err(|e| {
            log::error!(
                "room {}: HTTP API script {name} failed to load: {e}",
                room.id
            );
            format!("HTTP API script {name} failed to load")
        })?;
    // A room that closed meanwhile does not keep it (it would root the script past its end).
    if !room.closed.get() {
        room.http_module
            .borrow_mut()
            .insert(name.to_owned(), module.clone());
    }
    Ok(module)
}

async fn run_http(host: &Rc<Host>, room: &Rc<Room>, call: HttpCall) -> HttpResponse {
    let Some(name) = call
        .script
        .clone()
        .or_else(|| host.settings.http_script.clone())
    else {
        return HttpResponse::not_found();
    };
    if let Err(refused) = http_gate(host, room, &call).await {
        return refused;
    }
    let module = match http_module(host, room, &name) {
        Ok(m) => m,
        Err(e) => return HttpResponse::text(500, format!("Error: {e}")),
    };
    let Some(f) = module.get::<Option<Function>>("handle").ok().flatten() else {
        return HttpResponse::text(
            500,
            format!("Error: HTTP API script {name} has no handle function"),
        );
    };
    let what = format!(
        "HTTP {} /rooms/{}/{} (script {name})",
        call.method,
        room.id,
        call.segments.join("/")
    );
    let lua = &host.lua;
    let args = (|| -> mlua::Result<_> {
        let segments = lua.create_sequence_from(call.segments.iter().map(String::as_str))?;
        segments.set_metatable(Some(lua.array_metatable()))?;
        let query = lua.create_table()?;
        for (k, v) in &call.query {
            // The first value of a repeated parameter wins.
            if query.raw_get::<Value>(k.as_str())?.is_nil() {
                query.raw_set(k.as_str(), v.as_str())?;
            }
        }
        let body = match &call.body {
            Some(b) => to_lua(lua, b)?,
            None => Value::Nil,
        };
        let extra = lua.create_table()?;
        if let Some(t) = &call.text {
            extra.set("text", lua.create_string(t)?)?;
        }
        let headers = lua.create_table()?;
        for (k, v) in &call.headers {
            if headers.raw_get::<Value>(k.as_str())?.is_nil() {
                headers.raw_set(k.as_str(), v.as_str())?;
            }
        }
        extra.set("headers", headers)?;
        Ok((
            LuaRoom(room.clone()),
            call.method.as_str(),
            segments,
            query,
            body,
            extra,
        ))
    })();
    let args = match args {
        Ok(a) => a,
        Err(e) => return HttpResponse::text(500, format!("Error: {e}")),
    };
    match runner::run(lua, &what, host.budget(), f, args).await {
        Ok(out) => http_answer(lua, out, &what),
        Err(HandlerError { code, reason }) => {
            let status = if (400..=599).contains(&code) {
                code
            } else {
                500
            };
            HttpResponse::text(status, reason)
        }
    }
}

/// The room script's `on_http(room, info)` gate, when it has one: `info` =
/// `{method, segments, query, authorization}`; `true`/nothing lets the request through to the
/// HTTP API script, `false, status, reason` answers it with that status (400..599, else 403)
/// and text.
async fn http_gate(host: &Rc<Host>, room: &Rc<Room>, call: &HttpCall) -> Result<(), HttpResponse> {
    let Some(f) = room.hook("on_http") else {
        return Ok(());
    };
    let lua = &host.lua;
    let info = (|| -> mlua::Result<Table> {
        let t = lua.create_table()?;
        t.set("method", call.method.as_str())?;
        t.set(
            "segments",
            lua.create_sequence_from(call.segments.iter().map(String::as_str))?,
        )?;
        let q = lua.create_table()?;
        for (k, v) in &call.query {
            if q.raw_get::<Value>(k.as_str())?.is_nil() {
                q.raw_set(k.as_str(), v.as_str())?;
            }
        }
        t.set("query", q)?;
        t.set("authorization", call.authorization.as_deref())?;
        Ok(t)
    })()
    .map_err(|e| HttpResponse::text(500, format!("Error: {e}")))?;
    let what = format!("on_http (room {})", room.id);
    let out = runner::run(lua, &what, host.budget(), f, (LuaRoom(room.clone()), info))
        .await
        .map_err(|HandlerError { code, reason }| HttpResponse::text(http_status(code), reason))?;
    let mut out = out.into_iter();
    match out.next() {
        None | Some(Value::Nil) | Some(Value::Boolean(true)) => Ok(()),
        Some(Value::Boolean(false)) => {
            let status = match out.next() {
                Some(Value::Integer(s)) => http_status(u16::try_from(s).unwrap_or(403)),
                _ => 403,
            };
            let reason = match out.next() {
                Some(Value::String(s)) => s.to_string_lossy(),
                _ => "request refused by the room".to_owned(),
            };
            Err(HttpResponse::text(status, reason))
        }
        Some(other) => Err(HttpResponse::text(
            500,
            format!(
                "on_http returned a {}, expected a boolean",
                other.type_name()
            ),
        )),
    }
}

/// `{status = N, body = B}` or `N, B` from the handler: a string body is sent as text, nil as
/// no body, anything else as JSON.
fn http_answer(lua: &Lua, out: mlua::MultiValue, what: &str) -> HttpResponse {
    let mut out = out.into_iter();
    let mut headers = Vec::new();
    let mut content_type = None;
    let (status, body) = match out.next() {
        Some(Value::Table(t)) => {
            if let Ok(Some(h)) = t.get::<Option<Table>>("headers") {
                for (k, v) in h.pairs::<String, Value>().flatten() {
                    match v {
                        Value::String(s) => headers.push((k, s.to_string_lossy())),
                        // A list of values: one header line each (several `Link`s).
                        Value::Table(list) => {
                            for s in list.sequence_values::<String>().flatten() {
                                headers.push((k.clone(), s));
                            }
                        }
                        _ => {}
                    }
                }
            }
            content_type = t.get::<Option<String>>("contentType").ok().flatten();
            (
                t.get::<Value>("status").unwrap_or(Value::Nil),
                t.get::<Value>("body").unwrap_or(Value::Nil),
            )
        }
        Some(v @ (Value::Integer(_) | Value::Number(_))) => (v, out.next().unwrap_or(Value::Nil)),
        other => {
            let got = other.map(|v| v.type_name()).unwrap_or("nothing");
            return HttpResponse::text(
                500,
                format!("Error: {what} returned {got}, expected {{status, body}}"),
            );
        }
    };
    let status = match status {
        Value::Integer(n) => u16::try_from(n).ok(),
        Value::Number(n) if n.fract() == 0.0 && (0.0..=999.0).contains(&n) => Some(n as u16),
        _ => None,
    };
    let Some(status) = status.filter(|s| (200..=599).contains(s)) else {
        return HttpResponse::text(500, format!("Error: {what} returned no valid status"));
    };
    let mut answer = match body {
        Value::Nil => HttpResponse {
            status,
            body: ringsfu_plugins::HttpBody::Empty,
            headers: Vec::new(),
        },
        Value::String(s) => match static_content_type(content_type.as_deref()) {
            Some(ct) => HttpResponse {
                status,
                body: ringsfu_plugins::HttpBody::Raw {
                    content_type: ct,
                    data: s.as_bytes().to_vec().into(),
                },
                headers: Vec::new(),
            },
            None => HttpResponse::text(status, s.to_string_lossy()),
        },
        v => match to_json(lua, v) {
            Ok(j) => HttpResponse::json(status, j),
            Err(e) => HttpResponse::text(500, format!("Error: {what}: bad body: {e}")),
        },
    };
    answer.headers = headers;
    answer
}

/// The content types a script may give a string body (`contentType` in its answer).
fn static_content_type(ct: Option<&str>) -> Option<&'static str> {
    Some(match ct? {
        "application/sdp" => "application/sdp",
        "application/trickle-ice-sdpfrag" => "application/trickle-ice-sdpfrag",
        "application/json" => "application/json",
        "text/html" => "text/html; charset=utf-8",
        _ => return None,
    })
}
