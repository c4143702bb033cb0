//! The durable Raft log of one group: an append-only file of checksummed records.
//!
//! ```text
//! file   := record*
//! record := body_len: u32 LE | crc32c(body): u32 LE | body: bincode(LogRecord)
//! ```
//!
//! Entries, votes, the committed id, truncations and purges are all records; replaying the
//! file in order rebuilds the log. Every record but the committed id is fsynced before it is
//! acknowledged (the `LogFlushed` callback, or the return of `save_vote`, `truncate` and
//! `purge`); the committed id rides on the next fsync, and a committed vote is read back
//! uncommitted (see [`LogStore::open`]). A torn or corrupt tail (short
//! record, checksum mismatch) ends the replay: it can only hold records that were never
//! acknowledged, and it is cut off. When purged records make up most of the file, it is
//! rewritten (temp file, fsync, rename, directory fsync) with only what is live.
//!
//! After a failed write or fsync the store refuses every later write with the first error:
//! the page cache may have dropped the data, so nothing written after it can be trusted.
//!
//! Memory: the newest entries are kept decoded, up to a limit of bytes per group (a
//! [`CacheLimit`]: a node's groups share its budget, at most [`ENTRY_CACHE_BYTES`] each; what
//! a leader replicates and a replica applies next). Older live entries are only indexed
//! (index, log id, where their record is) and read back from the file when asked for: a
//! follower far behind, or a log that grew long between snapshots, costs disk reads, not
//! memory.

// openraft's storage traits return its `StorageError` (a large type) by value; our helpers
// return the same type rather than converting at every call.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, RaftLogId, RaftLogReader};
use rhizome_core::durable;
use serde::{Deserialize, Serialize};

use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

/// File name of a group's log, in the group's directory on the first data directory.
pub const LOG_FILE: &str = "raft.log";
/// Bytes of a record header: body length and checksum.
const RECORD_HEADER_BYTES: usize = 8;
/// Largest record body: a bound on what a corrupt length field can make us allocate.
pub const RECORD_BYTES_MAX: usize = 256 << 20;
/// The file is rewritten when its dead bytes exceed both this and its live bytes.
pub const REWRITE_DEAD_BYTES_MIN: u64 = 64 << 20;
/// Bytes of records whose entries a group keeps decoded in memory at most (the newest ones):
/// two of the largest write batches, which is one append-entries message at most
/// ([`crate::app::RaftSettings::append_entries_max`] × [`crate::services::WRITE_BATCH_BYTES_MAX`]).
/// A follower in step lags by less; one further behind is sent entries read from the file.
/// A node with many groups gives each a share of its budget instead ([`CacheLimit`]).
pub const ENTRY_CACHE_BYTES: u64 = 16 << 20;

/// The bytes of decoded entries a log keeps, which its owner may change while it runs: a
/// node gives all its shard groups one limit, their share of the node's budget, and lowers
/// it as groups are added. A log evicts down to a lowered limit at its next append.
#[derive(Debug, Clone)]
pub struct CacheLimit(Arc<AtomicU64>);

impl CacheLimit {
    pub fn new(bytes: u64) -> CacheLimit {
        CacheLimit(Arc::new(AtomicU64::new(bytes)))
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self, bytes: u64) {
        self.0.store(bytes, Ordering::Relaxed);
    }

    /// Each of `groups` groups' share of a node's `budget`: at most [`ENTRY_CACHE_BYTES`].
    pub fn share(budget: u64, groups: usize) -> u64 {
        (budget / groups.max(1) as u64).min(ENTRY_CACHE_BYTES)
    }
}

/// What the file holds, as read back.
#[derive(Debug, Deserialize)]
enum LogRecord {
    Entry(Entry),
    Vote(Vote),
    Committed(Option<LogId>),
    /// Entries at and after this index are gone.
    TruncateFrom(u64),
    /// Entries at and before this id are gone.
    Purge(LogId),
}

