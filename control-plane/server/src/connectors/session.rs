//! One connector's stream on this server, from Welcome to its end.
//!
//! The session claims the connector's commands from the outbox (a claim is a lease in the
//! database, so with several servers or several connectors of one integration each command goes to
//! one of them), signs and sends them, and turns results into grant state. It also takes in sync
//! pages, renews the certificate, and keeps both sides honest with heartbeats: a connector silent
//! for three intervals is gone, and its claims go back for another connector.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use latch_proto::v1::{
    Command, CommandKind, CommandOutcome, CommandResult as ResultMessage, Goodbye, Heartbeat,
    OpenStreamRequest, OpenStreamResponse, RenewRequest, RenewResponse, open_stream_request,
    open_stream_response,
};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::hub::{Close, Hub};
use super::inventory::SyncIntake;
use crate::api::convert::timestamp;
use crate::store::{AttemptOutcome, ClaimedCommand, CommandResult, ConnectorRecord, Retry};

/// How often a session looks for new commands when nothing woke it.
const POLL: Duration = Duration::from_millis(200);

/// Every how many polls a session looks for an asked-for sync (5 × 200 ms).
const SYNC_LOOKUP_TICKS: u32 = 5;

/// Most inventory pages of one sync stored in one write (a page is up to 1,000 resources).
const PAGES_PER_WRITE: usize = 8;

pub(super) type Outbound = mpsc::Sender<Result<OpenStreamResponse, Status>>;

/// A command sent and not yet answered.
struct InFlight {
    kind: String,
    grant_id: String,
}

/// The state of one stream.
pub(super) struct Session {
    hub: Arc<Hub>,
    connector: ConnectorRecord,
    /// Integrations this stream serves (announced and accepted).
    integrations: Vec<String>,
    outbound: Outbound,
    in_flight: HashMap<String, InFlight>,
    intake: SyncIntake,
    actor: String,
}

/// Why a session ended.
enum End {
    Closed(Close),
    Goodbye,
    PeerGone(String),
    Silent,
}

impl Session {
    pub(super) fn new(
        hub: Arc<Hub>,
        connector: ConnectorRecord,
        integrations: Vec<String>,
        outbound: Outbound,
    ) -> Session {
        let actor = format!("connector:{}", connector.name);
        Session {
            intake: SyncIntake::new(
                hub.clone(),
                integrations.clone(),
                actor.clone(),
                outbound.clone(),
            ),
            hub,
            connector,
            integrations,
            outbound,
            in_flight: HashMap::new(),
            actor,
        }
    }

    fn store(&self) -> &Arc<dyn crate::store::Store> {
        self.hub.lifecycle.store()
    }

    fn heartbeat(&self) -> Duration {
        self.hub.settings.heartbeat
    }

