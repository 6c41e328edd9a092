//! ringsfu-bench: load generator and report for ringsfu (and any forwarder described by a plan).
//!
//! Scenarios: `fanout` (in-process ringsfu, SRTP PlainTransports), `floor` (a bare forwarding loop:
//! what the kernel and crypto allow), `external` (a plan file against any forwarder), `idle`
//! (memory per idle WebRtcTransport), `webrtc` (publishers and subscribers over ICE + DTLS + SRTP
//! WebRtcTransports with the project's webrtc-rs test peer; join time and forwarding), `soak`
//! (join/leave churn against the real binary over protoo and HTTP: what stays behind). See
//! bench/README.md.

mod flood;
mod floor;
mod histogram;
mod idle;
mod payload;
mod plan;
mod procstat;
mod remote;
mod report;
mod server;
mod soak;
mod traffic;
mod webrtc;

use std::time::Duration;

use ringsfu_core::io::IoBackend;
use ringsfu_core::srtp::SrtpProfile;

use crate::floor::{Floor, FloorSockets};
use crate::report::RunRecord;
use crate::server::InProcessServer;
use crate::traffic::{Endpoints, ServerProbe, TrafficConfig};

const USAGE: &str = "usage: ringsfu-bench <fanout|floor|external|idle|webrtc|soak> [options]
  (soak has options of its own: ringsfu-bench soak --help)
  --producers N        streams sent (default 1)
  --consumers N        consumers per producer (default 10)
  --size BYTES         RTP payload bytes: 160 audio-sized (default), 1200 video-sized (VP8)
  --rate PPS           total offered input packets/s (default 50 per producer)
  --duration S         measured window, seconds (default 5; at most 600)
  --warmup S           sending before the window (default 1)
  --workers N          in-process server workers (default 1); producer i lives on worker i mod N
  --server-url URL     fanout: a running ringsfu (http://127.0.0.1:PORT), set up over its HTTP API
  --server-pid PID     with --server-url: process whose CPU (/proc/PID/stat) counts as server CPU
  --spawn-server PATH  fanout: start this ringsfu binary on free ports (--workers, --backend), stop it at the end
  --room ID            HTTP modes: room of the bench's broadcasters (default bench-<pid>)
  --backend B          epoll | io_uring (io_uring falls back to epoll where the kernel blocks it)
  --suite S            SRTP suite (default AES_CM_128_HMAC_SHA1_80)
  --transport-cc       fanout: consumers negotiate transport-cc (transport-wide seq in every packet)
  --sweep              raise the rate by --sweep-factor (1.5) until loss >= 0.1% (--sweep-steps 12)
  --worker-sweep       fanout: repeat with 1..cores workers
  --ab                 fanout: alternate backends epoll, io_uring, epoll, io_uring
  --compare-floor      fanout: also run floor at each rate and print the CPU ratio
  --floor-sockets L    floor: per-consumer (default, like PlainTransports) | shared
  --plan FILE          external: the traffic plan (JSON, see README)
  --count K            idle: transports to create (default 1000, at most 10000)
  --publishers P       webrtc: publishers over WebRtcTransports (default 1; = --producers)
  --subscribers S      webrtc: subscribers, each consuming every publisher (default 10; = --consumers);
                       webrtc's --rate is per publisher (default 50), --workers must be 1
  --flood PPS          webrtc: spray PPS packets/s of garbage, RTP-looking and STUN traffic for
                       unknown transports at the shared port during warm-up and window (max 1000000)
  --json FILE          write all results as JSON
  --svg FILE           sweep plot (default: the JSON path with .svg, or sweep.svg)
  --max-packets N      hard cap on packets sent per run (default 50000000)
  --quiet              no progress lines";

/// Everything the command line says.
#[derive(Debug, Clone)]
struct Opts {
    scenario: String,
    producers: usize,
    consumers: usize,
    size: usize,
    rate: Option<f64>,
    flood: f64,
    duration: f64,
    warmup: f64,
    workers: usize,
    backend: IoBackend,
    suite: SrtpProfile,
    sweep: bool,
    sweep_factor: f64,
    sweep_steps: usize,
    worker_sweep: bool,
    ab: bool,
    compare_floor: bool,
    /// Consumers negotiate transport-cc: the server writes its transport-wide sequence number
    /// into every forwarded packet and runs its send-side estimator.
    transport_cc: bool,
    floor_sockets: FloorSockets,
    plan: Option<String>,
    count: usize,
    json: Option<String>,
    svg: Option<String>,
    max_packets: u64,
    quiet: bool,
    /// The ringsfu server `fanout` measures (in-process unless an HTTP mode is chosen).
    server: ServerChoice,
    room: Option<String>,
}

/// Which ringsfu `fanout` measures.
#[derive(Debug, Clone, PartialEq)]
enum ServerChoice {
    /// Workers started in this process through the engine API.
    InProcess,
    /// A running server at this URL, with the process charged as server CPU if given.
    Url(String, Option<u32>),
    /// The bench starts this binary per run.
    Spawn(String),
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut it = args.iter();
    let scenario = it.next().ok_or("missing scenario")?.clone();
    if !["fanout", "floor", "external", "idle", "webrtc"].contains(&scenario.as_str()) {
        return Err(format!("unknown scenario {scenario}"));
    }
    let mut o = Opts {
        scenario,
        producers: 1,
        consumers: 10,
        size: 160,
        rate: None,
        flood: 0.0,
        duration: 5.0,
        warmup: 1.0,
        workers: 1,
        backend: IoBackend::Epoll,
        suite: SrtpProfile::Aes128CmHmacSha1_80,
        sweep: false,
        sweep_factor: 1.5,
        sweep_steps: 12,
        worker_sweep: false,
        ab: false,
        compare_floor: false,
        transport_cc: false,
        floor_sockets: FloorSockets::PerConsumer,
        plan: None,
        count: 1000,
        json: None,
        svg: None,
        max_packets: 50_000_000,
        quiet: false,
        server: ServerChoice::InProcess,
        room: None,
    };
    let mut server_url = None;
    let mut server_pid = None;
    let mut spawn_server = None;
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
        fn num<T: std::str::FromStr>(a: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("{a}: bad number {v}"))
        }
        match a.as_str() {
            "--producers" => o.producers = num(a, val()?)?,
            "--consumers" => o.consumers = num(a, val()?)?,
            "--size" => o.size = num(a, val()?)?,
            "--rate" => o.rate = Some(num(a, val()?)?),
            "--flood" => o.flood = num(a, val()?)?,
            "--duration" => o.duration = num(a, val()?)?,
            "--warmup" => o.warmup = num(a, val()?)?,
            "--workers" => o.workers = num(a, val()?)?,
            "--backend" => {
                let v = val()?;
                o.backend = IoBackend::parse(&v).ok_or(format!("unknown backend {v}"))?
            }
            "--suite" => {
                let v = val()?;
                o.suite = SrtpProfile::from_name(&v).ok_or(format!("unknown suite {v}"))?
            }
            "--sweep" => o.sweep = true,
            "--sweep-factor" => o.sweep_factor = num(a, val()?)?,
            "--sweep-steps" => o.sweep_steps = num(a, val()?)?,
            "--worker-sweep" => o.worker_sweep = true,
            "--ab" => o.ab = true,
            "--compare-floor" => o.compare_floor = true,
            "--transport-cc" => o.transport_cc = true,
            "--floor-sockets" => {
                o.floor_sockets = match val()?.as_str() {
                    "per-consumer" => FloorSockets::PerConsumer,
                    "shared" => FloorSockets::Shared,
                    v => return Err(format!("unknown floor layout {v}")),
                }
            }
            "--plan" => o.plan = Some(val()?),
            "--count" => o.count = num(a, val()?)?,
            "--publishers" => o.producers = num(a, val()?)?,
            "--subscribers" => o.consumers = num(a, val()?)?,
            "--json" => o.json = Some(val()?),
            "--svg" => o.svg = Some(val()?),
            "--max-packets" => o.max_packets = num(a, val()?)?,
            "--quiet" => o.quiet = true,
            "--server-url" => server_url = Some(val()?),
            "--server-pid" => server_pid = Some(num(a, val()?)?),
            "--spawn-server" => spawn_server = Some(val()?),
            "--room" => o.room = Some(val()?),
            "-h" | "--help" => return Err(String::new()),
            _ => return Err(format!("unknown option {a}")),
        }
    }
    o.server = match (server_url, server_pid, spawn_server) {
        (None, None, None) => ServerChoice::InProcess,
        (Some(u), pid, None) => {
            remote::parse_url(&u).map_err(|e| e.to_string())?;
            if o.worker_sweep || o.ab {
                return Err("--server-url: the server's workers and backend are fixed: no --worker-sweep / --ab".into());
            }
            ServerChoice::Url(u, pid)
        }
        (None, None, Some(p)) => ServerChoice::Spawn(p),
        _ => return Err("use either --server-url [--server-pid] or --spawn-server".into()),
    };
    if o.server != ServerChoice::InProcess && o.scenario != "fanout" {
        return Err("--server-url / --spawn-server apply to fanout only".into());
    }
    let vp8 = o.size >= 1000;
    if o.size < payload::min_payload(vp8) || o.size > 1400 {
        return Err(format!(
            "--size must be {}..=1400",
            payload::min_payload(vp8)
        ));
    }
    if !(o.duration > 0.0 && o.duration <= 600.0 && o.warmup >= 0.0 && o.warmup <= 60.0) {
        return Err("--duration must be in (0, 600], --warmup in [0, 60]".into());
    }
    if o.producers == 0
        || o.producers > 1000
        || o.consumers > 2000
        || o.producers * o.consumers > 10_000
    {
        return Err(
            "--producers 1..=1000, --consumers ..=2000, producers × consumers <= 10000".into(),
        );
    }
    if o.count == 0 || o.count > 10_000 {
        return Err("--count must be 1..=10000".into());
    }
    if o.rate.is_some_and(|r| !(r > 0.0 && r <= 2_000_000.0)) || o.sweep_factor <= 1.0 {
        return Err("--rate must be in (0, 2e6], --sweep-factor > 1".into());
    }
    Ok(o)
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn traffic_cfg(o: &Opts, rate: f64, client_core: Option<usize>) -> TrafficConfig {
    TrafficConfig {
        payload: o.size,
        rate,
        warmup: Duration::from_secs_f64(o.warmup),
        duration: Duration::from_secs_f64(o.duration),
        drain: Duration::from_millis(300),
        client_core,
        max_packets: o.max_packets,
        progress: !o.quiet,
    }
}

