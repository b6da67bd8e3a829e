//! TCP mode (client side): a server through the dispatch layer (slot, connect,
//! retries), what the client already sent, then `pipe` copies both ways until both
//! directions ended or a side was idle too long; one `option tcplog` line at the end.

use std::net::SocketAddr;
use std::rc::Rc;

use monoio::io::AsyncWriteRentExt;
use monoio::time::Instant;

use crate::accesslog::ms;
use crate::dispatch::{Dispatch, PoolUse};
use crate::io::{Stream, Timer};
use crate::pipe::{self, Idle};
use crate::record::TcpLine;
use crate::rules::Txn;
use crate::shard::Shard;
use crate::stats::Counters;

/// Proxies one TCP connection; `early` holds bytes that followed a PROXY header, `txn`
/// what its `tcp-request connection|session` rules did (and `txn.tls` what the
/// client's TLS handshake settled, TLS terminated here).
pub async fn serve<C: Stream>(
    shard: Rc<Shard>,
    frontend: usize,
    client: C,
    peer: SocketAddr,
    local: SocketAddr,
    early: Vec<u8>,
    mut txn: Txn,
) {
    let _inflight = shard.begin_request();
    let date = std::time::SystemTime::now();
    let began = Instant::now();
    // `tcp-request content` rules and `use_backend` (SNI routing) on what the client
    // sends first, waiting up to the inspect delay; those bytes go to the server.
    txn.begin_request(shard.config.txn_scope(frontend));
    let inspected =
        crate::tcp_rules::inspect(&shard, frontend, client, peer, local, early, &mut txn).await;
    // Counters tracked by content rules stop with the connection, however it ends.
    let mut tracked = crate::tcp_rules::SessionTrack::new(&shard, txn.track);
    let Some((client, mut early, backend)) = inspected else {
        return;
    };
    let Some(backend) = backend else {
        return;
    };
    let allowed = backend_rules(&shard, frontend, backend, peer, local, &early, &mut txn);
    tracked.set(txn.track);
    if !allowed {
        return;
    }
    let conf = &shard.config.backends[backend];
    // A connection has no request: a tcp-mode hash backend hashes the source.
    let hash = match &conf.balance {
        crate::config::BalanceAlgo::Hash { function, .. } => {
            Some(function.finish(crate::upstream::balance::source_hash(peer.ip())))
        }
        _ => None,
    };
    let mut dispatch = Dispatch::new(&shard, backend, hash, None, (peer, local), began);
    // A server whose SNI is the client's (`sni ssl_fc_sni`) gets it.
    dispatch.client_sni(txn.tls.as_ref().and_then(|t| t.sni.as_deref()));
    // Boxed: an inline timer would make the task a 128-byte aligned allocation.
    let mut timer = Timer::new(began);
    let next = if conf.abort_on_close {
        watch_client(
            &client,
            &mut early,
            dispatch.next(PoolUse::Never, &mut timer),
        )
        .await
    } else {
        Some(dispatch.next(PoolUse::Never, &mut timer).await)
    };
    let Some(next) = next else {
        // `option abortonclose`: the client left while queued or connecting.
        let (term, server, waited) = dispatch.abandoned();
        tracing::debug!(shard = shard.id, %peer, backend = %conf.name, %term, "tcp: client left before a server");
        let line = TcpLine {
            server,
            timers: [ms(waited), -1, ms(began.elapsed())],
            bytes: 0,
            retries: dispatch.times.retries,
            term,
        };
        line.log(&shard, frontend, backend, (peer, local), date, &txn);
        return;
    };
    let mut server = match next {
        Ok(s) => s,
        Err(g) => {
            tracing::debug!(shard = shard.id, %peer, backend = %conf.name, term = %g.term, "tcp: no server");
            // HAProxy names the last server tried, with no connect time.
            let waited = if g.server.is_some() { 0 } else { -1 };
            let line = TcpLine {
                server: g.server,
                timers: [waited, -1, ms(began.elapsed())],
                bytes: 0,
                retries: g.retries,
                term: g.term,
            };
            line.log(&shard, frontend, backend, (peer, local), date, &txn);
            drain(&client);
            return;
        }
    };
    dispatch.succeeded(&server);
    // What the client sent after its PROXY header, if anything.
    if !early.is_empty() {
        let (res, _) = server.stream.write_all(early).await;
        if res.is_err() {
            return;
        }
    }
    let t = &shard.config.frontends[frontend].timeouts;
    let idle = Idle {
        client: t.client,
        server: conf.timeouts.server,
        // `timeout tunnel` supersedes both once the connection is established.
        tunnel: conf.timeouts.tunnel.or(t.tunnel),
        client_fin: t.client_fin,
        server_fin: conf.timeouts.server_fin,
    };
    let kill = shard.upstreams.backends[backend].servers[server.server as usize].kill_switch();
    let splice = shard.config.splice(frontend, backend);
    let ended = pipe::run(client, server.stream, idle, splice, &shard.pipes, kill).await;
    shard.stats.traffic(
        frontend,
        Some(backend),
        Some(server.server),
        ended.to_server,
        ended.to_client,
    );
    account(
        &shard,
        backend,
        server.server,
        ended.term,
        [
            ms(dispatch.times.queued),
            ms(dispatch.times.connected),
            ms(began.elapsed()),
        ],
    );
    let line = TcpLine {
        server: Some(server.server),
        timers: [
            ms(dispatch.times.queued),
            ms(dispatch.times.connected),
            ms(began.elapsed()),
        ],
        bytes: ended.to_client,
        retries: dispatch.times.retries,
        term: ended.term,
    };
    line.log(&shard, frontend, backend, (peer, local), date, &txn);
    drop(server.slot);
}

