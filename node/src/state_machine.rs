//! A shard group's state machine: a `rhizome-core` [`ShardStore`], the last applied log id and
//! membership, and the ids of recently applied write batches.
//!
//! ## Files, per group, on every data directory (spindle) `d`
//!
//! ```text
//! d/groups/<table>.<shard>/
//!     live -> snap-<n>      symlink: where the in-memory store saves its segments
//!     snap-<n>/             one snapshot: column-XXXX.seg files (spread over spindles);
//!                           on the first spindle also MANIFEST and STATE
//!     CURRENT               (first spindle) the name of the last complete snapshot
//! ```
//!
//! A snapshot is taken by pointing `live` at a fresh `snap-<n>`, saving the store through it
//! (`ShardStore::save`), writing `STATE` (snapshot meta, applied batch ids), and only then
//! replacing `CURRENT`, so a crash at any point leaves the previous snapshot whole. A restart
//! opens the snapshot named by `CURRENT` and openraft re-applies the log after it.
//!
//! The snapshot shipped to a lagging replica is an archive of that directory's files (see
//! [`archive`]); openraft sends it in chunks; the receiver writes the files into its own
//! `snap-<n>`, spreading column files over its own spindles, and opens them.
//!
//! ## When snapshots are taken
//!
//! openraft builds one after a count of entries (`RaftSettings::snapshot_logs_since_last`).
//! Entries differ a thousandfold in size (one row or a bulk batch), so the state machine also
//! asks for one by size: once the rows applied since the last snapshot reach the larger of
//! a floor (`RaftSettings::snapshot_log_bytes_min`) and twice the last snapshot's files. The
//! log a restart replays then stays within a small multiple of the shard's size, and, since
//! each snapshot's threshold grows with the shard, a long load writes its snapshots in about
//! 2.5 times the final size in all (a fixed interval would rewrite the whole shard every
//! interval: quadratic in the shard's size).
//!
//! ## Batch ids
//!
//! A retried batch must change nothing. The state machine remembers, per client, the outcome
//! of its last [`SEQUENCES_PER_CLIENT_MAX`] batches, for at most [`CLIENTS_MAX`] clients
//! (the least recently written client is forgotten first). This state is part of snapshots,
//! so every replica answers a retry the same way.

// openraft's storage traits return its `StorageError` (a large type) by value; our helpers
// return the same type rather than converting at every call.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder};
use rhizome_core::batch::ColumnBatch;
use rhizome_core::shard::{Schema, ShardStore, StoreOptions};
use rhizome_core::value::Value;
use serde::{Deserialize, Serialize};

use crate::log_store::sync_dir;
use crate::types::{
    BatchId, Command, CommandResponse, Entry, LogId, SnapshotMeta, StorageError, StoredMembership,
    TypeConfig,
};

/// Clients whose batch ids are remembered.
pub const CLIENTS_MAX: usize = 4096;
/// Batches remembered per client: how many a client may have in flight to one shard.
pub const SEQUENCES_PER_CLIENT_MAX: usize = 64;
/// File naming the current snapshot directory.
pub const CURRENT_FILE: &str = "CURRENT";
/// File holding the state machine's own state inside a snapshot directory.
pub const STATE_FILE: &str = "STATE";
const LIVE_LINK: &str = "live";
/// Snapshots built at the same time in this process: each holds its store's image in memory
/// while it writes, and a bulk load brings every group of a node to its snapshot threshold at
/// about the same moment.
const SNAPSHOT_BUILDS_AT_ONCE: usize = 2;
static SNAPSHOT_BUILDS: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(SNAPSHOT_BUILDS_AT_ONCE);
const SNAPSHOT_PREFIX: &str = "snap-";
/// Largest file in a snapshot archive (a bound on what a corrupt archive makes us allocate).
pub const ARCHIVE_FILE_BYTES_MAX: u64 = 16 << 30;

/// Outcome of one remembered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Written {
    first_id: u64,
    count: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ClientBatches {
    /// Outcome by sequence, the newest [`SEQUENCES_PER_CLIENT_MAX`].
    outcomes: BTreeMap<u64, Written>,
    /// Log index of this client's last applied batch: the eviction order.
    last_index: u64,
}

/// Recently applied batch ids.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppliedBatches {
    clients: HashMap<u64, ClientBatches>,
}

/// What a batch id means to the state machine now.
enum Seen {
    New,
    Duplicate(Written),
    Stale,
}

