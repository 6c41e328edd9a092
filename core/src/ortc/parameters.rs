//! RTP and SCTP parameter / capability types, wire-compatible with mediasoup 3.14's JSON.
//!
//! Field names follow mediasoup exactly (camelCase, `OS`/`MIS` for SCTP stream counts).
//! Optional fields that are `None` are omitted when serializing, and unknown input fields are
//! ignored, so objects produced by mediasoup-client deserialize and what we emit is accepted by
//! it. Deserializing checks the shape (types, integer ranges); what a type cannot express and
//! mediasoup's defaulting rules live in [`crate::ortc`] (`normalize_rtp_parameters`,
//! `normalize_rtp_capabilities`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One codec parameter value (`a=fmtp` `key=value`): a number or a string, as in mediasoup's
/// JSON. Deserializing accepts integers, floats, strings and `null` (→ `""`, as mediasoup);
/// anything else is an error.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// An integer (`packetization-mode: 1`, `apt: 96`).
    Int(i64),
    /// A number with a fraction (or beyond the i64 range).
    Float(f64),
    /// A string (`profile-level-id: "42e01f"`).
    String(String),
}

impl ParamValue {
    /// The value as a number: a number, or a string holding one (`"1"`), which SDP-derived
    /// JSON from different clients mixes.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ParamValue::Int(n) => Some(*n as f64),
            ParamValue::Float(f) => Some(*f),
            ParamValue::String(s) => s.trim().parse().ok(),
        }
    }

    /// The value as a non-negative integer if it is an integer number (strings are not read).
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            ParamValue::Int(n) => u64::try_from(*n).ok(),
            _ => None,
        }
    }

    /// The value if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            ParamValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// JavaScript truthiness (mediasoup's `params[key] || 0`): not 0 and not `""`.
    pub fn is_truthy(&self) -> bool {
        match self {
            ParamValue::Int(n) => *n != 0,
            ParamValue::Float(f) => *f != 0.0,
            ParamValue::String(s) => !s.is_empty(),
        }
    }
}

/// As written in an `a=fmtp` line (`96`, `1.5`, `42e01f`).
impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Int(n) => write!(f, "{n}"),
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::String(s) => f.write_str(s),
        }
    }
}

impl From<&str> for ParamValue {
    fn from(s: &str) -> Self {
        ParamValue::String(s.to_owned())
    }
}

impl From<String> for ParamValue {
    fn from(s: String) -> Self {
        ParamValue::String(s)
    }
}

impl From<i64> for ParamValue {
    fn from(n: i64) -> Self {
        ParamValue::Int(n)
    }
}

impl From<u8> for ParamValue {
    fn from(n: u8) -> Self {
        ParamValue::Int(n.into())
    }
}

impl From<u32> for ParamValue {
    fn from(n: u32) -> Self {
        ParamValue::Int(n.into())
    }
}

impl Serialize for ParamValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ParamValue::Int(n) => s.serialize_i64(*n),
            ParamValue::Float(f) => s.serialize_f64(*f),
            ParamValue::String(v) => s.serialize_str(v),
        }
    }
}

