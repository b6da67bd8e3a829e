//! Differential table tests of the rule language: HAProxy 2.6 and ringlb run the same
//! haproxy.cfg (`common::twins`) whose frontend answers each path with a sample
//! expression (`http-request return ... lf-string "%[EXPR]"`) or with whether an ACL
//! matched, for one request carrying a fixed set of headers, and must answer alike.
//! Every fetch and converter ringlb has that gives the same value on both sides (not
//! `rand`, `date`, ports, process ids) is in `EXPRS`; every match method, flag and
//! predefined ACL in `ACLS`.

use crate::common;

use std::io::Write;

use common::twins::{Srv, Twins};
use common::HttpClient;

/// The headers of every request (the path chooses the expression).
const HEADERS: &str = "Host: WWW.Example.com:8080\r\nX-List: a, \"b,c\", d\r\nx-list: e\r\nCookie: s=1; t=two\r\nCookie: s=3\r\nX-Num: 42abc\r\nX-Neg: -7\r\nX-Ip: 10.1.2.3:8000\r\nX-Enc: a%20b+c%2Fd\r\nX-B64: aGVsbG8=\r\nX-Sp:   pad  \r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nX-Json: a\"b\\c/\r\n";

/// Sample expressions; `MAP`, `IPMAP`, `INTMAP`, `VMAP` and `PAT` are replaced by the
/// files the test writes.
const EXPRS: &[&str] = &[
    "src",
    "dst",
    "method",
    "path",
    "query",
    "url",
    "pathq",
    "base",
    "base32",
    "url_param(x)",
    "urlp(y)",
    "urlp(z,;)",
    "urlp_val(n)",
    "req.ver",
    "req.hdr(host)",
    "req.hdr(x-list)",
    "req.hdr(x-list,1)",
    "req.hdr(x-list,2)",
    "req.hdr(x-list,-2)",
    "req.fhdr(x-list)",
    "req.fhdr(x-list,1)",
    "req.hdr_cnt(x-list)",
    "req.fhdr_cnt(x-list)",
    "req.hdr_cnt(nope)",
    "hdr(host)",
    "hdr(user-agent)",
    "req.fhdr(user-agent)",
    "req.hdr_val(x-num)",
    "req.hdr_val(x-neg)",
    "req.hdr_ip(x-ip)",
    "req.cook(s)",
    "req.cook(t)",
    "cook(s)",
    "req.cook_cnt(s)",
    "req.cook_val(s)",
    "req.hdr(host),lower",
    "req.hdr(host),upper",
    "req.hdr(host),base64",
    "req.hdr(x-b64),b64dec",
    "req.hdr(host),hex",
    "req.hdr(x-json),json",
    "req.hdr(x-enc),url_dec",
    "req.hdr(x-enc),url_dec(1)",
    "req.hdr(host),regsub(\\.,_,g)",
    "req.hdr(host),regsub(example,EX)",
    "req.hdr(host),regsub('([a-z]+)\\.([a-z]+)',\\2-\\1,i)",
    "req.hdr(user-agent),field(2,\\ )",
    "req.hdr(user-agent),field(-1,\\ )",
    "req.hdr(user-agent),word(2,/;)",
    "req.hdr(user-agent),word(-1,' (;',0)",
    "req.hdr(host),bytes(4,7)",
    "req.hdr(host),bytes(4)",
    "req.hdr(host),length",
    "req.hdr(host),concat(-,,-end)",
    "str(abc),concat(<,txn.v,>)",
    "req.hdr_val(x-num),add(8)",
    "req.hdr_val(x-num),sub(50)",
    "req.hdr_val(x-num),mul(-3)",
    "req.hdr_val(x-num),div(5)",
    "req.hdr_val(x-num),div(0)",
    "req.hdr_val(x-num),mod(5)",
    "req.hdr_val(x-num),and(15)",
    "req.hdr_val(x-num),or(1)",
    "req.hdr_val(x-num),xor(255)",
    "req.hdr_val(x-num),neg",
    "req.hdr_val(x-num),cpl",
    "req.hdr_val(x-num),bool",
    "req.hdr_val(x-num),not",
    "req.hdr_val(x-num),odd",
    "req.hdr_val(x-num),even",
    "req.hdr_val(x-num),add(txn.n)",
    "src,ipmask(24)",
    "src,ipmask(255.255.0.0)",
    "req.hdr(x-sp),ltrim(\\ )",
    "req.hdr(x-sp),rtrim(\\ )",
    "req.hdr(host),crc32",
    "req.hdr(host),crc32(1)",
    "req.hdr(host),crc32c",
    "req.hdr(host),djb2",
    "req.hdr(host),sdbm",
    "req.hdr(host),sdbm(1)",
    "req.hdr(host),wt6",
    "req.hdr(host),xxh3",
    "int(1700000000),http_date",
    "int(1700000000123),http_date(0,ms)",
    "int(1700000000),utime(%Y-%m-%d\\ %H:%M:%S)",
    "str(abc),ub64enc",
    "str(YWJj),b64dec",
    "str(ff),hex2i",
    "bin(414243),hex",
    "int(1),hex",
    "int(-2),hex",
    "bool(1),iif(yes,no)",
    "int(0),iif(yes,no)",
    "str(a),strcmp(txn.v)",
    "int(5)",
    "str(plain)",
    "ipv4(10.0.0.1)",
    "ipv6(::1)",
    "always_true",
    "always_false",
    "var(txn.v)",
    "var(txn.n)",
    "var(txn.missing,def)",
    "var(sess.s)",
    "var(txn.v),upper",
    "fe_name",
    "nbproc",
    "req.hdr(host),map_str(MAP,none)",
    "req.hdr(host),lower,map_str(MAP,none)",
    "path,map_beg(MAP,none)",
    "path,map_reg(MAP,none)",
    "req.hdr(host),lower,map_dom(MAP,none)",
    "path,map_end(MAP,none)",
    "path,map_sub(MAP,none)",
    "path,map_dir(MAP,none)",
    "src,map_ip(IPMAP,none)",
    "req.hdr_val(x-num),map_int(INTMAP,none)",
    "req.hdr(host),lower,map_str_int(VMAP,0)",
    "req.hdr(host),map_str_int(VMAP,-1),add(1)",
    "req.hdr(host),lower,map(MAP)",
    "http_first_req",
    "req.hdr(x-list),json(utf8)",
    "capture.req.method",
    "capture.req.uri",
    "capture.req.ver",
    "capture.req.hdr(0)",
    "req.hdr(host),host_only",
    "req.hdr(host),port_only",
    "req.hdr_names",
    "req.hdr_names(:)",
    "url_port",
    "url_ip",
    "str(x),add_item(-,txn.v)",
    "str(x),add_item(-,,end)",
    "bin(0102ff),be2dec(:,1)",
    "bin(01020304),be2dec(-,2)",
    "bin(0102ff),be2hex(:,1)",
    "bin(0102ff),be2hex",
    "str(ab),cut_crlf",
    "str(YWJj),ub64dec",
    "req.hdr(x-enc),url_dec,url_enc",
    "meth(GET)",
    "fe_id",
    "nbsrv(app)",
    "srv_is_up(app/s1)",
    "be_conn(app)",
    "srv_conn(app/s1)",
    "queue(app)",
    "avg_queue(app)",
    "fe_conn",
    "stopping",
    "hostname",
    "str(app),nbsrv",
    "req.hdr(x-num),bytes(1,2)",
    "req.hdr(x-sp),ltrim(\\ ),rtrim(\\ )",
];

