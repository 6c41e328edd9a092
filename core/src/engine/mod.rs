//! The engine: everything one worker owns (routers, transports, producers, consumers) and the packet
//! path through them. It is sans-IO: the worker's I/O loop feeds it datagrams and time, and drains the
//! packets it queued in [`Engine::tx`] and the events it queued with [`Engine::poll_event`].

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use rand::{Rng, RngCore};
use slab::Slab;
use uuid::Uuid;

use crate::consumer::{Consumer, ConsumerCounters, ForwardOutcome};
use crate::data::{DataConsumer, DataCounters, DataMessage, DataProducer, StreamIdAllocator};
use crate::dtls::{DtlsCertificate, DtlsOutput, DtlsRole, DtlsSession, Fingerprint};
use crate::ice::{IceEvent, IceServer, IceState};
use crate::io::{Route, SocketId, TxQueue, PACKET_BUF_SIZE};
use crate::metrics::{DropCounters, TrafficTotals};
use crate::ortc;
use crate::producer::Producer;
use crate::router::Router;
use crate::rtcp::{self, RtcpPacket};
use crate::rtp::{self, RtpHeader};
use crate::rtp_parameters::{is_rtx_mime_type, uri, SctpStreamParameters};
use crate::rtp_parameters::{MediaKind, RtpCapabilities, RtpCodecCapability, RtpParameters};
use crate::sctp::{Ppid, Reliability, SctpAssociation, SctpConfig, SctpEvent, SctpState};
use crate::srtp::{self, SrtpContext, SrtpProfile};
use crate::stun::StunMessage;
use crate::transport::{
    route_for, tuple_info, DemuxKeys, DtlsState, PlainState, Transport, TransportCounters,
    TransportKind, WebRtcState,
};
use crate::tuple::TransportTuple;

/// Interval of the engine's fine timer (NACK generation).
pub(super) const TICK: Duration = Duration::from_millis(20);
/// Interval of RTCP reports, consent checks and layer selection.
pub(super) const REPORT_INTERVAL: Duration = Duration::from_millis(1000);
/// At most this many NACKed sequence numbers are answered per RTCP packet.
pub(super) const RTCP_NACK_LIMIT: usize = 512;
/// At most this many PLI/FIR media SSRCs are handled per RTCP packet.
pub(super) const RTCP_KEYFRAME_LIMIT: usize = 64;
/// Interval of the layer allocation (the estimate distributed over consumers).
pub(super) const ALLOC_INTERVAL: Duration = Duration::from_millis(250);
/// The allocator must want a higher layer this long before a consumer moves up (hysteresis).
pub(super) const LAYER_UPGRADE_HOLD: Duration = Duration::from_millis(1000);
/// A simulcast layer counts as active if a packet arrived this recently.
pub(super) const LAYER_ACTIVE_WINDOW: Duration = Duration::from_millis(1500);

/// Errors of engine API calls (bad arguments or unknown objects); the message names the problem.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No object with that id on this worker.
    #[error("{kind} not found: {id}")]
    NotFound {
        /// What was looked up.
        kind: &'static str,
        /// The id.
        id: String,
    },
    /// Arguments rejected.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// ORTC negotiation failed.
    #[error("rtp negotiation: {0}")]
    Ortc(String),
    /// The request cannot be served in the object's current state.
    #[error("invalid state: {0}")]
    State(String),
    /// The feature is not built yet.
    #[error("not implemented: {0}")]
    Unsupported(String),
}

impl EngineError {
    /// The fixed status code of this kind of error, for the Lua/HTTP edge (so no script has to
    /// match error text): not found 404, bad state 409, invalid argument or failed negotiation
    /// 400, not implemented 501.
    pub fn status(&self) -> u16 {
        match self {
            EngineError::NotFound { .. } => 404,
            EngineError::State(_) => 409,
            EngineError::Invalid(_) | EngineError::Ortc(_) => 400,
            EngineError::Unsupported(_) => 501,
        }
    }
}

pub(super) fn not_found(kind: &'static str, id: &Uuid) -> EngineError {
    EngineError::NotFound {
        kind,
        id: id.to_string(),
    }
}

