//! Question: how fast is a chunked body decoded and validated? Measured in bytes of
//! body (framing included) per second, for many small chunks and for few large ones.
//!
//! Each iteration walks one 256 KiB chunked body through `BodyProgress` with
//! `Framing::Chunked`, fed in 16 KiB slices as the connection loop reads them, to the
//! final `0\r\n\r\n` (with a trailer where the case says so). Nothing is copied: the
//! scanner only finds where the body ends and rejects malformed framing.
//!
//! Run: `cargo bench --bench chunked` (criterion; figures in target/criterion/, a
//! recent run in benches/results/micro.md).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringlb::http::framing::{BodyProgress, Framing};

/// Payload bytes of every body.
const PAYLOAD: usize = 256 * 1024;
/// What one read of the connection loop hands over at most (its response buffer).
const READ: usize = 16 * 1024;

/// A chunked body of `PAYLOAD` bytes in chunks of `chunk` bytes.
fn chunked_body(chunk: usize, extension: &str, trailer: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(PAYLOAD + PAYLOAD / chunk * 16 + 64);
    let mut left = PAYLOAD;
    let mut fill = b'a';
    while left > 0 {
        let n = chunk.min(left);
        body.extend_from_slice(format!("{n:x}{extension}\r\n").as_bytes());
        body.resize(body.len() + n, fill);
        body.extend_from_slice(b"\r\n");
        fill = if fill == b'z' { b'a' } else { fill + 1 };
        left -= n;
    }
    body.extend_from_slice(format!("0\r\n{trailer}\r\n").as_bytes());
    body
}

/// Feeds `body` in `READ`-sized slices (what a feed leaves unused comes again at the
/// start of the next one, as in the connection loop); returns the bytes the body
/// claimed and whether its end was found. The body is only written to where a framing
/// trailer field is cut out, which these bodies have none of.
fn decode(body: &mut [u8]) -> (usize, bool) {
    let mut p = BodyProgress::new(
        Framing::Chunked,
        ringlb::config::Limits::default().max_chunks,
    );
    let mut used = 0;
    while !p.is_done() {
        let end = (used + READ).min(body.len());
        match p.feed(&mut body[used..end]) {
            Ok(fed) if fed.used > 0 => used += fed.used,
            _ => break,
        }
    }
    (used, p.is_done())
}

fn bench_chunked(c: &mut Criterion) {
    let cases = [
        ("16B_chunks", chunked_body(16, "", "")),
        ("256B_chunks", chunked_body(256, "", "")),
        ("4KiB_chunks", chunked_body(4096, "", "")),
        ("64KiB_chunks", chunked_body(64 * 1024, "", "")),
        (
            "256B_chunks_ext_trailer",
            chunked_body(256, ";name=value", "X-Checksum: 8f14e45fceea167a\r\n"),
        ),
    ];
    let mut group = c.benchmark_group("chunked_decode");
    for (name, mut body) in cases {
        // The whole body, and nothing more, must be recognised as the body.
        assert_eq!(decode(&mut body), (body.len(), true), "{name}");
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| decode(black_box(&mut body)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_chunked);
criterion_main!(benches);
