//! The connector listener's front door, against the real server: enrollment tokens work once, and
//! the stream is refused without a certificate, with a certificate from another CA, with an expired
//! one, over TLS 1.2, and for a revoked connector (whose open stream is closed within seconds).
//!
//! The test plays the connector with its own TLS client, so it can present exactly the wrong thing.

use std::time::{Duration, Instant};

use latch_e2e::{Server, success};
use latch_proto::v1::{Hello, IntegrationAnnouncement, open_stream_response};
use rcgen::{CertificateParams, Issuer, KeyPair, SanType};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tonic::transport::Channel;

mod raw_connector;
use raw_connector::{
    Identity, Open, channel, client_config, create_connector, enroll, open_stream,
};

/// Opens the stream as the connector `tls-test` speaking protocol 1; returns it after Welcome,
/// or the refusal.
async fn hello(channel: Channel) -> Result<Open, tonic::Status> {
    let hello = Hello {
        min_protocol: 1,
        max_protocol: 1,
        version: "test".into(),
        integrations: vec![IntegrationAnnouncement {
            name: "tls-test".into(),
            kind: "fake".into(),
            capabilities: vec!["grant".into(), "revoke".into()],
        }],
    };
    open_stream(channel, hello)
        .await
        .map(|(open, _welcome)| open)
}

/// A certificate signed by the server's own CA key, as an attacker holding it could not make;
/// used here to make an expired one.
fn certificate_from_ca(server: &Server, connector_id: &str, expired: bool) -> Identity {
    let ca_pem = std::fs::read_to_string(server.data_dir.join("connector-ca.pem")).expect("ca");
    let ca_key = KeyPair::from_pem(
        &std::fs::read_to_string(server.data_dir.join("connector-ca.key")).expect("key"),
    )
    .expect("ca key");
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).expect("issuer");
    sign_client(&issuer, connector_id, expired)
}

fn sign_client(issuer: &Issuer<'_, KeyPair>, connector_id: &str, expired: bool) -> Identity {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI(
        format!("spiffe://latch.local/connector/{connector_id}")
            .try_into()
            .expect("uri"),
    )];
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 2);
    }
    let cert = params.signed_by(&key, issuer).expect("sign");
    Identity {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

fn start() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(
        &dir.path().join("data"),
        None,
        &["--connector-heartbeat", "1s"],
    );
    (dir, server)
}

