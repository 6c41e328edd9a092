//! ORTC negotiation as pure functions (mediasoup 3.14 `ortc.ts` semantics).
//!
//! The SFU never sees SDP: clients send JSON RTP parameters / capabilities and mediasoup-client
//! builds SDP locally from what we return. This module validates those objects, generates the
//! router capabilities, maps producer payload types / SSRCs onto the router's canonical ones,
//! and derives consumer parameters. See `shared/spec/ortc.md` for the contract.

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::rtp_parameters::{
    is_rtx_mime_type, param_as_u8, uri, CodecParameters, MediaKind, RtcpFeedback, RtcpParameters,
    RtpCapabilities, RtpCodecCapability, RtpCodecParameters, RtpEncodingParameters, RtpEncodingRtx,
    RtpHeaderExtension, RtpHeaderExtensionDirection, RtpHeaderExtensionParameters, RtpParameters,
    ScalabilityMode, SctpStreamParameters,
};

/// Errors of ORTC validation and negotiation. Messages follow mediasoup's where one exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrtcError {
    /// A field is missing or malformed; the string names it, e.g. `codecs[1].payloadType missing`.
    #[error("invalid parameters: {0}")]
    Invalid(String),
    /// A configured router media codec is not in the supported table.
    #[error("media codec not supported [mimeType:{0}]")]
    MediaCodecNotSupported(String),
    /// Two router codecs got the same payload type.
    #[error("duplicated codec.preferredPayloadType {0}")]
    DuplicatedPreferredPayloadType(u8),
    /// The dynamic payload type pool (96..=127) is used up.
    #[error("cannot allocate more dynamic codec payload types")]
    DynamicPayloadTypesExhausted,
    /// A producer media codec matches no router codec.
    #[error("unsupported codec [mimeType:{mime_type}, payloadType:{payload_type}]")]
    UnsupportedCodec {
        /// The producer codec's mimeType.
        mime_type: String,
        /// The producer codec's payload type.
        payload_type: u8,
    },
    /// A producer RTX codec's `apt` points to no media codec of the producer.
    #[error("missing media codec found for RTX PT {0}")]
    MissingMediaCodecForRtx(u8),
    /// The router has no RTX codec for the matched media codec.
    #[error("no RTX codec for capability codec PT {0}")]
    NoRtxCodecForCapabilityCodec(u8),
    /// Consumer and producer share no media codec.
    #[error("no compatible media codecs")]
    NoCompatibleMediaCodecs,
    /// The RTP mapping / router capabilities do not fit the producer parameters.
    #[error("inconsistent RTP mapping: {0}")]
    InconsistentMapping(String),
    /// A producer's codec cannot be used with its encodings layout.
    #[error("{codec} codec not supported for {producer_type}")]
    CodecNotSupportedForType {
        /// The media codec's mimeType.
        codec: String,
        /// `simulcast` or `svc`.
        producer_type: &'static str,
    },
    /// Invalid SCTP stream parameters.
    #[error("invalid SCTP stream parameters: {0}")]
    InvalidSctpStreamParameters(&'static str),
}

fn invalid(path: &str, problem: &str) -> OrtcError {
    OrtcError::Invalid(format!("{path} {problem}"))
}

// =============================================================================================
// Supported capabilities (spec §2, §3)

/// The dynamic payload type pool, in allocation order.
const DYNAMIC_PAYLOAD_TYPES: [u8; 32] = [
    100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118,
    119, 120, 121, 122, 123, 124, 125, 126, 127, 96, 97, 98, 99,
];

/// Supported header extensions: (kind, uri, preferredId, direction), in the normative order.
const SUPPORTED_HEADER_EXTENSIONS: [(MediaKind, &str, u8, RtpHeaderExtensionDirection); 17] = {
    use MediaKind::{Audio, Video};
    use RtpHeaderExtensionDirection::{RecvOnly, SendRecv};
    [
        (Audio, uri::MID, 1, SendRecv),
        (Video, uri::MID, 1, SendRecv),
        (Video, uri::RTP_STREAM_ID, 2, RecvOnly),
        (Video, uri::REPAIRED_RTP_STREAM_ID, 3, RecvOnly),
        (Audio, uri::ABS_SEND_TIME, 4, SendRecv),
        (Video, uri::ABS_SEND_TIME, 4, SendRecv),
        // Audio transport-cc is receive-only: consumers' audio is not covered by TWCC.
        (Audio, uri::TRANSPORT_WIDE_CC, 5, RecvOnly),
        (Video, uri::TRANSPORT_WIDE_CC, 5, SendRecv),
        (Video, uri::FRAME_MARKING_07, 6, SendRecv),
        (Video, uri::FRAME_MARKING, 7, SendRecv),
        (Audio, uri::AUDIO_LEVEL, 10, SendRecv),
        (Video, uri::VIDEO_ORIENTATION, 11, SendRecv),
        (Video, uri::TOFFSET, 12, SendRecv),
        (Audio, uri::ABS_CAPTURE_TIME, 13, SendRecv),
        (Video, uri::ABS_CAPTURE_TIME, 13, SendRecv),
        (Audio, uri::PLAYOUT_DELAY, 14, SendRecv),
        (Video, uri::PLAYOUT_DELAY, 14, SendRecv),
    ]
};

fn feedback(list: &[(&str, &str)]) -> Vec<RtcpFeedback> {
    list.iter().map(|(t, p)| RtcpFeedback::new(t, p)).collect()
}

fn supported_codec(
    mime_type: &str,
    preferred_payload_type: Option<u8>,
    clock_rate: u32,
    channels: Option<u8>,
    parameters: &[(&str, Value)],
    rtcp_feedback: &[(&str, &str)],
) -> RtpCodecCapability {
    let kind = MediaKind::from_mime_type(mime_type).unwrap_or(MediaKind::Audio);
    RtpCodecCapability {
        kind,
        mime_type: mime_type.to_owned(),
        preferred_payload_type,
        clock_rate,
        // Supported-table validation gives every audio codec a channel count (default 1).
        channels: match kind {
            MediaKind::Audio => Some(channels.unwrap_or(1)),
            MediaKind::Video => None,
        },
        parameters: parameters
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        rtcp_feedback: feedback(rtcp_feedback),
    }
}

/// All RTP codecs and header extensions the SFU supports (mediasoup 3.14.16's table).
pub fn supported_rtp_capabilities() -> RtpCapabilities {
    let audio_fb: &[(&str, &str)] = &[("nack", ""), ("transport-cc", "")];
    let tcc: &[(&str, &str)] = &[("transport-cc", "")];
    let video_fb: &[(&str, &str)] = &[
        ("nack", ""),
        ("nack", "pli"),
        ("ccm", "fir"),
        ("goog-remb", ""),
        ("transport-cc", ""),
    ];
    let multiopus = |channels: u8, mapping: &str, streams: u8, coupled: u8| {
        supported_codec(
            "audio/multiopus",
            None,
            48000,
            Some(channels),
            &[
                ("channel_mapping", Value::from(mapping)),
                ("num_streams", Value::from(streams)),
                ("coupled_streams", Value::from(coupled)),
            ],
            audio_fb,
        )
    };
    let asym: &[(&str, Value)] = &[("level-asymmetry-allowed", Value::from(1))];
    let mut codecs = vec![
        supported_codec("audio/opus", None, 48000, Some(2), &[], audio_fb),
        multiopus(4, "0,1,2,3", 2, 2),
        multiopus(6, "0,4,1,2,3,5", 4, 2),
        multiopus(8, "0,6,1,2,3,4,5,7", 5, 3),
        supported_codec("audio/PCMU", Some(0), 8000, None, &[], tcc),
        supported_codec("audio/PCMA", Some(8), 8000, None, &[], tcc),
        supported_codec("audio/ISAC", None, 32000, None, &[], tcc),
        supported_codec("audio/ISAC", None, 16000, None, &[], tcc),
        supported_codec("audio/G722", Some(9), 8000, None, &[], tcc),
        supported_codec("audio/iLBC", None, 8000, None, &[], tcc),
    ];
    for rate in [24000, 16000, 12000, 8000] {
        codecs.push(supported_codec("audio/SILK", None, rate, None, &[], tcc));
    }
    for rate in [32000, 16000, 8000] {
        codecs.push(supported_codec("audio/CN", Some(13), rate, None, &[], &[]));
    }
    for rate in [48000, 32000, 16000, 8000] {
        codecs.push(supported_codec(
            "audio/telephone-event",
            None,
            rate,
            None,
            &[],
            &[],
        ));
    }
    codecs.push(supported_codec(
        "video/VP8",
        None,
        90000,
        None,
        &[],
        video_fb,
    ));
    codecs.push(supported_codec(
        "video/VP9",
        None,
        90000,
        None,
        &[],
        video_fb,
    ));
    codecs.push(supported_codec(
        "video/H264",
        None,
        90000,
        None,
        asym,
        video_fb,
    ));
    codecs.push(supported_codec(
        "video/H264-SVC",
        None,
        90000,
        None,
        asym,
        video_fb,
    ));
    codecs.push(supported_codec(
        "video/H265",
        None,
        90000,
        None,
        asym,
        video_fb,
    ));

    let header_extensions = SUPPORTED_HEADER_EXTENSIONS
        .iter()
        .map(|&(kind, uri, preferred_id, direction)| RtpHeaderExtension {
            kind,
            uri: uri.to_owned(),
            preferred_id,
            preferred_encrypt: false,
            direction,
        })
        .collect();
    RtpCapabilities {
        codecs,
        header_extensions,
    }
}

// =============================================================================================
// Router capabilities (spec §4)

/// Builds the router RTP capabilities from the configured media codecs: picks each codec from
/// the supported table, assigns payload types (configured, fixed, else the dynamic pool
/// 100..=127 then 96..=99), merges parameters, and follows every video codec with its RTX codec.
pub fn generate_router_rtp_capabilities(
    media_codecs: &[RtpCodecCapability],
) -> Result<RtpCapabilities, OrtcError> {
    let supported = supported_rtp_capabilities();
    let mut pool: std::collections::VecDeque<u8> = DYNAMIC_PAYLOAD_TYPES.into_iter().collect();
    let mut caps = RtpCapabilities {
        codecs: Vec::new(),
        header_extensions: supported.header_extensions.clone(),
    };

    for (i, configured) in media_codecs.iter().enumerate() {
        let mut media_codec = configured.clone();
        normalize_codec_capability(&mut media_codec, &format!("mediaCodecs[{i}]"))?;

        let matched = supported
            .codecs
            .iter()
            .find(|s| {
                match_codecs(CodecView::from(&media_codec), CodecView::from(*s), false).is_some()
            })
            .ok_or_else(|| OrtcError::MediaCodecNotSupported(media_codec.mime_type.clone()))?;

        let mut codec = matched.clone();
        let pt = match (
            media_codec.preferred_payload_type,
            codec.preferred_payload_type,
        ) {
            (Some(pt), _) => {
                pool.retain(|p| *p != pt);
                pt
            }
            (None, Some(fixed)) => fixed,
            (None, None) => pool
                .pop_front()
                .ok_or(OrtcError::DynamicPayloadTypesExhausted)?,
        };
        if caps
            .codecs
            .iter()
            .any(|c| c.preferred_payload_type == Some(pt))
        {
            return Err(OrtcError::DuplicatedPreferredPayloadType(pt));
        }
        codec.preferred_payload_type = Some(pt);
        for (key, value) in media_codec.parameters {
            codec.parameters.insert(key, value);
        }
        let kind = codec.kind;
        let clock_rate = codec.clock_rate;
        caps.codecs.push(codec);

        if kind == MediaKind::Video {
            let rtx_pt = pool
                .pop_front()
                .ok_or(OrtcError::DynamicPayloadTypesExhausted)?;
            let mut parameters = Map::new();
            parameters.insert("apt".to_owned(), Value::from(pt));
            caps.codecs.push(RtpCodecCapability {
                kind,
                mime_type: "video/rtx".to_owned(),
                preferred_payload_type: Some(rtx_pt),
                clock_rate,
                channels: None,
                parameters,
                rtcp_feedback: Vec::new(),
            });
        }
    }
    Ok(caps)
}

// =============================================================================================
// Validation of JSON input (spec §1): path-named errors, mediasoup defaults.

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// JavaScript truthiness, since mediasoup's optional-field checks are written with it.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

fn require_str(obj: &Map<String, Value>, key: &str, path: &str) -> Result<String, OrtcError> {
    match obj.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(invalid(&join(path, key), "missing")),
    }
}

/// Mandatory non-negative integer no larger than `max`.
fn require_uint(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
    max: u64,
) -> Result<u64, OrtcError> {
    match obj.get(key) {
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if v <= max => Ok(v),
            _ => Err(invalid(&join(path, key), "invalid")),
        },
        _ => Err(invalid(&join(path, key), "missing")),
    }
}

/// Optional integer: absent / null removed, else must be a non-negative integer `<= max`.
/// Integral floats (e.g. `500000.0` from some JSON encoders) are accepted and rewritten.
fn optional_uint(
    obj: &mut Map<String, Value>,
    key: &str,
    path: &str,
    max: u64,
) -> Result<(), OrtcError> {
    match obj.get(key) {
        None => Ok(()),
        Some(Value::Null) => {
            obj.remove(key);
            Ok(())
        }
        Some(Value::Number(n)) => {
            let v = n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= max as f64)
                    .map(|f| f as u64)
            });
            match v {
                Some(v) if v <= max => {
                    obj.insert(key.to_owned(), Value::from(v));
                    Ok(())
                }
                _ => Err(invalid(&join(path, key), "invalid")),
            }
        }
        Some(_) => Err(invalid(&join(path, key), "invalid")),
    }
}

