//! The engine: everything one worker owns (routers, transports, producers, consumers) and the packet
//! path through them. It is sans-IO: the worker's I/O loop feeds it datagrams and time, and drains the
//! packets it queued in [`Engine::tx`] and the events it queued with [`Engine::poll_event`].

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use slab::Slab;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::consumer::{Consumer, ConsumerCounters, ForwardOutcome};
use crate::data::{DataConsumer, DataCounters, DataMessage, DataProducer, StreamIdAllocator};
use crate::dtls::{DtlsCertificate, DtlsEvent, DtlsOutput, DtlsRole, DtlsSession, Fingerprint};
use crate::ice::{IceEvent, IceServer, IceState};
use crate::io::{Route, SocketId, TxQueue, PACKET_BUF_SIZE};
use crate::ortc;
use crate::producer::{is_rtx, Producer};
use crate::router::Router;
use crate::rtcp::{self, RtcpPacket};
use crate::rtp::{self, RtpHeader};
use crate::rtp_parameters::SctpStreamParameters;
use crate::rtp_parameters::{MediaKind, RtpCapabilities, RtpCodecCapability, RtpParameters};
use crate::sctp::{Ppid, Reliability, SctpAssociation, SctpConfig, SctpEvent, SctpState};
use crate::srtp::{self, SrtpContext, SrtpProfile};
use crate::stun::StunMessage;
use crate::transport::{
    route_for, tuple_json, DtlsState, PlainState, Transport, TransportCounters, TransportKind,
    WebRtcState,
};
use crate::tuple::TransportTuple;

mod quality;

/// Interval of the engine's fine timer (NACK generation).
const TICK: Duration = Duration::from_millis(20);
/// Interval of RTCP reports, consent checks and layer selection.
const REPORT_INTERVAL: Duration = Duration::from_millis(1000);
/// A simulcast layer counts as active if a packet arrived this recently.
const LAYER_ACTIVE_WINDOW: Duration = Duration::from_millis(1500);

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

fn not_found(kind: &'static str, id: &Uuid) -> EngineError {
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
        scores: Vec<crate::score::ProducerScore>,
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
    /// A simulcast consumer's forwarded layer changed.
    ConsumerLayersChange {
        /// Consumer id.
        consumer: Uuid,
        /// Spatial layer now forwarded, None when none.
        spatial_layer: Option<usize>,
    },
}

/// Drop counters of the worker's shared ports, per reason.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct DropCounters {
    /// Datagrams whose first byte matches no protocol (RFC 7983).
    pub unknown_protocol: u64,
    /// STUN that failed to parse.
    pub bad_stun: u64,
    /// STUN whose USERNAME names no transport.
    pub unknown_ufrag: u64,
    /// STUN rejected by a transport's ICE (integrity, role, attributes).
    pub ice_rejected: u64,
    /// DTLS/RTP/RTCP from a tuple no transport owns.
    pub unknown_tuple: u64,
    /// RTP/RTCP that failed to parse after decryption.
    pub bad_rtp: u64,
    /// SRTP/SRTCP failing authentication or replay checks.
    pub srtp: u64,
    /// RTP for an SSRC no producer has.
    pub unknown_ssrc: u64,
    /// Packets on a plain transport from an address other than its remote.
    pub plain_wrong_source: u64,
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
    /// Opaque user data.
    pub app_data: Value,
}

