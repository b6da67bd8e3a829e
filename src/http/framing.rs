//! Message framing: how long a body is (RFC 9112 §6) and a streaming scanner that
//! finds the end of a chunked body while its bytes pass through unchanged, except
//! `Content-Length` and `Transfer-Encoding` trailer fields, which are cut out (as
//! HAProxy drops them: a framing field after the body can only mislead a recipient).

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

/// What one `feed` did with the bytes it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    /// Bytes of the input that belong to the body and were dealt with.
    pub used: usize,
    /// How many bytes at the start of the input are to be forwarded: `used`, less the
    /// trailer fields cut out (the kept bytes were moved to the front in place).
    pub forward: usize,
}

impl Fed {
    fn all(n: usize) -> Fed {
        Fed {
            used: n,
            forward: n,
        }
    }
}

impl BodyProgress {
    /// A body with `framing`; a chunked one may have at most `max_chunks` data chunks.
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

    /// Consumes the prefix of `data` that belongs to this body. Bytes beyond the end of
    /// the body are left for the caller; so is, while the body is not done, the start
    /// of a trailer line that `data` does not hold whole: the caller presents those
    /// bytes again with more after them.
    #[inline]
    pub fn feed(&mut self, data: &mut [u8]) -> Result<Fed, BodyError> {
        self.feed_with(data, |_| {})
    }

    /// `feed`, also handing the body's payload to `on_data` as it goes by (the data
    /// of a chunked body without its framing; trailer fields are not payload).
    #[inline]
    pub fn feed_with(
        &mut self,
        data: &mut [u8],
        mut on_data: impl FnMut(&[u8]),
    ) -> Result<Fed, BodyError> {
        if self.done {
            return Ok(Fed::all(0));
        }
        match self.framing {
            Framing::None => Ok(Fed::all(0)),
            Framing::Length(_) => {
                let n = (data.len() as u64).min(self.remaining) as usize;
                self.remaining -= n as u64;
                self.done = self.remaining == 0;
                on_data(&data[..n]);
                Ok(Fed::all(n))
            }
            Framing::Chunked => {
                let fed = self.chunked.feed_with(data, on_data)?;
                self.done = self.chunked.is_done();
                Ok(fed)
            }
            Framing::UntilClose => {
                on_data(data);
                Ok(Fed::all(data.len()))
            }
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

/// Walks chunk-size lines, data, CRLFs and trailers without copying anything (but to
/// cut out a framing trailer field), and refuses anything RFC 9112 does not allow
/// (bare LF, junk in an extension, a trailer line without a field name, a chunk of
/// 2^63 bytes or more).
#[derive(Debug, Default)]
pub struct ChunkedScanner {
    state: ChunkState,
    size: u64,
    digits: u8,
    /// Length of the current chunk-size line or trailer line.
    line: u32,
    /// Data chunks so far (the last, empty chunk is not one).
    chunks: u32,
    max_chunks: u32,
    /// Length of the trailer field name being read.
    name_len: u32,
    /// The trailer line being read names Content-Length or Transfer-Encoding: it is
    /// cut out.
    drop_line: bool,
}

/// `transfer-encoding`, the longer of the two framing field names.
const FRAMING_NAME_MAX: usize = 17;

fn is_framing_field(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"transfer-encoding")
}

/// Longest chunk-size we accept, in hex digits (16 = u64).
const MAX_SIZE_DIGITS: u8 = 16;
/// Largest chunk size, as for Content-Length: 2^63 - 1 (a signed 64-bit length, what
/// HAProxy and most servers hold a length in).
const MAX_CHUNK_SIZE: u64 = i64::MAX as u64;
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
    /// A scanner that refuses a body of more than `max_chunks` data chunks (the last,
    /// empty one is not counted: a limit of N lets exactly N data chunks through).
    pub fn new(max_chunks: u32) -> Self {
        ChunkedScanner {
            max_chunks,
            ..Default::default()
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes bytes up to the end of the chunked body. A `Content-Length` or
    /// `Transfer-Encoding` trailer line is cut out: the bytes after it move up, and
    /// `forward` counts what is left to send. To tell, a trailer field name that `data`
    /// ends inside is not consumed while it may still be one of those (17 bytes at
    /// most): `used` stops at its line's start; present it again with more.
    #[inline]
    pub fn feed(&mut self, data: &mut [u8]) -> Result<Fed, BodyError> {
        self.feed_with(data, |_| {})
    }

    /// `feed`, handing each run of chunk data to `on_data` as it is passed.
    #[inline]
    pub fn feed_with(
        &mut self,
        data: &mut [u8],
        mut on_data: impl FnMut(&[u8]),
    ) -> Result<Fed, BodyError> {
        use ChunkState::*;
        // `data[..kept]` is output; `data[from..i]` is input not yet moved to it (the
        // two are the same bytes until a trailer line is cut out).
        let mut kept = 0;
        let mut from = 0;
        // Where the current trailer line began in `data` (0: before it).
        let mut line_start = 0;
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            match self.state {
                Done => break,
                Data => {
                    let take = (self.size.min((data.len() - i) as u64)) as usize;
                    on_data(&data[i..i + take]);
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
                    if self.digits >= MAX_SIZE_DIGITS || self.size > MAX_CHUNK_SIZE >> 4 {
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
                    if self.size == 0 {
                        line_start = i + 1;
                        TrailerStart
                    } else {
                        self.chunks += 1;
                        if self.chunks > self.max_chunks {
                            return Err(BodyError);
                        }
                        Data
                    }
                }
                (DataCr, b'\r') => DataLf,
                (DataLf, b'\n') => {
                    self.size = 0;
                    SizeStart
                }
                (TrailerStart, b'\r') => FinalLf,
                (TrailerStart, _) if is_tchar(b) => {
                    line_start = i;
                    self.name_len = 1;
                    TrailerName
                }
                (TrailerName, _) if is_tchar(b) => {
                    self.name_len += 1;
                    TrailerName
                }
                (TrailerName, b':') => {
                    // A name this short is all in `data` (a cut one is held back).
                    let n = self.name_len as usize;
                    self.drop_line = n <= FRAMING_NAME_MAX && is_framing_field(&data[i - n..i]);
                    TrailerValue
                }
                (TrailerValue, b'\r') => TrailerLf,
                (TrailerValue, b'\t' | 0x20..=0x7e | 0x80..=0xff) => TrailerValue,
                (TrailerLf, b'\n') => {
                    self.line = 0;
                    if std::mem::take(&mut self.drop_line) {
                        // Cut the line out: what came before it is output, what comes
                        // after it will be.
                        move_up(data, from..line_start, &mut kept);
                        from = i + 1;
                    }
                    line_start = i + 1;
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
        if self.drop_line {
            // Inside a line being cut out: consumed, not forwarded.
            move_up(data, from..line_start, &mut kept);
        } else {
            if self.state == TrailerName && self.name_len as usize <= FRAMING_NAME_MAX {
                // A field name cut short that may be a framing one: give it back, to
                // be scanned again (at most 17 bytes) with what follows.
                self.state = TrailerStart;
                self.line = 0;
                i = line_start;
            }
            move_up(data, from..i, &mut kept);
        }
        Ok(Fed {
            used: i,
            forward: kept,
        })
    }
}

/// Appends `data[range]` to the output at `data[..*kept]` (a move only once something
/// was cut out before it).
fn move_up(data: &mut [u8], range: std::ops::Range<usize>, kept: &mut usize) {
    let n = range.len();
    if range.start != *kept {
        data.copy_within(range, *kept);
    }
    *kept += n;
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
mod tests;
