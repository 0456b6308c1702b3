//! The control plane's Ed25519 command-signing key. Connectors receive its public half at
//! enrollment and verify every command with it, so a command that did not come from Latch (or was
//! changed on the way) is never applied.

use std::path::Path;

use ed25519_dalek::{Signer, SigningKey};
use latch_proto::connector_protocol::command_signing_message;
use latch_proto::v1::{Command, SignedCommand};
use prost::Message;

/// The signing key, loaded.
pub struct CommandSigner {
    key: SigningKey,
}

impl std::fmt::Debug for CommandSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandSigner")
            .field("public_key", &hex::encode(self.public_key()))
            .finish()
    }
}

impl CommandSigner {
    /// Reads the key (64 hex digits) from `path`, or makes one there when `create` and the file
    /// does not exist.
    pub fn load_or_create(path: &Path, create: bool) -> anyhow::Result<CommandSigner> {
        let seed = super::secret_key::load_or_create(path, create, "command signing key")?;
        Ok(CommandSigner {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The public key connectors verify with.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Encodes and signs a command.
    pub fn sign(&self, command: &Command) -> SignedCommand {
        let encoded = command.encode_to_vec();
        let signature = self.key.sign(&command_signing_message(&encoded));
        SignedCommand {
            command: encoded,
            signature: signature.to_bytes().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};

    #[test]
    fn a_signature_verifies_with_the_public_key_and_fails_on_a_changed_command() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("command-signing.key");
        let signer = CommandSigner::load_or_create(&path, true).expect("signer");
        let again = CommandSigner::load_or_create(&path, false).expect("signer read back");
        assert_eq!(signer.public_key(), again.public_key());

        let signed = signer.sign(&Command {
            id: "c1".into(),
            permission: "read".into(),
            ..Command::default()
        });
        let key = VerifyingKey::from_bytes(&signer.public_key()).expect("key");
        let signature = Signature::from_slice(&signed.signature).expect("signature");
        assert!(
            key.verify(&command_signing_message(&signed.command), &signature)
                .is_ok()
        );
        let mut changed = signed.command.clone();
        let last = changed.len() - 1;
        changed[last] ^= 1;
        assert!(
            key.verify(&command_signing_message(&changed), &signature)
                .is_err()
        );
    }
}
