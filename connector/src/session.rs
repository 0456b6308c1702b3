//! One stream to the control plane, from `Hello` to its end: heartbeats both ways (a server silent
//! for three intervals is dead), signed commands down, results and inventory up, certificate
//! renewal at half-life, and a drain with `Goodbye` on shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use latch_proto::connector_protocol::{DIGEST_PAGES, MAX_PROTOCOL, MIN_PROTOCOL};
use latch_proto::v1 as pb;
use latch_proto::v1::connector_service_client::ConnectorServiceClient;
use latch_proto::v1::open_stream_request::Message as Up;
use latch_proto::v1::open_stream_response::Message as Down;
use rcgen::KeyPair;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::Streaming;
use tracing::Instrument;

use crate::cert;
use crate::digest_pages::AnswerRoutes;
use crate::executor::SyncOrder;
use crate::provider::Capability;
use crate::runtime::{Context, Integration};
use crate::signing::verify_command;
use crate::state_dir::Credentials;
use crate::sync::full_sync;
use crate::tls;

/// How long the server has to answer `Hello`.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(10);
/// Used when `Welcome` names no heartbeat interval.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);
/// Messages waiting to go up the stream. Small: a sync waits here rather than buffering pages.
const OUTBOUND_CAPACITY: usize = 16;
/// How long to wait for a `RenewResponse` before asking again.
const RENEW_RETRY: Duration = Duration::from_secs(300);
/// After `Goodbye`, how long the server has to close its side.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How a stream ended.
#[derive(Debug)]
pub(crate) enum SessionEnd {
    /// Shutdown was requested and the stream was drained.
    Shutdown,
    /// The stream broke, or could not be opened; reconnect.
    Lost(String),
}

/// Opens one stream and runs it to its end.
pub(crate) async fn run(
    context: &Arc<Context>,
    results: &mut mpsc::Receiver<pb::CommandResult>,
    shutdown: &mut watch::Receiver<bool>,
) -> SessionEnd {
    let span = tracing::info_span!("stream", connector_id = %context.info.connector_id);
    async {
        let opened = tokio::select! {
            opened = open(context) => opened,
            () = stopped(shutdown) => return SessionEnd::Shutdown,
        };
        match opened {
            Ok(stream) => stream.serve(results, shutdown).await,
            Err(reason) => SessionEnd::Lost(reason),
        }
    }
    .instrument(span)
    .await
}

struct Stream {
    context: Arc<Context>,
    outbound: mpsc::Sender<pb::OpenStreamRequest>,
    inbound: Streaming<pb::OpenStreamResponse>,
    heartbeat: Duration,
    renew_at: Instant,
    pending_key: Option<KeyPair>,
    syncs: JoinSet<(String, Instant, bool)>,
    /// With protocol 2, where the answers to the syncs' digest pages go.
    answers: Option<AnswerRoutes>,
}

/// Dials, says `Hello` and waits for `Welcome`.
async fn open(context: &Arc<Context>) -> Result<Stream, String> {
    let credentials = context.state.credentials().map_err(|err| err.to_string())?;
    let renew_at = renewal_deadline(&credentials);
    let config = tls::connector_config(&credentials).map_err(|err| err.to_string())?;
    let channel = tls::connect(&context.config.server, config)
        .await
        .map_err(|err| err.to_string())?;
    let (outbound, rx) = mpsc::channel(OUTBOUND_CAPACITY);
    // Queued before the call: the server may wait for it before answering with headers.
    outbound
        .send(up(Up::Hello(hello(context))))
        .await
        .map_err(|_| "the outbound stream closed before hello".to_string())?;
    let handshake = async {
        let response = ConnectorServiceClient::new(channel)
            .open_stream(ReceiverStream::new(rx))
            .await
            .map_err(|status| {
                format!(
                    "the server refused the stream: {:?}: {}",
                    status.code(),
                    status.message()
                )
            })?;
        let mut inbound = response.into_inner();
        match inbound.message().await {
            Ok(Some(pb::OpenStreamResponse {
                message: Some(Down::Welcome(welcome)),
            })) => Ok((inbound, welcome)),
            Ok(Some(pb::OpenStreamResponse {
                message: Some(Down::Goodbye(goodbye)),
            })) => Err(format!("the server said goodbye: {}", goodbye.reason)),
            Ok(Some(other)) => Err(format!("expected welcome, got {other:?}")),
            Ok(None) => Err("the server closed the stream before welcome".to_string()),
            Err(status) => Err(format!(
                "the stream failed before welcome: {:?}: {}",
                status.code(),
                status.message()
            )),
        }
    };
    let (inbound, welcome) = tokio::time::timeout(WELCOME_TIMEOUT, handshake)
        .await
        .map_err(|_| {
            format!(
                "no welcome within {}",
                humantime::format_duration(WELCOME_TIMEOUT)
            )
        })??;
    if !(MIN_PROTOCOL..=MAX_PROTOCOL).contains(&welcome.protocol) {
        return Err(format!(
            "the server chose protocol {}; this connector speaks {MIN_PROTOCOL}..={MAX_PROTOCOL}",
            welcome.protocol
        ));
    }
    if welcome.connector_id != context.info.connector_id {
        tracing::warn!(welcome_connector_id = %welcome.connector_id, "the server knows this connector by another id");
    }
    for refused in &welcome.refused_integrations {
        tracing::warn!(integration = %refused.name, reason = %refused.reason, "integration refused by the server");
    }
    let heartbeat = heartbeat_interval(welcome.heartbeat_interval);
    tracing::info!(
        server_version = %welcome.server_version,
        protocol = welcome.protocol,
        heartbeat_secs = heartbeat.as_secs_f64(),
        "stream open"
    );
    Ok(Stream {
        context: context.clone(),
        outbound,
        inbound,
        heartbeat,
        renew_at,
        pending_key: None,
        syncs: JoinSet::new(),
        answers: (welcome.protocol >= DIGEST_PAGES).then(AnswerRoutes::default),
    })
}

