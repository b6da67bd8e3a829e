//! What one request (HTTP) or connection (TCP) did, as its log line and the counters
//! see it: HAProxy's termination state, shared by `option httplog` and
//! `option tcplog`, so both modes say the same thing of the same event.

/// HAProxy's termination state (`%tsc`): who or what ended the session, and in which
/// phase; the last two characters (persistence cookie) are `--`. `option tcplog`
/// shows the first two (`%ts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term([u8; 4]);

impl Term {
    /// Ended normally.
    pub const NORMAL: Term = Term(*b"----");
    /// The client closed or reset before the end.
    pub const CLIENT_ABORT: Term = Term(*b"CD--");
    /// The client sent an invalid request (400).
    pub const CLIENT_REQUEST: Term = Term(*b"CR--");
    /// The request head did not arrive within `timeout http-request` (408).
    pub const CLIENT_TIMEOUT_REQUEST: Term = Term(*b"cR--");
    /// Nothing from the client within `timeout client` while data flowed.
    pub const CLIENT_TIMEOUT_DATA: Term = Term(*b"cD--");
    /// Answered by the proxy itself (a rule's deny, return or redirect, a stats page,
    /// a too large head).
    pub const PROXY_REQUEST: Term = Term(*b"PR--");
    /// No server could be reached (or none was usable): 503.
    pub const SERVER_CONNECT: Term = Term(*b"SC--");
    /// No server slot freed within `timeout queue`, or the queue was full: 503.
    pub const SERVER_QUEUE: Term = Term(*b"sQ--");
    /// The server closed or answered invalidly before a complete response head: 502.
    pub const SERVER_HEADERS: Term = Term(*b"SH--");
    /// No response head within `timeout server`: 504.
    pub const SERVER_TIMEOUT_HEADERS: Term = Term(*b"sH--");
    /// Nothing from the server within `timeout server` while data flowed.
    pub const SERVER_TIMEOUT_DATA: Term = Term(*b"sD--");
    /// The server closed or reset in the middle of the data.
    pub const SERVER_DATA: Term = Term(*b"SD--");

    /// The four characters of `%tsc`.
    pub fn as_str(&self) -> &str {
        // Built only from the ASCII constants above.
        std::str::from_utf8(&self.0).unwrap_or("????")
    }

    /// The two characters of `%ts` (`option tcplog`).
    pub fn short(&self) -> &str {
        &self.as_str()[..2]
    }
}

impl std::fmt::Display for Term {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Term;

    #[test]
    fn both_log_formats_read_the_same_state() {
        assert_eq!(Term::SERVER_QUEUE.as_str(), "sQ--");
        assert_eq!(Term::SERVER_QUEUE.short(), "sQ");
        assert_eq!(Term::NORMAL.short(), "--");
        assert_eq!(Term::SERVER_CONNECT.to_string(), "SC--");
    }
}
