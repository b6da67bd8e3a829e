//! DNS service discovery (`resolvers`, `server-template`, `init-addr`) on the real
//! binary, with a real DNS server on loopback (`common::dns`) whose records the tests
//! change while traffic flows: slots fill and empty, traffic follows with no failed
//! request, SRV answers move ports and weights, NXDOMAIN keeps the last addresses for
//! `hold nx`, truncated answers are asked again over TCP, and configuration mistakes
//! are refused with their line.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::dns::{DnsServer, Srv};
use common::haproxy::{cli, ringlb_cfg, write_cfg};
use common::traffic::{backend_of, wait_for_log};
use common::twins::server_slots;
use common::*;

const WAIT: Duration = Duration::from_secs(20);

/// `global` with a stats socket at `sock`, a `resolvers dns` section asking `dns`
/// every 200ms, then `body`.
fn config(sock: &Path, dns: &DnsServer, hold: &str, body: &str) -> String {
    format!(
        r#"global
    stats socket "{}" mode 600 level admin

resolvers dns
    nameserver ns1 {}
    timeout resolve 100ms
    timeout retry 300ms
    resolve_retries 2
    hold valid 200ms
{hold}

defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s

frontend web
    bind 127.0.0.1:0
    default_backend app

{body}
"#,
        sock.display(),
        dns.addr()
    )
}

/// (status, addr, weight) of every server of backend `app`, by name.
fn slots(sock: &Path) -> BTreeMap<String, (String, String, String)> {
    server_slots(sock, "app")
}

fn status(sock: &Path, server: &str) -> String {
    slots(sock)
        .get(server)
        .map(|s| s.0.clone())
        .unwrap_or_default()
}

/// Which test servers answer `n` requests.
fn answering(lb: &RingLb, n: usize) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for _ in 0..n {
        // A connection each: a 503 closes its connection.
        let r = http_get(lb.addr("web"), "/");
        if r.status == 200 {
            *out.entry(backend_of(&r)).or_default() += 1;
        } else {
            *out.entry(format!("status {}", r.status)).or_default() += 1;
        }
    }
    out
}

/// A name that gains an address then loses another: the template's slots follow, and
/// traffic with them, while a client keeps sending requests: none fails.
#[test]
fn traffic_follows_a_name_that_gains_and_loses_addresses() {
    let bs = TestBackend::start_on_one_port(&["b2", "b3"], &["127.0.0.2", "127.0.0.3"]);
    let port = bs[0].addr().port();
    let dns = DnsServer::start();
    dns.set("svc.test", &["127.0.0.2"]);
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let body = format!(
        "backend app\n    server-template web 3 svc.test:{port} resolvers dns init-addr none resolve-prefer ipv4\n"
    );
    let lb = ringlb_cfg(&config(&sock, &dns, "", &body));
    wait_for("svc.test's first address in a slot", WAIT, || {
        status(&sock, "web1") == "no check"
    });
    assert_eq!(answering(&lb, 6).get("b2"), Some(&6));

    // A light load, on new and kept-alive connections, all through the changes.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, ok, failed, addr) = (stop.clone(), ok.clone(), failed.clone(), lb.addr("web"));
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) && n < 20_000 {
                n += 1;
                let mut c = HttpClient::connect(addr);
                for _ in 0..5 {
                    match c.try_request(get_request("/")) {
                        Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::SeqCst),
                        _ => failed.fetch_add(1, Ordering::SeqCst),
                    };
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    dns.set("svc.test", &["127.0.0.2", "127.0.0.3"]);
    wait_for("b3 in a second slot", WAIT, || {
        bs[1].requests() > 0 && status(&sock, "web2") == "no check"
    });
    dns.set("svc.test", &["127.0.0.3"]);
    wait_for("web1 emptied", WAIT, || {
        status(&sock, "web1") == "MAINT (resolution)"
    });
    let b2_before = bs[0].requests();
    let seen = ok.load(Ordering::SeqCst);
    wait_for("more requests after the change", WAIT, || {
        ok.load(Ordering::SeqCst) > seen + 50
    });
    stop.store(true, Ordering::SeqCst);
    load.join().unwrap();
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "failed requests during the changes"
    );
    assert_eq!(
        bs[0].requests(),
        b2_before,
        "b2 got requests once its slot was emptied"
    );
    assert_eq!(answering(&lb, 4).get("b3"), Some(&4));
    let err = lb.stderr();
    assert!(
        err.contains("app/web1 changed its IP from (none) to 127.0.0.2 by dns/ns1."),
        "{err}"
    );
    assert!(err.contains("app/web2 changed its IP from (none) to 127.0.0.3 by dns/ns1."));
}

