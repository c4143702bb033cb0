// scratch: time P4's filter alone vs with SUM
use rhizome_core::query::{Aggregate, CompareOp, Condition, ShardQuery};
use rhizome_core::shard::{ColumnDef, Schema, ShardStore, StoreOptions};
use rhizome_core::value::{DataType, Value};
use std::time::Instant;
fn main() {
    let d = DataType::Decimal {
        precision: 15,
        scale: 2,
    };
    let schema = Schema::new(vec![
        ColumnDef {
            name: "l_shipdate".into(),
            data_type: DataType::Date,
            nullable: false,
        },
        ColumnDef {
            name: "l_discount".into(),
            data_type: d,
            nullable: false,
        },
        ColumnDef {
            name: "l_quantity".into(),
            data_type: d,
            nullable: false,
        },
        ColumnDef {
            name: "l_extendedprice".into(),
            data_type: d,
            nullable: false,
        },
    ])
    .unwrap();
    let mut store = ShardStore::new(schema.clone(), StoreOptions::in_memory());
    let mut batch = Vec::new();
    let t = Instant::now();
    for l in tpchgen::generators::LineItemGenerator::new(1.0, 1, 1) {
        batch.push(vec![
            Value::Date(l.l_shipdate.to_unix_epoch()),
            Value::Decimal {
                units: l.l_discount.0,
                scale: 2,
            },
            Value::Decimal {
                units: l.l_quantity * 100,
                scale: 2,
            },
            Value::Decimal {
                units: l.l_extendedprice.0,
                scale: 2,
            },
        ]);
        if batch.len() == 100_000 {
            store.insert_rows(std::mem::take(&mut batch)).unwrap();
        }
    }
    store.insert_rows(batch).unwrap();
    println!("load {:?}", t.elapsed());
    let date = |s: &str| DataType::Date.parse(s).unwrap();
    let filter = Condition::And(vec![
        Condition::compare("l_shipdate", CompareOp::GtEq, date("1994-01-01")),
        Condition::compare("l_shipdate", CompareOp::Lt, date("1995-01-01")),
        Condition::Between {
            column: "l_discount".into(),
            low: Value::Decimal { units: 5, scale: 2 },
            high: Value::Decimal { units: 7, scale: 2 },
        },
        Condition::compare("l_quantity", CompareOp::Lt, Value::Int(24)),
    ]);
    for aggs in [
        vec![Aggregate::CountStar],
        vec![
            Aggregate::CountStar,
            Aggregate::Sum("l_extendedprice".into()),
        ],
    ] {
        let q = ShardQuery {
            filter: filter.clone(),
            group_by: vec![],
            aggregates: aggs,
        };
        for _ in 0..3 {
            let t = Instant::now();
            let p = store.query(&q).unwrap();
            println!("{:?} {:?}", t.elapsed(), p.groups.values().next());
        }
    }
    let leaf_only = Condition::And(vec![
        Condition::compare("l_shipdate", CompareOp::GtEq, date("1994-01-01")),
        Condition::compare("l_shipdate", CompareOp::Lt, date("1995-01-01")),
    ]);
    let q = ShardQuery {
        filter: leaf_only,
        group_by: vec![],
        aggregates: vec![Aggregate::CountStar],
    };
    for _ in 0..3 {
        let t = Instant::now();
        let _ = store.query(&q).unwrap();
        println!("shipdate-only count {:?}", t.elapsed());
    }
    let q = ShardQuery {
        filter: Condition::compare("l_shipdate", CompareOp::Lt, date("1995-01-01")),
        group_by: vec![],
        aggregates: vec![Aggregate::Sum("l_quantity".into())],
    };
    for _ in 0..3 {
        let t = Instant::now();
        let _ = store.query(&q).unwrap();
        println!("sum qty {:?}", t.elapsed());
    }
}
