//! A column shard's dictionary: value ↔ symbol.
//!
//! Symbols are dense `u32`s handed out in the order values are first seen, so a Rhizome
//! arena can index its Rhizomes by symbol. Symbol [`NULL_SYMBOL`] (0) is NULL in every
//! column; real values start at 1.
//!
//! Values are stored as their order-preserving key ([`DataType::key`]) for fixed-width types,
//! or as UTF-8 bytes in one arena for text — no allocation per value. Equality lookup is a
//! hash table of symbols (`symbol_index.rs`); ranges use *sorted runs*: the first range query after new values
//! arrived (or [`Dictionary::seal`]) sorts the symbols added since the last sort into a run,
//! and runs of similar length are merged, so the total sorting work stays O(n log n) however
//! the values arrive, and a range lookup is a binary search per run (O(log² n)). Appends
//! alone never sort.

use std::hash::BuildHasher;
use std::ops::Bound;
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use crate::bytes::{ByteReader, ByteWriter};
use crate::prefetch::prefetch;
use crate::symbol_index::{Probe, SymbolIndex};
use crate::value::{DataType, LikePattern, Value};
use crate::{Error, Result};

pub type Symbol = u32;

/// The symbol of NULL in every column.
pub const NULL_SYMBOL: Symbol = 0;

/// At most this many distinct values per column shard (symbols are `u32`).
pub const SYMBOL_COUNT_MAX: usize = u32::MAX as usize - 1;

/// How values are held, by type.
#[derive(Debug, Clone)]
enum Keys {
    /// One key per symbol; index 0 (NULL) holds a placeholder.
    Fixed(Vec<i64>),
    /// Text bytes back to back; symbol `s` is `bytes[ends[s-1]..ends[s]]` (`ends[0] = 0`).
    Text { bytes: Vec<u8>, ends: Vec<u64> },
}

/// A borrowed dictionary entry, for hashing and ordering without building a `Value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyRef<'a> {
    Fixed(i64),
    Text(&'a [u8]),
}

#[derive(Debug, Clone)]
pub struct Dictionary {
    data_type: DataType,
    keys: Keys,
    /// Symbols by hash of their key (NULL is not in it).
    index: SymbolIndex,
    /// The non-NULL symbols in value order, sorted when a range query needs them.
    ordered: OrderedIndex,
    hasher: FixedState,
}

/// The ordered index: sorted runs of the symbols `1..sorted_to`, each run ascending by value.
/// Symbols from `sorted_to` on were added since and are in no order yet.
///
/// Appending only adds symbols; they are sorted in by the first range query after them
/// ([`Dictionary::range`], under the lock) or by [`Dictionary::seal`]. A bulk load, and a
/// replica that only applies writes, never sort; a query after many appends sorts them at
/// once, which costs less than sorting and merging after every batch.
#[derive(Debug, Default)]
struct OrderedIndex(RwLock<Ordered>);

#[derive(Debug, Clone)]
struct Ordered {
    runs: Vec<Vec<Symbol>>,
    sorted_to: Symbol,
}

impl Default for Ordered {
    fn default() -> Self {
        Ordered {
            runs: Vec::new(),
            sorted_to: 1,
        }
    }
}

impl Clone for OrderedIndex {
    fn clone(&self) -> Self {
        OrderedIndex(RwLock::new(self.read().clone()))
    }
}

impl OrderedIndex {
    fn read(&self) -> RwLockReadGuard<'_, Ordered> {
        // The lock guards no invariant a panic could break half-way: a sort either pushed
        // its run or did not.
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn get_mut(&mut self) -> &mut Ordered {
        self.0.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    /// The index with every symbol below `count` sorted in.
    fn sorted(&self, keys: &Keys, count: Symbol) -> RwLockReadGuard<'_, Ordered> {
        {
            let ordered = self.read();
            if ordered.sorted_to >= count {
                return ordered;
            }
        }
        // Sorting needs the write lock; appends cannot run meanwhile (they hold the
        // dictionary mutably), so nothing is added between the sort and the read.
        sort_in(
            keys,
            &mut self.0.write().unwrap_or_else(PoisonError::into_inner),
            count,
        );
        self.read()
    }
}

