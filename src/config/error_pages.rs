//! A proxy's custom error responses (`errorfile`, `errorfiles`, `http-error`,
//! `errorloc*` in haproxy.cfg): the table the data path looks a status up in, and the
//! errorfile format, checked and prepared at load as HAProxy 2.6 does.
//!
//! HAProxy picks a response by `http_error_message()`: the backend's page once a
//! backend was chosen, else (or when the backend has none for that status) the
//! frontend's, else its built-in page. Errors its HTTP/1 parser raises (a malformed
//! request: 400, `timeout http-request`: 408) never use a custom page; the stream's
//! errors (503 no server, 502 bad response, 504 server timeout) and the `deny` /
//! `tarpit` rules that use the default page do. Every response is prepared once here;
//! serving one copies shared bytes (nothing is formatted per request, unless an
//! `http-error` names a log-format).

use std::sync::Arc;

use crate::rules::action::{Body, Reply, ERROR_STATUSES};

/// Custom error responses by status; empty for most proxies.
#[derive(Debug, Clone, Default)]
pub struct ErrorPages(Vec<(u16, Arc<Reply>)>);

impl ErrorPages {
    /// The custom response for `status`, if this proxy has one.
    #[inline]
    pub fn get(&self, status: u16) -> Option<&Arc<Reply>> {
        if self.0.is_empty() {
            return None;
        }
        self.0.iter().find(|(s, _)| *s == status).map(|(_, r)| r)
    }