impl Default for WebRtcTransportOptions {
    fn default() -> Self {
        Self {
            enable_udp: true,
            enable_tcp: true,
            prefer_udp: true,
            ice_consent_timeout: Duration::from_secs(30),
            sctp: None,
            app_data: Value::Null,
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
    /// Opaque user data.
    pub app_data: Value,
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
    /// Opaque user data.
    pub app_data: Value,
}

/// The engine of one worker.
pub struct Engine {
    /// Worker index (also encoded in ICE usernames).
    pub worker_index: usize,
    /// Packets queued for the I/O layer; the worker flushes it after every step.
    pub tx: TxQueue,
    /// Shared-port drop counters.
    pub drops: DropCounters,
    listen: ListenInfo,
    cert: DtlsCertificate,
    dtls_events: mpsc::UnboundedSender<DtlsEvent>,
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
    next_mid: HashMap<usize, u32>,
    events: VecDeque<EngineEvent>,
    observers: crate::observer::registry::RtpObservers,
    next_tick: Option<Instant>,
    next_report: Option<Instant>,
    nack_scratch: Vec<u16>,
    stun_scratch: Box<[u8]>,
    released_sockets: Vec<SocketId>,
}

impl Engine {
    /// A new engine for worker `worker_index`. DTLS sessions report on `dtls_events`.
    pub fn new(
        worker_index: usize,
        listen: ListenInfo,
        cert: DtlsCertificate,
        dtls_events: mpsc::UnboundedSender<DtlsEvent>,
    ) -> Self {
        Self {
            worker_index,
            tx: TxQueue::new(),
            drops: DropCounters::default(),
            listen,
            cert,
            dtls_events,
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
            next_mid: HashMap::new(),
            events: VecDeque::new(),
            observers: crate::observer::registry::RtpObservers::new(),
            next_tick: None,
            next_report: None,
            nack_scratch: Vec::with_capacity(64),
            stun_scratch: vec![0u8; PACKET_BUF_SIZE].into_boxed_slice(),
            released_sockets: Vec::new(),
        }
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
            Some(self.next_tick.unwrap_or_else(Instant::now))
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
        app_data: Value,
    ) -> Result<Uuid, EngineError> {
        let caps = ortc::generate_router_rtp_capabilities(media_codecs)
            .map_err(|e| EngineError::Ortc(e.to_string()))?;
        let id = Uuid::new_v4();
        let key = self.routers.insert(Router {
            id,
            rtp_capabilities: caps,
            transports: Vec::new(),
            producers: Vec::new(),
            app_data,
        });
        self.router_ids.insert(id, key);
        Ok(id)
    }

    /// The router's RTP capabilities.
    pub fn router_rtp_capabilities(&self, router: &Uuid) -> Result<&RtpCapabilities, EngineError> {
        let key = self.router_key(router)?;
        Ok(&self.routers[key].rtp_capabilities)
    }

    /// Whether `rtp_capabilities` can consume the producer.
    pub fn can_consume(
        &self,
        producer: &Uuid,
        rtp_capabilities: &RtpCapabilities,
    ) -> Result<bool, EngineError> {
        let p = &self.producers[self.producer_key(producer)?];
        ortc::can_consume(&p.consumable, rtp_capabilities)
            .map_err(|e| EngineError::Ortc(e.to_string()))
    }

    /// Closes a router and everything in it.
    pub fn close_router(&mut self, router: &Uuid) -> Result<(), EngineError> {
        let key = self.router_key(router)?;
        let transports = self.routers[key].transports.clone();
        for t in transports {
            let id = self.transports[t].id;
            let _ = self.close_transport(&id);
        }
        // Direct data producers belong to no transport: close them with their router.
        let direct: Vec<Uuid> = self
            .data_producers
            .iter()
            .filter(|(_, p)| p.router == key)
            .map(|(_, p)| p.id)
            .collect();
        for id in direct {
            let _ = self.close_data_producer(&id);
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

    fn router_key(&self, id: &Uuid) -> Result<usize, EngineError> {
        self.router_ids
            .get(id)
            .copied()
            .ok_or_else(|| not_found("router", id))
    }
    fn transport_key(&self, id: &Uuid) -> Result<usize, EngineError> {
        self.transport_ids
            .get(id)
            .copied()
            .ok_or_else(|| not_found("transport", id))
    }
    fn producer_key(&self, id: &Uuid) -> Result<usize, EngineError> {
        self.producer_ids
            .get(id)
            .copied()
            .ok_or_else(|| not_found("producer", id))
    }
    fn consumer_key(&self, id: &Uuid) -> Result<usize, EngineError> {
        self.consumer_ids
            .get(id)
            .copied()
            .ok_or_else(|| not_found("consumer", id))
    }

    fn new_transport(&mut self, router_key: usize, kind: TransportKind, app_data: Value) -> usize {
        let id = Uuid::new_v4();
        let key = self.transports.insert(Transport {
            id,
            router: router_key,
            kind,
            srtp_in: None,
            srtp_out: None,
            route: None,
            rtcp_route: None,
            producers: Vec::new(),
            consumers: Vec::new(),
            data_producers: Vec::new(),
            data_consumers: Vec::new(),
            sctp_in_streams: HashMap::new(),
            ssrc_table: HashMap::new(),
            mid_table: HashMap::new(),
            ext_mid: 0,
            ext_rid: 0,
            ext_rrid: 0,
            counters: TransportCounters::default(),
            app_data,
            created: Instant::now(),
            rtcp_ssrc: rand::random::<u32>() | 1,
        });
        self.transport_ids.insert(id, key);
        self.routers[router_key].transports.push(key);
        if self.next_tick.is_none() {
            self.next_tick = Some(Instant::now());
        }
        key
    }

    // ---------------------------------------------------------------- WebRtcTransport

    /// Creates a WebRtcTransport on the worker's shared ports; returns its JSON data (mediasoup's
    /// shape: id, iceParameters, iceCandidates, dtlsParameters, sctpParameters).
    pub fn create_webrtc_transport(
        &mut self,
        router: &Uuid,
        opts: WebRtcTransportOptions,
    ) -> Result<Value, EngineError> {
        let router_key = self.router_key(router)?;
        if !opts.enable_udp && !opts.enable_tcp {
            return Err(EngineError::Invalid(
                "enableUdp and enableTcp are both false".into(),
            ));
        }
        // The ufrag carries the worker index so any worker can tell who owns a first STUN request.
        let ufrag = format!(
            "w{}{}",
            self.worker_index,
            &crate::ice::random_ufrag()[..30]
        );
        let pwd = crate::ice::random_password();
        let state = WebRtcState {
            ice: IceServer::new(ufrag.clone(), pwd, opts.ice_consent_timeout),
            dtls_role: None,
            remote_fingerprint: None,
            dtls: None,
            dtls_state: DtlsState::New,
            early_dtls: Vec::new(),
            enable_sctp: opts.sctp.is_some(),
            sctp_streams: opts.sctp,
            sctp: None,
            sctp_out_streams: opts.sctp.map(|(_, mis)| StreamIdAllocator::new(mis)),
        };
        let key = self.new_transport(
            router_key,
            TransportKind::WebRtc(Box::new(state)),
            opts.app_data.clone(),
        );
        self.ufrags.insert(ufrag, key);
        self.webrtc_transport_data(key, &opts)
    }

    fn candidates(&self, opts: &WebRtcTransportOptions) -> Vec<Value> {
        let mut out = Vec::new();
        let announce = |addr: SocketAddr| {
            self.listen
                .announced_address
                .clone()
                .unwrap_or_else(|| addr.ip().to_string())
        };
        let udp_first = opts.prefer_udp || !opts.enable_tcp;
        let mut push = |proto: &str, addr: SocketAddr, index: u32| {
            let local_pref = 10000 - 100 * index;
            let priority: u32 = (1 << 24) * 64 + (1 << 8) * local_pref + (256 - 1);
            let ip = announce(addr);
            let mut c = json!({
                "foundation": format!("{proto}candidate"), "priority": priority,
                "ip": ip, "address": ip, "protocol": proto, "port": addr.port(), "type": "host",
            });
            if proto == "tcp" {
                c["tcpType"] = json!("passive");
            }
            out.push(c);
        };
        let udp = self.listen.udp.filter(|_| opts.enable_udp).map(|u| u.1);
        let tcp = self.listen.tcp.filter(|_| opts.enable_tcp);
        match (udp_first, udp, tcp) {
            (true, Some(u), Some(t)) => {
                push("udp", u, 0);
                push("tcp", t, 1);
            }
            (false, Some(u), Some(t)) => {
                push("tcp", t, 0);
                push("udp", u, 1);
            }
            (_, Some(u), None) => push("udp", u, 0),
            (_, None, Some(t)) => push("tcp", t, 0),
            (_, None, None) => {}
        }
        out
    }

    fn webrtc_transport_data(
        &self,
        key: usize,
        opts: &WebRtcTransportOptions,
    ) -> Result<Value, EngineError> {
        let t = &self.transports[key];
        let w = t
            .webrtc()
            .ok_or_else(|| EngineError::State("not webrtc".into()))?;
        let mut data = json!({
            "id": t.id.to_string(),
            "iceParameters": {
                "usernameFragment": w.ice.local_ufrag(),
                "password": w.ice.local_password(),
                "iceLite": true,
            },
            "iceCandidates": self.candidates(opts),
            "dtlsParameters": { "role": "auto", "fingerprints": self.cert.fingerprints() },
            "iceRole": "controlled",
            "iceState": "new",
            "dtlsState": "new",
        });
        if let Some((os, mis)) = w.sctp_streams {
            data["sctpParameters"] = json!({
                "port": 5000, "OS": os, "MIS": mis, "maxMessageSize": 262144,
                "sendBufferSize": 262144, "sctpBufferedAmount": 0, "isDataChannel": true,
            });
        }
        Ok(data)
    }

    /// Applies the remote `dtlsParameters` (`{role, fingerprints}`): decides our DTLS role and starts
    /// the handshake once ICE has a path.
    pub fn connect_webrtc_transport(
        &mut self,
        transport: &Uuid,
        dtls_parameters: &Value,
    ) -> Result<(), EngineError> {
        let key = self.transport_key(transport)?;
        let fps = dtls_parameters
            .get("fingerprints")
            .and_then(Value::as_array)
            .ok_or_else(|| EngineError::Invalid("dtlsParameters.fingerprints missing".into()))?;
        let first = fps
            .first()
            .ok_or_else(|| EngineError::Invalid("dtlsParameters.fingerprints is empty".into()))?;
        let fp: Fingerprint = serde_json::from_value(first.clone())
            .map_err(|e| EngineError::Invalid(format!("dtlsParameters.fingerprints[0]: {e}")))?;
        if crate::dtls::fingerprint_of(b"", &fp.algorithm.to_ascii_lowercase()).is_none() {
            return Err(EngineError::Invalid(format!(
                "dtlsParameters.fingerprints[0].algorithm unsupported: {}",
                fp.algorithm
            )));
        }
        let role = match dtls_parameters.get("role").and_then(Value::as_str) {
            Some("client") | None => DtlsRole::Server,
            Some("server") | Some("auto") => DtlsRole::Client,
            Some(other) => {
                return Err(EngineError::Invalid(format!(
                    "dtlsParameters.role invalid: {other}"
                )))
            }
        };
        let t = &mut self.transports[key];
        let w = t
            .webrtc_mut()
            .ok_or_else(|| EngineError::Invalid("not a WebRtcTransport".into()))?;
        if w.remote_fingerprint.is_some() {
            return Err(EngineError::State("connect() already called".into()));
        }
        w.remote_fingerprint = Some(fp);
        w.dtls_role = Some(role);
        self.maybe_start_dtls(key);
        Ok(())
    }

    fn maybe_start_dtls(&mut self, key: usize) {
        let t = &mut self.transports[key];
        let has_path = t.route.is_some();
        let Some(w) = t.webrtc_mut() else { return };
        if w.dtls.is_some() {
            return;
        }
        let (Some(role), Some(fp)) = (w.dtls_role, w.remote_fingerprint.clone()) else {
            return;
        };
        // As server we may wait for the ClientHello at once; as client we need a path to send on.
        if role == DtlsRole::Client && !has_path {
            return;
        }
        let session =
            DtlsSession::start(role, &self.cert, fp, key as u64, self.dtls_events.clone());
        for d in w.early_dtls.drain(..) {
            session.handle_input(&d);
        }
        w.dtls = Some(session);
        w.dtls_state = DtlsState::Connecting;
        let id = t.id;
        self.events.push_back(EngineEvent::DtlsStateChange {
            transport: id,
            state: DtlsState::Connecting,
            reason: None,
        });
    }

    /// New ICE credentials (ICE restart); the old ones stay valid until the new ones are used.
    pub fn restart_ice(&mut self, transport: &Uuid) -> Result<Value, EngineError> {
        let key = self.transport_key(transport)?;
        let ufrag = format!(
            "w{}{}",
            self.worker_index,
            &crate::ice::random_ufrag()[..30]
        );
        let pwd = crate::ice::random_password();
        let w = self.transports[key]
            .webrtc_mut()
            .ok_or_else(|| EngineError::Invalid("not a WebRtcTransport".into()))?;
        w.ice.restart(ufrag.clone(), pwd.clone());
        self.ufrags.insert(ufrag.clone(), key);
        Ok(json!({ "usernameFragment": ufrag, "password": pwd, "iceLite": true }))
    }

    /// Handles what a DTLS session reported.
    pub fn handle_dtls_event(&mut self, (key, out): DtlsEvent) {
        let key = key as usize;
        let Some(t) = self.transports.get_mut(key) else {
            return;
        };
        let id = t.id;
        match out {
            DtlsOutput::Transmit(data) => {
                if let Some(route) = t.route {
                    self.tx.push(&data, route);
                }
            }
            DtlsOutput::Connected {
                profile,
                material,
                we_are_client,
            } => match srtp::contexts_from_dtls(profile, &material, we_are_client) {
                Ok((outbound, inbound)) => {
                    t.srtp_out = Some(outbound);
                    t.srtp_in = Some(inbound);
                    if let Some(w) = t.webrtc_mut() {
                        w.dtls_state = DtlsState::Connected;
                    }
                    self.events.push_back(EngineEvent::DtlsStateChange {
                        transport: id,
                        state: DtlsState::Connected,
                        reason: None,
                    });
                    self.start_sctp(key, we_are_client);
                    // Receivers are ready now: ask for keyframes for their video.
                    let consumers = self.transports[key].consumers.clone();
                    for c in consumers {
                        self.consumer_wants_keyframe(c, Instant::now());
                    }
                }
                Err(e) => self.dtls_failed(key, format!("SRTP keys: {e}")),
            },
            DtlsOutput::Failed(reason) => self.dtls_failed(key, reason),
            DtlsOutput::Closed => {
                if let Some(w) = t.webrtc_mut() {
                    w.dtls_state = DtlsState::Closed;
                    w.dtls = None;
                }
                t.srtp_out = None;
                self.events.push_back(EngineEvent::DtlsStateChange {
                    transport: id,
                    state: DtlsState::Closed,
                    reason: None,
                });
            }
            DtlsOutput::ApplicationData(data) => {
                let now = Instant::now();
                if let Some(sctp) = t.webrtc_mut().and_then(|w| w.sctp.as_mut()) {
                    sctp.handle_input(now, &data);
                    self.process_sctp(key, now);
                }
            }
        }
    }

    fn dtls_failed(&mut self, key: usize, reason: String) {
        let t = &mut self.transports[key];
        log::warn!("transport {}: DTLS failed: {reason}", t.id);
        if let Some(w) = t.webrtc_mut() {
            w.dtls_state = DtlsState::Failed;
            w.dtls = None;
        }
        t.srtp_out = None;
        t.srtp_in = None;
        let id = t.id;
        self.events.push_back(EngineEvent::DtlsStateChange {
            transport: id,
            state: DtlsState::Failed,
            reason: Some(reason),
        });
    }

    // ---------------------------------------------------------------- PlainTransport

    /// Creates a PlainTransport on an already bound socket (the worker binds it from the port range).
    #[allow(clippy::too_many_arguments)]
    pub fn create_plain_transport(
        &mut self,
        router: &Uuid,
        socket: (SocketId, SocketAddr),
        rtcp_socket: Option<(SocketId, SocketAddr)>,
        comedia: bool,
        enable_srtp: bool,
        srtp_crypto_suite: Option<&str>,
        app_data: Value,
    ) -> Result<Value, EngineError> {
        let router_key = self.router_key(router)?;
        let mut local_srtp = None;
        let mut srtp_out = None;
        if enable_srtp {
            let suite = srtp_crypto_suite.unwrap_or("AES_CM_128_HMAC_SHA1_80");
            let profile = SrtpProfile::from_name(suite).ok_or_else(|| {
                EngineError::Invalid(format!("srtpCryptoSuite unsupported: {suite}"))
            })?;
            let mut key = vec![0u8; profile.master_key_len() + profile.master_salt_len()];
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut key);
            let ctx = SrtpContext::new(
                profile,
                &key[..profile.master_key_len()],
                &key[profile.master_key_len()..],
            )
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
            srtp_out = Some(ctx);
            local_srtp = Some((profile.name().to_string(), base64_encode(&key)));
        }
        let state = PlainState {
            socket: socket.0,
            local: socket.1,
            rtcp_socket,
            comedia,
            remote: None,
            remote_rtcp: None,
            enable_srtp,
            local_srtp,
        };
        let key = self.new_transport(router_key, TransportKind::Plain(Box::new(state)), app_data);
        self.transports[key].srtp_out = srtp_out;
        self.plain_sockets.insert(socket.0, key);
        if let Some((rs, _)) = rtcp_socket {
            self.plain_sockets.insert(rs, key);
        }
        Ok(self.plain_transport_data(key))
    }

    fn plain_transport_data(&self, key: usize) -> Value {
        let t = &self.transports[key];
        let TransportKind::Plain(p) = &t.kind else {
            return Value::Null;
        };
        let local_ip = self
            .listen
            .announced_address
            .clone()
            .unwrap_or_else(|| p.local.ip().to_string());
        let tuple = |local: SocketAddr, remote: Option<SocketAddr>| {
            let mut v = json!({"localAddress": local_ip, "localIp": local_ip,
                "localPort": local.port(), "protocol": "udp"});
            if let Some(r) = remote {
                v["remoteIp"] = json!(r.ip().to_string());
                v["remotePort"] = json!(r.port());
            }
            v
        };
        let mut data = json!({ "id": t.id.to_string(), "tuple": tuple(p.local, p.remote) });
        if let Some((_, a)) = p.rtcp_socket {
            data["rtcpTuple"] = tuple(a, p.remote_rtcp);
        }
        if let Some((suite, key)) = &p.local_srtp {
            data["srtpParameters"] = json!({"cryptoSuite": suite, "keyBase64": key});
        }
        data
    }

    /// `connect({ip, port, rtcpPort, srtpParameters})` of a PlainTransport.
    pub fn connect_plain_transport(
        &mut self,
        transport: &Uuid,
        params: &Value,
    ) -> Result<Value, EngineError> {
        let key = self.transport_key(transport)?;
        let t = &mut self.transports[key];
        let TransportKind::Plain(p) = &mut t.kind else {
            return Err(EngineError::Invalid("not a PlainTransport".into()));
        };
        if let Some(sp) = params.get("srtpParameters").filter(|v| !v.is_null()) {
            if !p.enable_srtp {
                return Err(EngineError::Invalid(
                    "srtpParameters given but SRTP is not enabled".into(),
                ));
            }
            let suite = sp
                .get("cryptoSuite")
                .and_then(Value::as_str)
                .ok_or_else(|| EngineError::Invalid("srtpParameters.cryptoSuite missing".into()))?;
            let key_b64 = sp
                .get("keyBase64")
                .and_then(Value::as_str)
                .ok_or_else(|| EngineError::Invalid("srtpParameters.keyBase64 missing".into()))?;
            let profile = SrtpProfile::from_name(suite).ok_or_else(|| {
                EngineError::Invalid(format!("srtpParameters.cryptoSuite unsupported: {suite}"))
            })?;
            let raw = base64_decode(key_b64)
                .ok_or_else(|| EngineError::Invalid("srtpParameters.keyBase64 invalid".into()))?;
            if raw.len() != profile.master_key_len() + profile.master_salt_len() {
                return Err(EngineError::Invalid(format!(
                    "srtpParameters.keyBase64 has {} bytes, {suite} needs {}",
                    raw.len(),
                    profile.master_key_len() + profile.master_salt_len()
                )));
            }
            let ctx = SrtpContext::new(
                profile,
                &raw[..profile.master_key_len()],
                &raw[profile.master_key_len()..],
            )
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
            t.srtp_in = Some(ctx);
        } else if p.enable_srtp {
            return Err(EngineError::Invalid(
                "srtpParameters required: SRTP is enabled".into(),
            ));
        }
        if !p.comedia {
            let ip: IpAddr = params
                .get("ip")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| EngineError::Invalid("ip missing or invalid".into()))?;
            let port = params
                .get("port")
                .and_then(Value::as_u64)
                .filter(|p| (1..=65535).contains(p))
                .ok_or_else(|| EngineError::Invalid("port missing or invalid".into()))?
                as u16;
            let remote = SocketAddr::new(ip, port);
            p.remote = Some(remote);
            t.route = Some(Route::Udp {
                socket: p.socket,
                dest: remote,
            });
            match p.rtcp_socket {
                Some((rs, _)) => {
                    let rport = params
                        .get("rtcpPort")
                        .and_then(Value::as_u64)
                        .filter(|p| (1..=65535).contains(p))
                        .ok_or_else(|| {
                            EngineError::Invalid("rtcpPort required without rtcpMux".into())
                        })? as u16;
                    let r = SocketAddr::new(ip, rport);
                    p.remote_rtcp = Some(r);
                    t.rtcp_route = Some(Route::Udp {
                        socket: rs,
                        dest: r,
                    });
                }
                None => t.rtcp_route = t.route,
            }
        }
        Ok(self.plain_transport_data(key))
    }

    // ---------------------------------------------------------------- closing

    /// Closes a transport with its producers (their consumers close too) and consumers.
    pub fn close_transport(&mut self, transport: &Uuid) -> Result<(), EngineError> {
        let key = self.transport_key(transport)?;
        let producers = self.transports[key].producers.clone();
        for p in producers {
            let pid = self.producers[p].id;
            self.events
                .push_back(EngineEvent::ProducerTransportClosed { producer: pid });
            let _ = self.close_producer(&pid);
        }
        let consumers = self.transports[key].consumers.clone();
        for c in consumers {
            let cid = self.consumers[c].id;
            self.events
                .push_back(EngineEvent::ConsumerTransportClosed { consumer: cid });
            let _ = self.close_consumer(&cid);
        }
        let data_producers = self.transports[key].data_producers.clone();
        for d in data_producers {
            let id = self.data_producers[d].id;
            self.events
                .push_back(EngineEvent::DataProducerTransportClosed { data_producer: id });
            let _ = self.close_data_producer(&id);
        }
        let data_consumers = self.transports[key].data_consumers.clone();
        for d in data_consumers {
            let id = self.data_consumers[d].id;
            self.events
                .push_back(EngineEvent::DataConsumerTransportClosed { data_consumer: id });
            let _ = self.close_data_consumer(&id);
        }
        let t = self.transports.remove(key);
        self.transport_ids.remove(transport);
        self.ufrags.retain(|_, v| *v != key);
        self.udp_paths.retain(|_, v| *v != key);
        self.tcp_paths.retain(|_, v| *v != key);
        let released = &mut self.released_sockets;
        self.plain_sockets.retain(|s, v| {
            if *v == key {
                released.push(*s);
            }
            *v != key
        });
        self.next_mid.remove(&key);
        if let Some(r) = self.routers.get_mut(t.router) {
            r.transports.retain(|k| *k != key);
        }
        self.events
            .push_back(EngineEvent::TransportClosed { transport: t.id });
        Ok(())
    }

    /// Sockets of closed plain transports, for the worker to close.
    pub fn take_released_sockets(&mut self) -> Vec<SocketId> {
        std::mem::take(&mut self.released_sockets)
    }

    // ---------------------------------------------------------------- produce / consume

    /// Creates a producer on a transport; returns `{id, kind, type, rtpParameters}`-style JSON.
    pub fn produce(
        &mut self,
        transport: &Uuid,
        opts: ProduceOptions,
    ) -> Result<Value, EngineError> {
        let tkey = self.transport_key(transport)?;
        let rkey = self.transports[tkey].router;
        let caps = &self.routers[rkey].rtp_capabilities;
        let mut rtp_parameters = opts.rtp_parameters.clone();
        ortc::normalize_rtp_parameters(&mut rtp_parameters)
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        ortc::validate_producer_rtp_parameters(opts.kind, &rtp_parameters)
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
        let mapping = ortc::get_producer_rtp_parameters_mapping(&mut rtp_parameters, caps)
            .map_err(|e| EngineError::Ortc(e.to_string()))?;
        let consumable =
            ortc::get_consumable_rtp_parameters(opts.kind, &rtp_parameters, caps, &mapping)
                .map_err(|e| EngineError::Ortc(e.to_string()))?;
        let mapped_ssrcs: Vec<u32> = mapping.encodings.iter().map(|e| e.mapped_ssrc).collect();
        let id = Uuid::new_v4();
        let producer = Producer::new(
            id,
            opts.kind,
            tkey,
            rkey,
            rtp_parameters.clone(),
            consumable,
            &mapped_ssrcs,
            opts.paused,
            opts.app_data,
        );
        let ptype = producer.producer_type;
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
                "urn:ietf:params:rtp-hdrext:sdes:mid" => t.ext_mid = h.id,
                "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id" => t.ext_rid = h.id,
                "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id" => t.ext_rrid = h.id,
                _ => {}
            }
        }
        Ok(json!({ "id": id.to_string(), "kind": opts.kind, "type": ptype }))
    }