/// A fixed-seed hasher: dictionaries behave the same on every replica and every run.
#[derive(Debug, Clone, Copy)]
struct FixedState(foldhash::fast::FixedState);

impl Default for FixedState {
    fn default() -> Self {
        FixedState(foldhash::fast::FixedState::with_seed(DICTIONARY_HASH_SEED))
    }
}

/// Seed of the dictionary hash ("RHIZOME" in ASCII).
const DICTIONARY_HASH_SEED: u64 = 0x52_48_49_5a_4f_4d_45;

impl BuildHasher for FixedState {
    type Hasher = foldhash::fast::FoldHasher;
    fn build_hasher(&self) -> Self::Hasher {
        self.0.build_hasher()
    }
}

impl Dictionary {
    pub fn new(data_type: DataType) -> Self {
        let keys = if data_type.is_text() {
            Keys::Text {
                bytes: Vec::new(),
                ends: vec![0],
            }
        } else {
            Keys::Fixed(vec![0])
        };
        Dictionary {
            data_type,
            keys,
            index: SymbolIndex::default(),
            ordered: OrderedIndex::default(),
            hasher: FixedState::default(),
        }
    }

    pub fn data_type(&self) -> DataType {
        self.data_type
    }

    /// Number of symbols, NULL included.
    pub fn symbol_count(&self) -> usize {
        match &self.keys {
            Keys::Fixed(keys) => keys.len(),
            Keys::Text { ends, .. } => ends.len(),
        }
    }

