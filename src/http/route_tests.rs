//! Table tests of routing with the host index (`crate::route_index`): a haproxy.cfg is
//! parsed, and for every request the backend the index picks is the one the ordered
//! evaluation of the same rules picks (the reference: the frontend without its
//! index), and is spelled out; the index answered itself where it can.

use super::*;
use crate::config::from_haproxy_str;
use crate::rules::{Ctx, Head, Txn};

/// Rule numbers in comments; `f0`..`f19` fill the table so that the index is built.
const CFG: &str = "\
defaults
    mode http
frontend web
    bind 127.0.0.1:0
    acl named hdr(host) -i named.example
    acl two hdr(host) -i two1.example
    acl two req.hdr(host) -m str -i two2.example
    use_backend first if { path_beg /first/ }
    use_backend a if { hdr(host) -i a.example }
    use_backend b if { hdr(host) B.example }
    use_backend never if { hdr(host) -i A.EXAMPLE }
    use_backend beg if { hdr_beg(host) -i c. }
    use_backend c if { hdr(host) -i c.example }
    use_backend d if { hdr(host) -i d.example d2.example } || { req.hdr(host) D3.example }
    use_backend e_path if { hdr(host) -i e.example } { path_beg /e/ }
    use_backend e if { hdr(host) -i e.example }
    use_backend named if named
    use_backend two if two
    use_backend conv if { hdr(host),lower -m str z.example }
    use_backend occ if { hdr(host,1) -i occ.example }
    use_backend port if { hdr(host) -m str -i port.example:8080 }
    use_backend full if { req.fhdr(host) -i full.example }
@FILL@
    use_backend late if { hdr(host) -i f3.example }
    use_backend neg unless { hdr(host) -i x.example }
    use_backend after if { hdr(host) -i after.example }
    default_backend dflt
@BACKENDS@";

const BACKENDS: &[&str] = &[
    "first", "a", "b", "never", "beg", "c", "d", "e_path", "e", "named", "two", "conv", "occ",
    "port", "full", "late", "neg", "after", "dflt",
];

fn config() -> Config {
    let mut fill = String::new();
    let mut backends = String::new();
    for i in 0..20 {
        fill += &format!("    use_backend f{i} if {{ hdr(host) -i f{i}.example }}\n");
        backends += &format!("backend f{i}\n    server s 127.0.0.1:1\n");
    }
    for b in BACKENDS {
        backends += &format!("backend {b}\n    server s 127.0.0.1:1\n");
    }
    let text = CFG
        .replace("@FILL@\n", &fill)
        .replace("@BACKENDS@", &backends);
    match from_haproxy_str(&text, &|_| None) {
        Ok((c, _)) => c,
        Err(e) => panic!("{e}"),
    }
}

/// The backend `fe` picks for `head`; `true` when the index decided.
fn pick(cfg: &Config, fe: &Frontend, head: &[u8]) -> (String, bool) {
    let txn = Txn::default();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], 1).into();
    let mut ctx = Ctx::new(addr, addr, &txn);
    ctx.req = Some(Head::new(head));
    let mut s = Scratch::default();
    let mut val = Vec::new();
    let decided = fe
        .route_index
        .as_deref()
        .is_some_and(|ix| ix.has_hosts() && indexed(ix, fe, &ctx, &mut s).is_ok());
    let b = route(fe, cfg, &ctx, &mut s, &mut val);
    let name = b.map_or("-".to_string(), |b| cfg.backends[b].name.clone());
    (name, decided)
}

fn req(path: &str, hosts: &[&str]) -> Vec<u8> {
    let mut r = format!("GET {path} HTTP/1.1\r\n");
    for h in hosts {
        r += &format!("Host: {h}\r\n");
    }
    r += "\r\n";
    r.into_bytes()
}

#[test]
fn which_rules_are_indexed() {
    let cfg = config();
    let ix = cfg.frontends[0].route_index.as_deref().expect("an index");
    // Not indexed: path_beg, hdr_beg, the AND, the converter, the occurrence, fhdr,
    // the negation.
    let rest: Vec<u32> = ix.rest_for_tests().to_vec();
    assert_eq!(rest, [0, 4, 7, 11, 12, 14, 36], "the rules left in order");
    assert_eq!(ix.sources().len(), 1, "one fetch: hdr(host)");
}

