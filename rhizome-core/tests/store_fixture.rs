//! A shard store saved by format version 1 (checked in under `tests/fixtures/store-v1/`)
//! still opens and answers exactly as it did: a future change must keep reading it.
//!
//! Regenerate only on purpose, with
//! `cargo test -p rhizome-core --test store_fixture -- --ignored write_store_fixture`.

use std::path::PathBuf;

use rhizome_core::query::{Aggregate, CompareOp, Condition, ShardQuery};
use rhizome_core::shard::{ColumnDef, Schema, ShardStore, StoreOptions};
use rhizome_core::value::{DataType, Value};

fn fixture_dirs() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1");
    vec![root.join("spindle-a"), root.join("spindle-b")]
}

/// The fixture's rows: every column type, NULLs, a text dictionary large enough to be
/// compressed, a dense column (bitmap blocks) and deleted records.
fn build(options: StoreOptions) -> ShardStore {
    let schema = Schema::new(vec![
        ColumnDef {
            name: "id".into(),
            data_type: DataType::BigInt,
            nullable: false,
        },
        ColumnDef {
            name: "n".into(),
            data_type: DataType::Int,
            nullable: true,
        },
        ColumnDef {
            name: "price".into(),
            data_type: DataType::Decimal {
                precision: 12,
                scale: 2,
            },
            nullable: true,
        },
        ColumnDef {
            name: "ratio".into(),
            data_type: DataType::Double,
            nullable: true,
        },
        ColumnDef {
            name: "day".into(),
            data_type: DataType::Date,
            nullable: true,
        },
        ColumnDef {
            name: "at".into(),
            data_type: DataType::Timestamp,
            nullable: true,
        },
        ColumnDef {
            name: "note".into(),
            data_type: DataType::Text {
                max_chars: Some(64),
            },
            nullable: true,
        },
        ColumnDef {
            name: "flag".into(),
            data_type: DataType::Boolean,
            nullable: true,
        },
    ])
    .expect("valid schema");
    let mut store = ShardStore::new(schema, options);
    let rows: Vec<Vec<Value>> = (0..12_000i64)
        .map(|i| {
            vec![
                Value::Int(i),
                if i % 11 == 0 {
                    Value::Null
                } else {
                    Value::Int(i % 7 - 3)
                },
                Value::Decimal {
                    units: (i * 131) % 100_000,
                    scale: 2,
                },
                Value::Double((i % 5) as f64 * 0.25),
                Value::Date(10_000 + (i % 400) as i32),
                Value::Timestamp(1_700_000_000_000_000 + i * 1_000_000),
                Value::Text(format!(
                    "note {} of the fixture, number {}",
                    i % 3000,
                    i % 17
                )),
                Value::Boolean(i % 4 == 0),
            ]
        })
        .collect();
    store.insert_batch(&rows).expect("valid rows");
    store
        .delete_where(&Condition::compare("n", CompareOp::Eq, Value::Int(2)))
        .expect("delete");
    store
}

fn queries() -> Vec<ShardQuery> {
    vec![
        ShardQuery {
            filter: Condition::True,
            group_by: vec![],
            aggregates: vec![Aggregate::CountStar],
        },
        ShardQuery {
            filter: Condition::eq("flag", Value::Boolean(true)),
            group_by: vec!["n".into()],
            aggregates: vec![
                Aggregate::CountStar,
                Aggregate::Sum("price".into()),
                Aggregate::Max("day".into()),
            ],
        },
        ShardQuery {
            filter: Condition::Like {
                column: "note".into(),
                pattern: "note 12%".into(),
            },
            group_by: vec![],
            aggregates: vec![
                Aggregate::CountDistinct("note".into()),
                Aggregate::Avg("ratio".into()),
                Aggregate::Min("at".into()),
            ],
        },
    ]
}

/// The checked-in store opens, and answers as a freshly built store with the same rows does;
/// its digest is the one recorded when it was written.
#[test]
fn version_1_store_still_reads() {
    let dirs = fixture_dirs();
    let stored = ShardStore::open(StoreOptions::on_disk(dirs)).expect("the v1 fixture opens");
    let fresh = build(StoreOptions::in_memory());
    assert_eq!(stored.record_count(), 12_000);
    assert_eq!(stored.live_count(), fresh.live_count());
    assert_eq!(stored.digest(), fresh.digest());
    for query in queries() {
        assert_eq!(
            stored.query(&query).expect("query"),
            fresh.query(&query).expect("query"),
            "{query:?}"
        );
    }
    let recorded = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1/DIGEST"),
    )
    .expect("recorded digest");
    assert_eq!(stored.digest().to_string(), recorded.trim());
}

#[test]
#[ignore = "rewrites the checked-in fixture"]
fn write_store_fixture() {
    let dirs = fixture_dirs();
    for dir in &dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
    let store = build(StoreOptions::on_disk(dirs));
    store.save().expect("save");
    let digest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1/DIGEST");
    std::fs::write(digest, format!("{}\n", store.digest())).expect("write digest");
}
