//! Tests of the ORTC functions against mediasoup's behaviour.

use super::*;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// A seeded RNG (ORTC draws SSRCs and CNAMEs from the caller's RNG).
fn rng() -> rand::rngs::StdRng {
    rand::SeedableRng::seed_from_u64(0x0_47c)
}

/// JSON into a typed value the way the Lua host does it (serde: shape, types, ranges), then
/// the typed normalization the engine applies (`normalize`).
fn typed<T: DeserializeOwned>(
    v: Value,
    normalize: fn(&mut T) -> Result<(), OrtcError>,
) -> Result<T, OrtcError> {
    let mut t: T = serde_json::from_value(v).map_err(|e| OrtcError::Invalid(e.to_string()))?;
    normalize(&mut t)?;
    Ok(t)
}

fn rtp_parameters(v: Value) -> Result<RtpParameters, OrtcError> {
    typed(v, normalize_rtp_parameters)
}

fn rtp_capabilities(v: Value) -> Result<RtpCapabilities, OrtcError> {
    typed(v, normalize_rtp_capabilities)
}

/// Router media codecs: serde only (`generate_router_rtp_capabilities` normalizes each).
fn media_codecs(v: Value) -> Result<Vec<RtpCodecCapability>, OrtcError> {
    typed(v, |_| Ok(()))
}

const V_FB: &str = r#"[{"type":"nack","parameter":""},{"type":"nack","parameter":"pli"},{"type":"ccm","parameter":"fir"},{"type":"goog-remb","parameter":""},{"type":"transport-cc","parameter":""}]"#;

fn demo_media_codecs() -> Vec<RtpCodecCapability> {
    media_codecs(json!([
        {"kind":"audio","mimeType":"audio/opus","clockRate":48000,"channels":2},
        {"kind":"video","mimeType":"video/VP8","clockRate":90000,
         "parameters":{"x-google-start-bitrate":1000}},
        {"kind":"video","mimeType":"video/VP9","clockRate":90000,
         "parameters":{"profile-id":2,"x-google-start-bitrate":1000}},
        {"kind":"video","mimeType":"video/h264","clockRate":90000,
         "parameters":{"packetization-mode":1,"profile-level-id":"4d0032",
                       "level-asymmetry-allowed":1,"x-google-start-bitrate":1000}},
        {"kind":"video","mimeType":"video/h264","clockRate":90000,
         "parameters":{"packetization-mode":1,"profile-level-id":"42e01f",
                       "level-asymmetry-allowed":1,"x-google-start-bitrate":1000}}
    ]))
    .unwrap()
}

fn router_caps() -> RtpCapabilities {
    generate_router_rtp_capabilities(&demo_media_codecs()).unwrap()
}

fn ext_cap(kind: &str, uri: &str, id: u8, dir: &str) -> Value {
    json!({"kind":kind,"uri":uri,"preferredId":id,"preferredEncrypt":false,"direction":dir})
}

/// Spec §4.1, transcribed.
#[test]
fn demo_router_capabilities_exact() {
    let v_fb: Value = serde_json::from_str(V_FB).unwrap();
    let h264 = |pt: u8, plid: &str| {
        json!({"kind":"video","mimeType":"video/H264","clockRate":90000,"rtcpFeedback":v_fb,
               "parameters":{"level-asymmetry-allowed":1,"packetization-mode":1,
                             "profile-level-id":plid,"x-google-start-bitrate":1000},
               "preferredPayloadType":pt})
    };
    let rtx = |pt: u8, apt: u8| {
        json!({"kind":"video","mimeType":"video/rtx","preferredPayloadType":pt,
               "clockRate":90000,"parameters":{"apt":apt},"rtcpFeedback":[]})
    };
    let mid = "urn:ietf:params:rtp-hdrext:sdes:mid";
    let ast = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
    let twcc = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
    let act = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time";
    let pd = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay";
    let expected = json!({
        "codecs": [
            {"kind":"audio","mimeType":"audio/opus","clockRate":48000,"channels":2,
             "rtcpFeedback":[{"type":"nack","parameter":""},{"type":"transport-cc","parameter":""}],
             "parameters":{},"preferredPayloadType":100},
            {"kind":"video","mimeType":"video/VP8","clockRate":90000,"rtcpFeedback":v_fb,
             "parameters":{"x-google-start-bitrate":1000},"preferredPayloadType":101},
            rtx(102, 101),
            {"kind":"video","mimeType":"video/VP9","clockRate":90000,"rtcpFeedback":v_fb,
             "parameters":{"profile-id":2,"x-google-start-bitrate":1000},"preferredPayloadType":103},
            rtx(104, 103),
            h264(105, "4d0032"),
            rtx(106, 105),
            h264(107, "42e01f"),
            rtx(108, 107)
        ],
        "headerExtensions": [
            ext_cap("audio", mid, 1, "sendrecv"),
            ext_cap("video", mid, 1, "sendrecv"),
            ext_cap("video", "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id", 2, "recvonly"),
            ext_cap("video", "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id", 3, "recvonly"),
            ext_cap("audio", ast, 4, "sendrecv"),
            ext_cap("video", ast, 4, "sendrecv"),
            ext_cap("audio", twcc, 5, "recvonly"),
            ext_cap("video", twcc, 5, "sendrecv"),
            ext_cap("video", "http://tools.ietf.org/html/draft-ietf-avtext-framemarking-07", 6, "sendrecv"),
            ext_cap("video", "urn:ietf:params:rtp-hdrext:framemarking", 7, "sendrecv"),
            ext_cap("audio", "urn:ietf:params:rtp-hdrext:ssrc-audio-level", 10, "sendrecv"),
            ext_cap("video", "urn:3gpp:video-orientation", 11, "sendrecv"),
            ext_cap("video", "urn:ietf:params:rtp-hdrext:toffset", 12, "sendrecv"),
            ext_cap("audio", act, 13, "sendrecv"),
            ext_cap("video", act, 13, "sendrecv"),
            ext_cap("audio", pd, 14, "sendrecv"),
            ext_cap("video", pd, 14, "sendrecv")
        ]
    });
    assert_eq!(serde_json::to_value(router_caps()).unwrap(), expected);
}

