//! Each configured limit hit once on a real server: the error names the limit, a neighbouring
//! peer (or address, or room) is not affected, and `/metrics` counts the hit.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const OTHER_IP: [u8; 4] = [127, 0, 0, 2];

fn opus_params(ssrc: u32) -> Value {
    json!({
        "mid": ssrc.to_string(),
        "codecs": [{"mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2,
                    "parameters": {}, "rtcpFeedback": []}],
        "headerExtensions": [],
        "encodings": [{"ssrc": ssrc}],
        "rtcp": {"cname": "limits", "reducedSize": true}
    })
}

/// Connects `peer` to `room`, creates a send and a receive transport and joins.
async fn joined(addr: SocketAddr, room: &str, peer: &str) -> (Client, String) {
    let mut c = Client::connect(addr, room, peer).await.expect("connects");
    c.wait_for("mediasoup-version").await;
    let caps = ok(&c.request("getRouterRtpCapabilities", json!({})).await).clone();
    let send = ok(&c
        .request(
            "createWebRtcTransport",
            json!({"producing": true, "consuming": false}),
        )
        .await)
    .clone();
    ok(&c
        .request(
            "createWebRtcTransport",
            json!({"producing": false, "consuming": true}),
        )
        .await);
    ok(&c
        .request(
            "join",
            json!({"displayName": peer, "device": {"name": "t"}, "rtpCapabilities": caps}),
        )
        .await);
    (c, send["id"].as_str().unwrap().to_owned())
}

async fn limit_hits(addr: SocketAddr, limit: &str) -> f64 {
    let (status, body) = http(addr, "GET", "/metrics").await;
    assert_eq!(status, 200);
    let prefix = format!("ringsfu_limit_hits_total{{limit=\"{limit}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in\n{body}"))
}

