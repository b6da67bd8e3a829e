//! `add server B/S ADDR [keywords]` (runtime API): the server a `server` line of that
//! backend would make, with HAProxy 2.6's rules for a dynamic server: only the
//! keywords it accepts there, no `default-server` settings, weight 1, in maintenance.

use super::*;

/// Keywords of a `server` line that HAProxy 2.6 refuses on `add server` (its keyword
/// tables' `dynamic_ok` = 0), among those ringlb reads.
const NOT_DYNAMIC: &[&str] = &[
    "cookie",
    "init-addr",
    "log-proto",
    "max-reuse",
    "namespace",
    "no-agent-check",
    "no-check",
    "no-check-send-proxy",
    "no-check-ssl",
    "no-send-proxy-v2-ssl",
    "no-send-proxy-v2-ssl-cn",
    "no-ssl",
    "non-stick",
    "redir",
    "resolve-net",
    "resolve-opts",
    "resolve-prefer",
    "resolvers",
    "socks4",
    "ssl-reuse",
    "stick",
];

/// Server `name` of backend `b` at `addr` with `options`, or the operator's error line
/// (HAProxy's words where ringlb knows them), with its `maxqueue` (ringlb's queue is
/// the backend's: the largest of its servers' applies). Its id is `id N`, else the
/// lowest one the backend does not use (HAProxy's `get_next_id`).
pub fn dynamic_server(
    b: &Backend,
    name: &str,
    addr: &str,
    options: &[&str],
) -> Result<(Server, Option<usize>), String> {
    if let Some(kw) = options.iter().find(|w| NOT_DYNAMIC.contains(w)) {
        return Err(format!(
            "'{kw}' option is not accepted for dynamic server\n"
        ));
    }
    if let Some(i) = options.iter().position(|w| *w == "weight") {
        // HAProxy's own wording (and its two dots).
        if let Some(w) = options.get(i + 1).and_then(|v| v.parse::<i64>().ok()) {
            if !(0..=256).contains(&w) {
                return Err(format!(
                    "weight of server {name} is not within 0 and 256 ({w})..\n"
                ));
            }
        }
    }
    // A name needs resolving, which HAProxy 2.6 never does for a dynamic server
    // (`init-addr none`); ringlb refuses it rather than keep a server without address.
    let host = addr
        .rsplit_once(':')
        .filter(|_| addr.matches(':').count() == 1)
        .map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if !host.is_empty() && host != "*" && host.parse::<IpAddr>().is_err() {
        return Err(format!(
            "'{addr}': ringlb takes an IP address for a dynamic server (HAProxy 2.6 would not resolve '{host}' either)\n"
        ));
    }
    let env = |_: &str| None;
    let mut m = Mapper::new(&env, Names::default());
    let mut p = Proxy::new(&b.name, 0, SectionKind::Backend, Settings::default());
    let words: Vec<String> = std::iter::once("server")
        .chain([name, addr])
        .chain(options.iter().copied())
        .map(String::from)
        .collect();
    let line = Line { line: 0, words };
    m.add_server(
        &line,
        &mut p,
        &name.to_string(),
        addr,
        &line.words[3..],
        None,
    );
    if let Some(e) = m.errors.first() {
        return Err(format!("{}\n", e.trim_start_matches("line 0: ")));
    }
    let Some((_, server, params)) = p.servers.pop() else {
        return Err("'server' expects <name> and <addr>[:<port>] as arguments.\n".into());
    };
    let id = match params.id {
        Some(id) if b.servers.iter().any(|s| s.id == id) => {
            let other = b
                .servers
                .iter()
                .find(|s| s.id == id)
                .map_or("", |s| &s.name);
            // HAProxy also names the file and line of the other server.
            return Err(format!(
                "'id' : custom id {id} already used ('server {other}').\n"
            ));
        }
        Some(id) => id,
        None => (1..)
            .find(|i| b.servers.iter().all(|s| s.id != *i))
            .unwrap_or(u32::MAX),
    };
    let server = Server {
        id,
        dynamic: true,
        // HAProxy 2.6 starts it in maintenance whatever `enabled` says.
        disabled: true,
        ..server
    };
    Ok((server, params.maxqueue))
}

/// The checks backend `b` runs on a dynamic server with `check`: the backend's, or,
/// when none of its servers checked at load, a TCP connect with HAProxy's defaults
/// (the backend's `option httpchk` is not known then).
pub fn dynamic_checks(b: &Backend) -> crate::config::HealthCheck {
    b.health.clone().unwrap_or(crate::config::HealthCheck {
        kind: crate::config::CheckKind::Tcp,
        interval: Duration::from_secs(2),
        fast_interval: Duration::from_secs(2),
        down_interval: Duration::from_secs(2),
        timeout: Duration::from_secs(2),
        rise: 2,
        fall: 3,
        port: None,
        addr: None,
    })
}
