//! `log /dev/log`-style targets: syslog over a local unix datagram socket. HAProxy 2.6
//! and ringlb run the same haproxy.cfg and both log to one socket of the test (told
//! apart by their tag); each line must have HAProxy's framing (`<PRI>Mmm dd hh:mm:ss
//! TAG[PID]: `) and the same fields. Then the target's level: one more severe than
//! `info` receives no access line, and a target named in `defaults` is used.

use crate::common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use common::syslog::{bind, comparable, parse, Syslog};
use common::twins::{ask, get, Srv, Twins};
use common::*;

fn stamp_is_rfc3164(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 15
        && b[0].is_ascii_uppercase()
        && b[1].is_ascii_lowercase()
        && b[2].is_ascii_lowercase()
        && b[3] == b' '
        && (b[4] == b' ' || b[4].is_ascii_digit())
        && b[5].is_ascii_digit()
        && b[6] == b' '
        && b[9] == b':'
        && b[12] == b':'
}

/// The next datagram from `tag` whose message mentions `needle`.
fn line_from(sock: &UnixDatagram, tag: &str, needle: &str) -> Option<Syslog> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        let Some(s) = parse(&text) else {
            panic!("not a syslog datagram: {text:?}")
        };
        if s.tag == tag && s.message.contains(needle) {
            return Some(s);
        }
    }
    None
}

#[test]
fn unix_socket_syslog_lines_match_haproxys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sock");
    let sock = bind(&path);
    let body = r#"
frontend www
    bind "127.0.0.1:${P1}"
    log global
    option httplog
    default_backend app

backend app
    server s1 "${S1}"
"#;
    let t = Twins::start_with_global(
        &format!("    log {} len 4096 local3 info\n", path.display()),
        body,
        &[("www", "P1")],
        &[("S1", Srv::Up("s1"))],
    );
    t.same("a request's syslog line over the unix socket", |s| {
        let (status, _) = ask(s.addr("www"), &get("t", "/unix-log"));
        assert_eq!(status, 200, "{}", s.who);
        let line = line_from(&sock, s.who, "/unix-log")
            .unwrap_or_else(|| panic!("{}: no line on the unix socket", s.who));
        assert!(stamp_is_rfc3164(&line.stamp), "{}: {line:?}", s.who);
        let f: Vec<&str> = line.message.split_whitespace().collect();
        // CLIENT [DATE] FRONTEND BACKEND/SERVER timers STATUS BYTES ... "REQUEST"
        assert!(f.len() > 10, "{}: {line:?}", s.who);
        (
            line.pri,
            f[2].to_string(),
            f[3].to_string(),
            f[5].to_string(),
            line.message.ends_with("\"GET /unix-log HTTP/1.1\"\n"),
        )
    });
}

/// Starts ringlb on haproxy.cfg text `cfg` (its `${S1}` is `b`'s address), written
/// into `dir` as `name`.
fn start_cfg(dir: &Path, name: &str, cfg: &str, b: &TestBackend) -> RingLb {
    let file = dir.join(name);
    std::fs::write(&file, cfg.replace("${S1}", &b.addr().to_string())).unwrap();
    RingLb::launch(&["-f", file.to_str().unwrap()], None, |l| {
        l.starts_with("ready")
    })
}

#[test]
fn a_level_above_info_gets_no_access_line_and_a_defaults_target_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = dir.path().join("quiet.sock");
    let loud = dir.path().join("loud.sock");
    let quiet_sock = bind(&quiet);
    let loud_sock = bind(&loud);
    let b = TestBackend::start("b");
    // `notice` is more severe than the `info` of access lines: HAProxy sends none.
    let quiet_lb = start_cfg(
        dir.path(),
        "quiet.cfg",
        &format!(
            "global\n    log {} local0 notice\n\ndefaults\n    mode http\n    log global\n    option httplog\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\nfrontend www\n    bind 127.0.0.1:0\n    default_backend app\n\nbackend app\n    server s1 ${{S1}}\n",
            quiet.display()
        ),
        &b,
    );
    // No global target: the one `defaults` names is the process's.
    let loud_lb = start_cfg(
        dir.path(),
        "loud.cfg",
        &format!(
            "defaults\n    mode http\n    log {} local0\n    option httplog\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\nfrontend www\n    bind 127.0.0.1:0\n    default_backend app\n\nbackend app\n    server s1 ${{S1}}\n",
            loud.display()
        ),
        &b,
    );
    assert_eq!(http_get(quiet_lb.addr("www"), "/quiet").status, 200);
    assert_eq!(http_get(loud_lb.addr("www"), "/loud").status, 200);
    let loud_line =
        line_from(&loud_sock, "ringlb", "/loud").expect("a line on the defaults target");
    assert_eq!(loud_line.pri, 16 * 8 + 6, "{loud_line:?}");
    // The loud line came after the quiet request was answered and logged (lines are
    // flushed on the same tick): nothing for the quiet target by now, nor a bit later.
    std::thread::sleep(Duration::from_millis(300));
    let mut buf = [0u8; 1024];
    assert!(
        quiet_sock.recv(&mut buf).is_err(),
        "a `notice` target received an access line"
    );
}

