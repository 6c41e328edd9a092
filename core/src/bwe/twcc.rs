//! Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01):
//! the RTCP RTPFB FMT 15 wire format (writer and parser) and the receive side that records the
//! arrival time of every packet carrying a transport-wide sequence number and turns them into
//! feedback packets at the cadence browsers expect.
//!
//! Wire format of the FCI (after the 12-byte RTPFB header with sender and media SSRC):
//!
//! ```text
//!  base sequence number (16) | packet status count (16)
//!  reference time (24, signed, 64 ms units) | feedback packet count (8)
//!  packet status chunks (16 bits each)...
//!  receive deltas (8 bits for "small" 0..=63.75 ms, 16 bits signed for "large"), 250 µs units
//!  padding to 32 bits
//! ```
//!
//! A chunk is either a run length chunk (`0 SS LLLLLLLLLLLLL`: 13-bit run of symbol SS) or a
//! status vector chunk (`1 0` + 14 one-bit symbols, or `1 1` + 7 two-bit symbols). Symbols:
//! 0 not received, 1 received with a small delta, 2 received with a large or negative delta.
//!
//! Everything is sans-IO: arrival times are passed in as [`Instant`]s and nothing here allocates
//! after construction.

use std::time::{Duration, Instant};

use crate::rtcp::{RtcpError, PT_RTPFB};

/// Feedback message type of transport-cc in RTPFB.
pub const FMT_TRANSPORT_CC: u8 = 15;
/// URI of the transport-wide sequence number header extension.
pub const TWCC_URI: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// One receive delta tick.
pub const DELTA_TICK_US: i64 = 250;
/// One reference time tick.
pub const REFERENCE_TICK_US: i64 = 64_000;
/// How often the receive side sends feedback (libwebrtc sends every 50–250 ms depending on the
/// rate; mediasoup every 100 ms).
pub const FEEDBACK_INTERVAL: Duration = Duration::from_millis(100);
/// Most packet statuses in one feedback packet: keeps a worst-case packet (2-bit vectors and
/// 2-byte deltas only) under ~950 bytes, well inside one datagram with SRTCP overhead.
pub const MAX_STATUSES: usize = 400;
/// Arrival times kept (power of two): about 2–4 s of a 3 Mbit/s transport.
const HISTORY: usize = 2048;

/// Symbol of a packet the receiver did not get.
pub const SYMBOL_NOT_RECEIVED: u8 = 0;
/// Symbol of a packet received with a 1-byte delta.
pub const SYMBOL_SMALL_DELTA: u8 = 1;
/// Symbol of a packet received with a 2-byte (large or negative) delta.
pub const SYMBOL_LARGE_DELTA: u8 = 2;

/// Turns 16-bit sequence numbers into a monotonic 64-bit space (accepting reordering of up to
/// half the space).
#[derive(Debug, Clone, Copy, Default)]
pub struct SeqUnwrapper {
    last: Option<i64>,
}

impl SeqUnwrapper {
    /// The unwrapped value of `seq`, relative to the last value seen.
    pub fn unwrap(&mut self, seq: u16) -> i64 {
        let v = match self.last {
            None => seq as i64,
            Some(last) => {
                let diff = seq.wrapping_sub(last as u16) as i16 as i64;
                last + diff
            }
        };
        if self.last.is_none_or(|l| v > l) {
            self.last = Some(v);
        }
        v
    }
}

/// Receive side: records transport-wide sequence numbers and arrival times of one transport and
/// writes transport-cc feedback about them.
pub struct TwccReceiver {
    epoch: Instant,
    /// Unwrapped sequence number held by each slot (-1: none).
    slot_seq: Box<[i64]>,
    /// Arrival time (µs since `epoch`) of the packet in each slot.
    slot_arrival: Box<[i64]>,
    unwrapper: SeqUnwrapper,
    /// First sequence number the next feedback reports.
    window_start: Option<i64>,
    /// Highest sequence number received.
    highest: i64,
    /// Feedback packet count (wraps at 8 bits).
    fb_count: u8,
    /// Media SSRC of the last packet, written in the feedback's media source field.
    media_ssrc: u32,
    next_feedback: Option<Instant>,
    /// Packets recorded.
    pub packets: u64,
    /// Feedback packets written.
    pub feedbacks: u64,
}

