//! What a shard runtime killed by a panic leaves behind, and how the next one takes
//! over: its clients are shut (their tasks can never run again), its listeners are
//! replaced, and the connections queued on them are served by the next runtime.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use super::accept::AcceptLoop;
use super::{Adopted, Current};
use crate::config::Config;

/// What outlives one runtime of a shard: after a panic that kills the runtime, the
/// thread starts a new one from the last config it had and the same listening sockets.
pub(super) struct Survivor {
    pub(super) config: Arc<Config>,
    pub(super) shared: Arc<crate::limits::Shared>,
    pub(super) handed: crate::upgrade::HandedSockets,
    pub(super) accepts: Vec<AcceptLoop>,
    /// The last generation, whose counters the next runtime carries on.
    pub(super) current: Option<Current>,
    /// What a dead runtime leaves for the next: fresh listeners, the connections that
    /// were queued on the old ones, and how many of its clients were cut.
    pub(super) listeners: Vec<(crate::config::BindRef, std::net::TcpListener)>,
    pub(super) adopted: Adopted,
    pub(super) orphans_closed: usize,
}

pub(super) type Survive = Rc<std::cell::RefCell<Survivor>>;

impl Survivor {
    /// After a panic: everything the dead runtime owned stays where it is (its tasks
    /// cannot be dropped without it), but its clients are told at once instead of
    /// waiting forever, and its listeners are replaced.
    pub(super) fn rescue(&mut self, shard: usize) {
        self.orphans_closed += shut_orphans();
        for a in self.accepts.drain(..) {
            let at = a.at.get();
            std::mem::forget(a.stop);
            std::mem::forget(a.handle);
            std::mem::forget(a.at);
            let opts = self
                .config
                .frontends
                .get(at.frontend)
                .and_then(|f| f.binds.get(at.bind))
                .map(|b| b.sock)
                .unwrap_or_default();
            rescue_listener(
                shard,
                opts,
                at,
                a.addr,
                a.keep,
                &mut self.listeners,
                &mut self.adopted,
            );
            // A newer process (-sf) must get the new socket, not the one shut down.
            if let (Some((_, fresh)), Ok(mut handed)) = (self.listeners.last(), self.handed.lock())
            {
                for h in handed.iter_mut() {
                    if h.addr == a.addr && h.shard == shard {
                        if let Ok(dup) = fresh.try_clone() {
                            h.socket = dup;
                        }
                    }
                }
            }
        }
    }
}

/// Rescues as the panic unwinds, while the dead runtime has had no chance to take a
/// new connection yet.
pub(super) struct RescueOnPanic<'a>(pub(super) &'a Survive, pub(super) usize);

impl Drop for RescueOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(mut s) = self.0.try_borrow_mut() {
                s.rescue(self.1);
            }
        }
    }
}

/// A dead runtime's listening socket still sits in the SO_REUSEPORT group, and an
/// accept the dead io_uring had posted would take connections nobody serves. So: a
/// fresh socket joins the group, the connections already queued on the old one are
/// taken for the next runtime, and the old one is shut down (which ends that accept).
pub(super) fn rescue_listener(
    shard: usize,
    opts: crate::config::ListenOpts,
    at: crate::config::BindRef,
    addr: SocketAddr,
    old: std::net::TcpListener,
    listeners: &mut Vec<(crate::config::BindRef, std::net::TcpListener)>,
    adopted: &mut Adopted,
) {
    let fresh = match crate::listen::reuseport_listener(addr, opts) {
        Ok(l) => l,
        Err(e) => {
            // Without a fresh socket the old one goes on (an accept the dead runtime
            // posted may still take one connection).
            tracing::warn!(shard, %addr, error = %e, "cannot bind a fresh listener; keeping the old socket");
            listeners.push((at, old));
            return;
        }
    };
    let _ = old.set_nonblocking(true);
    while let Ok((stream, peer)) = old.accept() {
        if stream.set_nonblocking(true).is_ok() {
            adopted.push((at, stream, peer));
        }
    }
    let _ = socket2::SockRef::from(&old).shutdown(std::net::Shutdown::Both);
    listeners.push((at, fresh));
}

/// A client connection as `show sess` lists it.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub fd: std::os::fd::RawFd,
    /// (u32: it packs with `fd`; every open connection has an entry.)
    pub frontend: u32,
    pub peer: std::net::SocketAddr,
    pub since: std::time::Instant,
}

thread_local! {
    /// The client sockets this thread's runtime serves, so that the ones a dead
    /// runtime leaves behind can be shut (their tasks can never run or drop again),
    /// and `show sess` can list them.
    static CLIENTS: std::cell::RefCell<slab::Slab<Client>> =
        const { std::cell::RefCell::new(slab::Slab::new()) };
}

/// A client socket registered in `CLIENTS` for as long as its task holds it.
pub(super) struct ClientFd(usize);

impl ClientFd {
    /// Registers a client connection from now.
    pub(super) fn register(
        stream: &impl std::os::fd::AsRawFd,
        frontend: usize,
        peer: std::net::SocketAddr,
    ) -> ClientFd {
        let c = Client {
            fd: stream.as_raw_fd(),
            frontend: frontend as u32,
            peer,
            since: std::time::Instant::now(),
        };
        ClientFd(CLIENTS.with(|l| l.borrow_mut().insert(c)))
    }

    /// The client's address, as registered (for a log line: the registry holds it,
    /// so that a connection's task need not keep a copy).
    pub(super) fn peer(&self) -> Option<std::net::SocketAddr> {
        CLIENTS
            .try_with(|c| c.try_borrow().ok()?.get(self.0).map(|c| c.peer))
            .ok()
            .flatten()
    }
}

/// This thread's client connections (for `show sess`).
pub(crate) fn clients() -> Vec<Client> {
    CLIENTS.with(|c| c.borrow().iter().map(|(_, c)| *c).collect())
}

impl Drop for ClientFd {
    fn drop(&mut self) {
        CLIENTS.with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                c.try_remove(self.0);
            }
        });
    }
}

/// How many client connections this thread's runtime serves; the room a burst of them
/// left in the registry goes back.
pub(super) fn open_clients() -> usize {
    CLIENTS.with(|c| {
        let mut c = c.borrow_mut();
        if c.capacity() > 4 * c.len().max(256) {
            c.shrink_to_fit();
        }
        c.len()
    })
}

/// Shuts down (without closing: the dead tasks still own the descriptors) every client
/// socket a dead runtime left; returns how many.
pub(super) fn shut_orphans() -> usize {
    CLIENTS.with(|c| {
        let mut c = c.borrow_mut();
        let n = c.len();
        for (_, &Client { fd, .. }) in c.iter() {
            // SAFETY: shutdown on a descriptor the dead task still owns; it is never
            // closed while registered (the registration drops with the socket).
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
        c.clear();
        n
    })
}
