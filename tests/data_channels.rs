//! Data channels at the protoo level (protoo.md §3.13, §4.2, §4.3, §6): the demo room on real
//! media workers, driven like the mediasoup-demo app with data channels on. No SCTP association
//! is made (no DTLS peer): these check the signaling shapes and the engine calls behind them.
//! The Lua data API's direct transports (the bot's plumbing) are checked with an inline script,
//! where messages really travel through the engine.

mod common;

use common::*;
use serde_json::{json, Value};

const SCTP_CAPS: &str = r#"{"numStreams": {"OS": 1024, "MIS": 1024}}"#;

fn sctp_caps() -> Value {
    serde_json::from_str(SCTP_CAPS).unwrap()
}

async fn demo_server() -> ringsfu::Server {
    ringsfu::start(test_config(2)).await.expect("server starts")
}

/// A demo-app peer with data channels: both transports with sctpCapabilities, joined with them.
/// Returns the client, its send transport id and the join response.
async fn data_peer(addr: std::net::SocketAddr, room: &str, peer: &str) -> (Client, String, Value) {
    let mut c = Client::connect(addr, room, peer).await.unwrap();
    c.wait_for("mediasoup-version").await;
    let caps = ok(&c.request("getRouterRtpCapabilities", json!({})).await).clone();
    let send = ok(&c
        .request(
            "createWebRtcTransport",
            json!({"forceTcp": false, "producing": true, "consuming": false,
                   "sctpCapabilities": sctp_caps()}),
        )
        .await)
    .clone();
    assert_eq!(
        send["sctpParameters"]["port"], 5000,
        "SCTP enabled by sctpCapabilities: {send}"
    );
    assert_eq!(send["sctpParameters"]["OS"], 1024);
    assert_eq!(send["sctpParameters"]["MIS"], 1024);
    assert!(send["sctpParameters"]["maxMessageSize"].as_u64().unwrap() >= 262_144);
    ok(&c
        .request(
            "createWebRtcTransport",
            json!({"forceTcp": false, "producing": false, "consuming": true,
                   "sctpCapabilities": sctp_caps()}),
        )
        .await);
    let joined = ok(&c
        .request(
            "join",
            json!({"displayName": peer, "device": {"flag": "chrome", "name": "Chrome", "version": "129"},
                   "rtpCapabilities": caps, "sctpCapabilities": sctp_caps()}),
        )
        .await)
    .clone();
    (c, send["id"].as_str().unwrap().to_owned(), joined)
}

/// Waits for a `newDataConsumer` request, answers it, returns its data.
async fn accept_data_consumer(c: &mut Client) -> Value {
    let req = c.wait_for("newDataConsumer").await;
    assert_eq!(req["request"], true, "{req}");
    c.answer_ok(&req["id"], json!({})).await;
    req["data"].clone()
}

