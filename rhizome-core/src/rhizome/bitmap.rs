//! [`Bitmap`]: a dense id set over `0..universe`, the planner's working set.
//!
//! Bit `id % 64` of word `id / 64` is set when `id` is in the set; bits at or beyond the
//! universe are always zero. Word `k` covers the same ids as word `k % 64` of the Rhizome
//! bitmap block for window `k / 64`, so blocks combine with bitmaps without shifting.

use super::RecordId;

const WORD_BITS: u64 = 64;

/// A dense set of ids in `0..universe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    words: Vec<u64>,
    universe: u64,
}

impl Bitmap {
    /// The empty set over `0..universe`.
    pub fn new(universe: u64) -> Self {
        let words = usize::try_from(universe.div_ceil(WORD_BITS)).expect("universe fits memory");
        Bitmap {
            words: vec![0; words],
            universe,
        }
    }

    /// The set of all ids in `0..universe`.
    pub fn full(universe: u64) -> Self {
        let mut bitmap = Bitmap::new(universe);
        bitmap.words.fill(u64::MAX);
        bitmap.clear_beyond_universe(universe);
        bitmap
    }

    pub fn universe(&self) -> u64 {
        self.universe
    }

    /// Add `id`.
    ///
    /// # Panics
    /// If `id >= universe` (a caller bug).
    pub fn insert(&mut self, id: RecordId) {
        assert!(
            id < self.universe,
            "id {id} outside bitmap universe {}",
            self.universe
        );
        self.words[(id / WORD_BITS) as usize] |= 1 << (id % WORD_BITS);
    }

    /// Remove `id` (no-op when outside the universe).
    pub fn remove(&mut self, id: RecordId) {
        if id < self.universe {
            self.words[(id / WORD_BITS) as usize] &= !(1 << (id % WORD_BITS));
        }
    }

    /// Whether `id` is in the set (false outside the universe).
    pub fn contains(&self, id: RecordId) -> bool {
        self.contains_or_false(id)
    }

    #[inline]
    pub(crate) fn contains_or_false(&self, id: RecordId) -> bool {
        id < self.universe && self.words[(id / WORD_BITS) as usize] >> (id % WORD_BITS) & 1 == 1
    }

    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| w.count_ones() as u64).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// `self ∩= other` (over the common universe prefix; ids beyond `other`'s universe go).
    pub fn and_with(&mut self, other: &Bitmap) {
        let common = self.words.len().min(other.words.len());
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= b;
        }
        self.words[common..].fill(0);
    }

    /// `self ∪= other` (ids of `other` beyond `self`'s universe are dropped).
    pub fn or_with(&mut self, other: &Bitmap) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
        self.clear_beyond_universe(self.universe);
    }

    /// `self −= other`.
    pub fn and_not_with(&mut self, other: &Bitmap) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= !b;
        }
    }

    /// `|self ∩ other|` without building it.
    pub fn and_count(&self, other: &Bitmap) -> u64 {
        self.words
            .iter()
            .zip(&other.words)
            .map(|(a, b)| (a & b).count_ones() as u64)
            .sum()
    }

    /// Complement within `0..universe`.
    pub fn invert(&mut self) {
        for w in &mut self.words {
            *w = !*w;
        }
        self.clear_beyond_universe(self.universe);
    }

    /// Ascending ids.
    pub fn iter(&self) -> impl Iterator<Item = RecordId> + '_ {
        self.words.iter().enumerate().flat_map(|(k, &word)| {
            let mut w = word;
            std::iter::from_fn(move || {
                (w != 0).then(|| {
                    let bit = w.trailing_zeros() as u64;
                    w &= w - 1;
                    k as u64 * WORD_BITS + bit
                })
            })
        })
    }

    /// Call `f` for every id, ascending.
    pub fn for_each(&self, mut f: impl FnMut(RecordId)) {
        for (k, &word) in self.words.iter().enumerate() {
            let mut w = word;
            while w != 0 {
                f(k as u64 * WORD_BITS + w.trailing_zeros() as u64);
                w &= w - 1;
            }
        }
    }

    pub fn words(&self) -> &[u64] {
        &self.words
    }

    pub(crate) fn words_mut(&mut self) -> &mut [u64] {
        &mut self.words
    }

    /// Zero the bits at or beyond `universe` in the last word.
    pub(crate) fn clear_beyond_universe(&mut self, universe: u64) {
        let tail_bits = universe % WORD_BITS;
        if tail_bits != 0 {
            if let Some(last) = self.words.last_mut() {
                *last &= (1u64 << tail_bits) - 1;
            }
        }
    }
}
