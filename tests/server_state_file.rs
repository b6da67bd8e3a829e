//! The server-state file (`server-state-file`, `server-state-base`,
//! `load-server-state-from-file`, `server-state-file-name`), HAProxy's reload recipe:
//! `show servers state` written to a file, then the next process (a restart, a
//! SIGUSR2 reload, a `-sf` upgrade) starts every server where it was. Round trips
//! through ringlb itself and through HAProxy 2.6 in both directions, on the real
//! binaries, compared on `show servers state` and on where traffic goes.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::haproxy::{cli, haproxy_check, render, ringlb_cfg, ringlb_check, write_cfg, HaProxy};
use common::{http_get, wait_for, ReservedPort, TestBackend};

const CONFIG: &str = r#"global
    nbthread 1
    stats socket "${SOCK}" mode 600 level admin
    server-state-base "${DIR}"
    server-state-file state

defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    load-server-state-from-file global

frontend web
    bind "${FE}"
    default_backend app

backend app
    balance roundrobin
    server s1 "${S1}"
    server s2 "${S2}" weight 10
    server s3 "${S3}"
"#;

/// The fields both processes must agree on, per server line of `show servers state`:
/// be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight
/// srv_iweight and srv_port (not the times, nor the check fields of unchecked servers).
fn state_rows(dump: &str) -> Vec<Vec<String>> {
    assert!(dump.starts_with("1\n# be_id "), "{dump}");
    dump.lines()
        .skip(2)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            assert!(w.len() >= 20, "short line {l:?}");
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 18]
                .iter()
                .map(|&i| w[i].to_string())
                .collect()
        })
        .collect()
}

/// The row of server `name`.
fn row<'a>(rows: &'a [Vec<String>], name: &str) -> &'a Vec<String> {
    rows.iter()
        .find(|r| r[3] == name)
        .unwrap_or_else(|| panic!("no server {name} in {rows:?}"))
}

struct Setup {
    dir: tempfile::TempDir,
    backends: Vec<TestBackend>,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            dir: tempfile::tempdir().unwrap(),
            backends: ["s1", "s2", "s3"].map(TestBackend::start).into(),
        }
    }

    fn sock(&self, who: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("{who}.sock"))
    }

    fn state(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    fn config(&self, who: &str, fe: &str) -> String {
        self.config_from(CONFIG, who, fe)
    }

    fn config_from(&self, text: &str, who: &str, fe: &str) -> String {
        let a = |i: usize| self.backends[i].addr().to_string();
        render(
            text,
            &[
                ("SOCK", self.sock(who).display().to_string()),
                ("DIR", self.dir.path().display().to_string()),
                ("FE", fe.to_string()),
                ("S1", a(0)),
                ("S2", a(1)),
                ("S3", a(2)),
            ],
        )
    }

    /// Which backends answered `n` requests through `fe`.
    fn spread(&self, fe: SocketAddr, n: usize) -> [usize; 3] {
        let before: Vec<usize> = self.backends.iter().map(|b| b.requests()).collect();
        for _ in 0..n {
            assert_eq!(http_get(fe, "/").status, 200);
        }
        let mut out = [0; 3];
        for (i, b) in self.backends.iter().enumerate() {
            out[i] = b.requests() - before[i];
        }
        out
    }
}

fn set(sock: &Path, cmd: &str) {
    let answer = cli(sock, cmd);
    assert!(answer.trim().is_empty(), "{cmd}: {answer}");
}

