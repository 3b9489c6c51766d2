use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn serve(args: &[&str], vars: &[(&str, &str)]) -> (Config, Vec<String>) {
    let mut argv = vec!["oxetcd"];
    argv.extend_from_slice(args);
    match load(argv, &env(vars)).expect("configuration loads") {
        Invocation::Serve {
            config, warnings, ..
        } => (*config, warnings),
        Invocation::PrintVersion => panic!("unexpected --version"),
    }
}

fn refuse(args: &[&str], vars: &[(&str, &str)]) -> ConfigError {
    let mut argv = vec!["oxetcd"];
    argv.extend_from_slice(args);
    load(argv, &env(vars)).expect_err("configuration is refused")
}

#[test]
fn no_arguments_gives_etcds_single_member_defaults() {
    let (config, warnings) = serve(&[], &[]);
    assert!(warnings.is_empty());
    assert_eq!(config.name, "default");
    assert_eq!(config.data_dir, PathBuf::from("default.etcd"));
    assert_eq!(
        config.listen_client_urls,
        vec![Url::parse("http://localhost:2379").unwrap()]
    );
    assert_eq!(
        config.listen_peer_urls,
        vec![Url::parse("http://localhost:2380").unwrap()]
    );
    assert_eq!(
        config.initial_cluster,
        vec![(
            "default".to_owned(),
            vec![Url::parse("http://localhost:2380").unwrap()]
        )]
    );
    assert_eq!(config.initial_cluster_token, "etcd-cluster");
    assert_eq!(config.heartbeat_interval_ms, 100);
    assert_eq!(config.election_timeout_ms, 1000);
    assert_eq!(config.snapshot_count, 100_000);
    assert_eq!(config.max_request_bytes, 1_572_864);
    assert_eq!(config.initial_cluster_state, ClusterState::New);
    assert!(!config.enable_v2);
    assert_eq!(config.logger, Logger::Capnslog);
}

#[test]
fn data_dir_defaults_to_name_dot_etcd() {
    let (config, _) = serve(
        &[
            "--name",
            "infra1",
            "--initial-cluster",
            "infra1=http://localhost:2380",
        ],
        &[],
    );
    assert_eq!(config.data_dir, PathBuf::from("infra1.etcd"));
}

#[test]
fn environment_fills_flags_not_given() {
    let (config, _) = serve(
        &[
            "--name",
            "n1",
            "--initial-cluster",
            "n1=http://localhost:2380",
        ],
        &[
            ("ETCD_HEARTBEAT_INTERVAL", "50"),
            ("ETCD_ENABLE_V2", "true"),
            ("PATH", "/bin"),
        ],
    );
    assert_eq!(config.heartbeat_interval_ms, 50);
    assert!(config.enable_v2);
}

#[test]
fn environment_naming_a_given_flag_is_a_conflict() {
    let error = refuse(&["--name", "y"], &[("ETCD_NAME", "x")]);
    assert!(matches!(error, ConfigError::EnvConflict(ref name) if name == "ETCD_NAME"));
    assert_eq!(error.exit_code(), 1);
    assert!(
        error
            .to_string()
            .contains("conflicting environment variable \"ETCD_NAME\"")
    );
}

#[test]
fn unknown_environment_variable_is_warned_about_and_ignored() {
    let (config, warnings) = serve(&[], &[("ETCD_FOO", "1")]);
    assert_eq!(config.name, "default");
    assert_eq!(
        warnings,
        vec!["unrecognized environment variable ETCD_FOO=1".to_owned()]
    );
}

#[test]
fn unknown_flag_exits_with_status_two() {
    let error = refuse(&["--bogus"], &[]);
    assert_eq!(error.exit_code(), 2);
    assert!(error.to_string().contains("--bogus"), "{error}");
}

#[test]
fn unparseable_value_exits_with_status_two_and_etcds_text() {
    let error = refuse(&["--heartbeat-interval", "abc"], &[]);
    assert_eq!(error.exit_code(), 2);
    assert_eq!(
        error.to_string(),
        "invalid value \"abc\" for flag -heartbeat-interval: parse error"
    );
    let error = refuse(&["--initial-cluster-state", "foo"], &[]);
    assert_eq!(
        error.to_string(),
        "invalid value \"foo\" for flag -initial-cluster-state: invalid value"
    );
    let error = refuse(
        &[
            "--listen-client-urls",
            "foo",
            "--advertise-client-urls",
            "http://a:1",
        ],
        &[],
    );
    assert_eq!(
        error.to_string(),
        "invalid value \"foo\" for flag -listen-client-urls: URL scheme must be http, https, unix, or unixs: foo"
    );
}

#[test]
fn bad_value_in_environment_is_refused_too() {
    let error = refuse(&[], &[("ETCD_SNAPSHOT_COUNT", "many")]);
    assert_eq!(error.exit_code(), 2);
}

#[test]
fn election_timeout_under_five_heartbeats_fails_verification() {
    let error = refuse(&["--election-timeout", "100"], &[]);
    assert_eq!(error.exit_code(), 1);
    assert_eq!(
        error.to_string(),
        "error verifying flags, --election-timeout[100ms] should be at least as 5 times as \
         --heartbeat-interval[100ms]. See 'etcd --help'."
    );
}

