//! The per-shard planner and executor.
//!
//! A condition is first evaluated on the dictionaries: every leaf (`col < v`, `col LIKE p`,
//! …) becomes the set of symbols for which it is TRUE, once per distinct value. NOTs are
//! pushed down to the leaves (valid in SQL's three-valued logic), and leaves on one column
//! under the same AND/OR are merged, so what remains is an AND/OR tree of
//! "column has one of these symbols" leaves, each with an exact cardinality (the sum of its
//! Rhizomes' cardinalities).
//!
//! Execution then chooses, per AND, the cheapest way:
//! * count-only conjunctions of single-value leaves are intersected without materialising
//!   ids ([`kernels::intersect_count`]);
//! * otherwise the most selective child is materialised (a sorted id list when sparse, a
//!   bitmap when dense) and each other child is either probed on the record column (one
//!   table look-up per candidate) or materialised and intersected, whichever touches fewer
//!   entries;
//! * but when that child is dense and the AND's leaves on one-byte record columns are cheaper
//!   to check on every live record (64 records per step) than the child is to materialise,
//!   those leaves go first, over the live records, and the rest is probed or intersected on
//!   what they leave (TPC-H Q6: discount and quantity before a year of dates).
//!
//! Aggregation walks the selection in chunks, gathering the symbols of the group and
//! aggregate columns from the record columns (vectorised per chunk), and never goes back to
//! full values until the end.

use std::ops::Bound;

use crate::column::ColumnShard;
use crate::dictionary::{Dictionary, Symbol, NULL_SYMBOL};
use crate::query::{AggState, Aggregate, CompareOp, Condition, Partial, ShardQuery};
use crate::rhizome::{kernels, Bitmap, RecordId, RhizomeRef};
use crate::shard::ShardStore;
use crate::value::{DataType, LikePattern, Value};
use crate::{Error, Result};

/// A selection denser than 1 in this many records is held as a bitmap, sparser as a list.
const SPARSE_DENSITY_INVERSE: u64 = 32;
/// Most IN-list values per leaf; longer lists are a plan error, not an unbounded allocation.
pub const IN_LIST_VALUES_MAX: usize = 100_000;

/// A condition leaf, evaluated on the dictionary: the record is selected when its symbol in
/// `column` is one of `symbols`.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    pub column: usize,
    /// `mask[s]` is true when symbol `s` satisfies the leaf.
    pub mask: Vec<bool>,
    pub symbols: Vec<Symbol>,
    /// Records selected (sum of the Rhizome cardinalities of `symbols`).
    pub cardinality: u64,
}

#[derive(Debug, Clone)]
pub(crate) enum Expr {
    All,
    Nothing,
    Leaf(Leaf),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

impl Expr {
    fn estimate(&self, live: u64) -> u64 {
        match self {
            Expr::All => live,
            Expr::Nothing => 0,
            Expr::Leaf(leaf) => leaf.cardinality,
            Expr::And(children) => children
                .iter()
                .map(|c| c.estimate(live))
                .min()
                .unwrap_or(live),
            Expr::Or(children) => children
                .iter()
                .map(|c| c.estimate(live))
                .sum::<u64>()
                .min(live),
        }
    }
}

/// A set of live record ids.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Ascending, no duplicates.
    Ids(Vec<RecordId>),
    Bitmap(Bitmap),
}

impl Selection {
    fn count(&self) -> u64 {
        match self {
            Selection::Ids(ids) => ids.len() as u64,
            Selection::Bitmap(bitmap) => bitmap.count(),
        }
    }

    fn into_bitmap(self, universe: u64) -> Bitmap {
        match self {
            Selection::Bitmap(bitmap) => bitmap,
            Selection::Ids(ids) => {
                let mut bitmap = Bitmap::new(universe);
                ids.iter().for_each(|&id| bitmap.insert(id));
                bitmap
            }
        }
    }

    /// Ascending ids, at most `limit`.
    pub fn ids(&self, limit: usize) -> Vec<RecordId> {
        match self {
            Selection::Ids(ids) => ids.iter().take(limit).copied().collect(),
            Selection::Bitmap(bitmap) => bitmap.iter().take(limit).collect(),
        }
    }
}

/// Turn a condition into an [`Expr`] over this shard's dictionaries.
pub(crate) fn lower(store: &ShardStore, condition: &Condition) -> Result<Expr> {
    lower_negated(store, condition, false)
}

