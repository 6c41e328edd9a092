//! `GET /metrics`: the Prometheus text exposition (built with `prometheus-client`), one label
//! `worker` per worker.
//!
//! A scrape sends one message to each worker; the worker sums its own plain counters there
//! (engine, sockets, Lua host) and answers. The packet path never touches an atomic, a lock or
//! a shared counter for this, and nothing is computed between scrapes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use ringsfu_core::metrics::WorkerMetrics;
use ringsfu_plugins::HttpResponse;
use tokio::sync::oneshot;

use super::lua_stats::LuaStats;
use crate::shared::Shared;

/// How long a scrape waits for a worker's answer; a worker that does not answer in time is
/// left out of that scrape (and counted in `ringsfu_scrape_worker_timeouts_total`).
const WORKER_ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

static SCRAPE_TIMEOUTS: AtomicU64 = AtomicU64::new(0);

/// What one worker answers to a scrape.
#[derive(Debug, Default, Clone)]
pub struct WorkerSample {
    /// Worker index.
    pub worker: usize,
    /// Rooms open on the worker.
    pub rooms: u64,
    /// protoo peers connected to those rooms.
    pub peers: u64,
    /// Lua handler accounting.
    pub lua: LuaStats,
    /// Bytes the worker's Lua state uses.
    pub lua_memory_bytes: u64,
    /// The media engine's counters (None on a worker without an engine).
    pub engine: Option<WorkerMetrics>,
}

/// Runs on the worker thread: reads the worker's counters.
fn sample_here(worker: usize) -> WorkerSample {
    let mut s = WorkerSample {
        worker,
        lua: super::lua_stats::snapshot(),
        engine: crate::lua_host::engine_api::worker_context().map(|ctx| ctx.metrics()),
        ..WorkerSample::default()
    };
    if let Some(host) = crate::lua_host::Host::current() {
        let rooms = host.rooms.borrow();
        s.rooms = rooms.len() as u64;
        s.peers = rooms.values().map(|r| r.peer_count() as u64).sum();
        s.lua_memory_bytes = host.lua.used_memory() as u64;
    }
    s
}

/// Asks every worker for its sample (in parallel).
pub async fn gather(shared: &Shared) -> Vec<WorkerSample> {
    let mut pending = Vec::with_capacity(shared.workers.len());
    for (i, w) in shared.workers.iter().enumerate() {
        let (tx, rx) = oneshot::channel();
        let posted = w.post(Box::new(move || {
            let _ = tx.send(sample_here(i));
        }));
        if posted {
            pending.push(rx);
        }
    }
    let mut out = Vec::with_capacity(pending.len());
    for rx in pending {
        match tokio::time::timeout(WORKER_ANSWER_TIMEOUT, rx).await {
            Ok(Ok(s)) => out.push(s),
            _ => {
                SCRAPE_TIMEOUTS.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    out
}

/// Process CPU seconds (user + system) and resident memory bytes, from /proc/self.
fn process_stats() -> (f64, u64) {
    // SAFETY-free: plain file reads. Clock ticks are 100 Hz on every Linux ABI Rust supports
    // (USER_HZ is fixed at 100 for user space).
    const TICKS: f64 = 100.0;
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may contain spaces) start after ") ".
            let rest = s.rsplit_once(") ")?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of stat; `rest` starts at field 3.
            let ut: f64 = f.get(11)?.parse().ok()?;
            let st: f64 = f.get(12)?.parse().ok()?;
            Some((ut + st) / TICKS)
        })
        .unwrap_or(0.0);
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4096)
        .unwrap_or(0);
    (cpu, rss)
}

type Labels = Vec<(String, String)>;

struct Builder {
    reg: Registry,
}

