//! Question: how fast is a request head parsed and rewritten, and a response head
//! parsed? Measured in bytes of head per second, for a few realistic heads.
//!
//! Each iteration is what the connection loop does per message: `head::parse_request`
//! (httparse, framing and persistence rules, then the rewritten head with hop-by-hop
//! headers removed and X-Forwarded-For appended written into a reused out buffer), and
//! `head::parse_response` likewise for the server's answer.
//!
//! Run: `cargo bench --bench head` (criterion; figures in target/criterion/, a recent
//! run in benches/results/micro.md).

use std::net::{IpAddr, Ipv4Addr};

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringlb::config::ForwardFor;
use ringlb::config::Limits;
use ringlb::http::framing::Framing;
use ringlb::http::head::{header_slots, parse_request, parse_response, Origin, Parsed, TunnelAsk};

/// curl's default request.
const CURL_GET: &[u8] = b"GET /index.html HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: curl/7.88.1\r\n\
Accept: */*\r\n\
\r\n";

/// A browser navigation: 15 headers, cookies included.
const BROWSER_GET: &[u8] = b"GET /products/shoes/running?size=42&color=blue&page=2 HTTP/1.1\r\n\
Host: shop.example.com\r\n\
Connection: keep-alive\r\n\
Cache-Control: max-age=0\r\n\
sec-ch-ua: \"Chromium\";v=\"118\", \"Google Chrome\";v=\"118\", \"Not=A?Brand\";v=\"99\"\r\n\
sec-ch-ua-mobile: ?0\r\n\
sec-ch-ua-platform: \"Linux\"\r\n\
Upgrade-Insecure-Requests: 1\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.0.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7\r\n\
Sec-Fetch-Site: same-origin\r\n\
Sec-Fetch-Mode: navigate\r\n\
Sec-Fetch-Dest: document\r\n\
Referer: https://shop.example.com/products/shoes\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Accept-Language: en-GB,en-US;q=0.9,en;q=0.8,de;q=0.7\r\n\
Cookie: session=7f3c2a9e4b1d4c8f9a0e6b5d3c2a1f0e; _ga=GA1.2.1234567890.1698765432; _gid=GA1.2.987654321.1698765432; cart=3%7C17%7C42; consent=analytics%3Dyes%2Cads%3Dno; theme=dark\r\n\
\r\n";

/// An API call with a JSON body (the body is not part of the head).
const POST_JSON: &[u8] = b"POST /api/v1/orders HTTP/1.1\r\n\
Host: api.example.com\r\n\
User-Agent: python-requests/2.31.0\r\n\
Accept-Encoding: gzip, deflate\r\n\
Accept: application/json\r\n\
Connection: keep-alive\r\n\
Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U\r\n\
Content-Type: application/json\r\n\
Content-Length: 348\r\n\
\r\n";

/// nginx answering a small static file.
const NGINX_200: &[u8] = b"HTTP/1.1 200 OK\r\n\
Server: nginx/1.22.1\r\n\
Date: Mon, 23 Nov 2026 16:00:00 GMT\r\n\
Content-Type: text/html\r\n\
Content-Length: 615\r\n\
Last-Modified: Tue, 13 Jun 2023 15:08:10 GMT\r\n\
Connection: keep-alive\r\n\
ETag: \"6488865a-267\"\r\n\
Accept-Ranges: bytes\r\n\
\r\n";

