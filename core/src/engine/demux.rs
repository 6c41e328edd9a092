//! The packet path: `handle_packet` demultiplexes a datagram (RFC 7983) to STUN/ICE, DTLS or
//! SRTP; RTP is decrypted, mapped to its producer stream and fanned out to the consumers.

use super::*;

impl Engine {
    /// Handles one received datagram (or TCP frame). `buf` holds `len` bytes; it may be swapped for
    /// another buffer of the same size (the packet then lives on in a retransmission store).
    pub fn handle_packet(
        &mut self,
        src: PacketSource,
        buf: &mut Box<[u8]>,
        len: usize,
        now: Instant,
    ) {
        if let Some(&tkey) = self.plain_sockets.get(&src.socket) {
            self.handle_plain(tkey, src, buf, len, now);
            return;
        }
        let Some(&first) = buf.get(..len).and_then(|b| b.first()) else {
            self.drops.unknown_protocol += 1;
            return;
        };
        match first {
            0..=3 => self.handle_stun(src, &buf[..len], now),
            20..=63 => {
                let Some(tkey) = self.path_owner(&src) else {
                    self.drops.unknown_tuple += 1;
                    return;
                };
                self.handle_dtls_record(tkey, &buf[..len], now);
            }
            128..=191 => {
                let Some(tkey) = self.path_owner(&src) else {
                    self.drops.unknown_tuple += 1;
                    return;
                };
                let rtcp = rtcp::is_rtcp(&buf[..len]);
                let Some(len) = self.unprotect_incoming(tkey, buf, len, rtcp) else {
                    return;
                };
                if rtcp {
                    self.handle_rtcp(tkey, buf, len, now);
                } else {
                    self.handle_rtp(tkey, buf, len, now);
                }
            }
            _ => self.drops.unknown_protocol += 1,
        }
    }

    pub(super) fn path_owner(&self, src: &PacketSource) -> Option<usize> {
        match src.tcp_conn {
            Some(c) => self.tcp_paths.get(&c).copied(),
            None => self.udp_paths.get(&(src.socket, src.tuple.remote)).copied(),
        }
    }

    /// Forgets a closed TCP connection.
    pub fn tcp_connection_closed(&mut self, conn: u32, _now: Instant) {
        if let Some(tkey) = self.tcp_paths.remove(&conn) {
            if let Some(t) = self.transports.get_mut(tkey) {
                t.demux.tcp_conns.retain(|c| *c != conn);
            }
        }
    }

    pub(super) fn handle_stun(&mut self, src: PacketSource, data: &[u8], now: Instant) {
        let Ok(msg) = StunMessage::parse(data) else {
            self.drops.bad_stun += 1;
            return;
        };
        let Some((local_ufrag, _)) = msg.username_fragments() else {
            self.drops.bad_stun += 1;
            return;
        };
        let Some(&tkey) = std::str::from_utf8(local_ufrag)
            .ok()
            .and_then(|u| self.ufrags.get(u))
        else {
            self.drops.unknown_ufrag += 1;
            return;
        };
        let route = route_for(&src.tuple, src.socket, src.tcp_conn);
        let t = &mut self.transports[tkey];
        let id = t.id;
        let TransportKind::WebRtc(w) = &mut t.kind else {
            return;
        };
        let outcome = w
            .ice
            .handle_stun(&msg, src.tuple, now, &mut self.stun_scratch);
        if let Some(n) = outcome.response_len {
            self.tx.push(&self.stun_scratch[..n], route);
        }
        if !outcome.accepted() {
            self.drops.ice_rejected += 1;
            return;
        }
        // A valid check makes this path the transport's: register it for the demultiplexer.
        // The transport records it so its close removes exactly its own entries.
        match src.tcp_conn {
            Some(c) => {
                if self.tcp_paths.insert(c, tkey) != Some(tkey) && !t.demux.tcp_conns.contains(&c) {
                    t.demux.tcp_conns.push(c);
                }
            }
            None => {
                let path = (src.socket, src.tuple.remote);
                if self.udp_paths.insert(path, tkey) != Some(tkey)
                    && !t.demux.udp_paths.contains(&path)
                {
                    t.demux.udp_paths.push(path);
                }
            }
        }
        let mut selected = None;
        while let Some(ev) = w.ice.poll_event() {
            match ev {
                IceEvent::StateChanged(state) => {
                    self.events.push_back(EngineEvent::IceStateChange {
                        transport: id,
                        state,
                    })
                }
                IceEvent::PreviousUfragRetired(old) => {
                    self.ufrags.remove(&old);
                    t.demux.ufrags.retain(|u| *u != old);
                }
                IceEvent::SelectedTupleChanged(tuple) => {
                    selected = Some(tuple);
                    self.events.push_back(EngineEvent::IceSelectedTupleChange {
                        transport: id,
                        tuple,
                    });
                }
            }
        }
        if let Some(tuple) = selected {
            let r = if tuple == src.tuple {
                route
            } else {
                route_for(&tuple, src.socket, None)
            };
            t.route = Some(r);
            t.rtcp_route = Some(r);
        } else if t.route.is_none() {
            // Not nominated yet, but DTLS may need a path: use the first valid one.
            t.route = Some(route);
            t.rtcp_route = Some(route);
        }
        self.maybe_start_dtls(tkey, now);
    }