/// Optional value of a JSON type checked by `ok`; null removed.
fn optional_typed(
    obj: &mut Map<String, Value>,
    key: &str,
    path: &str,
    ok: fn(&Value) -> bool,
) -> Result<(), OrtcError> {
    match obj.get(key) {
        None => Ok(()),
        Some(Value::Null) => {
            obj.remove(key);
            Ok(())
        }
        Some(v) if ok(v) => Ok(()),
        Some(_) => Err(invalid(&join(path, key), "invalid")),
    }
}

/// Optional string following mediasoup: falsy → removed, truthy non-string → error.
fn optional_js_string(
    obj: &mut Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<(), OrtcError> {
    match obj.get(key) {
        None => Ok(()),
        Some(v) if !truthy(v) => {
            obj.remove(key);
            Ok(())
        }
        Some(Value::String(_)) => Ok(()),
        Some(_) => Err(invalid(&join(path, key), "invalid")),
    }
}

/// Optional boolean defaulting to false: truthy non-boolean → error.
fn js_bool_default_false(
    obj: &mut Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<(), OrtcError> {
    match obj.get(key) {
        Some(Value::Bool(_)) => Ok(()),
        Some(v) if truthy(v) => Err(invalid(&join(path, key), "invalid")),
        _ => {
            obj.insert(key.to_owned(), Value::Bool(false));
            Ok(())
        }
    }
}

/// `parameters`: object of string|number values; missing/non-object → `{}`; null → `""`.
fn json_parameters(
    obj: &mut Map<String, Value>,
    path: &str,
    check_apt: bool,
) -> Result<(), OrtcError> {
    let params_path = join(path, "parameters");
    let params = match obj.get_mut("parameters") {
        Some(Value::Object(m)) => m,
        _ => {
            obj.insert("parameters".to_owned(), Value::Object(Map::new()));
            return Ok(());
        }
    };
    for (key, value) in params.iter_mut() {
        if value.is_null() {
            *value = Value::from("");
        }
        if !value.is_string() && !value.is_number() {
            return Err(invalid(&join(&params_path, key), "invalid"));
        }
        // apt must be a numeric payload type (a string apt is rejected, as in mediasoup).
        let bad_apt = check_apt
            && key == "apt"
            && (!value.is_number() || param_as_u8(Some(value)).is_none_or(|pt| pt > 127));
        if bad_apt {
            return Err(invalid(&join(&params_path, key), "invalid"));
        }
    }
    Ok(())
}

fn json_rtcp_feedback(obj: &mut Map<String, Value>, path: &str) -> Result<(), OrtcError> {
    let list = match obj.get_mut("rtcpFeedback") {
        Some(Value::Array(a)) => a,
        _ => {
            obj.insert("rtcpFeedback".to_owned(), Value::Array(Vec::new()));
            return Ok(());
        }
    };
    for (i, fb) in list.iter_mut().enumerate() {
        let fb_path = format!("{}[{i}]", join(path, "rtcpFeedback"));
        let fb = fb
            .as_object_mut()
            .ok_or_else(|| invalid(&fb_path, "is not an object"))?;
        require_str(fb, "type", &fb_path)?;
        if !matches!(fb.get("parameter"), Some(Value::String(_))) {
            fb.insert("parameter".to_owned(), Value::from(""));
        }
    }
    Ok(())
}

/// Codec object (capability or parameters flavour).
fn json_codec(value: &mut Value, path: &str, capability: bool) -> Result<(), OrtcError> {
    let obj = value
        .as_object_mut()
        .ok_or_else(|| invalid(path, "is not an object"))?;
    let mime_type = require_str(obj, "mimeType", path)?;
    let kind = MediaKind::from_mime_type(&mime_type)
        .ok_or_else(|| invalid(&join(path, "mimeType"), "invalid"))?;
    if capability {
        // mediasoup overwrites kind from the mimeType.
        obj.insert("kind".to_owned(), Value::from(kind.as_str()));
        match obj.get("preferredPayloadType") {
            Some(v) if truthy(v) => {
                require_uint(obj, "preferredPayloadType", path, 127)?;
            }
            Some(Value::Number(_)) => {} // 0 (PCMU) is a valid payload type.
            Some(_) => {
                obj.remove("preferredPayloadType");
            }
            None => {}
        }
    } else {
        require_uint(obj, "payloadType", path, 127)?;
    }
    require_uint(obj, "clockRate", path, u32::MAX as u64)?;
    match kind {
        MediaKind::Audio => match obj.get("channels") {
            Some(Value::Number(_)) => {
                require_uint(obj, "channels", path, u8::MAX as u64)?;
            }
            _ => {
                obj.insert("channels".to_owned(), Value::from(1));
            }
        },
        MediaKind::Video => {
            obj.remove("channels");
        }
    }
    json_parameters(obj, path, true)?;
    json_rtcp_feedback(obj, path)
}

/// Takes an optional array field, inserting `[]` when absent; truthy non-array → error.
fn json_array<'a>(
    obj: &'a mut Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a mut Vec<Value>, OrtcError> {
    let present = match obj.get(key) {
        Some(Value::Array(_)) => true,
        Some(v) if truthy(v) => return Err(invalid(&join(path, key), "is not an array")),
        _ => false,
    };
    if !present {
        obj.insert(key.to_owned(), Value::Array(Vec::new()));
    }
    match obj.get_mut(key) {
        Some(Value::Array(a)) => Ok(a),
        _ => Err(invalid(&join(path, key), "is not an array")),
    }
}

fn json_header_extension_capability(value: &mut Value, path: &str) -> Result<(), OrtcError> {
    let obj = value
        .as_object_mut()
        .ok_or_else(|| invalid(path, "is not an object"))?;
    match obj.get("kind") {
        Some(Value::String(s)) if s == "audio" || s == "video" => {}
        _ => return Err(invalid(&join(path, "kind"), "invalid")),
    }
    require_str(obj, "uri", path)?;
    require_uint(obj, "preferredId", path, u8::MAX as u64)?;
    js_bool_default_false(obj, "preferredEncrypt", path)?;
    match obj.get("direction") {
        Some(Value::String(s))
            if matches!(
                s.as_str(),
                "sendrecv" | "sendonly" | "recvonly" | "inactive"
            ) => {}
        Some(v) if truthy(v) => return Err(invalid(&join(path, "direction"), "invalid")),
        _ => {
            obj.insert("direction".to_owned(), Value::from("sendrecv"));
        }
    }
    Ok(())
}

fn json_header_extension_parameters(value: &mut Value, path: &str) -> Result<(), OrtcError> {
    let obj = value
        .as_object_mut()
        .ok_or_else(|| invalid(path, "is not an object"))?;
    require_str(obj, "uri", path)?;
    // Id 0 is not a valid one-byte or two-byte extension id (the worker rejects it).
    if require_uint(obj, "id", path, u8::MAX as u64)? == 0 {
        return Err(invalid(&join(path, "id"), "invalid"));
    }
    js_bool_default_false(obj, "encrypt", path)?;
    json_parameters(obj, path, false)
}

fn json_encoding(value: &mut Value, path: &str) -> Result<(), OrtcError> {
    let obj = value
        .as_object_mut()
        .ok_or_else(|| invalid(path, "is not an object"))?;
    optional_uint(obj, "ssrc", path, u32::MAX as u64)?;
    optional_js_string(obj, "rid", path)?;
    optional_uint(obj, "codecPayloadType", path, 127)?;
    match obj.get_mut("rtx") {
        None => {}
        Some(Value::Object(rtx)) => {
            let rtx_path = join(path, "rtx");
            require_uint(rtx, "ssrc", &rtx_path, u32::MAX as u64)?;
        }
        Some(v) if !truthy(v) => {
            obj.remove("rtx");
        }
        Some(_) => return Err(invalid(&join(path, "rtx"), "invalid")),
    }
    if !matches!(obj.get("dtx"), Some(Value::Bool(_))) {
        obj.insert("dtx".to_owned(), Value::Bool(false));
    }
    optional_js_string(obj, "scalabilityMode", path)?;
    optional_typed(obj, "scaleResolutionDownBy", path, Value::is_number)?;
    optional_uint(obj, "maxBitrate", path, u32::MAX as u64)?;
    optional_typed(obj, "maxFramerate", path, Value::is_number)?;
    optional_typed(obj, "adaptivePtime", path, Value::is_boolean)?;
    optional_typed(obj, "priority", path, Value::is_string)?;
    optional_typed(obj, "networkPriority", path, Value::is_string)?;
    optional_typed(obj, "active", path, Value::is_boolean)
}

fn json_rtcp(obj: &mut Map<String, Value>) -> Result<(), OrtcError> {
    match obj.get("rtcp") {
        Some(Value::Object(_)) => {}
        Some(v) if truthy(v) => return Err(invalid("rtcp", "is not an object")),
        _ => {
            obj.insert("rtcp".to_owned(), Value::Object(Map::new()));
        }
    }
    let Some(Value::Object(rtcp)) = obj.get_mut("rtcp") else {
        return Err(invalid("rtcp", "is not an object"));
    };
    optional_js_string(rtcp, "cname", "rtcp")?;
    // mediasoup forces reducedSize to true whatever was given.
    rtcp.insert("reducedSize".to_owned(), Value::Bool(true));
    optional_typed(rtcp, "mux", "rtcp", Value::is_boolean)
}

/// Validates and normalizes JSON RTP parameters (a producer's `rtpParameters`) with mediasoup's
/// defaults: missing arrays → `[]`, audio `channels` → 1, `rtcpFeedback[].parameter` → `""`,
/// `encodings[].dtx` → false, `rtcp.reducedSize` → true. Errors name the field, e.g.
/// `codecs[1].payloadType missing`. Unknown fields are ignored.
pub fn validate_rtp_parameters(value: &Value) -> Result<RtpParameters, OrtcError> {
    let mut value = value.clone();
    let obj = value
        .as_object_mut()
        .ok_or_else(|| invalid("rtpParameters", "is not an object"))?;
    optional_js_string(obj, "mid", "")?;
    match obj.get_mut("codecs") {
        Some(Value::Array(codecs)) => {
            for (i, codec) in codecs.iter_mut().enumerate() {
                json_codec(codec, &format!("codecs[{i}]"), false)?;
            }
        }
        _ => return Err(invalid("codecs", "missing")),
    }
    for (i, ext) in json_array(obj, "headerExtensions", "")?
        .iter_mut()
        .enumerate()
    {
        json_header_extension_parameters(ext, &format!("headerExtensions[{i}]"))?;
    }
    for (i, enc) in json_array(obj, "encodings", "")?.iter_mut().enumerate() {
        json_encoding(enc, &format!("encodings[{i}]"))?;
    }
    json_rtcp(obj)?;
    let mut params: RtpParameters =
        serde_json::from_value(value).map_err(|e| OrtcError::Invalid(e.to_string()))?;
    normalize_rtp_parameters(&mut params)?;
    Ok(params)
}

/// Validates and normalizes JSON RTP capabilities (e.g. a client's `rtpCapabilities`): `kind`
/// is taken from each codec's mimeType, missing arrays → `[]`, header extension
/// `preferredEncrypt` → false and `direction` → `sendrecv`. Errors name the field.
pub fn validate_rtp_capabilities(value: &Value) -> Result<RtpCapabilities, OrtcError> {
    let mut value = value.clone();
    let obj = value
        .as_object_mut()
        .ok_or_else(|| invalid("rtpCapabilities", "is not an object"))?;
    for (i, codec) in json_array(obj, "codecs", "")?.iter_mut().enumerate() {
        json_codec(codec, &format!("codecs[{i}]"), true)?;
    }
    for (i, ext) in json_array(obj, "headerExtensions", "")?
        .iter_mut()
        .enumerate()
    {
        json_header_extension_capability(ext, &format!("headerExtensions[{i}]"))?;
    }
    let mut caps: RtpCapabilities =
        serde_json::from_value(value).map_err(|e| OrtcError::Invalid(e.to_string()))?;
    normalize_rtp_capabilities(&mut caps)?;
    Ok(caps)
}

/// Validates and normalizes a JSON array of router media codecs (`mediaCodecs` config), where
/// `kind` may be omitted.
pub fn validate_media_codecs(value: &Value) -> Result<Vec<RtpCodecCapability>, OrtcError> {
    let mut value = value.clone();
    let list = value
        .as_array_mut()
        .ok_or_else(|| invalid("mediaCodecs", "is not an array"))?;
    for (i, codec) in list.iter_mut().enumerate() {
        json_codec(codec, &format!("mediaCodecs[{i}]"), true)?;
    }
    serde_json::from_value(value).map_err(|e| OrtcError::Invalid(e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Typed normalization (for values built in Rust, and as a second pass after JSON validation).

fn check_typed_parameters(
    params: &mut CodecParameters,
    path: &str,
    check_apt: bool,
) -> Result<(), OrtcError> {
    for (key, value) in params.iter_mut() {
        if value.is_null() {
            *value = Value::from("");
        }
        let bad_type = !value.is_string() && !value.is_number();
        let bad_apt = check_apt
            && key == "apt"
            && (!value.is_number() || param_as_u8(Some(value)).is_none_or(|pt| pt > 127));
        if bad_type || bad_apt {
            return Err(invalid(&format!("{path}.parameters.{key}"), "invalid"));
        }
    }
    Ok(())
}

fn kind_of(mime_type: &str, path: &str) -> Result<MediaKind, OrtcError> {
    if mime_type.is_empty() {
        return Err(invalid(&join(path, "mimeType"), "missing"));
    }
    MediaKind::from_mime_type(mime_type).ok_or_else(|| invalid(&join(path, "mimeType"), "invalid"))
}

fn default_channels(kind: MediaKind, channels: Option<u8>) -> Option<u8> {
    match kind {
        MediaKind::Audio => Some(channels.unwrap_or(1)),
        MediaKind::Video => None,
    }
}

fn normalize_codec_capability(codec: &mut RtpCodecCapability, path: &str) -> Result<(), OrtcError> {
    codec.kind = kind_of(&codec.mime_type, path)?;
    if codec.preferred_payload_type.is_some_and(|pt| pt > 127) {
        return Err(invalid(&join(path, "preferredPayloadType"), "invalid"));
    }
    codec.channels = default_channels(codec.kind, codec.channels);
    check_typed_parameters(&mut codec.parameters, path, true)
}

fn normalize_codec_parameters(codec: &mut RtpCodecParameters, path: &str) -> Result<(), OrtcError> {
    let kind = kind_of(&codec.mime_type, path)?;
    if codec.payload_type > 127 {
        return Err(invalid(&join(path, "payloadType"), "invalid"));
    }
    codec.channels = default_channels(kind, codec.channels);
    check_typed_parameters(&mut codec.parameters, path, true)
}

/// Normalizes typed RTP capabilities in place (kind from mimeType, audio channels default 1,
/// `apt` must be a numeric payload type).
pub fn normalize_rtp_capabilities(caps: &mut RtpCapabilities) -> Result<(), OrtcError> {
    for (i, codec) in caps.codecs.iter_mut().enumerate() {
        normalize_codec_capability(codec, &format!("codecs[{i}]"))?;
    }
    for (i, ext) in caps.header_extensions.iter().enumerate() {
        if ext.uri.is_empty() {
            return Err(invalid(&format!("headerExtensions[{i}].uri"), "missing"));
        }
    }
    Ok(())
}

/// Normalizes typed RTP parameters in place (channels, `dtx` → false, `reducedSize` → true,
/// empty `mid` → none; header extension id 0 and bad `apt` rejected).
pub fn normalize_rtp_parameters(params: &mut RtpParameters) -> Result<(), OrtcError> {
    if params.mid.as_deref() == Some("") {
        params.mid = None;
    }
    for (i, codec) in params.codecs.iter_mut().enumerate() {
        normalize_codec_parameters(codec, &format!("codecs[{i}]"))?;
    }
    for (i, ext) in params.header_extensions.iter_mut().enumerate() {
        let path = format!("headerExtensions[{i}]");
        if ext.uri.is_empty() {
            return Err(invalid(&join(&path, "uri"), "missing"));
        }
        if ext.id == 0 {
            return Err(invalid(&join(&path, "id"), "invalid"));
        }
        check_typed_parameters(&mut ext.parameters, &path, false)?;
    }
    for enc in params.encodings.iter_mut() {
        enc.dtx.get_or_insert(false);
        if enc.rid.as_deref() == Some("") {
            enc.rid = None;
        }
        if enc.scalability_mode.as_deref() == Some("") {
            enc.scalability_mode = None;
        }
    }
    params.rtcp.reduced_size = true;
    if params.rtcp.cname.as_deref() == Some("") {
        params.rtcp.cname = None;
    }
    Ok(())
}

/// Validates SCTP stream parameters and applies the `ordered` default: true, but false when
/// a lifetime or retransmit limit is given without `ordered`. Both limits, or `ordered: true`
/// with a limit, are errors. Zero limits count as absent (mediasoup's truthiness checks).
pub fn validate_sctp_stream_parameters(params: &mut SctpStreamParameters) -> Result<(), OrtcError> {
    let lifetime = params.max_packet_life_time.filter(|v| *v != 0);
    let retransmits = params.max_retransmits.filter(|v| *v != 0);
    let limited = lifetime.is_some() || retransmits.is_some();
    if lifetime.is_some() && retransmits.is_some() {
        return Err(OrtcError::InvalidSctpStreamParameters(
            "cannot provide both maxPacketLifeTime and maxRetransmits",
        ));
    }
    match params.ordered {
        Some(true) if limited => Err(OrtcError::InvalidSctpStreamParameters(
            "cannot be ordered with maxPacketLifeTime or maxRetransmits",
        )),
        Some(_) => Ok(()),
        None => {
            params.ordered = Some(!limited);
            Ok(())
        }
    }
}

// =============================================================================================
// Codec matching (spec §6)

/// The fields of a codec that matching looks at (capability or parameters flavour).
#[derive(Clone, Copy)]
struct CodecView<'a> {
    mime_type: &'a str,
    clock_rate: u32,
    channels: Option<u8>,
    parameters: &'a CodecParameters,
}

impl<'a> From<&'a RtpCodecCapability> for CodecView<'a> {
    fn from(c: &'a RtpCodecCapability) -> Self {
        CodecView {
            mime_type: &c.mime_type,
            clock_rate: c.clock_rate,
            channels: c.channels,
            parameters: &c.parameters,
        }
    }
}

impl<'a> From<&'a RtpCodecParameters> for CodecView<'a> {
    fn from(c: &'a RtpCodecParameters) -> Self {
        CodecView {
            mime_type: &c.mime_type,
            clock_rate: c.clock_rate,
            channels: c.channels,
            parameters: &c.parameters,
        }
    }
}

/// What a successful strict H264 match asks to do with the first codec's `profile-level-id`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ProfileLevelIdAnswer {
    /// Not an H264 strict match: leave parameters alone.
    Untouched,
    /// Set `profile-level-id` to the negotiated answer.
    Set(String),
    /// Neither side had one: remove it.
    Remove,
}

