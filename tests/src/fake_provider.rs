//! A fake cloud for end-to-end tests: a [`Provider`] of kind `fake` whose "cloud state" is a JSON
//! file, so a test can read what the connector really applied, count how often, slow it down,
//! make it fail, and kill the process in the middle of it. Lives in test code only; the
//! `latch-connector-fake` binary is the real connector with this kind registered.
//!
//! Settings (keys of the integration's `[[integrations]]` entry; unknown keys are refused):
//!
//! | key | meaning |
//! |---|---|
//! | `record_file` | path of the JSON file holding the current grants, an array of `{identity, resource_id, permission}`; rewritten atomically (temporary file, then rename) under a lock on every grant and revoke. Required unless `noop`. |
//! | `calls_file` | optional: one JSON line appended per grant/revoke call, `{op, grant_id, identity, resource_id, permission, result, at}` with `result` `ok` or `transient`. |
//! | `resources` | how many `fake.thing` resources a sync reports (default 5). |
//! | `identities` | emails reported as identities (default none); an identity's external id is its email. |
//! | `groups` | groups reported, `{name = [member emails]}` (default none); a group's external id and display name are its name, its members are named by email. |
//! | `delay_ms` | sleep inside each grant/revoke before the record changes (default 0). |
//! | `fail_transient` | the first N grant/revoke calls of this process fail with a transient error. |
//! | `noop` | grant/revoke change nothing and succeed (still sleep `delay_ms`, still log calls). |
//! | `tag_overrides_file` | optional JSON `{resource id: {tag: value or null}}` applied over the generated tags at each sync (`null` removes the tag); a missing file means no overrides. |
//!
//! Inventory: `fake://{integration}/root` (type `fake.root`) first, then `resources` things
//! `fake://{integration}/thing/{i:07}` (type `fake.thing`, permissions `read` and `write`, parent the
//! root) with 8 tags: `env` (`prod` for even `i`, else `dev`), `team`, `tier`, `region`,
//! `cost_center`, `shard`, `project`, `managed`. Generated a page of [`PAGE`] at a time, so a sync of
//! a million resources holds one page in memory.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use latch_connector::{
    Capability, GrantSpec, Granted, IntegrationConfig, Provider, ProviderError,
    ResourceTypePermissions, SyncSink, SyncedGroup, SyncedIdentity, SyncedMembership,
    SyncedResource,
};
use serde::{Deserialize, Serialize};

/// The provider kind.
pub const KIND: &str = "fake";

/// Resources per page pushed into the sink.
pub const PAGE: u64 = 1000;

/// One grant as the record file holds it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordedGrant {
    pub identity: String,
    pub resource_id: String,
    pub permission: String,
}

/// The settings, as written in the integration's entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    record_file: Option<PathBuf>,
    calls_file: Option<PathBuf>,
    resources: Option<u64>,
    #[serde(default)]
    identities: Vec<String>,
    #[serde(default)]
    groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    delay_ms: u64,
    #[serde(default)]
    fail_transient: u64,
    #[serde(default)]
    noop: bool,
    tag_overrides_file: Option<PathBuf>,
}

/// The `fake` provider; see the module documentation.
#[derive(Debug)]
pub struct FakeProvider {
    integration: String,
    record_file: Option<PathBuf>,
    calls_file: Option<PathBuf>,
    resources: u64,
    identities: Vec<String>,
    /// Group name to member emails.
    groups: BTreeMap<String, Vec<String>>,
    delay: Duration,
    fail_transient: u64,
    noop: bool,
    tag_overrides_file: Option<PathBuf>,
    /// Grant and revoke calls so far in this process.
    calls: AtomicU64,
    /// Serialises the record's read-modify-write (and the calls file) within this process; a
    /// lock file does so across processes sharing a record.
    lock: Mutex<()>,
}

impl FakeProvider {
    /// Builds the provider from an integration's settings; the error names the problem.
    pub fn from_config(integration: &IntegrationConfig) -> Result<FakeProvider, String> {
        let settings: Settings = toml::Value::Table(integration.settings.clone())
            .try_into()
            .map_err(|err| format!("fake provider settings: {err}"))?;
        if settings.record_file.is_none() && !settings.noop {
            return Err("record_file: missing (required unless noop = true)".into());
        }
        Ok(FakeProvider {
            integration: integration.name.clone(),
            record_file: settings.record_file,
            calls_file: settings.calls_file,
            resources: settings.resources.unwrap_or(5),
            identities: settings.identities,
            groups: settings.groups,
            delay: Duration::from_millis(settings.delay_ms),
            fail_transient: settings.fail_transient,
            noop: settings.noop,
            tag_overrides_file: settings.tag_overrides_file,
            calls: AtomicU64::new(0),
            lock: Mutex::new(()),
        })
    }