impl AppliedBatches {
    fn check(&self, batch: BatchId) -> Seen {
        let Some(client) = self.clients.get(&batch.client) else {
            return Seen::New;
        };
        if let Some(written) = client.outcomes.get(&batch.sequence) {
            return Seen::Duplicate(*written);
        }
        let full = client.outcomes.len() >= SEQUENCES_PER_CLIENT_MAX;
        match client.outcomes.keys().next() {
            Some(&oldest) if full && batch.sequence < oldest => Seen::Stale,
            _ => Seen::New,
        }
    }

    fn record(&mut self, batch: BatchId, written: Written, index: u64) {
        if !self.clients.contains_key(&batch.client) && self.clients.len() >= CLIENTS_MAX {
            let oldest = self
                .clients
                .iter()
                .min_by_key(|(_, c)| c.last_index)
                .map(|(&id, _)| id)
                .expect("a full table has a client");
            self.clients.remove(&oldest);
        }
        let client = self.clients.entry(batch.client).or_default();
        client.outcomes.insert(batch.sequence, written);
        while client.outcomes.len() > SEQUENCES_PER_CLIENT_MAX {
            client.outcomes.pop_first();
        }
        client.last_index = index;
    }
}

/// What `STATE` holds.
#[derive(Debug, Serialize, Deserialize)]
struct SavedState {
    meta: SnapshotMeta,
    batches: AppliedBatches,
}

/// The directories of one group, one per spindle.
#[derive(Debug, Clone)]
pub struct GroupDirs {
    /// `<spindle>/groups/<group>` for each spindle; the first holds the log and `CURRENT`.
    pub dirs: Vec<PathBuf>,
}

impl GroupDirs {
    pub fn new(spindles: &[PathBuf], group_dir_name: &str) -> GroupDirs {
        GroupDirs {
            dirs: spindles
                .iter()
                .map(|s| s.join("groups").join(group_dir_name))
                .collect(),
        }
    }

    pub fn first(&self) -> &Path {
        &self.dirs[0]
    }

    fn live_dirs(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join(LIVE_LINK)).collect()
    }

    fn current(&self) -> std::io::Result<Option<String>> {
        match std::fs::read_to_string(self.first().join(CURRENT_FILE)) {
            Ok(name) => Ok(Some(name.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The next snapshot directory name: one past the highest on any spindle.
    fn next_snapshot_name(&self) -> std::io::Result<String> {
        let mut highest = 0u64;
        for dir in &self.dirs {
            if !dir.exists() {
                continue;
            }
            for entry in std::fs::read_dir(dir)? {
                let name = entry?.file_name().to_string_lossy().to_string();
                if let Some(n) = name
                    .strip_prefix(SNAPSHOT_PREFIX)
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    highest = highest.max(n);
                }
            }
        }
        Ok(format!("{SNAPSHOT_PREFIX}{}", highest + 1))
    }

    /// Create `name` on every spindle and point `live` at it (atomically, durably).
    fn point_live_at(&self, name: &str) -> std::io::Result<()> {
        for dir in &self.dirs {
            rhizome_core::durable::create_dir_all(&dir.join(name))?;
            let tmp = dir.join("live.tmp");
            let _ = std::fs::remove_file(&tmp);
            std::os::unix::fs::symlink(name, &tmp)?;
            std::fs::rename(&tmp, dir.join(LIVE_LINK))?;
            rhizome_core::durable::renamed(&tmp, &dir.join(LIVE_LINK));
            sync_dir(dir)?;
        }
        Ok(())
    }

    /// Make `name` the current snapshot and remove every other snapshot directory.
    fn commit_current(&self, name: &str) -> std::io::Result<()> {
        write_atomic(&self.first().join(CURRENT_FILE), name.as_bytes())?;
        for dir in &self.dirs {
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                let file_name = entry.file_name().to_string_lossy().to_string();
                if file_name.starts_with(SNAPSHOT_PREFIX) && file_name != name {
                    std::fs::remove_dir_all(entry.path())?;
                }
            }
        }
        Ok(())
    }
}

/// Write a file durably: temp name, fsync, rename, directory fsync.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    rhizome_core::durable::file_synced(&tmp, &file);
    std::fs::rename(&tmp, path)?;
    rhizome_core::durable::renamed(&tmp, path);
    sync_dir(path.parent().expect("a file has a directory"))
}

/// Snapshot archives: the files of a snapshot directory, in one byte string.
///
/// ```text
/// archive := magic "RHZSNAP1" | file_count: u32 LE | file*
/// file    := name_len: u16 LE | name (UTF-8) | data_len: u64 LE | data | crc32c(data): u32 LE
/// ```
pub mod archive {
    use super::ARCHIVE_FILE_BYTES_MAX;

    pub const MAGIC: &[u8; 8] = b"RHZSNAP1";

