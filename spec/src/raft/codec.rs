//! A stable, versioned byte encoding of [`Entry`], [`HardState`], [`SnapshotMetadata`],
//! [`Snapshot`] and [`Message`], so the server can persist and send them. Pure functions;
//! decoding validates everything and never panics on bad input.
//!
//! # Format (version 1)
//!
//! Every top-level value is `version: u8 = 1`, `type: u8`, then the body, with nothing
//! after it. Integers are big-endian `u64`; byte strings and lists are a `u32` big-endian
//! length followed by the items; booleans and enum tags are one byte.
//!
//! | type | value | body |
//! |------|-------|------|
//! | `b'E'` | Entry | term, index, payload |
//! | `b'H'` | HardState | term, vote (0 = none), commit |
//! | `b'S'` | SnapshotMetadata | index, term, conf state |
//! | `b'P'` | Snapshot | metadata body, data bytes |
//! | `b'M'` | Message | kind, from, to, term, log_term, index, commit, reject, reject_hint, context bytes, entries list (entry bodies), snapshot flag (+ snapshot body) |
//!
//! Payload: tag 0 = empty; 1 = normal + bytes; 2 = conf change + kind (0 add-node,
//! 1 add-learner, 2 remove-node), node id, context bytes. Conf state: voters list of ids,
//! learners list of ids. Message kinds are numbered in [`MessageKind`] declaration order
//! (PreVote = 0 ... TimeoutNow = 13).

use super::message::{Message, MessageKind};
use super::types::{
    ConfChange, ConfChangeKind, ConfState, Entry, EntryPayload, HardState, LogIndex, NodeId,
    Snapshot, SnapshotMetadata, Term,
};

/// The encoding version written by this code.
pub const VERSION: u8 = 1;

const TYPE_ENTRY: u8 = b'E';
const TYPE_HARD_STATE: u8 = b'H';
const TYPE_SNAPSHOT_METADATA: u8 = b'S';
const TYPE_SNAPSHOT: u8 = b'P';
const TYPE_MESSAGE: u8 = b'M';

/// Why bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DecodeError {
    /// The input ended early.
    #[error("input truncated")]
    Truncated,
    /// Unknown encoding version.
    #[error("unsupported encoding version {0}")]
    UnsupportedVersion(u8),
    /// The type byte is not the one expected.
    #[error("expected type {expected}, found {found}")]
    WrongType {
        /// Expected type byte.
        expected: u8,
        /// Found type byte.
        found: u8,
    },
    /// An enum tag or flag has an unknown value.
    #[error("invalid value {value} for {field}")]
    InvalidTag {
        /// Which field.
        field: &'static str,
        /// The value found.
        value: u8,
    },
    /// Bytes remain after the value.
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
    /// A node id of 0 where a member id is required.
    #[error("node id 0 in {0}")]
    ZeroNodeId(&'static str),
}

// ----- writer -------------------------------------------------------------------------

struct Writer(Vec<u8>);

