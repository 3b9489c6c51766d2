//! Messages exchanged between Raft nodes (domain types, not protobuf; the byte encoding is
//! in [`super::codec`]). Field use follows etcd-io/raft's `raftpb.Message`.

use super::types::{Entry, LogIndex, NodeId, Snapshot, Term};

/// Kind of a Raft message. Local inputs (tick, propose, campaign...) are methods on
/// [`super::Node`], not messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MessageKind {
    /// Pre-vote request (thesis §9.6): `term` is the term the sender would campaign in,
    /// `index`/`log_term` describe the sender's last entry. Does not change the receiver's
    /// term.
    PreVote,
    /// Answer to `PreVote`; `reject` says whether it was refused.
    PreVoteResp,
    /// Vote request (Raft §5.2); `index`/`log_term` describe the candidate's last entry.
    /// `context == Message::CONTEXT_TRANSFER` marks an election caused by leader transfer,
    /// which bypasses the check-quorum lease.
    Vote,
    /// Answer to `Vote`; `reject` says whether it was refused.
    VoteResp,
    /// AppendEntries (Raft §5.3): `index`/`log_term` are the entry preceding `entries`,
    /// `commit` the leader's commit index.
    App,
    /// Answer to `App` or `Snap`. Accepted: `index` is the follower's last matching index.
    /// Rejected: `index` is the rejected `App::index`, `reject_hint`/`log_term` the
    /// follower's fast back-off hint (its last index with term <= the probed term).
    AppResp,
    /// Leader heartbeat: `commit` is min(follower match, leader commit); `context` carries
    /// a ReadIndex context when confirming leadership for reads.
    Heartbeat,
    /// Answer to `Heartbeat`, echoing `context`.
    HeartbeatResp,
    /// Install snapshot: `snapshot` is set.
    Snap,
    /// A proposal forwarded by a follower to the leader (`entries`, term 0).
    Prop,
    /// A ReadIndex request forwarded by a follower (`context` is the request ctx, term 0).
    ReadIndex,
    /// The leader's answer to a forwarded `ReadIndex`: `index` and `context`.
    ReadIndexResp,
    /// Leader transfer request forwarded to the leader (term 0). As in etcd, `from` is
    /// the transferee (the node that should become leader).
    TransferLeader,
    /// Sent by a leader to the transferee: start an election now, skipping pre-vote.
    TimeoutNow,
}

impl MessageKind {
    /// Every kind, in the order of their wire codes (`spec::raft::codec` encodes a kind as
    /// its position here, so new kinds are only ever appended).
    pub const ALL: [MessageKind; 14] = [
        MessageKind::PreVote,
        MessageKind::PreVoteResp,
        MessageKind::Vote,
        MessageKind::VoteResp,
        MessageKind::App,
        MessageKind::AppResp,
        MessageKind::Heartbeat,
        MessageKind::HeartbeatResp,
        MessageKind::Snap,
        MessageKind::Prop,
        MessageKind::ReadIndex,
        MessageKind::ReadIndexResp,
        MessageKind::TransferLeader,
        MessageKind::TimeoutNow,
    ];
}

/// One Raft message. Unused fields are zero/empty.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Message {
    /// What the message is.
    pub kind: MessageKind,
    /// Sender (for `TransferLeader`: the transferee).
    pub from: NodeId,
    /// Recipient.
    pub to: NodeId,
    /// Sender's term (0 for the forwarded local kinds `Prop`, `ReadIndex`,
    /// `TransferLeader`).
    pub term: Term,
    /// Term of the entry at `index` (see each kind).
    pub log_term: Term,
    /// A log index (see each kind).
    pub index: LogIndex,
    /// Entries carried by `App` and `Prop`.
    pub entries: Vec<Entry>,
    /// Leader's commit index (`App`, `Heartbeat`).
    pub commit: LogIndex,
    /// Snapshot carried by `Snap`.
    pub snapshot: Option<Snapshot>,
    /// Whether a response refuses the request.
    pub reject: bool,
    /// Fast back-off hint of a rejected `AppResp`.
    pub reject_hint: LogIndex,
    /// Opaque context (ReadIndex ctx, or `CONTEXT_TRANSFER` on votes).
    pub context: Vec<u8>,
}

impl Message {
    /// Context marking a vote request caused by leader transfer.
    pub const CONTEXT_TRANSFER: &'static [u8] = b"transfer";

    /// A message of `kind` from `from` to `to` in `term`, other fields empty.
    #[must_use]
    pub fn new(kind: MessageKind, from: NodeId, to: NodeId, term: Term) -> Message {
        Message {
            kind,
            from,
            to,
            term,
            log_term: Term(0),
            index: LogIndex(0),
            entries: Vec::new(),
            commit: LogIndex(0),
            snapshot: None,
            reject: false,
            reject_hint: LogIndex(0),
            context: Vec::new(),
        }
    }

    /// Whether this is a response kind (never answered itself).
    #[must_use]
    pub fn is_response(&self) -> bool {
        matches!(
            self.kind,
            MessageKind::PreVoteResp
                | MessageKind::VoteResp
                | MessageKind::AppResp
                | MessageKind::HeartbeatResp
                | MessageKind::ReadIndexResp
        )
    }

    /// Convenience for tests and tools: the snapshot, if any.
    #[must_use]
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }
}
