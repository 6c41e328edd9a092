//! One SCTP association per WebRtcTransport (RFC 8261 SCTP over DTLS), sans-IO.
//!
//! The protocol machine is `sctp-proto` (the sans-IO crate str0m maintains); this module adapts it
//! to the engine: every DTLS application-data record is one SCTP packet fed to
//! [`SctpAssociation::handle_input`], and every packet from [`SctpAssociation::poll_transmit`] is
//! sent as one DTLS application-data record. Time is always passed in; nothing here spawns a thread
//! or reads a clock except `sctp-proto`'s own `Endpoint::connect`, which stamps the new association
//! with the current time (harmless: its timers are armed by our `now` on the first poll), and
//! `sctp-proto` draws its verification tags and initial TSNs from its own RNG.
//!
//! Before any packet reaches `sctp-proto` it is checked by [`validate_packet`] (header, CRC32c,
//! chunk framing) so malformed input is dropped and counted here, never handed to the state machine
//! (which closes the association on some parse errors).
//!
//! Empty messages (RFC 8831 §6.6) travel as PPID 56/57 with one zero byte; events expose the
//! logical empty payload and keep the wire PPID so a forwarder can pass it on unchanged.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use sctp_proto::{
    Association, AssociationError, AssociationHandle, ClientConfig, DatagramEvent, Endpoint,
    EndpointConfig, EndpointEvent, Event, Payload, PayloadProtocolIdentifier, ReliabilityType,
    ServerConfig, StreamEvent, TransportConfig,
};
use thiserror::Error;

/// Default SCTP message size limit, as mediasoup's `maxSctpMessageSize`.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 262_144;

/// SCTP port used on both sides by WebRTC (RFC 8841 default, mediasoup `port: 5000`).
pub const SCTP_PORT: u16 = 5000;

/// SCTP common header length (ports, verification tag, checksum).
const COMMON_HEADER_LEN: usize = 12;
/// Chunk header length (type, flags, length).
const CHUNK_HEADER_LEN: usize = 4;

/// CRC32c (Castagnoli) as used by SCTP (RFC 4960 Appendix B).
const CRC32C: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

/// Association configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SctpConfig {
    /// Outgoing streams we announce (OS).
    pub os: u16,
    /// Maximum incoming streams we accept (MIS).
    pub mis: u16,
    /// Largest message we send or accept, in bytes.
    pub max_message_size: usize,
}

impl Default for SctpConfig {
    fn default() -> Self {
        SctpConfig {
            os: 1024,
            mis: 1024,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

/// WebRTC payload protocol identifiers (RFC 8831 §8, RFC 8832 §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Ppid {
    /// DCEP control message (DATA_CHANNEL_OPEN / ACK).
    Dcep = 50,
    /// WebRTC String (UTF-8 text).
    String = 51,
    /// WebRTC Binary.
    Binary = 53,
    /// WebRTC String Empty: an empty text message (one zero byte on the wire).
    StringEmpty = 56,
    /// WebRTC Binary Empty: an empty binary message (one zero byte on the wire).
    BinaryEmpty = 57,
}

impl Ppid {
    /// The PPID with this wire value, if it is one WebRTC uses.
    pub fn from_u32(v: u32) -> Option<Ppid> {
        match v {
            50 => Some(Ppid::Dcep),
            51 => Some(Ppid::String),
            53 => Some(Ppid::Binary),
            56 => Some(Ppid::StringEmpty),
            57 => Some(Ppid::BinaryEmpty),
            _ => None,
        }
    }

    /// The wire value.
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// True for the two text PPIDs (51, 56).
    pub fn is_string(self) -> bool {
        matches!(self, Ppid::String | Ppid::StringEmpty)
    }

    fn to_proto(self) -> PayloadProtocolIdentifier {
        match self {
            Ppid::Dcep => PayloadProtocolIdentifier::Dcep,
            Ppid::String => PayloadProtocolIdentifier::String,
            Ppid::Binary => PayloadProtocolIdentifier::Binary,
            Ppid::StringEmpty => PayloadProtocolIdentifier::StringEmpty,
            Ppid::BinaryEmpty => PayloadProtocolIdentifier::BinaryEmpty,
        }
    }

    fn from_proto(p: PayloadProtocolIdentifier) -> Option<Ppid> {
        match p {
            PayloadProtocolIdentifier::Dcep => Some(Ppid::Dcep),
            PayloadProtocolIdentifier::String => Some(Ppid::String),
            PayloadProtocolIdentifier::Binary => Some(Ppid::Binary),
            PayloadProtocolIdentifier::StringEmpty => Some(Ppid::StringEmpty),
            PayloadProtocolIdentifier::BinaryEmpty => Some(Ppid::BinaryEmpty),
            _ => None,
        }
    }
}

/// Partial-reliability policy of a message (RFC 3758 / RFC 7496), as in `SctpStreamParameters`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartialReliability {
    /// Retransmit until acknowledged.
    Reliable,
    /// Give up after this many retransmissions.
    MaxRetransmits(u32),
    /// Give up after this many milliseconds.
    MaxPacketLifeTime(u32),
}

/// Delivery policy of a message: ordering plus partial reliability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reliability {
    /// Ordered delivery within the stream.
    pub ordered: bool,
    /// Retransmission policy.
    pub partial: PartialReliability,
}

impl Reliability {
    /// Reliable, ordered: the WebRTC default.
    pub const RELIABLE_ORDERED: Reliability = Reliability {
        ordered: true,
        partial: PartialReliability::Reliable,
    };

    /// From mediasoup-style stream parameters (`ordered` defaults to true unless a partial
    /// reliability limit is set, as `validate_sctp_stream_parameters` normalises it).
    pub fn from_stream_parameters(p: &crate::rtp_parameters::SctpStreamParameters) -> Reliability {
        let partial = match (p.max_packet_life_time, p.max_retransmits) {
            (Some(ms), _) => PartialReliability::MaxPacketLifeTime(u32::from(ms)),
            (None, Some(n)) => PartialReliability::MaxRetransmits(u32::from(n)),
            (None, None) => PartialReliability::Reliable,
        };
        let ordered = p.ordered.unwrap_or(partial == PartialReliability::Reliable);
        Reliability { ordered, partial }
    }

