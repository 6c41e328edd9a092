//! The server configuration: a Lua file (lua/config.lua) returning one table, with environment
//! overrides. The embedded default makes the binary work from any directory.
//!
//! Loading is strict: an unknown key, a wrong type or an out-of-range value refuses the start and
//! names the key (`http.port: invalid type: string "x", expected u16`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// The default configuration file, embedded so the binary runs from any directory.
pub const DEFAULT_CONFIG_LUA: &str = include_str!("../lua/config.lua");

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The Lua chunk failed to run or did not return a table.
    #[error("config {name}: {message}")]
    Lua {
        /// Chunk name (file path or "embedded").
        name: String,
        /// The Lua error.
        message: String,
    },
    /// A key has a wrong type, an unknown name, or a bad value.
    #[error("config {name}: key `{key}`: {message}")]
    Key {
        /// Chunk name.
        name: String,
        /// Dotted path of the key (`http.port`, `rooms[1].script`).
        key: String,
        /// The problem.
        message: String,
    },
}

/// TLS files of the signaling port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// Private key (PEM).
    pub key: Option<PathBuf>,
}

/// The signaling (HTTP + WebSocket) listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpConfig {
    /// IP to listen on.
    #[serde(default = "default_listen_ip")]
    pub listen_ip: IpAddr,
    /// TCP port (0 = any free port).
    #[serde(default = "default_http_port")]
    pub port: u16,
    /// TLS files; both set → https/wss.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Static files for unmatched GET requests.
    #[serde(default)]
    pub static_dir: Option<PathBuf>,
}

/// Media listening addresses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebRtcConfig {
    /// IP the media sockets bind.
    #[serde(default = "default_listen_ip")]
    pub listen_ip: IpAddr,
    /// Address put in ICE candidates (IP or host name); `None` → the listen IP.
    #[serde(default)]
    pub announced_address: Option<String>,
    /// Shared UDP+TCP port of worker 0; worker i uses `port + i`. 0 = any free port per worker.
    #[serde(default = "default_rtc_port")]
    pub port: u16,
    /// Open the shared UDP port.
    #[serde(default = "yes")]
    pub enable_udp: bool,
    /// Open the shared TCP port.
    #[serde(default = "yes")]
    pub enable_tcp: bool,
}

/// A port range (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortRange {
    /// Lowest port.
    pub min: u16,
    /// Highest port.
    pub max: u16,
}

/// Router options.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouterConfig {
    /// mediasoup `RtpCodecCapability` list (JSON shapes), validated when the engine creates a
    /// router.
    pub media_codecs: Vec<Value>,
}

/// Options room scripts use when they create WebRtcTransports (exposed as
/// `ringsfu.config.webRtcTransport`).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebRtcTransportConfig {
    /// Where each transport's send-side estimate starts (bits/s); demo.lua passes it to
    /// `createWebRtcTransport` (unset: 600 000).
    #[serde(default)]
    pub initial_available_outgoing_bitrate: Option<u64>,
    /// Accepted and ignored (not a mediasoup 3.14 option either).
    #[serde(default)]
    pub minimum_available_outgoing_bitrate: Option<u64>,
    /// Largest data-channel message accepted and forwarded (bytes).
    #[serde(default)]
    pub max_sctp_message_size: Option<u64>,
    /// Incoming bitrate cap room scripts pass to `transport:setMaxIncomingBitrate` (REMB to the browser).
    #[serde(default)]
    pub max_incoming_bitrate: Option<u64>,
    /// ICE consent timeout in seconds (0 disables).
    #[serde(default = "default_consent")]
    pub ice_consent_timeout: u32,
}

/// Which script serves which rooms.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomRoute {
    /// Lua pattern matched against the roomId (`string.find` semantics).
    #[serde(rename = "match")]
    pub pattern: String,
    /// Script path (see [`crate::scripts`] for the lookup order).
    pub script: String,
}

