//! Receive side for remotes that negotiated REMB rather than transport-cc (they send the
//! abs-send-time extension and expect a receiver estimate back: aiortc, older libwebrtc clients).
//! Without it such a sender never learns what the path takes and stays at its start bitrate.
//!
//! What libwebrtc's RemoteBitrateEstimatorAbsSendTime does, in short: the sender's send time of
//! every packet (abs-send-time, 6.18 fixed-point seconds, wrapping every 64 s) and our arrival
//! time go to the same [`DelayDetector`] the send side uses; the incoming bitrate over the last
//! second is measured; after a second of arrivals the estimate starts at that rate (at least
//! 300 kbit/s) and an AIMD controller moves it (overuse: 0.85 × incoming, at most every 300 ms;
//! normal: +8 %/s, at most 1.5 × incoming + 10 kbit/s, never below incoming; underuse: hold). A
//! REMB carries it every second, or at once when it fell by 3 % or more; `setMaxIncomingBitrate`
//! caps what is announced.
//!
//! Sans-IO: times are passed in; nothing allocates after construction.

use std::time::{Duration, Instant};

use super::delay::{DelayDetector, Usage};
use super::rate_window::RateWindow;
use super::send::MIN_BITRATE;

/// Arrivals kept for the incoming bitrate (a second of 1,000 pps).
const RATE_RING: usize = 1024;
const RATE_WINDOW_US: i64 = 1_000_000;
/// How often the estimate is updated (and a due REMB looked for).
pub const UPDATE_INTERVAL: Duration = Duration::from_millis(100);
const REMB_INTERVAL: Duration = Duration::from_secs(1);
const DECREASE_HOLD: Duration = Duration::from_millis(300);
const GROWTH_PER_S: f64 = 1.08;
/// The estimate starts once this much of the incoming bitrate was measured.
const FIRST_MEASUREMENT: Duration = Duration::from_secs(1);
/// Where the estimate starts at least (libwebrtc's default start bitrate): a sender whose
/// content needs little (a static picture) is not told to stay that low; only overuse takes the
/// estimate below it.
const START_BITRATE: f64 = 300_000.0;

/// The REMB receive-side estimator of one transport.
pub struct RembReceiver {
    epoch: Instant,
    first_arrival: Option<Instant>,
    delay: DelayDetector,
    last_abs: Option<u32>,
    send_us: i64,
    arrivals: RateWindow,
    estimate: Option<f64>,
    last_update: Option<Instant>,
    last_decrease: Option<Instant>,
    last_sent: Option<(Instant, u64)>,
    /// Packets that carried abs-send-time.
    pub packets: u64,
    /// REMB packets due so far.
    pub rembs: u64,
}

impl RembReceiver {
    /// An estimator that has seen nothing.
    pub fn new(now: Instant) -> Self {
        Self {
            epoch: now,
            first_arrival: None,
            delay: DelayDetector::new(),
            last_abs: None,
            send_us: 0,
            arrivals: RateWindow::new(RATE_RING, RATE_WINDOW_US, 500_000),
            estimate: None,
            last_update: None,
            last_decrease: None,
            last_sent: None,
            packets: 0,
            rembs: 0,
        }
    }

    /// A packet of `size` bytes carrying abs-send-time `abs` (the extension's 24 bits) arrived
    /// at `now`.
    #[inline]
    pub fn on_packet(&mut self, abs: u32, size: usize, now: Instant) {
        let abs = abs & 0x00ff_ffff;
        if let Some(last) = self.last_abs {
            // Signed distance on the 24-bit circle (the clock wraps every 64 s).
            let mut delta = (abs.wrapping_sub(last) & 0x00ff_ffff) as i64;
            if delta >= 1 << 23 {
                delta -= 1 << 24;
            }
            self.send_us += (delta * 1_000_000) >> 18;
        }
        self.last_abs = Some(abs);
        self.first_arrival.get_or_insert(now);
        let arrival_us = now.saturating_duration_since(self.epoch).as_micros() as i64;
        self.delay.on_sample(self.send_us, arrival_us);
        self.arrivals.push(arrival_us, size as u32);
        self.packets += 1;
    }

    /// What arrived over the last second (measured over at least half a second), bits/s.
    pub fn incoming_bitrate(&self, now: Instant) -> Option<f64> {
        let now_us = now.saturating_duration_since(self.epoch).as_micros() as i64;
        self.arrivals.bitrate(now_us)
    }

    /// The current estimate, once something was measured.
    pub fn estimate_bps(&self) -> Option<u64> {
        self.estimate.map(|e| e as u64)
    }

    /// When [`poll`](Self::poll) next has work.
    pub fn next_due(&self) -> Option<Instant> {
        if self.packets == 0 {
            return None;
        }
        Some(self.last_update.map_or(self.epoch, |t| t + UPDATE_INTERVAL))
    }

