//! The `tune.*` globals ringlb takes no setting from: each is accepted, as HAProxy 2.6
//! accepts it, with a warning that says why ignoring it changes nothing seen; one
//! HAProxy does not know is refused on its line by both.

use crate::common;

use common::haproxy::{haproxy_check, ringlb_check, write_cfg};

fn cfg(line: &str) -> String {
    format!(
        "global\n    {line}\n\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n\nfrontend f\n    bind 127.0.0.1:80\n    default_backend app\n\nbackend app\n    server s1 127.0.0.1:1\n"
    )
}

#[test]
fn known_tune_keywords_are_warned_with_a_reason_and_unknown_ones_refused() {
    for line in [
        "tune.maxaccept 100",
        "tune.rcvbuf.client 65536",
        "tune.maxrewrite 1024",
        "tune.vars.txn-max-size 100",
        "tune.http.cookielen 63",
        "tune.ssl.cachesize 100000",
        "tune.ssl.maxrecord 1400",
    ] {
        let f = write_cfg(&cfg(line));
        assert!(
            haproxy_check(f.path(), &[]).status.success(),
            "{line}: HAProxy refused it"
        );
        let lb = ringlb_check(f.path(), &[]);
        assert!(lb.status.success(), "{line}: {}", lb.stderr);
        assert!(
            lb.stderr.contains(":2: '") && lb.stderr.contains("' ignored: "),
            "{line}: {}",
            lb.stderr
        );
    }
    let f = write_cfg(&cfg("tune.no-such-thing 1"));
    assert!(!haproxy_check(f.path(), &[]).status.success());
    let lb = ringlb_check(f.path(), &[]);
    assert!(!lb.status.success());
    assert!(
        lb.stderr
            .contains(":2: unknown keyword 'tune.no-such-thing' in 'global' section"),
        "{}",
        lb.stderr
    );
}

/// An `ssl-*` global HAProxy 2.6 does not know (a later version's `sigalgs`) is refused
/// by both, not ignored.
#[test]
fn unknown_ssl_globals_are_refused_as_haproxy_refuses_them() {
    for line in [
        "ssl-default-bind-sigalgs RSA+SHA256",
        "ssl-security-level 1",
    ] {
        let f = write_cfg(&cfg(line));
        assert!(!haproxy_check(f.path(), &[]).status.success(), "{line}");
        let lb = ringlb_check(f.path(), &[]);
        assert!(!lb.status.success(), "{line}: accepted");
        assert!(
            lb.stderr.contains(":2: unknown keyword"),
            "{line}: {}",
            lb.stderr
        );
    }
}
