//! Seamless binary upgrade (`ringlb -f FILE -sf OLDPID`). Every running process keeps a
//! hand-over socket, `ringlb-<pid>.sock` in its runtime directory. A new process asks
//! the old one for its listening sockets (every shard's, by SCM_RIGHTS: the same
//! sockets, so nothing waiting in an accept queue is lost) and its servers' operator
//! states, starts on them, then tells the old one to soft-stop. If the hand-over fails
//! it says so, binds anew, and counts it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// Most descriptors per message.
const FDS_PER_MESSAGE: usize = 64;

/// Where a process's hand-over socket lives: `$RINGLB_RUNTIME_DIR`, else the temp dir.
pub fn socket_path(pid: u32) -> PathBuf {
    let dir = std::env::var_os("RINGLB_RUNTIME_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    dir.join(format!("ringlb-{pid}.sock"))
}

/// One listening socket of one shard.
pub struct Handed {
    pub addr: SocketAddr,
    pub shard: usize,
    pub socket: TcpListener,
}

/// The duplicates on offer; a shard restarted after a panic swaps in its new sockets.
pub type HandedSockets = Arc<Mutex<Vec<Handed>>>;

/// An operator setting to carry over: (backend, server, state word, weight).
pub type ServerState = (String, String, String, u32);

/// What the old process offers: its sockets (duplicates of the shards' own) and a
/// way to read its servers' states at hand-over time.
pub struct Offer {
    pub sockets: HandedSockets,
    pub states: Box<dyn Fn() -> Vec<ServerState> + Send + Sync>,
}

/// Serves hand-over requests until the process exits; removes the socket file then.
pub struct Handover {
    path: PathBuf,
}

impl Drop for Handover {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

pub fn serve(offer: Arc<Offer>) -> std::io::Result<Handover> {
    let path = socket_path(std::process::id());
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::thread::Builder::new()
        .name("ringlb-handover".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                if let Err(e) = give(&offer, conn) {
                    tracing::warn!(error = %e, "hand-over to a new process failed");
                }
            }
        })?;
    Ok(Handover { path })
}

/// Protocol: one text line per socket, `SOCKET <addr> <shard>`, then `STATE <backend>
/// <server> <state> <weight>` lines, then `END`; the descriptors follow in order, in
/// messages of at most `FDS_PER_MESSAGE`, each carrying the byte `F`.
fn give(offer: &Offer, mut conn: UnixStream) -> std::io::Result<()> {
    let sockets = offer
        .sockets
        .lock()
        .map_err(|_| std::io::Error::other("poisoned"))?;
    let mut text = String::new();
    for s in sockets.iter() {
        text.push_str(&format!("SOCKET {} {}\n", s.addr, s.shard));
    }
    for (b, s, state, w) in (offer.states)() {
        text.push_str(&format!("STATE {b} {s} {state} {w}\n"));
    }
    text.push_str("END\n");
    conn.write_all(text.as_bytes())?;
    let fds: Vec<RawFd> = sockets.iter().map(|s| s.socket.as_raw_fd()).collect();
    for chunk in fds.chunks(FDS_PER_MESSAGE) {
        let iov = [std::io::IoSlice::new(b"F")];
        let cmsg = [ControlMessage::ScmRights(chunk)];
        sendmsg::<()>(conn.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
            .map_err(std::io::Error::from)?;
    }
    // Wait for the new process to close its end: it has the descriptors then.
    let mut byte = [0u8; 1];
    let _ = conn.read(&mut byte);
    Ok(())
}

/// What a new process received from an old one.
#[derive(Default)]
pub struct Received {
    pub sockets: Vec<Handed>,
    pub states: Vec<ServerState>,
}

/// Takes the sockets and states of the process `pid`.
pub fn take(pid: u32) -> Result<Received, String> {
    let path = socket_path(pid);
    let conn = UnixStream::connect(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut announced = Vec::new();
    let mut states = Vec::new();
    // Read the text part byte-exactly (a BufReader could swallow the marker bytes of
    // the descriptor messages).
    let mut reader = BufReader::with_capacity(1, &conn);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("hand-over closed early".into());
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["SOCKET", addr, shard] => announced.push((
                addr.parse::<SocketAddr>().map_err(|e| e.to_string())?,
                shard.parse::<usize>().map_err(|e| e.to_string())?,
            )),
            ["STATE", b, s, state, weight] => states.push((
                b.to_string(),
                s.to_string(),
                state.to_string(),
                weight.parse().unwrap_or(1),
            )),
            ["END"] => break,
            _ => return Err(format!("unexpected hand-over line {line:?}")),
        }
    }
    let mut fds = Vec::with_capacity(announced.len());
    while fds.len() < announced.len() {
        let mut marker = [0u8; 1];
        let mut iov = [std::io::IoSliceMut::new(&mut marker)];
        let mut space = nix::cmsg_space!([RawFd; FDS_PER_MESSAGE]);
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        )
        .map_err(|e| e.to_string())?;
        let before = fds.len();
        for c in msg.cmsgs() {
            if let ControlMessageOwned::ScmRights(received) = c {
                fds.extend(received);
            }
        }
        if fds.len() == before {
            return Err("hand-over message without descriptors".into());
        }
    }
    let sockets = announced
        .into_iter()
        .zip(fds)
        // SAFETY: each descriptor was just received by SCM_RIGHTS and is owned by
        // nobody else in this process.
        .map(|((addr, shard), fd)| Handed {
            addr,
            shard,
            socket: unsafe { TcpListener::from_raw_fd(fd) },
        })
        .collect();
    Ok(Received { sockets, states })
}

/// Tells the old processes to soft-stop (SIGUSR1), as HAProxy's `-sf` does.
pub fn finish_old(pids: &[u32]) {
    for &pid in pids {
        // SAFETY: kill(2) on a pid the operator named on the command line.
        let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGUSR1) };
        if rc != 0 {
            tracing::warn!(pid, error = %std::io::Error::last_os_error(), "-sf: cannot signal the old process");
        } else {
            tracing::info!(pid, "-sf: old process told to finish");
        }
    }
}
