//! Latch's connector CA: it signs the connectors' client certificates and the connector listener's
//! server certificate, and it is the only root the listener trusts.
//!
//! The CA's key is made on first start in the data directory (`connector-ca.pem`,
//! `connector-ca.key`), or read from files the admin provides, which is how several replicas share
//! one CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

/// Where the CA's certificate and key come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CaFiles {
    /// The default place: the data directory.
    pub fn in_data_dir(data_dir: &Path) -> CaFiles {
        CaFiles {
            cert: data_dir.join("connector-ca.pem"),
            key: data_dir.join("connector-ca.key"),
        }
    }
}

/// The connector CA, loaded.
pub struct ConnectorCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    fingerprint: [u8; 32],
    trust_domain: String,
}

impl std::fmt::Debug for ConnectorCa {
    // The key never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorCa")
            .field("fingerprint", &hex::encode(self.fingerprint))
            .field("trust_domain", &self.trust_domain)
            .finish()
    }
}

/// A certificate issued to a connector.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    pub pem: String,
    pub not_after: DateTime<Utc>,
}

impl ConnectorCa {
    /// Reads the CA from `files`, or creates it there when neither file exists (`create`).
    pub fn load_or_create(
        files: &CaFiles,
        create: bool,
        trust_domain: &str,
    ) -> anyhow::Result<ConnectorCa> {
        let (cert_pem, key_pem) = match (files.cert.exists(), files.key.exists()) {
            (true, true) => (
                std::fs::read_to_string(&files.cert)
                    .with_context(|| format!("reading {}", files.cert.display()))?,
                std::fs::read_to_string(&files.key)
                    .with_context(|| format!("reading {}", files.key.display()))?,
            ),
            (false, false) if create => {
                let (cert_pem, key_pem) = new_ca()?;
                write_private(&files.key, &key_pem)?;
                std::fs::write(&files.cert, &cert_pem)
                    .with_context(|| format!("writing {}", files.cert.display()))?;
                (cert_pem, key_pem)
            }
            (cert, key) => anyhow::bail!(
                "connector CA: {} {} and {} {}; give both files or neither",
                files.cert.display(),
                if cert { "exists" } else { "is missing" },
                files.key.display(),
                if key { "exists" } else { "is missing" },
            ),
        };
        let key = KeyPair::from_pem(&key_pem).context("connector CA key")?;
        let issuer =
            Issuer::from_ca_cert_pem(&cert_pem, key).context("connector CA certificate")?;
        let cert_der = pem_to_der(&cert_pem).context("connector CA certificate")?;
        let fingerprint = Sha256::digest(cert_der.as_ref()).into();
        Ok(ConnectorCa {
            issuer,
            cert_pem,
            cert_der,
            fingerprint,
            trust_domain: trust_domain.to_string(),
        })
    }

    /// SHA-256 of the CA certificate (DER): what enrollment tokens carry.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The SPIFFE id a connector's certificate carries.
    pub fn spiffe_id(&self, connector_id: &str) -> String {
        format!("spiffe://{}/connector/{connector_id}", self.trust_domain)
    }

