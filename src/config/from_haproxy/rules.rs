//! haproxy.cfg ACLs, `use_backend` / `use-server` rules and their conditions, and the
//! stats page.

use super::*;

impl Mapper<'_> {
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
        // A request-rate ACL is noted for the rate limit, and is an ordinary ACL too.
        self.rate_acl(l.line, name, &a[1..], p);
        let r = {
            let mut env = self.rule_env(p);
            crate::rules::AclTest::parse(&a[1..], &mut env)
        };
        let test = match r {
            Ok(t) => Some(t),
            Err(e) => {
                self.err(
                    l.line,
                    format!("error detected while parsing ACL '{name}' : {e}"),
                );
                None
            }
        };
        if let Some(test) = test {
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

    /// `use_backend NAME [if|unless COND]`; NAME may be a log-format string.
    pub(super) fn use_backend(&mut self, l: &Line, p: &mut Proxy) {
        let a = l.args();
        let Some(name) = a.first() else {
            return self.err(l.line, "'use_backend' expects a backend name");
        };
        let target = if name.contains('%') {
            self.phase = Some(if p.settings.mode == Mode::Tcp {
                crate::rules::parse::Phase::TcpContent
            } else {
                crate::rules::parse::Phase::HttpRequest
            });
            let r = {
                let mut env = self.rule_env(p);
                crate::rules::LogFormat::parse(name, crate::rules::logformat::Mode::Plain, &mut env)
            };
            self.phase = None;
            match r {
                Ok(f) if f.is_constant() => Target::Name(name.clone()),
                Ok(f) => Target::Dynamic(Arc::new(f)),
                Err(e) => return self.err(l.line, format!("'use_backend {name}': {e}")),
            }
        } else {
            Target::Name(name.clone())
        };
        let Some(cond) = self.condition_of(l.line, &a[1..], p, "use_backend") else {
            return;
        };
        p.rules.push((l.line, cond, target));
    }

    /// `use-server NAME [if|unless COND]` (backends).
    pub(super) fn use_server(&mut self, l: &Line, p: &mut Proxy) {
        let a = l.args();
        let Some(name) = a.first() else {
            return self.err(l.line, "'use-server' expects a server name");
        };
        if name.contains('%') {
            return self.err(
                l.line,
                "'use-server' with a log-format server name is not supported (name the server)",
            );
        }
        let Some(cond) = self.condition_of(l.line, &a[1..], p, "use-server") else {
            return;
        };
        p.use_server.push((l.line, cond, name.clone()));
    }

    /// `[if|unless COND]` after a rule's arguments; reports errors with the line.
    pub(super) fn condition_of(
        &mut self,
        line: usize,
        w: &[String],
        p: &Proxy,
        what: &str,
    ) -> Option<Condition> {
        let acls = p.acls.clone();
        let r = {
            let mut env = self.rule_env(p);
            Condition::parse_if(w, &mut env, &|n| acls.get(n).cloned())
        };
        match r {
            Ok(c) => Some(c),
            Err(e) => {
                self.err(
                    line,
                    format!("error detected while parsing a '{what}' condition : {e}"),
                );
                None
            }
        }
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
            Some("scope") => match arg {
                Some(name) => {
                    s.stats.enabled = true;
                    if !s.stats.scope.contains(&name) {
                        s.stats.scope.push(name);
                    }
                }
                None => self.err(l.line, "'stats scope' expects a proxy name or '.'"),
            },
            // Ignoring it would show the page to whom the operator meant to hide it.
            Some("http-request") => self.err(
                l.line,
                format!(
                    "'stats {}' is not supported yet (the page would not be restricted)",
                    a[0]
                ),
            ),
            Some("bind-process") | Some("maxconn") | Some("timeout") => {
                self.warn(l.line, format!("'stats {}' ignored", a[0]))
            }
            Some(other) => self.err(l.line, format!("unknown 'stats' keyword '{other}'")),
            None => self.err(l.line, "'stats' expects a keyword"),
        }
    }

    /// `stats admin if|unless COND`: who may change servers' states from the page.
    pub(super) fn stats_admin(&mut self, l: &Line, p: &mut Proxy) {
        let w = l.args();
        if !matches!(w.get(1).map(String::as_str), Some("if" | "unless")) || w.len() < 3 {
            return self.err(
                l.line,
                "'stats admin' requires either 'if' or 'unless' followed by a condition",
            );
        }
        let Some(cond) = self.condition_of(l.line, &w[1..], p, "stats admin") else {
            return;
        };
        p.settings.stats.enabled = true;
        p.settings.stats.admin = Some(cond);
    }
}
