//! Response heads: parsed and checked as requests are (framing, `Connection`), with
//! what the connection loop needs to know about them.

use super::*;

/// What the connection loop needs to know about a parsed response.
#[derive(Debug)]
pub struct Response {
    pub head_len: usize,
    pub status: u16,
    pub framing: Framing,
    /// The server lets us reuse its connection after this response.
    pub reusable: bool,
    /// A `101 Switching Protocols` to an upgrade request: the connection becomes a
    /// tunnel after this head.
    pub upgrade: bool,
    /// A summary of the header names written to `out` (`rules::head::name_bit`).
    pub names: u64,
    /// The server's HTTP minor version (`HTTP/1.x`).
    pub minor: u8,
}

/// Parses a response head (at most `max_headers` fields, framing as strict as for
/// requests: a malformed one is a 502); on success writes the head for the client into
/// `out`. `client_keep_alive` is lowered when the body is delimited by close.
/// `ask`: what the request asked for, so a 101 (upgrade) or a 2xx to a CONNECT starts
/// a tunnel. `origin`: who wrote the head (the fields written here follow its case).
#[allow(clippy::too_many_arguments)]
pub fn parse_response(
    buf: &[u8],
    origin: Origin,
    max_headers: usize,
    request_is_head: bool,
    ask: TunnelAsk,
    client_minor: u8,
    client_keep_alive: &mut bool,
    out: &mut Vec<u8>,
) -> Parsed<Response> {
    let mut slots = header_slots();
    let max_headers = max_headers.min(slots.len());
    let mut res = httparse::Response::new(&mut []);
    let head_len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut res,
        buf,
        &mut slots[..max_headers],
    ) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Reject(Reply::BadGateway),
    };
    let (Some(status), Some(minor)) = (res.code, res.version) else {
        return Parsed::Reject(Reply::BadGateway);
    };
    // Three digits from 100: `085` would go out as `85` (found by fuzzing). Codes above
    // 599 are passed on, as HAProxy does (some services answer 999).
    if status < 100 {
        return Parsed::Reject(Reply::BadGateway);
    }
    let headers = &*res.headers;
    let Ok(conn) = ConnectionTokens::collect(headers) else {
        return Parsed::Reject(Reply::BadGateway);
    };
    let Ok(len) = lengths(headers) else {
        return Parsed::Reject(Reply::BadGateway);
    };
    // As strict as for requests: both framings, a coding we cannot delimit, or a
    // Transfer-Encoding on HTTP/1.0 (it would reach the client relabelled HTTP/1.1 and
    // be decoded as chunked while we delimit the body by close: found by fuzzing).
    if len.transfer_encoding && (len.content_length.is_some() || !len.chunked || minor == 0) {
        return Parsed::Reject(Reply::BadGateway);
    }
    // A 101 only answers a request that asked for it, and only on HTTP/1.1.
    let switching = status == 101;
    if switching && !(ask == TunnelAsk::Upgrade && minor == 1 && conn.upgrade) {
        return Parsed::Reject(Reply::BadGateway);
    }
    // A 2xx to a CONNECT has no body: the tunnel starts after its head.
    let connected = ask == TunnelAsk::Connect && (200..300).contains(&status);
    let upgrade = switching || connected;
    let interim = (100..200).contains(&status) && !upgrade;
    let framing = if interim || upgrade || request_is_head || status == 204 || status == 304 {
        Framing::None
    } else if len.transfer_encoding {
        Framing::Chunked
    } else {
        match len.content_length {
            Some(0) => Framing::None,
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    let server_keep_alive = if minor == 1 {
        !conn.close
    } else {
        conn.keep_alive && !conn.close
    };
    let reusable = server_keep_alive && framing != Framing::UntilClose && !upgrade;
    if framing == Framing::UntilClose {
        *client_keep_alive = false;
    }

    out.clear();
    let reason = res.reason.unwrap_or("");
    // httparse takes exactly three digits, so the status goes out as it came.
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&[
        b'0' + (status / 100 % 10) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
        b' ',
    ]);
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut framing_written = false;
    // HAProxy 2.6 adds the chunking of an HTTP/2 response after its `connection`.
    let chunked_last = origin == Origin::Http2 && len.chunked && !connected;
    let mut names = 0u64;
    for (i, h) in headers.iter().enumerate() {
        match field(i, h.name, &len, &conn) {
            // A tunnel has no body framing; elsewhere, the framing as decided.
            Field::Framing => {
                if !connected && !std::mem::replace(&mut framing_written, true) {
                    // A chunked body to an HTTP/1.0 client cannot be delimited: close.
                    if client_minor == 0 && len.chunked {
                        *client_keep_alive = false;
                    }
                    if !chunked_last {
                        names |= push_framing(out, &len, origin);
                    }
                }
            }
            Field::HopByHop => {}
            Field::Upgrade if !switching => {}
            _ if conn.lists(h.name) => {}
            _ => {
                names |= crate::rules::head::name_bit(h.name.as_bytes());
                push_header(out, h.name, h.value);
            }
        }
    }
    let lower = origin == Origin::Http2;
    if switching {
        out.extend_from_slice(b"Connection: upgrade\r\n");
    } else if !interim && !connected {
        if !*client_keep_alive {
            out.extend_from_slice(match lower {
                false => b"Connection: close\r\n",
                true => b"connection: close\r\n",
            });
        } else if client_minor == 0 {
            out.extend_from_slice(match lower {
                false => b"Connection: keep-alive\r\n",
                true => b"connection: keep-alive\r\n",
            });
        }
    }
    if chunked_last && framing_written {
        names |= push_framing(out, &len, origin);
    }
    out.extend_from_slice(b"\r\n");
    // The Connection header written below matters to no rule.
    Parsed::Done(Response {
        head_len,
        status,
        framing,
        reusable,
        upgrade,
        names,
        minor,
    })
}
