//! The replicated application of the models: a tiny key-value map, its sequential
//! specification for the linearizability tester, and the byte encoding of client commands
//! carried in Raft log entries.
//!
//! What this is not: etcd's MVCC store. The models check consensus and the client-visible
//! consistency it gives, so the application is the smallest one that can expose a stale or
//! lost write: keys and values drawn from tiny domains. Duplicate requests (a duplicating
//! network delivers a proposal twice) are filtered by a per-client session table, as the
//! Raft thesis §6.3 prescribes, so a retried write is applied at most once.

use std::collections::BTreeMap;

use stateright::semantics::SequentialSpec;

/// A key of the model's key-value map (tiny domain so that operations collide).
pub type Key = u8;
/// A value of the model's key-value map.
pub type Value = u8;

/// A client operation as the linearizability tester sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KvOp {
    /// Write `value` under `key`.
    Put {
        /// The key written.
        key: Key,
        /// The value written.
        value: Value,
    },
    /// Read the value under `key`.
    Get {
        /// The key read.
        key: Key,
    },
}

/// The result of a [`KvOp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KvRet {
    /// The write took effect.
    PutOk,
    /// The read saw this value (`None`: the key was never written).
    GetOk(Option<Value>),
}

/// The sequential reference object: a map applied one operation at a time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KvSpec {
    map: BTreeMap<Key, Value>,
}

impl SequentialSpec for KvSpec {
    type Op = KvOp;
    type Ret = KvRet;

    fn invoke(&mut self, op: &KvOp) -> KvRet {
        match *op {
            KvOp::Put { key, value } => {
                self.map.insert(key, value);
                KvRet::PutOk
            }
            KvOp::Get { key } => KvRet::GetOk(self.map.get(&key).copied()),
        }
    }
}

/// Identifies one client request: the client's index and its per-client request number
/// (strictly increasing per client, starting at 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId {
    /// Index of the client actor (its stateright `Id`).
    pub client: u8,
    /// Per-client sequence number, starting at 1.
    pub seq: u8,
}

/// A client command as it travels through the Raft log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KvCommand {
    /// Who asked, for the session table and for routing the response.
    pub request: RequestId,
    /// What to do.
    pub op: KvOp,
}

/// Length of an encoded [`KvCommand`].
const ENCODED_LEN: usize = 5;

impl KvCommand {
    /// Encodes the command as entry data: `[client, seq, tag, key, value]`.
    pub fn encode(&self) -> Vec<u8> {
        let (tag, key, value) = match self.op {
            KvOp::Put { key, value } => (1, key, value),
            KvOp::Get { key } => (2, key, 0),
        };
        vec![self.request.client, self.request.seq, tag, key, value]
    }

    /// Decodes entry data written by [`KvCommand::encode`]; `None` for anything else (for
    /// example the empty entry a new leader appends).
    pub fn decode(data: &[u8]) -> Option<KvCommand> {
        let [client, seq, tag, key, value]: [u8; ENCODED_LEN] = data.try_into().ok()?;
        let op = match tag {
            1 => KvOp::Put { key, value },
            2 => KvOp::Get { key },
            _ => return None,
        };
        Some(KvCommand {
            request: RequestId { client, seq },
            op,
        })
    }
}

/// The application state of one server: the map plus the session table that makes
/// applying a duplicated request a no-op (Raft thesis §6.3).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KvStateMachine {
    spec: KvSpec,
    /// Highest request number applied per client, with its result.
    sessions: BTreeMap<u8, (u8, KvRet)>,
}

impl KvStateMachine {
    /// Applies one committed command and returns its result. A request already applied
    /// returns its recorded result without touching the map again; an older one than the
    /// latest recorded returns `None` (its client has moved on and ignores the answer).
    pub fn apply(&mut self, command: &KvCommand) -> Option<KvRet> {
        let RequestId { client, seq } = command.request;
        match self.sessions.get(&client) {
            Some(&(last, ret)) if last == seq => return Some(ret),
            Some(&(last, _)) if last > seq => return None,
            _ => {}
        }
        let ret = self.spec.invoke(&command.op);
        self.sessions.insert(client, (seq, ret));
        Some(ret)
    }

    /// Reads `key` without going through the log (served after a ReadIndex round).
    pub fn read(&self, key: Key) -> Option<Value> {
        self.spec.map.get(&key).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_round_trips_through_entry_bytes() {
        for op in [KvOp::Put { key: 2, value: 7 }, KvOp::Get { key: 1 }] {
            let command = KvCommand {
                request: RequestId { client: 4, seq: 3 },
                op,
            };
            assert_eq!(KvCommand::decode(&command.encode()), Some(command));
        }
        assert_eq!(KvCommand::decode(&[]), None);
        assert_eq!(KvCommand::decode(&[0, 1, 9, 0, 0]), None);
    }

    #[test]
    fn duplicate_request_is_applied_once() {
        let mut kv = KvStateMachine::default();
        let put = |client, seq, value| KvCommand {
            request: RequestId { client, seq },
            op: KvOp::Put { key: 0, value },
        };
        assert_eq!(kv.apply(&put(3, 1, 1)), Some(KvRet::PutOk));
        assert_eq!(kv.apply(&put(4, 1, 2)), Some(KvRet::PutOk));
        assert_eq!(kv.apply(&put(3, 1, 1)), Some(KvRet::PutOk));
        assert_eq!(
            kv.read(0),
            Some(2),
            "the duplicate must not overwrite the later put"
        );
        assert_eq!(kv.apply(&put(4, 2, 5)), Some(KvRet::PutOk));
        assert_eq!(kv.apply(&put(4, 1, 2)), None);
        assert_eq!(kv.read(0), Some(5));
    }
}