    pub fn encode(files: &[(String, Vec<u8>)]) -> Vec<u8> {
        let total: usize = files.iter().map(|(n, d)| n.len() + d.len() + 14).sum();
        let mut out = Vec::with_capacity(total + 12);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(files.len() as u32).to_le_bytes());
        for (name, data) in files {
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(data.len() as u64).to_le_bytes());
            out.extend_from_slice(data);
            out.extend_from_slice(&crc32c::crc32c(data).to_le_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Vec<(String, &[u8])>, String> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8], String> {
            let slice = bytes
                .get(at..at + n)
                .ok_or_else(|| format!("archive cut short at byte {at}"))?;
            at += n;
            Ok(slice)
        };
        if take(8)? != MAGIC {
            return Err("not a snapshot archive".into());
        }
        let count = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes"));
        let mut files = Vec::new();
        for _ in 0..count {
            let name_len = u16::from_le_bytes(take(2)?.try_into().expect("2 bytes")) as usize;
            let name = std::str::from_utf8(take(name_len)?)
                .map_err(|_| "file name is not UTF-8".to_string())?
                .to_string();
            if name.contains('/') || name.starts_with('.') || name.is_empty() {
                return Err(format!("bad file name {name:?}"));
            }
            let len = u64::from_le_bytes(take(8)?.try_into().expect("8 bytes"));
            if len > ARCHIVE_FILE_BYTES_MAX {
                return Err(format!("file {name} of {len} bytes"));
            }
            let data = take(len as usize)?;
            let crc = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes"));
            if crc32c::crc32c(data) != crc {
                return Err(format!("file {name}: checksum mismatch"));
            }
            files.push((name, data));
        }
        Ok(files)
    }
}

/// The state behind the lock.
#[derive(Debug)]
pub struct ShardState {
    pub store: ShardStore,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    batches: AppliedBatches,
    /// The last complete snapshot: its meta and directory name.
    snapshot: Option<(SnapshotMeta, String)>,
    growth: LogGrowth,
}

/// How much the log grew since the last snapshot (see the module's notes on snapshots).
#[derive(Debug, Default, Clone, Copy)]
struct LogGrowth {
    /// Payload bytes applied since this replica opened.
    applied_bytes: u64,
    /// `applied_bytes` when the last snapshot's image was taken (or the replica opened).
    at_snapshot: u64,
    /// Bytes of the last snapshot's files (0 until this process built or installed one).
    snapshot_bytes: u64,
    /// A snapshot was asked for and is not built yet.
    requested: bool,
}

impl LogGrowth {
    /// Whether a snapshot is due, with `floor` the least growth that asks for one.
    fn due(&self, floor: u64) -> bool {
        !self.requested
            && self.applied_bytes - self.at_snapshot
                >= floor.max(self.snapshot_bytes.saturating_mul(2))
    }
}

/// Shared between the Raft core (which applies) and the services (which read).
#[derive(Debug)]
pub struct ShardShared {
    pub dirs: GroupDirs,
    state: RwLock<ShardState>,
    /// Held while the snapshot directories change or are read (building, installing, and
    /// reading a snapshot for a replica); taken before `state` where both are.
    files: Mutex<bool>,
    /// Payload bytes applied since the last snapshot that ask for the next one (at least).
    snapshot_log_bytes_min: u64,
    /// Woken when the log outgrew the size policy; the group's task then asks openraft for a
    /// snapshot ([`ShardShared::snapshot_wanted`]).
    snapshot_wanted: Arc<tokio::sync::Notify>,
}

impl ShardShared {
    pub fn read(&self) -> RwLockReadGuard<'_, ShardState> {
        self.state
            .read()
            .expect("state machine lock poisoned by a panic")
    }

    fn write(&self) -> RwLockWriteGuard<'_, ShardState> {
        self.state
            .write()
            .expect("state machine lock poisoned by a panic")
    }

    /// The snapshot files lock. Its value says whether the replica was closed.
    fn files(&self) -> MutexGuard<'_, bool> {
        self.files
            .lock()
            .expect("snapshot files lock poisoned by a panic")
    }

    /// The files lock for a step that changes the files, or an error once the replica is
    /// closed.
    fn files_to_change(&self) -> Result<MutexGuard<'_, bool>, StorageError> {
        let files = self.files();
        if *files {
            return Err(snapshot_error(
                ErrorVerb::Write,
                format!("{}: the replica is closed", self.dirs.first().display()),
            ));
        }
        Ok(files)
    }

    /// Close the replica's files: wait for a snapshot build or install under way and refuse
    /// any later one. openraft runs those steps in tasks of their own that outlive the Raft
    /// core's shutdown; without this, a build begun just before a node stopped could switch
    /// `CURRENT` and remove the snapshot a restart in the same process has just opened, or
    /// write into the directories of a group being dropped. Blocks: call it off the
    /// runtime's workers.
    pub fn close(&self) {
        *self.files() = true;
    }

    /// Notified when the size policy wants a snapshot: whoever holds the group's Raft handle
    /// waits on it and calls `raft.trigger().snapshot()`.
    pub fn snapshot_wanted(&self) -> Arc<tokio::sync::Notify> {
        self.snapshot_wanted.clone()
    }
}