    pub fn key(&self, symbol: Symbol) -> KeyRef<'_> {
        match &self.keys {
            Keys::Fixed(keys) => KeyRef::Fixed(keys[symbol as usize]),
            Keys::Text { bytes, ends } => {
                let s = symbol as usize;
                let start = if s == 0 { 0 } else { ends[s - 1] as usize };
                KeyRef::Text(&bytes[start..ends[s] as usize])
            }
        }
    }

    /// The fixed-width key of a symbol (`None` for text columns and for NULL).
    pub fn fixed_key(&self, symbol: Symbol) -> Option<i64> {
        match &self.keys {
            Keys::Fixed(keys) if symbol != NULL_SYMBOL => Some(keys[symbol as usize]),
            _ => None,
        }
    }

    /// All keys of a fixed-width column, indexed by symbol (index 0 is NULL's placeholder).
    pub fn fixed_keys(&self) -> Option<&[i64]> {
        match &self.keys {
            Keys::Fixed(keys) => Some(keys),
            Keys::Text { .. } => None,
        }
    }

    pub fn value(&self, symbol: Symbol) -> Value {
        if symbol == NULL_SYMBOL {
            return Value::Null;
        }
        match self.key(symbol) {
            KeyRef::Fixed(key) => self.data_type.from_key(key),
            KeyRef::Text(bytes) => Value::Text(String::from_utf8_lossy(bytes).into_owned()),
        }
    }

    /// The key of a value already coerced to this column's type (`None` for NULL).
    fn key_of<'v>(&self, value: &'v Value) -> Result<Option<KeyRef<'v>>> {
        match value {
            Value::Null => Ok(None),
            Value::Text(text) if self.data_type.is_text() => {
                Ok(Some(KeyRef::Text(text.as_bytes())))
            }
            other => match self.data_type.key(other) {
                Some(key) if !self.data_type.is_text() => Ok(Some(KeyRef::Fixed(key))),
                _ => Err(Error::Plan(format!(
                    "value {other:?} is not of the column type {}",
                    self.data_type.sql_name()
                ))),
            },
        }
    }

    fn hash_key(&self, key: KeyRef<'_>) -> u32 {
        hash_of(&self.hasher, key)
    }

    /// The symbol of a value, if the dictionary holds it. The value must be of the column's type.
    pub fn lookup(&self, value: &Value) -> Result<Option<Symbol>> {
        match self.key_of(value)? {
            None => Ok(Some(NULL_SYMBOL)),
            Some(key) => Ok(self.lookup_key(key)),
        }
    }

    #[inline]
    fn lookup_key(&self, key: KeyRef<'_>) -> Option<Symbol> {
        self.lookup_hashed(self.hash_key(key), key)
    }

    /// The symbol of a value, adding it when new. Returns `(symbol, is_new)`.
    pub fn intern(&mut self, value: &Value) -> Result<(Symbol, bool)> {
        let Some(key) = self.key_of(value)? else {
            return Ok((NULL_SYMBOL, false));
        };
        self.intern_key(key)
    }

    /// The symbol of a key of this column's kind (fixed-width key or text bytes, already
    /// checked against the type), adding it when new. Returns `(symbol, is_new)`.
    pub fn intern_key(&mut self, key: KeyRef<'_>) -> Result<(Symbol, bool)> {
        let hash = self.hash_key(key);
        self.index.reserve(1);
        match self.index.probe(hash, |s| key_in(&self.keys, s) == key) {
            Probe::Found(symbol) => Ok((symbol, false)),
            Probe::Vacant(at) => {
                let symbol = self.push_key(key)?;
                self.index.insert_at(at, hash, symbol);
                Ok((symbol, true))
            }
        }
    }

    /// The symbols of a batch's keys (`None` is NULL), adding new values in the order they
    /// first appear: the same symbols as [`Dictionary::intern_key`] one key after another.
    /// Writes one symbol per key into `symbols` and returns how many symbols are new.
    ///
    /// Every key is hashed first; then, row by row, the index slot where a key's probe
    /// starts is prefetched [`HOME_AHEAD`] rows ahead, and the value that slot names (most
    /// often the key's own) [`VALUE_AHEAD`] rows ahead, so that the cache misses of a big
    /// dictionary overlap. A key equal to the row before it reuses its symbol without a
    /// look-up.
    pub fn intern_many(
        &mut self,
        keys: &[Option<KeyRef<'_>>],
        symbols: &mut Vec<Symbol>,
    ) -> Result<usize> {
        let n = keys.len();
        symbols.clear();
        symbols.resize(n, NULL_SYMBOL);
        let hashes: Vec<u32> = keys
            .iter()
            .map(|key| key.map_or(0, |key| self.hash_key(key)))
            .collect();
        // No growth during the batch: the slots prefetched stay where they are.
        self.index.reserve(n);
        let mut new = 0;
        for row in 0..n {
            if let Some(Some(_)) = keys.get(row + HOME_AHEAD) {
                if let Some(home) = self.index.home(hashes[row + HOME_AHEAD]) {
                    prefetch(home);
                }
            }
            if let Some(Some(_)) = keys.get(row + VALUE_AHEAD) {
                self.prefetch_candidate(hashes[row + VALUE_AHEAD]);
            }
            let Some(key) = keys[row] else { continue };
            if row > 0 && keys[row - 1] == Some(key) {
                symbols[row] = symbols[row - 1];
                continue;
            }
            let hash = hashes[row];
            symbols[row] = match self.index.probe(hash, |s| key_in(&self.keys, s) == key) {
                Probe::Found(symbol) => symbol,
                Probe::Vacant(at) => {
                    let symbol = self.push_key(key)?;
                    self.index.insert_at(at, hash, symbol);
                    new += 1;
                    symbol
                }
            };
        }
        Ok(new)
    }

    /// Prefetch the value that the slot where `hash`'s probe starts names, when that slot
    /// holds the same hash (the slot itself was prefetched earlier).
    #[inline]
    fn prefetch_candidate(&self, hash: u32) {
        let Some(&slot) = self.index.home(hash) else {
            return;
        };
        if slot == 0 || (slot >> 32) as u32 != hash {
            return;
        }
        let symbol = slot as Symbol as usize;
        match &self.keys {
            Keys::Fixed(keys) => {
                if let Some(key) = keys.get(symbol) {
                    prefetch(key);
                }
            }
            Keys::Text { bytes, ends } => {
                if let Some(&end) = ends.get(symbol) {
                    prefetch(&ends[symbol]);
                    // The text ends at `end` and is usually short: its last byte's line is
                    // most often its first's.
                    if let Some(last) = bytes.get((end as usize).saturating_sub(1)) {
                        prefetch(last);
                    }
                }
            }
        }
    }

    /// The symbol of `key`, whose hash is `hash`, if the index holds it.
    #[inline]
    fn lookup_hashed(&self, hash: u32, key: KeyRef<'_>) -> Option<Symbol> {
        self.index.find(hash, |s| key_in(&self.keys, s) == key)
    }

    /// Store a new key as the next symbol (not yet in the index nor in `unsorted`).
    fn push_key(&mut self, key: KeyRef<'_>) -> Result<Symbol> {
        if self.symbol_count() >= SYMBOL_COUNT_MAX {
            return Err(Error::Schema(
                "column shard holds too many distinct values".into(),
            ));
        }
        let symbol = self.symbol_count() as Symbol;
        match (&mut self.keys, key) {
            (Keys::Fixed(keys), KeyRef::Fixed(k)) => keys.push(k),
            (Keys::Text { bytes, ends }, KeyRef::Text(t)) => {
                bytes.extend_from_slice(t);
                ends.push(bytes.len() as u64);
            }
            _ => {
                return Err(Error::Plan(format!(
                    "a key of the wrong kind for a {} column",
                    self.data_type.sql_name()
                )))
            }
        }
        Ok(symbol)
    }

    /// Sort the symbols added since the last sort into the ordered index now, rather than
    /// at the next range query.
    pub fn seal(&mut self) {
        let count = self.symbol_count() as Symbol;
        sort_in(&self.keys, self.ordered.get_mut(), count);
    }

    /// Non-NULL symbols whose value lies within the bounds (values of the column's type).
    /// Symbols added since the last query are sorted into the ordered index first.
    pub fn range(&self, low: Bound<&Value>, high: Bound<&Value>) -> Result<Vec<Symbol>> {
        let low = map_bound(low, |v| self.key_of(v))?;
        let high = map_bound(high, |v| self.key_of(v))?;
        let above_low = |k: KeyRef<'_>| match low {
            Bound::Unbounded => true,
            Bound::Included(l) => k >= l,
            Bound::Excluded(l) => k > l,
        };
        let below_high = |k: KeyRef<'_>| match high {
            Bound::Unbounded => true,
            Bound::Included(h) => k <= h,
            Bound::Excluded(h) => k < h,
        };
        let ordered = self
            .ordered
            .sorted(&self.keys, self.symbol_count() as Symbol);
        let mut out = Vec::new();
        for run in &ordered.runs {
            let start = run.partition_point(|&s| !above_low(self.key(s)));
            let end = start + run[start..].partition_point(|&s| below_high(self.key(s)));
            out.extend_from_slice(&run[start..end]);
        }
        Ok(out)
    }

    /// Non-NULL symbols whose text matches a LIKE pattern: one match per distinct value.
    pub fn like(&self, pattern: &LikePattern) -> Vec<Symbol> {
        (1..self.symbol_count() as Symbol)
            .filter(|&s| match self.key(s) {
                KeyRef::Text(bytes) => std::str::from_utf8(bytes).is_ok_and(|t| pattern.matches(t)),
                KeyRef::Fixed(_) => false,
            })
            .collect()
    }

    /// The non-NULL symbol with the smallest (or largest) value among `symbols`.
    pub fn extreme<I: IntoIterator<Item = Symbol>>(
        &self,
        symbols: I,
        largest: bool,
    ) -> Option<Symbol> {
        symbols
            .into_iter()
            .filter(|&s| s != NULL_SYMBOL)
            .reduce(|a, b| {
                let keep_b = if largest {
                    self.key(b) > self.key(a)
                } else {
                    self.key(b) < self.key(a)
                };
                if keep_b {
                    b
                } else {
                    a
                }
            })
    }

    /// Bytes held (keys or text, offsets, hash index, sorted runs).
    pub fn heap_bytes(&self) -> u64 {
        let keys = match &self.keys {
            Keys::Fixed(keys) => keys.capacity() * 8,
            Keys::Text { bytes, ends } => bytes.capacity() + ends.capacity() * 8,
        };
        let sorted: usize = self
            .ordered
            .read()
            .runs
            .iter()
            .map(|r| r.capacity() * 4)
            .sum();
        (keys + self.index.capacity() * 8 + sorted) as u64
    }

    /// Serialise into a segment block. The hash index and the runs are rebuilt on load.
    pub fn encode(&self, out: &mut ByteWriter) {
        match &self.keys {
            Keys::Fixed(keys) => {
                out.put_u8(0);
                out.put_varint(keys.len() as u64 - 1);
                let mut previous = 0i64;
                for &key in &keys[1..] {
                    // Zig-zag deltas keep ascending or clustered keys short.
                    let delta = key.wrapping_sub(previous);
                    out.put_varint(((delta << 1) ^ (delta >> 63)) as u64);
                    previous = key;
                }
            }
            Keys::Text { bytes, ends } => {
                out.put_u8(1);
                out.put_varint(ends.len() as u64 - 1);
                let mut start = 0u64;
                for &end in &ends[1..] {
                    out.put_varint(end - start);
                    start = end;
                }
                out.put_bytes(bytes);
            }
        }
    }

    /// Load from a segment block written by [`Dictionary::encode`]; checks what it reads.
    pub fn decode(data_type: DataType, input: &mut ByteReader<'_>) -> Result<Dictionary> {
        let mut dictionary = Dictionary::new(data_type);
        let kind = input.u8()?;
        let count = input.varint()?;
        if count as usize > SYMBOL_COUNT_MAX || count > input.remaining() as u64 {
            return Err(Error::corrupt(
                "dictionary",
                format!("implausible value count {count}"),
            ));
        }
        match (kind, &mut dictionary.keys) {
            (0, Keys::Fixed(keys)) => {
                let mut previous = 0i64;
                for _ in 0..count {
                    let zigzag = input.varint()?;
                    let delta = ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64);
                    previous = previous.wrapping_add(delta);
                    keys.push(previous);
                }
            }
            (1, Keys::Text { bytes, ends }) => {
                let mut end = 0u64;
                for _ in 0..count {
                    end = end
                        .checked_add(input.varint()?)
                        .ok_or_else(|| Error::corrupt("dictionary", "text offsets overflow"))?;
                    ends.push(end);
                }
                let text = input.bytes()?;
                if text.len() as u64 != end {
                    return Err(Error::corrupt(
                        "dictionary",
                        "text length does not match offsets",
                    ));
                }
                if std::str::from_utf8(text).is_err() {
                    return Err(Error::corrupt("dictionary", "text is not UTF-8"));
                }
                bytes.extend_from_slice(text);
            }
            _ => {
                return Err(Error::corrupt(
                    "dictionary",
                    format!("dictionary kind {kind} does not fit the column type"),
                ))
            }
        }
        let symbol_count = dictionary.symbol_count() as Symbol;
        dictionary.index.reserve(symbol_count as usize);
        for symbol in 1..symbol_count {
            let key = dictionary.key(symbol);
            let hash = dictionary.hash_key(key);
            match dictionary
                .index
                .probe(hash, |s| key_in(&dictionary.keys, s) == key)
            {
                Probe::Found(_) => {
                    return Err(Error::corrupt(
                        "dictionary",
                        format!("value of symbol {symbol} appears twice"),
                    ))
                }
                Probe::Vacant(at) => dictionary.index.insert_at(at, hash, symbol),
            }
        }
        Ok(dictionary)
    }
}