#[test]
fn router_capabilities_errors_and_fixed_pts() {
    let parse = |v: Value| media_codecs(v).unwrap();
    assert_eq!(
        generate_router_rtp_capabilities(&parse(
            json!([{"kind":"audio","mimeType":"audio/foo","clockRate":8000}])
        )),
        Err(OrtcError::MediaCodecNotSupported("audio/foo".into()))
    );
    // Opus must be stereo in the table: mono opus is not supported.
    assert!(generate_router_rtp_capabilities(&parse(
        json!([{"kind":"audio","mimeType":"audio/opus","clockRate":48000}])
    ))
    .is_err());
    let caps = generate_router_rtp_capabilities(&parse(json!([
        {"kind":"audio","mimeType":"audio/PCMU","clockRate":8000},
        {"kind":"video","mimeType":"video/VP8","clockRate":90000,"preferredPayloadType":101},
        {"kind":"audio","mimeType":"audio/opus","clockRate":48000,"channels":2}
    ])))
    .unwrap();
    let pts: Vec<_> = caps
        .codecs
        .iter()
        .map(|c| c.preferred_payload_type.unwrap())
        .collect();
    // PCMU keeps its static PT; configured 101 is removed from the pool.
    assert_eq!(pts, vec![0, 101, 100, 102]);
    assert_eq!(caps.codecs[0].channels, Some(1));
    assert_eq!(caps.codecs[0].kind, MediaKind::Audio);
    assert_eq!(
        generate_router_rtp_capabilities(&parse(json!([
            {"kind":"video","mimeType":"video/VP8","clockRate":90000},
            {"kind":"video","mimeType":"video/VP9","clockRate":90000,"preferredPayloadType":101}
        ]))),
        Err(OrtcError::DuplicatedPreferredPayloadType(101))
    );
    // 32 dynamic PTs = 16 video codecs with RTX; a 17th cannot be allocated.
    let many: Vec<Value> = (0..17)
        .map(|_| json!({"kind":"video","mimeType":"video/VP8","clockRate":90000}))
        .collect();
    assert!(generate_router_rtp_capabilities(&parse(Value::Array(many[..16].to_vec()))).is_ok());
    assert_eq!(
        generate_router_rtp_capabilities(&parse(Value::Array(many))),
        Err(OrtcError::DynamicPayloadTypesExhausted)
    );
    let multi = generate_router_rtp_capabilities(&parse(json!([
        {"kind":"audio","mimeType":"audio/multiopus","clockRate":48000,"channels":6,
         "parameters":{"num_streams":4,"coupled_streams":2}}
    ])))
    .unwrap();
    assert_eq!(
        multi.codecs[0].parameters.get("channel_mapping"),
        Some(&ParamValue::from("0,4,1,2,3,5"))
    );
}

fn chrome_audio_producer() -> Value {
    json!({"mid":"0",
     "codecs":[{"mimeType":"audio/opus","payloadType":111,"clockRate":48000,"channels":2,
                "parameters":{"minptime":10,"useinbandfec":1,"sprop-stereo":1,"usedtx":1},
                "rtcpFeedback":[{"type":"transport-cc","parameter":""},{"type":"nack","parameter":""}]}],
     "headerExtensions":[{"uri":"urn:ietf:params:rtp-hdrext:sdes:mid","id":4,"encrypt":false,"parameters":{}},
                         {"uri":"http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time","id":2,"encrypt":false,"parameters":{}},
                         {"uri":"urn:ietf:params:rtp-hdrext:ssrc-audio-level","id":1,"encrypt":false,"parameters":{}}],
     "encodings":[{"ssrc":1489362951u32,"dtx":false}],
     "rtcp":{"cname":"k3JvI9+7v0d4dX1q","reducedSize":true}})
}

fn chrome_vp8_simulcast_producer() -> Value {
    let fb: Value = serde_json::from_str(V_FB).unwrap();
    json!({"mid":"1",
     "codecs":[{"mimeType":"video/VP8","payloadType":96,"clockRate":90000,"parameters":{},"rtcpFeedback":fb},
               {"mimeType":"video/rtx","payloadType":97,"clockRate":90000,"parameters":{"apt":96},"rtcpFeedback":[]}],
     "headerExtensions":[
        {"uri":"urn:ietf:params:rtp-hdrext:sdes:mid","id":4,"encrypt":false,"parameters":{}},
        {"uri":"urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id","id":10,"encrypt":false,"parameters":{}},
        {"uri":"urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id","id":11,"encrypt":false,"parameters":{}},
        {"uri":"http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01","id":3,"encrypt":false,"parameters":{}}],
     "encodings":[{"rid":"r0","scalabilityMode":"L1T3","scaleResolutionDownBy":4,"maxBitrate":500000,"dtx":false},
                  {"rid":"r1","scalabilityMode":"L1T3","scaleResolutionDownBy":2,"maxBitrate":1000000,"dtx":false},
                  {"rid":"r2","scalabilityMode":"L1T3","scaleResolutionDownBy":1,"maxBitrate":5000000,"dtx":false}],
     "rtcp":{"cname":"k3JvI9+7v0d4dX1q","reducedSize":true}})
}

/// What mediasoup-client's `device.rtpCapabilities` looks like for Chrome after loading the
/// demo router capabilities (router PTs and ids echoed; no framemarking, no rid/rrid).
fn chrome_recv_caps() -> RtpCapabilities {
    let fb: Value = serde_json::from_str(V_FB).unwrap();
    let mid = "urn:ietf:params:rtp-hdrext:sdes:mid";
    let ast = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
    let twcc = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
    let act = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time";
    let pd = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay";
    rtp_capabilities(json!({
        "codecs":[
            {"mimeType":"audio/opus","kind":"audio","preferredPayloadType":100,"clockRate":48000,"channels":2,
             "parameters":{"minptime":10,"useinbandfec":1},
             "rtcpFeedback":[{"type":"nack","parameter":""},{"type":"transport-cc","parameter":""}]},
            {"mimeType":"video/VP8","kind":"video","preferredPayloadType":101,"clockRate":90000,"parameters":{},"rtcpFeedback":fb},
            {"mimeType":"video/rtx","kind":"video","preferredPayloadType":102,"clockRate":90000,"parameters":{"apt":101},"rtcpFeedback":[]},
            {"mimeType":"video/H264","kind":"video","preferredPayloadType":107,"clockRate":90000,
             "parameters":{"level-asymmetry-allowed":1,"packetization-mode":1,"profile-level-id":"42e01f"},"rtcpFeedback":fb},
            {"mimeType":"video/rtx","kind":"video","preferredPayloadType":108,"clockRate":90000,"parameters":{"apt":107},"rtcpFeedback":[]}
        ],
        "headerExtensions":[
            ext_cap("audio", mid, 1, "sendrecv"), ext_cap("video", mid, 1, "sendrecv"),
            ext_cap("audio", ast, 4, "sendrecv"), ext_cap("video", ast, 4, "sendrecv"),
            ext_cap("video", twcc, 5, "sendrecv"),
            ext_cap("audio", "urn:ietf:params:rtp-hdrext:ssrc-audio-level", 10, "sendrecv"),
            ext_cap("video", "urn:3gpp:video-orientation", 11, "sendrecv"),
            ext_cap("video", "urn:ietf:params:rtp-hdrext:toffset", 12, "sendrecv"),
            ext_cap("audio", act, 13, "sendrecv"), ext_cap("video", act, 13, "sendrecv"),
            ext_cap("audio", pd, 14, "sendrecv"), ext_cap("video", pd, 14, "sendrecv")
        ]
    }))
    .unwrap()
}

