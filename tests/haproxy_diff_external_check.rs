//! Differential test of `option external-check`: HAProxy 2.6 and ringlb run the same
//! haproxy.cfg whose check program (a shell script written here) records its argv
//! and its `PATH`/`HAPROXY_*` environment, then exits with the status its server is
//! given. Both must pass the program the same arguments and variables, and agree on
//! UP/DOWN, `check_status` and `check_code` (PROCOK, PROCERR with the exit status,
//! PROCTOUT for a program still running at the timeout).

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::haproxy::{cli, render, ringlb_cfg, HaProxy};
use common::tcp::ReservedPort;
use common::twins::stat_rows;

const CONFIG: &str = r#"global
    nbthread 1
    stats socket "${SOCK}" mode 600 level admin
    external-check
    insecure-fork-wanted

defaults
    mode tcp
    timeout connect 1s
    timeout client 5s
    timeout server 5s

frontend fe
    bind "${FE}"
    default_backend app

backend app
    option external-check
    external-check path "/usr/bin:/bin"
    external-check command "${SCRIPT}"
    server good 127.0.0.1:7001 check inter 300ms rise 1 fall 1
    server bad 127.0.0.1:7002 check inter 300ms rise 1 fall 1 id 9 maxconn 12
    server slow 127.0.0.1:7003 check inter 300ms rise 1 fall 1
"#;

/// A check program writing into `dir`: `NAME.args`, `NAME.env`, then exits with what
/// `NAME.status` says (sleeping first for `slow`).
fn script(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("check.sh");
    let d = dir.display();
    std::fs::write(
        &path,
        format!(
            // Written aside and renamed: the test never reads a half-written file.
            "#!/bin/sh\nf=\"{d}/$HAPROXY_SERVER_NAME\"\necho \"$#|$1|$2|$3|$4\" > \"$f.args.$$\" && mv \"$f.args.$$\" \"$f.args\"\nenv | grep -E '^(PATH|HAPROXY_)' | sort > \"$f.env.$$\" && mv \"$f.env.$$\" \"$f.env\"\n[ \"$HAPROXY_SERVER_NAME\" = slow ] && sleep 5\nexit $(cat \"$f.status\")\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("good.status"), "0").unwrap();
    std::fs::write(dir.join("bad.status"), "3").unwrap();
    std::fs::write(dir.join("slow.status"), "0").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn checks(sock: &Path) -> Option<BTreeMap<String, Vec<String>>> {
    let mut out = BTreeMap::new();
    for r in stat_rows(&cli(sock, "show stat")) {
        if r["pxname"] != "app" || r["svname"] == "BACKEND" {
            continue;
        }
        let st = r["check_status"].clone();
        if st.is_empty() || st.starts_with("* ") {
            return None;
        }
        out.insert(
            r["svname"].clone(),
            vec![r["status"].clone(), st, r["check_code"].clone()],
        );
    }
    Some(out)
}

fn written(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name)).ok()
}

#[test]
fn external_checks_run_as_haproxy_runs_them() {
    let hx_dir = tempfile::tempdir().unwrap();
    let lb_dir = tempfile::tempdir().unwrap();
    let hx_sock = hx_dir.path().join("s.sock");
    let lb_sock = lb_dir.path().join("s.sock");
    let hx_fe = ReservedPort::new();
    let hx_cfg = render(
        CONFIG,
        &[
            ("SOCK", hx_sock.display().to_string()),
            ("FE", hx_fe.addr().to_string()),
            ("SCRIPT", script(hx_dir.path()).display().to_string()),
        ],
    );
    let lb_cfg = render(
        CONFIG,
        &[
            ("SOCK", lb_sock.display().to_string()),
            ("FE", "127.0.0.1:0".into()),
            ("SCRIPT", script(lb_dir.path()).display().to_string()),
        ],
    );
    let _hx = HaProxy::start(&hx_cfg, &[hx_fe.addr()], Some(&hx_sock));
    let _lb = ringlb_cfg(&lb_cfg);

    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut hx, mut lb) = (None, None);
    loop {
        hx = checks(&hx_sock).or(hx);
        lb = checks(&lb_sock).or(lb);
        let files = ["good.args", "bad.env", "slow.args"]
            .iter()
            .all(|f| written(hx_dir.path(), f).is_some() && written(lb_dir.path(), f).is_some());
        if files && hx.is_some() && hx == lb {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "HAProxy and ringlb disagree:\nhaproxy {hx:?}\nringlb  {lb:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let v = hx.unwrap();
    assert_eq!(v["good"][..2], ["UP", "PROCOK"]);
    assert_eq!(v["bad"], ["DOWN", "PROCERR", "3"]);
    assert_eq!(v["slow"][..2], ["DOWN", "PROCTOUT"]);
    for f in ["good.args", "bad.args", "good.env", "bad.env"] {
        assert_eq!(
            written(hx_dir.path(), f),
            written(lb_dir.path(), f),
            "{f} differs (haproxy first)"
        );
    }
    assert_eq!(
        written(lb_dir.path(), "bad.args").as_deref(),
        Some("4|NOT_USED|NOT_USED|127.0.0.1|7002\n")
    );
}
