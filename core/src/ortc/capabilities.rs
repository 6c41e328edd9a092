//! The SFU's supported RTP capabilities and the router capabilities built from configured codecs
//! (spec §2–§4).

use super::*;

// =============================================================================================
// Supported capabilities (spec §2, §3)

/// The dynamic payload type pool, in allocation order.
pub(super) const DYNAMIC_PAYLOAD_TYPES: [u8; 32] = [
    100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118,
    119, 120, 121, 122, 123, 124, 125, 126, 127, 96, 97, 98, 99,
];

/// Supported header extensions: (kind, uri, preferredId, direction), in the normative order.
pub(super) const SUPPORTED_HEADER_EXTENSIONS: [(MediaKind, &str, u8, RtpHeaderExtensionDirection);
    17] = {
    use MediaKind::{Audio, Video};
    use RtpHeaderExtensionDirection::{RecvOnly, SendRecv};
    [
        (Audio, uri::MID, 1, SendRecv),
        (Video, uri::MID, 1, SendRecv),
        (Video, uri::RTP_STREAM_ID, 2, RecvOnly),
        (Video, uri::REPAIRED_RTP_STREAM_ID, 3, RecvOnly),
        (Audio, uri::ABS_SEND_TIME, 4, SendRecv),
        (Video, uri::ABS_SEND_TIME, 4, SendRecv),
        // Audio transport-cc is receive-only: consumers' audio is not covered by TWCC.
        (Audio, uri::TRANSPORT_WIDE_CC, 5, RecvOnly),
        (Video, uri::TRANSPORT_WIDE_CC, 5, SendRecv),
        (Video, uri::FRAME_MARKING_07, 6, SendRecv),
        (Video, uri::FRAME_MARKING, 7, SendRecv),
        (Audio, uri::AUDIO_LEVEL, 10, SendRecv),
        (Video, uri::VIDEO_ORIENTATION, 11, SendRecv),
        (Video, uri::TOFFSET, 12, SendRecv),
        (Audio, uri::ABS_CAPTURE_TIME, 13, SendRecv),
        (Video, uri::ABS_CAPTURE_TIME, 13, SendRecv),
        (Audio, uri::PLAYOUT_DELAY, 14, SendRecv),
        (Video, uri::PLAYOUT_DELAY, 14, SendRecv),
    ]
};

pub(super) fn feedback(list: &[(&str, &str)]) -> Vec<RtcpFeedback> {
    list.iter().map(|(t, p)| RtcpFeedback::new(t, p)).collect()
}

pub(super) fn supported_codec(
    mime_type: &str,
    preferred_payload_type: Option<u8>,
    clock_rate: u32,
    channels: Option<u8>,
    parameters: &[(&str, ParamValue)],
    rtcp_feedback: &[(&str, &str)],
) -> RtpCodecCapability {
    let kind = MediaKind::from_mime_type(mime_type).unwrap_or(MediaKind::Audio);
    RtpCodecCapability {
        kind,
        mime_type: mime_type.to_owned(),
        preferred_payload_type,
        clock_rate,
        // Supported-table validation gives every audio codec a channel count (default 1).
        channels: match kind {
            MediaKind::Audio => Some(channels.unwrap_or(1)),
            MediaKind::Video => None,
        },
        parameters: parameters.iter().map(|(k, v)| (*k, v.clone())).collect(),
        rtcp_feedback: feedback(rtcp_feedback),
    }
}

