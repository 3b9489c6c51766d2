//! `etcdserverpb.Auth`: every RPC is an auth command through the log (as etcd 3.4 does),
//! proposed on behalf of the caller's token, so the admin checks and the state changes
//! are `spec::auth`'s. What happens here is what etcd does before proposing: passwords
//! are hashed with bcrypt ([`crate::token::Tokens::hash_password`]), `Authenticate`
//! checks the password against the stored hash and proposes only the new token's random
//! part; the token handed back is built from the applied entry
//! ([`crate::token::Tokens::token_for`]). `AuthStatus` (etcd 3.5) reads the applied
//! state after a linearizable barrier.

use oxetcd_api::{authpb, etcdserverpb as pb};
use oxetcd_spec::apply::{Applied, AuthCommand, AuthInfo, AuthResponse, Command, Response};
use oxetcd_spec::auth::{AuthError, Permission, PermissionType};
use tonic::{Code, Request, Status};

use super::Context;
use crate::errors;
use crate::token::Tokens;

/// The Auth service.
#[derive(Clone, Debug)]
pub struct AuthService(pub Context);

/// How many times `Authenticate` retries when the auth store changed between the
/// password check and the applied command (etcd retries until it did not).
const AUTHENTICATE_ATTEMPTS: usize = 5;

/// etcd 3.4's `ErrNoPasswordUser`, which it sends with code Unknown.
const NO_PASSWORD_USER: &str =
    "auth: authentication failed, password was given for no password user";

fn unexpected() -> Status {
    Status::internal("oxetcd: applier returned a response of another kind")
}

type Answer<T> = Result<tonic::Response<T>, Status>;

/// Where an auth command was applied.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Its log index (a simple token's suffix).
    index: u64,
    /// The KV revision then (the response header's).
    revision: i64,
}

impl AuthService {
    /// Proposes `command` as the caller and returns the applied entry and its response.
    async fn run(
        &self,
        auth: Option<AuthInfo>,
        command: AuthCommand,
    ) -> Result<(Entry, AuthResponse), Status> {
        let Applied {
            index,
            revision,
            result,
            ..
        } = self.0.propose_as(Command::Auth(command), auth).await?;
        match result.map_err(errors::apply)? {
            Response::Auth(response) => Ok((Entry { index, revision }, response)),
            _ => Err(unexpected()),
        }
    }

    /// Proposes `command` as the caller; the response header only.
    async fn header_only(
        &self,
        auth: Option<AuthInfo>,
        command: AuthCommand,
    ) -> Result<Option<pb::ResponseHeader>, Status> {
        let (applied, _) = self.run(auth, command).await?;
        Ok(self.0.header().at(applied.revision))
    }

    /// The stored form of a password: the client's `hashedPassword` (etcd 3.5: base64 of
    /// a bcrypt hash) or a bcrypt hash of `password`.
    async fn hashed(&self, password: String, hashed_password: &str) -> Result<Vec<u8>, Status> {
        if !hashed_password.is_empty() {
            use base64::Engine as _;
            return base64::engine::general_purpose::STANDARD
                .decode(hashed_password)
                .map_err(|_| Status::invalid_argument("etcdserver: invalid hashed password"));
        }
        let tokens = self.0.tokens.clone();
        tokio::task::spawn_blocking(move || tokens.hash_password(&password))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(Status::internal)
    }
}

fn permission_from_pb(perm: authpb::Permission) -> Permission {
    Permission {
        perm_type: PermissionType::from_number(perm.perm_type).unwrap_or(PermissionType::Read),
        key: perm.key,
        range_end: perm.range_end,
    }
}

fn permission_to_pb(perm: Permission) -> authpb::Permission {
    authpb::Permission {
        perm_type: perm.perm_type.number(),
        key: perm.key,
        range_end: perm.range_end,
    }
}

fn names(response: AuthResponse) -> Result<Vec<String>, Status> {
    match response {
        AuthResponse::Names(names) => Ok(names),
        _ => Err(unexpected()),
    }
}

#[tonic::async_trait]
impl pb::auth_server::Auth for AuthService {
    async fn auth_enable(
        &self,
        request: Request<pb::AuthEnableRequest>,
    ) -> Answer<pb::AuthEnableResponse> {
        let auth = self.0.auth_info(&request)?;
        let header = self.header_only(auth, AuthCommand::Enable).await?;
        Ok(tonic::Response::new(pb::AuthEnableResponse { header }))
    }

    async fn auth_disable(
        &self,
        request: Request<pb::AuthDisableRequest>,
    ) -> Answer<pb::AuthDisableResponse> {
        let auth = self.0.auth_info(&request)?;
        let header = self.header_only(auth, AuthCommand::Disable).await?;
        Ok(tonic::Response::new(pb::AuthDisableResponse { header }))
    }

