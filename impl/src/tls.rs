//! TLS on the client port, as etcd serves it: `--cert-file`/`--key-file` (or a
//! self-signed pair from `--auto-tls`, kept under `<data-dir>/fixtures/client` and valid
//! for one year), `--trusted-ca-file` (makes a client certificate signed by that CA
//! mandatory) and `--client-cert-auth` (with auth enabled, a request without a token runs
//! as the user named by its certificate's CommonName), `--client-cert-allowed-hostname`
//! (a client certificate must also be valid for that host name), and `https://` listen
//! URLs. gRPC, the v3 JSON gateway and the HTTP endpoints are served over TLS on the same
//! port (ALPN `h2` and `http/1.1`).
//!
//! An `http://` URL is served in the clear even when certificates are given (with etcd's
//! warnings); an `https://` URL without certificates is refused at start-up. When the
//! same address is listed with both schemes, one listener serves it and each connection
//! is served in the clear or over TLS according to its first byte (a TLS handshake record
//! starts with 0x16). Unlike etcd 3.4.23, plain gRPC also works on such a mixed port.
//!
//! The peer port is served the same way (`--peer-cert-file`, `--peer-key-file`,
//! `--peer-trusted-ca-file`, `--peer-client-cert-auth`, `--peer-auto-tls` under
//! `<data-dir>/fixtures/peer`, `--peer-crl-file`, `--peer-cert-allowed-cn` or
//! `--peer-cert-allowed-hostname`): [`peer_tls`] gives the server configuration of
//! `https://` peer listeners and the client configuration `crate::peer` dials `https://`
//! peer URLs with. As in etcd, the allowed CommonName or host name is checked on both
//! sides: on the certificate of a member that dials in and on the certificate of the
//! member dialled. As in etcd, a generated
//! (auto-TLS) pair drops the trusted CA and client certificate auth, and members with
//! generated pairs do not check each other's certificates.
//!
//! `--cipher-suites` takes Go's suite names as etcd 3.4.23 does (an unknown name is
//! refused at start-up) and, as in Go, restricts the TLS 1.2 suites only: TLS 1.3 keeps
//! its three suites. Of the TLS 1.2 names, rustls offers the ECDHE suites with AES-GCM or
//! ChaCha20-Poly1305; the others (CBC, RC4, 3DES, RSA key exchange) are ignored with a
//! warning, and a list with none of the offered ones leaves TLS 1.3 alone.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use crate::authority::AuthorityFixStream;
use crate::config::url::Url;
use crate::config::{Scheme, TlsFiles};

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;
/// A client has this long to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Accepted connections waiting for the HTTP server.
const ACCEPT_QUEUE: usize = 64;

/// Which side the TLS files are for (names in messages and the auto-TLS directory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client port (`--cert-file`, …).
    Client,
    /// The peer port (`--peer-cert-file`, …).
    Peer,
}

impl Side {
    fn flag_prefix(self) -> &'static str {
        match self {
            Side::Client => "--",
            Side::Peer => "--peer-",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Peer => "peer",
        }
    }
}

/// The certificate chain and key one side presents, from its files or `--auto-tls`.
#[derive(Debug)]
struct Identity {
    cert_file: PathBuf,
    key_file: PathBuf,
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// The pair was generated (`--auto-tls`): the other side cannot check it against a CA.
    self_signed: bool,
}