/// `init-addr none` with no record: the server starts in MAINT (resolution), requests
/// get 503; once DNS has the name, it takes the address and serves.
#[test]
fn init_addr_none_waits_in_maintenance_for_an_answer() {
    let bs = TestBackend::start_on_one_port(&["b2"], &["127.0.0.2"]);
    let port = bs[0].addr().port();
    let dns = DnsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let body =
        format!("backend app\n    server s1 late.test:{port} resolvers dns init-addr last,none\n");
    let lb = ringlb_cfg(&config(&sock, &dns, "", &body));
    assert_eq!(status(&sock, "s1"), "MAINT (resolution)");
    let asked = dns.questions();
    wait_for("two more questions", WAIT, || dns.questions() >= asked + 2);
    assert_eq!(answering(&lb, 2).get("status 503"), Some(&2));
    assert_eq!(status(&sock, "s1"), "MAINT (resolution)");
    // The NXDOMAIN answers are counted, as HAProxy's `show resolvers` counts them.
    let counted = |what: &str| -> u64 {
        cli(&sock, "show resolvers dns")
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{what}:")))
            .map_or(0, |v| v.trim().parse().unwrap())
    };
    wait_for("counted NX answers", WAIT, || {
        counted("nx") >= 2 && counted("sent") >= 2
    });
    assert_eq!(counted("valid"), 0);
    assert_eq!(
        cli(&sock, "show resolvers nope"),
        "Can't find that resolvers section\n\n"
    );

    dns.set("late.test", &["127.0.0.2"]);
    wait_for("s1 resolved", WAIT, || status(&sock, "s1") == "no check");
    assert_eq!(slots(&sock)["s1"].1, format!("127.0.0.2:{port}"));
    assert_eq!(answering(&lb, 3).get("b2"), Some(&3));
    let err = lb.stderr();
    assert!(
        err.contains("app/s1 changed its IP from (none) to 127.0.0.2 by dns/ns1."),
        "{err}"
    );
    assert!(
        err.contains("Server app/s1 ('late.test') is UP/READY (resolves again)."),
        "{err}"
    );
}

/// Slots fill from the answers, one address each; an address that goes empties only
/// its slot, and a new one fills the first empty slot: the others keep theirs.
#[test]
fn template_slots_fill_and_empty_without_touching_the_others() {
    let dns = DnsServer::start();
    dns.set("pool.test", &["127.0.0.11", "127.0.0.12"]);
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let body = "backend app\n    server-template srv 1-3 pool.test:8080 resolvers dns init-addr none resolve-prefer ipv4\n";
    let _lb = ringlb_cfg(&config(&sock, &dns, "", body));
    wait_for("two slots filled", WAIT, || {
        let s = slots(&sock);
        s["srv1"].0 == "no check" && s["srv2"].0 == "no check"
    });
    let s = slots(&sock);
    assert_eq!(s["srv1"].1, "127.0.0.11:8080");
    assert_eq!(s["srv2"].1, "127.0.0.12:8080");
    assert_eq!(s["srv3"].0, "MAINT (resolution)");

    dns.set("pool.test", &["127.0.0.12"]);
    wait_for("srv1 emptied", WAIT, || {
        status(&sock, "srv1") == "MAINT (resolution)"
    });
    let s = slots(&sock);
    assert_eq!(
        (s["srv2"].0.as_str(), s["srv2"].1.as_str()),
        ("no check", "127.0.0.12:8080")
    );
    assert_eq!(s["srv3"].0, "MAINT (resolution)");

    dns.set("pool.test", &["127.0.0.12", "127.0.0.13", "127.0.0.14"]);
    wait_for("every slot filled", WAIT, || {
        slots(&sock).values().all(|v| v.0 == "no check")
    });
    let s = slots(&sock);
    assert_eq!(s["srv2"].1, "127.0.0.12:8080", "srv2 moved");
    let mut got = vec![s["srv1"].1.clone(), s["srv3"].1.clone()];
    got.sort();
    assert_eq!(got, ["127.0.0.13:8080", "127.0.0.14:8080"]);
}

