//! What DNS does to a server reaches the log target as HAProxy 2.6 sends it: HAProxy
//! and ringlb run the same haproxy.cfg, asking the same test DNS server (`common::dns`)
//! and logging to one unix datagram socket of the test (told apart by their tag). A
//! name that resolves, moves and disappears gives the same messages at the same
//! priorities on both.

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::dns::DnsServer;
use common::syslog::{bind, comparable, parse};
use common::twins::Twins;

const WAIT: Duration = Duration::from_secs(20);

/// The (priority, message) lines each tag sent, access lines left out, read until
/// every one of `tags` sent `want` or `wait` passed.
fn lines_by_tag(
    sock: &UnixDatagram,
    tags: &[&str],
    want: usize,
    wait: Duration,
) -> BTreeMap<String, Vec<(u32, String)>> {
    let deadline = Instant::now() + wait;
    let mut out: BTreeMap<String, Vec<(u32, String)>> = BTreeMap::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline
        && !tags
            .iter()
            .all(|t| out.get(*t).is_some_and(|l| l.len() >= want))
    {
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        let Some(line) = parse(&text) else { continue };
        if !line.message.contains("HTTP/1.1") {
            out.entry(line.tag)
                .or_default()
                .push((line.pri, comparable(&line.message)));
        }
    }
    out
}

#[test]
fn dns_changes_are_logged_as_haproxys() {
    let dns = DnsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sock");
    let sock = bind(&path);
    let body = format!(
        r#"
resolvers dns
    nameserver ns1 {}
    timeout resolve 100ms
    timeout retry 300ms
    hold valid 200ms
    hold nx 300ms

defaults
    mode http
    log global
    timeout connect 500ms
    timeout client 10s
    timeout server 10s

frontend web
    bind "127.0.0.1:${{PORT}}"
    default_backend app

backend app
    server s1 svc.test:8080 resolvers dns init-addr none resolve-prefer ipv4
"#,
        dns.addr()
    );
    let t = Twins::start_with_global(
        &format!("    log {} len 4096 local3\n", path.display()),
        &body,
        &[("web", "PORT")],
        &[],
    );
    dns.set("svc.test", &["127.0.0.2"]);
    t.wait_both("s1 resolved", WAIT, |s| {
        s.cli("show stat").contains("127.0.0.2:8080")
    });
    dns.set("svc.test", &["127.0.0.3"]);
    t.wait_both("s1 moved", WAIT, |s| {
        s.cli("show stat").contains("127.0.0.3:8080")
    });
    dns.remove("svc.test");
    t.wait_both("s1 in maintenance", WAIT, |s| {
        s.cli("show stat").contains("MAINT (resolution)")
    });
    let (hx, lb) = t.both(|s| s.who);
    let mut lines = lines_by_tag(&sock, &[hx, lb], 5, WAIT);
    let seen = t.same("what DNS did, in the log", |s| {
        let mut l = lines.get(s.who).cloned().unwrap_or_default();
        l.truncate(5);
        l
    });
    assert_eq!(seen.len(), 5, "{seen:?}");
    // Then the backend has no server: HAProxy's `set_backend_down` says so at `emerg`
    // (on its own schedule: seconds later, or only at the next change), ringlb at once.
    let lb_lines = lines.entry(lb.to_string()).or_default();
    if lb_lines.len() < 6 {
        let more = lines_by_tag(&sock, &[lb], 1, WAIT);
        lb_lines.extend(more.get(lb).cloned().unwrap_or_default());
    }
    assert_eq!(
        lb_lines.get(5),
        Some(&(152, "backend app has no server available!".to_string())),
        "{lb_lines:?}"
    );
}
