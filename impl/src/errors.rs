//! The one table from oxetcd's errors to what etcd 3.4.23 sends: gRPC status code and
//! message (etcd's `api/v3rpc/rpctypes`), so `etcdctl` and client libraries print and
//! branch on exactly what they would with etcd.

use oxetcd_spec::apply::ApplyError;
use oxetcd_spec::auth::{AuthError, GrpcCode};
use oxetcd_spec::lease::LeaseError;
use oxetcd_spec::mvcc::MvccError;
use tonic::{Code, Status};

use crate::node_loop::LoopError;

/// etcd's `ErrGRPCRequestTooLarge`.
pub fn request_too_large() -> Status {
    Status::new(Code::InvalidArgument, "etcdserver: request is too large")
}

/// etcd's `ErrGRPCTooManyOps`.
pub fn too_many_ops() -> Status {
    Status::new(
        Code::InvalidArgument,
        "etcdserver: too many operations in txn request",
    )
}

/// etcd's `ErrGRPCTimeout`.
pub fn request_timed_out() -> Status {
    Status::new(Code::Unavailable, "etcdserver: request timed out")
}

/// etcd's `ErrGRPCNotCapable` / unimplemented calls.
pub fn not_implemented(what: &str) -> Status {
    Status::new(
        Code::Unimplemented,
        format!("oxetcd: {what} is not implemented yet"),
    )
}

/// A KV error as etcd sends it.
pub fn mvcc(error: MvccError) -> Status {
    let code = match error {
        MvccError::Compacted | MvccError::FutureRevision => Code::OutOfRange,
        MvccError::LeaseNotFound => Code::NotFound,
        MvccError::KeyNotFound
        | MvccError::ValueProvided
        | MvccError::LeaseProvided
        | MvccError::DuplicateKey
        | MvccError::EmptyKey => Code::InvalidArgument,
    };
    Status::new(code, error.to_string())
}

/// A lease error as etcd sends it.
pub fn lease(error: LeaseError) -> Status {
    let code = match error {
        LeaseError::NotFound => Code::NotFound,
        LeaseError::AlreadyExists => Code::FailedPrecondition,
        LeaseError::TtlTooLarge => Code::OutOfRange,
        LeaseError::NotPrimary => Code::Unavailable,
    };
    Status::new(code, error.to_string())
}

/// A refusal by a raised alarm as etcd sends it (`ErrGRPCNoSpace`, `ErrGRPCCorrupt`).
pub fn alarm(error: oxetcd_spec::alarm::AlarmError) -> Status {
    let code = match error {
        oxetcd_spec::alarm::AlarmError::NoSpace => Code::ResourceExhausted,
        oxetcd_spec::alarm::AlarmError::Corrupt => Code::DataLoss,
    };
    Status::new(code, error.to_string())
}

/// An auth error as etcd sends it (the code `spec::auth` assigns, etcd's text).
pub fn auth(error: AuthError) -> Status {
    let code = match error.grpc_code() {
        GrpcCode::InvalidArgument => Code::InvalidArgument,
        GrpcCode::PermissionDenied => Code::PermissionDenied,
        GrpcCode::FailedPrecondition => Code::FailedPrecondition,
        GrpcCode::Unauthenticated => Code::Unauthenticated,
    };
    Status::new(code, error.to_string())
}

/// An apply error as etcd sends it.
pub fn apply(error: ApplyError) -> Status {
    match error {
        ApplyError::Mvcc(error) => mvcc(error),
        ApplyError::Lease(error) => lease(error),
        ApplyError::Alarm(error) => alarm(error),
        ApplyError::Auth(error) => auth(error),
        other => Status::new(Code::Unknown, other.to_string()),
    }
}

/// A node-loop error as etcd sends it (all `Unavailable`, which clients retry).
pub fn node(error: &LoopError) -> Status {
    Status::new(Code::Unavailable, error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacted_is_out_of_range_with_etcds_text() {
        let status = mvcc(MvccError::Compacted);
        assert_eq!(status.code(), Code::OutOfRange);
        assert_eq!(
            status.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
    }

    #[test]
    fn lease_not_found_is_not_found() {
        let status = lease(LeaseError::NotFound);
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "etcdserver: requested lease not found");
    }

    #[test]
    fn empty_key_is_invalid_argument() {
        let status = mvcc(MvccError::EmptyKey);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "etcdserver: key is not provided");
    }

    #[test]
    fn no_leader_is_unavailable() {
        let status = node(&LoopError::NoLeader);
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "etcdserver: no leader");
    }
}
