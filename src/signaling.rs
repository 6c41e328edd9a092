//! The protoo and HTTP handlers: they pick a room's worker in the registry and hand the work
//! to that worker's thread, where the room and its Lua state live.

use std::sync::Arc;

use ringsfu_plugins::{
    BoxFuture, ConnectRequest, HttpHandler, HttpRequest, HttpResponse, PeerInbound, ProtooHandler,
    Reject,
};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::lua_host::room;
use crate::shared::{call_on_room_worker, Shared};

/// The protoo handler.
pub struct Protoo(pub Arc<Shared>);

impl ProtooHandler for Protoo {
    fn connect(
        &self,
        req: ConnectRequest,
    ) -> BoxFuture<'static, Result<mpsc::UnboundedSender<PeerInbound>, Reject>> {
        let shared = self.0.clone();
        Box::pin(async move {
            let room_id = req.room_id.clone();
            shared.ops.admit_room(&shared.registry, &room_id)?;
            let index = shared.registry.acquire(&room_id);
            let Some(worker) = shared.workers.get(index) else {
                shared.registry.release(&room_id);
                return Err(Reject::new(500, "no worker"));
            };
            let (tx, rx) = mpsc::unbounded_channel();
            let (reply_tx, reply_rx) = oneshot::channel();
            let settings = shared.host.clone();
            let posted = worker.post(Box::new(move || {
                room::protoo::connect(settings, index, req, rx, reply_tx);
            }));
            if !posted {
                shared.registry.release(&room_id);
                return Err(Reject::new(500, format!("worker {index} is gone")));
            }
            match reply_rx.await {
                Ok(Ok(())) => Ok(tx),
                Ok(Err(rej)) => Err(rej),
                Err(_) => Err(Reject::new(
                    500,
                    format!("worker {index} dropped the connection"),
                )),
            }
        })
    }
}

/// The HTTP handler. Routes: `/rooms/:roomId/...` (any method) to the HTTP API script on the
/// room's worker (the broadcaster REST API); without that script only `GET /rooms/:roomId`
/// (router RTP capabilities of a live room). `POST /admin/reload` (loopback only).
pub struct Http(pub Arc<Shared>);

impl HttpHandler for Http {
    fn handle(&self, req: HttpRequest) -> BoxFuture<'static, HttpResponse> {
        let shared = self.0.clone();
        Box::pin(async move {
            let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
            match (req.method.as_str(), segs.as_slice()) {
                (_, ["rooms", _, ..]) if shared.host.http_script.is_some() => {
                    room_api(&shared, req).await
                }
                ("GET", ["rooms", room_id]) => room_capabilities(&shared, room_id).await,
                ("GET", ["metrics"])
                | ("POST", ["admin", _])
                | ("GET", ["admin", _])
                | ("GET", ["turn", "stats"])
                    if !shared.ops.admin_allowed(&req) =>
                {
                    HttpResponse::json(
                        403,
                        json!({"error": "forbidden: loopback clients only, or Authorization: Bearer <security.adminToken>"}),
                    )
                }
                ("GET", ["metrics"]) => crate::ops::metrics::scrape(&shared).await,
                ("POST", ["admin", "drain"]) => crate::ops::drain_over_http(&shared),
                ("GET", ["admin", "status"]) => crate::ops::status(&shared),
                ("GET" | "HEAD", []) => crate::whip::page(),
                // Every page load asks for it: answer "no icon" rather than a 404 that shows as
                // an error in the browser's console.
                ("GET" | "HEAD", ["favicon.ico"]) => HttpResponse::raw(204, "image/x-icon", b""),
                (_, ["whip" | "whep", _, ..]) => crate::whip::call(&shared, req).await,
                ("GET", ["admin", "debug"]) => {
                    let collect = req.query.iter().any(|(k, v)| k == "gc" && v != "0");
                    debug_dump(&shared, collect).await
                }
                ("GET" | "HEAD", ["calls", file]) if shared.call_pages => crate::calls::page(file),
                ("GET", ["turn", "stats"]) => crate::calls::turn_stats(shared.turn_stats.as_ref()),
                ("POST", ["admin", "reload"]) => {
                    if !shared.admin_reload {
                        return HttpResponse::json(403, json!({"error": "forbidden"}));
                    }
                    match shared.scripts.reload() {
                        Ok(changed) => {
                            log::info!("scripts reloaded over HTTP; changed: {changed:?}");
                            HttpResponse::json(200, json!({"reloaded": true, "changed": changed}))
                        }
                        Err(e) => HttpResponse::json(500, json!({"error": e.to_string()})),
                    }
                }
                _ => HttpResponse::not_found(),
            }
        })
    }
}

