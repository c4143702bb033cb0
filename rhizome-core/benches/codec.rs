//! Rhizome codec benchmark: decode rate, AND/count rate and bytes per id, dense blocks on and
//! off, on seeded synthetic lists. Run with
//! `cargo bench -p rhizome-core --bench codec` (prints one line per measurement).

use std::hint::black_box;
use std::time::{Duration, Instant};

use rhizome_core::rhizome::{kernels, ArenaOptions, Bitmap, RecordId, RhizomeArena};

/// Ids in the shard for the dense measurements (the DESIGN's 6,000,000-row lineitem shard).
const SHARD_IDS: u64 = 6_000_000;
/// Each measurement repeats until it has run this long; the best repetition counts.
const MEASURE_MS: u64 = 400;

/// Deterministic xorshift64* generator, so every run measures the same lists.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn gaps(seed: u64, count: usize, lo: u64, hi: u64) -> Vec<RecordId> {
    let mut rng = Rng(seed);
    let mut id = 0;
    (0..count)
        .map(|_| {
            id += lo + rng.below(hi - lo + 1);
            id
        })
        .collect()
}

fn density(seed: u64, universe: u64, per_mille: u64) -> Vec<RecordId> {
    let mut rng = Rng(seed);
    (0..universe)
        .filter(|_| rng.below(1000) < per_mille)
        .collect()
}

/// Ids at exponentially distributed gaps of mean `mean` (records of one value spread at
/// random, as `l_suppkey = 42`), so that code lengths mix at random.
fn random_gaps(seed: u64, count: usize, mean: f64) -> Vec<RecordId> {
    let mut rng = Rng(seed);
    let mut id = 0;
    (0..count)
        .map(|_| {
            let uniform = (rng.below(1 << 30) + 1) as f64 / (1u64 << 30) as f64;
            id += 1 + (-uniform.ln() * mean) as u64;
            id
        })
        .collect()
}

fn arena_of(lists: &[&[RecordId]], dense_blocks: bool) -> RhizomeArena {
    let mut arena = RhizomeArena::new(ArenaOptions {
        dense_blocks,
        ..ArenaOptions::default()
    });
    for list in lists {
        let r = arena.push();
        for &id in *list {
            arena.append(r, id).expect("ascending ids");
        }
    }
    arena
}

/// Best time of one call of `f`, over repetitions filling [`MEASURE_MS`].
fn best(mut f: impl FnMut() -> u64) -> Duration {
    let mut best = Duration::MAX;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(MEASURE_MS) {
        let t = Instant::now();
        black_box(f());
        best = best.min(t.elapsed());
    }
    best
}

fn rate(items: u64, d: Duration) -> String {
    let per_s = items as f64 / d.as_secs_f64();
    if per_s >= 1e9 {
        format!("{:6.2} G/s", per_s / 1e9)
    } else {
        format!("{:6.0} M/s", per_s / 1e6)
    }
}

fn decode_line(name: &str, ids: &[RecordId], dense_blocks: bool) {
    let arena = arena_of(&[ids], dense_blocks);
    let r = arena.get(0);
    let t_for_each = best(|| {
        let mut sum = 0u64;
        r.for_each(|id| sum = sum.wrapping_add(id));
        sum
    });
    let t_iter = best(|| r.iter().fold(0u64, |s, id| s.wrapping_add(id)));
    println!(
        "decode  {name:<34} dense_blocks={dense_blocks:<5} {:>9} ids {:6.3} B/id  for_each {}  iter {}",
        ids.len(),
        r.encoded_len() as f64 / ids.len() as f64,
        rate(ids.len() as u64, t_for_each),
        rate(ids.len() as u64, t_iter),
    );
}

fn main() {
    println!("# rhizome codec bench (ids/s = ids decoded or ANDed per second, one core)");
    let sparse_3b = gaps(1, 2_000_000, 5_000, 15_000);
    let sparse_2b = gaps(2, 2_000_000, 2_000, 8_000);
    let sparse_1b = gaps(3, 4_000_000, 37, 63);
    decode_line("gaps ~10000 (3-byte adds)", &sparse_3b, true);
    decode_line("gaps ~5000 (2-byte adds)", &sparse_2b, true);
    decode_line("gaps ~50 (1-byte adds)", &sparse_1b, true);

    let dense_25 = density(4, SHARD_IDS, 250);
    let dense_14 = density(5, SHARD_IDS, 140);
    let sparse_1 = density(6, SHARD_IDS, 10);
    let sparse_2 = density(7, SHARD_IDS, 20);
    decode_line("2% of 6M (mixed 1-2 byte adds)", &sparse_2, true);
    decode_line(
        "random gaps ~10000 (2-3 byte adds)",
        &random_gaps(8, 500_000, 10_000.0),
        true,
    );
    for dense_blocks in [true, false] {
        decode_line("25% of 6M", &dense_25, dense_blocks);
        decode_line("1% of 6M", &sparse_1, dense_blocks);
    }

    for dense_blocks in [true, false] {
        let arena = arena_of(&[&dense_25, &dense_14, &sparse_1], dense_blocks);
        let pair = [arena.get(0), arena.get(1)];
        let expect = kernels::intersect_count(&pair);
        let t = best(|| kernels::intersect_count(&pair));
        println!(
            "and     intersect_count 25% x 14% of 6M   dense_blocks={dense_blocks:<5} = {expect:>8}  {} ids ({:.2} GB/s of Rhizome bytes)",
            rate(SHARD_IDS, t),
            (pair[0].encoded_len() + pair[1].encoded_len()) as f64 / t.as_secs_f64() / 1e9,
        );
        let mixed = [arena.get(0), arena.get(2)];
        let t = best(|| kernels::intersect_count(&mixed));
        println!(
            "and     intersect_count 25% x 1% of 6M    dense_blocks={dense_blocks:<5} = {:>8}  {} ids",
            kernels::intersect_count(&mixed),
            rate(SHARD_IDS, t),
        );
    }

    let mut bitmap = Bitmap::new(SHARD_IDS);
    for &id in &dense_25 {
        bitmap.insert(id);
    }
    for dense_blocks in [true, false] {
        let arena = arena_of(&[&sparse_2, &dense_25], dense_blocks);
        for (name, r) in [("2%", arena.get(0)), ("25%", arena.get(1))] {
            let t = best(|| r.count_and(&bitmap));
            println!(
                "and     count_and {name:<4} list x 25% bitmap of 6M dense_blocks={dense_blocks:<5} = {:>8}  {} list ids  {} shard ids",
                r.count_and(&bitmap),
                rate(r.cardinality(), t),
                rate(SHARD_IDS, t),
            );
        }
    }
    let other = {
        let mut b = Bitmap::new(SHARD_IDS);
        for &id in &dense_14 {
            b.insert(id);
        }
        b
    };
    let t = best(|| bitmap.and_count(&other));
    println!(
        "and     Bitmap::and_count 25% x 14% of 6M (reference) {}  ({:.1} GB/s)",
        rate(SHARD_IDS, t),
        2.0 * SHARD_IDS as f64 / 8.0 / t.as_secs_f64() / 1e9
    );
}
