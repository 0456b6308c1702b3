//! Reconnect delays: full-jitter exponential backoff, so a fleet of connectors that lost the
//! control plane at the same moment does not come back at the same moment.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// 500ms doubling up to 30s: the reconnect policy.
    pub(crate) fn reconnect() -> Self {
        Self::new(Duration::from_millis(500), Duration::from_secs(30))
    }

    pub(crate) fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The most the next delay can be: `base * 2^attempt`, at most `cap`.
    pub(crate) fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A random delay between zero and the ceiling; the ceiling grows for the next call.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }

    /// Back to the first step, after a connection that lived long enough to count as healthy.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_under_a_ceiling_that_doubles_up_to_the_cap() {
        let mut backoff = Backoff::reconnect();
        let expected_ceilings = [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000];
        for ceiling in expected_ceilings {
            assert_eq!(backoff.ceiling(), Duration::from_millis(ceiling));
            let delay = backoff.next_delay();
            assert!(
                delay <= Duration::from_millis(ceiling),
                "{delay:?} > {ceiling}ms"
            );
        }
        for _ in 0..1000 {
            assert!(backoff.next_delay() <= Duration::from_secs(30));
        }
        assert_eq!(backoff.ceiling(), Duration::from_secs(30));
    }

    #[test]
    fn delays_are_jittered_and_reset_starts_over() {
        let mut backoff = Backoff::reconnect();
        for _ in 0..10 {
            backoff.next_delay();
        }
        let delays: std::collections::HashSet<Duration> =
            (0..50).map(|_| backoff.next_delay()).collect();
        assert!(delays.len() > 10, "full jitter spreads delays: {delays:?}");
        backoff.reset();
        assert_eq!(backoff.ceiling(), Duration::from_millis(500));
        assert!(backoff.next_delay() <= Duration::from_millis(500));
    }
}