type BoxError = Box<dyn std::error::Error>;

fn run_fanout(
    o: &Opts,
    rate: f64,
    workers: usize,
    backend: IoBackend,
) -> Result<RunRecord, BoxError> {
    if o.server != ServerChoice::InProcess {
        return run_fanout_remote(o, rate, workers, backend);
    }
    let n = cores();
    let server = InProcessServer::start(workers, backend, n, false)?;
    if backend == IoBackend::IoUring && server.backend_used != IoBackend::IoUring {
        eprintln!("note: io_uring requested but unavailable here (seccomp or sysctl): the engine runs epoll");
    }
    let eps = Endpoints::bind_loopback(o.producers, o.producers * o.consumers)?;
    let paddrs: Vec<_> = eps
        .producers
        .iter()
        .map(|s| s.local_addr())
        .collect::<Result<_, _>>()?;
    let caddrs: Vec<_> = eps
        .consumers
        .iter()
        .map(|s| s.local_addr())
        .collect::<Result<_, _>>()?;
    let plan = server.setup_fanout(
        &paddrs,
        &caddrs,
        o.consumers,
        o.size >= 1000,
        o.suite,
        o.transport_cc,
    )?;
    let client_core = (workers < n).then(|| n - 1);
    let server = std::sync::Arc::new(server);
    let s2 = std::sync::Arc::clone(&server);
    let s3 = std::sync::Arc::clone(&server);
    let probe = ServerProbe {
        cpu: Box::new(move || Some(s2.cpu())),
        wait: Box::new(move || Some(procstat::threads_wait(&s3.tids))),
    };
    let result = traffic::run(&plan, eps, &traffic_cfg(o, rate, client_core), &probe)?;
    Ok(RunRecord {
        scenario: "fanout".into(),
        series: format!("ringsfu w{workers} {}", server.backend_used.name()),
        producers: o.producers,
        consumers_per_producer: o.consumers,
        payload: o.size,
        workers,
        backend_requested: backend.name().into(),
        backend_used: server.backend_used.name().into(),
        rss_bytes: procstat::rss_bytes(),
        result,
    })
}