/// openraft's handle on a shard's state machine.
#[derive(Debug, Clone)]
pub struct ShardStateMachine {
    shared: Arc<ShardShared>,
}

/// Append a checked batch. A failure here (not a bad batch: those were rejected before) stops
/// the state machine, since the replica can no longer follow the log.
fn append(store: &mut ShardStore, columns: &ColumnBatch) -> Result<Written, StorageError> {
    let ids = store
        .append_columns(columns)
        .map_err(|e| sm_error(ErrorVerb::Write, e))?;
    Ok(Written {
        first_id: ids.start,
        count: ids.end - ids.start,
    })
}

fn sm_error(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    StorageError::from_io_error(
        ErrorSubject::StateMachine,
        verb,
        std::io::Error::other(e.to_string()),
    )
}

fn snapshot_error(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    StorageError::from_io_error(
        ErrorSubject::Snapshot(None),
        verb,
        std::io::Error::other(e.to_string()),
    )
}

impl ShardStateMachine {
    /// Open the group's last snapshot, or start an empty store with `schema`. A snapshot is
    /// asked for once at least `snapshot_log_bytes_min` bytes of rows were applied since the
    /// last one (`u64::MAX`: only openraft's count of entries takes snapshots).
    pub fn open(
        dirs: GroupDirs,
        schema: Schema,
        snapshot_log_bytes_min: u64,
    ) -> Result<ShardStateMachine, StorageError> {
        let read_err = |e: std::io::Error| sm_error(ErrorVerb::Read, e);
        for dir in &dirs.dirs {
            rhizome_core::durable::create_dir_all(dir).map_err(read_err)?;
        }
        let state = match dirs.current().map_err(read_err)? {
            Some(name) => {
                dirs.point_live_at(&name).map_err(read_err)?;
                let store = ShardStore::open(StoreOptions::on_disk(dirs.live_dirs()))
                    .map_err(|e| sm_error(ErrorVerb::Read, e))?;
                let saved: SavedState = bincode::deserialize(
                    &std::fs::read(dirs.first().join(&name).join(STATE_FILE)).map_err(read_err)?,
                )
                .map_err(|e| sm_error(ErrorVerb::Read, format!("{STATE_FILE}: {e}")))?;
                tracing::info!(dir = %dirs.first().display(), snapshot = %name, applied = ?saved.meta.last_log_id, records = store.record_count(), "state machine opened from snapshot");
                ShardState {
                    store,
                    last_applied: saved.meta.last_log_id,
                    membership: saved.meta.last_membership.clone(),
                    batches: saved.batches,
                    snapshot: Some((saved.meta, name)),
                    growth: LogGrowth::default(),
                }
            }
            None => {
                let name = dirs.next_snapshot_name().map_err(read_err)?;
                dirs.point_live_at(&name).map_err(read_err)?;
                ShardState {
                    store: ShardStore::new(schema, StoreOptions::on_disk(dirs.live_dirs())),
                    last_applied: None,
                    membership: StoredMembership::default(),
                    batches: AppliedBatches::default(),
                    snapshot: None,
                    growth: LogGrowth::default(),
                }
            }
        };
        Ok(ShardStateMachine {
            shared: Arc::new(ShardShared {
                dirs,
                state: RwLock::new(state),
                files: Mutex::new(false),
                snapshot_log_bytes_min,
                snapshot_wanted: Arc::default(),
            }),
        })
    }

    pub fn shared(&self) -> Arc<ShardShared> {
        self.shared.clone()
    }

    /// Read the files of snapshot directory `name` into an archive.
    fn archive_of(&self, name: &str) -> std::io::Result<Vec<u8>> {
        let mut files = Vec::new();
        for dir in &self.shared.dirs.dirs {
            let snap = dir.join(name);
            let mut entries: Vec<_> = std::fs::read_dir(&snap)?.collect::<Result<_, _>>()?;
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                let file_name = entry.file_name().to_string_lossy().to_string();
                if file_name.ends_with(".tmp") {
                    continue;
                }
                files.push((file_name, std::fs::read(entry.path())?));
            }
        }
        Ok(archive::encode(&files))
    }
}

