//! Grouped aggregation over a selection, on symbols.
//!
//! The selection is walked in windows of [`WINDOW_IDS`] record ids: a window whose ids are
//! all selected is read as contiguous slices of the record columns, any other as a gather of
//! its ids. Per window, the group slot of every record is computed from the group columns'
//! symbols, then every aggregate is updated:
//!
//! * columns with few distinct values (quantities, flags, dates, …) are *counted*: one
//!   counter per (group slot, symbol). SUM, AVG, MIN, MAX, COUNT(col) and COUNT(DISTINCT)
//!   are all derived from those counts at the end, so the per-record work is one increment;
//! * other columns keep per-slot sums, extremes or value sets, record by record; a SUM over a
//!   numeric column of many distinct values and no NULL reads the column's values by record
//!   (one array entry per record, no dictionary look-up).
//!
//! Nothing goes back from symbols to values until the end, where the partial is keyed by
//! values so that it merges across shards.

use std::collections::HashSet;

use hashbrown::HashMap;

use crate::column::ColumnShard;
use crate::dictionary::{Dictionary, KeyRef, Symbol, NULL_SYMBOL};
use crate::planner::Selection;
use crate::query::{AggState, Aggregate, KeyValue, Partial, ShardQuery};
use crate::record_column::RecordColumn;
use crate::rhizome::RecordId;
use crate::shard::ShardStore;
use crate::value::{DataType, Value};
use crate::{Error, Result};

/// Record ids per window (16 bitmap words).
const WINDOW_IDS: usize = 1024;
const WINDOW_WORDS: usize = WINDOW_IDS / 64;
const _: () = assert!(
    WINDOW_IDS.is_multiple_of(64),
    "windows are whole bitmap words"
);
/// Group-by over fewer symbol combinations than this uses dense slot arrays (no hashing).
const DENSE_GROUP_SLOTS_MAX: u64 = 1 << 16;
/// Most counters of the count cube (slots × symbols of each counted column); small enough
/// to stay in the second-level cache.
const CUBE_ENTRIES_MAX: u64 = 1 << 16;

/// Part of a selection: consecutive ids (all selected, or those whose bit is set in
/// `mask`), or listed ids.
enum Window<'a> {
    Range {
        start: usize,
        end: usize,
        mask: Option<&'a [u64]>,
    },
    Ids(&'a [RecordId]),
}

impl Window<'_> {
    fn len(&self) -> usize {
        match self {
            Window::Range { start, end, .. } => end - start,
            Window::Ids(ids) => ids.len(),
        }
    }

    /// `out[i] += symbol × stride` for the i-th record of the window.
    #[inline]
    fn accumulate(&self, records: &RecordColumn, stride: u32, out: &mut [u32]) {
        match self {
            Window::Range { start, .. } => records.accumulate_range(*start, stride, out),
            Window::Ids(ids) => records.accumulate_ids(ids, stride, out),
        }
    }

    /// `sums[slot_of[i]] += value` of the i-th record of the window (and count it), from a
    /// column's values by record.
    #[inline]
    fn sum_values(&self, values: &[i64], slot_of: &[u32], sums: &mut [i128], counts: &mut [u64]) {
        let mut add = |slot: u32, value: i64| {
            sums[slot as usize] += value as i128;
            counts[slot as usize] += 1;
        };
        match self {
            Window::Range { start, end, .. } => slot_of
                .iter()
                .zip(&values[*start..*end])
                .for_each(|(&slot, &value)| add(slot, value)),
            Window::Ids(ids) => slot_of
                .iter()
                .zip(ids.iter())
                .for_each(|(&slot, &id)| add(slot, values[id as usize])),
        }
    }

    #[inline]
    fn gather(&self, records: &RecordColumn, out: &mut Vec<Symbol>) {
        match self {
            Window::Range { start, end, .. } => records.gather_range(*start, *end, out),
            Window::Ids(ids) => records.gather(ids, out),
        }
    }
}

