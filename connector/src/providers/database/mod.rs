//! The `postgres` and `mysql` providers (placeholder module: being written).

use crate::provider::ProviderRegistry;

pub(crate) fn register(registry: &mut ProviderRegistry) {
    let _ = registry;
}
