//! One stable line per message, entry and Ready, used by tests, traces, logs and the book.
//! The format is part of the snapshot tests: change it deliberately.

use std::fmt::Write as _;

use super::message::{Message, MessageKind};
use super::node::Ready;
use super::types::{ConfChangeKind, Entry, EntryPayload, HardState, Role, SoftState};

/// Short name of a message kind.
#[must_use]
pub fn kind_name(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::PreVote => "PreVote",
        MessageKind::PreVoteResp => "PreVoteResp",
        MessageKind::Vote => "Vote",
        MessageKind::VoteResp => "VoteResp",
        MessageKind::App => "App",
        MessageKind::AppResp => "AppResp",
        MessageKind::Heartbeat => "Heartbeat",
        MessageKind::HeartbeatResp => "HeartbeatResp",
        MessageKind::Snap => "Snap",
        MessageKind::Prop => "Prop",
        MessageKind::ReadIndex => "ReadIndex",
        MessageKind::ReadIndexResp => "ReadIndexResp",
        MessageKind::TransferLeader => "TransferLeader",
        MessageKind::TimeoutNow => "TimeoutNow",
    }
}

/// `term/index payload`, e.g. `2/5 put:"a=1"` or `1/1 empty`.
#[must_use]
pub fn entry(e: &Entry) -> String {
    let payload = match &e.payload {
        EntryPayload::Empty => "empty".to_string(),
        EntryPayload::Normal(data) => format!("{:?}", String::from_utf8_lossy(data)),
        EntryPayload::ConfChange(cc) => {
            let kind = match cc.kind {
                ConfChangeKind::AddNode => "add-node",
                ConfChangeKind::AddLearner => "add-learner",
                ConfChangeKind::RemoveNode => "remove-node",
            };
            format!("{kind}({})", cc.node_id)
        }
    };
    format!("{}/{} {payload}", e.term, e.index)
}

/// `[1/1 empty, 1/2 "x"]`.
#[must_use]
pub fn entries(es: &[Entry]) -> String {
    let parts: Vec<String> = es.iter().map(entry).collect();
    format!("[{}]", parts.join(", "))
}

/// One line for a message, e.g. `1->2 App term=2 log_term=1 index=3 commit=2 entries=[..]`.
/// Fields at their zero value are omitted (except for the kind's essentials).
#[must_use]
pub fn message(m: &Message) -> String {
    let mut s = format!("{}->{} {} term={}", m.from, m.to, kind_name(m.kind), m.term);
    if m.log_term.0 != 0 || matches!(m.kind, MessageKind::App | MessageKind::Vote) {
        let _ = write!(s, " log_term={}", m.log_term);
    }
    if m.index.0 != 0 || matches!(m.kind, MessageKind::App | MessageKind::AppResp) {
        let _ = write!(s, " index={}", m.index);
    }
    if m.commit.0 != 0 {
        let _ = write!(s, " commit={}", m.commit);
    }
    if m.reject {
        let _ = write!(s, " REJECT hint={}", m.reject_hint);
    }
    if !m.entries.is_empty() {
        let _ = write!(s, " entries={}", entries(&m.entries));
    }
    if let Some(snap) = &m.snapshot {
        let _ = write!(
            s,
            " snapshot={}/{} voters={:?}",
            snap.metadata.term,
            snap.metadata.index,
            snap.metadata
                .conf_state
                .voters
                .iter()
                .map(|v| v.0)
                .collect::<Vec<_>>()
        );
    }
    if !m.context.is_empty() {
        let _ = write!(s, " ctx={:?}", String::from_utf8_lossy(&m.context));
    }
    s
}

/// `Leader(lead=1)`.
#[must_use]
pub fn soft_state(ss: &SoftState) -> String {
    let role = match ss.role {
        Role::Follower => "Follower",
        Role::PreCandidate => "PreCandidate",
        Role::Candidate => "Candidate",
        Role::Leader => "Leader",
    };
    match ss.leader {
        Some(l) => format!("{role}(lead={l})"),
        None => format!("{role}(lead=none)"),
    }
}

/// `term=2 vote=1 commit=3`.
#[must_use]
pub fn hard_state(hs: &HardState) -> String {
    let vote = hs
        .vote
        .map_or_else(|| "none".to_string(), |v| v.to_string());
    format!("term={} vote={vote} commit={}", hs.term, hs.commit)
}

/// The non-empty parts of a Ready, one per line (messages one per line too).
#[must_use]
pub fn ready(rd: &Ready) -> String {
    let mut lines = Vec::new();
    if let Some(ss) = &rd.soft_state {
        lines.push(format!("soft: {}", soft_state(ss)));
    }
    if let Some(hs) = &rd.hard_state {
        lines.push(format!("hard: {}", hard_state(hs)));
    }
    if !rd.entries.is_empty() {
        lines.push(format!("entries: {}", entries(&rd.entries)));
    }
    if let Some(snap) = &rd.snapshot {
        lines.push(format!(
            "snapshot: {}/{}",
            snap.metadata.term, snap.metadata.index
        ));
    }
    for m in &rd.messages {
        lines.push(format!("send: {}", message(m)));
    }
    for m in &rd.messages_after_persist {
        lines.push(format!("send-after-persist: {}", message(m)));
    }
    if !rd.committed_entries.is_empty() {
        lines.push(format!("apply: {}", entries(&rd.committed_entries)));
    }
    for rs in &rd.read_states {
        lines.push(format!(
            "read-state: index={} ctx={:?}",
            rs.index,
            String::from_utf8_lossy(&rs.request_ctx)
        ));
    }
    if rd.must_sync {
        lines.push("must-sync".to_string());
    }
    lines.join("\n")
}
