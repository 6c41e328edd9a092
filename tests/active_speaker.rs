//! Active speaker and scores end to end: two peers join the demo room (lua/rooms/demo.lua) over
//! protoo on a real server and send opus over real WebRTC transports (the independent webrtc-rs
//! peer of core/tests/common: ICE, DTLS, SRTP) with the RFC 6464 audio level extension, as a
//! browser does. The room's AudioLevelObserver must name in `activeSpeaker` the peer whose
//! producer is live while the other's is paused, switch when they swap, and announce silence
//! when both are paused; producers' `producerScore` and consumers' `consumerScore` reach the
//! peers as mediasoup-demo sends them.

mod common;
#[path = "../core/tests/common/mod.rs"]
mod rtc;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::sync::Mutex;

/// The audio level extension id of rtc::opus_producer_params.
const AUDIO_LEVEL_EXT: u8 = 1;

struct Peer {
    client: Arc<Mutex<Client>>,
    media: Arc<rtc::TestPeer>,
    producer_id: String,
}

/// Joins `room` as `name` with a send transport connected by the webrtc-rs peer and an opus
/// producer with SSRC `ssrc`.
async fn sending_peer(addr: SocketAddr, room: &str, name: &str, ssrc: u32) -> Peer {
    let (c, send, _) =
        join_with_transport(addr, room, name, true, rtc::chrome_rtp_capabilities()).await;
    let tid = send["id"].as_str().unwrap().to_owned();
    let client = Arc::new(Mutex::new(c));
    let media = connect_webrtc_peer(&client, &send).await;
    let produced = client
        .lock()
        .await
        .request(
            "produce",
            json!({"transportId": tid, "kind": "audio",
                   "rtpParameters": rtc::opus_producer_params(ssrc, "0"), "appData": {}}),
        )
        .await;
    let producer_id = ok(&produced)["id"].as_str().unwrap().to_owned();
    Peer {
        client,
        media: Arc::new(media),
        producer_id,
    }
}

/// Sends 20 ms opus packets carrying audio level `level` (-dBov, voice bit set) until `stop`.
fn talk(media: Arc<rtc::TestPeer>, ssrc: u32, level: u8, stop: Arc<AtomicBool>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut seq: u16 = 1000;
        let mut ts: u32 = 5000;
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let pkt = rtc::build_rtp(
                111,
                seq,
                ts,
                ssrc,
                false,
                &[(AUDIO_LEVEL_EXT, vec![0x80 | level])],
                &[0xf8, 0xff, 0xfe],
            );
            media.send_rtp(&pkt).await;
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(960);
        }
    });
}

