//! The table of every setting oxetcd accepts: etcd's flag name, the kind of value, etcd's
//! default and its help text. Flags, `ETCD_*` environment variables and `--config-file`
//! keys are all derived from this one table, so the three sources cannot drift apart.

/// The kind of value a setting takes; decides how a flag is parsed on the command line
/// (booleans may stand alone, like Go's `flag` package) and how it is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Free text.
    Text,
    /// A boolean: `--flag`, `--flag=true`, `--flag=false`.
    Bool,
    /// An unsigned integer.
    Unsigned,
    /// A comma-separated URL list.
    Urls,
    /// One of a fixed set of words.
    OneOf(&'static [&'static str]),
}

/// Whether oxetcd acts on a setting yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The setting is read into [`super::Config`] and acted on.
    Used,
    /// Accepted for compatibility with etcd's command lines; logged as having no effect.
    AcceptedOnly,
}

/// One row of the table.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    /// etcd's flag name without the leading dashes; also the config-file key.
    pub key: &'static str,
    /// What values it takes.
    pub kind: Kind,
    /// etcd's default, as text ("" for none).
    pub default: &'static str,
    /// Whether oxetcd acts on it.
    pub effect: Effect,
    /// etcd's help text.
    pub help: &'static str,
}

impl Setting {
    /// The environment variable etcd reads for this setting (`ETCD_` + upper snake case).
    pub fn env_name(&self) -> String {
        format!("ETCD_{}", self.key.to_uppercase().replace('-', "_"))
    }
}

const fn used(key: &'static str, kind: Kind, default: &'static str, help: &'static str) -> Setting {
    Setting {
        key,
        kind,
        default,
        effect: Effect::Used,
        help,
    }
}

const fn accepted(
    key: &'static str,
    kind: Kind,
    default: &'static str,
    help: &'static str,
) -> Setting {
    Setting {
        key,
        kind,
        default,
        effect: Effect::AcceptedOnly,
        help,
    }
}

