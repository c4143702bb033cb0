//! [`RhizomeArena`]: many Rhizomes of one column shard in one byte arena plus an offsets
//! table, so creating a Rhizome allocates nothing.
//!
//! ```text
//!  metas:  [ Meta 0 | Meta 1 | Meta 2 | … ]     offset, len, capacity, append state (40 bytes)
//!  bytes:  | R0 ....| R2 ..........| garbage | R1 ........................|
//!          ^offset0  ^offset2       (R1's old region)  ^offset1
//! ```
//!
//! A Rhizome's region holds `len` bytes of instructions and room up to `capacity`. When an
//! append outgrows the capacity the region grows in place if it is the arena's last, else it
//! moves, its capacity doubled to a power of two, into an abandoned region of that size class
//! or to the arena's end. The region left behind is garbage that the next Rhizome to grow to its
//! size takes (columns of many values keep creating small Rhizomes); garbage is squeezed out
//! once it exceeds half of the arena.
//!
//! What only some Rhizomes have — null padding left by deletes, a skip index once past ~1,024
//! ids — is kept beside the table, in a map flagged by one bit per Rhizome, so the entry
//! that every append reads stays small: columns of near-unique values hold about one Rhizome
//! per record.
//!
//! Segment encoding ([`RhizomeArena::encode`]), all integers written as add codes (see
//! `codec.rs`):
//!
//! ```text
//!  "RHZA" version:u8=1  count  { len  cardinality  bytes[len] } × count
//! ```

use super::codec::{
    append_id, read_instr, read_value_code, walk_validated, write_add, CursorState, Instr, Tail,
    VecEncoder, ADD_CODE_BYTES_MAX, NO_WINDOW, SKIP_INTERVAL_ENTRIES, WINDOW_SHIFT,
};
use super::reader::RhizomeRef;
use super::skip::{SeekPoint, SkipIndex};
use super::{ArenaOptions, ArenaStats, RecordId, RhizomeIndex};
use crate::prefetch::{prefetch, prefetch_ends};
use crate::{Error, Result};
use hashbrown::HashMap;

/// Rows [`RhizomeArena::append_each`] prefetches the Rhizome entries of ahead of the one it
/// appends, and the regions of (a region's address is in its entry, fetched earlier).
const ENTRY_AHEAD: usize = 16;
const REGION_AHEAD: usize = 8;
/// First capacity given to a Rhizome's region.
const REGION_CAPACITY_MIN_BYTES: usize = 4;
/// Largest Rhizome region (offsets inside a Rhizome are u32).
const REGION_BYTES_MAX: usize = u32::MAX as usize;
/// Segment magic.
const SEGMENT_MAGIC: &[u8; 4] = b"RHZA";
/// Segment format version.
const SEGMENT_VERSION: u8 = 1;
/// `delete_many` rebuilds the Rhizome when it removes at least 1/this of its ids.
const DELETE_MANY_REBUILD_DIVISOR: u64 = 8;

/// One Rhizome's entry in the offsets table.
#[derive(Debug, Clone)]
struct Meta {
    /// Start of the region in the arena.
    offset: usize,
    /// Bytes of instructions (including null padding).
    len: u32,
    /// Bytes reserved for the region.
    capacity: u32,
    /// Cardinality, last id and what the next append may reuse.
    tail: Tail,
}

// Every Rhizome has one: columns of near-unique values have about one per record.
const _: () = assert!(std::mem::size_of::<Meta>() == 40);

impl Meta {
    const EMPTY: Meta = Meta {
        offset: 0,
        len: 0,
        capacity: 0,
        tail: Tail::EMPTY,
    };
}

/// What only some Rhizomes have.
#[derive(Debug, Clone, Default)]
struct Extra {
    /// Null padding bytes inside the Rhizome's `len`, left by deletes.
    nulls: u32,
    /// Present once the Rhizome has more than ~`SKIP_INTERVAL_ENTRIES` ids.
    skip: Option<Box<SkipIndex>>,
}

impl Extra {
    fn is_empty(&self) -> bool {
        self.nulls == 0 && self.skip.is_none()
    }
}

