//! Immutable, checksummed segment files (DESIGN §3).
//!
//! A segment file holds named blocks — a column shard's dictionary, Rhizome arena, skip
//! index, record column, … — each checksummed with CRC32C, then a block directory and a
//! fixed-size, versioned footer:
//!
//! ```text
//! offset 0
//! ┌───────────────────────────────────────────┐
//! │ block 0 bytes                             │ length₀
//! │ crc32c(block 0 bytes)          u32 LE     │ 4
//! │ block 1 bytes                             │ length₁
//! │ crc32c(block 1 bytes)          u32 LE     │ 4
//! │ …                                         │
//! ├───────────────────────────────────────────┤ directory_offset
//! │ directory                                 │ directory_length
//! │   block count                  varint     │
//! │   per block, in file order:               │
//! │     name                       str        │ (varint length + UTF-8)
//! │     offset                     varint     │
//! │     length                     varint     │
//! │     crc32c of the block        u32 LE     │
//! │ crc32c(directory bytes)        u32 LE     │ 4
//! ├───────────────────────────────────────────┤ file length − FOOTER_BYTES
//! │ footer                                    │ FOOTER_BYTES = 64
//! │   directory_offset             u64 LE     │ 8
//! │   directory_length             u64 LE     │ 8
//! │   kind length                  u8         │ 1
//! │   kind, UTF-8, zero-padded                │ KIND_BYTES_MAX = 31
//! │   crc32c(the other 60 footer bytes)       │ 4
//! │   format version               u32 LE     │ 4
//! │   magic "RHZSEGMT"                        │ 8
//! └───────────────────────────────────────────┘
//! ```
//!
//! Blocks sit back to back from offset 0 and the directory follows the last one, so
//! [`Segment::open`] checks that the directory's offsets tile the file exactly. The version
//! and magic sit at the very end, where a future format that changes the rest of the footer
//! can still be recognised. Every byte of the file is covered by a checksum or a check: any
//! single corrupted byte makes `open` fail with [`Error::Corruption`].
//!
//! Files are written to `<path>.tmp`, fsynced, renamed over `<path>` and the directory
//! fsynced ([`write_atomic`]), so a crash leaves either the old file or the new one.

use crate::bytes::{ByteReader, ByteWriter};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The format [`SegmentWriter`] writes and the newest [`Segment::open`] reads.
pub const SEGMENT_FORMAT_VERSION: u32 = 1;
/// The last 8 bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"RHZSEGMT";
/// Longest segment kind, in UTF-8 bytes.
pub const KIND_BYTES_MAX: usize = 31;

const CRC_BYTES: usize = 4;
const FOOTER_DIRECTORY_OFFSET_AT: usize = 0;
const FOOTER_DIRECTORY_LENGTH_AT: usize = FOOTER_DIRECTORY_OFFSET_AT + 8;
const FOOTER_KIND_LENGTH_AT: usize = FOOTER_DIRECTORY_LENGTH_AT + 8;
const FOOTER_KIND_AT: usize = FOOTER_KIND_LENGTH_AT + 1;
const FOOTER_CRC_AT: usize = FOOTER_KIND_AT + KIND_BYTES_MAX;
const FOOTER_VERSION_AT: usize = FOOTER_CRC_AT + CRC_BYTES;
const FOOTER_MAGIC_AT: usize = FOOTER_VERSION_AT + 4;
/// Size of the fixed footer at the end of every segment file.
pub const FOOTER_BYTES: usize = FOOTER_MAGIC_AT + SEGMENT_MAGIC.len();
const _: () = assert!(
    FOOTER_BYTES == 64,
    "the footer layout drawn above is 64 bytes"
);

/// Block names used in corruption errors for the parts that are not blocks.
const FOOTER_BLOCK: &str = "footer";
const DIRECTORY_BLOCK: &str = "directory";
/// Buffer size for streaming a segment to disk.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// Collects named blocks and writes them as one segment file.
#[derive(Debug)]
pub struct SegmentWriter {
    /// Where [`SegmentWriter::finish`] puts the file.
    path: PathBuf,
    /// What the segment holds (e.g. `"column-shard"`), checked when opening.
    kind: String,
    /// Blocks in file order.
    blocks: Vec<(String, Vec<u8>)>,
}

impl SegmentWriter {
    /// A writer for a segment of `kind` (at most [`KIND_BYTES_MAX`] bytes, checked by
    /// `finish`) at `path`. Nothing touches the disk before `finish`.
    pub fn new(path: &Path, kind: &str) -> Self {
        SegmentWriter {
            path: path.to_path_buf(),
            kind: kind.to_string(),
            blocks: Vec::new(),
        }
    }

