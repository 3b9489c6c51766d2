//! A test PKI: a CA and certificates it signs, written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// PEM files of a test CA, a server certificate for 127.0.0.1 and client certificates.
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// Writes `ca.pem`, `server.pem`/`server.key` and one `<cn>.pem`/`<cn>.key` client
    /// pair per name in `clients` under `dir`.
    pub fn new(dir: &Path, clients: &[&str]) -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "oxetcd test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let leaf = |name: &str, sans: Vec<String>, usage: Vec<ExtendedKeyUsagePurpose>| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(sans).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = usage;
            let cert = params.signed_by(&key, &issuer).unwrap();
            std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
        };
        leaf(
            "server",
            vec!["127.0.0.1".to_owned()],
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        );
        for name in clients {
            leaf(name, Vec::new(), vec![ExtendedKeyUsagePurpose::ClientAuth]);
        }
        Pki {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self, file: &str) -> String {
        self.dir.join(file).to_str().unwrap().to_owned()
    }

    /// `--cert-file`/`--key-file` for the server pair.
    pub fn server_flags(&self) -> Vec<String> {
        vec![
            "--cert-file".into(),
            self.path("server.pem"),
            "--key-file".into(),
            self.path("server.key"),
        ]
    }

    /// etcdctl's `--cacert` and, for `client`, `--cert`/`--key`.
    pub fn etcdctl_flags(&self, client: Option<&str>) -> Vec<String> {
        let mut flags = vec![format!("--cacert={}", self.path("ca.pem"))];
        if let Some(name) = client {
            flags.push(format!("--cert={}", self.path(&format!("{name}.pem"))));
            flags.push(format!("--key={}", self.path(&format!("{name}.key"))));
        }
        flags
    }

    /// curl's `--cacert` and, for `client`, `--cert`/`--key`.
    pub fn curl_flags(&self, client: Option<&str>) -> Vec<String> {
        let mut flags = vec!["--cacert".into(), self.path("ca.pem")];
        if let Some(name) = client {
            flags.extend([
                "--cert".into(),
                self.path(&format!("{name}.pem")),
                "--key".into(),
                self.path(&format!("{name}.key")),
            ]);
        }
        flags
    }
}