fn lower_negated(store: &ShardStore, condition: &Condition, negated: bool) -> Result<Expr> {
    let children = |conditions: &[Condition]| {
        conditions
            .iter()
            .map(|c| lower_negated(store, c, negated))
            .collect::<Result<Vec<_>>>()
    };
    let expr = match condition {
        Condition::True => {
            if negated {
                Expr::Nothing
            } else {
                Expr::All
            }
        }
        Condition::Not(inner) => lower_negated(store, inner, !negated)?,
        // BETWEEN is the AND of two comparisons (so a NULL bound makes only one side UNKNOWN).
        Condition::Between { column, low, high } => {
            let both = Condition::And(vec![
                Condition::compare(column, CompareOp::GtEq, low.clone()),
                Condition::compare(column, CompareOp::LtEq, high.clone()),
            ]);
            lower_negated(store, &both, negated)?
        }
        // De Morgan holds in Kleene's three-valued logic.
        Condition::And(conditions) if !negated => Expr::And(children(conditions)?),
        Condition::And(conditions) => Expr::Or(children(conditions)?),
        Condition::Or(conditions) if !negated => Expr::Or(children(conditions)?),
        Condition::Or(conditions) => Expr::And(children(conditions)?),
        leaf => lower_leaf(store, leaf, negated)?,
    };
    Ok(simplify(expr))
}

/// Flatten nested AND/OR, fold All/Nothing, and merge leaves on one column.
fn simplify(expr: Expr) -> Expr {
    match expr {
        Expr::And(children) => {
            let mut flat: Vec<Expr> = Vec::new();
            for child in children {
                match child {
                    Expr::And(grand) => flat.extend(grand),
                    Expr::All => {}
                    Expr::Nothing => return Expr::Nothing,
                    other => flat.push(other),
                }
            }
            let flat = merge_leaves(flat, |a, b| a && b);
            match flat.len() {
                0 => Expr::All,
                1 => flat.into_iter().next().expect("one child"),
                _ => Expr::And(flat),
            }
        }
        Expr::Or(children) => {
            let mut flat: Vec<Expr> = Vec::new();
            for child in children {
                match child {
                    Expr::Or(grand) => flat.extend(grand),
                    Expr::Nothing => {}
                    Expr::All => return Expr::All,
                    other => flat.push(other),
                }
            }
            let flat = merge_leaves(flat, |a, b| a || b);
            match flat.len() {
                0 => Expr::Nothing,
                1 => flat.into_iter().next().expect("one child"),
                _ => Expr::Or(flat),
            }
        }
        other => other,
    }
}

fn merge_leaves(children: Vec<Expr>, combine: impl Fn(bool, bool) -> bool) -> Vec<Expr> {
    let mut out: Vec<Expr> = Vec::new();
    for child in children {
        if let Expr::Leaf(leaf) = &child {
            let same_column = out.iter_mut().find_map(|e| match e {
                Expr::Leaf(l) if l.column == leaf.column => Some(l),
                _ => None,
            });
            if let Some(existing) = same_column {
                for (a, &b) in existing.mask.iter_mut().zip(&leaf.mask) {
                    *a = combine(*a, b);
                }
                existing.symbols = (0..existing.mask.len() as Symbol)
                    .filter(|&s| existing.mask[s as usize])
                    .collect();
                existing.cardinality = u64::MAX; // unknown until `refresh`
                continue;
            }
        }
        out.push(child);
    }
    out
}

/// The symbols of a column for which a comparison leaf is TRUE, and whether its non-matching
/// non-NULL values are FALSE (true) or UNKNOWN (false, e.g. `x IN (1, NULL)`).
struct LeafTruth {
    matching: Vec<Symbol>,
    false_is_known: bool,
    /// The leaf is TRUE for NULL values (IS NULL).
    matches_null: bool,
}

