//! ICE-lite server for one transport (RFC 8445 lite agent, RFC 7675 consent), sans-IO.
//!
//! The server only answers STUN Binding requests; it never sends checks. It learns the peer's
//! addresses from valid requests (peer-reflexive tuples), follows the controlling peer's
//! nominations (USE-CANDIDATE, or a rising NOMINATION value with renomination) and declares
//! the transport disconnected when consent on the selected tuple is not refreshed in time.
//! The caller feeds parsed messages and time, sends the response bytes written into its
//! buffer to the tuple the request came from, and polls events.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::stun::{self, Class, StunMessage, METHOD_BINDING};
use crate::tuple::TransportTuple;

/// At most this many peer tuples are remembered (as mediasoup); the oldest unselected one
/// is forgotten first.
const MAX_TUPLES: usize = 8;

/// Length of generated username fragments and passwords (mediasoup shape).
const CREDENTIAL_LEN: usize = 32;

/// A random 32-character `[a-z0-9]` string drawn from `rng`.
fn random_credential(rng: &mut impl Rng) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..CREDENTIAL_LEN)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// A fresh local username fragment: 32 chars of `[a-z0-9]`.
pub fn random_ufrag(rng: &mut impl Rng) -> String {
    random_credential(rng)
}

/// A fresh local password: 32 chars of `[a-z0-9]`.
pub fn random_password(rng: &mut impl Rng) -> String {
    random_credential(rng)
}

/// ICE state as mediasoup reports it (`iceState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IceState {
    /// No valid request yet.
    New,
    /// A valid request arrived; a tuple is selected but not nominated.
    Connected,
    /// The controlling peer nominated a tuple.
    Completed,
    /// Consent expired (or the last tuple went away).
    Disconnected,
    /// Closed by the owner; all input is ignored.
    Closed,
}

impl IceState {
    /// Lower-case name as mediasoup prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            IceState::New => "new",
            IceState::Connected => "connected",
            IceState::Completed => "completed",
            IceState::Disconnected => "disconnected",
            IceState::Closed => "closed",
        }
    }
}

/// Something the owner must react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IceEvent {
    /// The state changed to this one.
    StateChanged(IceState),
    /// Media and DTLS must now go to this tuple.
    SelectedTupleChanged(TransportTuple),
    /// The pre-restart username fragment is no longer accepted (the peer used the new
    /// credentials); an engine routing by ufrag can drop it.
    PreviousUfragRetired(String),
}

/// Why a STUN message got no success response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IceRejection {
    /// A request for a method other than Binding (400).
    BadMethod,
    /// A Binding request without FINGERPRINT (400).
    MissingFingerprint,
    /// FINGERPRINT present but wrong: not treated as STUN, dropped.
    BadFingerprint,
    /// USERNAME, MESSAGE-INTEGRITY or PRIORITY missing (400).
    MissingAttributes,
    /// Unknown local ufrag or integrity failure (401).
    Unauthorized,
    /// The peer claims ICE-CONTROLLED (487).
    RoleConflict,
    /// An indication or response: nothing to answer, dropped.
    NotRequest,
    /// The server is closed: dropped.
    Closed,
}

/// Per-reason counters; plain numbers for stats dumps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IceCounters {
    /// Valid Binding requests answered with success.
    pub accepted: u64,
    /// Requests for methods other than Binding.
    pub bad_method: u64,
    /// Binding requests without FINGERPRINT.
    pub missing_fingerprint: u64,
    /// Messages whose FINGERPRINT did not verify.
    pub bad_fingerprint: u64,
    /// Binding requests lacking USERNAME, MESSAGE-INTEGRITY or PRIORITY.
    pub missing_attributes: u64,
    /// Requests failing USERNAME or MESSAGE-INTEGRITY checks.
    pub unauthorized: u64,
    /// Requests carrying ICE-CONTROLLED.
    pub role_conflict: u64,
    /// Indications and responses (ignored).
    pub not_request: u64,
    /// Messages received after `close()`.
    pub closed: u64,
    /// Responses that did not fit the caller's buffer.
    pub response_too_large: u64,
}

/// Result of feeding one STUN message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IceOutcome {
    /// Bytes of the response written at the start of `out`, to be sent back to the tuple
    /// the request came from; none when the message is silently dropped.
    pub response_len: Option<usize>,
    /// Why the message was not accepted; none for a valid request.
    pub rejection: Option<IceRejection>,
}

impl IceOutcome {
    /// Whether the message was a valid Binding request.
    pub fn accepted(&self) -> bool {
        self.rejection.is_none()
    }
}

