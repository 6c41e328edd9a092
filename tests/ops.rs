//! Operations features against a real server: `/metrics` (parsed by `promtool check metrics`,
//! counters moving under plain-RTP traffic), Origin checks on the HTTP API and the WebSocket,
//! admin access, drain mode, and the JWT-gated room (`lua/rooms/token_room.lua`).

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// One request with extra headers; returns (status, headers text lowercased, body).
async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let a = call_with(addr, method, path, headers, body).await;
    (a.status, a.head, a.body)
}

async fn post_ok(addr: SocketAddr, path: &str, body: Value) -> Value {
    let a = call_raw(addr, "POST", path, &body.to_string()).await;
    assert_eq!(a.status, 200, "POST {path}: {}", a.body);
    if a.body.is_empty() {
        Value::Null
    } else {
        a.json()
    }
}

/// The value of the sample `name{labels}` (labels as written by the encoder, e.g.
/// `worker="0"`), or None.
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
}

/// Runs `promtool check metrics` on `text`; panics with its output when it complains.
fn promtool_check(text: &str) {
    use std::io::Write;
    let mut child = match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            panic!("promtool is needed (Debian package prometheus; .ci/run installs it): {e}")
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- exposition ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn metrics(addr: SocketAddr) -> String {
    let (status, head, body) = raw(addr, "GET", "/metrics", &[], "").await;
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("content-type: text/plain"), "{head}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_move_under_traffic() {
    let s = ringsfu::start(test_config(1)).await.expect("server starts");
    let a = s.local_addr();
    let before = metrics(a).await;
    promtool_check(&before);
    assert_eq!(
        sample(&before, "ringsfu_forwarded_packets_total", "worker=\"0\""),
        Some(0.0),
        "{before}"
    );
    assert_eq!(sample(&before, "ringsfu_rooms", "worker=\"0\""), Some(0.0));

    // A broadcaster sends plain RTP; another consumes it to a local socket.
    let r = "/rooms/metrics";
    post_ok(
        a,
        &format!("{r}/broadcasters"),
        json!({"id": "tx", "displayName": "tx", "device": {"name": "t"}}),
    )
    .await;
    let caps = json!({
        "codecs": [{"kind": "audio", "mimeType": "audio/opus", "preferredPayloadType": 100,
                    "clockRate": 48000, "channels": 2, "rtcpFeedback": []}],
        "headerExtensions": []
    });
    post_ok(
        a,
        &format!("{r}/broadcasters"),
        json!({"id": "rx", "displayName": "rx", "device": {"name": "t"}, "rtpCapabilities": caps}),
    )
    .await;
    let tx = format!("{r}/broadcasters/tx/transports");
    let rx = format!("{r}/broadcasters/rx/transports");
    let send_t = post_ok(
        a,
        &tx,
        json!({"type": "plain", "comedia": true, "rtcpMux": true}),
    )
    .await;
    let recv_t = post_ok(
        a,
        &rx,
        json!({"type": "plain", "comedia": false, "rtcpMux": true}),
    )
    .await;
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let recv_id = recv_t["id"].as_str().unwrap();
    post_ok(
        a,
        &format!("{rx}/{recv_id}/plain/connect"),
        json!({"ip": "127.0.0.1", "port": receiver.local_addr().unwrap().port()}),
    )
    .await;
    let send_id = send_t["id"].as_str().unwrap();
    let producer = post_ok(a, &format!("{tx}/{send_id}/producers"), json!({"kind": "audio", "rtpParameters": {
        "codecs": [{"mimeType": "audio/opus", "payloadType": 100, "clockRate": 48000, "channels": 2}],
        "encodings": [{"ssrc": 1111}]}})).await;
    let pid = producer["id"].as_str().unwrap();
    post_ok(
        a,
        &format!("{rx}/{recv_id}/consume?producerId={pid}"),
        Value::Null,
    )
    .await;

    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dest: SocketAddr = format!("127.0.0.1:{}", send_t["port"]).parse().unwrap();
    const N: u16 = 200;
    let mut got = 0;
    for seq in 0..N {
        let mut p = vec![0x80, 100];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
        p.extend_from_slice(&1111u32.to_be_bytes());
        p.extend_from_slice(&[0xab; 100]);
        sender.send_to(&p, dest).unwrap();
        if seq % 20 == 19 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let mut buf = [0u8; 2048];
    let deadline = std::time::Instant::now() + WAIT;
    while got < N as usize && std::time::Instant::now() < deadline {
        if receiver.recv(&mut buf).is_ok() {
            got += 1;
        }
    }
    assert!(got > N as usize / 2, "only {got} of {N} packets forwarded");

    let after = metrics(a).await;
    promtool_check(&after);
    let w = "worker=\"0\"";
    let v = |name: &str| sample(&after, name, w).unwrap_or_else(|| panic!("no {name} in\n{after}"));
    assert!(
        v("ringsfu_rtp_packets_received_total") >= got as f64,
        "{after}"
    );
    assert!(v("ringsfu_rtp_received_bytes_total") >= 100.0 * got as f64);
    assert!(
        v("ringsfu_forwarded_packets_total") >= got as f64,
        "{after}"
    );
    assert!(v("ringsfu_datagrams_received_total") >= got as f64);
    assert!(v("ringsfu_datagrams_sent_total") >= got as f64);
    assert!(
        v("ringsfu_lua_invocations_total") >= 8.0,
        "every HTTP call runs Lua: {after}"
    );
    assert!(v("ringsfu_lua_busy_seconds_total") > 0.0);
    assert!(v("ringsfu_lua_memory_bytes") > 0.0);
    assert_eq!(v("ringsfu_rooms"), 1.0);
    assert_eq!(
        sample(&after, "ringsfu_producers", "worker=\"0\",kind=\"audio\""),
        Some(1.0),
        "{after}"
    );
    assert_eq!(
        sample(&after, "ringsfu_consumers", "worker=\"0\",kind=\"audio\""),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &after,
            "ringsfu_transports",
            "worker=\"0\",type=\"plain\",state=\"connected\""
        ),
        Some(2.0),
        "{after}"
    );
    assert!(sample(&after, "process_resident_memory_bytes", "").unwrap() > 1e6);
    assert!(sample(&after, "process_cpu_seconds_total", "").unwrap() > 0.0);

    // Garbage on the transport's port from a stranger is dropped and counted by reason.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..25 {
        stranger
            .send_to(
                &[0x80, 100, 0, 1, 0, 0, 0, 1, 0, 0, 0x04, 0x57, 1, 2, 3],
                dest,
            )
            .unwrap();
    }
    let mut dropped = 0.0;
    for _ in 0..100 {
        let m = metrics(a).await;
        dropped = sample(
            &m,
            "ringsfu_dropped_packets_total",
            "worker=\"0\",reason=\"plain_wrong_source\"",
        )
        .unwrap_or(0.0);
        if dropped >= 25.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(dropped >= 25.0, "plain_wrong_source drops: {dropped}");

    // Closing the consumer's transport keeps the totals (counters never go down).
    let a2 = call_raw(a, "DELETE", &format!("{r}/broadcasters/rx"), "").await;
    assert_eq!(a2.status, 200, "{}", a2.body);
    let closed = metrics(a).await;
    assert!(
        sample(&closed, "ringsfu_forwarded_packets_total", w).unwrap()
            >= v("ringsfu_forwarded_packets_total"),
        "{closed}"
    );
    assert_eq!(
        sample(&closed, "ringsfu_consumers", "worker=\"0\",kind=\"audio\""),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_broadcaster_post_is_refused_by_default_and_allowed_when_configured() {
    let body = json!({"id": "b1", "displayName": "B", "device": {"name": "x"}}).to_string();
    let ct = ("Content-Type", "text/plain");
    let s = ringsfu::start(test_config(1)).await.expect("server starts");
    let a = s.local_addr();
    let (status, head, text) = raw(
        a,
        "POST",
        "/rooms/co/broadcasters",
        &[("Origin", "http://evil.example"), ct],
        &body,
    )
    .await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("not allowed"), "{text}");
    assert!(!head.contains("access-control-allow-origin"), "{head}");
    // The broadcaster was not created: the same id can be created now (409 if it existed).
    let (status, _, text) = raw(a, "POST", "/rooms/co/broadcasters", &[ct], &body).await;
    assert_eq!(status, 200, "{text}");

    let mut c = test_config(1);
    c.security.cors_origins = vec!["http://app.example:8080".into()];
    let s2 = ringsfu::start(c).await.expect("server starts");
    let a2 = s2.local_addr();
    let (status, head, text) = raw(
        a2,
        "POST",
        "/rooms/co/broadcasters",
        &[("Origin", "http://app.example:8080"), ct],
        &body,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(
        head.contains("access-control-allow-origin: http://app.example:8080"),
        "{head}"
    );
    let (status, _, _) = raw(
        a2,
        "OPTIONS",
        "/rooms/co/broadcasters",
        &[
            ("Origin", "http://app.example:8080"),
            ("Access-Control-Request-Method", "POST"),
        ],
        "",
    )
    .await;
    assert_eq!(status, 204);
    let (status, _, _) = raw(
        a2,
        "POST",
        "/rooms/co/broadcasters",
        &[("Origin", "http://other.example"), ct],
        &body,
    )
    .await;
    assert_eq!(status, 403);
    drop(s);
    drop(s2);
}

/// Opens the protoo WebSocket with headers; Ok(client) or Err(status, body).
async fn ws_with(addr: SocketAddr, query: &str, origin: Option<&str>) -> Result<(), (u16, String)> {
    ws_at(addr, &format!("/?{query}"), Some("protoo"), origin).await
}

/// Opens a WebSocket to `path_and_query`; Err: the refusal's status and body.
async fn ws_at(
    addr: SocketAddr,
    path_and_query: &str,
    subprotocol: Option<&str>,
    origin: Option<&str>,
) -> Result<(), (u16, String)> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}{path_and_query}")
        .into_client_request()
        .unwrap();
    if let Some(p) = subprotocol {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", p.parse().unwrap());
    }
    if let Some(o) = origin {
        req.headers_mut().insert("Origin", o.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => Ok(()),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err((
            resp.status().as_u16(),
            resp.body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default(),
        )),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_from_a_disallowed_origin_is_refused() {
    let mut c = test_config(1);
    c.security.ws_origins = vec!["https://app.example".into()];
    let s = ringsfu::start(c).await.expect("server starts");
    let a = s.local_addr();
    let (status, reason) = ws_with(a, "roomId=o&peerId=p1", Some("https://evil.example"))
        .await
        .unwrap_err();
    assert_eq!(status, 403);
    assert!(reason.contains("https://evil.example"), "{reason}");
    ws_with(a, "roomId=o&peerId=p2", Some("https://app.example"))
        .await
        .expect("configured origin");
    ws_with(a, "roomId=o&peerId=p3", None)
        .await
        .expect("no Origin: not a browser");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_sessions_from_a_disallowed_origin_are_refused() {
    // The 1:1 call endpoints (socket.io and the plain /call WebSocket) follow security.wsOrigins.
    let mut c = test_config(1);
    c.security.ws_origins = vec!["https://app.example".into()];
    let s = ringsfu::start(c).await.expect("server starts");
    let a = s.local_addr();
    let polling = "/socket.io/?EIO=4&transport=polling";
    let (status, _, body) = raw(a, "GET", polling, &[("Origin", "https://evil.example")], "").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("security.wsOrigins"), "{body}");
    let (status, head, body) =
        raw(a, "GET", polling, &[("Origin", "https://app.example")], "").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        head.contains("access-control-allow-origin: https://app.example"),
        "{head}"
    );
    let (status, _, body) = raw(a, "GET", polling, &[], "").await;
    assert_eq!(status, 200, "no Origin: {body}");
    let (status, reason) = ws_at(a, "/call", None, Some("https://evil.example"))
        .await
        .unwrap_err();
    assert_eq!(status, 403, "{reason}");
    assert!(reason.contains("https://evil.example"), "{reason}");
    ws_at(a, "/call", None, Some("https://app.example"))
        .await
        .expect("configured origin opens /call");
    let ws = "/socket.io/?EIO=4&transport=websocket";
    let (status, _) = ws_at(a, ws, None, Some("https://evil.example"))
        .await
        .unwrap_err();
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_refuses_new_rooms_while_existing_rooms_go_on() {
    let s = ringsfu::start(test_config(1)).await.expect("server starts");
    let a = s.local_addr();
    let _p1 = Client::connect(a, "old", "p1").await.expect("connects");
    assert!(eventually(|| s.room_count() == 1).await);
    let (status, _, text) = raw(a, "POST", "/admin/drain", &[], "").await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["draining"],
        true
    );
    match Client::connect(a, "new", "p2").await {
        Err(ConnectError::Http(503, reason)) => assert!(reason.contains("draining"), "{reason}"),
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("a new room was opened while draining"),
    }
    let http_new = call_raw(a, "GET", "/rooms/new2", "").await;
    assert_eq!(http_new.status, 503, "{}", http_new.body);
    // The existing room still takes peers.
    let _p3 = Client::connect(a, "old", "p3")
        .await
        .expect("existing room still open");
    let m = metrics(a).await;
    assert_eq!(sample(&m, "ringsfu_draining", ""), Some(1.0));
    assert!(sample(&m, "ringsfu_rooms_refused_draining_total", "").unwrap() >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_need_a_token_when_the_token_is_set_but_loopback_stays_open() {
    // Every test client is on loopback: loopback is allowed with or without a token; the
    // non-loopback rule is covered by ringsfu::ops's unit test.
    let mut c = test_config(1);
    c.security.admin_token = Some("0123456789abcdef0123".into());
    let s = ringsfu::start(c).await.expect("server starts");
    let (status, _, body) = raw(s.local_addr(), "GET", "/admin/status", &[], "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["draining"],
        false
    );
}

const KEY: &str = "a-shared-secret-for-the-token-test";

fn token(room: &str, exp_in: i64, key: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    ringsfu::ops::jwt::sign_hs256(&json!({"room": room, "exp": now + exp_in, "sub": "u"}), key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_room_admits_good_tokens_only() {
    let mut c = test_config(1);
    c.security.token_key = Some(KEY.into());
    let s = ringsfu::start(c).await.expect("server starts");
    let a = s.local_addr();
    let room = "secure-r1";
    let good = token(room, 60, KEY);
    // protoo peers.
    let mut peer = Client::connect_query(a, &format!("roomId={room}&peerId=p1&token={good}"))
        .await
        .expect("good token admitted");
    peer.wait_for("mediasoup-version").await;
    let cases = [
        (None, 401, "a token is required"),
        (Some(token(room, -120, KEY)), 401, "token expired"),
        (
            Some(token("secure-other", 60, KEY)),
            403,
            "not for room secure-r1",
        ),
        (Some(token(room, 60, "another-key")), 401, "bad signature"),
        (Some("not.a.jwt".to_owned()), 401, "token refused"),
    ];
    for (t, want, needle) in &cases {
        let q = match t {
            Some(t) => format!("roomId={room}&peerId=p2&token={t}"),
            None => format!("roomId={room}&peerId=p2"),
        };
        match Client::connect_query(a, &q).await {
            Err(ConnectError::Http(status, reason)) => {
                assert_eq!(status, *want, "{needle}: {reason}");
                assert!(reason.contains(needle), "{needle}: {reason}");
            }
            Err(e) => panic!("{e:?}"),
            Ok(_) => panic!("{needle}: admitted"),
        }
    }
    // Broadcasters (HTTP API): Authorization: Bearer, or ?token=.
    let body = json!({"id": "b1", "displayName": "B", "device": {"name": "x"}}).to_string();
    let bearer = format!("Bearer {good}");
    let (status, _, text) = raw(
        a,
        "POST",
        &format!("/rooms/{room}/broadcasters"),
        &[("Authorization", &bearer)],
        &body,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let (status, _, text) = raw(
        a,
        "GET",
        &format!("/rooms/{room}/broadcasters/b1?token={good}"),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    for (t, want) in [
        (token(room, -120, KEY), 401),
        (token("secure-x", 60, KEY), 403),
        (token(room, 60, "nope"), 401),
    ] {
        let bearer = format!("Bearer {t}");
        let (status, _, text) = raw(
            a,
            "GET",
            &format!("/rooms/{room}/broadcasters/b1"),
            &[("Authorization", &bearer)],
            "",
        )
        .await;
        assert_eq!(status, want, "{text}");
    }
    let (status, _, _) = raw(a, "GET", &format!("/rooms/{room}/broadcasters/b1"), &[], "").await;
    assert_eq!(status, 401);
    // Other rooms are not gated.
    Client::connect(a, "plain-room", "p9")
        .await
        .expect("ungated room");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_room_refuses_everyone_without_a_key() {
    let s = ringsfu::start(test_config(1)).await.expect("server starts");
    let good = token("secure-k", 60, KEY);
    match Client::connect_query(
        s.local_addr(),
        &format!("roomId=secure-k&peerId=p&token={good}"),
    )
    .await
    {
        Err(ConnectError::Http(503, reason)) => assert!(reason.contains("tokenKey"), "{reason}"),
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("admitted without a configured key"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_page_loads_and_its_favicon_request_is_no_error() {
    let s = ringsfu::start(test_config(1)).await.expect("server starts");
    let (status, head, body) = raw(s.local_addr(), "GET", "/", &[], "").await;
    assert_eq!(status, 200);
    assert!(head.contains("text/html"), "{head}");
    assert!(
        body.contains("<html") || body.contains("<!doctype"),
        "{body}"
    );
    let (status, _, body) = raw(s.local_addr(), "GET", "/favicon.ico", &[], "").await;
    assert_eq!(status, 204, "{body}");
}
