//! Data-channel associations start no threads on the server (its own test binary, so no other
//! test's workers run at the same time).

use std::time::Instant;
mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn associations_start_no_threads() {
    fn ringsfu_threads() -> (usize, usize) {
        let mut workers = 0;
        let mut blocking = 0;
        for t in std::fs::read_dir("/proc/self/task").unwrap() {
            let comm = std::fs::read_to_string(t.unwrap().path().join("comm")).unwrap_or_default();
            if comm.starts_with("ringsfu-worker") {
                workers += 1;
            }
            if comm.contains("-blocking") && comm.starts_with("ringsfu-w") {
                blocking += 1;
            }
        }
        (workers, blocking)
    }
    let w = spawn_sctp_worker();
    let router = w
        .with_engine(|e| e.create_router(&demo_media_codecs(), Instant::now()))
        .await
        .unwrap()
        .unwrap();
    let before = ringsfu_threads();
    let mut peers = Vec::new();
    for _ in 0..20 {
        peers.push(sctp_peer(&w, router).await);
    }
    for p in &peers {
        let t = p.transport;
        let state = w
            .with_engine(move |e| e.sctp_state(&t).unwrap())
            .await
            .unwrap();
        assert_eq!(state.as_str(), "connected");
    }
    let after = ringsfu_threads();
    assert_eq!(before, (1, 0));
    assert_eq!(
        after, before,
        "20 SCTP associations started no threads on the server side"
    );
}
