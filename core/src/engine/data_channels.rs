//! Data channels: the SCTP association of each WebRtcTransport, DCEP, DataProducers and
//! DataConsumers (SCTP or direct) and their close cascades.

use super::*;
use crate::api::{DataConsumerInfo, DataProducerInfo};

impl Engine {
    /// Largest data-channel message accepted (config `maxSctpMessageSize`).
    pub fn set_max_message_size(&mut self, bytes: usize) {
        self.max_message_size = bytes;
    }

    pub(super) fn start_sctp(&mut self, tkey: usize, we_are_dtls_client: bool, now: Instant) {
        let max = self.max_message_size;
        let id = self.transports[tkey].id;
        let Some(w) = self.transports[tkey].webrtc_mut() else {
            return;
        };
        let (Some((os, mis)), true) = (w.sctp_streams, w.enable_sctp) else {
            return;
        };
        let mut sctp = SctpAssociation::new(
            SctpConfig {
                os,
                mis,
                max_message_size: max,
            },
            now,
        );
        // The DTLS client opens the association; as DTLS server we wait for the peer's INIT.
        if we_are_dtls_client {
            let _ = sctp.connect(now);
        }
        w.sctp = Some(sctp);
        self.events.push_back(EngineEvent::SctpStateChange {
            transport: id,
            state: SctpState::Connecting,
        });
        self.process_sctp(tkey, now);
    }

    /// Drains an association: its packets go out over DTLS, its events are acted on.
    pub(super) fn process_sctp(&mut self, tkey: usize, now: Instant) {
        loop {
            let Some(t) = self.transports.get_mut(tkey) else {
                return;
            };
            let id = t.id;
            let Some(w) = t.webrtc_mut() else { return };
            let (Some(sctp), Some(dtls)) = (w.sctp.as_mut(), w.dtls.as_mut()) else {
                return;
            };
            let mut sent = false;
            while let Some(pkt) = sctp.poll_transmit(now) {
                dtls.send_application_data(&pkt);
                sent = true;
            }
            let ev = sctp.poll_event();
            if sent {
                // The records go out (or the session reports its failure).
                self.drive_dtls(tkey, now);
            }
            let Some(ev) = ev else { return };
            match ev {
                SctpEvent::Connected => self.events.push_back(EngineEvent::SctpStateChange {
                    transport: id,
                    state: SctpState::Connected,
                }),
                SctpEvent::Failed => self.events.push_back(EngineEvent::SctpStateChange {
                    transport: id,
                    state: SctpState::Failed,
                }),
                SctpEvent::Closed => self.events.push_back(EngineEvent::SctpStateChange {
                    transport: id,
                    state: SctpState::Closed,
                }),
                SctpEvent::Message {
                    stream_id,
                    ppid,
                    data,
                } => self.on_sctp_message(tkey, stream_id, ppid, data, now),
                SctpEvent::StreamClosed { stream_id } => {
                    if let Some(&dp) = self.transports[tkey].sctp_in_streams.get(&stream_id) {
                        let dp_id = self.data_producers[dp].id;
                        self.events
                            .push_back(EngineEvent::DataProducerClosedByPeer {
                                data_producer: dp_id,
                            });
                        let _ = self.close_data_producer(&dp_id, now);
                    }
                }
            }
        }
    }

    pub(super) fn on_sctp_message(
        &mut self,
        tkey: usize,
        stream_id: u16,
        ppid: Ppid,
        data: Vec<u8>,
        now: Instant,
    ) {
        let known = self.transports[tkey]
            .sctp_in_streams
            .get(&stream_id)
            .copied();
        if ppid == Ppid::Dcep {
            // DCEP (RFC 8832) for apps that open channels in-band; pre-negotiated channels
            // (mediasoup-client) never send it, and it is ignored on known streams.
            if known.is_some() {
                return;
            }
            let Ok(crate::data_channel::DcepAction::Opened { open, ack, .. }) =
                crate::data_channel::handle_dcep(stream_id, &data)
            else {
                return;
            };
            let params = open.stream_parameters(stream_id);
            let router = self.transports[tkey].router;
            let id = self.insert_data_producer(
                router,
                Some(tkey),
                Some(params),
                open.label.clone(),
                open.protocol.clone(),
                false,
            );
            let transport = self.transports[tkey].id;
            if let Some(sctp) = self.transports[tkey]
                .webrtc_mut()
                .and_then(|w| w.sctp.as_mut())
            {
                let _ = sctp.send(stream_id, Ppid::Dcep, &ack, Reliability::RELIABLE_ORDERED);
            }
            self.events
                .push_back(EngineEvent::DataProducerOpenedByPeer {
                    transport,
                    data_producer: id,
                    label: open.label,
                    protocol: open.protocol,
                });
            return;
        }
        let Some(dp) = known else {
            return;
        };
        self.deliver_data(dp, DataMessage { ppid, data }, now);
    }

