//! SDP offer/answer ↔ ORTC, for clients that speak SDP (WHIP, WHEP) instead of mediasoup's
//! JSON: an offer is parsed (with the `sdp` crate, after a line check of our own so that every
//! error names its line), negotiated against the router's RTP capabilities, and answered.
//!
//! * [`parse_offer`]: the offer's transport (ICE credentials, DTLS fingerprints and `a=setup`)
//!   and media sections (mid, kind, direction, codecs with `rtpmap`/`fmtp`/`rtcp-fb`, header
//!   extensions, SSRCs and SSRC groups, `a=rid`/`a=simulcast`, cname, rtcp-mux, rtcp-rsize).
//! * [`publish`]: the producer `RtpParameters` of each sending section (WHIP): the first offered
//!   media codec the router supports (with its RTX), the offered header extensions the router
//!   receives, encodings from `a=simulcast`/`a=rid` (simulcast), `a=ssrc-group:SIM`, or the
//!   section's SSRC (+ `FID` RTX).
//! * [`subscribe`]: the receiver `RtpCapabilities` of each receiving section (WHEP), in the
//!   offer's numbering (its payload types and extension ids), to consume with.
//! * [`write_answer`]: the answer (ICE-lite, BUNDLE, rtcp-mux, our fingerprints and candidates,
//!   `a=setup` from the offer's), with rejected sections at port 0.
//! * [`parse_fragment`] / [`write_fragment`]: `application/trickle-ice-sdpfrag` (RFC 8840) for
//!   trickle and ICE restarts.
//!
//! Sans-IO: text in, data out; nothing here touches the network or the clock.

mod answer;
mod negotiate;
mod parse;

pub use answer::{write_answer, write_fragment, AnswerSection, AnswerTransport, Candidate};
pub use negotiate::{
    caps_in_router_numbering, publish, remote_numbering, subscribe, Numbering, PublishSection,
    SubscribeSection,
};
pub use parse::{parse_fragment, parse_offer, IceFragment};

use serde::{Deserialize, Serialize};

use crate::rtp_parameters::{
    CodecParameters, MediaKind, RtcpFeedback, RtpHeaderExtensionParameters,
};

/// Why an SDP text was refused. `line` (1-based) and `text` name the offending line when there
/// is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct SdpError {
    /// 1-based line number, 0 when the problem is not one line (e.g. a missing attribute).
    pub line: usize,
    /// The offending line, as sent.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
    /// Whether the offer is well-formed but nothing in it can be used (no codec in common):
    /// WHIP answers 406 for that, 400 for the rest.
    pub unacceptable: bool,
}

impl SdpError {
    fn describe(&self) -> String {
        if self.line == 0 {
            format!("SDP: {}", self.reason)
        } else {
            format!("SDP line {} `{}`: {}", self.line, self.text, self.reason)
        }
    }

    pub(crate) fn at(line: usize, text: &str, reason: impl Into<String>) -> Self {
        SdpError {
            line,
            text: text.to_owned(),
            reason: reason.into(),
            unacceptable: false,
        }
    }

    pub(crate) fn general(reason: impl Into<String>) -> Self {
        SdpError {
            line: 0,
            text: String::new(),
            reason: reason.into(),
            unacceptable: false,
        }
    }

    pub(crate) fn unusable(mut self) -> Self {
        self.unacceptable = true;
        self
    }
}

/// Media direction of a section, from the offerer's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// `a=sendrecv` (also the default).
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Whether the offerer sends media in this section.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the offerer receives media in this section.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// A DTLS fingerprint (`a=fingerprint:sha-256 AB:CD:...`), in mediasoup's JSON shape.
pub use crate::proto::dtls::Fingerprint;

