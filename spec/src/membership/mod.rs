//! Cluster membership (etcd 3.4 membership package): members, learners and their checks.
