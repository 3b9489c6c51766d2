//! The v2 watcher hub: the server side of `spec::v2` watches. A watch starts with
//! [`oxetcd_spec::v2::Store::watch`] (answered from the store's 1000-event history, or
//! 401 when that index is cleared); a waiting watcher is registered here and fed, in
//! index order, the events the store recorded since, read back from the same history
//! ([`Hub::pump`]), filtered by [`oxetcd_spec::v2::Watcher::matches`].
//!
//! The pump runs after every v2 write this member proposes and on a short timer (for
//! writes it did not propose, such as SYNC expiries). Like etcd, a watcher whose
//! 100-event buffer is full is dropped (its stream ends).

use std::sync::Mutex;

use oxetcd_spec::v2::{Action, Event, V2Error, WatchStart, Watcher};
use tokio::sync::mpsc;

use super::stats::StoreStats;
use crate::node_loop::SharedState;

/// Events a watcher may have queued before it is dropped (etcd's `eventChan` size).
const WATCHER_BUFFER: usize = 100;

/// How a watch started.
#[derive(Debug)]
pub enum Started {
    /// Answered from the history at once; the store index at the time is
    /// `event.etcd_index`.
    Now(Box<Event>),
    /// Waiting: events arrive on `events`; `start_index` is the store index when the
    /// watch began (etcd's `X-Etcd-Index` for a waiting watch).
    Waiting {
        /// etcd's `startIndex`.
        start_index: u64,
        /// Delivered events (store paths).
        events: mpsc::Receiver<Event>,
    },
}

#[derive(Debug)]
struct Entry {
    watcher: Watcher,
    sender: mpsc::Sender<Event>,
}

#[derive(Debug)]
struct Inner {
    /// The next store index to deliver.
    next_index: u64,
    watchers: Vec<Entry>,
}

/// The registered watchers and the delivery position.
#[derive(Debug)]
pub struct Hub {
    inner: Mutex<Inner>,
}

impl Hub {
    /// A hub delivering events after store index `index`.
    pub fn new(index: u64) -> Hub {
        Hub {
            inner: Mutex::new(Inner {
                next_index: index + 1,
                watchers: Vec::new(),
            }),
        }
    }

    /// Starts a watch on store path `key` (see [`oxetcd_spec::v2::Store::watch`]).
    ///
    /// # Errors
    /// 401 when `since_index` is older than the history.
    pub fn watch(
        &self,
        state: &SharedState,
        key: &str,
        recursive: bool,
        stream: bool,
        since_index: u64,
    ) -> Result<Started, V2Error> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let state = state.read().unwrap_or_else(|e| e.into_inner());
        match state.v2().watch(key, recursive, stream, since_index)? {
            WatchStart::Event(event) => Ok(Started::Now(event)),
            WatchStart::Wait(watcher) => {
                let (sender, events) = mpsc::channel(WATCHER_BUFFER);
                let start_index = watcher.start_index;
                inner.watchers.push(Entry { watcher, sender });
                Ok(Started::Waiting {
                    start_index,
                    events,
                })
            }
        }
    }

    /// Waiting watchers whose client is still there.
    pub fn count(&self) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .watchers
            .iter()
            .filter(|e| !e.sender.is_closed())
            .count()
    }

    /// Delivers every event the store recorded since the last pump, in index order.
    pub fn pump(&self, state: &SharedState, stats: &StoreStats) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let state = state.read().unwrap_or_else(|e| e.into_inner());
        let store = state.v2();
        let history = store.history();
        inner.watchers.retain(|e| !e.sender.is_closed());
        if inner.next_index < history.start_index() {
            // Fell behind the history (more than its capacity at once): what was
            // pushed out cannot be delivered.
            inner.next_index = history.start_index();
        }
        let last = store.index();
        if inner.next_index > last {
            return;
        }
        let skip = usize::try_from(inner.next_index - history.start_index()).unwrap_or(0);
        for event in history.events().skip(skip) {
            if event.action == Action::Expire {
                stats.expired();
            }
            inner.watchers.retain(|entry| {
                if !entry.watcher.matches(event) {
                    return true;
                }
                // A full buffer drops the watcher, as etcd does.
                entry.sender.try_send(event.clone()).is_ok() && entry.watcher.stream
            });
        }
        inner.next_index = last + 1;
    }
}
