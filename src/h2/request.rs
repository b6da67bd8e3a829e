//! An HTTP/2 request's head written as the HTTP/1.1 head the HTTP path reads
//! (RFC 9113 §8.3.1): `:method` and `:path` make the request line, `:authority`
//! becomes `Host`, cookie crumbs are joined into one `Cookie`, and the body is framed
//! by its `Content-Length` or, without one, chunked. The h2 crate has already refused
//! what RFC 9113 §8 calls malformed (connection-specific fields, `TE` other than
//! `trailers`, uppercase names, CR/LF/NUL in values, repeated, missing or misplaced
//! pseudo-headers, a `Content-Length` the DATA frames disagree with) with a stream
//! error; what it lets through and HTTP/1.1 cannot carry is refused here.

use http::request::Parts;
use http::{header, Method};

use crate::h2map::push_field as field;

/// How the translated request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReqBody {
    /// No body (the HEADERS frame ended the stream).
    None,
    /// As many bytes as its `Content-Length` says, passed as they come.
    Length,
    /// No `Content-Length`: each DATA frame becomes a chunk.
    Chunked,
}

/// A request HTTP/1.1 cannot carry, refused before anything reaches a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// `CONNECT` (a tunnel over a stream) is not served yet.
    Connect,
    /// A `Host` field that disagrees with `:authority` (RFC 9113 §8.3.1).
    HostMismatch,
}

impl Refused {
    /// The status the stream is answered with.
    pub(super) fn status(self) -> u16 {
        match self {
            Refused::Connect => 501,
            Refused::HostMismatch => 400,
        }
    }
}

/// Writes the HTTP/1.1 head of `req` into `out`; says how its body is framed.
/// `end_of_stream`: the HEADERS frame carried END_STREAM (no body follows).
pub(super) fn translate(
    req: &Parts,
    end_of_stream: bool,
    out: &mut Vec<u8>,
) -> Result<ReqBody, Refused> {
    if req.method == Method::CONNECT {
        return Err(Refused::Connect);
    }
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b' ');
    let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(if target.is_empty() {
        b"/"
    } else {
        target.as_bytes()
    });
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let authority = req.uri.authority().map(|a| a.as_str());
    if let Some(a) = authority {
        for h in req.headers.get_all(header::HOST) {
            if !h.as_bytes().eq_ignore_ascii_case(a.as_bytes()) {
                return Err(Refused::HostMismatch);
            }
        }
        field(out, b"host", a.as_bytes());
    }
    let mut length = false;
    let mut cookies = 0;
    crate::h2map::fields_in_order(&req.headers, &req.extensions, |name, value| {
        match name {
            n if n == header::HOST && authority.is_some() => return,
            // Joined below, in their order.
            n if n == header::COOKIE => {
                cookies += 1;
                return;
            }
            // `te: trailers` (all h2 lets through) passes, as HAProxy 2.6 passes it:
            // gRPC servers look for it. So does `expect: 100-continue`: a client that
            // waits for the server's `100` gets it (`response::ResponseHead`), as
            // from HAProxy, instead of waiting out its own delay.
            n if n == header::CONTENT_LENGTH => length = true,
            _ => {}
        }
        field(out, name.as_str().as_bytes(), value.as_bytes());
    });
    if cookies > 0 {
        // RFC 9113 §8.2.3: crumbs are joined with "; " for HTTP/1.1.
        out.extend_from_slice(b"cookie: ");
        for (i, c) in req.headers.get_all(header::COOKIE).iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b"; ");
            }
            out.extend_from_slice(c.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    let body = if length {
        ReqBody::Length
    } else if end_of_stream {
        // A method that usually has a body says it has none, as HAProxy's h2 mux does.
        if matches!(req.method, Method::POST | Method::PUT | Method::PATCH) {
            field(out, b"content-length", b"0");
        }
        ReqBody::None
    } else {
        field(out, b"transfer-encoding", b"chunked");
        ReqBody::Chunked
    };
    out.extend_from_slice(b"\r\n");
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(req: http::Request<()>, eos: bool) -> (Result<ReqBody, Refused>, String) {
        let (parts, ()) = req.into_parts();
        let mut out = Vec::new();
        let r = translate(&parts, eos, &mut out);
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn authority_becomes_host_and_cookies_are_joined() {
        let req = http::Request::get("https://example.test/a?b=1")
            .header("cookie", "a=1")
            .header("x-y", "z")
            .header("cookie", "b=2")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (r, h) = head(req, true);
        assert_eq!(r, Ok(ReqBody::None));
        assert_eq!(
            h,
            // `te: trailers` passes (gRPC servers need it; HAProxy passes it too).
            "GET /a?b=1 HTTP/1.1\r\nhost: example.test\r\nx-y: z\r\nte: trailers\r\ncookie: a=1; b=2\r\n\r\n"
        );
    }

    #[test]
    fn a_body_without_length_is_chunked() {
        let req = http::Request::post("http://h/up").body(()).unwrap();
        let (r, h) = head(req, false);
        assert_eq!(r, Ok(ReqBody::Chunked));
        assert!(h.ends_with("transfer-encoding: chunked\r\n\r\n"), "{h}");
        let req = http::Request::post("http://h/up")
            .header("content-length", "5")
            .body(())
            .unwrap();
        assert_eq!(head(req, false).0, Ok(ReqBody::Length));
        let req = http::Request::post("http://h/up").body(()).unwrap();
        let (r, h) = head(req, true);
        assert_eq!(r, Ok(ReqBody::None));
        assert!(h.ends_with("content-length: 0\r\n\r\n"), "{h}");
    }

    #[test]
    fn connect_and_a_host_disagreeing_with_authority_are_refused() {
        let req = http::Request::connect("h:443").body(()).unwrap();
        assert_eq!(head(req, true).0, Err(Refused::Connect));
        let req = http::Request::get("http://a.test/")
            .header("host", "b.test")
            .body(())
            .unwrap();
        assert_eq!(head(req, true).0, Err(Refused::HostMismatch));
    }
}