    fn to_proto(self) -> (ReliabilityType, u32) {
        match self.partial {
            PartialReliability::Reliable => (ReliabilityType::Reliable, 0),
            PartialReliability::MaxRetransmits(n) => (ReliabilityType::Rexmit, n),
            PartialReliability::MaxPacketLifeTime(ms) => (ReliabilityType::Timed, ms),
        }
    }
}

/// Association state, with mediasoup's `sctpState` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SctpState {
    /// Created; no INIT sent or received yet.
    New,
    /// Handshake in progress.
    Connecting,
    /// Established: messages flow.
    Connected,
    /// Handshake failed or the association was lost (timeout, protocol error).
    Failed,
    /// Closed by either side.
    Closed,
}

impl SctpState {
    /// The mediasoup string (`"new"`, `"connecting"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            SctpState::New => "new",
            SctpState::Connecting => "connecting",
            SctpState::Connected => "connected",
            SctpState::Failed => "failed",
            SctpState::Closed => "closed",
        }
    }
}

/// What the association reports to the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SctpEvent {
    /// The association is established (state became `Connected`).
    Connected,
    /// The handshake failed or the association was lost (state became `Failed`).
    Failed,
    /// The association was closed (state became `Closed`).
    Closed,
    /// A complete message arrived.
    Message {
        /// Stream it arrived on (= data channel id).
        stream_id: u16,
        /// Wire PPID (56/57 for empty messages).
        ppid: Ppid,
        /// Logical payload: empty for PPID 56/57.
        data: Vec<u8>,
    },
    /// The stream was reset (data channel closed), by the peer or by [`SctpAssociation::close_stream`].
    StreamClosed {
        /// The stream that closed.
        stream_id: u16,
    },
}

/// Why a send failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SctpError {
    /// The association is not established.
    #[error("SCTP association not connected (state {0:?})")]
    NotConnected(SctpState),
    /// The message exceeds `max_message_size`.
    #[error("SCTP message of {size} bytes exceeds max message size {max}")]
    MessageTooLarge {
        /// Message size.
        size: usize,
        /// Configured limit.
        max: usize,
    },
    /// A PPID 56/57 message must carry no payload.
    #[error("empty-message PPID with a non-empty payload")]
    NonEmptyPayloadForEmptyPpid,
    /// A DCEP message cannot be empty (sctp-proto would silently queue nothing).
    #[error("empty DCEP message")]
    EmptyDcep,
    /// `connect` called on an association that already started.
    #[error("SCTP association already started")]
    AlreadyStarted,
    /// `sctp-proto` refused the operation (closed stream, reset pending, …).
    #[error("sctp: {0}")]
    Proto(#[from] sctp_proto::Error),
    /// `sctp-proto` refused to start the association.
    #[error("sctp connect: {0}")]
    Connect(#[from] sctp_proto::ConnectError),
}

/// Counters for stats and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SctpCounters {
    /// Packets accepted by [`validate_packet`] and handed to the state machine.
    pub packets_received: u64,
    /// Packets returned by `poll_transmit`.
    pub packets_sent: u64,
    /// Input dropped as malformed (short, bad CRC32c, bad chunk framing).
    pub malformed_packets: u64,
    /// Well-formed input that no association took (e.g. a second INIT while one exists).
    pub unroutable_packets: u64,
    /// Complete messages delivered as events.
    pub messages_received: u64,
    /// Logical payload bytes delivered.
    pub bytes_received: u64,
    /// Received messages dropped (PPID not one of WebRTC's).
    pub messages_dropped: u64,
    /// Messages accepted by `send`.
    pub messages_sent: u64,
    /// Logical payload bytes accepted by `send`.
    pub bytes_sent: u64,
    /// `send` calls refused because the message exceeds `max_message_size`.
    pub messages_too_large: u64,
    /// Other `send` failures.
    pub send_errors: u64,
}

/// Why [`validate_packet`] rejected a packet.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum SctpPacketError {
    /// Shorter than a common header plus one chunk header.
    #[error("SCTP packet too short ({0} bytes)")]
    TooShort(usize),
    /// CRC32c mismatch.
    #[error("SCTP checksum mismatch")]
    BadChecksum,
    /// A chunk length below 4 or past the end of the packet.
    #[error("bad SCTP chunk length at offset {0}")]
    BadChunkLength(usize),
}

/// Checks an SCTP packet's framing: length, CRC32c, and that the chunks tile the packet.
/// Allocation-free; the fuzz target drives this.
pub fn validate_packet(packet: &[u8]) -> Result<(), SctpPacketError> {
    if packet.len() < COMMON_HEADER_LEN + CHUNK_HEADER_LEN {
        return Err(SctpPacketError::TooShort(packet.len()));
    }
    let (head, rest) = packet.split_at(COMMON_HEADER_LEN);
    let mut digest = CRC32C.digest();
    digest.update(&head[..8]);
    digest.update(&[0u8; 4]);
    digest.update(rest);
    // The checksum field is little-endian on the wire (RFC 4960 Appendix B, as usrsctp does).
    let theirs = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if digest.finalize() != theirs {
        return Err(SctpPacketError::BadChecksum);
    }
    let mut off = COMMON_HEADER_LEN;
    while off < packet.len() {
        let hdr = packet
            .get(off..off + CHUNK_HEADER_LEN)
            .ok_or(SctpPacketError::BadChunkLength(off))?;
        let len = usize::from(u16::from_be_bytes([hdr[2], hdr[3]]));
        if len < CHUNK_HEADER_LEN || off + len > packet.len() {
            return Err(SctpPacketError::BadChunkLength(off));
        }
        // Chunks are padded to 4 bytes; the last one's padding may be cut by a lenient peer.
        off = (off + len + 3) & !3;
    }
    Ok(())
}

/// Writes the CRC32c of `packet` into its checksum field (no-op below 12 bytes). For building test
/// and fuzz input that gets past [`validate_packet`]'s checksum.
pub fn set_packet_checksum(packet: &mut [u8]) {
    if packet.len() < COMMON_HEADER_LEN {
        return;
    }
    packet[8..12].fill(0);
    let crc = CRC32C.checksum(packet);
    packet[8..12].copy_from_slice(&crc.to_le_bytes());
}

/// One SCTP association over one DTLS connection.
pub struct SctpAssociation {
    config: SctpConfig,
    endpoint: Endpoint,
    assoc: Option<(AssociationHandle, Association)>,
    state: SctpState,
    events: VecDeque<SctpEvent>,
    transmits: VecDeque<Vec<u8>>,
    counters: SctpCounters,
}

