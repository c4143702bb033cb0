//! A shard store: one shard replica's table data, as one [`ColumnShard`] per column.
//!
//! Records get dense local ids `0, 1, 2, …` in the order batches are applied. A batch is
//! validated whole before anything is applied, so a rejected batch changes nothing. Deletes
//! evaluate their condition on the store, remove the records from every column's Rhizomes
//! and mark them in the deleted set; the record column keeps their symbols.
//!
//! Durability: [`ShardStore::save`] writes one segment file per column shard, spread over the
//! store's data directories (spindles), then a manifest naming them, each written to a temp
//! name, fsynced and renamed, so a crash leaves either the old or the new state.
//! [`ShardStore::open`] reads them back and checks every block.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::batch::ColumnBatch;
use crate::bytes::{ByteReader, ByteWriter};
use crate::column::{ColumnBytes, ColumnShard};
use crate::planner;
use crate::query::{Condition, Partial, ShardQuery};
use crate::rhizome::{ArenaOptions, Bitmap, RecordId};
use crate::segment::{Segment, SegmentWriter};
use crate::value::{DataType, Value};
use crate::{Error, Result};

/// Most rows in one insert batch (one Raft entry): bounds the memory of validation.
pub const BATCH_ROWS_MAX: usize = 1 << 20;
/// File name of a store's manifest, in its first data directory.
pub const MANIFEST_FILE: &str = "MANIFEST";
const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    pub columns: Vec<ColumnDef>,
}

impl Schema {
    pub fn new(columns: Vec<ColumnDef>) -> Result<Schema> {
        if columns.is_empty() {
            return Err(Error::Schema("a table needs at least one column".into()));
        }
        for (i, column) in columns.iter().enumerate() {
            if columns[..i]
                .iter()
                .any(|c| c.name.eq_ignore_ascii_case(&column.name))
            {
                return Err(Error::Schema(format!(
                    "column {} is defined twice",
                    column.name
                )));
            }
        }
        Ok(Schema { columns })
    }

    /// The index and definition of a column, by case-insensitive name.
    pub fn column(&self, name: &str) -> Result<(usize, &ColumnDef)> {
        self.columns
            .iter()
            .enumerate()
            .find(|(_, c)| c.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| Error::Plan(format!("unknown column {name}")))
    }
}

/// Where and how a store keeps its data.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreOptions {
    /// Data directories (spindles); column shards are spread over them round-robin, so two
    /// columns next to each other — often intersected together — sit on different spindles.
    pub data_dirs: Vec<PathBuf>,
    pub arena: ArenaOptions,
}

impl StoreOptions {
    /// An in-memory store (no data directory): `save` is an error.
    pub fn in_memory() -> Self {
        StoreOptions {
            data_dirs: Vec::new(),
            arena: ArenaOptions::default(),
        }
    }

    pub fn on_disk(data_dirs: Vec<PathBuf>) -> Self {
        StoreOptions {
            data_dirs,
            arena: ArenaOptions::default(),
        }
    }
}

/// Sizes of a store, per column.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreBytes {
    pub columns: Vec<(String, ColumnBytes)>,
}

impl StoreBytes {
    pub fn total(&self) -> u64 {
        self.columns.iter().map(|(_, b)| b.total()).sum()
    }
}

