//! haproxy.cfg `bind` lines: addresses, TLS options, `accept-proxy`, socket options.

use super::*;

impl Mapper<'_> {
    pub(super) fn bind(&mut self, l: &Line, p: &mut Proxy) {
        use super::ssl;
        p.has_bind_line = true;
        let a = l.args();
        let Some(addrs) = a.first() else {
            return self.err(l.line, "'bind' expects an address");
        };
        let Some(addrs) = self.address(l.line, "'bind'", addrs) else {
            return;
        };
        let addrs = &addrs;
        let mut tls = ssl::BindSsl {
            line: l.line,
            ..Default::default()
        };
        let mut accept_proxy = false;
        let mut h2 = false;
        let mut sock = crate::config::ListenOpts::default();
        let mut i = 1;
        while i < a.len() {
            if let Some(n) = self.bind_ssl_option(l, &a[i..], &mut tls) {
                i += n;
                continue;
            }
            let opt = &a[i];
            let value = a.get(i + 1);
            i += 1;
            match opt.as_str() {
                "accept-proxy" => {
                    accept_proxy = true;
                }
                // The multiplexer: HTTP/2 with prior knowledge. HAProxy's other names
                // (`h1`, `fcgi`, `quic`) are not served.
                "proto" => match value.map(|v| v.as_str()) {
                    Some("h2") => {
                        h2 = true;
                        i += 1;
                    }
                    Some(other) => {
                        return self.err(
                            l.line,
                            format!("bind 'proto {other}': only 'proto h2' is supported"),
                        )
                    }
                    None => return self.err(l.line, "bind 'proto' expects a protocol name"),
                },
                "maxconn" => match value.and_then(|n| n.parse::<u32>().ok()) {
                    // Per bind in HAProxy; ringlb applies the smallest to the frontend.
                    Some(n) if n > 0 => {
                        p.maxconn = Some(p.maxconn.map_or(n, |m| m.min(n)));
                        i += 1;
                    }
                    _ => return self.err(l.line, "bind 'maxconn' expects a positive integer"),
                },
                "mss" => match value.and_then(|n| n.parse::<i64>().ok()) {
                    // HAProxy takes a negative value as "at most"; the kernel clamps.
                    Some(n) if n != 0 && n.unsigned_abs() <= 65535 => {
                        sock.mss = Some(n.unsigned_abs() as u32);
                        i += 1;
                    }
                    _ => return self.err(l.line, "bind 'mss' expects a segment size"),
                },
                "name" | "id" | "process" | "thread" | "backlog" | "nice" | "mode" | "user"
                | "group" | "uid" | "gid" | "interface" | "tcp-ut" => {
                    if !matches!(opt.as_str(), "name" | "id") {
                        self.warn(l.line, format!("bind option '{opt}' ignored"));
                    }
                    i += 1;
                }
                "defer-accept" => sock.defer_accept = true,
                "tfo" => sock.tfo = true,
                "transparent" => sock.transparent = true,
                "v4v6" => sock.v4v6 = true,
                // ringlb's IPv6 listeners are IPv6-only unless `v4v6`.
                "v6only" => sock.v4v6 = false,
                "reuseport" | "no-reuseport" => {
                    self.warn(l.line, format!("bind option '{opt}' ignored: every shard has its own SO_REUSEPORT listener"))
                }
                other => return self.err(l.line, format!("unknown bind option '{other}'")),
            }
        }
        let opts = p.bind_opts.len();
        p.bind_opts.push((tls, accept_proxy, h2));
        p.bind_sock.push(sock);
        for part in addrs.split(',') {
            if part.contains('@') || part.starts_with('/') {
                self.err(
                    l.line,
                    format!("bind '{part}': only IPv4/IPv6 addresses are supported"),
                );
                continue;
            }
            let (host, ports) = match part.rsplit_once(':') {
                Some(x) => x,
                None => {
                    self.err(l.line, format!("bind '{part}': missing port"));
                    continue;
                }
            };
            let host = match host {
                "" | "*" | "0.0.0.0" => "0.0.0.0".to_string(),
                "::" | "[::]" => "[::]".to_string(),
                h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
                h => h.to_string(),
            };
            let Some(ports) = range_list(ports).filter(|p| p.len() <= 1024) else {
                self.err(l.line, format!("bind '{part}': invalid port"));
                continue;
            };
            for port in ports {
                match parse_bind(&format!("{host}:{port}")) {
                    Ok(a) => p.binds.push((a, opts)),
                    Err(e) => self.err(l.line, e),
                }
            }
        }
    }
}
