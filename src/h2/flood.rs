//! Flood defences of one HTTP/2 connection, at the frame layer under the h2 crate: a
//! thin wrapper of the client's stream that reads the 9-byte header of every frame as
//! its bytes pass (both ways; no copy, no allocation) and counts, per time window, what
//! costs the proxy work but the client nothing: PING and SETTINGS frames, empty DATA
//! frames that do not end their stream, CONTINUATION frames of one header block,
//! streams the client resets before their response started (Rapid Reset,
//! CVE-2023-44487), and streams ringlb resets itself because of the client's frames
//! (MadeYouReset, CVE-2025-8671). Past a budget the connection gets a GOAWAY
//! (ENHANCE_YOUR_CALM) of the wrapper's own, written between two of the h2 crate's
//! frames, and ends. The h2 crate's own limits (resets of streams not yet accepted,
//! CONTINUATION frames per block, empty DATA frames, locally-errored resets) stay in
//! force under these; when one of them ends the connection, the cause is read back from
//! the debug data of the GOAWAY it writes, so every connection ended for abuse is
//! counted by cause (`Counters::h2_calm_*`).

use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::tally;
use crate::shard::Shard;
use crate::stats::Counters;

/// What ended a connection with ENHANCE_YOUR_CALM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cause {
    Ping,
    Settings,
    EmptyData,
    Continuation,
    RapidReset,
    LocalResets,
}

/// A budget: at most `max` events per `window_ms` milliseconds (a fixed window).
struct Budget {
    max: u32,
    window_ms: u64,
}

/// PING frames (not acks): 100 a second, as Sozu.
const PING: Budget = Budget {
    max: 100,
    window_ms: 1000,
};
/// SETTINGS frames (not acks): 50 a second, as Sozu.
const SETTINGS: Budget = Budget {
    max: 50,
    window_ms: 1000,
};
/// Empty DATA frames without END_STREAM: 100 in 10 s (the h2 crate allows 100 over
/// the connection's life; Sozu's glitch budget is 100).
const EMPTY_DATA: Budget = Budget {
    max: 100,
    window_ms: 10_000,
};
/// Streams the client resets before their response began: 50 in 10 s (Sozu: 50).
const EARLY_RESETS: Budget = Budget {
    max: 50,
    window_ms: 10_000,
};
/// Streams ringlb resets: 100 in 10 s (the h2 crate: 1024 over the connection's life).
const LOCAL_RESETS: Budget = Budget {
    max: 100,
    window_ms: 10_000,
};
/// CONTINUATION frames of one header block (Sozu: 20; the h2 crate allows fewer when
/// the header list limit needs fewer, and ends the connection first).
const CONTINUATIONS: u32 = 20;
/// A header block not finished within this long ends the connection (checked as
/// frames arrive).
const BLOCK_MS: u64 = 5_000;
/// Streams whose response HEADERS were sent are remembered among the last this many
/// stream ids the client opened (`Answered`), to tell a reset of a stream being
/// answered (fine) from one reset before its answer (Rapid Reset).
const ANSWERED: u32 = 128;

/// The client's streams (odd ids) answered, among the `ANSWERED` ids up to the highest
/// answered: one bit each (16 bytes, where a list of ids took 512 in every
/// connection). A stream older than that reads as not answered: its reset counts as
/// early, against a budget it cannot exhaust alone.
#[derive(Default)]
struct Answered {
    top: u32,
    /// Bit `i`: stream `top - 2 i` was answered.
    bits: u128,
}

impl Answered {
    fn mark(&mut self, id: u32) {
        if id > self.top {
            let shift = (id - self.top) / 2;
            self.bits = if shift >= ANSWERED {
                0
            } else {
                self.bits << shift
            };
            self.top = id;
            self.bits |= 1;
        } else if let Some(bit) = self.bit(id) {
            self.bits |= bit;
        }
    }

    fn contains(&self, id: u32) -> bool {
        id != 0 && id <= self.top && self.bit(id).is_some_and(|b| self.bits & b != 0)
    }

    /// The bit of `id` (not above `top`), if it is recent enough to have one.
    fn bit(&self, id: u32) -> Option<u128> {
        let i = (self.top - id) / 2;
        (i < ANSWERED).then(|| 1u128 << i)
    }
}

/// Counts events in a fixed window.
#[derive(Default)]
struct Window {
    start: u64,
    n: u32,
}

