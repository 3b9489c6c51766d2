//! Auth tokens and password hashing: the server's bookkeeping around `spec::auth`
//! (which sees only an [`AuthInfo`] and opaque password hashes).
//!
//! Two token kinds, chosen with `--auth-token` as etcd does:
//!
//! * `simple` (the default): `<16 random letters>.<log index>`, where the letters are
//!   chosen by the member that handles `Authenticate` and the index is the log index at
//!   which the `Authenticate` command was applied. Every member registers the token
//!   when it applies that entry ([`Tokens::on_applied`]), so the token works on any
//!   member. A token lives `--auth-token-ttl` seconds (default 300) after its last use,
//!   and is dropped when its user is deleted or changes password and when auth is
//!   disabled. A simple token carries no auth revision: a request made with it runs at
//!   the current auth revision (etcd's rule).
//! * `jwt,pub-key=FILE,priv-key=FILE,sign-method=ALG[,ttl=DURATION]`: a signed JSON Web
//!   Token with the claims `username`, `revision` (the auth revision at issue) and `exp`
//!   (default ttl 5 minutes). Verification is stateless; a request made with it runs at
//!   the token's revision, so any auth change makes older tokens fail with "revision of
//!   auth store is old" on permission-checked requests.
//!
//! Passwords are hashed with bcrypt (`--bcrypt-cost`, default 10) before a user change
//! is proposed, and checked against the stored hash before `Authenticate` is proposed.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use oxetcd_spec::apply::{ApplyError, AuthCommand, AuthInfo, Response};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// etcd's default `--bcrypt-cost`.
pub const DEFAULT_BCRYPT_COST: u32 = 10;
/// etcd's default `--auth-token-ttl` (seconds).
pub const DEFAULT_SIMPLE_TOKEN_TTL_SECS: u64 = 300;
/// etcd's default JWT `ttl` option.
const DEFAULT_JWT_TTL: Duration = Duration::from_secs(300);
/// Length of the random part of a simple token (etcd: `defaultSimpleTokenLength`).
const SIMPLE_TOKEN_LETTERS: usize = 16;

/// Why `--auth-token` could not be set up, with etcd's texts where it has them.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Neither `simple` nor `jwt`.
    #[error("auth: unknown token type: {0}")]
    UnknownType(String),
    /// `sign-method` missing or not supported.
    #[error("auth: invalid auth signature method")]
    InvalidMethod,
    /// A key file is missing for the method.
    #[error("auth: missing key data")]
    MissingKey,
    /// A key file could not be read.
    #[error("auth: reading {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// A key file does not hold a key of the method's kind.
    #[error("auth: key {path}: {error}")]
    Key {
        /// The file.
        path: String,
        /// Why.
        error: jsonwebtoken::errors::Error,
    },
    /// A private key file does not hold a key of the method's kind.
    #[error("auth: key {path}: {error}")]
    Pem {
        /// The file.
        path: String,
        /// Why.
        error: String,
    },
    /// The `ttl` option does not parse.
    #[error("auth: invalid ttl {0:?}")]
    Ttl(String),
    /// An option etcd does not know.
    #[error("auth: unknown option {0:?}")]
    UnknownOption(String),
}

/// A simple token's owner and expiry.
#[derive(Clone, Debug)]
struct SimpleToken {
    username: String,
    expires: Instant,
}

/// The JWT settings.
struct Jwt {
    algorithm: Algorithm,
    /// `None`: verify-only (no `priv-key`).
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    ttl: Duration,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwt")
            .field("algorithm", &self.algorithm)
            .field("can_sign", &self.encoding.is_some())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// The claims etcd puts in a JWT.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

/// The token provider of this member.
#[derive(Debug)]
pub struct Tokens {
    jwt: Option<Jwt>,
    simple_ttl: Duration,
    simple: Mutex<BTreeMap<String, SimpleToken>>,
    bcrypt_cost: u32,
}

impl Default for Tokens {
    fn default() -> Self {
        Self::simple(DEFAULT_SIMPLE_TOKEN_TTL_SECS, DEFAULT_BCRYPT_COST)
    }
}

impl Tokens {
    /// Simple tokens living `ttl_secs` after their last use.
    pub fn simple(ttl_secs: u64, bcrypt_cost: u32) -> Self {
        Self {
            jwt: None,
            simple_ttl: Duration::from_secs(ttl_secs),
            simple: Mutex::new(BTreeMap::new()),
            bcrypt_cost,
        }
    }