fn apply_answer(params: &mut CodecParameters, answer: ProfileLevelIdAnswer) {
    match answer {
        ProfileLevelIdAnswer::Untouched => {}
        ProfileLevelIdAnswer::Set(s) => {
            params.insert("profile-level-id".to_owned(), Value::from(s));
        }
        ProfileLevelIdAnswer::Remove => {
            params.remove("profile-level-id");
        }
    }
}

/// Parameter equality tolerant of number vs numeric string (`1` == `"1"`), which SDP-derived
/// JSON from different clients mixes.
fn param_eq(a: Option<&Value>, b: Option<&Value>) -> bool {
    fn num(v: &Value) -> Option<f64> {
        match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => match (num(a), num(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
        _ => false,
    }
}

/// `params[key] || 0` equality (mediasoup's default for packetization-mode / profile-id).
fn param_or_zero_eq(a: &CodecParameters, b: &CodecParameters, key: &str) -> bool {
    let zero = Value::from(0);
    let pick = |p: &CodecParameters| match p.get(key) {
        Some(v) if truthy(v) => v.clone(),
        _ => zero.clone(),
    };
    param_eq(Some(&pick(a)), Some(&pick(b)))
}

/// mediasoup's `matchCodecs(a, b, {strict})`. `None` = no match; on a match, the answer for
/// `a`'s `profile-level-id` (used in "modify" mode by the caller).
fn match_codecs(a: CodecView, b: CodecView, strict: bool) -> Option<ProfileLevelIdAnswer> {
    let mime = a.mime_type.to_ascii_lowercase();
    if mime != b.mime_type.to_ascii_lowercase() || a.clock_rate != b.clock_rate {
        return None;
    }
    let kind = MediaKind::from_mime_type(&mime)?;
    if default_channels(kind, a.channels) != default_channels(kind, b.channels) {
        return None;
    }
    match mime.as_str() {
        "audio/multiopus" => {
            let same = |k: &str| param_eq(a.parameters.get(k), b.parameters.get(k));
            if !same("num_streams") || !same("coupled_streams") {
                return None;
            }
        }
        "video/h264" | "video/h264-svc" if strict => {
            if !param_or_zero_eq(a.parameters, b.parameters, "packetization-mode") {
                return None;
            }
            if !h264::is_same_profile(a.parameters, b.parameters) {
                return None;
            }
            return match h264::generate_profile_level_id_for_answer(a.parameters, b.parameters) {
                Ok(Some(s)) => Some(ProfileLevelIdAnswer::Set(s)),
                Ok(None) => Some(ProfileLevelIdAnswer::Remove),
                Err(_) => None,
            };
        }
        "video/vp9" if strict && !param_or_zero_eq(a.parameters, b.parameters, "profile-id") => {
            return None;
        }
        _ => {}
    }
    Some(ProfileLevelIdAnswer::Untouched)
}

/// H264 `profile-level-id` handling (RFC 6184 §8.1, as in libwebrtc / h264-profile-level-id).
pub mod h264 {
    use crate::rtp_parameters::CodecParameters;
    use serde_json::Value;

    /// H264 profiles that WebRTC negotiates.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Profile {
        /// Constrained Baseline.
        ConstrainedBaseline,
        /// Baseline.
        Baseline,
        /// Main.
        Main,
        /// Constrained High.
        ConstrainedHigh,
        /// High.
        High,
        /// Predictive High 4:4:4.
        PredictiveHigh444,
    }

    /// Level value for level 1b (other levels use their `level_idc`, e.g. 31 for 3.1).
    pub const LEVEL_1B: u8 = 0;

    /// Parsed profile-level-id.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct ProfileLevelId {
        /// Profile.
        pub profile: Profile,
        /// Level: `level_idc`, or [`LEVEL_1B`].
        pub level: u8,
    }

    /// Used when `profile-level-id` is absent: Constrained Baseline 3.1 (libwebrtc's choice).
    pub const DEFAULT_PROFILE_LEVEL_ID: ProfileLevelId = ProfileLevelId {
        profile: Profile::ConstrainedBaseline,
        level: 31,
    };

    /// (profile_idc, profile_iop bit pattern MSB first, profile); 'x' = don't care.
    const PATTERNS: [(u8, &[u8; 8], Profile); 9] = [
        (0x42, b"x1xx0000", Profile::ConstrainedBaseline),
        (0x4d, b"1xxx0000", Profile::ConstrainedBaseline),
        (0x58, b"11xx0000", Profile::ConstrainedBaseline),
        (0x42, b"x0xx0000", Profile::Baseline),
        (0x58, b"10xx0000", Profile::Baseline),
        (0x4d, b"0x0x0000", Profile::Main),
        (0x64, b"00000000", Profile::High),
        (0x64, b"00001100", Profile::ConstrainedHigh),
        (0xf4, b"00000000", Profile::PredictiveHigh444),
    ];

    const LEVELS: [u8; 16] = [
        10, 11, 12, 13, 20, 21, 22, 30, 31, 32, 40, 41, 42, 50, 51, 52,
    ];

    fn pattern_matches(pattern: &[u8; 8], value: u8) -> bool {
        pattern.iter().enumerate().all(|(i, c)| {
            let bit = (value >> (7 - i)) & 1;
            match c {
                b'1' => bit == 1,
                b'0' => bit == 0,
                _ => true,
            }
        })
    }

    /// Parses a 6-hex-digit profile-level-id; `None` if unrecognized.
    pub fn parse_profile_level_id(s: &str) -> Option<ProfileLevelId> {
        if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let numeric = u32::from_str_radix(s, 16).ok()?;
        if numeric == 0 {
            return None;
        }
        let level_idc = (numeric & 0xff) as u8;
        let profile_iop = ((numeric >> 8) & 0xff) as u8;
        let profile_idc = ((numeric >> 16) & 0xff) as u8;
        // level_idc 11 with constraint_set3 is level 1b for the baseline-ish profiles.
        let level = if level_idc == 11 && profile_iop & 0x10 != 0 {
            LEVEL_1B
        } else if LEVELS.contains(&level_idc) {
            level_idc
        } else {
            return None;
        };
        PATTERNS
            .iter()
            .find(|(idc, pattern, _)| *idc == profile_idc && pattern_matches(pattern, profile_iop))
            .map(|&(_, _, profile)| ProfileLevelId { profile, level })
    }

    /// Canonical string for a profile-level-id; `None` for combinations with no spelling
    /// (level 1b outside the baseline/main profiles).
    pub fn profile_level_id_to_string(p: ProfileLevelId) -> Option<String> {
        if p.level == LEVEL_1B {
            return match p.profile {
                Profile::ConstrainedBaseline => Some("42f00b".to_owned()),
                Profile::Baseline => Some("42100b".to_owned()),
                Profile::Main => Some("4d100b".to_owned()),
                _ => None,
            };
        }
        let prefix = match p.profile {
            Profile::ConstrainedBaseline => "42e0",
            Profile::Baseline => "4200",
            Profile::Main => "4d00",
            Profile::ConstrainedHigh => "640c",
            Profile::High => "6400",
            Profile::PredictiveHigh444 => "f400",
        };
        Some(format!("{prefix}{:02x}", p.level))
    }

    /// The `profile-level-id` parameter as a string if present and non-empty (numbers, which
    /// SDP-to-JSON converters may produce for all-digit ids, are stringified).
    fn profile_level_id_param(params: &CodecParameters) -> Option<String> {
        match params.get("profile-level-id")? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) if n.as_f64() != Some(0.0) => Some(n.to_string()),
            _ => None,
        }
    }

    /// Profile-level-id of codec parameters: the default when absent, `None` when invalid.
    pub fn parse_sdp_profile_level_id(params: &CodecParameters) -> Option<ProfileLevelId> {
        match profile_level_id_param(params) {
            Some(s) => parse_profile_level_id(&s),
            None => Some(DEFAULT_PROFILE_LEVEL_ID),
        }
    }

    /// Whether both parameter sets have a valid and equal profile (levels ignored).
    pub fn is_same_profile(a: &CodecParameters, b: &CodecParameters) -> bool {
        match (parse_sdp_profile_level_id(a), parse_sdp_profile_level_id(b)) {
            (Some(a), Some(b)) => a.profile == b.profile,
            _ => false,
        }
    }

    /// `level-asymmetry-allowed` is `1`, `"1"` or `true`.
    pub fn is_level_asymmetry_allowed(params: &CodecParameters) -> bool {
        match params.get("level-asymmetry-allowed") {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_f64() == Some(1.0),
            Some(Value::String(s)) => s == "1",
            _ => false,
        }
    }

    /// Level ordering where 1b sits between 1 and 1.1.
    fn is_less_level(a: u8, b: u8) -> bool {
        if a == LEVEL_1B {
            b != 10 && b != LEVEL_1B
        } else if b == LEVEL_1B {
            a != 10
        } else {
            a < b
        }
    }

    fn min_level(a: u8, b: u8) -> u8 {
        if is_less_level(a, b) {
            a
        } else {
            b
        }
    }

    /// Why no answer profile-level-id can be produced.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
    pub enum AnswerError {
        /// The local profile-level-id is unparsable.
        #[error("invalid local profile-level-id")]
        InvalidLocal,
        /// The remote profile-level-id is unparsable.
        #[error("invalid remote profile-level-id")]
        InvalidRemote,
        /// The profiles differ.
        #[error("H264 profile mismatch")]
        ProfileMismatch,
    }

    /// The profile-level-id to answer with: `Ok(None)` if neither side has one; otherwise the
    /// common profile with the local level if both sides allow level asymmetry, else the lower
    /// level of the two.
    pub fn generate_profile_level_id_for_answer(
        local: &CodecParameters,
        remote: &CodecParameters,
    ) -> Result<Option<String>, AnswerError> {
        if profile_level_id_param(local).is_none() && profile_level_id_param(remote).is_none() {
            return Ok(None);
        }
        let l = parse_sdp_profile_level_id(local).ok_or(AnswerError::InvalidLocal)?;
        let r = parse_sdp_profile_level_id(remote).ok_or(AnswerError::InvalidRemote)?;
        if l.profile != r.profile {
            return Err(AnswerError::ProfileMismatch);
        }
        let asymmetry = is_level_asymmetry_allowed(local) && is_level_asymmetry_allowed(remote);
        let level = if asymmetry {
            l.level
        } else {
            min_level(l.level, r.level)
        };
        Ok(profile_level_id_to_string(ProfileLevelId {
            profile: l.profile,
            level,
        }))
    }
}