fn refused(r: Result<Client, ConnectError>) -> (u16, String) {
    match r {
        Err(ConnectError::Http(status, reason)) => (status, reason),
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("accepted over the limit"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_and_peers_per_room() {
    let mut c = test_config(1);
    c.limits.rooms = 2;
    c.limits.peers_per_room = 2;
    // A room script lowering peersPerRoom for its rooms.
    let dir = std::env::temp_dir().join(format!("ringsfu-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("tiny.lua");
    std::fs::write(
        &script,
        "local demo = ringsfu.include('lua/rooms/demo.lua')\n\
         return setmetatable({ limits = { peersPerRoom = 1 } }, { __index = demo })\n",
    )
    .unwrap();
    c.rooms.insert(
        0,
        ringsfu::config::RoomRoute {
            pattern: "^tiny%-".into(),
            script: script.display().to_string(),
        },
    );
    let s = ringsfu::start(c).await.expect("server starts");
    let a = s.local_addr();
    let before_p = limit_hits(a, "peersPerRoom").await;
    let before_r = limit_hits(a, "rooms").await;

    let _a1 = Client::connect(a, "r1", "a1").await.expect("a1");
    let _a2 = Client::connect(a, "r1", "a2").await.expect("a2");
    let (status, reason) = refused(Client::connect(a, "r1", "a3").await);
    assert_eq!(status, 403);
    assert!(reason.contains("limit peersPerRoom (2)"), "{reason}");
    // A peer reconnecting with its id replaces itself: not over the limit.
    let _a2b = Client::connect(a, "r1", "a2").await.expect("a2 reconnects");

    // The room script's own limit.
    let _t1 = Client::connect(a, "tiny-1", "t1").await.expect("t1");
    let (status, reason) = refused(Client::connect(a, "tiny-1", "t2").await);
    assert_eq!(status, 403);
    assert!(reason.contains("limit peersPerRoom (1)"), "{reason}");

    // Two rooms open (r1, tiny-1): a third is refused, existing rooms still take peers.
    let (status, reason) = refused(Client::connect(a, "r3", "b1").await);
    assert_eq!(status, 429);
    assert!(reason.contains("limit rooms (2)"), "{reason}");
    let http_new = call_raw(a, "GET", "/rooms/r4", "").await;
    assert_eq!(http_new.status, 429, "{}", http_new.body);
    drop(_t1);
    // tiny-1 closes with its last peer: a new room fits again.
    assert!(eventually(|| s.room_count() == 1).await);
    Client::connect(a, "r3", "b1")
        .await
        .expect("room r3 after tiny-1 closed");

    assert!(limit_hits(a, "peersPerRoom").await >= before_p + 2.0);
    assert!(limit_hits(a, "rooms").await >= before_r + 2.0);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transports_producers_and_consumers_per_peer() {
    let mut c = test_config(1);
    c.limits.transports_per_peer = 2;
    c.limits.producers_per_peer = 1;
    c.limits.consumers_per_peer = 1;
    let s = ringsfu::start(c).await.expect("server starts");
    let a = s.local_addr();
    let (mut p, send) = joined(a, "lp", "p").await;
    let (code, reason) = err(&p
        .request(
            "createWebRtcTransport",
            json!({"producing": true, "consuming": false}),
        )
        .await);
    assert_eq!(
        (code, reason.as_str()),
        (429, "limit transportsPerPeer (2) reached")
    );
    ok(&p
        .request(
            "produce",
            json!({"transportId": send, "kind": "audio", "rtpParameters": opus_params(1111)}),
        )
        .await);
    let (code, reason) = err(&p
        .request(
            "produce",
            json!({"transportId": send, "kind": "audio", "rtpParameters": opus_params(2222)}),
        )
        .await);
    assert_eq!(
        (code, reason.as_str()),
        (429, "limit producersPerPeer (1) reached")
    );

    // A neighbour in the same room has its own counts: it produces too.
    let (mut q, q_send) = joined(a, "lp", "q").await;
    ok(&q
        .request(
            "produce",
            json!({"transportId": q_send, "kind": "audio", "rtpParameters": opus_params(3333)}),
        )
        .await);
    // p consumed q's producer (its first consumer); a late joiner consumes both producers
    // but only gets one consumer.
    let nc = p.wait_for("newConsumer").await;
    p.answer_ok(&nc["id"], json!({})).await;
    let (mut late, _) = joined(a, "lp", "late").await;
    let first = late.wait_for("newConsumer").await;
    late.answer_ok(&first["id"], json!({})).await;
    let second =
        tokio::time::timeout(Duration::from_millis(1500), late.wait_for("newConsumer")).await;
    assert!(
        second.is_err(),
        "a second consumer over consumersPerPeer (1): {second:?}"
    );
    assert!(limit_hits(a, "consumersPerPeer").await >= 1.0);
    assert!(limit_hits(a, "transportsPerPeer").await >= 1.0);
    assert!(limit_hits(a, "producersPerPeer").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_rates_per_connection_and_per_ip() {
    let mut c = test_config(1);
    c.limits.requests_per_second = 5;
    c.limits.requests_per_second_per_ip = 0;
    let s = ringsfu::start(c).await.expect("server starts");
    let a = s.local_addr();
    let mut busy = Client::connect(a, "rate", "busy").await.unwrap();
    let mut quiet = Client::connect(a, "rate", "quiet").await.unwrap();
    let mut limited = 0;
    for _ in 0..30 {
        let r = busy.request("getRouterRtpCapabilities", json!({})).await;
        if r.get("ok").is_none() {
            let (code, reason) = err(&r);
            assert_eq!(
                (code, reason.as_str()),
                (429, "limit requestsPerSecond (5/s) exceeded")
            );
            limited += 1;
        }
    }
    assert!(
        limited >= 10,
        "only {limited} of 30 refused with a 5/s limit (burst 10)"
    );
    // The neighbour (same IP, its own bucket) is not affected.
    ok(&quiet.request("getRouterRtpCapabilities", json!({})).await);
    assert!(limit_hits(a, "requestsPerSecond").await >= 10.0);

    // Per IP: two connections from 127.0.0.1 share 5/s; a peer from 127.0.0.2 does not.
    let mut c = test_config(1);
    c.limits.requests_per_second = 0;
    c.limits.requests_per_second_per_ip = 5;
    let s2 = ringsfu::start(c).await.expect("server starts");
    let a2 = s2.local_addr();
    let mut x = Client::connect(a2, "ip", "x").await.unwrap();
    let mut y = Client::connect(a2, "ip", "y").await.unwrap();
    let other = IpAddr::from(OTHER_IP);
    let mut z = Client::connect_from(other, a2, "roomId=ip&peerId=z")
        .await
        .expect("127.0.0.2 connects");
    let mut limited = 0;
    for i in 0..30 {
        let who = if i % 2 == 0 { &mut x } else { &mut y };
        let r = who.request("getRouterRtpCapabilities", json!({})).await;
        if r.get("ok").is_none() {
            let (code, reason) = err(&r);
            assert_eq!(
                (code, reason.as_str()),
                (429, "limit requestsPerSecondPerIp (5/s) exceeded")
            );
            limited += 1;
        }
    }
    assert!(limited >= 10, "only {limited} of 30 refused");
    for _ in 0..5 {
        ok(&z.request("getRouterRtpCapabilities", json!({})).await);
    }
    drop(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_ip_and_http_body_size() {
    let mut c = test_config(1);
    c.limits.connections_per_ip = 2;
    c.limits.http_body_bytes = 1000;
    let s = ringsfu::start(c).await.expect("server starts");
    let a = s.local_addr();
    let c1 = Client::connect(a, "cp", "c1").await.unwrap();
    let _c2 = Client::connect(a, "cp", "c2").await.unwrap();
    let (status, reason) = refused(Client::connect(a, "cp", "c3").await);
    assert_eq!(status, 429);
    assert!(reason.contains("limit connectionsPerIp (2)"), "{reason}");
    Client::connect_from(IpAddr::from(OTHER_IP), a, "roomId=cp&peerId=c4")
        .await
        .expect("another address is not affected");
    // A closed connection frees its slot.
    c1.close().await;
    let mut again = None;
    for _ in 0..100 {
        if let Ok(c) = Client::connect(a, "cp", "c5").await {
            again = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "slot not freed after close");

    let big = format!(
        r#"{{"id":"b","displayName":"{}","device":{{"name":"x"}}}}"#,
        "x".repeat(2000)
    );
    let r = call_raw(a, "POST", "/rooms/cp/broadcasters", &big).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.body.contains("limit httpBodyBytes"), "{}", r.body);
    let small = r#"{"id":"b","displayName":"B","device":{"name":"x"}}"#;
    assert_eq!(
        call_raw(a, "POST", "/rooms/cp/broadcasters", small)
            .await
            .status,
        200
    );
    assert!(limit_hits(a, "connectionsPerIp").await >= 1.0);
    assert!(limit_hits(a, "httpBodyBytes").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_over_the_bound_or_with_control_characters_are_refused() {
    let s = ringsfu::start(test_config(1)).await.expect("server starts");
    let a = s.local_addr();
    let long = "r".repeat(300);

    // protoo: a 300-byte room id, a peer id with a control character.
    let (status, reason) = refused(Client::connect(a, &long, "p1").await);
    assert_eq!(status, 400, "{reason}");
    assert!(reason.contains("limit idBytes (256)"), "{reason}");
    assert!(reason.contains("roomId"), "{reason}");
    let (status, reason) = refused(Client::connect_query(a, "roomId=ok&peerId=a%01b").await);
    assert_eq!(status, 400, "{reason}");
    assert!(reason.contains("control character"), "{reason}");
    assert!(reason.contains("peerId"), "{reason}");

    // HTTP: a long room id in the path, a long or control-character broadcaster id in the body.
    let small = r#"{"id":"b","displayName":"B","device":{"name":"x"}}"#;
    let r = call_raw(a, "POST", &format!("/rooms/{long}/broadcasters"), small).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("limit idBytes (256)"), "{}", r.body);
    let body = json!({"id": "b".repeat(300), "displayName": "B", "device": {"name": "x"}});
    let r = call_raw(a, "POST", "/rooms/ok/broadcasters", &body.to_string()).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("limit idBytes (256)"), "{}", r.body);
    assert!(r.body.contains("broadcaster id"), "{}", r.body);
    let body = json!({"id": "b\u{7}", "displayName": "B", "device": {"name": "x"}});
    let r = call_raw(a, "POST", "/rooms/ok/broadcasters", &body.to_string()).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("control character U+0007"), "{}", r.body);
    // WHIP/WHEP paths go through the same check.
    let r = call_raw(a, "POST", &format!("/whip/{long}"), "").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("limit idBytes (256)"), "{}", r.body);
    // None of that created a room.
    assert_eq!(s.room_count(), 0);

    // Ids at the bound, and the neighbours, are served.
    let _p = Client::connect(a, &"r".repeat(256), "p2")
        .await
        .expect("a 256-byte room id is accepted");
    let _q = Client::connect(a, "ok", "p3")
        .await
        .expect("neighbour joins");
    assert_eq!(
        call_raw(a, "POST", "/rooms/ok/broadcasters", small)
            .await
            .status,
        200
    );
    assert!(limit_hits(a, "idBytes").await >= 6.0);
}

/// Sends a `len`-byte POST (with Content-Length, or chunked), writing all of it before reading,
/// and returns the status line and body of the answer.
async fn big_post(addr: SocketAddr, len: usize, chunked: bool) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = if chunked {
        format!(
            "POST /rooms/big/broadcasters HTTP/1.1\r\nHost: {addr}\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
    } else {
        format!(
            "POST /rooms/big/broadcasters HTTP/1.1\r\nHost: {addr}\r\n\
             Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
        )
    };
    s.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent < len {
        let n = chunk.len().min(len - sent);
        let w = if chunked {
            let mut c = format!("{n:x}\r\n").into_bytes();
            c.extend_from_slice(&chunk[..n]);
            c.extend_from_slice(b"\r\n");
            s.write_all(&c).await
        } else {
            s.write_all(&chunk[..n]).await
        };
        w.unwrap_or_else(|e| panic!("the server broke the upload after {sent} bytes: {e}"));
        sent += n;
    }
    if chunked {
        s.write_all(b"0\r\n\r\n").await.unwrap();
    }
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf))
        .await
        .expect("answer in time")
        .unwrap_or_else(|e| panic!("reading the answer: {e} (got {} bytes)", buf.len()));
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_mb_post_gets_a_413_it_can_read() {
    let s = ringsfu::start(test_config(1)).await.expect("server starts");
    let a = s.local_addr();
    for chunked in [false, true] {
        let (status, body) = big_post(a, 20 << 20, chunked).await;
        assert!(
            status.contains(" 413 "),
            "chunked={chunked}: {status} {body}"
        );
        assert!(body.contains("limit httpBodyBytes"), "{body}");
    }
    assert_eq!(s.room_count(), 0);
    let small = r#"{"id":"b","displayName":"B","device":{"name":"x"}}"#;
    assert_eq!(
        call_raw(a, "POST", "/rooms/ok/broadcasters", small)
            .await
            .status,
        200
    );
}
