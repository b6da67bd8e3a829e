//! Sample expression syntax (HAProxy 2.6's `sample_parse_expr()` and
//! `make_arg_list()`): `fetch`, `fetch(arg1,arg2)`, then converters after commas,
//! `fetch(a),lower,map(file,default)`. Arguments are the second level of quoting of
//! manual section 2.2: `'...'` and `"..."` protect commas and parentheses, `\` escapes
//! `\ \\ \" \'` and `\r \n \t`.
//!
//! What an expression may name (backends, servers, tables, variables, files) is
//! resolved here, at config time, through an [`Env`]: a mistake is a config error with
//! its line, never a surprise under traffic.

use super::convert::Conv;
use super::fetch::Fetch;
use super::map::PatRefs;
use super::sample::{Data, Scratch, Smp, Type};
use super::vars::Registry;
use super::Ctx;

/// A sample expression: a fetch and its converters.
#[derive(Debug, Clone)]
pub struct Expr {
    pub fetch: Fetch,
    pub convs: Vec<Conv>,
    /// The type of the last step.
    pub out: Type,
    /// The fetch reports every occurrence when an ACL iterates over it (headers,
    /// cookies, URL parameters without an explicit occurrence).
    pub multi: bool,
    /// The text it was parsed from (for messages).
    pub text: String,
}

/// Names an expression may refer to, known before any proxy is read.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// Backends (and listens) in config order, each with its servers.
    pub backends: Vec<(String, Vec<String>)>,
    /// Frontends (and listens) in config order.
    pub frontends: Vec<String>,
    /// Proxies that declare a `stick-table` (a table is named after its proxy).
    pub tables: Vec<String>,
    /// `userlist` sections.
    pub userlists: Vec<std::sync::Arc<super::auth::Userlist>>,
}

impl Names {
    pub fn backend(&self, name: &str) -> Option<usize> {
        self.backends.iter().position(|(n, _)| n == name)
    }

    pub fn userlist(&self, name: &str) -> Option<&std::sync::Arc<super::auth::Userlist>> {
        self.userlists.iter().find(|u| &*u.name == name)
    }

    pub fn table(&self, name: &str) -> Option<usize> {
        self.tables.iter().position(|n| n == name)
    }
}

/// Everything parsing needs besides the text.
pub struct Env<'e> {
    pub vars: &'e mut Registry,
    pub names: &'e Names,
    /// Pattern and map files read so far (each is read once per load), numbered.
    pub patterns: &'e mut PatRefs,
    /// The environment, for `env()` (read once, at load).
    pub env: &'e dyn Fn(&str) -> Option<String>,
    /// The proxy being read: its table for `sc_*` fetches without one, its backend
    /// index for `nbsrv`-like fetches without an argument.
    pub table: Option<usize>,
    pub backend: Option<usize>,
    /// Capture slots declared so far (request, response).
    pub captures: (usize, usize),
    /// Where the expression runs: fetches that cannot work there are refused, as
    /// HAProxy does for action and log-format expressions (`None`: not checked, as
    /// for ACLs, where HAProxy only warns).
    pub phase: Option<Phase>,
}

/// Where a sample expression is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    TcpConnection,
    TcpSession,
    TcpContent,
    HttpRequest,
    /// `http-request` rules of a backend (backend fetches are known there).
    HttpRequestBackend,
    HttpResponse,
    TcpResponse,
    /// The end of a request, when the log line is built.
    Log,
}

/// What a fetch reads (HAProxy's `SMP_SRC_*`), with HAProxy's names for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Const,
    Internal,
    Frontend,
    ClientAddr,
    ClientConn,
    Track,
    RequestBuffer,
    RequestHeaders,
    Request,
    Backend,
    Server,
    ResponseBuffer,
    ResponseHeaders,
    Response,
    /// `hdr()`, `cookie()`: request or response headers, whichever the rule sees.
    EitherHeaders,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Const => "constant",
            Source::Internal => "internal state",
            Source::Frontend => "frontend",
            Source::ClientAddr => "client address",
            Source::ClientConn => "client-side connection",
            Source::Track => "track counters",
            Source::RequestBuffer => "request buffer",
            Source::RequestHeaders | Source::EitherHeaders => "HTTP request headers",
            Source::Request => "HTTP request",
            Source::Backend => "backend",
            Source::Server => "server",
            Source::ResponseBuffer => "response buffer",
            Source::ResponseHeaders => "HTTP response headers",
            Source::Response => "HTTP response",
        }
    }

    /// Whether this source can be read in `phase` (HAProxy's `fetch_cap` table).
    pub fn available(self, phase: Phase) -> bool {
        use Phase::*;
        use Source::*;
        match self {
            Const | Internal | Frontend | ClientAddr | Track => true,
            ClientConn => phase != TcpConnection,
            RequestBuffer => matches!(phase, TcpContent | HttpRequest | HttpRequestBackend),
            RequestHeaders | Request => {
                matches!(phase, TcpContent | HttpRequest | HttpRequestBackend)
                    || (self == Request && matches!(phase, HttpResponse | TcpResponse | Log))
            }
            EitherHeaders => matches!(
                phase,
                TcpContent | HttpRequest | HttpRequestBackend | HttpResponse
            ),
            Backend | Server => {
                matches!(phase, HttpRequestBackend | HttpResponse | TcpResponse | Log)
                    || (self == Backend && phase == TcpContent)
            }
            ResponseBuffer => matches!(phase, HttpResponse | TcpResponse),
            ResponseHeaders => phase == HttpResponse,
            Response => matches!(phase, HttpResponse | Log),
        }
    }
}

