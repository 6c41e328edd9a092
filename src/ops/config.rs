//! Operations configuration: who may use the signaling port (`security`), the server's limits
//! (`limits`), shutdown and drain (`shutdown`), and the log format (`log`). Each is a top-level
//! table of `lua/config.lua`; every key is optional.

use serde::Deserialize;

/// `security`: Origin checks and the admin token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecurityConfig {
    /// Cross origins the HTTP API answers (`scheme://host[:port]`, port may be `*`; `"*"` any;
    /// `"null"` file pages). Same-origin requests and requests without `Origin` are always
    /// served. Empty: same origin only.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Cross origins allowed to open the protoo WebSocket (same syntax). Empty: same origin only.
    #[serde(default)]
    pub ws_origins: Vec<String>,
    /// When set, `/admin/*` and `/metrics` are also served to non-loopback clients that send
    /// `Authorization: Bearer <token>`. Unset: loopback clients only.
    #[serde(default)]
    pub admin_token: Option<String>,
    /// Key room scripts verify room tokens with (`ringsfu.config.tokens.key`; the shipped
    /// `lua/rooms/token_room.lua` uses it): the shared secret for HS256, a PEM public key for
    /// ES256/RS256. Unset: token rooms refuse everyone (503).
    #[serde(default)]
    pub token_key: Option<String>,
    /// Algorithm of room tokens (`ringsfu.config.tokens.alg`), default `"HS256"`.
    #[serde(default = "d_alg")]
    pub token_alg: String,
}

fn d_alg() -> String {
    "HS256".into()
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            cors_origins: Vec::new(),
            ws_origins: Vec::new(),
            admin_token: None,
            token_key: None,
            token_alg: d_alg(),
        }
    }
}

/// `limits`: what one server, room, peer or client address may use. 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LimitsConfig {
    /// Rooms open on the server at once (429 for a new room beyond).
    #[serde(default = "d_rooms")]
    pub rooms: u32,
    /// protoo peers per room (403 beyond). A room script's own `limits` table overrides this
    /// and the three per-peer limits for its rooms.
    #[serde(default = "d_peers")]
    pub peers_per_room: u32,
    /// Transports a peer may hold (enforced by the demo room script: 429).
    #[serde(default = "d_transports")]
    pub transports_per_peer: u32,
    /// Producers a peer may hold (demo room script: 429).
    #[serde(default = "d_producers")]
    pub producers_per_peer: u32,
    /// Consumers a peer may hold (demo room script: further consumers are not created).
    #[serde(default = "d_consumers")]
    pub consumers_per_peer: u32,
    /// protoo requests per second per connection (token bucket holding two seconds' worth;
    /// error 429 beyond; a room script's `limits` cannot change it: it is enforced before any
    /// room is involved).
    #[serde(default = "d_req_conn")]
    pub requests_per_second: u32,
    /// protoo requests per second from one client IP, all its connections together.
    #[serde(default = "d_req_ip")]
    pub requests_per_second_per_ip: u32,
    /// Concurrent protoo connections from one client IP (429 beyond).
    #[serde(default = "d_conn_ip")]
    pub connections_per_ip: u32,
    /// Largest HTTP request body, bytes (413 beyond).
    #[serde(default = "d_body")]
    pub http_body_bytes: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            rooms: d_rooms(),
            peers_per_room: d_peers(),
            transports_per_peer: d_transports(),
            producers_per_peer: d_producers(),
            consumers_per_peer: d_consumers(),
            requests_per_second: d_req_conn(),
            requests_per_second_per_ip: d_req_ip(),
            connections_per_ip: d_conn_ip(),
            http_body_bytes: d_body(),
        }
    }
}

fn d_rooms() -> u32 {
    10_000
}
fn d_peers() -> u32 {
    500
}
fn d_transports() -> u32 {
    16
}
fn d_producers() -> u32 {
    32
}
fn d_consumers() -> u32 {
    5000
}
fn d_req_conn() -> u32 {
    100
}
fn d_req_ip() -> u32 {
    1000
}
fn d_conn_ip() -> u32 {
    500
}
fn d_body() -> u32 {
    1024 * 1024
}

