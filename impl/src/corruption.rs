//! etcd 3.4's data corruption checks: this member's KV hash (Maintenance.HashKV of the
//! `key` bucket) compared with its peers'.
//!
//! - `--experimental-initial-corrupt-check`: before serving, a member that restarts on
//!   an existing data dir compares the hash at its current revision with every peer's
//!   hash at that revision; a peer with the same compact revision and another hash fails
//!   the start ("found data inconsistency with peers"), as in etcd. A member starting
//!   on a fresh data dir skips the check, as etcd does.
//! - `--experimental-corrupt-check-time D`: every `D` the leader hashes, asks its peers,
//!   waits for a linearizable read, hashes again, and raises the CORRUPT alarm (through
//!   Raft) when a member is inconsistent by etcd's rules ([`periodic_findings`]); the
//!   alarm then refuses writes with "etcdserver: corrupt cluster" (`spec::alarm`).
//!
//! The peers' hashes come over the peer port, as etcd asks them ([`PeerClient`]): a
//! `GET /members/hashkv` whose JSON body is a HashKVRequest (`{"revision":8}`; `{}` for
//! revision 0), answered `200` with `Content-Type: application/json`, the header
//! `X-Etcd-Cluster-Id` and a HashKVResponse in Go's JSON
//! (`{"header":{"revision":8},"hash":1329334167,"compact_revision":-1}`: zero fields
//! left out, and the header carries only the revision). A body that is not such JSON
//! is answered `400 error unmarshalling request`, a compacted or future revision `400`
//! with the MVCC error's text, another method `405` with `Allow: GET` (all as etcd
//! 3.4.23 answers with `--logger zap`; with its default capnslog logger etcd closes the
//! connection on a bad request without answering, which oxetcd does not copy). Because
//! the answer's header names no member, etcd raises a peer's CORRUPT alarm for member
//! 0, and so does oxetcd ([`periodic_findings`]). [`hashkv_handler`] serves the path
//! from the same `spec` hash as Maintenance.HashKV.
//!
//! The peers asked are the members this member's transport knows, including at a restart
//! with no snapshot yet (etcd 3.4.23 then knows no members before its log replays, and
//! its initial check asks nobody).
//!
//! A single member has no peers: both checks compare against nobody and pass, which is
//! also what etcd does (it logs the same lines). Nothing here hashes a snapshot file or
//! the Raft log; those have their own checks (SHA-256 trailers, `storage` at start-up).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use oxetcd_spec::alarm::{AlarmAction, AlarmRequest, AlarmType};
use oxetcd_spec::apply::Command;
use oxetcd_spec::mvcc::MvccError;

use crate::config::url::Url;
use crate::node_loop::NodeHandle;
use crate::peer::Transport;

/// The peer port's path of HashKV (etcd's `PeerHashKVPath`).
pub const HASHKV_PATH: &str = "/members/hashkv";

/// One member's answer to HashKV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberHash {
    /// The member id the answer's header names (0 in a peer's `/members/hashkv`
    /// answer, whose header carries only the revision).
    pub member_id: u64,
    /// Its current revision (the response header's).
    pub revision: i64,
    /// Its compacted revision.
    pub compact_revision: i64,
    /// The hash.
    pub hash: u32,
}

/// Why a peer gave no hash.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerHashError {
    /// The peer has not reached the revision asked (it lags behind).
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
    /// The peer compacted past the revision asked.
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    /// Unreachable, timed out, or an answer that is not a HashKV response.
    #[error("{0}")]
    Failed(String),
}

/// One peer's answer to a HashKV at a revision, or why there is none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerHash {
    /// The member asked.
    pub peer_id: u64,
    /// Its peer URLs (tried in order until one answers).
    pub urls: Vec<String>,
    /// Its hash, or the last URL's failure.
    pub answer: Result<MemberHash, PeerHashError>,
}

/// The hashes of a future.
pub type HashesFuture<'a> = Pin<Box<dyn Future<Output = Vec<PeerHash>> + Send + 'a>>;

/// Where the peers' hashes come from.
pub trait PeerHashes: Send + Sync {
    /// Every peer's HashKV at `revision` (or why it gave none).
    fn hashes_at(&self, revision: i64) -> HashesFuture<'_>;
}

/// A single member: no peers to compare with.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPeers;

