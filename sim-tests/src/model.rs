//! The workload's record of what clients asked and were told, and the checks of the cluster's
//! answers against it.
//!
//! Every write has a fixed effect on its shard, whatever else happens: an insert adds rows
//! with ids no other write uses, and a delete removes rows named by id, all inserted by
//! acknowledged writes before the delete started and named by no other delete. Effects
//! therefore commute, and every answer checked here (counts, sums, group-bys) is a sum of
//! per-write contributions. That keeps the checks exact and cheap:
//!
//! * the final state of a shard must be exactly the rows of the inserts that took effect,
//!   less the rows of the deletes that took effect, each row once and with the values written;
//!   an acknowledged write must have taken effect; an unacknowledged one either did, whole,
//!   or did not;
//! * a query answered during faults must equal the contributions of some set of writes
//!   that a linearization point between its start and end allows: every write acknowledged
//!   before it started, none started after it ended, of those in between (and of
//!   unacknowledged writes that took effect) any subset closed under real-time order — with a
//!   write, every write acknowledged before it started (a delete's inserts among them);
//! * a query through the coordinator asks every shard of a table, and each shard answers at
//!   its own instant: its answer must be a sum of one answer per shard, each one that a
//!   linearization point of that shard between the query's start and end allows (checked by
//!   enumerating each shard's possible answers and looking for the sum).
//!
//! Writes through the coordinator are recorded like direct ones, on the one shard they touch:
//! a coordinator INSERT names rows whose primary key routes them all to one shard, and a
//! coordinator DELETE names rows of one shard by id (the other shards have none of them).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use node::types::ShardKey;
use rhizome_core::query::{AggState, Aggregate, Condition, KeyValue, Partial, ShardQuery};
use rhizome_core::shard::{ColumnDef, Schema};
use rhizome_core::value::{DataType, Value};

/// Groups the `grp` column takes values from.
pub const GROUP_COUNT: usize = 4;
/// Uncertain writes beyond which a query's answer is not checked (2^n candidate sets).
pub const UNCERTAIN_WRITES_MAX: usize = 16;
/// Combinations of per-shard answers beyond which a coordinator query is not checked.
pub const SHARD_ANSWER_COMBINATIONS_MAX: usize = 1 << 20;

/// The schema of every simulated table: a unique id, a group, a value.
pub fn schema() -> Schema {
    let column = |name: &str, data_type| ColumnDef {
        name: name.to_string(),
        data_type,
        nullable: false,
    };
    Schema {
        columns: vec![
            column("id", DataType::BigInt),
            column("grp", DataType::Text { max_chars: None }),
            column("val", DataType::BigInt),
        ],
    }
}

pub fn group_name(group: u8) -> String {
    format!("g{group}")
}

/// One row as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub id: i64,
    pub group: u8,
    pub val: i64,
}

