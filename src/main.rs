//! The ringsfu binary: `ringsfu [--config PATH]`.

use std::path::PathBuf;
use std::process::ExitCode;

use ringsfu::Config;

const USAGE: &str = "usage: ringsfu [--config PATH]\n\
    Without --config the embedded lua/config.lua is used. Environment overrides:\n\
    RINGSFU_LISTEN_IP, RINGSFU_ANNOUNCED_ADDRESS, RINGSFU_HTTP_PORT, RINGSFU_RTC_PORT,\n\
    RINGSFU_WORKERS, RINGSFU_IO_BACKEND, RINGSFU_TLS_CERT, RINGSFU_TLS_KEY, RINGSFU_LOG_LEVEL.\n\
    SIGHUP reloads the room scripts for new rooms.";

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
    env_logger::Builder::new()
        .filter_level(config.log_filter())
        // The dtls crate warns about every TLS extension a browser offers that it does not
        // implement (several per connection); that is expected, not an operator's problem.
        // RUST_LOG (parsed next) can still turn it back on.
        .filter_module("dtls::handshake", log::LevelFilter::Error)
        .parse_env("RUST_LOG")
        .init();
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
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            log::warn!("cannot watch SIGHUP, reload only over HTTP: {e}");
            None
        }
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => None } } => {
                match server.reload() {
                    Ok(changed) => log::info!("SIGHUP: scripts reloaded for new rooms; changed: {changed:?}"),
                    Err(e) => log::error!("SIGHUP: reload refused, keeping the running scripts: {e}"),
                }
            }
        }
    }
    log::info!("shutting down");
    server.shutdown().await;
    ExitCode::SUCCESS
}
