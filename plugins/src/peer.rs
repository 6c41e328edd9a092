//! [`PeerHandle`]: the server side's grip on one connected protoo peer.
//!
//! Everything here is synchronous and thread-safe so the handler can drive a peer from any
//! thread (the room's worker thread). Outgoing traffic goes through an unbounded queue that
//! the connection's writer task drains; request timeouts run on the server's tokio runtime,
//! so the future of [`PeerHandle::request`] can be awaited on any executor.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use rand::Rng;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::AbortHandle;

use crate::error::ProtooError;
use crate::message;

/// Close code protoo-server uses; it tells protoo-client not to reconnect.
pub(crate) const CLOSE_CODE_SERVER: u16 = 4000;
/// Close reason protoo-server uses with [`CLOSE_CODE_SERVER`].
pub(crate) const CLOSE_REASON_SERVER: &str = "closed by protoo-server";
/// Requests in flight to one peer beyond which new ones are refused (memory bound).
const MAX_PENDING: usize = 100_000;
/// protoo ids are `round(random() * 10_000_000)`.
const MAX_REQUEST_ID: u64 = 10_000_000;

/// What the writer task sends on the socket.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A protoo message.
    Text(String),
    /// A keepalive ping.
    Ping,
    /// A close frame; the writer stops after it.
    Close { code: u16, reason: String },
}

type PendingResult = Result<Value, ProtooError>;

/// Peer handles alive in this process (see [`live_peer_handles`]).
static LIVE_PEERS: AtomicUsize = AtomicUsize::new(0);

/// Number of protoo peers whose state (handle, pending requests) is still alive in this process:
/// connected peers plus handles something still holds. Back to its baseline once every peer
/// has gone and the server let go of them; a leak detector for the debug dump.
pub fn live_peer_handles() -> usize {
    LIVE_PEERS.load(Ordering::Relaxed)
}

struct Pending {
    reply: oneshot::Sender<PendingResult>,
    timer: AbortHandle,
}

struct PeerShared {
    peer_id: String,
    room_id: String,
    out: mpsc::UnboundedSender<Outbound>,
    closed: AtomicBool,
    /// Wakes the connection task when the peer is closed from this side.
    close_signal: Notify,
    pending: Mutex<HashMap<u64, Pending>>,
    request_timeout: Duration,
    runtime: tokio::runtime::Handle,
}

