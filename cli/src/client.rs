//! Connecting to the Latch server and authenticating every call.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use latch_proto::v1::access_flow_service_client::AccessFlowServiceClient;
use latch_proto::v1::access_request_service_client::AccessRequestServiceClient;
use latch_proto::v1::audit_service_client::AuditServiceClient;
use latch_proto::v1::connector_admin_service_client::ConnectorAdminServiceClient;
use latch_proto::v1::directory_service_client::DirectoryServiceClient;
use latch_proto::v1::integration_service_client::IntegrationServiceClient;
use latch_proto::v1::resource_service_client::ResourceServiceClient;
use latch_proto::v1::token_service_client::TokenServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

/// Where the first admin token of a server started in the current directory is written.
pub const DEFAULT_TOKEN_FILE: &str = "latch-data/admin.token";

/// How long to wait for the server to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for any one call.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a setting came from. The command line beats the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    CommandLine,
    Environment,
}

/// The token settings given, each with where it came from.
#[derive(Debug, Default)]
pub struct TokenSettings {
    /// `--token` or `LATCH_TOKEN`.
    pub token: Option<(String, Origin)>,
    /// `--token-file` or `LATCH_TOKEN_FILE`.
    pub token_file: Option<(PathBuf, Origin)>,
}

impl TokenSettings {
    /// The token to send, if any.
    ///
    /// The command line beats the environment; given the same way, `--token` beats `--token-file`.
    /// With neither, `default_file` is read if it exists; otherwise calls go without a token.
    pub fn resolve(self, default_file: &Path) -> Result<Option<String>> {
        let inline = self
            .token
            .map(|(token, origin)| (origin, TokenSource::Inline(token)));
        let file = self
            .token_file
            .map(|(path, origin)| (origin, TokenSource::File(path)));
        // `min_by_key` keeps the first of equals, so the inline token wins a tie.
        let chosen = inline
            .into_iter()
            .chain(file)
            .min_by_key(|(origin, _)| *origin);
        match chosen {
            Some((_, TokenSource::Inline(token))) => {
                non_empty(&token, "the token given by --token or LATCH_TOKEN").map(Some)
            }
            Some((_, TokenSource::File(path))) => read_token_file(&path).map(Some),
            None if default_file.is_file() => read_token_file(default_file).map(Some),
            None => Ok(None),
        }
    }
}

/// A token given directly or by file.
enum TokenSource {
    Inline(String),
    File(PathBuf),
}

/// Reads a token file, ignoring surrounding whitespace.
fn read_token_file(path: &Path) -> Result<String> {
    let content = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the token file {}", path.display()))?;
    non_empty(&content, &format!("the token file {}", path.display()))
}

/// The token trimmed of whitespace, or an error naming `what` if nothing is left.
fn non_empty(token: &str, what: &str) -> Result<String> {
    let token = token.trim();
    if token.is_empty() {
        bail!("{what} is empty");
    }
    Ok(token.to_owned())
}

/// Adds `authorization: Bearer <token>` to every call, when there is a token.
#[derive(Clone)]
pub struct BearerAuth(Option<MetadataValue<Ascii>>);

impl BearerAuth {
    /// Prepares the header value, refusing tokens that cannot be sent in a header.
    pub fn new(token: Option<&str>) -> Result<Self> {
        let value = token
            .map(|token| MetadataValue::try_from(format!("Bearer {token}")))
            .transpose()
            // The error would quote the token; say what is wrong without it.
            .map_err(|_| {
                anyhow::anyhow!("the token contains characters that cannot be sent in a header")
            })?;
        Ok(Self(value))
    }
}

impl Interceptor for BearerAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// Client for access flows, authenticating every call.
pub type FlowClient = AccessFlowServiceClient<InterceptedService<Channel, BearerAuth>>;

/// Client for API tokens, authenticating every call.
pub type TokenClient = TokenServiceClient<InterceptedService<Channel, BearerAuth>>;

/// Client for the audit log, authenticating every call.
pub type AuditClient = AuditServiceClient<InterceptedService<Channel, BearerAuth>>;

/// Client for the directory, authenticating every call.
pub type DirectoryClient = DirectoryServiceClient<InterceptedService<Channel, BearerAuth>>;

/// Client for access requests and grants, authenticating every call.
pub type RequestClient = AccessRequestServiceClient<InterceptedService<Channel, BearerAuth>>;

/// Client for the resource inventory, authenticating every call.
pub type ResourceClient = ResourceServiceClient<InterceptedService<Channel, BearerAuth>>;

/// Client for connector administration, authenticating every call.
pub type ConnectorAdminClient =
    ConnectorAdminServiceClient<InterceptedService<Channel, BearerAuth>>;

/// Client for integrations, authenticating every call.
pub type IntegrationClient = IntegrationServiceClient<InterceptedService<Channel, BearerAuth>>;

/// A connection to the Latch server's public API.
pub struct Api {
    channel: Channel,
    auth: BearerAuth,
}

