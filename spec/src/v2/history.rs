//! The v2 event history and watch matching (etcd 3.4 `v2store/event_history.go`,
//! `watcher_hub.go`, `watcher.go`).
//!
//! The history keeps the last [`HISTORY_CAPACITY`] events, one per store index. A watch
//! with a `waitIndex` is answered from it at once if a matching event exists, fails with
//! 401 if the index has been pushed out, and otherwise waits (see [`Watcher::matches`]).

use std::collections::VecDeque;

use super::error::{V2Error, V2ErrorCode};
use super::event::{Action, Event};
use super::path;

/// How many events etcd keeps (`newWatchHub(1000)`).
pub const HISTORY_CAPACITY: usize = 1000;

/// The bounded event history.
///
/// Invariant: events are in strictly increasing, contiguous index order (each store
/// modification adds exactly one event); `start_index`/`last_index` are the first and
/// last event's index (both 0 while empty).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EventHistory {
    events: VecDeque<Event>,
    capacity: usize,
    start_index: u64,
    last_index: u64,
}

impl Default for EventHistory {
    fn default() -> Self {
        Self::with_capacity(HISTORY_CAPACITY)
    }
}

impl EventHistory {
    /// An empty history holding at most `capacity` events (etcd uses 1000).
    pub fn with_capacity(capacity: usize) -> Self {
        assert!(capacity > 0, "a history must hold at least one event");
        Self {
            events: VecDeque::new(),
            capacity,
            start_index: 0,
            last_index: 0,
        }
    }

    /// Index of the oldest event kept (0 while empty).
    pub fn start_index(&self) -> u64 {
        self.start_index
    }

    /// Index of the newest event kept (0 while empty).
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// The kept events, oldest first.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.events.iter()
    }

    /// Appends an event, dropping the oldest when full (`EventHistory.addEvent`).
    pub fn add(&mut self, event: Event) {
        if self.events.len() == self.capacity {
            self.events.pop_front();
        }
        self.last_index = event.index();
        self.events.push_back(event);
        self.start_index = self.events.front().map_or(0, Event::index);
    }

    /// `EventHistory.scan`: the first non-refresh event at or after `index` that matches
    /// `key` (exactly, or under it when `recursive`, or a deleted/expired directory that
    /// is a string prefix of `key`). `Ok(None)` means "wait for a future event".
    ///
    /// # Errors
    /// 401 `EventIndexCleared` with cause `the requested history has been cleared
    /// [start/index]` and index 0 (the caller sets the store index) when `index` is older
    /// than the oldest kept event.
    pub fn scan(&self, key: &str, recursive: bool, index: u64) -> Result<Option<&Event>, V2Error> {
        if index < self.start_index {
            return Err(V2Error::new(
                V2ErrorCode::EventIndexCleared,
                format!(
                    "the requested history has been cleared [{}/{}]",
                    self.start_index, index
                ),
                0,
            ));
        }
        if index > self.last_index {
            return Ok(None);
        }
        let mut recursive_prefix = path::clean(key);
        if !recursive_prefix.ends_with('/') {
            recursive_prefix.push('/');
        }
        Ok(self
            .events
            .iter()
            .filter(|e| e.index() >= index && !e.refresh)
            .find(|e| {
                let mut ok = e.node.key == key;
                if recursive {
                    ok = ok || e.node.key.starts_with(&recursive_prefix);
                }
                // etcd compares raw strings here: deleting "/a" also answers a
                // history watch on "/ab" (3.4 behaviour, kept).
                if matches!(e.action, Action::Delete | Action::Expire)
                    && let Some(prev) = e.prev_node.as_ref().filter(|p| p.dir)
                {
                    ok = ok || key.starts_with(&prev.key);
                }
                ok
            }))
    }
}

/// A waiting v2 watcher (the part of etcd's `watcher` that decides delivery).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Watcher {
    /// The cleaned store path watched.
    pub key: String,
    /// Whether events under `key` count.
    pub recursive: bool,
    /// A stream watcher stays after an event; a plain one is done after its first event.
    pub stream: bool,
    /// Only events with index >= this are delivered.
    pub since_index: u64,
    /// The store index when the watch started (etcd's `startIndex`; the `X-Etcd-Index`
    /// header of a streaming watch response).
    pub start_index: u64,
}

/// etcd's `isHidden(watchPath, keyPath)`: the part of `key_path` below `watch_path` has a
/// `_`-prefixed element. Deeper watch paths (deleted subtrees) are never hidden.
fn is_hidden(watch_path: &str, key_path: &str) -> bool {
    if watch_path.len() > key_path.len() {
        return false;
    }
    let after = path::clean(&format!("/{}", &key_path[watch_path.len()..]));
    after.contains("/_")
}

impl Watcher {
    /// Whether etcd delivers the live `event` to this watcher (`watcherHub.notify` and
    /// the delete callbacks): the watcher's path is the event key or (when recursive) an
    /// ancestor of it on which the part below is not hidden, or the path of a node the
    /// event removed; and the event index is at least `since_index`. Refresh events are
    /// never delivered.
    ///
    /// etcd 3.4 may hand a *stream* watcher on a deleted key the same delete event twice
    /// (once from the delete callback, once from the ancestor walk); this function
    /// answers "delivered or not" and the server sends it once.
    pub fn matches(&self, event: &Event) -> bool {
        if event.refresh || event.index() < self.since_index {
            return false;
        }
        let key = &event.node.key;
        let original_path = *key == self.key;
        let deleted = event.deleted_paths.contains(&self.key);
        if deleted && (original_path || !is_hidden(&self.key, key)) {
            return true;
        }
        let is_ancestor = self.key == "/"
            || original_path
            || key
                .strip_prefix(self.key.as_str())
                .is_some_and(|rest| rest.starts_with('/'));
        is_ancestor
            && (original_path || !is_hidden(&self.key, key))
            && (self.recursive || original_path)
    }
}

/// What starting a v2 watch gives.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum WatchStart {
    /// A matching event was in the history; answer it now (its `etcd_index` is the
    /// current store index). etcd 3.4 does not register the watcher in this case, even
    /// for a stream watch: the stream gets this one event and nothing after it.
    Event(Box<Event>),
    /// Nothing yet: wait, delivering the live events for which [`Watcher::matches`].
    Wait(Watcher),
}
