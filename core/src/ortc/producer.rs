//! Producers (spec §5): payload type / SSRC mapping onto the router, producer checks and type,
//! the transport-wide CNAME, consumable parameters.

use super::*;

// =============================================================================================
// Producers (spec §5)

/// Producer payload type → router payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpCodecMapping {
    /// The producer's payload type.
    pub payload_type: u8,
    /// The router's payload type.
    pub mapped_payload_type: u8,
}

/// One producer encoding and the SSRC its packets are rewritten to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpEncodingMapping {
    /// The producer's SSRC, if signaled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssrc: Option<u32>,
    /// The producer's RID, if signaled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rid: Option<String>,
    /// The encoding's scalability mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scalability_mode: Option<String>,
    /// The router-side SSRC.
    pub mapped_ssrc: u32,
}

/// How a producer's packets map onto the router's canonical payload types and SSRCs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RtpMapping {
    /// Codec mappings: media codecs first, then RTX.
    pub codecs: Vec<RtpCodecMapping>,
    /// One entry per producer encoding, in order.
    pub encodings: Vec<RtpEncodingMapping>,
}

impl RtpMapping {
    /// The router payload type for a producer payload type.
    pub fn mapped_payload_type(&self, payload_type: u8) -> Option<u8> {
        self.codecs
            .iter()
            .find(|c| c.payload_type == payload_type)
            .map(|c| c.mapped_payload_type)
    }
}

/// A fresh SSRC in [100 000 000, 999 999 999] (mediasoup's `generateRandomNumber`).
pub fn random_ssrc(rng: &mut impl Rng) -> u32 {
    rng.gen_range(100_000_000..=999_999_999)
}

/// Maps a producer's codecs and encodings onto the router capabilities.
///
/// Every media codec must match a router codec strictly; H264 `profile-level-id` in `params`
/// is rewritten to the negotiated answer ("modify" mode). Every RTX codec's `apt` must name a
/// media codec of the producer, and the router must have RTX for the matched codec. Empty
/// `encodings` become `[{}]` (a single stream learned from packets). Encodings get
/// consecutive `mappedSsrc`s from a random base.
pub fn get_producer_rtp_parameters_mapping(
    params: &mut RtpParameters,
    router_caps: &RtpCapabilities,
    rng: &mut impl Rng,
) -> Result<RtpMapping, OrtcError> {
    // (producer codec index, router codec index)
    let mut media: Vec<(usize, usize)> = Vec::new();
    for (i, codec) in params.codecs.iter_mut().enumerate() {
        if codec.is_rtx() {
            continue;
        }
        let found = router_caps.codecs.iter().enumerate().find_map(|(j, cap)| {
            match_codecs(CodecView::from(&*codec), CodecView::from(cap), true).map(|a| (j, a))
        });
        let (j, answer) = found.ok_or_else(|| OrtcError::UnsupportedCodec {
            mime_type: codec.mime_type.clone(),
            payload_type: codec.payload_type,
        })?;
        apply_answer(&mut codec.parameters, answer);
        media.push((i, j));
    }

    let mut rtx: Vec<(usize, usize)> = Vec::new();
    for (i, codec) in params.codecs.iter().enumerate() {
        if !codec.is_rtx() {
            continue;
        }
        let missing = || OrtcError::MissingMediaCodecForRtx(codec.payload_type);
        let apt = codec.apt().ok_or_else(missing)?;
        let assoc = params
            .codecs
            .iter()
            .position(|m| m.payload_type == apt)
            .ok_or_else(missing)?;
        // An apt pointing at another RTX codec has no media mapping.
        let cap_media = media
            .iter()
            .find(|(pi, _)| *pi == assoc)
            .map(|&(_, j)| j)
            .ok_or_else(missing)?;
        let cap_pt = router_caps.codecs[cap_media].preferred_payload_type;
        let cap_rtx = router_caps
            .codecs
            .iter()
            .position(|c| {
                c.is_rtx() && cap_pt.is_some() && c.parameters.payload_type("apt") == cap_pt
            })
            .ok_or(OrtcError::NoRtxCodecForCapabilityCodec(cap_pt.unwrap_or(0)))?;
        rtx.push((i, cap_rtx));
    }

    let mut mapping = RtpMapping::default();
    for &(i, j) in media.iter().chain(rtx.iter()) {
        let mapped = router_caps.codecs[j]
            .preferred_payload_type
            .ok_or_else(|| {
                OrtcError::InconsistentMapping(format!(
                    "router codec {} has no preferredPayloadType",
                    router_caps.codecs[j].mime_type
                ))
            })?;
        mapping.codecs.push(RtpCodecMapping {
            payload_type: params.codecs[i].payload_type,
            mapped_payload_type: mapped,
        });
    }

    if params.encodings.is_empty() {
        params.encodings.push(RtpEncodingParameters {
            dtx: Some(false),
            ..Default::default()
        });
    }
    let base = random_ssrc(rng);
    for (k, enc) in params.encodings.iter().enumerate() {
        mapping.encodings.push(RtpEncodingMapping {
            ssrc: enc.ssrc.filter(|s| *s != 0),
            rid: enc.rid.clone().filter(|r| !r.is_empty()),
            scalability_mode: enc.scalability_mode.clone().filter(|m| !m.is_empty()),
            mapped_ssrc: base.wrapping_add(k as u32),
        });
    }
    Ok(mapping)
}

