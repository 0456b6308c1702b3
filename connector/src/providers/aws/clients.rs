//! The SDK clients one `aws` integration uses, built from one [`SdkConfig`].
//!
//! Credentials come from the standard chain (environment, shared profile, web identity, ECS and
//! instance roles) and, with `assume_role_arn`, are exchanged for the role's through STS
//! AssumeRole (with `external_id`); the assumed credentials are cached and refreshed by the SDK.
//! They never leave the connector. The HTTP client uses rustls with ring, as the rest of the
//! crate does, so the build needs no second crypto library.
//!
//! **Retries.** Clients whose every call goes through a [`Pacer`](super::pacing::Pacer)
//! (Organizations, the tagging API and SSO Admin) have the SDK's retries off: the pacer
//! retries with backoff and takes a token for every attempt, so the rate holds for retries
//! too. IAM, STS and the Identity Store keep the SDK's standard retries, because some of their
//! calls are not paced (IAM grants, the Identity Store user listing).

use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sts::config::{Credentials, SharedInterceptor};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use super::pacing::Pacing;
use super::settings::AwsSettings;

/// The session name the connector's AssumeRole sessions carry, visible in CloudTrail.
const SESSION_NAME: &str = "latch-connector";

/// Attempts per call, the SDK's own standard retry (exponential backoff with jitter on
/// throttling and transient errors), for the clients not entirely behind a pacer.
const SDK_ATTEMPTS: u32 = 4;

/// Every client of one integration, and the pacing of the inventory's calls.
#[derive(Debug, Clone)]
pub(crate) struct Clients {
    pub sts: aws_sdk_sts::Client,
    pub organizations: aws_sdk_organizations::Client,
    pub sso_admin: aws_sdk_ssoadmin::Client,
    pub identity_store: aws_sdk_identitystore::Client,
    pub iam: aws_sdk_iam::Client,
    pub tagging: aws_sdk_resourcegroupstagging::Client,
    pub pacing: Arc<Pacing>,
}

/// One service's client from the shared config, with the SDK's retries off when `paced`, and
/// `interceptors` (tests use them to count and to fail requests).
macro_rules! client {
    ($sdk:ident, $config:expr, $interceptors:expr, paced: $paced:expr) => {{
        let mut builder = $sdk::config::Builder::from($config);
        if $paced {
            builder.set_retry_config(Some(RetryConfig::disabled()));
        }
        for interceptor in $interceptors {
            builder.push_interceptor(interceptor.clone());
        }
        $sdk::Client::from_conf(builder.build())
    }};
}

impl Clients {
    /// The clients at the published pacing, without interceptors: tests' own clients.
    #[cfg(test)]
    pub(crate) fn new(config: &SdkConfig) -> Self {
        Self::build(config, Pacing::published(), &[])
    }

    pub(crate) fn build(
        config: &SdkConfig,
        pacing: Pacing,
        interceptors: &[SharedInterceptor],
    ) -> Self {
        Self {
            sts: client!(aws_sdk_sts, config, interceptors, paced: false),
            organizations: client!(aws_sdk_organizations, config, interceptors, paced: true),
            sso_admin: client!(aws_sdk_ssoadmin, config, interceptors, paced: true),
            identity_store: client!(aws_sdk_identitystore, config, interceptors, paced: false),
            iam: client!(aws_sdk_iam, config, interceptors, paced: false),
            tagging: client!(aws_sdk_resourcegroupstagging, config, interceptors, paced: true),
            pacing: Arc::new(pacing),
        }
    }
}

/// The SDK config for `settings`. `base_credentials` replaces the standard chain; tests use it
/// to pass the emulator's fake keys without touching the process environment.
pub(crate) async fn load_config(
    settings: &AwsSettings,
    base_credentials: Option<Credentials>,
) -> SdkConfig {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(settings.region.clone()))
        .http_client(http_client)
        .retry_config(RetryConfig::standard().with_max_attempts(SDK_ATTEMPTS))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(Duration::from_secs(30))
                .build(),
        );
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url.clone());
    }
    if let Some(credentials) = base_credentials {
        loader = loader.credentials_provider(credentials);
    }
    let base = loader.load().await;
    let Some(role_arn) = &settings.assume_role_arn else {
        return base;
    };
    let mut role = AssumeRoleProvider::builder(role_arn.clone())
        .session_name(SESSION_NAME)
        .configure(&base);
    if let Some(external_id) = &settings.external_id {
        role = role.external_id(external_id.clone());
    }
    let role = role.build().await;
    base.into_builder()
        .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(role))
        .build()
}
