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
mod engineio;
mod error;
mod http;
pub mod message;
mod peer;
mod protoo;
mod server;
mod session;
mod static_files;
mod tls;
mod ws;

pub use crate::config::{
    ServerConfig, TlsFiles, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_WS_FRAME_BYTES,
    DEFAULT_PING_INTERVAL, DEFAULT_PONG_TIMEOUT, DEFAULT_REQUEST_TIMEOUT,
};
pub use crate::error::{PluginError, ProtooError};
pub use crate::http::{HttpBody, HttpHandler, HttpRequest, HttpResponse};
pub use crate::peer::{live_peer_handles, PeerHandle};
pub use crate::protoo::{ConnectRequest, PeerInbound, ProtooHandler, Reject};
pub use crate::server::{serve, serve_with_sessions, ServerHandle};
pub use crate::session::{
    dropped_frames, SessionHandle, SessionHandler, SessionInbound, SessionKind, SessionOpen,
    SessionOutbound, SessionRoutes,
};

/// A boxed, sendable future: what handlers return, so they can be trait objects.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
