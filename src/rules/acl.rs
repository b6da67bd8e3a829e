//! ACLs and conditions (configuration manual 7.1, 7.2, 7.4): an ACL test is a sample
//! expression, a match method and patterns (`acl NAME CRITERION [FLAGS] PATTERNS`);
//! a named ACL ORs its tests; a condition (`if` / `unless`) ANDs terms, `||` / `or`
//! separate alternatives, `!` negates, `{ ... }` is an anonymous ACL.
//!
//! Evaluation is three-valued, as HAProxy's: a test on bytes that have not arrived
//! yet (`tcp-request content` with an inspect delay) is `Miss`, and the rule waits.

use std::sync::Arc;

use super::map::PatExpr;
use super::parse::{arg_list, keyword, Env, Expr};
use super::pattern::{Method, Patterns};
use super::sample::Scratch;
use super::Ctx;

/// A condition's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tri {
    Pass,
    Fail,
    /// Could change with more data.
    Miss,
}

impl Tri {
    fn not(self) -> Tri {
        match self {
            Tri::Pass => Tri::Fail,
            Tri::Fail => Tri::Pass,
            Tri::Miss => Tri::Miss,
        }
    }
}

/// One ACL test.
#[derive(Debug, Clone)]
pub struct AclTest {
    pub expr: Expr,
    pub pats: Patterns,
    /// Its number among the config's pattern expressions (`None`: built in code,
    /// the runtime API cannot change it): a shard that holds a runtime copy of it
    /// matches against that copy.
    pub live: Option<u32>,
}

/// A named ACL: true when any of its tests is.
#[derive(Debug, Clone)]
pub struct Acl {
    pub name: String,
    pub tests: Vec<AclTest>,
}

#[derive(Debug, Clone)]
pub enum Condition {
    Always,
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Acl(Arc<Acl>),
}

impl AclTest {
    pub fn eval(&self, ctx: &Ctx<'_>, s: &mut Scratch) -> Tri {
        ctx.miss.set(false);
        let method = self.pats.method;
        let mut n = 0;
        loop {
            let smp = if self.expr.multi {
                self.expr.eval_nth(ctx, s, n)
            } else if n == 0 {
                self.expr.eval(ctx, s)
            } else {
                None
            };
            let Some(smp) = smp else { break };
            if method == Method::Found {
                return Tri::Pass;
            }
            if let Some(v) = smp.cast(method.expect(), s) {
                let found = match (self.live, ctx.world) {
                    (Some(e), Some(w)) => w
                        .pat_find(e, &v, &s.cur)
                        .unwrap_or_else(|| self.pats.find(&v, &s.cur)),
                    _ => self.pats.find(&v, &s.cur),
                };
                if found.is_some() {
                    return Tri::Pass;
                }
            }
            n += 1;
            if !self.expr.multi {
                break;
            }
        }
        if ctx.miss.get() {
            Tri::Miss
        } else {
            Tri::Fail
        }
    }

