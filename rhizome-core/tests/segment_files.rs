//! Segment files: blocks written read back unchanged, and any damage to the file (a flipped
//! byte anywhere, a truncation, a newer version) is an error naming the file, never a panic.

use proptest::prelude::*;
use rhizome_core::segment::{
    fsync_dir, write_atomic, Segment, SegmentWriter, FOOTER_BYTES, SEGMENT_FORMAT_VERSION,
};
use rhizome_core::Error;
use std::path::{Path, PathBuf};

const KIND: &str = "column-shard";

fn write_segment(path: &Path, blocks: &[(String, Vec<u8>)]) -> u64 {
    let mut writer = SegmentWriter::new(path, KIND);
    for (name, bytes) in blocks {
        writer.add_block(name, bytes.clone());
    }
    writer.finish().expect("segment written")
}

/// The model check: the segment holds exactly `blocks`, in order.
fn assert_holds(segment: &Segment, blocks: &[(String, Vec<u8>)]) {
    assert_eq!(segment.kind(), KIND);
    let names: Vec<&str> = segment.block_names().collect();
    let expected: Vec<&str> = blocks.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, expected);
    for (name, bytes) in blocks {
        assert_eq!(
            segment.block(name).expect("block present"),
            bytes.as_slice(),
            "block {name}"
        );
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list dir")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

fn small_blocks() -> Vec<(String, Vec<u8>)> {
    vec![
        ("dictionary".to_string(), b"apple\0banana\0cherry".to_vec()),
        ("empty".to_string(), Vec::new()),
        ("arena".to_string(), (0_u8..40).collect()),
    ]
}

/// `open` must fail with corruption naming `path`.
fn assert_corruption(result: Result<Segment, Error>, path: &Path, what: &str) -> (String, String) {
    match result {
        Err(Error::Corruption {
            file,
            block,
            reason,
        }) => {
            assert_eq!(file, path, "{what}: error names the file");
            (block, reason)
        }
        Err(other) => panic!("{what}: expected corruption, got {other:?}"),
        Ok(_) => panic!("{what}: damaged segment opened"),
    }
}

/// Many blocks, empty blocks and a large block read back exactly; the size returned is the
/// file's size; no `.tmp` file is left.
#[test]
fn round_trip_many_empty_and_large_blocks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("shard-0.seg");
    let mut blocks: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| {
            (
                format!("block-{i}"),
                (0..i * 7).map(|j| (j * 31 + i) as u8).collect(),
            )
        })
        .collect();
    blocks.push(("empty-a".to_string(), Vec::new()));
    blocks.push(("ünïcödé 日本".to_string(), vec![0xff; 3]));
    blocks.push(("empty-b".to_string(), Vec::new()));
    let large: Vec<u8> = (0..5_000_000_u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    blocks.push(("large".to_string(), large));

    let written = write_segment(&path, &blocks);
    assert_eq!(written, std::fs::metadata(&path).expect("metadata").len());
    assert_eq!(files_in(dir.path()), vec!["shard-0.seg".to_string()]);

    let segment = Segment::open(&path).expect("opens");
    assert_eq!(segment.path(), path);
    assert_holds(&segment, &blocks);
}

/// A segment without blocks is valid.
#[test]
fn round_trip_no_blocks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("empty.seg");
    assert_eq!(write_segment(&path, &[]), FOOTER_BYTES as u64 + 1 + 4);
    let segment = Segment::open(&path).expect("opens");
    assert_holds(&segment, &[]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary blocks read back exactly.
    #[test]
    fn round_trip_arbitrary_blocks(
        contents in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..12),
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("p.seg");
        let blocks: Vec<(String, Vec<u8>)> =
            contents.into_iter().enumerate().map(|(i, bytes)| (format!("b{i}"), bytes)).collect();
        write_segment(&path, &blocks);
        assert_holds(&Segment::open(&path).expect("opens"), &blocks);
    }
}

/// Flipping any bits of any single byte makes `open` fail with corruption naming the file.
#[test]
fn every_flipped_byte_is_corruption() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("small.seg");
    write_segment(&path, &small_blocks());
    let original = std::fs::read(&path).expect("read");
    let damaged = dir.path().join("damaged.seg");
    for position in 0..original.len() {
        for mask in [0x01_u8, 0x80, 0xff] {
            let mut bytes = original.clone();
            bytes[position] ^= mask;
            std::fs::write(&damaged, &bytes).expect("write damaged copy");
            let what = format!("byte {position} ^ {mask:#04x}");
            let (block, reason) = assert_corruption(Segment::open(&damaged), &damaged, &what);
            assert!(!block.is_empty() && !reason.is_empty(), "{what}");
        }
    }
}

/// Damage inside a block's contents names that block.
#[test]
fn damaged_block_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("small.seg");
    write_segment(&path, &small_blocks());
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[2] ^= 0x10; // inside "dictionary", the first block
    std::fs::write(&path, &bytes).expect("write");
    let (block, reason) = assert_corruption(Segment::open(&path), &path, "damaged dictionary");
    assert_eq!(block, "dictionary");
    assert!(reason.contains("checksum mismatch"), "{reason}");
}

