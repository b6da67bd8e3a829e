//! Server state messages, worded and sent as HAProxy sends them: to stderr, and to the
//! log target at HAProxy's severity when the backend logs (HAProxy's `send_log` on the
//! backend). The health thread (checks) and the resolver thread (DNS) both speak
//! through it.

use crossbeam_channel::Sender;

use crate::config::Backend;

pub const LOG_EMERG: u8 = 0;
pub const LOG_ALERT: u8 = 1;
pub const LOG_NOTICE: u8 = 5;

/// `msg` on stderr (`emerg` as an error, the rest as warnings, as HAProxy's
/// `ha_alert`/`ha_warning`), and to the log thread at `level` when `b` logs.
pub fn say(log: Option<&Sender<Vec<u8>>>, b: &Backend, level: u8, msg: &str) {
    if level == LOG_EMERG {
        tracing::error!("{msg}");
    } else {
        tracing::warn!("{msg}");
    }
    let Some(tx) = log else { return };
    if !b.logs {
        return;
    }
    // The log thread's line: the severity byte, then the message.
    let mut line = Vec::with_capacity(msg.len() + 2);
    line.push(level);
    line.extend_from_slice(msg.as_bytes());
    line.push(b'\n');
    let _ = tx.send(line);
}

/// How HAProxy names a server in a state message: (`Server` or `Backup Server`,
/// `backend/server`).
pub fn subject(b: &Backend, server: usize) -> (&'static str, String) {
    let s = &b.servers[server];
    let kind = if s.backup { "Backup Server" } else { "Server" };
    (kind, format!("{}/{}", b.name, s.name))
}

/// What HAProxy adds to a state change once only backups are left.
pub fn on_backup(active: usize, backup: usize) -> &'static str {
    if active == 0 && backup > 0 {
        " Running on backup."
    } else {
        ""
    }
}
