//! Startup logs the io driver each shard got; `runtime.driver` and
//! `MONOIO_FORCE_LEGACY_DRIVER=1` choose it.

use crate::common;

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

/// The CPUs a thread of `pid` named `name` may run on (`Cpus_allowed_list`).
fn thread_cpus(pid: i32, name: &str) -> Option<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    tasks.flatten().find_map(|t| {
        let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
        if comm.trim() != name {
            return None;
        }
        let status = std::fs::read_to_string(t.path().join("status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(|v| v.trim().to_string())
    })
}

/// haproxy.cfg's `cpu-map 1/T CPU` pins shard T-1 to that CPU. The map here is the
/// reverse of the default order (shard i on the i-th usable core), so ignoring it would
/// leave shard 0 on the first core.
#[test]
fn cpu_map_pins_each_shard_to_its_cpu() {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    if cores.len() < 2 {
        eprintln!("skipped: fewer than 2 usable cores, nothing to reorder");
        return;
    }
    let (c0, c1) = (cores[0].id, cores[1].id);
    let b = TestBackend::start("b");
    let lb = common::haproxy::ringlb_cfg(&format!(
        "global\n    nbthread 2\n    cpu-map 1/1 {c1}\n    cpu-map 1/2 {c0}\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend www\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    server s1 {}\n",
        b.addr()
    ));
    assert_eq!(http_get(lb.addr("www"), "/").status, 200);
    let pinned = |name: &str| {
        let mut got = None;
        wait_for(&format!("{name} pinned"), Duration::from_secs(10), || {
            got = thread_cpus(lb.pid(), name);
            got.is_some()
        });
        got.unwrap()
    };
    assert_eq!(pinned("ringlb-shard-0"), c1.to_string(), "cpu-map 1/1 {c1}");
    assert_eq!(pinned("ringlb-shard-1"), c0.to_string(), "cpu-map 1/2 {c0}");
}

/// Submissions ringlb's io_uring rings took so far (the `SqTail` of each ring the
/// process holds: one per shard); `None` when it holds none (the legacy driver).
fn ring_submissions(pid: i32) -> Option<u64> {
    let mut total = None;
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        let target = std::fs::read_link(e.path()).unwrap_or_default();
        if !target.to_string_lossy().contains("io_uring") {
            continue;
        }
        let info = std::fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            e.file_name().to_string_lossy()
        ))
        .unwrap_or_default();
        let tail = info
            .lines()
            .find_map(|l| l.strip_prefix("SqTail:"))
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(t) = tail {
            *total.get_or_insert(0) += t;
        }
    }
    total
}

