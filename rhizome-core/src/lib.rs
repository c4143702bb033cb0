//! `rhizome-core`: the Rhizome storage engine. No async, no network.
//!
//! A *Rhizome* is the ascending list of record ids that hold one value of one column,
//! delta-encoded as byte-aligned instructions (see [`rhizome`]). On top of it:
//!
//! | module | what it holds |
//! |---|---|
//! | [`error`] | the crate's one error type |
//! | [`value`] | column types, values, parsing and rendering, order-preserving keys, LIKE |
//! | [`rhizome`] | the Rhizome codec, arena, skip index, dense blocks, bitmaps and kernels |
//! | `byte_set` | a set of one-byte symbols checked 64 records at a time (SIMD) |
//! | [`batch`] | a batch of rows held by column: what an insert carries to the replicas |
//! | [`bytes`] | little helpers for our binary encodings |
//! | [`segment`] | immutable checksummed segment files, atomic writes |
//! | [`durable`] | what a crash would keep: fsynced lengths and directory entries, recorded for a simulation |
//! | [`dictionary`] | a column shard's value ↔ symbol dictionary with ordered access |
//! | [`record_column`] | the forward index: symbol per local record id |
//! | [`column`] | a column shard: dictionary + Rhizomes + record column |
//! | [`query`] | shard queries (conditions, aggregates, groups) and mergeable partials |
//! | [`planner`] | evaluates a shard query: Rhizome walks vs record-column probes |
//! | [`aggregate`] | grouped aggregation over a selection, on symbols |
//! | [`shard`] | the shard store: schema, batches, deletes, queries, save/open over spindles |

pub mod aggregate;
pub mod batch;
mod byte_set;
pub mod bytes;
pub mod column;
pub mod dictionary;
pub mod durable;
pub mod error;
pub mod planner;
pub mod prefetch;
pub mod query;
pub mod record_column;
pub mod rhizome;
pub mod segment;
pub mod shard;
mod symbol_index;
pub mod value;

pub use error::{Error, Result};
