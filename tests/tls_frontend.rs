//! TLS termination on the real binary (haproxy.cfg): curl, `openssl s_client` and a
//! Rust client against `bind ... ssl`; HTTP and TCP mode; a plain and a TLS bind in
//! one frontend with `ssl_fc` in rules; `accept-proxy` before the ClientHello; TLS
//! facts in ACLs (`ssl_fc_sni`, `ssl_c_used`). Certificates are generated per test.
//! The suite runs on both io drivers (scripts/test-all).

use crate::common;
use crate::tls_util;

use std::io::{Read, Write};
use std::process::Command;

use common::haproxy::ringlb_cfg;
use common::*;
use tls_util::*;

fn pki() -> Pki {
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    pki.server("b.pem", &["b.test"], "b.test", Alg::Ecdsa, false);
    pki
}

const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n";

#[test]
fn curl_openssl_and_a_rust_client_get_http11_over_tls() {
    let pki = pki();
    let app = TestBackend::start("app");
    let cfg = format!(
        "global\n    nbthread 2\n{DEFAULTS}frontend fe\n    bind 127.0.0.1:0 ssl crt {} crt {} alpn h2,http/1.1\n    default_backend be\nbackend be\n    server s1 {}\n",
        pki.path("a.pem").display(),
        pki.path("b.pem").display(),
        app.addr()
    );
    let lb = ringlb_cfg(&cfg);
    let addr = lb.addr("fe");
    // curl told to speak HTTP/1.1 offers http/1.1 only and gets it (HTTP/2 by ALPN:
    // tests/h2_tls.rs).
    let out = Command::new("curl")
        .args([
            "-sk",
            "--http1.1",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
            &format!("https://{addr}/"),
        ])
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200 1.1");
    // openssl s_client: SNI picks b.test's certificate, ALPN says http/1.1.
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "b.test",
            "-alpn",
            "http/1.1",
            "-quiet",
            "-verify_quiet",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET / HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let _ = child.wait();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("backend=app"), "{text}");
    let info = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "b.test",
            "-alpn",
            "h2,http/1.1",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl");
    let info = String::from_utf8_lossy(&info.stdout);
    // Both offered: the server's preference (h2 first) wins.
    assert!(info.contains("ALPN protocol: h2"), "{info}");
    assert!(info.contains("CN = b.test"), "{info}");
    // A Rust client: keep-alive over one TLS connection.
    let mut c = Https::connect(
        addr,
        client_config(&pki.ca_der(), ClientOpts::default()),
        "a.test",
    )
    .unwrap();
    for _ in 0..5 {
        let a = c.get("a.test", "/").unwrap();
        assert_eq!((a.status, a.text()), (200, "backend=app".to_string()));
    }
    assert!(
        app.accepts() <= 2,
        "pooled server connections, one per shard at most: {}",
        app.accepts()
    );
}

#[test]
fn one_frontend_with_a_plain_and_a_tls_bind_tells_them_apart_with_ssl_fc() {
    let pki = pki();
    let app = TestBackend::start("app");
    let other = TestBackend::start("other");
    let cfg = format!(
        "global\n    nbthread 2\n{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    bind 127.0.0.1:0 ssl crt {} crt {}\n    http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}\n    http-request set-header X-Forwarded-Proto http if !{{ ssl_fc }}\n    http-request set-header X-Has-Sni yes if {{ ssl_fc_has_sni }}\n    http-request set-header X-Tls13 yes if {{ ssl_fc_protocol TLSv1.3 }}\n    use_backend other if {{ ssl_fc_sni b.test }}\n    default_backend app\nbackend app\n    server s1 {}\nbackend other\n    server s1 {}\n",
        pki.path("a.pem").display(),
        pki.path("b.pem").display(),
        app.addr(),
        other.addr()
    );
    let lb = ringlb_cfg(&cfg);
    let addrs = lb.addrs("fe");
    assert_eq!(addrs.len(), 2, "{:?}", lb.stdout_lines());
    let (plain, tls) = (addrs[0], addrs[1]);
    // Plain: no TLS facts.
    let r = HttpClient::connect(plain).get("/headers");
    assert_eq!(r.status, 200);
    let h = r.body_str().to_ascii_lowercase();
    assert!(h.contains("x-forwarded-proto: http\n"), "{h}");
    assert!(!h.contains("x-has-sni"), "{h}");
    // TLS with SNI a.test: https, has SNI, TLSv1.3, default backend.
    let ca = pki.ca_der();
    let mut c = Https::connect(tls, client_config(&ca, ClientOpts::default()), "a.test").unwrap();
    let a = c.get("a.test", "/headers").unwrap();
    let h = a.text().to_ascii_lowercase();
    assert!(h.contains("x-forwarded-proto: https\n"), "{h}");
    assert!(h.contains("x-has-sni: yes\n"), "{h}");
    assert!(h.contains("x-tls13: yes\n"), "{h}");
    assert_eq!(a.header("x-backend").as_deref(), Some("app"));
    // TLS 1.2 with SNI b.test: the other backend, no x-tls13.
    let v12 = ClientOpts {
        versions: vec![&rustls::version::TLS12],
        ..ClientOpts::default()
    };
    let mut c = Https::connect(tls, client_config(&ca, v12), "b.test").unwrap();
    let a = c.get("b.test", "/headers").unwrap();
    assert_eq!(a.header("x-backend").as_deref(), Some("other"));
    assert!(
        !a.text().to_ascii_lowercase().contains("x-tls13"),
        "{}",
        a.text()
    );
}