/// A producer's forwarding type (spec §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProducerType {
    /// One stream without layers.
    Simple,
    /// Several streams (or one VP8/H264 stream with temporal layers).
    Simulcast,
    /// One stream with spatial/temporal layers (VP9, H264-SVC).
    Svc,
}

impl ProducerType {
    /// mediasoup's name: `"simple"`, `"simulcast"` or `"svc"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProducerType::Simple => "simple",
            ProducerType::Simulcast => "simulcast",
            ProducerType::Svc => "svc",
        }
    }
}

/// The one producer-type rule (mediasoup's `RtpParameters::GetType` and the codec check of its
/// `Producer`), used by validation, the engine and everything that reports a type:
/// - several encodings: `simulcast` (VP8/H264 only; spatial layers inside them refused);
/// - one encoding (or none) without layers: `simple`, any codec;
/// - one encoding whose `scalabilityMode` has more than one spatial or temporal layer: `svc` for
///   an SVC codec (VP9, H264-SVC), else `simulcast` for a simulcast codec (VP8/H264: `L1T3` is a
///   one-stream simulcast with temporal layers), else refused.
///
/// The codec is the encoding's `codecPayloadType` or the first media codec.
pub fn producer_type(params: &RtpParameters) -> Result<ProducerType, OrtcError> {
    let first = params.encodings.first();
    let media = first
        .and_then(|e| e.codec_payload_type)
        .and_then(|pt| params.codecs.iter().find(|c| c.payload_type == pt))
        .or_else(|| params.codecs.iter().find(|c| is_media_codec(&c.mime_type)))
        .ok_or_else(|| invalid("codecs", "has no media codec"))?;
    let mime = media.mime_type.to_ascii_lowercase();
    let simulcast_ok = matches!(mime.as_str(), "video/vp8" | "video/h264");
    let svc_ok = matches!(mime.as_str(), "video/vp9" | "video/h264-svc");
    let unsupported = |producer_type| OrtcError::CodecNotSupportedForType {
        codec: media.mime_type.clone(),
        producer_type,
    };
    let mode_of = |e: &RtpEncodingParameters| {
        ScalabilityMode::parse_or_default(e.scalability_mode.as_deref())
    };
    if params.encodings.len() > 1 {
        if let Some(i) = params
            .encodings
            .iter()
            .position(|e| mode_of(e).spatial_layers > 1)
        {
            return Err(invalid(
                &format!("encodings[{i}].scalabilityMode"),
                "cannot use both simulcast and encodings with multiple SVC spatial layers",
            ));
        }
        return if simulcast_ok {
            Ok(ProducerType::Simulcast)
        } else {
            Err(unsupported("simulcast"))
        };
    }
    let mode = first.map(mode_of).unwrap_or_default();
    if mode.spatial_layers == 1 && mode.temporal_layers == 1 {
        Ok(ProducerType::Simple)
    } else if svc_ok {
        Ok(ProducerType::Svc)
    } else if simulcast_ok {
        Ok(ProducerType::Simulcast)
    } else {
        Err(unsupported("svc"))
    }
}

