//! `latch-connector enroll`: trade a one-time token for an identity. The connector makes its own
//! key (which never leaves the state directory), sends a CSR with the token to the unary `Enroll`
//! RPC, trusting the server only through the CA fingerprint in the token, and stores what comes
//! back.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use latch_proto::connector_protocol::EnrollmentToken;
use latch_proto::v1::EnrollRequest;
use latch_proto::v1::connector_service_client::ConnectorServiceClient;

use crate::cert;
use crate::config::ServerUrl;
use crate::error::Error;
use crate::state_dir::{ConnectorInfo, Credentials, StateDir};
use crate::tls;

/// How long the server has to answer `Enroll` once connected.
const ENROLL_TIMEOUT: Duration = Duration::from_secs(30);

/// What `enroll` needs.
#[derive(Debug)]
pub(crate) struct EnrollArgs {
    pub server: String,
    /// The token text; parsed before any network traffic.
    pub token: String,
    pub state_dir: PathBuf,
    pub force: bool,
}

/// Enrolls and returns who we now are.
pub(crate) async fn enroll(args: EnrollArgs) -> Result<ConnectorInfo, Error> {
    let token: EnrollmentToken = args.token.parse()?;
    let server = ServerUrl::parse(&args.server)
        .map_err(|err| Error::Config(vec![format!("--server: {err}")]))?;
    let state = StateDir::new(&args.state_dir);
    if let Some(existing) = state.existing()?
        && !args.force
    {
        return Err(Error::AlreadyEnrolled {
            path: args.state_dir,
            connector_id: existing.connector_id,
        });
    }

    let (key, csr_pem) = cert::new_key_and_csr()?;
    let (config, mismatch) = tls::enrollment_config(token.ca_fingerprint)?;
    tracing::info!(server = %server.url, "enrolling");
    let channel = match tls::connect(&server, config).await {
        Ok(channel) => channel,
        Err(_) if mismatch.load(Ordering::SeqCst) => return Err(Error::FingerprintMismatch),
        Err(err) => return Err(err),
    };
    let request = EnrollRequest {
        token: token.to_string(),
        csr_pem,
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let mut client = ConnectorServiceClient::new(channel);
    let call = client.enroll(request);
    let response = tokio::time::timeout(ENROLL_TIMEOUT, call)
        .await
        .map_err(|_| Error::Unreachable {
            server: server.url.clone(),
            message: format!(
                "no answer to Enroll within {}",
                humantime::format_duration(ENROLL_TIMEOUT)
            ),
        })?
        .map_err(|status| {
            if mismatch.load(Ordering::SeqCst) {
                Error::FingerprintMismatch
            } else {
                Error::from_status(status)
            }
        })?
        .into_inner();

    let bad = |what: &str| Error::BadResponse(what.to_string());
    if response.connector_id.is_empty() {
        return Err(bad("no connector id"));
    }
    if !cert::certifies(&response.certificate_pem, &key)
        .map_err(|err| Error::BadResponse(format!("certificate: {err}")))?
    {
        return Err(bad(
            "the certificate is not for the key this connector sent",
        ));
    }
    if !response.ca_bundle_pem.contains("BEGIN CERTIFICATE") {
        return Err(bad("no CA bundle"));
    }
    let command_key = <[u8; 32]>::try_from(response.command_signing_key.as_slice())
        .ok()
        .and_then(|bytes| VerifyingKey::from_bytes(&bytes).ok())
        .ok_or_else(|| bad("the command signing key is not an Ed25519 public key"))?;

    let info = ConnectorInfo {
        connector_id: response.connector_id,
        name: response.name,
        server: server.url,
    };
    let credentials = Credentials {
        key_pem: key.serialize_pem(),
        cert_pem: response.certificate_pem,
        ca_pem: response.ca_bundle_pem,
    };
    let state_for_write = state.clone();
    let info_for_write = info.clone();
    tokio::task::spawn_blocking(move || {
        state_for_write.save_enrollment(&info_for_write, &credentials, &command_key)
    })
    .await
    .map_err(|err| Error::state(state.path(), format!("saving did not finish: {err}")))??;
    tracing::info!(
        connector_id = %info.connector_id,
        name = %info.name,
        state_dir = %state.path().display(),
        "enrolled"
    );
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_malformed_token_fails_before_any_network() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = enroll(EnrollArgs {
            // Port 1 on a name that does not resolve: any network use would fail differently.
            server: "https://unreachable.invalid:1".into(),
            token: "latch-enroll-v1.zz.zz".into(),
            state_dir: dir.path().into(),
            force: false,
        })
        .await
        .expect_err("malformed");
        assert!(matches!(err, Error::TokenMalformed(_)), "{err}");
        assert!(err.to_string().contains("CA fingerprint"), "{err}");
    }

    #[tokio::test]
    async fn a_server_that_does_not_listen_is_unreachable() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let token = EnrollmentToken {
            ca_fingerprint: [1; 32],
            secret: [2; 32],
        };
        let err = enroll(EnrollArgs {
            server: format!("https://127.0.0.1:{port}"),
            token: token.to_string(),
            state_dir: dir.path().join("state"),
            force: false,
        })
        .await
        .expect_err("unreachable");
        assert!(matches!(err, Error::Unreachable { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("cannot reach https://127.0.0.1:{port}")),
            "{err}"
        );
        assert!(
            !err.to_string().contains(&"02".repeat(32)),
            "the secret never shows: {err}"
        );
        assert!(!dir.path().join("state").exists());
    }

    #[tokio::test]
    async fn an_existing_enrollment_is_kept_without_force() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let info = ConnectorInfo {
            connector_id: "c-1".into(),
            name: "edge".into(),
            server: "https://x".into(),
        };
        let credentials = Credentials {
            key_pem: "k".into(),
            cert_pem: "c".into(),
            ca_pem: "a".into(),
        };
        let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
        state
            .save_enrollment(&info, &credentials, &key)
            .expect("save");
        let token = EnrollmentToken {
            ca_fingerprint: [1; 32],
            secret: [2; 32],
        };
        let err = enroll(EnrollArgs {
            server: "https://unreachable.invalid:1".into(),
            token: token.to_string(),
            state_dir: dir.path().into(),
            force: false,
        })
        .await
        .expect_err("enrolled already");
        assert!(matches!(err, Error::AlreadyEnrolled { .. }), "{err}");
        assert!(err.to_string().contains("--force"), "{err}");
    }
}
