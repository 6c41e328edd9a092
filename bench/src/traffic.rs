//! The generator and the receivers. The generator sends each producer's stream as paced SRTP
//! through `sendmmsg` (the engine's own batched sender); the receivers decrypt every packet, check
//! SSRC, payload type, order and content, and record latency. Counting is done over a fixed window
//! of send times, so warm-up and drain do not blur loss or rates.

use std::cell::RefCell;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringsfu_core::io::epoll::{bind_udp, EpollUdp};
use ringsfu_core::io::{RecvBatch, Route, TxQueue};
use ringsfu_core::srtp::SrtpContext;

use crate::histogram::Histogram;
use crate::payload;
use crate::plan::{Plan, PlanError};
use crate::procstat;

/// Packets per `sendmmsg` the generator aims for (the engine's sender splits at 64).
const GEN_BATCH: usize = 64;
/// Datagrams per `recvmmsg` on a receiver socket.
const RECV_BATCH: usize = 32;
/// Longest the generator sleeps between send rounds.
const MAX_SLEEP: Duration = Duration::from_millis(1);

/// Errors running traffic.
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    /// Socket trouble.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// The plan is unusable.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A generator or receiver thread died.
    #[error("{0} thread failed")]
    Thread(&'static str),
}

/// How much traffic, for how long.
#[derive(Debug, Clone)]
pub struct TrafficConfig {
    /// RTP payload bytes per packet.
    pub payload: usize,
    /// Total offered packets per second (over all producers).
    pub rate: f64,
    /// Sending before the measured window starts.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Waiting after the last send for stragglers.
    pub drain: Duration,
    /// Core to pin the generator and receiver threads to.
    pub client_core: Option<usize>,
    /// Hard cap on packets sent (safety bound).
    pub max_packets: u64,
    /// Print a progress line every second.
    pub progress: bool,
}

/// The sockets of the client side, bound before the server is set up (it needs their addresses).
pub struct Endpoints {
    /// One per producer, in plan order.
    pub producers: Vec<UdpSocket>,
    /// One per consumer, in plan order.
    pub consumers: Vec<UdpSocket>,
}

impl Endpoints {
    /// Binds `producers` sender sockets and `consumers` receiver sockets on 127.0.0.1, any port.
    pub fn bind_loopback(producers: usize, consumers: usize) -> std::io::Result<Self> {
        // The engine's binder: large socket buffers absorb bursts while a thread waits for a core.
        let any = || bind_udp(SocketAddr::from(([127, 0, 0, 1], 0)), false);
        Ok(Self {
            producers: (0..producers).map(|_| any()).collect::<Result<_, _>>()?,
            consumers: (0..consumers).map(|_| any()).collect::<Result<_, _>>()?,
        })
    }