impl Row {
    pub fn values(&self) -> Vec<Value> {
        vec![
            Value::Int(self.id),
            Value::Text(group_name(self.group)),
            Value::Int(self.val),
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteKind {
    Insert(Vec<Row>),
    /// Deletes the rows with these ids (`id IN (…)`); `rows` are what they were inserted as.
    Delete(Vec<Row>),
}

/// How a write ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    Acknowledged,
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct WriteRecord {
    pub client: u64,
    pub shard: ShardKey,
    pub kind: WriteKind,
    pub start: Duration,
    pub end: Duration,
    pub outcome: WriteOutcome,
    /// Rows the node said the write inserted or deleted (acknowledged writes).
    pub reported_count: Option<u64>,
}

impl WriteRecord {
    pub fn acknowledged(&self) -> bool {
        self.outcome == WriteOutcome::Acknowledged
    }
}

/// What a query asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    /// The shard's (record count, live count).
    Count,
    /// COUNT(*), SUM(val) WHERE grp = group.
    SumOfGroup(u8),
    /// COUNT(*), SUM(val) GROUP BY grp.
    GroupBy,
    /// COUNT(*), SUM(val) of every row (asked through the coordinator).
    Total,
}

impl QueryKind {
    /// The shard query it runs (not for [`QueryKind::Count`], which has its own RPC).
    pub fn shard_query(&self) -> ShardQuery {
        let aggregates = vec![Aggregate::CountStar, Aggregate::Sum("val".into())];
        match self {
            QueryKind::Count => ShardQuery {
                filter: Condition::True,
                group_by: Vec::new(),
                aggregates: vec![Aggregate::CountStar],
            },
            QueryKind::SumOfGroup(group) => ShardQuery {
                filter: Condition::eq("grp", Value::Text(group_name(*group))),
                group_by: Vec::new(),
                aggregates,
            },
            QueryKind::GroupBy => ShardQuery {
                filter: Condition::True,
                group_by: vec!["grp".into()],
                aggregates,
            },
            QueryKind::Total => ShardQuery {
                filter: Condition::True,
                group_by: Vec::new(),
                aggregates,
            },
        }
    }

    /// The SQL statement asking the same of a whole table (not for [`QueryKind::Count`]).
    pub fn sql(&self, table: &str) -> String {
        match self {
            QueryKind::Count | QueryKind::Total => {
                format!("SELECT COUNT(*), SUM(val) FROM {table}")
            }
            QueryKind::SumOfGroup(group) => format!(
                "SELECT COUNT(*), SUM(val) FROM {table} WHERE grp = '{}'",
                group_name(*group)
            ),
            QueryKind::GroupBy => {
                format!("SELECT grp, COUNT(*), SUM(val) FROM {table} GROUP BY grp")
            }
        }
    }
}

/// An answer in a form that sums: per key, (count, sum). Keys absent and keys with a zero
/// count are the same answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Answer(pub BTreeMap<String, (i64, i128)>);

impl Answer {
    pub fn add(&mut self, key: &str, count: i64, sum: i128) {
        let entry = self.0.entry(key.to_string()).or_insert((0, 0));
        entry.0 += count;
        entry.1 += sum;
        if *entry == (0, 0) {
            self.0.remove(key);
        }
    }

    fn plus(&self, other: &Answer) -> Answer {
        let mut out = self.clone();
        for (key, (count, sum)) in &other.0 {
            out.add(key, *count, *sum);
        }
        out
    }

    fn minus(&self, other: &Answer) -> Answer {
        let mut out = self.clone();
        for (key, (count, sum)) in &other.0 {
            out.add(key, -*count, -*sum);
        }
        out
    }

    /// The answer of a coordinator's JSON result of [`QueryKind::sql`]: rows of
    /// `[count, sum]`, or `[grp, count, sum]` when grouped (a SUM of no rows is null).
    pub fn of_sql_rows(kind: QueryKind, rows: &[serde_json::Value]) -> Result<Answer, String> {
        let number = |value: &serde_json::Value| -> Result<i128, String> {
            match value {
                serde_json::Value::Null => Ok(0),
                serde_json::Value::Number(n) => n
                    .as_i64()
                    .map(i128::from)
                    .ok_or_else(|| format!("not an integer: {n}")),
                serde_json::Value::String(text) => text
                    .parse::<i128>()
                    .map_err(|e| format!("not an integer: {text:?}: {e}")),
                other => Err(format!("not a number: {other}")),
            }
        };
        let mut answer = Answer::default();
        for row in rows {
            let cells = row
                .as_array()
                .ok_or_else(|| format!("a row that is not an array: {row}"))?;
            let (key, count, sum) = match (kind, cells.as_slice()) {
                (QueryKind::GroupBy, [serde_json::Value::String(group), count, sum]) => {
                    (group.clone(), count, sum)
                }
                (QueryKind::Total | QueryKind::SumOfGroup(_), [count, sum]) => {
                    ("all".to_string(), count, sum)
                }
                _ => return Err(format!("unexpected row {row} for {kind:?}")),
            };
            let count = i64::try_from(number(count)?).map_err(|e| e.to_string())?;
            answer.add(&key, count, number(sum)?);
        }
        Ok(answer)
    }

    /// The answer of a count RPC.
    pub fn of_count(records: u64, live: u64) -> Answer {
        let mut answer = Answer::default();
        answer.add("records", records as i64, 0);
        answer.add("live", live as i64, 0);
        answer
    }

    /// The answer of a partial of `COUNT(*), SUM(val)` (grouped or not).
    pub fn of_partial(partial: &Partial) -> Result<Answer, String> {
        let mut answer = Answer::default();
        for (key, states) in &partial.groups {
            let name = match key.as_slice() {
                [] => "all".to_string(),
                [KeyValue::Text(group)] => group.clone(),
                other => return Err(format!("unexpected group key {other:?}")),
            };
            let (count, sum) = match states.as_slice() {
                [AggState::Count(count), AggState::SumInt { sum, .. }] => (*count as i64, *sum),
                other => return Err(format!("unexpected aggregate states {other:?}")),
            };
            answer.add(&name, count, sum);
        }
        Ok(answer)
    }

    /// What one write adds to the answer of `query`.
    fn contribution(query: QueryKind, write: &WriteKind) -> Answer {
        let (rows, sign) = match write {
            WriteKind::Insert(rows) => (rows, 1i64),
            WriteKind::Delete(rows) => (rows, -1i64),
        };
        let mut answer = Answer::default();
        for row in rows {
            match query {
                QueryKind::Count => {
                    if sign > 0 {
                        answer.add("records", 1, 0);
                    }
                    answer.add("live", sign, 0);
                }
                QueryKind::SumOfGroup(group) if row.group == group => {
                    answer.add("all", sign, i128::from(sign * row.val))
                }
                QueryKind::SumOfGroup(_) => {}
                QueryKind::GroupBy => {
                    answer.add(&group_name(row.group), sign, i128::from(sign * row.val))
                }
                QueryKind::Total => answer.add("all", sign, i128::from(sign * row.val)),
            }
        }
        answer
    }
}

#[derive(Debug, Clone)]
pub struct QueryRecord {
    pub client: u64,
    pub shard: ShardKey,
    pub kind: QueryKind,
    pub start: Duration,
    pub end: Duration,
    pub result: Result<Answer, String>,
}

/// A query of a whole table through the coordinator: every shard asked, each at its own
/// instant within `[start, end]`.
#[derive(Debug, Clone)]
pub struct TableQueryRecord {
    pub client: u64,
    /// Every shard of the table.
    pub shards: Vec<ShardKey>,
    pub kind: QueryKind,
    pub start: Duration,
    pub end: Duration,
    pub result: Result<Answer, String>,
}

/// Everything the clients did, in the order they finished.
#[derive(Debug, Default)]
pub struct History {
    pub writes: Vec<WriteRecord>,
    pub queries: Vec<QueryRecord>,
    pub table_queries: Vec<TableQueryRecord>,
}

/// A shard's rows as read back: id → (group, val, how many times the id is present).
pub type ShardContents = BTreeMap<i64, (String, i64, u64)>;

/// Read a `GROUP BY id, grp` partial of `COUNT(*), SUM(val)` back into rows.
pub fn contents_of_partial(partial: &Partial) -> Result<ShardContents, String> {
    let mut rows = ShardContents::new();
    for (key, states) in &partial.groups {
        let (id, group) = match key.as_slice() {
            [KeyValue::Fixed(id), KeyValue::Text(group)] => (*id, group.clone()),
            other => return Err(format!("unexpected group key {other:?}")),
        };
        let (count, sum) = match states.as_slice() {
            [AggState::Count(count), AggState::SumInt { sum, .. }] => (*count, *sum),
            other => return Err(format!("unexpected aggregate states {other:?}")),
        };
        if count == 0 {
            continue;
        }
        let val = i64::try_from(sum / i128::from(count)).map_err(|e| e.to_string())?;
        let entry = rows.entry(id).or_insert((group, val, 0));
        entry.2 += count;
    }
    Ok(rows)
}

/// The query that reads a shard's whole contents for [`contents_of_partial`].
pub fn contents_query() -> ShardQuery {
    ShardQuery {
        filter: Condition::True,
        group_by: vec!["id".into(), "grp".into()],
        aggregates: vec![Aggregate::CountStar, Aggregate::Sum("val".into())],
    }
}

/// What the final check learnt: which writes took effect.
#[derive(Debug, Default)]
pub struct Effects {
    /// Per write (index into `History::writes`): whether it took effect.
    pub applied: Vec<bool>,
}

/// Check every shard's final contents against the history; returns which writes took effect.
pub fn check_final_contents(
    history: &History,
    contents: &BTreeMap<ShardKey, ShardContents>,
) -> Result<Effects, Vec<String>> {
    let mut problems = Vec::new();
    let mut applied = vec![false; history.writes.len()];
    // Every id ever written, to the insert that wrote it.
    let mut writer: BTreeMap<(ShardKey, i64), (usize, Row)> = BTreeMap::new();
    for (index, write) in history.writes.iter().enumerate() {
        if let WriteKind::Insert(rows) = &write.kind {
            for row in rows {
                writer.insert((write.shard.clone(), row.id), (index, *row));
            }
        }
    }
    let empty = ShardContents::new();
    let present = |shard: &ShardKey, id: i64| contents.get(shard).unwrap_or(&empty).get(&id);
    // Ids removed by deletes that took effect.
    let mut deleted: BTreeSet<(ShardKey, i64)> = BTreeSet::new();
    for write in &history.writes {
        let rows = match &write.kind {
            WriteKind::Insert(rows) | WriteKind::Delete(rows) => rows,
        };
        // Every row a delete names was live when it applied (inserted by an acknowledged write
        // before the delete started, named by no other delete), so it reports all of them.
        if let Some(count) = write.reported_count.filter(|&c| c != rows.len() as u64) {
            problems.push(format!(
                "an acknowledged {} by client {} on {} of {} rows reported {count}",
                match write.kind {
                    WriteKind::Insert(_) => "insert",
                    WriteKind::Delete(_) => "delete",
                },
                write.client,
                write.shard,
                rows.len()
            ));
        }
    }
    for (index, write) in history.writes.iter().enumerate() {
        let WriteKind::Delete(rows) = &write.kind else {
            continue;
        };
        let gone = rows
            .iter()
            .filter(|r| present(&write.shard, r.id).is_none())
            .count();
        if gone == rows.len() {
            applied[index] = true;
            deleted.extend(rows.iter().map(|r| (write.shard.clone(), r.id)));
        } else if write.acknowledged() {
            problems.push(format!(
                "acknowledged delete by client {} on {} ({} ids) left {} rows",
                write.client,
                write.shard,
                rows.len(),
                rows.len() - gone
            ));
        } else if gone != 0 {
            problems.push(format!(
                "unacknowledged delete by client {} on {} took effect in part: {gone} of {} ids gone",
                write.client,
                write.shard,
                rows.len()
            ));
        }
    }
    for (index, write) in history.writes.iter().enumerate() {
        let WriteKind::Insert(rows) = &write.kind else {
            continue;
        };
        let mut found = 0;
        for row in rows {
            match present(&write.shard, row.id) {
                Some((group, val, copies)) => {
                    found += 1;
                    if *copies != 1 {
                        problems.push(format!(
                            "id {} on {} is present {copies} times",
                            row.id, write.shard
                        ));
                    }
                    if *group != group_name(row.group) || *val != row.val {
                        problems.push(format!(
                            "id {} on {} reads ({group}, {val}), written as ({}, {})",
                            row.id,
                            write.shard,
                            group_name(row.group),
                            row.val
                        ));
                    }
                }
                None if deleted.contains(&(write.shard.clone(), row.id)) => found += 1,
                None => {}
            }
        }
        if found == rows.len() {
            applied[index] = true;
        } else if write.acknowledged() {
            problems.push(format!(
                "acknowledged insert by client {} on {} lost {} of {} rows",
                write.client,
                write.shard,
                rows.len() - found,
                rows.len()
            ));
        } else if found != 0 {
            problems.push(format!(
                "unacknowledged insert by client {} on {} is present in part: {found} of {} rows",
                write.client,
                write.shard,
                rows.len()
            ));
        }
    }
    for (shard, rows) in contents {
        for id in rows.keys() {
            if !writer.contains_key(&(shard.clone(), *id)) {
                problems.push(format!("id {id} on {shard} was never written"));
            }
        }
    }
    if problems.is_empty() {
        Ok(Effects { applied })
    } else {
        Err(problems)
    }
}

/// How the queries fared.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QueryStats {
    pub checked: usize,
    pub errors: usize,
    /// Too many writes in flight to enumerate.
    pub unchecked: usize,
    /// Of the checked ones, queries of whole tables through the coordinator.
    pub through_coordinator: usize,
}

/// What a query's interval leaves open on one shard: the answer of the writes certainly in
/// it, and the contributions of the writes that may or may not be.
struct Window {
    base: Answer,
    definitely_in: usize,
    contributions: Vec<Answer>,
    /// Per uncertain write, the uncertain writes a set holding it must hold too.
    needs: Vec<Vec<usize>>,
}

impl Window {
    /// `None` when more than [`UNCERTAIN_WRITES_MAX`] writes are uncertain.
    fn of(
        history: &History,
        effects: &Effects,
        shard: &ShardKey,
        kind: QueryKind,
        start: Duration,
        end: Duration,
    ) -> Option<Window> {
        let mut base = Answer::default();
        let mut definitely_in = 0;
        let mut uncertain = Vec::new();
        for (index, write) in history.writes.iter().enumerate() {
            if write.shard != *shard || !effects.applied[index] || write.start > end {
                continue;
            }
            if write.acknowledged() && write.end < start {
                base = base.plus(&Answer::contribution(kind, &write.kind));
                definitely_in += 1;
            } else {
                uncertain.push(index);
            }
        }
        if uncertain.len() > UNCERTAIN_WRITES_MAX {
            return None;
        }
        let contributions: Vec<Answer> = uncertain
            .iter()
            .map(|&i| Answer::contribution(kind, &history.writes[i].kind))
            .collect();
        // Real-time order: a write acknowledged before another started took effect before it,
        // so a set holding the later one holds the earlier one. (A delete's inserts are among
        // these: they were acknowledged before the delete started.)
        let needs: Vec<Vec<usize>> = uncertain
            .iter()
            .map(|&later| {
                let start = history.writes[later].start;
                uncertain
                    .iter()
                    .enumerate()
                    .filter(|&(_, &earlier)| {
                        let earlier = &history.writes[earlier];
                        earlier.acknowledged() && earlier.end < start
                    })
                    .map(|(position, _)| position)
                    .collect()
            })
            .collect();
        Some(Window {
            base,
            definitely_in,
            contributions,
            needs,
        })
    }