impl Builder {
    fn counter(&mut self, name: &str, help: &str, values: &[(Labels, u64)]) {
        if let [(l, v)] = values {
            if l.is_empty() {
                let c = Counter::<u64>::default();
                c.inc_by(*v);
                self.reg.register(name, help, c);
                return;
            }
        }
        let fam = Family::<Labels, Counter>::default();
        for (l, v) in values {
            fam.get_or_create(l).inc_by(*v);
        }
        self.reg.register(name, help, fam);
    }

    fn counter_f(&mut self, name: &str, help: &str, values: &[(Labels, f64)]) {
        type C = Counter<f64, std::sync::atomic::AtomicU64>;
        if let [(l, v)] = values {
            if l.is_empty() {
                let c = C::default();
                c.inc_by(*v);
                self.reg.register(name, help, c);
                return;
            }
        }
        let fam = Family::<Labels, C>::default();
        for (l, v) in values {
            fam.get_or_create(l).inc_by(*v);
        }
        self.reg.register(name, help, fam);
    }

    fn gauge(&mut self, name: &str, help: &str, values: &[(Labels, i64)]) {
        if let [(l, v)] = values {
            if l.is_empty() {
                let g = Gauge::<i64>::default();
                g.set(*v);
                self.reg.register(name, help, g);
                return;
            }
        }
        let fam = Family::<Labels, Gauge>::default();
        for (l, v) in values {
            fam.get_or_create(l).set(*v);
        }
        self.reg.register(name, help, fam);
    }
}

/// `prometheus-client` writes OpenMetrics text: a counter family `x` is announced as
/// `# TYPE x counter` with samples `x_total`, and the text ends with `# EOF`. Prometheus' classic
/// text format (what `promtool check metrics` and `text/plain` scrapers parse) wants the family
/// named like its samples, `x_total`, and no EOF marker. Rewrites those lines.
fn to_classic_text(open_metrics: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for l in open_metrics.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            if let Some(name) = rest.strip_suffix(" counter") {
                counters.insert(name.to_owned());
            }
        }
    }
    let mut out = String::with_capacity(open_metrics.len() + 16 * counters.len());
    for l in open_metrics.lines() {
        if l == "# EOF" {
            continue;
        }
        let meta = l
            .strip_prefix("# HELP ")
            .map(|r| ("# HELP ", r))
            .or_else(|| l.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        match meta {
            Some((kind, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    out.push_str(&format!("{kind}{name}_total {tail}\n"));
                } else {
                    out.push_str(l);
                    out.push('\n');
                }
            }
            None => {
                out.push_str(l);
                out.push('\n');
            }
        }
    }
    out
}

fn w(i: usize) -> Labels {
    vec![("worker".into(), i.to_string())]
}

fn wl(i: usize, k: &str, v: &str) -> Labels {
    vec![("worker".into(), i.to_string()), (k.into(), v.into())]
}