/// Limits of Lua room scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LuaLimits {
    /// VM instructions per handler invocation.
    #[serde(default = "default_instruction_limit")]
    pub instruction_limit: u64,
    /// Memory cap per worker Lua state, MiB.
    #[serde(default = "default_memory_mb")]
    pub memory_limit_mb: u64,
}

impl Default for LuaLimits {
    fn default() -> Self {
        LuaLimits {
            instruction_limit: default_instruction_limit(),
            memory_limit_mb: default_memory_mb(),
        }
    }
}

/// The HTTP API under `/rooms/:roomId/...` (the broadcaster REST API), served by a Lua script.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpApiConfig {
    /// Script handling every `/rooms/:roomId/...` request; `None` (`false` in Lua is refused,
    /// leave the key out) keeps only the built-in `GET /rooms/:roomId`.
    #[serde(default = "default_http_api_script")]
    pub script: Option<String>,
    /// Whether a request for a room that does not exist creates it (mediasoup-demo today) or is
    /// answered 404 `room with id "<id>" not found` (older demo versions).
    #[serde(default = "yes")]
    pub create_rooms: bool,
}

impl Default for HttpApiConfig {
    fn default() -> Self {
        HttpApiConfig {
            script: default_http_api_script(),
            create_rooms: true,
        }
    }
}

/// The 1:1 call system's signaling (socket.io and the `/call` WebSocket, served by Lua scripts)
/// and its pages.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CallsConfig {
    /// Script serving socket.io sockets; an empty string → no socket.io endpoint.
    #[serde(default = "default_socket_io_script")]
    pub socket_io_script: Option<String>,
    /// Path of the socket.io endpoint (the client's default).
    #[serde(default = "default_socket_io_path")]
    pub socket_io_path: String,
    /// Script serving the plain WebSocket call relay; an empty string → no such endpoint.
    #[serde(default = "default_call_script")]
    pub ws_script: Option<String>,
    /// Path of the plain WebSocket call relay.
    #[serde(default = "default_call_path")]
    pub ws_path: String,
    /// Peers per room in the shipped scripts (a joiner beyond it gets `full`).
    #[serde(default = "default_room_capacity")]
    pub room_capacity: u32,
    /// Serve the call pages (`/calls/socketio.html`, `/calls/ws.html`, the socket.io client).
    #[serde(default = "yes")]
    pub pages: bool,
    /// Engine.IO ping interval in milliseconds.
    #[serde(default = "default_ping_interval_ms")]
    pub ping_interval_ms: u64,
    /// Engine.IO ping timeout in milliseconds.
    #[serde(default = "default_ping_timeout_ms")]
    pub ping_timeout_ms: u64,
}

impl Default for CallsConfig {
    fn default() -> Self {
        CallsConfig {
            socket_io_script: default_socket_io_script(),
            socket_io_path: default_socket_io_path(),
            ws_script: default_call_script(),
            ws_path: default_call_path(),
            room_capacity: default_room_capacity(),
            pages: true,
            ping_interval_ms: default_ping_interval_ms(),
            ping_timeout_ms: default_ping_timeout_ms(),
        }
    }
}

fn default_socket_io_script() -> Option<String> {
    Some("lua/calls/socketio_room.lua".into())
}
fn default_socket_io_path() -> String {
    "/socket.io/".into()
}
fn default_call_script() -> Option<String> {
    Some("lua/calls/call_relay.lua".into())
}
fn default_call_path() -> String {
    "/call".into()
}
fn default_room_capacity() -> u32 {
    2
}
fn default_ping_interval_ms() -> u64 {
    25_000
}
fn default_ping_timeout_ms() -> u64 {
    20_000
}

