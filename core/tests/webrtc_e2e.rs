//! End-to-end tests of the engine over real loopback sockets with an independent WebRTC stack
//! (webrtc-rs ICE agent + DTLS client + webrtc-srtp) as the peers.

use std::time::Instant;
#[path = "common/backend.rs"]
mod backend;
mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ringsfu_core::dtls::DtlsCertificate;
use ringsfu_core::engine::{ConsumeOptions, EngineEvent, ProduceOptions, WebRtcTransportOptions};
use ringsfu_core::rtp_parameters::{MediaKind, RtpCapabilities, RtpParameters};
use ringsfu_core::transport::DtlsState;
use ringsfu_core::worker::{Worker, WorkerSettings};
use serde_json::Value;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);

fn spawn_worker(index: usize) -> Arc<Worker> {
    let worker = Arc::new(
        Worker::spawn(WorkerSettings {
            index,
            pin_core: None,
            listen_ip: IpAddr::from([127, 0, 0, 1]),
            announced_address: None,
            udp_port: Some(0),
            tcp_port: Some(0),
            rtc_port_range: (40000, 49999),
            backend: backend::requested_backend(),
            cert: DtlsCertificate::generate().unwrap(),
        })
        .unwrap(),
    );
    // The backend asked for is the one running (io_uring falls back only where refused).
    backend::assert_backend_used(worker.backend());
    worker
}

async fn create_router(w: &Worker) -> Uuid {
    w.with_engine(|e| e.create_router(&demo_media_codecs(), Instant::now()))
        .await
        .unwrap()
        .unwrap()
}

async fn create_transport(w: &Worker, router: Uuid) -> (Uuid, Value) {
    let data = w
        .with_engine(move |e| {
            e.create_webrtc_transport(&router, WebRtcTransportOptions::default(), Instant::now())
                .map(|v| serde_json::to_value(v).unwrap())
        })
        .await
        .unwrap()
        .unwrap();
    let id: Uuid = data["id"].as_str().unwrap().parse().unwrap();
    (id, data)
}

async fn produce(w: &Worker, transport: Uuid, kind: MediaKind, params: Value) -> Uuid {
    let rtp_parameters: RtpParameters = serde_json::from_value(params).unwrap();
    let v = w
        .with_engine(move |e| {
            e.produce(
                &transport,
                ProduceOptions {
                    kind,
                    rtp_parameters,
                    paused: false,
                },
                Instant::now(),
            )
            .map(|v| serde_json::to_value(v).unwrap())
        })
        .await
        .unwrap()
        .unwrap();
    v["id"].as_str().unwrap().parse().unwrap()
}

async fn consume(w: &Worker, transport: Uuid, producer: Uuid) -> Value {
    let caps: RtpCapabilities = serde_json::from_value(chrome_rtp_capabilities()).unwrap();
    w.with_engine(move |e| {
        e.consume(
            &transport,
            ConsumeOptions {
                producer_id: producer,
                rtp_capabilities: caps,
                paused: false,
                enable_rtx: true,
            },
            Instant::now(),
        )
        .map(|v| serde_json::to_value(v).unwrap())
    })
    .await
    .unwrap()
    .unwrap()
}

/// A VP8 payload: descriptor with S=1, PID 0, then a VP8 header whose P bit says keyframe or not.
fn vp8_payload(keyframe: bool, n: u8) -> Vec<u8> {
    let mut p = vec![0x10, if keyframe { 0x00 } else { 0x01 }, 0x02, 0x00];
    p.extend((0..200u16).map(|i| (i as u8).wrapping_add(n)));
    p
}

fn ext_value(pkt: &webrtc::rtp::packet::Packet, id: u8) -> Option<Vec<u8>> {
    pkt.header.get_extension(id).map(|b| b.to_vec())
}

