//! No descriptor leaks: after 20,000 requests, 2,000 of them abandoned by their client
//! in the middle of the response, the process's open fds return to within 10 of their
//! idle count.

use crate::common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;

#[test]
fn fds_return_to_idle_after_aborted_responses() {
    let b = TestBackend::start("b");
    let lb = RingLb::start(&format!(
        "[runtime]\nshards = 2\n[pool]\nidle_timeout = \"300ms\"\n[frontend.web]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"app\"\n[backend.app]\n[[backend.app.server]]\naddr = \"{}\"\n",
        b.addr()
    ));
    let addr = lb.addr("web");
    let pid = lb.pid();
    let idle = fd_count(pid);

    let workers: Vec<_> = (0..4)
        .map(|w| {
            std::thread::spawn(move || {
                let mut c = HttpClient::connect(addr);
                for i in 0..4_500 {
                    if i % 9 == 0 && i / 9 < 500 {
                        // 500 per worker: read a little of a large response, then vanish.
                        let mut s = std::net::TcpStream::connect(addr).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        s.write_all(b"GET /bytes/4000000 HTTP/1.1\r\nHost: x\r\n\r\n")
                            .unwrap();
                        let mut buf = [0u8; 4096];
                        let _ = s.read(&mut buf);
                        drop(s);
                    } else {
                        assert_eq!(c.get("/").status, 200, "worker {w} request {i}");
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    // Idle pooled connections age out (300 ms, purged every second).
    wait_for("fds back near idle", Duration::from_secs(10), || {
        fd_count(pid) <= idle + 10
    });
}