/// The built-in STUN/TURN server (RFC 8489 Binding, RFC 8656 TURN).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TurnServerConfig {
    /// Run the STUN/TURN server.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// IP to listen on (UDP and TCP).
    #[serde(default = "default_listen_ip")]
    pub listen_ip: IpAddr,
    /// Port (UDP and TCP).
    #[serde(default = "default_turn_port")]
    pub port: u16,
    /// Also listen on TCP.
    #[serde(default = "yes")]
    pub enable_tcp: bool,
    /// IP relay sockets bind (XOR-RELAYED-ADDRESS); default: the listen IP.
    #[serde(default)]
    pub relay_ip: Option<IpAddr>,
    /// Relay ports.
    #[serde(default = "default_turn_relay_range")]
    pub relay_port_range: PortRange,
    /// REALM.
    #[serde(default = "default_realm")]
    pub realm: String,
    /// Long-term credential users: name = password.
    #[serde(default)]
    pub users: std::collections::BTreeMap<String, String>,
    /// TURN REST API shared secret; unset → a random secret per start (credentials are then
    /// only minted by `ringsfu.turn_credentials`).
    #[serde(default)]
    pub secret: Option<String>,
    /// Lifetime of minted REST credentials, seconds.
    #[serde(default = "default_credential_ttl")]
    pub credential_ttl: u64,
    /// URLs handed to browsers with minted credentials; default
    /// `turn:<announced>:<port>?transport=udp` (and `tcp`).
    #[serde(default, deserialize_with = "lua_list")]
    pub urls: Vec<String>,
    /// Relay to loopback peers (off by default; tests set it).
    #[serde(default)]
    pub allow_loopback_peers: bool,
    /// Relay to private and link-local peers (off by default).
    #[serde(default)]
    pub allow_private_peers: bool,
    /// Peer addresses or CIDR ranges always refused with 403, even where loopback or private
    /// peers are allowed (coturn's `denied-peer-ip`), e.g. `{ "10.20.0.0/16" }`.
    #[serde(default, deserialize_with = "lua_list")]
    pub denied_peers: Vec<String>,
    /// Allocations per user (0 = unlimited).
    #[serde(default = "default_user_quota")]
    pub user_quota: usize,
    /// Allocations in total (0 = unlimited).
    #[serde(default = "default_total_quota")]
    pub total_quota: usize,
    /// Relayed bytes per second per allocation (0 = unlimited).
    #[serde(default)]
    pub max_bps: u64,
    /// Default / longest allocation lifetime, seconds.
    #[serde(default = "default_turn_lifetime")]
    pub default_lifetime: u64,
    /// Longest allocation lifetime, seconds.
    #[serde(default = "default_turn_max_lifetime")]
    pub max_lifetime: u64,
}

impl Default for TurnServerConfig {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("every key has a default")
    }
}

/// A list key: Lua cannot tell an empty list from an empty table, so `{}` arrives as an empty
/// JSON object and is read as an empty list.
fn lua_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    match Value::deserialize(d)? {
        Value::Object(m) if m.is_empty() => Ok(Vec::new()),
        v => serde_json::from_value(v).map_err(serde::de::Error::custom),
    }
}

