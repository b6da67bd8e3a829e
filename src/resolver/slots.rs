//! Which address each server (or template slot) takes from an answer: a pure
//! function of what the slots hold and what DNS said. A slot keeps its address while
//! the answers still have it (or for `hold obsolete` after they stop having it), so a
//! change fills and empties slots without touching the others (a consistent hash
//! moves only the keys of the slots that came or went); new addresses fill empty
//! slots, lowest first.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::wire::Item;
use crate::config::dns::{in_net, Family};

/// What one server holds: its address (`None`: none, in maintenance), the weight an
/// SRV answer gave, and when the answers last had that address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub addr: Option<SocketAddr>,
    pub weight: Option<u32>,
    pub seen: Instant,
}

/// How to read an answer for a group of slots.
pub struct Want<'a> {
    /// Slots of a `server-template` (one address each); else a single server that
    /// takes the best address.
    pub template: bool,
    /// The configured port (A/AAAA answers carry none).
    pub port: u16,
    pub prefer: Family,
    pub nets: &'a [(IpAddr, u8)],
    pub obsolete: Duration,
    /// Addresses other servers of the backend following the same name hold: a single
    /// server takes none of them (HAProxy 2.6 without `resolve-opts allow-dup-ip`:
    /// one answer address for two servers goes to one of them, the other stays in
    /// maintenance).
    pub taken: &'a [IpAddr],
}

/// HAProxy's mapping of an SRV weight (0-65535) onto a server weight (0-256).
pub fn srv_weight(w: u16) -> u32 {
    u32::from(w).div_ceil(256)
}

/// The slots after a valid answer `items` at `now`.
pub fn assign(held: &[Held], items: &[Item], now: Instant, want: &Want) -> Vec<Held> {
    // Candidates, best first: inside the `resolve-net` networks (in their order),
    // then the preferred family.
    let mut cands: Vec<(SocketAddr, Option<u32>)> = items
        .iter()
        .map(|i| {
            (
                SocketAddr::new(i.ip, i.port.unwrap_or(want.port)),
                i.weight.map(srv_weight),
            )
        })
        .collect();
    cands.dedup_by_key(|c| c.0);
    let rank = |a: &SocketAddr| {
        let net = want
            .nets
            .iter()
            .position(|n| in_net(a.ip(), *n))
            .unwrap_or(want.nets.len());
        let fam = usize::from(a.is_ipv4() != (want.prefer == Family::V4));
        (net, fam)
    };
    cands.sort_by_key(|c| rank(&c.0));
    let mut out: Vec<Held> = held
        .iter()
        .map(|h| match h.addr {
            Some(a) => match cands.iter().find(|c| c.0 == a) {
                Some(c) => Held {
                    addr: Some(a),
                    weight: c.1,
                    seen: now,
                },
                None if now < h.seen + want.obsolete => *h,
                None => Held {
                    addr: None,
                    weight: None,
                    seen: now,
                },
            },
            None => *h,
        })
        .collect();
    if !want.template {
        // A single server: the best address no other server holds, when it lost its
        // own.
        let best = cands.iter().find(|c| !want.taken.contains(&c.0.ip()));
        if let (Some(o), Some(c)) = (out.first_mut(), best) {
            if o.addr.is_none()
                || held[0]
                    .addr
                    .is_some_and(|a| !cands.iter().any(|x| x.0 == a))
            {
                *o = Held {
                    addr: Some(c.0),
                    weight: c.1,
                    seen: now,
                };
            }
        }
        return out;
    }
    for c in &cands {
        if out.iter().any(|h| h.addr == Some(c.0)) {
            continue;
        }
        let Some(free) = out.iter_mut().find(|h| h.addr.is_none()) else {
            break;
        };
        *free = Held {
            addr: Some(c.0),
            weight: c.1,
            seen: now,
        };
    }
    out
}

