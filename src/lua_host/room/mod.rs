//! Rooms and peers on a worker: their state, creation (the room script's hook table and its
//! router), and closing. The Lua side of rooms and peers is in [`userdata`], the protoo flow
//! (connection, requests, notifications) in [`protoo`], the HTTP flow (`/rooms/:roomId/...`,
//! WHIP/WHEP) in [`http`].
//!
//! A room script is a chunk returning a table of hooks (see docs/lua-api.md):
//! `on_room_open(room)`, `on_connect(room, info)`, `on_peer_open(room, peer)`,
//! `requests[method](room, peer, data)` / `on_request(room, peer, method, data)`,
//! `notifications[method](room, peer, data)` / `on_notification(room, peer, method, data)`,
//! `on_peer_close(room, peer, reason)`, `on_room_close(room)`.

pub mod http;
pub mod protoo;
mod userdata;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use mlua::{Function, IntoLuaMulti, Table};
use ringsfu_plugins::{PeerHandle, Reject};
use serde_json::Value as Json;
use tokio::task::AbortHandle;
use uuid::Uuid;

use super::engine_api;
use super::lua_ref::LuaRef;
use super::runner;
use super::Host;

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

/// Loads the room's script and creates its router. Synchronous, so two connections for a new
/// room on this worker cannot create it twice.
pub(super) fn get_or_create_room(host: &Rc<Host>, room_id: &str) -> Result<Rc<Room>, Reject> {
    if let Some(r) = host.rooms.borrow().get(room_id) {
        return Ok(r.clone());
    }
    let script = host
        .settings
        .scripts
        .script_for(room_id)
        .ok_or_else(|| Reject::new(404, format!("no room script serves room {room_id:?}")))?;
    let module = host
        .eval_module(&script.name, &script.source)
        .map_err(|e| {
            log::error!("room {room_id}: script {} failed to load: {e}", script.name);
            Reject::new(500, format!("room script {} failed to load", script.name))
        })?;
    let router = match engine_api::create_router(&host.settings.media_codecs) {
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

/// Runs a hook of the room's script in the background, logging failures.
pub(super) fn spawn_hook(
    host: &Rc<Host>,
    room: &Rc<Room>,
    name: &str,
    f: Function,
    args: impl IntoLuaMulti,
) {
    let what = format!("{name} (room {}, script {})", room.id, room.script);
    runner::spawn(host, what, f, args);
}

/// The peer's connection ended: run `on_peer_close` and close the room if it was the last.
pub(super) async fn peer_left(host: &Rc<Host>, room: &Rc<Room>, peer: &Rc<Peer>, reason: &str) {
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
            host.budget(),
            f,
            (LuaRoom(room.clone()), LuaPeer(peer.clone()), reason),
        )
        .await;
    }
    peer.lua.release();
    close_if_unused(host, room, "last peer left");
}

/// Closes the room when no peer, no HTTP request and no script hold keeps it.
pub(super) fn close_if_unused(host: &Rc<Host>, room: &Rc<Room>, why: &str) {
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
            let _ = runner::run(&host2.lua, &what, host2.budget(), f, LuaRoom(room2.clone())).await;
        }
        if let Some(router) = room2.router {
            engine_api::close_router(&host2, router);
        }
        engine_api::drop_room(&host2, &room2.id);
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

/// A script's status for an HTTP rejection: 400..=599, else 403.
pub(super) fn http_status(code: u16) -> u16 {
    if (400..=599).contains(&code) {
        code
    } else {
        403
    }
}
