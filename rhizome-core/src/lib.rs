//! `rhizome-core`: the Rhizome storage engine. No async, no network.
//!
//! A *Rhizome* is the ascending list of record ids that hold one value of one column,
//! delta-encoded as byte-aligned instructions (see [`rhizome`]). On top of it:
//!
//! | module | what it holds |
//! |---|---|
//! | [`error`] | the crate's one error type |
//! | [`rhizome`] | the Rhizome codec, arena, skip index, dense blocks, bitmaps and kernels |

pub mod error;
pub mod value;
pub mod rhizome;

pub use error::{Error, Result};
