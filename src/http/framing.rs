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
    pub fn new(framing: Framing) -> Self {
        BodyProgress {
            framing,
            remaining: match framing {
                Framing::Length(n) => n,
                _ => 0,
            },
            chunked: ChunkedScanner::default(),
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum ChunkState {
    #[default]
    SizeStart,
    Size,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLf,
    FinalLf,
    Done,
}

/// Walks chunk-size lines, data, CRLFs and trailers without copying anything.
#[derive(Debug, Default)]
pub struct ChunkedScanner {
    state: ChunkState,
    size: u64,
    digits: u8,
}

/// Longest chunk-size we accept, in hex digits (16 = u64).
const MAX_SIZE_DIGITS: u8 = 16;
/// Longest chunk extension or trailer line we accept.
const MAX_LINE: u64 = 4096;

impl ChunkedScanner {
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
                SizeStart | Size => match hex(b) {
                    Some(v) => {
                        if self.digits >= MAX_SIZE_DIGITS {
                            return Err(BodyError);
                        }
                        self.size = (self.size << 4) | v as u64;
                        self.digits += 1;
                        self.state = Size;
                    }
                    None if self.state == SizeStart => return Err(BodyError),
                    None => match b {
                        b';' | b' ' | b'\t' => {
                            self.state = Ext;
                            self.digits = 0;
                        }
                        b'\r' => self.state = SizeLf,
                        _ => return Err(BodyError),
                    },
                },
                Ext => match b {
                    b'\r' => self.state = SizeLf,
                    b'\t' | 0x20..=0x7e | 0x80..=0xff => {
                        // `digits` doubles as the extension length counter here.
                        self.digits = self.digits.saturating_add(1);
                        if self.digits as u64 >= MAX_LINE.min(255) {
                            return Err(BodyError);
                        }
                    }
                    _ => return Err(BodyError),
                },
                SizeLf => {
                    if b != b'\n' {
                        return Err(BodyError);
                    }
                    self.digits = 0;
                    self.state = if self.size == 0 { TrailerStart } else { Data };
                }
                DataCr => {
                    if b != b'\r' {
                        return Err(BodyError);
                    }
                    self.state = DataLf;
                }
                DataLf => {
                    if b != b'\n' {
                        return Err(BodyError);
                    }
                    self.state = SizeStart;
                    self.size = 0;
                }
                TrailerStart => {
                    self.state = if b == b'\r' { FinalLf } else { TrailerLine };
                    self.size = 0;
                    if b != b'\r' && (b < 0x20 && b != b'\t') {
                        return Err(BodyError);
                    }
                }
                TrailerLine => match b {
                    b'\r' => self.state = TrailerLf,
                    b'\t' | 0x20..=0x7e | 0x80..=0xff => {
                        self.size += 1;
                        if self.size > MAX_LINE {
                            return Err(BodyError);
                        }
                    }
                    _ => return Err(BodyError),
                },
                TrailerLf => {
                    if b != b'\n' {
                        return Err(BodyError);
                    }
                    self.state = TrailerStart;
                }
                FinalLf => {
                    if b != b'\n' {
                        return Err(BodyError);
                    }
                    self.state = Done;
                    i += 1;
                    break;
                }
            }
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
        let mut s = ChunkedScanner::default();
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
        let mut p = BodyProgress::new(Framing::Length(4));
        assert_eq!(p.feed(b"ab").unwrap(), 2);
        assert_eq!(p.feed(b"cdNEXT").unwrap(), 2);
        assert!(p.is_done());
        assert!(BodyProgress::new(Framing::Length(3)).on_eof().is_err());
        assert!(BodyProgress::new(Framing::UntilClose).on_eof().is_ok());
    }
}
