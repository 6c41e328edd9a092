//! The demo room (lua/rooms/demo.lua) on real media workers, driven at the protoo level like
//! the mediasoup-demo app does. The signaling tests send no media; the consumer-control and
//! simulcast tests send hand-made RTP from a plain-transport broadcaster (the HTTP API) to an
//! independent webrtc-rs peer that joined over protoo, and check what arrives.

mod common;
#[path = "../core/tests/common/mod.rs"]
mod rtc;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

async fn server() -> ringsfu::Server {
    ringsfu::start(test_config(2)).await.expect("server starts")
}

fn opus_params(ssrc: u32) -> Value {
    json!({
        "mid": "0",
        "codecs": [{
            "mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2,
            "parameters": {"minptime": 10, "useinbandfec": 1},
            "rtcpFeedback": [{"type": "transport-cc", "parameter": ""}]
        }],
        "headerExtensions": [
            {"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 4, "encrypt": false, "parameters": {}}
        ],
        "encodings": [{"ssrc": ssrc, "dtx": false}],
        "rtcp": {"cname": "demo-test", "reducedSize": true}
    })
}

const FINGERPRINT: &str = "82:5A:68:3D:36:C3:0A:DE:AF:E7:32:43:D2:88:83:57:B1:1F:49:AC:0C:2B:D8:2C:F6:AC:3A:3E:91:A6:C5:54";

/// Connects, creates send and receive transports, and joins like the demo app.
async fn demo_peer(
    addr: std::net::SocketAddr,
    room: &str,
    peer: &str,
) -> (Client, Value, String, String) {
    let mut c = Client::connect(addr, room, peer).await.unwrap();
    let v = c.wait_for("mediasoup-version").await;
    assert!(v["data"]["version"].is_string());
    let caps = ok(&c.request("getRouterRtpCapabilities", json!({})).await).clone();
    let send = ok(&c
        .request(
            "createWebRtcTransport",
            json!({"forceTcp": false, "producing": true, "consuming": false}),
        )
        .await)
    .clone();
    let recv = ok(&c
        .request(
            "createWebRtcTransport",
            json!({"forceTcp": false, "producing": false, "consuming": true}),
        )
        .await)
    .clone();
    let joined = ok(&c
        .request(
            "join",
            json!({"displayName": peer, "device": {"flag": "chrome", "name": "Chrome", "version": "129"},
                   "rtpCapabilities": caps}),
        )
        .await)
        .clone();
    assert!(joined["peers"].is_array(), "{joined}");
    (
        c,
        joined,
        send["id"].as_str().unwrap().to_owned(),
        recv["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_capabilities_and_transports() {
    let s = server().await;
    let mut a = Client::connect(s.local_addr(), "d1", "a").await.unwrap();
    let caps = ok(&a.request("getRouterRtpCapabilities", json!({})).await).clone();
    let pts: Vec<(String, u64)> = caps["codecs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["mimeType"].as_str().unwrap().to_owned(),
                c["preferredPayloadType"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        pts,
        [
            ("audio/opus", 100),
            ("video/VP8", 101),
            ("video/rtx", 102),
            ("video/VP9", 103),
            ("video/rtx", 104),
            ("video/H264", 105),
            ("video/rtx", 106),
            ("video/H264", 107),
            ("video/rtx", 108)
        ]
        .map(|(m, p)| (m.to_owned(), p))
    );
    // The same capabilities over HTTP while the room lives.
    let (status, body) = http(s.local_addr(), "GET", "/rooms/d1").await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), caps);

    let t = ok(&a
        .request(
            "createWebRtcTransport",
            json!({"forceTcp": false, "producing": true, "consuming": false}),
        )
        .await)
    .clone();
    assert_eq!(t["iceParameters"]["iceLite"], true);
    assert_eq!(
        t["iceParameters"]["usernameFragment"]
            .as_str()
            .unwrap()
            .len(),
        32
    );
    let cands = t["iceCandidates"].as_array().unwrap();
    assert_eq!(cands.len(), 2);
    assert_eq!(cands[0]["protocol"], "udp");
    assert_eq!(cands[0]["address"], "127.0.0.1");
    assert_eq!(cands[1]["tcpType"], "passive");
    assert_eq!(t["dtlsParameters"]["role"], "auto");
    assert!(
        t.get("sctpParameters").is_none_or(Value::is_null),
        "no SCTP: {t}"
    );

    let tcp = ok(&a
        .request(
            "createWebRtcTransport",
            json!({"forceTcp": true, "producing": false, "consuming": true}),
        )
        .await)
    .clone();
    let cands = tcp["iceCandidates"].as_array().unwrap();
    assert_eq!(cands.len(), 1);
    assert_eq!(cands[0]["protocol"], "tcp");

    let id = t["id"].as_str().unwrap();
    let dtls =
        json!({"role": "client", "fingerprints": [{"algorithm": "sha-256", "value": FINGERPRINT}]});
    ok(&a
        .request(
            "connectWebRtcTransport",
            json!({"transportId": id, "dtlsParameters": dtls}),
        )
        .await);
    let (_, reason) = err(&a
        .request(
            "connectWebRtcTransport",
            json!({"transportId": id, "dtlsParameters": dtls}),
        )
        .await);
    assert!(reason.contains("connect() already called"), "{reason}");
    let ice = ok(&a.request("restartIce", json!({"transportId": id})).await).clone();
    assert_ne!(
        ice["usernameFragment"],
        t["iceParameters"]["usernameFragment"]
    );
    let stats = ok(&a
        .request("getTransportStats", json!({"transportId": id}))
        .await)
    .clone();
    assert_eq!(stats[0]["type"], "webrtc-transport");

    let (code, reason) = err(&a
        .request("connectWebRtcTransport", json!({"transportId": "nope"}))
        .await);
    assert_eq!(
        (code, reason.as_str()),
        (500, "transport with id \"nope\" not found")
    );
    let (_, reason) = err(&a.request("produce", json!({"transportId": id})).await);
    assert_eq!(reason, "Peer not yet joined");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_produce_consume_pause_close() {
    let s = server().await;
    let (mut a, joined, a_send, _a_recv) = demo_peer(s.local_addr(), "d2", "alice").await;
    assert_eq!(joined["peers"], json!([]));
    let (_, reason) = err(&a.request("join", json!({})).await);
    assert_eq!(reason, "Peer already joined");

    let (mut b, joined, _b_send, _b_recv) = demo_peer(s.local_addr(), "d2", "bob").await;
    assert_eq!(joined["peers"][0]["id"], "alice");
    assert_eq!(joined["peers"][0]["device"]["flag"], "chrome");
    let np = a.wait_for("newPeer").await;
    assert_eq!(np["data"]["id"], "bob");
    assert_eq!(np["data"]["displayName"], "bob");

    // alice produces → bob gets newConsumer (created paused), accepts it.
    let produced = ok(&a
        .request(
            "produce",
            json!({"transportId": a_send, "kind": "audio",
                                   "rtpParameters": opus_params(1111), "appData": {}}),
        )
        .await)
    .clone();
    let producer_id = produced["id"].as_str().unwrap().to_owned();
    let nc = b.wait_for("newConsumer").await;
    assert_eq!(nc["request"], true);
    let d = &nc["data"];
    assert_eq!(d["peerId"], "alice");
    assert_eq!(d["producerId"], producer_id.as_str());
    assert_eq!(d["kind"], "audio");
    assert_eq!(d["type"], "simple");
    assert_eq!(d["appData"]["peerId"], "alice");
    assert_eq!(d["producerPaused"], false);
    assert_eq!(d["rtpParameters"]["codecs"][0]["mimeType"], "audio/opus");
    let consumer_id = d["id"].as_str().unwrap().to_owned();
    b.answer_ok(&nc["id"], json!({})).await;

    // Consumer requests on bob's side.
    for (m, extra) in [
        ("pauseConsumer", json!({})),
        ("resumeConsumer", json!({})),
        ("setConsumerPriority", json!({"priority": 2})),
        ("requestConsumerKeyFrame", json!({})),
    ] {
        let mut data = json!({"consumerId": consumer_id});
        data.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        ok(&b.request(m, data).await);
    }
    let stats = ok(&b
        .request("getConsumerStats", json!({"consumerId": consumer_id}))
        .await)
    .clone();
    // The consumer's outbound stream, then the producer's inbound one (no media sent here).
    assert_eq!(stats.as_array().map(Vec::len), Some(2), "{stats}");
    assert_eq!(stats[0]["type"], "outbound-rtp", "{stats}");
    assert_eq!(stats[0]["kind"], "audio", "{stats}");
    assert_eq!(
        stats[0]["ssrc"], d["rtpParameters"]["encodings"][0]["ssrc"],
        "{stats}"
    );
    assert_eq!(stats[0]["packetCount"], 0, "{stats}");
    assert_eq!(stats[1]["type"], "inbound-rtp", "{stats}");
    assert_eq!(stats[1]["ssrc"], 1111, "{stats}");
    let (_, reason) = err(&b.request("pauseConsumer", json!({"consumerId": "x"})).await);
    assert_eq!(reason, "consumer with id \"x\" not found");
    // Lookups are scoped to the peer's own objects.
    let (_, reason) = err(&b
        .request("pauseProducer", json!({"producerId": producer_id}))
        .await);
    assert!(reason.contains("not found"), "{reason}");

    // Producer pause/resume/close reach bob as notifications.
    ok(&a
        .request("pauseProducer", json!({"producerId": producer_id}))
        .await);
    assert_eq!(
        b.wait_for("consumerPaused").await["data"]["consumerId"],
        consumer_id.as_str()
    );
    ok(&a
        .request("resumeProducer", json!({"producerId": producer_id}))
        .await);
    assert_eq!(
        b.wait_for("consumerResumed").await["data"]["consumerId"],
        consumer_id.as_str()
    );
    let pstats = ok(&a
        .request("getProducerStats", json!({"producerId": producer_id}))
        .await)
    .clone();
    assert_eq!(pstats.as_array().map(Vec::len), Some(1), "{pstats}");
    assert_eq!(pstats[0]["type"], "inbound-rtp", "{pstats}");
    assert_eq!(pstats[0]["kind"], "audio", "{pstats}");
    assert_eq!(pstats[0]["ssrc"], 1111, "{pstats}");
    assert_eq!(pstats[0]["mimeType"], "audio/opus", "{pstats}");
    ok(&a
        .request("changeDisplayName", json!({"displayName": "Alice"}))
        .await);
    let ch = b.wait_for("peerDisplayNameChanged").await;
    assert_eq!(
        ch["data"],
        json!({"peerId": "alice", "displayName": "Alice", "oldDisplayName": "alice"})
    );
    ok(&a
        .request("closeProducer", json!({"producerId": producer_id}))
        .await);
    assert_eq!(
        b.wait_for("consumerClosed").await["data"]["consumerId"],
        consumer_id.as_str()
    );

    // produceData without sctpStreamParameters: refused as a bad argument (400), naming the
    // field.
    let (code, reason) = err(&a
        .request("produceData", json!({"transportId": a_send}))
        .await);
    assert_eq!(code, 400);
    assert!(reason.contains("sctpStreamParameters"), "{reason}");
    let (code, _) = err(&a
        .request("applyNetworkThrottle", json!({"secret": "x"}))
        .await);
    assert_eq!(code, 403);

    // A late joiner consumes what is already produced.
    let produced = ok(&a
        .request(
            "produce",
            json!({"transportId": a_send, "kind": "audio",
                                   "rtpParameters": opus_params(2222), "appData": {"share": true}}),
        )
        .await)
    .clone();
    let _ = b.wait_for("newConsumer").await; // bob's consumer of the new producer (unanswered)
    let (mut c, joined, _, _) = demo_peer(s.local_addr(), "d2", "carol").await;
    assert_eq!(joined["peers"].as_array().unwrap().len(), 2);
    let nc = c.wait_for("newConsumer").await;
    assert_eq!(nc["data"]["producerId"], produced["id"]);
    assert_eq!(
        nc["data"]["appData"],
        json!({"share": true, "peerId": "alice"})
    );
    c.answer_ok(&nc["id"], json!({})).await;

    // alice leaves: the others get peerClosed and consumerClosed for her producer.
    a.close().await;
    assert_eq!(
        b.wait_for("peerClosed").await["data"],
        json!({"peerId": "alice"})
    );
    assert_eq!(
        c.wait_for("peerClosed").await["data"],
        json!({"peerId": "alice"})
    );
    c.wait_for("consumerClosed").await;
    b.close().await;
    c.close().await;
    assert!(eventually(|| s.room_count() == 0).await);
    // GET creates the room for the request only (httpApi.createRooms): nothing stays behind.
    let (status, _) = http(s.local_addr(), "GET", "/rooms/d2").await;
    assert_eq!(status, 200);
    assert!(eventually(|| s.room_count() == 0).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_to_one_room_on_the_engine() {
    let s = server().await;
    // The embedded config routes "one2one-*" rooms to lua/rooms/one_to_one.lua.
    let (_a, _, _, _) = demo_peer(s.local_addr(), "one2one-x", "a").await;
    let (_b, joined, _, _) = demo_peer(s.local_addr(), "one2one-x", "b").await;
    assert_eq!(joined["peers"][0]["id"], "a");
    match Client::connect(s.local_addr(), "one2one-x", "c").await {
        Err(ConnectError::Http(403, body)) => assert!(body.contains("1:1 room"), "{body}"),
        Err(e) => panic!("unexpected {e:?}"),
        Ok(_) => panic!("third peer accepted"),
    }
}

// ------------------------------------------------------------------ media: consumer controls

/// A VP8 payload descriptor (S=1, PID 0) followed by a key frame header (P bit 0, the start code).
const VP8_KEY: [u8; 11] = [
    0x10, 0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01,
];
/// The same with an inter frame header (P bit 1).
const VP8_DELTA: [u8; 4] = [0x10, 0x31, 0x10, 0x00];

/// Delta frames the fake broadcaster sends after a key frame request before the key frame.
const KEY_DELAY: u32 = 3;

/// One RTP stream of the fake broadcaster.
#[derive(Clone, Copy)]
struct Stream {
    ssrc: u32,
    pt: u8,
    video: bool,
    /// Written after the codec header of every packet, so a receiver knows which stream it got.
    tag: u8,
    /// Sent as the RID header extension (with MID "v"), for simulcast layers.
    rid: Option<&'static str>,
}

/// What the fake broadcaster saw and did, shared with its thread.
#[derive(Default)]
struct SenderState {
    /// Media SSRC of every PLI (or FIR entry) the server sent, in arrival order.
    keyframe_requests: Mutex<Vec<u32>>,
    /// Packets sent per stream.
    sent: [AtomicU32; 4],
    stop: AtomicBool,
}

/// A broadcaster made of one UDP socket: sends each stream (audio every 20 ms, video every 40 ms,
/// one packet per frame) to a plain transport and answers PLI/FIR with a key frame of the
/// requested stream, `KEY_DELAY` frames later. Video is a key frame only on request, and
/// delta frames always come first, so a consumer that starts, resumes or switches layers on
/// anything but a key frame is seen doing so.
struct FakeBroadcaster {
    state: Arc<SenderState>,
    thread: Option<JoinHandle<()>>,
}

impl FakeBroadcaster {
    fn start(socket: UdpSocket, to: SocketAddr, streams: Vec<Stream>) -> Self {
        let state = Arc::new(SenderState::default());
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            socket
                .set_read_timeout(Some(Duration::from_millis(5)))
                .unwrap();
            let started = Instant::now();
            // Frames until the requested key frame, per stream (None: none requested).
            let mut key_in: Vec<Option<u32>> = vec![None; streams.len()];
            let mut tick = 0u32;
            let mut next = Instant::now();
            let mut buf = [0u8; 1500];
            // Bounded: every test finishes well within a minute.
            while !st.stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(90) {
                for (i, s) in streams.iter().enumerate() {
                    if s.video && tick % 2 == 1 {
                        continue;
                    }
                    let n = st.sent[i].fetch_add(1, Ordering::Relaxed) + 1;
                    let key = match key_in[i] {
                        Some(0) => {
                            key_in[i] = None;
                            true
                        }
                        Some(n) => {
                            key_in[i] = Some(n - 1);
                            false
                        }
                        None => false,
                    };
                    let mut payload = if !s.video {
                        vec![0xfc]
                    } else if key {
                        VP8_KEY.to_vec()
                    } else {
                        VP8_DELTA.to_vec()
                    };
                    payload.push(s.tag);
                    payload.extend_from_slice(&n.to_be_bytes());
                    payload.resize(payload.len() + 100, 0x55);
                    let ts = n.wrapping_mul(if s.video { 3600 } else { 960 });
                    let mut ext = Vec::new();
                    if let Some(rid) = s.rid {
                        ext.push((1u8, b"v".to_vec()));
                        ext.push((2u8, rid.as_bytes().to_vec()));
                    }
                    let pkt = rtc::build_rtp(s.pt, n as u16, ts, s.ssrc, s.video, &ext, &payload);
                    let _ = socket.send_to(&pkt, to);
                }
                tick += 1;
                next += Duration::from_millis(20);
                // Until the next tick: RTCP from the server (rtcp-mux on this socket).
                while Instant::now() < next {
                    let Ok(n) = socket.recv(&mut buf) else {
                        continue;
                    };
                    for ssrc in keyframe_requests(&buf[..n]) {
                        st.keyframe_requests.lock().unwrap().push(ssrc);
                        if let Some(i) = streams.iter().position(|s| s.ssrc == ssrc && s.video) {
                            key_in[i].get_or_insert(KEY_DELAY);
                        }
                    }
                }
            }
        });
        FakeBroadcaster {
            state,
            thread: Some(thread),
        }
    }

    fn sent(&self, stream: usize) -> u32 {
        self.state.sent[stream].load(Ordering::Relaxed)
    }

    fn keyframe_requests(&self) -> Vec<u32> {
        self.state.keyframe_requests.lock().unwrap().clone()
    }
}

impl Drop for FakeBroadcaster {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Media SSRCs asked for a key frame in an RTCP compound packet: PLI (PSFB FMT 1, RFC 4585
/// §6.3.1) and FIR entries (PSFB FMT 4, RFC 5104 §4.3.1), parsed here by hand.
fn keyframe_requests(mut b: &[u8]) -> Vec<u32> {
    let mut out = Vec::new();
    let be32 = |x: &[u8]| u32::from_be_bytes([x[0], x[1], x[2], x[3]]);
    while b.len() >= 4 && b[0] >> 6 == 2 {
        let len = (usize::from(u16::from_be_bytes([b[2], b[3]])) + 1) * 4;
        if len > b.len() {
            break;
        }
        let (fmt, pt) = (b[0] & 0x1f, b[1]);
        if pt == 206 && fmt == 1 && len >= 12 {
            out.push(be32(&b[8..12]));
        } else if pt == 206 && fmt == 4 {
            let mut i = 12;
            while i + 8 <= len {
                out.push(be32(&b[i..i + 4]));
                i += 8;
            }
        }
        b = &b[len..];
    }
    out
}

/// An RTP packet as the viewer received it.
#[derive(Debug)]
struct Got {
    ssrc: u32,
    pt: u8,
    seq: u16,
    key: bool,
    /// The sending stream's tag and packet number (see `FakeBroadcaster`).
    tag: u8,
    n: u32,
}

fn got(pkt: &[u8]) -> Option<Got> {
    let p = rtc::parse_rtp(pkt);
    let pl = &p.payload;
    if pl.len() < 16 {
        return None; // padding (probing), not one of ours
    }
    let body = if pl.starts_with(&VP8_KEY) {
        &pl[VP8_KEY.len()..]
    } else if pl.starts_with(&VP8_DELTA) {
        &pl[VP8_DELTA.len()..]
    } else {
        &pl[1..]
    };
    Some(Got {
        ssrc: p.header.ssrc,
        pt: p.header.payload_type,
        seq: p.header.sequence_number,
        key: pl.starts_with(&VP8_KEY),
        tag: body[0],
        n: u32::from_be_bytes([body[1], body[2], body[3], body[4]]),
    })
}

/// Next RTP packet at the viewer with one of `ssrcs` (others, e.g. RTX or probing, are skipped),
/// or a panic naming `what` after `deadline`.
async fn next_rtp(peer: &rtc::TestPeer, ssrcs: &[u32], deadline: Instant, what: &str) -> Got {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match peer.recv_rtp(left).await {
            Some(p) => match got(&p) {
                Some(g) if ssrcs.contains(&g.ssrc) => return g,
                _ => continue,
            },
            None => panic!("no RTP while waiting for {what}"),
        }
    }
}

/// A protoo peer joined like the demo app whose receive transport is connected by webrtc-rs.
async fn webrtc_viewer(
    addr: SocketAddr,
    room: &str,
    peer: &str,
) -> (Arc<tokio::sync::Mutex<Client>>, rtc::TestPeer) {
    let (c, recv, _) =
        join_with_transport(addr, room, peer, false, rtc::chrome_rtp_capabilities()).await;
    let client = Arc::new(tokio::sync::Mutex::new(c));
    let peer = connect_webrtc_peer(&client, &recv).await;
    (client, peer)
}

/// POST returning JSON, asserting 200.
async fn post(addr: SocketAddr, path: &str, body: Value) -> Value {
    let a = call_raw(addr, "POST", path, &body.to_string()).await;
    assert_eq!(a.status, 200, "POST {path}: {a:?}");
    a.json()
}

/// A broadcaster `bid` in `room` with one plain transport (rtcp-mux, not comedia) connected to a
/// fresh local socket; returns the socket and the transport's address and path.
async fn plain_broadcaster(
    addr: SocketAddr,
    room: &str,
    bid: &str,
) -> (UdpSocket, SocketAddr, String) {
    post(
        addr,
        &format!("/rooms/{room}/broadcasters"),
        json!({"id": bid, "displayName": "Fake", "device": {"name": "test"}}),
    )
    .await;
    let tr = format!("/rooms/{room}/broadcasters/{bid}/transports");
    let t = post(
        addr,
        &tr,
        json!({"type": "plain", "comedia": false, "rtcpMux": true}),
    )
    .await;
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tid = t["id"].as_str().unwrap();
    let (status, _) = {
        let body = json!({"ip": "127.0.0.1", "port": sock.local_addr().unwrap().port()});
        let a = call_raw(
            addr,
            "POST",
            &format!("{tr}/{tid}/plain/connect"),
            &body.to_string(),
        )
        .await;
        (a.status, a.body)
    };
    assert_eq!(status, 200);
    let to: SocketAddr = format!("{}:{}", t["ip"].as_str().unwrap(), t["port"])
        .parse()
        .unwrap();
    (sock, to, format!("{tr}/{tid}"))
}

/// A new server (kept alive by the test), its address, and in one room a demo-app viewer
/// connected by webrtc-rs (protoo client, media) and a plain-RTP broadcaster `bc` (its socket, the
/// server address it sends to, its transport path).
type Scene = (
    ringsfu::Server,
    SocketAddr,
    Arc<tokio::sync::Mutex<Client>>,
    rtc::TestPeer,
    UdpSocket,
    SocketAddr,
    String,
);

async fn viewer_and_broadcaster(room: &str) -> Scene {
    let server = server().await;
    let a = server.local_addr();
    let (viewer, peer) = webrtc_viewer(a, room, "viewer").await;
    let (sock, to, tpath) = plain_broadcaster(a, room, "bc").await;
    (server, a, viewer, peer, sock, to, tpath)
}

/// Answers the viewer's next `newConsumer`; returns (consumer id, kind, SSRC, PT, type).
async fn accept_consumer(c: &Arc<tokio::sync::Mutex<Client>>) -> (String, String, u32, u8, String) {
    let mut c = c.lock().await;
    let nc = c.wait_for("newConsumer").await;
    let d = &nc["data"];
    let out = (
        d["id"].as_str().unwrap().to_owned(),
        d["kind"].as_str().unwrap().to_owned(),
        d["rtpParameters"]["encodings"][0]["ssrc"].as_u64().unwrap() as u32,
        d["rtpParameters"]["codecs"][0]["payloadType"]
            .as_u64()
            .unwrap() as u8,
        d["type"].as_str().unwrap().to_owned(),
    );
    c.answer_ok(&nc["id"], json!({})).await;
    out
}

async fn request(c: &Arc<tokio::sync::Mutex<Client>>, method: &str, data: Value) -> Value {
    ok(&c.lock().await.request(method, data).await).clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_controls_act_on_the_media() {
    let (_s, a, viewer, peer, sock, to, tpath) = viewer_and_broadcaster("ctl").await;
    post(
        a,
        &format!("{tpath}/producers"),
        json!({"kind": "audio", "rtpParameters": {
            "codecs": [{"mimeType": "audio/opus", "payloadType": 100, "clockRate": 48000, "channels": 2}],
            "encodings": [{"ssrc": 1111}]}}),
    )
    .await;
    let vp = post(
        a,
        &format!("{tpath}/producers"),
        json!({"kind": "video", "rtpParameters": {
            "codecs": [{"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000,
                        "rtcpFeedback": [{"type": "nack", "parameter": "pli"}]}],
            "encodings": [{"ssrc": 2222}]}}),
    )
    .await;
    assert!(vp["id"].is_string(), "{vp}");
    let mut cons = [
        accept_consumer(&viewer).await,
        accept_consumer(&viewer).await,
    ];
    cons.sort_by(|x, y| x.1.cmp(&y.1)); // audio, video
    let [(_, _, assrc, apt, _), (vid, _, vssrc, vpt, _)] = cons;
    let bc = FakeBroadcaster::start(
        sock,
        to,
        vec![
            Stream {
                ssrc: 1111,
                pt: 100,
                video: false,
                tag: 0xa0,
                rid: None,
            },
            Stream {
                ssrc: 2222,
                pt: 101,
                video: true,
                tag: 0xb0,
                rid: None,
            },
        ],
    );

    // Both flow, with the consumers' SSRCs and PTs; video starts at a key frame.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut audio, mut video, mut first_video_key) = (0, 0, None);
    let mut last_video_seq = 0u16;
    while audio < 20 || video < 10 {
        let g = next_rtp(&peer, &[assrc, vssrc], deadline, "audio and video").await;
        if g.ssrc == assrc {
            assert_eq!((g.pt, g.tag), (apt, 0xa0));
            audio += 1;
        } else {
            assert_eq!((g.ssrc, g.pt, g.tag), (vssrc, vpt, 0xb0), "{g:?}");
            first_video_key.get_or_insert(g.key);
            video += 1;
            last_video_seq = g.seq;
        }
    }
    assert_eq!(
        first_video_key,
        Some(true),
        "a consumer starts at a key frame"
    );
    let st = request(&viewer, "getConsumerStats", json!({"consumerId": vid})).await;
    assert_eq!(st[0]["type"], "outbound-rtp", "{st}");
    assert_eq!(st[0]["ssrc"], vssrc, "{st}");
    assert!(st[0]["packetCount"].as_u64().unwrap() >= 10, "{st}");
    assert_eq!(st[1]["type"], "inbound-rtp", "the producer's stream: {st}");
    assert_eq!(st[1]["ssrc"], 2222, "{st}");

    // pauseConsumer: once audio sent after the answer arrives, no video follows it, audio goes on.
    request(&viewer, "pauseConsumer", json!({"consumerId": vid})).await;
    let mark = bc.sent(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = 0;
    while after < 50 {
        let g = next_rtp(
            &peer,
            &[assrc, vssrc],
            deadline,
            "audio while video is paused",
        )
        .await;
        if g.ssrc == assrc {
            if g.n > mark {
                after += 1;
            }
        } else if after > 0 {
            panic!("video of a paused consumer after {after} audio packets: {g:?}");
        } else {
            last_video_seq = g.seq; // sent before the pause took effect
        }
    }
    let sent_while_paused = bc.sent(1);

    // resumeConsumer: video comes back at a key frame the server asked for, sequence numbers
    // continuing without a gap.
    let plis_before = bc.keyframe_requests().len();
    request(&viewer, "resumeConsumer", json!({"consumerId": vid})).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let g = loop {
        let g = next_rtp(&peer, &[assrc, vssrc], deadline, "video after resume").await;
        if g.ssrc == vssrc {
            break g;
        }
    };
    assert!(g.key, "the first packet after resume is a key frame: {g:?}");
    assert!(g.n > sent_while_paused, "sent after the resume: {g:?}");
    assert_eq!(g.seq, last_video_seq.wrapping_add(1), "no sequence gap");
    assert!(
        bc.keyframe_requests()[plis_before..].contains(&2222),
        "the key frame was requested: {:?}",
        bc.keyframe_requests()
    );

    // setConsumerPriority: accepted (it only matters when bandwidth is short).
    request(
        &viewer,
        "setConsumerPriority",
        json!({"consumerId": vid, "priority": 2}),
    )
    .await;

    // requestConsumerKeyFrame: once key frame requests have settled, one PLI for the producer's
    // own SSRC (2222, not the consumer's) reaches the broadcaster.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut quiet_since = (Instant::now(), bc.keyframe_requests().len());
    while quiet_since.0.elapsed() < Duration::from_millis(1500) {
        assert!(Instant::now() < deadline, "key frame requests never settle");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let n = bc.keyframe_requests().len();
        if n != quiet_since.1 {
            quiet_since = (Instant::now(), n);
        }
    }
    let before = quiet_since.1;
    request(
        &viewer,
        "requestConsumerKeyFrame",
        json!({"consumerId": vid}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while bc.keyframe_requests().len() == before {
        assert!(
            Instant::now() < deadline,
            "no PLI after requestConsumerKeyFrame"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let new = bc.keyframe_requests()[before..].to_vec();
    assert!(
        new.first() == Some(&2222) && new.iter().all(|s| *s == 2222),
        "PLI for the producer's SSRC: {new:?}"
    );
    assert_ne!(vssrc, 2222);
    // ...and the key frame it produced reaches the viewer.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !next_rtp(&peer, &[assrc, vssrc], deadline, "the requested key frame")
        .await
        .key
    {}
    drop(bc);
    peer.close().await;
}

// ------------------------------------------------------------------ media: simulcast layers

/// Forgets the `consumerLayersChanged` notifications received so far (a round trip first, so
/// that everything the server sent before now is read).
async fn forget_layers_changed(c: &Arc<tokio::sync::Mutex<Client>>) {
    let mut c = c.lock().await;
    ok(&c.request("getRouterRtpCapabilities", json!({})).await);
    c.backlog.retain(|m| m["method"] != "consumerLayersChanged");
}

/// Waits for a `consumerLayersChanged` notification of `consumer` with `spatialLayer` = `layer`.
async fn wait_layers_changed(c: &Arc<tokio::sync::Mutex<Client>>, consumer: &str, layer: u64) {
    let mut c = c.lock().await;
    loop {
        let n = c.wait_for("consumerLayersChanged").await;
        assert_eq!(n["data"]["consumerId"], consumer, "{n}");
        if n["data"]["spatialLayer"] == layer {
            return;
        }
    }
}

/// Reads video until the first packet of layer `to`; asserts it is a key frame continuing the
/// sequence numbers, and that only `from` was forwarded before it. Returns its sequence number.
async fn switch_to(peer: &rtc::TestPeer, vssrc: u32, from: u8, to: u8, mut last_seq: u16) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let what = format!("the switch from layer {from} to {to}");
    loop {
        let g = next_rtp(peer, &[vssrc], deadline, &what).await;
        if g.tag == to {
            assert!(
                g.key,
                "the switch to layer {to} happens at a key frame: {g:?}"
            );
            assert_eq!(
                g.seq,
                last_seq.wrapping_add(1),
                "one sequence across layers: {g:?}"
            );
            return g.seq;
        }
        assert_eq!(g.tag, from, "only layer {from} before the switch: {g:?}");
        last_seq = g.seq;
    }
}

/// The next `count` video packets are all of layer `layer`; returns the last sequence number.
async fn only_layer(peer: &rtc::TestPeer, vssrc: u32, layer: u8, count: usize) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seq = 0;
    for _ in 0..count {
        let g = next_rtp(peer, &[vssrc], deadline, "video of one layer").await;
        assert_eq!(g.tag, layer, "only layer {layer} is forwarded: {g:?}");
        seq = g.seq;
    }
    seq
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulcast_forwards_the_chosen_layer_and_switches_at_key_frames() {
    let (_s, a, viewer, peer, sock, to, tpath) = viewer_and_broadcaster("simulcast").await;
    // Three layers told apart by RID (and MID), as a browser sends them.
    post(
        a,
        &format!("{tpath}/producers"),
        json!({"kind": "video", "rtpParameters": {
            "mid": "v",
            "codecs": [{"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000,
                        "rtcpFeedback": [{"type": "nack", "parameter": "pli"}]}],
            "headerExtensions": [
                {"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 1},
                {"uri": "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id", "id": 2}],
            "encodings": [{"rid": "r0"}, {"rid": "r1"}, {"rid": "r2"}]}}),
    )
    .await;
    let (cid, kind, vssrc, _, ctype) = accept_consumer(&viewer).await;
    assert_eq!((kind.as_str(), ctype.as_str()), ("video", "simulcast"));
    let layer = |i: u8, rid| Stream {
        ssrc: 3000 + u32::from(i),
        pt: 101,
        video: true,
        tag: i,
        rid: Some(rid),
    };
    let bc = FakeBroadcaster::start(
        sock,
        to,
        vec![layer(0, "r0"), layer(1, "r1"), layer(2, "r2")],
    );

    // With all three layers active and no preference, the highest one is forwarded (possibly
    // after a lower one while the others were not seen yet).
    let deadline = Instant::now() + Duration::from_secs(30);
    while next_rtp(&peer, &[vssrc], deadline, "layer 2").await.tag != 2 {}
    let seq = only_layer(&peer, vssrc, 2, 30).await;

    // Down to layer 0: the event, a key frame request for layer 0's SSRC, the switch at its key frame.
    forget_layers_changed(&viewer).await;
    let plis = bc.keyframe_requests().len();
    request(
        &viewer,
        "setConsumerPreferredLayers",
        json!({"consumerId": cid, "spatialLayer": 0, "temporalLayer": 0}),
    )
    .await;
    wait_layers_changed(&viewer, &cid, 0).await;
    switch_to(&peer, vssrc, 2, 0, seq).await;
    let seq = only_layer(&peer, vssrc, 0, 30).await;
    assert!(
        bc.keyframe_requests()[plis..].contains(&3000),
        "{:?}",
        bc.keyframe_requests()
    );

    // Up to layer 1.
    forget_layers_changed(&viewer).await;
    request(
        &viewer,
        "setConsumerPreferredLayers",
        json!({"consumerId": cid, "spatialLayer": 1}),
    )
    .await;
    wait_layers_changed(&viewer, &cid, 1).await;
    switch_to(&peer, vssrc, 0, 1, seq).await;
    only_layer(&peer, vssrc, 1, 30).await;
    assert!(
        bc.sent(2) > 0 && bc.sent(0) > 0,
        "every layer kept being sent"
    );
    drop(bc);
    peer.close().await;
}
