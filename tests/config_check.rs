//! `ringlb -c -f FILE`: exit 0 and `configuration is valid` for a good file; exit 1
//! and every error, each with its path (or its line for TOML syntax), for a bad one.
//! The shipped `examples/*.toml` must pass.

use crate::common;

use std::path::Path;

use common::*;

const BACKEND: &str = r#"
[backend.app]
[[backend.app.server]]
addr = "127.0.0.1:9001"
"#;

/// A valid config with `frontend` in place of the frontend section.
fn with_frontend(frontend: &str) -> String {
    format!("[runtime]\nshards = 2\n\n{frontend}\n{BACKEND}")
}

const WEB: &str = "[frontend.web]\nbind = \"127.0.0.1:18080\"\ndefault_backend = \"app\"\n";

fn assert_valid(toml: &str) {
    let out = check_config(toml);
    assert_eq!(
        out.code(),
        Some(0),
        "expected a valid config\n--- config ---\n{toml}\n--- stderr ---\n{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("configuration is valid"),
        "stdout: {:?}",
        out.stdout
    );
}

/// Checks `toml`, expects exit 1, and returns stderr.
fn assert_invalid(toml: &str, must_mention: &[&str]) -> String {
    let out = check_config(toml);
    assert_eq!(
        out.code(),
        Some(1),
        "expected exit 1\n--- config ---\n{toml}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.stdout,
        out.stderr
    );
    for m in must_mention {
        assert!(
            out.stderr.contains(m),
            "stderr does not mention {m:?}\n--- config ---\n{toml}\n--- stderr ---\n{}",
            out.stderr
        );
    }
    assert!(!out.stdout.contains("configuration is valid"));
    out.stderr
}

#[test]
fn valid_config_passes() {
    assert_valid(&with_frontend(WEB));
}

#[test]
fn full_schema_passes() {
    assert_valid(
        r#"
[runtime]
shards = 2
driver = "auto"

[timeout]
connect = "5s"
client = "30s"
server = 30000
http_request = "500ms"
shutdown = "2m"
tunnel = "1h"

[limits]
max_header_bytes = 16384
max_headers = 200
max_request_line = 4096
max_chunks = 1000

[pool]
max_idle_per_server = 64
idle_timeout = "30s"

[frontend.web]
bind = ["127.0.0.1:18080", "127.0.0.1:18081"]
mode = "http"
default_backend = "app"
forward_for = true

[[frontend.web.route]]
host = "api.example.com"
path_prefix = "/api/"
backend = "api"

[[frontend.web.route]]
path_prefix = "/static/"
backend = "app"

[frontend.raw]
bind = "127.0.0.1:18082"
mode = "tcp"
default_backend = "app"

[backend.app]
balance = "round_robin"
[[backend.app.server]]
name = "one"
addr = "127.0.0.1:9001"
[[backend.app.server]]
addr = "127.0.0.1:9002"

[backend.api]
[[backend.api.server]]
addr = "127.0.0.1:9003"
"#,
    );
}

#[test]
fn drivers_accepted() {
    for d in ["auto", "io_uring", "legacy"] {
        assert_valid(&format!("[runtime]\ndriver = \"{d}\"\n\n{WEB}\n{BACKEND}"));
    }
}

#[test]
fn unknown_key_in_frontend() {
    assert_invalid(&with_frontend(&format!("{WEB}bogus = 1\n")), &["bogus"]);
}

#[test]
fn unknown_top_level_table() {
    assert_invalid(
        &format!("{}\n[bogus_section]\nx = 1\n", with_frontend(WEB)),
        &["bogus_section"],
    );
}

#[test]
fn unknown_key_in_server() {
    assert_invalid(
        &format!("{WEB}\n[backend.app]\n[[backend.app.server]]\naddr = \"127.0.0.1:9001\"\ncolour = \"red\"\n"),
        &["colour"],
    );
}

#[test]
fn unknown_key_in_timeout() {
    assert_invalid(
        &format!("{}\n[timeout]\nconect = \"5s\"\n", with_frontend(WEB)),
        &["conect"],
    );
}

#[test]
fn bad_server_addr() {
    assert_invalid(
        &format!(
            "{WEB}\n[backend.app]\n[[backend.app.server]]\naddr = \"127.0.0.1:9001\"\n[[backend.app.server]]\naddr = \"127.0.0.1:9002\"\n[[backend.app.server]]\naddr = \"nope\"\n"
        ),
        &["backend.app.server[2].addr", "nope"],
    );
}

#[test]
fn bad_bind_addr() {
    assert_invalid(
        &with_frontend("[frontend.web]\nbind = \"nope\"\ndefault_backend = \"app\"\n"),
        &["frontend.web.bind", "nope"],
    );
}

#[test]
fn unknown_default_backend() {
    assert_invalid(
        &with_frontend(
            "[frontend.web]\nbind = \"127.0.0.1:18080\"\ndefault_backend = \"missing\"\n",
        ),
        &["frontend.web.default_backend", "missing"],
    );
}

