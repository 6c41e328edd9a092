//! DTLS 1.2 (RFC 6347, DTLS-SRTP RFC 5763/5764) for WebRtcTransports, sans-IO, on the `dimpl`
//! crate (the DTLS state machine str0m uses).
//!
//! A [`DtlsSession`] is a plain value owned by its transport: the engine feeds it received records
//! with [`DtlsSession::handle_input`], runs its retransmission timer with
//! [`DtlsSession::handle_timeout`] when [`DtlsSession::poll_timeout`] says so, and drains what it
//! produced with [`DtlsSession::poll_output`] (records to send, `Connected` with the SRTP keying
//! material, application data for SCTP, failure, close). No task, no channel, no clock: time is
//! always an argument.
//!
//! Randomness: the handshake's random values, ECDHE keys and signatures come from `dimpl`'s own
//! CSPRNG (operating-system entropy). That is cryptographic randomness and deliberately not the
//! engine's seeded test RNG.
//!
//! Measured against the async `dtls` 0.17 crate this replaced: see docs/architecture.md (DTLS).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sha1::Digest as _;

use crate::srtp::SrtpProfile;

/// How long a handshake may take (from the session's start) before it fails.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest DTLS record we emit (handshake flights are fragmented to fit; SCTP packets are smaller).
const MTU: usize = 1200;

/// Errors creating or loading the DTLS certificate.
#[derive(Debug, thiserror::Error)]
pub enum DtlsError {
    /// The certificate could not be generated or parsed.
    #[error("DTLS certificate: {0}")]
    Certificate(String),
    /// The remote signaled no fingerprint or one we cannot check.
    #[error("DTLS fingerprint: {0}")]
    Fingerprint(String),
}

/// A certificate fingerprint as signaled in `dtlsParameters.fingerprints`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint {
    /// `sha-1`, `sha-224`, `sha-256`, `sha-384` or `sha-512`.
    pub algorithm: String,
    /// Upper-case hex bytes separated by `:`.
    pub value: String,
}

/// Hashes DER bytes with the named algorithm into the SDP fingerprint form.
pub fn fingerprint_of(der: &[u8], algorithm: &str) -> Option<Fingerprint> {
    let digest: Vec<u8> = match algorithm {
        "sha-1" => sha1::Sha1::digest(der).to_vec(),
        "sha-224" => sha2::Sha224::digest(der).to_vec(),
        "sha-256" => sha2::Sha256::digest(der).to_vec(),
        "sha-384" => sha2::Sha384::digest(der).to_vec(),
        "sha-512" => sha2::Sha512::digest(der).to_vec(),
        _ => return None,
    };
    let value = digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    Some(Fingerprint {
        algorithm: algorithm.to_string(),
        value,
    })
}

/// The process's DTLS certificate (ECDSA P-256, self-signed), shared by every transport, with the
/// `dimpl` configuration every session uses.
#[derive(Clone)]
pub struct DtlsCertificate {
    cert: dimpl::DtlsCertificate,
    config: Arc<dimpl::Config>,
    fingerprints: Vec<Fingerprint>,
}

impl DtlsCertificate {
    /// Generates a fresh self-signed ECDSA P-256 certificate (once per process, at start).
    pub fn generate() -> Result<Self, DtlsError> {
        let err = |e: rcgen::Error| DtlsError::Certificate(e.to_string());
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?;
        let cert = rcgen::CertificateParams::new(vec!["ringsfu".to_string()])
            .map_err(err)?
            .self_signed(&key)
            .map_err(err)?;
        Self::from_der(cert.der().to_vec(), key.serialize_der())
    }

    /// Loads a certificate and its ECDSA private key from PEM text (both in one string is fine).
    pub fn from_pem(cert_and_key_pem: &str) -> Result<Self, DtlsError> {
        let blocks =
            pem::parse_many(cert_and_key_pem).map_err(|e| DtlsError::Certificate(e.to_string()))?;
        let cert = blocks
            .iter()
            .find(|b| b.tag() == "CERTIFICATE")
            .ok_or_else(|| DtlsError::Certificate("no CERTIFICATE block".into()))?;
        let key = rcgen::KeyPair::from_pem(cert_and_key_pem)
            .map_err(|e| DtlsError::Certificate(format!("private key: {e}")))?;
        Self::from_der(cert.contents().to_vec(), key.serialize_der())
    }

