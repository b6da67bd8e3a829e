//! HAProxy 2.6's `tune.*` globals that ringlb does not take as settings: each one is
//! accepted with a warning saying why ignoring it changes nothing a client, a server or
//! an operator sees, and an unknown one is refused as HAProxy refuses it. (The ones
//! that do change something are read where their setting lives: `tune.bufsize`,
//! `tune.http.maxhdr`, `tune.http.logurilen`, `tune.h2.*`, `tune.comp.maxlevel` in
//! `global`, `tune.ssl.*` in `ssl`.)

use super::*;

/// Keywords of HAProxy's own scheduler, memory pools, buffers and sockets: ringlb's
/// shards are built otherwise, and these change no byte exchanged.
const ENGINE: &[&str] = &[
    "tune.buffers.limit",
    "tune.buffers.reserve",
    "tune.fail-alloc",
    "tune.fd.edge-triggered",
    "tune.idle-pool.shared",
    "tune.idletimer",
    "tune.listener.multi-queue",
    "tune.maxaccept",
    "tune.maxpollevents",
    "tune.memory.hot-size",
    "tune.pattern.cache-size",
    "tune.pipesize",
    "tune.pool-high-fd-ratio",
    "tune.pool-low-fd-ratio",
    "tune.rcvbuf.client",
    "tune.rcvbuf.server",
    "tune.recv_enough",
    "tune.runqueue-depth",
    "tune.sched.low-latency",
    "tune.sndbuf.client",
    "tune.sndbuf.server",
];

impl Mapper<'_> {
    /// A `tune.*` global not read elsewhere.
    pub(super) fn other_tune(&mut self, l: &Line) {
        let k = l.keyword();
        let why = if ENGINE.contains(&k) {
            "a setting of HAProxy's own scheduler, buffers or sockets, which changes no byte exchanged"
        } else if k == "tune.maxrewrite" {
            "ringlb's header rewrites need no room reserved in the buffer"
        } else if k == "tune.zlib.memlevel" || k == "tune.zlib.windowsize" {
            "compressed bytes may differ, the body a client decompresses is the same"
        } else if k == "tune.http.cookielen" {
            "'capture cookie' is refused, so there is nothing for it to cap"
        } else if k.starts_with("tune.lua.") {
            "'lua-load' is refused, so there is no Lua to tune"
        } else if k.starts_with("tune.quic.") {
            "QUIC binds are refused"
        } else if k.starts_with("tune.peers.") {
            "ringlb does not speak the peers protocol (a local peer is refused)"
        } else if k.starts_with("tune.vars.") {
            "ringlb does not cap the memory of variables (HAProxy drops a set-var past it)"
        } else {
            return self.err(l.line, format!("unknown keyword '{k}' in 'global' section"));
        };
        self.warn(l.line, format!("'{k}' ignored: {why}"));
    }
}
