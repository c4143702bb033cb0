//! Saved shard stores reopen with the same answers, spread over one or several data
//! directories, and a flipped byte in any file is reported as corruption naming the file —
//! never a panic and never a wrong answer.

use std::path::PathBuf;

use proptest::prelude::*;
use rhizome_core::query::{Aggregate, CompareOp, Condition, ShardQuery};
use rhizome_core::shard::{ColumnDef, Schema, ShardStore, StoreOptions};
use rhizome_core::value::{DataType, Value};
use rhizome_core::Error;

fn schema() -> Schema {
    Schema::new(vec![
        ColumnDef {
            name: "k".into(),
            data_type: DataType::BigInt,
            nullable: false,
        },
        ColumnDef {
            name: "city".into(),
            data_type: DataType::Text { max_chars: None },
            nullable: true,
        },
        ColumnDef {
            name: "price".into(),
            data_type: DataType::Decimal {
                precision: 9,
                scale: 2,
            },
            nullable: true,
        },
        ColumnDef {
            name: "day".into(),
            data_type: DataType::Date,
            nullable: true,
        },
    ])
    .expect("valid")
}

fn rows(n: i64) -> Vec<Vec<Value>> {
    let cities = ["Oxford", "Leeds", "York", "Bath"];
    (0..n)
        .map(|i| {
            vec![
                Value::Int(i),
                if i % 7 == 0 {
                    Value::Null
                } else {
                    Value::Text(cities[(i % 4) as usize].into())
                },
                Value::Decimal {
                    units: (i * 37) % 5000,
                    scale: 2,
                },
                Value::Date(10_000 + (i % 30) as i32),
            ]
        })
        .collect()
}

fn queries() -> Vec<ShardQuery> {
    vec![
        ShardQuery {
            filter: Condition::True,
            group_by: vec![],
            aggregates: vec![Aggregate::CountStar],
        },
        ShardQuery {
            filter: Condition::compare(
                "price",
                CompareOp::Gt,
                Value::Decimal {
                    units: 1000,
                    scale: 2,
                },
            ),
            group_by: vec!["city".into()],
            aggregates: vec![
                Aggregate::CountStar,
                Aggregate::Sum("price".into()),
                Aggregate::Max("day".into()),
            ],
        },
        ShardQuery {
            filter: Condition::Like {
                column: "city".into(),
                pattern: "%o%".into(),
            },
            group_by: vec![],
            aggregates: vec![
                Aggregate::CountDistinct("day".into()),
                Aggregate::Min("k".into()),
            ],
        },
    ]
}

fn answers(store: &ShardStore) -> Vec<rhizome_core::query::Partial> {
    queries()
        .iter()
        .map(|q| store.query(q).expect("query"))
        .collect()
}

fn dirs(root: &std::path::Path, n: usize) -> Vec<PathBuf> {
    (0..n).map(|i| root.join(format!("spindle-{i}"))).collect()
}

/// A store saved after inserts and deletes reopens with the same digest and answers, on one
/// data directory and on three.
#[test]
fn save_and_open_round_trip() {
    for spindles in [1, 3] {
        let root = tempfile::tempdir().expect("temp dir");
        let options = StoreOptions::on_disk(dirs(root.path(), spindles));
        let mut store = ShardStore::new(schema(), options.clone());
        store.insert_batch(&rows(3000)).expect("insert");
        store
            .delete_where(&Condition::eq("city", Value::Text("York".into())))
            .expect("delete");
        assert!(!ShardStore::exists(&options));
        store.save().expect("save");
        assert!(ShardStore::exists(&options));
        let reopened = ShardStore::open(options.clone()).expect("open");
        assert_eq!(reopened.digest(), store.digest());
        assert_eq!(reopened.live_count(), store.live_count());
        assert_eq!(answers(&reopened), answers(&store));
        // Column files are spread over every spindle.
        for dir in &options.data_dirs {
            let columns = std::fs::read_dir(dir).expect("dir").filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("column-"))
            });
            assert!(columns.count() >= 1, "{dir:?} holds no column file");
        }
        // A reopened store keeps accepting writes, and a second save replaces the first.
        let mut reopened = reopened;
        reopened
            .insert_batch(&rows(10))
            .expect("insert after reopen");
        reopened.save().expect("second save");
        let again = ShardStore::open(options).expect("open again");
        assert_eq!(again.digest(), reopened.digest());
    }
}

