//! A batch of rows held by column: what an insert carries from the front end to every replica
//! of a shard (one Raft log entry), and what a shard store appends.
//!
//! Rows arrive as `Vec<Vec<Value>>`; [`ColumnBatch::from_rows`] checks them against the schema
//! once (the error names the row and the column) and turns every value into its column's
//! form: the order-preserving key of [`DataType::key`] for fixed-width types, UTF-8 bytes for
//! text. A replica then appends one column at a time, with that column's dictionary and
//! Rhizomes hot in cache, and never builds a `Value`.
//!
//! A batch that arrives from elsewhere (a log entry, a snapshot of a peer) is checked again
//! with [`ColumnBatch::check`] before anything is applied: the shape against the schema, and
//! every key and text against its type, so a batch that a broken or hostile writer built is
//! rejected whole.

use serde::{Deserialize, Serialize};

use crate::shard::{Schema, BATCH_ROWS_MAX};
use crate::value::{DataType, Value};
use crate::{Error, Result};

/// Rows of a batch, by column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnBatch {
    rows: u32,
    columns: Vec<BatchColumn>,
}

/// One column of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BatchColumn {
    /// One key per row ([`DataType::key`]); a NULL row holds 0.
    Fixed { keys: Vec<i64>, nulls: NullMask },
    /// The rows' UTF-8 bytes back to back: row `r` is `bytes[ends[r-1]..ends[r]]`
    /// (`bytes[..ends[0]]` for row 0); a NULL row is empty.
    Text {
        bytes: Vec<u8>,
        ends: Vec<u32>,
        nulls: NullMask,
    },
    /// A column of few distinct values: each value once, in the order the rows first use
    /// it, and one code per row indexing them — a byte per row when there are at most 256
    /// values, two (little-endian) otherwise. A NULL row holds code 0 and uses no value.
    ///
    /// The codes are canonical: the first row that is not NULL holds 0, and every later
    /// row holds a code already used or the next one; every value is used. A replica then
    /// looks each distinct value up once, and hands out the same symbols as for the column
    /// written out row by row. (Last, so batches encoded before it keep their encoding.)
    Coded {
        values: CodedValues,
        codes: Vec<u8>,
        nulls: NullMask,
    },
}

/// The distinct values of a [`BatchColumn::Coded`] column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CodedValues {
    /// Keys, as in [`BatchColumn::Fixed`].
    Fixed(Vec<i64>),
    /// UTF-8 bytes back to back, delimited as in [`BatchColumn::Text`].
    Text { bytes: Vec<u8>, ends: Vec<u32> },
}

/// Most distinct values a coded column holds (codes are at most two bytes).
pub const CODED_VALUES_MAX: usize = 1 << 16;
/// Batches of fewer rows are written out row by row.
const CODED_ROWS_MIN: usize = 16;

impl CodedValues {
    pub fn len(&self) -> usize {
        match self {
            CodedValues::Fixed(keys) => keys.len(),
            CodedValues::Text { ends, .. } => ends.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value `i`'s cell (`i` < `len()`).
    #[inline]
    pub fn cell(&self, i: usize) -> Cell<'_> {
        match self {
            CodedValues::Fixed(keys) => Cell::Fixed(keys[i]),
            CodedValues::Text { bytes, ends } => Cell::Text(text_at(bytes, ends, i)),
        }
    }

    /// Whether codes take two bytes.
    pub fn wide_codes(&self) -> bool {
        self.len() > 256
    }
}

/// Calls `f(row, code)` for every row's code (`wide`: two bytes a code).
#[inline]
pub fn for_each_code(codes: &[u8], wide: bool, mut f: impl FnMut(usize, usize)) {
    if wide {
        for (row, pair) in codes.chunks_exact(2).enumerate() {
            f(row, usize::from(u16::from_le_bytes([pair[0], pair[1]])));
        }
    } else {
        for (row, &code) in codes.iter().enumerate() {
            f(row, usize::from(code));
        }
    }
}

/// Each row's code: the rank of its value's first use among the rows that are not NULL (0
/// for NULL rows); `first_use` is called with each distinct value in that order. `None`
/// when there are more than `limit` distinct values.
fn first_use_codes<K: std::hash::Hash + Eq>(
    rows: usize,
    nulls: &NullMask,
    limit: usize,
    key_of: impl Fn(usize) -> K,
    mut first_use: impl FnMut(&K),
) -> Option<Vec<u32>> {
    let mut seen: hashbrown::HashMap<K, u32, foldhash::fast::FixedState> =
        hashbrown::HashMap::default();
    let mut codes = Vec::with_capacity(rows);
    for row in 0..rows {
        if nulls.is_null(row) {
            codes.push(0);
            continue;
        }
        let next = seen.len() as u32;
        let code = *seen.entry(key_of(row)).or_insert_with_key(|key| {
            first_use(key);
            next
        });
        if seen.len() > limit {
            return None;
        }
        codes.push(code);
    }
    Some(codes)
}

#[inline]
fn text_at<'a>(bytes: &'a [u8], ends: &[u32], row: usize) -> &'a [u8] {
    let start = if row == 0 { 0 } else { ends[row - 1] as usize };
    &bytes[start..ends[row] as usize]
}

/// Which rows are NULL: bit `r % 64` of word `r / 64`. No words when no row is NULL.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NullMask(Vec<u64>);

impl NullMask {
    #[inline]
    pub fn is_null(&self, row: usize) -> bool {
        self.0
            .get(row / 64)
            .is_some_and(|word| word & (1 << (row % 64)) != 0)
    }

    fn set(&mut self, row: usize, rows: usize) {
        if self.0.is_empty() {
            self.0 = vec![0; rows.div_ceil(64)];
        }
        self.0[row / 64] |= 1 << (row % 64);
    }

    pub fn has_any(&self) -> bool {
        self.0.iter().any(|&w| w != 0)
    }

