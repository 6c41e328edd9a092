//! Output numbering of a consumer's stream: the offsets that turn a producer's RTP sequence
//! numbers, VP8 picture ids and TL0PICIDX into the consumer's, kept continuous across resyncs
//! (pause, spatial layer switch) and across packets the consumer drops on purpose (temporal layers
//! above the one it forwards), as mediasoup's `SeqManager` and VP8 encoding context do: a dropped
//! packet takes no output sequence number, so the receiver sees no gap to NACK, and a dropped
//! frame takes no picture id.
//!
//! The offsets change over time, so a short history maps a late (reordered) packet or a NACKed
//! output sequence number with the offsets that were in force for it. Fixed size, no allocation.

/// History entries kept: every run of dropped packets adds one (a few per second at most).
pub const OFFSET_HISTORY: usize = 32;

/// The offsets in force from one producer sequence number on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offsets {
    /// First producer sequence number these offsets apply to.
    pub from: u16,
    /// Added to producer sequence numbers.
    pub seq: u16,
    /// Added to VP8 picture ids (modulo 2^15 or 2^7, the field's width).
    pub picture_id: u16,
    /// Added to VP8 TL0PICIDX.
    pub tl0: u8,
}

/// The offset history of one consumer stream (see the module documentation).
#[derive(Debug, Clone)]
pub struct SeqMap {
    ring: [Offsets; OFFSET_HISTORY],
    /// Index of the newest entry.
    head: usize,
    /// Valid entries (0 until the first [`reset`](Self::reset)).
    len: usize,
    /// Highest producer sequence number seen since the last reset (sent or dropped).
    highest: u16,
    /// Picture id of the last frame dropped (so a frame's packets take one picture id off once).
    last_dropped_pid: Option<u16>,
}

impl Default for SeqMap {
    fn default() -> Self {
        SeqMap {
            ring: [Offsets::default(); OFFSET_HISTORY],
            head: 0,
            len: 0,
            highest: 0,
            last_dropped_pid: None,
        }
    }
}

/// `a` is at or after `b` in 16-bit sequence space.
fn at_or_after(a: u16, b: u16) -> bool {
    a.wrapping_sub(b) < 0x8000
}

impl SeqMap {
    /// Starts a new stretch at producer sequence number `from` with these offsets (forgets the
    /// history: packets from before the resync point are not mapped any more).
    pub fn reset(&mut self, from: u16, seq: u16, picture_id: u16, tl0: u8) {
        self.head = 0;
        self.len = 1;
        self.ring[0] = Offsets {
            from,
            seq,
            picture_id,
            tl0,
        };
        self.highest = from.wrapping_sub(1);
        self.last_dropped_pid = None;
    }

    /// The newest offsets (what a resync continues from), if any.
    pub fn current(&self) -> Option<Offsets> {
        (self.len > 0).then(|| self.ring[self.head])
    }

    /// The offsets for producer sequence number `seq`; `None` when it is older than the
    /// history (or than the current stretch).
    pub fn lookup(&mut self, seq: u16) -> Option<Offsets> {
        if self.len == 0 {
            return None;
        }
        if at_or_after(seq, self.highest) {
            self.highest = seq;
            return Some(self.ring[self.head]);
        }
        // A late packet: the newest entry that starts at or before it.
        if self.highest.wrapping_sub(seq) > 3000 {
            return None;
        }
        (0..self.len)
            .map(|i| self.ring[(self.head + OFFSET_HISTORY - i) % OFFSET_HISTORY])
            .find(|o| at_or_after(seq, o.from) && at_or_after(self.highest, o.from))
    }

