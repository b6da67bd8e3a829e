//! haproxy.cfg ACLs, `use_backend` conditions, `http-request` rules and the stats page.

use super::*;

impl Mapper {
    pub(super) fn acl(&mut self, l: &Line, p: &mut Proxy) {
        let a = l.args();
        let Some(name) = a.first() else {
            return self.err(l.line, "'acl' expects a name and a criterion");
        };
        if name
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || "_-.:".contains(c)))
        {
            return self.err(l.line, format!("invalid ACL name '{name}'"));
        }
        if self.rate_acl(l.line, name, &a[1..], p) {
            return;
        }
        if let Some(test) = self.acl_test(l.line, &a[1..]) {
            let entry = p.acls.entry(name.clone()).or_insert_with(|| {
                Arc::new(Acl {
                    name: name.clone(),
                    tests: Vec::new(),
                })
            });
            // Several lines with one name are ORed.
            Arc::make_mut(entry).tests.push(test);
        }
    }

    /// `CRITERION [FLAGS] PATTERN...` → one test.
    pub(super) fn acl_test(&mut self, line: usize, w: &[String]) -> Option<AclTest> {
        let Some(criterion) = w.first() else {
            self.err(line, "missing ACL criterion");
            return None;
        };
        let (base, arg) = match criterion.split_once('(') {
            Some((b, rest)) => match rest.strip_suffix(')') {
                Some(arg) => (b, Some(arg)),
                None => {
                    self.err(line, format!("invalid criterion '{criterion}'"));
                    return None;
                }
            },
            None => (criterion.as_str(), None),
        };
        let base = base.strip_prefix("req.").unwrap_or(base);
        let header = |arg: Option<&str>| arg.map(|h| h.to_ascii_lowercase());
        let (fetch, mut method) = match base {
            "path" => (Fetch::Path, MatchMethod::Str),
            "path_beg" => (Fetch::Path, MatchMethod::Beg),
            "path_end" => (Fetch::Path, MatchMethod::End),
            "path_sub" => (Fetch::Path, MatchMethod::Sub),
            "path_reg" => (Fetch::Path, MatchMethod::Reg),
            "path_dom" => (Fetch::Path, MatchMethod::Dom),
            "url" => (Fetch::Url, MatchMethod::Str),
            "url_beg" => (Fetch::Url, MatchMethod::Beg),
            "url_end" => (Fetch::Url, MatchMethod::End),
            "url_sub" => (Fetch::Url, MatchMethod::Sub),
            "url_reg" => (Fetch::Url, MatchMethod::Reg),
            "method" => (Fetch::Method, MatchMethod::Str),
            "src" => (Fetch::Src, MatchMethod::Ip),
            "hdr" | "hdr_beg" | "hdr_end" | "hdr_sub" | "hdr_reg" | "hdr_dom" => {
                let Some(h) = header(arg) else {
                    self.err(line, format!("'{base}' needs a header name: {base}(name)"));
                    return None;
                };
                let m = match base {
                    "hdr" => MatchMethod::Str,
                    "hdr_beg" => MatchMethod::Beg,
                    "hdr_end" => MatchMethod::End,
                    "hdr_sub" => MatchMethod::Sub,
                    "hdr_reg" => MatchMethod::Reg,
                    _ => MatchMethod::Dom,
                };
                (Fetch::Header(h), m)
            }
            other => {
                self.err(
                    line,
                    format!("ACL criterion '{other}' is not supported yet"),
                );
                return None;
            }
        };
        let mut ignore_case = false;
        let mut i = 1;
        while i < w.len() && w[i].starts_with('-') {
            match w[i].as_str() {
                "-i" => ignore_case = true,
                "-m" => {
                    i += 1;
                    method = match w.get(i).map(String::as_str) {
                        Some("str") => MatchMethod::Str,
                        Some("beg") => MatchMethod::Beg,
                        Some("end") => MatchMethod::End,
                        Some("sub") => MatchMethod::Sub,
                        Some("reg") => MatchMethod::Reg,
                        Some("dom") => MatchMethod::Dom,
                        Some("ip") => MatchMethod::Ip,
                        Some("found") => MatchMethod::Found,
                        other => {
                            self.err(
                                line,
                                format!("'-m {}': unsupported match method", other.unwrap_or("")),
                            );
                            return None;
                        }
                    };
                }
                "--" => {
                    i += 1;
                    break;
                }
                "-f" => {
                    self.err(line, "ACL pattern files ('-f') are not supported yet");
                    return None;
                }
                "-n" | "-u" => {}
                // As HAProxy: a pattern starting with '-' must come after '--'.
                other => {
                    self.err(
                        line,
                        format!("'{other}' is not a valid ACL option. Please use '--' before any pattern beginning with a '-'"),
                    );
                    return None;
                }
            }
            i += 1;
        }
        let patterns: Vec<&str> = w[i..].iter().map(String::as_str).collect();
        if patterns.is_empty() && method != MatchMethod::Found {
            self.err(line, format!("ACL '{criterion}' has no pattern"));
            return None;
        }
        match AclTest::new(fetch, method, ignore_case, &patterns) {
            Ok(t) => Some(t),
            Err(e) => {
                self.err(line, e);
                None
            }
        }
    }

    pub(super) fn use_backend(&mut self, l: &Line, p: &mut Proxy) {
        let a = l.args();
        let Some(name) = a.first() else {
            return self.err(l.line, "'use_backend' expects a backend name");
        };
        if name.contains("%[") {
            return self.err(
                l.line,
                "dynamic backend names ('%[...]') are not supported yet",
            );
        }
        let cond = match a.get(1).map(String::as_str) {
            None => Condition::Always,
            Some(kw @ ("if" | "unless")) => match self.condition(l.line, &a[2..], p) {
                Some(c) if kw == "unless" => Condition::Not(Box::new(c)),
                Some(c) => c,
                None => return,
            },
            Some(other) => {
                return self.err(
                    l.line,
                    format!("'use_backend': expected 'if' or 'unless', got '{other}'"),
                )
            }
        };
        p.rules.push((l.line, cond, name.clone()));
    }

    pub(super) fn stats(&mut self, l: &Line, s: &mut Settings) {
        let a = l.args();
        let arg = a.get(1).cloned();
        match a.first().map(String::as_str) {
            Some("enable") => s.stats.enabled = true,
            Some("disable") => s.stats.enabled = false,
            Some("uri") => match arg {
                Some(u) if u.starts_with('/') => {
                    s.stats.enabled = true;
                    s.stats.uri = Some(u);
                }
                _ => self.err(l.line, "'stats uri' expects a URI prefix starting with '/'"),
            },
            Some("refresh") => match arg.map(|t| parse_time(&t)) {
                Some(Ok(d)) => {
                    s.stats.enabled = true;
                    s.stats.refresh = Some(d.as_secs().max(1));
                }
                _ => self.err(l.line, "'stats refresh' expects a time"),
            },
            Some("auth") => match arg {
                Some(up) if up.contains(':') => {
                    use base64::Engine;
                    s.stats.enabled = true;
                    s.stats.auth.push(format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(up)
                    ));
                }
                _ => self.err(l.line, "'stats auth' expects <user>:<password>"),
            },
            Some("realm") => match arg {
                Some(r) => s.stats.realm = Some(r),
                None => self.err(l.line, "'stats realm' expects a realm"),
            },
            Some("hide-version") | Some("show-legends") | Some("show-node") | Some("show-desc") => {
            }
            Some("http-request") | Some("scope") | Some("bind-process") | Some("maxconn")
            | Some("timeout") => self.warn(l.line, format!("'stats {}' ignored", a[0])),
            Some(other) => self.err(l.line, format!("unknown 'stats' keyword '{other}'")),
            None => self.err(l.line, "'stats' expects a keyword"),
        }
    }

    /// `stats admin if|unless COND`: who may change servers' states from the page.
    pub(super) fn stats_admin(&mut self, l: &Line, p: &mut Proxy) {
        let w = l.args();
        let cond = match w.get(1).map(String::as_str) {
            Some(kw @ ("if" | "unless")) => match self.condition(l.line, &w[2..], p) {
                Some(c) if kw == "unless" => Condition::Not(Box::new(c)),
                Some(c) => c,
                None => return,
            },
            _ => {
                return self.err(
                    l.line,
                    "'stats admin' requires either 'if' or 'unless' followed by a condition",
                )
            }
        };
        p.settings.stats.enabled = true;
        p.settings.stats.admin = Some(cond);
    }

    /// `http-request ACTION ARGS [if|unless COND]` (and `redirect ...`, which is the
    /// same as `http-request redirect ...`).
    pub(super) fn http_request(&mut self, l: &Line, w: &[String], p: &mut Proxy) {
        let Some(action) = w.first() else {
            return self.err(l.line, "'http-request' expects an action");
        };
        // Split off the condition.
        let cut = w
            .iter()
            .position(|x| x == "if" || x == "unless")
            .unwrap_or(w.len());
        let args: Vec<&str> = w[1..cut].iter().map(String::as_str).collect();
        if let Some(sc) = action
            .strip_prefix("track-sc")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n < 3)
        {
            if cut < w.len() {
                return self.err(l.line, "'track-sc' with a condition is not supported");
            }
            return self.track(l.line, sc, &args, p);
        }
        if action == "deny" && cut < w.len() {
            match self.rate_deny(l.line, &w[cut + 1..], p) {
                None => {}
                Some(None) => return,
                Some(Some(_)) if w[cut] == "unless" => {
                    return self.err(
                        l.line,
                        "'unless' with a request-rate condition is not supported",
                    )
                }
                Some(Some((sc, limit))) => {
                    let status = match deny_status(&args) {
                        Ok(s) => s,
                        Err(Some(e)) => return self.err(l.line, e),
                        Err(None) => {
                            return self.err(
                                l.line,
                                "'http-request deny' with a rate: only 'deny_status N'",
                            )
                        }
                    };
                    let body = if status == 429 {
                        "<html><body><h1>429 Too Many Requests</h1>\nYou have sent too many requests in a given amount of time.\n</body></html>\n".to_string()
                    } else {
                        forbidden_body(status)
                    };
                    let bytes = match RequestAction::respond(status, "text/html", &body, "") {
                        RequestAction::Respond { bytes, .. } => bytes,
                        _ => Vec::new(),
                    };
                    p.request_rules.push(RequestRule {
                        cond: Condition::Always,
                        action: RequestAction::RateLimit {
                            limiter: p.stick.rate_rules.len(),
                            status,
                            bytes,
                        },
                    });
                    p.stick.rate_rules.push((l.line, sc, limit));
                    return;
                }
            }
        }
        let cond = if cut < w.len() {
            match self.condition(l.line, &w[cut + 1..], p) {
                Some(c) if w[cut] == "unless" => Condition::Not(Box::new(c)),
                Some(c) => c,
                None => return,
            }
        } else {
            Condition::Always
        };
        if args.iter().any(|a| a.contains("%[") || a.contains("%{")) {
            return self.err(
                l.line,
                "log-format expressions (%[...]) in http-request values are not supported yet",
            );
        }
        let act = match (action.as_str(), args.as_slice()) {
            ("set-header", [name, value]) => {
                RequestAction::SetHeader(name.to_string(), value.to_string())
            }
            ("add-header", [name, value]) => {
                RequestAction::AddHeader(name.to_string(), value.to_string())
            }
            ("del-header", [name]) => RequestAction::DelHeader(name.to_string()),
            ("del-header", [name, "-m", "str"]) => RequestAction::DelHeader(name.to_string()),
            ("deny" | "tarpit", rest) => {
                let status = match deny_status(rest) {
                    Ok(s) => s,
                    Err(Some(e)) => return self.err(l.line, e),
                    Err(None) => {
                        return self.err(
                            l.line,
                            format!(
                                "'http-request deny {}' is not supported yet",
                                rest.join(" ")
                            ),
                        )
                    }
                };
                RequestAction::respond(status, "text/html", &forbidden_body(status), "")
            }
            ("return", rest) => {
                let (mut status, mut ctype, mut body) =
                    (200u16, "text/plain".to_string(), String::new());
                let mut i = 0;
                while i < rest.len() {
                    let v = rest.get(i + 1).copied().unwrap_or("");
                    match rest[i] {
                        "status" => match v.parse::<u16>() {
                            Ok(s) if (200..600).contains(&s) => status = s,
                            _ => return self.err(l.line, format!("invalid return status '{v}'")),
                        },
                        "content-type" => ctype = v.to_string(),
                        "string" => body = v.to_string(),
                        "lf-string" | "file" | "lf-file" | "errorfile" | "errorfiles" | "hdr" => {
                            return self.err(
                                l.line,
                                format!(
                                    "'http-request return ... {}' is not supported yet",
                                    rest[i]
                                ),
                            )
                        }
                        other => {
                            return self.err(
                                l.line,
                                format!("'http-request return': unknown argument '{other}'"),
                            )
                        }
                    }
                    i += 2;
                }
                RequestAction::respond(status, &ctype, &body, "")
            }
            ("redirect", rest) => {
                let (Some(kind), Some(target)) = (rest.first(), rest.get(1)) else {
                    return self.err(
                        l.line,
                        "'redirect' expects location|prefix|scheme and a target",
                    );
                };
                let mut code = 302u16;
                let mut i = 2;
                while i < rest.len() {
                    match rest[i] {
                        "code" => match rest.get(i + 1).and_then(|c| c.parse::<u16>().ok()) {
                            Some(c @ (301 | 302 | 303 | 307 | 308)) => code = c,
                            _ => {
                                return self.err(
                                    l.line,
                                    "'redirect code' expects 301, 302, 303, 307 or 308",
                                )
                            }
                        },
                        "drop-query" | "append-slash" | "set-cookie" | "clear-cookie" => {
                            return self.err(
                                l.line,
                                format!("'redirect ... {}' is not supported yet", rest[i]),
                            )
                        }
                        other => {
                            return self
                                .err(l.line, format!("'redirect': unknown option '{other}'"))
                        }
                    }
                    i += 2;
                }
                match *kind {
                    "location" => RequestAction::respond(code, "text/plain", "", &format!("Location: {target}\r\n")),
                    "prefix" | "scheme" => {
                        return self.err(l.line, format!("'redirect {kind}' needs the request URI, which is not supported yet (use 'redirect location')"))
                    }
                    other => return self.err(l.line, format!("'redirect {other}': expected location, prefix or scheme")),
                }
            }
            ("use-service", ["prometheus-exporter"]) => RequestAction::Service(Service::Prometheus),
            (a, _) if matches!(a, "set-header" | "add-header" | "del-header") => {
                return self.err(
                    l.line,
                    format!("'http-request {a}' expects a name and a value"),
                )
            }
            (a, _) => return self.err(l.line, format!("'http-request {a}' is not supported yet")),
        };
        p.request_rules.push(RequestRule { cond, action: act });
    }

    /// `acl1 !acl2 || { criterion pattern } acl3`: AND binds tighter than `||`.
    pub(super) fn condition(&mut self, line: usize, w: &[String], p: &Proxy) -> Option<Condition> {
        if w.is_empty() {
            self.err(line, "missing condition after 'if'/'unless'");
            return None;
        }
        let mut any = Vec::new();
        let mut all = Vec::new();
        let mut i = 0;
        while i < w.len() {
            let word = w[i].as_str();
            if word == "||" || word == "or" {
                // HAProxy ignores an '||' with nothing on one side.
                if !all.is_empty() {
                    any.push(Condition::All(std::mem::take(&mut all)));
                }
                i += 1;
                continue;
            }
            let (negate, word) = match word.strip_prefix('!') {
                Some("") => {
                    i += 1;
                    match w.get(i) {
                        Some(next) => (true, next.as_str()),
                        None => {
                            self.err(line, "'!' without an ACL");
                            return None;
                        }
                    }
                }
                Some(rest) => (true, rest),
                None => (false, word),
            };
            let term = if word == "{" {
                let Some(end) = w[i + 1..].iter().position(|x| x == "}") else {
                    self.err(line, "anonymous ACL '{' without its '}'");
                    return None;
                };
                let test = self.acl_test(line, &w[i + 1..i + 1 + end])?;
                i += end + 1;
                Condition::Acl(Arc::new(Acl {
                    name: "anonymous".into(),
                    tests: vec![test],
                }))
            } else if let Some(acl) = p.acls.get(word) {
                Condition::Acl(acl.clone())
            } else if let Some(c) = predefined_acl(word) {
                c
            } else {
                self.err(line, format!("no such ACL : '{word}'"));
                return None;
            };
            all.push(if negate {
                Condition::Not(Box::new(term))
            } else {
                term
            });
            i += 1;
        }
        if !all.is_empty() {
            any.push(Condition::All(all));
        }
        if any.is_empty() {
            self.err(line, "missing condition after 'if'/'unless'");
            return None;
        }
        Some(if any.len() == 1 {
            any.pop().unwrap_or(Condition::Always)
        } else {
            Condition::Any(any)
        })
    }
}

