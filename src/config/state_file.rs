//! The server-state file (HAProxy's `server-state-file`, `server-state-base`,
//! `load-server-state-from-file`, `server-state-file-name`): what a previous process
//! wrote with `show servers state` (format version 1), read at every load (start,
//! reload, the new process of an upgrade) into the model, so that servers start where
//! they were: the operator's MAINT / DRAIN and weight, DOWN for checked servers that
//! were down (they need their `rise` checks again), the port, and the address of
//! servers whose `init-addr` tries `last` first, and the name `set server fqdn` gave a
//! server that follows one with `resolvers` (`srv_fqdn`). What is read, what is checked and the
//! precedence between the file and a changed config follow HAProxy 2.6's
//! `server_state.c`, messages included. The data path never reads this: shards, the
//! health thread and the operator state start from `Server::saved`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::Config;

/// Where a backend's servers take their state from at load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StateFrom {
    /// Nothing (HAProxy's default, `none`).
    #[default]
    None,
    /// The global `server-state-file`: lines matched by backend and server name.
    Global,
    /// A file of its own (`local`): lines matched by backend id or name.
    Local(PathBuf),
}

/// How a server's `init-addr` uses the file's address (HAProxy's `last`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LastAddr {
    /// An IP address in the config, or `last` not tried before the method that gave
    /// the address.
    #[default]
    Never,
    /// `last` comes before the method that gave the address: the file's wins.
    First,
    /// No other method gave an address: without one in the file, the config is
    /// refused (the haproxy.cfg line of the server, for the error; 0 in TOML).
    Only(usize),
}

/// The operator's state the file gives (after HAProxy's precedence rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavedAdmin {
    Ready,
    Drain,
    Maint,
}

/// What a server takes from the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saved {
    pub admin: SavedAdmin,
    /// Up or down at start, and the check health to count from (0 .. rise+fall-1).
    pub up: bool,
    pub health: u32,
    /// The operator's weight (`srv_uweight`), when the config's weight did not change.
    pub weight: Option<u32>,
    /// Seconds since the last state change.
    pub since: u64,
    /// The file gave the server the name `set server fqdn` had given it (HAProxy's
    /// HMAINT flag, written back as such).
    pub fqdn_set: bool,
}

/// HAProxy's path rule: an absolute name as is, else under `server-state-base`.
pub fn path(base: Option<&str>, name: &str) -> PathBuf {
    match base {
        Some(b) if !name.starts_with('/') => Path::new(b).join(name),
        _ => PathBuf::from(name),
    }
}

/// Fields of a version 1 line: 20 to 25 (the last five are optional).
const MIN_FIELDS: usize = 20;
const MAX_FIELDS: usize = 25;

/// Lines of one file, by (backend name, server name), with their line numbers.
type Lines = HashMap<(String, String), (usize, Vec<String>)>;

