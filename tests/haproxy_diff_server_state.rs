//! Differential tests of the server-state file: HAProxy 2.6 and ringlb read the same
//! haproxy.cfg and the same file (a backend's own file, `init-addr last`, a config
//! changed since the file was written, a server moved at run time) and show the same
//! `show servers state`; ringlb's traffic goes where the file says.

use crate::common;

use std::time::Duration;

use common::haproxy::{cli, haproxy_check, render, ringlb_cfg, ringlb_check, write_cfg, HaProxy};
use common::server_state::{await_text, row, state_rows};
use common::{http_get, wait_for, ReservedPort, TestBackend};

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
    await_text(
        || lb.stderr(),
        "Proxy 'app': backend ID mismatch: from server state file: '9'",
    );
    await_text(
        || lb.stderr(),
        "Proxy 'app': can't find server 'gone' in backend 'app'",
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
    // Its checks are connections (no request): at least `rise` of them. The kernel
    // completes the last one before the backend's accept loop counts it, so wait.
    wait_for(
        "s3 to count its rise checks",
        Duration::from_secs(5),
        || s3.accepts() >= 3,
    );
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
/// the same `show servers state`, and say the same about it at load.
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
    await_text(|| lb.stderr(), "server-state application failed for server 'app/bad-value', invalid srv_admin_state value '128'");
    await_text(|| lb.stderr(), "ringlb started");
    let lb_err = lb.stderr();
    drop(lb);
    let fe = ReservedPort::new();
    let hx_sock = dir.path().join("hx.sock");
    let hx = HaProxy::start(&cfg("hx", fe.addr().to_string()), &[], Some(&hx_sock));
    let theirs = state_rows(&cli(&hx_sock, "show servers state"));
    await_text(|| hx.output(), "invalid srv_admin_state value '128'");
    assert_eq!(ours, theirs);
    // The same messages about the states the file gave.
    let said: Vec<String> = hx
        .output()
        .lines()
        .filter(|l| {
            [
                "changed from server-state",
                "forced drain",
                "forced maintenance",
            ]
            .iter()
            .any(|w| l.contains(w))
        })
        .filter_map(|l| Some(l.split_once("config : ")?.1.to_string()))
        .collect();
    assert_eq!(said.len(), 4, "{}", hx.output());
    for m in &said {
        assert!(lb_err.contains(m.as_str()), "{m:?} not in:\n{lb_err}");
    }
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