/// Waits (up to `within`) for an `activeSpeaker` notification whose peerId is `want`
/// (None: silence), then checks that the next `confirm` ones say the same. Returns the
/// matching notification's data.
async fn expect_speaker(
    c: &Mutex<Client>,
    want: Option<&str>,
    within: Duration,
    confirm: usize,
) -> Value {
    let want_json = want.map_or(Value::Null, |w| json!(w));
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = Vec::new();
    let found = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no activeSpeaker {want:?} within {within:?}; saw {seen:?}"
        );
        let n = c.lock().await.wait_for("activeSpeaker").await;
        if n["data"]["peerId"] == want_json {
            break n["data"].clone();
        }
        seen.push(n["data"].clone());
    };
    for _ in 0..confirm {
        let n = c.lock().await.wait_for("activeSpeaker").await;
        assert_eq!(n["data"]["peerId"], want_json, "speaker flapped: {n}");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_speaker_follows_the_live_microphone() {
    let s = ringsfu::start(test_config(1)).await.expect("server starts");
    let addr = s.local_addr();
    let room = "speakers";
    let alice = sending_peer(addr, room, "alice", 0x1111).await;
    let bob = sending_peer(addr, room, "bob", 0x2222).await;
    let stop = Arc::new(AtomicBool::new(false));
    // Both microphones send all along, bob louder (-20 dBov) than alice (-35): only pausing
    // decides who is heard.
    talk(alice.media.clone(), 0x1111, 35, stop.clone());
    talk(bob.media.clone(), 0x2222, 20, stop.clone());

    // The first packets give each producer a score, sent to its own peer.
    let ps = alice.client.lock().await.wait_for("producerScore").await;
    assert_eq!(ps["data"]["producerId"], alice.producer_id.as_str(), "{ps}");
    assert_eq!(ps["data"]["score"][0]["score"], 10, "{ps}");
    assert_eq!(ps["data"]["score"][0]["ssrc"], 0x1111, "{ps}");
    assert_eq!(ps["data"]["score"][0]["encodingIdx"], 0, "{ps}");

    // Bob's producer paused (his mic off): alice is the active speaker, at her level.
    let r = bob
        .client
        .lock()
        .await
        .request("pauseProducer", json!({"producerId": bob.producer_id}))
        .await;
    ok(&r);
    let d = expect_speaker(&alice.client, Some("alice"), Duration::from_secs(8), 2).await;
    assert_eq!(d["volume"], -35, "{d}");
    // Bob hears it too (every joined peer is told).
    expect_speaker(&bob.client, Some("alice"), Duration::from_secs(8), 0).await;

    // Swap: bob resumes, alice pauses.
    ok(&alice
        .client
        .lock()
        .await
        .request("pauseProducer", json!({"producerId": alice.producer_id}))
        .await);
    ok(&bob
        .client
        .lock()
        .await
        .request("resumeProducer", json!({"producerId": bob.producer_id}))
        .await);
    let d = expect_speaker(&alice.client, Some("bob"), Duration::from_secs(8), 2).await;
    assert_eq!(d["volume"], -20, "{d}");

    // Both paused: silence (peerId null).
    ok(&bob
        .client
        .lock()
        .await
        .request("pauseProducer", json!({"producerId": bob.producer_id}))
        .await);
    expect_speaker(&alice.client, None, Duration::from_secs(8), 0).await;

    stop.store(true, Ordering::Relaxed);
    alice.media.close().await;
    bob.media.close().await;
}

/// A consumer's score follows what its peer reports: a receiver report with heavy loss makes the
/// demo send `consumerScore` with the consumer's score down and the producer's still 10.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_score_follows_receiver_reports() {
    use webrtc::rtcp::receiver_report::ReceiverReport;
    use webrtc::rtcp::reception_report::ReceptionReport;
    use webrtc::util::Marshal;

    let s = ringsfu::start(test_config(1)).await.expect("server starts");
    let addr = s.local_addr();
    let room = "scores";
    let alice = sending_peer(addr, room, "alice", 0x3333).await;
    let stop = Arc::new(AtomicBool::new(false));
    talk(alice.media.clone(), 0x3333, 30, stop.clone());

    // Carol consumes: receive transport, join, accept newConsumer, connect with webrtc-rs.
    let (mut c, recv, _) =
        join_with_transport(addr, room, "carol", false, rtc::chrome_rtp_capabilities()).await;
    let nc = c.wait_for("newConsumer").await;
    c.answer_ok(&nc["id"], json!({})).await;
    let consumer_id = nc["data"]["id"].as_str().unwrap().to_owned();
    let consumer_ssrc = nc["data"]["rtpParameters"]["encodings"][0]["ssrc"]
        .as_u64()
        .unwrap() as u32;
    let client = Arc::new(Mutex::new(c));
    let media = connect_webrtc_peer(&client, &recv).await;
    // Let some packets through so the report has something to be about.
    let mut got = 0;
    while got < 40 {
        let p = media
            .recv_rtp(Duration::from_secs(10))
            .await
            .expect("consumer receives alice's audio");
        if rtc::parse_rtp(&p).header.ssrc == consumer_ssrc {
            got += 1;
        }
    }
    // The peer reports more lost than was sent: the interval scores 0.
    let rr = ReceiverReport {
        ssrc: 0xcafe,
        reports: vec![ReceptionReport {
            ssrc: consumer_ssrc,
            fraction_lost: 255,
            total_lost: 100_000,
            last_sequence_number: 0,
            jitter: 0,
            last_sender_report: 0,
            delay: 0,
        }],
        ..Default::default()
    };
    media.send_rtcp(&rr.marshal().unwrap()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let score = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no consumerScore below 10"
        );
        let n = client.lock().await.wait_for("consumerScore").await;
        assert_eq!(n["data"]["consumerId"], consumer_id.as_str(), "{n}");
        if n["data"]["score"]["score"].as_u64().unwrap() < 10 {
            break n["data"]["score"].clone();
        }
    };
    assert!(score["score"].as_u64().unwrap() <= 3, "{score}");
    assert_eq!(score["producerScore"], 10, "{score}");
    assert_eq!(score["producerScores"], json!([10]), "{score}");
    // getConsumerStats carries the same score.
    let stats = ok(&client
        .lock()
        .await
        .request("getConsumerStats", json!({"consumerId": consumer_id}))
        .await)
    .clone();
    assert_eq!(stats[0]["type"], "outbound-rtp", "{stats}");
    assert_eq!(stats[0]["score"], score["score"], "{stats}");
    stop.store(true, Ordering::Relaxed);
    media.close().await;
    alice.media.close().await;
}
