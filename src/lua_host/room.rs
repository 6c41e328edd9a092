//! Rooms and peers on a worker: their Lua objects, the connection hook, request and
//! notification dispatch, peer replacement, and closing.
//!
//! A room script is a chunk returning a table of hooks (see docs/lua-api.md):
//! `on_room_open(room)`, `on_connect(room, info)`, `on_peer_open(room, peer)`,
//! `requests[method](room, peer, data)` / `on_request(room, peer, method, data)`,
//! `notifications[method](room, peer, data)` / `on_notification(room, peer, method, data)`,
//! `on_peer_close(room, peer, reason)`, `on_room_close(room)`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use mlua::{
    AnyUserData, Function, HookTriggers, IntoLuaMulti, Lua, LuaSerdeExt, Table, UserData,
    UserDataFields, UserDataMethods, Value, VmState,
};
use ringsfu_plugins::{ConnectRequest, HttpResponse, PeerHandle, PeerInbound, ProtooError, Reject};
use serde_json::Value as Json;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use uuid::Uuid;

use super::engine_api;
use super::error::{bad_state, failure, internal, HandlerError};
use super::lua_ref::{self, LuaRef};
use super::runner;
use super::{Host, HostSettings};

/// A room on this worker.
pub struct Room {
    /// The room id.
    pub id: String,
    /// Name of the script serving it (for logs).
    script: String,
    /// The script's hook table; dropped when the room has closed (it may capture the room).
    module: RefCell<Option<Table>>,
    /// The room's userdata, whose user value is `room.data`, while the room is open.
    lua: LuaRef,
    /// Peers in connection order.
    peers: RefCell<Vec<Rc<Peer>>>,
    closed: Cell<bool>,
    /// The room's router (None when the worker has no media engine).
    router: Option<Uuid>,
    timers: RefCell<Vec<AbortHandle>>,
    /// What keeps the room open without a peer: HTTP requests in flight, protoo connections
    /// being decided (`on_connect`) and script holds (`room:hold()`, e.g. one per broadcaster).
    holds: Cell<usize>,
    /// Script holds in force; each owns a registry reference, given back when it is released
    /// or the room closes.
    script_holds: RefCell<Vec<Rc<Cell<bool>>>>,
    /// The HTTP scripts' hook tables by script name, loaded for this room on its first request
    /// to each; dropped when the room has closed.
    http_module: RefCell<HashMap<String, Table>>,
}

/// A connected protoo peer.
pub struct Peer {
    /// The peerId.
    pub id: String,
    handle: PeerHandle,
    /// The peer's userdata, whose user value is `peer.data`, until the peer's close is handled.
    lua: LuaRef,
    closed: Cell<bool>,
    room: Weak<Room>,
}

impl Room {
    /// The router id, if the worker has a media engine.
    pub fn router(&self) -> Option<Uuid> {
        self.router
    }

    fn hook(&self, name: &str) -> Option<Function> {
        let module = self.module.borrow().clone()?;
        module.get::<Option<Function>>(name).ok().flatten()
    }

    /// `module[table][key]` when it is a function.
    fn handler(&self, table: &str, key: &str) -> Option<Function> {
        let module = self.module.borrow().clone()?;
        let t = module.get::<Option<Table>>(table).ok().flatten()?;
        t.get::<Option<Function>>(key).ok().flatten()
    }

    /// Number of connected peers.
    pub fn peer_count(&self) -> usize {
        self.peers.borrow().len()
    }

    fn find_peer(&self, id: &str) -> Option<Rc<Peer>> {
        self.peers.borrow().iter().find(|p| p.id == id).cloned()
    }

    fn remove_peer(&self, peer: &Rc<Peer>) {
        self.peers.borrow_mut().retain(|p| !Rc::ptr_eq(p, peer));
    }
}

/// `room` as Lua sees it.
#[derive(Clone)]
pub struct LuaRoom(pub Rc<Room>);

/// `peer` as Lua sees it.
#[derive(Clone)]
pub struct LuaPeer(pub Rc<Peer>);

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
            crate::ops::limits::lua_table(lua, this.0.module.borrow().as_ref())
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
            let delay = super::globals::delay(seconds)?;
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
                    runner::run(&host.lua, &what, budget(&host), f, LuaRoom(room.clone())).await;
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

fn budget(host: &Host) -> u64 {
    host.settings.limits.instruction_limit
}

