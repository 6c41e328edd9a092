//! Send side: the history of packets a transport sent with its own transport-wide sequence
//! numbers, and a GoogCC-like estimate of the available outgoing bitrate fed by the receiver's
//! transport-cc feedback about them (or, where only that was negotiated, by its REMB).
//!
//! * **Delay-based**: [`super::delay::DelayDetector`] (libwebrtc's TrendlineEstimator) over the
//!   send times we recorded and the arrival times the feedback reports.
//! * **AIMD**: on overuse the estimate becomes 0.85 × the acknowledged bitrate (what the receiver
//!   got over the last 500 ms), at most once per 300 ms, and never below that by delay alone (an
//!   SFU cannot send less than its consumers' lowest layers); while the delay is normal and loss
//!   under 2 % it grows multiplicatively: 8 %/s, and 30 %/s once 2 s passed without a decrease;
//!   but for 5 s after a delay-based decrease, above 1.1 × the bitrate that got through then
//!   (the link's capacity as last seen) only 3 %/s, so a layer that just failed is not retried at once (this SFU sends no
//!   padding probes yet, so this is how the estimate finds room again after a limit is lifted; an
//!   overuse brings it back). Growth stops at 1.5 × the acknowledged bitrate + 100 kbps or, when
//!   the allocator said what its consumers want, 1.25 × that, whichever is higher.
//! * **Loss-based**: over windows of at least 20 reported packets, a loss fraction over 10 %
//!   cuts the estimate by half the fraction (not below half the acknowledged bitrate), over 2 %
//!   holds it.
//! * The result never exceeds `setMaxOutgoingBitrate` nor a REMB the receiver sent.
//!
//! Sans-IO: times are passed in; nothing allocates after construction.

use std::time::{Duration, Instant};

use super::delay::DelayDetector;
pub use super::delay::Usage;
use super::rate_window::RateWindow;
use super::twcc::{SeqUnwrapper, TransportCcFeedback};

const HISTORY: usize = 4096;
const ACKED_WINDOW_US: i64 = 500_000;
const ACKED_RING: usize = 512;
const DECREASE_HOLD: Duration = Duration::from_millis(300);
const FAST_GROWTH_AFTER: Duration = Duration::from_secs(2);
const FAST_GROWTH: f64 = 1.30;
/// After an overuse, growth above 1.1 × what got through then stays this slow for this long.
const NEAR_CAPACITY_GROWTH: f64 = 1.03;
const CAPACITY_MEMORY: Duration = Duration::from_secs(5);
const SLOW_GROWTH: f64 = 1.08;
/// A fall of the estimate by more than this fraction is signalled (see `take_decreased`).
const DROP_SIGNAL: f64 = 0.05;
/// How long after a decrease the path counts as congested.
pub const CONGESTION_MEMORY: Duration = Duration::from_millis(1500);

/// Lowest estimate reported.
pub const MIN_BITRATE: u64 = 30_000;
/// Estimate used when none was configured (mediasoup's `initialAvailableOutgoingBitrate`).
pub const DEFAULT_INITIAL_BITRATE: u64 = 600_000;
/// Upper bound when no `setMaxOutgoingBitrate` was given.
pub const DEFAULT_MAX_BITRATE: u64 = 100_000_000;

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
    remb: Option<f64>,
    desired: f64,
    /// Delay-based overuse detection over the feedback's send/arrival times.
    delay: DelayDetector,
    last_update: Option<Instant>,
    last_decrease: Option<Instant>,
    /// Acknowledged bitrate at the last delay-based decrease (the link's capacity, as seen then).
    capacity: Option<f64>,
    /// The estimate fell by more than [`DROP_SIGNAL`] since [`take_decreased`](Self::take_decreased)
    /// was last called.
    decreased: bool,
    /// The estimate when `decreased` was last taken.
    signalled_estimate: f64,
    /// Acknowledged bitrate: the receiver's arrival times (its clock, µs) and sizes.
    acked: RateWindow,
    // Loss window.
    loss_total: u32,
    loss_lost: u32,
    /// Feedback packets processed.
    pub feedbacks: u64,
    /// REMB packets processed.
    pub rembs: u64,
    /// Loss fraction of the last complete loss window (0..=1).
    pub last_loss: f64,
    /// Packets sent with a transport-wide sequence number.
    pub packets_sent: u64,
    /// Packets the feedback reported on (received or not).
    pub reported: u64,
    /// Packets the feedback reported as not received.
    pub reported_lost: u64,
}