/// `shutdown`: what SIGTERM does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ShutdownConfig {
    /// Seconds SIGTERM waits for peers and transports to close before the process exits anyway.
    #[serde(default = "d_grace")]
    pub timeout: u32,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig { timeout: d_grace() }
    }
}

fn d_grace() -> u32 {
    10
}

/// `log`: format and per-module levels (the level itself is `logLevel`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogConfig {
    /// `"text"` (default) or `"json"` (one JSON object per line).
    #[serde(default)]
    pub format: Option<String>,
    /// Per-module levels, `{ ["ringsfu_core::engine"] = "debug", dtls = "error" }`, applied
    /// after `logLevel` and before `RUST_LOG`.
    #[serde(default)]
    pub modules: std::collections::BTreeMap<String, String>,
}

/// Applies the operations environment overrides: `RINGSFU_CORS_ORIGINS` and
/// `RINGSFU_WS_ORIGINS` (comma-separated lists, replacing the configured ones),
/// `RINGSFU_ADMIN_TOKEN`, `RINGSFU_TOKEN_KEY`, `RINGSFU_LOG_FORMAT`, `RINGSFU_SHUTDOWN_TIMEOUT` (seconds; a value
/// that is not a number is caught by validation as 0 → refused).
pub fn apply_env(c: &mut crate::Config, get: &impl Fn(&str) -> Option<String>) {
    let list = |v: String| -> Vec<String> {
        v.split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    };
    if let Some(v) = get("RINGSFU_CORS_ORIGINS") {
        c.security.cors_origins = list(v);
    }
    if let Some(v) = get("RINGSFU_WS_ORIGINS") {
        c.security.ws_origins = list(v);
    }
    if let Some(v) = get("RINGSFU_ADMIN_TOKEN") {
        c.security.admin_token = Some(v).filter(|s| !s.is_empty());
    }
    if let Some(v) = get("RINGSFU_TOKEN_KEY") {
        c.security.token_key = Some(v).filter(|s| !s.is_empty());
    }
    if let Some(v) = get("RINGSFU_LOG_FORMAT") {
        c.log.format = Some(v);
    }
    if let Some(v) = get("RINGSFU_SHUTDOWN_TIMEOUT") {
        c.shutdown.timeout = v.trim().parse().unwrap_or(0);
    }
}

/// Checks the operations keys; `Err((key, message))` names the first bad one.
pub fn validate(c: &crate::Config) -> Result<(), (&'static str, String)> {
    ringsfu_plugins::OriginList::new(c.security.cors_origins.iter().cloned())
        .map_err(|e| ("security.corsOrigins", e))?;
    ringsfu_plugins::OriginList::new(c.security.ws_origins.iter().cloned())
        .map_err(|e| ("security.wsOrigins", e))?;
    if let Some(t) = &c.security.admin_token {
        if t.len() < 16 {
            return Err((
                "security.adminToken",
                "is shorter than 16 characters (RINGSFU_ADMIN_TOKEN too)".into(),
            ));
        }
    }
    if !(1..=3600).contains(&c.shutdown.timeout) {
        return Err((
            "shutdown.timeout",
            format!(
                "{} is not 1..3600 seconds (RINGSFU_SHUTDOWN_TIMEOUT too)",
                c.shutdown.timeout
            ),
        ));
    }
    if !matches!(
        c.security.token_alg.as_str(),
        "HS256"
            | "HS384"
            | "HS512"
            | "ES256"
            | "ES384"
            | "RS256"
            | "RS384"
            | "RS512"
            | "PS256"
            | "PS384"
            | "PS512"
    ) {
        return Err((
            "security.tokenAlg",
            format!(
                "{:?} is not HS256/384/512, ES256/384, RS256/384/512 or PS256/384/512",
                c.security.token_alg
            ),
        ));
    }
    match c.log.format.as_deref() {
        None | Some("text") | Some("json") => {}
        Some(other) => {
            return Err((
                "log.format",
                format!("{other:?} is not \"text\" or \"json\" (RINGSFU_LOG_FORMAT too)"),
            ))
        }
    }
    for (module, level) in &c.log.modules {
        if level.parse::<log::LevelFilter>().is_err() {
            return Err((
                "log.modules",
                format!("{module} = {level:?}: not one of off, error, warn, info, debug, trace"),
            ));
        }
    }
    Ok(())
}
