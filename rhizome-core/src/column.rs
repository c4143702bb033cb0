//! A column shard: one column of one shard, as a dictionary, one Rhizome per symbol (NULL
//! included) and the record column.
//!
//! Invariant: record `id` is in Rhizome `records[id]` unless it was deleted, and in no other.
//!
//! A numeric column of more than [`VALUES_BY_RECORD_SYMBOLS_MIN`] distinct values also keeps
//! its values by record (`values[id] = key(records[id])`, 8 bytes per record, in memory only):
//! a SUM over it then reads one array entry per selected record instead of the record column
//! and then a random entry of a dictionary of megabytes. It is derived from the record column
//! whenever records are appended or the column is loaded, so segment files do not change.

use crate::batch::{for_each_code, BatchColumn, Cell, CodedValues, NullMask};
use crate::bytes::{ByteReader, ByteWriter};
use crate::dictionary::{Dictionary, KeyRef, Symbol, NULL_SYMBOL};
use crate::record_column::RecordColumn;
use crate::rhizome::{ArenaOptions, RecordId, RhizomeArena, RhizomeRef};
use crate::value::{DataType, Value};
use crate::{Error, Result};

/// Dictionary blocks at least this large are compressed.
const COMPRESS_BLOCK_BYTES_MIN: usize = 64 * 1024;
/// zstd level: fast to write (a snapshot writes every column), about 3× on TPC-H text.
const ZSTD_LEVEL: i32 = 3;
/// Largest dictionary block a segment may declare (bounds the decompression buffer).
const DICTIONARY_BYTES_MAX: u64 = 1 << 36;
const COMPRESSED_DICTIONARY_BLOCK: &str = "dictionary.zst";
/// Numeric columns of more distinct values than this (their record column holds 4-byte
/// symbols) keep their values by record: 8 bytes per record of memory (up to twice that
/// while appends grow the array, exactly that after a load), the price of a SUM that does
/// not look every record's value up in a large dictionary.
pub const VALUES_BY_RECORD_SYMBOLS_MIN: usize = 1 << 16;

/// Columns of at most this many distinct values append a batch Rhizome by Rhizome (each
/// Rhizome's ids of the batch at once) rather than row by row.
const GROUPED_SYMBOLS_MAX: usize = 4096;

/// Dictionaries of at most this many symbols check a batch's symbols for repeats with a
/// bitmap over the symbols (128 KiB); larger ones sort them.
const DISTINCT_BY_BITMAP_SYMBOLS_MAX: usize = 1 << 20;

/// Whether `symbols` (each below `symbol_count`) holds no symbol twice.
fn all_distinct(symbols: &[Symbol], symbol_count: usize) -> bool {
    if symbol_count <= DISTINCT_BY_BITMAP_SYMBOLS_MAX {
        let mut seen = vec![0u64; symbol_count.div_ceil(64)];
        symbols.iter().all(|&s| {
            let (word, bit) = (s as usize / 64, 1u64 << (s % 64));
            let fresh = seen[word] & bit == 0;
            seen[word] |= bit;
            fresh
        })
    } else {
        let mut sorted = symbols.to_vec();
        sorted.sort_unstable();
        sorted.windows(2).all(|w| w[0] != w[1])
    }
}

#[derive(Debug, Clone)]
pub struct ColumnShard {
    pub(crate) dictionary: Dictionary,
    /// Rhizome `s` lists the live records whose value has symbol `s`.
    pub(crate) rhizomes: RhizomeArena,
    /// The symbol of every record ever inserted. A deleted record's entry is meaningless (it
    /// keeps its symbol in memory and reads as NULL after a reload); nothing reads it.
    pub(crate) records: RecordColumn,
    /// The key of every record's value (0 for NULL), for numeric columns of more than
    /// [`VALUES_BY_RECORD_SYMBOLS_MIN`] symbols: always as long as `records` and equal to
    /// `key(records[id])` then, `None` for other columns. Deleted records keep theirs.
    pub(crate) values: Option<Vec<i64>>,
}

/// Bytes a column shard holds, by part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ColumnBytes {
    pub dictionary: u64,
    pub rhizomes: u64,
    pub records: u64,
    /// Values by record (numeric columns of many distinct values only).
    pub values: u64,
}

impl ColumnBytes {
    pub fn total(&self) -> u64 {
        self.dictionary + self.rhizomes + self.records + self.values
    }
}

