//! Reload in place (SIGHUP / SIGUSR2): new connections get the new config while
//! requests in flight finish on the old one; unchanged listeners keep their sockets (no
//! refused connection across a reload); servers in both configs keep their state.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

struct Setup {
    lb: RingLb,
    path: String,
    _file: tempfile::NamedTempFile,
}

fn write(path: &str, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn start(text: &str) -> Setup {
    let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    let path = file.path().to_str().unwrap().to_string();
    write(&path, text);
    let lb = RingLb::launch(&["-f", &path], None, |l| l.starts_with("ready"));
    Setup {
        lb,
        path,
        _file: file,
    }
}

/// Reloads and waits for the `reloaded` line (the n-th one).
fn reload(s: &Setup, n: usize) {
    s.lb.signal(libc::SIGHUP);
    wait_for("the reload", Duration::from_secs(5), || {
        s.lb.stdout_lines()
            .iter()
            .filter(|l| *l == "reloaded")
            .count()
            >= n
    });
}

fn config(port: u16, servers: &[(&str, std::net::SocketAddr)], extra: &str) -> String {
    let mut t = format!(
        "[runtime]\nshards = 2\n{extra}\n[frontend.web]\nbind = \"127.0.0.1:{port}\"\ndefault_backend = \"app\"\n[backend.app]\n"
    );
    for (name, addr) in servers {
        t.push_str(&format!(
            "[[backend.app.server]]\nname = \"{name}\"\naddr = \"{addr}\"\n"
        ));
    }
    t
}

#[test]
fn new_servers_for_new_requests_and_in_flight_ones_finish() {
    let a = TestBackend::start("a");
    let b = TestBackend::start("b");
    let s = start(&config(0, &[("s1", a.addr())], ""));
    let addr = s.lb.addr("web");
    let port = addr.port();
    assert_eq!(http_get(addr, "/").header("x-backend"), Some("a"));
    let mut kept = HttpClient::connect(addr);
    assert_eq!(kept.get("/").header("x-backend"), Some("a"));
    let slow = std::thread::spawn(move || http_get(addr, "/sleep/800"));
    // Counted when its head arrives (`in_flight` could still count the request
    // before it, whose response is written but not yet counted out).
    wait_for("the slow request at a", Duration::from_secs(5), || {
        a.requests_to("/sleep/800") == 1
    });

    write(&s.path, &config(port, &[("s2", b.addr())], ""));
    reload(&s, 1);
    for _ in 0..10 {
        assert_eq!(http_get(addr, "/").header("x-backend"), Some("b"));
    }
    // A keep-alive connection moves to the new config at its next request.
    assert_eq!(kept.get("/").header("x-backend"), Some("b"));
    let r = slow.join().unwrap();
    assert_eq!(
        (r.status, r.header("x-backend")),
        (200, Some("a")),
        "finished on the old config"
    );
}

#[test]
fn no_connection_is_refused_across_reloads() {
    let a = TestBackend::start("a");
    let s = start(&config(0, &[("s1", a.addr())], ""));
    let addr = s.lb.addr("web");
    let port = addr.port();
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let (stop, failures, done) = (stop.clone(), failures.clone(), done.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match HttpClient::try_connect(addr)
                        .and_then(|mut c| c.try_request(get_request("/")))
                    {
                        Ok(r) if r.status == 200 => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    // And one client sending sequential requests on one keep-alive connection.
    let sequential = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut c = HttpClient::connect(addr);
            let mut ok = 0usize;
            let mut failed = 0usize;
            while !stop.load(Ordering::Relaxed) || ok < 1_000 {
                match c.try_request(get_request("/")) {
                    Ok(r) if r.status == 200 => ok += 1,
                    _ => {
                        failed += 1;
                        c = HttpClient::connect(addr);
                    }
                }
            }
            (ok, failed)
        })
    };
    for n in 1..=5 {
        // Alternate between two equivalent files so each reload changes something.
        let weight = if n % 2 == 0 {
            ""
        } else {
            "[pool]\nmax_idle_per_server = 8\n"
        };
        // Each reload happens under traffic, however slow the machine.
        let before = done.load(Ordering::Relaxed);
        wait_for("traffic before the reload", Duration::from_secs(10), || {
            done.load(Ordering::Relaxed) >= before + 10
        });
        write(&s.path, &config(port, &[("s1", a.addr())], weight));
        reload(&s, n);
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    let (ok, failed) = sequential.join().unwrap();
    assert!(ok >= 1_000, "{ok} sequential requests");
    assert_eq!(failed, 0, "no failed request on the keep-alive connection");
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "no refused or failed connection"
    );
}