impl SendSideBwe {
    /// A new estimator starting at `initial_bps` (0: [`DEFAULT_INITIAL_BITRATE`]) and never above
    /// `max_bps` (0: [`DEFAULT_MAX_BITRATE`]).
    pub fn new(now: Instant, initial_bps: u64, max_bps: u64) -> Self {
        let max = if max_bps == 0 {
            DEFAULT_MAX_BITRATE
        } else {
            max_bps
        } as f64;
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
            estimate: initial.clamp(MIN_BITRATE as f64, max.max(MIN_BITRATE as f64)),
            max,
            remb: None,
            desired: 0.0,
            delay: DelayDetector::new(),
            last_update: None,
            last_decrease: None,
            capacity: None,
            decreased: false,
            signalled_estimate: 0.0,
            acked: RateWindow::new(ACKED_RING, ACKED_WINDOW_US, 100_000),
            loss_total: 0,
            loss_lost: 0,
            feedbacks: 0,
            rembs: 0,
            last_loss: 0.0,
            packets_sent: 0,
            reported: 0,
            reported_lost: 0,
        }
    }

    /// The current estimate in bits per second.
    pub fn estimate_bps(&self) -> u64 {
        let mut e = self.estimate;
        if let Some(r) = self.remb {
            e = e.min(r);
        }
        e.clamp(MIN_BITRATE as f64, self.max.max(MIN_BITRATE as f64)) as u64
    }

    /// Whether the estimate fell by more than 5 % since the last call (the engine reallocates
    /// layers at once instead of at its next periodic allocation); clears the flag.
    pub fn take_decreased(&mut self) -> bool {
        let d = self.decreased;
        self.decreased = false;
        self.signalled_estimate = self.estimate_bps() as f64;
        d
    }

    /// Whether the path was found congested recently: a decrease (delay- or loss-based) within
    /// the last [`CONGESTION_MEMORY`]. A layer switch down made then drains the link first.
    pub fn congested(&self, now: Instant) -> bool {
        self.last_decrease
            .is_some_and(|t| now.saturating_duration_since(t) < CONGESTION_MEMORY)
    }

    /// The delay-based detector's current conclusion.
    pub fn usage(&self) -> Usage {
        self.delay.usage()
    }

    /// Sets the upper bound (`setMaxOutgoingBitrate`; 0 removes it).
    pub fn set_max_bitrate(&mut self, bps: u64) {
        self.max = if bps == 0 {
            DEFAULT_MAX_BITRATE as f64
        } else {
            bps as f64
        };
        self.estimate = self.estimate.min(self.max);
    }

    /// What the transport's consumers would send with everything they prefer (0: unknown); the
    /// estimate does not grow far beyond what is used or wanted.
    pub fn set_desired_bitrate(&mut self, bps: u64) {
        self.desired = bps as f64;
    }

    /// The transport-wide sequence number the next sent packet gets (write it into the packet,
    /// then call [`on_packet_sent`](Self::on_packet_sent) if it was really sent).
    #[inline]
    pub fn next_seq(&self) -> u16 {
        self.next_seq
    }

    /// Records that the packet carrying [`next_seq`](Self::next_seq), `size` bytes, was sent at
    /// `now`.
    #[inline]
    pub fn on_packet_sent(&mut self, size: usize, now: Instant) {
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        let s = self.sent_unwrap.unwrap(seq);
        let at = now.saturating_duration_since(self.epoch).as_micros() as i64;
        self.sent[(s as usize) & (HISTORY - 1)] = (s, at, size as u32);
        self.packets_sent += 1;
    }

    /// Whether the receiver ever answered: transport-cc feedback or a REMB arrived. Until then
    /// the estimate is only the configured initial bitrate, a guess about this receiver.
    pub fn has_feedback(&self) -> bool {
        self.feedbacks > 0 || self.rembs > 0
    }

    /// Feeds a REMB (receiver-side estimate) received at `now`: the estimate follows it when no
    /// transport-cc feedback arrives, and never exceeds it.
    pub fn on_remb(&mut self, bps: u64, now: Instant) {
        self.rembs += 1;
        self.remb = Some(bps.max(MIN_BITRATE) as f64);
        if self.feedbacks == 0 {
            self.estimate = bps as f64;
        }
        self.last_update = Some(now);
        self.note_estimate();
    }

    /// Feeds one transport-cc feedback received at `now`.
    pub fn on_feedback(&mut self, fb: &TransportCcFeedback<'_>, now: Instant) {
        self.feedbacks += 1;
        let mut arrival = fb.reference_time_us();
        let (mut lost, mut total) = (0u32, 0u32);
        // Disjoint borrows: the closure reads the history and pushes into the acked ring and
        // the delay samples; samples are buffered on the stack (no allocation).
        let mut packets = [(0i64, 0i64); 512];
        let mut n = 0;
        let sent = &self.sent;
        let unwrap = &mut self.fb_unwrap;
        let acked = &mut self.acked;
        fb.for_each(|r| {
            let s = unwrap.unwrap(r.seq);
            // The arrival clock advances with every received packet, ours or not.
            if let Some(d) = r.delta_us {
                arrival += d;
            }
            let e = sent[(s as usize) & (HISTORY - 1)];
            if e.0 != s {
                return; // not ours, or too old
            }
            total += 1;
            if r.delta_us.is_none() {
                lost += 1;
                return;
            }
            acked.push(arrival, e.2);
            if n < packets.len() {
                packets[n] = (e.1, arrival);
                n += 1;
            }
        });
        for &(send, arr) in &packets[..n] {
            self.delay.on_sample(send, arr);
        }
        self.loss_total += total;
        self.loss_lost += lost;
        self.reported += total as u64;
        self.reported_lost += lost as u64;
        let mut loss_window_done = false;
        if self.loss_total >= 20 {
            self.last_loss = self.loss_lost as f64 / self.loss_total as f64;
            self.loss_total = 0;
            self.loss_lost = 0;
            loss_window_done = true;
        }
        self.update_estimate(now, loss_window_done);
    }

    /// What the receiver got over the last 500 ms of arrivals, in bits per second.
    pub fn acked_bitrate(&self) -> Option<f64> {
        self.acked.bitrate(self.acked.newest()?)
    }

    fn update_estimate(&mut self, now: Instant, loss_window_done: bool) {
        let dt = self.last_update.map_or(0.0, |t| {
            now.saturating_duration_since(t).as_secs_f64().min(1.0)
        });
        self.last_update = Some(now);
        let acked = self.acked_bitrate();
        let since_decrease = self
            .last_decrease
            .map_or(Duration::MAX, |t| now.saturating_duration_since(t));
        let may_decrease = since_decrease >= DECREASE_HOLD;
        let lossy = self.last_loss > 0.02;
        match self.delay.usage() {
            Usage::Over if may_decrease => {
                // 0.85 × what got through. An SFU cannot send less than its consumers' lowest
                // layers, so an estimate already below that is not cut further by delay alone
                // (it would sink to the floor and never recover).
                let target = 0.85 * acked.unwrap_or(self.estimate);
                self.capacity = acked;
                if target < self.estimate {
                    self.estimate = target;
                }
                self.last_decrease = Some(now);
            }
            Usage::Over | Usage::Under => {}
            Usage::Normal if lossy => {}
            Usage::Normal => {
                let near_capacity = since_decrease < CAPACITY_MEMORY
                    && self.capacity.is_some_and(|c| self.estimate > 1.1 * c);
                let rate = if near_capacity {
                    NEAR_CAPACITY_GROWTH
                } else if since_decrease >= FAST_GROWTH_AFTER {
                    FAST_GROWTH
                } else {
                    SLOW_GROWTH
                };
                let grown = self.estimate * rate.powf(dt) + 1000.0 * dt;
                let cap = acked
                    .map_or(f64::MAX, |a| 1.5 * a + 100_000.0)
                    .max(1.25 * self.desired);
                // Growth is bounded; a cap below the current value does not cut it.
                self.estimate = grown.min(cap).max(self.estimate);
            }
        }
        if loss_window_done && self.last_loss > 0.1 && may_decrease {
            let floor = acked.map_or(0.0, |a| 0.5 * a);
            self.estimate =
                (self.estimate * (1.0 - 0.5 * self.last_loss)).max(floor.min(self.estimate));
            self.last_decrease = Some(now);
        }
        self.estimate = self
            .estimate
            .clamp(MIN_BITRATE as f64, self.max.max(MIN_BITRATE as f64));
        self.note_estimate();
    }

    /// Raises the decrease signal when the reported estimate fell far enough.
    fn note_estimate(&mut self) {
        let e = self.estimate_bps() as f64;
        if self.signalled_estimate == 0.0 || e > self.signalled_estimate {
            self.signalled_estimate = e;
        } else if e < (1.0 - DROP_SIGNAL) * self.signalled_estimate {
            self.decreased = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::twcc::{write_transport_cc, FeedbackHeader, TwccReceiver};
    use super::*;

    /// Virtual-time link: a FIFO bottleneck of `capacity_bps` with a queue of at most
    /// `queue_ms` (tail drop beyond it, like tbf), 20 ms propagation; the sender sends 1200-byte
    /// packets at the current estimate (or `fixed_rate` if set) for `secs`; the receiver's
    /// transport-cc feedback (every 100 ms) drives the estimator. Returns the estimate after
    /// every feedback.
    struct Sim {
        rx: TwccReceiver,
        t0: Instant,
        t_us: i64,
        link_free_us: i64,
        pending: Vec<(u16, i64)>,
        next_fb: i64,
    }

    impl Sim {
        fn new(t0: Instant) -> Self {
            Sim {
                rx: TwccReceiver::new(t0),
                t0,
                t_us: 0,
                link_free_us: 0,
                pending: vec![],
                next_fb: 100_000,
            }
        }

        fn run(
            &mut self,
            bwe: &mut SendSideBwe,
            secs: f64,
            capacity_bps: f64,
            queue_ms: f64,
            random_loss: u32,
        ) -> Vec<u64> {
            let end_us = self.t_us + (secs * 1e6) as i64;
            let mut buf = [0u8; 1500];
            let mut out = vec![];
            let mut k = 0u32;
            while self.t_us < end_us {
                let rate = bwe.estimate_bps() as f64;
                let gap_us = (1200.0 * 8.0 / rate * 1e6) as i64;
                let now = self.t0 + Duration::from_micros(self.t_us as u64);
                let seq = bwe.next_seq();
                bwe.on_packet_sent(1200, now);
                let tx_us = (1200.0 * 8.0 / capacity_bps * 1e6) as i64;
                let queued_us = (self.link_free_us - self.t_us).max(0);
                k += 1;
                let dropped = (queued_us as f64) > queue_ms * 1000.0
                    || (random_loss > 0 && k.is_multiple_of(random_loss));
                if !dropped {
                    self.link_free_us = self.link_free_us.max(self.t_us) + tx_us;
                    self.pending.push((seq, self.link_free_us + 20_000));
                }
                self.t_us += gap_us.max(100);
                while self.next_fb <= self.t_us {
                    let fb_at = self.next_fb;
                    let rx = &mut self.rx;
                    let t0 = self.t0;
                    self.pending.retain(|&(s, at)| {
                        if at <= fb_at {
                            rx.on_packet(s, 1, t0 + Duration::from_micros(at as u64));
                            false
                        } else {
                            true
                        }
                    });
                    while let Some(n) = self.rx.write_feedback(9, &mut buf) {
                        let fb = TransportCcFeedback::parse(&buf[12..n]).unwrap();
                        bwe.on_feedback(&fb, self.t0 + Duration::from_micros(fb_at as u64));
                    }
                    self.rx
                        .feedback_done(self.t0 + Duration::from_micros(fb_at as u64));
                    out.push(bwe.estimate_bps());
                    self.next_fb += 100_000;
                }
            }
            out
        }
    }

    #[test]
    fn estimate_rises_with_clean_feedback() {
        let t0 = Instant::now();
        let mut bwe = SendSideBwe::new(t0, 300_000, 0);
        let mut sim = Sim::new(t0);
        let est = sim.run(&mut bwe, 10.0, 50_000_000.0, 500.0, 0);
        assert!(
            *est.last().unwrap() > 1_000_000,
            "grows on a clean path: {est:?}"
        );
        assert!(est.windows(2).all(|w| w[1] >= w[0]), "never drops: {est:?}");
    }

    #[test]
    fn estimate_drops_under_queueing_delay_and_recovers_after() {
        let t0 = Instant::now();
        let mut bwe = SendSideBwe::new(t0, 1_500_000, 0);
        let mut sim = Sim::new(t0);
        assert!(!bwe.take_decreased());
        assert!(!bwe.congested(t0));
        // 500 kbit/s bottleneck with a deep queue (no loss): only the delay signal.
        let est = sim.run(&mut bwe, 5.0, 500_000.0, 5_000.0, 0);
        let first_below = est.iter().position(|&e| e < 600_000);
        assert!(
            first_below.is_some_and(|i| i <= 30),
            "drops below 600k within 3 s: {est:?}"
        );
        // The fall was signalled (once), and the path counts as congested for a while.
        assert!(bwe.take_decreased(), "decrease signalled: {est:?}");
        assert!(!bwe.take_decreased(), "signal taken");
        let last = bwe.last_decrease.expect("a decrease");
        assert!(bwe.congested(last + Duration::from_millis(100)));
        assert!(!bwe.congested(last + CONGESTION_MEMORY));
        let est = sim.run(&mut bwe, 20.0, 500_000.0, 5_000.0, 0);
        let tail = &est[est.len() - 100..];
        assert!(
            *tail.iter().max().unwrap() < 800_000,
            "stays near 500k: {tail:?}"
        );
        assert!(
            tail.iter().sum::<u64>() / tail.len() as u64 > 250_000,
            "does not collapse: {tail:?}"
        );
        // Limit lifted: within 15 s the estimate is back above 1.5 Mbit/s.
        bwe.set_desired_bitrate(2_000_000);
        let est = sim.run(&mut bwe, 15.0, 20_000_000.0, 500.0, 0);
        assert!(
            *est.last().unwrap() > 1_500_000,
            "climbs after the limit is lifted: {est:?}"
        );
    }

    #[test]
    fn loss_cuts_the_estimate() {
        let t0 = Instant::now();
        // Shallow queue (tail drop) on a 500k link: loss, little delay growth.
        let mut bwe = SendSideBwe::new(t0, 2_000_000, 0);
        let mut sim = Sim::new(t0);
        let est = sim.run(&mut bwe, 5.0, 500_000.0, 15.0, 0);
        assert!(*est.last().unwrap() < 1_000_000, "{est:?}");
        // 30 % random loss on a fast link keeps it from growing.
        let mut bwe = SendSideBwe::new(t0, 1_000_000, 0);
        let mut sim = Sim::new(t0);
        let est = sim.run(&mut bwe, 5.0, 50_000_000.0, 500.0, 3);
        assert!(*est.last().unwrap() < 1_000_000, "{est:?}");
    }

    #[test]
    fn reported_loss_max_and_remb_cap() {
        let t0 = Instant::now();
        let mut bwe = SendSideBwe::new(t0, 2_000_000, 3_000_000);
        for i in 0..100u16 {
            bwe.on_packet_sent(1000, t0 + Duration::from_millis(i as u64));
        }
        // 50 % loss reported.
        let symbols: Vec<u8> = (0..100).map(|i| (i % 2) as u8).collect();
        let deltas = vec![80i16; 50]; // 20 ms apart: 400 kbit/s acknowledged
        let mut buf = [0u8; 600];
        let n = write_transport_cc(
            &mut buf,
            &FeedbackHeader {
                sender_ssrc: 1,
                media_ssrc: 2,
                base_seq: 1,
                reference_time: 0,
                fb_count: 0,
            },
            &symbols,
            &deltas,
        )
        .unwrap();
        let fb = TransportCcFeedback::parse(&buf[12..n]).unwrap();
        bwe.on_feedback(&fb, t0 + Duration::from_millis(200));
        assert!(bwe.estimate_bps() <= 1_500_000, "{}", bwe.estimate_bps());
        assert!((bwe.last_loss - 0.5).abs() < 0.01);
        bwe.set_max_bitrate(200_000);
        assert_eq!(bwe.estimate_bps(), 200_000);
        bwe.set_max_bitrate(0);
        bwe.on_remb(100_000, t0 + Duration::from_millis(300));
        assert_eq!(bwe.estimate_bps(), 100_000);
        // Feedback about sequence numbers never sent is ignored.
        let mut fresh = SendSideBwe::new(t0, 500_000, 0);
        fresh.on_feedback(&fb, t0);
        assert_eq!(fresh.estimate_bps(), 500_000);
        assert_eq!(fresh.last_loss, 0.0);
    }

    #[test]
    fn remb_alone_drives_the_estimate() {
        let t0 = Instant::now();
        let mut bwe = SendSideBwe::new(t0, 600_000, 0);
        bwe.on_remb(2_000_000, t0);
        assert_eq!(bwe.estimate_bps(), 2_000_000);
        bwe.on_remb(400_000, t0 + Duration::from_secs(1));
        assert_eq!(bwe.estimate_bps(), 400_000);
    }
}
