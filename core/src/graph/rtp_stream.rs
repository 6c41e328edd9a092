//! Per-stream receive state: reception statistics for RTCP RRs ([`RecvStats`]), loss
//! detection and NACK scheduling ([`NackGenerator`]) and the packet history that answers
//! NACKs ([`RetransmitStore`]).
//!
//! All three are sized at creation and do not allocate per packet.

use crate::rtcp::ReportBlock;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A sequence jump at least this large is a discontinuity, not loss (RFC 3550 A.1).
const MAX_DROPOUT: u16 = 3000;
/// A sequence this far behind the highest is a late packet, not a restart (RFC 3550 A.1).
const MAX_MISORDER: u16 = 100;
const SEQ_MOD: u64 = 1 << 16;

/// Converts a duration to RTP timestamp units of `clock_rate` (wrapping, as RTP time does).
pub fn to_rtp_units(elapsed: Duration, clock_rate: u32) -> u32 {
    (elapsed.as_nanos() * clock_rate as u128 / 1_000_000_000) as u32
}

/// Expected/received/lost counts of one reporting interval (between two report blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IntervalStats {
    /// Packets expected in the interval.
    pub expected: u64,
    /// Packets received in the interval (duplicates and retransmissions included).
    pub received: u64,
    /// `expected - received`, floored at 0.
    pub lost: u64,
}

/// Reception statistics of one incoming RTP stream (RFC 3550 §6.4.1, A.1, A.3, A.8).
#[derive(Debug, Clone)]
pub struct RecvStats {
    ssrc: u32,
    clock_rate: u32,
    started: bool,
    max_seq: u16,
    /// Sequence wraps seen, times 2^16.
    cycles: u64,
    base_seq: u64,
    /// Sequence number expected next after a large jump; SEQ_MOD+1 = none.
    bad_seq: u64,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    last_transit: Option<u32>,
    /// Jitter scaled by 16, as RFC 3550 A.8 suggests for integer arithmetic.
    jitter_q4: u32,
    last_sr: Option<(u32, Instant)>,
    last_interval: IntervalStats,
}

impl RecvStats {
    /// Statistics for the stream `ssrc` whose RTP clock runs at `clock_rate` Hz.
    pub fn new(ssrc: u32, clock_rate: u32) -> Self {
        RecvStats {
            ssrc,
            clock_rate,
            started: false,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: SEQ_MOD + 1,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            last_transit: None,
            jitter_q4: 0,
            last_sr: None,
            last_interval: IntervalStats::default(),
        }
    }

    fn restart(&mut self, seq: u16) {
        self.started = true;
        self.max_seq = seq;
        self.cycles = 0;
        self.base_seq = seq as u64;
        self.bad_seq = SEQ_MOD + 1;
        self.received = 0;
        self.expected_prior = 0;
        self.received_prior = 0;
    }

    /// RFC 3550 A.1 `update_seq` without probation; false = packet not counted (the first
    /// packet after a large jump, until the next one confirms the new sequence).
    fn update_seq(&mut self, seq: u16) -> bool {
        if !self.started {
            self.restart(seq);
        } else {
            let udelta = seq.wrapping_sub(self.max_seq);
            if udelta < MAX_DROPOUT {
                if seq < self.max_seq {
                    self.cycles += SEQ_MOD;
                }
                self.max_seq = seq;
            } else if udelta <= u16::MAX - MAX_MISORDER {
                if seq as u64 == self.bad_seq {
                    // Two sequential packets after the jump: the sender restarted.
                    self.restart(seq);
                } else {
                    self.bad_seq = (seq as u64 + 1) & (SEQ_MOD - 1);
                    return false;
                }
            }
            // Otherwise a duplicate or reordered packet: counted, max unchanged.
        }
        self.received += 1;
        true
    }