/// `fanout` against a separate ringsfu process, set up over its HTTP API.
fn run_fanout_remote(
    o: &Opts,
    rate: f64,
    workers: usize,
    backend: IoBackend,
) -> Result<RunRecord, BoxError> {
    let room = room_of(o);
    let mut server = match &o.server {
        ServerChoice::Url(url, pid) => remote::RemoteServer::connect(url, room, *pid)?,
        ServerChoice::Spawn(bin) => {
            remote::RemoteServer::spawn(std::path::Path::new(bin), room, workers, backend)?
        }
        ServerChoice::InProcess => return Err("not an HTTP mode".into()),
    };
    let eps = Endpoints::bind_loopback(o.producers, o.producers * o.consumers)?;
    let paddrs: Vec<_> = eps
        .producers
        .iter()
        .map(|s| s.local_addr())
        .collect::<Result<_, _>>()?;
    let caddrs: Vec<_> = eps
        .consumers
        .iter()
        .map(|s| s.local_addr())
        .collect::<Result<_, _>>()?;
    let setup = std::time::Instant::now();
    let plan = server.setup_fanout(
        &paddrs,
        &caddrs,
        o.consumers,
        o.size >= 1000,
        o.suite,
        o.transport_cc,
    )?;
    if !o.quiet {
        eprintln!(
            "  {} broadcasters set up over {} in {:.1} s (room {})",
            o.producers * (1 + o.consumers),
            server.url(),
            setup.elapsed().as_secs_f64(),
            server.room()
        );
    }
    let pid = server.pid;
    let probe = ServerProbe {
        cpu: Box::new(move || pid.and_then(procstat::process_cpu_precise)),
        wait: Box::new(move || pid.and_then(procstat::process_wait)),
    };
    // A spawned server pins worker i to core i: keep the clients off its cores where possible.
    let n = cores();
    let client_core = (server.spawned() && workers < n).then(|| n - 1);
    let result = traffic::run(&plan, eps, &traffic_cfg(o, rate, client_core), &probe)?;
    let rss_bytes = pid.and_then(procstat::process_rss_bytes).unwrap_or(0);
    let (series, workers, backend_requested) = if server.spawned() {
        (
            format!("ringsfu-http spawned w{workers}"),
            workers,
            backend.name().to_string(),
        )
    } else {
        ("ringsfu-http url".to_string(), 0, "-".to_string())
    };
    let failed = server.cleanup();
    if failed > 0 {
        eprintln!("warning: {failed} broadcaster(s) could not be deleted");
    }
    Ok(RunRecord {
        scenario: "fanout".into(),
        series,
        producers: o.producers,
        consumers_per_producer: o.consumers,
        payload: o.size,
        workers,
        backend_requested,
        // The server decides (and logs a fallback); the bench cannot see it.
        backend_used: "-".into(),
        rss_bytes,
        result,
    })
}

