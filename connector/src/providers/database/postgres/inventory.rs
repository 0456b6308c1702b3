//! The sync: the server, its databases and their schemas as resources, login roles as
//! identities.

use crate::provider::{
    ProviderError, ResourceTypePermissions, SyncSink, SyncedIdentity, SyncedResource,
};

use super::sql::classify;
use super::{DATABASE_TYPE, PostgresProvider, SCHEMA_TYPE, SERVER_TYPE};

/// Resources (or identities) pushed to the sink at once.
const PAGE: usize = 500;

/// The schemas a grant or sync sees: no catalogs, no `information_schema`, and not the
/// connector's own `latch_connector`.
pub(super) const USER_SCHEMAS: &str = "NOT (nspname LIKE 'pg\\_%' OR nspname = 'information_schema' \
     OR nspname = 'latch_connector')";

/// Collects resources into pages; the first page carries the permissions.
struct Pager<'a> {
    sink: &'a mut dyn SyncSink,
    page: Vec<SyncedResource>,
    permissions: Option<Vec<ResourceTypePermissions>>,
}

impl Pager<'_> {
    async fn push(&mut self, resource: SyncedResource) -> Result<(), ProviderError> {
        self.page.push(resource);
        if self.page.len() >= PAGE {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ProviderError> {
        let permissions = self.permissions.take();
        if self.page.is_empty() && permissions.is_none() {
            return Ok(());
        }
        self.sink
            .resources(
                std::mem::take(&mut self.page),
                permissions.unwrap_or_default(),
            )
            .await
    }
}

impl PostgresProvider {
    pub(super) async fn sync_inventory(
        &self,
        sink: &mut dyn SyncSink,
    ) -> Result<(), ProviderError> {
        let admin = self.admin_pool();
        let databases: Vec<String> = sqlx::query_scalar(
            "SELECT datname::text FROM pg_database
             WHERE NOT datistemplate AND datallowconn ORDER BY datname",
        )
        .fetch_all(&admin)
        .await
        .map_err(|err| classify(err, "listing databases"))?;
        let databases: Vec<String> = databases
            .into_iter()
            .filter(|db| self.settings.includes_database(db))
            .collect();

        let grantable = self.settings.permission_names();
        let permissions = vec![
            ResourceTypePermissions {
                resource_type: SERVER_TYPE.into(),
                permissions: Vec::new(),
            },
            ResourceTypePermissions {
                resource_type: DATABASE_TYPE.into(),
                permissions: grantable.clone(),
            },
            ResourceTypePermissions {
                resource_type: SCHEMA_TYPE.into(),
                permissions: grantable,
            },
        ];
        let mut pager = Pager {
            sink,
            page: Vec::new(),
            permissions: Some(permissions),
        };

        pager
            .push(SyncedResource {
                id: self.server_id.clone(),
                resource_type: SERVER_TYPE.into(),
                name: format!("{}:{}", self.host, self.port),
                ..SyncedResource::default()
            })
            .await?;
        for database in &databases {
            pager
                .push(SyncedResource {
                    id: format!("{}/{database}", self.server_id),
                    resource_type: DATABASE_TYPE.into(),
                    name: database.clone(),
                    parent: Some(self.server_id.clone()),
                    tags: self.settings.tags_for(database),
                    owners: Vec::new(),
                })
                .await?;
        }
        for database in &databases {
            let Some(schemas) = self.schemas(database).await? else {
                continue;
            };
            let database_id = format!("{}/{database}", self.server_id);
            let tags = self.settings.tags_for(database);
            for schema in schemas {
                pager
                    .push(SyncedResource {
                        id: format!("{database_id}/{schema}"),
                        resource_type: SCHEMA_TYPE.into(),
                        name: format!("{database}.{schema}"),
                        parent: Some(database_id.clone()),
                        tags: tags.clone(),
                        owners: Vec::new(),
                    })
                    .await?;
            }
        }
        pager.flush().await?;
        let sink = pager.sink;

        // Temporary logins are the connector's own, not people.
        let logins: Vec<String> = sqlx::query_scalar(
            "SELECT rolname::text FROM pg_roles
             WHERE rolcanlogin AND rolname NOT LIKE 'latch\\_t\\_%' ORDER BY rolname",
        )
        .fetch_all(&admin)
        .await
        .map_err(|err| classify(err, "listing login roles"))?;
        for chunk in logins.chunks(PAGE) {
            let page = chunk
                .iter()
                .map(|login| SyncedIdentity {
                    external_id: login.clone(),
                    email: None,
                    display_name: login.clone(),
                })
                .collect();
            sink.identities(page).await?;
        }
        Ok(())
    }

    /// The user schemas of `database`; `None` when the database was dropped since it was listed.
    async fn schemas(&self, database: &str) -> Result<Option<Vec<String>>, ProviderError> {
        let pool = self.pool(database);
        let query =
            format!("SELECT nspname::text FROM pg_namespace WHERE {USER_SCHEMAS} ORDER BY nspname");
        match sqlx::query_scalar(sqlx::AssertSqlSafe(query))
            .fetch_all(&pool)
            .await
        {
            Ok(schemas) => Ok(Some(schemas)),
            Err(sqlx::Error::Database(err)) if err.code().as_deref() == Some("3D000") => {
                tracing::debug!(database, "database dropped during the sync; skipped");
                self.forget_pool(database);
                Ok(None)
            }
            Err(err) => Err(classify(
                err,
                &format!("listing the schemas of database {database:?}"),
            )),
        }
    }
}
