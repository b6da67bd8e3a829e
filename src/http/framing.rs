//! Message framing: how long a body is (RFC 9112 §6) and a streaming scanner that
//! finds the end of a chunked body while its bytes pass through unchanged.

/// How the body of one message is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Response body delimited by the server closing the connection.
    UntilClose,
}

impl Framing {
    fn is_length(self) -> bool {
        matches!(self, Framing::Length(_))
    }
}

/// A body in progress: feed it bytes as they arrive, it says how many belong to it.
#[derive(Debug)]
pub struct BodyProgress {
    framing: Framing,
    remaining: u64,
    chunked: ChunkedScanner,
    done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyError;

impl BodyProgress {
    /// A body with `framing`; a chunked one may have at most `max_chunks` chunks.
    pub fn new(framing: Framing, max_chunks: u32) -> Self {
        BodyProgress {
            framing,
            remaining: match framing {
                Framing::Length(n) => n,
                _ => 0,
            },
            chunked: ChunkedScanner::new(max_chunks),
            done: matches!(framing, Framing::None | Framing::Length(0)),
        }
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Bytes still to come of a Content-Length body (`None` for other framings).
    pub fn remaining_length(&self) -> Option<u64> {
        (self.framing.is_length() && !self.done).then_some(self.remaining)
    }

    /// Counts `n` bytes of a Content-Length body that went by without being fed (they
    /// were spliced from socket to socket).
    pub fn skip(&mut self, n: u64) {
        debug_assert!(self.framing.is_length() && n <= self.remaining);
        self.remaining -= n.min(self.remaining);
        self.done = self.remaining == 0;
    }

    /// Consumes the prefix of `data` that belongs to this body; returns its length.
    /// Bytes beyond the end of the body are left for the caller.
    pub fn feed(&mut self, data: &[u8]) -> Result<usize, BodyError> {
        if self.done {
            return Ok(0);
        }
        match self.framing {
            Framing::None => Ok(0),
            Framing::Length(_) => {
                let n = (data.len() as u64).min(self.remaining) as usize;
                self.remaining -= n as u64;
                self.done = self.remaining == 0;
                Ok(n)
            }
            Framing::Chunked => {
                let n = self.chunked.feed(data)?;
                self.done = self.chunked.is_done();
                Ok(n)
            }
            Framing::UntilClose => Ok(data.len()),
        }
    }

    /// The peer closed: fine only for a close-delimited body.
    pub fn on_eof(&mut self) -> Result<(), BodyError> {
        if self.framing == Framing::UntilClose {
            self.done = true;
        }
        if self.done {
            Ok(())
        } else {
            Err(BodyError)
        }
    }
}

/// Where the scanner is in `chunk-size [chunk-ext] CRLF chunk-data CRLF ... last-chunk
/// trailer-section CRLF` (RFC 9112 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum ChunkState {
    #[default]
    SizeStart,
    Size,
    /// Whitespace after the size: `;` or CR next.
    SizeBws,
    /// After `;`: whitespace, then an extension name.
    ExtNameStart,
    ExtName,
    /// After a name: whitespace, `=`, `;` or CR.
    ExtNameBws,
    /// After `=`: whitespace, then a token or a quoted string.
    ExtValueStart,
    ExtToken,
    ExtQuoted,
    ExtQuotedEscape,
    /// After a value: whitespace, `;` or CR.
    ExtValueEnd,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    FinalLf,
    Done,
}

/// Walks chunk-size lines, data, CRLFs and trailers without copying anything, and
/// refuses anything RFC 9112 does not allow (bare LF, junk in an extension, a trailer
/// line without a field name).
#[derive(Debug, Default)]
pub struct ChunkedScanner {
    state: ChunkState,
    size: u64,
    digits: u8,
    /// Length of the current chunk-size line or trailer line.
    line: u32,
    chunks: u32,
    max_chunks: u32,
}

/// Longest chunk-size we accept, in hex digits (16 = u64).
const MAX_SIZE_DIGITS: u8 = 16;
/// Longest chunk-size line (with its extensions) or trailer line we accept.
const MAX_LINE: u32 = 4096;

/// A `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

impl ChunkedScanner {
    /// A scanner that refuses a body of more than `max_chunks` chunks (the last,
    /// empty one included).
    pub fn new(max_chunks: u32) -> Self {
        ChunkedScanner {
            max_chunks,
            ..Default::default()
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes bytes up to the end of the chunked body; returns how many were used.
    pub fn feed(&mut self, data: &[u8]) -> Result<usize, BodyError> {
        use ChunkState::*;
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            match self.state {
                Done => break,
                Data => {
                    let take = (self.size.min((data.len() - i) as u64)) as usize;
                    self.size -= take as u64;
                    i += take;
                    if self.size == 0 {
                        self.state = DataCr;
                    }
                    continue;
                }
                _ => {}
            }
            if matches!(
                self.state,
                SizeStart
                    | Size
                    | SizeBws
                    | ExtNameStart
                    | ExtName
                    | ExtNameBws
                    | ExtValueStart
                    | ExtToken
                    | ExtQuoted
                    | ExtQuotedEscape
                    | ExtValueEnd
                    | TrailerName
                    | TrailerValue
            ) {
                self.line += 1;
                if self.line > MAX_LINE {
                    return Err(BodyError);
                }
            }
            self.state = match (self.state, b) {
                (SizeStart | Size, _) if hex(b).is_some() => {
                    if self.digits >= MAX_SIZE_DIGITS {
                        return Err(BodyError);
                    }
                    self.size = (self.size << 4) | hex(b).unwrap_or(0) as u64;
                    self.digits += 1;
                    Size
                }
                (SizeStart, _) => return Err(BodyError),
                (Size | SizeBws, b';') => ExtNameStart,
                (Size | SizeBws, b'\r') => SizeLf,
                (Size | SizeBws, _) if is_ws(b) => SizeBws,
                (ExtNameStart, _) if is_ws(b) => ExtNameStart,
                (ExtNameStart | ExtName, _) if is_tchar(b) => ExtName,
                (ExtName | ExtNameBws, _) if is_ws(b) => ExtNameBws,
                (ExtName | ExtNameBws, b'=') => ExtValueStart,
                (ExtName | ExtNameBws | ExtToken | ExtValueEnd, b';') => ExtNameStart,
                (ExtName | ExtNameBws | ExtToken | ExtValueEnd, b'\r') => SizeLf,
                (ExtValueStart, _) if is_ws(b) => ExtValueStart,
                (ExtValueStart, b'"') => ExtQuoted,
                (ExtValueStart | ExtToken, _) if is_tchar(b) => ExtToken,
                (ExtToken | ExtValueEnd, _) if is_ws(b) => ExtValueEnd,
                (ExtQuoted, b'"') => ExtValueEnd,
                (ExtQuoted, b'\\') => ExtQuotedEscape,
                (ExtQuoted, b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff) => ExtQuoted,
                (ExtQuotedEscape, b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff) => ExtQuoted,
                (SizeLf, b'\n') => {
                    self.digits = 0;
                    self.line = 0;
                    self.chunks += 1;
                    if self.chunks > self.max_chunks {
                        return Err(BodyError);
                    }
                    if self.size == 0 {
                        TrailerStart
                    } else {
                        Data
                    }
                }
                (DataCr, b'\r') => DataLf,
                (DataLf, b'\n') => {
                    self.size = 0;
                    SizeStart
                }
                (TrailerStart, b'\r') => FinalLf,
                (TrailerStart | TrailerName, _) if is_tchar(b) => TrailerName,
                (TrailerName, b':') => TrailerValue,
                (TrailerValue, b'\r') => TrailerLf,
                (TrailerValue, b'\t' | 0x20..=0x7e | 0x80..=0xff) => TrailerValue,
                (TrailerLf, b'\n') => {
                    self.line = 0;
                    TrailerStart
                }
                (FinalLf, b'\n') => {
                    self.state = Done;
                    i += 1;
                    break;
                }
                _ => return Err(BodyError),
            };
            i += 1;
        }
        Ok(i)
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(input: &[u8], step: usize) -> Result<(usize, bool), BodyError> {
        let mut s = ChunkedScanner::new(u32::MAX);
        let mut used = 0;
        while used < input.len() && !s.is_done() {
            let end = (used + step).min(input.len());
            let n = s.feed(&input[used..end])?;
            used += n;
            if n == 0 {
                break;
            }
        }
        Ok((used, s.is_done()))
    }

    #[test]
    fn finds_the_end_byte_by_byte_and_at_once() {
        let body =
            b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: y\r\n\r\nGET / HTTP/1.1\r\n";
        let end = body.len() - b"GET / HTTP/1.1\r\n".len();
        for step in [1, 2, 3, 7, body.len()] {
            assert_eq!(scan_all(body, step).unwrap(), (end, true), "step {step}");
        }
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
    fn chunk_count_is_bounded() {
        let body = b"1\r\na\r\n1\r\nb\r\n0\r\n\r\n";
        let mut s = ChunkedScanner::new(3);
        assert_eq!(s.feed(body), Ok(body.len()));
        let mut s = ChunkedScanner::new(2);
        assert_eq!(s.feed(body), Err(BodyError));
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
        ];
        for b in bad {
            assert!(
                scan_all(b, 1).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(b)
            );
        }
    }

    #[test]
    fn length_bodies_stop_at_their_end() {
        let mut p = BodyProgress::new(Framing::Length(4), 10);
        assert_eq!(p.feed(b"ab").unwrap(), 2);
        assert_eq!(p.feed(b"cdNEXT").unwrap(), 2);
        assert!(p.is_done());
        assert!(BodyProgress::new(Framing::Length(3), 10).on_eof().is_err());
        assert!(BodyProgress::new(Framing::UntilClose, 10).on_eof().is_ok());
    }
}
