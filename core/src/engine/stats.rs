//! Stats and dumps of transports, producers, consumers and data producers/consumers.

use super::*;

use crate::api::{
    ConsumerDump, DataConsumerStats, DataProducerStats, InboundRtpStats, OutboundRtpStats,
    PlainTransportInfo, RtpStreamStats, TransportDump, TransportState, TransportStats,
};

impl Engine {
    /// Stats of a data producer (`now` dates them).
    pub fn data_producer_stats(
        &self,
        data_producer: &Uuid,
        now: Instant,
    ) -> Result<Vec<DataProducerStats>, EngineError> {
        let p = &self.data_producers[self.data_producer_key(data_producer)?];
        Ok(vec![DataProducerStats {
            stats_type: "data-producer",
            timestamp: self.wall.unix_ms(now),
            label: p.label.clone(),
            protocol: p.protocol.clone(),
            messages_received: p.counters.messages,
            bytes_received: p.counters.bytes,
        }])
    }

    /// Stats of a data consumer.
    pub fn data_consumer_stats(
        &self,
        data_consumer: &Uuid,
        now: Instant,
    ) -> Result<Vec<DataConsumerStats>, EngineError> {
        let c = &self.data_consumers[self.data_consumer_key(data_consumer)?];
        Ok(vec![DataConsumerStats {
            stats_type: "data-consumer",
            timestamp: self.wall.unix_ms(now),
            label: c.label.clone(),
            protocol: c.protocol.clone(),
            messages_sent: c.counters.messages,
            bytes_sent: c.counters.bytes,
            messages_dropped: c.counters.dropped,
        }])
    }

    /// The SCTP state of a WebRtcTransport ("new" when SCTP is off or not started).
    pub fn sctp_state(&self, transport: &Uuid) -> Result<SctpState, EngineError> {
        let t = &self.transports[self.transport_key(transport)?];
        Ok(t.webrtc()
            .and_then(|w| w.sctp.as_ref())
            .map(|s| s.state())
            .unwrap_or(SctpState::New))
    }

    // ---------------------------------------------------------------- stats / dump

    /// Stats of a transport (mediasoup-like fields).
    pub fn transport_stats(
        &self,
        transport: &Uuid,
        now: Instant,
    ) -> Result<Vec<TransportStats>, EngineError> {
        let key = self.transport_key(transport)?;
        let t = &self.transports[key];
        let c = &t.counters;
        let plain = self.plain_transport_data(key);
        let plain_kind = match &t.kind {
            TransportKind::Plain(p) => Some(p),
            _ => None,
        };
        Ok(vec![TransportStats {
            stats_type: if t.webrtc().is_some() {
                "webrtc-transport"
            } else {
                "plain-rtp-transport"
            },
            transport_id: t.id.to_string(),
            timestamp: self.wall.unix_ms(now),
            rtp_packets_received: c.rtp_packets_received,
            bytes_received: c.rtp_bytes_received,
            rtp_packets_sent: c.rtp_packets_sent,
            bytes_sent: c.rtp_bytes_sent,
            rtcp_packets_received: c.rtcp_packets_received,
            rtcp_packets_sent: c.rtcp_packets_sent,
            srtp_drops: c.srtp_drops,
            unknown_ssrc_drops: c.unknown_ssrc_drops,
            ice_role: t.webrtc().map(|_| "controlled"),
            state: self.transport_state(key, plain.as_ref()),
            // As mediasoup's PlainTransport stats: its tuples (in `state`) and modes.
            rtcp_mux: plain_kind.map(|p| p.rtcp_socket.is_none()),
            comedia: plain_kind.map(|p| p.comedia),
            available_outgoing_bitrate: t.bwe.available_outgoing_bitrate(),
            available_incoming_bitrate: t.bwe.available_incoming_bitrate(),
            max_outgoing_bitrate: t.bwe.max_outgoing_bitrate(),
            max_incoming_bitrate: t.bwe.max_incoming_bitrate(),
        }])
    }

    /// Stats of a producer: one entry per stream.
    pub fn producer_stats(
        &self,
        producer: &Uuid,
        now: Instant,
    ) -> Result<Vec<InboundRtpStats>, EngineError> {
        let p = &self.producers[self.producer_key(producer)?];
        let mime = p
            .rtp_parameters
            .codecs
            .first()
            .map(|c| c.mime_type.clone())
            .unwrap_or_default();
        Ok(p.streams
            .iter()
            .map(|s| InboundRtpStats {
                stats_type: "inbound-rtp",
                timestamp: self.wall.unix_ms(now),
                kind: p.kind,
                ssrc: s.ssrc,
                rtx_ssrc: s.rtx_ssrc,
                rid: s.rid.clone(),
                mime_type: mime.clone(),
                packet_count: s.packets,
                byte_count: s.bytes,
                packets_retransmitted: s.rtx_packets,
                packets_duplicated: s.rtx_duplicates,
                packets_lost: s.stats.packets_lost(),
                jitter: s.stats.jitter(),
                score: s.score.score(),
            })
            .collect())
    }

