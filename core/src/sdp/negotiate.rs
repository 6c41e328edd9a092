//! Negotiation of an offer's sections against the router's RTP capabilities.

use serde::{Deserialize, Serialize};

use super::{Offer, OfferCodec, OfferSection, SdpError};
use crate::ortc::h264;
use crate::rtp_parameters::{
    is_rtx_mime_type, uri, CodecParameters, MediaKind, RtcpFeedback, RtcpParameters,
    RtpCapabilities, RtpCodecCapability, RtpCodecParameters, RtpEncodingParameters, RtpEncodingRtx,
    RtpHeaderExtension, RtpHeaderExtensionDirection, RtpParameters,
};

/// One section of a publishing (WHIP) offer, negotiated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishSection {
    /// Position in the offer.
    pub index: usize,
    /// The section's mid (its index as text when the offer has none).
    pub mid: String,
    /// audio or video; `None` for other media (rejected).
    pub kind: Option<MediaKind>,
    /// The producer's parameters (the offer's payload types and extension ids); `None` when
    /// the section is rejected.
    pub rtp_parameters: Option<RtpParameters>,
    /// Why the section is rejected.
    pub rejected: Option<String>,
}

/// One section of a receiving (WHEP) offer, negotiated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscribeSection {
    /// Position in the offer.
    pub index: usize,
    /// The section's mid (its index as text when the offer has none).
    pub mid: String,
    /// audio or video; `None` for other media (rejected).
    pub kind: Option<MediaKind>,
    /// What the offerer can receive, in its own numbering (payload types and extension ids
    /// from the offer), restricted to what the router has; `None` when rejected.
    pub rtp_capabilities: Option<RtpCapabilities>,
    /// Why the section is rejected.
    pub rejected: Option<String>,
}

fn is_media(mime: &str) -> bool {
    let l = mime.to_ascii_lowercase();
    !(l.ends_with("/rtx")
        || l.ends_with("/red")
        || l.ends_with("/ulpfec")
        || l.ends_with("/flexfec-03")
        || l.ends_with("/cn")
        || l.ends_with("/telephone-event"))
}

/// Whether an offered codec is the router's codec `cap` (mime, clock rate, channels, and the
/// parameters that select a different decoder: H264 packetization-mode and profile, VP9
/// profile-id).
fn codec_matches(offered: &OfferCodec, cap: &RtpCodecCapability) -> bool {
    if !offered.mime_type.eq_ignore_ascii_case(&cap.mime_type)
        || offered.clock_rate != cap.clock_rate
    {
        return false;
    }
    if cap.kind == MediaKind::Audio && offered.channels.unwrap_or(1) != cap.channels.unwrap_or(1) {
        return false;
    }
    match cap.mime_type.to_ascii_lowercase().as_str() {
        "video/h264" | "video/h264-svc" => {
            offered.parameters.uint("packetization-mode").unwrap_or(0)
                == cap.parameters.uint("packetization-mode").unwrap_or(0)
                && h264::is_same_profile(&offered.parameters, &cap.parameters)
        }
        "video/vp9" => {
            offered.parameters.uint("profile-id").unwrap_or(0)
                == cap.parameters.uint("profile-id").unwrap_or(0)
        }
        _ => true,
    }
}

fn common_feedback(offered: &[RtcpFeedback], cap: &[RtcpFeedback]) -> Vec<RtcpFeedback> {
    offered
        .iter()
        .filter(|f| cap.contains(f))
        .cloned()
        .collect()
}

fn router_codec<'a>(
    offered: &OfferCodec,
    kind: MediaKind,
    router: &'a RtpCapabilities,
) -> Option<&'a RtpCodecCapability> {
    router
        .codecs
        .iter()
        .find(|cap| cap.kind == kind && !cap.is_rtx() && codec_matches(offered, cap))
}

fn router_rtx(kind: MediaKind, router: &RtpCapabilities) -> Option<&RtpCodecCapability> {
    router
        .codecs
        .iter()
        .find(|cap| cap.kind == kind && cap.is_rtx())
}

