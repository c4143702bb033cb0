//! The full decode 128 bytes at a time with AVX-512 (VBMI byte permutes), on CPUs that
//! have it (checked at run time; the build's baseline is x86-64-v3).
//!
//! The scalar block decoder of the parent module finds instruction starts with a chain of
//! table look-ups, 4 bytes per step, and then decodes each start on its own: about ten
//! operations per id. Here a window of 128 bytes is decoded with about a dozen vector
//! operations per 16 ids, and the starts are found in 6 steps whatever their number:
//!
//! ```text
//!  1. next[i] = i + the length of an instruction starting at byte i (1, 2 or 3, from its
//!     first byte), or STOP (127) where the instruction is one this decoder leaves to the
//!     scalar path or reaches byte 127; next[STOP] = STOP;
//!  2. the starts in order, P[k] = next^k(0) for k = 0..63, by doubling: with
//!     N1 = next, N2 = N1∘N1, …, N32, lane k of P takes N(2^m) for each bit m of k (VPERMI2B
//!     over the 128-entry table, once per bit);
//!  3. lanes whose next is not STOP are decoded; the first other lane is where the window
//!     ends (a STOP lane's own start is decoded by the scalar path, or by the next window);
//!  4. per 16 starts: the 4 bytes from each start, big-endian in a 32-bit lane (VPERMI2B);
//!     the code length from the leading 1s (VPLZCNTD); gap = (code << l) >> r, l and r by
//!     length (VPERMD); 1-byte runs and nulls are gaps of 1 and 0 (nulls produce no id);
//!  5. a prefix sum of the 16 gaps (4 shift-and-adds), widened to 64 bits, plus the cursor:
//!     16 ids stored at once.
//! ```
//!
//! The scalar path takes runs of 2 or more, adds of 4 bytes or more and bitmap blocks
//! (`C0 00`). Stretches of only 1-byte or only 2-byte adds still take the 8-byte word paths
//! of the parent, which are faster there. The last bytes (fewer than 128) are decoded from a
//! copy padded with nulls.
//!
//! This is the one module of the workspace with `unsafe`: calling functions compiled for
//! AVX-512 (only after the CPU was checked for it), and unaligned vector loads and stores
//! of arrays whose lengths are fixed by their types.
#![allow(unsafe_code)]

use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::super::RecordId;
use super::{block_at, decode_one, uniform_word};

/// Bytes of one window.
const WINDOW: usize = 128;
/// `next` of an instruction the window does not decode; its own `next`.
const STOP: u8 = 127;
/// Starts one window finds at most (one byte lane each).
const LANES: usize = 64;

/// Whether this CPU has every extension the window decoder uses (checked once).
/// `RHIZOME_NO_AVX512` set in the environment turns the decoder off.
#[inline]
pub(super) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        std::env::var_os("RHIZOME_NO_AVX512").is_none()
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512cd")
            && is_x86_feature_detected!("avx512vbmi")
            && is_x86_feature_detected!("avx512vbmi2")
    })
}

/// [`super::for_each_id`] on a CPU where [`available`] is true.
#[inline]
pub(super) fn for_each_id(bytes: &[u8], f: &mut impl FnMut(RecordId)) {
    assert!(available(), "the AVX-512 decoder needs AVX-512 VBMI2");
    // SAFETY: the CPU has every target feature `decode` is compiled with (checked above).
    unsafe { decode(bytes, f) }
}

/// Whether the instruction whose first bytes are `first`, `second` is one a window leaves
/// to the scalar path.
#[inline]
fn scalar_only(first: u8, second: u8) -> bool {
    (2..0x80).contains(&first) || first >= 0xF0 || (first == 0xC0 && second == 0)
}

#[target_feature(enable = "avx512f,avx512bw,avx512cd,avx512vbmi,avx512vbmi2,bmi2,popcnt,lzcnt")]
fn decode(bytes: &[u8], f: &mut impl FnMut(RecordId)) {
    let tables = Tables::new();
    let mut ids = [0u64; LANES];
    let mut padded = [0u8; WINDOW];
    let mut at = 0usize;
    let mut cursor: RecordId = 0;
    while at < bytes.len() {
        if let Some(advance) = uniform_word(bytes, at, &mut cursor, f) {
            at += advance;
            continue;
        }
        let window = block_at(bytes, at, &mut padded);
        if scalar_only(window[0], window[1]) {
            match decode_one(bytes, at, &mut cursor, f) {
                Some(next) => at = next,
                None => return,
            }
            continue;
        }
        let (consumed, count) = decode_window(window, &tables, &mut cursor, &mut ids);
        for &id in &ids[..count] {
            f(id);
        }
        at += consumed;
    }
}

