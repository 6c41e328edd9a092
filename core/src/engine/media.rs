//! Producers and consumers: produce/consume, close, pause/resume, preferred layers and priority,
//! and key-frame requests (spaced while unanswered).

use super::*;
use crate::api::{ConsumerInfo, ProducerInfo};

impl Engine {
    /// Creates a producer on a transport; returns its `{id, kind, type}`.
    pub fn produce(
        &mut self,
        transport: &Uuid,
        opts: ProduceOptions,
        now: Instant,
    ) -> Result<ProducerInfo, EngineError> {
        let tkey = self.transport_key(transport)?;
        let rkey = self.transports[tkey].router;
        let caps = &self.routers[rkey].rtp_capabilities;
        let mut rtp_parameters = opts.rtp_parameters.clone();
        ortc::normalize_rtp_parameters(&mut rtp_parameters)
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        let ptype = ortc::validate_producer_rtp_parameters(opts.kind, &rtp_parameters)
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        if opts.rtp_parameters.encodings.is_empty() {
            return Err(EngineError::Invalid(
                "rtpParameters.encodings is empty".into(),
            ));
        }
        for e in &opts.rtp_parameters.encodings {
            if let Some(ssrc) = e.ssrc {
                if self.transports[tkey].ssrc_table.contains_key(&ssrc) {
                    return Err(EngineError::Invalid(format!("ssrc already exists: {ssrc}")));
                }
            }
        }
        let mapping =
            ortc::get_producer_rtp_parameters_mapping(&mut rtp_parameters, caps, &mut self.rng)
                .map_err(|e| EngineError::Ortc(e.to_string()))?;
        let consumable =
            ortc::get_consumable_rtp_parameters(opts.kind, &rtp_parameters, caps, &mapping)
                .map_err(|e| EngineError::Ortc(e.to_string()))?;
        let mapped_ssrcs: Vec<u32> = mapping.encodings.iter().map(|e| e.mapped_ssrc).collect();
        let id = self.new_id();
        let producer = Producer::new(
            id,
            opts.kind,
            tkey,
            rkey,
            rtp_parameters.clone(),
            consumable,
            ptype,
            &mapped_ssrcs,
            opts.paused,
            now,
        );
        let pkey = self.producers.insert(producer);
        self.producer_ids.insert(id, pkey);
        self.routers[rkey].producers.push(pkey);
        let t = &mut self.transports[tkey];
        t.producers.push(pkey);
        for (i, e) in rtp_parameters.encodings.iter().enumerate() {
            if let Some(ssrc) = e.ssrc {
                t.ssrc_table.insert(ssrc, (pkey, i, false));
            }
            if let Some(rtx) = &e.rtx {
                t.ssrc_table.insert(rtx.ssrc, (pkey, i, true));
            }
        }
        if let Some(mid) = &rtp_parameters.mid {
            t.mid_table.insert(mid.clone(), pkey);
        }
        for h in &rtp_parameters.header_extensions {
            match h.uri.as_str() {
                uri::MID => t.ext_mid = h.id,
                uri::RTP_STREAM_ID => t.ext_rid = h.id,
                uri::REPAIRED_RTP_STREAM_ID => t.ext_rrid = h.id,
                crate::bwe::twcc::TWCC_URI => t.bwe.enable_receive_feedback(h.id, now),
                // A REMB client (no transport-wide seq): enable_remb_feedback ignores it once
                // transport-cc is on, whichever producer negotiated what first.
                uri::ABS_SEND_TIME => t.bwe.enable_remb_feedback(h.id, now),
                _ => {}
            }
        }
        Ok(ProducerInfo {
            id: id.to_string(),
            kind: opts.kind,
            producer_type: ptype.as_str(),
        })
    }