/// Which local credentials authenticated a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credentials {
    Current,
    Previous,
}

/// ICE-lite server state for one transport.
#[derive(Debug)]
pub struct IceServer {
    ufrag: String,
    pwd: String,
    /// Credentials from before `restart()`, accepted until the new ones are used.
    previous: Option<(String, String)>,
    consent_timeout: Duration,
    state: IceState,
    /// Known peer tuples, oldest first.
    tuples: Vec<TransportTuple>,
    selected: Option<TransportTuple>,
    /// Highest NOMINATION value acted on.
    remote_nomination: u32,
    /// Last valid request on the selected tuple.
    consent_at: Option<Instant>,
    events: VecDeque<IceEvent>,
    counters: IceCounters,
}

/// USERNAME must be `<localUfrag>:<remoteUfrag>`; the remote part is not signaled to us.
fn username_matches(username: &[u8], ufrag: &str) -> bool {
    let ufrag = ufrag.as_bytes();
    username.len() > ufrag.len()
        && username.starts_with(ufrag)
        && username.get(ufrag.len()) == Some(&b':')
}

impl IceServer {
    /// A server with local credentials and the consent timeout (mediasoup `iceConsentTimeout`;
    /// `Duration::ZERO` disables consent expiry).
    pub fn new(ufrag: String, pwd: String, consent_timeout: Duration) -> Self {
        IceServer {
            ufrag,
            pwd,
            previous: None,
            consent_timeout,
            state: IceState::New,
            tuples: Vec::with_capacity(MAX_TUPLES),
            selected: None,
            remote_nomination: 0,
            consent_at: None,
            events: VecDeque::with_capacity(4),
            counters: IceCounters::default(),
        }
    }

    /// Local username fragment (what `iceParameters.usernameFragment` advertises).
    pub fn local_ufrag(&self) -> &str {
        &self.ufrag
    }

    /// Local password.
    pub fn local_password(&self) -> &str {
        &self.pwd
    }

    /// The pre-restart username fragment while it is still accepted.
    pub fn previous_ufrag(&self) -> Option<&str> {
        self.previous.as_ref().map(|(u, _)| u.as_str())
    }

    /// Current state.
    pub fn state(&self) -> IceState {
        self.state
    }

    /// The tuple media and DTLS go to.
    pub fn selected_tuple(&self) -> Option<TransportTuple> {
        self.selected
    }

    /// All peer tuples that sent a valid request (oldest first).
    pub fn tuples(&self) -> &[TransportTuple] {
        &self.tuples
    }

    /// Whether `tuple` sent a valid request (DTLS/RTP from other tuples can be dropped).
    pub fn has_tuple(&self, tuple: &TransportTuple) -> bool {
        self.tuples.contains(tuple)
    }

    /// Rejection counters.
    pub fn counters(&self) -> &IceCounters {
        &self.counters
    }

    /// Next pending event.
    pub fn poll_event(&mut self) -> Option<IceEvent> {
        self.events.pop_front()
    }

    /// Processes one STUN message received on `tuple`; a response, if any, is written to the
    /// start of `out` (128 bytes is always enough).
    pub fn handle_stun(
        &mut self,
        msg: &StunMessage<'_>,
        tuple: TransportTuple,
        now: Instant,
        out: &mut [u8],
    ) -> IceOutcome {
        if self.state == IceState::Closed {
            self.counters.closed += 1;
            return Self::dropped(IceRejection::Closed);
        }
        let is_request = msg.class() == Class::Request;
        if msg.method() != METHOD_BINDING {
            if !is_request {
                self.counters.not_request += 1;
                return Self::dropped(IceRejection::NotRequest);
            }
            self.counters.bad_method += 1;
            return self.reject(msg, out, 400, None, IceRejection::BadMethod);
        }
        if !is_request {
            // Indications (keepalives) and responses need no answer and prove no consent.
            self.counters.not_request += 1;
            return Self::dropped(IceRejection::NotRequest);
        }
        if !msg.has_fingerprint() {
            self.counters.missing_fingerprint += 1;
            return self.reject(msg, out, 400, None, IceRejection::MissingFingerprint);
        }
        if !msg.verify_fingerprint() {
            // RFC 5389 §7.3: a bad FINGERPRINT means "not STUN"; nothing to answer.
            self.counters.bad_fingerprint += 1;
            return Self::dropped(IceRejection::BadFingerprint);
        }
        if msg.username().is_none() || !msg.has_integrity() || msg.priority().is_none() {
            self.counters.missing_attributes += 1;
            return self.reject(msg, out, 400, None, IceRejection::MissingAttributes);
        }
        let Some(creds) = self.authenticate(msg) else {
            self.counters.unauthorized += 1;
            return self.reject(msg, out, 401, None, IceRejection::Unauthorized);
        };
        if creds == Credentials::Current {
            if let Some((old_ufrag, _)) = self.previous.take() {
                self.events
                    .push_back(IceEvent::PreviousUfragRetired(old_ufrag));
            }
        }
        if msg.ice_controlled().is_some() {
            // Authenticated, so the error response carries MESSAGE-INTEGRITY (RFC 5389 §10.1.2).
            self.counters.role_conflict += 1;
            return self.reject(msg, out, 487, Some(creds), IceRejection::RoleConflict);
        }

        self.counters.accepted += 1;
        let written = stun::write_binding_success(
            out,
            msg.transaction_id(),
            tuple.remote,
            self.password_of(creds).as_bytes(),
            None,
        );
        let response_len = match written {
            Ok(n) => Some(n),
            Err(_) => {
                self.counters.response_too_large += 1;
                None
            }
        };
        self.handle_tuple(tuple, msg.use_candidate(), msg.nomination(), now);
        IceOutcome {
            response_len,
            rejection: None,
        }
    }

