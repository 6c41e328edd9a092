//! Send side: the history of packets we sent with our own transport-wide sequence numbers, and a
//! GoogCC-like estimate fed by the receiver's transport-cc feedback about them.
//!
//! * Delay-based: packets are grouped in 5 ms send bursts; for consecutive groups the change in
//!   one-way delay (arrival delta − send delta) is accumulated, smoothed (α = 0.9), and the slope
//!   of the last 20 smoothed values against arrival time (least squares) is compared with an
//!   adaptive threshold (libwebrtc's TrendlineEstimator: gain 4, threshold 12.5 ms adapting with
//!   k_up 0.0087 / k_down 0.039 within 6..600). Overuse sustained 10 ms → decrease.
//! * AIMD: on overuse the estimate becomes 0.85 × the acknowledged bitrate (what the receiver
//!   got over the last 500 ms); otherwise it grows 8 % per second. Growth is not capped by the
//!   acknowledged rate (no padding probes are sent yet, so this is how the estimate finds room
//!   for a higher layer; an overuse brings it back).
//! * Loss-based: loss over 10 % in a feedback round cuts the estimate by half the loss fraction.
//!
//! Sans-IO: times are passed in; nothing allocates after construction.

use std::time::{Duration, Instant};

use super::twcc::{PacketResult, SeqUnwrapper, TransportCcFeedback};

const HISTORY: usize = 4096;
const BURST_US: i64 = 5_000;
const TREND_WINDOW: usize = 20;
const SMOOTHING: f64 = 0.9;
const TREND_GAIN: f64 = 4.0;
const ACKED_WINDOW_US: i64 = 500_000;

/// Lowest estimate reported.
pub const MIN_BITRATE: u64 = 30_000;
/// Estimate used when none was configured.
pub const DEFAULT_INITIAL_BITRATE: u64 = 600_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Usage {
    Normal,
    Over,
    Under,
}

/// The send-side estimator of one transport.
pub struct SendSideBwe {
    epoch: Instant,
    next_seq: u16,
    /// (unwrapped seq, send time µs, size) per slot.
    sent: Box<[(i64, i64, u32)]>,
    sent_unwrap: SeqUnwrapper,
    fb_unwrap: SeqUnwrapper,
    estimate: f64,
    max: f64,
    // Delay-based state.
    group: Option<Group>,
    prev_group: Option<Group>,
    accumulated: f64,
    smoothed: f64,
    first_arrival_ms: Option<f64>,
    window: [(f64, f64); TREND_WINDOW],
    window_len: usize,
    window_pos: usize,
    threshold: f64,
    last_threshold_update_ms: Option<f64>,
    overuse_since_ms: Option<f64>,
    prev_trend: f64,
    usage: Usage,
    last_update: Option<Instant>,
    last_decrease: Option<Instant>,
    // Acknowledged bitrate: (arrival µs, size) ring of the last received packets.
    acked: [(i64, u32); 256],
    acked_pos: usize,
    acked_len: usize,
    /// Whether any feedback arrived.
    pub has_feedback: bool,
    /// Feedback packets processed.
    pub feedbacks: u64,
    /// Loss fraction of the last feedback (0..=1).
    pub last_loss: f64,
}

#[derive(Debug, Clone, Copy)]
struct Group {
    first_send_us: i64,
    last_send_us: i64,
    last_arrival_us: i64,
}

impl SendSideBwe {
    /// A new estimator starting at `initial_bps` (0: the default) and never above `max_bps`
    /// (0: 100 Mbit/s).
    pub fn new(now: Instant, initial_bps: u64, max_bps: u64) -> Self {
        let max = if max_bps == 0 { 100_000_000 } else { max_bps } as f64;
        let initial = if initial_bps == 0 {
            DEFAULT_INITIAL_BITRATE
        } else {
            initial_bps
        } as f64;
        Self {
            epoch: now,
            next_seq: 1,
            sent: vec![(-1, 0, 0); HISTORY].into_boxed_slice(),
            sent_unwrap: SeqUnwrapper::default(),
            fb_unwrap: SeqUnwrapper::default(),
            estimate: initial.min(max),
            max,
            group: None,
            prev_group: None,
            accumulated: 0.0,
            smoothed: 0.0,
            first_arrival_ms: None,
            window: [(0.0, 0.0); TREND_WINDOW],
            window_len: 0,
            window_pos: 0,
            threshold: 12.5,
            last_threshold_update_ms: None,
            overuse_since_ms: None,
            prev_trend: 0.0,
            usage: Usage::Normal,
            last_update: None,
            last_decrease: None,
            acked: [(0, 0); 256],
            acked_pos: 0,
            acked_len: 0,
            has_feedback: false,
            feedbacks: 0,
            last_loss: 0.0,
        }
    }

