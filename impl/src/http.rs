//! The HTTP endpoints on the client port: `/version`, `/health` and `/metrics`
//! (Prometheus text format 0.0.4 with etcd 3.4's metric names, help texts and types:
//! leadership and learner state, proposals, server and cluster version, quota, database
//! size on disk and in use, MVCC operation counters and key count, WAL fsync and
//! backend commit duration histograms with etcd's buckets, gRPC bytes received and
//! sent; see [`crate::metrics`] for what is measured where). The v2 API is in
//! [`crate::v2`]; the v3 JSON gateway is [`crate::gateway`].

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics;
use crate::node_loop::{NodeHandle, Status};
use crate::storage::DataDir;
use crate::version::{ETCD_CAPABILITY_VERSION, ETCD_VERSION};

/// What the handlers read.
#[derive(Clone, Debug)]
pub struct HttpState {
    /// The node loop.
    pub node: NodeHandle,
    /// The data dir (database size).
    pub data_dir: DataDir,
    /// `--quota-backend-bytes` in force (etcd's default when the flag is 0).
    pub quota_bytes: u64,
}

/// The routes.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/health", get(health))
        .route("/metrics", get(metrics_page))
        .with_state(state)
}

/// The `/version` body etcd serves.
pub fn version_body() -> String {
    format!(
        "{{\"etcdserver\":\"{ETCD_VERSION}\",\"etcdcluster\":\"{}\"}}",
        crate::version::ETCD_CLUSTER_VERSION
    )
}

async fn version() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], version_body())
}

