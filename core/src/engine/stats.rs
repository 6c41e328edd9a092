//! Stats and dumps of transports, producers, consumers and data producers/consumers.

use super::*;

impl Engine {
    /// Stats of a data producer.
    pub fn data_producer_stats(&self, data_producer: &Uuid) -> Result<Value, EngineError> {
        let p = &self.data_producers[self.data_producer_key(data_producer)?];
        Ok(json!([{
            "type": "data-producer", "timestamp": now_ms(), "label": p.label, "protocol": p.protocol,
            "messagesReceived": p.counters.messages, "bytesReceived": p.counters.bytes,
        }]))
    }

    /// Stats of a data consumer.
    pub fn data_consumer_stats(&self, data_consumer: &Uuid) -> Result<Value, EngineError> {
        let c = &self.data_consumers[self.data_consumer_key(data_consumer)?];
        Ok(json!([{
            "type": "data-consumer", "timestamp": now_ms(), "label": c.label, "protocol": c.protocol,
            "messagesSent": c.counters.messages, "bytesSent": c.counters.bytes,
            "messagesDropped": c.counters.dropped,
        }]))
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
    pub fn transport_stats(&self, transport: &Uuid) -> Result<Value, EngineError> {
        let key = self.transport_key(transport)?;
        let t = &self.transports[key];
        let c = &t.counters;
        let mut v = json!({
            "type": if t.webrtc().is_some() { "webrtc-transport" } else { "plain-rtp-transport" },
            "transportId": t.id.to_string(),
            "timestamp": now_ms(),
            "rtpPacketsReceived": c.rtp_packets_received, "bytesReceived": c.rtp_bytes_received,
            "rtpPacketsSent": c.rtp_packets_sent, "bytesSent": c.rtp_bytes_sent,
            "rtcpPacketsReceived": c.rtcp_packets_received, "rtcpPacketsSent": c.rtcp_packets_sent,
            "srtpDrops": c.srtp_drops, "unknownSsrcDrops": c.unknown_ssrc_drops,
        });
        if let Some(b) = t.bwe.available_outgoing_bitrate() {
            v["availableOutgoingBitrate"] = json!(b);
        }
        if let Some(b) = t.bwe.max_outgoing_bitrate() {
            v["maxOutgoingBitrate"] = json!(b);
        }
        if let Some(b) = t.bwe.max_incoming_bitrate() {
            v["maxIncomingBitrate"] = json!(b);
        }
        if let Some(w) = t.webrtc() {
            v["iceRole"] = json!("controlled");
            v["iceState"] = json!(w.ice.state().as_str());
            v["dtlsState"] = json!(w.dtls_state.as_str());
            if let Some(tuple) = w.ice.selected_tuple() {
                v["iceSelectedTuple"] =
                    tuple_json(&tuple, self.listen.announced_address.as_deref());
            }
        }
        if let TransportKind::Plain(p) = &t.kind {
            // As mediasoup's PlainTransport stats: its tuples (the remote once connected or
            // learned in comedia mode) and modes.
            let data = self.plain_transport_data(key);
            v["tuple"] = data["tuple"].clone();
            if let Some(r) = data.get("rtcpTuple") {
                v["rtcpTuple"] = r.clone();
            }
            v["rtcpMux"] = json!(p.rtcp_socket.is_none());
            v["comedia"] = json!(p.comedia);
        }
        Ok(json!([v]))
    }

    /// Stats of a producer: one entry per stream.
    pub fn producer_stats(&self, producer: &Uuid) -> Result<Value, EngineError> {
        let p = &self.producers[self.producer_key(producer)?];
        let mime = p
            .rtp_parameters
            .codecs
            .first()
            .map(|c| c.mime_type.clone())
            .unwrap_or_default();
        Ok(Value::Array(
            p.streams
                .iter()
                .map(|s| {
                    json!({
                        "type": "inbound-rtp", "timestamp": now_ms(), "kind": p.kind,
                        "ssrc": s.ssrc, "rtxSsrc": s.rtx_ssrc, "rid": s.rid, "mimeType": mime,
                        "packetCount": s.packets, "byteCount": s.bytes,
                        "packetsRetransmitted": s.rtx_packets, "packetsDuplicated": s.rtx_duplicates,
                        "packetsLost": s.stats.packets_lost(),
                        "jitter": s.stats.jitter(),
                        "score": s.score.score(),
                    })
                })
                .collect(),
        ))
    }

    /// Stats of a consumer.
    pub fn consumer_stats(&self, consumer: &Uuid) -> Result<Value, EngineError> {
        let c = &self.consumers[self.consumer_key(consumer)?];
        let mime = c
            .rtp_parameters
            .codecs
            .first()
            .map(|c| c.mime_type.clone())
            .unwrap_or_default();
        let mut out = vec![json!({
            "type": "outbound-rtp", "timestamp": now_ms(), "kind": c.kind, "ssrc": c.ssrc,
            "mimeType": mime, "packetCount": c.counters.packets, "byteCount": c.counters.bytes,
            "packetsRetransmitted": c.counters.retransmitted, "nackCount": c.counters.nacks,
            "pliCount": c.counters.keyframe_requests,
            "fractionLost": c.last_rr.map(|r| r.0).unwrap_or(0), "score": c.score.score(),
        })];
        if let Some((_, Some(rtt))) = c.last_rr {
            // mediasoup reports milliseconds, with fractions.
            out[0]["roundTripTime"] = json!(rtt.as_secs_f64() * 1000.0);
        }
        if let Ok(mut ps) = self.producer_stats(&c.producer_id) {
            if let Some(arr) = ps.as_array_mut() {
                out.append(arr);
            }
        }
        Ok(Value::Array(out))
    }

    /// Current state of a consumer for dumps and tests: paused flags, layer, counters.
    pub fn consumer_dump(&self, consumer: &Uuid) -> Result<Value, EngineError> {
        let c = &self.consumers[self.consumer_key(consumer)?];
        Ok(json!({
            "id": c.id.to_string(), "producerId": c.producer_id.to_string(), "kind": c.kind,
            "type": c.consumer_type, "paused": c.paused, "producerPaused": c.producer_paused,
            "rtpParameters": c.rtp_parameters, "currentLayer": c.current_layer,
            "targetLayer": c.target_layer, "priority": c.priority,
            "packets": c.counters.packets, "retransmitted": c.counters.retransmitted,
            "nackMisses": c.counters.nack_misses,
        }))
    }

    /// The transport's ICE state, DTLS state and selected tuple.
    pub fn transport_dump(&self, transport: &Uuid) -> Result<Value, EngineError> {
        let key = self.transport_key(transport)?;
        let t = &self.transports[key];
        let mut v = json!({
            "id": t.id.to_string(),
            "producerIds": t.producers.iter().map(|p| self.producers[*p].id.to_string()).collect::<Vec<_>>(),
            "consumerIds": t.consumers.iter().map(|c| self.consumers[*c].id.to_string()).collect::<Vec<_>>(),
            "appData": t.app_data,
        });
        match &t.kind {
            TransportKind::WebRtc(w) => {
                v["iceState"] = json!(w.ice.state().as_str());
                v["dtlsState"] = json!(w.dtls_state.as_str());
                if let Some(tuple) = w.ice.selected_tuple() {
                    v["iceSelectedTuple"] =
                        tuple_json(&tuple, self.listen.announced_address.as_deref());
                }
            }
            TransportKind::Plain(_) => {
                if let Value::Object(m) = self.plain_transport_data(key) {
                    for (k, val) in m {
                        v[k] = val;
                    }
                }
            }
        }
        Ok(v)
    }

    // ---------------------------------------------------------------- the packet path
}
