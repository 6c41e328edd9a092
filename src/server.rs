//! The whole server as a library call: workers, Lua hosts, signaling. `main` and the
//! integration tests both start it through [`start`].

use std::net::SocketAddr;
use std::sync::Arc;

use std::time::Duration;

use ringsfu_plugins::{ServerConfig, ServerHandle, SessionRoutes, TlsFiles};
use serde_json::json;

use crate::config::Config;
use crate::executor::WorkerExec;
use crate::lua_host::{HostSettings, TurnMint};
use crate::registry::Registry;
use crate::scripts::{Route, ScriptError, ScriptSource, ScriptStore};
use crate::shared::Shared;
use crate::signaling::{Http, Protoo};
use ringsfu_core::turn::udp::{TurnHandle, TurnListen};
use ringsfu_core::turn::TurnConfig;

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A room script is missing or broken.
    #[error(transparent)]
    Script(#[from] ScriptError),
    /// The router media codecs are not valid.
    #[error("config key `router.mediaCodecs`: {0}")]
    MediaCodecs(String),
    /// A worker could not start (port in use, ...).
    #[error("{0}")]
    Worker(String),
    /// The signaling listener could not start.
    #[error(transparent)]
    Signaling(#[from] ringsfu_plugins::PluginError),
}

/// A running server. Dropping it stops the signaling listener; the workers stop once the last
/// connection task lets go of them.
pub struct Server {
    signaling: ServerHandle,
    shared: Arc<Shared>,
    turn: Option<TurnHandle>,
}

impl Server {
    /// The signaling address (HTTP + WebSocket).
    pub fn local_addr(&self) -> SocketAddr {
        self.signaling.local_addr()
    }

    /// Whether signaling speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.signaling.is_tls()
    }

    /// Re-reads the room scripts: new rooms get the new versions, running rooms keep theirs.
    /// Returns the names of the scripts that changed.
    pub fn reload(&self) -> Result<Vec<String>, ScriptError> {
        self.shared.scripts.reload()
    }

    /// The scripts, for reload from elsewhere (signal handler).
    pub fn scripts(&self) -> Arc<ScriptStore> {
        self.shared.scripts.clone()
    }

    /// The TURN server's UDP address, when it runs.
    pub fn turn_addr(&self) -> Option<SocketAddr> {
        self.turn.as_ref().and_then(|t| t.udp)
    }

    /// Number of rooms that have connections.
    pub fn room_count(&self) -> usize {
        self.shared.registry.len()
    }

    /// Stops accepting and closes every peer.
    pub async fn shutdown(self) {
        self.signaling.shutdown().await;
    }

    /// Turns drain mode on (new rooms refused with 503, running rooms go on); returns whether
    /// it was off.
    pub fn drain(&self) -> bool {
        self.shared.ops.drain.start()
    }

    /// Graceful stop (SIGTERM): drain, then close every protoo peer (close code 1001, reason
    /// "server shutting down") and wait, at most `bound`, until every room on every worker
    /// has closed (their routers, so every transport, with them). Returns whether everything
    /// closed within the bound.
    pub async fn shutdown_gracefully(self, bound: std::time::Duration) -> bool {
        self.shared.ops.drain.start();
        let deadline = tokio::time::Instant::now() + bound;
        let shared = self.shared.clone();
        let closed = tokio::time::timeout_at(deadline, self.signaling.shutdown())
            .await
            .is_ok();
        let rooms_gone = crate::ops::close_all_rooms(&shared, deadline).await;
        closed && rooms_gone
    }
}

/// Starts the server described by `config`, with one media worker per configured worker.
/// Must run inside a multi-threaded tokio runtime.
pub async fn start(config: Config) -> Result<Server, StartError> {
    let routes = config.rooms.iter().map(Route::from).collect();
    crate::lua_host::engine_api::check_media_codecs(&config.router.media_codecs)
        .map_err(StartError::MediaCodecs)?;
    let workers = crate::workers::spawn_engine_workers(&config).map_err(StartError::Worker)?;
    start_with(config, routes, workers).await
}

