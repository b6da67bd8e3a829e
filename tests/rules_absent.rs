//! Rules cost nothing when absent: a frontend that no rule touches is marked at load
//! (`Frontend::rule_free`) and its requests skip the rule machinery (no transaction
//! reset, no request-line copy, no rule pass). Which configs count as rule-free, and
//! that a keep-alive connection moving between a config with rules and one without (a
//! reload) carries nothing of the other config's rules along.

use crate::common;

use std::time::Duration;

use common::*;

fn haproxy_cfg(fe: &str, be: &str) -> String {
    format!(
        "global\n    nbthread 1\n\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\nfrontend web\n    bind 127.0.0.1:0\n{fe}\n    default_backend app\n\nbackend app\n    server s1 127.0.0.1:1\n{be}\n\n# Rules in a backend the frontend cannot reach do not count.\nbackend other\n    server s2 127.0.0.1:2\n    http-request set-header X-Other 1\n    http-response del-header Server\n"
    )
}

#[test]
fn which_frontends_are_rule_free() {
    let log = "    log stdout format raw local0";
    let cases: &[(&str, String, &str, bool)] = &[
        ("nothing", String::new(), "", true),
        (
            "option httplog",
            format!("{log}\n    option httplog"),
            "",
            true,
        ),
        (
            "option httplog clf",
            format!("{log}\n    option httplog clf"),
            "",
            true,
        ),
        (
            "log-format of aliases only",
            format!("{log}\n    log-format \"%ci:%cp %ST %B %{{+Q}}r %hr\""),
            "",
            true,
        ),
        (
            "log-format reading a sample",
            format!("{log}\n    log-format \"%ci %[capture.req.uri]\""),
            "",
            false,
        ),
        (
            "option forwardfor",
            "    option forwardfor".into(),
            "",
            true,
        ),
        (
            "acl and use_backend",
            "    acl api path_beg /api\n    use_backend other if api".into(),
            "",
            false,
        ),
        (
            "http-request",
            "    http-request set-header X-Real-IP %[src]".into(),
            "",
            false,
        ),
        (
            "redirect",
            "    redirect location /new if { path /old }".into(),
            "",
            false,
        ),
        (
            "http-response",
            "    http-response del-header Server".into(),
            "",
            false,
        ),
        (
            "http-after-response",
            "    http-after-response set-header X-B 1".into(),
            "",
            false,
        ),
        (
            "tcp-request connection",
            "    tcp-request connection accept if { src 127.0.0.1 }".into(),
            "",
            false,
        ),
        (
            "tcp-request content",
            "    tcp-request inspect-delay 1s\n    tcp-request content accept if HTTP".into(),
            "",
            false,
        ),
        (
            "capture request header",
            "    capture request header Host len 20".into(),
            "",
            false,
        ),
        (
            "declare capture",
            "    declare capture request len 10".into(),
            "",
            false,
        ),
        (
            "stats page",
            "    stats enable\n    stats uri /st".into(),
            "",
            false,
        ),
        (
            "backend http-request",
            String::new(),
            "    http-request set-header X-C 1",
            false,
        ),
        (
            "backend http-response",
            String::new(),
            "    http-response set-header X-D 1",
            false,
        ),
        (
            "backend http-after-response",
            String::new(),
            "    http-after-response set-header X-E 1",
            false,
        ),
        (
            "backend use-server",
            String::new(),
            "    use-server s1 if { path /s }",
            false,
        ),
        ("monitor-uri", "    monitor-uri /alive".into(), "", false),
        (
            "backend cookie persistence",
            String::new(),
            "    cookie SRV insert indirect nocache",
            false,
        ),
        (
            "backend stats page",
            String::new(),
            "    stats enable\n    stats uri /st",
            false,
        ),
    ];
    for (what, fe, be, free) in cases {
        let text = haproxy_cfg(fe, be);
        let (cfg, _) = ringlb::config::from_haproxy_str(&text, &|_| None)
            .unwrap_or_else(|e| panic!("{what}: {e}\n{text}"));
        assert_eq!(cfg.frontends[0].rule_free, *free, "{what}");
    }
}

