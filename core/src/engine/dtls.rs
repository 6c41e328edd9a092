//! DTLS glue: starting a transport's sans-IO [`DtlsSession`], feeding it records and timeouts, and
//! acting on what it produced (records to the selected tuple, SRTP keys and SCTP on connect, SCTP
//! packets in, failure and close).

use super::*;

impl Engine {
    /// Starts the transport's DTLS session at `now` once `connect()` gave role and fingerprint
    /// (as client also once ICE has a path), and replays records that arrived before it.
    pub(super) fn maybe_start_dtls(&mut self, key: TransportKey, now: Instant) {
        let t = &mut self.transports[key];
        let has_path = t.route.is_some();
        let id = t.id;
        let Some(w) = t.webrtc_mut() else { return };
        if w.dtls.is_some() || w.dtls_state != DtlsState::New {
            return;
        }
        let (Some(role), Some(fp)) = (w.dtls_role, w.remote_fingerprint.clone()) else {
            return;
        };
        // As server we may wait for the ClientHello at once; as client we need a path to send on.
        if role == DtlsRole::Client && !has_path {
            return;
        }
        let mut session = DtlsSession::new(role, &self.cert, fp, now);
        for d in w.early_dtls.drain(..) {
            session.handle_input(&d, now);
        }
        w.dtls = Some(session);
        w.dtls_state = DtlsState::Connecting;
        self.events.push_back(EngineEvent::DtlsStateChange {
            transport: id,
            state: DtlsState::Connecting,
            reason: None,
        });
        self.drive_dtls(key, now);
    }

    /// A DTLS record received on transport `key`'s path.
    pub(super) fn handle_dtls_record(&mut self, key: TransportKey, record: &[u8], now: Instant) {
        let Some(w) = self.transports[key].webrtc_mut() else {
            return;
        };
        if w.dtls.is_none() && w.dtls_state == DtlsState::New {
            if w.remote_fingerprint.is_none() {
                // Before connect(): keep a few (the ClientHello) to replay when it comes.
                if w.early_dtls.len() < 8 {
                    w.early_dtls.push(record.to_vec());
                }
                return;
            }
            self.maybe_start_dtls(key, now);
        }
        let Some(d) = self.transports[key]
            .webrtc_mut()
            .and_then(|w| w.dtls.as_mut())
        else {
            return;
        };
        d.handle_input(record, now);
        self.drive_dtls(key, now);
    }

    /// Per tick: starts sessions whose `connect()` came since, and runs due DTLS timers
    /// (retransmissions, the handshake deadline).
    pub(super) fn dtls_timers(&mut self, now: Instant) {
        for key in self.transports.slots() {
            let Some(w) = self.transports.get_mut(key).and_then(|t| t.webrtc_mut()) else {
                continue;
            };
            match &mut w.dtls {
                Some(d) => {
                    if d.poll_timeout().is_some_and(|t| t <= now) {
                        d.handle_timeout(now);
                        self.drive_dtls(key, now);
                    }
                }
                None => {
                    if w.dtls_state == DtlsState::New && w.remote_fingerprint.is_some() {
                        self.maybe_start_dtls(key, now);
                    }
                }
            }
        }
    }

    /// Drains transport `key`'s DTLS session: records go to its selected tuple, application data
    /// into its SCTP association, and connect/failure/close change its state.
    pub(super) fn drive_dtls(&mut self, key: TransportKey, now: Instant) {
        let mut sctp_input = false;
        let mut keys = None;
        let mut end = None;
        {
            let Some(t) = self.transports.get_mut(key) else {
                return;
            };
            let route = t.route;
            let TransportKind::WebRtc(w) = &mut t.kind else {
                return;
            };
            let Some(d) = w.dtls.as_mut() else { return };
            while let Some(out) = d.poll_output() {
                match out {
                    DtlsOutput::Transmit(record) => {
                        if let Some(route) = route {
                            self.tx.push(record, route);
                        }
                    }
                    DtlsOutput::ApplicationData(data) => {
                        if let Some(sctp) = w.sctp.as_mut() {
                            sctp.handle_input(now, data);
                            sctp_input = true;
                        }
                    }
                    DtlsOutput::Connected {
                        profile,
                        material,
                        we_are_client,
                    } => {
                        keys = Some((
                            srtp::contexts_from_dtls(profile, material, we_are_client),
                            we_are_client,
                        ));
                        // SCTP starts below; its first packets need the rest drained first.
                        break;
                    }
                    DtlsOutput::Failed(reason) => {
                        end = Some(Some(reason));
                        break;
                    }
                    DtlsOutput::Closed => {
                        end = Some(None);
                        break;
                    }
                }
            }
        }
        if let Some((contexts, we_are_client)) = keys {
            match contexts {
                Ok((outbound, inbound)) => {
                    let t = &mut self.transports[key];
                    t.srtp_out = Some(outbound);
                    t.srtp_in = Some(inbound);
                    let id = t.id;
                    if let Some(w) = t.webrtc_mut() {
                        w.dtls_state = DtlsState::Connected;
                    }
                    self.events.push_back(EngineEvent::DtlsStateChange {
                        transport: id,
                        state: DtlsState::Connected,
                        reason: None,
                    });
                    self.start_sctp(key, we_are_client, now);
                    // Receivers are ready now: ask for keyframes for their video.
                    let consumers = self.transports[key].consumers.clone();
                    for c in consumers {
                        self.consumer_wants_keyframe(c, now);
                    }
                    // Whatever came after the handshake in the same flight.
                    self.drive_dtls(key, now);
                }
                Err(e) => self.dtls_failed(key, format!("SRTP keys: {e}")),
            }
            return;
        }
        match end {
            Some(Some(reason)) => self.dtls_failed(key, reason),
            Some(None) => self.dtls_closed(key),
            None => {
                if sctp_input {
                    self.process_sctp(key, now);
                }
            }
        }
    }

    fn dtls_closed(&mut self, key: TransportKey) {
        let t = &mut self.transports[key];
        if let Some(w) = t.webrtc_mut() {
            w.dtls_state = DtlsState::Closed;
            w.dtls = None;
        }
        t.srtp_out = None;
        let id = t.id;
        self.events.push_back(EngineEvent::DtlsStateChange {
            transport: id,
            state: DtlsState::Closed,
            reason: None,
        });
    }

    pub(super) fn dtls_failed(&mut self, key: TransportKey, reason: String) {
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

    /// Sends `close_notify` on a transport that is being closed (best effort: one datagram).
    pub(super) fn close_dtls(&mut self, key: TransportKey) {
        let t = &mut self.transports[key];
        let route = t.route;
        let Some(d) = t.webrtc_mut().and_then(|w| w.dtls.as_mut()) else {
            return;
        };
        if !d.is_connected() {
            return;
        }
        d.close();
        while let Some(out) = d.poll_output() {
            if let (DtlsOutput::Transmit(record), Some(route)) = (out, route) {
                self.tx.push(record, route);
            }
        }
    }
}