    /// The provider `--auth-token` asks for.
    ///
    /// # Errors
    /// [`TokenError`] for an unknown type, option, method or an unusable key.
    pub fn from_flag(
        auth_token: &str,
        ttl_secs: u64,
        bcrypt_cost: u32,
    ) -> Result<Self, TokenError> {
        let mut parts = auth_token.split(',');
        let kind = parts.next().unwrap_or_default();
        let mut tokens = Self::simple(ttl_secs, bcrypt_cost);
        match kind {
            "simple" => Ok(tokens),
            "jwt" => {
                let mut options = BTreeMap::new();
                for part in parts.filter(|p| !p.is_empty()) {
                    let (key, value) = part.split_once('=').unwrap_or((part, ""));
                    if !["pub-key", "priv-key", "sign-method", "ttl"].contains(&key) {
                        return Err(TokenError::UnknownOption(key.to_owned()));
                    }
                    options.insert(key.to_owned(), value.to_owned());
                }
                tokens.jwt = Some(Jwt::from_options(&options)?);
                Ok(tokens)
            }
            other => Err(TokenError::UnknownType(other.to_owned())),
        }
    }

    /// Whether tokens are JWTs.
    pub fn is_jwt(&self) -> bool {
        self.jwt.is_some()
    }

    /// The random part of a new simple token (etcd's `GenTokenPrefix`); empty for JWT.
    pub fn new_prefix(&self) -> String {
        if self.is_jwt() {
            return String::new();
        }
        const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut rng = rand::rng();
        (0..SIMPLE_TOKEN_LETTERS)
            .map(|_| char::from(LETTERS[rng.random_range(0..LETTERS.len())]))
            .collect()
    }

    /// The token handed to the client for an `Authenticate` applied at `index` with
    /// `prefix`, for `username` at auth revision `revision`.
    ///
    /// # Errors
    /// A message if a JWT cannot be signed (verify-only configuration).
    pub fn token_for(
        &self,
        prefix: &str,
        index: u64,
        username: &str,
        revision: u64,
    ) -> Result<String, String> {
        match &self.jwt {
            None => Ok(format!("{prefix}.{index}")),
            Some(jwt) => jwt.sign(username, revision),
        }
    }

    /// Keeps the simple-token table in step with an applied auth command (called by the
    /// node loop for every applied `Command::Auth`, on every member).
    pub fn on_applied(
        &self,
        index: u64,
        command: &AuthCommand,
        result: &Result<Response, ApplyError>,
    ) {
        if self.is_jwt() || result.is_err() {
            return;
        }
        let Ok(mut table) = self.simple.lock() else {
            return;
        };
        match command {
            AuthCommand::Authenticate { name, simple_token } => {
                let now = Instant::now();
                table.retain(|_, t| t.expires > now);
                table.insert(
                    format!("{simple_token}.{index}"),
                    SimpleToken {
                        username: name.clone(),
                        expires: now + self.simple_ttl,
                    },
                );
            }
            AuthCommand::UserDelete { name } | AuthCommand::UserChangePassword { name, .. } => {
                table.retain(|_, t| t.username != *name);
            }
            AuthCommand::Disable => table.clear(),
            _ => {}
        }
    }

    /// Who `token` speaks for (etcd's `AuthInfoFromCtx`), with `current_revision` for
    /// simple tokens; `None` for an unknown, expired or badly signed token. A use of a
    /// simple token restarts its TTL.
    pub fn info(&self, token: &str, current_revision: u64) -> Option<AuthInfo> {
        match &self.jwt {
            Some(jwt) => jwt.verify(token),
            None => {
                let mut table = self.simple.lock().ok()?;
                let now = Instant::now();
                let entry = table.get_mut(token)?;
                if entry.expires <= now {
                    table.remove(token);
                    return None;
                }
                entry.expires = now + self.simple_ttl;
                Some(AuthInfo::new(entry.username.clone(), current_revision))
            }
        }
    }

