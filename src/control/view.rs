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
    /// Last check: HAProxy status (L4OK, L7STS, ...), HTTP code, duration, description.
    pub status: &'static str,
    pub code: Option<u16>,
    pub duration: Option<Duration>,
    pub desc: String,
    /// Failed checks, and up→down transitions.
    pub chkfail: u64,
    pub chkdown: u64,
    pub last_change: Instant,
    /// Time spent down before the current down period.
    pub downtime: Duration,
    pub down_since: Option<Instant>,
    /// HAProxy's check_health: 0 .. rise+fall-1, up from `rise`.
    pub health: u32,
    pub rise: u32,
    pub fall: u32,
}
