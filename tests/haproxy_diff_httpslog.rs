//! Differential test of `option httpslog` (HAProxy 2.6's HTTPS log line): HAProxy and
//! ringlb run the same haproxy.cfg with a TLS bind and a plain one, log to stdout,
//! and the line of each request must say the same: `option httplog`'s fields (times,
//! ports, byte counts and connection counters masked) and the TLS fields `%[fc_err]/
//! %[ssl_fc_err,hex]/%[ssl_c_err]/%[ssl_c_ca_err]/%[ssl_fc_is_resumed]
//! %[ssl_fc_sni]/%sslv/%sslc`, for a new TLS 1.3 and TLS 1.2 connection, a resumed
//! one of each, and a plain connection.

use crate::common;
use crate::tls_util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::twins::{Side, Srv, Twins};
use tls_util::*;

/// A client that accepts any certificate, speaking only `version`, with its own
/// session store (so that a second connection resumes).
fn client(version: &'static rustls::SupportedProtocolVersion) -> Arc<rustls::ClientConfig> {
    let c = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider())))
        .with_no_client_auth();
    Arc::new(c)
}

/// The fields of a log line that must match: every field but the client address,
/// the date, the times, the byte count and the connection counters.
fn masked(line: &str) -> String {
    let f: Vec<&str> = line.split(' ').collect();
    f.iter()
        .enumerate()
        .map(|(i, w)| match i {
            0 => "CLIENT",
            1 => "[DATE]",
            4 => "TIMES",
            6 => "BYTES",
            10 => "CONNS",
            _ => w,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The log line of the request for `path`, from what `lines` gives so far.
fn line_for(lines: impl Fn() -> String, path: &str) -> String {
    let needle = format!("\"GET {path} HTTP/1.1\"");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(l) = lines().lines().find(|l| l.contains(&needle)) {
            return masked(l.trim());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    format!("NO LINE for {path}")
}

fn plain_get(s: &Side, path: &str) -> u16 {
    let mut c = TcpStream::connect(s.addr("plain")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    String::from_utf8_lossy(&got)
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn httpslog_lines_say_what_haproxy_says_for_new_resumed_and_plain_connections() {
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let body = format!(
        r#"
frontend tls
    bind "127.0.0.1:${{TLS}}" ssl crt {}
    log global
    option httpslog
    default_backend app

frontend plain
    bind "127.0.0.1:${{PLAIN}}"
    log global
    option httpslog
    default_backend app

backend app
    server s1 "${{S1}}"
"#,
        pki.path("a.pem").display()
    );
    let t = Twins::start_with_global(
        "    log stdout format raw local0\n",
        &body,
        &[("tls", "TLS"), ("plain", "PLAIN")],
        &[("S1", Srv::Up("s1"))],
    );
    let run = |s: &Side| -> Vec<(String, bool)> {
        let mut seen = Vec::new();
        for (name, version) in [
            ("tls13", &rustls::version::TLS13),
            ("tls12", &rustls::version::TLS12),
        ] {
            let cfg = client(version);
            for (i, sni) in ["a.test", "a.test"].iter().enumerate() {
                let path = format!("/{name}/{i}");
                let (a, resumed) = https_get(s.addr("tls"), cfg.clone(), sni, &path).unwrap();
                assert_eq!(a.status, 200, "{} {path}", s.who);
                seen.push((path, resumed));
            }
        }
        assert_eq!(plain_get(s, "/plain"), 200, "{}", s.who);
        seen.push(("/plain".into(), false));
        seen
    };
    let hx_paths = run(&t.hx);
    let lb_paths = run(&t.lb);
    // Both resumed the second connection of each version (else the comparison of
    // `ssl_fc_is_resumed` would prove nothing).
    assert_eq!(hx_paths, lb_paths);
    assert!(hx_paths[1].1 && hx_paths[3].1, "{hx_paths:?}");
    let mut diffs = Vec::new();
    for (path, _) in &hx_paths {
        let hx = line_for(|| t.haproxy_output(), path);
        let lb = line_for(|| t.ringlb_stdout().join("\n"), path);
        if hx != lb {
            diffs.push(format!("{path}\n  haproxy: {hx}\n  ringlb:  {lb}"));
        }
        assert!(!hx.starts_with("NO LINE"), "{hx}");
    }
    assert!(
        diffs.is_empty(),
        "httpslog lines differ:\n{}",
        diffs.join("\n")
    );
    // A sanity check of the masking: the TLS 1.3 line carries the TLS fields.
    let l = line_for(|| t.ringlb_stdout().join("\n"), "/tls13/1");
    assert!(
        l.ends_with(" 0/0000000000000000/0/0/1 a.test/TLSv1.3/TLS_AES_256_GCM_SHA384")
            || l.contains(" 0/0000000000000000/0/0/1 a.test/TLSv1.3/"),
        "{l}"
    );
}
