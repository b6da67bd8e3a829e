//! DNS service discovery in the model: haproxy.cfg `resolvers` sections (where to ask,
//! how long to trust an answer) and what a server asks them (`resolvers`,
//! `resolve-prefer`, `resolve-net`, `init-addr`, `server-template`). The resolver
//! thread (src/resolver/) reads these; the data path never does.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// One `resolvers NAME` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolvers {
    pub name: String,
    /// `nameserver NAME [udp@|tcp@]IP:PORT`, in file order (`parse-resolv-conf` adds
    /// the system's, named `sys1`, `sys2`, ... as HAProxy does).
    pub nameservers: Vec<Nameserver>,
    /// `accepted_payload_size`: the EDNS0 payload size announced (512 = no EDNS0).
    pub payload: u16,
    /// `resolve_retries`: queries sent for one resolution before it fails (timeout).
    pub retries: u32,
    /// `timeout resolve`: how often the resolver looks for resolutions due;
    /// `timeout retry`: how long it waits for one answer before asking again.
    pub timeout_resolve: Duration,
    pub timeout_retry: Duration,
    pub hold: Hold,
}

/// One nameserver of a `resolvers` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nameserver {
    pub name: String,
    pub addr: SocketAddr,
    /// `tcp@`: every question over TCP (else UDP, and TCP when an answer is
    /// truncated).
    pub tcp: bool,
}

/// `hold STATUS PERIOD`: how long the last valid answer stays in force after an
/// answer of that status (`valid`: how long a valid answer is kept before asking
/// again; `obsolete`: how long an address missing from new answers is kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    pub valid: Duration,
    pub nx: Duration,
    pub timeout: Duration,
    pub refused: Duration,
    pub obsolete: Duration,
    pub other: Duration,
}

impl Default for Hold {
    /// HAProxy 2.6's defaults.
    fn default() -> Hold {
        let s30 = Duration::from_secs(30);
        Hold {
            valid: Duration::from_secs(10),
            nx: s30,
            timeout: s30,
            refused: s30,
            obsolete: Duration::ZERO,
            other: s30,
        }
    }
}

impl Resolvers {
    /// A section with HAProxy 2.6's defaults and no nameserver.
    pub fn new(name: &str) -> Resolvers {
        Resolvers {
            name: name.to_string(),
            nameservers: Vec::new(),
            payload: 512,
            retries: 3,
            timeout_resolve: Duration::from_secs(1),
            timeout_retry: Duration::from_secs(1),
            hold: Hold::default(),
        }
    }
}

/// `resolve-prefer`: the family asked first (HAProxy's default: ipv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// How a server finds its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerDns {
    /// Index into `Config::resolvers`.
    pub resolvers: usize,
    /// The name asked (an SRV name when it starts with `_`).
    pub fqdn: String,
    pub prefer: Family,
    /// `resolve-net`: addresses in these networks are preferred, in this order.
    pub nets: Vec<(IpAddr, u8)>,
    /// A `server-template` slot: its template's number in the backend, so slots of
    /// one template share answers (one address per slot).
    pub template: Option<u32>,
}

impl ServerDns {
    /// An SRV name (`_http._tcp.svc.example`): answers give port and weight too.
    pub fn srv(&self) -> bool {
        self.fqdn.starts_with('_')
    }
}

/// `init-addr` methods, tried in order at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitAddr {
    /// The address the server-state file had (`config::state_file`).
    Last,
    /// The system's resolver.
    Libc,
    /// No address: the server starts in maintenance until DNS gives one.
    None,
    Ip(IpAddr),
}

/// Whether `ip` is inside network `net/len`.
pub fn in_net(ip: IpAddr, (net, len): (IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_net(ip("10.1.2.3"), (ip("10.0.0.0"), 8)));
        assert!(!in_net(ip("11.1.2.3"), (ip("10.0.0.0"), 8)));
        assert!(in_net(ip("11.1.2.3"), (ip("0.0.0.0"), 0)));
        assert!(in_net(ip("fd00::1"), (ip("fd00::"), 8)));
        assert!(!in_net(ip("fd00::1"), (ip("10.0.0.0"), 0)));
    }
}