/// Sort the symbols `ordered.sorted_to..count` into a run and merge runs of similar length.
fn sort_in(keys: &Keys, ordered: &mut Ordered, count: Symbol) {
    if ordered.sorted_to >= count {
        return;
    }
    let mut run: Vec<Symbol> = (ordered.sorted_to..count).collect();
    match keys {
        Keys::Fixed(keys) => run.sort_unstable_by_key(|&s| keys[s as usize]),
        Keys::Text { bytes, ends } => {
            // Sorted by each text's first 8 bytes as a number, the whole texts compared
            // only where those are equal.
            let mut keyed: Vec<(u64, Symbol)> = run
                .iter()
                .map(|&s| (text_prefix(text_in(bytes, ends, s)), s))
                .collect();
            keyed.sort_unstable_by(|a, b| {
                a.0.cmp(&b.0)
                    .then_with(|| text_in(bytes, ends, a.1).cmp(text_in(bytes, ends, b.1)))
            });
            run.clear();
            run.extend(keyed.iter().map(|&(_, s)| s));
        }
    }
    ordered.sorted_to = count;
    let runs = &mut ordered.runs;
    runs.push(run);
    while runs.len() >= 2 {
        let n = runs.len();
        if runs[n - 2].len() > 2 * runs[n - 1].len() {
            break;
        }
        let b = runs.pop().expect("two runs");
        let a = runs.pop().expect("two runs");
        let merged = match keys {
            Keys::Fixed(keys) => merge_by(a, b, |x, y| keys[x as usize] <= keys[y as usize]),
            Keys::Text { bytes, ends } => merge_by(a, b, |x, y| {
                text_cmp(text_in(bytes, ends, x), text_in(bytes, ends, y)).is_le()
            }),
        };
        runs.push(merged);
    }
}

