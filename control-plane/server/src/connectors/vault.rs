//! Sealing of the credentials connectors make for grants (temporary database users).
//!
//! They are stored only sealed: ChaCha20-Poly1305 under the server's credentials key (a file, like
//! the command-signing key), with a random nonce per seal and the grant id as associated data, so
//! a sealed value copied onto another grant's row does not open. A database dump alone reveals no
//! password; replicas share the key file.

use std::path::Path;

use anyhow::Context;
use latch_proto::v1::IssuedCredentials;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};

use crate::store::SealedCredentials;

/// The credentials key, loaded.
pub struct CredentialsVault {
    key: LessSafeKey,
}

impl std::fmt::Debug for CredentialsVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialsVault").finish_non_exhaustive()
    }
}

/// What is sealed: the credentials as the requester will see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub host: String,
    pub port: u32,
    pub database: String,
}

impl From<IssuedCredentials> for Credentials {
    fn from(issued: IssuedCredentials) -> Self {
        Credentials {
            username: issued.username,
            password: issued.password,
            host: issued.host,
            port: issued.port,
            database: issued.database,
        }
    }
}

impl CredentialsVault {
    /// Reads the key (64 hex digits) from `path`, or makes one there when `create` and the file
    /// does not exist.
    pub fn load_or_create(path: &Path, create: bool) -> anyhow::Result<CredentialsVault> {
        let bytes = super::secret_key::load_or_create(path, create, "credentials key")?;
        Ok(Self::from_key(&bytes))
    }

    fn from_key(bytes: &[u8; 32]) -> CredentialsVault {
        let key = UnboundKey::new(&CHACHA20_POLY1305, bytes)
            .unwrap_or_else(|_| unreachable!("a 32-byte key is the right length"));
        CredentialsVault {
            key: LessSafeKey::new(key),
        }
    }

    /// Seals `credentials` for `grant_id`.
    pub fn seal(&self, grant_id: &str, credentials: &Credentials) -> SealedCredentials {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut sealed = serde_json::to_vec(credentials)
            .unwrap_or_else(|_| unreachable!("plain strings serialize"));
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(grant_id.as_bytes()),
                &mut sealed,
            )
            .unwrap_or_else(|_| unreachable!("sealing fails only past 256 GiB"));
        SealedCredentials {
            nonce: nonce.to_vec(),
            sealed,
        }
    }

    /// Opens what [`seal`](Self::seal) made for `grant_id`; fails for another grant, another key
    /// or changed bytes.
    pub fn open(&self, grant_id: &str, sealed: &SealedCredentials) -> anyhow::Result<Credentials> {
        let nonce: [u8; NONCE_LEN] = sealed
            .nonce
            .as_slice()
            .try_into()
            .context("stored credentials have a malformed nonce")?;
        let mut bytes = sealed.sealed.clone();
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(grant_id.as_bytes()),
                &mut bytes,
            )
            .map_err(|_| {
                anyhow::anyhow!(
                    "the stored credentials of grant {grant_id} do not open with this server's credentials key"
                )
            })?;
        serde_json::from_slice(plain).context("opened credentials are not readable")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> Credentials {
        Credentials {
            username: "latch_t_0123".into(),
            password: "pw-123".into(),
            host: "127.0.0.1".into(),
            port: 5432,
            database: "app".into(),
        }
    }

    #[test]
    fn sealed_credentials_open_only_for_their_grant_and_key() {
        let vault = CredentialsVault::from_key(&[7; 32]);
        let sealed = vault.seal("g1", &credentials());
        assert!(
            !String::from_utf8_lossy(&sealed.sealed).contains("pw-123"),
            "the password is not stored in the clear"
        );
        assert_eq!(vault.open("g1", &sealed).expect("opens"), credentials());
        assert!(vault.open("g2", &sealed).is_err(), "bound to the grant");
        let other = CredentialsVault::from_key(&[8; 32]);
        assert!(other.open("g1", &sealed).is_err(), "bound to the key");
        let mut changed = sealed.clone();
        changed.sealed[0] ^= 1;
        assert!(vault.open("g1", &changed).is_err(), "tamper-evident");
        assert_ne!(vault.seal("g1", &credentials()).nonce, sealed.nonce);
    }
}
