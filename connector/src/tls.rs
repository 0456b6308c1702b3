//! TLS to the control plane's connector listener: TLS 1.3 only, ALPN `h2`, the ring provider
//! passed explicitly (never a process-wide default), and our own dialer under tonic.
//!
//! At enrollment the connector trusts nothing yet but the CA fingerprint in its token:
//! [`PinnedCaVerifier`] finds that CA in the chain the server sends and then verifies the server
//! certificate against it like any root (name, validity, signature). Afterwards, `ca.pem` is the
//! only root and the connector presents its own certificate.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use tokio::net::TcpSocket;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::config::ServerUrl;
use crate::error::Error;
use crate::state_dir::Credentials;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, Error> {
    ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|err| Error::Tls(err.to_string()))
}

/// The config for `Enroll`: no client certificate, the server's CA pinned by fingerprint. The
/// returned flag is set when a handshake failed because the CA did not match, so the caller can
/// say exactly that instead of a generic handshake error.
pub(crate) fn enrollment_config(
    ca_fingerprint: [u8; 32],
) -> Result<(ClientConfig, Arc<AtomicBool>), Error> {
    let verifier = PinnedCaVerifier::new(ca_fingerprint);
    let mismatch = verifier.mismatch.clone();
    let mut config = builder()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok((config, mismatch))
}

/// The config for `Connect`: roots from `ca.pem`, our certificate and key.
pub(crate) fn connector_config(credentials: &Credentials) -> Result<ClientConfig, Error> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(credentials.ca_pem.as_bytes()) {
        let cert = cert.map_err(|err| Error::Tls(format!("ca.pem: {err}")))?;
        roots
            .add(cert)
            .map_err(|err| Error::Tls(format!("ca.pem: {err}")))?;
    }
    if roots.is_empty() {
        return Err(Error::Tls("ca.pem holds no certificate".into()));
    }
    let chain = CertificateDer::pem_slice_iter(credentials.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| Error::Tls(format!("cert.pem: {err}")))?;
    if chain.is_empty() {
        return Err(Error::Tls("cert.pem holds no certificate".into()));
    }
    // The error of a key parse could quote key material; say only what failed.
    let key = PrivateKeyDer::from_pem_slice(credentials.key_pem.as_bytes())
        .map_err(|_| Error::Tls("key.pem holds no usable private key".into()))?;
    let mut config = builder()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|err| Error::Tls(format!("cert.pem and key.pem: {err}")))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// A gRPC channel to `server` over our own TLS.
///
/// The endpoint is named with `http://` and the real `https://` origin is set on the requests:
/// tonic would otherwise insist on doing TLS itself for an https URI whenever one of its TLS
/// features is enabled anywhere in the build, and TLS here is ours (verifier, client cert).
pub(crate) async fn connect(server: &ServerUrl, config: ClientConfig) -> Result<Channel, Error> {
    let unreachable = |message: String| Error::Unreachable {
        server: server.url.clone(),
        message,
    };
    let origin: Uri = server
        .url
        .parse()
        .map_err(|err| unreachable(format!("{err}")))?;
    let endpoint = Endpoint::from_shared(format!("http://{}", authority(server)))
        .map_err(|err| unreachable(err.to_string()))?
        .origin(origin)
        .connect_timeout(CONNECT_TIMEOUT);
    let config = Arc::new(config);
    let host = server.host.clone();
    let port = server.port;
    let connector = tower::service_fn(move |_: Uri| {
        let config = config.clone();
        let host = host.clone();
        async move {
            let tcp = dial(&host, port).await?;
            let name = ServerName::try_from(host)
                .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidInput, err))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|err| unreachable(crate::error::chain(&err)))
}

fn authority(server: &ServerUrl) -> String {
    if server.host.contains(':') {
        format!("[{}]:{}", server.host, server.port)
    } else {
        format!("{}:{}", server.host, server.port)
    }
}

/// TCP with nodelay (small gRPC frames go out at once) and keepalive (so a silently dropped
/// connection is found by the kernel too, not only by our heartbeats).
async fn dial(host: &str, port: u16) -> std::io::Result<tokio::net::TcpStream> {
    let mut last_error = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_keepalive(true)?;
        socket.set_nodelay(true)?;
        match socket.connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(err) => last_error = Some(err),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host} resolves to no address"),
        )
    }))
}

/// Trusts the server's chain only if it contains the CA whose SHA-256 (of the DER) the
/// enrollment token carries, then verifies the leaf against that CA alone.
#[derive(Debug)]
pub(crate) struct PinnedCaVerifier {
    ca_fingerprint: [u8; 32],
    provider: Arc<CryptoProvider>,
    mismatch: Arc<AtomicBool>,
}