#[test]
fn tcp_mode_terminates_tls_then_forwards_bytes_both_ways() {
    let pki = pki();
    let echo = EchoServer::start();
    let cfg = format!(
        "global\n    nbthread 2\ndefaults\n    mode tcp\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\nfrontend fe\n    bind 127.0.0.1:0 ssl crt {}\n    default_backend be\nbackend be\n    server s1 {}\n",
        pki.path("a.pem").display(),
        echo.addr()
    );
    let lb = ringlb_cfg(&cfg);
    let addr = lb.addr("fe");
    let cfg = client_config(&pki.ca_der(), ClientOpts::default());
    let name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
    let conn = rustls::ClientConnection::new(cfg, name).unwrap();
    let sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut s = rustls::StreamOwned::new(conn, sock);
    // 512 KiB sent while the echo comes back: both halves of the TLS stream at once.
    let data = pattern(512 * 1024);
    let mut got = Vec::new();
    let mut sent = 0;
    while got.len() < data.len() {
        if sent < data.len() {
            let n = (data.len() - sent).min(64 * 1024);
            s.write_all(&data[sent..sent + n]).unwrap();
            s.flush().unwrap();
            sent += n;
        }
        let mut b = vec![0u8; 65536];
        let n = s.read(&mut b).unwrap();
        assert!(n > 0, "early end after {} bytes", got.len());
        got.extend_from_slice(&b[..n]);
    }
    assert!(got == data, "the echo differs from what was sent");
    // The client's close_notify reaches the server as a half-close.
    s.conn.send_close_notify();
    s.flush().unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty());
}

#[test]
fn accept_proxy_reads_the_proxy_header_before_the_client_hello() {
    let pki = pki();
    let app = TestBackend::start("app");
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0 accept-proxy ssl crt {}\n    bind 127.0.0.1:0 ssl crt {}\n    option forwardfor\n    default_backend be\nbackend be\n    server s1 {}\n",
        pki.path("a.pem").display(),
        pki.path("a.pem").display(),
        app.addr()
    );
    let lb = ringlb_cfg(&cfg);
    let addr = lb.addrs("fe")[0];
    // The other bind of the frontend takes TLS straight away.
    let direct = client_config(&pki.ca_der(), ClientOpts::default());
    let (a, _) = https_get(lb.addrs("fe")[1], direct, "a.test", "/headers").unwrap();
    assert_eq!(a.status, 200);
    assert!(
        a.text()
            .to_ascii_lowercase()
            .contains("x-forwarded-for: 127.0.0.1"),
        "{}",
        a.text()
    );
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    // The header and the ClientHello may well arrive in one read.
    sock.write_all(b"PROXY TCP4 10.9.8.7 127.0.0.1 4000 443\r\n")
        .unwrap();
    let cfg = client_config(&pki.ca_der(), ClientOpts::default());
    let name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
    let conn = rustls::ClientConnection::new(cfg, name).unwrap();
    let mut s = rustls::StreamOwned::new(conn, sock);
    s.write_all(b"GET /headers HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = Vec::new();
    let _ = s.read_to_end(&mut text);
    let text = String::from_utf8_lossy(&text).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(text.contains("x-forwarded-for: 10.9.8.7"), "{text}");
    // Without the header the connection is closed.
    let mut bare = std::net::TcpStream::connect(addr).unwrap();
    bare.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    bare.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 0, 0, 1, 0])
        .unwrap();
    let mut b = [0u8; 64];
    assert!(matches!(bare.read(&mut b), Ok(0) | Err(_)));
}