    /// The connector id in a verified client certificate, if it is one of ours.
    pub fn connector_id_of(&self, cert: &CertificateDer<'_>) -> Option<String> {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
        let prefix = format!("spiffe://{}/connector/", self.trust_domain);
        let sans = parsed.subject_alternative_name().ok()??;
        sans.value.general_names.iter().find_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri) => uri
                .strip_prefix(&prefix)
                .filter(|id| !id.is_empty() && !id.contains('/'))
                .map(str::to_string),
            _ => None,
        })
    }

    /// Checks a certificate signing request before anything is recorded, so a bad CSR cannot use
    /// up an enrollment token.
    pub fn check_csr(&self, csr_pem: &str) -> Result<(), String> {
        CertificateSigningRequestParams::from_pem(csr_pem)
            .map(|_| ())
            .map_err(|err| format!("csr_pem: not a valid certificate signing request: {err}"))
    }

    /// Signs a client certificate for a connector's CSR, valid from `now` for `ttl`. Only the key
    /// is taken from the CSR: names, usages and lifetime are Latch's.
    pub fn issue_client(
        &self,
        csr_pem: &str,
        connector_id: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<IssuedCertificate, String> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|err| format!("csr_pem: not a valid certificate signing request: {err}"))?;
        let not_after = now + chrono::Duration::from_std(ttl).map_err(|err| err.to_string())?;
        let uri = self
            .spiffe_id(connector_id)
            .try_into()
            .map_err(|err| format!("connector id {connector_id:?}: {err}"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            format!("latch connector {connector_id}"),
        );
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // A minute of slack for clocks that run a little behind.
        params.not_before = to_offset(now - chrono::Duration::minutes(1));
        params.not_after = to_offset(not_after);
        csr.params = params;
        let cert = csr
            .signed_by(&self.issuer)
            .map_err(|err| format!("signing the certificate: {err}"))?;
        Ok(IssuedCertificate {
            pem: cert.pem(),
            not_after,
        })
    }

    /// A server certificate for the connector listener, for `hostnames` (DNS names or IP
    /// addresses), with its key. Made at every start; it lives a year.
    pub fn server_certificate(
        &self,
        hostnames: &[String],
    ) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        let key = KeyPair::generate().context("making the listener's key")?;
        let mut params = CertificateParams::new(hostnames.to_vec())
            .context("connector_hostnames: not valid certificate names")?;
        params
            .distinguished_name
            .push(DnType::CommonName, "latch connector listener");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = Utc::now();
        params.not_before = to_offset(now - chrono::Duration::minutes(1));
        params.not_after = to_offset(now + chrono::Duration::days(365));
        let cert = params
            .signed_by(&key, &self.issuer)
            .context("signing the listener's certificate")?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        // The CA goes along in the chain: a new connector finds it there and compares it with the
        // fingerprint in its enrollment token.
        Ok((vec![cert.der().clone(), self.cert_der.clone()], key_der))
    }

    /// The listener's TLS settings: TLS 1.3 only; a client certificate from this CA is checked
    /// when offered and required by `OpenStream` (Enroll works without one).
    pub fn server_tls_config(
        &self,
        hostnames: &[String],
    ) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.cert_der.clone())
            .context("connector CA certificate")?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .context("client certificate verifier")?;
        let (chain, key) = self.server_certificate(hostnames)?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .context("TLS 1.3")?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .context("the listener's certificate")?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

fn new_ca() -> anyhow::Result<(String, String)> {
    let key = KeyPair::generate().context("making the connector CA key")?;
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params
        .distinguished_name
        .push(DnType::CommonName, "Latch connector CA");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = Utc::now();
    params.not_before = to_offset(now - chrono::Duration::minutes(1));
    params.not_after = to_offset(now + chrono::Duration::days(3650));
    let cert = params
        .self_signed(&key)
        .context("self-signing the connector CA")?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes a private key readable by its owner only.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

fn pem_to_der(pem: &str) -> anyhow::Result<CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|err| anyhow::anyhow!("{err}"))
}

fn to_offset(at: DateTime<Utc>) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(at.timestamp())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca(dir: &Path) -> ConnectorCa {
        ConnectorCa::load_or_create(&CaFiles::in_data_dir(dir), true, "latch.test")
            .expect("connector CA")
    }

    #[test]
    fn the_ca_is_made_once_and_read_back_the_same() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = ca(dir.path());
        let again = ca(dir.path());
        assert_eq!(first.fingerprint(), again.fingerprint());
    }

    #[test]
    fn one_file_without_the_other_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = CaFiles::in_data_dir(dir.path());
        ca(dir.path());
        std::fs::remove_file(&files.key).expect("remove key");
        let err = ConnectorCa::load_or_create(&files, true, "latch.test")
            .expect_err("a lone certificate must be refused");
        assert!(err.to_string().contains("is missing"), "{err}");
    }

    #[test]
    fn a_client_certificate_carries_the_connector_id_and_the_ttl() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = ca(dir.path());
        let key = KeyPair::generate().expect("key");
        let csr = CertificateParams::default()
            .serialize_request(&key)
            .expect("csr")
            .pem()
            .expect("pem");
        let now = Utc::now();
        let issued = ca
            .issue_client(&csr, "c-123", now, Duration::from_secs(3600))
            .expect("issued");
        assert_eq!(issued.not_after, now + chrono::Duration::hours(1));
        let der = pem_to_der(&issued.pem).expect("der");
        assert_eq!(ca.connector_id_of(&der).as_deref(), Some("c-123"));
        let other = tempfile::tempdir().expect("tempdir");
        let stranger = ConnectorCa::load_or_create(
            &CaFiles::in_data_dir(other.path()),
            true,
            "elsewhere.test",
        )
        .expect("other CA");
        assert_eq!(stranger.connector_id_of(&der), None, "another trust domain");
        assert!(ca.check_csr("not a csr").is_err());
    }
}
