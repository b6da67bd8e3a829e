//! HTTP/2 frames read as the bytes of an HTTP/1.1 message: its head (translated by the
//! side that owns the stream), then its body as DATA frames arrive, chunk-framed when
//! it has no length (a trailing HEADERS frame becomes the chunked trailer), then the
//! end. A DATA frame's bytes are released to the peer's window once they were read
//! (so they are on their way on), so the peer sends at the reader's pace.
//!
//! Reads complete or stay pending without a half-done state: a reader may drop one at
//! a deadline without losing bytes.

use std::io;

use bytes::Buf;
use h2::RecvStream;

pub struct H2In {
    /// Bytes ready to be read: the head, then each chunk or DATA frame.
    stage: Vec<u8>,
    stage_pos: usize,
    /// DATA bytes already in `stage` but not yet released to the peer's window.
    unreleased: usize,
    /// The body still to come (`None`: all of it was staged).
    body: Option<RecvStream>,
    chunked: bool,
    /// A DATA frame was staged (the body can no longer be handed over whole).
    started: bool,
}

impl H2In {
    /// `head`: the translated head; `body`: the stream's body, if it has one, and
    /// whether it is chunk-framed.
    pub fn new(head: Vec<u8>, body: Option<RecvStream>, chunked: bool) -> Self {
        H2In {
            stage: head,
            stage_pos: 0,
            unreleased: 0,
            body,
            chunked,
            started: false,
        }
    }

    /// The body, untouched, for a reader that forwards the frames themselves; then
    /// the message ends after its head. `None` once a byte of it was staged.
    pub fn take_body(&mut self) -> Option<RecvStream> {
        if self.started {
            return None;
        }
        self.body.take()
    }

    /// Copies staged bytes to `dst` (at most `room`), fetching the next DATA frame
    /// first when none are staged. 0: the message is over.
    pub async fn read_raw(&mut self, dst: *mut u8, room: usize) -> io::Result<usize> {
        if self.stage_pos == self.stage.len() {
            self.release();
            self.stage.clear();
            self.stage_pos = 0;
            self.next_frame().await?;
        }
        let n = (self.stage.len() - self.stage_pos).min(room);
        // SAFETY: the caller's buffer has `room` writable bytes at `dst`.
        unsafe { std::ptr::copy_nonoverlapping(self.stage[self.stage_pos..].as_ptr(), dst, n) };
        self.stage_pos += n;
        if self.stage_pos == self.stage.len() {
            // The reader has the frame's bytes: the peer may send more.
            self.release();
        }
        Ok(n)
    }

    /// Gives the peer's window back for DATA bytes that were read.
    fn release(&mut self) {
        if self.unreleased > 0 {
            if let Some(b) = &mut self.body {
                let _ = b.flow_control().release_capacity(self.unreleased);
            }
            self.unreleased = 0;
        }
    }

    /// Stages the next DATA frame (chunk-framed when chunked), or the end of the body.
    async fn next_frame(&mut self) -> io::Result<()> {
        let Some(body) = &mut self.body else {
            return Ok(());
        };
        self.started = true;
        loop {
            match body.data().await {
                Some(Ok(data)) if data.is_empty() => continue,
                Some(Ok(data)) => {
                    self.unreleased = data.len();
                    if self.chunked {
                        self.stage
                            .extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                    }
                    self.stage.extend_from_slice(data.chunk());
                    if self.chunked {
                        self.stage.extend_from_slice(b"\r\n");
                    }
                    return Ok(());
                }
                Some(Err(e)) => {
                    return Err(io::Error::new(io::ErrorKind::ConnectionReset, e));
                }
                None => break,
            }
        }
        if self.chunked {
            // Awaited before anything is staged: a read dropped meanwhile stages
            // nothing twice.
            let trailers = body
                .trailers()
                .await
                .map_err(|e| io::Error::new(io::ErrorKind::ConnectionReset, e))?;
            self.stage.extend_from_slice(b"0\r\n");
            for (name, value) in trailers.iter().flatten() {
                super::push_field(&mut self.stage, name.as_str().as_bytes(), value.as_bytes());
            }
            self.stage.extend_from_slice(b"\r\n");
        }
        self.body = None;
        Ok(())
    }
}