pub(super) fn is_media_codec(mime_type: &str) -> bool {
    let lower = mime_type.to_ascii_lowercase();
    !is_rtx_mime_type(&lower)
        && !matches!(
            lower.split_once('/').map(|(_, s)| s),
            Some("ulpfec" | "flexfec" | "flexfec-03" | "red")
        )
}

/// The worker-level producer checks (spec §5.2.4) and the producer type (§5.3, [`producer_type`]).
/// Call after [`normalize_rtp_parameters`].
pub fn validate_producer_rtp_parameters(
    kind: MediaKind,
    params: &RtpParameters,
) -> Result<ProducerType, OrtcError> {
    if params.codecs.is_empty() {
        return Err(invalid("codecs", "empty"));
    }
    for (i, codec) in params.codecs.iter().enumerate() {
        let path = format!("codecs[{i}]");
        if codec.kind() != Some(kind) {
            return Err(invalid(
                &join(&path, "mimeType"),
                "does not match the producer kind",
            ));
        }
        if params.codecs[..i]
            .iter()
            .any(|c| c.payload_type == codec.payload_type)
        {
            return Err(invalid(&join(&path, "payloadType"), "duplicated"));
        }
        if codec.is_rtx() {
            let apt_ok = codec.apt().is_some_and(|apt| {
                params
                    .codecs
                    .iter()
                    .any(|m| m.payload_type == apt && is_media_codec(&m.mime_type))
            });
            if !apt_ok {
                return Err(invalid(&join(&path, "parameters.apt"), "invalid"));
            }
        }
    }
    for (i, ext) in params.header_extensions.iter().enumerate() {
        if ext.id == 0 {
            return Err(invalid(&format!("headerExtensions[{i}].id"), "invalid"));
        }
    }
    let single = params.encodings.len() <= 1;
    for (i, enc) in params.encodings.iter().enumerate() {
        let path = format!("encodings[{i}]");
        if let Some(pt) = enc.codec_payload_type {
            if !params
                .codecs
                .iter()
                .any(|c| c.payload_type == pt && is_media_codec(&c.mime_type))
            {
                return Err(invalid(&join(&path, "codecPayloadType"), "invalid"));
            }
        }
        let has_id = enc.ssrc.is_some() || enc.rid.is_some();
        if !has_id && (!single || params.mid.is_none()) {
            return Err(invalid(&path, "needs ssrc or rid"));
        }
        if let Some(mode) = &enc.scalability_mode {
            if ScalabilityMode::parse(mode).is_none() {
                return Err(invalid(&join(&path, "scalabilityMode"), "invalid"));
            }
        }
    }
    producer_type(params)
}

/// The transport-wide CNAME rule (spec §5.2.2): the first producer carrying `rtcp.cname` sets
/// it (else a random 8-char one is generated), and every producer gets it.
#[derive(Debug, Clone, Default)]
pub struct ProducerCname {
    cname: Option<String>,
}

impl ProducerCname {
    /// No CNAME chosen yet.
    pub fn new() -> Self {
        ProducerCname::default()
    }

    /// The chosen CNAME, if any producer was created.
    pub fn get(&self) -> Option<&str> {
        self.cname.as_deref()
    }

    /// Chooses the CNAME if needed (a generated one draws on `rng`) and overrides
    /// `params.rtcp.cname` with it.
    pub fn apply(&mut self, params: &mut RtpParameters, rng: &mut impl Rng) -> String {
        let cname = match &self.cname {
            Some(c) => c.clone(),
            None => {
                let c = params
                    .rtcp
                    .cname
                    .clone()
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(|| {
                        uuid::Builder::from_random_bytes(rng.gen())
                            .into_uuid()
                            .simple()
                            .to_string()
                            .chars()
                            .take(8)
                            .collect()
                    });
                self.cname = Some(c.clone());
                c
            }
        };
        params.rtcp.cname = Some(cname.clone());
        cname
    }
}