/// The room of the HTTP modes' broadcasters.
fn room_of(o: &Opts) -> String {
    o.room
        .clone()
        .unwrap_or_else(|| format!("bench-{}", std::process::id()))
}

/// The `server` object of the JSON report: which ringsfu `fanout` measured.
fn server_json(o: &Opts) -> serde_json::Value {
    match &o.server {
        ServerChoice::InProcess => serde_json::json!({"mode": "in-process"}),
        ServerChoice::Url(url, pid) => {
            serde_json::json!({"mode": "url", "url": url, "pid": pid, "room": room_of(o)})
        }
        ServerChoice::Spawn(bin) => {
            serde_json::json!({"mode": "spawned", "binary": bin, "room": room_of(o)})
        }
    }
}

fn run_floor(o: &Opts, rate: f64) -> Result<RunRecord, BoxError> {
    let n = cores();
    let eps = Endpoints::bind_loopback(o.producers, o.producers * o.consumers)?;
    let caddrs: Vec<_> = eps
        .consumers
        .iter()
        .map(|s| s.local_addr())
        .collect::<Result<_, _>>()?;
    let (floor, plan) = Floor::start(
        o.producers,
        &caddrs,
        o.consumers,
        o.size >= 1000,
        o.suite,
        o.floor_sockets,
        0,
    )?;
    let floor = std::sync::Arc::new(floor);
    let f2 = std::sync::Arc::clone(&floor);
    let tid = floor.tid;
    let probe = ServerProbe {
        cpu: Box::new(move || f2.cpu()),
        wait: Box::new(move || procstat::thread_wait(tid)),
    };
    let client_core = (n > 1).then(|| n - 1);
    let result = traffic::run(&plan, eps, &traffic_cfg(o, rate, client_core), &probe)?;
    Ok(RunRecord {
        scenario: "floor".into(),
        series: match o.floor_sockets {
            FloorSockets::PerConsumer => "floor".into(),
            FloorSockets::Shared => "floor shared-socket".into(),
        },
        producers: o.producers,
        consumers_per_producer: o.consumers,
        payload: o.size,
        workers: 0,
        backend_requested: "epoll".into(),
        backend_used: "epoll".into(),
        rss_bytes: procstat::rss_bytes(),
        result,
    })
}

