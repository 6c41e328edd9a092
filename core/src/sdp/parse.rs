//! Offer and sdpfrag parsing. The `sdp` crate checks the session grammar (line order, `m=`
//! lines); attributes are read here from the raw lines so that every error names its line.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use super::{Direction, Fingerprint, Offer, OfferCodec, OfferSection, Rid, SdpError};
use crate::rtp_parameters::{
    CodecParameters, MediaKind, ParamValue, RtcpFeedback, RtpHeaderExtensionParameters,
};

/// Largest offer accepted, in bytes.
const MAX_SDP_BYTES: usize = 256 * 1024;

/// An `a=fmtp` line waiting for its `a=rtpmap`: payload type, parameters, line number, text.
type PendingFmtp = (u8, CodecParameters, usize, String);

/// A raw line: 1-based number, type letter, value.
struct Line<'a> {
    no: usize,
    text: &'a str,
    kind: u8,
    value: &'a str,
}

fn lines(text: &str) -> Result<Vec<Line<'_>>, SdpError> {
    if text.len() > MAX_SDP_BYTES {
        return Err(SdpError::general(format!(
            "longer than {MAX_SDP_BYTES} bytes"
        )));
    }
    let mut out = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            continue;
        }
        if line.contains(['\r', '\0']) {
            // RFC 8866 §9: no value holds CR or NUL; an answer echoing one (a mid, a rid)
            // would carry a bare CR, which some SDP parsers take for a line break.
            return Err(SdpError::at(i + 1, line, "CR or NUL inside a line"));
        }
        let b = line.as_bytes();
        if b.len() < 2 || !b[0].is_ascii_lowercase() || b[1] != b'=' {
            return Err(SdpError::at(
                i + 1,
                line,
                "not an SDP line (expected `<letter>=<value>`)",
            ));
        }
        out.push(Line {
            no: i + 1,
            text: line,
            kind: b[0],
            value: &line[2..],
        });
    }
    if out.is_empty() {
        return Err(SdpError::general("empty body (expected an SDP offer)"));
    }
    if out[0].kind != b'v' {
        return Err(SdpError::at(
            out[0].no,
            out[0].text,
            "an SDP description starts with `v=0`",
        ));
    }
    Ok(out)
}

/// `a=key:value` or `a=flag`.
fn attr<'a>(line: &Line<'a>) -> (&'a str, Option<&'a str>) {
    match line.value.split_once(':') {
        Some((k, v)) => (k, Some(v)),
        None => (line.value, None),
    }
}

fn need<'a>(line: &Line<'_>, v: Option<&'a str>) -> Result<&'a str, SdpError> {
    v.filter(|v| !v.trim().is_empty())
        .ok_or_else(|| SdpError::at(line.no, line.text, "missing value"))
}

fn fmtp_value(v: &str) -> ParamValue {
    // Integers become numbers (as mediasoup's sdp-transform does); the rest strings.
    match v.parse::<i64>() {
        Ok(n) if !v.starts_with('0') || v == "0" => ParamValue::Int(n),
        _ => ParamValue::from(v),
    }
}

