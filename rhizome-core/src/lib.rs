//! `rhizome-core`: the Rhizome storage engine. No async, no network.
//!
//! A *Rhizome* is the ascending list of record ids that hold one value of one column,
//! delta-encoded as byte-aligned instructions (see [`rhizome`]). On top of it:
//!
//! | module | what it holds |
//! |---|---|
//! | [`error`] | the crate's one error type |
//! | [`rhizome`] | the Rhizome codec, arena, skip index, dense blocks, bitmaps and kernels |
//! | [`bytes`] | byte writer and reader for our own binary encodings (LE ints, varints, strings) |
//! | [`segment`] | immutable, checksummed segment files of named blocks; atomic file writes |

pub mod error;
pub mod value;
pub mod rhizome;
pub mod bytes;
pub mod segment;

pub use error::{Error, Result};
