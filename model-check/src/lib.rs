//! `oxetcd-model-check`: stateright models of an oxetcd cluster. The models drive
//! `oxetcd_spec::raft` verbatim over a lossy, duplicating, reordering network with
//! crash-restart; no Raft logic lives here, only the harness and the properties.
