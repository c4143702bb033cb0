//! The Rhizome instruction codec: byte layout, the canonical encoder and the validating
//! instruction reader.
//!
//! A Rhizome is a byte string of instructions producing ascending record ids. The decoder keeps
//! a *cursor* (the last id produced, 0 before anything is produced) and a *started* flag.
//! The count of leading 1-bits of an instruction's first byte gives its length in bytes.
//!
//! ```text
//!  first byte   following bytes              meaning
//!  00000000                                  null: padding left by a delete, produces nothing
//!  0nnnnnnn                                  increment ×n (n = 1..=127): produce cursor+1 … cursor+n
//!  10xxxxxx                                  add x, x < 2^6:  cursor += x, produce cursor
//!  110xxxxx     xxxxxxxx                     add x, x < 2^13
//!  1110xxxx     xxxxxxxx ×2                  add x, x < 2^20
//!  11110xxx     xxxxxxxx ×3                  add x, x < 2^27
//!  111110xx     xxxxxxxx ×4                  add x, x < 2^34
//!  1111110x     xxxxxxxx ×5                  add x, x < 2^41
//!  11111110     xxxxxxxx ×6                  add x, x < 2^48
//!  11111111     0xxxxxxx  xxxxxxxx ×6        add x, x < 2^55   (the 1s continue into byte 2)
//!  11111111     10xxxxxx  xxxxxxxx ×7        add x, x < 2^62
//!  11111111     110xxxxx  xxxxxxxx ×8        add x, x < 2^64   (69 payload bits, top 5 zero)
//!
//!  An n-byte add is n 1-bits, one 0-bit, then a 7n-1 bit payload x, most significant bit first
//!  (big-endian across the bytes). The encoder always writes the shortest length that holds x.
//!
//!  Dense bitmap block (escape through the non-canonical 2-byte "add 0"):
//!  11000000 00000000  <window: add-code>  <512 bytes: 64 little-endian u64 words>
//!  The window code is written exactly like an add payload (canonical length, may be 0).
//!  Bit b of word k set  <=>  id = window * 4096 + k * 64 + b is produced (ascending).
//!  The window must start after the cursor, the block holds at least one id, and after the
//!  block the cursor is its last set bit.
//! ```
//!
//! Rules checked by the validating reader: the first producing instruction is an add or a
//! bitmap block (an increment needs a cursor); only the first add may be `add 0`; any other
//! non-canonical add is reserved and rejected; gaps and runs may not overflow `u64`; codes may
//! not be truncated.
//!
//! Runs never continue across a 4096-id window boundary: the first id of a new window always
//! starts a new instruction, so a finished window is a contiguous run of instructions that the
//! encoder can swap for a bitmap block when that is smaller.

use super::skip::SkipIndex;
use super::RecordId;
use crate::{Error, Result};

/// Largest run one increment byte holds.
pub(crate) const INCREMENT_RUN_MAX: u8 = 127;
/// Longest add code in bytes (64-bit gap).
pub(crate) const ADD_CODE_BYTES_MAX: usize = 10;
/// Ids per dense window (and per bitmap block).
pub(crate) const WINDOW_IDS: u64 = 4096;
/// `log2(WINDOW_IDS)`.
pub(crate) const WINDOW_SHIFT: u32 = 12;
/// Bits per bitmap word.
pub(crate) const WORD_BITS: u64 = 64;
/// u64 words per bitmap block.
pub(crate) const WINDOW_WORDS: usize = (WINDOW_IDS / WORD_BITS) as usize;
/// Bytes of a bitmap block's bitmap.
pub(crate) const WINDOW_BITMAP_BYTES: usize = WINDOW_WORDS * 8;
/// The escape that opens a bitmap block: a 2-byte add of 0, which the encoder never writes.
pub(crate) const BITMAP_ESCAPE: [u8; 2] = [0xC0, 0x00];
/// Largest window index: `window * WINDOW_IDS` must fit in a `u64`.
pub(crate) const WINDOW_INDEX_MAX: u64 = u64::MAX >> WINDOW_SHIFT;
/// Sentinel for "no convertible window" in [`Tail::window_offset`].
pub(crate) const NO_WINDOW: u32 = u32::MAX;

