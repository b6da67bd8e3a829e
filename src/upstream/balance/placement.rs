//! Where HAProxy 2.6 places a hash key, so that moving from HAProxy to ringlb keeps
//! every key on the server it had (caches stay warm). Two layouts, rebuilt off the
//! request path on every change of state or weight:
//!
//! - `map-based`: a table of `tot` slots (the sum of the group's effective weights),
//!   filled by HAProxy's interleaving: at every slot each server earns its weight, the
//!   one whose score divided by `tot` is highest (the first declared on a tie) takes the
//!   slot and pays `tot`. A key goes to slot `hash % tot`. Effective weights are the
//!   configured ones divided by the gcd of all the backend's configured weights.
//! - `consistent`: a ring of `16 × weight` points per server, point `j` of the server
//!   with id `puid` at `full_hash(puid × 4096 + j)`. A key goes to the point nearest to
//!   its hash, the one before on a tie. A server's points depend only on its own id and
//!   weight, so a change moves only the keys of the server that changed.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use crate::hash::full_hash;

/// HAProxy's BE_WEIGHT_SCALE: ring points per unit of user weight.
pub const POINTS_PER_WEIGHT: u32 = 16;
/// HAProxy's SRV_EWGHT_RANGE: the stride between two servers' point numbers.
const ID_STRIDE: u32 = 256 * POINTS_PER_WEIGHT;

/// The map of a group whose weights add up to its length: HAProxy's interleaving,
/// computed from deficits instead of HAProxy's O(slots × servers) scan.
///
/// After slot `o`, server `i` has earned `floor((o + 1) × w_i / tot)` slots and taken
/// `c_i`; HAProxy's score comparison is a comparison of the deficits
/// `earned - taken` (ties to the first server). A server's earned count goes up by one
/// at `weight` known slots, so the deficits move by events: O(tot × log n) in all.
pub fn interleave(weights: &[u32]) -> Vec<u32> {
    let tot: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    let mut map = Vec::with_capacity(tot as usize);
    if tot == 0 {
        return map;
    }
    // The next slot at which each server earns one more (its m-th at
    // ceil(m × tot / w) - 1), in a min-heap.
    let mut earned_at: BinaryHeap<Reverse<(u64, u32, u64)>> = weights
        .iter()
        .enumerate()
        .filter(|(_, &w)| w > 0)
        .map(|(i, &w)| Reverse((tot.div_ceil(u64::from(w)) - 1, i as u32, 1)))
        .collect();
    let mut deficit = vec![0i64; weights.len()];
    // Servers by deficit, highest first; within one, by position.
    let mut by_deficit: BTreeMap<Reverse<i64>, BTreeSet<u32>> = BTreeMap::new();
    by_deficit
        .entry(Reverse(0))
        .or_default()
        .extend((0..weights.len() as u32).filter(|&i| weights[i as usize] > 0));
    let mut moved = |by: &mut BTreeMap<Reverse<i64>, BTreeSet<u32>>, i: u32, delta: i64| {
        let d = &mut deficit[i as usize];
        if let Some(set) = by.get_mut(&Reverse(*d)) {
            set.remove(&i);
            if set.is_empty() {
                by.remove(&Reverse(*d));
            }
        }
        *d += delta;
        by.entry(Reverse(*d)).or_default().insert(i);
    };
    for o in 0..tot {
        while let Some(&Reverse((at, i, m))) = earned_at.peek() {
            if at != o {
                break;
            }
            earned_at.pop();
            moved(&mut by_deficit, i, 1);
            let w = u64::from(weights[i as usize]);
            if m < w {
                let next = ((m + 1) * tot).div_ceil(w) - 1;
                earned_at.push(Reverse((next, i, m + 1)));
            }
        }
        let Some((_, set)) = by_deficit.iter().next() else {
            break;
        };
        let Some(&best) = set.iter().next() else {
            break;
        };
        map.push(best);
        moved(&mut by_deficit, best, -1);
    }
    map
}