impl Window {
    /// Counts one event at `now_ms`; false once over `b`.
    fn hit(&mut self, b: &Budget, now_ms: u64) -> bool {
        if now_ms >= self.start + b.window_ms {
            self.start = now_ms;
            self.n = 0;
        }
        self.n += 1;
        self.n <= b.max
    }
}

use crate::h2map::frames::{error_code, written, Event, Head, Scan};
pub(super) use crate::h2map::frames::{
    DATA, GOAWAY, HEADERS, RST_STREAM, SETTINGS as SETTINGS_FRAME,
};
const PING_FRAME: u8 = 6;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// The counters of one connection.
#[derive(Default)]
struct Watch {
    ping: Window,
    settings: Window,
    empty_data: Window,
    early_resets: Window,
    local_resets: Window,
    /// CONTINUATION frames of the open header block, and when it began (ms).
    block: Option<(u32, u64)>,
    answered: Answered,
    /// The highest stream the client opened (GOAWAY's last stream id).
    last_stream: u32,
}

impl Watch {
    /// A frame from the client: `Some(cause)` when it is one too many.
    fn client(&mut self, h: Head, now: u64) -> Option<Cause> {
        if let Some((_, since)) = self.block {
            if now >= since + BLOCK_MS {
                return Some(Cause::Continuation);
            }
        }
        match h.kind {
            PING_FRAME if h.flags & ACK == 0 => (!self.ping.hit(&PING, now)).then_some(Cause::Ping),
            SETTINGS_FRAME if h.flags & ACK == 0 => {
                (!self.settings.hit(&SETTINGS, now)).then_some(Cause::Settings)
            }
            DATA if h.len == 0 && h.flags & END_STREAM == 0 => {
                (!self.empty_data.hit(&EMPTY_DATA, now)).then_some(Cause::EmptyData)
            }
            HEADERS => {
                if h.stream > self.last_stream && h.stream & 1 == 1 {
                    self.last_stream = h.stream;
                }
                if h.flags & END_HEADERS == 0 {
                    self.block = Some((0, now));
                }
                None
            }
            CONTINUATION => {
                if let Some((n, _)) = &mut self.block {
                    *n += 1;
                    if *n > CONTINUATIONS {
                        return Some(Cause::Continuation);
                    }
                }
                if h.flags & END_HEADERS != 0 {
                    self.block = None;
                }
                None
            }
            RST_STREAM if h.stream != 0 && !self.answered.contains(h.stream) => {
                (!self.early_resets.hit(&EARLY_RESETS, now)).then_some(Cause::RapidReset)
            }
            _ => None,
        }
    }

    /// A frame ringlb (the h2 crate) sends.
    fn server(&mut self, h: Head, now: u64) -> Option<Cause> {
        match h.kind {
            HEADERS => {
                self.answered.mark(h.stream);
                None
            }
            RST_STREAM if !self.local_resets.hit(&LOCAL_RESETS, now) => Some(Cause::LocalResets),
            _ => None,
        }
    }
}

/// The cause of an ENHANCE_YOUR_CALM GOAWAY the h2 crate wrote, from its debug data
/// (`None`: not ENHANCE_YOUR_CALM).
fn h2_cause(payload: &[u8]) -> Option<Cause> {
    let code = u32::from_be_bytes(payload.get(4..8)?.try_into().ok()?);
    if code != ENHANCE_YOUR_CALM {
        return None;
    }
    let debug = &payload[8..];
    Some(if debug.starts_with(b"too_many_resets") {
        Cause::RapidReset
    } else if debug.starts_with(b"too_many_continuations") || debug.starts_with(b"header_list") {
        Cause::Continuation
    } else if debug.starts_with(b"too_many_data_frames") {
        Cause::EmptyData
    } else {
        Cause::LocalResets
    })
}

/// The client's stream with the counters around it.
pub(super) struct Guard<T> {
    io: T,
    rx: Scan,
    tx: Scan,
    watch: Watch,
    /// Set once a budget is exceeded: the GOAWAY (its bytes, how many are written).
    calm: Option<([u8; 17], usize)>,
    /// Whether this connection was counted as ended for abuse.
    counted: bool,
    born: Instant,
    shard: Rc<Shard>,
    frontend: usize,
}

impl<T> Guard<T> {
    pub(super) fn new(io: T, shard: Rc<Shard>, frontend: usize) -> Self {
        let c = &shard.stats.frontends[frontend];
        Counters::inc(&c.h2_open_conns);
        Counters::inc(&c.h2_total_conns);
        Guard {
            io,
            // The client's 24-byte connection preface comes before its frames.
            rx: Scan::after(24),
            tx: Scan::default(),
            watch: Watch::default(),
            calm: None,
            counted: false,
            born: Instant::now(),
            shard,
            frontend,
        }
    }