/// SRV answers give each slot its port and weight; a record that changes its port
/// moves traffic to the new port, and a new weight shows in `show stat`.
#[test]
fn srv_records_set_ports_and_weights() {
    let (b1, b2, b3) = (
        TestBackend::start("b1"),
        TestBackend::start("b2"),
        TestBackend::start("b3"),
    );
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
    let sock = dir.path().join("s.sock");
    let body =
        "backend app\n    server-template srv 2 _http._tcp.svc.test resolvers dns init-addr none\n";
    let lb = ringlb_cfg(&config(&sock, &dns, "", body));
    wait_for("both slots from SRV", WAIT, || {
        slots(&sock).values().all(|v| v.0 == "no check")
    });
    let s = slots(&sock);
    let by_addr: BTreeMap<String, String> =
        s.values().map(|v| (v.1.clone(), v.2.clone())).collect();
    assert_eq!(by_addr[&b1.addr().to_string()], "1");
    assert_eq!(by_addr[&b2.addr().to_string()], "2");
    let a = answering(&lb, 30);
    assert_eq!(
        a.get("b1").copied().unwrap_or(0) + a.get("b2").copied().unwrap_or(0),
        30
    );
    assert!(
        a.get("b2") > a.get("b1"),
        "weights 1:2 should favour b2: {a:?}"
    );

    // b1's record moves to b3's port; b2's weight goes to 3.
    dns.set_srv(
        "_http._tcp.svc.test",
        vec![
            rec(b3.addr().port(), 256, "a.svc.test"),
            rec(b2.addr().port(), 768, "b.svc.test"),
        ],
    );
    wait_for("the new port and weight", WAIT, || {
        let s = slots(&sock);
        let by_addr: BTreeMap<String, String> =
            s.values().map(|v| (v.1.clone(), v.2.clone())).collect();
        by_addr.get(&b3.addr().to_string()).map(String::as_str) == Some("1")
            && by_addr.get(&b2.addr().to_string()).map(String::as_str) == Some("3")
    });
    let before = b1.requests();
    let a = answering(&lb, 20);
    assert_eq!(b1.requests(), before, "b1's old port still gets requests");
    assert_eq!(
        a.get("b3").copied().unwrap_or(0) + a.get("b2").copied().unwrap_or(0),
        20
    );
    assert!(a.contains_key("b3"), "{a:?}");
}