impl Stream {
    async fn serve(
        mut self,
        results: &mut mpsc::Receiver<pb::CommandResult>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> SessionEnd {
        let mut last_heard = Instant::now();
        let start = tokio::time::Instant::now();
        let mut heartbeat = tokio::time::interval_at(start + self.heartbeat, self.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let sync_interval = self.context.config.sync_interval;
        let mut sync_tick = tokio::time::interval_at(start + sync_interval, sync_interval);
        sync_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let renewal = tokio::time::sleep_until(self.renew_at.into());
        tokio::pin!(renewal);

        self.start_due_syncs();
        loop {
            tokio::select! {
                // Reading first: a burst of work must never look like a silent server.
                biased;
                () = stopped(shutdown) => return self.drain(results).await,
                message = self.inbound.message() => match message {
                    Ok(Some(message)) => {
                        last_heard = Instant::now();
                        if let Some(end) = self.handle(message, &mut renewal).await {
                            return end;
                        }
                    }
                    Ok(None) => return SessionEnd::Lost("the server closed the stream".into()),
                    Err(status) => {
                        return SessionEnd::Lost(format!(
                            "stream error: {:?}: {}",
                            status.code(),
                            status.message()
                        ));
                    }
                },
                Some(result) = results.recv() => {
                    if self.outbound.send(up(Up::Result(result))).await.is_err() {
                        return SessionEnd::Lost("the outbound stream closed".into());
                    }
                }
                _ = heartbeat.tick() => {
                    let silent = last_heard.elapsed();
                    if silent >= self.heartbeat * 3 {
                        return SessionEnd::Lost(format!(
                            "nothing from the server for {}: the peer is dead",
                            humantime::format_duration(Duration::from_secs(silent.as_secs()))
                        ));
                    }
                    let beat = Up::Heartbeat(pb::Heartbeat { sent_at: Some(SystemTime::now().into()) });
                    if self.outbound.send(up(beat)).await.is_err() {
                        return SessionEnd::Lost("the outbound stream closed".into());
                    }
                }
                _ = sync_tick.tick() => self.start_due_syncs(),
                () = &mut renewal => {
                    self.request_renewal().await;
                    renewal.as_mut().reset((Instant::now() + RENEW_RETRY).into());
                }
                Some(joined) = self.syncs.join_next(), if !self.syncs.is_empty() => {
                    if let Ok((name, started, true)) = joined {
                        self.context
                            .last_full_sync
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(name, started);
                    }
                }
            }
        }
    }

    /// Handles one message from the server; `Some` ends the stream.
    async fn handle(
        &mut self,
        message: pb::OpenStreamResponse,
        renewal: &mut std::pin::Pin<&mut tokio::time::Sleep>,
    ) -> Option<SessionEnd> {
        match message.message {
            Some(Down::Command(signed)) => {
                match verify_command(&self.context.command_key, &signed) {
                    Ok(command) => {
                        if let Some(order) = self.context.executor.dispatch(command) {
                            self.start_sync(order);
                        }
                    }
                    // Nothing is applied and nothing is answered: the bytes cannot be trusted to
                    // name a real command.
                    Err(err) => tracing::warn!(error = %err, "command dropped"),
                }
            }
            Some(Down::Renewed(renewed)) => {
                if let Some(next) = self.store_renewal(renewed).await {
                    renewal.as_mut().reset(next.into());
                }
            }
            Some(Down::Goodbye(goodbye)) => {
                return Some(SessionEnd::Lost(format!(
                    "the server said goodbye: {}",
                    goodbye.reason
                )));
            }
            Some(Down::ResourcesWanted(wanted)) => match &self.answers {
                Some(routes) => routes.deliver(wanted),
                None => {
                    tracing::debug!("ignoring resources wanted: this stream has no digest pages")
                }
            },
            Some(Down::Heartbeat(_)) => {}
            Some(Down::Welcome(_)) => tracing::debug!("ignoring a second welcome"),
            None => tracing::debug!("ignoring an empty message"),
        }
        None
    }

    /// Starts a full sync of every syncable integration not synced within the interval.
    fn start_due_syncs(&mut self) {
        let interval = self.context.config.sync_interval;
        let integrations = self.context.integrations.clone();
        for integration in integrations {
            if !integration.capabilities.contains(&Capability::Sync) {
                continue;
            }
            let recent = self
                .context
                .last_full_sync
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&integration.name)
                // A tenth of slack, so a sync that started just after the last tick still counts.
                .is_some_and(|started| started.elapsed() < interval.mul_f64(0.9));
            if recent {
                continue;
            }
            let Ok(guard) = integration.sync_lock.clone().try_lock_owned() else {
                tracing::debug!(integration = %integration.name, "a sync is still running; skipping this one");
                continue;
            };
            self.spawn_sync(integration, None, Some(guard));
        }
    }

    /// A sync the control plane asked for: waits for a running one to finish, then runs.
    fn start_sync(&mut self, order: SyncOrder) {
        self.spawn_sync(order.integration, Some(order.command_id), None);
    }

    fn spawn_sync(
        &mut self,
        integration: Arc<Integration>,
        command_id: Option<String>,
        guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    ) {
        let outbound = self.outbound.clone();
        let answers = self.answers.clone();
        self.syncs.spawn(
            async move {
                let _guard = match guard {
                    Some(guard) => guard,
                    None => integration.sync_lock.clone().lock_owned().await,
                };
                let started = Instant::now();
                let name = integration.name.clone();
                let completed = full_sync(integration, outbound, command_id, answers).await;
                (name, started, completed)
            }
            .in_current_span(),
        );
    }

    /// Sends a `RenewRequest` for a fresh key, kept until the answer comes.
    async fn request_renewal(&mut self) {
        match cert::new_key_and_csr() {
            Ok((key, csr_pem)) => {
                tracing::info!("renewing the certificate");
                self.pending_key = Some(key);
                let _ = self
                    .outbound
                    .send(up(Up::Renew(pb::RenewRequest { csr_pem })))
                    .await;
            }
            Err(err) => tracing::error!(error = %err, "cannot make a key for renewal"),
        }
    }

    /// Stores a renewed certificate with its key; returns when the next renewal is due.
    async fn store_renewal(&mut self, renewed: pb::RenewResponse) -> Option<Instant> {
        let Some(key) = self.pending_key.take() else {
            tracing::warn!("ignoring a renewed certificate nobody asked for");
            return None;
        };
        match cert::certifies(&renewed.certificate_pem, &key) {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!(
                    "the renewed certificate is not for the key sent; keeping the old one"
                );
                return None;
            }
            Err(err) => {
                tracing::error!(error = %err, "the renewed certificate is unreadable; keeping the old one");
                return None;
            }
        }
        let ca_pem = if renewed.ca_bundle_pem.contains("BEGIN CERTIFICATE") {
            renewed.ca_bundle_pem
        } else {
            match self.context.state.credentials() {
                Ok(current) => current.ca_pem,
                Err(err) => {
                    tracing::error!(error = %err, "cannot read the current CA bundle; keeping the old certificate");
                    return None;
                }
            }
        };
        let credentials = Credentials {
            key_pem: key.serialize_pem(),
            cert_pem: renewed.certificate_pem,
            ca_pem,
        };
        let next = renewal_deadline(&credentials);
        let state = self.context.state.clone();
        let saved = tokio::task::spawn_blocking(move || state.save_renewed(&credentials)).await;
        match saved {
            Ok(Ok(())) => {
                tracing::info!("certificate renewed; the next connection uses it");
                Some(next)
            }
            Ok(Err(err)) => {
                tracing::error!(error = %err, "cannot store the renewed certificate");
                None
            }
            Err(err) => {
                tracing::error!(error = %err, "storing the renewed certificate did not finish");
                None
            }
        }
    }

