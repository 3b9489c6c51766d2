//! End-to-end: authentication with the real `etcdctl` 3.4.23 against the real `oxetcd`
//! binary: users, roles and permissions, `auth enable`, requests with `--user`, etcd's
//! error texts, `auth disable`; simple and JWT tokens.

#![allow(
    clippy::unwrap_used,
    reason = "integration test: a failed unwrap is a failed test"
)]

mod common;

use common::Server;

/// Runs etcdctl and returns (success, stdout, stderr).
fn run(server: &Server, args: &[&str]) -> (bool, String, String) {
    let output = server.etcdctl(args);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Asserts that etcdctl fails and prints `Error: <message>` last, as with etcd.
fn fails_with(server: &Server, args: &[&str], message: &str) {
    let (ok, stdout, stderr) = run(server, args);
    assert!(!ok, "etcdctl {args:?} should fail; printed {stdout}");
    assert!(
        stderr.trim_end().ends_with(&format!("Error: {message}")),
        "etcdctl {args:?}: {stderr}"
    );
}

/// The root user and role, and a `reader` role for alice: read `foo`, read-write `pub/`.
fn set_up_users(server: &Server) {
    assert_eq!(server.ok(&["role", "add", "root"]), "Role root created\n");
    assert_eq!(
        server.ok(&["user", "add", "root:rootpw"]),
        "User root created\n"
    );
    assert_eq!(
        server.ok(&["user", "grant-role", "root", "root"]),
        "Role root is granted to user root\n"
    );
    assert_eq!(
        server.ok(&["role", "add", "reader"]),
        "Role reader created\n"
    );
    assert_eq!(
        server.ok(&["role", "grant-permission", "reader", "read", "foo"]),
        "Role reader updated\n"
    );
    assert_eq!(
        server.ok(&[
            "role",
            "grant-permission",
            "--prefix=true",
            "reader",
            "readwrite",
            "pub/"
        ]),
        "Role reader updated\n"
    );
    assert_eq!(
        server.ok(&["user", "add", "alice:alicepw"]),
        "User alice created\n"
    );
    assert_eq!(
        server.ok(&["user", "grant-role", "alice", "reader"]),
        "Role reader is granted to user alice\n"
    );
}

/// With auth enabled: root writes `foo`; alice reads it but may not write it, and a wrong
/// password is refused.
fn root_writes_and_alice_reads_only_with_her_password(server: &Server, value: &str) {
    assert_eq!(
        server.ok(&["--user=root:rootpw", "put", "foo", value]),
        "OK\n"
    );
    assert_eq!(
        server.ok(&["--user=alice:alicepw", "get", "foo"]),
        format!("foo\n{value}\n")
    );
    fails_with(
        server,
        &["--user=alice:alicepw", "put", "foo", "x"],
        "etcdserver: permission denied",
    );
    fails_with(
        server,
        &["--user=alice:wrong", "get", "foo"],
        "etcdserver: authentication failed, invalid user ID or password",
    );
}

#[test]
fn users_roles_and_permissions_behave_as_with_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--bcrypt-cost", "4"]);
    set_up_users(&server);
    assert_eq!(server.ok(&["user", "list"]), "alice\nroot\n");
    assert_eq!(server.ok(&["role", "list"]), "reader\nroot\n");
    assert_eq!(
        server.ok(&["role", "get", "reader"]),
        "Role reader\nKV Read:\n\tfoo\n\t[pub/, pub0) (prefix pub/)\nKV Write:\n\t[pub/, pub0) (prefix pub/)\n"
    );
    assert_eq!(
        server.ok(&["user", "get", "alice"]),
        "User: alice\nRoles: reader\n"
    );
    fails_with(
        &server,
        &["user", "add", "alice:again"],
        "etcdserver: user name already exists",
    );

    assert_eq!(server.ok(&["auth", "enable"]), "Authentication Enabled\n");
    fails_with(
        &server,
        &["put", "foo", "bar"],
        "etcdserver: user name is empty",
    );
    root_writes_and_alice_reads_only_with_her_password(&server, "bar");
    assert_eq!(
        server.ok(&["--user=alice:alicepw", "put", "pub/a", "1"]),
        "OK\n"
    );
    assert_eq!(
        server.ok(&["--user=alice:alicepw", "get", "--prefix", "pub/"]),
        "pub/a\n1\n"
    );
    fails_with(
        &server,
        &["--user=alice:alicepw", "user", "list"],
        "etcdserver: permission denied",
    );
    fails_with(
        &server,
        &["--user=root:rootpw", "user", "delete", "root"],
        "etcdserver: invalid auth management",
    );
    // A password change takes effect at once.
    let changed = server.etcdctl_stdin(
        &[
            "--user=root:rootpw",
            "user",
            "passwd",
            "alice",
            "--interactive=false",
        ],
        "newpw\n",
    );
    assert_eq!(
        String::from_utf8_lossy(&changed.stdout),
        "Password updated\n"
    );
    fails_with(
        &server,
        &["--user=alice:alicepw", "get", "foo"],
        "etcdserver: authentication failed, invalid user ID or password",
    );
    assert_eq!(
        server.ok(&["--user=alice:newpw", "get", "foo"]),
        "foo\nbar\n"
    );
}

