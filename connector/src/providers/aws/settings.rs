//! The `aws` integration's settings: region, optional endpoint (emulators), optional role to
//! assume, how a person's email becomes an IAM user name, and the IAM actions behind each
//! permission of each resource type.
//!
//! Everything is checked once, when the provider is built, and every problem is reported in one
//! message, naming field and value, so an operator fixes the config in one pass. Actions end up in
//! policy documents, so only `service:Action` words (with `*` and `?` wildcards) are accepted.

use std::collections::BTreeMap;

use crate::config::IntegrationConfig;
use crate::provider::ProviderError;
use crate::providers::login_template;

/// The type Identity Center permission sets are granted on; its permissions are the permission
/// set names, never policy templates.
pub(crate) const ACCOUNT_TYPE: &str = "aws.account";

const KNOWN_KEYS: &[&str] = &[
    "region",
    "endpoint_url",
    "assume_role_arn",
    "external_id",
    "iam_user_template",
    "policy_templates",
];

/// IAM user names: 1 to 64 of `[\w+=,.@-]`.
const MAX_IAM_USER_LEN: usize = 64;

/// Permission name to IAM actions, for one resource type.
pub(crate) type PermissionActions = BTreeMap<String, Vec<String>>;

/// One `aws` integration's settings, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AwsSettings {
    pub region: String,
    /// Where every service is reached instead of AWS (moto, LocalStack); `None` in production.
    pub endpoint_url: Option<String>,
    pub assume_role_arn: Option<String>,
    /// Sent with AssumeRole; only with `assume_role_arn`.
    pub external_id: Option<String>,
    /// How an email becomes the IAM user that resource grants attach policies to: `{local}` and
    /// `{email}` are replaced, the rest is literal.
    pub iam_user_template: String,
    /// Configured templates by resource type; types not named here use [`default_actions`].
    pub policy_templates: BTreeMap<String, PermissionActions>,
}

impl AwsSettings {
    /// Reads and checks `integration.settings`. The error names the integration and lists every
    /// problem, each with its field and value.
    pub(crate) fn parse(integration: &IntegrationConfig) -> Result<Self, String> {
        let settings = &integration.settings;
        let mut problems: Vec<String> = Vec::new();

        for key in settings.keys() {
            if !KNOWN_KEYS.contains(&key.as_str()) {
                problems.push(format!(
                    "{key}: unknown setting for kind {:?} (known: {})",
                    integration.kind,
                    KNOWN_KEYS.join(", ")
                ));
            }
        }

        let region = match settings.get("region") {
            None => {
                problems.push("region: missing; name the AWS region, e.g. \"us-east-1\"".into());
                String::new()
            }
            Some(toml::Value::String(region)) if is_region(region) => region.clone(),
            Some(other) => {
                problems.push(format!(
                    "region {other} must be an AWS region name such as \"us-east-1\""
                ));
                String::new()
            }
        };

        let endpoint_url = match settings.get("endpoint_url") {
            None => None,
            Some(toml::Value::String(url))
                if (url.starts_with("http://") || url.starts_with("https://"))
                    && url.len() > "https://".len()
                    && !url.contains(char::is_whitespace) =>
            {
                Some(url.trim_end_matches('/').to_string())
            }
            Some(other) => {
                problems.push(format!(
                    "endpoint_url {other} must be an http:// or https:// URL"
                ));
                None
            }
        };

        let assume_role_arn = match settings.get("assume_role_arn") {
            None => None,
            Some(toml::Value::String(arn)) if is_role_arn(arn) => Some(arn.clone()),
            Some(other) => {
                problems.push(format!(
                    "assume_role_arn {other} must be an IAM role ARN such as \
                     \"arn:aws:iam::111111111111:role/latch-connector\""
                ));
                None
            }
        };

        let external_id = match settings.get("external_id") {
            None => None,
            Some(toml::Value::String(id))
                if (2..=1224).contains(&id.len())
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+=,.@:/-_".contains(c)) =>
            {
                if !settings.contains_key("assume_role_arn") {
                    problems.push(format!(
                        "external_id {id:?} is only sent with assume_role_arn, which is not set"
                    ));
                }
                Some(id.clone())
            }
            Some(other) => {
                problems.push(format!(
                    "external_id {other} must be 2 to 1224 characters of letters, digits and \
                     +=,.@:/-_"
                ));
                None
            }
        };

        let iam_user_template =
            login_template::setting(settings, "iam_user_template", &mut problems);

        let policy_templates = match settings.get("policy_templates") {
            None => BTreeMap::new(),
            Some(value) => parse_policy_templates(value, &mut problems),
        };

        if !problems.is_empty() {
            return Err(format!(
                "integrations {:?}: {}",
                integration.name,
                problems.join("; ")
            ));
        }
        Ok(AwsSettings {
            region,
            endpoint_url,
            assume_role_arn,
            external_id,
            iam_user_template,
            policy_templates,
        })
    }

