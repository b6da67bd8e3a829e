//! HAProxy 2.6 and ringlb side by side on the same haproxy.cfg text, for the
//! differential tests: each gets its own port, stats socket and set of test servers
//! with the same names, the same requests go to both, and a mismatch panics with the
//! config, the request and both answers. Also `show stat` parsing, shared by the
//! runtime API comparisons.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::backend::TestBackend;
use super::client::HttpClient;
use super::haproxy::{cli, render, ringlb_cfg, HaProxy};
use super::proc::RingLb;
use super::tcp::ReservedPort;

/// What every diff config starts with: one thread (so that round robin walks one list
/// in both), the stats socket, short timeouts.
pub const DIFF_HEAD: &str = r#"global
    nbthread 1
    stats socket "${SOCK}" mode 600 level admin

defaults
    mode http
    timeout connect 500ms
    timeout client 10s
    timeout server 10s
"#;

/// A server of a diff config: a `TestBackend` of that name on each side, or an
/// address where nothing listens.
#[derive(Clone, Copy)]
pub enum Srv {
    Up(&'static str),
    Dead,
}

/// One of the two balancers under test, with its own servers.
pub struct Side {
    pub who: &'static str,
    frontends: BTreeMap<String, SocketAddr>,
    sock: PathBuf,
    backends: Vec<TestBackend>,
    /// Keeps the ports of `Srv::Dead` servers refusing, and HAProxy's frontend ports
    /// ours.
    _held: Vec<ReservedPort>,
}

impl Side {
    /// The address frontend `name` listens on.
    pub fn addr(&self, frontend: &str) -> SocketAddr {
        self.frontends[frontend]
    }

    /// This side's test server `name`.
    pub fn backend(&self, name: &str) -> &TestBackend {
        self.backends
            .iter()
            .find(|b| b.name() == name)
            .unwrap_or_else(|| panic!("no test server {name}"))
    }

    /// This side's stats socket.
    pub fn sock_path(&self) -> PathBuf {
        self.sock.clone()
    }

    /// One runtime API command on this side's stats socket.
    pub fn cli(&self, line: &str) -> String {
        cli(&self.sock, line)
    }
}

/// HAProxy and ringlb on the same config.
pub struct Twins {
    config: String,
    pub hx: Side,
    pub lb: Side,
    _haproxy: HaProxy,
    _ringlb: RingLb,
    _dir: tempfile::TempDir,
}

impl Twins {
    /// Starts both on `DIFF_HEAD` + `body`, where each frontend of `frontends`,
    /// (name, VAR), binds `"127.0.0.1:${VAR}"` and each server of `servers`,
    /// (VAR, server), is at `"${VAR}"`. ringlb binds port 0 and says what it got;
    /// HAProxy refuses port 0, so it gets a `ReservedPort` (which it can bind, and
    /// nobody else can).
    pub fn start(body: &str, frontends: &[(&str, &str)], servers: &[(&str, Srv)]) -> Twins {
        Self::start_with_global("", body, frontends, servers)
    }