fn default_turn_port() -> u16 {
    3478
}
fn default_turn_relay_range() -> PortRange {
    PortRange {
        min: 30000,
        max: 30999,
    }
}
fn default_realm() -> String {
    "ringsfu".into()
}
fn default_credential_ttl() -> u64 {
    86_400
}
fn default_user_quota() -> usize {
    10
}
fn default_total_quota() -> usize {
    1000
}
fn default_turn_lifetime() -> u64 {
    600
}
fn default_turn_max_lifetime() -> u64 {
    3600
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// Log level: error, warn, info, debug, trace.
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// Worker threads; 0 = available cores.
    #[serde(default)]
    pub workers: usize,
    /// "epoll" or "io_uring".
    #[serde(default = "default_backend")]
    pub io_backend: String,
    /// Signaling listener.
    pub http: HttpConfig,
    /// Media listener.
    pub web_rtc: WebRtcConfig,
    /// PlainTransport ports.
    #[serde(default = "default_port_range")]
    pub rtc_port_range: PortRange,
    /// Router options.
    pub router: RouterConfig,
    /// WebRtcTransport options for scripts.
    pub web_rtc_transport: WebRtcTransportConfig,
    /// Room script routing, first match wins.
    pub rooms: Vec<RoomRoute>,
    /// Lua limits.
    #[serde(default)]
    pub lua: LuaLimits,
    /// Whether POST /admin/reload (from 127.0.0.1) is served.
    #[serde(default = "yes")]
    pub admin_reload: bool,
    /// The `/rooms/:roomId/...` HTTP API.
    #[serde(default)]
    pub http_api: HttpApiConfig,
    /// Origin checks and the admin token (see [`crate::ops::config::SecurityConfig`]).
    #[serde(default)]
    pub security: crate::ops::config::SecurityConfig,
    /// Limits (see [`crate::ops::config::LimitsConfig`]).
    #[serde(default)]
    pub limits: crate::ops::config::LimitsConfig,
    /// Shutdown bound (see [`crate::ops::config::ShutdownConfig`]).
    #[serde(default)]
    pub shutdown: crate::ops::config::ShutdownConfig,
    /// Log format and per-module levels (see [`crate::ops::config::LogConfig`]).
    #[serde(default)]
    pub log: crate::ops::config::LogConfig,
    /// The call system's signaling (socket.io, `/call`).
    #[serde(default)]
    pub calls: CallsConfig,
    /// The STUN/TURN server.
    #[serde(default)]
    pub turn: TurnServerConfig,
    /// Directory relative script paths are also looked up in (the config file's parent's
    /// parent, so `lua/rooms/x.lua` works next to `lua/config.lua`). Not a config key.
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
}

impl Config {
    /// The embedded default configuration, with environment overrides applied.
    pub fn default_with_env() -> Result<Config, ConfigError> {
        let mut c = Config::from_lua_source(DEFAULT_CONFIG_LUA, "embedded lua/config.lua")?;
        c.apply_env(|k| std::env::var(k).ok())?;
        Ok(c)
    }

