//! Start-up: open the data dir, build the `spec` node and application state over it,
//! start the node loop and serve the client port (gRPC and HTTP on one listener, as
//! etcd does: HTTP/1.1 and h2c are told apart per connection).
//!
//! The v3 JSON gateway ([`crate::gateway`]) calls the same gRPC services in process.
//!
//! Client TLS (`https://` URLs, `--cert-file`, `--auto-tls`, ...) is served by
//! [`crate::tls`], which also builds the peer TLS configurations.
//!
//! A new cluster (`--initial-cluster-state new`) starts with every `--initial-cluster`
//! member as a voter (etcd's bootstrap: the members as committed term-1 entries at the
//! head of each member's log); the members talk over the peer transport
//! ([`crate::peer`]) on `--listen-peer-urls` (TLS for `https://` peer URLs). A lone
//! member campaigns at once (etcd's election tick advance). A member started with
//! `--initial-cluster-state existing` and an empty data dir joins the running cluster
//! ([`crate::join`]): it takes its id and the cluster id from the peers' `/members` and
//! starts with an empty log and no configuration, which the leader fills (entries or a
//! snapshot). A snapshot whose install a crash interrupted is installed at start.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ClusterState, Config, url};
use crate::node_loop::{self, LoopConfig, NodeHandle};
use crate::storage::backend::FjallBackend;
use crate::storage::raft_log::FjallRaftStorage;
use crate::storage::{DataDir, Identity};
use crate::v3::{Context, auth, cluster, election, health, kv, lease, lock, maintenance, watch};
use crate::version::ETCD_CAPABILITY_VERSION;
use crate::{join, tls};
use oxetcd_api::etcdserverpb as pb;
use oxetcd_api::{v3electionpb, v3lockpb};
use oxetcd_spec::apply::{AppConfig, AppState};
use oxetcd_spec::membership;
use oxetcd_spec::raft::{ConfState, LogIndex, Node, NodeId};

/// gRPC allows this much over `--max-request-bytes` for framing (etcd's
/// `grpcOverheadBytes`), so the size check with etcd's error runs in the handler.
pub(crate) const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// A running server.
#[derive(Debug)]
pub struct Server {
    /// The node loop handle.
    pub node: NodeHandle,
    /// Bound client addresses, in `--listen-client-urls` order.
    pub client_addrs: Vec<SocketAddr>,
    /// The node loop task: ends with an error message on a fatal storage error.
    pub node_task: tokio::task::JoinHandle<Result<(), String>>,
}

/// The member id of a member with `peer_urls` in the cluster of `token`: etcd's SHA-1
/// derivation from `spec` (every member computes the same ids from `--initial-cluster`).
pub fn member_id(peer_urls: &[url::Url], token: &str) -> u64 {
    let urls: Vec<String> = peer_urls.iter().map(ToString::to_string).collect();
    membership::member_id(&urls, token, None).0
}

/// The cluster id etcd derives from the ids of the `--initial-cluster` members.
pub fn cluster_id<'a>(
    initial_cluster: impl IntoIterator<Item = &'a [url::Url]>,
    token: &str,
) -> u64 {
    let ids: Vec<membership::MemberId> = initial_cluster
        .into_iter()
        .map(|urls| membership::MemberId(member_id(urls, token)))
        .collect();
    membership::cluster_id(&ids).0
}

