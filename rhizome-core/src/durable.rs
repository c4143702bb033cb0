//! What a crash would keep: a record of the bytes and directory entries the storage code has
//! made durable, for a deterministic simulation to cut a crashed host's files back to.
//!
//! After a power loss a file holds its bytes up to its last `fsync` (and perhaps part of what
//! was written after it: a torn write), and a directory holds a new or renamed entry only once
//! the directory itself was fsynced. The storage code reports each fsync here
//! ([`file_synced`], [`dir_synced`]) and each rename ([`renamed`]), and creates directories
//! with [`create_dir_all`], which fsyncs the parent of every directory it creates.
//!
//! Nothing is recorded unless a thread asked for it ([`record_on_this_thread`]): in production
//! each report is one thread-local read. A simulation runs all its hosts on one thread and
//! keys the record by path, so each host's data directory has its own; at a simulated crash it
//! takes the record of the host's directory ([`take_under`]), cuts the files back to it, and
//! marks what is left as the durable state ([`mark_durable`]).
//!
//! Deletions are taken as durable at once (a removed file does not come back), and so is a
//! rename over an existing name as far as the old contents go: the node makes every rename
//! durable (directory fsync) in the same synchronous step, so a simulated crash, which falls
//! between steps, never sees one half done.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The durable state of the files and directories under some root.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Record {
    /// File → its length at its last fsync.
    pub files: BTreeMap<PathBuf, u64>,
    /// Directory → its entries at its last fsync.
    pub dirs: BTreeMap<PathBuf, BTreeSet<OsString>>,
}

thread_local! {
    static RECORD: RefCell<Option<Record>> = const { RefCell::new(None) };
}

/// Start recording on this thread (with an empty record), or stop and forget the record.
pub fn record_on_this_thread(on: bool) {
    RECORD.with(|record| *record.borrow_mut() = on.then(Record::default));
}

fn with_record(update: impl FnOnce(&mut Record)) {
    RECORD.with(|record| {
        if let Some(record) = record.borrow_mut().as_mut() {
            update(record);
        }
    });
}

/// `path` with its directory's symbolic links resolved (the store reaches its snapshot
/// directory through a `live` link), so one file has one key.
fn canonical(path: &Path) -> PathBuf {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => std::fs::canonicalize(parent)
            .map(|p| p.join(name))
            .unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    }
}

/// `file` (at `path`) was just fsynced: its bytes up to its current length are durable.
pub fn file_synced(path: &Path, file: &File) {
    with_record(|record| {
        if let Ok(metadata) = file.metadata() {
            record.files.insert(canonical(path), metadata.len());
        }
    });
}

/// `dir` was just fsynced: its entries as they are now are durable.
pub fn dir_synced(dir: &Path) {
    with_record(|record| {
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let entries = list(&dir);
        record.dirs.insert(dir, entries);
    });
}

/// `from` was just renamed to `to`: the durable bytes recorded for `from` are now `to`'s.
/// (The new name itself is durable once `to`'s directory is fsynced.)
pub fn renamed(from: &Path, to: &Path) {
    with_record(|record| {
        let (from, to) = (canonical(from), canonical(to));
        match record.files.remove(&from) {
            Some(bytes) => record.files.insert(to, bytes),
            None => record.files.remove(&to),
        };
    });
}

/// Remove and return what is recorded for `root` and everything under it (with `root`'s
/// symbolic links resolved, as every recorded path is).
pub fn take_under(root: &Path) -> Record {
    let root = &std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let mut taken = Record::default();
    with_record(|record| {
        let files: Vec<PathBuf> = record
            .files
            .keys()
            .filter(|p| p.starts_with(root))
            .cloned()
            .collect();
        for path in files {
            let bytes = record.files.remove(&path).expect("listed");
            taken.files.insert(path, bytes);
        }
        let dirs: Vec<PathBuf> = record
            .dirs
            .keys()
            .filter(|p| p.starts_with(root))
            .cloned()
            .collect();
        for path in dirs {
            let entries = record.dirs.remove(&path).expect("listed");
            taken.dirs.insert(path, entries);
        }
    });
    taken
}

/// Record everything under `root` as durable as it is now (a fresh disk, or what a crash
/// left).
pub fn mark_durable(root: &Path) {
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    with_record(|record| mark(record, &root));
}

fn mark(record: &mut Record, dir: &Path) {
    let entries = list(dir);
    for name in &entries {
        let path = dir.join(name);
        match std::fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.is_dir() => mark(record, &path),
            Ok(metadata) if metadata.is_file() => {
                record.files.insert(path, metadata.len());
            }
            _ => {}
        }
    }
    record.dirs.insert(dir.to_path_buf(), entries);
}

/// The names in `dir` (none when it cannot be read).
fn list(dir: &Path) -> BTreeSet<OsString> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|e| e.file_name()))
                .collect()
        })
        .unwrap_or_default()
}

/// Fsync a directory, so a new, renamed or removed entry in it is durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()?;
    }
    dir_synced(dir);
    Ok(())
}

/// `std::fs::create_dir_all`, then fsync the parent of every directory it created, so the
/// new directories survive a crash (a directory's entry is durable only once its parent is
/// fsynced).
pub fn create_dir_all(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.exists() {
        missing.push(at.to_path_buf());
        match at.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => at = parent,
            _ => break,
        }
    }
    std::fs::create_dir_all(dir)?;
    // Outermost first: a parent's entry is made durable before its children's.
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_only_on_a_thread_that_asked_and_follows_renames() {
        // Proves: without recording nothing is kept; with it, fsynced lengths, renames and
        // directory listings are recorded per path, and taken by root.
        let temp = tempfile::tempdir().expect("temp dir");
        let root = std::fs::canonicalize(temp.path()).expect("canonical");
        let path = root.join("a.tmp");
        std::fs::write(&path, b"hello").expect("write");
        let file = File::open(&path).expect("open");
        file_synced(&path, &file);
        assert_eq!(take_under(root.as_path()), Record::default());

        record_on_this_thread(true);
        file_synced(&path, &file);
        let target = root.as_path().join("a");
        std::fs::rename(&path, &target).expect("rename");
        renamed(&path, &target);
        create_dir_all(&root.as_path().join("x/y")).expect("mkdir");
        let taken = take_under(root.as_path());
        record_on_this_thread(false);
        assert_eq!(taken.files, BTreeMap::from([(target, 5)]));
        let names = |names: &[&str]| names.iter().map(OsString::from).collect::<BTreeSet<_>>();
        assert_eq!(taken.dirs[root.as_path()], names(&["a", "x"]));
        assert_eq!(taken.dirs[&root.as_path().join("x")], names(&["y"]));
    }
}