impl Writer {
    fn header(kind: u8) -> Writer {
        Writer(vec![VERSION, kind])
    }
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn len(&mut self, n: usize) {
        let n = u32::try_from(n).expect("a Raft value never holds 4 GiB in one field");
        self.0.extend_from_slice(&n.to_be_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.extend_from_slice(b);
    }
    fn entry(&mut self, e: &Entry) {
        self.u64(e.term.0);
        self.u64(e.index.0);
        match &e.payload {
            EntryPayload::Empty => self.u8(0),
            EntryPayload::Normal(data) => {
                self.u8(1);
                self.bytes(data);
            }
            EntryPayload::ConfChange(cc) => {
                self.u8(2);
                self.u8(match cc.kind {
                    ConfChangeKind::AddNode => 0,
                    ConfChangeKind::AddLearner => 1,
                    ConfChangeKind::RemoveNode => 2,
                });
                self.u64(cc.node_id.0);
                self.bytes(&cc.context);
            }
        }
    }
    fn conf_state(&mut self, cs: &ConfState) {
        self.len(cs.voters.len());
        for id in &cs.voters {
            self.u64(id.0);
        }
        self.len(cs.learners.len());
        for id in &cs.learners {
            self.u64(id.0);
        }
    }
    fn snapshot_metadata(&mut self, m: &SnapshotMetadata) {
        self.u64(m.index.0);
        self.u64(m.term.0);
        self.conf_state(&m.conf_state);
    }
    fn snapshot(&mut self, s: &Snapshot) {
        self.snapshot_metadata(&s.metadata);
        self.bytes(&s.data);
    }
}

// ----- reader -------------------------------------------------------------------------

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn header(input: &'a [u8], expected: u8) -> Result<Reader<'a>, DecodeError> {
        let mut r = Reader(input);
        let version = r.u8()?;
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let found = r.u8()?;
        if found != expected {
            return Err(DecodeError::WrongType { expected, found });
        }
        Ok(r)
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DecodeError::InvalidTag { field, value }),
        }
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    /// A length that cannot exceed the remaining input (each item takes >= `min_item`
    /// bytes), so a hostile length never causes a large allocation.
    fn len(&mut self, min_item: usize) -> Result<usize, DecodeError> {
        let b = self.take(4)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        let n = usize::try_from(u32::from_be_bytes(a)).map_err(|_| DecodeError::Truncated)?;
        if n.saturating_mul(min_item) > self.0.len() {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }
    fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let n = self.len(1)?;
        Ok(self.take(n)?.to_vec())
    }
    fn node_id(&mut self, field: &'static str) -> Result<NodeId, DecodeError> {
        match self.u64()? {
            0 => Err(DecodeError::ZeroNodeId(field)),
            id => Ok(NodeId(id)),
        }
    }
    fn entry(&mut self) -> Result<Entry, DecodeError> {
        let term = Term(self.u64()?);
        let index = LogIndex(self.u64()?);
        let payload = match self.u8()? {
            0 => EntryPayload::Empty,
            1 => EntryPayload::Normal(self.bytes()?),
            2 => {
                let kind = match self.u8()? {
                    0 => ConfChangeKind::AddNode,
                    1 => ConfChangeKind::AddLearner,
                    2 => ConfChangeKind::RemoveNode,
                    value => {
                        return Err(DecodeError::InvalidTag {
                            field: "conf change kind",
                            value,
                        });
                    }
                };
                let node_id = self.node_id("conf change")?;
                let context = self.bytes()?;
                EntryPayload::ConfChange(ConfChange {
                    kind,
                    node_id,
                    context,
                })
            }
            value => {
                return Err(DecodeError::InvalidTag {
                    field: "entry payload",
                    value,
                });
            }
        };
        Ok(Entry {
            term,
            index,
            payload,
        })
    }
    fn conf_state(&mut self) -> Result<ConfState, DecodeError> {
        let mut cs = ConfState::default();
        for _ in 0..self.len(8)? {
            cs.voters.insert(self.node_id("voters")?);
        }
        for _ in 0..self.len(8)? {
            cs.learners.insert(self.node_id("learners")?);
        }
        Ok(cs)
    }
    fn snapshot_metadata(&mut self) -> Result<SnapshotMetadata, DecodeError> {
        Ok(SnapshotMetadata {
            index: LogIndex(self.u64()?),
            term: Term(self.u64()?),
            conf_state: self.conf_state()?,
        })
    }
    fn snapshot(&mut self) -> Result<Snapshot, DecodeError> {
        Ok(Snapshot {
            metadata: self.snapshot_metadata()?,
            data: self.bytes()?,
        })
    }
    fn finish<T>(self, value: T) -> Result<T, DecodeError> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(DecodeError::TrailingBytes(self.0.len()))
        }
    }
}

const KINDS: [MessageKind; 14] = MessageKind::ALL;

fn kind_code(kind: MessageKind) -> u8 {
    let pos = KINDS.iter().position(|k| *k == kind).unwrap_or(0);
    u8::try_from(pos).unwrap_or(0)
}