#[test]
fn the_index_picks_what_ordered_evaluation_picks() {
    let cfg = config();
    let fe = &cfg.frontends[0];
    let mut plain = fe.clone();
    plain.route_index = None;
    let long = format!("{}.example", "l".repeat(300));
    let cases: &[(&str, &[&str], &str, bool)] = &[
        // (path, Host headers, backend, the index decided)
        ("/", &["a.example"], "a", true),
        ("/", &["A.Example"], "a", true),
        // -i on both sides: the case-sensitive B.example does not fold.
        ("/", &["B.example"], "b", true),
        ("/", &["b.example"], "neg", true),
        // A non-indexed rule before everything.
        ("/first/x", &["a.example"], "first", true),
        // hdr_beg (not indexed) comes before the indexed c.example.
        ("/", &["c.example"], "beg", true),
        ("/", &["d2.example"], "d", true),
        ("/", &["D3.example"], "d", true),
        ("/", &["d3.example"], "neg", true),
        // The AND (not indexed) before the indexed same host.
        ("/e/1", &["e.example"], "e_path", true),
        ("/", &["e.example"], "e", true),
        ("/", &["named.example"], "named", true),
        ("/", &["TWO2.example"], "two", true),
        ("/", &["two1.example"], "two", true),
        // Not indexed, reached in order.
        ("/", &["Z.example"], "conv", true),
        ("/", &["occ.example"], "occ", true),
        // hdr(host) is the whole value: the port is part of it.
        ("/", &["port.example:8080"], "port", true),
        ("/", &["port.example"], "neg", true),
        ("/", &["full.example"], "full", true),
        // A filler; the same host named again later never wins.
        ("/", &["f3.example"], "f3", true),
        ("/", &["F19.EXAMPLE"], "f19", true),
        // After the negation: the negation holds first.
        ("/", &["after.example"], "neg", true),
        ("/", &["x.example"], "dflt", true),
        ("/", &[], "neg", true),
        // Every value of every Host header: the earliest rule wins.
        ("/", &["nomatch.example", "f7.example"], "f7", true),
        ("/", &["q.example, f2.example"], "f2", true),
        ("/", &["f9.example", "a.example"], "a", true),
        // Longer than the pattern list's lower-casing buffer: evaluated in order.
        ("/", &[&long], "neg", false),
    ];
    let mut wrong = Vec::new();
    for &(path, hosts, want, decided) in cases {
        let head = req(path, hosts);
        let (got, by_index) = pick(&cfg, fe, &head);
        let (reference, _) = pick(&cfg, &plain, &head);
        if got != reference || got != want || by_index != decided {
            wrong.push(format!(
                "{path} {hosts:?}: index {got} (decided: {by_index}), ordered {reference}, \
                 expected {want} (decided: {decided})"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn dynamic_names_use_the_name_table() {
    let mut text = String::from(
        "defaults\n    mode http\nfrontend web\n    bind 127.0.0.1:0\n    \
         use_backend %[req.hdr(host),lower,field(1,.)] if { hdr(host) -m found }\n    \
         default_backend dflt\nbackend dflt\n    server s 127.0.0.1:1\n",
    );
    for i in 0..40 {
        text += &format!("backend h{i}\n    server s 127.0.0.1:1\n");
    }
    let cfg = match from_haproxy_str(&text, &|_| None) {
        Ok((c, _)) => c,
        Err(e) => panic!("{e}"),
    };
    let fe = &cfg.frontends[0];
    let ix = fe.route_index.as_deref().expect("a name table");
    assert!(!ix.has_hosts());
    assert_eq!(ix.backend(b"h39"), Some(Some(40)));
    assert_eq!(pick(&cfg, fe, &req("/", &["H39.example"])).0, "h39");
    assert_eq!(pick(&cfg, fe, &req("/", &["h0.example"])).0, "h0");
    // A name that is no backend: the default, as HAProxy.
    assert_eq!(pick(&cfg, fe, &req("/", &["nope.example"])).0, "dflt");
    assert_eq!(pick(&cfg, fe, &req("/", &[])).0, "dflt");
}

#[test]
fn a_short_table_has_no_index() {
    let text = "defaults\n    mode http\nfrontend web\n    bind 127.0.0.1:0\n    \
                use_backend a if { hdr(host) -i a.example }\n    default_backend a\n\
                backend a\n    server s 127.0.0.1:1\n";
    let cfg = match from_haproxy_str(text, &|_| None) {
        Ok((c, _)) => c,
        Err(e) => panic!("{e}"),
    };
    assert!(cfg.frontends[0].route_index.is_none());
}

/// The index of `rules` followed by 10 indexed fillers (the index alone: which rules it
/// keys, what a host finds, which rules of the rest `first` evaluates).
fn index(rules: &str) -> RouteIndex {
    let mut text = String::from("defaults\n    mode http\nfrontend web\n    bind 127.0.0.1:0\n");
    text += rules;
    for i in 0..10 {
        text += &format!("    use_backend b if {{ hdr(host) -i f{i}.example }}\n");
    }
    text += "backend b\n    server s 127.0.0.1:1\n";
    let (cfg, _) = from_haproxy_str(&text, &|_| None).expect("valid");
    let ix = cfg.frontends[0].route_index.clone().expect("an index");
    (*ix).clone()
}

#[test]
fn first_evaluates_only_the_rest_before_the_hit() {
    let ix = index(
        "    use_backend b if { path_beg /x/ }\n    \
         use_backend b if { hdr(host) -i a.example }\n    \
         use_backend b if { hdr_sub(host) y }\n",
    );
    assert_eq!(ix.rest_for_tests(), [0, 2]);
    let src = &ix.sources()[0];
    assert_eq!(src.find(b"A.EXAMPLE"), Ok(Some(1)));
    assert_eq!(src.find(b"f9.example"), Ok(Some(12)));
    assert_eq!(src.find(b"nowhere"), Ok(None));
    assert_eq!(src.find(&[b'a'; 257]), Err(crate::route_index::Undecided));

    let mut seen = Vec::new();
    // Hit rule 1: only rule 0 is evaluated; it fails, the hit wins.
    let got = ix.first(Some(1), |i| {
        seen.push(i);
        false
    });
    assert_eq!((got, &seen[..]), (Some(1), &[0][..]));
    // Hit rule 12: rules 0 and 2 are evaluated, the first that holds wins.
    seen.clear();
    let got = ix.first(Some(12), |i| {
        seen.push(i);
        i == 2
    });
    assert_eq!((got, &seen[..]), (Some(2), &[0, 2][..]));
    // No hit: the whole rest, in order.
    seen.clear();
    let got = ix.first(None, |i| {
        seen.push(i);
        false
    });
    assert_eq!((got, &seen[..]), (None, &[0, 2][..]));
}

#[test]
fn case_sensitive_and_folded_keys_are_apart() {
    let ix = index(
        "    use_backend b if { hdr(host) Up.example }\n    \
         use_backend b if { hdr(host) -i up.example }\n",
    );
    let src = &ix.sources()[0];
    // Exact key first (rule 0), the folded one for any other case (rule 1).
    assert_eq!(src.find(b"Up.example"), Ok(Some(0)));
    assert_eq!(src.find(b"UP.example"), Ok(Some(1)));
    // A long value with only case-sensitive keys is still decided.
    let ix = index("");
    assert!(ix.rest_for_tests().is_empty());
}

/// TOML routes: a route with only a `host` is indexed (the host name without its
/// port, case-insensitive), one with a `path_prefix` too is not; the index picks what
/// the ordered evaluation picks.
#[test]
fn toml_host_routes_are_indexed() {
    let mut text = String::from(
        "[frontend.web]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"app\"\n\n\
         [[frontend.web.route]]\nhost = \"t3.example\"\npath_prefix = \"/p/\"\nbackend = \"path\"\n",
    );
    for i in 0..10 {
        text += &format!("\n[[frontend.web.route]]\nhost = \"t{i}.example\"\nbackend = \"b{i}\"\n");
    }
    for b in ["app", "path"]
        .into_iter()
        .map(String::from)
        .chain((0..10).map(|i| format!("b{i}")))
    {
        text += &format!("\n[backend.{b}]\n[[backend.{b}.server]]\naddr = \"127.0.0.1:1\"\n");
    }
    let cfg = match crate::config::from_toml_str(&text) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let fe = &cfg.frontends[0];
    let ix = fe.route_index.as_deref().expect("an index");
    assert_eq!(
        ix.rest_for_tests(),
        [0],
        "host and path prefix: not indexed"
    );
    let mut plain = fe.clone();
    plain.route_index = None;
    for (path, host, want) in [
        ("/", "t7.example", "b7"),
        ("/", "T7.Example:8080", "b7"),
        ("/p/x", "t3.example", "path"),
        ("/", "t3.example", "b3"),
        ("/", "nowhere.example", "app"),
    ] {
        let head = req(path, &[host]);
        let (got, decided) = pick(&cfg, fe, &head);
        let (reference, _) = pick(&cfg, &plain, &head);
        assert_eq!((got.as_str(), decided), (want, true), "{path} {host}");
        assert_eq!(got, reference, "{path} {host}");
    }
}
