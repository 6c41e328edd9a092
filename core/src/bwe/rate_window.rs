//! A received-bitrate meter: a fixed ring of the last (arrival, size) samples and the bitrate
//! over a trailing window of them. Both estimators measure what arrived this way: the send side
//! from the arrivals a transport-cc feedback acknowledges, the REMB receive side from the
//! packets it receives.
//!
//! Sans-IO and allocation-free after construction: arrival times are µs on the caller's clock.

/// The last `capacity` (arrival µs, bytes) samples.
pub struct RateWindow {
    samples: Box<[(i64, u32)]>,
    pos: usize,
    len: usize,
    window_us: i64,
    min_span_us: i64,
}

impl RateWindow {
    /// A meter keeping `capacity` samples that measures over the last `window_us` µs, dividing
    /// by at least `min_span_us` (so a burst read at once does not count as a huge rate).
    pub fn new(capacity: usize, window_us: i64, min_span_us: i64) -> Self {
        Self {
            samples: vec![(0, 0); capacity.max(1)].into_boxed_slice(),
            pos: 0,
            len: 0,
            window_us,
            min_span_us,
        }
    }

    /// Records `bytes` arriving at `at_us`.
    #[inline]
    pub fn push(&mut self, at_us: i64, bytes: u32) {
        let cap = self.samples.len();
        self.samples[self.pos] = (at_us, bytes);
        self.pos = (self.pos + 1) % cap;
        self.len = (self.len + 1).min(cap);
    }

    /// The arrival time of the newest sample.
    pub fn newest(&self) -> Option<i64> {
        let cap = self.samples.len();
        (self.len > 0).then(|| self.samples[(self.pos + cap - 1) % cap].0)
    }

    /// Bits per second of the samples that arrived within the window before `end_us`; None with
    /// fewer than 4 samples in the ring or no bytes in the window.
    pub fn bitrate(&self, end_us: i64) -> Option<f64> {
        if self.len < 4 {
            return None;
        }
        let cap = self.samples.len();
        let newest = (self.pos + cap - 1) % cap;
        let mut bytes = 0u64;
        let mut first = end_us;
        for i in 0..self.len {
            let (t, size) = self.samples[(newest + cap - i) % cap];
            if end_us - t > self.window_us {
                break;
            }
            bytes += u64::from(size);
            first = first.min(t);
        }
        if bytes == 0 {
            return None;
        }
        let span = (end_us - first).max(self.min_span_us) as f64 / 1e6;
        Some(bytes as f64 * 8.0 / span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_over_the_window_only() {
        let mut w = RateWindow::new(16, 1_000_000, 100_000);
        assert_eq!(w.bitrate(0), None);
        // 1,250 bytes every 100 ms; a big sample 2 s before is in the ring but not the window.
        w.push(-2_000_000, 1_000_000);
        for i in 0..=10 {
            w.push(i * 100_000, 1_250);
        }
        let bps = w.bitrate(1_000_000).unwrap();
        assert!((bps - 11.0 * 1_250.0 * 8.0).abs() < 1.0, "{bps}");
        // A ring of 8 keeps only the newest 8 samples: 8 × 1,250 B over 0.7 s.
        let mut small = RateWindow::new(8, 1_000_000, 100_000);
        for i in 0..=10 {
            small.push(i * 100_000, 1_250);
        }
        let bps = small.bitrate(1_000_000).unwrap();
        assert!((bps - 8.0 * 1_250.0 * 8.0 / 0.7).abs() < 1.0, "{bps}");
        assert_eq!(w.newest(), Some(1_000_000));
        // Nothing in the window a minute later.
        assert_eq!(w.bitrate(60_000_000), None);
    }

    #[test]
    fn a_burst_is_divided_by_the_minimum_span() {
        let mut w = RateWindow::new(16, 500_000, 100_000);
        for _ in 0..10 {
            w.push(5_000, 1_000);
        }
        assert_eq!(w.bitrate(5_000), Some(10.0 * 1_000.0 * 8.0 / 0.1));
    }
}