fn run_external(o: &Opts, rate: f64) -> Result<RunRecord, BoxError> {
    let path = o.plan.as_deref().ok_or("external needs --plan FILE")?;
    let plan = plan::Plan::load(path)?;
    let eps = Endpoints::bind_plan(&plan)?;
    let pid = plan.server_pid;
    let probe = ServerProbe {
        cpu: Box::new(move || pid.and_then(procstat::process_cpu_precise)),
        wait: Box::new(move || pid.and_then(procstat::process_wait)),
    };
    let result = traffic::run(&plan, eps, &traffic_cfg(o, rate, None), &probe)?;
    let per = plan.consumers.len() / plan.producers.len().max(1);
    Ok(RunRecord {
        scenario: "external".into(),
        series: "external".into(),
        producers: plan.producers.len(),
        consumers_per_producer: per,
        payload: o.size,
        workers: 0,
        backend_requested: "-".into(),
        backend_used: "-".into(),
        rss_bytes: 0,
        result,
    })
}

/// One measurement at one rate, for the chosen scenario (and the floor beside it if asked).
fn measure(
    o: &Opts,
    rate: f64,
    workers: usize,
    backend: IoBackend,
    out: &mut Vec<RunRecord>,
) -> Result<RunRecord, BoxError> {
    let r = match o.scenario.as_str() {
        "fanout" => run_fanout(o, rate, workers, backend)?,
        "floor" => run_floor(o, rate)?,
        _ => run_external(o, rate)?,
    };
    print_one(&r);
    out.push(r.clone());
    if o.compare_floor && o.scenario == "fanout" {
        let f = run_floor(o, rate)?;
        print_one(&f);
        if let (Some(a), Some(b)) = (
            r.result.server_cpu_us_per_fwd,
            f.result.server_cpu_us_per_fwd,
        ) {
            eprintln!(
                "  server / floor CPU per forwarded packet: {:.2}x ({a:.2} vs {b:.2} us)",
                a / b
            );
        }
        out.push(f);
    }
    Ok(r)
}

