//! Algorithm choice, response checks and head rewrite, against HAProxy 2.6's
//! `flt_http_comp.c` logic (the integration tests run it on the binary).

use super::*;

fn comp(algos: &[Algo], types: &[&str], offload: bool) -> Compression {
    let types: Vec<String> = types.iter().map(|t| t.to_string()).collect();
    Compression::from_lines(algos, &types, offload)
}

fn req(headers: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: x\r\n{headers}\r\n").into_bytes()
}

fn pick(c: &Compression, headers: &str) -> Option<Algo> {
    choose(Some(c), None, &mut req(headers))
}

#[test]
fn accept_encoding_q_values() {
    let c = comp(&[Algo::Gzip, Algo::Deflate], &[], false);
    assert_eq!(
        pick(&c, "Accept-Encoding: gzip, deflate\r\n"),
        Some(Algo::Gzip)
    );
    assert_eq!(
        pick(&c, "Accept-Encoding: deflate, gzip\r\n"),
        Some(Algo::Deflate)
    );
    assert_eq!(
        pick(&c, "Accept-Encoding: gzip;q=0.5, deflate;q=0.8\r\n"),
        Some(Algo::Deflate)
    );
    assert_eq!(pick(&c, "Accept-Encoding: gzip;q=0\r\n"), None);
    assert_eq!(pick(&c, "Accept-Encoding: GZIP\r\n"), Some(Algo::Gzip));
    assert_eq!(pick(&c, "Accept-Encoding: br\r\n"), None);
    assert_eq!(pick(&c, ""), None);
    // `*` takes the first of the list, which is the last configured.
    assert_eq!(pick(&c, "Accept-Encoding: *\r\n"), Some(Algo::Deflate));
    // An equal q-value does not displace the first.
    assert_eq!(
        pick(
            &c,
            "Accept-Encoding: br;q=0.9, deflate;q=0.9, gzip;q=0.9\r\n"
        ),
        Some(Algo::Deflate)
    );
    // Other parameters before q.
    assert_eq!(
        pick(&c, "Accept-Encoding: gzip;a=b;q=0.1, deflate ; q=0.2\r\n"),
        Some(Algo::Deflate)
    );
    // Several header lines.
    assert_eq!(
        pick(
            &c,
            "Accept-Encoding: gzip;q=0.1\r\nAccept-Encoding: deflate;q=0.2\r\n"
        ),
        Some(Algo::Deflate)
    );
    assert_eq!(pick(&c, "Accept-Encoding: gzipx\r\n"), None);
}

#[test]
fn q_value_parsing() {
    assert_eq!(qvalue(b"1"), 1000);
    assert_eq!(qvalue(b"0"), 0);
    assert_eq!(qvalue(b"0.5"), 500);
    assert_eq!(qvalue(b"0.123"), 123);
    assert_eq!(qvalue(b"0.12"), 120);
    assert_eq!(qvalue(b"2"), 1000);
    assert_eq!(qvalue(b"x"), 1000);
    assert_eq!(qvalue(b""), 1000);
}

#[test]
fn identity_needs_no_header_and_offload_strips() {
    let c = comp(&[Algo::Identity, Algo::Gzip], &[], false);
    assert_eq!(pick(&c, ""), Some(Algo::Identity));
    let c = comp(&[Algo::Gzip], &[], true);
    let mut h = req("Accept-Encoding: gzip\r\nAccept-Encoding: br\r\nX: y\r\n");
    assert_eq!(choose(Some(&c), None, &mut h), Some(Algo::Gzip));
    assert_eq!(h, req("X: y\r\n"));
    // Nothing chosen: the header stays.
    let mut h = req("Accept-Encoding: br\r\n");
    assert_eq!(choose(Some(&c), None, &mut h), None);
    assert_eq!(h, req("Accept-Encoding: br\r\n"));
}

#[test]
fn backend_algorithms_first() {
    let fe = comp(&[Algo::Gzip], &[], false);
    let be = comp(&[Algo::Deflate], &[], false);
    let h = "Accept-Encoding: gzip, deflate\r\n";
    assert_eq!(
        choose(Some(&fe), Some(&be), &mut req(h)),
        Some(Algo::Deflate)
    );
    // A backend with types only: the frontend's algorithms.
    let be = comp(&[], &["text/"], false);
    assert_eq!(choose(Some(&fe), Some(&be), &mut req(h)), Some(Algo::Gzip));
}

