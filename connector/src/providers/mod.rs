//! The providers the shipped binary serves, each behind its own cargo feature.

use crate::provider::ProviderRegistry;

#[cfg(feature = "aws")]
pub(crate) mod aws;
#[cfg(feature = "database")]
pub(crate) mod database;
#[cfg(any(feature = "database", feature = "aws"))]
pub(crate) mod login_template;

/// Registers every provider this build was compiled with.
pub(crate) fn register_shipped(registry: &mut ProviderRegistry) {
    #[cfg(feature = "aws")]
    aws::register(registry);
    #[cfg(feature = "database")]
    database::register(registry);
    // Keeps the parameter used when the build has no provider features.
    let _ = registry;
}
