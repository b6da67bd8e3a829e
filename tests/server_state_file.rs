//! The server-state file (`server-state-file`, `server-state-base`,
//! `load-server-state-from-file`, `server-state-file-name`), HAProxy's reload recipe:
//! `show servers state` written to a file, then the next process (a restart, a
//! SIGUSR2 reload, a `-sf` upgrade) starts every server where it was. Round trips
//! through ringlb itself and through HAProxy 2.6 in both directions, on the real
//! binaries, compared on `show servers state` and on where traffic goes.

use crate::common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::haproxy::{cli, haproxy_check, render, ringlb_cfg, ringlb_check, write_cfg, HaProxy};
use common::server_state::{await_text, row, state_rows};
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
    await_text(|| lb.stderr(), "Can't open global server state file");
    let sock = st.sock("lb");
    set(&sock, "set server app/s1 state maint");
    set(&sock, "set server app/s2 state drain");
    set(&sock, "set server app/s3 weight 5");
    let dump = cli(&sock, "show servers state");
    std::fs::write(st.state(), &dump).unwrap();
    drop(lb);

    let lb = ringlb_cfg(&cfg);
    // Every load message comes before this line.
    await_text(|| lb.stderr(), "ringlb started");
    // HAProxy's one warning for this file: the drain that stays.
    let warnings: Vec<String> = lb
        .stderr()
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .map(str::to_string)
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].ends_with(": Server app/s2 remains in forced drain mode."),
        "{warnings:?}"
    );
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
    await_text(
        || lb.stderr(),
        "server-state application failed for server 'app/s1', invalid srv_admin_state value 'x'",
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
    await_text(|| lb.stderr(), &warning);
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
