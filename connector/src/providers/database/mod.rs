//! The `postgres` and `mysql` providers: databases (and PostgreSQL schemas) as resources, logins
//! as identities, and grants as membership in group roles the connector owns.
//!
//! Both share [`settings::DatabaseSettings`]: the admin DSN (from `dsn`, `dsn_file` or `dsn_env`),
//! the databases in scope, how an email becomes a login (`existing_role`) or whether each grant
//! gets its own login (`temporary_user`), tags and the privileges behind each permission. The SQL
//! differs enough between the engines that each has its own file.

use std::sync::Arc;

use crate::config::IntegrationConfig;
use crate::provider::{Provider, ProviderRegistry};

pub(crate) mod mysql;
pub(crate) mod postgres;
pub(crate) mod settings;

/// Registers the `postgres` and `mysql` kinds.
pub(crate) fn register(registry: &mut ProviderRegistry) {
    registry.register(
        "postgres",
        |integration: &IntegrationConfig| -> Result<Arc<dyn Provider>, String> {
            postgres::PostgresProvider::from_config(integration)
        },
    );
    registry.register(
        "mysql",
        |integration: &IntegrationConfig| -> Result<Arc<dyn Provider>, String> {
            mysql::MysqlProvider::from_config(integration)
        },
    );
}