    /// Decrypts an incoming packet of transport `tkey` in place (see
    /// [`Transport::unprotect_incoming`]); `None` when it is dropped (counted).
    pub(super) fn unprotect_incoming(
        &mut self,
        tkey: usize,
        buf: &mut [u8],
        len: usize,
        rtcp: bool,
    ) -> Option<usize> {
        match self.transports[tkey].unprotect_incoming(buf, len, rtcp) {
            Ok(n) => Some(n),
            Err(_) => {
                self.drops.srtp += 1;
                None
            }
        }
    }

    /// A datagram on a PlainTransport's own socket. Packets must come from the remote given to
    /// `connect()` or, in comedia mode, learned from the first packet that decrypts: RTP, or RTCP
    /// with rtcp-mux (as mediasoup's PlainTransport: a receive-only peer that sends receiver
    /// reports first is latched by them), or RTCP on the RTCP socket without rtcp-mux.
    pub(super) fn handle_plain(
        &mut self,
        tkey: usize,
        src: PacketSource,
        buf: &mut Box<[u8]>,
        len: usize,
        now: Instant,
    ) {
        let TransportKind::Plain(p) = &self.transports[tkey].kind else {
            return;
        };
        let from = src.tuple.remote;
        let on_rtcp_socket = p.rtcp_socket.map(|r| r.0) == Some(src.socket);
        let rtcp = on_rtcp_socket || rtcp::is_rtcp(&buf[..len]);
        let expected = if on_rtcp_socket {
            p.remote_rtcp
        } else {
            p.remote
        };
        // Without rtcp-mux, RTCP belongs on the RTCP socket: it cannot teach the RTP remote.
        let may_latch = p.comedia && (on_rtcp_socket || !rtcp || p.rtcp_socket.is_none());
        match expected {
            Some(r) if r == from => {}
            None if may_latch => {}
            _ => {
                self.drops.plain_wrong_source += 1;
                return;
            }
        }
        // Decrypt before learning an address from the packet: only an authenticated packet may
        // latch a comedia transport.
        let Some(len) = self.unprotect_incoming(tkey, buf, len, rtcp) else {
            return;
        };
        if expected.is_none() {
            self.latch_plain_remote(tkey, src.socket, from, on_rtcp_socket);
        }
        if rtcp {
            self.handle_rtcp(tkey, buf, len, now);
        } else {
            self.handle_rtp(tkey, buf, len, now);
        }
    }

    /// Comedia: `from` becomes the remote of a PlainTransport's RTP socket (and, with rtcp-mux, of
    /// its RTCP too), or with `rtcp_socket` the remote of its separate RTCP socket.
    fn latch_plain_remote(
        &mut self,
        tkey: usize,
        socket: SocketId,
        from: SocketAddr,
        rtcp_socket: bool,
    ) {
        let t = &mut self.transports[tkey];
        let id = t.id;
        let TransportKind::Plain(p) = &mut t.kind else {
            return;
        };
        let r = Route::Udp { socket, dest: from };
        if rtcp_socket {
            p.remote_rtcp = Some(from);
            t.rtcp_route = Some(r);
            return;
        }
        p.remote = Some(from);
        t.route = Some(r);
        if p.rtcp_socket.is_none() {
            p.remote_rtcp = Some(from);
            t.rtcp_route = Some(r);
        }
        self.events.push_back(EngineEvent::PlainTupleChange {
            transport: id,
            remote: from,
        });
    }