/// All RTP codecs and header extensions the SFU supports (mediasoup 3.14.16's table).
pub fn supported_rtp_capabilities() -> RtpCapabilities {
    let audio_fb: &[(&str, &str)] = &[("nack", ""), ("transport-cc", "")];
    let tcc: &[(&str, &str)] = &[("transport-cc", "")];
    let video_fb: &[(&str, &str)] = &[
        ("nack", ""),
        ("nack", "pli"),
        ("ccm", "fir"),
        ("goog-remb", ""),
        ("transport-cc", ""),
    ];
    let multiopus = |channels: u8, mapping: &str, streams: u8, coupled: u8| {
        supported_codec(
            "audio/multiopus",
            None,
            48000,
            Some(channels),
            &[
                ("channel_mapping", ParamValue::from(mapping)),
                ("num_streams", ParamValue::from(streams)),
                ("coupled_streams", ParamValue::from(coupled)),
            ],
            audio_fb,
        )
    };
    let asym: &[(&str, ParamValue)] = &[("level-asymmetry-allowed", ParamValue::Int(1))];
    let mut codecs = vec![
        supported_codec("audio/opus", None, 48000, Some(2), &[], audio_fb),
        multiopus(4, "0,1,2,3", 2, 2),
        multiopus(6, "0,4,1,2,3,5", 4, 2),
        multiopus(8, "0,6,1,2,3,4,5,7", 5, 3),
        supported_codec("audio/PCMU", Some(0), 8000, None, &[], tcc),
        supported_codec("audio/PCMA", Some(8), 8000, None, &[], tcc),
        supported_codec("audio/ISAC", None, 32000, None, &[], tcc),
        supported_codec("audio/ISAC", None, 16000, None, &[], tcc),
        supported_codec("audio/G722", Some(9), 8000, None, &[], tcc),
        supported_codec("audio/iLBC", None, 8000, None, &[], tcc),
    ];
    for rate in [24000, 16000, 12000, 8000] {
        codecs.push(supported_codec("audio/SILK", None, rate, None, &[], tcc));
    }
    for rate in [32000, 16000, 8000] {
        codecs.push(supported_codec("audio/CN", Some(13), rate, None, &[], &[]));
    }
    for rate in [48000, 32000, 16000, 8000] {
        codecs.push(supported_codec(
            "audio/telephone-event",
            None,
            rate,
            None,
            &[],
            &[],
        ));
    }
    codecs.push(supported_codec(
        "video/VP8",
        None,
        90000,
        None,
        &[],
        video_fb,
    ));
    codecs.push(supported_codec(
        "video/VP9",
        None,
        90000,
        None,
        &[],
        video_fb,
    ));
    codecs.push(supported_codec(
        "video/H264",
        None,
        90000,
        None,
        asym,
        video_fb,
    ));
    codecs.push(supported_codec(
        "video/H264-SVC",
        None,
        90000,
        None,
        asym,
        video_fb,
    ));
    codecs.push(supported_codec(
        "video/H265",
        None,
        90000,
        None,
        asym,
        video_fb,
    ));

    let header_extensions = SUPPORTED_HEADER_EXTENSIONS
        .iter()
        .map(|&(kind, uri, preferred_id, direction)| RtpHeaderExtension {
            kind,
            uri: uri.to_owned(),
            preferred_id,
            preferred_encrypt: false,
            direction,
        })
        .collect();
    RtpCapabilities {
        codecs,
        header_extensions,
    }
}

// =============================================================================================
// Router capabilities (spec §4)

/// Builds the router RTP capabilities from the configured media codecs: picks each codec from
/// the supported table, assigns payload types (configured, fixed, else the dynamic pool
/// 100..=127 then 96..=99), merges parameters, and follows every video codec with its RTX codec.
pub fn generate_router_rtp_capabilities(
    media_codecs: &[RtpCodecCapability],
) -> Result<RtpCapabilities, OrtcError> {
    let supported = supported_rtp_capabilities();
    let mut pool: std::collections::VecDeque<u8> = DYNAMIC_PAYLOAD_TYPES.into_iter().collect();
    let mut caps = RtpCapabilities {
        codecs: Vec::new(),
        header_extensions: supported.header_extensions.clone(),
    };

    for (i, configured) in media_codecs.iter().enumerate() {
        let mut media_codec = configured.clone();
        normalize_codec_capability(&mut media_codec, &format!("mediaCodecs[{i}]"))?;

        let matched = supported
            .codecs
            .iter()
            .find(|s| {
                match_codecs(CodecView::from(&media_codec), CodecView::from(*s), false).is_some()
            })
            .ok_or_else(|| OrtcError::MediaCodecNotSupported(media_codec.mime_type.clone()))?;

        let mut codec = matched.clone();
        let pt = match (
            media_codec.preferred_payload_type,
            codec.preferred_payload_type,
        ) {
            (Some(pt), _) => {
                pool.retain(|p| *p != pt);
                pt
            }
            (None, Some(fixed)) => fixed,
            (None, None) => pool
                .pop_front()
                .ok_or(OrtcError::DynamicPayloadTypesExhausted)?,
        };
        if caps
            .codecs
            .iter()
            .any(|c| c.preferred_payload_type == Some(pt))
        {
            return Err(OrtcError::DuplicatedPreferredPayloadType(pt));
        }
        codec.preferred_payload_type = Some(pt);
        for (key, value) in media_codec.parameters {
            codec.parameters.insert(key, value);
        }
        let kind = codec.kind;
        let clock_rate = codec.clock_rate;
        caps.codecs.push(codec);

        if kind == MediaKind::Video {
            let rtx_pt = pool
                .pop_front()
                .ok_or(OrtcError::DynamicPayloadTypesExhausted)?;
            let mut parameters = CodecParameters::new();
            parameters.insert("apt", pt);
            caps.codecs.push(RtpCodecCapability {
                kind,
                mime_type: "video/rtx".to_owned(),
                preferred_payload_type: Some(rtx_pt),
                clock_rate,
                channels: None,
                parameters,
                rtcp_feedback: Vec::new(),
            });
        }
    }
    Ok(caps)
}
