//! The runtime API's DNS commands: `set server B/S addr IP [port P]` (applied on every
//! shard before the answer, in the words HAProxy 2.6 answers with), `set server B/S
//! fqdn NAME` (the resolver thread follows NAME before the answer) and `show resolvers
//! [NAME]` (each nameserver's counters, as the resolver thread keeps them).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use super::Core;
use crate::control::ToShard;

/// `set server B/S fqdn NAME`, answered in HAProxy 2.6's words once the resolver
/// thread follows NAME (asked at once; the address changes with its answer).
/// `shared`: made on another node, so not sent on again.
pub(super) fn set_fqdn(core: &Core, b: usize, s: usize, w: &[&str], shared: bool) -> String {
    let Some(fqdn) = w.first() else {
        return "set server <b>/<s> fqdn requires a FQDN.\n".into();
    };
    let cfg = core.cfg();
    let srv = &cfg.backends[b].servers[s];
    let tx = core.dns_cmds.lock().ok().and_then(|t| t.clone());
    let (Some(tx), true) = (tx, srv.dns.is_some()) else {
        return "set server <b>/<s> fqdn failed because no resolution is configured.\n".into();
    };
    if !valid_fqdn(fqdn) {
        return format!("invalid fqdn '{fqdn}' by 'stats socket command'\n");
    }
    let (done, answer) = crossbeam_channel::bounded(1);
    let cmd = crate::control::DnsCmd::SetFqdn {
        backend: b,
        server: s,
        fqdn: fqdn.to_ascii_lowercase(),
        done,
    };
    if tx.send(cmd).is_err() {
        return "The resolver is stopping (a reload?): try again.\n".into();
    }
    match answer.recv_timeout(std::time::Duration::from_secs(5)) {
        Ok(Ok(old)) if old == fqdn.to_ascii_lowercase() => {
            "no need to change the FDQN by 'stats socket command'\n".into()
        }
        Ok(Ok(old)) => {
            let msg = format!(
                "{}/{} changed its FQDN from {old} to {fqdn} by 'stats socket command'",
                cfg.backends[b].name, srv.name
            );
            tracing::info!("{msg}");
            if !shared {
                core.share_address(b, s, true, fqdn.to_ascii_lowercase());
            }
            msg + "\n"
        }
        Ok(Err(e)) => e + "\n",
        Err(_) => "The resolver did not answer in time: the change may be in force.\n".into(),
    }
}

/// A host name as HAProxy takes one: dot-separated labels of letters, digits, `-` and
/// `_`, each 1 to 63 bytes, 255 in all.
fn valid_fqdn(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 255
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        })
}

/// `set server B/S addr IP [port P]` (`shared`: made on another node, so not sent on
/// again).
pub(super) fn set_addr(core: &Core, b: usize, s: usize, w: &[&str], shared: bool) -> String {
    let (ip, port) = match w {
        [ip] => (*ip, None),
        [ip, "port", p] => (*ip, Some(*p)),
        _ => return "set server <b>/<s> addr requires an address and optionally a port.\n".into(),
    };
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return format!("Invalid addr '{ip}' by 'stats socket command'\n");
    };
    // As HAProxy: a port that is not a number is reported, the address still changes.
    let (port, bad_port) = match port.map(|p| (p, p.parse::<u16>())) {
        None => (None, None),
        Some((_, Ok(p))) => (Some(p), None),
        Some((p, Err(_))) => (None, Some(p)),
    };
    let cfg = core.cfg();
    let srv = &cfg.backends[b].servers[s];
    if port.is_some() && srv.port_offset.is_some() {
        return "The server has no port of its own (it takes the client's): ringlb cannot set one at run time yet.\n".into();
    }
    let health = core.health();
    let old = match health.lock() {
        Ok(v) => v
            .get(b)
            .and_then(|x| x.get(s))
            .map(|c| ((!c.no_addr).then_some(c.addr), c.addr.port()))
            .unwrap_or((Some(srv.addr), srv.addr.port())),
        Err(_) => return "Internal error.\n".into(),
    };
    let new = SocketAddr::new(ip, port.unwrap_or(old.1));
    if let Ok(mut v) = health.lock() {
        if let Some(c) = v.get_mut(b).and_then(|x| x.get_mut(s)) {
            if c.no_addr {
                c.last_change = std::time::Instant::now();
            }
            c.addr = new;
            c.no_addr = false;
        }
    }
    if let Err(e) = core.apply_everywhere(|| ToShard::SetAddr {
        backend: b,
        server: s,
        addr: Some(new),
        weight: None,
    }) {
        return e;
    }
    if !shared {
        core.share_address(b, s, false, w.join(" "));
    }
    let mut out = String::new();
    match old.0.map(|a| a.ip()) {
        Some(o) if o == ip => out.push_str("no need to change the addr"),
        o => {
            let o = o.map_or("(none)".to_string(), |o| o.to_string());
            let _ = write!(out, "IP changed from '{o}' to '{ip}'");
        }
    }
    if let Some(p) = bad_port {
        let _ = write!(out, ", problem converting port '{p}' to an int");
    } else if let Some(p) = port {
        if p == old.1 {
            out.push_str(", no need to change the port");
        } else {
            let _ = write!(out, ", port changed from '{}' to '{p}'", old.1);
        }
    }
    out.push_str(" by 'stats socket command'");
    tracing::warn!("{}/{}: {out}", cfg.backends[b].name, srv.name);
    out.push('\n');
    out
}