/// Every single flipped byte of every file is an `Error::Corruption` naming that file.
#[test]
fn flipped_bytes_are_corruption_naming_the_file() {
    let root = tempfile::tempdir().expect("temp dir");
    let options = StoreOptions::on_disk(dirs(root.path(), 2));
    let mut store = ShardStore::new(schema(), options.clone());
    store.insert_batch(&rows(200)).expect("insert");
    store
        .delete_where(&Condition::eq("k", Value::Int(5)))
        .expect("delete");
    store.save().expect("save");
    let files: Vec<PathBuf> = options
        .data_dirs
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(d)
                .expect("dir")
                .map(|e| e.expect("entry").path())
        })
        .collect();
    assert_eq!(
        files.len(),
        5,
        "four column files and a manifest: {files:?}"
    );
    for file in &files {
        let original = std::fs::read(file).expect("read");
        // Every position of small files; a stride through larger ones keeps the test quick.
        let stride = (original.len() / 400).max(1);
        for position in (0..original.len()).step_by(stride) {
            let mut damaged = original.clone();
            damaged[position] ^= 0x5a;
            std::fs::write(file, &damaged).expect("write");
            match ShardStore::open(options.clone()) {
                Err(Error::Corruption { file: named, .. }) => {
                    assert_eq!(&named, file, "byte {position}")
                }
                Err(other) => {
                    panic!("byte {position} of {file:?}: expected corruption, got {other}")
                }
                Ok(_) => panic!("byte {position} of {file:?}: a damaged file opened"),
            }
        }
        std::fs::write(file, &original).expect("restore");
    }
    assert_eq!(
        ShardStore::open(options).expect("intact").digest(),
        store.digest()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random inserts and deletes, saved and reopened, give the same digest and answers.
    #[test]
    fn reopened_stores_answer_the_same(n in 0i64..500, deletes in prop::collection::vec(0i64..500, 0..20)) {
        let root = tempfile::tempdir().expect("temp dir");
        let options = StoreOptions::on_disk(dirs(root.path(), 2));
        let mut store = ShardStore::new(schema(), options.clone());
        store.insert_batch(&rows(n)).expect("insert");
        for k in deletes {
            store.delete_where(&Condition::eq("k", Value::Int(k))).expect("delete");
        }
        store.save().expect("save");
        let reopened = ShardStore::open(options).expect("open");
        prop_assert_eq!(reopened.digest(), store.digest());
        prop_assert_eq!(answers(&reopened), answers(&store));
    }
}

/// A large text dictionary is stored compressed and reads back exactly.
#[test]
fn large_dictionaries_round_trip_compressed() {
    let root = tempfile::tempdir().expect("temp dir");
    let options = StoreOptions::on_disk(dirs(root.path(), 1));
    let mut store = ShardStore::new(schema(), options.clone());
    let rows: Vec<Vec<Value>> = (0..20_000i64)
        .map(|i| {
            vec![
                Value::Int(i),
                Value::Text(format!("quickly regular packages sleep {i} furiously")),
                Value::Null,
                Value::Null,
            ]
        })
        .collect();
    store.insert_batch(&rows).expect("insert");
    store.save().expect("save");
    let segment =
        rhizome_core::segment::Segment::open(&options.data_dirs[0].join("column-0001.seg"))
            .expect("open");
    assert!(
        segment.block_names().any(|n| n == "dictionary.zst"),
        "the text dictionary is compressed"
    );
    let on_disk = std::fs::metadata(segment.path()).expect("metadata").len();
    assert!(
        on_disk < 20_000 * 20,
        "compressed: {on_disk} bytes for 20,000 texts of ~45 bytes"
    );
    let reopened = ShardStore::open(options).expect("open");
    assert_eq!(reopened.digest(), store.digest());
    let ids: Vec<u64> = (0..20_000).collect();
    assert_eq!(reopened.read(&ids, &[1]), store.read(&ids, &[1]));
}

/// `save_to` writes a complete store into other directories (a snapshot), leaving the
/// store's own directories untouched; opening those directories gives the same store.
#[test]
fn save_to_writes_a_snapshot_elsewhere() {
    let root = tempfile::tempdir().expect("temp dir");
    let options = StoreOptions::on_disk(dirs(&root.path().join("live"), 2));
    let mut store = ShardStore::new(schema(), options.clone());
    store.insert_batch(&rows(500)).expect("insert");
    store
        .delete_where(&Condition::eq("k", Value::Int(7)))
        .expect("delete");
    let snapshot = dirs(&root.path().join("snap-1"), 3);
    store.save_to(&snapshot).expect("save_to");
    assert!(
        !ShardStore::exists(&options),
        "the live directories were not written"
    );
    let reopened = ShardStore::open(StoreOptions::on_disk(snapshot)).expect("open the snapshot");
    assert_eq!(reopened.digest(), store.digest());
    assert_eq!(answers(&reopened), answers(&store));
}

/// An image holds the store as it was when taken: written after more inserts and deletes, it
/// reopens to the earlier digest and answers (a snapshot encodes under its lock and writes
/// after releasing it, while applies go on).
#[test]
fn an_image_written_later_holds_the_store_as_it_was_when_taken() {
    let root = tempfile::tempdir().expect("temp dir");
    let mut store = ShardStore::new(schema(), StoreOptions::on_disk(dirs(root.path(), 1)));
    store.insert_batch(&rows(800)).expect("insert");
    store
        .delete_where(&Condition::eq("city", Value::Text("Bath".into())))
        .expect("delete");
    let (digest, live, before) = (store.digest(), store.live_count(), answers(&store));
    let image = store.image().expect("image");
    store
        .insert_batch(&rows(300))
        .expect("insert after the image");
    store
        .delete_where(&Condition::eq("k", Value::Int(3)))
        .expect("delete after the image");
    assert_ne!(store.digest(), digest, "the store changed after the image");
    let snapshot = dirs(&root.path().join("snap-1"), 2);
    let written = image.write_to(&snapshot).expect("write");
    let on_disk: u64 = snapshot
        .iter()
        .flat_map(|d| std::fs::read_dir(d).expect("dir"))
        .map(|e| e.expect("entry").metadata().expect("metadata").len())
        .sum();
    assert_eq!(written, on_disk, "write_to reports the bytes it wrote");
    let reopened = ShardStore::open(StoreOptions::on_disk(snapshot)).expect("open");
    assert_eq!(reopened.digest(), digest);
    assert_eq!(reopened.live_count(), live);
    assert_eq!(answers(&reopened), before);
}