async fn recv_from_ssrc(peer: &TestPeer, ssrc: u32) -> Option<webrtc::rtp::packet::Packet> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        let raw = peer.recv_rtp(WAIT).await?;
        let pkt = parse_rtp(&raw);
        if pkt.header.ssrc == ssrc {
            return Some(pkt);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_connect_and_media_is_forwarded_with_consumer_rewrites() {
    let w = spawn_worker(0);
    let mut events = w.events().await.unwrap();
    let router = create_router(&w).await;
    let (ta, da) = create_transport(&w, router).await;
    let (tb, db) = create_transport(&w, router).await;
    let peer_a = connect_engine_peer(Arc::clone(&w), ta, &da).await;
    let peer_b = connect_engine_peer(Arc::clone(&w), tb, &db).await;

    // Both transports report DTLS connected.
    let mut connected = 0;
    while connected < 2 {
        let ev = tokio::time::timeout(WAIT, events.recv())
            .await
            .unwrap()
            .unwrap();
        if let EngineEvent::DtlsStateChange {
            state: DtlsState::Connected,
            ..
        } = ev
        {
            connected += 1;
        }
    }

    let audio = produce(&w, ta, MediaKind::Audio, opus_producer_params(1111, "0")).await;
    let video = produce(
        &w,
        ta,
        MediaKind::Video,
        vp8_producer_params(2222, 2223, "1"),
    )
    .await;
    let ca = consume(&w, tb, audio).await;
    let cv = consume(&w, tb, video).await;
    let a_ssrc = ca["rtpParameters"]["encodings"][0]["ssrc"]
        .as_u64()
        .unwrap() as u32;
    let v_ssrc = cv["rtpParameters"]["encodings"][0]["ssrc"]
        .as_u64()
        .unwrap() as u32;
    let a_pt = ca["rtpParameters"]["codecs"][0]["payloadType"]
        .as_u64()
        .unwrap() as u8;
    let v_pt = cv["rtpParameters"]["codecs"][0]["payloadType"]
        .as_u64()
        .unwrap() as u8;
    let mid_id = |c: &Value| {
        c["rtpParameters"]["headerExtensions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["uri"] == "urn:ietf:params:rtp-hdrext:sdes:mid")
            .map(|h| h["id"].as_u64().unwrap() as u8)
            .unwrap()
    };
    let a_mid = ca["rtpParameters"]["mid"].as_str().unwrap().to_string();
    assert_ne!(a_ssrc, 1111, "consumer gets its own SSRC");

    // Audio: A sends; B receives the same payload with its consumer's SSRC, PT and MID.
    let mut got = None;
    for seq in 0..100u16 {
        let payload: Vec<u8> = (0..160).map(|i| (i as u8) ^ (seq as u8)).collect();
        let pkt = build_rtp(
            111,
            1000 + seq,
            48000 + 960 * seq as u32,
            1111,
            false,
            &[(4, b"0".to_vec()), (1, vec![0x85])],
            &payload,
        );
        peer_a.send_rtp(&pkt).await;
        if seq % 10 == 9 {
            if let Some(p) =
                tokio::time::timeout(Duration::from_millis(500), recv_from_ssrc(&peer_b, a_ssrc))
                    .await
                    .ok()
                    .flatten()
            {
                got = Some(p);
                break;
            }
        }
    }
    let p = got.expect("B receives A's audio");
    assert_eq!(p.header.payload_type, a_pt);
    let seq_in = p.header.sequence_number.wrapping_sub(1000);
    let expected: Vec<u8> = (0..160).map(|i| (i as u8) ^ (seq_in as u8)).collect();
    assert_eq!(p.payload.to_vec(), expected, "payload byte-identical");
    assert_eq!(
        ext_value(&p, mid_id(&ca)),
        Some(a_mid.into_bytes()),
        "consumer MID in every packet"
    );

    // Video: nothing before a keyframe; then a continuous stream.
    for i in 0..5u16 {
        peer_a
            .send_rtp(&build_rtp(
                96,
                500 + i,
                90000,
                2222,
                true,
                &[(4, b"1".to_vec())],
                &vp8_payload(false, i as u8),
            ))
            .await;
    }
    peer_a
        .send_rtp(&build_rtp(
            96,
            505,
            93000,
            2222,
            true,
            &[(4, b"1".to_vec())],
            &vp8_payload(true, 5),
        ))
        .await;
    let first = recv_from_ssrc(&peer_b, v_ssrc)
        .await
        .expect("B receives video");
    assert_eq!(first.header.payload_type, v_pt);
    assert_eq!(
        first.payload.to_vec(),
        vp8_payload(true, 5),
        "the keyframe comes first"
    );
    let mut last_seq = first.header.sequence_number;
    for i in 6..20u16 {
        peer_a
            .send_rtp(&build_rtp(
                96,
                500 + i,
                93000 + 3000 * i as u32,
                2222,
                true,
                &[(4, b"1".to_vec())],
                &vp8_payload(false, i as u8),
            ))
            .await;
        let p = recv_from_ssrc(&peer_b, v_ssrc)
            .await
            .expect("video continues");
        assert_eq!(p.header.sequence_number, last_seq.wrapping_add(1));
        assert_eq!(p.payload.to_vec(), vp8_payload(false, i as u8));
        last_seq = p.header.sequence_number;
    }

    // Pause the producer: consumers are told; after resume the stream continues from a keyframe
    // with the next sequence number, even though the producer's numbers jumped.
    w.with_engine(move |e| e.pause_producer(&video, Instant::now()))
        .await
        .unwrap()
        .unwrap();
    let mut paused_seen = false;
    while !paused_seen {
        let ev = tokio::time::timeout(WAIT, events.recv())
            .await
            .unwrap()
            .unwrap();
        paused_seen = matches!(ev, EngineEvent::ConsumerProducerPause { .. });
    }
    for i in 20..30u16 {
        peer_a
            .send_rtp(&build_rtp(
                96,
                500 + i,
                93000 + 3000 * i as u32,
                2222,
                true,
                &[],
                &vp8_payload(false, i as u8),
            ))
            .await;
    }
    w.with_engine(move |e| e.resume_producer(&video, Instant::now()))
        .await
        .unwrap()
        .unwrap();
    for i in 100..103u16 {
        peer_a
            .send_rtp(&build_rtp(
                96,
                500 + i,
                93000 + 3000 * i as u32,
                2222,
                true,
                &[],
                &vp8_payload(false, i as u8),
            ))
            .await;
    }
    peer_a
        .send_rtp(&build_rtp(
            96,
            603,
            93000 + 3000 * 103,
            2222,
            true,
            &[],
            &vp8_payload(true, 103),
        ))
        .await;
    let p = recv_from_ssrc(&peer_b, v_ssrc)
        .await
        .expect("video after resume");
    assert_eq!(
        p.payload.to_vec(),
        vp8_payload(true, 103),
        "keyframe first after resume"
    );
    assert_eq!(
        p.header.sequence_number,
        last_seq.wrapping_add(1),
        "no gap across pause/resume"
    );

    // A PLI from B reaches A as a PLI for A's real SSRC.
    let pli = {
        use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
        use webrtc::util::Marshal;
        PictureLossIndication {
            sender_ssrc: 1,
            media_ssrc: v_ssrc,
        }
        .marshal()
        .unwrap()
        .to_vec()
    };
    // The server forwards at most one key frame request per 500 ms, and the resume above may
    // have left one on its way to A: B asks again every 700 ms until A has seen two PLIs for its
    // SSRC, which at most one stale PLI cannot fake. No timing assumption beyond the rate limit.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut plis_seen = 0;
    while plis_seen < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "A gets PLIs for its video SSRC: {plis_seen}"
        );
        peer_b.send_rtcp(&pli).await;
        let next = tokio::time::Instant::now() + Duration::from_millis(700);
        while let Ok(Some(raw)) = tokio::time::timeout_at(next, peer_a.recv_rtcp(WAIT)).await {
            let mut b = raw.as_slice();
            if let Ok(pkts) = webrtc::rtcp::packet::unmarshal(&mut b) {
                for p in pkts {
                    if let Some(pli) = p.as_any().downcast_ref::<webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication>() {
                        if pli.media_ssrc == 2222 {
                            plis_seen += 1;
                        }
                    }
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_fingerprint_fails_dtls_and_is_reported() {
    let w = spawn_worker(0);
    let mut events = w.events().await.unwrap();
    let router = create_router(&w).await;
    let (t, data) = create_transport(&w, router).await;
    let remote = RemoteTransport::from_data(&data);
    let w2 = Arc::clone(&w);
    let r = connect_peer(
        &remote,
        None,
        |_dtls| async move {
            // Signal a fingerprint that is not our certificate's.
            let bogus = dtls_parameters(&vec!["AB"; 32].join(":"));
            engine_connect(&w2, t, bogus).await;
        },
        None,
    )
    .await;
    assert!(r.is_err(), "handshake must not succeed");
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut failed = false;
    while !failed && tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(WAIT, events.recv()).await {
            Ok(Some(EngineEvent::DtlsStateChange {
                state: DtlsState::Failed,
                ..
            })) => failed = true,
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    assert!(failed, "transport reports DTLS failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_ice_password_gets_no_connection() {
    let w = spawn_worker(0);
    let router = create_router(&w).await;
    let (_t, data) = create_transport(&w, router).await;
    let remote = RemoteTransport::from_data(&data);
    let r = connect_peer(
        &remote,
        Some("wrongpasswordwrongpassword123456"),
        |_d| async {},
        None,
    )
    .await;
    assert!(r.is_err(), "ICE must fail with a wrong password");
    let drops = w.with_engine(|e| e.drops).await.unwrap();
    assert!(
        drops.ice_rejected > 0,
        "rejected checks are counted: {drops:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_tcp_peer_receives_media() {
    let w = spawn_worker(0);
    let router = create_router(&w).await;
    let (ta, da) = create_transport(&w, router).await;
    let (tb, db) = create_transport(&w, router).await;
    let peer_a = connect_engine_peer(Arc::clone(&w), ta, &da).await;
    let w2 = Arc::clone(&w);
    let peer_b = connect_peer_tcp(&db, |dtls| async move {
        engine_connect(&w2, tb, dtls).await;
    })
    .await
    .expect("TCP peer connects");
    let audio = produce(&w, ta, MediaKind::Audio, opus_producer_params(1111, "0")).await;
    let ca = consume(&w, tb, audio).await;
    let ssrc = ca["rtpParameters"]["encodings"][0]["ssrc"]
        .as_u64()
        .unwrap() as u32;
    let mut got = None;
    for seq in 0..200u16 {
        let payload = vec![seq as u8; 100];
        peer_a
            .send_rtp(&build_rtp(
                111,
                seq,
                960 * seq as u32,
                1111,
                false,
                &[(4, b"0".to_vec())],
                &payload,
            ))
            .await;
        if seq % 10 == 9 {
            if let Ok(Some(p)) =
                tokio::time::timeout(Duration::from_millis(300), recv_from_ssrc(&peer_b, ssrc))
                    .await
            {
                got = Some(p);
                break;
            }
        }
    }
    let p = got.expect("media reaches the TCP peer");
    assert_eq!(
        p.payload.to_vec(),
        vec![p.header.sequence_number as u8; 100]
    );
    // And the TCP peer's own SRTP reaches the server (its RTCP is decrypted and counted).
    let rr = {
        use webrtc::rtcp::receiver_report::ReceiverReport;
        use webrtc::util::Marshal;
        ReceiverReport {
            ssrc: 5,
            ..Default::default()
        }
        .marshal()
        .unwrap()
        .to_vec()
    };
    let before = w
        .with_engine(move |e| {
            e.transport_stats(&tb, Instant::now())
                .map(|v| serde_json::to_value(v).unwrap())
                .unwrap()
        })
        .await
        .unwrap();
    for _ in 0..3 {
        peer_b.send_rtcp(&rr).await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = w
            .with_engine(move |e| {
                e.transport_stats(&tb, Instant::now())
                    .map(|v| serde_json::to_value(v).unwrap())
                    .unwrap()
            })
            .await
            .unwrap();
        if now[0]["rtcpPacketsReceived"].as_u64() > before[0]["rtcpPacketsReceived"].as_u64() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "server never decrypted the TCP peer's RTCP"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_timeout_disconnects_a_silent_peer() {
    let w = spawn_worker(0);
    let mut events = w.events().await.unwrap();
    let router = create_router(&w).await;
    let data = w
        .with_engine(move |e| {
            e.create_webrtc_transport(
                &router,
                WebRtcTransportOptions {
                    ice_consent_timeout: Duration::from_secs(2),
                    ..Default::default()
                },
                Instant::now(),
            )
            .map(|v| serde_json::to_value(v).unwrap())
        })
        .await
        .unwrap()
        .unwrap();
    let t: Uuid = data["id"].as_str().unwrap().parse().unwrap();
    let peer = connect_engine_peer(Arc::clone(&w), t, &data).await;
    // The peer goes silent: its ICE agent stops sending consent checks.
    peer.agent.as_ref().unwrap().close().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("consent timeout fires")
            .unwrap();
        if let EngineEvent::IceStateChange { transport, state } = ev {
            if transport == t && state == ringsfu_core::ice::IceState::Disconnected {
                break;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_forward_while_garbage_floods_their_ports() {
    let workers = [spawn_worker(0), spawn_worker(1)];
    let mut sessions = Vec::new();
    for w in &workers {
        let router = create_router(w).await;
        let (ta, da) = create_transport(w, router).await;
        let (tb, db) = create_transport(w, router).await;
        let pa = connect_engine_peer(Arc::clone(w), ta, &da).await;
        let pb = connect_engine_peer(Arc::clone(w), tb, &db).await;
        let audio = produce(w, ta, MediaKind::Audio, opus_producer_params(1111, "0")).await;
        let ca = consume(w, tb, audio).await;
        let ssrc = ca["rtpParameters"]["encodings"][0]["ssrc"]
            .as_u64()
            .unwrap() as u32;
        sessions.push((pa, pb, ssrc, RemoteTransport::from_data(&da).udp));
    }
    // Garbage: random bytes with every kind of first byte, truncated STUN/DTLS/RTP lookalikes,
    // from an address no transport knows. Bounded: 20k datagrams.
    let targets: Vec<_> = sessions.iter().map(|s| s.3).collect();
    let flood = tokio::spawn(async move {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut x: u32 = 12345;
        for i in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let len = (x % 300) as usize + 1;
            let mut d: Vec<u8> = (0..len)
                .map(|j| (x.wrapping_mul(j as u32 + 7) >> 8) as u8)
                .collect();
            d[0] = (i % 256) as u8;
            let _ = sock.send_to(&d, targets[i as usize % targets.len()]).await;
            if i % 500 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
    for (pa, pb, ssrc, _) in &sessions {
        let mut received = 0;
        for seq in 0..300u16 {
            let payload = vec![seq as u8; 80];
            pa.send_rtp(&build_rtp(
                111,
                seq,
                960 * seq as u32,
                1111,
                false,
                &[(4, b"0".to_vec())],
                &payload,
            ))
            .await;
            while let Ok(Some(p)) =
                tokio::time::timeout(Duration::from_millis(5), recv_from_ssrc(pb, *ssrc)).await
            {
                assert_eq!(p.payload.to_vec(), vec![p.header.sequence_number as u8; 80]);
                received += 1;
            }
        }
        // What is still on its way: waited for generously until 250 arrived (a loaded machine
        // delays, it does not lose on loopback), then only briefly for stragglers.
        let deadline = tokio::time::Instant::now() + WAIT;
        while received < 300 {
            let wait = if received >= 250 {
                tokio::time::Instant::now() + Duration::from_secs(1)
            } else {
                deadline
            };
            match tokio::time::timeout_at(wait, recv_from_ssrc(pb, *ssrc)).await {
                Ok(Some(p)) => {
                    assert_eq!(p.payload.to_vec(), vec![p.header.sequence_number as u8; 80]);
                    received += 1;
                }
                _ => break,
            }
        }
        assert!(
            received >= 250,
            "media kept flowing during the flood: {received}/300"
        );
    }
    flood.await.unwrap();
    let mut total = 0;
    for w in &workers {
        let d = w.with_engine(|e| e.drops).await.unwrap();
        total += d.unknown_protocol + d.bad_stun + d.unknown_tuple + d.unknown_ufrag;
    }
    assert!(total > 10_000, "garbage is dropped and counted: {total}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_from_a_lossy_consumer_is_repaired_with_rtx() {
    let w = spawn_worker(0);
    let router = create_router(&w).await;
    let (ta, da) = create_transport(&w, router).await;
    let (tb, db) = create_transport(&w, router).await;
    let pa = connect_engine_peer(Arc::clone(&w), ta, &da).await;
    let pb = connect_engine_peer(Arc::clone(&w), tb, &db).await;
    let video = produce(
        &w,
        ta,
        MediaKind::Video,
        vp8_producer_params(2222, 2223, "0"),
    )
    .await;
    let cv = consume(&w, tb, video).await;
    let enc = &cv["rtpParameters"]["encodings"][0];
    let ssrc = enc["ssrc"].as_u64().unwrap() as u32;
    let rtx_ssrc = enc["rtx"]["ssrc"].as_u64().expect("consumer has RTX") as u32;
    // The keyframe first, so the consumer starts; then 200 packets.
    let mut received = std::collections::BTreeMap::new();
    let mut dropped = Vec::new();
    let mut first_seq = None;
    for i in 0..200u16 {
        pa.send_rtp(&build_rtp(
            96,
            7000 + i,
            9000 * (i as u32 / 10),
            2222,
            i % 10 == 9,
            &[(4, b"0".to_vec())],
            &vp8_payload(i == 0, i as u8),
        ))
        .await;
        while let Ok(Some(raw)) =
            tokio::time::timeout(Duration::from_millis(3), pb.recv_rtp(WAIT)).await
        {
            let p = parse_rtp(&raw);
            if p.header.ssrc != ssrc {
                continue;
            }
            let seq = p.header.sequence_number;
            let first = *first_seq.get_or_insert(seq);
            // Induced loss on the way to the consumer: every 20th packet is "lost".
            if seq.wrapping_sub(first) % 20 == 19 {
                dropped.push(seq);
            } else {
                received.insert(seq, p.payload.to_vec());
            }
        }
    }
    // The rest of the 200 packets, however late (nothing is lost on loopback).
    while received.len() + dropped.len() < 200 {
        let Some(raw) = pb.recv_rtp(WAIT).await else {
            break;
        };
        let p = parse_rtp(&raw);
        if p.header.ssrc == ssrc {
            let seq = p.header.sequence_number;
            if seq.wrapping_sub(first_seq.unwrap()) % 20 == 19 {
                dropped.push(seq);
            } else {
                received.insert(seq, p.payload.to_vec());
            }
        }
    }
    assert!(dropped.len() >= 9, "loss was induced: {dropped:?}");
    // The consumer NACKs what it lost; the server answers with RTX from its store.
    let nack = {
        use webrtc::rtcp::transport_feedbacks::transport_layer_nack::{
            NackPair, TransportLayerNack,
        };
        use webrtc::util::Marshal;
        TransportLayerNack {
            sender_ssrc: 1,
            media_ssrc: ssrc,
            nacks: dropped
                .iter()
                .map(|s| NackPair {
                    packet_id: *s,
                    lost_packets: 0,
                })
                .collect(),
        }
        .marshal()
        .unwrap()
        .to_vec()
    };
    pb.send_rtcp(&nack).await;
    let mut repaired = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    while repaired < dropped.len() && tokio::time::Instant::now() < deadline {
        let Some(raw) = pb.recv_rtp(WAIT).await else {
            break;
        };
        let p = parse_rtp(&raw);
        if p.header.ssrc != rtx_ssrc {
            continue;
        }
        let osn = u16::from_be_bytes([p.payload[0], p.payload[1]]);
        assert!(
            dropped.contains(&osn),
            "RTX for a packet that was NACKed: {osn}"
        );
        received.insert(osn, p.payload[2..].to_vec());
        repaired += 1;
    }
    assert_eq!(
        repaired,
        dropped.len(),
        "every lost packet came back as RTX"
    );
    // The decoder now sees no gap: 200 consecutive sequence numbers with the original payloads.
    let first = first_seq.unwrap();
    for i in 0..200u16 {
        let p = received
            .get(&first.wrapping_add(i))
            .unwrap_or_else(|| panic!("gap at {i}"));
        assert_eq!(p, &vp8_payload(i == 0, i as u8));
    }
}