    /// Append a block. Names must be unique; `finish` rejects duplicates.
    pub fn add_block(&mut self, name: &str, bytes: Vec<u8>) {
        debug_assert!(
            self.blocks.iter().all(|(existing, _)| existing != name),
            "duplicate segment block {name:?}"
        );
        self.blocks.push((name.to_string(), bytes));
    }

    /// Write the segment atomically (see [`write_atomic`]) and return its size in bytes.
    /// On failure no file at the path has changed and no `.tmp` file is left behind.
    pub fn finish(self) -> Result<u64> {
        if self.kind.len() > KIND_BYTES_MAX {
            return Err(Error::InvalidArgument(format!(
                "segment kind {:?} is {} bytes, longer than {KIND_BYTES_MAX}",
                self.kind,
                self.kind.len()
            )));
        }
        let mut names = std::collections::HashSet::new();
        if let Some((name, _)) = self.blocks.iter().find(|(name, _)| !names.insert(name)) {
            return Err(Error::InvalidArgument(format!(
                "duplicate segment block {name:?}"
            )));
        }

        let mut directory = ByteWriter::new();
        directory.put_varint(self.blocks.len() as u64);
        let mut offset: u64 = 0;
        for (name, bytes) in &self.blocks {
            directory.put_str(name);
            directory.put_varint(offset);
            directory.put_varint(bytes.len() as u64);
            directory.put_u32(crc32c::crc32c(bytes));
            offset += (bytes.len() + CRC_BYTES) as u64;
        }
        let directory = directory.into_inner();
        let directory_offset = offset;
        let footer = encode_footer(
            directory_offset,
            directory.len() as u64,
            &self.kind,
            SEGMENT_FORMAT_VERSION,
        );
        let total_bytes = directory_offset + (directory.len() + CRC_BYTES + FOOTER_BYTES) as u64;

        write_atomic_with(&self.path, |out| {
            for (_, bytes) in &self.blocks {
                out.write_all(bytes)?;
                out.write_all(&crc32c::crc32c(bytes).to_le_bytes())?;
            }
            out.write_all(&directory)?;
            out.write_all(&crc32c::crc32c(&directory).to_le_bytes())?;
            out.write_all(&footer)
        })?;
        Ok(total_bytes)
    }
}

/// The 64 footer bytes, checksummed.
fn encode_footer(
    directory_offset: u64,
    directory_length: u64,
    kind: &str,
    version: u32,
) -> [u8; FOOTER_BYTES] {
    let mut footer = [0_u8; FOOTER_BYTES];
    footer[FOOTER_DIRECTORY_OFFSET_AT..FOOTER_DIRECTORY_LENGTH_AT]
        .copy_from_slice(&directory_offset.to_le_bytes());
    footer[FOOTER_DIRECTORY_LENGTH_AT..FOOTER_KIND_LENGTH_AT]
        .copy_from_slice(&directory_length.to_le_bytes());
    let kind_length = kind.len().min(KIND_BYTES_MAX);
    footer[FOOTER_KIND_LENGTH_AT] = kind_length as u8;
    footer[FOOTER_KIND_AT..FOOTER_KIND_AT + kind_length]
        .copy_from_slice(&kind.as_bytes()[..kind_length]);
    footer[FOOTER_VERSION_AT..FOOTER_MAGIC_AT].copy_from_slice(&version.to_le_bytes());
    footer[FOOTER_MAGIC_AT..].copy_from_slice(&SEGMENT_MAGIC);
    let crc = footer_crc(&footer);
    footer[FOOTER_CRC_AT..FOOTER_VERSION_AT].copy_from_slice(&crc.to_le_bytes());
    footer
}

/// CRC32C of every footer byte except the CRC field itself.
fn footer_crc(footer: &[u8; FOOTER_BYTES]) -> u32 {
    let before = crc32c::crc32c(&footer[..FOOTER_CRC_AT]);
    crc32c::crc32c_append(before, &footer[FOOTER_VERSION_AT..])
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut array = [0_u8; 4];
    array.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(array)
}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut array = [0_u8; 8];
    array.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(array)
}

/// One block of an open segment.
#[derive(Debug)]
struct BlockEntry {
    name: String,
    /// Byte range of the block's contents (without its CRC) in the file.
    range: std::ops::Range<usize>,
}

