//! Signaling front ends of ringsfu: the protoo WebSocket server and the HTTP (REST) server.
//!
//! This crate only *carries* messages; it decides nothing. Every decision (accept or reject a
//! peer, answer a protoo request, answer an HTTP route) is made by a handler that the server
//! binary provides ([`ProtooHandler`], [`HttpHandler`]). What the crate enforces is protocol:
//! the `protoo` WebSocket subprotocol, the `roomId`/`peerId` query parameters, protoo message
//! framing (see [`message`]), request-id allocation and response matching, request timeouts,
//! keepalive pings, frame size limits, JSON body parsing, CORS and static files.
//!
//! One listening port serves both HTTP and WebSocket, over TLS (https/wss) when
//! [`ServerConfig::tls`] names a certificate and key, else in the clear (http/ws).
//!
//! ```no_run
//! # use std::sync::Arc;
//! # async fn run(protoo: Arc<dyn ringsfu_plugins::ProtooHandler>, http: Arc<dyn ringsfu_plugins::HttpHandler>) {
//! let config = ringsfu_plugins::ServerConfig::new("127.0.0.1:4443".parse().unwrap());
//! let server = ringsfu_plugins::serve(config, protoo, http).await.unwrap();
//! println!("listening on {}", server.local_addr());
//! # }
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod config;
mod ctx;
mod eio_sessions;
mod engineio;
mod error;
mod handler;
mod http;
pub mod limits;
pub mod message;
mod origin;
mod peer;
mod protoo;
mod request;
mod server;
mod session;
mod session_endpoint;
mod static_files;
mod tls;
mod ws;

pub use crate::config::{
    ServerConfig, TlsFiles, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_WS_FRAME_BYTES,
    DEFAULT_PING_INTERVAL, DEFAULT_PONG_TIMEOUT, DEFAULT_REQUEST_TIMEOUT,
};
pub use crate::error::{PluginError, ProtooError};
pub use crate::handler::{HttpBody, HttpHandler, HttpRequest, HttpResponse};
pub use crate::origin::{OriginList, OriginVerdict};
pub use crate::peer::{live_peer_handles, PeerHandle};
pub use crate::protoo::{ConnectRequest, PeerInbound, ProtooHandler, Reject};
pub use crate::server::{serve, serve_with_sessions, ServerHandle};
pub use crate::session::{
    dropped_frames, SessionHandle, SessionHandler, SessionInbound, SessionKind, SessionOpen,
    SessionOutbound, SessionRoutes,
};

/// The parsers the HTTP side runs on untrusted input before any handler, for the fuzz targets
/// (`core/fuzz`). Not an API.
#[doc(hidden)]
pub mod fuzzing {
    /// Splits and percent-decodes a request path (as the HTTP side does).
    pub fn path_segments(path: &str) -> Vec<String> {
        crate::request::path_segments(path)
    }

    /// Decodes a query string (as the HTTP side does).
    pub fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
        crate::request::parse_query(query)
    }

    /// Parses a request body as the HTTP side does: blank → None, else JSON or an error.
    pub fn parse_json_body(body: &[u8]) -> Result<Option<serde_json::Value>, String> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(body)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    /// Parses an Engine.IO polling payload and the socket.io packets in it as a call session
    /// does; the number of well-formed events.
    pub fn engineio_payload(body: &str) -> usize {
        crate::engineio::parse_payload(body)
    }

    /// Runs the Origin check for an `Origin` and a `Host` header value against `allowed`.
    pub fn origin_allowed(origin: &str, host: &str, tls: bool, allowed: &[&str]) -> bool {
        let list = crate::OriginList::new(allowed.iter().copied()).unwrap_or_default();
        let mut h = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(origin) {
            h.insert(http::header::ORIGIN, v);
        }
        if let Ok(v) = http::HeaderValue::from_str(host) {
            h.insert(http::header::HOST, v);
        }
        let _ = crate::OriginList::new([origin]);
        crate::origin::check(&h, tls, &list).is_allowed()
    }
}

/// A boxed, sendable future: what handlers return, so they can be trait objects.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
