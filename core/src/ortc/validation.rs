//! Validation and normalization of RTP parameters, capabilities and SCTP stream parameters
//! (spec §1): path-named errors, mediasoup's defaults.

use super::*;

// =============================================================================================
// Validation of JSON input (spec §1): path-named errors, mediasoup defaults.

pub(super) fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// JavaScript truthiness, since mediasoup's optional-field checks are written with it.
pub(super) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

pub(super) fn require_str(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<String, OrtcError> {
    match obj.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(invalid(&join(path, key), "missing")),
    }
}

/// Mandatory non-negative integer no larger than `max`.
pub(super) fn require_uint(
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
pub(super) fn optional_uint(
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
pub(super) fn optional_typed(
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
pub(super) fn optional_js_string(
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
pub(super) fn js_bool_default_false(
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
pub(super) fn json_parameters(
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

pub(super) fn json_rtcp_feedback(
    obj: &mut Map<String, Value>,
    path: &str,
) -> Result<(), OrtcError> {
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
pub(super) fn json_codec(value: &mut Value, path: &str, capability: bool) -> Result<(), OrtcError> {
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
pub(super) fn json_array<'a>(
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

pub(super) fn json_header_extension_capability(
    value: &mut Value,
    path: &str,
) -> Result<(), OrtcError> {
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

pub(super) fn json_header_extension_parameters(
    value: &mut Value,
    path: &str,
) -> Result<(), OrtcError> {
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

pub(super) fn json_encoding(value: &mut Value, path: &str) -> Result<(), OrtcError> {
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

pub(super) fn json_rtcp(obj: &mut Map<String, Value>) -> Result<(), OrtcError> {
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

pub(super) fn check_typed_parameters(
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
    check_typed_parameters(&mut codec.parameters, path, true)
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
