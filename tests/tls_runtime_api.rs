//! Certificates replaced while serving: `set ssl cert` + `commit ssl cert` on the stats
//! socket, a file replaced then SIGUSR2, and a `-sf` upgrade, each under a load of new
//! TLS connections and a keep-alive connection: no request fails, the keep-alive
//! connection goes on, and the first handshake after the change (the commit's answer,
//! the reload's `reloaded` line, the new process's `ready`) sees the new serial. The
//! runtime API's words are HAProxy 2.6's, compared command by command.

mod common;
mod tls_util;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::haproxy::{ringlb_cfg, HaProxy};
use common::tcp::ReservedPort;
use common::*;
use tls_util::*;

const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n";

/// A client that never resumes: each handshake shows the certificate in force.
fn fresh_client(pki: &Pki) -> Arc<rustls::ClientConfig> {
    let mut c = (*client_config(&pki.ca_der(), ClientOpts::default())).clone();
    c.resumption = rustls::client::Resumption::disabled();
    Arc::new(c)
}

fn serial_at(addr: std::net::SocketAddr, pki: &Pki) -> String {
    Https::connect(addr, fresh_client(pki), "a.test")
        .unwrap()
        .serial()
}

/// New TLS connections in a loop, and (`keep_alive`) one keep-alive connection, until
/// stopped.
struct Load {
    keep_alive: bool,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    kept: Arc<AtomicUsize>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(
        addr: impl Fn() -> std::net::SocketAddr + Send + Clone + 'static,
        pki: &Pki,
        keep_alive: bool,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let kept = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for resume in [true, false] {
            let (stop, done, failures, addr) =
                (stop.clone(), done.clone(), failures.clone(), addr.clone());
            let cfg = if resume {
                client_config(&pki.ca_der(), ClientOpts::default())
            } else {
                fresh_client(pki)
            };
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match https_get(addr(), cfg.clone(), "a.test", "/") {
                        Ok((a, _)) if a.status == 200 => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        other => failures.lock().unwrap().push(format!("{other:?}")),
                    }
                }
            }));
        }
        let (stop2, kept2, failures2) = (stop.clone(), kept.clone(), failures.clone());
        let cfg = client_config(&pki.ca_der(), ClientOpts::default());
        let first = addr();
        threads.extend(keep_alive.then(|| {
            std::thread::spawn(move || {
                let mut c = Https::connect(first, cfg, "a.test").unwrap();
                while !stop2.load(Ordering::Relaxed) {
                    match c.get("a.test", "/") {
                        Ok(a) if a.status == 200 => {
                            kept2.fetch_add(1, Ordering::Relaxed);
                        }
                        other => {
                            failures2
                                .lock()
                                .unwrap()
                                .push(format!("keep-alive: {other:?}"));
                            return;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        }));
        Load {
            keep_alive,
            stop,
            done,
            kept,
            failures,
            threads,
        }
    }

    fn wait_more(&self, what: &str) {
        let (d, k) = (
            self.done.load(Ordering::Relaxed),
            self.kept.load(Ordering::Relaxed),
        );
        wait_for(what, Duration::from_secs(10), || {
            self.done.load(Ordering::Relaxed) >= d + 20
                && (!self.keep_alive || self.kept.load(Ordering::Relaxed) >= k + 5)
        });
    }

    fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let f = self.failures.lock().unwrap().clone();
        f
    }
}

fn pem_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn set_and_commit_under_load_fail_nothing_and_new_handshakes_see_the_new_serial() {
    let pki = Pki::new("Test CA");
    let s1 = pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let s2 = pki.server("next.pem", &["a.test"], "a.test", Alg::Rsa, false);
    let app = TestBackend::start("app");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("admin.sock");
    let cfg = format!(
        "global\n    nbthread 2\n    stats socket {}\n{DEFAULTS}frontend fe\n    bind 127.0.0.1:0 ssl crt {}\n    default_backend be\nbackend be\n    server s1 {}\n",
        sock.display(),
        pki.path("a.pem").display(),
        app.addr()
    );
    let lb = ringlb_cfg(&cfg);
    let addr = lb.addr("fe");
    let hex = |s: u64| format!("{s:02X}");
    assert_eq!(serial_at(addr, &pki), hex(s1));
    let load = Load::start(move || addr, &pki, true);
    load.wait_more("load before the change");
    let name = pki.path("a.pem").display().to_string();
    let set = cli(
        &sock,
        &format!("set ssl cert {name} <<\n{}", pem_of(&pki.path("next.pem"))),
    );
    assert_eq!(
        set,
        format!("Transaction created for certificate {name}!\n\n")
    );
    // Not in force before the commit.
    assert_eq!(serial_at(addr, &pki), hex(s1));
    let commit = cli(&sock, &format!("commit ssl cert {name}"));
    assert_eq!(commit, format!("Committing {name}.\nSuccess!\n\n"));
    // In force when answered, on every shard.
    for _ in 0..10 {
        assert_eq!(serial_at(addr, &pki), hex(s2));
    }
    let shown = cli(&sock, &format!("show ssl cert {name}"));
    assert!(shown.contains(&format!("Serial: {}\n", hex(s2))), "{shown}");
    assert!(shown.contains("Algorithm: RSA2048\n"), "{shown}");
    load.wait_more("load after the change");
    let failures = load.finish();
    assert!(failures.is_empty(), "{failures:?}");
}

#[test]
fn a_reload_and_an_upgrade_under_load_fail_nothing_and_serve_the_new_file() {
    let pki = Pki::new("Test CA");
    let s1 = pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let app = TestBackend::start("app");
    let dir = tempfile::tempdir().unwrap();
    let runtime = std::env::temp_dir().join(format!("ringlb-tls-api-{}", std::process::id()));
    std::fs::create_dir_all(&runtime).unwrap();
    std::env::set_var("RINGLB_RUNTIME_DIR", &runtime);
    let cfg = |bind: &str| {
        format!(
            "global\n    nbthread 2\n{DEFAULTS}frontend fe\n    bind {bind} ssl crt {}\n    default_backend be\nbackend be\n    server s1 {}\n",
            pki.path("a.pem").display(),
            app.addr()
        )
    };
    let path = dir.path().join("ringlb.cfg");
    std::fs::write(&path, cfg("127.0.0.1:0")).unwrap();
    let mut old = RingLb::launch(&["-f", path.to_str().unwrap()], None, |l| {
        l.starts_with("ready")
    });
    let addr = old.addr("fe");
    let hex = |s: u64| format!("{s:02X}");
    assert_eq!(serial_at(addr, &pki), hex(s1));
    let load = Load::start(move || addr, &pki, true);
    load.wait_more("load before the reload");
    // The file changes on disk, then SIGUSR2.
    let s2 = pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    std::fs::write(&path, cfg(&addr.to_string())).unwrap();
    old.signal(libc::SIGUSR2);
    wait_for("the reload", Duration::from_secs(10), || {
        old.stdout_count("reloaded") == 1
    });
    for _ in 0..10 {
        assert_eq!(serial_at(addr, &pki), hex(s2));
    }
    load.wait_more("load after the reload");
    let failures = load.finish();
    assert!(failures.is_empty(), "{failures:?}");
    // And once more with a new process taking the listeners over (its soft stop
    // closes the old process's idle keep-alive connections, as HAProxy's does: only
    // new connections here).
    let load = Load::start(move || addr, &pki, false);
    load.wait_more("load before the upgrade");
    let s3 = pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let pid = old.pid().to_string();
    let new = RingLb::launch(&["-f", path.to_str().unwrap(), "-sf", &pid], None, |l| {
        l.starts_with("ready")
    });
    assert!(
        new.stderr().contains("took over the listeners"),
        "{}",
        new.stderr()
    );
    let status = old
        .wait_exit(Duration::from_secs(10))
        .expect("the old process ended");
    assert_eq!(status.code(), Some(0));
    for _ in 0..10 {
        assert_eq!(serial_at(addr, &pki), hex(s3));
    }
    load.wait_more("load after the upgrade");
    let failures = load.finish();
    assert!(failures.is_empty(), "{failures:?}");
}

#[test]
fn the_certificate_commands_answer_in_haproxys_words() {
    let pki = Pki::new("Test CA");
    pki.server(
        "a.pem",
        &["a.test", "www.a.test"],
        "a.test",
        Alg::Ecdsa,
        false,
    );
    pki.server("b.pem", &["b.test"], "b.test", Alg::Rsa, false);
    let a = pki.path("a.pem").display().to_string();
    let b = pki.path("b.pem").display().to_string();
    let b_pem = pem_of(&pki.path("b.pem"));
    let cert_only: String = b_pem
        .split_inclusive('\n')
        .take_while(|l| !l.contains("PRIVATE KEY"))
        .collect();
    let script: Vec<String> = vec![
        "show ssl cert".into(),
        format!("show ssl cert {a}"),
        "show ssl cert nope.pem".into(),
        format!("set ssl cert {a} <<\n{b_pem}"),
        "show ssl cert".into(),
        format!("show ssl cert *{a}"),
        format!("commit ssl cert {b}"),
        format!("abort ssl cert {b}"),
        format!("commit ssl cert {a}"),
        format!("show ssl cert {a}"),
        format!("commit ssl cert {a}"),
        format!("abort ssl cert {a}"),
        format!("set ssl cert {a} <<\ngarbage\n"),
        format!("set ssl cert /nope/x.pem <<\n{b_pem}"),
        format!("set ssl cert {a}"),
        format!("set ssl cert {a} <<\n{cert_only}"),
        format!("commit ssl cert {a}"),
        format!("abort ssl cert {a}"),
        "show ssl cert".into(),
        "set ssl cert".into(),
        "commit ssl cert".into(),
        "abort ssl cert".into(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let body = |sock: &Path, bind: &str| {
        format!(
            "global\n    stats socket {} level admin\n{DEFAULTS}frontend fe\n    bind {bind} ssl crt {a} crt {b}\n    default_backend be\nbackend be\n    server s1 127.0.0.1:1\n",
            sock.display()
        )
    };
    let hsock = dir.path().join("hx.sock");
    let held = ReservedPort::new();
    let hx: Vec<String> = {
        let _h = HaProxy::start(
            &body(&hsock, &held.addr().to_string()),
            &[held.addr()],
            Some(&hsock),
        );
        script.iter().map(|c| cli(&hsock, c)).collect()
    };
    let rsock = dir.path().join("rl.sock");
    let lb = ringlb_cfg(&body(&rsock, "127.0.0.1:0"));
    let _ = lb.addr("fe");
    for (cmd, h) in script.iter().zip(&hx) {
        let r = cli(&rsock, cmd);
        assert_eq!(&r, h, "{}", cmd.lines().next().unwrap_or(""));
    }
}
