//! Auth errors with etcd 3.4's gRPC texts and status codes as data.

/// A gRPC status code, as etcd's `rpctypes` assigns them to auth errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GrpcCode {
    /// `InvalidArgument` (3).
    InvalidArgument,
    /// `PermissionDenied` (7).
    PermissionDenied,
    /// `FailedPrecondition` (9).
    FailedPrecondition,
    /// `Unauthenticated` (16).
    Unauthenticated,
}

impl GrpcCode {
    /// The numeric gRPC code.
    pub fn code(self) -> u32 {
        match self {
            Self::InvalidArgument => 3,
            Self::PermissionDenied => 7,
            Self::FailedPrecondition => 9,
            Self::Unauthenticated => 16,
        }
    }
}

/// Every error the etcd 3.4 auth store returns; `Display` is the exact text etcd sends
/// (and `etcdctl` prints after `Error: `).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, thiserror::Error)]
pub enum AuthError {
    /// Enabling auth without a `root` user.
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    /// Enabling auth while `root` lacks the `root` role.
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    /// UserAdd of an existing name.
    #[error("etcdserver: user name already exists")]
    UserAlreadyExist,
    /// Empty user name (UserAdd), or a request without a user while auth is enabled.
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    /// The named user does not exist.
    #[error("etcdserver: user name not found")]
    UserNotFound,
    /// RoleAdd of an existing name.
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExist,
    /// The named role does not exist.
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    /// RoleAdd with an empty name.
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    /// Authenticate with an unknown user, a wrong password or a no-password user.
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    /// The user may not do this.
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    /// UserRevokeRole of a role the user does not have.
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    /// RoleRevokePermission of a permission the role does not have.
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    /// Authenticate while auth is disabled.
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    /// A token the server does not know (the server's token bookkeeping raises it).
    #[error("etcdserver: invalid auth token")]
    InvalidAuthToken,
    /// Deleting the root user or role, or revoking root from root, while enabled.
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
    /// The request was authorised at an auth revision older than the current one.
    #[error("etcdserver: revision of auth store is old")]
    AuthOldRevision,
}

impl AuthError {
    /// The gRPC status code etcd answers with.
    pub fn grpc_code(self) -> GrpcCode {
        match self {
            Self::UserEmpty
            | Self::RoleEmpty
            | Self::AuthFailed
            | Self::InvalidAuthMgmt
            | Self::AuthOldRevision => GrpcCode::InvalidArgument,
            Self::PermissionDenied => GrpcCode::PermissionDenied,
            Self::InvalidAuthToken => GrpcCode::Unauthenticated,
            Self::RootUserNotExist
            | Self::RootRoleNotExist
            | Self::UserAlreadyExist
            | Self::UserNotFound
            | Self::RoleAlreadyExist
            | Self::RoleNotFound
            | Self::RoleNotGranted
            | Self::PermissionNotGranted
            | Self::AuthNotEnabled => GrpcCode::FailedPrecondition,
        }
    }
}