impl PeerHashes for NoPeers {
    fn hashes_at(&self, _revision: i64) -> HashesFuture<'_> {
        Box::pin(std::future::ready(Vec::new()))
    }
}

/// Asks every peer the transport knows over its peer URLs (`GET /members/hashkv`),
/// one peer after the other, each URL bounded by `timeout` (etcd's request timeout),
/// with the transport's TLS for `https://` URLs.
#[derive(Clone, Debug)]
pub struct PeerClient {
    transport: Transport,
    timeout: Duration,
}

impl PeerClient {
    /// Asks the peers of `transport`, waiting at most `timeout` per URL.
    #[must_use]
    pub fn new(transport: Transport, timeout: Duration) -> PeerClient {
        PeerClient { transport, timeout }
    }

    async fn ask(&self, url: &Url, revision: i64) -> Result<MemberHash, PeerHashError> {
        let body = encode_request(revision);
        let asked = crate::peer::get_with_body(
            url,
            self.transport.tls(),
            HASHKV_PATH,
            "application/json",
            &body,
        );
        let answer = match tokio::time::timeout(self.timeout, asked).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(error)) => {
                return Err(PeerHashError::Failed(format!(
                    "Get \"{url}{HASHKV_PATH}\": {error}"
                )));
            }
            Err(_) => {
                return Err(PeerHashError::Failed(format!(
                    "Get \"{url}{HASHKV_PATH}\": context deadline exceeded"
                )));
            }
        };
        decode_answer(answer.status, &answer.body)
    }
}

impl PeerHashes for PeerClient {
    fn hashes_at(&self, revision: i64) -> HashesFuture<'_> {
        Box::pin(async move {
            let mut hashes = Vec::new();
            for peer_id in self.transport.peer_ids() {
                let urls = self.transport.peer_urls(peer_id).unwrap_or_default();
                if urls.is_empty() {
                    continue;
                }
                let mut answer = Err(PeerHashError::Failed("no peer URL".into()));
                for url in &urls {
                    answer = self.ask(url, revision).await;
                    match &answer {
                        Ok(_) => break,
                        Err(error) => tracing::warn!(
                            "etcdserver: {:x} hash-kv error {:?} on peer {:?} with revision {revision}",
                            self.transport.member_id(),
                            error.to_string(),
                            url.to_string()
                        ),
                    }
                }
                hashes.push(PeerHash {
                    peer_id,
                    urls: urls.iter().map(ToString::to_string).collect(),
                    answer,
                });
            }
            hashes
        })
    }
}

/// The body of a HashKV request at `revision`, as etcd's peers send it.
#[must_use]
pub fn encode_request(revision: i64) -> Vec<u8> {
    if revision == 0 {
        b"{}".to_vec()
    } else {
        format!("{{\"revision\":{revision}}}").into_bytes()
    }
}

/// The revision a HashKV request body asks for (Go's JSON decoding: field names match
/// case-insensitively, unknown fields and `null` are ignored, the revision must be an
/// integer).
///
/// # Errors
/// The body is not such JSON.
pub fn decode_request(body: &[u8]) -> Result<i64, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| error.to_string())?;
    let object = match value {
        serde_json::Value::Null => return Ok(0),
        serde_json::Value::Object(object) => object,
        other => return Err(format!("cannot unmarshal {other} into a HashKVRequest")),
    };
    let mut revision = 0;
    for (name, value) in &object {
        if !name.eq_ignore_ascii_case("revision") || value.is_null() {
            continue;
        }
        revision = value
            .as_i64()
            .ok_or_else(|| format!("cannot unmarshal {value} into an int64 revision"))?;
    }
    Ok(revision)
}

/// A HashKV response body in etcd's JSON (Go's encoding: zero fields left out; the
/// header carries only the revision).
#[must_use]
pub fn encode_response(revision: i64, hash: u32, compact_revision: i64) -> Vec<u8> {
    let mut body = String::from("{\"header\":{");
    if revision != 0 {
        body.push_str(&format!("\"revision\":{revision}"));
    }
    body.push('}');
    if hash != 0 {
        body.push_str(&format!(",\"hash\":{hash}"));
    }
    if compact_revision != 0 {
        body.push_str(&format!(",\"compact_revision\":{compact_revision}"));
    }
    body.push('}');
    body.into_bytes()
}

