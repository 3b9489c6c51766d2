//! The KV calls the Lock and Election services are built from, made as the calling user
//! through the same paths as the KV, Lease and Watch services (etcd serves those two
//! services with an in-process client that carries the caller's token). Only recipes
//! live here: every state change is a `spec` command through the log.

use oxetcd_spec::apply::{AuthInfo, Command, Response};
use oxetcd_spec::lease::LeaseId;
use oxetcd_spec::mvcc::{
    DeleteRangeRequest, DeleteRangeResponse, Event, EventKind, RangeRequest, RangeResponse,
    SortOrder, SortTarget, TxnRequest, TxnResponse, in_range,
};
use tokio::sync::broadcast;
use tonic::{Code, Status};

use super::Context;
use crate::errors;
use crate::node_loop::AppliedEvents;

/// How long a session lease lives when Lock or Campaign is called without one (etcd's
/// `concurrency.NewSession` default TTL).
pub const SESSION_TTL_SECS: i64 = 60;

/// etcd answers errors of its in-process client with code Unknown and the error's text.
pub fn unknown(status: Status) -> Status {
    if status.code() == Code::Unknown {
        return status;
    }
    Status::new(Code::Unknown, status.message().to_owned())
}

/// The end of the range of keys with `prefix` (etcd's `GetPrefixRangeEnd`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.last_mut() {
        if *last < 0xff {
            *last += 1;
            return end;
        }
        end.pop();
    }
    vec![0]
}

/// The first (`Ascend`) or last (`Descend`) key with `prefix` by create revision, at most
/// one (etcd's `WithFirstCreate` / `WithLastCreate`).
pub fn by_create(prefix: &[u8], order: SortOrder, max_create_revision: i64) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: order,
        sort_target: SortTarget::Create,
        max_create_revision,
        ..RangeRequest::default()
    }
}

/// A caller: the service context and the identity from the request's token.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The service context.
    pub ctx: Context,
    /// Who is calling.
    pub auth: Option<AuthInfo>,
}

fn unexpected() -> Status {
    Status::internal("oxetcd: applier returned a response of another kind")
}

impl Caller {
    /// The caller of `request`.
    ///
    /// # Errors
    /// An unknown token, as the KV service refuses it (code Unknown, as etcd's
    /// in-process client reports it).
    pub fn of<T>(ctx: &Context, request: &tonic::Request<T>) -> Result<Caller, Status> {
        Ok(Caller {
            ctx: ctx.clone(),
            auth: ctx.auth_info(request).map_err(unknown)?,
        })
    }

    /// A Txn through the log.
    ///
    /// # Errors
    /// etcd's error for the txn.
    pub async fn txn(&self, txn: TxnRequest) -> Result<TxnResponse, Status> {
        let applied = self
            .ctx
            .propose_as(Command::Txn(txn), self.auth.clone())
            .await?;
        match applied.result.map_err(errors::apply)? {
            Response::Txn(response) => Ok(response),
            _ => Err(unexpected()),
        }
    }

    /// A linearizable Range, permission-checked as the KV service does.
    ///
    /// # Errors
    /// etcd's error for the range.
    pub async fn get(&self, request: RangeRequest) -> Result<RangeResponse, Status> {
        self.ctx.linearizable_barrier().await?;
        let auth = self.auth.clone().unwrap_or_default();
        self.ctx.read(|state| {
            state
                .auth()
                .is_range_permitted(&auth, &request.key, &request.range_end)
                .map_err(errors::auth)?;
            state.range(&request).map_err(errors::mvcc)
        })?
    }

    /// Deletes one key.
    ///
    /// # Errors
    /// etcd's error for the delete.
    pub async fn delete(&self, key: Vec<u8>) -> Result<DeleteRangeResponse, Status> {
        let request = DeleteRangeRequest {
            key,
            ..DeleteRangeRequest::default()
        };
        let applied = self
            .ctx
            .propose_as(Command::DeleteRange(request), self.auth.clone())
            .await?;
        match applied.result.map_err(errors::apply)? {
            Response::DeleteRange(response) => Ok(response),
            _ => Err(unexpected()),
        }
    }

    /// Grants a session lease of [`SESSION_TTL_SECS`].
    ///
    /// # Errors
    /// etcd's error for the grant.
    pub async fn grant_session_lease(&self) -> Result<LeaseId, Status> {
        let id = LeaseId(i64::try_from(self.ctx.node.next_id()).unwrap_or(1));
        let command = Command::LeaseGrant {
            id,
            ttl_secs: SESSION_TTL_SECS,
        };
        let applied = self.ctx.propose_as(command, self.auth.clone()).await?;
        match applied.result.map_err(errors::apply)? {
            Response::LeaseGrant(granted) => Ok(granted.id),
            _ => Err(unexpected()),
        }
    }

