//! The real `ringlb` binary as a child process: started from a TOML string, ready when
//! it prints `ready`, killed by its PID in `Drop`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tempfile::NamedTempFile;

pub const BIN: &str = env!("CARGO_BIN_EXE_ringlb");
/// How long the binary may take to print `ready`.
pub const READY_DEADLINE: Duration = Duration::from_secs(15);

pub struct RingLb {
    child: Child,
    pid: libc::pid_t,
    frontends: Vec<(String, SocketAddr)>,
    admin: Option<SocketAddr>,
    shards: Option<usize>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
    exit: Option<ExitStatus>,
    _config: Option<NamedTempFile>,
}

/// Writes `toml` to a fresh temporary file.
pub fn write_config(toml: &str) -> NamedTempFile {
    let mut f = tempfile::Builder::new()
        .prefix("ringlb-test-")
        .suffix(".toml")
        .tempfile()
        .expect("create temp config");
    f.write_all(toml.as_bytes()).expect("write temp config");
    f.flush().unwrap();
    f
}

impl RingLb {
    /// Runs `ringlb -f CONFIG` and waits for its `ready` line.
    pub fn start(toml: &str) -> RingLb {
        let cfg = write_config(toml);
        let path = cfg.path().to_str().expect("utf-8 temp path").to_string();
        Self::launch(&["-f", &path], Some(cfg), |line| line.starts_with("ready"))
    }

    /// Runs `ringlb demo --port PORT` and waits for its `listening` line.
    pub fn demo(port: u16) -> RingLb {
        let port = port.to_string();
        Self::launch(&["demo", "--port", &port], None, |line| {
            line.starts_with("listening ")
        })
    }

    /// Runs `ringlb -f CONFIG` with its open-file limit (soft and hard) set to
    /// `nofile` before it starts, and waits for its `ready` line.
    pub fn start_with_fd_limit(toml: &str, nofile: u64) -> RingLb {
        use std::os::unix::process::CommandExt;
        let cfg = write_config(toml);
        let path = cfg.path().to_str().expect("utf-8 temp path").to_string();
        let mut cmd = Command::new(BIN);
        cmd.args(["-f", &path]);
        // SAFETY: only setrlimit, which is async-signal-safe, runs in the child
        // between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: nofile,
                    rlim_max: nofile,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Self::launch_command(cmd, &["-f", &path], Some(cfg), |line| {
            line.starts_with("ready")
        })
    }

    /// Spawns the binary with `args` and reads its stdout until `done(line)`.
    pub fn launch(
        args: &[&str],
        config: Option<NamedTempFile>,
        done: impl Fn(&str) -> bool,
    ) -> RingLb {
        Self::launch_env(args, config, &[], done)
    }

    /// `launch` with more environment variables (`RINGLB_REDIS_URL`, ...).
    pub fn launch_env(
        args: &[&str],
        config: Option<NamedTempFile>,
        env: &[(&str, String)],
        done: impl Fn(&str) -> bool,
    ) -> RingLb {
        let mut cmd = Command::new(BIN);
        cmd.args(args).envs(env.iter().map(|(k, v)| (k, v)));
        Self::launch_command(cmd, args, config, done)
    }