    /// Creates a consumer of `opts.producer_id` on a transport; returns mediasoup's consumer data
    /// `{id, producerId, kind, rtpParameters, type, producerPaused, paused}`.
    pub fn consume(
        &mut self,
        transport: &Uuid,
        opts: ConsumeOptions,
    ) -> Result<Value, EngineError> {
        let tkey = self.transport_key(transport)?;
        let pkey = self.producer_key(&opts.producer_id)?;
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
        )
        .map_err(|e| EngineError::Ortc(e.to_string()))?;
        let mid_counter = self.next_mid.entry(tkey).or_insert(0);
        let mid = mid_counter.to_string();
        *mid_counter += 1;
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
            .find(|c| is_rtx(&c.mime_type))
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
        for h in &params.header_extensions {
            if h.uri == "urn:ietf:params:rtp-hdrext:sdes:mid" {
                mid_ext = Some(h.id);
            }
        }
        for pe in &p.rtp_parameters.header_extensions {
            let rid = p.ext_map[pe.id as usize];
            if rid == 0 || pe.uri == "urn:ietf:params:rtp-hdrext:sdes:mid" {
                continue;
            }
            if pe.uri.contains("rtp-stream-id") {
                continue; // rid/rrid describe the producer's layers, not the consumer's stream
            }
            if params.header_extensions.iter().any(|h| h.id == rid) {
                ext_map[pe.id as usize] = rid;
            }
        }
        let kind = p.kind;
        let clock_rate = params.codecs.first().map(|c| c.clock_rate).unwrap_or(90000);
        let consumer_type = match p.producer_type {
            "simulcast" => "simulcast",
            "svc" => "svc",
            _ => "simple",
        };
        let target_layer = p.streams.len().saturating_sub(1);
        let producer_paused = p.paused;
        let producer_id = p.id;
        let id = Uuid::new_v4();
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
            sync_required: true,
            seq_offset: 0,
            ts_offset: 0,
            last_seq: 0,
            last_ts: 0,
            last_sent: None,
            started: false,
            rtx_seq: rand::random(),
            clock_rate,
            priority: 1,
            counters: ConsumerCounters::default(),
            last_rr: None,
            app_data: opts.app_data,
            score: crate::score::SendScore::new(),
        };
        let ckey = self.consumers.insert(consumer);
        self.consumer_ids.insert(id, ckey);
        self.producers[pkey].consumers.push(ckey);
        self.transports[tkey].consumers.push(ckey);
        if !opts.paused {
            self.consumer_wants_keyframe(ckey, Instant::now());
        }
        Ok(json!({
            "id": id.to_string(), "producerId": producer_id.to_string(), "kind": kind,
            "rtpParameters": params, "type": consumer_type,
            "producerPaused": producer_paused, "paused": opts.paused,
        }))
    }

    /// Closes a producer and, with an event each, its consumers.
    pub fn close_producer(&mut self, producer: &Uuid) -> Result<(), EngineError> {
        let pkey = self.producer_key(producer)?;
        let consumers = self.producers[pkey].consumers.clone();
        for c in consumers {
            let cid = self.consumers[c].id;
            self.events.push_back(EngineEvent::ConsumerProducerClosed {
                consumer: cid,
                producer: *producer,
            });
            let _ = self.close_consumer(&cid);
        }
        self.observers_producer_closed(pkey);
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
    pub fn close_consumer(&mut self, consumer: &Uuid) -> Result<(), EngineError> {
        let ckey = self.consumer_key(consumer)?;
        let c = self.consumers.remove(ckey);
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
    pub fn pause_producer(&mut self, producer: &Uuid) -> Result<(), EngineError> {
        self.set_producer_paused(producer, true)
    }

    /// Resumes a producer; its consumers resync and request a keyframe.
    pub fn resume_producer(&mut self, producer: &Uuid) -> Result<(), EngineError> {
        self.set_producer_paused(producer, false)
    }

    fn set_producer_paused(&mut self, producer: &Uuid, paused: bool) -> Result<(), EngineError> {
        let pkey = self.producer_key(producer)?;
        if self.producers[pkey].paused == paused {
            return Ok(());
        }
        self.producers[pkey].paused = paused;
        self.observers_producer_paused(pkey, paused);
        let consumers = self.producers[pkey].consumers.clone();
        let now = Instant::now();
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
    pub fn pause_consumer(&mut self, consumer: &Uuid) -> Result<(), EngineError> {
        let ckey = self.consumer_key(consumer)?;
        self.consumers[ckey].paused = true;
        Ok(())
    }

    /// Resumes a consumer: the next packet continues its sequence numbers, video from a keyframe.
    pub fn resume_consumer(&mut self, consumer: &Uuid) -> Result<(), EngineError> {
        let ckey = self.consumer_key(consumer)?;
        let c = &mut self.consumers[ckey];
        if c.paused {
            c.paused = false;
            c.request_sync();
            self.consumer_wants_keyframe(ckey, Instant::now());
        }
        Ok(())
    }

    /// Sets a simulcast consumer's preferred spatial layer.
    pub fn set_consumer_preferred_layers(
        &mut self,
        consumer: &Uuid,
        spatial_layer: usize,
    ) -> Result<(), EngineError> {
        let ckey = self.consumer_key(consumer)?;
        self.consumers[ckey].preferred_layer = Some(spatial_layer);
        self.select_layers(Instant::now());
        Ok(())
    }

    /// Sets a consumer's priority (1..=255).
    pub fn set_consumer_priority(
        &mut self,
        consumer: &Uuid,
        priority: u8,
    ) -> Result<(), EngineError> {
        let ckey = self.consumer_key(consumer)?;
        if priority == 0 {
            return Err(EngineError::Invalid("priority must be 1..=255".into()));
        }
        self.consumers[ckey].priority = priority;
        Ok(())
    }

    /// Asks the producer of a consumer for a keyframe.
    pub fn request_consumer_key_frame(&mut self, consumer: &Uuid) -> Result<(), EngineError> {
        let ckey = self.consumer_key(consumer)?;
        self.consumer_wants_keyframe(ckey, Instant::now());
        Ok(())
    }

    /// Asks a producer for a keyframe on every stream.
    pub fn request_producer_key_frame(&mut self, producer: &Uuid) -> Result<(), EngineError> {
        let pkey = self.producer_key(producer)?;
        let n = self.producers[pkey].streams.len();
        for i in 0..n {
            self.request_keyframe(pkey, i, Instant::now());
        }
        Ok(())
    }

    fn consumer_wants_keyframe(&mut self, ckey: usize, now: Instant) {
        let Some(c) = self.consumers.get(ckey) else {
            return;
        };
        if c.kind != MediaKind::Video {
            return;
        }
        let (p, layer) = (c.producer, c.current_layer.unwrap_or(c.target_layer));
        self.request_keyframe(p, layer, now);
    }

    fn request_keyframe(&mut self, pkey: usize, stream: usize, now: Instant) {
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

    /// Largest data-channel message accepted (config `maxSctpMessageSize`).
    pub fn set_max_message_size(&mut self, bytes: usize) {
        self.max_message_size = bytes;
    }

    fn start_sctp(&mut self, tkey: usize, we_are_dtls_client: bool) {
        let now = Instant::now();
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
    fn process_sctp(&mut self, tkey: usize, now: Instant) {
        loop {
            let Some(t) = self.transports.get_mut(tkey) else {
                return;
            };
            let id = t.id;
            let Some(w) = t.webrtc_mut() else { return };
            let (Some(sctp), Some(dtls)) = (w.sctp.as_mut(), w.dtls.as_ref()) else {
                return;
            };
            while let Some(pkt) = sctp.poll_transmit(now) {
                dtls.send_application_data(pkt);
            }
            let Some(ev) = sctp.poll_event() else { return };
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
                } => self.on_sctp_message(tkey, stream_id, ppid, data),
                SctpEvent::StreamClosed { stream_id } => {
                    if let Some(&dp) = self.transports[tkey].sctp_in_streams.get(&stream_id) {
                        let dp_id = self.data_producers[dp].id;
                        self.events
                            .push_back(EngineEvent::DataProducerClosedByPeer {
                                data_producer: dp_id,
                            });
                        let _ = self.close_data_producer(&dp_id);
                    }
                }
            }
        }
    }

    fn on_sctp_message(&mut self, tkey: usize, stream_id: u16, ppid: Ppid, data: Vec<u8>) {
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
                Value::Null,
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
        self.deliver_data(dp, DataMessage { ppid, data });
    }

    /// Fans a message from data producer `dp` out to its data consumers.
    fn deliver_data(&mut self, dp: usize, msg: DataMessage) {
        let p = &mut self.data_producers[dp];
        p.counters.messages += 1;
        p.counters.bytes += msg.data.len() as u64;
        if p.paused {
            return;
        }
        let now = Instant::now();
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

    fn sctp_timers(&mut self, now: Instant) {
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
    fn insert_data_producer(
        &mut self,
        router: usize,
        transport: Option<usize>,
        params: Option<SctpStreamParameters>,
        label: String,
        protocol: String,
        paused: bool,
        app_data: Value,
    ) -> Uuid {
        let id = Uuid::new_v4();
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
            app_data,
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
        app_data: Value,
    ) -> Result<Value, EngineError> {
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
            app_data,
        );
        Ok(self.data_producers[self.data_producer_ids[&id]].to_json())
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
        app_data: Value,
    ) -> Result<Value, EngineError> {
        let dp = self
            .data_producer_ids
            .get(data_producer)
            .copied()
            .ok_or_else(|| not_found("data producer", data_producer))?;
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
        let id = Uuid::new_v4();
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
            app_data,
        });
        self.data_consumer_ids.insert(id, key);
        self.data_producers[dp].consumers.push(key);
        if let Some(tk) = tkey {
            self.transports[tk].data_consumers.push(key);
        }
        Ok(self.data_consumers[key].to_json())
    }

    /// Sends a message from a direct data producer (server-side scripts).
    pub fn send_data(
        &mut self,
        data_producer: &Uuid,
        message: DataMessage,
    ) -> Result<(), EngineError> {
        let dp = self
            .data_producer_ids
            .get(data_producer)
            .copied()
            .ok_or_else(|| not_found("data producer", data_producer))?;
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
        self.deliver_data(dp, message);
        Ok(())
    }

    /// Closes a data producer; its data consumers close with an event each.
    pub fn close_data_producer(&mut self, data_producer: &Uuid) -> Result<(), EngineError> {
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
            let _ = self.close_data_consumer(&cid);
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
    pub fn close_data_consumer(&mut self, data_consumer: &Uuid) -> Result<(), EngineError> {
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
                self.process_sctp(tk, Instant::now());
            }
        }
        Ok(())
    }

    /// Pauses or resumes a data producer (its consumers are told through their paused flag).
    pub fn set_data_producer_paused(
        &mut self,
        data_producer: &Uuid,
        paused: bool,
    ) -> Result<(), EngineError> {
        let dp = self
            .data_producer_ids
            .get(data_producer)
            .copied()
            .ok_or_else(|| not_found("data producer", data_producer))?;
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
    ) -> Result<(), EngineError> {
        let ck = self
            .data_consumer_ids
            .get(data_consumer)
            .copied()
            .ok_or_else(|| not_found("data consumer", data_consumer))?;
        self.data_consumers[ck].paused = paused;
        Ok(())
    }

    /// Stats of a data producer.
    pub fn data_producer_stats(&self, data_producer: &Uuid) -> Result<Value, EngineError> {
        let dp = self
            .data_producer_ids
            .get(data_producer)
            .ok_or_else(|| not_found("data producer", data_producer))?;
        let p = &self.data_producers[*dp];
        Ok(json!([{
            "type": "data-producer", "timestamp": now_ms(), "label": p.label, "protocol": p.protocol,
            "messagesReceived": p.counters.messages, "bytesReceived": p.counters.bytes,
        }]))
    }

    /// Stats of a data consumer.
    pub fn data_consumer_stats(&self, data_consumer: &Uuid) -> Result<Value, EngineError> {
        let ck = self
            .data_consumer_ids
            .get(data_consumer)
            .ok_or_else(|| not_found("data consumer", data_consumer))?;
        let c = &self.data_consumers[*ck];
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
        let t = &self.transports[self.transport_key(transport)?];
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
        if let Some(w) = t.webrtc() {
            v["iceRole"] = json!("controlled");
            v["iceState"] = json!(ice_state_str(w.ice.state()));
            v["dtlsState"] = json!(w.dtls_state.as_str());
            if let Some(tuple) = w.ice.selected_tuple() {
                v["iceSelectedTuple"] =
                    tuple_json(&tuple, self.listen.announced_address.as_deref());
            }
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
                        "packetsRetransmitted": s.rtx_packets,
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
                v["iceState"] = json!(ice_state_str(w.ice.state()));
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
                if let Some(w) = self.transports[tkey].webrtc_mut() {
                    match &w.dtls {
                        Some(d) => d.handle_input(&buf[..len]),
                        None if w.early_dtls.len() < 8 => w.early_dtls.push(buf[..len].to_vec()),
                        None => {}
                    }
                }
            }
            128..=191 => {
                let Some(tkey) = self.path_owner(&src) else {
                    self.drops.unknown_tuple += 1;
                    return;
                };
                if rtcp::is_rtcp(&buf[..len]) {
                    self.handle_rtcp(tkey, buf, len, now);
                } else {
                    self.handle_rtp(tkey, buf, len, now);
                }
            }
            _ => self.drops.unknown_protocol += 1,
        }
    }

    fn path_owner(&self, src: &PacketSource) -> Option<usize> {
        match src.tcp_conn {
            Some(c) => self.tcp_paths.get(&c).copied(),
            None => self.udp_paths.get(&(src.socket, src.tuple.remote)).copied(),
        }
    }

    /// Forgets a closed TCP connection.
    pub fn tcp_connection_closed(&mut self, conn: u32) {
        self.tcp_paths.remove(&conn);
    }

    fn handle_stun(&mut self, src: PacketSource, data: &[u8], now: Instant) {
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
        let Some(w) = t.webrtc_mut() else { return };
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
        match src.tcp_conn {
            Some(c) => {
                self.tcp_paths.insert(c, tkey);
            }
            None => {
                self.udp_paths.insert((src.socket, src.tuple.remote), tkey);
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
        self.maybe_start_dtls(tkey);
    }

    fn handle_plain(
        &mut self,
        tkey: usize,
        src: PacketSource,
        buf: &mut Box<[u8]>,
        len: usize,
        now: Instant,
    ) {
        let t = &mut self.transports[tkey];
        let id = t.id;
        let TransportKind::Plain(p) = &mut t.kind else {
            return;
        };
        let from = src.tuple.remote;
        let is_rtcp_socket = p.rtcp_socket.map(|r| r.0) == Some(src.socket);
        let data = &buf[..len];
        let rtcp = is_rtcp_socket || rtcp::is_rtcp(data);
        if is_rtcp_socket {
            match p.remote_rtcp {
                Some(r) if r != from => {
                    self.drops.plain_wrong_source += 1;
                    return;
                }
                Some(_) => {}
                None if p.comedia => {
                    p.remote_rtcp = Some(from);
                    t.rtcp_route = Some(Route::Udp {
                        socket: src.socket,
                        dest: from,
                    });
                }
                None => {
                    self.drops.plain_wrong_source += 1;
                    return;
                }
            }
        } else {
            match p.remote {
                Some(r) if r != from => {
                    self.drops.plain_wrong_source += 1;
                    return;
                }
                Some(_) => {}
                None if p.comedia && !rtcp => {
                    p.remote = Some(from);
                    let r = Route::Udp {
                        socket: src.socket,
                        dest: from,
                    };
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
                None => {
                    self.drops.plain_wrong_source += 1;
                    return;
                }
            }
        }
        if rtcp {
            self.handle_rtcp(tkey, buf, len, now);
        } else {
            self.handle_rtp(tkey, buf, len, now);
        }
    }

    fn handle_rtp(&mut self, tkey: usize, buf: &mut Box<[u8]>, len: usize, now: Instant) {
        let t = &mut self.transports[tkey];
        let is_webrtc = t.webrtc().is_some();
        let len = match t.srtp_in.as_mut() {
            Some(ctx) => match ctx.unprotect_rtp(buf, len) {
                Ok(n) => n,
                Err(_) => {
                    t.counters.srtp_drops += 1;
                    self.drops.srtp += 1;
                    return;
                }
            },
            None if is_webrtc => {
                // No keys yet: nothing to decrypt with.
                self.drops.srtp += 1;
                return;
            }
            None => len,
        };
        let Ok(mut hdr) = RtpHeader::parse(&buf[..len]) else {
            self.drops.bad_rtp += 1;
            return;
        };
        t.counters.rtp_packets_received += 1;
        t.counters.rtp_bytes_received += len as u64;
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
        let keyframe = p.is_keyframe(&buf[..len], &hdr);
        if keyframe {
            p.keyframe_received(layer);
        }
        let stream = &mut p.streams[layer];
        stream.packets += 1;
        stream.bytes += len as u64;
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
            match c.forward(layer, &buf[..len], &hdr, keyframe, now, dst) {
                ForwardOutcome::Sent(n) => {
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
    fn learn_ssrc(
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

    fn handle_rtcp(&mut self, tkey: usize, buf: &mut Box<[u8]>, len: usize, now: Instant) {
        let t = &mut self.transports[tkey];
        let is_webrtc = t.webrtc().is_some();
        let len = match t.srtp_in.as_mut() {
            Some(ctx) => match ctx.unprotect_rtcp(buf, len) {
                Ok(n) => n,
                Err(_) => {
                    t.counters.srtp_drops += 1;
                    self.drops.srtp += 1;
                    return;
                }
            },
            None if is_webrtc => {
                self.drops.srtp += 1;
                return;
            }
            None => len,
        };
        t.counters.rtcp_packets_received += 1;
        // Feedback is handled after parsing so the packet buffer is not borrowed while sending.
        let mut nacks: Vec<(u32, u16)> = Vec::new();
        let mut keyframe_ssrcs: Vec<u32> = Vec::new();
        let mut score_changed: Vec<usize> = Vec::new();
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
                            let (sec, frac) = ntp_now();
                            let rtt = rtcp::rtt_from_report(
                                (sec << 16) | (frac >> 16),
                                block.lsr,
                                block.dlsr,
                            );
                            let cc = &mut self.consumers[c];
                            cc.last_rr = Some((block.fraction_lost, rtt));
                            let (sent, rtx) = (cc.counters.packets, cc.counters.retransmitted);
                            let lost = i64::from(block.cumulative_lost);
                            if cc.score.on_receiver_report(sent, lost, rtx, rtx).is_some() {
                                score_changed.push(c);
                            }
                        }
                    }
                }
                RtcpPacket::Nack {
                    media_ssrc, items, ..
                } => {
                    for seq in items.lost_seqs() {
                        if nacks.len() < 512 {
                            nacks.push((media_ssrc, seq));
                        }
                    }
                }
                RtcpPacket::Pli { media_ssrc, .. } => keyframe_ssrcs.push(media_ssrc),
                RtcpPacket::Fir { entries, .. } => {
                    for e in entries {
                        keyframe_ssrcs.push(e.ssrc);
                    }
                }
                _ => {}
            }
        }
        for c in score_changed {
            self.emit_consumer_score(c);
        }
        for ssrc in keyframe_ssrcs {
            if let Some(c) = self.consumer_by_ssrc(tkey, ssrc) {
                self.consumers[c].counters.keyframe_requests += 1;
                self.consumer_wants_keyframe(c, now);
            }
        }
        let mut last_ssrc = None;
        for (ssrc, seq) in nacks {
            let Some(ckey) = self.consumer_by_ssrc(tkey, ssrc) else {
                continue;
            };
            if last_ssrc != Some(ssrc) {
                self.consumers[ckey].counters.nacks += 1;
                last_ssrc = Some(ssrc);
            }
            self.retransmit(ckey, seq);
        }
    }

    fn consumer_by_ssrc(&self, tkey: usize, ssrc: u32) -> Option<usize> {
        self.transports[tkey]
            .consumers
            .iter()
            .copied()
            .find(|c| self.consumers[*c].ssrc == ssrc)
    }

    fn retransmit(&mut self, ckey: usize, consumer_seq: u16) {
        let c = &mut self.consumers[ckey];
        let Some(layer) = c.current_layer else { return };
        let p = &self.producers[c.producer];
        let pseq = c.producer_seq(consumer_seq);
        let Some(stored) = p.streams[layer].store.as_ref().and_then(|s| s.get(pseq)) else {
            c.counters.nack_misses += 1;
            return;
        };
        let Ok(hdr) = RtpHeader::parse(stored) else {
            return;
        };
        let ct = &mut self.transports[c.transport];
        if !ct.can_send() {
            return;
        }
        let dst = self.tx.next_buffer();
        let Some(n) = c.write_retransmission(stored, &hdr, consumer_seq, dst) else {
            return;
        };
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
    fn send_rtcp(
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

    /// Runs timers: NACKs upstream (every tick), receiver/sender reports, ICE consent and simulcast
    /// layer selection (every second).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_tick.is_some_and(|t| now < t) {
            return;
        }
        self.next_tick = Some(now + TICK);
        self.send_nacks(now);
        self.sctp_timers(now);
        self.run_observers(now);
        if self.next_report.is_none_or(|t| now >= t) {
            self.next_report = Some(now + REPORT_INTERVAL);
            self.check_ice(now);
            self.send_reports(now);
            self.update_scores(now);
            self.select_layers(now);
        }
    }

    fn check_ice(&mut self, now: Instant) {
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

    fn send_nacks(&mut self, now: Instant) {
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

    fn send_reports(&mut self, now: Instant) {
        // Index walks and a stack buffer: once a second per transport, but still no allocation.
        let (ntp_sec, ntp_frac) = ntp_now();
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

    /// Queues an already built plaintext RTCP packet to a transport.
    fn send_rtcp_bytes(&mut self, tkey: usize, data: &[u8]) {
        self.send_rtcp(tkey, |_, buf| {
            let n = data.len().min(buf.len());
            buf[..n].copy_from_slice(&data[..n]);
            Ok(n)
        });
    }

    /// Picks each simulcast consumer's target layer: the highest active one not above its preference.
    fn select_layers(&mut self, now: Instant) {
        for ckey in 0..self.consumers.capacity() {
            if !self.consumers.contains(ckey) {
                continue;
            }
            let c = &self.consumers[ckey];
            let p = &self.producers[c.producer];
            if p.streams.len() < 2 {
                continue;
            }
            let max = c
                .preferred_layer
                .unwrap_or(usize::MAX)
                .min(p.streams.len() - 1);
            let target = (0..=max)
                .rev()
                .find(|i| p.streams[*i].is_active(now, LAYER_ACTIVE_WINDOW))
                .unwrap_or(0);
            if target != c.target_layer {
                let pkey = c.producer;
                let id = c.id;
                self.consumers[ckey].target_layer = target;
                self.request_keyframe(pkey, target, now);
                self.events.push_back(EngineEvent::ConsumerLayersChange {
                    consumer: id,
                    spatial_layer: Some(target),
                });
            }
        }
    }
}

/// mediasoup's name for an ICE state.
pub fn ice_state_str(s: IceState) -> &'static str {
    match s {
        IceState::New => "new",
        IceState::Connected => "connected",
        IceState::Completed => "completed",
        IceState::Disconnected => "disconnected",
        IceState::Closed => "closed",
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn ntp_now() -> (u32, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() + 2_208_988_800;
    let frac = ((d.subsec_nanos() as u64) << 32) / 1_000_000_000;
    (secs as u32, frac as u32)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (SDES keys).
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        out.push(B64[(n >> 18) as usize & 63] as char);
        out.push(B64[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            B64[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            B64[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// Decodes standard base64 (padding optional); None on invalid input.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace()) {
        if c == b'=' {
            break;
        }
        let v = B64.iter().position(|x| *x == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        for n in 0..40 {
            let data: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(base64_decode(&base64_encode(&data)).unwrap(), data);
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert!(base64_decode("a*b").is_none());
    }
}
