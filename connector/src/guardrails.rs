//! The owner's local policy, checked before every command: even a compromised control plane
//! cannot make this connector exceed it.
//!
//! Revokes only take access away, so of all rules only `allowed_integrations` applies to them
//! (and to syncs); grants are checked against every rule.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use latch_proto::v1::{Command, CommandKind};

/// `[guardrails]`, checked.
#[derive(Debug, Default, Clone)]
pub(crate) struct Guardrails {
    /// `None`: every configured integration.
    pub allowed_integrations: Option<BTreeSet<String>>,
    pub max_duration: Option<Duration>,
    pub deny_permissions: Vec<String>,
    pub deny_resources: Vec<String>,
}

impl Guardrails {
    /// Whether the command may run; if not, the reason names the rule and the value.
    pub(crate) fn check(&self, command: &Command) -> Result<(), String> {
        self.check_at(command, Utc::now())
    }

    pub(crate) fn check_at(&self, command: &Command, now: DateTime<Utc>) -> Result<(), String> {
        if let Some(allowed) = &self.allowed_integrations
            && !allowed.contains(&command.integration)
        {
            return Err(format!(
                "guardrails.allowed_integrations: integration {:?} is not allowed",
                command.integration
            ));
        }
        if command.kind() != CommandKind::Grant {
            return Ok(());
        }
        if let Some(max) = self.max_duration {
            let expires_at = command.expires_at.as_ref().and_then(|t| {
                DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
            });
            if expires_at.is_none() && command.duration_secs == 0 {
                return Err(format!(
                    "guardrails.max_duration: a grant with no expiry is not allowed when max_duration is {}",
                    humantime::format_duration(max)
                ));
            }
            let from_expiry = expires_at
                .map(|at| (at - now).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(Duration::ZERO);
            let longest = from_expiry.max(Duration::from_secs(command.duration_secs));
            if longest > max {
                return Err(format!(
                    "guardrails.max_duration: {} exceeds {}",
                    // Whole seconds, rounded up: "6h", not "5h 59m 59s 999ms".
                    humantime::format_duration(Duration::from_secs(
                        longest.as_secs() + u64::from(longest.subsec_nanos() > 0)
                    )),
                    humantime::format_duration(max)
                ));
            }
        }
        if let Some(pattern) = self
            .deny_permissions
            .iter()
            .find(|p| glob_match(p, &command.permission))
        {
            return Err(format!(
                "guardrails.deny_permissions: permission {:?} matches {pattern:?}",
                command.permission
            ));
        }
        if let Some(pattern) = self
            .deny_resources
            .iter()
            .find(|p| glob_match(p, &command.resource_id))
        {
            return Err(format!(
                "guardrails.deny_resources: resource {:?} matches {pattern:?}",
                command.resource_id
            ));
        }
        Ok(())
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (also none) and
/// everything else matches itself. Case-sensitive, like the ids and names it compares.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it is currently matched up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            // Let the last `*` swallow one more character and try again.
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(integration: &str, permission: &str, resource: &str) -> Command {
        Command {
            id: "c1".into(),
            kind: CommandKind::Grant as i32,
            integration: integration.into(),
            permission: permission.into(),
            resource_id: resource.into(),
            duration_secs: 3600,
            ..Command::default()
        }
    }

    fn rails() -> Guardrails {
        Guardrails {
            allowed_integrations: Some(["pg".to_string(), "aws".to_string()].into()),
            max_duration: Some(Duration::from_secs(4 * 3600)),
            deny_permissions: vec!["*Admin*".into(), "root".into()],
            deny_resources: vec!["arn:aws:*:payments-*".into()],
        }
    }

    #[test]
    fn globs_match_runs_of_characters() {
        assert!(glob_match("*", ""));
        assert!(glob_match("*admin*", "db_admin_rw"));
        assert!(glob_match("a*b*c", "a-b-b-c"));
        assert!(glob_match("prod-*", "prod-"));
        assert!(!glob_match("prod-*", "preprod-1"));
        assert!(!glob_match("a*b", "a-b-c"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert!(!glob_match("*Admin*", "db_admin"));
    }

    #[test]
    fn a_grant_within_every_rule_passes() {
        assert_eq!(
            rails().check(&grant("pg", "readonly", "postgres://db/app")),
            Ok(())
        );
    }

    #[test]
    fn an_integration_not_allowed_is_refused_for_every_kind() {
        let mut command = grant("gcp", "viewer", "x");
        let err = rails().check(&command).expect_err("not allowed");
        assert_eq!(
            err,
            "guardrails.allowed_integrations: integration \"gcp\" is not allowed"
        );
        command.kind = CommandKind::Revoke as i32;
        assert!(rails().check(&command).is_err());
        let all = Guardrails {
            allowed_integrations: None,
            ..rails()
        };
        assert!(all.check(&grant("gcp", "viewer", "x")).is_ok());
    }

    #[test]
    fn durations_beyond_the_maximum_are_refused() {
        let now = Utc::now();
        let mut command = grant("pg", "readonly", "x");
        command.duration_secs = 5 * 3600;
        let err = rails().check_at(&command, now).expect_err("too long");
        assert_eq!(err, "guardrails.max_duration: 5h exceeds 4h");

        command.duration_secs = 0;
        command.expires_at = Some(prost_types::Timestamp {
            seconds: (now + chrono::Duration::hours(6)).timestamp(),
            nanos: 0,
        });
        let err = rails().check_at(&command, now).expect_err("expiry too far");
        assert!(err.starts_with("guardrails.max_duration: 6h"), "{err}");

        command.expires_at = Some(prost_types::Timestamp {
            seconds: (now + chrono::Duration::hours(4)).timestamp(),
            nanos: 0,
        });
        assert_eq!(rails().check_at(&command, now), Ok(()));
    }

    #[test]
    fn automatic_grants_without_expiry_need_no_maximum() {
        let mut command = grant("pg", "readonly", "x");
        command.duration_secs = 0;
        let err = rails().check(&command).expect_err("no expiry");
        assert!(err.contains("no expiry"), "{err}");
        let unlimited = Guardrails {
            max_duration: None,
            ..rails()
        };
        assert_eq!(unlimited.check(&command), Ok(()));
    }

    #[test]
    fn denied_permissions_and_resources_are_refused_on_grant_only() {
        let err = rails()
            .check(&grant("aws", "AdministratorAccess", "arn:aws:x"))
            .expect_err("denied permission");
        assert_eq!(
            err,
            "guardrails.deny_permissions: permission \"AdministratorAccess\" matches \"*Admin*\""
        );
        let err = rails()
            .check(&grant("aws", "ReadOnly", "arn:aws:acct:payments-prod"))
            .expect_err("denied resource");
        assert_eq!(
            err,
            "guardrails.deny_resources: resource \"arn:aws:acct:payments-prod\" matches \"arn:aws:*:payments-*\""
        );
        // Taking access away is always allowed.
        let mut revoke = grant("aws", "AdministratorAccess", "arn:aws:acct:payments-prod");
        revoke.kind = CommandKind::Revoke as i32;
        revoke.duration_secs = 99 * 3600;
        assert_eq!(rails().check(&revoke), Ok(()));
    }
}
