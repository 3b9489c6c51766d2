//! Raft consensus as a pure state machine (Raft paper; etcd-io/raft's separation of
//! algorithm and I/O). Inputs are methods on `Node`; output is a `Ready` value.