/// The operator's changes (s1 MAINT, s2 DRAIN, s3 weight 5) survive a restart through
/// `show servers state` > file: the same dump, and traffic only to s3.
#[test]
fn operator_states_round_trip_through_ringlb() {
    let st = Setup::new();
    let cfg = st.config("lb", "127.0.0.1:0");
    let lb = ringlb_cfg(&cfg);
    // No file yet: only a notice, as HAProxy's.
    assert!(
        lb.stderr().contains("Can't open global server state file"),
        "{}",
        lb.stderr()
    );
    let sock = st.sock("lb");
    set(&sock, "set server app/s1 state maint");
    set(&sock, "set server app/s2 state drain");
    set(&sock, "set server app/s3 weight 5");
    let dump = cli(&sock, "show servers state");
    std::fs::write(st.state(), &dump).unwrap();
    drop(lb);

    let lb = ringlb_cfg(&cfg);
    assert!(!lb.stderr().contains("warning"), "{}", lb.stderr());
    let again = cli(&sock, "show servers state");
    assert_eq!(state_rows(&again), state_rows(&dump));
    let rows = state_rows(&again);
    assert_eq!(row(&rows, "s1")[6], "1");
    assert_eq!(row(&rows, "s2")[6], "8");
    assert_eq!(row(&rows, "s3")[7], "5");
    assert_eq!(cli(&sock, "get weight app/s3").trim(), "5 (initial 1)");
    // MAINT and DRAIN take no new request.
    assert_eq!(st.spread(lb.addr("web"), 12), [0, 0, 12]);
}

/// HAProxy 2.6 writes the file, ringlb reads it; ringlb writes it, HAProxy reads it:
/// each shows the same states as the process that wrote the file.
#[test]
fn haproxy_and_ringlb_read_each_others_files() {
    let st = Setup::new();
    let fe = ReservedPort::new();
    let hx_cfg = st.config("hx", &fe.addr().to_string());
    let hx_sock = st.sock("hx");
    let hx = HaProxy::start(&hx_cfg, &[], Some(&hx_sock));
    set(&hx_sock, "set server app/s1 state drain");
    set(&hx_sock, "set server app/s2 weight 3");
    set(&hx_sock, "set server app/s3 state maint");
    let written = cli(&hx_sock, "show servers state");
    std::fs::write(st.state(), &written).unwrap();
    drop(hx);

    let lb = ringlb_cfg(&st.config("lb", "127.0.0.1:0"));
    let sock = st.sock("lb");
    let read = cli(&sock, "show servers state");
    assert_eq!(
        state_rows(&read),
        state_rows(&written),
        "HAProxy wrote:\n{written}"
    );
    // s1 drained, s3 in maintenance: s2 takes everything.
    assert_eq!(st.spread(lb.addr("web"), 9), [0, 9, 0]);

    // The other way: ringlb's changes, read by HAProxy.
    set(&sock, "set server app/s1 state maint");
    set(&sock, "set server app/s2 state ready");
    set(&sock, "set server app/s2 weight 7");
    set(&sock, "set server app/s3 state drain");
    let written = cli(&sock, "show servers state");
    std::fs::write(st.state(), &written).unwrap();
    drop(lb);
    let hx = HaProxy::start(&hx_cfg, &[], Some(&hx_sock));
    let read = cli(&hx_sock, "show servers state");
    assert_eq!(
        state_rows(&read),
        state_rows(&written),
        "ringlb wrote:\n{written}"
    );
    assert!(
        !hx.output().contains("server-state application failed"),
        "{}",
        hx.output()
    );
}

const ONE_LINE: &str = "1 app 1 s1 127.0.0.1 2 0 1 1 5 0 0 0 0 0 0 0 - 80 - 0 0 - - 0";

