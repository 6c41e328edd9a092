//! Typed values of the core's public API: what `Engine` methods return (transport, producer and
//! consumer data, stats, dumps) and the typed inputs of `connect_*`.
//!
//! The core makes no JSON. Every output type here derives `Serialize` with mediasoup's
//! camelCase names, so the Lua host / HTTP edge turns it into exactly the JSON mediasoup-client
//! and scripts read (`serde_json::to_value`, `lua.to_value`). Optional fields that mediasoup
//! leaves out are skipped when `None`; fields mediasoup prints as `null` stay `Option` without
//! skipping.

use serde::{Deserialize, Serialize};

use crate::proto::dtls::Fingerprint;
use crate::rtp_parameters::{MediaKind, RtpParameters, SctpStreamParameters};

/// A transport tuple as mediasoup prints it (`iceSelectedTuple`, a PlainTransport's `tuple`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TupleInfo {
    /// The announced address, else the local IP.
    pub local_address: String,
    /// Same as `local_address` (mediasoup prints both).
    pub local_ip: String,
    /// Local port.
    pub local_port: u16,
    /// Remote IP; absent on a PlainTransport that has no remote yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_ip: Option<String>,
    /// Remote port; absent with `remote_ip`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_port: Option<u16>,
    /// `udp` or `tcp`.
    pub protocol: &'static str,
}

/// ICE parameters of a WebRtcTransport (also what `restart_ice` returns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IceParameters {
    /// Local ufrag.
    pub username_fragment: String,
    /// Local password.
    pub password: String,
    /// Always true: ringsfu is ICE-lite.
    pub ice_lite: bool,
}

/// One local ICE candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    /// `udpcandidate` / `tcpcandidate`.
    pub foundation: String,
    /// RFC 8445 priority.
    pub priority: u32,
    /// Announced or listening IP.
    pub ip: String,
    /// Same as `ip` (newer mediasoup-client reads `address`).
    pub address: String,
    /// `udp` or `tcp`.
    pub protocol: &'static str,
    /// Port.
    pub port: u16,
    /// Always `host`.
    #[serde(rename = "type")]
    pub candidate_type: &'static str,
    /// `passive` for TCP candidates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_type: Option<&'static str>,
}

/// DTLS parameters: ours in transport data (`role: "auto"`), the remote's in
/// `connect_webrtc_transport`, an SDP offerer's from [`crate::sdp::Offer::dtls_parameters`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DtlsParameters {
    /// `auto`, `client` or `server`; a missing role means `client` (the remote is client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Certificate fingerprints (the first one is checked).
    #[serde(default)]
    pub fingerprints: Vec<Fingerprint>,
}

/// SCTP parameters of a WebRtcTransport with data channels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SctpParameters {
    /// SCTP port (5000).
    pub port: u16,
    /// Outgoing streams.
    #[serde(rename = "OS")]
    pub os: u16,
    /// Maximum incoming streams.
    #[serde(rename = "MIS")]
    pub mis: u16,
    /// Largest message accepted.
    pub max_message_size: u32,
    /// Send buffer size.
    pub send_buffer_size: u32,
    /// Always 0 at creation.
    pub sctp_buffered_amount: u32,
    /// Always true.
    pub is_data_channel: bool,
}

/// What `create_webrtc_transport` returns (mediasoup's transport data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebRtcTransportInfo {
    /// Transport id.
    pub id: String,
    /// Local ICE parameters.
    pub ice_parameters: IceParameters,
    /// Local candidates.
    pub ice_candidates: Vec<IceCandidate>,
    /// Local DTLS parameters (`role: "auto"`).
    pub dtls_parameters: DtlsParameters,
    /// Always `controlled`.
    pub ice_role: &'static str,
    /// `new` at creation.
    pub ice_state: &'static str,
    /// `new` at creation.
    pub dtls_state: &'static str,
    /// Present when SCTP is enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sctp_parameters: Option<SctpParameters>,
}

/// SRTP parameters of a PlainTransport (ours in its data, the remote's in `connect`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SrtpParameters {
    /// e.g. `AES_CM_128_HMAC_SHA1_80`.
    pub crypto_suite: String,
    /// Master key and salt, base64.
    pub key_base64: String,
}

/// What `create_plain_transport` / `connect_plain_transport` return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlainTransportInfo {
    /// Transport id.
    pub id: String,
    /// The RTP (and RTCP with rtcp-mux) tuple.
    pub tuple: TupleInfo,
    /// The RTCP tuple without rtcp-mux.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtcp_tuple: Option<TupleInfo>,
    /// Our SRTP key when SRTP is enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub srtp_parameters: Option<SrtpParameters>,
}

