//! The crate's one error type. gRPC statuses from the control plane are mapped to it in one place,
//! [`Error::from_status`], so every caller reports the same words for the same failure.

use std::path::PathBuf;

/// Everything that can stop a `latch-connector` command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config file has problems; every one is listed.
    #[error("invalid configuration:\n  {}", .0.join("\n  "))]
    Config(Vec<String>),
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The state directory is missing something or holds something unreadable.
    #[error("state directory {}: {message}", path.display())]
    State { path: PathBuf, message: String },
    /// The finished-commands journal cannot be used.
    #[error("{}: {message}", path.display())]
    Journal { path: PathBuf, message: String },
    /// The enrollment token is not a token (found before any network traffic).
    #[error(transparent)]
    TokenMalformed(#[from] latch_proto::connector_protocol::MalformedToken),
    /// No token was given.
    #[error("no enrollment token: pass --token-file FILE, set LATCH_ENROLL_TOKEN, or pass --token")]
    NoToken,
    /// The state directory already holds an enrollment.
    #[error(
        "{} already holds the enrollment of connector {connector_id}; pass --force to replace it",
        path.display()
    )]
    AlreadyEnrolled { path: PathBuf, connector_id: String },
    /// The control plane refused the token (used, expired or unknown).
    #[error("the server refused the enrollment token: {0}")]
    TokenRefused(String),
    /// The server's certificate chain does not contain the CA the token pins.
    #[error("the server's CA does not match the token's fingerprint")]
    FingerprintMismatch,
    /// No connection could be made.
    #[error("cannot reach {server}: {message}")]
    Unreachable { server: String, message: String },
    /// The control plane answered with an error status.
    #[error("the server answered {code:?}: {message}")]
    Rpc { code: tonic::Code, message: String },
    /// The control plane answered something this connector cannot use.
    #[error("unusable answer from the server: {0}")]
    BadResponse(String),
    /// Key, certificate or TLS setup failed.
    #[error("tls: {0}")]
    Tls(String),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl Error {
    /// The one place a gRPC status from the control plane becomes an error.
    pub(crate) fn from_status(status: tonic::Status) -> Error {
        match status.code() {
            tonic::Code::Unauthenticated => Error::TokenRefused(status.message().to_string()),
            tonic::Code::Unavailable => Error::Unreachable {
                server: "the control plane".to_string(),
                message: status.message().to_string(),
            },
            code => Error::Rpc {
                code,
                message: status.message().to_string(),
            },
        }
    }

    pub(crate) fn state(path: impl Into<PathBuf>, message: impl Into<String>) -> Error {
        Error::State {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Renders an error with its whole source chain: tonic and hyper hide the useful part (the TLS
/// alert, the refused connection) a few levels down.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
