//! Grants on tagged resources and IAM roles: an inline policy on the requester's IAM user.
//!
//! The policy is named `latch-<grant id>` (IAM's character set, at most 128 characters), so a
//! grant and its revoke find the same policy and `PutUserPolicy` of a redelivered grant simply
//! rewrites it. The document allows the permission's template actions on the resource's ARN
//! (for S3 buckets also on its objects, `<arn>/*`) and, when the grant has an expiry, only while
//! `aws:CurrentTime` is before it: AWS itself ends the access even if Latch is down. Revoke
//! deletes the policy; IAM evaluates a user's policies on every request, so the user's keys and
//! their session tokens lose the access at once.
//!
//! A grant that lets the user assume an IAM role (`sts:AssumeRole`, the `assume` permission of
//! `aws.iam.role`) is different: the role sessions the user already has keep the role's own
//! permissions until they expire, up to 12 hours. Revoking such a grant therefore also puts an
//! inline policy on the role that denies every session issued before the revoke
//! (`aws:TokenIssueTime`), as the console's "Revoke active sessions" does. It ends the older
//! sessions of everyone using the role, which is the only way AWS offers; new sessions work.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::errors::classify;
use super::inventory::ROLE_TYPE;
use super::settings::AwsSettings;
use crate::provider::{GrantSpec, ProviderError};

/// IAM's limit on policy names.
const MAX_POLICY_NAME: usize = 128;

/// The inline policy name of a grant: `latch-` and the grant id, with characters IAM refuses
/// replaced by `-`; ids too long keep a prefix and a hash of the whole id, so names stay unique.
pub(crate) fn policy_name(grant_id: &str) -> String {
    let clean: String = grant_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@_-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = format!("latch-{clean}");
    if name.len() <= MAX_POLICY_NAME && clean == grant_id {
        return name;
    }
    // Sanitizing can map two ids to one name, and cutting can too: add a hash of the original.
    let digest = hex::encode(Sha256::digest(grant_id.as_bytes()));
    let keep = MAX_POLICY_NAME - "latch-".len() - 1 - 16;
    let prefix: String = clean.chars().take(keep).collect();
    format!("latch-{prefix}-{}", &digest[..16])
}

/// The policy document of a grant of `actions` on `resource_arn`.
pub(crate) fn policy_document(
    actions: &[String],
    resource_type: &str,
    resource_arn: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Value {
    let mut resources = vec![resource_arn.to_string()];
    if resource_type == "aws.s3.bucket" {
        // Object actions (GetObject, PutObject) name the objects, not the bucket.
        resources.push(format!("{resource_arn}/*"));
    }
    let mut statement = json!({
        "Sid": "LatchGrant",
        "Effect": "Allow",
        "Action": actions,
        "Resource": resources,
    });
    if let Some(expiry) = expires_at {
        statement["Condition"] = json!({
            "DateLessThan": {
                "aws:CurrentTime": expiry.to_rfc3339_opts(SecondsFormat::Secs, true)
            }
        });
    }
    json!({ "Version": "2012-10-17", "Statement": [statement] })
}

/// What a resource grant writes: the IAM user, the policy name and its document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UserPolicy {
    pub user: String,
    pub name: String,
    pub document: Value,
}

/// The inline policy for `grant`, checked against the settings.
pub(crate) fn user_policy(
    settings: &AwsSettings,
    grant: &GrantSpec,
) -> Result<UserPolicy, ProviderError> {
    if !grant.resource_id.starts_with("arn:") {
        return Err(ProviderError::invalid(format!(
            "resource {:?} of type {:?} is not an ARN",
            grant.resource_id, grant.resource_type
        )));
    }
    let actions = settings
        .actions(&grant.resource_type, &grant.permission)
        .ok_or_else(|| {
            ProviderError::invalid(format!(
                "permission {:?} is not offered on {:?} (offered: {})",
                grant.permission,
                grant.resource_type,
                settings
                    .permissions_for(&grant.resource_type)
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    Ok(UserPolicy {
        user: settings.iam_user_for(&grant.identity)?,
        name: policy_name(&grant.grant_id),
        document: policy_document(
            &actions,
            &grant.resource_type,
            &grant.resource_id,
            grant.expires_at,
        ),
    })
}

/// Writes the grant's inline policy on the user.
pub(crate) async fn put(
    iam: &aws_sdk_iam::Client,
    settings: &AwsSettings,
    grant: &GrantSpec,
) -> Result<(), ProviderError> {
    let policy = user_policy(settings, grant)?;
    let what = format!(
        "putting policy {} on IAM user {:?} (from iam_user_template {:?} and {:?})",
        policy.name, policy.user, settings.iam_user_template, grant.identity
    );
    iam.put_user_policy()
        .user_name(&policy.user)
        .policy_name(&policy.name)
        .policy_document(policy.document.to_string())
        .send()
        .await
        .map_err(|err| classify(err, &what))?;
    Ok(())
}

/// Deletes the grant's inline policy; a missing user or policy means it is already gone. For a
/// grant that allowed assuming a role, also ends the role sessions issued before now.
pub(crate) async fn delete(
    iam: &aws_sdk_iam::Client,
    settings: &AwsSettings,
    grant: &GrantSpec,
) -> Result<(), ProviderError> {
    let user = settings.iam_user_for(&grant.identity)?;
    let name = policy_name(&grant.grant_id);
    let what = format!("deleting policy {name} from IAM user {user:?}");
    match iam
        .delete_user_policy()
        .user_name(&user)
        .policy_name(&name)
        .send()
        .await
    {
        Ok(_) => {}
        Err(err) => match classify(err, &what) {
            ProviderError::NotFound { .. } => {}
            other => return Err(other),
        },
    }
    if grant.resource_type == ROLE_TYPE && allows_assume(settings, grant) {
        end_role_sessions(iam, &grant.resource_id, Utc::now()).await?;
    }
    Ok(())
}

/// Whether the grant's permission lets its holder assume the role.
fn allows_assume(settings: &AwsSettings, grant: &GrantSpec) -> bool {
    settings
        .actions(&grant.resource_type, &grant.permission)
        .is_some_and(|actions| {
            actions
                .iter()
                .any(|a| matches!(a.as_str(), "sts:AssumeRole" | "sts:*" | "*"))
        })
}

/// The role inline policy that denies sessions issued before a revoke.
pub(crate) const REVOKE_SESSIONS_POLICY: &str = "latch-revoke-older-sessions";

/// Denies everything to sessions of the role issued before `before`.
pub(crate) fn revoke_sessions_document(before: DateTime<Utc>) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "LatchRevokeOlderSessions",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {
                "DateLessThan": {
                    "aws:TokenIssueTime": before.to_rfc3339_opts(SecondsFormat::Secs, true)
                }
            }
        }]
    })
}

