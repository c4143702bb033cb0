//! The full decode of a trusted Rhizome ([`for_each_id`]), 32 bytes at a time.
//!
//! A scalar decoder finds each instruction's length from its first byte and branches on it;
//! when 1-, 2- and 3-byte adds are mixed (a sparse Rhizome: gaps around 2^6 and 2^13) that
//! branch is mispredicted on most ids, and the position of the next instruction waits for
//! the length of this one. Here the lengths of a 32-byte block are found first, without
//! branches, then the block's instructions are decoded from a bitmask of where they start:
//!
//! ```text
//!  1. classes of the 32 bytes (three vector compares):   1-byte (< C0), 2-byte (C0..DF),
//!     3-byte (E0..EF), longer (F0..FF); and where `C0 00` (a bitmap block) begins.
//!  2. starts: the block is 8 chunks of 4 bytes. [`CHUNK_STEPS`], indexed by a chunk's
//!     4 classes, gives for each entry offset (0, 1 or 2: where the previous chunk's last
//!     instruction ends) the instructions starting in the chunk and the next entry offset.
//!     Only that 2-step chain is sequential.
//!  3. each start: one big-endian 4-byte load, x = the bits after the leading 1s and the
//!     0 (`10xxxxxx`, `110xxxxx x8`, `1110xxxx x8 x8`); a byte below 80 is a run (or a null).
//! ```
//!
//! A start on a longer add or a bitmap block ends the block there: that one instruction is
//! decoded by the general path, and the next block starts after it. The last bytes (fewer
//! than a block and its look-ahead) are decoded from a copy padded with nulls. Before each
//! block, an 8-byte word of only 1-byte or only 2-byte adds (long stretches of equal gaps)
//! is decoded directly, eight or four adds per word.
//!
//! The bytes were validated when the Rhizome was read; on malformed input this decoder
//! still never indexes out of bounds or loops (it produces unspecified ids and stops).
//!
//! On a CPU with AVX-512 VBMI2 (checked once at run time), [`for_each_id`] uses the decoder
//! of [`avx512`] instead, which also finds the starts and makes the ids with vector
//! operations, 128 bytes at a time. This one stays the portable path, and the tests check
//! both against the validating decoder.

use super::codec::{block_word, read_instr, Instr, WINDOW_SHIFT, WINDOW_WORDS, WORD_BITS};
use super::RecordId;

#[cfg(target_arch = "x86_64")]
mod avx512;

/// Bytes whose instruction starts one block finds.
const BLOCK_BYTES: usize = 32;
/// Bytes a block reads: an instruction starting at byte 31 may read 3 more (4-byte loads),
/// and the escape check looks at byte 32.
const BLOCK_READ_BYTES: usize = BLOCK_BYTES + 4;
/// Bytes per chunk of [`CHUNK_STEPS`].
const CHUNK_BYTES: usize = 4;
const _: () = assert!(BLOCK_BYTES.is_multiple_of(CHUNK_BYTES) && BLOCK_BYTES == 32);

/// Classes of a byte as the first byte of an instruction: its length in bytes minus one, or
/// [`CLASS_LONG`] for adds of 4 bytes and more.
const CLASS_LONG: u32 = 3;

/// One step of the start chain, for a chunk whose 4 byte classes are `pattern` (bit i: low
/// bit of byte i's class, bit 4 + i: high bit) and an entry state e (0, 1, 2: the offset of
/// the chunk's first instruction; 3: the chain has stopped): bits `16e..16e + 16` hold
/// `next_shift | starts << 6 | stop << 10`, where
/// * `next_shift` is 16 × the next chunk's entry state (the shift of the next look-up);
/// * `starts` has bit i set when an instruction starts at byte i of the chunk;
/// * `stop` has bit i set when one starts at byte i that this decoder leaves to the general
///   path (a longer add): `starts` then holds only those before it, and the next state is 3,
///   which stays 3 and starts nothing.
static CHUNK_STEPS: [u64; 256] = chunk_steps();

