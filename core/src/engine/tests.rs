//! Engine tests that need its private state: demux bookkeeping on close, DTLS start.

use super::*;
use serde_json::json;

fn engine() -> Engine {
    let listen = ListenInfo {
        udp: Some((0, "127.0.0.1:52000".parse().unwrap())),
        tcp: Some("127.0.0.1:52000".parse().unwrap()),
        announced_address: None,
    };
    let cert = DtlsCertificate::generate().unwrap();
    Engine::new(0, listen, cert, Instant::now(), SystemTime::now(), [7; 32])
}

fn router(e: &mut Engine) -> Uuid {
    let codecs = serde_json::from_value::<Vec<RtpCodecCapability>>(json!([
        {"kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2}
    ]))
    .unwrap();
    e.create_router(&codecs, Instant::now()).unwrap()
}

fn webrtc(e: &mut Engine, r: &Uuid) -> (Uuid, TransportKey) {
    let data = e
        .create_webrtc_transport(r, WebRtcTransportOptions::default(), Instant::now())
        .unwrap();
    let id: Uuid = data.id.parse().unwrap();
    let key = e.transport_ids[&id];
    (id, key)
}

#[test]
fn closing_a_transport_removes_exactly_its_demux_entries() {
    let mut e = engine();
    let r = router(&mut e);
    let (a, key_a) = webrtc(&mut e, &r);
    let (_b, key_b) = webrtc(&mut e, &r);
    e.restart_ice(&a, Instant::now()).unwrap();
    // Paths as `handle_stun` registers them after valid checks.
    let pa: (SocketId, SocketAddr) = (0, "127.0.0.2:1000".parse().unwrap());
    let pb: (SocketId, SocketAddr) = (0, "127.0.0.3:1000".parse().unwrap());
    let shared: (SocketId, SocketAddr) = (0, "127.0.0.4:1000".parse().unwrap());
    for (p, k) in [(pa, key_a), (shared, key_a), (pb, key_b), (shared, key_b)] {
        e.udp_paths.insert(p, k);
        e.transports[k].demux.udp_paths.push(p);
    }
    e.tcp_paths.insert(5, key_a);
    e.transports[key_a].demux.tcp_conns.push(5);
    let (p, key_p) = {
        let data = e
            .create_plain_transport(
                &r,
                (3, "127.0.0.1:52001".parse().unwrap()),
                Some((4, "127.0.0.1:52002".parse().unwrap())),
                false,
                false,
                None,
                Instant::now(),
            )
            .unwrap();
        let id: Uuid = data.id.parse().unwrap();
        (id, e.transport_ids[&id])
    };
    assert_eq!(e.ufrags.len(), 3);

    e.close_transport(&a, Instant::now()).unwrap();
    // B's ufrag, its own path and the path it took over from A stay; A's are gone.
    assert_eq!(e.ufrags.len(), 1);
    assert!(e.ufrags.values().all(|k| *k == key_b));
    assert_eq!(e.udp_paths.len(), 2);
    assert_eq!(e.udp_paths[&pb], key_b);
    assert_eq!(e.udp_paths[&shared], key_b);
    assert!(e.tcp_paths.is_empty());
    assert_eq!(e.plain_sockets.len(), 2);
    assert!(e.take_released_sockets().is_empty());

    e.close_transport(&p, Instant::now()).unwrap();
    assert!(e.plain_sockets.is_empty());
    let mut released = e.take_released_sockets();
    released.sort();
    assert_eq!(released, vec![3, 4]);
    let _ = key_p;
}

#[test]
fn engine_errors_have_fixed_status_codes() {
    let mut e = engine();
    let r = router(&mut e);
    let missing = e
        .close_transport(&Uuid::new_v4(), Instant::now())
        .unwrap_err();
    assert_eq!(missing.status(), 404);
    let (t, _) = webrtc(&mut e, &r);
    // role server: we are the DTLS client and wait for an ICE path (no session started here).
    let fp: crate::api::DtlsParameters = serde_json::from_value(
        json!({"role": "server", "fingerprints": [{"algorithm": "sha-256", "value": "AA"}]}),
    )
    .unwrap();
    e.connect_webrtc_transport(&t, &fp, Instant::now()).unwrap();
    assert_eq!(
        e.connect_webrtc_transport(&t, &fp, Instant::now())
            .unwrap_err()
            .status(),
        409
    );
    let bad = e
        .connect_webrtc_transport(&t, &crate::api::DtlsParameters::default(), Instant::now())
        .unwrap_err();
    assert_eq!(bad.status(), 400);
    assert_eq!(EngineError::Ortc("x".into()).status(), 400);
    assert_eq!(EngineError::Unsupported("x".into()).status(), 501);
}

#[test]
fn consumer_mids_count_per_transport_and_sdes_keys_round_trip_base64() {
    let mut e = engine();
    let r = router(&mut e);
    let (_a, ka) = webrtc(&mut e, &r);
    let (_b, kb) = webrtc(&mut e, &r);
    assert_eq!(e.transports[ka].mids.next_mid(), "0");
    assert_eq!(e.transports[ka].mids.next_mid(), "1");
    assert_eq!(e.transports[kb].mids.next_mid(), "0");
    for n in 0..40u8 {
        let data: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
        let enc = base64_encode(&data);
        assert_eq!(base64_decode(&enc).unwrap(), data);
        assert_eq!(base64_decode(enc.trim_end_matches('=')).unwrap(), data);
    }
    assert_eq!(base64_decode("Zm9v\nYmFy").unwrap(), b"foobar");
    assert!(base64_decode("a*b").is_none());
}

/// The producer type the engine answers, stores and gives its consumers follows mediasoup's one
/// rule (`ortc::producer_type`): a single VP8 encoding with temporal layers is `simulcast`.
#[test]
fn produce_answers_mediasoups_producer_type_and_consumers_follow_it() {
    let mut e = engine();
    let codecs = serde_json::from_value::<Vec<RtpCodecCapability>>(json!([
        {"kind": "video", "mimeType": "video/VP8", "clockRate": 90000},
        {"kind": "video", "mimeType": "video/VP9", "clockRate": 90000, "parameters": {"profile-id": 0}}
    ]))
    .unwrap();
    let r = e.create_router(&codecs, Instant::now()).unwrap();
    let (t, _) = webrtc(&mut e, &r);
    let caps = e.routers[e.router_ids[&r]].rtp_capabilities.clone();
    let cases = [
        ("video/VP8", 96, json!([{"ssrc": 100}]), "simple"),
        (
            "video/VP8",
            96,
            json!([{"ssrc": 200, "scalabilityMode": "L1T3"}]),
            "simulcast",
        ),
        (
            "video/VP8",
            96,
            json!([{"ssrc": 300}, {"ssrc": 301}, {"ssrc": 302}]),
            "simulcast",
        ),
        (
            "video/VP9",
            98,
            json!([{"ssrc": 400, "scalabilityMode": "L3T3_KEY"}]),
            "svc",
        ),
        (
            "video/VP9",
            98,
            json!([{"ssrc": 500, "scalabilityMode": "L1T3"}]),
            "svc",
        ),
    ];
    for (mime, pt, encodings, want) in cases {
        let params: RtpParameters = serde_json::from_value(json!({
            "codecs": [{"mimeType": mime, "payloadType": pt, "clockRate": 90000,
                        "parameters": if mime == "video/VP9" { json!({"profile-id": 0}) } else { json!({}) }}],
            "encodings": encodings,
            "headerExtensions": []
        }))
        .unwrap();
        let answer = e
            .produce(
                &t,
                ProduceOptions {
                    kind: MediaKind::Video,
                    rtp_parameters: params,
                    paused: false,
                },
                Instant::now(),
            )
            .unwrap();
        assert_eq!(answer.producer_type, want, "{mime} {encodings}: {answer:?}");
        let pid: Uuid = answer.id.parse().unwrap();
        let consumer = e
            .consume(
                &t,
                ConsumeOptions {
                    producer_id: pid,
                    rtp_capabilities: caps.clone(),
                    paused: true,
                    enable_rtx: false,
                },
                Instant::now(),
            )
            .unwrap();
        assert_eq!(
            consumer.consumer_type, want,
            "consumer of {mime} {encodings}"
        );
    }
    // Consumer capabilities are normalized and checked (mediasoup's validateRtpCapabilities):
    // an RTX codec whose apt is no payload type is refused, by can_consume too.
    let mut bad = caps.clone();
    assert!(bad.codecs[1].is_rtx());
    bad.codecs[1].parameters.insert("apt", "x");
    let pid = e.producers.iter().next().map(|(_, p)| p.id).unwrap();
    assert!(matches!(
        e.can_consume(&pid, &bad),
        Err(EngineError::Invalid(_))
    ));
    let err = e
        .consume(
            &t,
            ConsumeOptions {
                producer_id: pid,
                rtp_capabilities: bad,
                paused: true,
                enable_rtx: false,
            },
            Instant::now(),
        )
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::Invalid(m) if m.contains("codecs[1].parameters.apt invalid")),
        "{err}"
    );
}

/// The debug dump's table sizes keep their JSON keys (the soak test and operators read them).
#[test]
fn table_sizes_serialize_with_the_debug_dump_keys() {
    let mut e = engine();
    assert_eq!(e.table_sizes(), TableSizes::default());
    let r = router(&mut e);
    webrtc(&mut e, &r);
    let sizes = e.table_sizes();
    assert_eq!(
        (sizes.routers, sizes.transports, sizes.ice_ufrags),
        (1, 1, 1)
    );
    let v = serde_json::to_value(sizes).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = vec![
        "routers",
        "transports",
        "producers",
        "consumers",
        "dataProducers",
        "dataConsumers",
        "rtpObservers",
        "routerIds",
        "transportIds",
        "producerIds",
        "consumerIds",
        "dataProducerIds",
        "dataConsumerIds",
        "iceUfrags",
        "udpPaths",
        "tcpPaths",
        "plainSockets",
        "ssrcEntries",
        "midEntries",
        "sctpStreamEntries",
        "pendingEvents",
    ];
    want.sort_unstable();
    assert_eq!(keys, want);
    assert_eq!(v["routers"], json!(1));
}
