//! A counting allocator shows that forwarding does not allocate in steady state: allocations made
//! on the worker thread are counted while it forwards tens of thousands of packets from a plain
//! producer to ten plain consumers (timers included: RTCP reports and NACK ticks run meanwhile),
//! one of which drops VP8 temporal layers above 0.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ringsfu_core::dtls::DtlsCertificate;
use ringsfu_core::engine::{ConsumeOptions, ProduceOptions};
use ringsfu_core::rtp_parameters::{MediaKind, RtpCapabilities, RtpCodecCapability};
use ringsfu_core::worker::{Worker, WorkerSettings};
use serde_json::{json, Value};
use uuid::Uuid;

#[path = "common/backend.rs"]
mod backend;

struct Counting;

thread_local! {
    static COUNT_HERE: Cell<bool> = const { Cell::new(false) };
}
static WORKER_ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNT_HERE.with(|c| c.get()) {
            WORKER_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNT_HERE.with(|c| c.get()) {
            WORKER_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CONSUMERS: usize = 10;

fn rtp(seq: u16, keyframe: bool) -> Vec<u8> {
    let mut p = vec![0x80, 101 | 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0xae];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(seq as u32 * 3000).to_be_bytes());
    // VP8 descriptor (S=1, PID 0; picture id, TL0PICIDX and the L1T3 temporal ids 0 2 1 2 with
    // layer sync, one frame per packet) and a frame header (P=0 keyframe / P=1 delta), then payload.
    let (tid, sync) = [(0u8, false), (2, true), (1, true), (2, false)][seq as usize % 4];
    let pid = seq & 0x7fff;
    p.extend([
        0x90,
        0xe0,
        0x80 | (pid >> 8) as u8,
        pid as u8,
        (seq / 4) as u8,
        tid << 6 | if sync { 0x20 } else { 0 },
    ]);
    p.extend([if keyframe { 0x00 } else { 0x01 }, 0x02, 0x00]);
    p.extend(std::iter::repeat_n(seq as u8, 1000));
    p
}

/// An RTCP generic NACK (RFC 4585) from a receiver for `seq` and `seq + 1` of `media_ssrc`.
fn nack(media_ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = vec![0x81, 205, 0, 3, 0, 0, 0, 1];
    p.extend(media_ssrc.to_be_bytes());
    p.extend(seq.to_be_bytes());
    p.extend(1u16.to_be_bytes());
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_allocates_nothing_per_packet() {
    let worker = Worker::spawn(WorkerSettings {
        index: 0,
        pin_core: None,
        listen_ip: IpAddr::from([127, 0, 0, 1]),
        announced_address: None,
        udp_port: None,
        tcp_port: None,
        rtc_port_range: (42000, 42999),
        // test.sh runs this file again with RINGSFU_IO_BACKEND=io_uring.
        backend: backend::requested_backend(),
        cert: DtlsCertificate::generate().unwrap(),
    })
    .unwrap();
    // The backend asked for is the one measured (io_uring falls back only where refused).
    backend::assert_backend_used(worker.backend());
    let codecs: Vec<RtpCodecCapability> = serde_json::from_value(json!([
        {"kind": "video", "mimeType": "video/VP8", "clockRate": 90000}
    ]))
    .unwrap();
    let router = worker
        .with_engine(move |e| e.create_router(&codecs, Instant::now()))
        .await
        .unwrap()
        .unwrap();
    let make_plain = |connect_to: Option<SocketAddr>| {
        let w = &worker;
        async move {
            w.run(move |ctx| {
                let s = ctx.bind_rtc_port().unwrap();
                ctx.with_engine(|e| {
                    let d = e
                        .create_plain_transport(
                            &router,
                            s,
                            None,
                            connect_to.is_none(),
                            false,
                            None,
                            Instant::now(),
                        )
                        .map(|v| serde_json::to_value(v).unwrap())
                        .unwrap();
                    let id: Uuid = d["id"].as_str().unwrap().parse().unwrap();
                    if let Some(a) = connect_to {
                        e.connect_plain_transport(
                            &id,
                            &serde_json::from_value(serde_json::Value::clone(
                                &json!({"ip": a.ip().to_string(), "port": a.port()}),
                            ))
                            .unwrap(),
                            Instant::now(),
                        )
                        .map(|v| serde_json::to_value(v).unwrap())
                        .unwrap();
                    }
                    (id, d)
                })
            })
            .await
            .unwrap()
        }
    };
    let (producer_t, pdata) = make_plain(None).await;
    let params = json!({
        "codecs": [{"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000,
                    "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"}]}],
        "encodings": [{"ssrc": 2222}]
    });
    let rtp_parameters = serde_json::from_value(params).unwrap();
    let p = worker
        .with_engine(move |e| {
            e.produce(
                &producer_t,
                ProduceOptions {
                    kind: MediaKind::Video,
                    rtp_parameters,
                    paused: false,
                },
                Instant::now(),
            )
            .map(|v| serde_json::to_value(v).unwrap())
        })
        .await
        .unwrap()
        .unwrap();
    let producer: Uuid = p["id"].as_str().unwrap().parse().unwrap();
    let caps: RtpCapabilities = worker
        .with_engine(move |e| e.router_rtp_capabilities(&router).unwrap().clone())
        .await
        .unwrap();
    let mut sinks = Vec::new();
    // (socket clone, consumer transport's address, consumer SSRC): each sink also sends NACKs.
    let mut nackers = Vec::new();
    let mut consumer_ids = Vec::new();
    for _ in 0..CONSUMERS {
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        sink.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let (t, tdata) = make_plain(Some(sink.local_addr().unwrap())).await;
        let caps = caps.clone();
        let c: Value = worker
            .with_engine(move |e| {
                e.consume(
                    &t,
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
            .unwrap()
            .unwrap();
        let ssrc = c["rtpParameters"]["encodings"][0]["ssrc"].as_u64().unwrap() as u32;
        let addr = SocketAddr::from((
            [127, 0, 0, 1],
            tdata["tuple"]["localPort"].as_u64().unwrap() as u16,
        ));
        let cid: Uuid = c["id"].as_str().unwrap().parse().unwrap();
        if consumer_ids.is_empty() {
            // The first consumer forwards temporal layer 0 only: the drop path (sequence
            // numbers and picture ids kept continuous, rewritten in place) is measured too.
            worker
                .with_engine(move |e| {
                    e.set_consumer_preferred_layers(&cid, 0, Some(0), Instant::now())
                })
                .await
                .unwrap()
                .unwrap();
        }
        consumer_ids.push(cid);
        nackers.push((sink.try_clone().unwrap(), addr, ssrc));
        sinks.push(sink);
    }
    let to = SocketAddr::from((
        [127, 0, 0, 1],
        pdata["tuple"]["localPort"].as_u64().unwrap() as u16,
    ));
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Each sink counts what it gets on its own thread (draining keeps socket buffers from overflowing).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let received = std::sync::Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for sink in sinks {
        let (stop, received) = (stop.clone(), received.clone());
        readers.push(std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if sink.recv(&mut buf).is_ok() {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let send_range = |from: u16, to_seq: u16| {
        for seq in from..to_seq {
            sender.send_to(&rtp(seq, seq == 0), to).unwrap();
            if seq % 32 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            // Every 100 packets each receiver NACKs two recent ones: RTCP in, answered from the
            // retransmission store, on the counted path too.
            if seq % 100 == 50 {
                for (sock, addr, ssrc) in &nackers {
                    sock.send_to(&nack(*ssrc, seq.wrapping_sub(20)), addr)
                        .unwrap();
                }
            }
        }
    };
    // Warm-up: fills the retransmission store, grows the send queue, inserts the SSRC.
    send_range(0, 2000);
    let deadline = Instant::now() + Duration::from_secs(20);
    while received.load(Ordering::Relaxed) < 1000 * (CONSUMERS as u64 - 1)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The temporal-layer preference applies once the warm-up showed the stream's temporal ids
    // (the next layer-selection tick, every 250 ms): wait for it, so the measured window runs
    // the drop path from its start.
    let first = consumer_ids[0];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let target = worker
            .with_engine(move |e| e.consumer_dump(&first).unwrap().target_temporal_layer)
            .await
            .unwrap();
        if target == 0 || Instant::now() >= deadline {
            assert_eq!(
                target, 0,
                "the preferred temporal layer 0 never became the target"
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    worker
        .run(|_| COUNT_HERE.with(|c| c.set(true)))
        .await
        .unwrap();
    let before_allocs = WORKER_ALLOCS.load(Ordering::Relaxed);
    let before_rx = received.load(Ordering::Relaxed);
    send_range(2000, 12000);
    let deadline = Instant::now() + Duration::from_secs(30);
    // The temporal-layer-0 consumer gets a quarter of the packets.
    while received.load(Ordering::Relaxed) - before_rx < 9900 * (CONSUMERS as u64 - 1) + 2400
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let allocs = WORKER_ALLOCS.load(Ordering::Relaxed) - before_allocs;
    let forwarded = received.load(Ordering::Relaxed) - before_rx;
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    // Loopback on a loaded 2-core machine may lose some; what matters is that many went through.
    eprintln!("{allocs} allocations on the worker thread for {forwarded} forwarded packets");
    // Half of what would arrive without loss (the temporal-layer-0 consumer gets a quarter).
    assert!(
        forwarded >= 5000 * (CONSUMERS as u64 - 1) + 1250,
        "forwarded only {forwarded}"
    );
    let temporal_drops = worker
        .with_engine(move |e| e.consumer_dump(&first).unwrap().temporal_drops)
        .await
        .unwrap();
    assert!(
        temporal_drops > 5000,
        "the temporal-layer-0 consumer dropped only {temporal_drops}"
    );
    // The NACKs were handled (answered from the store) on the measured path.
    let retransmitted = worker
        .with_engine(move |e| {
            consumer_ids
                .iter()
                .map(|c| {
                    e.consumer_stats(c, Instant::now())
                        .map(|v| serde_json::to_value(v).unwrap())
                        .unwrap()[0]["packetsRetransmitted"]
                        .as_u64()
                        .unwrap()
                })
                .sum::<u64>()
        })
        .await
        .unwrap();
    assert!(retransmitted > 0, "no NACK was answered");
    // Timers and the runtime may allocate a handful of times; the packet path must not at all.
    assert!(
        allocs <= 20,
        "{allocs} allocations on the worker thread while forwarding {forwarded} packets"
    );
}