    /// Creates a consumer of `opts.producer_id` on a transport; returns mediasoup's consumer data
    /// `{id, producerId, kind, rtpParameters, type, producerPaused, paused}`.
    pub fn consume(
        &mut self,
        transport: &Uuid,
        mut opts: ConsumeOptions,
        now: Instant,
    ) -> Result<ConsumerInfo, EngineError> {
        let tkey = self.transport_key(transport)?;
        let pkey = self.producer_key(&opts.producer_id)?;
        ortc::normalize_rtp_capabilities(&mut opts.rtp_capabilities)
            .map_err(|e| EngineError::Invalid(format!("rtpCapabilities: {e}")))?;
        if self.producers[pkey].router != self.transports[tkey].router {
            return Err(EngineError::Invalid(
                "producer belongs to another router".into(),
            ));
        }
        let p = &self.producers[pkey];
        let ok = ortc::can_consume(&p.consumable, &opts.rtp_capabilities)
            .map_err(|e| EngineError::Ortc(e.to_string()))?;
        if !ok {
            return Err(EngineError::Ortc(
                "cannot consume: no codec in common with rtpCapabilities".into(),
            ));
        }
        let mut params = ortc::get_consumer_rtp_parameters(
            &p.consumable,
            &opts.rtp_capabilities,
            false,
            opts.enable_rtx,
            &mut self.rng,
        )
        .map_err(|e| EngineError::Ortc(e.to_string()))?;
        let mid = self.transports[tkey].mids.next_mid();
        params.mid = Some(mid.clone());

        let enc = params
            .encodings
            .first()
            .ok_or_else(|| EngineError::Ortc("consumer has no encoding".into()))?;
        let ssrc = enc
            .ssrc
            .ok_or_else(|| EngineError::Ortc("consumer encoding has no ssrc".into()))?;
        let rtx_pt = params
            .codecs
            .iter()
            .find(|c| is_rtx_mime_type(&c.mime_type))
            .map(|c| c.payload_type);
        let rtx = match (enc.rtx.as_ref(), rtx_pt) {
            (Some(r), Some(pt)) => Some((r.ssrc, pt)),
            _ => None,
        };
        let mut pt_map = [255u8; 128];
        for (ppt, rpt) in p.pt_map.iter().enumerate() {
            if *rpt != 255 && params.codecs.iter().any(|c| c.payload_type == *rpt) {
                pt_map[ppt] = *rpt;
            }
        }
        let mut ext_map = [0u8; 256];
        let mut mid_ext = None;
        let mut twcc_ext = 0;
        for h in &params.header_extensions {
            if h.uri == uri::MID {
                mid_ext = Some(h.id);
            }
            if h.uri == crate::bwe::twcc::TWCC_URI {
                twcc_ext = h.id;
            }
        }
        // The send-side estimator runs when the receiver gives feedback: transport-cc (our
        // sequence numbers in every packet) or REMB.
        let has_fb = |t: &str| {
            params
                .codecs
                .iter()
                .any(|c| c.rtcp_feedback.iter().any(|f| f.fb_type == t))
        };
        if !has_fb("transport-cc") {
            twcc_ext = 0;
        }
        if twcc_ext != 0 || has_fb("goog-remb") {
            self.transports[tkey].bwe.enable_send_side(now);
        }
        for pe in &p.rtp_parameters.header_extensions {
            let rid = p.ext_map[pe.id as usize];
            if rid == 0 || pe.uri == uri::MID {
                continue;
            }
            if pe.uri == uri::RTP_STREAM_ID || pe.uri == uri::REPAIRED_RTP_STREAM_ID {
                continue; // rid/rrid describe the producer's layers, not the consumer's stream
            }
            if pe.uri == crate::bwe::twcc::TWCC_URI {
                continue; // the sending transport writes its own sequence numbers
            }
            if params.header_extensions.iter().any(|h| h.id == rid) {
                ext_map[pe.id as usize] = rid;
            }
        }
        let kind = p.kind;
        let clock_rate = params.codecs.first().map(|c| c.clock_rate).unwrap_or(90000);
        let vp8 = params
            .codecs
            .first()
            .is_some_and(|c| c.mime_type.eq_ignore_ascii_case("video/VP8"));
        // As mediasoup: a consumer has its producer's type.
        let consumer_type = p.producer_type.as_str();
        let target_layer = p.streams.len().saturating_sub(1);
        let producer_paused = p.paused;
        let producer_id = p.id;
        let rtx_seq = self.rng.gen();
        let id = self.new_id();
        let consumer = Consumer {
            id,
            kind,
            producer: pkey,
            producer_id,
            transport: tkey,
            rtp_parameters: params.clone(),
            consumer_type,
            paused: opts.paused,
            producer_paused,
            ssrc,
            rtx,
            pt_map,
            ext_map,
            mid: mid_ext.map(|id| (id, mid.clone().into_bytes())),
            current_layer: None,
            target_layer,
            preferred_layer: None,
            current_temporal: crate::consumer::MAX_TEMPORAL_LAYER,
            target_temporal: crate::consumer::MAX_TEMPORAL_LAYER,
            preferred_temporal: None,
            max_tid_seen: None,
            vp8,
            reported_layers: (None, None),
            sync_required: true,
            seq_map: Default::default(),
            last_picture_id: 0,
            last_tl0: 0,
            ts_offset: 0,
            last_seq: 0,
            last_ts: 0,
            last_sent: None,
            started: false,
            rtx_seq,
            clock_rate,
            priority: 1,
            counters: ConsumerCounters::default(),
            last_rr: None,
            score: crate::score::SendScore::new(),
            twcc_ext,
            upgrade_since: None,
            layer_switched: false,
        };
        let ckey = self.consumers.insert(consumer);
        self.consumer_ids.insert(id, ckey);
        self.producers[pkey].consumers.push(ckey);
        self.transports[tkey].consumers.push(ckey);
        if !opts.paused {
            self.consumer_wants_keyframe(ckey, now);
        }
        Ok(ConsumerInfo {
            id: id.to_string(),
            producer_id: producer_id.to_string(),
            kind,
            rtp_parameters: params,
            consumer_type,
            producer_paused,
            paused: opts.paused,
        })
    }