fn assert_bot_consumer(d: &Value) {
    assert_eq!(d["peerId"], Value::Null, "the bot has no peer: {d}");
    assert_eq!(d["label"], "bot");
    assert_eq!(d["protocol"], "");
    assert!(d["sctpStreamParameters"]["streamId"].is_u64(), "{d}");
    assert_eq!(
        d["sctpStreamParameters"]["ordered"], true,
        "bot: reliable ordered"
    );
    assert!(d["id"].is_string() && d["dataProducerId"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_data_fans_out_chat_and_closes() {
    let s = demo_server().await;
    let addr = s.local_addr();

    // Before join: produceData is refused.
    let mut early = Client::connect(addr, "dc1", "early").await.unwrap();
    let (code, reason) = err(&early
        .request("produceData", json!({"transportId": "x", "label": "chat"}))
        .await);
    assert_eq!((code, reason.as_str()), (500, "Peer not yet joined"));
    early.close().await;

    let (mut a, a_send, _) = data_peer(addr, "dc1", "alice").await;
    // Every joining peer with sctpCapabilities gets a DataConsumer of the room bot.
    let a_bot = accept_data_consumer(&mut a).await;
    assert_bot_consumer(&a_bot);

    let (mut b, _b_send, joined) = data_peer(addr, "dc1", "bob").await;
    assert_eq!(joined["peers"][0]["id"], "alice");
    let b_bot = accept_data_consumer(&mut b).await;
    assert_bot_consumer(&b_bot);
    assert_eq!(
        b_bot["dataProducerId"], a_bot["dataProducerId"],
        "one bot DataProducer per room"
    );

    // alice produces `chat` (the demo's settings): bob gets newDataConsumer for it.
    let chat = ok(&a
        .request(
            "produceData",
            json!({"transportId": a_send,
                   "sctpStreamParameters": {"streamId": 0, "ordered": false, "maxRetransmits": 1},
                   "label": "chat", "protocol": "", "appData": {"info": "my-chat-DataProducer"}}),
        )
        .await)
    .clone();
    let chat_id = chat["id"].as_str().unwrap().to_owned();
    let b_chat = accept_data_consumer(&mut b).await;
    assert_eq!(b_chat["peerId"], "alice");
    assert_eq!(b_chat["dataProducerId"], chat_id.as_str());
    assert_eq!(b_chat["label"], "chat");
    assert_eq!(b_chat["protocol"], "");
    assert_eq!(b_chat["appData"], json!({"info": "my-chat-DataProducer"}));
    let sp = &b_chat["sctpStreamParameters"];
    assert_eq!(sp["ordered"], false, "reliability copied from the producer");
    assert_eq!(sp["maxRetransmits"], 1);
    assert_ne!(
        sp["streamId"], b_bot["sctpStreamParameters"]["streamId"],
        "distinct stream ids on bob's recv transport"
    );

    // alice produces `bot`: nobody else consumes it (the room bot does).
    ok(&a
        .request(
            "produceData",
            json!({"transportId": a_send,
                   "sctpStreamParameters": {"streamId": 1, "ordered": false, "maxPacketLifeTime": 2000},
                   "label": "bot", "protocol": "", "appData": {"info": "my-bot-DataProducer"}}),
        )
        .await);
    // A stream id already in use is refused by the engine.
    let (code, reason) = err(&a
        .request(
            "produceData",
            json!({"transportId": a_send,
                   "sctpStreamParameters": {"streamId": 1, "ordered": true},
                   "label": "other", "protocol": "", "appData": {}}),
        )
        .await);
    assert_eq!(code, 400, "EngineError::Invalid is 400");
    assert!(reason.contains("already in use"), "{reason}");

    // Stats.
    let st = ok(&a
        .request("getDataProducerStats", json!({"dataProducerId": chat_id}))
        .await)
    .clone();
    assert_eq!(st[0]["type"], "data-producer", "{st}");
    assert_eq!(st[0]["label"], "chat");
    assert_eq!(st[0]["messagesReceived"], 0);
    let st = ok(&b
        .request(
            "getDataConsumerStats",
            json!({"dataConsumerId": b_chat["id"]}),
        )
        .await)
    .clone();
    assert_eq!(st[0]["type"], "data-consumer", "{st}");
    assert_eq!(st[0]["label"], "chat");
    assert_eq!(st[0]["messagesSent"], 0);
    // Lookups are scoped to the requesting peer.
    let (code, reason) = err(&b
        .request("getDataProducerStats", json!({"dataProducerId": chat_id}))
        .await);
    assert_eq!(code, 500);
    assert_eq!(
        reason,
        format!("dataProducer with id \"{chat_id}\" not found")
    );

    // A late joiner gets alice's chat (not her bot DataProducer) and the room bot, in that order.
    let (mut c, _c_send, _) = data_peer(addr, "dc1", "carol").await;
    let first = accept_data_consumer(&mut c).await;
    assert_eq!(first["label"], "chat");
    assert_eq!(first["peerId"], "alice");
    assert_eq!(first["dataProducerId"], chat_id.as_str());
    let second = accept_data_consumer(&mut c).await;
    assert_bot_consumer(&second);
    // alice leaves: her chat DataProducer closes, bob and carol get dataConsumerClosed.
    a.close().await;
    assert_eq!(
        b.wait_for("dataConsumerClosed").await["data"],
        json!({"dataConsumerId": b_chat["id"]})
    );
    assert_eq!(
        c.wait_for("dataConsumerClosed").await["data"],
        json!({"dataConsumerId": first["id"]})
    );
    // carol never got a consumer of alice's `bot` DataProducer: everything the server sent her
    // up to a round trip made now is in her backlog, and it holds no other newDataConsumer than
    // the two answered above (alice's chat and the room bot, both checked).
    ok(&c.request("getRouterRtpCapabilities", json!({})).await);
    let offered: Vec<&Value> = c
        .backlog
        .iter()
        .filter(|m| m["method"] == "newDataConsumer")
        .collect();
    assert!(offered.is_empty(), "unexpected: {offered:?}");
    assert_eq!(
        (
            first["dataProducerId"].as_str(),
            second["dataProducerId"].as_str()
        ),
        (Some(chat_id.as_str()), a_bot["dataProducerId"].as_str()),
        "carol's only data consumers: alice's chat and the room bot"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_sctp_capabilities_no_data_channels() {
    let s = demo_server().await;
    let mut a = Client::connect(s.local_addr(), "dc2", "a").await.unwrap();
    let caps = ok(&a.request("getRouterRtpCapabilities", json!({})).await).clone();
    let t = ok(&a
        .request(
            "createWebRtcTransport",
            json!({"forceTcp": false, "producing": true, "consuming": true}),
        )
        .await)
    .clone();
    assert!(t.get("sctpParameters").is_none_or(Value::is_null), "{t}");
    ok(&a
        .request(
            "join",
            json!({"displayName": "a", "device": {"flag": "chrome"}, "rtpCapabilities": caps}),
        )
        .await);
    // No SCTP on the transport: produceData fails with the engine's reason.
    let (code, reason) = err(&a
        .request(
            "produceData",
            json!({"transportId": t["id"], "sctpStreamParameters": {"streamId": 0},
                   "label": "chat", "protocol": "", "appData": {}}),
        )
        .await);
    assert_eq!(code, 409, "EngineError::State is 409");
    assert!(reason.contains("SCTP is not enabled"), "{reason}");
    // And no bot DataConsumer was offered (no sctpCapabilities in join), while a peer of the
    // same room that joined with them is offered one: the bot exists, `a` was skipped.
    let (mut b, _, _) = data_peer(s.local_addr(), "dc2", "b").await;
    assert_bot_consumer(&accept_data_consumer(&mut b).await);
    let r = a
        .request("getTransportStats", json!({"transportId": t["id"]}))
        .await;
    assert_eq!(ok(&r)[0]["type"], "webrtc-transport", "{r}");
    assert!(
        !a.backlog.iter().any(|m| m["method"] == "newDataConsumer"),
        "{:?}",
        a.backlog
    );
}

/// Direct transports through the Lua API: a message sent on a direct data producer reaches a
/// direct data consumer's `message` callback with its bytes and PPID; messages over the
/// transport's maxMessageSize are refused on send and dropped on receive; closing the producer
/// fires `dataproducerclose`.
const DIRECT_ROOM: &str = r#"
local m = { requests = {} }
function m.requests.run(room, peer, data)
  local big = room.router:createDirectTransport({ maxMessageSize = 1000 })
  local small = room.router:createDirectTransport({ maxMessageSize = 10 })
  local dp = big:produceData({ label = "x", protocol = "p" })
  local got, got_small, closed = {}, {}, false
  local dc = big:consumeData({ dataProducerId = dp.id })
  local dc_small = small:consumeData({ dataProducerId = dp.id })
  dc:on("message", function(msg, ppid) got[#got + 1] = ppid .. ":" .. msg end)
  dc_small:on("message", function(msg, ppid) got_small[#got_small + 1] = ppid .. ":" .. msg end)
  dc:on("dataproducerclose", function() closed = true end)
  dp:send("hello")
  dp:send("\0\1\2", 53)
  dp:send("a longer text")
  local ok, e = pcall(dp.send, dp, string.rep("z", 1001))
  dp:send("end")
  -- Waits (yielding) until cond() holds, for at most 20 s.
  local function wait_until(cond)
    for _ = 1, 2000 do
      if cond() then return end
      ringsfu.sleep(0.01)
    end
    error("timed out waiting")
  end
  -- Delivery is ordered: once "end" arrived, everything sent before it was delivered or dropped.
  wait_until(function() return got[#got] == "51:end" and got_small[#got_small] == "51:end" end)
  local stats = dp:getStats()
  dp:close()
  wait_until(function() return closed end)
  return {
    got = got, got_small = got_small, too_big = not ok, err = tostring(e), closed = closed,
    type = dp.type, label = dc.label, protocol = dc.protocol, dataProducerId = dc.dataProducerId,
    dpId = dp.id, received = stats[1].messagesReceived, dcClosed = dc.closed,
  }
end
return m
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_transport_messages_through_lua() {
    let config = test_config(1);
    let workers = ringsfu::workers::spawn_engine_workers(&config).unwrap();
    let s = ringsfu::start_with(
        config,
        vec![inline(".*", "direct.lua", DIRECT_ROOM)],
        workers,
    )
    .await
    .unwrap();
    let mut c = Client::connect(s.local_addr(), "dt", "p").await.unwrap();
    let r = ok(&c.request("run", json!({})).await).clone();
    assert_eq!(
        r["got"],
        json!([
            "51:hello",
            "53:\u{0}\u{1}\u{2}",
            "51:a longer text",
            "51:end"
        ]),
        "{r}"
    );
    assert_eq!(
        r["got_small"],
        json!(["51:hello", "53:\u{0}\u{1}\u{2}", "51:end"]),
        "over 10 bytes dropped: {r}"
    );
    assert_eq!(r["too_big"], true);
    assert!(
        r["err"]
            .as_str()
            .unwrap()
            .contains("exceeds maxMessageSize"),
        "{r}"
    );
    assert_eq!(r["received"], 4);
    assert_eq!(r["closed"], true, "dataproducerclose fired: {r}");
    assert_eq!(r["dcClosed"], true);
    assert_eq!(r["type"], "direct");
    assert_eq!(r["label"], "x");
    assert_eq!(r["protocol"], "p");
    assert_eq!(r["dataProducerId"], r["dpId"]);
}