/// Reads the pair `files` names, generates one for `--auto-tls`, or `None` when neither.
fn identity(
    side: Side,
    files: &TlsFiles,
    data_dir: &Path,
    listen: &[Url],
) -> anyhow::Result<Option<Identity>> {
    let prefix = side.flag_prefix();
    let (cert_file, key_file, self_signed) = match (&files.cert_file, &files.key_file) {
        (Some(cert), Some(key)) => {
            if files.auto_tls {
                tracing::warn!("embed: ignoring {} auto TLS since certs given", side.name());
            }
            (cert.clone(), key.clone(), false)
        }
        (None, None) if files.auto_tls => {
            let hosts: Vec<String> = listen.iter().map(|url| url.host.clone()).collect();
            let (cert, key) = self_cert(&data_dir.join("fixtures").join(side.name()), &hosts)?;
            (cert, key, true)
        }
        (None, None) => return Ok(None),
        _ => anyhow::bail!("{prefix}cert-file and {prefix}key-file must be given together"),
    };
    let certs = CertificateDer::pem_file_iter(&cert_file)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .with_context(|| format!("{prefix}cert-file {}", cert_file.display()))?;
    if certs.is_empty() {
        anyhow::bail!(
            "{prefix}cert-file {}: no PEM certificate found",
            cert_file.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(&key_file)
        .with_context(|| format!("{prefix}key-file {}", key_file.display()))?;
    Ok(Some(Identity {
        cert_file,
        key_file,
        certs,
        key,
        self_signed,
    }))
}

/// The CA certificates of a `--trusted-ca-file`.
fn trusted_roots(prefix: &str, ca_file: &Path) -> anyhow::Result<Arc<rustls::RootCertStore>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file)
        .with_context(|| format!("{prefix}trusted-ca-file {}", ca_file.display()))?
    {
        let cert =
            cert.with_context(|| format!("{prefix}trusted-ca-file {}", ca_file.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("{prefix}trusted-ca-file {}", ca_file.display()))?;
    }
    if roots.is_empty() {
        anyhow::bail!(
            "{prefix}trusted-ca-file {}: no PEM certificate found",
            ca_file.display()
        );
    }
    Ok(Arc::new(roots))
}

/// The names `--cipher-suites` accepts: Go's TLS suite names, as etcd 3.4.23 takes them
/// (with the two ChaCha20 names Go had before it added `_SHA256`).
const CIPHER_SUITE_NAMES: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// Parses `--cipher-suites` (comma-separated, nothing trimmed, as etcd reads it).
///
/// # Errors
/// etcd's text for the first name it does not know.
pub fn parse_cipher_suites(text: &str) -> Result<Vec<String>, String> {
    text.split(',')
        .map(|name| {
            if CIPHER_SUITE_NAMES.contains(&name) {
                Ok(name.to_owned())
            } else {
                Err(format!("unexpected TLS cipher suite {name:?}"))
            }
        })
        .collect()
}

/// The rustls TLS 1.2 suite a `--cipher-suites` name stands for, if rustls has it.
fn tls12_suite(name: &str) -> Option<rustls::SupportedCipherSuite> {
    let name = match name {
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        other => other,
    };
    rustls::crypto::ring::DEFAULT_CIPHER_SUITES
        .iter()
        .find(|suite| {
            matches!(suite, rustls::SupportedCipherSuite::Tls12(_))
                && suite.suite().as_str() == Some(name)
        })
        .copied()
}

/// Logs the `--cipher-suites` names that have no effect: TLS 1.2 suites rustls does not
/// offer, and TLS 1.3 suites (always enabled, as in Go).
pub fn warn_cipher_suites(names: &[String]) {
    for name in names {
        if tls12_suite(name).is_some() {
            continue;
        }
        let tls13 = format!("TLS13_{}", name.strip_prefix("TLS_").unwrap_or(name));
        if rustls::crypto::ring::DEFAULT_CIPHER_SUITES
            .iter()
            .any(|suite| suite.suite().as_str() == Some(tls13.as_str()))
        {
            tracing::info!(
                "embed: cipher suite {name} is a TLS 1.3 suite: TLS 1.3 suites are not configurable and always enabled"
            );
        } else {
            tracing::warn!(
                "embed: cipher suite {name} is not available in oxetcd (TLS 1.2 is offered with ECDHE and AES-GCM or ChaCha20-Poly1305 only); ignored"
            );
        }
    }
}

/// The crypto provider for `--cipher-suites` (empty: rustls' defaults): the TLS 1.2 suites
/// named, in the order named, and every TLS 1.3 suite.
fn provider(cipher_suites: &[String]) -> Arc<rustls::crypto::CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    if !cipher_suites.is_empty() {
        let mut suites: Vec<rustls::SupportedCipherSuite> = provider
            .cipher_suites
            .iter()
            .filter(|suite| matches!(suite, rustls::SupportedCipherSuite::Tls13(_)))
            .copied()
            .collect();
        for suite in cipher_suites.iter().filter_map(|name| tls12_suite(name)) {
            if !suites.contains(&suite) {
                suites.push(suite);
            }
        }
        provider.cipher_suites = suites;
    }
    Arc::new(provider)
}

/// TLS 1.3 only: what a `--cipher-suites` list without a usable TLS 1.2 suite leaves.
static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// The protocol versions `provider` has suites for.
fn versions(
    provider: &rustls::crypto::CryptoProvider,
) -> &'static [&'static rustls::SupportedProtocolVersion] {
    if provider
        .cipher_suites
        .iter()
        .any(|suite| matches!(suite, rustls::SupportedCipherSuite::Tls12(_)))
    {
        rustls::DEFAULT_VERSIONS
    } else {
        TLS13_ONLY
    }
}

/// The certificate revocation lists of a `--*-crl-file` (PEM, or one DER list).
fn revocation_lists(
    prefix: &str,
    crl_file: &Path,
) -> anyhow::Result<Vec<rustls::pki_types::CertificateRevocationListDer<'static>>> {
    use rustls::pki_types::CertificateRevocationListDer;
    let flag = if prefix == "--" {
        "--client-crl-file"
    } else {
        "--peer-crl-file"
    };
    let context = || format!("{flag} {}", crl_file.display());
    let pem: Vec<_> = CertificateRevocationListDer::pem_file_iter(crl_file)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .with_context(context)?;
    if !pem.is_empty() {
        return Ok(pem);
    }
    let der = std::fs::read(crl_file).with_context(context)?;
    Ok(vec![CertificateRevocationListDer::from(der)])
}

