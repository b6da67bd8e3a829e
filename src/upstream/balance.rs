//! Choosing a server within one group (primaries or backups) of one backend, on one
//! shard. One enum, one variant per algorithm. Everything that depends on weights and
//! server states is precomputed by `rebuild` (run on a flip, a weight change or a
//! slow-start step), so a pick never allocates and looks at as few servers as it can.
//!
//! Consistent hashing uses a ring with virtual nodes (`VNODES_PER_WEIGHT` per unit of
//! weight), each placed at xxh3(server name, replica): the same names and weights give
//! the same ring on every shard and every node, and removing one of N servers only
//! moves the keys that were on its points (about 1/N). A ring was chosen over Maglev
//! (needs a full table rebuild with more movement on change) and rendezvous hashing
//! (O(N) hashes per pick, too slow for 1,024 servers).

use std::cell::{Cell, RefCell};

use xxhash_rust::xxh3::xxh3_64;

use crate::config::BalanceAlgo;

/// least_conn tree keys: load (26 bits) | change sequence (22 bits) | position (16 bits).
const POS_BITS: u32 = 16;
const POS_MASK: u64 = (1 << POS_BITS) - 1;
const SEQ_MASK: u64 = (1 << 22) - 1;
const LOAD_SHIFT: u32 = 38;
const LOAD_MAX: u64 = (1 << 26) - 1;
/// The key of a member with no free slot (and of empty leaves).
const FULL: u64 = u64::MAX;

/// Virtual nodes on the consistent-hash ring per unit of weight.
pub const VNODES_PER_WEIGHT: u32 = 100;
/// Longest weighted round-robin schedule; larger weight sums are scaled down.
const MAX_SCHEDULE: u64 = 1 << 16;

/// A member of the group: a server index and its effective weight (> 0).
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    pub server: u32,
    pub weight: u32,
    pub name: &'a str,
}

#[derive(Debug)]
enum Algo {
    /// Smooth weighted round robin, precomputed as an earliest-deadline schedule.
    Wrr {
        schedule: Vec<u32>,
        pos: Cell<usize>,
    },
    /// A min-tree over the members keyed by (load, last change): the root is the
    /// least loaded member with a free slot, so a pick reads one value; each change
    /// of a member's active count costs O(log n).
    LeastConn {
        next: Cell<usize>,
        tree: Vec<Cell<u64>>,
        /// Leaves in the tree (a power of two).
        leaves: usize,
        /// Member position of each server index (`u32::MAX` = not a member).
        position: Vec<u32>,
        seq: Cell<u64>,
    },
    Random {
        draws: u32,
        rng: RefCell<fastrand::Rng>,
        cumulative: Vec<u64>,
    },
    First,
    HashMap {
        cumulative: Vec<u64>,
        fallback: Cell<usize>,
    },
    HashRing {
        ring: Vec<(u64, u32)>,
        fallback: Cell<usize>,
    },
}

#[derive(Debug)]
pub struct Balancer {
    algo: Algo,
    /// Server index of each member, in server id order.
    servers: Vec<u32>,
    /// Effective weight of each member.
    weights: Vec<u32>,
}

impl Balancer {
    /// An empty group; `seed` spreads shards' starting points and random streams.
    pub fn new(algo: &BalanceAlgo, seed: u64) -> Self {
        let algo = match algo {
            BalanceAlgo::RoundRobin | BalanceAlgo::StaticRr => Algo::Wrr {
                schedule: Vec::new(),
                pos: Cell::new(seed as usize),
            },
            BalanceAlgo::LeastConn => Algo::LeastConn {
                next: Cell::new(seed as usize),
                tree: Vec::new(),
                leaves: 0,
                position: Vec::new(),
                seq: Cell::new(0),
            },
            BalanceAlgo::Random { draws } => Algo::Random {
                draws: *draws,
                rng: RefCell::new(fastrand::Rng::with_seed(0x5eed_0000 ^ seed)),
                cumulative: Vec::new(),
            },
            BalanceAlgo::First => Algo::First,
            BalanceAlgo::Hash {
                consistent: false, ..
            } => Algo::HashMap {
                cumulative: Vec::new(),
                fallback: Cell::new(seed as usize),
            },
            BalanceAlgo::Hash {
                consistent: true, ..
            } => Algo::HashRing {
                ring: Vec::new(),
                fallback: Cell::new(seed as usize),
            },
        };
        Balancer {
            algo,
            servers: Vec::new(),
            weights: Vec::new(),
        }
    }

