//! Set kernels over Rhizomes: intersect, union, difference, with count-only variants that never
//! materialise ids.
//!
//! Intersections run smallest first. When the next list is much larger than the smallest
//! (more than [`GALLOP_SIZE_RATIO`] times), the smallest drives and the others seek through
//! their skip indexes ("gallop"); otherwise the lists are walked a 4096-id window at a time,
//! each window turned into 64 words and ANDed. A window a list holds as a bitmap block is
//! read in place from the block's bytes, and a count of two lists is summed straight from
//! the ANDed words: for two dense lists (TPC-H P1: 25 % and 14 % of the records) a window
//! costs 64 loads, ANDs and popcounts a side.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::bitmap::Bitmap;
use super::codec::{WINDOW_SHIFT, WINDOW_WORDS, WORD_BITS};
use super::reader::{RhizomeIter, RhizomeRef};
use super::RecordId;

/// Size ratio from which an intersection seeks the larger lists instead of walking them.
pub const GALLOP_SIZE_RATIO: u64 = 32;

/// A seekable position that remembers the id it stopped on.
struct Seeker<'a> {
    iter: RhizomeIter<'a>,
    current: Option<RecordId>,
    started: bool,
}

impl<'a> Seeker<'a> {
    fn new(iter: RhizomeIter<'a>) -> Self {
        Seeker {
            iter,
            current: None,
            started: false,
        }
    }

    /// The first id `>= target` (targets must not decrease).
    fn seek(&mut self, target: RecordId) -> Option<RecordId> {
        if self.started {
            match self.current {
                Some(c) if c >= target => return Some(c),
                None => return None,
                _ => {}
            }
        }
        self.started = true;
        self.current = self.iter.advance_to(target);
        self.current
    }
}

fn sorted_by_size<'a>(rhizomes: &[RhizomeRef<'a>]) -> Vec<RhizomeRef<'a>> {
    let mut sorted = rhizomes.to_vec();
    sorted.sort_by_key(|r| r.cardinality());
    sorted
}

/// One window of a list as 64 words: borrowed from its bitmap block when the list holds the
/// window as one, else decoded into a scratch array.
#[derive(Clone, Copy)]
enum Words<'s> {
    /// 512 bytes: 64 little-endian words.
    Block(&'s [u8]),
    Decoded(&'s [u64; WINDOW_WORDS]),
}

/// Window `window` of `it`, consumed.
#[inline]
fn window_words<'a: 's, 's>(
    it: &mut RhizomeIter<'a>,
    window: u64,
    scratch: &'s mut [u64; WINDOW_WORDS],
) -> Words<'s> {
    if let Some(block) = it.take_window_block(window) {
        return Words::Block(block);
    }
    scratch.fill(0);
    it.take_window(window, scratch);
    Words::Decoded(scratch)
}

#[inline]
fn block_words(block: &[u8]) -> impl Iterator<Item = u64> + '_ {
    block
        .chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().expect("8-byte word")))
}

/// `acc &= words`; returns whether any bit is left.
#[inline]
fn and_into(acc: &mut [u64; WINDOW_WORDS], words: Words) -> bool {
    let mut any = 0;
    match words {
        Words::Block(block) => {
            for (a, b) in acc.iter_mut().zip(block_words(block)) {
                *a &= b;
                any |= *a;
            }
        }
        Words::Decoded(decoded) => {
            for (a, b) in acc.iter_mut().zip(decoded) {
                *a &= b;
                any |= *a;
            }
        }
    }
    any != 0
}

/// `|a ∩ b|` of one window.
#[inline]
fn and_count(a: Words, b: Words) -> u64 {
    fn count(a: impl Iterator<Item = u64>, b: impl Iterator<Item = u64>) -> u64 {
        a.zip(b).map(|(a, b)| (a & b).count_ones() as u64).sum()
    }
    match (a, b) {
        (Words::Block(a), Words::Block(b)) => count(block_words(a), block_words(b)),
        (Words::Block(a), Words::Decoded(b)) | (Words::Decoded(b), Words::Block(a)) => {
            count(block_words(a), b.iter().copied())
        }
        (Words::Decoded(a), Words::Decoded(b)) => count(a.iter().copied(), b.iter().copied()),
    }
}

/// How an intersection is walked.
enum Walk<'a> {
    /// A single list, or an empty intersection.
    Trivial,
    /// The smallest list drives; the others seek.
    Gallop(RhizomeRef<'a>, Vec<RhizomeIter<'a>>),
    /// All lists a window at a time (`iters[0]` is the smallest).
    Windows(Vec<RhizomeIter<'a>>),
}

fn walk_for<'a>(rhizomes: &[RhizomeRef<'a>]) -> Walk<'a> {
    let sorted = sorted_by_size(rhizomes);
    if sorted.len() < 2 || sorted.iter().any(|r| r.is_empty()) {
        return Walk::Trivial;
    }
    if sorted[1].cardinality() / sorted[0].cardinality().max(1) >= GALLOP_SIZE_RATIO {
        Walk::Gallop(sorted[0], sorted[1..].iter().map(|r| r.iter()).collect())
    } else {
        Walk::Windows(sorted.iter().map(|r| r.iter()).collect())
    }
}

