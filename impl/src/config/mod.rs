//! Configuration as etcd 3.4 reads it: command-line flags (etcd's names and defaults),
//! `ETCD_*` environment variables, and `--config-file` YAML with etcd's key names.
//!
//! Precedence follows etcd: a config file, when given (flag or `ETCD_CONFIG_FILE`), is the
//! only source and flags and environment are ignored; otherwise a flag wins over its
//! default, an environment variable fills a flag not given, and a variable that names a
//! flag also given on the command line is an error (etcd: "conflicting environment
//! variable ... is shadowed by corresponding command-line flag"). Unknown `ETCD_*`
//! variables are warned about and ignored. Exit statuses follow etcd: 2 for an unknown
//! flag or a value that does not parse, 1 for a configuration that parses but fails
//! verification (for example an election timeout under five heartbeats).

mod settings;
pub mod url;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub use settings::{Effect, Kind, SETTINGS, Setting};
pub use url::{Scheme, Url};

/// How `--initial-cluster-state` asks the member to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClusterState {
    /// Bootstrap a new cluster from `--initial-cluster`.
    New,
    /// Join a running cluster.
    Existing,
}

/// `--auto-compaction-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AutoCompactionMode {
    /// Retention is a duration (hours when no unit is given).
    Periodic,
    /// Retention is a number of revisions.
    Revision,
}

/// `--logger`: etcd 3.4's plain capnslog lines or zap's JSON lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Logger {
    /// One human-readable line per event (etcd 3.4's default).
    Capnslog,
    /// One JSON object per event.
    Zap,
}

/// TLS files for one side (client or peer).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsFiles {
    /// Certificate file (PEM).
    pub cert_file: Option<PathBuf>,
    /// Private key file (PEM).
    pub key_file: Option<PathBuf>,
    /// CA bundle used to check the other side's certificate.
    pub trusted_ca_file: Option<PathBuf>,
    /// Require and check a certificate from the other side.
    pub client_cert_auth: bool,
    /// Generate a self-signed certificate when none is given.
    pub auto_tls: bool,
    /// Certificate revocation list checked against the other side's certificate
    /// (`--client-crl-file`, `--peer-crl-file`).
    pub crl_file: Option<PathBuf>,
    /// The CommonName the other side's certificate must carry (`--peer-cert-allowed-cn`).
    pub allowed_cn: Option<String>,
    /// The host name the other side's certificate must be valid for
    /// (`--client-cert-allowed-hostname`, `--peer-cert-allowed-hostname`).
    pub allowed_hostname: Option<String>,
}

impl TlsFiles {
    /// Whether any TLS setting was given.
    pub fn is_configured(&self) -> bool {
        self.cert_file.is_some() || self.key_file.is_some() || self.auto_tls
    }
}

