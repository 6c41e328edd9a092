//! Logging: `tracing` with `tracing-subscriber`, text or JSON lines on stderr. The `log` macros
//! used across the code base are bridged into it (`tracing-log`), so they keep working and get
//! the same filter and format.
//!
//! Filter (for one target name, the last setting wins; between targets, the most specific
//! prefix wins): `logLevel` (default for every target), the built-in
//! `dtls::handshake=error` (the dtls crate warns about every TLS extension browsers offer),
//! `log.modules` from the configuration, then `RUST_LOG` (`target=level,...` and a bare level for
//! the default, as env_logger reads it; span filters are not supported).

use std::str::FromStr;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::Config;

fn level(l: log::LevelFilter) -> LevelFilter {
    match l {
        log::LevelFilter::Off => LevelFilter::OFF,
        log::LevelFilter::Error => LevelFilter::ERROR,
        log::LevelFilter::Warn => LevelFilter::WARN,
        log::LevelFilter::Info => LevelFilter::INFO,
        log::LevelFilter::Debug => LevelFilter::DEBUG,
        log::LevelFilter::Trace => LevelFilter::TRACE,
    }
}

/// The filter for `config` and the value of `RUST_LOG` (if any).
pub fn filter(config: &Config, rust_log: Option<&str>) -> Result<Targets, String> {
    let mut t = Targets::new()
        .with_default(level(config.log_filter()))
        .with_target("dtls::handshake", LevelFilter::ERROR);
    for (module, l) in &config.log.modules {
        let l: log::LevelFilter = l
            .parse()
            .map_err(|_| format!("log.modules: {module} = {l:?} is not a level"))?;
        t = t.with_target(module.clone(), level(l));
    }
    if let Some(env) = rust_log.map(str::trim).filter(|s| !s.is_empty()) {
        let parsed = Targets::from_str(env)
            .map_err(|e| format!("RUST_LOG={env:?} is not understood: {e}"))?;
        if let Some(d) = parsed.default_level() {
            t = t.with_default(d);
        }
        for (target, l) in parsed.iter() {
            t = t.with_target(target.to_owned(), l);
        }
    }
    Ok(t)
}

/// Installs the process-wide subscriber (and the `log` bridge). `log.format = "json"` writes
/// one JSON object per line (`timestamp`, `level`, `target`, `fields` with `message` and any
/// structured fields such as `room`, `peer`, `transport`).
pub fn init(config: &Config) -> Result<(), String> {
    let targets = filter(config, std::env::var("RUST_LOG").ok().as_deref())?;
    let json = config.log.format.as_deref() == Some("json");
    let registry = tracing_subscriber::registry().with(targets);
    let result = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr)
                    .with_current_span(false)
                    .with_span_list(false),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    };
    result.map_err(|e| format!("cannot install the logger: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_modules_then_rust_log_refine_the_level() {
        let mut c = Config::from_lua_source(crate::config::DEFAULT_CONFIG_LUA, "t").unwrap();
        c.log
            .modules
            .insert("ringsfu_core::engine".into(), "debug".into());
        let t = filter(&c, None).unwrap();
        assert!(t.would_enable("ringsfu::server", &tracing::Level::INFO));
        assert!(!t.would_enable("ringsfu::server", &tracing::Level::DEBUG));
        assert!(t.would_enable("ringsfu_core::engine", &tracing::Level::DEBUG));
        assert!(!t.would_enable("dtls::handshake", &tracing::Level::WARN));
        let t = filter(&c, Some("warn,dtls=trace")).unwrap();
        assert!(!t.would_enable("ringsfu::server", &tracing::Level::INFO));
        assert!(
            t.would_enable("dtls::conn", &tracing::Level::TRACE),
            "{t:?}"
        );
        // The most specific target wins: `dtls=trace` does not undo `dtls::handshake=error`.
        assert!(!t.would_enable("dtls::handshake", &tracing::Level::WARN));
        let t = filter(&c, Some("dtls::handshake=warn")).unwrap();
        assert!(t.would_enable("dtls::handshake", &tracing::Level::WARN));
        assert!(filter(&c, Some("x=loud")).is_err());
    }
}