const STEP_SHIFT_MASK: u64 = 0x3F;
const STEP_STARTS_SHIFT: u32 = 6;
/// Entry state of a stopped chain.
const STOPPED: u64 = 3;

const fn chunk_steps() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut pattern = 0;
    while pattern < 256 {
        let mut entry = 0;
        while entry < 3 {
            let mut at = entry;
            let mut starts = 0u64;
            let mut stop = 0u64;
            while at < CHUNK_BYTES {
                let class = ((pattern >> at) & 1) | (((pattern >> (4 + at)) & 1) << 1);
                if class as u32 == CLASS_LONG {
                    stop = 1 << at;
                    break;
                }
                starts |= 1 << at;
                at += class + 1;
            }
            let next = if stop != 0 {
                STOPPED
            } else {
                (at - CHUNK_BYTES) as u64
            };
            let step =
                (16 * next) | (starts << STEP_STARTS_SHIFT) | (stop << (STEP_STARTS_SHIFT + 4));
            table[pattern] |= step << (16 * entry);
            entry += 1;
        }
        table[pattern] |= (16 * STOPPED) << (16 * STOPPED);
        pattern += 1;
    }
    table
}

/// Byte j of the result: nibble j of `low` in its low half, nibble j of `high` in its high.
#[cfg(all(target_arch = "x86_64", target_feature = "bmi2"))]
#[inline]
fn interleave_nibbles(low: u32, high: u32) -> u64 {
    use safe_arch::population_deposit_u64;
    population_deposit_u64(low as u64, 0x0F0F_0F0F_0F0F_0F0F)
        | population_deposit_u64(high as u64, 0xF0F0_F0F0_F0F0_F0F0)
}

/// The low (`upper` false) or high nibbles of the bytes of `x`, packed.
#[cfg(all(target_arch = "x86_64", target_feature = "bmi2"))]
#[inline]
fn pack_nibbles(x: u64, upper: bool) -> u32 {
    use safe_arch::population_extract_u64;
    let mask = if upper {
        0xF0F0_F0F0_F0F0_F0F0
    } else {
        0x0F0F_0F0F_0F0F_0F0F
    };
    population_extract_u64(x, mask) as u32
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "bmi2")))]
#[inline]
fn interleave_nibbles(low: u32, high: u32) -> u64 {
    (0..8).fold(0u64, |acc, j| {
        acc | ((low >> (4 * j) & 0xF) as u64 | ((high >> (4 * j) & 0xF) as u64) << 4) << (8 * j)
    })
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "bmi2")))]
#[inline]
fn pack_nibbles(x: u64, upper: bool) -> u32 {
    let shift = if upper { 4 } else { 0 };
    (0..8).fold(0u32, |acc, j| {
        acc | ((x >> (8 * j + shift) & 0xF) as u32) << (4 * j)
    })
}

/// The gap of a 1- to 3-byte add whose code is the top bytes of `code` (big-endian) and
/// whose length is `ones` (its leading 1-bits): the bits after the 1s and the 0.
#[cfg(all(target_arch = "x86_64", target_feature = "bmi2"))]
#[inline]
fn short_gap(code: u32, ones: u32) -> u32 {
    /// Payload bits of the 1-, 2- and 3-byte codes (index 0 unused).
    const PAYLOAD: [u32; 4] = [0, 0x3F00_0000, 0x1FFF_0000, 0x0FFF_FF00];
    safe_arch::population_extract_u32(code, PAYLOAD[(ones & 3) as usize])
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "bmi2")))]
#[inline]
fn short_gap(code: u32, ones: u32) -> u32 {
    (code << (ones + 1)) >> (33 - 7 * ones)
}

