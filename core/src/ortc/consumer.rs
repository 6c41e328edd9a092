//! Consumers (spec §7, §8): `canConsume`, consumer and pipe-consumer RTP parameters, and the
//! data-plane lookups on negotiated parameters.

use super::*;

// =============================================================================================
// Consumers (spec §7, §8)

/// Whether an endpoint with `caps` can consume a producer with these consumable parameters:
/// its first strictly-matching codec must exist and be a media codec. Invalid capabilities
/// give `Err` (router-level `canConsume` reports that as `false`).
pub fn can_consume(consumable: &RtpParameters, caps: &RtpCapabilities) -> Result<bool, OrtcError> {
    let mut caps = caps.clone();
    normalize_rtp_capabilities(&mut caps)?;
    let first_match = consumable.codecs.iter().find(|codec| {
        caps.codecs
            .iter()
            .any(|cap| match_codecs(CodecView::from(cap), CodecView::from(*codec), true).is_some())
    });
    Ok(first_match.is_some_and(|c| !c.is_rtx()))
}

/// Removes BWE feedback the consumer's header extensions cannot support: transport-cc ext →
/// drop goog-remb; else abs-send-time → drop transport-cc; else drop both.
pub(super) fn reduce_bwe_feedback(params: &mut RtpParameters) {
    let has = |u: &str| params.header_extensions.iter().any(|e| e.uri == u);
    let drop: &[&str] = if has(uri::TRANSPORT_WIDE_CC) {
        &["goog-remb"]
    } else if has(uri::ABS_SEND_TIME) {
        &["transport-cc"]
    } else {
        &["transport-cc", "goog-remb"]
    };
    for codec in params.codecs.iter_mut() {
        codec
            .rtcp_feedback
            .retain(|fb| !drop.contains(&fb.fb_type.as_str()));
    }
}

/// Consumer RTP parameters for an endpoint with `remote_caps` (spec §8).
///
/// Codecs: consumable codecs the caps match strictly (RTX skipped unless `enable_rtx`), with
/// the capability's rtcpFeedback (plain `nack` dropped without RTX), then orphan RTX removed.
/// Header extensions: those the caps have with the same uri and id. BWE feedback reduced per
/// transport-cc / abs-send-time. Non-pipe: one encoding with a random SSRC (+1 for RTX),
/// `L<N>T<t>` scalability for N-stream simulcast and the highest `maxBitrate`; pipe: all
/// encodings with consecutive SSRCs from random bases. `mid` is left unset (the transport
/// assigns it with [`ConsumerMidAllocator`]).
pub fn get_consumer_rtp_parameters(
    consumable: &RtpParameters,
    remote_caps: &RtpCapabilities,
    pipe: bool,
    enable_rtx: bool,
    rng: &mut impl Rng,
) -> Result<RtpParameters, OrtcError> {
    let mut caps = remote_caps.clone();
    for (i, codec) in caps.codecs.iter_mut().enumerate() {
        normalize_codec_capability(codec, &format!("codecs[{i}]"))?;
    }

    let mut consumer = RtpParameters {
        rtcp: consumable.rtcp.clone(),
        ..Default::default()
    };
    for codec in &consumable.codecs {
        if !enable_rtx && codec.is_rtx() {
            continue;
        }
        let Some(cap) = caps.codecs.iter().find(|cap| {
            match_codecs(CodecView::from(*cap), CodecView::from(codec), true).is_some()
        }) else {
            continue;
        };
        let mut codec = codec.clone();
        codec.rtcp_feedback = cap
            .rtcp_feedback
            .iter()
            .filter(|fb| enable_rtx || fb.fb_type != "nack" || !fb.parameter.is_empty())
            .cloned()
            .collect();
        consumer.codecs.push(codec);
    }
    let media_pts: Vec<u8> = consumer
        .codecs
        .iter()
        .filter(|c| !c.is_rtx())
        .map(|c| c.payload_type)
        .collect();
    consumer
        .codecs
        .retain(|c| !c.is_rtx() || c.apt().is_some_and(|apt| media_pts.contains(&apt)));
    let rtx_supported = consumer.codecs.iter().any(|c| c.is_rtx());
    if consumer.codecs.first().is_none_or(|c| c.is_rtx()) {
        return Err(OrtcError::NoCompatibleMediaCodecs);
    }

    consumer.header_extensions = consumable
        .header_extensions
        .iter()
        .filter(|ext| {
            caps.header_extensions
                .iter()
                .any(|cap| cap.preferred_id == ext.id && cap.uri == ext.uri)
        })
        .cloned()
        .collect();
    reduce_bwe_feedback(&mut consumer);

    if !pipe {
        let ssrc = random_ssrc(rng);
        let n = consumable.encodings.len();
        let mut scalability_mode = consumable
            .encodings
            .iter()
            .find_map(|e| e.scalability_mode.clone().filter(|m| !m.is_empty()));
        if n > 1 {
            let temporal =
                ScalabilityMode::parse_or_default(scalability_mode.as_deref()).temporal_layers;
            scalability_mode = Some(format!("L{n}T{temporal}"));
        }
        let max_bitrate = consumable
            .encodings
            .iter()
            .filter_map(|e| e.max_bitrate)
            .max()
            .filter(|b| *b > 0);
        consumer.encodings.push(RtpEncodingParameters {
            ssrc: Some(ssrc),
            rtx: rtx_supported.then(|| RtpEncodingRtx {
                ssrc: ssrc.wrapping_add(1),
            }),
            scalability_mode,
            max_bitrate,
            ..Default::default()
        });
    } else {
        consumer.encodings = pipe_encodings(&consumable.encodings, rtx_supported, rng);
    }
    Ok(consumer)
}

