//! Maps and ACL patterns changed at run time (`add map`, `set map`, `del map`,
//! `clear map`, `add acl`, `del acl`) are in force on every shard when the command is
//! answered: right after each answer, many requests over fresh connections (spread
//! by the kernel over both shards) all see the change. A reload reads the files
//! again, as HAProxy does.

use crate::common;

use common::haproxy::ringlb_cfg;
use common::*;

fn config(dir: &std::path::Path, sock: &std::path::Path, be: std::net::SocketAddr) -> String {
    format!(
        r#"
global
    nbthread 2
    stats socket {sock} level admin

defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s

frontend web
    bind 127.0.0.1:0
    acl blocked src -f {dir}/blocked.acl
    http-request deny deny_status 403 if blocked
    http-request deny deny_status 429 if {{ req.hdr(host),map({dir}/hosts.map,open) -m str closed }}
    default_backend app

backend app
    server s1 {be}

frontend metrics
    bind 127.0.0.1:0
    http-request use-service prometheus-exporter
"#,
        dir = dir.display(),
        sock = sock.display(),
    )
}

/// Status of `n` requests for `host`, each on a new connection.
fn statuses(addr: std::net::SocketAddr, host: &str, n: usize) -> Vec<u16> {
    (0..n)
        .map(|_| http_get_host(addr, host, "/").status)
        .collect()
}

fn all(addr: std::net::SocketAddr, host: &str, want: u16, after: &str) {
    let got = statuses(addr, host, 60);
    assert!(
        got.iter().all(|&s| s == want),
        "after `{after}`: Host {host} should get {want} on every shard, got {got:?}"
    );
}

#[test]
fn map_and_acl_changes_are_in_force_on_every_shard_when_answered() {
    let be = TestBackend::start("s1");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hosts.map"),
        "a.example open\nshut.example closed\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("blocked.acl"), "# nobody yet\n192.0.2.1\n").unwrap();
    let sock = dir.path().join("stats.sock");
    let lb = ringlb_cfg(&config(dir.path(), &sock, be.addr()));
    let addr = lb.addr("web");
    let map = format!("{}/hosts.map", dir.path().display());
    let acl = format!("{}/blocked.acl", dir.path().display());

    all(addr, "b.example", 200, "start");
    all(addr, "shut.example", 429, "start");

    let steps: [(String, &str, u16); 6] = [
        (format!("add map {map} b.example closed"), "b.example", 429),
        (format!("set map {map} b.example open"), "b.example", 200),
        (
            format!("set map {map} shut.example open"),
            "shut.example",
            200,
        ),
        (
            format!("set map {map} shut.example closed"),
            "shut.example",
            429,
        ),
        (format!("del map {map} shut.example"), "shut.example", 200),
        (
            format!("add map {map} shut.example closed"),
            "shut.example",
            429,
        ),
    ];
    for (cmd, host, want) in &steps {
        assert_eq!(cli(&sock, cmd), "\n", "{cmd}");
        all(addr, host, *want, cmd);
    }
    assert_eq!(cli(&sock, &format!("clear map {map}")), "\n");
    all(addr, "shut.example", 200, "clear map");
    assert_eq!(cli(&sock, &format!("show map {map}")), "\n");

    // The ACL file: this client (127.0.0.1) blocked, then let through again.
    assert_eq!(cli(&sock, &format!("add acl {acl} 127.0.0.0/8")), "\n");
    all(addr, "a.example", 403, "add acl");
    let shown = cli(&sock, &format!("show acl {acl}"));
    let refs: Vec<&str> = shown
        .lines()
        .filter(|l| l.ends_with(" 127.0.0.0/8"))
        .collect();
    assert_eq!(refs.len(), 1, "{shown}");
    let r = refs[0].split(' ').next().unwrap();
    assert_eq!(cli(&sock, &format!("del acl {acl} #{r}")), "\n");
    all(addr, "a.example", 200, "del acl #ref");

    // Both shards served those requests.
    let metrics = http_get(lb.addr("metrics"), "/metrics").body_str();
    for shard in 0..2 {
        let series = format!("ringlb_shard_connections_total{{shard=\"{shard}\"}}");
        let n = metric(&metrics, &series).unwrap_or(0.0);
        assert!(
            n >= 10.0,
            "shard {shard} accepted few connections: {series} = {n}"
        );
    }
}

#[test]
fn bad_runtime_entries_are_refused_and_change_nothing() {
    let be = TestBackend::start("s1");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hosts.map"), "shut.example closed\n").unwrap();
    std::fs::write(dir.path().join("blocked.acl"), "192.0.2.1\n").unwrap();
    let sock = dir.path().join("stats.sock");
    let lb = ringlb_cfg(&config(dir.path(), &sock, be.addr()));
    let acl = format!("{}/blocked.acl", dir.path().display());
    let map = format!("{}/hosts.map", dir.path().display());
    assert_eq!(
        cli(&sock, &format!("add acl {acl} not-an-address")),
        "'not-an-address' is not a valid IPv4 or IPv6 address.\n\n"
    );
    assert_eq!(
        cli(&sock, "add map /nope k v"),
        "Unknown map identifier. Please use #<id> or <file>.\n\n"
    );
    assert_eq!(
        cli(&sock, &format!("del map {map} nothere")),
        "Key not found.\n\n"
    );
    assert_eq!(
        cli(&sock, &format!("set map {map} nothere v")),
        "entry not found.\n\n"
    );
    assert_eq!(cli(&sock, &format!("show acl {acl}")).lines().count(), 2);
    all(lb.addr("web"), "shut.example", 429, "refused commands");
}

#[test]
fn a_reload_reads_the_files_again() {
    let be = TestBackend::start("s1");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hosts.map"), "shut.example closed\n").unwrap();
    std::fs::write(dir.path().join("blocked.acl"), "192.0.2.1\n").unwrap();
    let sock = dir.path().join("stats.sock");
    let lb = ringlb_cfg(&config(dir.path(), &sock, be.addr()));
    let map = format!("{}/hosts.map", dir.path().display());
    assert_eq!(cli(&sock, &format!("add map {map} b.example closed")), "\n");
    all(lb.addr("web"), "b.example", 429, "add map");
    lb.signal(libc::SIGUSR2);
    wait_for("the reload", std::time::Duration::from_secs(10), || {
        lb.stdout_lines().iter().any(|l| l == "reloaded")
    });
    assert_eq!(
        cli(&sock, &format!("show map {map}"))
            .lines()
            .filter(|l| !l.is_empty())
            .count(),
        1,
        "the runtime entry is gone after the reload"
    );
    all(
        lb.latest_addr("web").unwrap_or(lb.addr("web")),
        "b.example",
        200,
        "reload",
    );
}
