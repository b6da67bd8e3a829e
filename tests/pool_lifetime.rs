//! Idle upstream connections outlive config generations but not their usefulness
//! (issue 23): whatever generation opened or released them, they close after
//! `pool.idle_timeout`; a server kept across reloads keeps reusing them; a server a
//! reload removed keeps none once its requests end; a process replaced with `-sf`
//! closes its idle ones at once, and a shard restarted after a panic closes the ones its
//! dead runtime held.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;

/// How often a shard sweeps its pools (`shard::POOL_PURGE_EVERY` control ticks).
const PURGE_PERIOD: Duration = Duration::from_secs(1);

/// A config file the test rewrites and ringlb re-reads on SIGHUP.
struct Setup {
    lb: RingLb,
    path: String,
    _file: tempfile::NamedTempFile,
}

impl Setup {
    fn start(text: &str) -> Setup {
        let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        let path = file.path().to_str().unwrap().to_string();
        std::fs::write(&path, text).unwrap();
        let lb = RingLb::launch(&["-f", &path], None, |l| l.starts_with("ready"));
        Setup {
            lb,
            path,
            _file: file,
        }
    }

    /// Writes `text` (when given), reloads, and waits until every shard switched.
    fn reload(&self, text: Option<&str>) {
        if let Some(t) = text {
            std::fs::write(&self.path, t).unwrap();
        }
        let before = self.lb.stdout_count("reloaded");
        self.lb.signal(libc::SIGHUP);
        wait_for("the reload", Duration::from_secs(10), || {
            self.lb.stdout_count("reloaded") > before
        });
    }
}

/// Frontend `web` on `port` (0 at first start; a reload must keep the same address)
/// in front of backend `app` with the named servers.
fn config(port: u16, servers: &[(&str, std::net::SocketAddr)], top: &str) -> String {
    let mut t = format!(
        "[runtime]\nshards = 2\n{top}\n[frontend.web]\nbind = \"127.0.0.1:{port}\"\ndefault_backend = \"app\"\n[backend.app]\n"
    );
    for (name, addr) in servers {
        t.push_str(&format!(
            "[[backend.app.server]]\nname = \"{name}\"\naddr = \"{addr}\"\n"
        ));
    }
    t
}

/// `clients` keep-alive clients sending `GET /` until stopped; each request must
/// succeed. Returns the requests answered so far, the stop flag and the threads.
struct Load {
    done: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(addr: std::net::SocketAddr, clients: usize) -> Load {
        let done = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..clients)
            .map(|i| {
                let (done, stop) = (done.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut c = HttpClient::connect(addr);
                    while !stop.load(Ordering::Relaxed) {
                        let r = c.get("/");
                        assert_eq!(r.status, 200, "client {i}: {r:?}");
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Load {
            done,
            stop,
            threads,
        }
    }

    fn requests(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }

    /// Stops the clients (their connections close) and checks none failed.
    fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("a client failed");
        }
        self.done.load(Ordering::Relaxed)
    }
}

/// Twenty reloads under load, then idle: the process's sockets come back to within 4
/// of their idle count once `pool.idle_timeout` and one purge period have passed.
/// (Before, each reload stranded the idle connections of the generation it replaced.)
#[test]
fn idle_connections_close_after_reloads_under_load() {
    let b = TestBackend::start("a");
    let idle_timeout = Duration::from_secs(2);
    let text = config(0, &[("s1", b.addr())], "[pool]\nidle_timeout = \"2s\"\n");
    let s = Setup::start(&text);
    let addr = s.lb.addr("web");
    let text = config(
        addr.port(),
        &[("s1", b.addr())],
        "[pool]\nidle_timeout = \"2s\"\n",
    );
    let pid = s.lb.pid();
    let idle = socket_count(pid);

    let load = Load::start(addr, 16);
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        s.reload(Some(&text));
    }
    let during = socket_count(pid);
    let requests = load.finish();
    assert!(requests > 100, "traffic flowed ({requests} requests)");
    // Some slack over timeout + purge period for a loaded machine.
    let bound = idle_timeout + PURGE_PERIOD + Duration::from_secs(2);
    wait_for(
        &format!("sockets back within 4 of {idle} (were {during} under load)"),
        bound,
        || socket_count(pid) <= idle + 4,
    );
    wait_for(
        "the backend to see every connection closed",
        Duration::from_secs(5),
        || b.open_connections() == 0,
    );
}

