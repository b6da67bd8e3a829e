//! Unit tests of `balance`.

use super::*;
use crate::config::HashKey;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("s{}", i + 1)).collect()
}

fn build(algo: &BalanceAlgo, weights: &[u32], names: &[String]) -> Balancer {
    let mut b = Balancer::new(algo, 0);
    b.rebuild(weights.iter().enumerate().map(|(i, &w)| Member {
        server: i as u32,
        weight: w,
        name: &names[i],
    }));
    let idle: Vec<Cell<u32>> = weights.iter().map(|_| Cell::new(0)).collect();
    b.init_loads(&idle, |_| u32::MAX);
    b
}

fn counts(b: &Balancer, n: usize, picks: usize) -> Vec<usize> {
    let active: Vec<Cell<u32>> = (0..n).map(|_| Cell::new(0)).collect();
    let mut c = vec![0; n];
    for _ in 0..picks {
        c[b.pick(&active, None, |_| true).unwrap() as usize] += 1;
    }
    c
}

#[test]
fn weighted_round_robin_is_exact_and_smooth() {
    let n = names(3);
    let b = build(&BalanceAlgo::RoundRobin, &[5, 1, 1], &n);
    assert_eq!(counts(&b, 3, 700), [500, 100, 100]);
    // Smooth: the light servers are spread out instead of bunched at one end of
    // the cycle, and every window of one cycle holds exactly the weights.
    let active: Vec<Cell<u32>> = (0..3).map(|_| Cell::new(0)).collect();
    let seq: Vec<u32> = (0..21)
        .map(|_| b.pick(&active, None, |_| true).unwrap())
        .collect();
    for w in seq.windows(7) {
        assert_eq!(w.iter().filter(|&&s| s == 0).count(), 5, "{seq:?}");
    }
    assert!(
        !seq.windows(6).any(|w| w.iter().all(|&s| s == 0)),
        "{seq:?}"
    );
}

#[test]
fn round_robin_skips_and_never_loops_forever() {
    let n = names(3);
    let b = build(&BalanceAlgo::RoundRobin, &[1, 1, 1], &n);
    let active: Vec<Cell<u32>> = (0..3).map(|_| Cell::new(0)).collect();
    let picks: Vec<_> = (0..4)
        .map(|_| b.pick(&active, None, |s| s != 1).unwrap())
        .collect();
    assert!(picks.iter().all(|&s| s != 1));
    assert_eq!(b.pick(&active, None, |_| false), None);
}

#[test]
fn weight_change_keeps_the_rotation_going() {
    let n = names(2);
    let mut b = build(&BalanceAlgo::RoundRobin, &[1, 1], &n);
    let active: Vec<Cell<u32>> = (0..2).map(|_| Cell::new(0)).collect();
    b.pick(&active, None, |_| true);
    b.rebuild([(0u32, 3u32), (1, 1)].iter().map(|&(s, w)| Member {
        server: s,
        weight: w,
        name: &n[s as usize],
    }));
    let mut c = [0; 2];
    for _ in 0..400 {
        c[b.pick(&active, None, |_| true).unwrap() as usize] += 1;
    }
    assert_eq!(c, [300, 100]);
}

#[test]
fn least_conn_prefers_the_idle_server_and_rotates_ties() {
    let n = names(3);
    let b = build(&BalanceAlgo::LeastConn, &[1, 1, 1], &n);
    let active: Vec<Cell<u32>> = [5, 0, 5].iter().map(|&a| Cell::new(a)).collect();
    b.init_loads(&active, |_| u32::MAX);
    for _ in 0..5 {
        assert_eq!(b.pick(&active, None, |_| true), Some(1));
    }
    // Taking slots moves the choice: after 5 more on server 1, 0 and 2 tie with it.
    active[1].set(6);
    b.load_changed(1, 6, u32::MAX);
    assert_ne!(b.pick(&active, None, |_| true), Some(1));
    // A full server is never chosen.
    b.load_changed(0, 5, 5);
    b.load_changed(2, 5, 5);
    assert_eq!(b.pick(&active, None, |_| true), Some(1));
    // Equal loads take turns: pick, take the slot, give it back.
    let b = build(&BalanceAlgo::LeastConn, &[1, 1, 1], &n);
    let idle: Vec<Cell<u32>> = (0..3).map(|_| Cell::new(0)).collect();
    let mut picks = Vec::new();
    for _ in 0..6 {
        let s = b.pick(&idle, None, |_| true).unwrap();
        b.load_changed(s, 1, u32::MAX);
        b.load_changed(s, 0, u32::MAX);
        picks.push(s);
    }
    assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
}

#[test]
fn random_two_choices_spreads() {
    let n = names(4);
    let b = build(&BalanceAlgo::Random { draws: 2 }, &[1, 1, 1, 1], &n);
    let c = counts(&b, 4, 4000);
    assert!(c.iter().all(|&x| x > 700), "{c:?}");
}

#[test]
fn first_fills_in_id_order() {
    let n = names(3);
    let b = build(&BalanceAlgo::First, &[1, 1, 1], &n);
    let active: Vec<Cell<u32>> = (0..3).map(|_| Cell::new(0)).collect();
    assert_eq!(b.pick(&active, None, |s| s != 0), Some(1));
    assert_eq!(b.pick(&active, None, |_| true), Some(0));
}

#[test]
fn consistent_hash_moves_about_one_nth_of_keys() {
    let algo = BalanceAlgo::Hash {
        key: HashKey::Source,
        consistent: true,
    };
    let n = names(5);
    let all = build(&algo, &[1; 5], &n);
    let again = build(&algo, &[1; 5], &n);
    // s3 leaves.
    let mut fewer = Balancer::new(&algo, 7);
    fewer.rebuild((0..5u32).filter(|&s| s != 2).map(|s| Member {
        server: s,
        weight: 1,
        name: &n[s as usize],
    }));
    let active: Vec<Cell<u32>> = (0..5).map(|_| Cell::new(0)).collect();
    let mut moved = 0;
    for k in 0..1000u32 {
        let key = hash_key(format!("client-{k}").as_bytes());
        let a = all.pick(&active, Some(key), |_| true).unwrap();
        assert_eq!(
            a,
            again.pick(&active, Some(key), |_| true).unwrap(),
            "deterministic"
        );
        let b = fewer.pick(&active, Some(key), |_| true).unwrap();
        if a != b {
            assert_eq!(a, 2, "only keys of the server that left move");
            moved += 1;
        }
    }
    assert!(
        (120..=300).contains(&moved),
        "moved {moved} of 1000 keys (1/5 = 200)"
    );
}