// =============================================================================================
// Producers (spec §5)

/// Producer payload type → router payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpCodecMapping {
    /// The producer's payload type.
    pub payload_type: u8,
    /// The router's payload type.
    pub mapped_payload_type: u8,
}

/// One producer encoding and the SSRC its packets are rewritten to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpEncodingMapping {
    /// The producer's SSRC, if signaled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssrc: Option<u32>,
    /// The producer's RID, if signaled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rid: Option<String>,
    /// The encoding's scalability mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scalability_mode: Option<String>,
    /// The router-side SSRC.
    pub mapped_ssrc: u32,
}

/// How a producer's packets map onto the router's canonical payload types and SSRCs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RtpMapping {
    /// Codec mappings: media codecs first, then RTX.
    pub codecs: Vec<RtpCodecMapping>,
    /// One entry per producer encoding, in order.
    pub encodings: Vec<RtpEncodingMapping>,
}

impl RtpMapping {
    /// The router payload type for a producer payload type.
    pub fn mapped_payload_type(&self, payload_type: u8) -> Option<u8> {
        self.codecs
            .iter()
            .find(|c| c.payload_type == payload_type)
            .map(|c| c.mapped_payload_type)
    }
}

/// A fresh SSRC in [100 000 000, 999 999 999] (mediasoup's `generateRandomNumber`).
pub fn random_ssrc() -> u32 {
    rand::thread_rng().gen_range(100_000_000..=999_999_999)
}

/// Maps a producer's codecs and encodings onto the router capabilities.
///
/// Every media codec must match a router codec strictly; H264 `profile-level-id` in `params`
/// is rewritten to the negotiated answer ("modify" mode). Every RTX codec's `apt` must name a
/// media codec of the producer, and the router must have RTX for the matched codec. Empty
/// `encodings` become `[{}]` (a single stream learned from packets). Encodings get
/// consecutive `mappedSsrc`s from a random base.
pub fn get_producer_rtp_parameters_mapping(
    params: &mut RtpParameters,
    router_caps: &RtpCapabilities,
) -> Result<RtpMapping, OrtcError> {
    // (producer codec index, router codec index)
    let mut media: Vec<(usize, usize)> = Vec::new();
    for (i, codec) in params.codecs.iter_mut().enumerate() {
        if codec.is_rtx() {
            continue;
        }
        let found = router_caps.codecs.iter().enumerate().find_map(|(j, cap)| {
            match_codecs(CodecView::from(&*codec), CodecView::from(cap), true).map(|a| (j, a))
        });
        let (j, answer) = found.ok_or_else(|| OrtcError::UnsupportedCodec {
            mime_type: codec.mime_type.clone(),
            payload_type: codec.payload_type,
        })?;
        apply_answer(&mut codec.parameters, answer);
        media.push((i, j));
    }

    let mut rtx: Vec<(usize, usize)> = Vec::new();
    for (i, codec) in params.codecs.iter().enumerate() {
        if !codec.is_rtx() {
            continue;
        }
        let missing = || OrtcError::MissingMediaCodecForRtx(codec.payload_type);
        let apt = codec.apt().ok_or_else(missing)?;
        let assoc = params
            .codecs
            .iter()
            .position(|m| m.payload_type == apt)
            .ok_or_else(missing)?;
        // An apt pointing at another RTX codec has no media mapping.
        let cap_media = media
            .iter()
            .find(|(pi, _)| *pi == assoc)
            .map(|&(_, j)| j)
            .ok_or_else(missing)?;
        let cap_pt = router_caps.codecs[cap_media].preferred_payload_type;
        let cap_rtx = router_caps
            .codecs
            .iter()
            .position(|c| {
                c.is_rtx() && cap_pt.is_some() && param_as_u8(c.parameters.get("apt")) == cap_pt
            })
            .ok_or(OrtcError::NoRtxCodecForCapabilityCodec(cap_pt.unwrap_or(0)))?;
        rtx.push((i, cap_rtx));
    }

    let mut mapping = RtpMapping::default();
    for &(i, j) in media.iter().chain(rtx.iter()) {
        let mapped = router_caps.codecs[j]
            .preferred_payload_type
            .ok_or_else(|| {
                OrtcError::InconsistentMapping(format!(
                    "router codec {} has no preferredPayloadType",
                    router_caps.codecs[j].mime_type
                ))
            })?;
        mapping.codecs.push(RtpCodecMapping {
            payload_type: params.codecs[i].payload_type,
            mapped_payload_type: mapped,
        });
    }

    if params.encodings.is_empty() {
        params.encodings.push(RtpEncodingParameters {
            dtx: Some(false),
            ..Default::default()
        });
    }
    let base = random_ssrc();
    for (k, enc) in params.encodings.iter().enumerate() {
        mapping.encodings.push(RtpEncodingMapping {
            ssrc: enc.ssrc.filter(|s| *s != 0),
            rid: enc.rid.clone().filter(|r| !r.is_empty()),
            scalability_mode: enc.scalability_mode.clone().filter(|m| !m.is_empty()),
            mapped_ssrc: base.wrapping_add(k as u32),
        });
    }
    Ok(mapping)
}

/// A producer's forwarding type (spec §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProducerType {
    /// One stream without layers.
    Simple,
    /// Several streams (or one VP8/H264 stream with temporal layers).
    Simulcast,
    /// One stream with spatial/temporal layers (VP9, H264-SVC).
    Svc,
}

fn is_media_codec(mime_type: &str) -> bool {
    let lower = mime_type.to_ascii_lowercase();
    !is_rtx_mime_type(&lower)
        && !matches!(
            lower.split_once('/').map(|(_, s)| s),
            Some("ulpfec" | "flexfec" | "flexfec-03" | "red")
        )
}

/// The worker-level producer checks (spec §5.2.4) and the producer type (§5.3). Call after
/// JSON validation. The codec that decides the type is the first media codec.
pub fn validate_producer_rtp_parameters(
    kind: MediaKind,
    params: &RtpParameters,
) -> Result<ProducerType, OrtcError> {
    if params.codecs.is_empty() {
        return Err(invalid("codecs", "empty"));
    }
    for (i, codec) in params.codecs.iter().enumerate() {
        let path = format!("codecs[{i}]");
        if codec.kind() != Some(kind) {
            return Err(invalid(
                &join(&path, "mimeType"),
                "does not match the producer kind",
            ));
        }
        if params.codecs[..i]
            .iter()
            .any(|c| c.payload_type == codec.payload_type)
        {
            return Err(invalid(&join(&path, "payloadType"), "duplicated"));
        }
        if codec.is_rtx() {
            let apt_ok = codec.apt().is_some_and(|apt| {
                params
                    .codecs
                    .iter()
                    .any(|m| m.payload_type == apt && is_media_codec(&m.mime_type))
            });
            if !apt_ok {
                return Err(invalid(&join(&path, "parameters.apt"), "invalid"));
            }
        }
    }
    for (i, ext) in params.header_extensions.iter().enumerate() {
        if ext.id == 0 {
            return Err(invalid(&format!("headerExtensions[{i}].id"), "invalid"));
        }
    }
    let single = params.encodings.len() <= 1;
    for (i, enc) in params.encodings.iter().enumerate() {
        let path = format!("encodings[{i}]");
        if let Some(pt) = enc.codec_payload_type {
            if !params
                .codecs
                .iter()
                .any(|c| c.payload_type == pt && is_media_codec(&c.mime_type))
            {
                return Err(invalid(&join(&path, "codecPayloadType"), "invalid"));
            }
        }
        let has_id = enc.ssrc.is_some() || enc.rid.is_some();
        if !has_id && (!single || params.mid.is_none()) {
            return Err(invalid(&path, "needs ssrc or rid"));
        }
        if let Some(mode) = &enc.scalability_mode {
            if ScalabilityMode::parse(mode).is_none() {
                return Err(invalid(&join(&path, "scalabilityMode"), "invalid"));
            }
        }
    }
    let media = params
        .codecs
        .iter()
        .find(|c| is_media_codec(&c.mime_type))
        .ok_or_else(|| invalid("codecs", "has no media codec"))?;
    let mime = media.mime_type.to_ascii_lowercase();
    let simulcast_ok = matches!(mime.as_str(), "video/vp8" | "video/h264");
    let svc_ok = matches!(mime.as_str(), "video/vp9" | "video/h264-svc");
    let unsupported = |producer_type| OrtcError::CodecNotSupportedForType {
        codec: media.mime_type.clone(),
        producer_type,
    };
    if params.encodings.len() > 1 {
        return if simulcast_ok {
            Ok(ProducerType::Simulcast)
        } else {
            Err(unsupported("simulcast"))
        };
    }
    let mode = ScalabilityMode::parse_or_default(
        params
            .encodings
            .first()
            .and_then(|e| e.scalability_mode.as_deref()),
    );
    if mode.spatial_layers == 1 && mode.temporal_layers == 1 {
        Ok(ProducerType::Simple)
    } else if svc_ok {
        Ok(ProducerType::Svc)
    } else if simulcast_ok {
        Ok(ProducerType::Simulcast)
    } else {
        Err(unsupported("svc"))
    }
}

/// The transport-wide CNAME rule (spec §5.2.2): the first producer carrying `rtcp.cname` sets
/// it (else a random 8-char one is generated), and every producer gets it.
#[derive(Debug, Clone, Default)]
pub struct ProducerCname {
    cname: Option<String>,
}

impl ProducerCname {
    /// No CNAME chosen yet.
    pub fn new() -> Self {
        ProducerCname::default()
    }

    /// The chosen CNAME, if any producer was created.
    pub fn get(&self) -> Option<&str> {
        self.cname.as_deref()
    }

    /// Chooses the CNAME if needed and overrides `params.rtcp.cname` with it.
    pub fn apply(&mut self, params: &mut RtpParameters) -> String {
        let cname = match &self.cname {
            Some(c) => c.clone(),
            None => {
                let c = params
                    .rtcp
                    .cname
                    .clone()
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(|| {
                        uuid::Uuid::new_v4()
                            .simple()
                            .to_string()
                            .chars()
                            .take(8)
                            .collect()
                    });
                self.cname = Some(c.clone());
                c
            }
        };
        params.rtcp.cname = Some(cname.clone());
        cname
    }
}

/// Per-transport consumer MID counter: `"0"`, `"1"`, ... wrapping at 100 000 000.
#[derive(Debug, Clone, Default)]
pub struct ConsumerMidAllocator {
    next: u32,
}

impl ConsumerMidAllocator {
    /// Starts at `"0"`.
    pub fn new() -> Self {
        ConsumerMidAllocator::default()
    }

    /// The next MID.
    pub fn next_mid(&mut self) -> String {
        let mid = self.next.to_string();
        self.next = (self.next + 1) % 100_000_000;
        mid
    }
}