    /// Milliseconds since the connection began (the windows' clock).
    fn now_ms(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    /// Counts `cause` (once per connection) and, for a budget of ours, prepares the
    /// GOAWAY.
    fn trip(&mut self, cause: Cause, ours: bool) {
        if self.counted && !ours {
            return;
        }
        if !self.counted {
            self.counted = true;
            self.count(cause);
        }
        tracing::debug!(
            shard = self.shard.id,
            ?cause,
            "h2 connection ended: ENHANCE_YOUR_CALM"
        );
        if ours && self.calm.is_none() {
            let mut g = [0u8; 17];
            g[2] = 8;
            g[3] = GOAWAY;
            g[9..13].copy_from_slice(&self.watch.last_stream.to_be_bytes());
            g[13..17].copy_from_slice(&ENHANCE_YOUR_CALM.to_be_bytes());
            self.calm = Some((g, 0));
            Counters::inc(&self.shard.stats.frontends[self.frontend].h2_goaway_resp);
        }
    }

    fn count(&self, cause: Cause) {
        let c = &self.shard.stats.frontends[self.frontend];
        Counters::inc(match cause {
            Cause::Ping => &c.h2_calm_ping,
            Cause::Settings => &c.h2_calm_settings,
            Cause::EmptyData => &c.h2_calm_empty_data,
            Cause::Continuation => &c.h2_calm_continuation,
            Cause::RapidReset => &c.h2_calm_rapid_reset,
            Cause::LocalResets => &c.h2_calm_local_resets,
        });
    }
}

impl<T> Drop for Guard<T> {
    fn drop(&mut self) {
        Counters::down(&self.shard.stats.frontends[self.frontend].h2_open_conns);
    }
}

impl<T: AsyncWrite + Unpin> Guard<T> {
    /// Once tripped: the GOAWAY goes out once the h2 crate is between two frames
    /// (it finishes the frame it is writing first: reads wait meanwhile), then every
    /// read and write fails, so the h2 crate ends the connection.
    fn poll_calm(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let Some((goaway, at)) = &mut self.calm else {
            return Poll::Ready(io::Error::other("not tripped"));
        };
        if !self.tx.at_boundary() {
            return Poll::Pending;
        }
        while *at < goaway.len() {
            match Pin::new(&mut self.io).poll_write(cx, &goaway[*at..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => break,
                Poll::Ready(Ok(n)) => *at += n,
                Poll::Pending => return Poll::Pending,
            }
        }
        if Pin::new(&mut self.io).poll_flush(cx).is_pending() {
            return Poll::Pending;
        }
        Poll::Ready(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "h2 flood: ENHANCE_YOUR_CALM",
        ))
    }

