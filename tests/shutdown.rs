//! SIGTERM during a 3-peer call: the real `ringsfu` binary tells every protoo peer (WebSocket
//! close 1001 with the reason "server shutting down") and exits 0 within `shutdown.timeout`.
//! SIGUSR1 turns drain mode on.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// Starts the binary on free ports; returns the child and its signaling address.
fn spawn_server(extra_env: &[(&str, &str)]) -> (std::process::Child, std::net::SocketAddr) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringsfu"));
    cmd.env("RINGSFU_HTTP_PORT", "0")
        .env("RINGSFU_RTC_PORT", "0")
        .env("RINGSFU_WORKERS", "1")
        .env("RINGSFU_LOG_LEVEL", "info")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn ringsfu");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // "ringsfu 0.1.0 up: http://127.0.0.1:PORT with 1 worker(s)"
            if !sent {
                if let Some(rest) = line.split(" up: http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap().to_owned();
                    let _ = tx.send(addr);
                    sent = true;
                }
            }
            eprintln!("[server] {line}");
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server says it is up");
    (child, addr.parse().unwrap())
}

fn signal(child: &std::process::Child, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig}");
}

fn wait_exit(
    child: &mut std::process::Child,
    within: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_three_peer_call_closes_peers_with_a_reason_and_exits_zero() {
    let bound = 5;
    let (mut child, addr) = spawn_server(&[("RINGSFU_SHUTDOWN_TIMEOUT", "5")]);
    // Three demo peers join the same room (and a broadcaster holds it open too).
    let mut peers = Vec::new();
    for p in ["a", "b", "c"] {
        let mut req = format!("ws://{addr}/?roomId=call&peerId={p}")
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "protoo".parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("peer connects");
        peers.push(ws);
    }
    let b = call_raw(
        addr,
        "POST",
        "/rooms/call/broadcasters",
        r#"{"id":"bc","displayName":"B","device":{"name":"x"}}"#,
    )
    .await;
    assert_eq!(b.status, 200, "{}", b.body);
    // Each peer got the demo's first notification: the call is up.
    for ws in peers.iter_mut() {
        let first = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(
            first.to_text().unwrap().contains("mediasoup-version"),
            "{first:?}"
        );
    }

    let t0 = Instant::now();
    signal(&child, "TERM");
    for ws in peers.iter_mut() {
        let close = loop {
            match tokio::time::timeout(WAIT, ws.next())
                .await
                .expect("close in time")
            {
                Some(Ok(Message::Close(Some(f)))) => break f,
                Some(Ok(Message::Close(None))) => panic!("close without a code/reason"),
                Some(Ok(_)) => continue,
                other => panic!("connection ended without a close frame: {other:?}"),
            }
        };
        assert_eq!(u16::from(close.code), 1001, "{close:?}");
        assert_eq!(close.reason.as_str(), "server shutting down");
    }
    let status = tokio::task::block_in_place(|| wait_exit(&mut child, Duration::from_secs(bound)));
    let Some(status) = status else {
        let _ = child.kill();
        panic!("still running {} s after SIGTERM", bound);
    };
    assert!(status.success(), "exit status {status}");
    assert!(
        t0.elapsed() < Duration::from_secs(bound),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_starts_drain_mode() {
    let (mut child, addr) = spawn_server(&[]);
    let _old = Client::connect(addr, "before", "p1")
        .await
        .expect("connects");
    signal(&child, "USR1");
    let mut refused = false;
    for _ in 0..100 {
        match Client::connect(addr, &format!("after{}", rand_suffix()), "p2").await {
            Err(ConnectError::Http(503, _)) => {
                refused = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(refused, "new rooms still accepted after SIGUSR1");
    Client::connect(addr, "before", "p3")
        .await
        .expect("existing room goes on");
    signal(&child, "TERM");
    let st = tokio::task::block_in_place(|| wait_exit(&mut child, Duration::from_secs(15)));
    assert!(st.is_some_and(|s| s.success()));
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}
