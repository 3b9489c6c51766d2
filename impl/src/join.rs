//! Joining a running cluster: the peer port's `/members` and what a member started with
//! `--initial-cluster-state existing` (after `etcdctl member add`) learns from it.
//!
//! `/members` (on the peer URLs) answers as etcd's does: the applied member list as a
//! JSON array (`id` as a number, `peerURLs`, then `isLearner`, `name` and `clientURLs`
//! when set) and the cluster id in the `X-Etcd-Cluster-ID` header.
//!
//! A member joining with an empty data dir asks the peer URLs of the other
//! `--initial-cluster` members for it ([`fetch_cluster`]), then matches the members by
//! peer URLs as etcd's `ValidateClusterAndAssignIDs` does ([`assign_ids`]): the same
//! number of members, each running member's peer URLs equal to one `--initial-cluster`
//! entry's; its own id is the one the running cluster gave the entry with its name. It
//! starts with an empty Raft log and no configuration (so it never campaigns on its
//! own); the leader brings it up to date with its log from index 1 (whose first
//! entries are the bootstrap configuration, see `crate::v3::cluster::bootstrap_entries`)
//! or with a snapshot when the log is compacted. Errors use etcd 3.4.23's texts.
//!
//! A member started with `new` and an empty data dir whose id the running cluster
//! already lists with client URLs (it was started before and lost its data dir) is
//! refused as etcd refuses it ([`already_bootstrapped`]).
//!
//! The requests are HTTP/1.1, over TLS with the peer TLS client configuration for
//! `https://` peer URLs.

use std::time::Duration;

use oxetcd_spec::membership::Member;

use crate::config::Config;
use crate::config::url::Url;
use crate::node_loop::NodeHandle;
use crate::peer::DialTls;

/// The path of the member list on the peer port.
pub const MEMBERS_PATH: &str = "/members";
/// The header carrying the cluster id (hex).
const CLUSTER_ID_HEADER: &str = "X-Etcd-Cluster-ID";

/// One member as `/members` lists it (etcd's `membership.Member` JSON).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RemoteMember {
    /// The member id.
    pub id: u64,
    /// Peer URLs.
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    /// Whether it is a learner.
    #[serde(
        rename = "isLearner",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub is_learner: bool,
    /// Its name (empty until it started).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Client URLs (empty until it started).
    #[serde(rename = "clientURLs", default, skip_serializing_if = "Vec::is_empty")]
    pub client_urls: Vec<String>,
}

impl From<&Member> for RemoteMember {
    fn from(member: &Member) -> Self {
        RemoteMember {
            id: member.id.0,
            peer_urls: member.peer_urls.clone(),
            is_learner: member.is_learner,
            name: member.name.clone(),
            client_urls: member.client_urls.clone(),
        }
    }
}

/// A running cluster as one of its members described it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteCluster {
    /// The cluster id.
    pub cluster_id: u64,
    /// The members, by id.
    pub members: Vec<RemoteMember>,
}

impl std::fmt::Display for RemoteCluster {
    /// As etcd prints its `RaftCluster` in error messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{{ClusterID:{:x} Members:[", self.cluster_id)?;
        for (i, m) in self.members.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(
                f,
                "&{{ID:{:x} RaftAttributes:{{PeerURLs:[{}] IsLearner:{}}} Attributes:{{Name:{} \
                 ClientURLs:[{}]}}}}",
                m.id,
                m.peer_urls.join(" "),
                m.is_learner,
                m.name,
                m.client_urls.join(" ")
            )?;
        }
        f.write_str("] RemovedMemberIDs:[]}")
    }
}