const _: () = assert!(1u64 << WINDOW_SHIFT == WINDOW_IDS);
const _: () = assert!(WINDOW_BITMAP_BYTES == 512);
const _: () = assert!(7 * ADD_CODE_BYTES_MAX > 64);

/// Payload bits of an n-byte add code.
const fn add_payload_bits(code_bytes: usize) -> u32 {
    (7 * code_bytes - 1) as u32
}

/// Length in bytes of the canonical add code for gap `x`.
#[inline]
pub(crate) fn add_code_len(x: u64) -> usize {
    let bits = 64 - x.leading_zeros() as usize;
    // Shortest n with 7n - 1 >= bits.
    (bits + 1).div_ceil(7).max(1)
}

/// Write the canonical add code of `x` into `out[..n]`, returning n.
#[inline]
pub(crate) fn write_add(out: &mut [u8], x: u64) -> usize {
    let n = add_code_len(x);
    if n == 1 {
        out[0] = 0x80 | x as u8;
        return 1;
    }
    write_add_len(out, x, n);
    n
}

/// Write `x` as an add code of exactly `n` bytes (`x` must fit).
fn write_add_len(out: &mut [u8], x: u64, n: usize) {
    debug_assert!(n <= ADD_CODE_BYTES_MAX && (x as u128) < (1u128 << add_payload_bits(n)));
    let ones = (1u128 << n) - 1;
    let code: u128 = (ones << (8 * n - n)) | x as u128;
    let be = code.to_be_bytes();
    out[..n].copy_from_slice(&be[16 - n..]);
}

/// Length in bytes of a bitmap block for `window`.
#[inline]
pub(crate) fn bitmap_block_len(window: u64) -> usize {
    BITMAP_ESCAPE.len() + add_code_len(window) + WINDOW_BITMAP_BYTES
}

/// One decoded instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Instr {
    Null,
    Increment(u8),
    Add(u64),
    /// A bitmap block; `words_at` is the byte offset of its first word.
    Bitmap {
        window: u64,
        words_at: usize,
    },
}

fn corrupt(at: usize, reason: &str) -> Error {
    Error::corrupt(format!("rhizome instruction at byte {at}"), reason)
}

/// Read the add code (or escape) starting at `at`: returns (payload, code length, escape?).
#[inline]
fn read_add_code(bytes: &[u8], at: usize) -> Result<(u64, usize, bool)> {
    let first = bytes[at];
    let ones = first.leading_ones() as usize;
    let n = if ones < 8 {
        ones
    } else {
        let second = *bytes
            .get(at + 1)
            .ok_or_else(|| corrupt(at, "truncated add code"))?;
        8 + second.leading_ones() as usize
    };
    if n > ADD_CODE_BYTES_MAX {
        return Err(corrupt(at, "add code longer than 10 bytes"));
    }
    let code = bytes
        .get(at..at + n)
        .ok_or_else(|| corrupt(at, "truncated add code"))?;
    let mut value: u128 = 0;
    for &b in code {
        value = (value << 8) | b as u128;
    }
    let payload = value & ((1u128 << add_payload_bits(n)) - 1);
    if payload > u64::MAX as u128 {
        return Err(corrupt(at, "add gap overflows 64 bits"));
    }
    let x = payload as u64;
    if add_code_len(x) != n {
        if n == 2 && x == 0 {
            return Ok((0, 2, true));
        }
        return Err(corrupt(at, "non-canonical add code (reserved)"));
    }
    Ok((x, n, false))
}

