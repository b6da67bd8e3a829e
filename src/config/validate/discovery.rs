//! TOML's DNS service discovery: `[resolvers.NAME]` tables, and what a server entry
//! asks of them (`resolvers`, `resolve_prefer`, `resolve_net`, `init_addr`, and
//! `slots` for a template). The model is haproxy.cfg's (`config::dns`): both syntaxes
//! start a server through `dns::start`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use indexmap::IndexMap;

use super::Validator;
use crate::config::dns::{self, Family, Nameserver, Resolvers};
use crate::config::raw::{RawResolvers, RawServer, RawSlots};

/// A server entry's DNS keys, checked.
struct Asked {
    resolvers: Option<usize>,
    prefer: Option<Family>,
    nets: Vec<(IpAddr, u8)>,
    init_addr: Option<Vec<dns::InitAddr>>,
}

impl Validator {
    pub(super) fn resolvers(&mut self, raw: &IndexMap<String, RawResolvers>) -> Vec<Resolvers> {
        let mut out = Vec::new();
        for (name, r) in raw {
            let path = format!("resolvers.{name}");
            let mut res = Resolvers::new(name);
            for (i, text) in r.nameservers.iter().enumerate() {
                let (addr, tcp) = match text.strip_prefix("tcp@") {
                    Some(t) => (t, true),
                    None => (text.strip_prefix("udp@").unwrap_or(text), false),
                };
                match dns::parse_nameserver(addr) {
                    Some(addr) => res.nameservers.push(Nameserver {
                        name: format!("ns{}", i + 1),
                        addr,
                        tcp,
                    }),
                    None => self.err(
                        format!("{path}.nameservers[{i}]"),
                        format!("invalid address {text:?} (expected IP:PORT or tcp@IP:PORT)"),
                    ),
                }
            }
            if r.parse_resolv_conf {
                match dns::resolv_conf(res.nameservers.len()) {
                    Ok(found) => res.nameservers.extend(found),
                    Err(e) => self.err(format!("{path}.parse_resolv_conf"), e),
                }
            }
            if res.nameservers.is_empty() {
                self.err(
                    &path,
                    "no nameserver (set `nameservers` or `parse_resolv_conf`)",
                );
            }
            match r.accepted_payload_size {
                None => {}
                Some(n) if (512..=65535).contains(&n) => res.payload = n as u16,
                Some(n) => self.err(
                    format!("{path}.accepted_payload_size"),
                    format!("must be between 512 and 65535, got {n}"),
                ),
            }
            match r.resolve_retries {
                None => {}
                Some(n) if (1..=i64::from(u32::MAX)).contains(&n) => res.retries = n as u32,
                Some(n) => self.err(
                    format!("{path}.resolve_retries"),
                    format!("must be above zero, got {n}"),
                ),
            }
            for (key, raw, slot) in [
                (
                    "timeout_resolve",
                    &r.timeout_resolve,
                    &mut res.timeout_resolve,
                ),
                ("timeout_retry", &r.timeout_retry, &mut res.timeout_retry),
            ] {
                let d = self.duration(&format!("{path}.{key}"), raw, *slot);
                if d.is_zero() {
                    self.err(format!("{path}.{key}"), "must be above zero");
                } else {
                    *slot = d;
                }
            }
            let h = &r.hold;
            let hold = &mut res.hold;
            for (key, raw, slot) in [
                ("valid", &h.valid, &mut hold.valid),
                ("nx", &h.nx, &mut hold.nx),
                ("timeout", &h.timeout, &mut hold.timeout),
                ("refused", &h.refused, &mut hold.refused),
                ("obsolete", &h.obsolete, &mut hold.obsolete),
                ("other", &h.other, &mut hold.other),
            ] {
                *slot = self.duration(&format!("{path}.hold.{key}"), raw, *slot);
            }
            out.push(res);
        }
        out
    }

    /// The servers one entry declares: its name, or `NAME1`..`NAMEn` for `slots`
    /// (each with its template number `group`).
    pub(super) fn server_names(
        &mut self,
        spath: &str,
        name: &str,
        s: &RawServer,
        group: u32,
    ) -> Vec<(String, Option<u32>)> {
        let range = match &s.slots {
            None => return vec![(name.to_string(), None)],
            Some(RawSlots::Count(n)) => u32::try_from(*n)
                .ok()
                .and_then(|n| dns::template_range(&n.to_string())),
            Some(RawSlots::Range(r)) => dns::template_range(r),
        };
        if s.name.is_none() {
            self.err(
                format!("{spath}.name"),
                "a template (`slots`) needs a name: its servers are NAME1, NAME2, ...",
            );
        }
        match range {
            Some((low, high)) => (low..=high)
                .map(|i| (format!("{name}{i}"), Some(group)))
                .collect(),
            None => {
                self.err(
                    format!("{spath}.slots"),
                    "expected a number of slots from 1 to 65536, or \"LOW-HIGH\"",
                );
                Vec::new()
            }
        }
    }