impl ColumnShard {
    pub fn new(data_type: DataType, options: ArenaOptions) -> Self {
        let mut rhizomes = RhizomeArena::new(options);
        let null = rhizomes.push();
        debug_assert_eq!(null, NULL_SYMBOL);
        ColumnShard {
            dictionary: Dictionary::new(data_type),
            rhizomes,
            records: RecordColumn::default(),
            values: None,
        }
    }

    pub fn dictionary(&self) -> &Dictionary {
        &self.dictionary
    }

    pub fn records(&self) -> &RecordColumn {
        &self.records
    }

    /// The key of every record's value (0 for NULL and deleted records), when this column
    /// keeps them (numeric, more than [`VALUES_BY_RECORD_SYMBOLS_MIN`] distinct values).
    pub fn values_by_record(&self) -> Option<&[i64]> {
        self.values.as_deref()
    }

    /// Bring the values by record up to date with the record column: start keeping them once
    /// a numeric dictionary passes [`VALUES_BY_RECORD_SYMBOLS_MIN`] symbols, and extend them
    /// over records appended since.
    fn sync_values(&mut self) {
        let numeric = matches!(
            self.dictionary.data_type(),
            DataType::BigInt | DataType::Int | DataType::Decimal { .. }
        );
        let Some(keys) = self.dictionary.fixed_keys() else {
            return;
        };
        if !numeric || (self.values.is_none() && keys.len() <= VALUES_BY_RECORD_SYMBOLS_MIN) {
            return;
        }
        let records = &self.records;
        let values = self.values.get_or_insert_with(Vec::new);
        let start = values.len();
        values.reserve(records.len() - start);
        values.extend((start..records.len()).map(|id| match records.get(id) {
            NULL_SYMBOL => 0,
            symbol => keys[symbol as usize],
        }));
        debug_assert_eq!(values.len(), records.len());
    }