    /// Parses `CRITERION [FLAGS] [PATTERNS]`.
    pub fn parse(words: &[String], env: &mut Env<'_>) -> Result<AclTest, String> {
        let Some(criterion) = words.first() else {
            return Err("missing ACL criterion".into());
        };
        // HAProxy only warns about ACL fetches a rule cannot use (they never match).
        let phase = env.phase.take();
        let parsed = criterion_expr(criterion, env);
        env.phase = phase;
        let (mut expr, kw_method) = parsed?;
        let mut method = kw_method.or_else(|| Method::default_for(expr.out));
        let mut icase = false;
        let mut i = 1;
        let mut files: Vec<(String, bool, bool)> = Vec::new();
        let mut as_map = false;
        while i < words.len() && words[i].starts_with('-') {
            match words[i].as_str() {
                "-i" => icase = true,
                "-n" => {}
                "-u" => i += 1,
                "-M" => as_map = true,
                "-f" => {
                    let Some(f) = words.get(i + 1) else {
                        return Err("'-f' expects a file name".into());
                    };
                    if method.is_none() {
                        return Err(format!("matching method must be specified first (using '-m') when using a sample fetch of this type ('{criterion}')"));
                    }
                    files.push((f.clone(), icase, as_map));
                    i += 1;
                }
                "-m" => {
                    if !files.is_empty() {
                        return Err("'-m' must only be specified before patterns and files in parsing ACL expression".into());
                    }
                    let name = words.get(i + 1).map(String::as_str).unwrap_or("");
                    let m = Method::parse(name).ok_or_else(|| {
                        format!("unknown matching method '{name}' when parsing ACL expression")
                    })?;
                    if m != Method::Found && !expr.out.casts_to(m.expect()) {
                        return Err(format!(
                            "matching method '{name}' cannot be used with fetch keyword '{criterion}'"
                        ));
                    }
                    method = Some(m);
                    i += 1;
                }
                "--" => {
                    i += 1;
                    break;
                }
                other => {
                    return Err(format!("'{other}' is not a valid ACL option. Please use '--' before any pattern beginning with a '-'"))
                }
            }
            i += 1;
        }
        let Some(method) = method else {
            return Err(format!("matching method must be specified first (using '-m') when using a sample fetch of this type ('{criterion}')"));
        };
        let mut pats = Patterns::new(method, icase);
        pats.meth = criterion == "method" && method == Method::Str;
        // Patterns from files keep the case flag that was in force before them.
        let mut refs = Vec::with_capacity(files.len() + 1);
        for (f, ic, map) in &files {
            let r = env.patterns.file(f, *map, true)?;
            pats.icase = *ic;
            for en in env.patterns.refs[r].entries.iter() {
                pats.add(&en.key).map_err(|e| format!("file '{f}': {e}"))?;
            }
            refs.push((r as u32, *ic));
        }
        pats.icase = icase;
        let mut op: Option<&str> = None;
        let mut inline = Vec::new();
        // `http_auth_group(L) G...`: the groups' members, as users are what it fetches.
        let groups = match &expr.fetch {
            super::fetch::Fetch::HttpAuthGroup(ul) if expr.convs.is_empty() => Some(ul.clone()),
            _ => None,
        };
        if let Some(ul) = groups {
            for g in &words[i..] {
                let users = ul
                    .members(g)
                    .ok_or_else(|| format!("group '{g}' not found in userlist '{}'", ul.name))?;
                for u in users {
                    pats.add(u)?;
                    inline.push(u.to_string());
                }
            }
            i = words.len();
        }
        for w in &words[i..] {
            let int_like = matches!(method, Method::Int | Method::Len);
            if int_like && matches!(w.as_str(), "eq" | "ge" | "gt" | "le" | "lt") {
                op = Some(w.as_str());
                continue;
            }
            let text = match (int_like, op) {
                (true, Some(o)) if o != "eq" && !w.contains([':', '-']) => {
                    let v: i64 = w.parse().map_err(|_| {
                        format!("'{w}' is neither a number nor a supported operator")
                    })?;
                    match o {
                        "gt" => format!("{}:", v.saturating_add(1)),
                        "ge" => format!("{v}:"),
                        "lt" => format!(":{}", v.saturating_sub(1)),
                        _ => format!(":{v}"),
                    }
                }
                _ => w.clone(),
            };
            pats.add(&text)?;
            inline.push(text);
        }
        let keyword = criterion.split('(').next().unwrap_or(criterion);
        refs.push((env.patterns.inline(keyword, &inline) as u32, icase));
        let live = env.patterns.expr(PatExpr {
            refs,
            method,
            icase,
            meth: pats.meth,
            out: None,
        });
        expr.text = criterion.clone();
        Ok(AclTest {
            expr,
            pats,
            live: Some(live),
        })
    }
}

/// ACL keywords that imply a match method (`hdr_beg(host)` is `req.hdr(host) -m beg`).
fn acl_keyword(name: &str) -> Option<(&'static str, Method)> {
    let (base, m) = match name.rsplit_once('_') {
        Some((b, s)) => (b, s),
        None => (name, ""),
    };
    let fetch: &'static str = match base {
        "base" => "base",
        "cook" => "req.cook",
        "hdr" => "req.hdr",
        "path" => "path",
        "scook" => "res.cook",
        "shdr" => "res.hdr",
        "url" => "url",
        "urlp" => "urlp",
        "ssl_fc_sni" if matches!(m, "end" | "reg") => "ssl_fc_sni",
        _ => return None,
    };
    let method = match m {
        "beg" => Method::Beg,
        "dir" => Method::Dir,
        "dom" => Method::Dom,
        "end" => Method::End,
        "len" => Method::Len,
        "reg" => Method::Reg,
        "sub" => Method::Sub,
        _ => return None,
    };
    Some((fetch, method))
}