    /// Sets (or, with `None`, removes: HAProxy's built-in page again) the response
    /// for `status`; the last directive wins, as in HAProxy.
    pub fn set(&mut self, status: u16, reply: Option<Arc<Reply>>) {
        self.0.retain(|(s, _)| *s != status);
        if let Some(r) = reply {
            self.0.push((status, r));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &(u16, Arc<Reply>)> {
        self.0.iter()
    }
}

/// The status codes `errorfile`, `errorloc` and `http-error` accept.
pub fn customizable(status: u16) -> bool {
    ERROR_STATUSES.contains(&status)
}

/// An `errorfile`: a whole HTTP/1 response. HAProxy parses it into its internal
/// message at load and writes it out again, so the client gets the status line as
/// written, every header name in lower case, no `Connection` header of the file's
/// (the proxy decides the connection's fate: a response without `Content-Length`
/// ends it, with `connection: close` unless the status line says HTTP/1.0), and the
/// body as written. `max` is the largest file (`tune.bufsize`).
pub fn errorfile(raw: &[u8], file: &str, max: usize) -> Result<Reply, String> {
    if raw.len() > max {
        return Err(format!(
            "'{file}': larger than {max} bytes (tune.bufsize): unable to add payload into the HTX message"
        ));
    }
    let mut headers = [httparse::EMPTY_HEADER; 101];
    let mut res = httparse::Response::new(&mut headers);
    let n = match res.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return Err(format!(
                "'{file}': unable to parse headers (incomplete head)"
            ))
        }
        Err(e) => return Err(format!("'{file}': unable to parse headers ({e})")),
    };
    let status = res.code.unwrap_or(0);
    if status < 200 && status != 101 {
        return Err(format!(
            "'{file}': invalid http status code for an error message ({status})"
        ));
    }
    let body = &raw[n..];
    let bodyless = status == 204 || status == 304;
    let mut out = Vec::with_capacity(raw.len() + 32);
    // The status line as written (a bare LF ending becomes CRLF).
    let line_end = raw.iter().position(|&c| c == b'\n').unwrap_or(0);
    let line = raw[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&raw[..line_end]);
    out.extend_from_slice(line);
    out.extend_from_slice(b"\r\n");
    let mut length = None;
    for h in res.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        match name.as_str() {
            "connection" | "keep-alive" | "proxy-connection" | "upgrade" => continue,
            "transfer-encoding" => {
                return Err(format!(
                    "'{file}': a chunked error message is not supported: give it a content-length or no framing"
                ))
            }
            "content-length" => {
                let v = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or_else(|| format!("'{file}': invalid content-length"))?;
                if !bodyless && v != body.len() {
                    return Err(format!(
                        "'{file}': payload size does not match the announced content-length ({} != {v})",
                        body.len()
                    ));
                }
                length = Some(v);
            }
            _ => {}
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    let framed = length.is_some() || bodyless;
    let http10 = res.version == Some(0);
    if !framed && !http10 {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !bodyless {
        out.extend_from_slice(body);
    }
    Ok(Reply {
        status,
        content_type: None,
        body: Body::Empty,
        headers: Vec::new(),
        error_page: false,
        canned: Some(out.into()),
    })
}

/// Whether a local answer (head and body) says where it ends: a `content-length`, or
/// a status that has no body. One that does not (an errorfile without a length) ends
/// the connection, and already carries its `connection: close` (or HTTP/1.0).
pub fn framed(answer: &[u8]) -> bool {
    let head_end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(answer.len());
    let head = &answer[..head_end];
    let status = head.get(9..12).unwrap_or(b"000");
    if status == b"204" || status == b"304" || status.first() == Some(&b'1') {
        return true;
    }
    head.split(|&c| c == b'\n')
        .skip(1)
        .any(|l| l.len() > 15 && l[..15].eq_ignore_ascii_case(b"content-length:"))
}

/// `errorloc|errorloc302|errorloc303 CODE URL`: a redirect instead of the page.
pub fn errorloc(code: u16, url: &str) -> Reply {
    let (status, reason) = if code == 303 {
        (303, "See Other")
    } else {
        (302, "Found")
    };
    let out = format!(
        "HTTP/1.1 {status} {reason}\r\ncache-control: no-cache\r\ncontent-length: 0\r\nlocation: {url}\r\n\r\n"
    );
    Reply {
        status,
        content_type: None,
        body: Body::Empty,
        headers: Vec::new(),
        error_page: false,
        canned: Some(out.into_bytes().into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: &Reply) -> String {
        String::from_utf8_lossy(r.canned.as_deref().unwrap()).into_owned()
    }

    #[test]
    fn errorfile_is_rewritten_as_haproxy_sends_it() {
        let r = errorfile(
            b"HTTP/1.0 503 Service Unavailable\r\nCache-Control: no-cache\r\nConnection: close\r\nX-Custom: Yes\r\n\r\nbody\n",
            "f",
            16384,
        )
        .unwrap();
        assert_eq!(r.status, 503);
        assert!(!framed(r.canned.as_deref().unwrap()));
        assert_eq!(
            text(&r),
            "HTTP/1.0 503 Service Unavailable\r\ncache-control: no-cache\r\nx-custom: Yes\r\n\r\nbody\n"
        );
        let r = errorfile(b"HTTP/1.1 403 F\nContent-Type: a\n\nx", "f", 16384).unwrap();
        assert_eq!(
            text(&r),
            "HTTP/1.1 403 F\r\ncontent-type: a\r\nconnection: close\r\n\r\nx"
        );
        let r = errorfile(b"HTTP/1.1 429 T\r\nContent-Length: 2\r\n\r\nab", "f", 16384).unwrap();
        assert!(framed(r.canned.as_deref().unwrap()));
        assert_eq!(text(&r), "HTTP/1.1 429 T\r\ncontent-length: 2\r\n\r\nab");
    }

    #[test]
    fn bad_errorfiles_are_refused() {
        for (raw, what) in [
            (&b"garbage\n"[..], "unable to parse headers"),
            (
                b"HTTP/1.1 503 X\r\ncontent-length: 10\r\n\r\nabc",
                "does not match",
            ),
            (b"HTTP/1.1 100 X\r\n\r\n", "invalid http status"),
            (b"HTTP/1.1 503 X\r\n", "unable to parse headers"),
            (
                b"HTTP/1.1 503 X\r\ntransfer-encoding: chunked\r\n\r\n",
                "chunked",
            ),
        ] {
            let e = errorfile(raw, "f", 16384).unwrap_err();
            assert!(e.contains(what), "{e}");
        }
        let big = [b'a'; 200];
        assert!(errorfile(&big, "f", 100)
            .unwrap_err()
            .contains("larger than"));
    }
}
