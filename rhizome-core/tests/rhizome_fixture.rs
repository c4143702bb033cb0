//! The checked-in format fixture `tests/fixtures/rhizome-v1.bin` still decodes to the ids
//! listed here: a change to the Rhizome format must keep reading version-1 bytes.

use rhizome_core::rhizome::{ArenaOptions, RecordId, RhizomeArena};

const FIXTURE_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rhizome-v1.bin");

/// Rhizome 0: runs, and one add of every code length (1 to 10 bytes).
fn runs_and_all_add_sizes() -> Vec<RecordId> {
    let mut ids: Vec<RecordId> = vec![0, 1, 2, 3];
    ids.extend(200..=330); // a run longer than one increment byte
    let mut id = 330u64;
    for bits in [6u32, 13, 20, 27, 34, 41, 48, 55, 62] {
        id += (1u64 << bits) - 1; // the largest gap of each code length
        ids.push(id);
    }
    ids.push(u64::MAX); // a 10-byte add (gap > 2^62)
    ids
}

/// Rhizome 1: a 25%-dense window (a bitmap block), then a sparse tail.
fn dense_block_then_sparse() -> Vec<RecordId> {
    let mut ids: Vec<RecordId> = (8192..8192 + 4096).step_by(4).collect();
    ids.extend([20_000, 20_001, 30_000]);
    ids
}

/// Rhizome 2 before deletes (the DESIGN delete example); 17 is deleted, leaving a null.
fn with_nulls_before() -> Vec<RecordId> {
    std::iter::once(3)
        .chain(4..=13)
        .chain([17, 25, 27])
        .collect()
}

fn expected() -> Vec<Vec<RecordId>> {
    let mut third = with_nulls_before();
    third.retain(|&id| id != 17);
    vec![
        runs_and_all_add_sizes(),
        dense_block_then_sparse(),
        third,
        Vec::new(),
    ]
}

fn build() -> RhizomeArena {
    let options = ArenaOptions {
        hole_ratio_max: 0.9,
        dense_blocks: true,
    };
    let mut arena = RhizomeArena::new(options);
    for list in [
        runs_and_all_add_sizes(),
        dense_block_then_sparse(),
        with_nulls_before(),
        Vec::new(),
    ] {
        let r = arena.push();
        for id in list {
            arena.append(r, id).expect("ascending");
        }
    }
    assert!(arena.delete(2, 17).expect("delete"));
    arena
}

/// The fixture decodes to the listed ids, holds a bitmap block and null bytes, and the current
/// encoder still writes exactly these bytes.
#[test]
fn fixture_v1_decodes_to_expected_ids() {
    if std::env::var_os("RHIZOME_WRITE_FIXTURE").is_some() {
        let mut bytes = Vec::new();
        build().encode(&mut bytes);
        std::fs::write(FIXTURE_PATH, bytes).expect("write fixture");
    }
    let bytes = std::fs::read(FIXTURE_PATH).expect("fixture present");
    let arena = RhizomeArena::decode(&bytes, ArenaOptions::default()).expect("fixture decodes");
    let expected = expected();
    assert_eq!(arena.len(), expected.len());
    for (r, ids) in expected.iter().enumerate() {
        let got: Vec<RecordId> = arena.get(r as u32).iter().collect();
        assert_eq!(&got, ids, "Rhizome {r}");
        assert_eq!(arena.get(r as u32).cardinality(), ids.len() as u64);
    }
    assert!(arena.stats().null_bytes > 0, "fixture keeps delete padding");
    assert!(
        bytes.windows(2).any(|w| w == [0xC0, 0x00]),
        "fixture holds a bitmap block"
    );
    let mut again = Vec::new();
    build().encode(&mut again);
    assert_eq!(
        again, bytes,
        "encoder output changed: bump the format version"
    );
}
