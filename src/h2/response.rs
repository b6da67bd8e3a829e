//! The response side of a stream: the HTTP/1.1 response the HTTP path writes (the
//! server's, rewritten by the response rules, or a local reply) is parsed back and sent
//! as HEADERS and DATA frames: connection-specific fields are dropped (RFC 9113
//! §8.2.2), a chunked body is decoded (its trailer fields become a trailing HEADERS
//! frame), an interim response (100, 103) becomes a HEADERS frame of its own, and
//! DATA goes out only as the client's flow-control window allows, so a
//! slow client holds the server back through the HTTP path's own writes.

use std::io;

use bytes::Bytes;
use h2::server::SendResponse;
use http::{Response, StatusCode};

use crate::h2map::out::{broken, copy_fields};
use crate::h2map::{H1Out, Head, HeadSink, Phase};

/// The longest response head accepted back (ringlb wrote it: a local bound only).
const HEAD_MAX: usize = 256 * 1024;

pub(super) struct Responder {
    out: H1Out,
    head: ResponseHead,
}

/// The response head's side: the stream to answer on.
struct ResponseHead {
    respond: Option<SendResponse<Bytes>>,
    /// The request was a HEAD: the response has no body, whatever it says.
    head_request: bool,
}

impl Responder {
    pub(super) fn new(respond: SendResponse<Bytes>, head_request: bool) -> Self {
        Responder {
            out: H1Out::default(),
            head: ResponseHead {
                respond: Some(respond),
                head_request,
            },
        }
    }

    /// Answers with a status and no body (a request refused before the HTTP path).
    pub(super) fn status_only(&mut self, status: u16) {
        if let (Some(mut r), Ok(s)) = (self.head.respond.take(), StatusCode::from_u16(status)) {
            let mut res = Response::new(());
            *res.status_mut() = s;
            let _ = r.send_response(res, true);
        }
        self.out.done();
    }

    /// Refuses the stream unprocessed (REFUSED_STREAM: the client may retry it
    /// elsewhere).
    pub(super) fn refuse(&mut self) {
        if let Some(mut r) = self.head.respond.take() {
            r.send_reset(h2::Reason::REFUSED_STREAM);
        }
        self.out.done();
    }

    /// Consumes what it can of `src` (at least one byte, waiting for flow-control
    /// window when body data is next).
    pub(super) async fn write(&mut self, src: &[u8]) -> io::Result<usize> {
        self.out.write(src, &mut self.head).await
    }

    /// The HTTP path is done writing: a body that runs until the close ends here.
    pub(super) fn finish(&mut self) {
        self.out.finish();
    }

    /// Ready once the client reset the stream (or its connection died).
    pub(super) async fn reset(&mut self) {
        std::future::poll_fn(|cx| match (&mut self.head.respond, self.out.send_mut()) {
            (_, Some(s)) => s.poll_reset(cx).map(drop),
            (Some(r), None) => r.poll_reset(cx).map(drop),
            (None, None) => std::task::Poll::Pending,
        })
        .await
    }

    /// The stream is dropped: a response cut short is reset, so the client cannot
    /// take it for whole.
    pub(super) fn abort(&mut self) {
        if !self.out.abort(h2::Reason::INTERNAL_ERROR) {
            if let Some(r) = &mut self.head.respond {
                r.send_reset(h2::Reason::INTERNAL_ERROR);
            }
        }
    }
}

impl HeadSink for ResponseHead {
    fn head(&mut self, head: &[u8]) -> io::Result<Head> {
        let mut slots = [httparse::EMPTY_HEADER; 128];
        let mut res = httparse::Response::new(&mut slots);
        let len = match res.parse(head) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if head.len() <= HEAD_MAX => return Ok(Head::Partial),
            _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "response head")),
        };
        let code = res.code.unwrap_or(502);
        // An interim response (100 Continue, 103 Early Hints) goes out as a HEADERS
        // frame of its own, as HAProxy passes it; the final one follows. (A 101 cannot
        // come: an HTTP/2 stream asks for no upgrade.)
        if (100..200).contains(&code) {
            if let (Some(respond), Ok(status)) = (&mut self.respond, StatusCode::from_u16(code)) {
                let mut interim = Response::new(());
                *interim.status_mut() = status;
                copy_fields(head, res.headers, interim.headers_mut(), |_, _| false);
                // A stream the client reset meanwhile: the final response finds out.
                let _ = respond.send_informational(interim);
            }
            return Ok(Head::Interim(len));
        }
        let mut out = Response::new(());
        *out.status_mut() = StatusCode::from_u16(code).map_err(|_| broken("status"))?;
        let (chunked, framing) = copy_fields(head, res.headers, out.headers_mut(), |_, _| false);
        let bodiless = self.head_request || code == 204 || code == 304;
        let phase = Phase::body(bodiless, chunked, framing);
        if matches!(phase, Phase::Chunked(_)) {
            out.headers_mut().remove(http::header::CONTENT_LENGTH);
        }
        let end = matches!(phase, Phase::Done);
        let mut respond = self.respond.take().ok_or_else(|| broken("response sent"))?;
        let send = respond
            .send_response(out, end)
            .map_err(|_| broken("stream reset"))?;
        Ok(Head::Sent {
            len,
            send: Some(send),
            phase,
        })
    }
}