    /// The factory to register under [`KIND`].
    pub fn factory(integration: &IntegrationConfig) -> Result<Arc<dyn Provider>, String> {
        Ok(Arc::new(FakeProvider::from_config(integration)?))
    }

    /// Grant (`present`) or revoke (`!present`).
    async fn apply(&self, op: &str, grant: &GrantSpec, present: bool) -> Result<(), ProviderError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        if call < self.fail_transient {
            self.log_call(op, grant, "transient");
            return Err(ProviderError::transient(format!(
                "fake transient failure {} of {}",
                call + 1,
                self.fail_transient
            )));
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if !self.noop
            && let Some(path) = &self.record_file
        {
            let entry = RecordedGrant {
                identity: grant.identity.clone(),
                resource_id: grant.resource_id.clone(),
                permission: grant.permission.clone(),
            };
            let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
            update_record(path, |record| {
                if present {
                    record.insert(entry);
                } else {
                    record.remove(&entry);
                }
            })
            .map_err(|err| {
                ProviderError::transient(format!("record file {}: {err}", path.display()))
            })?;
        }
        self.log_call(op, grant, "ok");
        Ok(())
    }

    fn log_call(&self, op: &str, grant: &GrantSpec, result: &str) {
        let Some(path) = &self.calls_file else {
            return;
        };
        let line = serde_json::json!({
            "op": op,
            "grant_id": grant.grant_id,
            "identity": grant.identity,
            "resource_id": grant.resource_id,
            "permission": grant.permission,
            "result": result,
            "at": chrono::Utc::now().to_rfc3339(),
        });
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| writeln!(file, "{line}"));
        if let Err(err) = written {
            eprintln!("fake provider: cannot append to {}: {err}", path.display());
        }
    }

    fn tag_overrides(&self) -> Result<TagOverrides, ProviderError> {
        let Some(path) = &self.tag_overrides_file else {
            return Ok(TagOverrides::new());
        };
        match std::fs::read_to_string(path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(TagOverrides::new()),
            Err(err) => Err(ProviderError::transient(format!(
                "tag overrides {}: {err}",
                path.display()
            ))),
            Ok(text) => serde_json::from_str(&text).map_err(|err| {
                ProviderError::invalid(format!("tag overrides {}: {err}", path.display()))
            }),
        }
    }

    fn root_id(&self) -> String {
        format!("fake://{}/root", self.integration)
    }

    fn thing(&self, i: u64, overrides: &TagOverrides) -> SyncedResource {
        let id = thing_id(&self.integration, i);
        let mut tags = generated_tags(i);
        if let Some(changes) = overrides.get(&id) {
            for (key, value) in changes {
                match value {
                    Some(value) => tags.insert(key.clone(), value.clone()),
                    None => tags.remove(key),
                };
            }
        }
        SyncedResource {
            id,
            resource_type: "fake.thing".into(),
            name: format!("thing-{i:07}"),
            parent: Some(self.root_id()),
            tags,
            owners: Vec::new(),
        }
    }
}

/// `{resource id: {tag: value, or null to remove}}`.
type TagOverrides = BTreeMap<String, BTreeMap<String, Option<String>>>;

/// The id of thing `i` of `integration`.
pub fn thing_id(integration: &str, i: u64) -> String {
    format!("fake://{integration}/thing/{i:07}")
}

/// The tags thing `i` is generated with (before overrides).
pub fn generated_tags(i: u64) -> BTreeMap<String, String> {
    const TEAMS: [&str; 4] = ["payments", "search", "infra", "data"];
    const TIERS: [&str; 3] = ["web", "db", "cache"];
    const REGIONS: [&str; 3] = ["eu-west-1", "us-east-1", "ap-south-1"];
    let pick = |list: &[&str], n: u64| list[(n % list.len() as u64) as usize].to_string();
    BTreeMap::from([
        (
            "env".into(),
            if i.is_multiple_of(2) { "prod" } else { "dev" }.into(),
        ),
        ("team".into(), pick(&TEAMS, i)),
        ("tier".into(), pick(&TIERS, i)),
        ("region".into(), pick(&REGIONS, i / 2)),
        ("cost_center".into(), format!("cc-{}", i % 10)),
        ("shard".into(), format!("{}", i % 16)),
        ("project".into(), format!("p{}", i % 7)),
        ("managed".into(), "fake".into()),
    ])
}

