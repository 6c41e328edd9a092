//! The `webrtc` scenario: publishers and subscribers over full ICE + DTLS + SRTP WebRtcTransports,
//! driven by the project's independent webrtc-rs peer (`ringsfu-testpeer`).
//!
//! ringsfu runs in-process (one worker, one router, the shared UDP port). Each publisher gets a
//! WebRtcTransport, connects (ICE + DTLS) and produces; it keeps sending the payload format of
//! `payload.rs` at its rate from then on and answers PLI/FIR with a VP8 keyframe. Then all
//! subscribers join at once: create a transport, connect, consume every producer; a subscriber's
//! join time runs from its create-transport request to the first packet of each of its consumers.
//! After the last join the timed window starts (`--warmup`, then `--duration`), counted by send
//! time as in `fanout`. The peers' SRTP runs through `ringsfu_core::srtp` with the keys their DTLS
//! handshake exported (webrtc-srtp is much slower); ICE and DTLS stay webrtc-rs.
//!
//! Threads: publishers on one current-thread runtime ("generator"), subscribers on another
//! ("receiver"), both pinned to the last core; the coordinator samples CPU at the window edges.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};

use ringsfu_core::engine::{ConsumeOptions, ProduceOptions, WebRtcTransportOptions};
use ringsfu_core::io::IoBackend;
use ringsfu_core::rtp_parameters::{MediaKind, RtpCapabilities, RtpParameters};
use ringsfu_core::srtp::{contexts_from_dtls, SrtpContext, SrtpProfile};
use ringsfu_core::worker::Worker;
use ringsfu_testpeer::{
    chrome_rtp_capabilities, connect_peer, opus_producer_params, vp8_producer_params,
    RemoteTransport, TestPeer,
};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::histogram::Histogram;
use crate::payload;
use crate::plan::{check_loopback, PlanError};
use crate::procstat;
use crate::report::RunRecord;
use crate::server::{InProcessServer, ServerError};
use crate::traffic::TrafficResult;

/// Most publishers / subscribers one run may have (each subscriber is an ICE agent + DTLS client).
pub const MAX_PUBLISHERS: usize = 50;
/// See [`MAX_PUBLISHERS`].
pub const MAX_SUBSCRIBERS: usize = 1000;