    /// bcrypt hash of `password` at `--bcrypt-cost` (CPU-heavy: call from a blocking
    /// task).
    ///
    /// # Errors
    /// The bcrypt error's text.
    pub fn hash_password(&self, password: &str) -> Result<Vec<u8>, String> {
        bcrypt::hash(password, self.bcrypt_cost)
            .map(String::into_bytes)
            .map_err(|e| e.to_string())
    }

    /// Whether `password` matches the stored bcrypt `hash` (CPU-heavy).
    pub fn check_password(password: &str, hash: &[u8]) -> bool {
        std::str::from_utf8(hash)
            .ok()
            .and_then(|hash| bcrypt::verify(password, hash).ok())
            .unwrap_or(false)
    }
}

impl Jwt {
    fn from_options(options: &BTreeMap<String, String>) -> Result<Self, TokenError> {
        let algorithm: Algorithm = options
            .get("sign-method")
            .and_then(|m| m.parse().ok())
            .ok_or(TokenError::InvalidMethod)?;
        let ttl = match options.get("ttl").filter(|t| !t.is_empty()) {
            None => DEFAULT_JWT_TTL,
            Some(text) => parse_duration(text).ok_or_else(|| TokenError::Ttl(text.clone()))?,
        };
        let read = |key: &str| -> Result<Option<(String, Vec<u8>)>, TokenError> {
            match options.get(key).filter(|p| !p.is_empty()) {
                None => Ok(None),
                Some(path) => std::fs::read(path)
                    .map(|bytes| Some((path.clone(), bytes)))
                    .map_err(|error| TokenError::Read {
                        path: path.clone(),
                        error,
                    }),
            }
        };
        let private = read("priv-key")?;
        let public = read("pub-key")?;
        let key_error = |path: &str| {
            let path = path.to_owned();
            move |error| TokenError::Key { path, error }
        };
        let (encoding, decoding) = match algorithm {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let (_, secret) = private.ok_or(TokenError::MissingKey)?;
                (
                    Some(EncodingKey::from_secret(&secret)),
                    DecodingKey::from_secret(&secret),
                )
            }
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => match private {
                // etcd 3.4: with a private key, tokens are verified with its public
                // half (a `pub-key` given beside it is not used).
                Some((path, pem)) => rsa_keys(&pem).map_err(|error| TokenError::Pem {
                    path: path.clone(),
                    error,
                })?,
                None => {
                    let (path, public) = public.ok_or(TokenError::MissingKey)?;
                    let decoding = DecodingKey::from_rsa_pem(&public).map_err(key_error(&path))?;
                    (None, decoding)
                }
            },
            Algorithm::ES256 | Algorithm::ES384 => match private {
                Some((path, pem)) => {
                    ec_keys(algorithm, &pem).map_err(|error| TokenError::Pem { path, error })?
                }
                None => {
                    let (path, public) = public.ok_or(TokenError::MissingKey)?;
                    let decoding = DecodingKey::from_ec_pem(&public).map_err(key_error(&path))?;
                    (None, decoding)
                }
            },
            Algorithm::EdDSA => {
                let (path, public) = public.ok_or(TokenError::MissingKey)?;
                let decoding = DecodingKey::from_ed_pem(&public).map_err(key_error(&path))?;
                let encoding = match private {
                    None => None,
                    Some((path, pem)) => {
                        Some(EncodingKey::from_ed_pem(&pem).map_err(key_error(&path))?)
                    }
                };
                (encoding, decoding)
            }
            _ => return Err(TokenError::InvalidMethod),
        };
        Ok(Self {
            algorithm,
            encoding,
            decoding,
            ttl,
        })
    }

    fn sign(&self, username: &str, revision: u64) -> Result<String, String> {
        let key = self
            .encoding
            .as_ref()
            .ok_or("auth: token signing attempted with verify-only key")?;
        let exp = jsonwebtoken::get_current_timestamp().saturating_add(self.ttl.as_secs());
        let claims = Claims {
            username: username.to_owned(),
            revision,
            exp,
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, key).map_err(|e| e.to_string())
    }

    fn verify(&self, token: &str) -> Option<AuthInfo> {
        let mut validation = Validation::new(self.algorithm);
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).ok()?;
        Some(AuthInfo::new(data.claims.username, data.claims.revision))
    }
}

