//! The bodies of the fuzz targets, shared by the libFuzzer binaries (`fuzz_targets/*.rs`) and
//! by the workspace test `tests/fuzz_replay.rs`, which replays the committed corpora and a
//! short blind mutation run through the same functions in `./test.sh`.
//!
//! Every target: no panic (and no arithmetic overflow: the fuzz builds enable overflow checks)
//! on any input, plus the properties named on each function.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ringsfu_core::data_channel::{DataChannelOpen, DcepMessage};
use ringsfu_core::dtls::DtlsCertificate;
use ringsfu_core::engine::{
    ConsumeOptions, Engine, ListenInfo, PacketSource, ProduceOptions, WebRtcTransportOptions,
};
use ringsfu_core::ice::IceServer;
use ringsfu_core::rtp_parameters::{MediaKind, RtpCodecCapability};
use ringsfu_core::sctp::{set_packet_checksum, validate_packet, SctpAssociation, SctpConfig};
use ringsfu_core::stun::{attr, StunMessage};
use ringsfu_core::tuple::{Protocol, TransportTuple};
use serde_json::json;

/// A target's entry point.
pub type Target = fn(&[u8]);

/// The targets by name, for the replay test.
pub const TARGETS: &[(&str, Target)] = &[
    ("stun_parse", stun_parse),
    ("demux", demux),
    ("sctp_parse", sctp_parse),
    ("rtp_parse", rtp_parse),
    ("rtcp_parse", rtcp_parse),
    ("dcep_parse", dcep_parse),
    ("protoo_frame", protoo_frame),
    ("http_request", http_request),
    ("turn_server", turn_server),
    ("sdp_parse", sdp_parse),
    ("engineio_payload", engineio_payload),
];

/// STUN parser and the ICE-lite server: a message that parses can be fed to
/// `IceServer::handle_stun`, and any response it writes parses back with a valid FINGERPRINT.
pub fn stun_parse(data: &[u8]) {
    let Ok(msg) = StunMessage::parse(data) else {
        return;
    };
    let _ = (
        msg.username_fragments(),
        msg.software(),
        msg.priority(),
        msg.use_candidate(),
        msg.ice_controlling(),
        msg.ice_controlled(),
        msg.nomination(),
        msg.xor_mapped_address(),
        msg.error_code(),
        msg.attribute(attr::NONCE),
        msg.verify_integrity(b"password"),
        msg.verify_fingerprint(),
    );

    let mut ice = IceServer::new("ufrag".into(), "password".into(), Duration::from_secs(30));
    let tuple = TransportTuple {
        local: "127.0.0.1:40000".parse().unwrap(),
        remote: "[::1]:5000".parse().unwrap(),
        protocol: Protocol::Udp,
    };
    let mut out = [0u8; 256];
    let outcome = ice.handle_stun(&msg, tuple, Instant::now(), &mut out);
    if let Some(n) = outcome.response_len {
        let resp = StunMessage::parse(&out[..n]).expect("our responses parse");
        assert!(resp.verify_fingerprint());
        assert_eq!(resp.transaction_id(), msg.transaction_id());
    }
}

fn cert() -> &'static DtlsCertificate {
    static CERT: OnceLock<DtlsCertificate> = OnceLock::new();
    CERT.get_or_init(|| DtlsCertificate::generate().unwrap())
}

