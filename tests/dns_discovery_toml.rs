//! DNS service discovery in TOML: `[resolvers.NAME]` tables and server entries with
//! `resolvers`, `init_addr`, `resolve_prefer` and `slots` (a template). The real
//! binary against the loopback DNS server of `common::dns`: slots fill from A and SRV
//! answers and follow their changes as haproxy.cfg's `server-template` does, the same
//! servers come out of both syntaxes, and mistakes are refused with their TOML path.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::dns::{DnsServer, Srv};
use common::haproxy::ringlb_cfg;
use common::traffic::backend_of;
use common::twins::server_slots;
use common::*;

const WAIT: Duration = Duration::from_secs(20);

/// A TOML config: stats socket `sock`, `[resolvers.dns]` asking `dns` often, a
/// frontend to backend `app` whose server entries are `servers`.
fn toml(sock: &Path, dns: &DnsServer, servers: &str) -> String {
    format!(
        r#"
[runtime]
shards = 2

[admin]
stats_socket = "{}"

[resolvers.dns]
nameservers = ["{}"]
resolve_retries = 2
timeout_resolve = "100ms"
timeout_retry = "300ms"
[resolvers.dns.hold]
valid = "200ms"

[frontend.web]
bind = "127.0.0.1:0"
default_backend = "app"

[backend.app]
{servers}
"#,
        sock.display(),
        dns.addr()
    )
}

/// (status, addr, weight) of every server of backend `app`, by name.
fn slots(sock: &Path) -> BTreeMap<String, (String, String, String)> {
    server_slots(sock, "app")
}

/// A template over A records: its slots fill, empty and fill again as the name's
/// addresses change, each slot keeping its address while it stays; traffic follows.
#[test]
fn a_template_follows_a_records() {
    let bs = TestBackend::start_on_one_port(&["b2", "b3"], &["127.0.0.2", "127.0.0.3"]);
    let port = bs[0].addr().port();
    let dns = DnsServer::start();
    dns.set("pool.test", &["127.0.0.2"]);
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let servers = format!(
        r#"[[backend.app.server]]
name = "srv"
slots = 3
addr = "pool.test:{port}"
resolvers = "dns"
resolve_prefer = "ipv4"
init_addr = ["none"]
check = false
"#
    );
    let lb = RingLb::start(&toml(&sock, &dns, &servers));
    wait_for("one slot filled", WAIT, || {
        slots(&sock)["srv1"].0 == "no check"
    });
    let s = slots(&sock);
    assert_eq!(s.len(), 3, "{s:?}");
    assert_eq!(s["srv1"].1, format!("127.0.0.2:{port}"));
    assert_eq!(s["srv2"].0, "MAINT (resolution)");
    for _ in 0..6 {
        let r = http_get(lb.addr("web"), "/");
        assert_eq!((r.status, backend_of(&r)), (200, "b2".to_string()));
    }

    dns.set("pool.test", &["127.0.0.2", "127.0.0.3"]);
    wait_for("two slots filled", WAIT, || {
        slots(&sock).values().filter(|v| v.0 == "no check").count() == 2
    });
    assert_eq!(
        slots(&sock)["srv1"].1,
        format!("127.0.0.2:{port}"),
        "srv1 moved"
    );
    let mut seen = BTreeMap::new();
    for _ in 0..20 {
        let r = http_get(lb.addr("web"), "/");
        assert_eq!(r.status, 200);
        *seen.entry(backend_of(&r)).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "{seen:?}");

    dns.set("pool.test", &["127.0.0.3"]);
    wait_for("srv1 emptied", WAIT, || {
        slots(&sock)["srv1"].0 == "MAINT (resolution)"
    });
    for _ in 0..6 {
        let r = http_get(lb.addr("web"), "/");
        assert_eq!((r.status, backend_of(&r)), (200, "b3".to_string()));
    }
}