/// Loads the room's script and creates its router. Synchronous, so two connections for a new
/// room on this worker cannot create it twice.
fn get_or_create_room(host: &Rc<Host>, room_id: &str) -> Result<Rc<Room>, Reject> {
    if let Some(r) = host.rooms.borrow().get(room_id) {
        return Ok(r.clone());
    }
    let script = host
        .settings
        .scripts
        .script_for(room_id)
        .ok_or_else(|| Reject::new(404, format!("no room script serves room {room_id:?}")))?;
    let module = eval_module(host, &script.name, &script.source).map_err(|e| {
        log::error!("room {room_id}: script {} failed to load: {e}", script.name);
        Reject::new(500, format!("room script {} failed to load", script.name))
    })?;
    let router = match engine_api::create_router(&host.settings.media_codecs, room_id) {
        Some(Ok(id)) => Some(id),
        Some(Err(e)) => {
            log::error!("room {room_id}: cannot create router: {e}");
            return Err(Reject::new(500, format!("cannot create router: {e}")));
        }
        None => None,
    };
    let room = Rc::new(Room {
        id: room_id.to_owned(),
        script: script.name.clone(),
        module: RefCell::new(Some(module)),
        lua: LuaRef::default(),
        peers: RefCell::new(Vec::new()),
        closed: Cell::new(false),
        router,
        timers: RefCell::new(Vec::new()),
        holds: Cell::new(0),
        script_holds: RefCell::new(Vec::new()),
        http_module: RefCell::new(HashMap::new()),
    });
    let held = host
        .lua
        .create_userdata(LuaRoom(room.clone()))
        .and_then(|ud| room.lua.hold(&ud, host.lua.create_table()?));
    if let Err(e) = held {
        if let Some(router) = router {
            engine_api::close_router(host, router);
        }
        return Err(Reject::new(500, e.to_string()));
    }
    host.rooms
        .borrow_mut()
        .insert(room_id.to_owned(), room.clone());
    log::info!(
        "worker {}: room {room_id} created (script {})",
        host.worker,
        script.name
    );
    if let Some(f) = room.hook("on_room_open") {
        spawn_hook(host, &room, "on_room_open", f, LuaRoom(room.clone()));
    }
    Ok(room)
}

/// Runs a script chunk (with the instruction budget; it may not wait) and returns its table.
/// The chunk is compiled once per worker and script version (see [`Host::chunk`]); each call
/// runs it afresh, so every room gets its own hook table and module-level locals.
pub(crate) fn eval_module(host: &Host, name: &str, source: &Arc<str>) -> mlua::Result<Table> {
    let f = host.chunk(name, source)?;
    let thread = host.lua.create_thread(f)?;
    let limit = budget(host);
    let used = Rc::new(Cell::new(0u64));
    thread.set_hook(
        HookTriggers::new().every_nth_instruction(1000),
        move |_, _| {
            used.set(used.get() + 1000);
            if used.get() > limit {
                return Err(mlua::Error::RuntimeError(format!(
                    "instruction limit ({limit}) exceeded while loading"
                )));
            }
            Ok(VmState::Continue)
        },
    )?;
    let v: Value = thread.resume(())?;
    if thread.status() == mlua::thread::ThreadStatus::Resumable {
        return Err(mlua::Error::RuntimeError(
            "a room script may not wait while it loads".into(),
        ));
    }
    match v {
        Value::Table(t) => Ok(t),
        other => Err(mlua::Error::RuntimeError(format!(
            "a room script must return a table of hooks, it returned a {}",
            other.type_name()
        ))),
    }
}

/// Runs a hook in the background, logging failures.
fn spawn_hook(host: &Rc<Host>, room: &Rc<Room>, name: &str, f: Function, args: impl IntoLuaMulti) {
    let what = format!("{name} (room {}, script {})", room.id, room.script);
    let host = host.clone();
    match args.into_lua_multi(&host.lua) {
        Ok(args) => {
            tokio::task::spawn_local(async move {
                let _ = runner::run(&host.lua, &what, budget(&host), f, args).await;
            });
        }
        Err(e) => log::warn!("lua {what}: bad arguments: {e}"),
    }
}

