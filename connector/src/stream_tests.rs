//! The connector against an in-process fake control plane over real TLS: enrollment (refused
//! token, wrong CA, success), then `run`: hello, inventory paging, signed commands applied once,
//! a bad signature ignored, certificate renewal, dead-peer reconnect with the renewed
//! certificate, and a drained shutdown with goodbye.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use latch_proto::connector_protocol::EnrollmentToken;
use latch_proto::v1 as pb;
use latch_proto::v1::connector_service_server::{ConnectorService, ConnectorServiceServer};
use latch_proto::v1::open_stream_request::Message as Up;
use latch_proto::v1::open_stream_response::Message as Down;
use rcgen::{CertificateParams, CertificateSigningRequestParams, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::enroll::{EnrollArgs, enroll};
use crate::error::Error;
use crate::provider::{Provider, ProviderRegistry};
use crate::signing::tests::sign;
use crate::testing::FakeProvider;
use crate::tls::tests::{TestPki, fingerprint, test_pki};

const WAIT: Duration = Duration::from_secs(10);

/// The client certificate a connection presented, if any.
#[derive(Clone, Debug)]
struct PeerCert(Option<Vec<u8>>);

struct TlsIo(tokio_rustls::server::TlsStream<TcpStream>);

impl tonic::transport::server::Connected for TlsIo {
    type ConnectInfo = PeerCert;
    fn connect_info(&self) -> PeerCert {
        PeerCert(
            self.0
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(|cert| cert.as_ref().to_vec()),
        )
    }
}

impl AsyncRead for TlsIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// One stream as the fake control plane sees it.
struct Connection {
    hello: pb::Hello,
    peer_cert: Option<Vec<u8>>,
    up: mpsc::UnboundedReceiver<Up>,
    down: mpsc::Sender<Result<pb::OpenStreamResponse, Status>>,
}

struct FakeControlPlane {
    token: String,
    ca_key: KeyPair,
    ca_params: CertificateParams,
    ca_pem: String,
    signing_key: SigningKey,
    heartbeats: Arc<AtomicBool>,
    connections: mpsc::UnboundedSender<Connection>,
    first_cert_is_due: Mutex<bool>,
}

impl FakeControlPlane {
    fn sign_csr(&self, csr_pem: &str, due_for_renewal: bool) -> Result<String, Status> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|err| Status::invalid_argument(err.to_string()))?;
        if due_for_renewal {
            // Valid now, but past half of its lifetime: the connector renews at once.
            csr.params.not_before = rcgen::date_time_ymd(1970, 1, 2);
            csr.params.not_after = rcgen::date_time_ymd(2070, 1, 1);
        }
        let issuer = Issuer::new(self.ca_params.clone(), &self.ca_key);
        csr.signed_by(&issuer)
            .map(|cert| cert.pem())
            .map_err(|err| Status::internal(err.to_string()))
    }
}

#[tonic::async_trait]
impl ConnectorService for FakeControlPlane {
    async fn enroll(
        &self,
        request: Request<pb::EnrollRequest>,
    ) -> Result<Response<pb::EnrollResponse>, Status> {
        let request = request.into_inner();
        if request.token != self.token {
            return Err(Status::unauthenticated(
                "the enrollment token is used, expired or unknown",
            ));
        }
        let due = *self.first_cert_is_due.lock().expect("lock");
        Ok(Response::new(pb::EnrollResponse {
            connector_id: "conn-test".into(),
            name: "edge".into(),
            certificate_pem: self.sign_csr(&request.csr_pem, due)?,
            ca_bundle_pem: self.ca_pem.clone(),
            command_signing_key: self.signing_key.verifying_key().to_bytes().to_vec(),
            not_after: None,
        }))
    }

    type OpenStreamStream = ReceiverStream<Result<pb::OpenStreamResponse, Status>>;

