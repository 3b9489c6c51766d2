//! A minimal etcd v3 client over `oxetcd-api` that executes history [`Request`]s and
//! classifies each outcome as a response, a definite failure or unknown.

use std::time::Duration;

use oxetcd_api::etcdserverpb::{
    Compare, DeleteRangeRequest, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest,
    PutRequest, RangeRequest, RequestOp, ResponseOp, TxnRequest, WatchCreateRequest, WatchRequest,
    compare, kv_client::KvClient, lease_client::LeaseClient, request_op, response_op,
    watch_client::WatchClient, watch_request,
};
use oxetcd_api::mvccpb;
use tonic::transport::{Channel, Endpoint};

use super::history::{Cond, Kv, KvOp, KvResult, Request, Response, WatchEvent};

/// How a request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A response.
    Done(Response),
    /// Definitely not applied (for example: the connection could not be made).
    Failed(String),
    /// May or may not have been applied (timeout, connection lost, server error).
    Unknown(String),
}

/// Clients of one endpoint.
#[derive(Clone, Debug)]
pub struct EtcdClient {
    kv: KvClient<Channel>,
    lease: LeaseClient<Channel>,
    channel: Channel,
    timeout: Duration,
}

/// The end of the key range that covers every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn range_of(key: &str, prefix: bool) -> (Vec<u8>, Vec<u8>) {
    let k = key.as_bytes().to_vec();
    let end = if prefix { prefix_end(&k) } else { Vec::new() };
    (k, end)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn kv_of(kv: &mvccpb::KeyValue) -> Kv {
    Kv {
        key: text(&kv.key),
        value: text(&kv.value),
        create_rev: kv.create_revision,
        mod_rev: kv.mod_revision,
        version: kv.version,
        lease: kv.lease,
    }
}

fn request_op(op: &KvOp) -> RequestOp {
    let request = match op {
        KvOp::Range { key, prefix } => {
            let (key, range_end) = range_of(key, *prefix);
            request_op::Request::RequestRange(RangeRequest {
                key,
                range_end,
                ..RangeRequest::default()
            })
        }
        KvOp::Put { key, value, lease } => request_op::Request::RequestPut(PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            lease: lease.unwrap_or(0),
            ..PutRequest::default()
        }),
        KvOp::Delete { key, prefix } => {
            let (key, range_end) = range_of(key, *prefix);
            request_op::Request::RequestDeleteRange(DeleteRangeRequest {
                key,
                range_end,
                prev_kv: false,
            })
        }
    };
    RequestOp {
        request: Some(request),
    }
}

fn compare_of(c: &Cond) -> Compare {
    let (key, target, union) = match c {
        Cond::Version(k, v) => (
            k,
            compare::CompareTarget::Version,
            compare::TargetUnion::Version(*v),
        ),
        Cond::ModRev(k, v) => (
            k,
            compare::CompareTarget::Mod,
            compare::TargetUnion::ModRevision(*v),
        ),
    };
    Compare {
        result: compare::CompareResult::Equal as i32,
        target: target as i32,
        key: key.as_bytes().to_vec(),
        range_end: Vec::new(),
        target_union: Some(union),
    }
}

fn result_of(r: &ResponseOp) -> Option<KvResult> {
    match r.response.as_ref()? {
        response_op::Response::ResponseRange(rr) => {
            Some(KvResult::Range(rr.kvs.iter().map(kv_of).collect()))
        }
        response_op::Response::ResponsePut(_) => Some(KvResult::Put),
        response_op::Response::ResponseDeleteRange(d) => Some(KvResult::Delete(d.deleted)),
        response_op::Response::ResponseTxn(_) => None,
    }
}

/// Whether the error shows the request never reached a server.
fn not_sent(status: &tonic::Status) -> bool {
    let msg = format!("{status:?}").to_lowercase();
    status.code() == tonic::Code::Unavailable
        && (msg.contains("connection refused")
            || msg.contains("tcp connect error")
            || msg.contains("connect error"))
}

fn lease_missing(status: &tonic::Status) -> bool {
    status.message().contains("requested lease not found")
}

impl EtcdClient {
    /// A client of `url` (`http://host:port`); connects lazily.
    pub fn new(url: &str, timeout: Duration) -> Result<EtcdClient, String> {
        let channel = Endpoint::from_shared(url.to_owned())
            .map_err(|e| format!("bad endpoint {url}: {e}"))?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(EtcdClient {
            kv: KvClient::new(channel.clone()),
            lease: LeaseClient::new(channel.clone()),
            channel,
            timeout,
        })
    }

