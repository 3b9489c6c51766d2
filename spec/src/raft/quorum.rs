//! Majority-quorum arithmetic as pure functions: the commit index a set of match indexes
//! supports, and the outcome of a vote. Follows etcd-io/raft `quorum/majority.go`.

use std::collections::{BTreeMap, BTreeSet};

use super::types::{LogIndex, NodeId};

/// Outcome of counting votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VoteResult {
    /// Not decided yet.
    Pending,
    /// A majority granted.
    Won,
    /// A majority can no longer grant.
    Lost,
}

/// The largest index replicated on a majority of `voters` (0 for an empty set).
/// `matched(id)` is the acknowledged match index of voter `id`.
#[must_use]
pub fn committed_index(
    voters: &BTreeSet<NodeId>,
    matched: impl Fn(NodeId) -> LogIndex,
) -> LogIndex {
    if voters.is_empty() {
        return LogIndex(0);
    }
    let mut indexes: Vec<LogIndex> = voters.iter().map(|id| matched(*id)).collect();
    indexes.sort_unstable_by(|a, b| b.cmp(a));
    // With n voters, the (n/2 + 1)-th largest index is on a majority.
    indexes[voters.len() / 2]
}

/// The result of an election among `voters` given `votes` (true = granted).
#[must_use]
pub fn vote_result(voters: &BTreeSet<NodeId>, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
    if voters.is_empty() {
        return VoteResult::Won;
    }
    let quorum = voters.len() / 2 + 1;
    let granted = voters
        .iter()
        .filter(|id| votes.get(id) == Some(&true))
        .count();
    let rejected = voters
        .iter()
        .filter(|id| votes.get(id) == Some(&false))
        .count();
    if granted >= quorum {
        VoteResult::Won
    } else if voters.len() - rejected < quorum {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}

/// Whether `acks` contains a majority of `voters`.
#[must_use]
pub fn has_quorum(voters: &BTreeSet<NodeId>, acks: &BTreeSet<NodeId>) -> bool {
    voters.iter().filter(|id| acks.contains(id)).count() > voters.len() / 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck_macros::quickcheck;

    /// Dumb twin: the largest index `i` such that more than half the voters have match >= i.
    fn committed_by_counting(matches: &[u64]) -> u64 {
        (0..=matches.iter().copied().max().unwrap_or(0))
            .rev()
            .find(|i| matches.iter().filter(|m| *m >= i).count() * 2 > matches.len())
            .unwrap_or(0)
    }

    #[quickcheck]
    fn committed_index_matches_counting(matches: Vec<u8>) -> bool {
        let matches: Vec<u64> = matches
            .into_iter()
            .take(7)
            .map(|m| u64::from(m % 6))
            .collect();
        let voters: BTreeSet<NodeId> = (1..=matches.len() as u64).map(NodeId).collect();
        let got = committed_index(&voters, |id| LogIndex(matches[(id.0 - 1) as usize]));
        got.0 == committed_by_counting(&matches)
    }

    #[quickcheck]
    fn vote_result_matches_counting(votes: Vec<Option<bool>>) -> bool {
        let votes: Vec<Option<bool>> = votes.into_iter().take(7).collect();
        if votes.is_empty() {
            return true;
        }
        let voters: BTreeSet<NodeId> = (1..=votes.len() as u64).map(NodeId).collect();
        let map: BTreeMap<NodeId, bool> = votes
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (NodeId(i as u64 + 1), v)))
            .collect();
        let yes = votes.iter().filter(|v| **v == Some(true)).count();
        let undecided = votes.iter().filter(|v| v.is_none()).count();
        let expected = if yes * 2 > votes.len() {
            VoteResult::Won
        } else if (yes + undecided) * 2 <= votes.len() {
            VoteResult::Lost
        } else {
            VoteResult::Pending
        };
        vote_result(&voters, &map) == expected
    }

    #[test]
    fn four_voters_need_three() {
        let voters: BTreeSet<NodeId> = [1, 2, 3, 4].into_iter().map(NodeId).collect();
        let m = [5, 5, 3, 1];
        assert_eq!(
            committed_index(&voters, |id| LogIndex(m[(id.0 - 1) as usize])),
            LogIndex(3)
        );
    }
}