/// Starts everything and returns once the client port is listening.
///
/// # Errors
/// A message for the operator: storage, identity, bind or unsupported configuration.
pub async fn start(config: Config) -> anyhow::Result<Server> {
    // Listeners are bound (and the TLS flags checked) before the data dir is touched.
    let client_tls = &config.client_tls;
    let tls = tls::server_config(
        tls::Side::Client,
        client_tls,
        &config.data_dir,
        &config.listen_client_urls,
        &config.cipher_suites,
    )?;
    let listeners = tls::bind_all(
        tls::Side::Client,
        &config.listen_client_urls,
        tls.as_ref(),
        client_tls.client_cert_auth,
    )
    .await?;
    tls::warn_cipher_suites(&config.cipher_suites);
    let peer_tls = tls::peer_tls(&config)?;
    let mut peer_listeners = Vec::new();
    for listen in &config.listen_peer_urls {
        let address = listen.socket_address();
        let acceptor =
            tls::peer_acceptor(listen, peer_tls.as_ref(), config.peer_tls.client_cert_auth)?;
        peer_listeners.push((
            tokio::net::TcpListener::bind(&address)
                .await
                .map_err(|error| anyhow::anyhow!("listen tcp {address}: {error}"))?,
            acceptor,
        ));
    }
    for (flag, value) in &config.accepted_only {
        tracing::warn!(
            "--{flag}={value} is accepted for compatibility and has no effect in oxetcd"
        );
    }
    let data = DataDir::open_with_wal(&config.data_dir, config.wal_dir.as_deref())?;
    let peer_client: crate::peer::DialTls = peer_tls.and_then(|tls| tls.client);
    let (identity, joined) = identify(&config, &data, &peer_client).await?;
    // A new cluster's members start from `--initial-cluster` (bootstrapped below); a
    // joining member starts with an empty log and no configuration (see `crate::join`).
    // A data dir that holds a log keeps it whatever the flags say.
    let initial_conf = match config.initial_cluster_state {
        ClusterState::New => ConfState::with_voters(
            config
                .initial_cluster
                .iter()
                .map(|(_, urls)| member_id(urls, &config.initial_cluster_token)),
        ),
        ClusterState::Existing => ConfState::default(),
    };
    let mut raft_storage = FjallRaftStorage::open(data.clone(), initial_conf)?;
    crate::snapshot::check_compaction_file(
        &data.snap_dir(),
        raft_storage.snapshot_data(),
        raft_storage.snapshot_metadata().index.0,
    )
    .map_err(|error| anyhow::anyhow!(error))?;
    let backend = FjallBackend::open(data.clone())?;
    let app_config = AppConfig {
        min_lease_ttl_secs: oxetcd_spec::lease::min_lease_ttl_secs(
            config.heartbeat_interval_ms,
            config.election_timeout_ms,
        ),
        ..AppConfig::default()
    };
    let mut state = AppState::open(backend, app_config)
        .map_err(|error| anyhow::anyhow!("data dir {}: {error}", data.path().display()))?;
    let fresh = raft_storage.snapshot_metadata().index == LogIndex(0)
        && *raft_storage.hard_state() == oxetcd_spec::raft::HardState::default()
        && state.applied_index() == 0;
    if fresh && config.initial_cluster_state == ClusterState::New {
        // etcd's bootstrap of a new cluster: the members as committed term-1 entries.
        oxetcd_spec::raft::storage::bootstrap(
            &mut raft_storage,
            &cluster::bootstrap_entries(&config),
        )?;
        data.sync()?;
    }
    // The Raft snapshot is recorded before the state it covers is installed: a member
    // stopped in between installs it now (see `crate::snapshot::install`).
    let snapshot_index = raft_storage.snapshot_metadata().index.0;
    if state.applied_index() < snapshot_index {
        tracing::info!(
            "etcdserver: installing the snapshot at index {snapshot_index} received from the \
             leader before this member stopped (applied index {})",
            state.applied_index()
        );
        crate::snapshot::install(
            &mut state,
            &data.snap_dir(),
            raft_storage.snapshot_data(),
            snapshot_index,
        )
        .map_err(|error| anyhow::anyhow!(error))?;
    }
    let mut raft_config = oxetcd_spec::raft::Config::new(NodeId(identity.member_id));
    raft_config.election_tick = raft_config_election_tick(&config);
    raft_config.heartbeat_tick = 1;
    raft_config.applied = LogIndex(state.applied_index());
    tracing::info!(
        "etcdserver: starting member {:x} in cluster {:x} (applied index {}, data dir {})",
        identity.member_id,
        identity.cluster_id,
        state.applied_index(),
        config.data_dir.display()
    );
    let bcrypt_cost = if (4..=31).contains(&config.bcrypt_cost) {
        config.bcrypt_cost
    } else {
        tracing::warn!(
            "auth: Use default bcrypt-cost {} instead of the invalid value {}",
            crate::token::DEFAULT_BCRYPT_COST,
            config.bcrypt_cost
        );
        crate::token::DEFAULT_BCRYPT_COST
    };
    let tokens = Arc::new(
        crate::token::Tokens::from_flag(&config.auth_token, config.auth_token_ttl, bcrypt_cost)
            .map_err(|error| anyhow::anyhow!("--auth-token: {error}"))?,
    );
    let node = Node::new(raft_config, raft_storage)?;
    let lone_voter = node.conf_state().voters.len() == 1
        && node
            .conf_state()
            .voters
            .contains(&NodeId(identity.member_id));
    let transport = crate::peer::Transport::with_tls(
        identity.member_id,
        identity.cluster_id,
        data.snap_dir(),
        peer_client.clone(),
    );
    for (id, urls) in initial_peers(&config, &state, joined.as_ref(), &peer_client).await {
        transport.set_peer(id, urls);
    }
    let election_ticks = u64::from(raft_config_election_tick(&config)).max(1);
    let (handle, node_task) = node_loop::start(
        node,
        state,
        identity.member_id,
        identity.cluster_id,
        LoopConfig {
            tick: Duration::from_millis(config.heartbeat_interval_ms),
            snapshot_count: config.snapshot_count,
            campaign_at_start: lone_voter,
            tokens: tokens.clone(),
            election_ticks,
        },
        Some(transport),
    );

    let config = Arc::new(config);
    let ctx = Context {
        node: handle.clone(),
        max_request_bytes: usize::try_from(config.max_request_bytes).unwrap_or(usize::MAX),
        max_txn_ops: usize::try_from(config.max_txn_ops).unwrap_or(usize::MAX),
        config: config.clone(),
        tokens,
    };
    crate::v3::maintenance::start_background(&ctx, &data);
    // The corruption checks ask the peers over their peer URLs (etcd's request
    // timeout per URL); a member starting on a fresh data dir skips the initial one.
    let request_timeout = Duration::from_millis(5_000 + 2 * config.election_timeout_ms);
    let peer_hashes: Arc<dyn crate::corruption::PeerHashes> = match &handle.transport {
        Some(transport) => Arc::new(crate::corruption::PeerClient::new(
            transport.clone(),
            request_timeout,
        )),
        None => Arc::new(crate::corruption::NoPeers),
    };
    if config.experimental_initial_corrupt_check && !fresh {
        crate::corruption::initial_check(&handle, peer_hashes.as_ref(), request_timeout).await?;
    }
    if !config.experimental_corrupt_check_time.is_zero() {
        crate::corruption::spawn_periodic(
            handle.clone(),
            peer_hashes,
            config.experimental_corrupt_check_time,
            request_timeout,
        );
    }
    crate::v3::cluster::start_publish(&ctx).await;
    let router = client_router(&ctx, &data)?;
    let mut client_addrs = Vec::new();
    let mut serving = Vec::new();
    for listener in listeners {
        client_addrs.push(listener.listening.addr);
        serving.push(listener.listening);
        let service = router
            .clone()
            .into_make_service_with_connect_info::<tls::ClientAddr>();
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, service).await {
                tracing::error!("client listener stopped: {error}");
            }
        });
    }
    for (listener, acceptor) in peer_listeners {
        // The peer port carries the Raft streams and answers HTTP (/version, lease
        // forwarding) on the same listener.
        let peer_router = crate::http::router(crate::http::HttpState {
            node: handle.clone(),
            data_dir: data.clone(),
            quota_bytes: config.quota_bytes(),
        })
        .merge(crate::peer::router(handle.clone()))
        .merge(crate::v3::lease::peer_router(handle.clone()));
        tokio::spawn(crate::peer::serve(
            listener,
            handle.clone(),
            peer_router,
            acceptor,
        ));
    }
    announce(&config, &handle, &serving).await;
    Ok(Server {
        node: handle,
        client_addrs,
        node_task,
    })
}