/// Apply one command to the state; the response is the same on every replica.
fn apply_command(
    state: &mut ShardState,
    command: &Command,
    index: u64,
) -> Result<CommandResponse, StorageError> {
    let Some(batch) = command.batch() else {
        return Ok(CommandResponse::Rejected {
            reason: "a shard group does not apply metadata commands".into(),
        });
    };
    match state.batches.check(batch) {
        Seen::Duplicate(w) => {
            return Ok(CommandResponse::Written {
                first_id: w.first_id,
                count: w.count,
                duplicate: true,
            })
        }
        Seen::Stale => return Ok(CommandResponse::Stale),
        Seen::New => {}
    }
    let written = match command {
        Command::Insert { rows, .. } => {
            let rows: Vec<Vec<Value>> = match bincode::deserialize(rows) {
                Ok(rows) => rows,
                Err(e) => {
                    return Ok(CommandResponse::Rejected {
                        reason: format!("rows do not decode: {e}"),
                    })
                }
            };
            let columns = match ColumnBatch::from_rows(state.store.schema(), &rows) {
                Ok(columns) => columns,
                Err(e) => {
                    return Ok(CommandResponse::Rejected {
                        reason: e.to_string(),
                    })
                }
            };
            append(&mut state.store, &columns)?
        }
        Command::InsertColumns { columns, .. } => {
            let checked = ColumnBatch::decode(columns)
                .and_then(|batch| batch.check(state.store.schema()).map(|()| batch));
            match checked {
                Ok(columns) => append(&mut state.store, &columns)?,
                Err(e) => {
                    return Ok(CommandResponse::Rejected {
                        reason: e.to_string(),
                    })
                }
            }
        }
        Command::Delete { condition, .. } => {
            // Plan first, so a bad condition is rejected before anything changes.
            let ids = match state.store.select_ids(condition, usize::MAX) {
                Ok(ids) => ids,
                Err(e) => {
                    return Ok(CommandResponse::Rejected {
                        reason: e.to_string(),
                    })
                }
            };
            state
                .store
                .delete_ids(&ids)
                .map_err(|e| sm_error(ErrorVerb::Write, e))?;
            Written {
                first_id: 0,
                count: ids.len() as u64,
            }
        }
        Command::Meta(_) => unreachable!("metadata commands were rejected above"),
    };
    state.batches.record(batch, written, index);
    Ok(CommandResponse::Written {
        first_id: written.first_id,
        count: written.count,
        duplicate: false,
    })
}

impl RaftSnapshotBuilder<TypeConfig> for ShardStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        // Not in a simulation (inline steps): a permit held on another test's thread would
        // make this wait on real time, which no seed decides.
        let _permit = match crate::blocking::runs_inline() {
            true => None,
            false => Some(
                SNAPSHOT_BUILDS
                    .acquire()
                    .await
                    .expect("the snapshot semaphore is never closed"),
            ),
        };
        let this = self.clone();
        crate::blocking::run(move || this.build_snapshot_blocking())
            .await
            .map_err(|e| snapshot_error(ErrorVerb::Write, e))?
    }
}

