//! Asking the CPU to bring memory into cache before it is used.
//!
//! Appending a batch to a column of many values touches one random Rhizome entry, one
//! random region and one random slot of the dictionary's index per row: each a cache miss
//! of a hundred nanoseconds or so when a node holds gigabytes. The rows to come are known,
//! so their memory is asked for a few rows ahead and the misses overlap instead of
//! following one another.
//!
//! The second module of the workspace with `unsafe` (after the AVX-512 decoder): the
//! prefetch instruction, which reads nothing into the program, changes no memory and never
//! faults, at an address taken from a reference.
#![allow(unsafe_code)]

/// Hint that `value` will be read or written soon. Does nothing on other architectures.
#[inline(always)]
pub fn prefetch<T: ?Sized>(value: &T) {
    prefetch_address((value as *const T).cast::<u8>());
}

/// [`prefetch`] both ends of `value`, for a value that may straddle two cache lines (an
/// entry of a table whose entries are not a line's divisor apart).
#[inline(always)]
pub fn prefetch_ends<T>(value: &T) {
    let first = (value as *const T).cast::<u8>();
    prefetch_address(first);
    // Only an address is computed (nothing is read through it): the value's last byte.
    prefetch_address(first.wrapping_add(std::mem::size_of::<T>().saturating_sub(1)));
}

/// The hint itself, at an address inside a value the caller holds a reference to.
#[inline(always)]
fn prefetch_address(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: it never faults and has no effect a program can observe
    // but timing. The instruction is part of SSE, which every x86-64 CPU has.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}
