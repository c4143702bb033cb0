//! Read side of a Rhizome: [`RhizomeRef`], [`RhizomeIter`] and the block visitor the bitmap
//! kernels use.
//!
//! The bytes behind a `RhizomeRef` were written by the encoder or validated by the arena's
//! decoder. Readers still never index out of bounds on their own account: a malformed code ends
//! iteration (and trips a debug assertion) instead of panicking.

use super::bitmap::Bitmap;
use super::codec::{
    block_last_bit, block_word, read_instr, read_value_code, CursorState, Instr, BITMAP_ESCAPE,
    WINDOW_BITMAP_BYTES, WINDOW_IDS, WINDOW_SHIFT, WINDOW_WORDS, WORD_BITS,
};
use super::skip::{SeekPoint, SkipIndex};
use super::RecordId;

/// A read-only view of one Rhizome.
#[derive(Debug, Clone, Copy)]
pub struct RhizomeRef<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) cardinality: u64,
    pub(crate) last: RecordId,
    pub(crate) skip: Option<&'a SkipIndex>,
}

impl<'a> RhizomeRef<'a> {
    /// Number of ids, O(1).
    pub fn cardinality(&self) -> u64 {
        self.cardinality
    }

    pub fn is_empty(&self) -> bool {
        self.cardinality == 0
    }

    /// The smallest id (decodes the first instruction).
    pub fn first(&self) -> Option<RecordId> {
        self.iter().next()
    }

    /// The largest id, O(1).
    pub fn last(&self) -> Option<RecordId> {
        (self.cardinality > 0).then_some(self.last)
    }

