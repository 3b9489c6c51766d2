//! `/v2/members`, `/v2/machines` and `/v2/stats/...` as etcd 3.4 answers them for this
//! member. Membership changes are not served yet (as in the v3 Cluster service): a
//! valid add, update or removal of this member answers etcd's 500 "Internal Server
//! Error"; malformed requests and unknown members get etcd's exact errors.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use bytes::Bytes;
use oxetcd_spec::v2::json;
use serde_json::Value;

use super::{V2, form, go_not_found, method_not_allowed, respond};
use crate::config::url;

const MEMBERS_PATH: &str = "/v2/members";

/// One member as etcd's v2 API shows it.
#[derive(Clone, Debug)]
struct Member {
    id: u64,
    name: String,
    peer_urls: Vec<String>,
    client_urls: Vec<String>,
}

impl Member {
    fn to_json(&self) -> String {
        let list = |urls: &[String]| {
            let items: Vec<String> = urls.iter().map(|u| json::string(u)).collect();
            format!("[{}]", items.join(","))
        };
        format!(
            "{{\"id\":\"{:x}\",\"name\":{},\"peerURLs\":{},\"clientURLs\":{}}}",
            self.id,
            json::string(&self.name),
            list(&self.peer_urls),
            list(&self.client_urls)
        )
    }
}

impl V2 {
    /// The members: this one (a single-member cluster).
    fn members_list(&self) -> Vec<Member> {
        let config = &self.ctx.config;
        vec![Member {
            id: self.ctx.node.member_id,
            name: config.name.clone(),
            peer_urls: config
                .initial_advertise_peer_urls
                .iter()
                .map(ToString::to_string)
                .collect(),
            client_urls: url::join(&config.advertise_client_urls)
                .split(',')
                .map(str::to_owned)
                .collect(),
        }]
    }

    fn json_message(&self, status: StatusCode, message: &str) -> Response {
        respond(
            status,
            &[
                ("content-type", "application/json".to_owned()),
                self.cluster_id_header(),
            ],
            format!("{{\"message\":{}}}", json::string(message)),
        )
    }

    fn cluster_id_header(&self) -> (&'static str, String) {
        (
            "x-etcd-cluster-id",
            format!("{:x}", self.ctx.node.cluster_id),
        )
    }

    /// A JSON body: the member answers (with the cluster id) end with Go's encoder
    /// newline, the stats bodies (written raw by etcd) do not.
    fn json_ok(&self, status: StatusCode, body: String, members: bool) -> Response {
        let mut headers = vec![("content-type", "application/json".to_owned())];
        if members {
            headers.push(self.cluster_id_header());
            return respond(status, &headers, format!("{body}\n"));
        }
        respond(status, &headers, body)
    }
}

/// etcd's `unmarshalRequest` of `{"peerURLs": [...]}`: 415 for a non-JSON content type,
/// 400 for bad JSON or URLs.
fn peer_urls_request(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<String>, (StatusCode, String)> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = match content_type.find(';') {
        Some(i) => content_type[..i].trim().to_ascii_lowercase(),
        None => content_type.to_owned(),
    };
    if media != "application/json" {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Bad Content-Type {media}, accept application/json"),
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("invalid character in JSON body: {e}"),
        )
    })?;
    let urls: Vec<String> = value
        .get("peerURLs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    for u in &urls {
        let ok_scheme = ["http://", "https://", "unix://", "unixs://"]
            .iter()
            .any(|s| u.starts_with(s));
        if !ok_scheme {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("URL scheme must be http, https, unix, or unixs: {u}"),
            ));
        }
    }
    Ok(urls)
}

