//! Known etcd 3.4.23 deviations.
//!
//! A transcript step may carry a `deviation` with the etcd issue and the corrected
//! answer. Replay accepts either answer: the recorded etcd one is reported as
//! "known etcd deviation" (listed separately in the summary), the corrected one as a
//! plain pass. The table below lists every deviation the transcripts mark.
//!
//! | issue | transcript | etcd 3.4.23 does | corrected behaviour |
//! |---|---|---|---|
//! | etcd-io/etcd#15220 | `watch/progress_request` | a progress response to `WatchProgressRequest` carries `watch_id` 0, indistinguishable from watcher 0's events | `watch_id` -1 (clientv3's InvalidWatchID), as etcd 3.5.8+ sends |
//! | etcd-io/etcd#15771 (GHSA-rfvp-7cw6-x5cj class) | `auth/nested_txn_permission` | a nested `Txn` inside `Txn` is not permission-checked: a user without read permission reads the key | `PermissionDenied` "etcdserver: permission denied" |

/// Issues named by transcripts (kept in step with the table above).
pub const KNOWN: &[(&str, &str)] = &[
    (
        "etcd-io/etcd#15220",
        "progress response watch_id (should be -1)",
    ),
    ("etcd-io/etcd#15771", "nested txn permission checks missing"),
];