    /// Binds the addresses a plan names (external mode).
    pub fn bind_plan(plan: &Plan) -> std::io::Result<Self> {
        Ok(Self {
            producers: plan
                .producers
                .iter()
                .map(|p| bind_udp(p.bind.unwrap_or_else(|| ([127, 0, 0, 1], 0).into()), false))
                .collect::<Result<_, _>>()?,
            consumers: plan
                .consumers
                .iter()
                .map(|c| UdpSocket::bind(c.listen))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// What the server side offers for measurement.
pub struct ServerProbe {
    /// CPU time used so far by what counts as the server (worker threads or a process).
    pub cpu: Box<dyn Fn() -> Option<Duration>>,
    /// Time the server's threads spent runnable but waiting for a core, so far.
    pub wait: Box<dyn Fn() -> Option<Duration>>,
}

/// Live counters the progress line reads.
#[derive(Default)]
struct Live {
    sent: AtomicU64,
    received: AtomicU64,
}

/// What the generator reports.
#[derive(Debug, Default, Clone)]
struct GenReport {
    sent_total: u64,
    /// Per producer: packets sent with a send time inside the window.
    sent_in_window: Vec<u64>,
    cpu_in_window: Duration,
    wait_in_window: Duration,
    send_drops: u64,
}

/// What the receivers report.
#[derive(Default)]
struct RecvReport {
    received_total: u64,
    received_in_window: u64,
    srtp_failures: u64,
    bad_content: u64,
    mismatched: u64,
    reordered: u64,
    rtcp: u64,
    latency: Histogram,
    cpu_in_window: Duration,
    wait_in_window: Duration,
}

/// The measured outcome of one traffic run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrafficResult {
    /// Offered packets per second (configured).
    pub offered_pps: f64,
    /// Packets per second the generator actually sent in the window.
    pub sent_pps: f64,
    /// Forwarded packets per second that arrived (window).
    pub forwarded_pps: f64,
    /// Packets that should have arrived in the window (sent × consumers of each producer).
    pub expected: u64,
    /// Packets that did arrive, verified.
    pub received: u64,
    /// 100 × (1 − received / expected).
    pub loss_pct: f64,
    /// Latency percentiles, microseconds.
    pub latency_p50_us: f64,
    /// 99th percentile.
    pub latency_p99_us: f64,
    /// 99.9th percentile.
    pub latency_p999_us: f64,
    /// Server CPU over the window / forwarded packets, microseconds (None without a probe).
    pub server_cpu_us_per_fwd: Option<f64>,
    /// Server CPU as a share of one core over the window, percent.
    pub server_cpu_pct: Option<f64>,
    /// Generator thread CPU, percent of one core.
    pub generator_cpu_pct: f64,
    /// Receiver thread CPU, percent of one core.
    pub receiver_cpu_pct: f64,
    /// Server threads' time waiting for a core, percent of the window.
    pub server_wait_pct: Option<f64>,
    /// Generator/receiver time spent waiting for a core, worst of the two, percent of the window.
    pub client_wait_pct: f64,
    /// Whether the client side (not the server) limited the run.
    pub client_bound: bool,
    /// Packets that failed SRTP authentication at the receivers.
    pub srtp_failures: u64,
    /// Packets whose content did not verify.
    pub bad_content: u64,
    /// Packets with the wrong SSRC, payload type or producer.
    pub mismatched: u64,
    /// Packets that arrived out of order (or duplicated).
    pub reordered: u64,
    /// RTCP packets the receivers saw (sender reports from the forwarder).
    pub rtcp_received: u64,
    /// Generator sends that the kernel refused (socket buffer full).
    pub generator_send_drops: u64,
    /// Things to know about this run.
    pub warnings: Vec<String>,
}

fn ns_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos() as u64
}

/// Runs the traffic of `plan` over `eps` and measures it.
pub fn run(
    plan: &Plan,
    eps: Endpoints,
    cfg: &TrafficConfig,
    probe: &ServerProbe,
) -> Result<TrafficResult, TrafficError> {
    plan.check()?;
    let epoch = Instant::now();
    let t0 = cfg.warmup;
    let t1 = cfg.warmup + cfg.duration;
    let live = Arc::new(Live::default());
    let stop = Arc::new(AtomicBool::new(false));

    let mut ctxs = Vec::new();
    for p in &plan.producers {
        ctxs.push(p.srtp.context()?);
    }
    let gen = {
        let producers = plan.producers.clone();
        let socks = eps.producers;
        let cfg = cfg.clone();
        let live = Arc::clone(&live);
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("bench-gen".into())
            .spawn(move || generator(producers, socks, ctxs, cfg, epoch, live, stop))?
    };
    let mut rctx = Vec::new();
    for c in &plan.consumers {
        rctx.push(c.srtp.context()?);
    }
    let recv = {
        let plan = plan.clone();
        let socks = eps.consumers;
        let live = Arc::clone(&live);
        let stop = Arc::clone(&stop);
        let core = cfg.client_core;
        std::thread::Builder::new()
            .name("bench-recv".into())
            .spawn(move || receivers(plan, socks, rctx, core, epoch, t0, t1, live, stop))?
    };

    // Sample the server at the window edges; print progress in between.
    let mut cpu0 = None;
    let mut cpu1 = None;
    let (mut swait0, mut swait1) = (None, None);
    let mut last = (Instant::now(), 0u64, 0u64);
    let end = t1 + cfg.drain;
    while epoch.elapsed() < end {
        let now = epoch.elapsed();
        if cpu0.is_none() && now >= t0 {
            cpu0 = (probe.cpu)();
            swait0 = (probe.wait)();
        }
        if cpu1.is_none() && now >= t1 {
            cpu1 = (probe.cpu)();
            swait1 = (probe.wait)();
        }
        if cfg.progress {
            let (s, r) = (
                live.sent.load(Ordering::Relaxed),
                live.received.load(Ordering::Relaxed),
            );
            progress_line(now, t0, t1, s, r, &mut last);
        }
        let next = [t0, t1, end]
            .into_iter()
            .filter(|t| *t > now)
            .min()
            .unwrap_or(end);
        std::thread::sleep((next - now).min(Duration::from_millis(100)));
    }
    stop.store(true, Ordering::Relaxed);
    let g = gen
        .join()
        .map_err(|_| TrafficError::Thread("generator"))??;
    let r = recv
        .join()
        .map_err(|_| TrafficError::Thread("receiver"))??;

    let window = cfg.duration.as_secs_f64();
    let mut expected = 0u64;
    for c in &plan.consumers {
        expected += g.sent_in_window.get(c.producer).copied().unwrap_or(0);
    }
    let sent_in_window: u64 = g.sent_in_window.iter().sum();
    let received = r.received_in_window;
    let server_cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let gen_pct = 100.0 * g.cpu_in_window.as_secs_f64() / window;
    let recv_pct = 100.0 * r.cpu_in_window.as_secs_f64() / window;
    let sent_pps = sent_in_window as f64 / window;
    let mut warnings = Vec::new();
    // Waiting for a core (schedstat run-queue time) means other load on the machine starved us.
    let wait_pct = 100.0 * (g.wait_in_window.max(r.wait_in_window)).as_secs_f64() / window;
    let starved = wait_pct > 20.0;
    let server_wait_pct = match (swait0, swait1) {
        (Some(a), Some(b)) => Some(100.0 * b.saturating_sub(a).as_secs_f64() / window),
        _ => None,
    };
    if let Some(w) = server_wait_pct.filter(|w| *w > 20.0) {
        warnings.push(format!(
            "server threads waited {w:.0}% of the window for a core (other load on the machine): its pps ceiling here is not its own"
        ));
    }
    if starved {
        warnings.push(format!(
            "client threads waited {wait_pct:.0}% of the window for a core (machine busy): loss and latency may be the client's"
        ));
    }
    let client_bound = gen_pct > 90.0 || recv_pct > 90.0 || sent_pps < 0.95 * cfg.rate || starved;
    if client_bound {
        warnings.push(format!(
            "client-bound: generator {gen_pct:.0}% / receiver {recv_pct:.0}% of a core, sent {sent_pps:.0} of {:.0} pps offered: the numbers describe the load generator, not the server",
            cfg.rate
        ));
    }
    if g.send_drops > 0 {
        warnings.push(format!(
            "generator: {} sends refused by the kernel",
            g.send_drops
        ));
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
    let _ = r.received_total;
    Ok(TrafficResult {
        offered_pps: cfg.rate,
        sent_pps,
        forwarded_pps: received as f64 / window,
        expected,
        received,
        loss_pct: loss_pct.max(0.0),
        latency_p50_us: r.latency.quantile(0.5) as f64 / 1e3,
        latency_p99_us: r.latency.quantile(0.99) as f64 / 1e3,
        latency_p999_us: r.latency.quantile(0.999) as f64 / 1e3,
        server_cpu_us_per_fwd: server_cpu
            .filter(|_| received > 0)
            .map(|c| c.as_secs_f64() * 1e6 / received as f64),
        server_cpu_pct: server_cpu.map(|c| 100.0 * c.as_secs_f64() / window),
        generator_cpu_pct: gen_pct,
        receiver_cpu_pct: recv_pct,
        client_wait_pct: wait_pct,
        server_wait_pct,
        client_bound,
        srtp_failures: r.srtp_failures,
        bad_content: r.bad_content,
        mismatched: r.mismatched,
        reordered: r.reordered,
        rtcp_received: r.rtcp,
        generator_send_drops: g.send_drops,
        warnings,
    })
}

/// Pins the calling thread to `core` when given (best effort: a failure only costs accuracy).
pub(crate) fn pin(core: Option<usize>) {
    if let Some(c) = core {
        let _ = ringsfu_core::io::pin_current_thread(c);
    }
}

/// A current-thread tokio runtime for one client thread.
pub(crate) fn current_rt() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

fn generator(
    producers: Vec<crate::plan::ProducerSpec>,
    socks: Vec<UdpSocket>,
    mut ctxs: Vec<SrtpContext>,
    cfg: TrafficConfig,
    epoch: Instant,
    live: Arc<Live>,
    stop: Arc<AtomicBool>,
) -> Result<GenReport, TrafficError> {
    pin(cfg.client_core);
    let rt = current_rt()?;
    let _guard = rt.enter();
    let mut out = Vec::new();
    for s in socks {
        s.set_nonblocking(true)?;
        out.push(EpollUdp::new(s)?);
    }
    let n = producers.len();
    let mut queues: Vec<TxQueue> = (0..n).map(|_| TxQueue::new()).collect();
    let mut counters = vec![0u64; n];
    let mut report = GenReport {
        sent_in_window: vec![0; n],
        ..Default::default()
    };
    let tid = procstat::current_tid();
    let (t0, t1) = (cfg.warmup, cfg.warmup + cfg.duration);
    let mut cpu0 = None;
    let mut wait0 = None;
    let mut next_producer = 0usize;
    let start = Instant::now();
    let clock_step = |p: &crate::plan::ProducerSpec| if p.vp8 { 3000 } else { 960 };
    let max_payload = ringsfu_core::io::PACKET_BUF_SIZE - payload::RTP_HEADER - 64;
    let payload_len = cfg.payload.min(max_payload);
    let order: Vec<u32> = (0..GEN_BATCH as u32 * 4).collect();
    loop {
        let now_d = epoch.elapsed();
        if cpu0.is_none() && now_d >= t0 {
            cpu0 = tid.and_then(procstat::thread_cpu);
            wait0 = tid.and_then(procstat::thread_wait);
        }
        if now_d >= t1 || stop.load(Ordering::Relaxed) || report.sent_total >= cfg.max_packets {
            break;
        }
        let due = (cfg.rate * start.elapsed().as_secs_f64()) as u64;
        let due = due.min(cfg.max_packets);
        let mut todo = due.saturating_sub(report.sent_total) as usize;
        while todo > 0 {
            let round = todo.min(GEN_BATCH * n.max(1));
            for _ in 0..round {
                let i = next_producer;
                next_producer = (next_producer + 1) % n;
                let p = &producers[i];
                let send_ns = ns_since(epoch);
                let q = &mut queues[i];
                let buf = q.next_buffer();
                let len = payload::write_packet(
                    buf,
                    p.payload_type,
                    p.ssrc,
                    i as u32,
                    counters[i],
                    send_ns,
                    payload_len,
                    p.vp8,
                    clock_step(p),
                );
                let Ok(len) = ctxs[i].protect_rtp(buf, len) else {
                    continue;
                };
                q.commit(
                    len,
                    Route::Udp {
                        socket: 0,
                        dest: p.send_to,
                    },
                );
                counters[i] += 1;
                let t = Duration::from_nanos(send_ns);
                if t >= t0 && t < t1 {
                    report.sent_in_window[i] += 1;
                }
            }
            for (i, q) in queues.iter_mut().enumerate() {
                let k = q.pending();
                if k > 0 {
                    out[i].send_entries(q.queued(), &order[..k]);
                    q.clear();
                }
            }
            report.sent_total += round as u64;
            live.sent.fetch_add(round as u64, Ordering::Relaxed);
            todo -= round;
        }
        // Sleep until the next packet is due (at most MAX_SLEEP, so batches stay small).
        let next_at = (report.sent_total + 1) as f64 / cfg.rate;
        let wait = Duration::from_secs_f64((next_at - start.elapsed().as_secs_f64()).max(0.0));
        if !wait.is_zero() {
            std::thread::sleep(wait.min(MAX_SLEEP));
        }
    }
    let cpu1 = tid.and_then(procstat::thread_cpu);
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        report.cpu_in_window = b.saturating_sub(a);
    }
    if let (Some(a), Some(b)) = (wait0, tid.and_then(procstat::thread_wait)) {
        report.wait_in_window = b.saturating_sub(a);
    }
    report.send_drops = out.iter().map(|s| s.send_drops()).sum();
    Ok(report)
}

struct RecvShared {
    report: RecvReport,
    last_counter: Vec<Option<u64>>,
}

#[allow(clippy::too_many_arguments)]
fn receivers(
    plan: Plan,
    socks: Vec<UdpSocket>,
    ctxs: Vec<SrtpContext>,
    core: Option<usize>,
    epoch: Instant,
    t0: Duration,
    t1: Duration,
    live: Arc<Live>,
    stop: Arc<AtomicBool>,
) -> Result<RecvReport, TrafficError> {
    pin(core);
    let rt = current_rt()?;
    let local = tokio::task::LocalSet::new();
    let tid = procstat::current_tid();
    let shared = Rc::new(RefCell::new(RecvShared {
        report: RecvReport::default(),
        last_counter: vec![None; socks.len()],
    }));
    let (t0n, t1n) = (t0.as_nanos() as u64, t1.as_nanos() as u64);
    let result: Result<(), TrafficError> = local.block_on(&rt, async {
        let mut tasks = Vec::new();
        for (i, (s, mut ctx)) in socks.into_iter().zip(ctxs).enumerate() {
            s.set_nonblocking(true)?;
            let sock = EpollUdp::new(s)?;
            let spec = plan.consumers[i].clone();
            let vp8 = plan.producers[spec.producer].vp8;
            let shared = Rc::clone(&shared);
            let live = Arc::clone(&live);
            let stop = Arc::clone(&stop);
            tasks.push(tokio::task::spawn_local(async move {
                let mut rb = RecvBatch::new(RECV_BATCH);
                while !stop.load(Ordering::Relaxed) {
                    if tokio::time::timeout(Duration::from_millis(50), sock.readable())
                        .await
                        .is_err()
                    {
                        continue;
                    }
                    loop {
                        let got = match sock.recv_batch(&mut rb) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let now = ns_since(epoch);
                        let mut sh = shared.borrow_mut();
                        let sh = &mut *sh;
                        let r = &mut sh.report;
                        r.received_total += got as u64;
                        live.received.fetch_add(got as u64, Ordering::Relaxed);
                        for k in 0..got {
                            let len = rb.lens[k];
                            let buf = &mut rb.bufs[k];
                            // RTCP (RFC 5761 demultiplexing): the forwarder's reports, not media.
                            if len >= 2 && (192..=223).contains(&buf[1]) {
                                r.rtcp += 1;
                                continue;
                            }
                            let Ok(n) = ctx.unprotect_rtp(buf, len) else {
                                r.srtp_failures += 1;
                                continue;
                            };
                            let Some(d) = payload::decode(&buf[..n], vp8) else {
                                r.bad_content += 1;
                                continue;
                            };
                            if spec.ssrc.is_some_and(|s| s != d.ssrc)
                                || spec.payload_type.is_some_and(|p| p != d.pt)
                                || d.producer as usize != spec.producer
                            {
                                r.mismatched += 1;
                                continue;
                            }
                            match sh.last_counter[i] {
                                Some(last) if d.counter <= last => r.reordered += 1,
                                _ => sh.last_counter[i] = Some(d.counter),
                            }
                            if d.send_ns >= t0n && d.send_ns < t1n {
                                r.received_in_window += 1;
                                r.latency.record(now.saturating_sub(d.send_ns));
                            }
                        }
                    }
                }
            }));
        }
        // CPU over the window, sampled on this thread while the tasks run.
        let until = |t: Duration| tokio::time::sleep(t.saturating_sub(epoch.elapsed()));
        until(t0).await;
        let c0 = tid.and_then(procstat::thread_cpu);
        let w0 = tid.and_then(procstat::thread_wait);
        until(t1).await;
        let c1 = tid.and_then(procstat::thread_cpu);
        if let (Some(a), Some(b)) = (c0, c1) {
            shared.borrow_mut().report.cpu_in_window = b.saturating_sub(a);
        }
        if let (Some(a), Some(b)) = (w0, tid.and_then(procstat::thread_wait)) {
            shared.borrow_mut().report.wait_in_window = b.saturating_sub(a);
        }
        for t in tasks {
            let _ = t.await;
        }
        Ok(())
    });
    result?;
    let sh = Rc::try_unwrap(shared).map_err(|_| TrafficError::Thread("receiver"))?;
    Ok(sh.into_inner().report)
}

/// Prints the once-a-second progress line: send and receive rates since the previous line and
/// whether the run is warming up or draining. `last` is (when, sent, received) of that line.
pub(crate) fn progress_line(
    now: Duration,
    t0: Duration,
    t1: Duration,
    sent: u64,
    received: u64,
    last: &mut (Instant, u64, u64),
) {
    if last.0.elapsed() < Duration::from_secs(1) {
        return;
    }
    let dt = last.0.elapsed().as_secs_f64();
    eprintln!(
        "  t={:>5.1}s  sent {:>9.0} pps  received {:>10.0} pps{}",
        now.as_secs_f64(),
        sent.saturating_sub(last.1) as f64 / dt,
        received.saturating_sub(last.2) as f64 / dt,
        if now < t0 {
            "  (warm-up)"
        } else if now >= t1 {
            "  (drain)"
        } else {
            ""
        }
    );
    *last = (Instant::now(), sent, received);
}