/// The Rhizomes of one column shard.
#[derive(Clone)]
pub struct RhizomeArena {
    options: ArenaOptions,
    bytes: Vec<u8>,
    metas: Vec<Meta>,
    /// The [`Extra`] of the Rhizomes that have one; `flagged` has their bits set.
    extras: HashMap<RhizomeIndex, Extra>,
    /// One bit per Rhizome: whether it is in `extras` (tested before every append).
    flagged: Vec<u64>,
    /// Bytes of abandoned regions inside `bytes`.
    garbage_bytes: usize,
    /// Abandoned regions by size class: `free[k]` holds the offsets of regions of at least
    /// 2^k bytes, which a Rhizome growing to 2^k bytes takes before the arena grows.
    free: Vec<Vec<usize>>,
}

impl std::fmt::Debug for RhizomeArena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RhizomeArena")
            .field("options", &self.options)
            .field("stats", &self.stats())
            .finish()
    }
}

fn push_code(out: &mut Vec<u8>, x: u64) {
    let mut code = [0u8; ADD_CODE_BYTES_MAX];
    let n = write_add(&mut code, x);
    out.extend_from_slice(&code[..n]);
}

/// Decode the ids of the instructions in `bytes[start..end]` starting from `state`; returns the
/// ids and the null bytes seen.
fn decode_region(
    bytes: &[u8],
    start: usize,
    end: usize,
    mut state: CursorState,
) -> Result<(Vec<RecordId>, u32)> {
    let mut ids = Vec::new();
    let mut nulls = 0u32;
    let region = &bytes[..end];
    let mut at = start;
    while at < end {
        let (instr, next) = read_instr(region, at)?;
        if instr == Instr::Null {
            nulls += 1;
        }
        super::codec::apply_validated(region, at, instr, &mut state, |id| ids.push(id))?;
        at = next;
    }
    Ok((ids, nulls))
}

impl RhizomeArena {
    pub fn new(options: ArenaOptions) -> Self {
        RhizomeArena {
            options,
            bytes: Vec::new(),
            metas: Vec::new(),
            extras: HashMap::new(),
            flagged: Vec::new(),
            garbage_bytes: 0,
            free: Vec::new(),
        }
    }

    /// Number of Rhizomes.
    pub fn len(&self) -> usize {
        self.metas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.metas.is_empty()
    }

    /// A new empty Rhizome; allocates no region until its first append.
    pub fn push(&mut self) -> RhizomeIndex {
        let index =
            RhizomeIndex::try_from(self.metas.len()).expect("fewer than 2^32 Rhizomes per arena");
        self.metas.push(Meta::EMPTY);
        if index % 64 == 0 {
            self.flagged.push(0);
        }
        index
    }

    /// Rhizome `index`'s word in `flagged`, and its bit there.
    #[inline]
    fn flag(index: usize) -> (usize, u64) {
        (index / 64, 1 << (index % 64))
    }

    /// Whether Rhizome `index` has an [`Extra`].
    #[inline]
    fn is_flagged(&self, index: usize) -> bool {
        let (word, bit) = Self::flag(index);
        self.flagged[word] & bit != 0
    }

    fn extra_mut(&mut self, index: usize) -> Option<&mut Extra> {
        if self.is_flagged(index) {
            self.extras.get_mut(&(index as RhizomeIndex))
        } else {
            None
        }
    }

    fn extra(&self, index: usize) -> Option<&Extra> {
        if self.is_flagged(index) {
            self.extras.get(&(index as RhizomeIndex))
        } else {
            None
        }
    }

    /// Null padding bytes of Rhizome `index`.
    fn nulls(&self, index: usize) -> u32 {
        self.extra(index).map_or(0, |e| e.nulls)
    }

    fn skip(&self, index: usize) -> Option<&SkipIndex> {
        self.extra(index).and_then(|e| e.skip.as_deref())
    }

    /// Take Rhizome `index`'s [`Extra`] out of the map (an empty one if it has none); give it
    /// back with [`RhizomeArena::put_extra`].
    fn take_extra(&mut self, index: usize) -> Extra {
        if self.is_flagged(index) {
            let (word, bit) = Self::flag(index);
            self.flagged[word] &= !bit;
            self.extras
                .remove(&(index as RhizomeIndex))
                .unwrap_or_default()
        } else {
            Extra::default()
        }
    }