impl ShardStateMachine {
    fn build_snapshot_blocking(&self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let write_err = |e: std::io::Error| snapshot_error(ErrorVerb::Write, e);
        let started = std::time::Instant::now();
        let dirs = &self.shared.dirs;
        let _files = self.shared.files_to_change()?;
        let name = dirs.next_snapshot_name().map_err(write_err)?;
        // The store is encoded in memory under a read lock (queries go on, applies wait), as of
        // last_applied; the files are written after it is released. Holding it across the
        // writes and fsyncs would stall the group's applies for the disk's time — and the
        // queries too, since a waiting writer holds back new readers.
        let (image, saved, applied_bytes) = {
            let state = self.shared.read();
            let image = state
                .store
                .image()
                .map_err(|e| snapshot_error(ErrorVerb::Write, e))?;
            let last = state.last_applied;
            let meta = SnapshotMeta {
                last_log_id: last,
                last_membership: state.membership.clone(),
                snapshot_id: format!(
                    "{}-{}-{name}",
                    last.map(|l| l.leader_id.term).unwrap_or(0),
                    last.map(|l| l.index).unwrap_or(0)
                ),
            };
            let saved = SavedState {
                meta,
                batches: state.batches.clone(),
            };
            (image, saved, state.growth.applied_bytes)
        };
        let encoded_ms = started.elapsed().as_millis() as u64;
        let (meta, last) = (saved.meta.clone(), saved.meta.last_log_id);
        dirs.point_live_at(&name).map_err(write_err)?;
        let bytes = image
            .write_to(&dirs.live_dirs())
            .map_err(|e| snapshot_error(ErrorVerb::Write, e))?;
        write_atomic(
            &dirs.first().join(&name).join(STATE_FILE),
            &bincode::serialize(&saved).expect("state serialises"),
        )
        .map_err(write_err)?;
        dirs.commit_current(&name).map_err(write_err)?;
        {
            let mut state = self.shared.write();
            state.snapshot = Some((meta.clone(), name.clone()));
            state.growth = LogGrowth {
                at_snapshot: applied_bytes,
                snapshot_bytes: bytes,
                requested: false,
                ..state.growth
            };
        }
        tracing::info!(dir = %dirs.first().display(), snapshot = %name, applied = ?last, bytes, encoded_ms, elapsed_ms = started.elapsed().as_millis() as u64, "snapshot built");
        // openraft keeps only the meta of a snapshot it asked for; the files are read into an
        // archive when a replica needs them (`get_current_snapshot`), not here, so a snapshot
        // taken during a bulk load costs one write of the segments and no read-back.
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(Vec::new())),
        })
    }

    fn install_blocking(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StorageError> {
        let _files = self.shared.files_to_change()?;
        let err = |e: String| snapshot_error(ErrorVerb::Write, e);
        let io = |e: std::io::Error| snapshot_error(ErrorVerb::Write, e);
        let files = archive::decode(data).map_err(err)?;
        let dirs = &self.shared.dirs;
        let name = dirs.next_snapshot_name().map_err(io)?;
        let spindles = dirs.dirs.len();
        for dir in &dirs.dirs {
            rhizome_core::durable::create_dir_all(&dir.join(&name)).map_err(io)?;
        }
        for (file_name, bytes) in &files {
            // Column files go where this node's store looks for them: column i on spindle
            // i mod spindles; everything else on the first spindle.
            let spindle = file_name
                .strip_prefix("column-")
                .and_then(|r| r.strip_suffix(".seg"))
                .and_then(|n| n.parse::<usize>().ok())
                .map_or(0, |i| i % spindles);
            let path = dirs.dirs[spindle].join(&name).join(file_name);
            std::fs::write(&path, bytes)
                .and_then(|_| {
                    let file = std::fs::File::open(&path)?;
                    file.sync_all()?;
                    rhizome_core::durable::file_synced(&path, &file);
                    Ok(())
                })
                .map_err(io)?;
        }
        for dir in &dirs.dirs {
            sync_dir(&dir.join(&name)).map_err(io)?;
        }
        let saved: SavedState = bincode::deserialize(
            files
                .iter()
                .find(|(n, _)| n == STATE_FILE)
                .map(|(_, b)| *b)
                .ok_or_else(|| err(format!("snapshot without {STATE_FILE}")))?,
        )
        .map_err(|e| err(format!("{STATE_FILE}: {e}")))?;
        let mut state = self.shared.write();
        dirs.point_live_at(&name).map_err(io)?;
        let store = ShardStore::open(StoreOptions::on_disk(dirs.live_dirs()))
            .map_err(|e| snapshot_error(ErrorVerb::Read, e))?;
        dirs.commit_current(&name).map_err(io)?;
        tracing::info!(dir = %dirs.first().display(), snapshot = %name, applied = ?meta.last_log_id, records = store.record_count(), "snapshot installed");
        state.store = store;
        state.last_applied = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        state.batches = saved.batches;
        state.snapshot = Some((meta.clone(), name));
        state.growth = LogGrowth {
            at_snapshot: state.growth.applied_bytes,
            snapshot_bytes: data.len() as u64,
            requested: false,
            ..state.growth
        };
        Ok(())
    }
}