    /// Ascending iterator over the ids.
    pub fn iter(&self) -> RhizomeIter<'a> {
        RhizomeIter {
            bytes: self.bytes,
            skip: self.skip,
            at: 0,
            state: CursorState::default(),
            run_left: 0,
            block: None,
        }
    }

    /// Bytes of the instruction stream (including null padding).
    pub fn encoded_len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether `id` is in the Rhizome: a skip-index search plus at most one block.
    pub fn contains(&self, id: RecordId) -> bool {
        if self.cardinality == 0 || id > self.last {
            return false;
        }
        self.iter().advance_to(id) == Some(id)
    }

    /// Ids `< x`: a skip-index search plus at most one block.
    pub fn rank(&self, x: RecordId) -> u64 {
        if self.cardinality == 0 || x == 0 {
            return 0;
        }
        if x > self.last {
            return self.cardinality;
        }
        let mut it = self.iter();
        let before = it.seek_index(x);
        before + it.skip_below(x)
    }

    /// Ids in `[lo, hi)`.
    pub fn count_between(&self, lo: RecordId, hi: RecordId) -> u64 {
        if lo >= hi {
            return 0;
        }
        self.rank(hi) - self.rank(lo)
    }

    /// Call `f` for every id in ascending order: the fastest full decode (see `decode.rs`:
    /// instruction starts are found 32 bytes at a time without branches).
    #[inline]
    pub fn for_each(&self, f: impl FnMut(RecordId)) {
        super::decode::for_each_id(self.bytes, f);
    }

    /// Visit runs, single ids and bitmap blocks (for word-level kernels).
    pub(crate) fn visit(&self, visitor: &mut impl Visitor) {
        let bytes = self.bytes;
        let mut at = 0usize;
        let mut cursor: RecordId = 0;
        while at < bytes.len() {
            // Fast paths for the common codes (increments and 1- to 3-byte adds); the escape
            // `C0 00` and longer codes go through the full decoder.
            let first = bytes[at];
            if first != 0 && first < 0x80 {
                visitor.run(cursor + 1, first as u64);
                cursor += first as u64;
                at += 1;
                continue;
            }
            if (0x80..0xC0).contains(&first) {
                cursor += (first & 0x3F) as u64;
                visitor.id(cursor);
                at += 1;
                continue;
            }
            if (0xC0..0xE0).contains(&first)
                && at + 1 < bytes.len()
                && (first != 0xC0 || bytes[at + 1] != 0)
            {
                cursor += ((first & 0x1F) as u64) << 8 | bytes[at + 1] as u64;
                visitor.id(cursor);
                at += 2;
                continue;
            }
            if (0xE0..0xF0).contains(&first) && at + 2 < bytes.len() {
                cursor += ((first & 0x0F) as u64) << 16
                    | (bytes[at + 1] as u64) << 8
                    | bytes[at + 2] as u64;
                visitor.id(cursor);
                at += 3;
                continue;
            }
            let Ok((instr, next)) = read_instr(bytes, at) else {
                debug_assert!(false, "malformed instruction in a trusted Rhizome");
                return;
            };
            match instr {
                Instr::Null => {}
                Instr::Increment(n) => {
                    visitor.run(cursor + 1, n as u64);
                    cursor += n as u64;
                }
                Instr::Add(x) => {
                    cursor = cursor.wrapping_add(x);
                    visitor.id(cursor);
                }
                Instr::Bitmap { window, words_at } => {
                    let words = std::array::from_fn(|k| block_word(bytes, words_at, k));
                    visitor.block(window, &words);
                    let last = block_last_bit(bytes, words_at).unwrap_or(0);
                    cursor = (window << WINDOW_SHIFT) + last;
                }
            }
            at = next;
        }
    }

    /// `bitmap |= self`; ids `>= bitmap.universe()` are ignored. Bitmap blocks are ORed a word
    /// at a time.
    pub fn or_into(&self, bitmap: &mut Bitmap) {
        struct Or<'b>(&'b mut Bitmap);
        impl Visitor for Or<'_> {
            fn id(&mut self, id: RecordId) {
                if id < self.0.universe() {
                    self.0.insert(id);
                }
            }
            fn block(&mut self, window: u64, words: &[u64; WINDOW_WORDS]) {
                let first = (window as usize).saturating_mul(WINDOW_WORDS);
                let universe = self.0.universe();
                let target = self.0.words_mut();
                for (k, &w) in words.iter().enumerate() {
                    let Some(slot) = target.get_mut(first.saturating_add(k)) else {
                        break;
                    };
                    *slot |= w;
                }
                self.0.clear_beyond_universe(universe);
            }
        }
        self.visit(&mut Or(bitmap));
    }

    /// `|self ∩ bitmap|` without materialising ids; bitmap blocks are ANDed and counted a word
    /// at a time.
    pub fn count_and(&self, bitmap: &Bitmap) -> u64 {
        struct Count<'b> {
            bitmap: &'b Bitmap,
            count: u64,
        }
        impl Visitor for Count<'_> {
            fn id(&mut self, id: RecordId) {
                self.count += self.bitmap.contains_or_false(id) as u64;
            }
            fn block(&mut self, window: u64, words: &[u64; WINDOW_WORDS]) {
                let first = (window as usize).saturating_mul(WINDOW_WORDS);
                let target = self.bitmap.words();
                if let Some(slice) = target.get(first..) {
                    for (a, b) in words.iter().zip(slice) {
                        self.count += (a & b).count_ones() as u64;
                    }
                }
            }
        }
        let mut count = Count { bitmap, count: 0 };
        self.visit(&mut count);
        count.count
    }

    /// Call `f` for the ids of `self` that are in `bitmap`, ascending.
    pub fn for_each_and(&self, bitmap: &Bitmap, f: impl FnMut(RecordId)) {
        struct Each<'b, F> {
            bitmap: &'b Bitmap,
            f: F,
        }
        impl<F: FnMut(RecordId)> Visitor for Each<'_, F> {
            fn id(&mut self, id: RecordId) {
                if self.bitmap.contains_or_false(id) {
                    (self.f)(id)
                }
            }
            fn block(&mut self, window: u64, words: &[u64; WINDOW_WORDS]) {
                let first = (window as usize).saturating_mul(WINDOW_WORDS);
                let base = window << WINDOW_SHIFT;
                if let Some(slice) = self.bitmap.words().get(first..) {
                    for (k, (a, b)) in words.iter().zip(slice).enumerate() {
                        let mut w = a & b;
                        while w != 0 {
                            (self.f)(base + k as u64 * WORD_BITS + w.trailing_zeros() as u64);
                            w &= w - 1;
                        }
                    }
                }
            }
        }
        self.visit(&mut Each { bitmap, f });
    }
}

/// Receives the pieces of a Rhizome from [`RhizomeRef::visit`].
pub(crate) trait Visitor {
    fn id(&mut self, id: RecordId);
    fn run(&mut self, first: RecordId, count: u64) {
        if count > 0 {
            for id in first..=first + (count - 1) {
                self.id(id);
            }
        }
    }
    fn block(&mut self, window: u64, words: &[u64; WINDOW_WORDS]) {
        let base = window << WINDOW_SHIFT;
        for (k, &word) in words.iter().enumerate() {
            let mut w = word;
            while w != 0 {
                self.id(base + k as u64 * WORD_BITS + w.trailing_zeros() as u64);
                w &= w - 1;
            }
        }
    }
}