/// Every setting, in etcd's help order.
pub const SETTINGS: &[Setting] = &[
    used(
        "name",
        Kind::Text,
        "default",
        "Human-readable name for this member.",
    ),
    used(
        "data-dir",
        Kind::Text,
        "${name}.etcd",
        "Path to the data directory.",
    ),
    used(
        "wal-dir",
        Kind::Text,
        "",
        "Path to the dedicated wal directory.",
    ),
    used(
        "snapshot-count",
        Kind::Unsigned,
        "100000",
        "Number of committed transactions to trigger a snapshot to disk.",
    ),
    used(
        "heartbeat-interval",
        Kind::Unsigned,
        "100",
        "Time (in milliseconds) of a heartbeat interval.",
    ),
    used(
        "election-timeout",
        Kind::Unsigned,
        "1000",
        "Time (in milliseconds) for an election to timeout.",
    ),
    accepted(
        "initial-election-tick-advance",
        Kind::Bool,
        "true",
        "Whether to fast-forward initial election ticks on boot for faster election.",
    ),
    used(
        "listen-peer-urls",
        Kind::Urls,
        "http://localhost:2380",
        "List of URLs to listen on for peer traffic.",
    ),
    used(
        "listen-client-urls",
        Kind::Urls,
        "http://localhost:2379",
        "List of URLs to listen on for client traffic.",
    ),
    accepted(
        "max-snapshots",
        Kind::Unsigned,
        "5",
        "Maximum number of snapshot files to retain.",
    ),
    accepted(
        "max-wals",
        Kind::Unsigned,
        "5",
        "Maximum number of wal files to retain.",
    ),
    used(
        "quota-backend-bytes",
        Kind::Unsigned,
        "0",
        "Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).",
    ),
    accepted(
        "backend-batch-interval",
        Kind::Text,
        "",
        "Maximum time before committing the backend transaction.",
    ),
    accepted(
        "backend-batch-limit",
        Kind::Unsigned,
        "0",
        "Maximum operations before committing the backend transaction.",
    ),
    used(
        "max-txn-ops",
        Kind::Unsigned,
        "128",
        "Maximum number of operations permitted in a transaction.",
    ),
    used(
        "max-request-bytes",
        Kind::Unsigned,
        "1572864",
        "Maximum client request size in bytes the server will accept.",
    ),
    accepted(
        "max-concurrent-streams",
        Kind::Unsigned,
        "4294967295",
        "Maximum concurrent streams per client.",
    ),
    accepted(
        "grpc-keepalive-min-time",
        Kind::Text,
        "5s",
        "Minimum interval a client should wait before pinging server.",
    ),
    accepted(
        "grpc-keepalive-interval",
        Kind::Text,
        "2h",
        "Frequency of server-to-client pings.",
    ),
    accepted(
        "grpc-keepalive-timeout",
        Kind::Text,
        "20s",
        "Wait before closing a non-responsive connection.",
    ),
    used(
        "initial-advertise-peer-urls",
        Kind::Urls,
        "http://localhost:2380",
        "List of this member's peer URLs to advertise to the rest of the cluster.",
    ),
    used(
        "initial-cluster",
        Kind::Text,
        "",
        "Initial cluster configuration for bootstrapping (default: ${name}=${initial-advertise-peer-urls}).",
    ),
    used(
        "initial-cluster-state",
        Kind::OneOf(&["new", "existing"]),
        "new",
        "Initial cluster state ('new' or 'existing').",
    ),
    used(
        "initial-cluster-token",
        Kind::Text,
        "etcd-cluster",
        "Initial cluster token for the etcd cluster during bootstrap.",
    ),
    used(
        "advertise-client-urls",
        Kind::Urls,
        "http://localhost:2379",
        "List of this member's client URLs to advertise to the public.",
    ),
    accepted(
        "discovery",
        Kind::Text,
        "",
        "Discovery URL used to bootstrap the cluster.",
    ),
    accepted(
        "discovery-fallback",
        Kind::Text,
        "proxy",
        "Behaviour when discovery services fail.",
    ),
    accepted(
        "discovery-proxy",
        Kind::Text,
        "",
        "HTTP proxy to use for traffic to discovery service.",
    ),
    accepted(
        "discovery-srv",
        Kind::Text,
        "",
        "DNS srv domain used to bootstrap the cluster.",
    ),
    accepted(
        "discovery-srv-name",
        Kind::Text,
        "",
        "Suffix to the dns srv name queried when bootstrapping.",
    ),
    accepted(
        "proxy",
        Kind::OneOf(&["off", "readonly", "on"]),
        "off",
        "Proxy mode setting ('off', 'readonly' or 'on').",
    ),
    accepted(
        "proxy-failure-wait",
        Kind::Unsigned,
        "5000",
        "Time (in milliseconds) an endpoint will be held in a failed state.",
    ),
    accepted(
        "proxy-refresh-interval",
        Kind::Unsigned,
        "30000",
        "Time (in milliseconds) of the endpoints refresh interval.",
    ),
    accepted(
        "proxy-dial-timeout",
        Kind::Unsigned,
        "1000",
        "Time (in milliseconds) for a dial to timeout.",
    ),
    accepted(
        "proxy-write-timeout",
        Kind::Unsigned,
        "5000",
        "Time (in milliseconds) for a write to timeout.",
    ),
    accepted(
        "proxy-read-timeout",
        Kind::Unsigned,
        "0",
        "Time (in milliseconds) for a read to timeout.",
    ),
    used(
        "strict-reconfig-check",
        Kind::Bool,
        "true",
        "Reject reconfiguration requests that would cause quorum loss.",
    ),
    accepted(
        "pre-vote",
        Kind::Bool,
        "false",
        "Enable to run an additional Raft election phase.",
    ),
    used(
        "auto-compaction-retention",
        Kind::Text,
        "0",
        "Auto compaction retention length. 0 means disable auto compaction.",
    ),
    used(
        "auto-compaction-mode",
        Kind::Text,
        "periodic",
        "Interpret 'auto-compaction-retention' one of: periodic|revision.",
    ),
    used(
        "enable-v2",
        Kind::Bool,
        "false",
        "Accept etcd V2 client requests.",
    ),
    used(
        "cert-file",
        Kind::Text,
        "",
        "Path to the client server TLS cert file.",
    ),
    used(
        "key-file",
        Kind::Text,
        "",
        "Path to the client server TLS key file.",
    ),
    used(
        "client-cert-auth",
        Kind::Bool,
        "false",
        "Enable client cert authentication.",
    ),
    used(
        "client-crl-file",
        Kind::Text,
        "",
        "Path to the client certificate revocation list file.",
    ),
    used(
        "client-cert-allowed-hostname",
        Kind::Text,
        "",
        "Allowed TLS hostname for client cert authentication.",
    ),
    used(
        "trusted-ca-file",
        Kind::Text,
        "",
        "Path to the client server TLS trusted CA cert file.",
    ),
    used(
        "auto-tls",
        Kind::Bool,
        "false",
        "Client TLS using generated certificates.",
    ),
    used(
        "peer-cert-file",
        Kind::Text,
        "",
        "Path to the peer server TLS cert file.",
    ),
    used(
        "peer-key-file",
        Kind::Text,
        "",
        "Path to the peer server TLS key file.",
    ),
    used(
        "peer-client-cert-auth",
        Kind::Bool,
        "false",
        "Enable peer client cert authentication.",
    ),
    used(
        "peer-trusted-ca-file",
        Kind::Text,
        "",
        "Path to the peer server TLS trusted CA file.",
    ),
    used(
        "peer-cert-allowed-cn",
        Kind::Text,
        "",
        "Required CN for client certs connecting to the peer endpoint.",
    ),
    used(
        "peer-cert-allowed-hostname",
        Kind::Text,
        "",
        "Allowed TLS hostname for inter peer authentication.",
    ),
    used(
        "peer-auto-tls",
        Kind::Bool,
        "false",
        "Peer TLS using self-generated certificates.",
    ),
    used(
        "peer-crl-file",
        Kind::Text,
        "",
        "Path to the peer certificate revocation list file.",
    ),
    used(
        "cipher-suites",
        Kind::Text,
        "",
        "Comma-separated list of supported TLS cipher suites.",
    ),
    used(
        "cors",
        Kind::Text,
        "*",
        "Comma-separated whitelist of origins for CORS, or cross-origin resource sharing, (empty or * means allow all).",
    ),
    accepted(
        "host-whitelist",
        Kind::Text,
        "*",
        "Acceptable hostnames from HTTP client requests.",
    ),
    used(
        "auth-token",
        Kind::Text,
        "simple",
        "Specify a v3 authentication token type and its options ('simple' or 'jwt').",
    ),
    used(
        "bcrypt-cost",
        Kind::Unsigned,
        "10",
        "Cost of the bcrypt algorithm for hashing auth passwords.",
    ),
    used(
        "auth-token-ttl",
        Kind::Unsigned,
        "300",
        "Time (in seconds) of the auth-token-ttl.",
    ),
    accepted(
        "enable-pprof",
        Kind::Bool,
        "false",
        "Enable runtime profiling data via HTTP server.",
    ),
    accepted(
        "metrics",
        Kind::Text,
        "basic",
        "Set level of detail for exported metrics.",
    ),
    accepted(
        "listen-metrics-urls",
        Kind::Text,
        "",
        "List of URLs to listen on for the metrics and health endpoints.",
    ),
    used(
        "logger",
        Kind::OneOf(&["capnslog", "zap"]),
        "capnslog",
        "Specify 'zap' for structured (JSON) logging or 'capnslog'.",
    ),
    accepted(
        "log-outputs",
        Kind::Text,
        "default",
        "Specify 'stdout' or 'stderr' to skip journald logging.",
    ),
    accepted(
        "log-output",
        Kind::Text,
        "default",
        "[DEPRECATED] Use '--log-outputs'.",
    ),
    accepted(
        "log-package-levels",
        Kind::Text,
        "",
        "Specify a particular log level for each etcd package (eg: 'etcdmain=CRITICAL,etcdserver=DEBUG').",
    ),
    used(
        "log-level",
        Kind::OneOf(&["debug", "info", "warn", "error", "panic", "fatal"]),
        "info",
        "Configures log level. Only supports debug, info, warn, error, panic, or fatal.",
    ),
    accepted(
        "debug",
        Kind::Bool,
        "false",
        "Enable debug-level logging for etcd (deprecated).",
    ),
    accepted(
        "force-new-cluster",
        Kind::Bool,
        "false",
        "Force to create a new one member cluster.",
    ),
    used(
        "experimental-initial-corrupt-check",
        Kind::Bool,
        "false",
        "Enable to check data corruption before serving any client/peer traffic.",
    ),
    used(
        "experimental-corrupt-check-time",
        Kind::Text,
        "0s",
        "Duration of time between cluster corruption check passes.",
    ),
    used(
        "experimental-watch-progress-notify-interval",
        Kind::Text,
        "10m",
        "Duration of periodical watch progress notification.",
    ),
];

/// Looks a setting up by its flag name.
pub fn find(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|setting| setting.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn keys_are_unique_and_defaults_have_the_right_kind() {
        let mut seen = BTreeSet::new();
        for setting in SETTINGS {
            assert!(seen.insert(setting.key), "duplicate {}", setting.key);
            match setting.kind {
                Kind::Bool => assert!(
                    matches!(setting.default, "true" | "false"),
                    "{}",
                    setting.key
                ),
                Kind::Unsigned => {
                    assert!(setting.default.parse::<u64>().is_ok(), "{}", setting.key)
                }
                Kind::OneOf(words) => assert!(words.contains(&setting.default), "{}", setting.key),
                Kind::Text | Kind::Urls => {}
            }
        }
    }

    #[test]
    fn env_names_follow_etcd() {
        assert_eq!(
            find("initial-cluster-token").unwrap().env_name(),
            "ETCD_INITIAL_CLUSTER_TOKEN"
        );
    }
}
