//! haproxy.cfg `resolvers` sections, read before any proxy (servers name them), the
//! DNS options of `server` lines (`resolvers`, `resolve-prefer`, `resolve-net`,
//! `init-addr`) and `server-template` lines.

use super::*;
use crate::config::dns::{self, Family, Resolvers};
use crate::config::state_file::LastAddr;

impl Mapper<'_> {
    pub(super) fn resolvers_sections(&mut self, doc: &Document) {
        for sec in &doc.sections {
            if sec.kind != SectionKind::Other("resolvers".into()) {
                continue;
            }
            let Some(name) = sec.name.clone() else {
                self.err(sec.line, "'resolvers' expects <name> as argument");
                continue;
            };
            if self.resolvers.iter().any(|r| r.name == name) {
                self.err(
                    sec.line,
                    format!("resolvers '{name}' has the same name as another resolvers section"),
                );
                continue;
            }
            let mut r = Resolvers::new(&name);
            for l in &sec.lines {
                self.resolvers_line(l, &mut r);
            }
            if r.nameservers.is_empty() {
                self.err(
                    sec.line,
                    format!("resolvers '{name}': no nameserver (add 'nameserver NAME IP:PORT' or 'parse-resolv-conf')"),
                );
            }
            self.resolvers.push(r);
        }
    }

    fn resolvers_line(&mut self, l: &Line, r: &mut Resolvers) {
        let a = l.args();
        let time = |m: &mut Self, v: Option<&String>, what: &str| -> Option<Duration> {
            match v.map(|v| parse_time(v)) {
                Some(Ok(d)) if !d.is_zero() || what.starts_with("hold") => Some(d),
                Some(Ok(_)) => {
                    m.err(l.line, format!("'{what}' expects a time above zero"));
                    None
                }
                Some(Err(e)) => {
                    m.err(l.line, format!("'{what}': {e}"));
                    None
                }
                None => {
                    m.err(l.line, format!("'{what}' expects a time"));
                    None
                }
            }
        };
        match l.keyword() {
            "nameserver" => {
                let (Some(ns), Some(addr)) = (a.first(), a.get(1)) else {
                    return self.err(l.line, "'nameserver' expects <name> and <addr>");
                };
                if r.nameservers.iter().any(|n| &n.name == ns) {
                    return self.err(
                        l.line,
                        format!(
                            "nameserver '{ns}' is declared twice in resolvers '{}'",
                            r.name
                        ),
                    );
                }
                // `udp@` is the default; `tcp@` asks every question over TCP.
                let (text, tcp) = match addr.strip_prefix("tcp@") {
                    Some(t) => (t, true),
                    None => (addr.strip_prefix("udp@").unwrap_or(addr), false),
                };
                if text.contains('@') {
                    return self.err(
                        l.line,
                        format!("nameserver '{ns}': address '{addr}' is not supported (IP:PORT over UDP or tcp@IP:PORT)"),
                    );
                }
                match dns::parse_nameserver(text) {
                    Some(sa) => r.nameservers.push(crate::config::dns::Nameserver {
                        name: ns.clone(),
                        addr: sa,
                        tcp,
                    }),
                    None => self.err(
                        l.line,
                        format!("nameserver '{ns}': invalid address '{addr}' (expected IP:PORT)"),
                    ),
                }
            }
            "parse-resolv-conf" => match dns::resolv_conf(r.nameservers.len()) {
                Ok(found) => r.nameservers.extend(found),
                Err(e) => self.err(l.line, format!("'parse-resolv-conf': {e}")),
            },
            "accepted_payload_size" => match a.first().and_then(|v| v.parse::<u32>().ok()) {
                Some(n) if (512..=65535).contains(&n) => r.payload = n as u16,
                _ => self.err(
                    l.line,
                    "'accepted_payload_size' expects a number between 512 and 65535",
                ),
            },
            "resolve_retries" => match a.first().and_then(|v| v.parse::<u32>().ok()) {
                Some(n) if n >= 1 => r.retries = n,
                _ => self.err(l.line, "'resolve_retries' expects a number above zero"),
            },
            "timeout" => match a.first().map(String::as_str) {
                Some("resolve") => {
                    if let Some(d) = time(self, a.get(1), "timeout resolve") {
                        r.timeout_resolve = d;
                    }
                }
                Some("retry") => {
                    if let Some(d) = time(self, a.get(1), "timeout retry") {
                        r.timeout_retry = d;
                    }
                }
                _ => self.err(l.line, "'timeout' expects 'resolve' or 'retry' and a time"),
            },
            "hold" => {
                let what = a.first().map(String::as_str).unwrap_or("");
                let h = &mut r.hold;
                let slot = match what {
                    "valid" => &mut h.valid,
                    "nx" => &mut h.nx,
                    "timeout" => &mut h.timeout,
                    "refused" => &mut h.refused,
                    "obsolete" => &mut h.obsolete,
                    "other" => &mut h.other,
                    _ => {
                        return self.err(
                            l.line,
                            "'hold' expects one of 'valid', 'nx', 'timeout', 'refused', 'obsolete', 'other' and a time",
                        )
                    }
                };
                let mut d = None;
                if let Some(v) = a.get(1) {
                    d = parse_time(v).ok();
                }
                match d {
                    Some(d) => *slot = d,
                    None => self.err(l.line, format!("'hold {what}' expects a time")),
                }
            }
            other => self.err(
                l.line,
                format!(
                    "unknown keyword '{other}' in 'resolvers' section '{}'",
                    r.name
                ),
            ),
        }
    }

    /// A server option about DNS; `Some(words it took)` when it was one.
    pub(super) fn server_dns_option(
        &mut self,
        l: &Line,
        w: &[String],
        s: &mut ServerParams,
    ) -> Option<usize> {
        let v = w.get(1);
        match w[0].as_str() {
            "resolvers" => match v {
                Some(n) => s.resolvers = Some(n.clone()),
                None => self.err(l.line, "'resolvers' expects <resolvers_id> as argument"),
            },
            "resolve-prefer" => match v.map(String::as_str) {
                Some("ipv4") => s.prefer = Some(Family::V4),
                Some("ipv6") => s.prefer = Some(Family::V6),
                _ => self.err(l.line, "'resolve-prefer' expects 'ipv4' or 'ipv6'"),
            },
            "resolve-net" => {
                let mut nets = Vec::new();
                for n in v.map(|v| v.split(',')).into_iter().flatten() {
                    match dns::parse_net(n) {
                        Some(net) => nets.push(net),
                        None => {
                            self.err(l.line, format!("'resolve-net': invalid network '{n}'"));
                            return Some(2);
                        }
                    }
                }
                if nets.is_empty() {
                    self.err(
                        l.line,
                        "'resolve-net' expects a comma-separated list of networks",
                    );
                }
                s.nets = nets;
            }
            "init-addr" => {
                let mut methods = Vec::new();
                for m in v.map(|v| v.split(',')).into_iter().flatten() {
                    match dns::parse_init_addr(m) {
                        Ok(m) => methods.push(m),
                        Err(e) => {
                            self.err(l.line, e);
                            return Some(2);
                        }
                    }
                }
                if methods.is_empty() {
                    self.err(
                        l.line,
                        "'init-addr' expects a comma-separated list of methods",
                    );
                }
                s.init_addr = Some(methods);
            }
            _ => return None,
        }
        Some(2)
    }

    /// `server-template PREFIX NUM|LOW-HIGH FQDN[:PORT] [options]`: servers
    /// PREFIX<LOW>..PREFIX<HIGH>, each one slot that DNS answers fill.
    pub(super) fn server_template(&mut self, l: &Line, p: &mut Proxy) {
        let a = l.args();
        let (Some(prefix), Some(range), Some(fqdn)) = (a.first(), a.get(1), a.get(2)) else {
            return self.err(
                l.line,
                "'server-template' expects <prefix> <nb | range> <fqdn>[:<port>]",
            );
        };
        let Some((low, high)) = dns::template_range(range) else {
            return self.err(
                l.line,
                format!("'server-template': invalid number or range '{range}'"),
            );
        };
        let group = p.templates;
        p.templates += 1;
        for i in low..=high {
            let name = format!("{prefix}{i}");
            self.add_server(l, p, &name, fqdn, &a[3..], Some(group));
        }
    }
}

