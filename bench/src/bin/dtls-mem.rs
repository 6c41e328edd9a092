//! `dtls-mem`: heap bytes one DTLS session holds on the server side, before and after its
//! handshake (what each connected WebRtcTransport adds to the idle transport's cost measured by
//! `ringsfu-bench idle`).
//!
//! In-process and sans-IO: `--count` server sessions (the worker's one certificate, as the engine
//! uses it) each handshake with a client session over an in-memory wire; a counting allocator
//! gives the live heap bytes. The clients and the drained output are freed before the
//! measurement, so what remains is the servers' state.
//!
//! Usage: `dtls-mem [--count N]` (default 1000, 1..=20000).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use ringsfu_core::dtls::{DtlsCertificate, DtlsOutput, DtlsRole, DtlsSession};

/// The system allocator, counting live bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to `System` unchanged; only counts the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's layout contract is passed through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: as for `alloc`/`dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Moves every pending record of `from` into `to`; true when something moved or connected.
fn pump(from: &mut DtlsSession, to: &mut DtlsSession, now: Instant, connected: &mut bool) -> bool {
    let mut records = Vec::new();
    while let Some(out) = from.poll_output() {
        match out {
            DtlsOutput::Transmit(r) => records.push(r.to_vec()),
            DtlsOutput::Connected { .. } => *connected = true,
            DtlsOutput::Failed(e) => panic!("handshake failed: {e:?}"),
            _ => {}
        }
    }
    for r in &records {
        to.handle_input(r, now);
    }
    !records.is_empty()
}

fn main() {
    let mut count = 1000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--count" => {
                count = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|n| (1..=20_000).contains(n))
                    .unwrap_or_else(|| {
                        eprintln!("--count takes 1..=20000");
                        std::process::exit(2)
                    })
            }
            other => {
                eprintln!("unknown argument {other}; usage: dtls-mem [--count N]");
                std::process::exit(2)
            }
        }
    }
    let server_cert = DtlsCertificate::generate().expect("certificate");
    let client_cert = DtlsCertificate::generate().expect("certificate");
    let server_fp = server_cert.fingerprints().last().unwrap().clone();
    let client_fp = client_cert.fingerprints().last().unwrap().clone();
    let now = Instant::now();
    let mut servers: Vec<DtlsSession> = Vec::with_capacity(count);
    let base = live();
    for _ in 0..count {
        servers.push(DtlsSession::new(
            DtlsRole::Server,
            &server_cert,
            client_fp.clone(),
            now,
        ));
    }
    let fresh = live() - base;
    let t0 = Instant::now();
    for server in servers.iter_mut() {
        let mut client = DtlsSession::new(DtlsRole::Client, &client_cert, server_fp.clone(), now);
        client.handle_timeout(now);
        let (mut c_ok, mut s_ok) = (false, false);
        for _ in 0..20 {
            let a = pump(&mut client, server, now, &mut c_ok);
            let b = pump(server, &mut client, now, &mut s_ok);
            if !a && !b {
                break;
            }
        }
        assert!(c_ok && s_ok, "handshake did not complete");
    }
    let handshakes = t0.elapsed();
    let connected = live() - base;
    let per = |bytes: isize| bytes as f64 / count as f64 / 1024.0;
    println!(
        "dtls-mem: {count} server sessions: {:.1} KiB each before the handshake, {:.1} KiB each connected \
         ({} handshakes in {:.0} ms, client side included)",
        per(fresh),
        per(connected),
        count,
        handshakes.as_secs_f64() * 1e3
    );
    drop(servers);
}
