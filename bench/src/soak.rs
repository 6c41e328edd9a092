//! `ringsfu-bench soak`: join/leave churn against the real `ringsfu` binary, over protoo
//! (WebSocket) and the HTTP broadcaster API, measuring what stays behind.
//!
//! One cycle, in room `soak-<cycle mod rooms>`: peers A and B connect over protoo, each creates a
//! WebRtcTransport (with SCTP), both join; A produces audio and video and a `chat` data
//! producer; a broadcaster is created over HTTP with a plain transport and an audio producer;
//! B must be offered the three consumers (`newConsumer`, accepted) and two data consumers
//! (`newDataConsumer`: A's chat and the room bot); then the broadcaster is deleted and both peers
//! leave. `--parallel` cycles run at once. A cycle fails when a request fails or an expected
//! offer does not come within 10 s.
//!
//! Process figures (RSS, fds, threads from /proc) and the server's debug dump
//! (`GET /admin/debug?gc=1`: Lua memory per worker, live object counts) are taken at a baseline
//! (after `--warmup` cycles, once every room has closed) and at the end (likewise). `--check`
//! makes the run fail when a live object count differs from its baseline, Lua memory grew by
//! more than `--max-lua-growth-kb`, or a cycle failed: what CI asserts (bench/tests/soak.rs).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// How long one request or one expected offer may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server may take to start, and rooms to close after the last cycle.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors of the soak (the run itself; failed cycles are counted, not errors).
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    /// Bad options.
    #[error("{0}")]
    Usage(String),
    /// Starting or reaching the server failed.
    #[error("server: {0}")]
    Server(String),
    /// A socket or file failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

/// What the soak runs against and how much.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Measured cycles.
    pub cycles: usize,
    /// Cycles before the baseline.
    pub warmup: usize,
    /// Cycles in flight at once.
    pub parallel: usize,
    /// Room ids in rotation.
    pub rooms: usize,
    /// The server: a binary to start, or a running one.
    pub server: SoakServer,
    /// `--check`: bounds that fail the run.
    pub check: bool,
    /// Lua memory growth per worker allowed by `--check`, bytes.
    pub max_lua_growth: u64,
    /// Progress lines.
    pub quiet: bool,
}

/// Where the server comes from.
#[derive(Debug, Clone)]
pub enum SoakServer {
    /// Start this binary with this many workers on free loopback ports.
    Spawn(PathBuf, usize),
    /// A running server (HTTP address) and its process id (for /proc figures).
    Running(SocketAddr, u32),
}

/// One snapshot of the server.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sample {
    /// Resident set size, KiB.
    pub rss_kb: u64,
    /// Open file descriptors.
    pub fds: u64,
    /// Threads.
    pub threads: u64,
    /// Lua memory per worker after a full collection, bytes (None: no Lua state yet).
    pub lua_bytes: Vec<Option<u64>>,
    /// Every live count of the debug dump, by path (`workers.0.lua.luaObjects.transport`, ...).
    pub counts: Vec<(String, u64)>,
    /// The dump itself.
    pub dump: Value,
}

/// The result of a soak.
#[derive(Debug, serde::Serialize)]
pub struct SoakReport {
    /// Measured cycles run.
    pub cycles: usize,
    /// Cycles that failed (and the first few reasons).
    pub failures: usize,
    /// First failure reasons (at most 10).
    pub failure_samples: Vec<String>,
    /// Measured cycles per second.
    pub cycles_per_s: f64,
    /// Wall time of the measured cycles, seconds.
    pub seconds: f64,
    /// After the warm-up.
    pub baseline: Sample,
    /// After half the measured cycles.
    pub mid: Sample,
    /// After the last cycle.
    pub end: Sample,
    /// Counts that differ between baseline and end: (name, baseline, end).
    pub count_changes: Vec<(String, u64, u64)>,
    /// Violations of `--check` bounds (empty without `--check` or when it passed).
    pub violations: Vec<String>,
}

/// `soak` options (after the scenario name).
pub const USAGE: &str = "usage: ringsfu-bench soak (--spawn-server PATH [--workers N] | --server-url URL --server-pid PID)
  --cycles N           measured cycles (default 1000)
  --warmup N           cycles before the baseline (default 100)
  --parallel N         cycles in flight at once (default 4)
  --rooms N            room ids in rotation (default 7)
  --check              fail unless every live count returns to its baseline, Lua memory per worker
                       grows by at most --max-lua-growth-kb (default 512) and no cycle failed
  --json FILE          write the report as JSON
  --quiet              no progress lines";

