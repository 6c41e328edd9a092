//! RTP observers: watch the audio levels of a set of audio producers and report on a timer.
//!
//! * [`audio_level::AudioLevelObserver`]: every interval, the loudest producers above a
//!   threshold (`volumes`) or `silence`, as mediasoup's AudioLevelObserver.
//! * [`active_speaker::ActiveSpeakerObserver`]: the dominant speaker (Volfin & Cohen's dominant
//!   speaker identification, as mediasoup and Jitsi do), reported when it changes.
//!
//! Both read the RFC 6464 client-to-mixer audio level header extension
//! ([`parse_audio_level`]) on the packet path into fixed per-producer state (no allocation,
//! no lock), and are evaluated on timers (`poll_timeout` / `handle_timeout`, time passed in):
//! nothing here runs per packet beyond a few integer updates. Producers are identified by a
//! caller-chosen key (the engine uses its producer slab key).

pub mod active_speaker;
pub mod audio_level;
pub mod registry;

use thiserror::Error;

/// The RTP header extension URI of the client-to-mixer audio level (RFC 6464).
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// Errors of observer configuration and membership.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ObserverError {
    /// A configuration value out of its range.
    #[error("invalid {field}: {reason}")]
    InvalidOption {
        /// Option name as mediasoup spells it.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The producer is already observed.
    #[error("producer already added to this observer")]
    AlreadyAdded,
    /// The observer has no room for another producer.
    #[error("observer is full ({0} producers)")]
    Full(usize),
}

/// Reads an RFC 6464 audio level extension value: `(level, voice)` where `level` is the
/// attenuation in -dBov, 0 (loudest) to 127 (silence), and `voice` the V bit. None for a value
/// of the wrong size (the one-byte form carries exactly one byte; the two-byte header form may
/// pad it, so extra bytes are tolerated only when they are zero).
pub fn parse_audio_level(value: &[u8]) -> Option<(u8, bool)> {
    let (&first, rest) = value.split_first()?;
    if rest.iter().any(|&b| b != 0) {
        return None;
    }
    Some((first & 0x7f, first & 0x80 != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_level_extension() {
        assert_eq!(parse_audio_level(&[0x80 | 30]), Some((30, true)));
        assert_eq!(parse_audio_level(&[127]), Some((127, false)));
        assert_eq!(parse_audio_level(&[0x85, 0, 0]), Some((5, true)));
        assert_eq!(parse_audio_level(&[]), None);
        assert_eq!(parse_audio_level(&[5, 1]), None);
    }
}
