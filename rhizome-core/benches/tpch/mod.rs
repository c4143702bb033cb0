//! TPC-H `lineitem` for the core benchmarks: its 16 columns and a generated row as values.

use rhizome_core::shard::{ColumnDef, Schema};
use rhizome_core::value::{DataType, Value};
use tpchgen::generators::LineItem;

/// The columns of `lineitem`, in the order of its rows.
pub fn columns() -> Vec<(&'static str, DataType)> {
    let decimal = DataType::Decimal {
        precision: 15,
        scale: 2,
    };
    let text = |n| DataType::Text { max_chars: Some(n) };
    vec![
        ("l_orderkey", DataType::BigInt),
        ("l_partkey", DataType::BigInt),
        ("l_suppkey", DataType::BigInt),
        ("l_linenumber", DataType::Int),
        ("l_quantity", decimal),
        ("l_extendedprice", decimal),
        ("l_discount", decimal),
        ("l_tax", decimal),
        ("l_returnflag", text(1)),
        ("l_linestatus", text(1)),
        ("l_shipdate", DataType::Date),
        ("l_commitdate", DataType::Date),
        ("l_receiptdate", DataType::Date),
        ("l_shipinstruct", text(25)),
        ("l_shipmode", text(10)),
        ("l_comment", text(44)),
    ]
}

/// A schema of the given columns, none nullable.
pub fn schema_of(columns: &[(&str, DataType)]) -> Schema {
    Schema::new(
        columns
            .iter()
            .map(|(name, data_type)| ColumnDef {
                name: name.to_string(),
                data_type: *data_type,
                nullable: false,
            })
            .collect(),
    )
    .expect("lineitem schema is valid")
}

/// A generated row as the values of [`columns`].
pub fn row(l: &LineItem<'_>) -> Vec<Value> {
    let cents = |units: i64| Value::Decimal { units, scale: 2 };
    let text = |s: &str| Value::Text(s.to_string());
    vec![
        Value::Int(l.l_orderkey),
        Value::Int(l.l_partkey),
        Value::Int(l.l_suppkey),
        Value::Int(i64::from(l.l_linenumber)),
        cents(l.l_quantity * 100),
        cents(l.l_extendedprice.0),
        cents(l.l_discount.0),
        cents(l.l_tax.0),
        text(l.l_returnflag),
        text(l.l_linestatus),
        Value::Date(l.l_shipdate.to_unix_epoch()),
        Value::Date(l.l_commitdate.to_unix_epoch()),
        Value::Date(l.l_receiptdate.to_unix_epoch()),
        text(l.l_shipinstruct),
        text(l.l_shipmode),
        text(l.l_comment),
    ]
}
