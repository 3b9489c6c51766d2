//! Auxiliary variables (in the TLA+ sense): facts about the past that the properties need
//! but no server keeps, recorded by the model from the messages it carries. They never
//! influence what an actor does.

use std::collections::BTreeMap;

use stateright::actor::Id;
use stateright::semantics::{ConsistencyTester, LinearizabilityTester};

use crate::kv::{KvOp, KvRet, KvSpec, RequestId};

/// Everything the model records besides the actors' own states.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelHistory {
    /// Client invocations and returns, for linearizability.
    pub clients: ClientLog,
    /// Which server acted as leader of which term, for election safety.
    pub leaders: LeaderLog,
}

impl ModelHistory {
    /// The empty history of a fresh cluster.
    pub fn new() -> Self {
        ModelHistory {
            clients: ClientLog::new(),
            leaders: LeaderLog::default(),
        }
    }
}

impl Default for ModelHistory {
    fn default() -> Self {
        Self::new()
    }
}

/// The client-visible history fed to stateright's linearizability tester.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientLog {
    tester: LinearizabilityTester<Id, KvSpec>,
    /// The request each client is waiting for; a response to anything else (a duplicate,
    /// a late answer to a retried attempt) is not a return.
    outstanding: BTreeMap<Id, RequestId>,
}

impl ClientLog {
    /// An empty history.
    pub fn new() -> Self {
        ClientLog {
            tester: LinearizabilityTester::new(KvSpec::default()),
            outstanding: BTreeMap::new(),
        }
    }

    /// Records that `client` invoked `op` as `request`; `None` if the history did not
    /// change (a retry of the request already outstanding).
    pub fn on_invoke(&self, client: Id, request: RequestId, op: KvOp) -> Option<Self> {
        if self.outstanding.get(&client) == Some(&request) {
            return None;
        }
        let mut next = self.clone();
        // An invalid sequence (invoke while in flight) marks the history invalid, which the
        // linearizability property then reports; the client actor never does that.
        let _ = next.tester.on_invoke(client, op);
        next.outstanding.insert(client, request);
        Some(next)
    }

    /// Records that `client` received `ret` for `request`; `None` if that is not the
    /// client's outstanding request (duplicates and stale answers are ignored).
    pub fn on_return(&self, client: Id, request: RequestId, ret: KvRet) -> Option<Self> {
        if self.outstanding.get(&client) != Some(&request) {
            return None;
        }
        let mut next = self.clone();
        let _ = next.tester.on_return(client, ret);
        next.outstanding.remove(&client);
        Some(next)
    }

    /// Whether some sequential order of the recorded operations explains every result.
    pub fn is_linearizable(&self) -> bool {
        self.tester.is_consistent()
    }

    /// The operations serialised in a valid order, if one exists (for reports).
    pub fn serialized(&self) -> Option<Vec<(KvOp, KvRet)>> {
        self.tester.serialized_history()
    }
}

impl Default for ClientLog {
    fn default() -> Self {
        Self::new()
    }
}

/// For every term, the first server seen acting as its leader (sending AppendEntries or
/// heartbeats, which only a leader does), and whether a second one was ever seen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LeaderLog {
    by_term: BTreeMap<u64, Id>,
    second_leader: Option<(u64, Id, Id)>,
}

impl LeaderLog {
    /// Records that `server` acted as leader in `term`; `None` if nothing new was learned.
    pub fn on_leader_message(&self, term: u64, server: Id) -> Option<Self> {
        match self.by_term.get(&term) {
            Some(&known) if known == server => None,
            Some(&known) => {
                if self.second_leader.is_some() {
                    return None;
                }
                let mut next = self.clone();
                next.second_leader = Some((term, known, server));
                Some(next)
            }
            None => {
                let mut next = self.clone();
                next.by_term.insert(term, server);
                Some(next)
            }
        }
    }

    /// Whether two different servers were seen leading one term.
    pub fn second_leader_seen(&self) -> bool {
        self.second_leader.is_some()
    }

    /// The first term seen with two leaders, and the two servers.
    pub fn second_leader(&self) -> Option<(u64, Id, Id)> {
        self.second_leader
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_read_after_completed_write_is_not_linearizable() {
        let (c0, c1) = (Id::from(3), Id::from(4));
        let w = RequestId { client: 3, seq: 1 };
        let r = RequestId { client: 4, seq: 1 };
        let log = ClientLog::new()
            .on_invoke(c0, w, KvOp::Put { key: 0, value: 1 })
            .and_then(|l| l.on_return(c0, w, KvRet::PutOk))
            .and_then(|l| l.on_invoke(c1, r, KvOp::Get { key: 0 }))
            .expect("each step records something");
        assert!(log.is_linearizable());
        let stale = log
            .on_return(c1, r, KvRet::GetOk(None))
            .expect("outstanding");
        assert!(!stale.is_linearizable());
        let fresh = log
            .on_return(c1, r, KvRet::GetOk(Some(1)))
            .expect("outstanding");
        assert!(fresh.is_linearizable());
    }

    #[test]
    fn duplicate_response_is_not_a_second_return() {
        let c0 = Id::from(3);
        let w = RequestId { client: 3, seq: 1 };
        let log = ClientLog::new()
            .on_invoke(c0, w, KvOp::Put { key: 0, value: 1 })
            .and_then(|l| l.on_return(c0, w, KvRet::PutOk))
            .expect("recorded");
        assert_eq!(log.on_return(c0, w, KvRet::PutOk), None);
        assert!(log.is_linearizable());
    }

    #[test]
    fn second_leader_in_a_term_is_flagged() {
        let log = LeaderLog::default()
            .on_leader_message(2, Id::from(0))
            .expect("new term");
        assert_eq!(log.on_leader_message(2, Id::from(0)), None);
        let bad = log
            .on_leader_message(2, Id::from(1))
            .expect("second leader");
        assert_eq!(bad.second_leader(), Some((2, Id::from(0), Id::from(1))));
        assert!(!log.second_leader_seen());
    }
}