/// Per-byte masks of one block (bit i for byte i).
#[derive(Debug, Clone, Copy)]
struct BlockClasses {
    /// Low bit of each byte's class.
    low: u32,
    /// High bit of each byte's class.
    high: u32,
    /// Bytes `C0` followed by `00`: a bitmap block if an instruction starts there.
    escape: u32,
    /// Bytes below `80`: runs and nulls if an instruction starts there.
    runs: u32,
}

#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
#[inline]
fn classify(block: &[u8; BLOCK_READ_BYTES]) -> BlockClasses {
    use safe_arch::*;
    let load = |from: usize| -> m256i {
        let bytes: [u8; 32] = block[from..from + 32].try_into().expect("32 bytes");
        m256i::from(bytes)
    };
    let bytes = load(0);
    let next = load(1);
    let prefix = |top: u8| -> u32 {
        let top = set_splat_i8_m256i(top as i8);
        move_mask_i8_m256i(cmp_eq_mask_i8_m256i(bitand_m256i(bytes, top), top)) as u32
    };
    let (c0, e0, f0, high_bit) = (prefix(0xC0), prefix(0xE0), prefix(0xF0), prefix(0x80));
    let is_c0 = move_mask_i8_m256i(cmp_eq_mask_i8_m256i(
        bytes,
        set_splat_i8_m256i(0xC0u8 as i8),
    ));
    let next_zero = move_mask_i8_m256i(cmp_eq_mask_i8_m256i(next, zeroed_m256i()));
    BlockClasses {
        low: (c0 & !e0) | f0,
        high: e0,
        escape: (is_c0 & next_zero) as u32,
        runs: !high_bit,
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
#[inline]
fn classify(block: &[u8; BLOCK_READ_BYTES]) -> BlockClasses {
    let mut classes = BlockClasses {
        low: 0,
        high: 0,
        escape: 0,
        runs: 0,
    };
    for (i, &b) in block[..BLOCK_BYTES].iter().enumerate() {
        let class = (b >= 0xC0) as u32 + (b >= 0xE0) as u32 + (b >= 0xF0) as u32;
        classes.low |= (class & 1) << i;
        classes.high |= (class >> 1) << i;
        classes.escape |= ((b == 0xC0 && block[i + 1] == 0) as u32) << i;
        classes.runs |= ((b < 0x80) as u32) << i;
    }
    classes
}

/// The start chain over 32 bytes whose class bits are `low` and `high` (see
/// [`BlockClasses`]): 8 look-ups in [`CHUNK_STEPS`], each shifted by the state the previous
/// one left. `shift` is 16 × the entry state on the way in and out. Returns the bytes where
/// an instruction starts and the first byte whose instruction stops the chain (a longer add).
#[inline]
fn start_chain(low: u32, high: u32, shift: &mut u64) -> (u32, u32) {
    let patterns = interleave_nibbles(low, high);
    let mut chain = 0u64;
    for chunk in 0..BLOCK_BYTES / CHUNK_BYTES {
        let pattern = (patterns >> (8 * chunk)) & 0xFF;
        let step = CHUNK_STEPS[pattern as usize] >> *shift;
        *shift = step & STEP_SHIFT_MASK;
        chain |= ((step >> STEP_STARTS_SHIFT) & 0xFF) << (8 * chunk);
    }
    (pack_nibbles(chain, false), pack_nibbles(chain, true))
}

/// How a block ended.
enum BlockEnd {
    /// The next instruction starts this many bytes after the block's start.
    Next(usize),
    /// The instruction this many bytes after the block's start is for the general path.
    General(usize),
}

/// Decode the instructions starting in one block (the block starts on an instruction).
#[inline]
fn decode_block(
    block: &[u8; BLOCK_READ_BYTES],
    cursor: &mut RecordId,
    f: &mut impl FnMut(RecordId),
) -> BlockEnd {
    let classes = classify(block);
    let mut shift = 0u64;
    let (mut starts, stops) = start_chain(classes.low, classes.high, &mut shift);
    let mut end = if stops != 0 {
        BlockEnd::General(stops.trailing_zeros() as usize)
    } else {
        BlockEnd::Next(BLOCK_BYTES + (shift / 16) as usize)
    };
    let escapes = starts & classes.escape;
    if escapes != 0 {
        let at = escapes.trailing_zeros();
        starts &= (1u32 << at) - 1;
        end = BlockEnd::General(at as usize);
    }
    if starts & classes.runs == 0 {
        // Adds only: no branch per id.
        while starts != 0 {
            let at = starts.trailing_zeros() as usize;
            starts &= starts - 1;
            let code = u32::from_be_bytes(block[at..at + 4].try_into().expect("4 bytes"));
            *cursor = cursor.wrapping_add(short_gap(code, (!code).leading_zeros()) as u64);
            f(*cursor);
        }
        return end;
    }
    while starts != 0 {
        let at = starts.trailing_zeros() as usize;
        starts &= starts - 1;
        let code = u32::from_be_bytes(block[at..at + 4].try_into().expect("4 bytes"));
        let first = code >> 24;
        if first < 0x80 {
            // A run (a null is a run of 0).
            for k in 1..=first as u64 {
                f(cursor.wrapping_add(k));
            }
            *cursor = cursor.wrapping_add(first as u64);
        } else {
            // 1 to 3 leading 1s (longer codes stopped the chain).
            *cursor = cursor.wrapping_add(short_gap(code, (!code).leading_zeros()) as u64);
            f(*cursor);
        }
    }
    end
}

/// Decode one instruction at `at` the general way; returns the offset after it, or None on
/// a malformed instruction.
#[inline]
fn decode_one(
    bytes: &[u8],
    at: usize,
    cursor: &mut RecordId,
    f: &mut impl FnMut(RecordId),
) -> Option<usize> {
    // Malformed input (never in a validated Rhizome) ends the decode.
    let (instr, next) = read_instr(bytes, at).ok()?;
    match instr {
        Instr::Null => {}
        Instr::Increment(n) => {
            for k in 1..=n as u64 {
                f(cursor.wrapping_add(k));
            }
            *cursor = cursor.wrapping_add(n as u64);
        }
        Instr::Add(x) => {
            *cursor = cursor.wrapping_add(x);
            f(*cursor);
        }
        Instr::Bitmap { window, words_at } => {
            let base = window << WINDOW_SHIFT;
            let mut last = *cursor;
            for k in 0..WINDOW_WORDS {
                let mut w = block_word(bytes, words_at, k);
                while w != 0 {
                    last = base + k as u64 * WORD_BITS + w.trailing_zeros() as u64;
                    f(last);
                    w &= w - 1;
                }
            }
            *cursor = last;
        }
    }
    Some(next)
}

/// Stretches of only 1-byte or only 2-byte adds: eight or four per 8-byte word, after a
/// 2-operation check (cheaper there than classifying a block). Decodes the word at `at` if
/// it is one and returns its length.
#[inline]
fn uniform_word(
    bytes: &[u8],
    at: usize,
    cursor: &mut RecordId,
    f: &mut impl FnMut(RecordId),
) -> Option<usize> {
    let word = u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().expect("8 bytes"));
    if word & 0xC0C0_C0C0_C0C0_C0C0 == 0x8080_8080_8080_8080 {
        let gaps = word & 0x3F3F_3F3F_3F3F_3F3F;
        for k in 0..8 {
            *cursor = cursor.wrapping_add((gaps >> (8 * k)) & 0x3F);
            f(*cursor);
        }
        return Some(8);
    }
    if word & 0x00E0_00E0_00E0_00E0 == 0x00C0_00C0_00C0_00C0 {
        let gap = |k: u32| ((word >> (16 * k)) & 0x1F) << 8 | (word >> (16 * k + 8)) & 0xFF;
        let gaps = [gap(0), gap(1), gap(2), gap(3)];
        // A gap of 0 is the escape of a bitmap block.
        if gaps.iter().all(|&g| g != 0) {
            for g in gaps {
                *cursor = cursor.wrapping_add(g);
                f(*cursor);
            }
            return Some(8);
        }
    }
    None
}

/// The `N` bytes of `bytes` from `at`, or, near the end, the rest copied into `padded` and
/// followed by nulls (which produce nothing).
#[inline]
fn block_at<'a, const N: usize>(
    bytes: &'a [u8],
    at: usize,
    padded: &'a mut [u8; N],
) -> &'a [u8; N] {
    match bytes.get(at..at + N) {
        Some(block) => block.try_into().expect("N bytes"),
        None => {
            let rest = &bytes[at..];
            padded[..rest.len()].copy_from_slice(rest);
            padded[rest.len()..].fill(0);
            padded
        }
    }
}

