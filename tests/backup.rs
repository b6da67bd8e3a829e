//! Backup servers: idle while a primary is up; when the last primary fails its check,
//! the first backup takes everything (`all_backups = false`) or all backups share it
//! (`all_backups = true`); when a primary comes back, new requests go to it again.

use crate::common;

use std::time::Duration;

use common::traffic::*;
use common::*;

const FLIP_BOUND: Duration = Duration::from_secs(3);

struct Setup {
    primary: TestBackend,
    b1: TestBackend,
    b2: TestBackend,
    lb: RingLb,
}

fn setup(all_backups: bool) -> Setup {
    let primary = TestBackend::start("p");
    let b1 = TestBackend::start("b1");
    let b2 = TestBackend::start("b2");
    let lb = RingLb::start(&app_config(
        2,
        "",
        &format!(
            "balance = \"round_robin\"\nall_backups = {all_backups}\n[backend.app.health]\ntype = \"http\"\ninterval = \"200ms\"\ntimeout = \"1s\"\nrise = 2\nfall = 2\npath = \"/health\""
        ),
        &[
            server("p", primary.addr(), ""),
            server("b1", b1.addr(), "backup = true"),
            server("b2", b2.addr(), "backup = true"),
        ],
    ));
    Setup {
        primary,
        b1,
        b2,
        lb,
    }
}

/// Takes the primary down and waits until the backups have all the traffic.
fn fail_primary(s: &Setup) {
    let addr = s.lb.addr("web");
    let t = tally_fresh(addr, "/", 30);
    assert_eq!(t.get("p"), 30, "primary up: {t:?}");
    assert_eq!(s.b1.requests_to("/") + s.b2.requests_to("/"), 0);

    s.primary.set_health_status(500);
    wait_for_log(&s.lb, "Server app/p is DOWN", FLIP_BOUND);
    assert!(
        s.lb.stderr()
            .contains("0 active and 2 backup servers left."),
        "{}",
        s.lb.stderr()
    );
    until_in_a_row(addr, "/", 20, FLIP_BOUND, "on a backup", |n| n != "p");
}

/// Brings the primary back and checks that it has all the traffic again.
fn restore_primary(s: &Setup) {
    let addr = s.lb.addr("web");
    s.primary.set_health_status(200);
    wait_for_log(&s.lb, "Server app/p is UP", FLIP_BOUND);
    until_in_a_row(addr, "/", 20, FLIP_BOUND, "on the primary", |n| n == "p");
    let backups = s.b1.requests_to("/") + s.b2.requests_to("/");
    let t = tally_fresh(addr, "/", 30);
    assert_eq!(t.get("p"), 30, "primary back: {t:?}");
    assert_eq!(s.b1.requests_to("/") + s.b2.requests_to("/"), backups);
}

#[test]
fn first_backup_only_takes_over_then_hands_back() {
    let s = setup(false);
    let addr = s.lb.addr("web");
    fail_primary(&s);
    let t = tally_fresh(addr, "/", 60);
    assert_eq!(t.get("b1"), 60, "all_backups = false: {t:?}");

    // The first backup fails too: the next one takes over.
    s.b1.set_health_status(500);
    wait_for_log(&s.lb, "Backup Server app/b1 is DOWN", FLIP_BOUND);
    until_in_a_row(addr, "/", 20, FLIP_BOUND, "on b2", |n| n == "b2");
    s.b1.set_health_status(200);
    wait_for_log(&s.lb, "Backup Server app/b1 is UP", FLIP_BOUND);
    until_in_a_row(addr, "/", 20, FLIP_BOUND, "on b1 again", |n| n == "b1");

    restore_primary(&s);
}

#[test]
fn all_backups_share_the_load_then_hand_back() {
    let s = setup(true);
    let addr = s.lb.addr("web");
    fail_primary(&s);
    let t = tally_fresh(addr, "/", 60);
    assert_eq!(t.get("p"), 0, "{t:?}");
    t.assert_share("b1", 0.5, 0.15);
    t.assert_share("b2", 0.5, 0.15);
    restore_primary(&s);
}
