//! Limits the signaling port enforces before any handler runs: concurrent protoo connections
//! per client IP, protoo requests per second per connection and per client IP. Every hit is
//! counted (process-wide, [`hits`]) and logged at most once per [`LOG_INTERVAL`] per limit.
//! The server binary uses [`note`] for its own limits (rooms, peers per room, ...), so one
//! counter family covers them all.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Shortest time between two log lines about the same limit.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Names of the limits, as configured (`limits.<name>`) and as labelled in `/metrics`.
pub const LIMIT_NAMES: &[&str] = &[
    "rooms",
    "peersPerRoom",
    "transportsPerPeer",
    "producersPerPeer",
    "consumersPerPeer",
    "requestsPerSecond",
    "requestsPerSecondPerIp",
    "connectionsPerIp",
    "httpBodyBytes",
    "idBytes",
];

/// Longest room, peer or broadcaster id (bytes of UTF-8) the signaling edges accept.
pub const MAX_ID_BYTES: usize = 256;

/// Checks an id received from the network (a room id, peer id, broadcaster id, path segment)
/// before anything is created for it: at most [`MAX_ID_BYTES`] bytes and no control character.
/// `what` names it in the error (`"roomId"`, `"broadcaster id"`); a refusal is counted as a hit
/// of limit `idBytes`. The error text names the limit; callers answer it with 400.
pub fn check_id(what: &str, id: &str) -> Result<(), String> {
    if id.len() > MAX_ID_BYTES {
        let e = format!(
            "limit idBytes ({MAX_ID_BYTES}): {what} is {} bytes long",
            id.len()
        );
        note("idBytes", &e);
        return Err(e);
    }
    if let Some(c) = id.chars().find(|c| c.is_control()) {
        let e = format!(
            "{what} contains control character U+{:04X} (limit idBytes: ids are printable text of at most {MAX_ID_BYTES} bytes)",
            c as u32
        );
        note("idBytes", &e);
        return Err(e);
    }
    Ok(())
}

struct Counter {
    hits: AtomicU64,
    /// Hits not yet reported in a log line, and when the last line was written.
    log: Mutex<(u64, Option<Instant>)>,
}

static COUNTERS: std::sync::LazyLock<Vec<Counter>> = std::sync::LazyLock::new(|| {
    LIMIT_NAMES
        .iter()
        .map(|_| Counter {
            hits: AtomicU64::new(0),
            log: Mutex::new((0, None)),
        })
        .collect()
});

/// Counts a hit of `limit` (one of [`LIMIT_NAMES`]) and logs it, at most once per
/// [`LOG_INTERVAL`] per limit (with the number of hits since the last line).
pub fn note(limit: &str, detail: &str) {
    let Some(i) = LIMIT_NAMES.iter().position(|n| *n == limit) else {
        log::warn!("limit {limit} (unknown name) hit: {detail}");
        return;
    };
    let c = &COUNTERS[i];
    c.hits.fetch_add(1, Ordering::Relaxed);
    let mut g = c.log.lock().unwrap_or_else(|e| e.into_inner());
    g.0 += 1;
    let now = Instant::now();
    if g.1.is_none_or(|t| now.duration_since(t) >= LOG_INTERVAL) {
        log::warn!(
            "limit {limit} hit ({} time(s) since the last report): {detail}",
            g.0
        );
        *g = (0, Some(now));
    }
}

/// How often each limit was hit since the process started, by name.
pub fn hits() -> Vec<(&'static str, u64)> {
    LIMIT_NAMES
        .iter()
        .zip(COUNTERS.iter())
        .map(|(n, c)| (*n, c.hits.load(Ordering::Relaxed)))
        .collect()
}

/// A token bucket: `rate` tokens per second, holding at most two seconds' worth.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub(crate) fn new(rate: u32, now: Instant) -> Bucket {
        Bucket {
            tokens: 2.0 * f64::from(rate),
            last: now,
        }
    }

    /// Takes one token if there is one. `rate` 0 means unlimited.
    pub(crate) fn take(&mut self, rate: u32, now: Instant) -> bool {
        if rate == 0 {
            return true;
        }
        let cap = 2.0 * f64::from(rate);
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * f64::from(rate)).min(cap);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct IpEntry {
    connections: u32,
    requests: Bucket,
}

/// Per-client-IP state: open protoo connections and the IP's request bucket.
#[derive(Default)]
pub(crate) struct IpTable {
    map: Mutex<HashMap<IpAddr, IpEntry>>,
}

/// An open connection counted against its IP; uncounted when dropped.
pub(crate) struct ConnGuard {
    table: Arc<IpTable>,
    ip: IpAddr,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut map = self.table.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = map.get_mut(&self.ip) {
            e.connections = e.connections.saturating_sub(1);
            if e.connections == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl IpTable {
    /// Counts a new connection from `ip`, unless `ip` already has `max` (0: unlimited).
    pub(crate) fn connect(
        self: &Arc<Self>,
        ip: IpAddr,
        max: u32,
        request_rate: u32,
    ) -> Option<ConnGuard> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let e = map.entry(ip).or_insert_with(|| IpEntry {
            connections: 0,
            requests: Bucket::new(request_rate, Instant::now()),
        });
        if max != 0 && e.connections >= max {
            return None;
        }
        e.connections += 1;
        Some(ConnGuard {
            table: self.clone(),
            ip,
        })
    }

    /// Takes a request token of `ip` (which has a connection open).
    pub(crate) fn take_request(&self, ip: IpAddr, rate: u32) -> bool {
        if rate == 0 {
            return true;
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(&ip) {
            Some(e) => e.requests.take(rate, Instant::now()),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(5, t0);
        let burst = (0..100).filter(|_| b.take(5, t0)).count();
        assert_eq!(burst, 10, "two seconds' worth");
        assert!(!b.take(5, t0));
        assert!(
            b.take(5, t0 + Duration::from_millis(200)),
            "one token after 1/5 s"
        );
        assert!(!b.take(5, t0 + Duration::from_millis(200)));
        assert!(Bucket::new(0, t0).take(0, t0), "0 = unlimited");
    }

    #[test]
    fn connections_per_ip_are_counted_and_released() {
        let t = Arc::new(IpTable::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let a = t.connect(ip, 2, 0).unwrap();
        let _b = t.connect(ip, 2, 0).unwrap();
        assert!(t.connect(ip, 2, 0).is_none());
        assert!(
            t.connect(other, 2, 0).is_some(),
            "another IP is not affected"
        );
        drop(a);
        assert!(t.connect(ip, 2, 0).is_some());
    }

    #[test]
    fn hits_are_counted_by_name() {
        let before = hits().into_iter().find(|(n, _)| *n == "rooms").unwrap().1;
        note("rooms", "test");
        note("rooms", "test");
        let after = hits().into_iter().find(|(n, _)| *n == "rooms").unwrap().1;
        assert!(after >= before + 2);
    }
}