impl TwccReceiver {
    /// A receiver whose arrival times count from `epoch`.
    pub fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            slot_seq: vec![-1i64; HISTORY].into_boxed_slice(),
            slot_arrival: vec![0i64; HISTORY].into_boxed_slice(),
            unwrapper: SeqUnwrapper::default(),
            window_start: None,
            highest: -1,
            fb_count: 0,
            media_ssrc: 0,
            next_feedback: None,
            packets: 0,
            feedbacks: 0,
        }
    }

    /// Records a packet with transport-wide sequence number `seq` from stream `media_ssrc`
    /// arriving at `now`.
    pub fn on_packet(&mut self, seq: u16, media_ssrc: u32, now: Instant) {
        let s = self.unwrapper.unwrap(seq);
        if s < 0 || (self.highest >= 0 && s <= self.highest - HISTORY as i64) {
            return; // older than anything we could still report
        }
        let slot = (s as usize) & (HISTORY - 1);
        if self.slot_seq[slot] == s {
            return; // duplicate: keep the first arrival
        }
        self.slot_seq[slot] = s;
        self.slot_arrival[slot] = now.saturating_duration_since(self.epoch).as_micros() as i64;
        self.packets += 1;
        self.media_ssrc = media_ssrc;
        if s > self.highest {
            self.highest = s;
        }
        // A late (reordered) packet before the window is reported again from its position.
        if self.window_start.is_none_or(|w| s < w) {
            self.window_start = Some(s);
        }
        if self.next_feedback.is_none() {
            self.next_feedback = Some(now + FEEDBACK_INTERVAL);
        }
    }

    /// When feedback is next due (None: nothing to report).
    pub fn next_feedback(&self) -> Option<Instant> {
        self.next_feedback
    }

    /// Whether feedback should be written now.
    pub fn is_due(&self, now: Instant) -> bool {
        self.next_feedback.is_some_and(|t| now >= t)
    }

    /// Marks the feedback of this round written; the next is due one interval later (or when a
    /// packet arrives, if nothing is pending).
    pub fn feedback_done(&mut self, now: Instant) {
        // With nothing pending, the next packet schedules it.
        self.next_feedback = self.has_pending().then_some(now + FEEDBACK_INTERVAL);
    }

    /// Whether packets not yet reported were received.
    pub fn has_pending(&self) -> bool {
        self.window_start.is_some_and(|w| w <= self.highest)
    }

    fn arrival(&self, s: i64) -> Option<i64> {
        let slot = (s as usize) & (HISTORY - 1);
        (self.slot_seq[slot] == s).then(|| self.slot_arrival[slot])
    }

    /// Writes one feedback packet about the packets not reported yet (at most [`MAX_STATUSES`])
    /// into `buf`; returns its length, or `None` when nothing is pending. Call until `None` to
    /// flush a backlog, then [`feedback_done`](Self::feedback_done).
    pub fn write_feedback(&mut self, sender_ssrc: u32, buf: &mut [u8]) -> Option<usize> {
        let mut start = self.window_start?;
        if start > self.highest {
            return None;
        }
        start = start.max(self.highest - HISTORY as i64 + 1);
        let end = (self.highest + 1).min(start + MAX_STATUSES as i64);
        let mut symbols = [0u8; MAX_STATUSES];
        let mut deltas = [0i16; MAX_STATUSES];
        let mut base_us = None;
        let mut last_us = 0i64;
        let mut count = 0usize; // statuses up to and including the last received packet
        let mut ndeltas = 0usize;
        for (i, s) in (start..end).enumerate() {
            let Some(at) = self.arrival(s) else {
                symbols[i] = SYMBOL_NOT_RECEIVED;
                continue;
            };
            if base_us.is_none() {
                let b = at.div_euclid(REFERENCE_TICK_US) * REFERENCE_TICK_US;
                base_us = Some(b);
                last_us = b;
            }
            let ticks = (at - last_us + DELTA_TICK_US / 2).div_euclid(DELTA_TICK_US);
            let Ok(d) = i16::try_from(ticks) else {
                break; // does not fit: the next feedback starts here
            };
            symbols[i] = if (0..=255).contains(&d) {
                SYMBOL_SMALL_DELTA
            } else {
                SYMBOL_LARGE_DELTA
            };
            deltas[ndeltas] = d;
            ndeltas += 1;
            last_us += d as i64 * DELTA_TICK_US;
            count = i + 1;
        }
        let Some(base_us) = base_us else {
            // Nothing received in range (the history moved past it): skip it.
            self.window_start = Some(end);
            return None;
        };
        let fb = FeedbackHeader {
            sender_ssrc,
            media_ssrc: self.media_ssrc,
            base_seq: start as u16,
            reference_time: (base_us / REFERENCE_TICK_US) as i32,
            fb_count: self.fb_count,
        };
        let n = write_transport_cc(buf, &fb, &symbols[..count], &deltas[..ndeltas]).ok()?;
        self.fb_count = self.fb_count.wrapping_add(1);
        self.feedbacks += 1;
        self.window_start = Some(start + count as i64);
        Some(n)
    }
}

