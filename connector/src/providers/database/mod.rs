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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::ConfigFile;
    use crate::provider::ProviderRegistry;

    /// The README's quickstart config validates, and its providers build with the shipped kinds.
    #[test]
    fn the_postgres_quickstart_config_is_valid() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/postgres/connector.toml");
        let registry = ProviderRegistry::shipped();
        let file = ConfigFile::read(&path).expect("the example parses");
        for integration in &file.integrations {
            if let Err(err) = registry.build(integration) {
                panic!("{}: {err}", integration.name);
            }
        }
        let config = file.validate(&registry).expect("the example validates");
        assert_eq!(config.integrations.len(), 1);
    }
}