/// ACL tests (criterion, flags, patterns): the answer is whether they match.
const ACLS: &[&str] = &[
    "path_beg /e",
    "path_beg /x",
    "path_end 0",
    "path_sub a",
    "path /a0",
    "path_len 3",
    "path_len 10:",
    "path_reg ^/a[0-9]+$",
    "path_dir a0",
    "path_dom a0",
    "path_dir /",
    "hdr_dom(host) .",
    "url_beg /a",
    "url_sub x=1",
    "url_end two",
    "url_reg \\?x=",
    "urlp(x) 1",
    "urlp(y) -i TWO",
    "base_beg WWW.Example.com",
    "base_sub -i example",
    "hdr(host) www.example.com:8080",
    "hdr(host) -i www.example.com:8080",
    "hdr_beg(host) -i www.",
    "hdr_end(host) :8080",
    "hdr_sub(host) -i EXAMPLE",
    "hdr_dom(host) -i example.com",
    "hdr_dom(host) -i ample.com",
    "hdr_reg(host) ^WWW\\.",
    "hdr_len(host) 20",
    "hdr_dir(user-agent) 5.0",
    "hdr(x-list) b",
    "hdr(x-list) \"b,c\"",
    "hdr(x-list) e",
    "req.hdr(x-list,1) a",
    "req.fhdr(x-list) e",
    "hdr_cnt(x-list) 4",
    "hdr_cnt(x-list) gt 3",
    "hdr_cnt(x-list) lt 2",
    "req.hdr_cnt(x-list) ge 4",
    "req.hdr_cnt(x-list) le 3",
    "req.hdr_cnt(x-list) 3:5",
    "req.hdr_val(x-num) 42",
    "req.hdr_val(x-neg) lt 0",
    "req.hdr_ip(x-ip) 10.1.0.0/16",
    "req.hdr(x-none) -m found",
    "req.hdr(x-num) -m found",
    "req.hdr(x-num) -m int 42",
    "req.hdr(x-num) -m len 5",
    "req.hdr(x-num) -m beg 42",
    "req.hdr(x-num) -m bool",
    "req.hdr(x-neg) -m int -- -7",
    "req.hdr(host) -m str -i -f PAT",
    "req.hdr(host),lower -m str -f PAT",
    "req.hdr(host),lower -m dom -f PAT",
    "req.hdr(host),lower -m str -M -f MAP",
    "req.hdr(host),lower -m reg www\\.[a-z]+\\.com",
    "req.hdr(host),lower,map_str(MAP,none) -m str none",
    "req.hdr(host),lower,map_str(MAP) -m found",
    "cook(s) 1",
    "cook(s) 3",
    "cook(t) -m beg tw",
    "cook_cnt(s) 2",
    "req.cook(s) -m found",
    "method GET",
    "method get",
    "method -i get",
    "method POST PUT",
    "src 127.0.0.1",
    "src 127.0.0.0/8",
    "src 127.1",
    "src 10.0.0.0/8",
    "src ::ffff:127.0.0.1",
    "src -f IPPAT",
    "src -M -f IPMAP",
    "dst 127.0.0.1",
    "req.ver 1.1",
    "req.ver 1.0",
    "var(txn.v) -m str a",
    "var(txn.v) -m found",
    "var(txn.missing) -m found",
    "var(txn.n) -m int 12",
    "var(txn.n) -m int gt 10",
    "var(txn.n),add(1) 13",
    "str(abc) -m sub b",
    "int(3),bool -m bool",
    "always_false",
    "always_true",
    "bin(414243) -m bin 414243",
    "str(AbC),lower abc",
    "str(f1_f2),field(2,_) f2",
    "http_first_req",
    "fe_name web",
];

