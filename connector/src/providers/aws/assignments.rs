//! Grants on `aws.account`: Identity Center account assignments of a permission set to the
//! requester's Identity Store user.
//!
//! **Pacing.** Every Identity Center call goes through one [`Pacer`] at 20 per second (the
//! published Identity Center limit; the same pacing code as the inventory's Organizations,
//! tagging and IAM calls), and at most 10 assignment creates or deletes are in flight at once,
//! each holding its permit until its asynchronous operation has finished.
//!
//! **Retries.** Throttling, transient failures and `ConflictException` (another operation on
//! the same account and permission set still running) are retried by the pacer with full-jitter
//! exponential backoff, a bounded number of times; then the call fails as throttled or
//! transient, and the control plane retries the command later.
//!
//! **Asynchronous operations.** Create and delete return a request id whose status moves from
//! `IN_PROGRESS` to `SUCCEEDED` or `FAILED`; it is polled with exponential backoff. A failure
//! AWS says is temporary is transient, any other is invalid. An operation still running after
//! the polling bound fails as transient: the retried command finds the assignment (or its
//! absence) through the existence check and does not start a second operation.
//!
//! **Idempotence.** Grant first lists the assignments of (account, permission set) and succeeds
//! when the user already holds it; AWS may keep duplicate rows otherwise (moto does). Revoke
//! succeeds when the permission set, the user or the assignment is already gone.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Semaphore};

use super::identity_center::{
    AssignmentTarget, CallError, IdentityCenterApi, Instance, Operation, OperationState,
};
use super::pacing::{Counts, Pacer, Quota, Retries};
use crate::backoff::Backoff;
use crate::provider::{GrantSpec, ProviderError};

/// Assignment operations in flight at once.
const OPERATIONS_IN_FLIGHT: usize = 10;

/// How calls are paced and retried and operations polled; tests shorten the delays.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub quota: Quota,
    pub retries: Retries,
    /// Status reads per operation before giving up.
    pub polls: u32,
    pub poll_base: Duration,
    pub poll_cap: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            quota: Quota::IDENTITY_CENTER,
            retries: Retries::default(),
            // About two minutes of polling at the cap: assignments usually take seconds.
            polls: 30,
            poll_base: Duration::from_millis(250),
            poll_cap: Duration::from_secs(5),
        }
    }
}

/// Identity Center for one integration: the seam, paced, retried, with a permission set cache.
pub(crate) struct IdentityCenter {
    api: Arc<dyn IdentityCenterApi>,
    pacer: Pacer,
    in_flight: Semaphore,
    timing: Timing,
    instance: Mutex<Option<Instance>>,
    /// Permission set name to ARN, for the cached instance; refilled on a miss.
    permission_sets: Mutex<HashMap<String, String>>,
}

impl IdentityCenter {
    pub(crate) fn new(api: Arc<dyn IdentityCenterApi>, timing: Timing) -> Self {
        Self {
            api,
            pacer: Pacer::new("identity-center", timing.quota, timing.retries),
            in_flight: Semaphore::new(OPERATIONS_IN_FLIGHT),
            timing,
            instance: Mutex::new(None),
            permission_sets: Mutex::new(HashMap::new()),
        }
    }