#[test]
fn listen_client_urls_without_advertise_fails_verification() {
    let error = refuse(&["--listen-client-urls", "http://127.0.0.1:1"], &[]);
    assert!(
        error
            .to_string()
            .contains("--advertise-client-urls is required"),
        "{error}"
    );
}

#[test]
fn name_missing_from_initial_cluster_fails_verification() {
    let error = refuse(
        &[
            "--name",
            "a",
            "--initial-cluster",
            "b=http://localhost:2380",
        ],
        &[],
    );
    assert!(
        error.to_string().contains("couldn't find local name \"a\""),
        "{error}"
    );
}

#[test]
fn boolean_flags_stand_alone_or_take_equals() {
    let (config, _) = serve(&["--enable-v2"], &[]);
    assert!(config.enable_v2);
    let (config, _) = serve(&["--enable-v2=false"], &[]);
    assert!(!config.enable_v2);
    assert!(matches!(
        refuse(&["--enable-v2=maybe"], &[]),
        ConfigError::InvalidValue { .. }
    ));
}

#[test]
fn a_repeated_flag_takes_its_last_value_as_in_etcd() {
    let (config, _) = serve(&["--name", "first", "--name", "second"], &[]);
    assert_eq!(config.name, "second");
    let (config, _) = serve(&["--enable-v2", "--enable-v2=false"], &[]);
    assert!(!config.enable_v2);
}

#[test]
fn accepted_only_flags_are_recorded() {
    let (config, _) = serve(&["--max-wals", "3", "--peer-cert-file", "p.pem"], &[]);
    assert_eq!(
        config.accepted_only.get("max-wals").map(String::as_str),
        Some("3")
    );
    assert_eq!(config.peer_tls.cert_file, Some(PathBuf::from("p.pem")));
}

#[test]
fn version_flag_is_recognised() {
    assert!(matches!(
        load(["oxetcd", "--version"], &env(&[])),
        Ok(Invocation::PrintVersion)
    ));
}

#[test]
fn config_file_replaces_flags_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("etcd.yml");
    std::fs::write(
        &path,
        "name: infra9\nheartbeat-interval: 200\nelection-timeout: 2000\nenable-v2: true\n\
         initial-cluster: infra9=http://10.0.0.9:2380\n\
         initial-advertise-peer-urls: http://10.0.0.9:2380\n\
         client-transport-security:\n  cert-file: /c.pem\n  client-cert-auth: true\n\
         peer-transport-security:\n  key-file: /p.key\n\
         some-future-key: 1\n",
    )
    .unwrap();
    let path_text = path.to_str().unwrap();
    let (config, warnings) = serve(
        &["--config-file", path_text, "--name", "ignored"],
        &[("ETCD_SNAPSHOT_COUNT", "5")],
    );
    assert_eq!(config.name, "infra9");
    assert_eq!(config.data_dir, PathBuf::from("infra9.etcd"));
    assert_eq!(config.heartbeat_interval_ms, 200);
    assert_eq!(
        config.snapshot_count, 100_000,
        "environment ignored with a config file"
    );
    assert!(config.enable_v2);
    assert_eq!(config.client_tls.cert_file, Some(PathBuf::from("/c.pem")));
    assert!(config.client_tls.client_cert_auth);
    assert_eq!(config.peer_tls.key_file, Some(PathBuf::from("/p.key")));
    assert_eq!(
        warnings,
        vec!["config file: ignoring unknown key some-future-key".to_owned()]
    );
}

#[test]
fn config_file_from_environment_and_bad_values_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yml");
    std::fs::write(&path, "heartbeat-interval: abc\n").unwrap();
    let error = refuse(&[], &[("ETCD_CONFIG_FILE", path.to_str().unwrap())]);
    assert!(
        matches!(error, ConfigError::InvalidValue { ref key, .. } if key == "heartbeat-interval")
    );
    let missing = refuse(&["--config-file", "/nonexistent/etcd.yml"], &[]);
    assert_eq!(missing.exit_code(), 1);
}

#[test]
fn watch_progress_notify_interval_takes_go_durations_and_defaults_to_ten_minutes() {
    let (config, _) = serve(&[], &[]);
    assert_eq!(
        config.experimental_watch_progress_notify_interval,
        std::time::Duration::from_secs(600)
    );
    let (config, _) = serve(
        &["--experimental-watch-progress-notify-interval", "1m30.5s"],
        &[],
    );
    assert_eq!(
        config.experimental_watch_progress_notify_interval,
        std::time::Duration::from_millis(90_500)
    );
    let (config, _) = serve(
        &[],
        &[("ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", "250ms")],
    );
    assert_eq!(
        config.experimental_watch_progress_notify_interval,
        std::time::Duration::from_millis(250)
    );
    let error = refuse(&["--experimental-watch-progress-notify-interval=abc"], &[]);
    assert_eq!(
        error.to_string(),
        "invalid value \"abc\" for flag -experimental-watch-progress-notify-interval: parse error"
    );
}

