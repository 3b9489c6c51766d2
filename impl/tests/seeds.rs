//! End-to-end: the commands the etcd tutorials in the project's seed material show a user
//! typing, replayed with the real `etcdctl` 3.4.23 against the real `oxetcd` binary (one
//! fresh member, `--enable-v2`). `seeds_session.yaml` holds the steps and what etcd 3.4.23
//! printed for each (stdout, stderr, exit status).
//!
//! Outputs are compared after [`normalize`], which rewrites only what differs from run to
//! run of etcd itself: ports, member/cluster/lease ids (hex and decimal), timestamps,
//! durations, client uuids and the column widths of tables (they follow the id's length).
//! A step's `mask` regexes hide what else it prints that differs between two correct
//! servers: the database size (oxetcd's storage is not bbolt), the raft term and index
//! (oxetcd's raft log holds fewer internal entries; see below) and v2 store indexes
//! (etcd's v2 store starts at index 3). The JSON header's `raft_term` is normalised too:
//! a fresh etcd serves at term 2 (its bootstrap entries are at term 1, its first election
//! makes term 2), oxetcd at term 1.
//!
//! Re-record against etcd 3.4.23 (`/usr/bin/etcd`, started by the test itself):
//! `SEEDS_RECORD=1 cargo test -p oxetcd --test seeds`.

#![allow(
    clippy::unwrap_used,
    reason = "integration test: the shared harness unwraps, a failed unwrap is a failed test"
)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use regex::Regex;
use serde::{Deserialize, Serialize};

/// One step of the session.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct Step {
    /// `ETCDCTL_API` for this step (3 unless 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    api: Option<u8>,
    /// etcdctl arguments. `{rev+N}` is the current revision plus N, `{lease}` the id a
    /// `capture: lease` step printed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    run: Vec<String>,
    /// Fed to etcdctl's standard input.
    #[serde(skip_serializing_if = "Option::is_none")]
    stdin: Option<String>,
    /// Remember the first 16-digit hex word of stdout under this name.
    #[serde(skip_serializing_if = "Option::is_none")]
    capture: Option<String>,
    /// Run in the background under this name.
    #[serde(skip_serializing_if = "Option::is_none")]
    spawn: Option<String>,
    /// Wait until the v2 store counts this many waiting watchers.
    #[serde(skip_serializing_if = "Option::is_none")]
    wait_v2_watchers: Option<u64>,
    /// Finish a background run: wait for it to exit, or (with `lines`) until it printed
    /// that many lines, then stop it (`interrupt`: with SIGINT, as ^C; else SIGKILL).
    #[serde(skip_serializing_if = "Option::is_none")]
    finish: Option<String>,
    /// See `finish`.
    #[serde(skip_serializing_if = "Option::is_none")]
    lines: Option<usize>,
    /// See `finish`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    interrupt: bool,
    /// Regexes whose matches are replaced by `<*>` in this step's output.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mask: Vec<String>,
    /// Expected stdout (normalised).
    #[serde(skip_serializing_if = "Option::is_none")]
    stdout: Option<String>,
    /// Expected stderr (normalised).
    #[serde(skip_serializing_if = "Option::is_none")]
    stderr: Option<String>,
    /// Expected exit status (foreground runs and background runs waited for).
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<i32>,
}

/// Bound on any single wait.
const WAIT: Duration = Duration::from_secs(20);