impl<'de> Deserialize<'de> for ParamValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ParamValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_i64<E>(self, n: i64) -> Result<ParamValue, E> {
                Ok(ParamValue::Int(n))
            }
            fn visit_u64<E>(self, n: u64) -> Result<ParamValue, E> {
                Ok(i64::try_from(n).map_or(ParamValue::Float(n as f64), ParamValue::Int))
            }
            fn visit_f64<E>(self, f: f64) -> Result<ParamValue, E> {
                Ok(ParamValue::Float(f))
            }
            fn visit_str<E>(self, s: &str) -> Result<ParamValue, E> {
                Ok(ParamValue::String(s.to_owned()))
            }
            fn visit_string<E>(self, s: String) -> Result<ParamValue, E> {
                Ok(ParamValue::String(s))
            }
            fn visit_unit<E>(self) -> Result<ParamValue, E> {
                Ok(ParamValue::String(String::new()))
            }
            fn visit_none<E>(self) -> Result<ParamValue, E> {
                Ok(ParamValue::String(String::new()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Codec-specific parameters (`a=fmtp` key/values, or a header extension's parameters): a
/// JSON object of string or number values, kept whole so unknown parameters round-trip
/// untouched. Keys are ordered (as a JSON object here always was).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CodecParameters(BTreeMap<String, ParamValue>);

impl CodecParameters {
    /// No parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&ParamValue> {
        self.0.get(key)
    }

    /// Sets `key`, returning the value it replaces.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: impl Into<ParamValue>,
    ) -> Option<ParamValue> {
        self.0.insert(key.into(), value.into())
    }

    /// Sets `key` unless it is already set.
    pub fn insert_if_absent(&mut self, key: &str, value: impl Into<ParamValue>) {
        self.0.entry(key.to_owned()).or_insert_with(|| value.into());
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) -> Option<ParamValue> {
        self.0.remove(key)
    }

    /// Whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The parameters in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &ParamValue)> {
        self.0.iter()
    }

    /// `key` read as a payload type (`apt`): an integer, or a string holding one, in 0..=255.
    pub fn payload_type(&self, key: &str) -> Option<u8> {
        match self.get(key)? {
            ParamValue::Int(n) => u8::try_from(*n).ok(),
            ParamValue::String(s) => s.trim().parse().ok(),
            ParamValue::Float(_) => None,
        }
    }

    /// `key` read as a non-negative integer: an integer, or a string holding one.
    pub fn uint(&self, key: &str) -> Option<u64> {
        match self.get(key)? {
            ParamValue::Int(n) => u64::try_from(*n).ok(),
            ParamValue::String(s) => s.trim().parse().ok(),
            ParamValue::Float(_) => None,
        }
    }
}

impl<K: Into<String>, V: Into<ParamValue>> FromIterator<(K, V)> for CodecParameters {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        CodecParameters(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl<K: Into<String>, V: Into<ParamValue>> Extend<(K, V)> for CodecParameters {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        self.0
            .extend(iter.into_iter().map(|(k, v)| (k.into(), v.into())));
    }
}

impl IntoIterator for CodecParameters {
    type Item = (String, ParamValue);
    type IntoIter = std::collections::btree_map::IntoIter<String, ParamValue>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Well-known RTP header extension URIs.
pub mod uri {
    /// `urn:ietf:params:rtp-hdrext:sdes:mid` (RFC 8843).
    pub const MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
    /// `urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id` (RID, RFC 8852).
    pub const RTP_STREAM_ID: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
    /// `urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id` (RRID, RFC 8852).
    pub const REPAIRED_RTP_STREAM_ID: &str =
        "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id";
    /// Google absolute send time.
    pub const ABS_SEND_TIME: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
    /// Transport-wide congestion control sequence number.
    pub const TRANSPORT_WIDE_CC: &str =
        "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
    /// Frame marking, draft 07 URI.
    pub const FRAME_MARKING_07: &str =
        "http://tools.ietf.org/html/draft-ietf-avtext-framemarking-07";
    /// Frame marking, final URI.
    pub const FRAME_MARKING: &str = "urn:ietf:params:rtp-hdrext:framemarking";
    /// Client-to-mixer audio level (RFC 6464).
    pub const AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
    /// Coordination of video orientation (3GPP).
    pub const VIDEO_ORIENTATION: &str = "urn:3gpp:video-orientation";
    /// Transmission time offset (RFC 5450).
    pub const TOFFSET: &str = "urn:ietf:params:rtp-hdrext:toffset";
    /// Absolute capture time.
    pub const ABS_CAPTURE_TIME: &str =
        "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time";
    /// Playout delay.
    pub const PLAYOUT_DELAY: &str = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay";
}

/// Media kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    /// Audio.
    Audio,
    /// Video.
    Video,
}

impl MediaKind {
    /// The JSON / mimeType spelling (`"audio"` or `"video"`).
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }

    /// Kind from a mimeType such as `video/VP8` (prefix compared case-insensitively; a
    /// non-empty subtype is required, as in mediasoup's `^(audio|video)/(.+)`).
    pub fn from_mime_type(mime_type: &str) -> Option<MediaKind> {
        let (prefix, subtype) = mime_type.split_once('/')?;
        if subtype.is_empty() {
            return None;
        }
        if prefix.eq_ignore_ascii_case("audio") {
            Some(MediaKind::Audio)
        } else if prefix.eq_ignore_ascii_case("video") {
            Some(MediaKind::Video)
        } else {
            None
        }
    }
}

/// Direction of a header extension capability, from the SFU's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RtpHeaderExtensionDirection {
    /// Sent and received.
    #[default]
    SendRecv,
    /// Only sent by the SFU.
    SendOnly,
    /// Only received by the SFU (never put on consumers).
    RecvOnly,
    /// Neither.
    Inactive,
}

