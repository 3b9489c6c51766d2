//! `/v2/keys/...`: etcd 3.4's keys handler. Requests are parsed as Go's `net/http` and
//! etcd's `parseKeyRequest` do ([`super::form`], `spec::v2::parse_key_request`); writes
//! and quorum reads go through the log, plain reads and watch starts read the applied
//! store. Answers carry `X-Etcd-Cluster-Id`, `X-Etcd-Index`, `X-Raft-Index` and
//! `X-Raft-Term` and etcd's JSON bodies (with Go's trailing newline).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use oxetcd_spec::apply::{ApplyError, Command, Response as Applied};
use oxetcd_spec::v2::{
    self, Event, KEYS_PREFIX, KeyRequest, Request, V2Error, V2ErrorCode, parse_key_request,
};

use super::hub::Started;
use super::stats::Op;
use super::{V2, for_client, form, go_not_found, method_not_allowed, now_ms, respond};

const KEYS_PATH: &str = "/v2/keys";

/// The largest form body Go's `Request.ParseForm` reads (`maxFormSize`, 10 MiB).
const MAX_FORM_BYTES: usize = 10 << 20;

/// The keys handler.
pub async fn handle(
    State(v2): State<Arc<V2>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !v2.enabled {
        return go_not_found();
    }
    if let Some(redirect) = super::redirect_if_unclean(&method, &uri) {
        return redirect;
    }
    let m = method.as_str();
    if !matches!(m, "HEAD" | "GET" | "PUT" | "POST" | "DELETE") {
        return method_not_allowed("HEAD,GET,PUT,POST,DELETE", &[]);
    }
    let path = form::decoded_path(uri.path());
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    // Go's ParseForm reads at most 10 MiB of a form body ("http: POST too large");
    // other bodies are not read at all.
    let is_form = content_type.is_some_and(|t| t.contains("application/x-www-form-urlencoded"));
    let body = match axum::body::to_bytes(body, MAX_FORM_BYTES + 1).await {
        Ok(body) if body.len() <= MAX_FORM_BYTES => body,
        _ if is_form => {
            let cause = "http: POST too large".to_owned();
            return v2.key_error(V2Error::new(V2ErrorCode::InvalidForm, cause, 0));
        }
        _ => Bytes::new(),
    };
    let form = match form::parse_form(m, content_type, &body, uri.query().unwrap_or("")) {
        Ok(form) => form,
        Err(cause) => {
            return v2.key_error(V2Error::new(V2ErrorCode::InvalidForm, cause, 0));
        }
    };
    let user_path = path.get(KEYS_PATH.len()..).unwrap_or("");
    let parsed = match parse_key_request(m, user_path, &form, now_ms()) {
        Ok(parsed) => parsed,
        Err(error) => return v2.key_error(error),
    };
    match parsed.request {
        KeyRequest::Get {
            path,
            recursive,
            sorted,
            quorum,
        } => {
            if quorum {
                let request = Request::QGet {
                    path,
                    recursive,
                    sorted,
                };
                return v2.propose(request, false).await;
            }
            let got = match v2.ctx.node.state.read() {
                Ok(state) => state.v2().get(&path, recursive, now_ms()),
                Err(_) => return v2.internal("state lock poisoned"),
            };
            v2.store_stats.record(Op::Get, got.is_ok());
            match got {
                Ok(event) => v2.event_response(event, false),
                Err(error) => v2.key_error(error),
            }
        }
        KeyRequest::Watch {
            path,
            recursive,
            stream,
            wait_index,
        } => v2.watch(&path, recursive, stream, wait_index),
        KeyRequest::Write(request) => v2.propose(request, parsed.no_value_on_success).await,
    }
}

impl V2 {
    fn cluster_header(&self) -> (&'static str, String) {
        (
            "x-etcd-cluster-id",
            format!("{:x}", self.ctx.node.cluster_id),
        )
    }