/// Input of `connect_plain_transport`: `{ip, port, rtcpPort, srtpParameters}` (ip/port are
/// required unless the transport is comedia; rtcpPort without rtcp-mux; srtpParameters when
/// SRTP is enabled). Ports are checked for 1..=65535 by the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlainConnectParams {
    /// Remote IP.
    #[serde(default)]
    pub ip: Option<String>,
    /// Remote RTP port.
    #[serde(default)]
    pub port: Option<u64>,
    /// Remote RTCP port (without rtcp-mux).
    #[serde(default)]
    pub rtcp_port: Option<u64>,
    /// The remote's SRTP key.
    #[serde(default)]
    pub srtp_parameters: Option<SrtpParameters>,
}

/// What `produce` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerInfo {
    /// Producer id.
    pub id: String,
    /// audio / video.
    pub kind: MediaKind,
    /// `simple` or `simulcast`.
    #[serde(rename = "type")]
    pub producer_type: &'static str,
}

/// What `consume` / `consume_for_offerer` return (mediasoup's consumer data).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerInfo {
    /// Consumer id.
    pub id: String,
    /// Its producer's id.
    pub producer_id: String,
    /// audio / video.
    pub kind: MediaKind,
    /// The consumer's RTP parameters (what the receiver must accept).
    pub rtp_parameters: RtpParameters,
    /// `simple` or `simulcast`.
    #[serde(rename = "type")]
    pub consumer_type: &'static str,
    /// Whether the producer is paused.
    pub producer_paused: bool,
    /// Whether the consumer starts paused.
    pub paused: bool,
}

/// What `produce_data` returns (and `DataProducer::info`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataProducerInfo {
    /// Data producer id.
    pub id: String,
    /// `sctp` or `direct`.
    #[serde(rename = "type")]
    pub data_producer_type: &'static str,
    /// Channel label.
    pub label: String,
    /// Channel sub-protocol.
    pub protocol: String,
    /// Paused.
    pub paused: bool,
    /// Absent for a direct data producer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sctp_stream_parameters: Option<SctpStreamParameters>,
}

/// What `consume_data` returns (and `DataConsumer::info`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataConsumerInfo {
    /// Data consumer id.
    pub id: String,
    /// Its data producer's id.
    pub data_producer_id: String,
    /// `sctp` or `direct`.
    #[serde(rename = "type")]
    pub data_consumer_type: &'static str,
    /// Channel label.
    pub label: String,
    /// Channel sub-protocol.
    pub protocol: String,
    /// Paused by the API.
    pub paused: bool,
    /// Mirrors the data producer.
    pub data_producer_paused: bool,
    /// Absent for a direct data consumer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sctp_stream_parameters: Option<SctpStreamParameters>,
}

/// One entry of `data_producer_stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataProducerStats {
    /// `data-producer`.
    #[serde(rename = "type")]
    pub stats_type: &'static str,
    /// Wall-clock milliseconds.
    pub timestamp: u64,
    /// Channel label.
    pub label: String,
    /// Channel sub-protocol.
    pub protocol: String,
    /// Messages received.
    pub messages_received: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
}

/// One entry of `data_consumer_stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataConsumerStats {
    /// `data-consumer`.
    #[serde(rename = "type")]
    pub stats_type: &'static str,
    /// Wall-clock milliseconds.
    pub timestamp: u64,
    /// Channel label.
    pub label: String,
    /// Channel sub-protocol.
    pub protocol: String,
    /// Messages sent.
    pub messages_sent: u64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Messages that could not be sent.
    pub messages_dropped: u64,
}

/// The connection state a transport's stats and dump both show: ICE/DTLS state and the
/// selected tuple of a WebRtcTransport, the tuples of a PlainTransport (the other kind's fields
/// absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransportState {
    /// WebRTC: ICE state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ice_state: Option<&'static str>,
    /// WebRTC: DTLS state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtls_state: Option<&'static str>,
    /// WebRTC: the selected tuple once ICE has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ice_selected_tuple: Option<TupleInfo>,
    /// Plain: the RTP tuple.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tuple: Option<TupleInfo>,
    /// Plain: the RTCP tuple without rtcp-mux.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtcp_tuple: Option<TupleInfo>,
}

/// One entry of `transport_stats` (mediasoup-like fields; the WebRTC-only and plain-only ones
/// are absent on the other kind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransportStats {
    /// `webrtc-transport` or `plain-rtp-transport`.
    #[serde(rename = "type")]
    pub stats_type: &'static str,
    /// Transport id.
    pub transport_id: String,
    /// Wall-clock milliseconds.
    pub timestamp: u64,
    /// RTP packets received.
    pub rtp_packets_received: u64,
    /// RTP bytes received.
    pub bytes_received: u64,
    /// RTP packets sent.
    pub rtp_packets_sent: u64,
    /// RTP bytes sent.
    pub bytes_sent: u64,
    /// RTCP packets received.
    pub rtcp_packets_received: u64,
    /// RTCP packets sent.
    pub rtcp_packets_sent: u64,
    /// Packets dropped by SRTP/SRTCP unprotect.
    pub srtp_drops: u64,
    /// RTP packets of no known SSRC/MID/RID.
    pub unknown_ssrc_drops: u64,
    /// WebRTC: `controlled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ice_role: Option<&'static str>,
    /// ICE/DTLS state (WebRTC) or tuples (plain).
    #[serde(flatten)]
    pub state: TransportState,
    /// Plain: whether RTCP shares the RTP port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtcp_mux: Option<bool>,
    /// Plain: comedia mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comedia: Option<bool>,
    /// The send-side estimate (bits/s) once transport-cc feedback arrived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_outgoing_bitrate: Option<u64>,
    /// The receive-side estimate (bits/s) announced by REMB to a remote that negotiated REMB
    /// (abs-send-time) instead of transport-cc.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_incoming_bitrate: Option<u64>,
    /// The cap set with `setMaxOutgoingBitrate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_outgoing_bitrate: Option<u64>,
    /// The cap set with `setMaxIncomingBitrate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_incoming_bitrate: Option<u64>,
}