/// Parses an SDP offer. Errors name the line (or say what is missing).
pub fn parse_offer(text: &str) -> Result<Offer, SdpError> {
    let all = lines(text)?;
    // The grammar check of the sdp crate (v/o/s/t order, well-formed m= lines, ...).
    let mut cursor = Cursor::new(text.as_bytes());
    let parsed = sdp::SessionDescription::unmarshal(&mut cursor)
        .map_err(|e| SdpError::general(format!("malformed: {e}")))?;

    let mut session_ufrag = None;
    let mut session_pwd = None;
    let mut ice_options = Vec::new();
    let mut fingerprints = Vec::new();
    let mut setup: Option<String> = None;
    let mut bundle = Vec::new();
    let mut sections: Vec<OfferSection> = Vec::new();
    // Per section: rtcp-fb lines seen before/after their rtpmap, applied at the end.
    let mut pending_fb: Vec<Vec<(String, RtcpFeedback, usize)>> = Vec::new();
    let mut pending_fmtp: Vec<Vec<PendingFmtp>> = Vec::new();
    let mut session_fingerprints = true;

    for line in &all {
        if line.kind == b'm' {
            let mut parts = line.value.split_whitespace();
            let media = parts.next().unwrap_or_default().to_owned();
            let port = parts
                .next()
                .and_then(|p| p.split('/').next())
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(|| SdpError::at(line.no, line.text, "bad port"))?;
            let protocol = parts
                .next()
                .ok_or_else(|| SdpError::at(line.no, line.text, "missing protocol"))?
                .to_owned();
            let formats: Vec<String> = parts.map(str::to_owned).collect();
            let kind = match media.as_str() {
                "audio" => Some(MediaKind::Audio),
                "video" => Some(MediaKind::Video),
                _ => None,
            };
            sections.push(OfferSection {
                index: sections.len(),
                media,
                kind,
                port,
                protocol,
                formats,
                mid: None,
                direction: Direction::SendRecv,
                codecs: Vec::new(),
                header_extensions: Vec::new(),
                ssrcs: Vec::new(),
                ssrc_groups: Vec::new(),
                cname: None,
                msid: None,
                rids: Vec::new(),
                simulcast_send: Vec::new(),
                simulcast_recv: Vec::new(),
                rtcp_mux: false,
                rtcp_rsize: false,
                ice_ufrag: None,
                ice_pwd: None,
                line: line.no,
            });
            pending_fb.push(Vec::new());
            pending_fmtp.push(Vec::new());
            session_fingerprints = false;
            continue;
        }
        if line.kind != b'a' {
            continue;
        }
        let (key, value) = attr(line);
        let section = sections.last_mut();
        match (key, section) {
            ("ice-ufrag", None) => session_ufrag = Some(need(line, value)?.trim().to_owned()),
            ("ice-pwd", None) => session_pwd = Some(need(line, value)?.trim().to_owned()),
            ("ice-ufrag", Some(s)) => s.ice_ufrag = Some(need(line, value)?.trim().to_owned()),
            ("ice-pwd", Some(s)) => s.ice_pwd = Some(need(line, value)?.trim().to_owned()),
            ("ice-options", _) => {
                ice_options.extend(need(line, value)?.split_whitespace().map(str::to_owned))
            }
            ("fingerprint", s) => {
                let v = need(line, value)?;
                let (alg, fp) = v.trim().split_once(' ').ok_or_else(|| {
                    SdpError::at(line.no, line.text, "expected `<hash> <hex:hex:...>`")
                })?;
                let fp = fp.trim();
                let ok_hex = fp
                    .split(':')
                    .all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit()))
                    && fp.len() >= 47;
                if !ok_hex {
                    return Err(SdpError::at(line.no, line.text, "malformed fingerprint"));
                }
                // Session-level fingerprints, else those of the first section (BUNDLE).
                if session_fingerprints || s.is_some_and(|s| s.index == 0) {
                    fingerprints.push(Fingerprint {
                        algorithm: alg.to_ascii_lowercase(),
                        value: fp.to_ascii_uppercase(),
                    });
                }
            }
            ("setup", _) => {
                let v = need(line, value)?.trim();
                if !matches!(v, "actpass" | "active" | "passive" | "holdconn") {
                    return Err(SdpError::at(
                        line.no,
                        line.text,
                        "expected actpass, active or passive",
                    ));
                }
                if setup.is_none() {
                    setup = Some(v.to_owned());
                }
            }
            ("group", _) => {
                let v = need(line, value)?;
                let mut it = v.split_whitespace();
                if it.next() == Some("BUNDLE") {
                    bundle = it.map(str::to_owned).collect();
                }
            }
            ("mid", Some(s)) => s.mid = Some(need(line, value)?.trim().to_owned()),
            ("sendrecv", Some(s)) => s.direction = Direction::SendRecv,
            ("sendonly", Some(s)) => s.direction = Direction::SendOnly,
            ("recvonly", Some(s)) => s.direction = Direction::RecvOnly,
            ("inactive", Some(s)) => s.direction = Direction::Inactive,
            ("rtcp-mux", Some(s)) => s.rtcp_mux = true,
            ("rtcp-rsize", Some(s)) => s.rtcp_rsize = true,
            ("msid", Some(s)) => s.msid = Some(need(line, value)?.trim().to_owned()),
            ("rtpmap", Some(s)) => {
                let v = need(line, value)?;
                let bad = || {
                    SdpError::at(
                        line.no,
                        line.text,
                        "expected `<pt> <name>/<rate>[/<channels>]`",
                    )
                };
                let (pt, enc) = v.trim().split_once(' ').ok_or_else(bad)?;
                let pt: u8 = pt.parse().ok().filter(|p| *p < 128).ok_or_else(|| {
                    SdpError::at(line.no, line.text, "payload type must be 0..127")
                })?;
                let mut enc = enc.trim().split('/');
                let name = enc.next().filter(|n| !n.is_empty()).ok_or_else(bad)?;
                let clock_rate: u32 = enc
                    .next()
                    .and_then(|r| r.parse().ok())
                    .filter(|r| *r > 0)
                    .ok_or_else(|| SdpError::at(line.no, line.text, "missing or bad clock rate"))?;
                let channels = match enc.next() {
                    Some(c) => Some(
                        c.parse::<u8>()
                            .ok()
                            .filter(|c| *c > 0)
                            .ok_or_else(|| SdpError::at(line.no, line.text, "bad channel count"))?,
                    ),
                    None => None,
                };
                if !s.formats.iter().any(|f| f == &pt.to_string()) {
                    return Err(SdpError::at(
                        line.no,
                        line.text,
                        format!("payload type {pt} is not listed on the m= line"),
                    ));
                }
                if s.codecs.iter().any(|c| c.payload_type == pt) {
                    return Err(SdpError::at(
                        line.no,
                        line.text,
                        "payload type mapped twice",
                    ));
                }
                s.codecs.push(OfferCodec {
                    payload_type: pt,
                    mime_type: format!("{}/{}", s.media, name),
                    clock_rate,
                    channels,
                    parameters: CodecParameters::new(),
                    rtcp_feedback: Vec::new(),
                    line: line.no,
                });
            }
            ("fmtp", Some(s)) => {
                let v = need(line, value)?;
                let (pt, params) = v.trim().split_once(' ').unwrap_or((v.trim(), ""));
                let pt: u8 = pt.parse().map_err(|_| {
                    SdpError::at(line.no, line.text, "expected `<pt> <key>=<value>;...`")
                })?;
                let mut map = CodecParameters::new();
                for kv in params.split(';').map(str::trim).filter(|kv| !kv.is_empty()) {
                    // Values without a key (RED's "111/111") carry nothing we negotiate.
                    if let Some((k, v)) = kv.split_once('=') {
                        map.insert(k.trim(), fmtp_value(v.trim()));
                    }
                }
                let idx = s.index;
                pending_fmtp[idx].push((pt, map, line.no, line.text.to_owned()));
            }
            ("rtcp-fb", Some(s)) => {
                let v = need(line, value)?;
                let mut it = v.split_whitespace();
                let pt = it.next().unwrap_or_default().to_owned();
                let fb_type = it
                    .next()
                    .ok_or_else(|| SdpError::at(line.no, line.text, "missing feedback type"))?;
                let parameter = it.collect::<Vec<_>>().join(" ");
                let idx = s.index;
                pending_fb[idx].push((pt, RtcpFeedback::new(fb_type, &parameter), line.no));
            }
            ("extmap", Some(s)) => {
                let v = need(line, value)?;
                let bad =
                    || SdpError::at(line.no, line.text, "expected `<id>[/<direction>] <uri>`");
                let mut it = v.split_whitespace();
                let id = it.next().ok_or_else(bad)?;
                let id: u8 = id
                    .split('/')
                    .next()
                    .and_then(|i| i.parse().ok())
                    .filter(|i| (1..=255).contains(i))
                    .ok_or_else(|| {
                        SdpError::at(line.no, line.text, "extension id must be 1..255")
                    })?;
                let uri = it.next().ok_or_else(bad)?;
                if s.header_extensions.iter().any(|e| e.id == id) {
                    return Err(SdpError::at(line.no, line.text, "extension id used twice"));
                }
                s.header_extensions.push(RtpHeaderExtensionParameters {
                    uri: uri.to_owned(),
                    id,
                    encrypt: false,
                    parameters: CodecParameters::new(),
                });
            }
            ("ssrc", Some(s)) => {
                let v = need(line, value)?;
                let (ssrc, rest) = v.trim().split_once(' ').unwrap_or((v.trim(), ""));
                let ssrc: u32 = ssrc
                    .parse()
                    .map_err(|_| SdpError::at(line.no, line.text, "SSRC must be 0..4294967295"))?;
                if !s.ssrcs.contains(&ssrc) {
                    s.ssrcs.push(ssrc);
                }
                if let Some(cname) = rest.strip_prefix("cname:") {
                    if s.cname.is_none() {
                        s.cname = Some(cname.trim().to_owned());
                    }
                }
                if let Some(msid) = rest.strip_prefix("msid:") {
                    if s.msid.is_none() {
                        s.msid = Some(msid.trim().to_owned());
                    }
                }
            }
            ("ssrc-group", Some(s)) => {
                let v = need(line, value)?;
                let mut it = v.split_whitespace();
                let semantics = it.next().unwrap_or_default().to_owned();
                let ssrcs = it
                    .map(|x| x.parse::<u32>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| SdpError::at(line.no, line.text, "SSRC must be 0..4294967295"))?;
                s.ssrc_groups.push((semantics, ssrcs));
            }
            ("rid", Some(s)) => {
                let v = need(line, value)?;
                let mut it = v.split_whitespace();
                let id = it.next().unwrap_or_default();
                let dir = it.next().unwrap_or_default();
                if !id
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
                    || id.is_empty()
                    || id.len() > 16
                {
                    return Err(SdpError::at(
                        line.no,
                        line.text,
                        "bad rid (1..16 of A-Za-z0-9-_)",
                    ));
                }
                if dir != "send" && dir != "recv" {
                    return Err(SdpError::at(
                        line.no,
                        line.text,
                        "rid direction must be send or recv",
                    ));
                }
                s.rids.push(Rid {
                    id: id.to_owned(),
                    direction: dir.to_owned(),
                });
            }
            ("simulcast", Some(s)) => {
                let v = need(line, value)?;
                let mut it = v.split_whitespace();
                while let Some(dir) = it.next() {
                    let list = it.next().ok_or_else(|| {
                        SdpError::at(line.no, line.text, "expected `send|recv <rid>;<rid>...`")
                    })?;
                    let ids: Vec<String> = list
                        .split(';')
                        .filter_map(|alts| alts.split(',').next())
                        .map(|r| r.trim_start_matches('~').to_owned())
                        .filter(|r| !r.is_empty())
                        .collect();
                    match dir {
                        "send" => s.simulcast_send = ids,
                        "recv" => s.simulcast_recv = ids,
                        _ => {
                            return Err(SdpError::at(
                                line.no,
                                line.text,
                                "simulcast direction must be send or recv",
                            ))
                        }
                    }
                }
            }
            _ => {}
        }
    }

    if sections.is_empty() {
        return Err(SdpError::general("no media section (m= line)"));
    }
    if sections.len() != parsed.media_descriptions.len() {
        return Err(SdpError::general("media sections could not be read"));
    }
    // fmtp and rtcp-fb may come before or after their rtpmap; apply them now.
    for (s, fmtps) in sections.iter_mut().zip(pending_fmtp) {
        for (pt, map, no, text) in fmtps {
            let Some(codec) = s.codecs.iter_mut().find(|c| c.payload_type == pt) else {
                if s.formats.iter().any(|f| f == &pt.to_string()) {
                    continue; // a static payload type without rtpmap: nothing to attach to
                }
                return Err(SdpError::at(
                    no,
                    &text,
                    format!("no a=rtpmap for payload type {pt}"),
                ));
            };
            codec.parameters.extend(map);
        }
    }
    for (s, fbs) in sections.iter_mut().zip(pending_fb) {
        for (pt, fb, _) in fbs {
            for codec in s.codecs.iter_mut() {
                if (pt == "*" || pt == codec.payload_type.to_string())
                    && !codec.rtcp_feedback.contains(&fb)
                {
                    codec.rtcp_feedback.push(fb.clone());
                }
            }
        }
    }
    // Static payload types (PCMU 0, PCMA 8) without rtpmap.
    for s in sections.iter_mut() {
        for f in s.formats.clone() {
            let Ok(pt) = f.parse::<u8>() else { continue };
            if s.codecs.iter().any(|c| c.payload_type == pt) {
                continue;
            }
            let known = match (s.kind, pt) {
                (Some(MediaKind::Audio), 0) => Some("PCMU"),
                (Some(MediaKind::Audio), 8) => Some("PCMA"),
                _ => None,
            };
            if let Some(name) = known {
                s.codecs.push(OfferCodec {
                    payload_type: pt,
                    mime_type: format!("audio/{name}"),
                    clock_rate: 8000,
                    channels: None,
                    parameters: CodecParameters::new(),
                    rtcp_feedback: Vec::new(),
                    line: s.line,
                });
            }
        }
    }

    let first = &sections[0];
    let ice_ufrag = session_ufrag
        .or_else(|| first.ice_ufrag.clone())
        .ok_or_else(|| SdpError::general("missing a=ice-ufrag"))?;
    let ice_pwd = session_pwd
        .or_else(|| first.ice_pwd.clone())
        .ok_or_else(|| SdpError::general("missing a=ice-pwd"))?;
    if fingerprints.is_empty() {
        return Err(SdpError::general(
            "missing a=fingerprint (DTLS-SRTP is required)",
        ));
    }
    for s in &sections {
        if s.kind.is_some() && s.port != 0 && !s.protocol.contains("SAVP") {
            return Err(SdpError::at(
                s.line,
                all.iter()
                    .find(|l| l.no == s.line)
                    .map(|l| l.text)
                    .unwrap_or_default(),
                "media must use UDP/TLS/RTP/SAVPF (DTLS-SRTP)",
            ));
        }
    }
    Ok(Offer {
        ice_ufrag,
        ice_pwd,
        ice_options,
        fingerprints,
        setup: setup.unwrap_or_else(|| "actpass".to_owned()),
        bundle,
        sections,
    })
}