    /// The permissions of resource type `resource_type` (`aws.<service>.<type>`) and the IAM
    /// actions behind each: the configured template, or the defaults.
    pub(crate) fn permissions_for(&self, resource_type: &str) -> PermissionActions {
        match self.policy_templates.get(resource_type) {
            Some(configured) => configured.clone(),
            None => default_actions(resource_type),
        }
    }

    /// The IAM actions of `permission` on `resource_type`, or `None` when it is not offered.
    pub(crate) fn actions(&self, resource_type: &str, permission: &str) -> Option<Vec<String>> {
        self.permissions_for(resource_type).remove(permission)
    }

    /// The IAM user for the person with `email`, from `iam_user_template`. Refuses names IAM
    /// would refuse, so an odd email is reported as such rather than as an AWS validation error.
    pub(crate) fn iam_user_for(&self, email: &str) -> Result<String, ProviderError> {
        let user = login_template::render(&self.iam_user_template, email);
        if user.is_empty() || user.len() > MAX_IAM_USER_LEN || !user.chars().all(is_iam_name_char) {
            return Err(ProviderError::invalid(format!(
                "the IAM user name {user:?} made for {email:?} by iam_user_template {:?} is not \
                 valid (letters, digits and +=,.@_-; 1 to {MAX_IAM_USER_LEN} characters)",
                self.iam_user_template
            )));
        }
        Ok(user)
    }
}

/// The default permissions of a resource type: for S3 buckets object read and write; for any
/// other `aws.<service>.<type>`, `read` = `<service>:Describe*`, `Get*`, `List*` and `write` =
/// `<service>:*`. IAM roles also offer `assume` (`sts:AssumeRole`), the usual reason to be
/// granted a role.
pub(crate) fn default_actions(resource_type: &str) -> PermissionActions {
    let list = |actions: &[&str]| actions.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    if resource_type == "aws.s3.bucket" {
        let read = list(&["s3:GetObject", "s3:ListBucket"]);
        let mut write = read.clone();
        write.extend(list(&["s3:PutObject", "s3:DeleteObject"]));
        return BTreeMap::from([("read".to_string(), read), ("write".to_string(), write)]);
    }
    let Some(service) = service_of(resource_type) else {
        return BTreeMap::new();
    };
    let mut permissions = BTreeMap::from([
        (
            "read".to_string(),
            vec![
                format!("{service}:Describe*"),
                format!("{service}:Get*"),
                format!("{service}:List*"),
            ],
        ),
        ("write".to_string(), vec![format!("{service}:*")]),
    ]);
    if resource_type == "aws.iam.role" {
        permissions.insert("assume".to_string(), list(&["sts:AssumeRole"]));
    }
    permissions
}

/// `s3` for `aws.s3.bucket`; `None` for types outside `aws.<service>.<type>` and for accounts.
fn service_of(resource_type: &str) -> Option<&str> {
    let rest = resource_type.strip_prefix("aws.")?;
    let (service, kind) = rest.split_once('.')?;
    (!service.is_empty() && !kind.is_empty()).then_some(service)
}