/// A file cut at every length, including empty, is corruption.
#[test]
fn every_truncation_is_corruption() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("small.seg");
    write_segment(&path, &small_blocks());
    let original = std::fs::read(&path).expect("read");
    let truncated = dir.path().join("truncated.seg");
    for length in 0..original.len() {
        std::fs::write(&truncated, &original[..length]).expect("write truncated copy");
        assert_corruption(
            Segment::open(&truncated),
            &truncated,
            &format!("length {length}"),
        );
    }
    let mut extended = original.clone();
    extended.insert(0, 0);
    std::fs::write(&truncated, &extended).expect("write extended copy");
    assert_corruption(Segment::open(&truncated), &truncated, "one byte prepended");
}

/// A file claiming format version 2 (with a valid footer checksum) says it is too new.
#[test]
fn newer_version_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("v2.seg");
    write_segment(&path, &small_blocks());
    let mut bytes = std::fs::read(&path).expect("read");
    // Footer layout as documented: ... crc32c u32 at 48, version u32 at 52, magic at 56.
    let footer_start = bytes.len() - FOOTER_BYTES;
    let footer = &mut bytes[footer_start..];
    footer[52..56].copy_from_slice(&(SEGMENT_FORMAT_VERSION + 1).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&footer[..48]), &footer[52..]);
    footer[48..52].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &bytes).expect("write");
    let (block, reason) = assert_corruption(Segment::open(&path), &path, "version 2");
    assert_eq!(block, "footer");
    assert!(
        reason.contains("version 2 is newer than the supported version 1"),
        "{reason}"
    );
}

/// A missing block is corruption naming the block; a missing file is an I/O error.
#[test]
fn missing_block_and_missing_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("small.seg");
    write_segment(&path, &small_blocks());
    let segment = Segment::open(&path).expect("opens");
    match segment.block("skip-index") {
        Err(Error::Corruption { file, block, .. }) => {
            assert_eq!(file, path);
            assert_eq!(block, "skip-index");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    assert!(matches!(
        Segment::open(&dir.path().join("absent.seg")),
        Err(Error::Io { .. })
    ));
    std::fs::write(&path, b"not a segment").expect("write");
    assert_corruption(Segment::open(&path), &path, "short garbage");
}

/// A failed write leaves the target unchanged and no `.tmp` behind.
#[test]
fn failed_finish_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The parent directory does not exist.
    let orphan = dir.path().join("missing-dir").join("x.seg");
    let mut writer = SegmentWriter::new(&orphan, KIND);
    writer.add_block("a", vec![1, 2, 3]);
    assert!(matches!(writer.finish(), Err(Error::Io { .. })));
    assert!(files_in(dir.path()).is_empty());

    // The target is a non-empty directory: the rename fails, the directory survives.
    let occupied = dir.path().join("occupied");
    std::fs::create_dir(&occupied).expect("mkdir");
    std::fs::write(occupied.join("keep"), b"keep").expect("write");
    let mut writer = SegmentWriter::new(&occupied, KIND);
    writer.add_block("a", vec![1, 2, 3]);
    assert!(writer.finish().is_err());
    assert_eq!(files_in(dir.path()), vec!["occupied".to_string()]);
    assert_eq!(std::fs::read(occupied.join("keep")).expect("read"), b"keep");

    // A kind longer than the footer holds is rejected before touching the disk.
    let path = dir.path().join("k.seg");
    let writer = SegmentWriter::new(&path, &"k".repeat(32));
    assert!(matches!(writer.finish(), Err(Error::InvalidArgument(_))));
    assert!(!path.exists());
}

/// Replacing a segment is atomic: readers see the old or the new file, and the new one
/// replaces the old completely.
#[test]
fn finish_replaces_an_existing_segment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.seg");
    write_segment(&path, &small_blocks());
    let replacement = vec![("only".to_string(), vec![9; 10])];
    write_segment(&path, &replacement);
    assert_holds(&Segment::open(&path).expect("opens"), &replacement);
    assert_eq!(files_in(dir.path()), vec!["s.seg".to_string()]);
}

/// `write_atomic` writes and overwrites small files without leaving a temp file.
#[test]
fn write_atomic_writes_and_overwrites() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path: PathBuf = dir.path().join("MANIFEST");
    write_atomic(&path, b"first").expect("write");
    write_atomic(&path, b"second, longer").expect("overwrite");
    assert_eq!(std::fs::read(&path).expect("read"), b"second, longer");
    assert_eq!(files_in(dir.path()), vec!["MANIFEST".to_string()]);
    fsync_dir(dir.path()).expect("fsync dir");
    assert!(matches!(
        fsync_dir(&dir.path().join("absent")),
        Err(Error::Io { .. })
    ));
}

/// Duplicate block names are refused (release builds; debug builds assert in `add_block`).
#[cfg(not(debug_assertions))]
#[test]
fn duplicate_block_names_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut writer = SegmentWriter::new(&dir.path().join("d.seg"), KIND);
    writer.add_block("a", vec![1]);
    writer.add_block("a", vec![2]);
    assert!(matches!(writer.finish(), Err(Error::InvalidArgument(_))));
}
