//! PlainTransport producers fed from a UDP socket in the test (plain RTP, and SRTP with SDES keys
//! encrypted by webrtc-srtp) reach a WebRTC consumer; an H264 stream is forwarded from its keyframe.

use std::time::Instant;
#[path = "common/backend.rs"]
mod backend;
mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ringsfu_core::dtls::DtlsCertificate;
use ringsfu_core::engine::{ConsumeOptions, ProduceOptions, WebRtcTransportOptions};
use ringsfu_core::rtp_parameters::{MediaKind, RtpCapabilities};
use ringsfu_core::worker::{Worker, WorkerSettings};
use serde_json::{json, Value};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);

fn spawn_worker() -> Arc<Worker> {
    let worker = Arc::new(
        Worker::spawn(WorkerSettings {
            index: 0,
            pin_core: None,
            listen_ip: IpAddr::from([127, 0, 0, 1]),
            announced_address: None,
            udp_port: Some(0),
            tcp_port: None,
            rtc_port_range: (41000, 41999),
            backend: backend::requested_backend(),
            cert: DtlsCertificate::generate().unwrap(),
        })
        .unwrap(),
    );
    // The backend asked for is the one running (io_uring falls back only where refused).
    backend::assert_backend_used(worker.backend());
    worker
}

struct Setup {
    worker: Arc<Worker>,
    plain: Uuid,
    plain_data: Value,
    consumer_peer: TestPeer,
    webrtc: Uuid,
    router: Uuid,
}

async fn setup(enable_srtp: bool) -> Setup {
    let worker = spawn_worker();
    let router = worker
        .with_engine(|e| e.create_router(&demo_media_codecs(), Instant::now()))
        .await
        .unwrap()
        .unwrap();
    let plain_data = worker
        .run(move |ctx| {
            let sock = ctx.bind_rtc_port().unwrap();
            ctx.with_engine(|e| {
                e.create_plain_transport(
                    &router,
                    sock,
                    None,
                    true,
                    enable_srtp,
                    Some("AES_CM_128_HMAC_SHA1_80"),
                    Instant::now(),
                )
                .map(|v| serde_json::to_value(v).unwrap())
            })
        })
        .await
        .unwrap()
        .unwrap();
    let plain: Uuid = plain_data["id"].as_str().unwrap().parse().unwrap();
    let data = worker
        .with_engine(move |e| {
            e.create_webrtc_transport(&router, WebRtcTransportOptions::default(), Instant::now())
                .map(|v| serde_json::to_value(v).unwrap())
        })
        .await
        .unwrap()
        .unwrap();
    let webrtc: Uuid = data["id"].as_str().unwrap().parse().unwrap();
    let consumer_peer = connect_engine_peer(Arc::clone(&worker), webrtc, &data).await;
    Setup {
        worker,
        plain,
        plain_data,
        consumer_peer,
        webrtc,
        router,
    }
}