/// The server names a `server-template` line declares (for rules naming them).
pub(super) fn template_names(args: &[String]) -> Vec<String> {
    match (
        args.first(),
        args.get(1).and_then(|r| dns::template_range(r)),
    ) {
        (Some(prefix), Some((low, high))) => (low..=high).map(|i| format!("{prefix}{i}")).collect(),
        _ => Vec::new(),
    }
}

impl Mapper<'_> {
    /// Where server `name` (`with_port`: HOST:PORT) starts, and how DNS updates it:
    /// (address, DNS settings, no address yet, how the server-state file's address
    /// counts: `init-addr last`). `None`: an error was reported.
    pub(super) fn server_addr(
        &mut self,
        l: &Line,
        p: &Proxy,
        name: &str,
        with_port: &str,
        params: &ServerParams,
        template: Option<u32>,
    ) -> Option<(
        SocketAddr,
        Option<crate::config::dns::ServerDns>,
        bool,
        LastAddr,
    )> {
        if let Ok(a) = with_port.parse::<SocketAddr>() {
            // An IP address: nothing to resolve, whatever `resolvers` says (HAProxy).
            return Some((a, None, false, LastAddr::Never));
        }
        let Some((host, port)) = with_port.rsplit_once(':') else {
            self.err(
                l.line,
                format!("server '{name}': invalid address '{with_port}'"),
            );
            return None;
        };
        let port = port.parse::<u16>().unwrap_or(0);
        let resolvers = match &params.resolvers {
            None => None,
            Some(r) => match self.resolvers.iter().position(|x| &x.name == r) {
                Some(i) => Some(i),
                None => {
                    self.err(
                        l.line,
                        format!("server '{name}': unable to find required resolvers '{r}'"),
                    );
                    return None;
                }
            },
        };
        // A template's slots take one address each; `slot` is this one's number.
        let slot = template.map_or(0, |g| {
            p.servers
                .iter()
                .filter(|(_, s, _)| s.dns.as_ref().and_then(|d| d.template) == Some(g))
                .count()
        });
        let ask = dns::Ask {
            host,
            port,
            resolvers,
            prefer: params.prefer,
            nets: params.nets.clone(),
            init_addr: params.init_addr.clone(),
            template,
            slot,
            line: l.line,
        };
        let started = dns::start(ask, &mut |h| self.libc(h));
        if started.is_none() {
            self.err(
                l.line,
                format!(
                    "server '{name}': could not resolve address '{host}' (init-addr methods exhausted)"
                ),
            );
        }
        started.map(|s| (s.addr, s.dns, s.no_addr, s.last))
    }

    /// The system resolver's addresses for `host`, asked once per load.
    fn libc(&mut self, host: &str) -> Vec<IpAddr> {
        if let Some(v) = self.libc_cache.get(host) {
            return v.clone();
        }
        let v = dns::system_addresses(host);
        self.libc_cache.insert(host.to_string(), v.clone());
        v
    }
}