    /// Records that producer packet `seq` (of the frame with VP8 picture id `picture_id`, if
    /// any) is dropped on purpose: later packets take its output number, and a dropped frame's
    /// picture id is taken by the next frame. A late packet's drop changes nothing (its output
    /// number stays a gap: the receiver may NACK it).
    pub fn drop_packet(&mut self, seq: u16, picture_id: Option<u16>) {
        // Only a packet newer than everything seen moves the numbering.
        if self.len == 0 || !at_or_after(seq, self.highest.wrapping_add(1)) {
            return;
        }
        self.highest = seq;
        let mut next = self.ring[self.head];
        next.seq = next.seq.wrapping_sub(1);
        if let Some(pid) = picture_id {
            if self.last_dropped_pid != Some(pid) {
                self.last_dropped_pid = Some(pid);
                next.picture_id = next.picture_id.wrapping_sub(1);
            }
        }
        next.from = seq.wrapping_add(1);
        if self.ring[self.head].from == seq {
            // A run of drops: the entry nobody used yet moves on.
            self.ring[self.head] = next;
        } else {
            self.head = (self.head + 1) % OFFSET_HISTORY;
            self.ring[self.head] = next;
            self.len = (self.len + 1).min(OFFSET_HISTORY);
        }
    }

    /// The producer sequence number and offsets behind output sequence number `out` (a NACK),
    /// if it is in the history.
    pub fn reverse(&self, out: u16) -> Option<(u16, Offsets)> {
        (0..self.len)
            .map(|i| self.ring[(self.head + OFFSET_HISTORY - i) % OFFSET_HISTORY])
            .find(|o| at_or_after(out, o.from.wrapping_add(o.seq)))
            .map(|o| (out.wrapping_sub(o.seq), o))
            .filter(|(seq, _)| at_or_after(self.highest, *seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Maps `seqs` in order, dropping those in `drop`; returns the output numbers of the rest.
    fn run(m: &mut SeqMap, seqs: impl IntoIterator<Item = u16>, drop: &[u16]) -> Vec<u16> {
        let mut out = vec![];
        for s in seqs {
            if drop.contains(&s) {
                m.drop_packet(s, None);
            } else if let Some(o) = m.lookup(s) {
                out.push(s.wrapping_add(o.seq));
            }
        }
        out
    }

    #[test]
    fn dropped_packets_leave_no_gap_across_the_wrap() {
        let mut m = SeqMap::default();
        m.reset(65530, 100u16.wrapping_sub(65530), 0, 0);
        let out = run(&mut m, 65530..=65535, &[65532, 65533]);
        let out2 = run(&mut m, 0..6, &[1, 2, 3]);
        assert_eq!(out, [100, 101, 102, 103]);
        assert_eq!(out2, [104, 105, 106]);
    }

    #[test]
    fn late_packets_and_nacks_use_the_offsets_of_their_time() {
        let mut m = SeqMap::default();
        m.reset(10, 0, 0, 0);
        // 10 11 sent, 12 13 dropped, 15 arrives before 14, 16 dropped, 17 sent.
        assert_eq!(m.lookup(10).unwrap().seq, 0);
        assert_eq!(m.lookup(11).unwrap().seq, 0);
        m.drop_packet(12, None);
        m.drop_packet(13, None);
        assert_eq!(15u16.wrapping_add(m.lookup(15).unwrap().seq), 13);
        assert_eq!(14u16.wrapping_add(m.lookup(14).unwrap().seq), 12, "late 14");
        m.drop_packet(16, None);
        assert_eq!(17u16.wrapping_add(m.lookup(17).unwrap().seq), 14);
        // A late 11 still maps to 11.
        assert_eq!(11u16.wrapping_add(m.lookup(11).unwrap().seq), 11);
        // NACKs of output numbers find the producer packets.
        assert_eq!(m.reverse(11).map(|r| r.0), Some(11));
        assert_eq!(m.reverse(12).map(|r| r.0), Some(14));
        assert_eq!(m.reverse(13).map(|r| r.0), Some(15));
        assert_eq!(m.reverse(14).map(|r| r.0), Some(17));
        assert_eq!(m.reverse(15), None, "not sent yet");
        // Older than the stretch.
        assert!(m.lookup(9).is_none());
    }

    #[test]
    fn a_dropped_frame_takes_one_picture_id() {
        let mut m = SeqMap::default();
        m.reset(0, 0, 0, 0);
        m.lookup(0);
        m.drop_packet(1, Some(41));
        m.drop_packet(2, Some(41));
        m.drop_packet(3, Some(42));
        let o = m.lookup(4).unwrap();
        assert_eq!(
            (o.seq, o.picture_id),
            (0u16.wrapping_sub(3), 0u16.wrapping_sub(2))
        );
    }
}
