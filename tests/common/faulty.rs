//! A misbehaving HTTP server for the fault tests: what it does depends on the request
//! path. `deaf_server` accepts and never reads.
//!
//! | path | behaviour |
//! | --- | --- |
//! | `/reset-mid` | a head announcing 100,000 bytes, 1,000 of them, then a reset |
//! | `/reset-early` | a reset right after the request, no response byte |
//! | `/garbage` | bytes that are not HTTP, then a close |
//! | `/over-cl` | `hello` with `Content-Length: 5`, then a second response nobody asked for |
//! | `/stall` | reads the request, never answers (until the balancer closes) |
//! | `/close-next` | answers, keeps the connection, and closes it without answering when the next request arrives on it |
//! | anything else | `200 good` with keep-alive |

use std::io::Write;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::Duration;

use super::raw::{read_head, RawServer};

/// Closes `s` with a reset (SO_LINGER 0) instead of a FIN.
pub fn reset(s: TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a properly sized value.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(s);
}

/// Waits until the peer closed its side (POLLRDHUP), whatever is left unread.
pub fn wait_peer_close(s: &TcpStream) {
    let mut p = libc::pollfd {
        fd: s.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    loop {
        // SAFETY: poll on one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, 60_000) };
        if n != 0 || p.revents != 0 {
            return;
        }
    }
}

pub fn faulty_server() -> RawServer {
    RawServer::start(|mut s| {
        let mut served = 0;
        while let Some(head) = read_head(&mut s) {
            let path = head
                .split(|&b| b == b' ')
                .nth(1)
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default();
            served += 1;
            match path.as_str() {
                "/reset-mid" => {
                    let mut r = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
                    r.extend_from_slice(&[b'x'; 1000]);
                    let _ = s.write_all(&r);
                    std::thread::sleep(Duration::from_millis(5));
                    return reset(s);
                }
                "/reset-early" => return reset(s),
                "/garbage" => {
                    let _ = s.write_all(b"this is not http at all\r\n\r\nreally not\r\n");
                    return;
                }
                "/over-cl" => {
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nsmuggle",
                    );
                }
                "/stall" => return wait_peer_close(&s),
                "/close-next" if served > 1 => return,
                _ => {
                    if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood")
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    })
}

/// Accepts connections and never reads from them (each held until the peer closes).
pub fn deaf_server() -> RawServer {
    RawServer::start(|s| wait_peer_close(&s))
}
