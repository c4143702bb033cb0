//! [`ByteSet`]: a set of 1-byte symbols, tested on 64 consecutive records at once.
//!
//! Record columns of fewer than 257 symbols (flags, quantities, discounts, modes, …) store one
//! byte per record. A leaf on such a column is a set of symbols; checking it on the 64
//! records of one bitmap word is a table look-up per byte, which on x86-64 with AVX2 is done
//! 32 bytes per instruction sequence:
//!
//! ```text
//!  symbol s (8 bits) = hhhhh lll
//!  set byte  = bits[hhhhh]        two 16-byte pshufb tables (hhhhh < 16, hhhhh >= 16), blended
//!  set bit   = 1 << lll           one pshufb table
//!  selected  = set byte & set bit != 0        -> movemask: one bit per record
//! ```
//!
//! Other targets use the same bitset a byte at a time.

/// A set of symbols `0..256` as a 256-bit bitset: symbol `s` is bit `s % 8` of `bits[s / 8]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ByteSet {
    bits: [u8; 32],
}

impl ByteSet {
    /// The symbols `s < 256` with `mask[s]` true (symbols beyond `mask` are not members).
    pub(crate) fn from_mask(mask: &[bool]) -> Self {
        let mut bits = [0u8; 32];
        for (symbol, _) in mask.iter().enumerate().take(256).filter(|(_, &m)| m) {
            bits[symbol / 8] |= 1 << (symbol % 8);
        }
        ByteSet { bits }
    }

    /// Whether `symbol` is a member.
    #[inline]
    pub(crate) fn contains(&self, symbol: u8) -> bool {
        self.bits[(symbol / 8) as usize] >> (symbol % 8) & 1 == 1
    }

    /// Bit `i` is set when `symbols[i]` is a member.
    #[inline]
    pub(crate) fn select64(&self, symbols: &[u8; 64]) -> u64 {
        select64_impl(self, symbols)
    }
}

#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
#[inline]
fn select64_impl(set: &ByteSet, symbols: &[u8; 64]) -> u64 {
    use safe_arch::*;
    // A 16-byte table in both 128-bit lanes (pshufb looks up within each lane).
    let both_lanes = |table: &[u8]| -> m256i {
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(table);
        bytes[16..].copy_from_slice(table);
        m256i::from(bytes)
    };
    let low_table = both_lanes(&set.bits[..16]);
    let high_table = both_lanes(&set.bits[16..]);
    let powers = both_lanes(&[1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128]);
    let select32 = |bytes: &[u8]| -> u32 {
        let bytes: [u8; 32] = bytes.try_into().expect("32 symbols");
        let s = m256i::from(bytes);
        // s / 8 (a 16-bit shift brings in the neighbour's bits; the mask drops them).
        let byte_index = bitand_m256i(shr_imm_u16_m256i::<3>(s), set_splat_i8_m256i(0x1F));
        let from_low = shuffle_av_i8z_half_m256i(low_table, byte_index);
        let from_high = shuffle_av_i8z_half_m256i(high_table, byte_index);
        let is_high = cmp_gt_mask_i8_m256i(byte_index, set_splat_i8_m256i(15));
        let set_byte = blend_varying_i8_m256i(from_low, from_high, is_high);
        let bit = shuffle_av_i8z_half_m256i(powers, bitand_m256i(s, set_splat_i8_m256i(7)));
        let missing = cmp_eq_mask_i8_m256i(bitand_m256i(set_byte, bit), zeroed_m256i());
        !(move_mask_i8_m256i(missing) as u32)
    };
    select32(&symbols[..32]) as u64 | (select32(&symbols[32..]) as u64) << 32
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
#[inline]
fn select64_impl(set: &ByteSet, symbols: &[u8; 64]) -> u64 {
    let mut out = 0u64;
    for (i, &s) in symbols.iter().enumerate() {
        out |= (set.contains(s) as u64) << i;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// select64 agrees with testing each byte against the mask it was built from.
        #[test]
        fn select64_matches_a_scan(
            mask in proptest::collection::vec(any::<bool>(), 0..300),
            symbols in proptest::collection::vec(any::<u8>(), 64),
        ) {
            let set = ByteSet::from_mask(&mask);
            let symbols: [u8; 64] = symbols.try_into().expect("64 symbols");
            let expected = symbols.iter().enumerate().fold(0u64, |acc, (i, &s)| {
                acc | (mask.get(s as usize).copied().unwrap_or(false) as u64) << i
            });
            prop_assert_eq!(set.select64(&symbols), expected);
        }
    }

    /// Every symbol, alone in the set and alone outside it, on every position.
    #[test]
    fn select64_each_symbol_each_position() {
        for member in 0..=255u8 {
            let mut mask = vec![false; 256];
            mask[member as usize] = true;
            let only = ByteSet::from_mask(&mask);
            let all_but = ByteSet::from_mask(&mask.iter().map(|m| !m).collect::<Vec<_>>());
            for position in 0..64 {
                let mut symbols = [member.wrapping_add(1); 64];
                symbols[position] = member;
                assert_eq!(only.select64(&symbols), 1 << position, "symbol {member}");
                assert_eq!(all_but.select64(&symbols), !(1u64 << position));
            }
        }
    }
}