/// The router-side view of a producer that consumers are derived from (spec §5.4): router
/// codecs/PTs with the producer's codec parameters (plus router RTX), the router's
/// consumer-usable header extensions of `kind`, encodings with `mappedSsrc` as `ssrc`
/// (rid/rtx/codecPayloadType dropped), and `rtcp = {cname, reducedSize: true}`.
pub fn get_consumable_rtp_parameters(
    kind: MediaKind,
    params: &RtpParameters,
    router_caps: &RtpCapabilities,
    mapping: &RtpMapping,
) -> Result<RtpParameters, OrtcError> {
    let mut consumable = RtpParameters::default();
    for codec in params.codecs.iter().filter(|c| !c.is_rtx()) {
        let pt = mapping
            .mapped_payload_type(codec.payload_type)
            .ok_or_else(|| {
                OrtcError::InconsistentMapping(format!("no mapping for PT {}", codec.payload_type))
            })?;
        let cap = router_caps
            .codecs
            .iter()
            .find(|c| c.preferred_payload_type == Some(pt))
            .ok_or_else(|| {
                OrtcError::InconsistentMapping(format!("no router codec with PT {pt}"))
            })?;
        consumable.codecs.push(RtpCodecParameters {
            mime_type: cap.mime_type.clone(),
            payload_type: pt,
            clock_rate: cap.clock_rate,
            channels: cap.channels,
            // Keep the producer's parameters (e.g. H264 profile-level-id, opus stereo).
            parameters: codec.parameters.clone(),
            rtcp_feedback: cap.rtcp_feedback.clone(),
        });
        if let Some(rtx) = router_caps
            .codecs
            .iter()
            .find(|c| c.is_rtx() && param_as_u8(c.parameters.get("apt")) == Some(pt))
        {
            if let Some(rtx_pt) = rtx.preferred_payload_type {
                consumable.codecs.push(RtpCodecParameters {
                    mime_type: rtx.mime_type.clone(),
                    payload_type: rtx_pt,
                    clock_rate: rtx.clock_rate,
                    channels: None,
                    parameters: rtx.parameters.clone(),
                    rtcp_feedback: rtx.rtcp_feedback.clone(),
                });
            }
        }
    }
    for ext in &router_caps.header_extensions {
        let usable = matches!(
            ext.direction,
            RtpHeaderExtensionDirection::SendRecv | RtpHeaderExtensionDirection::SendOnly
        );
        if ext.kind != kind || !usable {
            continue;
        }
        consumable
            .header_extensions
            .push(RtpHeaderExtensionParameters {
                uri: ext.uri.clone(),
                id: ext.preferred_id,
                encrypt: ext.preferred_encrypt,
                parameters: Map::new(),
            });
    }
    for (i, enc) in params.encodings.iter().enumerate() {
        let mapped = mapping.encodings.get(i).ok_or_else(|| {
            OrtcError::InconsistentMapping(format!("no mapping for encodings[{i}]"))
        })?;
        let mut enc = enc.clone();
        enc.rid = None;
        enc.rtx = None;
        enc.codec_payload_type = None;
        enc.ssrc = Some(mapped.mapped_ssrc);
        consumable.encodings.push(enc);
    }
    consumable.rtcp = RtcpParameters {
        cname: params.rtcp.cname.clone(),
        reduced_size: true,
        mux: None,
    };
    Ok(consumable)
}

// =============================================================================================
// Consumers (spec §7, §8)

/// Whether an endpoint with `caps` can consume a producer with these consumable parameters:
/// its first strictly-matching codec must exist and be a media codec. Invalid capabilities
/// give `Err` (router-level `canConsume` reports that as `false`).
pub fn can_consume(consumable: &RtpParameters, caps: &RtpCapabilities) -> Result<bool, OrtcError> {
    let mut caps = caps.clone();
    normalize_rtp_capabilities(&mut caps)?;
    let first_match = consumable.codecs.iter().find(|codec| {
        caps.codecs
            .iter()
            .any(|cap| match_codecs(CodecView::from(cap), CodecView::from(*codec), true).is_some())
    });
    Ok(first_match.is_some_and(|c| !c.is_rtx()))
}

/// Removes BWE feedback the consumer's header extensions cannot support: transport-cc ext →
/// drop goog-remb; else abs-send-time → drop transport-cc; else drop both.
fn reduce_bwe_feedback(params: &mut RtpParameters) {
    let has = |u: &str| params.header_extensions.iter().any(|e| e.uri == u);
    let drop: &[&str] = if has(uri::TRANSPORT_WIDE_CC) {
        &["goog-remb"]
    } else if has(uri::ABS_SEND_TIME) {
        &["transport-cc"]
    } else {
        &["transport-cc", "goog-remb"]
    };
    for codec in params.codecs.iter_mut() {
        codec
            .rtcp_feedback
            .retain(|fb| !drop.contains(&fb.fb_type.as_str()));
    }
}

/// Consumer RTP parameters for an endpoint with `remote_caps` (spec §8).
///
/// Codecs: consumable codecs the caps match strictly (RTX skipped unless `enable_rtx`), with
/// the capability's rtcpFeedback (plain `nack` dropped without RTX), then orphan RTX removed.
/// Header extensions: those the caps have with the same uri and id. BWE feedback reduced per
/// transport-cc / abs-send-time. Non-pipe: one encoding with a random SSRC (+1 for RTX),
/// `L<N>T<t>` scalability for N-stream simulcast and the highest `maxBitrate`; pipe: all
/// encodings with consecutive SSRCs from random bases. `mid` is left unset (the transport
/// assigns it with [`ConsumerMidAllocator`]).
pub fn get_consumer_rtp_parameters(
    consumable: &RtpParameters,
    remote_caps: &RtpCapabilities,
    pipe: bool,
    enable_rtx: bool,
) -> Result<RtpParameters, OrtcError> {
    let mut caps = remote_caps.clone();
    for (i, codec) in caps.codecs.iter_mut().enumerate() {
        normalize_codec_capability(codec, &format!("codecs[{i}]"))?;
    }

    let mut consumer = RtpParameters {
        rtcp: consumable.rtcp.clone(),
        ..Default::default()
    };
    for codec in &consumable.codecs {
        if !enable_rtx && codec.is_rtx() {
            continue;
        }
        let Some(cap) = caps.codecs.iter().find(|cap| {
            match_codecs(CodecView::from(*cap), CodecView::from(codec), true).is_some()
        }) else {
            continue;
        };
        let mut codec = codec.clone();
        codec.rtcp_feedback = cap
            .rtcp_feedback
            .iter()
            .filter(|fb| enable_rtx || fb.fb_type != "nack" || !fb.parameter.is_empty())
            .cloned()
            .collect();
        consumer.codecs.push(codec);
    }
    let media_pts: Vec<u8> = consumer
        .codecs
        .iter()
        .filter(|c| !c.is_rtx())
        .map(|c| c.payload_type)
        .collect();
    consumer
        .codecs
        .retain(|c| !c.is_rtx() || c.apt().is_some_and(|apt| media_pts.contains(&apt)));
    let rtx_supported = consumer.codecs.iter().any(|c| c.is_rtx());
    if consumer.codecs.first().is_none_or(|c| c.is_rtx()) {
        return Err(OrtcError::NoCompatibleMediaCodecs);
    }

    consumer.header_extensions = consumable
        .header_extensions
        .iter()
        .filter(|ext| {
            caps.header_extensions
                .iter()
                .any(|cap| cap.preferred_id == ext.id && cap.uri == ext.uri)
        })
        .cloned()
        .collect();
    reduce_bwe_feedback(&mut consumer);

    if !pipe {
        let ssrc = random_ssrc();
        let n = consumable.encodings.len();
        let mut scalability_mode = consumable
            .encodings
            .iter()
            .find_map(|e| e.scalability_mode.clone().filter(|m| !m.is_empty()));
        if n > 1 {
            let temporal =
                ScalabilityMode::parse_or_default(scalability_mode.as_deref()).temporal_layers;
            scalability_mode = Some(format!("L{n}T{temporal}"));
        }
        let max_bitrate = consumable
            .encodings
            .iter()
            .filter_map(|e| e.max_bitrate)
            .max()
            .filter(|b| *b > 0);
        consumer.encodings.push(RtpEncodingParameters {
            ssrc: Some(ssrc),
            rtx: rtx_supported.then(|| RtpEncodingRtx {
                ssrc: ssrc.wrapping_add(1),
            }),
            scalability_mode,
            max_bitrate,
            ..Default::default()
        });
    } else {
        consumer.encodings = pipe_encodings(&consumable.encodings, rtx_supported);
    }
    Ok(consumer)
}

fn pipe_encodings(encodings: &[RtpEncodingParameters], rtx: bool) -> Vec<RtpEncodingParameters> {
    let base = random_ssrc();
    let rtx_base = random_ssrc();
    encodings
        .iter()
        .enumerate()
        .map(|(i, enc)| {
            let mut enc = enc.clone();
            enc.ssrc = Some(base.wrapping_add(i as u32));
            enc.rtx = rtx.then(|| RtpEncodingRtx {
                ssrc: rtx_base.wrapping_add(i as u32),
            });
            enc
        })
        .collect()
}

/// Consumer parameters for a pipe transport (router-to-router / core-to-core, spec §8.1): all
/// consumable codecs (RTX only with `enable_rtx`), feedback reduced to `nack pli`, `ccm fir`
/// and (with RTX) `nack`; header extensions without mid / abs-send-time / transport-cc; all
/// encodings kept with consecutive SSRCs (and RTX SSRCs) from random bases; no mid.
pub fn get_pipe_consumer_rtp_parameters(
    consumable: &RtpParameters,
    enable_rtx: bool,
) -> RtpParameters {
    let codecs = consumable
        .codecs
        .iter()
        .filter(|c| enable_rtx || !c.is_rtx())
        .map(|c| {
            let mut c = c.clone();
            c.rtcp_feedback.retain(|fb| {
                (fb.fb_type == "nack" && fb.parameter == "pli")
                    || (fb.fb_type == "ccm" && fb.parameter == "fir")
                    || (enable_rtx && fb.fb_type == "nack" && fb.parameter.is_empty())
            });
            c
        })
        .collect();
    let header_extensions = consumable
        .header_extensions
        .iter()
        .filter(|e| {
            e.uri != uri::MID && e.uri != uri::ABS_SEND_TIME && e.uri != uri::TRANSPORT_WIDE_CC
        })
        .cloned()
        .collect();
    RtpParameters {
        mid: None,
        codecs,
        header_extensions,
        encodings: pipe_encodings(&consumable.encodings, enable_rtx),
        rtcp: consumable.rtcp.clone(),
    }
}

// =============================================================================================
// Data-plane lookups

/// The id negotiated for a header extension URI in `params` (e.g. [`uri::MID`]).
pub fn header_extension_id(params: &RtpParameters, ext_uri: &str) -> Option<u8> {
    params
        .header_extensions
        .iter()
        .find(|e| e.uri == ext_uri)
        .map(|e| e.id)
}

/// The codec with payload type `payload_type` in `params`.
pub fn codec_by_payload_type(
    params: &RtpParameters,
    payload_type: u8,
) -> Option<&RtpCodecParameters> {
    params
        .codecs
        .iter()
        .find(|c| c.payload_type == payload_type)
}