/// An application's dynamic, chunked page with cookies and cache headers.
const APP_200_CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\n\
Date: Mon, 23 Nov 2026 16:00:00 GMT\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Transfer-Encoding: chunked\r\n\
Connection: keep-alive\r\n\
Keep-Alive: timeout=5\r\n\
Cache-Control: private, no-cache, no-store, must-revalidate\r\n\
Pragma: no-cache\r\n\
Expires: 0\r\n\
Vary: Accept-Encoding, Cookie\r\n\
X-Frame-Options: SAMEORIGIN\r\n\
X-Content-Type-Options: nosniff\r\n\
Strict-Transport-Security: max-age=31536000; includeSubDomains\r\n\
Set-Cookie: session=7f3c2a9e4b1d4c8f9a0e6b5d3c2a1f0e; Path=/; HttpOnly; Secure; SameSite=Lax\r\n\
Set-Cookie: cart=3%7C17%7C42; Path=/; Max-Age=2592000\r\n\
X-Request-Id: 4f1d2c3b-9a8e-4d7c-b6a5-0f1e2d3c4b5a\r\n\
\r\n";

fn bench_requests(c: &mut Criterion) {
    let client = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 17));
    let ff = ForwardFor::default();
    let mut out = Vec::with_capacity(1024);
    let limits = Limits::default();
    let mut group = c.benchmark_group("request_head");
    // X-Forwarded-For on, as in examples/http.toml; once without it, to show its share.
    let cases: [(&str, &[u8], Framing, bool); 4] = [
        ("curl_get", CURL_GET, Framing::None, true),
        ("curl_get_no_xff", CURL_GET, Framing::None, false),
        ("browser_get", BROWSER_GET, Framing::None, true),
        ("post_json", POST_JSON, Framing::Length(348), true),
    ];
    for (name, head, framing, xff) in cases {
        let xff = xff.then_some((client, &ff));
        // The bench measures the path that forwards: make sure it is the one taken.
        {
            let mut headers = header_slots();
            match parse_request(head, &mut headers, &limits, xff, &mut out) {
                Parsed::Done(r) => {
                    assert_eq!((r.head_len, r.framing), (head.len(), framing), "{name}");
                    let tail: &[u8] = match xff {
                        Some(_) => b"\r\nX-Forwarded-For: 192.0.2.17\r\n\r\n",
                        None => b"\r\nAccept: */*\r\n\r\n",
                    };
                    assert!(out.ends_with(tail), "{name}");
                }
                _ => panic!("{name}: not parsed"),
            }
        }
        group.throughput(Throughput::Bytes(head.len() as u64));
        group.bench_with_input(BenchmarkId::new("parse_rewrite", name), head, |b, head| {
            b.iter(|| {
                // As in the connection loop: a fresh header array per head.
                let mut headers = header_slots();
                let r = parse_request(black_box(head), &mut headers, &limits, xff, &mut out);
                black_box(matches!(r, Parsed::Done(_)));
                black_box(out.len())
            })
        });
    }
    group.finish();
}

fn bench_responses(c: &mut Criterion) {
    let mut out = Vec::with_capacity(1024);
    let limits = Limits::default();
    let mut group = c.benchmark_group("response_head");
    let cases: [(&str, &[u8], Framing); 2] = [
        ("nginx_200", NGINX_200, Framing::Length(615)),
        ("app_200_chunked", APP_200_CHUNKED, Framing::Chunked),
    ];
    for (name, head, framing) in cases {
        let mut keep_alive = true;
        match parse_response(
            head,
            Origin::Http1,
            limits.max_headers,
            false,
            TunnelAsk::No,
            1,
            &mut keep_alive,
            &mut out,
        ) {
            Parsed::Done(r) => {
                assert_eq!((r.head_len, r.framing), (head.len(), framing), "{name}");
                assert!(r.reusable && keep_alive, "{name}");
            }
            _ => panic!("{name}: not parsed"),
        }
        group.throughput(Throughput::Bytes(head.len() as u64));
        group.bench_with_input(BenchmarkId::new("parse_rewrite", name), head, |b, head| {
            b.iter(|| {
                let mut keep_alive = true;
                let r = parse_response(
                    black_box(head),
                    Origin::Http1,
                    limits.max_headers,
                    false,
                    TunnelAsk::No,
                    1,
                    &mut keep_alive,
                    &mut out,
                );
                black_box(matches!(r, Parsed::Done(_)));
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_requests, bench_responses);
criterion_main!(benches);