/// Read one instruction at `at` (syntax only): returns it and the offset after it.
#[inline]
pub(crate) fn read_instr(bytes: &[u8], at: usize) -> Result<(Instr, usize)> {
    let first = bytes[at];
    if first < 0x80 {
        let instr = if first == 0 {
            Instr::Null
        } else {
            Instr::Increment(first)
        };
        return Ok((instr, at + 1));
    }
    if first < 0xC0 {
        return Ok((Instr::Add((first & 0x3F) as u64), at + 1));
    }
    if first < 0xF8 {
        // 2 to 4 bytes: one big-endian load, shift and mask.
        if let Some(code) = bytes.get(at..at + 4) {
            let n = first.leading_ones();
            let word = u32::from_be_bytes(code.try_into().expect("4-byte code"));
            let x = ((word >> (32 - 8 * n)) & ((1 << (7 * n - 1)) - 1)) as u64;
            if add_code_len(x) == n as usize {
                return Ok((Instr::Add(x), at + n as usize));
            }
        }
    }
    let (x, n, escape) = read_add_code(bytes, at)?;
    if !escape {
        return Ok((Instr::Add(x), at + n));
    }
    let window_at = at + BITMAP_ESCAPE.len();
    if window_at >= bytes.len() {
        return Err(corrupt(at, "truncated bitmap block"));
    }
    let (window, window_len, window_escape) = read_add_code_any(bytes, window_at)?;
    if window_escape {
        return Err(corrupt(at, "bitmap window index is an escape"));
    }
    if window > WINDOW_INDEX_MAX {
        return Err(corrupt(at, "bitmap window beyond the id space"));
    }
    let words_at = window_at + window_len;
    let end = words_at + WINDOW_BITMAP_BYTES;
    if end > bytes.len() {
        return Err(corrupt(at, "truncated bitmap block"));
    }
    Ok((Instr::Bitmap { window, words_at }, end))
}

/// Read an add-shaped code that must start with a 1-bit (window indexes of bitmap blocks).
fn read_add_code_any(bytes: &[u8], at: usize) -> Result<(u64, usize, bool)> {
    let first = bytes[at];
    if first < 0x80 {
        return Err(corrupt(at, "bitmap window index is not an add code"));
    }
    if first < 0xC0 {
        return Ok(((first & 0x3F) as u64, 1, false));
    }
    read_add_code(bytes, at)
}

/// Read a plain integer written as an add code (segment headers).
pub(crate) fn read_value_code(bytes: &[u8], at: usize) -> Result<(u64, usize)> {
    if at >= bytes.len() {
        return Err(corrupt(at, "truncated integer code"));
    }
    let (x, n, escape) = read_add_code_any(bytes, at)?;
    if escape {
        return Err(corrupt(at, "escape where an integer was expected"));
    }
    Ok((x, n))
}

/// Word `k` of the bitmap block whose words start at `words_at`.
#[inline]
pub(crate) fn block_word(bytes: &[u8], words_at: usize, k: usize) -> u64 {
    let at = words_at + 8 * k;
    u64::from_le_bytes(
        bytes[at..at + 8]
            .try_into()
            .expect("bitmap word is 8 bytes"),
    )
}

/// Last set bit of a bitmap block as an offset in its window, None if empty.
#[inline]
pub(crate) fn block_last_bit(bytes: &[u8], words_at: usize) -> Option<u64> {
    (0..WINDOW_WORDS).rev().find_map(|k| {
        let w = block_word(bytes, words_at, k);
        (w != 0).then(|| k as u64 * WORD_BITS + (63 - w.leading_zeros() as u64))
    })
}

/// Decoder position: the cursor and whether any id was produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CursorState {
    pub cursor: RecordId,
    pub started: bool,
}