#[test]
fn toml_frontends_are_marked_too() {
    let base = "[runtime]\nshards = 1\n[frontend.web]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"app\"\n";
    let be = "[backend.app]\n[[backend.app.server]]\naddr = \"127.0.0.1:1\"\n";
    let free = ringlb::config::from_toml_str(&format!("{base}log = \"http\"\n{be}")).unwrap();
    assert!(free.frontends[0].rule_free, "no rules, httplog");
    let stats = ringlb::config::from_toml_str(&format!("{base}stats_uri = \"/st\"\n{be}")).unwrap();
    assert!(!stats.frontends[0].rule_free, "the stats page is a rule");
}

struct Reloadable {
    lb: RingLb,
    path: String,
    _file: tempfile::NamedTempFile,
    reloads: usize,
}

impl Reloadable {
    fn start(text: &str) -> Reloadable {
        let file = tempfile::Builder::new().suffix(".cfg").tempfile().unwrap();
        let path = file.path().to_str().unwrap().to_string();
        std::fs::write(&path, text).unwrap();
        let lb = RingLb::launch(&["-f", &path], None, |l| l.starts_with("ready"));
        Reloadable {
            lb,
            path,
            _file: file,
            reloads: 0,
        }
    }

    fn reload(&mut self, text: &str) {
        std::fs::write(&self.path, text).unwrap();
        self.reloads += 1;
        self.lb.signal(libc::SIGHUP);
        let n = self.reloads;
        wait_for("the reload", Duration::from_secs(5), || {
            self.lb
                .stdout_lines()
                .iter()
                .filter(|l| *l == "reloaded")
                .count()
                >= n
        });
    }

    /// The status field of the httplog line of the request for `path`.
    fn logged_status(&self, path: &str) -> String {
        let quoted = format!("\"GET {path} HTTP/1.1\"");
        wait_for("the log line", Duration::from_secs(5), || {
            self.lb.stdout_lines().iter().any(|l| l.ends_with(&quoted))
        });
        let line = self
            .lb
            .stdout_lines()
            .into_iter()
            .find(|l| l.ends_with(&quoted))
            .unwrap();
        // IP:PORT [DATE] FE BE/SRV TR/Tw/Tc/Tr/Ta STATUS ...
        line.split(' ').nth(5).unwrap_or_default().to_string()
    }
}

/// A keep-alive connection served by a config whose response rule sets the status,
/// then (reload) by one without rules, then by the first again: each request is
/// answered and logged as its own config says (no status set by the old config's
/// rule leaks into the rule-free one's log line).
#[test]
fn a_connection_moving_between_configs_with_and_without_rules() {
    let b = TestBackend::start("b");
    let cfg = |port: u16, rules: &str| {
        format!(
            "global\n    nbthread 1\n    log stdout format raw local0\n\ndefaults\n    mode http\n    log global\n    option httplog\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\nfrontend www\n    bind 127.0.0.1:{port}\n{rules}    default_backend app\n\nbackend app\n    server s1 {}\n",
            b.addr()
        )
    };
    let with_rules =
        "    http-response set-status 299\n    http-request set-var(txn.seen) str(yes)\n";
    let mut s = Reloadable::start(&cfg(0, ""));
    let addr = s.lb.addr("www");
    let port = addr.port();
    let mut c = HttpClient::connect(addr);
    assert_eq!(c.get("/none-1").status, 200);
    assert_eq!(s.logged_status("/none-1"), "200");

    s.reload(&cfg(port, with_rules));
    assert_eq!(
        c.get("/rules-1").status,
        299,
        "moved to the config with rules"
    );
    assert_eq!(s.logged_status("/rules-1"), "299");

    s.reload(&cfg(port, ""));
    assert_eq!(c.get("/none-2").status, 200, "moved back: no rule");
    assert_eq!(
        s.logged_status("/none-2"),
        "200",
        "nothing of the rules kept"
    );
    assert_eq!(c.get("/none-3").status, 200);
    assert_eq!(s.logged_status("/none-3"), "200");

    s.reload(&cfg(port, with_rules));
    assert_eq!(c.get("/rules-2").status, 299);
    assert_eq!(s.logged_status("/rules-2"), "299");
}