/// Starts the server with given room routes and worker threads (embedders, tests).
pub async fn start_with(
    config: Config,
    routes: Vec<Route>,
    workers: Vec<Arc<dyn WorkerExec>>,
) -> Result<Server, StartError> {
    let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let socket_io_script = nonempty(&config.calls.socket_io_script);
    let ws_script = nonempty(&config.calls.ws_script);
    let extra = config
        .http_api
        .script
        .iter()
        .chain(socket_io_script.iter())
        .chain(ws_script.iter())
        .chain(std::iter::once(&crate::whip::SCRIPT.to_owned()))
        .map(|p| ScriptSource::Path(p.clone()))
        .collect();
    let scripts = Arc::new(ScriptStore::with_extra(
        routes,
        extra,
        config.base_dir.clone(),
    )?);
    let (turn, turn_mint) = if config.turn.enabled {
        start_turn(&config, &workers).await
    } else {
        (None, None)
    };
    let registry = Arc::new(Registry::new(workers.len()));
    let host = Arc::new(HostSettings {
        limits_config: config.limits,
        limits: config.lua,
        scripts: scripts.clone(),
        registry: registry.clone(),
        media_codecs: config.router.media_codecs.clone(),
        http_script: config.http_api.script.clone(),
        create_rooms_over_http: config.http_api.create_rooms,
        script_config: json!({
            "webRtcTransport": config.web_rtc_transport,
            "router": {"mediaCodecs": config.router.media_codecs},
            // WHIP/WHEP (lua/lib/whip_util.lua): bearer token and ICE servers from the environment.
            "whip": {
                "token": std::env::var("RINGSFU_WHIP_TOKEN").ok(),
                "iceServers": std::env::var("RINGSFU_WHIP_ICE_SERVERS")
                    .ok()
                    .map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect::<Vec<_>>())
                    .unwrap_or_default(),
                "turnUsername": std::env::var("RINGSFU_WHIP_TURN_USERNAME").ok(),
                "turnCredential": std::env::var("RINGSFU_WHIP_TURN_CREDENTIAL").ok(),
            },
            "webRtc": {
                "enableUdp": config.web_rtc.enable_udp,
                "enableTcp": config.web_rtc.enable_tcp,
            },
            // No "key" entry without a key (JSON null would reach Lua as ringsfu.null, truthy).
            "tokens": match &config.security.token_key {
                Some(key) => json!({"key": key, "alg": config.security.token_alg}),
                None => json!({"alg": config.security.token_alg}),
            },
            "calls": config.calls,
        }),
        turn: turn_mint,
    });
    let shared = Arc::new(Shared {
        workers,
        registry,
        host,
        scripts,
        admin_reload: config.admin_reload,
        ops: crate::ops::OpsState::new(&config),
        call_pages: config.calls.pages,
        turn_stats: turn.as_ref().map(|t| t.stats.clone()),
    });
    let mut sc = ServerConfig::new(SocketAddr::new(config.http.listen_ip, config.http.port));
    if let (Some(cert), Some(key)) = (&config.http.tls.cert, &config.http.tls.key) {
        sc.tls = Some(TlsFiles {
            cert_pem: cert.clone(),
            key_pem: key.clone(),
        });
    }
    sc.static_dir = config.http.static_dir.clone();
    sc.max_body_bytes = config.limits.http_body_bytes as usize;
    sc.max_connections_per_ip = config.limits.connections_per_ip;
    sc.requests_per_second = config.limits.requests_per_second;
    sc.requests_per_second_per_ip = config.limits.requests_per_second_per_ip;
    // Validated with the configuration: these cannot fail here.
    sc.cors_origins =
        ringsfu_plugins::OriginList::new(config.security.cors_origins.iter().cloned())
            .unwrap_or_default();
    sc.ws_origins = ringsfu_plugins::OriginList::new(config.security.ws_origins.iter().cloned())
        .unwrap_or_default();
    let sessions = (socket_io_script.is_some() || ws_script.is_some()).then(|| SessionRoutes {
        handler: Arc::new(crate::calls::Sessions {
            workers: shared.workers.clone(),
            host: shared.host.clone(),
            socket_io_script: socket_io_script.clone(),
            ws_script: ws_script.clone(),
        }),
        socket_io_path: socket_io_script
            .as_ref()
            .map(|_| config.calls.socket_io_path.clone()),
        ws_paths: ws_script
            .iter()
            .map(|_| config.calls.ws_path.clone())
            .collect(),
        ping_interval: Duration::from_millis(config.calls.ping_interval_ms),
        ping_timeout: Duration::from_millis(config.calls.ping_timeout_ms),
    });
    let signaling = ringsfu_plugins::serve_with_sessions(
        sc,
        Arc::new(Protoo(shared.clone())),
        Arc::new(Http(shared.clone())),
        sessions,
    )
    .await?;
    Ok(Server {
        signaling,
        shared,
        turn,
    })
}