    /// Records a media packet: `arrival` is the arrival time in the stream's RTP clock units
    /// (see [`to_rtp_units`]). Returns false if the packet was not counted (see RFC 3550 A.1).
    pub fn on_packet(&mut self, seq: u16, rtp_ts: u32, arrival: u32) -> bool {
        if !self.update_seq(seq) {
            return false;
        }
        let transit = arrival.wrapping_sub(rtp_ts);
        if let Some(last) = self.last_transit {
            let d = (transit.wrapping_sub(last) as i32).unsigned_abs();
            // J += (|D| - J) / 16, kept scaled by 16.
            self.jitter_q4 = self
                .jitter_q4
                .wrapping_add(d)
                .wrapping_sub((self.jitter_q4 + 8) >> 4);
        }
        self.last_transit = Some(transit);
        true
    }

    /// Records a packet recovered by retransmission: it counts as received but its timing says
    /// nothing about network jitter.
    pub fn on_retransmitted(&mut self, seq: u16) -> bool {
        self.update_seq(seq)
    }

    /// Records a sender report from this stream's sender (for LSR/DLSR).
    pub fn on_sender_report(&mut self, ntp_sec: u32, ntp_frac: u32, now: Instant) {
        self.last_sr = Some(((ntp_sec << 16) | (ntp_frac >> 16), now));
    }

    /// SSRC of the stream.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// RTP clock rate of the stream.
    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    /// Extended highest sequence number received (cycles in the high 16 bits).
    pub fn extended_highest_seq(&self) -> u64 {
        self.cycles + self.max_seq as u64
    }

    /// Packets counted as received (duplicates included, as RFC 3550 counts them).
    pub fn packets_received(&self) -> u64 {
        self.received
    }

    /// Packets expected since the first one.
    pub fn packets_expected(&self) -> u64 {
        if !self.started {
            return 0;
        }
        self.extended_highest_seq() + 1 - self.base_seq
    }

    /// Cumulative packets lost (negative with duplicates).
    pub fn packets_lost(&self) -> i64 {
        self.packets_expected() as i64 - self.received as i64
    }

    /// Interarrival jitter in RTP timestamp units.
    pub fn jitter(&self) -> u32 {
        self.jitter_q4 >> 4
    }

    /// Counts of the interval closed by the last [`RecvStats::fill_report_block`] call.
    pub fn last_interval(&self) -> IntervalStats {
        self.last_interval
    }

    /// Builds the report block for an RR/SR and starts a new reporting interval.
    pub fn fill_report_block(&mut self, now: Instant) -> ReportBlock {
        let expected = self.packets_expected();
        let expected_interval = expected - self.expected_prior;
        let received_interval = self.received - self.received_prior;
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        self.last_interval = IntervalStats {
            expected: expected_interval,
            received: received_interval,
            lost: lost_interval,
        };
        let fraction_lost = (lost_interval << 8)
            .checked_div(expected_interval)
            .map_or(0, |f| f.min(255) as u8);
        let (lsr, dlsr) = match self.last_sr {
            Some((lsr, at)) => {
                let d = now.saturating_duration_since(at);
                (
                    lsr,
                    (d.as_nanos() * 65536 / 1_000_000_000).min(u32::MAX as u128) as u32,
                )
            }
            None => (0, 0),
        };
        ReportBlock {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost: self.packets_lost().clamp(-0x80_0000, 0x7f_ffff) as i32,
            highest_seq: self.extended_highest_seq() as u32,
            jitter: self.jitter(),
            lsr,
            dlsr,
        }
    }
}

/// Tuning of a [`NackGenerator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NackConfig {
    /// Most missing packets tracked; more means the loss is beyond repair.
    pub max_missing: usize,
    /// NACKs sent per missing packet before giving up.
    pub max_retries: u8,
    /// Missing packets this many sequence numbers behind the highest are dropped.
    pub max_age: u16,
    /// Least spacing between two NACKs of the same packet, whatever the RTT.
    pub min_interval: Duration,
}

impl Default for NackConfig {
    /// mediasoup's values: 1000 tracked, 10 retries, 10 000 seqs of age, 20 ms floor.
    fn default() -> Self {
        NackConfig {
            max_missing: 1000,
            max_retries: 10,
            max_age: 10_000,
            min_interval: Duration::from_millis(20),
        }
    }
}

/// What [`NackGenerator::on_packet`] made of a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqStatus {
    /// Newer than anything seen (gaps before it are now tracked as missing).
    New,
    /// A packet that was missing arrived (late or via RTX).
    Recovered,
    /// Already seen, or too old to be tracked.
    Old,
    /// Too many packets went missing to repair: tracking was cut back and the caller should ask
    /// the sender for a key frame.
    Overflow,
}