/// Time each peer URL has to answer `/members` when joining (etcd's per-request
/// timeout) and when checking whether a new member was bootstrapped before.
const MEMBERS_TIMEOUT: Duration = Duration::from_secs(1);

/// Who this member is: the data dir's stored identity, or for a new data dir, the ids
/// `--initial-cluster` gives (`new`) or the running cluster gives (`existing`, with the
/// cluster it described).
///
/// # Errors
/// etcd's texts: "cannot fetch cluster info from peer urls: ...", "error validating
/// peerURLs ...", "member ... has already been bootstrapped"; a data dir of another
/// member.
async fn identify(
    config: &Config,
    data: &DataDir,
    peer_client: &crate::peer::DialTls,
) -> anyhow::Result<(Identity, Option<join::RemoteCluster>)> {
    let token = &config.initial_cluster_token;
    if let Some(stored) = data.identity()? {
        let wanted = Identity {
            name: config.name.clone(),
            cluster_token: token.clone(),
            ..stored.clone()
        };
        return Ok((data.claim(&wanted)?, None));
    }
    let (identity, joined) = match config.initial_cluster_state {
        ClusterState::Existing => {
            let remote = join::fetch_cluster(
                &join::remote_peer_urls(config),
                peer_client,
                MEMBERS_TIMEOUT,
                true,
            )
            .await
            .map_err(|error| {
                anyhow::anyhow!("cannot fetch cluster info from peer urls: {error}")
            })?;
            let local: Vec<(String, Vec<String>, u64)> = config
                .initial_cluster
                .iter()
                .map(|(name, urls)| {
                    let texts = urls.iter().map(ToString::to_string).collect();
                    (name.clone(), texts, member_id(urls, token))
                })
                .collect();
            let id =
                join::assign_ids(&local, &config.name, &remote).map_err(|e| anyhow::anyhow!(e))?;
            tracing::info!(
                "etcdserver: joining cluster {:x} as member {id:x}",
                remote.cluster_id
            );
            let identity = Identity {
                name: config.name.clone(),
                cluster_token: token.clone(),
                member_id: id,
                cluster_id: remote.cluster_id,
            };
            (identity, Some(remote))
        }
        ClusterState::New => {
            let member = member_id(&config.initial_advertise_peer_urls, token);
            if join::already_bootstrapped(config, peer_client, member, MEMBERS_TIMEOUT).await {
                anyhow::bail!("member {member:x} has already been bootstrapped");
            }
            let cluster = cluster_id(
                config
                    .initial_cluster
                    .iter()
                    .map(|(_, urls)| urls.as_slice()),
                token,
            );
            let identity = Identity {
                name: config.name.clone(),
                cluster_token: token.clone(),
                member_id: member,
                cluster_id: cluster,
            };
            (identity, None)
        }
    };
    Ok((data.claim(&identity)?, joined))
}