fn in_ssrc_range(ssrc: u32) -> bool {
    (100_000_000..=999_999_999 + 16).contains(&ssrc)
}

/// What serde cannot check, normalization does, naming the field.
#[test]
fn normalization_names_offending_field() {
    let err = |v: Value| rtp_parameters(v).unwrap_err().to_string();
    let mut p = chrome_vp8_simulcast_producer();
    p["codecs"][0]["mimeType"] = json!("vp8");
    assert_eq!(err(p), "invalid parameters: codecs[0].mimeType invalid");
    let mut p = chrome_vp8_simulcast_producer();
    p["codecs"][0]["mimeType"] = json!("");
    assert_eq!(err(p), "invalid parameters: codecs[0].mimeType missing");
    let mut p = chrome_vp8_simulcast_producer();
    p["codecs"][1]["parameters"]["apt"] = json!("96");
    assert_eq!(
        err(p),
        "invalid parameters: codecs[1].parameters.apt invalid"
    );
    let mut p = chrome_vp8_simulcast_producer();
    p["codecs"][0]["rtcpFeedback"][2]["type"] = json!("");
    assert_eq!(
        err(p),
        "invalid parameters: codecs[0].rtcpFeedback[2].type missing"
    );
    let mut p = chrome_vp8_simulcast_producer();
    p["headerExtensions"][2]["id"] = json!(0);
    assert_eq!(err(p), "invalid parameters: headerExtensions[2].id invalid");
    let mut p = chrome_vp8_simulcast_producer();
    p["headerExtensions"][1]["uri"] = json!("");
    assert_eq!(
        err(p),
        "invalid parameters: headerExtensions[1].uri missing"
    );
    let mut p = chrome_vp8_simulcast_producer();
    p["codecs"][0]["payloadType"] = json!(200);
    assert_eq!(err(p), "invalid parameters: codecs[0].payloadType invalid");
    let caps_err = |v: Value| rtp_capabilities(v).unwrap_err().to_string();
    assert_eq!(
        caps_err(
            json!({"codecs":[{"kind":"video","mimeType":"video/VP8","clockRate":90000,
            "preferredPayloadType":128}]})
        ),
        "invalid parameters: codecs[0].preferredPayloadType invalid"
    );
    assert_eq!(
        caps_err(
            json!({"codecs":[{"kind":"video","mimeType":"video/rtx","clockRate":90000,
            "parameters":{"apt":"x"}}]})
        ),
        "invalid parameters: codecs[0].parameters.apt invalid"
    );
    assert_eq!(
        caps_err(json!({"headerExtensions":[{"kind":"audio","uri":"","preferredId":1}]})),
        "invalid parameters: headerExtensions[0].uri missing"
    );
    // Shape errors are serde's (path-named at the Lua edge, see src/lua_host/options.rs).
    let mut p = chrome_vp8_simulcast_producer();
    p["codecs"][1]
        .as_object_mut()
        .unwrap()
        .remove("payloadType");
    assert!(err(p).contains("missing field `payloadType`"));
    let mut p = chrome_vp8_simulcast_producer();
    p["encodings"][2]["ssrc"] = json!("123");
    assert!(err(p).contains("invalid type"));
    assert!(err(json!({"mid":"0"})).contains("missing field `codecs`"));
    // Codec parameter values are strings or numbers (null reads as "").
    let mut p = chrome_vp8_simulcast_producer();
    p["codecs"][0]["parameters"]["x"] = json!([1]);
    assert!(err(p).contains("expected a string or a number"));
    let mut p = chrome_vp8_simulcast_producer();
    p["headerExtensions"][0]["parameters"]["x"] = json!({"y": 1});
    assert!(err(p).contains("expected a string or a number"));
}

#[test]
fn normalization_applies_defaults() {
    // Plain RTP (ffmpeg): no mid, no extensions, no cname, minimal codec.
    let p = rtp_parameters(json!({
        "mid": "",
        "codecs":[{"mimeType":"audio/opus","payloadType":101,"clockRate":48000,
                   "parameters":{"x":null},
                   "rtcpFeedback":[{"type":"nack"}],"unknownField":true}],
        "encodings":[{"ssrc":1111,"rid":"","scalabilityMode":""}],
        "rtcp":{"reducedSize":false,"cname":""}
    }))
    .unwrap();
    assert_eq!(p.codecs[0].channels, Some(1));
    assert_eq!(p.codecs[0].parameters.get("x"), Some(&ParamValue::from("")));
    assert_eq!(
        p.codecs[0].rtcp_feedback,
        vec![RtcpFeedback::new("nack", "")]
    );
    assert_eq!(p.encodings[0].dtx, Some(false));
    assert_eq!(p.encodings[0].rid, None);
    assert_eq!(p.encodings[0].scalability_mode, None);
    assert!(p.rtcp.reduced_size);
    assert_eq!(p.rtcp.cname, None);
    assert_eq!(p.mid, None);
    assert!(p.header_extensions.is_empty());
    // kind is taken from the mimeType (mediasoup overrides it too).
    let caps = rtp_capabilities(json!({
        "codecs":[{"kind":"audio","mimeType":"video/VP8","clockRate":90000,"channels":3}],
        "headerExtensions":[{"kind":"video","uri":"urn:3gpp:video-orientation","preferredId":11}]
    }))
    .unwrap();
    assert_eq!(caps.codecs[0].kind, MediaKind::Video);
    assert_eq!(caps.codecs[0].channels, None);
    assert_eq!(
        caps.header_extensions[0].direction,
        RtpHeaderExtensionDirection::SendRecv
    );
    assert!(!caps.header_extensions[0].preferred_encrypt);
    assert_eq!(
        rtp_capabilities(json!({})).unwrap(),
        RtpCapabilities::default()
    );
}

