//! Known etcd 3.4.23 deviations.
//!
//! A transcript step may carry a `deviation` naming the etcd issue and giving the
//! corrected answer. Replay accepts either answer: etcd's recorded one is reported as a
//! "known etcd deviation" (listed separately in the summary), the corrected one as a
//! plain pass. Steps after a deviation do not depend on which answer was given.
//!
//! | issue | transcript, step | etcd 3.4.23 does | corrected behaviour |
//! |---|---|---|---|
//! | GHSA-rfx7-8w68-q57q (nested txn RBAC bypass) | `auth/permission_denied` step 26 | does not check permissions of a `Txn` nested in a `Txn`: a user without read permission reads the key | `PermissionDenied` "etcdserver: permission denied" |
//! | GHSA-x35m-3gp4-4fh5, etcd-io/etcd#21677 (prev_kv in txn put) | `auth/permission_denied` step 27 | checks read permission for `prev_kv` on a plain Put but not on a Put inside a Txn: a write-only user reads the previous value | `PermissionDenied` "etcdserver: permission denied" |
//! | etcd-io/etcd#21694 (MemberUpdate forgets learner) | `cluster/learner_add_remove` steps 5 and 6 | MemberUpdate of a learner replaces its raft attributes, so the answer and later MemberLists show it as a voting member | the member keeps `isLearner: true` |
//!
//! Looked at and not marked:
//! * etcd-io/etcd#15220 (a progress notification may be sent before events of
//!   unsynced watchers, so its revision can run ahead of delivered events): a race
//!   between the watchable store's sync loop and the progress request, not reproducible
//!   deterministically in a transcript. `watch/progress_request` records the
//!   deterministic part (an idle, synced stream answers with the current revision and
//!   `watch_id` -1, which 3.4.23 already does).

/// Issues named by transcript deviations (kept in step with the table above).
pub const KNOWN: &[&str] = &[
    "GHSA-rfx7-8w68-q57q (nested txn RBAC bypass)",
    "GHSA-x35m-3gp4-4fh5 / etcd-io/etcd#21677 (prev_kv in txn put)",
    "etcd-io/etcd#21694 (MemberUpdate forgets learner)",
];
