//! TURN server unit tests: full request/response exchanges through the sans-IO server.

use super::*;
use crate::stun::{Class, StunMessage, StunWriter};

struct FakePorts {
    next: u16,
    released: Vec<SocketAddr>,
}

impl FakePorts {
    /// Relay ports from 40001 up, none released yet.
    fn new() -> Self {
        FakePorts {
            next: 40000,
            released: vec![],
        }
    }
}

impl RelayPorts for FakePorts {
    fn bind(&mut self) -> Option<SocketAddr> {
        self.next += 1;
        Some(SocketAddr::from(([127, 0, 0, 1], self.next)))
    }
    fn release(&mut self, relay: SocketAddr) {
        self.released.push(relay);
    }
}

fn clock(t: Instant) -> Clock {
    Clock {
        now: t,
        unix: 1_800_000_000,
    }
}

const CLIENT: Client = Client {
    transport: Transport::Udp,
    addr: SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)), 5000),
};

fn server(allow_loopback: bool) -> TurnServer {
    let mut c = TurnConfig::default();
    c.users.insert("alice".into(), "secret".into());
    c.users.insert("bob".into(), "pw".into());
    c.secret = Some("shared".into());
    c.allow_loopback_peers = allow_loopback;
    TurnServer::new(c, [7; 16])
}

/// Builds a request; with `auth` = (user, password, nonce) signed with the long-term key.
fn request(m: u16, extra: &[(u16, Vec<u8>)], auth: Option<(&str, &str, &str)>) -> Vec<u8> {
    let mut buf = vec![0u8; 1500];
    let mut w = StunWriter::new(&mut buf, Class::Request, m, &[9; 12]).unwrap();
    for (t, v) in extra {
        w.attribute(*t, v).unwrap();
    }
    if let Some((u, p, n)) = auth {
        w.username(u).unwrap();
        w.attribute(attr::REALM, b"ringsfu").unwrap();
        w.attribute(attr::NONCE, n.as_bytes()).unwrap();
        w.message_integrity(&long_term_key(u, "ringsfu", p))
            .unwrap();
    }
    let n = w.finish();
    buf.truncate(n);
    buf
}