/// The peers the transport starts with: the applied membership when there is one,
/// else the running cluster a joining member was told about (asked again after a
/// restart that came before the first entries), else `--initial-cluster`.
async fn initial_peers(
    config: &Config,
    state: &AppState<FjallBackend>,
    joined: Option<&join::RemoteCluster>,
    peer_client: &crate::peer::DialTls,
) -> Vec<(u64, Vec<url::Url>)> {
    let parse = |urls: &[String]| -> Vec<url::Url> {
        urls.iter()
            .filter_map(|url| url::Url::parse(url).ok())
            .collect()
    };
    let applied: Vec<(u64, Vec<url::Url>)> = state
        .cluster()
        .members()
        .map(|m| (m.id.0, parse(&m.peer_urls)))
        .collect();
    if !applied.is_empty() {
        return applied;
    }
    let fetched = match (joined, config.initial_cluster_state) {
        (Some(remote), _) => Some(remote.clone()),
        (None, ClusterState::Existing) => join::fetch_cluster(
            &join::remote_peer_urls(config),
            peer_client,
            MEMBERS_TIMEOUT,
            true,
        )
        .await
        .ok(),
        (None, ClusterState::New) => None,
    };
    match fetched {
        Some(remote) => remote
            .members
            .iter()
            .map(|m| (m.id, parse(&m.peer_urls)))
            .collect(),
        None => config
            .initial_cluster
            .iter()
            .map(|(_, urls)| (member_id(urls, &config.initial_cluster_token), urls.clone()))
            .collect(),
    }
}

