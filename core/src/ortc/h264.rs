//! H264 `profile-level-id` handling (RFC 6184 §8.1, as in libwebrtc / h264-profile-level-id).

use crate::rtp_parameters::CodecParameters;
use crate::rtp_parameters::ParamValue;

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
        ParamValue::String(s) if !s.is_empty() => Some(s.clone()),
        ParamValue::String(_) => None,
        n if n.is_truthy() => Some(n.to_string()),
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

/// `level-asymmetry-allowed` is `1` or `"1"`.
pub fn is_level_asymmetry_allowed(params: &CodecParameters) -> bool {
    match params.get("level-asymmetry-allowed") {
        Some(ParamValue::String(s)) => s == "1",
        Some(n) => n.as_f64() == Some(1.0),
        None => false,
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