impl PinnedCaVerifier {
    pub(crate) fn new(ca_fingerprint: [u8; 32]) -> Self {
        Self {
            ca_fingerprint,
            provider: provider(),
            mismatch: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(ca) = intermediates
            .iter()
            .find(|cert| <[u8; 32]>::from(Sha256::digest(cert.as_ref())) == self.ca_fingerprint)
        else {
            self.mismatch.store(true, Ordering::SeqCst);
            return Err(rustls::Error::General(
                "the server's CA does not match the token's fingerprint".into(),
            ));
        };
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|err| rustls::Error::General(err.to_string()))?;
        verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    use super::*;

    /// A CA and a server certificate for `localhost` signed by it, DER.
    pub(crate) struct TestPki {
        pub ca_der: CertificateDer<'static>,
        pub ca_pem: String,
        pub leaf_der: CertificateDer<'static>,
        pub leaf_pem: String,
        pub leaf_key: KeyPair,
        pub ca_key: KeyPair,
        pub ca_params: CertificateParams,
    }

    pub(crate) fn test_pki() -> TestPki {
        let ca_key = KeyPair::generate().expect("key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.clone().self_signed(&ca_key).expect("ca");
        let leaf_key = KeyPair::generate().expect("key");
        let leaf_params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        let issuer = Issuer::new(ca_params.clone(), &ca_key);
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).expect("leaf");
        TestPki {
            ca_der: ca.der().clone(),
            ca_pem: ca.pem(),
            leaf_der: leaf.der().clone(),
            leaf_pem: leaf.pem(),
            leaf_key,
            ca_key,
            ca_params,
        }
    }

    pub(crate) fn fingerprint(der: &CertificateDer<'_>) -> [u8; 32] {
        Sha256::digest(der.as_ref()).into()
    }

    fn name(host: &str) -> ServerName<'static> {
        ServerName::try_from(host.to_string()).expect("name")
    }

    #[test]
    fn the_pinned_ca_in_the_chain_is_accepted() {
        let pki = test_pki();
        let verifier = PinnedCaVerifier::new(fingerprint(&pki.ca_der));
        let chain = [pki.ca_der.clone()];
        verifier
            .verify_server_cert(
                &pki.leaf_der,
                &chain,
                &name("localhost"),
                &[],
                UnixTime::now(),
            )
            .expect("trusted");
        assert!(!verifier.mismatch.load(Ordering::SeqCst));
    }

    #[test]
    fn a_chain_without_the_pinned_ca_is_a_mismatch() {
        let pki = test_pki();
        let other = test_pki();
        let verifier = PinnedCaVerifier::new(fingerprint(&other.ca_der));
        let err = verifier
            .verify_server_cert(
                &pki.leaf_der,
                std::slice::from_ref(&pki.ca_der),
                &name("localhost"),
                &[],
                UnixTime::now(),
            )
            .expect_err("mismatch");
        assert!(err.to_string().contains("fingerprint"), "{err}");
        assert!(verifier.mismatch.load(Ordering::SeqCst));
        // A server that sends no chain at all cannot match either.
        let verifier = PinnedCaVerifier::new(fingerprint(&pki.ca_der));
        assert!(
            verifier
                .verify_server_cert(&pki.leaf_der, &[], &name("localhost"), &[], UnixTime::now())
                .is_err()
        );
    }

    #[test]
    fn the_pinned_ca_must_have_signed_the_leaf_for_the_right_name() {
        let pki = test_pki();
        let verifier = PinnedCaVerifier::new(fingerprint(&pki.ca_der));
        // Right CA, wrong host name.
        let err = verifier
            .verify_server_cert(
                &pki.leaf_der,
                std::slice::from_ref(&pki.ca_der),
                &name("evil.example"),
                &[],
                UnixTime::now(),
            )
            .expect_err("wrong name");
        assert!(!err.to_string().contains("fingerprint"), "{err}");
        // The pinned CA is in the chain, but another CA signed the leaf.
        let other = test_pki();
        assert!(
            verifier
                .verify_server_cert(
                    &other.leaf_der,
                    std::slice::from_ref(&pki.ca_der),
                    &name("localhost"),
                    &[],
                    UnixTime::now(),
                )
                .is_err()
        );
        assert!(!verifier.mismatch.load(Ordering::SeqCst));
    }

    #[test]
    fn the_connector_config_needs_a_ca_and_a_key() {
        let pki = test_pki();
        let good = Credentials {
            key_pem: pki.leaf_key.serialize_pem(),
            cert_pem: pki.leaf_pem.clone(),
            ca_pem: pki.ca_pem.clone(),
        };
        let config = connector_config(&good).expect("config");
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec()]);
        let no_ca = Credentials {
            ca_pem: String::new(),
            ..good.clone()
        };
        assert!(connector_config(&no_ca).is_err());
        let bad_key = Credentials {
            key_pem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(),
            ..good
        };
        let err = connector_config(&bad_key).expect_err("bad key");
        assert!(!err.to_string().contains("AAAA"), "{err}");
    }
}
