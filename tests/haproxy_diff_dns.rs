//! Differential test of DNS service discovery: HAProxy 2.6 and ringlb run the same
//! haproxy.cfg, with a `server-template` and a plain server asking the same test DNS
//! server (`common::dns`); after each change of the records, `show stat` must show the
//! same addresses in the template's slots, the same number of slots in
//! `MAINT (resolution)`, the plain server in the same state, and on both the slot that
//! holds an address the answers keep has it still. (Which slot takes which new address
//! differs: HAProxy rotates its answer list as slots pick from it.)

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::dns::DnsServer;
use common::twins::{stat_rows, Side, Srv, Twins};

const WAIT: Duration = Duration::from_secs(20);

fn body(dns: &DnsServer) -> String {
    format!(
        r#"
resolvers dns
    nameserver ns1 {}
    timeout resolve 100ms
    timeout retry 300ms
    hold valid 200ms

frontend web
    bind "127.0.0.1:${{PORT}}"
    default_backend app

backend app
    server-template srv 3 pool.test:8080 resolvers dns init-addr none resolve-prefer ipv4
    server late late.test:8081 resolvers dns init-addr none resolve-prefer ipv4
"#,
        dns.addr()
    )
}

/// (status, addr) of each server of `app`; an address only while the server has one
/// (HAProxy keeps showing a slot's last address in maintenance).
fn view(s: &Side) -> BTreeMap<String, (String, String)> {
    stat_rows(&s.cli("show stat"))
        .into_iter()
        .filter(|r| r["pxname"] == "app" && r["svname"] != "BACKEND")
        .map(|r| {
            let up = r["status"] == "no check";
            let addr = if up { r["addr"].clone() } else { String::new() };
            (r["svname"].clone(), (r["status"].clone(), addr))
        })
        .collect()
}

/// The slots' addresses, whichever slot holds them, and the plain server's state.
fn summary(s: &Side) -> (Vec<String>, usize, (String, String)) {
    let v = view(s);
    let mut addrs: Vec<String> = v
        .iter()
        .filter(|(k, _)| k.starts_with("srv"))
        .filter(|(_, v)| !v.1.is_empty())
        .map(|(_, v)| v.1.clone())
        .collect();
    addrs.sort();
    let maint = v.values().filter(|v| v.0 == "MAINT (resolution)").count();
    (addrs, maint, v["late"].clone())
}

#[test]
fn template_slots_and_a_late_name_match_haproxy() {
    let dns = DnsServer::start();
    let t = Twins::start(&body(&dns), &[("web", "PORT")], &[]);
    // Nothing resolves yet: every server in MAINT (resolution) on both.
    let start = t.same("show stat before any record", summary);
    assert_eq!(start.1, 4);

    dns.set("pool.test", &["127.0.0.11", "127.0.0.12"]);
    t.wait_both("two slots filled", WAIT, |s| summary(s).0.len() == 2);
    let s = t.same("two records", summary);
    assert_eq!(s.0, ["127.0.0.11:8080", "127.0.0.12:8080"]);
    // Which slot holds 127.0.0.12, on each side.
    let holder = |s: &Side| {
        view(s)
            .into_iter()
            .find(|(_, v)| v.1 == "127.0.0.12:8080")
            .map(|(k, _)| k)
            .unwrap_or_default()
    };
    let (hx12, lb12) = t.both(holder);

    dns.set("pool.test", &["127.0.0.12"]);
    t.wait_both("one slot emptied", WAIT, |s| summary(s).0.len() == 1);
    t.same("one record", summary);
    assert_eq!(t.both(holder), (hx12.clone(), lb12.clone()));

    dns.set("pool.test", &["127.0.0.12", "127.0.0.13", "127.0.0.14"]);
    dns.set("late.test", &["127.0.0.21"]);
    t.wait_both("every slot and late filled", WAIT, |s| {
        let v = summary(s);
        v.0.len() == 3 && v.2 .0 == "no check"
    });
    let s = t.same("three records and late", summary);
    assert_eq!(s.2, ("no check".to_string(), "127.0.0.21:8081".to_string()));
    // The slot of 127.0.0.12 kept it through every change, on both.
    assert_eq!(t.both(holder), (hx12, lb12));
}

/// `set server B/S addr` answers as HAProxy 2.6 answers, and `show stat` shows the new
/// address on both.
#[test]
fn set_server_addr_answers_match_haproxy() {
    let dns = DnsServer::start();
    let body = format!(
        r#"
resolvers dns
    nameserver ns1 {}

frontend web
    bind "127.0.0.1:${{PORT}}"
    default_backend app

backend app
    server s1 "${{A}}"
"#,
        dns.addr()
    );
    let t = Twins::start(&body, &[("web", "PORT")], &[("A", Srv::Up("a"))]);
    for cmd in [
        "set server app/s1 addr 127.0.0.2",
        "set server app/s1 addr 127.0.0.2",
        "set server app/s1 addr bogus",
        "set server app/s1 addr",
        "set server app/s1 addr 127.0.0.3 port x",
        "set server app/nope addr 127.0.0.4",
        "set server nope/s1 addr 127.0.0.4",
        "show resolvers nope",
    ] {
        t.same(cmd, |s| s.cli(cmd));
    }
    t.same("the address's IP in show stat", |s| {
        let rows = stat_rows(&s.cli("show stat"));
        let r = rows.iter().find(|r| r["svname"] == "s1").unwrap();
        r["addr"].rsplit_once(':').unwrap().0.to_string()
    });
}

