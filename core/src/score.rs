//! Stream quality scores as mediasoup defines them: 0 (dead) to 10 (perfect).
//!
//! A stream's score is a weighted average of the last [`SCORE_HISTORY`] interval scores, the most
//! recent weighing most (the oldest has weight 1, the next 2, ...). Each interval score comes
//! from the packets delivered in that interval: with `base` packets (received for a producer
//! stream, sent for a consumer stream), `lost` of them lost and `repaired` recovered by
//! retransmission, `round(((base - lost') / base)^4 * 10)` where `lost'` forgives repaired
//! packets in proportion to how well retransmission worked. An interval in which nothing was
//! expected scores 10.
//!
//! * Producer streams ([`RecvScore`]): updated on the receiver-report timer from the stream's
//!   expected/received/repaired/retransmitted counters; a stream that stops sending for 1.5 s
//!   (5 s with DTX) drops to 0 at once, and goes back to 10 on its next packet.
//! * Consumer streams ([`SendScore`]): updated on each RTCP receiver report from the consumer's
//!   peer, from what was sent and the report's cumulative loss.
//!
//! Sans-IO: counters and time are passed in, nothing allocates.

use std::time::{Duration, Instant};

/// Interval scores kept for the weighted average (mediasoup's `ScoreHistogramLength`).
pub const SCORE_HISTORY: usize = 24;

/// Without packets for this long a producer stream is inactive (score 0).
pub const INACTIVITY_TIMEOUT: Duration = Duration::from_millis(1500);

/// Inactivity timeout of a stream that uses DTX (silence sends nothing).
pub const INACTIVITY_TIMEOUT_DTX: Duration = Duration::from_millis(5000);

/// Weighted history of interval scores and the current score.
#[derive(Debug, Clone)]
pub struct ScoreHistory {
    scores: [u8; SCORE_HISTORY],
    len: usize,
    /// Index of the oldest entry when full.
    head: usize,
    score: u8,
}

impl ScoreHistory {
    /// An empty history whose current score is `initial`.
    pub fn new(initial: u8) -> Self {
        ScoreHistory {
            scores: [0; SCORE_HISTORY],
            len: 0,
            head: 0,
            score: initial.min(10),
        }
    }

    /// The current score.
    pub fn score(&self) -> u8 {
        self.score
    }

    /// Adds an interval score (clamped to 10) and recomputes the weighted average. Returns the
    /// new score when it changed.
    pub fn push(&mut self, score: u8) -> Option<u8> {
        let score = score.min(10);
        if self.len < SCORE_HISTORY {
            self.scores[self.len] = score;
            self.len += 1;
        } else {
            self.scores[self.head] = score;
            self.head = (self.head + 1) % SCORE_HISTORY;
        }
        let mut samples = 0u32;
        let mut total = 0u32;
        for i in 0..self.len {
            let weight = i as u32 + 1;
            let s = self.scores[(self.head + i) % SCORE_HISTORY] as u32;
            samples += weight;
            total += weight * s;
        }
        // Rounded division (half away from zero, as std::round on positives).
        let new = ((2 * total + samples) / (2 * samples)) as u8;
        let old = self.score;
        self.score = new;
        (new != old).then_some(new)
    }

    /// Forgets the history and sets the score. Returns true when the score changed.
    pub fn reset(&mut self, score: u8) -> bool {
        self.len = 0;
        self.head = 0;
        let old = self.score;
        self.score = score.min(10);
        old != self.score
    }
}

/// The score of one interval: `base` packets that should have arrived (received or sent),
/// `lost` of them lost, `repaired` recovered by retransmission out of `retransmitted`
/// retransmissions. `base == 0` is the caller's case (nothing expected: 10).
fn interval_score(base: u64, lost: u64, repaired: u64, retransmitted: u64) -> u8 {
    if base == 0 {
        return 10;
    }
    let repaired_ratio = repaired as f64 / base as f64;
    let mut repaired_weight = (1.0 / (repaired_ratio + 1.0)).powi(4);
    if retransmitted > 0 {
        repaired_weight *= repaired as f64 / retransmitted as f64;
    }
    // mediasoup keeps `lost` an integer: the forgiven part truncates.
    let lost = (lost as f64 - repaired as f64 * repaired_weight).max(0.0) as u64;
    let delivered = base.saturating_sub(lost) as f64 / base as f64;
    (delivered.powi(4) * 10.0).round() as u8
}