    fn dropped(reason: IceRejection) -> IceOutcome {
        IceOutcome {
            response_len: None,
            rejection: Some(reason),
        }
    }

    fn password_of(&self, creds: Credentials) -> &str {
        match (creds, &self.previous) {
            (Credentials::Previous, Some((_, pwd))) => pwd,
            _ => &self.pwd,
        }
    }

    /// Writes an error response for a rejected request.
    fn reject(
        &mut self,
        msg: &StunMessage<'_>,
        out: &mut [u8],
        code: u16,
        creds: Option<Credentials>,
        reason: IceRejection,
    ) -> IceOutcome {
        let key = creds.map(|c| self.password_of(c).as_bytes());
        let written =
            stun::write_error_response(out, msg.method(), msg.transaction_id(), code, key);
        if written.is_err() {
            self.counters.response_too_large += 1;
        }
        IceOutcome {
            response_len: written.ok(),
            rejection: Some(reason),
        }
    }

    /// Checks USERNAME and MESSAGE-INTEGRITY against the current, then the previous,
    /// credentials.
    fn authenticate(&self, msg: &StunMessage<'_>) -> Option<Credentials> {
        let username = msg.username()?;
        let valid = |ufrag: &str, pwd: &str| {
            username_matches(username, ufrag) && msg.verify_integrity(pwd.as_bytes())
        };
        if valid(&self.ufrag, &self.pwd) {
            return Some(Credentials::Current);
        }
        match &self.previous {
            Some((ufrag, pwd)) if valid(ufrag, pwd) => Some(Credentials::Previous),
            _ => None,
        }
    }

    /// State machine for a valid request (mediasoup `HandleTuple`).
    fn handle_tuple(
        &mut self,
        tuple: TransportTuple,
        use_candidate: bool,
        nomination: Option<u32>,
        now: Instant,
    ) {
        // With renomination only a higher NOMINATION value counts; otherwise USE-CANDIDATE.
        let nominates = match nomination {
            Some(n) => n > self.remote_nomination,
            None => use_candidate,
        };
        self.add_tuple(tuple);
        match self.state {
            IceState::New | IceState::Disconnected => {
                // The first tuple is selected right away so DTLS can start before nomination.
                self.select(tuple, now);
                if nominates {
                    self.note_nomination(nomination);
                    self.set_state(IceState::Completed);
                } else {
                    self.set_state(IceState::Connected);
                }
            }
            IceState::Connected | IceState::Completed => {
                if nominates {
                    self.select(tuple, now);
                    self.note_nomination(nomination);
                    self.set_state(IceState::Completed);
                }
            }
            IceState::Closed => {}
        }
        if self.selected == Some(tuple) {
            self.consent_at = Some(now);
        }
    }

    fn note_nomination(&mut self, nomination: Option<u32>) {
        if let Some(n) = nomination {
            self.remote_nomination = self.remote_nomination.max(n);
        }
    }

    fn add_tuple(&mut self, tuple: TransportTuple) {
        if self.tuples.contains(&tuple) {
            return;
        }
        if self.tuples.len() >= MAX_TUPLES {
            let selected = self.selected;
            if let Some(i) = self.tuples.iter().position(|t| Some(*t) != selected) {
                self.tuples.remove(i);
            }
        }
        self.tuples.push(tuple);
    }