/// Parses `soak` options; returns the config and the JSON path.
pub fn parse(args: &[String]) -> Result<(SoakConfig, Option<String>), SoakError> {
    let usage = |m: String| SoakError::Usage(format!("{m}\n{USAGE}"));
    let mut cycles = 1000;
    let mut warmup = 100;
    let mut parallel = 4;
    let mut rooms = 7;
    let mut workers = 2;
    let mut check = false;
    let mut max_lua_kb = 512u64;
    let mut quiet = false;
    let mut json_path = None;
    let mut spawn = None;
    let mut url = None;
    let mut pid = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| usage(format!("{name} needs a value")))
        };
        let num = |name: &str, v: String| {
            v.parse::<usize>()
                .map_err(|_| usage(format!("{name}: not a number: {v}")))
        };
        match a.as_str() {
            "--cycles" => cycles = num(a, val(a)?)?,
            "--warmup" => warmup = num(a, val(a)?)?,
            "--parallel" => parallel = num(a, val(a)?)?.clamp(1, 64),
            "--rooms" => rooms = num(a, val(a)?)?.max(1),
            "--workers" => workers = num(a, val(a)?)?.clamp(1, 64),
            "--max-lua-growth-kb" => max_lua_kb = num(a, val(a)?)? as u64,
            "--check" => check = true,
            "--quiet" => quiet = true,
            "--json" => json_path = Some(val(a)?),
            "--spawn-server" => spawn = Some(PathBuf::from(val(a)?)),
            "--server-url" => url = Some(val(a)?),
            "--server-pid" => pid = Some(num(a, val(a)?)? as u32),
            other => return Err(usage(format!("unknown option {other}"))),
        }
    }
    if cycles > 1_000_000 {
        return Err(usage("--cycles: at most 1000000".into()));
    }
    let server = match (spawn, url, pid) {
        (Some(p), None, None) => SoakServer::Spawn(p, workers),
        (None, Some(u), Some(pid)) => {
            let addr = crate::remote::parse_url(&u).map_err(|e| usage(e.to_string()))?;
            SoakServer::Running(addr, pid)
        }
        _ => {
            return Err(usage(
                "give --spawn-server PATH, or --server-url URL with --server-pid PID".into(),
            ))
        }
    };
    Ok((
        SoakConfig {
            cycles,
            warmup,
            parallel,
            rooms,
            server,
            check,
            max_lua_growth: max_lua_kb * 1024,
            quiet,
        },
        json_path,
    ))
}

/// A server process the soak started; killed on drop.
struct Spawned {
    child: Child,
    log: PathBuf,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn free_port() -> Result<u16, SoakError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| SoakError::Io("free port".into(), e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| SoakError::Io("free port".into(), e))
}

fn spawn(binary: &Path, workers: usize) -> Result<(Spawned, SocketAddr), SoakError> {
    let port = free_port()?;
    let log = std::env::temp_dir().join(format!("ringsfu-soak-{}-{port}.log", std::process::id()));
    let file =
        std::fs::File::create(&log).map_err(|e| SoakError::Io(log.display().to_string(), e))?;
    let child = Command::new(binary)
        .env("RINGSFU_HTTP_PORT", port.to_string())
        .env("RINGSFU_RTC_PORT", "0")
        .env("RINGSFU_WORKERS", workers.to_string())
        .env("RINGSFU_LISTEN_IP", "127.0.0.1")
        .env("RINGSFU_ANNOUNCED_ADDRESS", "127.0.0.1")
        .env("RINGSFU_LOG_LEVEL", "warn")
        .env_remove("RINGSFU_TLS_CERT")
        .env_remove("RINGSFU_TLS_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .map_err(|e| SoakError::Io(format!("start {}", binary.display()), e))?;
    Ok((
        Spawned { child, log },
        SocketAddr::from(([127, 0, 0, 1], port)),
    ))
}

/// Runs the soak (blocking; a current-thread runtime of its own).
pub fn run(cfg: &SoakConfig) -> Result<SoakReport, SoakError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SoakError::Io("runtime".into(), e))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, run_async(cfg))
}

