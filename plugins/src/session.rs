//! Event sessions as their handler sees them: the socket.io endpoint (Engine.IO v4,
//! [`crate::engineio`]) and plain WebSocket text endpoints (`/call`, served by
//! [`crate::session_endpoint`]). The plugin only carries frames: it parses the wire protocol
//! and hands events, text frames and the close to a [`SessionHandler`] (the server's Lua call
//! scripts), which decides everything and answers through a [`SessionHandle`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::protoo::Reject;
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

/// A random session id: 20 characters of the base64url alphabet (120 bits).
pub(crate) fn random_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::thread_rng();
    (0..20)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}
