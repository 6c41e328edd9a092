//! A sans-IO STUN (RFC 8489 Binding) and TURN (RFC 8656) server.
//!
//! [`TurnServer`] holds allocations, permissions and channel bindings and answers every
//! datagram it is given; it never touches a socket or a clock: the caller passes the time
//! ([`Clock`]), a source of randomness, and a [`RelayPorts`] that binds relay addresses. Its
//! answers are [`Action`]s: a reply to the client (bytes in the caller's output buffer) or a
//! payload to send from a relay address to a peer (a range of the input). The I/O side is
//! [`udp`] (worker tasks, no thread per allocation).
//!
//! Authentication is the long-term credential mechanism (RFC 8489 §9.2): users with
//! passwords, or TURN REST API usernames `"<expiry unix time>:<user>"` whose password is
//! `base64(HMAC-SHA1(secret, username))` (coturn's `use-auth-secret`). Nonces are stateless
//! (expiry time and an HMAC with a per-server key) and go stale after [`NONCE_LIFETIME_S`].
//! By default peers on loopback, private, link-local, unspecified, multicast and broadcast
//! addresses are refused with 403 (the open-relay hole); [`TurnConfig::allow_loopback_peers`]
//! and [`TurnConfig::allow_private_peers`] open them explicitly, and
//! [`TurnConfig::denied_peers`] refuses further ranges ([`peer_policy`]).

pub mod peer_policy;
/// The TURN server's I/O driver (sockets and tasks; it lives in `io/` with the other drivers).
pub use crate::io::turn as udp;
mod wire;

pub use peer_policy::{is_denied_peer, PeerRange, PeerRangeError};
use wire::{attributes, known_attribute, put_xor_address, reason, xor_address};
pub use wire::{long_term_key, rest_password};

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::stun::{attr, decode_message_type, Class, StunMessage, StunWriter};

type HmacSha1 = Hmac<Sha1>;

/// STUN/TURN methods (RFC 8656 §17).
pub mod method {
    /// Binding.
    pub const BINDING: u16 = 0x001;
    /// Allocate.
    pub const ALLOCATE: u16 = 0x003;
    /// Refresh.
    pub const REFRESH: u16 = 0x004;
    /// Send (indication).
    pub const SEND: u16 = 0x006;
    /// Data (indication).
    pub const DATA: u16 = 0x007;
    /// CreatePermission.
    pub const CREATE_PERMISSION: u16 = 0x008;
    /// ChannelBind.
    pub const CHANNEL_BIND: u16 = 0x009;
}

/// TURN attributes (RFC 8656 §18).
pub mod tattr {
    /// CHANNEL-NUMBER.
    pub const CHANNEL_NUMBER: u16 = 0x000C;
    /// LIFETIME.
    pub const LIFETIME: u16 = 0x000D;
    /// XOR-PEER-ADDRESS.
    pub const XOR_PEER_ADDRESS: u16 = 0x0012;
    /// DATA.
    pub const DATA: u16 = 0x0013;
    /// XOR-RELAYED-ADDRESS.
    pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
    /// REQUESTED-ADDRESS-FAMILY.
    pub const REQUESTED_ADDRESS_FAMILY: u16 = 0x0017;
    /// EVEN-PORT.
    pub const EVEN_PORT: u16 = 0x0018;
    /// REQUESTED-TRANSPORT.
    pub const REQUESTED_TRANSPORT: u16 = 0x0019;
    /// DONT-FRAGMENT.
    pub const DONT_FRAGMENT: u16 = 0x001A;
    /// RESERVATION-TOKEN.
    pub const RESERVATION_TOKEN: u16 = 0x0022;
}

/// How long a nonce is valid.
pub const NONCE_LIFETIME_S: u64 = 600;
/// Permission lifetime (RFC 8656 §9).
pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// Channel binding lifetime (RFC 8656 §12).
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);