fn field<'a>(
    object: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Option<&'a serde_json::Value> {
    object
        .iter()
        .filter(|(key, value)| key.eq_ignore_ascii_case(name) && !value.is_null())
        .map(|(_, value)| value)
        .next_back()
}

fn integer<T: TryFrom<i128>>(
    object: &serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<T, String> {
    let Some(value) = field(object, name) else {
        return T::try_from(0).map_err(|_| format!("{name}: out of range"));
    };
    let wide = value
        .as_i64()
        .map(i128::from)
        .or_else(|| value.as_u64().map(i128::from))
        .ok_or_else(|| format!("json: cannot unmarshal {value} into the field {name}"))?;
    T::try_from(wide).map_err(|_| format!("json: {value} overflows the field {name}"))
}

/// A peer's answer to `/members/hashkv` (status and body), read as etcd reads it: a
/// `400` naming a compacted or future revision is that error, any other non-`200` an
/// unknown error, a `200` a HashKV response in JSON.
///
/// # Errors
/// Why the answer holds no hash.
pub fn decode_answer(status: u16, body: &[u8]) -> Result<MemberHash, PeerHashError> {
    let text = String::from_utf8_lossy(body);
    if status == 400 {
        if text.contains("mvcc: required revision has been compacted") {
            return Err(PeerHashError::Compacted);
        }
        if text.contains("mvcc: required revision is a future revision") {
            return Err(PeerHashError::FutureRevision);
        }
    }
    if status != 200 {
        return Err(PeerHashError::Failed(format!("unknown error: {text}")));
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| PeerHashError::Failed(error.to_string()))?;
    let empty = serde_json::Map::new();
    let object = value.as_object().unwrap_or(&empty);
    let header = field(object, "header")
        .and_then(serde_json::Value::as_object)
        .unwrap_or(&empty);
    Ok(MemberHash {
        member_id: integer(header, "member_id").map_err(PeerHashError::Failed)?,
        revision: integer(header, "revision").map_err(PeerHashError::Failed)?,
        compact_revision: integer(object, "compact_revision").map_err(PeerHashError::Failed)?,
        hash: integer(object, "hash").map_err(PeerHashError::Failed)?,
    })
}

/// Go's `http.Error`: a plain-text answer ending in a newline.
fn go_http_error(status: http::StatusCode, text: &str) -> Response {
    (
        status,
        [
            (http::header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        format!("{text}\n"),
    )
        .into_response()
}

/// The peer port's `/members/hashkv`: this member's HashKV at the revision the JSON
/// body asks for (see the module docs for the wire format).
pub async fn hashkv_handler(
    axum::extract::State(node): axum::extract::State<NodeHandle>,
    method: http::Method,
    body: axum::body::Bytes,
) -> Response {
    if method != http::Method::GET {
        let mut response =
            go_http_error(http::StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        response
            .headers_mut()
            .insert(http::header::ALLOW, http::HeaderValue::from_static("GET"));
        return response;
    }
    let revision = match decode_request(&body) {
        Ok(revision) => revision,
        Err(error) => {
            tracing::warn!("etcdserver: failed to unmarshal request: {error}");
            return go_http_error(http::StatusCode::BAD_REQUEST, "error unmarshalling request");
        }
    };
    let hashed = match node.state.read() {
        Ok(state) => state.hash_kv(revision),
        Err(_) => {
            return go_http_error(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "state lock poisoned",
            );
        }
    };
    let hash = match hashed {
        Ok(hash) => hash,
        Err(error) => {
            let text = match error {
                MvccError::Compacted => "mvcc: required revision has been compacted".to_owned(),
                MvccError::FutureRevision => {
                    "mvcc: required revision is a future revision".to_owned()
                }
                other => other.to_string(),
            };
            tracing::warn!(
                "etcdserver: failed to get hashKV (requested revision {revision}): {text}"
            );
            return go_http_error(http::StatusCode::BAD_REQUEST, &text);
        }
    };
    (
        [
            (http::header::CONTENT_TYPE, "application/json".to_owned()),
            (
                http::HeaderName::from_static("x-etcd-cluster-id"),
                format!("{:x}", node.cluster_id),
            ),
        ],
        encode_response(hash.revision, hash.hash, hash.compact_revision),
    )
        .into_response()
}

/// The start-up check's verdict (etcd's `CheckInitialHashKV`), logged as etcd logs
/// it: the peers whose hash differs at the same compact revision fail the start; a peer
/// compacted differently cannot be compared, and a peer behind or compacted past the
/// revision is only warned about.
///
/// # Errors
/// "found data inconsistency with peers" when a peer's hash differs.
pub fn initial_verdict(
    member_id: u64,
    local: &MemberHash,
    peers: &[PeerHash],
) -> anyhow::Result<()> {
    let mut mismatches = 0;
    for peer in peers {
        match &peer.answer {
            Ok(hash) if hash.hash != local.hash => {
                if hash.compact_revision == local.compact_revision {
                    tracing::error!(
                        "etcdserver: {member_id:x}'s hash {} != {:x}'s hash {} (revision {}, peer revision {}, compact revision {})",
                        local.hash,
                        hash.member_id,
                        hash.hash,
                        local.revision,
                        hash.revision,
                        local.compact_revision
                    );
                    mismatches += 1;
                } else {
                    tracing::warn!(
                        "etcdserver: {member_id:x} cannot check hash of peer({:x}): peer has a different compact revision {} (revision:{})",
                        hash.member_id,
                        hash.compact_revision,
                        local.revision
                    );
                }
            }
            Ok(_) | Err(PeerHashError::Failed(_)) => {}
            Err(error @ PeerHashError::FutureRevision) => tracing::warn!(
                "etcdserver: {member_id:x} cannot check the hash of peer({:?}) at revision {}: peer is lagging behind({:?})",
                peer.urls,
                local.revision,
                error.to_string()
            ),
            Err(error @ PeerHashError::Compacted) => tracing::warn!(
                "etcdserver: {member_id:x} cannot check the hash of peer({:?}) at revision {}: local node is lagging behind({:?})",
                peer.urls,
                local.revision,
                error.to_string()
            ),
        }
    }
    if mismatches > 0 {
        anyhow::bail!("{member_id:x} found data inconsistency with peers");
    }
    Ok(())
}

/// What one periodic check found (etcd's `checkHashKV`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// One line per inconsistency, as etcd warns.
    pub warnings: Vec<String>,
    /// The member to raise the CORRUPT alarm for: the first inconsistency's (etcd
    /// raises one alarm per check). A peer's is the member id its answer's header
    /// names, which is 0 for an etcd (or oxetcd) peer.
    pub alarm: Option<u64>,
}

/// The leader's periodic verdict: `before` and `after` are the leader's own hashes
/// taken around asking the peers (and a linearizable read). Inconsistent: the leader
/// itself if its hash changed with no new revision or compaction, and each peer ahead
/// of the leader's revision or compact revision, or with another hash at the leader's
/// compact revision.
#[must_use]
pub fn periodic_findings(before: &MemberHash, after: &MemberHash, peers: &[PeerHash]) -> Findings {
    let mut findings = Findings::default();
    if after.hash != before.hash
        && after.revision == before.revision
        && after.compact_revision == before.compact_revision
    {
        findings.warnings.push(format!(
            "mismatched hashes {} and {} for revision {}",
            before.hash, after.hash, before.revision
        ));
        findings.alarm.get_or_insert(before.member_id);
    }
    for peer in peers {
        let Ok(hash) = &peer.answer else {
            continue;
        };
        let id = peer.peer_id;
        if hash.revision > after.revision {
            findings.warnings.push(format!(
                "revision {} from member {id:x}, expected at most {}",
                hash.revision, after.revision
            ));
            findings.alarm.get_or_insert(hash.member_id);
        }
        if hash.compact_revision > after.compact_revision {
            findings.warnings.push(format!(
                "compact revision {} from member {id:x}, expected at most {}",
                hash.compact_revision, after.compact_revision
            ));
            findings.alarm.get_or_insert(hash.member_id);
        }
        if hash.compact_revision == before.compact_revision && hash.hash != before.hash {
            findings.warnings.push(format!(
                "hash {} at revision {} from member {id:x}, expected hash {}",
                hash.hash, hash.revision, before.hash
            ));
            findings.alarm.get_or_insert(hash.member_id);
        }
    }
    findings
}

fn local_hash(node: &NodeHandle) -> anyhow::Result<MemberHash> {
    let state = node
        .state
        .read()
        .map_err(|_| anyhow::anyhow!("state lock poisoned"))?;
    let hash = state
        .hash_kv(0)
        .map_err(|error| anyhow::anyhow!("hashing the key-value state: {error}"))?;
    Ok(MemberHash {
        member_id: node.member_id,
        revision: hash.revision,
        compact_revision: hash.compact_revision,
        hash: hash.hash,
    })
}

/// `--experimental-initial-corrupt-check`: runs the start-up comparison (`timeout` is
/// the per-request bound the peers are asked with, logged as etcd logs it).
///
/// # Errors
/// A peer's data is inconsistent with this member's, or the local hash failed.
pub async fn initial_check(
    node: &NodeHandle,
    peers: &dyn PeerHashes,
    timeout: Duration,
) -> anyhow::Result<()> {
    tracing::info!(
        "etcdserver: {:x} starting initial corruption check with timeout {}...",
        node.member_id,
        crate::v2::stats::go_duration(timeout)
    );
    let local = local_hash(node)?;
    let answers = peers.hashes_at(local.revision).await;
    initial_verdict(node.member_id, &local, &answers)?;
    tracing::info!(
        "etcdserver: {:x} succeeded on initial corruption checking: no corruption",
        node.member_id
    );
    Ok(())
}

/// `--experimental-corrupt-check-time`: the leader's periodic comparison, raising the
/// CORRUPT alarm through Raft when a member is inconsistent (`timeout` bounds the
/// linearizable read between the two local hashes).
pub fn spawn_periodic(
    node: NodeHandle,
    peers: Arc<dyn PeerHashes>,
    period: Duration,
    timeout: Duration,
) {
    tracing::info!(
        "etcdserver: enabled corruption checking with {} interval",
        crate::v2::stats::go_duration(period)
    );
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            ticker.tick().await;
            if !node.is_leader() {
                continue;
            }
            let Ok(before) = local_hash(&node) else {
                continue;
            };
            let answers = peers.hashes_at(before.revision).await;
            // The peers may have applied more than this leader: catch up before the
            // second hash, or a peer ahead would look inconsistent.
            match tokio::time::timeout(timeout, node.read_index()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::debug!("etcdserver: check hash kv failed: {error}");
                    continue;
                }
                Err(_) => {
                    tracing::debug!("etcdserver: check hash kv failed: timed out");
                    continue;
                }
            }
            let Ok(after) = local_hash(&node) else {
                continue;
            };
            let findings = periodic_findings(&before, &after, &answers);
            for warning in &findings.warnings {
                tracing::warn!("etcdserver: {warning}");
            }
            if let Some(member_id) = findings.alarm {
                let alarm = Command::Alarm(AlarmRequest {
                    action: AlarmAction::Activate,
                    member_id,
                    alarm: AlarmType::Corrupt,
                });
                let node = node.clone();
                tokio::spawn(async move {
                    let raised = |node: &NodeHandle| {
                        node.state.read().is_ok_and(|state| {
                            state
                                .alarms()
                                .get(AlarmType::Corrupt)
                                .iter()
                                .any(|raised| raised.member_id == member_id)
                        })
                    };
                    let already = raised(&node);
                    match node.propose(alarm).await {
                        Ok(_) if !already && raised(&node) => {
                            tracing::warn!("etcdserver: alarm CORRUPT raised by peer {member_id:x}")
                        }
                        Ok(_) => {}
                        Err(error) => {
                            tracing::warn!("etcdserver: raising the CORRUPT alarm failed: {error}");
                        }
                    }
                });
            }
            tracing::info!("etcdserver: finished peer corruption check");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(member_id: u64, revision: i64, compact_revision: i64, hash: u32) -> MemberHash {
        MemberHash {
            member_id,
            revision,
            compact_revision,
            hash,
        }
    }

    fn answered(peer_id: u64, hash: MemberHash) -> PeerHash {
        PeerHash {
            peer_id,
            urls: vec![format!("http://127.0.0.1:{peer_id}")],
            answer: Ok(hash),
        }
    }

    #[test]
    fn request_and_response_bodies_match_the_bytes_etcd_exchanges() {
        // Recorded from etcd 3.4.23: the body its initial check sent to a peer, and
        // two answers of its /members/hashkv (before and after a compaction).
        assert_eq!(encode_request(8), br#"{"revision":8}"#);
        assert_eq!(encode_request(0), b"{}");
        assert_eq!(
            encode_response(2, 3_305_255_506, -1),
            br#"{"header":{"revision":2},"hash":3305255506,"compact_revision":-1}"#
        );
        assert_eq!(
            encode_response(3, 536_172_655, 2),
            br#"{"header":{"revision":3},"hash":536172655,"compact_revision":2}"#
        );
        assert_eq!(encode_response(1, 0, 0), br#"{"header":{"revision":1}}"#);
        assert_eq!(
            decode_answer(
                200,
                br#"{"header":{"revision":3},"hash":536172655,"compact_revision":2}"#
            ),
            Ok(at(0, 3, 2, 536_172_655))
        );
        assert_eq!(
            decode_answer(
                200,
                br#"{"header":{"cluster_id":1,"member_id":7,"revision":9}}"#
            ),
            Ok(at(7, 9, 0, 0))
        );
    }

    #[test]
    fn request_bodies_decode_as_gos_json_does() {
        // What etcd 3.4.23 answered 200 to, and what it refused.
        assert_eq!(decode_request(br#"{"revision":8}"#), Ok(8));
        assert_eq!(decode_request(br#"{"REVISION":3, "x":1}"#), Ok(3));
        assert_eq!(decode_request(b"{}"), Ok(0));
        assert_eq!(decode_request(b"null"), Ok(0));
        assert_eq!(decode_request(br#"{"revision":null}"#), Ok(0));
        assert_eq!(decode_request(br#" {"revision":3} "#), Ok(3));
        for refused in [
            &b""[..],
            b"xx",
            b"[]",
            br#"{"revision":"2"}"#,
            br#"{"revision":3.0}"#,
            br#"{"revision":3} x"#,
        ] {
            assert!(
                decode_request(refused).is_err(),
                "{:?} decoded",
                String::from_utf8_lossy(refused)
            );
        }
    }

    #[test]
    fn answers_are_read_as_etcd_reads_them() {
        assert_eq!(
            decode_answer(400, b"mvcc: required revision has been compacted\n"),
            Err(PeerHashError::Compacted)
        );
        assert_eq!(
            decode_answer(400, b"mvcc: required revision is a future revision\n"),
            Err(PeerHashError::FutureRevision)
        );
        assert_eq!(
            decode_answer(400, b"error unmarshalling request\n"),
            Err(PeerHashError::Failed(
                "unknown error: error unmarshalling request\n".into()
            ))
        );
        assert!(matches!(
            decode_answer(200, b"not json"),
            Err(PeerHashError::Failed(_))
        ));
        assert!(matches!(
            decode_answer(200, br#"{"hash":-1}"#),
            Err(PeerHashError::Failed(_))
        ));
    }

    #[test]
    fn initial_check_fails_only_on_peers_comparable_at_the_same_compaction() {
        let local = at(1, 10, 4, 0xaaaa);
        let consistent = answered(2, at(0, 10, 4, 0xaaaa));
        let compacted_elsewhere = answered(4, at(0, 10, 2, 0xcccc));
        let lagging = PeerHash {
            answer: Err(PeerHashError::FutureRevision),
            ..answered(5, at(0, 0, 0, 0))
        };
        let unreachable = PeerHash {
            answer: Err(PeerHashError::Failed("refused".into())),
            ..answered(6, at(0, 0, 0, 0))
        };
        let fine = [consistent, compacted_elsewhere, lagging, unreachable];
        assert!(initial_verdict(1, &local, &fine).is_ok());
        assert!(initial_verdict(1, &local, &[]).is_ok());
        let mut bad = fine.to_vec();
        bad.push(answered(3, at(0, 10, 4, 0xbbbb)));
        let error = initial_verdict(1, &local, &bad)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("1 found data inconsistency with peers")
        );
    }

    #[test]
    fn periodic_check_follows_etcds_rules() {
        let before = at(1, 10, 4, 0xaaaa);
        // The leader's own hash changed without a new revision: the leader is corrupt.
        let own = periodic_findings(&before, &at(1, 10, 4, 0xdddd), &[]);
        assert_eq!(own.alarm, Some(1));
        assert_eq!(
            own.warnings,
            vec![format!(
                "mismatched hashes {} and {} for revision 10",
                0xaaaa, 0xdddd
            )]
        );
        // A write in between changes the hash legitimately.
        assert_eq!(
            periodic_findings(&before, &at(1, 11, 4, 0xdddd), &[]),
            Findings::default()
        );
        let consistent = answered(2, at(0, 10, 4, 0xaaaa));
        let behind = answered(6, at(0, 9, 2, 0xcccc));
        assert_eq!(
            periodic_findings(&before, &before, &[consistent.clone(), behind.clone()]),
            Findings::default()
        );
        let peers = [
            consistent,
            answered(3, at(0, 12, 4, 0xaaaa)), // ahead of the leader
            answered(4, at(0, 10, 6, 0xaaaa)), // compacted past the leader
            answered(5, at(0, 10, 4, 0xbbbb)), // another hash at the same compaction
            behind,
        ];
        let findings = periodic_findings(&before, &before, &peers);
        assert_eq!(
            findings.warnings,
            vec![
                "revision 12 from member 3, expected at most 10".to_owned(),
                "compact revision 6 from member 4, expected at most 4".to_owned(),
                format!(
                    "hash {} at revision 10 from member 5, expected hash {}",
                    0xbbbb, 0xaaaa
                ),
            ]
        );
        // One alarm per check, for the member the answer's header names (0 from a peer).
        assert_eq!(findings.alarm, Some(0));
    }

    /// A fake peer port: answers every `/members/hashkv` with `answer` and records the
    /// requests it got (method, content type, body).
    async fn fake_peer(answer: &'static str) -> (Url, Arc<std::sync::Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0_u8; 1024];
                    for _ in 0..64 {
                        let read =
                            tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buffer))
                                .await;
                        let Ok(Ok(read)) = read else { return };
                        if read == 0 {
                            return;
                        }
                        request.extend_from_slice(&buffer[..read]);
                        let text = String::from_utf8_lossy(&request).to_string();
                        let Some((head, body)) = text.split_once("\r\n\r\n") else {
                            continue;
                        };
                        let length = head
                            .lines()
                            .find_map(|line| line.strip_prefix("Content-Length: "))
                            .and_then(|value| value.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if body.len() < length {
                            continue;
                        }
                        let content_type = head
                            .lines()
                            .find_map(|line| line.strip_prefix("Content-Type: "))
                            .unwrap_or("");
                        let request_line = head.lines().next().unwrap_or("");
                        record
                            .lock()
                            .unwrap()
                            .push(format!("{request_line} {content_type} {body}"));
                        let reply = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
                            answer.len()
                        );
                        let _ = stream.write_all(reply.as_bytes()).await;
                        return;
                    }
                });
            }
        });
        let url = Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        (url, seen)
    }

    #[tokio::test]
    async fn a_peer_answering_another_hash_is_found_by_both_checks() {
        let (good_url, good_seen) =
            fake_peer(r#"{"header":{"revision":8},"hash":1329334167,"compact_revision":-1}"#).await;
        let (bad_url, bad_seen) =
            fake_peer(r#"{"header":{"revision":8},"hash":12345,"compact_revision":-1}"#).await;
        let transport = Transport::new(0x1, 0xc, std::env::temp_dir());
        transport.set_peer(0x2, vec![good_url]);
        // The first URL refuses connections: the next one is asked.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed_url = Url::parse(&format!("http://{}", closed.local_addr().unwrap())).unwrap();
        drop(closed);
        transport.set_peer(0x3, vec![closed_url, bad_url]);
        let client = PeerClient::new(transport, Duration::from_secs(5));
        let answers = client.hashes_at(8).await;
        assert_eq!(answers.len(), 2);
        let by_peer = |id: u64| {
            answers
                .iter()
                .find(|peer| peer.peer_id == id)
                .map(|peer| peer.answer.clone())
        };
        assert_eq!(by_peer(2), Some(Ok(at(0, 8, -1, 1_329_334_167))));
        assert_eq!(by_peer(3), Some(Ok(at(0, 8, -1, 12_345))));
        for seen in [&good_seen, &bad_seen] {
            let seen = seen.lock().unwrap().clone();
            assert_eq!(
                seen,
                vec![r#"GET /members/hashkv HTTP/1.1 application/json {"revision":8}"#.to_owned()]
            );
        }
        let local = at(1, 8, -1, 1_329_334_167);
        let error = initial_verdict(1, &local, &answers)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("1 found data inconsistency with peers")
        );
        let findings = periodic_findings(&local, &local, &answers);
        assert_eq!(
            findings.warnings,
            vec!["hash 12345 at revision 8 from member 3, expected hash 1329334167".to_owned()]
        );
        assert_eq!(findings.alarm, Some(0));
    }
}