/// State inside a bitmap block.
#[derive(Debug, Clone, Copy)]
struct BlockState {
    base: RecordId,
    words_at: usize,
    /// Index of `word` in the block.
    word_index: usize,
    /// Unconsumed bits of the current word.
    word: u64,
    /// The block's last set bit (the cursor after the block).
    last: RecordId,
}

/// Header of the bitmap block an iterator sits on.
#[derive(Debug, Clone, Copy)]
struct BlockAhead {
    window: u64,
    /// Offset of the block's first word.
    words_at: usize,
}

/// Ascending iterator over a Rhizome; [`RhizomeIter::advance_to`] seeks via the skip index.
#[derive(Debug, Clone)]
pub struct RhizomeIter<'a> {
    bytes: &'a [u8],
    skip: Option<&'a SkipIndex>,
    /// Offset of the next instruction.
    at: usize,
    /// Cursor: the last id consumed (inside a run: the last id of the run consumed).
    state: CursorState,
    /// Ids left in the current increment run.
    run_left: u64,
    block: Option<BlockState>,
}

impl<'a> RhizomeIter<'a> {
    /// The first id `>= target` among those not yet returned (consumed), or None. Jumps via the
    /// skip index, then decodes at most one block.
    pub fn advance_to(&mut self, target: RecordId) -> Option<RecordId> {
        self.seek_index(target);
        self.skip_below(target);
        self.next()
    }

    /// Jump forward to the skip entry for `target` if it is ahead; returns the ids before the
    /// entry (0 if no entry is used).
    pub(crate) fn seek_index(&mut self, target: RecordId) -> u64 {
        let Some(skip) = self.skip else { return 0 };
        let point: SeekPoint = skip.seek(target);
        if point.entry.is_none() || point.offset <= self.at {
            return 0;
        }
        self.at = point.offset;
        self.state = point.state;
        self.run_left = 0;
        self.block = None;
        point.before
    }

    /// Consume every id `< target`, returning how many were consumed.
    pub(crate) fn skip_below(&mut self, target: RecordId) -> u64 {
        let mut consumed = 0u64;
        loop {
            if self.run_left > 0 {
                let cursor = self.state.cursor;
                let below = target.saturating_sub(cursor + 1).min(self.run_left);
                consumed += below;
                self.state.cursor += below;
                self.run_left -= below;
                if self.run_left > 0 {
                    return consumed;
                }
                continue;
            }
            if let Some(block) = &mut self.block {
                if target <= block.base {
                    return consumed;
                }
                let offset = target - block.base;
                // Ids after a block may share its window, so leave it once past its last bit.
                if target > block.last {
                    consumed += block.word.count_ones() as u64;
                    for k in block.word_index + 1..WINDOW_WORDS {
                        consumed += block_word(self.bytes, block.words_at, k).count_ones() as u64;
                    }
                    self.state.cursor = block.last;
                    self.block = None;
                    continue;
                }
                let target_word = (offset / WORD_BITS) as usize;
                if target_word < block.word_index {
                    return consumed;
                }
                if target_word > block.word_index {
                    consumed += block.word.count_ones() as u64;
                    for k in block.word_index + 1..target_word {
                        consumed += block_word(self.bytes, block.words_at, k).count_ones() as u64;
                    }
                    block.word_index = target_word;
                    block.word = block_word(self.bytes, block.words_at, target_word);
                }
                let low = (1u64 << (offset % WORD_BITS)) - 1;
                consumed += (block.word & low).count_ones() as u64;
                block.word &= !low;
                return consumed;
            }
            if self.at >= self.bytes.len() {
                return consumed;
            }
            let Ok((instr, next)) = read_instr(self.bytes, self.at) else {
                debug_assert!(false, "malformed instruction in a trusted Rhizome");
                self.at = self.bytes.len();
                return consumed;
            };
            match instr {
                Instr::Null => self.at = next,
                Instr::Increment(n) => {
                    self.at = next;
                    self.run_left = n as u64;
                }
                Instr::Add(x) => {
                    let id = if self.state.started {
                        self.state.cursor.wrapping_add(x)
                    } else {
                        x
                    };
                    if id >= target {
                        return consumed;
                    }
                    self.at = next;
                    self.state = CursorState {
                        cursor: id,
                        started: true,
                    };
                    consumed += 1;
                }
                Instr::Bitmap { window, words_at } => {
                    let base = window << WINDOW_SHIFT;
                    if base >= target {
                        return consumed;
                    }
                    self.enter_block(base, words_at, next);
                }
            }
        }
    }

