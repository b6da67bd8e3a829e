//! Access logs in HAProxy's httplog / tcplog formats, to stdout and to UDP syslog, from
//! the TOML config and from haproxy.cfg.

use crate::common;

use std::net::UdpSocket;
use std::time::Duration;

use common::*;

fn toml(target: &str, fe_log: &str, mode: &str, server: std::net::SocketAddr) -> String {
    format!(
        "[runtime]\nshards = 2\n[log]\ntarget = \"{target}\"\n[frontend.web]\nbind = \"127.0.0.1:0\"\nmode = \"{mode}\"\nlog = \"{fe_log}\"\ndefault_backend = \"app\"\n[backend.app]\nretries = 0\n[[backend.app.server]]\nname = \"s1\"\naddr = \"{server}\"\n"
    )
}

/// `IP:PORT [DATE] FE BE/SRV TR/Tw/Tc/Tr/Ta STATUS BYTES - - TSC ac/fc/bc/sc/rc sq/bq "REQ"`
fn parse_http_line(line: &str) -> Vec<String> {
    let (head, req) = line.split_once(" \"").expect("a quoted request");
    let mut f: Vec<String> = head.split(' ').map(str::to_string).collect();
    f.push(req.trim_end_matches('"').to_string());
    f
}

#[test]
fn http_lines_on_stdout() {
    let b = TestBackend::start("b");
    let lb = RingLb::start(&toml("stdout", "http", "http", b.addr()));
    let mut c = HttpClient::connect(lb.addr("web"));
    let client = c.local_addr();
    assert_eq!(c.get("/logged?x=1").status, 200);
    wait_for("the log line", Duration::from_secs(5), || {
        lb.stdout_lines().iter().any(|l| l.contains("/logged"))
    });
    let line = lb
        .stdout_lines()
        .into_iter()
        .find(|l| l.contains("/logged"))
        .unwrap();
    let f = parse_http_line(&line);
    assert_eq!(f[0], client.to_string(), "{line}");
    assert!(
        f[1].starts_with('[') && f[1].len() == 26,
        "date like [23/Nov/2026:13:00:00.123]: {line}"
    );
    assert_eq!(f[2], "web");
    assert_eq!(f[3], "app/s1");
    assert_eq!(f[4].split('/').count(), 5, "five timers: {line}");
    assert!(f[4].split('/').all(|t| t.parse::<i64>().is_ok()));
    assert_eq!(f[5], "200");
    assert!(f[6].parse::<u64>().unwrap() > 0, "bytes: {line}");
    assert_eq!((f[7].as_str(), f[8].as_str()), ("-", "-"));
    assert_eq!(f[9], "----");
    assert_eq!(f[10].split('/').count(), 5);
    assert_eq!(f[11], "0/0");
    assert_eq!(f[12], "GET /logged?x=1 HTTP/1.1");
}

#[test]
fn failures_are_logged_with_their_termination_state() {
    let dead = ReservedPort::new();
    let lb = RingLb::start(&toml("stdout", "http", "http", dead.addr()));
    assert_eq!(http_get(lb.addr("web"), "/dead").status, 503);
    wait_for("the log line", Duration::from_secs(5), || {
        lb.stdout_lines().iter().any(|l| l.contains("/dead"))
    });
    let line = lb
        .stdout_lines()
        .into_iter()
        .find(|l| l.contains("/dead"))
        .unwrap();
    let f = parse_http_line(&line);
    assert_eq!(f[5], "503", "{line}");
    assert_eq!(f[9], "SC--", "{line}");
}

#[test]
fn udp_syslog_datagrams() {
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    sink.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let b = TestBackend::start("b");
    let lb = RingLb::start(&toml(
        &format!("udp://{}", sink.local_addr().unwrap()),
        "http",
        "http",
        b.addr(),
    ));
    assert_eq!(http_get(lb.addr("web"), "/sys").status, 200);
    let mut buf = [0u8; 2048];
    let n = sink.recv(&mut buf).expect("a syslog datagram");
    let msg = String::from_utf8_lossy(&buf[..n]);
    // local0 (16) * 8 + info (6) = 134.
    assert!(msg.starts_with("<134>"), "{msg}");
    assert!(msg.contains(&format!("ringlb[{}]: ", lb.pid())), "{msg}");
    // Every datagram ends with a newline, as HAProxy's do.
    assert!(msg.ends_with("\"GET /sys HTTP/1.1\"\n"), "{msg}");
}