/// Errors of the webrtc scenario.
#[derive(Debug, thiserror::Error)]
pub enum WebRtcError {
    /// The in-process server failed.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// Threads or runtimes could not start.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// An address was not on loopback.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A publisher or subscriber could not be set up.
    #[error("{0}")]
    Peer(String),
    /// Not every subscriber received media in time.
    #[error("join: {joined} of {total} subscribers received every stream within {secs:.0} s")]
    JoinTimeout {
        /// Subscribers fully joined.
        joined: usize,
        /// Subscribers asked for.
        total: usize,
        /// The deadline.
        secs: f64,
    },
    /// Options out of bounds.
    #[error("{0}")]
    Bounds(String),
    /// A client thread died.
    #[error("{0} thread failed")]
    Thread(&'static str),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct WebRtcConfig {
    /// Publishers (one producer each).
    pub publishers: usize,
    /// Subscribers (each consumes every producer).
    pub subscribers: usize,
    /// RTP payload bytes (< 1000: opus, else VP8).
    pub payload: usize,
    /// Packets per second each publisher sends.
    pub rate_per_publisher: f64,
    /// Sending after the last join before the window.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Waiting after the window for stragglers.
    pub drain: Duration,
    /// Server I/O backend.
    pub backend: IoBackend,
    /// Cores of the machine (server on core 0, clients on the last).
    pub cores: usize,
    /// Hard cap on packets sent.
    pub max_packets: u64,
    /// Print progress lines.
    pub progress: bool,
    /// `--flood PPS`: traffic for unknown transports sprayed at the shared port during warm-up
    /// and window (0: none; see `flood.rs`).
    pub flood_pps: f64,
}

/// One subscriber's join, milliseconds from its create-transport request.
#[derive(Debug, Clone, Serialize)]
pub struct JoinRecord {
    /// The engine answered the create request.
    pub created_ms: f64,
    /// ICE connected (the peer's agent nominated the pair; connect() is sent then).
    pub ice_ms: f64,
    /// DTLS handshake done, SRTP keys exported.
    pub dtls_ms: f64,
    /// Every consume request answered.
    pub consumed_ms: f64,
    /// The first packet of the last consumer to get one: the join time.
    pub join_ms: f64,
    /// First packet per consumer (producer order).
    pub first_packet_ms: Vec<f64>,
}

/// Join times over all subscribers.
#[derive(Debug, Clone, Serialize)]
pub struct JoinStats {
    /// Subscribers that joined.
    pub subscribers: usize,
    /// Consumers each (= publishers).
    pub consumers_per_subscriber: usize,
    /// Wall time from the first create request to the last subscriber's last first packet.
    pub all_joined_ms: f64,
    /// Join time percentiles (request → first packet of every consumer), ms.
    pub join_ms_p50: f64,
    /// 99th percentile.
    pub join_ms_p99: f64,
    /// Slowest.
    pub join_ms_max: f64,
    /// Median of request → transport created, ms.
    pub created_ms_p50: f64,
    /// Median of request → ICE connected, ms.
    pub ice_ms_p50: f64,
    /// Median of request → DTLS connected, ms.
    pub dtls_ms_p50: f64,
    /// Median of request → consumers created, ms.
    pub consumed_ms_p50: f64,
    /// Every subscriber's record.
    pub per_subscriber: Vec<JoinRecord>,
}

/// The run's outcome: the usual record plus join times.
#[derive(Debug, Clone, Serialize)]
pub struct WebRtcOutcome {
    /// Forwarding measurements (the `fanout` record shape).
    pub record: RunRecord,
    /// Join times.
    pub join: JoinStats,
    /// The flood, when one ran.
    pub flood: Option<crate::flood::FloodOutcome>,
}

/// The worker's counters, read on its thread.
fn worker_metrics(w: &Worker) -> Option<ringsfu_core::metrics::WorkerMetrics> {
    let (tx, rx) = std_mpsc::channel();
    w.post(move |ctx| {
        let _ = tx.send(ctx.metrics());
    })
    .ok()?;
    rx.recv_timeout(Duration::from_secs(5)).ok()
}

fn drops_by_reason(d: &ringsfu_core::metrics::DropCounters) -> Vec<(String, u64)> {
    let v = serde_json::to_value(d).unwrap_or_default();
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// State shared by the coordinator and both client threads.
struct Shared {
    epoch: Instant,
    /// Window in send-time nanoseconds since `epoch`; MAX until the joins are done.
    window_start: AtomicU64,
    window_end: AtomicU64,
    stop: AtomicBool,
    sent: AtomicU64,
    received: AtomicU64,
    gen_tid: AtomicU32,
    recv_tid: AtomicU32,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
    fn in_window(&self, ns: u64) -> bool {
        ns >= self.window_start.load(Ordering::Relaxed)
            && ns < self.window_end.load(Ordering::Relaxed)
    }
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// A producer as the subscribers need to know it.
#[derive(Debug, Clone)]
struct PubInfo {
    producer: Uuid,
    vp8: bool,
}

/// What the publisher thread reports.
#[derive(Debug, Default)]
struct GenReport {
    sent_in_window: Vec<u64>,
    send_errors: u64,
    keyframe_requests: u64,
}

/// What the subscriber thread reports.
#[derive(Default)]
struct RecvReport {
    received_in_window: u64,
    srtp_failures: u64,
    bad_content: u64,
    mismatched: u64,
    reordered: u64,
    rtcp: u64,
    latency: Histogram,
}

/// How the join phase ended, as the subscriber thread tells the coordinator.
enum JoinPhase {
    Done(Vec<JoinRecord>, f64),
    Failed(WebRtcError),
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn peer_err(what: &str) -> impl Fn(String) -> WebRtcError + '_ {
    move |e| WebRtcError::Peer(format!("{what}: {e}"))
}

/// Runs the scenario.
pub fn run(cfg: &WebRtcConfig) -> Result<WebRtcOutcome, WebRtcError> {
    if cfg.publishers == 0 || cfg.publishers > MAX_PUBLISHERS {
        return Err(WebRtcError::Bounds(format!(
            "webrtc: --publishers must be 1..={MAX_PUBLISHERS}"
        )));
    }
    if cfg.subscribers == 0 || cfg.subscribers > MAX_SUBSCRIBERS {
        return Err(WebRtcError::Bounds(format!(
            "webrtc: --subscribers must be 1..={MAX_SUBSCRIBERS}"
        )));
    }
    if !(0.0..=crate::flood::MAX_FLOOD_PPS).contains(&cfg.flood_pps) {
        return Err(WebRtcError::Bounds(format!(
            "webrtc: --flood must be 0..={}",
            crate::flood::MAX_FLOOD_PPS
        )));
    }
    if !(cfg.rate_per_publisher > 0.0 && cfg.rate_per_publisher <= 100_000.0) {
        return Err(WebRtcError::Bounds(
            "webrtc: --rate (per publisher) must be in (0, 100000]".into(),
        ));
    }
    let server = InProcessServer::start(1, cfg.backend, cfg.cores, true)?;
    let router = server.create_router(0)?;
    let worker = server
        .worker(0)
        .ok_or_else(|| WebRtcError::Peer("no worker".into()))?;
    let outcome = run_with(cfg, &server, worker, router);
    // Closing the router closes every transport, producer and consumer; dropping the server
    // stops its worker thread.
    let closed = server.close_router(0, router);
    drop(server);
    let outcome = outcome?;
    closed?;
    Ok(outcome)
}

fn run_with(
    cfg: &WebRtcConfig,
    server: &InProcessServer,
    worker: Arc<Worker>,
    router: Uuid,
) -> Result<WebRtcOutcome, WebRtcError> {
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        window_start: AtomicU64::new(u64::MAX),
        window_end: AtomicU64::new(u64::MAX),
        stop: AtomicBool::new(false),
        sent: AtomicU64::new(0),
        received: AtomicU64::new(0),
        gen_tid: AtomicU32::new(0),
        recv_tid: AtomicU32::new(0),
    });
    let client_core = (cfg.cores > 1).then(|| cfg.cores - 1);
    let vp8 = cfg.payload >= 1000;
    // Generous but bounded: ICE + DTLS of every subscriber on one client thread.
    let join_timeout = Duration::from_secs(20) + Duration::from_millis(40 * cfg.subscribers as u64);

    let (ready_tx, ready_rx) = std_mpsc::channel();
    let gen = {
        let (w, s, c) = (Arc::clone(&worker), Arc::clone(&shared), cfg.clone());
        std::thread::Builder::new()
            .name("bench-pub".into())
            .spawn(move || publisher_thread(w, router, c, vp8, s, ready_tx, client_core))?
    };
    let stop_all = |gen: std::thread::JoinHandle<_>| {
        shared.stop.store(true, Ordering::Relaxed);
        let _ = gen.join();
    };
    let pubs: Vec<PubInfo> = match ready_rx.recv_timeout(join_timeout) {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            stop_all(gen);
            return Err(e);
        }
        Err(_) => {
            stop_all(gen);
            return Err(WebRtcError::Peer(
                "publishers did not connect in time".into(),
            ));
        }
    };
    if cfg.progress {
        eprintln!(
            "  {} publisher(s) connected and sending; {} subscribers joining",
            pubs.len(),
            cfg.subscribers
        );
    }