    /// Loads `path` (a Lua file), with environment overrides applied.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut c = Config::from_lua_source(&src, &path.display().to_string())?;
        c.base_dir = path
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty());
        c.apply_env(|k| std::env::var(k).ok())?;
        Ok(c)
    }

    /// Evaluates a Lua chunk returning the config table; no environment overrides.
    pub fn from_lua_source(src: &str, name: &str) -> Result<Config, ConfigError> {
        let lua_err = |e: mlua::Error| ConfigError::Lua {
            name: name.to_owned(),
            message: e.to_string(),
        };
        // A fresh, throwaway state: the config runs once and may use the standard library.
        let lua = mlua::Lua::new();
        let value: mlua::Value = lua
            .load(src)
            .set_name(format!("@{name}"))
            .eval()
            .map_err(lua_err)?;
        if !value.is_table() {
            return Err(ConfigError::Lua {
                name: name.to_owned(),
                message: format!("must return a table, returned a {}", value.type_name()),
            });
        }
        let json: Value = mlua::LuaSerdeExt::from_value(&lua, value).map_err(lua_err)?;
        Config::from_json(json, name)
    }

    /// Deserializes and validates the config from its JSON form.
    pub fn from_json(json: Value, name: &str) -> Result<Config, ConfigError> {
        let c: Config = serde_path_to_error::deserialize(json).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::Key {
                name: name.to_owned(),
                key: if key == "." {
                    "(top level)".into()
                } else {
                    key
                },
                message: e.into_inner().to_string(),
            }
        })?;
        c.validate(name)?;
        Ok(c)
    }

    /// Applies the `RINGSFU_*` environment overrides read through `get`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(var: &str, v: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            v.trim().parse().map_err(|e: T::Err| ConfigError::Key {
                name: "environment".into(),
                key: var.into(),
                message: format!("{e} (value {v:?})"),
            })
        }
        if let Some(v) = get("RINGSFU_LISTEN_IP") {
            let ip: IpAddr = parse("RINGSFU_LISTEN_IP", &v)?;
            self.http.listen_ip = ip;
            self.web_rtc.listen_ip = ip;
        }
        if let Some(v) = get("RINGSFU_ANNOUNCED_ADDRESS") {
            self.web_rtc.announced_address = Some(v).filter(|s| !s.trim().is_empty());
        }
        if let Some(v) = get("RINGSFU_HTTP_PORT") {
            self.http.port = parse("RINGSFU_HTTP_PORT", &v)?;
        }
        if let Some(v) = get("RINGSFU_RTC_PORT") {
            self.web_rtc.port = parse("RINGSFU_RTC_PORT", &v)?;
        }
        if let Some(v) = get("RINGSFU_WORKERS") {
            self.workers = parse("RINGSFU_WORKERS", &v)?;
        }
        if let Some(v) = get("RINGSFU_IO_BACKEND") {
            self.io_backend = v;
        }
        if let Some(v) = get("RINGSFU_TLS_CERT") {
            self.http.tls.cert = Some(v.into());
        }
        if let Some(v) = get("RINGSFU_TLS_KEY") {
            self.http.tls.key = Some(v.into());
        }
        if let Some(v) = get("RINGSFU_LOG_LEVEL") {
            self.log_level = v;
        }
        crate::ops::config::apply_env(self, &get);
        if let Some(v) = get("RINGSFU_TURN_PORT") {
            self.turn.port = parse("RINGSFU_TURN_PORT", &v)?;
        }
        if let Some(v) = get("RINGSFU_TURN_ENABLED") {
            self.turn.enabled = parse("RINGSFU_TURN_ENABLED", &v)?;
        }
        if let Some(v) = get("RINGSFU_TURN_ALLOW_LOOPBACK_PEERS") {
            self.turn.allow_loopback_peers = parse("RINGSFU_TURN_ALLOW_LOOPBACK_PEERS", &v)?;
        }
        if let Some(v) = get("RINGSFU_TURN_SECRET") {
            self.turn.secret = Some(v).filter(|s| !s.is_empty());
        }
        if let Some(v) = get("RINGSFU_TURN_RELAY_PORTS") {
            let (lo, hi) = v.split_once('-').unwrap_or((v.as_str(), v.as_str()));
            self.turn.relay_port_range = PortRange {
                min: parse("RINGSFU_TURN_RELAY_PORTS", lo)?,
                max: parse("RINGSFU_TURN_RELAY_PORTS", hi)?,
            };
        }
        self.validate("environment")
    }

    /// Number of workers to start (resolves 0 to the available cores).
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }

    /// The log level as a filter.
    pub fn log_filter(&self) -> log::LevelFilter {
        self.log_level.parse().unwrap_or(log::LevelFilter::Info)
    }

    fn validate(&self, name: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError::Key {
            name: name.to_owned(),
            key: key.to_owned(),
            message,
        };
        for range in &self.turn.denied_peers {
            if let Err(e) = range.parse::<ringsfu_core::turn::PeerRange>() {
                return Err(bad("turn.deniedPeers", e.to_string()));
            }
        }
        if self.log_level.parse::<log::LevelFilter>().is_err() {
            return Err(bad(
                "logLevel",
                format!(
                    "{:?} is not one of off, error, warn, info, debug, trace",
                    self.log_level
                ),
            ));
        }
        if !matches!(self.io_backend.as_str(), "epoll" | "io_uring" | "uring") {
            return Err(bad(
                "ioBackend",
                format!("{:?} is not \"epoll\" or \"io_uring\"", self.io_backend),
            ));
        }
        if self.workers > 1024 {
            return Err(bad(
                "workers",
                format!("{} is more than 1024", self.workers),
            ));
        }
        let n = self.worker_count();
        if self.web_rtc.port != 0 && self.web_rtc.port as usize + n - 1 > u16::MAX as usize {
            return Err(bad(
                "webRtc.port",
                format!("{} + {n} workers runs past port 65535", self.web_rtc.port),
            ));
        }
        if !self.web_rtc.enable_udp && !self.web_rtc.enable_tcp {
            return Err(bad(
                "webRtc.enableUdp",
                "enableUdp and enableTcp are both false".into(),
            ));
        }
        if self.rtc_port_range.min == 0 || self.rtc_port_range.min > self.rtc_port_range.max {
            return Err(bad(
                "rtcPortRange",
                format!(
                    "min {} / max {}: need 1 <= min <= max",
                    self.rtc_port_range.min, self.rtc_port_range.max
                ),
            ));
        }
        if self.http.tls.cert.is_some() != self.http.tls.key.is_some() {
            return Err(bad("http.tls", "set both cert and key, or neither".into()));
        }
        if self.router.media_codecs.is_empty() {
            return Err(bad("router.mediaCodecs", "is empty".into()));
        }
        if self.rooms.is_empty() {
            return Err(bad("rooms", "no room script configured".into()));
        }
        if self.web_rtc_transport.ice_consent_timeout != 0
            && !(10..=60).contains(&self.web_rtc_transport.ice_consent_timeout)
        {
            return Err(bad(
                "webRtcTransport.iceConsentTimeout",
                format!(
                    "{} is not 0 or 10..60 seconds",
                    self.web_rtc_transport.ice_consent_timeout
                ),
            ));
        }
        if self.calls.room_capacity == 0 {
            return Err(ConfigError::Key {
                name: name.to_owned(),
                key: "calls.roomCapacity".into(),
                message: "must be at least 1".into(),
            });
        }
        if !self.calls.socket_io_path.starts_with('/') || !self.calls.ws_path.starts_with('/') {
            return Err(ConfigError::Key {
                name: name.to_owned(),
                key: "calls.socketIoPath/wsPath".into(),
                message: "paths must start with /".into(),
            });
        }
        if self.calls.ping_interval_ms < 100 || self.calls.ping_timeout_ms < 100 {
            return Err(ConfigError::Key {
                name: name.to_owned(),
                key: "calls.pingIntervalMs/pingTimeoutMs".into(),
                message: "must be at least 100".into(),
            });
        }
        if self.lua.instruction_limit < 1000 {
            return Err(bad(
                "lua.instructionLimit",
                format!("{} is below 1000", self.lua.instruction_limit),
            ));
        }
        if self.lua.memory_limit_mb < 1 {
            return Err(bad("lua.memoryLimitMb", "must be at least 1".into()));
        }
        if let Err((key, message)) = crate::ops::config::validate(self) {
            return Err(bad(key, message));
        }
        Ok(())
    }
}

