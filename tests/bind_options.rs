//! haproxy.cfg bind socket options, each observed on the real binary: `defer-accept`
//! (a silent client is not accepted), `v4v6` (an IPv6 wildcard also takes IPv4
//! clients; without it, it does not), `mss N` (the segment size a client sees), and
//! `tfo` / `transparent` (read back from ringlb's own listening socket, duplicated
//! into the test with pidfd_getfd).

use crate::common;

use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use common::*;

/// ringlb on a frontend with `binds`, with its stats socket (the directory lives as
/// long as the returned guard).
fn start(binds: &str, backend: &TestBackend) -> (RingLb, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "global\n    nbthread 1\n    stats socket {}/s.sock level admin\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\nfrontend web\n{binds}    default_backend app\nbackend app\n    server s1 {}\n",
        dir.path().display(),
        backend.addr()
    );
    let file = dir.path().join("h.cfg");
    std::fs::write(&file, cfg).unwrap();
    let lb = RingLb::launch(&["-f", file.to_str().unwrap()], None, |l| {
        l.starts_with("ready")
    });
    (lb, dir)
}

fn show_info(dir: &tempfile::TempDir) -> String {
    cli(&dir.path().join("s.sock"), "show info")
}

/// An int socket option of ringlb's listening socket on `port`.
fn listener_opt(pid: libc::pid_t, port: u16, level: i32, name: i32) -> i32 {
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .find_map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            let local = c.get(1)?;
            let p = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
            (p == port && c.get(3) == Some(&"0A")).then(|| c.get(9).map(|s| s.to_string()))?
        })
        .expect("the listening socket in /proc/net/tcp");
    let target = format!("socket:[{inode}]");
    let fd = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == target))
        .and_then(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .expect("ringlb holds the listening socket");
    // SAFETY: plain syscalls; the returned descriptors are owned here.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0) as i32;
        assert!(
            pidfd >= 0,
            "pidfd_open: {}",
            std::io::Error::last_os_error()
        );
        let pidfd = OwnedFd::from_raw_fd(pidfd);
        let dup = libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) as i32;
        assert!(dup >= 0, "pidfd_getfd: {}", std::io::Error::last_os_error());
        let dup = OwnedFd::from_raw_fd(dup);
        let mut v: i32 = 0;
        let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
        let r = libc::getsockopt(
            dup.as_raw_fd(),
            level,
            name,
            (&mut v as *mut i32).cast(),
            &mut len,
        );
        assert_eq!(r, 0, "getsockopt: {}", std::io::Error::last_os_error());
        v
    }
}

#[test]
fn defer_accept_keeps_a_silent_client_out_until_it_sends() {
    let b = TestBackend::start("b");
    let (lb, dir) = start("    bind 127.0.0.1:0 defer-accept\n", &b);
    let addr = lb.addr("web");
    let silent = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let info = show_info(&dir);
    assert!(
        info.contains("\nCurrConns: 0\n"),
        "the silent client is not accepted yet:\n{info}"
    );
    drop(silent);
    assert_eq!(http_get(addr, "/").status, 200);
    assert!(
        listener_opt(
            lb.pid(),
            addr.port(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT
        ) > 0
    );
    // Without the option, the same silent client is accepted at once.
    let (lb2, dir2) = start("    bind 127.0.0.1:0\n", &b);
    let _silent = TcpStream::connect(lb2.addr("web")).unwrap();
    wait_for(
        "the silent client to be accepted",
        Duration::from_secs(5),
        || show_info(&dir2).contains("\nCurrConns: 1\n"),
    );
}

#[test]
fn v4v6_takes_ipv4_clients_on_an_ipv6_wildcard() {
    let b = TestBackend::start("b");
    let (lb, _d) = start("    bind :::0 v4v6\n", &b);
    let port = lb.addr("web").port();
    assert_eq!(
        http_get(SocketAddr::from(([127, 0, 0, 1], port)), "/").status,
        200
    );
    let (lb, _d2) = start("    bind :::0\n", &b);
    let port = lb.addr("web").port();
    assert!(
        TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).is_err(),
        "an IPv6 listener without v4v6 takes no IPv4 client"
    );
}

#[test]
fn mss_tfo_and_transparent_are_set_on_the_listener() {
    let b = TestBackend::start("b");
    let (lb, _d) = start("    bind 127.0.0.1:0 mss 1200 tfo transparent\n", &b);
    let addr = lb.addr("web");
    let c = TcpStream::connect(addr).unwrap();
    let mss = socket2::SockRef::from(&c).mss().unwrap();
    assert!(
        mss <= 1200,
        "the client sees the bind's segment size: {mss}"
    );
    assert_eq!(
        listener_opt(lb.pid(), addr.port(), libc::IPPROTO_TCP, libc::TCP_FASTOPEN),
        256
    );
    assert_eq!(
        listener_opt(
            lb.pid(),
            addr.port(),
            libc::IPPROTO_IP,
            libc::IP_TRANSPARENT
        ),
        1
    );
    // Without them: the defaults.
    let (lb, _d2) = start("    bind 127.0.0.1:0\n", &b);
    let port = lb.addr("web").port();
    assert_eq!(
        listener_opt(lb.pid(), port, libc::IPPROTO_TCP, libc::TCP_FASTOPEN),
        0
    );
    assert_eq!(
        listener_opt(lb.pid(), port, libc::IPPROTO_IP, libc::IP_TRANSPARENT),
        0
    );
    let c = TcpStream::connect(lb.addr("web")).unwrap();
    assert!(socket2::SockRef::from(&c).mss().unwrap() > 1200);
}