/// Per-transport consumer MID counter: `"0"`, `"1"`, ... wrapping at 100 000 000.
#[derive(Debug, Clone, Default)]
pub struct ConsumerMidAllocator {
    pub(super) next: u32,
}

impl ConsumerMidAllocator {
    /// Starts at `"0"`.
    pub fn new() -> Self {
        ConsumerMidAllocator::default()
    }

    /// The next MID.
    pub fn next_mid(&mut self) -> String {
        let mid = self.next.to_string();
        self.next = (self.next + 1) % 100_000_000;
        mid
    }
}

/// The router-side view of a producer that consumers are derived from (spec §5.4): router
/// codecs/PTs with the producer's codec parameters (plus router RTX), the router's
/// consumer-usable header extensions of `kind`, encodings with `mappedSsrc` as `ssrc`
/// (rid/rtx/codecPayloadType dropped), and `rtcp = {cname, reducedSize: true}`.
pub fn get_consumable_rtp_parameters(
    kind: MediaKind,
    params: &RtpParameters,
    router_caps: &RtpCapabilities,
    mapping: &RtpMapping,
) -> Result<RtpParameters, OrtcError> {
    let mut consumable = RtpParameters::default();
    for codec in params.codecs.iter().filter(|c| !c.is_rtx()) {
        let pt = mapping
            .mapped_payload_type(codec.payload_type)
            .ok_or_else(|| {
                OrtcError::InconsistentMapping(format!("no mapping for PT {}", codec.payload_type))
            })?;
        let cap = router_caps
            .codecs
            .iter()
            .find(|c| c.preferred_payload_type == Some(pt))
            .ok_or_else(|| {
                OrtcError::InconsistentMapping(format!("no router codec with PT {pt}"))
            })?;
        consumable.codecs.push(RtpCodecParameters {
            mime_type: cap.mime_type.clone(),
            payload_type: pt,
            clock_rate: cap.clock_rate,
            channels: cap.channels,
            // Keep the producer's parameters (e.g. H264 profile-level-id, opus stereo).
            parameters: codec.parameters.clone(),
            rtcp_feedback: cap.rtcp_feedback.clone(),
        });
        if let Some(rtx) = router_caps
            .codecs
            .iter()
            .find(|c| c.is_rtx() && c.parameters.payload_type("apt") == Some(pt))
        {
            if let Some(rtx_pt) = rtx.preferred_payload_type {
                consumable.codecs.push(RtpCodecParameters {
                    mime_type: rtx.mime_type.clone(),
                    payload_type: rtx_pt,
                    clock_rate: rtx.clock_rate,
                    channels: None,
                    parameters: rtx.parameters.clone(),
                    rtcp_feedback: rtx.rtcp_feedback.clone(),
                });
            }
        }
    }
    for ext in &router_caps.header_extensions {
        let usable = matches!(
            ext.direction,
            RtpHeaderExtensionDirection::SendRecv | RtpHeaderExtensionDirection::SendOnly
        );
        if ext.kind != kind || !usable {
            continue;
        }
        consumable
            .header_extensions
            .push(RtpHeaderExtensionParameters {
                uri: ext.uri.clone(),
                id: ext.preferred_id,
                encrypt: ext.preferred_encrypt,
                parameters: CodecParameters::new(),
            });
    }
    for (i, enc) in params.encodings.iter().enumerate() {
        let mapped = mapping.encodings.get(i).ok_or_else(|| {
            OrtcError::InconsistentMapping(format!("no mapping for encodings[{i}]"))
        })?;
        let mut enc = enc.clone();
        enc.rid = None;
        enc.rtx = None;
        enc.codec_payload_type = None;
        enc.ssrc = Some(mapped.mapped_ssrc);
        consumable.encodings.push(enc);
    }
    consumable.rtcp = RtcpParameters {
        cname: params.rtcp.cname.clone(),
        reduced_size: true,
        mux: None,
    };
    Ok(consumable)
}