#[test]
fn chrome_audio_producer_mapped_and_consumed() {
    let caps = router_caps();
    let mut params = rtp_parameters(chrome_audio_producer()).unwrap();
    assert_eq!(
        validate_producer_rtp_parameters(MediaKind::Audio, &params),
        Ok(ProducerType::Simple)
    );
    let mapping = get_producer_rtp_parameters_mapping(&mut params, &caps, &mut rng()).unwrap();
    assert_eq!(
        mapping.codecs,
        vec![RtpCodecMapping {
            payload_type: 111,
            mapped_payload_type: 100
        }]
    );
    assert_eq!(mapping.encodings.len(), 1);
    assert_eq!(mapping.encodings[0].ssrc, Some(1489362951));
    assert!(in_ssrc_range(mapping.encodings[0].mapped_ssrc));

    let consumable =
        get_consumable_rtp_parameters(MediaKind::Audio, &params, &caps, &mapping).unwrap();
    let uris: Vec<_> = consumable
        .header_extensions
        .iter()
        .map(|e| (e.uri.as_str(), e.id))
        .collect();
    assert_eq!(
        uris,
        vec![
            (uri::MID, 1),
            (uri::ABS_SEND_TIME, 4),
            (uri::AUDIO_LEVEL, 10),
            (uri::ABS_CAPTURE_TIME, 13),
            (uri::PLAYOUT_DELAY, 14)
        ]
    );
    assert_eq!(
        consumable.codecs[0].parameters.get("usedtx"),
        Some(&ParamValue::Int(1))
    );
    assert_eq!(
        consumable.encodings[0].ssrc,
        Some(mapping.encodings[0].mapped_ssrc)
    );

    let remote = chrome_recv_caps();
    assert_eq!(can_consume(&consumable, &remote), Ok(true));
    let consumer =
        get_consumer_rtp_parameters(&consumable, &remote, false, false, &mut rng()).unwrap();
    // Audio: no transport-cc extension (recvonly), so transport-cc fb goes, nack stays
    // only with RTX enabled.
    assert_eq!(consumer.codecs.len(), 1);
    assert_eq!(consumer.codecs[0].payload_type, 100);
    assert!(consumer.codecs[0].rtcp_feedback.is_empty());
    assert_eq!(header_extension_id(&consumer, uri::TRANSPORT_WIDE_CC), None);
    assert_eq!(header_extension_id(&consumer, uri::MID), Some(1));
    assert_eq!(header_extension_id(&consumer, uri::AUDIO_LEVEL), Some(10));
    assert_eq!(consumer.encodings[0].rtx, None);
    let with_rtx =
        get_consumer_rtp_parameters(&consumable, &remote, false, true, &mut rng()).unwrap();
    assert_eq!(
        with_rtx.codecs[0].rtcp_feedback,
        vec![RtcpFeedback::new("nack", "")]
    );
    assert_eq!(with_rtx.encodings[0].rtx, None, "no RTX codec for audio");
}

#[test]
fn chrome_vp8_simulcast_mapped_and_consumed_like_spec_example() {
    let caps = router_caps();
    let mut params = rtp_parameters(chrome_vp8_simulcast_producer()).unwrap();
    let mut cname = ProducerCname::new();
    assert_eq!(cname.apply(&mut params, &mut rng()), "k3JvI9+7v0d4dX1q");
    assert_eq!(
        validate_producer_rtp_parameters(MediaKind::Video, &params),
        Ok(ProducerType::Simulcast)
    );
    let mapping = get_producer_rtp_parameters_mapping(&mut params, &caps, &mut rng()).unwrap();
    assert_eq!(
        mapping.codecs,
        vec![
            RtpCodecMapping {
                payload_type: 96,
                mapped_payload_type: 101
            },
            RtpCodecMapping {
                payload_type: 97,
                mapped_payload_type: 102
            }
        ]
    );
    let base = mapping.encodings[0].mapped_ssrc;
    assert!(in_ssrc_range(base));
    for (i, enc) in mapping.encodings.iter().enumerate() {
        assert_eq!(enc.rid.as_deref(), Some(["r0", "r1", "r2"][i]));
        assert_eq!(enc.ssrc, None);
        assert_eq!(enc.scalability_mode.as_deref(), Some("L1T3"));
        assert_eq!(enc.mapped_ssrc, base + i as u32);
    }
    assert_eq!(
        serde_json::to_value(&mapping.encodings[0]).unwrap(),
        json!({"rid":"r0","scalabilityMode":"L1T3","mappedSsrc":base})
    );

    let consumable =
        get_consumable_rtp_parameters(MediaKind::Video, &params, &caps, &mapping).unwrap();
    assert_eq!(consumable.codecs.len(), 2);
    assert_eq!(consumable.codecs[1].payload_type, 102);
    assert_eq!(
        consumable.header_extensions.len(),
        9,
        "rid/rrid are recvonly"
    );
    assert_eq!(
        serde_json::to_value(&consumable.encodings[2]).unwrap(),
        json!({"ssrc":base + 2,"dtx":false,"scalabilityMode":"L1T3","scaleResolutionDownBy":1.0,"maxBitrate":5000000})
    );
    assert_eq!(
        serde_json::to_value(&consumable.rtcp).unwrap(),
        json!({"cname":"k3JvI9+7v0d4dX1q","reducedSize":true})
    );

    let remote = chrome_recv_caps();
    assert_eq!(can_consume(&consumable, &remote), Ok(true));
    let mut mids = ConsumerMidAllocator::new();
    for expected in ["0", "1", "2"] {
        assert_eq!(mids.next_mid(), expected);
    }
    let mut consumer =
        get_consumer_rtp_parameters(&consumable, &remote, false, true, &mut rng()).unwrap();
    consumer.mid = Some(mids.next_mid());
    let ssrc = consumer.encodings[0].ssrc.unwrap();
    assert!(in_ssrc_range(ssrc));
    let ext = |uri: &str, id: u8| json!({"uri":uri,"id":id,"encrypt":false,"parameters":{}});
    // Spec §8 example.
    let expected = json!({"mid":"3",
     "codecs":[{"mimeType":"video/VP8","payloadType":101,"clockRate":90000,"parameters":{},
                "rtcpFeedback":[{"type":"nack","parameter":""},{"type":"nack","parameter":"pli"},
                                {"type":"ccm","parameter":"fir"},{"type":"transport-cc","parameter":""}]},
               {"mimeType":"video/rtx","payloadType":102,"clockRate":90000,"parameters":{"apt":101},"rtcpFeedback":[]}],
     "headerExtensions":[ext("urn:ietf:params:rtp-hdrext:sdes:mid",1),
       ext("http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",4),
       ext("http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",5),
       ext("urn:3gpp:video-orientation",11),ext("urn:ietf:params:rtp-hdrext:toffset",12),
       ext("http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time",13),
       ext("http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",14)],
     "encodings":[{"ssrc":ssrc,"rtx":{"ssrc":ssrc + 1},"scalabilityMode":"L3T3","maxBitrate":5000000}],
     "rtcp":{"cname":"k3JvI9+7v0d4dX1q","reducedSize":true}});
    assert_eq!(serde_json::to_value(&consumer).unwrap(), expected);

    // Data-plane lookups.
    assert_eq!(
        codec_by_payload_type(&consumer, 102).map(|c| c.mime_type.as_str()),
        Some("video/rtx")
    );
    assert_eq!(codec_by_payload_type(&consumer, 96), None);
    assert_eq!(
        rtx_codec_for(&consumer, 101).map(|c| c.payload_type),
        Some(102)
    );
    assert_eq!(header_extension_id(&consumer, uri::ABS_SEND_TIME), Some(4));
    assert_eq!(header_extension_id(&consumer, uri::FRAME_MARKING), None);

    // Without RTX: no RTX codec, no plain nack, no RTX SSRC.
    let no_rtx =
        get_consumer_rtp_parameters(&consumable, &remote, false, false, &mut rng()).unwrap();
    assert_eq!(no_rtx.codecs.len(), 1);
    assert!(!no_rtx.codecs[0]
        .rtcp_feedback
        .contains(&RtcpFeedback::new("nack", "")));
    assert!(no_rtx.codecs[0]
        .rtcp_feedback
        .contains(&RtcpFeedback::new("nack", "pli")));
    assert_eq!(no_rtx.encodings[0].rtx, None);

    // Pipe consumer via getConsumerRtpParameters(pipe=true): all encodings kept.
    let piped = get_consumer_rtp_parameters(&consumable, &remote, true, true, &mut rng()).unwrap();
    assert_eq!(piped.encodings.len(), 3);
    let (b, rb) = (
        piped.encodings[0].ssrc.unwrap(),
        piped.encodings[0].rtx.unwrap().ssrc,
    );
    for (i, e) in piped.encodings.iter().enumerate() {
        assert_eq!(e.ssrc, Some(b + i as u32));
        assert_eq!(
            e.rtx,
            Some(RtpEncodingRtx {
                ssrc: rb + i as u32
            })
        );
        assert_eq!(e.scalability_mode.as_deref(), Some("L1T3"));
    }
}