    async fn open_stream(
        &self,
        request: Request<Streaming<pb::OpenStreamRequest>>,
    ) -> Result<Response<Self::OpenStreamStream>, Status> {
        let peer_cert = request
            .extensions()
            .get::<PeerCert>()
            .and_then(|peer| peer.0.clone());
        if peer_cert.is_none() {
            return Err(Status::unauthenticated("a client certificate is required"));
        }
        let mut inbound = request.into_inner();
        let hello = match inbound.message().await? {
            Some(pb::OpenStreamRequest {
                message: Some(Up::Hello(hello)),
            }) => hello,
            other => {
                return Err(Status::invalid_argument(format!(
                    "expected hello: {other:?}"
                )));
            }
        };
        let (down, rx) = mpsc::channel(64);
        let welcome = pb::Welcome {
            protocol: 1,
            connector_id: "conn-test".into(),
            heartbeat_interval: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
            server_version: "fake".into(),
            refused_integrations: vec![],
        };
        let _ = down
            .send(Ok(pb::OpenStreamResponse {
                message: Some(Down::Welcome(welcome)),
            }))
            .await;
        let (up_tx, up) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(message)) = inbound.message().await {
                if let Some(message) = message.message
                    && up_tx.send(message).is_err()
                {
                    break;
                }
            }
        });
        let beats = down.clone();
        let heartbeats = self.heartbeats.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if !heartbeats.load(Ordering::SeqCst) {
                    continue;
                }
                let beat = pb::OpenStreamResponse {
                    message: Some(Down::Heartbeat(pb::Heartbeat { sent_at: None })),
                };
                if beats.send(Ok(beat)).await.is_err() {
                    break;
                }
            }
        });
        let _ = self.connections.send(Connection {
            hello,
            peer_cert,
            up,
            down,
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Starts the fake on 127.0.0.1 with a certificate for `localhost`; returns its URL.
async fn start(pki: TestPki, plane: Arc<FakeControlPlane>) -> String {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).expect("root");
    let client_verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .expect("verifier");
    let key = PrivateKeyDer::from_pem_slice(pki.leaf_key.serialize_pem().as_bytes()).expect("key");
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(vec![pki.leaf_der.clone(), pki.ca_der.clone()], key)
        .expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel::<Result<TlsIo, std::io::Error>>(16);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                // Failed handshakes (a client that distrusts us) are simply dropped.
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let _ = tx.send(Ok(TlsIo(tls))).await;
                }
            });
        }
    });
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(ConnectorServiceServer::from_arc(plane))
            .serve_with_incoming(ReceiverStream::new(rx))
            .await;
    });
    format!("https://localhost:{port}")
}

async fn next_up(connection: &mut Connection, what: &str, pick: impl Fn(&Up) -> bool) -> Up {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let message = tokio::time::timeout_at(deadline, connection.up.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what} in time"))
            .unwrap_or_else(|| panic!("the stream closed before {what}"));
        if pick(&message) {
            return message;
        }
    }
}

async fn send_down(connection: &Connection, message: Down) {
    connection
        .down
        .send(Ok(pb::OpenStreamResponse {
            message: Some(message),
        }))
        .await
        .expect("stream open");
}

fn grant(id: &str, generation: u64) -> pb::Command {
    pb::Command {
        id: id.into(),
        kind: pb::CommandKind::Grant as i32,
        connector_id: "conn-test".into(),
        integration: "fake-1".into(),
        grant_id: "grant-1".into(),
        generation,
        identity: "ada@example.com".into(),
        resource_id: "fake://thing/1".into(),
        resource_type: "fake.thing".into(),
        permission: "readonly".into(),
        duration_secs: 3600,
        ..pb::Command::default()
    }
}