/// A line HAProxy cannot apply (a wrong value) is skipped with HAProxy's warning and
/// the other lines load; a corrupted line (a wrong number of fields) makes the whole
/// file unused, with the same warning as HAProxy's, which `haproxy -c` prints too.
#[test]
fn bad_lines_warn_and_the_rest_loads() {
    let st = Setup::new();
    let lb_port = |i: usize| st.backends[i].addr().port().to_string();
    let line = |srv: &str, id: usize, admin: &str, port: String| {
        ONE_LINE
            .replace(" s1 ", &format!(" {srv} "))
            .replacen("app 1", &format!("app {id}"), 1)
            .replace(" 2 0 1 1 5", &format!(" 2 {admin} 1 1 5"))
            .replace(" 80 ", &format!(" {port} "))
    };
    let header = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n";
    let text = format!(
        "{header}{}\n{}\n",
        line("s1", 1, "x", lb_port(0)),
        line("s2", 2, "1", lb_port(1)),
    );
    std::fs::write(st.state(), &text).unwrap();
    let cfg = st.config("lb", "127.0.0.1:0");
    let lb = ringlb_cfg(&cfg);
    assert!(
        lb.stderr().contains(
            "server-state application failed for server 'app/s1', invalid srv_admin_state value 'x'"
        ),
        "{}",
        lb.stderr()
    );
    let rows = state_rows(&cli(&st.sock("lb"), "show servers state"));
    assert_eq!(row(&rows, "s1")[6], "0");
    assert_eq!(row(&rows, "s2")[6], "1");
    assert_eq!(st.spread(lb.addr("web"), 6), [3, 0, 3]);
    drop(lb);

    // A line cut short: nothing of the file is used, as HAProxy.
    let text = format!(
        "{header}{}\n1 app 3 s3 127.0.0.1 2 1\n",
        line("s2", 2, "1", lb_port(1))
    );
    std::fs::write(st.state(), &text).unwrap();
    let warning = format!(
        "corrupted global server state file '{}' at line 3.",
        st.state().display()
    );
    let lb = ringlb_cfg(&cfg);
    assert!(lb.stderr().contains(&warning), "{}", lb.stderr());
    let rows = state_rows(&cli(&st.sock("lb"), "show servers state"));
    assert!(rows.iter().all(|r| r[6] == "0"), "{rows:?}");
    drop(lb);
    let fe = ReservedPort::new();
    let file = write_cfg(&st.config("hx", &fe.addr().to_string()));
    let hx = haproxy_check(file.path(), &[]);
    assert!(hx.stderr.contains(&warning), "{}", hx.stderr);
    let lb = ringlb_check(file.path(), &[]);
    assert!(lb.stderr.contains(&warning), "{}", lb.stderr);
}

/// A SIGUSR2 reload reads the file as it is then, and it has the say over the running
/// state (as HAProxy's new process): s2 is MAINT again after the operator readied it.
#[test]
fn a_reload_picks_up_a_freshly_written_file() {
    let st = Setup::new();
    let lb = ringlb_cfg(&st.config("lb", "127.0.0.1:0"));
    let sock = st.sock("lb");
    set(&sock, "set server app/s2 state maint");
    set(&sock, "set server app/s3 weight 4");
    std::fs::write(st.state(), cli(&sock, "show servers state")).unwrap();
    set(&sock, "set server app/s2 state ready");
    set(&sock, "set server app/s3 weight 1");
    assert_eq!(
        row(&state_rows(&cli(&sock, "show servers state")), "s2")[6],
        "0"
    );
    let reloads = lb.stdout_count("reloaded");
    lb.signal(libc::SIGUSR2);
    wait_for("the reload", Duration::from_secs(10), || {
        lb.stdout_count("reloaded") > reloads
    });
    let rows = state_rows(&cli(&sock, "show servers state"));
    assert_eq!(row(&rows, "s2")[6], "1", "{rows:?}");
    assert_eq!(row(&rows, "s3")[7], "4", "{rows:?}");
    // `bind :0` is bound again by a reload: the port it printed last.
    let fe = lb.latest_addr("web").unwrap();
    let spread = st.spread(fe, 10);
    assert_eq!(spread[1], 0, "{spread:?}");
    assert_eq!(spread[0] + spread[2], 10);
    // s3 weighs 4 against s1's 1.
    assert!(spread[2] > spread[0], "{spread:?}");
}

const LOCAL: &str = r#"global
    nbthread 1
    stats socket "${SOCK}" mode 600 level admin
    server-state-base "${DIR}"

defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    timeout check 1s

