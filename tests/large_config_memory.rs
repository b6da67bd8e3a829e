//! A large config (200 backends of 5 servers, 200 `use_backend ... if { hdr(host) -i
//! ... }` rules, haproxy.cfg) costs little per shard and nothing per reload: issue 24's
//! regression (two latency histograms per backend per shard allocated at start, ~66
//! KiB; every reload keeping the replaced generation) cannot come back unnoticed. The
//! bounds are generous (several times what is measured; the regression was larger
//! still), and nothing is timed. Routing to the first and the last host works.

use crate::common;

use std::io::Write;

use common::{rss_kib, wait_for, HttpClient, RingLb, TestBackend};
use tempfile::NamedTempFile;

const BACKENDS: usize = 200;
const SERVERS: usize = 5;

/// The config with `threads` shards; the first and last backends' servers are `live`,
/// the others on loopback addresses where nothing listens (no health checks).
fn config(threads: usize, live: std::net::SocketAddr) -> NamedTempFile {
    let mut s = format!(
        "global\n    nbthread {threads}\ndefaults\n    mode http\n    timeout connect 2s\n    \
         timeout client 10s\n    timeout server 10s\nfrontend web\n    bind 127.0.0.1:0\n"
    );
    for i in 0..BACKENDS {
        s += &format!("    use_backend be{i} if {{ hdr(host) -i host{i}.example }}\n");
    }
    for i in 0..BACKENDS {
        s += &format!("backend be{i}\n");
        for j in 0..SERVERS {
            if i == 0 || i == BACKENDS - 1 {
                s += &format!("    server s{j} {live}\n");
            } else {
                let k = i * SERVERS + j + 1;
                s += &format!("    server s{j} 127.1.{}.{}:8080\n", k / 256, k % 256);
            }
        }
    }
    let mut f = tempfile::Builder::new()
        .prefix("ringlb-large-")
        .suffix(".cfg")
        .tempfile()
        .unwrap();
    f.write_all(s.as_bytes()).unwrap();
    f
}

fn start(threads: usize, live: std::net::SocketAddr) -> (RingLb, NamedTempFile) {
    let cfg = config(threads, live);
    let path = cfg.path().to_str().unwrap().to_string();
    let lb = RingLb::launch(&["-f", &path], None, |l| l.starts_with("ready"));
    (lb, cfg)
}

fn get(lb: &RingLb, host: &str) -> u16 {
    let mut c = HttpClient::connect(lb.latest_addr("web").expect("a listening line"));
    c.request(format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    ))
    .status
}

/// RSS once the allocator handed back what start-up (or a reload) freed: the trim runs
/// on a helper thread shortly after; the reading is taken when it stops falling.
fn settled_rss(pid: i32) -> u64 {
    let mut last = rss_kib(pid);
    for _ in 0..20 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = rss_kib(pid);
        if now >= last {
            return now;
        }
        last = now;
    }
    last
}

/// The last count of configurations given back whole, from the binary's log.
fn released(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("configurations' memory returned to the system"))
        .filter_map(|l| l.split("released=").nth(1)?.split(' ').next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

#[test]
fn rss_per_shard_and_across_reloads_stays_small() {
    let backend = TestBackend::start("live");
    let (one, _c1) = start(1, backend.addr());
    assert_eq!(get(&one, "host0.example"), 200);
    assert_eq!(get(&one, &format!("HOST{}.example", BACKENDS - 1)), 200);
    // A host no rule names: no backend, HAProxy's 503.
    assert_eq!(get(&one, "host-unknown.example"), 503);
    let rss1 = settled_rss(one.pid());
    drop(one);

    let (four, cfg) = start(4, backend.addr());
    assert_eq!(get(&four, "host0.example"), 200);
    let rss4 = settled_rss(four.pid());
    let per_shard = rss4.saturating_sub(rss1) / 3;
    eprintln!("RSS: 1 shard {rss1} KiB, 4 shards {rss4} KiB, {per_shard} KiB per added shard");
    // Measured about 0.8 MiB; the histograms alone cost 10 MiB per shard for 200
    // backends when they were allocated at start.
    assert!(
        per_shard < 4 * 1024,
        "{per_shard} KiB per added shard for {BACKENDS} backends of {SERVERS} servers \
         (1 shard: {rss1} KiB, 4 shards: {rss4} KiB)"
    );

    // Reloads of the same file: each replaced generation is freed.
    let fresh = rss4;
    let mut after = Vec::new();
    for n in 1..=5 {
        four.signal(libc::SIGUSR2);
        wait_for("the reload", std::time::Duration::from_secs(20), || {
            four.stdout_count("reloaded") >= n
        });
        assert_eq!(get(&four, &format!("host{}.example", BACKENDS - 1)), 200);
        after.push(settled_rss(four.pid()));
    }
    eprintln!("RSS after each reload (KiB): {after:?}, fresh {fresh}");
    // Each replaced configuration was built in a region of its own and went back to
    // the system whole: nothing a configuration allocated outlives it (a global cache
    // keeping one name would keep its region).
    wait_for(
        "the 5 replaced configurations given back",
        std::time::Duration::from_secs(20),
        || released(&four.stderr()) >= 5,
    );
    let last = *after.last().unwrap();
    // Kept generations would add a whole shard state (4 shards) per reload.
    assert!(
        last < fresh + fresh / 4,
        "RSS after 5 reloads {last} KiB against {fresh} KiB fresh ({after:?})"
    );
    drop(cfg);
}

/// Every replaced configuration goes back whole, whatever it runs: health checks (whose
/// loops once stayed asleep in the old health thread's timer, keeping their generation's
/// config alive after each reload), a stick table, rules and a map.
#[test]
fn replaced_configs_with_checks_tables_and_rules_are_freed() {
    let backend = TestBackend::start("live");
    let mut map = NamedTempFile::new().unwrap();
    writeln!(map, "a.example be_a").unwrap();
    let cfg = format!(
        "global\n    nbthread 2\ndefaults\n    mode http\n    timeout connect 2s\n    \
         timeout client 10s\n    timeout server 10s\nfrontend web\n    bind 127.0.0.1:0\n    \
         stick-table type ip size 1k expire 30s store http_req_rate(10s)\n    \
         http-request track-sc0 src\n    acl odd path_reg ^/x[0-9]+$\n    \
         http-request deny if odd\n    \
         use_backend %[req.hdr(host),lower,map({},be_b)]\nbackend be_a\n    \
         option httpchk GET /\n    server a1 {live} check inter 100ms\n\
         backend be_b\n    server b1 {live} check inter 100ms\n",
        map.path().display(),
        live = backend.addr()
    );
    let mut file = tempfile::Builder::new().suffix(".cfg").tempfile().unwrap();
    file.write_all(cfg.as_bytes()).unwrap();
    let path = file.path().to_str().unwrap().to_string();
    let lb = RingLb::launch(&["-f", &path], None, |l| l.starts_with("ready"));
    for n in 1..=4 {
        assert_eq!(get(&lb, "a.example"), 200);
        lb.signal(libc::SIGUSR2);
        wait_for("the reload", std::time::Duration::from_secs(20), || {
            lb.stdout_count("reloaded") >= n
        });
    }
    assert_eq!(get(&lb, "a.example"), 200);
    wait_for(
        "the 4 replaced configurations given back",
        std::time::Duration::from_secs(20),
        || released(&lb.stderr()) >= 4,
    );
}