impl Api {
    /// Connects to `server`, failing at once with a clear message if it cannot be reached.
    pub async fn connect(server: &str, auth: BearerAuth) -> Result<Self> {
        let endpoint = Endpoint::from_shared(server.to_owned())
            .with_context(|| {
                format!("invalid server URL {server:?}; expected one like http://127.0.0.1:7700")
            })?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT);
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("cannot reach the Latch server at {server}"))?;
        Ok(Self { channel, auth })
    }

    /// The access flow service.
    pub fn flows(&self) -> FlowClient {
        AccessFlowServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// The audit service.
    pub fn audit(&self) -> AuditClient {
        AuditServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// The connector administration service.
    pub fn connectors(&self) -> ConnectorAdminClient {
        ConnectorAdminServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// The integration service.
    pub fn integrations(&self) -> IntegrationClient {
        IntegrationServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// The directory service.
    pub fn directory(&self) -> DirectoryClient {
        DirectoryServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// The access request service, which also lists grants.
    pub fn requests(&self) -> RequestClient {
        AccessRequestServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// The resource service.
    pub fn resources(&self) -> ResourceClient {
        ResourceServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// The token service.
    pub fn tokens(&self) -> TokenClient {
        TokenServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_file(dir: &tempfile::TempDir, name: &str, content: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, content).expect("write token file");
        path
    }

    fn settings(token: Option<(&str, Origin)>, file: Option<(&Path, Origin)>) -> TokenSettings {
        TokenSettings {
            token: token.map(|(t, o)| (t.to_owned(), o)),
            token_file: file.map(|(p, o)| (p.to_owned(), o)),
        }
    }

    #[test]
    fn token_beats_token_file_given_the_same_way() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = token_file(&dir, "t", "from-file\n");
        for origin in [Origin::CommandLine, Origin::Environment] {
            let resolved = settings(Some(("inline", origin)), Some((&file, origin)))
                .resolve(&dir.path().join("absent"))
                .expect("resolves");
            assert_eq!(resolved.as_deref(), Some("inline"));
        }
    }

    #[test]
    fn command_line_beats_environment() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = token_file(&dir, "t", "  from-file \n");
        let absent = dir.path().join("absent");
        let resolved = settings(
            Some(("from-env", Origin::Environment)),
            Some((&file, Origin::CommandLine)),
        )
        .resolve(&absent)
        .expect("resolves");
        assert_eq!(resolved.as_deref(), Some("from-file"));
        let resolved = settings(
            Some(("from-flag", Origin::CommandLine)),
            Some((&file, Origin::Environment)),
        )
        .resolve(&absent)
        .expect("resolves");
        assert_eq!(resolved.as_deref(), Some("from-flag"));
    }

    #[test]
    fn default_file_is_the_fallback() {
        let dir = tempfile::tempdir().expect("temp dir");
        let default = token_file(&dir, "admin.token", "latch_abc.secret\n");
        let resolved = TokenSettings::default()
            .resolve(&default)
            .expect("resolves");
        assert_eq!(resolved.as_deref(), Some("latch_abc.secret"));
        let explicit = settings(Some(("given", Origin::Environment)), None)
            .resolve(&default)
            .expect("resolves");
        assert_eq!(explicit.as_deref(), Some("given"));
    }

    #[test]
    fn no_token_at_all_is_allowed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let resolved = TokenSettings::default()
            .resolve(&dir.path().join("absent"))
            .expect("resolves");
        assert_eq!(resolved, None);
    }

    #[test]
    fn empty_or_missing_token_files_are_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let empty = token_file(&dir, "empty", " \n");
        let absent = dir.path().join("absent");
        let err = settings(None, Some((&empty, Origin::CommandLine)))
            .resolve(&absent)
            .expect_err("empty");
        assert!(err.to_string().contains("is empty"), "{err}");
        let err = settings(None, Some((&absent, Origin::CommandLine)))
            .resolve(&absent)
            .expect_err("missing");
        assert!(
            err.to_string().contains("cannot read the token file"),
            "{err}"
        );
    }

    #[test]
    fn bearer_header_is_added_only_with_a_token() {
        let mut auth = BearerAuth::new(Some("latch_abc.secret")).expect("valid token");
        let request = auth.call(Request::new(())).expect("intercepted");
        let header = request.metadata().get("authorization").expect("header set");
        assert_eq!(header.to_str().expect("ascii"), "Bearer latch_abc.secret");

        let mut anonymous = BearerAuth::new(None).expect("no token");
        let request = anonymous.call(Request::new(())).expect("intercepted");
        assert!(request.metadata().get("authorization").is_none());
    }

    #[test]
    fn tokens_that_cannot_be_a_header_are_refused_without_echoing_them() {
        let err = BearerAuth::new(Some("bad\ntoken")).err().expect("refused");
        assert!(!err.to_string().contains("bad"), "{err}");
    }
}