/// 1,000 reloads under load: the descriptors in use never exceed the idle count plus
/// what the clients and the pool may hold: a socket per client connection, a server
/// socket per request in flight, `max_idle_per_server` idle connections per shard, and
/// a little room for a socket being closed as the count is taken or the config file
/// being read. Besides the busy clients, each reload leaves a client connection open
/// (the last 50 stay), so that connections of many generations are alive at once.
#[test]
fn a_thousand_reloads_keep_descriptors_bounded() {
    const CLIENTS: usize = 8;
    const LINGER: usize = 50;
    const MAX_IDLE: usize = 4;
    const SHARDS: usize = 2;
    const SLACK: usize = 4;
    let b = TestBackend::start("a");
    let top = format!("[pool]\nmax_idle_per_server = {MAX_IDLE}\n");
    let s = Setup::start(&config(0, &[("s1", b.addr())], &top));
    let addr = s.lb.addr("web");
    let text = config(addr.port(), &[("s1", b.addr())], &top);
    let pid = s.lb.pid();
    let idle = fd_count(pid);
    let bound = idle + (CLIENTS + LINGER + 1) + CLIENTS + SHARDS * MAX_IDLE + SLACK;

    let load = Load::start(addr, CLIENTS);
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(fd_count(pid));
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        })
    };
    let began = Instant::now();
    let mut lingering = std::collections::VecDeque::new();
    for i in 0..1_000 {
        s.reload(Some(&text));
        let mut c = HttpClient::connect(addr);
        assert_eq!(c.get("/").status, 200);
        lingering.push_back(c);
        if lingering.len() > LINGER {
            lingering.pop_front();
        }
        assert!(
            began.elapsed() < Duration::from_secs(240),
            "1,000 reloads took too long: {i} after {:?}",
            began.elapsed()
        );
    }
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    let requests = load.finish();
    assert!(requests > 1_000, "traffic flowed ({requests} requests)");
    assert!(
        peak <= bound,
        "{peak} descriptors open at the peak of 1,000 reloads (idle {idle}, bound {bound})"
    );
}

/// A server in every generation keeps its pooled connections across reloads under
/// load: at most one new server connection per 1,000 requests.
#[test]
fn a_kept_server_reuses_its_connections_across_reloads() {
    const CLIENTS: usize = 4;
    let b = TestBackend::start("a");
    let s = Setup::start(&config(0, &[("s1", b.addr())], ""));
    let addr = s.lb.addr("web");
    // Each reload changes the file (another server comes and goes), s1 stays.
    let other = TestBackend::start("other");
    let with = config(addr.port(), &[("s1", b.addr())], "");
    let without = format!(
        "{with}[backend.spare]\n[[backend.spare.server]]\nname = \"x\"\naddr = \"{}\"\n",
        other.addr()
    );

    let load = Load::start(addr, CLIENTS);
    // Warm up: every client's shard has made the connections it needs.
    wait_for("warm-up traffic", Duration::from_secs(30), || {
        load.requests() >= 2_000
    });
    let (accepts, requests) = (b.accepts(), load.requests());
    let mut n = 0;
    while n < 20 || load.requests() - requests < 10_000 {
        std::thread::sleep(Duration::from_millis(50));
        s.reload(Some(if n % 2 == 0 { &without } else { &with }));
        n += 1;
        assert!(n < 2_000, "the load stalled");
    }
    let served = load.finish() - requests;
    let fresh = b.accepts() - accepts;
    assert!(
        fresh as f64 / served as f64 <= 0.001,
        "{fresh} new server connections for {served} requests across {n} reloads"
    );
}

/// `balance first` in front of `servers`: every request goes to the first one.
fn first_config(port: u16, servers: &[(&str, std::net::SocketAddr)]) -> String {
    config(port, servers, "").replace("[backend.app]\n", "[backend.app]\nbalance = \"first\"\n")
}

/// A server a reload removed keeps no connection: its idle ones close with the reload,
/// the ones carrying a request when that request ends.
#[test]
fn a_removed_server_keeps_no_connection() {
    let a = TestBackend::start("a");
    let b = TestBackend::start("b");
    let s = Setup::start(&first_config(0, &[("s1", a.addr()), ("s2", b.addr())]));
    let addr = s.lb.addr("web");
    // Idle connections to s1, on both shards.
    let mut clients: Vec<HttpClient> = (0..8).map(|_| HttpClient::connect(addr)).collect();
    for c in &mut clients {
        for _ in 0..4 {
            assert_eq!(c.get("/").header("x-backend"), Some("a"));
        }
    }
    assert!(a.open_connections() > 0);
    // Two requests in flight at s1 while it is removed.
    let slow: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || http_get(addr, "/sleep/2500")))
        .collect();
    wait_for(
        "two requests in flight at s1",
        Duration::from_secs(5),
        || a.in_flight() == 2,
    );
    s.reload(Some(&first_config(addr.port(), &[("s2", b.addr())])));
    wait_for(
        "s1's idle connections to close with the reload",
        Duration::from_secs(2),
        || a.open_connections() == 2,
    );
    assert_eq!(a.in_flight(), 2, "the requests at s1 were still running");
    for t in slow {
        let r = t.join().unwrap();
        assert_eq!(
            (r.status, r.header("x-backend")),
            (200, Some("a")),
            "finished on the old config"
        );
    }
    wait_for(
        "s1's last connections to close once their requests ended",
        Duration::from_secs(5),
        || a.open_connections() == 0,
    );
    // s2 still serves, its connections still pooled.
    for c in &mut clients {
        assert_eq!(c.get("/").header("x-backend"), Some("b"));
    }
}

