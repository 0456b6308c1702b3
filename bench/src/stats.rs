//! Latency percentiles, and the memory of this and other processes.

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
    status_mib("/proc/self/status", "VmHWM").unwrap_or(0.0)
}

/// Another process's resident memory now (VmRSS) and at its peak (VmHWM), in MiB.
pub fn memory_of(pid: u32) -> Option<(f64, f64)> {
    let status = format!("/proc/{pid}/status");
    Some((status_mib(&status, "VmRSS")?, status_mib(&status, "VmHWM")?))
}

/// A `kB` field of a `/proc/PID/status` file, in MiB.
fn status_mib(path: &str, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(path).ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        let kib: f64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib / 1024.0)
    })
}

/// The process running with `arg` as one of its arguments (a config file or data directory
/// only it was given), found in /proc.
pub fn pid_with_arg(arg: &std::path::Path) -> Option<u32> {
    let wanted = arg.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            cmdline
                .split(|byte| *byte == 0)
                .any(|a| a == wanted)
                .then_some(pid)
        })
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
