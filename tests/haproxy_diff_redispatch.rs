//! `option redispatch [N]` against HAProxy 2.6: a request sent by `use-server` to a
//! server that refuses connections is retried (`retries 3`) on that server or on
//! another one as the interval says (every Nth retry; -1, the default, the last one;
//! 0 or `no option redispatch`, none), and when no persistence chose the server and
//! the algorithm is not a hash (`roundrobin`, `leastconn`) over several servers,
//! every retry goes elsewhere whatever the interval. Both balancers run the
//! same haproxy.cfg; the answer's server and the log's retry count (`%rc`, `+` once
//! redispatched) must be the same.

use crate::common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::client::HttpClient;
use common::twins::{Srv, Twins};

/// The first log line of `tag` within 5 s: `backend server retries status`.
fn logged(log: &UdpSocket, tag: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let Ok(n) = log.recv(&mut buf) else { continue };
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        if text.contains(&format!(" {tag}[")) {
            if let Some(l) = text.split("LOG ").nth(1) {
                return l.trim().to_string();
            }
        }
    }
    "<no log line>".into()
}

#[test]
fn redispatch_interval_matches_haproxy() {
    let log = UdpSocket::bind("127.0.0.1:0").unwrap();
    log.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let global = format!("    log {} local0\n", log.local_addr().unwrap());
    let mut body = String::from(
        r#"
frontend web
    bind "127.0.0.1:${PORT}"
    log global
    log-format "LOG %b %s %rc %ST"
"#,
    );
    let variants = [
        ("every", "option redispatch 1", "balance source"),
        ("second", "option redispatch 2", "balance source"),
        ("last", "option redispatch", "balance source"),
        ("before_last", "option redispatch -2", "balance source"),
        ("zero", "option redispatch 0", "balance source"),
        ("off", "no option redispatch", "balance source"),
        ("rr_last", "option redispatch", "balance roundrobin"),
        ("rr_zero", "option redispatch 0", "balance roundrobin"),
        // No use-server: round robin picks the dead server first (its first server),
        // and any server will do, so the retry goes elsewhere despite `0`.
        ("rr_free", "option redispatch 0", "balance roundrobin"),
        // leastconn is no hash either: the same.
        ("lc_free", "option redispatch 0", "balance leastconn"),
    ];
    let expected = |name: &str| {
        Some(match name {
            "every" | "rr_free" | "lc_free" => "+1",
            "second" | "before_last" => "+2",
            "last" | "rr_last" => "+3",
            _ => "3",
        })
    };
    for (name, _, _) in variants {
        body.push_str(&format!("    use_backend {name} if {{ path /{name} }}\n"));
    }
    for (name, option, balance) in variants {
        let use_server = if name.ends_with("_free") {
            ""
        } else {
            "use-server dead if TRUE"
        };
        body.push_str(&format!(
            r#"
backend {name}
    retries 3
    timeout connect 100ms
    {balance}
    {option}
    {use_server}
    server dead "${{DEAD}}"
    server alive "${{S1}}"
"#
        ));
    }
    let t = Twins::start_with_global(
        &global,
        &body,
        &[("web", "PORT")],
        &[("S1", Srv::Up("alive")), ("DEAD", Srv::Dead)],
    );
    let tag = |who: &str| {
        if who == "haproxy" {
            "haproxy"
        } else {
            "ringlb"
        }
    };
    // Whatever the harness's readiness probes logged goes first.
    std::thread::sleep(Duration::from_millis(300));
    while log.recv(&mut [0u8; 4096]).is_ok() {}
    for (name, _, _) in variants {
        let got = t.same(name, |s| {
            let mut c = HttpClient::connect(s.addr("web"));
            let r = c.request(format!("GET /{name} HTTP/1.1\r\nHost: h\r\n\r\n"));
            (r.status, logged(&log, tag(s.who)))
        });
        // Each variant ends its own way (the interval is not ignored).
        assert_eq!(got.1.split(' ').nth(2), expected(name), "{name}: {got:?}");
    }
}

#[test]
fn a_bad_interval_is_refused_with_its_line() {
    use common::haproxy::{ringlb_check, write_cfg};
    let text = "defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\nfrontend web\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    option redispatch often\n    server s1 127.0.0.1:80\n";
    let cfg = write_cfg(text);
    let lb = ringlb_check(cfg.path(), &[]);
    let said = format!("{}{}", lb.stdout, lb.stderr);
    assert!(!lb.status.success() && said.contains(".cfg:10:"), "{said}");
}
