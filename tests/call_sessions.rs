//! Call-script sessions (the `/call` WebSocket) leave nothing behind in Lua: a script that keeps
//! the session in its own `data` (a cycle through the session userdata) must not pin it after
//! the session ends.

mod common;

use std::sync::Arc;

use common::*;
use futures_util::{SinkExt, StreamExt};
use ringsfu::executor::{LocalThread, WorkerExec};
use tokio_tungstenite::tungstenite::Message;

/// Stores the session in its own data next to a 100 KB string, and echoes frames.
const KEEPER: &str = r#"
local app = {}
function app.on_connect(s)
  s.data.self = s
  s.data.blob = string.rep("x", 100000) .. s.id
end
function app.on_message(s, text)
  s:send({ echo = text, blob = #s.data.blob, query = s.query.tag })
end
return app
"#;

async fn lua_memory(addr: std::net::SocketAddr) -> u64 {
    let a = call_raw(addr, "GET", "/admin/debug?gc=1", "").await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.json()["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| w["lua"]["luaMemoryBytes"].as_u64().expect("luaMemoryBytes"))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_sessions_are_freed_even_when_a_script_keeps_them_in_their_data() {
    let dir = std::env::temp_dir().join(format!("ringsfu-call-sessions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("keeper.lua");
    std::fs::write(&script, KEEPER).unwrap();
    let mut config = test_config(1);
    config.calls.ws_script = Some(script.to_string_lossy().into_owned());
    config.calls.socket_io_script = None;
    let threads: Vec<Arc<dyn WorkerExec>> =
        vec![Arc::new(LocalThread::spawn(0).unwrap()) as Arc<dyn WorkerExec>];
    let server = ringsfu::start_with(config, vec![], threads)
        .await
        .expect("server starts");
    let addr = server.local_addr();
    let url = format!("ws://{addr}/call?tag=t1");

    let session = || async {
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("/call upgrade");
        ws.send(Message::text("hello")).await.unwrap();
        let reply = tokio::time::timeout(WAIT, async {
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(t) = m {
                    return Some(t.to_string());
                }
            }
            None
        })
        .await
        .expect("an echo in time")
        .expect("an echo");
        let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(v["echo"], "hello", "{v}");
        assert!(v["blob"].as_u64().unwrap() > 100_000, "{v}");
        assert_eq!(v["query"], "t1", "{v}");
        ws.close(None).await.unwrap();
        // Wait for the server's side of the close so on_disconnect has run.
        while let Some(Ok(_)) = ws.next().await {}
    };

    // Warm up (chunk compiled, tables sized), then measure.
    for _ in 0..5 {
        session().await;
    }
    let baseline = lua_memory(addr).await;
    for _ in 0..150 {
        session().await;
    }
    // 150 leaked sessions would hold 15 MB; allow 2 MB of noise. Sessions end asynchronously
    // after the close: wait for the count to come back rather than sleeping.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut last = lua_memory(addr).await;
    while last >= baseline + 2_000_000 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        last = lua_memory(addr).await;
    }
    let freed = last < baseline + 2_000_000;
    assert!(
        freed,
        "Lua memory {baseline} → {last} bytes after 150 sessions: sessions are leaked"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