fn ext_allowed<'a>(
    router: &'a RtpCapabilities,
    kind: MediaKind,
    ext_uri: &str,
    router_receives: bool,
) -> Option<&'a RtpHeaderExtension> {
    router.header_extensions.iter().find(|h| {
        h.kind == kind
            && h.uri == ext_uri
            && match h.direction {
                RtpHeaderExtensionDirection::SendRecv => true,
                RtpHeaderExtensionDirection::RecvOnly => router_receives,
                RtpHeaderExtensionDirection::SendOnly => !router_receives,
                RtpHeaderExtensionDirection::Inactive => false,
            }
    })
}

fn mid_of(s: &OfferSection) -> String {
    s.mid.clone().unwrap_or_else(|| s.index.to_string())
}

fn offered_names(s: &OfferSection) -> String {
    let mut names: Vec<String> = s
        .codecs
        .iter()
        .filter(|c| is_media(&c.mime_type))
        .map(|c| c.mime_type.clone())
        .collect();
    names.dedup();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn router_names(kind: MediaKind, router: &RtpCapabilities) -> String {
    let names: Vec<&str> = router
        .codecs
        .iter()
        .filter(|c| c.kind == kind && !c.is_rtx())
        .map(|c| c.mime_type.as_str())
        .collect();
    names.join(", ")
}

fn m_line(s: &OfferSection) -> String {
    format!(
        "m={} {} {} {}",
        s.media,
        s.port,
        s.protocol,
        s.formats.join(" ")
    )
}

/// Why a section cannot carry media at all, or `None` when it can.
fn unusable_reason(s: &OfferSection, sending: bool) -> Option<String> {
    if s.kind.is_none() {
        return Some(format!(
            "{} sections are not supported (audio and video only)",
            s.media
        ));
    }
    if s.port == 0 {
        return Some("rejected by the offerer (port 0)".into());
    }
    if sending && !s.direction.sends() {
        return Some(format!(
            "direction {} carries nothing to publish (sendonly expected)",
            s.direction.as_str()
        ));
    }
    if !sending && !s.direction.receives() {
        return Some(format!(
            "direction {} receives nothing (recvonly expected)",
            s.direction.as_str()
        ));
    }
    None
}

/// Negotiates a publishing offer (WHIP): the producer parameters of every sending audio/video
/// section. Fails when the offer is unusable as a whole: no section could be accepted
/// (`unacceptable` set when that is for lack of a common codec), or a simulcast description
/// that cannot be honoured.
pub fn publish(offer: &Offer, router: &RtpCapabilities) -> Result<Vec<PublishSection>, SdpError> {
    let mut out = Vec::new();
    let mut codec_errors = Vec::new();
    for s in &offer.sections {
        let mid = mid_of(s);
        let reject = |reason: String| PublishSection {
            index: s.index,
            mid: mid.clone(),
            kind: s.kind,
            rtp_parameters: None,
            rejected: Some(reason),
        };
        if let Some(reason) = unusable_reason(s, true) {
            out.push(reject(reason));
            continue;
        }
        let kind = s.kind.unwrap_or(MediaKind::Audio);
        match publish_section(s, kind, router) {
            Ok(params) => out.push(PublishSection {
                index: s.index,
                mid,
                kind: s.kind,
                rtp_parameters: Some(params),
                rejected: None,
            }),
            Err(e) if e.unacceptable => {
                out.push(reject(e.reason.clone()));
                codec_errors.push(e);
            }
            Err(e) => return Err(e),
        }
    }
    if out.iter().all(|s| s.rtp_parameters.is_none()) {
        if let Some(e) = codec_errors.into_iter().next() {
            return Err(e);
        }
        return Err(SdpError::general(
            "no audio or video section to publish (sendonly or sendrecv)",
        )
        .unusable());
    }
    Ok(out)
}

fn publish_section(
    s: &OfferSection,
    kind: MediaKind,
    router: &RtpCapabilities,
) -> Result<RtpParameters, SdpError> {
    // The first offered media codec the router has (the offerer's preference).
    let Some((offered, cap)) = s
        .codecs
        .iter()
        .filter(|c| is_media(&c.mime_type))
        .find_map(|c| router_codec(c, kind, router).map(|cap| (c, cap)))
    else {
        return Err(SdpError::at(
            s.line,
            &m_line(s),
            format!(
                "no codec in common with the router (offered: {}; the router has: {})",
                offered_names(s),
                router_names(kind, router)
            ),
        )
        .unusable());
    };
    let mut params = RtpParameters {
        mid: Some(mid_of(s)),
        ..Default::default()
    };
    let mut parameters = offered.parameters.clone();
    if cap.mime_type.eq_ignore_ascii_case("video/h264") {
        // The answer keeps the offer's profile-level-id: we forward what is sent.
        parameters.insert_if_absent("packetization-mode", 0i64);
    }
    params.codecs.push(RtpCodecParameters {
        mime_type: cap.mime_type.clone(),
        payload_type: offered.payload_type,
        clock_rate: offered.clock_rate,
        channels: if kind == MediaKind::Audio {
            Some(offered.channels.unwrap_or(1))
        } else {
            None
        },
        parameters,
        rtcp_feedback: common_feedback(&offered.rtcp_feedback, &cap.rtcp_feedback),
    });
    // RTX for it, when both sides have it.
    if let Some(rtx_cap) = router_rtx(kind, router) {
        if let Some(rtx) = s.codecs.iter().find(|c| {
            is_rtx_mime_type(&c.mime_type)
                && c.parameters.uint("apt") == Some(offered.payload_type as u64)
        }) {
            let mut p = CodecParameters::new();
            p.insert("apt", offered.payload_type);
            params.codecs.push(RtpCodecParameters {
                mime_type: rtx_cap.mime_type.clone(),
                payload_type: rtx.payload_type,
                clock_rate: rtx.clock_rate,
                channels: None,
                parameters: p,
                rtcp_feedback: Vec::new(),
            });
        }
    }
    for h in &s.header_extensions {
        if ext_allowed(router, kind, &h.uri, true).is_some() {
            params.header_extensions.push(h.clone());
        }
    }
    let has_ext = |u: &str| params.header_extensions.iter().any(|h| h.uri == u);
    let rtx_pt = params.codecs.iter().any(|c| c.is_rtx());

    // Encodings.
    let fid_of = |ssrc: u32| {
        s.ssrc_groups
            .iter()
            .find(|(sem, g)| sem == "FID" && g.len() == 2 && g[0] == ssrc)
            .map(|(_, g)| g[1])
    };
    let sim_group = s
        .ssrc_groups
        .iter()
        .find(|(sem, g)| sem == "SIM" && g.len() > 1);
    if !s.simulcast_send.is_empty() {
        let line_text = format!("a=simulcast:send {}", s.simulcast_send.join(";"));
        if !has_ext(uri::RTP_STREAM_ID) {
            return Err(SdpError::at(
                s.line,
                &line_text,
                format!(
                    "simulcast needs the RID header extension (a=extmap:<id> {})",
                    uri::RTP_STREAM_ID
                ),
            ));
        }
        if !s.rids.is_empty() {
            if let Some(unknown) = s
                .simulcast_send
                .iter()
                .find(|r| !s.rids.iter().any(|x| &x.id == *r && x.direction == "send"))
            {
                return Err(SdpError::at(
                    s.line,
                    &line_text,
                    format!("rid {unknown:?} has no a=rid:{unknown} send line"),
                ));
            }
        }
        if s.simulcast_send.len() > 1
            && !matches!(
                cap.mime_type.to_ascii_lowercase().as_str(),
                "video/vp8" | "video/h264"
            )
        {
            // Simulcast of another codec: forward its first stream only.
            params.encodings.push(RtpEncodingParameters {
                rid: Some(s.simulcast_send[0].clone()),
                ..Default::default()
            });
        } else {
            for rid in &s.simulcast_send {
                params.encodings.push(RtpEncodingParameters {
                    rid: Some(rid.clone()),
                    ..Default::default()
                });
            }
        }
    } else if let Some((_, ssrcs)) = sim_group {
        for ssrc in ssrcs {
            params.encodings.push(RtpEncodingParameters {
                ssrc: Some(*ssrc),
                rtx: fid_of(*ssrc)
                    .filter(|_| rtx_pt)
                    .map(|r| RtpEncodingRtx { ssrc: r }),
                ..Default::default()
            });
        }
    } else if let Some(first) = s.ssrcs.iter().copied().find(|x| {
        // The media SSRC: not the second member of an FID group.
        !s.ssrc_groups
            .iter()
            .any(|(sem, g)| sem == "FID" && g.len() == 2 && g[1] == *x)
    }) {
        params.encodings.push(RtpEncodingParameters {
            ssrc: Some(first),
            rtx: fid_of(first)
                .filter(|_| rtx_pt)
                .map(|r| RtpEncodingRtx { ssrc: r }),
            ..Default::default()
        });
    } else {
        // No SSRC and no RID: the stream is found by its MID.
        if !has_ext(uri::MID) {
            return Err(SdpError::at(
                s.line,
                &m_line(s),
                "the section has no a=ssrc, no a=simulcast and no MID header extension: its stream cannot be identified",
            ));
        }
        params.encodings.push(RtpEncodingParameters::default());
    }
    params.rtcp = RtcpParameters {
        cname: s.cname.clone(),
        reduced_size: s.rtcp_rsize,
        mux: Some(true),
    };
    Ok(params)
}

/// Negotiates a receiving offer (WHEP): for each receiving audio/video section, the offerer's
/// receive capabilities in its own numbering. Fails when no section can receive anything.
pub fn subscribe(
    offer: &Offer,
    router: &RtpCapabilities,
) -> Result<Vec<SubscribeSection>, SdpError> {
    let mut out = Vec::new();
    let mut codec_error = None;
    for s in &offer.sections {
        let mid = mid_of(s);
        if let Some(reason) = unusable_reason(s, false) {
            out.push(SubscribeSection {
                index: s.index,
                mid,
                kind: s.kind,
                rtp_capabilities: None,
                rejected: Some(reason),
            });
            continue;
        }
        let kind = s.kind.unwrap_or(MediaKind::Audio);
        let mut caps = RtpCapabilities::default();
        for c in s.codecs.iter().filter(|c| is_media(&c.mime_type)) {
            let Some(cap) = router_codec(c, kind, router) else {
                continue;
            };
            caps.codecs.push(RtpCodecCapability {
                kind,
                mime_type: cap.mime_type.clone(),
                preferred_payload_type: Some(c.payload_type),
                clock_rate: c.clock_rate,
                channels: if kind == MediaKind::Audio {
                    Some(c.channels.unwrap_or(1))
                } else {
                    None
                },
                parameters: c.parameters.clone(),
                rtcp_feedback: common_feedback(&c.rtcp_feedback, &cap.rtcp_feedback),
            });
            if let Some(rtx_cap) = router_rtx(kind, router) {
                if let Some(rtx) = s.codecs.iter().find(|r| {
                    is_rtx_mime_type(&r.mime_type)
                        && r.parameters.uint("apt") == Some(c.payload_type as u64)
                }) {
                    let mut p = CodecParameters::new();
                    p.insert("apt", c.payload_type);
                    caps.codecs.push(RtpCodecCapability {
                        kind,
                        mime_type: rtx_cap.mime_type.clone(),
                        preferred_payload_type: Some(rtx.payload_type),
                        clock_rate: rtx.clock_rate,
                        channels: None,
                        parameters: p,
                        rtcp_feedback: Vec::new(),
                    });
                }
            }
        }
        if caps.codecs.is_empty() {
            let e = SdpError::at(
                s.line,
                &m_line(s),
                format!(
                    "no codec in common with the router (offered: {}; the router has: {})",
                    offered_names(s),
                    router_names(kind, router)
                ),
            )
            .unusable();
            out.push(SubscribeSection {
                index: s.index,
                mid,
                kind: s.kind,
                rtp_capabilities: None,
                rejected: Some(e.reason.clone()),
            });
            codec_error.get_or_insert(e);
            continue;
        }
        for h in &s.header_extensions {
            if ext_allowed(router, kind, &h.uri, false).is_some() {
                caps.header_extensions.push(RtpHeaderExtension {
                    kind,
                    uri: h.uri.clone(),
                    preferred_id: h.id,
                    preferred_encrypt: false,
                    direction: RtpHeaderExtensionDirection::SendRecv,
                });
            }
        }
        out.push(SubscribeSection {
            index: s.index,
            mid,
            kind: s.kind,
            rtp_capabilities: Some(caps),
            rejected: None,
        });
    }
    if out.iter().all(|s| s.rtp_capabilities.is_none()) {
        if let Some(e) = codec_error {
            return Err(e);
        }
        return Err(SdpError::general(
            "no audio or video section to receive on (recvonly or sendrecv)",
        )
        .unusable());
    }
    Ok(out)
}

/// Payload-type and extension-id translations from the router's numbering to a remote
/// offerer's (see [`remote_numbering`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Numbering {
    /// (router payload type, remote payload type).
    pub payload_types: Vec<(u8, u8)>,
    /// (router extension id, remote extension id).
    pub extension_ids: Vec<(u8, u8)>,
}

