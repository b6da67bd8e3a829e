//! Debian's HAProxy 2.6 beside ringlb, for the tests that hold ringlb to HAProxy's
//! behaviour on the same haproxy.cfg: the fixtures under `tests/fixtures/haproxy/`
//! (with `"${VAR}"` placeholders), `-c` runs of either binary with an environment,
//! HAProxy in the foreground (`-db`) ready once its ports accept and killed by its PID
//! in `Drop`, ringlb started on haproxy.cfg text, and the runtime API on a unix socket.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::NamedTempFile;

use super::proc::{collect_text, Output, RingLb, BIN};

/// How long HAProxy may take to accept on its ports.
pub const HAPROXY_READY_DEADLINE: Duration = Duration::from_secs(10);
/// How long a `-c` run may take.
pub const CHECK_DEADLINE: Duration = Duration::from_secs(15);

/// The HAProxy binary: `$HAPROXY_BIN`, else Debian's `/usr/sbin/haproxy`, else
/// `haproxy` from `PATH`.
pub fn haproxy_bin() -> String {
    if let Ok(b) = std::env::var("HAPROXY_BIN") {
        return b;
    }
    if Path::new("/usr/sbin/haproxy").exists() {
        return "/usr/sbin/haproxy".into();
    }
    "haproxy".into()
}

/// `tests/fixtures/haproxy/NAME`.
pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/haproxy")
        .join(name)
}

