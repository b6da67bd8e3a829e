//! What the health thread knows of every server, as the admin side reads it (`show
//! stat`, metrics, the stats page). Written by the health thread only; never touched
//! on the request path.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The health thread's view of every server, shared with the admin thread (never
/// touched on the request path).
pub type HealthView = Arc<Mutex<Vec<Vec<CheckView>>>>;

#[derive(Debug, Clone)]
pub struct CheckView {
    /// Active checks run for this server.
    pub checked: bool,
    pub up: bool,
    /// Up but taking no new load-balanced traffic: a 404 under `disable-on-404`.
    pub nolb: bool,
    /// Last check: HAProxy status (L4OK, L7STS, ...), HTTP code, duration, description.
    pub status: &'static str,
    pub code: Option<u16>,
    pub duration: Option<Duration>,
    pub desc: String,
    /// What the last failed check said (`Connection refused`, a reason phrase): HAProxy's
    /// `last_chk`; empty after a pass.
    pub info: String,
    /// Failed checks, and up→down transitions.
    pub chkfail: u64,
    pub chkdown: u64,
    pub last_change: Instant,
    /// Time spent down before the current down period.
    pub downtime: Duration,
    pub down_since: Option<Instant>,
    /// HAProxy's check_health: 0 .. rise+fall-1, up from `rise`.
    pub health: u32,
    /// The backend's own transitions (every server of a backend holds the same copy):
    /// times it lost its last usable server, when it last changed, its time down.
    pub backend: BackendFlips,
    pub rise: u32,
    pub fall: u32,
    /// Where the server is now: its config address, or what DNS last gave (written
    /// by the resolver thread); `no_addr`: none (HAProxy's MAINT (resolution)).
    pub addr: std::net::SocketAddr,
    pub no_addr: bool,
    /// The weight an SRV answer gave.
    pub dns_weight: Option<u32>,
    /// The name `set server fqdn` gave (the config's until then).
    pub fqdn: Option<Box<str>>,
}

/// A backend's state changes as the health thread sees them (no usable server: down).
#[derive(Debug, Clone, Copy)]
pub struct BackendFlips {
    pub chkdown: u64,
    pub last_change: Instant,
    pub downtime: Duration,
    pub down_since: Option<Instant>,
}

impl BackendFlips {
    pub fn new(now: Instant) -> BackendFlips {
        BackendFlips {
            chkdown: 0,
            last_change: now,
            downtime: Duration::ZERO,
            down_since: None,
        }
    }

    /// Time spent down, the current period included.
    pub fn downtime(&self) -> Duration {
        self.downtime + self.down_since.map_or(Duration::ZERO, |d| d.elapsed())
    }
}

/// Counters of one nameserver (`show resolvers`), written by the resolver thread.
#[derive(Debug, Clone, Default)]
pub struct NsCounters {
    pub sent: u64,
    pub snd_error: u64,
    pub valid: u64,
    pub update: u64,
    pub cname: u64,
    pub cname_error: u64,
    pub any_err: u64,
    pub nx: u64,
    pub timeout: u64,
    pub refused: u64,
    pub other: u64,
    pub invalid: u64,
    pub too_big: u64,
    pub truncated: u64,
    pub outdated: u64,
}

/// Every nameserver's counters, per `resolvers` section.
pub type DnsCounters = Arc<Mutex<Vec<Vec<NsCounters>>>>;
