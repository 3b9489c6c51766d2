//! The HTTP endpoints on the client port: `/version`, `/health` and `/metrics`
//! (Prometheus text with etcd's metric names, help texts and types for the basics:
//! leader, proposals, WAL fsync duration histogram with etcd's buckets, database
//! size). The v2 API is in [`crate::v2`]; the v3 JSON gateway is [`crate::gateway`].

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::node_loop::{FSYNC_BUCKET_SECONDS, NodeHandle, Status};
use crate::storage::DataDir;
use crate::version::{ETCD_CLUSTER_VERSION, ETCD_VERSION};

/// What the handlers read.
#[derive(Clone, Debug)]
pub struct HttpState {
    /// The node loop.
    pub node: NodeHandle,
    /// The data dir (database size).
    pub data_dir: DataDir,
}

/// The routes.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// The `/version` body etcd serves.
pub fn version_body() -> String {
    format!("{{\"etcdserver\":\"{ETCD_VERSION}\",\"etcdcluster\":\"{ETCD_CLUSTER_VERSION}\"}}")
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

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
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
        "etcd_mvcc_db_total_size_in_bytes",
        "gauge",
        "Total size of the underlying database physically allocated in bytes.",
        state.data_dir.backend_size_bytes().to_string(),
    );
    fsync_histogram(&mut text, status);
    let _ = writeln!(
        text,
        "# HELP etcd_server_version Which version is running. 1 for 'server_version' label with current version.\n\
         # TYPE etcd_server_version gauge\netcd_server_version{{server_version=\"{ETCD_VERSION}\"}} 1"
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// `etcd_disk_wal_fsync_duration_seconds` with etcd's buckets (cumulative counts).
fn fsync_histogram(text: &mut String, status: &Status) {
    let name = "etcd_disk_wal_fsync_duration_seconds";
    let _ = writeln!(
        text,
        "# HELP {name} The latency distributions of fsync called by WAL.\n# TYPE {name} histogram"
    );
    let mut cumulative = 0;
    for (bound, count) in FSYNC_BUCKET_SECONDS.iter().zip(&status.fsync_buckets) {
        cumulative += count.load(Ordering::Relaxed);
        let _ = writeln!(text, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let count = status.fsyncs.load(Ordering::Relaxed);
    let sum = status.fsync_micros.load(Ordering::Relaxed) as f64 / 1e6;
    let _ = writeln!(
        text,
        "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}"
    );
}