/// The expression of a criterion and the method its keyword implies (dropped when
/// converters follow, as HAProxy does).
fn criterion_expr(text: &str, env: &mut Env<'_>) -> Result<(Expr, Option<Method>), String> {
    let name = keyword(text);
    let implied = match name {
        "payload" | "payload_lv" => Some(("req.payload", Method::Bin)),
        "req_ssl_ver" | "req.ssl_ver" => None,
        "cook" | "hdr" | "shdr" | "scook" => None,
        _ => acl_keyword(name),
    };
    let Some((fetch, method)) = implied else {
        let e = Expr::parse(text, env).map_err(|e| format!("{e} in ACL expression '{text}'"))?;
        // `hdr`, `cook`... used as ACL keywords read the request (`shdr`, `scook`: the
        // response), as their ACL declarations do.
        return Ok((e, None));
    };
    let rest = &text[name.len()..];
    let (_, n) = arg_list(rest).map_err(|e| format!("ACL keyword '{name}' : {e}"))?;
    let mut call = fetch.to_string();
    if n > 0 {
        call.push_str(&rest[..n]);
    }
    let mut e = Expr::parse(&call, env).map_err(|e| format!("ACL keyword '{name}' : {e}"))?;
    let before = e.convs.len();
    let used = e.parse_convs(text, name.len() + n, env)?;
    if used != text.len() {
        return Err(format!(
            "ACL keyword '{name}' : missing comma after fetch keyword."
        ));
    }
    let implied = (e.convs.len() == before).then_some(method);
    Ok((e, implied))
}

impl Condition {
    pub fn eval(&self, ctx: &Ctx<'_>, s: &mut Scratch) -> Tri {
        match self {
            Condition::Always => Tri::Pass,
            Condition::All(cs) => {
                let mut out = Tri::Pass;
                for c in cs {
                    match c.eval(ctx, s) {
                        Tri::Fail => return Tri::Fail,
                        Tri::Miss => out = Tri::Miss,
                        Tri::Pass => {}
                    }
                }
                out
            }
            Condition::Any(cs) => {
                let mut out = Tri::Fail;
                for c in cs {
                    match c.eval(ctx, s) {
                        Tri::Pass => return Tri::Pass,
                        Tri::Miss => out = Tri::Miss,
                        Tri::Fail => {}
                    }
                }
                out
            }
            Condition::Not(c) => c.eval(ctx, s).not(),
            Condition::Acl(acl) => {
                let mut out = Tri::Fail;
                for t in &acl.tests {
                    match t.eval(ctx, s) {
                        Tri::Pass => return Tri::Pass,
                        Tri::Miss => out = Tri::Miss,
                        Tri::Fail => {}
                    }
                }
                out
            }
        }
    }

    /// Whether the condition holds (a `Miss` is a failure: HTTP rules see a whole head).
    pub fn holds(&self, ctx: &Ctx<'_>, s: &mut Scratch) -> bool {
        self.eval(ctx, s) == Tri::Pass
    }

    /// `if COND` / `unless COND` words (the keyword included); `None` when `w` is
    /// empty.
    pub fn parse_if(
        w: &[String],
        env: &mut Env<'_>,
        acls: &dyn Fn(&str) -> Option<Arc<Acl>>,
    ) -> Result<Condition, String> {
        match w.first().map(String::as_str) {
            None => Ok(Condition::Always),
            Some("if") => Condition::parse(&w[1..], env, acls),
            Some("unless") => Ok(Condition::Not(Box::new(Condition::parse(
                &w[1..],
                env,
                acls,
            )?))),
            Some(other) => Err(format!("expects 'if', 'unless' or nothing, got '{other}'")),
        }
    }

