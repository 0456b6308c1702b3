//! The control plane's side of connectors: the connector CA and enrollment, the mTLS listener, the
//! command-signing key, and the hub that holds each connector's stream, delivers its commands and
//! takes in its results and inventory. See docs/connectors.md.

mod enrollment;
mod hub;
mod inventory;
pub mod listener;
pub mod pki;
mod secret_key;
mod service;
mod session;
pub mod signing;
pub mod vault;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::lifecycle::Lifecycle;
use crate::store::RetryPolicy;

pub use enrollment::{DEFAULT_TOKEN_TTL, hash_secret, new_token};
pub use hub::{Close, Hub};
pub use service::ConnectorApi;

/// Connector settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The trust domain in connectors' SPIFFE ids.
    pub trust_domain: String,
    /// Names the listener's certificate is valid for (DNS names or IP addresses): what connectors
    /// put in `server`.
    pub hostnames: Vec<String>,
    /// The CA's files; `None`: `connector-ca.pem` and `connector-ca.key` in the data directory,
    /// made on first start.
    pub ca_files: Option<pki::CaFiles>,
    /// The command-signing key's file; `None`: `command-signing.key` in the data directory.
    pub signing_key_file: Option<PathBuf>,
    /// The key that seals credentials connectors make for grants; `None`: `credentials.key` in
    /// the data directory.
    pub credentials_key_file: Option<PathBuf>,
    /// How long a connector's certificate lives; it renews at half-life.
    pub cert_ttl: Duration,
    /// How often each side of a stream sends a heartbeat; three missed ones end the stream.
    pub heartbeat: Duration,
    /// How failed commands are retried.
    pub retry: RetryPolicy,
    /// Most commands one connector has in flight at once.
    pub window: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            trust_domain: "latch.local".to_string(),
            hostnames: vec!["localhost".to_string(), "127.0.0.1".to_string()],
            ca_files: None,
            signing_key_file: None,
            credentials_key_file: None,
            cert_ttl: Duration::from_secs(24 * 3600),
            heartbeat: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            window: 64,
        }
    }
}

/// Everything the connector side needs, built once at start.
pub struct Connectors {
    pub ca: Arc<pki::ConnectorCa>,
    pub signer: Arc<signing::CommandSigner>,
    pub vault: Arc<vault::CredentialsVault>,
    pub hub: Arc<Hub>,
    pub tls: Arc<rustls::ServerConfig>,
}

impl Connectors {
    /// Loads (or makes) the CA and the signing key and starts the hub.
    pub fn start(
        settings: Settings,
        data_dir: &Path,
        lifecycle: Arc<Lifecycle>,
    ) -> anyhow::Result<Connectors> {
        let (ca_files, create_ca) = match &settings.ca_files {
            Some(files) => (files.clone(), false),
            None => (pki::CaFiles::in_data_dir(data_dir), true),
        };
        let ca = Arc::new(pki::ConnectorCa::load_or_create(
            &ca_files,
            create_ca,
            &settings.trust_domain,
        )?);
        let (key_file, create_key) = match &settings.signing_key_file {
            Some(path) => (path.clone(), false),
            None => (data_dir.join("command-signing.key"), true),
        };
        let signer = Arc::new(signing::CommandSigner::load_or_create(
            &key_file, create_key,
        )?);
        let (key_file, create_key) = match &settings.credentials_key_file {
            Some(path) => (path.clone(), false),
            None => (data_dir.join("credentials.key"), true),
        };
        let vault = Arc::new(vault::CredentialsVault::load_or_create(
            &key_file, create_key,
        )?);
        let tls = ca
            .server_tls_config(&settings.hostnames)
            .context("connector listener TLS")?;
        let hub = Arc::new(Hub::new(
            settings,
            lifecycle,
            ca.clone(),
            signer.clone(),
            vault.clone(),
        ));
        Ok(Connectors {
            ca,
            signer,
            vault,
            hub,
            tls,
        })
    }
}