impl Drop for PeerShared {
    fn drop(&mut self) {
        LIVE_PEERS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Handle to one connected protoo peer. Cheap to clone; `Send + Sync`; every method is
/// non-blocking. Once the peer is closed, sends are silently dropped.
#[derive(Clone)]
pub struct PeerHandle {
    shared: Arc<PeerShared>,
}

impl std::fmt::Debug for PeerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerHandle")
            .field("room_id", &self.shared.room_id)
            .field("peer_id", &self.shared.peer_id)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl PeerHandle {
    /// A peer whose outgoing messages go to `out`.
    pub(crate) fn new(
        room_id: String,
        peer_id: String,
        out: mpsc::UnboundedSender<Outbound>,
        request_timeout: Duration,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        LIVE_PEERS.fetch_add(1, Ordering::Relaxed);
        PeerHandle {
            shared: Arc::new(PeerShared {
                peer_id,
                room_id,
                out,
                closed: AtomicBool::new(false),
                close_signal: Notify::new(),
                pending: Mutex::new(HashMap::new()),
                request_timeout,
                runtime,
            }),
        }
    }

    /// The `peerId` the peer connected with.
    pub fn peer_id(&self) -> &str {
        &self.shared.peer_id
    }

    /// The `roomId` the peer connected with.
    pub fn room_id(&self) -> &str {
        &self.shared.room_id
    }

    /// Answers the peer's request `id` with success and `data`.
    pub fn respond_ok(&self, id: u64, data: Value) {
        self.send_text(message::ok_response_json(id, data));
    }

    /// Answers the peer's request `id` with an error (`errorCode`, `errorReason`).
    pub fn respond_error(&self, id: u64, code: u16, reason: &str) {
        self.send_text(message::error_response_json(id, code, reason));
    }

    /// Sends a notification.
    pub fn notify(&self, method: &str, data: Value) {
        self.send_text(message::notification_json(method, data));
    }

    /// Sends a request and returns a future of the peer's answer. The request is sent at
    /// once, whether or not the future is polled. The future is `'static` and needs no
    /// particular executor. It resolves to the response `data`, or
    /// [`ProtooError::Response`] for an error response, [`ProtooError::Timeout`] after the
    /// configured timeout, [`ProtooError::PeerClosed`] if the peer closes first.
    pub fn request(
        &self,
        method: &str,
        data: Value,
    ) -> impl Future<Output = Result<Value, ProtooError>> + Send + 'static {
        let started = self.start_request(method, data);
        async move {
            match started {
                Ok(rx) => rx.await.unwrap_or(Err(ProtooError::PeerClosed)),
                Err(e) => Err(e),
            }
        }
    }

    /// Closes the peer like protoo-server: close code 4000 ("closed by protoo-server"), which
    /// tells protoo-client not to reconnect. Pending requests fail with
    /// [`ProtooError::PeerClosed`]; [`PeerInbound::Closed`](crate::PeerInbound::Closed)
    /// follows on the inbound channel. Idempotent.
    pub fn close(&self) {
        self.close_with(CLOSE_CODE_SERVER, CLOSE_REASON_SERVER);
    }

    /// Whether the peer is closed (by either side).
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// Closes with a specific close frame; false if it was already closed.
    pub(crate) fn close_with(&self, code: u16, reason: &str) -> bool {
        if !self.mark_closed() {
            return false;
        }
        // The receiver is gone only if the connection already ended; nothing to tell then.
        let _ = self.shared.out.send(Outbound::Close {
            code,
            reason: reason.to_owned(),
        });
        true
    }

    /// Marks the peer closed without a close frame (connection already gone). Fails pending
    /// requests and wakes the connection task. Returns false if it was already closed.
    pub(crate) fn mark_closed(&self) -> bool {
        if self.shared.closed.swap(true, Ordering::SeqCst) {
            return false;
        }
        let drained: Vec<Pending> = self.lock_pending().drain().map(|(_, p)| p).collect();
        for p in drained {
            p.timer.abort();
            let _ = p.reply.send(Err(ProtooError::PeerClosed));
        }
        self.shared.close_signal.notify_one();
        true
    }

    /// Resolves when the peer has been closed from this side (a permit is stored, so a close
    /// that happened before the call is seen too).
    pub(crate) async fn closed_signal(&self) {
        self.shared.close_signal.notified().await;
    }

    /// Queues a keepalive ping.
    pub(crate) fn send_ping(&self) {
        let _ = self.shared.out.send(Outbound::Ping);
    }

    /// Completes the pending request `id` with the peer's response. Returns false for an
    /// unknown id (already timed out, or never sent).
    pub(crate) fn complete(&self, id: u64, result: Result<Value, (u16, String)>) -> bool {
        let Some(p) = self.lock_pending().remove(&id) else {
            return false;
        };
        p.timer.abort();
        let _ = p
            .reply
            .send(result.map_err(|(code, reason)| ProtooError::Response { code, reason }));
        true
    }

    fn send_text(&self, text: String) {
        if !self.is_closed() {
            let _ = self.shared.out.send(Outbound::Text(text));
        }
    }

    fn start_request(
        &self,
        method: &str,
        data: Value,
    ) -> Result<oneshot::Receiver<PendingResult>, ProtooError> {
        let mut pending = self.lock_pending();
        // Checked under the lock: mark_closed sets the flag before draining under the same
        // lock, so a request is either drained or refused, never stranded.
        if self.is_closed() {
            return Err(ProtooError::PeerClosed);
        }
        if pending.len() >= MAX_PENDING {
            return Err(ProtooError::TooManyPending);
        }
        let mut rng = rand::thread_rng();
        let id = loop {
            let id = rng.gen_range(0..=MAX_REQUEST_ID);
            if !pending.contains_key(&id) {
                break id;
            }
        };
        // protoo-server: 2 s × (15 + 0.1 × pending) = base × (1 + pending / 150).
        let timeout = self
            .shared
            .request_timeout
            .mul_f64(1.0 + pending.len() as f64 / 150.0);
        let weak: Weak<PeerShared> = Arc::downgrade(&self.shared);
        let timer = self
            .shared
            .runtime
            .spawn(async move {
                tokio::time::sleep(timeout).await;
                if let Some(shared) = weak.upgrade() {
                    let p = lock(&shared.pending).remove(&id);
                    if let Some(p) = p {
                        let _ = p.reply.send(Err(ProtooError::Timeout));
                    }
                }
            })
            .abort_handle();
        let (tx, rx) = oneshot::channel();
        pending.insert(id, Pending { reply: tx, timer });
        drop(pending);
        let _ = self
            .shared
            .out
            .send(Outbound::Text(message::request_json(id, method, data)));
        Ok(rx)
    }

    fn lock_pending(&self) -> MutexGuard<'_, HashMap<u64, Pending>> {
        lock(&self.shared.pending)
    }
}

/// A poisoned lock only means another thread panicked mid-update of a plain map; the map is
/// still usable, so recover it rather than propagate the panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
