//! Differential test of `option dontlog-normal`: HAProxy 2.6 and ringlb run the same
//! haproxy.cfg, logging to stdout; with the option, a request that went well is not
//! logged and one answered with a 5xx is, on both; without it, both are.

use crate::common;

use std::time::Duration;

use common::haproxy::{render, ringlb_cfg, HaProxy};
use common::tcp::ReservedPort;
use common::*;

const CONFIG: &str = r#"global
    nbthread 1
    log stdout format raw local0

defaults
    mode http
    log global
    option httplog
    timeout connect 1s
    timeout client 10s
    timeout server 10s

frontend quiet
    bind "${FE1}"
    option dontlog-normal
    default_backend app

frontend loud
    bind "${FE2}"
    default_backend app

backend app
    server s "${B}"
"#;

/// Sends `/normal-TAG` (200) then `/status/503?TAG` to `fe`, waits until the second
/// is logged in `out()`, and says whether each was.
fn logged(fe: std::net::SocketAddr, tag: &str, out: &dyn Fn() -> String) -> (bool, bool) {
    let ok = HttpClient::connect(fe).get(&format!("/normal-{tag}"));
    assert_eq!(ok.status, 200);
    let bad = HttpClient::connect(fe).get(&format!("/status/503?{tag}"));
    assert_eq!(bad.status, 503);
    let second = format!("GET /status/503?{tag} ");
    // The 5xx is always logged: once it is, the line before it would be there too.
    wait_for("the 5xx log line", Duration::from_secs(10), || {
        out().contains(&second)
    });
    (out().contains(&format!("GET /normal-{tag} ")), true)
}

#[test]
fn dontlog_normal_logs_only_what_went_wrong_as_haproxy() {
    let backend = TestBackend::start("b");
    let ports = [ReservedPort::new(), ReservedPort::new()];
    let hx_fe = [ports[0].addr(), ports[1].addr()];
    let vars = |fe: [String; 2]| {
        vec![
            ("FE1", fe[0].clone()),
            ("FE2", fe[1].clone()),
            ("B", backend.addr().to_string()),
        ]
    };
    let hx = HaProxy::start(
        &render(CONFIG, &vars(hx_fe.map(|a| a.to_string()))),
        &hx_fe,
        None,
    );
    let zero = || "127.0.0.1:0".to_string();
    let lb = ringlb_cfg(&render(CONFIG, &vars([zero(), zero()])));
    let hx_out = || hx.output();
    let lb_out = || lb.stdout_lines().join("\n");
    let lb_fe = [lb.addr("quiet"), lb.addr("loud")];
    for (side, fe, out) in [
        ("haproxy", hx_fe, &hx_out as &dyn Fn() -> String),
        ("ringlb", lb_fe, &lb_out as &dyn Fn() -> String),
    ] {
        assert_eq!(
            logged(fe[0], "q", out),
            (false, true),
            "{side}: with dontlog-normal"
        );
        assert_eq!(logged(fe[1], "l", out), (true, true), "{side}: without it");
    }
}
