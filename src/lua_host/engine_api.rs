//! Engine bindings (stub until the engine lands on this branch).

use std::cell::RefCell;
use std::collections::HashMap;

use mlua::{Lua, Value};
use serde_json::Value as Json;
use uuid::Uuid;

use super::Host;

/// Engine-event callbacks registered by scripts, per object id.
#[derive(Default)]
pub struct Callbacks {
    map: RefCell<HashMap<Uuid, (String, Vec<(String, mlua::Function)>)>>,
}

impl Callbacks {
    /// Forgets every callback of a room's objects.
    pub fn drop_room(&self, room: &str) {
        self.map.borrow_mut().retain(|_, (r, _)| r != room);
    }
}

/// Creates a router on this thread's engine; None when there is no engine.
pub fn create_router(_codecs: &[Json], _room: &str) -> Option<Result<Uuid, String>> {
    None
}

/// Closes a router.
pub fn close_router(_host: &Host, _router: Uuid) {}

/// A router's capabilities.
pub fn rtp_capabilities(_router: Uuid) -> Option<Json> {
    None
}

/// The Lua value of a router.
pub fn router_value(_lua: &Lua, _id: Uuid, _room: &str) -> mlua::Result<Value> {
    Ok(Value::Nil)
}
