//! haproxy.cfg HTTP rules: `http-request`, `http-response`, `http-after-response`
//! and `redirect` lines, their local replies (`deny`, `return`, `tarpit`, redirects),
//! header captures (`capture request|response header`, `declare capture`,
//! `http-request capture`) and the `log-format` line.

use super::*;
use crate::config::{CaptureSlot, Reply};
use crate::rules::action::{log_level, VarTarget, ERROR_STATUSES};
use crate::rules::logformat::Mode as LfMode;
use crate::rules::pattern::Method;
use crate::rules::{Expr, LogFormat};

/// Which rule list a line feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HttpKind {
    Request,
    Response,
    AfterResponse,
}

impl HttpKind {
    fn keyword(self) -> &'static str {
        match self {
            HttpKind::Request => "http-request",
            HttpKind::Response => "http-response",
            HttpKind::AfterResponse => "http-after-response",
        }
    }
}

/// Actions HAProxy 2.6 has that ringlb refuses, with the reason.
fn refused(kind: HttpKind, action: &str) -> Option<String> {
    let kw = kind.keyword();
    Some(match action {
        "auth" if kind != HttpKind::Request => {
            format!("'{kw} auth' does not exist (a request action)")
        }
        "set-src" if kind != HttpKind::Request => {
            format!("'{kw} set-src' does not exist (a request action)")
        }
        "set-src-port" | "set-dst" | "set-dst-port" => {
            format!("'{kw} {action}' is not supported by ringlb")
        }
        "set-tos" | "set-mark" => format!(
            "'{kw} {action}' is not supported by ringlb (it would change how packets are marked)"
        ),
        "do-resolve"
        | "early-hint"
        | "normalize-uri"
        | "cache-use"
        | "cache-store"
        | "wait-for-body"
        | "send-spoe-group"
        | "set-timeout"
        | "set-map"
        | "del-map"
        | "add-acl"
        | "del-acl"
        | "set-bandwidth-limit"
        | "replace-path-regsub" => {
            format!("'{kw} {action}' is not supported by ringlb")
        }
        a if a.starts_with("lua.") => format!("'{kw} {a}': Lua is not supported by ringlb"),
        _ => return None,
    })
}

