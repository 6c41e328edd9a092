//! A short run of every fuzz target (core/fuzz) in the normal test suite: the committed corpus
//! of each target (`core/fuzz/corpus/<target>/`, what the long libFuzzer runs kept) is replayed,
//! then a few thousand blind mutations of it (seeded, so a failure reproduces) go through the
//! same target function. A panic is a failure; the input is printed in hex.
//!
//! The long, coverage-guided runs are libFuzzer's (core/fuzz/README.md).

#[allow(dead_code)]
#[path = "../core/fuzz/src/targets.rs"]
mod targets;

use std::path::Path;

/// Mutations per target (seconds in all on the CI machine).
const MUTATIONS: usize = 50_000;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("core/fuzz/corpus")
        .join(target);
    let mut out: Vec<Vec<u8>> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read(e.path()).ok())
            .collect(),
        Err(e) => panic!("no corpus for {target} at {}: {e}", dir.display()),
    };
    out.sort();
    out
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, base: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                v.truncate(i);
            }
            4 if !other.is_empty() => {
                let i = rng.below(v.len() + 1);
                let j = rng.below(other.len());
                let k = j + rng.below(other.len() - j + 1);
                v.splice(i..i, other[j..k].iter().copied());
            }
            _ if v.len() >= 2 => {
                let i = rng.below(v.len() - 1);
                let b = [0x00, 0xff, 0x7f, 0x80][rng.below(4)];
                v[i] = b;
                v[i + 1] = b;
            }
            _ => v.push(rng.next() as u8),
        }
    }
    v
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn run_target(name: &str, f: fn(&[u8])) {
    let inputs = corpus(name);
    assert!(!inputs.is_empty(), "empty corpus for {name}");
    for input in &inputs {
        if let Err(e) = std::panic::catch_unwind(|| f(input)) {
            panic!("{name}: corpus input {} panicked: {e:?}", hex(input));
        }
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
    for _ in 0..MUTATIONS {
        let a = &inputs[rng.below(inputs.len())];
        let b = &inputs[rng.below(inputs.len())];
        let m = mutate(&mut rng, a, b);
        if let Err(e) = std::panic::catch_unwind(|| f(&m)) {
            panic!("{name}: mutated input {} panicked: {e:?}", hex(&m));
        }
    }
}

#[test]
fn every_fuzz_target_survives_its_corpus_and_a_short_mutation_run() {
    for (name, f) in targets::TARGETS {
        let t0 = std::time::Instant::now();
        run_target(name, *f);
        eprintln!(
            "{name}: {} corpus inputs + {MUTATIONS} mutations in {:?}",
            corpus(name).len(),
            t0.elapsed()
        );
    }
}
