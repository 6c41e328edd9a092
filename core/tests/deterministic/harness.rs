//! The in-memory harness of the deterministic engine tests: one [`Engine`], test peers that do
//! what a browser does (ICE-lite checks with USE-CANDIDATE, a DTLS client handshake, SRTP/SRTCP
//! with the exported keys, optionally SCTP over DTLS), datagrams moved in memory and a virtual
//! clock. Nothing here opens a socket, sleeps or reads the clock after start: [`Sim::run_until`]
//! moves packets until the network is quiet, then jumps time to the next timer of the engine or a
//! peer (bounded in steps), like quinn-proto's test `Pair::drive`.
//!
//! The peers use ringsfu-core's own sans-IO protocol modules (STUN writer, `DtlsSession` in client
//! role, `SrtpContext`, `SctpAssociation`, RTCP writers): the point here is determinism and speed,
//! not independence (the webrtc-rs peer of `webrtc_e2e.rs` covers interop).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use ringsfu_core::api::{DtlsParameters, WebRtcTransportInfo};
use ringsfu_core::dtls::{DtlsCertificate, DtlsOutput, DtlsRole, DtlsSession, Fingerprint};
use ringsfu_core::engine::{Engine, EngineEvent, ListenInfo, PacketSource, WebRtcTransportOptions};
use ringsfu_core::io::{Route, PACKET_BUF_SIZE};
use ringsfu_core::rtcp::{self, RtcpPacket};
use ringsfu_core::sctp::{Ppid, Reliability, SctpAssociation, SctpConfig, SctpEvent};
use ringsfu_core::srtp::{self, SrtpContext};
use ringsfu_core::stun::{BindingRequest, Class, StunMessage};
use ringsfu_core::tuple::{Protocol, TransportTuple};
use uuid::Uuid;

/// The engine's one UDP socket (id 0) listens here.
pub const SERVER: &str = "10.0.0.1:4443";
/// The virtual wall clock at virtual time zero, since the Unix epoch (2023-11-14T22:13:20Z): sender
/// reports' NTP times and stats timestamps are reproducible.
pub const WALL_START: Duration = Duration::from_secs(1_700_000_000);
/// A browser sends consent checks about every 5 s (RFC 7675: 4-6 s).
pub const CONSENT_INTERVAL: Duration = Duration::from_secs(5);
/// Upper bound of loop iterations of one `run_until` (a livelock fails the test, never hangs it).
const MAX_STEPS: usize = 200_000;

/// Index of a peer in [`Sim::peers`].
pub type PeerId = usize;

/// A received packet with the virtual time it arrived (since the start).
#[derive(Debug, Clone)]
pub struct Received {
    /// Virtual time since the start of the simulation.
    pub at: Duration,
    /// The decrypted packet.
    pub data: Vec<u8>,
}

/// A browser-like peer of one WebRtcTransport.
pub struct Peer {
    /// Where its datagrams come from.
    pub addr: SocketAddr,
    /// The server transport it talks to.
    pub transport: Uuid,
    /// The transport's data as `create_webrtc_transport` returned it.
    pub info: WebRtcTransportInfo,
    local_ufrag: String,
    cert: DtlsCertificate,
    dtls: Option<DtlsSession>,
    srtp_out: Option<SrtpContext>,
    srtp_in: Option<SrtpContext>,
    want_sctp: bool,
    /// Its SCTP association (once DTLS connected, when the transport has SCTP).
    pub sctp: Option<SctpAssociation>,
    /// Send ICE consent checks every [`CONSENT_INTERVAL`] (a test turns this off to go silent).
    pub consent: bool,
    next_check: Option<Instant>,
    /// When the last binding request went out.
    pub last_check: Option<Instant>,
    /// Binding success responses received.
    pub ice_responses: usize,
    /// Decrypted RTP received.
    pub rtp: Vec<Received>,
    /// Decrypted RTCP compound packets received.
    pub rtcp: Vec<Received>,
    /// SCTP events of its association.
    pub sctp_events: Vec<SctpEvent>,
    /// The server sent DTLS close_notify.
    pub dtls_closed: bool,
    outbox: VecDeque<Vec<u8>>,
    txid: u32,
    id: u8,
}