frontend web
    bind "${FE}"
    default_backend app

backend app
    load-server-state-from-file local
    default-server inter 500ms rise 3 fall 2
    server s1 localhost:${P1} init-addr last,libc
    server s2 127.0.0.1:1
    server s3 "${S3}" check
"#;

/// A backend's own file (named after the backend under `server-state-base`): the
/// address of a server whose `init-addr` tries `last` first and the port of every
/// server come from it, as in HAProxy; a server DOWN in the file starts DOWN and
/// needs its `rise` checks to take traffic again.
#[test]
fn local_file_gives_addresses_ports_and_down_servers() {
    let dir = tempfile::tempdir().unwrap();
    // s1 listens on 127.0.0.2 where `localhost` does not lead.
    let s1 = TestBackend::try_start_at("s1", "127.0.0.2:0".parse().unwrap()).unwrap();
    let s2 = TestBackend::start("s2");
    let s3 = TestBackend::start("s3");
    let sock = dir.path().join("lb.sock");
    let cfg = render(
        LOCAL,
        &[
            ("SOCK", sock.display().to_string()),
            ("DIR", dir.path().display().to_string()),
            ("FE", "127.0.0.1:0".into()),
            ("P1", s1.addr().port().to_string()),
            ("S3", s3.addr().to_string()),
        ],
    );
    let text = format!(
        "1\n# header\n\
         9 app 1 s1 127.0.0.2 2 0 1 1 5 0 0 0 0 0 0 0 localhost {} - 0 0 - - 0\n\
         9 app 2 s2 127.0.0.9 2 0 1 1 5 0 0 0 0 0 0 0 - {} - 0 0 - - 0\n\
         9 app 3 s3 127.0.0.1 0 0 1 1 5 0 0 0 0 0 0 0 - {} - 0 0 - - 0\n\
         9 app 4 gone 127.0.0.1 2 0 1 1 5 0 0 0 0 0 0 0 - 80 - 0 0 - - 0\n",
        s1.addr().port(),
        s2.addr().port(),
        s3.addr().port()
    );
    std::fs::write(dir.path().join("app"), text).unwrap();
    let lb = ringlb_cfg(&cfg);
    let err = lb.stderr();
    assert!(
        err.contains("Proxy 'app': backend ID mismatch: from server state file: '9'"),
        "{err}"
    );
    assert!(
        err.contains("Proxy 'app': can't find server 'gone' in backend 'app'"),
        "{err}"
    );
    let rows = state_rows(&cli(&sock, "show servers state"));
    // The file's address for s1 (init-addr last), not for s2 (an IP in the config);
    // the file's port for both.
    assert_eq!(row(&rows, "s1")[4], "127.0.0.2");
    assert_eq!(row(&rows, "s2")[4], "127.0.0.1");
    assert_eq!(row(&rows, "s2")[9], s2.addr().port().to_string());
    // s3 starts DOWN.
    assert_eq!(row(&rows, "s3")[5], "0", "{rows:?}");
    let fe = lb.addr("web");
    for _ in 0..6 {
        assert_eq!(http_get(fe, "/").status, 200);
    }
    assert_eq!(s3.requests(), 0);
    assert!(s1.requests() > 0 && s2.requests() > 0);
    // Three good checks later, it is up and takes its share.
    wait_for(
        "s3 up after its rise checks",
        Duration::from_secs(10),
        || row(&state_rows(&cli(&sock, "show servers state")), "s3")[5] == "2",
    );
    // Its checks are connections (no request): at least `rise` of them.
    assert!(s3.accepts() >= 3, "{}", s3.accepts());
    for _ in 0..6 {
        assert_eq!(http_get(fe, "/").status, 200);
    }
    assert!(s3.requests() > 0);
    // HAProxy 2.6 on the same config and file places s1 and s2 alike.
    let reserved = ReservedPort::new();
    let hx_sock = dir.path().join("hx.sock");
    let hx_cfg = render(
        LOCAL,
        &[
            ("SOCK", hx_sock.display().to_string()),
            ("DIR", dir.path().display().to_string()),
            ("FE", reserved.addr().to_string()),
            ("P1", s1.addr().port().to_string()),
            ("S3", s3.addr().to_string()),
        ],
    );
    let hx = HaProxy::start(&hx_cfg, &[], Some(&hx_sock));
    let theirs = state_rows(&cli(&hx_sock, "show servers state"));
    drop(hx);
    for name in ["s1", "s2"] {
        assert_eq!(row(&rows, name), row(&theirs, name), "{theirs:?}");
    }
}

