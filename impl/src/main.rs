//! The `oxetcd` binary: an etcd-compatible server. With no arguments it behaves like
//! `./etcd`: member `default`, data in `./default.etcd`, clients on 127.0.0.1:2379.
//! `oxetcd snapshot restore FILE --data-dir DIR` rebuilds a data dir from a snapshot
//! file (see `oxetcd::snapshot`).

use std::collections::BTreeMap;
use std::process::ExitCode;

use oxetcd::config::{self, Invocation};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "snapshot") {
        return snapshot_command(&args[2..]);
    }
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let invocation = match config::load(std::env::args_os(), &env) {
        Ok(invocation) => invocation,
        Err(config::ConfigError::Usage(error)) => {
            // clap formats usage errors and --help itself (exit 0 for --help).
            let _ = error.print();
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
        Err(error @ config::ConfigError::Bootstrap(_)) => {
            // etcd logs this as critical from etcdmain (capnslog's line format).
            eprintln!("{} C | etcdmain: {error}", capnslog_time());
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(1));
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
            tracing::info!("etcd Version: {}", oxetcd::version::ETCD_VERSION);
            tracing::info!("oxetcd Version: {}", oxetcd::version::OXETCD_VERSION);
            serve(*config)
        }
    }
}

/// The current UTC time as capnslog writes it: `2006-01-02 15:04:05.000000`.
fn capnslog_time() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.microsecond()
    )
}

/// `oxetcd snapshot restore FILE [flags]`.
fn snapshot_command(args: &[std::ffi::OsString]) -> ExitCode {
    use clap::Parser;
    if args.first().is_none_or(|a| a != "restore") {
        eprintln!(
            "usage: oxetcd snapshot restore FILE --data-dir DIR [--name ...] [--initial-cluster ...] [--initial-cluster-token ...] [--initial-advertise-peer-urls ...] [--skip-hash-check]"
        );
        return ExitCode::from(2);
    }
    let restore_args = match oxetcd::snapshot::restore::RestoreArgs::try_parse_from(args) {
        Ok(parsed) => parsed,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
    };
    match oxetcd::snapshot::restore::restore(&restore_args) {
        Ok(data_dir) => {
            println!(
                "restored snapshot {} into data dir {} (member {})",
                restore_args.file.display(),
                data_dir.display(),
                restore_args.name
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("Error: {error}");
            ExitCode::from(1)
        }
    }
}

/// Runs the server until the node loop stops (fatal storage error) or a signal arrives.
fn serve(config: config::Config) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the runtime: {error}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async {
        let server = match oxetcd::server::start(config).await {
            Ok(server) => server,
            Err(error) => {
                tracing::error!("{error:#}");
                return ExitCode::from(1);
            }
        };
        tokio::select! {
            result = server.node_task => {
                // A storage error: durability is unknown, so stop (fail-stop).
                tracing::error!("node loop stopped: {result:?}");
                ExitCode::from(1)
            }
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("received interrupt signal, shutting down");
                ExitCode::SUCCESS
            }
        }
    })
}
