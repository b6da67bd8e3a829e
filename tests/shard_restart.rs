//! Supervision: a shard whose runtime dies of a panic is restarted on its core, takes
//! its listeners back, keeps the operator's server states, and the other shard never
//! stops. The fault hook (debug builds, `fault-injection` feature) kills a shard when
//! it receives a request for `RINGLB_FAULT_PANIC_PATH/shard`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// The fault hook for every ringlb this binary starts, and a runtime directory for
/// hand-over sockets; set once, before any test starts a process.
fn env() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::env::set_var("RINGLB_FAULT_PANIC_PATH", "/boom");
        let dir = std::env::temp_dir().join(format!("ringlb-restart-tests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::env::set_var("RINGLB_RUNTIME_DIR", &dir);
    });
}

/// Sends the request that kills the shard it lands on, and waits for the restart.
fn kill_a_shard(lb: &RingLb, addr: std::net::SocketAddr) {
    let mut kill = HttpClient::connect(addr);
    kill.set_timeout(Duration::from_secs(10));
    let _ = kill.try_request(get_request("/boom/shard"));
    wait_for("the shard to die", Duration::from_secs(10), || {
        lb.stderr().contains("shard runtime died")
    });
    wait_for("the shard to restart", Duration::from_secs(10), || {
        lb.stderr().contains("shard runtime restarted")
    });
}

#[test]
fn a_dead_shard_restarts_and_the_other_keeps_serving() {
    env();
    let a = TestBackend::start("a");
    let b = TestBackend::start("b");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("ringlb.sock");
    let lb = RingLb::start(&format!(
        "[runtime]\nshards = 2\n[admin]\nstats_socket = \"{}\"\nlisten = \"127.0.0.1:0\"\n[timeout]\nclient = \"60s\"\nhttp_keep_alive = \"60s\"\n[frontend.web]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"app\"\n[backend.app]\n[[backend.app.server]]\nname = \"s1\"\naddr = \"{}\"\n[[backend.app.server]]\nname = \"s2\"\naddr = \"{}\"\n",
        sock.display(),
        a.addr(),
        b.addr()
    ));
    let addr = lb.addr("web");
    let pid = lb.pid();
    // An operator state and an address the restarted shard must not forget.
    assert_eq!(cli(&sock, "set server app/s2 state maint").trim(), "");
    let c = TestBackend::start("c");
    let moved = cli(
        &sock,
        &format!("set server app/s1 addr 127.0.0.1 port {}", c.addr().port()),
    );
    assert!(moved.contains("port changed"), "{moved}");

    // Keep-alive clients spread over both shards.
    let mut clients: Vec<HttpClient> = (0..8)
        .map(|_| {
            let mut c = HttpClient::connect(addr);
            c.set_timeout(Duration::from_secs(10));
            assert_eq!(c.get("/").status, 200);
            c
        })
        .collect();
    let idle_fds = fd_count(pid);

    // A client opening a new connection per request, all along.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let looping = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let r = HttpClient::try_connect(addr).and_then(|mut c| {
                    c.set_timeout(Duration::from_secs(3));
                    c.try_request(get_request("/"))
                });
                match r {
                    Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };

    // Kill whichever shard the kernel hands the request to.
    kill_a_shard(&lb, addr);
    let before = ok.load(Ordering::Relaxed);
    wait_for(
        "200 more requests through both shards",
        Duration::from_secs(30),
        || ok.load(Ordering::Relaxed) >= before + 200,
    );
    stop.store(true, Ordering::Relaxed);
    looping.join().unwrap();
    // Only a connection the dying shard had already taken may be lost (the one in
    // flight, or one its io_uring accepted as it died), never one that came after.
    assert!(
        failed.load(Ordering::Relaxed) <= 2,
        "{} failed, {} succeeded",
        failed.load(Ordering::Relaxed),
        ok.load(Ordering::Relaxed)
    );

    // Clients of the dead shard are told at once (closed, not left hanging until a
    // timeout); the others go on.
    let (mut alive, mut cut) = (0, 0);
    for c in &mut clients {
        match c.try_request(get_request("/")) {
            Ok(r) => {
                assert_eq!(r.status, 200);
                alive += 1;
            }
            Err(e) => {
                assert!(
                    !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                    "a client of the dead shard was left hanging: {e}"
                );
                cut += 1;
            }
        }
    }
    assert!(
        alive > 0,
        "the other shard's clients keep their connections"
    );
    assert!(
        lb.stderr().contains("connections_closed=") && alive + cut == 8,
        "{}",
        lb.stderr()
    );

    // The restarted shard remembers that s2 is in maintenance and where s1 is now,
    // and accepts again.
    let (served_by_a, served_by_b) = (a.requests(), b.requests());
    for _ in 0..50 {
        assert_eq!(http_get(addr, "/").status, 200);
    }
    assert_eq!(b.requests(), served_by_b, "s2 is still in maintenance");
    assert_eq!(
        a.requests(),
        served_by_a,
        "s1 went back to its config address"
    );
    let m = http_get(lb.admin_addr(), "/metrics").body_str();
    assert!(m.contains("ringlb_shard_restarts_total 1"), "{m}");
    // What the dead runtime leaves behind is bounded: its ring, its listener and the
    // descriptors of the connections it served.
    assert!(
        fd_count(pid) <= idle_fds + 16,
        "{} fds, {idle_fds} before",
        fd_count(pid)
    );
}

#[test]
fn an_upgrade_after_a_restart_takes_over_the_new_sockets() {
    env();
    let a = TestBackend::start("a");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ringlb.toml");
    let config = |bind: std::net::SocketAddr| {
        format!(
            "[runtime]\nshards = 2\n[frontend.web]\nbind = \"{bind}\"\ndefault_backend = \"app\"\n[backend.app]\n[[backend.app.server]]\naddr = \"{}\"\n",
            a.addr()
        )
    };
    std::fs::write(&cfg, config("127.0.0.1:0".parse().unwrap())).unwrap();
    let mut old = RingLb::launch(&["-f", cfg.to_str().unwrap()], None, |l| {
        l.starts_with("ready")
    });
    let addr = old.addr("web");
    kill_a_shard(&old, addr);
    // The new process names the port the old one got, as an operator's file would.
    std::fs::write(&cfg, config(addr)).unwrap();

    let pid = old.pid().to_string();
    let new = RingLb::launch(&["-f", cfg.to_str().unwrap(), "-sf", &pid], None, |l| {
        l.starts_with("ready")
    });
    assert!(
        new.stderr().contains("took over the listeners"),
        "{}",
        new.stderr()
    );
    assert!(
        old.wait_exit(Duration::from_secs(10)).is_some(),
        "the old process exits"
    );
    for _ in 0..100 {
        assert_eq!(http_get(addr, "/").status, 200);
    }
    // Every socket handed over is a live listener: none was the one shut down.
    assert!(!new.stderr().contains("accept failed"), "{}", new.stderr());
}