    /// The underlying channel.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Executes `req`.
    pub async fn execute(&mut self, req: &Request) -> Outcome {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.execute_inner(req)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Unknown("client timeout".to_owned()),
        }
    }

    async fn execute_inner(&mut self, req: &Request) -> Outcome {
        let write = req.is_write();
        let classify = |status: tonic::Status| -> Outcome {
            if lease_missing(&status) {
                Outcome::Done(Response::LeaseNotFound)
            } else if !write || not_sent(&status) {
                Outcome::Failed(format!("{}: {}", status.code(), status.message()))
            } else {
                Outcome::Unknown(format!("{}: {}", status.code(), status.message()))
            }
        };
        match req {
            Request::SerializableGet { key } => {
                let r = RangeRequest {
                    key: key.as_bytes().to_vec(),
                    serializable: true,
                    ..RangeRequest::default()
                };
                match self.kv.range(r).await {
                    Ok(resp) => {
                        let resp = resp.into_inner();
                        Outcome::Done(Response::Txn {
                            succeeded: true,
                            revision: resp.header.map_or(0, |h| h.revision),
                            results: vec![KvResult::Range(resp.kvs.iter().map(kv_of).collect())],
                        })
                    }
                    Err(s) => classify(s),
                }
            }
            Request::Txn { conds, then, els }
                if conds.is_empty() && els.is_empty() && then.len() == 1 =>
            {
                self.single(&then[0]).await.unwrap_or_else(classify)
            }
            Request::Txn { conds, then, els } => {
                let t = TxnRequest {
                    compare: conds.iter().map(compare_of).collect(),
                    success: then.iter().map(request_op).collect(),
                    failure: els.iter().map(request_op).collect(),
                };
                match self.kv.txn(t).await {
                    Ok(resp) => {
                        let resp = resp.into_inner();
                        let results: Option<Vec<KvResult>> =
                            resp.responses.iter().map(result_of).collect();
                        match results {
                            Some(results) => Outcome::Done(Response::Txn {
                                succeeded: resp.succeeded,
                                revision: resp.header.map_or(0, |h| h.revision),
                                results,
                            }),
                            None => Outcome::Unknown("malformed txn response".to_owned()),
                        }
                    }
                    Err(s) => classify(s),
                }
            }
            Request::LeaseGrant { id, ttl } => match self
                .lease
                .lease_grant(LeaseGrantRequest { ttl: *ttl, id: *id })
                .await
            {
                Ok(r) if r.get_ref().error.is_empty() => Outcome::Done(Response::LeaseOk),
                Ok(r) => Outcome::Unknown(r.into_inner().error),
                Err(s) => classify(s),
            },
            Request::LeaseRevoke { id } => match self
                .lease
                .lease_revoke(LeaseRevokeRequest { id: *id })
                .await
            {
                Ok(_) => Outcome::Done(Response::LeaseOk),
                Err(s) => classify(s),
            },
            Request::LeaseKeepAlive { id } => {
                let out = futures::stream::iter(vec![LeaseKeepAliveRequest { id: *id }]);
                match self.lease.lease_keep_alive(out).await {
                    Ok(stream) => match stream.into_inner().message().await {
                        Ok(Some(r)) if r.ttl > 0 => Outcome::Done(Response::LeaseOk),
                        Ok(Some(_)) => Outcome::Done(Response::LeaseNotFound),
                        Ok(None) => Outcome::Failed("keep-alive stream closed".to_owned()),
                        Err(s) => classify(s),
                    },
                    Err(s) => classify(s),
                }
            }
            Request::LeaseExpire { .. } => Outcome::Failed("expiry is not a request".to_owned()),
        }
    }

    async fn single(&mut self, op: &KvOp) -> Result<Outcome, tonic::Status> {
        let (revision, result) = match op {
            KvOp::Range { key, prefix } => {
                let (key, range_end) = range_of(key, *prefix);
                let r = self
                    .kv
                    .range(RangeRequest {
                        key,
                        range_end,
                        ..RangeRequest::default()
                    })
                    .await?
                    .into_inner();
                (
                    r.header.map_or(0, |h| h.revision),
                    KvResult::Range(r.kvs.iter().map(kv_of).collect()),
                )
            }
            KvOp::Put { key, value, lease } => {
                let r = self
                    .kv
                    .put(PutRequest {
                        key: key.as_bytes().to_vec(),
                        value: value.as_bytes().to_vec(),
                        lease: lease.unwrap_or(0),
                        ..PutRequest::default()
                    })
                    .await?
                    .into_inner();
                (r.header.map_or(0, |h| h.revision), KvResult::Put)
            }
            KvOp::Delete { key, prefix } => {
                let (key, range_end) = range_of(key, *prefix);
                let r = self
                    .kv
                    .delete_range(DeleteRangeRequest {
                        key,
                        range_end,
                        prev_kv: false,
                    })
                    .await?
                    .into_inner();
                (
                    r.header.map_or(0, |h| h.revision),
                    KvResult::Delete(r.deleted),
                )
            }
        };
        Ok(Outcome::Done(Response::Txn {
            succeeded: true,
            revision,
            results: vec![result],
        }))
    }

    /// The current revision (a linearizable Range of `key`).
    pub async fn revision(&mut self, key: &str) -> Result<i64, String> {
        let fut = self.kv.range(RangeRequest {
            key: key.as_bytes().to_vec(),
            ..RangeRequest::default()
        });
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(r)) => Ok(r.into_inner().header.map_or(0, |h| h.revision)),
            Ok(Err(s)) => Err(format!("{}: {}", s.code(), s.message())),
            Err(_) => Err("timeout".to_owned()),
        }
    }

    /// Every key under `prefix` (linearizable).
    pub async fn range_prefix(&mut self, prefix: &str) -> Result<(i64, Vec<Kv>), String> {
        let (key, range_end) = range_of(prefix, true);
        let fut = self.kv.range(RangeRequest {
            key,
            range_end,
            ..RangeRequest::default()
        });
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(r)) => {
                let r = r.into_inner();
                Ok((
                    r.header.map_or(0, |h| h.revision),
                    r.kvs.iter().map(kv_of).collect(),
                ))
            }
            Ok(Err(s)) => Err(format!("{}: {}", s.code(), s.message())),
            Err(_) => Err("timeout".to_owned()),
        }
    }
}

