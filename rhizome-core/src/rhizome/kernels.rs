//! Set kernels over Rhizomes: intersect, union, difference, with count-only variants that never
//! materialise ids.
//!
//! Intersections run smallest first. When the next list is much larger than the smallest
//! (more than [`GALLOP_SIZE_RATIO`] times), the smallest drives and the others seek through
//! their skip indexes ("gallop"); otherwise the lists are walked a 4096-id window at a time,
//! each window turned into 64 words (bitmap blocks are copied, not decoded) and ANDed.

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
    fn new(r: &RhizomeRef<'a>) -> Self {
        Seeker {
            iter: r.iter(),
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

/// Walk the intersection, calling `window_words` for each window's ANDed words (window mode) or
/// `id` for each common id (gallop mode).
fn intersect_with(
    rhizomes: &[RhizomeRef],
    mut id_found: impl FnMut(RecordId),
    mut window_found: impl FnMut(u64, &[u64; WINDOW_WORDS]),
) {
    let sorted = sorted_by_size(rhizomes);
    let Some(smallest) = sorted.first() else {
        return;
    };
    if sorted.iter().any(|r| r.is_empty()) {
        return;
    }
    if sorted.len() == 1 {
        smallest.for_each(id_found);
        return;
    }
    let gallop = sorted[1].cardinality() / smallest.cardinality().max(1) >= GALLOP_SIZE_RATIO;
    if gallop {
        let mut others: Vec<Seeker> = sorted[1..].iter().map(Seeker::new).collect();
        smallest.for_each(|id| {
            if others.iter_mut().all(|s| s.seek(id) == Some(id)) {
                id_found(id);
            }
        });
        return;
    }
    let mut iters: Vec<RhizomeIter> = sorted.iter().map(|r| r.iter()).collect();
    let mut acc = [0u64; WINDOW_WORDS];
    let mut scratch = [0u64; WINDOW_WORDS];
    while let Some(next) = iters[0].peek() {
        let window = next >> WINDOW_SHIFT;
        acc.fill(0);
        iters[0].take_window(window, &mut acc);
        for it in iters[1..].iter_mut() {
            scratch.fill(0);
            it.take_window(window, &mut scratch);
            let mut any = 0;
            for (a, b) in acc.iter_mut().zip(&scratch) {
                *a &= b;
                any |= *a;
            }
            if any == 0 {
                break;
            }
        }
        window_found(window, &acc);
    }
}

/// `|r1 ∩ r2 ∩ …|` without materialising ids.
pub fn intersect_count(rhizomes: &[RhizomeRef]) -> u64 {
    let mut count = 0u64;
    let mut singles = 0u64;
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
    let mut seeker = Seeker::new(&b);
    a.for_each(|id| {
        if seeker.seek(id) != Some(id) {
            out.push(id);
        }
    });
    out
}
