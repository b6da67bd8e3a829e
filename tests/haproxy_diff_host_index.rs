//! Differential test of routing through the host index (`src/route_index.rs`): a
//! table of `use_backend ... if { hdr(host) ... }` rules large enough to be indexed,
//! mixed with rules that are not (a path, `hdr_beg`, an AND, a converter, an
//! occurrence, `fhdr`, a negation), run by Debian's HAProxy 2.6 and ringlb on the same
//! haproxy.cfg; every request must reach the same server with the same status: the
//! index keeps HAProxy's first match. And `use_backend %[...]`, whose backend is
//! found by name.

use crate::common;

use common::twins::{ask, get, Srv, Twins};

/// Ordering cases, then 12 filler rules (two backends) so that the table is indexed.
const RULES: &str = r#"
frontend web
    bind "127.0.0.1:${PORT}"
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
    use_backend never if { hdr(host) -i f3.example }
    use_backend neg unless { hdr(host) -i x.example }
    use_backend never if { hdr(host) -i after.example }
    default_backend dflt
"#;

const BACKENDS: &[&str] = &[
    "first", "a", "b", "never", "beg", "c", "d", "e_path", "e", "named", "two", "conv", "occ",
    "port", "full", "neg", "dflt", "fill0", "fill1",
];

#[test]
fn indexed_host_rules_route_as_haproxy() {
    let mut fill = String::new();
    for i in 0..12 {
        fill += &format!(
            "    use_backend fill{} if {{ hdr(host) -i f{i}.example }}\n",
            i % 2
        );
    }
    let mut body = RULES.replace("@FILL@\n", &fill);
    let vars: Vec<String> = BACKENDS
        .iter()
        .map(|b| format!("SRV_{}", b.to_uppercase()))
        .collect();
    for (b, v) in BACKENDS.iter().zip(&vars) {
        body += &format!("\nbackend {b}\n    server {b}1 \"${{{v}}}\"\n");
    }
    let names: Vec<String> = BACKENDS.iter().map(|b| format!("{b}1")).collect();
    let servers: Vec<(&str, Srv)> = vars
        .iter()
        .zip(&names)
        .map(|(v, n)| (v.as_str(), Srv::Up(Box::leak(n.clone().into_boxed_str()))))
        .collect();
    let t = Twins::start(&body, &[("web", "PORT")], &servers);
    let long = format!("{}.example", "l".repeat(300));
    let requests: Vec<String> = vec![
        get("a.example", "/"),
        get("A.Example", "/"),
        get("B.example", "/"),
        get("b.example", "/"),
        get("a.example", "/first/x"),
        get("c.example", "/"),
        get("d2.example", "/"),
        get("D3.example", "/"),
        get("d3.example", "/"),
        get("e.example", "/e/1"),
        get("e.example", "/"),
        get("named.example", "/"),
        get("TWO2.example", "/"),
        get("two1.example", "/"),
        get("Z.example", "/"),
        get("occ.example", "/"),
        get("port.example:8080", "/"),
        get("port.example", "/"),
        get("a.example:80", "/"),
        get("full.example", "/"),
        get("f0.example", "/"),
        get("f3.example", "/"),
        get("F11.EXAMPLE", "/"),
        get("after.example", "/"),
        get("x.example", "/"),
        get(&long, "/"),
        // No Host (HTTP/1.1 without one is refused: README, stricter framing).
        "GET / HTTP/1.0\r\n\r\n".into(),
        "GET http://f5.example/ HTTP/1.1\r\nHost: f5.example\r\n\r\n".into(),
    ];
    t.same_all(&requests, |s, raw| ask(s.addr("web"), raw));
}

/// `use_backend %[req.hdr(host),lower,field(1,.)]` over 20 backends: the name table
/// finds the backend; a name that is none goes to the default, as in HAProxy.
#[test]
fn dynamic_backend_names_route_as_haproxy() {
    let mut body = String::from(
        r#"
frontend web
    bind "127.0.0.1:${PORT}"
    use_backend %[req.hdr(host),lower,field(1,.)] if { hdr(host) -m found }
    default_backend dflt

backend dflt
    server dflt1 "${DFLT}"
"#,
    );
    let names: Vec<String> = (0..20).map(|i| format!("h{i}")).collect();
    let vars: Vec<String> = (0..20).map(|i| format!("H{i}")).collect();
    let servers_named: Vec<String> = names.iter().map(|n| format!("{n}s")).collect();
    for (n, v) in names.iter().zip(&vars) {
        body += &format!("\nbackend {n}\n    server {n}s \"${{{v}}}\"\n");
    }
    let mut servers: Vec<(&str, Srv)> = vec![("DFLT", Srv::Up("dflt1"))];
    for (v, s) in vars.iter().zip(&servers_named) {
        servers.push((v.as_str(), Srv::Up(Box::leak(s.clone().into_boxed_str()))));
    }
    let t = Twins::start(&body, &[("web", "PORT")], &servers);
    let requests: Vec<String> = vec![
        get("h0.example", "/"),
        get("H19.example", "/"),
        get("h7", "/"),
        get("nope.example", "/"),
        "GET / HTTP/1.0\r\n\r\n".into(),
    ];
    t.same_all(&requests, |s, raw| ask(s.addr("web"), raw));
}

/// The runtime API changes an indexed test's patterns (`add acl`, `del acl` on its
/// file): the index's keys are the config's, so routing must follow the change as
/// HAProxy's does (that shard then evaluates the rules in order).
#[test]
fn acl_changes_at_run_time_reach_indexed_rules() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("special.acl");
    std::fs::write(&file, "special.example\n").unwrap();
    let file = file.display().to_string();
    let mut body = format!(
        "\nfrontend web\n    bind \"127.0.0.1:${{PORT}}\"\n    \
         use_backend special if {{ hdr(host) -i -f {file} }}\n"
    );
    for i in 0..12 {
        body += &format!(
            "    use_backend fill{} if {{ hdr(host) -i f{i}.example }}\n",
            i % 2
        );
    }
    body += "    default_backend dflt\n";
    for b in ["special", "fill0", "fill1", "dflt"] {
        body += &format!(
            "\nbackend {b}\n    server {b}1 \"${{SRV_{}}}\"\n",
            b.to_uppercase()
        );
    }
    let t = Twins::start(
        &body,
        &[("web", "PORT")],
        &[
            ("SRV_SPECIAL", Srv::Up("special1")),
            ("SRV_FILL0", Srv::Up("fill01")),
            ("SRV_FILL1", Srv::Up("fill11")),
            ("SRV_DFLT", Srv::Up("dflt1")),
        ],
    );
    let requests: Vec<String> = ["special.example", "f5.example", "new.example"]
        .iter()
        .map(|h| get(h, "/"))
        .collect();
    t.same_all(&requests, |s, raw| ask(s.addr("web"), raw));
    // An added host, and a host of a later indexed rule that rule 0 now takes.
    for cmd in [
        format!("add acl {file} new.example"),
        format!("add acl {file} F5.example"),
    ] {
        t.same(&cmd, |s| s.cli(&cmd));
    }
    let after_add = t.same("after add acl", |s| {
        requests
            .iter()
            .map(|r| ask(s.addr("web"), r))
            .collect::<Vec<_>>()
    });
    assert_eq!(
        after_add[2].1, "special1",
        "the added host routes to special"
    );
    assert_eq!(
        after_add[1].1, "special1",
        "rule 0 now takes f5.example first"
    );
    let cmd = format!("del acl {file} special.example");
    t.same(&cmd, |s| s.cli(&cmd));
    t.same_all(&requests, |s, raw| ask(s.addr("web"), raw));
}
