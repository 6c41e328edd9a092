//! protoo-level tests of the signaling logic and the Lua host, over real sockets on 127.0.0.1,
//! with engine-less worker threads and an inline test room script.

mod common;

use common::*;
use serde_json::json;
use std::sync::Arc;

const TEST_ROOM: &str = r#"
local M = { requests = {}, notifications = {} }
local R = M.requests

function M.on_connect(room, info)
  if info.peerId == "banned" then return false, 403, "banned peer" end
  if info.peerId == "crash" then error("connect hook exploded") end
  return true
end
function M.on_peer_open(room, peer) peer:notify("mediasoup-version", { version = "test" }) end
function M.on_peer_close(room, peer, reason)
  room:broadcast("peerClosed", { peerId = peer.id, reason = reason })
end

R.echo = function(room, peer, data) return data end
R.raise = function() error("boom") end
R.loop = function() while true do end end
R.denied = function() ringsfu.error(403, "not you") end
R.join = function(room, peer) peer.data.joined = true return { peers = ringsfu.array() } end
R.needsJoin = function(room, peer)
  if not peer.data.joined then ringsfu.error(500, "Peer not yet joined") end
  return {}
end
R.needId = function(room, peer, data)
  if data.transportId == nil then ringsfu.error(500, 'transport with id "nil" not found') end
  return {}
end
R.ask = function(room, peer, data) return { answer = peer:request("ping", data) } end
R.sleepy = function() ringsfu.sleep(0.05) return { slept = true } end
-- Waits (sleeping, i.e. yielding) until another request opens the gate; says when it started.
R.gated = function(room, peer)
  peer:notify("gatedWaiting", {})
  while not room.data.open do ringsfu.sleep(0.01) end
  return { gated = true }
