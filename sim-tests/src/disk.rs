//! What a crash leaves of a host's disk: only what the node made durable.
//!
//! The node reports every fsync of a file or directory to [`rhizome_core::durable`], which the
//! simulation has recording on its thread, keyed by path (so by host). At a crash the host's
//! directory is cut back to that record, as a power loss would leave it:
//!
//! * a file is cut to its length at its last fsync; half the time a random part of the unsynced
//!   tail survives too (a torn write: the first bytes of a record, which the log's replay
//!   must cut off);
//! * an entry (file or directory) that its directory was not fsynced with since it appeared is
//!   removed;
//! * what was removed stays removed, and a rename made durable in the step that made it (the
//!   node's renames are all followed by a directory fsync in the same synchronous step, and
//!   a crash falls between steps) is not undone.
//!
//! What is left is then the host's durable state ([`rhizome_core::durable::mark_durable`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::Rng;
use rhizome_core::durable::{self, Record};

/// What a power loss cut.
#[derive(Debug, Default)]
struct Loss {
    files_cut: usize,
    bytes_lost: u64,
    /// Unsynced bytes that survived (torn writes).
    bytes_torn: u64,
    /// Entries removed, relative to the host's directory.
    entries_removed: Vec<String>,
}

/// Cut the files under `root` (a host's data directory) back to what the node made durable,
/// keeping part of some unsynced tails. Returns what was lost, for the trace.
pub fn lose_unsynced(root: &Path, rng: &mut StdRng) -> std::io::Result<String> {
    let record = durable::take_under(root);
    let root = std::fs::canonicalize(root)?;
    let mut loss = Loss::default();
    cut(&root, &root, &record, rng, &mut loss)?;
    let mut summary = format!(
        "{} files cut, {} unsynced bytes lost, {} kept torn",
        loss.files_cut, loss.bytes_lost, loss.bytes_torn
    );
    if !loss.entries_removed.is_empty() {
        summary.push_str(&format!(
            "; unsynced entries removed: {}",
            loss.entries_removed.join(", ")
        ));
    }
    Ok(summary)
}

fn cut(
    root: &Path,
    dir: &Path,
    record: &Record,
    rng: &mut StdRng,
    loss: &mut Loss,
) -> std::io::Result<()> {
    let durable_entries = record.dirs.get(dir);
    let mut names: Vec<OsString> = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for name in names {
        let path: PathBuf = dir.join(&name);
        let metadata = std::fs::symlink_metadata(&path)?;
        if !durable_entries.is_some_and(|entries| entries.contains(&name)) {
            if metadata.is_dir() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
            let relative = path.strip_prefix(root).unwrap_or(&path);
            loss.entries_removed.push(relative.display().to_string());
            continue;
        }
        if metadata.is_dir() {
            cut(root, &path, record, rng, loss)?;
        } else if metadata.is_file() {
            let synced = record.files.get(&path).copied().unwrap_or(0);
            let length = metadata.len();
            if length > synced {
                let unsynced = length - synced;
                let torn = if rng.gen_bool(0.5) {
                    rng.gen_range(0..unsynced)
                } else {
                    0
                };
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(synced + torn)?;
                loss.files_cut += 1;
                loss.bytes_lost += unsynced - torn;
                loss.bytes_torn += torn;
            }
        }
    }
    Ok(())
}