/// The window decoder's constants, computed at compile time: bytes 0–63 and 64–127; for
/// group g of 16 starts, byte 4j + k holds 16g + j (the lane of the group's start j); byte
/// 4j + k holds 3 - k (so a 32-bit lane holds its 4 bytes big-endian).
static OFFSETS: [[u8; 64]; 2] = [byte_table(0, 1, 0, 0), byte_table(64, 1, 0, 0)];
static SPREAD: [[u8; 64]; 4] = [
    byte_table(0, 0, 1, 0),
    byte_table(16, 0, 1, 0),
    byte_table(32, 0, 1, 0),
    byte_table(48, 0, 1, 0),
];
static BIG_ENDIAN: [u8; 64] = byte_table(0, 0, 0, 1);
/// By leading 1s (0–3): the left and right shifts that leave an instruction's value. A run
/// or null (0 leading 1s): the byte; 1-, 2-, 3-byte adds: the 6, 13, 20 bits after the 1s
/// and the 0.
static LEFT: [u32; 16] = [0, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
static RIGHT: [u32; 16] = [24, 26, 19, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// Bit m of each lane's index: the lanes that take N(2^m).
const LANE_BITS: [u64; 6] = lane_bits();

/// Byte i: `base + step * i + per_lane * (i / 4) + reversed * (3 - i % 4)`.
const fn byte_table(base: usize, step: usize, per_lane: usize, reversed: usize) -> [u8; 64] {
    let mut table = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        table[i] = (base + step * i + per_lane * (i / 4) + reversed * (3 - i % 4)) as u8;
        i += 1;
    }
    table
}

const fn lane_bits() -> [u64; 6] {
    let mut bits = [0u64; 6];
    let mut k = 0;
    while k < LANES {
        let mut m = 0;
        while m < 6 {
            if k >> m & 1 == 1 {
                bits[m] |= 1 << k;
            }
            m += 1;
        }
        k += 1;
    }
    bits
}

/// The constants as vectors, loaded once per decode.
struct Tables {
    offsets: [__m512i; 2],
    spread: [__m512i; 4],
    big_endian: __m512i,
    left: __m512i,
    right: __m512i,
    lane_bits: [u64; 6],
}

impl Tables {
    #[target_feature(enable = "avx512f,avx512bw")]
    fn new() -> Tables {
        // SAFETY: each load reads the 64 bytes of one 64-byte static.
        let load = |table: &'static [u8; 64]| unsafe { _mm512_loadu_si512(table.as_ptr().cast()) };
        // SAFETY: as above (16 u32 are 64 bytes).
        let load_lanes =
            |table: &'static [u32; 16]| unsafe { _mm512_loadu_si512(table.as_ptr().cast()) };
        Tables {
            offsets: [load(&OFFSETS[0]), load(&OFFSETS[1])],
            spread: [
                load(&SPREAD[0]),
                load(&SPREAD[1]),
                load(&SPREAD[2]),
                load(&SPREAD[3]),
            ],
            big_endian: load(&BIG_ENDIAN),
            left: load_lanes(&LEFT),
            right: load_lanes(&RIGHT),
            lane_bits: LANE_BITS,
        }
    }
}

/// Decode one window starting on an instruction that is not [`scalar_only`]: writes the ids
/// to `ids` and returns the bytes consumed (at least 1) and the number of ids.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512cd,avx512vbmi,avx512vbmi2,bmi2,popcnt,lzcnt")]
fn decode_window(
    window: &[u8; WINDOW],
    tables: &Tables,
    cursor: &mut RecordId,
    ids: &mut [u64; LANES],
) -> (usize, usize) {
    // SAFETY: reads the 128 bytes of `window`, 64 at a time.
    let v: [__m512i; 2] = unsafe {
        [
            _mm512_loadu_si512(window.as_ptr().cast()),
            _mm512_loadu_si512(window[64..].as_ptr().cast()),
        ]
    };
    // Per half: masks of the byte classes.
    let zero = v.map(|v| _mm512_cmpeq_epi8_mask(v, _mm512_setzero_si512()));
    let is_c0 = v.map(|v| _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(0xC0u8 as i8)));
    let mut next = [_mm512_setzero_si512(); 2];
    for half in 0..2 {
        let at_least = |b: u8| _mm512_cmpge_epu8_mask(v[half], _mm512_set1_epi8(b as i8));
        let (c0, e0) = (at_least(0xC0), at_least(0xE0));
        // Runs of 2 or more, adds of 4 bytes and more, bitmap blocks (`C0` then `00`; the
        // byte after byte 127 is unknown, and an instruction there reaches byte 127 anyway).
        let zero_after = zero[half] >> 1 | (if half == 0 { zero[1] << 63 } else { 0 });
        let scalar = (!at_least(0x80) & at_least(2)) | at_least(0xF0) | (is_c0[half] & zero_after);
        // 1 + the leading 1s of a first byte beyond the first (an add of 1 to 3 bytes).
        let one = _mm512_set1_epi8(1);
        let mut n = _mm512_add_epi8(tables.offsets[half], one);
        n = _mm512_mask_add_epi8(n, c0, n, one);
        n = _mm512_mask_add_epi8(n, e0, n, one);
        n = _mm512_min_epu8(n, _mm512_set1_epi8(STOP as i8));
        next[half] = _mm512_mask_mov_epi8(n, scalar, _mm512_set1_epi8(STOP as i8));
    }

    // The starts: lane k of `starts` = next^k(0), doubling the step each time.
    let mut jump = next;
    let mut starts = _mm512_setzero_si512();
    for (m, &lanes) in tables.lane_bits.iter().enumerate() {
        starts = _mm512_mask2_permutex2var_epi8(jump[0], starts, lanes, jump[1]);
        if m + 1 < tables.lane_bits.len() {
            jump = jump.map(|j| _mm512_permutex2var_epi8(jump[0], j, jump[1]));
        }
    }
    let after = _mm512_permutex2var_epi8(next[0], starts, next[1]);
    let decoded = _mm512_cmpneq_epi8_mask(after, _mm512_set1_epi8(STOP as i8));
    // The decoded lanes are a prefix (lanes after a STOP are STOP).
    let lanes = decoded.count_ones() as usize;
    let end = if lanes < LANES {
        let lane = _mm512_permutexvar_epi8(_mm512_set1_epi8(lanes as i8), starts);
        (_mm512_cvtsi512_si32(lane) & 0xFF) as usize
    } else {
        let lane = _mm512_permutexvar_epi8(_mm512_set1_epi8(63), after);
        (_mm512_cvtsi512_si32(lane) & 0xFF) as usize
    };

    // Nulls (after deletes) are consumed and produce nothing.
    let first_bytes = _mm512_permutex2var_epi8(v[0], starts, v[1]);
    let emit = decoded & _mm512_test_epi8_mask(first_bytes, first_bytes);
    let count = emit.count_ones() as usize;
    let starts = if emit == decoded {
        starts
    } else {
        _mm512_maskz_compress_epi8(emit, starts)
    };
    let mut base = _mm512_set1_epi64(*cursor as i64);
    for (group, spread) in tables.spread.iter().enumerate() {
        if 16 * group >= count {
            break;
        }
        let index = _mm512_add_epi8(_mm512_permutexvar_epi8(*spread, starts), tables.big_endian);
        let codes = _mm512_permutex2var_epi8(v[0], index, v[1]);
        let ones = _mm512_lzcnt_epi32(_mm512_xor_si512(codes, _mm512_set1_epi32(-1)));
        let gaps = _mm512_srlv_epi32(
            _mm512_sllv_epi32(codes, _mm512_permutexvar_epi32(ones, tables.left)),
            _mm512_permutexvar_epi32(ones, tables.right),
        );
        // Prefix sum over the 16 lanes (16 gaps of at most 20 bits fit in 32).
        let zeros = _mm512_setzero_si512();
        let mut sums = gaps;
        sums = _mm512_add_epi32(sums, _mm512_alignr_epi32::<15>(sums, zeros));
        sums = _mm512_add_epi32(sums, _mm512_alignr_epi32::<14>(sums, zeros));
        sums = _mm512_add_epi32(sums, _mm512_alignr_epi32::<12>(sums, zeros));
        sums = _mm512_add_epi32(sums, _mm512_alignr_epi32::<8>(sums, zeros));
        let first = _mm512_add_epi64(_mm512_cvtepu32_epi64(_mm512_castsi512_si256(sums)), base);
        let second = _mm512_add_epi64(
            _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64::<1>(sums)),
            base,
        );
        let out = &mut ids[16 * group..16 * group + 16];
        // SAFETY: writes 128 bytes into the 16 u64 of `out`.
        unsafe {
            _mm512_storeu_si512(out.as_mut_ptr().cast(), first);
            _mm512_storeu_si512(out[8..].as_mut_ptr().cast(), second);
        }
        base = _mm512_permutexvar_epi64(_mm512_set1_epi64(7), second);
    }
    if count > 0 {
        *cursor = ids[count - 1];
    }
    (end, count)
}
