//! Listening sockets: one SO_REUSEPORT socket per shard per bind address.
//!
//! The port is resolved once (so `:0` works) and every shard binds that same port.
//! Because SO_REUSEPORT would let us silently join another process's listener and split
//! its traffic, each address is first probed with a plain (non-reuseport) bind, which
//! fails when anybody already listens there.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::{Config, ListenOpts};

/// The sockets of one bind address: `per_shard[i]` belongs to shard `i`.
pub struct BoundAddr {
    /// The frontend and bind it serves.
    pub at: crate::config::BindRef,
    pub addr: SocketAddr,
    pub per_shard: Vec<TcpListener>,
}

#[derive(Debug)]
pub struct BindError {
    pub frontend: String,
    pub addr: SocketAddr,
    pub source: io::Error,
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.source.kind() == io::ErrorKind::AddrInUse {
            write!(
                f,
                "frontend {}: cannot bind {}: address already in use by another process",
                self.frontend, self.addr
            )
        } else {
            write!(
                f,
                "frontend {}: cannot bind {}: {}",
                self.frontend, self.addr, self.source
            )
        }
    }
}

impl std::error::Error for BindError {}

/// Binds every frontend address for `shards` shards.
pub fn bind_all(cfg: &Config, shards: usize) -> Result<Vec<BoundAddr>, BindError> {
    bind_all_inheriting(cfg, shards, &mut Vec::new(), false)
}

/// Like `bind_all`, taking sockets handed over by an old process first (`-sf`): an
/// address it listened on keeps those very sockets. `takeover`: the port may be held
/// by the process we replace, so the "already in use" probe is skipped.
pub fn bind_all_inheriting(
    cfg: &Config,
    shards: usize,
    inherited: &mut Vec<crate::upgrade::Handed>,
    takeover: bool,
) -> Result<Vec<BoundAddr>, BindError> {
    let mut out = Vec::new();
    // A `disabled` frontend is not started.
    for (fi, fe) in cfg
        .frontends
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.disabled)
    {
        for (bi, (want, opts)) in fe.binds.iter().map(|b| (b.addr, b.sock)).enumerate() {
            let fail = |source| BindError {
                frontend: fe.name.clone(),
                addr: want,
                source,
            };
            let mut mine: Vec<_> = Vec::new();
            let mut i = 0;
            while i < inherited.len() {
                if inherited[i].addr == want {
                    mine.push(inherited.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            mine.sort_by_key(|h| h.shard);
            // Port 0 is always resolved here; a port the replaced process may hold
            // would fail the probe, so a takeover joins it instead.
            let addr = if !mine.is_empty() || (takeover && want.port() != 0) {
                want
            } else {
                probe(want, opts).map_err(fail)?
            };
            let mut per_shard = Vec::with_capacity(shards);
            for h in mine.into_iter().take(shards) {
                let _ = h.socket.set_nonblocking(true);
                per_shard.push(h.socket);
            }
            while per_shard.len() < shards {
                per_shard.push(reuseport_listener(addr, opts).map_err(fail)?);
            }
            out.push(BoundAddr {
                at: crate::config::BindRef {
                    frontend: fi,
                    bind: bi,
                },
                addr,
                per_shard,
            });
        }
    }
    Ok(out)
}

/// Binds without SO_REUSEPORT to learn the real port and to fail if it is taken.
pub fn probe(addr: SocketAddr, opts: ListenOpts) -> io::Result<SocketAddr> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if opts.transparent {
        s.set_ip_transparent(true)?;
    }
    s.bind(&addr.into())?;
    let local = s
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("bound address is not an IP socket"))?;
    Ok(local)
}

pub fn reuseport_listener(addr: SocketAddr, opts: ListenOpts) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(!opts.v4v6)?;
    }
    if opts.transparent {
        // Before bind: the address may not be local (TPROXY).
        s.set_ip_transparent(true)?;
    }
    if let Some(mss) = opts.mss {
        s.set_mss(mss)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    if opts.defer_accept {
        // HAProxy's value: accept once data came, or after one second.
        setsockopt_int(&s, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, 1)?;
    }
    if opts.tfo {
        // Before listen: the queue of pending Fast Open requests (HAProxy's default).
        setsockopt_int(&s, libc::IPPROTO_TCP, libc::TCP_FASTOPEN, 256)?;
    }
    s.listen(4096)?;
    Ok(s.into())
}

fn setsockopt_int(s: &Socket, level: i32, name: i32, v: i32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid socket, an int option of the right size.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            (&v as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
