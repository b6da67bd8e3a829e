//! TLS session resumption on the real binary: across the shards of one process (the
//! ticket keys are the process's, and SO_REUSEPORT sends each new connection to any
//! shard), between two processes that read the same `tls-ticket-keys` file, and
//! between two nodes sharing Redis (`[cluster]`), across a rotation of the shared
//! keys. A client keeps its tickets and reconnects; at least 95 % of the reconnections
//! must resume.

use crate::common;
use crate::tls_util;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::haproxy::ringlb_cfg;
use common::*;
use tls_util::*;

const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n";

fn frontend(pki: &Pki, app: &TestBackend, bind_opts: &str) -> String {
    format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0 ssl crt {}{bind_opts}\n    default_backend be\nbackend be\n    server s1 {}\n",
        pki.path("a.pem").display(),
        app.addr()
    )
}

/// Connects `n` times to the addresses in turn with one client (one session store);
/// returns how many connections after the first resumed.
fn resumed(addrs: &[SocketAddr], cfg: &Arc<rustls::ClientConfig>, n: usize) -> usize {
    let mut count = 0;
    for i in 0..n {
        let addr = addrs[i % addrs.len()];
        let (a, r) = https_get(addr, cfg.clone(), "a.test", "/").unwrap();
        assert_eq!(a.status, 200);
        if i > 0 && r {
            count += 1;
        }
    }
    count
}

fn pki() -> Pki {
    let pki = Pki::new("Test CA");
    pki.server("a.pem", &["a.test"], "a.test", Alg::Ecdsa, false);
    pki
}

#[test]
fn sessions_resume_across_the_shards_of_a_process() {
    let pki = pki();
    let app = TestBackend::start("app");
    let lb = RingLb::start(&format!(
        "[runtime]\nshards = 2\n[admin]\nlisten = \"127.0.0.1:0\"\n[frontend.fe]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"be\"\n[frontend.fe.tls]\ncrt = [\"{}\"]\n[backend.be]\n{}",
        pki.path("a.pem").display(),
        servers_toml("be", &[app.addr()])
    ));
    let addr = lb.addr("fe");
    for tls12 in [false, true] {
        let opts = ClientOpts {
            versions: if tls12 {
                vec![&rustls::version::TLS12]
            } else {
                vec![&rustls::version::TLS13]
            },
            ..ClientOpts::default()
        };
        let cfg = client_config(&pki.ca_der(), opts);
        let n = 41;
        let r = resumed(&[addr], &cfg, n);
        assert!(
            r * 100 >= (n - 1) * 95,
            "TLS1.{}: {r} of {} reconnections resumed",
            if tls12 { 2 } else { 3 },
            n - 1
        );
    }
    // Both shards took some of the 82 connections (the kernel spreads them).
    let m = http_get(lb.admin_addr(), "/metrics").body_str();
    for shard in 0..2 {
        let n = metric(
            &m,
            &format!("ringlb_shard_connections_total{{shard=\"{shard}\"}}"),
        );
        assert!(n.is_some_and(|n| n > 0.0), "shard {shard}: {n:?}\n{m}");
    }
    let resumed = metric(&m, "ringlb_frontend_tls_resumed_total{proxy=\"fe\"}");
    assert!(resumed.is_some_and(|n| n >= 76.0), "{resumed:?}");
}

#[test]
fn two_processes_with_the_same_ticket_keys_resume_each_others_sessions() {
    let pki = pki();
    let app = TestBackend::start("app");
    let keys = pki.path("tickets.keys");
    let mut text = String::new();
    for _ in 0..3 {
        text.push_str(&ringlb::tls::tickets::random_key_line().unwrap());
        text.push('\n');
    }
    std::fs::write(&keys, text).unwrap();
    let opts = format!(" tls-ticket-keys {}", keys.display());
    let a = ringlb_cfg(&format!(
        "global\n    nbthread 2\n{}",
        frontend(&pki, &app, &opts)
    ));
    let b = ringlb_cfg(&format!(
        "global\n    nbthread 2\n{}",
        frontend(&pki, &app, &opts)
    ));
    let cfg = client_config(&pki.ca_der(), ClientOpts::default());
    let n = 41;
    let r = resumed(&[a.addr("fe"), b.addr("fe")], &cfg, n);
    assert!(r * 100 >= (n - 1) * 95, "{r} of {} resumed", n - 1);
    // Without the file each process has its own keys: no resumption across them.
    let c = ringlb_cfg(&format!(
        "global\n    nbthread 2\n{}",
        frontend(&pki, &app, "")
    ));
    let d = ringlb_cfg(&format!(
        "global\n    nbthread 2\n{}",
        frontend(&pki, &app, "")
    ));
    let cfg = client_config(&pki.ca_der(), ClientOpts::default());
    let r = resumed(&[c.addr("fe"), d.addr("fe")], &cfg, 11);
    assert_eq!(r, 0, "different processes, different keys");
}

/// The key lines Redis holds (after the time line).
fn redis_keys(redis: &RedisServer) -> Option<String> {
    match redis.cmd(&["GET", "ringlb:tls-ticket-keys"]) {
        common::redis::Reply::Bulk(Some(v)) => Some(v),
        _ => None,
    }
}

#[test]
fn nodes_sharing_redis_resume_each_others_sessions_across_a_rotation() {
    let pki = pki();
    let app = TestBackend::start("app");
    let redis = RedisServer::start();
    let toml = |rotation: &str| {
        format!(
            "[runtime]\nshards = 2\n[cluster]\nredis = \"{}\"\ntls_ticket_rotation = \"{rotation}\"\n[frontend.fe]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"be\"\n[frontend.fe.tls]\ncrt = [\"{}\"]\n[backend.be]\n{}",
            redis.url(),
            pki.path("a.pem").display(),
            servers_toml("be", &[app.addr()])
        )
    };
    let a = RingLb::start(&toml("3s"));
    let b = RingLb::start(&toml("3s"));
    wait_for("the shared keys in Redis", Duration::from_secs(5), || {
        redis_keys(&redis).is_some()
    });
    let first = redis_keys(&redis).unwrap();
    let cfg = client_config(&pki.ca_der(), ClientOpts::default());
    let addrs = [a.addr("fe"), b.addr("fe")];
    // The shards pick the keys up within a second of the cluster thread reading them.
    wait_for(
        "a resumption across the nodes",
        Duration::from_secs(5),
        || resumed(&addrs, &cfg, 2) == 1,
    );
    let n = 41;
    let r = resumed(&addrs, &cfg, n);
    assert!(r * 100 >= (n - 1) * 95, "{r} of {} resumed", n - 1);
    // A session from before a rotation resumes after it, on either node.
    let (_, _) = https_get(addrs[0], cfg.clone(), "a.test", "/").unwrap();
    wait_for("a rotation", Duration::from_secs(10), || {
        redis_keys(&redis).is_some_and(|k| k != first)
    });
    let rotated = redis_keys(&redis).unwrap();
    let old: Vec<&str> = first.lines().skip(1).collect();
    let new: Vec<&str> = rotated.lines().skip(1).collect();
    assert_eq!(&new[..2], &old[1..], "the two newest keys stay");
    // Give both nodes a second to read the rotated keys.
    std::thread::sleep(Duration::from_millis(1500));
    let (_, again) = https_get(addrs[1], cfg.clone(), "a.test", "/").unwrap();
    assert!(again, "a ticket from before the rotation resumes after it");
}