    /// A clear RTP packet (decrypted by the caller) of transport `tkey`: mapped to its producer
    /// stream and forwarded.
    pub(super) fn handle_rtp(
        &mut self,
        tkey: usize,
        buf: &mut Box<[u8]>,
        len: usize,
        now: Instant,
    ) {
        let t = &mut self.transports[tkey];
        let Ok(mut hdr) = RtpHeader::parse(&buf[..len]) else {
            self.drops.bad_rtp += 1;
            return;
        };
        t.counters.rtp_packets_received += 1;
        t.counters.rtp_bytes_received += len as u64;
        t.bwe.on_rtp(&buf[..len], &hdr, now);
        let entry = match t.ssrc_table.get(&hdr.ssrc) {
            Some(e) => *e,
            None => match self.learn_ssrc(tkey, &buf[..len], &hdr) {
                Some(e) => e,
                None => {
                    self.transports[tkey].counters.unknown_ssrc_drops += 1;
                    self.drops.unknown_ssrc += 1;
                    return;
                }
            },
        };
        let (pkey, layer, is_rtx) = entry;
        let mut len = len;
        let p = &mut self.producers[pkey];
        if is_rtx {
            let media_pt = p.rtx_to_media[(hdr.payload_type & 0x7f) as usize];
            let Some(media_ssrc) = p.streams[layer].ssrc else {
                return;
            };
            if media_pt == 255 {
                return;
            }
            let Ok((n, _)) = rtp::rtx_decapsulate_in_place(buf, len, &hdr, media_pt) else {
                self.drops.bad_rtp += 1;
                return;
            };
            if rtp::set_ssrc(&mut buf[..n], media_ssrc).is_err() {
                return;
            }
            len = n;
            hdr = match RtpHeader::parse(&buf[..len]) {
                Ok(h) => h,
                Err(_) => return,
            };
            p.streams[layer].rtx_packets += 1;
        }
        let vp8 = p.vp8_descriptor(&buf[..len], &hdr);
        let keyframe = match &vp8 {
            Some(d) => d.keyframe,
            None => p.is_keyframe(&buf[..len], &hdr),
        };
        if keyframe {
            p.keyframe_received(layer);
        }
        let stream = &mut p.streams[layer];
        stream.packets += 1;
        stream.bytes += len as u64;
        if let Some(tid) = vp8.and_then(|d| d.tid) {
            stream.temporal_bytes[tid as usize & 3] += len as u64;
            stream.max_tid = Some(stream.max_tid.map_or(tid, |m| m.max(tid)));
        }
        stream.last_packet = Some(now);
        let arrival = crate::rtp_stream::to_rtp_units(
            now.duration_since(stream.epoch),
            stream.stats.clock_rate(),
        );
        if is_rtx {
            stream.stats.on_retransmitted(hdr.sequence);
        } else {
            stream.stats.on_packet(hdr.sequence, hdr.timestamp, arrival);
        }
        let score_changed = stream.score.on_packet() || stream.packets == 1;
        let seq_status = stream
            .store
            .is_some()
            .then(|| stream.nack.on_packet(hdr.sequence, keyframe));
        if is_rtx && seq_status == Some(crate::rtp_stream::SeqStatus::Recovered) {
            stream.repaired += 1;
        }
        let overflow = seq_status == Some(crate::rtp_stream::SeqStatus::Overflow);
        p.score_dirty |= score_changed;
        if p.paused {
            return;
        }
        // A retransmission of a packet already received (Chrome probes bandwidth by resending
        // old packets on RTX) is not forwarded: receivers would drop the duplicate as an SRTP
        // replay, and it would only eat their bandwidth (and show as loss in their feedback).
        if is_rtx && seq_status == Some(crate::rtp_stream::SeqStatus::Old) {
            p.streams[layer].rtx_duplicates += 1;
            return;
        }
        // RTP observers: the audio level into their counters (no allocation, no Lua).
        if !p.observers.is_empty() && p.audio_level_ext != 0 {
            if let Some((level, _)) = rtp::find_extension(&buf[..len], &hdr, p.audio_level_ext)
                .and_then(crate::observer::parse_audio_level)
            {
                self.observers.on_level(&p.observers, pkey, level, now);
            }
        }
        let mut need_keyframe = overflow;
        for &ckey in &p.consumers {
            let c = &mut self.consumers[ckey];
            let ct = &mut self.transports[c.transport];
            if !ct.can_send() {
                continue;
            }
            let dst = self.tx.next_buffer();
            let twcc_seq = ct.bwe.next_send_seq();
            let outcome = c.forward(
                layer,
                &buf[..len],
                &hdr,
                keyframe,
                vp8.as_ref(),
                now,
                twcc_seq,
                dst,
            );
            if c.layer_switched {
                c.layer_switched = false;
                let (spatial_layer, temporal_layer) = c.current_layers();
                self.events.push_back(EngineEvent::ConsumerLayersChange {
                    consumer: c.id,
                    spatial_layer,
                    temporal_layer,
                });
            }
            match outcome {
                ForwardOutcome::Sent(n) => {
                    if c.twcc_ext != 0 {
                        ct.bwe.on_packet_sent(n, now);
                    }
                    let n = match ct.srtp_out.as_mut() {
                        Some(ctx) => match ctx.protect_rtp(dst, n) {
                            Ok(m) => m,
                            Err(_) => continue,
                        },
                        None => n,
                    };
                    ct.counters.rtp_packets_sent += 1;
                    ct.counters.rtp_bytes_sent += n as u64;
                    if let Some(route) = ct.route {
                        self.tx.commit(n, route);
                    }
                }
                ForwardOutcome::NeedKeyframe => need_keyframe = true,
                ForwardOutcome::Skipped => {}
            }
        }
        // Keep the packet for consumers' NACKs: the buffer itself moves into the store (no copy)
        // and the store's evicted buffer becomes the next receive buffer.
        if let Some(store) = p.streams[layer].store.as_mut() {
            let owned = std::mem::take(buf);
            *buf = store
                .insert(hdr.sequence, owned, len)
                .unwrap_or_else(|| vec![0u8; PACKET_BUF_SIZE].into_boxed_slice());
        }
        if need_keyframe {
            self.request_keyframe(pkey, layer, now);
        }
    }