    /// Replaces the members (servers that can take traffic, in id order).
    pub fn rebuild<'a>(&mut self, members: impl Iterator<Item = Member<'a>>) {
        self.servers.clear();
        self.weights.clear();
        let mut names = Vec::new();
        for m in members.filter(|m| m.weight > 0) {
            self.servers.push(m.server);
            self.weights.push(m.weight);
            names.push(m.name);
        }
        match &mut self.algo {
            Algo::Wrr { schedule, pos } => {
                // Keep the position: a change does not restart the rotation.
                let old_len = schedule.len().max(1);
                let progress = pos.get() % old_len;
                *schedule = wrr_schedule(&self.weights);
                pos.set(if schedule.is_empty() {
                    0
                } else {
                    progress * schedule.len() / old_len
                });
            }
            Algo::LeastConn {
                tree,
                leaves,
                position,
                ..
            } => {
                *leaves = self.servers.len().next_power_of_two().max(1);
                *tree = (0..2 * *leaves).map(|_| Cell::new(FULL)).collect();
                position.clear();
                if let Some(max) = self.servers.iter().max() {
                    position.resize(*max as usize + 1, u32::MAX);
                }
                for (p, &s) in self.servers.iter().enumerate() {
                    position[s as usize] = p as u32;
                }
                // Loads are filled in by the caller through `load_changed`.
            }
            Algo::First => {}
            Algo::Random { cumulative, .. } | Algo::HashMap { cumulative, .. } => {
                cumulative.clear();
                let mut sum = 0u64;
                for &w in &self.weights {
                    sum += u64::from(w);
                    cumulative.push(sum);
                }
            }
            Algo::HashRing { ring, .. } => {
                ring.clear();
                let mut label = Vec::with_capacity(64);
                for (i, (name, &weight)) in names.iter().zip(&self.weights).enumerate() {
                    for r in 0..weight * VNODES_PER_WEIGHT {
                        label.clear();
                        label.extend_from_slice(name.as_bytes());
                        label.push(b'#');
                        label.extend_from_slice(&r.to_le_bytes());
                        ring.push((xxh3_64(&label), i as u32));
                    }
                }
                ring.sort_unstable();
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// A server's active count changed (or its slot limit): keeps `least_conn`'s tree
    /// current; nothing to do for the other algorithms.
    pub fn load_changed(&self, server: u32, active: u32, limit: u32) {
        let Algo::LeastConn {
            tree,
            leaves,
            position,
            seq,
            ..
        } = &self.algo
        else {
            return;
        };
        let Some(&p) = position.get(server as usize) else {
            return;
        };
        if p == u32::MAX {
            return;
        }
        let key = if active >= limit {
            FULL
        } else {
            // (active + 1) / weight, as HAProxy weighs it, then the change order so
            // that equally loaded servers take turns.
            let load = (u64::from(active) + 1) * 4096 / u64::from(self.weights[p as usize]);
            let n = seq.get().wrapping_add(1);
            seq.set(n);
            (load.min(LOAD_MAX) << LOAD_SHIFT) | ((n & SEQ_MASK) << POS_BITS) | u64::from(p)
        };
        let mut i = *leaves + p as usize;
        tree[i].set(key);
        while i > 1 {
            i /= 2;
            tree[i].set(tree[2 * i].get().min(tree[2 * i + 1].get()));
        }
    }

    /// Feeds every member's current load (after `rebuild`).
    pub fn init_loads(&self, active: &[Cell<u32>], limit: impl Fn(u32) -> u32) {
        if matches!(self.algo, Algo::LeastConn { .. }) {
            for &s in &self.servers {
                self.load_changed(s, active[s as usize].get(), limit(s));
            }
        }
    }

    /// Server indices of the members, in id order.
    pub fn members(&self) -> &[u32] {
        &self.servers
    }

    /// Picks a member for which `ok` holds (it has a free slot and is not excluded).
    /// `active` is indexed by server; `key` is the request's hash for `hash`.
    pub fn pick(
        &self,
        active: &[Cell<u32>],
        key: Option<u64>,
        ok: impl Fn(u32) -> bool,
    ) -> Option<u32> {
        let n = self.servers.len();
        if n == 0 {
            return None;
        }
        match &self.algo {
            Algo::Wrr { schedule, pos } => {
                let len = schedule.len();
                let mut i = pos.get() % len;
                for _ in 0..len {
                    let s = self.servers[schedule[i] as usize];
                    i += 1;
                    if i == len {
                        i = 0;
                    }
                    if ok(s) {
                        pos.set(i);
                        return Some(s);
                    }
                }
                None
            }
            Algo::LeastConn { next, tree, .. } => {
                let root = tree[1].get();
                if root != FULL {
                    let s = self.servers[(root & POS_MASK) as usize];
                    if ok(s) {
                        return Some(s);
                    }
                }
                // The least loaded one is excluded (a retry): scan, ties round robin.
                let start = next.get() % n;
                next.set(start + 1);
                let mut best: Option<(usize, u64)> = None;
                let mut i = start;
                for _ in 0..n {
                    let s = self.servers[i];
                    if ok(s) {
                        let load = u64::from(active[s as usize].get());
                        let better = match best {
                            None => true,
                            // load/weight < best_load/best_weight, without dividing.
                            Some((b, b_load)) => {
                                load * u64::from(self.weights[b])
                                    < b_load * u64::from(self.weights[i])
                            }
                        };
                        if better {
                            best = Some((i, load));
                        }
                    }
                    i += 1;
                    if i == n {
                        i = 0;
                    }
                }
                best.map(|(i, _)| self.servers[i])
            }
            Algo::Random {
                draws,
                rng,
                cumulative,
            } => {
                let total = cumulative[n - 1];
                let mut rng = rng.borrow_mut();
                let mut best: Option<(usize, u64)> = None;
                for _ in 0..*draws {
                    let i = weighted_index(cumulative, rng.u64(0..total));
                    let s = self.servers[i];
                    if !ok(s) {
                        continue;
                    }
                    let load = u64::from(active[s as usize].get());
                    let better = match best {
                        None => true,
                        Some((b, b_load)) => {
                            load * u64::from(self.weights[b]) < b_load * u64::from(self.weights[i])
                        }
                    };
                    if better {
                        best = Some((i, load));
                    }
                }
                if let Some((i, _)) = best {
                    return Some(self.servers[i]);
                }
                // Every draw was full or excluded: scan from a random point.
                let start = rng.usize(0..n);
                (0..n)
                    .map(|k| self.servers[(start + k) % n])
                    .find(|&s| ok(s))
            }
            Algo::First => self.servers.iter().copied().find(|&s| ok(s)),
            Algo::HashMap {
                cumulative,
                fallback,
            } => {
                let start = match key {
                    Some(k) => weighted_index(cumulative, k % cumulative[n - 1]),
                    None => next_rr(fallback, n),
                };
                (0..n)
                    .map(|k| self.servers[(start + k) % n])
                    .find(|&s| ok(s))
            }
            Algo::HashRing { ring, fallback } => match key {
                Some(k) => {
                    let len = ring.len();
                    let start = ring.partition_point(|p| p.0 < k);
                    (0..len)
                        .map(|j| self.servers[ring[(start + j) % len].1 as usize])
                        .find(|&s| ok(s))
                }
                None => {
                    let start = next_rr(fallback, n);
                    (0..n)
                        .map(|k| self.servers[(start + k) % n])
                        .find(|&s| ok(s))
                }
            },
        }
    }
}

fn next_rr(c: &Cell<usize>, n: usize) -> usize {
    let i = c.get() % n;
    c.set(i + 1);
    i
}

/// The member whose cumulative weight range holds `r` (0 <= r < total).
fn weighted_index(cumulative: &[u64], r: u64) -> usize {
    cumulative.partition_point(|&c| c <= r)
}

/// The hash of a client address; IPv4-mapped IPv6 clients hash as their IPv4 address,
/// so HTTP and TCP frontends (and dual-stack listeners) agree.
pub fn source_hash(ip: std::net::IpAddr) -> u64 {
    match ip {
        std::net::IpAddr::V4(v4) => hash_key(&v4.octets()),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => hash_key(&v4.octets()),
            None => hash_key(&v6.octets()),
        },
    }
}

/// The hash of a request key, the same on every shard and node.
pub fn hash_key(bytes: &[u8]) -> u64 {
    xxh3_64(bytes)
}

/// A smooth weighted round-robin order of member positions: each member's k-th turn
/// is due at (k + 1/2) / weight, and turns are taken in order of due time (ties by
/// position). Weights are first divided by their gcd, and scaled down if their sum
/// would make the schedule longer than `MAX_SCHEDULE`.
fn wrr_schedule(weights: &[u32]) -> Vec<u32> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    if weights.is_empty() {
        return Vec::new();
    }
    let g = weights.iter().fold(0u32, |a, &b| gcd(a, b)).max(1);
    let mut w: Vec<u64> = weights.iter().map(|&x| u64::from(x / g)).collect();
    let total: u64 = w.iter().sum();
    if total > MAX_SCHEDULE {
        let scale = total.div_ceil(MAX_SCHEDULE);
        for x in &mut w {
            *x = (*x / scale).max(1);
        }
    }
    let total: u64 = w.iter().sum();

    /// Due time (2k+1)/(2w), compared exactly by cross-multiplication.
    #[derive(PartialEq, Eq)]
    struct Due {
        num: u64,
        den: u64,
        pos: u32,
    }
    impl Ord for Due {
        fn cmp(&self, o: &Self) -> std::cmp::Ordering {
            (self.num * o.den)
                .cmp(&(o.num * self.den))
                .then(self.pos.cmp(&o.pos))
        }
    }
    impl PartialOrd for Due {
        fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(o))
        }
    }

    let mut heap: BinaryHeap<Reverse<Due>> = w
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            Reverse(Due {
                num: 1,
                den: 2 * x,
                pos: i as u32,
            })
        })
        .collect();
    let mut out = Vec::with_capacity(total as usize);
    while (out.len() as u64) < total {
        let Some(Reverse(mut d)) = heap.pop() else {
            break;
        };
        out.push(d.pos);
        d.num += 2;
        heap.push(Reverse(d));
    }
    out
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests;
