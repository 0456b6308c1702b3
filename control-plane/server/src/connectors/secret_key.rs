//! The server's 32-byte secret keys (command signing, credentials sealing): one file each, 64 hex
//! digits, made on first start with owner-only permissions when the admin did not give one.

use std::path::Path;

use anyhow::Context;

/// Reads the key at `path`, or makes one there when `create` and the file does not exist.
/// `what` names the key in errors ("command signing key").
pub fn load_or_create(path: &Path, create: bool, what: &str) -> anyhow::Result<[u8; 32]> {
    if !path.exists() && create {
        let key: [u8; 32] = rand::random();
        super::pki::write_private(path, &format!("{}\n", hex::encode(key)))?;
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the {what} {}", path.display()))?;
    hex::decode(text.trim())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .with_context(|| format!("{what} {}: expected 64 hex digits", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_made_key_reads_back_and_a_malformed_file_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.key");
        let made = load_or_create(&path, true, "test key").expect("made");
        assert_eq!(
            load_or_create(&path, false, "test key").expect("read"),
            made
        );

        let missing = dir.path().join("missing.key");
        assert!(load_or_create(&missing, false, "test key").is_err());
        assert!(!missing.exists(), "a given key file is never made");

        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, "not hex\n").expect("write");
        let err = load_or_create(&bad, false, "test key").expect_err("malformed");
        assert!(
            format!("{err:#}").contains("test key") && format!("{err:#}").contains("bad.key"),
            "{err:#}"
        );
    }
}
