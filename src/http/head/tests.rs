//! Unit tests of `head`.

use super::*;

fn req(raw: &str, xff: Option<IpAddr>) -> Result<(String, Framing, bool), Reply> {
    let mut headers = header_slots();
    let mut out = Vec::new();
    let ff = crate::config::ForwardFor::default();
    match parse_request(
        raw.as_bytes(),
        &mut headers,
        &Limits::default(),
        xff.map(|ip| (ip, &ff)),
        &mut out,
    ) {
        Parsed::Done(r) => Ok((String::from_utf8(out).unwrap(), r.framing, r.keep_alive)),
        Parsed::Reject(r) => Err(r),
        Parsed::Partial => panic!("partial"),
    }
}

#[test]
fn strips_hop_by_hop_and_appends_xff() {
    let (out, framing, ka) = req(
        "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close, X-Foo\r\nX-Foo: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Keep: 2\r\n\r\n",
        Some("10.0.0.1".parse().unwrap()),
    )
    .unwrap();
    assert_eq!(
        out,
        "GET /a HTTP/1.1\r\nHost: x\r\nX-Keep: 2\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n"
    );
    assert_eq!(framing, Framing::None);
    assert!(!ka);
}

#[test]
fn connection_never_removes_what_frames_or_routes_the_request() {
    let (out, framing, _) = req(
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: Content-Length, Host, Expect, X-A\r\nX-A: 1\r\nExpect: 100-continue\r\nContent-Length: 5, 5\r\n\r\n",
        None,
    )
    .unwrap();
    assert_eq!(
        out,
        "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
    );
    assert_eq!(framing, Framing::Length(5));
}

#[test]
fn framing_rules() {
    let cases: &[(&str, Result<Framing, Reply>)] = &[
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n",
            Ok(Framing::Length(5)),
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n",
            Ok(Framing::Length(5)),
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            Ok(Framing::Chunked),
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            Err(Reply::BadRequest),
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n",
            Err(Reply::BadRequest),
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            Err(Reply::BadRequest),
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            Err(Reply::BadRequest),
        ),
        ("GET / HTTP/1.1\r\n\r\n", Err(Reply::BadRequest)),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            Err(Reply::BadRequest),
        ),
        ("GET / HTTP/1.0\r\n\r\n", Ok(Framing::None)),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ,chunked\r\n\r\n",
            Err(Reply::BadRequest),
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9223372036854775807\r\n\r\n",
            Ok(Framing::Length(i64::MAX as u64)),
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9223372036854775808\r\n\r\n",
            Err(Reply::BadRequest),
        ),
    ];
    for (raw, want) in cases {
        assert_eq!(req(raw, None).map(|r| r.1), *want, "{raw:?}");
    }
}

#[test]
fn fuzz_findings() {
    // A target starting like `http:` followed by a multi-byte character.
    let raw = b"GET http:'/\xd1\x9e\xd0\x90 HTTP/1.1\r\nHost: ade\t\n\r\n";
    let mut headers = header_slots();
    let mut out = Vec::new();
    let r = parse_request(raw, &mut headers, &Limits::default(), None, &mut out);
    assert!(matches!(r, Parsed::Reject(Reply::BadRequest)));
    // A status below 100 (`085`); Transfer-Encoding on an HTTP/1.0 response.
    for raw in [
        &b"HTTP/1.1 085 Sw\r\nContent-Length: 0\r\n\r\n"[..],
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    ] {
        let mut ka = true;
        let r = parse_response(
            raw,
            Origin::Http1,
            101,
            false,
            TunnelAsk::No,
            0,
            &mut ka,
            &mut out,
        );
        assert!(matches!(r, Parsed::Reject(Reply::BadGateway)));
    }
}

#[test]
fn response_framing_and_persistence() {
    let mut out = Vec::new();
    let mut ka = true;
    let r = match parse_response(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
        Origin::Http1,
        101,
        false,
        TunnelAsk::No,
        1,
        &mut ka,
        &mut out,
    ) {
        Parsed::Done(r) => r,
        _ => panic!(),
    };
    assert_eq!(
        (r.status, r.framing, r.reusable, ka),
        (200, Framing::Length(3), true, true)
    );
    let r = match parse_response(
        b"HTTP/1.1 200 OK\r\n\r\nabc",
        Origin::Http1,
        101,
        false,
        TunnelAsk::No,
        1,
        &mut ka,
        &mut out,
    ) {
        Parsed::Done(r) => r,
        _ => panic!(),
    };
    assert_eq!(
        (r.framing, r.reusable, ka),
        (Framing::UntilClose, false, false)
    );
    assert!(String::from_utf8_lossy(&out).contains("Connection: close"));
    let mut ka = true;
    let r = match parse_response(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
        Origin::Http1,
        101,
        true,
        TunnelAsk::No,
        1,
        &mut ka,
        &mut out,
    ) {
        Parsed::Done(r) => r,
        _ => panic!(),
    };
    assert_eq!(r.framing, Framing::None);
}

/// The rewrite of a head `h2map` made from an HTTP/2 response: the fields the balancer
/// writes are in lower case, and the chunking goes after `connection`, as HAProxy 2.6
/// writes them (tests/haproxy_diff_h2_response_head.rs compares the bytes).
#[test]
fn http2_origin_fields_as_haproxy_writes_them() {
    let cases: [(&[u8], u8, bool, &str); 4] = [
        (
            b"HTTP/1.1 200 \r\na: 1\r\ncontent-length: 3\r\nb: 2\r\n\r\n",
            1,
            false,
            "HTTP/1.1 200 \r\na: 1\r\ncontent-length: 3\r\nb: 2\r\nconnection: close\r\n\r\n",
        ),
        (
            b"HTTP/1.1 404 \r\na: 1\r\ntransfer-encoding: chunked\r\n\r\n",
            1,
            false,
            "HTTP/1.1 404 \r\na: 1\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n",
        ),
        (
            b"HTTP/1.1 404 \r\na: 1\r\ntransfer-encoding: chunked\r\n\r\n",
            1,
            true,
            "HTTP/1.1 404 \r\na: 1\r\ntransfer-encoding: chunked\r\n\r\n",
        ),
        (
            b"HTTP/1.1 299 \r\ncontent-length: 3\r\n\r\n",
            0,
            true,
            "HTTP/1.1 299 \r\ncontent-length: 3\r\nconnection: keep-alive\r\n\r\n",
        ),
    ];
    for (raw, minor, keep_alive, want) in cases {
        let mut ka = keep_alive;
        let mut out = Vec::new();
        let r = parse_response(
            raw,
            Origin::Http2,
            101,
            false,
            TunnelAsk::No,
            minor,
            &mut ka,
            &mut out,
        );
        assert!(matches!(r, Parsed::Done(_)));
        assert_eq!(String::from_utf8_lossy(&out), want);
    }
}
