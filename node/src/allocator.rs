//! The C allocator's settings for a process that hosts shard replicas.
//!
//! A replica's memory is mostly vectors that only grow (Rhizome arenas and their entries,
//! dictionaries, record columns), from kilobytes to hundreds of megabytes. glibc serves a
//! request from its heaps below its mmap threshold, and raises that threshold, up to
//! 32 MiB, each time a larger mapped block is freed (a message buffer, a snapshot image).
//! Once raised, every vector below 32 MiB grows by copying itself into new memory, which
//! the kernel must fault in and zero: in the replicated ingest benchmark that was a fifth
//! of the nodes' CPU time in the kernel. A fixed threshold of 1 MiB keeps larger vectors in
//! mappings of their own, which `realloc` grows in place (`mremap`) without copying; a trim
//! threshold of 32 MiB keeps the heaps from handing back and faulting in again the memory
//! of the batches that come and go below it.
//!
//! Measured there (SF1, 3 nodes, three alternating runs): nodes' CPU per row and replica
//! 1.27–1.31 against 1.29–1.34 µs, peak RSS per node 2,161–2,260 against 2,302–2,421 MiB.
//!
//! The third module of the workspace with `unsafe`: the `mallopt` call.
#![allow(unsafe_code)]

/// Requests of at least this many bytes get mappings of their own.
const MMAP_THRESHOLD_BYTES: i32 = 1 << 20;
/// Free memory at the top of a heap is returned to the kernel past this many bytes.
const TRIM_THRESHOLD_BYTES: i32 = 32 << 20;

/// Set the allocator's thresholds (glibc on Linux; nothing elsewhere). Call it first thing
/// in `main`, before other threads start.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets glibc's allocator parameters under its own lock; it reads and
    // writes no memory of ours. Called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES);
    }
}
