//! Playing a connector by hand against the real server, shared by the tests that need to send
//! exactly the messages (or the TLS) they choose: enrollment, a TLS client that presents a chosen
//! certificate, and the stream up to Welcome.
// Each test binary that includes this module uses a different part of it.
#![allow(dead_code)]

use std::sync::Arc;

use latch_e2e::{Server, success};
use latch_proto::v1::connector_service_client::ConnectorServiceClient;
use latch_proto::v1::{
    EnrollRequest, Hello, OpenStreamRequest, Welcome, open_stream_request, open_stream_response,
};
use rcgen::{CertificateParams, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tonic::transport::{Channel, Endpoint};

#[derive(Debug)]
pub struct Identity {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A TLS client for the listener: trusts the server's connector CA; presents `identity` if given.
pub fn client_config(
    server: &Server,
    identity: Option<&Identity>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ca = std::fs::read(server.data_dir.join("connector-ca.pem")).expect("CA certificate");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(&ca).expect("CA pem"))
        .expect("root");
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(identity) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(identity.cert_pem.as_bytes()).expect("cert")],
                PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).expect("key"),
            )
            .expect("client auth"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// A gRPC channel over our own TLS; the handshake happens at connect.
pub async fn channel(
    server: &Server,
    config: Arc<rustls::ClientConfig>,
) -> Result<Channel, String> {
    let address = server.connector_listen.clone();
    Endpoint::from_shared(format!("http://{address}"))
        .expect("endpoint")
        .connect_with_connector(tower::service_fn(move |_| {
            let config = config.clone();
            let address = address.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(&address).await?;
                let name = ServerName::try_from("127.0.0.1").expect("name");
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|err| format!("{err:?}"))
}

/// The server's half of a stream, and our half (dropping it ends the stream).
pub type Open = (
    tonic::Streaming<latch_proto::v1::OpenStreamResponse>,
    tokio::sync::mpsc::Sender<OpenStreamRequest>,
);

/// Opens the stream and says `hello`; returns the stream and the Welcome, or the refusal.
pub async fn open_stream(channel: Channel, hello: Hello) -> Result<(Open, Welcome), tonic::Status> {
    let (sender, receiver) = tokio::sync::mpsc::channel(8);
    sender
        .send(OpenStreamRequest {
            message: Some(open_stream_request::Message::Hello(hello)),
        })
        .await
        .expect("queue hello");
    let outbound = tokio_stream::wrappers::ReceiverStream::new(receiver);
    let mut stream = ConnectorServiceClient::new(channel)
        .open_stream(outbound)
        .await?
        .into_inner();
    match stream.message().await? {
        Some(first) => match first.message {
            Some(open_stream_response::Message::Welcome(welcome)) => {
                Ok(((stream, sender), welcome))
            }
            other => panic!("expected welcome, got {other:?}"),
        },
        None => Err(tonic::Status::unknown("stream ended before welcome")),
    }
}

pub fn create_connector(server: &Server, name: &str) -> String {
    let out = success(&server.cli(
        Some(&server.admin_token()),
        &["-o", "json", "connectors", "create", name],
    ));
    let value: serde_json::Value = serde_json::from_str(&out).expect("json");
    value["token"].as_str().expect("token").to_string()
}

pub fn csr() -> (KeyPair, String) {
    let key = KeyPair::generate().expect("key");
    let csr = CertificateParams::default()
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("pem");
    (key, csr)
}

pub async fn enroll(server: &Server, token: &str) -> Result<Identity, tonic::Status> {
    let channel = channel(
        server,
        client_config(server, None, &[&rustls::version::TLS13]),
    )
    .await
    .expect("TLS 1.3 without a client certificate is accepted for enrollment");
    let (key, csr_pem) = csr();
    let response = ConnectorServiceClient::new(channel)
        .enroll(EnrollRequest {
            token: token.to_string(),
            csr_pem,
            version: "test".into(),
        })
        .await?
        .into_inner();
    Ok(Identity {
        cert_pem: response.certificate_pem,
        key_pem: key.serialize_pem(),
    })
}
