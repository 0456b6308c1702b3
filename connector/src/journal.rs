//! `commands.journal`: the commands this connector finished, so that a command delivered twice is
//! applied once and an old command (lower generation) never undoes a newer one, across restarts.
//!
//! One JSON object a line: `{command_id, grant_id, generation, outcome, message}`. A line is
//! appended and fsynced before the result is reported, so a reported result is never forgotten.
//! Only final outcomes are written (`done`, `failed`): a `retry` must act again when the control
//! plane redelivers, and a refusal is decided afresh from the current config.
//!
//! At start the whole file is read into two maps: command id -> entry, and grant id -> highest
//! generation finished. A last line without its newline (a crash mid-append) is dropped; any
//! other unreadable line stops the connector rather than risk re-applying a stale command. A
//! journal over [`COMPACT_OVER_LINES`] lines is rewritten at start keeping, per grant, the entry
//! with the highest generation, and the last [`KEEP_COMMANDS`] entries.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use latch_proto::v1::CommandOutcome;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::state_dir::write_atomic;

/// Journals longer than this are compacted at start.
pub(crate) const COMPACT_OVER_LINES: usize = 100_000;
/// How many of the latest entries compaction keeps, whatever their grant.
pub(crate) const KEEP_COMMANDS: usize = 10_000;

/// How a journaled command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Outcome {
    Done,
    Retry,
    Failed,
    Refused,
}

impl Outcome {
    pub(crate) fn to_proto(self) -> CommandOutcome {
        match self {
            Outcome::Done => CommandOutcome::Done,
            Outcome::Retry => CommandOutcome::Retry,
            Outcome::Failed => CommandOutcome::Failed,
            Outcome::Refused => CommandOutcome::Refused,
        }
    }
}

/// One finished command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub command_id: String,
    pub grant_id: String,
    pub generation: u64,
    pub outcome: Outcome,
    pub message: String,
    /// Whether the result carried credentials. They are never journaled (no passwords on disk),
    /// so a redelivered command like this runs again to make fresh ones.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub issued_credentials: bool,
}

/// What the journal says about a command about to run.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Precheck {
    /// Never finished, and not older than what was: go ahead.
    Fresh,
    /// Already finished: report this again, act no more.
    Duplicate(Entry),
    /// A newer command about the same grant already finished.
    Stale { generation: u64, highest: u64 },
}

#[derive(Clone)]
pub(crate) struct Journal {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    path: PathBuf,
    file: File,
    by_command: HashMap<String, Entry>,
    highest_generation: HashMap<String, u64>,
}

impl Journal {
    /// Opens (or creates) the journal, compacting it if it grew past the limit.
    pub(crate) fn open(path: &Path) -> Result<Journal, Error> {
        Self::open_with(path, COMPACT_OVER_LINES, KEEP_COMMANDS)
    }