#[test]
fn auth_disable_lets_requests_without_a_user_through_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--bcrypt-cost", "4"]);
    set_up_users(&server);
    assert_eq!(server.ok(&["auth", "enable"]), "Authentication Enabled\n");
    fails_with(&server, &["get", "foo"], "etcdserver: user name is empty");
    assert_eq!(
        server.ok(&["--user=root:rootpw", "put", "foo", "v"]),
        "OK\n"
    );
    assert_eq!(
        server.ok(&["--user=root:rootpw", "auth", "disable"]),
        "Authentication Disabled\n"
    );
    assert_eq!(server.ok(&["get", "foo"]), "foo\nv\n");
}

#[test]
fn jwt_tokens_authorise_requests() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("jwt.secret");
    std::fs::write(&secret, b"a shared secret of the test cluster").unwrap();
    let flag = format!("jwt,priv-key={},sign-method=HS256,ttl=5m", secret.display());
    let server = Server::start_with(dir.path(), &["--auth-token", &flag, "--bcrypt-cost", "4"]);
    set_up_users(&server);
    assert_eq!(server.ok(&["auth", "enable"]), "Authentication Enabled\n");
    root_writes_and_alice_reads_only_with_her_password(&server, "jwt");
}

#[test]
fn defrag_and_snapshot_are_for_root_only_as_with_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    set_up_users(&server);
    assert_eq!(server.ok(&["auth", "enable"]), "Authentication Enabled\n");
    // Texts recorded from etcd 3.4.23: a non-root user is refused, no user at all too.
    let (ok, stdout, stderr) = run(&server, &["--user=alice:alicepw", "defrag"]);
    let stderr = stdout + &stderr;
    assert!(!ok, "defrag as alice must fail");
    assert!(
        stderr.contains("Failed to defragment etcd member")
            && stderr.contains("rpc error: code = Unknown desc = auth: permission denied"),
        "{stderr}"
    );
    let (ok, stdout, stderr) = run(&server, &["defrag"]);
    let stderr = stdout + &stderr;
    assert!(!ok, "defrag without a user must fail");
    assert!(
        stderr.contains("rpc error: code = Unknown desc = auth: user name is empty"),
        "{stderr}"
    );
    let snapshot = dir.path().join("alice.db");
    fails_with(
        &server,
        &[
            "--user=alice:alicepw",
            "snapshot",
            "save",
            snapshot.to_str().unwrap(),
        ],
        "rpc error: code = Unknown desc = auth: permission denied",
    );
    assert!(
        server
            .ok(&["--user=root:rootpw", "defrag"])
            .starts_with("Finished defragmenting etcd member")
    );
}