/// Interval score of a received (producer) stream. `has_rtx`: repairs come on a separate RTX
/// stream (then repairs beyond the loss are capped), else retransmissions arrive in-band.
pub fn recv_interval_score(
    expected: u64,
    received: u64,
    repaired: u64,
    retransmitted: u64,
    has_rtx: bool,
) -> u8 {
    if expected == 0 {
        return 10;
    }
    if received == 0 {
        // Packets were expected and none arrived.
        return 0;
    }
    let mut lost = expected.saturating_sub(received).min(received);
    let mut repaired = repaired;
    if repaired > lost {
        if has_rtx {
            repaired = lost;
        } else {
            lost = repaired;
        }
    }
    interval_score(received, lost, repaired, retransmitted.max(repaired))
}

/// Interval score of a sent (consumer) stream from what the receiver reported lost.
pub fn send_interval_score(sent: u64, lost: u64, repaired: u64, retransmitted: u64) -> u8 {
    if sent == 0 {
        return 10;
    }
    let lost = lost.min(sent);
    let repaired = repaired.min(lost);
    interval_score(sent, lost, repaired, retransmitted.max(repaired))
}

/// Cumulative counters of a received stream, as the engine keeps them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecvCounters {
    /// Packets expected from the sequence numbers seen (RFC 3550 A.3).
    pub expected: u64,
    /// Media packets received (not counting retransmissions).
    pub received: u64,
    /// Missing packets recovered by a retransmission.
    pub repaired: u64,
    /// Retransmitted packets received.
    pub retransmitted: u64,
}

/// Score of a producer stream.
#[derive(Debug, Clone)]
pub struct RecvScore {
    history: ScoreHistory,
    prior: RecvCounters,
    inactive: bool,
    inactivity_timeout: Duration,
}

impl RecvScore {
    /// A stream score starting at 10 (as mediasoup's receive streams do). `dtx`: the sender
    /// may stop sending during silence, so inactivity takes longer to declare.
    pub fn new(dtx: bool) -> Self {
        RecvScore {
            history: ScoreHistory::new(10),
            prior: RecvCounters::default(),
            inactive: false,
            inactivity_timeout: if dtx {
                INACTIVITY_TIMEOUT_DTX
            } else {
                INACTIVITY_TIMEOUT
            },
        }
    }

    /// The current score.
    pub fn score(&self) -> u8 {
        self.history.score()
    }

    /// Whether the stream is considered inactive (no packet within the timeout).
    pub fn is_inactive(&self) -> bool {
        self.inactive
    }

    /// A media packet arrived: an inactive stream becomes active again with score 10. Returns
    /// true when the score changed (packet path: no allocation, a branch).
    pub fn on_packet(&mut self) -> bool {
        if self.inactive {
            self.inactive = false;
            self.history.reset(10)
        } else {
            false
        }
    }

    /// Checks for inactivity given the last packet's arrival. Returns true when the score
    /// changed (dropped to 0).
    pub fn check_inactivity(&mut self, now: Instant, last_packet: Option<Instant>) -> bool {
        if self.inactive {
            return false;
        }
        let Some(last) = last_packet else {
            return false;
        };
        if now.saturating_duration_since(last) >= self.inactivity_timeout {
            self.inactive = true;
            return self.history.reset(0);
        }
        false
    }

