//! The `oxetcd` binary: an etcd-compatible server. With no arguments it behaves like
//! `./etcd`: member `default`, data in `./default.etcd`, clients on 127.0.0.1:2379.

use std::collections::BTreeMap;
use std::process::ExitCode;

use oxetcd::config::{self, Invocation};

fn main() -> ExitCode {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let invocation = match config::load(std::env::args_os(), &env) {
        Ok(invocation) => invocation,
        Err(config::ConfigError::Usage(error)) => {
            // clap formats usage errors and --help itself (exit 0 for --help).
            let _ = error.print();
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(1));
        }
    };
    match invocation {
        Invocation::PrintVersion => {
            print!("{}", oxetcd::version::version_text());
            ExitCode::SUCCESS
        }
        Invocation::Serve {
            config,
            warnings,
            config_file,
        } => {
            oxetcd::logging::init(&config);
            for warning in &warnings {
                tracing::warn!("{warning}");
            }
            if let Some(path) = config_file {
                tracing::info!(
                    "Loading server configuration from {:?}. Other configuration command line flags and environment variables will be ignored if provided.",
                    path.display().to_string()
                );
            }
            eprintln!(
                "oxetcd: configuration loaded for member {:?}; serving is not implemented yet",
                config.name
            );
            ExitCode::from(1)
        }
    }
}