    /// Stops taking commands, lets running ones finish and report (within the grace period),
    /// says goodbye and closes the stream.
    async fn drain(mut self, results: &mut mpsc::Receiver<pb::CommandResult>) -> SessionEnd {
        tracing::info!("shutting down: finishing in-flight commands");
        self.syncs.abort_all();
        let grace = self.context.config.shutdown_grace;
        let outbound = self.outbound.clone();
        let executor = self.context.executor.clone();
        let finish = async {
            let idle = executor.idle();
            tokio::pin!(idle);
            loop {
                tokio::select! {
                    biased;
                    Some(result) = results.recv() => {
                        let _ = outbound.send(up(Up::Result(result))).await;
                    }
                    () = &mut idle => break,
                }
            }
            while let Ok(result) = results.try_recv() {
                let _ = outbound.send(up(Up::Result(result))).await;
            }
        };
        if tokio::time::timeout(grace, finish).await.is_err() {
            tracing::warn!("in-flight commands did not finish within the shutdown grace period");
        }
        let goodbye = Up::Goodbye(pb::Goodbye {
            reason: "shutting down".to_string(),
        });
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.outbound.send(up(goodbye))).await;
        drop(outbound);
        drop(self.outbound);
        // Ending our side flushes what is queued; wait (briefly) for the server to end its side,
        // so nothing is cut off when the process exits.
        let mut inbound = self.inbound;
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            while let Ok(Some(_)) = inbound.message().await {}
        })
        .await;
        tracing::info!("stream closed");
        SessionEnd::Shutdown
    }
}