    /// Closes a scoring interval with the stream's cumulative counters. Returns the new score
    /// when it changed. An inactive stream keeps its 0 (the counters are still consumed).
    pub fn update(&mut self, totals: RecvCounters, has_rtx: bool) -> Option<u8> {
        let d = RecvCounters {
            expected: totals.expected.saturating_sub(self.prior.expected),
            received: totals.received.saturating_sub(self.prior.received),
            repaired: totals.repaired.saturating_sub(self.prior.repaired),
            retransmitted: totals
                .retransmitted
                .saturating_sub(self.prior.retransmitted),
        };
        self.prior = totals;
        if self.inactive {
            return None;
        }
        self.history.push(recv_interval_score(
            d.expected,
            d.received,
            d.repaired,
            d.retransmitted,
            has_rtx,
        ))
    }
}

/// Score of a consumer stream, fed by the receiver reports of the consumer's peer.
#[derive(Debug, Clone)]
pub struct SendScore {
    history: ScoreHistory,
    sent_prior: u64,
    lost_prior: u64,
    repaired_prior: u64,
    retransmitted_prior: u64,
}

impl Default for SendScore {
    fn default() -> Self {
        Self::new()
    }
}

impl SendScore {
    /// A stream score starting at 10.
    pub fn new() -> Self {
        SendScore {
            history: ScoreHistory::new(10),
            sent_prior: 0,
            lost_prior: 0,
            repaired_prior: 0,
            retransmitted_prior: 0,
        }
    }

    /// The current score.
    pub fn score(&self) -> u8 {
        self.history.score()
    }

    /// Forgets the history and sets the score (a layer switch restarts the stream's story).
    /// Returns true when the score changed.
    pub fn reset(&mut self, score: u8) -> bool {
        self.history.reset(score)
    }

    /// A receiver report arrived: `sent` packets sent so far, the report's cumulative loss
    /// (negative values count as 0), and the retransmissions so far (`repaired`: the first
    /// retransmission of a packet; `retransmitted`: all of them). Returns the new score when
    /// it changed.
    pub fn on_receiver_report(
        &mut self,
        sent: u64,
        cumulative_lost: i64,
        repaired: u64,
        retransmitted: u64,
    ) -> Option<u8> {
        let sent_d = sent.saturating_sub(self.sent_prior);
        self.sent_prior = sent;
        let total_lost = cumulative_lost.max(0) as u64;
        let lost_d = total_lost.saturating_sub(self.lost_prior);
        self.lost_prior = total_lost;
        let repaired_d = repaired.saturating_sub(self.repaired_prior);
        self.repaired_prior = repaired;
        let retransmitted_d = retransmitted.saturating_sub(self.retransmitted_prior);
        self.retransmitted_prior = retransmitted;
        self.history.push(send_interval_score(
            sent_d,
            lost_d,
            repaired_d,
            retransmitted_d,
        ))
    }
}

/// Most encodings a score event carries (more are left out; simulcast uses up to 4).
pub const MAX_SCORED_ENCODINGS: usize = 8;

/// One encoding's score in a producer's `score` event (mediasoup's shape, without `rid`: the
/// Lua host adds it from the producer's `rtpParameters`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerScore {
    /// Index of the encoding in the producer's `rtpParameters.encodings`.
    pub encoding_idx: usize,
    /// SSRC of the stream.
    pub ssrc: u32,
    /// Score 0..=10.
    pub score: u8,
}

/// A producer's scores: one entry per encoding that has received media. Fixed size, so score
/// events cost no allocation (serialized as an array).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProducerScores {
    entries: [ProducerScore; MAX_SCORED_ENCODINGS],
    len: u8,
}

impl ProducerScores {
    /// Adds an entry (ignored beyond [`MAX_SCORED_ENCODINGS`]).
    pub fn push(&mut self, e: ProducerScore) {
        if (self.len as usize) < MAX_SCORED_ENCODINGS {
            self.entries[self.len as usize] = e;
            self.len += 1;
        }
    }

    /// The entries.
    pub fn as_slice(&self) -> &[ProducerScore] {
        &self.entries[..self.len as usize]
    }
}

