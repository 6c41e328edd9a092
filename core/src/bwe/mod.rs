//! Bandwidth estimation and congestion feedback, sans-IO (time passed in, nothing allocated per
//! packet).
//!
//! * [`twcc`]: transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-
//!   extensions-01): the RTPFB FMT 15 writer and parser, and the receive side that answers a
//!   sending browser with feedback about every packet it sent us.
//! * [`send`]: the send side: our own transport-wide sequence numbers on what we send and a
//!   GoogCC-like estimate of the available outgoing bitrate from the receiver's feedback.
//! * [`delay`]: delay-based overuse detection (trendline) used by both estimators.
//! * [`rate_window`]: the received-bitrate meter both estimators measure arrivals with.
//! * [`remb`]: the receive side for remotes that negotiated REMB (abs-send-time) instead.
//! * [`alloc`]: distribution of that estimate over a transport's consumers (layer choice).
//! * [`TransportBwe`]: the per-transport state the engine keeps: one call per received RTP
//!   packet ([`TransportBwe::on_rtp`]), one per sent one ([`TransportBwe::on_packet_sent`]), the
//!   received feedback, and one timer poll that yields the RTCP to send
//!   ([`TransportBwe::poll_rtcp`]).

pub mod alloc;
pub mod delay;
pub mod rate_window;
pub mod remb;
pub mod send;
pub mod twcc;

use std::time::{Duration, Instant};

use crate::rtp::{find_extension, RtpHeader};
use remb::RembReceiver;
use send::SendSideBwe;
use twcc::{TransportCcFeedback, TwccReceiver};

/// Share of the send-side estimate retransmissions may use.
pub const RTX_SHARE: f64 = 0.3;

/// How often the REMB carrying `maxIncomingBitrate` is repeated (mediasoup: 1.5 s).
pub const LIMITATION_REMB_INTERVAL: Duration = Duration::from_millis(1500);

/// Most media SSRCs one REMB of ours names (audio, video, a simulcast's layers).
const REMB_SSRCS: usize = 8;

/// A transport's send-side numbers, as mediasoup's `bwe` trace (direction out) carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BweInfo {
    /// What the consumers would send at their highest wanted layers.
    pub desired_bitrate: u64,
    /// What the layers chosen for them send.
    pub effective_desired_bitrate: u64,
    /// The estimate (`availableOutgoingBitrate`).
    pub available_bitrate: u64,
}