#[test]
fn client_certificates_are_seen_by_acls() {
    let pki = pki();
    let app = TestBackend::start("app");
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0 ssl crt {} verify optional ca-file {}\n    http-request set-header X-Client-Cert yes if {{ ssl_c_used }}\n    http-request set-header X-Alice yes if {{ ssl_c_s_dn -m end /CN=alice }} {{ ssl_c_verify 0 }}\n    default_backend be\nbackend be\n    server s1 {}\n",
        pki.path("a.pem").display(),
        pki.ca_path().display(),
        app.addr()
    );
    let lb = ringlb_cfg(&cfg);
    let addr = lb.addr("fe");
    let ca = pki.ca_der();
    let (chain, key, _) = pki.client("alice");
    let with = ClientOpts {
        auth: Some((chain, key)),
        ..ClientOpts::default()
    };
    let mut c = Https::connect(addr, client_config(&ca, with), "a.test").unwrap();
    let h = c
        .get("a.test", "/headers")
        .unwrap()
        .text()
        .to_ascii_lowercase();
    assert!(h.contains("x-client-cert: yes\n"), "{h}");
    assert!(h.contains("x-alice: yes\n"), "{h}");
    let mut c = Https::connect(addr, client_config(&ca, ClientOpts::default()), "a.test").unwrap();
    let h = c
        .get("a.test", "/headers")
        .unwrap()
        .text()
        .to_ascii_lowercase();
    assert!(!h.contains("x-client-cert"), "{h}");
    assert!(!h.contains("x-alice"), "{h}");
}

/// A TLS client on `addr` with SNI `sni`, as a blocking stream.
fn tls_stream(
    addr: std::net::SocketAddr,
    pki: &Pki,
    sni: &str,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    let cfg = client_config(&pki.ca_der(), ClientOpts::default());
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(cfg, name).unwrap();
    let sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    rustls::StreamOwned::new(conn, sock)
}

/// Reads until `want` bytes came or the stream ended; what came.
fn read_upto(
    s: &mut rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>,
    want: usize,
) -> Vec<u8> {
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    while got.len() < want {
        match s.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&b[..n]),
        }
    }
    got
}

#[test]
fn tcp_rules_over_tls_see_the_handshake_and_the_decrypted_payload() {
    let pki = pki();
    let echo = EchoServer::start();
    // Session rules run after the handshake (they see ssl_fc_sni); content rules read
    // the decrypted bytes, waiting up to the inspect delay without losing any.
    let cfg = format!(
        "defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\nfrontend fe\n    bind 127.0.0.1:0 ssl crt {} crt {}\n    tcp-request inspect-delay 500ms\n    tcp-request session reject if {{ ssl_fc_sni b.test }}\n    tcp-request content reject if {{ req.payload(0,4) -m str QUIT }}\n    tcp-request content accept if {{ req.len ge 4 }}\n    default_backend be\nbackend be\n    server s1 {}\n",
        pki.path("a.pem").display(),
        pki.path("b.pem").display(),
        echo.addr()
    );
    let lb = ringlb_cfg(&cfg);
    let addr = lb.addr("fe");
    // Four bytes: accepted at once, echoed.
    let mut s = tls_stream(addr, &pki, "a.test");
    s.write_all(b"PING").unwrap();
    s.flush().unwrap();
    assert_eq!(read_upto(&mut s, 4), b"PING");
    // QUIT: refused, nothing echoed.
    let mut s = tls_stream(addr, &pki, "a.test");
    s.write_all(b"QUIT").unwrap();
    s.flush().unwrap();
    assert_eq!(read_upto(&mut s, 4), b"");
    assert_eq!(echo.accepts(), 1);
    // One byte, then silence past the inspect delay: the rules decide on what came
    // (accepted), and the byte read under the deadline reaches the server, followed
    // by what the client sends later.
    let mut s = tls_stream(addr, &pki, "a.test");
    s.write_all(b"P").unwrap();
    s.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(900));
    s.write_all(b"ONG").unwrap();
    s.flush().unwrap();
    assert_eq!(read_upto(&mut s, 4), b"PONG");
    // SNI b.test: the handshake completes, then the session rule closes it.
    let mut s = tls_stream(addr, &pki, "b.test");
    let _ = s.write_all(b"PING");
    let _ = s.flush();
    assert_eq!(read_upto(&mut s, 4), b"");
    assert_eq!(echo.accepts(), 2);
}

