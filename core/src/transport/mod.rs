//! Transports: the per-peer connection state the engine keeps for a WebRtcTransport (ICE-lite, DTLS,
//! SRTP on the worker's shared port) or a PlainTransport (RTP on its own port, optional SDES-keyed SRTP).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use uuid::Uuid;

use crate::data::StreamIdAllocator;
use crate::dtls::{DtlsRole, DtlsSession, Fingerprint};
use crate::ice::IceServer;
use crate::io::{Route, SocketId};
use crate::keys::{ConsumerKey, DataConsumerKey, DataProducerKey, ProducerKey, RouterKey};
use crate::sctp::SctpAssociation;
use crate::srtp::SrtpContext;
use crate::tuple::{Protocol, TransportTuple};

/// DTLS state as mediasoup names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsState {
    /// connect() not called or handshake not started.
    New,
    /// Handshake running.
    Connecting,
    /// Handshake done, SRTP keys in place.
    Connected,
    /// Handshake failed (bad fingerprint, timeout, alert).
    Failed,
    /// Closed by the peer or by us.
    Closed,
}

impl DtlsState {
    /// mediasoup's lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DtlsState::New => "new",
            DtlsState::Connecting => "connecting",
            DtlsState::Connected => "connected",
            DtlsState::Failed => "failed",
            DtlsState::Closed => "closed",
        }
    }
}

/// Counters of one transport (plain integers owned by the worker).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TransportCounters {
    /// RTP packets received and decrypted.
    pub rtp_packets_received: u64,
    /// RTP bytes received.
    pub rtp_bytes_received: u64,
    /// RTP packets sent.
    pub rtp_packets_sent: u64,
    /// RTP bytes sent.
    pub rtp_bytes_sent: u64,
    /// RTCP packets received.
    pub rtcp_packets_received: u64,
    /// RTCP packets sent.
    pub rtcp_packets_sent: u64,
    /// SRTP/SRTCP packets that failed authentication or replay checks.
    pub srtp_drops: u64,
    /// RTP packets for no known producer stream.
    pub unknown_ssrc_drops: u64,
}

impl TransportCounters {
    /// Adds `o` into `self` (the worker's running totals, [`crate::metrics::TrafficTotals`]).
    pub fn add(&mut self, o: &TransportCounters) {
        self.rtp_packets_received += o.rtp_packets_received;
        self.rtp_bytes_received += o.rtp_bytes_received;
        self.rtp_packets_sent += o.rtp_packets_sent;
        self.rtp_bytes_sent += o.rtp_bytes_sent;
        self.rtcp_packets_received += o.rtcp_packets_received;
        self.rtcp_packets_sent += o.rtcp_packets_sent;
        self.srtp_drops += o.srtp_drops;
        self.unknown_ssrc_drops += o.unknown_ssrc_drops;
    }
}

/// WebRtcTransport-specific state.
pub struct WebRtcState {
    /// The ICE-lite agent.
    pub ice: IceServer,
    /// Our role once decided.
    pub dtls_role: Option<DtlsRole>,
    /// The remote fingerprint from connect().
    pub remote_fingerprint: Option<Fingerprint>,
    /// The running DTLS session.
    pub dtls: Option<DtlsSession>,
    /// DTLS state.
    pub dtls_state: DtlsState,
    /// DTLS datagrams that arrived before connect() (replayed when the session starts).
    /// The session itself is sans-IO (`crate::dtls`): the engine drives it, no task runs.
    pub early_dtls: Vec<Vec<u8>>,
    /// Whether SCTP was requested at creation.
    pub enable_sctp: bool,
    /// Client's SCTP numStreams {OS, MIS}.
    pub sctp_streams: Option<(u16, u16)>,
    /// The SCTP association (data channels), once DTLS is up and SCTP was requested.
    pub sctp: Option<SctpAssociation>,
    /// Outgoing stream ids for data consumers.
    pub sctp_out_streams: Option<StreamIdAllocator>,
}

/// PlainTransport-specific state.
pub struct PlainState {
    /// RTP socket (also RTCP with rtcp-mux).
    pub socket: SocketId,
    /// The RTP socket's local address.
    pub local: SocketAddr,
    /// Separate RTCP socket when rtcp-mux is off.
    pub rtcp_socket: Option<(SocketId, SocketAddr)>,
    /// Learn the remote from the first packet.
    pub comedia: bool,
    /// Remote RTP address (connected or learned).
    pub remote: Option<SocketAddr>,
    /// Remote RTCP address.
    pub remote_rtcp: Option<SocketAddr>,
    /// SRTP enabled with SDES keys.
    pub enable_srtp: bool,
    /// Our SRTP crypto suite name and base64 key (key + salt) when SRTP is on.
    pub local_srtp: Option<(String, String)>,
}

/// What kind of transport.
pub enum TransportKind {
    /// ICE + DTLS + SRTP over the worker's shared ports.
    WebRtc(Box<WebRtcState>),
    /// Plain RTP/RTCP over UDP.
    Plain(Box<PlainState>),
}

