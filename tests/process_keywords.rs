//! haproxy.cfg `global` keywords about the process, on the real binary: `user`/`group`
//! (and `uid`/`gid`) with `chroot` (read back from /proc, every thread, and compared
//! with HAProxy 2.6 running the same file), `daemon` (the command returns once the
//! background process listens; `-db` keeps it in front; `-D` asks for it), and
//! `ulimit-n` (a limit the system will not grant stops the start, as in HAProxy).
//! The tests run as root, as the rest of the suite does.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::haproxy::{haproxy_bin, run_with_env, write_cfg, HaProxy};
use common::*;

/// `Uid:`, `Gid:` and `Groups:` of /proc/PID/status (or of one of its threads).
fn identity(status_path: &str) -> Vec<String> {
    std::fs::read_to_string(status_path)
        .unwrap_or_else(|e| panic!("read {status_path}: {e}"))
        .lines()
        .filter(|l| l.starts_with("Uid:") || l.starts_with("Gid:") || l.starts_with("Groups:"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn root_of(pid: libc::pid_t) -> std::path::PathBuf {
    std::fs::read_link(format!("/proc/{pid}/root")).expect("read /proc/PID/root")
}

fn nobody() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with("nobody:"))
        .expect("a 'nobody' user");
    let f: Vec<&str> = line.split(':').collect();
    (f[2].parse().unwrap(), f[3].parse().unwrap())
}

/// The group `nobody`'s primary gid names (Debian: `nogroup`).
fn nobody_group() -> String {
    let gid = nobody().1.to_string();
    std::fs::read_to_string("/etc/group")
        .unwrap()
        .lines()
        .find(|l| l.split(':').nth(2) == Some(gid.as_str()))
        .and_then(|l| l.split(':').next())
        .expect("nobody's group")
        .to_string()
}

fn proxy_section(bind: &str, backend: &TestBackend) -> String {
    format!(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\nfrontend web\n    bind {bind}\n    default_backend app\nbackend app\n    server s1 {}\n",
        backend.addr()
    )
}

fn get_ok(addr: std::net::SocketAddr) {
    let r = HttpClient::connect(addr).get("/who");
    assert_eq!(r.status, 200, "a request through the proxy: {r:?}");
}

#[test]
fn user_group_and_chroot_apply_to_every_thread_before_serving_as_in_haproxy() {
    let backend = TestBackend::start("b1");
    let jail = tempfile::tempdir().unwrap();
    let (uid, gid) = nobody();
    let global = format!(
        "global\n    nbthread 2\n    chroot {}\n    user nobody\n    group {}\n",
        jail.path().display(),
        nobody_group()
    );
    let lb = common::haproxy::ringlb_cfg(&format!(
        "{global}{}",
        proxy_section("127.0.0.1:0", &backend)
    ));
    let pid = lb.pid();
    let ids = identity(&format!("/proc/{pid}/status"));
    assert_eq!(
        ids,
        vec![
            format!("Uid: {uid} {uid} {uid} {uid}"),
            format!("Gid: {gid} {gid} {gid} {gid}"),
            "Groups:".to_string(),
        ],
        "ringlb's identity"
    );
    // Every thread (shards, health, admin, log) changed with it.
    let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|e| e.ok())
        .collect();
    assert!(tasks.len() > 2, "shards and helper threads");
    for t in tasks {
        let p = t.path().join("status");
        assert_eq!(
            identity(p.to_str().unwrap()),
            ids,
            "thread {:?}",
            t.file_name()
        );
    }
    assert_eq!(root_of(pid), jail.path(), "chrooted into the directory");
    // Bound before, served after.
    get_ok(lb.addr("web"));
    get_ok(lb.addr("web"));

    // HAProxy 2.6 on the same global section ends in the same state.
    let port = ReservedPort::new();
    let addr = port.addr();
    drop(port);
    let hx = HaProxy::start(
        &format!("{global}{}", proxy_section(&addr.to_string(), &backend)),
        &[addr],
        None,
    );
    assert_eq!(
        identity(&format!("/proc/{}/status", hx.pid())),
        ids,
        "HAProxy's"
    );
    assert_eq!(root_of(hx.pid()), jail.path(), "HAProxy's root");
}