    /// Waits until `key` is deleted at a revision >= `from` (etcd's `waitDelete`: a
    /// watch on the key from `from`, needing read permission on it).
    ///
    /// # Errors
    /// As [`Feed::next`].
    pub async fn wait_delete(&self, key: &[u8], from: i64) -> Result<(), Status> {
        let mut feed = Feed::new(self.clone(), key.to_vec(), Vec::new(), from);
        loop {
            let (_, events) = feed.next().await?;
            if events.iter().any(|e| e.kind == EventKind::Delete) {
                return Ok(());
            }
        }
    }

    /// Waits until every key with `prefix` created at or before `max_create_revision`
    /// is gone (etcd's `waitDeletes`); returns the header revision of the last check.
    ///
    /// # Errors
    /// As [`Caller::get`] and [`Caller::wait_delete`].
    pub async fn wait_deletes(
        &self,
        prefix: &[u8],
        max_create_revision: i64,
    ) -> Result<i64, Status> {
        loop {
            let response = self
                .get(by_create(prefix, SortOrder::Descend, max_create_revision))
                .await?;
            let Some(last) = response.kvs.first() else {
                return Ok(response.revision);
            };
            self.wait_delete(&last.key, response.revision).await?;
        }
    }
}

/// The events on a key range from a revision on, in order, each exactly once: history
/// from the applied state, then the node loop's live feed (a watch made from inside the
/// server, with the Watch service's permission check).
#[derive(Debug)]
pub struct Feed {
    caller: Caller,
    key: Vec<u8>,
    range_end: Vec<u8>,
    /// The lowest revision not yet returned.
    next: i64,
    live: broadcast::Receiver<AppliedEvents>,
    /// History must be read (at the start, and after falling behind the live feed).
    read_history: bool,
}

impl Feed {
    /// Events on `[key, range_end)` (one key when `range_end` is empty) from revision
    /// `from` on.
    pub fn new(caller: Caller, key: Vec<u8>, range_end: Vec<u8>, from: i64) -> Self {
        let live = caller.ctx.node.events.subscribe();
        Self {
            caller,
            key,
            range_end,
            next: from.max(1),
            live,
            read_history: true,
        }
    }

    /// The next non-empty batch of events, with the header revision a watch response
    /// carrying them would have.
    ///
    /// # Errors
    /// Permission errors (checked at each history read), a compacted start revision,
    /// or the server stopping.
    pub async fn next(&mut self) -> Result<(i64, Vec<Event>), Status> {
        loop {
            if self.read_history {
                self.read_history = false;
                // Read under the state lock after subscribing: nothing falls between the
                // history and the live feed.
                let auth = self.caller.auth.clone().unwrap_or_default();
                let (next, key, range_end) = (self.next, &self.key, &self.range_end);
                let (events, current) = self.caller.ctx.read(|state| {
                    state
                        .auth()
                        .is_range_permitted(&auth, key, range_end)
                        .map_err(errors::auth)?;
                    let current = state.store().current_revision();
                    if next > current {
                        return Ok((Vec::new(), current));
                    }
                    let events = state
                        .events_since(next, key, range_end)
                        .map_err(errors::mvcc)?;
                    Ok::<_, Status>((events, current))
                })??;
                self.next = self.next.max(current + 1);
                if !events.is_empty() {
                    return Ok((current, events));
                }
            }
            match self.live.recv().await {
                // The state was replaced by a leader's snapshot: read history again.
                Ok(applied) if applied.restored => self.read_history = true,
                Ok(applied) => {
                    let events: Vec<Event> = applied
                        .events
                        .iter()
                        .filter(|e| {
                            e.kv.mod_revision >= self.next
                                && in_range(&e.kv.key, &self.key, &self.range_end)
                        })
                        .cloned()
                        .collect();
                    self.next = self.next.max(applied.revision + 1);
                    if !events.is_empty() {
                        return Ok((applied.revision, events));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => self.read_history = true,
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(Status::unavailable("etcdserver: server stopped"));
                }
            }
        }
    }
}

/// Deletes a key when dropped while armed: a waiter whose client went away (the request
/// future is dropped) gives up its place, as etcd's lock and campaign do when their
/// context ends.
#[derive(Debug)]
pub struct ReleaseOnDrop {
    caller: Caller,
    key: Option<Vec<u8>>,
}

impl ReleaseOnDrop {
    /// Armed for `key`.
    pub fn new(caller: Caller, key: Vec<u8>) -> Self {
        Self {
            caller,
            key: Some(key),
        }
    }

    /// Done: keep the key.
    pub fn disarm(&mut self) {
        self.key = None;
    }
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let caller = self.caller.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = caller.delete(key).await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte_below_0xff() {
        assert_eq!(prefix_end(b"lock/"), b"lock0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }

    #[test]
    fn unknown_keeps_the_message_and_changes_the_code() {
        let status = unknown(Status::permission_denied("etcdserver: permission denied"));
        assert_eq!(status.code(), Code::Unknown);
        assert_eq!(status.message(), "etcdserver: permission denied");
    }
}