/// An open, fully verified segment file, held in memory.
#[derive(Debug)]
pub struct Segment {
    /// The file it was read from, named in errors.
    path: PathBuf,
    /// The kind recorded in the footer.
    kind: String,
    /// The whole file.
    data: Vec<u8>,
    /// Blocks in file order.
    blocks: Vec<BlockEntry>,
    /// Block name → index in `blocks`.
    index: HashMap<String, usize>,
}

impl Segment {
    /// Read and verify a segment file: magic, version, footer, directory and every block's
    /// CRC32C. A mismatch, a truncated or empty file is [`Error::Corruption`] naming the file
    /// and the block (`"footer"`, `"directory"` or the block's name); a newer format version
    /// is a corruption of the footer whose reason says so.
    pub fn open(path: &Path) -> Result<Segment> {
        let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Segment::decode(path, data).map_err(|e| e.in_file(path))
    }

    fn decode(path: &Path, data: Vec<u8>) -> Result<Segment> {
        let footer_start = data.len().checked_sub(FOOTER_BYTES).ok_or_else(|| {
            Error::corrupt(
                FOOTER_BLOCK,
                format!(
                    "file of {} bytes is shorter than the {FOOTER_BYTES}-byte footer",
                    data.len()
                ),
            )
        })?;
        let mut footer = [0_u8; FOOTER_BYTES];
        footer.copy_from_slice(&data[footer_start..]);
        let (directory_offset, directory_length, kind) = decode_footer(&footer)?;

        let directory_end = directory_offset
            .checked_add(directory_length)
            .and_then(|end| end.checked_add(CRC_BYTES as u64))
            .filter(|end| *end == footer_start as u64)
            .ok_or_else(|| {
                Error::corrupt(
                    FOOTER_BLOCK,
                    format!(
                        "directory at {directory_offset} of {directory_length} bytes plus its \
                         checksum does not end where the footer starts ({footer_start})"
                    ),
                )
            })?;
        // Both fit in usize: they are at most footer_start.
        let directory_offset = directory_offset as usize;
        let directory_crc_at = directory_end as usize - CRC_BYTES;
        let directory = &data[directory_offset..directory_crc_at];
        let stored = le_u32(&data, directory_crc_at);
        let computed = crc32c::crc32c(directory);
        if stored != computed {
            return Err(Error::corrupt(
                DIRECTORY_BLOCK,
                format!("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"),
            ));
        }

        let blocks = decode_directory(directory, directory_offset)?;
        let mut index = HashMap::with_capacity(blocks.len());
        for (position, (block, crc)) in blocks.iter().enumerate() {
            if index.insert(block.name.clone(), position).is_some() {
                return Err(Error::corrupt(
                    DIRECTORY_BLOCK,
                    format!("duplicate block {:?}", block.name),
                ));
            }
            let computed = crc32c::crc32c(&data[block.range.clone()]);
            let trailing = le_u32(&data, block.range.end);
            if computed != *crc || trailing != *crc {
                return Err(Error::corrupt(
                    block.name.as_str(),
                    format!(
                        "checksum mismatch: directory says {crc:#010x}, block trailer says \
                         {trailing:#010x}, contents give {computed:#010x}"
                    ),
                ));
            }
        }
        let blocks = blocks.into_iter().map(|(block, _)| block).collect();
        Ok(Segment {
            path: path.to_path_buf(),
            kind,
            data,
            blocks,
            index,
        })
    }

    /// The kind the writer recorded.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The contents of a block; a missing block is corruption naming it.
    pub fn block(&self, name: &str) -> Result<&[u8]> {
        match self
            .index
            .get(name)
            .and_then(|position| self.blocks.get(*position))
        {
            Some(block) => Ok(&self.data[block.range.clone()]),
            None => Err(Error::Corruption {
                file: self.path.clone(),
                block: name.to_string(),
                reason: "block missing from segment".to_string(),
            }),
        }
    }

    /// Block names in file order.
    pub fn block_names(&self) -> impl Iterator<Item = &str> {
        self.blocks.iter().map(|block| block.name.as_str())
    }