/// Checks the other side's certificate against `--*trusted-ca-file` (and the revocation
/// list, and the allowed CommonName or host name), or `None` when no CA is given.
///
/// # Errors
/// Unreadable CA or revocation files, an allowed host name that is not one, or both an
/// allowed CommonName and an allowed host name (etcd's text, with or without a CA).
fn client_verifier(
    prefix: &str,
    files: &TlsFiles,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> anyhow::Result<Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>> {
    let allowed = allowed_identity(prefix, files)?;
    let Some(ca_file) = &files.trusted_ca_file else {
        return Ok(None);
    };
    let mut builder = WebPkiClientVerifier::builder_with_provider(
        trusted_roots(prefix, ca_file)?,
        provider.clone(),
    );
    if let Some(crl_file) = &files.crl_file {
        builder = builder
            .with_crls(revocation_lists(prefix, crl_file)?)
            .allow_unknown_revocation_status();
    }
    let verifier = builder
        .build()
        .with_context(|| format!("{prefix}trusted-ca-file {}", ca_file.display()))?;
    Ok(Some(match allowed {
        Some(allowed) => Arc::new(AllowedIdentity {
            inner: verifier,
            allowed,
        }),
        None => verifier,
    }))
}

/// The allowed CommonName or host name `files` name, if any.
///
/// # Errors
/// Both are given (etcd's text), or the host name is not one.
fn allowed_identity(prefix: &str, files: &TlsFiles) -> anyhow::Result<Option<Allowed>> {
    Ok(match (&files.allowed_cn, &files.allowed_hostname) {
        (Some(cn), Some(hostname)) => anyhow::bail!(
            "AllowedCN and AllowedHostname are mutually exclusive (cn={cn:?}, hostname={hostname:?})"
        ),
        (Some(cn), None) => Some(Allowed::CommonName(cn.clone())),
        (None, Some(hostname)) => Some(Allowed::Hostname(
            rustls::pki_types::ServerName::try_from(hostname.clone()).with_context(|| {
                format!("{prefix}cert-allowed-hostname {hostname:?} is not a host name")
            })?,
        )),
        (None, None) => None,
    })
}

/// etcd's refusal of a verified certificate that shows neither the allowed CommonName
/// nor the allowed host name (the same text on the accepting and the dialling side).
fn not_allowed() -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        Arc::new(io::Error::other("client certificate authentication failed")),
    )))
}

/// `--peer-cert-allowed-cn`, `--client-cert-allowed-hostname` and
/// `--peer-cert-allowed-hostname`: what a verified client certificate must also show
/// (etcd takes one or the other).
#[derive(Debug)]
struct AllowedIdentity {
    inner: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    allowed: Allowed,
}