    /// Stats of a consumer: its `outbound-rtp` entry, then its producer's `inbound-rtp` ones.
    pub fn consumer_stats(
        &self,
        consumer: &Uuid,
        now: Instant,
    ) -> Result<Vec<RtpStreamStats>, EngineError> {
        let c = &self.consumers[self.consumer_key(consumer)?];
        let mime = c
            .rtp_parameters
            .codecs
            .first()
            .map(|c| c.mime_type.clone())
            .unwrap_or_default();
        let mut out = vec![RtpStreamStats::Outbound(OutboundRtpStats {
            stats_type: "outbound-rtp",
            timestamp: self.wall.unix_ms(now),
            kind: c.kind,
            ssrc: c.ssrc,
            mime_type: mime,
            packet_count: c.counters.packets,
            byte_count: c.counters.bytes,
            packets_retransmitted: c.counters.retransmitted,
            nack_count: c.counters.nacks,
            pli_count: c.counters.keyframe_requests,
            fraction_lost: c.last_rr.map(|r| r.0).unwrap_or(0),
            score: c.score.score(),
            // mediasoup reports milliseconds, with fractions.
            round_trip_time: c
                .last_rr
                .and_then(|(_, rtt)| rtt)
                .map(|rtt| rtt.as_secs_f64() * 1000.0),
        })];
        if let Ok(ps) = self.producer_stats(&c.producer_id, now) {
            out.extend(ps.into_iter().map(RtpStreamStats::Inbound));
        }
        Ok(out)
    }

    /// Current state of a consumer for dumps and tests: paused flags, layer, counters.
    pub fn consumer_dump(&self, consumer: &Uuid) -> Result<ConsumerDump, EngineError> {
        let c = &self.consumers[self.consumer_key(consumer)?];
        Ok(ConsumerDump {
            id: c.id.to_string(),
            producer_id: c.producer_id.to_string(),
            kind: c.kind,
            consumer_type: c.consumer_type,
            paused: c.paused,
            producer_paused: c.producer_paused,
            rtp_parameters: c.rtp_parameters.clone(),
            current_layer: c.current_layer,
            target_layer: c.target_layer,
            current_temporal_layer: c.current_layers().1,
            target_temporal_layer: c.target_temporal,
            temporal_drops: c.counters.temporal_drops,
            priority: c.priority,
            packets: c.counters.packets,
            retransmitted: c.counters.retransmitted,
            nack_misses: c.counters.nack_misses,
        })
    }

    /// What stats and dump both show of a transport's connection: ICE/DTLS state and selected
    /// tuple (WebRTC), or the tuples of `plain` (a PlainTransport's data).
    fn transport_state(&self, key: usize, plain: Option<&PlainTransportInfo>) -> TransportState {
        let mut state = TransportState::default();
        if let Some(w) = self.transports[key].webrtc() {
            state.ice_state = Some(w.ice.state().as_str());
            state.dtls_state = Some(w.dtls_state.as_str());
            state.ice_selected_tuple = w
                .ice
                .selected_tuple()
                .map(|tuple| tuple_info(&tuple, self.listen.announced_address.as_deref()));
        }
        if let Some(p) = plain {
            state.tuple = Some(p.tuple.clone());
            state.rtcp_tuple = p.rtcp_tuple.clone();
        }
        state
    }

    /// The transport's ids of producers/consumers, ICE state, DTLS state and selected tuple (or
    /// a PlainTransport's tuples and SRTP key).
    pub fn transport_dump(&self, transport: &Uuid) -> Result<TransportDump, EngineError> {
        let key = self.transport_key(transport)?;
        let t = &self.transports[key];
        let plain = self.plain_transport_data(key);
        Ok(TransportDump {
            id: t.id.to_string(),
            producer_ids: t
                .producers
                .iter()
                .map(|p| self.producers[*p].id.to_string())
                .collect(),
            consumer_ids: t
                .consumers
                .iter()
                .map(|c| self.consumers[*c].id.to_string())
                .collect(),
            state: self.transport_state(key, plain.as_ref()),
            srtp_parameters: plain.and_then(|p| p.srtp_parameters),
        })
    }

    // ---------------------------------------------------------------- the packet path
}