/// Resolves once shutdown is requested (or its sender is gone). Returns nothing, so no borrow of
/// the watch value lives across an await and the future stays `Send`.
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

fn up(message: Up) -> pb::OpenStreamRequest {
    pb::OpenStreamRequest {
        message: Some(message),
    }
}

fn hello(context: &Context) -> pb::Hello {
    pb::Hello {
        min_protocol: MIN_PROTOCOL,
        max_protocol: MAX_PROTOCOL,
        version: env!("CARGO_PKG_VERSION").to_string(),
        integrations: context
            .integrations
            .iter()
            .map(|integration| pb::IntegrationAnnouncement {
                name: integration.name.clone(),
                kind: integration.kind.clone(),
                capabilities: integration
                    .capabilities
                    .iter()
                    .map(|c| c.as_str().to_string())
                    .collect(),
            })
            .collect(),
    }
}

/// The interval the server asked for, kept between one second and ten minutes.
fn heartbeat_interval(interval: Option<prost_types::Duration>) -> Duration {
    interval
        .and_then(|d| Duration::try_from(d).ok())
        .filter(|d| !d.is_zero())
        .map_or(DEFAULT_HEARTBEAT, |d| {
            d.clamp(Duration::from_secs(1), Duration::from_secs(600))
        })
}

/// When to renew, as an `Instant`: now if the certificate is unreadable or already past it.
fn renewal_deadline(credentials: &Credentials) -> Instant {
    match cert::validity(&credentials.cert_pem) {
        Ok(validity) => {
            let wait = validity
                .renew_at()
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            tracing::debug!(
                renew_at = %humantime::format_rfc3339_seconds(validity.renew_at()),
                "certificate renewal scheduled"
            );
            // Far-future deadlines are capped; the stream will have been reopened long before.
            Instant::now() + wait.min(Duration::from_secs(365 * 86_400))
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot read cert.pem's validity; renewing now");
            Instant::now()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heartbeat_interval_comes_from_welcome_within_bounds() {
        let d = |seconds| Some(prost_types::Duration { seconds, nanos: 0 });
        assert_eq!(heartbeat_interval(d(5)), Duration::from_secs(5));
        assert_eq!(heartbeat_interval(None), DEFAULT_HEARTBEAT);
        assert_eq!(heartbeat_interval(d(0)), DEFAULT_HEARTBEAT);
        assert_eq!(heartbeat_interval(d(-3)), DEFAULT_HEARTBEAT);
        assert_eq!(heartbeat_interval(d(86_400)), Duration::from_secs(600));
    }
}