#[derive(Debug, Clone, Copy)]
struct Missing {
    seq: u64,
    tries: u8,
    last_sent: Option<Instant>,
}

/// Detects lost packets of one stream and schedules NACKs for them (RFC 4585 generic NACK).
#[derive(Debug, Clone)]
pub struct NackGenerator {
    cfg: NackConfig,
    /// Extended highest sequence number; starts at 2^32 so older packets stay positive.
    highest: Option<u64>,
    /// Missing packets in ascending order.
    missing: VecDeque<Missing>,
    rtt: Duration,
}

impl NackGenerator {
    /// A generator with `cfg`; the missing list is allocated once here.
    pub fn new(cfg: NackConfig) -> Self {
        NackGenerator {
            cfg,
            highest: None,
            missing: VecDeque::with_capacity(cfg.max_missing),
            rtt: Duration::from_millis(100),
        }
    }

    /// Updates the round-trip time estimate that spaces retries.
    pub fn set_rtt(&mut self, rtt: Duration) {
        self.rtt = rtt;
    }

    /// Number of packets currently considered missing.
    pub fn missing_count(&self) -> usize {
        self.missing.len()
    }

    /// Feeds a received sequence number (media or RTX-recovered). `is_keyframe` lets missing
    /// packets before a key frame be forgotten, since the decoder no longer needs them.
    pub fn on_packet(&mut self, seq: u16, is_keyframe: bool) -> SeqStatus {
        let Some(highest) = self.highest else {
            self.highest = Some((1 << 32) + seq as u64);
            return SeqStatus::New;
        };
        let diff = seq.wrapping_sub(highest as u16) as i16;
        if diff <= 0 {
            let ext = highest - diff.unsigned_abs() as u64;
            return match self.missing.binary_search_by_key(&ext, |m| m.seq) {
                Ok(i) => {
                    self.missing.remove(i);
                    SeqStatus::Recovered
                }
                Err(_) => SeqStatus::Old,
            };
        }
        let ext = highest + diff as u64;
        self.highest = Some(ext);
        if is_keyframe {
            self.missing.clear();
        }
        let gap = (diff - 1) as usize;
        if gap > self.cfg.max_missing {
            self.missing.clear();
            return SeqStatus::Overflow;
        }
        let min_seq = ext.saturating_sub(self.cfg.max_age as u64);
        while self.missing.front().is_some_and(|m| m.seq < min_seq) {
            self.missing.pop_front();
        }
        let mut status = SeqStatus::New;
        for s in ext - gap as u64..ext {
            if self.missing.len() == self.cfg.max_missing {
                self.missing.pop_front();
                status = SeqStatus::Overflow;
            }
            self.missing.push_back(Missing {
                seq: s,
                tries: 0,
                last_sent: None,
            });
        }
        status
    }

    fn retry_interval(&self) -> Duration {
        self.rtt.max(self.cfg.min_interval)
    }

    /// Fills `out` (cleared first) with the sequence numbers to NACK now, ascending: those never
    /// requested and those whose last request is an RTT old. Packets requested `max_retries`
    /// times are then forgotten.
    pub fn poll_nacks(&mut self, now: Instant, out: &mut Vec<u16>) {
        out.clear();
        let interval = self.retry_interval();
        for m in self.missing.iter_mut() {
            let due = m
                .last_sent
                .is_none_or(|t| now.saturating_duration_since(t) >= interval);
            if due {
                out.push(m.seq as u16);
                m.tries += 1;
                m.last_sent = Some(now);
            }
        }
        let max = self.cfg.max_retries;
        self.missing.retain(|m| m.tries < max);
    }

    /// When the next NACK becomes due, if anything is missing.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let interval = self.retry_interval();
        self.missing
            .iter()
            .map(|m| m.last_sent.map_or(now, |t| t + interval))
            .min()
    }
}

#[derive(Debug, Default)]
struct Slot {
    /// Extended sequence number of the stored packet.
    seq: u64,
    len: usize,
    buf: Option<Box<[u8]>>,
}