fn engine() -> Engine {
    let udp: SocketAddr = "127.0.0.1:44444".parse().unwrap();
    let mut e = Engine::new(
        0,
        ListenInfo {
            udp: Some((0, udp)),
            tcp: None,
            announced_address: None,
        },
        cert().clone(),
        Instant::now(),
        std::time::SystemTime::now(),
        [7; 32],
    );
    let codecs: Vec<RtpCodecCapability> = serde_json::from_value(json!([
        {"kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2},
        {"kind": "video", "mimeType": "video/VP8", "clockRate": 90000}
    ]))
    .unwrap();
    let router = e.create_router(&codecs, Instant::now()).unwrap();
    e.create_webrtc_transport(&router, WebRtcTransportOptions::default(), Instant::now())
        .map(|v| serde_json::to_value(v).unwrap())
        .unwrap();
    let plain = e
        .create_plain_transport(
            &router,
            (1, "127.0.0.1:40000".parse().unwrap()),
            None,
            true,
            false,
            None,
            Instant::now(),
        )
        .map(|v| serde_json::to_value(v).unwrap())
        .unwrap();
    let plain: uuid::Uuid = plain["id"].as_str().unwrap().parse().unwrap();
    let params = serde_json::from_value(json!({
        "codecs": [{"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000,
                    "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"}]}],
        "encodings": [{"ssrc": 2222}]
    }))
    .unwrap();
    let p = e
        .produce(
            &plain,
            ProduceOptions {
                kind: MediaKind::Video,
                rtp_parameters: params,
                paused: false,
            },
            Instant::now(),
        )
        .map(|v| serde_json::to_value(v).unwrap())
        .unwrap();
    let producer = p["id"].as_str().unwrap().parse().unwrap();
    let caps = e.router_rtp_capabilities(&router).unwrap().clone();
    for i in 0..10u16 {
        let d = e
            .create_plain_transport(
                &router,
                (2 + i, "127.0.0.1:40002".parse().unwrap()),
                None,
                false,
                false,
                None,
                Instant::now(),
            )
            .map(|v| serde_json::to_value(v).unwrap())
            .unwrap();
        let t: uuid::Uuid = d["id"].as_str().unwrap().parse().unwrap();
        e.connect_plain_transport(
            &t,
            &serde_json::from_value(serde_json::Value::clone(
                &json!({"ip": "127.0.0.1", "port": 50000 + i}),
            ))
            .unwrap(),
            Instant::now(),
        )
        .map(|v| serde_json::to_value(v).unwrap())
        .unwrap();
        e.consume(
            &t,
            ConsumeOptions {
                producer_id: producer,
                rtp_capabilities: caps.clone(),
                paused: false,
                enable_rtx: false,
            },
            Instant::now(),
        )
        .map(|v| serde_json::to_value(v).unwrap())
        .unwrap();
    }
    e
}

/// The engine's shared-port demultiplexer and everything behind it: arbitrary datagrams on the
/// shared WebRTC socket (STUN/DTLS/RTP/RTCP by first byte, unknown tuples) or on a plain
/// transport's socket (RTP/RTCP into a live producer with ten consumers).
pub fn demux(data: &[u8]) {
    thread_local! { static ENGINE: std::cell::RefCell<Engine> = std::cell::RefCell::new(engine()); }
    let Some((&selector, datagram)) = data.split_first() else {
        return;
    };
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
            tuple: TransportTuple {
                local: "127.0.0.1:44444".parse().unwrap(),
                remote,
                protocol: Protocol::Udp,
            },
        };
        e.handle_packet(src, &mut buf, n, Instant::now());
        e.handle_timeout(Instant::now(), std::time::SystemTime::now());
        e.tx.clear();
        while e.poll_event().is_some() {}
    });
}

/// A client and server association after the handshake, plus the tag the server expects.
fn established(now: Instant) -> (SctpAssociation, [u8; 4]) {
    let mut c = SctpAssociation::new(SctpConfig::default(), now);
    let mut s = SctpAssociation::new(SctpConfig::default(), now);
    c.connect(now).expect("fresh association connects");
    let mut tag = [0u8; 4];
    for _ in 0..8 {
        while let Some(p) = c.poll_transmit(now) {
            if p[4..8] != [0; 4] {
                tag.copy_from_slice(&p[4..8]);
            }
            s.handle_input(now, &p);
        }
        while let Some(p) = s.poll_transmit(now) {
            c.handle_input(now, &p);
        }
    }
    (s, tag)
}