/// The configuration a member runs with. Field names keep etcd's flag names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `--name`.
    pub name: String,
    /// `--data-dir` (default `${name}.etcd`).
    pub data_dir: PathBuf,
    /// `--wal-dir`; `None` keeps the log inside the data dir.
    pub wal_dir: Option<PathBuf>,
    /// `--snapshot-count`: applied entries between log-compacting snapshots.
    pub snapshot_count: u64,
    /// `--heartbeat-interval`, the Raft tick.
    pub heartbeat_interval_ms: u64,
    /// `--election-timeout`.
    pub election_timeout_ms: u64,
    /// `--listen-peer-urls`.
    pub listen_peer_urls: Vec<Url>,
    /// `--listen-client-urls`.
    pub listen_client_urls: Vec<Url>,
    /// `--initial-advertise-peer-urls`.
    pub initial_advertise_peer_urls: Vec<Url>,
    /// `--advertise-client-urls`.
    pub advertise_client_urls: Vec<Url>,
    /// `--initial-cluster`: member name to its peer URLs, in the order given.
    pub initial_cluster: Vec<(String, Vec<Url>)>,
    /// `--initial-cluster-state`.
    pub initial_cluster_state: ClusterState,
    /// `--initial-cluster-token`.
    pub initial_cluster_token: String,
    /// `--max-txn-ops`.
    pub max_txn_ops: u64,
    /// `--max-request-bytes`.
    pub max_request_bytes: u64,
    /// `--quota-backend-bytes` (0: etcd's default quota).
    pub quota_backend_bytes: u64,
    /// `--auto-compaction-mode`.
    pub auto_compaction_mode: AutoCompactionMode,
    /// `--auto-compaction-retention`, as given ("0" disables).
    pub auto_compaction_retention: String,
    /// `--enable-v2`.
    pub enable_v2: bool,
    /// `--strict-reconfig-check`: refuse membership changes that would lose the quorum.
    pub strict_reconfig_check: bool,
    /// Client TLS (`--cert-file`, `--key-file`, `--trusted-ca-file`, `--client-cert-auth`,
    /// `--auto-tls`).
    pub client_tls: TlsFiles,
    /// Peer TLS (`--peer-*`).
    pub peer_tls: TlsFiles,
    /// `--cipher-suites`: Go's suite names, for client and peer TLS (empty: defaults).
    pub cipher_suites: Vec<String>,
    /// `--auth-token` as given (`simple` or `jwt,...`).
    pub auth_token: String,
    /// `--bcrypt-cost` (4 to 31; other values fall back to 10 with a warning, as in etcd).
    pub bcrypt_cost: u32,
    /// `--auth-token-ttl`: seconds a simple token lives after its last use.
    pub auth_token_ttl: u64,
    /// `--logger`.
    pub logger: Logger,
    /// `--log-level`.
    pub log_level: String,
    /// `--experimental-watch-progress-notify-interval`: period of the progress
    /// notifications sent to watchers created with `progress_notify`.
    pub experimental_watch_progress_notify_interval: std::time::Duration,
    /// `--experimental-initial-corrupt-check`: compare this member's KV hash with its
    /// peers' before serving.
    pub experimental_initial_corrupt_check: bool,
    /// `--experimental-corrupt-check-time`: period of the leader's hash comparison with
    /// its peers (zero: off).
    pub experimental_corrupt_check_time: std::time::Duration,
    /// `--cors`: the origins the HTTP endpoints name in CORS headers, each as etcd
    /// normalises the URL (`scheme://host:port`); `["*"]` allows every origin.
    pub cors: Vec<String>,
    /// Settings given that oxetcd accepts but does not act on yet (flag name to value).
    pub accepted_only: BTreeMap<String, String>,
}

/// etcd's default `--quota-backend-bytes` (2 GiB), used when 0 is given.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// etcd's largest recommended quota (8 GiB); more is warned about.
pub const MAX_QUOTA_BYTES: u64 = 8 * 1024 * 1024 * 1024;

impl Config {
    /// The backend quota in force: `--quota-backend-bytes`, or etcd's default for 0.
    pub fn quota_bytes(&self) -> u64 {
        if self.quota_backend_bytes == 0 {
            DEFAULT_QUOTA_BYTES
        } else {
            self.quota_backend_bytes
        }
    }
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Invocation {
    /// Serve with this configuration; `warnings` are to be logged once logging is up.
    Serve {
        /// The configuration.
        config: Box<Config>,
        /// Warnings found while loading (unknown `ETCD_*` variables, ...).
        warnings: Vec<String>,
        /// Where the configuration came from, for the start-up log.
        config_file: Option<PathBuf>,
    },
    /// `--version`.
    PrintVersion,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unknown flag, missing value, `--help` (clap formats it).
    #[error("{0}")]
    Usage(#[from] clap::Error),
    /// A value that does not parse (etcd's wording).
    #[error("invalid value \"{value}\" for flag -{key}: {reason}")]
    InvalidValue {
        /// The flag.
        key: String,
        /// What was given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// An environment variable naming a flag also given on the command line.
    #[error(
        "conflicting environment variable \"{0}\" is shadowed by corresponding command-line flag (either unset environment variable or disable flag)"
    )]
    EnvConflict(String),
    /// The config file could not be read or parsed.
    #[error("error verifying flags, {0}. See 'etcd --help'.")]
    ConfigFile(String),
    /// The configuration parses but is inconsistent (etcd's wording).
    #[error("error verifying flags, {0}. See 'etcd --help'.")]
    Verify(String),
    /// The initial cluster does not fit this member (etcd's `VerifyBootstrap`; etcd
    /// logs it as critical from `etcdmain` and exits with status 1).
    #[error("{0}")]
    Bootstrap(String),
    /// A value etcd refuses with a message of its own (e.g. an unknown cipher suite).
    #[error("{0}")]
    Refused(String),
}

impl ConfigError {
    /// The process exit status etcd uses for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::Usage(error) => error.exit_code(),
            ConfigError::InvalidValue { .. } => 2,
            ConfigError::EnvConflict(_)
            | ConfigError::ConfigFile(_)
            | ConfigError::Verify(_)
            | ConfigError::Bootstrap(_)
            | ConfigError::Refused(_) => 1,
        }
    }
}