/// HAProxy's `is_idchar()`: the characters of a keyword.
pub fn is_idchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'+' | b':')
}

/// Parses `(a,b)` at the start of `text` (nothing if it does not start with `(`).
/// Returns the arguments and how many bytes were consumed.
pub fn arg_list(text: &str) -> Result<(Vec<String>, usize), String> {
    let b = text.as_bytes();
    if b.first() != Some(&b'(') {
        return Ok((Vec::new(), 0));
    }
    let mut args = Vec::new();
    let mut i = 1;
    loop {
        let mut out: Vec<u8> = Vec::new();
        let (mut sq, mut dq) = (false, false);
        while i < b.len() {
            let c = b[i];
            if c == b'"' && !sq {
                dq = !dq;
                i += 1;
            } else if c == b'\'' && !dq {
                sq = !sq;
                i += 1;
            } else if c == b'\\' && !sq && i + 1 < b.len() {
                let n = b[i + 1];
                match n {
                    b'\\' | b' ' | b'"' | b'\'' => out.push(n),
                    b'r' => out.push(b'\r'),
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    _ => {
                        out.push(b'\\');
                        i += 1;
                        continue;
                    }
                }
                i += 2;
            } else if !sq && !dq && (c == b',' || c == b')') {
                break;
            } else {
                out.push(c);
                i += 1;
            }
        }
        if sq || dq {
            return Err("unmatched quote in argument list".into());
        }
        args.push(String::from_utf8(out).map_err(|_| "invalid UTF-8 in argument")?);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b')') => return Ok((args, i + 1)),
            _ => return Err("expected ')'".into()),
        }
    }
}

/// The keyword at the start of `text` (`req.hdr` in `req.hdr(host),lower`).
pub fn keyword(text: &str) -> &str {
    let end = text
        .bytes()
        .position(|c| !is_idchar(c))
        .unwrap_or(text.len());
    &text[..end]
}

impl Expr {
    /// Parses a whole expression; the text must hold nothing else.
    pub fn parse(text: &str, env: &mut Env<'_>) -> Result<Expr, String> {
        let (e, used) = Self::parse_prefix(text, env)?;
        if used != text.len() {
            return Err(format!(
                "unexpected '{}' after the sample expression '{}'",
                &text[used..],
                &text[..used]
            ));
        }
        Ok(e)
    }

    /// Parses an expression at the start of `text` and returns how much it used (for
    /// `%[...]`, which ends at the first `]` outside an argument list).
    pub fn parse_prefix(text: &str, env: &mut Env<'_>) -> Result<(Expr, usize), String> {
        let name = keyword(text);
        if name.is_empty() {
            return Err("missing fetch method".into());
        }
        let (args, n) =
            arg_list(&text[name.len()..]).map_err(|e| format!("fetch method '{name}' : {e}"))?;
        let (fetch, out, multi) = Fetch::build(name, &args, n > 0, env)?;
        if let Some(phase) = env.phase {
            let src = fetch.source();
            if !src.available(phase) {
                return Err(format!(
                    "sample fetch <{}> may not be reliably used here because it needs '{}' which is not available here",
                    &text[..name.len() + n],
                    src.name()
                ));
            }
        }
        let mut e = Expr {
            fetch,
            convs: Vec::new(),
            out,
            multi,
            text: String::new(),
        };
        let used = e.parse_convs(text, name.len() + n, env)?;
        e.text = text[..used].to_string();
        Ok((e, used))
    }

