//! Rhizomes: append-only, delta-encoded lists of record ids, one per (column, value).
//!
//! API contract used by the rest of the crate (column shards, planner, segments). The
//! internals (instruction codec, skip index, dense bitmap blocks, arena layout) live in the
//! submodules; see `codec.rs` for the byte layout.
//!
//! * [`RhizomeArena`] holds many Rhizomes of one column shard in one byte arena plus an
//!   offsets table: creating a Rhizome allocates nothing.
//! * [`RhizomeRef`] is a read-only view of one Rhizome: iterate, seek, count between,
//!   cardinality in O(1).
//! * [`Bitmap`] is a dense id set over `0..universe`, the planner's working set.
//! * [`kernels`] intersect / union / difference Rhizomes, with count-only variants.

pub type RecordId = u64;

/// Index of a Rhizome inside its arena (a column shard uses the value's symbol).
pub type RhizomeIndex = u32;

/// Tuning of a Rhizome arena.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArenaOptions {
    /// Compact a Rhizome when null bytes exceed this fraction of its bytes (default 0.4).
    pub hole_ratio_max: f64,
    /// Allow dense bitmap blocks inside the instruction stream (default true).
    pub dense_blocks: bool,
}

impl Default for ArenaOptions {
    fn default() -> Self {
        ArenaOptions {
            hole_ratio_max: 0.4,
            dense_blocks: true,
        }
    }
}

/// Size accounting of an arena, for metrics and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArenaStats {
    pub rhizome_count: u64,
    /// Bytes of instruction streams (live + null padding).
    pub encoded_bytes: u64,
    /// Null padding bytes left by deletes and not compacted yet.
    pub null_bytes: u64,
    /// Bytes of skip indexes.
    pub skip_bytes: u64,
    /// Bytes reserved by the arena (capacity, garbage from relocations, offsets table).
    pub allocated_bytes: u64,
}

// ---------------------------------------------------------------------------------------
// TEMPORARY stand-in (plain vectors) until the codec branch lands. Same API.
// ---------------------------------------------------------------------------------------
use crate::{Error, Result};

#[derive(Debug, Clone)]
pub struct RhizomeArena {
    lists: Vec<Vec<RecordId>>,
}

impl RhizomeArena {
    pub fn new(_options: ArenaOptions) -> Self {
        RhizomeArena { lists: Vec::new() }
    }
    pub fn len(&self) -> usize {
        self.lists.len()
    }
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }
    pub fn push(&mut self) -> RhizomeIndex {
        self.lists.push(Vec::new());
        (self.lists.len() - 1) as RhizomeIndex
    }
    pub fn append(&mut self, r: RhizomeIndex, id: RecordId) -> Result<()> {
        let l = &mut self.lists[r as usize];
        if l.last().is_some_and(|&x| x >= id) {
            return Err(Error::InvalidArgument("out of order".into()));
        }
        l.push(id);
        Ok(())
    }
    pub fn delete(&mut self, r: RhizomeIndex, id: RecordId) -> Result<bool> {
        let l = &mut self.lists[r as usize];
        match l.binary_search(&id) {
            Ok(p) => {
                l.remove(p);
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    }
    pub fn delete_many(&mut self, r: RhizomeIndex, ids: &[RecordId]) -> Result<u64> {
        let mut n = 0;
        for &id in ids {
            n += self.delete(r, id)? as u64;
        }
        Ok(n)
    }
    pub fn get(&self, r: RhizomeIndex) -> RhizomeRef<'_> {
        RhizomeRef {
            ids: &self.lists[r as usize],
        }
    }
    pub fn stats(&self) -> ArenaStats {
        ArenaStats {
            rhizome_count: self.lists.len() as u64,
            encoded_bytes: self.lists.iter().map(|l| l.len() as u64 * 8).sum(),
            ..Default::default()
        }
    }
    pub fn compact(&mut self) {}
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend((self.lists.len() as u64).to_le_bytes());
        for l in &self.lists {
            out.extend((l.len() as u64).to_le_bytes());
            for x in l {
                out.extend(x.to_le_bytes());
            }
        }
    }
    pub fn decode(bytes: &[u8], _options: ArenaOptions) -> Result<Self> {
        let mut words = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8")));
        let n = words
            .next()
            .ok_or_else(|| Error::corrupt("arena", "short"))?;
        let mut lists = Vec::new();
        for _ in 0..n {
            let k = words
                .next()
                .ok_or_else(|| Error::corrupt("arena", "short"))?;
            let mut l = Vec::new();
            for _ in 0..k {
                l.push(
                    words
                        .next()
                        .ok_or_else(|| Error::corrupt("arena", "short"))?,
                );
            }
            lists.push(l);
        }
        Ok(RhizomeArena { lists })
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RhizomeRef<'a> {
    ids: &'a [RecordId],
}