impl serde::Serialize for ProducerScores {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(s)
    }
}

/// A consumer's `score` event (mediasoup's shape: `{score, producerScore, producerScores}`).
/// Fixed size: no allocation per event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumerScore {
    /// Score of the stream the consumer sends, 0..=10.
    pub score: u8,
    /// Score of the producer stream currently forwarded (0 when none).
    pub producer_score: u8,
    producer_scores: [u8; MAX_SCORED_ENCODINGS],
    encodings: u8,
}

impl ConsumerScore {
    /// A consumer score; `producer_scores` are all the producer's encodings' scores (0 for one
    /// not received yet; the first [`MAX_SCORED_ENCODINGS`] are kept).
    pub fn new(score: u8, producer_score: u8, producer_scores: impl Iterator<Item = u8>) -> Self {
        let mut c = ConsumerScore {
            score,
            producer_score,
            ..Default::default()
        };
        for s in producer_scores.take(MAX_SCORED_ENCODINGS) {
            c.producer_scores[c.encodings as usize] = s;
            c.encodings += 1;
        }
        c
    }

    /// Scores of all the producer's encodings.
    pub fn producer_scores(&self) -> &[u8] {
        &self.producer_scores[..self.encodings as usize]
    }
}

impl serde::Serialize for ConsumerScore {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("ConsumerScore", 3)?;
        st.serialize_field("score", &self.score)?;
        st.serialize_field("producerScore", &self.producer_score)?;
        st.serialize_field("producerScores", self.producer_scores())?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_average_favours_recent_scores() {
        // mediasoup's own example: [1,2,3,4] → (1 + 4 + 9 + 16) / 10 = 3.0 → 3.
        let mut h = ScoreHistory::new(10);
        assert_eq!(h.push(1), Some(1));
        assert_eq!(h.push(2), Some(2)); // (1 + 4) / 3 = 1.67 → 2
        assert_eq!(h.push(3), None); // (1 + 4 + 9) / 6 = 2.33 → 2
        assert_eq!(h.push(4), Some(3));
        assert_eq!(h.score(), 3);
        // A long run of 10s pushes the old bad scores out of the window.
        for _ in 0..SCORE_HISTORY {
            h.push(10);
        }
        assert_eq!(h.score(), 10);
        // One bad interval after a good history only dents it: 24 entries, the newest (weight
        // 24) is 0: 10 * (300 - 24) / 300 = 9.2 → 9.
        assert_eq!(h.push(0), Some(9));
        assert!(h.reset(0));
        assert_eq!(h.score(), 0);
        assert!(!h.reset(0));
        // After a reset the history restarts.
        assert_eq!(h.push(10), Some(10));
    }

    #[test]
    fn interval_scores_follow_the_delivery_ratio() {
        // No loss.
        assert_eq!(recv_interval_score(50, 50, 0, 0, false), 10);
        // 10% loss: mediasoup divides by what was received: (80/90)^4 = 0.62 → 6.
        assert_eq!(recv_interval_score(100, 90, 0, 0, false), 6);
        // 30% loss: lost 30 of 70 received (mediasoup divides by received): (40/70)^4 → 1.
        assert_eq!(recv_interval_score(100, 70, 0, 0, false), 1);
        // 50% or more: lost capped at received → 0.
        assert_eq!(recv_interval_score(100, 50, 0, 0, false), 0);
        // Nothing expected: 10; expected but nothing received: 0.
        assert_eq!(recv_interval_score(0, 0, 0, 0, false), 10);
        assert_eq!(recv_interval_score(40, 0, 0, 0, true), 0);
        // 10% lost but all of it repaired by RTX: forgiven in part:
        // ratio 10/90, weight (1/1.111)^4 = 0.656, lost = trunc(10 - 6.56) = 3 → (87/90)^4 → 9.
        assert_eq!(recv_interval_score(100, 90, 10, 10, true), 9);
        // Same repairs but they took 30 retransmissions: weight × 1/3 → lost 7 → (83/90)^4 → 7.
        assert_eq!(recv_interval_score(100, 90, 10, 30, true), 7);
        // Send side: 2% reported lost of 100 sent → 0.98^4 = 0.92 → 9.
        assert_eq!(send_interval_score(100, 2, 0, 0), 9);
        assert_eq!(send_interval_score(0, 5, 0, 0), 10);
        assert_eq!(send_interval_score(100, 500, 0, 0), 0);
    }

