//! A dictionary's hash index: symbols by the hash of their value.
//!
//! Open addressing with linear probing over one array of 8-byte slots, each the value's
//! 32-bit hash above its symbol, 0 when empty (symbol 0, NULL, is never in the index). A
//! look-up compares the stored hash before it reads the value itself, and growing the table
//! reads the slots alone. Dictionaries only grow, so there are no tombstones.
//!
//! A batch's look-ups know where each probe will start long before they get there: the
//! index hands out that slot ([`SymbolIndex::home`]) for [`crate::prefetch`] a few rows
//! ahead, which a general-purpose table (hashbrown) does not. A probe that ends on an empty
//! slot says where the new value goes ([`Probe::Vacant`]), so inserting costs no second
//! search.

use crate::dictionary::Symbol;

/// Most slots held per slot of the table: past it the table doubles.
const LOAD_NUMERATOR: usize = 7;
const LOAD_DENOMINATOR: usize = 10;
/// Slots of the smallest table.
const SLOTS_MIN: usize = 16;

#[derive(Debug, Clone, Default)]
pub(crate) struct SymbolIndex {
    /// `hash << 32 | symbol`, or 0; a power of two of them (or none).
    slots: Vec<u64>,
    /// Occupied slots.
    len: usize,
}

/// Where a look-up ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// The value's symbol.
    Found(Symbol),
    /// Not in the index; [`SymbolIndex::insert_at`] this slot to add it.
    Vacant(usize),
}

impl SymbolIndex {
    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    /// Slots allocated (8 bytes each).
    pub(crate) fn capacity(&self) -> usize {
        self.slots.capacity()
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The slot a probe for `hash` starts at (for prefetching); `None` while the table is
    /// empty.
    #[inline]
    pub(crate) fn home(&self, hash: u32) -> Option<&u64> {
        self.slots.get(hash as usize & self.mask())
    }

    /// The symbol whose hash is `hash` and for which `is_key` holds, or the vacant slot where
    /// that value would go. The table must have a vacant slot ([`SymbolIndex::reserve`]).
    #[inline]
    pub(crate) fn probe(&self, hash: u32, mut is_key: impl FnMut(Symbol) -> bool) -> Probe {
        let mask = self.mask();
        if self.slots.is_empty() {
            return Probe::Vacant(0);
        }
        let mut at = hash as usize & mask;
        loop {
            let slot = self.slots[at];
            if slot == 0 {
                return Probe::Vacant(at);
            }
            if (slot >> 32) as u32 == hash && is_key(slot as Symbol) {
                return Probe::Found(slot as Symbol);
            }
            at = (at + 1) & mask;
        }
    }

    /// The symbol whose hash is `hash` and for which `is_key` holds.
    #[inline]
    pub(crate) fn find(&self, hash: u32, is_key: impl FnMut(Symbol) -> bool) -> Option<Symbol> {
        if self.len == 0 {
            return None;
        }
        match self.probe(hash, is_key) {
            Probe::Found(symbol) => Some(symbol),
            Probe::Vacant(_) => None,
        }
    }

    /// Store `symbol` (not NULL) with its value's hash in the vacant slot `at` that a
    /// [`SymbolIndex::probe`] for that hash returned, with no insert in between. The table
    /// must have been [reserved](SymbolIndex::reserve) for it.
    #[inline]
    pub(crate) fn insert_at(&mut self, at: usize, hash: u32, symbol: Symbol) {
        debug_assert_ne!(symbol, 0, "NULL is not indexed");
        debug_assert_eq!(self.slots[at], 0, "a vacant slot");
        debug_assert!(self.len < self.limit(), "room was reserved");
        self.slots[at] = u64::from(hash) << 32 | u64::from(symbol);
        self.len += 1;
    }

    /// Slots that may be occupied before the table must double.
    fn limit(&self) -> usize {
        self.slots.len() / LOAD_DENOMINATOR * LOAD_NUMERATOR
    }

    /// Make room for `additional` more symbols without growing, so that the slots probes
    /// start at stay where they are until then. Growing re-places every slot by its stored
    /// hash, reading no value.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let needed = self.len + additional;
        if needed < self.limit() {
            return;
        }
        let mut slots = SLOTS_MIN.max(self.slots.len());
        while needed >= slots / LOAD_DENOMINATOR * LOAD_NUMERATOR {
            slots *= 2;
        }
        // Zeroed by writing rather than by `vec![0; n]`: calloc maps the zero page, which
        // the probes below would read and then fault on a second time, with a TLB flush
        // on every core, when they write. (The fill value is opaque to the compiler, which
        // would otherwise turn the writes back into calloc.)
        let mut fresh = Vec::with_capacity(slots);
        fresh.resize(slots, std::hint::black_box(0));
        let old = std::mem::replace(&mut self.slots, fresh);
        let mask = slots - 1;
        for slot in old.into_iter().filter(|&s| s != 0) {
            let mut at = (slot >> 32) as usize & mask;
            while self.slots[at] != 0 {
                at = (at + 1) & mask;
            }
            self.slots[at] = slot;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_find_what_was_inserted_and_say_where_the_rest_goes() {
        // Proves: values sharing a hash (and hashes sharing a home slot) are told apart by
        // the key check; every inserted symbol is found after the table grew twice; a value
        // not inserted ends on a vacant slot. The check is asked only of equal hashes.
        let mut index = SymbolIndex::default();
        let mut keys: Vec<u64> = vec![0];
        let hash_of = |key: u64| (key % 40) as u32 * 64; // many collisions, many shared homes
        for key in 1..200u64 {
            index.reserve(1);
            let hash = hash_of(key);
            let probe = index.probe(hash, |s| {
                assert_eq!(
                    hash_of(keys[s as usize]),
                    hash,
                    "only equal hashes are checked"
                );
                keys[s as usize] == key
            });
            let Probe::Vacant(at) = probe else {
                panic!("key {key} found before it was inserted");
            };
            keys.push(key);
            index.insert_at(at, hash, key as Symbol);
        }
        assert_eq!(index.len(), 199);
        assert!(index.capacity() >= 256, "the table grew");
        for key in 1..200u64 {
            assert_eq!(
                index.find(hash_of(key), |s| keys[s as usize] == key),
                Some(key as Symbol)
            );
        }
        assert_eq!(index.find(hash_of(500), |s| keys[s as usize] == 500), None);
        assert!(matches!(
            index.probe(hash_of(500), |s| keys[s as usize] == 500),
            Probe::Vacant(_)
        ));
    }
}
