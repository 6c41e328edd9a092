//! RTCP: received feedback (NACK → retransmission, PLI/FIR → key-frame request, receiver
//! reports), and the timers: ICE consent, NACK generation, SR/RR reports, simulcast layer selection.

use super::*;

impl Engine {
    /// A clear RTCP compound packet (decrypted by the caller) of transport `tkey`.
    pub(super) fn handle_rtcp(
        &mut self,
        tkey: usize,
        buf: &mut Box<[u8]>,
        len: usize,
        now: Instant,
    ) {
        let t = &mut self.transports[tkey];
        t.counters.rtcp_packets_received += 1;
        // Feedback is handled after parsing so the packet buffer is not borrowed while sending.
        // The lists are the engine's, reused (taken here, put back below): no allocation.
        let mut nacks = std::mem::take(&mut self.rtcp_nacks);
        let mut keyframe_ssrcs = std::mem::take(&mut self.rtcp_keyframes);
        nacks.clear();
        keyframe_ssrcs.clear();
        // Consumers whose score changed with this report (a few per packet; more wait for the
        // next report): a stack array, no allocation.
        let mut score_changed = [0usize; 8];
        let mut n_score_changed = 0;
        let mut estimate_fell = false;
        for pkt in rtcp::RtcpIter::new(&buf[..len]) {
            let Ok(pkt) = pkt else {
                self.drops.bad_rtp += 1;
                break;
            };
            match pkt {
                RtcpPacket::SenderReport { info, .. } => {
                    if let Some(&(pkey, layer, false)) = t.ssrc_table.get(&info.ssrc) {
                        let s = &mut self.producers[pkey].streams[layer];
                        s.last_sr = Some((info.ntp_middle(), now));
                        s.stats.on_sender_report(info.ntp_sec, info.ntp_frac, now);
                    }
                }
                RtcpPacket::ReceiverReport { reports, .. } => {
                    for block in reports {
                        if let Some(&c) = t
                            .consumers
                            .iter()
                            .find(|c| self.consumers[**c].ssrc == block.ssrc)
                        {
                            let (sec, frac) = self.wall.ntp(now);
                            let rtt = rtcp::rtt_from_report(
                                (sec << 16) | (frac >> 16),
                                block.lsr,
                                block.dlsr,
                            );
                            let cc = &mut self.consumers[c];
                            cc.last_rr = Some((block.fraction_lost, rtt));
                            let (sent, rtx) = (cc.counters.packets, cc.counters.retransmitted);
                            let lost = i64::from(block.cumulative_lost);
                            if n_score_changed < score_changed.len()
                                && cc.score.on_receiver_report(sent, lost, rtx, rtx).is_some()
                            {
                                score_changed[n_score_changed] = c;
                                n_score_changed += 1;
                            }
                        }
                    }
                }
                RtcpPacket::Nack {
                    media_ssrc, items, ..
                } => {
                    for seq in items.lost_seqs() {
                        if nacks.len() < RTCP_NACK_LIMIT {
                            nacks.push((media_ssrc, seq));
                        }
                    }
                }
                RtcpPacket::Pli { media_ssrc, .. }
                    if keyframe_ssrcs.len() < RTCP_KEYFRAME_LIMIT =>
                {
                    keyframe_ssrcs.push(media_ssrc);
                }
                RtcpPacket::TransportCc { fci, .. } => {
                    estimate_fell |= t.bwe.on_transport_cc(fci, now);
                }
                RtcpPacket::Remb { bitrate_bps, .. } => {
                    estimate_fell |= t.bwe.on_remb(bitrate_bps, now);
                }
                RtcpPacket::Fir { entries, .. } => {
                    for e in entries {
                        if keyframe_ssrcs.len() < RTCP_KEYFRAME_LIMIT {
                            keyframe_ssrcs.push(e.ssrc);
                        }
                    }
                }
                _ => {}
            }
        }
        for &c in &score_changed[..n_score_changed] {
            self.emit_consumer_score(c);
        }
        if estimate_fell {
            // Reallocate at the next tick, not at the next periodic allocation.
            self.next_alloc = Some(now);
        }
        for &ssrc in &keyframe_ssrcs {
            if let Some(c) = self.consumer_by_ssrc(tkey, ssrc) {
                self.consumers[c].counters.keyframe_requests += 1;
                self.consumer_wants_keyframe(c, now);
            }
        }
        let mut last_ssrc = None;
        for &(ssrc, seq) in &nacks {
            let Some(ckey) = self.consumer_by_ssrc(tkey, ssrc) else {
                continue;
            };
            if last_ssrc != Some(ssrc) {
                self.consumers[ckey].counters.nacks += 1;
                last_ssrc = Some(ssrc);
            }
            self.retransmit(ckey, seq, now);
        }
        self.rtcp_nacks = nacks;
        self.rtcp_keyframes = keyframe_ssrcs;
    }