impl RaftStateMachine<TypeConfig> for ShardStateMachine {
    type SnapshotBuilder = ShardStateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let state = self.shared.read();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        // Applying is CPU work (decoding, validating, appending to every column): it runs on
        // the blocking pool so runtime workers stay free for heartbeats and RPCs.
        let entries: Vec<Entry> = entries.into_iter().collect();
        let shared = self.shared.clone();
        crate::blocking::run(move || {
            let mut state = shared.write();
            let mut responses = Vec::with_capacity(entries.len());
            for entry in entries {
                state.last_applied = Some(entry.log_id);
                let response = match &entry.payload {
                    EntryPayload::Blank => CommandResponse::None,
                    EntryPayload::Membership(membership) => {
                        state.membership =
                            StoredMembership::new(Some(entry.log_id), membership.clone());
                        CommandResponse::None
                    }
                    EntryPayload::Normal(command) => {
                        state.growth.applied_bytes += command.payload_bytes();
                        apply_command(&mut state, command, entry.log_id.index)?
                    }
                };
                responses.push(response);
            }
            if state.growth.due(shared.snapshot_log_bytes_min) {
                state.growth.requested = true;
                shared.snapshot_wanted.notify_one();
            }
            Ok(responses)
        })
        .await
        .map_err(|e| sm_error(ErrorVerb::Write, e))?
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let this = self.clone();
        let meta = meta.clone();
        crate::blocking::run(move || this.install_blocking(&meta, snapshot.get_ref()))
            .await
            .map_err(|e| snapshot_error(ErrorVerb::Write, e))?
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let this = self.clone();
        let current = crate::blocking::run(move || {
            // Under the files lock, so a snapshot built meanwhile cannot remove the directory
            // being read.
            let _files = this.shared.files();
            let current = this.shared.read().snapshot.clone();
            current
                .map(|(meta, name)| Ok((meta, this.archive_of(&name)?)))
                .transpose()
        })
        .await
        .map_err(|e| snapshot_error(ErrorVerb::Read, e))?
        .map_err(|e: std::io::Error| snapshot_error(ErrorVerb::Read, e))?;
        Ok(current.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(client: u64, sequence: u64) -> BatchId {
        BatchId { client, sequence }
    }

    #[test]
    fn batch_ids_answer_duplicates_remember_a_window_and_evict_the_oldest_client() {
        // Proves: a remembered batch is a duplicate with its first outcome; batches may arrive
        // out of order within the window; one older than a full window is stale; past
        // CLIENTS_MAX clients the least recently written is forgotten.
        let mut batches = AppliedBatches::default();
        let written = Written {
            first_id: 10,
            count: 5,
        };
        batches.record(batch(1, 5), written, 1);
        assert!(matches!(batches.check(batch(1, 5)), Seen::Duplicate(w) if w == written));
        assert!(matches!(batches.check(batch(1, 4)), Seen::New));
        for s in 6..6 + SEQUENCES_PER_CLIENT_MAX as u64 {
            batches.record(batch(1, s), written, s);
        }
        assert!(matches!(batches.check(batch(1, 5)), Seen::Stale));
        assert!(matches!(
            batches.check(batch(1, 5 + SEQUENCES_PER_CLIENT_MAX as u64)),
            Seen::Duplicate(_)
        ));
        for c in 2..=CLIENTS_MAX as u64 {
            batches.record(batch(c, 1), written, 1_000 + c);
        }
        assert_eq!(batches.clients.len(), CLIENTS_MAX);
        batches.record(batch(99_999, 1), written, 1_000_000);
        assert_eq!(batches.clients.len(), CLIENTS_MAX);
        assert!(
            !batches.clients.contains_key(&1),
            "client 1 wrote least recently"
        );
    }

    #[test]
    fn snapshot_archives_round_trip_and_reject_damage() {
        // Proves: an archive decodes to the files it was made of, and a flipped data byte, a
        // cut-short archive and a path in a file name are errors, not panics.
        let files = vec![
            ("MANIFEST".to_string(), vec![1, 2, 3]),
            ("column-0000.seg".to_string(), vec![9; 1000]),
        ];
        let bytes = archive::encode(&files);
        let decoded = archive::decode(&bytes).expect("decodes");
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[1].0, "column-0000.seg");
        assert_eq!(decoded[1].1, &files[1].1[..]);
        let mut flipped = bytes.clone();
        let inside_data = bytes.len() - 10;
        flipped[inside_data] ^= 1;
        assert!(archive::decode(&flipped).is_err());
        assert!(archive::decode(&bytes[..bytes.len() - 1]).is_err());
        let evil = archive::encode(&[("../x".to_string(), vec![])]);
        assert!(archive::decode(&evil).is_err());
    }