/// The peer port's `/members` handler.
pub async fn members_handler(
    axum::extract::State(node): axum::extract::State<NodeHandle>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let members: Vec<RemoteMember> = match node.state.read() {
        Ok(state) => state.cluster().members().map(RemoteMember::from).collect(),
        Err(_) => return http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let mut body = serde_json::to_string(&members).unwrap_or_else(|_| "[]".into());
    body.push('\n');
    (
        [
            (CLUSTER_ID_HEADER, format!("{:x}", node.cluster_id)),
            ("Content-Type", "application/json".to_owned()),
        ],
        body,
    )
        .into_response()
}

/// The peer URLs of the `--initial-cluster` members other than this one (etcd's
/// `getRemotePeerURLs`: sorted).
pub fn remote_peer_urls(config: &Config) -> Vec<Url> {
    let mut urls: Vec<Url> = config
        .initial_cluster
        .iter()
        .filter(|(name, _)| *name != config.name)
        .flat_map(|(_, urls)| urls.iter().cloned())
        .collect();
    urls.sort_by_key(ToString::to_string);
    urls
}

/// Asks each URL in turn for `/members` (`timeout` per URL; `tls` is the peer TLS
/// client configuration, for `https://` URLs); the first answer wins. Failures are
/// logged as etcd logs them when `log_errors`.
///
/// # Errors
/// etcd's "could not retrieve cluster information from the given URLs" when none answers.
pub async fn fetch_cluster(
    urls: &[Url],
    tls: &DialTls,
    timeout: Duration,
    log_errors: bool,
) -> Result<RemoteCluster, String> {
    for url in urls {
        let error = match tokio::time::timeout(timeout, fetch_one(url, tls.clone())).await {
            Ok(Ok(cluster)) => return Ok(cluster),
            Ok(Err(error)) => error,
            Err(_) => format!("Get \"{url}{MEMBERS_PATH}\": timed out"),
        };
        if log_errors {
            tracing::warn!("etcdserver: could not get cluster response from {url}: {error}");
        }
    }
    Err("could not retrieve cluster information from the given URLs".to_owned())
}

async fn fetch_one(url: &Url, tls: DialTls) -> Result<RemoteCluster, String> {
    let get = format!("Get \"{url}{MEMBERS_PATH}\"");
    let answer = crate::peer::request(url, tls.as_ref(), MEMBERS_PATH, None)
        .await
        .map_err(|error| format!("{get}: {error}"))?;
    parse_members_answer(&answer).map_err(|error| format!("{get}: {error}"))
}

/// Reads a peer's `/members` answer (status, cluster id header, JSON body).
///
/// # Errors
/// A message when it is not a 200 with both.
pub fn parse_members_answer(answer: &crate::peer::Answer) -> Result<RemoteCluster, String> {
    if answer.status != 200 {
        return Err(format!("unexpected answer {}", answer.status));
    }
    let cluster_id = answer
        .header(CLUSTER_ID_HEADER)
        .and_then(|value| u64::from_str_radix(value, 16).ok())
        .ok_or_else(|| format!("no {CLUSTER_ID_HEADER} header"))?;
    let mut members: Vec<RemoteMember> = serde_json::from_slice(&answer.body)
        .map_err(|error| format!("bad member list: {error}"))?;
    members.sort_by_key(|m| m.id);
    Ok(RemoteCluster {
        cluster_id,
        members,
    })
}

/// etcd's `isMemberBootstrapped`: whether the running cluster the other
/// `--initial-cluster` members form (if any answers within `timeout` per URL) lists
/// `member_id` with client URLs, that is, this member started before and its data dir
/// is gone. `tls` as for [`fetch_cluster`].
pub async fn already_bootstrapped(
    config: &Config,
    tls: &DialTls,
    member_id: u64,
    timeout: Duration,
) -> bool {
    let urls = remote_peer_urls(config);
    if urls.is_empty() {
        return false;
    }
    let Ok(cluster) = fetch_cluster(&urls, tls, timeout, false).await else {
        return false;
    };
    cluster
        .members
        .iter()
        .any(|m| m.id == member_id && !m.client_urls.is_empty())
}

/// etcd's `URLStringsEqual`: the same URLs in any order; otherwise why not.
fn urls_equal(a: &[String], b: &[String]) -> Result<(), String> {
    if a.len() != b.len() {
        return Err(format!("len({}) != len({})", go_quoted(a), go_quoted(b)));
    }
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort();
    b.sort();
    match a.iter().zip(&b).find(|(x, y)| x != y) {
        None => Ok(()),
        Some((x, y)) => Err(format!("resolved urls: {x:?} != {y:?}")),
    }
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_quoted(urls: &[String]) -> String {
    let quoted: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

/// etcd's `ValidateClusterAndAssignIDs`: the running cluster's members must be the
/// `--initial-cluster` entries (`local`: name, peer URLs and the id derived from them,
/// in id order), matched by peer URLs. Returns the id the running cluster gave the
/// entry named `name`.
///
/// # Errors
/// etcd's "error validating peerURLs ..." texts.
pub fn assign_ids(
    local: &[(String, Vec<String>, u64)],
    name: &str,
    existing: &RemoteCluster,
) -> Result<u64, String> {
    let fail = |why: String| format!("error validating peerURLs {existing}: {why}");
    if existing.members.len() != local.len() {
        return Err(fail("member count is unequal".to_owned()));
    }
    let mut local: Vec<(String, Vec<String>, u64)> = local.to_vec();
    local.sort_by_key(|(_, _, id)| *id);
    let mut assigned: Vec<Option<u64>> = vec![None; local.len()];
    for member in &existing.members {
        let mut last_error = String::from("<nil>");
        let mut matched = false;
        for (j, (_, urls, _)) in local.iter().enumerate() {
            match urls_equal(&member.peer_urls, urls) {
                Ok(()) => {
                    assigned[j] = Some(member.id);
                    matched = true;
                    break;
                }
                Err(error) => last_error = error,
            }
        }
        if !matched {
            return Err(fail(format!(
                "PeerURLs: no match found for existing member ({:x}, [{}]), last resolver error ({last_error})",
                member.id,
                member.peer_urls.join(" ")
            )));
        }
    }
    local
        .iter()
        .zip(&assigned)
        .find(|((n, _, _), _)| n == name)
        .and_then(|(_, id)| *id)
        .ok_or_else(|| {
            format!("couldn't find local name {name:?} in the initial cluster configuration")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(members: &[(u64, &str, &str)]) -> RemoteCluster {
        RemoteCluster {
            cluster_id: 0xed87_acd0_9d28_bf36,
            members: members
                .iter()
                .map(|(id, name, url)| RemoteMember {
                    id: *id,
                    peer_urls: vec![(*url).to_owned()],
                    is_learner: false,
                    name: (*name).to_owned(),
                    client_urls: Vec::new(),
                })
                .collect(),
        }
    }

    fn local(entries: &[(&str, &str, u64)]) -> Vec<(String, Vec<String>, u64)> {
        entries
            .iter()
            .map(|(name, url, id)| ((*name).to_owned(), vec![(*url).to_owned()], *id))
            .collect()
    }

    #[test]
    fn the_joining_member_gets_the_id_the_cluster_gave_its_peer_urls() {
        let existing = remote(&[(0x0b9c, "m1", "http://a:1"), (0x8220, "", "http://b:2")]);
        let entries = local(&[("m1", "http://a:1", 5), ("m2", "http://b:2", 3)]);
        assert_eq!(assign_ids(&entries, "m2", &existing), Ok(0x8220));
        assert_eq!(assign_ids(&entries, "m1", &existing), Ok(0x0b9c));
    }

    #[test]
    fn a_member_not_added_to_the_cluster_is_refused_with_etcds_texts() {
        let existing = remote(&[(0x0b9c, "m1", "http://a:1"), (0x8220, "", "http://b:2")]);
        let three = local(&[
            ("m1", "http://a:1", 1),
            ("m2", "http://b:2", 2),
            ("m3", "http://c:3", 3),
        ]);
        let error = assign_ids(&three, "m3", &existing).unwrap_err();
        assert_eq!(
            error,
            "error validating peerURLs {ClusterID:ed87acd09d28bf36 Members:[&{ID:b9c \
             RaftAttributes:{PeerURLs:[http://a:1] IsLearner:false} Attributes:{Name:m1 \
             ClientURLs:[]}} &{ID:8220 RaftAttributes:{PeerURLs:[http://b:2] IsLearner:false} \
             Attributes:{Name: ClientURLs:[]}}] RemovedMemberIDs:[]}: member count is unequal"
        );
        let wrong_url = local(&[("m1", "http://a:1", 1), ("m3", "http://c:3", 3)]);
        let error = assign_ids(&wrong_url, "m3", &existing).unwrap_err();
        assert!(
            error.ends_with(
                "PeerURLs: no match found for existing member (8220, [http://b:2]), last \
                 resolver error (resolved urls: \"http://b:2\" != \"http://c:3\")"
            ),
            "{error}"
        );
    }

    #[test]
    fn a_members_answer_parses_and_round_trips() {
        let members = vec![RemoteMember {
            id: 836_687_825_652_893_285,
            peer_urls: vec!["http://127.0.0.1:41380".into()],
            is_learner: false,
            name: "m1".into(),
            client_urls: vec!["http://127.0.0.1:41379".into()],
        }];
        let body = serde_json::to_string(&members).unwrap();
        // etcd 3.4.23's answer for the same member.
        assert_eq!(
            body,
            r#"[{"id":836687825652893285,"peerURLs":["http://127.0.0.1:41380"],"name":"m1","clientURLs":["http://127.0.0.1:41379"]}]"#
        );
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Etcd-Cluster-Id: \
             ed87acd09d28bf36\r\n\r\n{body}\n"
        );
        let answer = crate::peer::parse_answer(response.as_bytes()).unwrap();
        let cluster = parse_members_answer(&answer).unwrap();
        assert_eq!(cluster.cluster_id, 0xed87_acd0_9d28_bf36);
        assert_eq!(cluster.members, members);
        let not_found = crate::peer::parse_answer(b"HTTP/1.1 404 Not Found\r\n\r\n").unwrap();
        assert!(parse_members_answer(&not_found).is_err());
    }
}