/// `set server B/S fqdn NAME` answers as HAProxy 2.6 answers, and the server then
/// follows the new name on both: its address is the new name's.
#[test]
fn set_server_fqdn_answers_and_follows_the_new_name_as_haproxy() {
    let dns = DnsServer::start();
    dns.set("old.test", &["127.0.0.31"]);
    dns.set("new.test", &["127.0.0.32"]);
    let body = format!(
        r#"
resolvers dns
    nameserver ns1 {}
    timeout resolve 100ms
    timeout retry 300ms
    hold valid 200ms

frontend web
    bind "127.0.0.1:${{PORT}}"
    default_backend app

backend app
    server s1 old.test:8080 resolvers dns init-addr none resolve-prefer ipv4
    server s2 "${{A}}"
"#,
        dns.addr()
    );
    let t = Twins::start(&body, &[("web", "PORT")], &[("A", Srv::Up("a"))]);
    let addr_of = |s: &Side| {
        let rows = stat_rows(&s.cli("show stat"));
        rows.iter()
            .find(|r| r["svname"] == "s1")
            .map(|r| r["addr"].clone())
            .unwrap_or_default()
    };
    t.wait_both("s1 at old.test's address", WAIT, |s| {
        addr_of(s) == "127.0.0.31:8080"
    });
    // `show servers state`'s srv_fqdn (the 18th field) of s1 and s2.
    let fqdns = |s: &Side| -> Vec<String> {
        s.cli("show servers state app")
            .lines()
            .skip(2)
            .filter_map(|l| l.split(' ').nth(17).map(String::from))
            .collect()
    };
    t.same("srv_fqdn before", fqdns);
    for cmd in [
        "set server app/s1 fqdn new.test",
        "set server app/s1 fqdn new.test",
        "set server app/s2 fqdn x.test",
        "set server app/s1 fqdn",
        "set server app/s1 fqdn bad_name!",
        "set server app/nope fqdn x.test",
    ] {
        t.same(cmd, |s| s.cli(cmd));
    }
    t.wait_both("s1 at new.test's address", WAIT, |s| {
        addr_of(s) == "127.0.0.32:8080"
    });
    assert_eq!(t.same("srv_fqdn after", fqdns), ["new.test", "-"]);
}

/// `nameserver NAME tcp@IP:PORT`: both ask over TCP only (the test server sees no UDP
/// question) and resolve the same address.
#[test]
fn tcp_nameservers_are_asked_over_tcp_only_as_haproxy() {
    let dns = DnsServer::start();
    dns.set("svc.test", &["127.0.0.41"]);
    let body = format!(
        r#"
resolvers dns
    nameserver ns1 tcp@{}
    timeout resolve 100ms
    timeout retry 300ms
    hold valid 200ms

frontend web
    bind "127.0.0.1:${{PORT}}"
    default_backend app

backend app
    server s1 svc.test:8080 resolvers dns init-addr none resolve-prefer ipv4
"#,
        dns.addr()
    );
    let t = Twins::start(&body, &[("web", "PORT")], &[]);
    t.wait_both("s1 resolved over TCP", WAIT, |s| {
        stat_rows(&s.cli("show stat"))
            .iter()
            .any(|r| r["svname"] == "s1" && r["addr"] == "127.0.0.41:8080")
    });
    assert!(
        dns.tcp_questions() >= 2,
        "{} TCP questions",
        dns.tcp_questions()
    );
    assert_eq!(dns.questions(), 0, "questions over UDP");
}

/// Two plain servers following the same name never share an address, as in HAProxy
/// 2.6 (without `resolve-opts allow-dup-ip`): one answer address goes to one of them,
/// the other stays in maintenance until the answers carry a second.
#[test]
fn servers_of_one_name_take_different_addresses_as_haproxy() {
    let dns = DnsServer::start();
    let body = format!(
        r#"
resolvers dns
    nameserver ns1 {}
    timeout resolve 100ms
    timeout retry 300ms
    hold valid 200ms
    hold obsolete 0s

frontend web
    bind "127.0.0.1:${{PORT}}"
    default_backend app

backend app
    server a dup.test:8080 resolvers dns init-addr none
    server b dup.test:8080 resolvers dns init-addr none
"#,
        dns.addr()
    );
    let t = Twins::start(&body, &[("web", "PORT")], &[]);
    // (addresses held, sorted; servers in maintenance)
    let held = |s: &Side| {
        let v = view(s);
        let mut addrs: Vec<String> = v
            .values()
            .filter(|v| !v.1.is_empty())
            .map(|v| v.1.clone())
            .collect();
        addrs.sort();
        let maint = v.values().filter(|v| v.0 == "MAINT (resolution)").count();
        (addrs, maint)
    };
    dns.set("dup.test", &["127.0.0.31"]);
    t.wait_both("one server resolved", WAIT, |s| held(s).0.len() == 1);
    // Give the other server's resolution time to run too (several hold-valid rounds).
    std::thread::sleep(Duration::from_millis(800));
    let s = t.same("one address for two servers", held);
    assert_eq!(s, (vec!["127.0.0.31:8080".to_string()], 1));

    dns.set("dup.test", &["127.0.0.31", "127.0.0.32"]);
    t.wait_both("both servers resolved", WAIT, |s| held(s).0.len() == 2);
    let s = t.same("two addresses for two servers", held);
    assert_eq!(s.0, ["127.0.0.31:8080", "127.0.0.32:8080"]);
}