/// A [`ShardStore`] encoded in memory ([`ShardStore::image`]), to be written as its segment
/// files by [`StoreImage::write_to`].
#[derive(Debug, PartialEq)]
pub struct StoreImage {
    /// Each column's segment blocks, in column order.
    columns: Vec<[(&'static str, Vec<u8>); 2]>,
    /// The manifest block.
    manifest: Vec<u8>,
}

impl StoreImage {
    /// Write the column segments, then the manifest (each atomically: temp file, fsync,
    /// rename, directory fsync), column i on data directory i mod the count. Returns bytes
    /// written.
    pub fn write_to(self, data_dirs: &[PathBuf]) -> Result<u64> {
        let mut written = 0;
        for (index, blocks) in self.columns.into_iter().enumerate() {
            let path = ShardStore::column_file(data_dirs, index)?;
            crate::durable::create_dir_all(path.parent().expect("a column file has a directory"))
                .map_err(|e| Error::io(&path, e))?;
            let mut writer = SegmentWriter::new(&path, "column");
            for (name, bytes) in blocks {
                writer.add_block(name, bytes);
            }
            written += writer.finish()?;
        }
        let mut writer = SegmentWriter::new(&ShardStore::manifest_path(data_dirs)?, "manifest");
        writer.add_block("manifest", self.manifest);
        written += writer.finish()?;
        Ok(written)
    }
}

#[derive(Debug, Clone)]
pub struct ShardStore {
    schema: Schema,
    options: StoreOptions,
    columns: Vec<ColumnShard>,
    /// Bit `id` set when record `id` was deleted.
    deleted: Bitmap,
    deleted_count: u64,
}

impl ShardStore {
    pub fn new(schema: Schema, options: StoreOptions) -> ShardStore {
        let columns = schema
            .columns
            .iter()
            .map(|c| ColumnShard::new(c.data_type, options.arena))
            .collect();
        ShardStore {
            schema,
            options,
            columns,
            deleted: Bitmap::new(0),
            deleted_count: 0,
        }
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    pub fn column(&self, index: usize) -> &ColumnShard {
        &self.columns[index]
    }

    /// Records ever inserted (the next local id).
    pub fn record_count(&self) -> u64 {
        self.columns[0].records().len() as u64
    }

    /// Records inserted and not deleted.
    pub fn live_count(&self) -> u64 {
        self.record_count() - self.deleted_count
    }

    pub fn is_deleted(&self, id: RecordId) -> bool {
        id < self.deleted.universe() && self.deleted.contains(id)
    }

    /// Every live record, as a bitmap over `0..record_count`.
    pub fn live_bitmap(&self) -> Bitmap {
        let mut live = Bitmap::full(self.record_count());
        if self.deleted_count > 0 {
            let mut deleted = Bitmap::new(self.record_count());
            for id in self.deleted.iter().filter(|&id| id < self.record_count()) {
                deleted.insert(id);
            }
            live.and_not_with(&deleted);
        }
        live
    }

    /// Validate and append a batch; returns the local ids it was given. All or nothing.
    pub fn insert_batch(&mut self, rows: &[Vec<Value>]) -> Result<std::ops::Range<RecordId>> {
        let batch = ColumnBatch::from_rows(&self.schema, rows)?;
        self.append_columns(&batch)
    }

    /// Check a batch built elsewhere ([`ColumnBatch::check`]) and append it; returns the
    /// local ids it was given. All or nothing: a batch that fails its check changes nothing.
    pub fn insert_columns(&mut self, batch: &ColumnBatch) -> Result<std::ops::Range<RecordId>> {
        batch.check(&self.schema)?;
        self.append_columns(batch)
    }

    /// Append a batch already checked against this store's schema, one column at a time.
    pub fn append_columns(&mut self, batch: &ColumnBatch) -> Result<std::ops::Range<RecordId>> {
        let first = self.record_count();
        for (column, data) in self.columns.iter_mut().zip(batch.columns()) {
            column.append_column(first, data, batch.len())?;
        }
        Ok(first..first + batch.len() as RecordId)
    }

    /// Delete the live records that meet the condition; returns how many.
    pub fn delete_where(&mut self, condition: &Condition) -> Result<u64> {
        let ids = self.select_ids(condition, usize::MAX)?;
        self.delete_ids(&ids)?;
        Ok(ids.len() as u64)
    }

    /// Delete live records by id (ascending, no duplicates, all live).
    pub fn delete_ids(&mut self, ids_ascending: &[RecordId]) -> Result<()> {
        if ids_ascending.windows(2).any(|w| w[0] >= w[1])
            || ids_ascending
                .iter()
                .any(|&id| id >= self.record_count() || self.is_deleted(id))
        {
            return Err(Error::InvalidArgument(
                "delete needs ascending ids of live records".into(),
            ));
        }
        if ids_ascending.is_empty() {
            return Ok(());
        }
        for column in &mut self.columns {
            column.delete(ids_ascending)?;
        }
        if self.deleted.universe() < self.record_count() {
            let mut grown = Bitmap::new(self.record_count());
            self.deleted.iter().for_each(|id| grown.insert(id));
            self.deleted = grown;
        }
        ids_ascending.iter().for_each(|&id| self.deleted.insert(id));
        self.deleted_count += ids_ascending.len() as u64;
        Ok(())
    }

    /// Ids of the live records that meet the condition, ascending, at most `limit`.
    pub fn select_ids(&self, condition: &Condition, limit: usize) -> Result<Vec<RecordId>> {
        let expr = planner::plan(self, condition)?;
        Ok(planner::select(self, &expr).ids(limit))
    }

    /// The values of some columns of some records.
    pub fn read(&self, ids: &[RecordId], columns: &[usize]) -> Vec<Vec<Value>> {
        ids.iter()
            .map(|&id| columns.iter().map(|&c| self.columns[c].value(id)).collect())
            .collect()
    }

    /// Evaluate a shard query into a partial that merges across shards.
    pub fn query(&self, query: &ShardQuery) -> Result<Partial> {
        planner::execute(self, query)
    }

    /// The plan this shard would follow for a query, one line per step, with estimated
    /// sizes (exact per-leaf record counts from the Rhizome cardinalities).
    pub fn explain(&self, query: &ShardQuery) -> Result<Vec<String>> {
        planner::explain(self, query)
    }

    /// Compact Rhizomes past their hole ratio.
    pub fn compact(&mut self) {
        self.columns.iter_mut().for_each(ColumnShard::compact);
    }

    pub fn bytes(&self) -> StoreBytes {
        StoreBytes {
            columns: self
                .schema
                .columns
                .iter()
                .zip(&self.columns)
                .map(|(d, c)| (d.name.clone(), c.bytes()))
                .collect(),
        }
    }

    /// A digest of the logical state (values of every record, deleted set). Replicas that
    /// applied the same batches have equal digests.
    pub fn digest(&self) -> u64 {
        let mut hash = Fnv64::new();
        hash.write(&self.record_count().to_le_bytes());
        for id in self.deleted.iter() {
            hash.write(&id.to_le_bytes());
        }
        for column in &self.columns {
            let dictionary = column.dictionary();
            for id in (0..self.record_count()).filter(|&id| !self.is_deleted(id)) {
                let symbol = column.records().get(id as usize);
                match (symbol, dictionary.key(symbol)) {
                    (crate::dictionary::NULL_SYMBOL, _) => hash.write(&[0]),
                    (_, crate::dictionary::KeyRef::Fixed(key)) => {
                        hash.write(&[1]);
                        hash.write(&key.to_le_bytes());
                    }
                    (_, crate::dictionary::KeyRef::Text(text)) => {
                        hash.write(&[2]);
                        hash.write(&(text.len() as u64).to_le_bytes());
                        hash.write(text);
                    }
                }
            }
        }
        hash.finish()
    }

    fn column_file(data_dirs: &[PathBuf], index: usize) -> Result<PathBuf> {
        if data_dirs.is_empty() {
            return Err(Error::InvalidArgument(
                "an in-memory store has no data directory".into(),
            ));
        }
        let dir = &data_dirs[index % data_dirs.len()];
        Ok(dir.join(Self::column_file_name(index)))
    }

    fn column_file_name(index: usize) -> String {
        format!("column-{index:04}.seg")
    }

    /// Write every column shard to its segment file, then the manifest, into the store's data
    /// directories. Returns bytes written.
    pub fn save(&self) -> Result<u64> {
        self.save_to(&self.options.data_dirs)
    }

    /// [`ShardStore::save`] into other data directories (e.g. a fresh snapshot directory);
    /// [`ShardStore::open`] with the same directories reads it back.
    pub fn save_to(&self, data_dirs: &[PathBuf]) -> Result<u64> {
        self.image()?.write_to(data_dirs)
    }

    /// Encode the store into memory, touching no file: what [`ShardStore::save_to`] writes.
    ///
    /// A caller that must not be written to while it saves (a Raft snapshot holds the shard's
    /// lock) takes the image under its lock and writes it after letting go: the disk's time is
    /// then no longer the lock's. The image is about the size of the segment files, a small
    /// part of the store in memory.
    pub fn image(&self) -> Result<StoreImage> {
        let mut columns = Vec::with_capacity(self.columns.len());
        for column in &self.columns {
            columns.push(column.encode()?);
        }
        let mut manifest = ByteWriter::new();
        manifest.put_u32(MANIFEST_VERSION);
        manifest.put_bytes(&serde_json::to_vec(&self.schema).expect("a schema serialises"));
        manifest.put_u64(self.record_count());
        manifest.put_varint(self.deleted_count);
        for id in self.deleted.iter() {
            manifest.put_varint(id);
        }
        manifest.put_varint(columns.len() as u64);
        for index in 0..columns.len() {
            manifest.put_str(&Self::column_file_name(index));
        }
        Ok(StoreImage {
            columns,
            manifest: manifest.into_inner(),
        })
    }

    fn manifest_path(data_dirs: &[PathBuf]) -> Result<PathBuf> {
        data_dirs
            .first()
            .map(|d| d.join(MANIFEST_FILE))
            .ok_or_else(|| {
                Error::InvalidArgument("an in-memory store has no data directory".into())
            })
    }

    /// Whether a saved store exists in these directories.
    pub fn exists(options: &StoreOptions) -> bool {
        options
            .data_dirs
            .first()
            .is_some_and(|d| d.join(MANIFEST_FILE).exists())
    }

    /// Open a store saved by [`ShardStore::save`] with the same data directories.
    pub fn open(options: StoreOptions) -> Result<ShardStore> {
        let mut store = ShardStore::new(
            Schema {
                columns: Vec::new(),
            },
            options,
        );
        let manifest_path = Self::manifest_path(&store.options.data_dirs)?;
        let segment = Segment::open(&manifest_path)?;
        let corrupt = |reason: String| Error::corrupt("manifest", reason).in_file(&manifest_path);
        let mut input = ByteReader::new(segment.block("manifest")?, "manifest");
        let read = |e: Error| e.in_file(&manifest_path);
        let version = input.u32().map_err(read)?;
        if version != MANIFEST_VERSION {
            return Err(corrupt(format!(
                "manifest version {version}, this build reads {MANIFEST_VERSION}"
            )));
        }
        let schema: Schema = serde_json::from_slice(input.bytes().map_err(read)?)
            .map_err(|e| corrupt(format!("schema: {e}")))?;
        let record_count = input.u64().map_err(read)?;
        let deleted_count = input.varint().map_err(read)?;
        if deleted_count > record_count {
            return Err(corrupt("more deleted records than records".into()));
        }
        let mut deleted = Bitmap::new(record_count);
        let mut previous = None;
        for _ in 0..deleted_count {
            let id = input.varint().map_err(read)?;
            if id >= record_count || previous.is_some_and(|p| p >= id) {
                return Err(corrupt(format!("deleted id {id} out of order or range")));
            }
            deleted.insert(id);
            previous = Some(id);
        }
        let file_count = input.varint().map_err(read)?;
        if file_count != schema.columns.len() as u64 {
            return Err(corrupt(format!(
                "{file_count} column files for {} columns",
                schema.columns.len()
            )));
        }
        store.schema = schema;
        store.columns.clear();
        for (index, def) in store.schema.columns.iter().enumerate() {
            let name = input.str().map_err(read)?;
            let path = Self::column_file(&store.options.data_dirs, index)?;
            if path.file_name().is_none_or(|f| f.to_string_lossy() != name) {
                return Err(corrupt(format!(
                    "column file {name} is not where this store puts column {index}"
                )));
            }
            let segment = Segment::open(&path)?;
            let column = ColumnShard::decode(
                def.data_type,
                store.options.arena,
                &ColumnShard::dictionary_block(&segment)?,
                segment.block("rhizomes")?,
                record_count,
            )
            .map_err(|e| e.in_file(&path))?;
            store.columns.push(column);
        }
        store.deleted = deleted;
        store.deleted_count = deleted_count;
        Ok(store)
    }

    pub fn data_dirs(&self) -> &[PathBuf] {
        &self.options.data_dirs
    }
}

/// FNV-1a, 64 bit: a stable digest (the same on every platform and build).
struct Fnv64(u64);

impl Fnv64 {
    fn new() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}
