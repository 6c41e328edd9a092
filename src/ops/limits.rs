//! Per-room limits: the configured `limits`, overridden for a room by its script's own
//! `limits` table (`return { limits = { peersPerRoom = 2 }, ... }`), read through `room.limits`
//! by scripts (the demo room checks `transportsPerPeer`, `producersPerPeer`,
//! `consumersPerPeer`) and by the host (`peersPerRoom`).

use mlua::{Lua, LuaSerdeExt, Table};

use super::config::LimitsConfig;

/// `config` with the keys present in `module.limits` replaced (non-negative integers; others
/// are ignored and logged).
pub fn effective(config: &LimitsConfig, module: Option<&Table>) -> LimitsConfig {
    let mut out = *config;
    let Some(Ok(Some(over))) = module.map(|m| m.get::<Option<Table>>("limits")) else {
        return out;
    };
    let slots: [(&str, &mut u32); 4] = [
        ("peersPerRoom", &mut out.peers_per_room),
        ("transportsPerPeer", &mut out.transports_per_peer),
        ("producersPerPeer", &mut out.producers_per_peer),
        ("consumersPerPeer", &mut out.consumers_per_peer),
    ];
    for (name, slot) in slots {
        match over.get::<Option<u32>>(name) {
            Ok(Some(v)) => *slot = v,
            Ok(None) => {}
            Err(e) => log::warn!("room script limits.{name} ignored: {e}"),
        }
    }
    out
}

/// `room.limits` as Lua sees it: `{rooms, peersPerRoom, transportsPerPeer, ...}` (0: none).
pub fn lua_table(
    lua: &Lua,
    config: &LimitsConfig,
    module: Option<&Table>,
) -> mlua::Result<mlua::Value> {
    lua.to_value(&effective(config, module))
}

/// Installs `ringsfu.limit_hit(name, detail)`: counts a hit of the limit `name` in `/metrics`
/// (`ringsfu_limit_hits_total{limit=name}`) and logs it at most once per 10 s per limit.
pub fn install(lua: &Lua, r: &Table) -> mlua::Result<()> {
    r.set(
        "limit_hit",
        lua.create_function(|_, (name, detail): (String, Option<String>)| {
            ringsfu_plugins::limits::note(&name, detail.as_deref().unwrap_or(""));
            Ok(())
        })?,
    )
}