    pub(super) fn consumer_by_ssrc(&self, tkey: usize, ssrc: u32) -> Option<usize> {
        self.transports[tkey]
            .consumers
            .iter()
            .copied()
            .find(|c| self.consumers[*c].ssrc == ssrc)
    }

    pub(super) fn retransmit(&mut self, ckey: usize, consumer_seq: u16, now: Instant) {
        let c = &mut self.consumers[ckey];
        let Some(layer) = c.current_layer else { return };
        let p = &self.producers[c.producer];
        let Some(pseq) = c.producer_seq(consumer_seq) else {
            c.counters.nack_misses += 1;
            return;
        };
        let Some(stored) = p.streams[layer].store.as_ref().and_then(|s| s.get(pseq)) else {
            c.counters.nack_misses += 1;
            return;
        };
        let Ok(hdr) = RtpHeader::parse(stored) else {
            return;
        };
        let ct = &mut self.transports[c.transport];
        if !ct.can_send() || !ct.bwe.allow_retransmission(stored.len(), now) {
            return;
        }
        let dst = self.tx.next_buffer();
        let twcc_seq = ct.bwe.next_send_seq();
        let Some(n) = c.write_retransmission(stored, &hdr, consumer_seq, twcc_seq, dst) else {
            return;
        };
        if c.twcc_ext != 0 {
            ct.bwe.on_packet_sent(n, now);
        }
        let n = match ct.srtp_out.as_mut() {
            Some(ctx) => match ctx.protect_rtp(dst, n) {
                Ok(m) => m,
                Err(_) => return,
            },
            None => n,
        };
        if let Some(route) = ct.route {
            self.tx.commit(n, route);
        }
    }

    /// Builds an RTCP packet with `build` into a send buffer, protects it and queues it to the
    /// transport's RTCP destination.
    pub(super) fn send_rtcp(
        &mut self,
        tkey: usize,
        build: impl FnOnce(&Transport, &mut [u8]) -> Result<usize, rtcp::RtcpError>,
    ) {
        let Some(t) = self.transports.get_mut(tkey) else {
            return;
        };
        let Some(route) = t.rtcp_route else { return };
        let is_webrtc = t.webrtc().is_some();
        if is_webrtc && t.srtp_out.is_none() {
            return;
        }
        let dst = self.tx.next_buffer();
        let n = match build(t, &mut dst[..PACKET_BUF_SIZE - 64]) {
            Ok(n) if n > 0 => n,
            _ => return,
        };
        let n = match t.srtp_out.as_mut() {
            Some(ctx) => match ctx.protect_rtcp(dst, n) {
                Ok(m) => m,
                Err(_) => return,
            },
            None => n,
        };
        t.counters.rtcp_packets_sent += 1;
        self.tx.commit(n, route);
    }

    // ---------------------------------------------------------------- timers