    /// The current estimate in bits per second.
    pub fn estimate_bps(&self) -> u64 {
        self.estimate as u64
    }

    /// Sets the upper bound (`setMaxOutgoingBitrate`; 0 removes it).
    pub fn set_max_bitrate(&mut self, bps: u64) {
        self.max = if bps == 0 { 100_000_000.0 } else { bps as f64 };
        self.estimate = self.estimate.min(self.max);
    }

    /// Allocates the transport-wide sequence number of a packet of `size` bytes sent at `now`.
    #[inline]
    pub fn on_packet_sent(&mut self, size: usize, now: Instant) -> u16 {
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        let s = self.sent_unwrap.unwrap(seq);
        let at = now.saturating_duration_since(self.epoch).as_micros() as i64;
        self.sent[(s as usize) & (HISTORY - 1)] = (s, at, size as u32);
        seq
    }

    fn lookup(&self, s: i64) -> Option<(i64, u32)> {
        let e = self.sent[(s as usize) & (HISTORY - 1)];
        (e.0 == s).then_some((e.1, e.2))
    }

    /// Feeds one transport-cc feedback received at `now`.
    pub fn on_feedback(&mut self, fb: &TransportCcFeedback<'_>, now: Instant) {
        self.has_feedback = true;
        self.feedbacks += 1;
        let mut arrival = fb.reference_time_us();
        let mut lost = 0u32;
        let mut total = 0u32;
        let mut packets = [(0i64, 0i64, 0u32); 512];
        let mut n = 0;
        fb.for_each(|PacketResult { seq, delta_us }| {
            total += 1;
            let s = self.fb_unwrap.unwrap(seq);
            match delta_us {
                None => lost += 1,
                Some(d) => {
                    arrival += d;
                    if let Some((send, size)) = self.lookup(s) {
                        if n < packets.len() {
                            packets[n] = (send, arrival, size);
                            n += 1;
                        }
                    }
                }
            }
        });
        for &(send, arr, size) in &packets[..n] {
            self.acked[self.acked_pos] = (arr, size);
            self.acked_pos = (self.acked_pos + 1) % self.acked.len();
            self.acked_len = (self.acked_len + 1).min(self.acked.len());
            self.on_delay_sample(send, arr);
        }
        self.last_loss = if total > 0 {
            lost as f64 / total as f64
        } else {
            0.0
        };
        self.update_estimate(now);
    }

    /// What the receiver got over the last 500 ms of arrivals, in bits per second.
    pub fn acked_bitrate(&self) -> Option<f64> {
        if self.acked_len < 4 {
            return None;
        }
        let newest = (self.acked_pos + self.acked.len() - 1) % self.acked.len();
        let end = self.acked[newest].0;
        let mut bytes = 0u64;
        let mut first = end;
        for i in 0..self.acked_len {
            let (t, size) = self.acked[(newest + self.acked.len() - i) % self.acked.len()];
            if end - t > ACKED_WINDOW_US {
                break;
            }
            bytes += size as u64;
            first = t;
        }
        let span = (end - first).max(50_000) as f64 / 1e6;
        Some(bytes as f64 * 8.0 / span)
    }

