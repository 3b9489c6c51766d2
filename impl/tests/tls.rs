//! Client TLS end to end: the real `oxetcd` binary served over https, driven by the real
//! etcdctl 3.4.23 and curl. A CA, a server certificate (SAN 127.0.0.1) and client
//! certificates are generated at test time. What etcdctl prints when the server refuses a
//! client without a certificate was recorded from etcd 3.4.23 started the same way.

#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::pki::Pki;
use common::{etcdctl_path, free_port};

/// A running `oxetcd` with the client URLs a test chose; killed on drop.
struct TlsServer {
    child: Child,
    port: u16,
    log_path: PathBuf,
    data_dir: PathBuf,
}

/// Starts `oxetcd` with `client_urls` (`{port}` replaced by a free port) and `extra`
/// flags; returns its exit output instead when it stops within the start-up time.
fn spawn(dir: &Path, client_urls: &str, extra: &[String]) -> Result<TlsServer, (Output, String)> {
    let port = free_port();
    let peer = format!("http://127.0.0.1:{}", free_port());
    let urls = client_urls.replace("{port}", &port.to_string());
    let data_dir = dir.join("data.etcd");
    let log_path = dir.join(format!("oxetcd-{port}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_oxetcd"))
        .args(["--data-dir", data_dir.to_str().unwrap()])
        .args([
            "--listen-client-urls",
            &urls,
            "--advertise-client-urls",
            &urls,
        ])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("default={peer}")])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start oxetcd");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(status) = child.try_wait().unwrap() {
            let output = Output {
                status,
                stdout: Vec::new(),
                stderr: Vec::new(),
            };
            return Err((output, text));
        }
        if text.contains("ready to serve client requests") {
            return Ok(TlsServer {
                child,
                port,
                log_path,
                data_dir,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "oxetcd did not become ready; log:\n{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
}

fn start(dir: &Path, client_urls: &str, extra: &[String]) -> TlsServer {
    match spawn(dir, client_urls, extra) {
        Ok(server) => server,
        Err((output, log)) => panic!("oxetcd exited with {}; log:\n{log}", output.status),
    }
}

impl TlsServer {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// etcdctl against `scheme://127.0.0.1:port` with `tls` flags, short timeouts.
    fn etcdctl(&self, scheme: &str, tls: &[String], args: &[&str]) -> Output {
        Command::new(etcdctl_path())
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={scheme}://127.0.0.1:{}", self.port))
            .args(["--dial-timeout=3s", "--command-timeout=5s"])
            .args(tls)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run etcdctl")
    }

    /// As [`TlsServer::etcdctl`], failing the test unless etcdctl succeeds; its stdout.
    fn ok(&self, scheme: &str, tls: &[String], args: &[&str]) -> String {
        let output = self.etcdctl(scheme, tls, args);
        assert!(
            output.status.success(),
            "etcdctl {args:?} failed: {}{}\nserver log:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// curl on `scheme://127.0.0.1:port{path}`: (success, body). With `body`, a POST.
    fn curl(&self, scheme: &str, tls: &[String], path: &str, body: Option<&str>) -> (bool, String) {
        let mut command = Command::new("curl");
        command
            .args(["-sS", "--max-time", "10"])
            .args(tls)
            .arg(format!("{scheme}://127.0.0.1:{}{path}", self.port));
        if let Some(body) = body {
            command.args(["-X", "POST", "-d", body]);
        }
        let output = command.output().expect("run curl");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn strings(flags: &[&str]) -> Vec<String> {
    flags.iter().map(|flag| (*flag).to_owned()).collect()
}

#[test]
fn etcdctl_and_curl_work_over_https_with_client_certificates_and_a_client_without_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), &["client"]);
    let mut flags = pki.server_flags();
    flags.extend(strings(&["--trusted-ca-file"]));
    flags.push(pki.path("ca.pem"));
    let server = start(dir.path(), "https://127.0.0.1:{port}", &flags);
    let log = server.log();
    assert!(
        log.contains(&format!(
            "embed: ClientTLS: cert = {}, key = {}, trusted-ca = {}, client-cert-auth = false",
            pki.path("server.pem"),
            pki.path("server.key"),
            pki.path("ca.pem")
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "embed: serving client requests on 127.0.0.1:{}",
            server.port
        )),
        "{log}"
    );
    assert!(!log.contains("serving insecure client requests"), "{log}");

    let tls = pki.etcdctl_flags(Some("client"));
    // A watch over TLS sees a put made over TLS.
    let mut watch = Command::new(etcdctl_path())
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints=https://127.0.0.1:{}", server.port))
        .args(&tls)
        .args(["watch", "greeting"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    // The watch is registered once a put it must see is made after it: retry puts with
    // new values until one shows up (bounded).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let mut round = 0;
    while Instant::now() < deadline && !seen.iter().any(|line: &String| line.starts_with("hello-"))
    {
        round += 1;
        let value = format!("hello-{round}");
        assert_eq!(
            server
                .ok("https", &tls, &["put", "greeting", &value])
                .trim(),
            "OK"
        );
        while let Ok(line) = received.recv_timeout(Duration::from_millis(500)) {
            seen.push(line);
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(
        seen.windows(3)
            .any(|w| w[0] == "PUT" && w[1] == "greeting" && w[2].starts_with("hello-")),
        "watch output over TLS: {seen:?}"
    );
    assert_eq!(
        server
            .ok("https", &tls, &["get", "greeting", "--print-value-only"])
            .trim(),
        format!("hello-{round}")
    );

    // No client certificate: the handshake is refused and etcdctl gives up as it does
    // against etcd 3.4.23 ("Error: context deadline exceeded", exit status 1).
    let refused = server.etcdctl("https", &pki.etcdctl_flags(None), &["put", "k", "v"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Error: context deadline exceeded"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(server.log().contains("embed: rejected connection from"));
    // Plain HTTP on an https-only port is not served.
    let plain = server.etcdctl("http", &[], &["get", "greeting"]);
    assert!(!plain.status.success());

    // /health and the v3 JSON gateway over https.
    let curl_tls = pki.curl_flags(Some("client"));
    let (ok, body) = server.curl("https", &curl_tls, "/health", None);
    assert!(ok, "{body}");
    assert_eq!(body.trim(), r#"{"health":"true"}"#);
    // "Z3JlZXRpbmc=" is base64 of "greeting".
    let (ok, body) = server.curl(
        "https",
        &curl_tls,
        "/v3/kv/range",
        Some(r#"{"key":"Z3JlZXRpbmc="}"#),
    );
    assert!(ok, "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["count"], "1", "{body}");
    let (ok, body) = server.curl("https", &pki.curl_flags(None), "/health", None);
    assert!(!ok, "a client without a certificate got {body}");
}

#[test]
fn client_cert_auth_runs_a_request_without_a_token_as_the_certificate_common_name() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), &["root", "alice"]);
    let mut flags = pki.server_flags();
    flags.extend(strings(&["--client-cert-auth", "--bcrypt-cost", "4"]));
    flags.extend(["--trusted-ca-file".to_owned(), pki.path("ca.pem")]);
    let server = start(dir.path(), "https://127.0.0.1:{port}", &flags);
    assert!(server.log().contains("client-cert-auth = true"));
    let root = pki.etcdctl_flags(Some("root"));
    let alice = pki.etcdctl_flags(Some("alice"));
    server.ok(
        "https",
        &root,
        &["user", "add", "root", "--new-user-password=pw"],
    );
    server.ok("https", &root, &["auth", "enable"]);
    // No --user: the certificate's CommonName "root" is the user.
    assert_eq!(server.ok("https", &root, &["put", "a", "1"]).trim(), "OK");
    // CommonName "alice" names no user with access: refused as etcd refuses it.
    let refused = server.etcdctl("https", &alice, &["get", "a"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Error: etcdserver: permission denied"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    server.ok(
        "https",
        &root,
        &["user", "add", "alice", "--new-user-password=pw2"],
    );
    server.ok("https", &root, &["role", "add", "reader"]);
    server.ok(
        "https",
        &root,
        &["role", "grant-permission", "reader", "read", "a"],
    );
    server.ok("https", &root, &["user", "grant-role", "alice", "reader"]);
    assert_eq!(
        server
            .ok("https", &alice, &["get", "a", "--print-value-only"])
            .trim(),
        "1"
    );
    let write = server.etcdctl("https", &alice, &["put", "a", "2"]);
    assert!(
        String::from_utf8_lossy(&write.stderr).contains("Error: etcdserver: permission denied"),
        "{}",
        String::from_utf8_lossy(&write.stderr)
    );
    // A token still wins over the certificate.
    let wrong = server.etcdctl("https", &root, &["--user", "root:wrong", "get", "a"]);
    assert!(
        String::from_utf8_lossy(&wrong.stderr)
            .contains("Error: etcdserver: authentication failed, invalid user ID or password"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
}

#[test]
fn http_and_https_urls_for_one_address_share_a_listener() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), &[]);
    let server = start(
        dir.path(),
        "http://127.0.0.1:{port},https://127.0.0.1:{port}",
        &pki.server_flags(),
    );
    let log = server.log();
    let addr = format!("127.0.0.1:{}", server.port);
    assert!(
        log.contains(&format!("serving insecure client requests on {addr}")),
        "{log}"
    );
    assert!(
        log.contains(&format!("serving client requests on {addr}")),
        "{log}"
    );
    let tls = pki.etcdctl_flags(None);
    assert_eq!(
        server.ok("https", &tls, &["put", "k", "secure"]).trim(),
        "OK"
    );
    assert_eq!(
        server
            .ok("http", &[], &["get", "k", "--print-value-only"])
            .trim(),
        "secure"
    );
    assert_eq!(server.ok("http", &[], &["put", "k", "plain"]).trim(), "OK");
    assert_eq!(
        server
            .ok("https", &tls, &["get", "k", "--print-value-only"])
            .trim(),
        "plain"
    );
    let (ok, body) = server.curl("http", &[], "/health", None);
    assert!(ok && body.contains(r#""health":"true""#), "{body}");
    let (ok, body) = server.curl("https", &pki.curl_flags(None), "/health", None);
    assert!(ok && body.contains(r#""health":"true""#), "{body}");
}

#[test]
fn auto_tls_serves_a_self_signed_certificate_kept_in_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        "https://127.0.0.1:{port}",
        &strings(&["--auto-tls"]),
    );
    let cert = server.data_dir.join("fixtures/client/cert.pem");
    let key = server.data_dir.join("fixtures/client/key.pem");
    assert!(
        std::fs::read_to_string(&cert)
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert!(key.is_file());
    assert!(
        server
            .log()
            .contains(&format!("embed: ClientTLS: cert = {}", cert.display())),
        "{}",
        server.log()
    );
    // etcdctl 3.4.23 only sets up TLS itself (and so honours
    // --insecure-skip-tls-verify) when another TLS flag is given, as against etcd.
    let insecure = strings(&["--insecure-transport=false", "--insecure-skip-tls-verify"]);
    assert_eq!(
        server.ok("https", &insecure, &["put", "k", "v"]).trim(),
        "OK"
    );
    // The generated certificate itself, given as the CA, checks out (SAN 127.0.0.1).
    let pinned = vec![format!("--cacert={}", cert.display())];
    assert_eq!(
        server
            .ok("https", &pinned, &["get", "k", "--print-value-only"])
            .trim(),
        "v"
    );
    // Without either, the self-signed certificate is not trusted.
    let checked = server.etcdctl("https", &[], &["get", "k"]);
    assert!(!checked.status.success());
    // A restart keeps the pair.
    let before = std::fs::read(&cert).unwrap();
    drop(server);
    let server = start(
        dir.path(),
        "https://127.0.0.1:{port}",
        &strings(&["--auto-tls"]),
    );
    assert_eq!(std::fs::read(&cert).unwrap(), before);
    assert_eq!(
        server
            .ok("https", &pinned, &["get", "k", "--print-value-only"])
            .trim(),
        "v"
    );
}

#[test]
fn an_https_url_without_certificates_is_refused_and_an_http_url_ignores_them_with_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let Err((output, log)) = spawn(dir.path(), "https://127.0.0.1:{port}", &[]) else {
        panic!("oxetcd started on an https URL without certificates");
    };
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(
        log.contains("TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:"),
        "{log}"
    );
    assert!(log.contains("with HTTPS scheme"), "{log}");

    // Nothing was written: the data dir is checked after the listeners.
    assert!(!dir.path().join("data.etcd").exists());

    let pki = Pki::new(dir.path(), &[]);
    let mut flags = pki.server_flags();
    flags.push("--client-cert-auth".into());
    let server = start(dir.path(), "http://127.0.0.1:{port}", &flags);
    let log = server.log();
    let url = format!("http://127.0.0.1:{}", server.port);
    assert!(
        log.contains(&format!(
            "The scheme of client url {url} is HTTP while peer key/cert files are presented. Ignored key/cert files."
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "The scheme of client url {url} is HTTP while client cert auth (--client-cert-auth) is enabled. Ignored client cert auth for this url."
        )),
        "{log}"
    );
    assert_eq!(server.ok("http", &[], &["put", "k", "v"]).trim(), "OK");
    let https = server.etcdctl("https", &pki.etcdctl_flags(None), &["get", "k"]);
    assert!(!https.status.success());
}

#[test]
fn cipher_suites_restrict_tls_1_2_and_an_unknown_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = strings(&[
        "--auto-tls",
        "--cipher-suites",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_NOPE",
    ]);
    let Err((output, log)) = spawn(dir.path(), "https://127.0.0.1:{port}", &unknown) else {
        panic!("oxetcd started with an unknown cipher suite");
    };
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(
        log.contains("unexpected TLS cipher suite \"TLS_NOPE\""),
        "{log}"
    );

    // The test CA's keys are ECDSA: of the two TLS 1.2 suites named, rustls has the
    // first; the CBC one is ignored with a warning.
    let pki = Pki::new(dir.path(), &[]);
    let mut flags = pki.server_flags();
    flags.extend(strings(&[
        "--cipher-suites",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    ]));
    let server = start(dir.path(), "https://127.0.0.1:{port}", &flags);
    let log = server.log();
    assert!(
        log.contains("cipher suite TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA is not available"),
        "{log}"
    );
    let tls12 = |openssl_suite: &str| {
        let mut tls = pki.curl_flags(None);
        tls.extend(strings(&["--tls-max", "1.2", "--ciphers", openssl_suite]));
        server.curl("https", &tls, "/version", None)
    };
    let (named, body) = tls12("ECDHE-ECDSA-AES256-GCM-SHA384");
    assert!(named && body.contains("etcdserver"), "{body}");
    let (other, _) = tls12("ECDHE-ECDSA-AES128-GCM-SHA256");
    assert!(!other, "a TLS 1.2 suite not named was negotiated");
    // TLS 1.3 is not restricted.
    let (tls13, body) = server.curl("https", &pki.curl_flags(None), "/version", None);
    assert!(tls13 && body.contains("etcdserver"), "{body}");
}

#[test]
fn client_cert_allowed_hostname_admits_only_client_certificates_valid_for_that_host() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), &["alice"]);
    let mut flags = pki.server_flags();
    flags.extend(strings(&[
        "--trusted-ca-file",
        &pki.path("ca.pem"),
        "--client-cert-allowed-hostname",
        "127.0.0.1",
    ]));
    let server = start(dir.path(), "https://127.0.0.1:{port}", &flags);
    // The server pair (SAN 127.0.0.1, client auth usage) is valid for the allowed host.
    let member = pki.etcdctl_flags(Some("server"));
    assert_eq!(server.ok("https", &member, &["put", "k", "v"]).trim(), "OK");
    // alice's certificate is signed by the same CA but names no host: refused, as etcd
    // refuses it ("client certificate authentication failed" in its log).
    let alice = server.etcdctl(
        "https",
        &pki.etcdctl_flags(Some("alice")),
        &["put", "k", "x"],
    );
    assert!(
        !alice.status.success(),
        "{}",
        String::from_utf8_lossy(&alice.stdout)
    );
    assert_eq!(
        server
            .ok("https", &member, &["get", "k", "--print-value-only"])
            .trim(),
        "v"
    );
    drop(server);

    // A host name no certificate is valid for refuses every client.
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), &[]);
    let mut flags = pki.server_flags();
    flags.extend(strings(&[
        "--trusted-ca-file",
        &pki.path("ca.pem"),
        "--client-cert-allowed-hostname",
        "other.example",
    ]));
    let server = start(dir.path(), "https://127.0.0.1:{port}", &flags);
    let refused = server.etcdctl("https", &pki.etcdctl_flags(Some("server")), &["get", "k"]);
    assert!(!refused.status.success());
}