/// Congestion-control state of one transport.
pub struct TransportBwe {
    /// The remote's transport-wide sequence number extension id (0: not negotiated).
    twcc_ext: u8,
    twcc_rx: Option<Box<TwccReceiver>>,
    /// The remote's abs-send-time extension id, when it expects REMB instead (0: not).
    abs_send_time_ext: u8,
    remb_rx: Option<Box<RembReceiver>>,
    /// The media SSRCs a REMB names (the remote applies it only to streams it lists).
    remb_ssrcs: [u32; REMB_SSRCS],
    remb_ssrc_count: usize,
    /// `setMaxIncomingBitrate`: sent to the remote as a REMB every 1.5 s (browsers cap their
    /// send-side estimate with it).
    max_incoming_bitrate: Option<u64>,
    next_limit_remb: Option<Instant>,
    last_media_ssrc: u32,
    /// Send side (created with the first consumer that negotiated transport-cc or REMB).
    send: Option<Box<SendSideBwe>>,
    /// `initialAvailableOutgoingBitrate` (0: the default).
    initial_outgoing: u64,
    /// `setMaxOutgoingBitrate` (0: none).
    max_outgoing: u64,
    /// Transport-cc / REMB packets that failed to parse.
    pub bad_feedback: u64,
    /// When and with which estimate the last `TransportBwe` event went out.
    last_bwe_event: Option<(Instant, u64)>,
    /// Retransmission budget (bytes) and when it was last refilled.
    rtx_tokens: f64,
    rtx_refill: Option<Instant>,
    /// Retransmissions refused for lack of budget.
    pub rtx_refused: u64,
    /// Layer switches down that stopped the old layer at once because the link was congested.
    pub congestion_drains: u64,
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
            abs_send_time_ext: 0,
            remb_rx: None,
            remb_ssrcs: [0; REMB_SSRCS],
            remb_ssrc_count: 0,
            max_incoming_bitrate: None,
            next_limit_remb: None,
            last_media_ssrc: 0,
            send: None,
            initial_outgoing: 0,
            max_outgoing: 0,
            bad_feedback: 0,
            last_bwe_event: None,
            rtx_tokens: 0.0,
            rtx_refill: None,
            rtx_refused: 0,
            congestion_drains: 0,
        }
    }

    /// The `TransportBwe` event to emit now, if due: every second, or sooner when the estimate
    /// moved by 10 % since the last one.
    pub fn bwe_event_due(&mut self, desired: u64, effective: u64, now: Instant) -> Option<BweInfo> {
        let available = self.available_outgoing_bitrate()?;
        let due = match self.last_bwe_event {
            None => true,
            Some((t, last)) => {
                now.saturating_duration_since(t) >= Duration::from_secs(1)
                    || available.abs_diff(last) * 10 > last
            }
        };
        if !due {
            return None;
        }
        self.last_bwe_event = Some((now, available));
        Some(BweInfo {
            desired_bitrate: desired,
            effective_desired_bitrate: effective,
            available_bitrate: available,
        })
    }

    /// Sets the estimate the send side starts from (`initialAvailableOutgoingBitrate`; 0: the
    /// default 600 kbit/s). Only effective before the send side starts.
    pub fn set_initial_outgoing_bitrate(&mut self, bps: u64) {
        self.initial_outgoing = bps;
    }

    /// Starts the send-side estimator (idempotent): called when a consumer negotiated
    /// transport-cc or REMB on this transport.
    pub fn enable_send_side(&mut self, now: Instant) {
        if self.send.is_none() {
            self.send = Some(Box::new(SendSideBwe::new(
                now,
                self.initial_outgoing,
                self.max_outgoing,
            )));
        }
    }

    /// Caps the outgoing estimate (`setMaxOutgoingBitrate`; 0 removes the cap).
    pub fn set_max_outgoing_bitrate(&mut self, bps: u64) {
        self.max_outgoing = bps;
        if let Some(s) = self.send.as_mut() {
            s.set_max_bitrate(bps);
        }
    }

    /// The outgoing bitrate cap, if any.
    pub fn max_outgoing_bitrate(&self) -> Option<u64> {
        (self.max_outgoing > 0).then_some(self.max_outgoing)
    }

    /// The send-side estimate (`availableOutgoingBitrate`), once the send side runs.
    pub fn available_outgoing_bitrate(&self) -> Option<u64> {
        self.send.as_ref().map(|s| s.estimate_bps())
    }

    /// The send-side estimator, once it runs.
    pub fn send_side(&self) -> Option<&SendSideBwe> {
        self.send.as_deref()
    }

    /// The send-side estimator, once it runs.
    pub fn send_side_mut(&mut self) -> Option<&mut SendSideBwe> {
        self.send.as_deref_mut()
    }

    /// The transport-wide sequence number to write into the next packet sent (0 when the send
    /// side does not run); confirm with [`on_packet_sent`](Self::on_packet_sent).
    #[inline]
    pub fn next_send_seq(&self) -> u16 {
        self.send.as_ref().map_or(0, |s| s.next_seq())
    }

    /// The packet carrying [`next_send_seq`](Self::next_send_seq) (`size` bytes) was sent.
    #[inline]
    pub fn on_packet_sent(&mut self, size: usize, now: Instant) {
        if let Some(s) = self.send.as_mut() {
            s.on_packet_sent(size, now);
        }
    }

    /// A transport-cc feedback FCI from the remote arrived; malformed ones are counted.
    /// Returns whether the estimate fell noticeably (the layers should be reallocated now).
    pub fn on_transport_cc(&mut self, fci: &[u8], now: Instant) -> bool {
        let Some(s) = self.send.as_mut() else {
            return false;
        };
        match TransportCcFeedback::parse(fci) {
            Ok(fb) => s.on_feedback(&fb, now),
            Err(_) => self.bad_feedback += 1,
        }
        s.take_decreased()
    }

    /// A REMB from the remote arrived. Returns whether the estimate fell noticeably.
    pub fn on_remb(&mut self, bps: u64, now: Instant) -> bool {
        let Some(s) = self.send.as_mut() else {
            return false;
        };
        s.on_remb(bps, now);
        s.take_decreased()
    }

    /// Whether a retransmission of `size` bytes may be sent now. Retransmissions get a budget of
    /// [`RTX_SHARE`] of the estimate (a token bucket holding at most half a second of it): on a
    /// congested link a NACK storm would otherwise fill the queue with repairs of frames the
    /// receiver is about to give up on, and delay the keyframe of the layer switched down to.
    /// Unlimited until the receiver sent feedback.
    pub fn allow_retransmission(&mut self, size: usize, now: Instant) -> bool {
        let Some(s) = self.send.as_ref().filter(|s| s.has_feedback()) else {
            return true;
        };
        let rate = s.estimate_bps() as f64 / 8.0 * RTX_SHARE;
        let cap = rate * 0.5;
        let dt = self
            .rtx_refill
            .map_or(0.5, |t| now.saturating_duration_since(t).as_secs_f64());
        self.rtx_refill = Some(now);
        self.rtx_tokens = (self.rtx_tokens + rate * dt).min(cap);
        if self.rtx_tokens < size as f64 {
            self.rtx_refused += 1;
            return false;
        }
        self.rtx_tokens -= size as f64;
        true
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
        // transport-cc wins: the remote estimates itself.
        self.remb_rx = None;
        self.abs_send_time_ext = 0;
    }

    /// The remote sends abs-send-time with extension `id` and no transport-wide sequence
    /// numbers (a REMB client): from now on its packets feed [`RembReceiver`] and REMBs carry
    /// our estimate back. Ignored once transport-cc is on.
    pub fn enable_remb_feedback(&mut self, id: u8, now: Instant) {
        if id == 0 || id > 254 || self.twcc_rx.is_some() {
            return;
        }
        self.abs_send_time_ext = id;
        if self.remb_rx.is_none() {
            self.remb_rx = Some(Box::new(RembReceiver::new(now)));
        }
    }

    /// The REMB receive side's estimate of what the remote may send us (mediasoup's
    /// `availableIncomingBitrate`), once it measured something.
    pub fn available_incoming_bitrate(&self) -> Option<u64> {
        self.remb_rx.as_ref().and_then(|r| r.estimate_bps())
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
        if let Some(r) = self.remb_rx.as_mut() {
            if let Some([a, b, c, ..]) = find_extension(buf, hdr, self.abs_send_time_ext) {
                r.on_packet(u32::from_be_bytes([0, *a, *b, *c]), buf.len(), now);
                if !self.remb_ssrcs[..self.remb_ssrc_count].contains(&hdr.ssrc) {
                    // The newest streams, oldest replaced first.
                    self.remb_ssrcs.rotate_right(1);
                    self.remb_ssrcs[0] = hdr.ssrc;
                    self.remb_ssrc_count = (self.remb_ssrc_count + 1).min(REMB_SSRCS);
                }
            }
            return;
        }
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
        let a = match (a, self.remb_rx.as_ref().and_then(|r| r.next_due())) {
            (Some(a), Some(r)) => Some(a.min(r)),
            (a, r) => a.or(r),
        };
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
        if self.remb_rx.is_some() {
            // The estimate's REMB carries the limit too.
            let cap = self.max_incoming_bitrate;
            let bps = self.remb_rx.as_mut().and_then(|r| r.poll(now, cap))?;
            let ssrcs = &self.remb_ssrcs[..self.remb_ssrc_count];
            return crate::rtcp::write_remb(buf, sender_ssrc, bps, ssrcs).ok();
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
    fn retransmissions_get_a_share_of_the_estimate() {
        let t0 = Instant::now();
        let mut bwe = TransportBwe::new();
        // No send side, or no feedback yet: unlimited.
        assert!((0..100).all(|_| bwe.allow_retransmission(1200, t0)));
        bwe.set_initial_outgoing_bitrate(400_000);
        bwe.enable_send_side(t0);
        assert!((0..100).all(|_| bwe.allow_retransmission(1200, t0)));
        bwe.on_remb(400_000, t0);
        // 30 % of 400 kbit/s = 15 kB/s, at most half a second of it banked.
        let mut sent = 0;
        for ms in 0..2000u64 {
            let now = t0 + Duration::from_millis(ms);
            while bwe.allow_retransmission(1200, now) {
                sent += 1200;
            }
        }
        assert!((27_000..=38_000).contains(&sent), "{sent} bytes in 2 s");
        assert!(bwe.rtx_refused > 0);
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

    fn rtp_with_abs_send_time(ssrc: u32, abs: u32, ext_id: u8) -> Vec<u8> {
        let mut p = vec![0x90, 96, 0, 1, 0, 0, 0, 1];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0xbe, 0xde, 0, 1]);
        let a = abs.to_be_bytes();
        p.extend_from_slice(&[(ext_id << 4) | 2, a[1], a[2], a[3]]);
        p.extend_from_slice(&[0u8; 900]);
        p
    }

    #[test]
    fn a_remb_client_gets_rembs_naming_its_streams_until_transport_cc_takes_over() {
        let t0 = Instant::now();
        let mut bwe = TransportBwe::new();
        bwe.enable_remb_feedback(4, t0);
        let mut buf = [0u8; 1500];
        let mut rembs = Vec::new();
        for i in 0..300u32 {
            let at = Duration::from_millis(u64::from(i) * 10);
            let abs = ((at.as_micros() << 18) / 1_000_000) as u32;
            let p = rtp_with_abs_send_time(if i % 3 == 0 { 11 } else { 22 }, abs, 4);
            bwe.on_rtp(&p, &RtpHeader::parse(&p).unwrap(), t0 + at);
            while let Some(n) = bwe.poll_rtcp(t0 + at, 1, &mut buf) {
                let Some(Ok(RtcpPacket::Remb {
                    bitrate_bps, ssrcs, ..
                })) = RtcpIter::new(&buf[..n]).next()
                else {
                    panic!("REMB");
                };
                rembs.push((bitrate_bps, ssrcs.collect::<Vec<_>>()));
            }
        }
        assert!(rembs.len() >= 2, "{rembs:?}");
        let (bps, ssrcs) = rembs.last().unwrap();
        assert!(ssrcs.contains(&11) && ssrcs.contains(&22), "{ssrcs:?}");
        assert!(*bps >= 700_000, "about 740 kbit/s arrive: {bps}");
        assert!(bwe
            .available_incoming_bitrate()
            .is_some_and(|b| b >= 700_000));
        // A producer with transport-cc on the same transport: feedback replaces REMB.
        bwe.enable_receive_feedback(3, t0 + Duration::from_secs(3));
        assert_eq!(bwe.available_incoming_bitrate(), None);
        assert!(bwe
            .poll_rtcp(t0 + Duration::from_secs(5), 1, &mut buf)
            .is_none());
    }
}