/// Bounded history of a stream's packets, keyed by sequence number, to answer NACKs.
///
/// Holds at most K buffers; the buffers are moved in (no copy) and the evicted one is handed
/// back for the caller to receive into next.
#[derive(Debug)]
pub struct RetransmitStore {
    slots: Box<[Slot]>,
    mask: u64,
    /// Extended highest sequence number stored (starts at 2^32, see [`NackGenerator`]).
    highest: Option<u64>,
}

impl RetransmitStore {
    /// A store of `capacity` slots, rounded up to a power of two (at least 1).
    pub fn new(capacity: usize) -> Self {
        let k = capacity.max(1).next_power_of_two();
        RetransmitStore {
            slots: (0..k).map(|_| Slot::default()).collect(),
            mask: k as u64 - 1,
            highest: None,
        }
    }

    /// Number of slots (K).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Extended sequence number of `seq`, taken as the one nearest the highest stored.
    fn extend(&self, seq: u16) -> Option<u64> {
        let highest = self.highest?;
        let diff = seq.wrapping_sub(highest as u16) as i16;
        Some((highest as i64 + diff as i64) as u64)
    }

    /// True if `ext` is among the last K sequence numbers up to the highest.
    fn in_window(&self, ext: u64) -> bool {
        self.highest
            .is_some_and(|h| ext <= h && h - ext < self.slots.len() as u64)
    }

    /// Stores the packet `buf[..len]` under `seq`; returns the buffer it displaced (or `buf`
    /// itself when `seq` is too old to store), for reuse as the next receive buffer.
    pub fn insert(&mut self, seq: u16, buf: Box<[u8]>, len: usize) -> Option<Box<[u8]>> {
        let ext = match self.extend(seq) {
            None => (1 << 32) + seq as u64,
            Some(ext) if self.highest.is_some_and(|h| ext <= h) && !self.in_window(ext) => {
                return Some(buf);
            }
            Some(ext) => ext,
        };
        if self.highest.is_none_or(|h| ext > h) {
            self.highest = Some(ext);
        }
        let slot = &mut self.slots[(ext & self.mask) as usize];
        slot.seq = ext;
        slot.len = len.min(buf.len());
        slot.buf.replace(buf)
    }

    /// The stored packet `seq`, if that exact packet is held and within the last K sequence
    /// numbers.
    pub fn get(&self, seq: u16) -> Option<&[u8]> {
        let ext = self.extend(seq).filter(|&e| self.in_window(e))?;
        let slot = &self.slots[(ext & self.mask) as usize];
        if slot.seq != ext {
            return None;
        }
        slot.buf.as_deref().and_then(|b| b.get(..slot.len))
    }

