//! Counters and gauges of one worker, for the `/metrics` endpoint.
//!
//! Nothing here is on the packet path: the engine's own plain counters (per transport, per
//! consumer, per drop reason) are summed when [`crate::worker::WorkerContext::metrics`] runs on
//! the worker thread at scrape time, and counters of closed objects are folded into the
//! engine's running totals when they close, so every `*_total` only grows.

use crate::consumer::ConsumerCounters;
use crate::transport::TransportCounters;

/// Traffic counters that only grow: the transports' and the consumers' own counters summed
/// (live objects plus those closed before).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TrafficTotals {
    /// RTP/RTCP packets and bytes received and sent on transports (RTP after SRTP), and their
    /// SRTP / unknown-SSRC drops.
    pub transports: TransportCounters,
    /// What consumers forwarded (one packet per receiver), retransmitted in answer to NACKs,
    /// and the NACKs, NACK misses and PLI/FIR they received.
    pub consumers: ConsumerCounters,
}

/// Drop counters of the worker's shared ports, per reason.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct DropCounters {
    /// Datagrams whose first byte matches no protocol (RFC 7983).
    pub unknown_protocol: u64,
    /// STUN that failed to parse.
    pub bad_stun: u64,
    /// STUN whose USERNAME names no transport.
    pub unknown_ufrag: u64,
    /// STUN rejected by a transport's ICE (integrity, role, attributes).
    pub ice_rejected: u64,
    /// DTLS/RTP/RTCP from a tuple no transport owns.
    pub unknown_tuple: u64,
    /// RTP/RTCP that failed to parse after decryption.
    pub bad_rtp: u64,
    /// SRTP/SRTCP failing authentication or replay checks.
    pub srtp: u64,
    /// RTP for an SSRC no producer has.
    pub unknown_ssrc: u64,
    /// Packets on a plain transport from an address other than its remote.
    pub plain_wrong_source: u64,
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
