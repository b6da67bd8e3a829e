//! Idle upstream connections of one server on one shard: LIFO (the warmest first),
//! bounded, aged out, and checked before reuse so a connection the server closed
//! while idle is never handed out.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

#[derive(Default)]
pub struct Pool {
    idle: Vec<(TcpStream, Instant)>,
}

impl Pool {
    /// The most recently returned connection younger than `max_idle`. With `check`,
    /// one the server closed meanwhile is skipped (a peek: one syscall); without, the
    /// caller must be able to resend the request on a fresh connection.
    pub fn take(&mut self, now: Instant, max_idle: Duration, check: bool) -> Option<TcpStream> {
        while let Some((conn, since)) = self.idle.pop() {
            if now.saturating_duration_since(since) < max_idle && (!check || is_alive(&conn)) {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn` for reuse; when full, the coldest connection makes room.
    pub fn put(&mut self, conn: TcpStream, now: Instant, max: usize) {
        if max == 0 {
            return;
        }
        if self.idle.len() >= max {
            self.idle.remove(0);
        }
        self.idle.push((conn, now));
    }

    /// Drops connections idle for too long or closed by the server.
    pub fn purge(&mut self, now: Instant, max_idle: Duration) {
        self.idle
            .retain(|(c, since)| now.saturating_duration_since(*since) < max_idle && is_alive(c));
    }

    pub fn is_empty(&self) -> bool {
        self.idle.is_empty()
    }

    pub fn clear(&mut self) {
        self.idle.clear();
    }
}

/// An idle HTTP connection has nothing to read: EOF, stray bytes or an error all mean
/// it cannot carry another request.
fn is_alive(conn: &TcpStream) -> bool {
    let mut byte = 0u8;
    // SAFETY: a one-byte peek into a local; the fd is owned by `conn`.
    let n = unsafe {
        libc::recv(
            conn.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
}