/// Apply one instruction to the cursor with full validation, calling `emit` for runs, single
/// ids and blocks. Shared by the validating decoders.
pub(crate) fn apply_validated(
    bytes: &[u8],
    at: usize,
    instr: Instr,
    state: &mut CursorState,
    mut emit: impl FnMut(RecordId),
) -> Result<()> {
    match instr {
        Instr::Null => {}
        Instr::Increment(n) => {
            if !state.started {
                return Err(corrupt(at, "increment before the first id"));
            }
            let end = state
                .cursor
                .checked_add(n as u64)
                .ok_or_else(|| corrupt(at, "increment run overflows 64 bits"))?;
            for id in state.cursor + 1..=end {
                emit(id);
            }
            state.cursor = end;
        }
        Instr::Add(x) => {
            if state.started {
                if x == 0 {
                    return Err(corrupt(at, "add 0 after the first instruction"));
                }
                state.cursor = state
                    .cursor
                    .checked_add(x)
                    .ok_or_else(|| corrupt(at, "gap overflows 64 bits"))?;
            } else {
                state.cursor = x;
                state.started = true;
            }
            emit(state.cursor);
        }
        Instr::Bitmap { window, words_at } => {
            let base = window << WINDOW_SHIFT;
            if state.started && base <= state.cursor {
                return Err(corrupt(at, "bitmap window does not start after the cursor"));
            }
            let last =
                block_last_bit(bytes, words_at).ok_or_else(|| corrupt(at, "empty bitmap block"))?;
            for k in 0..WINDOW_WORDS {
                let mut w = block_word(bytes, words_at, k);
                while w != 0 {
                    emit(base + k as u64 * WORD_BITS + w.trailing_zeros() as u64);
                    w &= w - 1;
                }
            }
            state.cursor = base + last;
            state.started = true;
        }
    }
    Ok(())
}

/// Decode and validate a whole Rhizome, calling `emit` for every id and `boundary` before every
/// non-null instruction with (offset, state before, ids before). Returns the end state.
pub(crate) fn walk_validated(
    bytes: &[u8],
    mut emit: impl FnMut(RecordId),
    mut boundary: impl FnMut(usize, CursorState, u64),
) -> Result<WalkSummary> {
    let mut state = CursorState::default();
    let mut at = 0;
    let mut summary = WalkSummary::default();
    while at < bytes.len() {
        let (instr, next) = read_instr(bytes, at)?;
        if instr == Instr::Null {
            summary.null_bytes += 1;
        } else {
            boundary(at, state, summary.count);
            let count = &mut summary.count;
            apply_validated(bytes, at, instr, &mut state, |id| {
                *count += 1;
                emit(id)
            })?;
            summary.last_is_increment = matches!(instr, Instr::Increment(_));
        }
        at = next;
    }
    summary.trailing_null = bytes.last() == Some(&0);
    summary.end = state;
    Ok(summary)
}

/// What [`walk_validated`] learned about a Rhizome.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WalkSummary {
    pub count: u64,
    pub null_bytes: u64,
    pub end: CursorState,
    pub last_is_increment: bool,
    pub trailing_null: bool,
}

/// Decode and validate one Rhizome's bytes into its ids.
///
/// Errors with [`Error::Corruption`] on any malformed input; never panics, and stops after one
/// pass over the bytes.
pub fn decode_all(bytes: &[u8]) -> Result<Vec<RecordId>> {
    let mut ids = Vec::new();
    walk_validated(bytes, |id| ids.push(id), |_, _, _| {})?;
    Ok(ids)
}

/// Append state of one Rhizome being encoded (kept per Rhizome in the arena).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tail {
    /// Ids produced so far (only `> 0` matters to the encoder: "started").
    pub count: u64,
    /// Last id produced (the cursor).
    pub last: RecordId,
    /// The last byte of the stream is an increment that may be bumped in place.
    pub tail_increment: bool,
    /// Byte offset where the instructions of the current window begin, if that window may
    /// still become a bitmap block; [`NO_WINDOW`] otherwise.
    pub window_offset: u32,
}

