//! What both ends of the connector protocol must agree on beyond the messages: the protocol
//! versions, the enrollment token's text form and the bytes a command signature covers.
//!
//! It lives here because the connector and the control plane share nothing else: neither depends
//! on the other, both depend on this crate.

use std::fmt;

/// The lowest protocol version this build speaks (Hello's range and Welcome's choice).
pub const MIN_PROTOCOL: u32 = 1;

/// The highest protocol version this build speaks.
pub const MAX_PROTOCOL: u32 = DIGEST_PAGES;

/// The protocol version that added digest pages (`InventoryPage.digests`, `ResourcesWanted`).
pub const DIGEST_PAGES: u32 = 2;

/// The version to speak with a peer that speaks `min..=max`: the highest both speak, if any.
pub fn choose_protocol(min: u32, max: u32) -> Option<u32> {
    let chosen = max.min(MAX_PROTOCOL);
    (chosen >= min.max(MIN_PROTOCOL)).then_some(chosen)
}

/// Prefix of every command signature's message, so a signature over a command can never be
/// mistaken for a signature over anything else.
pub const COMMAND_SIGNING_CONTEXT: &[u8] = b"latch.v1.Command\0";

/// The bytes the control plane signs for an encoded `Command`.
pub fn command_signing_message(encoded_command: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(COMMAND_SIGNING_CONTEXT.len() + encoded_command.len());
    message.extend_from_slice(COMMAND_SIGNING_CONTEXT);
    message.extend_from_slice(encoded_command);
    message
}

const TOKEN_PREFIX: &str = "latch-enroll-v1";

/// A one-time enrollment token: the secret the control plane stores only as a hash, and the
/// SHA-256 fingerprint of Latch's connector CA certificate (DER), so a new connector can trust the
/// server on first contact without any other file.
///
/// Text form: `latch-enroll-v1.<ca fingerprint, 64 hex>.<secret, 64 hex>`.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrollmentToken {
    pub ca_fingerprint: [u8; 32],
    pub secret: [u8; 32],
}

impl fmt::Debug for EnrollmentToken {
    // The secret never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollmentToken")
            .field("ca_fingerprint", &hex32(&self.ca_fingerprint))
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl fmt::Display for EnrollmentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{TOKEN_PREFIX}.{}.{}",
            hex32(&self.ca_fingerprint),
            hex32(&self.secret)
        )
    }
}

/// Why a string is not an enrollment token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedToken(pub &'static str);

impl fmt::Display for MalformedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed enrollment token: {}", self.0)
    }
}

impl std::error::Error for MalformedToken {}

impl std::str::FromStr for EnrollmentToken {
    type Err = MalformedToken;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut parts = text.trim().split('.');
        if parts.next() != Some(TOKEN_PREFIX) {
            return Err(MalformedToken("it does not start with latch-enroll-v1."));
        }
        let ca_fingerprint = parts
            .next()
            .and_then(parse_hex32)
            .ok_or(MalformedToken("the CA fingerprint is not 64 hex digits"))?;
        let secret = parts
            .next()
            .and_then(parse_hex32)
            .ok_or(MalformedToken("the secret is not 64 hex digits"))?;
        if parts.next().is_some() {
            return Err(MalformedToken("it has more than three parts"));
        }
        Ok(Self {
            ca_fingerprint,
            secret,
        })
    }
}

fn hex32(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_version_both_speak_is_chosen() {
        assert_eq!(choose_protocol(1, 1), Some(1));
        assert_eq!(choose_protocol(1, 2), Some(2));
        assert_eq!(choose_protocol(1, 9), Some(MAX_PROTOCOL));
        assert_eq!(choose_protocol(2, 2), Some(2));
        assert_eq!(choose_protocol(MAX_PROTOCOL + 1, MAX_PROTOCOL + 3), None);
        assert_eq!(choose_protocol(0, 0), None);
        assert_eq!(choose_protocol(2, 1), None);
    }

    #[test]
    fn a_token_survives_its_text_form() {
        let token = EnrollmentToken {
            ca_fingerprint: [0xab; 32],
            secret: [7; 32],
        };
        let text = token.to_string();
        assert!(text.starts_with("latch-enroll-v1.abab"));
        assert_eq!(text.parse::<EnrollmentToken>(), Ok(token));
    }

    #[test]
    fn malformed_tokens_say_what_is_wrong() {
        let good = EnrollmentToken {
            ca_fingerprint: [1; 32],
            secret: [2; 32],
        }
        .to_string();
        assert!("nope".parse::<EnrollmentToken>().is_err());
        let short = &good[..good.len() - 2];
        assert_eq!(
            short.parse::<EnrollmentToken>(),
            Err(MalformedToken("the secret is not 64 hex digits"))
        );
        assert!(format!("{good}.x").parse::<EnrollmentToken>().is_err());
        assert!(!format!("{:?}", good.parse::<EnrollmentToken>()).contains("0202"));
    }
}