    /// The answer of the uncertain writes in `mask` (with the certain ones), if real-time
    /// order allows that set.
    fn answer(&self, mask: u32) -> Option<Answer> {
        let chosen = |position: usize| mask & (1 << position) != 0;
        let allowed = (0..self.contributions.len())
            .all(|p| !chosen(p) || self.needs[p].iter().all(|&n| chosen(n)));
        if !allowed {
            return None;
        }
        let mut answer = self.base.clone();
        for (p, contribution) in self.contributions.iter().enumerate() {
            if chosen(p) {
                answer = answer.plus(contribution);
            }
        }
        Some(answer)
    }

    fn masks(&self) -> std::ops::Range<u32> {
        0u32..1 << self.contributions.len()
    }

    fn explains(&self, observed: &Answer) -> bool {
        self.masks()
            .any(|mask| self.answer(mask).is_some_and(|a| a == *observed))
    }

    /// Every answer the window allows.
    fn answers(&self) -> BTreeSet<Answer> {
        self.masks().filter_map(|mask| self.answer(mask)).collect()
    }
}

/// Whether `target` is a sum of one answer from each set.
fn sum_of_one_each(sets: &[BTreeSet<Answer>], target: &Answer) -> bool {
    match sets {
        [] => *target == Answer::default(),
        [last] => last.contains(target),
        [first, rest @ ..] => first
            .iter()
            .any(|answer| sum_of_one_each(rest, &target.minus(answer))),
    }
}

/// Check every answered query against the writes a linearization point allows: a direct
/// query against one point on its shard, a coordinator's against one point per shard.
pub fn check_queries(history: &History, effects: &Effects) -> Result<QueryStats, Vec<String>> {
    let mut stats = QueryStats::default();
    let mut problems = Vec::new();
    for query in &history.queries {
        let observed = match &query.result {
            Ok(answer) => answer,
            Err(_) => {
                stats.errors += 1;
                continue;
            }
        };
        let Some(window) = Window::of(
            history,
            effects,
            &query.shard,
            query.kind,
            query.start,
            query.end,
        ) else {
            stats.unchecked += 1;
            continue;
        };
        if window.explains(observed) {
            stats.checked += 1;
        } else {
            problems.push(format!(
                "client {} query {:?} on {} during [{:?}, {:?}] answered {:?}; with the {} writes \
                 acknowledged before it the answer is {:?}, and no choice of the {} writes in \
                 flight explains it",
                query.client,
                query.kind,
                query.shard,
                query.start,
                query.end,
                observed.0,
                window.definitely_in,
                window.base.0,
                window.contributions.len()
            ));
        }
    }
    for query in &history.table_queries {
        let observed = match &query.result {
            Ok(answer) => answer,
            Err(_) => {
                stats.errors += 1;
                continue;
            }
        };
        let windows: Option<Vec<Window>> = query
            .shards
            .iter()
            .map(|shard| Window::of(history, effects, shard, query.kind, query.start, query.end))
            .collect();
        let Some(windows) = windows else {
            stats.unchecked += 1;
            continue;
        };
        let sets: Vec<BTreeSet<Answer>> = windows.iter().map(Window::answers).collect();
        // The sum is looked up in the last shard's set: every combination of the others is
        // tried.
        let combinations = sets[..sets.len().saturating_sub(1)]
            .iter()
            .try_fold(1usize, |n, set| n.checked_mul(set.len()));
        if combinations.is_none_or(|n| n > SHARD_ANSWER_COMBINATIONS_MAX) {
            stats.unchecked += 1;
            continue;
        }
        if sum_of_one_each(&sets, observed) {
            stats.checked += 1;
            stats.through_coordinator += 1;
        } else {
            let bases: Vec<_> = query
                .shards
                .iter()
                .zip(&windows)
                .map(|(shard, w)| {
                    format!(
                        "{shard}: {:?} + {} in flight",
                        w.base.0,
                        w.contributions.len()
                    )
                })
                .collect();
            problems.push(format!(
                "client {} coordinator query {:?} of {} shards during [{:?}, {:?}] answered {:?}; \
                 no sum of one answer per shard that its interval allows explains it (per shard, \
                 the acknowledged writes' answer and the writes in flight: {})",
                query.client,
                query.kind,
                query.shards.len(),
                query.start,
                query.end,
                observed.0,
                bases.join("; ")
            ));
        }
    }
    if problems.is_empty() {
        Ok(stats)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(
        client: u64,
        rows: &[(i64, u8, i64)],
        start: u64,
        end: u64,
        ack: bool,
    ) -> WriteRecord {
        WriteRecord {
            client,
            shard: ShardKey::new("t", 0),
            kind: WriteKind::Insert(
                rows.iter()
                    .map(|&(id, group, val)| Row { id, group, val })
                    .collect(),
            ),
            start: Duration::from_millis(start),
            end: Duration::from_millis(end),
            outcome: if ack {
                WriteOutcome::Acknowledged
            } else {
                WriteOutcome::Failed("timeout".into())
            },
            reported_count: ack.then_some(rows.len() as u64),
        }
    }

    fn contents(rows: &[(i64, u8, i64, u64)]) -> BTreeMap<ShardKey, ShardContents> {
        let mut shard = ShardContents::new();
        for &(id, group, val, copies) in rows {
            shard.insert(id, (group_name(group), val, copies));
        }
        BTreeMap::from([(ShardKey::new("t", 0), shard)])
    }

    #[test]
    fn final_check_finds_lost_duplicated_partial_and_invented_rows() {
        // Proves: the final check accepts a state that matches the history (an unacknowledged
        // insert absent, as allowed) and names each kind of wrong state.
        let history = History {
            writes: vec![
                insert(1, &[(1, 0, 10), (2, 1, 20)], 0, 5, true),
                insert(1, &[(3, 0, 30)], 6, 9, false),
            ],
            queries: Vec::new(),
            table_queries: Vec::new(),
        };
        let good = check_final_contents(&history, &contents(&[(1, 0, 10, 1), (2, 1, 20, 1)]))
            .expect("a matching state passes");
        assert_eq!(good.applied, vec![true, false]);
        let lost = check_final_contents(&history, &contents(&[(1, 0, 10, 1)]));
        assert!(lost.expect_err("a wrong state fails")[0].contains("lost 1 of 2"));
        let twice = check_final_contents(&history, &contents(&[(1, 0, 10, 2), (2, 1, 20, 1)]));
        assert!(twice.expect_err("a wrong state fails")[0].contains("present 2 times"));
        let invented = check_final_contents(
            &history,
            &contents(&[(1, 0, 10, 1), (2, 1, 20, 1), (99, 0, 1, 1)]),
        );
        assert!(invented.expect_err("a wrong state fails")[0].contains("never written"));
        let wrong_value =
            check_final_contents(&history, &contents(&[(1, 0, 11, 1), (2, 1, 20, 1)]));
        assert!(wrong_value.expect_err("a wrong state fails")[0].contains("written as"));
    }

    #[test]
    fn query_check_accepts_any_linearization_point_and_rejects_other_numbers() {
        // Proves: a query overlapping a write may see it or not; one after its acknowledgement
        // must see it; a number no set of writes gives is reported.
        let history = History {
            writes: vec![
                insert(1, &[(1, 0, 10)], 0, 5, true),
                insert(2, &[(2, 0, 7)], 10, 20, true),
            ],
            queries: Vec::new(),
            table_queries: Vec::new(),
        };
        let effects = Effects {
            applied: vec![true, true],
        };
        let query = |start, end, count, sum| QueryRecord {
            client: 3,
            shard: ShardKey::new("t", 0),
            kind: QueryKind::SumOfGroup(0),
            start: Duration::from_millis(start),
            end: Duration::from_millis(end),
            result: Ok({
                let mut a = Answer::default();
                a.add("all", count, sum);
                a
            }),
        };
        let check = |queries| {
            check_queries(
                &History {
                    writes: history.writes.clone(),
                    queries,
                    table_queries: Vec::new(),
                },
                &effects,
            )
        };
        assert_eq!(
            check(vec![query(12, 15, 1, 10), query(12, 15, 2, 17)])
                .expect("both answers are allowed")
                .checked,
            2
        );
        assert!(
            check(vec![query(25, 30, 1, 10)]).is_err(),
            "missed an acknowledged write"
        );
        assert!(
            check(vec![query(12, 15, 2, 18)]).is_err(),
            "a sum nobody wrote"
        );
        assert!(
            check(vec![query(6, 8, 2, 17)]).is_err(),
            "saw a write before it started"
        );
    }

    #[test]
    fn query_check_holds_writes_to_real_time_order() {
        // Proves: a query overlapping two writes, the second started after the first was
        // acknowledged, may see neither, the first, or both — not the second alone.
        let writes = vec![
            insert(1, &[(1, 0, 10)], 10, 20, true),
            insert(2, &[(2, 0, 7)], 30, 40, true),
        ];
        let check = |count, sum| {
            let mut answer = Answer::default();
            answer.add("all", count, sum);
            check_queries(
                &History {
                    writes: writes.clone(),
                    queries: vec![QueryRecord {
                        client: 3,
                        shard: ShardKey::new("t", 0),
                        kind: QueryKind::SumOfGroup(0),
                        start: Duration::from_millis(5),
                        end: Duration::from_millis(50),
                        result: Ok(answer),
                    }],
                    table_queries: Vec::new(),
                },
                &Effects {
                    applied: vec![true, true],
                },
            )
        };
        for (count, sum) in [(0, 0), (1, 10), (2, 17)] {
            assert!(check(count, sum).is_ok(), "({count}, {sum}) is allowed");
        }
        assert!(check(1, 7).is_err(), "the later write without the earlier");
    }

    #[test]
    fn coordinator_query_check_allows_one_point_per_shard_and_nothing_else() {
        // Proves: a query of a whole table may see one shard after a write and another shard
        // before a later one (each shard read at its own instant), but its answer must be a sum
        // of answers each shard's interval allows: a missed acknowledged write, a number no
        // write gives, or a write seen before it started are reported.
        let on = |shard: u32, mut write: WriteRecord| {
            write.shard = ShardKey::new("t", shard);
            write
        };
        let writes = vec![
            on(0, insert(1, &[(1, 0, 10)], 0, 5, true)),
            on(1, insert(1, &[(2, 1, 20)], 0, 5, true)),
            // In flight during the query, one per shard.
            on(0, insert(2, &[(3, 0, 7)], 12, 30, true)),
            on(1, insert(2, &[(4, 1, 3)], 12, 30, false)),
        ];
        let check = |start, end, count, sum| {
            let mut answer = Answer::default();
            answer.add("all", count, sum);
            check_queries(
                &History {
                    writes: writes.clone(),
                    queries: Vec::new(),
                    table_queries: vec![TableQueryRecord {
                        client: 3,
                        shards: vec![ShardKey::new("t", 0), ShardKey::new("t", 1)],
                        kind: QueryKind::Total,
                        start: Duration::from_millis(start),
                        end: Duration::from_millis(end),
                        result: Ok(answer),
                    }],
                },
                &Effects {
                    applied: vec![true; 4],
                },
            )
        };
        for (count, sum) in [(2, 30), (3, 37), (3, 33), (4, 40)] {
            let stats = check(10, 20, count, sum).expect("allowed");
            assert_eq!((stats.checked, stats.through_coordinator), (1, 1));
        }
        assert!(
            check(10, 20, 1, 10).is_err(),
            "missed an acknowledged write"
        );
        assert!(check(10, 20, 2, 31).is_err(), "a sum nobody wrote");
        assert!(check(6, 8, 3, 37).is_err(), "saw a write before it started");
        assert!(
            check(40, 50, 3, 33).is_err(),
            "missed a write acknowledged before it"
        );
    }

    #[test]
    fn coordinator_answers_are_read_from_json_rows() {
        // Proves: the coordinator's JSON rows become the same answer the model computes, a
        // SUM of no rows (null) counts as zero, and a malformed row is an error.
        let rows = |json: &str| -> Vec<serde_json::Value> {
            serde_json::from_str(json).expect("test JSON parses")
        };
        let mut expected = Answer::default();
        expected.add("g0", 2, -5);
        expected.add("g3", 1, 7);
        assert_eq!(
            Answer::of_sql_rows(QueryKind::GroupBy, &rows(r#"[["g0",2,-5],["g3",1,"7"]]"#)),
            Ok(expected)
        );
        assert_eq!(
            Answer::of_sql_rows(QueryKind::Total, &rows("[[0,null]]")),
            Ok(Answer::default())
        );
        assert!(Answer::of_sql_rows(QueryKind::Total, &rows("[[1]]")).is_err());
    }
}