/// Starts the STUN/TURN server on worker 0 (its tasks relay on that worker's thread). A port
/// that cannot be bound is logged and TURN stays off (the rest of the server still starts).
async fn start_turn(
    config: &Config,
    workers: &[Arc<dyn WorkerExec>],
) -> (Option<TurnHandle>, Option<TurnMint>) {
    let t = &config.turn;
    let Some(worker) = workers.first() else {
        return (None, None);
    };
    let secret = t
        .secret
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let tc = TurnConfig {
        realm: t.realm.clone(),
        users: t.users.clone().into_iter().collect(),
        secret: Some(secret.clone()),
        allow_loopback_peers: t.allow_loopback_peers,
        allow_private_peers: t.allow_private_peers,
        // Validated when the config was loaded.
        denied_peers: t
            .denied_peers
            .iter()
            .filter_map(|r| r.parse().ok())
            .collect(),
        default_lifetime: Duration::from_secs(t.default_lifetime),
        max_lifetime: Duration::from_secs(t.max_lifetime.max(t.default_lifetime)),
        user_quota: t.user_quota,
        total_quota: t.total_quota,
        max_bps: t.max_bps,
        ..TurnConfig::default()
    };
    let listen = TurnListen {
        udp: SocketAddr::new(t.listen_ip, t.port),
        tcp: t.enable_tcp.then(|| SocketAddr::new(t.listen_ip, t.port)),
        relay_ip: t.relay_ip.unwrap_or(t.listen_ip),
        relay_ports: (t.relay_port_range.min, t.relay_port_range.max),
    };
    let key = *uuid::Uuid::new_v4().as_bytes();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let posted = worker.post(Box::new(move || {
        tokio::task::spawn_local(async move {
            let _ = tx.send(ringsfu_core::turn::udp::serve(tc, listen, key).await);
        });
    }));
    let handle = match (posted, rx.await) {
        (true, Ok(Ok(h))) => h,
        (_, Ok(Err(e))) => {
            log::error!(
                "TURN server not started: cannot bind {}:{}: {e}",
                t.listen_ip,
                t.port
            );
            return (None, None);
        }
        _ => {
            log::error!("TURN server not started: worker 0 is gone");
            return (None, None);
        }
    };
    let host = config
        .web_rtc
        .announced_address
        .clone()
        .unwrap_or_else(|| t.listen_ip.to_string());
    let urls = if t.urls.is_empty() {
        let mut u = vec![format!("turn:{host}:{}?transport=udp", t.port)];
        if t.enable_tcp {
            u.push(format!("turn:{host}:{}?transport=tcp", t.port));
        }
        u
    } else {
        t.urls.clone()
    };
    log::info!(
        "STUN/TURN server on {}:{} (udp{}), relay ports {}-{}",
        t.listen_ip,
        t.port,
        if t.enable_tcp { "+tcp" } else { "" },
        t.relay_port_range.min,
        t.relay_port_range.max
    );
    let mint = TurnMint {
        secret,
        ttl: t.credential_ttl,
        urls,
    };
    (Some(handle), Some(mint))
}