    fn from_der(der: Vec<u8>, pkcs8_key: Vec<u8>) -> Result<Self, DtlsError> {
        // mediasoup-client uses the LAST fingerprint for its SDP: keep sha-256 last.
        let fingerprints = ["sha-1", "sha-224", "sha-384", "sha-512", "sha-256"]
            .iter()
            .filter_map(|alg| fingerprint_of(&der, alg))
            .collect();
        let config = dimpl::Config::builder()
            .mtu(MTU)
            .handshake_timeout(HANDSHAKE_TIMEOUT)
            // Our peers (browsers, mediasoup-client) always present a certificate.
            .require_client_certificate(true)
            .build()
            .map_err(|e| DtlsError::Certificate(format!("DTLS config: {e}")))?;
        Ok(Self {
            cert: dimpl::DtlsCertificate {
                certificate: der,
                private_key: pkcs8_key,
            },
            config: Arc::new(config),
            fingerprints,
        })
    }

    /// Fingerprints of the certificate, one per algorithm, sha-256 last.
    pub fn fingerprints(&self) -> &[Fingerprint] {
        &self.fingerprints
    }
}

/// Our DTLS role on a transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsRole {
    /// We send the ClientHello.
    Client,
    /// We wait for the ClientHello (what mediasoup-client peers get).
    Server,
}