/// Text values per setting key, before typing.
type RawValues = BTreeMap<&'static str, String>;

fn command() -> clap::Command {
    let mut command = clap::Command::new("oxetcd")
        .about("An etcd-compatible, strongly consistent key-value store.")
        .disable_version_flag(true)
        // Go's flag package (etcd's) takes a repeated flag's last value.
        .args_override_self(true)
        .arg(clap::Arg::new("version").long("version").action(clap::ArgAction::SetTrue).help("Print the version and exit."))
        .arg(
            clap::Arg::new("config-file")
                .long("config-file")
                .value_name("PATH")
                .help("Path to the server configuration file; flags and environment variables are then ignored."),
        );
    for setting in SETTINGS {
        let mut arg = clap::Arg::new(setting.key)
            .long(setting.key)
            .help(setting.help);
        arg = match setting.kind {
            Kind::Bool => arg
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true")
                .value_name("BOOL"),
            _ => arg.value_name("VALUE"),
        };
        command = command.arg(arg);
    }
    command
}

/// Reads the configuration from `args` (including the program name) and `env`
/// (all variables; only `ETCD_*` are looked at).
pub fn load(
    args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
    env: &BTreeMap<String, String>,
) -> Result<Invocation, ConfigError> {
    let matches = command().try_get_matches_from(args)?;
    if matches.get_flag("version") {
        return Ok(Invocation::PrintVersion);
    }
    let mut warnings = Vec::new();
    let config_file = matches
        .get_one::<String>("config-file")
        .cloned()
        .or_else(|| env.get("ETCD_CONFIG_FILE").cloned())
        .filter(|path| !path.is_empty())
        .map(PathBuf::from);
    let raw = match &config_file {
        Some(path) => read_config_file(path, &mut warnings)?,
        None => from_flags_and_env(&matches, env, &mut warnings)?,
    };
    let config = build(&raw)?;
    Ok(Invocation::Serve {
        config: Box::new(config),
        warnings,
        config_file,
    })
}

fn from_flags_and_env(
    matches: &clap::ArgMatches,
    env: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<RawValues, ConfigError> {
    let mut raw = RawValues::new();
    for setting in SETTINGS {
        if let Some(value) = matches.get_one::<String>(setting.key) {
            raw.insert(setting.key, value.clone());
        }
    }
    for (name, value) in env {
        let Some(suffix) = name.strip_prefix("ETCD_") else {
            continue;
        };
        if name == "ETCD_CONFIG_FILE" {
            continue;
        }
        let key = suffix.to_lowercase().replace('_', "-");
        // `ETCD_VERSION` names the `--version` flag: etcd recognises it and, since it looks
        // at the flag only on the command line, then ignores it.
        if key == "version" {
            continue;
        }
        match settings::find(&key) {
            Some(setting) if raw.contains_key(setting.key) => {
                return Err(ConfigError::EnvConflict(name.clone()));
            }
            // As etcd: an empty variable sets nothing, and is reported as unrecognized.
            Some(_) if value.is_empty() => {
                warnings.push(format!("unrecognized environment variable {name}="));
            }
            Some(setting) => {
                raw.insert(setting.key, value.clone());
            }
            None => warnings.push(format!("unrecognized environment variable {name}={value}")),
        }
    }
    Ok(raw)
}

/// Nested sections of etcd's YAML and the flags their keys stand for.
fn nested_key(section: &str, key: &str) -> Option<&'static str> {
    let flag = match (section, key) {
        ("client-transport-security", "cert-file") => "cert-file",
        ("client-transport-security", "key-file") => "key-file",
        ("client-transport-security", "client-cert-auth") => "client-cert-auth",
        ("client-transport-security", "trusted-ca-file") => "trusted-ca-file",
        ("client-transport-security", "auto-tls") => "auto-tls",
        ("peer-transport-security", "cert-file") => "peer-cert-file",
        ("peer-transport-security", "key-file") => "peer-key-file",
        ("peer-transport-security", "client-cert-auth") => "peer-client-cert-auth",
        ("peer-transport-security", "trusted-ca-file") => "peer-trusted-ca-file",
        ("peer-transport-security", "auto-tls") => "peer-auto-tls",
        _ => return None,
    };
    settings::find(flag).map(|setting| setting.key)
}

