//! Rhizome codec: exact bytes, and property tests against a sorted `Vec<u64>` model.

use proptest::prelude::*;
use rhizome_core::rhizome::{
    decode_all, encode_ids, kernels, ArenaOptions, Bitmap, RecordId, RhizomeArena,
};
use std::collections::BTreeSet;

fn opts() -> ArenaOptions {
    ArenaOptions::default()
}

fn arena_with(ids: &[u64], options: ArenaOptions) -> RhizomeArena {
    let mut arena = RhizomeArena::new(options);
    let r = arena.push();
    for &id in ids {
        arena.append(r, id).expect("ascending append");
    }
    arena
}

/// The DESIGN example: 1,2,4,12,13,14,15 = add 1, inc×1, add 2, add 8, inc×3.
#[test]
fn design_example_bytes() {
    let bytes = encode_ids(&[1, 2, 4, 12, 13, 14, 15], opts());
    assert_eq!(bytes, vec![0x81, 0x01, 0x82, 0x88, 0x03]);
    assert_eq!(
        decode_all(&bytes).expect("valid"),
        vec![1, 2, 4, 12, 13, 14, 15]
    );
}

/// The DESIGN delete example: add 3, inc×10, add 4, add 8, add 2 minus the add-4 record
/// becomes add 3, inc×10, add 12, null, add 2.
#[test]
fn design_delete_example_bytes() {
    let ids: Vec<u64> = std::iter::once(3)
        .chain(4..=13)
        .chain([17, 25, 27])
        .collect();
    let before = encode_ids(&ids, opts());
    assert_eq!(before, vec![0x83, 0x0A, 0x84, 0x88, 0x82]);
    let mut arena = arena_with(
        &ids,
        ArenaOptions {
            hole_ratio_max: 0.9,
            dense_blocks: true,
        },
    );
    assert!(arena.delete(0, 17).expect("delete"));
    let r = arena.get(0);
    let mut out = Vec::new();
    arena.encode(&mut out);
    assert_eq!(&out[out.len() - 5..], &[0x83, 0x0A, 0x8C, 0x00, 0x82]);
    assert_eq!(arena.stats().null_bytes, 1);
    assert_eq!(r.cardinality(), 13);
    assert!(!r.contains(17));
}

/// Record 0 is `add 0` as the first instruction; `add 0` later is corruption.
#[test]
fn add_zero_only_first() {
    assert_eq!(encode_ids(&[0, 5], opts()), vec![0x80, 0x85]);
    assert_eq!(encode_ids(&[0, 1], opts()), vec![0x80, 0x01]);
    assert!(decode_all(&[0x85, 0x80]).is_err());
    assert!(decode_all(&[0x01]).is_err(), "increment before any id");
}