    /// How long a claim lasts without being extended: past it, a dead server's claims go to
    /// another connector.
    fn lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.heartbeat() * 3).unwrap_or(chrono::Duration::seconds(30))
    }

    /// Runs the stream until it ends, then gives back what it had claimed.
    pub(super) async fn run(mut self, mut inbound: Streaming<OpenStreamRequest>) {
        let id = self.connector.id.clone();
        let (number, mut close) = self.hub.register(&id);
        // A new stream of this connector replaces any older one: what the old one claimed is
        // handed out again (the connector remembers what it finished and answers from memory).
        if let Err(err) = self.store().release_claims(&id).await {
            tracing::warn!(error = %err, "releasing an earlier stream's claims failed");
        }
        let end = self.serve(&mut inbound, &mut close).await;
        match &end {
            End::Closed(why) => {
                let reason = match why {
                    Close::Revoked => "the connector was revoked",
                    Close::Replaced => "a newer stream of this connector replaced this one",
                    Close::ShuttingDown | Close::Open => "the server is shutting down",
                };
                let _ = self
                    .outbound
                    .send(Ok(response(open_stream_response::Message::Goodbye(
                        Goodbye {
                            reason: reason.to_string(),
                        },
                    ))))
                    .await;
                tracing::info!(reason, "closed the connector stream");
            }
            End::Goodbye => tracing::info!("the connector said goodbye"),
            End::PeerGone(why) => tracing::info!(reason = %why, "the connector stream ended"),
            End::Silent => tracing::warn!("the connector went silent; ending its stream"),
        }
        // Refused from here on, whatever the connector still sends.
        if let Err(err) = self.store().release_claims(&id).await {
            tracing::warn!(error = %err, "releasing claims failed; they lapse with their lease");
        }
        if !matches!(end, End::Closed(Close::Replaced)) {
            let _ = self
                .store()
                .connector_seen(&id, None, None, Utc::now())
                .await;
        }
        self.hub.unregister(&id, number);
    }

    async fn serve(
        &mut self,
        inbound: &mut Streaming<OpenStreamRequest>,
        close: &mut tokio::sync::watch::Receiver<Close>,
    ) -> End {
        let outbox = self.hub.outbox.clone();
        let mut beat = tokio::time::interval(self.heartbeat());
        let mut poll = tokio::time::interval(POLL);
        let mut last_heard = Instant::now();
        let mut ticks: u32 = 0;
        self.dispatch().await;
        loop {
            tokio::select! {
                message = inbound.message() => match message {
                    Ok(Some(message)) => {
                        last_heard = Instant::now();
                        if let Some(end) = self.receive(message, inbound).await {
                            return end;
                        }
                    }
                    Ok(None) => return End::PeerGone("the connector closed the stream".into()),
                    Err(status) => return End::PeerGone(status.message().to_string()),
                },
                () = outbox.notified() => {
                    self.dispatch().await;
                    self.deliver_syncs().await;
                }
                _ = poll.tick() => {
                    self.dispatch().await;
                    // The outbox's wake-up is missed while the session is busy (a `Notify` keeps
                    // no permit for waiters that were not waiting), so asked-for syncs are also
                    // looked for here, about once a second, not only at the next heartbeat.
                    ticks = ticks.wrapping_add(1);
                    if ticks.is_multiple_of(SYNC_LOOKUP_TICKS) {
                        self.deliver_syncs().await;
                    }
                }
                _ = beat.tick() => {
                    if last_heard.elapsed() > self.heartbeat() * 3 {
                        return End::Silent;
                    }
                    if let Some(end) = self.beat().await {
                        return end;
                    }
                }
                changed = close.changed() => {
                    let why = if changed.is_ok() { close.borrow().clone() } else { Close::ShuttingDown };
                    return End::Closed(why);
                }
            }
        }
    }

    /// The heartbeat: tell the connector we are here, keep claims and liveness fresh, notice a
    /// revocation made on another server, and deliver an asked-for sync.
    async fn beat(&mut self) -> Option<End> {
        let now = Utc::now();
        let heartbeat = response(open_stream_response::Message::Heartbeat(Heartbeat {
            sent_at: Some(timestamp(now)),
        }));
        if self.outbound.send(Ok(heartbeat)).await.is_err() {
            return Some(End::PeerGone("the response stream closed".into()));
        }
        let store = self.store().clone();
        let id = &self.connector.id;
        match store.connector(id).await {
            Ok(Some(record)) if record.state == crate::store::ConnectorState::Revoked => {
                return Some(End::Closed(Close::Revoked));
            }
            Ok(None) => return Some(End::Closed(Close::Revoked)),
            Ok(Some(_)) => {}
            // Fail closed would drop every stream on a database blip; the claims lapse anyway.
            Err(err) => tracing::warn!(error = %err, "checking the connector's state failed"),
        }
        let until = now + self.lease();
        let _ = store.connector_seen(id, None, Some(until), now).await;
        let _ = store.extend_claims(id, until).await;
        self.deliver_syncs().await;
        None
    }

    /// Sends a sync someone asked for (`latch integrations sync`), if one of this stream's
    /// integrations has one waiting and no other server took it first.
    async fn deliver_syncs(&mut self) {
        if self.integrations.is_empty() {
            return;
        }
        match self.store().take_sync_request(&self.integrations).await {
            Ok(Some((integration, command_id))) => {
                tracing::info!(%integration, %command_id, "sending an asked-for sync");
                self.send_sync(&integration, &command_id).await;
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "looking for asked-for syncs failed"),
        }
    }

    /// Claims what fits in the window and sends it, signed.
    async fn dispatch(&mut self) {
        let window = self.hub.settings.window as usize;
        if self.in_flight.len() >= window || self.integrations.is_empty() {
            return;
        }
        let now = Utc::now();
        let claimed = match self
            .store()
            .claim_commands(
                &self.connector.id,
                &self.integrations,
                now + self.lease(),
                now,
                (window - self.in_flight.len()) as u32,
            )
            .await
        {
            Ok(claimed) => claimed,
            Err(err) => {
                tracing::warn!(error = %err, "claiming commands failed");
                return;
            }
        };
        for claimed in claimed {
            let command = self.command_of(&claimed, now);
            let signed = self.hub.signer.sign(&command);
            self.in_flight.insert(
                command.id.clone(),
                InFlight {
                    kind: claimed.command.kind.clone(),
                    grant_id: claimed.command.grant_id.clone(),
                },
            );
            tracing::debug!(command_id = %command.id, kind = %claimed.command.kind, attempt = claimed.attempt, "sending a command");
            if self
                .outbound
                .send(Ok(response(open_stream_response::Message::Command(signed))))
                .await
                .is_err()
            {
                return;
            }
        }
    }

    fn command_of(&self, claimed: &ClaimedCommand, now: chrono::DateTime<Utc>) -> Command {
        let record = &claimed.command;
        let text = |key: &str| {
            record
                .payload
                .get(key)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let kind = match record.kind.as_str() {
            "revoke" => CommandKind::Revoke,
            _ => CommandKind::Grant,
        };
        Command {
            id: record.id.clone(),
            kind: kind as i32,
            connector_id: self.connector.id.clone(),
            integration: record.integration.clone(),
            grant_id: record.grant_id.clone(),
            generation: record.generation.max(0) as u64,
            identity: text("identity"),
            resource_id: text("resource_id"),
            resource_type: text("resource_type"),
            permission: text("permission"),
            expires_at: claimed.expires_at.map(timestamp),
            duration_secs: record
                .payload
                .get("duration_secs")
                .and_then(|v| v.as_u64())
                .unwrap_or_default(),
            issued_at: Some(timestamp(now)),
            attempt: claimed.attempt.max(1) as u32,
        }
    }

    async fn send_sync(&mut self, integration: &str, command_id: &str) {
        let now = Utc::now();
        let command = Command {
            id: command_id.to_string(),
            kind: CommandKind::Sync as i32,
            connector_id: self.connector.id.clone(),
            integration: integration.to_string(),
            issued_at: Some(timestamp(now)),
            attempt: 1,
            ..Command::default()
        };
        let signed = self.hub.signer.sign(&command);
        let _ = self
            .outbound
            .send(Ok(response(open_stream_response::Message::Command(signed))))
            .await;
    }

    /// Handles a message from the connector, and with an inventory page, the pages of the same
    /// sync already received behind it: they are stored in one write. `Some` ends the stream.
    async fn receive(
        &mut self,
        first: OpenStreamRequest,
        inbound: &mut Streaming<OpenStreamRequest>,
    ) -> Option<End> {
        use open_stream_request::Message;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            let Some(Message::InventoryPage(page)) = message.message else {
                if let Some(end) = self.handle(message).await {
                    return Some(end);
                }
                continue;
            };
            let mut pages = vec![page];
            let mut ended = None;
            while pages.len() < PAGES_PER_WRITE {
                // Only what has already arrived: a zero timeout polls the stream once.
                match tokio::time::timeout(Duration::ZERO, inbound.message()).await {
                    Err(_) => break,
                    Ok(Ok(Some(OpenStreamRequest {
                        message: Some(Message::InventoryPage(more)),
                    }))) if more.sync_id == pages[0].sync_id => pages.push(more),
                    Ok(Ok(Some(other))) => {
                        next = Some(other);
                        break;
                    }
                    Ok(Ok(None)) => {
                        ended = Some(End::PeerGone("the connector closed the stream".into()));
                        break;
                    }
                    Ok(Err(status)) => {
                        ended = Some(End::PeerGone(status.message().to_string()));
                        break;
                    }
                }
            }
            self.intake.pages(pages).await;
            if ended.is_some() {
                return ended;
            }
        }
        None
    }

    /// Handles one message from the connector; `Some` ends the stream.
    async fn handle(&mut self, message: OpenStreamRequest) -> Option<End> {
        use open_stream_request::Message;
        match message.message? {
            Message::Hello(_) => {
                tracing::warn!("a second hello on one stream; ignored");
            }
            Message::Heartbeat(_) => {}
            Message::Result(result) => self.record_result(result).await,
            Message::InventoryPage(page) => self.intake.pages(vec![page]).await,
            Message::IdentityPage(page) => self.intake.identity_page(page),
            Message::SyncDone(done) => self.intake.done(done).await,
            Message::Renew(renew) => return self.renew(renew).await,
            Message::Goodbye(goodbye) => {
                tracing::info!(reason = %goodbye.reason, "goodbye from the connector");
                return Some(End::Goodbye);
            }
        }
        None
    }

    async fn record_result(&mut self, result: ResultMessage) {
        // Only results for what this stream sent count: a connector cannot settle commands of
        // integrations it does not serve.
        let Some(sent) = self.in_flight.remove(&result.command_id) else {
            tracing::warn!(command_id = %result.command_id, "a result for a command this stream did not send; ignored");
            return;
        };
        let outcome = CommandOutcome::try_from(result.outcome).unwrap_or(CommandOutcome::Failed);
        let label = match outcome {
            CommandOutcome::Done => "done",
            CommandOutcome::Retry => "retry",
            CommandOutcome::Refused => "refused",
            CommandOutcome::Failed | CommandOutcome::Unspecified => "failed",
        };
        metrics::counter!("latch_connector_commands_total", "kind" => sent.kind.clone(), "outcome" => label)
            .increment(1);
        let store = self.store().clone();
        let now = Utc::now();
        let id = &result.command_id;
        let message = if result.message.is_empty() {
            format!("the connector reported {label}")
        } else {
            result.message.clone()
        };
        let written = match outcome {
            CommandOutcome::Done => {
                let done = match result.credentials {
                    // Only a grant makes a login; credentials on anything else are dropped.
                    Some(issued) if sent.kind == "grant" => CommandResult::DoneWithCredentials(
                        self.hub.vault.seal(&sent.grant_id, &issued.into()),
                    ),
                    _ => CommandResult::Done,
                };
                store
                    .complete_command(id, &done, &self.actor, now)
                    .await
                    .map(|()| None)
            }
            CommandOutcome::Refused if sent.kind == "grant" => store
                .complete_command(
                    id,
                    &CommandResult::Failed(format!("refused by the connector: {message}")),
                    &self.actor,
                    now,
                )
                .await
                .map(|()| None),
            _ => store
                .fail_attempt(
                    id,
                    &message,
                    match (outcome, result.retry_after) {
                        (CommandOutcome::Retry, Some(wait)) => std::time::Duration::try_from(wait)
                            .map_or(Retry::Backoff, Retry::AtLeast),
                        (CommandOutcome::Retry, None) => Retry::Backoff,
                        _ => Retry::Never,
                    },
                    &self.hub.settings.retry,
                    &self.actor,
                    now,
                )
                .await
                .map(Some),
        };
        match written {
            Ok(Some(AttemptOutcome::RevokeFailed { next_at })) => {
                metrics::counter!("latch_grants_revoke_failed_total").increment(1);
                tracing::error!(command_id = %id, %next_at, error = %message, "a revoke failed for good; it is tried again hourly");
            }
            Ok(Some(AttemptOutcome::Retrying { at })) => {
                tracing::info!(command_id = %id, %at, error = %message, "a command failed; retrying");
            }
            Ok(_) => {}
            Err(err) => {
                // The claim lapses and the command goes out again; the connector answers from
                // its journal.
                tracing::error!(command_id = %id, error = %err, "recording a command result failed");
            }
        }
    }

    async fn renew(&mut self, renew: RenewRequest) -> Option<End> {
        let now = Utc::now();
        let issued = match self.hub.ca.issue_client(
            &renew.csr_pem,
            &self.connector.id,
            now,
            self.hub.settings.cert_ttl,
        ) {
            Ok(issued) => issued,
            Err(err) => {
                tracing::warn!(error = %err, "refused a certificate renewal");
                let _ = self.outbound.send(Err(Status::invalid_argument(err))).await;
                return Some(End::PeerGone("bad renewal request".into()));
            }
        };
        if let Err(err) = self
            .store()
            .record_certificate(&self.connector.id, issued.not_after, now)
            .await
        {
            tracing::error!(error = %err, "recording a renewed certificate failed");
            return None;
        }
        tracing::info!(not_after = %issued.not_after, "renewed the connector's certificate");
        let renewed = RenewResponse {
            certificate_pem: issued.pem,
            ca_bundle_pem: self.hub.ca.cert_pem().to_string(),
            not_after: Some(timestamp(issued.not_after)),
        };
        let _ = self
            .outbound
            .send(Ok(response(open_stream_response::Message::Renewed(
                renewed,
            ))))
            .await;
        None
    }
}

pub(super) fn response(message: open_stream_response::Message) -> OpenStreamResponse {
    OpenStreamResponse {
        message: Some(message),
    }
}
