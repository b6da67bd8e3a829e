//! The compressor of one response: a deflate stream (flate2 on zlib-rs) in the
//! algorithm's wrapper, written out as HTTP/1.1 chunks, one per batch of input
//! (flushed with a sync flush, as HAProxy flushes per block of data, so a client sees
//! each part of a slow body as it comes).
//!
//! Why zlib-rs: flate2's backends that build without a C library are zlib-rs and
//! miniz_oxide. zlib-rs is a port of zlib-ng (its SIMD longest-match, CRC-32 and
//! Adler-32), compatible with zlib's output. Measured on this machine (level 1, a
//! 1 MiB log-like text in 16 KiB blocks with a sync flush each, one core, median of
//! 3): zlib-rs 1.3 ms per MiB at 3.7:1, miniz_oxide 3.1 ms per MiB at 4.2:1; at
//! HAProxy's default level (1), speed is what the operator asked for.
//! One stream's state is about 256 KiB (zlib's figure for a 32 KiB window at the
//! default memory level): it exists only while a response is being compressed.

use flate2::{Compress, Compression, FlushCompress, Status};

use crate::config::compression::Algo;

/// Room for the longest chunk-size line: 8 hex digits (4 GiB) and CRLF.
const SIZE_LINE: usize = 10;

#[derive(Debug)]
pub(super) struct EncodeError;

pub(super) struct Encoder {
    /// `None`: identity (bytes copied as they are).
    z: Option<Compress>,
    /// Input went in since the last flush (a sync flush of nothing would still add
    /// an empty block).
    pending: bool,
}

impl Encoder {
    pub(super) fn new(algo: Algo, level: u32) -> Encoder {
        let level = Compression::new(level);
        Encoder {
            z: match algo {
                Algo::Identity => None,
                Algo::Deflate => Some(Compress::new(level, true)),
                Algo::RawDeflate => Some(Compress::new(level, false)),
                Algo::Gzip => Some(Compress::new_gzip(level, 15)),
            },
            pending: false,
        }
    }

    /// Starts a chunk at the end of `out`; returns where it starts (for `end_chunk`).
    pub(super) fn begin_chunk(out: &mut Vec<u8>) -> usize {
        let start = out.len();
        out.extend_from_slice(&[0; SIZE_LINE]);
        start
    }

    /// Compresses `input` into the chunk begun at the end of `out`.
    pub(super) fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.pending |= !input.is_empty();
        self.run(input, out, FlushCompress::None)
    }

    /// Ends the chunk begun at `start`: flushes what the compressor holds (finishes
    /// the stream when `last`, then adds the last chunk). A chunk with nothing in it
    /// is taken out again.
    pub(super) fn end_chunk(
        &mut self,
        out: &mut Vec<u8>,
        start: usize,
        last: bool,
    ) -> Result<(), EncodeError> {
        let flush = if last {
            FlushCompress::Finish
        } else {
            FlushCompress::Sync
        };
        if last || std::mem::take(&mut self.pending) {
            self.run(&[], out, flush)?;
        }
        let n = out.len() - start - SIZE_LINE;
        if n == 0 {
            out.truncate(start);
        } else {
            let mut line = [0u8; SIZE_LINE];
            let len = size_line(n, &mut line);
            out[start..start + len].copy_from_slice(&line[..len]);
            out.copy_within(start + SIZE_LINE.., start + len);
            out.truncate(out.len() - (SIZE_LINE - len));
            out.extend_from_slice(b"\r\n");
        }
        if last {
            out.extend_from_slice(b"0\r\n\r\n");
        }
        Ok(())
    }

    /// Feeds `input` to the compressor, its output appended to `out` (grown as
    /// needed: by about the input's size, as compressed data rarely exceeds it).
    fn run(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        flush: FlushCompress,
    ) -> Result<(), EncodeError> {
        let Some(z) = self.z.as_mut() else {
            out.extend_from_slice(input);
            return Ok(());
        };
        loop {
            out.reserve(input.len() + 64);
            let before = z.total_in();
            let status = z.compress_vec(input, out, flush).map_err(|_| EncodeError)?;
            input = &input[(z.total_in() - before) as usize..];
            let full = out.len() == out.capacity();
            match status {
                Status::StreamEnd => return Ok(()),
                // Finishing goes on to the end of the stream.
                _ if flush == FlushCompress::Finish => {}
                // Everything taken, and the flush had room to complete.
                _ if input.is_empty() && !full => return Ok(()),
                _ => {}
            }
        }
    }
}

/// Writes `n` in hex and CRLF into `line`; returns its length.
fn size_line(n: usize, line: &mut [u8; SIZE_LINE]) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = ((usize::BITS - n.leading_zeros()).div_ceil(4) as usize).max(1);
    for i in 0..digits {
        line[digits - 1 - i] = HEX[(n >> (4 * i)) & 0xf];
    }
    line[digits] = b'\r';
    line[digits + 1] = b'\n';
    digits + 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Decodes a chunked body into its payload.
    fn unchunk(mut b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let nl = b.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&b[..nl]).unwrap(), 16).unwrap();
            b = &b[nl + 2..];
            if n == 0 {
                assert_eq!(b, b"\r\n");
                return out;
            }
            out.extend_from_slice(&b[..n]);
            assert_eq!(&b[n..n + 2], b"\r\n");
            b = &b[n + 2..];
        }
    }

    fn encode(algo: Algo, parts: &[&[u8]]) -> Vec<u8> {
        let mut enc = Encoder::new(algo, 1);
        let mut out = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let start = Encoder::begin_chunk(&mut out);
            enc.push(p, &mut out).unwrap();
            enc.end_chunk(&mut out, start, i + 1 == parts.len())
                .unwrap();
        }
        unchunk(&out)
    }

    #[test]
    fn each_algorithm_round_trips() {
        let text: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("line {i} of the body\n").into_bytes())
            .collect();
        let parts: Vec<&[u8]> = text.chunks(16 * 1024).collect();
        let mut got = Vec::new();
        let gz = encode(Algo::Gzip, &parts);
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, text);
        assert!(gz.len() < text.len() / 4);
        got.clear();
        let z = encode(Algo::Deflate, &parts);
        flate2::read::ZlibDecoder::new(&z[..])
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, text);
        got.clear();
        let raw = encode(Algo::RawDeflate, &parts);
        flate2::read::DeflateDecoder::new(&raw[..])
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, text);
        assert_eq!(encode(Algo::Identity, &parts), text);
    }

    #[test]
    fn empty_and_tiny_bodies() {
        let mut got = Vec::new();
        let gz = encode(Algo::Gzip, &[b""]);
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut got)
            .unwrap();
        assert!(got.is_empty());
        let gz = encode(Algo::Gzip, &[b"a", b"", b"b"]);
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, b"ab");
    }

    #[test]
    fn size_lines() {
        let line = |n| {
            let mut l = [0; SIZE_LINE];
            let len = size_line(n, &mut l);
            l[..len].to_vec()
        };
        assert_eq!(line(1), b"1\r\n");
        assert_eq!(line(0x1a2b), b"1a2b\r\n");
        assert_eq!(line(0xffff_ffff), b"ffffffff\r\n");
    }
}
