//! What one model run explores: cluster size, clients, network behaviour, crashes and the
//! injected bug, plus the search bounds. Parsed by the CLI, used by tests as plain values.

use std::fmt;

/// How the simulated network treats messages (stateright's network models).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum NetworkKind {
    /// Unordered and lossy: any message may be delivered in any order, at most once, or
    /// dropped.
    Lossy,
    /// Unordered and reliable: any message may be delivered in any order, at most once, or
    /// wait forever. No property looks at the network, so a message waiting forever is
    /// the same to them as a lost one: this reaches the same server states as `lossy`
    /// through fewer model states (no separate "dropped" variant of each state).
    Unordered,
    /// Unordered and duplicating: a sent message stays deliverable forever, so it may be
    /// delivered any number of times (and, never delivered, looks lost).
    Duplicating,
    /// Reliable FIFO per (sender, receiver) channel: the well-behaved network.
    Ordered,
}

impl fmt::Display for NetworkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NetworkKind::Lossy => "lossy",
            NetworkKind::Unordered => "unordered",
            NetworkKind::Duplicating => "duplicating",
            NetworkKind::Ordered => "ordered",
        })
    }
}

/// A known-broken variant of Raft, switched on through `spec::raft::Config`, that the
/// checker must catch (non-vacuity of the safety properties).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum InjectedBug {
    /// A node grants its vote to a second candidate in the same term (breaks Raft §5.2,
    /// election safety).
    GrantTwoVotesInOneTerm,
    /// A leader commits an entry from an earlier term by counting replicas (the Figure 8
    /// scenario, Raft §5.4.2).
    CommitPreviousTermByCounting,
    /// A follower accepts AppendEntries from a stale-term leader (Raft §5.1/§5.3).
    AcceptAppendWithoutTermCheck,
}

impl InjectedBug {
    /// Every injectable bug, for tests and help texts.
    pub const ALL: [InjectedBug; 3] = [
        InjectedBug::GrantTwoVotesInOneTerm,
        InjectedBug::CommitPreviousTermByCounting,
        InjectedBug::AcceptAppendWithoutTermCheck,
    ];
}

impl fmt::Display for InjectedBug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InjectedBug::GrantTwoVotesInOneTerm => "grant-two-votes-in-one-term",
            InjectedBug::CommitPreviousTermByCounting => "commit-previous-term-by-counting",
            InjectedBug::AcceptAppendWithoutTermCheck => "accept-append-without-term-check",
        })
    }
}

/// One model: the cluster and its environment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelConfig {
    /// Number of Raft servers (2..=5).
    pub servers: usize,
    /// Number of client actors; client `c` writes value `c + 1` to key 0, then reads key 0.
    pub clients: usize,
    /// Network behaviour.
    pub network: NetworkKind,
    /// Maximum number of servers crashed at the same time (stateright's `max_crashes`);
    /// a crashed server may restart from its durable state any number of times.
    pub crashes: usize,
    /// Highest term explored: states where some server's term exceeds it are outside the
    /// model's boundary. Bounds the number of elections, otherwise unbounded.
    pub term_max: u64,
    /// How many heartbeat rounds a leader may start per term of its leadership (the
    /// heartbeat timer is the environment, so the harness bounds it to keep the state
    /// space finite). Heartbeats let a leader repair logs after message loss.
    pub heartbeats_per_term: u8,
    /// How many times a client may re-send a request after a server answered "not leader".
    pub client_retries_max: u8,
    /// Run Raft's pre-vote phase (thesis §9.6) before elections.
    pub pre_vote: bool,
    /// A known bug to switch on, or `None` for the correct algorithm.
    pub bug: Option<InjectedBug>,
    /// Start the search from the end of this scenario's scripted prefix instead of from a
    /// fresh cluster ([`crate::scenario`]).
    pub scenario: Option<Scenario>,
}

impl ModelConfig {
    /// Smallest supported cluster size.
    pub const SERVERS_MIN: usize = 2;
    /// Largest supported cluster size.
    pub const SERVERS_MAX: usize = 5;

    /// Checks that the model can be built: the cluster size is supported and the
    /// selected scenario's prefix can be played under this configuration.
    ///
    /// # Errors
    /// A sentence saying what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if !(Self::SERVERS_MIN..=Self::SERVERS_MAX).contains(&self.servers) {
            return Err(format!(
                "--servers must be between {} and {}",
                Self::SERVERS_MIN,
                Self::SERVERS_MAX
            ));
        }
        if let Some(scenario) = self.scenario {
            scenario.check_config(self)?;
        }
        Ok(())
    }
}

/// A named starting point of the search: a scripted prefix of model steps from a fresh
/// cluster to an interesting state, from which the checker then explores exhaustively
/// (see [`crate::scenario`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Scenario {
    /// Raft paper Figure 8 (b), with three servers: n1 led term 1 and appended an entry
    /// nobody else has, then n3 led term 2 (elected by n2) and appended a different entry
    /// at the same index.
    Figure8,
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scenario::Figure8 => "figure8",
        })
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            servers: 3,
            clients: 1,
            network: NetworkKind::Lossy,
            crashes: 1,
            term_max: 3,
            heartbeats_per_term: 1,
            client_retries_max: 2,
            pre_vote: false,
            bug: None,
            scenario: None,
        }
    }
}