async fn produce_and_consume(s: &Setup, kind: MediaKind, params: Value) -> Value {
    let plain = s.plain;
    let webrtc = s.webrtc;
    let rtp_parameters = serde_json::from_value(params).unwrap();
    let p = s
        .worker
        .with_engine(move |e| {
            e.produce(
                &plain,
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
    let producer: Uuid = p["id"].as_str().unwrap().parse().unwrap();
    let caps: RtpCapabilities = serde_json::from_value(chrome_rtp_capabilities()).unwrap();
    s.worker
        .with_engine(move |e| {
            e.consume(
                &webrtc,
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

/// ffmpeg-style opus: PT 100, SSRC 1111, no header extensions (the broadcaster flow).
fn broadcaster_opus() -> Value {
    json!({
        "codecs": [{"mimeType": "audio/opus", "payloadType": 100, "clockRate": 48000, "channels": 2,
                    "parameters": {"sprop-stereo": 1}}],
        "encodings": [{"ssrc": 1111}]
    })
}

async fn expect_forwarded(
    s: &Setup,
    ssrc: u32,
    send: impl Fn(u16) -> Vec<u8>,
    to: std::net::SocketAddr,
) {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for seq in 0..300u16 {
        sock.send_to(&send(seq), to).await.unwrap();
        if seq % 10 == 9 {
            if let Ok(Some(raw)) =
                tokio::time::timeout(Duration::from_millis(300), s.consumer_peer.recv_rtp(WAIT))
                    .await
            {
                let p = parse_rtp(&raw);
                assert_eq!(p.header.ssrc, ssrc);
                let seq_in = p.header.sequence_number;
                assert_eq!(
                    p.payload.to_vec(),
                    vec![seq_in as u8; 120],
                    "payload intact"
                );
                return;
            }
        }
    }
    panic!("nothing forwarded from the plain transport");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_rtp_producer_reaches_webrtc_consumer_with_comedia() {
    let s = setup(false).await;
    let c = produce_and_consume(&s, MediaKind::Audio, broadcaster_opus()).await;
    let ssrc = c["rtpParameters"]["encodings"][0]["ssrc"].as_u64().unwrap() as u32;
    let port = s.plain_data["tuple"]["localPort"].as_u64().unwrap() as u16;
    let to = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    expect_forwarded(
        &s,
        ssrc,
        |seq| {
            build_rtp(
                100,
                seq,
                960 * seq as u32,
                1111,
                false,
                &[],
                &[seq as u8; 120],
            )
        },
        to,
    )
    .await;
    // comedia latched the sender's address: the transport reports it.
    let plain = s.plain;
    let dump = s
        .worker
        .with_engine(move |e| {
            e.transport_dump(&plain)
                .map(|v| serde_json::to_value(v).unwrap())
                .unwrap()
        })
        .await
        .unwrap();
    assert_eq!(dump["tuple"]["remoteIp"], "127.0.0.1");
    let _ = s.router;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_srtp_producer_with_sdes_keys_reaches_webrtc_consumer() {
    let s = setup(true).await;
    // The sender's own key, given to the transport with connect().
    let key: Vec<u8> = (0..30u8)
        .map(|i| i.wrapping_mul(7).wrapping_add(3))
        .collect();
    let plain = s.plain;
    let key_b64 = ringsfu_core::engine::base64_encode(&key);
    s.worker
        .with_engine(move |e| {
            e.connect_plain_transport(
                &plain,
                &serde_json::from_value(serde_json::Value::clone(&json!({"srtpParameters": {
                "cryptoSuite": "AES_CM_128_HMAC_SHA1_80", "keyBase64": key_b64}})))
                .unwrap(),
                Instant::now(),
            )
            .map(|v| serde_json::to_value(v).unwrap())
        })
        .await
        .unwrap()
        .unwrap();
    assert!(
        s.plain_data["srtpParameters"]["keyBase64"].is_string(),
        "server announces its own key"
    );
    let c = produce_and_consume(&s, MediaKind::Audio, broadcaster_opus()).await;
    let ssrc = c["rtpParameters"]["encodings"][0]["ssrc"].as_u64().unwrap() as u32;
    let port = s.plain_data["tuple"]["localPort"].as_u64().unwrap() as u16;
    let to = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let ctx = std::sync::Mutex::new(
        webrtc::srtp::context::Context::new(
            &key[..16],
            &key[16..],
            webrtc::srtp::protection_profile::ProtectionProfile::Aes128CmHmacSha1_80,
            None,
            None,
        )
        .unwrap(),
    );
    expect_forwarded(
        &s,
        ssrc,
        |seq| {
            let plain = build_rtp(
                100,
                seq,
                960 * seq as u32,
                1111,
                false,
                &[],
                &[seq as u8; 120],
            );
            ctx.lock().unwrap().encrypt_rtp(&plain).unwrap().to_vec()
        },
        to,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_is_forwarded_from_its_keyframe() {
    let s = setup(false).await;
    let c = produce_and_consume(&s, MediaKind::Video, h264_producer_params(3333, "0")).await;
    let ssrc = c["rtpParameters"]["encodings"][0]["ssrc"].as_u64().unwrap() as u32;
    assert_eq!(c["rtpParameters"]["codecs"][0]["mimeType"], "video/H264");
    let port = s.plain_data["tuple"]["localPort"].as_u64().unwrap() as u16;
    let to = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Non-IDR slices (NAL type 1) first: held back. Then an IDR (type 5) and what follows.
    for seq in 0..5u16 {
        let mut payload = vec![0x41u8];
        payload.extend([seq as u8; 50]);
        sock.send_to(
            &build_rtp(102, seq, 3000 * seq as u32, 3333, true, &[], &payload),
            to,
        )
        .await
        .unwrap();
    }
    let mut idr = vec![0x65u8];
    idr.extend([9u8; 50]);
    sock.send_to(&build_rtp(102, 5, 15000, 3333, true, &[], &idr), to)
        .await
        .unwrap();
    let first = tokio::time::timeout(WAIT, s.consumer_peer.recv_rtp(WAIT))
        .await
        .unwrap()
        .unwrap();
    let p = parse_rtp(&first);
    assert_eq!(p.header.ssrc, ssrc);
    assert_eq!(p.payload.to_vec(), idr, "the IDR comes first");
}
