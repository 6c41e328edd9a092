//! Smoke test of every scenario: a short low-rate run each, checking that packets flowed, that
//! every packet verified (SRTP, SSRC/PT rewrite, content) and that nothing was lost at a low rate.
//! No timing thresholds: this must pass on a loaded 2-core machine.

mod common;

use std::process::Command;

use common::ringsfu_binary;
use serde_json::Value;

fn bench(args: &[&str], json: &std::path::Path) -> Value {
    bench_stderr(args, json).0
}

/// Like `bench`, also returning what the run printed on stderr.
fn bench_stderr(args: &[&str], json: &std::path::Path) -> (Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringsfu-bench"))
        .args(args)
        .args(["--json", json.to_str().unwrap(), "--quiet"])
        .output()
        .expect("run ringsfu-bench");
    assert!(
        out.status.success(),
        "ringsfu-bench {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v = serde_json::from_str(&std::fs::read_to_string(json).expect("json written"))
        .expect("valid json");
    (v, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ringsfu-bench-smoke-{}-{name}", std::process::id()))
}

/// Common checks of a traffic run's result.
fn check_clean(r: &Value, consumers: u64) {
    let res = &r["result"];
    let received = res["received"].as_u64().unwrap();
    let expected = res["expected"].as_u64().unwrap();
    assert!(received > 0, "packets arrived: {res}");
    assert_eq!(res["srtp_failures"], 0, "every packet decrypts: {res}");
    assert_eq!(res["bad_content"], 0, "every payload verifies: {res}");
    assert_eq!(res["mismatched"], 0, "SSRC/PT/producer as signalled: {res}");
    assert_eq!(res["reordered"], 0, "in order: {res}");
    assert!(
        expected >= consumers,
        "expected counts every consumer: {res}"
    );
    // At a low rate nothing should be lost; a tolerance for one straggler per consumer.
    assert!(
        received + consumers >= expected,
        "no loss at low rate: {res}"
    );
    assert!(
        res["latency_p50_us"].as_f64().unwrap() > 0.0,
        "latency measured: {res}"
    );
}

#[test]
fn fanout_audio_through_ringsfu() {
    let p = tmp("fanout-audio.json");
    let v = bench(
        &[
            "fanout",
            "--consumers",
            "4",
            "--rate",
            "100",
            "--duration",
            "2",
            "--warmup",
            "0.5",
        ],
        &p,
    );
    let r = &v["runs"][0];
    check_clean(r, 4);
    assert_eq!(r["backend_used"], "epoll");
    assert!(
        r["result"]["server_cpu_us_per_fwd"].as_f64().unwrap() > 0.0,
        "server CPU measured: {r}"
    );
    let _ = std::fs::remove_file(p);
}

#[test]
fn fanout_video_through_ringsfu_two_producers() {
    let p = tmp("fanout-video.json");
    let v = bench(
        &[
            "fanout",
            "--producers",
            "2",
            "--consumers",
            "3",
            "--size",
            "1200",
            "--rate",
            "100",
            "--duration",
            "2",
            "--warmup",
            "0.5",
        ],
        &p,
    );
    check_clean(&v["runs"][0], 6);
    let _ = std::fs::remove_file(p);
}

#[test]
fn io_uring_request_runs_io_uring_or_says_it_fell_back() {
    let p = tmp("fanout-uring.json");
    let (v, stderr) = bench_stderr(
        &[
            "fanout",
            "--consumers",
            "2",
            "--rate",
            "50",
            "--duration",
            "1",
            "--warmup",
            "0.3",
            "--backend",
            "io_uring",
        ],
        &p,
    );
    let r = &v["runs"][0];
    assert_eq!(r["backend_requested"], "io_uring");
    // What the engine really ran: io_uring wherever this process can create a ring (probed here
    // with the io-uring crate, not with the engine's code); elsewhere epoll, and the run says so.
    match io_uring::IoUring::new(8) {
        Ok(_) => {
            assert_eq!(r["backend_used"], "io_uring", "io_uring works here: {r}");
            assert!(
                !stderr.contains("unavailable"),
                "no fallback note: {stderr}"
            );
        }
        Err(e) => {
            eprintln!("io_uring unavailable here ({e}): checking the fallback");
            assert_eq!(r["backend_used"], "epoll", "{r}");
            assert!(
                stderr.contains("io_uring requested but unavailable here"),
                "the fallback is reported: {stderr:?}"
            );
        }
    }
    check_clean(r, 2);
    let _ = std::fs::remove_file(p);
}

/// Kills and reaps a server the test started, also when an assertion fails.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 GET on loopback; the status code.
fn http_get_status(addr: std::net::SocketAddr, path: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to ringsfu");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn fanout_through_a_spawned_ringsfu_process() {
    let bin = ringsfu_binary();
    let p = tmp("fanout-spawned.json");
    let v = bench(
        &[
            "fanout",
            "--spawn-server",
            bin.to_str().unwrap(),
            "--consumers",
            "3",
            "--rate",
            "100",
            "--duration",
            "2",
            "--warmup",
            "0.5",
        ],
        &p,
    );
    let r = &v["runs"][0];
    check_clean(r, 3);
    assert_eq!(v["server"]["mode"], "spawned", "{v}");
    assert_eq!(r["series"], "ringsfu-http spawned w1");
    assert!(
        r["result"]["server_cpu_us_per_fwd"].as_f64().unwrap() > 0.0,
        "the server process's CPU is measured: {r}"
    );
    assert!(r["rss_bytes"].as_u64().unwrap() > 0, "server RSS: {r}");
    let _ = std::fs::remove_file(p);
}

#[test]
fn fanout_through_a_running_ringsfu_by_url_cleans_up() {
    use std::io::BufRead;
    let bin = ringsfu_binary();
    // Port 0 everywhere: the server logs the HTTP address it got.
    let mut child = Command::new(&bin)
        .env("RINGSFU_HTTP_PORT", "0")
        .env("RINGSFU_RTC_PORT", "0")
        .env("RINGSFU_WORKERS", "1")
        .env("RINGSFU_LISTEN_IP", "127.0.0.1")
        .env("RINGSFU_LOG_LEVEL", "info")
        .env_remove("RINGSFU_TLS_CERT")
        .env_remove("RINGSFU_TLS_KEY")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start ringsfu");
    let stderr = child.stderr.take().unwrap();
    let server = Reaped(child);
    let mut lines = std::io::BufReader::new(stderr).lines();
    // The "up" line comes before any request; if the server dies, the pipe ends.
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            Some(
                l.split(" up: ")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .to_string(),
            )
        })
        .expect("ringsfu logged its address");
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let pid = server.0.id().to_string();
    let room = format!("smoke-{}", std::process::id());
    let p = tmp("fanout-url.json");
    let v = bench(
        &[
            "fanout",
            "--server-url",
            &url,
            "--server-pid",
            &pid,
            "--room",
            &room,
            "--consumers",
            "3",
            "--size",
            "1200",
            "--rate",
            "100",
            "--duration",
            "2",
            "--warmup",
            "0.5",
        ],
        &p,
    );
    let r = &v["runs"][0];
    check_clean(r, 3);
    assert_eq!(v["server"]["mode"], "url", "{v}");
    assert_eq!(v["server"]["room"], room.as_str(), "{v}");
    assert!(r["result"]["server_cpu_us_per_fwd"].as_f64().unwrap() > 0.0);
    // The bench deleted its broadcasters: none is left in the room.
    for b in ["bench-p0", "bench-c0-0", "bench-c0-2"] {
        assert_eq!(
            http_get_status(addr, &format!("/rooms/{room}/broadcasters/{b}")),
            404,
            "{b} deleted"
        );
    }
    let _ = std::fs::remove_file(p);
}