#[test]
fn old_mozilla_agents() {
    let c = comp(&[Algo::Gzip], &[], false);
    let ae = "Accept-Encoding: gzip\r\n";
    let ua = |u: &str| pick(&c, &format!("{ae}User-Agent: {u}\r\n"));
    assert_eq!(ua("Mozilla/4.0 (compatible; MSIE 5.0; Windows 98)"), None);
    assert_eq!(
        ua("Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.0)"),
        Some(Algo::Gzip)
    );
    assert_eq!(
        ua("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)"),
        None
    );
    assert_eq!(
        ua("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)"),
        Some(Algo::Gzip)
    );
    assert_eq!(ua("Mozilla/5.0 (X11; Linux x86_64)"), Some(Algo::Gzip));
}

fn res(status: u16, framing: Framing) -> Response {
    Response {
        status,
        framing,
        http11: true,
    }
}

fn head(headers: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\n{headers}\r\n").into_bytes()
}

#[test]
fn responses_left_alone() {
    let c = comp(&[Algo::Gzip], &[], false);
    let ok = |r: Response, h: &str| response_allows(Some(&c), None, &r, &head(h));
    let len = Framing::Length(10);
    assert!(ok(res(200, len), "Content-Type: text/html\r\n"));
    assert!(ok(res(203, Framing::Chunked), ""));
    assert!(!ok(res(204, len), ""));
    assert!(!ok(res(206, len), ""));
    assert!(!ok(res(404, len), ""));
    assert!(!ok(res(200, Framing::None), ""));
    assert!(!ok(res(200, Framing::UntilClose), ""));
    assert!(!ok(
        Response {
            http11: false,
            ..res(200, len)
        },
        ""
    ));
    assert!(!ok(res(200, len), "Content-Encoding: identity\r\n"));
    assert!(!ok(
        res(200, len),
        "Cache-Control: public, No-Transform\r\n"
    ));
    assert!(ok(res(200, len), "Cache-Control: no-transformx\r\n"));
    assert!(!ok(res(200, len), "Content-Type: multipart/mixed\r\n"));
    assert!(ok(res(200, len), "ETag: \"a\"\r\n"));
    assert!(ok(res(200, len), "ETag: W/\"a\"\r\n"));
    assert!(!ok(res(200, len), "ETag: a\r\n"));
    assert!(!ok(res(200, len), "ETag: \"a\"\r\nETag: \"b\"\r\n"));
}

#[test]
fn types_listed() {
    let c = comp(&[Algo::Gzip], &["text/html", "application/json"], false);
    let ok = |h: &str| response_allows(Some(&c), None, &res(200, Framing::Chunked), &head(h));
    assert!(ok("Content-Type: text/html; charset=utf-8\r\n"));
    assert!(ok("Content-Type: Application/JSON\r\n"));
    assert!(!ok("Content-Type: text/plain\r\n"));
    assert!(!ok(""));
    // The backend's list first.
    let be = comp(&[], &["text/plain"], false);
    let h = head("Content-Type: text/plain\r\n");
    assert!(response_allows(
        Some(&c),
        Some(&be),
        &res(200, Framing::Chunked),
        &h
    ));
}

#[test]
fn head_rewrite() {
    let mut h = head("Content-Length: 10\r\nETag: \"abc\"\r\nVary: Origin\r\n");
    rewrite_head(&mut h, Algo::Gzip, Framing::Length(10));
    assert_eq!(
        String::from_utf8(h).unwrap(),
        "HTTP/1.1 200 OK\r\nETag: W/\"abc\"\r\nVary: Origin\r\nContent-Encoding: gzip\r\n\
         Transfer-Encoding: chunked\r\nVary: Accept-Encoding\r\n\r\n"
    );
    let mut h = head("Transfer-Encoding: chunked\r\nETag: W/\"abc\"\r\n");
    rewrite_head(&mut h, Algo::Identity, Framing::Chunked);
    assert_eq!(
        String::from_utf8(h).unwrap(),
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nETag: W/\"abc\"\r\n\
         Vary: Accept-Encoding\r\n\r\n"
    );
    let mut h = head("Content-Length: 10\r\n");
    rewrite_head(&mut h, Algo::RawDeflate, Framing::Length(10));
    assert!(h.windows(25).any(|w| w == b"Content-Encoding: deflate"));
}