    /// One Identity Center call: paced, and retried on throttling, transient errors and
    /// conflicts.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        self.pacer.call(f).await
    }

    /// The calls made so far, for the sync's log.
    pub(crate) fn counts(&self) -> (&'static str, Counts) {
        (self.pacer.service(), self.pacer.counts())
    }

    /// The instance, cached once found. `None` when Identity Center is not enabled.
    pub(crate) async fn instance(&self) -> Result<Option<Instance>, ProviderError> {
        let mut cached = self.instance.lock().await;
        if cached.is_none() {
            *cached = self.call(|| self.api.instance()).await?;
        }
        Ok(cached.clone())
    }

    /// Every permission set of `instance` as (name, ARN), sorted by name; refreshes the cache.
    pub(crate) async fn permission_sets(
        &self,
        instance: &Instance,
    ) -> Result<Vec<(String, String)>, ProviderError> {
        let arns = self
            .call(|| self.api.list_permission_sets(&instance.arn))
            .await?;
        let mut sets = Vec::with_capacity(arns.len());
        for arn in arns {
            let name = self
                .call(|| self.api.permission_set_name(&instance.arn, &arn))
                .await?;
            sets.push((name, arn));
        }
        sets.sort();
        *self.permission_sets.lock().await = sets.iter().cloned().collect();
        Ok(sets)
    }

    /// The ARN of the permission set named `name`, or `None` when there is none.
    async fn permission_set_arn(
        &self,
        instance: &Instance,
        name: &str,
    ) -> Result<Option<String>, ProviderError> {
        if let Some(arn) = self.permission_sets.lock().await.get(name) {
            return Ok(Some(arn.clone()));
        }
        let sets = self.permission_sets(instance).await?;
        Ok(sets
            .into_iter()
            .find(|(set, _)| set == name)
            .map(|(_, arn)| arn))
    }

    /// The instance, the permission set ARN and the user id a grant needs. `Ok(Err(why))` says
    /// which of them does not exist: grant reports it as not found, revoke as already done.
    async fn target(
        &self,
        grant: &GrantSpec,
    ) -> Result<Result<AssignmentTarget, String>, ProviderError> {
        let account_id = grant.resource_id.as_str();
        if account_id.len() != 12 || !account_id.chars().all(|c| c.is_ascii_digit()) {
            return Err(ProviderError::invalid(format!(
                "resource {account_id:?} of type aws.account is not a 12-digit account id"
            )));
        }
        let Some(instance) = self.instance().await? else {
            return Ok(Err(
                "IAM Identity Center is not enabled for this organization or account".into(),
            ));
        };
        let Some(permission_set_arn) = self
            .permission_set_arn(&instance, &grant.permission)
            .await?
        else {
            return Ok(Err(format!(
                "there is no permission set named {:?}",
                grant.permission
            )));
        };
        let Some(user_id) = self
            .call(|| {
                self.api
                    .user_id_by_email(&instance.identity_store_id, &grant.identity)
            })
            .await?
        else {
            return Ok(Err(format!(
                "no Identity Store user has the email {:?}",
                grant.identity
            )));
        };
        Ok(Ok(AssignmentTarget {
            instance_arn: instance.arn,
            account_id: account_id.to_string(),
            permission_set_arn,
            user_id,
        }))
    }

    /// Makes sure the user holds the permission set on the account.
    pub(crate) async fn grant(&self, grant: &GrantSpec) -> Result<(), ProviderError> {
        let target = self
            .target(grant)
            .await?
            .map_err(ProviderError::not_found)?;
        let _permit =
            self.in_flight.acquire().await.map_err(|_| {
                ProviderError::transient("the provider is shutting down".to_string())
            })?;
        if self.call(|| self.api.assignment_exists(&target)).await? {
            return Ok(());
        }
        let operation = self.call(|| self.api.create_assignment(&target)).await?;
        self.finish(operation, &target.instance_arn, Phase::Create)
            .await
    }

    /// Makes sure the user no longer holds the permission set on the account.
    pub(crate) async fn revoke(&self, grant: &GrantSpec) -> Result<(), ProviderError> {
        let Ok(target) = self.target(grant).await? else {
            // The permission set, the user or Identity Center is gone, and the assignment too.
            return Ok(());
        };
        let _permit =
            self.in_flight.acquire().await.map_err(|_| {
                ProviderError::transient("the provider is shutting down".to_string())
            })?;
        if !self.call(|| self.api.assignment_exists(&target)).await? {
            return Ok(());
        }
        let operation = match self.call(|| self.api.delete_assignment(&target)).await {
            Ok(operation) => operation,
            Err(ProviderError::NotFound { .. }) => return Ok(()),
            Err(err) => return Err(err),
        };
        self.finish(operation, &target.instance_arn, Phase::Delete)
            .await
    }

    /// Polls an operation until it succeeds or fails, with exponential backoff.
    async fn finish(
        &self,
        mut operation: Operation,
        instance_arn: &str,
        phase: Phase,
    ) -> Result<(), ProviderError> {
        let request_id = operation.request_id.clone();
        let what = match phase {
            Phase::Create => "assignment",
            Phase::Delete => "assignment deletion",
        };
        let mut backoff = Backoff::new(self.timing.poll_base, self.timing.poll_cap);
        let mut polls = 0;
        loop {
            match &operation.state {
                OperationState::Succeeded => return Ok(()),
                OperationState::Failed(reason) => return Err(failed(what, &request_id, reason)),
                OperationState::InProgress if polls >= self.timing.polls => {
                    return Err(ProviderError::transient(format!(
                        "{what} request {request_id} is still IN_PROGRESS after {polls} status \
                         reads; retrying the command finds its outcome"
                    )));
                }
                OperationState::InProgress => {}
            }
            // Never zero, so a long run of short jitters does not spin on the status call.
            let delay = backoff.next_delay().max(self.timing.poll_base / 2);
            tokio::time::sleep(delay).await;
            polls += 1;
            operation = match phase {
                Phase::Create => {
                    self.call(|| self.api.creation_status(instance_arn, &request_id))
                        .await?
                }
                Phase::Delete => {
                    self.call(|| self.api.deletion_status(instance_arn, &request_id))
                        .await?
                }
            };
        }
    }
}