fn lower_leaf(store: &ShardStore, condition: &Condition, negated: bool) -> Result<Expr> {
    let column_name = match condition {
        Condition::Compare { column, .. }
        | Condition::In { column, .. }
        | Condition::Like { column, .. }
        | Condition::IsNull { column } => column,
        other => return Err(Error::Plan(format!("not a leaf condition: {other:?}"))),
    };
    let (index, def) = store.schema().column(column_name)?;
    let column = store.column(index);
    let dictionary = column.dictionary();
    let data_type = def.data_type;
    let truth = match condition {
        Condition::Compare { op, value, .. } => {
            compare_symbols(dictionary, data_type, column_name, *op, value)?
        }
        Condition::In { values, .. } => {
            if values.is_empty() {
                return Err(Error::Plan(format!("IN list on {column_name} is empty")));
            }
            if values.len() > IN_LIST_VALUES_MAX {
                return Err(Error::Plan(format!(
                    "IN list of {} values exceeds {IN_LIST_VALUES_MAX}",
                    values.len()
                )));
            }
            let mut matching = Vec::new();
            let mut has_null = false;
            for value in values {
                if value.is_null() {
                    has_null = true;
                    continue;
                }
                matching.extend(
                    compare_symbols(dictionary, data_type, column_name, CompareOp::Eq, value)?
                        .matching,
                );
            }
            matching.sort_unstable();
            matching.dedup();
            LeafTruth {
                matching,
                false_is_known: !has_null,
                matches_null: false,
            }
        }
        Condition::Like { pattern, .. } => {
            if !data_type.is_text() {
                return Err(Error::Plan(format!(
                    "LIKE needs a text column, {column_name} is {}",
                    data_type.sql_name()
                )));
            }
            LeafTruth {
                matching: dictionary.like(&LikePattern::new(pattern)),
                false_is_known: true,
                matches_null: false,
            }
        }
        Condition::IsNull { .. } => LeafTruth {
            matching: Vec::new(),
            false_is_known: true,
            matches_null: true,
        },
        _ => unreachable!("checked above"),
    };
    let symbol_count = dictionary.symbol_count();
    let mut mask = vec![false; symbol_count];
    if !negated {
        truth.matching.iter().for_each(|&s| mask[s as usize] = true);
        mask[NULL_SYMBOL as usize] = truth.matches_null;
    } else if truth.false_is_known {
        mask.iter_mut().skip(1).for_each(|m| *m = true);
        truth
            .matching
            .iter()
            .for_each(|&s| mask[s as usize] = false);
        mask[NULL_SYMBOL as usize] = false;
        if truth.matches_null {
            // NOT (x IS NULL): every non-NULL value.
            mask.iter_mut().skip(1).for_each(|m| *m = true);
        }
    }
    Ok(Expr::Leaf(make_leaf(column, index, mask)))
}

fn make_leaf(column: &ColumnShard, index: usize, mask: Vec<bool>) -> Leaf {
    let symbols: Vec<Symbol> = (0..mask.len() as Symbol)
        .filter(|&s| mask[s as usize])
        .collect();
    let cardinality = symbols
        .iter()
        .map(|&s| column.rhizome(s).cardinality())
        .sum();
    Leaf {
        column: index,
        mask,
        symbols,
        cardinality,
    }
}

/// Recompute leaf cardinalities after merges, and fold leaves that select nothing.
fn refresh(store: &ShardStore, expr: Expr) -> Expr {
    let recount = |leaf: Leaf| match make_leaf(store.column(leaf.column), leaf.column, leaf.mask) {
        leaf if leaf.cardinality == 0 => Expr::Nothing,
        leaf => Expr::Leaf(leaf),
    };
    match expr {
        Expr::Leaf(leaf) => recount(leaf),
        Expr::And(children) | Expr::Or(children) if children.is_empty() => {
            unreachable!("simplified away")
        }
        Expr::And(children) => refresh_children(store, Expr::And(children)),
        Expr::Or(children) => refresh_children(store, Expr::Or(children)),
        other => other,
    }
}

/// Refresh the children of an AND/OR, simplify, and recount leaves the simplification merged
/// again (an OR that folded to one leaf joins its sibling on the same column).
fn refresh_children(store: &ShardStore, expr: Expr) -> Expr {
    let recount_all = |children: Vec<Expr>| -> Vec<Expr> {
        children
            .into_iter()
            .map(|c| recount_merged(store, c))
            .collect()
    };
    let refreshed = match expr {
        Expr::And(children) => Expr::And(children.into_iter().map(|c| refresh(store, c)).collect()),
        Expr::Or(children) => Expr::Or(children.into_iter().map(|c| refresh(store, c)).collect()),
        other => return refresh(store, other),
    };
    match simplify(refreshed) {
        Expr::And(children) => simplify(Expr::And(recount_all(children))),
        Expr::Or(children) => simplify(Expr::Or(recount_all(children))),
        other => recount_merged(store, other),
    }
}

/// Recount a leaf whose cardinality a merge left unknown.
fn recount_merged(store: &ShardStore, expr: Expr) -> Expr {
    match expr {
        Expr::Leaf(leaf) if leaf.cardinality == u64::MAX => refresh(store, Expr::Leaf(leaf)),
        other => other,
    }
}