/// `/v2/members[/...]`.
pub async fn members(
    State(v2): State<Arc<V2>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !v2.enabled {
        return go_not_found();
    }
    if let Some(redirect) = super::redirect_if_unclean(&method, &uri) {
        return redirect;
    }
    if !matches!(method.as_str(), "GET" | "POST" | "DELETE" | "PUT") {
        return method_not_allowed("GET,POST,DELETE,PUT", &[]);
    }
    let path = form::decoded_path(uri.path());
    let rest = path
        .strip_prefix(MEMBERS_PATH)
        .unwrap_or("")
        .trim_start_matches('/')
        .to_owned();
    let list = v2.members_list();
    match method.as_str() {
        "GET" => match rest.as_str() {
            "" => {
                let items: Vec<String> = list.iter().map(Member::to_json).collect();
                v2.json_ok(
                    StatusCode::OK,
                    format!("{{\"members\":[{}]}}", items.join(",")),
                    true,
                )
            }
            "leader" => {
                let leader = v2.ctx.node.status.leader.load(Ordering::Relaxed);
                match list.iter().find(|m| m.id == leader) {
                    Some(m) => v2.json_ok(StatusCode::OK, m.to_json(), true),
                    None => v2.json_message(StatusCode::SERVICE_UNAVAILABLE, "During election"),
                }
            }
            _ => v2.json_message(StatusCode::NOT_FOUND, "Not found"),
        },
        "POST" => match peer_urls_request(&headers, &body) {
            Err((status, message)) => v2.json_message(status, &message),
            Ok(urls)
                if list
                    .iter()
                    .any(|m| m.peer_urls.iter().any(|p| urls.contains(p))) =>
            {
                v2.json_message(StatusCode::CONFLICT, "membership: peerURL exists")
            }
            Ok(_) => v2.json_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
        },
        _ => {
            if rest.is_empty() {
                return method_not_allowed("", &[v2.cluster_id_header()]);
            }
            let Ok(id) = u64::from_str_radix(&rest, 16) else {
                return v2.json_message(StatusCode::NOT_FOUND, &format!("No such member: {rest}"));
            };
            if method == Method::PUT
                && let Err((status, message)) = peer_urls_request(&headers, &body)
            {
                return v2.json_message(status, &message);
            }
            if list.iter().any(|m| m.id == id) {
                v2.json_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            } else {
                v2.json_message(StatusCode::NOT_FOUND, &format!("No such member: {id:x}"))
            }
        }
    }
}

/// `/v2/machines`: the client URLs of every member, comma separated.
pub async fn machines(State(v2): State<Arc<V2>>, method: Method) -> Response {
    if !v2.enabled {
        return go_not_found();
    }
    if !matches!(method.as_str(), "GET" | "HEAD") {
        return method_not_allowed("GET,HEAD", &[]);
    }
    let urls: Vec<String> = v2
        .members_list()
        .into_iter()
        .flat_map(|m| m.client_urls)
        .collect();
    respond(
        StatusCode::OK,
        &[("content-type", "text/plain; charset=utf-8".to_owned())],
        urls.join(", "),
    )
}

/// `/v2/stats/self`.
pub async fn stats_self(State(v2): State<Arc<V2>>, method: Method) -> Response {
    if !v2.enabled {
        return go_not_found();
    }
    if method != Method::GET {
        return method_not_allowed("GET", &[]);
    }
    let node = &v2.ctx.node;
    let body = v2.self_stats.to_json(
        &v2.ctx.config.name,
        node.member_id,
        node.status.leader.load(Ordering::Relaxed),
        node.is_leader(),
    );
    v2.json_ok(StatusCode::OK, body, false)
}

/// `/v2/stats/leader`: this leader's followers (none), or 403 on a follower.
pub async fn stats_leader(State(v2): State<Arc<V2>>, method: Method) -> Response {
    if !v2.enabled {
        return go_not_found();
    }
    if method != Method::GET {
        return method_not_allowed("GET", &[]);
    }
    if !v2.ctx.node.is_leader() {
        return respond(
            StatusCode::FORBIDDEN,
            &[("content-type", "application/json".to_owned())],
            "{\"message\":\"not current leader\"}",
        );
    }
    v2.json_ok(
        StatusCode::OK,
        format!(
            "{{\"leader\":\"{:x}\",\"followers\":{{}}}}",
            v2.ctx.node.member_id
        ),
        false,
    )
}

/// `/v2/stats/store`.
pub async fn stats_store(State(v2): State<Arc<V2>>, method: Method) -> Response {
    if !v2.enabled {
        return go_not_found();
    }
    if method != Method::GET {
        return method_not_allowed("GET", &[]);
    }
    let body = v2.store_stats.to_json(v2.hub.count());
    v2.json_ok(StatusCode::OK, body, false)
}
