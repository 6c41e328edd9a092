//! protoo WebSocket front end over real sockets on 127.0.0.1.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use ringsfu_plugins::{PeerInbound, ProtooError};
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn missing_subprotocol_is_403() {
    let mut f = start(config(|_| {})).await;
    assert_eq!(
        ws_refused_status(f.addr(), "roomId=r&peerId=p", None).await,
        403
    );
    assert_eq!(
        ws_refused_status(f.addr(), "roomId=r&peerId=p", Some("chat, Protoo")).await,
        403,
        "subprotocol names are case-sensitive"
    );
    assert!(f.accepted.try_recv().is_err(), "handler must not be asked");
}

/// Opens the protoo WebSocket with an `Origin` header; the upgrade's HTTP status.
async fn ws_with_origin(addr: std::net::SocketAddr, origin: &str) -> u16 {
    let url = format!("ws://{addr}/?roomId=r&peerId=p");
    let mut req = ws_request(&url, Some("protoo"));
    req.headers_mut().insert(
        "origin",
        tokio_tungstenite::tungstenite::http::HeaderValue::from_str(origin).unwrap(),
    );
    match tokio_tungstenite::connect_async(req).await {
        Ok((_ws, resp)) => resp.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[tokio::test]
async fn websocket_from_a_disallowed_origin_is_403() {
    let mut f = start(config(|_| {})).await;
    // Default: same origin only.
    assert_eq!(ws_with_origin(f.addr(), "https://evil.example").await, 403);
    assert!(f.accepted.try_recv().is_err(), "handler must not be asked");
    // The server's own origin, and clients sending no Origin (not browsers), are accepted.
    assert_eq!(
        ws_with_origin(f.addr(), &format!("http://{}", f.addr())).await,
        101
    );
    f.next_peer().await;

    let mut f = start(config(|c| {
        c.ws_origins = ringsfu_plugins::OriginList::new(["http://127.0.0.1:*"]).unwrap();
    }))
    .await;
    assert_eq!(ws_with_origin(f.addr(), "http://127.0.0.1:9").await, 101);
    f.next_peer().await;
    assert_eq!(ws_with_origin(f.addr(), "http://localhost:9").await, 403);
    assert!(f.accepted.try_recv().is_err());
}

#[tokio::test]
async fn missing_or_empty_ids_are_400() {
    let mut f = start(config(|_| {})).await;
    for query in [
        "roomId=r",
        "peerId=p",
        "roomId=r&peerId=",
        "roomId=&peerId=p",
        "",
    ] {
        assert_eq!(
            ws_refused_status(f.addr(), query, Some("protoo")).await,
            400,
            "query {query:?}"
        );
    }
    assert!(f.accepted.try_recv().is_err(), "handler must not be asked");
}

#[tokio::test]
async fn handler_rejection_sets_the_status() {
    let f = start(config(|_| {})).await;
    assert_eq!(
        ws_refused_status(f.addr(), "roomId=r&peerId=reject-1", Some("protoo")).await,
        409
    );
}

#[tokio::test]
async fn accepted_peer_gets_ids_query_and_subprotocol() {
    let mut f = start(config(|_| {})).await;
    let (_ws, proto) = ws_connect(f.addr(), "roomId=room%201&peerId=abc&consumerReplicas=2").await;
    assert_eq!(proto.as_deref(), Some("protoo"));
    let a = f.next_peer().await;
    assert_eq!(a.peer.room_id(), "room 1");
    assert_eq!(a.peer.peer_id(), "abc");
    assert!(a
        .query
        .contains(&("consumerReplicas".to_owned(), "2".to_owned())));
    assert!(a.remote_addr.ip().is_loopback());
    assert!(!a.peer.is_closed());
}

#[tokio::test]
async fn messages_sent_during_connect_arrive_first() {
    let mut f = start(config(|_| {})).await;
    let addr = f.addr();
    let client = tokio::spawn(async move { ws_connect(addr, "roomId=r&peerId=p").await });
    let a = f.next_peer().await;
    // Sent before the 101 answer went out: must be queued, not lost.
    a.peer
        .notify("mediasoup-version", json!({"version": "3.14.16"}));
    let (mut ws, _) = client.await.unwrap();
    assert_eq!(
        recv_json(&mut ws).await,
        json!({"notification": true, "method": "mediasoup-version", "data": {"version": "3.14.16"}})
    );
}

#[tokio::test]
async fn client_request_reaches_handler_and_response_keeps_its_id() {
    let mut f = start(config(|_| {})).await;
    let (mut ws, _) = ws_connect(f.addr(), "roomId=r&peerId=p").await;
    let mut a = f.next_peer().await;

    send_json(
        &mut ws,
        json!({"request": true, "id": 5342671, "method": "getRouterRtpCapabilities", "data": {}}),
    )
    .await;
    send_json(
        &mut ws,
        json!({"request": true, "id": 881, "method": "connectWebRtcTransport"}),
    )
    .await;
    assert_eq!(
        a.next().await,
        PeerInbound::Request {
            id: 5342671,
            method: "getRouterRtpCapabilities".into(),
            data: json!({})
        }
    );
    assert_eq!(
        a.next().await,
        PeerInbound::Request {
            id: 881,
            method: "connectWebRtcTransport".into(),
            data: json!({})
        }
    );
    // Answered out of order, as the spec allows.
    a.peer
        .respond_error(881, 500, "transport with id \"abc\" not found");
    a.peer
        .respond_ok(5342671, json!({"codecs": [], "headerExtensions": []}));
    assert_eq!(
        recv_json(&mut ws).await,
        json!({"response": true, "id": 881, "errorCode": 500, "errorReason": "transport with id \"abc\" not found"})
    );
    assert_eq!(
        recv_json(&mut ws).await,
        json!({"response": true, "id": 5342671, "ok": true, "data": {"codecs": [], "headerExtensions": []}})
    );
}

#[tokio::test]
async fn server_requests_are_matched_to_responses() {
    let mut f = start(config(|_| {})).await;
    let (mut ws, _) = ws_connect(f.addr(), "roomId=r&peerId=p").await;
    let a = f.next_peer().await;

    let first = tokio::spawn(a.peer.request("newConsumer", json!({"id": "c1"})));
    let second = tokio::spawn(a.peer.request("newDataConsumer", json!({"id": "d1"})));
    let r1 = recv_json(&mut ws).await;
    let r2 = recv_json(&mut ws).await;
    for r in [&r1, &r2] {
        assert_eq!(r["request"], json!(true));
        let id = r["id"].as_u64().expect("numeric id");
        assert!(id <= 10_000_000, "protoo id range");
    }
    assert_eq!(r1["method"], "newConsumer");
    assert_eq!(r1["data"], json!({"id": "c1"}));
    assert_eq!(r2["method"], "newDataConsumer");
    assert_ne!(r1["id"], r2["id"]);

    // Answer the second first: each answer must reach its own request.
    send_json(&mut ws, json!({"response": true, "id": r2["id"], "errorCode": 403, "errorReason": "I do not want to data consume"})).await;
    send_json(
        &mut ws,
        json!({"response": true, "id": r1["id"], "ok": true, "data": {"accepted": 1}}),
    )
    .await;
    assert_eq!(
        tokio::time::timeout(WAIT, second).await.unwrap().unwrap(),
        Err(ProtooError::Response {
            code: 403,
            reason: "I do not want to data consume".into()
        })
    );
    assert_eq!(
        tokio::time::timeout(WAIT, first).await.unwrap().unwrap(),
        Ok(json!({"accepted": 1}))
    );
}

#[tokio::test]
async fn notifications_flow_both_ways() {
    let mut f = start(config(|_| {})).await;
    let (mut ws, _) = ws_connect(f.addr(), "roomId=r&peerId=p").await;
    let mut a = f.next_peer().await;

    a.peer.notify("peerClosed", json!({"peerId": "x7k2m9qa"}));
    assert_eq!(
        recv_json(&mut ws).await,
        json!({"notification": true, "method": "peerClosed", "data": {"peerId": "x7k2m9qa"}})
    );
    send_json(
        &mut ws,
        json!({"notification": true, "method": "hello", "data": {"n": 1}}),
    )
    .await;
    assert_eq!(
        a.next().await,
        PeerInbound::Notification {
            method: "hello".into(),
            data: json!({"n": 1})
        }
    );
}

#[tokio::test]
async fn malformed_messages_are_dropped_and_connection_survives() {
    let mut f = start(config(|_| {})).await;
    let (mut ws, _) = ws_connect(f.addr(), "roomId=r&peerId=p").await;
    let mut a = f.next_peer().await;

    for bad in [
        "{not json",
        "[1,2,3]",
        "\"just a string\"",
        r#"{"id":1,"method":"noKind"}"#,
        r#"{"request":true,"method":"noId"}"#,
        r#"{"request":true,"id":2}"#,
        r#"{"response":true,"id":777,"ok":true}"#, // unknown response id
    ] {
        ws.send(Message::text(bad)).await.unwrap();
    }
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    send_json(
        &mut ws,
        json!({"request": true, "id": 3, "method": "ok", "data": {"x": true}}),
    )
    .await;
    // The first thing the handler sees is the valid request: everything before was dropped.
    assert_eq!(
        a.next().await,
        PeerInbound::Request {
            id: 3,
            method: "ok".into(),
            data: json!({"x": true})
        }
    );
    a.peer.respond_ok(3, json!({}));
    assert_eq!(
        recv_json(&mut ws).await,
        json!({"response": true, "id": 3, "ok": true, "data": {}})
    );
    assert!(!a.peer.is_closed());
}

#[tokio::test]
async fn client_close_delivers_closed_and_fails_pending_requests() {
    let mut f = start(config(|_| {})).await;
    let (mut ws, _) = ws_connect(f.addr(), "roomId=r&peerId=p").await;
    let mut a = f.next_peer().await;

    let pending = tokio::spawn(a.peer.request("newConsumer", json!({})));
    let _ = recv_json(&mut ws).await;
    ws.close(None).await.unwrap();
    match a.next().await {
        PeerInbound::Closed { reason } => assert!(reason.contains("closed by peer"), "{reason}"),
        other => panic!("expected Closed, got {other:?}"),
    }
    assert!(a.peer.is_closed());
    assert_eq!(
        tokio::time::timeout(WAIT, pending).await.unwrap().unwrap(),
        Err(ProtooError::PeerClosed)
    );
    assert_eq!(
        a.peer.request("late", json!({})).await,
        Err(ProtooError::PeerClosed)
    );
    // Closed is the last message.
    assert!(tokio::time::timeout(WAIT, a.inbound.recv())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn dropped_tcp_delivers_closed() {
    let mut f = start(config(|_| {})).await;
    let (ws, _) = ws_connect(f.addr(), "roomId=r&peerId=p").await;
    let mut a = f.next_peer().await;
    drop(ws);
    assert!(matches!(a.next().await, PeerInbound::Closed { .. }));
}

#[tokio::test]
async fn server_close_sends_4000() {
    let mut f = start(config(|_| {})).await;
    let (mut ws, _) = ws_connect(f.addr(), "roomId=r&peerId=p").await;
    let mut a = f.next_peer().await;
    a.peer.notify("bye", json!({}));
    a.peer.close();
    a.peer.notify("after-close", json!({})); // dropped
    assert_eq!(recv_json(&mut ws).await["method"], "bye");
    assert_eq!(recv_close_code(&mut ws).await, 4000);
    assert!(matches!(a.next().await, PeerInbound::Closed { .. }));
}

#[tokio::test]
async fn request_times_out() {
    let mut f = start(config(|c| c.request_timeout = Duration::from_millis(200))).await;
    let (mut ws, _) = ws_connect(f.addr(), "roomId=r&peerId=p").await;
    let a = f.next_peer().await;
    let started = std::time::Instant::now();
    let result = a.peer.request("newConsumer", json!({})).await;
    assert_eq!(result, Err(ProtooError::Timeout));
    assert!(started.elapsed() >= Duration::from_millis(200));
    // A late answer is dropped and the connection stays usable.
    let req = recv_json(&mut ws).await;
    send_json(
        &mut ws,
        json!({"response": true, "id": req["id"], "ok": true}),
    )
    .await;
    a.peer.notify("still", json!({}));
    assert_eq!(recv_json(&mut ws).await["method"], "still");
}

#[tokio::test]
async fn request_future_works_outside_tokio() {
    let mut f = start(config(|_| {})).await;
    let (mut ws, _) = ws_connect(f.addr(), "roomId=r&peerId=p").await;
    let a = f.next_peer().await;
    // Awaited on a plain thread with a minimal executor, like a worker thread would.
    let fut = a.peer.request("fromThread", json!({}));
    let thread = std::thread::spawn(move || futures_executor_block_on(fut));
    let req = recv_json(&mut ws).await;
    send_json(
        &mut ws,
        json!({"response": true, "id": req["id"], "ok": true, "data": [1, 2]}),
    )
    .await;
    // Joined off the runtime thread: the connection task must keep running meanwhile.
    let joined = tokio::task::spawn_blocking(move || thread.join().unwrap());
    assert_eq!(
        tokio::time::timeout(WAIT, joined).await.unwrap().unwrap(),
        Ok(json!([1, 2]))
    );
}

/// A tiny block_on (no extra dependency): parks the thread until woken.
fn futures_executor_block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn keepalive_drops_silent_peer_but_keeps_responsive_one() {
    let mut f = start(config(|c| {
        // Generous for a loaded machine: the live reader has 2 s to get scheduled and answer.
        c.ping_interval = Duration::from_millis(250);
        c.pong_timeout = Duration::from_secs(2);
    }))
    .await;
    // Responsive: the client library answers pings while we read.
    let (mut live, _) = ws_connect(f.addr(), "roomId=r&peerId=live").await;
    let mut live_peer = f.next_peer().await;
    // Silent: never read, so pings stay unanswered.
    let (_silent, _) = ws_connect(f.addr(), "roomId=r&peerId=silent").await;
    let mut silent_peer = f.next_peer().await;

    // The live client reads (and so answers pings) until the silent one was dropped and it has
    // seen at least 3 pings itself; events, not a time window, end it.
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let reader = tokio::spawn(async move {
        let mut pings = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            tokio::select! {
                _ = &mut stopped, if pings >= 3 => break,
                m = tokio::time::timeout_at(deadline, futures_util::StreamExt::next(&mut live)) => {
                    match m {
                        Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
                        Ok(Some(Ok(_))) => {}
                        _ => break,
                    }
                }
            }
        }
        (pings, live)
    });
    match silent_peer.next().await {
        PeerInbound::Closed { reason } => assert_eq!(reason, "keepalive timeout"),
        other => panic!("expected Closed, got {other:?}"),
    }
    let _ = stop.send(());
    let (pings, _live) = reader.await.unwrap();
    assert!(pings >= 3, "only {pings} pings seen");
    assert!(!live_peer.peer.is_closed());
    assert!(live_peer.inbound.try_recv().is_err());
}

#[tokio::test]
async fn oversized_frame_closes_with_1009() {
    let mut f = start(config(|c| c.max_ws_frame_bytes = 1000)).await;
    let (mut ws, _) = ws_connect(f.addr(), "roomId=r&peerId=p").await;
    let mut a = f.next_peer().await;
    let big = format!(
        r#"{{"notification":true,"method":"x","data":{{"pad":"{}"}}}}"#,
        "a".repeat(2000)
    );
    ws.send(Message::text(big)).await.unwrap();
    assert_eq!(recv_close_code(&mut ws).await, 1009);
    match a.next().await {
        PeerInbound::Closed { reason } => assert!(reason.contains("too big"), "{reason}"),
        other => panic!("expected Closed, got {other:?}"),
    }
}

#[tokio::test]
async fn long_outgoing_messages_are_fragmented_at_the_frame_limit() {
    let mut f = start(config(|c| c.max_ws_frame_bytes = 1000)).await;
    let url = format!("ws://{}/?roomId=r&peerId=p", f.addr());
    // This client refuses frames over 1000 bytes, so an unfragmented message would fail.
    let client_config = WebSocketConfig::default().max_frame_size(Some(1000));
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(
        ws_request(&url, Some("protoo")),
        Some(client_config),
        false,
    )
    .await
    .unwrap();
    let a = f.next_peer().await;
    let pad = "é".repeat(1500); // 3000 bytes of 2-byte chars: fragments split code points
    a.peer.notify("big", json!({"pad": pad}));
    assert_eq!(recv_json(&mut ws).await["data"]["pad"], json!(pad));
}

#[tokio::test]
async fn handler_dropping_inbound_closes_the_peer() {
    let mut f = start(config(|_| {})).await;
    let (mut ws, _) = ws_connect(f.addr(), "roomId=r&peerId=p").await;
    let a = f.next_peer().await;
    drop(a.inbound);
    send_json(&mut ws, json!({"notification": true, "method": "x"})).await;
    assert_eq!(recv_close_code(&mut ws).await, 4000);
    assert!(a.peer.is_closed());
}

#[tokio::test]
async fn shutdown_closes_peers_with_1001() {
    let mut f = start(config(|_| {})).await;
    let addr = f.addr();
    let (mut ws, _) = ws_connect(addr, "roomId=r&peerId=p").await;
    let mut a = f.next_peer().await;
    f.server.shutdown().await;
    assert_eq!(recv_close_code(&mut ws).await, 1001);
    assert!(matches!(a.next().await, PeerInbound::Closed { .. }));
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener must be closed"
    );
}