#[test]
fn pipe_consumer_parameters() {
    let caps = router_caps();
    let mut params = rtp_parameters(chrome_vp8_simulcast_producer()).unwrap();
    let mapping = get_producer_rtp_parameters_mapping(&mut params, &caps, &mut rng()).unwrap();
    let consumable =
        get_consumable_rtp_parameters(MediaKind::Video, &params, &caps, &mapping).unwrap();
    let pipe = get_pipe_consumer_rtp_parameters(&consumable, true, &mut rng());
    assert_eq!(pipe.mid, None);
    assert_eq!(pipe.codecs.len(), 2);
    assert_eq!(
        pipe.codecs[0].rtcp_feedback,
        vec![
            RtcpFeedback::new("nack", ""),
            RtcpFeedback::new("nack", "pli"),
            RtcpFeedback::new("ccm", "fir")
        ]
    );
    for u in [uri::MID, uri::ABS_SEND_TIME, uri::TRANSPORT_WIDE_CC] {
        assert_eq!(header_extension_id(&pipe, u), None);
    }
    assert_eq!(header_extension_id(&pipe, uri::VIDEO_ORIENTATION), Some(11));
    assert_eq!(pipe.encodings.len(), 3);
    let b = pipe.encodings[0].ssrc.unwrap();
    assert!(in_ssrc_range(b));
    assert_eq!(pipe.encodings[2].ssrc, Some(b + 2));
    assert!(pipe.encodings.iter().all(|e| e.rtx.is_some()));

    let pipe = get_pipe_consumer_rtp_parameters(&consumable, false, &mut rng());
    assert_eq!(pipe.codecs.len(), 1);
    assert_eq!(
        pipe.codecs[0].rtcp_feedback,
        vec![
            RtcpFeedback::new("nack", "pli"),
            RtcpFeedback::new("ccm", "fir")
        ]
    );
    assert!(pipe.encodings.iter().all(|e| e.rtx.is_none()));
}

fn h264_producer(plid: &str, asym: bool, pmode: i64) -> RtpParameters {
    let mut params = json!({"packetization-mode":pmode,"profile-level-id":plid});
    if asym {
        params["level-asymmetry-allowed"] = json!(1);
    }
    rtp_parameters(json!({
        "mid":"2",
        "codecs":[{"mimeType":"video/H264","payloadType":125,"clockRate":90000,"parameters":params,"rtcpFeedback":[]},
                  {"mimeType":"video/rtx","payloadType":107,"clockRate":90000,"parameters":{"apt":125}}],
        "encodings":[{"ssrc":1328695815u32,"rtx":{"ssrc":2544251937u32}}]
    }))
    .unwrap()
}

#[test]
fn h264_producer_matching() {
    let caps = router_caps();
    // CB 5.0 with asymmetry → router 107 (CB 3.1), keeps its own level.
    let mut p = h264_producer("42e032", true, 1);
    let m = get_producer_rtp_parameters_mapping(&mut p, &caps, &mut rng()).unwrap();
    assert_eq!(
        m.codecs[0],
        RtpCodecMapping {
            payload_type: 125,
            mapped_payload_type: 107
        }
    );
    assert_eq!(
        m.codecs[1],
        RtpCodecMapping {
            payload_type: 107,
            mapped_payload_type: 108
        }
    );
    assert_eq!(
        p.codecs[0].parameters.get("profile-level-id"),
        Some(&ParamValue::from("42e032"))
    );
    // Chrome's 42001f is Baseline, not CB: no router codec has that profile.
    let mut p = h264_producer("42001f", true, 1);
    assert_eq!(
        get_producer_rtp_parameters_mapping(&mut p, &caps, &mut rng()),
        Err(OrtcError::UnsupportedCodec {
            mime_type: "video/H264".into(),
            payload_type: 125
        })
    );
    // High profile is rejected.
    let mut p = h264_producer("640032", true, 1);
    assert!(matches!(
        get_producer_rtp_parameters_mapping(&mut p, &caps, &mut rng()),
        Err(OrtcError::UnsupportedCodec { .. })
    ));
    // packetization-mode must be equal.
    let mut p = h264_producer("42e01f", true, 0);
    assert!(get_producer_rtp_parameters_mapping(&mut p, &caps, &mut rng()).is_err());
    // Main 3.1 without asymmetry: answer is min(producer, router) = 3.1 (rewritten canonically).
    let mut p = h264_producer("4d401f", false, 1);
    let m = get_producer_rtp_parameters_mapping(&mut p, &caps, &mut rng()).unwrap();
    assert_eq!(m.codecs[0].mapped_payload_type, 105);
    assert_eq!(
        p.codecs[0].parameters.get("profile-level-id"),
        Some(&ParamValue::from("4d001f"))
    );
    // Main 5.1 without asymmetry against router Main 5.0: min level 5.0.
    let mut p = h264_producer("4d0033", false, 1);
    get_producer_rtp_parameters_mapping(&mut p, &caps, &mut rng()).unwrap();
    assert_eq!(
        p.codecs[0].parameters.get("profile-level-id"),
        Some(&ParamValue::from("4d0032"))
    );

    // A consumer only supporting CB cannot consume a Main producer.
    let mut p = h264_producer("4d0032", true, 1);
    let m = get_producer_rtp_parameters_mapping(&mut p, &caps, &mut rng()).unwrap();
    let consumable = get_consumable_rtp_parameters(MediaKind::Video, &p, &caps, &m).unwrap();
    assert_eq!(consumable.codecs[0].payload_type, 105);
    let remote = chrome_recv_caps();
    assert_eq!(can_consume(&consumable, &remote), Ok(false));
    assert_eq!(
        get_consumer_rtp_parameters(&consumable, &remote, false, true, &mut rng()),
        Err(OrtcError::NoCompatibleMediaCodecs)
    );
}

