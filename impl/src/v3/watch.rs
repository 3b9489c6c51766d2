//! `etcdserverpb.Watch`: one bidirectional stream carries many watchers.
//!
//! Each stream subscribes to the node loop's applied events when it opens. A watcher
//! remembers the next revision it still needs (`next_revision`): history (from
//! `AppState::events_since`, read under the state lock) covers everything up to the
//! current revision, and live events below `next_revision` are skipped, so every
//! revision reaches a watcher exactly once and in order. A stream that falls behind the
//! live feed catches each watcher up from history the same way (or cancels it with the
//! compacted revision, as etcd does when history is gone), and so does every stream
//! when a snapshot from the leader replaced this member's state.
//!
//! What the client sees follows etcd 3.4.23:
//! - live events: one response per applied entry and watcher, header revision that
//!   entry's revision; history (catch-up): the events of up to [`CATCH_UP_MAX_REVISIONS`]
//!   revisions in one response, header revision the current one;
//! - automatic ids count up from 0 and skip ids in use; an explicit id that is in use
//!   is refused with a created-and-canceled response, watch id -1 and etcd's reason;
//! - a watcher whose start revision is compacted gets a canceled response carrying the
//!   compact revision and a header without revision;
//! - `progress_request` answers with watch id -1 and the current revision; watchers
//!   created with `progress_notify` get a progress response (their id, no events) every
//!   `--experimental-watch-progress-notify-interval` unless events reached them since the
//!   last one;
//! - watchers created with `fragment` get responses of `--max-request-bytes` plus 512 KiB
//!   (etcd's gRPC overhead allowance) or more split into several, each holding as many
//!   events as stay under that limit, every part but the last marked `fragment`.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use oxetcd_api::etcdserverpb as pb;
use oxetcd_spec::mvcc::{Event, EventKind, MvccError};
use prost::Message as _;
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

/// Most distinct revisions whose events one catch-up response carries (etcd's
/// `watchBatchMaxRevs`).
pub const CATCH_UP_MAX_REVISIONS: usize = 1000;

/// The reason etcd gives for a duplicate explicit watch id.
pub const DUPLICATE_WATCH_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";

/// One watcher of a stream.
#[derive(Debug)]
struct Watcher {
    key: Vec<u8>,
    range_end: Vec<u8>,
    prev_kv: bool,
    no_put: bool,
    no_delete: bool,
    /// Split responses over `--max-request-bytes` (etcd's `fragment`).
    fragment: bool,
    /// Created with `progress_notify`.
    progress_notify: bool,
    /// A progress notification is due at the next tick (no events since the last one).
    progress_due: bool,
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
        let ctx = &self.0;
        let live = ctx.node.events.subscribe();
        let progress_interval = ctx.config.experimental_watch_progress_notify_interval;
        let stream = WatchStream {
            ctx: ctx.clone(),
            watchers: BTreeMap::new(),
            next_auto_id: 0,
            out,
            token,
        };
        tokio::spawn(stream.run(incoming, live, progress_interval));
        Ok(tonic::Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }
}

/// Splits `response` into parts whose encoded size stays under `max_bytes` (each part
/// holds at least one event), every part but the last marked `fragment`. A response
/// under the limit or with fewer than two events is returned whole.
pub fn fragments(response: pb::WatchResponse, max_bytes: usize) -> Vec<pb::WatchResponse> {
    if response.events.len() < 2 || response.encoded_len() < max_bytes {
        return vec![response];
    }
    let mut template = response;
    let events = std::mem::take(&mut template.events);
    template.fragment = true;
    let empty_len = template.encoded_len();
    let mut parts = Vec::new();
    let mut current = template.clone();
    let mut current_len = empty_len;
    for event in events {
        let event_len = event.encoded_len();
        // Each repeated field element costs its tag (1 byte), its length and its body.
        let added = 1 + prost::encoding::encoded_len_varint(event_len as u64) + event_len;
        if !current.events.is_empty() && current_len + added >= max_bytes {
            parts.push(std::mem::replace(&mut current, template.clone()));
            current_len = empty_len;
        }
        current_len += added;
        current.events.push(event);
    }
    current.fragment = false;
    parts.push(current);
    parts
}