fn print_one(r: &RunRecord) {
    let t = &r.result;
    eprintln!(
        "  {}: offered {:.0} pps -> forwarded {:.0} pps, loss {:.3}%, p50/p99/p99.9 {:.0}/{:.0}/{:.0} us, server {} us/fwd ({}% cpu)",
        r.series,
        t.offered_pps,
        t.forwarded_pps,
        t.loss_pct,
        t.latency_p50_us,
        t.latency_p99_us,
        t.latency_p999_us,
        t.server_cpu_us_per_fwd.map(|v| format!("{v:.2}")).unwrap_or("-".into()),
        t.server_cpu_pct.map(|v| format!("{v:.0}")).unwrap_or("-".into()),
    );
    for w in &t.warnings {
        eprintln!("  WARNING: {w}");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("soak") {
        std::process::exit(soak::main(&args[1..]));
    }
    let o = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&o) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(o: &Opts) -> Result<(), BoxError> {
    if o.scenario == "webrtc" {
        return run_webrtc(o);
    }
    if o.scenario == "idle" {
        let r = idle::run(o.count, o.backend, cores())?;
        println!(
            "idle: {} WebRtcTransports: RSS {:.1} -> {:.1} MB, {:.0} bytes per transport, create {:.1} us each, idle worker CPU {:.2}%",
            r.transports,
            r.rss_before as f64 / 1048576.0,
            r.rss_after as f64 / 1048576.0,
            r.rss_per_transport,
            r.create_us_per_transport,
            r.idle_cpu_pct
        );
        if let Some(p) = &o.json {
            std::fs::write(
                p,
                serde_json::to_string_pretty(&serde_json::json!({"idle": r}))?,
            )?;
        }
        return Ok(());
    }
    let base_rate = o.rate.unwrap_or(50.0 * o.producers as f64);
    let mut runs = Vec::new();
    let worker_counts: Vec<usize> = if o.worker_sweep {
        (1..=cores()).collect()
    } else {
        vec![o.workers]
    };
    let backends: Vec<IoBackend> = if o.ab {
        vec![
            IoBackend::Epoll,
            IoBackend::IoUring,
            IoBackend::Epoll,
            IoBackend::IoUring,
        ]
    } else {
        vec![o.backend]
    };
    let mut best = Vec::new();
    for &workers in &worker_counts {
        for &backend in &backends {
            let mut rate = base_rate;
            let mut last_good = None;
            for step in 0..if o.sweep { o.sweep_steps } else { 1 } {
                // external: the plan, not --producers/--consumers, says how many streams run.
                let shape = match (&o.plan, o.scenario.as_str()) {
                    (Some(p), "external") => format!("plan {p}"),
                    _ => format!("{}x{}", o.producers, o.consumers),
                };
                eprintln!(
                    "{} {} size {} rate {:.0} pps{}",
                    o.scenario,
                    shape,
                    o.size,
                    rate,
                    if o.sweep {
                        format!(" (sweep step {})", step + 1)
                    } else {
                        String::new()
                    }
                );
                let r = measure(o, rate, workers, backend, &mut runs)?;
                if r.result.loss_pct >= 0.1 || r.result.client_bound {
                    break;
                }
                last_good = Some(rate);
                rate *= o.sweep_factor;
            }
            if o.sweep {
                best.push(format!(
                    "workers {workers} {}: highest offered rate with <0.1% loss: {}",
                    backend.name(),
                    last_good
                        .map(|r| format!("{r:.0} pps"))
                        .unwrap_or("none".into())
                ));
            }
        }
    }
    println!("{}", report::table(&runs));
    for b in &best {
        println!("{b}");
    }
    if let Some(p) = &o.json {
        std::fs::write(
            p,
            serde_json::to_string_pretty(
                &serde_json::json!({"runs": runs, "sweep_best": best, "server": server_json(o)}),
            )?,
        )?;
    }
    if o.sweep {
        let svg_path = o.svg.clone().unwrap_or_else(|| match &o.json {
            Some(j) => format!("{}.svg", j.trim_end_matches(".json")),
            None => "sweep.svg".into(),
        });
        let title = format!(
            "{} {}x{} payload {} B",
            o.scenario, o.producers, o.consumers, o.size
        );
        std::fs::write(&svg_path, report::sweep_svg(&runs, &title))?;
        println!("plot: {svg_path}");
    }
    Ok(())
}

/// The `webrtc` scenario: one run, its table row, join times, and the JSON (`runs` + `join`).
fn run_webrtc(o: &Opts) -> Result<(), BoxError> {
    if o.workers != 1 || o.sweep || o.worker_sweep || o.ab || o.compare_floor {
        return Err("webrtc: one router on one worker: --workers 1, no --sweep/--worker-sweep/--ab/--compare-floor".into());
    }
    let rate = o.rate.unwrap_or(50.0);
    eprintln!(
        "webrtc {}x{} size {} rate {rate:.0} pps per publisher",
        o.producers, o.consumers, o.size
    );
    let cfg = webrtc::WebRtcConfig {
        publishers: o.producers,
        subscribers: o.consumers,
        payload: o.size,
        rate_per_publisher: rate,
        warmup: Duration::from_secs_f64(o.warmup),
        duration: Duration::from_secs_f64(o.duration),
        drain: Duration::from_millis(300),
        backend: o.backend,
        cores: cores(),
        max_packets: o.max_packets,
        progress: !o.quiet,
        flood_pps: o.flood,
    };
    let out = webrtc::run(&cfg)?;
    print_one(&out.record);
    println!("{}", report::table(std::slice::from_ref(&out.record)));
    let j = &out.join;
    println!(
        "join ({} subscribers x {} consumers, request -> first packet of every consumer): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; all joined after {:.0} ms",
        j.subscribers, j.consumers_per_subscriber, j.join_ms_p50, j.join_ms_p99, j.join_ms_max, j.all_joined_ms
    );
    println!(
        "  medians since request: transport created {:.1} ms, ICE connected {:.1} ms, DTLS connected {:.1} ms, consumers created {:.1} ms, first packets {:.1} ms",
        j.created_ms_p50, j.ice_ms_p50, j.dtls_ms_p50, j.consumed_ms_p50, j.join_ms_p50
    );
    if let Some(f) = &out.flood {
        println!(
            "flood: offered {:.0} pps, sent {:.0} pps ({} packets: {} garbage, {} RTP-looking, {} STUN; {} refused by the local socket) over {:.1} s; the worker received {} datagrams meanwhile",
            f.offered_pps, f.sent_pps, f.sent.sent, f.sent.by_kind[0], f.sent.by_kind[1], f.sent.by_kind[2], f.sent.send_errors, f.sent.seconds, f.worker_datagrams_received
        );
        let drops: Vec<String> = f
            .drops
            .iter()
            .filter(|(_, v)| *v > 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!("  worker drops by reason: {}", drops.join(", "));
    }
    if let Some(p) = &o.json {
        std::fs::write(
            p,
            serde_json::to_string_pretty(
                &serde_json::json!({"runs": [out.record], "join": out.join, "flood": out.flood}),
            )?,
        )?;
    }
    Ok(())
}