/// Predefined ACLs (manual 7.4) used alone.
const PREDEFINED: &[&str] = &[
    "TRUE",
    "FALSE",
    "HTTP",
    "HTTP_1.0",
    "HTTP_1.1",
    "HTTP_CONTENT",
    "HTTP_URL_ABS",
    "HTTP_URL_SLASH",
    "HTTP_URL_STAR",
    "LOCALHOST",
    "METH_CONNECT",
    "METH_DELETE",
    "METH_GET",
    "METH_HEAD",
    "METH_OPTIONS",
    "METH_POST",
    "METH_PUT",
    "METH_TRACE",
];

/// The map and pattern files: (dir, [(placeholder, path)]).
fn files() -> (tempfile::TempDir, Vec<(&'static str, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::File::create(&p)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        p.display().to_string()
    };
    let files = vec![
        (
            "IPMAP",
            write("ip.map", "127.0.0.0/8 lo\n127.0.0.1 exact-lo\n10.0.0.0/8 ten\n"),
        ),
        ("INTMAP", write("int.map", "42 forty-two\n1 one\n")),
        (
            "VMAP",
            write("v.map", "www.example.com:8080 7\nexample.com:8080 9\n"),
        ),
        (
            "MAP",
            write(
                "m.map",
                "# a map\nwww.example.com:8080 exact value\nexample.com:8080 domain\n/a host-a\n/e prefix-e\n/e1 prefix-e1\n^/e[0-9]+$ reg-e\n0 end-0\n  www.other.com other\n1 sub-1\n",
            ),
        ),
        ("IPPAT", write("ip.lst", "# nets\n10.0.0.0/8\n127.0.0.0/8\n")),
        (
            "PAT",
            write(
                "p.lst",
                "# patterns\nwww.example.com:8080\n\n127.0.0.0/8\nexample.com\n",
            ),
        ),
    ];
    (dir, files)
}