    /// Closes a producer and, with an event each, its consumers.
    pub fn close_producer(&mut self, producer: &Uuid, now: Instant) -> Result<(), EngineError> {
        let pkey = self.producer_key(producer)?;
        let consumers = self.producers[pkey].consumers.clone();
        for c in consumers {
            let cid = self.consumers[c].id;
            self.events.push_back(EngineEvent::ConsumerProducerClosed {
                consumer: cid,
                producer: *producer,
            });
            let _ = self.close_consumer(&cid, now);
        }
        self.observers_producer_closed(pkey, now);
        let p = self.producers.remove(pkey);
        self.producer_ids.remove(producer);
        if let Some(t) = self.transports.get_mut(p.transport) {
            t.producers.retain(|k| *k != pkey);
            t.ssrc_table.retain(|_, v| v.0 != pkey);
            t.mid_table.retain(|_, v| *v != pkey);
        }
        if let Some(r) = self.routers.get_mut(p.router) {
            r.producers.retain(|k| *k != pkey);
        }
        Ok(())
    }

    /// Closes a consumer.
    pub fn close_consumer(&mut self, consumer: &Uuid, _now: Instant) -> Result<(), EngineError> {
        let ckey = self.consumer_key(consumer)?;
        let c = self.consumers.remove(ckey);
        self.retired.consumers.add(&c.counters);
        self.consumer_ids.remove(consumer);
        if let Some(p) = self.producers.get_mut(c.producer) {
            p.consumers.retain(|k| *k != ckey);
        }
        if let Some(t) = self.transports.get_mut(c.transport) {
            t.consumers.retain(|k| *k != ckey);
        }
        Ok(())
    }

    /// Pauses a producer; its consumers get a `ConsumerProducerPause` event.
    pub fn pause_producer(&mut self, producer: &Uuid, now: Instant) -> Result<(), EngineError> {
        self.set_producer_paused(producer, true, now)
    }

    /// Resumes a producer; its consumers resync and request a keyframe.
    pub fn resume_producer(&mut self, producer: &Uuid, now: Instant) -> Result<(), EngineError> {
        self.set_producer_paused(producer, false, now)
    }

    pub(super) fn set_producer_paused(
        &mut self,
        producer: &Uuid,
        paused: bool,
        now: Instant,
    ) -> Result<(), EngineError> {
        let pkey = self.producer_key(producer)?;
        if self.producers[pkey].paused == paused {
            return Ok(());
        }
        self.producers[pkey].paused = paused;
        self.observers_producer_paused(pkey, paused);
        let consumers = self.producers[pkey].consumers.clone();
        for c in consumers {
            let cons = &mut self.consumers[c];
            cons.producer_paused = paused;
            let id = cons.id;
            if paused {
                self.events
                    .push_back(EngineEvent::ConsumerProducerPause { consumer: id });
            } else {
                cons.request_sync();
                self.events
                    .push_back(EngineEvent::ConsumerProducerResume { consumer: id });
                self.consumer_wants_keyframe(c, now);
            }
        }
        Ok(())
    }

    /// Pauses a consumer.
    pub fn pause_consumer(&mut self, consumer: &Uuid, _now: Instant) -> Result<(), EngineError> {
        let ckey = self.consumer_key(consumer)?;
        self.consumers[ckey].paused = true;
        Ok(())
    }