impl Peer {
    /// Whether DTLS is up and SRTP keys exist.
    pub fn connected(&self) -> bool {
        self.srtp_out.is_some()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let check = self.next_check.filter(|_| self.consent);
        let dtls = self.dtls.as_ref().and_then(|d| d.poll_timeout());
        let sctp = self.sctp.as_ref().and_then(|s| s.poll_timeout());
        [check, dtls, sctp].into_iter().flatten().min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.consent && self.next_check.is_some_and(|t| t <= now) {
            self.send_check(now);
        }
        if let Some(d) = self.dtls.as_mut() {
            if d.poll_timeout().is_some_and(|t| t <= now) {
                d.handle_timeout(now);
            }
        }
        if let Some(s) = self.sctp.as_mut() {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(now);
            }
        }
        self.pump(now);
    }

    /// Queues a STUN binding request with USE-CANDIDATE (a controlling browser's check).
    pub fn send_check(&mut self, now: Instant) {
        self.txid += 1;
        let mut tid = [0u8; 12];
        tid[0] = self.id;
        tid[8..].copy_from_slice(&self.txid.to_be_bytes());
        let username = format!(
            "{}:{}",
            self.info.ice_parameters.username_fragment, self.local_ufrag
        );
        let pwd = self.info.ice_parameters.password.clone();
        let mut req = BindingRequest::new(tid, &username, pwd.as_bytes());
        req.use_candidate = true;
        let mut buf = [0u8; 512];
        let n = req.write(&mut buf).expect("binding request");
        self.outbox.push_back(buf[..n].to_vec());
        self.last_check = Some(now);
        self.next_check = Some(now + CONSENT_INTERVAL);
    }

    /// Encrypts and queues an RTP packet.
    pub fn send_rtp(&mut self, packet: &[u8]) {
        let ctx = self.srtp_out.as_mut().expect("peer not connected");
        let mut b = packet.to_vec();
        b.resize(packet.len() + 64, 0);
        let n = ctx.protect_rtp(&mut b, packet.len()).expect("protect rtp");
        b.truncate(n);
        self.outbox.push_back(b);
    }

    /// Sends a message on the peer's SCTP association (queued as DTLS records at once).
    pub fn sctp_send(&mut self, stream: u16, ppid: Ppid, data: &[u8], now: Instant) {
        self.sctp
            .as_mut()
            .expect("no SCTP association")
            .send(stream, ppid, data, Reliability::RELIABLE_ORDERED)
            .expect("SCTP send");
        self.pump(now);
    }

    /// Encrypts and queues an RTCP compound packet.
    pub fn send_rtcp(&mut self, packet: &[u8]) {
        let ctx = self.srtp_out.as_mut().expect("peer not connected");
        let mut b = packet.to_vec();
        b.resize(packet.len() + 64, 0);
        let n = ctx
            .protect_rtcp(&mut b, packet.len())
            .expect("protect rtcp");
        b.truncate(n);
        self.outbox.push_back(b);
    }

    fn receive(&mut self, data: &[u8], now: Instant, at: Duration) {
        match data.first().copied().unwrap_or(255) {
            0..=3 => {
                let msg = StunMessage::parse(data).expect("STUN from the engine");
                assert_eq!(msg.class(), Class::SuccessResponse, "ICE check refused");
                self.ice_responses += 1;
                if self.dtls.is_none() {
                    // A browser starts DTLS once a check succeeded.
                    let fp: Fingerprint = self
                        .info
                        .dtls_parameters
                        .fingerprints
                        .iter()
                        .find(|f| f.algorithm == "sha-256")
                        .cloned()
                        .expect("sha-256 fingerprint");
                    self.dtls = Some(DtlsSession::new(DtlsRole::Client, &self.cert, fp, now));
                }
            }
            20..=63 => {
                if let Some(d) = self.dtls.as_mut() {
                    d.handle_input(data, now);
                }
            }
            128..=191 => {
                let mut b = data.to_vec();
                if rtcp::is_rtcp(data) {
                    let ctx = self.srtp_in.as_mut().expect("SRTCP before keys");
                    let n = ctx.unprotect_rtcp(&mut b, data.len()).expect("SRTCP");
                    b.truncate(n);
                    self.rtcp.push(Received { at, data: b });
                } else {
                    let ctx = self.srtp_in.as_mut().expect("SRTP before keys");
                    let n = ctx.unprotect_rtp(&mut b, data.len()).expect("SRTP");
                    b.truncate(n);
                    self.rtp.push(Received { at, data: b });
                }
            }
            other => panic!("peer got a datagram starting with {other}"),
        }
        self.pump(now);
    }

    /// Drains DTLS and SCTP until neither has more to say.
    fn pump(&mut self, now: Instant) {
        for _ in 0..100 {
            let mut progressed = false;
            let mut app_data = Vec::new();
            if let Some(d) = self.dtls.as_mut() {
                while let Some(out) = d.poll_output() {
                    progressed = true;
                    match out {
                        DtlsOutput::Transmit(r) => self.outbox.push_back(r.to_vec()),
                        DtlsOutput::Connected {
                            profile,
                            material,
                            we_are_client,
                        } => {
                            let (out, inp) =
                                srtp::contexts_from_dtls(profile, material, we_are_client)
                                    .expect("SRTP keys");
                            self.srtp_out = Some(out);
                            self.srtp_in = Some(inp);
                            if self.want_sctp {
                                // The DTLS client opens the association (RFC 8841).
                                let mut a = SctpAssociation::new(SctpConfig::default(), now);
                                a.connect(now).expect("SCTP connect");
                                self.sctp = Some(a);
                            }
                        }
                        DtlsOutput::ApplicationData(a) => app_data.push(a.to_vec()),
                        DtlsOutput::Failed(reason) => panic!("peer DTLS failed: {reason}"),
                        DtlsOutput::Closed => self.dtls_closed = true,
                    }
                }
            }
            if let Some(s) = self.sctp.as_mut() {
                for a in &app_data {
                    s.handle_input(now, a);
                }
                while let Some(p) = s.poll_transmit(now) {
                    progressed = true;
                    if let Some(d) = self.dtls.as_mut() {
                        d.send_application_data(&p);
                    }
                }
                while let Some(ev) = s.poll_event() {
                    progressed = true;
                    self.sctp_events.push(ev);
                }
            }
            if !progressed {
                return;
            }
        }
        panic!("peer protocol stack does not settle");
    }

    /// RTCP feedback the peer received: (time, PLI or FIR media SSRC) in order.
    pub fn keyframe_requests(&self) -> Vec<(Duration, u32)> {
        let mut out = vec![];
        for r in &self.rtcp {
            for p in rtcp::RtcpIter::new(&r.data).flatten() {
                match p {
                    RtcpPacket::Pli { media_ssrc, .. } => out.push((r.at, media_ssrc)),
                    RtcpPacket::Fir { entries, .. } => {
                        out.extend(entries.map(|e| (r.at, e.ssrc)));
                    }
                    _ => {}
                }
            }
        }
        out
    }
}