async fn room_capabilities(shared: &Shared, room_id: &str) -> HttpResponse {
    let not_found =
        || HttpResponse::json(404, json!({"error": format!("room {room_id:?} not found")}));
    let Some(index) = shared.registry.worker_of(room_id) else {
        return not_found();
    };
    let Some(worker) = shared.workers.get(index) else {
        return not_found();
    };
    let (tx, rx) = oneshot::channel();
    let id = room_id.to_owned();
    if !worker.post(Box::new(move || {
        let _ = tx.send(room::room_rtp_capabilities(&id));
    })) {
        return not_found();
    }
    match rx.await {
        Ok(Some(caps)) => HttpResponse::json(200, caps),
        _ => not_found(),
    }
}

/// `GET /admin/debug[?gc=1]`: live object counts of every worker (Lua memory, rooms, peers,
/// objects scripts hold, engine objects and tables) and of the process (room registry, protoo
/// peer handles). With `gc=1` each worker's Lua state is fully collected first.
async fn debug_dump(shared: &Shared, collect: bool) -> HttpResponse {
    let mut workers = Vec::with_capacity(shared.workers.len());
    for (index, worker) in shared.workers.iter().enumerate() {
        let (tx, rx) = oneshot::channel();
        let posted = worker.post(Box::new(move || {
            let _ = tx.send(crate::lua_host::worker_debug(index, collect));
        }));
        let dump = match posted {
            true => rx
                .await
                .unwrap_or_else(|_| json!({"worker": index, "error": "no answer"})),
            false => json!({"worker": index, "error": "worker is gone"}),
        };
        workers.push(dump);
    }
    HttpResponse::json(
        200,
        json!({
            "registryRooms": shared.registry.len(),
            "protooPeerHandles": ringsfu_plugins::live_peer_handles(),
            "workers": workers,
        }),
    )
}

/// The body of an unknown room's 404 (the mediasoup-demo text).
fn room_not_found(room_id: &str) -> HttpResponse {
    HttpResponse::text(404, format!("Error: room with id \"{room_id}\" not found"))
}

/// Hands a `/rooms/:roomId/...` request to the HTTP API script on the room's worker, creating
/// the room there when the configuration says so. The registry reference taken here keeps the
/// room on that worker until the worker has answered (it releases it).
async fn room_api(shared: &Shared, req: HttpRequest) -> HttpResponse {
    let mut segments = req.segments.into_iter().skip(1);
    let room_id = segments.next().unwrap_or_default();
    // The path's ids were bounded by the plugin; a broadcaster's own id comes in the body.
    if let Some(id) = req
        .body
        .as_ref()
        .and_then(|b| b.get("id"))
        .and_then(Value::as_str)
    {
        if let Err(e) = ringsfu_plugins::limits::check_id("broadcaster id", id) {
            return HttpResponse::json(400, json!({ "error": e }));
        }
    }
    if let Err(rej) = shared.ops.admit_room(&shared.registry, &room_id) {
        return HttpResponse::text(rej.status, format!("Error: {}", rej.reason));
    }
    if !shared.host.create_rooms_over_http && shared.registry.worker_of(&room_id).is_none() {
        return room_not_found(&room_id);
    }
    let call = room::http::HttpCall {
        room_id,
        method: req.method.as_str().to_owned(),
        segments: segments.collect(),
        query: req.query,
        body: req.body,
        authorization: req.authorization,
        script: None,
        text: None,
        headers: req.headers,
    };
    call_on_room_worker(shared, call).await
}