    fn raft_headers(&self) -> [(&'static str, String); 2] {
        let status = &self.ctx.node.status;
        [
            (
                "x-raft-index",
                status.applied_index.load(Ordering::Relaxed).to_string(),
            ),
            (
                "x-raft-term",
                status.term.load(Ordering::Relaxed).to_string(),
            ),
        ]
    }

    /// etcd's `writeKeyError` for a v2 error (store paths trimmed to user paths).
    fn key_error(&self, error: V2Error) -> Response {
        let error = error.trim_cause_prefix(KEYS_PREFIX);
        let status =
            StatusCode::from_u16(error.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        respond(
            status,
            &[
                ("content-type", "application/json".to_owned()),
                self.cluster_header(),
                ("x-etcd-index", error.index.to_string()),
            ],
            format!("{}\n", error.to_json()),
        )
    }

    /// Any other failure: etcd's 300 "Raft Internal Error" with the error text.
    fn internal(&self, cause: &str) -> Response {
        self.key_error(V2Error::new(V2ErrorCode::RaftInternal, cause, 0))
    }

    /// etcd's `writeKeyEvent`.
    fn event_response(&self, event: Event, no_value: bool) -> Response {
        let status = if event.is_created() {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let index = event.etcd_index;
        let event = for_client(event);
        let body = if no_value {
            event.to_json_no_value()
        } else {
            event.to_json()
        };
        let [raft_index, raft_term] = self.raft_headers();
        respond(
            status,
            &[
                ("content-type", "application/json".to_owned()),
                self.cluster_header(),
                ("x-etcd-index", index.to_string()),
                raft_index,
                raft_term,
            ],
            format!("{body}\n"),
        )
    }

    /// Proposes a write or quorum read and answers with its applied result.
    async fn propose(&self, request: Request, no_value: bool) -> Response {
        let op = Op::of(&request);
        let result = self.ctx.propose(Command::V2(request)).await;
        self.hub.pump(&self.ctx.node.state, &self.store_stats);
        let outcome = match result {
            Ok(applied) => applied.result,
            Err(status) => return self.internal(status.message()),
        };
        if let Some(op) = op {
            self.store_stats.record(op, outcome.is_ok());
        }
        match outcome {
            Ok(Applied::V2(v2::Applied::Event(event))) => self.event_response(*event, no_value),
            Err(ApplyError::V2(error)) => self.key_error(error),
            Ok(_) | Err(_) => self.internal("unexpected result for a v2 request"),
        }
    }

    /// etcd's `handleKeyWatch`: headers at once, then one event (or, with `stream`,
    /// every event) as it happens.
    fn watch(&self, path: &str, recursive: bool, stream: bool, since: u64) -> Response {
        let started = self
            .hub
            .watch(&self.ctx.node.state, path, recursive, stream, since);
        let (start_index, body) = match started {
            Err(error) => return self.key_error(error),
            Ok(Started::Now(event)) => {
                let index = event.etcd_index;
                let line = Bytes::from(format!("{}\n", for_client(*event).to_json()));
                let first = futures::stream::once(async move { Ok::<_, Infallible>(line) });
                // etcd hands a history hit to the watcher and registers nothing: a
                // stream stays open with no further events.
                let body = if stream {
                    Body::from_stream(first.chain(futures::stream::pending()))
                } else {
                    Body::from_stream(first)
                };
                (index, body)
            }
            Ok(Started::Waiting {
                start_index,
                events,
            }) => {
                let lines =
                    futures::stream::unfold((events, false), move |(mut rx, done)| async move {
                        if done {
                            return None;
                        }
                        let event = rx.recv().await?;
                        let line = Bytes::from(format!("{}\n", for_client(event).to_json()));
                        Some((Ok::<_, Infallible>(line), (rx, !stream)))
                    });
                (start_index, Body::from_stream(lines))
            }
        };
        let [raft_index, raft_term] = self.raft_headers();
        respond(
            StatusCode::OK,
            &[
                ("content-type", "application/json".to_owned()),
                self.cluster_header(),
                ("x-etcd-index", start_index.to_string()),
                raft_index,
                raft_term,
            ],
            body,
        )
    }
}