    /// Updates the estimate and returns the bitrate to announce in a REMB now, if one is due;
    /// `cap` is `setMaxIncomingBitrate`.
    pub fn poll(&mut self, now: Instant, cap: Option<u64>) -> Option<u64> {
        if self.next_due().is_none_or(|t| now < t) {
            return None;
        }
        self.update(now);
        let mut bps = self.estimate? as u64;
        if let Some(c) = cap {
            bps = bps.min(c);
        }
        let due = match self.last_sent {
            None => true,
            Some((t, last)) => {
                now.saturating_duration_since(t) >= REMB_INTERVAL || bps * 100 <= last * 97
            }
        };
        if !due {
            return None;
        }
        self.last_sent = Some((now, bps));
        self.rembs += 1;
        Some(bps)
    }

    fn update(&mut self, now: Instant) {
        let dt = self.last_update.map_or(0.0, |t| {
            now.saturating_duration_since(t).as_secs_f64().min(1.0)
        });
        self.last_update = Some(now);
        if self
            .first_arrival
            .is_none_or(|t| now.saturating_duration_since(t) < FIRST_MEASUREMENT)
        {
            return;
        }
        let Some(incoming) = self.incoming_bitrate(now) else {
            return;
        };
        let mut est = *self.estimate.get_or_insert(incoming.max(START_BITRATE));
        let may_decrease = self
            .last_decrease
            .is_none_or(|t| now.saturating_duration_since(t) >= DECREASE_HOLD);
        match self.delay.usage() {
            Usage::Over if may_decrease => {
                est = est.min(0.85 * incoming);
                self.last_decrease = Some(now);
            }
            Usage::Over | Usage::Under => {}
            Usage::Normal => {
                let grown = est * GROWTH_PER_S.powf(dt) + 1000.0 * dt;
                // Never below what already gets through while the delay is fine.
                est = grown.min(1.5 * incoming + 10_000.0).max(est).max(incoming);
            }
        }
        self.estimate = Some(est.max(MIN_BITRATE as f64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `n` packets of 1,000 bytes every `gap` (sender's clock) starting at `from`; each
    /// arrives `delay(i)` later. Polls every 100 ms of arrival time; returns the REMBs sent.
    fn drive(
        r: &mut RembReceiver,
        t0: Instant,
        from: Duration,
        n: u32,
        gap: Duration,
        delay: impl Fn(u32) -> Duration,
        cap: Option<u64>,
    ) -> Vec<u64> {
        let mut rembs = Vec::new();
        for i in 0..n {
            let sent = from + gap * i;
            let abs = ((sent.as_micros() << 18) / 1_000_000) as u32 & 0x00ff_ffff;
            let at = t0 + sent + delay(i);
            r.on_packet(abs, 1000, at);
            if let Some(b) = r.poll(at, cap) {
                rembs.push(b);
            }
        }
        rembs
    }

    #[test]
    fn clean_path_grows_the_estimate_above_what_arrives() {
        let t0 = Instant::now();
        let mut r = RembReceiver::new(t0);
        // 400 kbit/s for 10 s with constant delay.
        let rembs = drive(
            &mut r,
            t0,
            Duration::ZERO,
            500,
            Duration::from_millis(20),
            |_| Duration::from_millis(30),
            None,
        );
        assert!(rembs.len() >= 8, "about one REMB a second: {rembs:?}");
        let last = *rembs.last().unwrap();
        assert!(
            last > 500_000,
            "the sender is told it may send more: {rembs:?}"
        );
        assert!(
            last < 700_000,
            "but not more than 1.5 × what arrives: {rembs:?}"
        );
    }

    #[test]
    fn growing_queue_cuts_the_estimate_at_once_and_the_cap_holds() {
        let t0 = Instant::now();
        let mut r = RembReceiver::new(t0);
        let before = drive(
            &mut r,
            t0,
            Duration::ZERO,
            250,
            Duration::from_millis(20),
            |_| Duration::from_millis(30),
            None,
        );
        let high = *before.last().unwrap();
        // The path now queues 3 ms more per packet.
        let after = drive(
            &mut r,
            t0,
            Duration::from_secs(5),
            50,
            Duration::from_millis(20),
            |i| Duration::from_millis(30 + 3 * u64::from(i)),
            None,
        );
        let low = *after.iter().min().expect("a REMB on the decrease");
        assert!(low * 100 <= high * 90, "cut from {high} to {low}");
        let capped = drive(
            &mut r,
            t0,
            Duration::from_secs(7),
            100,
            Duration::from_millis(20),
            |_| Duration::from_millis(200),
            Some(100_000),
        );
        assert!(
            !capped.is_empty() && capped.iter().all(|&b| b <= 100_000),
            "{capped:?}"
        );
    }

    #[test]
    fn abs_send_time_wraps_every_64_seconds() {
        let t0 = Instant::now();
        let mut r = RembReceiver::new(t0);
        r.on_packet(0x00ff_fff0, 100, t0);
        r.on_packet(0x0000_0010, 100, t0 + Duration::from_micros(122));
        // 0x20 units of 1/2^18 s = 122 µs later, not 64 s earlier.
        assert_eq!(r.send_us, 122);
    }
}
