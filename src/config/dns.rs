//! DNS service discovery in the model: haproxy.cfg `resolvers` sections (where to ask,
//! how long to trust an answer) and what a server asks them (`resolvers`,
//! `resolve-prefer`, `resolve-net`, `init-addr`, `server-template`). The resolver
//! thread (src/resolver/) reads these; the data path never does.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::state_file::LastAddr;

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

/// What a server asks of DNS and `init-addr`, in either syntax.
pub struct Ask<'a> {
    pub host: &'a str,
    pub port: u16,
    /// Index into `Config::resolvers` (`None`: the name is resolved once, at load).
    pub resolvers: Option<usize>,
    /// `resolve-prefer`, when given.
    pub prefer: Option<Family>,
    pub nets: Vec<(IpAddr, u8)>,
    /// `init-addr` (HAProxy's default: `last,libc`).
    pub init_addr: Option<Vec<InitAddr>>,
    /// A template's number in its backend, and this slot's place in it.
    pub template: Option<u32>,
    pub slot: usize,
    /// The config line (haproxy.cfg; 0 in TOML), for an error found later.
    pub line: usize,
}

/// Where a server starts, and how DNS updates it.
pub struct Start {
    pub addr: SocketAddr,
    pub dns: Option<ServerDns>,
    /// No address yet: the server starts in maintenance until DNS gives one.
    pub no_addr: bool,
    /// How the server-state file's address counts (`init-addr last`).
    pub last: LastAddr,
}

/// The start of a server named by `ask.host` (not an IP): its `init-addr` methods in
/// order, `libc` asking the system resolver. `None`: every method failed.
pub fn start(ask: Ask, libc: &mut dyn FnMut(&str) -> Vec<IpAddr>) -> Option<Start> {
    let prefer = ask.prefer.unwrap_or(Family::V6);
    let dns = ask.resolvers.map(|resolvers| ServerDns {
        resolvers,
        fqdn: ask.host.to_string(),
        prefer,
        nets: ask.nets.clone(),
        template: ask.template,
    });
    let any = match prefer {
        Family::V4 => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        Family::V6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    };
    let at = |ip, no_addr, last, dns| {
        Some(Start {
            addr: SocketAddr::new(ip, ask.port),
            dns,
            no_addr,
            last,
        })
    };
    let methods = ask
        .init_addr
        .clone()
        .unwrap_or(vec![InitAddr::Last, InitAddr::Libc]);
    let srv = ask.host.starts_with('_');
    // `last`: the server-state file, read once the model is built, has the final say
    // over what a later method gives.
    let mut last = LastAddr::Never;
    for m in &methods {
        match *m {
            InitAddr::Last => last = LastAddr::First,
            InitAddr::None => return at(any, true, last, dns),
            InitAddr::Ip(ip) => return at(ip, false, last, dns),
            InitAddr::Libc if srv => {}
            InitAddr::Libc => {
                let mut ips = libc(ask.host);
                // The system's order, unless a family is asked for (or DNS will follow
                // the name, preferring its family).
                if ask.prefer.is_some() || dns.is_some() {
                    ips.sort_by_key(|ip| ip.is_ipv4() != (prefer == Family::V4));
                }
                ips.dedup();
                if ips.is_empty() {
                    continue;
                }
                // Without a resolver, every slot of a template takes the first
                // address, as in HAProxy; with one, one address per slot.
                return match ips.get(if dns.is_some() { ask.slot } else { 0 }) {
                    Some(ip) => at(*ip, false, last, dns),
                    None => at(any, true, last, dns),
                };
            }
        }
    }
    // Only the server-state file can give it one (checked when it is read).
    (last == LastAddr::First).then(|| Start {
        addr: SocketAddr::new(any, ask.port),
        dns,
        no_addr: true,
        last: LastAddr::Only(ask.line),
    })
}

/// A template's slots: `NUM` (1..NUM) or `LOW-HIGH`, at most 65536.
pub fn template_range(text: &str) -> Option<(u32, u32)> {
    let (low, high) = match text.split_once('-') {
        Some((a, b)) => (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?),
        None => (1, text.parse::<u32>().ok()?),
    };
    (low >= 1 && high >= low && high - low < 65536).then_some((low, high))
}

/// The system resolver's addresses for `host` (`init-addr libc`).
pub fn system_addresses(host: &str) -> Vec<IpAddr> {
    // Fuzzing never asks DNS about random names.
    if cfg!(fuzzing) {
        return Vec::new();
    }
    use std::net::ToSocketAddrs;
    (host, 0)
        .to_socket_addrs()
        .map(|it| it.map(|a| a.ip()).collect())
        .unwrap_or_default()
}

/// One `init-addr` method: `last`, `libc`, `none` or an IP address.
pub fn parse_init_addr(m: &str) -> Result<InitAddr, String> {
    Ok(match m {
        "last" => InitAddr::Last,
        "libc" => InitAddr::Libc,
        "none" => InitAddr::None,
        ip => ip.parse::<IpAddr>().map(InitAddr::Ip).map_err(|_| {
            format!(
                "'init-addr': unknown method '{ip}' (expected last, libc, none or an IP address)"
            )
        })?,
    })
}

/// A nameserver's address: `IP:PORT`, or `IP` (port 53, HAProxy's default).
pub fn parse_nameserver(text: &str) -> Option<SocketAddr> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Some(a);
    }
    text.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 53))
}

/// A `resolve-net` network: `IP/LEN` or `IP`.
pub fn parse_net(text: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = match text.split_once('/') {
        Some((ip, len)) => (ip.parse::<IpAddr>().ok()?, len.parse::<u8>().ok()?),
        None => {
            let ip = text.parse::<IpAddr>().ok()?;
            (ip, if ip.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((ip, len))
}

/// The nameservers `/etc/resolv.conf` lists, named `sys1`, `sys2`, ... after
/// `already` others (HAProxy's `parse-resolv-conf`).
pub fn resolv_conf(already: usize) -> Result<Vec<Nameserver>, String> {
    let text = std::fs::read_to_string("/etc/resolv.conf")
        .map_err(|e| format!("cannot read /etc/resolv.conf: {e}"))?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut w = line.split_whitespace();
            (w.next() == Some("nameserver"))
                .then(|| w.next()?.parse::<IpAddr>().ok())
                .flatten()
        })
        .enumerate()
        .map(|(i, ip)| Nameserver {
            name: format!("sys{}", already + i + 1),
            addr: SocketAddr::new(ip, 53),
            tcp: false,
        })
        .collect())
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