// ----- public API ---------------------------------------------------------------------

impl Entry {
    /// Encodes this entry (format in [`super::codec`]).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::header(TYPE_ENTRY);
        w.entry(self);
        w.0
    }

    /// Decodes an entry.
    ///
    /// # Errors
    /// Any malformed input.
    pub fn decode(input: &[u8]) -> Result<Entry, DecodeError> {
        let mut r = Reader::header(input, TYPE_ENTRY)?;
        let e = r.entry()?;
        r.finish(e)
    }
}

impl HardState {
    /// Encodes this hard state.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::header(TYPE_HARD_STATE);
        w.u64(self.term.0);
        w.u64(self.vote.map_or(0, |v| v.0));
        w.u64(self.commit.0);
        w.0
    }

    /// Decodes a hard state.
    ///
    /// # Errors
    /// Any malformed input.
    pub fn decode(input: &[u8]) -> Result<HardState, DecodeError> {
        let mut r = Reader::header(input, TYPE_HARD_STATE)?;
        let term = Term(r.u64()?);
        let vote = match r.u64()? {
            0 => None,
            v => Some(NodeId(v)),
        };
        let commit = LogIndex(r.u64()?);
        r.finish(HardState { term, vote, commit })
    }
}

impl SnapshotMetadata {
    /// Encodes this snapshot metadata.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::header(TYPE_SNAPSHOT_METADATA);
        w.snapshot_metadata(self);
        w.0
    }

    /// Decodes snapshot metadata.
    ///
    /// # Errors
    /// Any malformed input.
    pub fn decode(input: &[u8]) -> Result<SnapshotMetadata, DecodeError> {
        let mut r = Reader::header(input, TYPE_SNAPSHOT_METADATA)?;
        let m = r.snapshot_metadata()?;
        r.finish(m)
    }
}

impl Snapshot {
    /// Encodes this snapshot (metadata and opaque data).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::header(TYPE_SNAPSHOT);
        w.snapshot(self);
        w.0
    }

    /// Decodes a snapshot.
    ///
    /// # Errors
    /// Any malformed input.
    pub fn decode(input: &[u8]) -> Result<Snapshot, DecodeError> {
        let mut r = Reader::header(input, TYPE_SNAPSHOT)?;
        let s = r.snapshot()?;
        r.finish(s)
    }
}