/// What is written: the same encoding as [`LogRecord`] (variants in the same order), borrowing.
#[derive(Debug, Serialize)]
enum RecordRef<'a> {
    Entry(&'a Entry),
    Vote(&'a Vote),
    Committed(&'a Option<LogId>),
    TruncateFrom(u64),
    Purge(&'a LogId),
}

/// A group's durable Raft log; cheap to clone (readers share it).
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Mutex<LogInner>>,
}

#[derive(Debug)]
struct LogInner {
    path: PathBuf,
    /// Open for appending; `None` only between a rewrite's rename and reopen.
    file: Option<File>,
    /// Live entries by index: where each record is, and the newest entries themselves.
    entries: BTreeMap<u64, Slot>,
    /// Bytes of the records whose entries are held in `entries`.
    cached_bytes: u64,
    /// Budget for `cached_bytes`; the oldest entries beyond it are dropped from memory.
    cache_limit: CacheLimit,
    /// No entry below this index is held decoded (where eviction resumes).
    cached_from: u64,
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
    /// Bytes in the file, and bytes of records that still matter (entries, latest vote...).
    file_bytes: u64,
    live_entry_bytes: u64,
    /// The first write failure; once set, every write fails with it.
    failed: Option<String>,
}

/// One live entry: its record's place in the file and, if it is among the newest, the entry.
#[derive(Debug)]
struct Slot {
    log_id: LogId,
    /// Offset of the record in the file, and its size (header included).
    offset: u64,
    size: u64,
    entry: Option<Entry>,
}

fn io_error(subject: ErrorSubject<u64>, verb: ErrorVerb, e: &std::io::Error) -> StorageError {
    StorageError::from_io_error(subject, verb, std::io::Error::new(e.kind(), e.to_string()))
}

fn encode_record(record: &RecordRef<'_>) -> Vec<u8> {
    let body = bincode::serialize(record).expect("log records serialise");
    let mut out = Vec::with_capacity(RECORD_HEADER_BYTES + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Fsync a directory, so a rename or a new file in it is durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    durable::sync_dir(dir)
}

impl LogStore {
    /// Open (or create) the log in `dir`, replaying every intact record.
    pub fn open(dir: &Path) -> Result<LogStore, StorageError> {
        Self::open_with_cache(dir, ENTRY_CACHE_BYTES)
    }

    /// [`LogStore::open`] keeping at most `cache_bytes_max` bytes of entries decoded (0: every
    /// read goes to the file).
    pub fn open_with_cache(dir: &Path, cache_bytes_max: u64) -> Result<LogStore, StorageError> {
        Self::open_with_limit(dir, CacheLimit::new(cache_bytes_max))
    }

    /// [`LogStore::open`] keeping at most what `cache_limit` says of entries decoded, as it
    /// changes.
    pub fn open_with_limit(dir: &Path, cache_limit: CacheLimit) -> Result<LogStore, StorageError> {
        let read_err = |e: std::io::Error| io_error(ErrorSubject::Logs, ErrorVerb::Read, &e);
        durable::create_dir_all(dir).map_err(read_err)?;
        let path = dir.join(LOG_FILE);
        let mut bytes = Vec::new();
        if path.exists() {
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(read_err)?;
        }
        let mut inner = LogInner {
            path: path.clone(),
            file: None,
            entries: BTreeMap::new(),
            cached_bytes: 0,
            cache_limit,
            cached_from: 0,
            vote: None,
            committed: None,
            last_purged: None,
            file_bytes: 0,
            live_entry_bytes: 0,
            failed: None,
        };
        let mut offset = 0usize;
        while offset < bytes.len() {
            match decode_record(&bytes[offset..]) {
                Ok((record, size)) => {
                    inner.replay(record, offset as u64, size as u64);
                    // Within the budget all along, so a long log is not decoded whole.
                    inner.evict();
                    offset += size;
                }
                Err(reason) => {
                    tracing::warn!(
                        path = %path.display(),
                        offset,
                        file_bytes = bytes.len(),
                        reason,
                        "raft log: cutting off a torn or corrupt tail (never acknowledged)"
                    );
                    break;
                }
            }
        }
        // The committed id is not fsynced when it is saved, so the one read back after a crash
        // may be older than one this node acted on. openraft restarts a node whose vote is
        // committed for itself as leader in the same term, and takes that committed id as its
        // read index: it could answer a linearizable read without entries acknowledged before
        // the crash. Read back uncommitted, the vote still binds this node to its choice in
        // that term (no second vote), but a former leader stands for election again: a new
        // leader's read index is at least its own first entry, which follows every
        // acknowledged one.
        if let Some(vote) = inner.vote.filter(|v| v.is_committed()) {
            inner.vote = Some(Vote {
                committed: false,
                ..vote
            });
        }
        // Readable too: entries beyond the memory budget are read back from it.
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(read_err)?;
        // What was replayed is fsynced before anything is acknowledged on top of it: after a
        // process crash the page cache may still hold records that never reached the disk,
        // and a replayed entry counts toward a commit as soon as a leader asks for it.
        if offset < bytes.len() {
            file.set_len(offset as u64)
                .map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Write, &e))?;
        }
        file.sync_all()
            .map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Write, &e))?;
        durable::file_synced(&path, &file);
        sync_dir(dir).map_err(read_err)?;
        inner.file = Some(file);
        inner.file_bytes = offset as u64;
        inner.evict();
        Ok(LogStore {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        self.inner
            .lock()
            .expect("log store lock poisoned by a panic")
    }

    /// Run a writing (fsyncing) step on the blocking pool, so no runtime worker waits on the
    /// disk. openraft awaits each log write before the next, which keeps them in order.
    async fn blocking<T: Send + 'static>(
        &self,
        step: impl FnOnce(&mut LogInner) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let inner = self.inner.clone();
        crate::blocking::run(move || {
            step(&mut inner.lock().expect("log store lock poisoned by a panic"))
        })
        .await
        .map_err(|e| {
            io_error(
                ErrorSubject::Logs,
                ErrorVerb::Write,
                &std::io::Error::other(e.to_string()),
            )
        })?
    }

    /// The last committed log id this node has recorded.
    pub fn committed(&self) -> Option<LogId> {
        self.lock().committed
    }

    /// Bytes in the log file now.
    pub fn file_bytes(&self) -> u64 {
        self.lock().file_bytes
    }
}