impl std::fmt::Debug for SctpAssociation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SctpAssociation")
            .field("config", &self.config)
            .field("state", &self.state)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

/// `sctp-proto` keys associations by a socket address; over DTLS there is only one peer.
fn dummy_remote() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, SCTP_PORT))
}

impl SctpAssociation {
    /// A passive association: it accepts the peer's INIT. (`now` and `connect`'s `now` are kept
    /// for a uniform sans-IO signature; sctp-proto arms its timers on the first poll.) Call [`Self::connect`] to initiate
    /// instead (DTLS client role).
    pub fn new(config: SctpConfig, _now: Instant) -> Self {
        let mut server = ServerConfig::new();
        server.transport = Arc::new(Self::transport_config(&config));
        let endpoint = Endpoint::new(Arc::new(EndpointConfig::new()), Some(Arc::new(server)));
        SctpAssociation {
            config,
            endpoint,
            assoc: None,
            state: SctpState::New,
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            counters: SctpCounters::default(),
        }
    }

    fn transport_config(config: &SctpConfig) -> TransportConfig {
        let max = u32::try_from(config.max_message_size).unwrap_or(u32::MAX);
        TransportConfig::default()
            .with_max_num_outbound_streams(config.os)
            .with_max_num_inbound_streams(config.mis)
            .with_max_send_message_size(max)
            .with_max_receive_message_size(max)
            // The receive buffer must hold at least one whole message (sctp-proto aborts otherwise).
            .with_max_receive_buffer_size(max.saturating_mul(2).max(1024 * 1024))
            // WebRTC keeps trying while DTLS/ICE are alive; ICE decides when the peer is gone.
            .with_max_init_retransmits(None)
            .with_local_port(SCTP_PORT)
            .with_remote_port(SCTP_PORT)
    }

    /// Initiates the association (send INIT). Only valid before any association exists.
    pub fn connect(&mut self, _now: Instant) -> Result<(), SctpError> {
        if self.assoc.is_some() {
            return Err(SctpError::AlreadyStarted);
        }
        let mut client = ClientConfig::new();
        client.transport = Arc::new(Self::transport_config(&self.config));
        let (h, a) = self.endpoint.connect(client, dummy_remote())?;
        self.assoc = Some((h, a));
        self.state = SctpState::Connecting;
        self.drain_events();
        Ok(())
    }

    /// Feeds one SCTP packet (one DTLS application-data record). Malformed input is dropped and
    /// counted.
    pub fn handle_input(&mut self, now: Instant, packet: &[u8]) {
        if validate_packet(packet).is_err() {
            self.counters.malformed_packets += 1;
            return;
        }
        let Some((handle, event)) = self.endpoint.handle(
            now,
            dummy_remote(),
            None,
            None,
            Bytes::copy_from_slice(packet),
        ) else {
            self.counters.unroutable_packets += 1;
            return;
        };
        self.counters.packets_received += 1;
        match event {
            DatagramEvent::NewAssociation(a) => {
                if self.assoc.is_some() {
                    // One association per DTLS connection: a second INIT (collision, restart)
                    // gets no answer; release the endpoint's bookkeeping for it.
                    self.counters.packets_received -= 1;
                    self.counters.unroutable_packets += 1;
                    let _ = self.endpoint.handle_event(handle, EndpointEvent::drained());
                    return;
                }
                self.assoc = Some((handle, a));
                if self.state == SctpState::New {
                    self.state = SctpState::Connecting;
                }
            }
            DatagramEvent::AssociationEvent(ev) => match &mut self.assoc {
                Some((h, a)) if *h == handle => a.handle_event(ev),
                _ => {
                    self.counters.packets_received -= 1;
                    self.counters.unroutable_packets += 1;
                    return;
                }
            },
        }
        self.drain_events();
    }