/// NXDOMAIN keeps the last good address for `hold nx`, then the server goes into
/// maintenance; when the name comes back, so does the server.
#[test]
fn nxdomain_keeps_the_address_for_hold_nx_then_drops_it() {
    let bs = TestBackend::start_on_one_port(&["b2"], &["127.0.0.2"]);
    let port = bs[0].addr().port();
    let dns = DnsServer::start();
    dns.set("gone.test", &["127.0.0.2"]);
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let body = format!("backend app\n    server s1 gone.test:{port} resolvers dns init-addr none resolve-prefer ipv4\n");
    let lb = ringlb_cfg(&config(&sock, &dns, "    hold nx 3s", &body));
    wait_for("s1 resolved", WAIT, || status(&sock, "s1") == "no check");
    dns.remove("gone.test");
    let asked = dns.questions();
    // Several NXDOMAIN answers (each resolution asks both families), well within 3s.
    wait_for("NXDOMAIN answers", WAIT, || dns.questions() >= asked + 2);
    assert_eq!(
        status(&sock, "s1"),
        "no check",
        "dropped before hold nx ran out"
    );
    assert_eq!(answering(&lb, 2).get("b2"), Some(&2));
    wait_for("s1 in maintenance after hold nx", WAIT, || {
        status(&sock, "s1") == "MAINT (resolution)"
    });
    assert!(lb
        .stderr()
        .contains("is going DOWN for maintenance (DNS NX status)"));
    dns.set("gone.test", &["127.0.0.2"]);
    wait_for("s1 back", WAIT, || status(&sock, "s1") == "no check");
    assert_eq!(answering(&lb, 2).get("b2"), Some(&2));
}

