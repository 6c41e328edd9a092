//! The 1:1 call system's signaling glue: socket.io sockets and `/call` WebSockets go to their
//! Lua script on worker 0 (one place that knows every room of the call scripts), and the call
//! pages are served from the binary.

use std::sync::Arc;

use ringsfu_plugins::{
    BoxFuture, HttpResponse, Reject, SessionHandler, SessionInbound, SessionKind, SessionOpen,
};
use tokio::sync::{mpsc, oneshot};

use crate::executor::WorkerExec;
use crate::lua_host::HostSettings;

/// The session handler: picks the script by endpoint and runs the session on worker 0.
pub struct Sessions {
    /// Worker threads (sessions run on the first).
    pub workers: Vec<Arc<dyn WorkerExec>>,
    /// Lua host settings.
    pub host: Arc<HostSettings>,
    /// Script of socket.io sockets.
    pub socket_io_script: Option<String>,
    /// Script of `/call` WebSockets.
    pub ws_script: Option<String>,
}

impl SessionHandler for Sessions {
    fn open(
        &self,
        open: SessionOpen,
    ) -> BoxFuture<'static, Result<mpsc::UnboundedSender<SessionInbound>, Reject>> {
        let script = match open.kind {
            SessionKind::SocketIo => self.socket_io_script.clone(),
            SessionKind::WebSocket { .. } => self.ws_script.clone(),
        };
        let worker = self.workers.first().cloned();
        let host = self.host.clone();
        Box::pin(async move {
            let Some(script) = script else {
                return Err(Reject::new(404, "no script serves this endpoint"));
            };
            let Some(worker) = worker else {
                return Err(Reject::new(500, "no worker"));
            };
            let (tx, rx) = mpsc::unbounded_channel();
            let (reply_tx, reply_rx) = oneshot::channel();
            let index = worker.index();
            if !worker.post(Box::new(move || {
                crate::lua_host::calls::open(host, index, script, open, rx, reply_tx)
            })) {
                return Err(Reject::new(500, "worker is gone"));
            }
            match reply_rx.await {
                Ok(Ok(())) => Ok(tx),
                Ok(Err(rej)) => Err(rej),
                Err(_) => Err(Reject::new(500, "the worker dropped the session")),
            }
        })
    }
}

/// The socket.io browser client (socket.io-client 4.8.4, MIT, vendored from the npm package's
/// `dist/socket.io.min.js`; its license is `src/calls/assets/socket.io-client.LICENSE`).
const SOCKET_IO_JS: &str = include_str!("calls/assets/socket.io.min.js");
const SOCKET_IO_LICENSE: &str = include_str!("calls/assets/socket.io-client.LICENSE");
const SOCKETIO_PAGE: &str = include_str!("calls/assets/socketio.html");
const WS_PAGE: &str = include_str!("calls/assets/ws.html");

/// A call page or asset by file name (`GET /calls/<file>`), or 404.
pub fn page(file: &str) -> HttpResponse {
    let (ct, body) = match file {
        "socketio.html" => ("text/html; charset=utf-8", SOCKETIO_PAGE),
        "ws.html" => ("text/html; charset=utf-8", WS_PAGE),
        "socket.io.min.js" => ("text/javascript; charset=utf-8", SOCKET_IO_JS),
        "socket.io-client.LICENSE" => ("text/plain; charset=utf-8", SOCKET_IO_LICENSE),
        _ => return HttpResponse::not_found(),
    };
    HttpResponse::raw(200, ct, body.as_bytes())
}

/// `GET /turn/stats`: the TURN server's counters as JSON (404 when TURN is off).
pub fn turn_stats(
    stats: Option<&Arc<std::sync::Mutex<(ringsfu_core::turn::TurnStats, usize)>>>,
) -> HttpResponse {
    let Some((s, allocations)) = stats.and_then(|s| s.lock().ok().map(|g| *g)) else {
        return HttpResponse::not_found();
    };
    HttpResponse::json(
        200,
        serde_json::json!({
            "allocations": allocations,
            "allocationsCreated": s.allocations_created,
            "malformed": s.malformed,
            "authFailures": s.auth_failures,
            "deniedPeers": s.denied_peers,
            "noPermission": s.no_permission,
            "quotaDrops": s.quota_drops,
            "toPeerPackets": s.to_peer_packets,
            "toClientPackets": s.to_client_packets,
            "relayedBytes": s.relayed_bytes,
        }),
    )
}