    /// `start` with more `global` lines (`log stdout format raw local0`, ...).
    pub fn start_with_global(
        global: &str,
        body: &str,
        frontends: &[(&str, &str)],
        servers: &[(&str, Srv)],
    ) -> Twins {
        let head = DIFF_HEAD.replacen("global\n", &format!("global\n{global}"), 1);
        let config = format!("{head}\n{body}");
        let dir = tempfile::tempdir().unwrap();
        let side = |who: &'static str| {
            let sock = dir.path().join(format!("{who}.sock"));
            let mut vars: Vec<(&str, String)> = vec![("SOCK", sock.display().to_string())];
            let mut backends = Vec::new();
            let mut held = Vec::new();
            for &(var, srv) in servers {
                let addr = match srv {
                    Srv::Up(name) => {
                        let b = TestBackend::start(name);
                        let a = b.addr();
                        backends.push(b);
                        a
                    }
                    Srv::Dead => {
                        let r = ReservedPort::new();
                        let a = r.addr();
                        held.push(r);
                        a
                    }
                };
                vars.push((var, addr.to_string()));
            }
            let mut addrs = BTreeMap::new();
            for &(fe, var) in frontends {
                let port = if who == "haproxy" {
                    let r = ReservedPort::new();
                    let p = r.port();
                    held.push(r);
                    p
                } else {
                    0
                };
                addrs.insert(fe.to_string(), SocketAddr::from(([127, 0, 0, 1], port)));
                vars.push((var, port.to_string()));
            }
            let text = render(&config, &vars);
            (
                text,
                Side {
                    who,
                    frontends: addrs,
                    sock,
                    backends,
                    _held: held,
                },
            )
        };
        let (hx_text, hx) = side("haproxy");
        let (lb_text, mut lb) = side("ringlb");
        let waits: Vec<SocketAddr> = hx.frontends.values().copied().collect();
        let haproxy = HaProxy::start(&hx_text, &waits, Some(&hx.sock));
        let ringlb = ringlb_cfg(&lb_text);
        for (fe, a) in lb.frontends.iter_mut() {
            *a = ringlb.addr(fe);
        }
        Twins {
            config,
            hx,
            lb,
            _haproxy: haproxy,
            _ringlb: ringlb,
            _dir: dir,
        }
    }

    /// What HAProxy printed so far (its logs, with `log stdout`).
    pub fn haproxy_output(&self) -> String {
        self._haproxy.output()
    }

    /// ringlb's stdout lines so far (its `listening`/`ready` lines and its logs).
    pub fn ringlb_stdout(&self) -> Vec<String> {
        self._ringlb.stdout_lines()
    }

    /// ringlb's stderr so far (its warnings).
    pub fn ringlb_stderr(&self) -> String {
        self._ringlb.stderr()
    }

    /// `f` on HAProxy, then on ringlb.
    pub fn both<T>(&self, f: impl Fn(&Side) -> T) -> (T, T) {
        (f(&self.hx), f(&self.lb))
    }

    /// Asserts that `f` gives the same answer on both sides; `what` names the request.
    pub fn same<T: PartialEq + Debug>(&self, what: &str, f: impl Fn(&Side) -> T) -> T {
        let (a, b) = self.both(f);
        assert!(
            a == b,
            "ringlb differs from HAProxy 2.6\n--- config ---\n{}\n--- request ---\n{what}\n--- haproxy ---\n{a:#?}\n--- ringlb ---\n{b:#?}",
            self.config
        );
        a
    }

    /// Runs every request on both sides and asserts every answer is the same; all
    /// differences are listed at once.
    pub fn same_all<R: Debug, T: PartialEq + Debug>(
        &self,
        requests: &[R],
        f: impl Fn(&Side, &R) -> T,
    ) {
        let answers = requests.iter().map(|r| self.both(|s| f(s, r))).collect();
        self.all_same(requests, answers);
    }

    /// As `same_all`, with every request sent at once on both sides: for requests that
    /// share no state (no balancing order, no counter), whose answers each end with a
    /// quiet period, so that the test waits for one period instead of one per request.
    pub fn same_all_at_once<R: Debug + Sync, T: PartialEq + Debug + Send>(
        &self,
        requests: &[R],
        f: impl Fn(&Side, &R) -> T + Sync,
    ) {
        let f = &f;
        let answers = std::thread::scope(|scope| {
            let running: Vec<_> = requests
                .iter()
                .map(|r| {
                    let hx = scope.spawn(move || f(&self.hx, r));
                    let lb = scope.spawn(move || f(&self.lb, r));
                    (hx, lb)
                })
                .collect();
            running
                .into_iter()
                .map(|(hx, lb)| (hx.join().unwrap(), lb.join().unwrap()))
                .collect()
        });
        self.all_same(requests, answers);
    }

