//! The one rule that keeps a worker's Lua state from leaking: Rust holds a Lua value of a host
//! object (room, peer, engine or data object) only while that object is live, and the object's
//! Lua-side state lives where Lua's garbage collector can see it.
//!
//! Every value Rust holds (`Table`, `Function`, `AnyUserData`) is a GC root. A script's
//! callbacks capture peers and objects, and peers' and objects' tables hold other objects, so
//! any such table or callback kept in a Rust field forms a cycle through Rust that Lua's
//! collector can never break: that is how every closed room used to stay in memory. So:
//!
//! * each host object has exactly one userdata ([`LuaRef`]); its `data`/`appData` table and its
//!   event callbacks are that userdata's *user values* (traced by the collector, not roots);
//! * Rust keeps the userdata while the object is live, so callbacks fire even when the script
//!   dropped its last reference, and lets go of it ([`LuaRef::release`]) when the object closes;
//!   from then on the object and everything its callbacks captured is ordinary garbage.
//!
//! [`live`] counts the userdata Rust holds on this thread: it returns to its baseline when every
//! room of the worker has closed (the soak test asserts it).

use std::cell::{Cell, RefCell};

use mlua::{AnyUserData, Function, Lua, Table, Value};

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
}

/// Userdata of host objects Rust holds on this thread (each one a GC root until released).
pub fn live() -> usize {
    LIVE.with(Cell::get)
}

/// User value holding the object's script table (`room.data`, `peer.data`, `obj.appData`).
const DATA: &str = "data";
/// User value holding the object's callbacks: `{ [event] = { fn, ... } }`.
const HANDLERS: &str = "on";

/// The one userdata of a live host object.
#[derive(Default)]
pub struct LuaRef(RefCell<Option<AnyUserData>>);

impl LuaRef {
    /// Holds `ud` (the object's userdata) with `data` as its script table.
    pub fn hold(&self, ud: &AnyUserData, data: Table) -> mlua::Result<()> {
        ud.set_named_user_value(DATA, data)?;
        if self.0.borrow_mut().replace(ud.clone()).is_none() {
            LIVE.with(|l| l.set(l.get() + 1));
        }
        Ok(())
    }

    /// The userdata, while the object is live.
    pub fn get(&self) -> Option<AnyUserData> {
        self.0.borrow().clone()
    }

    /// Whether Rust still holds the userdata.
    pub fn is_held(&self) -> bool {
        self.0.borrow().is_some()
    }

    /// Lets go of the userdata (the object closed). Returns it, so the caller can still read
    /// callbacks it is about to run. Idempotent.
    pub fn release(&self) -> Option<AnyUserData> {
        let ud = self.0.borrow_mut().take();
        if ud.is_some() {
            LIVE.with(|l| l.set(l.get().saturating_sub(1)));
        }
        ud
    }

    /// The callbacks registered for `event` (empty once released).
    pub fn handlers(&self, event: &str) -> Vec<Function> {
        match self.get() {
            Some(ud) => handlers_of(&ud, event),
            None => Vec::new(),
        }
    }
}

impl Drop for LuaRef {
    fn drop(&mut self) {
        self.release();
    }
}

/// The script table of a host object's userdata; a detached userdata (one made for an object
/// that had already closed) gets an empty one on first use.
pub fn data_of(lua: &Lua, ud: &AnyUserData) -> mlua::Result<Table> {
    match ud.named_user_value::<Value>(DATA)? {
        Value::Table(t) => Ok(t),
        _ => {
            let t = lua.create_table()?;
            ud.set_named_user_value(DATA, &t)?;
            Ok(t)
        }
    }
}

/// Registers `f` for `event` on the userdata (kept as a user value: collectable with it).
pub fn add_handler(lua: &Lua, ud: &AnyUserData, event: &str, f: Function) -> mlua::Result<()> {
    let all = match ud.named_user_value::<Value>(HANDLERS)? {
        Value::Table(t) => t,
        _ => {
            let t = lua.create_table()?;
            ud.set_named_user_value(HANDLERS, &t)?;
            t
        }
    };
    let list = match all.raw_get::<Value>(event)? {
        Value::Table(t) => t,
        _ => {
            let t = lua.create_table()?;
            all.raw_set(event, &t)?;
            t
        }
    };
    list.raw_push(f)
}

/// The callbacks registered for `event` on the userdata, in registration order.
pub fn handlers_of(ud: &AnyUserData, event: &str) -> Vec<Function> {
    let Ok(Value::Table(all)) = ud.named_user_value::<Value>(HANDLERS) else {
        return Vec::new();
    };
    let Ok(Value::Table(list)) = all.raw_get::<Value>(event) else {
        return Vec::new();
    };
    list.sequence_values::<Function>().flatten().collect()
}