/// The TOML front door: `runtime.server_state_file` and a backend's
/// `load_server_state`.
#[test]
fn toml_backends_load_the_state_file() {
    let a = TestBackend::start("a");
    let b = TestBackend::start("b");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::write(
        &state,
        format!(
            "1\n# header\n{}\n",
            ONE_LINE
                .replace(" 2 0 1 1 5", " 0 1 1 1 5")
                .replace(" 80 ", &format!(" {} ", a.addr().port()))
        ),
    )
    .unwrap();
    let toml = common::http_config_shards(1, &[a.addr(), b.addr()], "")
        .replace(
            "[runtime]\nshards = 1\n",
            &format!(
                "[runtime]\nshards = 1\nserver_state_file = \"{}\"\n",
                state.display()
            ),
        )
        .replace(
            "[backend.app]\n",
            "[backend.app]\nload_server_state = true\n",
        );
    let lb = common::RingLb::start(&toml);
    for _ in 0..6 {
        assert_eq!(http_get(lb.addr("web"), "/").status, 200);
    }
    assert_eq!(a.requests(), 0, "s1 is in maintenance by the file");
    assert_eq!(b.requests(), 6);
}

/// The new process of a `-sf` upgrade reads the file as it is then: a server the file
/// names starts as the file says (as HAProxy's new process), one it does not name
/// takes the old process's operator state through the hand-over.
#[test]
fn an_upgrade_reads_the_file_and_the_hand_over_fills_the_rest() {
    let st = Setup::new();
    // Hand-over sockets of this test's processes go to a directory of its own.
    let run = st.dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let env = [("RINGLB_RUNTIME_DIR", run.display().to_string())];
    let old_cfg = write_cfg(&st.config("old", "127.0.0.1:0"));
    let old_path = old_cfg.path().to_str().unwrap().to_string();
    let mut old = common::RingLb::launch_env(&["-f", &old_path, "-db"], None, &env, |l| {
        l.starts_with("ready")
    });
    let fe = old.addr("web");
    let sock = st.sock("old");
    set(&sock, "set server app/s1 state maint");
    let dump = cli(&sock, "show servers state");
    let without_s3: String = dump
        .lines()
        .filter(|l| !l.contains(" app 3 s3 "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(st.state(), without_s3).unwrap();
    // Changed after the file was written: s1 and s2 by the file, s3 by the hand-over.
    set(&sock, "set server app/s1 state ready");
    set(&sock, "set server app/s2 state drain");
    set(&sock, "set server app/s3 state drain");
    let new_cfg = write_cfg(&st.config("new", &fe.to_string()));
    let new_path = new_cfg.path().to_str().unwrap().to_string();
    let pid = old.pid().to_string();
    let _new =
        common::RingLb::launch_env(&["-f", &new_path, "-db", "-sf", &pid], None, &env, |l| {
            l.starts_with("ready")
        });
    old.wait_exit(Duration::from_secs(10))
        .expect("the old process finished");
    let rows = state_rows(&cli(&st.sock("new"), "show servers state"));
    assert_eq!(row(&rows, "s1")[6], "1", "{rows:?}");
    assert_eq!(row(&rows, "s2")[6], "0", "{rows:?}");
    assert_eq!(row(&rows, "s3")[6], "8", "{rows:?}");
}

const PRECEDENCE: &str = r#"global
    nbthread 1
    stats socket "${SOCK}" mode 600 level admin
    server-state-file "${DIR}/state"

defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s

frontend web
    bind "${FE}"
    default_backend app

backend app
    load-server-state-from-file global
    server now-disabled "${S1}" disabled
    server now-enabled "${S1}"
    server enabled-by-operator "${S1}" disabled
    server weight-changed "${S1}" weight 10
    server drain-from-zero "${S1}" weight 3
    server drained "${S1}"
    server bad-value "${S1}"
    server was-down "${S1}" check inter 10s
"#;

/// Where a changed config and the file disagree, HAProxy's rules decide (a `disabled`
/// added or removed wins, an operator's enable of a `disabled` server stays, a weight
/// changed in the config wins, a drain that came from a zero weight goes, a checked
/// server that was DOWN starts DOWN); ringlb and HAProxy 2.6 read the same file into
/// the same `show servers state`.
#[test]
fn a_changed_config_and_the_file_are_reconciled_as_haproxy_does() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = TestBackend::start("s1");
    let lines = [
        // id name op admin uweight iweight
        (1, "now-disabled", 2, 0, 1, 1),
        (2, "now-enabled", 0, 5, 1, 1),
        (3, "enabled-by-operator", 2, 4, 1, 1),
        (4, "weight-changed", 2, 0, 3, 5),
        (5, "drain-from-zero", 2, 8, 0, 0),
        (6, "drained", 2, 8, 1, 1),
        (7, "bad-value", 2, 128, 1, 1),
        (8, "was-down", 0, 0, 1, 1),
    ];
    let mut text = String::from("1\n# be_id be_name ...\n");
    for (id, name, op, admin, uw, iw) in lines {
        text.push_str(&format!(
            "3 app {id} {name} 127.0.0.1 {op} {admin} {uw} {iw} 10 0 0 0 0 0 0 0 - {} - 0 0 - - 0\n",
            s1.addr().port()
        ));
    }
    std::fs::write(dir.path().join("state"), text).unwrap();
    let cfg = |who: &str, fe: String| {
        render(
            PRECEDENCE,
            &[
                (
                    "SOCK",
                    dir.path().join(format!("{who}.sock")).display().to_string(),
                ),
                ("DIR", dir.path().display().to_string()),
                ("FE", fe),
                ("S1", s1.addr().to_string()),
            ],
        )
    };
    let lb = ringlb_cfg(&cfg("lb", "127.0.0.1:0".into()));
    let ours = state_rows(&cli(&dir.path().join("lb.sock"), "show servers state"));
    assert!(
        lb.stderr().contains(
            "server-state application failed for server 'app/bad-value', invalid srv_admin_state value '128'"
        ),
        "{}",
        lb.stderr()
    );
    drop(lb);
    let fe = ReservedPort::new();
    let hx_sock = dir.path().join("hx.sock");
    let hx = HaProxy::start(&cfg("hx", fe.addr().to_string()), &[], Some(&hx_sock));
    let theirs = state_rows(&cli(&hx_sock, "show servers state"));
    assert!(
        hx.output().contains("invalid srv_admin_state value '128'"),
        "{}",
        hx.output()
    );
    assert_eq!(ours, theirs);
    // What the rules gave, spelled out.
    let admin = |name: &str| row(&ours, name)[6].clone();
    assert_eq!(admin("now-disabled"), "5");
    assert_eq!(admin("now-enabled"), "0");
    assert_eq!(admin("enabled-by-operator"), "4");
    assert_eq!(row(&ours, "weight-changed")[7], "10");
    assert_eq!(admin("drain-from-zero"), "0");
    assert_eq!(admin("drained"), "8");
    // DOWN until `rise` checks pass (10s apart: not within this test).
    assert_eq!(row(&ours, "was-down")[5], "0");
}

const MOVED: &str = r#"global
    nbthread 1
    stats socket "${SOCK}" mode 600 level admin
    server-state-file "${DIR}/state"

defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    load-server-state-from-file global

frontend web
    bind "${FE}"
    default_backend app

backend app
    server s1 localhost:${PA} init-addr last,libc
"#;

/// A server moved at run time (`set server addr`) is dumped where it is now, and a
/// restart puts it back there (its `init-addr` tries `last` first), as HAProxy does
/// with the same file.
#[test]
fn a_server_moved_at_run_time_comes_back_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestBackend::start("a");
    let b = TestBackend::try_start_at("b", "127.0.0.2:0".parse().unwrap()).unwrap();
    let cfg = |who: &str, fe: String| {
        render(
            MOVED,
            &[
                (
                    "SOCK",
                    dir.path().join(format!("{who}.sock")).display().to_string(),
                ),
                ("DIR", dir.path().display().to_string()),
                ("FE", fe),
                ("PA", a.addr().port().to_string()),
            ],
        )
    };
    let sock = dir.path().join("lb.sock");
    let lb = ringlb_cfg(&cfg("lb", "127.0.0.1:0".into()));
    assert_eq!(http_get(lb.addr("web"), "/").header("x-backend"), Some("a"));
    let moved = cli(
        &sock,
        &format!("set server app/s1 addr 127.0.0.2 port {}", b.addr().port()),
    );
    assert!(
        moved.contains("IP changed from '127.0.0.1' to '127.0.0.2'"),
        "{moved}"
    );
    let dump = cli(&sock, "show servers state");
    let rows = state_rows(&dump);
    assert_eq!(row(&rows, "s1")[4], "127.0.0.2");
    assert_eq!(row(&rows, "s1")[9], b.addr().port().to_string());
    std::fs::write(dir.path().join("state"), &dump).unwrap();
    drop(lb);

    let lb = ringlb_cfg(&cfg("lb", "127.0.0.1:0".into()));
    assert_eq!(state_rows(&cli(&sock, "show servers state")), rows);
    for _ in 0..4 {
        assert_eq!(http_get(lb.addr("web"), "/").header("x-backend"), Some("b"));
    }
    drop(lb);
    let fe = ReservedPort::new();
    let hx_sock = dir.path().join("hx.sock");
    let _hx = HaProxy::start(&cfg("hx", fe.addr().to_string()), &[], Some(&hx_sock));
    assert_eq!(state_rows(&cli(&hx_sock, "show servers state")), rows);
}