impl Tail {
    pub(crate) const EMPTY: Tail = Tail {
        count: 0,
        last: 0,
        tail_increment: false,
        window_offset: NO_WINDOW,
    };

    /// A tail that continues after `state` (for re-encoding part of a Rhizome).
    pub(crate) fn after(state: CursorState) -> Tail {
        Tail {
            count: state.started as u64,
            last: state.cursor,
            ..Tail::EMPTY
        }
    }

    /// Bytes the next append of `id` may need at most.
    #[inline]
    pub(crate) fn append_len_max(&self, id: RecordId) -> usize {
        if self.count == 0 {
            add_code_len(id)
        } else if id == self.last + 1 {
            1
        } else {
            add_code_len(id - self.last)
        }
    }
}

/// Entries between skip-index entries.
pub(crate) const SKIP_INTERVAL_ENTRIES: u64 = 1024;

/// Append `id` (> tail.last, or any id when empty) to the stream `buf[..*len]`.
///
/// `buf` must have room for [`Tail::append_len_max`] more bytes. When `skip` is given, a skip
/// entry is recorded at instruction boundaries every [`SKIP_INTERVAL_ENTRIES`] ids.
#[inline]
pub(crate) fn append_id(
    tail: &mut Tail,
    buf: &mut [u8],
    len: &mut usize,
    id: RecordId,
    dense_blocks: bool,
    mut skip: Option<&mut Option<Box<SkipIndex>>>,
) {
    debug_assert!(tail.count == 0 || id > tail.last);
    if tail.count > 0 {
        let same_window = id >> WINDOW_SHIFT == tail.last >> WINDOW_SHIFT;
        if id == tail.last + 1
            && same_window
            && tail.tail_increment
            && buf[*len - 1] < INCREMENT_RUN_MAX
        {
            buf[*len - 1] += 1;
            tail.count += 1;
            tail.last = id;
            return;
        }
        if !same_window {
            if dense_blocks {
                convert_window(tail, buf, len, skip.as_deref_mut());
            }
            tail.window_offset = u32::try_from(*len).unwrap_or(NO_WINDOW);
        }
    } else {
        tail.window_offset = u32::try_from(*len).unwrap_or(NO_WINDOW);
    }
    if let Some(skip) = skip {
        if tail.count >= SKIP_INTERVAL_ENTRIES {
            let since = tail.count - skip.as_ref().map_or(0, |s| s.last_before());
            if since >= SKIP_INTERVAL_ENTRIES {
                skip.get_or_insert_with(Default::default)
                    .push(tail.last, *len, tail.count);
            }
        }
    }
    if tail.count > 0 && id == tail.last + 1 {
        buf[*len] = 1;
        *len += 1;
        tail.tail_increment = true;
    } else {
        let gap = if tail.count > 0 { id - tail.last } else { id };
        *len += write_add(&mut buf[*len..], gap);
        tail.tail_increment = false;
    }
    tail.count += 1;
    tail.last = id;
}