fn yaml_scalar(value: &serde_yaml::Value) -> Option<String> {
    match value {
        serde_yaml::Value::String(text) => Some(text.clone()),
        serde_yaml::Value::Bool(flag) => Some(flag.to_string()),
        serde_yaml::Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn read_config_file(path: &Path, warnings: &mut Vec<String>) -> Result<RawValues, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| ConfigError::ConfigFile(format!("open {}: {error}", path.display())))?;
    let document: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|error| {
        ConfigError::ConfigFile(format!("error parsing {}: {error}", path.display()))
    })?;
    let mut raw = RawValues::new();
    let serde_yaml::Value::Mapping(mapping) = document else {
        if document.is_null() {
            return Ok(raw);
        }
        return Err(ConfigError::ConfigFile(format!(
            "{}: not a YAML mapping",
            path.display()
        )));
    };
    for (key, value) in &mapping {
        let key = key.as_str().unwrap_or_default();
        if value.is_null() {
            continue;
        }
        if let serde_yaml::Value::Mapping(section) = value {
            for (inner, inner_value) in section {
                let inner = inner.as_str().unwrap_or_default();
                match (nested_key(key, inner), yaml_scalar(inner_value)) {
                    (Some(flag), Some(text)) => {
                        raw.insert(flag, text);
                    }
                    _ => warnings.push(format!("config file: ignoring unknown key {key}.{inner}")),
                }
            }
            continue;
        }
        match (settings::find(key), yaml_scalar(value)) {
            (Some(setting), Some(text)) => {
                raw.insert(setting.key, text);
            }
            (Some(setting), None) => {
                return Err(ConfigError::ConfigFile(format!(
                    "config file {}: {} must be a single value",
                    path.display(),
                    setting.key
                )));
            }
            (None, _) => warnings.push(format!("config file: ignoring unknown key {key}")),
        }
    }
    Ok(raw)
}

/// A typed reader over the raw values with etcd's defaults filled in.
struct Reader<'a> {
    raw: &'a RawValues,
}