/// Server settings.
#[derive(Debug, Clone)]
pub struct TurnConfig {
    /// REALM.
    pub realm: String,
    /// Long-term users: name → password.
    pub users: HashMap<String, String>,
    /// TURN REST API shared secret (coturn `static-auth-secret`).
    pub secret: Option<String>,
    /// Relay to 127.0.0.0/8 and ::1 (tests; off by default).
    pub allow_loopback_peers: bool,
    /// Relay to private (RFC 1918, fc00::/7) and link-local peers (off by default).
    pub allow_private_peers: bool,
    /// Peer ranges always refused with 403, whatever is allowed (coturn's `denied-peer-ip`).
    pub denied_peers: Vec<PeerRange>,
    /// Default allocation lifetime.
    pub default_lifetime: Duration,
    /// Longest allocation lifetime granted.
    pub max_lifetime: Duration,
    /// Allocations one user may hold at once (0 = unlimited).
    pub user_quota: usize,
    /// Allocations in total (0 = unlimited).
    pub total_quota: usize,
    /// Relayed bytes per second per allocation, both directions together (0 = unlimited);
    /// packets beyond it are dropped and counted.
    pub max_bps: u64,
    /// SOFTWARE attribute in responses.
    pub software: Option<String>,
}

impl Default for TurnConfig {
    fn default() -> Self {
        TurnConfig {
            realm: "ringsfu".into(),
            users: HashMap::new(),
            secret: None,
            allow_loopback_peers: false,
            allow_private_peers: false,
            denied_peers: Vec::new(),
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            user_quota: 10,
            total_quota: 1000,
            max_bps: 0,
            software: Some(concat!("ringsfu ", env!("CARGO_PKG_VERSION")).into()),
        }
    }
}

/// The time, as the caller sees it.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Monotonic time (lifetimes).
    pub now: Instant,
    /// Wall-clock Unix seconds (REST usernames, nonces).
    pub unix: u64,
}

/// Client transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP (one connection per 5-tuple).
    Tcp,
}

/// The client side of a 5-tuple (the server side is the listening address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Client {
    /// Transport.
    pub transport: Transport,
    /// Client address.
    pub addr: SocketAddr,
}

/// Binds relay addresses for allocations (the I/O side).
pub trait RelayPorts {
    /// Binds a new relay socket; returns its relayed transport address.
    fn bind(&mut self) -> Option<SocketAddr>;
    /// The allocation at `relay` ended: close its socket.
    fn release(&mut self, relay: SocketAddr);
}

/// What to do with a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing (answered nothing, or dropped and counted).
    None,
    /// Send `out[..len]` to the client.
    Reply {
        /// Destination.
        to: Client,
        /// Bytes of the output buffer.
        len: usize,
    },
    /// Send `input[range]` from the relay address to the peer.
    Relay {
        /// Relayed transport address (which socket).
        relay: SocketAddr,
        /// Peer.
        peer: SocketAddr,
        /// Payload within the input.
        range: Range<usize>,
    },
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnStats {
    /// Datagrams that were neither STUN nor ChannelData, or did not parse: dropped.
    pub malformed: u64,
    /// Requests refused for authentication (401/438/441).
    pub auth_failures: u64,
    /// Requests or indications refused for a denied peer address (403 / dropped).
    pub denied_peers: u64,
    /// Packets dropped for lack of a permission or channel.
    pub no_permission: u64,
    /// Packets dropped by the bandwidth quota.
    pub quota_drops: u64,
    /// Allocations created.
    pub allocations_created: u64,
    /// Packets relayed client → peer.
    pub to_peer_packets: u64,
    /// Packets relayed peer → client.
    pub to_client_packets: u64,
    /// Payload bytes relayed (both directions).
    pub relayed_bytes: u64,
}

struct Allocation {
    client: Client,
    relay: SocketAddr,
    username: String,
    expires: Instant,
    /// Peer IP → permission expiry.
    permissions: HashMap<IpAddr, Instant>,
    /// Channel number → (peer, expiry).
    channels: HashMap<u16, (SocketAddr, Instant)>,
    /// Peer → channel number.
    peer_channels: HashMap<SocketAddr, u16>,
    /// Allocate transaction (a retransmitted Allocate gets the same success again).
    allocate_txid: [u8; 12],
    /// Bandwidth token bucket: bytes available and when it was last refilled.
    tokens: u64,
    refilled: Instant,
}