/// `init-addr last` alone: a name that does not resolve is refused on its line without
/// a file that has its address, and accepted with one, by `ringlb -c` as by
/// `haproxy -c`.
#[test]
fn init_addr_last_alone_takes_the_address_from_the_file_or_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fe = ReservedPort::new();
    let text = format!(
        "global\n    server-state-file \"{}/state\"\n\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n    load-server-state-from-file global\n\nfrontend web\n    bind {}\n    default_backend app\n\nbackend app\n    server s1 nowhere.invalid:80 init-addr last\n",
        dir.path().display(),
        fe.addr()
    );
    let file = write_cfg(&text);
    let lb = ringlb_check(file.path(), &[]);
    assert_eq!(lb.code(), Some(1), "{}", lb.stderr);
    assert!(
        lb.stderr
            .contains(":16: server 's1': could not resolve address"),
        "{}",
        lb.stderr
    );
    assert_ne!(haproxy_check(file.path(), &[]).code(), Some(0));
    std::fs::write(
        dir.path().join("state"),
        "1\n# header\n3 app 1 s1 127.0.0.7 2 0 1 1 5 0 0 0 0 0 0 0 nowhere.invalid 80 - 0 0 - - 0\n",
    )
    .unwrap();
    let lb = ringlb_check(file.path(), &[]);
    assert_eq!(lb.code(), Some(0), "{}", lb.stderr);
    let hx = haproxy_check(file.path(), &[]);
    assert_eq!(hx.code(), Some(0), "{}", hx.stderr);
}
