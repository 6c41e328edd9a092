//! Event sessions: the socket.io endpoint (Engine.IO v4, [`crate::engineio`]) and plain
//! WebSocket text endpoints (`/call`). The plugin only carries frames: it parses the wire
//! protocol and hands events, text frames and the close to a [`SessionHandler`] (the server's
//! Lua call scripts), which decides everything and answers through a [`SessionHandle`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::protoo::Reject;
use crate::server::Ctx;
use crate::BoxFuture;

/// Which endpoint a session came in on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionKind {
    /// A socket.io socket (namespace `/`) over Engine.IO v4 (polling and/or websocket).
    SocketIo,
    /// A plain WebSocket on one of [`SessionRoutes::ws_paths`]: text frames in, text out.
    WebSocket {
        /// The path it connected to (`/call`).
        path: String,
    },
}

/// A new session, as the handler sees it.
#[derive(Debug, Clone)]
pub struct SessionOpen {
    /// Endpoint.
    pub kind: SessionKind,
    /// The session id (the socket.io socket id; random for WebSockets).
    pub id: String,
    /// The TCP peer's address.
    pub remote_addr: SocketAddr,
    /// Query parameters of the (first) request, decoded.
    pub query: Vec<(String, String)>,
    /// Where the handler sends to this session.
    pub handle: SessionHandle,
}

/// What a session's client sent, delivered in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionInbound {
    /// A socket.io event: `socket.emit(name, ...args)` on the client.
    Event {
        /// Event name.
        name: String,
        /// Its arguments (JSON).
        args: Vec<Value>,
    },
    /// A text frame of a plain WebSocket session.
    Text(String),
    /// The session ended (client left, transport closed, ping timeout, server closed it).
    /// Always the last message.
    Closed {
        /// Why, in words.
        reason: String,
    },
}

/// What the handler sends to a session.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionOutbound {
    /// A socket.io event (ignored on plain WebSockets).
    Event {
        /// Event name.
        name: String,
        /// Arguments.
        args: Vec<Value>,
    },
    /// A text frame (plain WebSockets; ignored on socket.io).
    Text(String),
    /// Close the session (socket.io: a server-side namespace disconnect).
    Close,
}

/// The handler's side of one session. Cheap to clone; sending to a closed session is a no-op
/// that returns false.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    id: Arc<str>,
    tx: mpsc::UnboundedSender<SessionOutbound>,
}

impl SessionHandle {
    /// A handle and the receiver its messages go to (the plugin's end; public for tests and
    /// embedders that drive a handler directly).
    pub fn new(id: &str) -> (SessionHandle, mpsc::UnboundedReceiver<SessionOutbound>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (SessionHandle { id: id.into(), tx }, rx)
    }

    /// The session id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Emits a socket.io event.
    pub fn emit(&self, name: impl Into<String>, args: Vec<Value>) -> bool {
        self.tx
            .send(SessionOutbound::Event {
                name: name.into(),
                args,
            })
            .is_ok()
    }

    /// Sends a text frame.
    pub fn send_text(&self, text: impl Into<String>) -> bool {
        self.tx.send(SessionOutbound::Text(text.into())).is_ok()
    }

    /// Closes the session.
    pub fn close(&self) -> bool {
        self.tx.send(SessionOutbound::Close).is_ok()
    }

    /// Whether the plugin side is gone (the session ended).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Decides what event sessions do. Implemented by the server binary (the Lua call scripts).
pub trait SessionHandler: Send + Sync + 'static {
    /// A session opens. Return the channel its inbound messages go to, or a rejection
    /// (socket.io: a `connect_error` with the reason; WebSocket: the HTTP status).
    fn open(
        &self,
        open: SessionOpen,
    ) -> BoxFuture<'static, Result<mpsc::UnboundedSender<SessionInbound>, Reject>>;
}

/// Which paths the event sessions are served on.
#[derive(Clone)]
pub struct SessionRoutes {
    /// The handler of every session.
    pub handler: Arc<dyn SessionHandler>,
    /// The socket.io path (`/socket.io/`, the client's default); `None`: no socket.io.
    pub socket_io_path: Option<String>,
    /// Plain WebSocket paths (`/call`).
    pub ws_paths: Vec<String>,
    /// Engine.IO ping interval (the client must answer within `ping_timeout`).
    pub ping_interval: Duration,
    /// Engine.IO ping timeout.
    pub ping_timeout: Duration,
}

impl std::fmt::Debug for SessionRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRoutes")
            .field("socket_io_path", &self.socket_io_path)
            .field("ws_paths", &self.ws_paths)
            .finish()
    }
}

/// Malformed or unsupported frames dropped by the session endpoints (all of them, since start).
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Number of malformed or unsupported socket.io / Engine.IO / WebSocket session frames dropped
/// since the process started.
pub fn dropped_frames() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

pub(crate) fn count_drop(what: &str) {
    DROPPED.fetch_add(1, Ordering::Relaxed);
    log::debug!("session frame dropped: {what}");
}

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

/// A random session id: 20 characters of the base64url alphabet (120 bits).
pub(crate) fn random_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::thread_rng();
    (0..20)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

pub(crate) fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_owned())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    resp
}

/// Checks a WebSocket upgrade request; answers the 101 response headers, or the error.
#[allow(clippy::result_large_err)] // both variants are responses, returned once per request
pub(crate) fn upgrade_response(
    req: &Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Response<Full<Bytes>>> {
    if !crate::ws::is_upgrade(req.headers()) || req.method() != http::Method::GET {
        return Err(text(
            StatusCode::BAD_REQUEST,
            "expected a WebSocket upgrade",
        ));
    }
    if req
        .headers()
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err(text(
            StatusCode::UPGRADE_REQUIRED,
            "unsupported WebSocket version",
        ));
    }
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return Err(text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key"));
    };
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    Ok(resp)
}

pub(crate) fn ws_config(ctx: &Ctx) -> WebSocketConfig {
    let max = ctx.config.max_ws_frame_bytes.max(1);
    WebSocketConfig::default()
        .max_frame_size(Some(max))
        .max_message_size(Some(max))
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
        query: crate::http::parse_query(req.uri().query()),
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
    let config = ws_config(&ctx);
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
                _ = crate::server::stopped(&mut shutdown) => {
                    let _ = sink.send(Message::Close(None)).await;
                    break "server shutting down".into();
                }
            }
        };
        let _ = inbound.send(SessionInbound::Closed { reason });
    });
    resp
}

pub(crate) async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