/// SCTP input and DCEP: the first byte picks a passive association fed the raw bytes (even) or
/// an established one fed them with the tag and checksum fixed (odd); a DCEP OPEN that parses
/// re-encodes to an equal OPEN.
pub fn sctp_parse(data: &[u8]) {
    if let Ok(DcepMessage::Open(open)) = DcepMessage::parse(data) {
        let mut out = Vec::new();
        open.encode(&mut out).expect("parsed lengths fit");
        assert_eq!(DataChannelOpen::parse(&out), Ok(open));
    }
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    if mode % 2 == 0 {
        let _ = validate_packet(rest);
        let mut a = SctpAssociation::new(SctpConfig::default(), now);
        a.handle_input(now, rest);
        while a.poll_transmit(now).is_some() {}
        return;
    }
    let (mut s, tag) = established(now);
    let mut pkt = rest.to_vec();
    if pkt.len() >= 12 {
        pkt[4..8].copy_from_slice(&tag);
        set_packet_checksum(&mut pkt);
    }
    s.handle_input(now, &pkt);
    while s.poll_event().is_some() {}
    let later = now + Duration::from_secs(5);
    while s.poll_transmit(later).is_some() {}
    s.handle_timeout(later);
    while s.poll_transmit(later).is_some() {}
}

/// RTP header parsing, extension iteration, the per-consumer rewrite and RTX decapsulation:
/// a packet that parses can be forwarded (extension ids remapped from the first input byte,
/// a MID added, optionally as RTX), and the forwarded packet parses back with the rewritten
/// fields and the same payload (RTX: the OSN prepended).
pub fn rtp_parse(data: &[u8]) {
    use ringsfu_core::rtp::{self, Rewrite, RtpHeader};
    let Some((&ctl, pkt)) = data.split_first() else {
        return;
    };
    let Ok(hdr) = RtpHeader::parse(pkt) else {
        return;
    };
    for i in 0..usize::from(hdr.csrc_count) + 1 {
        let _ = hdr.csrc(pkt, i);
    }
    let payload = hdr.payload(pkt);
    let mut ids = 0usize;
    for (id, v) in hdr.extensions(pkt) {
        ids += usize::from(id) + v.len();
        let _ = rtp::find_extension(pkt, &hdr, id);
    }
    std::hint::black_box(ids);
    let mut ext_map = [0u8; 256];
    for (i, slot) in ext_map.iter_mut().enumerate().skip(1) {
        // Keep, move or drop extensions depending on the control byte.
        *slot = match ctl & 3 {
            0 => i as u8,
            1 => 0,
            2 => ((i * 7) % 255) as u8,
            _ => (i as u8) ^ ctl,
        };
    }
    let mid = [b'0' + (ctl % 10)];
    let extra = [(3u8, &[0u8, 0][..])];
    let rw = Rewrite {
        ssrc: 0x1234_5678,
        payload_type: ctl & 0x7f,
        sequence: u16::from(ctl) * 257,
        timestamp: 90_000,
        ext_map: &ext_map,
        mid: (ctl & 4 != 0).then_some((1u8, &mid[..])),
        extra: if ctl & 8 != 0 { &extra[..] } else { &[] },
        rtx_osn: (ctl & 16 != 0).then_some(hdr.sequence),
    };
    let mut dst = vec![0u8; pkt.len() + 600];
    if let Ok(n) = rtp::write_forwarded(pkt, &hdr, &mut dst, &rw) {
        let out = &dst[..n];
        let h2 = RtpHeader::parse(out).expect("a forwarded packet parses");
        assert_eq!(h2.ssrc, rw.ssrc);
        assert_eq!(h2.sequence, rw.sequence);
        assert_eq!(h2.payload_type, rw.payload_type);
        let p2 = h2.payload(out);
        match rw.rtx_osn {
            Some(osn) => {
                assert_eq!(&p2[..2], &osn.to_be_bytes());
                assert_eq!(&p2[2..], payload);
            }
            None => assert_eq!(p2, payload),
        }
        if let Some((id, v)) = rw.mid {
            assert_eq!(rtp::find_extension(out, &h2, id), Some(v));
        }
    }
    let mut buf = pkt.to_vec();
    let len = buf.len();
    if let Ok((n, osn)) = rtp::rtx_decapsulate_in_place(&mut buf, len, &hdr, 96) {
        let h3 = RtpHeader::parse(&buf[..n]).expect("a decapsulated packet parses");
        assert_eq!(h3.sequence, osn);
        assert_eq!(h3.payload_type, 96);
    }
    let mut m = pkt.to_vec();
    let _ = rtp::set_ssrc(&mut m, 7);
    let _ = rtp::set_marker(&mut m, true);
    if let Some(v) = rtp::find_extension_mut(&mut m, &hdr, 1) {
        v.fill(0);
    }
}

