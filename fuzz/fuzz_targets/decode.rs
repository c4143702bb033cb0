//! Fuzz both Rhizome decoders on arbitrary bytes: they must return (never panic, hang or read
//! out of bounds); accepted input yields strictly ascending ids that re-encode to the same ids.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rhizome_core::rhizome::{decode_all, encode_ids, ArenaOptions, RecordId, RhizomeArena};

fuzz_target!(|data: &[u8]| {
    if let Ok(ids) = decode_all(data) {
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids strictly ascending"
        );
        for dense_blocks in [true, false] {
            let options = ArenaOptions {
                dense_blocks,
                ..ArenaOptions::default()
            };
            let again = decode_all(&encode_ids(&ids, options)).expect("re-encoded bytes decode");
            assert_eq!(again, ids, "re-encode round trip");
        }
    }
    if let Ok(arena) = RhizomeArena::decode(data, ArenaOptions::default()) {
        let mut out = Vec::new();
        arena.encode(&mut out);
        let back =
            RhizomeArena::decode(&out, ArenaOptions::default()).expect("re-encoded arena decodes");
        assert_eq!(back.len(), arena.len());
        for r in 0..arena.len() as u32 {
            let ids: Vec<RecordId> = arena.get(r).iter().collect();
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "ids strictly ascending"
            );
            assert_eq!(ids.len() as u64, arena.get(r).cardinality());
            assert_eq!(back.get(r).iter().collect::<Vec<_>>(), ids);
            let mut each = Vec::new();
            arena.get(r).for_each(|id| each.push(id));
            assert_eq!(each, ids, "for_each agrees with iter");
        }
    }
});
