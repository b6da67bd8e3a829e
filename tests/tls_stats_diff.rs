//! HAProxy's SSL counters on a TLS frontend, against HAProxy 2.6 on the same
//! haproxy.cfg and the same clients (`openssl s_client`): `show stat`'s `ssl_sess`
//! (full handshakes), `ssl_reused_sess` (resumed ones) and `ssl_failed_handshake`, and
//! `show info`'s `CumSslConns` and `CurrSslConns` (with one TLS connection held open).

use crate::common;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::twins::{stat_rows, Side, Srv, Twins};

/// One full handshake and five resumed ones (`-reconnect`), TLS 1.2.
fn reconnecting_client(addr: SocketAddr) -> usize {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-reconnect",
            "-tls1_2",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("openssl s_client runs");
    String::from_utf8_lossy(&out.stdout)
        .matches("Reused, ")
        .count()
}

/// A client that sends no ClientHello but garbage: a failed handshake.
fn garbage(addr: SocketAddr) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = std::io::Read::read(&mut s, &mut [0u8; 64]);
}

/// `ssl_sess`, `ssl_reused_sess`, `ssl_failed_handshake` of the frontend, then
/// `CumSslConns` and `CurrSslConns`.
fn counters(s: &Side) -> [u64; 5] {
    let rows = stat_rows(&s.cli("show stat"));
    let fe = rows
        .iter()
        .find(|r| r["pxname"] == "web" && r["svname"] == "FRONTEND")
        .expect("the frontend row");
    let info = s.cli("show info");
    let field = |name: &str| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in show info"))
            .parse()
            .unwrap()
    };
    [
        fe["ssl_sess"].parse().unwrap(),
        fe["ssl_reused_sess"].parse().unwrap(),
        fe["ssl_failed_handshake"].parse().unwrap(),
        field("CumSslConns"),
        field("CurrSslConns"),
    ]
}

#[test]
fn ssl_counters_match_haproxy() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let crt = dir.path().join("c.pem");
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .args(["-days", "1", "-subj", "/CN=localhost"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    let pem = dir.path().join("site.pem");
    let both = std::fs::read_to_string(&crt).unwrap() + &std::fs::read_to_string(&key).unwrap();
    std::fs::write(&pem, both).unwrap();
    let body = format!(
        "frontend web\n    bind \"127.0.0.1:${{PORT}}\" ssl crt {}\n    default_backend app\n\nbackend app\n    server app1 \"${{APP1}}\"\n",
        pem.display()
    );
    let t = Twins::start(&body, &[("web", "PORT")], &[("APP1", Srv::Up("app1"))]);
    // Before the traffic (HAProxy's start probe, a connection without a handshake, is
    // counted on its side only).
    let (hx0, lb0) = t.both(counters);
    let reused = t.same("resumed handshakes of s_client -reconnect", |s| {
        reconnecting_client(s.addr("web"))
    });
    assert_eq!(reused, 5, "openssl resumed its session five times on both");
    t.both(|s| garbage(s.addr("web")));
    // A TLS connection held open, for CurrSslConns.
    let held: Vec<_> = [&t.hx, &t.lb]
        .iter()
        .map(|s| {
            let mut c = Command::new("openssl")
                .args([
                    "s_client",
                    "-connect",
                    &s.addr("web").to_string(),
                    "-tls1_2",
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdin = c.stdin.take();
            (c, stdin)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    let delta = |now: [u64; 5], before: [u64; 5]| -> [u64; 5] {
        let mut d = [0; 5];
        for i in 0..4 {
            d[i] = now[i] - before[i];
        }
        d[4] = now[4];
        d
    };
    loop {
        let (hx, lb) = t.both(counters);
        let (hx, lb) = (delta(hx, hx0), delta(lb, lb0));
        if hx == lb && hx[4] == 1 {
            // Two full handshakes (s_client's first and the held one), five resumed,
            // one failure; eight connections, one open.
            assert_eq!(hx, [2, 5, 1, 8, 1]);
            break;
        }
        assert!(Instant::now() < deadline, "HAProxy {hx:?}\nringlb  {lb:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    for (mut c, stdin) in held {
        drop(stdin);
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// `CurrSslConns` comes back to 0 once a TLS connection opened before a reload closes
/// (a gauge copied into the new generation would stay up for ever).
#[test]
fn curr_ssl_conns_comes_down_after_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("site.pem");
    let (key, crt) = (dir.path().join("k.pem"), dir.path().join("c.pem"));
    assert!(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes"
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .args(["-days", "1", "-subj", "/CN=localhost"])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success());
    std::fs::write(
        &pem,
        std::fs::read_to_string(&crt).unwrap() + &std::fs::read_to_string(&key).unwrap(),
    )
    .unwrap();
    let b = common::TestBackend::start("b");
    let sock = dir.path().join("s.sock");
    let cfg = dir.path().join("h.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n    nbthread 1\n    stats socket {} level admin\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\nfrontend web\n    bind 127.0.0.1:0 ssl crt {}\n    default_backend app\nbackend app\n    server s1 {}\n",
            sock.display(),
            pem.display(),
            b.addr()
        ),
    )
    .unwrap();
    let lb = common::RingLb::launch(&["-f", cfg.to_str().unwrap()], None, |l| {
        l.starts_with("ready")
    });
    let curr = || -> String {
        common::cli(&sock, "show info")
            .lines()
            .find_map(|l| l.strip_prefix("CurrSslConns: ").map(str::to_string))
            .unwrap()
    };
    let mut held = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &lb.addr("web").to_string(),
            "-tls1_2",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_for("the held TLS connection", Duration::from_secs(5), || {
        curr() == "1"
    });
    lb.signal(libc::SIGUSR2);
    common::wait_for("the reload", Duration::from_secs(5), || {
        lb.stdout_lines().iter().any(|l| l.starts_with("reloaded"))
    });
    let _ = held.kill();
    let _ = held.wait();
    std::thread::sleep(Duration::from_millis(300));
    common::wait_for("CurrSslConns back to 0", Duration::from_secs(5), || {
        curr() == "0"
    });
}