/// What a DTLS session produced; drained with [`DtlsSession::poll_output`].
#[derive(Debug, PartialEq, Eq)]
pub enum DtlsOutput<'a> {
    /// A datagram to send to the transport's selected tuple.
    Transmit(&'a [u8]),
    /// Handshake done and the peer's certificate matched its signaled fingerprint.
    Connected {
        /// The negotiated SRTP protection profile.
        profile: SrtpProfile,
        /// Exported keying material for that profile (RFC 5764 §4.2 layout).
        material: &'a [u8],
        /// Whether we were the DTLS client (decides which half of the material is ours).
        we_are_client: bool,
    },
    /// Application data (an SCTP packet) received over the connection.
    ApplicationData(&'a [u8]),
    /// The handshake or connection failed (timeout, bad fingerprint, fatal alert); the session
    /// is dead and should be dropped.
    Failed(String),
    /// The peer sent `close_notify` after the connection was up.
    Closed,
}

/// What `poll_output` copied into `out` (the borrow is taken after the loop).
enum Pending {
    Transmit(usize),
    Connected(SrtpProfile, usize),
    ApplicationData(usize),
    Failed(String),
    Closed,
}

/// One DTLS connection of a transport (sans-IO).
pub struct DtlsSession {
    dtls: dimpl::Dtls,
    role: DtlsRole,
    remote: Fingerprint,
    deadline: Instant,
    /// When dimpl wants `handle_timeout` next (learned from its `Output::Timeout`).
    timer: Option<Instant>,
    /// The last `now` passed in (dimpl's logical clock).
    now: Instant,
    peer_verified: bool,
    handshake_done: bool,
    keys: Option<(SrtpProfile, dimpl::KeyingMaterial)>,
    connected_reported: bool,
    /// A failure not yet reported; once reported the session is `dead`.
    failure: Option<String>,
    dead: bool,
    closed: bool,
    /// dimpl writes its output here.
    scratch: Vec<u8>,
    /// What `poll_output` returns borrows from here.
    out: Vec<u8>,
}

impl DtlsSession {
    /// Starts a handshake in `role` at `now`. `remote` is the peer's signaled fingerprint: its
    /// certificate must hash to it or the session fails.
    pub fn new(role: DtlsRole, cert: &DtlsCertificate, remote: Fingerprint, now: Instant) -> Self {
        let mut dtls = dimpl::Dtls::new_12(Arc::clone(&cert.config), cert.cert.clone(), now);
        if role == DtlsRole::Client {
            dtls.set_active(true);
        }
        let mut s = Self {
            dtls,
            role,
            remote,
            deadline: now + HANDSHAKE_TIMEOUT,
            timer: None,
            now,
            peer_verified: false,
            handshake_done: false,
            keys: None,
            connected_reported: false,
            failure: None,
            dead: false,
            closed: false,
            scratch: vec![0u8; 2048],
            out: Vec::with_capacity(2048),
        };
        // A client queues its ClientHello here.
        s.handle_timeout(now);
        s
    }

    /// Our role.
    pub fn role(&self) -> DtlsRole {
        self.role
    }

    /// Whether the handshake completed (and the peer certificate was verified).
    pub fn is_connected(&self) -> bool {
        self.connected_reported
    }

    /// Feeds one DTLS record datagram received on the transport's selected tuple at `now`.
    /// Malformed or stray records are dropped inside; a fatal error (alert, bad handshake) is
    /// reported by the next [`Self::poll_output`] as [`DtlsOutput::Failed`].
    pub fn handle_input(&mut self, datagram: &[u8], now: Instant) {
        if self.dead || self.failure.is_some() {
            return;
        }
        self.advance(now);
        if let Err(e) = self.dtls.handle_packet(datagram) {
            self.fail(e.to_string());
        }
    }

    /// Runs retransmission and the handshake deadline; call when [`Self::poll_timeout`] is due
    /// (calling earlier is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.dead || self.failure.is_some() {
            return;
        }
        if !self.connected_reported && now >= self.deadline {
            self.fail("handshake timeout".into());
            return;
        }
        self.advance(now);
    }

    fn advance(&mut self, now: Instant) {
        // dimpl's clock must not run backwards.
        let now = now.max(self.now);
        self.now = now;
        if let Err(e) = self.dtls.handle_timeout(now) {
            self.fail(e.to_string());
        }
    }

    /// When [`Self::handle_timeout`] should run next (`None` once the session is dead).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.dead {
            return None;
        }
        if self.failure.is_some() {
            return Some(self.now);
        }
        let handshake = (!self.connected_reported).then_some(self.deadline);
        match (self.timer, handshake) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sends application data (an SCTP packet) once connected; the record comes out of
    /// [`Self::poll_output`]. Dropped (SCTP retransmits) if the connection is not up.
    pub fn send_application_data(&mut self, data: &[u8]) {
        if !self.connected_reported || self.dead || self.closed {
            return;
        }
        if let Err(e) = self.dtls.send_application_data(data) {
            self.fail(e.to_string());
        }
    }

    /// Starts a graceful close: a connected session queues a `close_notify` alert for
    /// [`Self::poll_output`]; a handshaking one just stops.
    pub fn close(&mut self) {
        if self.dead || self.closed {
            return;
        }
        self.closed = true;
        let _ = self.dtls.close();
    }

    fn fail(&mut self, reason: String) {
        if self.failure.is_none() && !self.dead {
            self.failure = Some(reason);
        }
    }

    /// The next thing the session produced, or `None` when it has nothing more until the next
    /// input or timeout.
    pub fn poll_output(&mut self) -> Option<DtlsOutput<'_>> {
        let pending = self.next_pending()?;
        Some(match pending {
            Pending::Transmit(n) => DtlsOutput::Transmit(&self.out[..n]),
            Pending::ApplicationData(n) => DtlsOutput::ApplicationData(&self.out[..n]),
            Pending::Connected(profile, n) => DtlsOutput::Connected {
                profile,
                material: &self.out[..n],
                we_are_client: self.role == DtlsRole::Client,
            },
            Pending::Failed(reason) => DtlsOutput::Failed(reason),
            Pending::Closed => DtlsOutput::Closed,
        })
    }

    fn next_pending(&mut self) -> Option<Pending> {
        if self.dead {
            return None;
        }
        if let Some(reason) = self.failure.take() {
            self.dead = true;
            return Some(Pending::Failed(reason));
        }
        loop {
            match self.dtls.poll_output(&mut self.scratch) {
                dimpl::Output::Packet(p) => {
                    self.out.clear();
                    self.out.extend_from_slice(p);
                    return Some(Pending::Transmit(self.out.len()));
                }
                dimpl::Output::BufferTooSmall { needed } => self.scratch.resize(needed, 0),
                dimpl::Output::Timeout(t) => {
                    self.timer = Some(t);
                    return self.maybe_connected();
                }
                dimpl::Output::PeerCert(der) => {
                    let alg = self.remote.algorithm.to_ascii_lowercase();
                    match fingerprint_of(der, &alg) {
                        Some(fp) if fp.value.eq_ignore_ascii_case(&self.remote.value) => {
                            self.peer_verified = true;
                        }
                        _ => {
                            self.dead = true;
                            return Some(Pending::Failed(
                                "certificate fingerprint mismatch".into(),
                            ));
                        }
                    }
                }
                dimpl::Output::Connected => self.handshake_done = true,
                dimpl::Output::KeyingMaterial(material, profile) => match srtp_profile(profile) {
                    Some(profile) => self.keys = Some((profile, material)),
                    None => {
                        self.dead = true;
                        return Some(Pending::Failed(format!(
                            "unusable SRTP profile {profile:?}"
                        )));
                    }
                },
                dimpl::Output::ApplicationData(data) => {
                    self.out.clear();
                    self.out.extend_from_slice(data);
                    return Some(Pending::ApplicationData(self.out.len()));
                }
                dimpl::Output::CloseNotify => {
                    self.dead = true;
                    return Some(Pending::Closed);
                }
                // `Output` is non-exhaustive: anything new is not ours to act on.
                _ => {}
            }
        }
    }

    /// At the end of a poll cycle (every event of the step drained, keys included): reports
    /// `Connected` once the handshake finished, the certificate matched and keys exist.
    fn maybe_connected(&mut self) -> Option<Pending> {
        if self.connected_reported || !self.handshake_done {
            return None;
        }
        if !self.peer_verified {
            self.dead = true;
            return Some(Pending::Failed("peer sent no certificate".into()));
        }
        let Some((profile, material)) = self.keys.take() else {
            self.dead = true;
            return Some(Pending::Failed("no SRTP profile negotiated".into()));
        };
        self.connected_reported = true;
        self.out.clear();
        self.out.extend_from_slice(&material);
        Some(Pending::Connected(profile, self.out.len()))
    }
}