/// Something that happened, for observers (Lua, tests, the API layer).
#[derive(Debug, Clone)]
pub enum EngineEvent {
    /// A transport's ICE state changed.
    IceStateChange {
        /// Transport id.
        transport: Uuid,
        /// New state.
        state: IceState,
    },
    /// A transport's selected tuple changed.
    IceSelectedTupleChange {
        /// Transport id.
        transport: Uuid,
        /// New tuple.
        tuple: TransportTuple,
    },
    /// A transport's DTLS state changed.
    DtlsStateChange {
        /// Transport id.
        transport: Uuid,
        /// New state.
        state: DtlsState,
        /// Why, for failures.
        reason: Option<String>,
    },
    /// A plain transport learned its remote (comedia).
    PlainTupleChange {
        /// Transport id.
        transport: Uuid,
        /// Remote address.
        remote: SocketAddr,
    },
    /// A transport was closed (API or cascade).
    TransportClosed {
        /// Transport id.
        transport: Uuid,
    },
    /// A producer was closed because its transport closed.
    ProducerTransportClosed {
        /// Producer id.
        producer: Uuid,
    },
    /// A consumer was closed because its producer closed.
    ConsumerProducerClosed {
        /// Consumer id.
        consumer: Uuid,
        /// The producer.
        producer: Uuid,
    },
    /// A consumer was closed because its transport closed.
    ConsumerTransportClosed {
        /// Consumer id.
        consumer: Uuid,
    },
    /// The producer of a consumer was paused.
    ConsumerProducerPause {
        /// Consumer id.
        consumer: Uuid,
    },
    /// The producer of a consumer was resumed.
    ConsumerProducerResume {
        /// Consumer id.
        consumer: Uuid,
    },
    /// A transport's SCTP association changed state.
    SctpStateChange {
        /// Transport id.
        transport: Uuid,
        /// New state.
        state: SctpState,
    },
    /// A peer opened a data channel with DCEP; the engine made a data producer for it.
    DataProducerOpenedByPeer {
        /// Transport id.
        transport: Uuid,
        /// The new data producer.
        data_producer: Uuid,
        /// Channel label.
        label: String,
        /// Channel protocol.
        protocol: String,
    },
    /// A message for a direct data consumer (server-side scripts receive data this way).
    DataConsumerMessage {
        /// Data consumer id.
        data_consumer: Uuid,
        /// The message.
        message: DataMessage,
    },
    /// A data consumer was closed because its data producer closed.
    DataConsumerDataProducerClosed {
        /// Data consumer id.
        data_consumer: Uuid,
        /// The data producer.
        data_producer: Uuid,
    },
    /// A data consumer was closed because its transport closed.
    DataConsumerTransportClosed {
        /// Data consumer id.
        data_consumer: Uuid,
    },
    /// A data producer was closed because its transport closed.
    DataProducerTransportClosed {
        /// Data producer id.
        data_producer: Uuid,
    },
    /// A data producer was closed because the peer reset its SCTP stream (closed the channel).
    DataProducerClosedByPeer {
        /// Data producer id.
        data_producer: Uuid,
    },
    /// A producer's scores changed (or one of its streams started): one entry per stream seen.
    ProducerScore {
        /// Producer id.
        producer: Uuid,
        /// Scores per encoding.
        scores: crate::score::ProducerScores,
    },
    /// A consumer's score, or its producer's, changed.
    ConsumerScore {
        /// Consumer id.
        consumer: Uuid,
        /// The scores.
        score: crate::score::ConsumerScore,
    },
    /// An RTP observer reported (volumes, silence, dominant speaker) or closed with its router.
    Observer(crate::observer::registry::ObserverEvent),
    /// A simulcast consumer's forwarded layers changed (emitted when the switch happens: a
    /// spatial switch at the new layer's keyframe, a temporal one at the frame where it moved).
    ConsumerLayersChange {
        /// Consumer id.
        consumer: Uuid,
        /// Spatial layer now forwarded, None when none.
        spatial_layer: Option<usize>,
        /// VP8 temporal layer now forwarded; None without temporal layer ids (or no layer).
        temporal_layer: Option<u8>,
    },
    /// A transport's send-side estimate, with what its consumers want (mediasoup's `bwe` trace,
    /// direction out): at most every second, sooner when the estimate moved 10 %.
    TransportBwe {
        /// Transport id.
        transport: Uuid,
        /// The numbers.
        info: crate::bwe::BweInfo,
    },
}

