//! `/v2/auth/...` as etcd 3.4.23 answers it while its v2 auth store is empty: no users,
//! the built-in `root` role, auth disabled. That is what `ETCDCTL_API=2 etcdctl user
//! list|get`, `role list|get` and `auth enable|disable` see on a cluster where nobody
//! created v2 users (v3 users and roles are a separate store, as in etcd).
//!
//! Creating v2 users or roles (PUT `/v2/auth/users/<name>`, `/v2/auth/roles/<name>`) is
//! not served: it answers 501 with a JSON message saying so.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use oxetcd_spec::v2::json;

use super::{V2, form, go_not_found, method_not_allowed, respond};

/// The built-in root role as etcd's v2 auth API shows it.
const ROOT_ROLE: &str = r#"{"role":"root","permissions":{"kv":{"read":["/*"],"write":["/*"]}}}"#;

impl V2 {
    /// A JSON answer as etcd's v2 auth handlers write it (Go's encoder newline).
    fn auth_json(&self, status: StatusCode, body: &str) -> Response {
        respond(
            status,
            &[
                ("content-type", "application/json".to_owned()),
                (
                    "x-etcd-cluster-id",
                    format!("{:x}", self.ctx.node.cluster_id),
                ),
            ],
            format!("{body}\n"),
        )
    }

    fn auth_error(&self, status: StatusCode, message: &str) -> Response {
        self.auth_json(
            status,
            &format!("{{\"message\":{}}}", json::string(message)),
        )
    }
}

/// `/v2/auth/users[/name]`, `/v2/auth/roles[/name]` and `/v2/auth/enable`.
pub async fn handle(State(v2): State<Arc<V2>>, method: Method, uri: Uri) -> Response {
    if !v2.enabled {
        return go_not_found();
    }
    if let Some(redirect) = super::redirect_if_unclean(&method, &uri) {
        return redirect;
    }
    let path = form::decoded_path(uri.path());
    let Some(rest) = path.strip_prefix("/v2/auth/") else {
        return go_not_found();
    };
    let (kind, name) = match rest.split_once('/') {
        Some((kind, name)) => (kind, name),
        None => (rest, ""),
    };
    let method = method.as_str();
    match (kind, name) {
        ("enable", "") => match method {
            "GET" => v2.auth_json(StatusCode::OK, "{\"enabled\":false}"),
            "PUT" => v2.auth_error(
                StatusCode::CONFLICT,
                "auth: No root user available, please create one",
            ),
            "DELETE" => v2.auth_error(StatusCode::CONFLICT, "auth: already disabled"),
            _ => method_not_allowed("GET,PUT,DELETE", &[]),
        },
        ("users", "") => match method {
            "GET" => v2.auth_json(StatusCode::OK, "{\"users\":null}"),
            _ => method_not_allowed("GET", &[]),
        },
        ("roles", "") => match method {
            "GET" => v2.auth_json(StatusCode::OK, &format!("{{\"roles\":[{ROOT_ROLE}]}}")),
            _ => method_not_allowed("GET", &[]),
        },
        ("users", user) => match method {
            "GET" => v2.auth_error(
                StatusCode::NOT_FOUND,
                &format!("auth: User {user} does not exist."),
            ),
            "DELETE" => v2.auth_error(
                StatusCode::NOT_FOUND,
                &format!("auth: User {user} does not exist"),
            ),
            "PUT" => not_served(&v2),
            _ => method_not_allowed("GET,PUT,DELETE", &[]),
        },
        ("roles", "root") => match method {
            "GET" => v2.auth_json(StatusCode::OK, ROOT_ROLE),
            "PUT" | "DELETE" => v2.auth_error(
                StatusCode::FORBIDDEN,
                "auth: Cannot modify role root: is root role.",
            ),
            _ => method_not_allowed("GET,PUT,DELETE", &[]),
        },
        ("roles", role) => match method {
            "GET" => v2.auth_error(
                StatusCode::NOT_FOUND,
                &format!("auth: Role {role} does not exist."),
            ),
            "DELETE" => v2.auth_error(
                StatusCode::NOT_FOUND,
                &format!("auth: Role {role} doesn't exist."),
            ),
            "PUT" => not_served(&v2),
            _ => method_not_allowed("GET,PUT,DELETE", &[]),
        },
        _ => go_not_found(),
    }
}

fn not_served(v2: &V2) -> Response {
    v2.auth_error(
        StatusCode::NOT_IMPLEMENTED,
        "oxetcd: v2 auth users and roles are not served; use the v3 auth API",
    )
}
