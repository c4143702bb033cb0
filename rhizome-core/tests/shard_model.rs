//! Shard queries, deletes and reads agree with a naive table scan under SQL's three-valued
//! logic, on random tables with NULLs, random condition trees and random aggregates.

use std::cmp::Ordering;

use proptest::prelude::*;
use rhizome_core::query::{compare_values, Aggregate, CompareOp, Condition, ResultSet, ShardQuery};
use rhizome_core::shard::{ColumnDef, Schema, ShardStore, StoreOptions};
use rhizome_core::value::{DataType, Value};

/// The test table: one column of each kind, all nullable, over small domains so that
/// conditions match often.
fn schema() -> Schema {
    let columns = [
        ("i", DataType::BigInt),
        ("t", DataType::Text { max_chars: Some(8) }),
        (
            "d",
            DataType::Decimal {
                precision: 7,
                scale: 2,
            },
        ),
        ("day", DataType::Date),
        ("f", DataType::Double),
        ("b", DataType::Boolean),
    ];
    Schema::new(
        columns
            .iter()
            .map(|(name, data_type)| ColumnDef {
                name: name.to_string(),
                data_type: *data_type,
                nullable: true,
            })
            .collect(),
    )
    .expect("valid schema")
}

fn value_of(column: usize) -> BoxedStrategy<Value> {
    let non_null: BoxedStrategy<Value> = match column {
        0 => (-3i64..6).prop_map(Value::Int).boxed(),
        1 => prop::sample::select(vec!["", "a", "ab", "abc", "b", "ba", "zz", "ä_%"])
            .prop_map(|s| Value::Text(s.to_string()))
            .boxed(),
        2 => (-300i64..300)
            .prop_map(|u| Value::Decimal {
                units: u - u % 25,
                scale: 2,
            })
            .boxed(),
        3 => (9000i32..9006).prop_map(Value::Date).boxed(),
        4 => prop::sample::select(vec![-2.5f64, -0.0, 0.0, 0.5, 1.0, 3.75, 1e9])
            .prop_map(Value::Double)
            .boxed(),
        _ => any::<bool>().prop_map(Value::Boolean).boxed(),
    };
    prop_oneof![1 => Just(Value::Null), 5 => non_null].boxed()
}

fn row() -> impl Strategy<Value = Vec<Value>> {
    (0..6).map(value_of).collect::<Vec<_>>()
}

const NAMES: [&str; 6] = ["i", "t", "d", "day", "f", "b"];

fn leaf() -> impl Strategy<Value = Condition> {
    (0usize..6, 0usize..7).prop_flat_map(|(c, kind)| {
        let name = NAMES[c].to_string();
        let literal = value_of(c);
        match kind {
            0..=2 => (
                prop::sample::select(vec![
                    CompareOp::Eq,
                    CompareOp::NotEq,
                    CompareOp::Lt,
                    CompareOp::LtEq,
                    CompareOp::Gt,
                    CompareOp::GtEq,
                ]),
                literal,
            )
                .prop_map(move |(op, value)| Condition::Compare {
                    column: name.clone(),
                    op,
                    value,
                })
                .boxed(),
            3 => (literal.clone(), literal)
                .prop_map(move |(low, high)| Condition::Between {
                    column: name.clone(),
                    low,
                    high,
                })
                .boxed(),
            4 => prop::collection::vec(literal, 1..4)
                .prop_map(move |values| Condition::In {
                    column: name.clone(),
                    values,
                })
                .boxed(),
            5 if c == 1 => prop::sample::select(vec!["a%", "%b%", "_", "%", "a_", "ä\\_%", ""])
                .prop_map(move |p| Condition::Like {
                    column: name.clone(),
                    pattern: p.to_string(),
                })
                .boxed(),
            _ => Just(Condition::IsNull { column: name }).boxed(),
        }
    })
}

fn condition() -> impl Strategy<Value = Condition> {
    let base = prop_oneof![10 => leaf(), 1 => Just(Condition::True)];
    base.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(Condition::And),
            prop::collection::vec(inner.clone(), 1..4).prop_map(Condition::Or),
            inner.prop_map(|c| Condition::Not(Box::new(c))),
        ]
    })
}