    /// The file this segment was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Check magic, checksum and version; return directory offset, length and kind.
fn decode_footer(footer: &[u8; FOOTER_BYTES]) -> Result<(u64, u64, String)> {
    let corrupt = |reason: String| Error::corrupt(FOOTER_BLOCK, reason);
    if footer[FOOTER_MAGIC_AT..] != SEGMENT_MAGIC {
        return Err(corrupt("bad magic: not a Rhizome segment file".to_string()));
    }
    let version = le_u32(footer, FOOTER_VERSION_AT);
    let stored = le_u32(footer, FOOTER_CRC_AT);
    let computed = footer_crc(footer);
    if stored != computed {
        let hint = if version == SEGMENT_FORMAT_VERSION {
            String::new()
        } else {
            format!(
                " (format version field reads {version}; supported is {SEGMENT_FORMAT_VERSION})"
            )
        };
        return Err(corrupt(format!(
            "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}{hint}"
        )));
    }
    if version > SEGMENT_FORMAT_VERSION {
        return Err(corrupt(format!(
            "segment format version {version} is newer than the supported version \
             {SEGMENT_FORMAT_VERSION}: written by a newer Rhizome"
        )));
    }
    if version != SEGMENT_FORMAT_VERSION {
        return Err(corrupt(format!("unknown segment format version {version}")));
    }
    let kind_length = usize::from(footer[FOOTER_KIND_LENGTH_AT]);
    if kind_length > KIND_BYTES_MAX {
        return Err(corrupt(format!(
            "kind length {kind_length} exceeds {KIND_BYTES_MAX}"
        )));
    }
    let kind_field = &footer[FOOTER_KIND_AT..FOOTER_CRC_AT];
    if kind_field[kind_length..].iter().any(|b| *b != 0) {
        return Err(corrupt("non-zero padding after the kind".to_string()));
    }
    let kind = std::str::from_utf8(&kind_field[..kind_length])
        .map_err(|e| corrupt(format!("kind is not UTF-8: {e}")))?;
    Ok((
        le_u64(footer, FOOTER_DIRECTORY_OFFSET_AT),
        le_u64(footer, FOOTER_DIRECTORY_LENGTH_AT),
        kind.to_string(),
    ))
}

/// Parse the directory and check that its blocks tile `0..blocks_end` exactly.
fn decode_directory(directory: &[u8], blocks_end: usize) -> Result<Vec<(BlockEntry, u32)>> {
    let mut reader = ByteReader::new(directory, DIRECTORY_BLOCK);
    let count = reader.varint()?;
    let mut blocks = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(directory.len()));
    let mut expected_offset: usize = 0;
    for _ in 0..count {
        let name = reader.str()?.to_string();
        let offset = reader.varint()?;
        let length = reader.varint()?;
        let crc = reader.u32()?;
        let end = usize::try_from(length)
            .ok()
            .and_then(|length| expected_offset.checked_add(length))
            .filter(|end| {
                offset == expected_offset as u64
                    && end
                        .checked_add(CRC_BYTES)
                        .is_some_and(|with_crc| with_crc <= blocks_end)
            })
            .ok_or_else(|| {
                reader.corruption(format!(
                    "block {name:?} at {offset} of {length} bytes does not follow the previous \
                     block (expected offset {expected_offset}) within {blocks_end} bytes"
                ))
            })?;
        blocks.push((
            BlockEntry {
                name,
                range: expected_offset..end,
            },
            crc,
        ));
        expected_offset = end + CRC_BYTES;
    }
    reader.expect_end()?;
    if expected_offset != blocks_end {
        return Err(Error::corrupt(
            DIRECTORY_BLOCK,
            format!("blocks end at {expected_offset} but the directory starts at {blocks_end}"),
        ));
    }
    Ok(blocks)
}

/// Write `bytes` to `path` atomically: write `<path>.tmp`, fsync it, rename it over
/// `path`, fsync the directory. On failure `path` is unchanged and the temp file removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |out| out.write_all(bytes))
}

/// `<path>.tmp`.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".tmp");
    PathBuf::from(name)
}

/// [`write_atomic`] with the contents streamed by `write`.
fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    let temp = temp_path(path);
    let written = (|| {
        let file = File::create(&temp)?;
        let mut out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
        write(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        crate::durable::file_synced(&temp, &file);
        std::fs::rename(&temp, path)?;
        crate::durable::renamed(&temp, path);
        Ok(())
    })();
    if let Err(e) = written {
        // The temp file may not exist (create failed); either way nothing else to undo.
        let _ = std::fs::remove_file(&temp);
        return Err(Error::io(path, e));
    }
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    fsync_dir(parent)
}

/// Make a directory's entries (a rename, a new file) durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    // Off unix, directories cannot be opened for syncing; renames are durable on their own.
    crate::durable::sync_dir(dir).map_err(|e| Error::io(dir, e))
}