async fn run_async(cfg: &SoakConfig) -> Result<SoakReport, SoakError> {
    let (spawned, addr, pid) = match &cfg.server {
        SoakServer::Spawn(bin, workers) => {
            let (s, addr) = spawn(bin, *workers)?;
            let pid = s.child.id();
            (Some(s), addr, pid)
        }
        SoakServer::Running(addr, pid) => (None, *addr, *pid),
    };
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        match http(addr, "GET", "/admin/debug", None).await {
            Ok((200, _)) => break,
            Ok((status, body)) => {
                return Err(SoakError::Server(format!(
                    "GET /admin/debug answered {status}: {body}"
                )))
            }
            Err(e) if Instant::now() > deadline => {
                let log = spawned
                    .as_ref()
                    .and_then(|s| std::fs::read_to_string(&s.log).ok())
                    .unwrap_or_default();
                return Err(SoakError::Server(format!("no answer ({e}); log:\n{log}")));
            }
            // A starting process: nothing to wait on but time.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let progress = |phase: &str, done: usize, total: usize, failed: usize, t0: Instant| {
        if !cfg.quiet {
            eprintln!(
                "soak {phase}: {done}/{total} cycles, {failed} failed, {:.0} cycles/s",
                done as f64 / t0.elapsed().as_secs_f64().max(1e-9)
            );
        }
    };
    // Warm-up, then the baseline once every room has closed.
    let (_, _, _) = churn(addr, cfg, 0, cfg.warmup, "warm-up", &progress).await;
    settle(addr).await?;
    let baseline = sample(addr, pid).await?;
    // Two halves with a sample between: a leak grows in both, a high-water mark only in the
    // first.
    let half = cfg.cycles / 2;
    let mut busy = Duration::ZERO;
    let t0 = Instant::now();
    let (f1, mut samples, _) = churn(addr, cfg, cfg.warmup, half, "measured", &progress).await;
    busy += t0.elapsed();
    settle(addr).await?;
    let mid = sample(addr, pid).await?;
    let t1 = Instant::now();
    let (f2, s2, _) = churn(
        addr,
        cfg,
        cfg.warmup + half,
        cfg.cycles - half,
        "measured",
        &progress,
    )
    .await;
    busy += t1.elapsed();
    let seconds = busy.as_secs_f64();
    let failures = f1 + f2;
    samples.extend(s2);
    samples.truncate(10);
    settle(addr).await?;
    let end = sample(addr, pid).await?;

    let base: HashMap<&str, u64> = baseline
        .counts
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    let mut count_changes = Vec::new();
    for (k, v) in &end.counts {
        let b = base.get(k.as_str()).copied().unwrap_or(0);
        if b != *v {
            count_changes.push((k.clone(), b, *v));
        }
    }
    let mut violations = Vec::new();
    if cfg.check {
        if failures > 0 {
            violations.push(format!("{failures} cycle(s) failed: {samples:?}"));
        }
        for (k, b, e) in &count_changes {
            violations.push(format!(
                "live count {k}: {b} at the baseline, {e} at the end"
            ));
        }
        for (w, (b, e)) in baseline.lua_bytes.iter().zip(&end.lua_bytes).enumerate() {
            if let (Some(b), Some(e)) = (b, e) {
                if e.saturating_sub(*b) > cfg.max_lua_growth {
                    violations.push(format!(
                        "worker {w}: Lua memory grew from {b} to {e} bytes (bound {} bytes)",
                        cfg.max_lua_growth
                    ));
                }
            }
        }
    }
    drop(spawned);
    Ok(SoakReport {
        cycles: cfg.cycles,
        failures,
        failure_samples: samples,
        cycles_per_s: cfg.cycles as f64 / seconds.max(1e-9),
        seconds,
        baseline,
        mid,
        end,
        count_changes,
        violations,
    })
}