    /// Finds the producer stream of an SSRC seen for the first time, by MID then RID (simulcast
    /// layers and streams whose SSRCs were not signaled), and remembers it.
    pub(super) fn learn_ssrc(
        &mut self,
        tkey: usize,
        buf: &[u8],
        hdr: &RtpHeader,
    ) -> Option<(usize, usize, bool)> {
        let t = &mut self.transports[tkey];
        let mid = (t.ext_mid != 0)
            .then(|| rtp::find_extension(buf, hdr, t.ext_mid))
            .flatten()
            .and_then(|v| std::str::from_utf8(v).ok())?;
        let pkey = *t.mid_table.get(mid)?;
        let p = &mut self.producers[pkey];
        let rid = (t.ext_rid != 0)
            .then(|| rtp::find_extension(buf, hdr, t.ext_rid))
            .flatten();
        let rrid = (t.ext_rrid != 0)
            .then(|| rtp::find_extension(buf, hdr, t.ext_rrid))
            .flatten();
        let (layer, is_rtx) = if let Some(rid) = rid {
            let i = p
                .streams
                .iter()
                .position(|s| s.rid.as_deref().map(str::as_bytes) == Some(rid))?;
            (i, false)
        } else if let Some(rrid) = rrid {
            let i = p
                .streams
                .iter()
                .position(|s| s.rid.as_deref().map(str::as_bytes) == Some(rrid))?;
            (i, true)
        } else if p.streams.len() == 1 {
            // A single stream matched by MID: RTX is recognised by its payload type.
            (0, p.rtx_to_media[(hdr.payload_type & 0x7f) as usize] != 255)
        } else {
            return None;
        };
        let s = &mut p.streams[layer];
        if is_rtx {
            s.rtx_ssrc = Some(hdr.ssrc);
        } else {
            s.ssrc = Some(hdr.ssrc);
        }
        t.ssrc_table.insert(hdr.ssrc, (pkey, layer, is_rtx));
        Some((pkey, layer, is_rtx))
    }
}