impl Reader<'_> {
    fn given(&self, key: &str) -> bool {
        self.raw.contains_key(key)
    }

    fn text(&self, key: &'static str) -> String {
        self.raw.get(key).cloned().unwrap_or_else(|| {
            settings::find(key)
                .map(|setting| setting.default.to_owned())
                .unwrap_or_default()
        })
    }

    fn invalid(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::InvalidValue {
            key: key.to_owned(),
            value: self.raw.get(key).cloned().unwrap_or_default(),
            reason: reason.into(),
        }
    }

    fn path(&self, key: &'static str) -> Option<PathBuf> {
        Some(self.text(key))
            .filter(|text| !text.is_empty())
            .map(PathBuf::from)
    }

    fn unsigned(&self, key: &'static str) -> Result<u64, ConfigError> {
        self.text(key)
            .trim()
            .parse::<u64>()
            .map_err(|_| self.invalid(key, "parse error"))
    }

    /// A Go duration (`10m`, `1.5s`, `1h30m`, `250ms`), as etcd's duration flags take.
    fn duration(&self, key: &'static str) -> Result<std::time::Duration, ConfigError> {
        crate::compactor::parse_go_duration(self.text(key).trim())
            .ok_or_else(|| self.invalid(key, "parse error"))
    }

    fn boolean(&self, key: &'static str) -> Result<bool, ConfigError> {
        match self.text(key).as_str() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
            _ => Err(self.invalid(key, "parse error")),
        }
    }

    fn urls(&self, key: &'static str) -> Result<Vec<Url>, ConfigError> {
        Url::parse_list(&self.text(key)).map_err(|error| self.invalid(key, error.to_string()))
    }

    /// `--cors`: `*` alone, or a list of URLs checked as etcd checks them (a list holding
    /// `*` among URLs is refused, as etcd refuses it).
    fn cors(&self) -> Result<Vec<String>, ConfigError> {
        let text = self.text("cors");
        if text.trim() == "*" {
            return Ok(vec!["*".to_owned()]);
        }
        Ok(self.urls("cors")?.iter().map(Url::to_string).collect())
    }

    fn one_of(&self, key: &'static str) -> Result<String, ConfigError> {
        let value = self.text(key);
        let allowed = match settings::find(key).map(|setting| setting.kind) {
            Some(Kind::OneOf(words)) => words,
            _ => &[],
        };
        if allowed.contains(&value.as_str()) {
            Ok(value)
        } else {
            Err(self.invalid(key, "invalid value"))
        }
    }

    fn tls(&self, prefix: &'static str) -> Result<TlsFiles, ConfigError> {
        let key = |suffix: &str| -> &'static str {
            settings::find(&format!("{prefix}{suffix}"))
                .map(|setting| setting.key)
                .unwrap_or("")
        };
        let given = |key: &'static str| Some(self.text(key)).filter(|text| !text.is_empty());
        let (crl_key, allowed_cn, allowed_hostname) = if prefix.is_empty() {
            (
                "client-crl-file",
                None,
                given("client-cert-allowed-hostname"),
            )
        } else {
            (
                "peer-crl-file",
                given("peer-cert-allowed-cn"),
                given("peer-cert-allowed-hostname"),
            )
        };
        Ok(TlsFiles {
            cert_file: self.path(key("cert-file")),
            key_file: self.path(key("key-file")),
            trusted_ca_file: self.path(key("trusted-ca-file")),
            client_cert_auth: self.boolean(key("client-cert-auth"))?,
            auto_tls: self.boolean(key("auto-tls"))?,
            crl_file: self.path(crl_key),
            allowed_cn,
            allowed_hostname,
        })
    }

    /// `--cipher-suites`: empty when not given; every name given must be one etcd knows.
    fn cipher_suites(&self) -> Result<Vec<String>, ConfigError> {
        if !self.given("cipher-suites") {
            return Ok(Vec::new());
        }
        crate::tls::parse_cipher_suites(&self.text("cipher-suites")).map_err(ConfigError::Refused)
    }
}

fn parse_initial_cluster(
    reader: &Reader<'_>,
    text: &str,
) -> Result<Vec<(String, Vec<Url>)>, ConfigError> {
    let mut members: Vec<(String, Vec<Url>)> = Vec::new();
    for entry in text
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let (name, url_text) = entry
            .split_once('=')
            .ok_or_else(|| reader.invalid("initial-cluster", "missing '=' in member entry"))?;
        let url = Url::parse(url_text)
            .map_err(|error| reader.invalid("initial-cluster", error.to_string()))?;
        match members.iter_mut().find(|(existing, _)| existing == name) {
            Some((_, urls)) => urls.push(url),
            None => members.push((name.to_owned(), vec![url])),
        }
    }
    Ok(members)
}