    /// Fits a batch of `rows` rows: no words, or exactly enough, with no bit past the last row.
    fn fits(&self, rows: usize) -> bool {
        if self.0.is_empty() {
            return true;
        }
        if self.0.len() != rows.div_ceil(64) {
            return false;
        }
        let tail = rows % 64;
        tail == 0 || self.0.last().is_some_and(|&w| w >> tail == 0)
    }
}

/// A key of a fixed-width column, or the bytes of a text one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell<'a> {
    Null,
    Fixed(i64),
    Text(&'a [u8]),
}

impl BatchColumn {
    /// Row `row`'s cell (`row` < the batch's row count).
    #[inline]
    pub fn cell(&self, row: usize) -> Cell<'_> {
        match self {
            BatchColumn::Fixed { keys, nulls } => {
                if nulls.is_null(row) {
                    Cell::Null
                } else {
                    Cell::Fixed(keys[row])
                }
            }
            BatchColumn::Text { bytes, ends, nulls } => {
                if nulls.is_null(row) {
                    Cell::Null
                } else {
                    Cell::Text(text_at(bytes, ends, row))
                }
            }
            BatchColumn::Coded {
                values,
                codes,
                nulls,
            } => {
                if nulls.is_null(row) {
                    Cell::Null
                } else if values.wide_codes() {
                    let code = u16::from_le_bytes([codes[2 * row], codes[2 * row + 1]]);
                    values.cell(usize::from(code))
                } else {
                    values.cell(usize::from(codes[row]))
                }
            }
        }
    }

    /// The column written with each distinct value once ([`BatchColumn::Coded`]) when at
    /// most half its rows hold distinct values, else as it is. The rows' cells do not change.
    fn coded(self, rows: usize) -> BatchColumn {
        self.to_coded(rows).unwrap_or(self)
    }

    /// The column as [`BatchColumn::Coded`], if at most half its rows hold distinct values.
    fn to_coded(&self, rows: usize) -> Option<BatchColumn> {
        if rows < CODED_ROWS_MIN {
            return None;
        }
        let limit = (rows / 2).min(CODED_VALUES_MAX);
        let (values, codes, nulls) = match self {
            BatchColumn::Fixed { keys, nulls } => {
                let mut values = Vec::new();
                let codes =
                    first_use_codes(rows, nulls, limit, |row| keys[row], |&key| values.push(key))?;
                (CodedValues::Fixed(values), codes, nulls)
            }
            BatchColumn::Text { bytes, ends, nulls } => {
                let mut value_bytes = Vec::new();
                let mut value_ends = Vec::new();
                let codes = first_use_codes(
                    rows,
                    nulls,
                    limit,
                    |row| text_at(bytes, ends, row),
                    |text| {
                        value_bytes.extend_from_slice(text);
                        value_ends.push(value_bytes.len() as u32);
                    },
                )?;
                let values = CodedValues::Text {
                    bytes: value_bytes,
                    ends: value_ends,
                };
                (values, codes, nulls)
            }
            BatchColumn::Coded { .. } => return None,
        };
        let nulls = nulls.clone();
        if values.is_empty() {
            return None;
        }
        let codes = if values.wide_codes() {
            codes
                .iter()
                .flat_map(|&c| (c as u16).to_le_bytes())
                .collect()
        } else {
            codes.iter().map(|&c| c as u8).collect()
        };
        Some(BatchColumn::Coded {
            values,
            codes,
            nulls,
        })
    }
}

impl ColumnBatch {
    /// Check `rows` against `schema` and convert them. Nothing is kept of a batch that fails:
    /// the error names the first bad row (0-based within the batch) and its column.
    pub fn from_rows(schema: &Schema, rows: &[Vec<Value>]) -> Result<ColumnBatch> {
        if rows.len() > BATCH_ROWS_MAX {
            return Err(Error::Schema(format!(
                "batch of {} rows exceeds {BATCH_ROWS_MAX}",
                rows.len()
            )));
        }
        let width = schema.columns.len();
        if let Some((r, row)) = rows.iter().enumerate().find(|(_, row)| row.len() != width) {
            return Err(Error::Schema(format!(
                "row {r} has {} values, the table has {width} columns",
                row.len()
            )));
        }
        let n = rows.len();
        let mut columns = Vec::with_capacity(width);
        for (c, def) in schema.columns.iter().enumerate() {
            let mut nulls = NullMask::default();
            let not_null =
                |r: usize| Error::Schema(format!("row {r}: column {} is NOT NULL", def.name));
            let bad = |r: usize, e: crate::value::ValueError| {
                Error::Schema(format!("row {r}, column {}: {e}", def.name))
            };
            let column = if def.data_type.is_text() {
                let mut bytes = Vec::new();
                let mut ends = Vec::with_capacity(n);
                for (r, row) in rows.iter().enumerate() {
                    match &row[c] {
                        Value::Null if !def.nullable => return Err(not_null(r)),
                        Value::Null => nulls.set(r, n),
                        Value::Text(text) => {
                            def.data_type.check_text(text).map_err(|e| bad(r, e))?;
                            bytes.extend_from_slice(text.as_bytes());
                        }
                        other => match def.data_type.coerce(other).map_err(|e| bad(r, e))? {
                            // Not text: coerce reports the mismatch in its words, or gives
                            // the value as checked text.
                            Value::Text(text) => bytes.extend_from_slice(text.as_bytes()),
                            coerced => {
                                return Err(Error::Schema(format!(
                                    "row {r}, column {}: {coerced:?} is not text",
                                    def.name
                                )))
                            }
                        },
                    }
                    ends.push(u32::try_from(bytes.len()).map_err(|_| {
                        Error::Schema(format!(
                            "row {r}, column {}: the batch's text exceeds 4 GiB",
                            def.name
                        ))
                    })?);
                }
                BatchColumn::Text { bytes, ends, nulls }
            } else {
                let mut keys = Vec::with_capacity(n);
                for (r, row) in rows.iter().enumerate() {
                    let value = &row[c];
                    if value.is_null() {
                        if !def.nullable {
                            return Err(not_null(r));
                        }
                        nulls.set(r, n);
                        keys.push(0);
                        continue;
                    }
                    let key = match def.data_type.key(value) {
                        Some(key) => key,
                        None => {
                            let coerced = def.data_type.coerce(value).map_err(|e| bad(r, e))?;
                            def.data_type.key(&coerced).ok_or_else(|| {
                                Error::Schema(format!(
                                    "row {r}, column {}: no key for {coerced:?}",
                                    def.name
                                ))
                            })?
                        }
                    };
                    keys.push(key);
                }
                BatchColumn::Fixed { keys, nulls }
            };
            columns.push(column.coded(n));
        }
        Ok(ColumnBatch {
            rows: n as u32,
            columns,
        })
    }

