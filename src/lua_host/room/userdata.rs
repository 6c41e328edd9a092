//! `room` and `peer` as Lua sees them (their fields and methods, docs/lua-api.md), and the
//! timers and holds a room hands out.

use std::cell::Cell;
use std::rc::{Rc, Weak};

use mlua::{AnyUserData, Function, Lua, Table, UserData, UserDataFields, UserDataMethods, Value};
use ringsfu_plugins::ProtooError;
use tokio::task::AbortHandle;

use super::super::engine_api;
use super::super::error::{bad_state, failure, internal};
use super::super::json::{to_json, to_lua};
use super::super::lua_ref::{self, LuaRef};
use super::super::runner;
use super::super::Host;
use super::{close_if_unused, close_room, LuaPeer, LuaRoom, Room};

/// A timer created by `room:timer`.
pub struct LuaTimer(AbortHandle);

/// A hold created by `room:hold()`: keeps the room open (and on its worker) without peers.
pub struct LuaHold {
    room: Weak<Room>,
    live: Rc<Cell<bool>>,
}

impl UserData for LuaHold {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("release", |_, this, ()| {
            if !this.live.replace(false) {
                return Ok(());
            }
            let (Some(room), Some(host)) = (this.room.upgrade(), Host::current()) else {
                return Ok(());
            };
            room.script_holds
                .borrow_mut()
                .retain(|h| !Rc::ptr_eq(h, &this.live));
            room.holds.set(room.holds.get().saturating_sub(1));
            host.settings.registry.release(&room.id);
            close_if_unused(&host, &room, "no peer and no hold left");
            Ok(())
        });
    }
}

/// The script table of a room or peer: the user value of its one userdata while Rust holds it
/// (any other userdata of the same room forwards there), else of `ud` itself.
fn script_data(lua: &Lua, own: &LuaRef, ud: &AnyUserData) -> mlua::Result<Table> {
    match own.get() {
        Some(canonical) => lua_ref::data_of(lua, &canonical),
        None => lua_ref::data_of(lua, ud),
    }
}

impl UserData for LuaRoom {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("id", |_, this| Ok(this.0.id.clone()));
        fields.add_field_function_get("data", |lua, ud| {
            let room = ud.borrow::<LuaRoom>()?.0.clone();
            script_data(lua, &room.lua, &ud)
        });
        fields.add_field_method_get("closed", |_, this| Ok(this.0.closed.get()));
        fields.add_field_method_get("limits", |lua, this| {
            let config = Host::current()
                .map(|h| h.settings.limits_config)
                .unwrap_or_default();
            crate::ops::limits::lua_table(lua, &config, this.0.module.borrow().as_ref())
        });
        fields.add_field_method_get("router", |lua, this| match this.0.router {
            Some(id) => engine_api::router_value(lua, id, &this.0.id),
            None => Ok(Value::Nil),
        });
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(mlua::MetaMethod::Eq, |_, this, other: mlua::AnyUserData| {
            Ok(other
                .borrow::<LuaRoom>()
                .is_ok_and(|o| Rc::ptr_eq(&o.0, &this.0)))
        });
        methods.add_method("peers", |lua, this, ()| {
            let t = lua.create_table()?;
            for (i, p) in this.0.peers.borrow().iter().enumerate() {
                t.raw_set(i + 1, LuaPeer(p.clone()))?;
            }
            Ok(t)
        });
        methods.add_method("peer", |_, this, id: String| {
            Ok(this.0.find_peer(&id).map(LuaPeer))
        });
        methods.add_method(
            "broadcast",
            |lua, this, (method, data, except): (String, Value, Option<mlua::AnyUserData>)| {
                let json = to_json(lua, data)?;
                let except = match except {
                    Some(u) => Some(u.borrow::<LuaPeer>()?.0.clone()),
                    None => None,
                };
                for p in this.0.peers.borrow().iter() {
                    if except.as_ref().is_some_and(|e| Rc::ptr_eq(e, p)) {
                        continue;
                    }
                    p.handle.notify(&method, json.clone());
                }
                Ok(())
            },
        );
        methods.add_method("close", |_, this, ()| {
            if let Some(host) = Host::current() {
                close_room(&host, &this.0, "closed by script");
            }
            Ok(())
        });
        methods.add_method("hold", |_, this, ()| {
            let room = &this.0;
            let host = Host::current().ok_or_else(|| internal("no Lua host on this thread"))?;
            if room.closed.get() {
                return Err(bad_state("room is closed"));
            }
            // The room is live, so its registry entry exists and names this worker.
            let registry = &host.settings.registry;
            if registry.acquire(&room.id) != host.worker {
                registry.release(&room.id);
                return Err(internal("room is not registered on this worker"));
            }
            let live = Rc::new(Cell::new(true));
            room.holds.set(room.holds.get() + 1);
            room.script_holds.borrow_mut().push(live.clone());
            Ok(LuaHold {
                room: Rc::downgrade(room),
                live,
            })
        });
        methods.add_method("timer", |_, this, (seconds, f): (f64, Function)| {
            let delay = runner::delay(seconds)?;
            let room = this.0.clone();
            if room.closed.get() {
                return Err(bad_state("room is closed"));
            }
            let task = tokio::task::spawn_local(async move {
                tokio::time::sleep(delay).await;
                let Some(host) = Host::current() else { return };
                if room.closed.get() {
                    return;
                }
                let what = format!("timer (room {})", room.id);
                let _ =
                    runner::run(&host.lua, &what, host.budget(), f, LuaRoom(room.clone())).await;
            });
            let handle = task.abort_handle();
            let mut timers = this.0.timers.borrow_mut();
            timers.retain(|t| !t.is_finished());
            timers.push(handle.clone());
            Ok(LuaTimer(handle))
        });
    }
}

impl UserData for LuaTimer {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("cancel", |_, this, ()| {
            this.0.abort();
            Ok(())
        });
    }
}

impl UserData for LuaPeer {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("id", |_, this| Ok(this.0.id.clone()));
        fields.add_field_function_get("data", |lua, ud| {
            let peer = ud.borrow::<LuaPeer>()?.0.clone();
            script_data(lua, &peer.lua, &ud)
        });
        fields.add_field_method_get("closed", |_, this| Ok(this.0.closed.get()));
        fields.add_field_method_get("room", |_, this| Ok(this.0.room.upgrade().map(LuaRoom)));
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(mlua::MetaMethod::Eq, |_, this, other: mlua::AnyUserData| {
            Ok(other
                .borrow::<LuaPeer>()
                .is_ok_and(|o| Rc::ptr_eq(&o.0, &this.0)))
        });
        methods.add_method("notify", |lua, this, (method, data): (String, Value)| {
            this.0.handle.notify(&method, to_json(lua, data)?);
            Ok(())
        });
        methods.add_async_method("request", |lua, this, (method, data): (String, Value)| {
            let handle = this.0.handle.clone();
            let json = to_json(&lua, data);
            async move {
                let answer = handle.request(&method, json?).await;
                match answer {
                    Ok(v) => to_lua(&lua, &v),
                    Err(ProtooError::Response { code, reason }) => Err(failure(code, reason)),
                    Err(e) => Err(failure(
                        if e == ProtooError::Timeout { 408 } else { 500 },
                        e.to_string(),
                    )),
                }
            }
        });
        methods.add_method("close", |_, this, ()| {
            // The connection reports Closed; the usual peer-close handling follows from that.
            this.0.handle.close();
            Ok(())
        });
    }
}