/// Which asynchronous operation is polled.
#[derive(Debug, Clone, Copy)]
enum Phase {
    Create,
    Delete,
}

/// A `FAILED` operation: transient when AWS says to try again, invalid otherwise.
fn failed(what: &str, request_id: &str, reason: &str) -> ProviderError {
    let message = format!("{what} request {request_id} FAILED: {reason}");
    let lower = reason.to_ascii_lowercase();
    let temporary = [
        "try again",
        "throttl",
        "rate exceeded",
        "internal",
        "timed out",
        "conflict",
    ];
    if temporary.iter().any(|word| lower.contains(word)) {
        ProviderError::transient(message)
    } else {
        ProviderError::invalid(message)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex as StdMutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;

    /// Scripted Identity Center: one instance, one permission set `ReadOnly`, one user
    /// `alice@example.com`, and queues of answers for the assignment calls.
    #[derive(Default)]
    struct Scripted {
        exists: StdMutex<VecDeque<Result<bool, CallError>>>,
        creates: StdMutex<VecDeque<Result<Operation, CallError>>>,
        statuses: StdMutex<VecDeque<Result<Operation, CallError>>>,
        deletes: StdMutex<VecDeque<Result<Operation, CallError>>>,
        calls: StdMutex<Vec<String>>,
        /// Create calls whose operation has not finished yet, and the most seen at once.
        running: AtomicUsize,
        max_running: AtomicUsize,
        /// When set, every create answers IN_PROGRESS and every status SUCCEEDED after a pause.
        slow_operations: bool,
    }

    fn op(state: OperationState) -> Operation {
        Operation {
            request_id: "req-1".into(),
            state,
        }
    }

    fn pop<T: Clone>(queue: &StdMutex<VecDeque<T>>, default: T) -> T {
        queue.lock().expect("lock").pop_front().unwrap_or(default)
    }

    impl Scripted {
        fn log(&self, call: &str) {
            self.calls.lock().expect("lock").push(call.to_string());
        }

        fn calls(&self) -> Vec<String> {
            self.calls.lock().expect("lock").clone()
        }

        fn count(&self, call: &str) -> usize {
            self.calls().iter().filter(|c| *c == call).count()
        }
    }

    #[async_trait]
    impl IdentityCenterApi for Scripted {
        async fn instance(&self) -> Result<Option<Instance>, CallError> {
            self.log("instance");
            Ok(Some(Instance {
                arn: "arn:aws:sso:::instance/ssoins-1".into(),
                identity_store_id: "d-1".into(),
            }))
        }

        async fn list_permission_sets(&self, _: &str) -> Result<Vec<String>, CallError> {
            self.log("list_permission_sets");
            Ok(vec!["arn:ps-readonly".into(), "arn:ps-admin".into()])
        }

        async fn permission_set_name(&self, _: &str, arn: &str) -> Result<String, CallError> {
            self.log("permission_set_name");
            Ok(match arn {
                "arn:ps-readonly" => "ReadOnly".into(),
                _ => "Admin".into(),
            })
        }

        async fn user_id_by_email(
            &self,
            _: &str,
            email: &str,
        ) -> Result<Option<String>, CallError> {
            self.log("user_id_by_email");
            Ok((email == "alice@example.com").then(|| "user-alice".to_string()))
        }

        async fn assignment_exists(&self, _: &AssignmentTarget) -> Result<bool, CallError> {
            self.log("exists");
            pop(&self.exists, Ok(false))
        }

        async fn create_assignment(&self, _: &AssignmentTarget) -> Result<Operation, CallError> {
            self.log("create");
            if self.slow_operations {
                let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
                self.max_running.fetch_max(now, Ordering::SeqCst);
                return Ok(op(OperationState::InProgress));
            }
            pop(&self.creates, Ok(op(OperationState::Succeeded)))
        }

        async fn creation_status(&self, _: &str, _: &str) -> Result<Operation, CallError> {
            self.log("creation_status");
            if self.slow_operations {
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.running.fetch_sub(1, Ordering::SeqCst);
                return Ok(op(OperationState::Succeeded));
            }
            pop(&self.statuses, Ok(op(OperationState::Succeeded)))
        }

        async fn delete_assignment(&self, _: &AssignmentTarget) -> Result<Operation, CallError> {
            self.log("delete");
            pop(&self.deletes, Ok(op(OperationState::Succeeded)))
        }

        async fn deletion_status(&self, _: &str, _: &str) -> Result<Operation, CallError> {
            self.log("deletion_status");
            pop(&self.statuses, Ok(op(OperationState::Succeeded)))
        }
    }

    fn fast() -> Timing {
        Timing {
            quota: Quota::IDENTITY_CENTER,
            retries: Retries {
                attempts: 4,
                base: Duration::from_millis(1),
                cap: Duration::from_millis(4),
            },
            polls: 5,
            poll_base: Duration::from_millis(1),
            poll_cap: Duration::from_millis(4),
        }
    }

    fn grant(permission: &str) -> GrantSpec {
        GrantSpec {
            grant_id: "g-1".into(),
            identity: "alice@example.com".into(),
            resource_id: "123456789012".into(),
            resource_type: "aws.account".into(),
            permission: permission.into(),
            expires_at: None,
            duration: None,
        }
    }

    fn center(api: &Arc<Scripted>) -> IdentityCenter {
        IdentityCenter::new(api.clone(), fast())
    }

    fn throttled() -> CallError {
        CallError::Failed(ProviderError::throttled(
            "ThrottlingException: Rate exceeded",
            None,
        ))
    }

    #[tokio::test]
    async fn in_progress_is_polled_until_succeeded() {
        let api = Arc::new(Scripted::default());
        api.creates
            .lock()
            .expect("lock")
            .push_back(Ok(op(OperationState::InProgress)));
        api.statuses.lock().expect("lock").extend([
            Ok(op(OperationState::InProgress)),
            Ok(op(OperationState::InProgress)),
            Ok(op(OperationState::Succeeded)),
        ]);
        center(&api)
            .grant(&grant("ReadOnly"))
            .await
            .expect("granted");
        assert_eq!(api.count("create"), 1);
        assert_eq!(api.count("creation_status"), 3);
    }

    #[tokio::test]
    async fn failed_operations_are_invalid_or_transient_by_reason() {
        let api = Arc::new(Scripted::default());
        api.creates
            .lock()
            .expect("lock")
            .push_back(Ok(op(OperationState::InProgress)));
        api.statuses
            .lock()
            .expect("lock")
            .push_back(Ok(op(OperationState::Failed(
                "Received a 404 status error: the principal does not exist".into(),
            ))));
        let err = center(&api)
            .grant(&grant("ReadOnly"))
            .await
            .expect_err("failed");
        assert!(matches!(err, ProviderError::Invalid { .. }), "{err:?}");
        assert!(err.to_string().contains("req-1 FAILED"), "{err}");

        let api = Arc::new(Scripted::default());
        api.creates
            .lock()
            .expect("lock")
            .push_back(Ok(op(OperationState::Failed(
                "Internal failure, please try again".into(),
            ))));
        let err = center(&api)
            .grant(&grant("ReadOnly"))
            .await
            .expect_err("failed");
        assert!(err.is_retryable(), "{err:?}");
    }

    #[tokio::test]
    async fn an_operation_that_never_finishes_is_transient() {
        let api = Arc::new(Scripted::default());
        api.creates
            .lock()
            .expect("lock")
            .push_back(Ok(op(OperationState::InProgress)));
        api.statuses
            .lock()
            .expect("lock")
            .extend((0..10).map(|_| Ok(op(OperationState::InProgress))));
        let err = center(&api)
            .grant(&grant("ReadOnly"))
            .await
            .expect_err("still running");
        assert!(matches!(err, ProviderError::Transient { .. }), "{err:?}");
        assert_eq!(api.count("creation_status"), fast().polls as usize);
    }

    #[tokio::test]
    async fn conflicts_are_retried_until_the_create_goes_through() {
        let api = Arc::new(Scripted::default());
        api.creates.lock().expect("lock").extend([
            Err(CallError::Conflict(
                "ConflictException: operation in progress".into(),
            )),
            Err(CallError::Conflict(
                "ConflictException: operation in progress".into(),
            )),
            Ok(op(OperationState::Succeeded)),
        ]);
        center(&api)
            .grant(&grant("ReadOnly"))
            .await
            .expect("granted");
        assert_eq!(api.count("create"), 3);

        // A conflict that never clears ends as transient, after the bounded attempts.
        let api = Arc::new(Scripted::default());
        api.creates
            .lock()
            .expect("lock")
            .extend((0..10).map(|_| Err(CallError::Conflict("ConflictException: busy".into()))));
        let err = center(&api)
            .grant(&grant("ReadOnly"))
            .await
            .expect_err("conflict");
        assert!(matches!(err, ProviderError::Transient { .. }), "{err:?}");
        assert_eq!(api.count("create"), fast().retries.attempts as usize);
    }

    #[tokio::test]
    async fn throttling_is_retried_with_backoff_then_reported_as_throttled() {
        let api = Arc::new(Scripted::default());
        api.exists
            .lock()
            .expect("lock")
            .extend([Err(throttled()), Err(throttled()), Ok(false)]);
        center(&api)
            .grant(&grant("ReadOnly"))
            .await
            .expect("granted");
        assert_eq!(api.count("exists"), 3);

        let api = Arc::new(Scripted::default());
        api.exists
            .lock()
            .expect("lock")
            .extend((0..10).map(|_| Err(throttled())));
        let err = center(&api)
            .grant(&grant("ReadOnly"))
            .await
            .expect_err("throttled");
        assert!(matches!(err, ProviderError::Throttled { .. }), "{err:?}");
        assert_eq!(api.count("exists"), fast().retries.attempts as usize);
        assert_eq!(api.count("create"), 0);

        // Denied is final at once.
        let api = Arc::new(Scripted::default());
        api.exists
            .lock()
            .expect("lock")
            .push_back(Err(CallError::Failed(ProviderError::denied(
                "AccessDeniedException",
            ))));
        let err = center(&api)
            .grant(&grant("ReadOnly"))
            .await
            .expect_err("denied");
        assert!(matches!(err, ProviderError::Denied { .. }), "{err:?}");
        assert_eq!(api.count("exists"), 1);
    }

    #[tokio::test]
    async fn an_existing_assignment_is_success_without_a_create() {
        let api = Arc::new(Scripted::default());
        api.exists.lock().expect("lock").push_back(Ok(true));
        center(&api)
            .grant(&grant("ReadOnly"))
            .await
            .expect("granted");
        assert_eq!(api.count("create"), 0);
    }

    #[tokio::test]
    async fn unknown_permission_sets_and_users_are_not_found_for_grant_and_done_for_revoke() {
        let api = Arc::new(Scripted::default());
        let ic = center(&api);
        let err = ic
            .grant(&grant("PowerUser"))
            .await
            .expect_err("no such set");
        assert!(matches!(err, ProviderError::NotFound { .. }), "{err:?}");
        assert!(err.to_string().contains("PowerUser"), "{err}");
        ic.revoke(&grant("PowerUser"))
            .await
            .expect("nothing to revoke");
        let mut someone_else = grant("ReadOnly");
        someone_else.identity = "mallory@example.com".into();
        let err = ic.grant(&someone_else).await.expect_err("no such user");
        assert!(err.to_string().contains("mallory@example.com"), "{err}");
        ic.revoke(&someone_else).await.expect("nothing to revoke");
        assert_eq!(api.count("create") + api.count("delete"), 0);
        let mut bad = grant("ReadOnly");
        bad.resource_id = "arn:aws:s3:::bucket".into();
        assert!(matches!(
            ic.grant(&bad).await,
            Err(ProviderError::Invalid { .. })
        ));
    }

    #[tokio::test]
    async fn revoke_polls_the_deletion_and_treats_missing_as_done() {
        let api = Arc::new(Scripted::default());
        api.exists.lock().expect("lock").push_back(Ok(true));
        api.deletes
            .lock()
            .expect("lock")
            .push_back(Ok(op(OperationState::InProgress)));
        api.statuses.lock().expect("lock").extend([
            Ok(op(OperationState::InProgress)),
            Ok(op(OperationState::Succeeded)),
        ]);
        let ic = center(&api);
        ic.revoke(&grant("ReadOnly")).await.expect("revoked");
        assert_eq!(api.count("deletion_status"), 2);

        // Not listed: no delete at all.
        ic.revoke(&grant("ReadOnly")).await.expect("already gone");
        assert_eq!(api.count("delete"), 1);

        // Listed, but gone by the time of the delete.
        api.exists.lock().expect("lock").push_back(Ok(true));
        api.deletes
            .lock()
            .expect("lock")
            .push_back(Err(CallError::Failed(ProviderError::not_found(
                "ResourceNotFoundException",
            ))));
        ic.revoke(&grant("ReadOnly")).await.expect("gone meanwhile");
    }

    #[tokio::test]
    async fn permission_sets_are_cached_between_grants() {
        let api = Arc::new(Scripted::default());
        let ic = center(&api);
        ic.grant(&grant("ReadOnly")).await.expect("granted");
        ic.grant(&grant("Admin")).await.expect("granted");
        assert_eq!(api.count("list_permission_sets"), 1);
        assert_eq!(api.count("instance"), 1);
    }

    #[tokio::test]
    async fn at_most_ten_operations_are_in_flight() {
        let api = Arc::new(Scripted {
            slow_operations: true,
            ..Scripted::default()
        });
        let ic = Arc::new(center(&api));
        let mut tasks = Vec::new();
        for i in 0..25 {
            let ic = ic.clone();
            tasks.push(tokio::spawn(async move {
                let mut spec = grant("ReadOnly");
                spec.grant_id = format!("g-{i}");
                ic.grant(&spec).await
            }));
        }
        for task in tasks {
            task.await.expect("task").expect("granted");
        }
        assert_eq!(api.count("create"), 25);
        let max = api.max_running.load(Ordering::SeqCst);
        assert!(max <= OPERATIONS_IN_FLIGHT, "{max} operations at once");
        assert!(max >= 2, "operations overlapped: {max}");
    }
}