/// The RTX codec whose `apt` is `media_payload_type`.
pub fn rtx_codec_for(
    params: &RtpParameters,
    media_payload_type: u8,
) -> Option<&RtpCodecParameters> {
    params
        .codecs
        .iter()
        .find(|c| c.is_rtx() && c.apt() == Some(media_payload_type))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const V_FB: &str = r#"[{"type":"nack","parameter":""},{"type":"nack","parameter":"pli"},{"type":"ccm","parameter":"fir"},{"type":"goog-remb","parameter":""},{"type":"transport-cc","parameter":""}]"#;

    fn demo_media_codecs() -> Vec<RtpCodecCapability> {
        validate_media_codecs(&json!([
            {"kind":"audio","mimeType":"audio/opus","clockRate":48000,"channels":2},
            {"kind":"video","mimeType":"video/VP8","clockRate":90000,
             "parameters":{"x-google-start-bitrate":1000}},
            {"kind":"video","mimeType":"video/VP9","clockRate":90000,
             "parameters":{"profile-id":2,"x-google-start-bitrate":1000}},
            {"kind":"video","mimeType":"video/h264","clockRate":90000,
             "parameters":{"packetization-mode":1,"profile-level-id":"4d0032",
                           "level-asymmetry-allowed":1,"x-google-start-bitrate":1000}},
            {"kind":"video","mimeType":"video/h264","clockRate":90000,
             "parameters":{"packetization-mode":1,"profile-level-id":"42e01f",
                           "level-asymmetry-allowed":1,"x-google-start-bitrate":1000}}
        ]))
        .unwrap()
    }

    fn router_caps() -> RtpCapabilities {
        generate_router_rtp_capabilities(&demo_media_codecs()).unwrap()
    }

    fn ext_cap(kind: &str, uri: &str, id: u8, dir: &str) -> Value {
        json!({"kind":kind,"uri":uri,"preferredId":id,"preferredEncrypt":false,"direction":dir})
    }

    /// Spec §4.1, transcribed.
    #[test]
    fn demo_router_capabilities_exact() {
        let v_fb: Value = serde_json::from_str(V_FB).unwrap();
        let h264 = |pt: u8, plid: &str| {
            json!({"kind":"video","mimeType":"video/H264","clockRate":90000,"rtcpFeedback":v_fb,
                   "parameters":{"level-asymmetry-allowed":1,"packetization-mode":1,
                                 "profile-level-id":plid,"x-google-start-bitrate":1000},
                   "preferredPayloadType":pt})
        };
        let rtx = |pt: u8, apt: u8| {
            json!({"kind":"video","mimeType":"video/rtx","preferredPayloadType":pt,
                   "clockRate":90000,"parameters":{"apt":apt},"rtcpFeedback":[]})
        };
        let mid = "urn:ietf:params:rtp-hdrext:sdes:mid";
        let ast = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
        let twcc = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
        let act = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time";
        let pd = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay";
        let expected = json!({
            "codecs": [
                {"kind":"audio","mimeType":"audio/opus","clockRate":48000,"channels":2,
                 "rtcpFeedback":[{"type":"nack","parameter":""},{"type":"transport-cc","parameter":""}],
                 "parameters":{},"preferredPayloadType":100},
                {"kind":"video","mimeType":"video/VP8","clockRate":90000,"rtcpFeedback":v_fb,
                 "parameters":{"x-google-start-bitrate":1000},"preferredPayloadType":101},
                rtx(102, 101),
                {"kind":"video","mimeType":"video/VP9","clockRate":90000,"rtcpFeedback":v_fb,
                 "parameters":{"profile-id":2,"x-google-start-bitrate":1000},"preferredPayloadType":103},
                rtx(104, 103),
                h264(105, "4d0032"),
                rtx(106, 105),
                h264(107, "42e01f"),
                rtx(108, 107)
            ],
            "headerExtensions": [
                ext_cap("audio", mid, 1, "sendrecv"),
                ext_cap("video", mid, 1, "sendrecv"),
                ext_cap("video", "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id", 2, "recvonly"),
                ext_cap("video", "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id", 3, "recvonly"),
                ext_cap("audio", ast, 4, "sendrecv"),
                ext_cap("video", ast, 4, "sendrecv"),
                ext_cap("audio", twcc, 5, "recvonly"),
                ext_cap("video", twcc, 5, "sendrecv"),
                ext_cap("video", "http://tools.ietf.org/html/draft-ietf-avtext-framemarking-07", 6, "sendrecv"),
                ext_cap("video", "urn:ietf:params:rtp-hdrext:framemarking", 7, "sendrecv"),
                ext_cap("audio", "urn:ietf:params:rtp-hdrext:ssrc-audio-level", 10, "sendrecv"),
                ext_cap("video", "urn:3gpp:video-orientation", 11, "sendrecv"),
                ext_cap("video", "urn:ietf:params:rtp-hdrext:toffset", 12, "sendrecv"),
                ext_cap("audio", act, 13, "sendrecv"),
                ext_cap("video", act, 13, "sendrecv"),
                ext_cap("audio", pd, 14, "sendrecv"),
                ext_cap("video", pd, 14, "sendrecv")
            ]
        });
        assert_eq!(serde_json::to_value(router_caps()).unwrap(), expected);
    }

    #[test]
    fn router_capabilities_errors_and_fixed_pts() {
        let parse = |v: Value| validate_media_codecs(&v).unwrap();
        assert_eq!(
            generate_router_rtp_capabilities(&parse(
                json!([{"mimeType":"audio/foo","clockRate":8000}])
            )),
            Err(OrtcError::MediaCodecNotSupported("audio/foo".into()))
        );
        // Opus must be stereo in the table: mono opus is not supported.
        assert!(generate_router_rtp_capabilities(&parse(
            json!([{"mimeType":"audio/opus","clockRate":48000}])
        ))
        .is_err());
        let caps = generate_router_rtp_capabilities(&parse(json!([
            {"mimeType":"audio/PCMU","clockRate":8000},
            {"mimeType":"video/VP8","clockRate":90000,"preferredPayloadType":101},
            {"mimeType":"audio/opus","clockRate":48000,"channels":2}
        ])))
        .unwrap();
        let pts: Vec<_> = caps
            .codecs
            .iter()
            .map(|c| c.preferred_payload_type.unwrap())
            .collect();
        // PCMU keeps its static PT; configured 101 is removed from the pool.
        assert_eq!(pts, vec![0, 101, 100, 102]);
        assert_eq!(caps.codecs[0].channels, Some(1));
        assert_eq!(caps.codecs[0].kind, MediaKind::Audio);
        assert_eq!(
            generate_router_rtp_capabilities(&parse(json!([
                {"mimeType":"video/VP8","clockRate":90000},
                {"mimeType":"video/VP9","clockRate":90000,"preferredPayloadType":101}
            ]))),
            Err(OrtcError::DuplicatedPreferredPayloadType(101))
        );
        // 32 dynamic PTs = 16 video codecs with RTX; a 17th cannot be allocated.
        let many: Vec<Value> = (0..17)
            .map(|_| json!({"mimeType":"video/VP8","clockRate":90000}))
            .collect();
        assert!(
            generate_router_rtp_capabilities(&parse(Value::Array(many[..16].to_vec()))).is_ok()
        );
        assert_eq!(
            generate_router_rtp_capabilities(&parse(Value::Array(many))),
            Err(OrtcError::DynamicPayloadTypesExhausted)
        );
        let multi = generate_router_rtp_capabilities(&parse(json!([
            {"mimeType":"audio/multiopus","clockRate":48000,"channels":6,
             "parameters":{"num_streams":4,"coupled_streams":2}}
        ])))
        .unwrap();
        assert_eq!(
            multi.codecs[0].parameters["channel_mapping"],
            json!("0,4,1,2,3,5")
        );
    }

    fn chrome_audio_producer() -> Value {
        json!({"mid":"0",
         "codecs":[{"mimeType":"audio/opus","payloadType":111,"clockRate":48000,"channels":2,
                    "parameters":{"minptime":10,"useinbandfec":1,"sprop-stereo":1,"usedtx":1},
                    "rtcpFeedback":[{"type":"transport-cc","parameter":""},{"type":"nack","parameter":""}]}],
         "headerExtensions":[{"uri":"urn:ietf:params:rtp-hdrext:sdes:mid","id":4,"encrypt":false,"parameters":{}},
                             {"uri":"http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time","id":2,"encrypt":false,"parameters":{}},
                             {"uri":"urn:ietf:params:rtp-hdrext:ssrc-audio-level","id":1,"encrypt":false,"parameters":{}}],
         "encodings":[{"ssrc":1489362951u32,"dtx":false}],
         "rtcp":{"cname":"k3JvI9+7v0d4dX1q","reducedSize":true}})
    }

    fn chrome_vp8_simulcast_producer() -> Value {
        let fb: Value = serde_json::from_str(V_FB).unwrap();
        json!({"mid":"1",
         "codecs":[{"mimeType":"video/VP8","payloadType":96,"clockRate":90000,"parameters":{},"rtcpFeedback":fb},
                   {"mimeType":"video/rtx","payloadType":97,"clockRate":90000,"parameters":{"apt":96},"rtcpFeedback":[]}],
         "headerExtensions":[
            {"uri":"urn:ietf:params:rtp-hdrext:sdes:mid","id":4,"encrypt":false,"parameters":{}},
            {"uri":"urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id","id":10,"encrypt":false,"parameters":{}},
            {"uri":"urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id","id":11,"encrypt":false,"parameters":{}},
            {"uri":"http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01","id":3,"encrypt":false,"parameters":{}}],
         "encodings":[{"rid":"r0","scalabilityMode":"L1T3","scaleResolutionDownBy":4,"maxBitrate":500000,"dtx":false},
                      {"rid":"r1","scalabilityMode":"L1T3","scaleResolutionDownBy":2,"maxBitrate":1000000,"dtx":false},
                      {"rid":"r2","scalabilityMode":"L1T3","scaleResolutionDownBy":1,"maxBitrate":5000000,"dtx":false}],
         "rtcp":{"cname":"k3JvI9+7v0d4dX1q","reducedSize":true}})
    }

    /// What mediasoup-client's `device.rtpCapabilities` looks like for Chrome after loading the
    /// demo router capabilities (router PTs and ids echoed; no framemarking, no rid/rrid).
    fn chrome_recv_caps() -> RtpCapabilities {
        let fb: Value = serde_json::from_str(V_FB).unwrap();
        let mid = "urn:ietf:params:rtp-hdrext:sdes:mid";
        let ast = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
        let twcc = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
        let act = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time";
        let pd = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay";
        validate_rtp_capabilities(&json!({
            "codecs":[
                {"mimeType":"audio/opus","kind":"audio","preferredPayloadType":100,"clockRate":48000,"channels":2,
                 "parameters":{"minptime":10,"useinbandfec":1},
                 "rtcpFeedback":[{"type":"nack","parameter":""},{"type":"transport-cc","parameter":""}]},
                {"mimeType":"video/VP8","kind":"video","preferredPayloadType":101,"clockRate":90000,"parameters":{},"rtcpFeedback":fb},
                {"mimeType":"video/rtx","kind":"video","preferredPayloadType":102,"clockRate":90000,"parameters":{"apt":101},"rtcpFeedback":[]},
                {"mimeType":"video/H264","kind":"video","preferredPayloadType":107,"clockRate":90000,
                 "parameters":{"level-asymmetry-allowed":1,"packetization-mode":1,"profile-level-id":"42e01f"},"rtcpFeedback":fb},
                {"mimeType":"video/rtx","kind":"video","preferredPayloadType":108,"clockRate":90000,"parameters":{"apt":107},"rtcpFeedback":[]}
            ],
            "headerExtensions":[
                ext_cap("audio", mid, 1, "sendrecv"), ext_cap("video", mid, 1, "sendrecv"),
                ext_cap("audio", ast, 4, "sendrecv"), ext_cap("video", ast, 4, "sendrecv"),
                ext_cap("video", twcc, 5, "sendrecv"),
                ext_cap("audio", "urn:ietf:params:rtp-hdrext:ssrc-audio-level", 10, "sendrecv"),
                ext_cap("video", "urn:3gpp:video-orientation", 11, "sendrecv"),
                ext_cap("video", "urn:ietf:params:rtp-hdrext:toffset", 12, "sendrecv"),
                ext_cap("audio", act, 13, "sendrecv"), ext_cap("video", act, 13, "sendrecv"),
                ext_cap("audio", pd, 14, "sendrecv"), ext_cap("video", pd, 14, "sendrecv")
            ]
        }))
        .unwrap()
    }

    fn in_ssrc_range(ssrc: u32) -> bool {
        (100_000_000..=999_999_999 + 16).contains(&ssrc)
    }

    #[test]
    fn validation_names_offending_field() {
        let err = |v: Value| validate_rtp_parameters(&v).unwrap_err().to_string();
        let mut p = chrome_vp8_simulcast_producer();
        p["codecs"][1]
            .as_object_mut()
            .unwrap()
            .remove("payloadType");
        assert_eq!(err(p), "invalid parameters: codecs[1].payloadType missing");
        let mut p = chrome_vp8_simulcast_producer();
        p["codecs"][0]["mimeType"] = json!("vp8");
        assert_eq!(err(p), "invalid parameters: codecs[0].mimeType invalid");
        let mut p = chrome_vp8_simulcast_producer();
        p["codecs"][1]["parameters"]["apt"] = json!("96");
        assert_eq!(
            err(p),
            "invalid parameters: codecs[1].parameters.apt invalid"
        );
        let mut p = chrome_vp8_simulcast_producer();
        p["codecs"][0]["parameters"]["x"] = json!([1]);
        assert_eq!(err(p), "invalid parameters: codecs[0].parameters.x invalid");
        let mut p = chrome_vp8_simulcast_producer();
        p["headerExtensions"][2]["id"] = json!(0);
        assert_eq!(err(p), "invalid parameters: headerExtensions[2].id invalid");
        let mut p = chrome_vp8_simulcast_producer();
        p["encodings"][1]["rtx"] = json!({"foo":1});
        assert_eq!(err(p), "invalid parameters: encodings[1].rtx.ssrc missing");
        let mut p = chrome_vp8_simulcast_producer();
        p["encodings"][2]["ssrc"] = json!("123");
        assert_eq!(err(p), "invalid parameters: encodings[2].ssrc invalid");
        let mut p = chrome_vp8_simulcast_producer();
        p["codecs"][0]["payloadType"] = json!(200);
        assert_eq!(err(p), "invalid parameters: codecs[0].payloadType invalid");
        assert_eq!(
            err(json!({"mid":"0"})),
            "invalid parameters: codecs missing"
        );
        assert_eq!(
            err(json!([])),
            "invalid parameters: rtpParameters is not an object"
        );
        let caps_err = validate_rtp_capabilities(
            &json!({"codecs":[],"headerExtensions":[{"uri":"x","preferredId":1}]}),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            caps_err,
            "invalid parameters: headerExtensions[0].kind invalid"
        );
    }

    #[test]
    fn validation_applies_defaults() {
        // Plain RTP (ffmpeg): no mid, no extensions, no cname, minimal codec.
        let p = validate_rtp_parameters(&json!({
            "codecs":[{"mimeType":"audio/opus","payloadType":101,"clockRate":48000,
                       "rtcpFeedback":[{"type":"nack"}],"unknownField":true}],
            "encodings":[{"ssrc":1111}],
            "rtcp":{"reducedSize":false}
        }))
        .unwrap();
        assert_eq!(p.codecs[0].channels, Some(1));
        assert_eq!(
            p.codecs[0].rtcp_feedback,
            vec![RtcpFeedback::new("nack", "")]
        );
        assert_eq!(p.encodings[0].dtx, Some(false));
        assert!(p.rtcp.reduced_size);
        assert_eq!(p.mid, None);
        assert!(p.header_extensions.is_empty());
        let caps = validate_rtp_capabilities(&json!({
            "codecs":[{"mimeType":"video/VP8","clockRate":90000,"channels":3}],
            "headerExtensions":[{"kind":"video","uri":"urn:3gpp:video-orientation","preferredId":11}]
        }))
        .unwrap();
        assert_eq!(caps.codecs[0].kind, MediaKind::Video);
        assert_eq!(caps.codecs[0].channels, None);
        assert_eq!(
            caps.header_extensions[0].direction,
            RtpHeaderExtensionDirection::SendRecv
        );
        assert!(!caps.header_extensions[0].preferred_encrypt);
        assert_eq!(
            validate_rtp_capabilities(&json!({})).unwrap(),
            RtpCapabilities::default()
        );
    }

    #[test]
    fn chrome_audio_producer_mapped_and_consumed() {
        let caps = router_caps();
        let mut params = validate_rtp_parameters(&chrome_audio_producer()).unwrap();
        assert_eq!(
            validate_producer_rtp_parameters(MediaKind::Audio, &params),
            Ok(ProducerType::Simple)
        );
        let mapping = get_producer_rtp_parameters_mapping(&mut params, &caps).unwrap();
        assert_eq!(
            mapping.codecs,
            vec![RtpCodecMapping {
                payload_type: 111,
                mapped_payload_type: 100
            }]
        );
        assert_eq!(mapping.encodings.len(), 1);
        assert_eq!(mapping.encodings[0].ssrc, Some(1489362951));
        assert!(in_ssrc_range(mapping.encodings[0].mapped_ssrc));

        let consumable =
            get_consumable_rtp_parameters(MediaKind::Audio, &params, &caps, &mapping).unwrap();
        let uris: Vec<_> = consumable
            .header_extensions
            .iter()
            .map(|e| (e.uri.as_str(), e.id))
            .collect();
        assert_eq!(
            uris,
            vec![
                (uri::MID, 1),
                (uri::ABS_SEND_TIME, 4),
                (uri::AUDIO_LEVEL, 10),
                (uri::ABS_CAPTURE_TIME, 13),
                (uri::PLAYOUT_DELAY, 14)
            ]
        );
        assert_eq!(consumable.codecs[0].parameters["usedtx"], json!(1));
        assert_eq!(
            consumable.encodings[0].ssrc,
            Some(mapping.encodings[0].mapped_ssrc)
        );

        let remote = chrome_recv_caps();
        assert_eq!(can_consume(&consumable, &remote), Ok(true));
        let consumer = get_consumer_rtp_parameters(&consumable, &remote, false, false).unwrap();
        // Audio: no transport-cc extension (recvonly), so transport-cc fb goes, nack stays
        // only with RTX enabled.
        assert_eq!(consumer.codecs.len(), 1);
        assert_eq!(consumer.codecs[0].payload_type, 100);
        assert!(consumer.codecs[0].rtcp_feedback.is_empty());
        assert_eq!(header_extension_id(&consumer, uri::TRANSPORT_WIDE_CC), None);
        assert_eq!(header_extension_id(&consumer, uri::MID), Some(1));
        assert_eq!(header_extension_id(&consumer, uri::AUDIO_LEVEL), Some(10));
        assert_eq!(consumer.encodings[0].rtx, None);
        let with_rtx = get_consumer_rtp_parameters(&consumable, &remote, false, true).unwrap();
        assert_eq!(
            with_rtx.codecs[0].rtcp_feedback,
            vec![RtcpFeedback::new("nack", "")]
        );
        assert_eq!(with_rtx.encodings[0].rtx, None, "no RTX codec for audio");
    }

    #[test]
    fn chrome_vp8_simulcast_mapped_and_consumed_like_spec_example() {
        let caps = router_caps();
        let mut params = validate_rtp_parameters(&chrome_vp8_simulcast_producer()).unwrap();
        let mut cname = ProducerCname::new();
        assert_eq!(cname.apply(&mut params), "k3JvI9+7v0d4dX1q");
        assert_eq!(
            validate_producer_rtp_parameters(MediaKind::Video, &params),
            Ok(ProducerType::Simulcast)
        );
        let mapping = get_producer_rtp_parameters_mapping(&mut params, &caps).unwrap();
        assert_eq!(
            mapping.codecs,
            vec![
                RtpCodecMapping {
                    payload_type: 96,
                    mapped_payload_type: 101
                },
                RtpCodecMapping {
                    payload_type: 97,
                    mapped_payload_type: 102
                }
            ]
        );
        let base = mapping.encodings[0].mapped_ssrc;
        assert!(in_ssrc_range(base));
        for (i, enc) in mapping.encodings.iter().enumerate() {
            assert_eq!(enc.rid.as_deref(), Some(["r0", "r1", "r2"][i]));
            assert_eq!(enc.ssrc, None);
            assert_eq!(enc.scalability_mode.as_deref(), Some("L1T3"));
            assert_eq!(enc.mapped_ssrc, base + i as u32);
        }
        assert_eq!(
            serde_json::to_value(&mapping.encodings[0]).unwrap(),
            json!({"rid":"r0","scalabilityMode":"L1T3","mappedSsrc":base})
        );

        let consumable =
            get_consumable_rtp_parameters(MediaKind::Video, &params, &caps, &mapping).unwrap();
        assert_eq!(consumable.codecs.len(), 2);
        assert_eq!(consumable.codecs[1].payload_type, 102);
        assert_eq!(
            consumable.header_extensions.len(),
            9,
            "rid/rrid are recvonly"
        );
        assert_eq!(
            serde_json::to_value(&consumable.encodings[2]).unwrap(),
            json!({"ssrc":base + 2,"dtx":false,"scalabilityMode":"L1T3","scaleResolutionDownBy":1.0,"maxBitrate":5000000})
        );
        assert_eq!(
            serde_json::to_value(&consumable.rtcp).unwrap(),
            json!({"cname":"k3JvI9+7v0d4dX1q","reducedSize":true})
        );

        let remote = chrome_recv_caps();
        assert_eq!(can_consume(&consumable, &remote), Ok(true));
        let mut mids = ConsumerMidAllocator::new();
        for expected in ["0", "1", "2"] {
            assert_eq!(mids.next_mid(), expected);
        }
        let mut consumer = get_consumer_rtp_parameters(&consumable, &remote, false, true).unwrap();
        consumer.mid = Some(mids.next_mid());
        let ssrc = consumer.encodings[0].ssrc.unwrap();
        assert!(in_ssrc_range(ssrc));
        let ext = |uri: &str, id: u8| json!({"uri":uri,"id":id,"encrypt":false,"parameters":{}});
        // Spec §8 example.
        let expected = json!({"mid":"3",
         "codecs":[{"mimeType":"video/VP8","payloadType":101,"clockRate":90000,"parameters":{},
                    "rtcpFeedback":[{"type":"nack","parameter":""},{"type":"nack","parameter":"pli"},
                                    {"type":"ccm","parameter":"fir"},{"type":"transport-cc","parameter":""}]},
                   {"mimeType":"video/rtx","payloadType":102,"clockRate":90000,"parameters":{"apt":101},"rtcpFeedback":[]}],
         "headerExtensions":[ext("urn:ietf:params:rtp-hdrext:sdes:mid",1),
           ext("http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",4),
           ext("http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",5),
           ext("urn:3gpp:video-orientation",11),ext("urn:ietf:params:rtp-hdrext:toffset",12),
           ext("http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time",13),
           ext("http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",14)],
         "encodings":[{"ssrc":ssrc,"rtx":{"ssrc":ssrc + 1},"scalabilityMode":"L3T3","maxBitrate":5000000}],
         "rtcp":{"cname":"k3JvI9+7v0d4dX1q","reducedSize":true}});
        assert_eq!(serde_json::to_value(&consumer).unwrap(), expected);

        // Data-plane lookups.
        assert_eq!(
            codec_by_payload_type(&consumer, 102).map(|c| c.mime_type.as_str()),
            Some("video/rtx")
        );
        assert_eq!(codec_by_payload_type(&consumer, 96), None);
        assert_eq!(
            rtx_codec_for(&consumer, 101).map(|c| c.payload_type),
            Some(102)
        );
        assert_eq!(header_extension_id(&consumer, uri::ABS_SEND_TIME), Some(4));
        assert_eq!(header_extension_id(&consumer, uri::FRAME_MARKING), None);

        // Without RTX: no RTX codec, no plain nack, no RTX SSRC.
        let no_rtx = get_consumer_rtp_parameters(&consumable, &remote, false, false).unwrap();
        assert_eq!(no_rtx.codecs.len(), 1);
        assert!(!no_rtx.codecs[0]
            .rtcp_feedback
            .contains(&RtcpFeedback::new("nack", "")));
        assert!(no_rtx.codecs[0]
            .rtcp_feedback
            .contains(&RtcpFeedback::new("nack", "pli")));
        assert_eq!(no_rtx.encodings[0].rtx, None);

        // Pipe consumer via getConsumerRtpParameters(pipe=true): all encodings kept.
        let piped = get_consumer_rtp_parameters(&consumable, &remote, true, true).unwrap();
        assert_eq!(piped.encodings.len(), 3);
        let (b, rb) = (
            piped.encodings[0].ssrc.unwrap(),
            piped.encodings[0].rtx.unwrap().ssrc,
        );
        for (i, e) in piped.encodings.iter().enumerate() {
            assert_eq!(e.ssrc, Some(b + i as u32));
            assert_eq!(
                e.rtx,
                Some(RtpEncodingRtx {
                    ssrc: rb + i as u32
                })
            );
            assert_eq!(e.scalability_mode.as_deref(), Some("L1T3"));
        }
    }

    #[test]
    fn pipe_consumer_parameters() {
        let caps = router_caps();
        let mut params = validate_rtp_parameters(&chrome_vp8_simulcast_producer()).unwrap();
        let mapping = get_producer_rtp_parameters_mapping(&mut params, &caps).unwrap();
        let consumable =
            get_consumable_rtp_parameters(MediaKind::Video, &params, &caps, &mapping).unwrap();
        let pipe = get_pipe_consumer_rtp_parameters(&consumable, true);
        assert_eq!(pipe.mid, None);
        assert_eq!(pipe.codecs.len(), 2);
        assert_eq!(
            pipe.codecs[0].rtcp_feedback,
            vec![
                RtcpFeedback::new("nack", ""),
                RtcpFeedback::new("nack", "pli"),
                RtcpFeedback::new("ccm", "fir")
            ]
        );
        for u in [uri::MID, uri::ABS_SEND_TIME, uri::TRANSPORT_WIDE_CC] {
            assert_eq!(header_extension_id(&pipe, u), None);
        }
        assert_eq!(header_extension_id(&pipe, uri::VIDEO_ORIENTATION), Some(11));
        assert_eq!(pipe.encodings.len(), 3);
        let b = pipe.encodings[0].ssrc.unwrap();
        assert!(in_ssrc_range(b));
        assert_eq!(pipe.encodings[2].ssrc, Some(b + 2));
        assert!(pipe.encodings.iter().all(|e| e.rtx.is_some()));

        let pipe = get_pipe_consumer_rtp_parameters(&consumable, false);
        assert_eq!(pipe.codecs.len(), 1);
        assert_eq!(
            pipe.codecs[0].rtcp_feedback,
            vec![
                RtcpFeedback::new("nack", "pli"),
                RtcpFeedback::new("ccm", "fir")
            ]
        );
        assert!(pipe.encodings.iter().all(|e| e.rtx.is_none()));
    }

    fn h264_producer(plid: &str, asym: bool, pmode: i64) -> RtpParameters {
        let mut params = json!({"packetization-mode":pmode,"profile-level-id":plid});
        if asym {
            params["level-asymmetry-allowed"] = json!(1);
        }
        validate_rtp_parameters(&json!({
            "mid":"2",
            "codecs":[{"mimeType":"video/H264","payloadType":125,"clockRate":90000,"parameters":params,"rtcpFeedback":[]},
                      {"mimeType":"video/rtx","payloadType":107,"clockRate":90000,"parameters":{"apt":125}}],
            "encodings":[{"ssrc":1328695815u32,"rtx":{"ssrc":2544251937u32}}]
        }))
        .unwrap()
    }

    #[test]
    fn h264_producer_matching() {
        let caps = router_caps();
        // CB 5.0 with asymmetry → router 107 (CB 3.1), keeps its own level.
        let mut p = h264_producer("42e032", true, 1);
        let m = get_producer_rtp_parameters_mapping(&mut p, &caps).unwrap();
        assert_eq!(
            m.codecs[0],
            RtpCodecMapping {
                payload_type: 125,
                mapped_payload_type: 107
            }
        );
        assert_eq!(
            m.codecs[1],
            RtpCodecMapping {
                payload_type: 107,
                mapped_payload_type: 108
            }
        );
        assert_eq!(p.codecs[0].parameters["profile-level-id"], json!("42e032"));
        // Chrome's 42001f is Baseline, not CB: no router codec has that profile.
        let mut p = h264_producer("42001f", true, 1);
        assert_eq!(
            get_producer_rtp_parameters_mapping(&mut p, &caps),
            Err(OrtcError::UnsupportedCodec {
                mime_type: "video/H264".into(),
                payload_type: 125
            })
        );
        // High profile is rejected.
        let mut p = h264_producer("640032", true, 1);
        assert!(matches!(
            get_producer_rtp_parameters_mapping(&mut p, &caps),
            Err(OrtcError::UnsupportedCodec { .. })
        ));
        // packetization-mode must be equal.
        let mut p = h264_producer("42e01f", true, 0);
        assert!(get_producer_rtp_parameters_mapping(&mut p, &caps).is_err());
        // Main 3.1 without asymmetry: answer is min(producer, router) = 3.1 (rewritten canonically).
        let mut p = h264_producer("4d401f", false, 1);
        let m = get_producer_rtp_parameters_mapping(&mut p, &caps).unwrap();
        assert_eq!(m.codecs[0].mapped_payload_type, 105);
        assert_eq!(p.codecs[0].parameters["profile-level-id"], json!("4d001f"));
        // Main 5.1 without asymmetry against router Main 5.0: min level 5.0.
        let mut p = h264_producer("4d0033", false, 1);
        get_producer_rtp_parameters_mapping(&mut p, &caps).unwrap();
        assert_eq!(p.codecs[0].parameters["profile-level-id"], json!("4d0032"));

        // A consumer only supporting CB cannot consume a Main producer.
        let mut p = h264_producer("4d0032", true, 1);
        let m = get_producer_rtp_parameters_mapping(&mut p, &caps).unwrap();
        let consumable = get_consumable_rtp_parameters(MediaKind::Video, &p, &caps, &m).unwrap();
        assert_eq!(consumable.codecs[0].payload_type, 105);
        let remote = chrome_recv_caps();
        assert_eq!(can_consume(&consumable, &remote), Ok(false));
        assert_eq!(
            get_consumer_rtp_parameters(&consumable, &remote, false, true),
            Err(OrtcError::NoCompatibleMediaCodecs)
        );
    }

    #[test]
    fn h264_profile_level_id_rules() {
        use h264::*;
        let p = |s| parse_profile_level_id(s);
        assert_eq!(
            p("42e01f"),
            Some(ProfileLevelId {
                profile: Profile::ConstrainedBaseline,
                level: 31
            })
        );
        assert_eq!(p("42001f").unwrap().profile, Profile::Baseline);
        assert_eq!(p("4d0032").unwrap().profile, Profile::Main);
        assert_eq!(p("4d801f").unwrap().profile, Profile::ConstrainedBaseline);
        assert_eq!(p("58c01f").unwrap().profile, Profile::ConstrainedBaseline);
        assert_eq!(p("58801f").unwrap().profile, Profile::Baseline);
        assert_eq!(p("640c1f").unwrap().profile, Profile::ConstrainedHigh);
        assert_eq!(p("64001f").unwrap().profile, Profile::High);
        assert_eq!(p("f4001f").unwrap().profile, Profile::PredictiveHigh444);
        assert_eq!(p("42f00b").unwrap().level, LEVEL_1B);
        assert_eq!(p("42e00b").unwrap().level, 11);
        assert_eq!(p("42e0ff"), None, "unknown level");
        assert_eq!(p("65001f"), None, "unknown profile");
        assert_eq!(p("42e01"), None);
        assert_eq!(p("42e0zz"), None);
        assert_eq!(p("000000"), None);
        let to_s = |profile, level| profile_level_id_to_string(ProfileLevelId { profile, level });
        assert_eq!(to_s(Profile::Main, LEVEL_1B).as_deref(), Some("4d100b"));
        assert_eq!(to_s(Profile::High, LEVEL_1B), None);
        assert_eq!(
            to_s(Profile::ConstrainedHigh, 52).as_deref(),
            Some("640c34")
        );

        let params = |v: Value| v.as_object().unwrap().clone();
        let answer =
            |a: Value, b: Value| generate_profile_level_id_for_answer(&params(a), &params(b));
        assert_eq!(answer(json!({}), json!({})), Ok(None));
        assert_eq!(
            answer(json!({"profile-level-id":"42e01f"}), json!({}))
                .unwrap()
                .as_deref(),
            Some("42e01f")
        );
        assert_eq!(
            answer(
                json!({"profile-level-id":"42e034","level-asymmetry-allowed":"1"}),
                json!({"profile-level-id":"42e01f","level-asymmetry-allowed":1})
            )
            .unwrap()
            .as_deref(),
            Some("42e034")
        );
        // 1b is below 1.1 but not below 1.
        assert_eq!(
            answer(
                json!({"profile-level-id":"42f00b"}),
                json!({"profile-level-id":"42e00c"})
            )
            .unwrap()
            .as_deref(),
            Some("42f00b")
        );
        assert_eq!(
            answer(
                json!({"profile-level-id":"42f00b"}),
                json!({"profile-level-id":"42e00a"})
            )
            .unwrap()
            .as_deref(),
            Some("42e00a")
        );
        assert_eq!(
            answer(
                json!({"profile-level-id":"42e01f"}),
                json!({"profile-level-id":"4d001f"})
            ),
            Err(AnswerError::ProfileMismatch)
        );
        assert_eq!(
            answer(json!({"profile-level-id":"zz"}), json!({})),
            Err(AnswerError::InvalidLocal)
        );
    }

    #[test]
    fn can_consume_requires_common_media_codec() {
        let caps = router_caps();
        let mut params = validate_rtp_parameters(&chrome_vp8_simulcast_producer()).unwrap();
        let mapping = get_producer_rtp_parameters_mapping(&mut params, &caps).unwrap();
        let consumable =
            get_consumable_rtp_parameters(MediaKind::Video, &params, &caps, &mapping).unwrap();
        // Only VP9 + RTX: the RTX codec matches but no media codec does.
        let vp9_only = validate_rtp_capabilities(&json!({"codecs":[
            {"mimeType":"video/VP9","preferredPayloadType":103,"clockRate":90000,"parameters":{"profile-id":2}},
            {"mimeType":"video/rtx","preferredPayloadType":102,"clockRate":90000,"parameters":{"apt":101}}
        ]}))
        .unwrap();
        assert_eq!(can_consume(&consumable, &vp9_only), Ok(false));
        assert_eq!(
            can_consume(&consumable, &RtpCapabilities::default()),
            Ok(false)
        );
        assert_eq!(
            get_consumer_rtp_parameters(&consumable, &vp9_only, false, true),
            Err(OrtcError::NoCompatibleMediaCodecs)
        );
        // VP9 profile-id must match strictly.
        let mut vp9 = validate_rtp_parameters(&json!({
            "codecs":[{"mimeType":"video/VP9","payloadType":98,"clockRate":90000,"parameters":{"profile-id":0}}],
            "encodings":[{"ssrc":5,"scalabilityMode":"L3T3_KEY"}]
        }))
        .unwrap();
        assert!(get_producer_rtp_parameters_mapping(&mut vp9, &caps).is_err());
        let mut vp9 = validate_rtp_parameters(&json!({
            "codecs":[{"mimeType":"video/VP9","payloadType":98,"clockRate":90000,"parameters":{"profile-id":"2"}}],
            "encodings":[{"ssrc":5,"scalabilityMode":"L3T3_KEY","maxBitrate":5000000}]
        }))
        .unwrap();
        assert_eq!(
            validate_producer_rtp_parameters(MediaKind::Video, &vp9),
            Ok(ProducerType::Svc)
        );
        let m = get_producer_rtp_parameters_mapping(&mut vp9, &caps).unwrap();
        assert_eq!(
            m.codecs,
            vec![RtpCodecMapping {
                payload_type: 98,
                mapped_payload_type: 103
            }]
        );
        let consumable = get_consumable_rtp_parameters(MediaKind::Video, &vp9, &caps, &m).unwrap();
        assert_eq!(can_consume(&consumable, &vp9_only), Ok(true));
        let consumer = get_consumer_rtp_parameters(&consumable, &vp9_only, false, true).unwrap();
        // SVC keeps its mode. As in mediasoup, RTX codecs match on mimeType/clockRate only
        // (not apt), so the router RTX 104 (apt 103) is kept.
        assert_eq!(
            consumer.encodings[0].scalability_mode.as_deref(),
            Some("L3T3_KEY")
        );
        assert_eq!(consumer.encodings[0].max_bitrate, Some(5000000));
        assert_eq!(consumer.codecs.len(), 2);
        assert_eq!(consumer.codecs[1].apt(), Some(103));
        let ssrc = consumer.encodings[0].ssrc.unwrap();
        assert_eq!(
            consumer.encodings[0].rtx,
            Some(RtpEncodingRtx { ssrc: ssrc + 1 })
        );
        // No abs-send-time / transport-cc extension: both BWE feedbacks removed.
        assert!(consumer.codecs[0]
            .rtcp_feedback
            .iter()
            .all(|fb| fb.fb_type != "transport-cc" && fb.fb_type != "goog-remb"));
    }

    #[test]
    fn rtx_mapping_errors() {
        let caps = router_caps();
        let mut p = validate_rtp_parameters(&chrome_vp8_simulcast_producer()).unwrap();
        p.codecs[1].parameters.insert("apt".into(), json!(55));
        assert_eq!(
            get_producer_rtp_parameters_mapping(&mut p, &caps),
            Err(OrtcError::MissingMediaCodecForRtx(97))
        );
        let mut no_rtx_caps = caps.clone();
        no_rtx_caps.codecs.retain(|c| !c.is_rtx());
        let mut p = validate_rtp_parameters(&chrome_vp8_simulcast_producer()).unwrap();
        assert_eq!(
            get_producer_rtp_parameters_mapping(&mut p, &no_rtx_caps),
            Err(OrtcError::NoRtxCodecForCapabilityCodec(101))
        );
        // Consumable parameters need the mapping to cover the producer.
        let mut p = validate_rtp_parameters(&chrome_vp8_simulcast_producer()).unwrap();
        let mut m = get_producer_rtp_parameters_mapping(&mut p, &caps).unwrap();
        m.encodings.pop();
        assert!(matches!(
            get_consumable_rtp_parameters(MediaKind::Video, &p, &caps, &m),
            Err(OrtcError::InconsistentMapping(_))
        ));
    }

    #[test]
    fn producer_checks_and_type() {
        let check = |v: Value, kind| {
            validate_producer_rtp_parameters(kind, &validate_rtp_parameters(&v).unwrap())
        };
        let vp8 = json!({"mimeType":"video/VP8","payloadType":96,"clockRate":90000});
        // Single VP8 stream with temporal layers is a one-stream simulcast.
        assert_eq!(
            check(
                json!({"codecs":[vp8],"encodings":[{"ssrc":1,"scalabilityMode":"L1T3"}]}),
                MediaKind::Video
            ),
            Ok(ProducerType::Simulcast)
        );
        assert_eq!(
            check(
                json!({"codecs":[vp8],"encodings":[{"ssrc":1}]}),
                MediaKind::Video
            ),
            Ok(ProducerType::Simple)
        );
        // No mid, no ssrc, no rid.
        assert!(check(json!({"codecs":[vp8],"encodings":[{}]}), MediaKind::Video).is_err());
        assert!(check(json!({"mid":"0","codecs":[vp8]}), MediaKind::Video).is_ok());
        assert!(check(
            json!({"codecs":[vp8],"encodings":[{"ssrc":1},{}]}),
            MediaKind::Video
        )
        .is_err());
        assert!(check(
            json!({"codecs":[vp8],"encodings":[{"ssrc":1,"scalabilityMode":"foo"}]}),
            MediaKind::Video
        )
        .is_err());
        assert!(check(
            json!({"codecs":[vp8, vp8],"encodings":[{"ssrc":1}]}),
            MediaKind::Video
        )
        .is_err());
        assert!(check(
            json!({"codecs":[vp8],"encodings":[{"ssrc":1}]}),
            MediaKind::Audio
        )
        .is_err());
        assert!(check(
            json!({"codecs":[vp8],"encodings":[{"ssrc":1,"codecPayloadType":97}]}),
            MediaKind::Video
        )
        .is_err());
        let vp9 = json!({"mimeType":"video/VP9","payloadType":98,"clockRate":90000});
        assert_eq!(
            check(
                json!({"codecs":[vp9],"encodings":[{"rid":"a"},{"rid":"b"}]}),
                MediaKind::Video
            ),
            Err(OrtcError::CodecNotSupportedForType {
                codec: "video/VP9".into(),
                producer_type: "simulcast"
            })
        );
        let opus =
            json!({"mimeType":"audio/opus","payloadType":111,"clockRate":48000,"channels":2});
        assert!(check(
            json!({"codecs":[opus],"encodings":[{"ssrc":1,"scalabilityMode":"L1T2"}]}),
            MediaKind::Audio
        )
        .is_err());
        let rtx_bad = json!({"mimeType":"video/rtx","payloadType":97,"clockRate":90000,"parameters":{"apt":97}});
        assert!(check(
            json!({"codecs":[vp8, rtx_bad],"encodings":[{"ssrc":1}]}),
            MediaKind::Video
        )
        .is_err());
    }

    #[test]
    fn cname_and_mid_rules() {
        let mut cname = ProducerCname::new();
        let mut no_cname =
            validate_rtp_parameters(&json!({"codecs":[],"encodings":[{"ssrc":1}]})).unwrap();
        let generated = cname.apply(&mut no_cname);
        assert_eq!(generated.len(), 8);
        assert_eq!(no_cname.rtcp.cname.as_deref(), Some(generated.as_str()));
        // A later producer's own CNAME is overridden by the transport's.
        let mut p = validate_rtp_parameters(&chrome_audio_producer()).unwrap();
        assert_eq!(cname.apply(&mut p), generated);
        assert_eq!(p.rtcp.cname.as_deref(), Some(generated.as_str()));
        assert_eq!(cname.get(), Some(generated.as_str()));

        let mut mids = ConsumerMidAllocator { next: 99_999_999 };
        assert_eq!(mids.next_mid(), "99999999");
        assert_eq!(mids.next_mid(), "0");
    }

    #[test]
    fn sctp_stream_parameter_rules() {
        let sp = |ordered, life, retr| SctpStreamParameters {
            stream_id: 1,
            ordered,
            max_packet_life_time: life,
            max_retransmits: retr,
        };
        let mut p = sp(None, None, None);
        validate_sctp_stream_parameters(&mut p).unwrap();
        assert_eq!(p.ordered, Some(true));
        let mut p = sp(None, Some(500), None);
        validate_sctp_stream_parameters(&mut p).unwrap();
        assert_eq!(p.ordered, Some(false));
        let mut p = sp(Some(false), None, Some(3));
        assert!(validate_sctp_stream_parameters(&mut p).is_ok());
        assert!(validate_sctp_stream_parameters(&mut sp(Some(true), None, Some(3))).is_err());
        assert!(validate_sctp_stream_parameters(&mut sp(None, Some(1), Some(3))).is_err());
    }

    #[test]
    fn multiopus_match_needs_equal_stream_counts() {
        let a = json!({"num_streams":2,"coupled_streams":2});
        let b = json!({"num_streams":"2","coupled_streams":2});
        let c = json!({"num_streams":4,"coupled_streams":2});
        let view = |p: &Value| {
            let params = p.as_object().unwrap().clone();
            RtpCodecParameters {
                mime_type: "audio/multiopus".into(),
                payload_type: 100,
                clock_rate: 48000,
                channels: Some(4),
                parameters: params,
                rtcp_feedback: vec![],
            }
        };
        let (a, b, c) = (view(&a), view(&b), view(&c));
        assert!(match_codecs(CodecView::from(&a), CodecView::from(&b), true).is_some());
        assert!(match_codecs(CodecView::from(&a), CodecView::from(&c), false).is_none());
        let mut d = a.clone();
        d.channels = Some(6);
        assert!(match_codecs(CodecView::from(&a), CodecView::from(&d), false).is_none());
    }
}