#[test]
fn floor_forwards_and_is_measured() {
    let p = tmp("floor.json");
    let v = bench(
        &[
            "floor",
            "--consumers",
            "5",
            "--size",
            "1200",
            "--rate",
            "100",
            "--duration",
            "2",
            "--warmup",
            "0.5",
        ],
        &p,
    );
    let r = &v["runs"][0];
    check_clean(r, 5);
    assert!(r["result"]["server_cpu_us_per_fwd"].as_f64().unwrap() > 0.0);
    let _ = std::fs::remove_file(p);
}

/// A plan whose "forwarder" is the loopback itself: each producer sends straight to one consumer
/// socket with the same key, so external mode runs end to end with no server.
#[test]
fn external_plan_runs_and_refuses_non_loopback() {
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd"; // 30 bytes: 16 key + 14 salt
    let plan = serde_json::json!({
        "producers": [{"send_to": format!("127.0.0.1:{port}"), "ssrc": 1234, "payload_type": 111,
                       "srtp": {"suite": "AES_CM_128_HMAC_SHA1_80", "key_base64": key}}],
        "consumers": [{"listen": format!("127.0.0.1:{port}"), "producer": 0, "ssrc": 1234, "payload_type": 111,
                       "srtp": {"suite": "AES_CM_128_HMAC_SHA1_80", "key_base64": key}}]
    });
    let plan_path = tmp("plan.json");
    std::fs::write(&plan_path, plan.to_string()).unwrap();
    let p = tmp("external.json");
    let v = bench(
        &[
            "external",
            "--plan",
            plan_path.to_str().unwrap(),
            "--rate",
            "100",
            "--duration",
            "1",
            "--warmup",
            "0.3",
        ],
        &p,
    );
    check_clean(&v["runs"][0], 1);

    let mut bad = plan.clone();
    bad["producers"][0]["send_to"] = "192.0.2.1:9".into();
    std::fs::write(&plan_path, bad.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ringsfu-bench"))
        .args([
            "external",
            "--plan",
            plan_path.to_str().unwrap(),
            "--duration",
            "1",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refusing"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(plan_path);
    let _ = std::fs::remove_file(p);
}

#[test]
fn idle_transports_are_created_and_measured() {
    let p = tmp("idle.json");
    let v = bench(&["idle", "--count", "300"], &p);
    let r = &v["idle"];
    assert_eq!(r["transports"], 300);
    assert!(r["rss_after"].as_u64().unwrap() > 0);
    assert!(r["create_us_per_transport"].as_f64().unwrap() > 0.0);
    let _ = std::fs::remove_file(p);
}

#[test]
fn bad_arguments_are_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringsfu-bench"))
        .args(["fanout", "--duration", "100000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Checks of a `webrtc` run's join report: every subscriber joined, with positive, ordered times.
fn check_join(join: &Value, subscribers: u64, publishers: u64) {
    assert_eq!(join["subscribers"], subscribers, "{join}");
    let per = join["per_subscriber"].as_array().unwrap();
    assert_eq!(per.len() as u64, subscribers);
    for s in per {
        let t = |k: &str| s[k].as_f64().unwrap();
        assert!(t("created_ms") > 0.0, "{s}");
        assert!(t("created_ms") <= t("ice_ms"), "{s}");
        assert!(t("ice_ms") <= t("dtls_ms"), "{s}");
        assert!(t("dtls_ms") <= t("consumed_ms"), "{s}");
        assert!(t("consumed_ms") <= t("join_ms"), "{s}");
        let firsts = s["first_packet_ms"].as_array().unwrap();
        assert_eq!(firsts.len() as u64, publishers, "{s}");
        assert!(firsts.iter().all(|f| f.as_f64().unwrap() > 0.0), "{s}");
    }
    assert!(join["join_ms_p50"].as_f64().unwrap() > 0.0, "{join}");
    assert!(
        join["join_ms_max"].as_f64().unwrap() >= join["join_ms_p50"].as_f64().unwrap(),
        "{join}"
    );
}

#[test]
fn webrtc_audio_subscribers_join_and_receive() {
    let p = tmp("webrtc-audio.json");
    let v = bench(
        &[
            "webrtc",
            "--publishers",
            "1",
            "--subscribers",
            "3",
            "--rate",
            "50",
            "--duration",
            "2",
            "--warmup",
            "0.3",
        ],
        &p,
    );
    let r = &v["runs"][0];
    assert_eq!(r["scenario"], "webrtc");
    check_clean(r, 3);
    assert!(
        r["result"]["server_cpu_us_per_fwd"].as_f64().unwrap() > 0.0,
        "server CPU measured: {r}"
    );
    check_join(&v["join"], 3, 1);
    let _ = std::fs::remove_file(p);
}

/// Video: subscribers join mid-stream, so their consumers wait for a keyframe, which the
/// publisher sends when ringsfu asks (PLI/FIR).
#[test]
fn webrtc_video_two_publishers_keyframe_on_request() {
    let p = tmp("webrtc-video.json");
    let v = bench(
        &[
            "webrtc",
            "--publishers",
            "2",
            "--subscribers",
            "2",
            "--size",
            "1200",
            "--rate",
            "50",
            "--duration",
            "1.5",
            "--warmup",
            "0.3",
        ],
        &p,
    );
    check_clean(&v["runs"][0], 4);
    check_join(&v["join"], 2, 2);
    let _ = std::fs::remove_file(p);
}

#[test]
fn webrtc_refuses_more_workers() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringsfu-bench"))
        .args(["webrtc", "--workers", "2", "--duration", "1", "--quiet"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--workers 1"));
}