    fn on_delay_sample(&mut self, send_us: i64, arrival_us: i64) {
        match self.group.as_mut() {
            Some(g) if send_us - g.first_send_us <= BURST_US => {
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
                self.on_group_delta(send_delta, arrival_delta, done.last_arrival_us as f64 / 1000.0);
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
        let trend = slope * TREND_GAIN * (self.window_len.min(60) as f64);
        // Adaptive threshold.
        let dt = self
            .last_threshold_update_ms
            .map_or(0.0, |t| (arrival_ms - t).min(100.0));
        self.last_threshold_update_ms = Some(arrival_ms);
        if (trend.abs() - self.threshold) < 15.0 {
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
            if arrival_ms - since >= 10.0 && trend >= self.prev_trend {
                self.usage = Usage::Over;
            }
        } else {
            self.overuse_since_ms = None;
            self.usage = if trend < -self.threshold {
                Usage::Under
            } else {
                Usage::Normal
            };
        }
        self.prev_trend = trend;
    }

    fn update_estimate(&mut self, now: Instant) {
        let dt = self
            .last_update
            .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64().min(1.0));
        self.last_update = Some(now);
        let acked = self.acked_bitrate();
        let recently_decreased = self
            .last_decrease
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_millis(300));
        match self.usage {
            Usage::Over if !recently_decreased => {
                let base = acked.unwrap_or(self.estimate).min(self.estimate);
                self.estimate = 0.85 * base;
                self.last_decrease = Some(now);
            }
            Usage::Over | Usage::Under => {}
            Usage::Normal => {
                self.estimate *= 1.08f64.powf(dt);
                self.estimate += 1000.0 * dt;
            }
        }
        if self.last_loss > 0.1 && !recently_decreased {
            self.estimate *= 1.0 - 0.5 * self.last_loss;
            self.last_decrease = Some(now);
        }
        self.estimate = self.estimate.clamp(MIN_BITRATE as f64, self.max);
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
    use super::super::twcc::{write_transport_cc, FeedbackHeader, TwccReceiver};
    use super::*;

    /// Simulates a bottleneck link of `capacity_bps` (FIFO queue, no loss) with `send_bps` of
    /// 1200-byte packets for `secs`; returns the estimate over time.
    fn run(bwe: &mut SendSideBwe, t0: Instant, start_s: f64, secs: f64, capacity_bps: f64) -> Vec<u64> {
        let mut rx = TwccReceiver::new(t0);
        let mut link_free_us = (start_s * 1e6) as i64;
        let mut t_us = (start_s * 1e6) as i64;
        let end_us = ((start_s + secs) * 1e6) as i64;
        let mut buf = [0u8; 1500];
        let mut out = vec![];
        let mut next_fb = t_us + 100_000;
        let mut pending: Vec<(u16, i64)> = vec![];
        while t_us < end_us {
            // Send at the current estimate.
            let rate = bwe.estimate_bps() as f64;
            let gap_us = (1200.0 * 8.0 / rate * 1e6) as i64;
            let now = t0 + Duration::from_micros(t_us as u64);
            let seq = bwe.on_packet_sent(1200, now);
            let tx_us = (1200.0 * 8.0 / capacity_bps * 1e6) as i64;
            link_free_us = link_free_us.max(t_us) + tx_us;
            pending.push((seq, link_free_us + 20_000));
            t_us += gap_us.max(100);
            while next_fb <= t_us {
                pending.retain(|&(s, at)| {
                    if at <= next_fb {
                        rx.on_packet(s, 1, t0 + Duration::from_micros(at as u64));
                        false
                    } else {
                        true
                    }
                });
                while let Some(n) = rx.write_feedback(9, &mut buf) {
                    let fb = TransportCcFeedback::parse(&buf[12..n]).unwrap();
                    bwe.on_feedback(&fb, t0 + Duration::from_micros(next_fb as u64));
                }
                out.push(bwe.estimate_bps());
                next_fb += 100_000;
            }
        }
        out
    }

    #[test]
    fn estimate_settles_under_a_bottleneck_and_grows_without_one() {
        let t0 = Instant::now();
        let mut bwe = SendSideBwe::new(t0, 1_000_000, 0);
        let est = run(&mut bwe, t0, 0.0, 20.0, 500_000.0);
        let tail = &est[est.len() - 50..];
        let max = *tail.iter().max().unwrap();
        assert!(max < 800_000, "settles near 500k under a 500k link: {tail:?}");
        let avg = tail.iter().sum::<u64>() / tail.len() as u64;
        assert!(avg > 250_000, "does not collapse: {tail:?}");
        // Link lifted: grows again.
        let est = run(&mut bwe, t0, 20.0, 20.0, 10_000_000.0);
        assert!(*est.last().unwrap() > 1_500_000, "climbs after the limit is lifted: {est:?}");
    }

    #[test]
    fn loss_cuts_and_max_caps() {
        let t0 = Instant::now();
        let mut bwe = SendSideBwe::new(t0, 2_000_000, 3_000_000);
        for i in 0..100u16 {
            bwe.on_packet_sent(1000, t0 + Duration::from_millis(i as u64));
        }
        // 50 % loss reported.
        let symbols: Vec<u8> = (0..100).map(|i| (i % 2) as u8).collect();
        let deltas = vec![8i16; 50];
        let mut buf = [0u8; 600];
        let n = write_transport_cc(
            &mut buf,
            &FeedbackHeader { sender_ssrc: 1, media_ssrc: 2, base_seq: 1, reference_time: 0, fb_count: 0 },
            &symbols,
            &deltas,
        )
        .unwrap();
        let fb = TransportCcFeedback::parse(&buf[12..n]).unwrap();
        bwe.on_feedback(&fb, t0 + Duration::from_millis(200));
        assert!(bwe.estimate_bps() <= 1_500_000, "{}", bwe.estimate_bps());
        bwe.set_max_bitrate(200_000);
        assert_eq!(bwe.estimate_bps(), 200_000);
    }
}
