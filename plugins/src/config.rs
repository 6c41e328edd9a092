//! Server configuration and its defaults (taken from the protoo spec, §1 and §2).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default cap on an HTTP request body: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default cap on one incoming WebSocket frame and message (mediasoup-demo: 960 000 bytes).
/// Outgoing messages longer than this are fragmented into frames of at most this size.
pub const DEFAULT_MAX_WS_FRAME_BYTES: usize = 960_000;
/// Default base timeout of a server→peer protoo request (protoo-server: 2 s × 15 = 30 s).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default interval between keepalive WebSocket pings (mediasoup-demo: 60 s).
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(60);
/// Default time a peer has, after a ping, to send anything before it is dropped (10 s).
pub const DEFAULT_PONG_TIMEOUT: Duration = Duration::from_secs(10);

/// Paths of the PEM files that switch the listener to TLS (https and wss on the same port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first, PEM encoded.
    pub cert_pem: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1), PEM encoded.
    pub key_pem: PathBuf,
}

/// Everything [`serve`](crate::serve) needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port (see
    /// [`ServerHandle::local_addr`](crate::ServerHandle::local_addr)).
    pub listen: SocketAddr,
    /// When set, the port speaks TLS only (https/wss); when `None`, plain http/ws.
    pub tls: Option<TlsFiles>,
    /// Largest accepted HTTP request body; larger bodies are answered 413.
    pub max_body_bytes: usize,
    /// Largest accepted incoming WebSocket frame or message; larger ones close the connection
    /// with close code 1009. Outgoing messages are fragmented at this size.
    pub max_ws_frame_bytes: usize,
    /// Base timeout of a request sent to a peer. The effective timeout grows with the number
    /// of requests in flight to that peer like protoo-server's `2 s × (15 + 0.1 × pending)`:
    /// `request_timeout × (1 + pending / 150)`.
    pub request_timeout: Duration,
    /// Interval between keepalive pings sent to each WebSocket peer.
    pub ping_interval: Duration,
    /// After a ping, a peer that sends nothing (not even the pong) for this long is dropped.
    pub pong_timeout: Duration,
    /// Directory served for `GET`/`HEAD` requests that the [`HttpHandler`](crate::HttpHandler)
    /// answers with 404 (for instance the demo web app). `None`: no static files.
    pub static_dir: Option<PathBuf>,
}

impl ServerConfig {
    /// A configuration listening on `listen`, plain (no TLS), with every other field at its
    /// default.
    pub fn new(listen: SocketAddr) -> Self {
        ServerConfig {
            listen,
            tls: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_ws_frame_bytes: DEFAULT_MAX_WS_FRAME_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            ping_interval: DEFAULT_PING_INTERVAL,
            pong_timeout: DEFAULT_PONG_TIMEOUT,
            static_dir: None,
        }
    }
}

impl Default for ServerConfig {
    /// Listens on `0.0.0.0:4443`, the mediasoup-demo port.
    fn default() -> Self {
        ServerConfig::new(SocketAddr::from(([0, 0, 0, 0], 4443)))
    }
}