/// Header fields of a transport-cc feedback packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedbackHeader {
    /// SSRC of the feedback sender.
    pub sender_ssrc: u32,
    /// Media source SSRC field.
    pub media_ssrc: u32,
    /// Transport-wide sequence number of the first status.
    pub base_seq: u16,
    /// Reference time in 64 ms units (24-bit signed on the wire).
    pub reference_time: i32,
    /// Feedback packet count.
    pub fb_count: u8,
}

/// Encodes status `symbols` into chunks in `out`; returns the bytes written.
///
/// Greedy: a run of ≥ 7 equal symbols becomes a run length chunk, otherwise a one-bit vector
/// (14 symbols, all 0/1) or a two-bit vector (7 symbols). The last vector may hold fewer symbols
/// than it has room for (the packet status count tells the receiver where to stop).
fn encode_chunks(symbols: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut i = 0;
    let mut w = 0;
    while i < symbols.len() {
        let sym = symbols[i];
        let run = symbols[i..].iter().take_while(|&&s| s == sym).count();
        let chunk: u16;
        if run >= 7 || i + run == symbols.len() {
            let len = run.min(0x1fff);
            chunk = ((sym as u16 & 3) << 13) | len as u16;
            i += len;
        } else {
            let n14 = (symbols.len() - i).min(14);
            if symbols[i..i + n14].iter().all(|&s| s <= 1) {
                let mut c = 0x8000u16;
                for (k, &s) in symbols[i..i + n14].iter().enumerate() {
                    c |= (s as u16) << (13 - k);
                }
                chunk = c;
                i += n14;
            } else {
                let n7 = (symbols.len() - i).min(7);
                let mut c = 0xc000u16;
                for (k, &s) in symbols[i..i + n7].iter().enumerate() {
                    c |= (s as u16 & 3) << (12 - 2 * k);
                }
                chunk = c;
                i += n7;
            }
        }
        out.get_mut(w..w + 2)?.copy_from_slice(&chunk.to_be_bytes());
        w += 2;
    }
    Some(w)
}

/// Writes a transport-cc feedback packet: `symbols` (one per sequence number from
/// `fb.base_seq`) and `deltas` (one per received symbol, in 250 µs ticks, relative to the
/// previous received packet and, for the first, to the reference time). Padding (with the P bit)
/// makes the length a multiple of 4. Returns the packet length.
pub fn write_transport_cc(
    buf: &mut [u8],
    fb: &FeedbackHeader,
    symbols: &[u8],
    deltas: &[i16],
) -> Result<usize, RtcpError> {
    if symbols.len() > u16::MAX as usize {
        return Err(RtcpError::TooManyItems);
    }
    let too_small =
        |needed: usize, available: usize| RtcpError::BufferTooSmall { needed, available };
    if buf.len() < 20 {
        return Err(too_small(20, buf.len()));
    }
    let avail = buf.len();
    let mut pos = 20;
    pos += encode_chunks(symbols, &mut buf[20..]).ok_or(too_small(avail + 1, avail))?;
    let mut d = 0;
    for &s in symbols {
        match s {
            SYMBOL_SMALL_DELTA | SYMBOL_LARGE_DELTA => {
                let v = *deltas.get(d).ok_or(RtcpError::TooManyItems)?;
                d += 1;
                if s == SYMBOL_SMALL_DELTA {
                    *buf.get_mut(pos).ok_or(too_small(pos + 1, avail))? = v as u8;
                    pos += 1;
                } else {
                    buf.get_mut(pos..pos + 2)
                        .ok_or(too_small(pos + 2, avail))?
                        .copy_from_slice(&v.to_be_bytes());
                    pos += 2;
                }
            }
            _ => {}
        }
    }
    let padding = (4 - pos % 4) % 4;
    let len = pos + padding;
    if len > avail {
        return Err(too_small(len, avail));
    }
    if padding > 0 {
        buf[pos..len - 1].fill(0);
        buf[len - 1] = padding as u8;
    }
    buf[0] = 0x80 | if padding > 0 { 0x20 } else { 0 } | FMT_TRANSPORT_CC;
    buf[1] = PT_RTPFB;
    buf[2..4].copy_from_slice(&((len / 4 - 1) as u16).to_be_bytes());
    buf[4..8].copy_from_slice(&fb.sender_ssrc.to_be_bytes());
    buf[8..12].copy_from_slice(&fb.media_ssrc.to_be_bytes());
    buf[12..14].copy_from_slice(&fb.base_seq.to_be_bytes());
    buf[14..16].copy_from_slice(&(symbols.len() as u16).to_be_bytes());
    let rt = (fb.reference_time as u32) & 0x00ff_ffff;
    buf[16..20].copy_from_slice(&((rt << 8) | fb.fb_count as u32).to_be_bytes());
    Ok(len)
}

