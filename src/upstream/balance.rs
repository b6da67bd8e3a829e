//! Choosing a server within one group (primaries or backups) of one backend, on one
//! shard. One enum, one variant per algorithm. Everything that depends on weights and
//! server states is precomputed by `rebuild` (run on a flip, a weight change or a
//! slow-start step), so a pick never allocates and looks at as few servers as it can.
//!
//! Hash balancing places keys exactly as HAProxy 2.6 does (`placement`): a weighted
//! map for `hash-type map-based`, HAProxy's ring for `hash-type consistent`, so that an
//! operator moving from HAProxy keeps every cache key on the server it had. HAProxy's
//! ring is a ring with virtual nodes (16 per unit of weight, placed by server id):
//! removing one of N servers only moves the keys that were on its points (about 1/N).
//! A ring lookup is a binary search over a sorted array; Maglev (a full table rebuild
//! with more movement on change) and rendezvous hashing (O(N) hashes per pick) were
//! set aside before, and HAProxy compatibility now settles it.

use std::cell::{Cell, RefCell};

use crate::config::BalanceAlgo;

pub mod placement;

/// least_conn tree keys: load (26 bits) | change sequence (22 bits) | position (16 bits).
const POS_BITS: u32 = 16;
const POS_MASK: u64 = (1 << POS_BITS) - 1;
const SEQ_MASK: u64 = (1 << 22) - 1;
const LOAD_SHIFT: u32 = 38;
const LOAD_MAX: u64 = (1 << 26) - 1;
/// The key of a member with no free slot (and of empty leaves).
const FULL: u64 = u64::MAX;

/// Points on the consistent-hash ring per unit of weight (HAProxy's).
pub const VNODES_PER_WEIGHT: u32 = placement::POINTS_PER_WEIGHT;
/// Longest weighted round-robin schedule; larger weight sums are scaled down.
const MAX_SCHEDULE: u64 = 1 << 16;

/// A member of the group: a server index, its effective weight (> 0) and its
/// HAProxy server id (which places it on a consistent-hash ring).
#[derive(Debug, Clone, Copy)]
pub struct Member {
    pub server: u32,
    pub weight: u32,
    pub id: u32,
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
    /// HAProxy's map: a member position per slot (`hash % len`).
    HashMap {
        map: Vec<u32>,
        /// HAProxy's weight divisor: the gcd of the backend's configured weights.
        wmult: u32,
        fallback: Cell<usize>,
    },
    /// HAProxy's ring: (point, member position), sorted by point.
    HashRing {
        ring: Vec<(u32, u32)>,
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
                map: Vec::new(),
                wmult: 1,
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

    /// HAProxy's map-based weights are the configured ones divided by the gcd of all
    /// the backend's configured weights (`placement::weight_gcd`).
    pub fn set_weight_divisor(&mut self, g: u32) {
        if let Algo::HashMap { wmult, .. } = &mut self.algo {
            *wmult = g.max(1);
        }
    }

    /// Replaces the members (servers that can take traffic, in config order).
    pub fn rebuild(&mut self, members: impl Iterator<Item = Member>) {
        self.rebuild_with(members, false);
    }

    /// The group of a backend whose backups are used one at a time, `members` being
    /// its usable backups in config order: the first one only, except in a map, which
    /// HAProxy fills over all of them with as many slots as the first one's weight.
    pub fn rebuild_first_of(&mut self, members: impl Iterator<Item = Member>) {
        if matches!(self.algo, Algo::HashMap { .. }) {
            self.rebuild_with(members, true);
        } else {
            self.rebuild_with(members.take(1), false);
        }
    }

    fn rebuild_with(&mut self, members: impl Iterator<Item = Member>, first_sized: bool) {
        self.servers.clear();
        self.weights.clear();
        let mut ids = Vec::new();
        for m in members.filter(|m| m.weight > 0) {
            self.servers.push(m.server);
            self.weights.push(m.weight);
            ids.push(m.id);
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
            Algo::Random { cumulative, .. } => {
                cumulative.clear();
                let mut sum = 0u64;
                for &w in &self.weights {
                    sum += u64::from(w);
                    cumulative.push(sum);
                }
            }
            Algo::HashMap { map, wmult, .. } => {
                let g = *wmult;
                let eweights: Vec<u32> = self.weights.iter().map(|w| w.div_ceil(g)).collect();
                *map = match eweights.first() {
                    Some(&first) if first_sized => placement::interleave_scan(&eweights, first),
                    _ => placement::interleave(&eweights),
                };
            }
            Algo::HashRing { ring, .. } => {
                placement::ring(ids.iter().copied().zip(self.weights.iter().copied()), ring);
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
        key: Option<u32>,
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
            Algo::HashMap { map, fallback, .. } => match key {
                // HAProxy takes the key's slot; a retry (or a full server) moves on
                // to the next slots.
                Some(k) if !map.is_empty() => {
                    let len = map.len();
                    let start = k as usize % len;
                    (0..len)
                        .map(|j| self.servers[map[(start + j) % len] as usize])
                        .find(|&s| ok(s))
                }
                _ => {
                    let start = next_rr(fallback, n);
                    (0..n)
                        .map(|k| self.servers[(start + k) % n])
                        .find(|&s| ok(s))
                }
            },
            Algo::HashRing { ring, fallback } => match key {
                // The nearest point; a retry moves on to the next points, as HAProxy.
                Some(k) if !ring.is_empty() => {
                    let len = ring.len();
                    let start = placement::nearest(ring, k);
                    (0..len)
                        .map(|j| self.servers[ring[(start + j) % len].1 as usize])
                        .find(|&s| ok(s))
                }
                _ => {
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

/// HAProxy's hash of a client address for `balance source`: the address's 32-bit
/// words (network order) xor-ed together, so an IPv4 address hashes as its own value
/// and an IPv6 one as the xor of its four words. The hash function of `hash-type`
/// does not apply; `avalanche` does (see `HashFunction::finish`).
pub fn source_hash(ip: std::net::IpAddr) -> u32 {
    match ip {
        std::net::IpAddr::V4(v4) => u32::from(v4),
        std::net::IpAddr::V6(v6) => {
            let b = v6.octets();
            b.chunks_exact(4)
                .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
                .fold(0, |h, w| h ^ w)
        }
    }
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
