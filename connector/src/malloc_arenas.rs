//! Keeps the connector's memory small where it runs on glibc.
//!
//! glibc gives threads that allocate at the same time their own malloc arenas (up to eight per
//! core) and seldom hands memory freed in them back to the system. A sync's pages are built on one
//! tokio worker and freed on another, so every arena keeps its own high-water mark. Measured with
//! `latch-bench connector` (1,000,000 resources, `docs/benchmarks.md`): the heap itself peaks at
//! 27 MiB (heaptrack), the process at 67 MiB with glibc's default and 45 MiB with one arena.
//!
//! The limit must be in place before the first thread starts, and `mallopt` would take unsafe
//! code, which this workspace forbids. So the process runs itself again, once, with
//! `MALLOC_ARENA_MAX` set. An operator's own `MALLOC_ARENA_MAX` is left alone, and if the
//! re-execution fails the connector carries on with glibc's default.

/// The environment variable glibc reads at start.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const VARIABLE: &str = "MALLOC_ARENA_MAX";

/// One arena: a connector's allocations are small and brief, and two tokio workers rarely
/// contend for the allocator's lock.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: &str = "1";

/// Re-executes the process with `MALLOC_ARENA_MAX` set, unless it is set already. Returns only
/// when the process goes on as it is: with the variable set, on another platform, or when the
/// re-execution failed (the reason is returned, to be logged).
pub(crate) fn limit() -> Option<String> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        if std::env::var_os(VARIABLE).is_some() {
            return None;
        }
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(err) => return Some(format!("finding this executable failed: {err}")),
        };
        let mut args = std::env::args_os();
        let mut command = std::process::Command::new(&exe);
        if let Some(name) = args.next() {
            command.arg0(name);
        }
        // `exec` returns only if it failed.
        let err = command.args(args).env(VARIABLE, ARENAS).exec();
        Some(format!(
            "running {} again with {VARIABLE}={ARENAS} failed: {err}",
            exe.display()
        ))
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}