fn aggregate() -> impl Strategy<Value = Aggregate> {
    (0usize..7, 0usize..6).prop_map(|(kind, c)| {
        let name = NAMES[c].to_string();
        // SUM/AVG only over numeric columns (i, d, f).
        let numeric = ["i", "d", "f"][c % 3].to_string();
        match kind {
            0 => Aggregate::CountStar,
            1 => Aggregate::Count(name),
            2 => Aggregate::CountDistinct(name),
            3 => Aggregate::Sum(numeric),
            4 => Aggregate::Avg(numeric),
            5 => Aggregate::Min(name),
            _ => Aggregate::Max(name),
        }
    })
}

fn query() -> impl Strategy<Value = ShardQuery> {
    (
        condition(),
        prop::sample::subsequence(vec!["i", "t", "b", "day"], 0..3),
        prop::collection::vec(aggregate(), 1..4),
    )
        .prop_map(|(filter, group_by, aggregates)| ShardQuery {
            filter,
            group_by: group_by.into_iter().map(String::from).collect(),
            aggregates,
        })
}

// ----- the model ---------------------------------------------------------------------------

fn column_index(name: &str) -> usize {
    NAMES.iter().position(|n| *n == name).expect("known column")
}

/// SQL three-valued evaluation: None is UNKNOWN. (UNKNOWN does not short-circuit AND/OR,
/// hence `fold`, not `try_fold`.)
#[allow(clippy::manual_try_fold)]
fn eval(condition: &Condition, row: &[Value]) -> Option<bool> {
    let cmp = |a: &Value, b: &Value| -> Option<Ordering> {
        if a.is_null() || b.is_null() {
            None
        } else {
            Some(compare_values(a, b))
        }
    };
    match condition {
        Condition::True => Some(true),
        Condition::Compare { column, op, value } => {
            let o = cmp(&row[column_index(column)], value)?;
            Some(match op {
                CompareOp::Eq => o == Ordering::Equal,
                CompareOp::NotEq => o != Ordering::Equal,
                CompareOp::Lt => o == Ordering::Less,
                CompareOp::LtEq => o != Ordering::Greater,
                CompareOp::Gt => o == Ordering::Greater,
                CompareOp::GtEq => o != Ordering::Less,
            })
        }
        Condition::Between { column, low, high } => {
            let v = &row[column_index(column)];
            let a = cmp(v, low).map(|o| o != Ordering::Less);
            let b = cmp(v, high).map(|o| o != Ordering::Greater);
            and3(a, b)
        }
        Condition::In { column, values } => {
            let v = &row[column_index(column)];
            let mut result = Some(false);
            for candidate in values {
                result = or3(result, cmp(v, candidate).map(|o| o == Ordering::Equal));
            }
            result
        }
        Condition::Like { column, pattern } => match &row[column_index(column)] {
            Value::Null => None,
            Value::Text(t) => Some(naive_like(pattern, t)),
            _ => unreachable!(),
        },
        Condition::IsNull { column } => Some(row[column_index(column)].is_null()),
        Condition::And(cs) => cs.iter().fold(Some(true), |acc, c| and3(acc, eval(c, row))),
        Condition::Or(cs) => cs.iter().fold(Some(false), |acc, c| or3(acc, eval(c, row))),
        Condition::Not(c) => eval(c, row).map(|b| !b),
    }
}

fn and3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

