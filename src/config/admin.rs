//! What the proxy answers itself, outside the data path's servers: where operators
//! reach a running instance (runtime API sockets, the HTTP admin listener) and the
//! monitor URI of a frontend.

use std::net::SocketAddr;

use super::Condition;

/// Where operators reach a running instance.
#[derive(Debug, Clone, Default)]
pub struct Admin {
    /// HAProxy's runtime API on a unix socket (`stats socket`).
    pub stats_socket: Option<std::path::PathBuf>,
    /// More unix sockets with the same API (further `stats socket PATH` lines).
    pub stats_unix_more: Vec<std::path::PathBuf>,
    /// The same API on TCP addresses (`stats socket ipv4@IP:PORT`, `*:PORT`; port 0:
    /// the one picked, announced as `listening stats addr=...`).
    pub stats_tcp: Vec<SocketAddr>,
    /// HTTP listener for `/metrics`, `/stats` and `/ready`.
    pub listen: Option<SocketAddr>,
}

impl Admin {
    /// Every unix `stats socket` path.
    pub fn unix_sockets(&self) -> impl Iterator<Item = &std::path::PathBuf> {
        self.stats_socket.iter().chain(self.stats_unix_more.iter())
    }
}

/// `monitor-uri URI` with `monitor fail if|unless COND` lines: requests for URI are
/// answered by the proxy (200, or 503 when a condition holds) and not logged.
#[derive(Debug, Clone)]
pub struct Monitor {
    pub uri: String,
    pub fail: Vec<Condition>,
}
