//! haproxy.cfg `global` section: threads and pinning, the stats socket, logs, pid file.

use super::*;

impl Mapper<'_> {
    /// `log TARGET [len N] [format F] FACILITY [LEVEL [MINLEVEL]]` in `global`.
    pub(super) fn global_log(&mut self, l: &Line, log: &mut Option<LogTarget>) {
        let Some(target) = self.log_target(l) else {
            return;
        };
        match log {
            Some(first) if *first != target => self.warn(
                l.line,
                "several global log targets: ringlb sends to the first one only",
            ),
            Some(_) => {}
            None => *log = Some(target),
        }
    }

    /// `log TARGET ...` in a proxy (not `log global`).
    pub(super) fn proxy_log(&mut self, l: &Line) {
        if let Some(t) = self.log_target(l) {
            self.proxy_logs.push((l.line, t));
        }
    }

    /// The process's one log target: the global one, else the first a proxy names.
    /// Proxies naming another target are warned that their lines go to this one.
    pub(super) fn one_log_target(&mut self, global: Option<LogTarget>) -> Option<LogTarget> {
        let proxy_logs = std::mem::take(&mut self.proxy_logs);
        let mut chosen = global.or_else(|| proxy_logs.first().map(|(_, t)| t.clone()));
        if let Some(t) = &mut chosen {
            if let Some(tag) = &self.log_tag {
                t.tag = tag.clone();
            }
            t.hostname = self.log_hostname.clone();
        }
        for (line, t) in &proxy_logs {
            if Some(t) != chosen.as_ref() {
                self.warn(
                    *line,
                    "ringlb has one log target for the whole process: this proxy's lines go to the first one configured",
                );
            }
        }
        chosen
    }

    /// A `log` line's target (global or in a proxy). A path (`/dev/log`) or `unix@PATH`
    /// is a local unix datagram socket; an address is UDP syslog (port 514 by default).
    pub(super) fn log_target(&mut self, l: &Line) -> Option<LogTarget> {
        let a = l.args();
        let Some(target) = a.first() else {
            self.err(l.line, "'log' expects a target");
            return None;
        };
        let sink = match target.as_str() {
            "stdout" => LogSink::Stdout,
            "stderr" => LogSink::Stderr,
            t if t.starts_with('/') => LogSink::Unix(t.into()),
            t if t.starts_with("unix@") && t.len() > 5 => LogSink::Unix(t[5..].into()),
            t => {
                let t = t
                    .strip_prefix("udp@")
                    .or_else(|| t.strip_prefix("udp4@"))
                    .or_else(|| t.strip_prefix("ipv4@"))
                    .unwrap_or(t);
                let with_port = if t.contains(':') {
                    t.to_string()
                } else {
                    format!("{t}:514")
                };
                // A host name is resolved once, at load, as HAProxy does.
                match resolve_addr(&with_port) {
                    Ok(addr) => LogSink::Udp(addr),
                    Err(e) => {
                        self.err(
                            l.line,
                            format!("log target '{target}': {e} (stdout, stderr, a unix socket path or HOST[:PORT] for UDP syslog)"),
                        );
                        return None;
                    }
                }
            }
        };
        let mut raw = !matches!(sink, LogSink::Udp(_) | LogSink::Unix(_));
        let mut facility = None;
        let mut level = None;
        let mut min_level = None;
        let mut max_len = crate::config::log::DEFAULT_LOG_LEN;
        let mut i = 1;
        while i < a.len() {
            match a[i].as_str() {
                // HAProxy's bounds: 80 to 65535 bytes.
                "len" => match a.get(i + 1).and_then(|n| n.parse::<usize>().ok()) {
                    Some(n) if (80..=65_535).contains(&n) => {
                        max_len = n;
                        i += 1;
                    }
                    _ => {
                        self.err(l.line, "'log': 'len' expects a length between 80 and 65535");
                        return None;
                    }
                },
                "sample" => {
                    self.err(
                        l.line,
                        "'log ... sample' (sending a share of the lines) is not supported by ringlb",
                    );
                    return None;
                }
                "format" => {
                    match a.get(i + 1).map(String::as_str) {
                        Some("raw") => raw = true,
                        Some("rfc3164") => raw = false,
                        Some(f) => {
                            self.err(
                                l.line,
                                format!("'log ... format {f}' is not supported by ringlb (rfc3164 and raw are)"),
                            );
                            return None;
                        }
                        None => {
                            self.err(l.line, "'log': 'format' expects a format name");
                            return None;
                        }
                    }
                    i += 1;
                }
                f if facility.is_none() => match syslog_facility(f) {
                    Some(n) => facility = Some(n),
                    None => {
                        self.err(l.line, format!("unknown log facility '{f}'"));
                        return None;
                    }
                },
                v if level.is_none() => match crate::config::syslog_level(v) {
                    Some(n) => level = Some(n),
                    None => {
                        self.err(l.line, format!("unknown log level '{v}'"));
                        return None;
                    }
                },
                v if min_level.is_none() => match crate::config::syslog_level(v) {
                    Some(n) => min_level = Some(n),
                    None => {
                        self.err(l.line, format!("unknown log level '{v}'"));
                        return None;
                    }
                },
                other => {
                    self.err(l.line, format!("'log': unexpected argument '{other}'"));
                    return None;
                }
            }
            i += 1;
        }
        let Some(facility) = facility else {
            self.err(l.line, "'log' expects a facility (local0, daemon, ...)");
            return None;
        };
        let level = level.unwrap_or(7);
        Some(LogTarget {
            sink,
            facility,
            raw,
            level,
            min_level: min_level.unwrap_or(0),
            tag: "ringlb".into(),
            hostname: None,
            max_len,
        })
    }

    pub(super) fn global(
        &mut self,
        l: &Line,
        runtime: &mut Runtime,
        admin: &mut Admin,
        cpu_map: &mut Vec<(usize, usize)>,
        log: &mut Option<LogTarget>,
    ) {
        if self.global_ssl(l) || self.process_keyword(l, &mut runtime.process) {
            return;
        }
        let a = l.args();
        match l.keyword() {
            "nbthread" => match a.first().and_then(|n| n.parse::<usize>().ok()) {
                Some(n) if (1..=1024).contains(&n) => runtime.shards = n,
                _ => self.err(l.line, "'nbthread' expects a number between 1 and 1024"),
            },
            "cpu-map" => self.cpu_map(l, cpu_map),
            "stats" => match a.first().map(String::as_str) {
                Some("socket") => self.stats_socket(l, admin),
                Some("timeout") | Some("maxconn") | Some("bind-process") => {
                    self.warn(l.line, format!("'stats {}' ignored", a[0]))
                }
                _ => self.err(l.line, "unknown 'stats' keyword in 'global' section"),
            },
            "pidfile" => match a.first() {
                Some(p) => runtime.pidfile = Some(p.into()),
                None => self.err(l.line, "'pidfile' expects a file name"),
            },
            "maxconn" => match a.first().and_then(|n| n.parse::<u32>().ok()) {
                Some(0) => runtime.maxconn = None,
                Some(n) => runtime.maxconn = Some(n),
                None => self.err(l.line, "'maxconn' expects an integer"),
            },
            "maxsslrate" => match a.first().and_then(|n| n.parse::<u32>().ok()) {
                Some(0) => runtime.maxsslrate = None,
                Some(n) => runtime.maxsslrate = Some(n),
                None => self.err(l.line, "'maxsslrate' expects an integer"),
            },
            "log" => self.global_log(l, log),
            "log-tag" => match a.first() {
                Some(t) => self.log_tag = Some(t.clone()),
                None => self.err(l.line, "'log-tag' expects a tag"),
            },
            // Without a name, the system's host name, as HAProxy.
            "log-send-hostname" => {
                self.log_hostname = Some(a.first().cloned().unwrap_or_else(system_hostname))
            }
            "node"
            | "description"
            | "master-worker"
            | "spread-checks"
            | "set-dumpable"
            | "strict-limits"
            | "quiet"
            | "expose-experimental-directives" => {
                self.warn(l.line, format!("'{}' ignored", l.keyword()))
            }
            "server-state-file" | "server-state-base" => match a {
                [v] => {
                    let slot = if l.keyword() == "server-state-file" {
                        &mut self.state_file
                    } else {
                        &mut self.state_base
                    };
                    if slot.is_some() {
                        self.warn(
                            l.line,
                            format!("'{}' already specified. Continuing.", l.keyword()),
                        );
                    } else {
                        *slot = Some(v.clone());
                    }
                }
                [] => self.err(l.line, format!("'{}' expects one argument: a file path.", l.keyword())),
                _ => self.err(l.line, format!("'{}' cannot handle unexpected argument '{}'", l.keyword(), a[1])),
            },
            "h1-case-adjust" => match a {
                [from, to] => self.case_pair(l.line, from, to),
                [_, _, extra, ..] => self.err(
                    l.line,
                    format!("'h1-case-adjust' cannot handle unexpected argument '{extra}'"),
                ),
                _ => self.err(l.line, "'h1-case-adjust' expects <from> and <to> as argument."),
            },
            "h1-case-adjust-file" => match a {
                [file] => match std::fs::read_to_string(file) {
                    Ok(text) => {
                        for (n, line) in text.lines().enumerate() {
                            let words: Vec<&str> = line.split_whitespace().collect();
                            match words.as_slice() {
                                [] => {}
                                [w, ..] if w.starts_with('#') => {}
                                [from, to] => self.case_pair(l.line, from, to),
                                _ => self.err(
                                    l.line,
                                    format!("'h1-case-adjust-file' {file}:{}: expects <from> <to>", n + 1),
                                ),
                            }
                        }
                    }
                    Err(e) => self.err(l.line, format!("'h1-case-adjust-file': cannot read '{file}': {e}")),
                },
                _ => self.err(l.line, "'h1-case-adjust-file' expects a file name"),
            },
            // Read with the `peers` sections (which peer is this node).
            "localpeer" => {}
            // No splicing at all (HAProxy's switch for kernels where it misbehaves).
            "nosplice" if a.is_empty() => runtime.splice = false,
            "nosplice" => self.err(
                l.line,
                format!("'nosplice' cannot handle unexpected argument '{}'.", a[0]),
            ),
            "external-check" => self.external_check = Some(l.line),
            "zero-warning" => self.zero_warning = Some(l.line),
            // ringlb spawns check programs whatever this says (HAProxy refuses to
            // fork without it).
            "insecure-fork-wanted" => self.insecure_fork = true,
            "hard-stop-after" => match a.first().map(|t| crate::config::parse_duration(t)) {
                Some(Ok(d)) if a.len() == 1 => self.hard_stop_after = Some(d),
                _ => self.err(l.line, "'hard-stop-after' expects a time (e.g. 30s)"),
            },
            "tune.bufsize" => match a.first().and_then(|n| n.parse::<usize>().ok()) {
                Some(n) if (256..=1 << 20).contains(&n) => self.limits.max_header_bytes = n,
                _ => self.err(
                    l.line,
                    "'tune.bufsize' expects a size between 256 and 1048576",
                ),
            },
            "tune.http.maxhdr" => match a.first().and_then(|n| n.parse::<usize>().ok()) {
                Some(n) if (1..=crate::config::MAX_HEADERS_CAP).contains(&n) => {
                    self.limits.max_headers = n
                }
                _ => self.err(
                    l.line,
                    format!(
                        "'tune.http.maxhdr' expects a number between 1 and {}",
                        crate::config::MAX_HEADERS_CAP
                    ),
                ),
            },
            "tune.h2.max-concurrent-streams" => {
                match a.first().and_then(|n| n.parse::<u32>().ok()) {
                    Some(n) if n > 0 && a.len() == 1 => self.limits.h2_max_concurrent_streams = n,
                    _ => self.err(
                        l.line,
                        "'tune.h2.max-concurrent-streams' expects a positive number",
                    ),
                }
            }
            "tune.h2.header-table-size" => match a.first().and_then(|n| n.parse::<u32>().ok()) {
                Some(n) if (4096..=65_536).contains(&n) && a.len() == 1 => {
                    self.limits.h2_header_table_size = n
                }
                _ => self.err(
                    l.line,
                    "'tune.h2.header-table-size' expects a numeric value between 4096 and 65536.",
                ),
            },
            "tune.h2.initial-window-size" => match a.first().and_then(|n| n.parse::<u32>().ok()) {
                Some(n) if n <= i32::MAX as u32 && a.len() == 1 => {
                    self.limits.h2_initial_window_size = n
                }
                _ => self.err(
                    l.line,
                    "'tune.h2.initial-window-size' expects a positive numeric value.",
                ),
            },
            "tune.h2.max-frame-size" => match a.first().and_then(|n| n.parse::<u32>().ok()) {
                Some(n) if (16_384..=16_777_215).contains(&n) && a.len() == 1 => {
                    self.limits.h2_max_frame_size = n
                }
                _ => self.err(
                    l.line,
                    "'tune.h2.max-frame-size' expects a numeric value between 16384 and 16777215.",
                ),
            },
            // N bytes of the request line kept (HAProxy's default keeps 1023).
            "tune.http.logurilen" => match a.first().and_then(|n| n.parse::<usize>().ok()) {
                Some(n) if a.len() == 1 => runtime.log_uri_len = n,
                _ => self.err(l.line, "'tune.http.logurilen' expects a number"),
            },
            "tune.comp.maxlevel" => match a.first().and_then(|n| n.parse::<u32>().ok()) {
                Some(n) if (1..=9).contains(&n) && a.len() == 1 => runtime.comp_level = n,
                _ => self.err(
                    l.line,
                    "'tune.comp.maxlevel' expects a numeric value between 1 and 9",
                ),
            },
            // HAProxy lowers the level or stops compressing new responses past these
            // limits; ringlb would compress on: refused rather than not honoured.
            "maxcomprate" | "maxcompcpuusage" => self.err(
                l.line,
                format!(
                    "'{}' is not supported by ringlb yet (compression is not limited by rate or CPU)",
                    l.keyword()
                ),
            ),
            k if k.starts_with("tune.") => self.other_tune(l),
            "issuers-chain-path" => self.err(
                l.line,
                "'issuers-chain-path' is not supported by ringlb: put the issuers' chain in the certificate's PEM file",
            ),
            "nbproc" => self.err(
                l.line,
                "'nbproc' was removed in HAProxy 2.5: use 'nbthread'",
            ),
            k => self.err(l.line, format!("unknown keyword '{k}' in 'global' section")),
        }
    }

    /// One `h1-case-adjust FROM TO` pair: the same name but for case (HAProxy's rule).
    fn case_pair(&mut self, line: usize, from: &str, to: &str) {
        if !from.eq_ignore_ascii_case(to) {
            return self.err(line, "<from> and <to> must not differ execpt the case");
        }
        let from = from.to_ascii_lowercase().into_bytes().into_boxed_slice();
        self.h1_case.retain(|(f, _)| *f != from);
        self.h1_case.push((from, to.as_bytes().into()));
    }

    /// `cpu-map [auto:]1[/THREADS] CPUS` (process 1 only, as HAProxy 2.5+ does).
    /// `stats socket PATH|unix@PATH|[ipv4@|ipv6@]ADDR:PORT|*:PORT [options]`: the
    /// runtime API on a unix socket, or on TCP. ringlb's API has no `user` / `operator`
    /// levels (every command is an admin one), so a TCP socket, reachable from the
    /// network, must say `level admin`; a unix socket is guarded by its file mode.
    fn stats_socket(&mut self, l: &Line, admin: &mut Admin) {
        let a = l.args();
        let Some(target) = a.get(1) else {
            return self.err(l.line, "'stats socket' expects a path or an address");
        };
        let mut level = "operator";
        let mut rest = a[2..].iter();
        while let Some(opt) = rest.next() {
            match opt.as_str() {
                "level" => match rest.next().map(String::as_str) {
                    Some(v @ ("user" | "operator" | "admin")) => level = v,
                    _ => {
                        return self.err(
                            l.line,
                            "'level' only supports 'user', 'operator', and 'admin'",
                        )
                    }
                },
                "mode" | "user" | "group" | "uid" | "gid" | "expose-fd" | "maxconn" | "name"
                | "severity-output" => {
                    rest.next();
                }
                other => self.warn(l.line, format!("stats socket option '{other}' ignored")),
            }
        }
        let (family, addr) = match target.split_once('@') {
            Some((f, rest)) => (Some(f), rest),
            None => (None, target.as_str()),
        };
        let tcp = match family {
            Some("unix") => false,
            Some("ipv4" | "ipv6") => true,
            Some(other) => {
                return self.err(
                    l.line,
                    format!("stats socket '{target}': '{other}@' addresses are not supported (unix paths, ipv4@, ipv6@ or ADDR:PORT)"),
                )
            }
            None => addr.contains(':'),
        };
        if !tcp {
            if admin.stats_socket.is_some() {
                admin.stats_unix_more.push(addr.into());
            } else {
                admin.stats_socket = Some(addr.into());
            }
            return;
        }
        // `ipv6@:::9999`: an IPv6 address without brackets ends at the last colon.
        let bare_v6 = addr
            .rsplit_once(':')
            .filter(|(ip, _)| ip.contains(':') && !ip.starts_with('['))
            .and_then(|(ip, port)| Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?)));
        let sa = match bare_v6.map(Ok).unwrap_or_else(|| parse_bind(addr)) {
            Ok(sa) => sa,
            Err(e) => return self.err(l.line, format!("stats socket: {e}")),
        };
        let sa = match family {
            Some("ipv6") if sa.is_ipv4() && sa.ip().is_unspecified() => {
                SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, sa.port()))
            }
            Some("ipv4") if sa.is_ipv6() => {
                return self.err(
                    l.line,
                    format!("stats socket '{target}': not an IPv4 address"),
                )
            }
            _ => sa,
        };
        if level != "admin" {
            return self.err(
                l.line,
                format!("stats socket '{target}': level '{level}' is not supported on a TCP socket (ringlb's runtime API has no levels: every command is an admin command; say 'level admin' if that is meant)"),
            );
        }
        admin.stats_tcp.push(sa);
    }

    pub(super) fn cpu_map(&mut self, l: &Line, out: &mut Vec<(usize, usize)>) {
        let a = l.args();
        let (Some(set), Some(cpus)) = (a.first(), a.get(1)) else {
            return self.err(l.line, "'cpu-map' expects <process[/thread]> <cpu-set>");
        };
        let (auto, set) = match set.strip_prefix("auto:") {
            Some(s) => (true, s),
            None => (false, set.as_str()),
        };
        let threads = match set.split_once('/') {
            Some((p, t)) if p == "1" || p == "all" || p == "odd" => t,
            Some(_) => return self.err(l.line, "'cpu-map': only process 1 exists"),
            None if auto => "1",
            None => set,
        };
        let (Some(threads), Some(cpus)) = (range_list(threads), range_list(cpus)) else {
            return self.err(l.line, format!("'cpu-map': invalid set in '{set} {cpus}'"));
        };
        if auto || threads.len() == cpus.len() {
            for (t, c) in threads.iter().zip(cpus.iter()) {
                out.push((t.saturating_sub(1), *c));
            }
        } else if cpus.len() == 1 {
            for t in threads {
                out.push((t.saturating_sub(1), cpus[0]));
            }
        } else {
            self.err(
                l.line,
                "'cpu-map': a thread set needs one cpu each, or use 'auto:'",
            );
        }
    }
}

/// The system's host name (`gethostname`), for `log-send-hostname` without a name.
pub(super) fn system_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into our buffer.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
