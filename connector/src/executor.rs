//! Carries out grant and revoke commands: screens each one (addressee, integration, guardrails,
//! capability), then runs it in order with every other command about the same grant, at most
//! `max_concurrent_commands` at a time, under the integration's rate limit; journals the final
//! outcome (fsync) and only then reports it.
//!
//! The executor outlives a stream: results go into one outbox that whichever stream is connected
//! drains, so a command that finishes while the connection is down is reported on the next one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::DateTime;
use latch_proto::v1::{self as pb, Command, CommandKind, CommandResult};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use crate::guardrails::Guardrails;
use crate::journal::{Entry, Journal, Outcome, Precheck};
use crate::provider::{Capability, GrantSpec, Granted, ProviderError};
use crate::runtime::Integration;

/// The longest a provider may take for one grant or revoke before the command is reported as
/// worth retrying: a hung cloud call must not block its grant's queue forever.
const PROVIDER_CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// Above this many tracked grants, finished ones are forgotten.
const QUEUE_SWEEP_THRESHOLD: usize = 1024;

/// A sync the control plane asked for; syncs belong to the stream, so the session runs them.
#[derive(Debug)]
pub(crate) struct SyncOrder {
    pub command_id: String,
    pub integration: Arc<Integration>,
}

pub(crate) struct Executor {
    connector_id: String,
    integrations: HashMap<String, Arc<Integration>>,
    guardrails: Guardrails,
    journal: Journal,
    permits: Arc<Semaphore>,
    /// Per grant, a receiver that resolves when the grant's latest queued command is finished.
    queues: Mutex<HashMap<String, oneshot::Receiver<()>>>,
    in_flight: Arc<watch::Sender<usize>>,
    results: mpsc::Sender<CommandResult>,
}

impl Executor {
    pub(crate) fn new(
        connector_id: String,
        integrations: HashMap<String, Arc<Integration>>,
        guardrails: Guardrails,
        journal: Journal,
        max_concurrent_commands: usize,
        results: mpsc::Sender<CommandResult>,
    ) -> Self {
        Self {
            connector_id,
            integrations,
            guardrails,
            journal,
            permits: Arc::new(Semaphore::new(max_concurrent_commands.max(1))),
            queues: Mutex::new(HashMap::new()),
            in_flight: Arc::new(watch::channel(0).0),
            results,
        }
    }