    fn select(&mut self, tuple: TransportTuple, now: Instant) {
        if self.selected != Some(tuple) {
            self.selected = Some(tuple);
            // A newly selected path gets a full consent period.
            self.consent_at = Some(now);
            self.events.push_back(IceEvent::SelectedTupleChanged(tuple));
        }
    }

    fn set_state(&mut self, state: IceState) {
        if self.state != state {
            self.state = state;
            self.events.push_back(IceEvent::StateChanged(state));
        }
    }

    /// Forgets every tuple and goes to `disconnected`.
    fn disconnect(&mut self) {
        self.tuples.clear();
        self.selected = None;
        self.consent_at = None;
        self.remote_nomination = 0;
        self.set_state(IceState::Disconnected);
    }

    /// Forgets a tuple (e.g. its TCP connection closed). If it was selected, the most recent
    /// remaining tuple is selected, or the server goes `disconnected` when none is left.
    pub fn remove_tuple(&mut self, tuple: &TransportTuple, now: Instant) {
        let Some(i) = self.tuples.iter().position(|t| t == tuple) else {
            return;
        };
        self.tuples.remove(i);
        if self.selected != Some(*tuple) {
            return;
        }
        self.selected = None;
        match self.tuples.last().copied() {
            Some(next) => self.select(next, now),
            None => self.disconnect(),
        }
    }