/// `set server B/S addr|fqdn VALUE` made on another node (`cluster`): made here, as
/// the runtime API makes it, unless it is in force already (`None`).
pub(super) fn apply_shared(core: &Core, spec: &str, fqdn: bool, value: &str) -> Option<String> {
    let (b, s) = core.find_server(spec)?;
    let cfg = core.cfg();
    let srv = &cfg.backends[b].servers[s];
    let (addr, no_addr, named) = {
        let health = core.health();
        let v = health.lock().ok()?;
        let c = v.get(b)?.get(s)?;
        (c.addr, c.no_addr, c.fqdn.clone())
    };
    let w: Vec<&str> = value.split(' ').collect();
    if fqdn {
        let current = named
            .as_deref()
            .or(srv.dns.as_ref().map(|d| d.fqdn.as_str()));
        if current.is_some_and(|c| c.eq_ignore_ascii_case(value)) {
            return None;
        }
        return Some(set_fqdn(core, b, s, &w, true));
    }
    let ip = w.first()?.parse::<IpAddr>().ok()?;
    let port = match w.get(1..) {
        Some(["port", p]) => p.parse::<u16>().ok(),
        _ => None,
    };
    let same = !no_addr && addr.ip() == ip && port.is_none_or(|p| p == addr.port());
    (!same).then(|| set_addr(core, b, s, &w, true))
}

/// `show resolvers [NAME]`: every nameserver's counters.
pub(super) fn show_resolvers(core: &Core, w: &[&str]) -> String {
    let cfg = core.cfg();
    if let Some(name) = w.first() {
        if !cfg.resolvers.iter().any(|r| r.name == *name) {
            return "Can't find that resolvers section\n".into();
        }
    }
    let counters = core
        .dns
        .lock()
        .ok()
        .and_then(|d| d.lock().ok().map(|c| c.clone()))
        .unwrap_or_default();
    let mut out = String::new();
    for (ri, r) in cfg.resolvers.iter().enumerate() {
        if w.first().is_some_and(|n| *n != r.name) {
            continue;
        }
        let _ = writeln!(out, "Resolvers section {}", r.name);
        for (ni, name) in r.nameservers.iter().map(|n| &n.name).enumerate() {
            let c = counters
                .get(ri)
                .and_then(|v| v.get(ni))
                .cloned()
                .unwrap_or_default();
            let _ = writeln!(out, " nameserver {name}:");
            for (k, v) in [
                ("sent", c.sent),
                ("snd_error", c.snd_error),
                ("valid", c.valid),
                ("update", c.update),
                ("cname", c.cname),
                ("cname_error", c.cname_error),
                ("any_err", c.any_err),
                ("nx", c.nx),
                ("timeout", c.timeout),
                ("refused", c.refused),
                ("other", c.other),
                ("invalid", c.invalid),
                ("too_big", c.too_big),
                ("truncated", c.truncated),
                ("outdated", c.outdated),
            ] {
                let _ = writeln!(out, "  {:<13}{v}", format!("{k}:"));
            }
        }
    }
    out
}