#[test]
fn h264_profile_level_id_rules() {
    use h264::*;
    let p = |s| parse_profile_level_id(s);
    assert_eq!(
        p("42e01f"),
        Some(ProfileLevelId {
            profile: Profile::ConstrainedBaseline,
            level: 31
        })
    );
    assert_eq!(p("42001f").unwrap().profile, Profile::Baseline);
    assert_eq!(p("4d0032").unwrap().profile, Profile::Main);
    assert_eq!(p("4d801f").unwrap().profile, Profile::ConstrainedBaseline);
    assert_eq!(p("58c01f").unwrap().profile, Profile::ConstrainedBaseline);
    assert_eq!(p("58801f").unwrap().profile, Profile::Baseline);
    assert_eq!(p("640c1f").unwrap().profile, Profile::ConstrainedHigh);
    assert_eq!(p("64001f").unwrap().profile, Profile::High);
    assert_eq!(p("f4001f").unwrap().profile, Profile::PredictiveHigh444);
    assert_eq!(p("42f00b").unwrap().level, LEVEL_1B);
    assert_eq!(p("42e00b").unwrap().level, 11);
    assert_eq!(p("42e0ff"), None, "unknown level");
    assert_eq!(p("65001f"), None, "unknown profile");
    assert_eq!(p("42e01"), None);
    assert_eq!(p("42e0zz"), None);
    assert_eq!(p("000000"), None);
    let to_s = |profile, level| profile_level_id_to_string(ProfileLevelId { profile, level });
    assert_eq!(to_s(Profile::Main, LEVEL_1B).as_deref(), Some("4d100b"));
    assert_eq!(to_s(Profile::High, LEVEL_1B), None);
    assert_eq!(
        to_s(Profile::ConstrainedHigh, 52).as_deref(),
        Some("640c34")
    );

    let params = |v: Value| serde_json::from_value::<CodecParameters>(v).unwrap();
    let answer = |a: Value, b: Value| generate_profile_level_id_for_answer(&params(a), &params(b));
    assert_eq!(answer(json!({}), json!({})), Ok(None));
    assert_eq!(
        answer(json!({"profile-level-id":"42e01f"}), json!({}))
            .unwrap()
            .as_deref(),
        Some("42e01f")
    );
    assert_eq!(
        answer(
            json!({"profile-level-id":"42e034","level-asymmetry-allowed":"1"}),
            json!({"profile-level-id":"42e01f","level-asymmetry-allowed":1})
        )
        .unwrap()
        .as_deref(),
        Some("42e034")
    );
    // 1b is below 1.1 but not below 1.
    assert_eq!(
        answer(
            json!({"profile-level-id":"42f00b"}),
            json!({"profile-level-id":"42e00c"})
        )
        .unwrap()
        .as_deref(),
        Some("42f00b")
    );
    assert_eq!(
        answer(
            json!({"profile-level-id":"42f00b"}),
            json!({"profile-level-id":"42e00a"})
        )
        .unwrap()
        .as_deref(),
        Some("42e00a")
    );
    assert_eq!(
        answer(
            json!({"profile-level-id":"42e01f"}),
            json!({"profile-level-id":"4d001f"})
        ),
        Err(AnswerError::ProfileMismatch)
    );
    assert_eq!(
        answer(json!({"profile-level-id":"zz"}), json!({})),
        Err(AnswerError::InvalidLocal)
    );
}