impl Mapper<'_> {
    /// `KIND ACTION ARGS [if|unless COND]`; `words` starts at the action.
    pub(super) fn http_rule(&mut self, l: &Line, kind: HttpKind, words: &[String], p: &mut Proxy) {
        let Some(action) = words.first() else {
            return self.err(l.line, format!("'{}' expects an action", kind.keyword()));
        };
        let cut = words
            .iter()
            .position(|x| x == "if" || x == "unless")
            .unwrap_or(words.len());
        // As in HAProxy, an empty word ends the arguments (`set-query ""` lacks one).
        let args: Vec<&str> = words[1..cut]
            .iter()
            .map(String::as_str)
            .take_while(|a| !a.is_empty())
            .collect();
        // Request-rate limits keep their own path (`track-scN` + `deny if
        // { sc_http_req_rate(N) gt LIMIT }`), shared by the cluster code.
        if kind == HttpKind::Request {
            if let Some(sc) = action
                .strip_prefix("track-sc")
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| n < 3)
            {
                if cut == words.len() && self.legacy_track(l.line, sc, &args, p) {
                    return;
                }
            }
            if action == "deny"
                && cut < words.len()
                && self.legacy_rate_deny(l, words, cut, &args, p)
            {
                return;
            }
        }
        if let Some(e) = refused(kind, action) {
            return self.err(l.line, e);
        }
        let Some(cond) = self.condition_of(l.line, &words[cut..], p, kind.keyword()) else {
            return;
        };
        use crate::rules::parse::Phase;
        self.phase = Some(match kind {
            HttpKind::Request if p.kind != SectionKind::Frontend => Phase::HttpRequestBackend,
            HttpKind::Request => Phase::HttpRequest,
            _ => Phase::HttpResponse,
        });
        let act = self.http_action(kind, action, &args, p);
        self.phase = None;
        let act = match act {
            Ok(a) => a,
            Err(e) => return self.err(l.line, format!("'{} {action}': {e}", kind.keyword())),
        };
        let rule = HttpRule {
            cond,
            action: act,
            line: l.line,
        };
        match kind {
            HttpKind::Request if words[0] == "redirect" && l.keyword() == "redirect" => {
                p.redirects.push(rule)
            }
            HttpKind::Request => p.http_request.push(rule),
            HttpKind::Response => p.http_response.push(rule),
            HttpKind::AfterResponse => p.http_after_response.push(rule),
        }
    }

    pub(super) fn lf(&mut self, p: &Proxy, text: &str) -> Result<LogFormat, String> {
        let mut env = self.rule_env(p);
        LogFormat::parse(text, LfMode::Http, &mut env)
    }

    fn expr(&mut self, p: &Proxy, text: &str) -> Result<Expr, String> {
        let mut env = self.rule_env(p);
        Expr::parse(text, &mut env)
    }

    fn var_target(&mut self, name: &str) -> Result<VarTarget, String> {
        let id = self.vars.id(name)?;
        Ok(match id.scope {
            crate::rules::vars::Scope::Proc => {
                VarTarget::Proc(name.split_once('.').map_or("", |(_, n)| n).into())
            }
            _ => VarTarget::Slot(id),
        })
    }

    fn http_action(
        &mut self,
        kind: HttpKind,
        action: &str,
        args: &[&str],
        p: &mut Proxy,
    ) -> Result<HttpAction, String> {
        let req = kind == HttpKind::Request;
        let after = kind == HttpKind::AfterResponse;
        let regex = |re: &str| {
            regex::bytes::Regex::new(re).map_err(|e| format!("invalid regex '{re}': {e}"))
        };
        // set-var(NAME) EXPR, set-var-fmt(NAME) FMT, unset-var(NAME).
        if let Some(rest) = action.strip_suffix(')') {
            if let Some(name) = rest.strip_prefix("set-var(") {
                let name = name.split(',').next().unwrap_or("");
                if name.len() != rest.len() - "set-var(".len() {
                    return Err(
                        "conditions on set-var (ifexists, ifnotset, ...) are not supported".into(),
                    );
                }
                let target = self.var_target(name)?;
                let [e] = args else {
                    return Err("expects a sample expression".into());
                };
                return Ok(HttpAction::SetVar(target, self.expr(p, e)?));
            }
            if let Some(name) = rest.strip_prefix("set-var-fmt(") {
                let target = self.var_target(name)?;
                let [f] = args else {
                    return Err("expects a log-format string".into());
                };
                let mut env = self.rule_env(p);
                let fmt = LogFormat::parse(f, LfMode::Plain, &mut env)?;
                return Ok(HttpAction::SetVarFmt(target, fmt));
            }
            if let Some(name) = rest.strip_prefix("unset-var(") {
                if !args.is_empty() {
                    return Err("takes no argument".into());
                }
                return Ok(HttpAction::UnsetVar(self.var_target(name)?));
            }
            for (prefix, gpc) in [("sc-inc-gpc0(", 0u8), ("sc-inc-gpc1(", 1)] {
                if let Some(n) = rest.strip_prefix(prefix) {
                    let counter = sc_index(n)?;
                    if after {
                        return Err("not allowed in http-after-response".into());
                    }
                    return Ok(HttpAction::ScIncGpc { counter, gpc });
                }
            }
            if let Some(n) = rest.strip_prefix("sc-set-gpt0(") {
                let counter = sc_index(n)?;
                let [e] = args else {
                    return Err("expects an integer or a sample expression".into());
                };
                // An integer is a constant (HAProxy: `{ <int> | <expr> }`).
                let e = match e.parse::<i64>() {
                    Ok(n) => format!("int({n})"),
                    Err(_) => e.to_string(),
                };
                return Ok(HttpAction::ScSetGpt0 {
                    counter,
                    expr: self.expr(p, &e)?,
                });
            }
        }
        if let Some(n) = action.strip_prefix("track-sc") {
            let counter = sc_index(n)?;
            if after {
                return Err("not allowed in http-after-response".into());
            }
            return self.track_action(counter, args, p).map(|(c, key, table)| {
                HttpAction::TrackSc {
                    counter: c,
                    key,
                    table,
                }
            });
        }
        let hdr_fmt =
            |m: &mut Self, p: &Proxy, args: &[&str]| -> Result<(Box<str>, LogFormat), String> {
                let [name, value] = args else {
                    return Err("expects a header name and a value".into());
                };
                Ok(((*name).into(), m.lf(p, value)?))
            };
        Ok(match action {
            "set-src" => match args {
                [e] => HttpAction::SetSrc(self.expr(p, e)?),
                _ => return Err("expects a sample expression".into()),
            },
            "set-header" => {
                let (n, f) = hdr_fmt(self, p, args)?;
                HttpAction::SetHeader(n, f)
            }
            "add-header" => {
                let (n, f) = hdr_fmt(self, p, args)?;
                HttpAction::AddHeader(n, f)
            }
            "del-header" => match args {
                [name] => HttpAction::DelHeader((*name).into(), Method::Str, None),
                [name, "-m", m] => {
                    let method = match *m {
                        "str" => Method::Str,
                        "beg" => Method::Beg,
                        "end" => Method::End,
                        "sub" => Method::Sub,
                        "reg" => Method::Reg,
                        other => return Err(format!("unsupported matching method '{other}'")),
                    };
                    let re = if method == Method::Reg {
                        Some(
                            regex::bytes::RegexBuilder::new(name)
                                .case_insensitive(true)
                                .build()
                                .map_err(|e| format!("invalid regex '{name}': {e}"))?,
                        )
                    } else {
                        None
                    };
                    HttpAction::DelHeader((*name).into(), method, re)
                }
                _ => return Err("expects a header name [-m str|beg|end|sub|reg]".into()),
            },
            "replace-header" | "replace-value" => {
                let [name, re, fmt] = args else {
                    return Err("expects a header name, a regex and a replacement".into());
                };
                HttpAction::ReplaceHeader {
                    name: (*name).into(),
                    re: regex(re)?,
                    fmt: self.lf(p, fmt)?,
                    each_value: action == "replace-value",
                }
            }
            "set-path" | "set-pathq" | "set-uri" | "set-query" | "set-method" if req => {
                let [f] = args else {
                    return Err("expects a log-format string".into());
                };
                let f = self.lf(p, f)?;
                match action {
                    "set-path" => HttpAction::SetPath(f),
                    "set-pathq" => HttpAction::SetPathQ(f),
                    "set-uri" => HttpAction::SetUri(f),
                    "set-query" => HttpAction::SetQuery(f),
                    _ => HttpAction::SetMethod(f),
                }
            }
            "replace-path" | "replace-pathq" | "replace-uri" if req => {
                let [re, fmt] = args else {
                    return Err("expects a regex and a replacement".into());
                };
                let (re, fmt) = (regex(re)?, self.lf(p, fmt)?);
                match action {
                    "replace-uri" => HttpAction::ReplaceUri(re, fmt),
                    _ => HttpAction::ReplacePath {
                        re,
                        fmt,
                        with_query: action == "replace-pathq",
                    },
                }
            }
            "auth" => {
                // `realm R` (the proxy's name by default), as HAProxy.
                let realm = match args {
                    [] => p.name.as_str(),
                    ["realm", r] => r,
                    _ => return Err("expects nothing or 'realm <realm>'".into()),
                };
                HttpAction::Auth {
                    realm: realm.into(),
                    page: Arc::new(crate::config::Reply::error_page(401)),
                }
            }
            "allow" => {
                if !args.is_empty() {
                    return Err("takes no argument".into());
                }
                HttpAction::Allow
            }
            "deny" | "tarpit" if !after => {
                if action == "tarpit" && !req {
                    return Err("'tarpit' is a request action".into());
                }
                // HAProxy 2.6: a tarpit answers 500 once its delay is over.
                let default = match (action, req) {
                    ("tarpit", _) => 500,
                    (_, true) => 403,
                    (_, false) => 502,
                };
                let r = self.reply(args, default, true, p)?;
                if action == "tarpit" {
                    HttpAction::Tarpit(Arc::new(r))
                } else {
                    HttpAction::Deny(Arc::new(r))
                }
            }
            "return" if !after => HttpAction::Return(Arc::new(self.reply(args, 200, false, p)?)),
            "redirect" if !after => HttpAction::Redirect(Arc::new(self.redirect(args, p, req)?)),
            "capture" if !after => {
                let (slot, len, expr) = self.capture_action(args, p, req)?;
                HttpAction::Capture { expr, slot, len }
            }
            "set-log-level" => match args {
                [lvl] => HttpAction::SetLogLevel(
                    log_level(lvl).ok_or_else(|| format!("unknown log level '{lvl}'"))?,
                ),
                _ => return Err("expects a log level".into()),
            },
            "set-status" if !req => {
                let (code, reason) = match args {
                    [c] => (c, None),
                    [c, "reason", r] => (c, Some((*r).into())),
                    _ => return Err("expects a status code [reason TEXT]".into()),
                };
                let code: u16 = code
                    .parse()
                    .ok()
                    .filter(|c| (100..1000).contains(c))
                    .ok_or_else(|| format!("invalid status code '{code}'"))?;
                HttpAction::SetStatus(code, reason)
            }
            "use-service" if req => match args {
                ["prometheus-exporter"] => HttpAction::Service(Service::Prometheus),
                [other] => return Err(format!("unknown service '{other}'")),
                _ => return Err("expects a service name".into()),
            },
            "reject" | "silent-drop" if !after => HttpAction::Reject {
                silent: action == "silent-drop",
            },
            "disable-l7-retry" | "strict-mode" | "set-nice" | "wait-for-handshake" => {
                HttpAction::Nothing
            }
            other => return Err(format!("unknown or unsupported action '{other}'")),
        })
    }

    /// `track-scN KEY [table T]`: (counter, key expression, table index).
    fn track_action(
        &mut self,
        counter: u8,
        args: &[&str],
        p: &Proxy,
    ) -> Result<(u8, Expr, u32), String> {
        let (key, table) = match args {
            [k] => (*k, None),
            [k, "table", t] => (*k, Some(*t)),
            _ => return Err("expects KEY [table NAME]".into()),
        };
        let table = match table {
            Some(t) => self
                .names
                .table(t)
                .ok_or_else(|| format!("no stick-table named '{t}'"))?,
            None => self.names.table(&p.name).ok_or_else(|| {
                format!(
                    "no stick-table in proxy '{}' (name one with 'table')",
                    p.name
                )
            })?,
        };
        Ok((counter, self.expr(p, key)?, table as u32))
    }

    /// `capture EXPR len N` (request rules of a frontend: a new slot) or `id N`.
    fn capture_action(
        &mut self,
        args: &[&str],
        p: &mut Proxy,
        req: bool,
    ) -> Result<(usize, usize, Expr), String> {
        let (e, kw, n) = match args {
            [e, kw, n] => (*e, *kw, *n),
            _ => return Err("expects a sample expression and 'len N' or 'id N'".into()),
        };
        let n: usize = n
            .parse()
            .map_err(|_| format!("'{kw}' expects a number, got '{n}'"))?;
        let expr = self.expr(p, e)?;
        let slots = if req {
            &mut p.captures.request
        } else {
            &mut p.captures.response
        };
        match kw {
            "len" if req => {
                if p.kind == SectionKind::Backend {
                    return Err("'capture ... len' is only allowed in frontends (use 'id')".into());
                }
                slots.push(CaptureSlot {
                    header: None,
                    len: n,
                });
                Ok((slots.len() - 1, n, expr))
            }
            "id" => {
                let len = slots
                    .get(n)
                    .map(|s| s.len)
                    .ok_or_else(|| format!("no capture slot {n} declared ('declare capture')"))?;
                Ok((n, len, expr))
            }
            _ => Err(format!("expects 'len N' or 'id N', got '{kw}'")),
        }
    }

    /// `capture request|response header NAME len N`.
    pub(super) fn capture_line(&mut self, l: &Line, p: &mut Proxy) {
        let a: Vec<&str> = l.args().iter().map(String::as_str).collect();
        match a.as_slice() {
            [side @ ("request" | "response"), "header", name, "len", n] => {
                let Ok(len) = n.parse::<usize>() else {
                    return self.err(
                        l.line,
                        format!(
                            "'capture {side} header' expects 'len' followed by a number, got '{n}'"
                        ),
                    );
                };
                let slot = CaptureSlot {
                    header: Some(name.to_ascii_lowercase().into()),
                    len,
                };
                if *side == "request" {
                    p.captures.request.push(slot);
                } else {
                    p.captures.response.push(slot);
                }
            }
            ["cookie", ..] => self.err(l.line, "'capture cookie' is not supported yet"),
            _ => self.err(
                l.line,
                "'capture' expects 'request header NAME len N' or 'response header NAME len N'",
            ),
        }
    }

    /// `declare capture request|response len N`.
    pub(super) fn declare(&mut self, l: &Line, p: &mut Proxy) {
        let a: Vec<&str> = l.args().iter().map(String::as_str).collect();
        match a.as_slice() {
            ["capture", side @ ("request" | "response"), "len", n] => match n.parse::<usize>() {
                Ok(len) => {
                    let slot = CaptureSlot { header: None, len };
                    if *side == "request" {
                        p.captures.request.push(slot);
                    } else {
                        p.captures.response.push(slot);
                    }
                }
                Err(_) => self.err(
                    l.line,
                    format!("'declare capture' expects 'len' followed by a number, got '{n}'"),
                ),
            },
            _ => self.err(l.line, "'declare' expects 'capture request|response len N'"),
        }
    }

    /// The request-rate limit's key (`track-scN src|req.hdr(N)|req.cook(N)`), noted for
    /// the limit; the line is then also an ordinary `track-sc` rule (`false`).
    fn legacy_track(&mut self, line: usize, sc: usize, args: &[&str], p: &mut Proxy) -> bool {
        let key_ok = matches!(args, [k] | [k, "table", _] if stick::is_legacy_key(k));
        if key_ok {
            self.track(line, sc, args, p);
        }
        false
    }

    fn legacy_rate_deny(
        &mut self,
        l: &Line,
        words: &[String],
        cut: usize,
        args: &[&str],
        p: &mut Proxy,
    ) -> bool {
        match self.rate_deny(l.line, &words[cut + 1..], p) {
            None => false,
            Some(None) => true,
            // A rate on a counter tracked with another key: an ordinary rule.
            Some(Some((sc, _))) if p.stick.tracks[sc].is_none() => false,
            Some(Some(_)) if words[cut] == "unless" => {
                self.err(
                    l.line,
                    "'unless' with a request-rate condition is not supported",
                );
                true
            }
            Some(Some((sc, limit))) => {
                let status = match args {
                    [] => 403,
                    ["deny_status", n] => match n.parse::<u16>() {
                        Ok(s) if ERROR_STATUSES.contains(&s) => s,
                        _ => {
                            self.err(l.line, format!("invalid deny_status '{n}'"));
                            return true;
                        }
                    },
                    _ => {
                        self.err(
                            l.line,
                            "'http-request deny' with a rate: only 'deny_status N'",
                        );
                        return true;
                    }
                };
                let bytes = Reply::error_page(status)
                    .canned
                    .map(Vec::from)
                    .unwrap_or_default();
                p.http_request.push(HttpRule {
                    cond: Condition::Always,
                    action: HttpAction::RateLimit {
                        limiter: p.stick.rate_rules.len(),
                        status,
                        bytes,
                    },
                    line: l.line,
                });
                p.stick.rate_rules.push((l.line, sc, limit));
                true
            }
        }
    }
}

/// `sc-inc-gpc0(N)` and friends: N in 0..=2.
fn sc_index(n: &str) -> Result<u8, String> {
    match n.parse::<u8>() {
        Ok(i) if i < 3 => Ok(i),
        _ => Err(format!("invalid stick counter '{n}' (0, 1 or 2)")),
    }
}