/// Receive stats of one producer stream (`inbound-rtp`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundRtpStats {
    /// `inbound-rtp`.
    #[serde(rename = "type")]
    pub stats_type: &'static str,
    /// Wall-clock milliseconds.
    pub timestamp: u64,
    /// audio / video.
    pub kind: MediaKind,
    /// Media SSRC (null until learned from a RID).
    pub ssrc: Option<u32>,
    /// RTX SSRC (null without RTX).
    pub rtx_ssrc: Option<u32>,
    /// RID (null without simulcast RIDs).
    pub rid: Option<String>,
    /// First codec's MIME type.
    pub mime_type: String,
    /// Packets received.
    pub packet_count: u64,
    /// Bytes received.
    pub byte_count: u64,
    /// RTX packets received.
    pub packets_retransmitted: u64,
    /// RTX packets of already received packets (not forwarded).
    pub packets_duplicated: u64,
    /// Cumulative packets lost (RFC 3550).
    pub packets_lost: i64,
    /// Interarrival jitter (RTP timestamp units).
    pub jitter: u32,
    /// 0..10 score.
    pub score: u8,
}

/// Send stats of a consumer (`outbound-rtp`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboundRtpStats {
    /// `outbound-rtp`.
    #[serde(rename = "type")]
    pub stats_type: &'static str,
    /// Wall-clock milliseconds.
    pub timestamp: u64,
    /// audio / video.
    pub kind: MediaKind,
    /// Sending SSRC.
    pub ssrc: u32,
    /// First codec's MIME type.
    pub mime_type: String,
    /// Packets sent.
    pub packet_count: u64,
    /// Bytes sent.
    pub byte_count: u64,
    /// Retransmissions sent.
    pub packets_retransmitted: u64,
    /// NACKs received.
    pub nack_count: u64,
    /// Keyframe requests received.
    pub pli_count: u64,
    /// Last receiver report's fraction lost (0..255).
    pub fraction_lost: u8,
    /// 0..10 score.
    pub score: u8,
    /// Milliseconds, from the last receiver report with a round trip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round_trip_time: Option<f64>,
}

/// One entry of `consumer_stats`: its own `outbound-rtp`, then its producer's `inbound-rtp`s.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RtpStreamStats {
    /// The consumer's send side.
    Outbound(OutboundRtpStats),
    /// A stream of the consumer's producer.
    Inbound(InboundRtpStats),
}

/// What `consumer_dump` returns: paused flags, layers, counters.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerDump {
    /// Consumer id.
    pub id: String,
    /// Producer id.
    pub producer_id: String,
    /// audio / video.
    pub kind: MediaKind,
    /// `simple` or `simulcast`.
    #[serde(rename = "type")]
    pub consumer_type: &'static str,
    /// Paused by the API.
    pub paused: bool,
    /// Producer paused.
    pub producer_paused: bool,
    /// Its RTP parameters.
    pub rtp_parameters: RtpParameters,
    /// Spatial layer being sent (null when none).
    pub current_layer: Option<usize>,
    /// Spatial layer wanted.
    pub target_layer: usize,
    /// VP8 temporal layer being sent (null without temporal layer ids or when nothing is sent).
    pub current_temporal_layer: Option<u8>,
    /// Temporal layer wanted (3: all).
    pub target_temporal_layer: u8,
    /// Packets not sent because their temporal layer was above the one forwarded.
    pub temporal_drops: u64,
    /// Priority (1..255).
    pub priority: u8,
    /// Packets sent.
    pub packets: u64,
    /// Retransmissions sent.
    pub retransmitted: u64,
    /// NACKed packets not in the store.
    pub nack_misses: u64,
}

/// What `transport_dump` returns: ids of its producers/consumers and its state (ICE/DTLS and
/// selected tuple of a WebRtcTransport; tuples and SRTP key of a PlainTransport).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransportDump {
    /// Transport id.
    pub id: String,
    /// Its producers.
    pub producer_ids: Vec<String>,
    /// Its consumers.
    pub consumer_ids: Vec<String>,
    /// ICE/DTLS state (WebRTC) or tuples (plain).
    #[serde(flatten)]
    pub state: TransportState,
    /// Plain: our SRTP key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub srtp_parameters: Option<SrtpParameters>,
}
