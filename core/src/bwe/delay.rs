//! Delay-based overuse detection (libwebrtc's TrendlineEstimator + OveruseDetector), shared by the
//! send side (fed by transport-cc feedback: our send times, the receiver's arrival times) and the
//! REMB receive side (fed by abs-send-time: the sender's send times, our arrival times).
//!
//! Packets are grouped in 5 ms send bursts; for consecutive groups the change in one-way delay
//! (arrival delta − send delta) is accumulated, smoothed (α = 0.9), and the least-squares slope of
//! the last 20 smoothed values against arrival time, times 4 × min(samples, 60), is compared with
//! an adaptive threshold (12.5 ms initially, adapting with k_up 0.0087 / k_down 0.039 within
//! 6..600). A trend above the threshold for 10 ms while still growing is overuse; below minus the
//! threshold, underuse (a queue drains).
//!
//! Sans-IO: times come with the samples; nothing allocates.

const BURST_US: i64 = 5_000;
const TREND_WINDOW: usize = 20;
const SMOOTHING: f64 = 0.9;
const TREND_GAIN: f64 = 4.0;

/// What the delay-based detector concluded from the last group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// Queueing delay is stable.
    Normal,
    /// Queueing delay grows: the path is overused.
    Over,
    /// Queueing delay shrinks (a queue drains).
    Under,
}

#[derive(Debug, Clone, Copy)]
struct Group {
    first_send_us: i64,
    last_send_us: i64,
    last_arrival_us: i64,
}

/// The detector's state: the open and the previous send group, and the trendline window.
#[derive(Debug, Clone)]
pub struct DelayDetector {
    group: Option<Group>,
    prev_group: Option<Group>,
    accumulated: f64,
    smoothed: f64,
    first_arrival_ms: Option<f64>,
    window: [(f64, f64); TREND_WINDOW],
    window_len: usize,
    window_pos: usize,
    samples: usize,
    threshold: f64,
    last_threshold_update_ms: Option<f64>,
    overuse_since_ms: Option<f64>,
    overuse_count: u32,
    prev_trend: f64,
    usage: Usage,
}

impl Default for DelayDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl DelayDetector {
    /// A detector that has seen nothing (usage normal).
    pub fn new() -> Self {
        Self {
            group: None,
            prev_group: None,
            accumulated: 0.0,
            smoothed: 0.0,
            first_arrival_ms: None,
            window: [(0.0, 0.0); TREND_WINDOW],
            window_len: 0,
            window_pos: 0,
            samples: 0,
            threshold: 12.5,
            last_threshold_update_ms: None,
            overuse_since_ms: None,
            overuse_count: 0,
            prev_trend: 0.0,
            usage: Usage::Normal,
        }
    }

    /// The conclusion drawn from the last completed group.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// One packet sent at `send_us` (sender's clock) arrived at `arrival_us` (receiver's
    /// clock); both in µs, any origin. Packets may come in any order.
    pub fn on_sample(&mut self, send_us: i64, arrival_us: i64) {
        match self.group.as_mut() {
            Some(g) if send_us >= g.first_send_us && send_us - g.first_send_us <= BURST_US => {
                g.last_send_us = g.last_send_us.max(send_us);
                g.last_arrival_us = g.last_arrival_us.max(arrival_us);
                return;
            }
            Some(g) if send_us < g.first_send_us => return, // reordered into a closed group
            _ => {}
        }
        if let Some(done) = self.group.take() {
            if let Some(prev) = self.prev_group {
                let send_delta = (done.last_send_us - prev.last_send_us) as f64 / 1000.0;
                let arrival_delta = (done.last_arrival_us - prev.last_arrival_us) as f64 / 1000.0;
                self.on_group_delta(
                    send_delta,
                    arrival_delta,
                    done.last_arrival_us as f64 / 1000.0,
                );
            }
            self.prev_group = Some(done);
        }
        self.group = Some(Group {
            first_send_us: send_us,
            last_send_us: send_us,
            last_arrival_us: arrival_us,
        });
    }

    fn on_group_delta(&mut self, send_delta_ms: f64, arrival_delta_ms: f64, arrival_ms: f64) {
        let delta = arrival_delta_ms - send_delta_ms;
        self.samples += 1;
        self.accumulated += delta;
        self.smoothed = SMOOTHING * self.smoothed + (1.0 - SMOOTHING) * self.accumulated;
        let first = *self.first_arrival_ms.get_or_insert(arrival_ms);
        self.window[self.window_pos] = (arrival_ms - first, self.smoothed);
        self.window_pos = (self.window_pos + 1) % TREND_WINDOW;
        self.window_len = (self.window_len + 1).min(TREND_WINDOW);
        if self.window_len < TREND_WINDOW {
            return;
        }
        let slope = linear_slope(&self.window).unwrap_or(0.0);
        let trend = slope * TREND_GAIN * (self.samples.min(60) as f64);
        // Adaptive threshold.
        let dt = self
            .last_threshold_update_ms
            .map_or(0.0, |t| (arrival_ms - t).clamp(0.0, 100.0));
        self.last_threshold_update_ms = Some(arrival_ms);
        if trend.abs() - self.threshold < 15.0 {
            let k = if trend.abs() < self.threshold {
                0.039
            } else {
                0.0087
            };
            self.threshold += k * (trend.abs() - self.threshold) * dt;
            self.threshold = self.threshold.clamp(6.0, 600.0);
        }
        if trend > self.threshold {
            let since = *self.overuse_since_ms.get_or_insert(arrival_ms);
            self.overuse_count += 1;
            if arrival_ms - since >= 10.0 && self.overuse_count > 1 && trend >= self.prev_trend {
                self.usage = Usage::Over;
                self.overuse_since_ms = None;
                self.overuse_count = 0;
            }
        } else {
            self.overuse_since_ms = None;
            self.overuse_count = 0;
            self.usage = if trend < -self.threshold {
                Usage::Under
            } else {
                Usage::Normal
            };
        }
        self.prev_trend = trend;
    }
}

/// Least-squares slope of (x, y) points.
fn linear_slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (mut num, mut den) = (0.0, 0.0);
    for (x, y) in points {
        num += (x - mx) * (y - my);
        den += (x - mx) * (x - mx);
    }
    (den > 0.0).then(|| num / den)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packets every 10 ms whose one-way delay changes by `growth_us` per packet.
    fn run(d: &mut DelayDetector, from: i64, n: i64, growth_us: i64, base_delay_us: i64) -> i64 {
        let mut delay = base_delay_us;
        for i in from..from + n {
            let send = i * 10_000;
            delay = (delay + growth_us).max(0);
            d.on_sample(send, send + delay);
        }
        delay
    }

    #[test]
    fn steady_delay_is_normal_growing_is_over_draining_is_under() {
        let mut d = DelayDetector::new();
        run(&mut d, 0, 100, 0, 20_000);
        assert_eq!(d.usage(), Usage::Normal);
        let delay = run(&mut d, 100, 40, 2_000, 20_000);
        assert_eq!(d.usage(), Usage::Over, "a queue building 2 ms per packet");
        run(&mut d, 140, 30, -2_000, delay);
        assert_eq!(d.usage(), Usage::Under, "the queue drains");
    }
}