impl<'a> RhizomeRef<'a> {
    pub fn cardinality(&self) -> u64 {
        self.ids.len() as u64
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    pub fn first(&self) -> Option<RecordId> {
        self.ids.first().copied()
    }
    pub fn last(&self) -> Option<RecordId> {
        self.ids.last().copied()
    }
    pub fn iter(&self) -> impl Iterator<Item = RecordId> + 'a {
        self.ids.iter().copied()
    }
    pub fn contains(&self, id: RecordId) -> bool {
        self.ids.binary_search(&id).is_ok()
    }
    pub fn count_between(&self, lo: RecordId, hi: RecordId) -> u64 {
        self.ids.iter().filter(|&&x| x >= lo && x < hi).count() as u64
    }
    pub fn for_each(&self, f: impl FnMut(RecordId)) {
        self.ids.iter().copied().for_each(f)
    }
    pub fn or_into(&self, bitmap: &mut Bitmap) {
        for &x in self.ids {
            bitmap.insert(x)
        }
    }
    pub fn count_and(&self, bitmap: &Bitmap) -> u64 {
        self.ids.iter().filter(|&&x| bitmap.contains(x)).count() as u64
    }
    pub fn for_each_and(&self, bitmap: &Bitmap, mut f: impl FnMut(RecordId)) {
        for &x in self.ids {
            if bitmap.contains(x) {
                f(x)
            }
        }
    }
    pub fn encoded_len(&self) -> usize {
        self.ids.len() * 8
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bitmap {
    words: Vec<u64>,
    universe: u64,
}

impl Bitmap {
    pub fn new(universe: u64) -> Self {
        Bitmap {
            words: vec![0; universe.div_ceil(64) as usize],
            universe,
        }
    }
    pub fn full(universe: u64) -> Self {
        let mut b = Bitmap::new(universe);
        b.invert();
        b
    }
    pub fn universe(&self) -> u64 {
        self.universe
    }
    pub fn insert(&mut self, id: RecordId) {
        self.words[(id / 64) as usize] |= 1 << (id % 64)
    }
    pub fn remove(&mut self, id: RecordId) {
        self.words[(id / 64) as usize] &= !(1 << (id % 64))
    }
    pub fn contains(&self, id: RecordId) -> bool {
        id < self.universe && self.words[(id / 64) as usize] & (1 << (id % 64)) != 0
    }
    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| w.count_ones() as u64).sum()
    }
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }
    pub fn and_with(&mut self, o: &Bitmap) {
        self.words
            .iter_mut()
            .zip(&o.words)
            .for_each(|(a, b)| *a &= b)
    }
    pub fn or_with(&mut self, o: &Bitmap) {
        self.words
            .iter_mut()
            .zip(&o.words)
            .for_each(|(a, b)| *a |= b)
    }
    pub fn and_not_with(&mut self, o: &Bitmap) {
        self.words
            .iter_mut()
            .zip(&o.words)
            .for_each(|(a, b)| *a &= !b)
    }
    pub fn and_count(&self, o: &Bitmap) -> u64 {
        self.words
            .iter()
            .zip(&o.words)
            .map(|(a, b)| (a & b).count_ones() as u64)
            .sum()
    }
    pub fn invert(&mut self) {
        self.words.iter_mut().for_each(|w| *w = !*w);
        let tail = self.universe % 64;
        if tail != 0 {
            if let Some(w) = self.words.last_mut() {
                *w &= (1u64 << tail) - 1;
            }
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = RecordId> + '_ {
        (0..self.universe).filter(|&i| self.contains(i))
    }
    pub fn for_each(&self, f: impl FnMut(RecordId)) {
        self.iter().for_each(f)
    }
    pub fn words(&self) -> &[u64] {
        &self.words
    }
}

pub mod kernels {
    use super::*;
    pub fn intersect_count(rs: &[RhizomeRef]) -> u64 {
        intersect(rs).len() as u64
    }
    pub fn intersect(rs: &[RhizomeRef]) -> Vec<RecordId> {
        let Some((first, rest)) = rs.split_first() else {
            return Vec::new();
        };
        first
            .iter()
            .filter(|&x| rest.iter().all(|r| r.contains(x)))
            .collect()
    }
    pub fn union(rs: &[RhizomeRef]) -> Vec<RecordId> {
        let mut v: Vec<_> = rs.iter().flat_map(|r| r.iter()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
    pub fn union_into(rs: &[RhizomeRef], out: &mut Bitmap) {
        rs.iter().for_each(|r| r.or_into(out))
    }
    pub fn difference(a: RhizomeRef, b: RhizomeRef) -> Vec<RecordId> {
        a.iter().filter(|&x| !b.contains(x)).collect()
    }
}