    #[test]
    fn recv_score_tracks_intervals_and_inactivity() {
        let t0 = Instant::now();
        let mut s = RecvScore::new(false);
        assert_eq!(s.score(), 10);
        // Clean second: unchanged.
        let mut c = RecvCounters {
            expected: 50,
            received: 50,
            ..Default::default()
        };
        assert_eq!(s.update(c, false), None);
        // Then seconds with 20% loss each: (30/40)^4 = 0.32 → 3 per interval; the weighted
        // score falls towards 3.
        let mut last = 10;
        for _ in 0..10 {
            c.expected += 50;
            c.received += 40;
            if let Some(n) = s.update(c, false) {
                assert!(n < last);
                last = n;
            }
        }
        assert_eq!(s.score(), 3);
        // Stream stops: after 1.5 s without packets the score drops to 0.
        let last_packet = Some(t0);
        assert!(!s.check_inactivity(t0 + Duration::from_millis(1400), last_packet));
        assert!(s.check_inactivity(t0 + Duration::from_millis(1500), last_packet));
        assert_eq!(s.score(), 0);
        assert!(s.is_inactive());
        // Intervals while inactive do not change it.
        c.expected += 10;
        assert_eq!(s.update(c, false), None);
        // The next packet brings it back to 10 at once, with a fresh history.
        assert!(s.on_packet());
        assert_eq!(s.score(), 10);
        assert!(!s.on_packet());
        c.expected += 50;
        c.received += 50;
        assert_eq!(s.update(c, false), None);
        // DTX streams wait 5 s.
        let mut d = RecvScore::new(true);
        assert!(!d.check_inactivity(t0 + Duration::from_millis(4000), last_packet));
        assert!(d.check_inactivity(t0 + Duration::from_millis(5000), last_packet));
    }

    #[test]
    fn score_events_serialize_as_mediasoup() {
        let mut p = ProducerScores::default();
        for i in 0..10 {
            p.push(ProducerScore {
                encoding_idx: i,
                ssrc: 100 + i as u32,
                score: 10,
            });
        }
        assert_eq!(p.as_slice().len(), MAX_SCORED_ENCODINGS);
        let v = serde_json::to_value(p).unwrap();
        assert_eq!(
            v[1],
            serde_json::json!({"encodingIdx": 1, "ssrc": 101, "score": 10})
        );
        let c = ConsumerScore::new(7, 9, [9u8, 0, 4].into_iter());
        assert_eq!(
            serde_json::to_value(c).unwrap(),
            serde_json::json!({"score": 7, "producerScore": 9, "producerScores": [9, 0, 4]})
        );
    }

    #[test]
    fn send_score_uses_report_deltas() {
        let mut s = SendScore::new();
        // 100 sent, nothing lost.
        assert_eq!(s.on_receiver_report(100, 0, 0, 0), None);
        // Next 100: receiver reports 30 more lost → (70/100)^4 = 0.24 → 2; weights 1,2 →
        // (10 + 4) / 3 = 4.67 → 5.
        assert_eq!(s.on_receiver_report(200, 30, 0, 0), Some(5));
        // Cumulative loss going down (duplicates) counts as no loss.
        assert_eq!(s.on_receiver_report(300, 20, 0, 0), Some(7));
        // Nothing sent (paused): 10s push it back up.
        for _ in 0..30 {
            s.on_receiver_report(300, 20, 0, 0);
        }
        assert_eq!(s.score(), 10);
        assert!(s.reset(3));
        assert_eq!(s.score(), 3);
    }
}