/// Where a datagram came from.
#[derive(Debug, Clone, Copy)]
pub struct PacketSource {
    /// The worker socket it arrived on (UDP) or the listening socket's id (TCP).
    pub socket: SocketId,
    /// The TCP connection id for RFC 4571 framed packets.
    pub tcp_conn: Option<u32>,
    /// The 5-tuple.
    pub tuple: TransportTuple,
}

/// Options of a WebRtcTransport.
#[derive(Debug, Clone)]
pub struct WebRtcTransportOptions {
    /// Offer a UDP candidate.
    pub enable_udp: bool,
    /// Offer a TCP candidate.
    pub enable_tcp: bool,
    /// Give the UDP candidate the higher priority.
    pub prefer_udp: bool,
    /// ICE consent timeout.
    pub ice_consent_timeout: Duration,
    /// SCTP numStreams requested by the client (None = no SCTP).
    pub sctp: Option<(u16, u16)>,
    /// `initialAvailableOutgoingBitrate`: where the send-side estimate starts, bits/s (0: 600 000).
    pub initial_available_outgoing_bitrate: u64,
}

impl Default for WebRtcTransportOptions {
    fn default() -> Self {
        Self {
            enable_udp: true,
            enable_tcp: true,
            prefer_udp: true,
            ice_consent_timeout: Duration::from_secs(30),
            sctp: None,
            initial_available_outgoing_bitrate: 0,
        }
    }
}

/// The worker's shared listening endpoints, used to build ICE candidates.
#[derive(Debug, Clone)]
pub struct ListenInfo {
    /// UDP socket id and local address.
    pub udp: Option<(SocketId, SocketAddr)>,
    /// TCP listening address.
    pub tcp: Option<SocketAddr>,
    /// Address announced in candidates instead of the listen IP.
    pub announced_address: Option<String>,
}

/// Options of `produce`.
#[derive(Debug, Clone)]
pub struct ProduceOptions {
    /// audio or video.
    pub kind: MediaKind,
    /// The peer's send parameters.
    pub rtp_parameters: RtpParameters,
    /// Start paused.
    pub paused: bool,
}

/// Options of `consume`.
#[derive(Debug, Clone)]
pub struct ConsumeOptions {
    /// The producer to consume.
    pub producer_id: Uuid,
    /// The receiving device's capabilities.
    pub rtp_capabilities: RtpCapabilities,
    /// Start paused (the demo resumes after the client acknowledges).
    pub paused: bool,
    /// Offer RTX to the receiver when both sides support it.
    pub enable_rtx: bool,
}

/// The engine of one worker.
pub struct Engine {
    /// Worker index (also encoded in ICE usernames).
    pub worker_index: usize,
    /// Packets queued for the I/O layer; the worker flushes it after every step.
    pub tx: TxQueue,
    /// Shared-port drop counters.
    pub drops: DropCounters,
    /// Counters of closed transports and consumers (so `/metrics` totals never go down).
    pub(super) retired: TrafficTotals,
    listen: ListenInfo,
    cert: DtlsCertificate,
    routers: Slab<Router>,
    transports: Slab<Transport>,
    data_producers: Slab<DataProducer>,
    data_consumers: Slab<DataConsumer>,
    data_producer_ids: HashMap<Uuid, usize>,
    data_consumer_ids: HashMap<Uuid, usize>,
    max_message_size: usize,
    producers: Slab<Producer>,
    consumers: Slab<Consumer>,
    router_ids: HashMap<Uuid, usize>,
    transport_ids: HashMap<Uuid, usize>,
    producer_ids: HashMap<Uuid, usize>,
    consumer_ids: HashMap<Uuid, usize>,
    ufrags: HashMap<String, usize>,
    udp_paths: HashMap<(SocketId, SocketAddr), usize>,
    tcp_paths: HashMap<u32, usize>,
    plain_sockets: HashMap<SocketId, usize>,
    events: VecDeque<EngineEvent>,
    observers: crate::observer::registry::RtpObservers,
    next_tick: Option<Instant>,
    next_report: Option<Instant>,
    next_alloc: Option<Instant>,
    alloc_cands: Vec<crate::bwe::alloc::Candidate>,
    alloc_order: Vec<usize>,
    nack_scratch: Vec<u16>,
    /// RTCP feedback collected while parsing a compound packet (reused: no allocation per packet).
    rtcp_nacks: Vec<(u32, u16)>,
    rtcp_keyframes: Vec<u32>,
    stun_scratch: Box<[u8]>,
    released_sockets: Vec<SocketId>,
    /// Maps `now` onto the wall clock (see [`clock`]).
    wall: WallClock,
    /// Every random choice the engine makes (see [`clock`]).
    rng: EngineRng,
}