/// Call `f` for every id of the instruction stream `bytes`, ascending.
#[inline]
pub(crate) fn for_each_id(bytes: &[u8], mut f: impl FnMut(RecordId)) {
    #[cfg(target_arch = "x86_64")]
    if avx512::available() {
        return avx512::for_each_id(bytes, &mut f);
    }
    for_each_id_portable(bytes, &mut f);
}

/// [`for_each_id`] without vector extensions beyond the build's.
#[inline]
fn for_each_id_portable(bytes: &[u8], mut f: impl FnMut(RecordId)) {
    let mut at = 0usize;
    let mut cursor: RecordId = 0;
    let mut padded = [0u8; BLOCK_READ_BYTES];
    while at < bytes.len() {
        if let Some(advance) = uniform_word(bytes, at, &mut cursor, &mut f) {
            at += advance;
            continue;
        }
        let block = block_at(bytes, at, &mut padded);
        match decode_block(block, &mut cursor, &mut f) {
            BlockEnd::Next(advance) => {
                at += advance;
                continue;
            }
            BlockEnd::General(offset) => at += offset,
        }
        if at >= bytes.len() {
            return;
        }
        match decode_one(bytes, at, &mut cursor, &mut f) {
            Some(next) => at = next,
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rhizome::{decode_all, encode_ids, ArenaOptions};
    use proptest::prelude::*;

    /// Ascending ids whose gaps are drawn from a few size classes (1-, 2-, 3-byte adds,
    /// runs, longer gaps), so that blocks mix every code length and dense windows occur.
    fn mixed_ids() -> impl Strategy<Value = Vec<u64>> {
        let gap = prop_oneof![
            4 => 1u64..2,
            6 => 2u64..64,
            6 => 64u64..8192,
            4 => 8192u64..(1 << 20),
            1 => (1u64 << 20)..(1 << 40),
        ];
        (0u64..100, prop::collection::vec(gap, 0..3000)).prop_map(|(first, gaps)| {
            let mut id = first;
            let mut ids = vec![id];
            for g in gaps {
                id += g;
                ids.push(id);
            }
            ids
        })
    }

    /// The ids of `bytes` by [`for_each_id`] (the AVX-512 decoder where the CPU has it) and
    /// by the portable decoder.
    fn decoded(bytes: &[u8]) -> [Vec<u64>; 2] {
        let mut wide = Vec::new();
        for_each_id(bytes, |id| wide.push(id));
        let mut portable = Vec::new();
        for_each_id_portable(bytes, |id| portable.push(id));
        [wide, portable]
    }

    proptest! {
        /// The block decoder produces exactly the ids of the validating decoder.
        #[test]
        fn matches_the_validating_decoder(ids in mixed_ids(), dense in any::<bool>()) {
            let options = ArenaOptions { dense_blocks: dense, ..ArenaOptions::default() };
            let bytes = encode_ids(&ids, options);
            for got in decoded(&bytes) {
                prop_assert_eq!(&got, &ids);
            }
        }

        /// Long stretches of one code length (the 8-byte word paths) broken by other codes.
        #[test]
        fn uniform_stretches(
            stretches in prop::collection::vec((0usize..3, 1usize..40, 1u64..1 << 21), 1..20),
        ) {
            let mut ids = vec![0u64];
            for (kind, length, outlier) in stretches {
                let (low, high) = [(2u64, 64u64), (64, 8192), (1, 2)][kind];
                for k in 0..length as u64 {
                    let last = *ids.last().expect("not empty");
                    ids.push(last + low + (k * 7919 + outlier) % (high - low));
                }
                let last = *ids.last().expect("not empty");
                ids.push(last + outlier);
            }
            let bytes = encode_ids(&ids, ArenaOptions::default());
            for got in decoded(&bytes) {
                prop_assert_eq!(&got, &ids);
            }
        }

        /// On arbitrary bytes it returns (no panic, no endless loop); on bytes the validating
        /// decoder accepts it agrees with it.
        #[test]
        fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let got = decoded(&bytes);
            if let Ok(expected) = decode_all(&bytes) {
                for got in got {
                    prop_assert_eq!(&got, &expected);
                }
            }
        }

        /// Streams of only the short canonical codes (the block path throughout, the
        /// general path only at the end), including nulls and runs.
        #[test]
        fn short_codes(codes in prop::collection::vec((0u8..3, any::<u16>()), 0..400)) {
            let mut bytes = vec![0x81]; // add 1: start the cursor
            let mut expected = vec![1u64];
            let mut cursor = 1u64;
            for (len, payload) in codes {
                match len {
                    0 => {
                        let b = (payload % 0xC0) as u8;
                        if b < 0x80 {
                            for k in 1..=b as u64 {
                                expected.push(cursor + k);
                            }
                            cursor += b as u64;
                        } else {
                            cursor += (b & 0x3F) as u64;
                            expected.push(cursor);
                        }
                        bytes.push(b);
                    }
                    1 => {
                        let x = 64 + payload as u64 % (8192 - 64);
                        bytes.extend_from_slice(&[0xC0 | (x >> 8) as u8, x as u8]);
                        cursor += x;
                        expected.push(cursor);
                    }
                    _ => {
                        let x = 8192 + (payload as u64) * 15;
                        bytes.extend_from_slice(&[0xE0 | (x >> 16) as u8, (x >> 8) as u8, x as u8]);
                        cursor += x;
                        expected.push(cursor);
                    }
                }
            }
            for got in decoded(&bytes) {
                prop_assert_eq!(&got, &expected);
            }
        }
    }

    /// The chain table on hand-worked chunks.
    #[test]
    fn chunk_steps_examples() {
        let step = |pattern: usize, entry: u64| CHUNK_STEPS[pattern] >> (16 * entry) & 0xFFFF;
        // All 1-byte codes: a start at every byte from the entry on.
        assert_eq!(step(0, 0), 0b1111 << STEP_STARTS_SHIFT);
        assert_eq!(step(0, 2), 0b1100 << STEP_STARTS_SHIFT);
        // A 3-byte code at byte 2 (class 2: high bit): ends 1 byte into the next chunk.
        assert_eq!(step(1 << 6, 0), 16 | 0b0111 << STEP_STARTS_SHIFT);
        // A long code at byte 1 (class 3): stop there, after the start at byte 0.
        let long_at_1 = 1 << 1 | 1 << 5;
        assert_eq!(
            step(long_at_1, 0),
            (16 * STOPPED) | (0b0001 << STEP_STARTS_SHIFT) | (0b0010 << (STEP_STARTS_SHIFT + 4))
        );
        // Stopped stays stopped.
        assert_eq!(step(0, STOPPED), 16 * STOPPED);
    }

    /// The nibble helpers are inverse to each other.
    #[test]
    fn nibbles_round_trip() {
        for (low, high) in [(0u32, 0u32), (u32::MAX, 0), (0x1234_5678, 0x9ABC_DEF0)] {
            let x = interleave_nibbles(low, high);
            assert_eq!((pack_nibbles(x, false), pack_nibbles(x, true)), (low, high));
        }
    }
}