    /// Store Rhizome `index`'s [`Extra`] (none when it is empty). It must not have one.
    fn put_extra(&mut self, index: usize, extra: Extra) {
        debug_assert!(!self.is_flagged(index));
        if !extra.is_empty() {
            let (word, bit) = Self::flag(index);
            self.flagged[word] |= bit;
            self.extras.insert(index as RhizomeIndex, extra);
        }
    }

    fn index(&self, r: RhizomeIndex) -> Result<usize> {
        let index = r as usize;
        if index < self.metas.len() {
            Ok(index)
        } else {
            Err(Error::InvalidArgument(format!(
                "no Rhizome {r} in an arena of {}",
                self.metas.len()
            )))
        }
    }

    /// Append `id`, which must be greater than the Rhizome's last id. O(1).
    #[inline]
    pub fn append(&mut self, r: RhizomeIndex, id: RecordId) -> Result<()> {
        self.append_many(r, std::slice::from_ref(&id))
    }

    /// Append id `first + i` to Rhizome `rhizomes[i]` for every `i`: a batch's rows to the
    /// Rhizomes of their values, in a column of many values where most Rhizomes get one id
    /// of the batch. The entries and regions of the rows ahead are prefetched so that their
    /// cache misses overlap. Stops at the first error (an id not above its Rhizome's last),
    /// with the rows before it appended.
    pub fn append_each(&mut self, rhizomes: &[RhizomeIndex], first: RecordId) -> Result<()> {
        for (i, &r) in rhizomes.iter().enumerate() {
            if let Some(&ahead) = rhizomes.get(i + ENTRY_AHEAD) {
                if let Some(meta) = self.metas.get(ahead as usize) {
                    prefetch_ends(meta);
                }
            }
            if let Some(&ahead) = rhizomes.get(i + REGION_AHEAD) {
                if let Some(meta) = self.metas.get(ahead as usize) {
                    if let Some(next_byte) = self.bytes.get(meta.offset + meta.len as usize) {
                        prefetch(next_byte);
                    }
                }
            }
            self.append(r, first + i as RecordId)?;
        }
        Ok(())
    }

    /// Append `ids` (strictly ascending, all greater than the Rhizome's last id): one look-up
    /// of the Rhizome and one capacity check for the lot. Nothing is appended on an error.
    pub fn append_many(&mut self, r: RhizomeIndex, ids: &[RecordId]) -> Result<()> {
        let index = self.index(r)?;
        let Some(&first) = ids.first() else {
            return Ok(());
        };
        let meta = &self.metas[index];
        if meta.tail.count > 0 && first <= meta.tail.last {
            return Err(Error::InvalidArgument(format!(
                "append of id {first} to Rhizome {r} whose last id is {}",
                meta.tail.last
            )));
        }
        // Each id needs at most what it would alone after the one before it (converting a
        // window to a bitmap block only ever shrinks the stream).
        let mut tail = meta.tail;
        let mut needed = meta.len as usize;
        for &id in ids {
            if tail.count > 0 && id <= tail.last {
                return Err(Error::InvalidArgument(format!(
                    "ids appended to Rhizome {r} are not ascending at {id}"
                )));
            }
            needed += tail.append_len_max(id);
            tail.count = 1;
            tail.last = id;
        }
        self.ensure_capacity(index, needed)?;
        // A skip index is kept (or begun) only past SKIP_INTERVAL_ENTRIES ids: the Rhizomes
        // of most columns never have one, and their appends touch only their entry.
        let flagged = self.is_flagged(index);
        let mut skip = None;
        // The map's entry, not `extra_mut`: the entry and region are borrowed beside it.
        let skip = if flagged {
            &mut self
                .extras
                .get_mut(&r)
                .expect("a flagged Rhizome has an extra")
                .skip
        } else {
            &mut skip
        };
        let meta = &mut self.metas[index];
        let region = &mut self.bytes[meta.offset..meta.offset + meta.capacity as usize];
        let mut len = meta.len as usize;
        for &id in ids {
            append_id(
                &mut meta.tail,
                region,
                &mut len,
                id,
                self.options.dense_blocks,
                Some(skip),
            );
        }
        meta.len = len as u32;
        if !flagged && skip.is_some() {
            let skip = skip.take();
            self.put_extra(index, Extra { nulls: 0, skip });
        }
        Ok(())
    }

