//! Zero-copy forwarding: socket → pipe → socket with splice(2), the bytes never
//! entering user space; `forward` moves a large body's known length (HTTP), `stream`
//! a TCP stream's bulk for as long as its caller wants (`pipe` decides when: see
//! `config::splice`). Each shard keeps its pipes and reuses them (a pipe
//! is two descriptors and a kernel buffer: creating one per transfer would cost more
//! than it saves).
//!
//! The splices are plain non-blocking syscalls; only waiting goes through the runtime
//! (`readable` / `writable`: a PollAdd on io_uring, readiness on epoll). io_uring's own
//! splice op is not used: the kernel hands every one of them to a worker thread, which
//! costs more than the copy it saves.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use monoio::net::TcpStream;
use monoio::time::Instant;

use crate::io::Timer;

/// From this many bytes left of a body on, two splices beat reading into the
/// connection's 16 KiB buffer and writing it out (64 KiB responses, benches/compare.py
/// `--scenarios 64k`: 0.75 × HAProxy's CPU per request with splicing from 16 KiB on,
/// 1.43 × with the threshold at 64 KiB, where such a body was copied).
pub const SPLICE_MIN: u64 = 16 * 1024;

/// The pipe size asked for (the kernel may grant less: 64 KiB by default).
const PIPE_SIZE: i32 = 256 * 1024;

/// Pipes kept per shard when idle, and after a purge.
const POOL_MAX: usize = 64;
const POOL_KEEP: usize = 2;

/// A pipe: (read end, write end, capacity).
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    size: usize,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 fills the two descriptors, which we own from here on.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl on a descriptor we own.
        let size = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
        let size = if size > 0 { size as usize } else { 64 * 1024 };
        Ok(Pipe { read, write, size })
    }
}

/// A shard's pipes: the idle ones (always empty), and a count of all it holds.
pub struct PipePool {
    idle: RefCell<Vec<Pipe>>,
    /// Pipes open, idle or in use.
    open: Cell<usize>,
    /// Most pipes open at once: a quarter of the shard's connections (HAProxy's
    /// default `maxpipes` is maxconn / 4). Beyond it bodies are copied, so pipes never
    /// take the descriptors that maxconn counted on for connections.
    max: usize,
    /// Bytes moved through pipes, for the statistics (HAProxy's spliced bytes out).
    spliced: Cell<u64>,
}

#[derive(Debug)]
pub enum SpliceError {
    /// The source ended or failed before `len` bytes.
    Source,
    /// The destination failed.
    Destination,
    Timeout,
    /// No pipe could be made (out of descriptors): the caller copies instead.
    NoPipe,
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: FIONBIO on a descriptor that stays open for the call.
    if unsafe { libc::ioctl(fd, libc::FIONBIO, &on) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One non-blocking splice of up to `len` bytes.
fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: splice between two descriptors that stay open for the call.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

impl PipePool {
    /// The pipes of a shard that serves at most `maxconn` connections at once.
    pub fn new(maxconn: usize) -> PipePool {
        PipePool {
            idle: RefCell::new(Vec::new()),
            open: Cell::new(0),
            max: (maxconn / 4).max(1),
            spliced: Cell::new(0),
        }
    }

    /// (pipes open in use, idle pipes, most pipes, bytes spliced so far).
    pub fn figures(&self) -> (usize, usize, usize, u64) {
        let idle = self.idle.borrow().len();
        (
            self.open.get().saturating_sub(idle),
            idle,
            self.max,
            self.spliced.get(),
        )
    }

    /// Closes the idle pipes beyond a couple (called once a second by the shard).
    pub fn purge(&self) {
        let mut idle = self.idle.borrow_mut();
        let closed = idle.len().saturating_sub(POOL_KEEP);
        idle.truncate(POOL_KEEP);
        self.open.set(self.open.get() - closed);
    }

    /// An idle pipe, or a new one while the shard holds fewer than its maximum.
    fn lease(&self) -> Result<Lease<'_>, SpliceError> {
        let pipe = match self.idle.borrow_mut().pop() {
            Some(p) => p,
            None if self.open.get() >= self.max => return Err(SpliceError::NoPipe),
            None => {
                let p = Pipe::new().map_err(|_| SpliceError::NoPipe)?;
                self.open.set(self.open.get() + 1);
                p
            }
        };
        Ok(Lease {
            pool: self,
            pipe: Some(pipe),
            empty: false,
        })
    }

    /// Moves exactly `len` bytes from `from` to `to`. A read waits at most
    /// `read_timeout` and a write `write_timeout` (inactivity, as the copy loop), on
    /// the connection's own timer.
    pub async fn forward(
        &self,
        from: &TcpStream,
        to: &TcpStream,
        len: u64,
        read_timeout: Duration,
        write_timeout: Duration,
        timer: &mut Timer,
    ) -> Result<(), SpliceError> {
        let mut lease = self.lease()?;
        let Some(pipe) = &lease.pipe else {
            return Err(SpliceError::NoPipe);
        };
        let res = pump(pipe, from, to, len, read_timeout, write_timeout, timer).await;
        lease.empty = res.is_ok();
        if res.is_ok() {
            self.spliced.set(self.spliced.get() + len);
        }
        res
    }
}

/// A pipe out of the pool. It goes back when dropped if it is known to be empty (a
/// transfer completed), and closes otherwise (an error, or a transfer cut short).
struct Lease<'a> {
    pool: &'a PipePool,
    pipe: Option<Pipe>,
    empty: bool,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(pipe) = self.pipe.take() else { return };
        let mut idle = self.pool.idle.borrow_mut();
        if self.empty && idle.len() < POOL_MAX {
            idle.push(pipe);
        } else {
            self.pool.open.set(self.pool.open.get() - 1);
        }
    }
}