    pub fn len(&self) -> usize {
        self.rows as usize
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn columns(&self) -> &[BatchColumn] {
        &self.columns
    }

    /// The same rows with every column written out row by row, as batches were encoded
    /// before coded columns existed.
    pub fn without_codes(&self) -> ColumnBatch {
        let n = self.len();
        let columns = self
            .columns
            .iter()
            .map(|column| match column {
                BatchColumn::Coded { values, nulls, .. } => match values {
                    CodedValues::Fixed(_) => BatchColumn::Fixed {
                        keys: (0..n)
                            .map(|row| match column.cell(row) {
                                Cell::Fixed(key) => key,
                                _ => 0,
                            })
                            .collect(),
                        nulls: nulls.clone(),
                    },
                    CodedValues::Text { .. } => {
                        let mut bytes = Vec::new();
                        let mut ends = Vec::with_capacity(n);
                        for row in 0..n {
                            if let Cell::Text(text) = column.cell(row) {
                                bytes.extend_from_slice(text);
                            }
                            ends.push(bytes.len() as u32);
                        }
                        BatchColumn::Text {
                            bytes,
                            ends,
                            nulls: nulls.clone(),
                        }
                    }
                },
                plain => plain.clone(),
            })
            .collect();
        ColumnBatch {
            rows: self.rows,
            columns,
        }
    }

    /// Row `row` as values (tests, and paths that want rows back).
    pub fn row(&self, schema: &Schema, row: usize) -> Vec<Value> {
        self.columns
            .iter()
            .zip(&schema.columns)
            .map(|(column, def)| match column.cell(row) {
                Cell::Null => Value::Null,
                Cell::Fixed(key) => def.data_type.from_key(key),
                Cell::Text(bytes) => Value::Text(String::from_utf8_lossy(bytes).into_owned()),
            })
            .collect()
    }

    /// Check a batch built elsewhere against `schema`: its shape, NULLs only where allowed,
    /// every key a key of its type, every text valid UTF-8 of its type. The error names the
    /// first bad row and column.
    pub fn check(&self, schema: &Schema) -> Result<()> {
        let n = self.len();
        if n > BATCH_ROWS_MAX {
            return Err(Error::Schema(format!(
                "batch of {n} rows exceeds {BATCH_ROWS_MAX}"
            )));
        }
        if self.columns.len() != schema.columns.len() {
            return Err(Error::Schema(format!(
                "batch has {} columns, the table has {}",
                self.columns.len(),
                schema.columns.len()
            )));
        }
        for (column, def) in self.columns.iter().zip(&schema.columns) {
            check_column(column, def, n)?;
        }
        Ok(())
    }

    /// The batch's bytes on the wire and in the log.
    /// Integers are variable-length (zig-zag for keys), so small keys and offsets take
    /// one or two bytes.
    pub fn encode(&self) -> Vec<u8> {
        use bincode::Options;
        bincode::options()
            .serialize(self)
            .expect("a column batch serialises")
    }

    /// A batch from [`ColumnBatch::encode`]'s bytes; not yet [checked](ColumnBatch::check).
    ///
    /// Read by hand rather than through serde: the same bytes are accepted and give the same
    /// batch as `bincode::options().deserialize` (a property test holds the two equal, on
    /// valid and on damaged bytes), but keys are read in a tight loop and text bytes copied
    /// at once instead of one element at a time. No vector is given more room up front than
    /// the bytes left could fill.
    pub fn decode(bytes: &[u8]) -> Result<ColumnBatch> {
        let mut reader = BatchReader { bytes, at: 0 };
        let batch = reader.batch().map_err(|reason| {
            Error::InvalidArgument(format!("column batch does not decode: {reason}"))
        })?;
        if reader.at != bytes.len() {
            return Err(Error::InvalidArgument(
                "column batch does not decode: trailing bytes".into(),
            ));
        }
        Ok(batch)
    }
}

/// Reads the bincode encoding of a [`ColumnBatch`] (varint integers: a byte up to 250 is
/// the number, 251/252/253 announce a little-endian u16/u32/u64; signed numbers zig-zag).
struct BatchReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

type ReadResult<T> = std::result::Result<T, &'static str>;

impl BatchReader<'_> {
    #[inline]
    fn take(&mut self, n: usize) -> ReadResult<&[u8]> {
        let end = self.at.checked_add(n).ok_or("length overflow")?;
        let piece = self.bytes.get(self.at..end).ok_or("unexpected end")?;
        self.at = end;
        Ok(piece)
    }

    #[inline]
    fn varint(&mut self) -> ReadResult<u64> {
        let byte = *self.bytes.get(self.at).ok_or("unexpected end")?;
        self.at += 1;
        let wide = |piece: &[u8]| {
            let mut le = [0u8; 8];
            le[..piece.len()].copy_from_slice(piece);
            u64::from_le_bytes(le)
        };
        match byte {
            0..=250 => Ok(u64::from(byte)),
            251 => self.take(2).map(wide),
            252 => self.take(4).map(wide),
            253 => self.take(8).map(wide),
            _ => Err("integer of an unknown width"),
        }
    }