    #[tokio::test]
    async fn the_size_policy_asks_for_a_snapshot_when_the_log_outgrows_it() {
        // Proves: the state machine asks for a snapshot once the rows applied since the last
        // one reach the floor, not before and only once; after a snapshot it waits for twice
        // that snapshot's bytes when that is more than the floor.
        let root = tempfile::tempdir().expect("temp dir");
        let dirs = GroupDirs::new(&[root.path().join("a")], "t.0");
        let schema = Schema::new(vec![rhizome_core::shard::ColumnDef {
            name: "x".into(),
            data_type: rhizome_core::value::DataType::Int,
            nullable: true,
        }])
        .expect("schema");
        let floor = 4_000;
        let mut sm = ShardStateMachine::open(dirs, schema.clone(), floor).expect("opens");
        let mut index = 0;
        let mut sequence = 0;
        let mut applied = 0;
        // Apply a batch of `rows` rows; returns the payload bytes it added.
        let mut apply = async |sm: &mut ShardStateMachine, rows: i64| -> u64 {
            let rows: Vec<Vec<Value>> = (0..rows).map(|i| vec![Value::Int(i * 1_000)]).collect();
            let columns = bytes::Bytes::from(
                ColumnBatch::from_rows(&schema, &rows)
                    .expect("rows fit")
                    .encode(),
            );
            let command = Command::InsertColumns {
                batch: BatchId {
                    client: 1,
                    sequence,
                },
                columns,
            };
            let bytes = command.payload_bytes();
            sequence += 1;
            index += 1;
            let entry = Entry {
                log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
                payload: EntryPayload::Normal(command),
            };
            sm.apply(vec![entry]).await.expect("applies");
            bytes
        };
        let requested = |sm: &ShardStateMachine| sm.shared.read().growth.requested;
        while applied + 1_000 < floor {
            applied += apply(&mut sm, 100).await;
            assert!(
                !requested(&sm),
                "asked after {applied} bytes, below {floor}"
            );
        }
        while applied < floor {
            applied += apply(&mut sm, 100).await;
        }
        assert!(requested(&sm), "not asked after {applied} bytes");
        // One ask: the group's task is woken once (the permit is stored for it).
        let wanted = sm.shared().snapshot_wanted();
        tokio::time::timeout(std::time::Duration::from_secs(5), wanted.notified())
            .await
            .expect("the ask wakes the group's task");
        apply(&mut sm, 100).await;
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), wanted.notified())
                .await
                .is_err(),
            "asked again before the snapshot was built"
        );

        // Make the store's snapshot bigger than the floor, then snapshot.
        while sm.shared.read().store.record_count() < 20_000 {
            apply(&mut sm, 1_000).await;
        }
        sm.build_snapshot_blocking().expect("builds");
        let growth = sm.shared.read().growth;
        assert!(!growth.requested);
        let next = floor.max(2 * growth.snapshot_bytes);
        assert!(next > floor, "snapshot of {} bytes", growth.snapshot_bytes);
        let mut since = 0;
        while since + 8_000 < next {
            since += apply(&mut sm, 1_000).await;
            assert!(!requested(&sm), "asked after {since} bytes, below {next}");
        }
        while since < next {
            since += apply(&mut sm, 1_000).await;
        }
        assert!(requested(&sm), "not asked after {since} bytes");
    }

    /// The snapshot directories of a replica and what `CURRENT` names.
    fn snapshot_files(dirs: &GroupDirs) -> (Vec<String>, Option<String>) {
        let mut names: Vec<String> = std::fs::read_dir(dirs.first())
            .expect("group directory")
            .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with(SNAPSHOT_PREFIX))
            .collect();
        names.sort();
        (names, dirs.current().expect("CURRENT reads"))
    }

    #[test]
    fn a_closed_replica_refuses_snapshot_steps_and_leaves_its_files_alone() {
        // Proves: before `close` a build makes a new snapshot current; after it, a build and
        // an install (steps openraft may still run after the core stopped) are errors and
        // neither the snapshot directories nor `CURRENT` change, so a reopening in the same
        // process keeps the snapshot it opened.
        let root = tempfile::tempdir().expect("temp dir");
        let dirs = GroupDirs::new(&[root.path().join("a"), root.path().join("b")], "t.0");
        let schema = Schema::new(vec![rhizome_core::shard::ColumnDef {
            name: "x".into(),
            data_type: rhizome_core::value::DataType::Int,
            nullable: true,
        }])
        .expect("schema");
        let sm = ShardStateMachine::open(dirs.clone(), schema.clone(), u64::MAX).expect("opens");
        let built = sm.build_snapshot_blocking().expect("builds");
        let before = snapshot_files(&dirs);
        let current = before.1.clone().expect("the build made a snapshot current");
        assert!(built.meta.snapshot_id.ends_with(&current), "{before:?}");
        assert_eq!(before.0, vec![current.clone()]);
        let archive = sm.archive_of(&current).expect("archive");

        sm.shared().close();
        assert!(sm.build_snapshot_blocking().is_err());
        assert!(sm.install_blocking(&built.meta, &archive).is_err());
        assert_eq!(snapshot_files(&dirs), before);
        ShardStateMachine::open(dirs, schema, u64::MAX).expect("reopens from the same snapshot");
    }
}
