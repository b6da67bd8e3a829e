//! A 1 GiB upload streams through the balancer: its resident memory stays flat, because
//! bodies are never buffered whole.

use crate::common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::wire::{pattern_slice, PATTERN_SLICE_MAX};
use common::{http_config, rss_kib, HttpClient, RingLb, TestBackend};

#[test]
fn one_gib_upload_keeps_rss_flat() {
    const SIZE: u64 = 1 << 30;
    let backend = TestBackend::start("b1");
    let lb = RingLb::start(&http_config(
        &[backend.addr()],
        "[timeout]\nclient = \"60s\"\nserver = \"60s\"\n",
    ));
    let pid = lb.pid();
    // Warm up: one small request so every lazily allocated buffer exists.
    let mut c = HttpClient::connect(lb.addr("web"));
    assert_eq!(c.get("/").status, 200);
    let before = rss_kib(pid);

    let peak = Arc::new(AtomicU64::new(before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    c.set_timeout(Duration::from_secs(120));
    c.send(format!(
        "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: {SIZE}\r\n\r\n"
    ));
    let mut sent = 0u64;
    while sent < SIZE {
        let len = ((SIZE - sent) as usize).min(PATTERN_SLICE_MAX);
        c.stream()
            .write_all(pattern_slice(sent, len))
            .expect("upload write");
        sent += len as u64;
    }
    let res = c.read_response();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(backend.requests(), 2);

    let growth = peak.load(Ordering::Relaxed).saturating_sub(before);
    assert!(
        growth < 16 * 1024,
        "RSS grew by {growth} KiB during a 1 GiB upload (before {before} KiB)"
    );
}