/// The signing key and the verifying key (its public half) of an RSA private key in PEM,
/// PKCS#1 (`RSA PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`), as etcd reads it.
fn rsa_keys(pem: &[u8]) -> Result<(Option<EncodingKey>, DecodingKey), String> {
    use rsa::pkcs1::DecodeRsaPrivateKey as _;
    use rsa::pkcs8::DecodePrivateKey as _;
    use rsa::traits::PublicKeyParts as _;
    let text = std::str::from_utf8(pem).map_err(|error| error.to_string())?;
    let key = rsa::RsaPrivateKey::from_pkcs1_pem(text)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs8_pem(text))
        .map_err(|error| format!("not an RSA private key: {error}"))?;
    let encoding = EncodingKey::from_rsa_pem(pem).map_err(|error| error.to_string())?;
    let decoding =
        DecodingKey::from_rsa_raw_components(&key.n().to_bytes_be(), &key.e().to_bytes_be());
    Ok((Some(encoding), decoding))
}

/// The signing key and the verifying key (its public half) of an EC private key in PEM,
/// SEC 1 (`EC PRIVATE KEY`, what `openssl ecparam -genkey` writes) or PKCS#8 (`PRIVATE
/// KEY`), as etcd reads it; the curve is the method's (P-256 for ES256, P-384 for ES384).
fn ec_keys(algorithm: Algorithm, pem: &[u8]) -> Result<(Option<EncodingKey>, DecodingKey), String> {
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
    let text = std::str::from_utf8(pem).map_err(|error| error.to_string())?;
    let not_ec = |error: &dyn std::fmt::Display| format!("not an EC private key: {error}");
    let (pkcs8, point) = if algorithm == Algorithm::ES384 {
        let key = p384::SecretKey::from_sec1_pem(text)
            .or_else(|_| p384::SecretKey::from_pkcs8_pem(text))
            .map_err(|error| not_ec(&error))?;
        let point = key.public_key().to_encoded_point(false).as_bytes().to_vec();
        (key.to_pkcs8_der().map_err(|error| not_ec(&error))?, point)
    } else {
        let key = p256::SecretKey::from_sec1_pem(text)
            .or_else(|_| p256::SecretKey::from_pkcs8_pem(text))
            .map_err(|error| not_ec(&error))?;
        let point = key.public_key().to_encoded_point(false).as_bytes().to_vec();
        (key.to_pkcs8_der().map_err(|error| not_ec(&error))?, point)
    };
    Ok((
        Some(EncodingKey::from_ec_der(pkcs8.as_bytes())),
        DecodingKey::from_ec_der(&point),
    ))
}

