//! Seamless upgrade: `ringlb -f FILE -sf OLDPID` takes over the old process's listening
//! sockets (SCM_RIGHTS), and its servers' operator states, then soft-stops it; under a
//! loop of new connections no connection is refused or fails.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// Hand-over sockets of the processes these tests start go to one directory of this
/// test binary's own (the same value from every test: no race on the variable).
fn runtime_dir() {
    let dir = std::env::temp_dir().join(format!("ringlb-upgrade-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::env::set_var("RINGLB_RUNTIME_DIR", &dir);
}

#[test]
fn takeover_under_load_loses_nothing() {
    let a = TestBackend::start("a");
    let b = TestBackend::start("b");
    let dir = tempfile::tempdir().unwrap();
    let config = |sock: &str, bind: std::net::SocketAddr| {
        format!(
            "[runtime]\nshards = 2\n[admin]\nstats_socket = \"{}/{sock}\"\n[frontend.web]\nbind = \"{bind}\"\ndefault_backend = \"app\"\n[backend.app]\n[[backend.app.server]]\nname = \"s1\"\naddr = \"{}\"\n[[backend.app.server]]\nname = \"s2\"\naddr = \"{}\"\n",
            dir.path().display(),
            a.addr(),
            b.addr()
        )
    };
    runtime_dir();
    let old_cfg = dir.path().join("old.toml");
    std::fs::write(&old_cfg, config("old.sock", "127.0.0.1:0".parse().unwrap())).unwrap();
    let mut old = RingLb::launch(&["-f", old_cfg.to_str().unwrap()], None, |l| {
        l.starts_with("ready")
    });
    let addr = old.addr("web");
    assert_eq!(
        cli(
            &dir.path().join("old.sock"),
            "set server app/s1 state drain"
        ),
        "\n"
    );

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
                        Ok(r) if r.status == 200 => done.fetch_add(1, Ordering::Relaxed),
                        _ => failures.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    wait_for("traffic on the old process", Duration::from_secs(5), || {
        done.load(Ordering::Relaxed) > 50
    });

    let new_cfg = dir.path().join("new.toml");
    // The new process names the port the old one got, as an operator's file would.
    std::fs::write(&new_cfg, config("new.sock", addr)).unwrap();
    let pid = old.pid().to_string();
    let new = RingLb::launch(&["-f", new_cfg.to_str().unwrap(), "-sf", &pid], None, |l| {
        l.starts_with("ready")
    });
    assert!(
        new.stderr().contains("took over the listeners"),
        "{}",
        new.stderr()
    );
    let status = old
        .wait_exit(Duration::from_secs(10))
        .expect("the old process finished");
    assert_eq!(status.code(), Some(0));
    let before = done.load(Ordering::Relaxed);
    wait_for("traffic on the new process", Duration::from_secs(5), || {
        done.load(Ordering::Relaxed) > before + 50
    });
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "no refused or failed connection across the upgrade"
    );
    // The operator's drain came along.
    let stat = cli(&dir.path().join("new.sock"), "show stat");
    assert!(
        stat.lines()
            .any(|l| l.starts_with("app,s1,") && l.contains(",DRAIN,")),
        "{stat}"
    );
}

#[test]
fn a_failed_handover_binds_anew_and_says_so() {
    let a = TestBackend::start("a");
    let dir = tempfile::tempdir().unwrap();
    runtime_dir();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[runtime]\nshards = 1\n[frontend.web]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"app\"\n[backend.app]\n[[backend.app.server]]\naddr = \"{}\"\n",
            a.addr()
        ),
    )
    .unwrap();
    // No process 999999 to take over from.
    let lb = RingLb::launch(&["-f", cfg.to_str().unwrap(), "-sf", "999999"], None, |l| {
        l.starts_with("ready")
    });
    assert!(
        lb.stderr().contains("hand-over failed; binding anew"),
        "{}",
        lb.stderr()
    );
    assert_eq!(http_get(lb.addr("web"), "/").status, 200);
}