/// One `a=rtpmap` codec of an offer, with its `fmtp` parameters and `rtcp-fb` lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfferCodec {
    /// Payload type.
    pub payload_type: u8,
    /// `kind/name` as in mediasoup (`video/VP8`), name case as sent.
    pub mime_type: String,
    /// Clock rate.
    pub clock_rate: u32,
    /// Channels (audio; absent means 1).
    pub channels: Option<u8>,
    /// `a=fmtp` parameters (numbers where the value is an integer).
    pub parameters: CodecParameters,
    /// `a=rtcp-fb` entries for this payload type (and `*`).
    pub rtcp_feedback: Vec<RtcpFeedback>,
    /// The 1-based line of its `a=rtpmap` (for errors).
    pub line: usize,
}

/// A RID of a section (`a=rid:<id> send|recv`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rid {
    /// The rid.
    pub id: String,
    /// `send` or `recv`.
    pub direction: String,
}

/// One media section (`m=` line and its attributes) of an offer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfferSection {
    /// Position in the offer (0-based).
    pub index: usize,
    /// `audio`, `video`, `application`, ...
    pub media: String,
    /// Kind when audio or video.
    pub kind: Option<MediaKind>,
    /// Port of the `m=` line (0: the offerer rejects the section itself).
    pub port: u16,
    /// Protocol of the `m=` line (`UDP/TLS/RTP/SAVPF`).
    pub protocol: String,
    /// Formats of the `m=` line as sent.
    pub formats: Vec<String>,
    /// `a=mid`.
    pub mid: Option<String>,
    /// Direction.
    pub direction: Direction,
    /// Codecs in the offer's order of preference.
    pub codecs: Vec<OfferCodec>,
    /// `a=extmap` entries.
    pub header_extensions: Vec<RtpHeaderExtensionParameters>,
    /// SSRCs in order of first appearance in `a=ssrc` lines.
    pub ssrcs: Vec<u32>,
    /// `a=ssrc-group` entries: semantics and SSRCs.
    pub ssrc_groups: Vec<(String, Vec<u32>)>,
    /// `cname` of the first `a=ssrc ... cname:` line.
    pub cname: Option<String>,
    /// `a=msid` (stream id and track id), or the SSRC-level msid.
    pub msid: Option<String>,
    /// `a=rid` entries.
    pub rids: Vec<Rid>,
    /// `a=simulcast:send` streams (first alternative of each, `~` stripped).
    pub simulcast_send: Vec<String>,
    /// `a=simulcast:recv` streams.
    pub simulcast_recv: Vec<String>,
    /// `a=rtcp-mux`.
    pub rtcp_mux: bool,
    /// `a=rtcp-rsize`.
    pub rtcp_rsize: bool,
    /// Section-level ICE credentials (they override the session ones).
    pub ice_ufrag: Option<String>,
    /// Section-level ICE password.
    pub ice_pwd: Option<String>,
    /// 1-based line of the `m=` line.
    pub line: usize,
}

/// A parsed offer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Offer {
    /// The offerer's ICE username fragment (session level, or the first section's).
    pub ice_ufrag: String,
    /// The offerer's ICE password.
    pub ice_pwd: String,
    /// `a=ice-options` (e.g. `trickle`).
    pub ice_options: Vec<String>,
    /// DTLS fingerprints (session level and first section's).
    pub fingerprints: Vec<Fingerprint>,
    /// `a=setup` of the offer (`actpass`, `active`, `passive`).
    pub setup: String,
    /// mids of `a=group:BUNDLE`, empty when not bundled.
    pub bundle: Vec<String>,
    /// Media sections, in order.
    pub sections: Vec<OfferSection>,
}

impl Offer {
    /// The DTLS parameters to `connect` our transport with (mediasoup shape): `role` is the
    /// offerer's role, `client` unless it insists on `a=setup:passive`.
    pub fn dtls_parameters(&self) -> crate::api::DtlsParameters {
        let role = if self.setup == "passive" {
            "server"
        } else {
            "client"
        };
        crate::api::DtlsParameters {
            role: Some(role.into()),
            fingerprints: self.fingerprints.clone(),
        }
    }

    /// Our `a=setup` value in the answer: `active` when the offerer is passive, else `passive`.
    pub fn answer_setup(&self) -> &'static str {
        if self.setup == "passive" {
            "active"
        } else {
            "passive"
        }
    }
}

#[cfg(test)]
mod tests;