pub(super) fn pipe_encodings(
    encodings: &[RtpEncodingParameters],
    rtx: bool,
    rng: &mut impl Rng,
) -> Vec<RtpEncodingParameters> {
    let base = random_ssrc(rng);
    let rtx_base = random_ssrc(rng);
    encodings
        .iter()
        .enumerate()
        .map(|(i, enc)| {
            let mut enc = enc.clone();
            enc.ssrc = Some(base.wrapping_add(i as u32));
            enc.rtx = rtx.then(|| RtpEncodingRtx {
                ssrc: rtx_base.wrapping_add(i as u32),
            });
            enc
        })
        .collect()
}

/// Consumer parameters for a pipe transport (router-to-router / core-to-core, spec §8.1): all
/// consumable codecs (RTX only with `enable_rtx`), feedback reduced to `nack pli`, `ccm fir`
/// and (with RTX) `nack`; header extensions without mid / abs-send-time / transport-cc; all
/// encodings kept with consecutive SSRCs (and RTX SSRCs) from random bases; no mid.
pub fn get_pipe_consumer_rtp_parameters(
    consumable: &RtpParameters,
    enable_rtx: bool,
    rng: &mut impl Rng,
) -> RtpParameters {
    let codecs = consumable
        .codecs
        .iter()
        .filter(|c| enable_rtx || !c.is_rtx())
        .map(|c| {
            let mut c = c.clone();
            c.rtcp_feedback.retain(|fb| {
                (fb.fb_type == "nack" && fb.parameter == "pli")
                    || (fb.fb_type == "ccm" && fb.parameter == "fir")
                    || (enable_rtx && fb.fb_type == "nack" && fb.parameter.is_empty())
            });
            c
        })
        .collect();
    let header_extensions = consumable
        .header_extensions
        .iter()
        .filter(|e| {
            e.uri != uri::MID && e.uri != uri::ABS_SEND_TIME && e.uri != uri::TRANSPORT_WIDE_CC
        })
        .cloned()
        .collect();
    RtpParameters {
        mid: None,
        codecs,
        header_extensions,
        encodings: pipe_encodings(&consumable.encodings, enable_rtx, rng),
        rtcp: consumable.rtcp.clone(),
    }
}

// =============================================================================================
// Data-plane lookups

/// The id negotiated for a header extension URI in `params` (e.g. [`uri::MID`]).
pub fn header_extension_id(params: &RtpParameters, ext_uri: &str) -> Option<u8> {
    params
        .header_extensions
        .iter()
        .find(|e| e.uri == ext_uri)
        .map(|e| e.id)
}

/// The codec with payload type `payload_type` in `params`.
pub fn codec_by_payload_type(
    params: &RtpParameters,
    payload_type: u8,
) -> Option<&RtpCodecParameters> {
    params
        .codecs
        .iter()
        .find(|c| c.payload_type == payload_type)
}

/// The RTX codec whose `apt` is `media_payload_type`.
pub fn rtx_codec_for(
    params: &RtpParameters,
    media_payload_type: u8,
) -> Option<&RtpCodecParameters> {
    params
        .codecs
        .iter()
        .find(|c| c.is_rtx() && c.apt() == Some(media_payload_type))
}
