//! The endurance check CI runs: 2,000 join/leave cycles (protoo peers with transports,
//! producers, consumers and data channels, plus an HTTP broadcaster each cycle) against the real
//! `ringsfu` binary with `ringsfu-bench soak --check`. It fails when any live object count of the
//! server's debug dump (rooms, peers, engine objects, objects and userdata the Lua host holds,
//! protoo peer handles, room registry) is not back at its baseline after the churn, when a
//! worker's Lua memory grew by more than 512 KB, or when a cycle failed. Object counts, not RSS,
//! are the assertion (RSS is noisy on a shared machine); bench/README.md has the long run.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::ringsfu_binary;
use serde_json::Value;

#[test]
fn two_thousand_join_leave_cycles_leave_nothing_behind() {
    let json = std::env::temp_dir().join(format!("ringsfu-soak-test-{}.json", std::process::id()));
    let bin = ringsfu_binary();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringsfu-bench"))
        .args(["soak", "--spawn-server"])
        .arg(&bin)
        .args([
            "--workers",
            "2",
            "--cycles",
            "2000",
            "--warmup",
            "100",
            "--parallel",
            "4",
            "--check",
            "--quiet",
            "--json",
        ])
        .arg(&json)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ringsfu-bench soak");
    // Bounded: ~10 s on an idle 2-core machine; every step inside has its own 10 s timeout.
    let deadline = Instant::now() + Duration::from_secs(150);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("soak did not finish within 150 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(status.success(), "soak --check failed:\n{text}");
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report written")).unwrap();
    let _ = std::fs::remove_file(&json);
    assert_eq!(r["failures"], 0, "{text}");
    assert_eq!(r["count_changes"], Value::Array(vec![]), "{text}");
    // The churn really went through both workers' Lua hosts (they exist at the baseline).
    let workers = r["baseline"]["dump"]["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    for w in workers {
        assert!(w["lua"]["luaMemoryBytes"].as_u64().unwrap() > 0, "{w}");
        assert_eq!(w["lua"]["rooms"], 0, "{w}");
    }
    // The engine's tables (slabs, id indexes, demux maps, SSRC/MID tables) are in the dump and
    // empty again at the end: a closed room left no entry behind in any of them.
    for w in r["end"]["dump"]["workers"].as_array().unwrap() {
        let tables = w["engine"].as_object().expect("engine table sizes");
        for name in [
            "transports",
            "producers",
            "consumers",
            "udpPaths",
            "iceUfrags",
            "plainSockets",
            "ssrcEntries",
            "transportIds",
            "dataConsumers",
        ] {
            assert!(
                tables.contains_key(name),
                "engine table {name} missing: {w}"
            );
        }
        for (name, n) in tables {
            assert_eq!(n, 0, "engine table {name} not empty at the end: {w}");
        }
    }
    println!("{text}");
}