    fn enter_block(&mut self, base: RecordId, words_at: usize, next: usize) {
        self.at = next;
        self.state.started = true;
        let last = block_last_bit(self.bytes, words_at).unwrap_or(0);
        self.block = Some(BlockState {
            base,
            words_at,
            word_index: 0,
            word: block_word(self.bytes, words_at, 0),
            last: base + last,
        });
    }

    /// The next id without consuming it.
    pub(crate) fn peek(&self) -> Option<RecordId> {
        self.clone().next()
    }

    /// The window of the next id, without consuming it. A bitmap block ahead answers from its
    /// header, without looking at its words.
    #[inline]
    pub(crate) fn peek_window(&self) -> Option<u64> {
        match self.block_ahead() {
            Some(ahead) => Some(ahead.window),
            None => self.peek().map(|id| id >> WINDOW_SHIFT),
        }
    }

    /// The bitmap block the iterator sits on: nothing of a run or an entered block is pending
    /// and the next instruction is a block's escape.
    #[inline]
    fn block_ahead(&self) -> Option<BlockAhead> {
        if self.run_left != 0 || self.block.is_some() {
            return None;
        }
        let bytes = self.bytes;
        if bytes.get(self.at..self.at + BITMAP_ESCAPE.len())? != BITMAP_ESCAPE {
            return None;
        }
        let code_at = self.at + BITMAP_ESCAPE.len();
        let (window, code_len) = match *bytes.get(code_at)? {
            first @ 0x80..=0xBF => ((first & 0x3F) as u64, 1),
            first @ 0xC0..=0xDF => {
                let second = *bytes.get(code_at + 1)?;
                (((first & 0x1F) as u64) << 8 | second as u64, 2)
            }
            _ => read_value_code(bytes, code_at).ok()?,
        };
        let words_at = code_at + code_len;
        (bytes.len() >= words_at + WINDOW_BITMAP_BYTES).then_some(BlockAhead { window, words_at })
    }

    /// When the next thing in the iterator is the bitmap block of `window`, consume it and
    /// return its 512 bytes of words (64 little-endian u64s); otherwise consume nothing and
    /// return None (the caller falls back to [`RhizomeIter::take_window`]).
    ///
    /// A block starts after the cursor, so an iterator sitting on the block of `window` has
    /// consumed every id of the windows before: nothing is skipped by taking it.
    #[inline]
    pub(crate) fn take_window_block(&mut self, window: u64) -> Option<&'a [u8]> {
        let ahead = self.block_ahead()?;
        if ahead.window != window {
            return None;
        }
        let words = &self.bytes[ahead.words_at..ahead.words_at + WINDOW_BITMAP_BYTES];
        // The encoder never writes an empty block; a malformed one leaves the cursor before it.
        let last = block_last_bit(self.bytes, ahead.words_at);
        self.at = ahead.words_at + WINDOW_BITMAP_BYTES;
        if let Some(last) = last {
            self.state = CursorState {
                cursor: (window << WINDOW_SHIFT) + last,
                started: true,
            };
        }
        Some(words)
    }

    /// Set the bits of window `window` into `out` (64 words), consuming every id up to the end
    /// of that window. Bitmap blocks of that window are copied a word at a time.
    pub(crate) fn take_window(&mut self, window: u64, out: &mut [u64; WINDOW_WORDS]) {
        let base = window << WINDOW_SHIFT;
        // A walk over consecutive windows is already there: the skip index is searched only
        // for a jump of more than a window.
        if !self.state.started || base > self.state.cursor.saturating_add(WINDOW_IDS) {
            self.seek_index(base);
        }
        self.skip_below(base);
        loop {
            if self.run_left == 0 && self.block.is_none() && self.state.started {
                self.take_short_adds(window, base, out);
            }
            if self.run_left > 0 {
                let first = self.state.cursor + 1;
                if first >> WINDOW_SHIFT != window {
                    return;
                }
                let in_window = (WINDOW_IDS - (first - base)).min(self.run_left);
                for bit in first - base..first - base + in_window {
                    out[(bit / WORD_BITS) as usize] |= 1 << (bit % WORD_BITS);
                }
                self.state.cursor += in_window;
                self.run_left -= in_window;
                continue;
            }
            if let Some(block) = self.block {
                if block.base != base {
                    return;
                }
                out[block.word_index] |= block.word;
                let words = &self.bytes[block.words_at..block.words_at + WINDOW_WORDS * 8];
                for (slot, chunk) in out
                    .iter_mut()
                    .zip(words.chunks_exact(8))
                    .skip(block.word_index + 1)
                {
                    *slot |= u64::from_le_bytes(chunk.try_into().expect("8-byte word"));
                }
                self.state.cursor = block.last;
                self.block = None;
                continue;
            }
            if self.at >= self.bytes.len() {
                return;
            }
            let Ok((instr, next)) = read_instr(self.bytes, self.at) else {
                debug_assert!(false, "malformed instruction in a trusted Rhizome");
                self.at = self.bytes.len();
                return;
            };
            match instr {
                Instr::Null => self.at = next,
                Instr::Increment(n) => {
                    self.at = next;
                    self.run_left = n as u64;
                }
                Instr::Add(x) => {
                    let id = if self.state.started {
                        self.state.cursor.wrapping_add(x)
                    } else {
                        x
                    };
                    if id >> WINDOW_SHIFT != window {
                        return;
                    }
                    let bit = id - base;
                    out[(bit / WORD_BITS) as usize] |= 1 << (bit % WORD_BITS);
                    self.at = next;
                    self.state = CursorState {
                        cursor: id,
                        started: true,
                    };
                }
                Instr::Bitmap {
                    window: w,
                    words_at,
                } => {
                    if w != window {
                        return;
                    }
                    self.enter_block(w << WINDOW_SHIFT, words_at, next);
                }
            }
        }
    }
}