impl Message {
    /// Encodes this message.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::header(TYPE_MESSAGE);
        w.u8(kind_code(self.kind));
        w.u64(self.from.0);
        w.u64(self.to.0);
        w.u64(self.term.0);
        w.u64(self.log_term.0);
        w.u64(self.index.0);
        w.u64(self.commit.0);
        w.u8(u8::from(self.reject));
        w.u64(self.reject_hint.0);
        w.bytes(&self.context);
        w.len(self.entries.len());
        for e in &self.entries {
            w.entry(e);
        }
        match &self.snapshot {
            None => w.u8(0),
            Some(s) => {
                w.u8(1);
                w.snapshot(s);
            }
        }
        w.0
    }

    /// Decodes a message.
    ///
    /// # Errors
    /// Any malformed input.
    pub fn decode(input: &[u8]) -> Result<Message, DecodeError> {
        let mut r = Reader::header(input, TYPE_MESSAGE)?;
        let code = r.u8()?;
        let kind = *KINDS
            .get(usize::from(code))
            .ok_or(DecodeError::InvalidTag {
                field: "message kind",
                value: code,
            })?;
        let from = r.node_id("from")?;
        let to = r.node_id("to")?;
        let mut m = Message::new(kind, from, to, Term(r.u64()?));
        m.log_term = Term(r.u64()?);
        m.index = LogIndex(r.u64()?);
        m.commit = LogIndex(r.u64()?);
        m.reject = r.bool("reject")?;
        m.reject_hint = LogIndex(r.u64()?);
        m.context = r.bytes()?;
        for _ in 0..r.len(17)? {
            m.entries.push(r.entry()?);
        }
        if r.bool("snapshot flag")? {
            m.snapshot = Some(r.snapshot()?);
        }
        r.finish(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck_macros::quickcheck;

    fn sample_message() -> Message {
        let mut m = Message::new(MessageKind::App, NodeId(1), NodeId(2), Term(3));
        m.log_term = Term(2);
        m.index = LogIndex(4);
        m.commit = LogIndex(4);
        m.context = b"ctx".to_vec();
        m.entries = vec![
            Entry {
                term: Term(3),
                index: LogIndex(5),
                payload: EntryPayload::Normal(b"put a".to_vec()),
            },
            Entry {
                term: Term(3),
                index: LogIndex(6),
                payload: EntryPayload::ConfChange(ConfChange::add_learner(NodeId(4))),
            },
            Entry {
                term: Term(3),
                index: LogIndex(7),
                payload: EntryPayload::Empty,
            },
        ];
        m.snapshot = Some(Snapshot {
            metadata: SnapshotMetadata {
                index: LogIndex(2),
                term: Term(1),
                conf_state: ConfState::with_voters([1, 2, 3]),
            },
            data: vec![9; 5],
        });
        m
    }

    #[test]
    fn every_type_round_trips() {
        let m = sample_message();
        assert_eq!(Message::decode(&m.encode()), Ok(m.clone()));
        for e in &m.entries {
            assert_eq!(Entry::decode(&e.encode()).as_ref(), Ok(e));
        }
        let hs = HardState {
            term: Term(5),
            vote: Some(NodeId(2)),
            commit: LogIndex(9),
        };
        assert_eq!(HardState::decode(&hs.encode()), Ok(hs));
        let snap = m.snapshot.clone().expect("set above");
        assert_eq!(Snapshot::decode(&snap.encode()).as_ref(), Ok(&snap));
        assert_eq!(
            SnapshotMetadata::decode(&snap.metadata.encode()).as_ref(),
            Ok(&snap.metadata)
        );
    }

    #[test]
    fn encoding_of_a_hard_state_is_stable() {
        let hs = HardState {
            term: Term(1),
            vote: Some(NodeId(2)),
            commit: LogIndex(3),
        };
        let mut expected = vec![1, b'H'];
        for v in [1u64, 2, 3] {
            expected.extend_from_slice(&v.to_be_bytes());
        }
        assert_eq!(hs.encode(), expected);
    }

    #[test]
    fn bad_headers_and_trailing_bytes_are_rejected() {
        let hs = HardState::default().encode();
        let mut v2 = hs.clone();
        v2[0] = 2;
        assert_eq!(
            HardState::decode(&v2),
            Err(DecodeError::UnsupportedVersion(2))
        );
        assert_eq!(
            Entry::decode(&hs),
            Err(DecodeError::WrongType {
                expected: b'E',
                found: b'H'
            })
        );
        let mut long = hs.clone();
        long.push(0);
        assert_eq!(HardState::decode(&long), Err(DecodeError::TrailingBytes(1)));
        assert_eq!(HardState::decode(&hs[..5]), Err(DecodeError::Truncated));
    }

    #[test]
    fn every_truncation_of_a_message_fails_cleanly() {
        let bytes = sample_message().encode();
        for cut in 0..bytes.len() {
            assert!(Message::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[quickcheck]
    fn decoding_arbitrary_bytes_never_panics(bytes: Vec<u8>, flip: Vec<(usize, u8)>) -> bool {
        let _ = Message::decode(&bytes);
        let _ = Entry::decode(&bytes);
        let _ = HardState::decode(&bytes);
        let _ = Snapshot::decode(&bytes);
        // Also mutate a valid encoding so deeper branches are reached.
        let mut valid = sample_message().encode();
        for (pos, value) in flip {
            let len = valid.len();
            valid[pos % len] = value;
        }
        let _ = Message::decode(&valid);
        true
    }
}
