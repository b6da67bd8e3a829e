//! What the TLS keywords become in the validated model, from both syntaxes: which
//! binds are TLS, the global defaults under a bind's own options, per-line contexts,
//! a server's TLS settings.

use crate::tls_util;

use ringlb::config::{from_haproxy_str, from_toml_str};
use ringlb::tls::{ServerVerify, SniSource, Verify};
use tls_util::{Alg, Pki};

#[test]
fn haproxy_cfg_tls_binds_and_servers() {
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    pki.server("b.pem", &["b.test"], "b.test", Alg::Rsa, false);
    std::fs::write(
        pki.path("list"),
        "b.pem [ssl-min-ver TLSv1.3 verify optional ca-file ca.pem] b.test\n",
    )
    .unwrap();
    let dir = pki.dir.path().display();
    let text = format!(
        "global\n    crt-base {dir}\n    ca-base {dir}\n    ssl-default-bind-options no-tlsv13\n    ssl-default-server-options ssl-min-ver TLSv1.3\n\
defaults\n    mode http\n\
frontend web\n    bind 127.0.0.1:18080,127.0.0.1:18081\n    bind 127.0.0.1:18443 ssl crt a.pem crt-list list alpn h2,http/1.1\n    default_backend app\n\
backend app\n    server s1 127.0.0.1:1 ssl ca-file ca.pem sni str(app.test) check-ssl\n    server s2 127.0.0.1:2 ssl verify none sni req.hdr(host)\n    server s3 127.0.0.1:3\n"
    );
    let (cfg, warnings) = from_haproxy_str(&text, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    // As HAProxy: the line's ssl-min-ver makes the global no-tlsv13 ignored there.
    // 'alpn h2' on an HTTP frontend is served (HTTP/2 by ALPN): no warning.
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("no-tlsv1x are ignored"),
        "{warnings:?}"
    );
    let fe = &cfg.frontends[0];
    assert_eq!(fe.binds.len(), 3);
    assert!(fe.binds[0].tls.is_none() && fe.binds[1].tls.is_none());
    let tls = fe.binds[2].tls.as_ref().expect("TLS bind");
    // a.pem (context 0) and the crt-list line (its own context).
    assert_eq!(tls.store.entries.len(), 2);
    assert_eq!(tls.contexts.len(), 2);
    let v = |c: usize| {
        tls.contexts[c]
            .versions
            .iter()
            .map(|v| v.version)
            .collect::<Vec<_>>()
    };
    // The global no-tlsv13 under the bind; the line's ssl-min-ver TLSv1.3 wins there.
    assert_eq!(v(0), vec![rustls::ProtocolVersion::TLSv1_2]);
    assert_eq!(v(1), vec![rustls::ProtocolVersion::TLSv1_3]);
    assert_eq!(
        tls.contexts[0].alpn,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
    assert_eq!(tls.contexts[1].verify, Verify::Optional);
    let be = &cfg.backends[0];
    let s1 = be.servers[0].tls.as_ref().expect("s1 TLS");
    assert_eq!(s1.settings.sni, Some(SniSource::Fixed("app.test".into())));
    assert!(
        matches!(&s1.settings.verify, ServerVerify::Required { ca_file } if ca_file.ends_with("ca.pem"))
    );
    assert!(s1.settings.check_ssl);
    assert_eq!(
        s1.settings.conf.min_ver,
        Some(ringlb::tls::TlsVersion::Tls13)
    );
    let s2 = be.servers[1].tls.as_ref().expect("s2 TLS");
    assert_eq!(s2.settings.verify, ServerVerify::None);
    assert_eq!(s2.settings.sni, Some(SniSource::HostHeader));
    assert!(be.servers[2].tls.is_none());
}

#[test]
fn toml_bind_tables_choose_tls_per_bind() {
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let text = format!(
        "[frontend.web]\nbind = [\"127.0.0.1:18443\", {{ addr = \"127.0.0.1:18080\", tls = false }}]\naccept_proxy = true\ndefault_backend = \"app\"\n[frontend.web.tls]\ncrt = [\"{}\"]\n[backend.app]\nserver = [{{ addr = \"127.0.0.1:1\" }}]\n",
        pki.path("a.pem").display()
    );
    let cfg = from_toml_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let fe = &cfg.frontends[0];
    assert!(fe.binds[0].tls.is_some() && fe.binds[1].tls.is_none());
    assert!(fe.binds.iter().all(|b| b.accept_proxy));
    // accept_proxy per bind (the accept path knows which bind a connection came in on).
    let mixed = text.replace("tls = false }", "tls = false, accept_proxy = false }");
    let cfg2 = from_toml_str(&mixed).unwrap_or_else(|e| panic!("{e}"));
    let b = &cfg2.frontends[0].binds;
    assert!(b[0].accept_proxy && !b[1].accept_proxy);
    // The TOML default ALPN: h2 first on an HTTP frontend, HTTP/1.1 only in mode tcp.
    assert_eq!(
        fe.binds[0].tls.as_ref().unwrap().contexts[0].alpn,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
    let tcp = text.replace("default_backend", "mode = \"tcp\"\ndefault_backend");
    let cfg3 = from_toml_str(&tcp).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg3.frontends[0].binds[0].tls.as_ref().unwrap().contexts[0].alpn,
        vec![b"http/1.1".to_vec()]
    );
}

/// Global `ssl-server-verify none` turns the default `verify required` of `ssl` servers
/// off (without it, a server with no `ca-file` is refused, as HAProxy refuses it), and
/// `tune.ssl.lifetime` is the lifetime of the session tickets a TLS bind issues.
#[test]
fn ssl_server_verify_and_tune_ssl_lifetime_from_the_global_section() {
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    let cfg = |global: &str| {
        format!(
            "global\n{global}defaults\n    mode http\n\
frontend web\n    bind 127.0.0.1:18443 ssl crt {}\n    default_backend app\n\
backend app\n    server s1 127.0.0.1:1 ssl\n",
            pki.path("a.pem").display()
        )
    };
    let Err(refused) = from_haproxy_str(&cfg(""), &|_| None) else {
        panic!("an ssl server without ca-file is accepted");
    };
    assert!(
        refused.to_string().contains("no CA file specified"),
        "{refused}"
    );
    let text = cfg("    ssl-server-verify none\n    tune.ssl.lifetime 1h\n");
    let (cfg, _) = from_haproxy_str(&text, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let s1 = cfg.backends[0].servers[0].tls.as_ref().expect("s1 TLS");
    assert_eq!(s1.settings.verify, ServerVerify::None);
    let tls = cfg.frontends[0].binds[0].tls.as_ref().expect("TLS bind");
    let tickets = tls.tickets.as_ref().expect("tickets are on by default");
    assert_eq!(tickets.lifetime(), 3600, "tune.ssl.lifetime 1h");
    let (cfg, _) = from_haproxy_str(&cfg_default(&pki), &|_| None).unwrap();
    let tls = cfg.frontends[0].binds[0].tls.as_ref().unwrap();
    assert_eq!(
        tls.tickets.as_ref().unwrap().lifetime(),
        300,
        "HAProxy's default"
    );
}

fn cfg_default(pki: &Pki) -> String {
    format!(
        "defaults\n    mode http\nfrontend web\n    bind 127.0.0.1:18443 ssl crt {}\n    default_backend app\nbackend app\n    server s1 127.0.0.1:1\n",
        pki.path("a.pem").display()
    )
}
