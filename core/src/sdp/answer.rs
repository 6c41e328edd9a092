//! Writing answers and sdpfrags.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::{Fingerprint, Offer};
use crate::rtp_parameters::{CodecParameters, RtpParameters};

/// One ICE candidate of our transport, in mediasoup's JSON shape (`iceCandidates[i]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// Foundation.
    pub foundation: String,
    /// Priority.
    pub priority: u32,
    /// Address (announced).
    pub ip: String,
    /// `udp` or `tcp`.
    pub protocol: String,
    /// Port.
    pub port: u16,
    /// `passive` for ICE-TCP.
    #[serde(default)]
    pub tcp_type: Option<String>,
}

impl Candidate {
    /// The value of an `a=candidate:` line (component 1, host).
    pub fn sdp_value(&self) -> String {
        let mut s = format!(
            "{} 1 {} {} {} {} typ host",
            self.foundation, self.protocol, self.priority, self.ip, self.port
        );
        if let Some(t) = &self.tcp_type {
            let _ = write!(s, " tcptype {t}");
        }
        s
    }
}

/// Our side of the transport, for the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnswerTransport {
    /// Our ICE username fragment.
    pub ice_ufrag: String,
    /// Our ICE password.
    pub ice_pwd: String,
    /// Our candidates.
    pub candidates: Vec<Candidate>,
    /// Our certificate's fingerprints.
    pub fingerprints: Vec<Fingerprint>,
}

/// How to answer one offer section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnswerSection {
    /// The offer section's index.
    pub index: usize,
    /// Parameters of what flows in this section (a producer's for a section we receive, a
    /// consumer's for one we send); `None` rejects the section (port 0).
    pub rtp_parameters: Option<RtpParameters>,
    /// Our direction: `recvonly` (we receive, WHIP) or `sendonly` (WHEP). Default `recvonly`.
    pub direction: Option<String>,
    /// `a=msid` for a section we send (`<stream> <track>`).
    pub msid: Option<String>,
}

fn push(out: &mut String, line: impl AsRef<str>) {
    out.push_str(line.as_ref());
    out.push_str("\r\n");
}

fn fmtp(params: &CodecParameters) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";")
}

fn address_line(ip: &str) -> String {
    if ip.contains(':') {
        format!("c=IN IP6 {ip}")
    } else {
        format!("c=IN IP4 {ip}")
    }
}