#[test]
fn tcp_lines() {
    let echo = EchoServer::start();
    let lb = RingLb::start(&toml("stdout", "tcp", "tcp", echo.addr()));
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(lb.addr("web")).unwrap();
        s.write_all(b"hello").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back).unwrap();
        assert_eq!(back, b"hello");
    }
    wait_for("the tcp log line", Duration::from_secs(5), || {
        lb.stdout_lines().iter().any(|l| l.contains(" web app/s1 "))
    });
    let line = lb
        .stdout_lines()
        .into_iter()
        .find(|l| l.contains(" web app/s1 "))
        .unwrap();
    let f: Vec<&str> = line.split(' ').collect();
    assert_eq!(f[4].split('/').count(), 3, "Tw/Tc/Tt: {line}");
    assert_eq!(f[5], "5", "bytes to the client: {line}");
    assert_eq!(f[6], "--", "{line}");
}

#[test]
fn haproxy_cfg_log_global_and_httplog() {
    let b = TestBackend::start("b");
    let cfg = format!(
        "global\n    nbthread 2\n    log stdout format raw local0\n\ndefaults\n    mode http\n    log global\n    option httplog\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\nfrontend www\n    bind 127.0.0.1:0\n    default_backend app\n\nbackend app\n    server s1 {}\n",
        b.addr()
    );
    let file = tempfile::Builder::new().suffix(".cfg").tempfile().unwrap();
    std::fs::write(file.path(), cfg).unwrap();
    let lb = RingLb::launch(&["-f", file.path().to_str().unwrap()], None, |l| {
        l.starts_with("ready")
    });
    assert_eq!(http_get(lb.addr("www"), "/cfg").status, 200);
    wait_for("the log line", Duration::from_secs(5), || {
        lb.stdout_lines()
            .iter()
            .any(|l| l.contains(" www app/s1 ") && l.contains("/cfg"))
    });
}

#[test]
fn lines_appended_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let b = TestBackend::start("b");
    let lb = RingLb::start(&toml(
        &format!("file:{}", path.display()),
        "http",
        "http",
        b.addr(),
    ));
    assert_eq!(http_get(lb.addr("web"), "/to-file").status, 200);
    wait_for("the line in the file", Duration::from_secs(5), || {
        std::fs::read_to_string(&path).is_ok_and(|t| t.contains("\"GET /to-file HTTP/1.1\""))
    });
    assert!(!lb.stdout_lines().iter().any(|l| l.contains("/to-file")));
}

/// haproxy.cfg `option dontlognull`: a connection that carried no data is not logged on
/// the frontend that sets it, and is on the one that does not. Each frontend gets an
/// empty connection, then one with data.
#[test]
fn haproxy_cfg_dontlognull_skips_empty_connections() {
    use std::io::{Read, Write};
    let echo = EchoServer::start();
    let lb = common::haproxy::ringlb_cfg(&format!(
        "global\n    nbthread 1\n    log stdout format raw local0\ndefaults\n    mode tcp\n    log global\n    option tcplog\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend quiet\n    bind 127.0.0.1:0\n    option dontlognull\n    default_backend echo\nfrontend loud\n    bind 127.0.0.1:0\n    default_backend echo\nbackend echo\n    server e1 {}\n",
        echo.addr()
    ));
    for fe in ["quiet", "loud"] {
        drop(std::net::TcpStream::connect(lb.addr(fe)).unwrap());
        let mut s = std::net::TcpStream::connect(lb.addr(fe)).unwrap();
        s.write_all(b"hello").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back).unwrap();
        assert_eq!(back, b"hello");
    }
    let lines = |fe: &str| {
        lb.stdout_lines()
            .into_iter()
            .filter(|l| l.contains(&format!(" {fe} echo/e1 ")))
            .collect::<Vec<_>>()
    };
    // `quiet` went first: once `loud` logged both its connections, `quiet`'s empty one
    // was long closed, and would have been logged had dontlognull been ignored.
    let has_data = |fe: &str| lines(fe).iter().any(|l| l.split(' ').nth(5) == Some("5"));
    wait_for(
        "the data lines and loud's empty one",
        Duration::from_secs(5),
        || has_data("quiet") && has_data("loud") && lines("loud").len() >= 2,
    );
    let (quiet, loud) = (lines("quiet"), lines("loud"));
    assert_eq!(quiet.len(), 1, "dontlognull: only the data line: {quiet:?}");
    assert_eq!(
        loud.len(),
        2,
        "without it, the empty connection too: {loud:?}"
    );
}