/// Renders samples (and process, signaling-side state) as the text exposition.
pub fn render(samples: &[WorkerSample], shared: Option<&Shared>) -> String {
    let mut b = Builder {
        reg: Registry::default(),
    };
    let per = |f: &dyn Fn(&WorkerSample) -> Option<u64>| -> Vec<(Labels, u64)> {
        samples
            .iter()
            .filter_map(|s| f(s).map(|v| (w(s.worker), v)))
            .collect()
    };
    let eng = |f: fn(&WorkerMetrics) -> u64| per(&move |s| s.engine.as_ref().map(f));

    // Sockets.
    b.counter(
        "ringsfu_datagrams_received",
        "Datagrams (and ICE-TCP framed packets) received by the worker's sockets",
        &eng(|m| m.io.datagrams_received),
    );
    b.counter(
        "ringsfu_received_bytes",
        "Bytes received by the worker's sockets",
        &eng(|m| m.io.bytes_received),
    );
    b.counter(
        "ringsfu_datagrams_sent",
        "Datagrams (and ICE-TCP framed packets) the worker sent",
        &eng(|m| m.io.datagrams_sent),
    );
    b.counter(
        "ringsfu_sent_bytes",
        "Bytes the worker sent",
        &eng(|m| m.io.bytes_sent),
    );
    // RTP/RTCP on transports.
    b.counter(
        "ringsfu_rtp_packets_received",
        "RTP packets received on transports (after SRTP)",
        &eng(|m| m.engine.traffic.transports.rtp_packets_received),
    );
    b.counter(
        "ringsfu_rtp_received_bytes",
        "RTP bytes received on transports",
        &eng(|m| m.engine.traffic.transports.rtp_bytes_received),
    );
    b.counter(
        "ringsfu_rtp_packets_sent",
        "RTP packets sent on transports",
        &eng(|m| m.engine.traffic.transports.rtp_packets_sent),
    );
    b.counter(
        "ringsfu_rtp_sent_bytes",
        "RTP bytes sent on transports",
        &eng(|m| m.engine.traffic.transports.rtp_bytes_sent),
    );
    b.counter(
        "ringsfu_rtcp_packets_received",
        "RTCP packets received",
        &eng(|m| m.engine.traffic.transports.rtcp_packets_received),
    );
    b.counter(
        "ringsfu_rtcp_packets_sent",
        "RTCP packets sent",
        &eng(|m| m.engine.traffic.transports.rtcp_packets_sent),
    );
    b.counter(
        "ringsfu_forwarded_packets",
        "RTP packets forwarded to consumers (one per receiver)",
        &eng(|m| m.engine.traffic.consumers.packets),
    );
    b.counter(
        "ringsfu_forwarded_bytes",
        "RTP bytes forwarded to consumers",
        &eng(|m| m.engine.traffic.consumers.bytes),
    );
    b.counter(
        "ringsfu_nack_received",
        "NACK packets received from consumers",
        &eng(|m| m.engine.traffic.consumers.nacks),
    );
    b.counter(
        "ringsfu_nack_misses",
        "NACKed packets no longer in the retransmission store",
        &eng(|m| m.engine.traffic.consumers.nack_misses),
    );
    b.counter(
        "ringsfu_retransmitted_packets",
        "Retransmissions sent (RTX or plain) in answer to NACKs",
        &eng(|m| m.engine.traffic.consumers.retransmitted),
    );
    b.counter(
        "ringsfu_keyframe_requests_received",
        "PLI/FIR received from consumers",
        &eng(|m| m.engine.traffic.consumers.keyframe_requests),
    );
    // Drops.
    let mut drops: Vec<(Labels, u64)> = Vec::new();
    for s in samples {
        let Some(m) = &s.engine else { continue };
        let d = &m.engine.drops;
        for (reason, v) in [
            ("unknown_protocol", d.unknown_protocol),
            ("bad_stun", d.bad_stun),
            ("unknown_ufrag", d.unknown_ufrag),
            ("ice_rejected", d.ice_rejected),
            ("unknown_tuple", d.unknown_tuple),
            ("bad_rtp", d.bad_rtp),
            ("srtp", d.srtp),
            ("unknown_ssrc", d.unknown_ssrc),
            ("plain_wrong_source", d.plain_wrong_source),
            ("send_buffer_full", m.io.send_drops),
        ] {
            drops.push((wl(s.worker, "reason", reason), v));
        }
    }
    b.counter(
        "ringsfu_dropped_packets",
        "Packets dropped, by reason",
        &drops,
    );
    // Objects.
    let gauge_of = |v: Vec<(Labels, u64)>| -> Vec<(Labels, i64)> {
        v.into_iter().map(|(l, v)| (l, v as i64)).collect()
    };
    b.gauge(
        "ringsfu_rooms",
        "Rooms open",
        &gauge_of(per(&|s| Some(s.rooms))),
    );
    b.gauge(
        "ringsfu_peers",
        "protoo peers connected",
        &gauge_of(per(&|s| Some(s.peers))),
    );
    b.gauge(
        "ringsfu_routers",
        "Routers",
        &gauge_of(eng(|m| m.engine.routers)),
    );
    let mut transports = Vec::new();
    for s in samples {
        let Some(m) = &s.engine else { continue };
        for t in &m.engine.transports {
            transports.push((
                vec![
                    ("worker".into(), s.worker.to_string()),
                    ("type".into(), t.kind.into()),
                    ("state".into(), t.state.into()),
                ],
                t.count as i64,
            ));
        }
    }
    b.gauge(
        "ringsfu_transports",
        "Transports by type and state (WebRTC: DTLS state)",
        &transports,
    );
    let mut producers = Vec::new();
    let mut consumers = Vec::new();
    for s in samples {
        let Some(m) = &s.engine else { continue };
        for (i, kind) in ["audio", "video"].iter().enumerate() {
            producers.push((wl(s.worker, "kind", kind), m.engine.producers[i] as i64));
            consumers.push((wl(s.worker, "kind", kind), m.engine.consumers[i] as i64));
        }
    }
    b.gauge("ringsfu_producers", "Producers by kind", &producers);
    b.gauge("ringsfu_consumers", "Consumers by kind", &consumers);
    b.gauge(
        "ringsfu_data_producers",
        "Data producers",
        &gauge_of(eng(|m| m.engine.data_producers)),
    );
    b.gauge(
        "ringsfu_data_consumers",
        "Data consumers",
        &gauge_of(eng(|m| m.engine.data_consumers)),
    );
    // Lua.
    b.counter(
        "ringsfu_lua_invocations",
        "Lua handler invocations (requests, notifications, hooks, timers, HTTP calls)",
        &per(&|s| Some(s.lua.invocations)),
    );
    b.counter(
        "ringsfu_lua_errors",
        "Lua handler invocations that failed (error, budget, memory, refusal)",
        &per(&|s| Some(s.lua.errors)),
    );
    let busy: Vec<(Labels, f64)> = samples
        .iter()
        .map(|s| (w(s.worker), s.lua.busy.as_secs_f64()))
        .collect();
    b.counter_f(
        "ringsfu_lua_busy_seconds",
        "Time the worker spent running Lua handlers",
        &busy,
    );
    b.gauge(
        "ringsfu_lua_memory_bytes",
        "Memory used by the worker's Lua state",
        &gauge_of(per(&|s| Some(s.lua_memory_bytes))),
    );
    // Signaling side.
    if let Some(shared) = shared {
        b.gauge(
            "ringsfu_draining",
            "1 while drain mode refuses new rooms",
            &[(vec![], shared.ops.drain.is_on() as i64)],
        );
        b.counter(
            "ringsfu_rooms_refused_draining",
            "New rooms refused because of drain mode",
            &[(vec![], shared.ops.refused_draining.load(Ordering::Relaxed))],
        );
    }
    let limit_hits: Vec<(Labels, u64)> = ringsfu_plugins::limits::hits()
        .into_iter()
        .map(|(name, v)| (vec![("limit".to_owned(), name.to_owned())], v))
        .collect();
    b.counter(
        "ringsfu_limit_hits",
        "Requests refused because a limit was reached, by limit",
        &limit_hits,
    );
    b.counter(
        "ringsfu_scrape_worker_timeouts",
        "Scrapes a worker did not answer in time",
        &[(vec![], SCRAPE_TIMEOUTS.load(Ordering::Relaxed))],
    );
    // Process.
    let (cpu, rss) = process_stats();
    b.counter_f(
        "process_cpu_seconds",
        "Total user and system CPU time spent in seconds",
        &[(vec![], cpu)],
    );
    b.gauge(
        "process_resident_memory_bytes",
        "Resident memory size in bytes",
        &[(vec![], rss as i64)],
    );

    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &b.reg);
    to_classic_text(&out)
}

/// `GET /metrics`.
pub async fn scrape(shared: &Shared) -> HttpResponse {
    let samples = gather(shared).await;
    HttpResponse::text(200, render(&samples, Some(shared)))
}
