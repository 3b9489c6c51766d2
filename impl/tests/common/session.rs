//! Replays a recorded etcdctl session (a YAML list of [`Step`]s) against one server and
//! compares each step's stdout, stderr and exit status with what the reference etcd
//! printed, or, when recording, fills them in from what it prints now.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Background, Etcdctl};

/// One step of a session.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Step {
    /// `ETCDCTL_API` for this step (the session's default unless given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<u8>,
    /// etcdctl arguments. `{rev+N}` is the current revision plus N, `{i+N}` the v2 store
    /// index the session started at plus N, `{name}` what a `capture: name` step took.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub run: Vec<String>,
    /// Fed to etcdctl's standard input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// Remember the first 16-digit hex word of stdout under this name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<String>,
    /// Run in the background under this name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spawn: Option<String>,
    /// Wait until the v2 store counts this many waiting watchers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_v2_watchers: Option<u64>,
    /// Finish a background run: wait for it to exit, or (with `lines`) until it printed
    /// that many lines, then stop it (`interrupt`: with SIGINT, as ^C; else SIGKILL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish: Option<String>,
    /// See `finish`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<usize>,
    /// See `finish`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interrupt: bool,
    /// Output lines come in no set order (etcd lists unsorted v2 children in Go map
    /// order): compared sorted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unordered: bool,
    /// Regexes whose matches are replaced by `<*>` in this step's output.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mask: Vec<String>,
    /// Expected stdout (normalised).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    /// Expected stderr (normalised).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    /// Expected exit status (foreground runs and background runs waited for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<i32>,
}

/// Bound on any single wait.
const WAIT: Duration = Duration::from_secs(20);

/// What a session's steps print, rewritten so that two correct servers print the same:
/// `(step, the v2 store index the session started at, stdout, stderr)`.
pub type Normalize<'a> = &'a dyn Fn(&Step, u64, &str, &str) -> (String, String);

/// A session against one server.
#[derive(Debug)]
pub struct Session {
    endpoint: String,
    api: u8,
    dir: tempfile::TempDir,
    vars: BTreeMap<String, String>,
    base: u64,
}

impl Session {
    /// A session against `endpoint` (`host:port`) whose steps use `ETCDCTL_API=api` unless
    /// they say otherwise; the server serves the v2 API (`--enable-v2`).
    pub fn new(endpoint: &str, api: u8) -> Session {
        let endpoint = endpoint.trim_start_matches("http://").to_owned();
        let base = store_index(&endpoint);
        Session {
            endpoint,
            api,
            dir: tempfile::tempdir().unwrap(),
            vars: BTreeMap::new(),
            base,
        }
    }

    fn etcdctl(&self, step: &Step) -> Etcdctl {
        Etcdctl::api(step.api.unwrap_or(self.api), &self.endpoint).in_dir(self.dir.path())
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
        if let Some(n) = arg
            .strip_prefix("{i+")
            .and_then(|r| r.strip_suffix('}'))
            .and_then(|n| n.parse::<u64>().ok())
        {
            arg = (self.base + n).to_string();
        }
        arg
    }

    /// The store's current revision.
    fn revision(&self) -> i64 {
        let output =
            Etcdctl::v3(&self.endpoint).output(&["get", "revision-probe", "-w", "json"], "");
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        json["header"]["revision"].as_i64().unwrap()
    }

    /// Runs `steps`: with `record`, fills in the expected outputs; else compares.
    pub fn run(&mut self, steps: &mut [Step], record: bool, normalize: Normalize<'_>) {
        let mut background: BTreeMap<String, Background> = BTreeMap::new();
        for (n, step) in steps.iter_mut().enumerate() {
            if let Some(count) = step.wait_v2_watchers {
                let deadline = Instant::now() + WAIT;
                while v2_watchers(&self.endpoint) < count {
                    assert!(Instant::now() < deadline, "step {n}: no v2 watcher");
                    std::thread::sleep(Duration::from_millis(20));
                }
                continue;
            }
            let args: Vec<String> = step.run.iter().map(|a| self.expand(a)).collect();
            let (stdout, stderr, status) = if let Some(name) = &step.spawn {
                background.insert(name.clone(), self.etcdctl(step).spawn(&args));
                continue;
            } else if let Some(name) = &step.finish {
                let mut running = background.remove(name).unwrap();
                match step.lines {
                    Some(count) => {
                        let out = running.lines(count, WAIT);
                        running.stop(step.interrupt);
                        (out, String::new(), None)
                    }
                    None => running
                        .finish(WAIT)
                        .unwrap_or_else(|| panic!("step {n}: background {name} did not finish")),
                }
            } else {
                let stdin = step.stdin.clone().unwrap_or_default();
                let output = self.etcdctl(step).output(&args, &stdin);
                (
                    String::from_utf8_lossy(&output.stdout).into_owned(),
                    String::from_utf8_lossy(&output.stderr).into_owned(),
                    output.status.code(),
                )
            };
            if let Some(name) = &step.capture {
                let id = stdout
                    .split(|c: char| !c.is_ascii_hexdigit())
                    .find(|word| word.len() == 16)
                    .unwrap_or_else(|| panic!("step {n}: no id to capture in {stdout:?}"));
                self.vars.insert(name.clone(), id.to_owned());
            }
            let (mut stdout, stderr) = normalize(step, self.base, &stdout, &stderr);
            if step.unordered {
                let mut lines: Vec<&str> = stdout.lines().collect();
                lines.sort_unstable();
                stdout = lines.iter().map(|l| format!("{l}\n")).collect();
            }
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
    }
}

/// The v2 store index now (`X-Etcd-Index` of `GET /v2/keys/`).
pub fn store_index(endpoint: &str) -> u64 {
    let (head, _) = super::http_get(endpoint, "/v2/keys/");
    head.to_ascii_lowercase()
        .lines()
        .find_map(|l| l.strip_prefix("x-etcd-index: ").map(str::to_owned))
        .and_then(|v| v.trim().parse().ok())
        .expect("X-Etcd-Index header (is the v2 API enabled?)")
}

/// How many v2 watchers wait now.
fn v2_watchers(endpoint: &str) -> u64 {
    let (_, body) = super::http_get(endpoint, "/v2/stats/store");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    json["watchers"].as_u64().unwrap()
}