#[derive(Debug)]
enum Allowed {
    /// The subject's CommonName, exactly.
    CommonName(String),
    /// A host name (or IP address) the certificate is valid for, as a server
    /// certificate would be checked (subject alternative names, wildcards).
    Hostname(rustls::pki_types::ServerName<'static>),
}

impl Allowed {
    fn admits(&self, end_entity: &CertificateDer<'_>) -> bool {
        match self {
            Allowed::CommonName(cn) => {
                common_name(end_entity.as_ref()).as_deref() == Some(cn.as_str())
            }
            Allowed::Hostname(name) => rustls::server::ParsedCertificate::try_from(end_entity)
                .and_then(|parsed| rustls::client::verify_server_name(&parsed, name))
                .is_ok(),
        }
    }
}

impl rustls::server::danger::ClientCertVerifier for AllowedIdentity {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if self.allowed.admits(end_entity) {
            Ok(verified)
        } else {
            Err(not_allowed())
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The dialling side of `--peer-cert-allowed-cn` and `--peer-cert-allowed-hostname`:
/// a peer's server certificate, once verified against the CA (and the URL's host), must
/// also show the allowed CommonName or host name, as etcd's peer client checks it.
#[derive(Debug)]
struct AllowedServerIdentity {
    inner: Arc<dyn rustls::client::danger::ServerCertVerifier>,
    allowed: Allowed,
}

impl rustls::client::danger::ServerCertVerifier for AllowedServerIdentity {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        if self.allowed.admits(end_entity) {
            Ok(verified)
        } else {
            Err(not_allowed())
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The TLS server configuration for one side, or `None` when no certificate is
/// configured. Logs etcd's `embed: ClientTLS: …` (or `peerTLS`) line.
///
/// # Errors
/// Unreadable or invalid certificate, key, CA or revocation list files, a certificate
/// without its key, a self-signed pair that cannot be written, or client certificate auth
/// on an `https://` URL without `--trusted-ca-file` to check the certificates against.
pub fn server_config(
    side: Side,
    files: &TlsFiles,
    data_dir: &Path,
    listen: &[Url],
    cipher_suites: &[String],
) -> anyhow::Result<Option<Arc<ServerConfig>>> {
    let Some(identity) = identity(side, files, data_dir, listen)? else {
        return Ok(None);
    };
    server_config_for(side, files, identity, listen, cipher_suites).map(Some)
}

/// What a generated pair keeps of `files`: etcd drops the trusted CA, the revocation
/// list and client certificate auth along with the files it replaces.
fn effective(files: &TlsFiles, identity: &Identity) -> TlsFiles {
    if identity.self_signed {
        TlsFiles {
            auto_tls: true,
            ..TlsFiles::default()
        }
    } else {
        files.clone()
    }
}

fn server_config_for(
    side: Side,
    files: &TlsFiles,
    identity: Identity,
    listen: &[Url],
    cipher_suites: &[String],
) -> anyhow::Result<Arc<ServerConfig>> {
    let prefix = side.flag_prefix();
    let files = &effective(files, &identity);
    let title = match side {
        Side::Client => "ClientTLS",
        Side::Peer => "peerTLS",
    };
    let shown = |path: &Option<PathBuf>| {
        path.as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    tracing::info!(
        "embed: {title}: cert = {}, key = {}, trusted-ca = {}, client-cert-auth = {}, crl-file = {}",
        identity.cert_file.display(),
        identity.key_file.display(),
        shown(&files.trusted_ca_file),
        files.client_cert_auth,
        shown(&files.crl_file),
    );
    let provider = provider(cipher_suites);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions(&provider))?;
    let builder = match client_verifier(prefix, files, &provider)? {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None if files.client_cert_auth && listen.iter().any(|url| url.scheme.is_tls()) => {
            anyhow::bail!(
                "{prefix}client-cert-auth needs {prefix}trusted-ca-file (the CA that signs client certificates)"
            );
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(identity.certs, identity.key)
        .with_context(|| format!("{prefix}cert-file/{prefix}key-file"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// TLS for the peer port: what a member serves and what it presents when it dials
/// another member.
#[derive(Debug, Clone)]
pub struct PeerTls {
    /// Serves `https://` peer listeners (asks for and checks a client certificate against
    /// `--peer-trusted-ca-file` when one is given).
    pub server: Arc<ServerConfig>,
    /// Dials `https://` peer URLs: presents this member's peer certificate and checks the
    /// other member's against `--peer-trusted-ca-file` and, as etcd does, against
    /// `--peer-cert-allowed-cn` or `--peer-cert-allowed-hostname`; with `--peer-auto-tls`
    /// their certificates are not checked (and the allowed names not applied), as etcd
    /// does. `None` when certificates are given
    /// without a CA to check other members' certificates against.
    pub client: Option<Arc<rustls::ClientConfig>>,
}

/// The peer TLS configuration from `--peer-*` flags and `--cipher-suites`, or `None` when
/// no peer certificate is configured (no files and no `--peer-auto-tls`).
///
/// # Errors
/// As [`server_config`].
pub fn peer_tls(config: &crate::config::Config) -> anyhow::Result<Option<PeerTls>> {
    let files = &config.peer_tls;
    let listen = &config.listen_peer_urls;
    let Some(identity) = identity(Side::Peer, files, &config.data_dir, listen)? else {
        return Ok(None);
    };
    let certs = identity.certs.clone();
    let key = identity.key.clone_key();
    let self_signed = identity.self_signed;
    let server = server_config_for(Side::Peer, files, identity, listen, &config.cipher_suites)?;
    let provider = provider(&config.cipher_suites);
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions(&provider))?;
    let builder = match &files.trusted_ca_file {
        _ if self_signed => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(UncheckedServerCert(provider))),
        Some(ca_file) => {
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                trusted_roots("--peer-", ca_file)?,
                provider.clone(),
            )
            .build()
            .with_context(|| format!("--peer-trusted-ca-file {}", ca_file.display()))?;
            match allowed_identity("--peer-", files)? {
                Some(allowed) => builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AllowedServerIdentity {
                        inner: verifier,
                        allowed,
                    })),
                None => builder.with_webpki_verifier(verifier),
            }
        }
        None => {
            return Ok(Some(PeerTls {
                server,
                client: None,
            }));
        }
    };
    let client = builder
        .with_client_auth_cert(certs, key)
        .context("--peer-cert-file/--peer-key-file")?;
    Ok(Some(PeerTls {
        server,
        client: Some(Arc::new(client)),
    }))
}

/// The TLS acceptor of one `--listen-peer-urls` URL: `None` for `http://` (with etcd's
/// warnings when peer certificates or client certificate auth are configured).
///
/// # Errors
/// An `https://` URL without a peer certificate (etcd's text), or a Unix socket URL.
pub fn peer_acceptor(
    url: &Url,
    tls: Option<&PeerTls>,
    client_cert_auth: bool,
) -> anyhow::Result<Option<TlsAcceptor>> {
    match url.scheme {
        Scheme::Https => match tls {
            Some(tls) => Ok(Some(TlsAcceptor::from(tls.server.clone()))),
            None => anyhow::bail!(
                "cannot listen on TLS for {}: KeyFile and CertFile are not presented",
                url.socket_address()
            ),
        },
        Scheme::Http => {
            warn_plain_url(Side::Peer, url, tls.is_some(), client_cert_auth);
            Ok(None)
        }
        Scheme::Unix | Scheme::Unixs => {
            anyhow::bail!(
                "listening on {url} is not supported yet (only http:// and https:// URLs)"
            )
        }
    }
}

/// etcd's warnings for an `http://` URL when certificates or client certificate auth
/// are configured for its side.
fn warn_plain_url(side: Side, url: &Url, certificates: bool, client_cert_auth: bool) {
    let prefix = side.flag_prefix();
    if certificates {
        tracing::warn!(
            "embed: The scheme of {} url {url} is HTTP while peer key/cert files are presented. Ignored {}key/cert files.",
            side.name(),
            if side == Side::Peer { "peer " } else { "" }
        );
    }
    if client_cert_auth {
        tracing::warn!(
            "embed: The scheme of {} url {url} is HTTP while client cert auth ({prefix}client-cert-auth) is enabled. Ignored client cert auth for this url.",
            side.name()
        );
    }
}

/// Accepts any server certificate (signatures are still checked): what etcd does for
/// members started with `--peer-auto-tls`, whose certificates no CA signs.
#[derive(Debug)]
struct UncheckedServerCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for UncheckedServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A self-signed certificate and key in `dir` (`cert.pem`, `key.pem`) for `hosts`,
/// reused when both files exist.
fn self_cert(dir: &Path, hosts: &[String]) -> anyhow::Result<(PathBuf, PathBuf)> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.is_file() && key_path.is_file() {
        return Ok((cert_path, key_path));
    }
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    for host in hosts {
        let san = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => rcgen::SanType::IpAddress(ip),
            Err(_) => rcgen::SanType::DnsName(host.clone().try_into()?),
        };
        if !params.subject_alt_names.contains(&san) {
            params.subject_alt_names.push(san);
        }
    }
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::OrganizationName, "etcd");
    params.distinguished_name = name;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + time::Duration::days(365);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?;
    let cert = params.self_signed(&key)?;
    create_private_dir(dir)?;
    write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
    write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    tracing::info!(
        "embed: generated self-signed certificate in {}",
        dir.display()
    );
    Ok((cert_path, key_path))
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// One listening address and how it is served.
#[derive(Debug, Clone, Copy)]
pub struct Listening {
    /// The bound address.
    pub addr: SocketAddr,
    /// Plain connections are served (an `http://` URL names the address).
    pub plain: bool,
    /// TLS connections are served (an `https://` URL names the address).
    pub tls: bool,
}

/// Binds every address of `urls` once (an address named with both schemes serves both)
/// and returns a listener per address, in the order the URLs first name them. Logs
/// etcd's warnings for `http://` URLs when certificates or client certificate auth are
/// configured.
///
/// # Errors
/// An `https://` URL without TLS configured, a Unix socket URL, or a bind failure.
pub async fn bind_all(
    side: Side,
    urls: &[Url],
    tls: Option<&Arc<ServerConfig>>,
    client_cert_auth: bool,
) -> anyhow::Result<Vec<ClientListener>> {
    let prefix = side.flag_prefix();
    let mut by_address: Vec<(String, bool, bool)> = Vec::new();
    for url in urls {
        match url.scheme {
            Scheme::Http => warn_plain_url(side, url, tls.is_some(), client_cert_auth),
            Scheme::Https => {
                if tls.is_none() {
                    anyhow::bail!(
                        "TLS key/cert ({prefix}cert-file, {prefix}key-file) must be provided for {} url {url} with HTTPS scheme",
                        side.name()
                    );
                }
            }
            Scheme::Unix | Scheme::Unixs => {
                anyhow::bail!(
                    "listening on {url} is not supported yet (only http:// and https:// URLs)"
                )
            }
        }
        let address = url.socket_address();
        let secure = url.scheme == Scheme::Https;
        match by_address.iter_mut().find(|(a, _, _)| *a == address) {
            Some(entry) => {
                entry.1 |= !secure;
                entry.2 |= secure;
            }
            None => by_address.push((address, !secure, secure)),
        }
    }
    let mut listeners = Vec::new();
    for (address, plain, secure) in by_address {
        let listener = TcpListener::bind(&address)
            .await
            .map_err(|error| anyhow::anyhow!("listen tcp {address}: {error}"))?;
        let acceptor = match tls {
            Some(config) if secure => Some(TlsAcceptor::from(config.clone())),
            _ => None,
        };
        listeners.push(ClientListener::new(listener, acceptor, plain)?);
    }
    Ok(listeners)
}

/// Who is on the other end of a connection: its address and, over TLS with a client
/// certificate, the certificate's subject CommonName. Handlers find it in the request
/// extensions as `axum::extract::ConnectInfo<ClientAddr>` when the server is started
/// with `into_make_service_with_connect_info::<ClientAddr>()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddr {
    /// The remote address.
    pub addr: SocketAddr,
    /// The CommonName of the client certificate's subject, when one was presented.
    pub common_name: Option<String>,
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, ClientListener>>
    for ClientAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, ClientListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// The client certificate CommonName of the connection a request came on, if any.
pub fn request_common_name(extensions: &http::Extensions) -> Option<&str> {
    extensions
        .get::<axum::extract::ConnectInfo<ClientAddr>>()
        .and_then(|info| info.0.common_name.as_deref())
}

/// A listener serving plain and/or TLS connections; handshakes run off the accept path.
#[derive(Debug)]
pub struct ClientListener {
    incoming: mpsc::Receiver<(ClientStream, ClientAddr)>,
    /// What this listener serves.
    pub listening: Listening,
}

impl ClientListener {
    /// Serves `listener`: TLS when `acceptor` is given, plain when `plain` (both: by the
    /// first byte of each connection).
    ///
    /// # Errors
    /// The listener has no local address.
    pub fn new(
        listener: TcpListener,
        acceptor: Option<TlsAcceptor>,
        plain: bool,
    ) -> io::Result<ClientListener> {
        let addr = listener.local_addr()?;
        let (sender, incoming) = mpsc::channel(ACCEPT_QUEUE);
        let tls = acceptor.is_some();
        tokio::spawn(accept_loop(listener, acceptor, plain, sender));
        Ok(ClientListener {
            incoming,
            listening: Listening { addr, plain, tls },
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    plain: bool,
    sender: mpsc::Sender<(ClientStream, ClientAddr)>,
) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!("accept: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if sender.is_closed() {
            return;
        }
        // Responses go out as several small writes (headers, data, trailers): without
        // TCP_NODELAY, Nagle holds the later ones until the client's delayed ACK.
        let _ = stream.set_nodelay(true);
        let Some(acceptor) = acceptor.clone() else {
            let client = ClientAddr {
                addr,
                common_name: None,
            };
            if sender
                .send((ClientStream::Plain(stream), client))
                .await
                .is_err()
            {
                return;
            }
            continue;
        };
        let sender = sender.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(stream, &acceptor, plain)).await
            {
                Ok(Ok(stream)) => {
                    let client = ClientAddr {
                        addr,
                        common_name: stream.peer_common_name(),
                    };
                    let _ = sender.send((stream, client)).await;
                }
                Ok(Err(error)) => tracing::info!(
                    "embed: rejected connection from \"{addr}\" (error \"{error}\", ServerName \"\")"
                ),
                Err(_) => tracing::info!(
                    "embed: rejected connection from \"{addr}\" (error \"TLS handshake timeout\", ServerName \"\")"
                ),
            }
        });
    }
}

async fn handshake(
    stream: TcpStream,
    acceptor: &TlsAcceptor,
    plain: bool,
) -> io::Result<ClientStream> {
    if plain {
        let mut first = [0u8; 1];
        let read = stream.peek(&mut first).await?;
        if read == 1 && first[0] != TLS_HANDSHAKE {
            return Ok(ClientStream::Plain(stream));
        }
    }
    let tls = acceptor.accept(stream).await?;
    Ok(ClientStream::Tls(Box::new(tls)))
}

impl axum::serve::Listener for ClientListener {
    type Io = AuthorityFixStream<ClientStream>;
    type Addr = ClientAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some((stream, addr)) => (AuthorityFixStream::new(stream), addr),
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(ClientAddr {
            addr: self.listening.addr,
            common_name: None,
        })
    }
}