    /// Make room for `needed` bytes in Rhizome `index`'s region. A region that outgrows its
    /// capacity grows in place when it is the arena's last, else moves, with its capacity
    /// doubled to a power of two, into an abandoned region of that size class or to the
    /// arena's end; the region it leaves joins the free regions of its class.
    fn ensure_capacity(&mut self, index: usize, needed: usize) -> Result<()> {
        let meta = &self.metas[index];
        let capacity = meta.capacity as usize;
        if needed <= capacity {
            return Ok(());
        }
        if needed > REGION_BYTES_MAX {
            return Err(Error::InvalidArgument(format!(
                "Rhizome {index} would exceed 4 GiB"
            )));
        }
        let new_capacity = needed
            .max(capacity * 2)
            .max(REGION_CAPACITY_MIN_BYTES)
            .checked_next_power_of_two()
            .map_or(REGION_BYTES_MAX, |c| c.min(REGION_BYTES_MAX));
        let (offset, len) = (meta.offset, meta.len as usize);
        if offset + capacity == self.bytes.len() {
            self.bytes.resize(offset + new_capacity, 0);
        } else {
            let reused = if new_capacity.is_power_of_two() {
                self.free
                    .get_mut(new_capacity.trailing_zeros() as usize)
                    .and_then(Vec::pop)
            } else {
                None
            };
            let new_offset = match reused {
                Some(free) => {
                    self.bytes.copy_within(offset..offset + len, free);
                    self.bytes[free + len..free + new_capacity].fill(0);
                    self.garbage_bytes -= new_capacity;
                    free
                }
                None => {
                    let end = self.bytes.len();
                    self.bytes.extend_from_within(offset..offset + len);
                    self.bytes.resize(end + new_capacity, 0);
                    end
                }
            };
            if capacity > 0 {
                // Filed under the largest class it can serve.
                let class = capacity.ilog2() as usize;
                if self.free.len() <= class {
                    self.free.resize_with(class + 1, Vec::new);
                }
                self.free[class].push(offset);
                self.garbage_bytes += capacity;
            }
            self.metas[index].offset = new_offset;
        }
        self.metas[index].capacity = new_capacity as u32;
        if self.garbage_bytes > self.bytes.len() / 2 {
            self.collect_garbage(false);
        }
        Ok(())
    }

    /// Squeeze out abandoned regions; `tight` also drops spare capacity.
    fn collect_garbage(&mut self, tight: bool) {
        let keep: usize = self
            .metas
            .iter()
            .map(|m| {
                if tight {
                    m.len as usize
                } else {
                    m.capacity as usize
                }
            })
            .sum();
        let mut bytes = Vec::with_capacity(keep);
        for meta in &mut self.metas {
            let offset = bytes.len();
            let len = meta.len as usize;
            bytes.extend_from_slice(&self.bytes[meta.offset..meta.offset + len]);
            let capacity = if tight { len } else { meta.capacity as usize };
            bytes.resize(offset + capacity, 0);
            meta.offset = offset;
            meta.capacity = capacity as u32;
        }
        self.bytes = bytes;
        self.garbage_bytes = 0;
        self.free.clear();
    }