    let (join_tx, join_rx) = std_mpsc::channel();
    let recv = {
        let (w, s, c, p) = (
            Arc::clone(&worker),
            Arc::clone(&shared),
            cfg.clone(),
            pubs.clone(),
        );
        std::thread::Builder::new()
            .name("bench-sub".into())
            .spawn(move || {
                subscriber_thread(w, router, p, c, s, join_tx, join_timeout, client_core)
            })?
    };
    let joined = match join_rx.recv_timeout(join_timeout + Duration::from_secs(5)) {
        Ok(JoinPhase::Done(records, all_ms)) => Ok((records, all_ms)),
        Ok(JoinPhase::Failed(e)) => Err(e),
        Err(_) => Err(WebRtcError::JoinTimeout {
            joined: 0,
            total: cfg.subscribers,
            secs: join_timeout.as_secs_f64(),
        }),
    };
    let (records, all_joined_ms) = match joined {
        Ok(j) => j,
        Err(e) => {
            shared.stop.store(true, Ordering::Relaxed);
            let _ = recv.join();
            let _ = gen.join();
            return Err(e);
        }
    };
    if cfg.progress {
        eprintln!(
            "  all {} subscribers receiving every stream after {:.0} ms",
            records.len(),
            all_joined_ms
        );
    }

    // The timed window, by send time, starts now + warm-up.
    let t0 = shared.epoch.elapsed() + cfg.warmup;
    let t1 = t0 + cfg.duration;
    shared
        .window_start
        .store(t0.as_nanos() as u64, Ordering::Relaxed);
    shared
        .window_end
        .store(t1.as_nanos() as u64, Ordering::Relaxed);
    let tids = [
        shared.gen_tid.load(Ordering::Relaxed),
        shared.recv_tid.load(Ordering::Relaxed),
    ];
    let sample = || {
        (
            server.cpu(),
            procstat::threads_wait(&server.tids),
            tids.map(|t| procstat::thread_cpu(t).unwrap_or_default()),
            tids.map(|t| procstat::thread_wait(t).unwrap_or_default()),
        )
    };
    // The flood starts with the warm-up and runs through the window.
    let flood = (cfg.flood_pps > 0.0)
        .then(|| {
            let dest = worker.listen_info().udp.map(|(_, a)| a)?;
            let before = worker_metrics(&worker)?;
            let stop = Arc::new(AtomicBool::new(false));
            let (pps, st) = (cfg.flood_pps, Arc::clone(&stop));
            let h = std::thread::Builder::new()
                .name("bench-flood".into())
                .spawn(move || crate::flood::run(dest, pps, st, client_core))
                .ok()?;
            Some((before, stop, h))
        })
        .flatten();
    if cfg.flood_pps > 0.0 && flood.is_none() {
        shared.stop.store(true, Ordering::Relaxed);
        return Err(WebRtcError::Peer("the flood could not start".into()));
    }
    let mut at0 = None;
    let mut at1 = None;
    let end = t1 + cfg.drain;
    let mut last = (Instant::now(), 0u64, 0u64);
    loop {
        let now = shared.epoch.elapsed();
        if now >= end {
            break;
        }
        if at0.is_none() && now >= t0 {
            at0 = Some(sample());
        }
        if at1.is_none() && now >= t1 {
            at1 = Some(sample());
        }
        if cfg.progress {
            let (s, r) = (
                shared.sent.load(Ordering::Relaxed),
                shared.received.load(Ordering::Relaxed),
            );
            crate::traffic::progress_line(now, t0, t1, s, r, &mut last);
        }
        let next = [t0, t1, end]
            .into_iter()
            .filter(|t| *t > now)
            .min()
            .unwrap_or(end);
        std::thread::sleep((next - now).min(Duration::from_millis(100)));
    }
    let flood = match flood {
        Some((before, stop, h)) => {
            stop.store(true, Ordering::Relaxed);
            let sent = h.join().map_err(|_| WebRtcError::Thread("flood"))?;
            let after = worker_metrics(&worker).ok_or(WebRtcError::Thread("worker"))?;
            let b = drops_by_reason(&before.engine.drops);
            let a = drops_by_reason(&after.engine.drops);
            let drops = a
                .iter()
                .map(|(k, v)| {
                    let was = b.iter().find(|(kb, _)| kb == k).map_or(0, |(_, v)| *v);
                    (k.clone(), v.saturating_sub(was))
                })
                .collect();
            Some(crate::flood::FloodOutcome {
                offered_pps: cfg.flood_pps,
                sent_pps: sent.sent as f64 / sent.seconds.max(1e-9),
                worker_datagrams_received: after
                    .io
                    .datagrams_received
                    .saturating_sub(before.io.datagrams_received),
                sent,
                drops,
            })
        }
        None => None,
    };
    shared.stop.store(true, Ordering::Relaxed);
    let g = gen.join().map_err(|_| WebRtcError::Thread("publisher"))??;
    let r = recv
        .join()
        .map_err(|_| WebRtcError::Thread("subscriber"))??;

