//! The transcript file format (`conformance/transcripts/<area>/<name>.yaml`).
//!
//! A transcript is a description, the key prefix it owns and an ordered list of steps.
//! Step kinds (exactly one of the leading fields is set):
//!
//! * `call: KV/Range` — a unary gRPC call (`Service/Method` in `etcdserverpb`, or a fully
//!   qualified `v3lockpb.Lock/Lock`); `request` in protobuf-JSON, answer in `response`
//!   or `error` (`code` + `message`). Optional `token` is sent as the `token` metadata.
//! * `open: w` + `call: Watch/Watch` — opens a stream named `w` (server-streaming calls
//!   such as `Election/Observe` take their single `request` here).
//! * `send: w` + `request` — sends one message on stream `w`.
//! * `recv: w` — the next message on `w` within `wait_ms` (default 5000): `response`,
//!   or `error` if the stream ends with a status. With `messages: N`, the next N
//!   messages, matched in any order against `responses`.
//! * `quiet: w` — no message arrives on `w` for `wait_ms` (default 300).
//! * `close: w` — closes the sending side and drops the stream.
//! * `http: "PUT /v2/keys/a?ttl=5"` — an HTTP request with optional `form`, `json` or
//!   `raw` body and `header_in`; answer in `status`, `headers`, `body`. With
//!   `background: name` the request runs concurrently and `join: name` checks its answer.
//! * `sleep_ms: 1500` — waits (TTL expiry).
//!
//! Modifiers: `repeat: N` on a `call` or `http` step sends it N times (each earlier answer
//! must have the recorded status or error code; the last is compared in full);
//! `summary: snapshot` on a `recv` reads the stream to its end and compares the summary
//! described in [`crate::summary`]; `metrics: [names]` on an `http` step parses the
//! Prometheus text answer into those metric families (type and samples).
//!
//! A transcript that needs the server started with particular flags lists them in
//! `server_flags` (`{transcripts}` expands to the transcript directory, for key files);
//! replay runs it on a freshly launched server (see [`crate::launch`]) or skips it when it
//! can only reach a plain endpoint.
//!
//! Bytes fields of protobuf messages are written as text when they are printable UTF-8,
//! else as `base64:<data>`. Values are normalised as documented in [`crate::value`].
//! A step may carry a `deviation` (a known etcd 3.4.23 bug, see
//! [`crate::deviations`]) with the corrected answer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One transcript file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transcript {
    /// One line saying what the transcript shows.
    pub description: String,
    /// The key prefix this transcript works under (cleaned before it runs).
    pub prefix: String,
    /// Flags the server must be started with (etcd's flag names, e.g.
    /// `--max-request-bytes=2048`); such a transcript runs on a server launched for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_flags: Vec<String>,
    /// Ordered steps.
    pub steps: Vec<Step>,
}

/// A gRPC error: status code name (tonic's `Code` spelling) and message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GrpcError {
    /// e.g. `InvalidArgument`.
    pub code: String,
    /// The exact status message.
    pub message: String,
}

/// The answer part of a step (also used for a deviation's corrected answer).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// gRPC response in protobuf-JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
    /// gRPC error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<GrpcError>,
    /// Several stream messages that may arrive in any order (`recv` with `messages`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responses: Option<Vec<Value>>,
    /// HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// HTTP headers that matter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, Value>>,
    /// HTTP body (JSON when it parses as JSON, else a string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

impl Expect {
    /// True when nothing has been recorded yet.
    pub fn is_empty(&self) -> bool {
        self.response.is_none()
            && self.responses.is_none()
            && self.error.is_none()
            && self.status.is_none()
            && self.headers.is_none()
            && self.body.is_none()
    }
}

/// A known etcd 3.4.23 deviation at this step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Deviation {
    /// The etcd issue, e.g. `etcd-io/etcd#15220`.
    pub issue: String,
    /// What is wrong in etcd 3.4.23.
    pub note: String,
    /// The corrected answer.
    pub corrected: Expect,
}

/// One step (see the module documentation for the kinds).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Free-text note for readers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Stream name to open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<String>,
    /// gRPC method, `Service/Method`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    /// Stream to send on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    /// Stream to receive from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recv: Option<String>,
    /// Stream that must stay quiet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet: Option<String>,
    /// Stream to close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close: Option<String>,
    /// HTTP request line: `METHOD /path?query`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// Run the HTTP request in the background under this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<String>,
    /// Wait for a background HTTP request and check its answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<String>,
    /// Sleep this many milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep_ms: Option<u64>,
    /// Bounded wait for `recv`/`quiet`/`join`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
    /// With `http`: the answer is a stream of JSON lines (the gateway's `/v3/watch`);
    /// read this many lines into `body` (an array) and drop the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<usize>,
    /// With `recv`: receive this many messages and match them in any order (several
    /// watchers on one stream answer in no fixed order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<usize>,
    /// Send a `call` or `http` request this many times; earlier answers must have the
    /// recorded status (or error code), the last one is compared in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<usize>,
    /// With `recv`: read the stream to its end and compare this summary of it
    /// (`snapshot`, see [`crate::summary`]) as `response`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// With `http`: the answer is Prometheus text; `body` holds these metric families
    /// (type and samples, see [`crate::summary::metrics`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<String>>,
    /// Auth token (gRPC `token` metadata, HTTP `Authorization`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// gRPC request in protobuf-JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
    /// HTTP request headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_in: Option<BTreeMap<String, String>>,
    /// HTTP form body (`application/x-www-form-urlencoded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<BTreeMap<String, String>>,
    /// HTTP JSON body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
    /// HTTP raw body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// The recorded answer.
    #[serde(flatten)]
    pub expect: Expect,
    /// Known etcd deviation at this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deviation: Option<Deviation>,
}

