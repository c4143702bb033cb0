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
//!   write, every write acknowledged before it started (a delete's inserts among them).

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
        }
    }
}

/// An answer in a form that sums: per key, (count, sum). Keys absent and keys with a zero
/// count are the same answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Answer(pub BTreeMap<String, (i64, i128)>);

impl Answer {
    fn add(&mut self, key: &str, count: i64, sum: i128) {
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

/// Everything the clients did, in the order they finished.
#[derive(Debug, Default)]
pub struct History {
    pub writes: Vec<WriteRecord>,
    pub queries: Vec<QueryRecord>,
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
}

/// Check every answered query against the writes a linearization point allows.
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
        let mut base = Answer::default();
        let mut definitely_in = BTreeSet::new();
        let mut uncertain = Vec::new();
        for (index, write) in history.writes.iter().enumerate() {
            if write.shard != query.shard || !effects.applied[index] || write.start > query.end {
                continue;
            }
            if write.acknowledged() && write.end < query.start {
                base = base.plus(&Answer::contribution(query.kind, &write.kind));
                definitely_in.insert(index);
            } else {
                uncertain.push(index);
            }
        }
        if uncertain.len() > UNCERTAIN_WRITES_MAX {
            stats.unchecked += 1;
            continue;
        }
        let contributions: Vec<Answer> = uncertain
            .iter()
            .map(|&i| Answer::contribution(query.kind, &history.writes[i].kind))
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
        let matched = (0u32..1 << uncertain.len()).any(|mask| {
            let chosen = |position: usize| mask & (1 << position) != 0;
            let allowed =
                (0..uncertain.len()).all(|p| !chosen(p) || needs[p].iter().all(|&n| chosen(n)));
            if !allowed {
                return false;
            }
            let mut answer = base.clone();
            for (p, contribution) in contributions.iter().enumerate() {
                if chosen(p) {
                    answer = answer.plus(contribution);
                }
            }
            answer == *observed
        });
        if matched {
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
                definitely_in.len(),
                base.0,
                uncertain.len()
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
}