fn default_listen_ip() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}
fn default_http_port() -> u16 {
    4443
}
fn default_rtc_port() -> u16 {
    44444
}
fn default_consent() -> u32 {
    20
}
fn default_log_level() -> String {
    "info".into()
}
fn default_backend() -> String {
    "epoll".into()
}
fn default_port_range() -> PortRange {
    PortRange {
        min: 40000,
        max: 49999,
    }
}
fn default_instruction_limit() -> u64 {
    10_000_000
}
fn default_memory_mb() -> u64 {
    64
}
fn default_http_api_script() -> Option<String> {
    Some("lua/http/broadcasters.lua".into())
}
fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embedded() -> Config {
        Config::from_lua_source(DEFAULT_CONFIG_LUA, "embedded").unwrap()
    }

    #[test]
    fn embedded_defaults_are_the_documented_ones() {
        let c = embedded();
        assert_eq!(c.http.listen_ip, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(c.http.port, 4443);
        assert_eq!(c.web_rtc.port, 44444);
        assert_eq!(c.web_rtc.announced_address.as_deref(), Some("127.0.0.1"));
        assert_eq!(c.workers, 0);
        assert!(c.worker_count() >= 1);
        assert_eq!(c.io_backend, "epoll");
        assert_eq!(c.router.media_codecs.len(), 5);
        assert_eq!(
            c.router.media_codecs[3]["parameters"]["profile-level-id"],
            "4d0032"
        );
        assert_eq!(c.web_rtc_transport.ice_consent_timeout, 20);
        assert_eq!(c.rooms.last().unwrap().script, "lua/rooms/demo.lua");
        assert!(c.http.tls.cert.is_none());
        assert_eq!(c.http_api, HttpApiConfig::default());
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = Config::from_lua_source(
            &DEFAULT_CONFIG_LUA.replace("port = 4443", "port = \"x\""),
            "t",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("http.port"), "{msg}");
    }

    #[test]
    fn unknown_key_names_the_key() {
        let err = Config::from_lua_source(
            &DEFAULT_CONFIG_LUA.replace("workers = 0,", "workers = 0, wrokers = 3,"),
            "t",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("wrokers"), "{msg}");
    }

    #[test]
    fn empty_lua_tables_are_empty_lists() {
        let src = DEFAULT_CONFIG_LUA.replace(
            "logLevel = \"info\",",
            "logLevel = \"info\", turn = { deniedPeers = {}, urls = {} },",
        );
        let c = Config::from_lua_source(&src, "t").unwrap();
        assert!(c.turn.denied_peers.is_empty() && c.turn.urls.is_empty());
        let src = DEFAULT_CONFIG_LUA.replace(
            "logLevel = \"info\",",
            "logLevel = \"info\", turn = { deniedPeers = { \"10.0.0.0/8\", \"::1\" } },",
        );
        let c = Config::from_lua_source(&src, "t").unwrap();
        assert_eq!(c.turn.denied_peers, ["10.0.0.0/8", "::1"]);
    }

    #[test]
    fn bad_values_are_refused() {
        let cases = [
            (
                "logLevel = \"info\",",
                "logLevel = \"info\", turn = { deniedPeers = { \"10.0.0.0/40\" } },",
                "turn.deniedPeers",
            ),
            (
                "logLevel = \"info\",",
                "logLevel = \"info\", turn = { deniedPeers = { 5 } },",
                "turn.deniedPeers",
            ),
            (
                "ioBackend = \"epoll\"",
                "ioBackend = \"kqueue\"",
                "ioBackend",
            ),
            ("logLevel = \"info\"", "logLevel = \"loud\"", "logLevel"),
            (
                "iceConsentTimeout = 20",
                "iceConsentTimeout = 5",
                "iceConsentTimeout",
            ),
            (
                "min = 40000, max = 49999",
                "min = 5, max = 4",
                "rtcPortRange",
            ),
        ];
        for (from, to, key) in cases {
            let src = DEFAULT_CONFIG_LUA.replace(from, to);
            assert_ne!(src, DEFAULT_CONFIG_LUA, "{from}");
            let msg = Config::from_lua_source(&src, "t").unwrap_err().to_string();
            assert!(msg.contains(key), "{msg}");
        }
        let msg = Config::from_lua_source("return 5", "t")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("must return a table"), "{msg}");
        let msg = Config::from_lua_source("return {", "t")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("config t"), "{msg}");
    }

    #[test]
    fn env_overrides() {
        let mut c = embedded();
        c.apply_env(|k| match k {
            "RINGSFU_ANNOUNCED_ADDRESS" => Some("203.0.113.5".into()),
            "RINGSFU_HTTP_PORT" => Some("8443".into()),
            "RINGSFU_RTC_PORT" => Some("50000".into()),
            "RINGSFU_WORKERS" => Some("3".into()),
            "RINGSFU_LISTEN_IP" => Some("0.0.0.0".into()),
            "RINGSFU_IO_BACKEND" => Some("io_uring".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.web_rtc.announced_address.as_deref(), Some("203.0.113.5"));
        assert_eq!(c.http.port, 8443);
        assert_eq!(c.web_rtc.port, 50000);
        assert_eq!(c.worker_count(), 3);
        assert_eq!(c.http.listen_ip, IpAddr::from([0, 0, 0, 0]));
        assert_eq!(c.io_backend, "io_uring");

        let err = embedded()
            .apply_env(|k| (k == "RINGSFU_HTTP_PORT").then(|| "99999".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("RINGSFU_HTTP_PORT"), "{err}");
        let err = embedded()
            .apply_env(|k| (k == "RINGSFU_IO_BACKEND").then(|| "poll".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ioBackend"), "{err}");
    }
}
