//! The v2 tree store (etcd 3.4 `store` package): keys, directories, TTLs, CAS/CAD,
//! in-order keys, the 1000-event history and watch matching.
