//! The protoo handler contract: what the server binary implements to own every decision.

use std::net::SocketAddr;

use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;

use crate::peer::PeerHandle;
use crate::BoxFuture;

/// A WebSocket upgrade that passed the protocol checks (subprotocol `protoo`, non-empty
/// `roomId` and `peerId`), waiting for the handler's verdict.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    /// The `roomId` query parameter.
    pub room_id: String,
    /// The `peerId` query parameter.
    pub peer_id: String,
    /// The TCP peer's address.
    pub remote_addr: SocketAddr,
    /// Every query parameter, decoded, in order (including `roomId` and `peerId`).
    pub query: Vec<(String, String)>,
    /// The peer, usable at once: messages sent before the upgrade completes are queued and
    /// go out first (e.g. the `mediasoup-version` notification).
    pub peer: PeerHandle,
}

/// A refused connection: the upgrade is answered with this HTTP status and reason text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// HTTP status, 400..=599 (anything else is sent as 500).
    pub status: u16,
    /// Plain-text body.
    pub reason: String,
}

impl Reject {
    /// A rejection with the given status and reason.
    pub fn new(status: u16, reason: impl Into<String>) -> Self {
        Reject {
            status,
            reason: reason.into(),
        }
    }
}

/// What a connected peer sends, delivered in arrival order to the channel returned by
/// [`ProtooHandler::connect`]. Responses to the server's own requests are not delivered
/// here: they complete the futures of [`PeerHandle::request`].
#[derive(Debug, Clone, PartialEq)]
pub enum PeerInbound {
    /// A request; answer it with [`PeerHandle::respond_ok`] or [`PeerHandle::respond_error`]
    /// using the same `id`, in any order.
    Request {
        /// The peer's request id.
        id: u64,
        /// Method name.
        method: String,
        /// Payload (`{}` when the peer sent none).
        data: Value,
    },
    /// A notification.
    Notification {
        /// Method name.
        method: String,
        /// Payload (`{}` when the peer sent none).
        data: Value,
    },
    /// The connection is gone (closed by either side, keepalive timeout, protocol error).
    /// Always the last message; sent exactly once per accepted peer.
    Closed {
        /// Human-readable cause, for logs.
        reason: String,
    },
}

/// Decides who may connect and receives what they send. Implemented by the server binary.
pub trait ProtooHandler: Send + Sync + 'static {
    /// Called for every WebSocket upgrade that passed the protocol checks, before the HTTP 101
    /// answer. `Ok(inbound)` accepts: the plugin then delivers the peer's requests and
    /// notifications into `inbound`, in order, and finally [`PeerInbound::Closed`].
    /// `Err(reject)` answers the upgrade with `reject.status`.
    ///
    /// If `inbound`'s receiver is dropped while the peer is connected, the peer is closed.
    fn connect(
        &self,
        req: ConnectRequest,
    ) -> BoxFuture<'static, Result<UnboundedSender<PeerInbound>, Reject>>;
}
