//! The seam between the provider and IAM Identity Center (SSO Admin and Identity Store).
//!
//! [`IdentityCenterApi`] is the handful of calls account assignments need, one method per AWS
//! call, with no retries or pacing of its own. The SDK implements it ([`SdkIdentityCenter`]);
//! unit tests implement it with scripted answers, because moto answers every assignment with
//! `SUCCEEDED` at once and never with `IN_PROGRESS`, `FAILED`, a conflict or throttling. Pacing,
//! retries and polling live above the seam, in [`super::assignments`] and [`super::pacing`], so
//! the tests exercise the real logic.

use async_trait::async_trait;
use aws_sdk_identitystore::types::{AlternateIdentifier, UniqueAttribute};
use aws_sdk_ssoadmin::types::{PrincipalType, StatusValues, TargetType};

use super::errors::classify;
use super::pacing::Failure;
use crate::provider::ProviderError;

/// Why one Identity Center call failed. Conflicts are told apart because they are retried
/// where other invalid requests are not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CallError {
    /// `ConflictException`: another operation on the same target is running.
    Conflict(String),
    Failed(ProviderError),
}

impl From<ProviderError> for CallError {
    fn from(err: ProviderError) -> Self {
        CallError::Failed(err)
    }
}

impl Failure for CallError {
    fn is_retryable(&self) -> bool {
        match self {
            CallError::Conflict(_) => true,
            CallError::Failed(err) => err.is_retryable(),
        }
    }

    fn is_throttling(&self) -> bool {
        matches!(self, CallError::Failed(err) if err.is_throttling())
    }

    fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            CallError::Conflict(_) => None,
            CallError::Failed(err) => err.retry_after(),
        }
    }

    fn into_error(self, attempts: u32) -> ProviderError {
        match self {
            CallError::Conflict(message) => ProviderError::transient(format!(
                "{message} (still conflicting after {attempts} attempts)"
            )),
            CallError::Failed(err) => err,
        }
    }
}

/// The Identity Center instance and its identity store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Instance {
    pub arn: String,
    pub identity_store_id: String,
}

/// One (account, permission set, user) assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AssignmentTarget {
    pub instance_arn: String,
    pub account_id: String,
    pub permission_set_arn: String,
    pub user_id: String,
}

/// Where an asynchronous create or delete stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OperationState {
    InProgress,
    Succeeded,
    /// With AWS's failure reason.
    Failed(String),
}

/// An asynchronous assignment operation: its request id, to poll, and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Operation {
    pub request_id: String,
    pub state: OperationState,
}

/// The Identity Center calls account assignments make.
#[async_trait]
pub(crate) trait IdentityCenterApi: Send + Sync {
    /// The first instance (an organization has at most one), or `None` when there is none.
    async fn instance(&self) -> Result<Option<Instance>, CallError>;
    /// The ARNs of every permission set, all pages.
    async fn list_permission_sets(&self, instance_arn: &str) -> Result<Vec<String>, CallError>;
    /// The name of one permission set.
    async fn permission_set_name(
        &self,
        instance_arn: &str,
        permission_set_arn: &str,
    ) -> Result<String, CallError>;
    /// The Identity Store user whose email is `email`, or `None`.
    async fn user_id_by_email(
        &self,
        identity_store_id: &str,
        email: &str,
    ) -> Result<Option<String>, CallError>;
    /// Whether the assignment exists.
    async fn assignment_exists(&self, target: &AssignmentTarget) -> Result<bool, CallError>;
    async fn create_assignment(&self, target: &AssignmentTarget) -> Result<Operation, CallError>;
    async fn creation_status(
        &self,
        instance_arn: &str,
        request_id: &str,
    ) -> Result<Operation, CallError>;
    async fn delete_assignment(&self, target: &AssignmentTarget) -> Result<Operation, CallError>;
    async fn deletion_status(
        &self,
        instance_arn: &str,
        request_id: &str,
    ) -> Result<Operation, CallError>;
}

/// [`IdentityCenterApi`] through the AWS SDK.
#[derive(Debug, Clone)]
pub(crate) struct SdkIdentityCenter {
    pub sso_admin: aws_sdk_ssoadmin::Client,
    pub identity_store: aws_sdk_identitystore::Client,
}

/// Classifies an SDK error, keeping conflicts apart.
fn call_error<E>(err: aws_sdk_ssoadmin::error::SdkError<E>, what: &str) -> CallError
where
    E: aws_sdk_ssoadmin::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    use aws_sdk_ssoadmin::error::ProvideErrorMetadata;
    if err.code() == Some("ConflictException") {
        return CallError::Conflict(format!(
            "{what}: ConflictException: {}",
            err.message().unwrap_or("(no message)")
        ));
    }
    CallError::Failed(classify(err, what))
}

fn operation(
    status: Option<&aws_sdk_ssoadmin::types::AccountAssignmentOperationStatus>,
    what: &str,
) -> Result<Operation, CallError> {
    let status = status.ok_or_else(|| {
        CallError::Failed(ProviderError::transient(format!(
            "{what}: the answer carries no operation status"
        )))
    })?;
    let request_id = status.request_id().unwrap_or_default().to_string();
    let state = match status.status() {
        Some(StatusValues::Succeeded) => OperationState::Succeeded,
        Some(StatusValues::Failed) => OperationState::Failed(
            status
                .failure_reason()
                .unwrap_or("no reason given")
                .to_string(),
        ),
        // IN_PROGRESS, and any state added later: keep polling.
        _ => OperationState::InProgress,
    };
    Ok(Operation { request_id, state })
}

