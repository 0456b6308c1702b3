//! A token bucket per integration, so a burst of commands cannot exceed what the owner set with
//! `rate_limit_per_sec` (default 20). It guards each provider call the runtime makes; providers
//! pace the many cloud calls inside one sync themselves, with the same bucket (the `aws`
//! provider's `pacing` module).

use std::time::{Duration, Instant};

/// Calls per second, with bursts of up to one second's worth unless told otherwise.
pub(crate) struct RateLimiter {
    bucket: tokio::sync::Mutex<Bucket>,
}

impl RateLimiter {
    pub(crate) fn new(per_second: u32) -> Self {
        Self::with_burst(per_second, per_second)
    }

    /// `per_second` calls a second, and at most `burst` at once after a pause. A burst of 1
    /// spaces every call `1 / per_second` after the one before.
    pub(crate) fn with_burst(per_second: u32, burst: u32) -> Self {
        Self {
            bucket: tokio::sync::Mutex::new(Bucket::new(per_second, burst, Instant::now())),
        }
    }

    /// Waits for a token. The lock is held while waiting, so callers are served in order.
    pub(crate) async fn acquire(&self) {
        let mut bucket = self.bucket.lock().await;
        while let Err(wait) = bucket.take(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The arithmetic, apart from the clock so it can be tested exactly.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn new(per_second: u32, burst: u32, now: Instant) -> Self {
        let rate = f64::from(per_second.max(1));
        let capacity = f64::from(burst.max(1));
        Self {
            rate,
            capacity,
            tokens: capacity,
            updated: now,
        }
    }

    /// Takes a token, or says how long until one is there.
    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_one_seconds_burst_then_paces_calls() {
        let start = Instant::now();
        let mut bucket = Bucket::new(10, 10, start);
        for _ in 0..10 {
            assert!(bucket.take(start).is_ok());
        }
        let wait = bucket.take(start).expect_err("the burst is spent");
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        assert!(bucket.take(start + Duration::from_millis(100)).is_ok());
        assert!(bucket.take(start + Duration::from_millis(150)).is_err());
        // After a long pause the bucket holds at most one second's worth.
        let later = start + Duration::from_secs(60);
        for _ in 0..10 {
            assert!(bucket.take(later).is_ok());
        }
        assert!(bucket.take(later).is_err());
    }

    #[test]
    fn a_burst_of_one_spaces_every_call() {
        let start = Instant::now();
        let mut bucket = Bucket::new(5, 1, start);
        assert!(bucket.take(start).is_ok());
        let wait = bucket.take(start).expect_err("one at a time");
        assert!(
            wait > Duration::from_millis(190) && wait <= Duration::from_millis(200),
            "{wait:?}"
        );
        assert!(bucket.take(start + Duration::from_millis(200)).is_ok());
        // A long pause saves up one call, not a second's worth.
        let later = start + Duration::from_secs(60);
        assert!(bucket.take(later).is_ok());
        assert!(bucket.take(later).is_err());
    }

    #[tokio::test]
    async fn the_limiter_waits_for_tokens() {
        let limiter = RateLimiter::new(50);
        let start = Instant::now();
        for _ in 0..60 {
            limiter.acquire().await;
        }
        // 50 from the burst, then 10 more at 50 per second.
        assert!(
            start.elapsed() >= Duration::from_millis(180),
            "{:?}",
            start.elapsed()
        );
    }
}