end
R.open = function(room) room.data.open = true return {} end
R.peers = function(room)
  local ids = ringsfu.array()
  for _, p in ipairs(room:peers()) do ids[#ids + 1] = p.id end
  return { ids = ids }
end
R.count = function(room) room.data.n = (room.data.n or 0) + 1 return { n = room.data.n } end
R.timer = function(room, peer)
  room:timer(0.02, function() peer:notify("timerFired", {}) end)
  return {}
end
R.closeRoom = function(room) room:close() return {} end
R.kickMe = function(room, peer) peer:close() return {} end
R.nullAndArrays = function() return { a = ringsfu.null, b = ringsfu.array(), c = { 1, 2 } } end
M.notifications.hello = function(room, peer, data)
  room:broadcast("helloFrom", { peerId = peer.id, text = data.text }, peer)
end
return M
"#;

async fn server() -> ringsfu::Server {
    start_local(vec![inline(".*", "test_room.lua", TEST_ROOM)], 2).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_requests_notifications_and_server_requests() {
    let s = server().await;
    let mut a = Client::connect(s.local_addr(), "r1", "a").await.unwrap();
    let v = a.wait_for("mediasoup-version").await;
    assert_eq!(v["notification"], true);
    assert_eq!(v["data"], json!({"version": "test"}));

    // Request/response: the id is echoed, data round-trips (numbers, strings, nested, arrays).
    let data = json!({"x": 1, "s": "t", "nested": {"list": [1, 2, 3]}, "f": 1.5});
    let resp = a.request("echo", data.clone()).await;
    assert_eq!(resp["response"], true);
    assert_eq!(ok(&resp), &data);
    // JSON null and empty arrays survive the trip through Lua.
    let resp = a.request("nullAndArrays", json!({})).await;
    assert_eq!(ok(&resp), &json!({"a": null, "b": [], "c": [1, 2]}));
    // Handler waits (sleep) and resumes with its result.
    let resp = a.request("sleepy", json!({})).await;
    assert_eq!(ok(&resp), &json!({"slept": true}));
    // ...without blocking others: while a's handler sleeps in a loop until a flag is set, another
    // peer of the same room (same worker, same Lua state) is answered, and its request sets the
    // flag that ends the first. A sleep that blocked the worker would never see the flag.
    let mut g = Client::connect(s.local_addr(), "r1", "gatekeeper")
        .await
        .unwrap();
    g.wait_for("mediasoup-version").await;
    a.send_text(&json!({"request": true, "id": 500, "method": "gated", "data": {}}).to_string())
        .await;
    a.wait_for("gatedWaiting").await;
    let echo = g.request("echo", json!({"while": "a sleeps"})).await;
    assert_eq!(ok(&echo), &json!({"while": "a sleeps"}));
    ok(&g.request("open", json!({})).await);
    let resp = a.response(500).await;
    assert_eq!(ok(&resp), &json!({"gated": true}));
    g.close().await;

    // Server → client request: the handler yields until the client answers.
    a.send_text(&json!({"request": true, "id": 77, "method": "ask", "data": {"q": 1}}).to_string())
        .await;
    let ping = a.wait_for("ping").await;
    assert_eq!(ping["request"], true);
    assert_eq!(ping["data"], json!({"q": 1}));
    a.answer_ok(&ping["id"], json!({"pong": true})).await;
    let resp = a.response(77).await;
    assert_eq!(ok(&resp), &json!({"answer": {"pong": true}}));

    // Notifications: broadcast to others, not to the sender.
    let mut b = Client::connect(s.local_addr(), "r1", "b").await.unwrap();
    b.wait_for("mediasoup-version").await;
    a.send_text(
        &json!({"notification": true, "method": "hello", "data": {"text": "hi"}}).to_string(),
    )
    .await;
    let n = b.wait_for("helloFrom").await;
    assert_eq!(n["data"], json!({"peerId": "a", "text": "hi"}));
    // b broadcasts after a's broadcast was delivered: the first helloFrom a gets is b's (a's own
    // would have been queued to a before it).
    b.send_text(
        &json!({"notification": true, "method": "hello", "data": {"text": "yo"}}).to_string(),
    )
    .await;
    let n = a.wait_for("helloFrom").await;
    assert_eq!(
        n["data"],
        json!({"peerId": "b", "text": "yo"}),
        "not a's own"
    );
    // Timers fire.
    ok(&a.request("timer", json!({})).await);
    a.wait_for("timerFired").await;
    assert!(
        a.backlog.iter().all(|m| m["method"] != "helloFrom"),
        "{:?}",
        a.backlog
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_unknown_method_bad_json_missing_ids_before_join() {
    let s = server().await;
    let mut a = Client::connect(s.local_addr(), "r2", "a").await.unwrap();
    let (code, reason) = err(&a.request("nope", json!({})).await);
    assert_eq!(
        (code, reason.as_str()),
        (500, "unknown request.method \"nope\"")
    );

    // Bad JSON and non-protoo objects are dropped; the connection stays usable.
    a.send_text("{not json").await;
    a.send_text("[1,2,3]").await;
    a.send_text(r#"{"request":true,"method":"echo"}"#).await;
    assert_eq!(
        ok(&a.request("echo", json!({"still": "here"})).await),
        &json!({"still": "here"})
    );

    let (code, reason) = err(&a.request("needId", json!({})).await);
    assert_eq!(
        (code, reason.as_str()),
        (500, "transport with id \"nil\" not found")
    );
    let (code, reason) = err(&a.request("needsJoin", json!({})).await);
    assert_eq!((code, reason.as_str()), (500, "Peer not yet joined"));
    ok(&a.request("join", json!({})).await);
    ok(&a.request("needsJoin", json!({})).await);
    let (code, reason) = err(&a.request("denied", json!({})).await);
    assert_eq!((code, reason.as_str()), (403, "not you"));

    // Refused connections: by the hook (status + reason), by a failing hook (500),
    // and by the plugin (missing peerId).
    match Client::connect(s.local_addr(), "r2", "banned").await {
        Err(ConnectError::Http(403, body)) => assert!(body.contains("banned peer"), "{body}"),
        Err(e) => panic!("unexpected {e:?}"),
        Ok(_) => panic!("banned peer accepted"),
    }
    match Client::connect(s.local_addr(), "r2", "crash").await {
        Err(ConnectError::Http(500, body)) => {
            assert!(body.contains("connect hook exploded"), "{body}")
        }
        Err(e) => panic!("unexpected {e:?}"),
        Ok(_) => panic!("crashing hook accepted"),
    }
    assert!(matches!(
        Client::connect_query(s.local_addr(), "roomId=r2").await,
        Err(ConnectError::Http(400, _))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raising_or_looping_handler_is_answered_and_others_carry_on() {
    let s = server().await;
    let mut a = Client::connect(s.local_addr(), "r3", "a").await.unwrap();
    let mut b = Client::connect(s.local_addr(), "r3", "b").await.unwrap();

    let (code, reason) = err(&a.request("raise", json!({})).await);
    assert_eq!(code, 500);
    assert!(
        reason.contains("test_room.lua:") && reason.ends_with("boom"),
        "{reason}"
    );

    // An endless loop is stopped by the instruction budget, with its location.
    a.send_text(&json!({"request": true, "id": 900, "method": "loop", "data": {}}).to_string())
        .await;
    // Meanwhile b's requests are served (same room, same worker).
    assert_eq!(
        ok(&b.request("echo", json!({"b": 1})).await),
        &json!({"b": 1})
    );
    let (code, reason) = err(&a.response(900).await);
    assert_eq!(code, 500);
    assert!(
        reason.contains("instruction limit") && reason.contains("test_room.lua:"),
        "{reason}"
    );

    // The room, the peer and the server go on.
    assert_eq!(
        ok(&a.request("echo", json!({"a": 2})).await),
        &json!({"a": 2})
    );
    let ids = ok(&b.request("peers", json!({})).await)["ids"].clone();
    assert_eq!(ids, json!(["a", "b"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_with_same_peer_id_replaces_the_old_peer() {
    let s = server().await;
    // Alone in the room: the replacement must not close the room.
    let mut a1 = Client::connect(s.local_addr(), "r4", "a").await.unwrap();
    assert_eq!(ok(&a1.request("count", json!({})).await)["n"], 1);
    let mut a2 = Client::connect(s.local_addr(), "r4", "a").await.unwrap();
    assert_eq!(
        a1.closed_with().await,
        Some(4000),
        "old peer closed with 4000"
    );
    assert_eq!(
        ok(&a2.request("count", json!({})).await)["n"],
        2,
        "same room kept"
    );

    // With another peer: it sees peerClosed for the replaced one, and the list has one "a".
    let mut b = Client::connect(s.local_addr(), "r4", "b").await.unwrap();
    b.wait_for("mediasoup-version").await;
    let mut a3 = Client::connect(s.local_addr(), "r4", "a").await.unwrap();
    assert_eq!(a2.closed_with().await, Some(4000));
    let n = b.wait_for("peerClosed").await;
    assert_eq!(n["data"], json!({"peerId": "a", "reason": "replaced"}));
    let ids = ok(&a3.request("peers", json!({})).await)["ids"].clone();
    assert_eq!(ids, json!(["b", "a"]));
    assert_eq!(ok(&a3.request("count", json!({})).await)["n"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_closes_when_the_last_peer_leaves() {
    let s = server().await;
    let mut a = Client::connect(s.local_addr(), "r5", "a").await.unwrap();
    let b = Client::connect(s.local_addr(), "r5", "b").await.unwrap();
    assert_eq!(ok(&a.request("count", json!({})).await)["n"], 1);
    b.close().await;
    let n = a.wait_for("peerClosed").await;
    assert_eq!(n["data"]["peerId"], "b");
    assert_eq!(
        ok(&a.request("count", json!({})).await)["n"],
        2,
        "room alive with one peer"
    );
    a.close().await;
    assert!(
        eventually(|| s.room_count() == 0).await,
        "registry entry removed"
    );
    // A new connection gets a fresh room.
    let mut c = Client::connect(s.local_addr(), "r5", "c").await.unwrap();
    assert_eq!(ok(&c.request("count", json!({})).await)["n"], 1);

    // room:close() closes every peer with 4000.
    let mut d = Client::connect(s.local_addr(), "r5", "d").await.unwrap();
    d.wait_for("mediasoup-version").await;
    c.send_text(&json!({"request": true, "id": 5, "method": "closeRoom", "data": {}}).to_string())
        .await;
    assert_eq!(c.closed_with().await, Some(4000));
    assert_eq!(d.closed_with().await, Some(4000));
    assert!(eventually(|| s.room_count() == 0).await);

    // peer:close() from the script closes that peer only.
    let mut e = Client::connect(s.local_addr(), "r5", "e").await.unwrap();
    let mut f = Client::connect(s.local_addr(), "r5", "f").await.unwrap();
    e.send_text(&json!({"request": true, "id": 6, "method": "kickMe", "data": {}}).to_string())
        .await;
    assert_eq!(e.closed_with().await, Some(4000));
    assert_eq!(f.wait_for("peerClosed").await["data"]["peerId"], "e");
    assert_eq!(ok(&f.request("count", json!({})).await)["n"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_balanced_over_workers() {
    let s = server().await;
    // Two rooms on two workers: each room's script sees its own worker index.
    let script_worker = r#"
        return { requests = { worker = function() return { w = ringsfu.worker } end } }
    "#;
    drop(s);
    let s = start_local(vec![inline(".*", "w.lua", script_worker)], 2).await;
    let mut a = Client::connect(s.local_addr(), "ra", "p").await.unwrap();
    let mut b = Client::connect(s.local_addr(), "rb", "p").await.unwrap();
    let mut a2 = Client::connect(s.local_addr(), "ra", "q").await.unwrap();
    let wa = ok(&a.request("worker", json!({})).await)["w"].clone();
    let wb = ok(&b.request("worker", json!({})).await)["w"].clone();
    let wa2 = ok(&a2.request("worker", json!({})).await)["w"].clone();
    assert_ne!(wa, wb);
    assert_eq!(wa, wa2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_to_one_policy_refuses_a_third_peer() {
    let s = start_local(vec![path(".*", "lua/rooms/one_to_one.lua")], 1).await;
    let mut a = Client::connect(s.local_addr(), "call", "a").await.unwrap();
    let _b = Client::connect(s.local_addr(), "call", "b").await.unwrap();
    a.wait_for("mediasoup-version").await;
    match Client::connect(s.local_addr(), "call", "c").await {
        Err(ConnectError::Http(403, body)) => assert!(body.contains("1:1 room"), "{body}"),
        Err(e) => panic!("unexpected {e:?}"),
        Ok(_) => panic!("third peer accepted"),
    }
    // A reconnect of a member is not a third peer.
    let _a2 = Client::connect(s.local_addr(), "call", "a").await.unwrap();
    assert_eq!(a.closed_with().await, Some(4000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_changes_new_rooms_only() {
    let dir = std::env::temp_dir().join(format!("ringsfu-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("room.lua");
    let script =
        |v: u32| format!("return {{ requests = {{ v = function() return {{ v = {v} }} end }} }}");
    std::fs::write(&file, script(1)).unwrap();
    let s = start_local(vec![path(".*", &file.display().to_string())], 1).await;
    let mut old = Client::connect(s.local_addr(), "old", "a").await.unwrap();
    assert_eq!(ok(&old.request("v", json!({})).await)["v"], 1);

    std::fs::write(&file, script(2)).unwrap();
    let (status, body) = http(s.local_addr(), "POST", "/admin/reload").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("room.lua"), "{body}");
    assert_eq!(
        ok(&old.request("v", json!({})).await)["v"],
        1,
        "running room keeps its script"
    );
    let mut new = Client::connect(s.local_addr(), "new", "a").await.unwrap();
    assert_eq!(ok(&new.request("v", json!({})).await)["v"], 2);

    // A broken script is refused; the previous version stays for new rooms.
    std::fs::write(&file, "return {").unwrap();
    let (status, _) = http(s.local_addr(), "POST", "/admin/reload").await;
    assert_eq!(status, 500);
    let mut newer = Client::connect(s.local_addr(), "newer", "a").await.unwrap();
    assert_eq!(ok(&newer.request("v", json!({})).await)["v"], 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_room_capabilities_is_404() {
    // Rooms are not created over HTTP in this configuration (the default creates them).
    let threads: Vec<Arc<dyn ringsfu::executor::WorkerExec>> = (0..2)
        .map(|i| Arc::new(ringsfu::executor::LocalThread::spawn(i).unwrap()) as _)
        .collect();
    let mut cfg = test_config(2);
    cfg.http_api.create_rooms = false;
    let s = ringsfu::start_with(cfg, vec![inline(".*", "test_room.lua", TEST_ROOM)], threads)
        .await
        .unwrap();
    let (status, body) = http(s.local_addr(), "GET", "/rooms/none").await;
    assert_eq!(status, 404);
    assert_eq!(body, "Error: room with id \"none\" not found");
    assert_eq!(s.room_count(), 0);
    let (status, _) = http(s.local_addr(), "GET", "/nothing/here").await;
    assert_eq!(status, 404);
}