/// A literal as a bound on a column: the column-typed value at or just below it, and whether
/// it is exact (`0.055` on a `DECIMAL(15,2)` column is `0.05`, inexact). `None` for NULL.
fn bound_for(data_type: DataType, column: &str, literal: &Value) -> Result<(Option<Value>, bool)> {
    if literal.is_null() {
        return Ok((None, true));
    }
    // Text compares as text whatever its length: a literal longer than VARCHAR(n) is a valid
    // bound (and equal to no value), not an error.
    if let (DataType::Text { .. }, Value::Text(_)) = (data_type, literal) {
        return Ok((Some(literal.clone()), true));
    }
    let numeric_literal = match literal {
        Value::Int(v) => Some((*v as i128, 0u32)),
        Value::Decimal { units, scale } => Some((*units as i128, *scale as u32)),
        _ => None,
    };
    let column_scale = match data_type {
        DataType::BigInt | DataType::Int => Some(0u32),
        DataType::Decimal { scale, .. } => Some(scale as u32),
        _ => None,
    };
    if let (Some((units, literal_scale)), Some(column_scale)) = (numeric_literal, column_scale) {
        // key = floor(units * 10^column_scale / 10^literal_scale), clamped to i64.
        let scaled = if column_scale >= literal_scale {
            units
                .checked_mul(10i128.pow(column_scale - literal_scale))
                .map(|v| (v, true))
        } else {
            let divisor = 10i128.pow(literal_scale - column_scale);
            Some((units.div_euclid(divisor), units.rem_euclid(divisor) == 0))
        };
        let (key, exact) = match scaled {
            Some((v, exact)) if v >= i64::MIN as i128 && v <= i64::MAX as i128 => (v as i64, exact),
            Some((v, _)) if v < 0 => (i64::MIN, false),
            _ => (i64::MAX, false),
        };
        let exact = exact && !(data_type == DataType::Int && i32::try_from(key).is_err());
        return Ok((Some(data_type.from_key(key)), exact));
    }
    let value = data_type.coerce(literal).map_err(|e| {
        Error::Plan(format!(
            "cannot compare {column} ({}) with {literal:?}: {e}",
            data_type.sql_name()
        ))
    })?;
    Ok((Some(value), true))
}

fn compare_symbols(
    dictionary: &Dictionary,
    data_type: DataType,
    column: &str,
    op: CompareOp,
    literal: &Value,
) -> Result<LeafTruth> {
    let (value, exact) = bound_for(data_type, column, literal)?;
    let Some(value) = value else {
        // Comparing with NULL is UNKNOWN for every record.
        return Ok(LeafTruth {
            matching: Vec::new(),
            false_is_known: false,
            matches_null: false,
        });
    };
    let v = &value;
    let matching = match (op, exact) {
        (CompareOp::Eq, true) => dictionary
            .lookup(v)?
            .into_iter()
            .filter(|&s| s != NULL_SYMBOL)
            .collect(),
        (CompareOp::Eq, false) => Vec::new(),
        (CompareOp::NotEq, true) => {
            let mut all = dictionary.range(Bound::Unbounded, Bound::Unbounded)?;
            if let Some(s) = dictionary.lookup(v)? {
                all.retain(|&x| x != s);
            }
            all
        }
        (CompareOp::NotEq, false) => dictionary.range(Bound::Unbounded, Bound::Unbounded)?,
        (CompareOp::Lt, true) => dictionary.range(Bound::Unbounded, Bound::Excluded(v))?,
        (CompareOp::Lt | CompareOp::LtEq, _) => {
            dictionary.range(Bound::Unbounded, Bound::Included(v))?
        }
        (CompareOp::GtEq, true) => dictionary.range(Bound::Included(v), Bound::Unbounded)?,
        (CompareOp::Gt | CompareOp::GtEq, _) => {
            dictionary.range(Bound::Excluded(v), Bound::Unbounded)?
        }
    };
    Ok(LeafTruth {
        matching,
        false_is_known: true,
        matches_null: false,
    })
}

/// A readable plan of a shard query on this shard: the condition tree after lowering, with
/// every leaf's column, number of matching values (Rhizomes) and records, and the strategy
/// each AND will use.
pub(crate) fn explain(store: &ShardStore, query: &ShardQuery) -> Result<Vec<String>> {
    let expr = plan(store, &query.filter)?;
    let mut lines = Vec::new();
    describe(store, &expr, 0, &mut lines);
    let count_only =
        query.group_by.is_empty() && query.aggregates.iter().all(|a| *a == Aggregate::CountStar);
    if count_only && !query.aggregates.is_empty() {
        if let Expr::And(children) = &expr {
            if let Some(leaves) = and_of_leaves(children) {
                let name = |leaf: &Leaf| store.schema().columns[leaf.column].name.clone();
                lines.push(match count_way(store, &leaves) {
                    CountWay::Probe => format!(
                        "count: walk {} and probe the record columns of the others",
                        name(leaves[0])
                    ),
                    CountWay::Intersect => {
                        "count: intersect the Rhizomes a window at a time, no ids materialised"
                            .to_string()
                    }
                    CountWay::Select => "count: materialise the selection".to_string(),
                });
            }
        }
    }
    lines.push(format!(
        "aggregate: {} over ~{} records{}",
        if count_only {
            "count only"
        } else {
            "grouped on symbols"
        },
        expr.estimate(store.live_count()),
        if query.group_by.is_empty() {
            String::new()
        } else {
            format!(", group by {}", query.group_by.join(", "))
        }
    ));
    Ok(lines)
}