/// Puts (or moves forward) the deny on sessions of `role_arn` issued before `now`. Never moves
/// it back, so a slow revoke cannot reopen sessions a later one closed. A role that is gone has
/// no sessions.
pub(crate) async fn end_role_sessions(
    iam: &aws_sdk_iam::Client,
    role_arn: &str,
    now: DateTime<Utc>,
) -> Result<(), ProviderError> {
    // `arn:aws:iam::123456789012:role/path/name`: the name is the last segment.
    let role = role_arn.rsplit('/').next().unwrap_or(role_arn);
    let what = format!("reading policy {REVOKE_SESSIONS_POLICY} of role {role:?}");
    let current = match iam
        .get_role_policy()
        .role_name(role)
        .policy_name(REVOKE_SESSIONS_POLICY)
        .send()
        .await
    {
        Ok(out) => decode_document(out.policy_document())
            .and_then(|doc| {
                doc["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
                    .as_str()
                    .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            })
            .map(|time| time.with_timezone(&Utc)),
        Err(err) => match classify(err, &what) {
            ProviderError::NotFound { .. } => None,
            other => return Err(other),
        },
    };
    let before = current.map_or(now, |current| current.max(now));
    let what = format!("putting policy {REVOKE_SESSIONS_POLICY} on role {role:?}");
    match iam
        .put_role_policy()
        .role_name(role)
        .policy_name(REVOKE_SESSIONS_POLICY)
        .policy_document(revoke_sessions_document(before).to_string())
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(err) => match classify(err, &what) {
            ProviderError::NotFound { .. } => Ok(()),
            other => Err(other),
        },
    }
}

/// A policy document as IAM returns it: URL-encoded JSON (AWS), or plain JSON (moto).
pub(crate) fn decode_document(text: &str) -> Option<Value> {
    if let Ok(value) = serde_json::from_str(text) {
        return Some(value);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    serde_json::from_slice(&out).ok()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn documents_decode_from_json_and_url_encoding() {
        let doc = json!({"Version": "2012-10-17", "Statement": [{"Action": "s3:Get*"}]});
        assert_eq!(decode_document(&doc.to_string()), Some(doc.clone()));
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Action%22\
                       %3A%22s3%3AGet%2A%22%7D%5D%7D";
        assert_eq!(decode_document(encoded), Some(doc));
        assert_eq!(decode_document("%zz"), None);
    }

    #[test]
    fn the_session_deny_names_the_issue_time() {
        let at = Utc
            .with_ymd_and_hms(2026, 11, 27, 8, 0, 0)
            .single()
            .expect("time");
        let doc = revoke_sessions_document(at);
        assert_eq!(doc["Statement"][0]["Effect"], "Deny");
        assert_eq!(
            doc["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"],
            "2026-11-27T08:00:00Z"
        );
    }

    #[test]
    fn policy_names_follow_iam_rules_and_stay_unique() {
        assert_eq!(policy_name("g-123"), "latch-g-123");
        let odd = policy_name("grant/7:x y");
        assert!(odd.starts_with("latch-grant-7-x-y-"), "{odd}");
        assert_ne!(odd, policy_name("grant-7-x-y"));
        let long = policy_name(&"a".repeat(300));
        assert_eq!(long.len(), MAX_POLICY_NAME);
        assert_ne!(long, policy_name(&"a".repeat(301)));
        for name in [odd, long] {
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)),
                "{name}"
            );
        }
    }

    #[test]
    fn bucket_documents_cover_objects_and_end_at_the_expiry() {
        let expiry = Utc.with_ymd_and_hms(2026, 12, 1, 10, 30, 0).single();
        let doc = policy_document(
            &["s3:GetObject".to_string(), "s3:ListBucket".to_string()],
            "aws.s3.bucket",
            "arn:aws:s3:::logs",
            expiry,
        );
        assert_eq!(
            doc,
            json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "LatchGrant",
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:ListBucket"],
                    "Resource": ["arn:aws:s3:::logs", "arn:aws:s3:::logs/*"],
                    "Condition": {"DateLessThan": {"aws:CurrentTime": "2026-12-01T10:30:00Z"}}
                }]
            })
        );
        let open = policy_document(
            &["ec2:*".to_string()],
            "aws.ec2.instance",
            "arn:aws:ec2:us-east-1:123456789012:instance/i-1",
            None,
        );
        assert!(open["Statement"][0].get("Condition").is_none());
        assert_eq!(
            open["Statement"][0]["Resource"].as_array().map(Vec::len),
            Some(1)
        );
    }
}