    /// A read-only view of Rhizome `r`.
    ///
    /// # Panics
    /// If `r` is not an index returned by [`RhizomeArena::push`] (a caller bug).
    pub fn get(&self, r: RhizomeIndex) -> RhizomeRef<'_> {
        let meta = self.metas.get(r as usize).expect("Rhizome index in range");
        RhizomeRef {
            bytes: &self.bytes[meta.offset..meta.offset + meta.len as usize],
            cardinality: meta.tail.count,
            last: meta.tail.last,
            skip: self.skip(r as usize),
        }
    }

    /// Remove `id` from Rhizome `r`; returns whether it was present.
    ///
    /// The deleted id's gap is folded into the next instruction and the bytes saved become
    /// nulls; a bit in a bitmap block is cleared in place. When the merged code does not fit,
    /// only the enclosing skip block is re-encoded (moving the tail of the Rhizome if it grew).
    pub fn delete(&mut self, r: RhizomeIndex, id: RecordId) -> Result<bool> {
        let index = self.index(r)?;
        let removed = self.delete_one(index, id)?;
        if removed {
            self.compact_if_holey(index)?;
        }
        Ok(removed)
    }

    fn delete_one(&mut self, index: usize, id: RecordId) -> Result<bool> {
        let meta = &self.metas[index];
        if meta.tail.count == 0 || id > meta.tail.last {
            return Ok(false);
        }
        let bytes = &self.bytes[meta.offset..meta.offset + meta.len as usize];
        let point = self
            .skip(index)
            .map_or(SeekPoint::default(), |s| s.seek(id));
        // Find the instruction that produces `id`.
        let mut at = point.offset;
        let mut state = point.state;
        let (start, end, before) = loop {
            if at >= bytes.len() {
                return Ok(false);
            }
            let (instr, next) = read_instr(bytes, at)?;
            match instr {
                Instr::Null => {}
                Instr::Increment(n) => {
                    if state.cursor + n as u64 >= id {
                        if state.cursor >= id {
                            return Ok(false);
                        }
                        break (at, next, state);
                    }
                    state.cursor += n as u64;
                }
                Instr::Add(x) => {
                    let value = if state.started { state.cursor + x } else { x };
                    if value > id {
                        return Ok(false);
                    }
                    if value == id {
                        break (at, next, state);
                    }
                    state = CursorState {
                        cursor: value,
                        started: true,
                    };
                }
                Instr::Bitmap { window, words_at } => {
                    let base = window << WINDOW_SHIFT;
                    if base > id {
                        return Ok(false);
                    }
                    let last = base + super::codec::block_last_bit(bytes, words_at).unwrap_or(0);
                    // Ids after a block may share its window: past its last bit, skip it.
                    if id <= last {
                        let bit = id - base;
                        let byte_at = words_at + (bit / 8) as usize;
                        let mask = 1u8 << (bit % 8);
                        if bytes[byte_at] & mask == 0 {
                            return Ok(false);
                        }
                        if id != last {
                            // Not the block's last bit: the cursor after the block is unchanged.
                            let region_at = self.metas[index].offset + byte_at;
                            self.bytes[region_at] &= !mask;
                            self.metas[index].tail.count -= 1;
                            if let Some(skip) = self.extra_mut(index).and_then(|e| e.skip.as_mut())
                            {
                                skip.removed_at(at);
                            }
                            return Ok(true);
                        }
                        break (at, next, state);
                    }
                    state = CursorState {
                        cursor: last,
                        started: true,
                    };
                }
            }
            at = next;
        };
        // The span: the instruction holding `id` and the next non-null one (their gaps merge).
        let mut next_at = end;
        while next_at < bytes.len() && bytes[next_at] == 0 {
            next_at += 1;
        }
        let span_end = if next_at < bytes.len() {
            read_instr(bytes, next_at)?.1
        } else {
            bytes.len()
        };
        if self.rewrite_region(index, start, span_end, before, id, false)? {
            return Ok(true);
        }
        // The merged code does not fit: re-encode the enclosing skip block.
        let block_end = self
            .skip(index)
            .and_then(|s| s.boundary_at_or_after(span_end))
            .unwrap_or(self.metas[index].len as usize);
        let done = self.rewrite_region(index, point.offset, block_end, point.state, id, true)?;
        debug_assert!(done);
        Ok(done)
    }

    /// Re-encode bytes `[start, end)` of Rhizome `index` (decoded from `state`) without `id`.
    /// Shorter output is padded with nulls (or truncates the Rhizome at its tail); longer output
    /// moves the rest of the Rhizome when `may_grow`, else nothing changes and false is returned.
    fn rewrite_region(
        &mut self,
        index: usize,
        start: usize,
        end: usize,
        state: CursorState,
        id: RecordId,
        may_grow: bool,
    ) -> Result<bool> {
        let meta = &self.metas[index];
        let len = meta.len as usize;
        let bytes = &self.bytes[meta.offset..meta.offset + len];
        let (mut ids, old_nulls) = decode_region(bytes, start, end, state)?;
        let position = ids.binary_search(&id).map_err(|_| {
            Error::corrupt(
                format!("Rhizome {index}"),
                "deleted id missing from its region",
            )
        })?;
        ids.remove(position);
        let at_tail = end == len;
        let mut encoder = VecEncoder::new(Tail::after(state), self.options.dense_blocks, false);
        for &x in &ids {
            encoder.push(x);
        }
        if !at_tail {
            encoder.finish_window();
        }
        let encoder_tail = encoder.tail;
        let new = encoder.into_bytes();
        let old_len = end - start;
        let new_end;
        let nulls_before = self.nulls(index);
        let nulls;
        if new.len() <= old_len {
            let offset = self.metas[index].offset;
            self.bytes[offset + start..offset + start + new.len()].copy_from_slice(&new);
            let meta = &mut self.metas[index];
            if at_tail {
                meta.len = (start + new.len()) as u32;
                nulls = nulls_before - old_nulls;
            } else {
                self.bytes[offset + start + new.len()..offset + end].fill(0);
                nulls = nulls_before - old_nulls + (old_len - new.len()) as u32;
            }
            new_end = end;
        } else if may_grow {
            let grow = new.len() - old_len;
            self.ensure_capacity(index, len + grow)?;
            let offset = self.metas[index].offset;
            self.bytes
                .copy_within(offset + end..offset + len, offset + end + grow);
            self.bytes[offset + start..offset + start + new.len()].copy_from_slice(&new);
            self.metas[index].len += grow as u32;
            nulls = nulls_before - old_nulls;
            new_end = end + grow;
        } else {
            return Ok(false);
        }
        let mut extra = self.take_extra(index);
        extra.nulls = nulls;
        if let Some(skip) = &mut extra.skip {
            skip.rewrite(start, end, new_end);
            if skip.is_empty() {
                extra.skip = None;
            }
        }
        let meta = &mut self.metas[index];
        meta.tail.count -= 1;
        if at_tail {
            meta.tail.last = ids.last().copied().unwrap_or(state.cursor);
            meta.tail.tail_increment = !ids.is_empty() && encoder_tail.tail_increment;
            let window_at = encoder_tail.window_offset;
            meta.tail.window_offset = if ids.is_empty() || window_at == NO_WINDOW {
                NO_WINDOW
            } else {
                u32::try_from(start + window_at as usize).unwrap_or(NO_WINDOW)
            };
        } else if meta.tail.window_offset != NO_WINDOW {
            let window_at = meta.tail.window_offset as usize;
            meta.tail.window_offset = if window_at < end {
                NO_WINDOW
            } else {
                u32::try_from(window_at + new_end - end).unwrap_or(NO_WINDOW)
            };
        }
        if meta.tail.count == 0 {
            let (offset, capacity) = (meta.offset, meta.capacity);
            *meta = Meta {
                offset,
                capacity,
                ..Meta::EMPTY
            };
            extra = Extra::default();
        }
        self.put_extra(index, extra);
        Ok(true)
    }

    /// Remove the given ids (ascending) from Rhizome `r`; returns how many were present.
    pub fn delete_many(&mut self, r: RhizomeIndex, ids_ascending: &[RecordId]) -> Result<u64> {
        let index = self.index(r)?;
        if ids_ascending.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::InvalidArgument(
                "delete_many needs strictly ascending ids".into(),
            ));
        }
        let count = self.metas[index].tail.count;
        if (ids_ascending.len() as u64).saturating_mul(DELETE_MANY_REBUILD_DIVISOR) < count {
            let mut removed = 0;
            for &id in ids_ascending {
                removed += self.delete_one(index, id)? as u64;
            }
            self.compact_if_holey(index)?;
            return Ok(removed);
        }
        // Many ids: one merge pass and a fresh encoding.
        let mut kept = Vec::with_capacity(count as usize);
        let mut doomed = ids_ascending.iter().peekable();
        self.get(r).for_each(|id| {
            while doomed.next_if(|&&d| d < id).is_some() {}
            if doomed.next_if(|&&d| d == id).is_none() {
                kept.push(id);
            }
        });
        let removed = count - kept.len() as u64;
        if removed > 0 {
            self.replace(index, &kept)?;
        }
        Ok(removed)
    }

    /// Replace Rhizome `index`'s contents by the canonical encoding of `ids`.
    fn replace(&mut self, index: usize, ids: &[RecordId]) -> Result<()> {
        let mut encoder = VecEncoder::new(Tail::EMPTY, self.options.dense_blocks, true);
        for &id in ids {
            encoder.push(id);
        }
        let tail = encoder.tail;
        let skip = encoder.skip.take();
        let new = encoder.into_bytes();
        self.ensure_capacity(index, new.len())?;
        let meta = &mut self.metas[index];
        self.bytes[meta.offset..meta.offset + new.len()].copy_from_slice(&new);
        meta.len = new.len() as u32;
        meta.tail = tail;
        self.take_extra(index);
        self.put_extra(index, Extra { nulls: 0, skip });
        Ok(())
    }

    fn is_holey(&self, index: usize) -> bool {
        let nulls = self.nulls(index);
        nulls > 0 && nulls as f64 > self.options.hole_ratio_max * self.metas[index].len as f64
    }

    fn compact_if_holey(&mut self, index: usize) -> Result<()> {
        if self.is_holey(index) {
            self.compact_one(index)?;
        }
        Ok(())
    }

    fn compact_one(&mut self, index: usize) -> Result<()> {
        let r = RhizomeIndex::try_from(index).expect("arena indexes fit u32");
        let mut ids = Vec::with_capacity(self.metas[index].tail.count as usize);
        self.get(r).for_each(|id| ids.push(id));
        self.replace(index, &ids)
    }

    /// Size accounting.
    pub fn stats(&self) -> ArenaStats {
        let mut stats = ArenaStats {
            rhizome_count: self.metas.len() as u64,
            ..ArenaStats::default()
        };
        for meta in &self.metas {
            stats.encoded_bytes += meta.len as u64;
        }
        for extra in self.extras.values() {
            stats.null_bytes += extra.nulls as u64;
            stats.skip_bytes += extra.skip.as_ref().map_or(0, |s| s.size_bytes()) as u64;
        }
        stats.allocated_bytes = (self.bytes.capacity()
            + self.metas.capacity() * std::mem::size_of::<Meta>()
            + self.flagged.capacity() * 8
            + self.extras.capacity() * std::mem::size_of::<(RhizomeIndex, Extra)>())
            as u64;
        stats
    }

    /// Re-encode every Rhizome past the hole ratio, then squeeze the arena (dropping garbage
    /// and spare capacity).
    pub fn compact(&mut self) {
        for index in 0..self.metas.len() {
            if self.is_holey(index) {
                // Re-encoding fits the region: it never exceeds the bytes it replaces plus the
                // spare room the region was given; a failure would mean a 4 GiB Rhizome.
                if self.compact_one(index).is_err() {
                    debug_assert!(false, "compaction cannot outgrow a region");
                }
            }
        }
        self.collect_garbage(true);
        self.bytes.shrink_to_fit();
    }

    /// Append the arena's self-contained segment encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(SEGMENT_MAGIC);
        out.push(SEGMENT_VERSION);
        push_code(out, self.metas.len() as u64);
        for meta in &self.metas {
            push_code(out, meta.len as u64);
            push_code(out, meta.tail.count);
            out.extend_from_slice(&self.bytes[meta.offset..meta.offset + meta.len as usize]);
        }
    }

    /// Decode and validate an arena written by [`RhizomeArena::encode`]. Every Rhizome is fully
    /// decoded; any inconsistency is an [`Error::Corruption`].
    pub fn decode(bytes: &[u8], options: ArenaOptions) -> Result<Self> {
        let corrupt = |reason: &str| Error::corrupt("rhizome arena", reason);
        if bytes.get(..4) != Some(SEGMENT_MAGIC.as_slice()) {
            return Err(corrupt("bad magic"));
        }
        if bytes.get(4) != Some(&SEGMENT_VERSION) {
            return Err(corrupt("unknown version"));
        }
        let mut at = 5;
        let (count, n) = read_value_code(bytes, at)?;
        at += n;
        // Each Rhizome takes at least two header bytes: bound the table before allocating.
        if count > (bytes.len() - at) as u64 / 2 {
            return Err(corrupt("Rhizome count larger than the segment"));
        }
        let mut arena = RhizomeArena::new(options);
        arena.metas.reserve(count as usize);
        arena.flagged.reserve((count as usize).div_ceil(64));
        arena.bytes.reserve(bytes.len() - at);
        for r in 0..count {
            let (len, n) = read_value_code(bytes, at)?;
            at += n;
            let (cardinality, n) = read_value_code(bytes, at)?;
            at += n;
            let len = usize::try_from(len).map_err(|_| corrupt("Rhizome length overflow"))?;
            if len > REGION_BYTES_MAX || len > bytes.len() - at {
                return Err(corrupt("Rhizome length beyond the segment"));
            }
            let stream = &bytes[at..at + len];
            at += len;
            let mut skip = SkipIndex::default();
            let summary = walk_validated(
                stream,
                |_| {},
                |offset, state, before| {
                    if before >= SKIP_INTERVAL_ENTRIES
                        && before - skip.last_before() >= SKIP_INTERVAL_ENTRIES
                    {
                        skip.push(state.cursor, offset, before);
                    }
                },
            )
            .map_err(|e| match e {
                Error::Corruption { reason, .. } => {
                    Error::corrupt(format!("rhizome arena, Rhizome {r}"), reason)
                }
                other => other,
            })?;
            if summary.count != cardinality {
                return Err(corrupt("cardinality does not match the Rhizome's ids"));
            }
            let offset = arena.bytes.len();
            arena.bytes.extend_from_slice(stream);
            let index = arena.push() as usize;
            arena.metas[index] = Meta {
                offset,
                len: len as u32,
                capacity: len as u32,
                tail: Tail {
                    count: summary.count,
                    last: summary.end.cursor,
                    tail_increment: summary.last_is_increment && !summary.trailing_null,
                    window_offset: NO_WINDOW,
                },
            };
            arena.put_extra(
                index,
                Extra {
                    nulls: summary.null_bytes as u32,
                    skip: (!skip.is_empty()).then(|| Box::new(skip)),
                },
            );
        }
        if at != bytes.len() {
            return Err(corrupt("trailing bytes after the last Rhizome"));
        }
        Ok(arena)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_left_behind_is_taken_by_the_next_rhizome_of_its_size() {
        // Proves: a region abandoned when its Rhizome moved is reused by another Rhizome
        // growing to that size instead of growing the arena, and every Rhizome keeps its ids.
        let mut arena = RhizomeArena::new(ArenaOptions::default());
        let (a, b, c) = (arena.push(), arena.push(), arena.push());
        arena.append(a, 1).expect("append");
        arena.append(b, 1).expect("append");
        let a_first = arena.metas[a as usize].offset;
        // `a` outgrows its first region, which is not the arena's last: it moves.
        for id in (10..80).step_by(10) {
            arena.append(a, id).expect("append");
        }
        assert_ne!(arena.metas[a as usize].offset, a_first);
        let size = arena.bytes.len();
        arena.append(c, 7).expect("append");
        assert_eq!(
            arena.metas[c as usize].offset, a_first,
            "c takes a's first region"
        );
        assert_eq!(arena.bytes.len(), size, "the arena did not grow");
        assert_eq!(
            arena.get(a).iter().collect::<Vec<_>>(),
            vec![1, 10, 20, 30, 40, 50, 60, 70]
        );
        assert_eq!(arena.get(b).iter().collect::<Vec<_>>(), vec![1]);
        assert_eq!(arena.get(c).iter().collect::<Vec<_>>(), vec![7]);
    }
}
