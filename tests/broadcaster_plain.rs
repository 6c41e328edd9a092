//! Broadcasters over SRTP PlainTransports (lua/http/broadcasters.lua): `enableSrtp` on
//! `…/transports`, `…/transports/:t/plain/connect` with its errors, and real SRTP media on
//! 127.0.0.1 from a broadcaster's producer to another broadcaster's consumer, decrypted with the
//! key the HTTP API returned.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::*;
use ringsfu_core::engine::{base64_decode, base64_encode};
use ringsfu_core::rtp::RtpHeader;
use ringsfu_core::srtp::{SrtpContext, SrtpProfile};
use serde_json::{json, Value};

/// One HTTP/1.1 request per connection (tests/common's client); returns status and body text.
async fn call(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
    let text = body.map(|b| b.to_string()).unwrap_or_default();
    let a = call_raw(addr, method, path, &text).await;
    (a.status, a.body)
}

async fn ok_json(addr: SocketAddr, path: &str, body: Option<Value>) -> Value {
    let (status, text) = call(addr, "POST", path, body).await;
    assert_eq!(status, 200, "POST {path}: {text}");
    if text.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

async fn expect(addr: SocketAddr, path: &str, body: Value, status: u16, needle: &str) {
    let (got, text) = call(addr, "POST", path, Some(body.clone())).await;
    assert_eq!(got, status, "POST {path} {body}: {text}");
    assert!(text.contains(needle), "POST {path} {body}: {text}");
}

/// Adds broadcaster `id` to room path `r` (with `rtp_capabilities` when it consumes); returns
/// its transports path.
async fn add_broadcaster(
    addr: SocketAddr,
    r: &str,
    id: &str,
    name: &str,
    rtp_capabilities: Option<Value>,
) -> String {
    let mut body = json!({"id": id, "displayName": name, "device": {"name": "bench"}});
    if let Some(caps) = rtp_capabilities {
        body["rtpCapabilities"] = caps;
    }
    ok_json(addr, &format!("{r}/broadcasters"), Some(body)).await;
    format!("{r}/broadcasters/{id}/transports")
}

/// Produces opus (PT 100, SSRC 1111) on the transport at `transport`; returns the producer.
async fn opus_producer(addr: SocketAddr, transport: &str) -> Value {
    ok_json(
        addr,
        &format!("{transport}/producers"),
        Some(json!({"kind": "audio", "rtpParameters": {
            "codecs": [{"mimeType": "audio/opus", "payloadType": 100, "clockRate": 48000, "channels": 2}],
            "encodings": [{"ssrc": 1111}]}})),
    )
    .await
}

/// The SSRC of a consumer's first encoding.
fn first_ssrc(consumer: &Value) -> u32 {
    consumer["rtpParameters"]["encodings"][0]["ssrc"]
        .as_u64()
        .unwrap() as u32
}

/// GET `path`, asserting 200, parsed as JSON.
async fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (status, text) = call(addr, "GET", path, None).await;
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// GETs `path` (asserting 200) until `done` holds or 20 s passed; returns the last answer.
async fn poll_json(addr: SocketAddr, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = get_json(addr, path).await;
        if done(&v) || Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Calls `send_more` and collects the RTP packets (SSRC, payload) arriving at `sock`, RTCP
/// (sender reports) skipped, until `want` arrived or 20 s passed; `read_timeout` is how long each
/// round waits for more.
fn receive_rtp(
    sock: &UdpSocket,
    read_timeout: Duration,
    want: usize,
    mut send_more: impl FnMut(),
) -> Vec<(u32, Vec<u8>)> {
    sock.set_read_timeout(Some(read_timeout)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 1500];
    let mut received = Vec::new();
    while received.len() < want && Instant::now() < deadline {
        send_more();
        while let Ok(n) = sock.recv(&mut buf) {
            if n > 1 && (192..=223).contains(&buf[1]) {
                continue; // RTCP
            }
            let h = RtpHeader::parse(&buf[..n]).unwrap();
            received.push((h.ssrc, h.payload(&buf[..n]).to_vec()));
        }
    }
    received
}

/// Receive capabilities of the consuming broadcaster: opus with the MID extension.
fn consumer_caps() -> Value {
    json!({
        "codecs": [{"kind": "audio", "mimeType": "audio/opus", "preferredPayloadType": 100,
                    "clockRate": 48000, "channels": 2, "rtcpFeedback": []}],
        "headerExtensions": [{"kind": "audio", "uri": "urn:ietf:params:rtp-hdrext:sdes:mid",
                              "preferredId": 1}]
    })
}

/// A master key‖salt for `profile` (any bytes do: the test only needs both ends to agree).
fn test_key(profile: SrtpProfile, seed: u8) -> Vec<u8> {
    (0..profile.master_key_len() + profile.master_salt_len())
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// The SRTP context of `srtpParameters` as the HTTP API returns them.
fn context_of(sp: &Value) -> SrtpContext {
    let profile = SrtpProfile::from_name(sp["cryptoSuite"].as_str().unwrap()).unwrap();
    let raw = base64_decode(sp["keyBase64"].as_str().unwrap()).unwrap();
    let (k, s) = raw.split_at(profile.master_key_len());
    SrtpContext::new(profile, k, s).unwrap()
}

/// An opus RTP packet: ssrc 1111, PT 100, the payload names its sequence number.
fn rtp_packet(seq: u16) -> (Vec<u8>, Vec<u8>) {
    let payload: Vec<u8> = format!("ringsfu plain srtp packet {seq:05}").into_bytes();
    let mut p = vec![0x80, 100];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
    p.extend_from_slice(&1111u32.to_be_bytes());
    p.extend_from_slice(&payload);
    (p, payload)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srtp_plain_transports_carry_media_between_broadcasters() {
    let s = ringsfu::start(test_config(1)).await.expect("server starts");
    let a = s.local_addr();
    let r = "/rooms/plainsrtp";
    let tx = add_broadcaster(a, r, "tx", "Sender", None).await;
    let rx = add_broadcaster(a, r, "rx", "Receiver", Some(consumer_caps())).await;

    // Creation options are checked; a plain transport without SRTP answers as before.
    expect(
        a,
        &tx,
        json!({"type": "plain", "enableSrtp": "yes"}),
        400,
        "TypeError: wrong body.enableSrtp",
    )
    .await;
    expect(
        a,
        &tx,
        json!({"type": "plain", "enableSrtp": true, "srtpCryptoSuite": 5}),
        400,
        "TypeError: wrong body.srtpCryptoSuite",
    )
    .await;
    expect(
        a,
        &tx,
        json!({"type": "plain", "enableSrtp": true, "srtpCryptoSuite": "NOPE"}),
        400,
        "srtpCryptoSuite unsupported: NOPE",
    )
    .await;
    let clear = ok_json(a, &tx, Some(json!({"type": "plain", "comedia": false}))).await;
    assert!(clear.get("srtpParameters").is_none(), "{clear}");
    assert!(
        clear["rtcpPort"].is_u64(),
        "rtcpMux defaults to false: {clear}"
    );

    // The sender: non-comedia, rtcp-mux, SRTP with the default suite.
    let send_t = ok_json(
        a,
        &tx,
        Some(json!({"type": "plain", "comedia": false, "rtcpMux": true, "enableSrtp": true})),
    )
    .await;
    assert_eq!(
        send_t["srtpParameters"]["cryptoSuite"], "AES_CM_128_HMAC_SHA1_80",
        "{send_t}"
    );
    assert!(send_t.get("rtcpPort").is_none(), "{send_t}");
    // The receiver: another suite, to see the option reach the engine.
    let recv_t = ok_json(
        a,
        &rx,
        Some(
            json!({"type": "plain", "comedia": false, "rtcpMux": true, "enableSrtp": true,
                    "srtpCryptoSuite": "AEAD_AES_256_GCM"}),
        ),
    )
    .await;
    assert_eq!(
        recv_t["srtpParameters"]["cryptoSuite"], "AEAD_AES_256_GCM",
        "{recv_t}"
    );
    let send_id = send_t["id"].as_str().unwrap();
    let recv_id = recv_t["id"].as_str().unwrap();
    let clear_id = clear["id"].as_str().unwrap();
    let webrtc = ok_json(a, &tx, Some(json!({"type": "webrtc"}))).await;
    let webrtc_id = webrtc["id"].as_str().unwrap();

    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let my_profile = SrtpProfile::Aes128CmHmacSha1_80;
    let my_key = test_key(my_profile, 1);
    let my_sp = json!({"cryptoSuite": my_profile.name(), "keyBase64": base64_encode(&my_key)});
    let connect = |t: &str| format!("{tx}/{t}/plain/connect");
    let sport = sender.local_addr().unwrap().port();

    // plain/connect errors: each names the problem.
    let cases = [
        (
            json!({"port": sport, "srtpParameters": my_sp}),
            "TypeError: missing body.ip",
        ),
        (
            json!({"ip": 7, "port": sport, "srtpParameters": my_sp}),
            "TypeError: wrong body.ip",
        ),
        (
            json!({"ip": "127.0.0.1", "srtpParameters": my_sp}),
            "TypeError: missing body.port",
        ),
        (
            json!({"ip": "127.0.0.1", "port": 70000, "srtpParameters": my_sp}),
            "TypeError: wrong body.port",
        ),
        (
            json!({"ip": "127.0.0.1", "port": sport}),
            "TypeError: missing body.srtpParameters",
        ),
        (
            json!({"ip": "127.0.0.1", "port": sport, "srtpParameters": {"cryptoSuite": "AES_CM_128_HMAC_SHA1_80"}}),
            "TypeError: missing body.srtpParameters.keyBase64",
        ),
        (
            json!({"ip": "127.0.0.1", "port": sport, "srtpParameters": {"cryptoSuite": "AES_CM_128_HMAC_SHA1_80", "keyBase64": "AAAA"}}),
            "keyBase64 has 3 bytes",
        ),
        (
            json!({"ip": "not-an-ip", "port": sport, "srtpParameters": my_sp}),
            "ip missing or invalid",
        ),
    ];
    for (body, needle) in cases {
        expect(a, &connect(send_id), body, 400, needle).await;
    }
    expect(
        a,
        &connect(clear_id),
        json!({"ip": "127.0.0.1", "port": sport, "rtcpPort": sport + 1, "srtpParameters": my_sp}),
        400,
        "SRTP is not enabled on this transport",
    )
    .await;
    expect(
        a,
        &connect(clear_id),
        json!({"ip": "127.0.0.1", "port": sport}),
        400,
        "TypeError: missing body.rtcpPort",
    )
    .await;
    expect(
        a,
        &connect(webrtc_id),
        json!({"ip": "127.0.0.1", "port": sport}),
        409,
        "is not a PlainTransport",
    )
    .await;
    expect(
        a,
        &connect("7d3e0000-0000-4000-8000-000000000000"),
        json!({"ip": "127.0.0.1", "port": sport}),
        404,
        "does not exist",
    )
    .await;
    expect(
        a,
        &format!("{r}/broadcasters/nobody/transports/{send_id}/plain/connect"),
        json!({"ip": "127.0.0.1", "port": sport}),
        404,
        "broadcaster with id \"nobody\" does not exist",
    )
    .await;

    // Connected: the sender with our key, the receiver to our receiving socket.
    let done = ok_json(
        a,
        &connect(send_id),
        Some(json!({"ip": "127.0.0.1", "port": sport, "srtpParameters": my_sp})),
    )
    .await;
    assert_eq!(done, Value::Null, "empty body");
    expect(
        a,
        &connect(send_id),
        json!({"ip": "127.0.0.1", "port": sport, "srtpParameters": my_sp}),
        409,
        "is already connected",
    )
    .await;
    let rx_key = test_key(my_profile, 2);
    // The generic connect route takes plain transports too (mediasoup's transport.connect()).
    ok_json(
        a,
        &format!("{rx}/{recv_id}/connect"),
        Some(
            json!({"ip": "127.0.0.1", "port": receiver.local_addr().unwrap().port(),
                    "srtpParameters": {"cryptoSuite": my_profile.name(),
                                       "keyBase64": base64_encode(&rx_key)}}),
        ),
    )
    .await;

    let producer = opus_producer(a, &format!("{tx}/{send_id}")).await;
    let pid = producer["id"].as_str().unwrap();
    let consumer = ok_json(a, &format!("{rx}/{recv_id}/consume?producerId={pid}"), None).await;
    let out_ssrc = first_ssrc(&consumer);
    let out_pt = consumer["rtpParameters"]["codecs"][0]["payloadType"]
        .as_u64()
        .unwrap() as u8;

    // Media: send SRTP until the consumer's packets arrive (created not paused), decrypt them with
    // the receiver transport's key and compare payloads.
    let server_in: SocketAddr = format!("127.0.0.1:{}", send_t["port"]).parse().unwrap();
    let mut enc = SrtpContext::new(
        my_profile,
        &my_key[..my_profile.master_key_len()],
        &my_key[my_profile.master_key_len()..],
    )
    .unwrap();
    let mut dec = context_of(&recv_t["srtpParameters"]);
    let got = tokio::task::spawn_blocking(move || {
        receiver
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut sent = std::collections::HashMap::new();
        let mut received = Vec::new();
        let mut seq = 0u16;
        let mut buf = [0u8; 1500];
        while received.len() < 10 && Instant::now() < deadline {
            seq += 1;
            let (mut p, payload) = rtp_packet(seq);
            let len = p.len();
            p.resize(len + 16, 0);
            let n = enc.protect_rtp(&mut p, len).unwrap();
            sender.send_to(&p[..n], server_in).unwrap();
            sent.insert(seq, payload);
            while let Ok((n, from)) = receiver.recv_from(&mut buf) {
                assert_eq!(from.ip().to_string(), "127.0.0.1");
                // RTCP (sender reports) shares the port with rtcp-mux: not media.
                if n > 1 && (192..=223).contains(&buf[1]) {
                    continue;
                }
                let len = dec
                    .unprotect_rtp(&mut buf, n)
                    .expect("decrypts with returned key");
                let h = RtpHeader::parse(&buf[..len]).unwrap();
                received.push((h.ssrc, h.payload_type, h.payload(&buf[..len]).to_vec()));
            }
        }
        (sent, received)
    })
    .await
    .unwrap();
    let (sent, received) = got;
    assert!(
        received.len() >= 10,
        "forwarded packets arrived: {}",
        received.len()
    );
    for (ssrc, pt, payload) in &received {
        assert_eq!((*ssrc, *pt), (out_ssrc, out_pt), "consumer's SSRC and PT");
        let text = String::from_utf8_lossy(payload);
        let seq: u16 = text
            .strip_prefix("ringsfu plain srtp packet ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected payload {text:?}"));
        assert_eq!(Some(payload), sent.get(&seq), "payload of packet {seq}");
    }

    // Deleting the broadcasters closes everything and the room.
    for b in ["tx", "rx"] {
        let (status, _) = call(a, "DELETE", &format!("{r}/broadcasters/{b}"), None).await;
        assert_eq!(status, 200);
    }
    assert!(eventually(|| s.room_count() == 0).await, "room closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comedia_srtp_transport_takes_only_the_key() {
    let s = ringsfu::start(test_config(1)).await.expect("server starts");
    let a = s.local_addr();
    let r = "/rooms/comediasrtp";
    let tr = add_broadcaster(a, r, "tx", "Sender", None).await;
    let t = ok_json(
        a,
        &tr,
        Some(json!({"type": "plain", "comedia": true, "rtcpMux": false, "enableSrtp": true})),
    )
    .await;
    let id = t["id"].as_str().unwrap();
    let profile = SrtpProfile::AeadAes128Gcm;
    let sp =
        json!({"cryptoSuite": profile.name(), "keyBase64": base64_encode(&test_key(profile, 3))});
    // comedia: no address needed, only the key; `/connect` takes plain parameters for a plain
    // transport (as mediasoup's transport.connect()), `/plain/connect` is its alias.
    expect(
        a,
        &format!("{tr}/{id}/connect"),
        json!({"dtlsParameters": {}}),
        400,
        "TypeError: missing body.srtpParameters",
    )
    .await;
    expect(
        a,
        &format!("{tr}/{id}/plain/connect"),
        json!({}),
        400,
        "TypeError: missing body.srtpParameters",
    )
    .await;
    ok_json(
        a,
        &format!("{tr}/{id}/connect"),
        Some(json!({"srtpParameters": sp})),
    )
    .await;
    expect(
        a,
        &format!("{tr}/{id}/plain/connect"),
        json!({"srtpParameters": sp}),
        409,
        "is already connected",
    )
    .await;

    // The key is used: SRTP sent with it is decrypted and forwarded to another broadcaster's
    // consumer (clear RTP to our socket); SRTP under a wrong key is dropped and counted.
    let producer = opus_producer(a, &format!("{tr}/{id}")).await;
    let rx = add_broadcaster(a, r, "rx", "Receiver", Some(consumer_caps())).await;
    let recv_t = ok_json(
        a,
        &rx,
        Some(json!({"type": "plain", "comedia": false, "rtcpMux": true})),
    )
    .await;
    let recv_id = recv_t["id"].as_str().unwrap();
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    ok_json(
        a,
        &format!("{rx}/{recv_id}/plain/connect"),
        Some(json!({"ip": "127.0.0.1", "port": receiver.local_addr().unwrap().port()})),
    )
    .await;
    let pid = producer["id"].as_str().unwrap();
    let consumer = ok_json(a, &format!("{rx}/{recv_id}/consume?producerId={pid}"), None).await;
    let out_ssrc = first_ssrc(&consumer);
    let server_in: SocketAddr = format!("127.0.0.1:{}", t["port"]).parse().unwrap();
    let stats_path = format!("{tr}/{id}/stats");
    let srtp_drops = |v: &Value| v[0]["srtpDrops"].as_u64().expect("srtpDrops");

    // Wrong key first (comedia must not learn its address from packets it cannot authenticate):
    // nothing is forwarded, every packet is counted as an SRTP drop.
    let wrong = test_key(profile, 99);
    let right = test_key(profile, 3);
    let context = move |key: &[u8]| {
        SrtpContext::new(
            profile,
            &key[..profile.master_key_len()],
            &key[profile.master_key_len()..],
        )
        .unwrap()
    };
    let send = move |sender: &UdpSocket, enc: &mut SrtpContext, first: u16, count: u16| {
        for seq in first..first + count {
            let (mut p, _) = rtp_packet(seq);
            let len = p.len();
            p.resize(len + 16, 0);
            let n = enc.protect_rtp(&mut p, len).unwrap();
            sender.send_to(&p[..n], server_in).unwrap();
        }
    };
    let (stats_before, _) = call(a, "GET", &stats_path, None).await;
    assert_eq!(stats_before, 200);
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    send(&sender, &mut context(&wrong), 1, 20);
    let dropped = poll_json(a, &stats_path, |v| srtp_drops(v) >= 20).await;
    assert_eq!(
        srtp_drops(&dropped),
        20,
        "each wrongly keyed packet counted: {dropped}"
    );
    assert_eq!(dropped[0]["rtpPacketsReceived"], 0, "{dropped}");

    // The right key: forwarded, with the payload sent.
    let got = tokio::task::spawn_blocking(move || {
        let mut seq = 100;
        let mut enc = context(&right);
        receive_rtp(&receiver, Duration::from_millis(100), 5, || {
            send(&sender, &mut enc, seq, 5);
            seq += 5;
        })
    })
    .await
    .unwrap();
    assert!(
        got.len() >= 5,
        "forwarded with the right key: {}",
        got.len()
    );
    for (ssrc, payload) in &got {
        assert_eq!(*ssrc, out_ssrc);
        let text = String::from_utf8_lossy(payload);
        assert!(
            text.starts_with("ringsfu plain srtp packet 00"),
            "clear payload: {text:?}"
        );
    }
    let after = get_json(a, &stats_path).await;
    assert_eq!(
        srtp_drops(&after),
        20,
        "no drop with the right key: {after}"
    );
    assert!(
        after[0]["rtpPacketsReceived"].as_u64().unwrap() >= 5,
        "{after}"
    );
}

/// A receiver report (RTCP RR, PT 201) from `ssrc` with no report blocks.
fn receiver_report(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 201, 0, 1];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p
}

/// mediasoup's PlainTransport latches a comedia rtcp-mux transport's remote on RTCP too: a
/// receive-only peer (a recorder) that sends a receiver report before any RTP gets the media of
/// a producer in the room, at the address its RTCP came from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comedia_rtcp_mux_transport_latches_on_rtcp_first() {
    let s = ringsfu::start(test_config(1)).await.expect("server starts");
    let a = s.local_addr();
    let r = "/rooms/comediartcp";
    let tr = add_broadcaster(a, r, "tx", "Sender", None).await;
    let rx = add_broadcaster(a, r, "rec", "Recorder", Some(consumer_caps())).await;
    // The sender: a comedia plain transport latched by its RTP.
    let send_t = ok_json(
        a,
        &tr,
        Some(json!({"type": "plain", "comedia": true, "rtcpMux": true})),
    )
    .await;
    let send_id = send_t["id"].as_str().unwrap();
    let producer = opus_producer(a, &format!("{tr}/{send_id}")).await;
    let pid = producer["id"].as_str().unwrap();

    // The recorder: comedia, rtcp-mux, never sends RTP, never calls connect().
    let rec_t = ok_json(
        a,
        &rx,
        Some(json!({"type": "plain", "comedia": true, "rtcpMux": true})),
    )
    .await;
    let rec_id = rec_t["id"].as_str().unwrap();
    let consumer = ok_json(a, &format!("{rx}/{rec_id}/consume?producerId={pid}"), None).await;
    let out_ssrc = first_ssrc(&consumer);
    let recorder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rec_port = recorder.local_addr().unwrap().port();
    let rec_server: SocketAddr = format!("127.0.0.1:{}", rec_t["port"]).parse().unwrap();
    let stats_path = format!("{rx}/{rec_id}/stats");
    let before = get_json(a, &stats_path).await;
    assert!(
        before[0]["tuple"].get("remotePort").is_none(),
        "no remote before any packet: {before}"
    );

    // The recorder's first packet is RTCP: it must teach the transport its address.
    recorder
        .send_to(&receiver_report(0xdead_beef), rec_server)
        .unwrap();
    let latched = poll_json(a, &stats_path, |v| {
        v[0]["rtcpPacketsReceived"].as_u64() >= Some(1)
    })
    .await;
    assert_eq!(
        latched[0]["rtcpPacketsReceived"], 1,
        "the receiver report is accepted: {latched}"
    );
    assert_eq!(
        latched[0]["tuple"]["remotePort"], rec_port,
        "remote learned from RTCP: {latched}"
    );

    // Media from the sender reaches the recorder's socket.
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let send_server: SocketAddr = format!("127.0.0.1:{}", send_t["port"]).parse().unwrap();
    let got = tokio::task::spawn_blocking(move || {
        let mut seq = 0u16;
        receive_rtp(&recorder, Duration::from_millis(50), 5, || {
            seq += 1;
            let (p, _) = rtp_packet(seq);
            sender.send_to(&p, send_server).unwrap();
        })
    })
    .await
    .unwrap();
    assert!(
        got.len() >= 5,
        "media reached the recorder latched by RTCP: {} packets",
        got.len()
    );
    for (ssrc, payload) in &got {
        assert_eq!(*ssrc, out_ssrc);
        let text = String::from_utf8_lossy(payload);
        assert!(
            text.starts_with("ringsfu plain srtp packet "),
            "payload forwarded: {text:?}"
        );
    }
    // Once latched, RTCP from another address is dropped: the tuple stays.
    let other = UdpSocket::bind("127.0.0.1:0").unwrap();
    other
        .send_to(&receiver_report(0xdead_beef), rec_server)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = get_json(a, &stats_path).await;
    assert_eq!(after[0]["tuple"]["remotePort"], rec_port, "{after}");
    assert_eq!(after[0]["rtcpPacketsReceived"], 1, "{after}");
}