#[test]
fn no_daemon_listening_costs_nothing_but_the_lines() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nobody.sock");
    let b = TestBackend::start("b");
    let lb = start_cfg(
        dir.path(),
        "nobody.cfg",
        &format!(
            "global\n    log {} local0\n\ndefaults\n    mode http\n    log global\n    option httplog\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\nfrontend www\n    bind 127.0.0.1:0\n    default_backend app\n\nbackend app\n    server s1 ${{S1}}\n",
            missing.display()
        ),
        &b,
    );
    for i in 0..20 {
        assert_eq!(http_get(lb.addr("www"), &format!("/n{i}")).status, 200);
    }
    // A daemon that starts later gets the lines from then on.
    let sock = bind(&missing);
    assert_eq!(http_get(lb.addr("www"), "/later").status, 200);
    assert!(line_from(&sock, "ringlb", "/later").is_some());
}

#[test]
fn a_host_name_target_is_resolved_at_load() {
    use std::net::{ToSocketAddrs, UdpSocket};
    // Bound where `localhost` resolves first, as ringlb (and HAProxy) will send.
    let first = ("localhost", 0).to_socket_addrs().unwrap().next().unwrap();
    let sink = UdpSocket::bind(first).unwrap();
    sink.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = sink.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let b = TestBackend::start("b");
    let lb = start_cfg(
        dir.path(),
        "host.cfg",
        &format!(
            "global\n    log localhost:{port} local0\n\ndefaults\n    mode http\n    log global\n    option httplog\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\nfrontend www\n    bind 127.0.0.1:0\n    default_backend app\n\nbackend app\n    server s1 ${{S1}}\n"
        ),
        &b,
    );
    assert_eq!(http_get(lb.addr("www"), "/by-name").status, 200);
    let mut buf = [0u8; 2048];
    let n = sink.recv(&mut buf).expect("a datagram at localhost");
    let line = parse(&String::from_utf8_lossy(&buf[..n])).expect("syslog framing");
    assert!(line.message.contains("/by-name"), "{line:?}");
}

/// `log-tag` and `log-send-hostname NAME` (global): the syslog header carries the host
/// name after the timestamp and the tag before the pid, as HAProxy writes them.
#[test]
fn log_tag_and_send_hostname_shape_the_header_as_haproxys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sock");
    let sock = bind(&path);
    let body = r#"
frontend www
    bind "127.0.0.1:${P1}"
    log global
    option httplog
    default_backend app

backend app
    server s1 "${S1}"
"#;
    let t = Twins::start_with_global(
        &format!(
            "    log {} len 4096 local3 info\n    log-tag lbtag\n    log-send-hostname lbhost\n",
            path.display()
        ),
        body,
        &[("www", "P1")],
        &[("S1", Srv::Up("s1"))],
    );
    t.same("the header with log-tag and log-send-hostname", |s| {
        let needle = format!("/tagged-{}", s.who);
        let (status, _) = ask(s.addr("www"), &get("t", &needle));
        assert_eq!(status, 200, "{}", s.who);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            let Ok(n) = sock.recv(&mut buf) else { continue };
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            if !text.contains(&needle) {
                continue;
            }
            // <PRI>Mmm dd hh:mm:ss HOST TAG[PID]: message
            let after = text.split_once('>').map(|(_, r)| r).unwrap_or("");
            let header = after.get(16..).unwrap_or("");
            let (host, rest) = header.split_once(' ').unwrap_or(("", ""));
            let tag = rest.split_once('[').map(|(t, _)| t).unwrap_or("");
            return (host.to_string(), tag.to_string());
        }
        panic!("{}: no line for {needle}", s.who)
    });
}