#[test]
fn listeners_added_and_removed() {
    let a = TestBackend::start("a");
    let s = start(&config(0, &[("s1", a.addr())], ""));
    let first = s.lb.addr("web");
    let two = format!(
        "{}\n[frontend.extra]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"app\"\n",
        config(first.port(), &[("s1", a.addr())], "")
    );
    write(&s.path, &two);
    reload(&s, 1);
    let extra =
        s.lb.latest_addr("extra")
            .expect("a listening line for the new frontend");
    assert_eq!(s.lb.latest_addr("web"), Some(first), "web kept its socket");
    assert_eq!(http_get(extra, "/").status, 200);
    // Drop the first frontend: its port closes, the other keeps serving.
    let only_extra = format!(
        "[runtime]\nshards = 2\n[frontend.extra]\nbind = \"{extra}\"\ndefault_backend = \"app\"\n[backend.app]\n[[backend.app.server]]\nname = \"s1\"\naddr = \"{}\"\n",
        a.addr()
    );
    write(&s.path, &only_extra);
    reload(&s, 2);
    assert_eq!(
        s.lb.latest_addr("extra"),
        Some(extra),
        "extra kept its socket"
    );
    wait_for(
        "the removed listener to close",
        Duration::from_secs(3),
        || std::net::TcpStream::connect(first).is_err(),
    );
    assert_eq!(http_get(extra, "/").status, 200);
}

#[test]
fn server_state_survives_and_runtime_changes_are_refused() {
    let a = TestBackend::start("a");
    let b = TestBackend::start("b");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("admin.sock");
    let extra = format!("[admin]\nstats_socket = \"{}\"", sock.display());
    let s = start(&config(0, &[("s1", a.addr()), ("s2", b.addr())], &extra));
    let addr = s.lb.addr("web");
    let port = addr.port();
    assert_eq!(cli(&sock, "set server app/s1 state drain"), "\n");
    cli(&sock, "show stat");
    // Reload with one more server: s1 stays drained.
    let c = TestBackend::start("c");
    write(
        &s.path,
        &config(
            port,
            &[("s1", a.addr()), ("s2", b.addr()), ("s3", c.addr())],
            &extra,
        ),
    );
    reload(&s, 1);
    let stat = cli(&sock, "show stat");
    assert!(
        stat.lines()
            .any(|l| l.starts_with("app,s1,") && l.contains(",DRAIN,")),
        "{stat}"
    );
    assert!(stat.lines().any(|l| l.starts_with("app,s3,")), "{stat}");
    for _ in 0..12 {
        assert_ne!(
            http_get(addr, "/").header("x-backend"),
            Some("a"),
            "s1 is still drained"
        );
    }
    // Changing the shard count is refused, the running config stays.
    write(
        &s.path,
        &config(port, &[("s1", a.addr())], &extra).replace("shards = 2", "shards = 1"),
    );
    s.lb.signal(libc::SIGUSR2);
    wait_for("the refusal", Duration::from_secs(5), || {
        s.lb.stderr().contains("needs a restart")
    });
    assert!(cli(&sock, "show stat")
        .lines()
        .any(|l| l.starts_with("app,s3,")));
}

/// A keep-alive client that idled longer than `timeout http-request`, then sends a head
/// in pieces just after a reload, gets the whole `http-request` time for it (the
/// deadline was once taken from before the idle wait: an instant 408).
#[test]
fn a_head_in_pieces_after_a_reload_gets_its_full_request_timeout() {
    let a = TestBackend::start("a");
    let extra = "[timeout]\nhttp_request = \"1s\"\nhttp_keep_alive = \"30s\"\n";
    let s = start(&config(0, &[("s1", a.addr())], extra));
    let addr = s.lb.addr("web");
    let mut kept = HttpClient::connect(addr);
    assert_eq!(kept.get("/").status, 200);
    std::thread::sleep(Duration::from_millis(1500));
    write(&s.path, &config(addr.port(), &[("s1", a.addr())], extra));
    reload(&s, 1);
    kept.send("GET / HTTP/1.1\r\n");
    std::thread::sleep(Duration::from_millis(300));
    kept.send("Host: t\r\n\r\n");
    let r = kept.try_read_response("GET").expect("a response");
    assert_eq!(r.status, 200, "{r:?}");
}
