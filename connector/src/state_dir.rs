//! The state directory `enroll` fills and `run` reads:
//!
//! | file | what |
//! |---|---|
//! | `connector.json` | `{connector_id, name, server}`; written last, so it marks a complete enrollment |
//! | `key.pem` | the connector's private key (mode 0600); never leaves this directory |
//! | `cert.pem` | its client certificate |
//! | `ca.pem` | Latch's connector CA: the roots for the server's certificate |
//! | `command-signing.pub` | hex of the Ed25519 key that verifies commands |
//! | `commands.journal` | finished commands (see [`crate::journal`]) |
//!
//! Every write is atomic: a temporary file is written, synced and renamed over the old one, and
//! the directory is synced. A renewal replaces key and certificate together: both are first
//! written as `*.new`; the key is renamed, then the certificate. A crash in between is finished
//! (or undone) by [`StateDir::load`].

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::error::Error;

const CONNECTOR_JSON: &str = "connector.json";
const KEY_PEM: &str = "key.pem";
const CERT_PEM: &str = "cert.pem";
const CA_PEM: &str = "ca.pem";
const COMMAND_SIGNING_PUB: &str = "command-signing.pub";
const JOURNAL: &str = "commands.journal";

/// Who this connector is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ConnectorInfo {
    pub connector_id: String,
    pub name: String,
    pub server: String,
}

/// The key and certificates for mutual TLS.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub key_pem: String,
    pub cert_pem: String,
    pub ca_pem: String,
}

impl std::fmt::Debug for Credentials {
    // The private key never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("key_pem", &"<redacted>")
            .field("cert_pem", &self.cert_pem.len())
            .field("ca_pem", &self.ca_pem.len())
            .finish()
    }
}

/// Everything `run` needs from the directory.
#[derive(Debug)]
pub(crate) struct Enrolled {
    pub info: ConnectorInfo,
    pub credentials: Credentials,
    pub command_key: VerifyingKey,
}

#[derive(Debug, Clone)]
pub(crate) struct StateDir {
    path: PathBuf,
}

impl StateDir {
    pub(crate) fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn journal_path(&self) -> PathBuf {
        self.path.join(JOURNAL)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The enrollment already here, if any.
    pub(crate) fn existing(&self) -> Result<Option<ConnectorInfo>, Error> {
        let path = self.file(CONNECTOR_JSON);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|err| Error::state(&path, format!("unreadable: {err}"))),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Read { path, source }),
        }
    }

    /// Stores a new enrollment, replacing any earlier one.
    pub(crate) fn save_enrollment(
        &self,
        info: &ConnectorInfo,
        credentials: &Credentials,
        command_key: &VerifyingKey,
    ) -> Result<(), Error> {
        create_private_dir(&self.path)?;
        // Leftovers of an interrupted renewal belong to the old enrollment.
        for name in [KEY_PEM, CERT_PEM] {
            remove_if_present(&self.file(&format!("{name}.new")))?;
        }
        write_atomic(&self.file(KEY_PEM), credentials.key_pem.as_bytes(), 0o600)?;
        write_atomic(&self.file(CERT_PEM), credentials.cert_pem.as_bytes(), 0o644)?;
        write_atomic(&self.file(CA_PEM), credentials.ca_pem.as_bytes(), 0o644)?;
        let key_hex = format!("{}\n", hex::encode(command_key.as_bytes()));
        write_atomic(&self.file(COMMAND_SIGNING_PUB), key_hex.as_bytes(), 0o644)?;
        // A new identity starts with no finished commands.
        remove_if_present(&self.journal_path())?;
        let json = serde_json::to_vec_pretty(info)
            .map_err(|err| Error::state(&self.path, format!("cannot encode: {err}")))?;
        write_atomic(&self.file(CONNECTOR_JSON), &json, 0o644)
    }

    /// Loads the enrollment, first finishing a renewal a crash may have interrupted.
    pub(crate) fn load(&self) -> Result<Enrolled, Error> {
        let Some(info) = self.existing()? else {
            return Err(Error::state(
                &self.path,
                "no enrollment here (connector.json is missing); run `latch-connector enroll` first",
            ));
        };
        self.recover_renewal()?;
        let credentials = self.credentials()?;
        let key_path = self.file(COMMAND_SIGNING_PUB);
        let key_hex = read_text(&key_path)?;
        let command_key = hex::decode(key_hex.trim())
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .and_then(|bytes| VerifyingKey::from_bytes(&bytes).ok())
            .ok_or_else(|| Error::state(&key_path, "not the hex of an Ed25519 public key"))?;
        Ok(Enrolled {
            info,
            credentials,
            command_key,
        })
    }

    /// The current key and certificates; read for every connection, so a renewal takes effect
    /// on the next one.
    pub(crate) fn credentials(&self) -> Result<Credentials, Error> {
        Ok(Credentials {
            key_pem: read_text(&self.file(KEY_PEM))?,
            cert_pem: read_text(&self.file(CERT_PEM))?,
            ca_pem: read_text(&self.file(CA_PEM))?,
        })
    }

    /// Replaces key and certificate (and the CA bundle) after a renewal.
    pub(crate) fn save_renewed(&self, credentials: &Credentials) -> Result<(), Error> {
        let key_new = self.file(&format!("{KEY_PEM}.new"));
        let cert_new = self.file(&format!("{CERT_PEM}.new"));
        write_atomic(&key_new, credentials.key_pem.as_bytes(), 0o600)?;
        write_atomic(&cert_new, credentials.cert_pem.as_bytes(), 0o644)?;
        // From here on the renewal is committed: `key.pem.new` gone means "finish it".
        rename(&key_new, &self.file(KEY_PEM))?;
        rename(&cert_new, &self.file(CERT_PEM))?;
        sync_dir(&self.path)?;
        write_atomic(&self.file(CA_PEM), credentials.ca_pem.as_bytes(), 0o644)
    }

    fn recover_renewal(&self) -> Result<(), Error> {
        let key_new = self.file(&format!("{KEY_PEM}.new"));
        let cert_new = self.file(&format!("{CERT_PEM}.new"));
        if key_new.exists() {
            // Crashed before the commit point: the old pair is intact.
            remove_if_present(&key_new)?;
            remove_if_present(&cert_new)?;
        } else if cert_new.exists() {
            // Crashed between the two renames: the new key is in place, finish with its cert.
            rename(&cert_new, &self.file(CERT_PEM))?;
        }
        sync_dir(&self.path)
    }
}