    fn u32(&mut self) -> ReadResult<u32> {
        u32::try_from(self.varint()?).map_err(|_| "integer beyond u32")
    }

    /// A sequence's length, and room for it bounded by the bytes left (each element takes
    /// at least one).
    fn len(&mut self) -> ReadResult<(usize, usize)> {
        let n = usize::try_from(self.varint()?).map_err(|_| "length overflow")?;
        Ok((n, n.min(self.bytes.len() - self.at)))
    }

    fn keys(&mut self) -> ReadResult<Vec<i64>> {
        let (n, room) = self.len()?;
        let mut keys = Vec::with_capacity(room);
        for _ in 0..n {
            let z = self.varint()?;
            keys.push((z >> 1) as i64 ^ -((z & 1) as i64));
        }
        Ok(keys)
    }

    fn words(&mut self) -> ReadResult<Vec<u64>> {
        let (n, room) = self.len()?;
        let mut words = Vec::with_capacity(room);
        for _ in 0..n {
            words.push(self.varint()?);
        }
        Ok(words)
    }

    /// Text bytes (copied at once) and their ends.
    fn texts(&mut self) -> ReadResult<(Vec<u8>, Vec<u32>)> {
        let (len, _) = self.len()?;
        let bytes = self.take(len)?.to_vec();
        let (n, room) = self.len()?;
        let mut ends = Vec::with_capacity(room);
        for _ in 0..n {
            ends.push(self.u32()?);
        }
        Ok((bytes, ends))
    }

    fn batch(&mut self) -> ReadResult<ColumnBatch> {
        let rows = self.u32()?;
        let (n, room) = self.len()?;
        let mut columns = Vec::with_capacity(room);
        for _ in 0..n {
            let column = match self.u32()? {
                0 => BatchColumn::Fixed {
                    keys: self.keys()?,
                    nulls: NullMask(self.words()?),
                },
                1 => {
                    let (bytes, ends) = self.texts()?;
                    BatchColumn::Text {
                        bytes,
                        ends,
                        nulls: NullMask(self.words()?),
                    }
                }
                2 => {
                    let values = match self.u32()? {
                        0 => CodedValues::Fixed(self.keys()?),
                        1 => {
                            let (bytes, ends) = self.texts()?;
                            CodedValues::Text { bytes, ends }
                        }
                        _ => return Err("unknown kind of coded values"),
                    };
                    let (len, _) = self.len()?;
                    BatchColumn::Coded {
                        values,
                        codes: self.take(len)?.to_vec(),
                        nulls: NullMask(self.words()?),
                    }
                }
                _ => return Err("unknown column kind"),
            };
            columns.push(column);
        }
        Ok(ColumnBatch { rows, columns })
    }
}

/// Check one column of a batch of `n` rows against its definition (see [`ColumnBatch::check`]).
fn check_column(column: &BatchColumn, def: &crate::shard::ColumnDef, n: usize) -> Result<()> {
    let malformed =
        |what: &str| Error::Schema(format!("batch column {} is malformed: {what}", def.name));
    let (nulls, rows_of_values) = match column {
        BatchColumn::Fixed { keys, nulls } => {
            if def.data_type.is_text() {
                return Err(malformed("keys for a text column"));
            }
            if keys.len() != n {
                return Err(malformed("key count differs from the row count"));
            }
            (nulls, true)
        }
        BatchColumn::Text { bytes, ends, nulls } => {
            if !def.data_type.is_text() {
                return Err(malformed("text for a non-text column"));
            }
            if !texts_delimited(bytes, ends, n) {
                return Err(malformed("text offsets do not delimit its bytes"));
            }
            (nulls, true)
        }
        BatchColumn::Coded {
            values,
            codes,
            nulls,
        } => {
            match values {
                CodedValues::Fixed(_) if def.data_type.is_text() => {
                    return Err(malformed("keys for a text column"));
                }
                CodedValues::Text { .. } if !def.data_type.is_text() => {
                    return Err(malformed("text for a non-text column"));
                }
                CodedValues::Text { bytes, ends } if !texts_delimited(bytes, ends, ends.len()) => {
                    return Err(malformed("text offsets do not delimit its bytes"));
                }
                _ => {}
            }
            if values.len() > CODED_VALUES_MAX {
                return Err(malformed("more distinct values than codes can name"));
            }
            let width = if values.wide_codes() { 2 } else { 1 };
            if codes.len() != n * width {
                return Err(malformed("code count differs from the row count"));
            }
            // Canonical codes: each row uses a value already used or the next one, NULL rows
            // hold 0, and every value is used.
            let mut used = 0usize;
            let mut canonical = true;
            for_each_code(codes, values.wide_codes(), |row, code| {
                if nulls.is_null(row) {
                    canonical &= code == 0;
                } else if code == used {
                    used += 1;
                } else {
                    canonical &= code < used;
                }
            });
            if !canonical || used != values.len() {
                return Err(malformed("codes are not canonical"));
            }
            (nulls, false)
        }
    };
    if !nulls.fits(n) {
        return Err(malformed("NULL mask does not fit the row count"));
    }
    if !def.nullable && nulls.has_any() {
        let r = (0..n).find(|&r| nulls.is_null(r)).unwrap_or(0);
        return Err(Error::Schema(format!(
            "row {r}: column {} is NOT NULL",
            def.name
        )));
    }
    // The values: the rows' own, or a coded column's distinct values (which hold no NULLs).
    let no_nulls = NullMask::default();
    let (keys, texts, nulls) = match column {
        BatchColumn::Fixed { keys, nulls } => (Some(keys), None, nulls),
        BatchColumn::Text { bytes, ends, nulls } => (None, Some((bytes, ends)), nulls),
        BatchColumn::Coded { values, .. } => match values {
            CodedValues::Fixed(keys) => (Some(keys), None, &no_nulls),
            CodedValues::Text { bytes, ends } => (None, Some((bytes, ends)), &no_nulls),
        },
    };
    let name = |r: usize| {
        if rows_of_values {
            format!("row {r}, column {}", def.name)
        } else {
            format!("column {}, distinct value {r}", def.name)
        }
    };
    if let Some(keys) = keys {
        // NULL rows hold 0, which need not be a key: only a column without NULLs is checked
        // whole.
        if let (Some((lo, hi)), false) = (def.data_type.key_range(), nulls.has_any()) {
            if keys.iter().all(|&key| lo <= key && key <= hi) {
                return Ok(());
            }
        }
        for (r, &key) in keys.iter().enumerate() {
            if !nulls.is_null(r) {
                def.data_type
                    .check_key(key)
                    .map_err(|e| Error::Schema(format!("{}: {e}", name(r))))?;
            }
        }
    }
    if let Some((bytes, ends)) = texts {
        if texts_are_valid(bytes, ends, def.data_type) {
            return Ok(());
        }
        for r in 0..ends.len() {
            if nulls.is_null(r) {
                continue;
            }
            let checked = match std::str::from_utf8(text_at(bytes, ends, r)) {
                Ok(text) => def.data_type.check_text(text),
                Err(_) => Err(crate::value::ValueError::new(
                    crate::value::ValueErrorKind::BadCharacter,
                    "text is not valid UTF-8",
                )),
            };
            checked.map_err(|e| Error::Schema(format!("{}: {e}", name(r))))?;
        }
    }
    Ok(())
}