#[test]
fn can_consume_requires_common_media_codec() {
    let caps = router_caps();
    let mut params = rtp_parameters(chrome_vp8_simulcast_producer()).unwrap();
    let mapping = get_producer_rtp_parameters_mapping(&mut params, &caps, &mut rng()).unwrap();
    let consumable =
        get_consumable_rtp_parameters(MediaKind::Video, &params, &caps, &mapping).unwrap();
    // Only VP9 + RTX: the RTX codec matches but no media codec does.
    let vp9_only = rtp_capabilities(json!({"codecs":[
        {"kind":"video","mimeType":"video/VP9","preferredPayloadType":103,"clockRate":90000,"parameters":{"profile-id":2}},
        {"kind":"video","mimeType":"video/rtx","preferredPayloadType":102,"clockRate":90000,"parameters":{"apt":101}}
    ]}))
    .unwrap();
    assert_eq!(can_consume(&consumable, &vp9_only), Ok(false));
    assert_eq!(
        can_consume(&consumable, &RtpCapabilities::default()),
        Ok(false)
    );
    assert_eq!(
        get_consumer_rtp_parameters(&consumable, &vp9_only, false, true, &mut rng()),
        Err(OrtcError::NoCompatibleMediaCodecs)
    );
    // VP9 profile-id must match strictly.
    let mut vp9 = rtp_parameters(json!({
        "codecs":[{"mimeType":"video/VP9","payloadType":98,"clockRate":90000,"parameters":{"profile-id":0}}],
        "encodings":[{"ssrc":5,"scalabilityMode":"L3T3_KEY"}]
    }))
    .unwrap();
    assert!(get_producer_rtp_parameters_mapping(&mut vp9, &caps, &mut rng()).is_err());
    let mut vp9 = rtp_parameters(json!({
        "codecs":[{"mimeType":"video/VP9","payloadType":98,"clockRate":90000,"parameters":{"profile-id":"2"}}],
        "encodings":[{"ssrc":5,"scalabilityMode":"L3T3_KEY","maxBitrate":5000000}]
    }))
    .unwrap();
    assert_eq!(
        validate_producer_rtp_parameters(MediaKind::Video, &vp9),
        Ok(ProducerType::Svc)
    );
    let m = get_producer_rtp_parameters_mapping(&mut vp9, &caps, &mut rng()).unwrap();
    assert_eq!(
        m.codecs,
        vec![RtpCodecMapping {
            payload_type: 98,
            mapped_payload_type: 103
        }]
    );
    let consumable = get_consumable_rtp_parameters(MediaKind::Video, &vp9, &caps, &m).unwrap();
    assert_eq!(can_consume(&consumable, &vp9_only), Ok(true));
    let consumer =
        get_consumer_rtp_parameters(&consumable, &vp9_only, false, true, &mut rng()).unwrap();
    // SVC keeps its mode. As in mediasoup, RTX codecs match on mimeType/clockRate only
    // (not apt), so the router RTX 104 (apt 103) is kept.
    assert_eq!(
        consumer.encodings[0].scalability_mode.as_deref(),
        Some("L3T3_KEY")
    );
    assert_eq!(consumer.encodings[0].max_bitrate, Some(5000000));
    assert_eq!(consumer.codecs.len(), 2);
    assert_eq!(consumer.codecs[1].apt(), Some(103));
    let ssrc = consumer.encodings[0].ssrc.unwrap();
    assert_eq!(
        consumer.encodings[0].rtx,
        Some(RtpEncodingRtx { ssrc: ssrc + 1 })
    );
    // No abs-send-time / transport-cc extension: both BWE feedbacks removed.
    assert!(consumer.codecs[0]
        .rtcp_feedback
        .iter()
        .all(|fb| fb.fb_type != "transport-cc" && fb.fb_type != "goog-remb"));
}

#[test]
fn rtx_mapping_errors() {
    let caps = router_caps();
    let mut p = rtp_parameters(chrome_vp8_simulcast_producer()).unwrap();
    p.codecs[1].parameters.insert("apt", 55u8);
    assert_eq!(
        get_producer_rtp_parameters_mapping(&mut p, &caps, &mut rng()),
        Err(OrtcError::MissingMediaCodecForRtx(97))
    );
    let mut no_rtx_caps = caps.clone();
    no_rtx_caps.codecs.retain(|c| !c.is_rtx());
    let mut p = rtp_parameters(chrome_vp8_simulcast_producer()).unwrap();
    assert_eq!(
        get_producer_rtp_parameters_mapping(&mut p, &no_rtx_caps, &mut rng()),
        Err(OrtcError::NoRtxCodecForCapabilityCodec(101))
    );
    // Consumable parameters need the mapping to cover the producer.
    let mut p = rtp_parameters(chrome_vp8_simulcast_producer()).unwrap();
    let mut m = get_producer_rtp_parameters_mapping(&mut p, &caps, &mut rng()).unwrap();
    m.encodings.pop();
    assert!(matches!(
        get_consumable_rtp_parameters(MediaKind::Video, &p, &caps, &m),
        Err(OrtcError::InconsistentMapping(_))
    ));
}

#[test]
fn producer_checks_and_type() {
    let check =
        |v: Value, kind| validate_producer_rtp_parameters(kind, &rtp_parameters(v).unwrap());
    let vp8 = json!({"mimeType":"video/VP8","payloadType":96,"clockRate":90000});
    // Single VP8 stream with temporal layers is a one-stream simulcast.
    assert_eq!(
        check(
            json!({"codecs":[vp8],"encodings":[{"ssrc":1,"scalabilityMode":"L1T3"}]}),
            MediaKind::Video
        ),
        Ok(ProducerType::Simulcast)
    );
    assert_eq!(
        check(
            json!({"codecs":[vp8],"encodings":[{"ssrc":1}]}),
            MediaKind::Video
        ),
        Ok(ProducerType::Simple)
    );
    // No mid, no ssrc, no rid.
    assert!(check(json!({"codecs":[vp8],"encodings":[{}]}), MediaKind::Video).is_err());
    assert!(check(json!({"mid":"0","codecs":[vp8]}), MediaKind::Video).is_ok());
    assert!(check(
        json!({"codecs":[vp8],"encodings":[{"ssrc":1},{}]}),
        MediaKind::Video
    )
    .is_err());
    assert!(check(
        json!({"codecs":[vp8],"encodings":[{"ssrc":1,"scalabilityMode":"foo"}]}),
        MediaKind::Video
    )
    .is_err());
    assert!(check(
        json!({"codecs":[vp8, vp8],"encodings":[{"ssrc":1}]}),
        MediaKind::Video
    )
    .is_err());
    assert!(check(
        json!({"codecs":[vp8],"encodings":[{"ssrc":1}]}),
        MediaKind::Audio
    )
    .is_err());
    assert!(check(
        json!({"codecs":[vp8],"encodings":[{"ssrc":1,"codecPayloadType":97}]}),
        MediaKind::Video
    )
    .is_err());
    let vp9 = json!({"mimeType":"video/VP9","payloadType":98,"clockRate":90000});
    assert_eq!(
        check(
            json!({"codecs":[vp9],"encodings":[{"rid":"a"},{"rid":"b"}]}),
            MediaKind::Video
        ),
        Err(OrtcError::CodecNotSupportedForType {
            codec: "video/VP9".into(),
            producer_type: "simulcast"
        })
    );
    let opus = json!({"mimeType":"audio/opus","payloadType":111,"clockRate":48000,"channels":2});
    assert!(check(
        json!({"codecs":[opus],"encodings":[{"ssrc":1,"scalabilityMode":"L1T2"}]}),
        MediaKind::Audio
    )
    .is_err());
    let rtx_bad =
        json!({"mimeType":"video/rtx","payloadType":97,"clockRate":90000,"parameters":{"apt":97}});
    assert!(check(
        json!({"codecs":[vp8, rtx_bad],"encodings":[{"ssrc":1}]}),
        MediaKind::Video
    )
    .is_err());
}