/// RTCP compound parsing and every accessor the engine reads; feedback SSRC rewriting.
pub fn rtcp_parse(data: &[u8]) {
    use ringsfu_core::rtcp::{self, RtcpIter, RtcpPacket};
    let _ = rtcp::is_rtcp(data);
    let mut it = RtcpIter::new(data);
    let mut n = 0u64;
    let mut ranges = Vec::new();
    while let Some(p) = it.next() {
        let r = it.last_range();
        assert!(r.end <= data.len());
        ranges.push(r);
        let Ok(p) = p else { continue };
        match p {
            RtcpPacket::SenderReport { info, reports } => {
                n = n.wrapping_add(u64::from(info.ntp_middle()));
                for b in reports {
                    n = n.wrapping_add(u64::from(b.ssrc));
                }
            }
            RtcpPacket::ReceiverReport { reports, .. } => {
                n = n.wrapping_add(reports.count() as u64)
            }
            RtcpPacket::Sdes { chunks, .. } => {
                if let Some((ssrc, cname)) = rtcp::sdes_cname(chunks) {
                    n = n.wrapping_add(u64::from(ssrc) + cname.len() as u64);
                }
            }
            RtcpPacket::Bye { ssrcs } => n = n.wrapping_add(ssrcs.count() as u64),
            RtcpPacket::Nack { items, .. } => {
                for item in items {
                    n = n.wrapping_add(item.lost_seqs().count() as u64);
                }
            }
            RtcpPacket::Fir { entries, .. } => n = n.wrapping_add(entries.count() as u64),
            RtcpPacket::Remb {
                bitrate_bps, ssrcs, ..
            } => {
                n = n
                    .wrapping_add(bitrate_bps)
                    .wrapping_add(ssrcs.count() as u64)
            }
            RtcpPacket::Pli { .. } | RtcpPacket::TransportCc { .. } | RtcpPacket::Other { .. } => {}
        }
    }
    std::hint::black_box(n);
    let mut m = data.to_vec();
    for r in ranges {
        let _ = rtcp::rewrite_feedback_ssrcs(&mut m[r], 10, 20);
    }
}

/// DCEP (RFC 8832): an OPEN that parses re-encodes to an equal OPEN.
pub fn dcep_parse(data: &[u8]) {
    if let Ok(DcepMessage::Open(open)) = DcepMessage::parse(data) {
        let mut out = Vec::new();
        open.encode(&mut out).expect("parsed lengths fit");
        assert_eq!(DataChannelOpen::parse(&out), Ok(open));
    }
}