fn describe(store: &ShardStore, expr: &Expr, depth: usize, lines: &mut Vec<String>) {
    let indent = "  ".repeat(depth);
    let live = store.live_count();
    match expr {
        Expr::All => lines.push(format!("{indent}all {live} live records")),
        Expr::Nothing => lines.push(format!("{indent}nothing (no value matches)")),
        Expr::Leaf(leaf) => {
            let name = &store.schema().columns[leaf.column].name;
            let how =
                if leaf.cardinality.saturating_mul(SPARSE_DENSITY_INVERSE) < store.record_count() {
                    "walk Rhizomes"
                } else if leaf.cardinality > live / 2 {
                    "bitmap of the complement"
                } else {
                    "bitmap union"
                };
            lines.push(format!(
                "{indent}{name}: {} value(s), {} records ({how})",
                leaf.symbols.len(),
                leaf.cardinality
            ));
        }
        Expr::And(children) => {
            let mut order: Vec<&Expr> = children.iter().collect();
            order.sort_by_key(|c| c.estimate(live));
            let start = match scan_split(store, &order) {
                Some(_) => "one-byte leaves on every live record first",
                None => "smallest first",
            };
            lines.push(format!(
                "{indent}AND ({start}; probe record columns where cheaper), ~{} records",
                expr.estimate(live)
            ));
            order
                .into_iter()
                .for_each(|c| describe(store, c, depth + 1, lines));
        }
        Expr::Or(children) => {
            lines.push(format!("{indent}OR, ~{} records", expr.estimate(live)));
            children
                .iter()
                .for_each(|c| describe(store, c, depth + 1, lines));
        }
    }
}

/// Plan a condition: lower it and merge leaves.
pub(crate) fn plan(store: &ShardStore, condition: &Condition) -> Result<Expr> {
    Ok(refresh(store, lower(store, condition)?))
}

/// Materialise the records a plan selects.
pub(crate) fn select(store: &ShardStore, expr: &Expr) -> Selection {
    let universe = store.record_count();
    match expr {
        Expr::All => Selection::Bitmap(store.live_bitmap()),
        Expr::Nothing => Selection::Ids(Vec::new()),
        Expr::Leaf(leaf) => materialise_leaf(store, leaf),
        Expr::Or(children) => {
            let estimate = expr.estimate(store.live_count());
            if estimate.saturating_mul(SPARSE_DENSITY_INVERSE) < universe {
                let mut ids: Vec<RecordId> = Vec::new();
                for child in children {
                    match select(store, child) {
                        Selection::Ids(more) => ids.extend(more),
                        bitmap => ids.extend(bitmap.ids(usize::MAX)),
                    }
                }
                ids.sort_unstable();
                ids.dedup();
                Selection::Ids(ids)
            } else {
                let mut bitmap = Bitmap::new(universe);
                for child in children {
                    match select(store, child) {
                        Selection::Ids(ids) => ids.iter().for_each(|&id| bitmap.insert(id)),
                        Selection::Bitmap(other) => bitmap.or_with(&other),
                    }
                }
                Selection::Bitmap(bitmap)
            }
        }
        Expr::And(children) => {
            let live = store.live_count();
            let mut order: Vec<&Expr> = children.iter().collect();
            order.sort_by_key(|c| c.estimate(live));
            let (mut selection, rest) = match scan_first(store, &order) {
                Some((selection, rest)) => (selection, rest),
                None => (select(store, order[0]), order[1..].to_vec()),
            };
            // Leaves cheaper to probe than to materialise are checked together, in one pass
            // over the candidates, after everything else has narrowed them.
            let candidates = selection.count();
            let (probed, others): (Vec<&Expr>, Vec<&Expr>) = rest.iter().partition(
                |child| matches!(child, Expr::Leaf(leaf) if probe_is_cheaper(candidates, leaf)),
            );
            for child in others {
                selection = restrict(store, selection, child);
            }
            let leaves: Vec<&Leaf> = probed
                .iter()
                .map(|child| match child {
                    Expr::Leaf(leaf) => leaf,
                    _ => unreachable!("partitioned on leaves"),
                })
                .collect();
            restrict_probing(store, selection, &leaves)
        }
    }
}

