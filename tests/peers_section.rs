//! haproxy.cfg `peers` sections, against HAProxy 2.6's own `-c`: a section where no
//! peer is this node (`localpeer`, else the host name) is removed by both with the same
//! warning, and ringlb serves the config (a stick table naming the section stays
//! local); a section where this node is a peer is refused by ringlb on that peer's
//! line (it would sync tables over HAProxy's peers protocol, which ringlb does not
//! speak), where HAProxy accepts it.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::haproxy::ringlb_cfg;
use common::*;

fn config(local: &str, backend: &std::net::SocketAddr) -> String {
    format!(
        "global\n    localpeer {local}\ndefaults\n    mode http\n    timeout client 5s\n    timeout server 5s\n    timeout connect 1s\npeers mypeers\n    peer demo 127.0.0.1:1024\n    peer other 192.0.2.1:1024\nfrontend fe\n    bind 127.0.0.1:0\n    http-request track-sc0 src table be\n    default_backend be\nbackend be\n    stick-table type ip size 1m expire 1h store http_req_cnt peers mypeers\n    server s1 {backend}\n"
    )
}

/// `haproxy -c` (which binds nothing, but refuses port 0: any other port does).
fn haproxy_check(text: &str) -> (bool, String) {
    let file = tempfile::Builder::new().suffix(".cfg").tempfile().unwrap();
    std::fs::write(file.path(), text.replace("127.0.0.1:0", "127.0.0.1:1")).unwrap();
    let out = Command::new(common::haproxy::haproxy_bin())
        .args(["-c", "-f", file.path().to_str().unwrap()])
        .output()
        .expect("haproxy -c");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn ringlb_check(text: &str) -> (Option<i32>, String) {
    let file = tempfile::Builder::new().suffix(".cfg").tempfile().unwrap();
    std::fs::write(file.path(), text).unwrap();
    let out = run(
        &["-c", "-f", file.path().to_str().unwrap()],
        Duration::from_secs(10),
    );
    (out.code(), out.stderr)
}

#[test]
fn a_peers_section_without_this_node_is_removed_as_haproxy_removes_it() {
    let app = TestBackend::start("app");
    let text = config("nobody-here", &app.addr());
    let warning = "Removing incomplete section 'peers mypeers' (no peer named 'nobody-here').";
    let (ok, hx) = haproxy_check(&text);
    assert!(ok && hx.contains(warning), "{hx}");
    let (code, lb) = ringlb_check(&text);
    assert_eq!(code, Some(0), "{lb}");
    assert!(lb.contains(&format!(":8: {warning}")), "{lb}");
    // And it serves, its table local.
    let lb = ringlb_cfg(&text);
    assert_eq!(http_get(lb.addr("fe"), "/").status, 200);
}

#[test]
fn a_peers_section_naming_this_node_is_refused_on_that_peers_line() {
    let app = TestBackend::start("app");
    let text = config("demo", &app.addr());
    let (ok, hx) = haproxy_check(&text);
    assert!(ok, "{hx}");
    assert!(!hx.contains("Removing incomplete section"), "{hx}");
    let (code, lb) = ringlb_check(&text);
    assert_eq!(code, Some(1), "{lb}");
    assert!(
        lb.contains(":9: peers 'mypeers': peer 'demo' is this node")
            && lb.contains("peers protocol"),
        "{lb}"
    );
}