/// Every slot without its address (the hold of an error ran out).
pub fn empty(held: &[Held]) -> Vec<Held> {
    held.iter()
        .map(|h| Held {
            addr: None,
            weight: None,
            seen: h.seen,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(ip: &str) -> Item {
        Item {
            ip: ip.parse().unwrap(),
            port: None,
            weight: None,
        }
    }

    fn want(template: bool) -> Want<'static> {
        Want {
            template,
            port: 80,
            prefer: Family::V4,
            nets: &[],
            obsolete: Duration::ZERO,
            taken: &[],
        }
    }

    fn addrs(h: &[Held]) -> Vec<Option<String>> {
        h.iter().map(|h| h.addr.map(|a| a.to_string())).collect()
    }

    #[test]
    fn template_slots_fill_and_empty_without_moving_others() {
        let now = Instant::now();
        let empty = vec![
            Held {
                addr: None,
                weight: None,
                seen: now
            };
            3
        ];
        let a = assign(
            &empty,
            &[item("127.0.0.2"), item("127.0.0.3")],
            now,
            &want(true),
        );
        assert_eq!(
            addrs(&a),
            [
                Some("127.0.0.2:80".into()),
                Some("127.0.0.3:80".into()),
                None
            ]
        );
        // .2 goes, .4 comes: slot 1 keeps .3, slot 0 is free and takes .4.
        let b = assign(
            &a,
            &[item("127.0.0.3"), item("127.0.0.4")],
            now,
            &want(true),
        );
        assert_eq!(
            addrs(&b),
            [
                Some("127.0.0.4:80".into()),
                Some("127.0.0.3:80".into()),
                None
            ]
        );
    }

    #[test]
    fn obsolete_hold_keeps_a_missing_address() {
        let now = Instant::now();
        let h = [Held {
            addr: Some("127.0.0.2:80".parse().unwrap()),
            weight: None,
            seen: now,
        }];
        let mut w = want(true);
        w.obsolete = Duration::from_secs(5);
        let later = now + Duration::from_secs(1);
        assert_eq!(assign(&h, &[], later, &w)[0].addr, h[0].addr);
        assert_eq!(
            assign(&h, &[], now + Duration::from_secs(6), &w)[0].addr,
            None
        );
    }

    #[test]
    fn single_server_follows_the_best_address_and_prefers_its_family_and_nets() {
        let now = Instant::now();
        let h = [Held {
            addr: Some("127.0.0.2:80".parse().unwrap()),
            weight: None,
            seen: now,
        }];
        // Still answered: kept even if not first.
        let a = assign(
            &h,
            &[item("127.0.0.5"), item("127.0.0.2")],
            now,
            &want(false),
        );
        assert_eq!(a[0].addr, h[0].addr);
        let a = assign(&h, &[item("::1"), item("127.0.0.5")], now, &want(false));
        assert_eq!(a[0].addr, Some("127.0.0.5:80".parse().unwrap()));
        let nets = [("127.0.0.9".parse().unwrap(), 32)];
        let w = Want {
            nets: &nets,
            ..want(false)
        };
        let a = assign(&h, &[item("127.0.0.5"), item("127.0.0.9")], now, &w);
        assert_eq!(a[0].addr, Some("127.0.0.9:80".parse().unwrap()));
    }

    /// A single server takes no address another server of its name holds; one it
    /// holds itself it keeps.
    #[test]
    fn a_single_server_skips_addresses_other_servers_hold() {
        let now = Instant::now();
        let none = [Held {
            addr: None,
            weight: None,
            seen: now,
        }];
        let taken = ["127.0.0.5".parse().unwrap()];
        let w = Want {
            taken: &taken,
            ..want(false)
        };
        let a = assign(&none, &[item("127.0.0.5")], now, &w);
        assert_eq!(addrs(&a), [None], "the only address is another server's");
        let a = assign(&none, &[item("127.0.0.5"), item("127.0.0.6")], now, &w);
        assert_eq!(addrs(&a), [Some("127.0.0.6:80".to_string())]);
        let own = assign(&none, &[item("127.0.0.6")], now, &want(false));
        let a = assign(&own, &[item("127.0.0.5"), item("127.0.0.6")], now, &w);
        assert_eq!(addrs(&a), [Some("127.0.0.6:80".to_string())]);
    }

    #[test]
    fn srv_weights_map_as_haproxy() {
        assert_eq!(srv_weight(0), 0);
        assert_eq!(srv_weight(1), 1);
        assert_eq!(srv_weight(256), 1);
        assert_eq!(srv_weight(257), 2);
        assert_eq!(srv_weight(65535), 256);
    }
}
