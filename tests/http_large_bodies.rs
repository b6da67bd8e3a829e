//! 64 MiB bodies both ways, Content-Length and chunked, checked byte for byte (a
//! sha256 computed by the backend for uploads, the deterministic pattern for downloads).

use crate::common;

use std::io::{BufWriter, Write};
use std::sync::OnceLock;
use std::time::Duration;

use common::wire::write_pattern_pieces;
use common::*;

const SIZE: u64 = 64 * 1024 * 1024;

fn expected_sha() -> &'static str {
    static SHA: OnceLock<String> = OnceLock::new();
    SHA.get_or_init(|| pattern_sha256(SIZE))
}

fn setup() -> (TestBackend, RingLb) {
    let b = TestBackend::start("big");
    let lb = RingLb::start(&http_config(&[b.addr()], ""));
    (b, lb)
}

fn client(lb: &RingLb) -> HttpClient {
    let mut c = HttpClient::connect(lb.addr("web"));
    c.set_timeout(Duration::from_secs(60));
    c
}

#[test]
fn upload_64mib_content_length() {
    let (_b, lb) = setup();
    let mut c = client(&lb);
    c.send(format!(
        "POST /sha256 HTTP/1.1\r\nHost: t\r\nContent-Length: {SIZE}\r\n\r\n"
    ));
    {
        let mut w = BufWriter::with_capacity(256 * 1024, c.stream());
        write_pattern_pieces(SIZE, &[65536], |p| w.write_all(p)).expect("upload body");
        w.flush().expect("flush upload");
    }
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), expected_sha());
    // The connection is still usable.
    assert_eq!(c.get("/").status, 200);
}

#[test]
fn upload_64mib_chunked() {
    let (_b, lb) = setup();
    let mut c = client(&lb);
    c.send("POST /sha256 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    {
        let mut w = BufWriter::with_capacity(256 * 1024, c.stream());
        // Odd chunk sizes on purpose: 1-byte chunks and chunks larger than any buffer.
        write_pattern_pieces(SIZE, &[65536, 1, 4093, 100_000, 17], |p| {
            write!(w, "{:x}\r\n", p.len())?;
            w.write_all(p)?;
            w.write_all(b"\r\n")
        })
        .expect("upload body");
        w.write_all(b"0\r\n\r\n").unwrap();
        w.flush().expect("flush upload");
    }
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), expected_sha());
    assert_eq!(c.get("/").status, 200);
}

fn check_download(path: &str, n: u64) {
    let (_b, lb) = setup();
    let mut c = client(&lb);
    let r = c.get(path);
    assert_eq!(r.status, 200, "{path}");
    assert_eq!(
        r.body.len() as u64,
        n,
        "{path}: body length (framing {:?})",
        r.framing
    );
    if let Some(i) = pattern_mismatch(&r.body, 0) {
        panic!("{path}: body differs from the pattern at byte {i}");
    }
}

#[test]
fn download_64mib_content_length() {
    check_download(&format!("/bytes/{SIZE}"), SIZE);
}

#[test]
fn download_64mib_chunked() {
    check_download(&format!("/bytes-chunked/{SIZE}"), SIZE);
}

#[test]
fn download_16mib_close_delimited() {
    let n = 16 * 1024 * 1024;
    check_download(&format!("/bytes-close/{n}"), n);
}
