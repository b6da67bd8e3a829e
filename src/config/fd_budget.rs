//! File descriptors: how many client connections fit in the process's open-file limit
//! (RLIMIT_NOFILE), so that a default global maxconn pauses accepting before the
//! process runs out (HAProxy derives its default maxconn the same way and never meets
//! EMFILE: beyond maxconn, connections wait in the kernel's backlog).
//!
//! What a connection costs: its client socket, at most one server socket (a shard keeps
//! no more upstream connections, busy and idle together, than its share of maxconn:
//! see `upstream::pool`), and a splice pipe (two descriptors) for at most every fourth
//! connection (a shard holds at most a quarter of its share in pipes: `splice`). So
//! 2.5 descriptors each, HAProxy's own figure with pipes enabled. The rest is fixed:
//! the standard streams, every shard's listening sockets (each is held three times:
//! the runtime's, a copy kept in case the runtime dies, and one offered to a newer
//! process for `-sf`), each shard's io driver, a health check connection per checked
//! server, the admin sockets and a few of their clients, the log and Redis sockets,
//! and a margin.

use super::Config;

/// Descriptors each shard's runtime holds (io_uring or epoll, its wake-up event, the
/// timer).
const PER_SHARD: u64 = 4;
/// Admin clients (runtime API, metrics scrapes, hand-over) served at once, roughly.
const ADMIN_CLIENTS: u64 = 8;
/// Standard streams, the config file while read, threads' own, and a margin (HAProxy
/// reserves 10).
const MARGIN: u64 = 16;

/// Descriptors `cfg` needs whatever the traffic.
pub fn reserved(cfg: &Config) -> u64 {
    let shards = cfg.runtime.shards as u64;
    let binds: u64 = cfg.frontends.iter().map(|f| f.binds.len() as u64).sum();
    let checks: u64 = cfg
        .backends
        .iter()
        .filter(|b| b.health.is_some())
        .map(|b| b.servers.iter().filter(|s| s.check).count() as u64)
        .sum();
    let admin = cfg.admin.unix_sockets().count() as u64
        + cfg.admin.stats_tcp.len() as u64
        + u64::from(cfg.admin.listen.is_some())
        + 1 // the hand-over socket for `-sf`
        + ADMIN_CLIENTS;
    let log = u64::from(cfg.log.is_some());
    let redis = 2 * u64::from(cfg.cluster.redis.is_some());
    MARGIN + 3 * binds * shards + PER_SHARD * shards + checks + admin + log + redis
}

/// The global maxconn that `nofile` descriptors allow: 2.5 per connection once the
/// reserved ones are set aside (at least one connection per shard).
pub fn derive_maxconn(cfg: &Config, nofile: u64) -> u32 {
    let room = nofile.saturating_sub(reserved(cfg));
    let maxconn = (room * 2 / 5).min(u64::from(u32::MAX / 2));
    (maxconn as u32).max(cfg.runtime.shards as u32)
}

/// Descriptors a process serving `maxconn` connections at once may need.
pub fn needed(cfg: &Config, maxconn: u32) -> u64 {
    reserved(cfg) + u64::from(maxconn) * 5 / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        crate::config::from_toml_str(&format!(
            "[runtime]\nshards = 2\n{extra}\n[frontend.web]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"app\"\n[backend.app]\n[[backend.app.server]]\naddr = \"127.0.0.1:1\"\n"
        ))
        .unwrap()
    }

    #[test]
    fn maxconn_leaves_room_for_what_every_connection_needs() {
        let cfg = config("");
        let r = reserved(&cfg);
        // Margin, two shards' listener copies and runtimes, the hand-over socket and
        // admin clients (no health checks without a health table).
        assert_eq!(r, MARGIN + 3 * 2 + PER_SHARD * 2 + 1 + ADMIN_CLIENTS);
        for nofile in [512u64, 1024, 20_000, 1 << 20] {
            let m = derive_maxconn(&cfg, nofile);
            assert!(needed(&cfg, m) <= nofile, "{nofile}: maxconn {m}");
            assert!(
                needed(&cfg, m + 2) > nofile,
                "{nofile}: maxconn {m} wastes room"
            );
        }
        assert_eq!(derive_maxconn(&cfg, 20_000), ((20_000 - r) * 2 / 5) as u32);
    }

    #[test]
    fn a_tiny_limit_still_gives_each_shard_a_connection() {
        assert_eq!(derive_maxconn(&config(""), 10), 2);
    }

    #[test]
    fn more_listeners_and_shards_reserve_more() {
        let one = reserved(&config(""));
        let cfg = config("[admin]\nlisten = \"127.0.0.1:0\"\n");
        assert_eq!(reserved(&cfg), one + 1);
        let mut checked = config("");
        checked.backends[0].health = config("[backend.app.health]\n").backends[0].health.clone();
        assert!(checked.backends[0].health.is_some());
        assert_eq!(reserved(&checked), one + 1, "one check connection");
        let mut more = config("");
        more.runtime.shards = 4;
        assert_eq!(reserved(&more), one + 3 * 2 + PER_SHARD * 2);
    }
}