/// protoo frames (what a WebSocket peer sends): parsing never panics, and a message that
/// parses survives its own encoding.
pub fn protoo_frame(data: &[u8]) {
    use ringsfu_plugins::message::{self, ProtooMessage};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = message::parse(text) {
        let again = match &m {
            ProtooMessage::Request { id, method, data } => message::parse(
                &json!({"request": true, "id": id, "method": method, "data": data}).to_string(),
            ),
            ProtooMessage::Notification { method, data } => message::parse(
                &json!({"notification": true, "method": method, "data": data}).to_string(),
            ),
            ProtooMessage::Response { .. } => return,
        };
        // serde_json's float parsing is not an exact round trip (1 ulp), so compare the
        // message's shape: kind, id, method, and the data re-encoded once more.
        let again = again.expect("a parsed message re-parses from its own encoding");
        match (&m, &again) {
            (
                ProtooMessage::Request { id, method, .. },
                ProtooMessage::Request {
                    id: id2,
                    method: method2,
                    ..
                },
            ) => assert!(id == id2 && method == method2),
            (
                ProtooMessage::Notification { method, .. },
                ProtooMessage::Notification {
                    method: method2, ..
                },
            ) => assert_eq!(method, method2),
            _ => panic!("kind changed: {m:?} → {again:?}"),
        }
    }
}

/// HTTP request parts as the plugin parses them before any handler: the request target (path
/// segments, percent-decoded; query, form-decoded), the JSON body, and the Origin check
/// against the Host header and a configured list. The first byte splits the input.
pub fn http_request(data: &[u8]) {
    use ringsfu_plugins::fuzzing;
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let cut = (usize::from(split) * rest.len()) / 256;
    let (target, body) = rest.split_at(cut);
    let target = String::from_utf8_lossy(target);
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (&*target, None),
    };
    let segments = fuzzing::path_segments(path);
    assert!(segments.iter().all(|s| !s.is_empty()));
    let _ = fuzzing::parse_query(query);
    let _ = fuzzing::parse_json_body(body);
    // Origin/Host from the body bytes' halves.
    let text = String::from_utf8_lossy(body);
    let mid = (0..=text.len() / 2)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let (origin, host) = text.split_at(mid);
    let _ = fuzzing::origin_allowed(
        origin,
        host,
        split & 1 == 1,
        &["http://127.0.0.1:*", "https://app.example"],
    );
}

/// Relay ports for the TURN target: a few loopback addresses, then none (allocation fails).
struct FuzzRelays {
    next: u16,
}

impl ringsfu_core::turn::RelayPorts for FuzzRelays {
    fn bind(&mut self) -> Option<SocketAddr> {
        if self.next >= 40_008 {
            return None;
        }
        self.next += 1;
        Some(SocketAddr::from(([127, 0, 0, 1], self.next)))
    }
    fn release(&mut self, _relay: SocketAddr) {}
}

