//! The process around the shards, set up as HAProxy's `global` section asks: fork into
//! the background (`daemon`), raise the open-file limit (`ulimit-n`), and, once every
//! listener, stats socket and log socket is open and before any shard serves, `chroot`
//! and become the configured group and user (`group`/`gid`, `user`/`uid`).
//!
//! The order is HAProxy 2.6's: the limit before the sockets are opened, then chroot,
//! then the supplementary groups are dropped and the gid set, then the uid. glibc's
//! setgid/setuid apply to every thread of the process (the health, admin and log
//! threads already run by then).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::config::ProcessSettings;

/// The child side of `daemonize`: tells the waiting parent when the child is ready.
pub struct Detached {
    ready: std::fs::File,
}

/// Forks into the background. The parent waits until the child says it is ready and
/// exits 0 then, or exits 1 when the child ends first (its errors went to the shared
/// stderr); it never returns. The child starts a new session and returns.
///
/// Must run while the process has a single thread: a fork copies only the calling one.
pub fn daemonize() -> std::io::Result<Detached> {
    let (rx, tx) = nix::unistd::pipe().map_err(std::io::Error::from)?;
    // SAFETY: both ends are fresh descriptors that nothing else owns.
    let (rx, tx) = unsafe { (OwnedFd::from_raw_fd(rx), OwnedFd::from_raw_fd(tx)) };
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: the process has one thread here (see above), so the child may run on
    // freely; it shares nothing with the parent but the descriptors.
    match unsafe { nix::unistd::fork() }.map_err(std::io::Error::from)? {
        nix::unistd::ForkResult::Parent { .. } => {
            drop(tx);
            let mut byte = [0u8; 1];
            let mut rx = std::fs::File::from(rx);
            let ok = matches!(rx.read(&mut byte), Ok(1));
            std::process::exit(if ok { 0 } else { 1 });
        }
        nix::unistd::ForkResult::Child => {
            drop(rx);
            let _ = nix::unistd::setsid();
            Ok(Detached {
                ready: std::fs::File::from(tx),
            })
        }
    }
}

impl Detached {
    /// Points stdin, stdout and stderr at /dev/null, as HAProxy's daemon does (the
    /// `listening` and `ready` lines were printed before), then lets the parent exit.
    pub fn ready(mut self) {
        if let Ok(null) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
        {
            for fd in 0..3 {
                // SAFETY: dup2 onto the standard descriptors, which stay open.
                unsafe { libc::dup2(null.as_raw_fd(), fd) };
            }
        }
        let _ = self.ready.write_all(b"R");
    }
}

/// Raises the open-file limit to `want` (the soft limit, and the hard one when it is
/// lower); a higher limit is kept, as HAProxy never shrinks it. An error when the
/// system refuses: HAProxy 2.6 refuses to start then (`strict-limits` is its default).
pub fn raise_nofile(want: u64) -> Result<(), String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(format!(
                "ulimit-n {want}: cannot read the open-file limit: {}",
                std::io::Error::last_os_error()
            ));
        }
        if lim.rlim_cur == libc::RLIM_INFINITY || lim.rlim_cur >= want {
            return Ok(());
        }
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: lim.rlim_max.max(want),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            return Err(format!(
                "ulimit-n {want}: cannot raise the open-file limit to {want}, limit is {} (hard {}): {}",
                lim.rlim_cur,
                lim.rlim_max,
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Chroots and changes identity as `p` says; nothing to do when it says nothing. Run
/// once every socket is open and before any shard serves. An error stops the start.
pub fn confine(p: &ProcessSettings) -> Result<(), String> {
    if p.chroot.is_none() && p.uid.is_none() && p.gid.is_none() {
        return Ok(());
    }
    if let Some(dir) = &p.chroot {
        // Local time (access logs, `ltime`) comes from /etc/localtime, read once:
        // read it while it can be found.
        // SAFETY: tzset only reads the environment and the zone file.
        unsafe { tzset() };
        nix::unistd::chroot(dir)
            .and_then(|()| nix::unistd::chdir("/"))
            .map_err(|e| format!("cannot chroot({}): {e}", dir.display()))?;
    }
    if let Some(gid) = p.gid {
        // Without supplementary groups, as HAProxy (the user's root groups would stay).
        if let Err(e) = nix::unistd::setgroups(&[]) {
            tracing::warn!(error = %e, "failed to drop supplementary groups");
        }
        nix::unistd::setgid(nix::unistd::Gid::from_raw(gid))
            .map_err(|e| format!("cannot set gid {gid}: {e}"))?;
    }
    if let Some(uid) = p.uid {
        nix::unistd::setuid(nix::unistd::Uid::from_raw(uid))
            .map_err(|e| format!("cannot set uid {uid}: {e}"))?;
    }
    tracing::info!(
        chroot = p.chroot.as_ref().map(|c| c.display().to_string()),
        uid = p.uid,
        gid = p.gid,
        "confined"
    );
    Ok(())
}

extern "C" {
    fn tzset();
}