#[test]
fn cname_and_mid_rules() {
    let mut cname = ProducerCname::new();
    let mut no_cname = rtp_parameters(json!({"codecs":[],"encodings":[{"ssrc":1}]})).unwrap();
    let generated = cname.apply(&mut no_cname, &mut rng());
    assert_eq!(generated.len(), 8);
    assert_eq!(no_cname.rtcp.cname.as_deref(), Some(generated.as_str()));
    // A later producer's own CNAME is overridden by the transport's.
    let mut p = rtp_parameters(chrome_audio_producer()).unwrap();
    assert_eq!(cname.apply(&mut p, &mut rng()), generated);
    assert_eq!(p.rtcp.cname.as_deref(), Some(generated.as_str()));
    assert_eq!(cname.get(), Some(generated.as_str()));

    let mut mids = ConsumerMidAllocator { next: 99_999_999 };
    assert_eq!(mids.next_mid(), "99999999");
    assert_eq!(mids.next_mid(), "0");
}

#[test]
fn sctp_stream_parameter_rules() {
    let sp = |ordered, life, retr| SctpStreamParameters {
        stream_id: 1,
        ordered,
        max_packet_life_time: life,
        max_retransmits: retr,
    };
    let mut p = sp(None, None, None);
    validate_sctp_stream_parameters(&mut p).unwrap();
    assert_eq!(p.ordered, Some(true));
    let mut p = sp(None, Some(500), None);
    validate_sctp_stream_parameters(&mut p).unwrap();
    assert_eq!(p.ordered, Some(false));
    let mut p = sp(Some(false), None, Some(3));
    assert!(validate_sctp_stream_parameters(&mut p).is_ok());
    assert!(validate_sctp_stream_parameters(&mut sp(Some(true), None, Some(3))).is_err());
    assert!(validate_sctp_stream_parameters(&mut sp(None, Some(1), Some(3))).is_err());
}

#[test]
fn multiopus_match_needs_equal_stream_counts() {
    let a = json!({"num_streams":2,"coupled_streams":2});
    let b = json!({"num_streams":"2","coupled_streams":2});
    let c = json!({"num_streams":4,"coupled_streams":2});
    let view = |p: &Value| {
        let params: CodecParameters = serde_json::from_value(p.clone()).unwrap();
        RtpCodecParameters {
            mime_type: "audio/multiopus".into(),
            payload_type: 100,
            clock_rate: 48000,
            channels: Some(4),
            parameters: params,
            rtcp_feedback: vec![],
        }
    };
    let (a, b, c) = (view(&a), view(&b), view(&c));
    assert!(match_codecs(CodecView::from(&a), CodecView::from(&b), true).is_some());
    assert!(match_codecs(CodecView::from(&a), CodecView::from(&c), false).is_none());
    let mut d = a.clone();
    d.channels = Some(6);
    assert!(match_codecs(CodecView::from(&a), CodecView::from(&d), false).is_none());
}

/// mediasoup's producer-type table (RtpParameters::GetType + Producer's codec check), through the
/// one function everything uses.
#[test]
fn producer_type_follows_mediasoups_table() {
    let codec =
        |mime: &str, pt: u8| json!({"mimeType": mime, "payloadType": pt, "clockRate": 90000});
    let vp8 = codec("video/VP8", 96);
    let vp9 = codec("video/VP9", 98);
    let h264 = codec("video/H264", 102);
    let opus = json!({"mimeType":"audio/opus","payloadType":111,"clockRate":48000,"channels":2});
    let ty = |codecs: Value, encodings: Value| {
        producer_type(&rtp_parameters(json!({"codecs": codecs, "encodings": encodings})).unwrap())
    };
    use ProducerType::*;
    let simple_or_layered = [
        // (codecs, scalabilityMode of the single encoding, type)
        (json!([vp8]), None, Ok(Simple)),
        (json!([vp8]), Some("L1T1"), Ok(Simple)),
        (json!([opus]), None, Ok(Simple)),
        (json!([vp9]), None, Ok(Simple)),
        (json!([vp8]), Some("L1T3"), Ok(Simulcast)),
        (json!([vp8]), Some("L1T2"), Ok(Simulcast)),
        (json!([h264]), Some("L1T3"), Ok(Simulcast)),
        (json!([vp8]), Some("L2T1"), Ok(Simulcast)),
        (json!([vp9]), Some("L1T3"), Ok(Svc)),
        (json!([vp9]), Some("L3T3"), Ok(Svc)),
        (json!([vp9]), Some("L3T3_KEY"), Ok(Svc)),
        (json!([vp9]), Some("S3T3"), Ok(Svc)),
        (json!([vp9]), Some("L2T1"), Ok(Svc)),
        (
            json!([opus]),
            Some("L1T2"),
            Err(OrtcError::CodecNotSupportedForType {
                codec: "audio/opus".into(),
                producer_type: "svc",
            }),
        ),
    ];
    for (codecs, mode, want) in simple_or_layered {
        let enc = match mode {
            Some(m) => json!([{"ssrc": 1, "scalabilityMode": m}]),
            None => json!([{"ssrc": 1}]),
        };
        assert_eq!(ty(codecs.clone(), enc), want, "{codecs} {mode:?}");
    }
    // Several encodings: simulcast, for VP8/H264 only, never with spatial layers inside.
    let three = json!([{"rid": "r0"}, {"rid": "r1"}, {"rid": "r2"}]);
    assert_eq!(ty(json!([vp8]), three.clone()), Ok(Simulcast));
    assert_eq!(ty(json!([h264]), three.clone()), Ok(Simulcast));
    assert_eq!(
        ty(
            json!([vp8]),
            json!([{"rid": "r0", "scalabilityMode": "L1T3"}, {"rid": "r1", "scalabilityMode": "L1T3"}])
        ),
        Ok(Simulcast)
    );
    assert_eq!(
        ty(json!([vp9]), three),
        Err(OrtcError::CodecNotSupportedForType {
            codec: "video/VP9".into(),
            producer_type: "simulcast"
        })
    );
    assert!(ty(
        json!([vp8]),
        json!([{"rid": "r0", "scalabilityMode": "L2T3"}, {"rid": "r1"}])
    )
    .is_err());
    // The encoding's codecPayloadType decides, not the first codec.
    assert_eq!(
        ty(
            json!([vp8, vp9]),
            json!([{"ssrc": 1, "codecPayloadType": 98, "scalabilityMode": "L3T3"}])
        ),
        Ok(Svc)
    );
    assert_eq!(
        ty(
            json!([vp8, vp9]),
            json!([{"ssrc": 1, "scalabilityMode": "L3T3"}])
        ),
        Ok(Simulcast)
    );
    // The names mediasoup prints.
    assert_eq!(
        [Simple.as_str(), Simulcast.as_str(), Svc.as_str()],
        ["simple", "simulcast", "svc"]
    );
}
