//! Fuzzes the engine's demultiplexer and everything behind it: arbitrary datagrams arrive on the
//! shared WebRTC socket (STUN/DTLS/RTP/RTCP by first byte, unknown tuples) or on a plain
//! transport's socket (RTP/RTCP into a live producer with ten consumers). Nothing may panic.

#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use ringsfu_core::dtls::DtlsCertificate;
use ringsfu_core::engine::{ConsumeOptions, Engine, ListenInfo, PacketSource, ProduceOptions, WebRtcTransportOptions};
use ringsfu_core::rtp_parameters::{MediaKind, RtpCodecCapability};
use ringsfu_core::tuple::{Protocol, TransportTuple};
use serde_json::{json, Value};

fn cert() -> &'static DtlsCertificate {
    static CERT: OnceLock<DtlsCertificate> = OnceLock::new();
    CERT.get_or_init(|| DtlsCertificate::generate().unwrap())
}

fn engine() -> Engine {
    let udp: SocketAddr = "127.0.0.1:44444".parse().unwrap();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let mut e = Engine::new(0, ListenInfo { udp: Some((0, udp)), tcp: None, announced_address: None }, cert().clone(), tx);
    let codecs: Vec<RtpCodecCapability> = serde_json::from_value(json!([
        {"kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2},
        {"kind": "video", "mimeType": "video/VP8", "clockRate": 90000}
    ]))
    .unwrap();
    let router = e.create_router(&codecs, Value::Null).unwrap();
    e.create_webrtc_transport(&router, WebRtcTransportOptions::default()).unwrap();
    let plain = e
        .create_plain_transport(&router, (1, "127.0.0.1:40000".parse().unwrap()), None, true, false, None, Value::Null)
        .unwrap();
    let plain: uuid::Uuid = plain["id"].as_str().unwrap().parse().unwrap();
    let params = serde_json::from_value(json!({
        "codecs": [{"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000,
                    "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"}]}],
        "encodings": [{"ssrc": 2222}]
    }))
    .unwrap();
    let p = e.produce(&plain, ProduceOptions { kind: MediaKind::Video, rtp_parameters: params, paused: false, app_data: Value::Null }).unwrap();
    let producer = p["id"].as_str().unwrap().parse().unwrap();
    let caps = e.router_rtp_capabilities(&router).unwrap().clone();
    for i in 0..10u16 {
        let d = e
            .create_plain_transport(&router, (2 + i, "127.0.0.1:40002".parse().unwrap()), None, false, false, None, Value::Null)
            .unwrap();
        let t: uuid::Uuid = d["id"].as_str().unwrap().parse().unwrap();
        e.connect_plain_transport(&t, &json!({"ip": "127.0.0.1", "port": 50000 + i})).unwrap();
        e.consume(&t, ConsumeOptions { producer_id: producer, rtp_capabilities: caps.clone(), paused: false, enable_rtx: false, app_data: Value::Null }).unwrap();
    }
    e
}

fuzz_target!(|data: &[u8]| {
    thread_local! { static ENGINE: std::cell::RefCell<Engine> = std::cell::RefCell::new(engine()); }
    let Some((&selector, datagram)) = data.split_first() else { return };
    let socket = if selector & 1 == 0 { 0 } else { 1 };
    let remote: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 5000 + (selector as u16 >> 1)));
    let mut buf: Box<[u8]> = vec![0u8; ringsfu_core::io::PACKET_BUF_SIZE].into_boxed_slice();
    let n = datagram.len().min(buf.len());
    buf[..n].copy_from_slice(&datagram[..n]);
    ENGINE.with(|e| {
        let mut e = e.borrow_mut();
        let src = PacketSource {
            socket,
            tcp_conn: None,
            tuple: TransportTuple { local: "127.0.0.1:44444".parse().unwrap(), remote, protocol: Protocol::Udp },
        };
        e.handle_packet(src, &mut buf, n, Instant::now());
        e.handle_timeout(Instant::now());
        e.tx.clear();
        while e.poll_event().is_some() {}
    });
});
