//! The v2 HTTP API on the client port, served with `--enable-v2` (etcd 3.4's flag,
//! default off; without it every `/v2/...` path answers Go's `404 page not found`, as
//! etcd does): `/v2/keys/...` ([`keys`]), `/v2/members`, `/v2/machines` and
//! `/v2/stats/self|leader|store` ([`cluster`]), `/v2/auth/...` ([`auth`]: the empty v2
//! auth store, read-only).
//!
//! The store is `spec::v2`, inside the applied state: writes and `quorum=true` reads are
//! proposed as `Command::V2` and answered with the applied result; other reads and
//! watch starts read the applied store. The leader expires TTLs through the log: every
//! 500 ms (etcd's SYNC ticker), while the store holds any node with a TTL, it proposes a
//! SYNC carrying its clock, and applying it removes what has expired by then (as with
//! etcd, a node goes at the first SYNC after its expiration, and every SYNC takes a
//! Raft index). Waiting watchers are fed by the [`hub`].
//!
//! Time: TTLs are wall-clock instants (etcd's handler turns `ttl=` into `now + ttl`);
//! the TTL seconds in an answer are computed from that instant and this member's clock
//! when the answer is written.

pub mod auth;
pub mod cluster;
pub mod form;
pub mod hub;
pub mod keys;
pub mod stats;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{any, get};
use oxetcd_spec::apply::Command;
use oxetcd_spec::v2::{Event, NodeView, Request, ttl_seconds};

use crate::v3::Context;
use hub::Hub;
use stats::{SelfStats, StoreStats};

/// The v2 service state.
#[derive(Debug)]
pub struct V2 {
    /// `--enable-v2`.
    pub enabled: bool,
    /// The node loop and configuration.
    pub ctx: Context,
    /// Waiting watchers.
    pub hub: Hub,
    /// `/v2/stats/store` counters.
    pub store_stats: StoreStats,
    /// `/v2/stats/self` times.
    pub self_stats: SelfStats,
}

/// etcd's SYNC period (`SyncTicker`).
const SYNC_EVERY: Duration = Duration::from_millis(500);
/// How often the hub is pumped for events this member did not propose.
const PUMP_EVERY: Duration = Duration::from_millis(100);

/// The `/v2` routes. With `--enable-v2`, also starts the SYNC and watch-pump task.
pub fn router(ctx: &Context) -> Router {
    let index = ctx.node.state.read().map_or(0, |state| state.v2().index());
    let v2 = Arc::new(V2 {
        enabled: ctx.config.enable_v2,
        ctx: ctx.clone(),
        hub: Hub::new(index),
        store_stats: StoreStats::default(),
        self_stats: SelfStats::new(),
    });
    if v2.enabled {
        tokio::spawn(background(v2.clone()));
    }
    Router::new()
        .route("/v2/keys", any(keys::handle))
        .route("/v2/keys/", any(keys::handle))
        .route("/v2/keys/{*path}", any(keys::handle))
        .route("/v2/members", any(cluster::members))
        .route("/v2/members/", any(cluster::members))
        .route("/v2/members/{*rest}", any(cluster::members))
        .route("/v2/machines", any(cluster::machines))
        .route("/v2/stats/self", any(cluster::stats_self))
        .route("/v2/stats/leader", any(cluster::stats_leader))
        .route("/v2/stats/store", any(cluster::stats_store))
        .route("/v2/auth/{*rest}", any(auth::handle))
        .route("/v2", get(not_found))
        .with_state(v2)
}

async fn not_found() -> Response {
    go_not_found()
}

