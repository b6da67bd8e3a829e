//! The rule language: any text parsed as a sample expression, a log-format string (for
//! a header or for a log line) or an ACL test gives the parsed value or an error, never
//! a panic; what parses is then evaluated against a request, a response and the input
//! itself as buffered bytes (the layer-6 fetches), again without a panic, and evaluates
//! to the same string twice (nothing random or time-based is accepted here).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringlb::rules::logformat::{LogFormat, Mode};
use ringlb::rules::{AclTest, Ctx, Env, Expr, Head, Names, Scratch, Txn};

const REQ: &[u8] = b"GET http://Ex.com:8080/a/b?x=1&y=two;z HTTP/1.1\r\nHost: Ex.com:8080\r\nCookie: s=1; t=2\r\nX-List: a, \"b,c\"\r\nx-list: d\r\nX-Num: -42\r\n\r\n";
const RES: &[u8] = b"HTTP/1.1 404 Not Found\r\nSet-Cookie: id=9; path=/\r\nContent-Length: 3\r\n\r\n";

fn time_based(text: &str) -> bool {
    ["rand", "date", "uuid", "utime", "ltime", "http_date", "%t", "%T", "%ms", "%pid", "pid"]
        .iter()
        .any(|w| text.contains(w))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    // Files and the environment stay out of reach.
    if text.contains("-f") || text.contains("map") || text.contains("-M") {
        return;
    }
    let mut vars = ringlb::rules::vars::Registry::default();
    let names = Names {
        backends: vec![("app".into(), vec!["s1".into()])],
        frontends: vec!["web".into()],
        tables: vec!["web".into()],
        userlists: Vec::new(),
    };
    let mut patterns = ringlb::rules::map::PatRefs::default();
    let mut env = Env {
        vars: &mut vars,
        names: &names,
        patterns: &mut patterns,
        env: &|_| None,
        table: Some(0),
        backend: Some(0),
        captures: (1, 1),
        phase: None,
    };
    let addr: std::net::SocketAddr = ([10, 1, 2, 3], 4567).into();
    let mut txn = Txn::default();
    txn.vars.reset_all(64);
    txn.reqline.extend_from_slice(b"GET /a/b?x=1 HTTP/1.1");
    let mut ctx = Ctx::new(addr, addr, &txn);
    ctx.req = Some(Head::new(REQ));
    ctx.res = Some(Head::new(RES));
    ctx.payload = Some(rest);
    let mut s = Scratch::new();
    let mut out = Vec::new();
    let deterministic = !time_based(text);
    match mode % 4 {
        0 => {
            if let Ok(e) = Expr::parse(text, &mut env) {
                let mut again = Vec::new();
                e.write_str(&ctx, &mut s, &mut out);
                e.write_str(&ctx, &mut s, &mut again);
                assert!(!deterministic || out == again, "{text}");
                for n in 0..4 {
                    let _ = e.eval_nth(&ctx, &mut s, n);
                }
            }
        }
        1 | 2 => {
            let m = if mode % 4 == 1 { Mode::Http } else { Mode::Log };
            if let Ok(f) = LogFormat::parse(text, m, &mut env) {
                let mut again = Vec::new();
                f.eval(&ctx, None, &mut s, &mut out);
                f.eval(&ctx, None, &mut s, &mut again);
                assert!(!deterministic || out == again, "{text}");
            }
        }
        _ => {
            let words: Vec<String> = text.split(' ').map(str::to_string).collect();
            if let Ok(t) = AclTest::parse(&words, &mut env) {
                let _ = t.eval(&ctx, &mut s);
                ctx.payload_final = false;
                let _ = t.eval(&ctx, &mut s);
            }
        }
    }
});
