//! The ringsfu binary: `ringsfu [--config PATH]`.

use std::path::PathBuf;
use std::process::ExitCode;

use ringsfu::Config;

const USAGE: &str = "usage: ringsfu [--config PATH]\n\
    Without --config the embedded lua/config.lua is used. Environment overrides:\n\
    RINGSFU_LISTEN_IP, RINGSFU_ANNOUNCED_ADDRESS, RINGSFU_HTTP_PORT, RINGSFU_RTC_PORT,\n\
    RINGSFU_WORKERS, RINGSFU_IO_BACKEND, RINGSFU_TLS_CERT, RINGSFU_TLS_KEY, RINGSFU_LOG_LEVEL.\n\
    RINGSFU_CORS_ORIGINS, RINGSFU_WS_ORIGINS, RINGSFU_ADMIN_TOKEN, RINGSFU_LOG_FORMAT,\n\
    RINGSFU_SHUTDOWN_TIMEOUT.\n\
    SIGHUP reloads the room scripts for new rooms; SIGUSR1 starts drain mode (no new rooms);\n\
    SIGTERM (or Ctrl-C) closes every peer and room and exits 0 within shutdown.timeout.";

fn main() -> ExitCode {
    let mut config_path: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" | "-c" => match args.next() {
                Some(p) => config_path = Some(p.into()),
                None => {
                    eprintln!("--config needs a path\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--help" | "-h" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let config = match &config_path {
        Some(p) => Config::load(p),
        None => Config::default_with_env(),
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringsfu: refusing to start: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = ringsfu::ops::logging::init(&config) {
        eprintln!("ringsfu: refusing to start: {e}");
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ringsfu: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(config))
}

async fn run(config: Config) -> ExitCode {
    let workers = config.worker_count();
    let shutdown_timeout = config.shutdown.timeout;
    let server = match ringsfu::start(config).await {
        Ok(s) => s,
        Err(e) => {
            log::error!("refusing to start: {e}");
            eprintln!("ringsfu: refusing to start: {e}");
            return ExitCode::from(2);
        }
    };
    log::info!(
        "ringsfu {} up: {}://{} with {workers} worker(s)",
        env!("CARGO_PKG_VERSION"),
        if server.is_tls() { "https" } else { "http" },
        server.local_addr()
    );
    use tokio::signal::unix::{signal, SignalKind};
    let watch = |kind: SignalKind, name: &str| match signal(kind) {
        Ok(s) => Some(s),
        Err(e) => {
            log::warn!("cannot watch {name}: {e}");
            None
        }
    };
    let mut hup = watch(SignalKind::hangup(), "SIGHUP (reload only over HTTP)");
    let mut term = watch(SignalKind::terminate(), "SIGTERM");
    let mut usr1 = watch(
        SignalKind::user_defined1(),
        "SIGUSR1 (drain only over HTTP)",
    );
    async fn next(s: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
        match s.as_mut() {
            Some(s) => s.recv().await,
            None => std::future::pending().await,
        }
    }
    let bound = std::time::Duration::from_secs(u64::from(shutdown_timeout));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            Some(()) = next(&mut term) => break,
            Some(()) = next(&mut usr1) => {
                if server.drain() {
                    tracing::warn!(signal = "SIGUSR1", "drain mode on: new rooms are refused, running rooms go on");
                }
            }
            Some(()) = next(&mut hup) => {
                match server.reload() {
                    Ok(changed) => log::info!("SIGHUP: scripts reloaded for new rooms; changed: {changed:?}"),
                    Err(e) => log::error!("SIGHUP: reload refused, keeping the running scripts: {e}"),
                }
            }
        }
    }
    tracing::info!(
        bound_s = bound.as_secs(),
        "shutting down: closing peers, rooms and transports"
    );
    // Whatever happens below (a worker thread that does not stop), the process is gone soon
    // after the bound.
    let _ = std::thread::Builder::new()
        .name("ringsfu-exit-watchdog".into())
        .spawn(move || {
            std::thread::sleep(bound + std::time::Duration::from_secs(2));
            eprintln!("ringsfu: shutdown did not finish within the bound; exiting");
            std::process::exit(1);
        });
    let clean = server.shutdown_gracefully(bound).await;
    if clean {
        tracing::info!("shutdown complete");
    } else {
        tracing::warn!(
            bound_s = bound.as_secs(),
            "shutdown bound reached; exiting anyway"
        );
    }
    ExitCode::SUCCESS
}
