//! Codec matching (spec §6), including H264 `profile-level-id` negotiation.

use super::*;

// =============================================================================================
// Codec matching (spec §6)

/// The fields of a codec that matching looks at (capability or parameters flavour).
#[derive(Clone, Copy)]
pub(super) struct CodecView<'a> {
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
pub(super) enum ProfileLevelIdAnswer {
    /// Not an H264 strict match: leave parameters alone.
    Untouched,
    /// Set `profile-level-id` to the negotiated answer.
    Set(String),
    /// Neither side had one: remove it.
    Remove,
}

pub(super) fn apply_answer(params: &mut CodecParameters, answer: ProfileLevelIdAnswer) {
    match answer {
        ProfileLevelIdAnswer::Untouched => {}
        ProfileLevelIdAnswer::Set(s) => {
            params.insert("profile-level-id", s);
        }
        ProfileLevelIdAnswer::Remove => {
            params.remove("profile-level-id");
        }
    }
}

/// Parameter equality tolerant of number vs numeric string (`1` == `"1"`), which SDP-derived
/// JSON from different clients mixes.
pub(super) fn param_eq(a: Option<&ParamValue>, b: Option<&ParamValue>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
        _ => false,
    }
}

/// `params[key] || 0` equality (mediasoup's default for packetization-mode / profile-id).
pub(super) fn param_or_zero_eq(a: &CodecParameters, b: &CodecParameters, key: &str) -> bool {
    let zero = ParamValue::Int(0);
    let pick = |p: &CodecParameters| match p.get(key) {
        Some(v) if v.is_truthy() => v.clone(),
        _ => zero.clone(),
    };
    param_eq(Some(&pick(a)), Some(&pick(b)))
}

/// mediasoup's `matchCodecs(a, b, {strict})`. `None` = no match; on a match, the answer for
/// `a`'s `profile-level-id` (used in "modify" mode by the caller).
pub(super) fn match_codecs(
    a: CodecView,
    b: CodecView,
    strict: bool,
) -> Option<ProfileLevelIdAnswer> {
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