/// The most a client may send while its connection waits for a server under `option
/// abortonclose` (HAProxy's buffer): beyond it the client is no longer read, and its
/// close no longer seen, until the server is connected.
const WATCH_MAX: usize = 16 * 1024;

/// `option abortonclose`: waits for `next` (a slot and a connected server) while
/// watching the client, as HAProxy does in TCP mode: what the client sends meanwhile
/// is kept in `early` (it goes to the server first); `None` when the client closed or
/// reset its connection before `next` ended (the wait is then dropped: the queue
/// place or the connect attempt is given up). Only a plain TCP client is watched (a
/// TLS stream's bytes cannot be read past its decryption here).
async fn watch_client<C: Stream, T>(
    client: &C,
    early: &mut Vec<u8>,
    next: impl std::future::Future<Output = T>,
) -> Option<T> {
    let mut next = std::pin::pin!(next);
    let Some(sock) = client.socket() else {
        return Some(next.await);
    };
    loop {
        if early.len() >= WATCH_MAX {
            return Some(next.await);
        }
        monoio::select! {
            r = &mut next => return Some(r),
            _ = sock.readable(false) => {}
        }
        // Readiness only: the bytes are taken without blocking (nothing is in flight on
        // the socket, so none can be lost).
        use std::os::fd::AsRawFd;
        early.reserve(4096.min(WATCH_MAX - early.len()));
        let spare = early.spare_capacity_mut();
        // SAFETY: `recv` writes at most `spare.len()` bytes into `early`'s spare
        // capacity; the length is set to cover exactly the bytes written.
        let n = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                spare.len(),
                libc::MSG_DONTWAIT,
            )
        };
        match n {
            0 => return None,
            n if n > 0 => unsafe { early.set_len(early.len() + n as usize) },
            _ => {
                let e = std::io::Error::last_os_error();
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) {
                    return None;
                }
            }
        }
    }
}

/// Before a connection that never reached a server closes: what the client sent is
/// read and dropped, so that it ends with a FIN as HAProxy's does (its buffer took the
/// bytes), not with the reset the kernel sends for unread ones. A TLS client's bytes
/// stay (they cannot be read past its decryption here).
fn drain<C: Stream>(client: &C) {
    use std::os::fd::AsRawFd;
    let Some(sock) = client.socket() else {
        return;
    };
    let mut buf = [0u8; 4096];
    for _ in 0..64 {
        // SAFETY: `recv` writes at most `buf.len()` bytes into `buf`.
        let n = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n <= 0 {
            break;
        }
    }
}

/// A finished connection in the backend's and server's figures: aborts, and HAProxy's
/// averages (queue, connect, no response time in TCP mode, total), over the
/// connections each was given.
fn account(shard: &Shard, backend: usize, server: u32, term: crate::record::Term, t: [i64; 3]) {
    let st = &shard.stats;
    let be = st.backend(backend);
    let Some(sv) = st.server_checked(backend, server as usize) else {
        return;
    };
    for c in [be, sv] {
        if term.client_aborted() {
            Counters::inc(&c.cli_abrt);
        } else if term.server_aborted() {
            Counters::inc(&c.srv_abrt);
        }
        let times = [t[0], t[1], 0, t[2]].map(|v| v.max(0) as u64);
        c.timing.record(c.lbtot.get(), times);
    }
}

/// The backend's `tcp-request content` rules, on the bytes the frontend's rules
/// buffered: `false` when they refuse the connection.
fn backend_rules(
    shard: &Shard,
    frontend: usize,
    backend: usize,
    peer: SocketAddr,
    local: SocketAddr,
    early: &[u8],
    txn: &mut Txn,
) -> bool {
    let be = &shard.config.backends[backend];
    if be.tcp_content.is_empty() || shard.config.frontends[frontend].listen_backend == Some(backend)
    {
        return true;
    }
    let site = crate::tcp_rules::Site {
        shard,
        frontend,
        backend: Some(backend),
        src: peer,
        dst: local,
    };
    matches!(
        crate::tcp_rules::run(
            &be.tcp_content,
            0,
            &site,
            txn,
            None,
            Some(early),
            true,
            false
        ),
        crate::tcp_rules::Verdict::Go | crate::tcp_rules::Verdict::Wait(_)
    )
}