    /// When `handle_timeout` must be called next: the consent deadline while connected or
    /// completed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.consent_timeout.is_zero()
            || !matches!(self.state, IceState::Connected | IceState::Completed)
        {
            return None;
        }
        self.consent_at.map(|at| at + self.consent_timeout)
    }

    /// Advances time: expires consent (RFC 7675) when no valid request refreshed the
    /// selected tuple for the consent timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(deadline) = self.poll_timeout() {
            if now >= deadline {
                self.disconnect();
            }
        }
    }

    /// ICE restart: new local credentials; the previous ones stay valid until a request
    /// authenticates with the new ones. State and tuples are kept.
    pub fn restart(&mut self, new_ufrag: String, new_pwd: String) {
        let old_ufrag = std::mem::replace(&mut self.ufrag, new_ufrag);
        let old_pwd = std::mem::replace(&mut self.pwd, new_pwd);
        if let Some((older, _)) = self.previous.replace((old_ufrag, old_pwd)) {
            // Only one generation is kept; a double restart retires the oldest.
            self.events.push_back(IceEvent::PreviousUfragRetired(older));
        }
        // The peer's nomination counter belongs to the old session.
        self.remote_nomination = 0;
    }

    /// Closes the server: forgets tuples and ignores all further input.
    pub fn close(&mut self) {
        if self.state == IceState::Closed {
            return;
        }
        self.tuples.clear();
        self.selected = None;
        self.consent_at = None;
        self.set_state(IceState::Closed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stun::{BindingRequest, IceRole, StunWriter};
    use crate::tuple::Protocol;

    const UFRAG: &str = "localufrag";
    const PWD: &str = "localpassword0123456789";

    fn tuple(port: u16) -> TransportTuple {
        TransportTuple {
            local: "127.0.0.1:40000".parse().unwrap(),
            remote: format!("127.0.0.1:{port}").parse().unwrap(),
            protocol: Protocol::Udp,
        }
    }

    fn txid(n: u8) -> [u8; 12] {
        [n; 12]
    }

    struct Harness {
        ice: IceServer,
        t0: Instant,
        out: [u8; 256],
    }

    impl Harness {
        fn new() -> Self {
            Harness {
                ice: IceServer::new(UFRAG.into(), PWD.into(), Duration::from_secs(20)),
                t0: Instant::now(),
                out: [0; 256],
            }
        }

        /// Feeds a request built by `req`; returns the outcome and the parsed response copy.
        fn feed(&mut self, req: BindingRequest<'_>, port: u16, at_s: u64) -> (IceOutcome, Vec<u8>) {
            let mut buf = [0u8; 256];
            let n = req.write(&mut buf).unwrap();
            self.feed_bytes(&buf[..n], port, at_s)
        }

        fn feed_bytes(&mut self, bytes: &[u8], port: u16, at_s: u64) -> (IceOutcome, Vec<u8>) {
            let msg = StunMessage::parse(bytes).unwrap();
            let now = self.t0 + Duration::from_secs(at_s);
            let outcome = self.ice.handle_stun(&msg, tuple(port), now, &mut self.out);
            let resp = outcome
                .response_len
                .map(|n| self.out[..n].to_vec())
                .unwrap_or_default();
            (outcome, resp)
        }

        fn events(&mut self) -> Vec<IceEvent> {
            std::iter::from_fn(|| self.ice.poll_event()).collect()
        }
    }

    fn good(n: u8) -> BindingRequest<'static> {
        BindingRequest::new(txid(n), "localufrag:remote", PWD.as_bytes())
    }

    fn error_code(resp: &[u8]) -> u16 {
        let m = StunMessage::parse(resp).unwrap();
        assert_eq!(m.class(), Class::ErrorResponse);
        assert!(m.verify_fingerprint());
        m.error_code().unwrap().code
    }

    #[test]
    fn credentials_have_mediasoup_shape() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for s in [random_ufrag(&mut rng), random_password(&mut rng)] {
            assert_eq!(s.len(), 32);
            assert!(s
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        }
        assert_ne!(random_ufrag(&mut rng), random_ufrag(&mut rng));
    }

    #[test]
    fn connect_then_nominate() {
        let mut h = Harness::new();
        assert_eq!(h.ice.state(), IceState::New);
        let (o, resp) = h.feed(good(1), 5000, 0);
        assert!(o.accepted());
        let m = StunMessage::parse(&resp).unwrap();
        assert_eq!(m.class(), Class::SuccessResponse);
        assert_eq!(m.transaction_id(), &txid(1));
        assert_eq!(m.xor_mapped_address(), Some(tuple(5000).remote));
        assert!(m.verify_integrity(PWD.as_bytes()));
        assert!(m.verify_fingerprint());
        assert_eq!(h.ice.state(), IceState::Connected);
        assert_eq!(h.ice.tuples(), &[tuple(5000)]);
        assert_eq!(
            h.events(),
            vec![
                IceEvent::SelectedTupleChanged(tuple(5000)),
                IceEvent::StateChanged(IceState::Connected)
            ]
        );

        // A second tuple checks without nominating: stored, not selected.
        let (o, _) = h.feed(good(2), 5001, 1);
        assert!(o.accepted());
        assert_eq!(h.ice.tuples(), &[tuple(5000), tuple(5001)]);
        assert_eq!(h.ice.selected_tuple(), Some(tuple(5000)));
        assert!(h.events().is_empty());

        // USE-CANDIDATE on the second tuple selects it and completes.
        let req = BindingRequest {
            use_candidate: true,
            ..good(3)
        };
        let (o, _) = h.feed(req, 5001, 2);
        assert!(o.accepted());
        assert_eq!(h.ice.state(), IceState::Completed);
        assert_eq!(h.ice.selected_tuple(), Some(tuple(5001)));
        assert_eq!(
            h.events(),
            vec![
                IceEvent::SelectedTupleChanged(tuple(5001)),
                IceEvent::StateChanged(IceState::Completed)
            ]
        );
        assert_eq!(h.ice.counters().accepted, 3);
    }

    #[test]
    fn renomination_switches_only_on_higher_value() {
        let mut h = Harness::new();
        let nominate = |n: u8, value: u32| BindingRequest {
            nomination: Some(value),
            ..good(n)
        };
        h.feed(nominate(1, 1), 5000, 0);
        assert_eq!(h.ice.state(), IceState::Completed);
        assert_eq!(h.ice.selected_tuple(), Some(tuple(5000)));
        h.events();

        // Higher value on another tuple: switch.
        h.feed(nominate(2, 2), 5002, 1);
        assert_eq!(h.ice.selected_tuple(), Some(tuple(5002)));
        assert_eq!(
            h.events(),
            vec![IceEvent::SelectedTupleChanged(tuple(5002))]
        );

        // Stale (lower or equal) value, even with USE-CANDIDATE: no switch.
        let stale = BindingRequest {
            use_candidate: true,
            ..nominate(3, 2)
        };
        let (o, _) = h.feed(stale, 5000, 2);
        assert!(o.accepted());
        assert_eq!(h.ice.selected_tuple(), Some(tuple(5002)));
        assert!(h.events().is_empty());

        // Plain USE-CANDIDATE without NOMINATION still nominates.
        let uc = BindingRequest {
            use_candidate: true,
            ..good(4)
        };
        h.feed(uc, 5000, 3);
        assert_eq!(h.ice.selected_tuple(), Some(tuple(5000)));
        assert_eq!(h.ice.state(), IceState::Completed);
    }

    #[test]
    fn wrong_password_is_401_without_state_change() {
        let mut h = Harness::new();
        let req = BindingRequest::new(txid(1), "localufrag:remote", b"not-the-password");
        let (o, resp) = h.feed(req, 5000, 0);
        assert_eq!(o.rejection, Some(IceRejection::Unauthorized));
        assert_eq!(error_code(&resp), 401);
        // Unauthenticated: the error must not carry MESSAGE-INTEGRITY.
        assert!(!StunMessage::parse(&resp).unwrap().has_integrity());
        assert_eq!(h.ice.state(), IceState::New);
        assert!(h.ice.tuples().is_empty());
        assert!(h.events().is_empty());
        assert_eq!(h.ice.counters().unauthorized, 1);
    }

    #[test]
    fn unknown_ufrag_is_401() {
        let mut h = Harness::new();
        for (i, user) in [
            "otherufrag:remote",
            "localufrag",
            "localufragx:remote",
            "localufra:r",
        ]
        .into_iter()
        .enumerate()
        {
            let req = BindingRequest::new(txid(i as u8), user, PWD.as_bytes());
            let (o, resp) = h.feed(req, 5000, 0);
            assert_eq!(o.rejection, Some(IceRejection::Unauthorized), "{user}");
            assert_eq!(error_code(&resp), 401);
        }
        assert_eq!(h.ice.state(), IceState::New);
        assert_eq!(h.ice.counters().unauthorized, 4);
    }

    #[test]
    fn role_conflict_is_487_with_integrity() {
        let mut h = Harness::new();
        let req = BindingRequest {
            role: Some(IceRole::Controlled(42)),
            ..good(1)
        };
        let (o, resp) = h.feed(req, 5000, 0);
        assert_eq!(o.rejection, Some(IceRejection::RoleConflict));
        assert_eq!(error_code(&resp), 487);
        assert!(StunMessage::parse(&resp)
            .unwrap()
            .verify_integrity(PWD.as_bytes()));
        assert_eq!(h.ice.state(), IceState::New);
        assert_eq!(h.ice.counters().role_conflict, 1);
    }

    #[test]
    fn missing_fingerprint_or_attributes_is_400() {
        let mut h = Harness::new();
        let no_fp = BindingRequest {
            fingerprint: false,
            ..good(1)
        };
        let (o, resp) = h.feed(no_fp, 5000, 0);
        assert_eq!(o.rejection, Some(IceRejection::MissingFingerprint));
        assert_eq!(error_code(&resp), 400);

        let no_priority = BindingRequest {
            priority: None,
            ..good(2)
        };
        let no_username = BindingRequest {
            username: None,
            ..good(3)
        };
        let no_integrity = BindingRequest {
            key: None,
            ..good(4)
        };
        for req in [no_priority, no_username, no_integrity] {
            let (o, resp) = h.feed(req, 5000, 0);
            assert_eq!(o.rejection, Some(IceRejection::MissingAttributes));
            assert_eq!(error_code(&resp), 400);
        }
        let c = h.ice.counters();
        assert_eq!((c.missing_fingerprint, c.missing_attributes), (1, 3));
        assert_eq!(h.ice.state(), IceState::New);
    }

    #[test]
    fn bad_fingerprint_is_dropped_silently() {
        let mut h = Harness::new();
        let mut buf = [0u8; 256];
        let n = good(1).write(&mut buf).unwrap();
        buf[n - 1] ^= 0xff;
        let (o, resp) = h.feed_bytes(&buf[..n], 5000, 0);
        assert_eq!(o.rejection, Some(IceRejection::BadFingerprint));
        assert!(resp.is_empty());
        assert_eq!(h.ice.counters().bad_fingerprint, 1);
    }

    #[test]
    fn other_methods_and_non_requests() {
        let mut h = Harness::new();
        let mut buf = [0u8; 256];
        // An Allocate (0x003) request gets 400 with the request's method.
        let mut w = StunWriter::new(&mut buf, Class::Request, 0x003, &txid(1)).unwrap();
        w.fingerprint().unwrap();
        let n = w.finish();
        let (o, resp) = h.feed_bytes(&buf[..n], 5000, 0);
        assert_eq!(o.rejection, Some(IceRejection::BadMethod));
        assert_eq!(error_code(&resp), 400);
        assert_eq!(StunMessage::parse(&resp).unwrap().method(), 0x003);

        // Binding indication and success response: ignored, no answer.
        for class in [
            Class::Indication,
            Class::SuccessResponse,
            Class::ErrorResponse,
        ] {
            let mut w = StunWriter::new(&mut buf, class, METHOD_BINDING, &txid(2)).unwrap();
            w.fingerprint().unwrap();
            let n = w.finish();
            let (o, resp) = h.feed_bytes(&buf[..n], 5000, 0);
            assert_eq!(o.rejection, Some(IceRejection::NotRequest));
            assert!(resp.is_empty());
        }
        assert_eq!(h.ice.counters().not_request, 3);
        assert_eq!(h.ice.state(), IceState::New);
    }

    #[test]
    fn consent_timeout_and_recovery() {
        let mut h = Harness::new();
        h.feed(
            BindingRequest {
                use_candidate: true,
                ..good(1)
            },
            5000,
            0,
        );
        h.events();
        assert_eq!(h.ice.poll_timeout(), Some(h.t0 + Duration::from_secs(20)));

        // A refresh at 15 s on the selected tuple pushes the deadline to 35 s.
        h.feed(good(2), 5000, 15);
        let deadline = h.t0 + Duration::from_secs(35);
        assert_eq!(h.ice.poll_timeout(), Some(deadline));
        // Checks on another (unselected) tuple do not refresh consent for the selected one.
        h.feed(good(3), 5001, 30);
        assert_eq!(h.ice.poll_timeout(), Some(deadline));

        h.ice.handle_timeout(deadline - Duration::from_millis(1));
        assert_eq!(h.ice.state(), IceState::Completed);
        h.ice.handle_timeout(deadline);
        assert_eq!(h.ice.state(), IceState::Disconnected);
        assert_eq!(h.ice.selected_tuple(), None);
        assert!(h.ice.tuples().is_empty());
        assert_eq!(h.ice.poll_timeout(), None);
        assert_eq!(
            h.events(),
            vec![IceEvent::StateChanged(IceState::Disconnected)]
        );

        // A later valid request brings it back.
        let (o, _) = h.feed(good(4), 5001, 40);
        assert!(o.accepted());
        assert_eq!(h.ice.state(), IceState::Connected);
        assert_eq!(h.ice.selected_tuple(), Some(tuple(5001)));
        assert_eq!(
            h.events(),
            vec![
                IceEvent::SelectedTupleChanged(tuple(5001)),
                IceEvent::StateChanged(IceState::Connected)
            ]
        );
        assert_eq!(h.ice.poll_timeout(), Some(h.t0 + Duration::from_secs(60)));
    }

    #[test]
    fn zero_consent_timeout_never_expires() {
        let mut h = Harness::new();
        h.ice = IceServer::new(UFRAG.into(), PWD.into(), Duration::ZERO);
        h.feed(good(1), 5000, 0);
        assert_eq!(h.ice.poll_timeout(), None);
        h.ice.handle_timeout(h.t0 + Duration::from_secs(3600));
        assert_eq!(h.ice.state(), IceState::Connected);
    }

    #[test]
    fn ice_restart_accepts_old_credentials_until_new_ones_are_used() {
        let mut h = Harness::new();
        h.feed(
            BindingRequest {
                use_candidate: true,
                nomination: Some(5),
                ..good(1)
            },
            5000,
            0,
        );
        h.events();
        h.ice.restart("newufrag".into(), "newpassword".into());
        assert_eq!(h.ice.local_ufrag(), "newufrag");
        assert_eq!(h.ice.local_password(), "newpassword");
        assert_eq!(h.ice.previous_ufrag(), Some(UFRAG));
        assert_eq!(h.ice.state(), IceState::Completed);

        // Old credentials still work; the response is keyed with the old password.
        let (o, resp) = h.feed(good(2), 5000, 1);
        assert!(o.accepted());
        assert!(StunMessage::parse(&resp)
            .unwrap()
            .verify_integrity(PWD.as_bytes()));

        // New credentials: accepted, response keyed with the new password, old retired.
        let new_req = BindingRequest {
            nomination: Some(1), // the peer's counter restarts with the new session
            ..BindingRequest::new(txid(3), "newufrag:remote2", b"newpassword")
        };
        let (o, resp) = h.feed(new_req, 5001, 2);
        assert!(o.accepted());
        assert!(StunMessage::parse(&resp)
            .unwrap()
            .verify_integrity(b"newpassword"));
        assert_eq!(h.ice.selected_tuple(), Some(tuple(5001)));
        assert_eq!(h.ice.previous_ufrag(), None);
        assert_eq!(
            h.events(),
            vec![
                IceEvent::PreviousUfragRetired(UFRAG.into()),
                IceEvent::SelectedTupleChanged(tuple(5001)),
            ]
        );

        // From now on the old credentials are refused.
        let (o, resp) = h.feed(good(4), 5000, 3);
        assert_eq!(o.rejection, Some(IceRejection::Unauthorized));
        assert_eq!(error_code(&resp), 401);
    }

    #[test]
    fn close_ignores_everything() {
        let mut h = Harness::new();
        h.feed(good(1), 5000, 0);
        h.events();
        h.ice.close();
        assert_eq!(h.ice.state(), IceState::Closed);
        assert_eq!(h.events(), vec![IceEvent::StateChanged(IceState::Closed)]);
        let (o, resp) = h.feed(good(2), 5000, 1);
        assert_eq!(o.rejection, Some(IceRejection::Closed));
        assert!(resp.is_empty());
        assert_eq!(h.ice.poll_timeout(), None);
        assert_eq!(h.ice.counters().closed, 1);
    }

    #[test]
    fn tuple_list_is_bounded_and_removal_reselects() {
        let mut h = Harness::new();
        h.feed(
            BindingRequest {
                use_candidate: true,
                ..good(0)
            },
            5000,
            0,
        );
        for i in 1..12u16 {
            h.feed(good(i as u8), 5000 + i, 1);
        }
        assert_eq!(h.ice.tuples().len(), MAX_TUPLES);
        // The selected tuple survives eviction even though it is the oldest.
        assert!(h.ice.has_tuple(&tuple(5000)));
        assert!(!h.ice.has_tuple(&tuple(5001)));
        h.events();

        let now = h.t0 + Duration::from_secs(2);
        h.ice.remove_tuple(&tuple(5000), now);
        assert_eq!(h.ice.selected_tuple(), Some(tuple(5011)));
        assert_eq!(
            h.events(),
            vec![IceEvent::SelectedTupleChanged(tuple(5011))]
        );
        for t in h.ice.tuples().to_vec() {
            h.ice.remove_tuple(&t, now);
        }
        assert_eq!(h.ice.state(), IceState::Disconnected);
    }

    #[test]
    fn small_output_buffer_counts_but_still_connects() {
        let mut h = Harness::new();
        let mut buf = [0u8; 256];
        let n = good(1).write(&mut buf).unwrap();
        let msg = StunMessage::parse(&buf[..n]).unwrap();
        let mut tiny = [0u8; 10];
        let o = h.ice.handle_stun(&msg, tuple(5000), h.t0, &mut tiny);
        assert!(o.accepted());
        assert_eq!(o.response_len, None);
        assert_eq!(h.ice.counters().response_too_large, 1);
        assert_eq!(h.ice.state(), IceState::Connected);
    }

    #[test]
    fn mutated_requests_never_panic_and_responses_are_well_formed() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7675);
        let mut h = Harness::new();
        let mut buf = [0u8; 256];
        let mut answered = 0;
        for i in 0..50_000u32 {
            let req = BindingRequest {
                use_candidate: rng.gen(),
                nomination: rng.gen::<bool>().then(|| rng.gen_range(0..4)),
                ..good(i as u8)
            };
            let n = req.write(&mut buf).unwrap();
            // Flip a few random bits (sometimes none, so valid requests are in the mix).
            for _ in 0..rng.gen_range(0..3) {
                let at = rng.gen_range(0..n);
                buf[at] ^= 1 << rng.gen_range(0..8);
            }
            let Ok(msg) = StunMessage::parse(&buf[..n]) else {
                continue;
            };
            let now = h.t0 + Duration::from_millis(u64::from(i));
            let o = h
                .ice
                .handle_stun(&msg, tuple(5000 + (i % 3) as u16), now, &mut h.out);
            h.ice.handle_timeout(now);
            if let Some(len) = o.response_len {
                answered += 1;
                let resp = StunMessage::parse(&h.out[..len]).unwrap();
                assert!(resp.verify_fingerprint());
                assert_eq!(resp.transaction_id(), msg.transaction_id());
                assert_eq!(resp.class() == Class::SuccessResponse, o.accepted());
            }
        }
        let c = *h.ice.counters();
        assert!(answered > 10_000);
        // Any flip breaks FINGERPRINT first, so the mix is valid requests and dropped ones
        // (flips in the type field surface as other methods or classes).
        assert!(c.accepted > 1_000 && c.bad_fingerprint > 1_000 && c.bad_method > 0);
    }
}
