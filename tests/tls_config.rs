//! TLS in the config, through the real binary: `ringlb -c` reads every certificate,
//! key, CA, CRL, crt-list and ticket-key file a bind or server names, says what it
//! cannot offer (warnings) or use (errors, each with its line), and agrees with
//! `haproxy -c` on the verdict. Certificates are generated per test (rcgen).

use crate::common;
use crate::tls_util;

use std::path::Path;

use common::haproxy::{haproxy_check, ringlb_check};
use tls_util::{Alg, Pki};

fn write(pki: &Pki, name: &str, text: &str) -> std::path::PathBuf {
    let p = pki.path(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).expect(needle) + 1
}

fn cfg(bind: &str, server: &str) -> String {
    format!(
        "global\n    ssl-default-bind-ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256\n    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets\n\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n\nfrontend web\n    bind 127.0.0.1:18080\n    bind 127.0.0.1:18443 {bind}\n    default_backend app\n\nbackend app\n    server s1 127.0.0.1:1 {server}\n"
    )
}

#[test]
fn a_full_tls_frontend_checks_on_both_and_warns_on_what_rustls_lacks() {
    let pki = Pki::new("Test CA");
    pki.server("certs/a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    pki.server("certs/b.pem", &["*.b.test"], "b.test", Alg::Rsa, true);
    pki.server("list/c.pem", &["c.test"], "c.test", Alg::Ecdsa, false);
    let crl = pki.crl("crl.pem", &[]);
    let list = write(
        &pki,
        "list.txt",
        &format!(
            "# per-line options\n{} [verify required ca-file {} crl-file {} alpn h2 ssl-min-ver TLSv1.3] c.test !x.c.test\n",
            pki.path("list/c.pem").display(),
            pki.ca_path().display(),
            crl.display()
        ),
    );
    let bind = format!(
        "ssl crt {} crt-list {} strict-sni alpn h2,http/1.1 ssl-min-ver TLSv1.0 curves X25519:P-256:X448",
        pki.path("certs").display(),
        list.display()
    );
    let text = cfg(
        &bind,
        &format!(
            "ssl verify required ca-file {} sni str(app.test) check-ssl",
            pki.ca_path().display()
        ),
    );
    let path = write(&pki, "ok.cfg", &text);
    let hx = haproxy_check(&path, &[]);
    assert_eq!(hx.status.code(), Some(0), "haproxy -c:\n{}", hx.stderr);
    let rl = ringlb_check(&path, &[]);
    assert_eq!(rl.status.code(), Some(0), "ringlb -c:\n{}", rl.stderr);
    let at = |n: usize| format!("{}:{n}: ", path.display());
    let bind_line = line_of(&text, "ssl crt");
    let warned = |line: usize, word: &str| {
        rl.stderr
            .lines()
            .any(|l| l.starts_with("warning: ") && l.contains(&at(line)) && l.contains(word))
    };
    assert!(
        warned(bind_line, "DHE-RSA-AES128-GCM-SHA256"),
        "{}",
        rl.stderr
    );
    assert!(warned(bind_line, "TLSv1.0"), "{}", rl.stderr);
    assert!(warned(bind_line, "X448"), "{}", rl.stderr);
}

/// (bind options, server options, a word of the error, true when HAProxy refuses too).
fn refused(pki: &Pki) -> Vec<(String, String, &'static str, bool)> {
    let a = pki.path("a.pem");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    pki.server("nokey.pem", &["a.test"], "a.test", Alg::Ecdsa, true);
    std::fs::remove_file(pki.path("nokey.pem.key")).unwrap();
    // The certificate of one file with the key of another.
    pki.server("other.pem", &["b.test"], "b.test", Alg::Ecdsa, true);
    let cert_a = std::fs::read_to_string(&a).unwrap();
    let cert_only: String = cert_a
        .split("-----BEGIN PRIVATE KEY-----")
        .next()
        .unwrap()
        .to_string();
    std::fs::write(
        pki.path("mixed.pem"),
        format!(
            "{cert_only}{}",
            std::fs::read_to_string(pki.path("other.pem.key")).unwrap()
        ),
    )
    .unwrap();
    let two_keys = write(pki, "two.keys", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n");
    let a = a.display();
    vec![
        (
            format!("ssl crt {}", pki.path("missing.pem").display()),
            String::new(),
            "missing.pem",
            true,
        ),
        (
            format!("ssl crt {}", pki.path("nokey.pem").display()),
            String::new(),
            "private key",
            true,
        ),
        (
            format!("ssl crt {}", pki.path("mixed.pem").display()),
            String::new(),
            "does not match",
            true,
        ),
        (
            format!("ssl crt {a} verify required"),
            String::new(),
            "ca-file",
            true,
        ),
        (
            format!("ssl crt {a} ciphers DHE-RSA-AES128-GCM-SHA256:AES128-SHA ssl-max-ver TLSv1.2"),
            String::new(),
            "no TLSv1.2 suite",
            false,
        ),
        (
            format!("ssl crt {a} ssl-max-ver TLSv1.1"),
            String::new(),
            "no protocol version",
            false,
        ),
        (
            format!("ssl crt {a} tls-ticket-keys {}", two_keys.display()),
            String::new(),
            "80 bytes",
            true,
        ),
        (
            format!("ssl crt {a} crt-list {}", pki.path("nolist").display()),
            String::new(),
            "nolist",
            true,
        ),
        ("ssl".into(), String::new(), "certificate", true),
        (String::new(), "ssl".into(), "CA file", true),
        (
            String::new(),
            "ssl verify required ca-file /nonexistent/ca.pem".into(),
            "ca.pem",
            true,
        ),
        (
            String::new(),
            "ssl verify none sni nosuchfetch".into(),
            "sni",
            true,
        ),
    ]
}

#[test]
fn bad_tls_settings_are_errors_on_their_line() {
    let pki = Pki::new("Test CA");
    for (i, (bind, server, word, haproxy_refuses)) in refused(&pki).into_iter().enumerate() {
        let text = cfg(&bind, &server);
        let path = write(&pki, &format!("bad{i}.cfg"), &text);
        let rl = ringlb_check(&path, &[]);
        assert_eq!(
            rl.status.code(),
            Some(1),
            "{bind} / {server}: accepted\n{}",
            rl.stderr
        );
        let line = if server.is_empty() {
            line_of(&text, "bind 127.0.0.1:18443")
        } else {
            line_of(&text, "server s1")
        };
        let at = format!("{}:{line}: ", path.display());
        assert!(
            rl.stderr
                .lines()
                .any(|l| l.contains(&at) && l.contains(word)),
            "{bind} / {server}: no error at line {line} with {word:?}:\n{}",
            rl.stderr
        );
        if haproxy_refuses {
            let hx = haproxy_check(&path, &[]);
            assert_ne!(
                hx.status.code(),
                Some(0),
                "haproxy accepts {bind} / {server}"
            );
        }
    }
}

#[test]
fn a_valid_tls_config_starts_and_serves() {
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let app = common::TestBackend::start("app");
    let text = format!(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend web\n    bind 127.0.0.1:0 ssl crt {}\n    default_backend app\nbackend app\n    server s1 {}\n",
        pki.path("a.pem").display(),
        app.addr()
    );
    let path = write(&pki, "run.cfg", &text);
    assert_eq!(ringlb_check(&path, &[]).status.code(), Some(0));
    let lb = common::haproxy::ringlb_cfg(&text);
    let cfg = tls_util::client_config(&pki.ca_der(), tls_util::ClientOpts::default());
    let (a, _) = tls_util::https_get(lb.addr("web"), cfg, "a.test", "/").unwrap();
    assert_eq!((a.status, a.text()), (200, "backend=app".to_string()));
}

#[test]
fn toml_tls_tables() {
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let a = pki.path("a.pem");
    let base = |tls: &str, server: &str| {
        format!(
            "[frontend.web]\nbind = [\"127.0.0.1:0\", {{ addr = \"127.0.0.1:0\", tls = false }}]\ndefault_backend = \"app\"\n{tls}\n[backend.app]\nserver = [{{ addr = \"127.0.0.1:1\"{server} }}]\n"
        )
    };
    let check = |name: &str, text: String| {
        let p = pki.path(name);
        std::fs::write(&p, text).unwrap();
        ringlb_check(&p, &[])
    };
    let ok = check(
        "ok.toml",
        base(
            &format!("[frontend.web.tls]\ncrt = [\"{}\"]\nalpn = [\"http/1.1\"]\nmin_version = \"TLSv1.3\"\n", a.display()),
            &format!(", tls = {{ ca_file = \"{}\", sni = \"app.test\" }}", pki.ca_path().display()),
        ),
    );
    assert_eq!(ok.status.code(), Some(0), "{}", ok.stderr);
    // HTTP/2 by ALPN is served: an `alpn` list with h2 passes the check.
    let h2 = check(
        "h2.toml",
        base(
            &format!(
                "[frontend.web.tls]\ncrt = [\"{}\"]\nalpn = [\"h2\", \"http/1.1\"]\n",
                a.display()
            ),
            "",
        ),
    );
    assert_eq!(h2.status.code(), Some(0), "{}", h2.stderr);
    for (name, tls, server, word) in [
        ("nocrt.toml", "[frontend.web.tls]\n".to_string(), String::new(), "frontend.web.tls.crt"),
        ("dhe.toml", format!("[frontend.web.tls]\ncrt = [\"{}\"]\nciphers = \"DHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256\"\n", a.display()), String::new(), "DHE-RSA-AES128-GCM-SHA256"),
        ("unknown.toml", format!("[frontend.web.tls]\ncrt = [\"{}\"]\nfrobnicate = 1\n", a.display()), String::new(), "frobnicate"),
        ("noca.toml", String::new(), ", tls = {}".to_string(), "ca_file"),
        ("missing.toml", "[frontend.web.tls]\ncrt = [\"/nonexistent/x.pem\"]\n".to_string(), String::new(), "x.pem"),
    ] {
        let out = check(name, base(&tls, &server));
        assert_eq!(out.status.code(), Some(1), "{name} accepted");
        assert!(out.stderr.contains(word), "{name}: {}", out.stderr);
    }
    let _ = Path::new("");
}