    /// Runs timers: NACKs upstream and congestion feedback (every tick), layer allocation (every
    /// 250 ms), receiver/sender reports and ICE consent (every second). `wall` is the wall clock
    /// read with `now`: it re-anchors the engine's wall time (NTP in reports, stats timestamps).
    pub fn handle_timeout(&mut self, now: Instant, wall: SystemTime) {
        self.wall = WallClock::new(now, wall);
        if self.next_tick.is_some_and(|t| now < t) {
            return;
        }
        self.next_tick = Some(now + TICK);
        self.send_nacks(now);
        self.send_bwe_feedback(now);
        self.dtls_timers(now);
        self.sctp_timers(now);
        self.run_observers(now);
        if self.next_report.is_none_or(|t| now >= t) {
            self.next_report = Some(now + REPORT_INTERVAL);
            self.check_ice(now);
            self.send_reports(now);
            self.update_scores(now);
        }
        if self.next_alloc.is_none_or(|t| now >= t) {
            self.next_alloc = Some(now + ALLOC_INTERVAL);
            self.select_layers(now);
            self.drain_congested(now);
        }
    }

    pub(super) fn check_ice(&mut self, now: Instant) {
        for (_, t) in self.transports.iter_mut() {
            let id = t.id;
            if let TransportKind::WebRtc(w) = &mut t.kind {
                w.ice.handle_timeout(now);
                while let Some(ev) = w.ice.poll_event() {
                    if let IceEvent::StateChanged(state) = ev {
                        self.events.push_back(EngineEvent::IceStateChange {
                            transport: id,
                            state,
                        });
                    }
                }
            }
        }
    }

    pub(super) fn send_nacks(&mut self, now: Instant) {
        // Index walk instead of collecting keys: this runs every tick and must not allocate.
        for pkey in 0..self.producers.capacity() {
            if !self.producers.contains(pkey) {
                continue;
            }
            let nstreams = self.producers[pkey].streams.len();
            for i in 0..nstreams {
                let mut lost = std::mem::take(&mut self.nack_scratch);
                lost.clear();
                let p = &mut self.producers[pkey];
                let s = &mut p.streams[i];
                if s.store.is_none() {
                    self.nack_scratch = lost;
                    continue;
                }
                s.nack.poll_nacks(now, &mut lost);
                let media = s.ssrc;
                let tkey = p.transport;
                if let (false, Some(media)) = (lost.is_empty(), media) {
                    let seqs = &lost;
                    self.send_rtcp(tkey, |t, buf| {
                        let a = rtcp::write_rr(buf, t.rtcp_ssrc, &[])?;
                        Ok(a + rtcp::write_nack(&mut buf[a..], t.rtcp_ssrc, media, seqs)?)
                    });
                }
                self.nack_scratch = lost;
            }
        }
    }

    pub(super) fn send_reports(&mut self, now: Instant) {
        // Index walks and a stack buffer: once a second per transport, but still no allocation.
        let (ntp_sec, ntp_frac) = self.wall.ntp(now);
        let mut pkt = [0u8; 1200];
        for tkey in 0..self.transports.capacity() {
            let Some(t) = self.transports.get(tkey) else {
                continue;
            };
            let sender = t.rtcp_ssrc;
            // Receiver reports for what this peer sends us (at most 31 blocks per RR).
            let mut blocks = [rtcp::ReportBlock::default(); 31];
            let mut nblocks = 0;
            for i in 0..t.producers.len() {
                let pkey = self.transports[tkey].producers[i];
                for s in self.producers[pkey].streams.iter_mut() {
                    if s.ssrc.is_some() && nblocks < blocks.len() {
                        blocks[nblocks] = s.stats.fill_report_block(now);
                        nblocks += 1;
                    }
                }
            }
            if nblocks > 0 {
                if let Ok(n) = rtcp::write_rr(&mut pkt, sender, &blocks[..nblocks]) {
                    self.send_rtcp_bytes(tkey, &pkt[..n]);
                }
            }
            // Sender reports + CNAME for what we send this peer.
            for i in 0..self.transports[tkey].consumers.len() {
                let c = &self.consumers[self.transports[tkey].consumers[i]];
                if !c.started {
                    continue;
                }
                let elapsed = c
                    .last_sent
                    .map(|t| now.duration_since(t))
                    .unwrap_or_default();
                let rtp_ts = c.last_ts.wrapping_add(
                    ((elapsed.as_micros() as u64 * c.clock_rate as u64) / 1_000_000) as u32,
                );
                let sr = rtcp::SenderInfo {
                    ssrc: c.ssrc,
                    ntp_sec,
                    ntp_frac,
                    rtp_ts,
                    packet_count: c.counters.packets as u32,
                    octet_count: c.counters.bytes as u32,
                };
                let cname = c.rtp_parameters.rtcp.cname.as_deref().unwrap_or("ringsfu");
                let n = rtcp::write_sr(&mut pkt, &sr, &[]).and_then(|a| {
                    Ok(a + rtcp::write_sdes_cname(&mut pkt[a..], sr.ssrc, cname.as_bytes())?)
                });
                if let Ok(n) = n {
                    self.send_rtcp_bytes(tkey, &pkt[..n]);
                }
            }
        }
    }

