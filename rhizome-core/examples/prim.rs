// scratch: time primitives on lineitem columns
use rhizome_core::rhizome::Bitmap;
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
    ])
    .unwrap();
    let mut store = ShardStore::new(schema.clone(), StoreOptions::in_memory());
    let mut batch = Vec::new();
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
        ]);
        if batch.len() == 100_000 {
            store.insert_rows(std::mem::take(&mut batch)).unwrap();
        }
    }
    store.insert_rows(batch).unwrap();
    let n = store.record_count();
    for _ in 0..3 {
        let col = store.column(0);
        let syms: Vec<u32> = (1..col.dictionary().symbol_count() as u32)
            .filter(|&s| {
                let k = col.dictionary().fixed_key(s).unwrap();
                k >= 8766 && k < 9131
            })
            .collect();
        let t = Instant::now();
        let mut b = Bitmap::new(n);
        for &s in &syms {
            col.rhizome(s).or_into(&mut b);
        }
        let t1 = t.elapsed();
        let t = Instant::now();
        let mut cnt = 0u64;
        for &s in &syms {
            col.rhizome(s).for_each(|_| cnt += 1);
        }
        let t2 = t.elapsed();
        let dc = store.column(1);
        let t = Instant::now();
        let mut b2 = Bitmap::new(n);
        for s in 1..dc.dictionary().symbol_count() as u32 {
            let k = dc.dictionary().fixed_key(s).unwrap();
            if (5..=7).contains(&k) {
                dc.rhizome(s).or_into(&mut b2);
            }
        }
        let t3 = t.elapsed();
        let t = Instant::now();
        b.and_with(&b2);
        let t4 = t.elapsed();
        let t = Instant::now();
        let mut c = 0u64;
        let recs = store.column(2).records();
        b.for_each(|id| c += (recs.get(id as usize) < 20) as u64);
        let t5 = t.elapsed();
        println!("union shipdate {} syms {} ids: {:?}; for_each {:?}; union discount {} ids {:?}; and {:?}; probe {} {:?}", syms.len(), cnt, t1, t2, b2.count(), t3, t4, c, t5);
    }
}