    async fn auth_status(
        &self,
        request: Request<pb::AuthStatusRequest>,
    ) -> Answer<pb::AuthStatusResponse> {
        let ctx = &self.0;
        ctx.auth_info(&request)?;
        ctx.linearizable_barrier().await?;
        let (enabled, auth_revision, revision) = ctx.read(|state| {
            (
                state.auth().is_enabled(),
                state.auth().revision(),
                state.store().current_revision(),
            )
        })?;
        Ok(tonic::Response::new(pb::AuthStatusResponse {
            header: ctx.header().at(revision),
            enabled,
            auth_revision,
        }))
    }

    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Answer<pb::AuthenticateResponse> {
        let ctx = &self.0;
        let token = super::request_token(request.metadata());
        let request = request.into_inner();
        ctx.linearizable_barrier().await?;
        for _ in 0..AUTHENTICATE_ATTEMPTS {
            let (hash, checked_revision) = ctx.read(|state| {
                let store = state.auth();
                if store.is_enabled() && store.user(&request.name).is_some_and(|u| u.no_password) {
                    return Err(Status::new(Code::Unknown, NO_PASSWORD_USER));
                }
                store
                    .password_hash(&request.name)
                    .map(|(hash, revision)| (hash.to_vec(), revision))
                    .map_err(errors::auth)
            })??;
            let password = request.password.clone();
            let matches =
                tokio::task::spawn_blocking(move || Tokens::check_password(&password, &hash))
                    .await
                    .map_err(|e| Status::internal(e.to_string()))?;
            if !matches {
                return Err(errors::auth(AuthError::AuthFailed));
            }
            // etcd checks the caller's token when it proposes, after the password.
            let auth = ctx.token_info(token.as_deref())?;
            let prefix = ctx.tokens.new_prefix();
            let command = AuthCommand::Authenticate {
                name: request.name.clone(),
                simple_token: prefix.clone(),
            };
            let (applied, response) = self.run(auth, command).await?;
            let AuthResponse::Authenticated { auth_revision, .. } = response else {
                return Err(unexpected());
            };
            if auth_revision != checked_revision {
                continue;
            }
            let token = ctx
                .tokens
                .token_for(&prefix, applied.index, &request.name, auth_revision)
                // etcd hands a signing error back as a plain error: code Unknown.
                .map_err(Status::unknown)?;
            return Ok(tonic::Response::new(pb::AuthenticateResponse {
                header: ctx.header().at(applied.revision),
                token,
            }));
        }
        Err(errors::request_timed_out())
    }

    async fn user_add(
        &self,
        request: Request<pb::AuthUserAddRequest>,
    ) -> Answer<pb::AuthUserAddResponse> {
        let auth = self.0.auth_info(&request)?;
        let request = request.into_inner();
        let no_password = request.options.is_some_and(|o| o.no_password);
        let password_hash = if no_password {
            Vec::new()
        } else {
            self.hashed(request.password, &request.hashed_password)
                .await?
        };
        let command = AuthCommand::UserAdd {
            name: request.name,
            password_hash,
            no_password,
        };
        let header = self.header_only(auth, command).await?;
        Ok(tonic::Response::new(pb::AuthUserAddResponse { header }))
    }

    async fn user_get(
        &self,
        request: Request<pb::AuthUserGetRequest>,
    ) -> Answer<pb::AuthUserGetResponse> {
        let auth = self.0.auth_info(&request)?;
        let name = request.into_inner().name;
        let (applied, response) = self.run(auth, AuthCommand::UserGet { name }).await?;
        Ok(tonic::Response::new(pb::AuthUserGetResponse {
            header: self.0.header().at(applied.revision),
            roles: names(response)?,
        }))
    }

    async fn user_list(
        &self,
        request: Request<pb::AuthUserListRequest>,
    ) -> Answer<pb::AuthUserListResponse> {
        let auth = self.0.auth_info(&request)?;
        let (applied, response) = self.run(auth, AuthCommand::UserList).await?;
        Ok(tonic::Response::new(pb::AuthUserListResponse {
            header: self.0.header().at(applied.revision),
            users: names(response)?,
        }))
    }

    async fn user_delete(
        &self,
        request: Request<pb::AuthUserDeleteRequest>,
    ) -> Answer<pb::AuthUserDeleteResponse> {
        let auth = self.0.auth_info(&request)?;
        let name = request.into_inner().name;
        let header = self
            .header_only(auth, AuthCommand::UserDelete { name })
            .await?;
        Ok(tonic::Response::new(pb::AuthUserDeleteResponse { header }))
    }