fn srtp_profile(p: dimpl::SrtpProfile) -> Option<SrtpProfile> {
    match p {
        dimpl::SrtpProfile::AES128_CM_SHA1_80 => Some(SrtpProfile::Aes128CmHmacSha1_80),
        dimpl::SrtpProfile::AEAD_AES_128_GCM => Some(SrtpProfile::AeadAes128Gcm),
        dimpl::SrtpProfile::AEAD_AES_256_GCM => Some(SrtpProfile::AeadAes256Gcm),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What one side produced in a step: records for the other side and everything else.
    #[derive(Default)]
    struct Drained {
        records: Vec<Vec<u8>>,
        connected: Option<(SrtpProfile, Vec<u8>, bool)>,
        data: Vec<Vec<u8>>,
        failed: Option<String>,
        closed: bool,
    }

    fn drain(s: &mut DtlsSession) -> Drained {
        let mut d = Drained::default();
        while let Some(out) = s.poll_output() {
            match out {
                DtlsOutput::Transmit(r) => d.records.push(r.to_vec()),
                DtlsOutput::Connected {
                    profile,
                    material,
                    we_are_client,
                } => d.connected = Some((profile, material.to_vec(), we_are_client)),
                DtlsOutput::ApplicationData(a) => d.data.push(a.to_vec()),
                DtlsOutput::Failed(r) => d.failed = Some(r),
                DtlsOutput::Closed => d.closed = true,
            }
        }
        d
    }

    fn sha256(c: &DtlsCertificate) -> Fingerprint {
        c.fingerprints().last().unwrap().clone()
    }

    /// A client and a server session over a virtual wire; `drop_next` drops that many of the
    /// client→server records (a lost flight).
    struct Pair {
        client: DtlsSession,
        server: DtlsSession,
        now: Instant,
        c: Drained,
        s: Drained,
    }

    impl Pair {
        fn new(server_expects: Fingerprint) -> Self {
            let (cc, sc) = (
                DtlsCertificate::generate().unwrap(),
                DtlsCertificate::generate().unwrap(),
            );
            let now = Instant::now();
            let expected = if server_expects.value.is_empty() {
                sha256(&cc)
            } else {
                server_expects
            };
            Self {
                client: DtlsSession::new(DtlsRole::Client, &cc, sha256(&sc), now),
                server: DtlsSession::new(DtlsRole::Server, &sc, expected, now),
                now,
                c: Drained::default(),
                s: Drained::default(),
            }
        }

        /// Exchanges records until both sides are quiet, dropping the first `drop` client records.
        fn run(&mut self, mut drop: usize) {
            for _ in 0..50 {
                let c = drain(&mut self.client);
                let s = drain(&mut self.server);
                if c.records.is_empty() && s.records.is_empty() {
                    merge(&mut self.c, c);
                    merge(&mut self.s, s);
                    return;
                }
                for r in &c.records {
                    if drop > 0 {
                        drop -= 1;
                        continue;
                    }
                    self.server.handle_input(r, self.now);
                }
                for r in &s.records {
                    self.client.handle_input(r, self.now);
                }
                merge(&mut self.c, c);
                merge(&mut self.s, s);
            }
            panic!("no quiet point");
        }

        /// Advances virtual time to the earliest timer and runs it on both sides.
        fn tick(&mut self) {
            let next = [self.client.poll_timeout(), self.server.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .unwrap();
            self.now = self.now.max(next);
            self.client.handle_timeout(self.now);
            self.server.handle_timeout(self.now);
        }
    }

    fn merge(into: &mut Drained, d: Drained) {
        into.records.extend(d.records);
        into.data.extend(d.data);
        into.connected = into.connected.take().or(d.connected);
        into.failed = into.failed.take().or(d.failed);
        into.closed |= d.closed;
    }

    fn empty() -> Fingerprint {
        Fingerprint {
            algorithm: "sha-256".into(),
            value: String::new(),
        }
    }

    #[test]
    fn client_and_server_agree_on_srtp_keys_and_carry_application_data() {
        let mut p = Pair::new(empty());
        p.run(0);
        let (cp, ck, c_client) = p.c.connected.clone().expect("client connected");
        let (sp, sk, s_client) = p.s.connected.clone().expect("server connected");
        assert_eq!(cp, sp);
        assert_eq!(cp, SrtpProfile::AeadAes256Gcm, "our preference");
        assert_eq!(ck, sk, "both export the same keying material");
        assert_eq!(ck.len(), crate::srtp::keying_material_len(cp));
        assert!(c_client && !s_client);
        assert!(p.client.is_connected() && p.server.is_connected());

        p.client.send_application_data(b"sctp packet");
        p.run(0);
        assert_eq!(p.s.data, vec![b"sctp packet".to_vec()]);

        // close_notify reaches the other side as Closed.
        p.server.close();
        p.run(0);
        assert!(p.c.closed);
        assert_eq!(
            p.client.poll_timeout(),
            None,
            "a closed session has no timer"
        );
    }

    #[test]
    fn a_certificate_not_matching_the_signaled_fingerprint_fails_the_handshake() {
        let mut p = Pair::new(Fingerprint {
            algorithm: "sha-256".into(),
            value: "AB:CD".into(),
        });
        p.run(0);
        assert_eq!(
            p.s.failed.as_deref(),
            Some("certificate fingerprint mismatch")
        );
        assert!(p.s.connected.is_none(), "no keys for an unverified peer");
    }

    #[test]
    fn a_lost_flight_is_retransmitted_when_the_timer_runs() {
        let mut p = Pair::new(empty());
        // The ClientHello is lost: nothing moves until the client's retransmission timer.
        p.run(1);
        assert!(p.c.connected.is_none() && p.s.records.is_empty());
        let t = p.client.poll_timeout().expect("client timer armed");
        assert!(t > p.now, "a timer in the future, not a busy loop");
        p.tick();
        p.run(0);
        assert!(p.c.connected.is_some() && p.s.connected.is_some());
    }

    #[test]
    fn a_handshake_with_no_answer_fails_at_the_deadline() {
        let cert = DtlsCertificate::generate().unwrap();
        let start = Instant::now();
        let mut s = DtlsSession::new(DtlsRole::Client, &cert, sha256(&cert), start);
        let mut now = start;
        let mut failed = None;
        for _ in 0..100 {
            let d = drain(&mut s);
            if d.failed.is_some() {
                failed = d.failed;
                break;
            }
            now = s.poll_timeout().unwrap().max(now);
            s.handle_timeout(now);
        }
        assert!(failed.is_some(), "no failure");
        assert!(
            now - start <= HANDSHAKE_TIMEOUT,
            "failed at {:?}",
            now - start
        );
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn garbage_records_are_ignored_not_fatal() {
        let mut p = Pair::new(empty());
        p.server.handle_input(&[22, 254, 253, 0, 0, 0], p.now);
        p.server.handle_input(&[0xff; 40], p.now);
        p.run(0);
        assert!(p.s.failed.is_none(), "{:?}", p.s.failed);
        assert!(p.s.connected.is_some());
    }
}