    pub(crate) fn open_with(
        path: &Path,
        compact_over: usize,
        keep_commands: usize,
    ) -> Result<Journal, Error> {
        let mut entries = read_entries(path)?;
        if entries.len() > compact_over {
            let before = entries.len();
            entries = compact(entries, keep_commands);
            let mut text = Vec::new();
            for entry in &entries {
                text.extend(encode(entry, path)?);
            }
            write_atomic(path, &text, 0o600)?;
            tracing::info!(
                path = %path.display(),
                before,
                after = entries.len(),
                "compacted the commands journal"
            );
        }
        let file = open_append(path)?;
        let mut inner = Inner {
            path: path.to_path_buf(),
            file,
            by_command: HashMap::new(),
            highest_generation: HashMap::new(),
        };
        for entry in entries {
            inner.remember(entry);
        }
        Ok(Journal {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in a harmful way:
        // they only ever grow by whole entries.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether a command should run, per what already finished.
    pub(crate) fn precheck(&self, command_id: &str, grant_id: &str, generation: u64) -> Precheck {
        let inner = self.lock();
        if let Some(entry) = inner.by_command.get(command_id) {
            return Precheck::Duplicate(entry.clone());
        }
        match inner.highest_generation.get(grant_id) {
            Some(&highest) if !grant_id.is_empty() && generation < highest => Precheck::Stale {
                generation,
                highest,
            },
            _ => Precheck::Fresh,
        }
    }

    /// Appends `entry` and fsyncs; only then may the result be reported.
    pub(crate) async fn append(&self, entry: Entry) -> Result<(), Error> {
        let journal = self.clone();
        match tokio::task::spawn_blocking(move || journal.append_blocking(entry)).await {
            Ok(result) => result,
            Err(join) => Err(Error::Journal {
                path: self.lock().path.clone(),
                message: format!("append did not finish: {join}"),
            }),
        }
    }

    pub(crate) fn append_blocking(&self, entry: Entry) -> Result<(), Error> {
        let mut inner = self.lock();
        let line = encode(&entry, &inner.path)?;
        let path = inner.path.clone();
        let written = inner
            .file
            .write_all(&line)
            .and_then(|()| inner.file.sync_data());
        written.map_err(|source| Error::Write { path, source })?;
        inner.remember(entry);
        Ok(())
    }
}

impl Inner {
    fn remember(&mut self, entry: Entry) {
        if !entry.grant_id.is_empty() {
            let highest = self
                .highest_generation
                .entry(entry.grant_id.clone())
                .or_insert(entry.generation);
            *highest = (*highest).max(entry.generation);
        }
        self.by_command.insert(entry.command_id.clone(), entry);
    }
}

fn encode(entry: &Entry, path: &Path) -> Result<Vec<u8>, Error> {
    let mut line = serde_json::to_vec(entry).map_err(|err| Error::Journal {
        path: path.to_path_buf(),
        message: format!("cannot encode an entry: {err}"),
    })?;
    line.push(b'\n');
    Ok(line)
}

fn open_append(path: &Path) -> Result<File, Error> {
    let mut options = fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads every complete line; drops (and truncates away) a torn last line.
fn read_entries(path: &Path) -> Result<Vec<Entry>, Error> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut file) => {
            file.read_to_end(&mut bytes).map_err(|source| Error::Read {
                path: path.to_path_buf(),
                source,
            })?;
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    }
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if complete < bytes.len() {
        tracing::warn!(
            path = %path.display(),
            bytes = bytes.len() - complete,
            "dropping a torn last line of the commands journal"
        );
        let file = fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(complete as u64).and_then(|()| f.sync_all()));
        file.map_err(|source| Error::Write {
            path: path.to_path_buf(),
            source,
        })?;
    }
    let mut entries = Vec::new();
    for (index, line) in bytes[..complete].split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let entry = serde_json::from_slice(line).map_err(|err| Error::Journal {
            path: path.to_path_buf(),
            message: format!(
                "line {} is unreadable ({err}); move the file away to start with an empty journal (finished commands may then be applied again)",
                index + 1
            ),
        })?;
        entries.push(entry);
    }
    Ok(entries)
}

