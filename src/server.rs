//! The whole server as a library call: workers, Lua hosts, signaling. `main` and the
//! integration tests both start it through [`start`].

use std::net::SocketAddr;
use std::sync::Arc;

use std::time::Duration;

use ringsfu_plugins::{ServerConfig, ServerHandle, SessionRoutes, TlsFiles};
use serde_json::json;

use crate::config::Config;
use crate::executor::WorkerExec;
use crate::lua_host::HostSettings;
use crate::registry::Registry;
use crate::scripts::{Route, ScriptError, ScriptSource, ScriptStore};
use crate::signaling::{Http, Protoo, Shared};

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

    /// Number of rooms that have connections.
    pub fn room_count(&self) -> usize {
        self.shared.registry.len()
    }

    /// Stops accepting and closes every peer.
    pub async fn shutdown(self) {
        self.signaling.shutdown().await;
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
        .map(|p| ScriptSource::Path(p.clone()))
        .collect();
    let scripts = Arc::new(ScriptStore::with_extra(
        routes,
        extra,
        config.base_dir.clone(),
    )?);
    let registry = Arc::new(Registry::new(workers.len()));
    let host = Arc::new(HostSettings {
        limits: config.lua,
        scripts: scripts.clone(),
        registry: registry.clone(),
        media_codecs: config.router.media_codecs.clone(),
        http_script: config.http_api.script.clone(),
        create_rooms_over_http: config.http_api.create_rooms,
        script_config: json!({
            "webRtcTransport": config.web_rtc_transport,
            "router": {"mediaCodecs": config.router.media_codecs},
            "webRtc": {
                "enableUdp": config.web_rtc.enable_udp,
                "enableTcp": config.web_rtc.enable_tcp,
            },
            "calls": config.calls,
        }),
    });
    let shared = Arc::new(Shared {
        workers,
        registry,
        host,
        scripts,
        admin_reload: config.admin_reload,
        call_pages: config.calls.pages,
    });
    let mut sc = ServerConfig::new(SocketAddr::new(config.http.listen_ip, config.http.port));
    if let (Some(cert), Some(key)) = (&config.http.tls.cert, &config.http.tls.key) {
        sc.tls = Some(TlsFiles {
            cert_pem: cert.clone(),
            key_pem: key.clone(),
        });
    }
    sc.static_dir = config.http.static_dir.clone();
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
    Ok(Server { signaling, shared })
}