/// SRV answers give a TOML template's slots their ports and weights, and the same
/// servers as haproxy.cfg's `server-template` on the same DNS server.
#[test]
fn srv_slots_match_haproxy_cfg_server_template() {
    let (b1, b2) = (TestBackend::start("b1"), TestBackend::start("b2"));
    let dns = DnsServer::start();
    let rec = |port: u16, weight: u16, target: &str| Srv {
        port,
        weight,
        target: target.into(),
        ips: vec!["127.0.0.1".parse().unwrap()],
    };
    dns.set_srv(
        "_http._tcp.svc.test",
        vec![
            rec(b1.addr().port(), 256, "a.svc.test"),
            rec(b2.addr().port(), 512, "b.svc.test"),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("toml.sock");
    let servers = r#"[[backend.app.server]]
name = "srv"
slots = "1-3"
addr = "_http._tcp.svc.test"
resolvers = "dns"
init_addr = ["none"]
check = false
"#;
    let lb = RingLb::start(&toml(&sock, &dns, servers));
    wait_for("two slots from SRV", WAIT, || {
        slots(&sock).values().filter(|v| v.0 == "no check").count() == 2
    });
    let a = slots(&sock);
    let by_addr: BTreeMap<String, String> =
        a.values().map(|v| (v.1.clone(), v.2.clone())).collect();
    assert_eq!(by_addr[&b1.addr().to_string()], "1");
    assert_eq!(by_addr[&b2.addr().to_string()], "2");
    for _ in 0..10 {
        assert_eq!(http_get(lb.addr("web"), "/").status, 200);
    }

    // haproxy.cfg, the same resolver settings and template.
    let hsock = dir.path().join("cfg.sock");
    let cfg = format!(
        "global\n    stats socket \"{}\" mode 600 level admin\n\
         resolvers dns\n    nameserver ns1 {}\n    timeout resolve 100ms\n    timeout retry 300ms\n    resolve_retries 2\n    hold valid 200ms\n\
         defaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n\
         frontend web\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    server-template srv 1-3 _http._tcp.svc.test resolvers dns init-addr none\n",
        hsock.display(),
        dns.addr()
    );
    let _h = ringlb_cfg(&cfg);
    wait_for("the same slots from haproxy.cfg", WAIT, || {
        slots(&hsock).values().filter(|v| v.0 == "no check").count() == 2
    });
    let sorted = |m: BTreeMap<String, (String, String, String)>| {
        let mut v: Vec<_> = m.into_values().collect();
        v.sort();
        v
    };
    assert_eq!(sorted(slots(&sock)), sorted(slots(&hsock)));
}

/// A named (not templated) server with `resolvers` takes the address DNS gives and
/// traffic follows it (its `init_addr` start is not observed here: DNS answers within
/// 100 ms; a start whose methods all fail is refused in the test below).
#[test]
fn a_named_server_follows_dns() {
    let bs = TestBackend::start_on_one_port(&["b1", "b2"], &["127.0.0.1", "127.0.0.2"]);
    let port = bs[0].addr().port();
    let dns = DnsServer::start();
    dns.set("localhost", &["127.0.0.2"]);
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    // DNS answers after the first `hold valid`; until then, what libc gave.
    let servers = format!(
        r#"[[backend.app.server]]
name = "api"
addr = "localhost:{port}"
resolvers = "dns"
resolve_prefer = "ipv4"
init_addr = ["libc"]
check = false
"#
    );
    let lb = RingLb::start(&toml(&sock, &dns, &servers));
    wait_for("the address DNS gives", WAIT, || {
        slots(&sock)["api"].1 == format!("127.0.0.2:{port}")
    });
    let r = http_get(lb.addr("web"), "/");
    assert_eq!((r.status, backend_of(&r)), (200, "b2".to_string()));
}

#[test]
fn discovery_mistakes_are_refused_with_their_path() {
    let base = r#"
[frontend.web]
bind = "127.0.0.1:0"
default_backend = "app"
"#;
    let cases = [
        (
            "[backend.app]\n[[backend.app.server]]\naddr = \"a.test:80\"\nresolvers = \"nope\"\n",
            "backend.app.server[0].resolvers: no [resolvers.nope] table",
        ),
        (
            "[resolvers.dns]\nnameservers = [\"not-an-ip\"]\n[backend.app]\n[[backend.app.server]]\naddr = \"127.0.0.1:80\"\n",
            "resolvers.dns.nameservers[0]: invalid address \"not-an-ip\"",
        ),
        (
            "[resolvers.dns]\n[backend.app]\n[[backend.app.server]]\naddr = \"127.0.0.1:80\"\n",
            "resolvers.dns: no nameserver",
        ),
        (
            "[resolvers.dns]\nnameservers = [\"127.0.0.1:53\"]\n[backend.app]\n[[backend.app.server]]\nname = \"s\"\nslots = \"5-2\"\naddr = \"a.test:80\"\nresolvers = \"dns\"\n",
            "backend.app.server[0].slots: expected a number of slots",
        ),
        (
            "[resolvers.dns]\nnameservers = [\"127.0.0.1:53\"]\n[backend.app]\n[[backend.app.server]]\nslots = 2\naddr = \"a.test:80\"\nresolvers = \"dns\"\ninit_addr = [\"none\"]\n",
            "backend.app.server[0].name: a template (`slots`) needs a name",
        ),
        (
            "[resolvers.dns]\nnameservers = [\"127.0.0.1:53\"]\n[backend.app]\n[[backend.app.server]]\naddr = \"a.test:80\"\nresolvers = \"dns\"\ninit_addr = [\"bogus\"]\n",
            "backend.app.server[0].init_addr[0]: 'init-addr': unknown method 'bogus'",
        ),
        (
            "[resolvers.dns]\nnameservers = [\"127.0.0.1:53\"]\n[backend.app]\n[[backend.app.server]]\naddr = \"no-such-host.invalid:80\"\nresolvers = \"dns\"\ninit_addr = [\"libc\"]\n",
            "backend.app.server[0].addr: could not resolve \"no-such-host.invalid\"",
        ),
        (
            "[resolvers.dns]\nnameservers = [\"127.0.0.1:53\"]\n[backend.app]\n[[backend.app.server]]\naddr = \"a.test:80\"\nresolvers = \"dns\"\nresolve_prefer = \"ipv5\"\n",
            "backend.app.server[0].resolve_prefer: expected \"ipv4\" or \"ipv6\"",
        ),
    ];
    for (text, want) in cases {
        let out = check_config(&format!("{base}{text}"));
        assert_eq!(out.code(), Some(1), "{text}\n{}", out.stderr);
        assert!(
            out.stderr.contains(want),
            "{text}\nwant {want:?} in:\n{}",
            out.stderr
        );
    }
}