/// Reads the files the backends of `cfg` load and applies them to their servers.
/// `Ok`: warnings (HAProxy's); a missing or empty file is only a notice, logged.
/// `Err`: a server whose only `init-addr` method is `last` found no address.
pub fn apply(cfg: &mut Config) -> Result<Vec<String>, Vec<String>> {
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    // The global file is read whether a backend uses it or not (as HAProxy).
    let mut global = cfg
        .runtime
        .server_state_file
        .clone()
        .and_then(|f| read(&f, None, &mut warnings, "config: ", "global "));
    for bi in 0..cfg.backends.len() {
        if cfg.backends[bi].disabled || cfg.backends[bi].servers.is_empty() {
            continue;
        }
        // Only a backend with a file of its own needs its id (a scan of the proxies).
        let id = match cfg.backends[bi].state_from {
            StateFrom::Local(_) => cfg.proxy_uid(false, bi).unwrap_or(0),
            _ => 0,
        };
        let b = &mut cfg.backends[bi];
        let mut own = match &b.state_from {
            StateFrom::Local(file) => {
                let who = format!("Proxy '{}': ", b.name);
                read(file, Some((&b.name, id)), &mut warnings, &who, "")
            }
            _ => None,
        };
        let mut lines = match &b.state_from {
            StateFrom::None => None,
            StateFrom::Global => global.as_mut(),
            StateFrom::Local(_) => own.as_mut(),
        };
        let (rise, fall) = b.health.as_ref().map_or((2, 3), |h| (h.rise, h.fall));
        let backend_checks = b.health.is_some();
        // Which servers take traffic, as the file's lines are applied in order (for
        // HAProxy's "N active and M backup servers left").
        let mut usable: Vec<(bool, bool)> = b
            .servers
            .iter()
            .map(|s| (!s.disabled && s.weight > 0, s.backup))
            .collect();
        for (si, s) in b.servers.iter_mut().enumerate() {
            let line = lines
                .as_mut()
                .and_then(|l| l.remove(&(b.name.clone(), s.name.clone())));
            if let Some((_, p)) = line {
                if let Err(e) = update(s, &p, backend_checks && s.check, rise, fall) {
                    warnings.push(format!(
                        "server-state application failed for server '{}/{}'{e}",
                        b.name, s.name
                    ));
                }
                if let Some(v) = s.saved {
                    usable[si].0 = v.up && v.admin == SavedAdmin::Ready && s.start_weight() > 0;
                    if !v.up {
                        warnings.push(down_message(&b.name, s, &usable));
                    }
                    // A `disabled` server the operator had enabled.
                    if s.disabled && v.up && v.admin == SavedAdmin::Ready {
                        warnings.push(format!(
                            "Server {}/{} is UP/READY (leaving forced maintenance).",
                            b.name, s.name
                        ));
                    }
                    if v.admin == SavedAdmin::Drain {
                        warnings.push(format!(
                            "Server {}/{} remains in forced drain mode.",
                            b.name, s.name
                        ));
                    }
                }
            }
            if let (LastAddr::Only(line), true) = (s.last_addr, s.no_addr) {
                // A TOML server has no line: its table's path instead.
                let at = match line {
                    0 => format!("backend.{}: ", b.name),
                    n => format!("line {n}: "),
                };
                errors.push(format!(
                    "{at}server '{}': could not resolve address (init-addr methods exhausted, and no server-state file gave one)",
                    s.name
                ));
            }
        }
        // A local file's lines for servers the backend does not have.
        if let Some(left) = own {
            let mut left: Vec<_> = left.into_iter().collect();
            left.sort_by_key(|(_, (n, _))| *n);
            for ((_, srv), _) in left {
                warnings.push(format!(
                    "Proxy '{}': can't find server '{srv}' in backend '{}'",
                    b.name, b.name
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(warnings)
    } else {
        Err(errors)
    }
}

/// HAProxy's words for a server the file puts DOWN, with the servers left so far.
fn down_message(backend: &str, s: &super::Server, usable: &[(bool, bool)]) -> String {
    let active = usable.iter().filter(|(u, b)| *u && !*b).count();
    let backup = usable.iter().filter(|(u, b)| *u && *b).count();
    let kind = if s.backup { "Backup Server" } else { "Server" };
    let on_backup = if active == 0 && backup > 0 {
        " Running on backup."
    } else {
        ""
    };
    format!(
        "{kind} {backend}/{} is DOWN, changed from server-state after a reload. {active} active and {backup} backup servers left.{on_backup} 0 sessions active, 0 requeued, 0 remaining in queue.",
        s.name
    )
}

/// Reads one file: `None` if it cannot be used (missing, empty: a notice; no version,
/// a corrupted line: a warning, and nothing of it is applied, as HAProxy). `px`: a
/// local file's backend (name, id), that lines must name.
fn read(
    file: &Path,
    px: Option<(&str, u32)>,
    warnings: &mut Vec<String>,
    who: &str,
    global: &str,
) -> Option<Lines> {
    let shown = file.display();
    let text = match std::fs::read(file) {
        Ok(t) => String::from_utf8_lossy(&t).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!("notice: {who}Can't open {global}server state file '{shown}': {e}");
            return None;
        }
        Err(e) => {
            warnings.push(format!(
                "{who}Can't open {global}server state file '{shown}': {e}"
            ));
            return None;
        }
    };
    let mut lines = text.split_inclusive('\n');
    match lines.next() {
        None => {
            tracing::info!("notice: {who}Empty {global}server state file '{shown}'.");
            return None;
        }
        Some("1\n") => {}
        Some(_) => {
            warnings.push(format!(
                "{who}Can't get version of the {global}server state file '{shown}'."
            ));
            return None;
        }
    }
    let mut out = Lines::new();
    for (n, line) in lines.enumerate() {
        let n = n + 1;
        let Some(body) = line.strip_suffix('\n') else {
            return corrupted(warnings, who, global, &shown, n);
        };
        let body = body.trim_start_matches([' ', '\t']);
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let p: Vec<String> = body
            .split([' ', '\t'])
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect();
        if !(MIN_FIELDS..=MAX_FIELDS).contains(&p.len()) {
            return corrupted(warnings, who, global, &shown, n);
        }
        let key_be = match px {
            None => p[1].clone(),
            Some((name, id)) => {
                let same_id = atoi(&p[0]) == i64::from(id);
                let same_name = p[1] == name;
                let forced = atoi(&p[15]) & 1 != 0;
                if !same_id && !same_name {
                    continue;
                }
                if !same_id {
                    warnings.push(format!(
                        "{who}backend ID mismatch: from server state file: '{}', from running config '{id}'",
                        p[0]
                    ));
                } else if !same_name {
                    warnings.push(format!(
                        "{who}backend name mismatch: from server state file: '{}', from running config '{name}'",
                        p[1]
                    ));
                    if !forced {
                        continue;
                    }
                }
                name.to_string()
            }
        };
        // A duplicate (a hand-made file): the first one stays.
        out.entry((key_be, p[3].clone())).or_insert((n, p));
    }
    Some(out)
}

fn corrupted(
    warnings: &mut Vec<String>,
    who: &str,
    global: &str,
    shown: &std::path::Display<'_>,
    n: usize,
) -> Option<Lines> {
    warnings.push(format!(
        "{who}corrupted {global}server state file '{shown}' at line {n}."
    ));
    None
}

/// C's `atoi`/`strtol`: the leading number (0 if none); `None` from `strict` when no
/// digit was read.
fn strtol(s: &str) -> Option<i64> {
    let t = s.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let end = digits
        .bytes()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    if end == 0 {
        return None;
    }
    let v: i64 = digits[..end].parse().ok()?;
    Some(if neg { -v } else { v })
}

fn atoi(s: &str) -> i64 {
    strtol(s).unwrap_or(0)
}

/// HAProxy's admin flags: FMAINT, IMAINT, CMAINT, FDRAIN, IDRAIN, RMAINT, FQDN changed.
const FMAINT: i64 = 0x01;
const IMAINT: i64 = 0x02;
const CMAINT: i64 = 0x04;
const FDRAIN: i64 = 0x08;
const IDRAIN: i64 = 0x10;
const RMAINT: i64 = 0x20;
const FQDN_CHANGED: i64 = 0x40;
/// HAProxy's `DNS_MAX_NAME_SIZE`.
const MAX_NAME: usize = 255;

/// HAProxy's `invalid_domainchar`: `[A-Za-z0-9_.-]`.
fn domain_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-')
}

/// Check state flags a line may carry.
const CHK_ST_ALL: i64 = 0x1f;
/// HAProxy 2.6's check statuses (HCHK_STATUS_SIZE).
const CHECK_STATUSES: i64 = 26;

/// Applies one line (fields after the backend and server names) to server `s`, as
/// HAProxy's `srv_state_srv_update`: every field is checked first, and nothing is
/// applied if one is wrong (`Err`: HAProxy's list of what was wrong).
fn update(
    s: &mut super::Server,
    p: &[String],
    checked: bool,
    rise: u32,
    fall: u32,
) -> Result<(), String> {
    let mut msg = String::new();
    let mut num = |i: usize, what: &str, ok: &dyn Fn(i64) -> bool| -> i64 {
        match strtol(&p[i]) {
            Some(v) if ok(v) => v,
            _ => {
                msg.push_str(&format!(", invalid {what} value '{}'", p[i]));
                0
            }
        }
    };
    let op = num(5, "srv_op_state", &|v| (0..=3).contains(&v));
    // `set server fqdn` had changed the name (the name itself is `srv_fqdn`).
    let fqdn_by_cli = strtol(&p[6]).unwrap_or(0) & FQDN_CHANGED != 0;
    // Inherited states are computed again; the FQDN flag is decided below.
    let admin = num(6, "srv_admin_state", &|a| {
        let a = a & !(IDRAIN | IMAINT | RMAINT | FQDN_CHANGED);
        [0, FMAINT, CMAINT, CMAINT | FMAINT, CMAINT | FDRAIN, FDRAIN].contains(&a)
    }) & !(IDRAIN | IMAINT | RMAINT | FQDN_CHANGED);
    let uweight = num(7, "srv_uweight", &|v| (0..=256).contains(&v));
    let iweight = num(8, "srv_iweight", &|v| (0..=256).contains(&v));
    let since = num(9, "srv_last_time_change", &|_| true);
    num(10, "srv_check_status", &|v| {
        (0..CHECK_STATUSES).contains(&v)
    });
    num(11, "srv_check_result", &|v| (0..=4).contains(&v));
    let health = num(12, "srv_check_health", &|_| true);
    num(13, "srv_check_state", &|v| v & !CHK_ST_ALL == 0);
    num(14, "srv_agent_state", &|v| v & !CHK_ST_ALL == 0);
    num(15, "bk_f_forced_id", &|v| v == 0 || v == 1);
    num(16, "srv_f_forced_id", &|v| v == 0 || v == 1);
    // `-`: none; a bad one is reported, and the name alone is not applied.
    let fqdn = Some(p[17].as_str()).filter(|f| !f.starts_with('-'));
    let fqdn = match fqdn {
        Some(f) if f.len() > MAX_NAME || !f.bytes().all(domain_char) => {
            msg.push_str(&format!(", invalid srv_fqdn value '{f}'"));
            None
        }
        f => f,
    };
    let port = match strtol(&p[18]).unwrap_or(0) {
        v @ 0..=65535 => Some(v as u16),
        _ => {
            msg.push_str(&format!(", invalid srv_port value '{}'", p[18]));
            None
        }
    };
    if !msg.is_empty() {
        return Err(msg);
    }
    // The operational state: HAProxy's stopped, starting, running, stopping.
    let top = rise + fall - 1;
    let (up, health) = match op {
        0 => (false, 0),
        1 if rise == 1 => (true, top),
        1 => {
            let h = health.clamp(0, i64::from(u32::MAX)) as u32;
            (false, if h < 1 || h >= rise { rise - 1 } else { h })
        }
        3 if fall == 1 => (false, 0),
        // ringlb has no STOPPING without `disable-on-404`: up, counting down from it.
        3 => {
            let h = health.clamp(0, i64::from(u32::MAX)) as u32;
            (
                true,
                if h < rise || h > rise + fall - 2 {
                    rise
                } else {
                    h
                },
            )
        }
        _ => (true, top),
    };
    // The operator's state: a changed `disabled` in the config wins; else the file's.
    let maint = if (admin & CMAINT != 0) != s.disabled {
        s.disabled
    } else {
        admin & FMAINT != 0
    };
    // A drain stays unless it came from a zero weight the config no longer has.
    let drain = !maint && admin & FDRAIN != 0 && (iweight > 0 || s.weight == 0);
    // A server without checks goes down only by the file; out of maintenance, it
    // is up (HAProxy: leaving maintenance brings a server without checks up).
    let (up, health) = if !checked && maint {
        (true, top)
    } else {
        (up, health)
    };
    s.saved = Some(Saved {
        admin: if maint {
            SavedAdmin::Maint
        } else if drain {
            SavedAdmin::Drain
        } else {
            SavedAdmin::Ready
        },
        up,
        health,
        weight: (iweight == i64::from(s.weight)).then_some(uweight as u32),
        since: since.max(0) as u64,
        fqdn_set: false,
    });
    // The name, as HAProxy's `srv_state_srv_update`: only for a server the config
    // names (not an IP, not an SRV record), only when `set server fqdn` had changed
    // it; the same name as the config's clears the flag (the config caught up).
    // ringlb follows names with `resolvers` only, and a template slot follows its
    // template's.
    if let (Some(f), Some(d)) = (fqdn, s.dns.as_mut()) {
        if !d.srv() && d.template.is_none() && d.fqdn != f && fqdn_by_cli {
            d.fqdn = f.to_string();
            if let Some(v) = &mut s.saved {
                v.fqdn_set = true;
            }
        }
    }
    // The address, for `init-addr last`.
    if s.last_addr != LastAddr::Never {
        if let Ok(ip) = p[4].parse::<IpAddr>() {
            s.addr.set_ip(ip);
            s.no_addr = false;
        }
    }
    // The port, as HAProxy takes it (not for servers that follow the client's port,
    // nor SRV records, whose answers give it).
    if let Some(port) = port {
        if s.port_offset.is_none() && !s.dns.as_ref().is_some_and(|d| d.srv()) {
            s.addr.set_port(port);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_haproxy() {
        assert_eq!(path(Some("/var/lib"), "x"), PathBuf::from("/var/lib/x"));
        assert_eq!(path(Some("/var/lib/"), "x"), PathBuf::from("/var/lib/x"));
        assert_eq!(path(Some("/var/lib"), "/abs"), PathBuf::from("/abs"));
        assert_eq!(path(None, "rel"), PathBuf::from("rel"));
    }

    #[test]
    fn strtol_reads_the_leading_number() {
        assert_eq!(strtol("12"), Some(12));
        assert_eq!(strtol("12x"), Some(12));
        assert_eq!(strtol("-"), None);
        assert_eq!(strtol("x"), None);
        assert_eq!(strtol("-3"), Some(-3));
    }
}