/// The subject CommonName of a DER certificate (the first one, as etcd reads it), or
/// `None` when the certificate has none or cannot be read.
pub fn common_name(der: &[u8]) -> Option<String> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL,
    // serialNumber, signature, issuer, validity, subject, ... }, ... }
    let (_, certificate, _) = der_element(der)?;
    let (_, tbs, _) = der_element(certificate)?;
    let mut rest = tbs;
    let mut fields = Vec::new();
    while !rest.is_empty() && fields.len() < 7 {
        let (tag, content, after) = der_element(rest)?;
        fields.push((tag, content));
        rest = after;
    }
    let fields: Vec<&[u8]> = fields
        .iter()
        .filter(|(tag, _)| *tag != 0xa0)
        .map(|(_, content)| *content)
        .collect();
    // serialNumber, signature, issuer, validity, subject.
    let mut rdns = *fields.get(4)?;
    let mut found = None;
    while !rdns.is_empty() {
        let (_, set, after) = der_element(rdns)?;
        rdns = after;
        let mut attributes = set;
        while !attributes.is_empty() {
            let (_, attribute, after) = der_element(attributes)?;
            attributes = after;
            let (oid_tag, oid, value) = der_element(attribute)?;
            let (_, text, _) = der_element(value)?;
            // id-at-commonName, 2.5.4.3.
            if oid_tag == 0x06 && oid == [0x55, 0x04, 0x03] {
                found = Some(String::from_utf8_lossy(text).into_owned());
            }
        }
    }
    found.filter(|name| !name.is_empty())
}

