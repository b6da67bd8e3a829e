//! The access log's model: where lines go (`LogSink`, `LogTarget`), HAProxy's built-in
//! line formats (`LogFormat`), syslog facility and severity names.

use std::net::SocketAddr;
use std::sync::Arc;

/// Where access log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSink {
    Stdout,
    Stderr,
    /// Syslog over UDP (RFC 3164 framing, one line per datagram).
    Udp(SocketAddr),
    /// Syslog to a local unix datagram socket (`log /dev/log`, `unix@PATH`), framed as
    /// for UDP.
    Unix(std::path::PathBuf),
    /// Appended to a file.
    File(std::path::PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTarget {
    pub sink: LogSink,
    /// Syslog facility number (local0 = 16).
    pub facility: u8,
    /// Lines without a syslog header (`format raw`), the default on stdout/stderr.
    pub raw: bool,
    /// The least severe level sent (`log ... local0 notice`: 5); access log lines are
    /// `info` (6), so a target whose level is more severe receives none, as in HAProxy.
    pub level: u8,
    /// `log ... LEVEL MINLEVEL`: a line more severe than this is sent at this level
    /// (0: as it is).
    pub min_level: u8,
    /// The syslog header's tag (`log-tag`; the program's name by default, as HAProxy).
    pub tag: String,
    /// The host name in the syslog header (`log-send-hostname [NAME]`); none by default.
    pub hostname: Option<String>,
}

/// Syslog severities by HAProxy's names (`emerg` = 0 ... `debug` = 7).
pub fn syslog_level(name: &str) -> Option<u8> {
    const NAMES: [&str; 8] = [
        "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
    ];
    NAMES.iter().position(|n| *n == name).map(|i| i as u8)
}

/// The severity of access log lines.
pub const LOG_LEVEL_INFO: u8 = 6;
/// The severity of an error's line under `option log-separate-errors`.
pub const LOG_LEVEL_ERR: u8 = 3;

/// HAProxy's access log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `option httplog`.
    Http,
    /// `option tcplog`.
    Tcp,
    /// `option httplog clf`.
    Clf,
    /// `option httpslog`.
    Https,
    /// `log-format` (the line is in `Frontend::log_line`).
    Custom,
}

impl LogFormat {
    /// The compiled line of this built-in format (`Custom`: `option httplog`'s).
    pub fn builtin(self) -> Arc<crate::rules::LogFormat> {
        use crate::rules::logformat::{builtin, CLF_LOG, HTTPS_LOG, HTTP_LOG, TCP_LOG};
        builtin(match self {
            LogFormat::Tcp => TCP_LOG,
            LogFormat::Clf => CLF_LOG,
            LogFormat::Https => HTTPS_LOG,
            LogFormat::Http | LogFormat::Custom => HTTP_LOG,
        })
    }
}

/// `local0`..`local7`, `daemon`, `user`, ... → syslog facility number.
pub fn syslog_facility(name: &str) -> Option<u8> {
    const NAMES: [&str; 24] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "auth2",
        "ftp", "ntp", "audit", "alert", "cron2", "local0", "local1", "local2", "local3", "local4",
        "local5", "local6", "local7",
    ];
    NAMES.iter().position(|n| *n == name).map(|i| i as u8)
}