/// Decides whether a datagram from the engine to a peer is lost: `(peer, datagram) -> drop?`.
pub type LossFilter = Box<dyn FnMut(PeerId, &[u8]) -> bool>;

/// One engine, its peers, a virtual clock.
pub struct Sim {
    /// The engine under test.
    pub engine: Engine,
    /// The peers.
    pub peers: Vec<Peer>,
    /// Every engine event with the virtual time it was drained at.
    pub events: Vec<(Duration, EngineEvent)>,
    /// Datagrams from the engine to peers are passed through this (loss).
    pub loss: Option<LossFilter>,
    base: Instant,
    now: Instant,
    server: SocketAddr,
    cert: DtlsCertificate,
    rx_buf: Box<[u8]>,
}

impl Sim {
    /// A fresh engine at virtual time zero.
    pub fn new() -> Self {
        let server: SocketAddr = SERVER.parse().unwrap();
        let listen = ListenInfo {
            udp: Some((0, server)),
            tcp: None,
            announced_address: None,
        };
        // Virtual time starts an hour ahead of the real clock, so nothing read from the real
        // clock (the peers' crates) can be in the virtual future. The engine reads no clock: every
        // call gets the virtual `now`, and its wall clock and RNG seed are fixed too.
        let base = Instant::now() + Duration::from_secs(3600);
        let engine = Engine::new(
            0,
            listen,
            DtlsCertificate::generate().unwrap(),
            base,
            SystemTime::UNIX_EPOCH + WALL_START,
            [7; 32],
        );
        Sim {
            engine,
            peers: Vec::new(),
            events: Vec::new(),
            loss: None,
            base,
            now: base,
            server,
            cert: DtlsCertificate::generate().unwrap(),
            rx_buf: vec![0u8; PACKET_BUF_SIZE].into_boxed_slice(),
        }
    }