async fn health(State(state): State<HttpState>) -> impl IntoResponse {
    // etcd 3.4: healthy when a leader is known (and no alarm is raised).
    let healthy = state.node.has_leader();
    let code = if healthy {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    // etcd writes no Content-Type here: Go sniffs the JSON as plain text.
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{{\"health\":\"{healthy}\"}}"),
    )
}

async fn metrics_page(State(state): State<HttpState>) -> impl IntoResponse {
    let status = &state.node.status;
    let load = |value: &std::sync::atomic::AtomicU64| value.load(Ordering::Relaxed);
    let mut text = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(
            text,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    metric(
        "etcd_server_has_leader",
        "gauge",
        "Whether or not a leader exists. 1 is existence, 0 is not.",
        u8::from(state.node.has_leader()).to_string(),
    );
    metric(
        "etcd_server_is_leader",
        "gauge",
        "Whether or not this member is a leader. 1 if is, 0 otherwise.",
        u8::from(state.node.is_leader()).to_string(),
    );
    metric(
        "etcd_server_leader_changes_seen_total",
        "counter",
        "The number of leader changes seen.",
        load(&status.leader_changes).to_string(),
    );
    metric(
        "etcd_server_proposals_committed_total",
        "gauge",
        "The total number of consensus proposals committed.",
        load(&status.commit_index).to_string(),
    );
    metric(
        "etcd_server_proposals_applied_total",
        "gauge",
        "The total number of consensus proposals applied.",
        load(&status.applied_index).to_string(),
    );
    metric(
        "etcd_server_proposals_pending",
        "gauge",
        "The current number of pending proposals to commit.",
        load(&status.proposals_pending).to_string(),
    );
    metric(
        "etcd_server_proposals_failed_total",
        "counter",
        "The total number of failed proposals seen.",
        load(&status.proposals_failed).to_string(),
    );
    metric(
        "etcd_server_is_learner",
        "gauge",
        "Whether or not this member is a learner. 1 if is, 0 otherwise.",
        u8::from(is_learner(&state.node)).to_string(),
    );
    metric(
        "etcd_server_quota_backend_bytes",
        "gauge",
        "Current backend storage quota size in bytes.",
        state.quota_bytes.to_string(),
    );
    let data_dir = state.data_dir.clone();
    let (size, in_use) = tokio::task::spawn_blocking(move || {
        (
            data_dir.backend_size_bytes(),
            data_dir.backend_size_in_use_bytes(),
        )
    })
    .await
    .unwrap_or_default();
    metric(
        "etcd_mvcc_db_total_size_in_bytes",
        "gauge",
        "Total size of the underlying database physically allocated in bytes.",
        size.to_string(),
    );
    metric(
        "etcd_mvcc_db_total_size_in_use_in_bytes",
        "gauge",
        "Total size of the underlying database logically in use in bytes.",
        in_use.to_string(),
    );
    let counters = [
        (
            "etcd_mvcc_put_total",
            "Total number of puts seen by this member.",
            &metrics::MVCC_PUTS,
        ),
        (
            "etcd_mvcc_range_total",
            "Total number of ranges seen by this member.",
            &metrics::MVCC_RANGES,
        ),
        (
            "etcd_mvcc_txn_total",
            "Total number of txns seen by this member.",
            &metrics::MVCC_TXNS,
        ),
        (
            "etcd_mvcc_delete_total",
            "Total number of deletes seen by this member.",
            &metrics::MVCC_DELETES,
        ),
        (
            "etcd_network_client_grpc_received_bytes_total",
            "The total number of bytes received from grpc clients.",
            &metrics::GRPC_RECEIVED_BYTES,
        ),
        (
            "etcd_network_client_grpc_sent_bytes_total",
            "The total number of bytes sent to grpc clients.",
            &metrics::GRPC_SENT_BYTES,
        ),
    ];
    for (name, help, counter) in counters {
        metric(name, "counter", help, load(counter).to_string());
    }
    let keys = state
        .node
        .state
        .read()
        .map(|state| state.store().key_count())
        .unwrap_or_default();
    metric(
        "etcd_debugging_mvcc_keys_total",
        "gauge",
        "Total number of keys.",
        keys.to_string(),
    );
    fsync_histogram(&mut text, status);
    metrics::BACKEND_COMMIT.write(
        &mut text,
        "etcd_disk_backend_commit_duration_seconds",
        "The latency distributions of commit called by backend.",
    );
    let _ = writeln!(
        text,
        "# HELP etcd_server_version Which version is running. 1 for 'server_version' label with current version.\n\
         # TYPE etcd_server_version gauge\netcd_server_version{{server_version=\"{ETCD_VERSION}\"}} 1"
    );
    let _ = writeln!(
        text,
        "# HELP etcd_cluster_version Which version is running. 1 for 'cluster_version' label with current cluster version\n\
         # TYPE etcd_cluster_version gauge\netcd_cluster_version{{cluster_version=\"{ETCD_CAPABILITY_VERSION}\"}} 1"
    );
    crate::grpc_metrics::write(&mut text);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// Whether this member is a learner in the applied membership.
fn is_learner(node: &NodeHandle) -> bool {
    node.state.read().is_ok_and(|state| {
        state
            .cluster()
            .member(oxetcd_spec::membership::MemberId(node.member_id))
            .is_some_and(|member| member.is_learner)
    })
}

/// `etcd_disk_wal_fsync_duration_seconds` with etcd's buckets (cumulative counts).
fn fsync_histogram(text: &mut String, status: &Status) {
    metrics::write_histogram(
        text,
        "etcd_disk_wal_fsync_duration_seconds",
        "The latency distributions of fsync called by WAL.",
        status
            .fsync_buckets
            .iter()
            .map(|count| count.load(Ordering::Relaxed)),
        status.fsyncs.load(Ordering::Relaxed),
        status.fsync_micros.load(Ordering::Relaxed),
    );
}

/// etcd's CORS rule for the client port's HTTP endpoints (`--cors`), as its access
/// controller applies it to every request that is not gRPC: with `*` allowed, every
/// response carries `Access-Control-Allow-Origin: *`; otherwise a request whose `Origin`
/// is listed gets that origin back. Either way the allowed methods and headers come
/// along, and an `OPTIONS` request (a preflight) is answered 200 with an empty body on
/// any path, whether its origin is allowed or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cors {
    allow_all: bool,
    origins: std::collections::BTreeSet<String>,
}

impl Cors {
    /// The rule for `--cors` as the configuration holds it (`["*"]`: every origin).
    pub fn new(origins: &[String]) -> Cors {
        Cors {
            allow_all: origins.iter().any(|origin| origin == "*"),
            origins: origins.iter().cloned().collect(),
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if any.
    pub fn allowed_origin(&self, origin: Option<&str>) -> Option<String> {
        if self.allow_all {
            return Some("*".to_owned());
        }
        origin
            .filter(|origin| self.origins.contains(*origin))
            .map(str::to_owned)
    }
}

fn is_grpc(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"))
}

/// Middleware applying [`Cors`] (see there).
pub async fn cors(
    State(cors): State<std::sync::Arc<Cors>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if is_grpc(request.headers()) {
        return next.run(request).await;
    }
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok());
    let allowed = cors.allowed_origin(origin);
    let mut response = if request.method() == axum::http::Method::OPTIONS {
        axum::http::StatusCode::OK.into_response()
    } else {
        next.run(request).await
    };
    if let Some(allowed) = allowed.and_then(|value| value.parse::<header::HeaderValue>().ok()) {
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            header::HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
        );
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            header::HeaderValue::from_static("accept, content-type, authorization"),
        );
    }
    response
}

/// Middleware counting each gRPC call on the client port: the bytes of the request and
/// response messages (without their 5-byte length prefixes, as etcd counts what its
/// codec decodes and encodes; nothing for a path that names no served method, whose
/// request etcd never decodes) into `etcd_network_client_grpc_{received,sent}_bytes_total`,
/// and the calls, their messages and their status codes into the `grpc_server_*` families
/// ([`crate::grpc_metrics`]).
pub async fn count_grpc(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use crate::grpc_metrics::{Method, Outcome};
    use http_body_util::BodyExt as _;
    if !is_grpc(request.headers()) {
        return next.run(request).await;
    }
    let method = Method::of_path(request.uri().path());
    if let Some(method) = method {
        method.started();
    }
    let mut received = method.map(Method::received);
    let request = request.map(|body| {
        axum::body::Body::new(
            body.map_frame(move |frame: http_body::Frame<bytes::Bytes>| {
                if let (Some(data), Some(received)) = (frame.data_ref(), received.as_mut()) {
                    received.feed(data);
                }
                frame
            }),
        )
    });
    let response = next.run(request).await;
    let mut outcome = method.map(Outcome::new);
    if let (Some(outcome), Some(status)) = (outcome.as_mut(), response.headers().get("grpc-status"))
    {
        // A trailers-only answer (an error before any message).
        outcome.finish(Some(status.as_bytes()));
    }
    let mut sent = method.map(Method::sent);
    response.map(|body| {
        axum::body::Body::new(
            body.map_frame(move |frame: http_body::Frame<bytes::Bytes>| {
                if let (Some(data), Some(sent)) = (frame.data_ref(), sent.as_mut()) {
                    sent.feed(data);
                }
                if let (Some(outcome), Some(trailers)) = (outcome.as_mut(), frame.trailers_ref()) {
                    outcome.finish(trailers.get("grpc-status").map(|value| value.as_bytes()));
                }
                frame
            }),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_star_allows_all_and_a_list_echoes_only_listed_origins() {
        let all = Cors::new(&["*".to_owned()]);
        assert_eq!(all.allowed_origin(None), Some("*".to_owned()));
        assert_eq!(all.allowed_origin(Some("http://x:1")), Some("*".to_owned()));
        let listed = Cors::new(&["http://a.example:80".to_owned()]);
        assert_eq!(listed.allowed_origin(None), None);
        assert_eq!(
            listed.allowed_origin(Some("http://a.example:80")),
            Some("http://a.example:80".to_owned())
        );
        assert_eq!(listed.allowed_origin(Some("http://c.example:80")), None);
    }
}