    /// Next SCTP packet to send as one DTLS application-data record; call until `None` after every
    /// input, timeout and send.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.transmits.is_empty() {
            self.collect_transmits(now);
        }
        let p = self.transmits.pop_front()?;
        self.counters.packets_sent += 1;
        Some(p)
    }

    fn collect_transmits(&mut self, now: Instant) {
        while let Some(t) = self.endpoint.poll_transmit() {
            Self::push_payload(&mut self.transmits, t.payload);
        }
        if let Some(t) = self.assoc.as_mut().and_then(|(_, a)| a.poll_transmit(now)) {
            Self::push_payload(&mut self.transmits, t.payload);
        }
        // Transmitting can move timers and the association state (e.g. reliability deadlines).
        self.drain_events();
    }

    fn push_payload(q: &mut VecDeque<Vec<u8>>, payload: Payload) {
        if let Payload::RawEncode(packets) = payload {
            q.extend(packets.into_iter().map(|b| b.to_vec()));
        }
    }

    /// Runs expired timers (retransmissions, delayed SACK, heartbeats).
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some((_, a)) = &mut self.assoc {
            a.handle_timeout(now);
        }
        self.drain_events();
    }

    /// When [`Self::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.assoc.as_ref().and_then(|(_, a)| a.poll_timeout())
    }

    /// Next event for the engine.
    pub fn poll_event(&mut self) -> Option<SctpEvent> {
        self.events.pop_front()
    }

    /// Current state.
    pub fn state(&self) -> SctpState {
        self.state
    }

    /// Counters snapshot.
    pub fn counters(&self) -> SctpCounters {
        self.counters
    }

    /// The configuration in use.
    pub fn config(&self) -> &SctpConfig {
        &self.config
    }

    /// Sends one message on `stream_id`. An empty `data` with PPID String/Binary is sent as
    /// StringEmpty/BinaryEmpty with one zero byte (RFC 8831 §6.6).
    pub fn send(
        &mut self,
        stream_id: u16,
        ppid: Ppid,
        data: &[u8],
        reliability: Reliability,
    ) -> Result<(), SctpError> {
        let r = self.send_inner(stream_id, ppid, data, reliability);
        match &r {
            Ok(()) => {
                self.counters.messages_sent += 1;
                self.counters.bytes_sent += data.len() as u64;
            }
            Err(SctpError::MessageTooLarge { .. }) => self.counters.messages_too_large += 1,
            Err(_) => self.counters.send_errors += 1,
        }
        r
    }

    fn send_inner(
        &mut self,
        stream_id: u16,
        ppid: Ppid,
        data: &[u8],
        reliability: Reliability,
    ) -> Result<(), SctpError> {
        if data.len() > self.config.max_message_size {
            return Err(SctpError::MessageTooLarge {
                size: data.len(),
                max: self.config.max_message_size,
            });
        }
        let (wire_ppid, payload): (Ppid, &[u8]) = match (ppid, data.is_empty()) {
            (Ppid::String | Ppid::StringEmpty, true) => (Ppid::StringEmpty, &[0]),
            (Ppid::Binary | Ppid::BinaryEmpty, true) => (Ppid::BinaryEmpty, &[0]),
            (Ppid::StringEmpty | Ppid::BinaryEmpty, false) => {
                return Err(SctpError::NonEmptyPayloadForEmptyPpid);
            }
            (Ppid::Dcep, true) => return Err(SctpError::EmptyDcep),
            (p, _) => (p, data),
        };
        if self.state != SctpState::Connected {
            return Err(SctpError::NotConnected(self.state));
        }
        let Some((_, a)) = &mut self.assoc else {
            return Err(SctpError::NotConnected(self.state));
        };
        let mut stream = match a.stream(stream_id) {
            Ok(s) => s,
            Err(_) => a.open_stream(stream_id, wire_ppid.to_proto())?,
        };
        let (rel_type, rel_val) = reliability.to_proto();
        stream.set_reliability_params(!reliability.ordered, rel_type, rel_val)?;
        stream.write_with_ppi(payload, wire_ppid.to_proto())?;
        Ok(())
    }

    /// Resets `stream_id` (RFC 6525 outgoing reset; the peer answers with its own), closing the
    /// data channel on both sides. A stream never used is ignored.
    pub fn close_stream(&mut self, stream_id: u16) {
        if let Some((_, a)) = &mut self.assoc {
            if let Ok(mut s) = a.stream(stream_id) {
                let _ = s.close();
            }
        }
        self.drain_events();
    }

    /// Closes the association gracefully (SHUTDOWN) when established, else aborts locally.
    pub fn close(&mut self) {
        if let Some((_, a)) = &mut self.assoc {
            if self.state == SctpState::Connected {
                let _ = a.shutdown();
            } else {
                let _ = a.close();
            }
        }
        self.drain_events();
        if !matches!(self.state, SctpState::Closed | SctpState::Failed) {
            self.set_state(SctpState::Closed);
        }
    }

    fn set_state(&mut self, state: SctpState) {
        if self.state == state {
            return;
        }
        self.state = state;
        match state {
            SctpState::Connected => self.events.push_back(SctpEvent::Connected),
            SctpState::Failed => self.events.push_back(SctpEvent::Failed),
            SctpState::Closed => self.events.push_back(SctpEvent::Closed),
            SctpState::New | SctpState::Connecting => {}
        }
    }

    /// Pulls everything `sctp-proto` produced after an input, timeout or API call into our queues.
    fn drain_events(&mut self) {
        loop {
            let Some((_, a)) = &mut self.assoc else {
                return;
            };
            // The only endpoint event is `Drained`, which `shutdown()` raises at once; forwarding it
            // would unroute the peer's SHUTDOWN-ACK and the close would never complete. This
            // endpoint serves one association and dies with it, so its bookkeeping can stay.
            while a.poll_endpoint_event().is_some() {}
            let Some(ev) = a.poll() else {
                // A graceful close (SHUTDOWN exchange) ends without an event from sctp-proto.
                // (Before COOKIE-ECHO a server association also reads as closed: hence Connected.)
                if a.is_closed() && self.state == SctpState::Connected {
                    self.set_state(SctpState::Closed);
                }
                return;
            };
            match ev {
                Event::Connected => self.set_state(SctpState::Connected),
                Event::HandshakeFailed { .. } => self.set_state(SctpState::Failed),
                Event::AssociationLost { reason } => {
                    let s = match reason {
                        AssociationError::AssociationClosed
                        | AssociationError::ApplicationClosed
                        | AssociationError::LocallyClosed => SctpState::Closed,
                        _ => SctpState::Failed,
                    };
                    self.set_state(s);
                }
                Event::Stream(StreamEvent::Opened { id } | StreamEvent::Readable { id }) => {
                    // Pop the accept queue so it does not grow: every stream is pre-known by id.
                    while a.accept_stream().is_some() {}
                    self.read_stream(id);
                }
                Event::Stream(StreamEvent::Finished { id }) => {
                    self.events
                        .push_back(SctpEvent::StreamClosed { stream_id: id });
                }
                _ => {}
            }
        }
    }

    fn read_stream(&mut self, id: u16) {
        let Some((_, a)) = &mut self.assoc else {
            return;
        };
        let Ok(mut stream) = a.stream(id) else {
            return;
        };
        while let Ok(Some(chunks)) = stream.read_sctp() {
            let Some(ppid) = Ppid::from_proto(chunks.ppi) else {
                self.counters.messages_dropped += 1;
                continue;
            };
            let data = if matches!(ppid, Ppid::StringEmpty | Ppid::BinaryEmpty) {
                Vec::new()
            } else {
                let mut buf = vec![0u8; chunks.len()];
                match chunks.read(&mut buf) {
                    Ok(n) => buf.truncate(n),
                    Err(_) => {
                        self.counters.messages_dropped += 1;
                        continue;
                    }
                }
                buf
            };
            self.counters.messages_received += 1;
            self.counters.bytes_received += data.len() as u64;
            self.events.push_back(SctpEvent::Message {
                stream_id: id,
                ppid,
                data,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Two associations wired back to back in memory with an explicit clock.
    struct Pair {
        c: SctpAssociation,
        s: SctpAssociation,
        now: Instant,
    }

    impl Pair {
        fn new(config: SctpConfig) -> Pair {
            let now = Instant::now();
            Pair {
                c: SctpAssociation::new(config, now),
                s: SctpAssociation::new(config, now),
                now,
            }
        }

        fn connected(config: SctpConfig) -> Pair {
            let mut p = Pair::new(config);
            p.c.connect(p.now).unwrap();
            p.pump();
            assert_eq!(p.c.state(), SctpState::Connected);
            assert_eq!(p.s.state(), SctpState::Connected);
            assert_eq!(p.c.poll_event(), Some(SctpEvent::Connected));
            assert_eq!(p.s.poll_event(), Some(SctpEvent::Connected));
            p
        }

        /// Moves packets both ways and runs timers due within 4 s (covers the 3 s initial RTO,
        /// not the 30 s heartbeat), until quiet.
        fn pump(&mut self) {
            for _ in 0..10_000 {
                let mut moved = false;
                while let Some(pkt) = self.c.poll_transmit(self.now) {
                    self.s.handle_input(self.now, &pkt);
                    moved = true;
                }
                while let Some(pkt) = self.s.poll_transmit(self.now) {
                    self.c.handle_input(self.now, &pkt);
                    moved = true;
                }
                if moved {
                    continue;
                }
                let next = [self.c.poll_timeout(), self.s.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min();
                match next {
                    Some(t) if t <= self.now + Duration::from_secs(4) => {
                        self.now = self.now.max(t);
                        self.c.handle_timeout(self.now);
                        self.s.handle_timeout(self.now);
                    }
                    _ => return,
                }
            }
            panic!("pump did not settle");
        }

        fn drain(a: &mut SctpAssociation) -> Vec<SctpEvent> {
            std::iter::from_fn(|| a.poll_event()).collect()
        }
    }

    fn msg(stream_id: u16, ppid: Ppid, data: &[u8]) -> SctpEvent {
        SctpEvent::Message {
            stream_id,
            ppid,
            data: data.to_vec(),
        }
    }

    const UNORDERED: Reliability = Reliability {
        ordered: false,
        partial: PartialReliability::Reliable,
    };

    #[test]
    fn handshake_client_server() {
        let p = Pair::connected(SctpConfig::default());
        assert!(p.c.counters().packets_sent >= 2);
        assert!(p.s.counters().packets_received >= 2);
        assert_eq!(p.s.counters().malformed_packets, 0);
    }

    #[test]
    fn messages_both_ways_on_several_streams() {
        let mut p = Pair::connected(SctpConfig::default());
        let r = Reliability::RELIABLE_ORDERED;
        p.c.send(0, Ppid::String, b"hello", r).unwrap();
        p.c.send(1, Ppid::Binary, &[1, 2, 3, 0, 255], r).unwrap();
        p.c.send(2, Ppid::String, b"", r).unwrap();
        p.c.send(2, Ppid::Binary, b"", r).unwrap();
        p.pump();
        let mut got = Pair::drain(&mut p.s);
        got.sort_by_key(|e| format!("{e:?}"));
        let mut want = vec![
            msg(0, Ppid::String, b"hello"),
            msg(1, Ppid::Binary, &[1, 2, 3, 0, 255]),
            msg(2, Ppid::StringEmpty, b""),
            msg(2, Ppid::BinaryEmpty, b""),
        ];
        want.sort_by_key(|e| format!("{e:?}"));
        assert_eq!(got, want);
        // Server answers on the streams the client opened and on a new one.
        p.s.send(0, Ppid::String, "réponse".as_bytes(), r).unwrap();
        p.s.send(1, Ppid::BinaryEmpty, b"", r).unwrap();
        p.s.send(7, Ppid::Binary, &[9; 10], r).unwrap();
        p.pump();
        let mut got = Pair::drain(&mut p.c);
        got.sort_by_key(|e| format!("{e:?}"));
        let mut want = vec![
            msg(0, Ppid::String, "réponse".as_bytes()),
            msg(1, Ppid::BinaryEmpty, b""),
            msg(7, Ppid::Binary, &[9; 10]),
        ];
        want.sort_by_key(|e| format!("{e:?}"));
        assert_eq!(got, want);
        let cs = p.c.counters();
        assert_eq!((cs.messages_sent, cs.messages_received), (4, 3));
        assert_eq!(cs.bytes_sent, 5 + 5);
        assert_eq!(p.s.counters().bytes_received, 10);
    }

    #[test]
    fn empty_ppid_with_payload_is_refused() {
        let mut p = Pair::connected(SctpConfig::default());
        let e =
            p.c.send(0, Ppid::StringEmpty, b"x", Reliability::RELIABLE_ORDERED);
        assert_eq!(e, Err(SctpError::NonEmptyPayloadForEmptyPpid));
        assert_eq!(p.c.counters().send_errors, 1);
    }

    #[test]
    fn large_binary_message_arrives_intact() {
        let mut p = Pair::connected(SctpConfig::default());
        let data: Vec<u8> = (0..200 * 1024u32)
            .map(|i| (i * 7 + i / 251) as u8)
            .collect();
        p.c.send(3, Ppid::Binary, &data, Reliability::RELIABLE_ORDERED)
            .unwrap();
        p.pump();
        assert_eq!(Pair::drain(&mut p.s), vec![msg(3, Ppid::Binary, &data)]);
        // Fragmented into many packets.
        assert!(p.c.counters().packets_sent > 150);
    }

    #[test]
    fn message_above_max_size_is_rejected_and_counted() {
        let cfg = SctpConfig {
            max_message_size: 1000,
            ..SctpConfig::default()
        };
        let mut p = Pair::connected(cfg);
        let e =
            p.c.send(0, Ppid::Binary, &[0; 1001], Reliability::RELIABLE_ORDERED);
        assert_eq!(
            e,
            Err(SctpError::MessageTooLarge {
                size: 1001,
                max: 1000
            })
        );
        assert_eq!(p.c.counters().messages_too_large, 1);
        assert_eq!(p.c.counters().messages_sent, 0);
        p.c.send(0, Ppid::Binary, &[0; 1000], Reliability::RELIABLE_ORDERED)
            .unwrap();
        p.pump();
        assert_eq!(
            Pair::drain(&mut p.s),
            vec![msg(0, Ppid::Binary, &[0; 1000])]
        );
    }

    #[test]
    fn send_before_connected_fails() {
        let mut p = Pair::new(SctpConfig::default());
        let e =
            p.c.send(0, Ppid::String, b"x", Reliability::RELIABLE_ORDERED);
        assert_eq!(e, Err(SctpError::NotConnected(SctpState::New)));
    }

    /// Sends two one-packet messages, delivers only the second packet: an unordered stream
    /// delivers it at once, an ordered stream holds it until the first is retransmitted.
    fn hole_then_fill(reliability: Reliability) -> (Summary, Summary) {
        let mut p = Pair::connected(SctpConfig::default());
        let a = vec![b'a'; 1100];
        let b = vec![b'b'; 1100];
        p.c.send(5, Ppid::Binary, &a, reliability).unwrap();
        p.c.send(5, Ppid::Binary, &b, reliability).unwrap();
        let p1 = p.c.poll_transmit(p.now).unwrap();
        let p2 = p.c.poll_transmit(p.now).unwrap();
        assert!(p.c.poll_transmit(p.now).is_none());
        drop(p1); // lost
        p.s.handle_input(p.now, &p2);
        let early = summary(Pair::drain(&mut p.s));
        p.pump(); // SACK with a gap, then fast/timer retransmission of the first
        let late = summary(Pair::drain(&mut p.s));
        (early, late)
    }

    /// (stream, first byte, length, all bytes equal) per message: readable assertion output.
    type Summary = Vec<(u16, u8, usize, bool)>;

    fn summary(events: Vec<SctpEvent>) -> Summary {
        events
            .into_iter()
            .map(|e| match e {
                SctpEvent::Message {
                    stream_id, data, ..
                } => (
                    stream_id,
                    data[0],
                    data.len(),
                    data.iter().all(|b| *b == data[0]),
                ),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn unordered_delivers_past_a_hole() {
        let (early, late) = hole_then_fill(UNORDERED);
        assert_eq!(early, vec![(5, b'b', 1100, true)]);
        assert_eq!(late, vec![(5, b'a', 1100, true)]);
    }

    #[test]
    fn ordered_waits_for_the_hole() {
        let (early, late) = hole_then_fill(Reliability::RELIABLE_ORDERED);
        assert_eq!(early, vec![]);
        assert_eq!(late, vec![(5, b'a', 1100, true), (5, b'b', 1100, true)]);
    }

    #[test]
    fn stream_reset_closes_on_both_sides() {
        let mut p = Pair::connected(SctpConfig::default());
        let r = Reliability::RELIABLE_ORDERED;
        p.c.send(1, Ppid::String, b"a", r).unwrap();
        p.c.send(2, Ppid::String, b"b", r).unwrap();
        p.pump();
        assert_eq!(Pair::drain(&mut p.s).len(), 2);
        p.c.close_stream(1);
        p.pump();
        assert_eq!(
            Pair::drain(&mut p.s),
            vec![SctpEvent::StreamClosed { stream_id: 1 }]
        );
        assert_eq!(
            Pair::drain(&mut p.c),
            vec![SctpEvent::StreamClosed { stream_id: 1 }]
        );
        // Stream 2 is untouched, and stream id 1 can be opened again.
        p.s.send(2, Ppid::String, b"still", r).unwrap();
        p.c.send(1, Ppid::String, b"again", r).unwrap();
        p.pump();
        assert_eq!(Pair::drain(&mut p.c), vec![msg(2, Ppid::String, b"still")]);
        assert_eq!(Pair::drain(&mut p.s), vec![msg(1, Ppid::String, b"again")]);
    }

    #[test]
    fn close_association_notifies_peer() {
        let mut p = Pair::connected(SctpConfig::default());
        p.c.close();
        p.pump();
        assert_eq!(p.c.state(), SctpState::Closed);
        assert_eq!(p.s.state(), SctpState::Closed);
        assert_eq!(Pair::drain(&mut p.s), vec![SctpEvent::Closed]);
    }

    #[test]
    fn malformed_input_is_dropped_and_counted() {
        let mut p = Pair::new(SctpConfig::default());
        p.c.connect(p.now).unwrap();
        let init = p.c.poll_transmit(p.now).unwrap();
        assert_eq!(validate_packet(&init), Ok(()));
        let mut bad = 0;
        // Truncations of a real INIT.
        for n in [0, 1, 11, 12, 15, 20, init.len() - 1] {
            p.s.handle_input(p.now, &init[..n]);
            bad += 1;
        }
        // Bad CRC32c.
        let mut flipped = init.clone();
        flipped[20] ^= 0x40;
        assert_eq!(validate_packet(&flipped), Err(SctpPacketError::BadChecksum));
        p.s.handle_input(p.now, &flipped);
        bad += 1;
        // Valid CRC, chunk length pointing past the end / below the header size.
        for len in [0xffffu16, 2] {
            let mut framing = init.clone();
            framing[14..16].copy_from_slice(&len.to_be_bytes());
            set_packet_checksum(&mut framing);
            assert!(matches!(
                validate_packet(&framing),
                Err(SctpPacketError::BadChunkLength(_))
            ));
            p.s.handle_input(p.now, &framing);
            bad += 1;
        }
        // Random bytes (deterministic LCG).
        let mut x: u32 = 0x1234_5678;
        for len in (0..2000).step_by(37) {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (x >> 24) as u8
                })
                .collect();
            p.s.handle_input(p.now, &junk);
            bad += 1;
        }
        assert_eq!(p.s.counters().malformed_packets, bad);
        assert_eq!(p.s.counters().packets_received, 0);
        assert_eq!(p.s.state(), SctpState::New);
        // The real INIT still works afterwards.
        p.s.handle_input(p.now, &init);
        p.pump();
        assert_eq!(p.s.state(), SctpState::Connected);
        assert_eq!(p.c.state(), SctpState::Connected);
        // And junk on an established association changes nothing.
        p.s.handle_input(p.now, &init[..30]);
        p.c.send(0, Ppid::String, b"ok", Reliability::RELIABLE_ORDERED)
            .unwrap();
        p.pump();
        assert_eq!(
            Pair::drain(&mut p.s),
            vec![SctpEvent::Connected, msg(0, Ppid::String, b"ok")]
        );
        assert_eq!(p.s.counters().malformed_packets, bad + 1);
    }

    /// Junk that passes the CRC and carries the right verification tag reaches sctp-proto's chunk
    /// parsers (what the `sctp_parse` fuzz target does at scale): no panic, state stays sane.
    #[test]
    fn authenticated_junk_does_not_panic() {
        let mut x: u32 = 0x9e37_79b9;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for round in 0..300 {
            let mut p = Pair::connected(SctpConfig::default());
            p.c.send(0, Ppid::String, b"x", Reliability::RELIABLE_ORDERED)
                .unwrap();
            let real = p.c.poll_transmit(p.now).unwrap();
            let len = 16 + (rnd() as usize % 200);
            let mut pkt: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
            pkt[..4].copy_from_slice(&real[..4]);
            pkt[4..8].copy_from_slice(&real[4..8]);
            // Half the rounds keep a plausible chunk header so framing passes more often.
            if round % 2 == 0 {
                let clen = (len - 12) as u16;
                pkt[14..16].copy_from_slice(&clen.to_be_bytes());
                pkt[12] = (round / 2 % 16) as u8;
            }
            set_packet_checksum(&mut pkt);
            p.s.handle_input(p.now, &pkt);
            p.s.handle_input(p.now, &real);
            p.pump();
            let _ = Pair::drain(&mut p.s);
            assert!(matches!(
                p.s.state(),
                SctpState::Connected | SctpState::Closed | SctpState::Failed
            ));
        }
    }

    #[test]
    fn second_init_is_not_answered() {
        let mut p = Pair::connected(SctpConfig::default());
        let mut other = SctpAssociation::new(SctpConfig::default(), p.now);
        other.connect(p.now).unwrap();
        let init = other.poll_transmit(p.now).unwrap();
        p.s.handle_input(p.now, &init);
        assert_eq!(p.s.counters().unroutable_packets, 1);
        assert!(p.s.poll_transmit(p.now).is_none());
        assert_eq!(p.s.state(), SctpState::Connected);
    }

    #[test]
    fn ppid_values_and_reliability_mapping() {
        for v in [50, 51, 53, 56, 57] {
            assert_eq!(Ppid::from_u32(v).map(Ppid::as_u32), Some(v));
        }
        assert_eq!(Ppid::from_u32(52), None);
        use crate::rtp_parameters::SctpStreamParameters;
        let sp = |ordered, life, retr| SctpStreamParameters {
            stream_id: 0,
            ordered,
            max_packet_life_time: life,
            max_retransmits: retr,
        };
        assert_eq!(
            Reliability::from_stream_parameters(&sp(None, None, None)),
            Reliability::RELIABLE_ORDERED
        );
        assert_eq!(
            Reliability::from_stream_parameters(&sp(None, None, Some(3))),
            Reliability {
                ordered: false,
                partial: PartialReliability::MaxRetransmits(3)
            }
        );
        assert_eq!(
            Reliability::from_stream_parameters(&sp(Some(true), Some(500), None)),
            Reliability {
                ordered: true,
                partial: PartialReliability::MaxPacketLifeTime(500)
            }
        );
    }
}

/// Wire compatibility with a second implementation: webrtc-sctp 0.17 (and webrtc-data's DCEP)
/// on one side of an in-memory pipe, this module on the other, in both roles.
#[cfg(test)]
mod interop_tests {
    use super::*;
    use crate::data_channel::{handle_dcep, DcepAction};
    use std::time::Duration;
    use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
    use webrtc_sctp::association::{Association as RsAssociation, Config as RsConfig};
    use webrtc_sctp::chunk::chunk_payload_data::PayloadProtocolIdentifier as RsPpi;
    use webrtc_sctp::stream::ReliabilityType as RsReliability;
    use webrtc_util::conn::Conn;

    const WAIT: Duration = Duration::from_secs(10);
    /// Asks `run_ours` for a 200 KB binary message instead of an echo.
    const BIG_REQUEST: &[u8] = b"send me 200 KB";

    fn big() -> Vec<u8> {
        (0..200 * 1024u32).map(|i| (i % 253) as u8).collect()
    }

    /// Runs our association over `conn` as an echo peer: every message comes back on its stream
    /// with its PPID; a DCEP OPEN is answered with an ACK. Every event is logged to `log`.
    async fn run_ours(
        conn: Arc<dyn Conn + Send + Sync>,
        initiate: bool,
        log: UnboundedSender<SctpEvent>,
    ) -> SctpCounters {
        let mut a = SctpAssociation::new(SctpConfig::default(), Instant::now());
        if initiate {
            a.connect(Instant::now()).unwrap();
        }
        let mut buf = vec![0u8; 65536];
        loop {
            let now = Instant::now();
            let mut done = false;
            while let Some(ev) = a.poll_event() {
                if let SctpEvent::Message {
                    stream_id,
                    ppid,
                    data,
                } = &ev
                {
                    if *ppid == Ppid::Dcep {
                        if let Ok(DcepAction::Opened { ack, .. }) = handle_dcep(*stream_id, data) {
                            a.send(*stream_id, Ppid::Dcep, &ack, Reliability::RELIABLE_ORDERED)
                                .unwrap();
                        }
                    } else if data == BIG_REQUEST {
                        a.send(
                            *stream_id,
                            Ppid::Binary,
                            &big(),
                            Reliability::RELIABLE_ORDERED,
                        )
                        .unwrap();
                    } else {
                        a.send(*stream_id, *ppid, data, Reliability::RELIABLE_ORDERED)
                            .unwrap();
                    }
                }
                done |= matches!(ev, SctpEvent::Closed | SctpEvent::Failed);
                let _ = log.send(ev);
            }
            while let Some(p) = a.poll_transmit(now) {
                if conn.send(&p).await.is_err() {
                    return a.counters();
                }
            }
            if done {
                return a.counters();
            }
            let deadline = a
                .poll_timeout()
                .unwrap_or(now + Duration::from_millis(100))
                .max(now);
            tokio::select! {
                r = conn.recv(&mut buf) => match r {
                    Ok(n) => a.handle_input(Instant::now(), &buf[..n]),
                    Err(_) => return a.counters(),
                },
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
                    a.handle_timeout(Instant::now());
                }
            }
        }
    }

    fn rs_config(conn: impl Conn + Send + Sync + 'static) -> RsConfig {
        RsConfig {
            net_conn: Arc::new(conn),
            max_receive_buffer_size: 0,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE as u32,
            mtu: 0,
            name: "webrtc-sctp".into(),
            remote_port: SCTP_PORT,
            local_port: SCTP_PORT,
        }
    }

    async fn next_event(rx: &mut UnboundedReceiver<SctpEvent>) -> SctpEvent {
        tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("event in time")
            .expect("ours still running")
    }

    /// Writes `data` with `ppi` on `s` and checks the echo comes back identical.
    async fn echo(s: &webrtc_sctp::stream::Stream, ppi: RsPpi, data: &[u8]) {
        s.write_sctp(&Bytes::copy_from_slice(data), ppi)
            .await
            .unwrap();
        let mut buf = vec![0u8; 300_000];
        let (n, got) = tokio::time::timeout(WAIT, s.read_sctp(&mut buf))
            .await
            .expect("echo in time")
            .unwrap();
        assert_eq!(got, ppi);
        assert_eq!(&buf[..n], data);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn webrtc_sctp_client_to_our_server() {
        let (theirs, ours) = webrtc_util::conn::conn_pipe::pipe();
        let (tx, mut rx) = unbounded_channel();
        let ours = tokio::spawn(run_ours(Arc::new(ours), false, tx));
        let peer = tokio::time::timeout(WAIT, RsAssociation::client(rs_config(theirs)))
            .await
            .expect("handshake in time")
            .unwrap();
        assert_eq!(next_event(&mut rx).await, SctpEvent::Connected);

        let s = peer.open_stream(1, RsPpi::Binary).await.unwrap();
        echo(&s, RsPpi::String, b"hello").await;
        echo(&s, RsPpi::Binary, &[0, 1, 2, 255]).await;
        // RFC 8831 empty messages: one zero byte with PPID 56/57.
        echo(&s, RsPpi::StringEmpty, &[0]).await;
        echo(&s, RsPpi::BinaryEmpty, &[0]).await;
        // webrtc-sctp 0.17 cannot *send* messages above ~85 KB (its pending-queue semaphore
        // deadlocks before waking its write loop), so 80 KB round-trips and 200 KB goes one way.
        let medium: Vec<u8> = (0..80 * 1024u32).map(|i| (i % 251) as u8).collect();
        echo(&s, RsPpi::Binary, &medium).await;
        s.write_sctp(&Bytes::from_static(BIG_REQUEST), RsPpi::String)
            .await
            .unwrap();
        let mut buf = vec![0u8; 300_000];
        let (n, got) = tokio::time::timeout(WAIT, s.read_sctp(&mut buf))
            .await
            .expect("200 KB in time")
            .unwrap();
        assert_eq!(got, RsPpi::Binary);
        assert!(buf[..n] == big()[..], "200 KB message differs");
        let u = peer.open_stream(2, RsPpi::Binary).await.unwrap();
        u.set_reliability_params(true, RsReliability::Rexmit, 0);
        echo(&u, RsPpi::String, b"unordered").await;

        let want = [
            (1, Ppid::String, b"hello".to_vec()),
            (1, Ppid::Binary, vec![0, 1, 2, 255]),
            (1, Ppid::StringEmpty, vec![]),
            (1, Ppid::BinaryEmpty, vec![]),
            (1, Ppid::Binary, medium),
            (1, Ppid::String, BIG_REQUEST.to_vec()),
            (2, Ppid::String, b"unordered".to_vec()),
        ];
        for (stream_id, ppid, data) in want {
            assert_eq!(
                next_event(&mut rx).await,
                SctpEvent::Message {
                    stream_id,
                    ppid,
                    data
                }
            );
        }

        // Stream reset from webrtc-sctp closes the stream on our side.
        s.shutdown(std::net::Shutdown::Both).await.unwrap();
        assert_eq!(
            next_event(&mut rx).await,
            SctpEvent::StreamClosed { stream_id: 1 }
        );

        tokio::time::timeout(WAIT, peer.shutdown())
            .await
            .expect("shutdown in time")
            .unwrap();
        assert_eq!(next_event(&mut rx).await, SctpEvent::Closed);
        let counters = tokio::time::timeout(WAIT, ours).await.unwrap().unwrap();
        assert_eq!(counters.malformed_packets, 0);
        assert_eq!(counters.messages_received, 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn our_client_to_webrtc_sctp_server_with_dcep() {
        let (theirs, ours) = webrtc_util::conn::conn_pipe::pipe();
        let (tx, mut rx) = unbounded_channel();
        let ours = tokio::spawn(run_ours(Arc::new(ours), true, tx));
        let peer = Arc::new(
            tokio::time::timeout(WAIT, RsAssociation::server(rs_config(theirs)))
                .await
                .expect("handshake in time")
                .unwrap(),
        );
        assert_eq!(next_event(&mut rx).await, SctpEvent::Connected);

        // A DCEP-negotiated channel as a plain RTCPeerConnection would open it.
        let dc = webrtc_data::data_channel::DataChannel::dial(
            &peer,
            4,
            webrtc_data::data_channel::Config {
                channel_type:
                    webrtc_data::message::message_channel_open::ChannelType::PartialReliableRexmitUnordered,
                negotiated: false,
                priority: 256,
                reliability_parameter: 5,
                label: "chat".into(),
                protocol: "proto".into(),
                max_message_size: 0,
            },
        )
        .await
        .unwrap();
        match next_event(&mut rx).await {
            SctpEvent::Message {
                stream_id: 4,
                ppid: Ppid::Dcep,
                data,
            } => match handle_dcep(4, &data).unwrap() {
                DcepAction::Opened { open, .. } => {
                    assert_eq!(open.label, "chat");
                    assert_eq!(open.protocol, "proto");
                    assert_eq!(open.priority, 256);
                    assert_eq!(
                        open.reliability,
                        Reliability {
                            ordered: false,
                            partial: PartialReliability::MaxRetransmits(5)
                        }
                    );
                }
                other => panic!("unexpected {other:?}"),
            },
            other => panic!("unexpected {other:?}"),
        }
        dc.write_data_channel(&Bytes::from_static(b"hi bot"), true)
            .await
            .unwrap();
        let mut buf = vec![0u8; 1024];
        // The ACK is consumed inside webrtc-data; the echo comes back as a string.
        let (n, is_string) = tokio::time::timeout(WAIT, dc.read_data_channel(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(is_string);
        assert_eq!(&buf[..n], b"hi bot");
        assert_eq!(
            next_event(&mut rx).await,
            SctpEvent::Message {
                stream_id: 4,
                ppid: Ppid::String,
                data: b"hi bot".to_vec()
            }
        );

        peer.shutdown().await.unwrap();
        assert_eq!(next_event(&mut rx).await, SctpEvent::Closed);
        let counters = tokio::time::timeout(WAIT, ours).await.unwrap().unwrap();
        assert_eq!(counters.malformed_packets, 0);
    }
}