    /// The virtual now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The virtual wall clock: [`WALL_START`] plus the virtual time since the start.
    pub fn wall(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + WALL_START + self.elapsed()
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    /// A virtual instant as time since the start (how events and packets are stamped).
    pub fn since_start(&self, t: std::time::Instant) -> Duration {
        t - self.base
    }

    /// Creates a WebRtcTransport on `router` and a peer for it; the peer's DTLS parameters are
    /// given to `connect` (role client, as mediasoup-client). Nothing is sent yet.
    pub fn add_peer(&mut self, router: &Uuid, opts: WebRtcTransportOptions) -> PeerId {
        let want_sctp = opts.sctp.is_some();
        let info = self
            .engine
            .create_webrtc_transport(router, opts, self.now)
            .expect("create transport");
        let transport: Uuid = info.id.parse().unwrap();
        let fp = self.cert.fingerprints().last().unwrap().clone();
        self.engine
            .connect_webrtc_transport(
                &transport,
                &DtlsParameters {
                    role: Some("client".into()),
                    fingerprints: vec![fp],
                },
                self.now,
            )
            .expect("connect transport");
        let id = self.peers.len();
        self.peers.push(Peer {
            addr: SocketAddr::from(([10, 0, 1, id as u8 + 1], 50_000)),
            transport,
            info,
            local_ufrag: format!("peer{id}"),
            cert: self.cert.clone(),
            dtls: None,
            srtp_out: None,
            srtp_in: None,
            want_sctp,
            sctp: None,
            consent: true,
            next_check: None,
            last_check: None,
            ice_responses: 0,
            rtp: Vec::new(),
            rtcp: Vec::new(),
            sctp_events: Vec::new(),
            dtls_closed: false,
            outbox: VecDeque::new(),
            txid: 0,
            id: id as u8,
        });
        self.drain_events();
        id
    }

    /// Starts the peer's ICE checks and runs until its DTLS (and SCTP, if any) is up.
    pub fn connect(&mut self, peer: PeerId) {
        let now = self.now;
        self.peers[peer].send_check(now);
        let limit = self.now + Duration::from_secs(5);
        self.run_until_cond(limit, |s| {
            let p = &s.peers[peer];
            p.connected()
                && p.sctp
                    .as_ref()
                    .is_none_or(|a| a.state() == ringsfu_core::sctp::SctpState::Connected)
        });
        assert!(self.peers[peer].connected(), "peer {peer} did not connect");
    }

    /// Moves datagrams both ways until the network is quiet (bounded).
    pub fn exchange(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            // Engine → peers.
            let out: Vec<(SocketAddr, Vec<u8>)> = self
                .engine
                .tx
                .queued()
                .iter()
                .map(|e| match e.route {
                    Route::Udp { socket: 0, dest } => (dest, e.buf[..e.len].to_vec()),
                    other => panic!("unexpected route {other:?}"),
                })
                .collect();
            self.engine.tx.clear();
            let at = self.elapsed();
            for (dest, data) in out {
                moved = true;
                let Some(i) = self.peers.iter().position(|p| p.addr == dest) else {
                    continue; // a peer that is gone
                };
                if let Some(loss) = self.loss.as_mut() {
                    if loss(i, &data) {
                        continue;
                    }
                }
                self.peers[i].receive(&data, self.now, at);
            }
            // Peers → engine.
            for i in 0..self.peers.len() {
                while let Some(d) = self.peers[i].outbox.pop_front() {
                    moved = true;
                    let src = PacketSource {
                        socket: 0,
                        tcp_conn: None,
                        tuple: TransportTuple {
                            local: self.server,
                            remote: self.peers[i].addr,
                            protocol: Protocol::Udp,
                        },
                    };
                    self.rx_buf[..d.len()].copy_from_slice(&d);
                    self.engine
                        .handle_packet(src, &mut self.rx_buf, d.len(), self.now);
                    if self.rx_buf.len() != PACKET_BUF_SIZE {
                        self.rx_buf = vec![0u8; PACKET_BUF_SIZE].into_boxed_slice();
                    }
                }
            }
            self.drain_events();
            if !moved {
                return;
            }
        }
        panic!("the network never went quiet");
    }

    /// Collects the engine's events, stamped with the virtual time.
    pub fn drain_events(&mut self) {
        let at = self.elapsed();
        while let Some(ev) = self.engine.poll_event() {
            self.events.push((at, ev));
        }
    }

    fn next_timer(&self) -> Option<Instant> {
        self.peers
            .iter()
            .filter_map(Peer::poll_timeout)
            .chain(self.engine.poll_timeout())
            .min()
    }

    fn fire_timers(&mut self) {
        let now = self.now;
        let wall = self.wall();
        self.engine.handle_timeout(now, wall);
        for p in &mut self.peers {
            p.handle_timeout(now);
        }
    }

    /// Runs until virtual time `deadline`: packets are exchanged, time jumps to each timer.
    pub fn run_until(&mut self, deadline: Instant) {
        self.run_until_cond(deadline, |_| false);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let deadline = self.now + d;
        self.run_until(deadline);
    }

    /// Runs until `done` holds (checked whenever the network is quiet) or virtual time reaches
    /// `deadline`; returns whether `done` held.
    pub fn run_until_cond(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> bool {
        for _ in 0..MAX_STEPS {
            self.exchange();
            if done(self) {
                return true;
            }
            match self.next_timer() {
                Some(t) if t <= deadline => {
                    self.now = self.now.max(t);
                    self.fire_timers();
                }
                _ => {
                    self.now = self.now.max(deadline);
                    self.fire_timers();
                    self.exchange();
                    return done(self);
                }
            }
        }
        panic!("no progress in {MAX_STEPS} steps");
    }

    /// Events drained so far that match `f`, with their times.
    pub fn events_where<T>(&self, f: impl Fn(&EngineEvent) -> Option<T>) -> Vec<(Duration, T)> {
        self.events
            .iter()
            .filter_map(|(at, e)| f(e).map(|t| (*at, t)))
            .collect()
    }
}