fn key_in(keys: &Keys, symbol: Symbol) -> KeyRef<'_> {
    match keys {
        Keys::Fixed(k) => KeyRef::Fixed(k[symbol as usize]),
        Keys::Text { bytes, ends } => KeyRef::Text(text_in(bytes, ends, symbol)),
    }
}

/// Rows ahead of the one being interned whose index slot is prefetched, and whose
/// candidate value (named by that slot, which has arrived by then) is.
const HOME_AHEAD: usize = 16;
const VALUE_AHEAD: usize = 8;

/// The text of `symbol` in a text dictionary's bytes and ends.
#[inline]
fn text_in<'a>(bytes: &'a [u8], ends: &[u64], symbol: Symbol) -> &'a [u8] {
    let s = symbol as usize;
    let start = if s == 0 { 0 } else { ends[s - 1] as usize };
    &bytes[start..ends[s] as usize]
}

/// The hash of a key in the index, of the number or of the text's bytes, folded to the 32
/// bits the index keeps.
#[inline]
fn hash_of(hasher: &FixedState, key: KeyRef<'_>) -> u32 {
    let full = match key {
        KeyRef::Fixed(k) => hasher.hash_one(k),
        KeyRef::Text(t) => hasher.hash_one(t),
    };
    (full ^ (full >> 32)) as u32
}