/// A parsed transport-cc FCI (the bytes after the sender and media SSRCs).
#[derive(Debug, Clone, Copy)]
pub struct TransportCcFeedback<'a> {
    /// Sequence number of the first status.
    pub base_seq: u16,
    /// Number of statuses.
    pub status_count: u16,
    /// Reference time in 64 ms units (sign-extended from 24 bits).
    pub reference_time: i32,
    /// Feedback packet count.
    pub fb_count: u8,
    chunks: &'a [u8],
    deltas: &'a [u8],
}

/// One packet a transport-cc feedback reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketResult {
    /// Transport-wide sequence number.
    pub seq: u16,
    /// Receive delta in µs (relative to the previous received packet, or to the reference time
    /// for the first); `None`: not received.
    pub delta_us: Option<i64>,
}

impl<'a> TransportCcFeedback<'a> {
    /// Parses the FCI of a transport-cc packet (as [`crate::rtcp::RtcpPacket::TransportCc`]
    /// gives it). Checks that the chunks cover the status count and that every delta is present;
    /// trailing bytes (padding without the P bit) are ignored.
    pub fn parse(fci: &'a [u8]) -> Result<Self, RtcpError> {
        let bad = RtcpError::Malformed {
            pt: PT_RTPFB,
            fmt: FMT_TRANSPORT_CC,
        };
        if fci.len() < 8 {
            return Err(bad);
        }
        let base_seq = u16::from_be_bytes([fci[0], fci[1]]);
        let status_count = u16::from_be_bytes([fci[2], fci[3]]);
        let rt = u32::from_be_bytes([fci[4], fci[5], fci[6], fci[7]]);
        let reference_time = (rt as i32) >> 8; // arithmetic shift sign-extends the 24 bits
        let fb_count = rt as u8;
        // Walk the chunks to find where the deltas start and how many bytes they take.
        let body = &fci[8..];
        let mut pos = 0;
        let mut seen = 0usize;
        let mut delta_bytes = 0usize;
        while seen < status_count as usize {
            let c = body.get(pos..pos + 2).ok_or(bad)?;
            let c = u16::from_be_bytes([c[0], c[1]]);
            pos += 2;
            let remaining = status_count as usize - seen;
            for_each_symbol(c, remaining, |s| {
                delta_bytes += match s {
                    SYMBOL_SMALL_DELTA => 1,
                    SYMBOL_LARGE_DELTA => 2,
                    _ => 0,
                };
            });
            seen += chunk_capacity(c).min(remaining);
        }
        if body.len() < pos + delta_bytes {
            return Err(bad);
        }
        Ok(Self {
            base_seq,
            status_count,
            reference_time,
            fb_count,
            chunks: &body[..pos],
            deltas: &body[pos..pos + delta_bytes],
        })
    }

    /// The reference time in µs.
    pub fn reference_time_us(&self) -> i64 {
        self.reference_time as i64 * REFERENCE_TICK_US
    }

