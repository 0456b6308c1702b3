//! Command signatures: the control plane signs every command with Ed25519 and the connector checks
//! the signature with the key it received at enrollment before it even decodes the bytes.

use ed25519_dalek::{Signature, VerifyingKey};
use latch_proto::connector_protocol::command_signing_message;
use latch_proto::v1::{Command, SignedCommand};
use prost::Message;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SignatureError {
    #[error("bad signature")]
    BadSignature,
    #[error("the signed bytes are not a command: {0}")]
    Undecodable(String),
}

/// Verifies `signed` with `key` and only then decodes the command.
pub(crate) fn verify_command(
    key: &VerifyingKey,
    signed: &SignedCommand,
) -> Result<Command, SignatureError> {
    let signature =
        Signature::from_slice(&signed.signature).map_err(|_| SignatureError::BadSignature)?;
    // Strict verification also refuses malleable signatures and weak keys.
    key.verify_strict(&command_signing_message(&signed.command), &signature)
        .map_err(|_| SignatureError::BadSignature)?;
    Command::decode(signed.command.as_slice())
        .map_err(|err| SignatureError::Undecodable(err.to_string()))
}

#[cfg(test)]
pub(crate) mod tests {
    use ed25519_dalek::{Signer, SigningKey};
    use latch_proto::v1::CommandKind;

    use super::*;

    pub(crate) fn sign(key: &SigningKey, command: &Command) -> SignedCommand {
        let bytes = command.encode_to_vec();
        let signature = key.sign(&command_signing_message(&bytes));
        SignedCommand {
            command: bytes,
            signature: signature.to_bytes().to_vec(),
        }
    }

    fn command() -> Command {
        Command {
            id: "cmd-1".into(),
            kind: CommandKind::Grant as i32,
            connector_id: "conn-1".into(),
            integration: "pg".into(),
            grant_id: "g-1".into(),
            generation: 3,
            permission: "readonly".into(),
            ..Command::default()
        }
    }

    #[test]
    fn a_good_signature_is_accepted() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let signed = sign(&key, &command());
        assert_eq!(verify_command(&key.verifying_key(), &signed), Ok(command()));
    }

    #[test]
    fn a_tampered_command_or_signature_is_rejected() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let mut signed = sign(&key, &command());
        // Change the permission on the wire: "readonly" -> "readonlz".
        let last = signed.command.iter().rposition(|b| *b == b'y').expect("y");
        signed.command[last] = b'z';
        assert_eq!(
            verify_command(&key.verifying_key(), &signed),
            Err(SignatureError::BadSignature)
        );

        let mut signed = sign(&key, &command());
        signed.signature[0] ^= 1;
        assert_eq!(
            verify_command(&key.verifying_key(), &signed),
            Err(SignatureError::BadSignature)
        );

        let signed = sign(&key, &command());
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert_eq!(
            verify_command(&other, &signed),
            Err(SignatureError::BadSignature)
        );

        let mut short = sign(&key, &command());
        short.signature.truncate(10);
        assert_eq!(
            verify_command(&key.verifying_key(), &short),
            Err(SignatureError::BadSignature)
        );
    }

    #[test]
    fn a_signature_without_the_context_prefix_is_rejected() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let bytes = command().encode_to_vec();
        let signed = SignedCommand {
            signature: key.sign(&bytes).to_bytes().to_vec(),
            command: bytes,
        };
        assert_eq!(
            verify_command(&key.verifying_key(), &signed),
            Err(SignatureError::BadSignature)
        );
    }
}