/// A text's first 8 bytes (zero-padded) as a big-endian number: ordered like the texts
/// wherever two prefixes differ.
#[inline]
fn text_prefix(text: &[u8]) -> u64 {
    match text.get(..8) {
        Some(head) => u64::from_be_bytes(head.try_into().expect("8 bytes")),
        None => {
            let mut head = [0u8; 8];
            head[..text.len()].copy_from_slice(text);
            u64::from_be_bytes(head)
        }
    }
}

/// Byte order of two texts, deciding on their 8-byte prefixes where those differ.
#[inline]
fn text_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    text_prefix(a).cmp(&text_prefix(b)).then_with(|| a.cmp(b))
}

/// Merge two runs ascending by `le` (`x` sorts before or with `y`). When every symbol of
/// `a` sorts before `b`'s first (values that arrive in order), the runs are concatenated.
fn merge_by(
    mut a: Vec<Symbol>,
    b: Vec<Symbol>,
    le: impl Fn(Symbol, Symbol) -> bool,
) -> Vec<Symbol> {
    if let (Some(&last), Some(&first)) = (a.last(), b.first()) {
        if le(last, first) {
            a.extend_from_slice(&b);
            return a;
        }
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if le(a[i], b[j]) {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

fn map_bound<'v>(
    bound: Bound<&'v Value>,
    key_of: impl Fn(&'v Value) -> Result<Option<KeyRef<'v>>>,
) -> Result<Bound<KeyRef<'v>>> {
    let key =
        |v: &'v Value| key_of(v)?.ok_or_else(|| Error::Plan("a range bound cannot be NULL".into()));
    Ok(match bound {
        Bound::Unbounded => Bound::Unbounded,
        Bound::Included(v) => Bound::Included(key(v)?),
        Bound::Excluded(v) => Bound::Excluded(key(v)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Texts that share long prefixes, differ past byte 8, are shorter than 8 bytes or
    /// empty, and contain bytes ≥ 0x80 (ordering is by bytes).
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ab]{0,3}",
            "(abcdefgh|abcdefgi)[a-c\u{e9}]{0,4}",
            "[a\u{e9}\u{20ac}\u{1}]{0,12}",
        ]
    }

    fn check_against_model(dictionary: &Dictionary, values: &[Value]) {
        // Every sorted run ascends by value.
        for run in &dictionary.ordered.read().runs {
            assert!(run
                .windows(2)
                .all(|w| dictionary.key(w[0]) < dictionary.key(w[1])));
        }
        let mut distinct: Vec<&Value> = values.iter().collect();
        distinct.sort_by_key(|v| dictionary.lookup(v).expect("typed").expect("present"));
        distinct.dedup();
        assert_eq!(distinct.len() + 1, dictionary.symbol_count());
        // Ranges between every pair of present values (both bounds inclusive) against a scan.
        for low in distinct.iter().take(12) {
            for high in distinct.iter().rev().take(12) {
                let mut got = dictionary
                    .range(Bound::Included(low), Bound::Excluded(high))
                    .expect("typed");
                got.sort_unstable();
                let low_key = dictionary.key_of(low).expect("typed").expect("a value");
                let high_key = dictionary.key_of(high).expect("typed").expect("a value");
                let mut expected: Vec<Symbol> = (1..dictionary.symbol_count() as Symbol)
                    .filter(|&s| dictionary.key(s) >= low_key && dictionary.key(s) < high_key)
                    .collect();
                expected.sort_unstable();
                assert_eq!(got, expected);
            }
        }
    }

    /// Intern `batches` with [`Dictionary::intern_many`] into one dictionary and key by key
    /// into another; the symbols, the stored keys and the sorted runs must be the same.
    /// Between batches: nothing (0), a seal (1), or range queries checked against a scan (2).
    fn after_batch(dictionary: &mut Dictionary, values: &[Value], after: u8) {
        match after {
            0 => {}
            1 => dictionary.seal(),
            _ if values.is_empty() => {}
            _ => check_against_model(dictionary, values),
        }
    }

    fn intern_many_matches_one_by_one(data_type: DataType, batches: &[Vec<Option<Value>>]) {
        let mut many = Dictionary::new(data_type);
        let mut one = Dictionary::new(data_type);
        let mut symbols = Vec::new();
        for batch in batches {
            let keys: Vec<Option<KeyRef<'_>>> = batch
                .iter()
                .map(|v| {
                    v.as_ref()
                        .map(|v| one.key_of(v).expect("typed").expect("not NULL"))
                })
                .collect();
            let before = many.symbol_count();
            let new = many.intern_many(&keys, &mut symbols).expect("interned");
            assert_eq!(many.symbol_count() - before, new);
            let expected: Vec<Symbol> = batch
                .iter()
                .map(|v| match v {
                    None => NULL_SYMBOL,
                    Some(v) => one.intern(v).expect("interned").0,
                })
                .collect();
            assert_eq!(symbols, expected);
            many.seal();
            one.seal();
        }
        assert_eq!(many.symbol_count(), one.symbol_count());
        for s in 1..many.symbol_count() as Symbol {
            assert_eq!(many.key(s), one.key(s));
            assert_eq!(many.lookup_key(many.key(s)), Some(s));
        }
        assert_eq!(many.ordered.read().runs, one.ordered.read().runs);
    }

    #[test]
    fn intern_many_on_a_big_index_matches_one_by_one() {
        // Batches of thousands of keys, with their prefetches ahead: keys drawn from a range
        // about twice the batch, runs of equal keys, NULLs.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let batches: Vec<Vec<Option<Value>>> = (0..6)
            .map(|_| {
                let mut batch = Vec::new();
                while batch.len() < 12_000 {
                    let draw = next();
                    let value = (draw % 17 != 0).then_some(Value::Int((draw >> 8) as i64 % 40_000));
                    for _ in 0..1 + (draw >> 40) % 3 {
                        batch.push(value.clone());
                    }
                }
                batch
            })
            .collect();
        intern_many_matches_one_by_one(DataType::BigInt, &batches);
        let texts: Vec<Vec<Option<Value>>> = batches
            .iter()
            .map(|batch| {
                batch
                    .iter()
                    .map(|v| v.as_ref().map(|v| Value::Text(format!("comment {v:?}"))))
                    .collect()
            })
            .collect();
        intern_many_matches_one_by_one(DataType::Text { max_chars: None }, &texts);
    }

    proptest! {
        #[test]
        fn intern_many_matches_one_by_one_on_small_batches(
            batches in prop::collection::vec(prop::collection::vec(prop::option::of(0i64..30), 0..50), 1..6),
        ) {
            let batches: Vec<Vec<Option<Value>>> = batches
                .into_iter()
                .map(|b| b.into_iter().map(|k| k.map(Value::Int)).collect())
                .collect();
            intern_many_matches_one_by_one(DataType::BigInt, &batches);
        }

        /// Interned in batches, each followed by nothing, a seal, or range queries (which
        /// sort what is new): symbols are stable and dense, every value is found again, runs
        /// stay sorted, and ranges match a scan of all values.
        #[test]
        fn text_dictionary_matches_a_model(batches in prop::collection::vec((prop::collection::vec(text(), 0..40), 0u8..3), 1..8)) {
            let mut dictionary = Dictionary::new(DataType::Text { max_chars: None });
            let mut values = Vec::new();
            for (batch, after) in batches {
                for t in batch {
                    let value = Value::Text(t);
                    let before = dictionary.lookup(&value).expect("typed");
                    let (symbol, new) = dictionary.intern(&value).expect("interned");
                    prop_assert_eq!(new, before.is_none());
                    prop_assert_eq!(before.unwrap_or(symbol), symbol);
                    values.push(value);
                }
                after_batch(&mut dictionary, &values, after);
            }
            check_against_model(&dictionary, &values);
        }

        #[test]
        fn fixed_dictionary_matches_a_model(batches in prop::collection::vec((prop::collection::vec(-50i64..50, 0..40), 0u8..3), 1..8)) {
            let mut dictionary = Dictionary::new(DataType::BigInt);
            let mut values = Vec::new();
            for (batch, after) in batches {
                for n in batch {
                    let value = Value::Int(n);
                    let (symbol, _) = dictionary.intern(&value).expect("interned");
                    prop_assert_eq!(dictionary.lookup(&value).expect("typed"), Some(symbol));
                    values.push(value);
                }
                after_batch(&mut dictionary, &values, after);
            }
            check_against_model(&dictionary, &values);
        }
    }
}