    /// Fans a message from data producer `dp` out to its data consumers.
    pub(super) fn deliver_data(&mut self, dp: usize, msg: DataMessage, now: Instant) {
        let p = &mut self.data_producers[dp];
        p.counters.messages += 1;
        p.counters.bytes += msg.data.len() as u64;
        if p.paused {
            return;
        }
        for i in 0..self.data_producers[dp].consumers.len() {
            let ck = self.data_producers[dp].consumers[i];
            let c = &mut self.data_consumers[ck];
            if c.paused || c.data_producer_paused {
                continue;
            }
            match c.transport {
                Some(tk) => {
                    let stream = c
                        .sctp_stream_parameters
                        .as_ref()
                        .map(|p| p.stream_id)
                        .unwrap_or(0);
                    let reliability = c.reliability;
                    let sent = self.transports[tk]
                        .webrtc_mut()
                        .and_then(|w| w.sctp.as_mut())
                        .map(|sctp| sctp.send(stream, msg.ppid, &msg.data, reliability).is_ok())
                        .unwrap_or(false);
                    let c = &mut self.data_consumers[ck];
                    if sent {
                        c.counters.messages += 1;
                        c.counters.bytes += msg.data.len() as u64;
                    } else {
                        c.counters.dropped += 1;
                    }
                    self.process_sctp(tk, now);
                }
                None => {
                    c.counters.messages += 1;
                    c.counters.bytes += msg.data.len() as u64;
                    let id = c.id;
                    self.events.push_back(EngineEvent::DataConsumerMessage {
                        data_consumer: id,
                        message: msg.clone(),
                    });
                }
            }
        }
    }