    /// Resumes a consumer: the next packet continues its sequence numbers, video from a keyframe.
    pub fn resume_consumer(&mut self, consumer: &Uuid, now: Instant) -> Result<(), EngineError> {
        let ckey = self.consumer_key(consumer)?;
        let c = &mut self.consumers[ckey];
        if c.paused {
            c.paused = false;
            c.request_sync();
            self.consumer_wants_keyframe(ckey, now);
        }
        Ok(())
    }

    /// Sets a simulcast consumer's preferred spatial layer and, optionally, its preferred VP8
    /// temporal layer within it (None: all); the layers chosen never go above them.
    pub fn set_consumer_preferred_layers(
        &mut self,
        consumer: &Uuid,
        spatial_layer: usize,
        temporal_layer: Option<u8>,
        now: Instant,
    ) -> Result<(), EngineError> {
        let ckey = self.consumer_key(consumer)?;
        let c = &mut self.consumers[ckey];
        c.preferred_layer = Some(spatial_layer);
        c.preferred_temporal = temporal_layer;
        self.select_layers(now);
        Ok(())
    }

    /// Sets a transport's incoming bitrate limit in bits per second (0 removes it), as mediasoup's
    /// `transport.setMaxIncomingBitrate()`: the remote is told with a REMB every 1.5 s, which
    /// browsers apply as a cap on their send-side estimate.
    pub fn set_max_incoming_bitrate(
        &mut self,
        transport: &Uuid,
        bps: u64,
        now: Instant,
    ) -> Result<(), EngineError> {
        let tkey = self.transport_key(transport)?;
        self.transports[tkey].bwe.set_max_incoming_bitrate(bps, now);
        Ok(())
    }

    /// Caps a transport's send-side estimate in bits per second (0 removes the cap), as
    /// mediasoup's `transport.setMaxOutgoingBitrate()`: the layers chosen for its consumers fit
    /// under it.
    pub fn set_max_outgoing_bitrate(
        &mut self,
        transport: &Uuid,
        bps: u64,
        _now: Instant,
    ) -> Result<(), EngineError> {
        let tkey = self.transport_key(transport)?;
        if bps != 0 && bps < crate::bwe::send::MIN_BITRATE {
            return Err(EngineError::Invalid(format!(
                "maxOutgoingBitrate must be 0 or at least {}",
                crate::bwe::send::MIN_BITRATE
            )));
        }
        self.transports[tkey].bwe.set_max_outgoing_bitrate(bps);
        Ok(())
    }

    /// Sets a consumer's priority (1..=255); the next layer allocation (within 250 ms) applies it.
    pub fn set_consumer_priority(
        &mut self,
        consumer: &Uuid,
        priority: u8,
        _now: Instant,
    ) -> Result<(), EngineError> {
        let ckey = self.consumer_key(consumer)?;
        if priority == 0 {
            return Err(EngineError::Invalid("priority must be 1..=255".into()));
        }
        self.consumers[ckey].priority = priority;
        Ok(())
    }

    /// Asks the producer of a consumer for a keyframe.
    pub fn request_consumer_key_frame(
        &mut self,
        consumer: &Uuid,
        now: Instant,
    ) -> Result<(), EngineError> {
        let ckey = self.consumer_key(consumer)?;
        self.consumer_wants_keyframe(ckey, now);
        Ok(())
    }

    /// Asks a producer for a keyframe on every stream.
    pub fn request_producer_key_frame(
        &mut self,
        producer: &Uuid,
        now: Instant,
    ) -> Result<(), EngineError> {
        let pkey = self.producer_key(producer)?;
        let n = self.producers[pkey].streams.len();
        for i in 0..n {
            self.request_keyframe(pkey, i, now);
        }
        Ok(())
    }

    pub(super) fn consumer_wants_keyframe(&mut self, ckey: usize, now: Instant) {
        let Some(c) = self.consumers.get(ckey) else {
            return;
        };
        if c.kind != MediaKind::Video {
            return;
        }
        let (p, layer) = (c.producer, c.current_layer.unwrap_or(c.target_layer));
        self.request_keyframe(p, layer, now);
    }

    pub(super) fn request_keyframe(&mut self, pkey: usize, stream: usize, now: Instant) {
        let Some(p) = self.producers.get_mut(pkey) else {
            return;
        };
        if p.kind != MediaKind::Video || !p.take_keyframe_request(stream, now) {
            return;
        }
        let Some(media_ssrc) = p.streams[stream].ssrc else {
            return;
        };
        let tkey = p.transport;
        self.send_rtcp(tkey, |t, buf| rtcp::write_pli(buf, t.rtcp_ssrc, media_ssrc));
    }

    // ---------------------------------------------------------------- data channels
}
