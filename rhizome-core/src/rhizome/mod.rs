//! Rhizomes: append-only, delta-encoded lists of record ids, one per (column, value).
//!
//! API contract used by the rest of the crate (column shards, planner, segments). The
//! internals live in the submodules; see `codec.rs` for the byte layout.
//!
//! | file | what it holds |
//! |---|---|
//! | `codec.rs` | instruction format (diagram), canonical encoder, validating decoder |
//! | `skip.rs` | the two-level skip index |
//! | `decode.rs` | the full decode of a Rhizome, 32 bytes at a time (starts found without branches); `decode/avx512.rs`: 128 bytes at a time where the CPU has AVX-512 VBMI2 |
//! | `reader.rs` | [`RhizomeRef`], [`RhizomeIter`]: iterate, seek, count, bitmap kernels |
//! | `arena.rs` | [`RhizomeArena`]: many Rhizomes in one byte arena, deletes, compaction, segments |
//! | `bitmap.rs` | [`Bitmap`] |
//! | `kernels.rs` | [`kernels`]: intersect / union / difference |
//!
//! * [`RhizomeArena`] holds many Rhizomes of one column shard in one byte arena plus an
//!   offsets table: creating a Rhizome allocates nothing.
//! * [`RhizomeRef`] is a read-only view of one Rhizome: iterate, seek, count between,
//!   cardinality in O(1).
//! * [`Bitmap`] is a dense id set over `0..universe`, the planner's working set.
//! * [`kernels`] intersect / union / difference Rhizomes, with count-only variants.

mod arena;
mod bitmap;
mod codec;
mod decode;
pub mod kernels;
mod reader;
mod skip;

pub use arena::RhizomeArena;
pub use bitmap::Bitmap;
pub use codec::{decode_all, encode_ids};
pub use reader::{RhizomeIter, RhizomeRef};

pub type RecordId = u64;

/// Index of a Rhizome inside its arena (a column shard uses the value's symbol).
pub type RhizomeIndex = u32;

/// Tuning of a Rhizome arena.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArenaOptions {
    /// Compact a Rhizome when null bytes exceed this fraction of its bytes (default 0.4).
    pub hole_ratio_max: f64,
    /// Allow dense bitmap blocks inside the instruction stream (default true).
    pub dense_blocks: bool,
}

impl Default for ArenaOptions {
    fn default() -> Self {
        ArenaOptions {
            hole_ratio_max: 0.4,
            dense_blocks: true,
        }
    }
}

/// Size accounting of an arena, for metrics and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArenaStats {
    pub rhizome_count: u64,
    /// Bytes of instruction streams (live + null padding).
    pub encoded_bytes: u64,
    /// Null padding bytes left by deletes and not compacted yet.
    pub null_bytes: u64,
    /// Bytes of skip indexes.
    pub skip_bytes: u64,
    /// Bytes reserved by the arena (capacity, garbage from relocations, offsets table).
    pub allocated_bytes: u64,
}