/// Whether `ends` delimits `bytes` into `n` texts.
fn texts_delimited(bytes: &[u8], ends: &[u32], n: usize) -> bool {
    ends.len() == n
        && ends.windows(2).all(|w| w[0] <= w[1])
        && ends
            .last()
            .map_or(bytes.is_empty(), |&e| e as usize == bytes.len())
}

/// Whether every text of a text column passes [`DataType::check_text`], checked over the
/// column's bytes at once: one UTF-8 validation and one NUL search for the whole column,
/// every end on a character boundary, and characters counted only for texts longer in bytes
/// than the type allows in characters. False says only that some row needs a closer look
/// (the row-by-row check then names it).
fn texts_are_valid(bytes: &[u8], ends: &[u32], data_type: DataType) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    if bytes.contains(&0) || !ends.iter().all(|&end| text.is_char_boundary(end as usize)) {
        return false;
    }
    let DataType::Text {
        max_chars: Some(max),
    } = data_type
    else {
        return true;
    };
    let max = max as usize;
    let mut start = 0usize;
    ends.iter().all(|&end| {
        let piece = &text[start..end as usize];
        start = end as usize;
        piece.len() <= max || piece.chars().count() <= max
    })
}

impl DataType {
    /// The keys of this type's values when they are exactly a range `lo..=hi`, so a column
    /// of keys is checked with two comparisons each; `None` for DOUBLE (NaN has no key) and
    /// text.
    pub fn key_range(&self) -> Option<(i64, i64)> {
        match *self {
            DataType::BigInt | DataType::Timestamp => Some((i64::MIN, i64::MAX)),
            DataType::Int | DataType::Date => Some((i64::from(i32::MIN), i64::from(i32::MAX))),
            DataType::Boolean => Some((0, 1)),
            DataType::Decimal { precision, .. } => {
                let max = 10_i64.checked_pow(u32::from(precision))? - 1;
                Some((-max, max))
            }
            DataType::Double | DataType::Text { .. } => None,
        }
    }