/// A Go `time.ParseDuration` subset: a sequence of `<number><unit>` with units `h`, `m`,
/// `s`, `ms` (for example `5m`, `1h30m`, `90s`).
fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "h" => Duration::from_secs(3600),
            "m" => Duration::from_secs(60),
            "s" => Duration::from_secs(1),
            "ms" => Duration::from_millis(1),
            _ => return None,
        };
        total += unit.checked_mul(u32::try_from(number).ok()?)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxetcd_spec::apply::AuthResponse;

    fn authenticated() -> Result<Response, ApplyError> {
        Ok(Response::Auth(AuthResponse::Done))
    }

    #[test]
    fn simple_token_is_registered_at_apply_and_dropped_on_password_change() {
        let tokens = Tokens::default();
        let prefix = tokens.new_prefix();
        assert_eq!(prefix.len(), SIMPLE_TOKEN_LETTERS);
        let applied = AuthCommand::Authenticate {
            name: "alice".into(),
            simple_token: prefix.clone(),
        };
        tokens.on_applied(7, &applied, &authenticated());
        let token = tokens.token_for(&prefix, 7, "alice", 3).unwrap();
        assert_eq!(token, format!("{prefix}.7"));
        assert_eq!(tokens.info(&token, 9), Some(AuthInfo::new("alice", 9)));
        assert_eq!(tokens.info("nobody.7", 9), None);
        let change = AuthCommand::UserChangePassword {
            name: "alice".into(),
            password_hash: Vec::new(),
        };
        tokens.on_applied(8, &change, &authenticated());
        assert_eq!(tokens.info(&token, 9), None);
    }

    #[test]
    fn disabling_auth_drops_every_simple_token() {
        let tokens = Tokens::default();
        let login = AuthCommand::Authenticate {
            name: "root".into(),
            simple_token: "abc".into(),
        };
        tokens.on_applied(3, &login, &authenticated());
        assert!(tokens.info("abc.3", 2).is_some());
        tokens.on_applied(4, &AuthCommand::Disable, &authenticated());
        assert!(tokens.info("abc.3", 2).is_none());
    }

    #[test]
    fn expired_simple_token_is_refused() {
        let tokens = Tokens::simple(0, 4);
        let login = AuthCommand::Authenticate {
            name: "root".into(),
            simple_token: "abc".into(),
        };
        tokens.on_applied(3, &login, &authenticated());
        assert!(tokens.info("abc.3", 2).is_none());
    }

    fn test_key(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../conformance/transcripts/keys")
            .join(name)
    }

    #[test]
    fn jwt_signs_with_a_sec1_ec_key_and_verifies_with_its_public_half() {
        // `openssl ecparam -genkey` writes SEC 1 ("EC PRIVATE KEY"); etcd takes it, and
        // with no pub-key verifies with the private key's public half.
        let key = test_key("jwt_es256.key");
        let flag = format!("jwt,priv-key={},sign-method=ES256", key.display());
        let tokens = Tokens::from_flag(&flag, 300, 4).unwrap();
        let token = tokens.token_for("", 1, "alice", 3).unwrap();
        assert_eq!(tokens.info(&token, 9), Some(AuthInfo::new("alice", 3)));
        // The separate public key verifies what the private key signed.
        let public = test_key("jwt_es256.pub");
        let verifier = Tokens::from_flag(
            &format!("jwt,pub-key={},sign-method=ES256", public.display()),
            300,
            4,
        )
        .unwrap();
        assert_eq!(verifier.info(&token, 9), Some(AuthInfo::new("alice", 3)));
        assert_eq!(
            verifier.token_for("", 1, "alice", 3),
            Err("auth: token signing attempted with verify-only key".to_owned())
        );
    }

    #[test]
    fn jwt_rsa_private_key_alone_signs_and_verifies() {
        let key = test_key("jwt_rs256.key");
        let flag = format!("jwt,priv-key={},sign-method=RS256", key.display());
        let tokens = Tokens::from_flag(&flag, 300, 4).unwrap();
        let token = tokens.token_for("", 1, "carol", 2).unwrap();
        assert_eq!(tokens.info(&token, 9), Some(AuthInfo::new("carol", 2)));
    }

    #[test]
    fn jwt_carries_user_and_revision_and_rejects_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"0123456789abcdef").unwrap();
        let flag = format!(
            "jwt,priv-key={},sign-method=HS256,ttl=10m",
            secret.display()
        );
        let tokens = Tokens::from_flag(&flag, 300, 4).unwrap();
        assert!(tokens.new_prefix().is_empty());
        let token = tokens.token_for("", 5, "bob", 12).unwrap();
        assert_eq!(tokens.info(&token, 99), Some(AuthInfo::new("bob", 12)));
        let mut tampered = token.clone();
        tampered.push('x');
        assert_eq!(tokens.info(&tampered, 99), None);
    }

    #[test]
    fn bad_auth_token_flags_are_refused_with_etcds_texts() {
        let unknown = Tokens::from_flag("magic", 300, 4).unwrap_err();
        assert_eq!(unknown.to_string(), "auth: unknown token type: magic");
        let method = Tokens::from_flag("jwt,sign-method=XX1", 300, 4).unwrap_err();
        assert_eq!(method.to_string(), "auth: invalid auth signature method");
        let key = Tokens::from_flag("jwt,sign-method=RS256", 300, 4).unwrap_err();
        assert_eq!(key.to_string(), "auth: missing key data");
    }

    #[test]
    fn passwords_hash_and_verify() {
        let tokens = Tokens::simple(300, 4);
        let hash = tokens.hash_password("s3cret").unwrap();
        assert!(Tokens::check_password("s3cret", &hash));
        assert!(!Tokens::check_password("wrong", &hash));
    }

    #[test]
    fn durations_parse_as_go_does_for_common_forms() {
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration(""), None);
    }
}