/// The TURN server state (see the module docs).
pub struct TurnServer {
    config: TurnConfig,
    nonce_key: [u8; 16],
    allocations: HashMap<Client, Allocation>,
    by_relay: HashMap<SocketAddr, Client>,
    per_user: HashMap<String, usize>,
    stats: TurnStats,
}

impl std::fmt::Debug for TurnServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnServer")
            .field("allocations", &self.allocations.len())
            .field("stats", &self.stats)
            .finish()
    }
}

/// An error response to send: code and whether to add REALM + NONCE.
struct Refusal {
    code: u16,
    challenge: bool,
    key: Option<[u8; 16]>,
}

impl TurnServer {
    /// A server with `config`; `nonce_key` seeds its stateless nonces (random per start).
    pub fn new(config: TurnConfig, nonce_key: [u8; 16]) -> TurnServer {
        TurnServer {
            config,
            nonce_key,
            allocations: HashMap::new(),
            by_relay: HashMap::new(),
            per_user: HashMap::new(),
            stats: TurnStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> TurnStats {
        self.stats
    }

    /// Live allocations.
    pub fn allocation_count(&self) -> usize {
        self.allocations.len()
    }

    /// Counts a datagram the I/O side dropped as malformed (e.g. a broken TCP frame).
    pub fn count_malformed(&mut self) {
        self.stats.malformed += 1;
    }

    fn nonce(&self, unix: u64) -> String {
        let expiry = unix + NONCE_LIFETIME_S;
        let mut mac = HmacSha1::new_from_slice(&self.nonce_key).expect("any key length");
        mac.update(&expiry.to_be_bytes());
        let tag = mac.finalize().into_bytes();
        let mut s = format!("{expiry:016x}");
        for b in &tag[..8] {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    fn nonce_valid(&self, nonce: &[u8], unix: u64) -> bool {
        let Ok(s) = std::str::from_utf8(nonce) else {
            return false;
        };
        if s.len() != 32 {
            return false;
        }
        let Ok(expiry) = u64::from_str_radix(&s[..16], 16) else {
            return false;
        };
        let mut mac = HmacSha1::new_from_slice(&self.nonce_key).expect("any key length");
        mac.update(&expiry.to_be_bytes());
        let tag = mac.finalize().into_bytes();
        let mut want = String::with_capacity(16);
        for b in &tag[..8] {
            want.push_str(&format!("{b:02x}"));
        }
        want == s[16..] && expiry > unix
    }

    /// The key of `username`, if it is a known user or a valid, unexpired REST username.
    fn key_of(&self, username: &str, unix: u64) -> Option<[u8; 16]> {
        if let Some(pw) = self.config.users.get(username) {
            return Some(long_term_key(username, &self.config.realm, pw));
        }
        let secret = self.config.secret.as_deref()?;
        let expiry: u64 = username.split(':').next()?.parse().ok()?;
        if expiry <= unix {
            return None;
        }
        let pw = rest_password(secret, username);
        Some(long_term_key(username, &self.config.realm, &pw))
    }

    /// Authenticates a request (RFC 8489 §9.2.4): the user and key, or the refusal.
    fn authenticate(
        &mut self,
        msg: &StunMessage<'_>,
        unix: u64,
    ) -> Result<(String, [u8; 16]), Refusal> {
        let refuse = |code| Refusal {
            code,
            challenge: true,
            key: None,
        };
        if !msg.has_integrity() {
            return Err(refuse(401));
        }
        let (Some(user), Some(realm), Some(nonce)) = (
            msg.username(),
            msg.attribute(attr::REALM),
            msg.attribute(attr::NONCE),
        ) else {
            return Err(Refusal {
                code: 400,
                challenge: false,
                key: None,
            });
        };
        if !self.nonce_valid(nonce, unix) {
            return Err(refuse(438));
        }
        let user = String::from_utf8_lossy(user).into_owned();
        if realm != self.config.realm.as_bytes() {
            return Err(refuse(401));
        }
        let Some(key) = self.key_of(&user, unix) else {
            return Err(refuse(401));
        };
        if !msg.verify_integrity(&key) {
            return Err(refuse(401));
        }
        Ok((user, key))
    }

    /// Handles one datagram (or TCP frame) from a client: a STUN message or ChannelData.
    pub fn handle_client(
        &mut self,
        clock: Clock,
        from: Client,
        data: &[u8],
        relays: &mut dyn RelayPorts,
        out: &mut [u8],
    ) -> Action {
        match data.first() {
            Some(0x40..=0x7f) => return self.channel_data(clock, from, data),
            Some(0..=3) => {}
            _ => {
                self.stats.malformed += 1;
                return Action::None;
            }
        }
        let Ok(msg) = StunMessage::parse(data) else {
            self.stats.malformed += 1;
            return Action::None;
        };
        let (class, m) = decode_message_type(u16::from_be_bytes([data[0], data[1]]));
        let txid = *msg.transaction_id();
        match class {
            Class::Request => {}
            Class::Indication if m == method::SEND => {
                return self.send_indication(clock, from, &msg, data)
            }
            _ => {
                // Responses and other indications are not for a server.
                self.stats.malformed += 1;
                return Action::None;
            }
        }
        // Comprehension-required attributes we do not know → 420.
        let unknown: Vec<u16> = attributes(data)
            .map(|(t, _)| t)
            .filter(|t| !known_attribute(*t))
            .collect();
        if m == method::BINDING {
            return self.reply_binding(from, &txid, out);
        }
        if !matches!(
            m,
            method::ALLOCATE | method::REFRESH | method::CREATE_PERMISSION | method::CHANNEL_BIND
        ) {
            return self.reply_error(
                from,
                m,
                &txid,
                Refusal {
                    code: 400,
                    challenge: false,
                    key: None,
                },
                clock.unix,
                out,
            );
        }
        if !unknown.is_empty() {
            return self.reply_unknown(from, m, &txid, &unknown, out);
        }
        let (user, key) = match self.authenticate(&msg, clock.unix) {
            Ok(a) => a,
            Err(r) => {
                self.stats.auth_failures += 1;
                return self.reply_error(from, m, &txid, r, clock.unix, out);
            }
        };
        let result = match m {
            method::ALLOCATE => self.allocate(clock, from, &msg, &user, relays),
            _ => {
                let Some(alloc) = self.allocations.get(&from) else {
                    return self.reply_error(
                        from,
                        m,
                        &txid,
                        Refusal {
                            code: 437,
                            challenge: false,
                            key: Some(key),
                        },
                        clock.unix,
                        out,
                    );
                };
                if alloc.username != user {
                    self.stats.auth_failures += 1;
                    return self.reply_error(
                        from,
                        m,
                        &txid,
                        Refusal {
                            code: 441,
                            challenge: false,
                            key: Some(key),
                        },
                        clock.unix,
                        out,
                    );
                }
                match m {
                    method::REFRESH => self.refresh(clock, from, &msg, relays),
                    method::CREATE_PERMISSION => self.create_permission(clock, from, &msg),
                    _ => self.channel_bind(clock, from, &msg),
                }
            }
        };
        match result {
            Ok(attrs) => self.reply_success(from, m, &txid, &attrs, &key, out),
            Err(code) => self.reply_error(
                from,
                m,
                &txid,
                Refusal {
                    code,
                    challenge: false,
                    key: Some(key),
                },
                clock.unix,
                out,
            ),
        }
    }

    fn allocate(
        &mut self,
        clock: Clock,
        from: Client,
        msg: &StunMessage<'_>,
        user: &str,
        relays: &mut dyn RelayPorts,
    ) -> Result<Vec<SuccessAttr>, u16> {
        let txid = *msg.transaction_id();
        if let Some(a) = self.allocations.get(&from) {
            if a.allocate_txid == txid {
                let left = a.expires.saturating_duration_since(clock.now).as_secs() as u32;
                return Ok(vec![
                    SuccessAttr::Relayed(a.relay),
                    SuccessAttr::Lifetime(left),
                    SuccessAttr::Mapped(from.addr),
                ]);
            }
            return Err(437);
        }
        match msg.attribute(tattr::REQUESTED_TRANSPORT) {
            Some(v) if v.len() == 4 && v[0] == 17 => {}
            Some(v) if v.len() == 4 => return Err(442),
            _ => return Err(400),
        }
        if let Some(v) = msg.attribute(tattr::REQUESTED_ADDRESS_FAMILY) {
            if v.first() != Some(&0x01) {
                return Err(440);
            }
        }
        if msg.attribute(tattr::RESERVATION_TOKEN).is_some() {
            return Err(508);
        }
        let held = self.per_user.get(user).copied().unwrap_or(0);
        if self.config.user_quota > 0 && held >= self.config.user_quota {
            return Err(486);
        }
        if self.config.total_quota > 0 && self.allocations.len() >= self.config.total_quota {
            return Err(508);
        }
        let lifetime = self.lifetime(msg);
        let Some(relay) = relays.bind() else {
            return Err(508);
        };
        self.allocations.insert(
            from,
            Allocation {
                client: from,
                relay,
                username: user.to_owned(),
                expires: clock.now + lifetime,
                permissions: HashMap::new(),
                channels: HashMap::new(),
                peer_channels: HashMap::new(),
                allocate_txid: txid,
                tokens: self.config.max_bps,
                refilled: clock.now,
            },
        );
        self.by_relay.insert(relay, from);
        *self.per_user.entry(user.to_owned()).or_insert(0) += 1;
        self.stats.allocations_created += 1;
        Ok(vec![
            SuccessAttr::Relayed(relay),
            SuccessAttr::Lifetime(lifetime.as_secs() as u32),
            SuccessAttr::Mapped(from.addr),
        ])
    }

    fn lifetime(&self, msg: &StunMessage<'_>) -> Duration {
        let requested = msg
            .attribute(tattr::LIFETIME)
            .filter(|v| v.len() == 4)
            .map(|v| u64::from(u32::from_be_bytes([v[0], v[1], v[2], v[3]])));
        match requested {
            Some(s) => Duration::from_secs(s)
                .max(self.config.default_lifetime)
                .min(self.config.max_lifetime),
            None => self.config.default_lifetime,
        }
    }

    fn refresh(
        &mut self,
        clock: Clock,
        from: Client,
        msg: &StunMessage<'_>,
        relays: &mut dyn RelayPorts,
    ) -> Result<Vec<SuccessAttr>, u16> {
        let zero = msg
            .attribute(tattr::LIFETIME)
            .is_some_and(|v| v == [0, 0, 0, 0]);
        if zero {
            self.remove(&from, relays);
            return Ok(vec![SuccessAttr::Lifetime(0)]);
        }
        let lifetime = self.lifetime(msg);
        if let Some(a) = self.allocations.get_mut(&from) {
            a.expires = clock.now + lifetime;
        }
        Ok(vec![SuccessAttr::Lifetime(lifetime.as_secs() as u32)])
    }

    fn peers(&self, msg: &StunMessage<'_>, data: &[u8]) -> Result<Vec<SocketAddr>, u16> {
        let txid = *msg.transaction_id();
        let mut peers = Vec::new();
        for (t, v) in attributes(data) {
            if t == attr::MESSAGE_INTEGRITY {
                break;
            }
            if t == tattr::XOR_PEER_ADDRESS {
                peers.push(xor_address(v, &txid).ok_or(400u16)?);
            }
        }
        if peers.is_empty() {
            return Err(400);
        }
        Ok(peers)
    }

    fn denied(&self, ip: IpAddr) -> bool {
        self.config.denied_peers.iter().any(|r| r.contains(ip))
            || is_denied_peer(
                ip,
                self.config.allow_loopback_peers,
                self.config.allow_private_peers,
            )
    }

    fn create_permission(
        &mut self,
        clock: Clock,
        from: Client,
        msg: &StunMessage<'_>,
    ) -> Result<Vec<SuccessAttr>, u16> {
        let peers = self.peers(msg, msg.as_bytes())?;
        if peers.iter().any(|p| self.denied(p.ip())) {
            self.stats.denied_peers += 1;
            return Err(403);
        }
        let a = self.allocations.get_mut(&from).ok_or(437u16)?;
        for p in peers {
            a.permissions
                .insert(p.ip(), clock.now + PERMISSION_LIFETIME);
        }
        Ok(Vec::new())
    }

    fn channel_bind(
        &mut self,
        clock: Clock,
        from: Client,
        msg: &StunMessage<'_>,
    ) -> Result<Vec<SuccessAttr>, u16> {
        let channel = match msg.attribute(tattr::CHANNEL_NUMBER) {
            Some(v) if v.len() == 4 => u16::from_be_bytes([v[0], v[1]]),
            _ => return Err(400),
        };
        // RFC 8656 narrowed the range to 0x4000-0x4FFF; RFC 5766 clients (coturn's) still use up to 0x7FFE.
        if !(0x4000..=0x7FFE).contains(&channel) {
            return Err(400);
        }
        let peers = self.peers(msg, msg.as_bytes())?;
        if peers.len() != 1 {
            return Err(400);
        }
        let peer = peers[0];
        if self.denied(peer.ip()) {
            self.stats.denied_peers += 1;
            return Err(403);
        }
        let a = self.allocations.get_mut(&from).ok_or(437u16)?;
        if let Some((bound, _)) = a.channels.get(&channel) {
            if *bound != peer {
                return Err(400);
            }
        }
        if let Some(ch) = a.peer_channels.get(&peer) {
            if *ch != channel {
                return Err(400);
            }
        }
        a.channels
            .insert(channel, (peer, clock.now + CHANNEL_LIFETIME));
        a.peer_channels.insert(peer, channel);
        a.permissions
            .insert(peer.ip(), clock.now + PERMISSION_LIFETIME);
        Ok(Vec::new())
    }

    /// Whether a packet of `bytes` to or from `peer` may be relayed by allocation `a`: a live
    /// permission for the peer's address and room in the bandwidth bucket (charged). A refusal
    /// is counted in `stats`.
    fn admit(
        stats: &mut TurnStats,
        max_bps: u64,
        a: &mut Allocation,
        peer: IpAddr,
        now: Instant,
        bytes: usize,
    ) -> bool {
        if a.permissions.get(&peer).is_none_or(|e| *e <= now) {
            stats.no_permission += 1;
            return false;
        }
        if max_bps == 0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(a.refilled);
        let add = (elapsed.as_secs_f64() * max_bps as f64) as u64;
        if add > 0 {
            a.tokens = (a.tokens + add).min(max_bps);
            a.refilled = now;
        }
        if a.tokens >= bytes as u64 {
            a.tokens -= bytes as u64;
            true
        } else {
            stats.quota_drops += 1;
            false
        }
    }

    fn send_indication(
        &mut self,
        clock: Clock,
        from: Client,
        msg: &StunMessage<'_>,
        data: &[u8],
    ) -> Action {
        let txid = *msg.transaction_id();
        let mut peer = None;
        let mut payload = None;
        let base = data.as_ptr() as usize;
        for (t, v) in attributes(data) {
            match t {
                tattr::XOR_PEER_ADDRESS => peer = xor_address(v, &txid),
                tattr::DATA => {
                    let start = v.as_ptr() as usize - base;
                    payload = Some(start..start + v.len());
                }
                _ => {}
            }
        }
        let (Some(peer), Some(range)) = (peer, payload) else {
            self.stats.malformed += 1;
            return Action::None;
        };
        self.relay_to_peer(clock, from, peer, range)
    }

    fn channel_data(&mut self, clock: Clock, from: Client, data: &[u8]) -> Action {
        if data.len() < 4 {
            self.stats.malformed += 1;
            return Action::None;
        }
        let channel = u16::from_be_bytes([data[0], data[1]]);
        let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
        if 4 + len > data.len() {
            self.stats.malformed += 1;
            return Action::None;
        }
        let Some(peer) = self
            .allocations
            .get(&from)
            .and_then(|a| a.channels.get(&channel))
            .filter(|(_, exp)| *exp > clock.now)
            .map(|(p, _)| *p)
        else {
            self.stats.no_permission += 1;
            return Action::None;
        };
        self.relay_to_peer(clock, from, peer, 4..4 + len)
    }

    fn relay_to_peer(
        &mut self,
        clock: Clock,
        from: Client,
        peer: SocketAddr,
        range: Range<usize>,
    ) -> Action {
        if self.denied(peer.ip()) {
            self.stats.denied_peers += 1;
            return Action::None;
        }
        let max_bps = self.config.max_bps;
        let Some(a) = self.allocations.get_mut(&from) else {
            self.stats.no_permission += 1;
            return Action::None;
        };
        if !Self::admit(
            &mut self.stats,
            max_bps,
            a,
            peer.ip(),
            clock.now,
            range.len(),
        ) {
            return Action::None;
        }
        self.stats.to_peer_packets += 1;
        self.stats.relayed_bytes += range.len() as u64;
        Action::Relay {
            relay: a.relay,
            peer,
            range,
        }
    }

    /// Handles a datagram that arrived on relay address `relay` from `peer`: wraps it for the
    /// client (ChannelData when a channel is bound, else a Data indication) into `out`.
    pub fn handle_peer(
        &mut self,
        clock: Clock,
        relay: SocketAddr,
        peer: SocketAddr,
        data: &[u8],
        out: &mut [u8],
    ) -> Action {
        let max_bps = self.config.max_bps;
        let Some(client) = self.by_relay.get(&relay).copied() else {
            self.stats.no_permission += 1;
            return Action::None;
        };
        let Some(a) = self.allocations.get_mut(&client) else {
            return Action::None;
        };
        if !Self::admit(
            &mut self.stats,
            max_bps,
            a,
            peer.ip(),
            clock.now,
            data.len(),
        ) {
            return Action::None;
        }
        let channel = a
            .peer_channels
            .get(&peer)
            .copied()
            .filter(|c| a.channels.get(c).is_some_and(|(_, e)| *e > clock.now));
        let len = if let Some(ch) = channel {
            let padded = if client.transport == Transport::Tcp {
                data.len().div_ceil(4) * 4
            } else {
                data.len()
            };
            let Some(slot) = out.get_mut(..4 + padded) else {
                self.stats.malformed += 1;
                return Action::None;
            };
            slot[0..2].copy_from_slice(&ch.to_be_bytes());
            slot[2..4].copy_from_slice(&(data.len() as u16).to_be_bytes());
            slot[4..4 + data.len()].copy_from_slice(data);
            slot[4 + data.len()..].fill(0);
            4 + padded
        } else {
            let mut txid = [0u8; 12];
            // Indications need a transaction id; derive one from the counters (unique enough,
            // never checked by clients).
            txid[..8].copy_from_slice(&self.stats.to_client_packets.to_be_bytes());
            let Ok(mut w) = StunWriter::new(out, Class::Indication, method::DATA, &txid) else {
                return Action::None;
            };
            if put_xor_address(&mut w, tattr::XOR_PEER_ADDRESS, peer, &txid).is_err()
                || w.attribute(tattr::DATA, data).is_err()
            {
                self.stats.malformed += 1;
                return Action::None;
            }
            w.finish()
        };
        self.stats.to_client_packets += 1;
        self.stats.relayed_bytes += data.len() as u64;
        Action::Reply { to: client, len }
    }

    /// Drops expired allocations, permissions and channels. Call about once a second.
    pub fn expire(&mut self, now: Instant, relays: &mut dyn RelayPorts) {
        let dead: Vec<Client> = self
            .allocations
            .values()
            .filter(|a| a.expires <= now)
            .map(|a| a.client)
            .collect();
        for c in dead {
            self.remove(&c, relays);
        }
        for a in self.allocations.values_mut() {
            a.permissions.retain(|_, e| *e > now);
            let expired: Vec<u16> = a
                .channels
                .iter()
                .filter(|(_, (_, e))| *e <= now)
                .map(|(c, _)| *c)
                .collect();
            for c in expired {
                if let Some((p, _)) = a.channels.remove(&c) {
                    a.peer_channels.remove(&p);
                }
            }
        }
    }

    /// Removes the allocations of a client (e.g. its TCP connection closed).
    pub fn client_gone(&mut self, client: &Client, relays: &mut dyn RelayPorts) {
        self.remove(client, relays);
    }

    fn remove(&mut self, client: &Client, relays: &mut dyn RelayPorts) {
        if let Some(a) = self.allocations.remove(client) {
            self.by_relay.remove(&a.relay);
            if let Some(n) = self.per_user.get_mut(&a.username) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_user.remove(&a.username);
                }
            }
            relays.release(a.relay);
        }
    }

    fn reply_binding(&mut self, to: Client, txid: &[u8; 12], out: &mut [u8]) -> Action {
        let Ok(mut w) = StunWriter::new(out, Class::SuccessResponse, method::BINDING, txid) else {
            return Action::None;
        };
        if let Some(s) = &self.config.software {
            let _ = w.software(s);
        }
        if w.xor_mapped_address(to.addr).is_err() || w.fingerprint().is_err() {
            return Action::None;
        }
        Action::Reply {
            to,
            len: w.finish(),
        }
    }

    fn reply_success(
        &mut self,
        to: Client,
        m: u16,
        txid: &[u8; 12],
        attrs: &[SuccessAttr],
        key: &[u8; 16],
        out: &mut [u8],
    ) -> Action {
        let Ok(mut w) = StunWriter::new(out, Class::SuccessResponse, m, txid) else {
            return Action::None;
        };
        for a in attrs {
            let r = match a {
                SuccessAttr::Relayed(addr) => {
                    put_xor_address(&mut w, tattr::XOR_RELAYED_ADDRESS, *addr, txid)
                }
                SuccessAttr::Mapped(addr) => w.xor_mapped_address(*addr),
                SuccessAttr::Lifetime(s) => w.attribute(tattr::LIFETIME, &s.to_be_bytes()),
            };
            if r.is_err() {
                return Action::None;
            }
        }
        if let Some(s) = &self.config.software {
            let _ = w.software(s);
        }
        if w.message_integrity(key).is_err() || w.fingerprint().is_err() {
            return Action::None;
        }
        Action::Reply {
            to,
            len: w.finish(),
        }
    }

    fn reply_error(
        &mut self,
        to: Client,
        m: u16,
        txid: &[u8; 12],
        r: Refusal,
        unix: u64,
        out: &mut [u8],
    ) -> Action {
        let nonce = self.nonce(unix);
        let Ok(mut w) = StunWriter::new(out, Class::ErrorResponse, m, txid) else {
            return Action::None;
        };
        let phrase = reason(r.code).as_bytes();
        let mut v = Vec::with_capacity(4 + phrase.len());
        v.extend_from_slice(&[0, 0, (r.code / 100) as u8, (r.code % 100) as u8]);
        v.extend_from_slice(phrase);
        if w.attribute(attr::ERROR_CODE, &v).is_err() {
            return Action::None;
        }
        if (r.challenge || r.code == 438)
            && (w
                .attribute(attr::REALM, self.config.realm.as_bytes())
                .is_err()
                || w.attribute(attr::NONCE, nonce.as_bytes()).is_err())
        {
            return Action::None;
        }
        if let Some(s) = &self.config.software {
            let _ = w.software(s);
        }
        if let Some(key) = r.key {
            if w.message_integrity(&key).is_err() {
                return Action::None;
            }
        }
        if w.fingerprint().is_err() {
            return Action::None;
        }
        Action::Reply {
            to,
            len: w.finish(),
        }
    }

    fn reply_unknown(
        &mut self,
        to: Client,
        m: u16,
        txid: &[u8; 12],
        unknown: &[u16],
        out: &mut [u8],
    ) -> Action {
        let Ok(mut w) = StunWriter::new(out, Class::ErrorResponse, m, txid) else {
            return Action::None;
        };
        let _ = w.error_code(420);
        let list: Vec<u8> = unknown.iter().flat_map(|t| t.to_be_bytes()).collect();
        let _ = w.attribute(attr::UNKNOWN_ATTRIBUTES, &list);
        let _ = w.fingerprint();
        Action::Reply {
            to,
            len: w.finish(),
        }
    }
}

enum SuccessAttr {
    Relayed(SocketAddr),
    Mapped(SocketAddr),
    Lifetime(u32),
}

#[cfg(test)]
mod tests;