/// Runs cycles `first..first + n`, `cfg.parallel` at a time. Returns (failures, first reasons,
/// done).
async fn churn(
    addr: SocketAddr,
    cfg: &SoakConfig,
    first: usize,
    n: usize,
    phase: &str,
    progress: &impl Fn(&str, usize, usize, usize, Instant),
) -> (usize, Vec<String>, usize) {
    let t0 = Instant::now();
    let next = Rc::new(std::cell::Cell::new(0usize));
    let failed = Rc::new(RefCell::new((0usize, Vec::<String>::new())));
    let done = Rc::new(std::cell::Cell::new(0usize));
    let mut last_report = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..cfg.parallel.min(n.max(1)) {
        let (next, failed, done) = (next.clone(), failed.clone(), done.clone());
        let rooms = cfg.rooms;
        tasks.push(tokio::task::spawn_local(async move {
            loop {
                let i = next.get();
                if i >= n {
                    break;
                }
                next.set(i + 1);
                let cycle = first + i;
                let room = format!("soak-{}", cycle % rooms);
                if let Err(e) = one_cycle(addr, &room, cycle).await {
                    let mut f = failed.borrow_mut();
                    f.0 += 1;
                    if f.1.len() < 10 {
                        f.1.push(format!("cycle {cycle} (room {room}): {e}"));
                    }
                }
                done.set(done.get() + 1);
            }
        }));
    }
    for t in tasks {
        // Report progress every few seconds while waiting.
        let mut t = t;
        loop {
            tokio::select! {
                _ = &mut t => break,
                _ = tokio::time::sleep(Duration::from_secs(5)) => {
                    if last_report.elapsed() >= Duration::from_secs(5) {
                        progress(phase, done.get(), n, failed.borrow().0, t0);
                        last_report = Instant::now();
                    }
                }
            }
        }
    }
    progress(phase, done.get(), n, failed.borrow().0, t0);
    let f = failed.borrow();
    (f.0, f.1.clone(), done.get())
}

/// Waits (bounded) until no room is left: the registry is empty and every worker's Lua host
/// has closed its rooms.
async fn settle(addr: SocketAddr) -> Result<(), SoakError> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let dump = debug(addr, false).await?;
        let rooms_left = dump["registryRooms"].as_u64().unwrap_or(0)
            + dump["workers"]
                .as_array()
                .map(|ws| {
                    ws.iter()
                        .map(|w| w["lua"]["rooms"].as_u64().unwrap_or(0))
                        .sum::<u64>()
                })
                .unwrap_or(0);
        if rooms_left == 0 {
            // Rooms close their routers in a task after the room left the registry.
            tokio::time::sleep(Duration::from_millis(200)).await;
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(SoakError::Server(format!(
                "rooms still open {SETTLE_TIMEOUT:?} after the last cycle: {dump}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn debug(addr: SocketAddr, gc: bool) -> Result<Value, SoakError> {
    let path = if gc {
        "/admin/debug?gc=1"
    } else {
        "/admin/debug"
    };
    match http(addr, "GET", path, None).await {
        Ok((200, body)) => serde_json::from_str(&body)
            .map_err(|e| SoakError::Server(format!("debug dump: {e}: {body}"))),
        Ok((s, body)) => Err(SoakError::Server(format!("debug dump: HTTP {s}: {body}"))),
        Err(e) => Err(SoakError::Server(format!("debug dump: {e}"))),
    }
}

/// Every number in the dump, flattened to `a.b.c` paths; Lua memory figures are left out
/// (they are measured, not counted).
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, u64)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k.starts_with("luaMemory") {
                    continue;
                }
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, v, out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                flatten(&format!("{prefix}.{i}"), v, out);
            }
        }
        Value::Number(n) => {
            if let Some(n) = n.as_u64() {
                out.push((prefix.to_owned(), n));
            }
        }
        _ => {}
    }
}

async fn sample(addr: SocketAddr, pid: u32) -> Result<Sample, SoakError> {
    let dump = debug(addr, true).await?;
    let mut counts = Vec::new();
    flatten("", &dump, &mut counts);
    counts.retain(|(k, _)| !k.ends_with(".worker"));
    let lua_bytes = dump["workers"]
        .as_array()
        .map(|ws| {
            ws.iter()
                .map(|w| w["lua"]["luaMemoryBytes"].as_u64())
                .collect()
        })
        .unwrap_or_default();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| SoakError::Io(format!("/proc/{pid}/status"), e))?;
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // The lowest of a few reads over half a second: the connection of the request just answered
    // (or of a peer that just left) may still be closing; a leaked descriptor stays.
    let mut fds = u64::MAX;
    for _ in 0..5 {
        let n = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count() as u64)
            .unwrap_or(0);
        fds = fds.min(n);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Sample {
        rss_kb: field("VmRSS:"),
        fds,
        threads: field("Threads:"),
        lua_bytes,
        counts,
        dump,
    })
}