/// Each line's severity, as HAProxy sets it: `option dontlog-normal` keeps errors only,
/// `option log-separate-errors` sends them at `err`, `http-request set-log-level`
/// decides a request's, and the target's level (`notice` here) drops what is less
/// severe while its minimum level (`crit`... not set) leaves the rest. Both proxies log
/// to one socket (told apart by tag); which requests got a line, and at which
/// priority, must match.
#[test]
fn line_severities_follow_the_log_options_as_haproxys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sock");
    let sock = bind(&path);
    let body = r#"
frontend errs
    bind "127.0.0.1:${P1}"
    log global
    option httplog
    option dontlog-normal
    option log-separate-errors
    use_backend dead if { path_beg /dead }
    default_backend app

frontend levels
    bind "127.0.0.1:${P2}"
    log global
    option httplog
    http-request set-log-level notice if { path_beg /notice }
    http-request set-log-level err if { path_beg /err }
    http-request set-log-level silent if { path_beg /silent }
    default_backend app

backend app
    server s1 "${S1}"

backend dead
    server s2 "${S2}"
"#;
    let t = Twins::start_with_global(
        &format!("    log {} len 4096 local3 notice\n", path.display()),
        body,
        &[("errs", "P1"), ("levels", "P2")],
        &[("S1", Srv::Up("s1")), ("S2", Srv::Dead)],
    );
    // The last request of each side is logged on both: once its line came, every
    // earlier one that was logged came before it.
    let requests = [
        ("errs", "/normal", 200),
        ("errs", "/dead", 503),
        ("levels", "/plain", 200),
        ("levels", "/notice", 200),
        ("levels", "/silent", 200),
        ("levels", "/err", 200),
    ];
    t.same("which requests were logged, at which priority", |s| {
        for (fe, path, status) in requests {
            let (got, _) = ask(s.addr(fe), &get("t", &format!("{path}-{}", s.who)));
            assert_eq!(got, status, "{} {path}", s.who);
        }
        let last = format!("/err-{}", s.who);
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            let Ok(n) = sock.recv(&mut buf) else { continue };
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            let Some(line) = parse(&text) else {
                panic!("not a syslog datagram: {text:?}")
            };
            if line.tag != s.who {
                continue;
            }
            // Access lines only (HAProxy also sends its server state changes).
            let Some(path) = requests
                .iter()
                .map(|r| r.1)
                .find(|p| line.message.contains(&format!("{p}-{}", s.who)))
            else {
                eprintln!("{}: not an access line: {}", s.who, line.message);
                continue;
            };
            seen.push((path, line.pri));
            if line.message.contains(&last) {
                return seen;
            }
        }
        panic!("{}: no line for {last}; saw {seen:?}", s.who)
    });
}

/// Server state changes reach the log target as HAProxy sends them: `is DOWN` at
/// `alert` (with `Running on backup.` while only a backup is left), `has no server
/// available!` at `emerg`, `is UP` at `notice`. The same servers go down and come back
/// on both sides; each one's messages (up to HAProxy's sessions trailer, which ringlb
/// does not write) and priorities must match.
#[test]
fn server_state_changes_are_logged_as_haproxys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sock");
    let sock = bind(&path);
    let body = r#"
defaults
    mode http
    log global
    timeout connect 500ms
    timeout client 10s
    timeout server 10s
    timeout check 500ms
    default-server inter 100ms rise 1 fall 1

frontend fe
    bind "127.0.0.1:${P1}"
    default_backend app

backend app
    option httpchk GET /health
    server s1 "${S1}" check
    server b1 "${S2}" check backup