/// One RTCP feedback mechanism (`a=rtcp-fb`), e.g. `{type:"nack", parameter:"pli"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RtcpFeedback {
    /// Feedback type (`nack`, `ccm`, `goog-remb`, `transport-cc`, ...).
    #[serde(rename = "type")]
    pub fb_type: String,
    /// Feedback parameter (`""`, `pli`, `fir`, ...).
    #[serde(default)]
    pub parameter: String,
}

impl RtcpFeedback {
    /// Builds a feedback entry.
    pub fn new(fb_type: &str, parameter: &str) -> Self {
        RtcpFeedback {
            fb_type: fb_type.to_owned(),
            parameter: parameter.to_owned(),
        }
    }
}

/// A codec in RTP capabilities (router capabilities or a client's receive capabilities).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpCodecCapability {
    /// Media kind; always derived from the mimeType prefix by validation.
    pub kind: MediaKind,
    /// e.g. `audio/opus`, `video/VP8`, `video/rtx`; compared lower-cased.
    pub mime_type: String,
    /// Preferred payload type (always present in router capabilities).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_payload_type: Option<u8>,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channel count: audio only (default 1); `None` for video.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<u8>,
    /// Codec-specific parameters.
    #[serde(default)]
    pub parameters: CodecParameters,
    /// Supported RTCP feedback.
    #[serde(default)]
    pub rtcp_feedback: Vec<RtcpFeedback>,
}

impl RtpCodecCapability {
    /// Whether this is an RTX codec (mimeType ends in `/rtx`, case-insensitive).
    pub fn is_rtx(&self) -> bool {
        is_rtx_mime_type(&self.mime_type)
    }
}

/// A header extension in RTP capabilities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpHeaderExtension {
    /// Media kind the extension applies to.
    pub kind: MediaKind,
    /// Extension URI.
    pub uri: String,
    /// Preferred id (the SFU's canonical id in router capabilities).
    pub preferred_id: u8,
    /// Whether encryption (RFC 6904) is preferred.
    #[serde(default)]
    pub preferred_encrypt: bool,
    /// Direction from the SFU's point of view.
    #[serde(default)]
    pub direction: RtpHeaderExtensionDirection,
}

/// RTP capabilities: what an endpoint (or the router) can receive.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpCapabilities {
    /// Media and RTX codecs.
    #[serde(default)]
    pub codecs: Vec<RtpCodecCapability>,
    /// Header extensions.
    #[serde(default)]
    pub header_extensions: Vec<RtpHeaderExtension>,
}

/// A codec in RTP parameters (a producer's or consumer's actual codec list).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpCodecParameters {
    /// e.g. `audio/opus`.
    pub mime_type: String,
    /// Payload type.
    pub payload_type: u8,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channel count: audio only (default 1); `None` for video.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<u8>,
    /// Codec-specific parameters.
    #[serde(default)]
    pub parameters: CodecParameters,
    /// Negotiated RTCP feedback.
    #[serde(default)]
    pub rtcp_feedback: Vec<RtcpFeedback>,
}

impl RtpCodecParameters {
    /// Whether this is an RTX codec.
    pub fn is_rtx(&self) -> bool {
        is_rtx_mime_type(&self.mime_type)
    }