/// One DER element of `input`: its tag, its content and what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (length, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let mut length = 0usize;
        for byte in input.get(2..2 + count)? {
            length = (length << 8) | usize::from(*byte);
        }
        (length, 2 + count)
    };
    let end = header.checked_add(length)?;
    Some((tag, input.get(header..end)?, input.get(end..)?))
}

/// An accepted connection, in the clear or over TLS.
#[derive(Debug)]
pub enum ClientStream {
    /// In the clear.
    Plain(TcpStream),
    /// Over TLS.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl ClientStream {
    /// The subject CommonName of the client certificate, over TLS when one was given.
    pub fn peer_common_name(&self) -> Option<String> {
        match self {
            ClientStream::Plain(_) => None,
            ClientStream::Tls(stream) => stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|cert| common_name(cert.as_ref())),
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ClientStream::Plain(s) => s.is_write_vectored(),
            ClientStream::Tls(s) => s.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_tls_writes_a_self_signed_pair_once_and_reuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            auto_tls: true,
            ..TlsFiles::default()
        };
        let urls = Url::parse_list("https://127.0.0.1:2379,https://localhost:2379").unwrap();
        let config = server_config(Side::Client, &files, dir.path(), &urls, &[]).unwrap();
        assert!(config.is_some());
        let cert = dir.path().join("fixtures/client/cert.pem");
        let first = std::fs::read(&cert).unwrap();
        assert!(String::from_utf8_lossy(&first).starts_with("-----BEGIN CERTIFICATE-----"));
        server_config(Side::Client, &files, dir.path(), &urls, &[]).unwrap();
        assert_eq!(
            std::fs::read(&cert).unwrap(),
            first,
            "an existing pair is reused"
        );
    }

    #[test]
    fn common_name_is_read_from_the_certificate_subject() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "org");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(common_name(cert.der()).as_deref(), Some("alice"));

        let mut unnamed = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        unnamed.distinguished_name = rcgen::DistinguishedName::new();
        unnamed
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "etcd");
        let cert = unnamed.self_signed(&key).unwrap();
        assert_eq!(common_name(cert.der()), None);
        assert_eq!(common_name(&cert.der()[..20]), None, "truncated input");
        assert_eq!(common_name(b""), None);
    }

    #[test]
    fn an_allowed_hostname_admits_certificates_valid_for_it_and_an_allowed_cn_its_subject() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![
            "127.0.0.1".to_owned(),
            "*.members.example".to_owned(),
        ])
        .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "member");
        let cert = params.self_signed(&key).unwrap();
        let hostname = |name: &str| {
            Allowed::Hostname(rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap())
        };
        assert!(hostname("127.0.0.1").admits(cert.der()));
        assert!(hostname("m1.members.example").admits(cert.der()));
        assert!(!hostname("127.0.0.2").admits(cert.der()));
        assert!(!hostname("members.example").admits(cert.der()));
        assert!(
            !hostname("member").admits(cert.der()),
            "the CommonName is not a host name"
        );
        assert!(Allowed::CommonName("member".into()).admits(cert.der()));
        assert!(!Allowed::CommonName("other".into()).admits(cert.der()));
    }

    #[test]
    fn an_allowed_cn_and_an_allowed_hostname_together_are_refused_with_etcds_text() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.self_signed(&key).unwrap().pem()).unwrap();
        let files = TlsFiles {
            trusted_ca_file: Some(ca_file),
            allowed_cn: Some("a".into()),
            allowed_hostname: Some("b".into()),
            ..TlsFiles::default()
        };
        let Err(error) = client_verifier("--peer-", &files, &provider(&[])) else {
            panic!("an allowed CN with an allowed hostname was accepted");
        };
        assert_eq!(
            error.to_string(),
            r#"AllowedCN and AllowedHostname are mutually exclusive (cn="a", hostname="b")"#
        );
        let without_ca = TlsFiles {
            trusted_ca_file: None,
            ..files.clone()
        };
        assert!(
            client_verifier("--peer-", &without_ca, &provider(&[])).is_err(),
            "refused with or without a CA, as etcd refuses it"
        );
        let hostname_only = TlsFiles {
            allowed_cn: None,
            ..files
        };
        assert!(client_verifier("--peer-", &hostname_only, &provider(&[])).is_ok());
    }

    /// The peer TLS configuration of a member started with `flags` (and an `https://`
    /// peer URL).
    fn peer_tls_with(dir: &Path, flags: &[String]) -> PeerTls {
        let mut args = vec![
            "oxetcd".to_owned(),
            "--data-dir".to_owned(),
            dir.join("data").to_str().unwrap().to_owned(),
            "--listen-peer-urls".to_owned(),
            "https://127.0.0.1:2380".to_owned(),
            "--initial-advertise-peer-urls".to_owned(),
            "https://127.0.0.1:2380".to_owned(),
        ];
        args.extend_from_slice(flags);
        let crate::config::Invocation::Serve { config, .. } =
            crate::config::load(args, &std::collections::BTreeMap::new()).unwrap()
        else {
            panic!("not a serve invocation");
        };
        peer_tls(&config).unwrap().unwrap()
    }

    /// A TLS handshake of `client` (dialling 127.0.0.1) with `server`.
    async fn handshake_with(
        client: Arc<rustls::ClientConfig>,
        server: Arc<ServerConfig>,
    ) -> Result<(), String> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepting = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = TlsAcceptor::from(server).accept(stream).await;
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let dialled = tokio_rustls::TlsConnector::from(client)
            .connect(name, stream)
            .await
            .map(drop)
            .map_err(|error| error.to_string());
        accepting.abort();
        dialled
    }

    #[tokio::test]
    async fn a_dialling_member_checks_the_peers_certificate_against_the_allowed_cn_or_hostname() {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_pem).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let member_flags = |cn: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
            params.extended_key_usages = vec![
                rcgen::ExtendedKeyUsagePurpose::ServerAuth,
                rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let cert = params.signed_by(&key, &issuer).unwrap();
            let cert_file = dir.path().join(format!("{cn}.pem"));
            let key_file = dir.path().join(format!("{cn}.key"));
            std::fs::write(&cert_file, cert.pem()).unwrap();
            std::fs::write(&key_file, key.serialize_pem()).unwrap();
            vec![
                "--peer-cert-file".to_owned(),
                cert_file.to_str().unwrap().to_owned(),
                "--peer-key-file".to_owned(),
                key_file.to_str().unwrap().to_owned(),
                "--peer-trusted-ca-file".to_owned(),
                ca_file.to_str().unwrap().to_owned(),
            ]
        };
        let dialler = member_flags("member-a");
        // The member dialled checks no name: only the dialling side can refuse.
        let dialled = peer_tls_with(&dir.path().join("b"), &member_flags("member-b")).server;
        let outcome = |extra: &[&str]| {
            let mut flags = dialler.clone();
            flags.extend(extra.iter().map(|flag| (*flag).to_owned()));
            let client = peer_tls_with(&dir.path().join("a"), &flags).client.unwrap();
            handshake_with(client, dialled.clone())
        };
        assert_eq!(outcome(&[]).await, Ok(()));
        assert_eq!(
            outcome(&["--peer-cert-allowed-cn", "member-b"]).await,
            Ok(())
        );
        assert_eq!(
            outcome(&["--peer-cert-allowed-hostname", "127.0.0.1"]).await,
            Ok(())
        );
        for refused in [
            ["--peer-cert-allowed-cn", "member-a"],
            ["--peer-cert-allowed-hostname", "member-b.example"],
        ] {
            let error = outcome(&refused).await.unwrap_err();
            assert!(
                error.contains("client certificate authentication failed"),
                "{refused:?}: {error}"
            );
        }
    }

    #[test]
    fn peer_auto_tls_gives_server_and_client_configurations() {
        let dir = tempfile::tempdir().unwrap();
        let args = [
            "oxetcd",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--listen-peer-urls",
            "https://127.0.0.1:2380",
            "--initial-advertise-peer-urls",
            "https://127.0.0.1:2380",
            "--peer-auto-tls",
        ];
        let crate::config::Invocation::Serve { config, .. } =
            crate::config::load(args, &std::collections::BTreeMap::new()).unwrap()
        else {
            panic!("not a serve invocation");
        };
        let peer = peer_tls(&config).unwrap().unwrap();
        assert!(peer.client.unwrap().client_auth_cert_resolver.has_certs());
        assert!(dir.path().join("fixtures/peer/cert.pem").is_file());
    }

    #[test]
    fn cipher_suites_restrict_tls_1_2_only() {
        let names = |list: &[&str]| list.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let suites = |provider: &rustls::crypto::CryptoProvider| {
            provider
                .cipher_suites
                .iter()
                .filter_map(|suite| suite.suite().as_str())
                .collect::<Vec<_>>()
        };
        let default = provider(&[]);
        assert_eq!(versions(&default).len(), 2);
        let chosen = provider(&names(&[
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
            "TLS_RSA_WITH_AES_128_CBC_SHA",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        ]));
        let chosen_names = suites(&chosen);
        assert_eq!(
            chosen_names
                .iter()
                .filter(|name| !name.starts_with("TLS13_"))
                .collect::<Vec<_>>(),
            [
                &"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
                &"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
            ]
        );
        assert_eq!(
            chosen_names
                .iter()
                .filter(|n| n.starts_with("TLS13_"))
                .count(),
            3
        );
        assert_eq!(versions(&chosen).len(), 2);
        // No TLS 1.2 suite rustls has: TLS 1.3 only.
        let none = provider(&names(&["TLS_RSA_WITH_AES_128_CBC_SHA"]));
        assert_eq!(versions(&none).len(), 1);
        assert!(parse_cipher_suites("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256").is_ok());
        assert_eq!(
            parse_cipher_suites("TLS_AES_128_GCM_SHA256,nope").unwrap_err(),
            "unexpected TLS cipher suite \"nope\""
        );
    }

    #[test]
    fn no_files_means_no_tls_and_half_a_pair_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let none = server_config(Side::Client, &TlsFiles::default(), dir.path(), &[], &[]).unwrap();
        assert!(none.is_none());
        let half = TlsFiles {
            cert_file: Some(dir.path().join("c.pem")),
            ..TlsFiles::default()
        };
        let error = server_config(Side::Peer, &half, dir.path(), &[], &[]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("--peer-cert-file and --peer-key-file"),
            "{error}"
        );
    }
}