#[test]
fn a_packaged_etcd_conf_environment_loads_and_warns_only_about_empty_variables() {
    // The environment a distribution's /etc/etcd/etcd.conf sets: deprecated proxy and
    // logging settings are accepted, empty ones are unset and reported as etcd reports them.
    let (config, warnings) = serve(
        &[],
        &[
            ("ETCD_NAME", "etcd-0-8"),
            ("ETCD_CORS", ""),
            ("ETCD_WAL_DIR", ""),
            ("ETCD_PROXY", "off"),
            ("ETCD_PROXY_FAILURE_WAIT", "5000"),
            ("ETCD_PROXY_REFRESH_INTERVAL", "30000"),
            ("ETCD_PROXY_DIAL_TIMEOUT", "1000"),
            ("ETCD_PROXY_WRITE_TIMEOUT", "5000"),
            ("ETCD_PROXY_READ_TIMEOUT", "0"),
            ("ETCD_LOG_OUTPUT", "default"),
            ("ETCD_LOG_PACKAGE_LEVELS", ""),
            ("ETCD_VERSION", "false"),
            ("ETCD_DEBUG", "false"),
        ],
    );
    assert_eq!(config.name, "etcd-0-8");
    assert_eq!(
        warnings,
        vec![
            "unrecognized environment variable ETCD_CORS=".to_owned(),
            "unrecognized environment variable ETCD_LOG_PACKAGE_LEVELS=".to_owned(),
            "unrecognized environment variable ETCD_WAL_DIR=".to_owned(),
        ]
    );
    let error = refuse(&[], &[("ETCD_PROXY", "bogus")]);
    assert_eq!(error.exit_code(), 2);
}

#[test]
fn cors_allows_every_origin_by_default_and_takes_urls_as_etcd_checks_them() {
    let (config, _) = serve(&[], &[]);
    assert_eq!(config.cors, vec!["*".to_owned()]);
    let (config, _) = serve(
        &["--cors", "http://a.example:80, https://b.example:8443"],
        &[],
    );
    assert_eq!(
        config.cors,
        vec![
            "http://a.example:80".to_owned(),
            "https://b.example:8443".to_owned()
        ]
    );
    let (config, _) = serve(&[], &[("ETCD_CORS", "http://c.example:1")]);
    assert_eq!(config.cors, vec!["http://c.example:1".to_owned()]);
    // etcd 3.4.23 refuses these at start with the URL list's messages.
    let error = refuse(&["--cors", "http://a.example"], &[]).to_string();
    assert!(
        error.contains("does not have the form \"host:port\""),
        "{error}"
    );
    let error = refuse(&["--cors", "*,http://a.example:80"], &[]).to_string();
    assert!(error.contains("URL scheme must be"), "{error}");
    assert!(
        refuse(&["--cors", ""], &[])
            .to_string()
            .contains("URL scheme must be")
    );
}

#[test]
fn cipher_suites_take_gos_names_and_refuse_others_as_etcd_does() {
    let (config, _) = serve(&[], &[]);
    assert!(config.cipher_suites.is_empty());
    let (config, _) = serve(
        &[
            "--cipher-suites",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        ],
        &[],
    );
    assert_eq!(
        config.cipher_suites,
        [
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305"
        ]
    );
    let error = refuse(
        &["--cipher-suites", "TLS_AES_128_GCM_SHA256, TLS_NOPE"],
        &[],
    );
    assert_eq!(
        error.to_string(),
        "unexpected TLS cipher suite \" TLS_NOPE\""
    );
    assert_eq!(error.exit_code(), 1);
    let error = refuse(&["--cipher-suites", ""], &[]);
    assert_eq!(error.to_string(), "unexpected TLS cipher suite \"\"");
    // An empty environment variable is unset (etcd starts with it).
    let (config, _) = serve(&[], &[("ETCD_CIPHER_SUITES", "")]);
    assert!(config.cipher_suites.is_empty());
}

#[test]
fn crl_files_allowed_cn_and_allowed_hostnames_are_read() {
    let (config, _) = serve(
        &[
            "--peer-crl-file",
            "/crl.pem",
            "--peer-cert-allowed-cn",
            "member",
            "--client-crl-file",
            "/client-crl.pem",
            "--client-cert-allowed-hostname",
            "client.example",
        ],
        &[("ETCD_PEER_CERT_ALLOWED_HOSTNAME", "peer.example")],
    );
    assert_eq!(config.peer_tls.crl_file, Some(PathBuf::from("/crl.pem")));
    assert_eq!(config.peer_tls.allowed_cn.as_deref(), Some("member"));
    assert_eq!(
        config.client_tls.crl_file,
        Some(PathBuf::from("/client-crl.pem"))
    );
    assert_eq!(config.client_tls.allowed_cn, None);
    assert_eq!(
        config.client_tls.allowed_hostname.as_deref(),
        Some("client.example")
    );
    assert_eq!(
        config.peer_tls.allowed_hostname.as_deref(),
        Some("peer.example")
    );
}