/// What an `application/trickle-ice-sdpfrag` body (RFC 8840) carries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceFragment {
    /// `a=ice-ufrag` (a new one means an ICE restart).
    pub ice_ufrag: Option<String>,
    /// `a=ice-pwd`.
    pub ice_pwd: Option<String>,
    /// `a=candidate` values (without `a=candidate:`), in order.
    pub candidates: Vec<String>,
    /// Whether `a=end-of-candidates` was sent.
    pub end_of_candidates: bool,
    /// `a=mid` values.
    pub mids: Vec<String>,
}

/// Parses a trickle-ice-sdpfrag body. Errors name the line.
pub fn parse_fragment(text: &str) -> Result<IceFragment, SdpError> {
    let mut frag = IceFragment::default();
    if text.len() > MAX_SDP_BYTES {
        return Err(SdpError::general(format!(
            "longer than {MAX_SDP_BYTES} bytes"
        )));
    }
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            continue;
        }
        if line.contains(['\r', '\0']) {
            // RFC 8866 §9: no value holds CR or NUL; an answer echoing one (a mid, a rid)
            // would carry a bare CR, which some SDP parsers take for a line break.
            return Err(SdpError::at(i + 1, line, "CR or NUL inside a line"));
        }
        let b = line.as_bytes();
        if b.len() < 2 || !b[0].is_ascii_lowercase() || b[1] != b'=' {
            return Err(SdpError::at(
                i + 1,
                line,
                "not an SDP line (expected `<letter>=<value>`)",
            ));
        }
        if b[0] != b'a' {
            continue;
        }
        let value = &line[2..];
        let (key, v) = match value.split_once(':') {
            Some((k, v)) => (k, Some(v.trim())),
            None => (value, None),
        };
        let need = || {
            v.filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| SdpError::at(i + 1, line, "missing value"))
        };
        match key {
            "ice-ufrag" => frag.ice_ufrag = Some(need()?),
            "ice-pwd" => frag.ice_pwd = Some(need()?),
            "candidate" => {
                let c = need()?;
                if c.split_whitespace().count() < 8 {
                    return Err(SdpError::at(i + 1, line, "malformed candidate"));
                }
                frag.candidates.push(c);
            }
            "end-of-candidates" => frag.end_of_candidates = true,
            "mid" => frag.mids.push(need()?),
            _ => {}
        }
    }
    if frag.ice_ufrag.is_some() != frag.ice_pwd.is_some() {
        return Err(SdpError::general(
            "a=ice-ufrag and a=ice-pwd must come together",
        ));
    }
    Ok(frag)
}