    pub(super) fn sctp_timers(&mut self, now: Instant) {
        for tkey in 0..self.transports.capacity() {
            let Some(t) = self.transports.get_mut(tkey) else {
                continue;
            };
            let Some(sctp) = t.webrtc_mut().and_then(|w| w.sctp.as_mut()) else {
                continue;
            };
            if sctp.poll_timeout().is_some_and(|d| d <= now) {
                sctp.handle_timeout(now);
                self.process_sctp(tkey, now);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn insert_data_producer(
        &mut self,
        router: usize,
        transport: Option<usize>,
        params: Option<SctpStreamParameters>,
        label: String,
        protocol: String,
        paused: bool,
    ) -> Uuid {
        let id = self.new_id();
        let stream = params.as_ref().map(|p| p.stream_id);
        let key = self.data_producers.insert(DataProducer {
            id,
            router,
            transport,
            sctp_stream_parameters: params,
            label,
            protocol,
            paused,
            consumers: Vec::new(),
            counters: DataCounters::default(),
        });
        self.data_producer_ids.insert(id, key);
        if let Some(tk) = transport {
            let t = &mut self.transports[tk];
            t.data_producers.push(key);
            if let Some(s) = stream {
                t.sctp_in_streams.insert(s, key);
            }
        }
        id
    }

    /// Creates a data producer: on a WebRtcTransport with SCTP (`transport`), or direct on `router`
    /// (`transport` None) for in-process senders. Returns mediasoup's data producer JSON.
    #[allow(clippy::too_many_arguments)]
    pub fn produce_data(
        &mut self,
        router: &Uuid,
        transport: Option<&Uuid>,
        sctp_stream_parameters: Option<SctpStreamParameters>,
        label: &str,
        protocol: &str,
        paused: bool,
        _now: Instant,
    ) -> Result<DataProducerInfo, EngineError> {
        let rkey = self.router_key(router)?;
        let tkey = match transport {
            Some(t) => Some(self.transport_key(t)?),
            None => None,
        };
        let params = match (tkey, sctp_stream_parameters) {
            (Some(tk), Some(p)) => {
                let t = &self.transports[tk];
                let w = t.webrtc().ok_or_else(|| {
                    EngineError::Invalid("data producers need a WebRtcTransport".into())
                })?;
                let Some((_, mis)) = w.sctp_streams.filter(|_| w.enable_sctp) else {
                    return Err(EngineError::State(
                        "SCTP is not enabled on this transport (enableSctp)".into(),
                    ));
                };
                if p.stream_id >= mis {
                    return Err(EngineError::Invalid(format!(
                        "sctpStreamParameters.streamId {} is not below MIS {mis}",
                        p.stream_id
                    )));
                }
                if t.sctp_in_streams.contains_key(&p.stream_id) {
                    return Err(EngineError::Invalid(format!(
                        "sctpStreamParameters.streamId {} already in use",
                        p.stream_id
                    )));
                }
                if p.max_packet_life_time.is_some() && p.max_retransmits.is_some() {
                    return Err(EngineError::Invalid(
                        "sctpStreamParameters: maxPacketLifeTime and maxRetransmits are exclusive"
                            .into(),
                    ));
                }
                Some(p)
            }
            (Some(_), None) => {
                return Err(EngineError::Invalid("sctpStreamParameters missing".into()))
            }
            (None, _) => None,
        };
        if let Some(tk) = tkey {
            if self.transports[tk].router != rkey {
                return Err(EngineError::Invalid(
                    "transport belongs to another router".into(),
                ));
            }
        }
        let id = self.insert_data_producer(
            rkey,
            tkey,
            params,
            label.to_string(),
            protocol.to_string(),
            paused,
        );
        Ok(self.data_producers[self.data_producer_ids[&id]].info())
    }

    /// Creates a data consumer of `data_producer`: on a WebRtcTransport with SCTP (the engine picks
    /// the stream id), or direct (`transport` None: messages arrive as `DataConsumerMessage` events).
    #[allow(clippy::too_many_arguments)]
    pub fn consume_data(
        &mut self,
        transport: Option<&Uuid>,
        data_producer: &Uuid,
        ordered: Option<bool>,
        max_packet_life_time: Option<u16>,
        max_retransmits: Option<u16>,
        paused: bool,
        _now: Instant,
    ) -> Result<DataConsumerInfo, EngineError> {
        let dp = self.data_producer_key(data_producer)?;
        let tkey = match transport {
            Some(t) => Some(self.transport_key(t)?),
            None => None,
        };
        let producer = &self.data_producers[dp];
        let (label, protocol, dp_paused, dp_id) = (
            producer.label.clone(),
            producer.protocol.clone(),
            producer.paused,
            producer.id,
        );
        // By default a consumer inherits the producer's reliability.
        let base = producer.sctp_stream_parameters;
        let params = match tkey {
            Some(tk) => {
                if self.transports[tk].router != producer.router {
                    return Err(EngineError::Invalid(
                        "data producer belongs to another router".into(),
                    ));
                }
                let w = self.transports[tk]
                    .webrtc_mut()
                    .ok_or_else(|| EngineError::Invalid("not a WebRtcTransport".into()))?;
                if !w.enable_sctp {
                    return Err(EngineError::State(
                        "SCTP is not enabled on this transport (enableSctp)".into(),
                    ));
                }
                let stream_id = w
                    .sctp_out_streams
                    .as_mut()
                    .and_then(|a| a.allocate())
                    .ok_or_else(|| EngineError::State("no free SCTP stream id".into()))?;
                let (mut o, mut lt, mut rt) = match &base {
                    Some(b) => (b.ordered, b.max_packet_life_time, b.max_retransmits),
                    None => (Some(true), None, None),
                };
                if ordered.is_some() || max_packet_life_time.is_some() || max_retransmits.is_some()
                {
                    o = ordered.or(Some(
                        max_packet_life_time.is_none() && max_retransmits.is_none(),
                    ));
                    lt = max_packet_life_time;
                    rt = max_retransmits;
                }
                Some(SctpStreamParameters {
                    stream_id,
                    ordered: o,
                    max_packet_life_time: lt,
                    max_retransmits: rt,
                })
            }
            None => None,
        };
        let reliability = params
            .as_ref()
            .map(Reliability::from_stream_parameters)
            .unwrap_or(Reliability::RELIABLE_ORDERED);
        let id = self.new_id();
        let key = self.data_consumers.insert(DataConsumer {
            id,
            data_producer: dp,
            data_producer_id: dp_id,
            transport: tkey,
            sctp_stream_parameters: params,
            reliability,
            label,
            protocol,
            paused,
            data_producer_paused: dp_paused,
            counters: DataCounters::default(),
        });
        self.data_consumer_ids.insert(id, key);
        self.data_producers[dp].consumers.push(key);
        if let Some(tk) = tkey {
            self.transports[tk].data_consumers.push(key);
        }
        Ok(self.data_consumers[key].info())
    }

    /// Sends a message from a direct data producer (server-side scripts).
    pub fn send_data(
        &mut self,
        data_producer: &Uuid,
        message: DataMessage,
        now: Instant,
    ) -> Result<(), EngineError> {
        let dp = self.data_producer_key(data_producer)?;
        if self.data_producers[dp].transport.is_some() {
            return Err(EngineError::Invalid(
                "send() is only for direct data producers".into(),
            ));
        }
        if message.data.len() > self.max_message_size {
            return Err(EngineError::Invalid(format!(
                "message of {} bytes exceeds maxMessageSize {}",
                message.data.len(),
                self.max_message_size
            )));
        }
        self.deliver_data(dp, message, now);
        Ok(())
    }

    /// Closes a data producer; its data consumers close with an event each.
    pub fn close_data_producer(
        &mut self,
        data_producer: &Uuid,
        now: Instant,
    ) -> Result<(), EngineError> {
        let dp = self
            .data_producer_ids
            .remove(data_producer)
            .ok_or_else(|| not_found("data producer", data_producer))?;
        let consumers = self.data_producers[dp].consumers.clone();
        for c in consumers {
            let cid = self.data_consumers[c].id;
            self.events
                .push_back(EngineEvent::DataConsumerDataProducerClosed {
                    data_consumer: cid,
                    data_producer: *data_producer,
                });
            let _ = self.close_data_consumer(&cid, now);
        }
        let p = self.data_producers.remove(dp);
        if let Some(tk) = p.transport {
            if let Some(t) = self.transports.get_mut(tk) {
                t.data_producers.retain(|k| *k != dp);
                t.sctp_in_streams.retain(|_, v| *v != dp);
            }
        }
        Ok(())
    }

    /// Closes a data consumer (its SCTP stream is reset so the peer's channel closes).
    pub fn close_data_consumer(
        &mut self,
        data_consumer: &Uuid,
        now: Instant,
    ) -> Result<(), EngineError> {
        let ck = self
            .data_consumer_ids
            .remove(data_consumer)
            .ok_or_else(|| not_found("data consumer", data_consumer))?;
        let c = self.data_consumers.remove(ck);
        if let Some(p) = self.data_producers.get_mut(c.data_producer) {
            p.consumers.retain(|k| *k != ck);
        }
        if let Some(tk) = c.transport {
            if let Some(t) = self.transports.get_mut(tk) {
                t.data_consumers.retain(|k| *k != ck);
                if let (Some(w), Some(params)) = (t.webrtc_mut(), c.sctp_stream_parameters) {
                    if let Some(sctp) = w.sctp.as_mut() {
                        sctp.close_stream(params.stream_id);
                    }
                    if let Some(a) = w.sctp_out_streams.as_mut() {
                        a.release(params.stream_id);
                    }
                }
                self.process_sctp(tk, now);
            }
        }
        Ok(())
    }

    /// The slab key of data producer `id` (404 when unknown).
    pub(super) fn data_producer_key(&self, id: &Uuid) -> Result<usize, EngineError> {
        self.data_producer_ids
            .get(id)
            .copied()
            .ok_or_else(|| not_found("data producer", id))
    }

    /// The slab key of data consumer `id` (404 when unknown).
    pub(super) fn data_consumer_key(&self, id: &Uuid) -> Result<usize, EngineError> {
        self.data_consumer_ids
            .get(id)
            .copied()
            .ok_or_else(|| not_found("data consumer", id))
    }

    /// Pauses or resumes a data producer (its consumers are told through their paused flag).
    pub fn set_data_producer_paused(
        &mut self,
        data_producer: &Uuid,
        paused: bool,
        _now: Instant,
    ) -> Result<(), EngineError> {
        let dp = self.data_producer_key(data_producer)?;
        self.data_producers[dp].paused = paused;
        for i in 0..self.data_producers[dp].consumers.len() {
            let ck = self.data_producers[dp].consumers[i];
            self.data_consumers[ck].data_producer_paused = paused;
        }
        Ok(())
    }

    /// Pauses or resumes a data consumer.
    pub fn set_data_consumer_paused(
        &mut self,
        data_consumer: &Uuid,
        paused: bool,
        _now: Instant,
    ) -> Result<(), EngineError> {
        let ck = self.data_consumer_key(data_consumer)?;
        self.data_consumers[ck].paused = paused;
        Ok(())
    }
}
