//! The active-standby example in `tuning/ha/`: both keepalived files pass
//! `keepalived -t` (and a broken copy does not, so the check can fail), and the health
//! check script follows ringlb's `/ready` (200 while serving, failing once a soft stop
//! began, so the virtual address moves before traffic stops).

use crate::common;

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;

fn ha_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tuning/ha")
}

/// `keepalived -t` on `text` (the script path pointed at the repository's copy).
fn keepalived_check(text: &str) -> (bool, String) {
    let script = ha_dir().join("check-ringlb-ready");
    let text = text.replace(
        "/usr/local/bin/check-ringlb-ready",
        script.to_str().unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keepalived.conf");
    std::fs::write(&path, text).unwrap();
    let out = Command::new("keepalived")
        .args(["-t", "-l", "-f", path.to_str().unwrap()])
        .output()
        .expect("run keepalived (apt-get install keepalived)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // keepalived 2.2 ends a successful -t by SIGTERM to itself; errors exit non-zero.
    let ok = out.status.success() || out.status.signal() == Some(libc::SIGTERM);
    (ok && text.trim().is_empty(), text)
}

#[test]
fn keepalived_examples_pass_keepalived_t() {
    for name in ["keepalived-primary.conf", "keepalived-standby.conf"] {
        let text = std::fs::read_to_string(ha_dir().join(name)).unwrap();
        let (ok, out) = keepalived_check(&text);
        assert!(ok, "{name}: {out}");
        let broken = text.replace("advert_int 1", "advert_int 1\n    no_such_keyword 3");
        let (ok, out) = keepalived_check(&broken);
        assert!(
            !ok && out.contains("no_such_keyword"),
            "{name} broken: {out}"
        );
    }
}

#[test]
fn check_script_follows_ready() {
    let b = TestBackend::start("b");
    let lb = RingLb::start(&http_config(
        &[b.addr()],
        "[admin]\nlisten = \"127.0.0.1:0\"\n",
    ));
    let admin = lb.admin_addr();
    let url = format!("http://{admin}/ready");
    let script = ha_dir().join("check-ringlb-ready");
    let run = || Command::new(&script).arg(&url).status().unwrap().success();
    wait_for("/ready passes the check", Duration::from_secs(5), run);
    // A soft stop with a request in flight: /ready fails while the request finishes.
    let mut c = HttpClient::connect(lb.addr("web"));
    c.send(get_request("/sleep/1500"));
    wait_for("the request at the backend", Duration::from_secs(5), || {
        b.in_flight() == 1
    });
    lb.signal(libc::SIGUSR1);
    wait_for(
        "the check fails during the soft stop",
        Duration::from_secs(2),
        || !run(),
    );
    // It failed while ringlb still served, not because ringlb had exited.
    assert_eq!(b.in_flight(), 1);
    assert_eq!(c.read_response().status, 200);
}