#[test]
fn uid_and_gid_take_numbers_and_user_alone_keeps_the_groups() {
    let backend = TestBackend::start("b1");
    let (uid, _) = nobody();
    let lb = common::haproxy::ringlb_cfg(&format!(
        "global\n    nbthread 1\n    uid {uid}\n    gid 4242\n{}",
        proxy_section("127.0.0.1:0", &backend)
    ));
    let ids = identity(&format!("/proc/{}/status", lb.pid()));
    assert_eq!(ids[0], format!("Uid: {uid} {uid} {uid} {uid}"));
    assert_eq!(ids[1], "Gid: 4242 4242 4242 4242");
    get_ok(lb.addr("web"));
    drop(lb);
    // `user` without `group`: the gid (root's) stays, as in HAProxy.
    let lb = common::haproxy::ringlb_cfg(&format!(
        "global\n    nbthread 1\n    user nobody\n{}",
        proxy_section("127.0.0.1:0", &backend)
    ));
    let ids = identity(&format!("/proc/{}/status", lb.pid()));
    assert_eq!(ids[0], format!("Uid: {uid} {uid} {uid} {uid}"));
    assert_eq!(ids[1], "Gid: 0 0 0 0");
    get_ok(lb.addr("web"));
}

#[test]
fn an_unknown_user_or_group_or_a_bad_uid_is_refused_on_its_line() {
    for (line, says) in [
        (
            "user no-such-user-ringlb",
            "cannot find user id for 'no-such-user-ringlb'",
        ),
        (
            "group no-such-group-ringlb",
            "cannot find group id for 'no-such-group-ringlb'",
        ),
        ("uid nobody", "'uid' expects a number"),
        ("ulimit-n lots", "'ulimit-n' expects an integer"),
        ("chroot", "'chroot' expects an argument"),
    ] {
        let cfg = write_cfg(&format!(
            "global\n    {line}\ndefaults\n    mode http\nfrontend web\n    bind 127.0.0.1:0\n"
        ));
        let out = check_config_file(cfg.path().to_str().unwrap());
        assert_eq!(out.code(), Some(1), "{line}: {out:?}");
        assert!(out.stderr.contains(":2: "), "on its line: {line}: {out:?}");
        assert!(out.stderr.contains(says), "{line}: {out:?}");
    }
    // A second one is warned and the first kept, as HAProxy does.
    let cfg = write_cfg(
        "global\n    user nobody\n    user root\ndefaults\n    mode http\nfrontend web\n    bind 127.0.0.1:0\n",
    );
    let out = check_config_file(cfg.path().to_str().unwrap());
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(
        out.stderr.contains(":3: 'user/uid' already specified"),
        "{out:?}"
    );
}

/// A daemon started by a test, killed (by the pid it wrote) when the test ends.
struct Daemon(libc::pid_t);

impl Daemon {
    fn alive(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/status", self.0))
            .map(|s| {
                !s.lines()
                    .any(|l| l.starts_with("State:") && l.contains('Z'))
            })
            .unwrap_or(false)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.alive() {
            // SAFETY: kill(2) on the daemon this test started (its pid file says so).
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
}

fn read_pid(path: &Path) -> libc::pid_t {
    let text = std::fs::read_to_string(path).expect("the pid file");
    text.trim().parse().expect("a pid in the pid file")
}

/// Starts `args`, waits for `ready`, and checks the command itself returned 0 while
/// the daemon (the pid file's) serves on, detached from the terminal.
fn check_daemonized(mut lb: RingLb, pidfile: &Path) -> Daemon {
    let addr = lb.addr("web");
    let status = lb.wait_exit(Duration::from_secs(10));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "the command returns 0 once ready"
    );
    let d = Daemon(read_pid(pidfile));
    assert_ne!(d.0, lb.pid(), "the pid file holds the background process");
    assert!(d.alive(), "the daemon runs on");
    // SAFETY: getsid on a pid.
    assert_eq!(unsafe { libc::getsid(d.0) }, d.0, "a session of its own");
    for fd in 0..3 {
        let target = std::fs::read_link(format!("/proc/{}/fd/{fd}", d.0)).unwrap();
        assert_eq!(target, Path::new("/dev/null"), "fd {fd} detached");
    }
    get_ok(addr);
    d
}

#[test]
fn daemon_forks_into_the_background_and_the_pid_file_names_it() {
    let backend = TestBackend::start("b1");
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("lb.pid");
    let text = format!(
        "global\n    daemon\n    nbthread 2\n    pidfile {}\n{}",
        pidfile.display(),
        proxy_section("127.0.0.1:0", &backend)
    );
    let cfg = dir.path().join("lb.cfg");
    std::fs::write(&cfg, &text).unwrap();
    let lb = RingLb::launch(&["-f", cfg.to_str().unwrap()], None, |l| {
        l.starts_with("ready")
    });
    let addr = lb.addr("web");
    let d = check_daemonized(lb, &pidfile);
    // It reloads (the config builder threads, ended before the fork, come back: a
    // reload that hung there would leave SIGTERM unanswered) and stops on SIGTERM.
    // SAFETY: kill(2) on the daemon this test started.
    unsafe { libc::kill(d.0, libc::SIGHUP) };
    get_ok(addr);
    // SAFETY: as above.
    unsafe { libc::kill(d.0, libc::SIGTERM) };
    wait_for("the daemon to stop", Duration::from_secs(15), || !d.alive());
}

#[test]
fn minus_db_keeps_a_daemon_config_in_the_foreground_and_minus_d_asks_for_the_background() {
    let backend = TestBackend::start("b1");
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("lb.pid");
    let cfg = dir.path().join("lb.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n    daemon\n    nbthread 1\n    pidfile {}\n{}",
            pidfile.display(),
            proxy_section("127.0.0.1:0", &backend)
        ),
    )
    .unwrap();
    let mut lb = RingLb::launch(&["-f", cfg.to_str().unwrap(), "-db"], None, |l| {
        l.starts_with("ready")
    });
    assert_eq!(
        read_pid(&pidfile),
        lb.pid(),
        "the process started is the one serving"
    );
    get_ok(lb.addr("web"));
    assert!(
        lb.wait_exit(Duration::from_millis(300)).is_none(),
        "still in front"
    );
    drop(lb);

