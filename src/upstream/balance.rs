//! Choosing a server within one backend, per shard. One enum, one variant per
//! algorithm; picks never allocate and never loop more than once around the list.

use std::cell::Cell;

use crate::config::BalanceAlgo;

#[derive(Debug)]
pub enum Balancer {
    RoundRobin { next: Cell<usize> },
}

impl Balancer {
    /// `shard` staggers the starting point so shards do not all hit server 0 first.
    pub fn new(algo: BalanceAlgo, shard: usize) -> Self {
        match algo {
            BalanceAlgo::RoundRobin => Balancer::RoundRobin {
                next: Cell::new(shard),
            },
        }
    }

    /// Picks one of `count` servers for which `usable` holds, or `None`.
    pub fn pick(&self, count: usize, usable: impl Fn(usize) -> bool) -> Option<usize> {
        if count == 0 {
            return None;
        }
        match self {
            Balancer::RoundRobin { next } => {
                let start = next.get() % count;
                for step in 0..count {
                    let i = (start + step) % count;
                    if usable(i) {
                        next.set(i + 1);
                        return Some(i);
                    }
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_cycles_and_skips() {
        let b = Balancer::new(BalanceAlgo::RoundRobin, 0);
        let picks: Vec<_> = (0..6).map(|_| b.pick(3, |_| true).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        let picks: Vec<_> = (0..4).map(|_| b.pick(3, |i| i != 1).unwrap()).collect();
        assert_eq!(picks, [0, 2, 0, 2]);
        assert_eq!(b.pick(3, |_| false), None);
        assert_eq!(b.pick(0, |_| true), None);
    }
}