fn naive_like(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p {
            [] => t.is_empty(),
            ['%', rest @ ..] => (0..=t.len()).any(|i| go(rest, &t[i..])),
            ['_', rest @ ..] => !t.is_empty() && go(rest, &t[1..]),
            ['\\', c, rest @ ..] => t.first() == Some(c) && go(rest, &t[1..]),
            [c, rest @ ..] => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    go(
        &pattern.chars().collect::<Vec<_>>(),
        &text.chars().collect::<Vec<_>>(),
    )
}

fn model_query(rows: &[Option<Vec<Value>>], query: &ShardQuery) -> Vec<Vec<Value>> {
    let selected: Vec<&Vec<Value>> = rows
        .iter()
        .flatten()
        .filter(|row| eval(&query.filter, row) == Some(true))
        .collect();
    let group_indexes: Vec<usize> = query.group_by.iter().map(|g| column_index(g)).collect();
    let mut groups: Vec<(Vec<Value>, Vec<&Vec<Value>>)> = Vec::new();
    for row in &selected {
        let key: Vec<Value> = group_indexes.iter().map(|&g| row[g].clone()).collect();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(row),
            None => groups.push((key, vec![row])),
        }
    }
    if groups.is_empty() && group_indexes.is_empty() {
        groups.push((Vec::new(), Vec::new()));
    }
    groups
        .into_iter()
        .map(|(key, members)| {
            let mut out = key;
            for aggregate in &query.aggregates {
                let values = |c: &str| -> Vec<Value> {
                    members
                        .iter()
                        .map(|r| r[column_index(c)].clone())
                        .filter(|v| !v.is_null())
                        .collect()
                };
                out.push(match aggregate {
                    Aggregate::CountStar => Value::Int(members.len() as i64),
                    Aggregate::Count(c) => Value::Int(values(c).len() as i64),
                    Aggregate::CountDistinct(c) => {
                        let mut vs = values(c);
                        vs.sort_by(compare_values);
                        vs.dedup_by(|a, b| compare_values(a, b) == Ordering::Equal);
                        Value::Int(vs.len() as i64)
                    }
                    Aggregate::Sum(c) | Aggregate::Avg(c) => {
                        let vs = values(c);
                        if vs.is_empty() {
                            Value::Null
                        } else {
                            let avg = matches!(aggregate, Aggregate::Avg(_));
                            let n = vs.len() as f64;
                            match &vs[0] {
                                Value::Int(_) => {
                                    let s: i64 = vs
                                        .iter()
                                        .map(|v| if let Value::Int(x) = v { *x } else { 0 })
                                        .sum();
                                    if avg {
                                        Value::Double(s as f64 / n)
                                    } else {
                                        Value::Int(s)
                                    }
                                }
                                Value::Decimal { scale, .. } => {
                                    let s: i64 = vs
                                        .iter()
                                        .map(|v| {
                                            if let Value::Decimal { units, .. } = v {
                                                *units
                                            } else {
                                                0
                                            }
                                        })
                                        .sum();
                                    if avg {
                                        Value::Double(s as f64 / n / 100.0)
                                    } else {
                                        Value::Decimal {
                                            units: s,
                                            scale: *scale,
                                        }
                                    }
                                }
                                _ => {
                                    let s: f64 = vs
                                        .iter()
                                        .map(|v| if let Value::Double(x) = v { *x } else { 0.0 })
                                        .sum();
                                    if avg {
                                        Value::Double(s / n)
                                    } else {
                                        Value::Double(s)
                                    }
                                }
                            }
                        }
                    }
                    Aggregate::Min(c) => values(c)
                        .into_iter()
                        .min_by(compare_values)
                        .unwrap_or(Value::Null),
                    Aggregate::Max(c) => values(c)
                        .into_iter()
                        .max_by(compare_values)
                        .unwrap_or(Value::Null),
                });
            }
            out
        })
        .collect()
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => {
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
        }
        _ => compare_values(a, b) == Ordering::Equal,
    }
}

fn sorted(mut rows: Vec<Vec<Value>>) -> Vec<Vec<Value>> {
    rows.sort_by(|a, b| {
        a.iter()
            .zip(b)
            .map(|(x, y)| compare_values(x, y))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    });
    rows
}

