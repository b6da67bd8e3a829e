//! Question: how long does one balancer pick take, per algorithm, with 4, 64 and 1,024
//! servers? Goal: under 50 ns for every algorithm at 64 servers, no allocation.
//! Each iteration is a pick plus the bookkeeping a request causes (taking the slot
//! and giving it back), which is where `least_conn` pays for its O(1) pick.
//!
//! Run: `cargo bench --bench pick` (criterion; figures in target/criterion/).

use std::cell::Cell;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use ringlb::config::{BalanceAlgo, HashFunction, HashKey};
use ringlb::upstream::balance::{Balancer, Member};

fn algos() -> Vec<(&'static str, BalanceAlgo)> {
    vec![
        ("round_robin", BalanceAlgo::RoundRobin),
        ("static_rr", BalanceAlgo::StaticRr),
        ("least_conn", BalanceAlgo::LeastConn),
        ("random2", BalanceAlgo::Random { draws: 2 }),
        ("first", BalanceAlgo::First),
        (
            "hash_map",
            BalanceAlgo::Hash {
                key: HashKey::Source,
                consistent: false,
                function: HashFunction::default_for(false),
            },
        ),
        (
            "hash_consistent",
            BalanceAlgo::Hash {
                key: HashKey::Source,
                consistent: true,
                function: HashFunction::default_for(true),
            },
        ),
    ]
}

fn bench_picks(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for n in [4usize, 64, 1024] {
        // Mixed weights and some load, so weighted paths are exercised.
        let weights: Vec<u32> = (0..n).map(|i| 1 + (i % 4) as u32).collect();
        let active: Vec<Cell<u32>> = (0..n).map(|i| Cell::new((i * 7 % 5) as u32)).collect();
        let limit = 1_000u32;
        for (label, algo) in algos() {
            let mut b = Balancer::new(&algo, 0);
            b.rebuild((0..n).map(|i| Member {
                server: i as u32,
                weight: weights[i],
                id: i as u32 + 1,
            }));
            b.init_loads(&active, |_| limit);
            let keys: Vec<u32> = (0..1024u32).map(ringlb::hash::full_hash).collect();
            let mut k = 0usize;
            group.bench_with_input(BenchmarkId::new(label, n), &n, |bench, _| {
                bench.iter(|| {
                    k = (k + 1) & 1023;
                    let s = b.pick(&active, Some(keys[k]), |s| active[s as usize].get() < limit);
                    if let Some(s) = s {
                        let a = &active[s as usize];
                        a.set(a.get() + 1);
                        b.load_changed(s, a.get(), limit);
                        a.set(a.get() - 1);
                        b.load_changed(s, a.get(), limit);
                    }
                    black_box(s)
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_picks);
criterion_main!(benches);