    pub fn rhizome(&self, symbol: Symbol) -> RhizomeRef<'_> {
        self.rhizomes.get(symbol)
    }

    /// Append one column of a [checked](crate::batch::ColumnBatch::check) batch as records
    /// `first..first + rows`. The batch's values are interned together
    /// ([`Dictionary::intern_many`]), then appended record by record.
    pub fn append_column(
        &mut self,
        first: RecordId,
        column: &BatchColumn,
        rows: usize,
    ) -> Result<()> {
        debug_assert_eq!(
            first,
            self.records.len() as RecordId,
            "records are appended densely"
        );
        if let BatchColumn::Coded {
            values,
            codes,
            nulls,
        } = column
        {
            if self.append_coded(first, values, codes, nulls, rows)? {
                return Ok(());
            }
        }
        let symbols = self.intern_cells((0..rows).map(|row| column.cell(row)))?.0;
        debug_assert_eq!(self.rhizomes.len(), self.dictionary.symbol_count());
        let symbol_count = self.dictionary.symbol_count();
        if symbol_count <= GROUPED_SYMBOLS_MAX && rows >= symbol_count {
            // Few values: the rows' ids grouped by symbol (a counting sort), then each
            // Rhizome's ids appended at once.
            let mut ends = vec![0u32; symbol_count + 1];
            for &symbol in &symbols {
                ends[symbol as usize + 1] += 1;
            }
            for s in 1..ends.len() {
                ends[s] += ends[s - 1];
            }
            let mut ids = vec![0 as RecordId; rows];
            let mut next = ends.clone();
            for (row, &symbol) in symbols.iter().enumerate() {
                let at = &mut next[symbol as usize];
                ids[*at as usize] = first + row as RecordId;
                *at += 1;
            }
            for symbol in 0..symbol_count {
                let (start, end) = (ends[symbol] as usize, ends[symbol + 1] as usize);
                if start < end {
                    self.rhizomes
                        .append_many(symbol as Symbol, &ids[start..end])?;
                }
            }
        } else {
            self.rhizomes.append_each(&symbols, first)?;
        }
        self.records.extend(&symbols);
        self.sync_values();
        Ok(())
    }

    /// The symbols of cells (NULL's for NULL), with an empty Rhizome made for each new
    /// value; returns them and how many are new.
    fn intern_cells<'c>(
        &mut self,
        cells: impl Iterator<Item = Cell<'c>>,
    ) -> Result<(Vec<Symbol>, usize)> {
        let keys: Vec<Option<KeyRef<'_>>> = cells
            .map(|cell| match cell {
                Cell::Null => None,
                Cell::Fixed(key) => Some(KeyRef::Fixed(key)),
                Cell::Text(bytes) => Some(KeyRef::Text(bytes)),
            })
            .collect();
        let mut symbols = Vec::new();
        let new = self.dictionary.intern_many(&keys, &mut symbols)?;
        for _ in 0..new {
            self.rhizomes.push();
        }
        Ok((symbols, new))
    }

    /// Append a [coded](BatchColumn::Coded) column: each distinct value is looked up once,
    /// the rows are grouped by code (a counting sort) and each Rhizome's ids appended at
    /// once. Returns false when two of the values are equal (a batch no writer of ours
    /// builds), having changed only the dictionary, and with the symbols the rows get
    /// anyway: the caller then appends the column row by row.
    fn append_coded(
        &mut self,
        first: RecordId,
        values: &CodedValues,
        codes: &[u8],
        nulls: &NullMask,
        rows: usize,
    ) -> Result<bool> {
        let (value_symbols, new) = self.intern_cells((0..values.len()).map(|i| values.cell(i)))?;
        if new < values.len() && !all_distinct(&value_symbols, self.dictionary.symbol_count()) {
            return Ok(false);
        }
        // Bucket 0 holds the NULL rows, bucket 1 + c the rows of code c.
        let wide = values.wide_codes();
        let has_nulls = nulls.has_any();
        let bucket = |row: usize, code: usize| {
            if has_nulls && nulls.is_null(row) {
                0
            } else {
                code + 1
            }
        };
        let mut starts = vec![0u32; values.len() + 2];
        for_each_code(codes, wide, |row, code| starts[bucket(row, code) + 1] += 1);
        for b in 1..starts.len() {
            starts[b] += starts[b - 1];
        }
        let mut ids = vec![0 as RecordId; rows];
        let mut symbols = vec![NULL_SYMBOL; rows];
        let mut next = starts.clone();
        for_each_code(codes, wide, |row, code| {
            let b = bucket(row, code);
            ids[next[b] as usize] = first + row as RecordId;
            next[b] += 1;
            if b > 0 {
                symbols[row] = value_symbols[b - 1];
            }
        });
        for b in 0..=values.len() {
            let (start, end) = (starts[b] as usize, starts[b + 1] as usize);
            if start < end {
                let symbol = if b == 0 {
                    NULL_SYMBOL
                } else {
                    value_symbols[b - 1]
                };
                self.rhizomes.append_many(symbol, &ids[start..end])?;
            }
        }
        self.records.extend(&symbols);
        self.sync_values();
        Ok(true)
    }

    /// Remove deleted records (ascending ids) from their Rhizomes.
    pub fn delete(&mut self, ids_ascending: &[RecordId]) -> Result<()> {
        let mut by_symbol: Vec<(Symbol, RecordId)> = ids_ascending
            .iter()
            .map(|&id| (self.records.get(id as usize), id))
            .collect();
        by_symbol.sort_unstable();
        let mut ids = Vec::new();
        for chunk in by_symbol.chunk_by(|a, b| a.0 == b.0) {
            ids.clear();
            ids.extend(chunk.iter().map(|&(_, id)| id));
            let removed = self.rhizomes.delete_many(chunk[0].0, &ids)?;
            if removed != ids.len() as u64 {
                return Err(Error::InvalidArgument(format!(
                    "{} of {} deleted records were not in their Rhizome",
                    ids.len() as u64 - removed,
                    ids.len()
                )));
            }
        }
        Ok(())
    }

    pub fn compact(&mut self) {
        self.rhizomes.compact();
    }

    pub fn value(&self, id: RecordId) -> Value {
        self.dictionary.value(self.records.get(id as usize))
    }

    pub fn bytes(&self) -> ColumnBytes {
        let stats = self.rhizomes.stats();
        ColumnBytes {
            dictionary: self.dictionary.heap_bytes(),
            rhizomes: stats
                .allocated_bytes
                .max(stats.encoded_bytes + stats.skip_bytes),
            records: self.records.heap_bytes(),
            values: self
                .values
                .as_ref()
                .map_or(0, |values| values.capacity() as u64 * 8),
        }
    }

    /// The segment blocks of this column shard: its dictionary and its Rhizomes. The record
    /// column is not stored: every live record is in exactly one Rhizome, so loading rebuilds
    /// it (deleted records read as NULL, and nothing reads them).
    ///
    /// A large dictionary (text above all) is stored zstd-compressed, as the block
    /// `dictionary.zst`; a small one as `dictionary`.
    pub fn encode(&self) -> Result<[(&'static str, Vec<u8>); 2]> {
        let mut dictionary = ByteWriter::new();
        self.dictionary.encode(&mut dictionary);
        let mut rhizomes = Vec::new();
        self.rhizomes.encode(&mut rhizomes);
        let dictionary = dictionary.into_inner();
        if dictionary.len() < COMPRESS_BLOCK_BYTES_MIN {
            return Ok([("dictionary", dictionary), ("rhizomes", rhizomes)]);
        }
        let compressed = zstd::bulk::compress(&dictionary, ZSTD_LEVEL)
            .map_err(|e| Error::InvalidArgument(format!("compressing a dictionary: {e}")))?;
        Ok([
            (COMPRESSED_DICTIONARY_BLOCK, compressed),
            ("rhizomes", rhizomes),
        ])
    }

    /// The dictionary block's bytes from a segment, decompressed when stored compressed.
    pub fn dictionary_block(
        segment: &crate::segment::Segment,
    ) -> Result<std::borrow::Cow<'_, [u8]>> {
        if !segment
            .block_names()
            .any(|n| n == COMPRESSED_DICTIONARY_BLOCK)
        {
            return Ok(std::borrow::Cow::Borrowed(segment.block("dictionary")?));
        }
        let corrupt = |reason: String| {
            Error::corrupt(COMPRESSED_DICTIONARY_BLOCK, reason).in_file(segment.path())
        };
        let compressed = segment.block(COMPRESSED_DICTIONARY_BLOCK)?;
        let size = zstd::zstd_safe::get_frame_content_size(compressed)
            .ok()
            .flatten()
            .filter(|&n| n <= DICTIONARY_BYTES_MAX)
            .ok_or_else(|| corrupt("no plausible content size".into()))?;
        zstd::bulk::decompress(compressed, size as usize)
            .map(std::borrow::Cow::Owned)
            .map_err(|e| corrupt(e.to_string()))
    }

    /// Rebuild a column shard of `record_count` records from its blocks, checking that the
    /// parts agree: one Rhizome per symbol, every id below `record_count`, no id in two
    /// Rhizomes.
    pub fn decode(
        data_type: DataType,
        options: ArenaOptions,
        dictionary: &[u8],
        rhizomes: &[u8],
        record_count: u64,
    ) -> Result<ColumnShard> {
        let dictionary =
            Dictionary::decode(data_type, &mut ByteReader::new(dictionary, "dictionary"))?;
        let rhizomes = RhizomeArena::decode(rhizomes, options)?;
        if rhizomes.len() != dictionary.symbol_count() {
            return Err(Error::corrupt(
                "rhizomes",
                format!(
                    "{} Rhizomes for {} symbols",
                    rhizomes.len(),
                    dictionary.symbol_count()
                ),
            ));
        }
        let record_count = usize::try_from(record_count)
            .map_err(|_| Error::corrupt("rhizomes", format!("{record_count} records")))?;
        let mut records = RecordColumn::filled(record_count, dictionary.symbol_count());
        let mut claimed = crate::rhizome::Bitmap::new(record_count as u64);
        for symbol in 0..rhizomes.len() as Symbol {
            let rhizome = rhizomes.get(symbol);
            if rhizome
                .last()
                .is_some_and(|last| last >= record_count as RecordId)
            {
                return Err(Error::corrupt(
                    "rhizomes",
                    format!("Rhizome {symbol} names a record past the end"),
                ));
            }
            let mut twice = false;
            rhizome.for_each(|id| {
                twice |= claimed.contains(id);
                claimed.insert(id);
                records.set(id as usize, symbol);
            });
            if twice {
                return Err(Error::corrupt(
                    "rhizomes",
                    format!("Rhizome {symbol} lists a record of another value"),
                ));
            }
        }
        let mut column = ColumnShard {
            dictionary,
            rhizomes,
            records,
            values: None,
        };
        column.sync_values();
        Ok(column)
    }
}