#[test]
fn unknown_route_backend() {
    assert_invalid(
        &with_frontend(&format!(
            "{WEB}\n[[frontend.web.route]]\nhost = \"a.example.com\"\nbackend = \"app\"\n\n[[frontend.web.route]]\npath_prefix = \"/x/\"\nbackend = \"ghost\"\n"
        )),
        &["frontend.web.route[1].backend", "ghost"],
    );
}

#[test]
fn empty_backend() {
    assert_invalid(
        &format!(
            "{}\n[backend.empty]\nbalance = \"round_robin\"\n",
            with_frontend(WEB)
        ),
        &["backend.empty"],
    );
}

#[test]
fn duplicate_bind() {
    let stderr = assert_invalid(
        &with_frontend(
            "[frontend.a]\nbind = \"127.0.0.1:18080\"\ndefault_backend = \"app\"\n\n\
             [frontend.b]\nbind = [\"127.0.0.1:18081\", \"127.0.0.1:18080\"]\ndefault_backend = \"app\"\n",
        ),
        &["127.0.0.1:18080"],
    );
    assert!(
        stderr.contains("frontend.a") || stderr.contains("frontend.b"),
        "duplicate bind error names no frontend: {stderr}"
    );
}

#[test]
fn bad_duration() {
    assert_invalid(
        &format!(
            "{}\n[timeout]\nconnect = \"5 parsecs\"\n",
            with_frontend(WEB)
        ),
        &["timeout.connect", "5 parsecs"],
    );
}

#[test]
fn limits_out_of_range() {
    let err = assert_invalid(
        &format!(
            "{}
[limits]
max_headers = 2000
max_request_line = 0
max_chunks = -1
[timeout]
tunnel = \"0s\"
",
            with_frontend(WEB)
        ),
        &[
            "limits.max_headers",
            "limits.max_request_line",
            "limits.max_chunks",
            "timeout.tunnel",
        ],
    );
    assert!(err.contains("1024"), "{err}");
}

#[test]
fn bad_mode() {
    assert_invalid(
        &with_frontend("[frontend.web]\nbind = \"127.0.0.1:18080\"\nmode = \"udp\"\ndefault_backend = \"app\"\n"),
        &["frontend.web.mode", "udp"],
    );
}

#[test]
fn bad_driver() {
    assert_invalid(
        &format!("[runtime]\ndriver = \"kqueue\"\n\n{WEB}\n{BACKEND}"),
        &["runtime.driver", "kqueue"],
    );
}

#[test]
fn zero_shards() {
    assert_invalid(
        &format!("[runtime]\nshards = 0\n\n{WEB}\n{BACKEND}"),
        &["runtime.shards"],
    );
}

#[test]
fn frontend_without_bind() {
    assert_invalid(
        &with_frontend("[frontend.web]\ndefault_backend = \"app\"\n"),
        &["frontend.web"],
    );
}

#[test]
fn toml_syntax_error_reports_its_line() {
    // Line 6 is broken.
    let toml = "[runtime]\nshards = 2\n\n[frontend.web]\nbind = \"127.0.0.1:18080\"\ndefault_backend = \"app\n";
    let stderr = assert_invalid(&format!("{toml}{BACKEND}"), &[]);
    assert!(
        stderr.to_lowercase().contains("line 6"),
        "TOML syntax error without its line (6): {stderr}"
    );
}

#[test]
fn all_errors_reported_at_once() {
    let toml = r#"
[runtime]
shards = 0
driver = "kqueue"

[timeout]
connect = "5 parsecs"

[frontend.web]
bind = "127.0.0.1:18080"
mode = "udp"
default_backend = "missing"

[frontend.other]
default_backend = "app"

[backend.app]
[[backend.app.server]]
addr = "nope"

[backend.empty]
"#;
    let want = [
        "runtime.shards",
        "runtime.driver",
        "timeout.connect",
        "frontend.web.mode",
        "frontend.web.default_backend",
        "frontend.other",
        "backend.app.server[0].addr",
        "backend.empty",
    ];
    let stderr = assert_invalid(toml, &want);
    let lines = stderr.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(
        lines >= want.len(),
        "{} errors expected one per line, got {lines} lines:\n{stderr}",
        want.len()
    );
}

#[test]
fn missing_file_fails() {
    let out = check_config_file("/nonexistent/ringlb-test.toml");
    assert_eq!(out.code(), Some(1), "stderr: {}", out.stderr);
    assert!(
        out.stderr.contains("/nonexistent/ringlb-test.toml"),
        "stderr: {}",
        out.stderr
    );
}

#[test]
fn shipped_examples_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut checked = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) != Some("toml") {
                continue;
            }
            let out = check_config_file(p.to_str().unwrap());
            assert_eq!(
                out.code(),
                Some(0),
                "{} does not pass -c:\n{}",
                p.display(),
                out.stderr
            );
            checked.push(p);
        }
    }
    if checked.is_empty() {
        eprintln!("note: no examples/*.toml to check");
    }
}