impl RhizomeIter<'_> {
    /// The common case of [`RhizomeIter::take_window`], inline: 1- and 2-byte adds (gaps
    /// below 2^13), the bulk of a Rhizome a few percent dense or more. Stops before anything
    /// else (runs, nulls, longer adds, a bitmap block's `C0 00` escape, the end) and before
    /// the first id past the window, leaving those to the general path.
    #[inline]
    fn take_short_adds(&mut self, window: u64, base: RecordId, out: &mut [u64; WINDOW_WORDS]) {
        let bytes = self.bytes;
        let mut at = self.at;
        let mut cursor = self.state.cursor;
        while let Some(&first) = bytes.get(at) {
            let (gap, len) = if first & 0xC0 == 0x80 {
                ((first & 0x3F) as u64, 1)
            } else if first & 0xE0 == 0xC0 {
                let Some(&second) = bytes.get(at + 1) else {
                    break;
                };
                let gap = ((first & 0x1F) as u64) << 8 | second as u64;
                // A 2-byte code of a gap that fits in 1 byte is not canonical: `C0 00` opens
                // a bitmap block.
                if gap < 0x40 {
                    break;
                }
                (gap, 2)
            } else {
                break;
            };
            let id = cursor.wrapping_add(gap);
            if id >> WINDOW_SHIFT != window {
                break;
            }
            let bit = id - base;
            out[(bit / WORD_BITS) as usize] |= 1 << (bit % WORD_BITS);
            cursor = id;
            at += len;
        }
        self.at = at;
        self.state.cursor = cursor;
    }
}

impl Iterator for RhizomeIter<'_> {
    type Item = RecordId;

    #[inline]
    fn next(&mut self) -> Option<RecordId> {
        loop {
            if self.run_left > 0 {
                self.run_left -= 1;
                self.state.cursor += 1;
                return Some(self.state.cursor);
            }
            if let Some(block) = &mut self.block {
                if block.word != 0 {
                    let id = block.base
                        + block.word_index as u64 * WORD_BITS
                        + block.word.trailing_zeros() as u64;
                    block.word &= block.word - 1;
                    self.state.cursor = id;
                    return Some(id);
                }
                block.word_index += 1;
                if block.word_index == WINDOW_WORDS {
                    self.state.cursor = block.last;
                    self.block = None;
                } else {
                    block.word = block_word(self.bytes, block.words_at, block.word_index);
                }
                continue;
            }
            if self.at >= self.bytes.len() {
                return None;
            }
            let Ok((instr, next)) = read_instr(self.bytes, self.at) else {
                debug_assert!(false, "malformed instruction in a trusted Rhizome");
                self.at = self.bytes.len();
                return None;
            };
            match instr {
                Instr::Null => self.at = next,
                Instr::Increment(n) => {
                    self.at = next;
                    self.run_left = n as u64;
                }
                Instr::Add(x) => {
                    self.at = next;
                    let id = if self.state.started {
                        self.state.cursor.wrapping_add(x)
                    } else {
                        x
                    };
                    self.state = CursorState {
                        cursor: id,
                        started: true,
                    };
                    return Some(id);
                }
                Instr::Bitmap { window, words_at } => {
                    self.enter_block(window << WINDOW_SHIFT, words_at, next)
                }
            }
        }
    }
}
