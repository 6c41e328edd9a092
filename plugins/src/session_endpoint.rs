//! The event-session endpoints: routes a request on the socket.io path to
//! [`crate::engineio`] and serves plain WebSocket sessions (`/call`) itself; the session types
//! handlers see are in [`crate::session`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::ctx::{sleep_until_opt, stopped, Ctx};
use crate::request::{parse_query, text, upgrade_response};
use crate::session::{
    count_drop, random_id, SessionHandle, SessionInbound, SessionKind, SessionOpen,
    SessionOutbound, SessionRoutes,
};

/// Whether the request is for a session endpoint (socket.io path or a plain WebSocket path).
pub(crate) fn claims(req: &Request<Incoming>, ctx: &Ctx) -> bool {
    let Some(routes) = &ctx.sessions else {
        return false;
    };
    let path = req.uri().path();
    if let Some(sio) = &routes.socket_io_path {
        let base = sio.trim_end_matches('/');
        if path == base || path.strip_prefix(base).is_some_and(|r| r.starts_with('/')) {
            return true;
        }
    }
    routes.ws_paths.iter().any(|p| p == path)
}

/// Serves a request [`claims`] said is ours.
pub(crate) async fn handle(
    req: Request<Incoming>,
    remote_addr: SocketAddr,
    ctx: Arc<Ctx>,
) -> Response<Full<Bytes>> {
    let Some(routes) = ctx.sessions.clone() else {
        return text(StatusCode::NOT_FOUND, "not found");
    };
    // Event sessions act in the visitor's name like protoo sessions: a page of another origin
    // may open one (WebSocket or socket.io polling) only when its origin is configured
    // (`security.wsOrigins`, see `crate::origin`).
    let verdict = crate::origin::check(
        req.headers(),
        ctx.config.tls.is_some(),
        &ctx.config.ws_origins,
    );
    if let crate::origin::OriginVerdict::Refused(origin) = &verdict {
        log::info!(
            "session {} from {remote_addr}: origin {origin:?} refused",
            req.uri().path()
        );
        return text(
            StatusCode::FORBIDDEN,
            &format!("origin {origin:?} is not allowed (config security.wsOrigins)"),
        );
    }
    let path = req.uri().path().to_owned();
    if routes.ws_paths.contains(&path) {
        return plain_ws(req, remote_addr, ctx, routes, path).await;
    }
    let mut resp = crate::engineio::handle(req, remote_addr, ctx, routes).await;
    verdict.stamp(resp.headers_mut());
    resp
}

/// A plain WebSocket session (`/call`): text frames to the handler, its text back.
async fn plain_ws(
    mut req: Request<Incoming>,
    remote_addr: SocketAddr,
    ctx: Arc<Ctx>,
    routes: SessionRoutes,
    path: String,
) -> Response<Full<Bytes>> {
    let resp = match upgrade_response(&req) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let id = random_id();
    let (handle, mut out_rx) = SessionHandle::new(&id);
    let open = SessionOpen {
        kind: SessionKind::WebSocket { path },
        id: id.clone(),
        remote_addr,
        query: parse_query(req.uri().query()),
        handle,
    };
    let inbound = match routes.handler.open(open).await {
        Ok(tx) => tx,
        Err(rej) => {
            let status = StatusCode::from_u16(rej.status)
                .ok()
                .filter(|s| s.is_client_error() || s.is_server_error())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return text(status, &rej.reason);
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let config = ctx.ws_config();
    let ping_interval = routes.ping_interval;
    let pong_timeout = routes.ping_timeout;
    let mut shutdown = ctx.shutdown.clone();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                let _ = inbound.send(SessionInbound::Closed {
                    reason: format!("WebSocket upgrade failed: {e}"),
                });
                return;
            }
        };
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        let (mut sink, mut stream) = ws.split();
        let mut ping = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
        let mut pong_deadline: Option<Instant> = None;
        let reason = loop {
            tokio::select! {
                next = stream.next() => {
                    pong_deadline = None;
                    match next {
                        None => break "connection closed".to_owned(),
                        Some(Err(e)) => break format!("WebSocket error: {e}"),
                        Some(Ok(Message::Text(t))) => {
                            if inbound.send(SessionInbound::Text(t.as_str().to_owned())).is_err() {
                                break "handler gone".into();
                            }
                        }
                        Some(Ok(Message::Binary(_))) => count_drop("binary frame on a text WebSocket session"),
                        Some(Ok(Message::Close(_))) => {}
                        Some(Ok(_)) => {}
                    }
                }
                out = out_rx.recv() => match out {
                    Some(SessionOutbound::Text(t)) => {
                        if sink.send(Message::text(t)).await.is_err() {
                            break "write failed".into();
                        }
                    }
                    Some(SessionOutbound::Event { .. }) => {}
                    Some(SessionOutbound::Close) | None => {
                        let _ = tokio::time::timeout(Duration::from_secs(2), sink.send(Message::Close(None))).await;
                        break "closed by server".into();
                    }
                },
                _ = ping.tick() => {
                    let _ = sink.send(Message::Ping(Bytes::new())).await;
                    pong_deadline.get_or_insert(Instant::now() + pong_timeout);
                }
                _ = sleep_until_opt(pong_deadline) => break "keepalive timeout".into(),
                _ = stopped(&mut shutdown) => {
                    let _ = sink.send(Message::Close(None)).await;
                    break "server shutting down".into();
                }
            }
        };
        let _ = inbound.send(SessionInbound::Closed { reason });
    });
    resp
}