fn subst(text: &str, files: &[(&str, String)]) -> String {
    let mut t = text.to_string();
    for (k, v) in files {
        t = t.replace(k, v);
    }
    t
}

fn config(files: &[(&str, String)]) -> String {
    let mut rules = String::new();
    rules.push_str("    declare capture request len 10\n");
    rules.push_str("    http-request capture req.hdr(host) id 0\n");
    rules.push_str("    http-request set-var(txn.v) str(a)\n");
    rules.push_str("    http-request set-var(txn.n) int(12)\n");
    rules.push_str("    http-request set-var(sess.s) str(sess)\n");
    for (i, e) in EXPRS.iter().enumerate() {
        let e = subst(e, files);
        rules.push_str(&format!(
            "    http-request return status 200 content-type text/plain lf-string \"[%[{}]]\" if {{ path /e{i} }}\n",
            e.replace('"', "\\\"")
        ));
    }
    for (i, a) in ACLS.iter().enumerate() {
        let a = subst(a, files);
        rules.push_str(&format!(
            "    http-request return status 200 content-type text/plain string yes if {{ path /a{i} }} {{ {a} }}\n"
        ));
    }
    for (i, a) in PREDEFINED.iter().enumerate() {
        rules.push_str(&format!(
            "    http-request return status 200 content-type text/plain string yes if {{ path /p{i} }} {a}\n"
        ));
    }
    rules.push_str("    http-request return status 200 content-type text/plain string no\n");
    format!(
        "frontend web\n    bind \"127.0.0.1:${{PORT}}\"\n{rules}    default_backend app\n\nbackend app\n    server s1 \"${{S1}}\"\n"
    )
}

fn answer(s: &common::twins::Side, path: &str) -> (u16, String) {
    let mut c = HttpClient::connect(s.addr("web"));
    let r = c.request(format!(
        "GET {path}?x=1&y=two;z=3&n=17 HTTP/1.1\r\n{HEADERS}\r\n"
    ));
    (r.status, r.body_str())
}

#[test]
fn sample_fetches_and_converters_give_the_same_values() {
    let (_dir, files) = files();
    let t = Twins::start(
        &config(&files),
        &[("web", "PORT")],
        &[("S1", Srv::Up("s1"))],
    );
    let paths: Vec<(String, &str)> = EXPRS
        .iter()
        .enumerate()
        .map(|(i, e)| (format!("/e{i}"), *e))
        .collect();
    t.same_all(&paths, |s, (p, _)| answer(s, p));
}

#[test]
fn acl_match_methods_flags_and_files_agree() {
    let (_dir, files) = files();
    let t = Twins::start(
        &config(&files),
        &[("web", "PORT")],
        &[("S1", Srv::Up("s1"))],
    );
    let paths: Vec<(String, &str)> = ACLS
        .iter()
        .enumerate()
        .map(|(i, e)| (format!("/a{i}"), *e))
        .chain(
            PREDEFINED
                .iter()
                .enumerate()
                .map(|(i, e)| (format!("/p{i}"), *e)),
        )
        .collect();
    t.same_all(&paths, |s, (p, _)| answer(s, p));
}
