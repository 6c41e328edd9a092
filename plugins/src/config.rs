//! Server configuration and its defaults (taken from the protoo spec, §1 and §2).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::origin::OriginList;

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
    /// Cross origins the HTTP API answers (CORS). Same-origin requests and requests without an
    /// `Origin` header are always served; any other Origin not in the list is refused with 403.
    /// Empty (the default): same origin only.
    pub cors_origins: OriginList,
    /// Cross origins allowed to open the protoo WebSocket (same rule as `cors_origins`);
    /// others are refused with 403 before the handler runs. Empty (the default): same origin only.
    pub ws_origins: OriginList,
    /// Concurrent protoo connections one client IP may hold (0: unlimited); beyond, the
    /// upgrade is answered 429 naming the limit.
    pub max_connections_per_ip: u32,
    /// protoo requests per second one connection may send (token bucket holding two seconds'
    /// worth; 0: unlimited); beyond, requests are answered with error 429 naming the limit and
    /// notifications are dropped.
    pub requests_per_second: u32,
    /// The same for all connections of one client IP together.
    pub requests_per_second_per_ip: u32,
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
            cors_origins: OriginList::default(),
            ws_origins: OriginList::default(),
            max_connections_per_ip: 0,
            requests_per_second: 0,
            requests_per_second_per_ip: 0,
        }
    }
}

impl Default for ServerConfig {
    /// Listens on `0.0.0.0:4443`, the mediasoup-demo port.
    fn default() -> Self {
        ServerConfig::new(SocketAddr::from(([0, 0, 0, 0], 4443)))
    }
}