impl Engine {
    /// A new engine for worker `worker_index`. `now` and
    /// `wall` are the monotonic and wall clocks read together; `seed` seeds the engine's RNG (see
    /// [`clock`]: the engine reads neither clock nor OS randomness itself).
    pub fn new(
        worker_index: usize,
        listen: ListenInfo,
        cert: DtlsCertificate,
        now: Instant,
        wall: SystemTime,
        seed: RngSeed,
    ) -> Self {
        Self {
            worker_index,
            tx: TxQueue::new(),
            drops: DropCounters::default(),
            retired: TrafficTotals::default(),
            listen,
            cert,
            routers: Slab::new(),
            transports: Slab::new(),
            data_producers: Slab::new(),
            data_consumers: Slab::new(),
            data_producer_ids: HashMap::new(),
            data_consumer_ids: HashMap::new(),
            max_message_size: crate::sctp::DEFAULT_MAX_MESSAGE_SIZE,
            producers: Slab::new(),
            consumers: Slab::new(),
            router_ids: HashMap::new(),
            transport_ids: HashMap::new(),
            producer_ids: HashMap::new(),
            consumer_ids: HashMap::new(),
            ufrags: HashMap::new(),
            udp_paths: HashMap::new(),
            tcp_paths: HashMap::new(),
            plain_sockets: HashMap::new(),
            events: VecDeque::new(),
            observers: crate::observer::registry::RtpObservers::new(),
            next_tick: None,
            next_report: None,
            next_alloc: None,
            alloc_cands: Vec::new(),
            alloc_order: Vec::new(),
            nack_scratch: Vec::with_capacity(64),
            rtcp_nacks: Vec::with_capacity(RTCP_NACK_LIMIT),
            rtcp_keyframes: Vec::with_capacity(RTCP_KEYFRAME_LIMIT),
            stun_scratch: vec![0u8; PACKET_BUF_SIZE].into_boxed_slice(),
            released_sockets: Vec::new(),
            wall: WallClock::new(now, wall),
            rng: clock::rng_from_seed(seed),
        }
    }

    /// Counters and gauges for `/metrics`: sums over the live objects plus the totals of
    /// closed ones. Runs at scrape time only (it walks every transport and consumer).
    pub fn metrics(&self) -> crate::metrics::EngineMetrics {
        use crate::metrics::{EngineMetrics, TransportCount};
        let mut m = EngineMetrics {
            routers: self.routers.len() as u64,
            data_producers: self.data_producers.len() as u64,
            data_consumers: self.data_consumers.len() as u64,
            traffic: self.retired,
            drops: self.drops,
            ..EngineMetrics::default()
        };
        for (_, t) in &self.transports {
            m.traffic.transports.add(&t.counters);
            let (kind, state) = match &t.kind {
                TransportKind::WebRtc(w) => ("webrtc", w.dtls_state.as_str()),
                TransportKind::Plain(p) => (
                    "plain",
                    if p.remote.is_some() {
                        "connected"
                    } else {
                        "new"
                    },
                ),
            };
            match m
                .transports
                .iter_mut()
                .find(|c| c.kind == kind && c.state == state)
            {
                Some(c) => c.count += 1,
                None => m.transports.push(TransportCount {
                    kind,
                    state,
                    count: 1,
                }),
            }
        }
        for (_, p) in &self.producers {
            m.producers[usize::from(p.kind == MediaKind::Video)] += 1;
        }
        for (_, c) in &self.consumers {
            m.consumers[usize::from(c.kind == MediaKind::Video)] += 1;
            m.traffic.consumers.add(&c.counters);
        }
        m
    }

