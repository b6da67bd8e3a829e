//! Unit tests of `framing`.

use super::*;

/// Feeds `input` as a connection loop does, `step` bytes per read: what a feed
/// leaves unused waits in the buffer for the next read. Returns the input bytes
/// the body took, whether it ended, and the bytes forwarded.
fn pass(input: &[u8], step: usize, max_chunks: u32) -> Result<(usize, bool, Vec<u8>), BodyError> {
    let mut s = ChunkedScanner::new(max_chunks);
    let (mut buf, mut out) = (Vec::new(), Vec::new());
    let (mut read, mut used_total) = (0, 0);
    while !s.is_done() && read < input.len() {
        let end = (read + step).min(input.len());
        buf.extend_from_slice(&input[read..end]);
        read = end;
        let fed = s.feed(&mut buf)?;
        out.extend_from_slice(&buf[..fed.forward]);
        used_total += fed.used;
        buf.drain(..fed.used);
    }
    Ok((used_total, s.is_done(), out))
}

fn scan_all(input: &[u8], step: usize) -> Result<(usize, bool), BodyError> {
    pass(input, step, u32::MAX).map(|(used, done, _)| (used, done))
}

#[test]
fn finds_the_end_byte_by_byte_and_at_once() {
    let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: y\r\n\r\nGET / HTTP/1.1\r\n";
    let end = body.len() - b"GET / HTTP/1.1\r\n".len();
    for step in [1, 2, 3, 7, body.len()] {
        let (used, done, out) = pass(body, step, u32::MAX).unwrap();
        assert_eq!((used, done), (end, true), "step {step}");
        assert_eq!(out, &body[..end], "step {step}: forwarded unchanged");
    }
}

#[test]
fn framing_fields_in_trailers_are_cut_out() {
    let body = b"5\r\nhello\r\n0\r\nContent-Length: 5\r\nX-T: 1\r\ntransfer-encoding: chunked\r\nX-U: 2\r\nCONTENT-LENGTH:0\r\n\r\nNEXT";
    let want = b"5\r\nhello\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\n";
    for step in [1, 2, 3, 5, 11, body.len()] {
        let (used, done, out) = pass(body, step, u32::MAX).unwrap();
        assert_eq!((used, done), (body.len() - 4, true), "step {step}");
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(want),
            "step {step}"
        );
    }
    // A field whose name only starts like a framing one stays.
    let body = b"0\r\nContent-Lengths: 1\r\nX-Content-Length: 2\r\n\r\n";
    assert_eq!(pass(body, 1, 10).unwrap().2, body);
}

#[test]
fn a_trailer_name_cut_by_a_read_is_held_back() {
    let mut s = ChunkedScanner::new(10);
    // `Content-Len` may become `Content-Length`: not consumed yet.
    let mut data = b"1\r\na\r\n0\r\nContent-Len".to_vec();
    assert_eq!(
        s.feed(&mut data).unwrap(),
        Fed {
            used: 9,
            forward: 9
        }
    );
    // A dropped line cut by a read: consumed, never forwarded.
    let mut data = b"Content-Length: 12".to_vec();
    assert_eq!(
        s.feed(&mut data).unwrap(),
        Fed {
            used: 18,
            forward: 0
        }
    );
    let mut data = b"34\r\nX-T: 1".to_vec();
    assert_eq!(
        s.feed(&mut data).unwrap(),
        Fed {
            used: 10,
            forward: 6
        }
    );
    assert_eq!(&data[..6], b"X-T: 1");
    assert!(!s.is_done());
    let mut data = b"\r\n\r\n".to_vec();
    assert_eq!(
        s.feed(&mut data).unwrap(),
        Fed {
            used: 4,
            forward: 4
        }
    );
    assert!(s.is_done());
    // A name that cannot be a framing one is not held back.
    let mut s = ChunkedScanner::new(10);
    let mut data = b"0\r\nX-Some-Long-Field-Nam".to_vec();
    assert_eq!(
        s.feed(&mut data).unwrap(),
        Fed {
            used: 24,
            forward: 24
        }
    );
}