/// HAProxy's own filling, slot by slot, for a map of `tot` slots over servers whose
/// weights may add up to more (a single backup's map lists every usable backup: see
/// `BackendState::rebuild`). O(tot × servers): for small groups and for tests.
pub fn interleave_scan(weights: &[u32], tot: u32) -> Vec<u32> {
    let tot = i64::from(tot);
    let mut score = vec![0i64; weights.len()];
    let mut map = Vec::with_capacity(tot as usize);
    for _ in 0..tot {
        let mut best: Option<(usize, i64)> = None;
        for (i, &w) in weights.iter().enumerate() {
            if w == 0 {
                continue;
            }
            if tot == 1 {
                best = Some((i, 0));
                break;
            }
            score[i] += i64::from(w);
            // Integer division truncating toward zero, as C's.
            let v = (score[i] + tot) / tot;
            if best.is_none_or(|(_, max)| v > max) {
                best = Some((i, v));
            }
        }
        let Some((i, _)) = best else {
            break;
        };
        map.push(i as u32);
        score[i] -= tot;
    }
    map
}

/// The ring of the members `(id, weight)` (weight in user units, 0–256), as sorted
/// `(point, member position)` pairs.
pub fn ring(members: impl Iterator<Item = (u32, u32)>, out: &mut Vec<(u32, u32)>) {
    out.clear();
    for (pos, (id, weight)) in members.enumerate() {
        let base = id.wrapping_mul(ID_STRIDE);
        for j in 0..weight * POINTS_PER_WEIGHT {
            out.push((full_hash(base.wrapping_add(j)), pos as u32));
        }
    }
    out.sort_unstable();
}

/// The ring index of the point nearest to `hash` (ties: the point before). The ring
/// is not empty.
pub fn nearest(ring: &[(u32, u32)], hash: u32) -> usize {
    let len = ring.len();
    let next = match ring.partition_point(|p| p.0 < hash) {
        i if i == len => 0,
        i => i,
    };
    let prev = if next == 0 { len - 1 } else { next - 1 };
    let after = ring[next].0.wrapping_sub(hash);
    let before = hash.wrapping_sub(ring[prev].0);
    if before <= after {
        prev
    } else {
        next
    }
}

/// The gcd of the non-zero weights (1 when there is none): HAProxy divides map-based
/// weights by it.
pub fn weight_gcd(weights: impl Iterator<Item = u32>) -> u32 {
    fn gcd(a: u32, b: u32) -> u32 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    weights.filter(|&w| w > 0).fold(0, gcd).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_is_haproxy_scan() {
        let mut rng = fastrand::Rng::with_seed(7);
        for round in 0..400 {
            let n = rng.usize(1..12);
            let weights: Vec<u32> = (0..n)
                .map(|_| {
                    if rng.u8(..) < 30 {
                        0
                    } else {
                        rng.u32(1..=(1 + round % 40))
                    }
                })
                .collect();
            let tot: u32 = weights.iter().sum();
            assert_eq!(
                interleave(&weights),
                interleave_scan(&weights, tot),
                "{weights:?}"
            );
        }
        // Known maps, worked by hand from the scan: equal weights in declaration order;
        // the lighter server takes the last slot of its cycle.
        assert_eq!(interleave(&[1, 1, 1]), [0, 1, 2]);
        assert_eq!(interleave(&[3, 1]), [0, 0, 0, 1]);
        assert_eq!(interleave(&[2, 1]), [0, 0, 1]);
    }

    #[test]
    fn nearest_point_and_ties() {
        let ring = [(100, 0), (200, 1), (300, 2)];
        assert_eq!(nearest(&ring, 100), 0);
        assert_eq!(nearest(&ring, 149), 0);
        assert_eq!(nearest(&ring, 150), 0, "a tie goes to the point before");
        assert_eq!(nearest(&ring, 151), 1);
        assert_eq!(nearest(&ring, 10), 0);
        // Around the wrap: 300 is 40 before 4_294_967_236 + ... ; 100 is nearer past 0.
        assert_eq!(nearest(&ring, u32::MAX), 0);
        assert_eq!(nearest(&ring, 310), 2);
    }

    #[test]
    fn ring_points_are_haproxy_keys() {
        let mut r = Vec::new();
        ring([(1, 1)].into_iter(), &mut r);
        assert_eq!(r.len(), 16);
        let mut want: Vec<u32> = (0..16).map(|j| full_hash(4096 + j)).collect();
        want.sort_unstable();
        assert_eq!(r.iter().map(|p| p.0).collect::<Vec<_>>(), want);
        assert_eq!(weight_gcd([4, 0, 6].into_iter()), 2);
        assert_eq!(weight_gcd([0].into_iter()), 1);
    }
}