#[tokio::test]
async fn an_enrollment_token_works_once_and_bad_ones_are_refused() {
    let (_dir, server) = start();
    let token = create_connector(&server, "edge-1");

    let malformed = enroll(&server, "latch-enroll-v1.nope")
        .await
        .expect_err("refused");
    assert_eq!(
        malformed.code(),
        tonic::Code::Unauthenticated,
        "{malformed:?}"
    );
    assert!(malformed.message().contains("token"), "{malformed:?}");

    let identity = enroll(&server, &token).await.expect("first use enrolls");
    assert!(identity.cert_pem.contains("BEGIN CERTIFICATE"));

    let again = enroll(&server, &token)
        .await
        .expect_err("second use refused");
    assert_eq!(again.code(), tonic::Code::Unauthenticated, "{again:?}");
    assert!(again.message().contains("already used"), "{again:?}");

    // A token for another Latch (another CA) names the reason.
    let mut foreign: latch_proto::connector_protocol::EnrollmentToken =
        create_connector(&server, "edge-2").parse().expect("token");
    foreign.ca_fingerprint = [0; 32];
    let refused = enroll(&server, &foreign.to_string())
        .await
        .expect_err("refused");
    assert!(refused.message().contains("another Latch"), "{refused:?}");

    let listed = success(&server.cli(
        Some(&server.admin_token()),
        &["-o", "json", "connectors", "list"],
    ));
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("json");
    let states: Vec<(&str, &str)> = listed
        .as_array()
        .expect("list")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or(""),
                c["state"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(states, vec![("edge-1", "enrolled"), ("edge-2", "pending")]);
}

#[tokio::test]
async fn the_stream_refuses_what_is_not_an_enrolled_connector_over_tls_13() {
    let (_dir, server) = start();
    let token = create_connector(&server, "edge-1");
    let identity = enroll(&server, &token).await.expect("enrolled");

    // The real certificate works.
    let good = channel(
        &server,
        client_config(&server, Some(&identity), &[&rustls::version::TLS13]),
    )
    .await
    .expect("handshake");
    hello(good).await.expect("welcome");

    // TLS 1.2: no handshake at all.
    let tls12 = channel(
        &server,
        client_config(&server, Some(&identity), &[&rustls::version::TLS12]),
    )
    .await;
    assert!(tls12.is_err(), "TLS 1.2 must be refused");

    // No client certificate: TLS works (enrollment needs it) but the stream is refused.
    let anonymous = channel(
        &server,
        client_config(&server, None, &[&rustls::version::TLS13]),
    )
    .await
    .expect("handshake without a certificate");
    let refused = hello(anonymous).await.expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    assert!(
        refused.message().contains("client certificate"),
        "{refused:?}"
    );

    // A certificate from another CA with the same kind of name: the handshake fails.
    let other_key = KeyPair::generate().expect("key");
    let mut other_params = CertificateParams::default();
    other_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other_issuer = Issuer::new(other_params, other_key);
    let stranger = sign_client(&other_issuer, "edge-1", false);
    let foreign = match channel(
        &server,
        client_config(&server, Some(&stranger), &[&rustls::version::TLS13]),
    )
    .await
    {
        Err(_) => None,
        // The client finishes its side of a TLS 1.3 handshake before the server checks the
        // certificate; the refusal then arrives on the first call.
        Ok(channel) => Some(
            hello(channel)
                .await
                .expect_err("a foreign CA must be refused"),
        ),
    };
    if let Some(status) = foreign {
        assert_ne!(status.code(), tonic::Code::Ok);
    }
    let refusals = |log: &str| log.matches("connector handshake refused").count();
    latch_e2e::wait_until(
        Duration::from_secs(5),
        "the server logs the refused handshake",
        || refusals(&server.log_text()) >= 2,
    );
    let before_expired = refusals(&server.log_text());

    // An expired certificate from the right CA, for the right connector: refused too.
    let connector_id = connector_id(&identity);
    let expired = certificate_from_ca(&server, &connector_id, true);
    let outcome = match channel(
        &server,
        client_config(&server, Some(&expired), &[&rustls::version::TLS13]),
    )
    .await
    {
        Err(_) => None,
        Ok(channel) => Some(
            hello(channel)
                .await
                .expect_err("an expired certificate must be refused"),
        ),
    };
    if let Some(status) = outcome {
        assert_ne!(status.code(), tonic::Code::Ok);
    }
    latch_e2e::wait_until(
        Duration::from_secs(5),
        "the server logs the expired certificate",
        || {
            refusals(&server.log_text()) > before_expired
                && server.log_text().contains("certificate expired")
        },
    );

    // A valid certificate for a connector Latch does not know.
    let unknown = certificate_from_ca(&server, "00000000-0000-0000-0000-000000000000", false);
    let channel = channel(
        &server,
        client_config(&server, Some(&unknown), &[&rustls::version::TLS13]),
    )
    .await
    .expect("handshake");
    let refused = hello(channel).await.expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
}

#[tokio::test]
async fn revoking_a_connector_closes_its_stream_within_seconds_and_refuses_it_after() {
    let (_dir, server) = start();
    let token = create_connector(&server, "edge-1");
    let identity = enroll(&server, &token).await.expect("enrolled");
    let config = client_config(&server, Some(&identity), &[&rustls::version::TLS13]);
    let (mut stream, _ours) = hello(channel(&server, config.clone()).await.expect("handshake"))
        .await
        .expect("welcome");

    success(&server.cli(
        Some(&server.admin_token()),
        &["connectors", "revoke", "edge-1"],
    ));
    let revoked_at = Instant::now();
    let mut goodbye = None;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.message()).await {
            Ok(Ok(Some(message))) => {
                if let Some(open_stream_response::Message::Goodbye(g)) = message.message {
                    goodbye = Some(g.reason);
                }
            }
            Ok(Ok(None)) | Ok(Err(_)) => break,
            Err(_) => panic!("the stream was still open 5 s after the revoke"),
        }
    }
    assert!(revoked_at.elapsed() < Duration::from_secs(5));
    assert_eq!(goodbye.as_deref(), Some("the connector was revoked"));

    let again = hello(channel(&server, config).await.expect("handshake"))
        .await
        .expect_err("a revoked connector is refused");
    assert_eq!(again.code(), tonic::Code::PermissionDenied, "{again:?}");
    assert!(again.message().contains("revoked"), "{again:?}");
}

/// The connector id in a certificate's SPIFFE URI.
fn connector_id(identity: &Identity) -> String {
    let der = CertificateDer::from_pem_slice(identity.cert_pem.as_bytes()).expect("der");
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).expect("x509");
    let san = cert
        .subject_alternative_name()
        .expect("san")
        .expect("san present");
    san.value
        .general_names
        .iter()
        .find_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri) => uri
                .strip_prefix("spiffe://latch.local/connector/")
                .map(str::to_string),
            _ => None,
        })
        .expect("connector id")
}
