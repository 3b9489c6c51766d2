//! `etcdserverpb.Watch`: one bidirectional stream carries many watchers.
//!
//! Each stream subscribes to the node loop's applied events when it opens. A watcher
//! remembers the next revision it still needs (`next_revision`): history (from
//! `AppState::events_since`, read under the state lock) covers everything up to the
//! current revision, and live events below `next_revision` are skipped, so every
//! revision reaches a watcher exactly once and in order. A stream that falls behind the
//! live feed catches each watcher up from history the same way (or cancels it with the
//! compacted revision, as etcd does when history is gone).

use std::collections::BTreeMap;
use std::pin::Pin;

use futures::Stream;
use oxetcd_api::etcdserverpb as pb;
use oxetcd_spec::mvcc::{Event, EventKind, MvccError};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::StreamExt;
use tonic::{Request, Status, Streaming};

use super::{Context, convert};
use crate::node_loop::AppliedEvents;

/// The Watch service.
#[derive(Clone, Debug)]
pub struct WatchService(pub Context);

/// Bound on responses queued for one stream.
const RESPONSE_QUEUE: usize = 256;

/// One watcher of a stream.
#[derive(Debug)]
struct Watcher {
    key: Vec<u8>,
    range_end: Vec<u8>,
    prev_kv: bool,
    no_put: bool,
    no_delete: bool,
    /// The lowest revision not yet delivered.
    next_revision: i64,
}

impl Watcher {
    fn wants(&self, event: &Event) -> bool {
        event.kv.mod_revision >= self.next_revision
            && oxetcd_spec::mvcc::in_range(&event.kv.key, &self.key, &self.range_end)
            && !(self.no_put && event.kind == EventKind::Put)
            && !(self.no_delete && event.kind == EventKind::Delete)
    }
}

struct WatchStream {
    ctx: Context,
    watchers: BTreeMap<i64, Watcher>,
    next_auto_id: i64,
    out: mpsc::Sender<Result<pb::WatchResponse, Status>>,
    /// The auth token the stream was opened with (checked at each create).
    token: Option<String>,
}

#[tonic::async_trait]
impl pb::watch_server::Watch for WatchService {
    type WatchStream =
        Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send + 'static>>;