    // `-D` on a config without `daemon` (TOML too).
    let toml = format!(
        "[runtime]\nshards = 1\npidfile = \"{}\"\n\n[frontend.web]\nbind = \"127.0.0.1:0\"\nmode = \"http\"\ndefault_backend = \"app\"\n\n[backend.app]\n{}",
        pidfile.display(),
        servers_toml("app", &[backend.addr()])
    );
    let file = dir.path().join("lb.toml");
    std::fs::write(&file, toml).unwrap();
    let lb = RingLb::launch(&["-D", "-f", file.to_str().unwrap()], None, |l| {
        l.starts_with("ready")
    });
    let d = check_daemonized(lb, &pidfile);
    // SAFETY: kill(2) on the daemon this test started.
    unsafe { libc::kill(d.0, libc::SIGTERM) };
    wait_for("the daemon to stop", Duration::from_secs(15), || !d.alive());
}

#[test]
fn a_ulimit_n_the_system_refuses_stops_the_start_as_in_haproxy() {
    // Above fs.nr_open no process may have that many files, root or not.
    let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .map_or(1 << 20, |s| s.trim().parse().unwrap_or(1 << 20));
    let want = nr_open + 1;
    let text = format!(
        "global\n    ulimit-n {want}\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\nfrontend web\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    server s1 127.0.0.1:9\n"
    );
    let cfg = write_cfg(&text);
    let path = cfg.path().to_str().unwrap();
    let out = run(&["-f", path], Duration::from_secs(15));
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("cannot raise the open-file limit to {want}")),
        "{out:?}"
    );
    // HAProxy 2.6 refuses the same file the same way (`strict-limits` is its default).
    {
        let port = ReservedPort::new();
        let hx = run_with_env(
            &haproxy_bin(),
            &[
                "-f",
                write_cfg(&text.replace("127.0.0.1:0", &port.addr().to_string()))
                    .path()
                    .to_str()
                    .unwrap(),
                "-db",
            ],
            &[],
            Duration::from_secs(15),
        );
        assert_eq!(hx.code(), Some(1), "HAProxy: {hx:?}");
        assert!(
            hx.stderr.contains("Cannot raise FD limit"),
            "HAProxy: {hx:?}"
        );
    }
    // A limit already high enough is kept (never lowered) and the process starts.
    let backend = TestBackend::start("b1");
    let lb = common::haproxy::ringlb_cfg(&format!(
        "global\n    nbthread 1\n    ulimit-n 64\n{}",
        proxy_section("127.0.0.1:0", &backend)
    ));
    get_ok(lb.addr("web"));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", lb.pid())).unwrap();
    let soft: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        .unwrap();
    assert!(soft > 64, "not lowered: {soft}");
}
