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
