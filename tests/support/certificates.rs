//! A certificate authority made fresh for one test, with a server
//! certificate for 127.0.0.1 and localhost and a client certificate, all
//! written as PEM files into a temporary folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tempfile::TempDir;

/// The PEM files of one test CA; cheap to clone, removed with the last clone.
#[derive(Clone)]
pub struct Certificates {
    dir: Arc<TempDir>,
}

impl Certificates {
    /// A new CA, its server certificate and its client certificate.
    pub fn generate(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("modelsync test CA {name}"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();

        let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose, file: &str| {
            let mut params = CertificateParams::new(names).unwrap();
            params
                .distinguished_name
                .push(DnType::CommonName, format!("modelsync test {file}"));
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &ca).unwrap();
            std::fs::write(dir.path().join(format!("{file}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.path().join(format!("{file}.key")), key.serialize_pem()).unwrap();
        };
        let server_names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        leaf(server_names, ExtendedKeyUsagePurpose::ServerAuth, "server");
        leaf(vec![], ExtendedKeyUsagePurpose::ClientAuth, "client");
        Certificates { dir: Arc::new(dir) }
    }

    pub fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }

    pub fn server_cert(&self) -> PathBuf {
        self.path("server.pem")
    }

    pub fn server_key(&self) -> PathBuf {
        self.path("server.key")
    }

    pub fn client_cert(&self) -> PathBuf {
        self.path("client.pem")
    }

    pub fn client_key(&self) -> PathBuf {
        self.path("client.key")
    }

    fn path(&self, file: &str) -> PathBuf {
        Path::new(self.dir.path()).join(file)
    }
}
