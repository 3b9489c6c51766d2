//! Logging with `tracing`, shaped like etcd's two loggers: `--logger capnslog` (etcd 3.4's
//! default) prints one plain line per event, `--logger zap` one JSON object per event.
//! Both go to standard error, as etcd's do, and carry etcd's message texts at the moments
//! scripts wait for ("ready to serve client requests", "published ... to cluster").

use crate::config::{Config, Logger};

/// The `tracing` filter directive for etcd's `--log-level` word.
pub fn filter_directive(log_level: &str) -> &'static str {
    match log_level {
        "debug" => "debug",
        "warn" => "warn",
        "error" | "panic" | "fatal" => "error",
        _ => "info",
    }
}

/// Installs the global subscriber for `config`. `RUST_LOG`, when set, overrides the level
/// (useful for debugging one module).
pub fn init(config: &Config) {
    // fjall and its LSM tree log every flush at info: keep them to warnings unless
    // RUST_LOG asks for more.
    let directive = format!(
        "{},fjall=warn,lsm_tree=warn",
        filter_directive(&config.log_level)
    );
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(directive));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests starting servers in one process) keeps the first.
    let _ = match config.logger {
        Logger::Zap => builder.json().flatten_event(true).try_init(),
        Logger::Capnslog => builder.with_ansi(false).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_levels_map_to_tracing_levels() {
        assert_eq!(filter_directive("debug"), "debug");
        assert_eq!(filter_directive("info"), "info");
        assert_eq!(filter_directive("fatal"), "error");
    }
}