    /// Takes a verified command. Grants and revokes start in the background (in arrival order
    /// per grant); a sync is handed back for the session to run.
    pub(crate) fn dispatch(self: &Arc<Self>, command: Command) -> Option<SyncOrder> {
        let integration = match self.screen(&command) {
            Ok(integration) => integration,
            Err(reason) => {
                tracing::warn!(
                    command_id = %command.id,
                    integration = %command.integration,
                    %reason,
                    "command refused"
                );
                self.report_later(command.id, Outcome::Refused, reason);
                return None;
            }
        };
        if command.kind() == CommandKind::Sync {
            return Some(SyncOrder {
                command_id: command.id,
                integration,
            });
        }
        let (done, finished) = oneshot::channel();
        let previous = {
            let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
            if queues.len() > QUEUE_SWEEP_THRESHOLD {
                queues.retain(|_, rx| {
                    matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Empty))
                });
            }
            queues.insert(command.grant_id.clone(), finished)
        };
        let guard = self.track();
        let executor = self.clone();
        tokio::spawn(async move {
            if let Some(previous) = previous {
                // Resolves (with an error) when the previous command's task drops its sender.
                let _ = previous.await;
            }
            let result = executor.execute(&command, &integration).await;
            // Report before letting the grant's next command go, so results keep their order.
            executor.send(result).await;
            drop(done);
            drop(guard);
        });
        None
    }

    /// Checks that need no journal and no provider.
    fn screen(&self, command: &Command) -> Result<Arc<Integration>, String> {
        let needed = match CommandKind::try_from(command.kind) {
            Ok(CommandKind::Grant) => Capability::Grant,
            Ok(CommandKind::Revoke) => Capability::Revoke,
            Ok(CommandKind::Sync) => Capability::Sync,
            _ => return Err(format!("unknown command kind {}", command.kind)),
        };
        if command.connector_id != self.connector_id {
            return Err(format!(
                "the command is for connector {:?}, this is {:?}",
                command.connector_id, self.connector_id
            ));
        }
        let integration = self.integrations.get(&command.integration).ok_or_else(|| {
            format!(
                "integration {:?} is not served by this connector",
                command.integration
            )
        })?;
        self.guardrails.check(command)?;
        if !integration.capabilities.contains(&needed) {
            return Err(format!(
                "integration {:?} ({}) cannot {needed}",
                integration.name, integration.kind
            ));
        }
        if needed != Capability::Sync && command.grant_id.is_empty() {
            return Err("the command has no grant id".to_string());
        }
        Ok(integration.clone())
    }

    /// Runs a screened grant or revoke; its turn for the grant has come.
    async fn execute(&self, command: &Command, integration: &Integration) -> CommandResult {
        let reply = |outcome: Outcome, message: String| CommandResult {
            command_id: command.id.clone(),
            outcome: outcome.to_proto() as i32,
            message,
            ..CommandResult::default()
        };
        match self
            .journal
            .precheck(&command.id, &command.grant_id, command.generation)
        {
            Precheck::Duplicate(entry) if entry.issued_credentials => {
                tracing::info!(command_id = %command.id, "command already finished with credentials that are not kept; running it again for fresh ones");
            }
            Precheck::Duplicate(entry) => {
                tracing::info!(command_id = %command.id, "command already finished; reporting its result again");
                return reply(entry.outcome, entry.message);
            }
            Precheck::Stale {
                generation,
                highest,
            } => {
                tracing::warn!(command_id = %command.id, grant_id = %command.grant_id, generation, highest, "stale command refused");
                return reply(
                    Outcome::Refused,
                    format!("stale generation {generation} < {highest}"),
                );
            }
            Precheck::Fresh => {}
        }

        let spec = grant_spec(command);
        let kind = command.kind();
        tracing::info!(
            command_id = %command.id,
            kind = kind.as_str_name(),
            integration = %integration.name,
            grant_id = %command.grant_id,
            generation = command.generation,
            attempt = command.attempt,
            "applying a command"
        );
        let outcome = {
            let Ok(_permit) = self.permits.clone().acquire_owned().await else {
                return reply(Outcome::Retry, "the connector is shutting down".into());
            };
            integration.limiter.acquire().await;
            let call = async {
                match kind {
                    CommandKind::Grant => integration.provider.grant(&spec).await,
                    _ => integration
                        .provider
                        .revoke(&spec)
                        .await
                        .map(|()| Granted::access()),
                }
            };
            match tokio::time::timeout(PROVIDER_CALL_TIMEOUT, call).await {
                Ok(Ok(granted)) => (Outcome::Done, String::new(), granted.credentials, None),
                Ok(Err(err)) => (classify(&err), err.to_string(), None, retry_after(&err)),
                Err(_) => (
                    Outcome::Retry,
                    format!(
                        "the provider did not answer within {}",
                        humantime::format_duration(PROVIDER_CALL_TIMEOUT)
                    ),
                    None,
                    None,
                ),
            }
        };
        let (mut outcome, mut message, mut credentials, retry_after) = outcome;
        if matches!(outcome, Outcome::Done | Outcome::Failed) {
            let entry = Entry {
                command_id: command.id.clone(),
                grant_id: command.grant_id.clone(),
                generation: command.generation,
                outcome,
                message: message.clone(),
                issued_credentials: credentials.is_some(),
            };
            if let Err(err) = self.journal.append(entry).await {
                // Not durable, so not final: the control plane retries and the provider's
                // idempotence makes the repeat harmless.
                tracing::error!(command_id = %command.id, error = %err, "cannot journal a finished command");
                outcome = Outcome::Retry;
                message = format!("the connector cannot record the result: {err}");
                credentials = None;
            }
        }
        tracing::info!(
            command_id = %command.id,
            kind = kind.as_str_name(),
            integration = %integration.name,
            grant_id = %command.grant_id,
            generation = command.generation,
            outcome = ?outcome,
            %message,
            issued_credentials = credentials.is_some(),
            "command finished"
        );
        CommandResult {
            credentials: credentials.map(|issued| pb::IssuedCredentials {
                username: issued.username,
                password: issued.password,
                host: issued.host,
                port: u32::from(issued.port),
                database: issued.database,
            }),
            retry_after: retry_after.and_then(|wait| prost_types::Duration::try_from(wait).ok()),
            ..reply(outcome, message)
        }
    }

    fn report_later(self: &Arc<Self>, command_id: String, outcome: Outcome, message: String) {
        let guard = self.track();
        let executor = self.clone();
        tokio::spawn(async move {
            executor
                .send(CommandResult {
                    command_id,
                    outcome: outcome.to_proto() as i32,
                    message,
                    ..CommandResult::default()
                })
                .await;
            drop(guard);
        });
    }

    async fn send(&self, result: CommandResult) {
        if self.results.send(result).await.is_err() {
            tracing::debug!("the result outbox is closed; the command will be redelivered");
        }
    }

    fn track(&self) -> InFlight {
        self.in_flight.send_modify(|n| *n += 1);
        InFlight(self.in_flight.clone())
    }

    /// Resolves when no command is running or waiting to report.
    pub(crate) async fn idle(&self) {
        let mut watcher = self.in_flight.subscribe();
        let _ = watcher.wait_for(|n| *n == 0).await;
    }
}