/// Types the raw values and runs etcd's checks.
fn build(raw: &RawValues) -> Result<Config, ConfigError> {
    let reader = Reader { raw };
    // Type-check every given value first, so a bad value for an accepted-only flag is
    // refused as etcd refuses it.
    for key in raw.keys() {
        if let Some(setting) = settings::find(key) {
            match setting.kind {
                Kind::Unsigned => drop(reader.unsigned(setting.key)?),
                Kind::Bool => drop(reader.boolean(setting.key)?),
                Kind::Urls => drop(reader.urls(setting.key)?),
                Kind::OneOf(_) => drop(reader.one_of(setting.key)?),
                Kind::Text => {}
            }
        }
    }
    let name = reader.text("name");
    let data_dir = match reader.raw.get("data-dir") {
        Some(given) if !given.is_empty() => PathBuf::from(given),
        _ => PathBuf::from(format!("{name}.etcd")),
    };
    let initial_advertise_peer_urls = reader.urls("initial-advertise-peer-urls")?;
    let initial_cluster_text = if reader.given("initial-cluster") {
        reader.text("initial-cluster")
    } else {
        initial_advertise_peer_urls
            .iter()
            .map(|url| format!("{name}={url}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let config = Config {
        wal_dir: reader.path("wal-dir"),
        snapshot_count: reader.unsigned("snapshot-count")?,
        heartbeat_interval_ms: reader.unsigned("heartbeat-interval")?,
        election_timeout_ms: reader.unsigned("election-timeout")?,
        listen_peer_urls: reader.urls("listen-peer-urls")?,
        listen_client_urls: reader.urls("listen-client-urls")?,
        advertise_client_urls: reader.urls("advertise-client-urls")?,
        initial_cluster: parse_initial_cluster(&reader, &initial_cluster_text)?,
        initial_advertise_peer_urls,
        initial_cluster_state: match reader.one_of("initial-cluster-state")?.as_str() {
            "existing" => ClusterState::Existing,
            _ => ClusterState::New,
        },
        initial_cluster_token: reader.text("initial-cluster-token"),
        max_txn_ops: reader.unsigned("max-txn-ops")?,
        max_request_bytes: reader.unsigned("max-request-bytes")?,
        quota_backend_bytes: reader.unsigned("quota-backend-bytes")?,
        auto_compaction_mode: match reader.text("auto-compaction-mode").as_str() {
            "periodic" => AutoCompactionMode::Periodic,
            "revision" => AutoCompactionMode::Revision,
            other => {
                return Err(ConfigError::Verify(format!(
                    "unknown auto-compaction-mode {other:?}"
                )));
            }
        },
        auto_compaction_retention: reader.text("auto-compaction-retention"),
        enable_v2: reader.boolean("enable-v2")?,
        strict_reconfig_check: reader.boolean("strict-reconfig-check")?,
        client_tls: reader.tls("")?,
        peer_tls: reader.tls("peer-")?,
        cipher_suites: reader.cipher_suites()?,
        auth_token: reader.text("auth-token"),
        bcrypt_cost: u32::try_from(reader.unsigned("bcrypt-cost")?).unwrap_or(u32::MAX),
        auth_token_ttl: reader.unsigned("auth-token-ttl")?,
        logger: match reader.one_of("logger")?.as_str() {
            "zap" => Logger::Zap,
            _ => Logger::Capnslog,
        },
        log_level: reader.one_of("log-level")?,
        cors: reader.cors()?,
        experimental_watch_progress_notify_interval: reader
            .duration("experimental-watch-progress-notify-interval")?,
        experimental_initial_corrupt_check: reader.boolean("experimental-initial-corrupt-check")?,
        experimental_corrupt_check_time: reader.duration("experimental-corrupt-check-time")?,
        accepted_only: raw
            .iter()
            .filter(|(key, _)| {
                settings::find(key).is_some_and(|s| s.effect == Effect::AcceptedOnly)
            })
            .map(|(key, value)| ((*key).to_owned(), value.clone()))
            .collect(),
        name,
        data_dir,
    };
    verify(&config, &reader)?;
    Ok(config)
}

/// etcd's cross-setting checks (`embed.Config.Validate` and friends), with etcd's texts.
fn verify(config: &Config, reader: &Reader<'_>) -> Result<(), ConfigError> {
    let verify = |message: String| Err(ConfigError::Verify(message));
    if config.heartbeat_interval_ms == 0 {
        return verify("--heartbeat-interval must be greater than 0".into());
    }
    if config.election_timeout_ms < config.heartbeat_interval_ms.saturating_mul(5) {
        return verify(format!(
            "--election-timeout[{}ms] should be at least as 5 times as --heartbeat-interval[{}ms]",
            config.election_timeout_ms, config.heartbeat_interval_ms
        ));
    }
    if config.election_timeout_ms > 50_000 {
        return verify(format!(
            "--election-timeout[{}ms] is too long, and should be set less than 50 seconds",
            config.election_timeout_ms
        ));
    }
    if reader.given("listen-client-urls") && !reader.given("advertise-client-urls") {
        return verify(
            "--advertise-client-urls is required when --listen-client-urls is set explicitly"
                .into(),
        );
    }
    if reader.given("listen-peer-urls")
        && reader.given("initial-cluster")
        && !reader.given("initial-advertise-peer-urls")
    {
        return verify(
            "--initial-advertise-peer-urls is required when --listen-peer-urls is set explicitly"
                .into(),
        );
    }
    let token = config.auth_token.split(',').next().unwrap_or_default();
    if token != "simple" && token != "jwt" {
        return verify(format!("auth: unknown token type: {token}"));
    }
    match config.auto_compaction_mode {
        AutoCompactionMode::Revision
            if config.auto_compaction_retention.parse::<u64>().is_err() =>
        {
            return verify(format!(
                "invalid auto-compaction-retention {:?} for revision mode",
                config.auto_compaction_retention
            ));
        }
        mode => {
            crate::compactor::parse(mode, &config.auto_compaction_retention)
                .map_err(ConfigError::Verify)?;
        }
    }
    verify_bootstrap(config).map_err(ConfigError::Bootstrap)
}

/// etcd's `VerifyBootstrap` (and `VerifyJoinExisting`) checks of `--initial-cluster`, in
/// its order and with its texts: this member's name is in it, (new cluster) its URLs are
/// the advertised peer URLs, and no URL is listed twice.
fn verify_bootstrap(config: &Config) -> Result<(), String> {
    let Some((_, own_urls)) = config
        .initial_cluster
        .iter()
        .find(|(name, _)| *name == config.name)
    else {
        return Err(format!(
            "couldn't find local name {:?} in the initial cluster configuration",
            config.name
        ));
    };
    if config.initial_cluster_state == ClusterState::New {
        advertise_matches_cluster(&config.name, own_urls, &config.initial_advertise_peer_urls)?;
    }
    let mut seen = std::collections::BTreeSet::new();
    if config
        .initial_cluster
        .iter()
        .flat_map(|(_, urls)| urls)
        .any(|url| !seen.insert(url.to_string()))
    {
        let mut pairs: Vec<String> = config
            .initial_cluster
            .iter()
            .flat_map(|(name, urls)| urls.iter().map(move |url| format!("{name}={url}")))
            .collect();
        pairs.sort();
        return Err(format!(
            "initial cluster {} has duplicate url",
            pairs.join(",")
        ));
    }
    Ok(())
}

/// etcd's `advertiseMatchesCluster` (URLs compared as written; etcd also resolves host
/// names).
fn advertise_matches_cluster(name: &str, own: &[Url], advertised: &[Url]) -> Result<(), String> {
    let mut own: Vec<String> = own.iter().map(ToString::to_string).collect();
    let mut advertised: Vec<String> = advertised.iter().map(ToString::to_string).collect();
    own.sort();
    advertised.sort();
    if own == advertised {
        return Ok(());
    }
    let quoted = |urls: &[String]| {
        let items: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
        format!("[{}]", items.join(" "))
    };
    let reason = if own.len() == advertised.len() {
        let (a, b) = advertised
            .iter()
            .zip(&own)
            .find(|(a, b)| a != b)
            .map_or((String::new(), String::new()), |(a, b)| {
                (a.clone(), b.clone())
            });
        format!("resolved urls: {a:?} != {b:?}")
    } else {
        format!("len({}) != len({})", quoted(&advertised), quoted(&own))
    };
    let missing: Vec<String> = own
        .iter()
        .filter(|url| !advertised.contains(url))
        .map(|url| format!("{name}={url}"))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "--initial-cluster has {} but missing from --initial-advertise-peer-urls={} ({reason})",
            missing.join(","),
            advertised.join(",")
        ));
    }
    let missing: Vec<&String> = advertised.iter().filter(|url| !own.contains(url)).collect();
    let as_map: Vec<String> = advertised
        .iter()
        .map(|url| format!("{name}={url}"))
        .collect();
    Err(format!(
        "--initial-advertise-peer-urls has {} but missing from --initial-cluster={}",
        missing
            .iter()
            .map(|url| url.as_str())
            .collect::<Vec<_>>()
            .join(","),
        as_map.join(",")
    ))
}

#[cfg(test)]
mod tests;
