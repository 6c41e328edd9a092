//! Bandwidth estimation and congestion feedback, sans-IO (time passed in, nothing allocated per
//! packet).
//!
//! * [`twcc`]: transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-
//!   extensions-01): the RTPFB FMT 15 writer and parser, and the receive side that answers a
//!   sending browser with feedback about every packet it sent us.
//! * [`TransportBwe`]: the per-transport state the engine keeps: one call per received RTP
//!   packet ([`TransportBwe::on_rtp`]) and one timer poll that yields the RTCP to send
//!   ([`TransportBwe::poll_rtcp`]).

pub mod twcc;

use std::time::{Duration, Instant};

use crate::rtp::{find_extension, RtpHeader};
use twcc::TwccReceiver;

/// How often the REMB carrying `maxIncomingBitrate` is repeated (mediasoup: 1.5 s).
pub const LIMITATION_REMB_INTERVAL: Duration = Duration::from_millis(1500);

/// Congestion-control state of one transport.
pub struct TransportBwe {
    /// The remote's transport-wide sequence number extension id (0: not negotiated).
    twcc_ext: u8,
    twcc_rx: Option<Box<TwccReceiver>>,
    /// `setMaxIncomingBitrate`: sent to the remote as a REMB every 1.5 s (browsers cap their
    /// send-side estimate with it).
    max_incoming_bitrate: Option<u64>,
    next_limit_remb: Option<Instant>,
    last_media_ssrc: u32,
}

impl Default for TransportBwe {
    fn default() -> Self {
        Self::new()
    }
}

impl TransportBwe {
    /// State with nothing negotiated.
    pub fn new() -> Self {
        Self {
            twcc_ext: 0,
            twcc_rx: None,
            max_incoming_bitrate: None,
            next_limit_remb: None,
            last_media_ssrc: 0,
        }
    }

    /// The remote sends transport-wide sequence numbers with extension `id` (learned from a
    /// producer's header extensions): from now on every packet's arrival is recorded and
    /// transport-cc feedback is sent.
    pub fn enable_receive_feedback(&mut self, id: u8, now: Instant) {
        if id == 0 || id > 254 {
            return;
        }
        self.twcc_ext = id;
        if self.twcc_rx.is_none() {
            self.twcc_rx = Some(Box::new(TwccReceiver::new(now)));
        }
    }

    /// Whether transport-cc feedback is sent for what this transport receives.
    pub fn sends_feedback(&self) -> bool {
        self.twcc_rx.is_some()
    }

    /// Sets (or with 0 clears) the incoming bitrate limit announced to the remote.
    pub fn set_max_incoming_bitrate(&mut self, bps: u64, now: Instant) {
        self.max_incoming_bitrate = (bps > 0).then_some(bps);
        self.next_limit_remb = self.max_incoming_bitrate.map(|_| now);
    }

    /// The incoming bitrate limit, if any.
    pub fn max_incoming_bitrate(&self) -> Option<u64> {
        self.max_incoming_bitrate
    }

    /// Packets recorded and feedback packets sent by the receive side.
    pub fn receive_counters(&self) -> (u64, u64) {
        self.twcc_rx
            .as_ref()
            .map_or((0, 0), |r| (r.packets, r.feedbacks))
    }

    /// A decrypted RTP packet `buf` (parsed as `hdr`) arrived at `now`. Called for every packet
    /// (media, RTX and padding probes alike) before it is matched to a stream.
    #[inline]
    pub fn on_rtp(&mut self, buf: &[u8], hdr: &RtpHeader, now: Instant) {
        let Some(rx) = self.twcc_rx.as_mut() else {
            return;
        };
        if let Some([a, b, ..]) = find_extension(buf, hdr, self.twcc_ext) {
            rx.on_packet(u16::from_be_bytes([*a, *b]), hdr.ssrc, now);
            self.last_media_ssrc = hdr.ssrc;
        }
    }