/// HAProxy's predefined ACLs that make sense here.
fn predefined_acl(name: &str) -> Option<Condition> {
    let method = |m: &str| {
        AclTest::new(Fetch::Method, MatchMethod::Str, false, &[m])
            .ok()
            .map(|t| {
                Condition::Acl(Arc::new(Acl {
                    name: name.to_string(),
                    tests: vec![t],
                }))
            })
    };
    match name {
        "TRUE" => Some(Condition::Always),
        "FALSE" => Some(Condition::Not(Box::new(Condition::Always))),
        "METH_GET" => method("GET"),
        "METH_POST" => method("POST"),
        "METH_PUT" => method("PUT"),
        "METH_DELETE" => method("DELETE"),
        "METH_HEAD" => method("HEAD"),
        "METH_OPTIONS" => method("OPTIONS"),
        "METH_CONNECT" => method("CONNECT"),
        "METH_TRACE" => method("TRACE"),
        "LOCALHOST" => AclTest::new(Fetch::Src, MatchMethod::Ip, false, &["127.0.0.1/8", "::1"])
            .ok()
            .map(|t| {
                Condition::Acl(Arc::new(Acl {
                    name: name.to_string(),
                    tests: vec![t],
                }))
            }),
        _ => None,
    }
}

/// `deny_status N`, or nothing (403). `Err(Some(..))`: a bad status; `Err(None)`: other
/// words, which the caller names.
fn deny_status(args: &[&str]) -> Result<u16, Option<String>> {
    match args {
        [] => Ok(403),
        ["deny_status", n] => match n.parse::<u16>() {
            Ok(s) if (200..600).contains(&s) => Ok(s),
            _ => Err(Some(format!("invalid deny_status '{n}'"))),
        },
        _ => Err(None),
    }
}

/// HAProxy's body for a denied request.
fn forbidden_body(status: u16) -> String {
    format!("<html><body><h1>{status} Forbidden</h1>\nRequest forbidden by administrative rules.\n</body></html>\n")
}