/// The history events `watcher` wants, grouped into the events of up to
/// [`CATCH_UP_MAX_REVISIONS`] revisions per response.
fn history_batches(watcher: &Watcher, events: &[Event]) -> Vec<Vec<oxetcd_api::mvccpb::Event>> {
    let mut batches = Vec::new();
    let mut batch = Vec::new();
    let mut revisions = 0;
    let mut last_revision = None;
    for event in events.iter().filter(|event| watcher.wants(event)) {
        if last_revision != Some(event.kv.mod_revision) {
            if revisions == CATCH_UP_MAX_REVISIONS {
                batches.push(std::mem::take(&mut batch));
                revisions = 0;
            }
            revisions += 1;
            last_revision = Some(event.kv.mod_revision);
        }
        batch.push(convert::event_to_pb(event, watcher.prev_kv));
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}

impl WatchStream {
    async fn run(
        mut self,
        mut incoming: Streaming<pb::WatchRequest>,
        mut live: broadcast::Receiver<AppliedEvents>,
        progress_interval: Duration,
    ) {
        let period = progress_interval.max(Duration::from_millis(1));
        let mut progress = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                _ = progress.tick() => self.on_progress_tick().await,
            };
            if !keep_going {
                return;
            }
        }
    }

    async fn send(&self, response: pb::WatchResponse) -> bool {
        self.out.send(Ok(response)).await.is_ok()
    }

    /// Sends an event response for watcher `id`, split if it asked for fragments.
    async fn send_events(&self, fragment: bool, response: pb::WatchResponse) -> bool {
        if !fragment {
            return self.send(response).await;
        }
        // etcd's watch server splits at --max-request-bytes plus the gRPC overhead
        // allowance (the same limit as incoming messages), not at the bare flag.
        let limit = self
            .ctx
            .max_request_bytes
            .saturating_add(crate::server::GRPC_OVERHEAD_BYTES);
        for part in fragments(response, limit) {
            if !self.send(part).await {
                return false;
            }
        }
        true
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

    /// The periodic progress notification for watchers that asked for it and got no
    /// events since the last one.
    async fn on_progress_tick(&mut self) -> bool {
        if !self
            .watchers
            .values()
            .any(|watcher| watcher.progress_notify)
        {
            return true;
        }
        let current = self.current_revision();
        let mut due = Vec::new();
        for (id, watcher) in &mut self.watchers {
            if !watcher.progress_notify {
                continue;
            }
            if watcher.progress_due {
                due.push(*id);
            }
            watcher.progress_due = true;
        }
        for id in due {
            let response = pb::WatchResponse {
                header: self.ctx.header().at(current),
                watch_id: id,
                ..Default::default()
            };
            if !self.send(response).await {
                return false;
            }
        }
        true
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
            let id = self.next_auto_id;
            self.next_auto_id += 1;
            id
        };
        if self.watchers.contains_key(&id) {
            let header = self.ctx.header().at(self.current_revision());
            return self
                .send(pb::WatchResponse {
                    header,
                    watch_id: -1,
                    created: true,
                    canceled: true,
                    cancel_reason: DUPLICATE_WATCH_ID.to_owned(),
                    ..Default::default()
                })
                .await;
        }
        let filters = &create.filters;
        let no_put = filters.contains(&(pb::watch_create_request::FilterType::Noput as i32));
        let no_delete = filters.contains(&(pb::watch_create_request::FilterType::Nodelete as i32));
        let mut watcher = Watcher {
            key: create.key,
            range_end: create.range_end,
            prev_kv: create.prev_kv,
            no_put,
            no_delete,
            fragment: create.fragment,
            progress_notify: create.progress_notify,
            progress_due: create.progress_notify,
            next_revision: 0,
        };
        let history = self.ctx.read(|state| {
            let current = state.store().current_revision();
            if create.start_revision <= 0 || create.start_revision > current {
                let start = if create.start_revision <= 0 {
                    current + 1
                } else {
                    create.start_revision
                };
                return (current, Ok(Vec::new()), start);
            }
            let events =
                state.events_since(create.start_revision, &watcher.key, &watcher.range_end);
            let events = events.map_err(|error| (error, state.store().compact_revision()));
            (current, events, current + 1)
        });
        let Ok((current, events, next_revision)) = history else {
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
            Err((MvccError::Compacted, compact_revision)) => {
                return self.send_compacted(id, compact_revision).await;
            }
            Err(_) => Vec::new(),
        };
        watcher.next_revision = create.start_revision.max(1);
        let delivered = self
            .deliver_history(id, &mut watcher, &events, current)
            .await;
        watcher.next_revision = next_revision;
        self.watchers.insert(id, watcher);
        delivered
    }

    /// The canceled response of a watcher whose start revision is compacted: etcd 3.4
    /// sends it with the compact revision, no reason and a header without revision.
    async fn send_compacted(&self, id: i64, compact_revision: i64) -> bool {
        self.send(pb::WatchResponse {
            header: self.ctx.header().at(0),
            watch_id: id,
            canceled: true,
            compact_revision,
            ..Default::default()
        })
        .await
    }

    /// Sends the history events `watcher` wants, the events of up to
    /// [`CATCH_UP_MAX_REVISIONS`] revisions per response, header revision `current`.
    async fn deliver_history(
        &self,
        id: i64,
        watcher: &mut Watcher,
        events: &[Event],
        current: i64,
    ) -> bool {
        let batches = history_batches(watcher, events);
        if batches.is_empty() {
            return true;
        }
        watcher.progress_due = false;
        for batch in batches {
            let response = pb::WatchResponse {
                header: self.ctx.header().at(current),
                watch_id: id,
                events: batch,
                ..Default::default()
            };
            if !self.send_events(watcher.fragment, response).await {
                return false;
            }
        }
        true
    }

    async fn on_live(&mut self, applied: &AppliedEvents) -> bool {
        if applied.restored {
            // A leader's snapshot replaced the state: catch every watcher up from the
            // new history, or cancel it as compacted (etcd's restore of its watchers).
            return self.catch_up().await;
        }
        let header = self.ctx.header().at(applied.revision);
        let mut responses = Vec::new();
        for (id, watcher) in &mut self.watchers {
            if watcher.next_revision > applied.revision {
                continue;
            }
            let events: Vec<_> = applied
                .events
                .iter()
                .filter(|event| watcher.wants(event))
                .map(|event| convert::event_to_pb(event, watcher.prev_kv))
                .collect();
            watcher.next_revision = applied.revision + 1;
            if events.is_empty() {
                continue;
            }
            watcher.progress_due = false;
            responses.push((
                watcher.fragment,
                pb::WatchResponse {
                    header,
                    watch_id: *id,
                    events,
                    ..Default::default()
                },
            ));
        }
        for (fragment, response) in responses {
            if !self.send_events(fragment, response).await {
                return false;
            }
        }
        true
    }

    /// The live feed dropped events for this stream: replay each watcher from history.
    async fn catch_up(&mut self) -> bool {
        let ids: Vec<i64> = self.watchers.keys().copied().collect();
        for id in ids {
            let Some(mut watcher) = self.watchers.remove(&id) else {
                continue;
            };
            let from = watcher.next_revision;
            let Ok((current, events)) = self.ctx.read(|state| {
                let events = state
                    .events_since(from, &watcher.key, &watcher.range_end)
                    .map_err(|_| state.store().compact_revision());
                (state.store().current_revision(), events)
            }) else {
                return false;
            };
            match events {
                Ok(events) => {
                    if !self
                        .deliver_history(id, &mut watcher, &events, current)
                        .await
                    {
                        return false;
                    }
                    watcher.next_revision = current + 1;
                    self.watchers.insert(id, watcher);
                }
                Err(compact_revision) => {
                    if !self.send_compacted(id, compact_revision).await {
                        return false;
                    }
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(size: usize) -> oxetcd_api::mvccpb::Event {
        oxetcd_api::mvccpb::Event {
            kv: Some(oxetcd_api::mvccpb::KeyValue {
                key: b"k".to_vec(),
                value: vec![b'v'; size],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn response(events: usize, size: usize) -> pb::WatchResponse {
        pb::WatchResponse {
            watch_id: 3,
            events: (0..events).map(|_| event(size)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn small_responses_and_single_events_are_not_fragmented() {
        let parts = fragments(response(3, 10), 1000);
        assert_eq!(parts.len(), 1);
        assert!(!parts[0].fragment);
        let parts = fragments(response(1, 5000), 1000);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].events.len(), 1);
    }

    #[test]
    fn large_responses_split_under_the_limit_and_only_the_last_is_unmarked() {
        let whole = response(10, 300);
        let parts = fragments(whole.clone(), 1000);
        assert!(parts.len() > 1, "{} parts", parts.len());
        let (last, rest) = parts.split_last().unwrap();
        assert!(rest.iter().all(|part| part.fragment));
        assert!(!last.fragment);
        for part in &parts {
            assert!(!part.events.is_empty());
            assert!(part.events.len() == 1 || part.encoded_len() < 1000);
            assert_eq!(part.watch_id, 3);
        }
        let rejoined: Vec<_> = parts.into_iter().flat_map(|part| part.events).collect();
        assert_eq!(rejoined, whole.events);
    }
}