#[test]
fn accepts_well_formed_extensions() {
    let good: &[&[u8]] = &[
        b"5;a\r\nhello\r\n0\r\n\r\n",
        b"5 ; a = b ; c=\"q \\\" d\"\r\nhello\r\n0;last\r\n\r\n",
        b"5 \r\nhello\r\n0\r\nA: b\r\nC:\r\n\r\n",
    ];
    for b in good {
        assert_eq!(
            scan_all(b, 1).map(|r| r.1),
            Ok(true),
            "{:?}",
            String::from_utf8_lossy(b)
        );
    }
}

#[test]
fn chunk_count_is_bounded_by_data_chunks() {
    // Two data chunks and the last, empty one: a limit of 2 lets it through.
    let body = b"1\r\na\r\n1\r\nb\r\n0\r\n\r\n";
    assert_eq!(pass(body, body.len(), 2).map(|r| r.1), Ok(true));
    assert_eq!(pass(body, body.len(), 1), Err(BodyError));
    assert_eq!(pass(b"0\r\n\r\n", 5, 0).map(|r| r.1), Ok(true));
}

#[test]
fn chunk_sizes_stop_below_2_pow_63() {
    assert_eq!(
        scan_all(b"7fffffffffffffff\r\nabc", 100).unwrap(),
        (21, false)
    );
    assert!(scan_all(b"8000000000000000\r\nabc", 100).is_err());
    assert!(scan_all(b"ffffffffffffffff\r\nabc", 100).is_err());
    // Leading zeros count as digits (at most 16).
    assert_eq!(scan_all(b"000000000000000f\r\n", 100).unwrap(), (18, false));
}

#[test]
fn long_lines_are_refused() {
    let mut ext = b"5;a=".to_vec();
    ext.extend(std::iter::repeat_n(b'x', 5000));
    ext.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    assert!(scan_all(&ext, 100).is_err());
    let mut trailer = b"0\r\nX: ".to_vec();
    trailer.extend(std::iter::repeat_n(b'y', 5000));
    trailer.extend_from_slice(b"\r\n\r\n");
    assert!(scan_all(&trailer, 100).is_err());
    assert!(scan_all(&trailer, trailer.len()).is_err());
}

#[test]
fn large_sizes_and_partial() {
    let (used, done) = scan_all(b"1000\r\nabc", 100).unwrap();
    assert_eq!((used, done), (9, false));
}

#[test]
fn rejects_malformed() {
    let bad: &[&[u8]] = &[
        b"\r\n",
        b"zz\r\n",
        b"5\nhello\r\n",
        b"5\r\nhelloXY",
        b"11111111111111111\r\n",
        b"0\r\nbad\x01trailer\r\n\r\n",
        b"-1\r\n",
        // Bad extensions: no name, junk after the size, a bare LF, an open quote.
        b"5;\r\nhello\r\n0\r\n\r\n",
        b"5 junk\r\nhello\r\n0\r\n\r\n",
        b"5;a=\r\nhello\r\n0\r\n\r\n",
        b"5;a=\"x\r\nhello\r\n0\r\n\r\n",
        b"5;a\nhello\r\n0\r\n\r\n",
        b"5;a=b c\r\nhello\r\n0\r\n\r\n",
        // Missing CRLF after the data, bare LF after it.
        b"5\r\nhello0\r\n\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        // A trailer line that is not a field.
        b"0\r\nGET / HTTP/1.1\r\n\r\n",
        b"0\r\n: x\r\n\r\n",
        b"0\r\n\n",
        b"0\r\nContent-Length: 5\n\r\n",
    ];
    for b in bad {
        for step in [1, b.len()] {
            assert!(
                scan_all(b, step).is_err(),
                "{:?} accepted (step {step})",
                String::from_utf8_lossy(b)
            );
        }
    }
}

#[test]
fn length_bodies_stop_at_their_end() {
    let mut p = BodyProgress::new(Framing::Length(4), 10);
    assert_eq!(p.feed(&mut b"ab".to_vec()).unwrap(), Fed::all(2));
    assert_eq!(p.feed(&mut b"cdNEXT".to_vec()).unwrap(), Fed::all(2));
    assert!(p.is_done());
    assert!(BodyProgress::new(Framing::Length(3), 10).on_eof().is_err());
    assert!(BodyProgress::new(Framing::UntilClose, 10).on_eof().is_ok());
}