/// Handles a new connection on this worker (called on the worker thread). Answers `reply` with
/// the verdict; on acceptance, serves the peer's inbound messages until it closes. The registry
/// reference taken for this connection is released when it ends (or is refused).
pub fn connect(
    settings: Arc<HostSettings>,
    worker: usize,
    req: ConnectRequest,
    inbound: mpsc::UnboundedReceiver<PeerInbound>,
    reply: oneshot::Sender<Result<(), Reject>>,
) {
    let registry = settings.registry.clone();
    let refuse = |reply: oneshot::Sender<Result<(), Reject>>, rej: Reject| {
        registry.release(&req.room_id);
        let _ = reply.send(Err(rej));
    };
    let host = match Host::get_or_init(&settings, worker) {
        Ok(h) => h,
        Err(e) => return refuse(reply, Reject::new(500, e.to_string())),
    };
    let room = match get_or_create_room(&host, &req.room_id) {
        Ok(r) => r,
        Err(rej) => return refuse(reply, rej),
    };
    // A connection being decided keeps the room open: without it, the room's last peer leaving
    // while `on_connect` runs would close the room under the newcomer. serve_peer gives it back
    // once the peer is in the room or refused.
    room.holds.set(room.holds.get() + 1);
    tokio::task::spawn_local(serve_peer(host, room, req, inbound, reply));
}

async fn serve_peer(
    host: Rc<Host>,
    room: Rc<Room>,
    req: ConnectRequest,
    mut inbound: mpsc::UnboundedReceiver<PeerInbound>,
    reply: oneshot::Sender<Result<(), Reject>>,
) {
    let registry = host.settings.registry.clone();
    let room_id = req.room_id.clone();
    // Gives back the hold `connect` took (once).
    let unhold = || room.holds.set(room.holds.get().saturating_sub(1));
    let verdict = connection_verdict(&host, &room, &req).await;
    if let Err(rej) = verdict {
        unhold();
        let _ = reply.send(Err(rej));
        registry.release(&room_id);
        close_if_unused(&host, &room, "no peer");
        return;
    }

    // limits.peersPerRoom (a reconnecting peerId replaces itself and is not counted twice).
    let max_peers =
        crate::ops::limits::effective(&host.settings.limits_config, room.module.borrow().as_ref())
            .peers_per_room;
    if max_peers != 0
        && room.find_peer(&req.peer_id).is_none()
        && room.peer_count() >= max_peers as usize
    {
        ringsfu_plugins::limits::note(
            "peersPerRoom",
            &format!("room {} refused peer {}", room.id, req.peer_id),
        );
        let _ = reply.send(Err(Reject::new(
            403,
            format!("limit peersPerRoom ({max_peers}) reached in this room"),
        )));
        registry.release(&room_id);
        close_if_unused(&host, &room, "no peer");
        return;
    }

    // Same peerId again: the old peer is closed and handled as gone, the room stays.
    if let Some(old) = room.find_peer(&req.peer_id) {
        log::info!(
            "room {}: peer {} reconnected, replacing the old one",
            room.id,
            old.id
        );
        old.closed.set(true);
        room.remove_peer(&old);
        old.handle.close();
        if let Some(f) = room.hook("on_peer_close") {
            let what = format!("on_peer_close (room {})", room.id);
            let _ = runner::run(
                &host.lua,
                &what,
                budget(&host),
                f,
                (LuaRoom(room.clone()), LuaPeer(old.clone()), "replaced"),
            )
            .await;
        }
        old.lua.release();
    }
    // Only a script's room:close() can have closed it meanwhile.
    if room.closed.get() {
        unhold();
        let _ = reply.send(Err(Reject::new(503, "room closed meanwhile, retry")));
        registry.release(&room_id);
        return;
    }

    let peer = Rc::new(Peer {
        id: req.peer_id.clone(),
        handle: req.peer.clone(),
        lua: LuaRef::default(),
        closed: Cell::new(false),
        room: Rc::downgrade(&room),
    });
    let held = host
        .lua
        .create_userdata(LuaPeer(peer.clone()))
        .and_then(|ud| peer.lua.hold(&ud, host.lua.create_table()?));
    if let Err(e) = held {
        unhold();
        let _ = reply.send(Err(Reject::new(500, e.to_string())));
        registry.release(&room_id);
        close_if_unused(&host, &room, "no peer");
        return;
    }
    room.peers.borrow_mut().push(peer.clone());
    unhold();
    let mut reason = "connection gone".to_owned();
    if reply.send(Ok(())).is_ok() {
        if let Some(f) = room.hook("on_peer_open") {
            spawn_hook(
                &host,
                &room,
                "on_peer_open",
                f,
                (LuaRoom(room.clone()), LuaPeer(peer.clone())),
            );
        }
        while let Some(msg) = inbound.recv().await {
            match msg {
                PeerInbound::Request { id, method, data } => {
                    if peer.closed.get() || room.closed.get() {
                        peer.handle.respond_error(id, 500, "peer closed");
                        continue;
                    }
                    tokio::task::spawn_local(handle_request(
                        host.clone(),
                        room.clone(),
                        peer.clone(),
                        id,
                        method,
                        data,
                    ));
                }
                PeerInbound::Notification { method, data } => {
                    if !peer.closed.get() && !room.closed.get() {
                        tokio::task::spawn_local(handle_notification(
                            host.clone(),
                            room.clone(),
                            peer.clone(),
                            method,
                            data,
                        ));
                    }
                }
                PeerInbound::Closed { reason: r } => {
                    reason = r;
                    break;
                }
            }
        }
    }
    peer_left(&host, &room, &peer, &reason).await;
    registry.release(&room_id);
}