/// `caps` (a remote offerer's receive capabilities in its own numbering, from [`subscribe`])
/// with each header extension's id replaced by the router's id for the same URI, so that
/// mediasoup's consumer negotiation (which matches extensions by id) keeps them.
pub fn caps_in_router_numbering(
    caps: &RtpCapabilities,
    router: &RtpCapabilities,
) -> RtpCapabilities {
    let mut out = caps.clone();
    out.header_extensions.retain_mut(|h| {
        match router
            .header_extensions
            .iter()
            .find(|r| r.kind == h.kind && r.uri == h.uri)
        {
            Some(r) => {
                h.preferred_id = r.preferred_id;
                true
            }
            None => false,
        }
    });
    out
}

/// Rewrites consumer parameters computed in the router's numbering into the numbering of the
/// remote offerer whose capabilities are `remote` (payload types and extension ids from its
/// offer, as an answerer must use them). Returns the translations applied.
pub fn remote_numbering(params: &mut RtpParameters, remote: &RtpCapabilities) -> Numbering {
    let mut n = Numbering::default();
    // Media codecs first, then RTX by apt.
    for codec in params.codecs.iter_mut().filter(|c| !c.is_rtx()) {
        let offered = OfferCodec {
            payload_type: codec.payload_type,
            mime_type: codec.mime_type.clone(),
            clock_rate: codec.clock_rate,
            channels: codec.channels,
            parameters: codec.parameters.clone(),
            rtcp_feedback: Vec::new(),
            line: 0,
        };
        if let Some(cap) = remote
            .codecs
            .iter()
            .find(|cap| !cap.is_rtx() && codec_matches(&offered, cap))
        {
            if let Some(pt) = cap.preferred_payload_type {
                n.payload_types.push((codec.payload_type, pt));
                codec.payload_type = pt;
            }
        }
    }
    let media_map = n.payload_types.clone();
    for codec in params.codecs.iter_mut().filter(|c| c.is_rtx()) {
        let Some(apt) = codec.apt() else { continue };
        let Some(&(_, remote_apt)) = media_map.iter().find(|(r, _)| *r == apt) else {
            continue;
        };
        if let Some(pt) = remote
            .codecs
            .iter()
            .find(|cap| cap.is_rtx() && cap.parameters.uint("apt") == Some(remote_apt as u64))
            .and_then(|cap| cap.preferred_payload_type)
        {
            n.payload_types.push((codec.payload_type, pt));
            codec.payload_type = pt;
            codec.parameters.insert("apt", remote_apt);
        }
    }
    for h in params.header_extensions.iter_mut() {
        if let Some(r) = remote.header_extensions.iter().find(|r| r.uri == h.uri) {
            n.extension_ids.push((h.id, r.preferred_id));
            h.id = r.preferred_id;
        }
    }
    n
}