// ------------------------------------------------------------------------------ HTTP

/// One HTTP/1.1 request on its own connection: (status, body).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, String), String> {
    let run = async {
        let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let text = body.map(Value::to_string).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
            text.len()
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        let answer = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad answer: {head}"))?;
        Ok((status, body.to_owned()))
    };
    tokio::time::timeout(STEP_TIMEOUT, run)
        .await
        .map_err(|_| format!("{method} {path}: timeout"))?
}

async fn http_ok(addr: SocketAddr, method: &str, path: &str, body: Value) -> Result<Value, String> {
    let (status, text) = http(addr, method, path, Some(&body)).await?;
    if !(200..300).contains(&status) {
        return Err(format!("{method} {path}: HTTP {status}: {text}"));
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

// ------------------------------------------------------------------------------ protoo

#[derive(Default)]
struct Seen {
    /// Requests the server sent, by method (all answered ok).
    requests: HashMap<String, usize>,
    closed: bool,
}

/// Our requests in flight, by id.
type Pending = Rc<RefCell<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

/// A protoo peer: a reader task answers every server request with ok and completes our
/// requests; a writer task owns the socket's sink.
struct Peer {
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    seen: Rc<RefCell<Seen>>,
    changed: Rc<Notify>,
    next_id: u64,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Peer {
    /// Connects peer `peer` of `room` from `source` (a loopback address of its own when the
    /// server is on 127.0.0.1: one soak plays many users, and the server limits requests and
    /// connections per client IP).
    async fn connect(
        addr: SocketAddr,
        room: &str,
        peer: &str,
        source: Option<std::net::IpAddr>,
    ) -> Result<Peer, String> {
        let mut req = format!("ws://{addr}/?roomId={room}&peerId={peer}")
            .into_client_request()
            .map_err(|e| e.to_string())?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "protoo".parse().map_err(|_| "header".to_string())?,
        );
        let open = async {
            let socket = match addr {
                SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
                SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
            }
            .map_err(|e| format!("connect: {e}"))?;
            if let Some(ip) = source {
                socket
                    .bind(SocketAddr::new(ip, 0))
                    .map_err(|e| format!("connect: bind {ip}: {e}"))?;
            }
            let stream = socket
                .connect(addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            tokio_tungstenite::client_async(req, stream)
                .await
                .map_err(|e| format!("connect: {e}"))
        };
        let (ws, _) = tokio::time::timeout(STEP_TIMEOUT, open)
            .await
            .map_err(|_| "connect: timeout".to_string())??;
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let pending: Pending = Rc::default();
        let seen: Rc<RefCell<Seen>> = Rc::default();
        let changed = Rc::new(Notify::new());
        let writer = tokio::task::spawn_local(async move {
            while let Some(m) = out_rx.recv().await {
                let close = matches!(m, Message::Close(_));
                if sink.send(m).await.is_err() || close {
                    break;
                }
            }
        });
        let (p2, s2, c2, o2) = (pending.clone(), seen.clone(), changed.clone(), out.clone());
        let reader = tokio::task::spawn_local(async move {
            while let Some(Ok(m)) = stream.next().await {
                let Message::Text(t) = m else { continue };
                let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
                    continue;
                };
                if v["response"] == true {
                    let id = v["id"].as_u64().unwrap_or(0);
                    if let Some(tx) = p2.borrow_mut().remove(&id) {
                        let r = if v["ok"] == true {
                            Ok(v["data"].clone())
                        } else {
                            Err(format!("{} {}", v["errorCode"], v["errorReason"]))
                        };
                        let _ = tx.send(r);
                    }
                } else if v["request"] == true {
                    let answer = json!({"response": true, "id": v["id"], "ok": true, "data": {}});
                    let _ = o2.send(Message::text(answer.to_string()));
                    let method = v["method"].as_str().unwrap_or("").to_owned();
                    *s2.borrow_mut().requests.entry(method).or_default() += 1;
                    c2.notify_waiters();
                }
            }
            s2.borrow_mut().closed = true;
            // Requests still waiting fail now.
            p2.borrow_mut().clear();
            c2.notify_waiters();
        });
        Ok(Peer {
            out,
            pending,
            seen,
            changed,
            next_id: 1,
            tasks: vec![writer, reader],
        })
    }

    async fn request(&mut self, method: &str, data: Value) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(id, tx);
        let msg = json!({"request": true, "id": id, "method": method, "data": data});
        self.out
            .send(Message::text(msg.to_string()))
            .map_err(|_| format!("{method}: connection gone"))?;
        match tokio::time::timeout(STEP_TIMEOUT, rx).await {
            Err(_) => Err(format!("{method}: timeout")),
            Ok(Err(_)) => Err(format!("{method}: connection closed")),
            Ok(Ok(r)) => r.map_err(|e| format!("{method}: {e}")),
        }
    }

    /// Waits until the server has sent `n` requests of `method`.
    async fn wait_requests(&self, method: &str, n: usize) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        loop {
            let notified = self.changed.notified();
            {
                let seen = self.seen.borrow();
                let got = seen.requests.get(method).copied().unwrap_or(0);
                if got >= n {
                    return Ok(());
                }
                if seen.closed {
                    return Err(format!("connection closed with {got}/{n} {method}"));
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let got = self
                    .seen
                    .borrow()
                    .requests
                    .get(method)
                    .copied()
                    .unwrap_or(0);
                return Err(format!("{got}/{n} {method} within {STEP_TIMEOUT:?}"));
            }
        }
    }

    /// Closes the WebSocket and waits (bounded) until the server closed its side.
    async fn leave(self) {
        let _ = self.out.send(Message::Close(None));
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        for t in self.tasks {
            let abort = t.abort_handle();
            if tokio::time::timeout_at(deadline, t).await.is_err() {
                abort.abort();
            }
        }
    }
}

fn sctp_caps() -> Value {
    json!({"numStreams": {"OS": 1024, "MIS": 1024}})
}

fn opus(ssrc: u32, mid: &str) -> Value {
    json!({
        "mid": mid,
        "codecs": [{"mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2,
                    "parameters": {"useinbandfec": 1}, "rtcpFeedback": []}],
        "headerExtensions": [{"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 1}],
        "encodings": [{"ssrc": ssrc}],
        "rtcp": {"cname": "soak"}
    })
}

fn vp8(ssrc: u32, mid: &str) -> Value {
    json!({
        "mid": mid,
        "codecs": [{"mimeType": "video/VP8", "payloadType": 96, "clockRate": 90000,
                    "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"}]}],
        "headerExtensions": [{"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 1}],
        "encodings": [{"ssrc": ssrc}],
        "rtcp": {"cname": "soak"}
    })
}

/// One cycle (see the module doc).
async fn one_cycle(addr: SocketAddr, room: &str, cycle: usize) -> Result<(), String> {
    // Each cycle's pair of users comes from its own loopback address (127.0.0.2-251 in rotation).
    let source = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_loopback() => {
            Some(std::net::IpAddr::from([127, 0, 0, 2 + (cycle % 250) as u8]))
        }
        _ => None,
    };
    let mut a = Peer::connect(addr, room, &format!("a{cycle}"), source).await?;
    let mut b = Peer::connect(addr, room, &format!("b{cycle}"), source).await?;
    let result = async {
        let caps = a.request("getRouterRtpCapabilities", json!({})).await?;
        let ta = a
            .request(
                "createWebRtcTransport",
                json!({"producing": true, "consuming": false, "sctpCapabilities": sctp_caps()}),
            )
            .await?;
        b.request(
            "createWebRtcTransport",
            json!({"producing": false, "consuming": true, "sctpCapabilities": sctp_caps()}),
        )
        .await?;
        for (p, name) in [(&mut a, "A"), (&mut b, "B")] {
            p.request(
                "join",
                json!({"displayName": name, "device": {"name": "soak"},
                       "rtpCapabilities": caps, "sctpCapabilities": sctp_caps()}),
            )
            .await?;
        }
        let tid = ta["id"].clone();
        let base = (cycle as u32).wrapping_mul(4) | 1;
        a.request(
            "produce",
            json!({"transportId": tid, "kind": "audio", "rtpParameters": opus(base, "0"), "appData": {}}),
        )
        .await?;
        a.request(
            "produce",
            json!({"transportId": tid, "kind": "video", "rtpParameters": vp8(base + 2, "1"), "appData": {}}),
        )
        .await?;
        a.request(
            "produceData",
            json!({"transportId": tid, "sctpStreamParameters": {"streamId": 0, "ordered": true},
                   "label": "chat", "protocol": "", "appData": {}}),
        )
        .await?;
        // A broadcaster over HTTP in the same room, consumed by the peers.
        let bid = format!("bc{cycle}");
        let rp = format!("/rooms/{room}/broadcasters");
        http_ok(
            addr,
            "POST",
            &rp,
            json!({"id": bid, "displayName": "soak", "device": {"name": "soak"}}),
        )
        .await?;
        let t = http_ok(
            addr,
            "POST",
            &format!("{rp}/{bid}/transports"),
            json!({"type": "plain", "comedia": true, "rtcpMux": true}),
        )
        .await?;
        let bt = t["id"].as_str().unwrap_or_default().to_owned();
        let mut params = opus(base + 1, "0");
        params["headerExtensions"] = json!([]);
        http_ok(
            addr,
            "POST",
            &format!("{rp}/{bid}/transports/{bt}/producers"),
            json!({"kind": "audio", "rtpParameters": params}),
        )
        .await?;
        // B is offered A's audio and video and the broadcaster's audio, A's chat and the bot.
        let offered = async {
            b.wait_requests("newConsumer", 3).await?;
            b.wait_requests("newDataConsumer", 2).await
        }
        .await;
        let deleted = http_ok(addr, "DELETE", &format!("{rp}/{bid}"), Value::Null).await;
        offered?;
        deleted.map(|_| ())
    }
    .await;
    a.leave().await;
    b.leave().await;
    result
}

/// The report as text (what bench/README.md quotes).
pub fn render(r: &SoakReport) -> String {
    let pct = |b: f64, e: f64| {
        if b == 0.0 {
            0.0
        } else {
            (e - b) / b * 100.0
        }
    };
    let mut s = format!(
        "soak: {} cycles in {:.1} s ({:.1} cycles/s), {} failed\n",
        r.cycles, r.seconds, r.cycles_per_s, r.failures
    );
    let (b, m, e) = (&r.baseline, &r.mid, &r.end);
    s += &format!(
        "  RSS      {:>9.1} MB -> {:>9.1} MB ({:+.1} %)   [half-way {:.1} MB; second half {:+.1} %]\n",
        b.rss_kb as f64 / 1024.0,
        e.rss_kb as f64 / 1024.0,
        pct(b.rss_kb as f64, e.rss_kb as f64),
        m.rss_kb as f64 / 1024.0,
        pct(m.rss_kb as f64, e.rss_kb as f64)
    );
    s += &format!(
        "  fds      {:>9} -> {:>9} ({:+.1} %)\n",
        b.fds,
        e.fds,
        pct(b.fds as f64, e.fds as f64)
    );
    s += &format!(
        "  threads  {:>9} -> {:>9} ({:+.1} %)\n",
        b.threads,
        e.threads,
        pct(b.threads as f64, e.threads as f64)
    );
    for (w, (lb, le)) in b.lua_bytes.iter().zip(&e.lua_bytes).enumerate() {
        match (lb, le) {
            (Some(lb), Some(le)) => {
                s += &format!(
                    "  Lua w{w}   {:>9.1} KB -> {:>9.1} KB ({:+.1} %, {:+} bytes)\n",
                    *lb as f64 / 1024.0,
                    *le as f64 / 1024.0,
                    pct(*lb as f64, *le as f64),
                    *le as i64 - *lb as i64
                );
            }
            _ => s += &format!("  Lua w{w}   no Lua state\n"),
        }
    }
    if r.count_changes.is_empty() {
        s += &format!(
            "  live counts: all {} back to their baseline\n",
            e.counts.len()
        );
    } else {
        for (k, b, e) in &r.count_changes {
            s += &format!("  live count {k}: {b} -> {e}\n");
        }
    }
    for f in &r.failure_samples {
        s += &format!("  failure: {f}\n");
    }
    for v in &r.violations {
        s += &format!("  CHECK FAILED: {v}\n");
    }
    s
}

/// `ringsfu-bench soak ...`: runs, prints, writes JSON; exit status 1 when `--check` failed.
pub fn main(args: &[String]) -> i32 {
    let (cfg, json_path) = match parse(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let report = match run(&cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    print!("{}", render(&report));
    if let Some(p) = json_path {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => {
                if let Err(e) = std::fs::write(&p, text) {
                    eprintln!("error: cannot write {p}: {e}");
                    return 1;
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        }
    }
    if report.violations.is_empty() {
        0
    } else {
        1
    }
}