/// Writes the answer to `offer`: one section per offer section (those without an entry in
/// `sections`, or with no parameters, are rejected), ICE-lite, BUNDLE of the accepted mids,
/// rtcp-mux, our fingerprints, candidates and `a=setup` (from [`Offer::answer_setup`]).
/// `session_id` goes into the `o=` line.
pub fn write_answer(
    offer: &Offer,
    transport: &AnswerTransport,
    sections: &[AnswerSection],
    session_id: u64,
) -> String {
    let mut out = String::with_capacity(2048);
    push(&mut out, "v=0");
    push(
        &mut out,
        format!("o=ringsfu {session_id} 1 IN IP4 127.0.0.1"),
    );
    push(&mut out, "s=-");
    push(&mut out, "t=0 0");
    push(&mut out, "a=ice-lite");
    let accepted = |i: usize| {
        sections
            .iter()
            .find(|a| a.index == i)
            .and_then(|a| a.rtp_parameters.as_ref().map(|p| (a, p)))
    };
    let mids: Vec<String> = offer
        .sections
        .iter()
        .filter(|s| accepted(s.index).is_some())
        .map(|s| s.mid.clone().unwrap_or_else(|| s.index.to_string()))
        .collect();
    if !mids.is_empty() && !offer.bundle.is_empty() {
        push(&mut out, format!("a=group:BUNDLE {}", mids.join(" ")));
    }
    push(&mut out, "a=msid-semantic: WMS *");
    let main = transport
        .candidates
        .iter()
        .find(|c| c.protocol == "udp")
        .or_else(|| transport.candidates.first());
    let (ip, port) = main
        .map(|c| (c.ip.as_str(), c.port))
        .unwrap_or(("0.0.0.0", 9));
    for s in &offer.sections {
        let mid = s.mid.clone().unwrap_or_else(|| s.index.to_string());
        let Some((a, params)) = accepted(s.index) else {
            // Rejected: port 0, the offer's first format, mid kept (RFC 8843 §7.3.3).
            let fmt = s.formats.first().cloned().unwrap_or_else(|| "0".into());
            push(&mut out, format!("m={} 0 {} {}", s.media, s.protocol, fmt));
            push(&mut out, "c=IN IP4 0.0.0.0");
            if s.mid.is_some() {
                push(&mut out, format!("a=mid:{mid}"));
            }
            push(&mut out, "a=inactive");
            continue;
        };
        let pts: Vec<String> = params
            .codecs
            .iter()
            .map(|c| c.payload_type.to_string())
            .collect();
        push(
            &mut out,
            format!("m={} {} UDP/TLS/RTP/SAVPF {}", s.media, port, pts.join(" ")),
        );
        push(&mut out, address_line(ip));
        push(&mut out, format!("a=mid:{mid}"));
        let direction = a.direction.as_deref().unwrap_or("recvonly");
        push(&mut out, format!("a={direction}"));
        push(&mut out, format!("a=ice-ufrag:{}", transport.ice_ufrag));
        push(&mut out, format!("a=ice-pwd:{}", transport.ice_pwd));
        for f in &transport.fingerprints {
            push(
                &mut out,
                format!("a=fingerprint:{} {}", f.algorithm, f.value),
            );
        }
        push(&mut out, format!("a=setup:{}", offer.answer_setup()));
        push(&mut out, "a=rtcp-mux");
        if s.rtcp_rsize {
            push(&mut out, "a=rtcp-rsize");
        }
        for c in &params.codecs {
            let name = c
                .mime_type
                .split_once('/')
                .map(|(_, n)| n)
                .unwrap_or(&c.mime_type);
            match c.channels {
                Some(ch) if ch > 1 => push(
                    &mut out,
                    format!(
                        "a=rtpmap:{} {}/{}/{}",
                        c.payload_type, name, c.clock_rate, ch
                    ),
                ),
                _ => push(
                    &mut out,
                    format!("a=rtpmap:{} {}/{}", c.payload_type, name, c.clock_rate),
                ),
            }
            if !c.parameters.is_empty() {
                push(
                    &mut out,
                    format!("a=fmtp:{} {}", c.payload_type, fmtp(&c.parameters)),
                );
            }
            for fb in &c.rtcp_feedback {
                if fb.parameter.is_empty() {
                    push(
                        &mut out,
                        format!("a=rtcp-fb:{} {}", c.payload_type, fb.fb_type),
                    );
                } else {
                    push(
                        &mut out,
                        format!(
                            "a=rtcp-fb:{} {} {}",
                            c.payload_type, fb.fb_type, fb.parameter
                        ),
                    );
                }
            }
        }
        for h in &params.header_extensions {
            push(&mut out, format!("a=extmap:{} {}", h.id, h.uri));
        }
        if direction == "recvonly" {
            let rids: Vec<&str> = params
                .encodings
                .iter()
                .filter_map(|e| e.rid.as_deref())
                .collect();
            if !rids.is_empty() && !s.simulcast_send.is_empty() {
                for r in &rids {
                    push(&mut out, format!("a=rid:{r} recv"));
                }
                push(&mut out, format!("a=simulcast:recv {}", rids.join(";")));
            }
        } else {
            let cname = params
                .rtcp
                .cname
                .clone()
                .unwrap_or_else(|| "ringsfu".into());
            let msid = a.msid.clone().unwrap_or_else(|| format!("ringsfu {mid}"));
            push(&mut out, format!("a=msid:{msid}"));
            for e in &params.encodings {
                let Some(ssrc) = e.ssrc else { continue };
                if let Some(rtx) = &e.rtx {
                    push(&mut out, format!("a=ssrc-group:FID {ssrc} {}", rtx.ssrc));
                }
                push(&mut out, format!("a=ssrc:{ssrc} cname:{cname}"));
                push(&mut out, format!("a=ssrc:{ssrc} msid:{msid}"));
                if let Some(rtx) = &e.rtx {
                    push(&mut out, format!("a=ssrc:{} cname:{cname}", rtx.ssrc));
                    push(&mut out, format!("a=ssrc:{} msid:{msid}", rtx.ssrc));
                }
            }
        }
        for c in &transport.candidates {
            push(&mut out, format!("a=candidate:{}", c.sdp_value()));
        }
        push(&mut out, "a=end-of-candidates");
    }
    out
}

/// An `application/trickle-ice-sdpfrag` answer to an ICE restart (RFC 8840 / RFC 9725 §4.3):
/// our new credentials and our candidates, under the first `mid` of `mids`.
pub fn write_fragment(
    ice_ufrag: &str,
    ice_pwd: &str,
    candidates: &[Candidate],
    mids: &[String],
) -> String {
    let mut out = String::new();
    push(&mut out, "a=ice-lite");
    push(&mut out, format!("a=ice-ufrag:{ice_ufrag}"));
    push(&mut out, format!("a=ice-pwd:{ice_pwd}"));
    if let Some(mid) = mids.first() {
        push(&mut out, "m=audio 9 UDP/TLS/RTP/SAVPF 0");
        push(&mut out, format!("a=mid:{mid}"));
    }
    for c in candidates {
        push(&mut out, format!("a=candidate:{}", c.sdp_value()));
    }
    push(&mut out, "a=end-of-candidates");
    out
}
