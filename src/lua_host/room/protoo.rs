//! The protoo flow of a room: a new connection (`on_connect`, `limits.peersPerRoom`, peer
//! replacement), then the peer's requests and notifications dispatched to the room script's
//! handlers until the connection closes.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use mlua::{IntoLua, MultiValue, Table, Value};
use ringsfu_plugins::{ConnectRequest, PeerInbound, Reject};
use serde_json::Value as Json;
use tokio::sync::{mpsc, oneshot};

use super::super::error::HandlerError;
use super::super::json::{to_json, to_lua};
use super::super::lua_ref::LuaRef;
use super::super::runner;
use super::super::{Host, HostSettings};
use super::{close_if_unused, get_or_create_room, http_status, peer_left, spawn_hook};
use super::{LuaPeer, LuaRoom, Peer, Room};

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
                host.budget(),
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
        host.budget(),
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

/// Runs the room script's handler of a request or notification `method`:
/// `M[table][method](room, peer, data)`, else the catch-all hook `hook(room, peer, method,
/// data)`. None when the script has neither.
async fn dispatch(
    host: &Host,
    room: &Rc<Room>,
    peer: &Rc<Peer>,
    (table, hook): (&str, &str),
    method: &str,
    data: &Json,
    what: &str,
) -> Option<Result<MultiValue, HandlerError>> {
    let (f, catch_all) = match room.handler(table, method) {
        Some(f) => (f, false),
        None => (room.hook(hook)?, true),
    };
    let args = (|| -> mlua::Result<MultiValue> {
        let lua = &host.lua;
        let mut args = vec![
            LuaRoom(room.clone()).into_lua(lua)?,
            LuaPeer(peer.clone()).into_lua(lua)?,
        ];
        if catch_all {
            args.push(method.into_lua(lua)?);
        }
        args.push(to_lua(lua, data)?);
        Ok(MultiValue::from_vec(args))
    })();
    Some(match args {
        Ok(args) => runner::run(&host.lua, what, host.budget(), f, args).await,
        Err(e) => Err(super::super::error::classify(&e)),
    })
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
    let kinds = ("requests", "on_request");
    let result = match dispatch(&host, &room, &peer, kinds, &method, &data, &what).await {
        None => Err(HandlerError {
            code: 500,
            reason: format!("unknown request.method \"{method}\""),
        }),
        Some(Err(e)) => Err(e),
        Some(Ok(out)) => {
            let first = out.into_iter().next().unwrap_or(Value::Nil);
            to_json(&host.lua, first).map_err(|e| HandlerError {
                code: 500,
                reason: format!("bad response from {what}: {e}"),
            })
        }
    };
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
    let kinds = ("notifications", "on_notification");
    if dispatch(&host, &room, &peer, kinds, &method, &data, &what)
        .await
        .is_none()
    {
        log::debug!("{what}: no handler, ignored");
    }
}
