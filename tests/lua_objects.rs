//! The Lua host's engine objects are typed per kind: each kind of object is its own userdata
//! with only its kind's methods, so a script calling a consumer method on a router (or passing
//! a transport where a producer is expected) gets a clear error naming what is missing, and
//! the engine is never asked. Checked with an inline room script on a real media worker.

mod common;

use common::*;
use serde_json::json;

const ROOM: &str = r#"
local m = { requests = {} }

-- The error message of calling f(...), or "no error".
local function err_of(f, ...)
  local ok, e = pcall(f, ...)
  if ok then return "no error" end
  return tostring(e)
end

function m.requests.run(room, peer, data)
  local router = room.router
  local t = router:createWebRtcTransport({})
  local pt = router:createPlainTransport({})
  local alo = router:createAudioLevelObserver({})
  local direct = router:createDirectTransport({})
  local dp = direct:produceData({ label = "x" })
  local out = {
    routerPause = err_of(function() return router:pause() end),
    transportLayers = err_of(function() return t:setPreferredLayers({ spatialLayer = 0 }) end),
    plainRestartIce = err_of(function() return pt:restartIce() end),
    directSendOnTransport = err_of(function() return direct:send("x") end),
    -- A method taken from one kind and called on another kind's object.
    crossCall = err_of(t.getStats, router),
    -- A transport where a producer is expected.
    addTransport = err_of(alo.addProducer, alo, t),
    -- An event of another kind of transport.
    webrtcTuple = err_of(t.on, t, "tuple", function() end),
    routerPaused = router.paused == nil,
    transportKind = t.kind == nil,
    types = { router.objectType, t.objectType, pt.objectType, alo.objectType, direct.objectType,
              dp.objectType },
    names = { tostring(router):match("^%a+"), tostring(alo):match("^%a+") },
    dpLabel = dp.label,
  }
  t:close()
  pt:close()
  direct:close()
  alo:close()
  out.closed = { t.closed, pt.closed, direct.closed, dp.closed, alo.closed }
  -- A closed object refuses calls with a bad-state code, naming itself.
  local ok, e = pcall(alo.pause, alo)
  local code, msg = ringsfu.error_status(e)
  out.pauseClosed = { ok, code, msg }
  return out
end
return m
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_has_only_its_own_methods() {
    let config = test_config(1);
    let workers = ringsfu::workers::spawn_engine_workers(&config).unwrap();
    let s = ringsfu::start_with(config, vec![inline(".*", "objects.lua", ROOM)], workers)
        .await
        .unwrap();
    let mut c = Client::connect(s.local_addr(), "objects", "p")
        .await
        .unwrap();
    let r = ok(&c.request("run", json!({})).await).clone();
    let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
    // Missing methods fail as Lua fails on any missing method, naming it.
    for (key, method) in [
        ("routerPause", "pause"),
        ("transportLayers", "setPreferredLayers"),
        ("plainRestartIce", "restartIce"),
        ("directSendOnTransport", "send"),
    ] {
        let e = text(key);
        assert!(
            e.contains("attempt to call a nil value") && e.contains(&format!("'{method}'")),
            "{key}: {e}"
        );
    }
    // A transport method applied to a router is refused by type.
    assert!(text("crossCall").contains("getStats"), "{r}");
    assert_ne!(text("crossCall"), "no error", "{r}");
    assert!(
        text("addTransport").contains("expected {producerId = ...} or a producer"),
        "{r}"
    );
    assert!(
        text("webrtcTuple").contains("a transport has no event \"tuple\""),
        "{r}"
    );
    // Fields, too, are the kind's own.
    assert_eq!(r["routerPaused"], true, "{r}");
    assert_eq!(r["transportKind"], true, "{r}");
    assert_eq!(
        r["types"],
        json!([
            "router",
            "transport",
            "transport",
            "audioLevelObserver",
            "directTransport",
            "dataProducer"
        ]),
        "{r}"
    );
    assert_eq!(r["names"], json!(["router", "audioLevelObserver"]), "{r}");
    assert_eq!(r["dpLabel"], "x");
    assert_eq!(r["closed"], json!([true, true, true, true, true]), "{r}");
    assert_eq!(r["pauseClosed"][0], false, "{r}");
    assert_eq!(r["pauseClosed"][1], 409, "{r}");
    assert!(
        r["pauseClosed"][2]
            .as_str()
            .is_some_and(|m| m.starts_with("audioLevelObserver ") && m.ends_with(" is closed")),
        "{r}"
    );
}
