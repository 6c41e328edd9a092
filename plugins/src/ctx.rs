//! What every connection task shares ([`Ctx`]) and waits on (server shutdown, deadlines): the
//! layer between the listener (`server.rs`, which builds it) and the front ends (HTTP,
//! protoo WebSocket, event sessions) that read it.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::config::ServerConfig;
use crate::handler::HttpHandler;
use crate::protoo::ProtooHandler;

/// What every connection task shares.
pub(crate) struct Ctx {
    pub(crate) config: ServerConfig,
    pub(crate) protoo: Arc<dyn ProtooHandler>,
    pub(crate) http: Arc<dyn HttpHandler>,
    /// Becomes `true` (or is dropped) when the server shuts down.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Runtime for request timers, so `PeerHandle::request` works from any thread.
    pub(crate) runtime: tokio::runtime::Handle,
    /// Per-client-IP connection counts and request buckets.
    pub(crate) ips: Arc<crate::limits::IpTable>,
    /// socket.io and plain WebSocket event sessions (the call scripts), if served.
    pub(crate) sessions: Option<crate::session::SessionRoutes>,
    /// Live Engine.IO sessions.
    pub(crate) eio: crate::eio_sessions::Registry,
}

impl Ctx {
    /// The WebSocket limits of every WebSocket the server accepts (`max_ws_frame_bytes`).
    pub(crate) fn ws_config(&self) -> WebSocketConfig {
        let max = self.config.max_ws_frame_bytes.max(1);
        WebSocketConfig::default()
            .max_frame_size(Some(max))
            .max_message_size(Some(max))
    }
}

/// Resolves once the server is shutting down (flag set or sender dropped).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard wait_for returns is not Send: drop it here, not in the caller's future.
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}

/// Sleeps until `deadline`, or forever when there is none.
pub(crate) async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