/// Runs `on_connect`: `true`/nothing accepts; `false, status, reason` or an error refuses.
async fn connection_verdict(
    host: &Rc<Host>,
    room: &Rc<Room>,
    req: &ConnectRequest,
) -> Result<(), Reject> {
    let Some(f) = room.hook("on_connect") else {
        return Ok(());
    };
    let info = (|| -> mlua::Result<Table> {
        let t = host.lua.create_table()?;
        t.set("roomId", req.room_id.as_str())?;
        t.set("peerId", req.peer_id.as_str())?;
        t.set("remoteAddress", req.remote_addr.ip().to_string())?;
        t.set("remotePort", req.remote_addr.port())?;
        let q = host.lua.create_table()?;
        for (k, v) in &req.query {
            q.set(k.as_str(), v.as_str())?;
        }
        t.set("query", q)?;
        Ok(t)
    })()
    .map_err(|e| Reject::new(500, e.to_string()))?;
    let what = format!("on_connect (room {}, peer {})", room.id, req.peer_id);
    let out = runner::run(
        &host.lua,
        &what,
        budget(host),
        f,
        (LuaRoom(room.clone()), info),
    )
    .await
    .map_err(|HandlerError { code, reason }| Reject::new(http_status(code), reason))?;
    let mut out = out.into_iter();
    match out.next() {
        None | Some(Value::Nil) | Some(Value::Boolean(true)) => Ok(()),
        Some(Value::Boolean(false)) => {
            let status = match out.next() {
                Some(Value::Integer(s)) => u16::try_from(s).unwrap_or(403),
                _ => 403,
            };
            let reason = match out.next() {
                Some(Value::String(s)) => s.to_string_lossy(),
                _ => "connection refused by the room".to_owned(),
            };
            Err(Reject::new(http_status(status), reason))
        }
        Some(other) => Err(Reject::new(
            500,
            format!(
                "on_connect returned a {}, expected a boolean",
                other.type_name()
            ),
        )),
    }
}

/// A script's status for an HTTP rejection: 400..=599, else 403.
fn http_status(code: u16) -> u16 {
    if (400..=599).contains(&code) {
        code
    } else {
        403
    }
}

async fn handle_request(
    host: Rc<Host>,
    room: Rc<Room>,
    peer: Rc<Peer>,
    id: u64,
    method: String,
    data: Json,
) {
    let what = format!("request {method} (room {}, peer {})", room.id, peer.id);
    let result: Result<Json, HandlerError> = async {
        let data = to_lua(&host.lua, &data).map_err(|e| super::error::classify(&e))?;
        let out = if let Some(f) = room.handler("requests", &method) {
            runner::run(
                &host.lua,
                &what,
                budget(&host),
                f,
                (LuaRoom(room.clone()), LuaPeer(peer.clone()), data),
            )
            .await?
        } else if let Some(f) = room.hook("on_request") {
            runner::run(
                &host.lua,
                &what,
                budget(&host),
                f,
                (
                    LuaRoom(room.clone()),
                    LuaPeer(peer.clone()),
                    method.as_str(),
                    data,
                ),
            )
            .await?
        } else {
            return Err(HandlerError {
                code: 500,
                reason: format!("unknown request.method \"{method}\""),
            });
        };
        let first = out.into_iter().next().unwrap_or(Value::Nil);
        to_json(&host.lua, first).map_err(|e| HandlerError {
            code: 500,
            reason: format!("bad response from {what}: {e}"),
        })
    }
    .await;
    match result {
        Ok(v) => peer.handle.respond_ok(id, v),
        Err(e) => peer.handle.respond_error(id, e.code, &e.reason),
    }
}