    async fn user_change_password(
        &self,
        request: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Answer<pb::AuthUserChangePasswordResponse> {
        let auth = self.0.auth_info(&request)?;
        let request = request.into_inner();
        let password_hash = self
            .hashed(request.password, &request.hashed_password)
            .await?;
        let command = AuthCommand::UserChangePassword {
            name: request.name,
            password_hash,
        };
        let header = self.header_only(auth, command).await?;
        Ok(tonic::Response::new(pb::AuthUserChangePasswordResponse {
            header,
        }))
    }

    async fn user_grant_role(
        &self,
        request: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Answer<pb::AuthUserGrantRoleResponse> {
        let auth = self.0.auth_info(&request)?;
        let request = request.into_inner();
        let command = AuthCommand::UserGrantRole {
            user: request.user,
            role: request.role,
        };
        let header = self.header_only(auth, command).await?;
        Ok(tonic::Response::new(pb::AuthUserGrantRoleResponse {
            header,
        }))
    }

    async fn user_revoke_role(
        &self,
        request: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Answer<pb::AuthUserRevokeRoleResponse> {
        let auth = self.0.auth_info(&request)?;
        let request = request.into_inner();
        let command = AuthCommand::UserRevokeRole {
            name: request.name,
            role: request.role,
        };
        let header = self.header_only(auth, command).await?;
        Ok(tonic::Response::new(pb::AuthUserRevokeRoleResponse {
            header,
        }))
    }

    async fn role_add(
        &self,
        request: Request<pb::AuthRoleAddRequest>,
    ) -> Answer<pb::AuthRoleAddResponse> {
        let auth = self.0.auth_info(&request)?;
        let name = request.into_inner().name;
        let header = self
            .header_only(auth, AuthCommand::RoleAdd { name })
            .await?;
        Ok(tonic::Response::new(pb::AuthRoleAddResponse { header }))
    }

    async fn role_get(
        &self,
        request: Request<pb::AuthRoleGetRequest>,
    ) -> Answer<pb::AuthRoleGetResponse> {
        let auth = self.0.auth_info(&request)?;
        let role = request.into_inner().role;
        let (applied, response) = self.run(auth, AuthCommand::RoleGet { role }).await?;
        let AuthResponse::Permissions(perms) = response else {
            return Err(unexpected());
        };
        Ok(tonic::Response::new(pb::AuthRoleGetResponse {
            header: self.0.header().at(applied.revision),
            perm: perms.into_iter().map(permission_to_pb).collect(),
        }))
    }

    async fn role_list(
        &self,
        request: Request<pb::AuthRoleListRequest>,
    ) -> Answer<pb::AuthRoleListResponse> {
        let auth = self.0.auth_info(&request)?;
        let (applied, response) = self.run(auth, AuthCommand::RoleList).await?;
        Ok(tonic::Response::new(pb::AuthRoleListResponse {
            header: self.0.header().at(applied.revision),
            roles: names(response)?,
        }))
    }

    async fn role_delete(
        &self,
        request: Request<pb::AuthRoleDeleteRequest>,
    ) -> Answer<pb::AuthRoleDeleteResponse> {
        let auth = self.0.auth_info(&request)?;
        let role = request.into_inner().role;
        let header = self
            .header_only(auth, AuthCommand::RoleDelete { role })
            .await?;
        Ok(tonic::Response::new(pb::AuthRoleDeleteResponse { header }))
    }

    async fn role_grant_permission(
        &self,
        request: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Answer<pb::AuthRoleGrantPermissionResponse> {
        let auth = self.0.auth_info(&request)?;
        let request = request.into_inner();
        let perm = request
            .perm
            .ok_or_else(|| Status::invalid_argument("etcdserver: permission not given"))?;
        let command = AuthCommand::RoleGrantPermission {
            name: request.name,
            perm: permission_from_pb(perm),
        };
        let header = self.header_only(auth, command).await?;
        Ok(tonic::Response::new(pb::AuthRoleGrantPermissionResponse {
            header,
        }))
    }

    async fn role_revoke_permission(
        &self,
        request: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Answer<pb::AuthRoleRevokePermissionResponse> {
        let auth = self.0.auth_info(&request)?;
        let request = request.into_inner();
        let command = AuthCommand::RoleRevokePermission {
            role: request.role,
            key: request.key,
            range_end: request.range_end,
        };
        let header = self.header_only(auth, command).await?;
        Ok(tonic::Response::new(pb::AuthRoleRevokePermissionResponse {
            header,
        }))
    }
}