    /// Spawns `cmd` (the binary with `args`) and reads its stdout until `done(line)`.
    fn launch_command(
        mut cmd: Command,
        args: &[&str],
        config: Option<NamedTempFile>,
        done: impl Fn(&str) -> bool,
    ) -> RingLb {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
        let pid = child.id() as libc::pid_t;

        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_reader = collect_text(child.stderr.take().unwrap(), stderr.clone());

        let stdout = Arc::new(Mutex::new(Vec::new()));
        let out_pipe = child.stdout.take().unwrap();
        let lines = stdout.clone();
        let (tx, rx) = mpsc::channel::<String>();
        thread::spawn(move || {
            for line in BufReader::new(out_pipe).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });

        let mut lb = RingLb {
            child,
            pid,
            frontends: Vec::new(),
            admin: None,
            shards: None,
            stdout,
            stderr,
            stderr_reader: Some(stderr_reader),
            exit: None,
            _config: config,
        };
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    lb.note_line(&line);
                    if done(&line) {
                        return lb;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    lb.kill();
                    panic!(
                        "ringlb {args:?} not ready within {READY_DEADLINE:?}\nstdout:\n{}\nstderr:\n{}",
                        lb.stdout_lines().join("\n"),
                        lb.stderr()
                    );
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = lb.wait_exit(Duration::from_secs(5));
                    if status.is_none() {
                        lb.kill();
                    }
                    lb.join_stderr();
                    panic!(
                        "ringlb {args:?} closed stdout before ready (exit {status:?})\nstdout:\n{}\nstderr:\n{}",
                        lb.stdout_lines().join("\n"),
                        lb.stderr()
                    );
                }
            }
        }
    }

    fn note_line(&mut self, line: &str) {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("listening") if line.starts_with("listening admin ") => {
                self.admin = words
                    .find_map(|w| w.strip_prefix("addr="))
                    .and_then(|a| a.parse().ok());
            }
            // TCP stats sockets: read by the tests from `stdout_lines`.
            Some("listening") if line.starts_with("listening stats ") => {}
            Some("listening") => match frontend_line(line) {
                Some(fa) => self.frontends.push(fa),
                None => panic!("malformed listening line {line:?}"),
            },
            Some("ready") => {
                self.shards = words
                    .find_map(|w| w.strip_prefix("shards="))
                    .and_then(|n| n.parse().ok());
            }
            _ => {}
        }
    }

    /// The (first) address frontend `name` listens on.
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.addrs(name).first().copied().unwrap_or_else(|| {
            panic!(
                "no listening line for frontend {name:?}; stdout: {:?}",
                self.stdout_lines()
            )
        })
    }

    /// Every address frontend `name` listens on, in the order printed.
    pub fn addrs(&self, name: &str) -> Vec<SocketAddr> {
        self.frontends
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, a)| *a)
            .collect()
    }

    /// The address frontend `name` listens on by the latest `listening` line printed so
    /// far: a reload prints them all again, with the port a new `:0` bind got.
    pub fn latest_addr(&self, name: &str) -> Option<SocketAddr> {
        self.stdout_lines()
            .iter()
            .rev()
            .filter_map(|l| frontend_line(l))
            .find(|(n, _)| n == name)
            .map(|(_, a)| a)
    }

    /// The admin HTTP listener's address (`listening admin addr=...`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.unwrap_or_else(|| {
            panic!(
                "no `listening admin` line; stdout: {:?}",
                self.stdout_lines()
            )
        })
    }

    /// `N` of the `ready shards=N` line.
    pub fn shards(&self) -> Option<usize> {
        self.shards
    }

    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Everything the binary wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Every line the binary wrote to stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// How many of the lines the binary wrote to stdout so far are `line`.
    pub fn stdout_count(&self, line: &str) -> usize {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .filter(|l| *l == line)
            .count()
    }

    /// Sends `sig` to the child (by its PID).
    pub fn signal(&self, sig: libc::c_int) {
        if self.exit.is_some() {
            return;
        }
        // SAFETY: kill(2) on the PID of our own child, which has not been reaped yet.
        let rc = unsafe { libc::kill(self.pid, sig) };
        assert_eq!(
            rc,
            0,
            "kill({}, {sig}) failed: {}",
            self.pid,
            std::io::Error::last_os_error()
        );
    }

    /// Waits up to `timeout` for the child to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.exit {
            return Some(s);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                self.exit = Some(s);
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill(&mut self) {
        if self.exit.is_none() {
            self.signal(libc::SIGKILL);
            self.exit = self.child.wait().ok();
        }
    }

    fn join_stderr(&mut self) {
        if let Some(h) = self.stderr_reader.take() {
            let _ = h.join();
        }
    }
}

/// (frontend, address) of a `listening frontend=NAME addr=IP:PORT` line.
fn frontend_line(line: &str) -> Option<(String, SocketAddr)> {
    let mut words = line.split_whitespace();
    if words.next() != Some("listening") {
        return None;
    }
    let mut name = None;
    let mut addr = None;
    for w in words {
        if let Some(v) = w.strip_prefix("frontend=") {
            name = Some(v.to_string());
        } else if let Some(v) = w.strip_prefix("addr=") {
            addr = v.parse::<SocketAddr>().ok();
        }
    }
    Some((name?, addr?))
}

impl Drop for RingLb {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!(
                "---- ringlb (pid {}) stderr ----\n{}",
                self.pid,
                self.stderr()
            );
        }
    }
}

/// What a short run of the binary printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Runs the binary with `args` to completion, killing it after `timeout`.
/// A thread appending what `from` yields (a child's pipe) to `into`, until EOF.
pub fn collect_text(
    mut from: impl Read + Send + 'static,
    into: Arc<Mutex<String>>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
}

pub fn run(args: &[&str], timeout: Duration) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
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
            panic!("ringlb {args:?} did not finish within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// `ringlb -c -f FILE` on `toml`.
pub fn check_config(toml: &str) -> Output {
    let cfg = write_config(toml);
    check_config_file(cfg.path().to_str().unwrap())
}

/// `ringlb -c -f PATH`.
pub fn check_config_file(path: &str) -> Output {
    run(&["-c", "-f", path], Duration::from_secs(15))
}

/// Resident memory of process `pid`, in KiB (0 if it is gone).
pub fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// RSS (KiB) of process `pid` once it has given back what it will (memory goes back on
/// a one-second tick): after two ticks, once two readings a second apart agree within
/// 64 KiB, or after 15 s.
pub fn settled_rss(pid: i32) -> u64 {
    std::thread::sleep(Duration::from_millis(2500));
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = rss_kib(pid);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = rss_kib(pid);
        if now.abs_diff(last) < 64 || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// Open file descriptors of process `pid`.
pub fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Open sockets (TCP, UDP and unix) of process `pid`.
pub fn socket_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter(|target| target.to_string_lossy().starts_with("socket:"))
                .count()
        })
        .unwrap_or(0)
}

/// Raises this process's soft limit on open files to `want` (at most the hard limit);
/// children started afterwards inherit it. Returns the new soft limit.
pub fn raise_fd_limit(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    lim.rlim_cur
}
