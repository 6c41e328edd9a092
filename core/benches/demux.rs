//! Cost of the demultiplexer on the shared port as the number of transports grows: a datagram from
//! an unknown source (the spray case), a STUN check with an unknown ufrag, and a STUN check for a
//! real transport, with 10 and 10,000 WebRtcTransports on the worker.

use std::net::SocketAddr;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ringsfu_core::dtls::DtlsCertificate;
use ringsfu_core::engine::{Engine, ListenInfo, PacketSource, WebRtcTransportOptions};
use ringsfu_core::rtp_parameters::RtpCodecCapability;
use ringsfu_core::stun::BindingRequest;
use ringsfu_core::tuple::{Protocol, TransportTuple};
use serde_json::{json, Value};

fn engine(transports: usize) -> (Engine, String, String) {
    let udp: SocketAddr = "127.0.0.1:44444".parse().unwrap();
    let mut e = Engine::new(
        0,
        ListenInfo {
            udp: Some((0, udp)),
            tcp: None,
            announced_address: None,
        },
        DtlsCertificate::generate().unwrap(),
        Instant::now(),
        std::time::SystemTime::now(),
        [7; 32],
    );
    let codecs: Vec<RtpCodecCapability> = serde_json::from_value(
        json!([{"kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2}]),
    )
    .unwrap();
    let router = e.create_router(&codecs, Instant::now()).unwrap();
    let mut last = Value::Null;
    for _ in 0..transports {
        last = e
            .create_webrtc_transport(&router, WebRtcTransportOptions::default(), Instant::now())
            .map(|v| serde_json::to_value(v).unwrap())
            .unwrap();
    }
    let ufrag = last["iceParameters"]["usernameFragment"]
        .as_str()
        .unwrap()
        .to_string();
    let pwd = last["iceParameters"]["password"]
        .as_str()
        .unwrap()
        .to_string();
    (e, ufrag, pwd)
}

fn src(port: u16) -> PacketSource {
    PacketSource {
        socket: 0,
        tcp_conn: None,
        tuple: TransportTuple {
            local: "127.0.0.1:44444".parse().unwrap(),
            remote: SocketAddr::from(([127, 0, 0, 1], port)),
            protocol: Protocol::Udp,
        },
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("demux");
    for n in [10usize, 10_000] {
        let (mut e, ufrag, pwd) = engine(n);
        let mut buf: Box<[u8]> = vec![0u8; 2048].into_boxed_slice();
        // An SRTP-looking datagram from a source no transport owns.
        g.bench_with_input(BenchmarkId::new("unknown_source_rtp", n), &n, |b, _| {
            b.iter(|| {
                buf[0] = 0x80;
                buf[1] = 0x60;
                e.handle_packet(src(9999), &mut buf, 200, Instant::now());
            })
        });
        let mut stun = [0u8; 256];
        let user_bad = format!("nosuchufrag:{}", "x");
        let len = BindingRequest::new([7; 12], &user_bad, b"pw")
            .write(&mut stun)
            .unwrap();
        g.bench_with_input(BenchmarkId::new("stun_unknown_ufrag", n), &n, |b, _| {
            b.iter(|| {
                buf[..len].copy_from_slice(&stun[..len]);
                e.handle_packet(src(9998), &mut buf, len, Instant::now());
            })
        });
        let user = format!("{ufrag}:remote");
        let mut req = BindingRequest::new([9; 12], &user, pwd.as_bytes());
        req.priority = Some(1);
        req.role = Some(ringsfu_core::stun::IceRole::Controlling(5));
        let len = req.write(&mut stun).unwrap();
        g.bench_with_input(BenchmarkId::new("stun_valid_check", n), &n, |b, _| {
            b.iter(|| {
                buf[..len].copy_from_slice(&stun[..len]);
                e.handle_packet(src(9997), &mut buf, len, Instant::now());
                e.tx.clear();
                while e.poll_event().is_some() {}
            })
        });
        assert!(
            e.drops.unknown_tuple > 0 && e.drops.unknown_ufrag > 0,
            "{:?}",
            e.drops
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
