//! The demo room (lua/rooms/demo.lua) on real media workers, driven at the protoo level like
//! the mediasoup-demo app does (no media is sent: these check the signaling and engine calls).

mod common;

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
    assert!(stats.is_array(), "{stats}");
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
    assert!(pstats.is_array(), "{pstats}");
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

    // produceData without sctpStreamParameters: refused, naming the field.
    let (code, reason) = err(&a
        .request("produceData", json!({"transportId": a_send}))
        .await);
    assert_eq!(code, 500);
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