    let window = cfg.duration.as_secs_f64();
    let (a, b) = match (at0, at1) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err(WebRtcError::Thread("coordinator")),
    };
    let server_cpu = b.0.saturating_sub(a.0);
    let server_wait = b.1.saturating_sub(a.1);
    let gen_cpu = b.2[0].saturating_sub(a.2[0]);
    let recv_cpu = b.2[1].saturating_sub(a.2[1]);
    let client_wait = b.3[0]
        .saturating_sub(a.3[0])
        .max(b.3[1].saturating_sub(a.3[1]));
    let result = traffic_result(
        cfg,
        &g,
        &r,
        window,
        server_cpu,
        server_wait,
        gen_cpu,
        recv_cpu,
        client_wait,
    );
    let record = RunRecord {
        scenario: "webrtc".into(),
        series: format!("ringsfu webrtc w1 {}", server.backend_used.name()),
        producers: cfg.publishers,
        consumers_per_producer: cfg.subscribers,
        payload: cfg.payload,
        workers: 1,
        backend_requested: cfg.backend.name().into(),
        backend_used: server.backend_used.name().into(),
        rss_bytes: procstat::rss_bytes(),
        result,
    };
    Ok(WebRtcOutcome {
        record,
        join: join_stats(records, cfg.publishers, all_joined_ms),
        flood,
    })
}

/// The `fanout`-shaped result, with the same warnings.
#[allow(clippy::too_many_arguments)]
fn traffic_result(
    cfg: &WebRtcConfig,
    g: &GenReport,
    r: &RecvReport,
    window: f64,
    server_cpu: Duration,
    server_wait: Duration,
    gen_cpu: Duration,
    recv_cpu: Duration,
    client_wait: Duration,
) -> TrafficResult {
    let offered = cfg.rate_per_publisher * cfg.publishers as f64;
    let sent_in_window: u64 = g.sent_in_window.iter().sum();
    let expected = sent_in_window * cfg.subscribers as u64;
    let received = r.received_in_window;
    let sent_pps = sent_in_window as f64 / window;
    let gen_pct = 100.0 * gen_cpu.as_secs_f64() / window;
    let recv_pct = 100.0 * recv_cpu.as_secs_f64() / window;
    let wait_pct = 100.0 * client_wait.as_secs_f64() / window;
    let server_wait_pct = 100.0 * server_wait.as_secs_f64() / window;
    let mut warnings = Vec::new();
    if server_wait_pct > 20.0 {
        warnings.push(format!(
            "server threads waited {server_wait_pct:.0}% of the window for a core (other load on the machine): its pps ceiling here is not its own"
        ));
    }
    let starved = wait_pct > 20.0;
    if starved {
        warnings.push(format!(
            "client threads waited {wait_pct:.0}% of the window for a core (machine busy): loss and latency may be the client's"
        ));
    }
    let client_bound = gen_pct > 90.0 || recv_pct > 90.0 || sent_pps < 0.95 * offered || starved;
    if client_bound {
        warnings.push(format!(
            "client-bound: publishers {gen_pct:.0}% / subscribers {recv_pct:.0}% of a core (webrtc-rs ICE/DTLS peers), sent {sent_pps:.0} of {offered:.0} pps offered: the numbers describe the load generator, not the server"
        ));
    }
    if g.send_errors > 0 {
        warnings.push(format!("publishers: {} sends failed", g.send_errors));
    }
    let bad = r.srtp_failures + r.bad_content + r.mismatched;
    if bad > 0 {
        warnings.push(format!("{bad} packets failed verification"));
    }
    let loss_pct = if expected == 0 {
        100.0
    } else {
        100.0 * (1.0 - received as f64 / expected as f64)
    };
    TrafficResult {
        offered_pps: offered,
        sent_pps,
        forwarded_pps: received as f64 / window,
        expected,
        received,
        loss_pct: loss_pct.max(0.0),
        latency_p50_us: r.latency.quantile(0.5) as f64 / 1e3,
        latency_p99_us: r.latency.quantile(0.99) as f64 / 1e3,
        latency_p999_us: r.latency.quantile(0.999) as f64 / 1e3,
        server_cpu_us_per_fwd: (received > 0)
            .then(|| server_cpu.as_secs_f64() * 1e6 / received as f64),
        server_cpu_pct: Some(100.0 * server_cpu.as_secs_f64() / window),
        generator_cpu_pct: gen_pct,
        receiver_cpu_pct: recv_pct,
        server_wait_pct: Some(server_wait_pct),
        client_wait_pct: wait_pct,
        client_bound,
        srtp_failures: r.srtp_failures,
        bad_content: r.bad_content,
        mismatched: r.mismatched,
        reordered: r.reordered,
        rtcp_received: r.rtcp,
        generator_send_drops: g.send_errors,
        warnings,
    }
}

