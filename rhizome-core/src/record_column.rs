//! The record column (forward index): the symbol of every local record id of one column.
//!
//! Symbols are stored at the narrowest byte width that holds the dictionary (1, 2 or 4
//! bytes), widened in place when the dictionary outgrows it. It is what record reads,
//! deletes, SUM/MIN/MAX over high-cardinality columns and GROUP BY probe.

use crate::byte_set::ByteSet;
use crate::dictionary::Symbol;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordColumn {
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
}

impl Default for RecordColumn {
    fn default() -> Self {
        RecordColumn::U8(Vec::new())
    }
}

impl RecordColumn {
    pub fn len(&self) -> usize {
        match self {
            RecordColumn::U8(v) => v.len(),
            RecordColumn::U16(v) => v.len(),
            RecordColumn::U32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes per record at the current width.
    pub fn width_bytes(&self) -> usize {
        match self {
            RecordColumn::U8(_) => 1,
            RecordColumn::U16(_) => 2,
            RecordColumn::U32(_) => 4,
        }
    }

    pub fn heap_bytes(&self) -> u64 {
        (match self {
            RecordColumn::U8(v) => v.capacity(),
            RecordColumn::U16(v) => v.capacity() * 2,
            RecordColumn::U32(v) => v.capacity() * 4,
        }) as u64
    }

    #[inline]
    pub fn get(&self, id: usize) -> Symbol {
        match self {
            RecordColumn::U8(v) => v[id] as Symbol,
            RecordColumn::U16(v) => v[id] as Symbol,
            RecordColumn::U32(v) => v[id],
        }
    }

    /// `len` records of symbol 0, at the width that holds `symbol_count` symbols.
    pub fn filled(len: usize, symbol_count: usize) -> RecordColumn {
        if symbol_count <= u8::MAX as usize + 1 {
            RecordColumn::U8(vec![0; len])
        } else if symbol_count <= u16::MAX as usize + 1 {
            RecordColumn::U16(vec![0; len])
        } else {
            RecordColumn::U32(vec![0; len])
        }
    }

    /// Overwrite the symbol of one record; it must fit the current width.
    pub fn set(&mut self, id: usize, symbol: Symbol) {
        match self {
            RecordColumn::U8(v) => v[id] = symbol as u8,
            RecordColumn::U16(v) => v[id] = symbol as u16,
            RecordColumn::U32(v) => v[id] = symbol,
        }
    }

    pub fn push(&mut self, symbol: Symbol) {
        self.widen_for(symbol);
        match self {
            RecordColumn::U8(v) => v.push(symbol as u8),
            RecordColumn::U16(v) => v.push(symbol as u16),
            RecordColumn::U32(v) => v.push(symbol),
        }
    }

    /// Push every symbol of `symbols`.
    pub fn extend(&mut self, symbols: &[Symbol]) {
        if let Some(&max) = symbols.iter().max() {
            self.widen_for(max);
        }
        match self {
            RecordColumn::U8(v) => v.extend(symbols.iter().map(|&s| s as u8)),
            RecordColumn::U16(v) => v.extend(symbols.iter().map(|&s| s as u16)),
            RecordColumn::U32(v) => v.extend_from_slice(symbols),
        }
    }

    /// Widen the storage so that `symbol` fits.
    fn widen_for(&mut self, symbol: Symbol) {
        match self {
            RecordColumn::U8(v) if symbol > u8::MAX as Symbol => {
                let wide: Vec<u16> = v.iter().map(|&s| s as u16).collect();
                *self = RecordColumn::U16(wide);
                self.widen_for(symbol);
            }
            RecordColumn::U16(v) if symbol > u16::MAX as Symbol => {
                *self = RecordColumn::U32(v.iter().map(|&s| s as u32).collect());
            }
            _ => {}
        }
    }

    /// `out[i] += symbol(start + i) * stride` for the consecutive ids `start..start + out.len()`.
    #[inline]
    pub fn accumulate_range(&self, start: usize, stride: u32, out: &mut [u32]) {
        let end = start + out.len();
        match self {
            RecordColumn::U8(v) => out
                .iter_mut()
                .zip(&v[start..end])
                .for_each(|(o, &s)| *o += s as u32 * stride),
            RecordColumn::U16(v) => out
                .iter_mut()
                .zip(&v[start..end])
                .for_each(|(o, &s)| *o += s as u32 * stride),
            RecordColumn::U32(v) => out
                .iter_mut()
                .zip(&v[start..end])
                .for_each(|(o, &s)| *o += s * stride),
        }
    }

    /// `out[i] += symbol(ids[i]) * stride`.
    #[inline]
    pub fn accumulate_ids(&self, ids: &[u64], stride: u32, out: &mut [u32]) {
        match self {
            RecordColumn::U8(v) => out
                .iter_mut()
                .zip(ids)
                .for_each(|(o, &i)| *o += v[i as usize] as u32 * stride),
            RecordColumn::U16(v) => out
                .iter_mut()
                .zip(ids)
                .for_each(|(o, &i)| *o += v[i as usize] as u32 * stride),
            RecordColumn::U32(v) => out
                .iter_mut()
                .zip(ids)
                .for_each(|(o, &i)| *o += v[i as usize] * stride),
        }
    }

    /// Write the symbols of `ids` into `out` (cleared first), one per id.
    #[inline]
    pub fn gather(&self, ids: &[u64], out: &mut Vec<Symbol>) {
        out.clear();
        match self {
            RecordColumn::U8(v) => out.extend(ids.iter().map(|&i| v[i as usize] as Symbol)),
            RecordColumn::U16(v) => out.extend(ids.iter().map(|&i| v[i as usize] as Symbol)),
            RecordColumn::U32(v) => out.extend(ids.iter().map(|&i| v[i as usize])),
        }
    }

    /// Keep the ids of a bitmap's `words` (bit b of word k is id 64k + b) whose symbol is
    /// selected by `mask` (indexed by symbol), clearing the others in place: one look-up per
    /// set bit, or per record of a word that is mostly set. One-byte symbols are checked 64
    /// records at a time ([`ByteSet`]) in any word of more than a few set bits.
    pub fn retain_words(&self, words: &mut [u64], mask: &[bool]) {
        match self {
            RecordColumn::U8(v) => retain_words_bytes(v, words, &ByteSet::from_mask(mask)),
            RecordColumn::U16(v) => retain_words_in(v, words, mask),
            RecordColumn::U32(v) => retain_words_in(v, words, mask),
        }
    }

    /// Keep the `ids` whose symbol is selected by `mask` (indexed by symbol).
    pub fn retain_ids(&self, ids: &mut Vec<u64>, mask: &[bool]) {
        match self {
            RecordColumn::U8(v) => ids.retain(|&i| mask[v[i as usize] as usize]),
            RecordColumn::U16(v) => ids.retain(|&i| mask[v[i as usize] as usize]),
            RecordColumn::U32(v) => ids.retain(|&i| mask[v[i as usize] as usize]),
        }
    }

    /// Write the symbols of the consecutive ids `start..end` into `out` (cleared first).
    #[inline]
    pub fn gather_range(&self, start: usize, end: usize, out: &mut Vec<Symbol>) {
        out.clear();
        match self {
            RecordColumn::U8(v) => out.extend(v[start..end].iter().map(|&s| s as Symbol)),
            RecordColumn::U16(v) => out.extend(v[start..end].iter().map(|&s| s as Symbol)),
            RecordColumn::U32(v) => out.extend_from_slice(&v[start..end]),
        }
    }
}

/// Set bits from which a word is checked record by record without extracting its bits.
const RETAIN_DENSE_BITS: u32 = 24;
/// Set bits from which a word of one-byte symbols is checked 64 records at once: below, a
/// look-up per set bit is cheaper than the vector sequence.
const RETAIN_BYTES_WORD_BITS: u32 = 4;

fn retain_words_bytes(symbols: &[u8], words: &mut [u64], set: &ByteSet) {
    for (k, word) in words.iter_mut().enumerate() {
        let bits = *word;
        if bits == 0 {
            continue;
        }
        let base = k * 64;
        if bits.count_ones() >= RETAIN_BYTES_WORD_BITS {
            if let Some(chunk) = symbols.get(base..base + 64) {
                let chunk: &[u8; 64] = chunk.try_into().expect("64 symbols");
                *word = bits & set.select64(chunk);
                continue;
            }
        }
        let mut kept = 0u64;
        let mut rest = bits;
        while rest != 0 {
            let b = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            kept |= (set.contains(symbols[base + b]) as u64) << b;
        }
        *word = kept;
    }
}

fn retain_words_in<T: Copy + Into<u32>>(symbols: &[T], words: &mut [u64], mask: &[bool]) {
    let selected = |id: usize| mask[symbols[id].into() as usize] as u64;
    for (k, word) in words.iter_mut().enumerate() {
        let bits = *word;
        if bits == 0 {
            continue;
        }
        let base = k * 64;
        let mut kept = 0u64;
        if bits.count_ones() >= RETAIN_DENSE_BITS && base + 64 <= symbols.len() {
            // Branch-free over the whole word, then keep only what was selected before.
            for b in 0..64 {
                kept |= selected(base + b) << b;
            }
            kept &= bits;
        } else {
            let mut rest = bits;
            while rest != 0 {
                let b = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                kept |= selected(base + b) << b;
            }
        }
        *word = kept;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// retain_words keeps exactly the set ids whose symbol the mask selects, at every
        /// width (one-byte columns take the 64-at-a-time path on dense words).
        #[test]
        fn retain_words_matches_a_scan(
            symbols in proptest::collection::vec(0u32..300, 0..700),
            mask in proptest::collection::vec(any::<bool>(), 0..300),
            words in proptest::collection::vec(any::<u64>(), 0..12),
            width in 0usize..3,
        ) {
            let symbol_count = [256usize, 65_536, 1 << 20][width];
            let mut column = RecordColumn::filled(0, symbol_count);
            for &s in &symbols {
                column.push(s % symbol_count.min(300) as u32);
            }
            // Bits beyond the column are never set in a store's bitmaps.
            let mut words = words;
            for (k, w) in words.iter_mut().enumerate() {
                for b in 0..64 {
                    if k * 64 + b >= column.len() {
                        *w &= !(1u64 << b);
                    }
                }
            }
            let mut expected = words.clone();
            for (k, w) in expected.iter_mut().enumerate() {
                for b in 0..64 {
                    if *w >> b & 1 == 1 {
                        let symbol = column.get(k * 64 + b) as usize;
                        if !mask.get(symbol).copied().unwrap_or(false) {
                            *w &= !(1u64 << b);
                        }
                    }
                }
            }
            let mut mask = mask;
            mask.resize(symbol_count.min(300), false);
            column.retain_words(&mut words, &mask);
            prop_assert_eq!(words, expected);
        }
    }
}
