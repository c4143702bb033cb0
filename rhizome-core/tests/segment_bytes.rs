//! The byte writer and reader: everything written reads back as written (against a list
//! of the values as the model), and bad input is corruption naming the block, never a panic.

use proptest::prelude::*;
use rhizome_core::bytes::{ByteReader, ByteWriter, VARINT_BYTES_MAX};
use rhizome_core::Error;

/// One value as written, the model the reader is checked against.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    U8(u8),
    U32(u32),
    U64(u64),
    I64(i64),
    Varint(u64),
    Bytes(Vec<u8>),
    Str(String),
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        any::<u8>().prop_map(Item::U8),
        any::<u32>().prop_map(Item::U32),
        any::<u64>().prop_map(Item::U64),
        any::<i64>().prop_map(Item::I64),
        any::<u64>().prop_map(Item::Varint),
        (0_u32..64)
            .prop_map(|bits| Item::Varint(1_u64.checked_shl(bits).unwrap_or(0).wrapping_sub(1))),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Item::Bytes),
        ".{0,12}".prop_map(Item::Str),
    ]
}

fn write(items: &[Item]) -> Vec<u8> {
    let mut writer = ByteWriter::new();
    for item in items {
        match item {
            Item::U8(v) => writer.put_u8(*v),
            Item::U32(v) => writer.put_u32(*v),
            Item::U64(v) => writer.put_u64(*v),
            Item::I64(v) => writer.put_i64(*v),
            Item::Varint(v) => writer.put_varint(*v),
            Item::Bytes(v) => writer.put_bytes(v),
            Item::Str(v) => writer.put_str(v),
        }
    }
    assert_eq!(writer.len(), writer.as_slice().len());
    writer.into_inner()
}

/// Read items shaped like `shape` (the values in `shape` are ignored).
fn read(bytes: &[u8], shape: &[Item]) -> Result<Vec<Item>, Error> {
    let mut reader = ByteReader::new(bytes, "test-block");
    let mut items = Vec::new();
    for item in shape {
        items.push(match item {
            Item::U8(_) => Item::U8(reader.u8()?),
            Item::U32(_) => Item::U32(reader.u32()?),
            Item::U64(_) => Item::U64(reader.u64()?),
            Item::I64(_) => Item::I64(reader.i64()?),
            Item::Varint(_) => Item::Varint(reader.varint()?),
            Item::Bytes(_) => Item::Bytes(reader.bytes()?.to_vec()),
            Item::Str(_) => Item::Str(reader.str()?.to_string()),
        });
    }
    reader.expect_end()?;
    Ok(items)
}

fn assert_corruption_in_block(error: Error) {
    match error {
        Error::Corruption { block, .. } => assert_eq!(block, "test-block"),
        other => panic!("expected corruption, got {other:?}"),
    }
}

proptest! {
    /// Whatever is written reads back identically, and every truncation is corruption.
    #[test]
    fn write_then_read_round_trips(items in prop::collection::vec(item(), 0..20)) {
        let bytes = write(&items);
        prop_assert_eq!(read(&bytes, &items).expect("round trip"), items.clone());
        for length in 0..bytes.len() {
            if items.is_empty() { break; }
            match read(&bytes[..length], &items) {
                Err(e) => assert_corruption_in_block(e),
                Ok(_) => prop_assert!(false, "truncated to {} of {} bytes still read", length, bytes.len()),
            }
        }
    }

    /// Arbitrary bytes read as any shape give values or corruption, never a panic.
    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64), shape in prop::collection::vec(item(), 0..10)) {
        if let Err(e) = read(&bytes, &shape) {
            assert_corruption_in_block(e);
        }
    }
}

/// Varints take the documented sizes and reject overlong or overflowing encodings.
#[test]
fn varint_edges() {
    let size = |v: u64| {
        let mut writer = ByteWriter::new();
        writer.put_varint(v);
        writer.len()
    };
    assert_eq!(size(0), 1);
    assert_eq!(size(127), 1);
    assert_eq!(size(128), 2);
    assert_eq!(size(u64::MAX), VARINT_BYTES_MAX);

    let eleven_bytes = [0x80_u8; 10]
        .iter()
        .copied()
        .chain([0x00])
        .collect::<Vec<_>>();
    assert_corruption_in_block(
        ByteReader::new(&eleven_bytes, "test-block")
            .varint()
            .expect_err("overlong"),
    );
    let overflowing = [0xff_u8; 9]
        .iter()
        .copied()
        .chain([0x02])
        .collect::<Vec<_>>();
    assert_corruption_in_block(
        ByteReader::new(&overflowing, "test-block")
            .varint()
            .expect_err("beyond 64 bits"),
    );
    let max = [0xff_u8; 9]
        .iter()
        .copied()
        .chain([0x01])
        .collect::<Vec<_>>();
    assert_eq!(
        ByteReader::new(&max, "test-block")
            .varint()
            .expect("u64::MAX"),
        u64::MAX
    );
}

/// A declared length beyond the buffer and invalid UTF-8 are corruption.
#[test]
fn bad_lengths_and_utf8() {
    let mut writer = ByteWriter::new();
    writer.put_varint(u64::MAX);
    writer.put_u8(1);
    let bytes = writer.into_inner();
    let error = ByteReader::new(&bytes, "test-block")
        .bytes()
        .expect_err("length too big");
    assert!(
        error.to_string().contains("exceeds the 1 remaining bytes"),
        "{error}"
    );

    let mut writer = ByteWriter::new();
    writer.put_bytes(&[0xff, 0xfe]);
    let bytes = writer.into_inner();
    let error = ByteReader::new(&bytes, "test-block")
        .str()
        .expect_err("not UTF-8");
    assert!(error.to_string().contains("invalid UTF-8"), "{error}");

    let mut reader = ByteReader::new(&[1, 2, 3], "test-block");
    assert_eq!(reader.remaining(), 3);
    assert_corruption_in_block(reader.u32().expect_err("3 bytes are not a u32"));
    assert_eq!(reader.u8().expect("one byte"), 1);
    assert!(reader.expect_end().is_err());
    assert_eq!(reader.position(), 1);
}
