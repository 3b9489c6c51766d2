//! Leases (etcd 3.4 lessor): grant, revoke, keep-alive, time-to-live, expiry from an
//! explicit `now_ms`.