/// The TURN server (RFC 8656, core/src/turn) driven by a script of operations decoded from the
/// input: raw client datagrams (STUN or ChannelData, over UDP or TCP), requests the harness
/// signs with a valid long-term credential (so Allocate, Refresh, CreatePermission,
/// ChannelBind and Send get past authentication with fuzzed attributes), datagrams from peers
/// on the relay addresses, clock steps with expiry, and clients going away. Properties: every
/// STUN answer parses and carries the request's transaction id; a relayed payload lies within
/// the input; answers fit the output buffer.
pub fn turn_server(data: &[u8]) {
    use ringsfu_core::stun::{Class, StunWriter};
    use ringsfu_core::turn::{
        long_term_key, method, Action, Client, Clock, Transport, TurnConfig, TurnServer,
    };
    let t0 = Instant::now();
    let mut config = TurnConfig::default();
    config.users.insert("alice".into(), "secret".into());
    config.secret = Some("shared".into());
    config.allow_loopback_peers = true;
    config.user_quota = 3;
    config.total_quota = 5;
    config.max_bps = 100_000;
    let mut server = TurnServer::new(config, [7; 16]);
    let mut relays = FuzzRelays { next: 40_000 };
    let mut clock = Clock {
        now: t0,
        unix: 1_800_000_000,
    };
    let mut out = vec![0u8; 65_536];
    let clients = [
        Client {
            transport: Transport::Udp,
            addr: SocketAddr::from(([192, 0, 2, 1], 5000)),
        },
        Client {
            transport: Transport::Tcp,
            addr: SocketAddr::from(([192, 0, 2, 2], 5001)),
        },
    ];
    let key = long_term_key("alice", "ringsfu", "secret");
    // A nonce, from the challenge to an unauthenticated Allocate.
    let mut req = [0u8; 64];
    let n = StunWriter::new(&mut req, Class::Request, method::ALLOCATE, &[1; 12])
        .unwrap()
        .finish();
    let nonce = match server.handle_client(clock, clients[0], &req[..n], &mut relays, &mut out) {
        Action::Reply { len, .. } => StunMessage::parse(&out[..len])
            .ok()
            .and_then(|m| m.attribute(attr::NONCE).map(<[u8]>::to_vec))
            .expect("the challenge carries a NONCE"),
        other => panic!("no challenge: {other:?}"),
    };

    let check = |action: &Action, input: &[u8], out: &[u8], txid: Option<&[u8; 12]>| match action {
        Action::None => {}
        Action::Reply { len, .. } => {
            assert!(*len <= out.len());
            let reply = &out[..*len];
            if reply.first().is_some_and(|b| *b < 4) {
                let m = StunMessage::parse(reply).expect("our STUN answers parse");
                if let Some(t) = txid {
                    if m.class() != Class::Indication {
                        assert_eq!(m.transaction_id(), t);
                    }
                }
            }
        }
        Action::Relay { range, .. } => {
            assert!(range.start <= range.end && range.end <= input.len());
        }
    };

    let mut rest = data;
    let mut txn = 0u32;
    while let Some((&op, r)) = rest.split_first() {
        let Some((&len, r)) = r.split_first() else {
            break;
        };
        let (chunk, r) = r.split_at(usize::from(len).min(r.len()));
        rest = r;
        let client = clients[usize::from(op >> 7)];
        match op & 7 {
            // A raw datagram (STUN or ChannelData) from a client.
            0 | 1 => {
                let a = server.handle_client(clock, client, chunk, &mut relays, &mut out);
                let txid = StunMessage::parse(chunk).ok().map(|m| *m.transaction_id());
                check(&a, chunk, &out, txid.as_ref());
            }
            // A signed request: method selector, then attributes as (type u16, len u8, value).
            2 | 3 => {
                let Some((&sel, mut attrs)) = chunk.split_first() else {
                    continue;
                };
                const METHODS: [u16; 6] = [
                    method::ALLOCATE,
                    method::REFRESH,
                    method::CREATE_PERMISSION,
                    method::CHANNEL_BIND,
                    method::BINDING,
                    method::SEND,
                ];
                let m = METHODS[usize::from(sel) % METHODS.len()];
                let class = if m == method::SEND {
                    Class::Indication
                } else {
                    Class::Request
                };
                txn += 1;
                let mut txid = [0u8; 12];
                txid[..4].copy_from_slice(&txn.to_be_bytes());
                let mut buf = [0u8; 1400];
                let mut w = StunWriter::new(&mut buf, class, m, &txid).unwrap();
                while attrs.len() >= 3 {
                    let t = u16::from_be_bytes([attrs[0], attrs[1]]);
                    let l = usize::from(attrs[2]).min(attrs.len() - 3);
                    if w.attribute(t, &attrs[3..3 + l]).is_err() {
                        break;
                    }
                    attrs = &attrs[3 + l..];
                }
                let signed = sel & 0x80 == 0;
                if signed
                    && (w.username("alice").is_err()
                        || w.attribute(attr::REALM, b"ringsfu").is_err()
                        || w.attribute(attr::NONCE, &nonce).is_err()
                        || w.message_integrity(&key).is_err())
                {
                    continue;
                }
                let n = w.finish();
                let a = server.handle_client(clock, client, &buf[..n], &mut relays, &mut out);
                check(&a, &buf[..n], &out, Some(&txid));
            }
            // A datagram from a peer to one of the relay addresses.
            4 => {
                let Some((&sel, payload)) = chunk.split_first() else {
                    continue;
                };
                let relay = SocketAddr::from(([127, 0, 0, 1], 40_001 + u16::from(sel & 7)));
                let peer = SocketAddr::from(([127, 0, 0, 1], 9000 + u16::from(sel >> 3)));
                let a = server.handle_peer(clock, relay, peer, payload, &mut out);
                check(&a, payload, &out, None);
            }
            // Time passes; lifetimes expire.
            5 => {
                let step = u64::from(chunk.first().copied().unwrap_or(1)) * 10;
                clock.now += Duration::from_secs(step);
                clock.unix += step;
                server.expire(clock.now, &mut relays);
            }
            // The client's connection ends.
            6 => server.client_gone(&client, &mut relays),
            // Wall clock jumps (nonces and REST usernames expire) without monotonic time.
            _ => clock.unix += u64::from(chunk.first().copied().unwrap_or(0)) * 60,
        }
    }
}