/// Rewrites what varies between two runs of etcd itself (see the module docs).
fn normalize(text: &str, masks: &[String]) -> String {
    let rules: [(&str, &str); 11] = [
        (r"127\.0\.0\.1:\d+", "127.0.0.1:<port>"),
        (r#""ts":("[^"]*"|[0-9.e+]+)"#, r#""ts":<ts>"#),
        (r"client-[0-9a-f-]{36}", "client-<uuid>"),
        (r"\b[0-9a-f]{10,16}\b", "<id>"),
        (r#""(cluster_id|member_id)":\d+"#, r#""$1":<id>"#),
        (r#""raft_term":\d+"#, r#""raft_term":<term>"#),
        (r"took = [0-9.]+[nµm]?s", "took = <duration>"),
        (r#""took":[0-9.e-]+"#, r#""took":<duration>"#),
        (r"\| [0-9.]+[nµm]?s \|", "| <duration> |"),
        (r"-{2,}", "--"),
        (r" {2,}", " "),
    ];
    let rules: Vec<(Regex, &str, bool)> = rules
        .iter()
        .map(|(pattern, replacement)| {
            // Column padding is only collapsed in tables.
            let table_only = *pattern == r"-{2,}" || *pattern == r" {2,}";
            (Regex::new(pattern).unwrap(), *replacement, table_only)
        })
        .collect();
    let masks: Vec<Regex> = masks.iter().map(|m| Regex::new(m).unwrap()).collect();
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let mut line = line.to_owned();
        let table = line.starts_with('+') || line.starts_with('|');
        for (pattern, replacement, table_only) in &rules {
            if *table_only && !table {
                continue;
            }
            line = pattern.replace_all(&line, *replacement).into_owned();
        }
        for mask in &masks {
            line = mask.replace_all(&line, "<*>").into_owned();
        }
        out.push_str(&line);
    }
    out
}

/// A server under test: the client endpoint (`127.0.0.1:PORT`).
struct Session {
    endpoint: String,
    dir: tempfile::TempDir,
    vars: BTreeMap<String, String>,
}

impl Session {
    fn command(&self, step: &Step) -> Command {
        let mut command = Command::new(common::etcdctl_path());
        let api = step.api.unwrap_or(3);
        let endpoint = if api == 2 {
            format!("http://{}", self.endpoint)
        } else {
            self.endpoint.clone()
        };
        command
            .current_dir(self.dir.path())
            .env("ETCDCTL_API", api.to_string())
            .arg(format!("--endpoints={endpoint}"))
            .args(step.run.iter().map(|a| self.expand(a)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    fn expand(&self, arg: &str) -> String {
        let mut arg = arg.to_owned();
        for (name, value) in &self.vars {
            arg = arg.replace(&format!("{{{name}}}"), value);
        }
        if let Some(start) = arg.find("{rev+") {
            let end = start + arg[start..].find('}').unwrap();
            let n: i64 = arg[start + 5..end].parse().unwrap();
            let rev = self.revision() + n;
            arg.replace_range(start..=end, &rev.to_string());
        }
        arg
    }

    /// The store's current revision.
    fn revision(&self) -> i64 {
        let output = Command::new(common::etcdctl_path())
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint))
            .args(["get", "revision-probe", "-w", "json"])
            .output()
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        json["header"]["revision"].as_i64().unwrap()
    }

    fn v2_watchers(&self) -> u64 {
        let mut stream = std::net::TcpStream::connect(&self.endpoint).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        write!(
            stream,
            "GET /v2/stats/store HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.endpoint
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let body = response.split_once("\r\n\r\n").unwrap().1;
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        json["watchers"].as_u64().unwrap()
    }
}

/// A background etcdctl whose stdout lines arrive on a channel.
struct Background {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Background {
    fn stop(&mut self, interrupt: bool) {
        if interrupt {
            let _ = Command::new("kill")
                .args(["-INT", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + WAIT;
            while self.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_session(session: &mut Session, steps: &mut [Step], record: bool) {
    let mut background: BTreeMap<String, Background> = BTreeMap::new();
    let id_pattern = Regex::new(r"\b[0-9a-f]{16}\b").unwrap();
    for (n, step) in steps.iter_mut().enumerate() {
        if let Some(count) = step.wait_v2_watchers {
            let deadline = Instant::now() + WAIT;
            while session.v2_watchers() < count {
                assert!(Instant::now() < deadline, "step {n}: no v2 watcher");
                std::thread::sleep(Duration::from_millis(20));
            }
            continue;
        }
        let (stdout, stderr, status) = if let Some(name) = &step.spawn {
            let mut child = session.command(step).spawn().unwrap();
            drop(child.stdin.take());
            let stdout = child.stdout.take().unwrap();
            let (sender, lines) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
            background.insert(name.clone(), Background { child, lines });
            continue;
        } else if let Some(name) = &step.finish {
            let mut running = background.remove(name).unwrap();
            match step.lines {
                Some(count) => {
                    let mut out = String::new();
                    let deadline = Instant::now() + WAIT;
                    for _ in 0..count {
                        let left = deadline.saturating_duration_since(Instant::now());
                        match running.lines.recv_timeout(left) {
                            Ok(line) => out.push_str(&format!("{line}\n")),
                            Err(_) => break,
                        }
                    }
                    running.stop(step.interrupt);
                    (out, String::new(), None)
                }
                None => {
                    let deadline = Instant::now() + WAIT;
                    while running.child.try_wait().unwrap().is_none() {
                        if Instant::now() > deadline {
                            running.stop(false);
                            panic!("step {n}: background {name} did not finish");
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    let mut out = String::new();
                    while let Ok(line) = running.lines.recv_timeout(WAIT) {
                        out.push_str(&format!("{line}\n"));
                    }
                    let mut err = String::new();
                    if let Some(mut stderr) = running.child.stderr.take() {
                        stderr.read_to_string(&mut err).unwrap();
                    }
                    let status = running.child.wait().unwrap().code();
                    (out, err, status)
                }
            }
        } else {
            let mut child = session.command(step).spawn().unwrap();
            let stdin = step.stdin.clone().unwrap_or_default();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(stdin.as_bytes())
                .unwrap();
            let output = child.wait_with_output().unwrap();
            (
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
                output.status.code(),
            )
        };
        if let Some(name) = &step.capture {
            let id = id_pattern
                .find(&stdout)
                .unwrap_or_else(|| panic!("step {n}: no id to capture in {stdout:?}"));
            session.vars.insert(name.clone(), id.as_str().to_owned());
        }
        let stdout = normalize(&stdout, &step.mask);
        let stderr = normalize(&stderr, &step.mask);
        if record {
            step.stdout = Some(stdout);
            step.stderr = (!stderr.is_empty()).then_some(stderr);
            step.status = status;
        } else {
            let what = format!("step {n}: etcdctl {:?} {:?}", step.run, step.finish);
            assert_eq!(Some(&stdout), step.stdout.as_ref(), "{what}: stdout");
            assert_eq!(
                stderr,
                step.stderr.clone().unwrap_or_default(),
                "{what}: stderr"
            );
            assert_eq!(status, step.status, "{what}: exit status");
        }
    }
    for (_, mut running) in background {
        running.stop(false);
    }
}

/// The real etcd 3.4.23 on free ports, for recording; killed on drop.
struct Etcd(Child);

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_etcd(dir: &Path) -> (Etcd, String) {
    let client = format!("http://127.0.0.1:{}", common::free_port());
    let peer = format!("http://127.0.0.1:{}", common::free_port());
    let log = std::fs::File::create(dir.join("etcd.log")).unwrap();
    let child = Command::new("etcd")
        .args(["--data-dir", dir.join("etcd-data").to_str().unwrap()])
        .args([
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args([
            "--initial-cluster",
            &format!("default={peer}"),
            "--enable-v2",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let etcd = Etcd(child);
    let deadline = Instant::now() + WAIT;
    while !std::fs::read_to_string(dir.join("etcd.log"))
        .unwrap_or_default()
        .contains("ready to serve client requests")
    {
        assert!(Instant::now() < deadline, "etcd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (etcd, client.trim_start_matches("http://").to_owned())
}

#[test]
fn the_tutorials_commands_print_what_etcd_prints() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/seeds_session.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut steps: Vec<Step> = serde_yaml::from_str(&text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    if std::env::var_os("SEEDS_RECORD").is_some() {
        let (_etcd, endpoint) = start_etcd(dir.path());
        let mut session = Session {
            endpoint,
            dir: tempfile::tempdir().unwrap(),
            vars: BTreeMap::new(),
        };
        run_session(&mut session, &mut steps, true);
        let header: String = text
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&path, header + &serde_yaml::to_string(&steps).unwrap()).unwrap();
        return;
    }
    let server = common::Server::start_with(dir.path(), &["--enable-v2"]);
    let mut session = Session {
        endpoint: server.endpoint(),
        dir: tempfile::tempdir().unwrap(),
        vars: BTreeMap::new(),
    };
    run_session(&mut session, &mut steps, false);
}