async fn result_of(connection: &mut Connection) -> pb::CommandResult {
    match next_up(connection, "a command result", |m| {
        matches!(m, Up::Result(_))
    })
    .await
    {
        Up::Result(result) => result,
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_then_run_against_a_fake_control_plane() {
    let pki = test_pki();
    let ca_fingerprint = fingerprint(&pki.ca_der);
    let token = EnrollmentToken {
        ca_fingerprint,
        secret: [9; 32],
    };
    let (connections_tx, mut connections) = mpsc::unbounded_channel();
    let heartbeats = Arc::new(AtomicBool::new(true));
    let signing_key = SigningKey::from_bytes(&[5; 32]);
    let plane = Arc::new(FakeControlPlane {
        token: token.to_string(),
        ca_key: KeyPair::from_pem(&pki.ca_key.serialize_pem()).expect("key"),
        ca_params: pki.ca_params.clone(),
        ca_pem: pki.ca_pem.clone(),
        signing_key: signing_key.clone(),
        heartbeats: heartbeats.clone(),
        connections: connections_tx,
        first_cert_is_due: Mutex::new(true),
    });
    let server = start(pki, plane.clone()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let state_dir = dir.path().join("state");
    let args = |token: String, force: bool| EnrollArgs {
        server: server.clone(),
        token,
        state_dir: state_dir.clone(),
        force,
    };

    // A token the server does not know: its message comes through.
    let unknown = EnrollmentToken {
        ca_fingerprint,
        secret: [1; 32],
    };
    let err = enroll(args(unknown.to_string(), false))
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, Error::TokenRefused(m) if m.contains("used, expired or unknown")),
        "{err}"
    );
    // A token that pins another CA.
    let other_ca = EnrollmentToken {
        ca_fingerprint: [7; 32],
        secret: [9; 32],
    };
    let err = enroll(args(other_ca.to_string(), false))
        .await
        .expect_err("mismatch");
    assert!(matches!(err, Error::FingerprintMismatch), "{err}");
    assert_eq!(
        err.to_string(),
        "the server's CA does not match the token's fingerprint"
    );
    assert!(!state_dir.join("connector.json").exists());

    let info = enroll(args(token.to_string(), false))
        .await
        .expect("enrolled");
    assert_eq!(info.connector_id, "conn-test");
    let first_cert = std::fs::read_to_string(state_dir.join("cert.pem")).expect("cert");
    let err = enroll(args(token.to_string(), false))
        .await
        .expect_err("already");
    assert!(matches!(err, Error::AlreadyEnrolled { .. }), "{err}");

    // Run with a fake provider that has 2500 resources.
    let fake = Arc::new(FakeProvider::default());
    fake.resources.store(2500, Ordering::SeqCst);
    fake.set_delay(Duration::from_millis(50));
    let mut registry = ProviderRegistry::new();
    let shared = fake.clone();
    registry.register("fake", move |_| Ok(shared.clone() as Arc<dyn Provider>));
    let file: crate::config::ConfigFile = toml::from_str(&format!(
        r#"
        server = "{server}"
        state_dir = "{}"
        shutdown_grace = "5s"
        [[integrations]]
        name = "fake-1"
        kind = "fake"
        "#,
        state_dir.display()
    ))
    .expect("toml");
    let config = file.validate(&registry).expect("valid");
    let (stop, shutdown) = watch::channel(false);
    let runtime =
        tokio::spawn(async move { crate::runtime::run(config, &registry, shutdown).await });

    let mut first = tokio::time::timeout(WAIT, connections.recv())
        .await
        .expect("a stream in time")
        .expect("open");
    assert_eq!(first.hello.min_protocol, 1);
    assert_eq!(first.hello.integrations.len(), 1);
    assert_eq!(first.hello.integrations[0].kind, "fake");
    assert_eq!(
        first.hello.integrations[0].capabilities,
        ["sync", "grant", "revoke", "identities"]
    );
    assert_eq!(
        first.peer_cert.as_deref(),
        Some(
            CertificateDer::from_pem_slice(first_cert.as_bytes())
                .expect("der")
                .as_ref()
        )
    );

    // The start-up sync: 2500 resources in pages of at most 1000, then SyncDone.
    let mut pages = Vec::new();
    let mut renew_csr = None;
    let done = loop {
        match next_up(&mut first, "sync traffic", |m| {
            !matches!(m, Up::Heartbeat(_))
        })
        .await
        {
            Up::InventoryPage(page) => pages.push((page.resources.len(), page.permissions.len())),
            Up::Renew(renew) => renew_csr = Some(renew.csr_pem),
            Up::IdentityPage(page) => assert_eq!(page.identities.len(), 1),
            Up::SyncDone(done) => break done,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(pages, [(1000, 1), (1000, 0), (500, 0)]);
    assert!(done.full && done.error.is_empty() && done.command_id.is_empty());
    assert_eq!(done.resource_count, 2500);

    // The certificate was past half-life: the connector asked for a new one.
    let csr = match renew_csr {
        Some(csr) => csr,
        None => match next_up(&mut first, "a renew request", |m| matches!(m, Up::Renew(_))).await {
            Up::Renew(renew) => renew.csr_pem,
            _ => unreachable!(),
        },
    };
    let renewed_pem = plane.sign_csr(&csr, false).expect("signed");
    send_down(
        &first,
        Down::Renewed(pb::RenewResponse {
            certificate_pem: renewed_pem.clone(),
            ca_bundle_pem: plane.ca_pem.clone(),
            not_after: None,
        }),
    )
    .await;

    // A grant, applied once even when delivered twice.
    send_down(
        &first,
        Down::Command(sign(&signing_key, &grant("cmd-1", 1))),
    )
    .await;
    let result = result_of(&mut first).await;
    assert_eq!(
        (result.command_id.as_str(), result.outcome()),
        ("cmd-1", pb::CommandOutcome::Done)
    );
    send_down(
        &first,
        Down::Command(sign(&signing_key, &grant("cmd-1", 1))),
    )
    .await;
    assert_eq!(
        result_of(&mut first).await.outcome(),
        pb::CommandOutcome::Done
    );
    // A tampered command is dropped without an answer; the next good one is answered.
    let mut tampered = sign(&signing_key, &grant("cmd-evil", 2));
    tampered.signature[5] ^= 0xff;
    send_down(&first, Down::Command(tampered)).await;
    send_down(
        &first,
        Down::Command(sign(&signing_key, &grant("cmd-0", 0))),
    )
    .await;
    let result = result_of(&mut first).await;
    assert_eq!(result.command_id, "cmd-0");
    assert_eq!(result.outcome(), pb::CommandOutcome::Refused);
    assert_eq!(result.message, "stale generation 0 < 1");
    assert_eq!(fake.calls(), vec!["grant grant-1 readonly"]);

    // A sync the control plane asks for ends with a SyncDone naming the command.
    let sync = pb::Command {
        id: "cmd-sync".into(),
        kind: pb::CommandKind::Sync as i32,
        connector_id: "conn-test".into(),
        integration: "fake-1".into(),
        ..pb::Command::default()
    };
    send_down(&first, Down::Command(sign(&signing_key, &sync))).await;
    match next_up(&mut first, "the sync's end", |m| {
        matches!(m, Up::SyncDone(_))
    })
    .await
    {
        Up::SyncDone(done) => {
            assert_eq!(done.command_id, "cmd-sync");
            assert_eq!(done.resource_count, 2500);
            assert!(done.error.is_empty());
        }
        _ => unreachable!(),
    }

    // The renewed certificate and its key are on disk, the old stream keeps running.
    let deadline = tokio::time::Instant::now() + WAIT;
    while std::fs::read_to_string(state_dir.join("cert.pem")).expect("cert") != renewed_pem {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the renewal was not stored"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let key = KeyPair::from_pem(&std::fs::read_to_string(state_dir.join("key.pem")).expect("key"))
        .expect("key");
    assert!(crate::cert::certifies(&renewed_pem, &key).expect("parse"));

    // The server goes silent: after three heartbeat intervals the connector gives up on this
    // stream and reconnects, with the renewed certificate.
    heartbeats.store(false, Ordering::SeqCst);
    let silent_since = std::time::Instant::now();
    let mut second = tokio::time::timeout(WAIT, connections.recv())
        .await
        .expect("a reconnect in time")
        .expect("open");
    heartbeats.store(true, Ordering::SeqCst);
    assert!(
        silent_since.elapsed() >= Duration::from_millis(2500),
        "{:?}",
        silent_since.elapsed()
    );
    assert_eq!(
        second.peer_cert.as_deref(),
        Some(
            CertificateDer::from_pem_slice(renewed_pem.as_bytes())
                .expect("der")
                .as_ref()
        )
    );
    // The connector closed the dead stream.
    let closed =
        tokio::time::timeout(WAIT, async { while first.up.recv().await.is_some() {} }).await;
    assert!(closed.is_ok(), "the dead stream was not closed");

    // Shutdown while a command runs: its result is reported, then goodbye, then exit.
    fake.set_delay(Duration::from_millis(500));
    let mut slow = grant("cmd-2", 1);
    slow.grant_id = "grant-2".into();
    send_down(&second, Down::Command(sign(&signing_key, &slow))).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(true).expect("stop");
    let result = result_of(&mut second).await;
    assert_eq!(
        (result.command_id.as_str(), result.outcome()),
        ("cmd-2", pb::CommandOutcome::Done)
    );
    match next_up(&mut second, "goodbye", |m| matches!(m, Up::Goodbye(_))).await {
        Up::Goodbye(goodbye) => assert_eq!(goodbye.reason, "shutting down"),
        _ => unreachable!(),
    }
    drop(second);
    tokio::time::timeout(WAIT, runtime)
        .await
        .expect("the connector stops in time")
        .expect("join")
        .expect("a clean stop");
    assert_eq!(
        fake.calls(),
        vec!["grant grant-1 readonly", "grant grant-2 readonly"]
    );
}
