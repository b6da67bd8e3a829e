//! HTTP/2 over TLS, chosen by ALPN (`bind ... ssl crt ... alpn h2,http/1.1`): a client
//! that picks `h2` is served by the HTTP/2 path, one that picks `http/1.1` (or offers
//! no ALPN) by the HTTP/1 path, on the same bind; `ssl_fc_alpn` says which; h2load
//! over TLS has no errors; the TOML default ALPN on an HTTP frontend offers h2. Real
//! curl, h2load and openssl against the real binary. Runs on both io drivers
//! (scripts/test-all).

use crate::common;
use crate::tls_util;

use std::process::{Command, Stdio};

use common::haproxy::ringlb_cfg;
use common::wire::header;
use common::*;
use tls_util::*;

fn pki() -> Pki {
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    pki
}

fn setup(pki: &Pki, app: &TestBackend) -> RingLb {
    let cfg = format!(
        "global\n    nbthread 2\n    log stdout format raw local0\n\
defaults\n    mode http\n    log global\n    option httplog\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
frontend fe\n    bind 127.0.0.1:0 ssl crt {} alpn h2,http/1.1\n\
    http-request set-header x-alpn %[ssl_fc_alpn]\n\
    http-request set-header x-ver %[req.ver]\n    default_backend be\n\
backend be\n    server s1 {}\n",
        pki.path("a.pem").display(),
        app.addr()
    );
    ringlb_cfg(&cfg)
}

/// curl over TLS (certificate not checked) with `args`: `code proto` from `-w`.
fn curl(args: &[&str], url: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "-k", "--max-time", "30", "-o", "/dev/null"])
        .args(["-w", "%{http_code} %{http_version}"])
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn alpn_h2_is_served_as_http2_and_http11_clients_share_the_bind() {
    let pki = pki();
    let app = TestBackend::start("app");
    let lb = setup(&pki, &app);
    assert!(
        !lb.stderr().contains("not served yet"),
        "no warning about alpn h2: {}",
        lb.stderr()
    );
    let url = format!("https://{}/", lb.addr("fe"));
    // curl offers h2 and http/1.1: the server's preference (h2) wins.
    assert_eq!(curl(&["--http2"], &url), "200 2");
    let seen = app.last_headers();
    assert_eq!(header(&seen, "x-alpn"), Some("h2"), "{seen:?}");
    assert_eq!(header(&seen, "x-ver"), Some("2.0"), "{seen:?}");
    // The same bind, HTTP/1.1 by ALPN, and with no ALPN at all.
    assert_eq!(curl(&["--http1.1"], &url), "200 1.1");
    let seen = app.last_headers();
    assert_eq!(header(&seen, "x-alpn"), Some("http/1.1"), "{seen:?}");
    assert_eq!(header(&seen, "x-ver"), Some("1.1"), "{seen:?}");
    assert_eq!(curl(&["--http1.1", "--no-alpn"], &url), "200 1.1");
    let seen = app.last_headers();
    assert_eq!(header(&seen, "x-alpn").unwrap_or(""), "", "{seen:?}");
    // A request body over HTTP/2 and TLS arrives whole.
    let out = Command::new("curl")
        .args(["-sS", "-k", "--http2", "--max-time", "30"])
        .args([
            "--data-binary",
            "hello over h2 and tls",
            &format!("{url}echo"),
        ])
        .output()
        .expect("curl runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello over h2 and tls"
    );
    // openssl sees h2 chosen when offered first or second.
    let info = Command::new("openssl")
        .args(["s_client", "-connect", &lb.addr("fe").to_string()])
        .args(["-servername", "a.test", "-alpn", "http/1.1,h2"])
        .stdin(Stdio::null())
        .output()
        .expect("openssl");
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains("ALPN protocol: h2"), "{info}");
    // The access log writes the HTTP/2 request as HAProxy does.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while lb.stdout_count("\"GET / HTTP/2.0\"") == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        lb.stdout_lines()
            .iter()
            .any(|l| l.contains("\"GET / HTTP/2.0\"")),
        "{:?}",
        lb.stdout_lines()
    );
}

#[test]
fn h2load_over_tls_completes_every_request() {
    let pki = pki();
    let app = TestBackend::start("app");
    let lb = setup(&pki, &app);
    let out = Command::new("h2load")
        .args(["-n", "20000", "-c", "16", "-m", "10", "-T", "30"])
        .arg(format!("https://{}/", lb.addr("fe")))
        .output()
        .expect("h2load runs (Debian package nghttp2-client)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("Application protocol: h2"), "{text}");
    assert!(
        text.contains("requests: 20000 total, 20000 started, 20000 done, 20000 succeeded, 0 failed, 0 errored, 0 timeout"),
        "{text}"
    );
    assert_eq!(app.requests_to("/"), 20000);
    // HTTP/1.1 clients of the same bind are unaffected afterwards.
    let url = format!("https://{}/", lb.addr("fe"));
    assert_eq!(curl(&["--http1.1"], &url), "200 1.1");
}

/// TOML: a TLS frontend in mode http offers `h2, http/1.1` when `alpn` is not given.
#[test]
fn a_toml_tls_frontend_offers_h2_by_default() {
    let pki = pki();
    let app = TestBackend::start("app");
    let lb = RingLb::start(&format!(
        "[frontend.web]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"app\"\n\
[frontend.web.tls]\ncrt = [\"{}\"]\n[backend.app]\nserver = [{{ addr = \"{}\" }}]\n",
        pki.path("a.pem").display(),
        app.addr()
    ));
    let url = format!("https://{}/", lb.addr("web"));
    assert_eq!(curl(&["--http2"], &url), "200 2");
    assert_eq!(curl(&["--http1.1"], &url), "200 1.1");
}

/// A connection upgraded to HTTP/2 by its preface (no ALPN offered) runs on ringlb's
/// record layer: a forged record there ends that connection, with an alert, and the
/// next client is served.
#[test]
fn a_forged_record_ends_an_upgraded_http2_connection_alone() {
    use std::io::{Read, Write};
    let pki = pki();
    let app = TestBackend::start("app");
    let lb = setup(&pki, &app);
    let cfg = any_cert_client(&[], None);
    let conn = rustls::ClientConnection::new(cfg, "a.test".try_into().unwrap()).unwrap();
    let sock = std::net::TcpStream::connect(lb.addr("fe")).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut s = rustls::StreamOwned::new(conn, sock);
    let mut hello = common::h2::PREFACE.to_vec();
    hello.extend(common::h2::frame(4, 0, 0, &[]));
    s.write_all(&hello).unwrap();
    s.flush().unwrap();
    // The server's SETTINGS: the connection is HTTP/2 now.
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).expect("the server's first frames");
    assert!(n >= 9 && buf[3] == 4, "SETTINGS first: {:?}", &buf[..n]);
    // An application-data record that does not open, on the socket under TLS.
    let mut forged = vec![0x17, 0x03, 0x03, 0x00, 0x30];
    forged.extend([0xAA; 0x30]);
    s.sock.write_all(&forged).unwrap();
    let end = loop {
        match s.read(&mut buf) {
            Ok(0) => break "eof".to_string(),
            Ok(_) => continue,
            Err(e) => break format!("{:?}: {e}", e.kind()),
        }
    };
    assert!(
        !end.contains("WouldBlock") && !end.contains("TimedOut"),
        "the connection stayed open: {end}"
    );
    assert!(end.contains("BadRecordMac") || end == "eof", "{end}");
    let url = format!("https://{}/", lb.addr("fe"));
    assert_eq!(curl(&["--http2"], &url), "200 2");
}
