//! The broadcaster REST API (lua/http/broadcasters.lua, routed by src/signaling.rs) on real media
//! workers: every route's errors, deletion seen by protoo peers, port release, and real media from
//! Debian's ffmpeg (and GStreamer, when installed) received by an independent webrtc-rs peer that
//! joined the room over protoo.

mod common;
#[path = "../core/tests/common/mod.rs"]
mod rtc;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::sync::Mutex;

async fn call(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Answer {
    let text = body.map(|b| b.to_string()).unwrap_or_default();
    call_raw(addr, method, path, &text).await
}

/// Asserts a status and that the text body contains `needle`.
async fn expect(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
    status: u16,
    needle: &str,
) {
    let a = call(addr, method, path, body).await;
    assert_eq!(a.status, status, "{method} {path}: {a:?}");
    assert!(a.body.contains(needle), "{method} {path}: {a:?}");
}

async fn ok_json(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Value {
    let a = call(addr, method, path, body).await;
    assert_eq!(a.status, 200, "{method} {path}: {a:?}");
    a.json()
}

async fn server(workers: usize) -> ringsfu::Server {
    ringsfu::start(test_config(workers))
        .await
        .expect("server starts")
}

fn broadcaster_body(id: &str, name: &str) -> Value {
    json!({"id": id, "displayName": "Broadcaster", "device": {"name": name}})
}

/// The producer bodies of broadcasters/ffmpeg.sh.
fn opus_producer() -> Value {
    json!({"kind": "audio", "rtpParameters": {
        "codecs": [{"mimeType": "audio/opus", "payloadType": 100, "clockRate": 48000, "channels": 2,
                    "parameters": {"sprop-stereo": 1}}],
        "encodings": [{"ssrc": 1111}]}})
}

fn vp8_producer() -> Value {
    json!({"kind": "video", "rtpParameters": {
        "codecs": [{"mimeType": "video/vp8", "payloadType": 101, "clockRate": 90000}],
        "encodings": [{"ssrc": 2222}]}})
}

const PLAIN: &str = r#"{"type":"plain","comedia":true,"rtcpMux":false}"#;

/// A protoo peer joined like the demo app, with a receive transport; returns the client and the
/// transport data.
async fn joined_peer(addr: SocketAddr, room: &str, peer: &str) -> (Client, Value) {
    let (c, recv, joined) =
        join_with_transport(addr, room, peer, false, rtc::chrome_rtp_capabilities()).await;
    assert!(joined["peers"].is_array(), "{joined}");
    (c, recv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_has_its_status_and_names_the_problem() {
    let s = server(2).await;
    let a = s.local_addr();
    let r = "/rooms/err";

    // Router capabilities (the room is created for the request and not left behind).
    let caps = ok_json(a, "GET", r, None).await;
    assert_eq!(caps["codecs"][0]["mimeType"], "audio/opus");
    assert!(eventually(|| s.room_count() == 0).await);

    // Malformed JSON is refused before the script.
    let bad = call_raw(a, "POST", &format!("{r}/broadcasters"), "{\"id\":").await;
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(bad.body.contains("invalid JSON"), "{bad:?}");

    // Validation: 400 TypeError naming the field, text body.
    let b = format!("{r}/broadcasters");
    let cases = [
        (
            json!({"displayName": "x", "device": {"name": "n"}}),
            "TypeError: missing body.id",
        ),
        (
            json!({"id": "", "displayName": "x", "device": {"name": "n"}}),
            "TypeError: missing body.id",
        ),
        (
            json!({"id": "b1", "displayName": 5, "device": {"name": "n"}}),
            "TypeError: missing body.displayName",
        ),
        (
            json!({"id": "b1", "displayName": "x"}),
            "TypeError: missing body.device.name",
        ),
        (
            json!({"id": "b1", "displayName": "x", "device": "n"}),
            "TypeError: wrong body.device",
        ),
        (
            json!({"id": "b1", "displayName": "x", "device": {"name": "n"}, "rtpCapabilities": "all"}),
            "TypeError: wrong body.rtpCapabilities",
        ),
        (json!([1, 2]), "TypeError: missing body.id"),
    ];
    for (body, text) in cases {
        let ans = call(a, "POST", &b, Some(body.clone())).await;
        assert_eq!((ans.status, ans.body.as_str()), (400, text), "{body}");
        assert!(ans.content_type.starts_with("text/plain"), "{ans:?}");
    }
    let not_object = call_raw(a, "POST", &b, "\"text\"").await;
    assert_eq!(not_object.status, 400, "{not_object:?}");

    // Created; duplicate id → 409.
    let created = ok_json(a, "POST", &b, Some(broadcaster_body("b1", "FFmpeg"))).await;
    assert_eq!(created, json!({"peers": []}));
    expect(
        a,
        "POST",
        &b,
        Some(broadcaster_body("b1", "FFmpeg")),
        409,
        "Error: broadcaster with id \"b1\" already exists",
    )
    .await;

    // Unknown broadcaster → 404 on every route that names one.
    let nope = "Error: broadcaster with id \"nope\" does not exist";
    expect(a, "DELETE", &format!("{b}/nope"), None, 404, nope).await;
    expect(a, "GET", &format!("{b}/nope"), None, 404, nope).await;
    expect(
        a,
        "POST",
        &format!("{b}/nope/transports"),
        Some(json!({"type": "plain"})),
        404,
        nope,
    )
    .await;
    expect(
        a,
        "POST",
        &format!("{b}/nope/transports/x/producers"),
        Some(opus_producer()),
        404,
        nope,
    )
    .await;

    // Transports.
    let tr = format!("{b}/b1/transports");
    expect(
        a,
        "POST",
        &tr,
        Some(json!({"type": "sctp"})),
        400,
        "TypeError: invalid type",
    )
    .await;
    expect(a, "POST", &tr, None, 400, "TypeError: invalid type").await;
    expect(
        a,
        "POST",
        &tr,
        Some(json!({"type": "plain", "rtcpMux": "no"})),
        400,
        "TypeError: wrong body.rtcpMux",
    )
    .await;
    let plain = call_raw(a, "POST", &tr, PLAIN).await.json();
    let plain_id = plain["id"].as_str().unwrap().to_owned();
    assert_eq!(plain["ip"], "127.0.0.1");
    assert!(plain["rtcpPort"].as_u64().unwrap() > 0, "{plain}");
    let muxed = ok_json(
        a,
        "POST",
        &tr,
        Some(json!({"type": "plain", "rtcpMux": true})),
    )
    .await;
    assert!(muxed.get("rtcpPort").is_none(), "{muxed}");
    let webrtc = ok_json(a, "POST", &tr, Some(json!({"type": "webrtc"}))).await;
    assert_eq!(webrtc["iceParameters"]["iceLite"], true, "{webrtc}");
    assert!(
        webrtc["dtlsParameters"]["fingerprints"].is_array(),
        "{webrtc}"
    );
    let webrtc_id = webrtc["id"].as_str().unwrap().to_owned();

    // connect: unknown transport 404; a plain transport takes mediasoup's plain connect body
    // ({ip, port, ...}), so a wrong ip is a 400 naming it; missing dtlsParameters 400.
    let dtls = json!({"dtlsParameters": rtc::dtls_parameters("AA:BB")});
    expect(
        a,
        "POST",
        &format!("{tr}/nope/connect"),
        Some(dtls.clone()),
        404,
        "Error: transport with id \"nope\" does not exist",
    )
    .await;
    expect(
        a,
        "POST",
        &format!("{tr}/{plain_id}/connect"),
        Some(json!({"ip": 5})),
        400,
        "TypeError: wrong body.ip",
    )
    .await;
    expect(
        a,
        "POST",
        &format!("{tr}/{webrtc_id}/connect"),
        Some(json!({})),
        400,
        "TypeError: missing body.dtlsParameters",
    )
    .await;
    let connected = call(
        a,
        "POST",
        &format!("{tr}/{webrtc_id}/connect"),
        Some(dtls.clone()),
    )
    .await;
    assert_eq!(
        (connected.status, connected.body.as_str()),
        (200, ""),
        "{connected:?}"
    );
    // A second connect is refused by the engine's state: 409.
    expect(
        a,
        "POST",
        &format!("{tr}/{webrtc_id}/connect"),
        Some(dtls),
        409,
        "Error: invalid state",
    )
    .await;

    // Producers.
    let pr = format!("{tr}/{plain_id}/producers");
    expect(
        a,
        "POST",
        &pr,
        Some(json!({"kind": "data", "rtpParameters": {}})),
        400,
        "TypeError: wrong body.kind",
    )
    .await;
    expect(
        a,
        "POST",
        &pr,
        Some(json!({"kind": "audio"})),
        400,
        "TypeError: missing body.rtpParameters",
    )
    .await;
    expect(
        a,
        "POST",
        &pr,
        Some(json!({"kind": "audio", "rtpParameters": {
        "codecs": [{"mimeType": "audio/G722", "payloadType": 9, "clockRate": 8000}],
        "encodings": [{"ssrc": 1}]}})),
        400,
        "TypeError:",
    )
    .await;
    expect(
        a,
        "POST",
        &pr,
        Some(json!({"kind": "audio", "rtpParameters": {"codecs": "x"}})),
        400,
        "TypeError: invalid rtpParameters",
    )
    .await;
    expect(
        a,
        "POST",
        &format!("{tr}/nope/producers"),
        Some(opus_producer()),
        404,
        "Error: transport with id \"nope\" does not exist",
    )
    .await;
    let producer = ok_json(a, "POST", &pr, Some(opus_producer())).await;
    let producer_id = producer["id"].as_str().unwrap().to_owned();

    // Consume: no producerId 400; no rtpCapabilities 409; unknown producer 404.
    let co = format!("{tr}/{webrtc_id}/consume");
    expect(a, "POST", &co, None, 400, "TypeError: missing producerId").await;
    expect(
        a,
        "POST",
        &format!("{co}?producerId={producer_id}"),
        None,
        409,
        "Error: broadcaster does not have rtpCapabilities",
    )
    .await;
    let mut with_caps = broadcaster_body("b2", "libmediasoupclient");
    with_caps["rtpCapabilities"] = rtc::chrome_rtp_capabilities();
    ok_json(a, "POST", &b, Some(with_caps)).await;
    let tr2 = format!("{b}/b2/transports");
    let w2 = ok_json(a, "POST", &tr2, Some(json!({"type": "webrtc"}))).await;
    let co2 = format!("{tr2}/{}/consume", w2["id"].as_str().unwrap());
    expect(
        a,
        "POST",
        &format!("{co2}?producerId=7d3e0000-0000-4000-8000-000000000000"),
        None,
        404,
        "Error: producer with id \"7d3e0000-0000-4000-8000-000000000000\" does not exist",
    )
    .await;
    // A broadcaster consumes another broadcaster's producer: not paused, RTX off for audio.
    let consumer = ok_json(a, "POST", &format!("{co2}?producerId={producer_id}"), None).await;
    assert_eq!(consumer["producerId"], producer_id.as_str());
    assert_eq!(consumer["kind"], "audio");
    assert_eq!(consumer["type"], "simple");
    assert_eq!(
        consumer["rtpParameters"]["codecs"][0]["mimeType"],
        "audio/opus"
    );

    // Data channels are not built: 501 naming the feature.
    expect(
        a,
        "POST",
        &format!("{tr}/{webrtc_id}/consume/data"),
        Some(json!({"dataProducerId": "x"})),
        501,
        "data channels (SCTP) are not built",
    )
    .await;
    expect(
        a,
        "POST",
        &format!("{tr}/{webrtc_id}/produce/data"),
        Some(json!({"label": "x"})),
        501,
        "data channels (SCTP) are not built",
    )
    .await;

    // Unknown routes and methods.
    expect(
        a,
        "POST",
        &format!("{r}/elsewhere"),
        None,
        404,
        "Cannot POST /rooms/err/elsewhere",
    )
    .await;
    expect(
        a,
        "PUT",
        &format!("{b}/b1"),
        None,
        405,
        "method PUT not allowed",
    )
    .await;

    // GET shows what the broadcaster has.
    let shown = ok_json(a, "GET", &format!("{b}/b1"), None).await;
    assert_eq!(
        shown["device"],
        json!({"flag": "broadcaster", "name": "FFmpeg"})
    );
    assert_eq!(shown["transports"].as_array().unwrap().len(), 3, "{shown}");
    assert_eq!(
        shown["producers"],
        json!([{"id": producer_id, "kind": "audio"}])
    );

    // Broadcasters keep the room; deleting both closes it.
    assert_eq!(s.room_count(), 1);
    let del = call(a, "DELETE", &format!("{b}/b1"), None).await;
    assert_eq!(
        (del.status, del.body.as_str()),
        (200, "broadcaster deleted"),
        "{del:?}"
    );
    // b2's consumer of b1's producer went with it.
    let b2 = ok_json(a, "GET", &format!("{b}/b2"), None).await;
    assert_eq!(b2["consumers"], json!([]), "{b2}");
    assert_eq!(s.room_count(), 1);
    ok_json_text(a, "DELETE", &format!("{b}/b2")).await;
    assert!(
        eventually(|| s.room_count() == 0).await,
        "room closed with its last broadcaster"
    );
}

async fn ok_json_text(addr: SocketAddr, method: &str, path: &str) {
    let a = call(addr, method, path, None).await;
    assert_eq!(a.status, 200, "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_room_is_404_when_rooms_are_not_created_over_http() {
    let mut cfg = test_config(1);
    cfg.http_api.create_rooms = false;
    let s = ringsfu::start(cfg).await.unwrap();
    let a = s.local_addr();
    for (method, path) in [
        ("GET", "/rooms/none"),
        ("POST", "/rooms/none/broadcasters"),
        ("DELETE", "/rooms/none/broadcasters/x"),
    ] {
        let ans = call(a, method, path, None).await;
        assert_eq!(
            (ans.status, ans.body.as_str()),
            (404, "Error: room with id \"none\" not found"),
            "{method} {path}"
        );
    }
    assert_eq!(s.room_count(), 0);
    // A room with a protoo peer exists: the API serves it.
    let (_c, _) = joined_peer(a, "live", "p").await;
    ok_json(
        a,
        "POST",
        "/rooms/live/broadcasters",
        Some(broadcaster_body("b", "FFmpeg")),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcaster_is_a_peer_and_deleting_it_closes_its_transports() {
    let s = server(2).await;
    let a = s.local_addr();
    let (mut alice, _) = joined_peer(a, "bc", "alice").await;

    // alice produces something the broadcaster can see in its answer (it gave capabilities).
    let mut body = broadcaster_body("cam", "GStreamer");
    body["device"]["version"] = json!("1.22");
    body["rtpCapabilities"] = rtc::chrome_rtp_capabilities();
    let created = ok_json(a, "POST", "/rooms/bc/broadcasters", Some(body)).await;
    assert_eq!(created["peers"][0]["id"], "alice", "{created}");
    assert_eq!(created["peers"][0]["producers"], json!([]), "{created}");
    let np = alice.wait_for("newPeer").await;
    assert_eq!(
        np["data"],
        json!({"id": "cam", "displayName": "Broadcaster",
               "device": {"flag": "broadcaster", "name": "GStreamer", "version": "1.22"}})
    );

    // Transport + producer: alice is asked to consume it (paused-then-resumed flow).
    let tr = "/rooms/bc/broadcasters/cam/transports";
    let t = call_raw(a, "POST", tr, PLAIN).await.json();
    let (port, rtcp_port) = (
        t["port"].as_u64().unwrap() as u16,
        t["rtcpPort"].as_u64().unwrap() as u16,
    );
    let p = ok_json(
        a,
        "POST",
        &format!("{tr}/{}/producers", t["id"].as_str().unwrap()),
        Some(vp8_producer()),
    )
    .await;
    let nc = alice.wait_for("newConsumer").await;
    assert_eq!(nc["data"]["peerId"], "cam");
    assert_eq!(nc["data"]["producerId"], p["id"]);
    assert_eq!(nc["data"]["kind"], "video");
    let consumer_id = nc["data"]["id"].clone();
    alice.answer_ok(&nc["id"], json!({})).await;

    // A peer joining later sees the broadcaster among the peers and gets a consumer too.
    let mut bob = Client::connect(a, "bc", "bob").await.unwrap();
    bob.wait_for("mediasoup-version").await;
    ok(&bob
        .request(
            "createWebRtcTransport",
            json!({"forceTcp": false, "producing": false, "consuming": true}),
        )
        .await);
    let joined = ok(&bob
        .request(
            "join",
            json!({"displayName": "bob", "device": {"name": "x"},
        "rtpCapabilities": rtc::chrome_rtp_capabilities()}),
        )
        .await)
    .clone();
    let ids: Vec<&str> = joined["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"alice") && ids.contains(&"cam"), "{joined}");
    let nc_bob = bob.wait_for("newConsumer").await;
    assert_eq!(nc_bob["data"]["peerId"], "cam");
    bob.answer_ok(&nc_bob["id"], json!({})).await;

    // The transport's ports are taken while it lives.
    assert!(std::net::UdpSocket::bind(("127.0.0.1", port)).is_err());
    assert!(std::net::UdpSocket::bind(("127.0.0.1", rtcp_port)).is_err());

    // Both protoo peers leave: the broadcaster keeps the room (and its transport).
    alice.close_and_wait().await;
    bob.close_and_wait().await;
    // The server saw both closes; a request to the room (same worker, queued behind the peers'
    // close handling) finds the broadcaster, and the room is still registered. (Carol's
    // newConsumer from "cam" and the DELETE below would fail too if the room had gone.)
    let shown = ok_json(a, "GET", "/rooms/bc/broadcasters/cam", None).await;
    assert_eq!(shown["id"], "cam", "{shown}");
    assert_eq!(s.room_count(), 1);
    let (mut carol, _) = joined_peer(a, "bc", "carol").await;
    let nc = carol.wait_for("newConsumer").await;
    carol.answer_ok(&nc["id"], json!({})).await;
    let carol_consumer = nc["data"]["id"].clone();
    assert_ne!(carol_consumer, consumer_id);

    // Delete: carol's consumer closes, then peerClosed; the ports are free again.
    let del = call(a, "DELETE", "/rooms/bc/broadcasters/cam", None).await;
    assert_eq!(
        (del.status, del.body.as_str()),
        (200, "broadcaster deleted")
    );
    let closed = carol.wait_for("consumerClosed").await;
    assert_eq!(closed["data"]["consumerId"], carol_consumer);
    assert_eq!(
        carol.wait_for("peerClosed").await["data"],
        json!({"peerId": "cam"})
    );
    assert!(eventually(|| std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()).await);
    assert!(eventually(|| std::net::UdpSocket::bind(("127.0.0.1", rtcp_port)).is_ok()).await);
    expect(
        a,
        "GET",
        "/rooms/bc/broadcasters/cam",
        None,
        404,
        "does not exist",
    )
    .await;
    carol.close().await;
    assert!(eventually(|| s.room_count() == 0).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_plain_transport_releases_its_ports() {
    // Three ports outside the default range (other tests use 40000-49999) and below the kernel's
    // ephemeral range (32768-60999 on Linux), so no outgoing socket takes them; per process.
    let base = 20000 + (std::process::id() % 3000) as u16 * 3;
    let mut cfg = test_config(1);
    cfg.rtc_port_range.min = base;
    cfg.rtc_port_range.max = base + 2;
    let s = ringsfu::start(cfg).await.unwrap();
    let a = s.local_addr();
    ok_json(
        a,
        "POST",
        "/rooms/ports/broadcasters",
        Some(broadcaster_body("b", "FFmpeg")),
    )
    .await;
    let tr = "/rooms/ports/broadcasters/b/transports";
    let first = call_raw(a, "POST", tr, PLAIN).await;
    assert_eq!(first.status, 200, "{first:?}");
    // One port left: the RTP port binds, the RTCP port cannot. The RTP port must come back.
    expect(
        a,
        "POST",
        tr,
        Some(json!({"type": "plain", "rtcpMux": false})),
        500,
        "port",
    )
    .await;
    let shown = ok_json(a, "GET", "/rooms/ports/broadcasters/b", None).await;
    assert_eq!(
        shown["transports"].as_array().unwrap().len(),
        1,
        "nothing half-created: {shown}"
    );
    let muxed = ok_json(
        a,
        "POST",
        tr,
        Some(json!({"type": "plain", "rtcpMux": true})),
    )
    .await;
    assert!(muxed["port"].as_u64().unwrap() >= base as u64, "{muxed}");
}

// ---------------------------------------------------------------- media from real broadcasters

/// Kills and reaps a child process when dropped (the test may panic).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn installed(tool: &str, version_flag: &str) -> bool {
    Command::new(tool)
        .arg(version_flag)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Where a broadcaster sends: (ip, port, rtcpPort) of the audio and video transports.
type Ports = ((String, u16, u16), (String, u16, u16));

fn ffmpeg_command(((aip, ap, arp), (vip, vp, vrp)): &Ports) -> Command {
    let mut c = Command::new("ffmpeg");
    c.args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=15"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-map", "1:a:0", "-c:a", "libopus", "-b:a", "128k", "-ac", "2", "-ar", "48000"])
        .args(["-map", "0:v:0", "-pix_fmt", "yuv420p", "-c:v", "libvpx", "-b:v", "1000k"])
        .args(["-deadline", "realtime", "-cpu-used", "4", "-g", "30", "-t", "12"])
        .args(["-f", "tee"])
        .arg(format!(
            "[select=a:f=rtp:ssrc=1111:payload_type=100]rtp://{aip}:{ap}?rtcpport={arp}&pkt_size=1200|\
             [select=v:f=rtp:ssrc=2222:payload_type=101]rtp://{vip}:{vp}?rtcpport={vrp}&pkt_size=1200"
        ));
    c
}

fn gstreamer_command(((aip, ap, arp), (vip, vp, vrp)): &Ports) -> Command {
    let pipeline = format!(
        "rtpbin name=rtpbin \
         videotestsrc is-live=true num-buffers=180 ! video/x-raw,width=320,height=240,framerate=15/1 \
         ! videoconvert ! vp8enc target-bitrate=1000000 deadline=1 cpu-used=4 keyframe-max-dist=30 \
         ! rtpvp8pay pt=101 ssrc=2222 picture-id-mode=2 ! rtpbin.send_rtp_sink_0 \
         rtpbin.send_rtp_src_0 ! udpsink host={vip} port={vp} \
         rtpbin.send_rtcp_src_0 ! udpsink host={vip} port={vrp} sync=false async=false \
         audiotestsrc is-live=true num-buffers=600 ! audio/x-raw,rate=48000,channels=2 \
         ! audioresample ! audioconvert ! opusenc ! rtpopuspay pt=100 ssrc=1111 ! rtpbin.send_rtp_sink_1 \
         rtpbin.send_rtp_src_1 ! udpsink host={aip} port={ap} \
         rtpbin.send_rtcp_src_1 ! udpsink host={aip} port={arp} sync=false async=false"
    );
    let mut c = Command::new("gst-launch-1.0");
    c.arg("-q").args(pipeline.split_whitespace());
    c
}

/// Whether a VP8 RTP payload (RFC 7741) starts a key frame.
fn vp8_keyframe_start(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    let (x, s, pid) = (b0 & 0x80 != 0, b0 & 0x10 != 0, b0 & 0x07);
    let mut i = 1;
    if x {
        let Some(&b1) = payload.get(1) else {
            return false;
        };
        i = 2;
        if b1 & 0x80 != 0 {
            // PictureID: one byte, or two when M is set.
            i += if payload.get(i).is_some_and(|b| b & 0x80 != 0) {
                2
            } else {
                1
            };
        }
        if b1 & 0x40 != 0 {
            i += 1;
        }
        if b1 & 0x30 != 0 {
            i += 1;
        }
    }
    s && pid == 0 && payload.get(i).is_some_and(|h| h & 0x01 == 0)
}

/// A broadcaster (ffmpeg or GStreamer) sends through the REST flow of broadcasters/*.sh; a
/// webrtc-rs peer joined over protoo gets opus and VP8 (key frames included) with its consumers'
/// SSRCs and payload types.
async fn broadcast_reaches_webrtc_consumer(tool: &str, device: &str, room: &str) {
    let s = server(2).await;
    let a = s.local_addr();

    // The consumer: protoo join, receive transport connected by webrtc-rs (ICE, DTLS, SRTP).
    let (client, recv) = joined_peer(a, room, "viewer").await;
    let client = Arc::new(Mutex::new(client));
    let peer = connect_webrtc_peer(&client, &recv).await;

    // The REST flow: GET room, broadcaster, two plain transports (comedia, no rtcp-mux), producers.
    let base = format!("/rooms/{room}");
    ok_json(a, "GET", &base, None).await;
    let bid = "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gH";
    ok_json(
        a,
        "POST",
        &format!("{base}/broadcasters"),
        Some(broadcaster_body(bid, device)),
    )
    .await;
    let tr = format!("{base}/broadcasters/{bid}/transports");
    let at = call_raw(a, "POST", &tr, PLAIN).await.json();
    let vt = call_raw(a, "POST", &tr, PLAIN).await.json();
    let triple = |t: &Value| {
        (
            t["ip"].as_str().unwrap().to_owned(),
            t["port"].as_u64().unwrap() as u16,
            t["rtcpPort"].as_u64().unwrap() as u16,
        )
    };
    let ports: Ports = (triple(&at), triple(&vt));
    let mut consumers = Vec::new();
    for (t, body) in [(&at, opus_producer()), (&vt, vp8_producer())] {
        ok_json(
            a,
            "POST",
            &format!("{tr}/{}/producers", t["id"].as_str().unwrap()),
            Some(body),
        )
        .await;
        let mut c = client.lock().await;
        let nc = c.wait_for("newConsumer").await;
        assert_eq!(nc["data"]["peerId"], bid);
        let rtp = &nc["data"]["rtpParameters"];
        consumers.push((
            rtp["encodings"][0]["ssrc"].as_u64().unwrap() as u32,
            rtp["codecs"][0]["payloadType"].as_u64().unwrap() as u8,
        ));
        c.answer_ok(&nc["id"], json!({})).await;
    }
    let ((audio_ssrc, audio_pt), (video_ssrc, video_pt)) = (consumers[0], consumers[1]);
    assert_ne!(audio_ssrc, 1111, "consumers get their own SSRCs");
    assert_ne!(video_ssrc, 2222, "consumers get their own SSRCs");

    let mut cmd = match tool {
        "ffmpeg" => ffmpeg_command(&ports),
        _ => gstreamer_command(&ports),
    };
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {tool}: {e}"));
    let _child = Reaped(child);

    let (mut audio, mut video, mut keyframes) = (0u32, 0u32, 0u32);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline && !(audio >= 100 && video >= 30 && keyframes >= 1)
    {
        let Some(pkt) = peer.recv_rtp(Duration::from_millis(500)).await else {
            continue;
        };
        let p = rtc::parse_rtp(&pkt);
        let h = &p.header;
        if h.ssrc == audio_ssrc {
            assert_eq!(h.payload_type, audio_pt);
            audio += 1;
        } else if h.ssrc == video_ssrc {
            assert_eq!(h.payload_type, video_pt);
            video += 1;
            if vp8_keyframe_start(&p.payload) {
                keyframes += 1;
            }
        } else {
            panic!(
                "RTP with an unknown SSRC {} (pt {})",
                h.ssrc, h.payload_type
            );
        }
    }
    assert!(
        audio >= 100 && video >= 30 && keyframes >= 1,
        "{tool}: audio {audio}, video {video}, key frames {keyframes}"
    );

    eprintln!("{tool}: audio {audio}, video {video}, key frames {keyframes}");
    let del = call(a, "DELETE", &format!("{base}/broadcasters/{bid}"), None).await;
    assert_eq!(del.status, 200);
    let mut c = client.lock().await;
    c.wait_for("peerClosed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ffmpeg_broadcast_reaches_a_webrtc_consumer() {
    assert!(
        installed("ffmpeg", "-version"),
        "ffmpeg is needed (Debian: apt-get install -y ffmpeg)"
    );
    broadcast_reaches_webrtc_consumer("ffmpeg", "FFmpeg", "ffmpeg-room").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gstreamer_broadcast_reaches_a_webrtc_consumer() {
    if !installed("gst-launch-1.0", "--version") {
        // A missing tool is a failure (a green run must mean the GStreamer flow works), unless the
        // person running the suite opted out explicitly.
        let opt_out = std::env::var("RINGSFU_SKIP_GSTREAMER").is_ok_and(|v| v == "1");
        assert!(
            opt_out,
            "gst-launch-1.0 is not installed (Debian: gstreamer1.0-tools gstreamer1.0-plugins-base \
             gstreamer1.0-plugins-good gstreamer1.0-plugins-bad; .ci/run installs them); set \
             RINGSFU_SKIP_GSTREAMER=1 to skip this test explicitly"
        );
        eprintln!("SKIPPED on request (RINGSFU_SKIP_GSTREAMER=1): GStreamer broadcaster test");
        return;
    }
    broadcast_reaches_webrtc_consumer("gst-launch-1.0", "GStreamer", "gst-room").await;
}

#[test]
fn vp8_keyframe_detection() {
    // X=1, S=1, PID=0; I=1 with a 2-byte PictureID; then a key frame header (P bit 0).
    assert!(vp8_keyframe_start(&[
        0x90, 0x80, 0x81, 0x23, 0x10, 0x02, 0x00
    ]));
    // Same but an interframe (P bit 1).
    assert!(!vp8_keyframe_start(&[
        0x90, 0x80, 0x81, 0x23, 0x11, 0x02, 0x00
    ]));
    // Not the start of a partition.
    assert!(!vp8_keyframe_start(&[0x80, 0x80, 0x05, 0x10]));
    // No extension: S=1, key frame.
    assert!(vp8_keyframe_start(&[0x10, 0x50]));
    assert!(!vp8_keyframe_start(&[]));
}