/// SDP (core/src/sdp): WHIP/WHEP offers and trickle fragments. An offer that parses is
/// negotiated both ways against a router (Opus, VP8, H264) and answered; every answer line is
/// one CRLF-terminated line (nothing from the offer can inject a line).
pub fn sdp_parse(data: &[u8]) {
    use ringsfu_core::ortc::generate_router_rtp_capabilities;
    use ringsfu_core::sdp::{
        parse_fragment, parse_offer, publish, subscribe, write_answer, AnswerSection,
        AnswerTransport, Candidate, Fingerprint,
    };
    static CAPS: OnceLock<ringsfu_core::rtp_parameters::RtpCapabilities> = OnceLock::new();
    let caps = CAPS.get_or_init(|| {
        let codecs: Vec<RtpCodecCapability> = serde_json::from_value(json!([
            {"kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2},
            {"kind": "video", "mimeType": "video/VP8", "clockRate": 90000},
            {"kind": "video", "mimeType": "video/H264", "clockRate": 90000,
             "parameters": {"packetization-mode": 1, "profile-level-id": "42e01f",
                            "level-asymmetry-allowed": 1}}
        ]))
        .unwrap();
        generate_router_rtp_capabilities(&codecs).unwrap()
    });
    let text = String::from_utf8_lossy(data);
    let _ = parse_fragment(&text);
    let Ok(offer) = parse_offer(&text) else {
        return;
    };
    let _ = offer.dtls_parameters();
    let transport = AnswerTransport {
        ice_ufrag: "ufrag".into(),
        ice_pwd: "password".into(),
        candidates: vec![Candidate {
            foundation: "1".into(),
            priority: 1,
            ip: "127.0.0.1".into(),
            protocol: "udp".into(),
            port: 40000,
            tcp_type: None,
        }],
        fingerprints: vec![Fingerprint {
            algorithm: "sha-256".into(),
            value: "AA:BB".into(),
        }],
    };
    let check = |answer: &str| {
        assert!(answer.ends_with("\r\n"));
        for line in answer.split_terminator("\r\n") {
            assert!(!line.contains(['\r', '\n']), "line break inside {line:?}");
        }
    };
    if let Ok(sections) = publish(&offer, caps) {
        let answer: Vec<AnswerSection> = sections
            .into_iter()
            .map(|s| AnswerSection {
                index: s.index,
                rtp_parameters: s.rtp_parameters,
                direction: Some("recvonly".into()),
                msid: None,
            })
            .collect();
        check(&write_answer(&offer, &transport, &answer, 1));
    }
    if let Ok(sections) = subscribe(&offer, caps) {
        let _ = serde_json::to_value(&sections);
        check(&write_answer(&offer, &transport, &[], 2));
    }
}

/// Engine.IO v4 polling payloads and the socket.io packets inside (plugins/src/engineio.rs):
/// what a call page's socket.io client POSTs or sends over its WebSocket.
pub fn engineio_payload(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ringsfu_plugins::fuzzing::engineio_payload(text);
}
