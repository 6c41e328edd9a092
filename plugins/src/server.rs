//! The listener: accepts TCP (and TLS) connections, serves HTTP/1.1 on each, and routes
//! upgrade requests to the protoo side and the rest to the HTTP side.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::config::ServerConfig;
use crate::ctx::{stopped, Ctx};
use crate::error::PluginError;
use crate::handler::HttpHandler;
use crate::protoo::ProtooHandler;

/// Time a client has to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client has to send a request's headers (slowloris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// A running server. Dropping it (or calling [`ServerHandle::shutdown`]) stops accepting
/// connections, lets in-flight HTTP requests finish, and closes every WebSocket peer with
/// close code 1001 ("going away", so protoo-client reconnects to the next server).
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    tls: bool,
    shutdown: watch::Sender<bool>,
    accept_task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// The address actually bound (with the real port when the configuration said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether the port speaks TLS (https/wss).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Stops the server and waits until the listening socket is closed.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        if let Some(task) = self.accept_task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

/// Binds `config.listen` and serves until the returned handle is dropped or shut down.
/// Must be called inside a tokio runtime; connection tasks run on that runtime.
pub async fn serve(
    config: ServerConfig,
    protoo: Arc<dyn ProtooHandler>,
    http: Arc<dyn HttpHandler>,
) -> Result<ServerHandle, PluginError> {
    serve_with_sessions(config, protoo, http, None).await
}

/// Like [`serve`], also serving socket.io and plain WebSocket event sessions on the paths of
/// `sessions` (see [`crate::SessionHandler`]).
pub async fn serve_with_sessions(
    config: ServerConfig,
    protoo: Arc<dyn ProtooHandler>,
    http: Arc<dyn HttpHandler>,
    sessions: Option<crate::session::SessionRoutes>,
) -> Result<ServerHandle, PluginError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| PluginError::NoRuntime)?;
    let acceptor = match &config.tls {
        Some(files) => Some(TlsAcceptor::from(crate::tls::server_config(files)?)),
        None => None,
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| PluginError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| PluginError::Bind {
        addr: config.listen,
        source,
    })?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let tls = acceptor.is_some();
    let ctx = Arc::new(Ctx {
        config,
        protoo,
        http,
        shutdown: shutdown_rx,
        runtime,
        ips: Arc::default(),
        sessions,
        eio: crate::eio_sessions::Registry::default(),
    });
    let accept_task = tokio::spawn(accept_loop(listener, acceptor, ctx));
    log::info!(
        "signaling server listening on {}://{local_addr}",
        if tls { "https" } else { "http" }
    );
    Ok(ServerHandle {
        local_addr,
        tls,
        shutdown: shutdown_tx,
        accept_task: Some(accept_task),
    })
}

async fn accept_loop(listener: TcpListener, acceptor: Option<TlsAcceptor>, ctx: Arc<Ctx>) {
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped(&mut shutdown) => break,
        };
        let (tcp, remote_addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                log::warn!("accept failed: {e}");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let ctx = ctx.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => serve_connection(tcp, remote_addr, ctx).await,
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => serve_connection(tls, remote_addr, ctx).await,
                        Ok(Err(e)) => log::debug!("TLS handshake with {remote_addr} failed: {e}"),
                        Err(_) => log::debug!("TLS handshake with {remote_addr} timed out"),
                    }
                }
            }
        });
    }
    log::info!("signaling server stopped accepting");
}

/// Serves HTTP/1.1 (with upgrades) on one connection until it ends or the server stops.
async fn serve_connection<S>(io: S, remote_addr: SocketAddr, ctx: Arc<Ctx>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut shutdown = ctx.shutdown.clone();
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let ctx = ctx.clone();
        async move {
            let resp = if crate::session_endpoint::claims(&req, &ctx) {
                crate::session_endpoint::handle(req, remote_addr, ctx).await
            } else if crate::request::is_upgrade(req.headers()) {
                crate::ws::handle_upgrade(req, remote_addr, ctx).await
            } else {
                crate::http::handle_http(req, remote_addr, ctx).await
            };
            Ok::<_, Infallible>(resp)
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stopped(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        log::debug!("HTTP connection from {remote_addr} ended: {e}");
    }
}
