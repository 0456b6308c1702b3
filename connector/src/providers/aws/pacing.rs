//! Pacing and retries for the AWS calls the provider makes many of, one piece of code for every
//! service.
//!
//! A [`Pacer`] spaces the calls to one service evenly at its [`Quota`] (a token bucket holding
//! one token, so no second ever holds more calls than the quota, even after a pause), and backs
//! off with bounded full-jitter exponential delays on throttling and transient errors. Every
//! attempt takes a token, retries included, so retrying cannot push the rate over the quota. The SDK's own retries are off for the clients
//! whose every call goes through a pacer (Organizations, the tagging API, SSO Admin; see
//! [`super::clients`]), so the rate holds for every request those clients send.
//!
//! **Quotas** (AWS applies them per account, shared by everything that calls in it; a pacer
//! keeps this connector's own share within them, and the backoff copes with the others'):
//! - IAM Identity Center: 20 calls per second. The Identity Center quotas page: "a collective
//!   throttle maximum of 20 transactions per second".
//! - Resource Groups Tagging API: 15 per second. The Tag Editor quotas page: GetResources at a
//!   "maximum of 15 calls per second", not adjustable.
//! - Organizations: 5 per second. The only rate found for it is ConductorOne's
//!   baton-aws note of 10 per second with bursts of 15 for ListTagsForResource; AWS's
//!   Organizations API reference only says TooManyRequestsException means "too many requests
//!   in too short a period of time", and large organizations see it often. The management
//!   account shares this quota with every other tool that reads the organization, so the
//!   connector takes half.
//! - IAM reads (ListRoles, ListRoleTags, ListAccountAliases): 10 per second. IAM publishes no
//!   request rate; this is a cautious guess, and the backoff corrects it.
//!
//! **Paging.** [`Cursor`] follows a listing's next-page tokens, so that each page is its own
//! paced and retried call (the SDK's paginators send the next request by themselves, and end
//! the listing at the first error instead of retrying that page).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_sts::config::http::HttpResponse;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};

use super::errors::classify;
use crate::backoff::Backoff;
use crate::provider::ProviderError;
use crate::rate_limit::RateLimiter;

/// A service's request rate, in calls per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quota {
    pub per_second: u32,
}

impl Quota {
    pub(crate) const IDENTITY_CENTER: Quota = Quota { per_second: 20 };
    pub(crate) const TAGGING: Quota = Quota { per_second: 15 };
    pub(crate) const ORGANIZATIONS: Quota = Quota { per_second: 5 };
    pub(crate) const IAM: Quota = Quota { per_second: 10 };
    /// So high it never waits: the benchmark's baseline, the same calls without pacing.
    pub(crate) const UNLIMITED: Quota = Quota {
        per_second: 1_000_000,
    };
}

/// How often and how patiently a failed call is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retries {
    /// Attempts per call, the first included.
    pub attempts: u32,
    /// The first backoff's ceiling; it doubles per retry up to `cap`.
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Retries {
    /// Eight attempts over about 23 seconds at the ceilings (0.2 s doubling to 10 s): long
    /// enough for a throttled account to recover, short enough that a sync or a grant fails
    /// while its command can still be retried by the control plane.
    fn default() -> Self {
        Self {
            attempts: 8,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(10),
        }
    }
}

/// What a pacer needs to know about a failed attempt.
pub(crate) trait Failure {
    /// Whether the same call may succeed if tried again.
    fn is_retryable(&self) -> bool;
    /// Whether the service asked for a slower pace (counted apart).
    fn is_throttling(&self) -> bool;
    /// The least wait the service asked for, if it said.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
    /// The error the caller gets after `attempts` attempts.
    fn into_error(self, attempts: u32) -> ProviderError;
}

impl Failure for ProviderError {
    fn is_retryable(&self) -> bool {
        ProviderError::is_retryable(self)
    }

    fn is_throttling(&self) -> bool {
        matches!(self, ProviderError::Throttled { .. })
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    fn into_error(self, _attempts: u32) -> ProviderError {
        self
    }
}

/// Attempts a pacer made and how many of them were throttled, since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub attempts: u64,
    pub throttled: u64,
}

impl Counts {
    /// What happened between `earlier` and `self`.
    pub(crate) fn since(self, earlier: Counts) -> Counts {
        Counts {
            attempts: self.attempts.saturating_sub(earlier.attempts),
            throttled: self.throttled.saturating_sub(earlier.throttled),
        }
    }
}

/// The calls to one service: paced at its quota, retried with backoff.
pub(crate) struct Pacer {
    service: &'static str,
    quota: Quota,
    limiter: RateLimiter,
    retries: Retries,
    attempts: AtomicU64,
    throttled: AtomicU64,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("service", &self.service)
            .field("quota", &self.quota)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

impl Pacer {
    pub(crate) fn new(service: &'static str, quota: Quota, retries: Retries) -> Self {
        Self {
            service,
            quota,
            limiter: RateLimiter::with_burst(quota.per_second, 1),
            retries,
            attempts: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
        }
    }

    pub(crate) fn service(&self) -> &'static str {
        self.service
    }