/// Relative costs, measured on TPC-H lineitem SF1 (Q6 shape, `RHIZOME_BENCH_ONLY=P4`):
/// checking one candidate on a record column (a word-at-a-time pass over the candidates'
/// bitmap, one symbol look-up each) costs about as much as decoding one Rhizome entry into
/// a bitmap. Probing both other leaves of P4 on the date leaf's candidates took 9.1 ms
/// against 11–16 ms for materialising the discount leaf at a 3:1 cost ratio.
const PROBE_COST_PER_CANDIDATE: u64 = 1;
const MATERIALISE_COST_PER_ENTRY: u64 = 1;
/// Leaves of more symbols than this are always probed (a union of many Rhizomes is slow).
const MATERIALISED_SYMBOLS_MAX: usize = 64;

/// Checking one bitmap word (64 records) of a one-byte record column against a leaf, 64
/// records at a time (`RecordColumn::retain_words`), in the units above: on P4 the two
/// one-byte leaves over all 6M records took about 1 ms against 3.5 ms for the union of the
/// date leaf's 365 Rhizomes (910,000 entries).
const SCAN_COST_PER_WORD: u64 = 3;

/// Whether a leaf is on a one-byte record column (checked 64 records at a time).
fn scannable(store: &ShardStore, leaf: &Leaf) -> bool {
    store.column(leaf.column).records().width_bytes() == 1
}

/// For an AND whose children are `order` (sorted by estimate) and whose most selective child
/// would be materialised as a bitmap: its leaves on one-byte record columns and the other
/// children, when checking those leaves on every live record costs less than materialising
/// that child.
fn scan_split<'e>(
    store: &ShardStore,
    order: &[&'e Expr],
) -> Option<(Vec<&'e Expr>, Vec<&'e Expr>)> {
    let universe = store.record_count();
    let first_cost = match order.first()? {
        Expr::Leaf(leaf) if leaf.cardinality.saturating_mul(SPARSE_DENSITY_INVERSE) >= universe => {
            leaf.cardinality.saturating_mul(MATERIALISE_COST_PER_ENTRY)
        }
        _ => return None,
    };
    let (scanned, rest): (Vec<&Expr>, Vec<&Expr>) = order
        .iter()
        .partition(|child| matches!(child, Expr::Leaf(leaf) if scannable(store, leaf)));
    let words = universe.div_ceil(64);
    let scan_cost = words
        .saturating_mul(SCAN_COST_PER_WORD)
        .saturating_mul(scanned.len() as u64);
    (!scanned.is_empty() && scan_cost < first_cost).then_some((scanned, rest))
}

/// Start an AND from the live records, keeping those its one-byte leaves select, when
/// [`scan_split`] finds that cheaper; returns the selection and the children left to apply.
fn scan_first<'e>(store: &ShardStore, order: &[&'e Expr]) -> Option<(Selection, Vec<&'e Expr>)> {
    let (scanned, rest) = scan_split(store, order)?;
    let mut bitmap = store.live_bitmap();
    // Most selective first: later leaves skip the words emptied by earlier ones.
    for child in scanned {
        if let Expr::Leaf(leaf) = child {
            store
                .column(leaf.column)
                .records()
                .retain_words(bitmap.words_mut(), &leaf.mask);
        }
    }
    Some((Selection::Bitmap(bitmap), rest))
}

/// Whether checking `candidates` on the record column beats materialising the leaf.
fn probe_is_cheaper(candidates: u64, leaf: &Leaf) -> bool {
    leaf.symbols.len() > MATERIALISED_SYMBOLS_MAX
        || candidates.saturating_mul(PROBE_COST_PER_CANDIDATE)
            <= leaf.cardinality.saturating_mul(MATERIALISE_COST_PER_ENTRY)
}

/// Keep the candidates whose symbol satisfies every leaf: one record-column look-up per
/// candidate and leaf, the most selective leaf first so later ones see fewer candidates.
fn restrict_probing(store: &ShardStore, mut selection: Selection, leaves: &[&Leaf]) -> Selection {
    let mut leaves = leaves.to_vec();
    leaves.sort_by_key(|l| l.cardinality);
    for leaf in leaves {
        selection = probe(store, selection, leaf);
    }
    selection
}

/// Keep the candidates whose symbol in the leaf's record column the leaf selects.
fn probe(store: &ShardStore, selection: Selection, leaf: &Leaf) -> Selection {
    let records = store.column(leaf.column).records();
    match selection {
        Selection::Ids(mut ids) => {
            records.retain_ids(&mut ids, &leaf.mask);
            Selection::Ids(ids)
        }
        Selection::Bitmap(mut bitmap) => {
            records.retain_words(bitmap.words_mut(), &leaf.mask);
            Selection::Bitmap(bitmap)
        }
    }
}