/// Ring submissions per connection over 300 `Connection: close` requests to frontend
/// `frontend` (after one to warm up), once each connection's descriptors closed (the
/// count comes back: a detached close that never reached the kernel would leak);
/// `None` on the legacy driver.
fn submissions_per_connection(lb: &RingLb, frontend: &str) -> Option<f64> {
    let addr = lb.addr(frontend);
    let pid = lb.pid();
    let one = || {
        let r = common::HttpClient::connect(addr)
            .request("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        assert_eq!(r.status, 200);
    };
    // The server connection is opened (and pooled, in HTTP mode); the shard settles.
    one();
    std::thread::sleep(Duration::from_millis(200));
    let fds = common::fd_count(pid);
    let before = ring_submissions(pid);
    const N: u64 = 300;
    for _ in 0..N {
        one();
    }
    wait_for(
        "the closed connections' descriptors",
        Duration::from_secs(10),
        || common::fd_count(pid) <= fds,
    );
    let (Some(before), Some(after)) = (before, ring_submissions(pid)) else {
        assert!(forced_legacy(), "no io_uring ring in the process");
        return None;
    };
    Some((after - before) as f64 / N as f64)
}

/// A connection per request (`Connection: close`, the server connection pooled) costs
/// seven ring submissions on io_uring: accept, the readiness wait for the first request
/// (a connection that sends nothing holds no buffer), the client's read, the request's
/// send, the server's read, the response's send, close. A closed descriptor sends no
/// `AsyncCancel` after its close (monoio patch, change 5).
#[test]
fn a_connection_per_request_costs_seven_ring_submissions() {
    let b = TestBackend::start("b");
    let lb = RingLb::start(&common::http_config_shards(1, &[b.addr()], ""));
    let Some(per) = submissions_per_connection(&lb, "web") else {
        return;
    };
    eprintln!("{per:.2} ring submissions per connection");
    // Seven each; the margin is for the shard's own (the once-a-second tick's).
    assert!(
        per <= 7.3,
        "{per:.2} submissions per connection (want 7: accept, poll, read, send, read, send, close)"
    );
}

/// A TCP-mode connection that the server closes after its response costs eight ring
/// submissions: accept, connect, a multishot receive on each side, a send each way,
/// and a close per socket. The server's response and its EOF often complete together;
/// the direction then ends its receive, which the kernel already ended with the EOF,
/// so no `AsyncCancel` follows (it did, on most connections under load, before
/// `RecvMulti::cancel` checked).
#[test]
fn a_tcp_mode_connection_costs_eight_ring_submissions() {
    let b = TestBackend::start("b");
    let config = format!(
        "[runtime]\nshards = 1\n\n[frontend.tcp]\nbind = \"127.0.0.1:0\"\nmode = \"tcp\"\ndefault_backend = \"app\"\n\n[backend.app]\n{}\n",
        common::servers_toml("app", &[b.addr()])
    );
    let lb = RingLb::start(&config);
    let Some(per) = submissions_per_connection(&lb, "tcp") else {
        return;
    };
    eprintln!("{per:.2} ring submissions per TCP-mode connection");
    assert!(
        per <= 8.3,
        "{per:.2} submissions per connection (want 8: accept, connect, 2 receives, 2 sends, 2 closes)"
    );
}

/// `recvfrom` calls the balancer (`pid`, all its threads) makes while `load` runs, and
/// how many of them failed with `EAGAIN`, counted by `strace` attached for the while.
fn traced_reads(pid: i32, load: impl FnOnce()) -> (usize, usize) {
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut strace = std::process::Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=recvfrom", "-o"])
        .arg(out.path())
        .args(["-p", &pid.to_string()])
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("spawn strace (Debian package strace)");
    let traced = || {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
        tasks.flatten().all(|t| {
            let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            status
                .lines()
                .any(|l| l.starts_with("TracerPid:") && l.split_whitespace().nth(1) != Some("0"))
        })
    };
    wait_for(
        "strace attached to every thread",
        Duration::from_secs(10),
        traced,
    );
    load();
    // SAFETY: kill(2) on strace, our own child, not yet reaped; SIGINT makes it detach
    // and write out what it traced.
    unsafe { libc::kill(strace.id() as i32, libc::SIGINT) };
    strace.wait().unwrap();
    let trace = std::fs::read_to_string(out.path()).unwrap();
    let reads = trace.lines().filter(|l| l.contains("recvfrom(")).count();
    let failed = trace.lines().filter(|l| l.contains("EAGAIN")).count();
    (reads, failed)
}

/// On the legacy driver a keep-alive request reads each socket without a failed
/// attempt: a `recv` on a stream socket that returns less than the buffer took
/// everything queued, so the next read waits for epoll instead of trying once more and
/// failing with `EAGAIN` (monoio patch, change 6). Before, the read for the client's
/// next request and the read for the server's answer each failed once per request.
/// Nothing to count on io_uring, where a receive is a ring operation, not a `recvfrom`.
#[test]
fn a_keep_alive_request_makes_no_failed_read_on_legacy() {
    if !forced_legacy() {
        return;
    }
    let b = TestBackend::start("b");
    let lb = RingLb::start(&common::http_config_shards(1, &[b.addr()], ""));
    let mut client = common::HttpClient::connect(lb.addr("web"));
    let get = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    // The server connection opens and is pooled before the count starts.
    assert_eq!(client.request(get).status, 200);
    const N: usize = 200;
    let (reads, failed) = traced_reads(lb.pid(), || {
        for _ in 0..N {
            assert_eq!(client.request(get).status, 200);
        }
    });
    eprintln!("{N} requests: {reads} recvfrom, {failed} with EAGAIN");
    // At least one read per socket per request: fewer would mean strace missed some.
    assert!(
        reads >= 2 * N,
        "strace saw {reads} recvfrom for {N} requests"
    );
    assert!(
        failed <= N / 10,
        "{failed} recvfrom failed with EAGAIN in {N} keep-alive requests (want none: a short read empties a stream socket)"
    );
    // The balancer still serves once strace has let go.
    assert_eq!(client.request(get).status, 200);
}

/// An HTTP/2 connection's reads go through monoio's poll-io bridge on both drivers,
/// with the same rule: a short read clears the readiness, so the next read waits
/// instead of failing with `EAGAIN` (monoio patch, change 6). Before, about half of
/// them failed (h2load, 10 streams at a time: 5,012 `recvfrom` with 2,499 `EAGAIN`
/// for 20,000 requests on io_uring).
#[test]
fn http2_connection_reads_do_not_fail_with_eagain() {
    let b = TestBackend::start("b");
    let lb = RingLb::start(&format!(
        "[runtime]\nshards = 1\n\n[frontend.web]\nbind = [{{ addr = \"127.0.0.1:0\", proto = \"h2\" }}]\ndefault_backend = \"app\"\n\n[backend.app]\n{}\n",
        common::servers_toml("app", &[b.addr()])
    ));
    let url = format!("http://{}/", lb.addr("web"));
    let h2load = |n: &str| {
        let out = std::process::Command::new("h2load")
            .args(["-n", n, "-c", "2", "-m", "10", &url])
            .output()
            .expect("h2load (Debian package nghttp2-client)");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(text.contains(&format!("{n} succeeded")), "{text}");
    };
    h2load("200");
    let (reads, failed) = traced_reads(lb.pid(), || h2load("4000"));
    eprintln!("4000 HTTP/2 requests: {reads} recvfrom, {failed} with EAGAIN");
    assert!(reads > 0, "strace saw no recvfrom");
    assert!(
        failed * 50 <= reads,
        "{failed} of {reads} recvfrom failed with EAGAIN (want none: a short read empties a stream socket)"
    );
}
