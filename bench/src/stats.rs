//! Latency percentiles and peak memory.

use std::time::Duration;

/// Collected latencies, in nanoseconds.
pub struct Latencies(Vec<u64>);

/// Percentiles in microseconds.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
}

impl Latencies {
    pub fn with_capacity(n: usize) -> Self {
        Latencies(Vec::with_capacity(n))
    }

    pub fn push(&mut self, elapsed: Duration) {
        self.0
            .push(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn summary(mut self) -> Summary {
        self.0.sort_unstable();
        let at = |q: f64| -> f64 {
            if self.0.is_empty() {
                return 0.0;
            }
            let index = ((self.0.len() as f64 * q).ceil() as usize)
                .saturating_sub(1)
                .min(self.0.len() - 1);
            self.0[index] as f64 / 1000.0
        };
        Summary {
            p50_us: at(0.50),
            p99_us: at(0.99),
            p999_us: at(0.999),
        }
    }
}

/// The process's peak resident memory (VmHWM), in MiB; 0 where /proc is not available.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmHWM:").and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
            })
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_right_rank() {
        let mut latencies = Latencies::with_capacity(1000);
        for us in 1..=1000 {
            latencies.push(Duration::from_micros(us));
        }
        let summary = latencies.summary();
        assert_eq!(summary.p50_us, 500.0);
        assert_eq!(summary.p99_us, 990.0);
        assert_eq!(summary.p999_us, 999.0);
    }
}