/// A truncated UDP answer is asked again over TCP, and its addresses used.
#[test]
fn truncated_answers_are_asked_again_over_tcp() {
    let dns = DnsServer::start();
    let many: Vec<String> = (10..40).map(|i| format!("127.0.1.{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    dns.set("big.test", &many);
    dns.truncate_above(100);
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let body = "backend app\n    server-template s 40 big.test:80 resolvers dns init-addr none resolve-prefer ipv4\n";
    let _lb = ringlb_cfg(&config(&sock, &dns, "", body));
    wait_for("30 slots filled", WAIT, || {
        slots(&sock).values().filter(|v| v.0 == "no check").count() == 30
    });
    assert!(dns.tcp_questions() > 0);
}

/// Mistakes are refused with their line: an unknown resolvers name on a server, a bad
/// nameserver address, an unknown keyword in a resolvers section, a bad template range.
#[test]
fn dns_config_errors_name_their_line() {
    let cases = [
        (
            "resolvers dns\n    nameserver ns1 127.0.0.1:53\nbackend app\n    server s1 a.test:80 resolvers nope init-addr none\n",
            ":4: server 's1': unable to find required resolvers 'nope'",
        ),
        (
            "resolvers dns\n    nameserver ns1 not-an-ip:53\nbackend app\n    server s1 127.0.0.1:80\n",
            ":2: nameserver 'ns1': invalid address 'not-an-ip:53'",
        ),
        (
            "resolvers dns\n    nameserver ns1 127.0.0.1:53\n    bogus 1\nbackend app\n    server s1 127.0.0.1:80\n",
            ":3: unknown keyword 'bogus' in 'resolvers' section 'dns'",
        ),
        (
            "resolvers dns\n    nameserver ns1 127.0.0.1:53\nbackend app\n    server-template s 5-2 a.test:80 resolvers dns init-addr none\n",
            ":4: 'server-template': invalid number or range '5-2'",
        ),
        (
            "resolvers dns\n    nameserver ns1 127.0.0.1:53\nbackend app\n    server s1 a.test:80 resolvers dns init-addr bogus\n",
            ":4: 'init-addr': unknown method 'bogus'",
        ),
    ];
    for (text, want) in cases {
        let f = write_cfg(text);
        let out = run(
            &["-c", "-f", f.path().to_str().unwrap()],
            Duration::from_secs(20),
        );
        assert_eq!(out.code(), Some(1), "{text}\n{}", out.stderr);
        assert!(
            out.stderr.contains(want),
            "{text}\nwant {want:?} in:\n{}",
            out.stderr
        );
    }
}

/// A reload keeps the addresses DNS gave: with the nameserver silent afterwards, the
/// slots keep them for `hold timeout` and traffic goes on.
#[test]
fn a_reload_keeps_what_dns_gave_while_dns_is_silent() {
    let bs = TestBackend::start_on_one_port(&["b2"], &["127.0.0.2"]);
    let port = bs[0].addr().port();
    let dns = DnsServer::start();
    dns.set("svc.test", &["127.0.0.2"]);
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let body = format!(
        "backend app\n    server-template web 2 svc.test:{port} resolvers dns init-addr none resolve-prefer ipv4\n"
    );
    let lb = ringlb_cfg(&config(&sock, &dns, "", &body));
    wait_for("web1 resolved", WAIT, || {
        status(&sock, "web1") == "no check"
    });
    dns.silence(true);
    lb.signal(libc::SIGUSR2);
    wait_for("the reload", WAIT, || lb.stdout_count("reloaded") == 1);
    let asked = dns.questions();
    wait_for("unanswered questions after the reload", WAIT, || {
        dns.questions() >= asked + 2
    });
    let s = slots(&sock);
    assert_eq!(s["web1"].0, "no check");
    assert_eq!(s["web1"].1, format!("127.0.0.2:{port}"));
    let addr = lb.latest_addr("web").unwrap();
    for _ in 0..3 {
        assert_eq!(backend_of(&http_get(addr, "/")), "b2");
    }
}

/// Health checks go where DNS puts the server, and none is sent while it has no
/// address.
#[test]
fn health_checks_follow_the_dns_address() {
    let bs = TestBackend::start_on_one_port(&["b2", "b3"], &["127.0.0.2", "127.0.0.3"]);
    let port = bs[0].addr().port();
    let dns = DnsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let body = format!(
        "backend app\n    option httpchk GET /health\n    server s1 svc.test:{port} check inter 100ms rise 1 fall 1 resolvers dns init-addr none resolve-prefer ipv4\n"
    );
    let _lb = ringlb_cfg(&config(&sock, &dns, "", &body));
    let asked = dns.questions();
    wait_for("questions about svc.test", WAIT, || {
        dns.questions() >= asked + 4
    });
    assert_eq!(status(&sock, "s1"), "MAINT (resolution)");
    assert_eq!(bs[0].health_checks() + bs[1].health_checks(), 0);

    dns.set("svc.test", &["127.0.0.2"]);
    wait_for("checks on b2", WAIT, || bs[0].health_checks() >= 2);
    wait_for("s1 UP", WAIT, || status(&sock, "s1") == "UP");
    dns.set("svc.test", &["127.0.0.3"]);
    wait_for("checks on b3", WAIT, || bs[1].health_checks() >= 1);
    let on_b2 = bs[0].health_checks();
    wait_for("more checks on b3", WAIT, || bs[1].health_checks() >= 4);
    assert!(bs[0].health_checks() <= on_b2 + 1, "checks still go to b2");
}

/// The log line's `%si:%sp` names the address the request went to: after DNS moved
/// the server, the new one, not the address the config was read with.
#[test]
fn the_log_line_names_the_address_dns_gave() {
    let bs = TestBackend::start_on_one_port(&["b2", "b3"], &["127.0.0.2", "127.0.0.3"]);
    let port = bs[0].addr().port();
    let dns = DnsServer::start();
    dns.set("svc.test", &["127.0.0.2"]);
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let body = format!(
        "frontend logged\n    bind 127.0.0.1:0\n    log stderr format raw local0\n    log-format \"SI %b/%s %si:%sp\"\n    default_backend app\n\nbackend app\n    server s1 svc.test:{port} resolvers dns init-addr none resolve-prefer ipv4\n"
    );
    let lb = ringlb_cfg(&config(&sock, &dns, "", &body));
    wait_for("s1 resolved", WAIT, || status(&sock, "s1") == "no check");
    assert_eq!(backend_of(&http_get(lb.addr("logged"), "/")), "b2");
    wait_for_log(&lb, &format!("SI app/s1 127.0.0.2:{port}"), WAIT);

    dns.set("svc.test", &["127.0.0.3"]);
    wait_for("s1 moved to 127.0.0.3", WAIT, || {
        slots(&sock)["s1"].1 == format!("127.0.0.3:{port}")
    });
    assert_eq!(backend_of(&http_get(lb.addr("logged"), "/")), "b3");
    wait_for_log(&lb, &format!("SI app/s1 127.0.0.3:{port}"), WAIT);
}

/// `set server B/S addr IP port P` under a light load: traffic moves to the new
/// address, no request fails, and the answer is HAProxy's.
#[test]
fn set_server_addr_under_load_moves_traffic_with_no_failed_request() {
    let (b1, b2) = (TestBackend::start("b1"), TestBackend::start("b2"));
    let dns = DnsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let body = format!("backend app\n    server s1 {}\n", b1.addr());
    let lb = ringlb_cfg(&config(&sock, &dns, "", &body));
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, ok, failed, addr) = (stop.clone(), ok.clone(), failed.clone(), lb.addr("web"));
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) && n < 20_000 {
                n += 1;
                let mut c = HttpClient::connect(addr);
                for _ in 0..5 {
                    match c.try_request(get_request("/")) {
                        Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::SeqCst),
                        _ => failed.fetch_add(1, Ordering::SeqCst),
                    };
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    wait_for("traffic on b1", WAIT, || b1.requests() > 20);
    let answer = cli(
        &sock,
        &format!("set server app/s1 addr 127.0.0.1 port {}", b2.addr().port()),
    );
    assert_eq!(
        answer,
        format!(
            "no need to change the addr, port changed from '{}' to '{}' by 'stats socket command'\n\n",
            b1.addr().port(),
            b2.addr().port()
        )
    );
    // In force on every shard when answered: no request reaches b1 from now on (one
    // already on its way may still land).
    let on_b1 = b1.requests();
    let seen = ok.load(Ordering::SeqCst);
    wait_for("traffic on b2", WAIT, || {
        ok.load(Ordering::SeqCst) > seen + 100
    });
    stop.store(true, Ordering::SeqCst);
    load.join().unwrap();
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    assert!(b1.requests() <= on_b1 + 2, "b1 still gets requests");
    assert!(b2.requests() >= 100);
    assert_eq!(slots(&sock)["s1"].1, b2.addr().to_string());
}

/// A consistent-hash backend over a template: when one address goes, only the keys
/// of its slot move; the keys of the other slots stay where they were.
#[test]
fn consistent_hash_moves_only_the_keys_of_the_emptied_slot() {
    let bs = TestBackend::start_on_one_port(
        &["b2", "b3", "b4"],
        &["127.0.0.2", "127.0.0.3", "127.0.0.4"],
    );
    let port = bs[0].addr().port();
    let dns = DnsServer::start();
    dns.set("ring.test", &["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let body = format!(
        "backend app\n    balance uri\n    hash-type consistent\n    server-template s 3 ring.test:{port} resolvers dns init-addr none resolve-prefer ipv4\n"
    );
    let lb = ringlb_cfg(&config(&sock, &dns, "", &body));
    wait_for("three slots", WAIT, || {
        slots(&sock).values().all(|v| v.0 == "no check")
    });
    let placement = || -> BTreeMap<String, String> {
        (0..60)
            .map(|k| {
                let path = format!("/key{k}");
                (path.clone(), backend_of(&http_get(lb.addr("web"), &path)))
            })
            .collect()
    };
    let before = placement();
    assert_eq!(
        before
            .values()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        3,
        "{before:?}"
    );
    dns.set("ring.test", &["127.0.0.2", "127.0.0.3"]);
    wait_for("b4's slot emptied", WAIT, || {
        slots(&sock)
            .values()
            .filter(|v| v.0 == "MAINT (resolution)")
            .count()
            == 1
    });
    let after = placement();
    for (k, was) in &before {
        if was != "b4" {
            assert_eq!(&after[k], was, "{k} moved though its server stayed");
        } else {
            assert_ne!(after[k], "b4");
        }
    }
}
