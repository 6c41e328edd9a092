//! The idle scenario: K WebRtcTransports that never connect, to see what one costs in memory.

use std::time::Instant;

use ringsfu_core::io::IoBackend;

use crate::procstat;
use crate::server::{InProcessServer, ServerError};

/// Outcome of the idle scenario.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IdleResult {
    /// Transports created.
    pub transports: usize,
    /// RSS before creating them, bytes.
    pub rss_before: u64,
    /// RSS after, bytes.
    pub rss_after: u64,
    /// (after − before) / transports, bytes.
    pub rss_per_transport: f64,
    /// Creation time per transport, microseconds.
    pub create_us_per_transport: f64,
    /// Worker CPU over the idle second after creation (timers of idle transports), percent.
    pub idle_cpu_pct: f64,
}

/// Creates `count` idle transports on one worker and measures RSS growth.
pub fn run(count: usize, backend: IoBackend, cores: usize) -> Result<IdleResult, ServerError> {
    let server = InProcessServer::start(1, backend, cores, true)?;
    // Let allocator arenas of the fresh threads settle before the baseline.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let before = procstat::rss_bytes();
    let t = Instant::now();
    server.create_idle_webrtc(count)?;
    let took = t.elapsed();
    let after = procstat::rss_bytes();
    let c0 = server.cpu();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let c1 = server.cpu();
    Ok(IdleResult {
        transports: count,
        rss_before: before,
        rss_after: after,
        rss_per_transport: after.saturating_sub(before) as f64 / count.max(1) as f64,
        create_us_per_transport: took.as_secs_f64() * 1e6 / count.max(1) as f64,
        idle_cpu_pct: 100.0 * c1.saturating_sub(c0).as_secs_f64(),
    })
}
