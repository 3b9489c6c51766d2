//! `/v2/members`, `/v2/machines` and `/v2/stats/...` as etcd 3.4 answers them. The
//! member list is the applied membership; POST (add a voter), DELETE and PUT (new peer
//! URLs) go through the same checks and Raft conf changes as the v3 Cluster service
//! ([`crate::v3::cluster`]) and answer with etcd's v2 codes: 201 with the new member,
//! 204, 404 "No such member", 409 for an ID or peer URL in use, 410 for a removed
//! member, and 500 "Internal Server Error" for every other failure (not enough started
//! members, unhealthy cluster, time-outs).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use bytes::Bytes;
use oxetcd_spec::v2::json;
use serde_json::Value;

use super::{V2, form, go_not_found, method_not_allowed, respond};
use crate::v3::cluster::{self as v3cluster, ChangeError};
use oxetcd_spec::membership::{MemberId, MembershipError};

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
    /// The applied members, in ID order.
    fn members_list(&self) -> Vec<Member> {
        self.ctx
            .read(|state| {
                state
                    .cluster()
                    .members()
                    .map(|m| Member {
                        id: m.id.0,
                        name: m.name.clone(),
                        peer_urls: m.peer_urls.clone(),
                        client_urls: m.client_urls.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn no_content(&self) -> Response {
        respond(StatusCode::NO_CONTENT, &[self.cluster_id_header()], "")
    }

    fn is_removed(&self, id: u64) -> bool {
        self.ctx
            .read(|state| state.cluster().is_removed(MemberId(id)))
            .unwrap_or(false)
    }

    /// etcd's answers for a failed change of member `id`.
    fn change_failed(&self, id: u64, error: &ChangeError) -> Response {
        match error {
            ChangeError::Membership(MembershipError::NotFound) if self.is_removed(id) => self
                .json_message(
                    StatusCode::GONE,
                    &format!("Member permanently removed: {id:016x}"),
                ),
            ChangeError::Membership(MembershipError::NotFound) => {
                self.json_message(StatusCode::NOT_FOUND, &format!("No such member: {id:x}"))
            }
            _ => self.json_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
        }
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
            Ok(urls) => match v3cluster::add(&v2.ctx, &urls, false, None).await {
                Ok((m, _)) => {
                    let added = Member {
                        id: m.id.0,
                        name: m.name,
                        peer_urls: m.peer_urls,
                        client_urls: m.client_urls,
                    };
                    v2.json_ok(StatusCode::CREATED, added.to_json(), true)
                }
                Err(ChangeError::Membership(MembershipError::IdExists)) => {
                    v2.json_message(StatusCode::CONFLICT, "membership: ID exists")
                }
                Err(ChangeError::Membership(MembershipError::PeerUrlExists)) => {
                    v2.json_message(StatusCode::CONFLICT, "membership: peerURL exists")
                }
                Err(_) => {
                    v2.json_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
                }
            },
        },
        _ => {
            if rest.is_empty() {
                return method_not_allowed("", &[v2.cluster_id_header()]);
            }
            let Ok(id) = u64::from_str_radix(&rest, 16) else {
                return v2.json_message(StatusCode::NOT_FOUND, &format!("No such member: {rest}"));
            };
            let result = if method == Method::PUT {
                let urls = match peer_urls_request(&headers, &body) {
                    Ok(urls) => urls,
                    Err((status, message)) => return v2.json_message(status, &message),
                };
                v3cluster::update(&v2.ctx, id, &urls, None).await
            } else {
                v3cluster::remove(&v2.ctx, id, None).await
            };
            match result {
                Ok(_) => v2.no_content(),
                // etcd's PUT only tells "No such member" apart.
                Err(ChangeError::Membership(MembershipError::NotFound))
                    if method == Method::PUT =>
                {
                    if v2.is_removed(id) {
                        v2.json_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
                    } else {
                        v2.json_message(StatusCode::NOT_FOUND, &format!("No such member: {id:x}"))
                    }
                }
                Err(error) if method == Method::DELETE => v2.change_failed(id, &error),
                Err(_) => {
                    v2.json_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
                }
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