    /// The earliest time [`poll_rtcp`](Self::poll_rtcp) has something to send.
    pub fn next_timeout(&self) -> Option<Instant> {
        let a = self.twcc_rx.as_ref().and_then(|r| r.next_feedback());
        match (a, self.next_limit_remb) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Writes the next due RTCP packet (transport-cc feedback, limitation REMB) into `buf` and
    /// returns its length; call until `None`.
    pub fn poll_rtcp(&mut self, now: Instant, sender_ssrc: u32, buf: &mut [u8]) -> Option<usize> {
        if let Some(rx) = self.twcc_rx.as_mut() {
            if rx.is_due(now) {
                match rx.write_feedback(sender_ssrc, buf) {
                    Some(n) => return Some(n),
                    None => rx.feedback_done(now),
                }
            }
        }
        if let (Some(bps), Some(t)) = (self.max_incoming_bitrate, self.next_limit_remb) {
            if now >= t {
                self.next_limit_remb = Some(now + LIMITATION_REMB_INTERVAL);
                let ssrcs = [self.last_media_ssrc];
                let ssrcs = if self.last_media_ssrc != 0 {
                    &ssrcs[..]
                } else {
                    &[]
                };
                return crate::rtcp::write_remb(buf, sender_ssrc, bps, ssrcs).ok();
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp::{RtcpIter, RtcpPacket};

    fn rtp_with_twcc(seq: u16, ext_id: u8) -> Vec<u8> {
        let mut p = vec![0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 7, 0xbe, 0xde, 0, 1];
        p.extend_from_slice(&[(ext_id << 4) | 1, (seq >> 8) as u8, seq as u8, 0]);
        p.extend_from_slice(&[1, 2, 3, 4]);
        p
    }

    #[test]
    fn records_packets_and_sends_feedback_and_limit_remb() {
        let t0 = Instant::now();
        let mut bwe = TransportBwe::new();
        let mut buf = [0u8; 1500];
        // Not negotiated: nothing recorded, nothing sent.
        let p = rtp_with_twcc(1, 3);
        bwe.on_rtp(&p, &RtpHeader::parse(&p).unwrap(), t0);
        assert!(bwe
            .poll_rtcp(t0 + Duration::from_secs(1), 1, &mut buf)
            .is_none());
        bwe.enable_receive_feedback(3, t0);
        for i in 0..10u16 {
            let p = rtp_with_twcc(100 + i, 3);
            bwe.on_rtp(
                &p,
                &RtpHeader::parse(&p).unwrap(),
                t0 + Duration::from_millis(i as u64),
            );
        }
        assert_eq!(bwe.receive_counters().0, 10);
        assert!(bwe
            .poll_rtcp(t0 + Duration::from_millis(50), 1, &mut buf)
            .is_none());
        let n = bwe
            .poll_rtcp(t0 + Duration::from_millis(110), 1, &mut buf)
            .expect("feedback due after 100 ms");
        let mut it = RtcpIter::new(&buf[..n]);
        let Some(Ok(RtcpPacket::TransportCc {
            fci, media_ssrc, ..
        })) = it.next()
        else {
            panic!("transport-cc");
        };
        assert_eq!(media_ssrc, 7);
        let fb = twcc::TransportCcFeedback::parse(fci).unwrap();
        assert_eq!((fb.base_seq, fb.status_count), (100, 10));
        assert!(bwe
            .poll_rtcp(t0 + Duration::from_millis(110), 1, &mut buf)
            .is_none());
        bwe.set_max_incoming_bitrate(1_500_000, t0 + Duration::from_millis(120));
        let n = bwe
            .poll_rtcp(t0 + Duration::from_millis(120), 1, &mut buf)
            .expect("limitation REMB at once");
        let Some(Ok(RtcpPacket::Remb { bitrate_bps, .. })) = RtcpIter::new(&buf[..n]).next() else {
            panic!("REMB");
        };
        assert!((1_490_000..=1_500_000).contains(&bitrate_bps));
        assert!(bwe
            .poll_rtcp(t0 + Duration::from_millis(500), 1, &mut buf)
            .is_none());
        assert!(bwe
            .poll_rtcp(t0 + Duration::from_millis(1700), 1, &mut buf)
            .is_some());
    }
}