/// The leader's SYNC proposals and the periodic hub pump.
async fn background(v2: Arc<V2>) {
    let mut ticker = tokio::time::interval(PUMP_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sync = tokio::time::Instant::now();
    loop {
        ticker.tick().await;
        let node = &v2.ctx.node;
        v2.self_stats.observe_leader(
            node.status
                .leader
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        v2.hub.pump(&node.state, &v2.store_stats);
        if last_sync.elapsed() < SYNC_EVERY || !node.is_leader() {
            continue;
        }
        last_sync = tokio::time::Instant::now();
        // etcd's leader proposes a SYNC on every tick while the store holds any TTL
        // node, expired or not: each one takes a Raft index (X-Raft-Index and the v3
        // raft index advance twice a second), and only expired nodes move the store
        // index.
        let has_ttl_nodes = node
            .state
            .read()
            .ok()
            .and_then(|state| state.v2().next_expiration_ms())
            .is_some();
        if has_ttl_nodes {
            // The result reaches watchers through the store's history.
            let _ = v2
                .ctx
                .propose(Command::V2(Request::Sync { time_ms: now_ms() }))
                .await;
            v2.hub.pump(&node.state, &v2.store_stats);
        }
    }
}

/// This member's wall clock, ms since the Unix epoch.
pub fn now_ms() -> u64 {
    stats::wall_ms(SystemTime::now())
}

/// TTL seconds of `node` (and its children) as seen now: the store renders them with
/// the applying member's clock, answers use the clock of the moment they are written.
fn refresh_ttls(node: &mut NodeView, now: u64) {
    if let Some(at) = node.expiration_ms {
        node.ttl_s = ttl_seconds(at, now);
    }
    for child in node.nodes.iter_mut().flatten() {
        refresh_ttls(child, now);
    }
}

/// An event as the keys API shows it: the keys prefix trimmed, TTLs as of now.
fn for_client(event: Event) -> Event {
    let mut event = event.trim_prefix(oxetcd_spec::v2::KEYS_PREFIX);
    let now = now_ms();
    refresh_ttls(&mut event.node, now);
    if let Some(prev) = event.prev_node.as_mut() {
        refresh_ttls(prev, now);
    }
    event
}

/// A response with a body and headers.
fn respond(status: StatusCode, headers: &[(&str, String)], body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::try_from(*name),
            HeaderValue::try_from(value.as_str()),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// Go's `http.NotFound`.
pub fn go_not_found() -> Response {
    respond(
        StatusCode::NOT_FOUND,
        &[
            ("content-type", "text/plain; charset=utf-8".to_owned()),
            ("x-content-type-options", "nosniff".to_owned()),
        ],
        "404 page not found\n",
    )
}

/// etcd's `allowMethod` refusal: 405 with `Allow` and Go's `http.Error` body.
fn method_not_allowed(allow: &str, extra: &[(&str, String)]) -> Response {
    let mut headers = vec![
        ("allow", allow.to_owned()),
        ("content-type", "text/plain; charset=utf-8".to_owned()),
        ("x-content-type-options", "nosniff".to_owned()),
    ];
    if allow.is_empty() {
        headers.remove(0);
    }
    headers.extend_from_slice(extra);
    respond(
        StatusCode::METHOD_NOT_ALLOWED,
        &headers,
        "Method Not Allowed\n",
    )
}

/// Go's `ServeMux` redirect of a path that is not clean (`/a/../b`, `//a`): 301 to the
/// cleaned path, with Go's little HTML body for GET and HEAD.
fn redirect_if_unclean(method: &axum::http::Method, uri: &axum::http::Uri) -> Option<Response> {
    let path = form::decoded_path(uri.path());
    let clean = form::clean_path(&path);
    if clean == path {
        return None;
    }
    let mut location = form::escape_path(&clean);
    if let Some(q) = uri.query() {
        location.push('?');
        location.push_str(q);
    }
    let mut headers = vec![("location", location.clone())];
    let body = if *method == axum::http::Method::GET || *method == axum::http::Method::HEAD {
        headers.push(("content-type", "text/html; charset=utf-8".to_owned()));
        format!("<a href=\"{location}\">Moved Permanently</a>.\n\n")
    } else {
        String::new()
    };
    Some(respond(StatusCode::MOVED_PERMANENTLY, &headers, body))
}