/// Replace the current window's instructions by a bitmap block when that is smaller.
pub(crate) fn convert_window(
    tail: &mut Tail,
    buf: &mut [u8],
    len: &mut usize,
    skip: Option<&mut Option<Box<SkipIndex>>>,
) {
    let start = tail.window_offset as usize;
    if tail.window_offset == NO_WINDOW || tail.count == 0 || start >= *len {
        return;
    }
    let window = tail.last >> WINDOW_SHIFT;
    let block_len = bitmap_block_len(window);
    if *len - start <= block_len {
        return;
    }
    // Offsets of the window's ids relative to the cursor before it; the last one is tail.last.
    let mut words = [0u64; WINDOW_WORDS];
    let mut relative: u64 = 0;
    let segment = &buf[start..*len];
    // First pass: the relative offset of the last id gives the base.
    let mut at = 0;
    while at < segment.len() {
        let (instr, next) = read_instr(segment, at).expect("encoder wrote a valid segment");
        match instr {
            Instr::Null => {}
            Instr::Increment(n) => relative += n as u64,
            Instr::Add(x) => relative += x,
            Instr::Bitmap { .. } => return, // never inside a convertible window
        }
        at = next;
    }
    let base = tail.last - relative;
    let window_base = window << WINDOW_SHIFT;
    let mut cursor = base;
    let mut set = |id: u64| {
        let bit = id - window_base;
        words[(bit / WORD_BITS) as usize] |= 1 << (bit % WORD_BITS);
    };
    at = 0;
    while at < segment.len() {
        let (instr, next) = read_instr(segment, at).expect("encoder wrote a valid segment");
        match instr {
            Instr::Null | Instr::Bitmap { .. } => {}
            Instr::Increment(n) => {
                for _ in 0..n {
                    cursor += 1;
                    set(cursor);
                }
            }
            Instr::Add(x) => {
                cursor += x;
                set(cursor);
            }
        }
        at = next;
    }
    let mut out = start;
    buf[out..out + 2].copy_from_slice(&BITMAP_ESCAPE);
    out += 2;
    out += write_add(&mut buf[out..], window);
    for w in words {
        buf[out..out + 8].copy_from_slice(&w.to_le_bytes());
        out += 8;
    }
    debug_assert_eq!(out - start, block_len);
    *len = out;
    tail.tail_increment = false;
    tail.window_offset = NO_WINDOW;
    if let Some(Some(skip)) = skip {
        skip.truncate_after(start);
    }
}

/// Encodes ids into a growable buffer (whole Rhizomes and re-encoded regions).
#[derive(Debug)]
pub(crate) struct VecEncoder {
    pub tail: Tail,
    pub bytes: Vec<u8>,
    pub len: usize,
    pub dense_blocks: bool,
    pub skip: Option<Box<SkipIndex>>,
    pub track_skip: bool,
}

impl VecEncoder {
    pub(crate) fn new(tail: Tail, dense_blocks: bool, track_skip: bool) -> Self {
        VecEncoder {
            tail,
            bytes: Vec::new(),
            len: 0,
            dense_blocks,
            skip: None,
            track_skip,
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, id: RecordId) {
        if self.bytes.len() < self.len + ADD_CODE_BYTES_MAX {
            let grown = (self.bytes.len() * 2)
                .max(self.len + ADD_CODE_BYTES_MAX)
                .max(64);
            self.bytes.resize(grown, 0);
        }
        let skip = if self.track_skip {
            Some(&mut self.skip)
        } else {
            None
        };
        append_id(
            &mut self.tail,
            &mut self.bytes,
            &mut self.len,
            id,
            self.dense_blocks,
            skip,
        );
    }

    /// Convert the last window too (for regions in the middle of a Rhizome).
    pub(crate) fn finish_window(&mut self) {
        if self.dense_blocks {
            let skip = if self.track_skip {
                Some(&mut self.skip)
            } else {
                None
            };
            convert_window(&mut self.tail, &mut self.bytes, &mut self.len, skip);
        }
    }

    pub(crate) fn into_bytes(mut self) -> Vec<u8> {
        self.bytes.truncate(self.len);
        self.bytes
    }
}

/// Encode one Rhizome from strictly ascending ids into its canonical bytes (exactly what
/// appending the ids one by one to an arena Rhizome produces).
///
/// # Panics
/// If `ids_ascending` is not strictly ascending (a caller bug).
pub fn encode_ids(ids_ascending: &[RecordId], options: super::ArenaOptions) -> Vec<u8> {
    let mut encoder = VecEncoder::new(Tail::EMPTY, options.dense_blocks, false);
    for (i, &id) in ids_ascending.iter().enumerate() {
        assert!(
            i == 0 || id > ids_ascending[i - 1],
            "encode_ids needs strictly ascending ids"
        );
        encoder.push(id);
    }
    encoder.into_bytes()
}