/// A soft stop (SIGUSR1, as an upgrade's `-sf` sends) finishes what was accepted: a
/// client whose ClientHello, PROXY header or first request had not arrived yet when
/// the listeners closed is still served (the handshake counts as in flight), then the
/// process exits. Before the fix, the shards ended at once and reset them.
#[test]
fn a_soft_stop_serves_connections_whose_handshake_is_still_on_its_way() {
    let pki = pki();
    let app = TestBackend::start("app");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("admin.sock");
    let cfg = format!(
        "global\n    nbthread 2\n    stats socket {}\n{DEFAULTS}frontend fe\n    bind 127.0.0.1:0 ssl crt {}\n    bind 127.0.0.1:0 accept-proxy ssl crt {}\n    bind 127.0.0.1:0\n    default_backend be\nbackend be\n    server s1 {}\n",
        sock.display(),
        pki.path("a.pem").display(),
        pki.path("a.pem").display(),
        app.addr()
    );
    let mut lb = ringlb_cfg(&cfg);
    let addrs = lb.addrs("fe");
    let conns: Vec<std::net::TcpStream> = addrs
        .iter()
        .map(|a| std::net::TcpStream::connect(a).unwrap())
        .collect();
    wait_for(
        "the three connections to be accepted",
        std::time::Duration::from_secs(10),
        || cli(&sock, "show info").lines().any(|l| l == "CurrConns: 3"),
    );
    lb.signal(libc::SIGUSR1);
    wait_for(
        "the listeners to close",
        std::time::Duration::from_secs(10),
        || std::net::TcpStream::connect(addrs[2]).is_err(),
    );
    // Long enough for shards that (wrongly) saw nothing in flight to have ended.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let request = b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";
    let mut conns = conns.into_iter();
    for proxied in [false, true] {
        let mut sock = conns.next().unwrap();
        sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        if proxied {
            sock.write_all(b"PROXY TCP4 10.9.8.7 127.0.0.1 4000 443\r\n")
                .unwrap();
        }
        let cfg = client_config(&pki.ca_der(), ClientOpts::default());
        let name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
        let conn = rustls::ClientConnection::new(cfg, name).unwrap();
        let mut s = rustls::StreamOwned::new(conn, sock);
        s.write_all(request).unwrap();
        let mut text = Vec::new();
        let _ = s.read_to_end(&mut text);
        let text = String::from_utf8_lossy(&text);
        assert!(
            text.starts_with("HTTP/1.1 200"),
            "proxied={proxied}: {text:?}"
        );
    }
    let mut plain = conns.next().unwrap();
    plain
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    plain.write_all(request).unwrap();
    let mut text = Vec::new();
    let _ = plain.read_to_end(&mut text);
    let text = String::from_utf8_lossy(&text);
    assert!(text.starts_with("HTTP/1.1 200"), "plain: {text:?}");
    let status = lb
        .wait_exit(std::time::Duration::from_secs(10))
        .expect("exits once they are served");
    assert_eq!(status.code(), Some(0), "{}", lb.stderr());
}

/// Large bodies in each framing (a length, chunks, until the close) reach a TLS client
/// intact, one after the other on one connection: they are read and encrypted in
/// batches of records (`tls::stream`), the framing decided on the server's bytes.
#[test]
fn large_bodies_in_every_framing_reach_a_tls_client_intact() {
    let pki = pki();
    let app = TestBackend::start("app");
    let cfg = format!(
        "global\n    nbthread 1\n{DEFAULTS}frontend fe\n    bind 127.0.0.1:0 ssl crt {}\n    default_backend be\nbackend be\n    server s1 {}\n",
        pki.path("a.pem").display(),
        app.addr()
    );
    let lb = ringlb_cfg(&cfg);
    let addr = lb.addr("fe");
    let dir = tempfile::tempdir().unwrap();
    let sizes = [(8 << 20) + 13, (3 << 20) + 7, 1 << 20, (2 << 20) + 1];
    let paths = [
        format!("/bytes/{}", sizes[0]),
        format!("/bytes-chunked/{}", sizes[1]),
        "/bytes/1".to_string(),
        format!("/bytes/{}", sizes[2]),
        format!("/bytes-close/{}", sizes[3]),
    ];
    let mut args = vec!["-sk".to_string(), "--http1.1".into()];
    for (i, p) in paths.iter().enumerate() {
        args.push("-o".into());
        args.push(dir.path().join(i.to_string()).display().to_string());
        args.push(format!("https://{addr}{p}"));
    }
    args.extend(["-w".into(), "%{num_connects} ".into()]);
    let out = Command::new("curl").args(&args).output().expect("curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The first four on the first connection (the last one ends with a close).
    let connects: Vec<&str> = std::str::from_utf8(&out.stdout)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(connects, ["1", "0", "0", "0", "0"], "{connects:?}");
    let expect = [sizes[0], sizes[1], 1, sizes[2], sizes[3]];
    for (i, n) in expect.iter().enumerate() {
        let got = std::fs::read(dir.path().join(i.to_string())).unwrap();
        assert_eq!(got.len(), *n, "{}", paths[i]);
        assert!(got == wire::pattern(*n), "{}: bytes differ", paths[i]);
    }
}