async fn handle_notification(
    host: Rc<Host>,
    room: Rc<Room>,
    peer: Rc<Peer>,
    method: String,
    data: Json,
) {
    let what = format!("notification {method} (room {}, peer {})", room.id, peer.id);
    let Ok(data) = to_lua(&host.lua, &data) else {
        return;
    };
    if let Some(f) = room.handler("notifications", &method) {
        let _ = runner::run(
            &host.lua,
            &what,
            budget(&host),
            f,
            (LuaRoom(room.clone()), LuaPeer(peer.clone()), data),
        )
        .await;
    } else if let Some(f) = room.hook("on_notification") {
        let _ = runner::run(
            &host.lua,
            &what,
            budget(&host),
            f,
            (
                LuaRoom(room.clone()),
                LuaPeer(peer.clone()),
                method.as_str(),
                data,
            ),
        )
        .await;
    } else {
        log::debug!("{what}: no handler, ignored");
    }
}

/// The peer's connection ended: run `on_peer_close` and close the room if it was the last.
async fn peer_left(host: &Rc<Host>, room: &Rc<Room>, peer: &Rc<Peer>, reason: &str) {
    if peer.closed.replace(true) {
        return; // replaced, or the room closed it
    }
    room.remove_peer(peer);
    peer.handle.close();
    if let Some(f) = room.hook("on_peer_close") {
        let what = format!("on_peer_close (room {}, peer {})", room.id, peer.id);
        let _ = runner::run(
            &host.lua,
            &what,
            budget(host),
            f,
            (LuaRoom(room.clone()), LuaPeer(peer.clone()), reason),
        )
        .await;
    }
    peer.lua.release();
    close_if_unused(host, room, "last peer left");
}

/// Closes the room when no peer, no HTTP request and no script hold keeps it.
fn close_if_unused(host: &Rc<Host>, room: &Rc<Room>, why: &str) {
    if room.peers.borrow().is_empty() && room.holds.get() == 0 {
        close_room(host, room, why);
    }
}

/// Closes a room: its peers (close code 4000), its timers, then `on_room_close` and its router.
pub(crate) fn close_room(host: &Rc<Host>, room: &Rc<Room>, why: &str) {
    if room.closed.replace(true) {
        return;
    }
    {
        let mut rooms = host.rooms.borrow_mut();
        if rooms.get(&room.id).is_some_and(|r| Rc::ptr_eq(r, room)) {
            rooms.remove(&room.id);
        }
    }
    log::info!("worker {}: room {} closed ({why})", host.worker, room.id);
    let peers = std::mem::take(&mut *room.peers.borrow_mut());
    for p in &peers {
        p.closed.set(true);
        p.handle.close();
    }
    for t in room.timers.borrow_mut().drain(..) {
        t.abort();
    }
    for h in room.script_holds.borrow_mut().drain(..) {
        if h.replace(false) {
            host.settings.registry.release(&room.id);
        }
    }
    let host2 = host.clone();
    let room2 = room.clone();
    tokio::task::spawn_local(async move {
        if let Some(f) = room2.hook("on_room_close") {
            let what = format!("on_room_close (room {})", room2.id);
            let _ = runner::run(&host2.lua, &what, budget(&host2), f, LuaRoom(room2.clone())).await;
        }
        if let Some(router) = room2.router {
            engine_api::close_router(&host2, router);
        }
        host2.callbacks.drop_room(&room2.id);
        // Nothing of the room stays rooted in Rust: its peers' and its own userdata, its
        // script instances (whose closures may hold them) go to Lua's collector.
        for p in &peers {
            p.lua.release();
        }
        room2.lua.release();
        room2.module.borrow_mut().take();
        room2.http_module.borrow_mut().clear();
    });
}

/// The router RTP capabilities of a room on this worker (None: no such room or no engine).
pub fn room_rtp_capabilities(room_id: &str) -> Option<Json> {
    let host = Host::current()?;
    let router = host.rooms.borrow().get(room_id)?.router?;
    engine_api::rtp_capabilities(router)
}

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
    let module = eval_module(host, &script.name, &script.source).map_err(|e| {
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
    match runner::run(lua, &what, budget(host), f, args).await {
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
    let out = runner::run(lua, &what, budget(host), f, (LuaRoom(room.clone()), info))
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