/// The text of `tests/fixtures/haproxy/NAME`.
pub fn fixture(name: &str) -> String {
    let p = fixture_path(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// `text` with every `${NAME}` of `vars` replaced by its value; panics if a `${`
/// placeholder is left, so a test cannot run a config with a variable it forgot.
pub fn render(text: &str, vars: &[(&str, String)]) -> String {
    let mut out = text.to_string();
    for (name, value) in vars {
        out = out.replace(&format!("${{{name}}}"), value);
    }
    if let Some(i) = out.find("${") {
        let end = out[i..].find('}').map_or(out.len(), |j| i + j + 1);
        panic!("placeholder {} left unset in:\n{out}", &out[i..end]);
    }
    out
}

/// Writes haproxy.cfg `text` to a fresh temporary `.cfg` file.
pub fn write_cfg(text: &str) -> NamedTempFile {
    let mut f = tempfile::Builder::new()
        .prefix("ringlb-haproxy-")
        .suffix(".cfg")
        .tempfile()
        .expect("create temp cfg");
    f.write_all(text.as_bytes()).expect("write temp cfg");
    f.flush().unwrap();
    f
}

/// Runs `bin args` with `env` added to the environment, to completion; killed (by its
/// PID) after `timeout`.
pub fn run_with_env(bin: &str, args: &[&str], env: &[(&str, String)], timeout: Duration) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {bin}: {e} (is it installed?)"));
    let pid = child.id() as libc::pid_t;
    let read_all = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            String::from_utf8_lossy(&v).into_owned()
        })
    };
    let out = read_all(Box::new(child.stdout.take().unwrap()));
    let err = read_all(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() >= deadline {
            // SAFETY: kill(2) on the PID of our own child, not reaped yet.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = child.wait();
            panic!("{bin} {args:?} did not finish within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// `haproxy -c -f PATH` with `env`.
pub fn haproxy_check(path: &Path, env: &[(&str, String)]) -> Output {
    let p = path.to_str().expect("utf-8 path");
    run_with_env(&haproxy_bin(), &["-c", "-f", p], env, CHECK_DEADLINE)
}

/// `ringlb -c -f PATH` with `env`.
pub fn ringlb_check(path: &Path, env: &[(&str, String)]) -> Output {
    let p = path.to_str().expect("utf-8 path");
    run_with_env(BIN, &["-c", "-f", p], env, CHECK_DEADLINE)
}

/// ringlb running haproxy.cfg `text` (written to a temporary `.cfg` file kept while it
/// runs), ready once it printed `ready`. In the foreground (`-db`, as `HaProxy::start`
/// runs HAProxy) whatever `daemon` says, so that the test holds the process it stops.
pub fn ringlb_cfg(text: &str) -> RingLb {
    let cfg = write_cfg(text);
    let path = cfg.path().to_str().expect("utf-8 temp path").to_string();
    RingLb::launch(&["-f", &path, "-db"], Some(cfg), |line| {
        line.starts_with("ready")
    })
}

/// `haproxy -f FILE -db`: HAProxy in the foreground, killed by its PID in `Drop`.
pub struct HaProxy {
    child: Child,
    pid: libc::pid_t,
    exited: bool,
    stderr: Arc<Mutex<String>>,
    _cfg: NamedTempFile,
}

impl HaProxy {
    /// Starts HAProxy on haproxy.cfg `text` and waits until every address of `ports`
    /// accepts a connection and, if given, `socket` (its stats socket) accepts too.
    /// HAProxy refuses `bind :0`: give it the ports of `ReservedPort`s the caller
    /// holds (refused until HAProxy listens, and no other test can take them).
    pub fn start(text: &str, ports: &[SocketAddr], socket: Option<&Path>) -> HaProxy {
        let cfg = write_cfg(text);
        let bin = haproxy_bin();
        let mut child = Command::new(&bin)
            .args(["-f", cfg.path().to_str().unwrap(), "-db"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {bin}: {e} (is haproxy installed?)"));
        let pid = child.id() as libc::pid_t;
        let stderr = Arc::new(Mutex::new(String::new()));
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            collect_text(pipe, stderr.clone());
        }
        let mut hx = HaProxy {
            child,
            pid,
            exited: false,
            stderr,
            _cfg: cfg,
        };
        let deadline = Instant::now() + HAPROXY_READY_DEADLINE;
        let ready = || {
            ports
                .iter()
                .all(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok())
                && socket.is_none_or(|s| UnixStream::connect(s).is_ok())
        };
        loop {
            if let Some(status) = hx.child.try_wait().expect("try_wait") {
                hx.exited = true;
                panic!(
                    "haproxy exited before it was ready ({status})\n--- config ---\n{text}\n--- output ---\n{}",
                    hx.output()
                );
            }
            if ready() {
                return hx;
            }
            if Instant::now() >= deadline {
                panic!(
                    "haproxy not ready within {HAPROXY_READY_DEADLINE:?}\n--- output ---\n{}",
                    hx.output()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// What HAProxy printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        if !self.exited {
            // SAFETY: kill(2) on the PID of our own child, which has not been reaped.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = self.child.wait();
        }
        if thread::panicking() {
            eprintln!(
                "---- haproxy (pid {}) output ----\n{}",
                self.pid,
                self.output()
            );
        }
    }
}

/// One runtime API exchange on the unix socket `sock`: send `line`, read until the
/// other side closes (HAProxy's non-interactive mode).
pub fn cli(sock: &Path, line: &str) -> String {
    let mut s =
        UnixStream::connect(sock).unwrap_or_else(|e| panic!("connect to {}: {e}", sock.display()));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out)
        .unwrap_or_else(|e| panic!("read the answer to {line:?}: {e}"));
    out
}

/// Asserts that `ringlb -c` refuses each haproxy.cfg text of `cases`, (config, line
/// as ":N:", what the error says), with that error on that line.
pub fn assert_refused(cases: &[(&str, &str, &str)]) {
    for &(cfg, line, what) in cases {
        let file = write_cfg(cfg);
        let out = super::check_config_file(file.path().to_str().unwrap());
        assert_eq!(out.code(), Some(1), "{cfg}: {}", out.stderr);
        let hit = out.stderr.lines().find(|l| l.contains(what));
        assert!(
            hit.is_some_and(|l| l.contains(line)),
            "{what}: {}",
            out.stderr
        );
    }
}