/// Reads the record file (a missing file is an empty record).
pub fn read_record(path: &Path) -> std::io::Result<BTreeSet<RecordedGrant>> {
    match std::fs::read_to_string(path) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(err) => Err(err),
        Ok(text) => serde_json::from_str(&text).map_err(std::io::Error::other),
    }
}

/// Read-modify-write of the record under a lock file (other processes may share the record),
/// replacing the file atomically: a reader, or a crash, sees the old record or the new one.
fn update_record(
    path: &Path,
    change: impl FnOnce(&mut BTreeSet<RecordedGrant>),
) -> std::io::Result<()> {
    let lock = File::create(path.with_extension("lock"))?;
    lock.lock()?;
    let mut record = read_record(path)?;
    change(&mut record);
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    {
        let mut file = File::create(&tmp)?;
        serde_json::to_writer_pretty(&mut file, &record).map_err(std::io::Error::other)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    lock.unlock()
}

#[async_trait]
impl Provider for FakeProvider {
    fn kind(&self) -> &str {
        KIND
    }

    fn capabilities(&self) -> Vec<Capability> {
        vec![
            Capability::Sync,
            Capability::Grant,
            Capability::Revoke,
            Capability::Identities,
        ]
    }

    async fn sync(&self, sink: &mut dyn SyncSink) -> Result<(), ProviderError> {
        let overrides = self.tag_overrides()?;
        let root = SyncedResource {
            id: self.root_id(),
            resource_type: "fake.root".into(),
            name: format!("{} root", self.integration),
            ..SyncedResource::default()
        };
        let mut permissions = vec![ResourceTypePermissions {
            resource_type: "fake.thing".into(),
            permissions: vec!["read".into(), "write".into()],
        }];
        // The root leads the first page; every page has at most PAGE resources.
        let mut page = vec![root];
        let mut next = 0;
        loop {
            let end = (next + PAGE - page.len() as u64).min(self.resources);
            page.extend((next..end).map(|i| self.thing(i, &overrides)));
            next = end;
            sink.resources(std::mem::take(&mut page), std::mem::take(&mut permissions))
                .await?;
            if next >= self.resources {
                break;
            }
        }
        let identities = self
            .identities
            .iter()
            .map(|email| SyncedIdentity {
                external_id: email.clone(),
                email: Some(email.clone()),
                display_name: email.clone(),
            })
            .collect();
        sink.identities(identities).await?;
        let groups = self
            .groups
            .keys()
            .map(|name| SyncedGroup {
                external_id: name.clone(),
                display_name: name.clone(),
            })
            .collect();
        sink.groups(groups).await?;
        let memberships = self
            .groups
            .iter()
            .flat_map(|(name, members)| {
                members.iter().map(|email| SyncedMembership {
                    group_external_id: name.clone(),
                    identity_external_id: email.clone(),
                })
            })
            .collect();
        sink.memberships(memberships).await
    }

    async fn grant(&self, grant: &GrantSpec) -> Result<Granted, ProviderError> {
        self.apply("grant", grant, true)
            .await
            .map(|()| Granted::access())
    }

    async fn revoke(&self, grant: &GrantSpec) -> Result<(), ProviderError> {
        self.apply("revoke", grant, false).await
    }

    async fn health_check(&self) -> Result<(), ProviderError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(settings: &str) -> IntegrationConfig {
        toml::from_str(&format!("name = \"fake-1\"\nkind = \"fake\"\n{settings}"))
            .expect("integration toml")
    }

    fn grant(id: &str) -> GrantSpec {
        GrantSpec {
            grant_id: id.into(),
            identity: "alice@example.com".into(),
            resource_id: thing_id("fake-1", 0),
            resource_type: "fake.thing".into(),
            permission: "read".into(),
            expires_at: None,
            duration: None,
        }
    }

    #[derive(Default)]
    struct Pages {
        sizes: Vec<usize>,
        first: Vec<SyncedResource>,
        permissions: usize,
        identities: Vec<SyncedIdentity>,
        groups: Vec<SyncedGroup>,
        memberships: Vec<SyncedMembership>,
    }

    #[async_trait]
    impl SyncSink for Pages {
        async fn resources(
            &mut self,
            page: Vec<SyncedResource>,
            permissions: Vec<ResourceTypePermissions>,
        ) -> Result<(), ProviderError> {
            if self.first.is_empty() {
                self.first = page.iter().take(3).cloned().collect();
            }
            self.sizes.push(page.len());
            self.permissions += permissions.len();
            Ok(())
        }

        async fn identities(&mut self, page: Vec<SyncedIdentity>) -> Result<(), ProviderError> {
            self.identities.extend(page);
            Ok(())
        }

        async fn groups(&mut self, page: Vec<SyncedGroup>) -> Result<(), ProviderError> {
            self.groups.extend(page);
            Ok(())
        }

        async fn memberships(&mut self, page: Vec<SyncedMembership>) -> Result<(), ProviderError> {
            self.memberships.extend(page);
            Ok(())
        }
    }

    #[tokio::test]
    async fn grant_and_revoke_are_idempotent_and_logged() {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path();
        let record = dir.join("record.json");
        let calls = dir.join("calls.jsonl");
        let provider = FakeProvider::from_config(&config(&format!(
            "record_file = {:?}\ncalls_file = {:?}\nfail_transient = 1",
            record.display().to_string(),
            calls.display().to_string()
        )))
        .expect("provider");
        let err = provider.grant(&grant("g1")).await.expect_err("first fails");
        assert!(err.is_retryable());
        provider.grant(&grant("g1")).await.expect("grant");
        provider.grant(&grant("g1")).await.expect("again");
        assert_eq!(read_record(&record).expect("read").len(), 1);
        provider.revoke(&grant("g1")).await.expect("revoke");
        provider.revoke(&grant("g1")).await.expect("again");
        assert!(read_record(&record).expect("read").is_empty());
        let lines = std::fs::read_to_string(&calls).expect("calls");
        let results: Vec<String> = lines
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("json");
                format!("{}:{}", v["op"].as_str().unwrap_or(""), v["result"])
            })
            .collect();
        assert_eq!(
            results,
            [
                "grant:\"transient\"",
                "grant:\"ok\"",
                "grant:\"ok\"",
                "revoke:\"ok\"",
                "revoke:\"ok\""
            ]
        );
    }

    #[tokio::test]
    async fn sync_pages_the_root_then_things_with_overrides() {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path();
        let overrides = dir.join("tags.json");
        std::fs::write(
            &overrides,
            format!(
                r#"{{"{}": {{"env": "staging", "team": null}}}}"#,
                thing_id("fake-1", 1)
            ),
        )
        .expect("write");
        let provider = FakeProvider::from_config(&config(&format!(
            "noop = true\nresources = 2500\nidentities = [\"a@example.com\"]\n\
             groups = {{ admins = [\"a@example.com\"], empty = [] }}\ntag_overrides_file = {:?}",
            overrides.display().to_string()
        )))
        .expect("provider");
        let mut pages = Pages::default();
        provider.sync(&mut pages).await.expect("sync");
        assert_eq!(pages.sizes, [1000, 1000, 501]);
        assert_eq!(pages.permissions, 1);
        assert_eq!(pages.first[0].resource_type, "fake.root");
        assert_eq!(pages.first[1].id, "fake://fake-1/thing/0000000");
        assert_eq!(pages.first[1].tags.len(), 8);
        assert_eq!(pages.first[1].tags["env"], "prod");
        assert_eq!(pages.first[2].tags["env"], "staging");
        assert!(!pages.first[2].tags.contains_key("team"));
        assert_eq!(pages.first[1].parent.as_deref(), Some("fake://fake-1/root"));
        assert_eq!(pages.identities.len(), 1);
        let groups: Vec<&str> = pages
            .groups
            .iter()
            .map(|g| g.display_name.as_str())
            .collect();
        assert_eq!(groups, ["admins", "empty"]);
        assert_eq!(
            pages.memberships,
            [SyncedMembership {
                group_external_id: "admins".into(),
                identity_external_id: "a@example.com".into(),
            }]
        );
    }

    #[test]
    fn settings_are_checked() {
        let missing = FakeProvider::from_config(&config("")).expect_err("no record");
        assert!(missing.contains("record_file"), "{missing}");
        let unknown =
            FakeProvider::from_config(&config("noop = true\ndelay = 3")).expect_err("unknown");
        assert!(unknown.contains("delay"), "{unknown}");
    }
}