    /// Whether `key` is the key of a value of this type ([`DataType::key`]'s image). Text
    /// types have no keys.
    pub fn check_key(&self, key: i64) -> std::result::Result<(), crate::value::ValueError> {
        let value = self.from_key(key);
        if !self.is_text() && self.key(&value) == Some(key) {
            return Ok(());
        }
        Err(crate::value::ValueError::new(
            crate::value::ValueErrorKind::OutOfRange,
            format!("key {key} is not a value of {}", self.sql_name()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::ColumnDef;

    fn def(name: &str, data_type: DataType, nullable: bool) -> ColumnDef {
        ColumnDef {
            name: name.into(),
            data_type,
            nullable,
        }
    }

    fn schema() -> Schema {
        Schema::new(vec![
            def("id", DataType::BigInt, false),
            def("n", DataType::Int, true),
            def(
                "price",
                DataType::Decimal {
                    precision: 6,
                    scale: 2,
                },
                true,
            ),
            def("name", DataType::Text { max_chars: Some(3) }, true),
            def("d", DataType::Date, true),
        ])
        .expect("a valid schema")
    }

    #[test]
    fn key_ranges_hold_exactly_the_checked_keys() {
        // Proves: for every type with a key range, the keys at and just inside its ends pass
        // check_key and those just outside fail it, so checking a column by range accepts
        // and rejects what checking it key by key does.
        let types = [
            DataType::BigInt,
            DataType::Int,
            DataType::Date,
            DataType::Timestamp,
            DataType::Boolean,
            DataType::Decimal {
                precision: 1,
                scale: 0,
            },
            DataType::Decimal {
                precision: 15,
                scale: 2,
            },
            DataType::Decimal {
                precision: 18,
                scale: 4,
            },
        ];
        for data_type in types {
            let (lo, hi) = data_type.key_range().expect("a ranged type");
            for key in [lo, lo.saturating_add(1), hi.saturating_sub(1), hi, 0] {
                assert!(data_type.check_key(key).is_ok(), "{data_type:?} {key}");
            }
            for key in [lo.checked_sub(1), hi.checked_add(1)].into_iter().flatten() {
                assert!(data_type.check_key(key).is_err(), "{data_type:?} {key}");
            }
        }
        assert_eq!(DataType::Double.key_range(), None);
        assert_eq!(DataType::Text { max_chars: None }.key_range(), None);
    }

    #[test]
    fn rows_round_trip_through_columns_and_bytes() {
        // Proves: from_rows keeps every value (NULLs, empty text, coerced decimals and dates)
        // and encode/decode/check give back the same rows.
        let schema = schema();
        let rows: Vec<Vec<Value>> = (0..130)
            .map(|i| {
                vec![
                    Value::Int(i),
                    if i % 3 == 0 {
                        Value::Null
                    } else {
                        Value::Int(-i)
                    },
                    Value::Int(i % 7),
                    match i % 4 {
                        0 => Value::Null,
                        1 => Value::Text(String::new()),
                        _ => Value::Text(format!("{}", i % 100)),
                    },
                    Value::Text(format!("2024-01-{:02}", 1 + i % 28)),
                ]
            })
            .collect();
        let batch = ColumnBatch::from_rows(&schema, &rows).expect("accepted");
        let decoded = ColumnBatch::decode(&batch.encode()).expect("accepted");
        decoded.check(&schema).expect("accepted");
        assert_eq!(decoded, batch);
        for (r, row) in rows.iter().enumerate() {
            let expected: Vec<Value> = row
                .iter()
                .zip(&schema.columns)
                .map(|(v, def)| def.data_type.coerce(v).expect("accepted"))
                .collect();
            assert_eq!(decoded.row(&schema, r), expected, "row {r}");
        }
    }

    #[test]
    fn bad_rows_and_bad_batches_are_named_errors() {
        // Proves: from_rows rejects what validate rejects, naming row and column; check
        // rejects keys and text outside their types and malformed shapes.
        let schema = schema();
        let good = vec![
            Value::Int(1),
            Value::Int(2),
            Value::Int(3),
            Value::Text("abc".into()),
            Value::Null,
        ];
        let mut long = good.clone();
        long[3] = Value::Text("abcd".into());
        let err = ColumnBatch::from_rows(&schema, &[good.clone(), long])
            .expect_err("rejected")
            .to_string();
        assert!(err.contains("row 1, column name"), "{err}");
        let mut null_id = good.clone();
        null_id[0] = Value::Null;
        let err = ColumnBatch::from_rows(&schema, &[null_id])
            .expect_err("rejected")
            .to_string();
        assert!(err.contains("row 0: column id is NOT NULL"), "{err}");
        let mut overflow = good.clone();
        overflow[1] = Value::Int(1 << 40);
        let err = ColumnBatch::from_rows(&schema, &[overflow])
            .expect_err("rejected")
            .to_string();
        assert!(
            err.contains("column n") && err.contains("overflows INT"),
            "{err}"
        );

        let batch = ColumnBatch::from_rows(&schema, &[good.clone(), good]).expect("accepted");
        let mut wide_int = batch.clone();
        if let BatchColumn::Fixed { keys, .. } = &mut wide_int.columns[1] {
            keys[1] = 1 << 40;
        }
        let err = wide_int.check(&schema).expect_err("rejected").to_string();
        assert!(err.contains("row 1, column n"), "{err}");
        let mut bad_utf8 = batch.clone();
        if let BatchColumn::Text { bytes, .. } = &mut bad_utf8.columns[3] {
            bytes[0] = 0xFF;
        }
        assert!(bad_utf8.check(&schema).is_err());
        let mut null_in_not_null = batch.clone();
        if let BatchColumn::Fixed { nulls, .. } = &mut null_in_not_null.columns[0] {
            nulls.set(1, 2);
        }
        let err = null_in_not_null
            .check(&schema)
            .expect_err("rejected")
            .to_string();
        assert!(err.contains("row 1: column id is NOT NULL"), "{err}");
        let mut short = batch.clone();
        short.columns.pop();
        assert!(short.check(&schema).is_err());
        let mut swapped = batch.clone();
        swapped.columns.swap(0, 3);
        assert!(swapped.check(&schema).is_err());
        let mut offsets = batch;
        if let BatchColumn::Text { ends, .. } = &mut offsets.columns[3] {
            ends[0] = 100;
        }
        assert!(offsets.check(&schema).is_err());
        assert!(ColumnBatch::decode(&[1, 2, 3]).is_err());
    }

    /// What `bincode` itself makes of a batch's bytes: the reference for the hand decoder.
    fn bincode_decode(bytes: &[u8]) -> Option<ColumnBatch> {
        use bincode::Options;
        bincode::options()
            .with_limit(bytes.len() as u64)
            .deserialize(bytes)
            .ok()
    }

    fn arbitrary_column() -> impl proptest::strategy::Strategy<Value = BatchColumn> {
        use proptest::prelude::*;
        let nulls = proptest::collection::vec(any::<u64>(), 0..3).prop_map(NullMask);
        prop_oneof![
            (
                proptest::collection::vec(
                    prop_oneof![
                        -300i64..300,
                        any::<i64>(),
                        Just(i64::MIN),
                        Just(i64::MAX),
                        -70_000i64..70_000
                    ],
                    0..40
                ),
                nulls.clone()
            )
                .prop_map(|(keys, nulls)| BatchColumn::Fixed { keys, nulls }),
            (
                proptest::collection::vec(any::<u8>(), 0..300),
                proptest::collection::vec(prop_oneof![0u32..300, any::<u32>()], 0..40),
                nulls.clone()
            )
                .prop_map(|(bytes, ends, nulls)| BatchColumn::Text {
                    bytes,
                    ends,
                    nulls
                }),
            (
                prop_oneof![
                    proptest::collection::vec(-70_000i64..70_000, 0..20)
                        .prop_map(CodedValues::Fixed),
                    (
                        proptest::collection::vec(any::<u8>(), 0..100),
                        proptest::collection::vec(0u32..120, 0..20)
                    )
                        .prop_map(|(bytes, ends)| CodedValues::Text { bytes, ends }),
                ],
                proptest::collection::vec(any::<u8>(), 0..60),
                nulls
            )
                .prop_map(|(values, codes, nulls)| BatchColumn::Coded {
                    values,
                    codes,
                    nulls
                }),
        ]
    }

    #[test]
    fn integer_widths_decode_as_bincode_reads_them() {
        // Proves: each width marker of a key (a byte, 251/252/253 then 2/4/8 bytes, even a
        // non-canonical wide one) reads as bincode reads it, and 254 (u128) and 255 are
        // rejected by both.
        let batch_with_key = |key: &[u8]| {
            // rows 1, one column, Fixed, one key, no NULL words.
            let mut bytes = vec![1, 1, 0, 1];
            bytes.extend_from_slice(key);
            bytes.push(0);
            bytes
        };
        let mut wide = vec![253];
        wide.extend_from_slice(&u64::MAX.to_le_bytes());
        for key in [vec![7], vec![251, 1, 0], vec![252, 9, 0, 0, 0], wide] {
            let bytes = batch_with_key(&key);
            let decoded = ColumnBatch::decode(&bytes).expect("a valid width");
            assert_eq!(Some(decoded), bincode_decode(&bytes), "{key:?}");
        }
        let mut u128_key = vec![254];
        u128_key.extend_from_slice(&[0; 16]);
        for key in [u128_key, vec![255]] {
            let bytes = batch_with_key(&key);
            assert!(ColumnBatch::decode(&bytes).is_err(), "{key:?}");
            assert!(bincode_decode(&bytes).is_none(), "{key:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// Proves: the hand decoder gives exactly bincode's batch for encoded batches, and
        /// for the same bytes damaged (a byte changed, cut short, or a byte appended) it
        /// fails exactly when bincode fails and otherwise agrees with it.
        #[test]
        fn hand_decoder_agrees_with_bincode(
            rows in proptest::prelude::any::<u32>(),
            columns in proptest::collection::vec(arbitrary_column(), 0..5),
            at in proptest::prelude::any::<proptest::sample::Index>(),
            byte in proptest::prelude::any::<u8>(),
            damage in 0u8..4,
        ) {
            let batch = ColumnBatch { rows, columns };
            let mut bytes = batch.encode();
            proptest::prop_assert_eq!(ColumnBatch::decode(&bytes).ok(), Some(batch));
            match damage {
                0 => {}
                1 if !bytes.is_empty() => {
                    let i = at.index(bytes.len());
                    bytes[i] = byte;
                }
                2 => bytes.truncate(at.index(bytes.len() + 1)),
                _ => bytes.push(byte),
            }
            proptest::prop_assert_eq!(ColumnBatch::decode(&bytes).ok(), bincode_decode(&bytes));
        }
    }

    proptest::proptest! {
        /// The whole-column text check agrees with checking text by text: bytes from
        /// multi-byte characters, NULs and invalid UTF-8, cut at arbitrary offsets (inside
        /// characters too), against VARCHAR(3) and TEXT.
        #[test]
        fn whole_column_text_check_agrees_with_row_by_row(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(b"a".to_vec()),
                    proptest::strategy::Just("é".as_bytes().to_vec()),
                    proptest::strategy::Just("€".as_bytes().to_vec()),
                    proptest::strategy::Just(vec![0u8]),
                    proptest::strategy::Just(vec![0xFFu8]),
                ],
                0..20,
            ),
            cuts in proptest::collection::vec(0usize..64, 0..8),
            limited in proptest::bool::ANY,
        ) {
            let bytes: Vec<u8> = parts.concat();
            let mut ends: Vec<u32> = cuts.iter().map(|&c| c.min(bytes.len()) as u32).collect();
            ends.push(bytes.len() as u32);
            ends.sort_unstable();
            let data_type = DataType::Text { max_chars: limited.then_some(3) };
            let mut start = 0usize;
            let row_by_row = ends.iter().all(|&end| {
                let piece = &bytes[start..end as usize];
                start = end as usize;
                std::str::from_utf8(piece).is_ok_and(|t| data_type.check_text(t).is_ok())
            });
            proptest::prop_assert_eq!(texts_are_valid(&bytes, &ends, data_type), row_by_row);
        }
    }

    /// Rows of a two-column table (`k BIGINT`, `s TEXT`, both nullable): `k` from `keys`,
    /// `s` from `texts`, NULL where the drawn index is 0.
    fn coded_rows(keys: &[u16], texts: &[u8]) -> Vec<Vec<Value>> {
        keys.iter()
            .zip(texts)
            .map(|(&k, &t)| {
                vec![
                    if k == 0 {
                        Value::Null
                    } else {
                        Value::Int(i64::from(k) * 1_000_003)
                    },
                    if t == 0 {
                        Value::Null
                    } else {
                        Value::Text(format!("text {}", t % 40))
                    },
                ]
            })
            .collect()
    }

    fn coded_schema() -> Schema {
        Schema::new(vec![
            def("k", DataType::BigInt, true),
            def("s", DataType::Text { max_chars: None }, true),
        ])
        .expect("a valid schema")
    }

    #[test]
    fn few_distinct_values_are_coded_and_many_are_not() {
        // Proves: from_rows codes a column when at most half its rows are distinct (one byte
        // a code up to 256 values, two beyond), writes it out otherwise, and the coded batch
        // holds the same cells, through the bytes and back.
        let schema = coded_schema();
        let rows: Vec<Vec<Value>> = (0..1200u32)
            .map(|i| {
                vec![
                    Value::Int(i64::from(i % 500)),
                    if i % 7 == 0 {
                        Value::Null
                    } else {
                        Value::Text(format!("v{}", i % 3))
                    },
                ]
            })
            .collect();
        let batch = ColumnBatch::from_rows(&schema, &rows).expect("accepted");
        match &batch.columns[0] {
            BatchColumn::Coded { values, codes, .. } => {
                assert_eq!(values.len(), 500);
                assert_eq!(codes.len(), 2 * 1200, "two bytes a code past 256 values");
            }
            other => panic!("500 values in 1200 rows not coded: {other:?}"),
        }
        match &batch.columns[1] {
            BatchColumn::Coded { values, codes, .. } => {
                assert_eq!(values.len(), 3);
                assert_eq!(codes.len(), 1200);
            }
            other => panic!("3 values not coded: {other:?}"),
        }
        let decoded = ColumnBatch::decode(&batch.encode()).expect("decodes");
        decoded.check(&schema).expect("valid");
        for (r, row) in rows.iter().enumerate() {
            assert_eq!(&decoded.row(&schema, r), row, "row {r}");
        }
        assert_eq!(decoded.without_codes().row(&schema, 5), rows[5]);
        let distinct: Vec<Vec<Value>> = (0..100)
            .map(|i| vec![Value::Int(i), Value::Text(format!("{}", i % 60))])
            .collect();
        let batch = ColumnBatch::from_rows(&schema, &distinct).expect("accepted");
        assert!(matches!(batch.columns[0], BatchColumn::Fixed { .. }));
        assert!(matches!(batch.columns[1], BatchColumn::Text { .. }));
        assert_eq!(batch, batch.without_codes());
    }

    #[test]
    fn malformed_coded_columns_are_rejected() {
        // Proves: check rejects coded columns whose codes are out of order, name no value,
        // leave a value unused, have the wrong width, hold a code in a NULL row, or whose
        // values are of the wrong kind or not valid for the type.
        let schema = coded_schema();
        let rows = coded_rows(
            &[1, 2, 1, 3, 0, 2, 1, 1, 2, 3, 3, 1, 0, 2, 2, 1, 1, 2],
            &[1; 18],
        );
        let batch = ColumnBatch::from_rows(&schema, &rows).expect("accepted");
        batch.check(&schema).expect("valid");
        let with = |change: &dyn Fn(&mut Vec<u8>, &mut CodedValues, &mut NullMask)| {
            let mut bad = batch.clone();
            if let BatchColumn::Coded {
                codes,
                values,
                nulls,
            } = &mut bad.columns[0]
            {
                change(codes, values, nulls);
            } else {
                panic!("column k is coded");
            }
            bad.check(&schema).expect_err("rejected").to_string()
        };
        let err = with(&|codes, _, _| codes.swap(0, 1));
        assert!(err.contains("not canonical"), "{err}");
        let err = with(&|codes, _, _| codes[3] = 3);
        assert!(err.contains("not canonical"), "{err}");
        let err = with(&|_, values, _| {
            if let CodedValues::Fixed(keys) = values {
                keys.push(77);
            }
        });
        assert!(err.contains("not canonical"), "{err}");
        let err = with(&|codes, _, _| codes.push(0));
        assert!(err.contains("code count"), "{err}");
        let err = with(&|codes, _, _| codes[4] = 1);
        assert!(err.contains("not canonical"), "{err}");
        let err = with(&|_, values, _| {
            *values = CodedValues::Text {
                bytes: b"abc".to_vec(),
                ends: vec![1, 2, 3],
            }
        });
        assert!(err.contains("text for a non-text column"), "{err}");
        let int_schema = Schema::new(vec![
            def("k", DataType::Int, true),
            def("s", DataType::Text { max_chars: None }, true),
        ])
        .expect("schema");
        let mut wide = batch.clone();
        if let BatchColumn::Coded {
            values: CodedValues::Fixed(keys),
            ..
        } = &mut wide.columns[0]
        {
            keys[2] = 1 << 40;
        }
        let err = wide.check(&int_schema).expect_err("rejected").to_string();
        assert!(err.contains("column k, distinct value 2"), "{err}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        /// Proves: a store that appends batches with coded columns holds exactly what one
        /// appending the same rows written out row by row holds: the same segment bytes
        /// (dictionaries with the same symbols, the same Rhizomes) and the same digest; and
        /// a coded column whose values repeat (which from_rows never writes) is appended
        /// row by row with the same result.
        #[test]
        fn coded_columns_append_as_their_rows_do(
            batches in proptest::collection::vec(
                // Per batch: its row count and how many distinct keys it draws from.
                proptest::strategy::Strategy::prop_flat_map(
                    (1usize..300, proptest::sample::select(vec![1u16, 3, 40, 300, u16::MAX])),
                    |(n, domain)| (
                        proptest::collection::vec(0..=domain, n),
                        proptest::collection::vec(proptest::prelude::any::<u8>(), n),
                    ),
                ),
                1..5,
            ),
            repeat_value in proptest::prelude::any::<bool>(),
        ) {
            use proptest::prelude::*;
            let schema = coded_schema();
            let mut coded = crate::shard::ShardStore::new(schema.clone(), crate::shard::StoreOptions::in_memory());
            let mut plain = crate::shard::ShardStore::new(schema.clone(), crate::shard::StoreOptions::in_memory());
            for (keys, texts) in &batches {
                let rows = coded_rows(keys, texts);
                let mut batch = ColumnBatch::from_rows(&schema, &rows).expect("valid");
                if repeat_value {
                    // A second copy of the first value, used by the row that first used
                    // the second one.
                    if let BatchColumn::Coded { values: CodedValues::Fixed(values), .. } = &mut batch.columns[0] {
                        if values.len() >= 2 {
                            values[1] = values[0];
                        }
                    }
                }
                let ids = coded.insert_columns(&batch).expect("appended");
                plain.insert_columns(&batch.without_codes()).expect("appended");
                prop_assert_eq!(ids.end, plain.record_count());
            }
            prop_assert_eq!(coded.digest(), plain.digest());
            let (coded_image, plain_image) = (coded.image().expect("image"), plain.image().expect("image"));
            prop_assert!(coded_image == plain_image, "segment bytes differ");
        }
    }
}