/// Election timeout in ticks: `--election-timeout` over `--heartbeat-interval`.
fn raft_config_election_tick(config: &Config) -> u32 {
    u32::try_from(config.election_timeout_ms / config.heartbeat_interval_ms.max(1)).unwrap_or(10)
}

fn client_router(ctx: &Context, data: &DataDir) -> anyhow::Result<axum::Router> {
    let limit = ctx.max_request_bytes.saturating_add(GRPC_OVERHEAD_BYTES);
    let grpc = tonic::service::Routes::new(
        pb::kv_server::KvServer::new(kv::KvService(ctx.clone())).max_decoding_message_size(limit),
    )
    .add_service(
        pb::watch_server::WatchServer::new(watch::WatchService(ctx.clone()))
            .max_decoding_message_size(limit),
    )
    .add_service(
        pb::lease_server::LeaseServer::new(lease::LeaseService(ctx.clone()))
            .max_decoding_message_size(limit),
    )
    .add_service(
        pb::auth_server::AuthServer::new(auth::AuthService(ctx.clone()))
            .max_decoding_message_size(limit),
    )
    .add_service(
        v3lockpb::lock_server::LockServer::new(lock::LockService(ctx.clone()))
            .max_decoding_message_size(limit),
    )
    .add_service(
        v3electionpb::election_server::ElectionServer::new(election::ElectionService(ctx.clone()))
            .max_decoding_message_size(limit),
    )
    .add_service(
        pb::cluster_server::ClusterServer::new(cluster::ClusterService(ctx.clone()))
            .max_decoding_message_size(limit),
    )
    .add_service(
        pb::maintenance_server::MaintenanceServer::new(maintenance::MaintenanceService {
            ctx: ctx.clone(),
            data_dir: data.clone(),
        })
        .max_decoding_message_size(limit),
    )
    .add_service(
        oxetcd_api::grpc_health_v1::health_server::HealthServer::new(health::HealthService),
    );
    let grpc = grpc.into_axum_router();
    let gateway = crate::gateway::router(grpc.clone(), limit)?;
    Ok(grpc
        .merge(gateway)
        .merge(crate::http::router(crate::http::HttpState {
            node: ctx.node.clone(),
            data_dir: data.clone(),
            quota_bytes: ctx.config.quota_bytes(),
        }))
        .merge(crate::v2::router(ctx))
        .layer(axum::middleware::from_fn(crate::http::count_grpc))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(crate::http::Cors::new(&ctx.config.cors)),
            crate::http::cors,
        )))
}

/// Logs etcd's start-up lines once a leader is known (bounded wait), so scripts that
/// wait for them keep working.
async fn announce(config: &Config, node: &NodeHandle, serving: &[tls::Listening]) {
    for _ in 0..100 {
        if node.has_leader() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(config.heartbeat_interval_ms)).await;
    }
    tracing::info!("etcdserver: set the initial cluster version to {ETCD_CAPABILITY_VERSION}");
    tracing::info!("etcdserver/api: enabled capabilities for version {ETCD_CAPABILITY_VERSION}");
    tracing::info!(
        "etcdserver: published {{Name:{} ClientURLs:[{}]}} to cluster {:x}",
        config.name,
        url::join(&config.advertise_client_urls).replace(',', " "),
        node.cluster_id
    );
    tracing::info!("embed: ready to serve client requests");
    for listening in serving {
        let addr = listening.addr;
        if listening.plain {
            tracing::info!(
                "embed: serving insecure client requests on {addr}, this is strongly discouraged!"
            );
        }
        if listening.tls {
            tracing::info!("embed: serving client requests on {addr}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_and_cluster_ids_match_etcd_for_its_default_flags() {
        // etcd 3.4 with no flags: peer URL http://localhost:2380, token etcd-cluster.
        let peers = url::Url::parse_list("http://localhost:2380").unwrap();
        assert_eq!(member_id(&peers, "etcd-cluster"), 0x8e9e_05c5_2164_694d);
        assert_eq!(
            cluster_id([peers.as_slice()], "etcd-cluster"),
            0xcdf8_1819_4e3a_8c32
        );
    }
}
