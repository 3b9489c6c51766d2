//! The HTTP endpoints on the client port: `/version`, `/health` and `/metrics`
//! (Prometheus text with etcd's metric names for the basics). The v2 API is in
//! [`crate::v2`]; the v3 JSON gateway is [`crate::gateway`].

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::node_loop::NodeHandle;
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
        load(&status.applied_index).to_string(),
    );
    metric(
        "etcd_server_proposals_applied_total",
        "gauge",
        "The total number of consensus proposals applied.",
        load(&status.applied_index).to_string(),
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
    let fsync_seconds = Duration::from_micros(load(&status.fsync_micros)).as_secs_f64();
    let fsyncs = load(&status.fsyncs);
    let _ = writeln!(
        text,
        "# HELP etcd_disk_wal_fsync_duration_seconds The latency distributions of fsync called by WAL.\n\
         # TYPE etcd_disk_wal_fsync_duration_seconds histogram\n\
         etcd_disk_wal_fsync_duration_seconds_bucket{{le=\"+Inf\"}} {fsyncs}\n\
         etcd_disk_wal_fsync_duration_seconds_sum {fsync_seconds}\n\
         etcd_disk_wal_fsync_duration_seconds_count {fsyncs}"
    );
    let _ = writeln!(
        text,
        "# HELP etcd_server_version Which version is running. 1 for 'server_version' label with current version.\n\
         # TYPE etcd_server_version gauge\netcd_server_version{{server_version=\"{ETCD_VERSION}\"}} 1"
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

use std::time::Duration;