    /// The `apt` parameter (associated payload type) if present and a valid payload type.
    pub fn apt(&self) -> Option<u8> {
        self.parameters.payload_type("apt")
    }

    /// The media kind derived from the mimeType.
    pub fn kind(&self) -> Option<MediaKind> {
        MediaKind::from_mime_type(&self.mime_type)
    }
}

/// A header extension in RTP parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpHeaderExtensionParameters {
    /// Extension URI.
    pub uri: String,
    /// Extension id (never 0).
    pub id: u8,
    /// Whether the extension is encrypted.
    #[serde(default)]
    pub encrypt: bool,
    /// Extension parameters.
    #[serde(default)]
    pub parameters: CodecParameters,
}

/// The RTX stream of an encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RtpEncodingRtx {
    /// RTX SSRC.
    pub ssrc: u32,
}

/// One encoding (RTP stream) of a producer or consumer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpEncodingParameters {
    /// Media SSRC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssrc: Option<u32>,
    /// RID (simulcast stream id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rid: Option<String>,
    /// Codec payload type this encoding uses (first media codec if unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codec_payload_type: Option<u8>,
    /// RTX stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtx: Option<RtpEncodingRtx>,
    /// Discontinuous transmission (validation defaults it to `false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtx: Option<bool>,
    /// Scalability mode such as `L1T3` or `L3T3_KEY`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scalability_mode: Option<String>,
    /// Resolution downscale factor (sender hint, not interpreted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_resolution_down_by: Option<f64>,
    /// Maximum bitrate in bps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bitrate: Option<u32>,
    /// Maximum frame rate (sender hint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_framerate: Option<f64>,
    /// Adaptive packet time (sender hint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adaptive_ptime: Option<bool>,
    /// Priority (`very-low`, `low`, `medium`, `high`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    /// Network priority (`very-low`, `low`, `medium`, `high`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_priority: Option<String>,
    /// Whether the encoding is active (sender hint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

/// RTCP parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtcpParameters {
    /// Canonical name (shared by all producers of a transport for lip-sync).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cname: Option<String>,
    /// Reduced-size RTCP (RFC 5506); mediasoup always ends up with `true`.
    #[serde(default = "default_true")]
    pub reduced_size: bool,
    /// RTCP multiplexed with RTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mux: Option<bool>,
}

impl Default for RtcpParameters {
    fn default() -> Self {
        RtcpParameters {
            cname: None,
            reduced_size: true,
            mux: None,
        }
    }
}

fn default_true() -> bool {
    true
}

/// RTP parameters of a producer or consumer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpParameters {
    /// MID (m-section id); consumers get one per transport.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mid: Option<String>,
    /// Codecs; the first is the media codec in use.
    pub codecs: Vec<RtpCodecParameters>,
    /// Header extensions.
    #[serde(default)]
    pub header_extensions: Vec<RtpHeaderExtensionParameters>,
    /// Encodings (RTP streams).
    #[serde(default)]
    pub encodings: Vec<RtpEncodingParameters>,
    /// RTCP parameters.
    #[serde(default)]
    pub rtcp: RtcpParameters,
}

/// Parsed scalability mode (`L<spatial>T<temporal>[_KEY]` or `S...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScalabilityMode {
    /// Number of spatial layers (1 if unparsable or absent).
    pub spatial_layers: u8,
    /// Number of temporal layers (1 if unparsable or absent).
    pub temporal_layers: u8,
    /// Whether it is a K-SVC mode (`_KEY` suffix).
    pub ksvc: bool,
}

impl Default for ScalabilityMode {
    fn default() -> Self {
        ScalabilityMode {
            spatial_layers: 1,
            temporal_layers: 1,
            ksvc: false,
        }
    }
}

