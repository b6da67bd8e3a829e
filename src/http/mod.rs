//! HTTP/1.x: the client connection loop and request side (conn), the response side
//! (response), head parsing and rewriting (head), body framing (framing), routing
//! (route), the phases around a request (phases: captures, rules, use_backend,
//! X-Forwarded-For, response rules), rule lists on heads (rules) and the head edits
//! they make (edit), canned replies (reply), WebSocket tunnels (tunnel),
//! admin pages (local), HTTP compression (compress), the deadlines of connections waiting for a request (idle), `option http-buffer-request`'s wait for a request body (buffer_body), and an HTTP/1
//! request body going to a `proto h2` server while its response comes (upload).

pub use crate::bufpool::figures as buffer_figures;
mod buffer_body;
mod compress;
mod conn;
mod cookie;
mod edit;
pub mod framing;
pub mod head;
pub(crate) mod idle;
pub(crate) use idle::{
    next_deadline as next_idle_deadline, set_bell as set_idle_bell, wake_expired as wake_idle,
};
mod local;
mod phases;
pub mod reply;
mod request;
mod response;
mod route;
pub mod rules;
mod tunnel;
mod upload;

pub use conn::{serve, H2Preface};

/// Run once a second by each shard with its open client connections: shrinks the
/// idle deadlines' storage and the free lists, and returns memory to the system after
/// a burst (see `bufpool::trim`); frees the HTTP/2 write buffers the shard's idle
/// connections left for others and none took since the last run (`patches/h2`).
pub(crate) fn trim_memory(open: usize) {
    idle::shrink();
    crate::bufpool::trim(open);
    h2::trim_spare_buffers();
}

/// The request line as the log captures it (`%r`, `%HU`, ...): an HTTP/2 stream's
/// version as HAProxy shows it, then at most `max` bytes (`tune.http.logurilen`).
fn capture_reqline(dst: &mut Vec<u8>, line: &[u8], h2: bool, max: usize) {
    dst.clear();
    dst.extend_from_slice(line);
    if h2 {
        h2_version(dst);
    }
    dst.truncate(max);
}

/// The request line of an HTTP/2 stream, as logged: its translated `HTTP/1.1` version
/// becomes `HTTP/2.0` (HAProxy's `%r` and `capture.req.ver` of an h2 request).
fn h2_version(line: &mut Vec<u8>) {
    if line.ends_with(b" HTTP/1.1") {
        let at = line.len() - b"2.0".len();
        line.truncate(at);
        line.extend_from_slice(b"2.0");
    }
}
