//! Bad `tcp-check` lines and protocol check options: `ringlb -c` refuses each with its
//! line and a reason, where HAProxy 2.6 refuses it too; and what ringlb does not do yet
//! (check variables, log-format expressions, `alpn`) is refused with its line rather
//! than run differently.

use crate::common;

use common::haproxy::{haproxy_check, ringlb_check, write_cfg};

fn config(lines: &str) -> String {
    format!(
        "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n\nfrontend f\n    bind 127.0.0.1:18481\n    default_backend b\n\nbackend b\n    option tcp-check\n{lines}\n    server s 127.0.0.1:18491 check\n"
    )
}

/// The (last) bad line is line 13 of `config`, or later when `line` has several.
fn refused(line: &str, want: &str, haproxy_too: bool) {
    let cfg = write_cfg(&config(&format!("    {line}")));
    if haproxy_too {
        let hx = haproxy_check(cfg.path(), &[]);
        assert_ne!(
            hx.code(),
            Some(0),
            "haproxy accepts {line:?}: {}",
            hx.stderr
        );
    }
    let rl = ringlb_check(cfg.path(), &[]);
    assert_eq!(rl.code(), Some(1), "ringlb accepts {line:?}: {}", rl.stderr);
    let at = format!(
        "{}:{}: ",
        cfg.path().display(),
        13 + line.matches('\n').count()
    );
    assert!(
        rl.stderr
            .lines()
            .any(|l| l.starts_with(&at) && l.contains(want)),
        "{line:?}: want {at}...{want}\n{}",
        rl.stderr
    );
}

#[test]
fn bad_tcp_check_lines_are_refused_with_their_line() {
    for (line, want, both) in [
        (
            "tcp-check expect",
            "expects at least a matching pattern",
            true,
        ),
        ("tcp-check expect strung +OK", "but got 'strung'", true),
        ("tcp-check expect rstring (", "invalid regex", true),
        ("tcp-check expect binary 2b5", "invalid binary string", true),
        ("tcp-check expect min-recv x string +OK", "min-recv", false),
        (
            "tcp-check expect ok-status L9OK string +OK",
            "only supports 'L4OK'",
            true,
        ),
        ("tcp-check send-binary zz", "invalid binary string", true),
        ("tcp-check send", "expects a string", true),
        ("tcp-check connect port 70000", "valid TCP port", true),
        ("tcp-check connect nowhere", "but got 'nowhere'", true),
        ("tcp-check frobnicate", "only supports", true),
        (
            "tcp-check send x\n    tcp-check connect",
            "first step MUST also be a 'connect'",
            true,
        ),
        ("option mysql-check user", "expects <username>", true),
        (
            "option mysql-check user u pre-40",
            "only supports 'post-41' and 'pre-41'",
            true,
        ),
        ("option pgsql-check", "expects 'user <username>'", true),
        ("option redis-check now", "cannot handle arguments", true),
        // Not yet in ringlb: refused rather than ignored.
        (
            "tcp-check set-var(check.port) int(80)",
            "not supported by ringlb yet",
            false,
        ),
        (
            "tcp-check connect port srv_port",
            "sample expressions are not supported",
            false,
        ),
        (
            "tcp-check send-lf %[var(check.x)]",
            "log-format expressions",
            false,
        ),
        (
            "tcp-check expect string +OK on-error %[res.payload(0,0)]",
            "log-format expressions",
            false,
        ),
        (
            "tcp-check connect alpn h2",
            "not supported by ringlb yet",
            false,
        ),
    ] {
        refused(line, want, both);
    }
}

#[test]
fn good_tcp_check_lines_are_accepted_by_both() {
    let cfg = write_cfg(&config(
        "    tcp-check comment start\n    tcp-check connect port 18492 linger comment c\n    tcp-check send-binary 50494e470d0a comment s\n    tcp-check expect min-recv 4 ! rstring ^-ERR error-status L7STS tout-status L4TOUT on-success up on-error down comment e\n    tcp-check send-lf QUIT\\r\\n\n    tcp-check expect rbinary ^2B\n",
    ));
    let hx = haproxy_check(cfg.path(), &[]);
    assert_eq!(hx.code(), Some(0), "{}", hx.stderr);
    let rl = ringlb_check(cfg.path(), &[]);
    assert_eq!(rl.code(), Some(0), "{}", rl.stderr);
}

#[test]
fn bad_on_marked_down_up_values_are_refused_with_their_line() {
    for (line, want) in [
        (
            "default-server on-marked-down kill-them",
            "'on-marked-down' expects 'shutdown-sessions'",
        ),
        (
            "default-server on-marked-up shutdown-sessions",
            "'on-marked-up' expects 'shutdown-backup-sessions'",
        ),
    ] {
        refused(line, want, true);
    }
}

#[test]
fn external_check_needs_the_global_switch_and_a_command() {
    for (global, lines, want) in [
        (
            "",
            "    option external-check\n    external-check command /bin/true",
            "unable to find required 'global.external-check'",
        ),
        (
            "global\n    external-check\n",
            "    option external-check",
            "unable to find required 'external-check command'",
        ),
    ] {
        let text = format!(
            "{global}defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n\nfrontend f\n    bind 127.0.0.1:18482\n    default_backend b\n\nbackend b\n{lines}\n    server s 127.0.0.1:18491 check\n"
        );
        let cfg = write_cfg(&text);
        let hx = haproxy_check(cfg.path(), &[]);
        assert_ne!(hx.code(), Some(0), "{}", hx.stderr);
        let rl = ringlb_check(cfg.path(), &[]);
        assert_eq!(rl.code(), Some(1), "{}", rl.stderr);
        assert!(rl.stderr.contains(want), "{}", rl.stderr);
    }
}