/// Each add length is used exactly up to its payload capacity (7n-1 bits), up to u64 gaps.
#[test]
fn canonical_lengths_at_boundaries() {
    for n in 1..=10u32 {
        let bits = (7 * n - 1).min(64);
        let max = if bits == 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        let bytes = encode_ids(&[max], opts());
        assert_eq!(bytes.len(), n as usize, "gap {max} takes {n} bytes");
        assert_eq!(decode_all(&bytes).expect("valid"), vec![max]);
        if bits < 64 {
            let bytes = encode_ids(&[max + 1], opts());
            assert_eq!(
                bytes.len(),
                n as usize + 1,
                "gap {} takes {} bytes",
                max + 1,
                n + 1
            );
            assert_eq!(decode_all(&bytes).expect("valid"), vec![max + 1]);
        }
    }
    assert_eq!(encode_ids(&[63], opts()), vec![0xBF]);
    assert_eq!(encode_ids(&[64], opts()), vec![0xC0, 0x40]);
    assert_eq!(encode_ids(&[8191], opts()), vec![0xDF, 0xFF]);
    assert_eq!(encode_ids(&[8192], opts()), vec![0xE0, 0x20, 0x00]);
    assert_eq!(
        encode_ids(&[u64::MAX], opts()),
        vec![0xFF, 0xC0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
    );
    assert_eq!(encode_ids(&[1, u64::MAX], opts()).len(), 11);
}

/// Malformed streams are errors: truncation, overflow, reserved codes, backwards windows.
#[test]
fn malformed_streams_are_errors() {
    let cases: &[&[u8]] = &[
        &[0xC1],                                                       // truncated 2-byte add
        &[0xFF],                                                       // truncated long add
        &[0xFF, 0xE0, 0, 0, 0, 0, 0, 0, 0, 0, 0],                      // 11-byte code
        &[0xFF, 0xDF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], // > u64
        &[0xC0, 0x05], // non-canonical add (reserved)
        &[
            0xBF, 0xFF, 0xC0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ], // overflow sum
        &[0xC0, 0x00, 0x80], // truncated bitmap block
        &[
            0xFF, 0xC0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F,
        ], // run overflows
    ];
    for case in cases {
        assert!(decode_all(case).is_err(), "{case:02x?} must not decode");
    }
    // A bitmap block for window 0 after id 5000 goes backwards.
    let mut block = vec![0xBF, 0xD3, 0x49, 0xC0, 0x00, 0x80];
    block.extend(std::iter::repeat_n(0xFFu8, 512));
    assert!(decode_all(&block).is_err());
    // An empty bitmap block is malformed.
    let mut empty = vec![0xC0, 0x00, 0x81];
    empty.extend(std::iter::repeat_n(0u8, 512));
    assert!(decode_all(&empty).is_err());
}

/// A 25%-dense window becomes a bitmap block once finished; a 1%-dense one stays byte-coded.
#[test]
fn dense_window_becomes_bitmap_block() {
    let ids: Vec<u64> = (0..3 * 4096).step_by(4).chain([20_000]).collect();
    let dense = encode_ids(&ids, opts());
    let sparse = encode_ids(
        &ids,
        ArenaOptions {
            dense_blocks: false,
            ..opts()
        },
    );
    assert!(
        dense.len() < sparse.len(),
        "{} < {}",
        dense.len(),
        sparse.len()
    );
    assert_eq!(&dense[..2], &[0xC0, 0x00], "first window is a bitmap block");
    assert_eq!(decode_all(&dense).expect("valid"), ids);
    assert_eq!(decode_all(&sparse).expect("valid"), ids);
    let sparse_ids: Vec<u64> = (0..100_000).step_by(100).collect();
    assert_eq!(
        encode_ids(&sparse_ids, opts()),
        encode_ids(
            &sparse_ids,
            ArenaOptions {
                dense_blocks: false,
                ..opts()
            }
        )
    );
}

/// Appending consecutive ids bumps the increment byte up to 127, then starts a new one.
#[test]
fn increment_bumps_in_place() {
    let ids: Vec<u64> = (10..10 + 1 + 127 + 5).collect();
    assert_eq!(encode_ids(&ids, opts()), vec![0x8A, 127, 5]);
}

/// Arena segment decoding rejects bad magic, bad counts and wrong cardinalities.
#[test]
fn arena_decode_rejects_inconsistencies() {
    let mut arena = RhizomeArena::new(opts());
    let r = arena.push();
    arena.append(r, 7).expect("append");
    let mut bytes = Vec::new();
    arena.encode(&mut bytes);
    assert!(RhizomeArena::decode(&bytes, opts()).is_ok());
    let mut bad = bytes.clone();
    bad[0] = b'X';
    assert!(RhizomeArena::decode(&bad, opts()).is_err());
    let mut bad = bytes.clone();
    let card_at = bad.len() - 2;
    bad[card_at] = 0x82; // cardinality 2, one id
    assert!(RhizomeArena::decode(&bad, opts()).is_err());
    let mut bad = bytes.clone();
    bad.push(0);
    assert!(RhizomeArena::decode(&bad, opts()).is_err());
    assert!(RhizomeArena::decode(&bytes[..bytes.len() - 1], opts()).is_err());
}

/// Appending an id that is not greater than the last one is an InvalidArgument error.
#[test]
fn append_out_of_order_is_invalid() {
    let mut arena = RhizomeArena::new(opts());
    let r = arena.push();
    arena.append(r, 5).expect("append");
    assert!(matches!(
        arena.append(r, 5),
        Err(rhizome_core::Error::InvalidArgument(_))
    ));
    assert!(matches!(
        arena.append(r, 4),
        Err(rhizome_core::Error::InvalidArgument(_))
    ));
}

/// A chunk that is not strictly ascending, or that does not follow the last id, is an
/// InvalidArgument error and appends nothing.
#[test]
fn append_many_out_of_order_is_invalid_and_appends_nothing() {
    let mut arena = RhizomeArena::new(opts());
    let r = arena.push();
    arena.append_many(r, &[3, 5]).expect("ascending");
    for bad in [&[5, 6][..], &[4][..], &[7, 9, 9][..], &[8, 7][..]] {
        assert!(
            matches!(
                arena.append_many(r, bad),
                Err(rhizome_core::Error::InvalidArgument(_))
            ),
            "{bad:?}"
        );
        assert_eq!(arena.get(r).iter().collect::<Vec<_>>(), vec![3, 5]);
    }
    arena.append_many(r, &[]).expect("nothing to append");
    arena
        .append_many(r, &[6, 100])
        .expect("ascending after the last id");
    assert_eq!(arena.get(r).iter().collect::<Vec<_>>(), vec![3, 5, 6, 100]);
}

// ---- generators -------------------------------------------------------------------------

/// Strictly ascending ids mixing runs, small gaps, medium gaps, dense windows and huge gaps.
fn ascending_ids() -> impl Strategy<Value = Vec<u64>> {
    let piece = prop_oneof![
        3 => (1u64..200).prop_map(|n| (0u64, n, 1u64)),            // run
        3 => (1u64..300, 2u64..70).prop_map(|(n, g)| (0, n, g)),   // small gaps
        2 => (1u64..50, 64u64..20_000).prop_map(|(n, g)| (0, n, g)), // 2-3 byte gaps
        2 => (500u64..3000, 2u64..6).prop_map(|(n, g)| (0, n, g)), // dense window
        1 => (1u64..4, 1u64 << 20..1u64 << 62).prop_map(|(n, g)| (0, n, g)), // huge gaps
        1 => (0u64..3).prop_map(|k| (1, k, 0)),                    // jump near u64::MAX
    ];
    (any::<bool>(), prop::collection::vec(piece, 0..12)).prop_map(|(zero, pieces)| {
        let mut ids: Vec<u64> = Vec::new();
        if zero {
            ids.push(0);
        }
        for (kind, n, gap) in pieces {
            let last = ids.last().copied();
            if kind == 1 {
                let start = u64::MAX - 5000 * (n + 1);
                if last.is_none_or(|l| l < start) {
                    ids.push(start);
                }
                continue;
            }
            let mut cur = last;
            for _ in 0..n {
                let next = match cur {
                    None => gap.min(1 << 40),
                    Some(c) => match c.checked_add(gap) {
                        Some(v) => v,
                        None => break,
                    },
                };
                ids.push(next);
                cur = Some(next);
            }
        }
        ids
    })
}

fn options() -> impl Strategy<Value = ArenaOptions> {
    (any::<bool>(), 0.05f64..0.9).prop_map(|(dense, ratio)| ArenaOptions {
        hole_ratio_max: ratio,
        dense_blocks: dense,
    })
}

fn check_against_model(arena: &RhizomeArena, r: u32, model: &[u64], probes: &[u64]) {
    let view = arena.get(r);
    assert_eq!(view.iter().collect::<Vec<_>>(), model, "iter");
    let mut all = Vec::new();
    view.for_each(|id| all.push(id));
    assert_eq!(all, model, "for_each");
    assert_eq!(view.cardinality(), model.len() as u64);
    assert_eq!(view.is_empty(), model.is_empty());
    assert_eq!(view.first(), model.first().copied());
    assert_eq!(view.last(), model.last().copied());
    let set: BTreeSet<u64> = model.iter().copied().collect();
    for &p in probes {
        assert_eq!(view.contains(p), set.contains(&p), "contains {p}");
        let expect_next = set.range(p..).next().copied();
        assert_eq!(view.iter().advance_to(p), expect_next, "advance_to {p}");
        for &q in probes {
            if p <= q {
                let expect = set.range(p..q).count() as u64;
                assert_eq!(view.count_between(p, q), expect, "count_between {p} {q}");
            }
        }
    }
    // Successive advance_to calls on one iterator.
    let mut sorted: Vec<u64> = probes.to_vec();
    sorted.sort_unstable();
    let mut it = view.iter();
    let mut consumed_to: Option<u64> = None;
    for &p in &sorted {
        let lo = consumed_to.map_or(p, |c| p.max(c.saturating_add(1)));
        if consumed_to == Some(u64::MAX) {
            break;
        }
        let got = it.advance_to(p);
        assert_eq!(
            got,
            set.range(lo..).next().copied(),
            "chained advance_to {p}"
        );
        match got {
            Some(g) => consumed_to = Some(g),
            None => break,
        }
    }
}

fn probes_for(model: &[u64], extra: &[u64]) -> Vec<u64> {
    let mut probes: Vec<u64> = extra.to_vec();
    for (i, &id) in model.iter().enumerate() {
        if i % 97 == 0 || i + 1 == model.len() {
            probes.extend([id, id.saturating_add(1), id.saturating_sub(1)]);
        }
    }
    probes.push(0);
    probes.push(u64::MAX);
    probes.truncate(40);
    probes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// encode_ids then decode_all returns the ids; the arena's bytes equal encode_ids.
    #[test]
    fn round_trip(ids in ascending_ids(), options in options()) {
        let bytes = encode_ids(&ids, options);
        prop_assert_eq!(decode_all(&bytes).expect("valid"), ids.clone());
        let arena = arena_with(&ids, options);
        prop_assert_eq!(arena.get(0).encoded_len(), bytes.len());
        let probes = probes_for(&ids, &[]);
        check_against_model(&arena, 0, &ids, &probes);
    }

    /// Appending in chunks (`append_many`) writes the same bytes as appending id by id, and
    /// the Rhizome answers every query like the model.
    #[test]
    fn append_many_equals_appends(
        ids in ascending_ids(),
        chunks in prop::collection::vec(1usize..400, 1..40),
        options in options(),
    ) {
        let mut arena = RhizomeArena::new(options);
        let r = arena.push();
        let mut rest = ids.as_slice();
        for &chunk in chunks.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (now, later) = rest.split_at(chunk.min(rest.len()));
            arena.append_many(r, now).expect("ascending chunk");
            rest = later;
        }
        let (mut chunked, mut one_by_one) = (Vec::new(), Vec::new());
        arena.encode(&mut chunked);
        arena_with(&ids, options).encode(&mut one_by_one);
        prop_assert_eq!(chunked, one_by_one);
        let probes = probes_for(&ids, &[]);
        check_against_model(&arena, r, &ids, &probes);
    }

    /// After random single deletes and delete_many, every query equals the model.
    #[test]
    fn deletes_match_model(
        ids in ascending_ids(),
        options in options(),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 0..60),
        many in prop::collection::vec(any::<prop::sample::Index>(), 0..200),
        extra in prop::collection::vec(any::<u64>(), 0..5),
    ) {
        let mut arena = arena_with(&ids, options);
        let mut model = ids.clone();
        for pick in &picks {
            if ids.is_empty() { break; }
            let id = ids[pick.index(ids.len())];
            let present = model.binary_search(&id);
            prop_assert_eq!(arena.delete(0, id).expect("delete"), present.is_ok());
            if let Ok(p) = present { model.remove(p); }
            let stats = arena.stats();
            prop_assert!(stats.null_bytes as f64 <= options.hole_ratio_max * stats.encoded_bytes as f64 + 1e-9);
        }
        let probes = probes_for(&model, &extra);
        check_against_model(&arena, 0, &model, &probes);
        if !ids.is_empty() {
            let mut doomed: Vec<u64> = many.iter().map(|i| ids[i.index(ids.len())]).collect();
            doomed.extend(extra.iter().copied());
            doomed.sort_unstable();
            doomed.dedup();
            let expect = doomed.iter().filter(|d| model.binary_search(d).is_ok()).count() as u64;
            prop_assert_eq!(arena.delete_many(0, &doomed).expect("delete_many"), expect);
            model.retain(|id| doomed.binary_search(id).is_err());
        }
        check_against_model(&arena, 0, &model, &probes);
        // Appending after deletes still works.
        let next = model.last().map_or(Some(3), |l| l.checked_add(1));
        if let Some(next) = next {
            arena.append(0, next).expect("append after deletes");
            model.push(next);
            check_against_model(&arena, 0, &model, &probes);
        }
        // Compaction keeps the contents and brings nulls under the ratio.
        arena.compact();
        let stats = arena.stats();
        prop_assert!(stats.null_bytes as f64 <= options.hole_ratio_max * stats.encoded_bytes as f64 + 1e-9);
        check_against_model(&arena, 0, &model, &probes);
        // The segment round trips.
        let mut seg = Vec::new();
        arena.encode(&mut seg);
        let back = RhizomeArena::decode(&seg, options).expect("decode");
        check_against_model(&back, 0, &model, &probes);
    }

    /// Many Rhizomes with interleaved appends (forcing relocation) equal a Vec<Vec<u64>> model,
    /// and the arena's segment encoding round trips.
    #[test]
    fn arena_interleaved(
        ops in prop::collection::vec((0usize..20, 1u64..5000), 0..3000),
        options in options(),
    ) {
        let mut arena = RhizomeArena::new(options);
        let mut model: Vec<Vec<u64>> = Vec::new();
        for _ in 0..20 {
            arena.push();
            model.push(Vec::new());
        }
        for (r, gap) in ops {
            let gap = if gap > 2000 { 1 } else { gap };
            let next = model[r].last().map_or(gap, |l| l + gap);
            arena.append(r as u32, next).expect("append");
            model[r].push(next);
        }
        prop_assert_eq!(arena.len(), 20);
        for (r, m) in model.iter().enumerate() {
            prop_assert_eq!(arena.get(r as u32).iter().collect::<Vec<_>>(), m.clone());
            prop_assert_eq!(arena.get(r as u32).cardinality(), m.len() as u64);
        }
        let mut seg = Vec::new();
        arena.encode(&mut seg);
        let mut back = RhizomeArena::decode(&seg, options).expect("decode");
        for (r, m) in model.iter().enumerate() {
            prop_assert_eq!(back.get(r as u32).iter().collect::<Vec<_>>(), m.clone());
        }
        // A decoded arena keeps accepting appends.
        back.append(0, model[0].last().map_or(1, |l| l + 1)).expect("append after decode");
        let stats = arena.stats();
        prop_assert_eq!(stats.rhizome_count, 20);
        prop_assert!(stats.allocated_bytes >= stats.encoded_bytes);
    }

    /// Kernels equal set operations on the model.
    #[test]
    fn kernels_match_model(lists in prop::collection::vec(ascending_ids(), 1..4), universe in 1u64..40_000) {
        let mut arena = RhizomeArena::new(ArenaOptions::default());
        for list in &lists {
            let r = arena.push();
            for &id in list { arena.append(r, id).expect("append"); }
        }
        let refs: Vec<_> = (0..lists.len() as u32).map(|r| arena.get(r)).collect();
        let sets: Vec<BTreeSet<u64>> = lists.iter().map(|l| l.iter().copied().collect()).collect();
        let mut inter = sets[0].clone();
        for s in &sets[1..] { inter = inter.intersection(s).copied().collect(); }
        let inter: Vec<u64> = inter.into_iter().collect();
        prop_assert_eq!(kernels::intersect(&refs), inter.clone());
        prop_assert_eq!(kernels::intersect_count(&refs), inter.len() as u64);
        let mut uni: BTreeSet<u64> = BTreeSet::new();
        for s in &sets { uni.extend(s); }
        prop_assert_eq!(kernels::union(&refs), uni.iter().copied().collect::<Vec<_>>());
        let diff: Vec<u64> = sets[0].iter().filter(|id| sets.len() < 2 || !sets[1].contains(id)).copied().collect();
        if refs.len() >= 2 {
            prop_assert_eq!(kernels::difference(refs[0], refs[1]), diff);
        }
        let mut bitmap = Bitmap::new(universe);
        kernels::union_into(&refs, &mut bitmap);
        let in_universe: Vec<u64> = uni.iter().copied().filter(|&id| id < universe).collect();
        prop_assert_eq!(bitmap.iter().collect::<Vec<_>>(), in_universe.clone());
        // count_and / for_each_and against a bitmap of every third id.
        let mut probe = Bitmap::new(universe);
        for id in (0..universe).step_by(3) { probe.insert(id); }
        let expect: Vec<u64> = lists[0].iter().copied().filter(|&id| id < universe && id % 3 == 0).collect();
        prop_assert_eq!(refs[0].count_and(&probe), expect.len() as u64);
        let mut got = Vec::new();
        refs[0].for_each_and(&probe, |id| got.push(id));
        prop_assert_eq!(got, expect);
    }

    /// Intersections of lists whose windows are variously empty, sparse, dense (bitmap
    /// blocks) and full, over the same few windows, so that blocks meet blocks, instruction
    /// windows and nothing, equal the model.
    #[test]
    fn kernels_on_shared_windows_match_model(
        lists in prop::collection::vec(
            (prop::collection::vec(0usize..5, 6), any::<u64>()), 2..4),
    ) {
        const DENSITY_PERMILLE: [u64; 5] = [0, 10, 200, 600, 1000];
        let mut arena = RhizomeArena::new(ArenaOptions::default());
        let mut sets: Vec<BTreeSet<u64>> = Vec::new();
        for (densities, seed) in &lists {
            let r = arena.push();
            let mut state = *seed | 1;
            let mut set = BTreeSet::new();
            for (window, &d) in densities.iter().enumerate() {
                for id in window as u64 * 4096..(window as u64 + 1) * 4096 {
                    // xorshift: an independent draw per id.
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    if state % 1000 < DENSITY_PERMILLE[d] {
                        arena.append(r, id).expect("append");
                        set.insert(id);
                    }
                }
            }
            sets.push(set);
        }
        let refs: Vec<_> = (0..lists.len() as u32).map(|r| arena.get(r)).collect();
        let mut inter = sets[0].clone();
        for s in &sets[1..] { inter = inter.intersection(s).copied().collect(); }
        let inter: Vec<u64> = inter.into_iter().collect();
        prop_assert_eq!(kernels::intersect_count(&refs), inter.len() as u64);
        prop_assert_eq!(kernels::intersect(&refs), inter);
    }

    /// Bitmap operations equal a BTreeSet model.
    #[test]
    fn bitmap_matches_model(
        universe in 1u64..3000,
        a in prop::collection::vec(any::<prop::sample::Index>(), 0..300),
        b in prop::collection::vec(any::<prop::sample::Index>(), 0..300),
        removes in prop::collection::vec(any::<prop::sample::Index>(), 0..50),
    ) {
        let ids = |v: &[prop::sample::Index]| -> BTreeSet<u64> {
            v.iter().map(|i| i.index(universe as usize) as u64).collect()
        };
        let (mut sa, sb) = (ids(&a), ids(&b));
        let mut ba = Bitmap::new(universe);
        let mut bb = Bitmap::new(universe);
        for &id in &sa { ba.insert(id); }
        for &id in &sb { bb.insert(id); }
        for id in ids(&removes) { ba.remove(id); sa.remove(&id); }
        prop_assert_eq!(ba.count(), sa.len() as u64);
        prop_assert_eq!(ba.is_empty(), sa.is_empty());
        prop_assert_eq!(ba.iter().collect::<Vec<_>>(), sa.iter().copied().collect::<Vec<_>>());
        let mut each = Vec::new();
        ba.for_each(|id| each.push(id));
        prop_assert_eq!(each, sa.iter().copied().collect::<Vec<_>>());
        for id in 0..universe { prop_assert_eq!(ba.contains(id), sa.contains(&id)); }
        prop_assert!(!ba.contains(universe));
        prop_assert_eq!(ba.and_count(&bb), sa.intersection(&sb).count() as u64);
        let mut and = ba.clone(); and.and_with(&bb);
        prop_assert_eq!(and.iter().collect::<BTreeSet<_>>(), sa.intersection(&sb).copied().collect());
        let mut or = ba.clone(); or.or_with(&bb);
        prop_assert_eq!(or.iter().collect::<BTreeSet<_>>(), sa.union(&sb).copied().collect());
        let mut not = ba.clone(); not.and_not_with(&bb);
        prop_assert_eq!(not.iter().collect::<BTreeSet<_>>(), sa.difference(&sb).copied().collect());
        let mut inv = ba.clone(); inv.invert();
        prop_assert_eq!(inv.count(), universe - sa.len() as u64);
        prop_assert!(inv.iter().all(|id| id < universe && !sa.contains(&id)));
        let full = Bitmap::full(universe);
        prop_assert_eq!(full.count(), universe);
        prop_assert_eq!(full.universe(), universe);
        prop_assert_eq!(Bitmap::new(universe).words().len() as u64, universe.div_ceil(64));
    }

    /// Arbitrary bytes never panic either decoder; accepted streams are strictly ascending and
    /// re-encode to the same ids.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..700), prefix in any::<bool>()) {
        if let Ok(ids) = decode_all(&bytes) {
            prop_assert!(ids.windows(2).all(|w| w[0] < w[1]));
            prop_assert_eq!(decode_all(&encode_ids(&ids, ArenaOptions::default())).expect("re-encode"), ids);
        }
        let mut seg = bytes.clone();
        if prefix {
            seg.splice(0..0, b"RHZA\x01".iter().copied());
        }
        if let Ok(arena) = RhizomeArena::decode(&seg, ArenaOptions::default()) {
            for r in 0..arena.len() as u32 {
                let ids: Vec<RecordId> = arena.get(r).iter().collect();
                prop_assert!(ids.windows(2).all(|w| w[0] < w[1]));
                prop_assert_eq!(ids.len() as u64, arena.get(r).cardinality());
                let mut each = Vec::new();
                arena.get(r).for_each(|id| each.push(id));
                prop_assert_eq!(each, ids);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// In an arena of many Rhizomes (past one 64-bit word of flags) where some grow long
    /// enough for skip indexes and some get holes from deletes, every Rhizome keeps its own
    /// skip index and null count: seeks, counts and further appends and deletes answer like
    /// the model, also after compaction and a segment round trip.
    #[test]
    fn many_rhizomes_keep_their_own_skip_indexes_and_nulls(
        sizes in prop::collection::vec(
            prop_oneof![3 => 0usize..40, 1 => 1_100usize..4_000], 65..140),
        gaps in prop::collection::vec(1u64..40, 8),
        chunks in prop::collection::vec((any::<prop::sample::Index>(), 1usize..300), 0..400),
        deletes in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..300),
        options in options(),
    ) {
        let n = sizes.len();
        let wanted: Vec<Vec<u64>> = sizes
            .iter()
            .enumerate()
            .map(|(r, &size)| {
                let gap = gaps[r % gaps.len()];
                (0..size as u64).map(|i| 1 + i * gap + (i * 7 + r as u64) % gap).collect()
            })
            .collect();
        // Appends interleaved across the Rhizomes, a chunk at a time, then the rest.
        let mut arena = RhizomeArena::new(options);
        let mut model: Vec<Vec<u64>> = vec![Vec::new(); n];
        for _ in 0..n {
            arena.push();
        }
        let append = |arena: &mut RhizomeArena, model: &mut Vec<Vec<u64>>, r: usize, k: usize| {
            let from = model[r].len();
            let to = (from + k).min(wanted[r].len());
            let ids = &wanted[r][from..to];
            if k.is_multiple_of(2) {
                arena.append_many(r as u32, ids).expect("ascending chunk");
            } else {
                for &id in ids {
                    arena.append(r as u32, id).expect("ascending append");
                }
            }
            model[r].extend_from_slice(ids);
        };
        for (pick, k) in &chunks {
            append(&mut arena, &mut model, pick.index(n), *k);
        }
        for r in 0..n {
            append(&mut arena, &mut model, r, usize::MAX / 2);
        }
        for (pick, at) in &deletes {
            let r = pick.index(n);
            if model[r].is_empty() {
                continue;
            }
            let id = model[r][at.index(model[r].len())];
            prop_assert!(arena.delete(r as u32, id).expect("delete"));
            model[r].retain(|&x| x != id);
        }
        let probes = |m: &[u64]| -> Vec<u64> {
            let step = (m.len() / 12).max(1);
            let mut p: Vec<u64> = m.iter().step_by(step).flat_map(|&id| [id, id + 1, id.saturating_sub(1)]).collect();
            p.push(0);
            p.truncate(16);
            p
        };
        for (r, m) in model.iter().enumerate() {
            check_against_model(&arena, r as u32, m, &probes(m));
        }
        // Appends after the deletes, then compaction and a segment round trip.
        for (r, m) in model.iter_mut().enumerate() {
            let next = m.last().map_or(5, |l| l + 3);
            arena.append(r as u32, next).expect("append after deletes");
            m.push(next);
        }
        arena.compact();
        let stats = arena.stats();
        prop_assert!(stats.null_bytes as f64 <= options.hole_ratio_max * stats.encoded_bytes as f64 + 1e-9);
        let mut seg = Vec::new();
        arena.encode(&mut seg);
        let back = RhizomeArena::decode(&seg, options).expect("decode");
        for (r, m) in model.iter().enumerate() {
            check_against_model(&arena, r as u32, m, &probes(m));
            check_against_model(&back, r as u32, m, &probes(m));
        }
    }
}