/// The fault hook (`/boom/shard` kills the shard it lands on) and a runtime directory
/// for `-sf` hand-over sockets, for every ringlb this binary starts (set once).
fn env() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::env::set_var("RINGLB_FAULT_PANIC_PATH", "/boom");
        let dir = std::env::temp_dir().join(format!("ringlb-pool-tests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::env::set_var("RINGLB_RUNTIME_DIR", &dir);
    });
}

/// Four requests at once through `addr`, so that the server gets four connections,
/// which then sit idle in the pool.
fn four_pooled(addr: std::net::SocketAddr) {
    let t: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || http_get(addr, "/sleep/200").status))
        .collect();
    for t in t {
        assert_eq!(t.join().unwrap(), 200);
    }
}

/// A process replaced with `-sf` closes its idle server connections as soon as it is
/// told to stop, even while a request keeps it running, and its last one when that
/// request ends. Reloads before the upgrade leave generations behind in it.
#[test]
fn an_upgraded_process_closes_its_idle_connections_at_once() {
    env();
    let a = TestBackend::start("a");
    let b = TestBackend::start("b");
    let old = Setup::start(&config(0, &[("s1", a.addr())], ""));
    let addr = old.lb.addr("web");
    let text = config(addr.port(), &[("s1", a.addr())], "");
    let load = Load::start(addr, 4);
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(50));
        old.reload(Some(&text));
    }
    load.finish();
    four_pooled(addr);
    wait_for("four connections at a", Duration::from_secs(5), || {
        a.open_connections() >= 4
    });
    let slow = std::thread::spawn(move || http_get(addr, "/sleep/3000"));
    wait_for("the slow request at a", Duration::from_secs(5), || {
        a.in_flight() == 1
    });

    let dir = tempfile::tempdir().unwrap();
    let new_cfg = dir.path().join("new.toml");
    std::fs::write(&new_cfg, config(addr.port(), &[("s1", b.addr())], "")).unwrap();
    let pid = old.lb.pid().to_string();
    let new = RingLb::launch(&["-f", new_cfg.to_str().unwrap(), "-sf", &pid], None, |l| {
        l.starts_with("ready")
    });
    wait_for(
        "the old process to close its idle connections",
        Duration::from_secs(2),
        || a.open_connections() == 1,
    );
    assert_eq!(a.in_flight(), 1, "the slow request was still running");
    let r = slow.join().unwrap();
    assert_eq!((r.status, r.header("x-backend")), (200, Some("a")));
    wait_for(
        "the old process's last connection to close",
        Duration::from_secs(5),
        || a.open_connections() == 0,
    );
    assert_eq!(
        http_get(new.addr("web"), "/").header("x-backend"),
        Some("b")
    );
}

/// After a panic kills a shard's runtime, the idle server connections that runtime
/// held are closed (they used to stay open, owned by nobody, for good), and the
/// restarted runtime makes its own.
#[test]
fn a_restarted_shard_closes_its_dead_runtimes_idle_connections() {
    env();
    let a = TestBackend::start("a");
    let other = TestBackend::start("other");
    // The request that kills the shard goes to `other`: nothing of it stays at `a`.
    let lb = RingLb::start(&format!(
        "[runtime]\nshards = 1\n[frontend.web]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"app\"\n[[frontend.web.route]]\npath_prefix = \"/boom\"\nbackend = \"other\"\n[backend.app]\n[[backend.app.server]]\naddr = \"{}\"\n[backend.other]\n[[backend.other.server]]\naddr = \"{}\"\n",
        a.addr(),
        other.addr()
    ));
    let addr = lb.addr("web");
    four_pooled(addr);
    wait_for("four connections at a", Duration::from_secs(5), || {
        a.open_connections() == 4
    });
    let _ = HttpClient::connect(addr).try_request(get_request("/boom/shard"));
    wait_for("the shard to restart", Duration::from_secs(10), || {
        lb.stderr().contains("shard runtime restarted")
    });
    wait_for(
        "the dead runtime's idle connections to close",
        Duration::from_secs(5),
        || a.open_connections() == 0,
    );
    assert_eq!(http_get(addr, "/").status, 200);
    wait_for(
        "the new runtime's own connection",
        Duration::from_secs(5),
        || a.open_connections() == 1,
    );
}