    fn all_same<R: Debug, T: PartialEq + Debug>(&self, requests: &[R], answers: Vec<(T, T)>) {
        let mut diffs = Vec::new();
        for (r, (a, b)) in requests.iter().zip(answers) {
            if a != b {
                let mut shown = format!("{r:?}");
                if shown.len() > 200 {
                    shown = format!("{}... ({} bytes)", &shown[..160], shown.len());
                }
                diffs.push(format!("{shown}\n    haproxy: {a:?}\n    ringlb:  {b:?}"));
            }
        }
        assert!(
            diffs.is_empty(),
            "ringlb differs from HAProxy 2.6 on {} of {} requests\n--- config ---\n{}\n--- differences ---\n{}",
            diffs.len(),
            requests.len(),
            self.config,
            diffs.join("\n")
        );
    }

    /// Polls until `cond` holds on both sides; panics after `timeout` with both
    /// `show stat` tables.
    pub fn wait_both(&self, what: &str, timeout: Duration, cond: impl Fn(&Side) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let (a, b) = self.both(&cond);
            if a && b {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what} (haproxy: {a}, ringlb: {b})\n--- haproxy show stat ---\n{}\n--- ringlb show stat ---\n{}",
                    self.hx.cli("show stat"),
                    self.lb.cli("show stat")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One request on a fresh connection: (status, the server that answered or `-`); a
/// connection closed without a response is status 0.
pub fn ask(addr: SocketAddr, raw: &str) -> (u16, String) {
    match HttpClient::connect(addr).try_request(raw) {
        Ok(r) => (r.status, r.header("x-backend").unwrap_or("-").to_string()),
        Err(e) => (0, format!("no response: {e}")),
    }
}

/// `GET path` with `Host: host`.
pub fn get(host: &str, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n")
}

/// (status, addr, weight) of every server of `backend`, by name, from `show stat` on
/// the stats socket at `sock`.
pub fn server_slots(
    sock: &std::path::Path,
    backend: &str,
) -> BTreeMap<String, (String, String, String)> {
    stat_rows(&cli(sock, "show stat"))
        .into_iter()
        .filter(|r| r["pxname"] == backend && r["svname"] != "BACKEND" && r["svname"] != "FRONTEND")
        .map(|r| {
            (
                r["svname"].clone(),
                (r["status"].clone(), r["addr"].clone(), r["weight"].clone()),
            )
        })
        .collect()
}

/// `show stat` CSV as rows of named columns.
pub fn stat_rows(csv: &str) -> Vec<BTreeMap<String, String>> {
    let mut lines = csv.lines();
    let header: Vec<String> = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .unwrap_or_else(|| panic!("no `# ` header in show stat: {csv:?}"))
        .split(',')
        .map(str::to_string)
        .collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(str::to_string))
                .collect()
        })
        .collect()
}

/// `show stat` rows once no check is in progress: HAProxy marks a server whose check
/// is running with `* ` before its `check_status` (and a transient `check_code`), a
/// moment no other balancer can match.
pub fn settled_stat(s: &Side) -> Vec<BTreeMap<String, String>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let rows = stat_rows(&s.cli("show stat"));
        let busy = rows
            .iter()
            .any(|r| r.get("check_status").is_some_and(|c| c.starts_with("* ")));
        if !busy || Instant::now() >= deadline {
            return rows;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// (pxname, svname, the chosen columns) of every settled `show stat` row, in order.
pub fn stat_view(s: &Side, columns: &[&str]) -> Vec<(String, String, Vec<String>)> {
    settled_stat(s)
        .into_iter()
        .map(|r| {
            let get = |c: &str| r.get(c).cloned().unwrap_or_default();
            (
                get("pxname"),
                get("svname"),
                columns.iter().map(|c| get(c)).collect(),
            )
        })
        .collect()
}

/// The `status` column of `px/sv` in `show stat`.
pub fn status_of(s: &Side, px: &str, sv: &str) -> String {
    stat_rows(&s.cli("show stat"))
        .into_iter()
        .find(|r| r["pxname"] == px && r["svname"] == sv)
        .map(|r| r["status"].clone())
        .unwrap_or_else(|| panic!("{}: no {px}/{sv} row", s.who))
}
