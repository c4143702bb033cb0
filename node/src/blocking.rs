//! Where the node runs its disk and CPU-heavy steps (log fsyncs, applies, snapshots): on
//! tokio's blocking pool, so runtime workers stay free for heartbeats and RPCs — or, on a
//! thread that asked for it, inline.
//!
//! A deterministic simulation runs every host's runtime on one thread in an order fixed by its
//! seed; a step on the blocking pool would finish on another thread at a moment no seed
//! decides. The simulation calls [`run_inline_on_this_thread`] on its thread before it starts;
//! the switch is per thread, so other tests in the same process are not affected.

use std::cell::Cell;

thread_local! {
    static INLINE: Cell<bool> = const { Cell::new(false) };
}

/// From now on, blocking steps started from futures polled on this thread run inline.
pub fn run_inline_on_this_thread(inline: bool) {
    INLINE.with(|cell| cell.set(inline));
}

/// Whether blocking steps started on this thread run inline.
pub fn runs_inline() -> bool {
    INLINE.with(Cell::get)
}

/// A blocking step that panicked or was cancelled.
#[derive(Debug, thiserror::Error)]
#[error("blocking step failed: {0}")]
pub struct BlockingError(String);

/// Run `work` on the blocking pool, or inline where this thread asked for it.
pub async fn run<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BlockingError> {
    if runs_inline() {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| BlockingError(e.to_string()))
}