fn assert_same(actual: &ResultSet, expected: Vec<Vec<Value>>, query: &ShardQuery) {
    let actual = sorted(actual.rows.clone());
    let expected = sorted(expected);
    assert_eq!(
        actual.len(),
        expected.len(),
        "row count differs for {query:?}\nactual {actual:?}\nexpected {expected:?}"
    );
    for (a, e) in actual.iter().zip(&expected) {
        assert!(
            a.len() == e.len() && a.iter().zip(e).all(|(x, y)| same_value(x, y)),
            "rows differ for {query:?}\nactual {actual:?}\nexpected {expected:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Queries over inserted batches, then after deletes, equal the naive model.
    #[test]
    fn queries_and_deletes_match_a_table_scan(
        batches in prop::collection::vec(prop::collection::vec(row(), 0..40), 1..4),
        deletes in prop::collection::vec(condition(), 0..3),
        queries in prop::collection::vec(query(), 1..6),
    ) {
        let schema = schema();
        let mut store = ShardStore::new(schema.clone(), StoreOptions::in_memory());
        let mut model: Vec<Option<Vec<Value>>> = Vec::new();
        for batch in &batches {
            let ids = store.insert_batch(batch).expect("valid batch");
            prop_assert_eq!(ids.start, model.len() as u64);
            model.extend(batch.iter().cloned().map(Some));
        }
        for condition in &deletes {
            let expected: Vec<u64> = model.iter().enumerate()
                .filter(|(_, r)| r.as_ref().is_some_and(|r| eval(condition, r) == Some(true)))
                .map(|(i, _)| i as u64).collect();
            let selected = store.select_ids(condition, usize::MAX).expect("plan");
            prop_assert_eq!(&selected, &expected, "selection of {:?}", condition);
            let deleted = store.delete_where(condition).expect("delete");
            prop_assert_eq!(deleted, expected.len() as u64);
            for id in expected {
                model[id as usize] = None;
            }
        }
        prop_assert_eq!(store.live_count(), model.iter().flatten().count() as u64);
        for query in &queries {
            let partial = store.query(query).expect("query");
            let result = partial.finish(query, &schema).expect("finish");
            assert_same(&result, model_query(&model, query), query);
        }
        // Record reads return the inserted values of live records.
        let ids = store.select_ids(&Condition::True, usize::MAX).expect("all");
        let all: Vec<usize> = (0..6).collect();
        let read = store.read(&ids, &all);
        let live: Vec<&Vec<Value>> = model.iter().flatten().collect();
        prop_assert_eq!(read.len(), live.len());
        for (r, m) in read.iter().zip(live) {
            prop_assert!(r.iter().zip(m).all(|(a, b)| same_value(a, b)), "read {:?} != {:?}", r, m);
        }
    }

    /// Partials of the same rows split over several shards merge to the single-shard answer.
    #[test]
    fn partials_merge_across_shards(
        rows in prop::collection::vec(row(), 0..80),
        shard_count in 1usize..4,
        queries in prop::collection::vec(query(), 1..4),
    ) {
        let schema = schema();
        let mut whole = ShardStore::new(schema.clone(), StoreOptions::in_memory());
        whole.insert_batch(&rows).expect("valid");
        let mut shards: Vec<ShardStore> = (0..shard_count).map(|_| ShardStore::new(schema.clone(), StoreOptions::in_memory())).collect();
        for (i, row) in rows.iter().enumerate() {
            shards[i % shard_count].insert_batch(std::slice::from_ref(row)).expect("valid");
        }
        for query in &queries {
            let mut merged = rhizome_core::query::Partial::default();
            for shard in &shards {
                merged.merge(shard.query(query).expect("query")).expect("merge");
            }
            let expected = whole.query(query).expect("query").finish(query, &schema).expect("finish");
            let actual = merged.finish(query, &schema).expect("finish");
            assert_same(&actual, expected.rows, query);
        }
    }
}

/// A rejected batch applies nothing: a bad value in the last row leaves the store unchanged.
#[test]
fn a_rejected_batch_changes_nothing() {
    let schema = Schema::new(vec![
        ColumnDef {
            name: "k".into(),
            data_type: DataType::BigInt,
            nullable: false,
        },
        ColumnDef {
            name: "s".into(),
            data_type: DataType::Text { max_chars: Some(3) },
            nullable: true,
        },
    ])
    .expect("schema");
    let mut store = ShardStore::new(schema, StoreOptions::in_memory());
    store
        .insert_batch(&[vec![Value::Int(1), Value::Text("ab".into())]])
        .expect("valid");
    let digest = store.digest();
    let bad = [
        vec![Value::Int(2), Value::Text("ok".into())],
        vec![Value::Null, Value::Text("x".into())],
    ];
    let error = store
        .insert_batch(&bad)
        .expect_err("NULL in NOT NULL column");
    assert!(
        error.to_string().contains("row 1") && error.to_string().contains('k'),
        "{error}"
    );
    assert_eq!(store.record_count(), 1);
    assert_eq!(store.digest(), digest);
    let wrong_arity = [vec![Value::Int(3)]];
    assert!(store.insert_batch(&wrong_arity).is_err());
    assert_eq!(store.digest(), digest);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// On tables of thousands of records — where selections become bitmaps, windows of the
    /// aggregation are read as (masked) ranges and deletes punch holes — queries still equal
    /// the naive model.
    #[test]
    fn large_tables_match_a_table_scan(
        rows in prop::collection::vec(row(), 2000..5000),
        deletes in prop::collection::vec(leaf(), 0..2),
        queries in prop::collection::vec(query(), 4..8),
    ) {
        let schema = schema();
        let mut store = ShardStore::new(schema.clone(), StoreOptions::in_memory());
        store.insert_batch(&rows).expect("valid batch");
        let mut model: Vec<Option<Vec<Value>>> = rows.into_iter().map(Some).collect();
        for condition in &deletes {
            store.delete_where(condition).expect("delete");
            for row in model.iter_mut() {
                if row.as_ref().is_some_and(|r| eval(condition, r) == Some(true)) {
                    *row = None;
                }
            }
        }
        for query in &queries {
            let result = store.query(query).expect("query").finish(query, &schema).expect("finish");
            assert_same(&result, model_query(&model, query), query);
        }
    }
}

/// A dense selection with holes (masked windows), full windows and a sparse one, grouped and
/// aggregated, equal the naive model — a fixed case so the windowed paths always run.
#[test]
fn windowed_aggregation_matches_a_table_scan() {
    // 3,013 records: the last window of 16 bitmap words reaches past the last record.
    for record_count in [10_000i64, 3_013] {
        windowed_aggregation_case(record_count);
    }
}

fn windowed_aggregation_case(record_count: i64) {
    let schema = schema();
    let mut store = ShardStore::new(schema.clone(), StoreOptions::in_memory());
    let rows: Vec<Vec<Value>> = (0..record_count)
        .map(|k| {
            vec![
                if k % 97 == 0 {
                    Value::Null
                } else {
                    Value::Int(k % 5)
                },
                Value::Text(["a", "b", "c"][(k % 3) as usize].into()),
                Value::Decimal {
                    units: (k * 7) % 400 - 200,
                    scale: 2,
                },
                Value::Date(9000 + (k % 11) as i32),
                Value::Double((k % 13) as f64 / 4.0),
                Value::Boolean(k % 2 == 0),
            ]
        })
        .collect();
    store.insert_batch(&rows).expect("valid");
    let model: Vec<Option<Vec<Value>>> = rows.into_iter().map(Some).collect();
    let aggregates = vec![
        Aggregate::CountStar,
        Aggregate::Sum("d".into()),
        Aggregate::Avg("f".into()),
        Aggregate::Min("day".into()),
        Aggregate::Max("t".into()),
        Aggregate::CountDistinct("day".into()),
        Aggregate::Count("i".into()),
    ];
    for filter in [
        Condition::True,
        Condition::Not(Box::new(Condition::eq("i", Value::Int(3)))),
        Condition::eq("i", Value::Int(3)),
        Condition::compare("day", CompareOp::Lt, Value::Date(9010)),
    ] {
        for group_by in [
            vec![],
            vec!["b".to_string()],
            vec!["t".to_string(), "i".to_string()],
        ] {
            let query = ShardQuery {
                filter: filter.clone(),
                group_by,
                aggregates: aggregates.clone(),
            };
            let result = store
                .query(&query)
                .expect("query")
                .finish(&query, &schema)
                .expect("finish");
            assert_same(&result, model_query(&model, &query), &query);
        }
    }
}

/// A text literal longer than the column's VARCHAR(n) is a valid bound: equal to nothing,
/// and ordered as text.
#[test]
fn long_text_literals_compare_as_text() {
    let schema = schema();
    let mut store = ShardStore::new(schema.clone(), StoreOptions::in_memory());
    let rows: Vec<Vec<Value>> = ["a", "ab", "zz"]
        .iter()
        .map(|t| {
            vec![
                Value::Null,
                Value::Text(t.to_string()),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
            ]
        })
        .collect();
    store.insert_batch(&rows).expect("valid");
    let long = Value::Text("abcdefghijklmnopqrstuvwxyz".into());
    let count = |op| {
        let query = ShardQuery {
            filter: Condition::compare("t", op, long.clone()),
            group_by: vec![],
            aggregates: vec![Aggregate::CountStar],
        };
        store
            .query(&query)
            .expect("query")
            .finish(&query, &schema)
            .expect("finish")
            .rows[0][0]
            .clone()
    };
    assert_eq!(count(CompareOp::Eq), Value::Int(0));
    assert_eq!(count(CompareOp::Lt), Value::Int(2));
    assert_eq!(count(CompareOp::Gt), Value::Int(1));
}

/// EXPLAIN names every leaf with its exact record count.
#[test]
fn explain_reports_leaves_and_their_sizes() {
    let schema = schema();
    let mut store = ShardStore::new(schema.clone(), StoreOptions::in_memory());
    // `count` records: i cycles through `distinct` values, b alternates.
    let rows = |count: i64, distinct: i64| -> Vec<Vec<Value>> {
        (0..count)
            .map(|k| {
                vec![
                    Value::Int(k % distinct),
                    Value::Text("x".into()),
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    Value::Boolean(k % 2 == 0),
                ]
            })
            .collect()
    };
    store.insert_batch(&rows(100, 4)).expect("valid");
    let query = ShardQuery {
        filter: Condition::And(vec![
            Condition::eq("i", Value::Int(1)),
            Condition::eq("b", Value::Boolean(true)),
        ]),
        group_by: vec![],
        aggregates: vec![Aggregate::CountStar],
    };
    let plan = store.explain(&query).expect("explain").join("\n");
    assert!(plan.contains("i: 1 value(s), 25 records"), "{plan}");
    assert!(plan.contains("b: 1 value(s), 50 records"), "{plan}");
    assert!(plan.starts_with("AND"), "{plan}");
    // Two dense single-value leaves: intersected window by window.
    assert!(plan.contains("count: intersect the Rhizomes"), "{plan}");

    // One record in 10,000 against half of them: the rare leaf is walked and the other
    // probed. Both ways count what a scan counts.
    let mut store = ShardStore::new(schema.clone(), StoreOptions::in_memory());
    let rows = rows(10_000, 5000);
    store.insert_batch(&rows).expect("valid");
    let plan = store.explain(&query).expect("explain").join("\n");
    assert!(plan.contains("count: walk i and probe"), "{plan}");
    let expected = rows
        .iter()
        .filter(|r| r[0] == Value::Int(1) && r[5] == Value::Boolean(true))
        .count();
    let answer = store
        .query(&query)
        .expect("query")
        .finish(&query, &schema)
        .expect("finish");
    assert_same(&answer, vec![vec![Value::Int(expected as i64)]], &query);
}

/// SUM and AVG over a column of more than 65,536 distinct values (summed in dictionary-region
/// order) equal the naive model, grouped and not, with NULLs and deletes.
#[test]
fn sums_over_large_dictionaries_match_a_table_scan() {
    let schema = schema();
    let mut store = ShardStore::new(schema.clone(), StoreOptions::in_memory());
    let rows: Vec<Vec<Value>> = (0..90_000i64)
        .map(|k| {
            vec![
                if k % 13 == 0 {
                    Value::Null
                } else {
                    Value::Int(k * 7919 % 1_000_003 - 500_000)
                },
                Value::Text(["a", "b"][(k % 2) as usize].into()),
                Value::Null,
                Value::Date(9000 + (k % 3) as i32),
                Value::Null,
                if k % 5 == 0 {
                    Value::Null
                } else {
                    Value::Boolean(k % 3 == 0)
                },
            ]
        })
        .collect();
    store.insert_batch(&rows).expect("valid");
    let mut model: Vec<Option<Vec<Value>>> = rows.into_iter().map(Some).collect();
    let deleted = Condition::eq("day", Value::Date(9001));
    store.delete_where(&deleted).expect("delete");
    for row in model.iter_mut() {
        if row
            .as_ref()
            .is_some_and(|r| eval(&deleted, r) == Some(true))
        {
            *row = None;
        }
    }
    for group_by in [
        vec![],
        vec!["b".to_string()],
        vec!["t".to_string(), "day".to_string()],
    ] {
        for filter in [Condition::True, Condition::eq("t", Value::Text("a".into()))] {
            let query = ShardQuery {
                filter,
                group_by: group_by.clone(),
                aggregates: vec![
                    Aggregate::Sum("i".into()),
                    Aggregate::Avg("i".into()),
                    Aggregate::CountStar,
                ],
            };
            let result = store
                .query(&query)
                .expect("query")
                .finish(&query, &schema)
                .expect("finish");
            assert_same(&result, model_query(&model, &query), &query);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// SUM and AVG over a numeric column of more than 65,536 distinct values, read from its
    /// values by record, equal the naive model: appended in three batches (the dictionary
    /// passes 65,536 values in any of them), after deletes, with and without NULLs, grouped
    /// or not, over sparse and dense selections, and again after a save and reopen.
    #[test]
    fn sums_by_record_match_a_table_scan(
        splits in (0usize..80_000, 0usize..80_000),
        multiplier in 1i64..1_000,
        with_nulls in any::<bool>(),
        deleted_day in 9000i32..9004,
        filter_day in 9000i32..9004,
    ) {
        let schema = schema();
        let mut store = ShardStore::new(schema.clone(), StoreOptions::in_memory());
        let rows: Vec<Vec<Value>> = (0..80_000i64)
            .map(|k| {
                vec![
                    if with_nulls && k % 11 == 0 {
                        Value::Null
                    } else {
                        Value::Int(k * 7919 * multiplier % 1_000_003 - 500_000)
                    },
                    Value::Text(["a", "b"][(k % 2) as usize].into()),
                    Value::Decimal { units: k % 40 * 25, scale: 2 },
                    Value::Date(9000 + (k * 31 % 4) as i32),
                    Value::Null,
                    Value::Boolean(k % 3 == 0),
                ]
            })
            .collect();
        let (a, b) = (splits.0.min(splits.1), splits.0.max(splits.1));
        for batch in [&rows[..a], &rows[a..b], &rows[b..]] {
            store.insert_batch(batch).expect("valid");
        }
        let mut model: Vec<Option<Vec<Value>>> = rows.into_iter().map(Some).collect();
        let deleted = Condition::eq("day", Value::Date(deleted_day));
        store.delete_where(&deleted).expect("delete");
        for row in model.iter_mut() {
            if row.as_ref().is_some_and(|r| eval(&deleted, r) == Some(true)) {
                *row = None;
            }
        }
        let filters = [
            Condition::True,
            Condition::eq("day", Value::Date(filter_day)),
            Condition::And(vec![
                Condition::eq("day", Value::Date(filter_day)),
                Condition::eq("t", Value::Text("a".into())),
                Condition::compare("d", CompareOp::Lt, Value::Decimal { units: 50, scale: 2 }),
            ]),
        ];
        let aggregate_lists = [
            vec![Aggregate::CountStar, Aggregate::Sum("i".into())],
            vec![Aggregate::Avg("i".into()), Aggregate::Sum("d".into()), Aggregate::CountStar],
        ];
        let check = |store: &ShardStore| -> Result<(), TestCaseError> {
            let values = store.column(0).values_by_record();
            prop_assert_eq!(values.map(|v| v.len()), Some(80_000), "values by record of i");
            for group_by in [vec![], vec!["b".to_string()]] {
                for filter in &filters {
                    for aggregates in &aggregate_lists {
                        let query = ShardQuery {
                            filter: filter.clone(),
                            group_by: group_by.clone(),
                            aggregates: aggregates.clone(),
                        };
                        let result = store
                            .query(&query)
                            .expect("query")
                            .finish(&query, &schema)
                            .expect("finish");
                        assert_same(&result, model_query(&model, &query), &query);
                    }
                }
            }
            Ok(())
        };
        check(&store)?;
        let root = tempfile::tempdir().expect("temp dir");
        store.save_to(&[root.path().to_path_buf()]).expect("save");
        let reopened = ShardStore::open(StoreOptions::on_disk(vec![root.path().to_path_buf()]))
            .expect("reopen");
        check(&reopened)?;
    }
}
