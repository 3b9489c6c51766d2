//! Authentication and authorisation (etcd 3.4 auth store): users, roles, permissions,
//! enable/disable, the auth revision and the permission checks.