    /// `acl1 !acl2 || { criterion pattern } acl3`: AND binds tighter than `||`.
    pub fn parse(
        w: &[String],
        env: &mut Env<'_>,
        acls: &dyn Fn(&str) -> Option<Arc<Acl>>,
    ) -> Result<Condition, String> {
        if w.is_empty() {
            return Err("missing condition after 'if'/'unless'".into());
        }
        let mut any = Vec::new();
        let mut all = Vec::new();
        let mut i = 0;
        while i < w.len() {
            let word = w[i].as_str();
            if word == "||" || word == "or" {
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
                        None => return Err("'!' without an ACL".into()),
                    }
                }
                Some(rest) => (true, rest),
                None => (false, word),
            };
            let term = if word == "{" {
                let Some(end) = w[i + 1..].iter().position(|x| x == "}") else {
                    return Err("anonymous ACL '{' without its '}'".into());
                };
                let test = AclTest::parse(&w[i + 1..i + 1 + end], env)?;
                i += end + 1;
                Condition::Acl(Arc::new(Acl {
                    name: "anonymous".into(),
                    tests: vec![test],
                }))
            } else if let Some(acl) = acls(word) {
                Condition::Acl(acl)
            } else if let Some(c) = predefined(word, env) {
                c
            } else {
                return Err(format!("no such ACL : '{word}'"));
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
        match any.len() {
            0 => Err("missing condition after 'if'/'unless'".into()),
            1 => Ok(any.pop().unwrap_or(Condition::Always)),
            _ => Ok(Condition::Any(any)),
        }
    }

    /// Whether any test of the condition reads layer-6 bytes or waits (for the
    /// `tcp-request content` evaluation).
    pub fn uses_payload(&self) -> bool {
        match self {
            Condition::Always => false,
            Condition::All(cs) | Condition::Any(cs) => cs.iter().any(Condition::uses_payload),
            Condition::Not(c) => c.uses_payload(),
            Condition::Acl(a) => a.tests.iter().any(|t| t.expr.fetch.is_payload()),
        }
    }
}

impl AclTest {
    /// A test built from a fetch directly (TOML routes, internal rules).
    pub fn from_fetch(
        fetch: super::fetch::Fetch,
        out: super::Type,
        method: Method,
        icase: bool,
        patterns: &[&str],
    ) -> Result<AclTest, String> {
        let mut pats = Patterns::new(method, icase);
        for p in patterns {
            pats.add(p)?;
        }
        Ok(AclTest {
            expr: Expr {
                fetch,
                convs: Vec::new(),
                out,
                multi: false,
                text: String::new(),
            },
            pats,
            live: None,
        })
    }
}

/// `{ url_beg PREFIX }` as a condition (the stats page, metrics path).
pub fn url_beg_condition(name: &str, prefix: &str) -> Condition {
    match AclTest::from_fetch(
        super::fetch::Fetch::Url,
        super::Type::Str,
        Method::Beg,
        false,
        &[prefix],
    ) {
        Ok(t) => Condition::Acl(Arc::new(Acl {
            name: name.to_string(),
            tests: vec![t],
        })),
        Err(_) => Condition::Not(Box::new(Condition::Always)),
    }
}

/// HAProxy's predefined ACLs (manual 7.4).
pub fn predefined(name: &str, env: &mut Env<'_>) -> Option<Condition> {
    let def: &[&str] = match name {
        "TRUE" => return Some(Condition::Always),
        "FALSE" => return Some(Condition::Not(Box::new(Condition::Always))),
        "HTTP" => &["req.proto_http"],
        "HTTP_1.0" => &["req.ver", "1.0"],
        "HTTP_1.1" => &["req.ver", "1.1"],
        "HTTP_2.0" => &["req.ver", "2.0"],
        "HTTP_CONTENT" => &["req.hdr_val(content-length)", "gt", "0"],
        "HTTP_URL_ABS" => &["url_reg", "^[^/:]*://"],
        "HTTP_URL_SLASH" => &["url_beg", "/"],
        "HTTP_URL_STAR" => &["url", "*"],
        "LOCALHOST" => &["src", "127.0.0.1/8", "::1"],
        "METH_CONNECT" => &["method", "CONNECT"],
        "METH_DELETE" => &["method", "DELETE"],
        "METH_GET" => &["method", "GET", "HEAD"],
        "METH_HEAD" => &["method", "HEAD"],
        "METH_OPTIONS" => &["method", "OPTIONS"],
        "METH_POST" => &["method", "POST"],
        "METH_PUT" => &["method", "PUT"],
        "METH_TRACE" => &["method", "TRACE"],
        "RDP_COOKIE" => &["req.rdp_cookie_cnt", "gt", "0"],
        "REQ_CONTENT" => &["req.len", "gt", "0"],
        "WAIT_END" => &["wait_end"],
        _ => return None,
    };
    let words: Vec<String> = def.iter().map(|s| s.to_string()).collect();
    let test = AclTest::parse(&words, env).ok()?;
    Some(Condition::Acl(Arc::new(Acl {
        name: name.to_string(),
        tests: vec![test],
    })))
}