/// Keeps, in their order, each grant's highest-generation entry and the last `keep_commands`.
fn compact(entries: Vec<Entry>, keep_commands: usize) -> Vec<Entry> {
    let mut best_per_grant: HashMap<&str, (u64, usize)> = HashMap::new();
    for (index, entry) in entries.iter().enumerate() {
        if entry.grant_id.is_empty() {
            continue;
        }
        let best = best_per_grant
            .entry(entry.grant_id.as_str())
            .or_insert((entry.generation, index));
        if entry.generation >= best.0 {
            *best = (entry.generation, index);
        }
    }
    let mut keep: HashSet<usize> = best_per_grant.values().map(|(_, index)| *index).collect();
    keep.extend(entries.len().saturating_sub(keep_commands)..entries.len());
    entries
        .into_iter()
        .enumerate()
        .filter(|(index, _)| keep.contains(index))
        .map(|(_, entry)| entry)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(command_id: &str, grant_id: &str, generation: u64) -> Entry {
        Entry {
            command_id: command_id.into(),
            grant_id: grant_id.into(),
            generation,
            outcome: Outcome::Done,
            message: String::new(),
            issued_credentials: false,
        }
    }

    #[test]
    fn a_finished_command_is_a_duplicate_and_older_generations_are_stale() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = Journal::open(&dir.path().join("j")).expect("open");
        assert_eq!(journal.precheck("c1", "g1", 1), Precheck::Fresh);
        journal
            .append_blocking(entry("c1", "g1", 5))
            .expect("append");
        assert_eq!(
            journal.precheck("c1", "g1", 5),
            Precheck::Duplicate(entry("c1", "g1", 5))
        );
        assert_eq!(
            journal.precheck("c0", "g1", 4),
            Precheck::Stale {
                generation: 4,
                highest: 5
            }
        );
        assert_eq!(journal.precheck("c2", "g1", 6), Precheck::Fresh);
        assert_eq!(journal.precheck("c2", "g2", 1), Precheck::Fresh);
    }

    #[tokio::test]
    async fn the_journal_survives_a_reload_and_a_torn_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("commands.journal");
        {
            let journal = Journal::open(&path).expect("open");
            journal.append(entry("c1", "g1", 1)).await.expect("append");
            let mut failed = entry("c2", "g1", 2);
            failed.outcome = Outcome::Failed;
            failed.message = "denied: no".into();
            journal.append(failed).await.expect("append");
        }
        // A crash in the middle of an append.
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        file.write_all(br#"{"command_id":"c3","gra"#)
            .expect("write");
        drop(file);

        let journal = Journal::open(&path).expect("reopen");
        match journal.precheck("c2", "g1", 2) {
            Precheck::Duplicate(e) => {
                assert_eq!(e.outcome, Outcome::Failed);
                assert_eq!(e.message, "denied: no");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            journal.precheck("c0", "g1", 1),
            Precheck::Stale { highest: 2, .. }
        ));
        assert_eq!(journal.precheck("c3", "g3", 1), Precheck::Fresh);
        journal
            .append_blocking(entry("c4", "g4", 1))
            .expect("append");
        let text = fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(
            text.lines()
                .all(|l| serde_json::from_str::<Entry>(l).is_ok())
        );
    }

    #[test]
    fn a_corrupt_line_stops_the_connector() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j");
        fs::write(&path, "{\"nope\":1}\n").expect("write");
        let err = Journal::open(&path).err().expect("corrupt");
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn compaction_keeps_the_latest_generation_per_grant_and_the_latest_commands() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j");
        {
            let journal = Journal::open(&path).expect("open");
            // Grant a: generations 1..=3 early on; grant b: later generation first.
            journal
                .append_blocking(entry("a1", "a", 1))
                .expect("append");
            journal
                .append_blocking(entry("a3", "a", 3))
                .expect("append");
            journal
                .append_blocking(entry("b9", "b", 9))
                .expect("append");
            journal
                .append_blocking(entry("a2", "a", 2))
                .expect("append");
            for i in 0..6 {
                journal
                    .append_blocking(entry(&format!("x{i}"), "x", i + 1))
                    .expect("append");
            }
        }
        // 10 lines, over the limit of 5: keep each grant's best and the last 3.
        let journal = Journal::open_with(&path, 5, 3).expect("compact");
        let text = fs::read_to_string(&path).expect("read");
        let ids: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<Entry>(l).expect("entry").command_id)
            .collect();
        assert_eq!(ids, ["a3", "b9", "x3", "x4", "x5"]);
        // Fencing still holds for the dropped entries' grant.
        assert!(matches!(
            journal.precheck("a2", "a", 2),
            Precheck::Stale { highest: 3, .. }
        ));
        assert_eq!(journal.precheck("a1", "a", 4), Precheck::Fresh);
        assert!(matches!(
            journal.precheck("x4", "x", 5),
            Precheck::Duplicate(_)
        ));
        assert!(matches!(
            journal.precheck("x1", "x", 2),
            Precheck::Stale { highest: 6, .. }
        ));
        // Under the limit: nothing changes.
        drop(journal);
        Journal::open_with(&path, 100, 3).expect("open");
        assert_eq!(fs::read_to_string(&path).expect("read"), text);
    }
}
