//! Startup logs the io driver each shard got; `runtime.driver` and
//! `MONOIO_FORCE_LEGACY_DRIVER=1` choose it.

mod common;

use std::time::Duration;

use common::{http_config, http_get, wait_for, RingLb, TestBackend};

fn forced_legacy() -> bool {
    std::env::var("MONOIO_FORCE_LEGACY_DRIVER")
        .is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes"))
}

/// The balancer's stderr once both shards' start lines came (a reader thread collects
/// stderr: the lines may lag the `ready` line on stdout).
fn stderr_with_shard_lines(lb: &RingLb) -> String {
    wait_for("both shards' start lines", Duration::from_secs(10), || {
        let err = lb.stderr();
        shard_lines(&err).len() >= 2 && err.contains("ringlb started")
    });
    lb.stderr()
}

fn shard_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("shard started"))
        .collect()
}

#[test]
fn each_shard_logs_its_driver() {
    let b = TestBackend::start("b");
    let lb = RingLb::start(&http_config(&[b.addr()], ""));
    assert_eq!(http_get(lb.addr("web"), "/").status, 200);
    let err = stderr_with_shard_lines(&lb);
    let lines = shard_lines(&err);
    assert_eq!(lines.len(), 2, "one line per shard:\n{err}");
    let want = if forced_legacy() {
        "driver=\"legacy\""
    } else {
        "driver=\"io_uring\""
    };
    for l in &lines {
        assert!(l.contains(want), "expected {want} in {l:?}");
    }
    assert!(
        err.contains("ringlb started") && err.contains("shards=2"),
        "{err}"
    );
}

#[test]
fn config_can_ask_for_the_legacy_driver() {
    let b = TestBackend::start("b");
    let lb = RingLb::start(
        &http_config(&[b.addr()], "").replace("shards = 2", "shards = 2\ndriver = \"legacy\""),
    );
    assert_eq!(http_get(lb.addr("web"), "/").status, 200);
    let err = stderr_with_shard_lines(&lb);
    let lines = shard_lines(&err);
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines.iter().all(|l| l.contains("driver=\"legacy\"")),
        "{err}"
    );
}
