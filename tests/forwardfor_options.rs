//! `option forwardfor [except NET] [header NAME] [if-none]`, in a frontend or backend.

use crate::common;

use common::*;

fn start(frontend_opt: &str, backend_opt: &str, b: &TestBackend) -> RingLb {
    let cfg = format!(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\nfrontend www\n    bind 127.0.0.1:0\n{frontend_opt}    default_backend app\n\nbackend app\n{backend_opt}    server s1 {}\n",
        b.addr()
    );
    let file = tempfile::Builder::new().suffix(".cfg").tempfile().unwrap();
    std::fs::write(file.path(), cfg).unwrap();
    RingLb::launch(&["-f", file.path().to_str().unwrap()], None, |l| {
        l.starts_with("ready")
    })
}

fn seen(b: &TestBackend, name: &str) -> Vec<String> {
    b.last_headers()
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .collect()
}

#[test]
fn header_name_and_if_none() {
    let b = TestBackend::start("b");
    let lb = start("    option forwardfor header X-Real-IP if-none\n", "", &b);
    let mut c = HttpClient::connect(lb.addr("www"));
    assert_eq!(c.get("/").status, 200);
    assert_eq!(seen(&b, "x-real-ip"), ["127.0.0.1"]);
    assert!(seen(&b, "x-forwarded-for").is_empty());
    let r = c.request("GET / HTTP/1.1\r\nHost: x\r\nX-Real-IP: 203.0.113.5\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(
        seen(&b, "x-real-ip"),
        ["203.0.113.5"],
        "if-none keeps the client's header alone"
    );
}

#[test]
fn except_network() {
    let b = TestBackend::start("b");
    let lb = start("    option forwardfor except 127.0.0.0/8\n", "", &b);
    assert_eq!(http_get(lb.addr("www"), "/").status, 200);
    assert!(
        seen(&b, "x-forwarded-for").is_empty(),
        "loopback clients are excepted"
    );
}

#[test]
fn backend_side_options() {
    let b = TestBackend::start("b");
    let lb = start("", "    option forwardfor header X-Client\n", &b);
    assert_eq!(http_get(lb.addr("www"), "/").status, 200);
    assert_eq!(seen(&b, "x-client"), ["127.0.0.1"]);
}