/// Walk the intersection, calling `window_words` for each window's ANDed words (window mode) or
/// `id` for each common id (gallop mode).
fn intersect_with(
    rhizomes: &[RhizomeRef],
    mut id_found: impl FnMut(RecordId),
    mut window_found: impl FnMut(u64, &[u64; WINDOW_WORDS]),
) {
    let mut iters = match walk_for(rhizomes) {
        Walk::Trivial => {
            if let [only] = rhizomes {
                only.for_each(id_found);
            }
            return;
        }
        Walk::Gallop(smallest, others) => {
            let mut others: Vec<Seeker> = others.into_iter().map(Seeker::new).collect();
            smallest.for_each(|id| {
                if others.iter_mut().all(|s| s.seek(id) == Some(id)) {
                    id_found(id);
                }
            });
            return;
        }
        Walk::Windows(iters) => iters,
    };
    let mut acc = [0u64; WINDOW_WORDS];
    let mut scratch = [0u64; WINDOW_WORDS];
    while let Some(window) = iters[0].peek_window() {
        match iters[0].take_window_block(window) {
            Some(block) => {
                for (a, w) in acc.iter_mut().zip(block_words(block)) {
                    *a = w;
                }
            }
            None => {
                acc.fill(0);
                iters[0].take_window(window, &mut acc);
            }
        }
        for it in iters[1..].iter_mut() {
            if !and_into(&mut acc, window_words(it, window, &mut scratch)) {
                break;
            }
        }
        window_found(window, &acc);
    }
}

/// `|r1 ∩ r2 ∩ …|` without materialising ids. Windows that both of two lists hold as bitmap
/// blocks are counted straight from the blocks' bytes.
pub fn intersect_count(rhizomes: &[RhizomeRef]) -> u64 {
    let Walk::Windows(mut iters) = walk_for(rhizomes) else {
        let mut count = 0u64;
        intersect_with(rhizomes, |_| count += 1, |_, _| unreachable!("not walked"));
        return count;
    };
    if let [first, second] = iters.as_mut_slice() {
        let mut count = 0u64;
        let (mut a, mut b) = ([0u64; WINDOW_WORDS], [0u64; WINDOW_WORDS]);
        while let Some(window) = first.peek_window() {
            let words = window_words(first, window, &mut a);
            count += and_count(words, window_words(second, window, &mut b));
        }
        return count;
    }
    let (mut count, mut singles) = (0u64, 0u64);
    intersect_with(
        rhizomes,
        |_| singles += 1,
        |_, words| count += words.iter().map(|w| w.count_ones() as u64).sum::<u64>(),
    );
    count + singles
}

/// The ids in every Rhizome, ascending.
pub fn intersect(rhizomes: &[RhizomeRef]) -> Vec<RecordId> {
    let mut out = Vec::new();
    let mut windows: Vec<RecordId> = Vec::new();
    intersect_with(
        rhizomes,
        |id| out.push(id),
        |window, words| {
            let base = window << WINDOW_SHIFT;
            for (k, &word) in words.iter().enumerate() {
                let mut w = word;
                while w != 0 {
                    windows.push(base + k as u64 * WORD_BITS + w.trailing_zeros() as u64);
                    w &= w - 1;
                }
            }
        },
    );
    // Only one of the two modes runs.
    if out.is_empty() {
        windows
    } else {
        out
    }
}

/// The ids in any Rhizome, ascending (k-way merge).
pub fn union(rhizomes: &[RhizomeRef]) -> Vec<RecordId> {
    let mut iters: Vec<RhizomeIter> = rhizomes.iter().map(|r| r.iter()).collect();
    let mut heap: BinaryHeap<Reverse<(RecordId, usize)>> = BinaryHeap::with_capacity(iters.len());
    for (k, it) in iters.iter_mut().enumerate() {
        if let Some(id) = it.next() {
            heap.push(Reverse((id, k)));
        }
    }
    let total: u64 = rhizomes.iter().map(|r| r.cardinality()).sum();
    let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    while let Some(Reverse((id, k))) = heap.pop() {
        if out.last() != Some(&id) {
            out.push(id);
        }
        if let Some(next) = iters[k].next() {
            heap.push(Reverse((next, k)));
        }
    }
    out
}

/// `out |= r1 ∪ r2 ∪ …` (bitmap blocks ORed a word at a time).
pub fn union_into(rhizomes: &[RhizomeRef], out: &mut Bitmap) {
    for r in rhizomes {
        r.or_into(out);
    }
}

/// The ids of `a` not in `b`, ascending.
pub fn difference(a: RhizomeRef, b: RhizomeRef) -> Vec<RecordId> {
    let mut out = Vec::new();
    let mut seeker = Seeker::new(b.iter());
    a.for_each(|id| {
        if seeker.seek(id) != Some(id) {
            out.push(id);
        }
    });
    out
}
