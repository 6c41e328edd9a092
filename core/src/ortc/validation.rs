//! Validation and normalization of typed RTP parameters, capabilities and SCTP stream
//! parameters (spec §1): path-named errors, mediasoup's defaults.
//!
//! The shape (field names, types, integer ranges) is checked where JSON becomes a typed value:
//! serde at the Lua edge (`src/lua_host/options.rs`, errors such as
//! `invalid rtpParameters.codecs[0].clockRate: ...`). What serde cannot express is checked
//! here: mimeType syntax, payload types above 127, header extension id 0, empty URIs and
//! feedback types, a numeric `apt` (codec parameter values are strings or numbers by type,
//! [`crate::rtp_parameters::ParamValue`]), and mediasoup's
//! defaults (audio channels 1, `dtx` false, `reducedSize` true, empty strings as absent).

use super::*;

pub(super) fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// `apt` (an RTX codec's associated payload type) must be an integer payload type (a string
/// `apt` is refused, as in mediasoup). The value types themselves are checked by
/// [`ParamValue`]'s deserialization.
pub(super) fn check_apt(params: &CodecParameters, path: &str) -> Result<(), OrtcError> {
    match params.get("apt") {
        None | Some(ParamValue::Int(0..=127)) => Ok(()),
        Some(_) => Err(invalid(&format!("{path}.parameters.apt"), "invalid")),
    }
}

/// Every feedback entry needs a type (`a=rtcp-fb:<pt> <type>`); an empty one is refused.
pub(super) fn check_feedback(list: &[RtcpFeedback], path: &str) -> Result<(), OrtcError> {
    match list.iter().position(|fb| fb.fb_type.is_empty()) {
        Some(j) => Err(invalid(
            &format!("{path}.rtcpFeedback[{j}].type"),
            "missing",
        )),
        None => Ok(()),
    }
}

pub(super) fn kind_of(mime_type: &str, path: &str) -> Result<MediaKind, OrtcError> {
    if mime_type.is_empty() {
        return Err(invalid(&join(path, "mimeType"), "missing"));
    }
    MediaKind::from_mime_type(mime_type).ok_or_else(|| invalid(&join(path, "mimeType"), "invalid"))
}

pub(super) fn default_channels(kind: MediaKind, channels: Option<u8>) -> Option<u8> {
    match kind {
        MediaKind::Audio => Some(channels.unwrap_or(1)),
        MediaKind::Video => None,
    }
}

pub(super) fn normalize_codec_capability(
    codec: &mut RtpCodecCapability,
    path: &str,
) -> Result<(), OrtcError> {
    codec.kind = kind_of(&codec.mime_type, path)?;
    if codec.preferred_payload_type.is_some_and(|pt| pt > 127) {
        return Err(invalid(&join(path, "preferredPayloadType"), "invalid"));
    }
    codec.channels = default_channels(codec.kind, codec.channels);
    check_feedback(&codec.rtcp_feedback, path)?;
    check_apt(&codec.parameters, path)
}

pub(super) fn normalize_codec_parameters(
    codec: &mut RtpCodecParameters,
    path: &str,
) -> Result<(), OrtcError> {
    let kind = kind_of(&codec.mime_type, path)?;
    if codec.payload_type > 127 {
        return Err(invalid(&join(path, "payloadType"), "invalid"));
    }
    codec.channels = default_channels(kind, codec.channels);
    check_feedback(&codec.rtcp_feedback, path)?;
    check_apt(&codec.parameters, path)
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
    for (i, ext) in params.header_extensions.iter().enumerate() {
        let path = format!("headerExtensions[{i}]");
        if ext.uri.is_empty() {
            return Err(invalid(&join(&path, "uri"), "missing"));
        }
        if ext.id == 0 {
            return Err(invalid(&join(&path, "id"), "invalid"));
        }
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