    /// Calls `f` for every reported packet in sequence order.
    pub fn for_each(&self, mut f: impl FnMut(PacketResult)) {
        let mut seq = self.base_seq;
        let mut left = self.status_count as usize;
        let mut d = 0usize;
        for c in self.chunks.chunks_exact(2) {
            if left == 0 {
                break;
            }
            let c = u16::from_be_bytes([c[0], c[1]]);
            let n = chunk_capacity(c).min(left);
            let deltas = self.deltas;
            for_each_symbol(c, left, |s| {
                let delta_us = match s {
                    SYMBOL_SMALL_DELTA => {
                        let v = deltas.get(d).copied().unwrap_or(0) as i64;
                        d += 1;
                        Some(v * DELTA_TICK_US)
                    }
                    SYMBOL_LARGE_DELTA => {
                        let v = deltas
                            .get(d..d + 2)
                            .map(|b| i16::from_be_bytes([b[0], b[1]]))
                            .unwrap_or(0) as i64;
                        d += 2;
                        Some(v * DELTA_TICK_US)
                    }
                    _ => None,
                };
                f(PacketResult { seq, delta_us });
                seq = seq.wrapping_add(1);
            });
            left -= n;
        }
    }
}

/// Statuses a chunk can describe.
fn chunk_capacity(c: u16) -> usize {
    match c >> 14 {
        0 | 1 => (c & 0x1fff) as usize,
        2 => 14,
        _ => 7,
    }
}