/// Counts a started command until its result is in the outbox.
struct InFlight(Arc<watch::Sender<usize>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The wait a throttled provider asked for, passed on to the control plane.
fn retry_after(err: &ProviderError) -> Option<Duration> {
    match err {
        ProviderError::Throttled { retry_after, .. } => *retry_after,
        _ => None,
    }
}

fn classify(err: &ProviderError) -> Outcome {
    if err.is_retryable() {
        Outcome::Retry
    } else {
        Outcome::Failed
    }
}

fn grant_spec(command: &Command) -> GrantSpec {
    GrantSpec {
        grant_id: command.grant_id.clone(),
        identity: command.identity.clone(),
        resource_id: command.resource_id.clone(),
        resource_type: command.resource_type.clone(),
        permission: command.permission.clone(),
        expires_at: command
            .expires_at
            .as_ref()
            .and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))),
        duration: (command.duration_secs > 0).then(|| Duration::from_secs(command.duration_secs)),
    }
}

#[cfg(test)]
mod tests {
    use latch_proto::v1::CommandOutcome;

    use super::*;
    use crate::testing::{FakeProvider, integration};

    struct Harness {
        executor: Arc<Executor>,
        results: mpsc::Receiver<CommandResult>,
        provider: Arc<FakeProvider>,
        _dir: tempfile::TempDir,
    }