    /// The next event for observers.
    pub fn poll_event(&mut self) -> Option<EngineEvent> {
        self.events.pop_front()
    }

    /// When [`Engine::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.transports.is_empty() {
            None
        } else {
            self.next_tick
        }
    }

    /// Sets the shared listening endpoints (the worker does, once its sockets are bound).
    pub fn set_listen_info(&mut self, listen: ListenInfo) {
        self.listen = listen;
    }

    /// The shared listening endpoints.
    pub fn listen_info(&self) -> &ListenInfo {
        &self.listen
    }

    // ---------------------------------------------------------------- routers

    /// Creates a router with capabilities generated from `media_codecs`.
    pub fn create_router(
        &mut self,
        media_codecs: &[RtpCodecCapability],
        _now: Instant,
    ) -> Result<Uuid, EngineError> {
        let caps = ortc::generate_router_rtp_capabilities(media_codecs)
            .map_err(|e| EngineError::Ortc(e.to_string()))?;
        let id = self.new_id();
        let key = self.routers.insert(Router {
            id,
            rtp_capabilities: caps,
            transports: Vec::new(),
            producers: Vec::new(),
        });
        self.router_ids.insert(id, key);
        Ok(id)
    }

    /// The router's RTP capabilities.
    pub fn router_rtp_capabilities(&self, router: &Uuid) -> Result<&RtpCapabilities, EngineError> {
        let key = self.router_key(router)?;
        Ok(&self.routers[key].rtp_capabilities)
    }

    /// Whether `rtp_capabilities` can consume the producer (invalid capabilities are an error,
    /// as in [`Engine::consume`]).
    pub fn can_consume(
        &self,
        producer: &Uuid,
        rtp_capabilities: &RtpCapabilities,
    ) -> Result<bool, EngineError> {
        let p = &self.producers[self.producer_key(producer)?];
        let mut caps = rtp_capabilities.clone();
        ortc::normalize_rtp_capabilities(&mut caps)
            .map_err(|e| EngineError::Invalid(format!("rtpCapabilities: {e}")))?;
        ortc::can_consume(&p.consumable, &caps).map_err(|e| EngineError::Ortc(e.to_string()))
    }

    /// Closes a router and everything in it.
    pub fn close_router(&mut self, router: &Uuid, now: Instant) -> Result<(), EngineError> {
        let key = self.router_key(router)?;
        let transports = self.routers[key].transports.clone();
        for t in transports {
            let id = self.transports[t].id;
            let _ = self.close_transport(&id, now);
        }
        // Direct data producers belong to no transport: close them with their router.
        let direct: Vec<Uuid> = self
            .data_producers
            .iter()
            .filter(|(_, p)| p.router == key)
            .map(|(_, p)| p.id)
            .collect();
        for id in direct {
            let _ = self.close_data_producer(&id, now);
        }

        self.observers_router_closed(key);
        self.routers.remove(key);
        self.router_ids.remove(router);
        Ok(())
    }

    /// Ids of the routers on this worker.
    pub fn router_count(&self) -> usize {
        self.routers.len()
    }

    pub(super) fn router_key(&self, id: &Uuid) -> Result<usize, EngineError> {
        self.router_ids
            .get(id)
            .copied()
            .ok_or_else(|| not_found("router", id))
    }
    pub(super) fn transport_key(&self, id: &Uuid) -> Result<usize, EngineError> {
        self.transport_ids
            .get(id)
            .copied()
            .ok_or_else(|| not_found("transport", id))
    }
    pub(super) fn producer_key(&self, id: &Uuid) -> Result<usize, EngineError> {
        self.producer_ids
            .get(id)
            .copied()
            .ok_or_else(|| not_found("producer", id))
    }
    pub(super) fn consumer_key(&self, id: &Uuid) -> Result<usize, EngineError> {
        self.consumer_ids
            .get(id)
            .copied()
            .ok_or_else(|| not_found("consumer", id))
    }
}

mod bwe_tick;
pub mod clock;
mod data_channels;
mod debug;
mod demux;
mod dtls;
mod feedback;
mod media;
mod offerer;
mod quality;
mod stats;
mod transports;
mod util;

pub use clock::{EngineRng, RngSeed, WallClock};
pub use debug::TableSizes;
pub use util::{base64_decode, base64_encode};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_layers;