/// A transcript with where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// File path.
    pub path: PathBuf,
    /// `area/name` (no extension).
    pub name: String,
    /// API area (the directory).
    pub area: String,
    /// Parsed content.
    pub transcript: Transcript,
}

/// Which transcripts `--only` selects: a glob matched against `area/name` (the `.yaml`
/// extension may be included). `*` and `?` stay within one path segment, `**` as a
/// whole segment (`**/x`, `x/**`) spans any number of segments, `[abc]`/`[a-z]`/`[!a]` are character classes and `{a,b}` alternatives. A
/// pattern without `/` also matches when it matches the area or the file name alone, so
/// `*watch*` selects `gateway/watch` and every `watch/...` transcript.
#[derive(Debug, Clone)]
pub struct Selector {
    glob: globset::GlobMatcher,
    anywhere: bool,
}

impl Selector {
    /// Compiles a pattern; a malformed one (an unclosed `[` or `{`) is an error.
    pub fn new(pattern: &str) -> Result<Self> {
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .with_context(|| format!("bad --only pattern {pattern:?}"))?
            .compile_matcher();
        Ok(Self {
            glob,
            anywhere: !pattern.contains('/'),
        })
    }

    /// True when the transcript `area/name` is selected.
    pub fn matches(&self, name: &str) -> bool {
        if self.glob.is_match(name) || self.glob.is_match(format!("{name}.yaml")) {
            return true;
        }
        self.anywhere && name.split('/').any(|part| self.glob.is_match(part))
    }
}

/// Loads every `*.yaml`/`*.json` transcript under `root`, sorted, filtered by `only`.
pub fn load_all(root: &Path, only: Option<&str>) -> Result<Vec<Loaded>> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            ) {
                files.push(path);
            }
        }
    }
    files.sort();
    let selector = only.map(Selector::new).transpose()?;
    let mut out = Vec::new();
    for path in files {
        let rel = path.strip_prefix(root).unwrap_or(&path).with_extension("");
        let name = rel.to_string_lossy().replace('\\', "/");
        if let Some(sel) = &selector
            && !sel.matches(&name)
        {
            continue;
        }
        let area = name.split('/').next().unwrap_or("").to_owned();
        let transcript = load(&path)?;
        out.push(Loaded {
            path,
            name,
            area,
            transcript,
        });
    }
    Ok(out)
}

/// Parses one transcript file.
pub fn load(path: &Path) -> Result<Transcript> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let parsed: Result<Transcript> = if path.extension().and_then(|e| e.to_str()) == Some("json") {
        serde_json::from_str(&text).map_err(Into::into)
    } else {
        serde_yaml::from_str(&text).map_err(Into::into)
    };
    parsed.with_context(|| format!("parsing {}", path.display()))
}

/// Writes a transcript back (YAML).
pub fn save(path: &Path, t: &Transcript) -> Result<()> {
    let text = if path.extension().and_then(|e| e.to_str()) == Some("json") {
        serde_json::to_string_pretty(t)?
    } else {
        serde_yaml::to_string(t)?
    };
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::Selector;

    fn sel(p: &str) -> Selector {
        Selector::new(p).expect("valid pattern")
    }

    #[test]
    fn star_and_question_mark_stay_within_a_segment() {
        assert!(sel("kv/*").matches("kv/range_sort"));
        assert!(sel("v2/r?").matches("v2/rm"));
        assert!(!sel("kv/*").matches("v2/rm"));
        assert!(!sel("kv/range").matches("kv/range_sort"));
        assert!(!sel("k*t").matches("kv/range_sort"));
        assert!(sel("kv/range_sort.yaml").matches("kv/range_sort"));
    }

    #[test]
    fn double_star_spans_segments() {
        assert!(sel("**/watch").matches("gateway/watch"));
        assert!(sel("**").matches("kv/range_sort"));
        assert!(sel("kv/**").matches("kv/range_sort"));
        assert!(sel("**/range_s*").matches("kv/range_sort"));
        assert!(!sel("k*t").matches("kv/range_sort"));
        assert!(!sel("**/watch").matches("watch/from_now"));
    }

    #[test]
    fn classes_and_alternatives() {
        assert!(sel("{kv,lease}/*").matches("lease/expiry"));
        assert!(sel("{kv,lease}/*").matches("kv/versions"));
        assert!(!sel("{kv,lease}/*").matches("watch/compacted"));
        assert!(sel("v[0-9]/*").matches("v2/rm"));
        assert!(!sel("v[!2]/*").matches("v2/rm"));
        assert!(sel("kv/range_[kl]*").matches("kv/range_limit_more"));
        assert!(!sel("kv/range_[kl]*").matches("kv/range_sort"));
    }

    #[test]
    fn a_pattern_without_slash_matches_an_area_or_a_name() {
        assert!(sel("*watch*").matches("gateway/watch"));
        assert!(sel("*watch*").matches("watch/from_now"));
        assert!(sel("maintenance").matches("maintenance/snapshot"));
        assert!(!sel("*watch*").matches("kv/versions"));
    }

    #[test]
    fn malformed_patterns_are_errors() {
        assert!(Selector::new("kv/[ab").is_err());
        assert!(Selector::new("{kv,lease").is_err());
    }
}
