//! `/metrics` parses with a real Prometheus parser (Python's prometheus_client, which
//! scripts/test-all installs) and its counts match the requests sent.

use crate::common;

use common::*;

#[test]
fn prometheus_client_parses_the_exposition() {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("python3 prometheus_client missing; scripts/test-all installs it");
        return;
    }
    let b = TestBackend::start("b");
    let lb = RingLb::start(&format!(
        "[runtime]\nshards = 2\n[admin]\nlisten = \"127.0.0.1:0\"\n[frontend.web]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"app\"\n[backend.app]\n[[backend.app.server]]\nname = \"s1\"\naddr = \"{}\"\n",
        b.addr()
    ));
    for _ in 0..25 {
        assert_eq!(http_get(lb.addr("web"), "/").status, 200);
    }
    let text = http_get(lb.admin_addr(), "/metrics").body_str();
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
want = {
    ("haproxy_frontend_http_requests_total", (("proxy", "web"),)): 25.0,
    ("haproxy_server_sessions_total", (("proxy", "app"), ("server", "s1"))): 25.0,
    ("ringlb_backend_response_seconds_count", (("proxy", "app"),)): 25.0,
}
seen = {}
families = 0
for fam in text_string_to_metric_families(sys.stdin.read()):
    families += 1
    for s in fam.samples:
        seen[(s.name, tuple(sorted(s.labels.items())))] = s.value
assert families > 30, families
for k, v in want.items():
    assert seen.get(k) == v, (k, seen.get(k))
print("ok", families)
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "parser failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