/// Calls `f` with each of the first `min(capacity, limit)` symbols of chunk `c`.
fn for_each_symbol(c: u16, limit: usize, mut f: impl FnMut(u8)) {
    match c >> 14 {
        0 | 1 => {
            let sym = ((c >> 13) & 3) as u8;
            for _ in 0..((c & 0x1fff) as usize).min(limit) {
                f(sym);
            }
        }
        2 => {
            for k in 0..14.min(limit) {
                f(((c >> (13 - k)) & 1) as u8);
            }
        }
        _ => {
            for k in 0..7.min(limit) {
                f(((c >> (12 - 2 * k)) & 3) as u8);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp::{RtcpIter, RtcpPacket};

    fn decode_with_webrtc_rs(
        pkt: &[u8],
    ) -> rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc {
        use webrtc_util::marshal::Unmarshal;
        let mut b = bytes::Bytes::copy_from_slice(pkt);
        rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc::unmarshal(&mut b)
            .expect("webrtc-rs decodes our feedback")
    }

    /// Arrival times (µs from epoch) per sequence number the webrtc-rs decoder reconstructs.
    fn arrivals_from_webrtc_rs(pkt: &[u8]) -> Vec<(u16, Option<i64>)> {
        use rtcp::transport_feedbacks::transport_layer_cc::{PacketStatusChunk, SymbolTypeTcc};
        let p = decode_with_webrtc_rs(pkt);
        let mut symbols = Vec::new();
        for c in &p.packet_chunks {
            match c {
                PacketStatusChunk::RunLengthChunk(r) => {
                    for _ in 0..r.run_length {
                        symbols.push(r.packet_status_symbol);
                    }
                }
                PacketStatusChunk::StatusVectorChunk(v) => symbols.extend(v.symbol_list.iter()),
            }
        }
        symbols.truncate(p.packet_status_count as usize);
        let mut t = p.reference_time as i64 * 64_000;
        let mut d = p.recv_deltas.iter();
        symbols
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let seq = p.base_sequence_number.wrapping_add(i as u16);
                match s {
                    SymbolTypeTcc::PacketNotReceived => (seq, None),
                    _ => {
                        t += d.next().expect("a delta per received packet").delta;
                        (seq, Some(t))
                    }
                }
            })
            .collect()
    }

    fn ours(pkt: &[u8]) -> Vec<(u16, Option<i64>)> {
        let mut it = RtcpIter::new(pkt);
        let Some(Ok(RtcpPacket::TransportCc { fci, .. })) = it.next() else {
            panic!("our RtcpIter sees a transport-cc packet");
        };
        let fb = TransportCcFeedback::parse(fci).expect("parse");
        let mut t = fb.reference_time_us();
        let mut v = Vec::new();
        fb.for_each(|r| {
            v.push((
                r.seq,
                r.delta_us.map(|d| {
                    t += d;
                    t
                }),
            ))
        });
        v
    }

    #[test]
    fn feedback_round_trips_through_webrtc_rs_with_losses_and_reordering() {
        let t0 = Instant::now();
        let mut rx = TwccReceiver::new(t0);
        // 65530.. wrapping, a lost run of 20, a lost single, one reordered, a 100 ms gap (large
        // delta), and packets 1 ms apart.
        let mut expected = Vec::new();
        let mut at = 1_000i64; // µs
        let mut seq: u16 = 65_530;
        for i in 0..120u32 {
            let lost = (10..30).contains(&i) || i == 40;
            if i == 60 {
                at += 100_000;
            }
            if !lost {
                expected.push((seq, at));
            }
            seq = seq.wrapping_add(1);
            at += 1_000;
        }
        // Deliver in order except swap two.
        let mut order = expected.clone();
        order.swap(50, 51);
        for &(s, a) in &order {
            rx.on_packet(s, 0x1234, t0 + Duration::from_micros(a as u64));
        }
        let mut buf = [0u8; 1500];
        let n = rx.write_feedback(0xabcd, &mut buf).expect("feedback");
        assert_eq!(n % 4, 0);
        assert!(
            rx.write_feedback(0xabcd, &mut buf[n..]).is_none(),
            "all reported at once"
        );
        let theirs = arrivals_from_webrtc_rs(&buf[..n]);
        assert_eq!(theirs, ours(&buf[..n]), "our parser agrees with webrtc-rs");
        let p = decode_with_webrtc_rs(&buf[..n]);
        assert_eq!(p.sender_ssrc, 0xabcd);
        assert_eq!(p.media_ssrc, 0x1234);
        assert_eq!(p.base_sequence_number, 65_530);
        assert_eq!(p.packet_status_count, 120);
        assert_eq!(p.fb_pkt_count, 0);
        let received: Vec<_> = theirs
            .iter()
            .filter_map(|(s, a)| a.map(|a| (*s, a)))
            .collect();
        assert_eq!(received.len(), expected.len());
        for ((s, a), (es, ea)) in received.iter().zip(expected.iter()) {
            assert_eq!(s, es);
            // 250 µs resolution, no accumulated drift.
            assert!((a - ea).abs() <= 125, "seq {s}: {a} vs {ea}");
        }
        assert!(theirs.iter().filter(|(_, a)| a.is_none()).count() == 21);
    }

    #[test]
    fn hand_decoded_vector_from_the_draft_layout() {
        // base 5, 4 statuses: received small (1 ms), not received, received large (-2 ms),
        // received small (0.25 ms); reference time 3 (192 ms); fb count 7.
        let fb = FeedbackHeader {
            sender_ssrc: 1,
            media_ssrc: 2,
            base_seq: 5,
            reference_time: 3,
            fb_count: 7,
        };
        let mut buf = [0u8; 64];
        let n = write_transport_cc(&mut buf, &fb, &[1, 0, 2, 1], &[4, -8, 1]).unwrap();
        // header: V=2 P=1 FMT=15, PT 205, length 6 (28 bytes)
        assert_eq!(&buf[..4], &[0xaf, 205, 0, 6]);
        assert_eq!(&buf[12..20], &[0, 5, 0, 4, 0, 0, 3, 7]);
        // one 2-bit vector chunk: 11 01 00 10 01 00 00 00 → 0xd2 0x40
        assert_eq!(&buf[20..22], &[0xd2, 0x40]);
        // deltas: 4 (1 byte), -8 (2 bytes), 1 (1 byte), then 2 bytes padding (last = count)
        assert_eq!(&buf[22..28], &[4, 0xff, 0xf8, 1, 0, 2]);
        assert_eq!(n, 28);
        let theirs = arrivals_from_webrtc_rs(&buf[..n]);
        assert_eq!(
            theirs,
            vec![
                (5, Some(192_000 + 1_000)),
                (6, None),
                (7, Some(192_000 - 1_000)),
                (8, Some(192_000 - 750)),
            ]
        );
        assert_eq!(theirs, ours(&buf[..n]));
    }

    #[test]
    fn one_bit_vectors_and_long_runs() {
        // 14 alternating received/lost → one-bit vector; 300 lost → run length.
        let mut symbols = vec![];
        let mut deltas = vec![];
        for i in 0..14 {
            symbols.push((i % 2) as u8);
            if i % 2 == 1 {
                deltas.push(4);
            }
        }
        symbols.extend(std::iter::repeat_n(0u8, 300));
        symbols.push(1);
        deltas.push(8);
        let fb = FeedbackHeader {
            sender_ssrc: 1,
            media_ssrc: 2,
            base_seq: 65_500,
            reference_time: 2,
            fb_count: 255,
        };
        let mut buf = [0u8; 128];
        let n = write_transport_cc(&mut buf, &fb, &symbols, &deltas).unwrap();
        assert_eq!(buf[20] >> 6, 2, "first chunk is a one-bit vector");
        assert_eq!(buf[22] >> 5, 0, "then a run of not-received");
        let theirs = arrivals_from_webrtc_rs(&buf[..n]);
        assert_eq!(theirs.len(), symbols.len());
        assert_eq!(theirs, ours(&buf[..n]));
        let mut it = RtcpIter::new(&buf[..n]);
        let Some(Ok(RtcpPacket::TransportCc { fci, .. })) = it.next() else {
            panic!()
        };
        let p = TransportCcFeedback::parse(fci).unwrap();
        assert_eq!(p.reference_time, 2);
        assert_eq!(p.fb_count, 255);
        // The draft's reference time is signed (webrtc-rs reads it unsigned): ours sign-extends.
        let neg = FeedbackHeader {
            reference_time: -2,
            ..fb
        };
        let n = write_transport_cc(&mut buf, &neg, &symbols, &deltas).unwrap();
        let p = TransportCcFeedback::parse(&buf[12..n]).unwrap();
        assert_eq!(p.reference_time, -2);
        assert_eq!(p.reference_time_us(), -128_000);
    }

    #[test]
    fn parse_rejects_truncated_and_never_panics() {
        let fb = FeedbackHeader {
            sender_ssrc: 1,
            media_ssrc: 2,
            base_seq: 0,
            reference_time: 0,
            fb_count: 0,
        };
        let mut buf = [0u8; 64];
        let n = write_transport_cc(&mut buf, &fb, &[1, 1, 2, 1, 0, 1], &[1, 2, 300, 4, 5]).unwrap();
        let fci = &buf[12..n];
        assert!(TransportCcFeedback::parse(fci).is_ok());
        for cut in 0..(n - 12 - 3) {
            // Cutting into the deltas or chunks must be refused (padding may be cut).
            if cut < 8 + 2 + 6 {
                assert!(
                    TransportCcFeedback::parse(&fci[..cut]).is_err(),
                    "cut {cut}"
                );
            }
        }
        // Garbage of every length: no panic.
        let mut g = [0u8; 40];
        for i in 0..2000u32 {
            for (k, b) in g.iter_mut().enumerate() {
                *b = (i.wrapping_mul(2_654_435_761).rotate_left(k as u32) >> 7) as u8;
            }
            for len in 0..g.len() {
                if let Ok(p) = TransportCcFeedback::parse(&g[..len]) {
                    p.for_each(|_| {});
                }
            }
        }
    }

    #[test]
    fn receiver_paces_feedback_and_splits_large_backlogs() {
        let t0 = Instant::now();
        let mut rx = TwccReceiver::new(t0);
        assert!(rx.next_feedback().is_none());
        for i in (0..1000u16).filter(|&i| i != 995) {
            rx.on_packet(i, 9, t0 + Duration::from_micros(i as u64 * 300));
        }
        assert_eq!(rx.next_feedback(), Some(t0 + FEEDBACK_INTERVAL));
        let mut buf = [0u8; 1200];
        let mut total = 0;
        let mut packets = 0;
        while let Some(n) = rx.write_feedback(1, &mut buf) {
            assert!(n <= 1000);
            let p = decode_with_webrtc_rs(&buf[..n]);
            assert_eq!(p.fb_pkt_count as usize, packets);
            assert_eq!(p.base_sequence_number as usize, total);
            total += p.packet_status_count as usize;
            packets += 1;
        }
        assert_eq!(total, 1000);
        assert_eq!(packets, 3);
        rx.feedback_done(t0 + Duration::from_millis(300));
        assert!(
            rx.next_feedback().is_none(),
            "nothing pending, nothing scheduled"
        );
        // A late packet from before the window is reported again.
        rx.on_packet(995, 9, t0 + Duration::from_millis(310));
        let n = rx.write_feedback(1, &mut buf).unwrap();
        let p = decode_with_webrtc_rs(&buf[..n]);
        assert_eq!(p.base_sequence_number, 995);
    }

    #[test]
    fn unwrapper_handles_wrap_and_reorder() {
        let mut u = SeqUnwrapper::default();
        assert_eq!(u.unwrap(65_534), 65_534);
        assert_eq!(u.unwrap(1), 65_537);
        assert_eq!(u.unwrap(65_535), 65_535);
        assert_eq!(u.unwrap(2), 65_538);
    }
}
