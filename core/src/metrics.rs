//! Counters and gauges of one worker, for the `/metrics` endpoint.
//!
//! Nothing here is on the packet path: the engine's own plain counters (per transport, per
//! consumer, per drop reason) are summed when [`crate::worker::WorkerContext::metrics`] runs on
//! the worker thread at scrape time, and counters of closed objects are folded into the
//! engine's running totals when they close, so every `*_total` only grows.

use crate::engine::DropCounters;

/// Traffic counters that only grow.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TrafficTotals {
    /// RTP packets received on transports (after SRTP).
    pub rtp_packets_received: u64,
    /// RTP bytes received on transports.
    pub rtp_bytes_received: u64,
    /// RTP packets sent on transports.
    pub rtp_packets_sent: u64,
    /// RTP bytes sent on transports.
    pub rtp_bytes_sent: u64,
    /// RTCP packets received.
    pub rtcp_packets_received: u64,
    /// RTCP packets sent.
    pub rtcp_packets_sent: u64,
    /// RTP packets consumers forwarded (one per receiver).
    pub forwarded_packets: u64,
    /// RTP bytes consumers forwarded.
    pub forwarded_bytes: u64,
    /// Retransmissions sent in answer to NACKs (RTX or plain).
    pub retransmitted_packets: u64,
    /// NACK packets received from consumers.
    pub nacks_received: u64,
    /// NACKed packets no longer in the retransmission store.
    pub nack_misses: u64,
    /// PLI/FIR received from consumers.
    pub keyframe_requests_received: u64,
}

impl TrafficTotals {
    /// Adds `o` into `self`.
    pub fn add(&mut self, o: &TrafficTotals) {
        self.rtp_packets_received += o.rtp_packets_received;
        self.rtp_bytes_received += o.rtp_bytes_received;
        self.rtp_packets_sent += o.rtp_packets_sent;
        self.rtp_bytes_sent += o.rtp_bytes_sent;
        self.rtcp_packets_received += o.rtcp_packets_received;
        self.rtcp_packets_sent += o.rtcp_packets_sent;
        self.forwarded_packets += o.forwarded_packets;
        self.forwarded_bytes += o.forwarded_bytes;
        self.retransmitted_packets += o.retransmitted_packets;
        self.nacks_received += o.nacks_received;
        self.nack_misses += o.nack_misses;
        self.keyframe_requests_received += o.keyframe_requests_received;
    }
}

/// Socket-level counters of a worker (every UDP socket it owns: the shared port and plain
/// transports' ports; ICE-TCP framed packets).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct IoTotals {
    /// Datagrams (or framed TCP packets) received.
    pub datagrams_received: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Datagrams (or framed TCP packets) handed to the kernel.
    pub datagrams_sent: u64,
    /// Bytes handed to the kernel.
    pub bytes_sent: u64,
    /// Datagrams the kernel refused (socket buffer full) on sockets still open.
    pub send_drops: u64,
}

/// Number of live transports of one type in one state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TransportCount {
    /// `"webrtc"` or `"plain"`.
    pub kind: &'static str,
    /// WebRTC: the DTLS state (`new`, `connecting`, `connected`, `failed`, `closed`);
    /// plain: `connected` once it has a remote address, else `new`.
    pub state: &'static str,
    /// How many.
    pub count: u64,
}

/// Everything a scrape reads from one worker's engine.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct EngineMetrics {
    /// Routers.
    pub routers: u64,
    /// Transports by type and state.
    pub transports: Vec<TransportCount>,
    /// Producers (audio, video).
    pub producers: [u64; 2],
    /// Consumers (audio, video).
    pub consumers: [u64; 2],
    /// Data producers.
    pub data_producers: u64,
    /// Data consumers.
    pub data_consumers: u64,
    /// Traffic since the worker started.
    pub traffic: TrafficTotals,
    /// Shared-port drops by reason since the worker started.
    pub drops: DropCounters,
}

/// [`EngineMetrics`] plus the worker's socket counters.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct WorkerMetrics {
    /// The engine's counters and gauges.
    pub engine: EngineMetrics,
    /// The sockets' counters.
    pub io: IoTotals,
}