    /// Congestion-control RTCP due on each transport (transport-cc feedback, limitation REMB).
    fn send_bwe_feedback(&mut self, now: Instant) {
        let mut pkt = [0u8; 1200];
        for tkey in 0..self.transports.capacity() {
            // Bounded: a backlog beyond 8 packets waits for the next tick.
            for _ in 0..8 {
                let Some(t) = self.transports.get_mut(tkey) else {
                    break;
                };
                let sender = t.rtcp_ssrc;
                let Some(n) = t.bwe.poll_rtcp(now, sender, &mut pkt) else {
                    break;
                };
                self.send_rtcp_bytes(tkey, &pkt[..n]);
            }
        }
    }

    /// Queues an already built plaintext RTCP packet to a transport.
    pub(super) fn send_rtcp_bytes(&mut self, tkey: usize, data: &[u8]) {
        self.send_rtcp(tkey, |_, buf| {
            let n = data.len().min(buf.len());
            buf[..n].copy_from_slice(&data[..n]);
            Ok(n)
        });
    }

    /// Picks each simulcast consumer's target layers (spatial and VP8 temporal): with a
    /// send-side estimate on its transport, the layers the allocator fits into it
    /// (`bwe::alloc`), else the highest active ones not above its preference. Downgrades apply
    /// at once, upgrades once the allocator chose them for [`LAYER_UPGRADE_HOLD`]; a changed
    /// spatial target asks its producer for a keyframe (the switch itself happens at that
    /// keyframe, which emits `layerschange`); a temporal target is taken at the next frame
    /// start (up: at a layer-sync frame). Also emits each transport's `TransportBwe` event (at
    /// most every second, sooner on a 10 % change).
    pub(super) fn select_layers(&mut self, now: Instant) {
        use crate::bwe::alloc::{
            allocate, allocate_unlimited, Candidate, MAX_LAYERS, MAX_TEMPORAL,
        };
        for (_, p) in self.producers.iter_mut() {
            for s in p.streams.iter_mut() {
                s.rate.sample(s.bytes, now);
                if s.max_tid.is_some() {
                    for (m, b) in s.temporal_rate.iter_mut().zip(s.temporal_bytes) {
                        m.sample(b, now);
                    }
                }
            }
        }
        let mut cands = std::mem::take(&mut self.alloc_cands);
        let mut order = std::mem::take(&mut self.alloc_order);
        for tkey in 0..self.transports.capacity() {
            let Some(t) = self.transports.get(tkey) else {
                continue;
            };
            cands.clear();
            for &ckey in &t.consumers {
                let c = &self.consumers[ckey];
                if !c.is_active() {
                    continue;
                }
                let p = &self.producers[c.producer];
                let single = p.streams.len() == 1;
                let n_temporal = p
                    .streams
                    .iter()
                    .filter_map(|s| s.max_tid)
                    .max()
                    .map_or(1, |m| m as usize + 1)
                    .min(MAX_TEMPORAL);
                let mut layers = [[None; MAX_TEMPORAL]; MAX_LAYERS];
                for (i, s) in p.streams.iter().take(MAX_LAYERS).enumerate() {
                    if !(s.is_active(now, LAYER_ACTIVE_WINDOW) || single) {
                        continue;
                    }
                    if s.max_tid.is_none() || !c.vp8 {
                        layers[i][0] = Some(s.rate.bps());
                        continue;
                    }
                    // Temporal layer t costs what TIDs 0..=t carry.
                    let mut sum = 0;
                    for (t, m) in s.temporal_rate.iter().enumerate().take(n_temporal) {
                        sum += m.bps();
                        layers[i][t] = Some(sum);
                    }
                }
                cands.push(Candidate {
                    key: ckey,
                    priority: c.priority,
                    layers,
                    n_layers: p.streams.len(),
                    n_temporal: if c.vp8 { n_temporal } else { 1 },
                    max_layer: c.preferred_layer.unwrap_or(usize::MAX),
                    max_temporal: c.preferred_temporal.map_or(usize::MAX, |t| t as usize),
                    current: c
                        .current_layer
                        .map(|s| (s, (c.current_temporal as usize).min(n_temporal - 1))),
                    target: (0, 0),
                });
            }
            // Only an estimate the receiver has informed limits the layers: a receiver that
            // never sends transport-cc feedback or REMB (e.g. a WHEP player whose answer lacks
            // the transport-wide-cc extension) would otherwise stay at the initial guess and its
            // lowest layer forever.
            let available = t
                .bwe
                .send_side()
                .filter(|s| s.has_feedback())
                .map(|s| s.estimate_bps());
            let allocation = match available {
                Some(a) => Some(allocate(a, &mut cands, &mut order)),
                None => {
                    // No estimate: the highest active layers under the preference.
                    allocate_unlimited(&mut cands);
                    None
                }
            };
            for c in cands.iter().filter(|c| c.n_layers > 1 || c.n_temporal > 1) {
                let cons = &mut self.consumers[c.key];
                // With every temporal layer wanted, the consumer forwards all TIDs (also ones
                // the rate meters have not seen yet).
                let top_temporal = c.target.1 + 1 >= c.n_temporal && c.preferred_all_temporal();
                let want = (
                    c.target.0,
                    if top_temporal {
                        crate::consumer::MAX_TEMPORAL_LAYER
                    } else {
                        c.target.1 as u8
                    },
                );
                let have = (cons.target_layer, cons.target_temporal);
                if want == have {
                    cons.upgrade_since = None;
                    continue;
                }
                let up = want > have;
                if up && available.is_some() && cons.current_layer.is_some() {
                    let since = *cons.upgrade_since.get_or_insert(now);
                    if now.saturating_duration_since(since) < LAYER_UPGRADE_HOLD {
                        continue;
                    }
                }
                cons.upgrade_since = None;
                cons.target_layer = want.0;
                cons.target_temporal = want.1;
                let pkey = cons.producer;
                if cons.current_layer != Some(want.0) {
                    self.request_keyframe(pkey, want.0, now);
                }
            }
            if let Some(a) = allocation {
                let t = &mut self.transports[tkey];
                if let Some(s) = t.bwe.send_side_mut() {
                    s.set_desired_bitrate(a.desired);
                }
                if let Some(info) = t.bwe.bwe_event_due(a.desired, a.effective, now) {
                    if let Some(s) = t.bwe.send_side() {
                        log::debug!(
                            "transport {} bwe: available {} desired {} effective {} usage {:?} loss {:.3} acked {:?} feedbacks {} sent {} reported {} lost {}",
                            t.id, info.available_bitrate, a.desired, a.effective, s.usage(),
                            s.last_loss, s.acked_bitrate().map(|x| x as u64), s.feedbacks,
                            s.packets_sent, s.reported, s.reported_lost
                        );
                    }
                    let transport = t.id;
                    self.events
                        .push_back(EngineEvent::TransportBwe { transport, info });
                }
            }
        }
        self.alloc_cands = cands;
        self.alloc_order = order;
    }
}