/// Watches `prefix` from `start_revision` over `channel`, appending events to `sink`,
/// until the stream breaks (returns the error) or `stop` says so. Returns `Ok` when
/// stopped.
pub async fn watch_once(
    channel: Channel,
    prefix: &str,
    start_revision: i64,
    sink: &mut Vec<WatchEvent>,
    mut stop: impl FnMut(&[WatchEvent]) -> bool,
    deadline: tokio::time::Instant,
) -> Result<(), String> {
    let mut client = WatchClient::new(channel);
    let (key, range_end) = range_of(prefix, true);
    let create = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key,
                range_end,
                start_revision,
                ..WatchCreateRequest::default()
            },
        )),
    };
    // Keep the request stream open: a closed request stream ends the watch.
    let (tx, rx) = tokio::sync::mpsc::channel::<WatchRequest>(1);
    tx.send(create)
        .await
        .map_err(|_| "watch request channel closed".to_owned())?;
    let requests =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    let mut stream = match tokio::time::timeout_at(deadline, client.watch(requests)).await {
        Ok(Ok(s)) => s.into_inner(),
        Ok(Err(s)) => return Err(format!("{}: {}", s.code(), s.message())),
        Err(_) => return Err("watch timeout".to_owned()),
    };
    loop {
        if stop(sink) {
            return Ok(());
        }
        let msg = match tokio::time::timeout_at(
            deadline.min(tokio::time::Instant::now() + Duration::from_millis(200)),
            stream.message(),
        )
        .await
        {
            Err(_) if tokio::time::Instant::now() >= deadline => {
                return Err("watch deadline".to_owned());
            }
            Err(_) => continue,
            Ok(Err(s)) => return Err(format!("{}: {}", s.code(), s.message())),
            Ok(Ok(None)) => return Err("watch stream ended".to_owned()),
            Ok(Ok(Some(m))) => m,
        };
        if msg.canceled {
            return Err(format!(
                "watch canceled: {} (compact revision {})",
                msg.cancel_reason, msg.compact_revision
            ));
        }
        for e in &msg.events {
            let Some(kv) = &e.kv else { continue };
            let value = if e.r#type == mvccpb::event::EventType::Delete as i32 {
                None
            } else {
                Some(text(&kv.value))
            };
            sink.push(WatchEvent {
                revision: kv.mod_revision,
                key: text(&kv.key),
                value,
            });
        }
    }
}