fn decode_record(bytes: &[u8]) -> Result<(LogRecord, usize), String> {
    if bytes.len() < RECORD_HEADER_BYTES {
        return Err(format!("{} bytes left, short of a header", bytes.len()));
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if len > RECORD_BYTES_MAX {
        return Err(format!("record length {len} over {RECORD_BYTES_MAX}"));
    }
    let body = bytes
        .get(RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + len)
        .ok_or_else(|| format!("record of {len} bytes cut short"))?;
    if crc32c::crc32c(body) != crc {
        return Err("checksum mismatch".into());
    }
    let record = bincode::deserialize(body).map_err(|e| format!("undecodable record: {e}"))?;
    Ok((record, RECORD_HEADER_BYTES + len))
}

impl LogInner {
    fn replay(&mut self, record: LogRecord, offset: u64, size: u64) {
        match record {
            LogRecord::Entry(entry) => {
                // An entry at an index we hold replaces it and everything after (a truncation
                // that was not recorded separately never happens, but stay safe).
                self.insert(entry, offset, size);
            }
            LogRecord::Vote(vote) => self.vote = Some(vote),
            LogRecord::Committed(committed) => self.committed = committed,
            LogRecord::TruncateFrom(index) => self.remove_from(index),
            LogRecord::Purge(log_id) => self.remove_upto(log_id),
        }
    }

    /// Hold `entry`, whose record is `size` bytes at `offset`, replacing the entry at its
    /// index and every later one. Memory is trimmed by [`LogInner::evict`].
    fn insert(&mut self, entry: Entry, offset: u64, size: u64) {
        let log_id = *entry.get_log_id();
        self.remove_from(log_id.index);
        self.live_entry_bytes += size;
        self.cached_bytes += size;
        self.cached_from = self.cached_from.min(log_id.index);
        self.entries.insert(
            log_id.index,
            Slot {
                log_id,
                offset,
                size,
                entry: Some(entry),
            },
        );
    }

    /// Account for slots leaving the log.
    fn forget(&mut self, removed: &BTreeMap<u64, Slot>) {
        for slot in removed.values() {
            self.live_entry_bytes -= slot.size;
            if slot.entry.is_some() {
                self.cached_bytes -= slot.size;
            }
        }
    }

    fn remove_from(&mut self, index: u64) {
        let removed = self.entries.split_off(&index);
        self.forget(&removed);
    }

    fn remove_upto(&mut self, log_id: LogId) {
        let kept = self.entries.split_off(&(log_id.index + 1));
        let removed = std::mem::replace(&mut self.entries, kept);
        self.forget(&removed);
        if self.last_purged.is_none_or(|p| p.index < log_id.index) {
            self.last_purged = Some(log_id);
        }
    }

    /// Drop the oldest decoded entries until the cache is within its budget.
    fn evict(&mut self) {
        let limit = self.cache_limit.get();
        if self.cached_bytes <= limit {
            return;
        }
        for (&index, slot) in self.entries.range_mut(self.cached_from..) {
            if self.cached_bytes <= limit {
                break;
            }
            if slot.entry.take().is_some() {
                self.cached_bytes -= slot.size;
            }
            self.cached_from = index + 1;
        }
    }

    /// The raw record of a slot, read from the file.
    fn read_record(&self, slot: &Slot) -> std::io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let file = self
            .file
            .as_ref()
            .expect("the log file is open outside a rewrite");
        let mut record = vec![0u8; slot.size as usize];
        file.read_exact_at(&mut record, slot.offset)?;
        Ok(record)
    }

    /// The entry of a slot: from memory, or read back from the file and checked.
    fn entry(&self, slot: &Slot) -> Result<Entry, StorageError> {
        if let Some(entry) = &slot.entry {
            return Ok(entry.clone());
        }
        let read_err =
            |e: std::io::Error| io_error(ErrorSubject::Log(slot.log_id), ErrorVerb::Read, &e);
        let record = self.read_record(slot).map_err(read_err)?;
        match decode_record(&record) {
            Ok((LogRecord::Entry(entry), _)) if *entry.get_log_id() == slot.log_id => Ok(entry),
            Ok(_) => Err(read_err(std::io::Error::other(format!(
                "{}: the record at offset {} is not entry {}",
                self.path.display(),
                slot.offset,
                slot.log_id
            )))),
            Err(reason) => Err(read_err(std::io::Error::other(format!(
                "{}: entry {} at offset {}: {reason}",
                self.path.display(),
                slot.log_id,
                slot.offset
            )))),
        }
    }

    fn check_healthy(&self) -> Result<(), StorageError> {
        match &self.failed {
            None => Ok(()),
            Some(reason) => Err(io_error(
                ErrorSubject::Logs,
                ErrorVerb::Write,
                &std::io::Error::other(format!("log stopped after an earlier failure: {reason}")),
            )),
        }
    }

    /// Append encoded records and, when `sync`, fsync; a failure stops the log for good.
    fn write(&mut self, bytes: &[u8], sync: bool) -> Result<(), StorageError> {
        self.check_healthy()?;
        let file = self
            .file
            .as_mut()
            .expect("the log file is open outside a rewrite");
        let result = file.write_all(bytes).and_then(|_| {
            if sync {
                file.sync_data()?;
                durable::file_synced(&self.path, file);
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                self.file_bytes += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                tracing::error!(
                    path = %self.path.display(),
                    error = %e,
                    "raft log write or fsync failed: this group stops taking writes on this node"
                );
                self.failed = Some(e.to_string());
                Err(io_error(ErrorSubject::Logs, ErrorVerb::Write, &e))
            }
        }
    }

    /// Rewrite the file with only live records, when dead bytes dominate.
    fn maybe_rewrite(&mut self) -> Result<(), StorageError> {
        let dead = self.file_bytes.saturating_sub(self.live_entry_bytes);
        if dead < REWRITE_DEAD_BYTES_MIN || dead < self.live_entry_bytes {
            return Ok(());
        }
        let write_err = |e: std::io::Error| io_error(ErrorSubject::Logs, ErrorVerb::Write, &e);
        let tmp = self.path.with_extension("log.tmp");
        let mut out = Vec::new();
        if let Some(vote) = self.vote {
            out.extend(encode_record(&RecordRef::Vote(&vote)));
        }
        out.extend(encode_record(&RecordRef::Committed(&self.committed)));
        if let Some(purged) = self.last_purged {
            out.extend(encode_record(&RecordRef::Purge(&purged)));
        }
        let mut live = 0;
        let mut places = Vec::with_capacity(self.entries.len());
        for slot in self.entries.values() {
            let record = match &slot.entry {
                Some(entry) => encode_record(&RecordRef::Entry(entry)),
                // Already checked when it was written; copied as it is.
                None => self.read_record(slot).map_err(write_err)?,
            };
            places.push((out.len() as u64, record.len() as u64));
            live += record.len() as u64;
            out.extend(record);
        }
        let result = (|| {
            let mut file = File::create(&tmp)?;
            file.write_all(&out)?;
            file.sync_all()?;
            durable::file_synced(&tmp, &file);
            std::fs::rename(&tmp, &self.path)?;
            durable::renamed(&tmp, &self.path);
            sync_dir(self.path.parent().expect("the log file has a directory"))?;
            OpenOptions::new().read(true).append(true).open(&self.path)
        })();
        match result {
            Ok(file) => {
                self.file = Some(file);
                self.file_bytes = out.len() as u64;
                self.live_entry_bytes = live;
                self.cached_bytes = 0;
                for (slot, (offset, size)) in self.entries.values_mut().zip(places) {
                    slot.offset = offset;
                    slot.size = size;
                    if slot.entry.is_some() {
                        self.cached_bytes += size;
                    }
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "raft log rewrite failed: this group stops taking writes on this node");
                self.failed = Some(e.to_string());
                Err(write_err(e))
            }
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let inner = self.lock();
        inner
            .entries
            .range(range)
            .map(|(_, slot)| inner.entry(slot))
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let inner = self.lock();
        let last = inner
            .entries
            .values()
            .next_back()
            .map(|slot| slot.log_id)
            .or(inner.last_purged);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = *vote;
        self.blocking(move |inner| {
            inner.write(&encode_record(&RecordRef::Vote(&vote)), true)?;
            inner.vote = Some(vote);
            Ok(())
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Written but not fsynced (the next append's or vote's fsync carries it): a committed id
        // lost at a crash only means re-learning it from the leader, and a restarted leader
        // does not trust it (its vote is read back uncommitted, see `open`).
        self.blocking(move |inner| {
            inner.write(&encode_record(&RecordRef::Committed(&committed)), false)?;
            inner.committed = committed;
            Ok(())
        })
        .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        #[cfg(feature = "canary")]
        let sync = !crate::canary::is_on(crate::canary::Canary::AckBeforeFsync);
        #[cfg(not(feature = "canary"))]
        let sync = true;
        self.blocking(move |inner| {
            let mut bytes = Vec::new();
            for entry in entries {
                let record = encode_record(&RecordRef::Entry(&entry));
                let size = record.len() as u64;
                let offset = inner.file_bytes + bytes.len() as u64;
                bytes.extend_from_slice(&record);
                inner.insert(entry, offset, size);
            }
            let result = inner.write(&bytes, sync);
            inner.evict();
            match result {
                Ok(()) => {
                    callback.log_io_completed(Ok(()));
                    Ok(())
                }
                Err(e) => {
                    callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                    Err(e)
                }
            }
        })
        .await
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut inner = self.lock();
        inner.write(&encode_record(&RecordRef::TruncateFrom(log_id.index)), true)?;
        inner.remove_from(log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Fsynced: a purge that a crash loses brings purged entries back below a snapshot,
        // and the log's last index with them.
        let mut inner = self.lock();
        inner.write(&encode_record(&RecordRef::Purge(&log_id)), true)?;
        inner.remove_upto(log_id);
        inner.maybe_rewrite()
    }
}

#[cfg(test)]
mod tests {
    use openraft::storage::RaftLogStorageExt;
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    /// An insert entry at `index` (term 1) carrying `rows` as its payload.
    fn insert_entry(index: u64, rows: Vec<u8>) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(crate::types::Command::Insert {
                batch: crate::types::BatchId {
                    client: 1,
                    sequence: index,
                },
                rows: bytes::Bytes::from(rows),
            }),
        }
    }

    fn indexes(store: &LogStore) -> Vec<u64> {
        store.lock().entries.keys().copied().collect()
    }

    #[tokio::test]
    async fn reopen_replays_entries_vote_truncate_and_purge() {
        // Proves: everything acknowledged (entries, vote, truncation, purge) is found again
        // after a reopen, in the same state.
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = LogStore::open(dir.path()).expect("open");
        store
            .blocking_append((1..=10).map(|i| entry(1, i)))
            .await
            .expect("append");
        let vote = Vote::new(3, 2);
        store.save_vote(&vote).await.expect("vote");
        store
            .truncate(LogId::new(CommittedLeaderId::new(1, 1), 8))
            .await
            .expect("truncate");
        store.blocking_append([entry(3, 8)]).await.expect("append");
        store
            .purge(LogId::new(CommittedLeaderId::new(1, 1), 3))
            .await
            .expect("purge");
        drop(store);

        let mut store = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(indexes(&store), vec![4, 5, 6, 7, 8]);
        assert_eq!(store.read_vote().await.expect("vote"), Some(vote));
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(3));
        assert_eq!(state.last_log_id, Some(*entry(3, 8).get_log_id()));
    }

    #[tokio::test]
    async fn a_torn_or_corrupt_tail_is_cut_off_and_the_rest_kept() {
        // Proves: a partly written last record (crash mid-append) and a flipped byte in the
        // last record both end the replay there; earlier records survive, the file is cut to
        // them, and appending afterwards works and survives another reopen.
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = LogStore::open(dir.path()).expect("open");
        store
            .blocking_append((1..=5).map(|i| entry(1, i)))
            .await
            .expect("append");
        let good_bytes = store.file_bytes();
        store.blocking_append([entry(1, 6)]).await.expect("append");
        drop(store);
        let path = dir.path().join(LOG_FILE);
        let full = std::fs::read(&path).expect("read");

        // Torn: the last record lacks its final bytes.
        std::fs::write(&path, &full[..full.len() - 3]).expect("write");
        let store = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(indexes(&store), vec![1, 2, 3, 4, 5]);
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), good_bytes);
        drop(store);

        // Corrupt: a flipped byte inside the last record's body.
        let mut corrupt = full.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        std::fs::write(&path, &corrupt).expect("write");
        let mut store = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(indexes(&store), vec![1, 2, 3, 4, 5]);
        store.blocking_append([entry(2, 6)]).await.expect("append");
        drop(store);
        let store = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(indexes(&store), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(store.lock().entries[&6].log_id.leader_id.term, 2);
    }

    #[tokio::test]
    async fn opening_makes_the_group_directory_and_the_replayed_log_durable() {
        // Proves: a new group's directories are fsynced into their parents (a crash cannot
        // drop the directory and the log in it), and what a reopen replayed is fsynced before
        // anything is acknowledged on top of it (after a process crash the page cache may hold
        // records the disk does not), as the durability record of a simulation sees it.
        let temp = tempfile::tempdir().expect("temp dir");
        let root = std::fs::canonicalize(temp.path()).expect("canonical");
        let dir = root.join("groups").join("g");
        // Recording is per thread: the log's writes run on this one.
        crate::blocking::run_inline_on_this_thread(true);
        durable::record_on_this_thread(true);
        let mut store = LogStore::open(&dir).expect("open");
        let taken = durable::take_under(&root);
        let name = |n: &str| std::ffi::OsString::from(n);
        assert!(taken.dirs[&root].contains(&name("groups")), "{taken:?}");
        assert!(taken.dirs[&root.join("groups")].contains(&name("g")));
        assert!(taken.dirs[&dir].contains(&name(LOG_FILE)));
        assert_eq!(taken.files[&dir.join(LOG_FILE)], 0);

        store
            .blocking_append((1..=3).map(|i| entry(1, i)))
            .await
            .expect("append");
        let appended = store.file_bytes();
        assert_eq!(
            durable::take_under(&root).files[&dir.join(LOG_FILE)],
            appended
        );
        // Written without an fsync, as a process crash in the middle of an append leaves it.
        store
            .lock()
            .write(&encode_record(&RecordRef::Entry(&entry(1, 4))), false)
            .expect("write");
        assert!(
            durable::take_under(&root).files.is_empty(),
            "nothing fsynced"
        );
        drop(store);
        let store = LogStore::open(&dir).expect("reopen");
        let taken = durable::take_under(&root);
        durable::record_on_this_thread(false);
        crate::blocking::run_inline_on_this_thread(false);
        assert_eq!(indexes(&store), vec![1, 2, 3, 4]);
        assert_eq!(taken.files[&dir.join(LOG_FILE)], store.file_bytes());
    }

    #[tokio::test]
    async fn a_committed_vote_is_read_back_uncommitted_for_the_same_term_and_candidate() {
        // Proves: a node that led before a restart does not restart as leader (openraft does
        // that for a committed vote of its own, and would take a committed id that may not
        // have been fsynced as its read index), yet it stays bound to the vote it cast.
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = LogStore::open(dir.path()).expect("open");
        let vote = Vote::new_committed(4, 2);
        store.save_vote(&vote).await.expect("vote");
        assert_eq!(store.read_vote().await.expect("read"), Some(vote));
        drop(store);
        let mut store = LogStore::open(dir.path()).expect("reopen");
        let read = store.read_vote().await.expect("read").expect("a vote");
        assert!(!read.is_committed(), "{read:?}");
        assert_eq!(read, Vote::new(4, 2));
        // An uncommitted vote is read back as it was.
        store.save_vote(&Vote::new(5, 3)).await.expect("vote");
        drop(store);
        let mut store = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(
            store.read_vote().await.expect("read"),
            Some(Vote::new(5, 3))
        );
    }

    #[tokio::test]
    async fn after_a_failed_write_every_later_write_fails() {
        // Proves: once a write or fsync failed, the log refuses later writes (never
        // acknowledging anything on top of lost data) and says why.
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = LogStore::open(dir.path()).expect("open");
        store.lock().failed = Some("No space left on device".into());
        let error = store
            .blocking_append([entry(1, 1)])
            .await
            .expect_err("append refused");
        assert!(error.to_string().contains("No space left"), "{error}");
        let error = store
            .save_vote(&Vote::new(1, 1))
            .await
            .expect_err("vote refused");
        assert!(error.to_string().contains("No space left"), "{error}");
    }

    #[test]
    fn a_node_budget_is_shared_evenly_up_to_the_cap_per_group() {
        // Proves: each group's share is the budget over the groups, never more than the cap
        // per group (nor for no group at all).
        assert_eq!(CacheLimit::share(256 << 20, 0), ENTRY_CACHE_BYTES);
        assert_eq!(CacheLimit::share(256 << 20, 8), ENTRY_CACHE_BYTES);
        assert_eq!(CacheLimit::share(256 << 20, 64), 4 << 20);
        assert_eq!(CacheLimit::share(8 << 10, 3), (8 << 10) / 3);
    }

    #[tokio::test]
    async fn logs_sharing_a_lowered_limit_evict_down_to_it_at_their_next_append() {
        // Proves: two logs sharing one limit each keep what it allows; lowered, a log evicts
        // down to it at its next append (the other keeps its entries until its own), and every
        // entry still reads back equal to what was appended.
        let (dir_a, dir_b) = (
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        );
        let entry = |i: u64| insert_entry(i, vec![(i % 251) as u8; 10_000]);
        let limit = CacheLimit::new(1 << 20);
        let mut a = LogStore::open_with_limit(dir_a.path(), limit.clone()).expect("open");
        let mut b = LogStore::open_with_limit(dir_b.path(), limit.clone()).expect("open");
        for log in [&mut a, &mut b] {
            log.blocking_append((1..=40).map(entry))
                .await
                .expect("append");
        }
        let cached = |log: &LogStore| log.lock().cached_bytes;
        assert!(
            cached(&a) > 300_000 && cached(&b) > 300_000,
            "under the limit: all kept"
        );
        limit.set(50_000);
        a.blocking_append([entry(41)]).await.expect("append");
        assert!(cached(&a) <= 50_000, "{} cached after lowering", cached(&a));
        assert!(cached(&b) > 300_000, "b evicts at its own next append");
        b.blocking_append([entry(41)]).await.expect("append");
        assert!(cached(&b) <= 50_000, "{} cached after lowering", cached(&b));
        for log in [&mut a, &mut b] {
            let read = log.try_get_log_entries(1..=41).await.expect("read");
            assert_eq!(read, (1..=41).map(entry).collect::<Vec<_>>());
        }
    }

    #[tokio::test]
    async fn entries_beyond_the_memory_budget_are_read_back_from_the_file() {
        // Proves: with a budget of a few entries, only the newest stay decoded; every entry
        // reads back equal to what was appended, before and after a reopen and after a
        // purge rewrote the file (moving the records that are only on disk).
        let dir = tempfile::tempdir().expect("temp dir");
        let big = |i: u64| insert_entry(i, vec![(i % 251) as u8; 100_000 + i as usize]);
        let budget = 350_000;
        let check = |store: &mut LogStore, from: u64| {
            let inner = store.lock();
            let cached: Vec<u64> = inner
                .entries
                .iter()
                .filter(|(_, slot)| slot.entry.is_some())
                .map(|(&i, _)| i)
                .collect();
            assert!(
                inner.cached_bytes <= budget,
                "{} cached",
                inner.cached_bytes
            );
            assert!(
                cached.len() >= 2,
                "the newest entries stay decoded: {cached:?}"
            );
            assert_eq!(*cached.last().expect("cached"), 800);
            drop(inner);
            let read =
                futures::executor::block_on(store.try_get_log_entries(from..=800)).expect("read");
            assert_eq!(read, (from..=800).map(big).collect::<Vec<_>>());
        };
        let mut store = LogStore::open_with_cache(dir.path(), budget).expect("open");
        for chunk in (1..=800u64).collect::<Vec<_>>().chunks(7) {
            store
                .blocking_append(chunk.iter().map(|&i| big(i)))
                .await
                .expect("append");
        }
        check(&mut store, 1);
        drop(store);
        let mut store = LogStore::open_with_cache(dir.path(), budget).expect("reopen");
        check(&mut store, 1);
        // Purging most of the log rewrites the file: the kept records move.
        let before = store.file_bytes();
        store
            .purge(LogId::new(CommittedLeaderId::new(1, 1), 700))
            .await
            .expect("purge");
        assert!(store.file_bytes() < before / 4, "rewritten");
        check(&mut store, 701);
        drop(store);
        let mut store = LogStore::open_with_cache(dir.path(), budget).expect("reopen");
        check(&mut store, 701);
    }

    #[tokio::test]
    async fn purging_most_of_a_large_log_rewrites_the_file_small() {
        // Proves: when purged records dominate the file, it is rewritten with only the live
        // ones, and the rewritten file reopens to the same log.
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = LogStore::open(dir.path()).expect("open");
        let big = |i: u64| insert_entry(i, vec![7u8; 1 << 20]);
        store
            .blocking_append((1..=80).map(big))
            .await
            .expect("append");
        assert!(store.file_bytes() > REWRITE_DEAD_BYTES_MIN);
        store
            .purge(LogId::new(CommittedLeaderId::new(1, 1), 78))
            .await
            .expect("purge");
        assert!(
            store.file_bytes() < 3 << 20,
            "rewritten: {}",
            store.file_bytes()
        );
        drop(store);
        let store = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(indexes(&store), vec![79, 80]);
    }
}