impl ScalabilityMode {
    /// Parses like mediasoup's `^[LS]([1-9]\d?)T([1-9]\d?)(_KEY)?` (a prefix match: trailing
    /// text is ignored). Returns `None` when it does not match.
    pub fn parse(mode: &str) -> Option<ScalabilityMode> {
        let bytes = mode.as_bytes();
        let first = *bytes.first()?;
        if first != b'L' && first != b'S' {
            return None;
        }
        let (spatial, rest) = parse_layer_count(bytes.get(1..)?)?;
        if rest.first() != Some(&b'T') {
            return None;
        }
        let (temporal, rest) = parse_layer_count(rest.get(1..)?)?;
        Some(ScalabilityMode {
            spatial_layers: spatial,
            temporal_layers: temporal,
            ksvc: rest.starts_with(b"_KEY"),
        })
    }

    /// Like [`ScalabilityMode::parse`] but maps missing/unparsable to 1 spatial, 1 temporal.
    pub fn parse_or_default(mode: Option<&str>) -> ScalabilityMode {
        mode.and_then(ScalabilityMode::parse).unwrap_or_default()
    }
}

/// One or two decimal digits, the first non-zero.
fn parse_layer_count(bytes: &[u8]) -> Option<(u8, &[u8])> {
    let d0 = *bytes.first()?;
    if !(b'1'..=b'9').contains(&d0) {
        return None;
    }
    match bytes.get(1) {
        Some(d1) if d1.is_ascii_digit() => Some((
            (d0 - b'0') * 10 + (d1 - b'0'),
            bytes.get(2..).unwrap_or(&[]),
        )),
        _ => Some((d0 - b'0', bytes.get(1..).unwrap_or(&[]))),
    }
}

/// Whether a mimeType denotes RTX (`<kind>/rtx`, case-insensitive, non-empty kind).
pub fn is_rtx_mime_type(mime_type: &str) -> bool {
    let n = mime_type.len();
    n > 4 && mime_type.is_char_boundary(n - 4) && mime_type[n - 4..].eq_ignore_ascii_case("/rtx")
}

// ---------------------------------------------------------------------------------------------
// SCTP

/// SCTP stream counts (`OS` outgoing, `MIS` max incoming).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumSctpStreams {
    /// Initially requested number of outgoing streams.
    #[serde(rename = "OS")]
    pub os: u16,
    /// Maximum number of incoming streams.
    #[serde(rename = "MIS")]
    pub mis: u16,
}

impl Default for NumSctpStreams {
    fn default() -> Self {
        NumSctpStreams {
            os: 1024,
            mis: 1024,
        }
    }
}

/// SCTP capabilities sent by a client (`sctpCapabilities`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SctpCapabilities {
    /// Stream counts.
    pub num_streams: NumSctpStreams,
}

/// SCTP parameters of a transport (`sctpParameters` in transport data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SctpParameters {
    /// SCTP port (always 5000).
    pub port: u16,
    /// Outgoing streams.
    #[serde(rename = "OS")]
    pub os: u16,
    /// Maximum incoming streams.
    #[serde(rename = "MIS")]
    pub mis: u16,
    /// Maximum message size in bytes.
    pub max_message_size: u32,
    /// Send buffer size (dump field, ignored by clients).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_buffer_size: Option<u32>,
    /// Buffered amount (dump field, ignored by clients).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sctp_buffered_amount: Option<u32>,
    /// Whether it carries DataChannels (dump field, ignored by clients).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_data_channel: Option<bool>,
}