/// Nearest-rank percentile of a sorted slice (0 when empty).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn join_stats(records: Vec<JoinRecord>, per: usize, all_joined_ms: f64) -> JoinStats {
    let col = |f: fn(&JoinRecord) -> f64| {
        let mut v: Vec<f64> = records.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let join = col(|r| r.join_ms);
    JoinStats {
        subscribers: records.len(),
        consumers_per_subscriber: per,
        all_joined_ms,
        join_ms_p50: percentile(&join, 0.5),
        join_ms_p99: percentile(&join, 0.99),
        join_ms_max: join.last().copied().unwrap_or(0.0),
        created_ms_p50: percentile(&col(|r| r.created_ms), 0.5),
        ice_ms_p50: percentile(&col(|r| r.ice_ms), 0.5),
        dtls_ms_p50: percentile(&col(|r| r.dtls_ms), 0.5),
        consumed_ms_p50: percentile(&col(|r| r.consumed_ms), 0.5),
        per_subscriber: records,
    }
}

/// The server's UDP candidate from transport data (no panics on an odd shape).
fn remote_of(data: &Value) -> Result<RemoteTransport, WebRtcError> {
    let bad = || WebRtcError::Peer(format!("unexpected transport data {data}"));
    let ice = &data["iceParameters"];
    let c = data["iceCandidates"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["protocol"] == "udp"))
        .ok_or_else(bad)?;
    let ip: std::net::IpAddr = c["ip"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let port = c["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(bad)?;
    let udp = SocketAddr::new(ip, port);
    check_loopback(udp)?;
    Ok(RemoteTransport {
        ufrag: ice["usernameFragment"]
            .as_str()
            .ok_or_else(bad)?
            .to_string(),
        pwd: ice["password"].as_str().ok_or_else(bad)?.to_string(),
        udp,
    })
}

fn uuid_of(v: &Value) -> Result<Uuid, WebRtcError> {
    v["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| WebRtcError::Peer(format!("no id in {v}")))
}

/// A connected peer: transport created, ICE + DTLS done. Times are since `t_req`.
struct Connected {
    transport: Uuid,
    peer: TestPeer,
    created: Duration,
    ice: Duration,
    dtls: Duration,
}

/// Creates a WebRtcTransport and connects the test peer to it (ICE, then connect(), then DTLS).
async fn create_and_connect(
    w: &Arc<Worker>,
    router: Uuid,
    t_req: Instant,
) -> Result<Connected, WebRtcError> {
    let data = w
        .with_engine(move |e| {
            e.create_webrtc_transport(
                &router,
                WebRtcTransportOptions {
                    enable_tcp: false,
                    ..Default::default()
                },
                Instant::now(),
            )
            .map(|v| serde_json::to_value(v).unwrap())
        })
        .await
        .map_err(|e| WebRtcError::Peer(e.to_string()))?
        .map_err(|e| WebRtcError::Peer(format!("create transport: {e}")))?;
    let created = t_req.elapsed();
    let transport = uuid_of(&data)?;
    let remote = remote_of(&data)?;
    let ice_at = Rc::new(Cell::new(None));
    let connect_err = Rc::new(RefCell::new(None));
    let (ia, ce, w2) = (Rc::clone(&ice_at), Rc::clone(&connect_err), Arc::clone(w));
    let peer = connect_peer(
        &remote,
        None,
        move |dtls| async move {
            ia.set(Some(t_req.elapsed()));
            let r = w2
                .with_engine(move |e| {
                    e.connect_webrtc_transport(
                        &transport,
                        &serde_json::from_value(serde_json::Value::clone(&dtls)).unwrap(),
                        Instant::now(),
                    )
                })
                .await;
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => *ce.borrow_mut() = Some(e.to_string()),
                Err(e) => *ce.borrow_mut() = Some(e.to_string()),
            }
        },
        None,
    )
    .await;
    if let Some(e) = connect_err.borrow_mut().take() {
        return Err(WebRtcError::Peer(format!("connect transport: {e}")));
    }
    let peer = peer.map_err(peer_err("ICE/DTLS"))?;
    let dtls = t_req.elapsed();
    Ok(Connected {
        transport,
        peer,
        created,
        ice: ice_at.get().unwrap_or(dtls),
        dtls,
    })
}

/// SRTP contexts (outbound, inbound) from the keys the peer's DTLS handshake exported.
fn srtp_of(peer: &TestPeer) -> Result<(SrtpContext, SrtpContext), WebRtcError> {
    let profile = SrtpProfile::from_name(peer.keys.profile)
        .ok_or_else(|| WebRtcError::Peer(format!("profile {}", peer.keys.profile)))?;
    contexts_from_dtls(profile, &peer.keys.material, true)
        .map_err(|e| WebRtcError::Peer(format!("srtp keys: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Publishers

fn publisher_thread(
    w: Arc<Worker>,
    router: Uuid,
    cfg: WebRtcConfig,
    vp8: bool,
    shared: Arc<Shared>,
    ready: std_mpsc::Sender<Result<Vec<PubInfo>, WebRtcError>>,
    core: Option<usize>,
) -> Result<GenReport, WebRtcError> {
    crate::traffic::pin(core);
    shared
        .gen_tid
        .store(procstat::current_tid().unwrap_or(0), Ordering::Relaxed);
    let rt = crate::traffic::current_rt()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let mut peers = Vec::new();
        let mut infos = Vec::new();
        for i in 0..cfg.publishers {
            match publish(&w, router, i, vp8).await {
                Ok((peer, info)) => {
                    peers.push(Rc::new(peer));
                    infos.push(info);
                }
                Err(e) => {
                    for p in &peers {
                        p.close().await;
                    }
                    let _ = ready.send(Err(e));
                    return Ok(GenReport::default());
                }
            }
        }
        let mut tasks = Vec::new();
        for (i, peer) in peers.iter().enumerate() {
            let (peer, shared, cfg) = (Rc::clone(peer), Arc::clone(&shared), cfg.clone());
            tasks.push(tokio::task::spawn_local(async move {
                send_loop(i, &peer, vp8, &cfg, &shared).await
            }));
        }
        let _ = ready.send(Ok(infos));
        let mut report = GenReport {
            sent_in_window: vec![0; cfg.publishers],
            ..Default::default()
        };
        for (i, t) in tasks.into_iter().enumerate() {
            let r = t.await.map_err(|_| WebRtcError::Thread("publisher"))??;
            report.sent_in_window[i] = r.0;
            report.send_errors += r.1;
            report.keyframe_requests += r.2;
        }
        for p in &peers {
            p.close().await;
        }
        Ok(report)
    })
}

/// One publisher: transport, connect, produce (opus or VP8). SSRCs are fixed per index.
async fn publish(
    w: &Arc<Worker>,
    router: Uuid,
    i: usize,
    vp8: bool,
) -> Result<(TestPeer, PubInfo), WebRtcError> {
    let c = create_and_connect(w, router, Instant::now()).await?;
    let ssrc = 0x2000_0000 + 2 * i as u32;
    let (kind, params) = if vp8 {
        (MediaKind::Video, vp8_producer_params(ssrc, ssrc + 1, "0"))
    } else {
        (MediaKind::Audio, opus_producer_params(ssrc, "0"))
    };
    let rtp_parameters: RtpParameters =
        serde_json::from_value(params).map_err(|e| WebRtcError::Peer(e.to_string()))?;
    let transport = c.transport;
    let v = w
        .with_engine(move |e| {
            e.produce(
                &transport,
                ProduceOptions {
                    kind,
                    rtp_parameters,
                    paused: false,
                },
                Instant::now(),
            )
            .map(|v| serde_json::to_value(v).unwrap())
        })
        .await
        .map_err(|e| WebRtcError::Peer(e.to_string()))?
        .map_err(|e| WebRtcError::Peer(format!("produce: {e}")))?;
    let producer = uuid_of(&v)?;
    Ok((c.peer, PubInfo { producer, vp8 }))
}

/// Whether a plaintext RTCP compound holds a PLI or FIR (a keyframe request).
fn wants_keyframe(rtcp: &[u8]) -> bool {
    let mut at = 0usize;
    while let Some(h) = rtcp.get(at..at + 4) {
        let fmt = h[0] & 0x1f;
        if h[1] == 206 && (fmt == 1 || fmt == 4) {
            return true;
        }
        at += 4 * (u16::from_be_bytes([h[2], h[3]]) as usize + 1);
    }
    false
}

/// Paced sending for one publisher until the window ends (or stop / the packet cap); answers
/// keyframe requests. Returns (sent in window, send errors, keyframe requests).
async fn send_loop(
    i: usize,
    peer: &TestPeer,
    vp8: bool,
    cfg: &WebRtcConfig,
    shared: &Shared,
) -> Result<(u64, u64, u64), WebRtcError> {
    let (mut tx, mut rx) = srtp_of(peer)?;
    let mut rtcp_in = peer.take_media_rx().await;
    let ssrc = 0x2000_0000 + 2 * i as u32;
    let (pt, step) = if vp8 { (96, 3000) } else { (111, 960) };
    let payload_len = cfg.payload.min(1400);
    let mut buf = vec![0u8; payload::RTP_HEADER + payload_len + 64];
    let (mut counter, mut in_window, mut errors, mut key_requests) = (0u64, 0u64, 0u64, 0u64);
    let mut key_pending = false;
    let start = Instant::now();
    let rate = cfg.rate_per_publisher;
    while !shared.stopped() {
        while let Ok(mut d) = rtcp_in.try_recv() {
            let len = d.len();
            if len >= 2 && (192..=223).contains(&d[1]) {
                if let Ok(n) = rx.unprotect_rtcp(&mut d, len) {
                    if wants_keyframe(&d[..n]) {
                        key_pending = true;
                        key_requests += 1;
                    }
                }
            }
        }
        let due = (rate * start.elapsed().as_secs_f64()) as u64;
        let mut done = false;
        while counter < due {
            let send_ns = shared.now_ns();
            if send_ns >= shared.window_end.load(Ordering::Relaxed)
                || shared.sent.fetch_add(1, Ordering::Relaxed) >= cfg.max_packets
            {
                done = true;
                break;
            }
            let n = payload::write_packet(
                &mut buf,
                pt,
                ssrc,
                i as u32,
                counter,
                send_ns,
                payload_len,
                vp8,
                step,
            );
            if vp8 && key_pending {
                payload::mark_keyframe(&mut buf[..n]);
                key_pending = false;
            }
            counter += 1;
            let Ok(n) = tx.protect_rtp(&mut buf, n) else {
                errors += 1;
                continue;
            };
            if peer.send_raw(&buf[..n]).await.is_err() {
                errors += 1;
                continue;
            }
            if shared.in_window(send_ns) {
                in_window += 1;
            }
        }
        if done {
            break;
        }
        let next_at = Duration::from_secs_f64((counter + 1) as f64 / rate);
        let wait = next_at.saturating_sub(start.elapsed());
        if wait.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(wait.min(Duration::from_millis(1))).await;
        }
    }
    Ok((in_window, errors, key_requests))
}

// ---------------------------------------------------------------------------------------------
// Subscribers

/// One consumer as its subscriber checks it.
struct ConsumerCheck {
    ssrc: u32,
    pt: u8,
    producer: u32,
    vp8: bool,
    last_counter: Option<u64>,
    first_packet: Option<Duration>,
}

/// Join bookkeeping shared by the subscriber tasks.
struct JoinBook {
    records: Vec<Option<JoinRecord>>,
    remaining: usize,
    failure: Option<WebRtcError>,
    all_done: Option<Duration>,
}

#[allow(clippy::too_many_arguments)]
fn subscriber_thread(
    w: Arc<Worker>,
    router: Uuid,
    pubs: Vec<PubInfo>,
    cfg: WebRtcConfig,
    shared: Arc<Shared>,
    joined: std_mpsc::Sender<JoinPhase>,
    join_timeout: Duration,
    core: Option<usize>,
) -> Result<RecvReport, WebRtcError> {
    crate::traffic::pin(core);
    shared
        .recv_tid
        .store(procstat::current_tid().unwrap_or(0), Ordering::Relaxed);
    let rt = crate::traffic::current_rt()?;
    let local = tokio::task::LocalSet::new();
    let stats = Rc::new(RefCell::new(RecvReport::default()));
    let book = Rc::new(RefCell::new(JoinBook {
        records: vec![None; cfg.subscribers],
        remaining: cfg.subscribers,
        failure: None,
        all_done: None,
    }));
    let caps: RtpCapabilities = serde_json::from_value(chrome_rtp_capabilities())
        .map_err(|e| WebRtcError::Peer(e.to_string()))?;
    let pubs = Rc::new(pubs);
    local.block_on(&rt, async {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for k in 0..cfg.subscribers {
            let (w, pubs, caps) = (Arc::clone(&w), Rc::clone(&pubs), caps.clone());
            let (shared, stats, book) = (Arc::clone(&shared), Rc::clone(&stats), Rc::clone(&book));
            tasks.push(tokio::task::spawn_local(async move {
                let r =
                    subscribe(k, &w, router, &pubs, caps, &shared, &stats, &book, started).await;
                if let Err(e) = r {
                    let mut b = book.borrow_mut();
                    if b.failure.is_none() {
                        b.failure = Some(e);
                    }
                }
            }));
        }
        // Wait for every subscriber's first packets, a failure, or the deadline.
        let phase = loop {
            {
                let mut b = book.borrow_mut();
                if let Some(e) = b.failure.take() {
                    break JoinPhase::Failed(e);
                }
                if b.remaining == 0 {
                    let recs = b.records.iter_mut().filter_map(Option::take).collect();
                    break JoinPhase::Done(recs, ms(b.all_done.unwrap_or_default()));
                }
                if started.elapsed() > join_timeout {
                    break JoinPhase::Failed(WebRtcError::JoinTimeout {
                        joined: cfg.subscribers - b.remaining,
                        total: cfg.subscribers,
                        secs: join_timeout.as_secs_f64(),
                    });
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let failed = matches!(phase, JoinPhase::Failed(_));
        let _ = joined.send(phase);
        if failed {
            shared.stop.store(true, Ordering::Relaxed);
        }
        // Tasks end on stop; one still inside ICE/DTLS ends at its own timeout, or is dropped here.
        let all = async {
            for t in tasks {
                let _ = t.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(15) + join_timeout, async {
            while !shared.stopped() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            all.await
        })
        .await;
    });
    drop(local);
    Rc::try_unwrap(stats)
        .map(RefCell::into_inner)
        .map_err(|_| WebRtcError::Thread("subscriber"))
}

/// One subscriber: join (timed), then receive and verify until stop.
#[allow(clippy::too_many_arguments)]
async fn subscribe(
    k: usize,
    w: &Arc<Worker>,
    router: Uuid,
    pubs: &[PubInfo],
    caps: RtpCapabilities,
    shared: &Shared,
    stats: &RefCell<RecvReport>,
    book: &RefCell<JoinBook>,
    started: Instant,
) -> Result<(), WebRtcError> {
    let t_req = Instant::now();
    let c = create_and_connect(w, router, t_req).await?;
    let mut checks = Vec::new();
    for (pi, p) in pubs.iter().enumerate() {
        let (transport, producer, caps) = (c.transport, p.producer, caps.clone());
        let cv = w
            .with_engine(move |e| {
                e.consume(
                    &transport,
                    ConsumeOptions {
                        producer_id: producer,
                        rtp_capabilities: caps,
                        paused: false,
                        enable_rtx: false,
                    },
                    Instant::now(),
                )
                .map(|v| serde_json::to_value(v).unwrap())
            })
            .await
            .map_err(|e| WebRtcError::Peer(e.to_string()))?
            .map_err(|e| WebRtcError::Peer(format!("consume: {e}")))?;
        let id = uuid_of(&cv)?;
        if cv["paused"] == true {
            w.with_engine(move |e| e.resume_consumer(&id, Instant::now()))
                .await
                .map_err(|e| WebRtcError::Peer(e.to_string()))?
                .map_err(|e| WebRtcError::Peer(format!("resume: {e}")))?;
        }
        let rp = &cv["rtpParameters"];
        let (Some(ssrc), Some(pt)) = (
            rp["encodings"][0]["ssrc"].as_u64(),
            rp["codecs"][0]["payloadType"].as_u64(),
        ) else {
            return Err(WebRtcError::Peer(format!("consumer parameters {rp}")));
        };
        checks.push(ConsumerCheck {
            ssrc: ssrc as u32,
            pt: pt as u8,
            producer: pi as u32,
            vp8: p.vp8,
            last_counter: None,
            first_packet: None,
        });
    }
    let consumed = t_req.elapsed();
    let (_tx, mut srtp) = srtp_of(&c.peer)?;
    let mut media = c.peer.take_media_rx().await;
    let mut waiting = checks.len();
    loop {
        let first = match tokio::time::timeout(Duration::from_millis(50), media.recv()).await {
            Ok(Some(d)) => Some(d),
            Ok(None) => break,
            Err(_) => None,
        };
        if shared.stopped() {
            break;
        }
        let Some(first) = first else { continue };
        let mut st = stats.borrow_mut();
        let mut next = Some(first);
        while let Some(mut d) = next.take() {
            let now_ns = shared.now_ns();
            shared.received.fetch_add(1, Ordering::Relaxed);
            verify(
                &mut d,
                &mut srtp,
                &mut checks,
                &mut st,
                shared,
                now_ns,
                t_req,
            );
            next = media.try_recv().ok();
        }
        drop(st);
        let got = checks.iter().filter(|c| c.first_packet.is_some()).count();
        if waiting > 0 && got == checks.len() {
            waiting = 0;
            let first_packet_ms: Vec<f64> = checks
                .iter()
                .map(|c| c.first_packet.map(ms).unwrap_or(0.0))
                .collect();
            let rec = JoinRecord {
                created_ms: ms(c.created),
                ice_ms: ms(c.ice),
                dtls_ms: ms(c.dtls),
                consumed_ms: ms(consumed),
                join_ms: first_packet_ms.iter().copied().fold(0.0, f64::max),
                first_packet_ms,
            };
            let mut b = book.borrow_mut();
            b.records[k] = Some(rec);
            b.remaining -= 1;
            if b.remaining == 0 {
                b.all_done = Some(started.elapsed());
            }
        }
    }
    c.peer.close().await;
    Ok(())
}

/// Decrypts and checks one datagram for a subscriber.
fn verify(
    d: &mut [u8],
    srtp: &mut SrtpContext,
    checks: &mut [ConsumerCheck],
    st: &mut RecvReport,
    shared: &Shared,
    now_ns: u64,
    t_req: Instant,
) {
    let len = d.len();
    // RTCP (RFC 5761 demultiplexing): the forwarder's reports, not media.
    if len >= 2 && (192..=223).contains(&d[1]) {
        st.rtcp += 1;
        return;
    }
    let Ok(n) = srtp.unprotect_rtp(d, len) else {
        st.srtp_failures += 1;
        return;
    };
    let pkt = &d[..n];
    let ssrc = pkt
        .get(8..12)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let Some(c) = checks.iter_mut().find(|c| Some(c.ssrc) == ssrc) else {
        st.mismatched += 1;
        return;
    };
    let Some(p) = payload::decode(pkt, c.vp8) else {
        st.bad_content += 1;
        return;
    };
    if p.pt != c.pt || p.producer != c.producer {
        st.mismatched += 1;
        return;
    }
    if c.first_packet.is_none() {
        c.first_packet = Some(t_req.elapsed());
    }
    match c.last_counter {
        Some(last) if p.counter <= last => st.reordered += 1,
        _ => c.last_counter = Some(p.counter),
    }
    if shared.in_window(p.send_ns) {
        st.received_in_window += 1;
        st.latency.record(now_ns.saturating_sub(p.send_ns));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_requests_are_found_in_a_compound() {
        // RR (PT 201, no blocks) then PLI (PT 206, FMT 1).
        let rr = [0x80, 201, 0, 1, 0, 0, 0, 1];
        let pli = [0x81, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2];
        let fir = [
            0x84, 206, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 1, 0, 0, 0,
        ];
        let remb = [0x8f, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0];
        assert!(wants_keyframe(&[&rr[..], &pli[..]].concat()));
        assert!(wants_keyframe(&fir));
        assert!(!wants_keyframe(&[&rr[..], &remb[..]].concat()));
        assert!(!wants_keyframe(&rr[..3]));
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