    /// Converters after `pos` (`,conv(args),conv2`); returns where they end.
    pub fn parse_convs(
        &mut self,
        text: &str,
        mut pos: usize,
        env: &mut Env<'_>,
    ) -> Result<usize, String> {
        let b = text.as_bytes();
        let mut last: Option<String> = None;
        loop {
            if pos >= b.len() || b[pos] != b',' {
                return Ok(pos);
            }
            while pos < b.len() && b[pos] == b',' {
                pos += 1;
            }
            let name = keyword(&text[pos..]);
            if name.is_empty() {
                if pos >= b.len() {
                    return Ok(pos);
                }
                return Err(match &last {
                    Some(c) => format!("missing comma after converter '{c}'"),
                    None => "missing converter after ','".to_string(),
                });
            }
            pos += name.len();
            let (args, n) = arg_list(&text[pos..])
                .map_err(|e| format!("invalid args in converter '{name}' : {e}"))?;
            pos += n;
            let (conv, out) = Conv::build(name, &args, self.out, env)?;
            self.convs.push(conv);
            self.out = out;
            last = Some(name.to_string());
        }
    }

    /// A constant string expression (for values known at load).
    pub fn constant(text: &str) -> Expr {
        Expr {
            fetch: Fetch::Str(text.as_bytes().into()),
            convs: Vec::new(),
            out: Type::Str,
            multi: false,
            text: format!("str({text})"),
        }
    }

    /// Evaluates to one sample (a multi-valued fetch gives its last occurrence, as
    /// HAProxy does outside ACLs).
    pub fn eval<'a>(&'a self, ctx: &Ctx<'a>, s: &mut Scratch) -> Option<Smp<'a>> {
        let smp = self.fetch.eval(ctx, s, None)?;
        self.convert(smp, ctx, s)
    }

    /// The `n`th value of a multi-valued fetch, converted (ACL iteration).
    pub fn eval_nth<'a>(&'a self, ctx: &Ctx<'a>, s: &mut Scratch, n: usize) -> Option<Smp<'a>> {
        let smp = self.fetch.eval(ctx, s, Some(n))?;
        self.convert(smp, ctx, s)
    }

    fn convert<'a>(&'a self, mut smp: Smp<'a>, ctx: &Ctx<'a>, s: &mut Scratch) -> Option<Smp<'a>> {
        for c in &self.convs {
            let input = smp.cast(c.input(), s)?;
            smp = c.eval(input, ctx, s)?;
        }
        Some(smp)
    }

    /// Evaluates and appends the string form to `out` (false: no sample).
    pub fn write_str(&self, ctx: &Ctx<'_>, s: &mut Scratch, out: &mut Vec<u8>) -> bool {
        match self.eval(ctx, s) {
            Some(smp) => {
                smp.write_str(&s.cur, out);
                true
            }
            None => false,
        }
    }
}

/// A sample whose bytes were copied into `s.cur` so that it no longer borrows
/// anything (before the caller mutates what it borrowed from).
pub fn detach<'x>(smp: Smp<'_>, s: &mut Scratch) -> Smp<'x> {
    match smp {
        Smp::Str(Data::Ref(r)) => {
            s.tmp.clear();
            s.tmp.extend_from_slice(r);
            s.swap();
            Smp::Str(Data::Buf)
        }
        Smp::Bin(Data::Ref(r)) => {
            s.tmp.clear();
            s.tmp.extend_from_slice(r);
            s.swap();
            Smp::Bin(Data::Buf)
        }
        Smp::Str(Data::Buf) => Smp::Str(Data::Buf),
        Smp::Bin(Data::Buf) => Smp::Bin(Data::Buf),
        Smp::Bool(b) => Smp::Bool(b),
        Smp::Int(i) => Smp::Int(i),
        Smp::Ip(a) => Smp::Ip(a),
    }
}

/// An integer argument (`read_int64` must use the whole text).
pub fn int_arg(what: &str, text: &str) -> Result<i64, String> {
    let t = text.trim();
    let ok = !t.is_empty()
        && t.strip_prefix(['-', '+'])
            .unwrap_or(t)
            .bytes()
            .all(|c| c.is_ascii_digit());
    if !ok {
        return Err(format!("{what}: '{text}' is not an integer"));
    }
    Ok(super::sample::read_int64(t.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_lists() {
        let cases: &[(&str, &[&str], usize)] = &[
            ("", &[], 0),
            ("(a)", &["a"], 3),
            ("(a,b)rest", &["a", "b"], 5),
            ("()", &[""], 2),
            ("('a,b',\"c)d\")", &["a,b", "c)d"], 13),
            ("(a\\,b)", &["a\\", "b"], 6),
            ("(\\'x\\')", &["'x'"], 7),
            ("(a\\nb)", &["a\nb"], 6),
            ("(,)", &["", ""], 3),
        ];
        for (text, args, used) in cases {
            let (a, n) = arg_list(text).unwrap();
            assert_eq!(a, *args, "{text}");
            assert_eq!(n, *used, "{text}");
        }
        for bad in ["(a", "('a)", "(a,b"] {
            assert!(arg_list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keywords() {
        assert_eq!(keyword("req.hdr(host),lower"), "req.hdr");
        assert_eq!(keyword("base32+src"), "base32+src");
        assert_eq!(keyword("%[x"), "");
    }
}