    async fn watch(
        &self,
        request: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<tonic::Response<Self::WatchStream>, Status> {
        let token = super::request_token(request.metadata());
        let incoming = request.into_inner();
        let (out, receiver) = mpsc::channel(RESPONSE_QUEUE);
        let live = self.0.node.events.subscribe();
        let stream = WatchStream {
            ctx: self.0.clone(),
            watchers: BTreeMap::new(),
            next_auto_id: 0,
            out,
            token,
        };
        tokio::spawn(stream.run(incoming, live));
        Ok(tonic::Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }
}

impl WatchStream {
    async fn run(
        mut self,
        mut incoming: Streaming<pb::WatchRequest>,
        mut live: broadcast::Receiver<AppliedEvents>,
    ) {
        loop {
            let keep_going = tokio::select! {
                request = incoming.next() => match request {
                    Some(Ok(request)) => self.on_request(request).await,
                    _ => false,
                },
                applied = live.recv() => match applied {
                    Ok(applied) => self.on_live(&applied).await,
                    Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up().await,
                    Err(broadcast::error::RecvError::Closed) => false,
                },
            };
            if !keep_going {
                return;
            }
        }
    }

    async fn send(&self, response: pb::WatchResponse) -> bool {
        self.out.send(Ok(response)).await.is_ok()
    }

    fn current_revision(&self) -> i64 {
        self.ctx
            .read(|state| state.store().current_revision())
            .unwrap_or(0)
    }

    async fn on_request(&mut self, request: pb::WatchRequest) -> bool {
        use pb::watch_request::RequestUnion;
        match request.request_union {
            Some(RequestUnion::CreateRequest(create)) => self.create(create).await,
            Some(RequestUnion::CancelRequest(cancel)) => {
                if self.watchers.remove(&cancel.watch_id).is_none() {
                    return true;
                }
                let header = self.ctx.header().at(self.current_revision());
                self.send(pb::WatchResponse {
                    header,
                    watch_id: cancel.watch_id,
                    canceled: true,
                    ..Default::default()
                })
                .await
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                let header = self.ctx.header().at(self.current_revision());
                self.send(pb::WatchResponse {
                    header,
                    watch_id: -1,
                    ..Default::default()
                })
                .await
            }
            None => true,
        }
    }

    /// etcd's `isWatchPermitted`: why the stream's user may not watch the range, as
    /// etcd 3.4.23 words the cancel reason (the gRPC status text), or `None`.
    fn watch_refusal(&self, create: &pb::WatchCreateRequest) -> Option<String> {
        let status = match self.ctx.token_info(self.token.as_deref()) {
            Ok(info) => {
                let info = info.unwrap_or_default();
                let checked = self.ctx.read(|state| {
                    state
                        .auth()
                        .is_range_permitted(&info, &create.key, &create.range_end)
                });
                crate::errors::auth(checked.ok()?.err()?)
            }
            Err(status) => status,
        };
        Some(format!(
            "rpc error: code = {:?} desc = {}",
            status.code(),
            status.message()
        ))
    }

    async fn create(&mut self, create: pb::WatchCreateRequest) -> bool {
        if let Some(cancel_reason) = self.watch_refusal(&create) {
            let header = self.ctx.header().at(self.current_revision());
            return self
                .send(pb::WatchResponse {
                    header,
                    watch_id: -1,
                    created: true,
                    canceled: true,
                    cancel_reason,
                    ..Default::default()
                })
                .await;
        }
        let id = if create.watch_id != 0 {
            create.watch_id
        } else {
            while self.watchers.contains_key(&self.next_auto_id) {
                self.next_auto_id += 1;
            }
            self.next_auto_id
        };
        let filters = &create.filters;
        let no_put = filters.contains(&(pb::watch_create_request::FilterType::Noput as i32));
        let no_delete = filters.contains(&(pb::watch_create_request::FilterType::Nodelete as i32));
        let mut watcher = Watcher {
            key: create.key,
            range_end: create.range_end,
            prev_kv: create.prev_kv,
            no_put,
            no_delete,
            next_revision: 0,
        };
        if self.watchers.contains_key(&id) {
            // etcd refuses a duplicate explicit id with a canceled create response.
            let header = self.ctx.header().at(self.current_revision());
            return self
                .send(pb::WatchResponse {
                    header,
                    watch_id: id,
                    created: true,
                    canceled: true,
                    ..Default::default()
                })
                .await;
        }
        let history = self.ctx.read(|state| {
            let current = state.store().current_revision();
            if create.start_revision <= 0 || create.start_revision > current {
                let start = if create.start_revision <= 0 {
                    current + 1
                } else {
                    create.start_revision
                };
                return (
                    current,
                    Ok(Vec::new()),
                    start,
                    state.store().compact_revision(),
                );
            }
            let events =
                state.events_since(create.start_revision, &watcher.key, &watcher.range_end);
            (
                current,
                events,
                current + 1,
                state.store().compact_revision(),
            )
        });
        let Ok((current, events, next_revision, compact_revision)) = history else {
            return false;
        };
        let header = self.ctx.header().at(current);
        if !self
            .send(pb::WatchResponse {
                header,
                watch_id: id,
                created: true,
                ..Default::default()
            })
            .await
        {
            return false;
        }
        let events = match events {
            Ok(events) => events,
            Err(MvccError::Compacted) => {
                return self.send_compacted(id, current, compact_revision).await;
            }
            Err(_) => Vec::new(),
        };
        watcher.next_revision = create.start_revision.max(1);
        let delivered = self.deliver(id, &watcher, &events, current).await;
        watcher.next_revision = next_revision;
        self.watchers.insert(id, watcher);
        self.next_auto_id = self.next_auto_id.max(id + 1);
        delivered
    }

    async fn send_compacted(&self, id: i64, current: i64, compact_revision: i64) -> bool {
        let header = self.ctx.header().at(current);
        self.send(pb::WatchResponse {
            header,
            watch_id: id,
            canceled: true,
            compact_revision,
            cancel_reason: MvccError::Compacted.to_string(),
            ..Default::default()
        })
        .await
    }

    /// Sends the events `watcher` wants, grouped in one response per revision.
    async fn deliver(
        &self,
        id: i64,
        watcher: &Watcher,
        events: &[Event],
        header_revision: i64,
    ) -> bool {
        let mut chosen: Vec<&Event> = events.iter().filter(|event| watcher.wants(event)).collect();
        while !chosen.is_empty() {
            let revision = chosen[0].kv.mod_revision;
            let split = chosen
                .iter()
                .position(|event| event.kv.mod_revision != revision)
                .unwrap_or(chosen.len());
            let rest = chosen.split_off(split);
            let response = pb::WatchResponse {
                header: self.ctx.header().at(header_revision.max(revision)),
                watch_id: id,
                events: chosen
                    .iter()
                    .map(|event| convert::event_to_pb(event, watcher.prev_kv))
                    .collect(),
                ..Default::default()
            };
            if !self.send(response).await {
                return false;
            }
            chosen = rest;
        }
        true
    }

    async fn on_live(&mut self, applied: &AppliedEvents) -> bool {
        let ids: Vec<i64> = self.watchers.keys().copied().collect();
        for id in ids {
            let Some(watcher) = self.watchers.get(&id) else {
                continue;
            };
            if !self
                .deliver(id, watcher, &applied.events, applied.revision)
                .await
            {
                return false;
            }
            if let Some(watcher) = self.watchers.get_mut(&id) {
                watcher.next_revision = watcher.next_revision.max(applied.revision + 1);
            }
        }
        true
    }

    /// The live feed dropped events for this stream: replay each watcher from history.
    async fn catch_up(&mut self) -> bool {
        let ids: Vec<i64> = self.watchers.keys().copied().collect();
        for id in ids {
            let Some(watcher) = self.watchers.get(&id) else {
                continue;
            };
            let from = watcher.next_revision;
            let Ok((current, events, compact_revision)) = self.ctx.read(|state| {
                (
                    state.store().current_revision(),
                    state.events_since(from, &watcher.key, &watcher.range_end),
                    state.store().compact_revision(),
                )
            }) else {
                return false;
            };
            match events {
                Ok(events) => {
                    if !self.deliver(id, watcher, &events, current).await {
                        return false;
                    }
                    if let Some(watcher) = self.watchers.get_mut(&id) {
                        watcher.next_revision = current + 1;
                    }
                }
                Err(_) => {
                    self.watchers.remove(&id);
                    if !self.send_compacted(id, current, compact_revision).await {
                        return false;
                    }
                }
            }
        }
        true
    }
}