fn materialise_leaf(store: &ShardStore, leaf: &Leaf) -> Selection {
    let column = store.column(leaf.column);
    let universe = store.record_count();
    if leaf.cardinality.saturating_mul(SPARSE_DENSITY_INVERSE) < universe {
        let rhizomes: Vec<RhizomeRef<'_>> =
            leaf.symbols.iter().map(|&s| column.rhizome(s)).collect();
        let ids = match rhizomes.as_slice() {
            [one] => one.iter().collect(),
            many => kernels::union(many),
        };
        return Selection::Ids(ids);
    }
    let live = store.live_count();
    if leaf.cardinality > live / 2 {
        // Cheaper from the other side: every live record minus the non-matching symbols.
        let mut bitmap = store.live_bitmap();
        let mut excluded = Bitmap::new(universe);
        let others: Vec<RhizomeRef<'_>> = (0..leaf.mask.len() as Symbol)
            .filter(|&s| !leaf.mask[s as usize])
            .map(|s| column.rhizome(s))
            .collect();
        kernels::union_into(&others, &mut excluded);
        bitmap.and_not_with(&excluded);
        return Selection::Bitmap(bitmap);
    }
    let mut bitmap = Bitmap::new(universe);
    let rhizomes: Vec<RhizomeRef<'_>> = leaf.symbols.iter().map(|&s| column.rhizome(s)).collect();
    kernels::union_into(&rhizomes, &mut bitmap);
    Selection::Bitmap(bitmap)
}

/// Keep the records of `selection` that `expr` also selects.
fn restrict(store: &ShardStore, selection: Selection, expr: &Expr) -> Selection {
    let candidates = selection.count();
    match expr {
        Expr::All => selection,
        Expr::Nothing => Selection::Ids(Vec::new()),
        // Probing touches one record-column entry per candidate; materialising touches every
        // entry of the leaf's Rhizomes. Pick the smaller.
        Expr::Leaf(leaf) if probe_is_cheaper(candidates, leaf) => probe(store, selection, leaf),
        Expr::Leaf(leaf) => {
            let column = store.column(leaf.column);
            match selection {
                Selection::Ids(ids) => {
                    let other = materialise_leaf(store, leaf).into_bitmap(store.record_count());
                    Selection::Ids(ids.into_iter().filter(|&id| other.contains(id)).collect())
                }
                Selection::Bitmap(mut bitmap) => {
                    let mut other = Bitmap::new(bitmap.universe());
                    let rhizomes: Vec<RhizomeRef<'_>> =
                        leaf.symbols.iter().map(|&s| column.rhizome(s)).collect();
                    kernels::union_into(&rhizomes, &mut other);
                    bitmap.and_with(&other);
                    Selection::Bitmap(bitmap)
                }
            }
        }
        other => {
            let other = select(store, other);
            match (selection, other) {
                (Selection::Ids(ids), other) => {
                    let other = other.into_bitmap(store.record_count());
                    Selection::Ids(ids.into_iter().filter(|&id| other.contains(id)).collect())
                }
                (Selection::Bitmap(bitmap), Selection::Ids(ids)) => {
                    Selection::Ids(ids.into_iter().filter(|&id| bitmap.contains(id)).collect())
                }
                (Selection::Bitmap(mut bitmap), Selection::Bitmap(other)) => {
                    bitmap.and_with(&other);
                    Selection::Bitmap(bitmap)
                }
            }
        }
    }
}

/// A conjunction of single-value leaves whose smallest selects at least 1 in this many
/// records is counted by walking the Rhizomes a window at a time (reading bitmap blocks in
/// place, streaming through memory) rather than by probing record columns (a random access
/// per candidate and column, mostly cache misses once the columns outgrow the cache). From
/// 1 in 256 on, the smallest holds ~16 ids per 4096-id window; below, probing touches less.
const WINDOW_WALK_DENSITY_INVERSE: u64 = 256;

/// How a count-only AND of leaves is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CountWay {
    /// Walk the smallest leaf's Rhizomes and probe the others' record columns.
    Probe,
    /// Intersect the single Rhizomes of all leaves ([`kernels::intersect_count`]).
    Intersect,
    /// Materialise the selection and count it.
    Select,
}

/// The way to count an AND of `leaves` (sorted by cardinality, smallest first).
fn count_way(store: &ShardStore, leaves: &[&Leaf]) -> CountWay {
    let records = store.record_count();
    let smallest = leaves[0].cardinality;
    let single = leaves.iter().all(|l| l.symbols.len() == 1);
    // The kernel walks windows while the next list is within its gallop ratio of the
    // smallest; past it, the smallest would drive seeks, which probing beats.
    let windows = single
        && leaves
            .get(1)
            .is_some_and(|next| next.cardinality / smallest.max(1) < kernels::GALLOP_SIZE_RATIO);
    if windows && smallest.saturating_mul(WINDOW_WALK_DENSITY_INVERSE) >= records {
        CountWay::Intersect
    } else if smallest.saturating_mul(SPARSE_DENSITY_INVERSE) < records {
        CountWay::Probe
    } else if single {
        CountWay::Intersect
    } else {
        CountWay::Select
    }
}