/// Call `f` on the selection, window by window, in ascending id order. With `masked`, a
/// window of which at least half is selected comes as a masked range: reading all its
/// records sequentially beats extracting and gathering the selected ones.
fn for_each_window(selection: &Selection, masked: bool, mut f: impl FnMut(Window<'_>)) {
    match selection {
        Selection::Ids(ids) => ids
            .chunks(WINDOW_IDS)
            .for_each(|chunk| f(Window::Ids(chunk))),
        Selection::Bitmap(bitmap) => {
            let mut ids = Vec::with_capacity(WINDOW_IDS);
            for (window_index, words) in bitmap.words().chunks(WINDOW_WORDS).enumerate() {
                let base = window_index * WINDOW_IDS;
                if words.len() == WINDOW_WORDS {
                    if words.iter().all(|&w| w == u64::MAX) {
                        f(Window::Range {
                            start: base,
                            end: base + WINDOW_IDS,
                            mask: None,
                        });
                        continue;
                    }
                    let selected: u32 = words.iter().map(|w| w.count_ones()).sum();
                    if masked && selected as usize >= WINDOW_IDS / 2 {
                        // The last window may reach past the last record (its bits are 0).
                        let end = (base + WINDOW_IDS).min(bitmap.universe() as usize);
                        f(Window::Range {
                            start: base,
                            end,
                            mask: Some(words),
                        });
                        continue;
                    }
                }
                ids.clear();
                for (word_index, &word) in words.iter().enumerate() {
                    let mut bits = word;
                    let word_base = (base + word_index * 64) as RecordId;
                    while bits != 0 {
                        ids.push(word_base + bits.trailing_zeros() as RecordId);
                        bits &= bits - 1;
                    }
                }
                if !ids.is_empty() {
                    f(Window::Ids(&ids));
                }
            }
        }
    }
}

pub(crate) fn key_value(dictionary: &Dictionary, symbol: Symbol) -> KeyValue {
    if symbol == NULL_SYMBOL {
        return KeyValue::Null;
    }
    match dictionary.key(symbol) {
        KeyRef::Fixed(key) => KeyValue::Fixed(key),
        KeyRef::Text(bytes) => KeyValue::Text(String::from_utf8_lossy(bytes).into_owned()),
    }
}

/// How records are assigned group slots.
enum Grouping {
    /// slot = Σ symbol × stride.
    Dense { strides: Vec<u64>, slots: usize },
    /// slot looked up by the tuple of symbols, assigned in order of first appearance.
    Hashed {
        slots: HashMap<Vec<Symbol>, u32>,
        tuples: Vec<Vec<Symbol>>,
    },
}

/// One counter per (slot, symbol of each counted column): `counts[slot * block + Σ symbol_k
/// × stride_k]`. With no counted column it is the record count per slot.
struct Cube {
    columns: Vec<usize>,
    symbol_counts: Vec<usize>,
    strides: Vec<usize>,
    /// Counters per slot (the product of `symbol_counts`).
    block: usize,
    counts: Vec<u64>,
}

impl Cube {
    /// Records per symbol of counted column `dimension` within one slot.
    fn marginal(&self, slot: usize, dimension: usize) -> Vec<u64> {
        let n = self.symbol_counts[dimension];
        let stride = self.strides[dimension];
        let mut out = vec![0u64; n];
        let block = &self.counts[slot * self.block..(slot + 1) * self.block];
        for (index, &count) in block.iter().enumerate() {
            out[(index / stride) % n] += count;
        }
        out
    }

    fn rows(&self, slot: usize) -> u64 {
        self.counts[slot * self.block..(slot + 1) * self.block]
            .iter()
            .sum()
    }
}

/// Per-slot state of an aggregate over a column that is not counted.
enum RowAccumulator {
    CountNonNull(Vec<u64>),
    /// `deferred` buffers (symbol, slot) pairs of a large dictionary: they are summed in
    /// symbol-region order by [`sum_deferred`], so the dictionary's keys are not read at
    /// random (one cache and TLB miss per record).
    SumInt {
        deferred: Option<Vec<(Symbol, u32)>>,
        sums: Vec<i128>,
        counts: Vec<u64>,
    },
    /// SUM/AVG from the column's values by record, which has no NULL record.
    SumValues {
        sums: Vec<i128>,
        counts: Vec<u64>,
    },
    SumFloat {
        values: Vec<f64>,
        sums: Vec<f64>,
        counts: Vec<u64>,
    },
    /// Best symbol so far per slot (NULL_SYMBOL = none yet).
    Extreme {
        largest: bool,
        best: Vec<Symbol>,
    },
    Distinct(Vec<HashSet<Symbol>>),
}

impl RowAccumulator {
    fn grow(&mut self, slots: usize) {
        match self {
            RowAccumulator::CountNonNull(counts) => counts.resize(slots, 0),
            RowAccumulator::SumInt { sums, counts, .. }
            | RowAccumulator::SumValues { sums, counts } => {
                sums.resize(slots, 0);
                counts.resize(slots, 0);
            }
            RowAccumulator::SumFloat { sums, counts, .. } => {
                sums.resize(slots, 0.0);
                counts.resize(slots, 0);
            }
            RowAccumulator::Extreme { best, .. } => best.resize(slots, NULL_SYMBOL),
            RowAccumulator::Distinct(sets) => sets.resize_with(slots, HashSet::new),
        }
    }
}

/// Where an aggregate's result comes from.
enum Source {
    CountStar,
    Counted {
        dimension: usize,
    },
    Rows {
        column: usize,
        accumulator: RowAccumulator,
    },
}

pub(crate) fn aggregate(
    store: &ShardStore,
    query: &ShardQuery,
    selection: &Selection,
    group_columns: &[usize],
    aggregate_columns: &[Option<usize>],
) -> Result<Partial> {
    if let Some(partial) =
        sums_without_groups(store, query, selection, group_columns, aggregate_columns)
    {
        return Ok(partial);
    }
    let symbol_count = |c: usize| store.column(c).dictionary().symbol_count();
    let combined = group_columns
        .iter()
        .try_fold(1u64, |acc, &c| acc.checked_mul(symbol_count(c) as u64))
        .unwrap_or(u64::MAX);
    let mut grouping = if combined <= DENSE_GROUP_SLOTS_MAX {
        let mut strides = Vec::with_capacity(group_columns.len());
        let mut stride = 1u64;
        for &c in group_columns {
            strides.push(stride);
            stride *= symbol_count(c) as u64;
        }
        Grouping::Dense {
            strides,
            slots: combined as usize,
        }
    } else {
        Grouping::Hashed {
            slots: HashMap::new(),
            tuples: Vec::new(),
        }
    };
    let dense_slots = match &grouping {
        Grouping::Dense { slots, .. } => Some(*slots),
        Grouping::Hashed { .. } => None,
    };

    let slots_with_discard = dense_slots.map_or(0, |slots| slots + 1);
    let mut cube = Cube {
        columns: Vec::new(),
        symbol_counts: Vec::new(),
        strides: Vec::new(),
        block: 1,
        counts: Vec::new(),
    };
    let mut sources = Vec::with_capacity(query.aggregates.len());
    for (aggregate, column) in query.aggregates.iter().zip(aggregate_columns) {
        let Some(c) = *column else {
            sources.push(Source::CountStar);
            continue;
        };
        if let Some(dimension) = cube.columns.iter().position(|&counted| counted == c) {
            sources.push(Source::Counted { dimension });
            continue;
        }
        let n = symbol_count(c);
        let fits = dense_slots.is_some()
            && (slots_with_discard as u64)
                .saturating_mul((cube.block as u64).saturating_mul(n as u64))
                <= CUBE_ENTRIES_MAX;
        if fits {
            cube.columns.push(c);
            cube.symbol_counts.push(n);
            cube.strides.push(cube.block);
            cube.block *= n;
            sources.push(Source::Counted {
                dimension: cube.columns.len() - 1,
            });
            continue;
        }
        let data_type = store.schema().columns[c].data_type;
        let mut accumulator = match aggregate {
            Aggregate::Count(_) => RowAccumulator::CountNonNull(Vec::new()),
            Aggregate::Sum(_) | Aggregate::Avg(_) if data_type == DataType::Double => {
                let dictionary = store.column(c).dictionary();
                let values = (0..n as Symbol)
                    .map(|s| match dictionary.value(s) {
                        Value::Double(v) => v,
                        _ => 0.0,
                    })
                    .collect();
                RowAccumulator::SumFloat {
                    values,
                    sums: Vec::new(),
                    counts: Vec::new(),
                }
            }
            Aggregate::Sum(_) | Aggregate::Avg(_) if sums_by_record(store.column(c)) => {
                RowAccumulator::SumValues {
                    sums: Vec::new(),
                    counts: Vec::new(),
                }
            }
            Aggregate::Sum(_) | Aggregate::Avg(_) => RowAccumulator::SumInt {
                deferred: (n > DEFERRED_SUM_SYMBOLS_MIN).then(Vec::new),
                sums: Vec::new(),
                counts: Vec::new(),
            },
            Aggregate::Min(_) => RowAccumulator::Extreme {
                largest: false,
                best: Vec::new(),
            },
            Aggregate::Max(_) => RowAccumulator::Extreme {
                largest: true,
                best: Vec::new(),
            },
            Aggregate::CountDistinct(_) => RowAccumulator::Distinct(Vec::new()),
            Aggregate::CountStar => unreachable!("COUNT(*) has no column"),
        };
        accumulator.grow(slots_with_discard);
        sources.push(Source::Rows {
            column: c,
            accumulator,
        });
    }

    // Dense grouping has one extra slot, `discard`, for the unselected records of masked
    // windows; it is never reported.
    let discard = dense_slots.unwrap_or(0);
    cube.counts = vec![0; slots_with_discard * cube.block];
    let mut cube_index: Vec<u32> = Vec::with_capacity(WINDOW_IDS);
    let has_row_accumulators = sources.iter().any(|s| matches!(s, Source::Rows { .. }));
    let mut slot_of: Vec<u32> = Vec::with_capacity(WINDOW_IDS);
    let mut symbols: Vec<Symbol> = Vec::with_capacity(WINDOW_IDS);
    let mut tuple_symbols: Vec<Vec<Symbol>> =
        vec![Vec::with_capacity(WINDOW_IDS); group_columns.len()];

    for_each_window(selection, dense_slots.is_some(), |window| {
        // 1. The cube index of every record of the window: dense group slots and counted
        // symbols in one accumulation per column, straight from the record columns.
        match &mut grouping {
            Grouping::Dense { strides, .. } => {
                cube_index.clear();
                cube_index.resize(window.len(), 0);
                let block = cube.block as u64;
                for (&c, &stride) in group_columns.iter().zip(strides.iter()) {
                    window.accumulate(
                        store.column(c).records(),
                        (stride * block) as u32,
                        &mut cube_index,
                    );
                }
                for (&c, &stride) in cube.columns.iter().zip(&cube.strides) {
                    window.accumulate(store.column(c).records(), stride as u32, &mut cube_index);
                }
                if let Window::Range {
                    mask: Some(mask), ..
                } = window
                {
                    let discarded = (discard * cube.block) as u32;
                    for (i, index) in cube_index.iter_mut().enumerate() {
                        let selected = (mask[i / 64] >> (i % 64)) & 1 == 1;
                        *index = if selected { *index } else { discarded };
                    }
                }
                if has_row_accumulators {
                    slot_of.clear();
                    slot_of.extend(cube_index.iter().map(|&index| index / cube.block as u32));
                }
            }
            Grouping::Hashed { slots, tuples } => {
                slot_of.clear();
                for (k, &c) in group_columns.iter().enumerate() {
                    window.gather(store.column(c).records(), &mut tuple_symbols[k]);
                }
                let mut tuple = Vec::with_capacity(group_columns.len());
                for i in 0..window.len() {
                    tuple.clear();
                    tuple.extend(tuple_symbols.iter().map(|t| t[i]));
                    let slot = match slots.get(tuple.as_slice()) {
                        Some(&slot) => slot,
                        None => {
                            let slot = tuples.len() as u32;
                            slots.insert(tuple.clone(), slot);
                            tuples.push(tuple.clone());
                            slot
                        }
                    };
                    slot_of.push(slot);
                }
                if tuples.len() * cube.block > cube.counts.len() {
                    cube.counts.resize(tuples.len() * cube.block, 0);
                    for source in sources.iter_mut() {
                        if let Source::Rows { accumulator, .. } = source {
                            accumulator.grow(tuples.len());
                        }
                    }
                }
                // Hashed grouping counts no column (block = 1): the index is the slot.
                cube_index.clear();
                cube_index.extend_from_slice(&slot_of);
            }
        }
        // 2. The count cube: one increment per record.
        for &index in &cube_index {
            cube.counts[index as usize] += 1;
        }
        // 3. Other columns, record by record.
        for source in sources.iter_mut() {
            let Source::Rows {
                column,
                accumulator,
            } = source
            else {
                continue;
            };
            let column = store.column(*column);
            if let RowAccumulator::SumValues { sums, counts } = accumulator {
                let values = column
                    .values_by_record()
                    .expect("SumValues is chosen for columns with values by record");
                window.sum_values(values, &slot_of, sums, counts);
                continue;
            }
            window.gather(column.records(), &mut symbols);
            let pairs = slot_of
                .iter()
                .map(|&g| g as usize)
                .zip(symbols.iter().copied());
            match accumulator {
                RowAccumulator::CountNonNull(counts) => {
                    pairs.for_each(|(g, s)| counts[g] += (s != NULL_SYMBOL) as u64);
                }
                RowAccumulator::SumInt {
                    deferred: Some(deferred),
                    sums,
                    counts,
                } => {
                    let keys = column.dictionary().fixed_keys().unwrap_or(&[]);
                    deferred.extend(
                        pairs
                            .filter(|&(_, s)| s != NULL_SYMBOL)
                            .map(|(g, s)| (s, g as u32)),
                    );
                    if deferred.len() >= DEFERRED_PAIRS_MAX {
                        sum_deferred(keys, deferred, sums, counts);
                    }
                }
                RowAccumulator::SumValues { .. } => unreachable!("summed above"),
                RowAccumulator::SumInt {
                    deferred: None,
                    sums,
                    counts,
                } => {
                    let keys = column.dictionary().fixed_keys().unwrap_or(&[]);
                    for (g, s) in pairs.filter(|&(_, s)| s != NULL_SYMBOL) {
                        sums[g] += keys[s as usize] as i128;
                        counts[g] += 1;
                    }
                }
                RowAccumulator::SumFloat {
                    values,
                    sums,
                    counts,
                } => {
                    for (g, s) in pairs.filter(|&(_, s)| s != NULL_SYMBOL) {
                        sums[g] += values[s as usize];
                        counts[g] += 1;
                    }
                }
                RowAccumulator::Extreme { largest, best } => {
                    let dictionary = column.dictionary();
                    for (g, s) in pairs.filter(|&(_, s)| s != NULL_SYMBOL) {
                        let current = best[g];
                        if current == NULL_SYMBOL
                            || (*largest && dictionary.key(s) > dictionary.key(current))
                            || (!*largest && dictionary.key(s) < dictionary.key(current))
                        {
                            best[g] = s;
                        }
                    }
                }
                RowAccumulator::Distinct(sets) => {
                    for (g, s) in pairs.filter(|&(_, s)| s != NULL_SYMBOL) {
                        sets[g].insert(s);
                    }
                }
            }
        }
    });

    for source in sources.iter_mut() {
        if let Source::Rows {
            column,
            accumulator:
                RowAccumulator::SumInt {
                    deferred: Some(deferred),
                    sums,
                    counts,
                },
        } = source
        {
            let keys = store
                .column(*column)
                .dictionary()
                .fixed_keys()
                .unwrap_or(&[]);
            sum_deferred(keys, deferred, sums, counts);
        }
    }

    // 4. From slots and symbols back to values.
    let slot_tuples: Vec<(usize, Vec<Symbol>)> = match &grouping {
        Grouping::Dense { strides, slots } => (0..*slots)
            .filter(|&slot| cube.rows(slot) > 0)
            .map(|slot| {
                let tuple = group_columns
                    .iter()
                    .zip(strides)
                    .map(|(&c, &stride)| {
                        ((slot as u64 / stride) % symbol_count(c) as u64) as Symbol
                    })
                    .collect();
                (slot, tuple)
            })
            .collect(),
        Grouping::Hashed { tuples, .. } => tuples.iter().cloned().enumerate().collect(),
    };
    let mut partial = Partial::default();
    for (slot, tuple) in slot_tuples {
        let key: Vec<KeyValue> = group_columns
            .iter()
            .zip(&tuple)
            .map(|(&c, &s)| key_value(store.column(c).dictionary(), s))
            .collect();
        let mut states = Vec::with_capacity(sources.len());
        for (aggregate, source) in query.aggregates.iter().zip(&sources) {
            states.push(match source {
                Source::CountStar => AggState::Count(cube.rows(slot)),
                Source::Counted { dimension } => {
                    let counts = cube.marginal(slot, *dimension);
                    from_counts(store, aggregate, cube.columns[*dimension], &counts)?
                }
                Source::Rows {
                    column,
                    accumulator,
                } => {
                    let dictionary = store.column(*column).dictionary();
                    match accumulator {
                        RowAccumulator::CountNonNull(counts) => AggState::Count(counts[slot]),
                        RowAccumulator::SumInt { sums, counts, .. }
                        | RowAccumulator::SumValues { sums, counts } => AggState::SumInt {
                            sum: sums[slot],
                            count: counts[slot],
                        },
                        RowAccumulator::SumFloat { sums, counts, .. } => AggState::SumFloat {
                            sum: sums[slot],
                            count: counts[slot],
                        },
                        RowAccumulator::Extreme { largest, best } => {
                            let value = (best[slot] != NULL_SYMBOL)
                                .then(|| key_value(dictionary, best[slot]));
                            if *largest {
                                AggState::Max(value)
                            } else {
                                AggState::Min(value)
                            }
                        }
                        RowAccumulator::Distinct(sets) => AggState::Distinct(
                            sets[slot]
                                .iter()
                                .map(|&s| key_value(dictionary, s))
                                .collect(),
                        ),
                    }
                }
            });
        }
        partial.groups.insert(key, states);
    }
    // With no group column and no record selected the partial stays empty; `Partial::finish`
    // answers SQL's one row of empty aggregates.
    Ok(partial)
}

/// COUNT(*), SUM and AVG without GROUP BY, every SUM over a column [summed by
/// record](sums_by_record): a plain walk of the selection per column, one register sum and
/// one array read per selected record (no windows, slots or counters). `None` for any other
/// query.
fn sums_without_groups(
    store: &ShardStore,
    query: &ShardQuery,
    selection: &Selection,
    group_columns: &[usize],
    aggregate_columns: &[Option<usize>],
) -> Option<Partial> {
    if !group_columns.is_empty() {
        return None;
    }
    let mut columns: Vec<Option<&[i64]>> = Vec::with_capacity(query.aggregates.len());
    for (aggregate, &column) in query.aggregates.iter().zip(aggregate_columns) {
        columns.push(match (aggregate, column) {
            (Aggregate::CountStar, None) => None,
            (Aggregate::Sum(_) | Aggregate::Avg(_), Some(c))
                if sums_by_record(store.column(c))
                    && store.schema().columns[c].data_type != DataType::Double =>
            {
                store.column(c).values_by_record()
            }
            _ => return None,
        });
    }
    let count = match selection {
        Selection::Ids(ids) => ids.len() as u64,
        Selection::Bitmap(bitmap) => bitmap.count(),
    };
    let mut partial = Partial::default();
    if count == 0 {
        // As the general path: no group, no record, no partial row.
        return Some(partial);
    }
    let states = columns
        .into_iter()
        .map(|values| match values {
            None => AggState::Count(count),
            Some(values) => AggState::SumInt {
                sum: sum_selected(values, selection),
                count,
            },
        })
        .collect();
    partial.groups.insert(Vec::new(), states);
    Some(partial)
}

/// The sum of `values[id]` over the ids of a selection.
fn sum_selected(values: &[i64], selection: &Selection) -> i128 {
    let mut sum = 0i128;
    match selection {
        Selection::Ids(ids) => ids
            .iter()
            .for_each(|&id| sum += values[id as usize] as i128),
        Selection::Bitmap(bitmap) => {
            for (word_index, &word) in bitmap.words().iter().enumerate() {
                let mut bits = word;
                let base = word_index * 64;
                while bits != 0 {
                    sum += values[base + bits.trailing_zeros() as usize] as i128;
                    bits &= bits - 1;
                }
            }
        }
    }
    sum
}

/// Whether a SUM over `column` reads its values by record: it keeps them, for every record,
/// and no live record is NULL (the values do not say which are).
fn sums_by_record(column: &ColumnShard) -> bool {
    column
        .values_by_record()
        .is_some_and(|values| values.len() == column.records().len())
        && column.rhizome(NULL_SYMBOL).cardinality() == 0
}

/// SUM over a column of more distinct values than this defers its look-ups (see
/// [`sum_deferred`]).
const DEFERRED_SUM_SYMBOLS_MIN: usize = 1 << 16;
/// Most (symbol, slot) pairs buffered before they are summed.
const DEFERRED_PAIRS_MAX: usize = 1 << 20;
/// Symbol regions of [`sum_deferred`]: 256 regions of a 1M-value dictionary are 32 KiB of keys.
const DEFERRED_REGION_BITS: u32 = 8;

/// Add the keys of buffered (symbol, slot) pairs to their slots, region of the dictionary by
/// region (a counting sort on the symbol's high bits), then empty the buffer.
fn sum_deferred(
    keys: &[i64],
    pairs: &mut Vec<(Symbol, u32)>,
    sums: &mut [i128],
    counts: &mut [u64],
) {
    let symbol_bits = u32::BITS - (keys.len() as u32).leading_zeros();
    let shift = symbol_bits.saturating_sub(DEFERRED_REGION_BITS);
    let regions = 1usize << DEFERRED_REGION_BITS;
    let mut starts = vec![0usize; regions + 1];
    for &(symbol, _) in pairs.iter() {
        starts[(symbol >> shift) as usize + 1] += 1;
    }
    for region in 0..regions {
        starts[region + 1] += starts[region];
    }
    let mut ordered = vec![(0 as Symbol, 0u32); pairs.len()];
    for &pair in pairs.iter() {
        let region = (pair.0 >> shift) as usize;
        ordered[starts[region]] = pair;
        starts[region] += 1;
    }
    for (symbol, slot) in ordered {
        sums[slot as usize] += keys[symbol as usize] as i128;
        counts[slot as usize] += 1;
    }
    pairs.clear();
}

/// An aggregate's state from the number of records per symbol of its column.
fn from_counts(
    store: &ShardStore,
    aggregate: &Aggregate,
    column: usize,
    counts: &[u64],
) -> Result<AggState> {
    let dictionary = store.column(column).dictionary();
    let present = || {
        (1..counts.len())
            .filter(|&s| counts[s] > 0)
            .map(|s| s as Symbol)
    };
    let non_null: u64 = counts[1..].iter().sum();
    Ok(match aggregate {
        Aggregate::Count(_) => AggState::Count(non_null),
        Aggregate::CountDistinct(_) => {
            AggState::Distinct(present().map(|s| key_value(dictionary, s)).collect())
        }
        Aggregate::Min(_) => AggState::Min(
            dictionary
                .extreme(present(), false)
                .map(|s| key_value(dictionary, s)),
        ),
        Aggregate::Max(_) => AggState::Max(
            dictionary
                .extreme(present(), true)
                .map(|s| key_value(dictionary, s)),
        ),
        Aggregate::Sum(_) | Aggregate::Avg(_) => match store.schema().columns[column].data_type {
            DataType::Double => {
                let sum = present()
                    .map(|s| match dictionary.value(s) {
                        Value::Double(v) => v * counts[s as usize] as f64,
                        _ => 0.0,
                    })
                    .sum();
                AggState::SumFloat {
                    sum,
                    count: non_null,
                }
            }
            _ => {
                let keys = dictionary
                    .fixed_keys()
                    .ok_or_else(|| Error::Plan(format!("{aggregate:?} needs a numeric column")))?;
                let sum = present()
                    .map(|s| keys[s as usize] as i128 * counts[s as usize] as i128)
                    .sum();
                AggState::SumInt {
                    sum,
                    count: non_null,
                }
            }
        },
        Aggregate::CountStar => unreachable!("COUNT(*) is not counted per column"),
    })
}
