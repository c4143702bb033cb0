//! Skip index ("Rhizomes of Rhizomes"): every ~[`SKIP_INTERVAL_ENTRIES`] ids, at an
//! instruction boundary, a Rhizome records where it is, so that seeks, `contains` and
//! count-between cost a binary search plus at most one block of instructions.
//!
//! ```text
//!  level 2:  cursor of entries[0], entries[64], entries[128], …   (binary search first)
//!  level 1:  entries[k] = (cursor before offset, byte offset, ids before offset)
//!  stream:   |--- block 0 ---|--- block 1 ---|--- block 2 ---| …
//!            ^0              ^entries[0].offset
//! ```
//!
//! Block k runs from `entries[k-1].offset` (or 0) to `entries[k].offset` (or the end). All ids
//! before an entry's offset are `<= cursor`, all ids after it are `> cursor`.
//!
//! [`SKIP_INTERVAL_ENTRIES`]: super::codec::SKIP_INTERVAL_ENTRIES

use super::codec::CursorState;
use super::RecordId;

/// Level-1 entries summarised by one level-2 key.
pub(crate) const SKIP_UPPER_FANOUT: usize = 64;

/// One skip entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SkipEntry {
    /// The last id produced before `offset`.
    pub cursor: RecordId,
    /// Ids produced before `offset`.
    pub before: u64,
    /// Byte offset of an instruction boundary, relative to the Rhizome's start.
    pub offset: u32,
}

/// The skip index of one long Rhizome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SkipIndex {
    entries: Vec<SkipEntry>,
    /// `entries[SKIP_UPPER_FANOUT * i].cursor`: the second level.
    upper: Vec<RecordId>,
}

/// Where to start decoding for a target: the state at `offset` and the ids before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct SeekPoint {
    pub offset: usize,
    pub state: CursorState,
    pub before: u64,
    /// Index of the entry used (None: the Rhizome's start).
    pub entry: Option<usize>,
}

impl SkipIndex {
    pub(crate) fn push(&mut self, cursor: RecordId, offset: usize, before: u64) {
        let Ok(offset) = u32::try_from(offset) else {
            return;
        };
        debug_assert!(self
            .entries
            .last()
            .is_none_or(|e| e.offset < offset && e.cursor < cursor));
        if self.entries.len().is_multiple_of(SKIP_UPPER_FANOUT) {
            self.upper.push(cursor);
        }
        self.entries.push(SkipEntry {
            cursor,
            before,
            offset,
        });
    }

    pub(crate) fn last_before(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.before)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn size_bytes(&self) -> usize {
        self.entries.len() * std::mem::size_of::<SkipEntry>()
            + self.upper.len() * std::mem::size_of::<RecordId>()
    }

    /// Drop entries whose offset is beyond `offset` (their bytes were rewritten).
    pub(crate) fn truncate_after(&mut self, offset: usize) {
        let keep = self
            .entries
            .partition_point(|e| (e.offset as usize) <= offset);
        self.entries.truncate(keep);
        self.upper.truncate(keep.div_ceil(SKIP_UPPER_FANOUT));
    }

    /// After rewriting bytes `[start, end)` into `new_len` bytes and removing one id in it:
    /// drop entries strictly inside, shift and renumber entries at or after `end`.
    pub(crate) fn rewrite(&mut self, start: usize, end: usize, new_end: usize) {
        self.entries.retain_mut(|e| {
            let at = e.offset as usize;
            if at > start && at < end {
                return false;
            }
            if at >= end {
                e.before -= 1;
                e.offset = (at + new_end - end) as u32;
            }
            true
        });
        self.rebuild_upper();
    }

    /// One id removed inside a block without moving bytes: renumber entries after `at`.
    pub(crate) fn removed_at(&mut self, at: usize) {
        for e in self.entries.iter_mut().filter(|e| e.offset as usize > at) {
            e.before -= 1;
        }
    }

    fn rebuild_upper(&mut self) {
        self.upper.clear();
        self.upper.extend(
            self.entries
                .iter()
                .step_by(SKIP_UPPER_FANOUT)
                .map(|e| e.cursor),
        );
    }

    /// The last entry whose cursor is `< target` (where the first id `>= target` lies in that
    /// entry's block), via the second level then the first.
    pub(crate) fn seek(&self, target: RecordId) -> SeekPoint {
        let group = self.upper.partition_point(|&c| c < target);
        let lo = group.saturating_sub(1) * SKIP_UPPER_FANOUT;
        let hi = (group * SKIP_UPPER_FANOUT).min(self.entries.len());
        let found = lo + self.entries[lo..hi].partition_point(|e| e.cursor < target);
        match found.checked_sub(1) {
            None => SeekPoint::default(),
            Some(k) => {
                let e = self.entries[k];
                SeekPoint {
                    offset: e.offset as usize,
                    state: CursorState {
                        cursor: e.cursor,
                        started: true,
                    },
                    before: e.before,
                    entry: Some(k),
                }
            }
        }
    }

    /// The first entry offset `>= offset`.
    pub(crate) fn boundary_at_or_after(&self, offset: usize) -> Option<usize> {
        let k = self
            .entries
            .partition_point(|e| (e.offset as usize) < offset);
        self.entries.get(k).map(|e| e.offset as usize)
    }
}