    /// Scans bytes the h2 crate wrote.
    fn wrote(&mut self, bytes: &[u8]) {
        let now = self.now_ms();
        let mut tripped = None;
        let mut calm_by_h2 = None;
        let watch = &mut self.watch;
        let c = &self.shard.stats.frontends[self.frontend];
        self.tx.feed(bytes, |e| {
            match e {
                Event::Head(h) => {
                    if tripped.is_none() {
                        tripped = watch.server(h, now);
                    }
                }
                Event::GoAway(p) => {
                    tally::goaway_sent(c, p.get(4..).map_or(0, error_code));
                    calm_by_h2 = calm_by_h2.or(h2_cause(p));
                }
                Event::Reset(stream, code) => {
                    tally::reset_sent(c, code);
                    // A malformed request refused before it was answered never was
                    // a stream (HAProxy refuses it before making one).
                    if code == tally::PROTOCOL_ERROR && !watch.answered.contains(stream) {
                        Counters::down(&c.h2_total_streams);
                    }
                }
            }
            true
        });
        if let Some(c) = calm_by_h2 {
            self.trip(c, false);
        }
        if let Some(c) = tripped {
            self.trip(c, true);
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Guard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.calm.is_some() {
            return this.poll_calm(cx).map(Err);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let now = this.now_ms();
        let mut tripped = None;
        let watch = &mut this.watch;
        let c = &this.shard.stats.frontends[this.frontend];
        this.rx.feed(&buf.filled()[before..], |e| {
            if let Event::Head(h) = e {
                tally::received(c, h.kind, h.stream);
                // A new stream (the h2 crate may drop one the client resets before
                // it is accepted: counted here).
                if h.kind == HEADERS && h.stream > watch.last_stream && h.stream & 1 == 1 {
                    Counters::inc(&c.h2_total_streams);
                }
                tripped = watch.client(h, now);
            }
            tripped.is_none()
        });
        match tripped {
            None => Poll::Ready(Ok(())),
            Some(cause) => {
                // None of this read reaches the h2 crate.
                buf.set_filled(before);
                this.trip(cause, true);
                this.poll_calm(cx).map(Err)
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guard<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        src: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut src = src;
        if this.calm.is_some() {
            // The frame being written is finished first, so the GOAWAY goes in
            // between two frames.
            match this.tx.to_boundary() {
                0 => return this.poll_calm(cx).map(Err),
                left => src = &src[..src.len().min(left)],
            }
        }
        let n = match Pin::new(&mut this.io).poll_write(cx, src) {
            Poll::Ready(Ok(n)) => n,
            other => return other,
        };
        this.wrote(&src[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.calm.is_some() {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            return Pin::new(this).poll_write(cx, first);
        }
        let n = match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => n,
            other => return other,
        };
        for b in written(bufs, n) {
            this.wrote(b);
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.calm.is_some() && this.tx.at_boundary() {
            return this.poll_calm(cx).map(Err);
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// Frames split at every byte are seen as whole frames, GOAWAY payload included.
    #[test]
    fn scan_sees_frames_split_anywhere() {
        let mut bytes = frame(PING_FRAME, 0, 0, &[7; 8]);
        let mut goaway = vec![0, 0, 0, 3, 0, 0, 0, 0xb];
        goaway.extend_from_slice(b"too_many_resets");
        bytes.extend(frame(GOAWAY, 0, 0, &goaway));
        bytes.extend(frame(DATA, 0, 5, &[]));
        bytes.extend(frame(RST_STREAM, 0, 7, &[0, 0, 0, 1]));
        let mut s = Scan::default();
        let mut seen = Vec::new();
        let mut causes = Vec::new();
        let mut resets = Vec::new();
        for b in &bytes {
            s.feed(std::slice::from_ref(b), |e| {
                match e {
                    Event::Head(h) => seen.push((h.kind, h.len, h.stream)),
                    Event::GoAway(p) => causes.push(h2_cause(p)),
                    Event::Reset(stream, code) => resets.push((stream, code)),
                }
                true
            });
        }
        assert_eq!(seen, vec![(6, 8, 0), (7, 23, 0), (0, 0, 5), (3, 4, 7)]);
        assert_eq!(causes, vec![Some(Cause::RapidReset)]);
        assert_eq!(resets, vec![(7, 1)]);
        assert!(s.at_boundary());
    }

    #[test]
    fn windows_refill() {
        let mut w = Window::default();
        for _ in 0..PING.max {
            assert!(w.hit(&PING, 10));
        }
        assert!(!w.hit(&PING, 10));
        assert!(w.hit(&PING, 10 + PING.window_ms));
    }

    #[test]
    fn answered_streams_are_remembered_among_the_last_128_ids() {
        let mut a = Answered::default();
        assert!(!a.contains(1));
        // Answered out of order: 5, then 1 and 3.
        a.mark(5);
        a.mark(1);
        assert!(a.contains(5) && a.contains(1) && !a.contains(3) && !a.contains(7));
        a.mark(3);
        assert!(a.contains(3));
        // 127 ids later, stream 1 is still within the window; one more and it is not.
        a.mark(1 + 2 * 127);
        assert!(a.contains(1) && a.contains(5) && !a.contains(251));
        a.mark(1 + 2 * 128);
        assert!(!a.contains(1) && a.contains(3) && a.contains(257));
        // A jump past the whole window forgets everything before it.
        a.mark(10_001);
        assert!(a.contains(10_001) && !a.contains(257) && !a.contains(0));
        // Too old to be marked: not remembered.
        a.mark(3);
        assert!(!a.contains(3));
    }

    #[test]
    fn a_reset_of_an_answered_stream_is_not_early() {
        let mut w = Watch::default();
        let rst = |s| Head {
            len: 4,
            kind: RST_STREAM,
            flags: 0,
            stream: s,
        };
        w.server(
            Head {
                len: 3,
                kind: HEADERS,
                flags: END_HEADERS,
                stream: 1,
            },
            0,
        );
        for _ in 0..1000 {
            assert_eq!(w.client(rst(1), 0), None);
        }
        let tripped = (0..=EARLY_RESETS.max).find_map(|i| w.client(rst(3 + 2 * i), 0));
        assert_eq!(tripped, Some(Cause::RapidReset));
    }
}
