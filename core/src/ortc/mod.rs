//! ORTC negotiation as pure functions (mediasoup 3.14 `ortc.ts` semantics).
//!
//! The SFU never sees SDP: clients send JSON RTP parameters / capabilities and mediasoup-client
//! builds SDP locally from what we return. This module validates those objects, generates the
//! router capabilities, maps producer payload types / SSRCs onto the router's canonical ones,
//! and derives consumer parameters. See `shared/spec/ortc.md` for the contract.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::rtp_parameters::{
    is_rtx_mime_type, uri, CodecParameters, MediaKind, ParamValue, RtcpFeedback, RtcpParameters,
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

pub(super) fn invalid(path: &str, problem: &str) -> OrtcError {
    OrtcError::Invalid(format!("{path} {problem}"))
}

pub mod h264;
pub mod parameters;

mod capabilities;
mod consumer;
mod matching;
mod producer;
mod validation;

pub use capabilities::*;
pub use consumer::*;
use matching::*;
pub use producer::*;
pub use validation::*;

#[cfg(test)]
mod tests;
