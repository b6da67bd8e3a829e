//! TCP passthrough: take a server slot, connect (another server on failure), then copy
//! both ways, passing a half-close on, until both directions ended or nothing moved
//! for `timeout.client`.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;
use monoio::time::Instant;

use crate::accesslog::ms;
use crate::rules::Txn;
use crate::shard::{Shard, Slot};
use crate::upstream::Tried;

const COPY_BUF: usize = 32 * 1024;

/// Proxies one TCP connection; `early` holds bytes that followed a PROXY header, `txn`
/// what its `tcp-request connection|session` rules did.
pub async fn serve(
    shard: Rc<Shard>,
    frontend: usize,
    client: TcpStream,
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
    txn.begin_request(&shard.config, frontend);
    let inspected =
        crate::tcp_rules::inspect(&shard, frontend, client, peer, local, early, &mut txn).await;
    // Counters tracked by content rules stop with the connection, however it ends.
    let mut tracked = crate::tcp_rules::SessionTrack::new(&shard, txn.track);
    let Some((client, early, backend)) = inspected else {
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
    let Some((mut server, slot, timers)) = connect(&shard, backend, peer).await else {
        log_tcp(
            &shard,
            frontend,
            backend,
            (peer, local),
            date,
            None,
            [-1, -1, ms(began.elapsed())],
            0,
            "SC--",
            &txn,
        );
        return;
    };
    // A PROXY header for the server, then what the client already sent, in one write.
    let mut first = Vec::new();
    if let Some(v) = shard.config.backends[backend].servers[slot.server() as usize].send_proxy {
        crate::proxy_protocol::write(v, peer, local, &mut first);
    }
    first.extend_from_slice(&early);
    if !first.is_empty() {
        let (res, _) = server.write_all(first).await;
        if res.is_err() {
            return;
        }
    }
    let _slot = slot;
    // `timeout tunnel` supersedes `timeout client` once bytes flow both ways (HAProxy).
    let t = &shard.config.frontends[frontend].timeouts;
    let idle = t.tunnel.unwrap_or(t.client);
    let last_activity = Cell::new(Instant::now());
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let to_client = Cell::new(0u64);
    let to_server = Cell::new(0u64);
    let both = async {
        monoio::join!(
            copy_half(cr, sw, &last_activity, &to_server),
            copy_half(sr, cw, &last_activity, &to_client)
        );
    };
    let term = monoio::select! {
        _ = both => "--",
        // Boxed: an inline timer would make the task a 128-byte aligned allocation.
        _ = Box::pin(idle_watch(&last_activity, idle)) => {
            tracing::debug!(shard = shard.id, %peer, "tcp: idle timeout");
            "cD"
        }
    };
    let server = Some(_slot.server());
    let [tw, tc] = timers;
    log_tcp(
        &shard,
        frontend,
        backend,
        (peer, local),
        date,
        server,
        [tw, tc, ms(began.elapsed())],
        to_client.get(),
        term,
        &txn,
    );
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

/// Appends the log line of a finished connection (the frontend's log format).
#[allow(clippy::too_many_arguments)]
fn log_tcp(
    shard: &Shard,
    frontend: usize,
    backend: usize,
    (peer, local): (SocketAddr, SocketAddr),
    date: std::time::SystemTime,
    server: Option<u32>,
    timers: [i64; 3],
    bytes: u64,
    term: &'static str,
    txn: &Txn,
) {
    let Some(log) = &shard.log else { return };
    let fe = &shard.config.frontends[frontend];
    let Some(line) = &fe.log_line else { return };
    let b = &shard.config.backends[backend];
    let st = &shard.stats;
    if (fe.dont_log_null && bytes == 0) || txn.log_level == Some(8) {
        return;
    }
    let [tw, tc, tt] = timers;
    let facts = crate::rules::logformat::Facts {
        accepted: Some(date),
        request: Some(date),
        backend: &b.name,
        server: server
            .map(|s| b.servers[s as usize].name.as_str())
            .unwrap_or("<NOSRV>"),
        server_addr: server.map(|s| b.servers[s as usize].addr),
        tr_head: -1,
        tw,
        tc,
        tr_server: -1,
        ta: tt,
        tt,
        bytes_out: bytes,
        term,
        conns: [
            st.frontends.iter().map(|f| f.scur.get()).sum(),
            st.frontends[frontend].scur.get(),
            st.backends[backend].scur.get(),
            server.map_or(0, |s| st.servers[backend][s as usize].scur.get()),
        ],
        queues: [0, shard.upstreams.backends[backend].queued() as u64],
        ..Default::default()
    };
    let mut ctx = crate::rules::Ctx::new(peer, local, txn);
    ctx.cfg = Some(&shard.config);
    ctx.shard = Some(shard);
    ctx.frontend = frontend;
    ctx.backend = Some(backend);
    ctx.server = server;
    log.line(line, &ctx, &facts);
}

/// A server slot and a connection, with the backend's retries and redispatch.
/// Returns the connection, its slot, and the queue and connect times (ms).
async fn connect(
    shard: &Rc<Shard>,
    backend: usize,
    peer: SocketAddr,
) -> Option<(TcpStream, Slot, [i64; 2])> {
    let conf = &shard.config.backends[backend];
    let be = &shard.upstreams.backends[backend];
    let key = matches!(conf.balance, crate::config::BalanceAlgo::Hash { .. })
        .then(|| crate::upstream::balance::source_hash(peer.ip()));
    let mut tried = Tried::default();
    let mut failures = 0;
    loop {
        let deadline = std::time::Instant::now() + conf.timeouts.queue;
        let asked = Instant::now();
        let server = match be.acquire(key, &tried, deadline).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(shard = shard.id, %peer, backend = %be.name, error = ?e, "tcp: no server available");
                return None;
            }
        };
        let slot = Slot::new(shard, backend, server);
        let queued = ms(asked.elapsed());
        let connecting = Instant::now();
        let stay = if conf.redispatch {
            0
        } else {
            conf.retries.saturating_sub(failures)
        };
        let (res, failed) = shard.upstreams.connect_staying(backend, server, stay).await;
        failures += failed;
        match res {
            Ok(stream) => {
                shard.upstreams.report_success(backend, server);
                return Some((stream, slot, [queued, ms(connecting.elapsed())]));
            }
            Err(_) => {
                shard.upstreams.report_failure(backend, server);
                failures += 1;
                if failures > conf.retries {
                    tracing::warn!(shard = shard.id, %peer, backend = %be.name, "tcp: every connect attempt failed");
                    return None;
                }
                if conf.redispatch {
                    tried.add(server);
                }
            }
        }
    }
}

/// Copies one direction; at EOF passes the half-close on with `shutdown(SHUT_WR)`.
pub(crate) async fn copy_half(
    mut from: OwnedReadHalf<TcpStream>,
    mut to: OwnedWriteHalf<TcpStream>,
    last_activity: &Cell<Instant>,
    copied: &Cell<u64>,
) {
    let mut buf = Vec::with_capacity(COPY_BUF);
    loop {
        buf.clear();
        let (res, b) = from.read(buf).await;
        buf = b;
        match res {
            Ok(0) | Err(_) => break,
            Ok(n) => copied.set(copied.get() + n as u64),
        }
        last_activity.set(Instant::now());
        let (res, b) = to.write_all(buf).await;
        buf = b;
        if res.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Resolves once nothing has moved in either direction for `idle`.
pub(crate) async fn idle_watch(last_activity: &Cell<Instant>, idle: Duration) {
    loop {
        let due = last_activity.get() + idle;
        if Instant::now() >= due {
            return;
        }
        monoio::time::sleep_until(due).await;
    }
}