#[async_trait]
impl IdentityCenterApi for SdkIdentityCenter {
    async fn instance(&self) -> Result<Option<Instance>, CallError> {
        let what = "listing IAM Identity Center instances";
        let out = self
            .sso_admin
            .list_instances()
            .send()
            .await
            .map_err(|err| call_error(err, what))?;
        Ok(out.instances().iter().find_map(|i| {
            Some(Instance {
                arn: i.instance_arn()?.to_string(),
                identity_store_id: i.identity_store_id()?.to_string(),
            })
        }))
    }

    async fn list_permission_sets(&self, instance_arn: &str) -> Result<Vec<String>, CallError> {
        let what = "listing permission sets";
        let mut pages = self
            .sso_admin
            .list_permission_sets()
            .instance_arn(instance_arn)
            .into_paginator()
            .items()
            .send();
        let mut arns = Vec::new();
        while let Some(arn) = pages.next().await {
            arns.push(arn.map_err(|err| call_error(err, what))?);
        }
        Ok(arns)
    }

    async fn permission_set_name(
        &self,
        instance_arn: &str,
        permission_set_arn: &str,
    ) -> Result<String, CallError> {
        let what = format!("describing permission set {permission_set_arn}");
        let out = self
            .sso_admin
            .describe_permission_set()
            .instance_arn(instance_arn)
            .permission_set_arn(permission_set_arn)
            .send()
            .await
            .map_err(|err| call_error(err, &what))?;
        out.permission_set()
            .and_then(|set| set.name())
            .map(str::to_string)
            .ok_or_else(|| {
                CallError::Failed(ProviderError::transient(format!(
                    "{what}: the answer has no name"
                )))
            })
    }

    async fn user_id_by_email(
        &self,
        identity_store_id: &str,
        email: &str,
    ) -> Result<Option<String>, CallError> {
        let what = format!("looking up the Identity Store user with email {email:?}");
        let attribute = UniqueAttribute::builder()
            .attribute_path("emails.value")
            .attribute_value(aws_smithy_types::Document::String(email.to_string()))
            .build()
            .map_err(|err| CallError::Failed(ProviderError::invalid(format!("{what}: {err}"))))?;
        let answer = self
            .identity_store
            .get_user_id()
            .identity_store_id(identity_store_id)
            .alternate_identifier(AlternateIdentifier::UniqueAttribute(attribute))
            .send()
            .await;
        match answer {
            Ok(out) => Ok(Some(out.user_id().to_string())),
            Err(err) => match call_error(err, &what) {
                CallError::Failed(ProviderError::NotFound { .. }) => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn assignment_exists(&self, target: &AssignmentTarget) -> Result<bool, CallError> {
        let what = format!(
            "listing the assignments of permission set {} on account {}",
            target.permission_set_arn, target.account_id
        );
        let mut pages = self
            .sso_admin
            .list_account_assignments()
            .instance_arn(&target.instance_arn)
            .account_id(&target.account_id)
            .permission_set_arn(&target.permission_set_arn)
            .into_paginator()
            .items()
            .send();
        while let Some(assignment) = pages.next().await {
            let assignment = assignment.map_err(|err| call_error(err, &what))?;
            if assignment.principal_type() == Some(&PrincipalType::User)
                && assignment.principal_id() == Some(target.user_id.as_str())
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn create_assignment(&self, target: &AssignmentTarget) -> Result<Operation, CallError> {
        let what = format!(
            "assigning permission set {} on account {} to user {}",
            target.permission_set_arn, target.account_id, target.user_id
        );
        let out = self
            .sso_admin
            .create_account_assignment()
            .instance_arn(&target.instance_arn)
            .target_id(&target.account_id)
            .target_type(TargetType::AwsAccount)
            .permission_set_arn(&target.permission_set_arn)
            .principal_type(PrincipalType::User)
            .principal_id(&target.user_id)
            .send()
            .await
            .map_err(|err| call_error(err, &what))?;
        operation(out.account_assignment_creation_status(), &what)
    }

    async fn creation_status(
        &self,
        instance_arn: &str,
        request_id: &str,
    ) -> Result<Operation, CallError> {
        let what = format!("reading the status of assignment request {request_id}");
        let out = self
            .sso_admin
            .describe_account_assignment_creation_status()
            .instance_arn(instance_arn)
            .account_assignment_creation_request_id(request_id)
            .send()
            .await
            .map_err(|err| call_error(err, &what))?;
        operation(out.account_assignment_creation_status(), &what)
    }

    async fn delete_assignment(&self, target: &AssignmentTarget) -> Result<Operation, CallError> {
        let what = format!(
            "removing permission set {} on account {} from user {}",
            target.permission_set_arn, target.account_id, target.user_id
        );
        let out = self
            .sso_admin
            .delete_account_assignment()
            .instance_arn(&target.instance_arn)
            .target_id(&target.account_id)
            .target_type(TargetType::AwsAccount)
            .permission_set_arn(&target.permission_set_arn)
            .principal_type(PrincipalType::User)
            .principal_id(&target.user_id)
            .send()
            .await
            .map_err(|err| call_error(err, &what))?;
        operation(out.account_assignment_deletion_status(), &what)
    }

    async fn deletion_status(
        &self,
        instance_arn: &str,
        request_id: &str,
    ) -> Result<Operation, CallError> {
        let what = format!("reading the status of assignment deletion {request_id}");
        let out = self
            .sso_admin
            .describe_account_assignment_deletion_status()
            .instance_arn(instance_arn)
            .account_assignment_deletion_request_id(request_id)
            .send()
            .await
            .map_err(|err| call_error(err, &what))?;
        operation(out.account_assignment_deletion_status(), &what)
    }
}