/// Starts ringlb on a haproxy.cfg text (one thread) and returns it with its file.
fn start_cfg(text: &str) -> (RingLb, tempfile::NamedTempFile) {
    let file = tempfile::Builder::new().suffix(".cfg").tempfile().unwrap();
    std::fs::write(file.path(), text).unwrap();
    let lb = RingLb::launch(&["-f", file.path().to_str().unwrap()], None, |l| {
        l.starts_with("ready")
    });
    (lb, file)
}

fn haproxy_cfg(default_server: &str, servers: &str) -> String {
    format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n{default_server}\nfrontend www\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    balance first\n{servers}\n"
    )
}

/// haproxy.cfg `pool-purge-delay` (on a server, or from `default-server`): the
/// server's idle connections are reused meanwhile and close once idle that long (and
/// the sweep after it); `0` keeps none.
#[test]
fn pool_purge_delay_closes_idle_connections() {
    let a = TestBackend::start("a");
    let b = TestBackend::start("b");
    let servers = format!(
        "    server s1 {} pool-purge-delay 1s\n    server s2 {}\n",
        a.addr(),
        b.addr()
    );
    let (lb, _f) = start_cfg(&haproxy_cfg(
        "    default-server pool-purge-delay 0",
        &servers,
    ));
    assert!(
        !lb.stderr().contains("pool-purge-delay"),
        "no warning: {}",
        lb.stderr()
    );
    let addr = lb.addr("www");
    for _ in 0..3 {
        assert_eq!(http_get(addr, "/").header("x-backend"), Some("a"));
    }
    assert_eq!(a.accepts(), 1, "reused while idle for less than 1 s");
    wait_for(
        "the idle connection to close after 1 s and a sweep",
        Duration::from_secs(1) + PURGE_PERIOD + Duration::from_secs(2),
        || a.open_connections() == 0,
    );

    // s2 inherits `pool-purge-delay 0`: no connection is kept idle.
    let (lb, _f) = start_cfg(&haproxy_cfg(
        "    default-server pool-purge-delay 0",
        &format!("    server s2 {}\n", b.addr()),
    ));
    let addr = lb.addr("www");
    for _ in 0..3 {
        assert_eq!(http_get(addr, "/").header("x-backend"), Some("b"));
        wait_for("the connection to close", Duration::from_secs(2), || {
            b.open_connections() == 0
        });
    }
    assert_eq!(b.accepts(), 3, "a new connection for each request");
}

/// A server taken out at run time (`set server ... state maint`) keeps no connection
/// either: its idle ones close at once, the one carrying a request when that request
/// ends, and none is pooled until it is ready again.
#[test]
fn a_server_put_in_maintenance_keeps_no_connection() {
    let a = TestBackend::start("a");
    let b = TestBackend::start("b");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("admin.sock");
    let admin = format!("[admin]\nstats_socket = \"{}\"\n", sock.display());
    let text = config(0, &[("s1", a.addr()), ("s2", b.addr())], &admin)
        .replace("[backend.app]\n", "[backend.app]\nbalance = \"first\"\n");
    let s = Setup::start(&text.replace("shards = 2", "shards = 1"));
    let addr = s.lb.addr("web");
    four_pooled(addr);
    wait_for("four connections at a", Duration::from_secs(5), || {
        a.open_connections() == 4
    });
    let slow = std::thread::spawn(move || http_get(addr, "/sleep/2000"));
    wait_for("the slow request at a", Duration::from_secs(5), || {
        a.in_flight() == 1
    });
    assert_eq!(cli(&sock, "set server app/s1 state maint"), "\n");
    wait_for(
        "a's idle connections to close",
        Duration::from_secs(2),
        || a.open_connections() == 1,
    );
    assert_eq!(a.in_flight(), 1, "the slow request was still running");
    let r = slow.join().unwrap();
    assert_eq!((r.status, r.header("x-backend")), (200, Some("a")));
    wait_for(
        "a's last connection to close once its request ended",
        Duration::from_secs(5),
        || a.open_connections() == 0,
    );
    assert_eq!(http_get(addr, "/").header("x-backend"), Some("b"));
    // Ready again (once the shard applied it): it takes requests and pools its
    // connection again.
    assert_eq!(cli(&sock, "set server app/s1 state ready"), "\n");
    wait_for("s1 to take requests again", Duration::from_secs(5), || {
        http_get(addr, "/").header("x-backend") == Some("a")
    });
    let accepts = a.accepts();
    for _ in 0..5 {
        assert_eq!(http_get(addr, "/").header("x-backend"), Some("a"));
    }
    assert_eq!(a.accepts(), accepts, "its connection pooled and reused");
}