/// Per-stream SCTP reliability parameters of a data producer / consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SctpStreamParameters {
    /// SCTP stream id.
    pub stream_id: u16,
    /// Ordered delivery (see [`crate::ortc::validate_sctp_stream_parameters`] for defaults).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordered: Option<bool>,
    /// Partial reliability: max lifetime in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_packet_life_time: Option<u16>,
    /// Partial reliability: max retransmissions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retransmits: Option<u16>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalability_mode_parsing() {
        let m = ScalabilityMode::parse("L3T3_KEY").unwrap();
        assert_eq!((m.spatial_layers, m.temporal_layers, m.ksvc), (3, 3, true));
        let m = ScalabilityMode::parse("S2T1").unwrap();
        assert_eq!((m.spatial_layers, m.temporal_layers, m.ksvc), (2, 1, false));
        let m = ScalabilityMode::parse("L12T10h").unwrap();
        assert_eq!((m.spatial_layers, m.temporal_layers), (12, 10));
        assert_eq!(ScalabilityMode::parse("L0T1"), None);
        assert_eq!(ScalabilityMode::parse("X1T1"), None);
        assert_eq!(ScalabilityMode::parse("L1"), None);
        assert_eq!(ScalabilityMode::parse(""), None);
        assert_eq!(
            ScalabilityMode::parse_or_default(Some("bogus")),
            ScalabilityMode::default()
        );
    }

    #[test]
    fn rtp_parameters_round_trip_and_unknown_fields() {
        let input = json!({
            "mid": "0",
            "codecs": [{"mimeType":"audio/opus","payloadType":111,"clockRate":48000,"channels":2,
                "parameters":{"minptime":10,"useinbandfec":1,"sprop-stereo":1,"usedtx":1},
                "rtcpFeedback":[{"type":"transport-cc","parameter":""},{"type":"nack","parameter":""}]}],
            "headerExtensions":[{"uri":"urn:ietf:params:rtp-hdrext:sdes:mid","id":4,"encrypt":false,"parameters":{}}],
            "encodings":[{"ssrc":1489362951u32,"dtx":false}],
            "rtcp":{"cname":"k3JvI9+7v0d4dX1q","reducedSize":true},
            "someFutureField": 42
        });
        let params: RtpParameters = serde_json::from_value(input.clone()).unwrap();
        assert_eq!(params.encodings[0].ssrc, Some(1489362951));
        let mut expected = input;
        expected.as_object_mut().unwrap().remove("someFutureField");
        assert_eq!(serde_json::to_value(&params).unwrap(), expected);
    }

    #[test]
    fn sctp_shapes() {
        let caps: SctpCapabilities =
            serde_json::from_value(json!({"numStreams":{"OS":16,"MIS":2048}})).unwrap();
        assert_eq!(caps.num_streams, NumSctpStreams { os: 16, mis: 2048 });
        let p = SctpParameters {
            port: 5000,
            os: 1024,
            mis: 1024,
            max_message_size: 262144,
            send_buffer_size: None,
            sctp_buffered_amount: None,
            is_data_channel: None,
        };
        assert_eq!(
            serde_json::to_value(p).unwrap(),
            json!({"port":5000,"OS":1024,"MIS":1024,"maxMessageSize":262144})
        );
    }

    #[test]
    fn codec_parameters_are_strings_or_numbers() {
        let p: CodecParameters = serde_json::from_value(
            json!({"apt": 96, "b": "x", "c": 1.5, "d": null, "apt2": "97", "big": 300}),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"apt": 96, "b": "x", "c": 1.5, "d": "", "apt2": "97", "big": 300})
        );
        assert_eq!(p.payload_type("apt"), Some(96));
        assert_eq!(p.payload_type("apt2"), Some(97));
        assert_eq!(p.payload_type("big"), None);
        assert_eq!(p.payload_type("c"), None);
        assert_eq!(p.uint("big"), Some(300));
        assert_eq!(p.get("c").map(ToString::to_string).as_deref(), Some("1.5"));
        assert!(!p.get("d").unwrap().is_truthy());
        for bad in [json!({"x": true}), json!({"x": [1]}), json!({"x": {}})] {
            let err = serde_json::from_value::<CodecParameters>(bad).unwrap_err();
            assert!(err.to_string().contains("a string or a number"), "{err}");
        }
    }

    #[test]
    fn rtx_detection() {
        assert!(is_rtx_mime_type("video/RTX"));
        assert!(!is_rtx_mime_type("/rtx"));
        assert!(!is_rtx_mime_type("video/VP8"));
        assert_eq!(
            MediaKind::from_mime_type("Video/h264"),
            Some(MediaKind::Video)
        );
        assert_eq!(MediaKind::from_mime_type("audio/"), None);
        assert_eq!(MediaKind::from_mime_type("text/plain"), None);
    }
}
