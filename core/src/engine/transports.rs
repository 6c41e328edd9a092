//! Transport lifecycle in the engine: creating and connecting WebRtcTransports (ICE-lite +
//! DTLS) and PlainTransports, DTLS events, ICE restart, and the transport close cascade.

use super::*;
use crate::api::{
    DtlsParameters, IceCandidate, IceParameters, PlainConnectParams, PlainTransportInfo,
    SctpParameters, SrtpParameters, TupleInfo, WebRtcTransportInfo,
};

impl Engine {
    pub(super) fn new_transport(
        &mut self,
        router_key: usize,
        kind: TransportKind,
        now: Instant,
    ) -> usize {
        let id = self.new_id();
        let rtcp_ssrc = self.rng.gen::<u32>() | 1;
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
            created: now,
            rtcp_ssrc,
            bwe: crate::bwe::TransportBwe::new(),
            demux: DemuxKeys::default(),
            mids: ortc::ConsumerMidAllocator::new(),
        });
        self.transport_ids.insert(id, key);
        self.routers[router_key].transports.push(key);
        if self.next_tick.is_none() {
            self.next_tick = Some(now);
        }
        key
    }

    // ---------------------------------------------------------------- WebRtcTransport

    /// Creates a WebRtcTransport on the worker's shared ports; returns its data (mediasoup's
    /// shape: id, iceParameters, iceCandidates, dtlsParameters, sctpParameters).
    pub fn create_webrtc_transport(
        &mut self,
        router: &Uuid,
        opts: WebRtcTransportOptions,
        now: Instant,
    ) -> Result<WebRtcTransportInfo, EngineError> {
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
            &crate::ice::random_ufrag(&mut self.rng)[..30]
        );
        let pwd = crate::ice::random_password(&mut self.rng);
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
        let key = self.new_transport(router_key, TransportKind::WebRtc(Box::new(state)), now);
        self.ufrags.insert(ufrag.clone(), key);
        self.transports[key].demux.ufrags.push(ufrag);
        self.transports[key]
            .bwe
            .set_initial_outgoing_bitrate(opts.initial_available_outgoing_bitrate);
        self.webrtc_transport_data(key, &opts)
    }

    pub(super) fn candidates(&self, opts: &WebRtcTransportOptions) -> Vec<IceCandidate> {
        let mut out = Vec::new();
        let announce = |addr: SocketAddr| {
            self.listen
                .announced_address
                .clone()
                .unwrap_or_else(|| addr.ip().to_string())
        };
        let udp_first = opts.prefer_udp || !opts.enable_tcp;
        let mut push = |proto: &'static str, addr: SocketAddr, index: u32| {
            let local_pref = 10000 - 100 * index;
            let priority: u32 = (1 << 24) * 64 + (1 << 8) * local_pref + (256 - 1);
            let ip = announce(addr);
            out.push(IceCandidate {
                foundation: format!("{proto}candidate"),
                priority,
                ip: ip.clone(),
                address: ip,
                protocol: proto,
                port: addr.port(),
                candidate_type: "host",
                tcp_type: (proto == "tcp").then_some("passive"),
            });
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

    pub(super) fn webrtc_transport_data(
        &self,
        key: usize,
        opts: &WebRtcTransportOptions,
    ) -> Result<WebRtcTransportInfo, EngineError> {
        let t = &self.transports[key];
        let w = t
            .webrtc()
            .ok_or_else(|| EngineError::State("not webrtc".into()))?;
        Ok(WebRtcTransportInfo {
            id: t.id.to_string(),
            ice_parameters: IceParameters {
                username_fragment: w.ice.local_ufrag().to_string(),
                password: w.ice.local_password().to_string(),
                ice_lite: true,
            },
            ice_candidates: self.candidates(opts),
            dtls_parameters: DtlsParameters {
                role: Some("auto".into()),
                fingerprints: self.cert.fingerprints().to_vec(),
            },
            ice_role: "controlled",
            ice_state: "new",
            dtls_state: "new",
            sctp_parameters: w.sctp_streams.map(|(os, mis)| SctpParameters {
                port: 5000,
                os,
                mis,
                max_message_size: 262144,
                send_buffer_size: 262144,
                sctp_buffered_amount: 0,
                is_data_channel: true,
            }),
        })
    }

    /// Applies the remote `dtlsParameters` (`{role, fingerprints}`): decides our DTLS role; the
    /// handshake starts with the next DTLS record or engine tick (as client: once ICE has a path).
    pub fn connect_webrtc_transport(
        &mut self,
        transport: &Uuid,
        dtls_parameters: &DtlsParameters,
        _now: Instant,
    ) -> Result<(), EngineError> {
        let key = self.transport_key(transport)?;
        let fp: Fingerprint = dtls_parameters
            .fingerprints
            .first()
            .cloned()
            .ok_or_else(|| EngineError::Invalid("dtlsParameters.fingerprints is empty".into()))?;
        if crate::dtls::fingerprint_of(b"", &fp.algorithm.to_ascii_lowercase()).is_none() {
            return Err(EngineError::Invalid(format!(
                "dtlsParameters.fingerprints[0].algorithm unsupported: {}",
                fp.algorithm
            )));
        }
        let role = match dtls_parameters.role.as_deref() {
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
        // The session starts with the next DTLS record or engine tick (they bring `now`).
        Ok(())
    }

    /// New ICE credentials (ICE restart); the old ones stay valid until the new ones are used.
    pub fn restart_ice(
        &mut self,
        transport: &Uuid,
        _now: Instant,
    ) -> Result<IceParameters, EngineError> {
        let key = self.transport_key(transport)?;
        let ufrag = format!(
            "w{}{}",
            self.worker_index,
            &crate::ice::random_ufrag(&mut self.rng)[..30]
        );
        let pwd = crate::ice::random_password(&mut self.rng);
        let w = self.transports[key]
            .webrtc_mut()
            .ok_or_else(|| EngineError::Invalid("not a WebRtcTransport".into()))?;
        w.ice.restart(ufrag.clone(), pwd.clone());
        self.ufrags.insert(ufrag.clone(), key);
        self.transports[key].demux.ufrags.push(ufrag.clone());
        Ok(IceParameters {
            username_fragment: ufrag,
            password: pwd,
            ice_lite: true,
        })
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
        now: Instant,
    ) -> Result<PlainTransportInfo, EngineError> {
        let router_key = self.router_key(router)?;
        let mut local_srtp = None;
        let mut srtp_out = None;
        if enable_srtp {
            let suite = srtp_crypto_suite.unwrap_or("AES_CM_128_HMAC_SHA1_80");
            let profile = SrtpProfile::from_name(suite).ok_or_else(|| {
                EngineError::Invalid(format!("srtpCryptoSuite unsupported: {suite}"))
            })?;
            let mut key = vec![0u8; profile.master_key_len() + profile.master_salt_len()];
            self.rng.fill_bytes(&mut key);
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
        let key = self.new_transport(router_key, TransportKind::Plain(Box::new(state)), now);
        self.transports[key].srtp_out = srtp_out;
        self.plain_sockets.insert(socket.0, key);
        self.transports[key].demux.plain_sockets.push(socket.0);
        if let Some((rs, _)) = rtcp_socket {
            self.plain_sockets.insert(rs, key);
            self.transports[key].demux.plain_sockets.push(rs);
        }
        self.plain_transport_data(key)
            .ok_or_else(|| EngineError::State("not a PlainTransport".into()))
    }

    /// A PlainTransport's data (`None` for another kind).
    pub(super) fn plain_transport_data(&self, key: usize) -> Option<PlainTransportInfo> {
        let t = &self.transports[key];
        let TransportKind::Plain(p) = &t.kind else {
            return None;
        };
        let local_ip = self
            .listen
            .announced_address
            .clone()
            .unwrap_or_else(|| p.local.ip().to_string());
        let tuple = |local: SocketAddr, remote: Option<SocketAddr>| TupleInfo {
            local_address: local_ip.clone(),
            local_ip: local_ip.clone(),
            local_port: local.port(),
            remote_ip: remote.map(|r| r.ip().to_string()),
            remote_port: remote.map(|r| r.port()),
            protocol: "udp",
        };
        Some(PlainTransportInfo {
            id: t.id.to_string(),
            tuple: tuple(p.local, p.remote),
            rtcp_tuple: p.rtcp_socket.map(|(_, a)| tuple(a, p.remote_rtcp)),
            srtp_parameters: p.local_srtp.as_ref().map(|(suite, key)| SrtpParameters {
                crypto_suite: suite.clone(),
                key_base64: key.clone(),
            }),
        })
    }

    /// `connect({ip, port, rtcpPort, srtpParameters})` of a PlainTransport.
    pub fn connect_plain_transport(
        &mut self,
        transport: &Uuid,
        params: &PlainConnectParams,
        _now: Instant,
    ) -> Result<PlainTransportInfo, EngineError> {
        let key = self.transport_key(transport)?;
        let t = &mut self.transports[key];
        let TransportKind::Plain(p) = &mut t.kind else {
            return Err(EngineError::Invalid("not a PlainTransport".into()));
        };
        if let Some(sp) = &params.srtp_parameters {
            if !p.enable_srtp {
                return Err(EngineError::Invalid(
                    "srtpParameters given but SRTP is not enabled".into(),
                ));
            }
            let suite = sp.crypto_suite.as_str();
            let key_b64 = sp.key_base64.as_str();
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
                .ip
                .as_deref()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| EngineError::Invalid("ip missing or invalid".into()))?;
            let port = params
                .port
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
                        .rtcp_port
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
        self.plain_transport_data(key)
            .ok_or_else(|| EngineError::State("not a PlainTransport".into()))
    }

    // ---------------------------------------------------------------- closing

    /// Closes a transport with its producers (their consumers close too) and consumers.
    pub fn close_transport(&mut self, transport: &Uuid, now: Instant) -> Result<(), EngineError> {
        let key = self.transport_key(transport)?;
        self.close_dtls(key);
        let producers = self.transports[key].producers.clone();
        for p in producers {
            let pid = self.producers[p].id;
            self.events
                .push_back(EngineEvent::ProducerTransportClosed { producer: pid });
            let _ = self.close_producer(&pid, now);
        }
        let consumers = self.transports[key].consumers.clone();
        for c in consumers {
            let cid = self.consumers[c].id;
            self.events
                .push_back(EngineEvent::ConsumerTransportClosed { consumer: cid });
            let _ = self.close_consumer(&cid, now);
        }
        let data_producers = self.transports[key].data_producers.clone();
        for d in data_producers {
            let id = self.data_producers[d].id;
            self.events
                .push_back(EngineEvent::DataProducerTransportClosed { data_producer: id });
            let _ = self.close_data_producer(&id, now);
        }
        let data_consumers = self.transports[key].data_consumers.clone();
        for d in data_consumers {
            let id = self.data_consumers[d].id;
            self.events
                .push_back(EngineEvent::DataConsumerTransportClosed { data_consumer: id });
            let _ = self.close_data_consumer(&id, now);
        }
        let t = self.transports.remove(key);
        self.retired.transports.add(&t.counters);
        self.transport_ids.remove(transport);
        // Remove exactly the demultiplexer entries this transport registered (an entry another
        // transport took over since is left alone).
        for u in &t.demux.ufrags {
            if self.ufrags.get(u) == Some(&key) {
                self.ufrags.remove(u);
            }
        }
        for p in &t.demux.udp_paths {
            if self.udp_paths.get(p) == Some(&key) {
                self.udp_paths.remove(p);
            }
        }
        for c in &t.demux.tcp_conns {
            if self.tcp_paths.get(c) == Some(&key) {
                self.tcp_paths.remove(c);
            }
        }
        for s in &t.demux.plain_sockets {
            if self.plain_sockets.get(s) == Some(&key) {
                self.plain_sockets.remove(s);
                self.released_sockets.push(*s);
            }
        }
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
}