    /// Where a server starts: its address as before (resolved once) when the entry
    /// has no DNS key; else as haproxy.cfg's `server ... resolvers ... init-addr`.
    /// `slot`: its place in its template. `None`: an error was reported.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn server_start(
        &mut self,
        spath: &str,
        s: &RawServer,
        resolvers: &[Resolvers],
        template: Option<u32>,
        slot: usize,
        libc: &mut HashMap<String, Vec<IpAddr>>,
    ) -> Option<dns::Start> {
        let plain = s.resolvers.is_none()
            && s.resolve_prefer.is_none()
            && s.resolve_net.is_none()
            && s.init_addr.is_none()
            && template.is_none();
        if plain || s.addr.parse::<SocketAddr>().is_ok() {
            // An IP address: nothing to resolve, whatever `resolvers` says (HAProxy).
            return match super::resolve_addr(&s.addr) {
                Ok(addr) => Some(dns::Start {
                    addr,
                    dns: None,
                    no_addr: false,
                    last: Default::default(),
                }),
                Err(e) => {
                    self.err(format!("{spath}.addr"), e);
                    None
                }
            };
        }
        let asked = self.asked(spath, s, resolvers)?;
        let (host, port) = match s.addr.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() => (h, p.parse::<u16>().ok()),
            _ => (s.addr.as_str(), Some(0)),
        };
        let Some(port) = port else {
            self.err(
                format!("{spath}.addr"),
                format!("invalid port in {:?} (expected NAME[:PORT])", s.addr),
            );
            return None;
        };
        let ask = dns::Ask {
            host,
            port,
            resolvers: asked.resolvers,
            prefer: asked.prefer,
            nets: asked.nets,
            init_addr: asked.init_addr,
            template,
            slot,
            line: 0,
        };
        let started = dns::start(ask, &mut |h| {
            libc.entry(h.to_string())
                .or_insert_with(|| dns::system_addresses(h))
                .clone()
        });
        if started.is_none() {
            self.err(
                format!("{spath}.addr"),
                format!("could not resolve {host:?} (init_addr methods exhausted)"),
            );
        }
        started
    }

    fn asked(&mut self, spath: &str, s: &RawServer, resolvers: &[Resolvers]) -> Option<Asked> {
        let mut ok = true;
        let resolvers = match &s.resolvers {
            None => None,
            Some(r) => {
                let i = resolvers.iter().position(|x| &x.name == r);
                if i.is_none() {
                    self.err(
                        format!("{spath}.resolvers"),
                        format!("no [resolvers.{r}] table"),
                    );
                    ok = false;
                }
                i
            }
        };
        let prefer = match s.resolve_prefer.as_deref() {
            None => None,
            Some("ipv4") => Some(Family::V4),
            Some("ipv6") => Some(Family::V6),
            Some(other) => {
                self.err(
                    format!("{spath}.resolve_prefer"),
                    format!("expected \"ipv4\" or \"ipv6\", got {other:?}"),
                );
                ok = false;
                None
            }
        };
        let mut nets = Vec::new();
        for (i, n) in s.resolve_net.iter().flatten().enumerate() {
            match dns::parse_net(n) {
                Some(net) => nets.push(net),
                None => {
                    self.err(
                        format!("{spath}.resolve_net[{i}]"),
                        format!("invalid network {n:?} (expected IP/LEN)"),
                    );
                    ok = false;
                }
            }
        }
        let init_addr = match &s.init_addr {
            None => None,
            Some(list) if list.is_empty() => {
                self.err(
                    format!("{spath}.init_addr"),
                    "must list at least one method",
                );
                return None;
            }
            Some(list) => {
                let mut methods = Vec::new();
                for (i, m) in list.iter().enumerate() {
                    match dns::parse_init_addr(m) {
                        Ok(m) => methods.push(m),
                        Err(e) => {
                            self.err(format!("{spath}.init_addr[{i}]"), e);
                            ok = false;
                        }
                    }
                }
                Some(methods)
            }
        };
        ok.then_some(Asked {
            resolvers,
            prefer,
            nets,
            init_addr,
        })
    }
}