fn reply(s: &mut TurnServer, t: Instant, data: &[u8], ports: &mut FakePorts) -> Vec<u8> {
    let mut out = vec![0u8; 2048];
    match s.handle_client(clock(t), CLIENT, data, ports, &mut out) {
        Action::Reply { len, .. } => out[..len].to_vec(),
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn code(resp: &[u8]) -> Option<u16> {
    let m = StunMessage::parse(resp).unwrap();
    m.error_code().map(|e| e.code)
}

fn nonce_of(resp: &[u8]) -> String {
    String::from_utf8(
        StunMessage::parse(resp)
            .unwrap()
            .attribute(attr::NONCE)
            .unwrap()
            .to_vec(),
    )
    .unwrap()
}

/// An unauthenticated Allocate: the server's 401 challenge; returns its nonce.
fn challenge(s: &mut TurnServer, t: Instant, ports: &mut FakePorts) -> String {
    nonce_of(&reply(
        s,
        t,
        &request(method::ALLOCATE, &[transport_udp()], None),
        ports,
    ))
}

fn transport_udp() -> (u16, Vec<u8>) {
    (tattr::REQUESTED_TRANSPORT, vec![17, 0, 0, 0])
}

fn peer_attr(peer: SocketAddr) -> (u16, Vec<u8>) {
    let mut buf = vec![0u8; 100];
    let mut w = StunWriter::new(&mut buf, Class::Request, 1, &[9; 12]).unwrap();
    put_xor_address(&mut w, tattr::XOR_PEER_ADDRESS, peer, &[9; 12]).unwrap();
    let n = w.finish();
    (tattr::XOR_PEER_ADDRESS, buf[24..n].to_vec())
}

#[test]
fn binding_answers_xor_mapped_address() {
    let mut s = server(false);
    let mut ports = FakePorts::new();
    let r = reply(
        &mut s,
        Instant::now(),
        &request(method::BINDING, &[], None),
        &mut ports,
    );
    let m = StunMessage::parse(&r).unwrap();
    assert_eq!(m.class(), Class::SuccessResponse);
    assert_eq!(m.xor_mapped_address(), Some(CLIENT.addr));
}

#[test]
fn allocate_challenge_then_success_wrong_password_401_other_user_441() {
    let t = Instant::now();
    let mut s = server(false);
    let mut ports = FakePorts::new();
    let r = reply(
        &mut s,
        t,
        &request(method::ALLOCATE, &[transport_udp()], None),
        &mut ports,
    );
    assert_eq!(code(&r), Some(401));
    let nonce = nonce_of(&r);
    let bad = reply(
        &mut s,
        t,
        &request(
            method::ALLOCATE,
            &[transport_udp()],
            Some(("alice", "wrong", &nonce)),
        ),
        &mut ports,
    );
    assert_eq!(code(&bad), Some(401));
    let stale = reply(
        &mut s,
        t,
        &request(
            method::ALLOCATE,
            &[transport_udp()],
            Some(("alice", "secret", "0000000000000001aaaaaaaaaaaaaaaa")),
        ),
        &mut ports,
    );
    assert_eq!(code(&stale), Some(438));
    let ok = reply(
        &mut s,
        t,
        &request(
            method::ALLOCATE,
            &[transport_udp()],
            Some(("alice", "secret", &nonce)),
        ),
        &mut ports,
    );
    let m = StunMessage::parse(&ok).unwrap();
    assert_eq!(m.class(), Class::SuccessResponse, "{:?}", code(&ok));
    assert!(m.verify_integrity(&long_term_key("alice", "ringsfu", "secret")));
    assert_eq!(s.allocation_count(), 1);
    // bob (valid credentials) on alice's allocation → 441.
    let r = reply(
        &mut s,
        t,
        &request(method::REFRESH, &[], Some(("bob", "pw", &nonce))),
        &mut ports,
    );
    assert_eq!(code(&r), Some(441));
    // Refresh with lifetime 0 deletes it and releases the port.
    let r = reply(
        &mut s,
        t,
        &request(
            method::REFRESH,
            &[(tattr::LIFETIME, vec![0, 0, 0, 0])],
            Some(("alice", "secret", &nonce)),
        ),
        &mut ports,
    );
    assert_eq!(code(&r), None);
    assert_eq!(s.allocation_count(), 0);
    assert_eq!(ports.released.len(), 1);
}

#[test]
fn rest_credentials_work_until_they_expire() {
    let t = Instant::now();
    let mut s = server(false);
    let mut ports = FakePorts::new();
    let nonce = challenge(&mut s, t, &mut ports);
    let expired = "1700000000:carol";
    let pw = rest_password("shared", expired);
    let r = reply(
        &mut s,
        t,
        &request(
            method::ALLOCATE,
            &[transport_udp()],
            Some((expired, &pw, &nonce)),
        ),
        &mut ports,
    );
    assert_eq!(code(&r), Some(401));
    let user = "1900000000:carol";
    let pw = rest_password("shared", user);
    let r = reply(
        &mut s,
        t,
        &request(
            method::ALLOCATE,
            &[transport_udp()],
            Some((user, &pw, &nonce)),
        ),
        &mut ports,
    );
    assert_eq!(code(&r), None);
}

#[test]
fn denied_peers_get_403_unless_opted_in_and_data_flows_with_permission() {
    let t = Instant::now();
    for allow in [false, true] {
        let mut s = server(allow);
        let mut ports = FakePorts::new();
        let nonce = challenge(&mut s, t, &mut ports);
        let auth = Some(("alice", "secret", nonce.as_str()));
        reply(
            &mut s,
            t,
            &request(method::ALLOCATE, &[transport_udp()], auth),
            &mut ports,
        );
        let peer = SocketAddr::from(([127, 0, 0, 1], 9999));
        let r = reply(
            &mut s,
            t,
            &request(method::CREATE_PERMISSION, &[peer_attr(peer)], auth),
            &mut ports,
        );
        if !allow {
            assert_eq!(code(&r), Some(403));
            let r = reply(
                &mut s,
                t,
                &request(
                    method::CHANNEL_BIND,
                    &[
                        (tattr::CHANNEL_NUMBER, vec![0x40, 0, 0, 0]),
                        peer_attr(peer),
                    ],
                    auth,
                ),
                &mut ports,
            );
            assert_eq!(code(&r), Some(403));
            continue;
        }
        assert_eq!(code(&r), None);
        let r = reply(
            &mut s,
            t,
            &request(
                method::CHANNEL_BIND,
                &[
                    (tattr::CHANNEL_NUMBER, vec![0x40, 1, 0, 0]),
                    peer_attr(peer),
                ],
                auth,
            ),
            &mut ports,
        );
        assert_eq!(code(&r), None);
        let mut out = vec![0u8; 2048];
        let cd = [0x40, 0x01, 0, 3, b'a', b'b', b'c', 0];
        match s.handle_client(clock(t), CLIENT, &cd, &mut ports, &mut out) {
            Action::Relay { peer: p, range, .. } => {
                assert_eq!(p, peer);
                assert_eq!(&cd[range], b"abc");
            }
            other => panic!("{other:?}"),
        }
        // Peer → client comes back as ChannelData.
        let relay = SocketAddr::from(([127, 0, 0, 1], 40001));
        match s.handle_peer(clock(t), relay, peer, b"xyz", &mut out) {
            Action::Reply { len, .. } => {
                assert_eq!(&out[..len], &[0x40, 0x01, 0, 3, b'x', b'y', b'z'])
            }
            other => panic!("{other:?}"),
        }
        // A peer without permission is dropped and counted.
        let stranger = SocketAddr::from(([127, 0, 0, 2], 1));
        assert_eq!(
            s.handle_peer(clock(t), relay, stranger, b"x", &mut out),
            Action::None
        );
        assert_eq!(s.stats().no_permission, 1);
        // Everything expires.
        s.expire(t + Duration::from_secs(4000), &mut ports);
        assert_eq!(s.allocation_count(), 0);
    }
}

#[test]
fn garbage_is_dropped_and_counted() {
    let mut s = server(false);
    let mut ports = FakePorts::new();
    let mut out = vec![0u8; 2048];
    let t = Instant::now();
    for g in [
        &[0xffu8; 40][..],
        &[0u8; 3],
        &[0x40, 0, 0, 200],
        &[0, 1, 0, 4, 0x21, 0x12, 0xa4, 0x42],
    ] {
        assert_eq!(
            s.handle_client(clock(t), CLIENT, g, &mut ports, &mut out),
            Action::None
        );
    }
    assert_eq!(s.stats().malformed, 4);
    // Well-formed ChannelData on a channel nobody bound: dropped as no permission.
    assert_eq!(
        s.handle_client(clock(t), CLIENT, &[0x40, 0, 0, 1, 9], &mut ports, &mut out),
        Action::None
    );
    assert_eq!(s.stats().no_permission, 1);
}