/// One transport owned by a worker.
pub struct Transport {
    /// Public id.
    pub id: Uuid,
    /// Router key.
    pub router: RouterKey,
    /// WebRTC or plain.
    pub kind: TransportKind,
    /// Inbound SRTP (remote → us); `None` until keys exist (plain RTP: never).
    pub srtp_in: Option<SrtpContext>,
    /// Outbound SRTP.
    pub srtp_out: Option<SrtpContext>,
    /// Where media to this peer goes; `None` until known.
    pub route: Option<Route>,
    /// Where RTCP to this peer goes (differs only for non-mux plain transports).
    pub rtcp_route: Option<Route>,
    /// Producer keys on this transport.
    pub producers: Vec<ProducerKey>,
    /// Consumer keys on this transport.
    pub consumers: Vec<ConsumerKey>,
    /// Data producer keys on this transport.
    pub data_producers: Vec<DataProducerKey>,
    /// Data consumer keys on this transport.
    pub data_consumers: Vec<DataConsumerKey>,
    /// Incoming SCTP stream id → data producer key.
    pub sctp_in_streams: HashMap<u16, DataProducerKey>,
    /// Incoming SSRC → (producer key, stream index, is RTX).
    pub ssrc_table: HashMap<u32, (ProducerKey, usize, bool)>,
    /// MID → producer key, for streams that arrive with no signaled SSRC.
    pub mid_table: HashMap<String, ProducerKey>,
    /// Header-extension ids the remote uses for mid, rid and repaired-rid (learned from producers).
    pub ext_mid: u8,
    /// rtp-stream-id extension id.
    pub ext_rid: u8,
    /// repaired-rtp-stream-id extension id.
    pub ext_rrid: u8,
    /// Counters.
    pub counters: TransportCounters,
    /// Creation time.
    pub created: Instant,
    /// The SSRC we use as sender in RTCP feedback.
    pub rtcp_ssrc: u32,
    /// Congestion control: transport-cc feedback for what we receive, incoming bitrate limit.
    pub bwe: crate::bwe::TransportBwe,
    /// MIDs of the consumers on this transport (`"0"`, `"1"`, ...).
    pub mids: crate::ortc::ConsumerMidAllocator,
    /// The demultiplexer entries this transport registered, so closing it removes exactly those.
    pub demux: DemuxKeys,
}

/// The entries a transport owns in the engine's demultiplexing maps.
#[derive(Debug, Default)]
pub struct DemuxKeys {
    /// ICE usernames fragments (the current one and, during an ICE restart, the previous one).
    pub ufrags: Vec<String>,
    /// (worker socket, remote address) paths validated by ICE.
    pub udp_paths: Vec<(SocketId, SocketAddr)>,
    /// ICE-TCP connections validated by ICE.
    pub tcp_conns: Vec<u32>,
    /// A PlainTransport's own sockets (RTP and, without rtcp-mux, RTCP).
    pub plain_sockets: Vec<SocketId>,
}

/// Why an incoming packet was not decrypted (the engine counts both as SRTP drops).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InboundSrtpError {
    /// The transport needs SRTP (WebRTC, or plain with `enableSrtp`) but has no keys yet.
    #[error("no SRTP keys yet")]
    NoKeys,
    /// Authentication, replay or length check failed.
    #[error(transparent)]
    Srtp(#[from] crate::srtp::SrtpError),
}

impl Transport {
    /// Whether packets from the remote must be SRTP: always on a WebRtcTransport, on a
    /// PlainTransport when created with `enableSrtp`.
    pub fn requires_srtp(&self) -> bool {
        match &self.kind {
            TransportKind::WebRtc(_) => true,
            TransportKind::Plain(p) => p.enable_srtp,
        }
    }

    /// Decrypts an incoming SRTP packet (SRTCP with `rtcp`) in place and returns its clear length;
    /// a transport without SRTP returns `len` unchanged. Before keys exist an SRTP transport refuses
    /// the packet, as mediasoup does. A failed check is counted in `counters.srtp_drops`. No
    /// allocation (packet path).
    pub fn unprotect_incoming(
        &mut self,
        buf: &mut [u8],
        len: usize,
        rtcp: bool,
    ) -> Result<usize, InboundSrtpError> {
        let Some(ctx) = self.srtp_in.as_mut() else {
            return if self.requires_srtp() {
                Err(InboundSrtpError::NoKeys)
            } else {
                Ok(len)
            };
        };
        let out = if rtcp {
            ctx.unprotect_rtcp(buf, len)
        } else {
            ctx.unprotect_rtp(buf, len)
        };
        out.map_err(|e| {
            self.counters.srtp_drops += 1;
            e.into()
        })
    }

    /// The WebRTC state, if this is a WebRtcTransport.
    pub fn webrtc(&self) -> Option<&WebRtcState> {
        match &self.kind {
            TransportKind::WebRtc(w) => Some(w),
            TransportKind::Plain(_) => None,
        }
    }

    /// Mutable WebRTC state.
    pub fn webrtc_mut(&mut self) -> Option<&mut WebRtcState> {
        match &mut self.kind {
            TransportKind::WebRtc(w) => Some(w),
            TransportKind::Plain(_) => None,
        }
    }

    /// Whether media can flow now (keys in place where needed and a destination known).
    pub fn can_send(&self) -> bool {
        self.route.is_some()
            && match &self.kind {
                TransportKind::WebRtc(_) => self.srtp_out.is_some(),
                TransportKind::Plain(p) => !p.enable_srtp || self.srtp_out.is_some(),
            }
    }
}

/// Converts a tuple into the route media takes to reach it.
pub fn route_for(tuple: &TransportTuple, socket: SocketId, tcp_conn: Option<u32>) -> Route {
    match (tuple.protocol, tcp_conn) {
        (Protocol::Tcp, Some(conn)) => Route::Tcp { conn },
        _ => Route::Udp {
            socket,
            dest: tuple.remote,
        },
    }
}

/// A tuple as mediasoup prints it (`iceSelectedTuple`).
pub fn tuple_info(t: &TransportTuple, announced: Option<&str>) -> crate::api::TupleInfo {
    let local = announced
        .map(str::to_string)
        .unwrap_or_else(|| t.local.ip().to_string());
    crate::api::TupleInfo {
        local_address: local.clone(),
        local_ip: local,
        local_port: t.local.port(),
        remote_ip: Some(t.remote.ip().to_string()),
        remote_port: Some(t.remote.port()),
        protocol: t.protocol.as_str(),
    }
}