    /// Drops every stored packet (e.g. on an SSRC change), returning nothing to the caller.
    pub fn clear(&mut self) {
        for s in self.slots.iter_mut() {
            *s = Slot::default();
        }
        self.highest = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recv_stats_counts_loss_and_wrap() {
        let mut s = RecvStats::new(0x1234, 90_000);
        let now = Instant::now();
        // 65530..=65535, 0..=9 with 65533 and 2 missing: 16 expected, 14 received.
        let seqs: Vec<u16> = (65530..=65535u16)
            .chain(0..10)
            .filter(|&q| q != 65533 && q != 2)
            .collect();
        for &q in &seqs {
            assert!(s.on_packet(q, 0, 0));
        }
        assert_eq!(s.extended_highest_seq(), 65536 + 9);
        assert_eq!(s.packets_expected(), 16);
        assert_eq!(s.packets_received(), 14);
        assert_eq!(s.packets_lost(), 2);
        let rb = s.fill_report_block(now);
        assert_eq!(rb.ssrc, 0x1234);
        assert_eq!(rb.highest_seq, 65536 + 9);
        assert_eq!(rb.cumulative_lost, 2);
        assert_eq!(rb.fraction_lost, (2 * 256 / 16) as u8);
        assert_eq!(
            s.last_interval(),
            IntervalStats {
                expected: 16,
                received: 14,
                lost: 2
            }
        );
        // Late arrival of 2: next interval expected 0 new, received 1 → no loss reported.
        assert!(s.on_retransmitted(2));
        let rb = s.fill_report_block(now);
        assert_eq!((rb.fraction_lost, rb.cumulative_lost), (0, 1));
    }

    #[test]
    fn recv_stats_resyncs_after_two_sequential_jumps() {
        let mut s = RecvStats::new(1, 90_000);
        for q in 100..110 {
            s.on_packet(q, 0, 0);
        }
        assert!(!s.on_packet(40_000, 0, 0));
        assert!(s.on_packet(40_001, 0, 0));
        assert_eq!(s.extended_highest_seq(), 40_001);
        assert_eq!(s.packets_expected(), 1);
        assert_eq!(s.packets_received(), 1);
    }

    #[test]
    fn jitter_follows_rfc3550_a8() {
        let mut s = RecvStats::new(1, 90_000);
        // Packets every 3000 ticks; arrivals alternate +0/+160 ticks of delay.
        let mut expect = 0f64;
        let mut prev_transit: Option<i64> = None;
        for i in 0..200u32 {
            let ts = i * 3000;
            let arrival = ts + if i % 2 == 0 { 0 } else { 160 } + 5;
            s.on_packet(i as u16, ts, arrival);
            let transit = arrival as i64 - ts as i64;
            if let Some(p) = prev_transit {
                expect += ((transit - p).abs() as f64 - expect) / 16.0;
            }
            prev_transit = Some(transit);
        }
        assert!(
            (s.jitter() as f64 - expect).abs() <= 1.0,
            "{} vs {expect}",
            s.jitter()
        );
        assert!(s.jitter() > 150);
    }

    #[test]
    fn dlsr_in_65536ths() {
        let mut s = RecvStats::new(1, 48_000);
        let t0 = Instant::now();
        s.on_packet(1, 0, 0);
        s.on_sender_report(0x0001_0002, 0x8000_0000, t0);
        let rb = s.fill_report_block(t0 + Duration::from_millis(500));
        assert_eq!(rb.lsr, 0x0002_8000);
        assert_eq!(rb.dlsr, 32768);
    }

    #[test]
    fn to_rtp_units_converts() {
        assert_eq!(to_rtp_units(Duration::from_millis(20), 48_000), 960);
        assert_eq!(to_rtp_units(Duration::from_secs(1), 90_000), 90_000);
    }

    #[test]
    fn nack_generator_requests_retries_and_recovers() {
        let mut g = NackGenerator::new(NackConfig {
            max_retries: 2,
            ..Default::default()
        });
        g.set_rtt(Duration::from_millis(50));
        let t0 = Instant::now();
        let mut out = Vec::with_capacity(16);
        assert_eq!(g.on_packet(65533, false), SeqStatus::New);
        assert_eq!(g.on_packet(65534, false), SeqStatus::New);
        // 65535, 0, 1 lost.
        assert_eq!(g.on_packet(2, false), SeqStatus::New);
        g.poll_nacks(t0, &mut out);
        assert_eq!(out, vec![65535, 0, 1]);
        // Too early for a retry.
        g.poll_nacks(t0 + Duration::from_millis(10), &mut out);
        assert!(out.is_empty());
        assert_eq!(g.next_deadline(t0), Some(t0 + Duration::from_millis(50)));
        // 0 recovered by RTX.
        assert_eq!(g.on_packet(0, false), SeqStatus::Recovered);
        assert_eq!(g.on_packet(0, false), SeqStatus::Old);
        g.poll_nacks(t0 + Duration::from_millis(60), &mut out);
        assert_eq!(out, vec![65535, 1]);
        // max_retries reached: forgotten.
        assert_eq!(g.missing_count(), 0);
        g.poll_nacks(t0 + Duration::from_millis(200), &mut out);
        assert!(out.is_empty());
        assert_eq!(g.next_deadline(t0), None);
    }

    #[test]
    fn nack_generator_bounds() {
        let mut g = NackGenerator::new(NackConfig {
            max_missing: 10,
            ..Default::default()
        });
        g.on_packet(0, false);
        assert_eq!(g.on_packet(5, false), SeqStatus::New);
        assert_eq!(g.missing_count(), 4);
        // 8 more missing: the list holds 10, oldest dropped.
        assert_eq!(g.on_packet(14, false), SeqStatus::Overflow);
        assert_eq!(g.missing_count(), 10);
        let mut out = Vec::new();
        g.poll_nacks(Instant::now(), &mut out);
        assert_eq!(out, vec![3, 4, 6, 7, 8, 9, 10, 11, 12, 13]);
        // A gap larger than the list: everything dropped.
        assert_eq!(g.on_packet(100, false), SeqStatus::Overflow);
        assert_eq!(g.missing_count(), 0);
        // A key frame forgets older losses.
        g.on_packet(105, false);
        assert_eq!(g.missing_count(), 4);
        g.on_packet(107, true);
        assert_eq!(g.missing_count(), 1);
        // max_age: entries far behind the highest are dropped.
        let mut g = NackGenerator::new(NackConfig {
            max_age: 20,
            ..Default::default()
        });
        g.on_packet(0, false);
        g.on_packet(3, false);
        for q in 4..30 {
            g.on_packet(q, false);
        }
        assert_eq!(g.missing_count(), 0);
    }

    #[test]
    fn nack_poll_does_not_grow_caller_vec() {
        let mut g = NackGenerator::new(NackConfig::default());
        let mut out = Vec::with_capacity(1000);
        let cap = out.capacity();
        g.on_packet(0, false);
        g.on_packet(900, false);
        g.poll_nacks(Instant::now(), &mut out);
        assert_eq!(out.len(), 899);
        assert_eq!(out.capacity(), cap);
    }

    fn pkt(tag: u8) -> Box<[u8]> {
        vec![tag; 8].into_boxed_slice()
    }

    #[test]
    fn store_evicts_and_returns_buffers() {
        let mut st = RetransmitStore::new(3);
        assert_eq!(st.capacity(), 4);
        for (i, seq) in (10..14u16).enumerate() {
            assert!(st.insert(seq, pkt(i as u8), 4).is_none());
        }
        assert_eq!(st.get(10), Some(&[0u8; 4][..]));
        // 14 lands in 10's slot and hands 10's buffer back.
        let evicted = st.insert(14, pkt(9), 8).unwrap();
        assert_eq!(evicted[0], 0);
        assert_eq!(st.get(10), None);
        assert_eq!(st.get(14), Some(&[9u8; 8][..]));
        assert_eq!(st.get(15), None);
        // Older than the window: not stored, handed straight back.
        let back = st.insert(9, pkt(7), 8).unwrap();
        assert_eq!(back[0], 7);
        assert_eq!(st.get(9), None);
        // Out-of-order insert inside the window is fine.
        let mut st = RetransmitStore::new(8);
        st.insert(5, pkt(5), 8);
        st.insert(3, pkt(3), 8);
        assert_eq!(st.get(3).unwrap()[0], 3);
    }

    #[test]
    fn store_wraps_and_rejects_stale() {
        let mut st = RetransmitStore::new(512);
        for seq in (65000..=65535u16).chain(0..300) {
            st.insert(seq, pkt(seq as u8), 8);
        }
        assert_eq!(st.get(299).unwrap()[0], 299u16 as u8);
        assert_eq!(st.get(65535).unwrap()[0], 255);
        assert_eq!(st.get(65300), None); // evicted
        assert_eq!(st.get(300), None); // not yet stored
                                       // A jump leaves old slots behind; they are stale, not returned.
        st.insert(20_000, pkt(1), 8);
        assert_eq!(st.get(299), None);
        assert_eq!(st.get(20_000).unwrap()[0], 1);
        // A slot still holding seq 1 from the previous 2^16 cycle must not answer for the
        // current seq 1.
        let mut st = RetransmitStore::new(4);
        st.insert(1, pkt(1), 8);
        for seq in [16_000u16, 32_000, 48_000, 64_000, 0, 2] {
            st.insert(seq, pkt(2), 8);
        }
        assert_eq!(st.get(2).unwrap()[0], 2);
        assert_eq!(st.get(1), None);
        let seq = 2;
        st.clear();
        assert_eq!(st.get(seq), None);
    }
}