/// Moves exactly `len` bytes from `from` to `to` through `pipe`.
async fn pump(
    pipe: &Pipe,
    from: &TcpStream,
    to: &TcpStream,
    mut len: u64,
    read_timeout: Duration,
    write_timeout: Duration,
    timer: &mut Timer,
) -> Result<(), SpliceError> {
    let (src, dst) = nonblocking(from, to)?;
    while len > 0 {
        let want = (len as usize).min(pipe.size);
        let got = loop {
            match splice(src, pipe.write.as_raw_fd(), want) {
                Ok(0) => return Err(SpliceError::Source),
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let at = Instant::now() + read_timeout;
                    match timer.bound(at, from.readable(false)).await {
                        Some(Ok(())) => {}
                        Some(Err(_)) => return Err(SpliceError::Source),
                        None => return Err(SpliceError::Timeout),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(SpliceError::Source),
            }
        };
        drain(pipe, to, dst, got, Some((&mut *timer, write_timeout))).await?;
        len -= got as u64;
    }
    Ok(())
}

/// Empties the `left` bytes in `pipe` into `dst` (`to`'s descriptor), waiting for room
/// there at most the given time on the timer when one is given.
async fn drain(
    pipe: &Pipe,
    to: &TcpStream,
    dst: RawFd,
    mut left: usize,
    mut bound: Option<(&mut Timer, Duration)>,
) -> Result<(), SpliceError> {
    while left > 0 {
        match splice(pipe.read.as_raw_fd(), dst, left) {
            Ok(0) => return Err(SpliceError::Destination),
            Ok(n) => left -= n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => match &mut bound {
                Some((timer, limit)) => {
                    let at = Instant::now() + *limit;
                    match timer.bound(at, to.writable(false)).await {
                        Some(Ok(())) => {}
                        Some(Err(_)) => return Err(SpliceError::Destination),
                        None => return Err(SpliceError::Timeout),
                    }
                }
                None => to
                    .writable(false)
                    .await
                    .map_err(|_| SpliceError::Destination)?,
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(SpliceError::Destination),
        }
    }
    Ok(())
}

/// Both sockets' descriptors, made non-blocking: splice(2) honours the sockets' own
/// O_NONBLOCK (SPLICE_F_NONBLOCK only covers the pipe), and io_uring sockets are
/// blocking: a splice must never block the shard. io_uring's own reads and writes
/// work the same on non-blocking sockets.
fn nonblocking(from: &TcpStream, to: &TcpStream) -> Result<(RawFd, RawFd), SpliceError> {
    let (src, dst) = (from.as_raw_fd(), to.as_raw_fd());
    for fd in [src, dst] {
        set_nonblocking(fd).map_err(|_| SpliceError::NoPipe)?;
    }
    Ok((src, dst))
}

/// What `PipePool::stream` reports as bytes go through.
#[derive(Debug, Clone, Copy)]
pub enum Transfer {
    /// Bytes taken from the source (into the pipe).
    Read(usize),
    /// Those bytes all given to the destination: the pipe is empty again.
    Written(usize),
}

/// How a spliced stretch of a direction ended (`PipePool::stream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streamed {
    /// The source ended: everything it sent was passed on.
    Ended,
    /// The caller asked to stop (traffic turned interactive); no byte is held.
    Stopped,
}

impl PipePool {
    /// Moves what `from` sends to `to` until `from` ends (`Ended`), either side fails,
    /// or `report`, told of every transfer, answers `false` to a `Written` (`Stopped`:
    /// the pipe is empty, the caller goes on copying). A pipe is held only while bytes
    /// flow: waiting for the source, the direction holds none, so idle connections
    /// do not take the shard's pipes (`NoPipe` when none is left when bytes come
    /// back: the caller copies them). Waits without a deadline: the caller bounds the
    /// whole (dropping this future closes a pipe that may hold bytes, never pools it).
    pub async fn stream(
        &self,
        from: &TcpStream,
        to: &TcpStream,
        mut report: impl FnMut(Transfer) -> bool,
    ) -> Result<Streamed, SpliceError> {
        let (src, dst) = nonblocking(from, to)?;
        loop {
            let mut lease = self.lease()?;
            let Some(pipe) = &lease.pipe else {
                return Err(SpliceError::NoPipe);
            };
            loop {
                let got = match splice(src, pipe.write.as_raw_fd(), pipe.size) {
                    Ok(0) => {
                        lease.empty = true;
                        return Ok(Streamed::Ended);
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return Err(SpliceError::Source),
                };
                report(Transfer::Read(got));
                drain(pipe, to, dst, got, None).await?;
                self.spliced.set(self.spliced.get() + got as u64);
                if !report(Transfer::Written(got)) {
                    lease.empty = true;
                    return Ok(Streamed::Stopped);
                }
            }
            // Empty: back to the pool while the source is quiet.
            lease.empty = true;
            drop(lease);
            from.readable(false)
                .await
                .map_err(|_| SpliceError::Source)?;
        }
    }
}
