//! Lua ↔ JSON for what crosses the host's edges (protoo messages, HTTP bodies, socket.io
//! events).

use mlua::{Lua, LuaSerdeExt, Value};
use serde_json::Value as Json;

/// Lua → JSON (`nil` → `{}`).
pub(crate) fn to_json(lua: &Lua, v: Value) -> mlua::Result<Json> {
    if v.is_nil() {
        return Ok(Json::Object(Default::default()));
    }
    lua.from_value(v)
}

/// JSON → Lua (arrays keep the array metatable, so they stay arrays on the way back).
pub(crate) fn to_lua(lua: &Lua, v: &Json) -> mlua::Result<Value> {
    lua.to_value(v)
}