"#;
    let t = Twins::start_with_global(
        &format!("    log {} len 4096 local3\n", path.display()),
        body,
        &[("fe", "P1")],
        &[("S1", Srv::Up("s1")), ("S2", Srv::Up("b1"))],
    );
    // Both up and checked first: nothing to say yet (HAProxy starts servers up).
    t.wait_both("both checked", Duration::from_secs(10), |s| {
        common::twins::stat_view(s, &["check_status"])
            .iter()
            .filter(|r| r.1 == "s1" || r.1 == "b1")
            .all(|r| r.2 == ["L7OK"])
    });
    let next_state_line = |who: &str| -> (u32, String) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            let Ok(n) = sock.recv(&mut buf) else { continue };
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            let Some(line) = parse(&text) else { continue };
            if line.tag != who || line.message.contains("HTTP/1.1") {
                continue;
            }
            return (line.pri, comparable(&line.message));
        }
        panic!("{who}: no state change line")
    };
    t.same("s1 goes down, then the backup, then s1 comes back", |s| {
        s.backend("s1").set_health_status(500);
        let mut seen = vec![next_state_line(s.who)];
        s.backend("b1").set_health_status(500);
        seen.push(next_state_line(s.who));
        seen.push(next_state_line(s.who));
        s.backend("s1").set_health_status(200);
        seen.push(next_state_line(s.who));
        s.backend("b1").set_health_status(200);
        seen.push(next_state_line(s.who));
        seen
    });
}

/// `option log-health-checks`: every check that changes a server's status or health
/// counter is logged (`notice`), as HAProxy words it, before the state change itself.
#[test]
fn log_health_checks_logs_each_step_as_haproxys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sock");
    let sock = bind(&path);
    let body = r#"
defaults
    mode http
    log global
    option log-health-checks
    timeout connect 500ms
    timeout client 10s
    timeout server 10s
    timeout check 500ms
    default-server inter 100ms rise 2 fall 2

frontend fe
    bind "127.0.0.1:${P1}"
    default_backend app

backend app
    option httpchk GET /health
    server s1 "${S1}" check
"#;
    let t = Twins::start_with_global(
        &format!("    log {} len 4096 local3\n", path.display()),
        body,
        &[("fe", "P1")],
        &[("S1", Srv::Up("s1"))],
    );
    t.wait_both("checked", Duration::from_secs(10), |s| {
        common::twins::stat_view(s, &["check_status"])
            .iter()
            .any(|r| r.1 == "s1" && r.2 == ["L7OK"])
    });
    // What the first checks said is each proxy's own start; from here on it must match.
    std::thread::sleep(Duration::from_millis(500));
    let mut buf = [0u8; 4096];
    while sock.recv(&mut buf).is_ok() {}
    let lines_until = |who: &str, last: &str| -> Vec<(u32, String)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            let Ok(n) = sock.recv(&mut buf) else { continue };
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            let Some(line) = parse(&text) else { continue };
            if line.tag != who {
                continue;
            }
            let msg = comparable(&line.message);
            let done = msg.contains(last);
            seen.push((line.pri, msg));
            if done {
                return seen;
            }
        }
        panic!("{who}: no line with {last:?}; saw {seen:?}")
    };
    t.same("s1 fails twice, then passes twice", |s| {
        s.backend("s1").set_health_status(500);
        let mut seen = lines_until(s.who, "is DOWN");
        s.backend("s1").set_health_status(200);
        seen.extend(lines_until(s.who, "is UP"));
        seen
    });
}

/// `log TARGET FACILITY LEVEL MINLEVEL`: a line more severe than MINLEVEL is sent at
/// MINLEVEL (an error under `log-separate-errors`, `err`, capped to `warning`), one
/// less severe than LEVEL not at all; the same priorities as HAProxy's.
#[test]
fn a_target_minlevel_caps_the_severity_as_haproxys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sock");
    let sock = bind(&path);
    let body = r#"
frontend www
    bind "127.0.0.1:${P1}"
    log global
    option httplog
    option log-separate-errors
    use_backend dead if { path_beg /dead }
    default_backend app

backend app
    server s1 "${S1}"

backend dead
    server s2 "${S2}"
"#;
    let t = Twins::start_with_global(
        &format!("    log {} len 4096 local3 info warning\n", path.display()),
        body,
        &[("www", "P1")],
        &[("S1", Srv::Up("s1")), ("S2", Srv::Dead)],
    );
    t.same("the priority of an info line and of an error line", |s| {
        let ok = format!("/fine-{}", s.who);
        let bad = format!("/dead-{}", s.who);
        assert_eq!(ask(s.addr("www"), &get("t", &ok)).0, 200, "{}", s.who);
        assert_eq!(ask(s.addr("www"), &get("t", &bad)).0, 503, "{}", s.who);
        let pri = |needle: &str| {
            line_from(&sock, s.who, needle)
                .unwrap_or_else(|| panic!("{}: no line for {needle}", s.who))
                .pri
        };
        (pri(&ok), pri(&bad))
    });
}