    fn harness(guardrails: Guardrails) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = Journal::open(&dir.path().join("commands.journal")).expect("journal");
        let provider = Arc::new(FakeProvider::default());
        let pg = integration("pg", provider.clone());
        let (tx, rx) = mpsc::channel(64);
        let executor = Arc::new(Executor::new(
            "conn-1".into(),
            HashMap::from([("pg".to_string(), pg)]),
            guardrails,
            journal,
            4,
            tx,
        ));
        Harness {
            executor,
            results: rx,
            provider,
            _dir: dir,
        }
    }

    fn command(id: &str, kind: CommandKind, grant: &str, generation: u64) -> Command {
        Command {
            id: id.into(),
            kind: kind as i32,
            connector_id: "conn-1".into(),
            integration: "pg".into(),
            grant_id: grant.into(),
            generation,
            identity: "ada@example.com".into(),
            resource_id: "postgres://db/app".into(),
            resource_type: "postgres.database".into(),
            permission: "readonly".into(),
            duration_secs: 3600,
            ..Command::default()
        }
    }

    async fn next(results: &mut mpsc::Receiver<CommandResult>) -> (CommandOutcome, String, String) {
        let result = next_result(results).await;
        (result.outcome(), result.command_id, result.message)
    }

    async fn next_result(results: &mut mpsc::Receiver<CommandResult>) -> CommandResult {
        tokio::time::timeout(Duration::from_secs(5), results.recv())
            .await
            .expect("a result in time")
            .expect("open")
    }

    #[tokio::test]
    async fn a_duplicate_delivery_is_applied_once() {
        let mut h = harness(Guardrails::default());
        h.executor
            .dispatch(command("c1", CommandKind::Grant, "g1", 1));
        assert_eq!(next(&mut h.results).await.0, CommandOutcome::Done);
        h.executor
            .dispatch(command("c1", CommandKind::Grant, "g1", 1));
        assert_eq!(next(&mut h.results).await.0, CommandOutcome::Done);
        assert_eq!(h.provider.calls(), vec!["grant g1 readonly"]);
    }

    #[tokio::test]
    async fn a_stale_generation_is_refused_without_acting() {
        let mut h = harness(Guardrails::default());
        h.executor
            .dispatch(command("c2", CommandKind::Revoke, "g1", 2));
        assert_eq!(next(&mut h.results).await.0, CommandOutcome::Done);
        h.executor
            .dispatch(command("c1", CommandKind::Grant, "g1", 1));
        let (outcome, id, message) = next(&mut h.results).await;
        assert_eq!((outcome, id.as_str()), (CommandOutcome::Refused, "c1"));
        assert_eq!(message, "stale generation 1 < 2");
        assert_eq!(h.provider.calls(), vec!["revoke g1 readonly"]);
    }

    #[tokio::test]
    async fn commands_for_one_grant_run_one_at_a_time_in_arrival_order() {
        let mut h = harness(Guardrails::default());
        h.provider.set_delay(Duration::from_millis(30));
        h.executor
            .dispatch(command("c1", CommandKind::Grant, "g1", 1));
        h.executor
            .dispatch(command("c2", CommandKind::Revoke, "g1", 2));
        h.executor
            .dispatch(command("c3", CommandKind::Grant, "g1", 3));
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(next(&mut h.results).await.1);
        }
        assert_eq!(ids, ["c1", "c2", "c3"]);
        assert_eq!(
            h.provider.calls(),
            vec![
                "grant g1 readonly",
                "revoke g1 readonly",
                "grant g1 readonly"
            ]
        );
        assert_eq!(h.provider.max_concurrent(), 1);
    }

    #[tokio::test]
    async fn retryable_failures_are_retried_and_not_journaled() {
        let mut h = harness(Guardrails::default());
        h.provider
            .fail_next(ProviderError::throttled("slow down", None));
        h.executor
            .dispatch(command("c1", CommandKind::Grant, "g1", 1));
        let (outcome, _, message) = next(&mut h.results).await;
        assert_eq!(outcome, CommandOutcome::Retry);
        assert_eq!(message, "throttled: slow down");
        // The redelivery acts again.
        h.executor
            .dispatch(command("c1", CommandKind::Grant, "g1", 1));
        assert_eq!(next(&mut h.results).await.0, CommandOutcome::Done);
        assert_eq!(h.provider.calls().len(), 2);

        h.provider.fail_next(ProviderError::denied("no"));
        h.executor
            .dispatch(command("c2", CommandKind::Grant, "g2", 1));
        assert_eq!(next(&mut h.results).await.0, CommandOutcome::Failed);
        h.executor
            .dispatch(command("c2", CommandKind::Grant, "g2", 1));
        let (outcome, _, message) = next(&mut h.results).await;
        assert_eq!(
            (outcome, message.as_str()),
            (CommandOutcome::Failed, "denied: no")
        );
        assert_eq!(h.provider.calls().len(), 3);

        // A throttled call's own wait goes to the control plane with the result.
        h.provider.fail_next(ProviderError::throttled(
            "rate exceeded",
            Some(Duration::from_secs(90)),
        ));
        h.executor
            .dispatch(command("c3", CommandKind::Grant, "g3", 1));
        let result = next_result(&mut h.results).await;
        assert_eq!(result.outcome(), CommandOutcome::Retry);
        assert_eq!(
            result.retry_after,
            Some(prost_types::Duration {
                seconds: 90,
                nanos: 0
            })
        );
    }

    #[tokio::test]
    async fn screening_refuses_before_acting() {
        let rails = Guardrails {
            deny_permissions: vec!["*admin*".into()],
            ..Guardrails::default()
        };
        let mut h = harness(rails);
        let mut other = command("c1", CommandKind::Grant, "g1", 1);
        other.connector_id = "conn-2".into();
        h.executor.dispatch(other);
        let (outcome, _, message) = next(&mut h.results).await;
        assert_eq!(outcome, CommandOutcome::Refused);
        assert!(message.contains("conn-2"), "{message}");

        let mut unknown = command("c2", CommandKind::Grant, "g1", 1);
        unknown.integration = "aws".into();
        h.executor.dispatch(unknown);
        let (_, _, message) = next(&mut h.results).await;
        assert_eq!(
            message,
            "integration \"aws\" is not served by this connector"
        );

        let mut admin = command("c3", CommandKind::Grant, "g1", 1);
        admin.permission = "db_admin".into();
        h.executor.dispatch(admin);
        let (outcome, _, message) = next(&mut h.results).await;
        assert_eq!(outcome, CommandOutcome::Refused);
        assert!(
            message.starts_with("guardrails.deny_permissions"),
            "{message}"
        );

        let sync = command("c4", CommandKind::Sync, "", 0);
        let order = h.executor.dispatch(sync).expect("a sync order");
        assert_eq!(order.command_id, "c4");
        assert!(h.provider.calls().is_empty());
        h.executor.idle().await;
    }
}