fn read_text(path: &Path) -> Result<String, Error> {
    fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn create_private_dir(path: &Path) -> Result<(), Error> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path).map_err(write_error(path))
}

/// Writes `bytes` to `path` so that a reader (or a crash) sees the old content or the new, never
/// a mix: temporary file, fsync, rename, fsync of the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp).map_err(write_error(&tmp))?;
    // An existing temporary file keeps its old mode; make sure of it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(write_error(&tmp))?;
    }
    file.write_all(bytes).map_err(write_error(&tmp))?;
    file.sync_all().map_err(write_error(&tmp))?;
    drop(file);
    rename(&tmp, path)?;
    sync_dir(dir)
}

fn rename(from: &Path, to: &Path) -> Result<(), Error> {
    fs::rename(from, to).map_err(write_error(to))
}

fn remove_if_present(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Write {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Makes renames in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(write_error(dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(tag: &str) -> Credentials {
        Credentials {
            key_pem: format!("key-{tag}"),
            cert_pem: format!("cert-{tag}"),
            ca_pem: format!("ca-{tag}"),
        }
    }

    fn info() -> ConnectorInfo {
        ConnectorInfo {
            connector_id: "c-1".into(),
            name: "edge".into(),
            server: "https://latch:7701".into(),
        }
    }

    #[test]
    fn an_enrollment_survives_a_reload_with_a_private_key_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path().join("state"));
        assert_eq!(state.existing().expect("read"), None);
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]).verifying_key();
        state
            .save_enrollment(&info(), &credentials("a"), &key)
            .expect("save");
        let loaded = state.load().expect("load");
        assert_eq!(loaded.info, info());
        assert_eq!(loaded.credentials.key_pem, "key-a");
        assert_eq!(loaded.command_key, key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(state.path().join(KEY_PEM))
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!format!("{:?}", loaded.credentials).contains("key-a"));
    }

    #[test]
    fn an_interrupted_renewal_is_finished_or_undone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]).verifying_key();
        state
            .save_enrollment(&info(), &credentials("old"), &key)
            .expect("save");

        // Crash after the key was renamed, before the certificate was.
        fs::write(dir.path().join(KEY_PEM), "key-new").expect("write");
        fs::write(dir.path().join("cert.pem.new"), "cert-new").expect("write");
        let loaded = state.load().expect("load");
        assert_eq!(loaded.credentials.key_pem, "key-new");
        assert_eq!(loaded.credentials.cert_pem, "cert-new");

        // Crash before the commit point: the old pair stays.
        fs::write(dir.path().join("key.pem.new"), "key-newer").expect("write");
        fs::write(dir.path().join("cert.pem.new"), "cert-newer").expect("write");
        let loaded = state.load().expect("load");
        assert_eq!(loaded.credentials.key_pem, "key-new");
        assert_eq!(loaded.credentials.cert_pem, "cert-new");
        assert!(!dir.path().join("key.pem.new").exists());

        state.save_renewed(&credentials("r")).expect("renew");
        let loaded = state.load().expect("load");
        assert_eq!(loaded.credentials.key_pem, "key-r");
        assert_eq!(loaded.credentials.cert_pem, "cert-r");
        assert_eq!(loaded.credentials.ca_pem, "ca-r");
    }

    #[test]
    fn a_missing_enrollment_says_what_to_do() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = StateDir::new(dir.path()).load().expect_err("empty");
        assert!(err.to_string().contains("latch-connector enroll"), "{err}");
    }
}