    pub(crate) fn counts(&self) -> Counts {
        Counts {
            attempts: self.attempts.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
        }
    }

    /// Runs `attempt` until it succeeds, fails for good or runs out of attempts, taking a
    /// token before each try and backing off after each retryable failure.
    pub(crate) async fn call<T, E, F, Fut>(&self, mut attempt: F) -> Result<T, ProviderError>
    where
        E: Failure,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut backoff = Backoff::new(self.retries.base, self.retries.cap);
        let mut tried = 0;
        loop {
            self.limiter.acquire().await;
            self.attempts.fetch_add(1, Ordering::Relaxed);
            tried += 1;
            let failure = match attempt().await {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            if failure.is_throttling() {
                self.throttled.fetch_add(1, Ordering::Relaxed);
            }
            if !failure.is_retryable() || tried >= self.retries.attempts {
                return Err(failure.into_error(tried));
            }
            let delay = backoff
                .next_delay()
                .max(failure.retry_after().unwrap_or_default());
            tracing::debug!(
                service = self.service,
                attempt = tried,
                throttled = failure.is_throttling(),
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "aws call failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// [`Pacer::call`] for one SDK request: `send` sends it again for every attempt, and its
    /// errors are classified with `what` (a phrase for the message, e.g. "listing IAM roles").
    pub(crate) async fn send<T, E, F, Fut>(
        &self,
        what: &str,
        mut send: F,
    ) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.call(|| {
            let sent = send();
            async move { sent.await.map_err(|err| classify(err, what)) }
        })
        .await
    }
}

/// The pacers of the services the inventory reads, one per quota. Identity Center's is its own
/// ([`super::assignments::IdentityCenter`]), because grants use it too.
#[derive(Debug)]
pub(crate) struct Pacing {
    pub organizations: Pacer,
    pub tagging: Pacer,
    pub iam: Pacer,
}

impl Pacing {
    /// At the quotas above.
    pub(crate) fn published() -> Self {
        Self::at(Quota::ORGANIZATIONS, Quota::TAGGING, Quota::IAM)
    }

    /// Without pacing, for the benchmark's baseline (tests only turn it on).
    pub(crate) fn unlimited() -> Self {
        Self::at(Quota::UNLIMITED, Quota::UNLIMITED, Quota::UNLIMITED)
    }

    fn at(organizations: Quota, tagging: Quota, iam: Quota) -> Self {
        Self {
            organizations: Pacer::new("organizations", organizations, Retries::default()),
            tagging: Pacer::new("tagging", tagging, Retries::default()),
            iam: Pacer::new("iam", iam, Retries::default()),
        }
    }

    pub(crate) fn pacers(&self) -> [&Pacer; 3] {
        [&self.organizations, &self.tagging, &self.iam]
    }
}

/// Where a paged listing stands. AWS answers each page with a token for the next, and with
/// none (or an empty one) on the last.
#[derive(Debug, Default)]
pub(crate) struct Cursor {
    token: Option<String>,
    finished: bool,
}

impl Cursor {
    pub(crate) fn finished(&self) -> bool {
        self.finished
    }

    /// The token that asks for the next page; `None` for the first.
    pub(crate) fn token(&self) -> Option<String> {
        self.token.clone()
    }

    /// Moves past a page whose next-page token is `next`. The same token twice also ends the
    /// listing (what the SDK's paginators do), since following it would never end.
    pub(crate) fn advance(&mut self, next: Option<&str>) {
        match next.filter(|token| !token.is_empty()) {
            None => self.finished = true,
            Some(token) if self.token.as_deref() == Some(token) => {
                tracing::warn!(
                    token,
                    "aws returned the same next-page token twice; stopping"
                );
                self.finished = true;
            }
            Some(token) => self.token = Some(token.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use super::*;

    fn fast() -> Retries {
        Retries {
            attempts: 5,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(4),
        }
    }

    fn throttled() -> ProviderError {
        ProviderError::throttled("TooManyRequestsException: Rate exceeded", None)
    }

    /// A scripted service: answers from the queue, then `Ok` once the queue is empty, and
    /// notes when each attempt arrived.
    #[derive(Default)]
    struct Scripted {
        answers: Mutex<VecDeque<Result<u32, ProviderError>>>,
        arrivals: Mutex<Vec<Instant>>,
    }

    impl Scripted {
        fn new(answers: impl IntoIterator<Item = Result<u32, ProviderError>>) -> Arc<Self> {
            Arc::new(Self {
                answers: Mutex::new(answers.into_iter().collect()),
                arrivals: Mutex::default(),
            })
        }

        async fn answer(&self) -> Result<u32, ProviderError> {
            self.arrivals.lock().expect("lock").push(Instant::now());
            self.answers
                .lock()
                .expect("lock")
                .pop_front()
                .unwrap_or(Ok(7))
        }

        fn arrivals(&self) -> Vec<Instant> {
            let mut arrivals = self.arrivals.lock().expect("lock").clone();
            arrivals.sort();
            arrivals
        }
    }

    #[tokio::test]
    async fn a_throttled_call_is_retried_with_backoff_until_it_succeeds() {
        let pacer = Pacer::new("test", Quota::IDENTITY_CENTER, fast());
        let service = Scripted::new([Err(throttled()), Err(throttled()), Ok(42)]);
        let answer = pacer.call(|| service.answer()).await.expect("succeeded");
        assert_eq!(answer, 42);
        assert_eq!(service.arrivals().len(), 3);
        assert_eq!(
            pacer.counts(),
            Counts {
                attempts: 3,
                throttled: 2
            }
        );

        // Transient failures (5xx, timeouts) are retried too, and not counted as throttling.
        let service = Scripted::new([Err(ProviderError::transient("InternalFailure"))]);
        pacer.call(|| service.answer()).await.expect("succeeded");
        assert_eq!(
            pacer.counts(),
            Counts {
                attempts: 5,
                throttled: 2
            }
        );
    }

    #[tokio::test]
    async fn retries_end_with_the_last_error_and_final_errors_are_not_retried() {
        let pacer = Pacer::new("test", Quota::IDENTITY_CENTER, fast());
        let service = Scripted::new((0..10).map(|_| Err(throttled())));
        let err = pacer
            .call(|| service.answer())
            .await
            .expect_err("still throttled");
        assert!(matches!(err, ProviderError::Throttled { .. }), "{err:?}");
        assert_eq!(service.arrivals().len(), fast().attempts as usize);

        for final_error in [
            ProviderError::denied("AccessDeniedException"),
            ProviderError::not_found("AccountNotFoundException"),
            ProviderError::invalid("ValidationException"),
        ] {
            let service = Scripted::new([Err(final_error.clone())]);
            let err = pacer.call(|| service.answer()).await.expect_err("final");
            assert_eq!(err, final_error);
            assert_eq!(service.arrivals().len(), 1, "{final_error:?}");
        }
    }

    #[tokio::test]
    async fn a_wait_the_service_asks_for_is_honoured() {
        let pacer = Pacer::new("test", Quota::IDENTITY_CENTER, fast());
        let service = Scripted::new([Err(ProviderError::throttled(
            "SlowDown",
            Some(Duration::from_millis(150)),
        ))]);
        pacer.call(|| service.answer()).await.expect("succeeded");
        let arrivals = service.arrivals();
        assert!(
            arrivals[1] - arrivals[0] >= Duration::from_millis(150),
            "{:?}",
            arrivals[1] - arrivals[0]
        );
    }

    /// Four callers at once, every third attempt throttled: all succeed, and the attempts,
    /// retries included, keep to 50 per second, evenly spaced.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_rate_holds_across_callers_and_retries() {
        const RATE: u32 = 50;
        let pacer = Arc::new(Pacer::new("test", Quota { per_second: RATE }, fast()));
        let answers = (0..60).map(|i| if i % 3 == 2 { Err(throttled()) } else { Ok(i) });
        let service = Scripted::new(answers);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (pacer, service) = (pacer.clone(), service.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..10 {
                    pacer.call(|| service.answer()).await.expect("succeeded");
                }
            }));
        }
        for task in tasks {
            task.await.expect("task");
        }
        let arrivals = service.arrivals();
        let counts = pacer.counts();
        assert_eq!(counts.attempts as usize, arrivals.len());
        assert!(counts.throttled >= 10, "{counts:?}");
        assert_eq!(arrivals.len() as u64, 40 + counts.throttled);

        // Evenly spaced at 20 ms: n attempts span at least (n - 1) × 20 ms, and no 200 ms
        // window holds more than 10 (plus one for the clock's jitter at the window's edge).
        let spacing = Duration::from_secs(1) / RATE;
        let span = arrivals[arrivals.len() - 1] - arrivals[0];
        let floor = spacing * (arrivals.len() as u32 - 1);
        assert!(
            span + Duration::from_millis(5) >= floor,
            "{span:?} < {floor:?}"
        );
        assert!(started.elapsed() + Duration::from_millis(5) >= floor);
        let window = Duration::from_millis(200);
        for (i, first) in arrivals.iter().enumerate() {
            let within = arrivals[i..]
                .iter()
                .take_while(|t| **t - *first < window)
                .count();
            assert!(within <= 11, "{within} attempts within 200 ms");
        }
    }

    #[test]
    fn a_cursor_follows_tokens_to_the_last_page() {
        let mut cursor = Cursor::default();
        assert!(!cursor.finished());
        assert_eq!(cursor.token(), None);
        cursor.advance(Some("page-2"));
        assert_eq!(cursor.token().as_deref(), Some("page-2"));
        cursor.advance(Some("page-3"));
        assert!(!cursor.finished());
        cursor.advance(None);
        assert!(cursor.finished());

        // The tagging API ends with an empty token.
        let mut cursor = Cursor::default();
        cursor.advance(Some(""));
        assert!(cursor.finished());

        // The same token twice would loop forever.
        let mut cursor = Cursor::default();
        cursor.advance(Some("again"));
        cursor.advance(Some("again"));
        assert!(cursor.finished());
    }
}