fn is_region(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 32
        && text.contains('-')
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_role_arn(text: &str) -> bool {
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    matches!(
        parts.as_slice(),
        ["arn", partition, "iam", "", account, resource]
            if partition.starts_with("aws")
                && account.len() == 12
                && account.chars().all(|c| c.is_ascii_digit())
                && resource.strip_prefix("role/").is_some_and(|name| !name.is_empty())
    )
}

fn is_iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
}

/// An IAM action: `service:Action`, the action part with `*`/`?` wildcards, or `*` alone.
fn is_action(text: &str) -> bool {
    if text == "*" {
        return true;
    }
    let Some((service, action)) = text.split_once(':') else {
        return false;
    };
    !service.is_empty()
        && service
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !action.is_empty()
        && action
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?')
}

fn parse_policy_templates(
    value: &toml::Value,
    problems: &mut Vec<String>,
) -> BTreeMap<String, PermissionActions> {
    let mut templates = BTreeMap::new();
    let Some(table) = value.as_table() else {
        problems.push(format!(
            "policy_templates {value} must be a table: resource type -> permission -> actions"
        ));
        return templates;
    };
    for (resource_type, permissions) in table {
        let field = format!("policy_templates.{resource_type:?}");
        if resource_type == ACCOUNT_TYPE {
            problems.push(format!(
                "{field}: the permissions of {ACCOUNT_TYPE} are Identity Center permission sets, \
                 not policy templates"
            ));
            continue;
        }
        if service_of(resource_type).is_none() {
            problems.push(format!(
                "{field}: the resource type must look like \"aws.<service>.<type>\", e.g. \
                 \"aws.s3.bucket\""
            ));
            continue;
        }
        let Some(permissions) = permissions.as_table() else {
            problems.push(format!(
                "{field} {permissions} must be a table: permission -> list of IAM actions"
            ));
            continue;
        };
        let mut parsed = PermissionActions::new();
        for (permission, actions) in permissions {
            let field = format!("{field}.{permission}");
            if permission.is_empty() {
                problems.push(format!("{field}: the permission name must not be empty"));
                continue;
            }
            let Some(list) = actions.as_array() else {
                problems.push(format!(
                    "{field} {actions} must be a list of IAM actions such as \"s3:GetObject\""
                ));
                continue;
            };
            let mut words = Vec::new();
            for (i, action) in list.iter().enumerate() {
                match action.as_str() {
                    Some(word) if is_action(word) => words.push(word.to_string()),
                    _ => problems.push(format!(
                        "{field}[{i}] {action} is not an IAM action (service:Action, with * or ?)"
                    )),
                }
            }
            if list.is_empty() {
                problems.push(format!("{field}: the list of actions must not be empty"));
            }
            parsed.insert(permission.clone(), words);
        }
        templates.insert(resource_type.clone(), parsed);
    }
    templates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integration(text: &str) -> IntegrationConfig {
        let table: toml::Table = text.parse().expect("test TOML parses");
        IntegrationConfig {
            name: "aws-org".into(),
            kind: "aws".into(),
            rate_limit_per_sec: None,
            settings: table,
        }
    }

    fn settings(text: &str) -> AwsSettings {
        AwsSettings::parse(&integration(text)).expect("settings are valid")
    }

    #[test]
    fn the_issue_example_parses_with_defaults() {
        let s = settings(
            r#"
            region = "us-east-1"
            endpoint_url = "http://127.0.0.1:5055/"
            assume_role_arn = "arn:aws:iam::111111111111:role/latch-connector"
            external_id = "latch-ext-1"
            "#,
        );
        assert_eq!(s.region, "us-east-1");
        assert_eq!(s.endpoint_url.as_deref(), Some("http://127.0.0.1:5055"));
        assert_eq!(s.external_id.as_deref(), Some("latch-ext-1"));
        assert_eq!(s.iam_user_template, "{local}");
        assert_eq!(
            s.actions("aws.s3.bucket", "read"),
            Some(vec![
                "s3:GetObject".to_string(),
                "s3:ListBucket".to_string()
            ])
        );
        assert_eq!(
            s.actions("aws.s3.bucket", "write").expect("write").len(),
            4,
            "write is read plus put and delete"
        );
        assert_eq!(
            s.actions("aws.ec2.instance", "read"),
            Some(vec![
                "ec2:Describe*".to_string(),
                "ec2:Get*".to_string(),
                "ec2:List*".to_string()
            ])
        );
        assert_eq!(
            s.actions("aws.rds.db", "write"),
            Some(vec!["rds:*".to_string()])
        );
        assert_eq!(s.actions("aws.rds.db", "admin"), None);
        assert!(s.permissions_for("aws.iam.role").contains_key("assume"));
        assert!(s.permissions_for(ACCOUNT_TYPE).is_empty());
    }

    #[test]
    fn every_problem_is_reported_at_once_with_field_and_value() {
        let err = AwsSettings::parse(&integration(
            r#"
            endpoint_url = "ftp://x"
            assume_role_arn = "arn:aws:iam::12:user/bob"
            external_id = "a b"
            iam_user_template = "{first}.{last}"
            colour = "blue"
            [policy_templates."aws.account"]
            read = ["s3:GetObject"]
            [policy_templates."aws.s3.bucket"]
            read = ["s3 GetObject", 7]
            write = "s3:*"
            "#,
        ))
        .expect_err("invalid settings");
        for needle in [
            "integrations \"aws-org\"",
            "colour: unknown setting",
            "region: missing",
            "endpoint_url \"ftp://x\"",
            "assume_role_arn \"arn:aws:iam::12:user/bob\"",
            "external_id \"a b\"",
            "iam_user_template \"{first}.{last}\"",
            "policy_templates.\"aws.account\"",
            "policy_templates.\"aws.s3.bucket\".read[0] \"s3 GetObject\"",
            "policy_templates.\"aws.s3.bucket\".read[1] 7",
            "policy_templates.\"aws.s3.bucket\".write \"s3:*\"",
        ] {
            assert!(err.contains(needle), "{needle:?} missing from: {err}");
        }
    }

    #[test]
    fn external_id_needs_a_role() {
        let err = AwsSettings::parse(&integration(
            r#"
            region = "eu-west-1"
            external_id = "abc"
            "#,
        ))
        .expect_err("external id without role");
        assert!(err.contains("external_id \"abc\""), "{err}");
    }

    #[test]
    fn configured_templates_replace_the_defaults_of_their_type_only() {
        let s = settings(
            r#"
            region = "us-east-1"
            [policy_templates."aws.s3.bucket"]
            list = ["s3:ListBucket"]
            [policy_templates."aws.dynamodb.table"]
            query = ["dynamodb:Query", "dynamodb:GetItem"]
            "#,
        );
        assert_eq!(
            s.permissions_for("aws.s3.bucket")
                .keys()
                .collect::<Vec<_>>(),
            ["list"]
        );
        assert_eq!(
            s.actions("aws.dynamodb.table", "query")
                .expect("query")
                .len(),
            2
        );
        assert!(s.actions("aws.ec2.instance", "read").is_some());
    }

    #[test]
    fn templates_make_iam_user_names() {
        let s = settings(r#"region = "us-east-1""#);
        assert_eq!(s.iam_user_for("alice@example.com").expect("user"), "alice");
        let s = settings(
            r#"
            region = "us-east-1"
            iam_user_template = "{email}"
            "#,
        );
        assert_eq!(
            s.iam_user_for("carol@example.com").expect("user"),
            "carol@example.com"
        );
        let s = settings(
            r#"
            region = "us-east-1"
            iam_user_template = "ext-{local}"
            "#,
        );
        assert_eq!(s.iam_user_for("bob@x.org").expect("user"), "ext-bob");
        let err = s
            .iam_user_for("bob smith/../@x.org")
            .expect_err("odd characters");
        assert!(matches!(err, ProviderError::Invalid { .. }), "{err:?}");
        assert!(s.iam_user_for(&format!("{}@x", "a".repeat(70))).is_err());
    }
}