/// The leaves of an AND whose children are all leaves, sorted by cardinality.
fn and_of_leaves(children: &[Expr]) -> Option<Vec<&Leaf>> {
    let mut leaves = children
        .iter()
        .map(|c| match c {
            Expr::Leaf(leaf) => Some(leaf),
            _ => None,
        })
        .collect::<Option<Vec<&Leaf>>>()?;
    leaves.sort_by_key(|l| l.cardinality);
    Some(leaves)
}

/// Count the records a plan selects, without materialising ids where the shape allows.
pub(crate) fn count(store: &ShardStore, expr: &Expr) -> u64 {
    match expr {
        Expr::All => store.live_count(),
        Expr::Nothing => 0,
        Expr::Leaf(leaf) => leaf.cardinality,
        Expr::And(children) => match and_of_leaves(children) {
            Some(leaves) => match count_way(store, &leaves) {
                CountWay::Probe => count_probing(store, leaves[0], &leaves[1..]),
                CountWay::Intersect => {
                    let rhizomes: Vec<RhizomeRef<'_>> = leaves
                        .iter()
                        .map(|l| store.column(l.column).rhizome(l.symbols[0]))
                        .collect();
                    kernels::intersect_count(&rhizomes)
                }
                CountWay::Select => select(store, expr).count(),
            },
            None => select(store, expr).count(),
        },
        other => select(store, other).count(),
    }
}

/// |walk ∩ probes|: the Rhizomes of `walk`'s symbols are disjoint, so no merge is needed.
fn count_probing(store: &ShardStore, walk: &Leaf, probes: &[&Leaf]) -> u64 {
    let probes: Vec<(&crate::record_column::RecordColumn, &[bool])> = probes
        .iter()
        .map(|l| (store.column(l.column).records(), l.mask.as_slice()))
        .collect();
    let column = store.column(walk.column);
    let mut count = 0u64;
    for &symbol in &walk.symbols {
        column.rhizome(symbol).for_each(|id| {
            let id = id as usize;
            count += probes
                .iter()
                .all(|(records, mask)| mask[records.get(id) as usize]) as u64;
        });
    }
    count
}

/// Evaluate a shard query.
pub(crate) fn execute(store: &ShardStore, query: &ShardQuery) -> Result<Partial> {
    let expr = plan(store, &query.filter)?;
    let schema = store.schema();
    let group_columns = query
        .group_by
        .iter()
        .map(|name| schema.column(name).map(|(i, _)| i))
        .collect::<Result<Vec<_>>>()?;
    let mut aggregate_columns = Vec::with_capacity(query.aggregates.len());
    for aggregate in &query.aggregates {
        let column = aggregate
            .column()
            .map(|name| schema.column(name))
            .transpose()?;
        aggregate.result_type(column.map(|(_, def)| def.data_type))?;
        aggregate_columns.push(column.map(|(i, _)| i));
    }

    // Count-only without groups: never materialise ids for plain conjunctions.
    if group_columns.is_empty() && query.aggregates.iter().all(|a| *a == Aggregate::CountStar) {
        let n = count(store, &expr);
        let mut partial = Partial::default();
        partial.groups.insert(
            Vec::new(),
            query
                .aggregates
                .iter()
                .map(|_| AggState::Count(n))
                .collect(),
        );
        return Ok(partial);
    }

    let selection = select(store, &expr);

    // Count per value of one low-cardinality group column: one Rhizome ∩ selection each.
    if let ([group], Selection::Bitmap(bitmap)) = (group_columns.as_slice(), &selection) {
        let column = store.column(*group);
        let symbol_count = column.dictionary().symbol_count();
        if symbol_count <= 256 && query.aggregates.iter().all(|a| *a == Aggregate::CountStar) {
            let mut partial = Partial::default();
            for symbol in 0..symbol_count as Symbol {
                let n = column.rhizome(symbol).count_and(bitmap);
                if n > 0 {
                    let key = vec![crate::aggregate::key_value(column.dictionary(), symbol)];
                    partial.groups.insert(
                        key,
                        query
                            .aggregates
                            .iter()
                            .map(|_| AggState::Count(n))
                            .collect(),
                    );
                }
            }
            return Ok(partial);
        }
    }

    crate::aggregate::aggregate(store, query, &selection, &group_columns, &aggregate_columns)
}
