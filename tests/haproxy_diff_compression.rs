//! Differential test of HTTP compression: HAProxy 2.6 and ringlb run the same
//! haproxy.cfg (`compression algo`, `type`, `offload`, in a frontend and a backend) and
//! answer the same requests (q-values, `*`, HEAD, HTTP/1.0, 304, 404, an encoded
//! body, `no-transform`, listed and unlisted types, ETags, a `Vary`, Content-Length and
//! chunked bodies up to 2 MB): the same status and framing headers
//! (`Content-Encoding`, `Vary`, `ETag`, `Transfer-Encoding`, `Content-Length`), and
//! bodies that decode to the same bytes (the compressed bytes themselves differ:
//! Debian's HAProxy uses libslz, ringlb zlib-rs).

use crate::common;

use std::io::Read;

use common::twins::{Side, Srv, Twins};
use common::HttpClient;

const CFG: &str = r#"
frontend fe
    bind 127.0.0.1:${FE}
    compression algo gzip deflate
    compression type text/ application/json
    default_backend app

frontend off
    bind 127.0.0.1:${OFF}
    default_backend app_offload

backend app
    server s1 ${S1}

backend app_offload
    compression algo raw-deflate gzip
    compression offload
    server s1 ${S2}
"#;

/// What a client sees of one answer: status, the headers compression touches, and
/// the body as decoded by its Content-Encoding.
type Seen = (u16, Vec<(String, Vec<String>)>, Result<Vec<u8>, String>);

fn decode(coding: Option<&str>, body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let r = match coding {
        Some("gzip") => flate2::read::GzDecoder::new(body).read_to_end(&mut out),
        // `deflate` may be either format (`raw-deflate` says `deflate` too).
        Some("deflate") if body.first() == Some(&0x78) => {
            flate2::read::ZlibDecoder::new(body).read_to_end(&mut out)
        }
        Some("deflate") => flate2::read::DeflateDecoder::new(body).read_to_end(&mut out),
        _ => return Ok(body.to_vec()),
    };
    r.map(|_| out).map_err(|e| e.to_string())
}

fn seen(s: &Side, fe: &str, method: &str, raw: &str) -> Seen {
    let mut c = HttpClient::connect(s.addr(fe));
    c.send(raw);
    let r = c.read_response_to(method);
    let names = [
        "content-encoding",
        "vary",
        "etag",
        "transfer-encoding",
        "content-length",
        "content-type",
    ];
    let headers = names
        .iter()
        .map(|n| {
            let v = r.header_values(n).iter().map(|v| v.to_string()).collect();
            (n.to_string(), v)
        })
        .collect();
    let mut body = decode(r.header("content-encoding"), &r.body);
    // `/headers` lists what the server received: keep only what compression may
    // change there (names lowercased: HAProxy sends them so, ringlb as written).
    if raw.starts_with("GET /headers") {
        body = body.map(|b| {
            String::from_utf8_lossy(&b)
                .to_ascii_lowercase()
                .lines()
                .filter(|l| l.starts_with("accept-encoding"))
                .collect::<Vec<_>>()
                .join("\n")
                .into_bytes()
        });
    }
    (r.status, headers, body)
}

fn request(method: &str, path: &str, version: &str, extra: &str) -> String {
    format!("{method} {path} HTTP/{version}\r\nHost: h\r\n{extra}\r\n")
}

#[test]
fn compression_matches_haproxy() {
    let t = Twins::start(
        CFG,
        &[("fe", "FE"), ("off", "OFF")],
        &[("S1", Srv::Up("s1")), ("S2", Srv::Up("s2"))],
    );
    let text = "x-respond-content-type: text/plain\r\n";
    let gz = "Accept-Encoding: gzip, deflate\r\n";
    let mut reqs: Vec<(&str, &str, String)> = Vec::new();
    let mut add = |fe: &'static str, method: &'static str, r: String| reqs.push((fe, method, r));
    for ae in [
        "gzip",
        "deflate",
        "gzip, deflate",
        "deflate, gzip",
        "gzip;q=0.5, deflate;q=0.6",
        "gzip;q=0",
        "*",
        "identity",
        "br",
        "GZIP",
        "gzip;q=0.001",
        "br;q=1, gzip;q=0.9",
    ] {
        add(
            "fe",
            "GET",
            request(
                "GET",
                "/bytes/30000",
                "1.1",
                &format!("Accept-Encoding: {ae}\r\n{text}"),
            ),
        );
    }
    for (path, extra) in [
        ("/bytes/2000000", text.to_string()),
        ("/bytes-chunked/2000000", text.to_string()),
        ("/bytes/1", text.to_string()),
        ("/bytes-close/30000", text.to_string()),
        ("/status/304", text.to_string()),
        ("/status/404", text.to_string()),
        ("/status/201", text.to_string()),
        ("/status/206", text.to_string()),
        (
            "/bytes/30000",
            "x-respond-content-type: application/json; charset=utf-8\r\n".into(),
        ),
        (
            "/bytes/30000",
            "x-respond-content-type: image/png\r\n".into(),
        ),
        (
            "/bytes/30000",
            "x-respond-content-type: multipart/mixed\r\n".into(),
        ),
        ("/bytes/30000", String::new()),
        (
            "/bytes/30000",
            format!("{text}x-respond-content-encoding: br\r\n"),
        ),
        (
            "/bytes/30000",
            format!("{text}x-respond-cache-control: no-cache, no-transform\r\n"),
        ),
        (
            "/bytes/30000",
            format!("{text}x-respond-cache-control: no-transformed\r\n"),
        ),
        ("/bytes/30000", format!("{text}x-respond-etag: \"v1\"\r\n")),
        (
            "/bytes/30000",
            format!("{text}x-respond-etag: W/\"v1\"\r\n"),
        ),
        ("/bytes/30000", format!("{text}x-respond-etag: v1\r\n")),
        ("/bytes/30000", format!("{text}x-respond-vary: Origin\r\n")),
        (
            "/bytes/30000",
            format!("{text}User-Agent: Mozilla/4.0 (compatible; MSIE 5.5; Windows 98)\r\n"),
        ),
    ] {
        add(
            "fe",
            "GET",
            request("GET", path, "1.1", &format!("{gz}{extra}")),
        );
    }
    add(
        "fe",
        "HEAD",
        request("HEAD", "/bytes/30000", "1.1", &format!("{gz}{text}")),
    );
    add(
        "fe",
        "GET",
        request("GET", "/bytes/30000", "1.0", &format!("{gz}{text}")),
    );
    // The backend's settings, with offload: what the server saw of Accept-Encoding.
    for ae in ["gzip", "deflate", "br", "gzip;q=0"] {
        add(
            "off",
            "GET",
            request(
                "GET",
                "/headers",
                "1.1",
                &format!("Accept-Encoding: {ae}\r\n"),
            ),
        );
        add(
            "off",
            "GET",
            request(
                "GET",
                "/bytes/30000",
                "1.1",
                &format!("Accept-Encoding: {ae}\r\n"),
            ),
        );
    }
    t.same_all(&reqs, |s, (fe, method, raw)| seen(s, fe, method, raw));
    // Both did compress (the comparison alone would pass if neither did).
    let (fe, method, raw) = &reqs[0];
    let (_, headers, body) = t.same("the first request", |s| seen(s, fe, method, raw));
    assert_eq!(headers[0].1, ["gzip"]);
    assert!(body.unwrap() == common::pattern(30000));
}
