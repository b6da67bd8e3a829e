//! HTTP compression on the real binary (haproxy.cfg `compression algo|type|offload`,
//! and the TOML table): a client that accepts gzip gets a body that decompresses to
//! the server's bytes, small and multi-MiB, Content-Length and chunked, with the
//! headers HAProxy 2.6 sets; responses HAProxy leaves alone are left alone; `offload`
//! hides Accept-Encoding from the server; bad values are refused with their line.

use crate::common;

use std::io::Read;
use std::net::SocketAddr;

use common::haproxy::{ringlb_cfg, write_cfg};
use common::*;

fn cfg(b: &TestBackend, proxy_lines: &str) -> String {
    format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\nfrontend www\n    bind 127.0.0.1:0\n{proxy_lines}    default_backend app\nbackend app\n    server s1 {}\n",
        b.addr()
    )
}

fn get(addr: SocketAddr, path: &str, extra: &str) -> Response {
    HttpClient::connect(addr).request(format!("GET {path} HTTP/1.1\r\nHost: h\r\n{extra}\r\n"))
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .expect("a gzip body");
    out
}

const GZIP: &str = "Accept-Encoding: gzip, deflate\r\n";

/// `raw` on a fresh connection to `addr`, the answer read as one to `method`.
fn ask(addr: SocketAddr, method: &str, raw: &str) -> Response {
    let mut c = HttpClient::connect(addr);
    c.send(raw);
    c.read_response_to(method)
}

#[test]
fn gzip_bodies_decompress_to_the_servers_bytes() {
    let b = TestBackend::start("b");
    let lb = ringlb_cfg(&cfg(&b, "    compression algo gzip\n"));
    let addr = lb.addr("www");
    // Small, then multi-MiB with Content-Length and chunked, on one connection.
    let mut c = HttpClient::connect(addr);
    for (path, want) in [
        ("/", b"backend=b".to_vec()),
        ("/bytes/5000000", pattern(5_000_000)),
        ("/bytes-chunked/3000000", pattern(3_000_000)),
        ("/bytes/1", pattern(1)),
    ] {
        let r = c.request(format!("GET {path} HTTP/1.1\r\nHost: h\r\n{GZIP}\r\n"));
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-encoding"), Some("gzip"), "{path}");
        assert_eq!(r.header_values("vary"), ["Accept-Encoding"], "{path}");
        assert_eq!(r.header("transfer-encoding"), Some("chunked"), "{path}");
        assert_eq!(r.header("content-length"), None, "{path}");
        assert_eq!(r.header("x-backend"), Some("b"), "{path}");
        let body = gunzip(&r.body);
        assert!(body == want, "{path}: the body decompresses to other bytes");
        if want.len() > 1000 {
            assert!(r.body.len() < want.len() / 2, "{path}: not compressed");
        }
    }
}

#[test]
fn algorithms_by_accept_encoding() {
    let b = TestBackend::start("b");
    let lb = ringlb_cfg(&cfg(&b, "    compression algo raw-deflate gzip deflate\n"));
    let addr = lb.addr("www");
    let want = pattern(100_000);
    let coding = |ae: &str| {
        let r = get(addr, "/bytes/100000", &format!("Accept-Encoding: {ae}\r\n"));
        let mut out = Vec::new();
        match r.header("content-encoding") {
            Some("gzip") => {
                flate2::read::GzDecoder::new(&r.body[..])
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Some("deflate") => {
                // zlib format (`deflate`) or raw (`raw-deflate`): a zlib stream starts
                // with 0x78.
                if r.body.first() == Some(&0x78) {
                    flate2::read::ZlibDecoder::new(&r.body[..])
                        .read_to_end(&mut out)
                        .unwrap();
                } else {
                    flate2::read::DeflateDecoder::new(&r.body[..])
                        .read_to_end(&mut out)
                        .unwrap();
                }
            }
            _ => out = r.body.clone(),
        }
        assert!(out == want, "{ae}: other bytes");
        let zlib = r.body.first() == Some(&0x78);
        (r.header("content-encoding").map(str::to_string), zlib)
    };
    assert_eq!(coding("gzip"), (Some("gzip".into()), false));
    assert_eq!(
        coding("gzip;q=0.5, deflate"),
        (Some("deflate".into()), true)
    );
    // `*`: the first of HAProxy's list, the last configured (deflate).
    assert_eq!(coding("*"), (Some("deflate".into()), true));
    assert_eq!(coding("br, gzip;q=0").0, None);
}

#[test]
fn responses_left_alone() {
    let b = TestBackend::start("b");
    let lb = ringlb_cfg(&cfg(
        &b,
        "    compression algo gzip\n    compression type text/ application/json\n",
    ));
    let addr = lb.addr("www");
    let text = "x-respond-content-type: text/plain\r\n";
    // Compressed: a listed type.
    let r = get(addr, "/bytes/20000", &format!("{GZIP}{text}"));
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(gunzip(&r.body) == pattern(20000));
    let cases = [
        (
            "no Accept-Encoding",
            "GET",
            "/bytes/20000",
            text.to_string(),
        ),
        (
            "br only",
            "GET",
            "/bytes/20000",
            format!("Accept-Encoding: br\r\n{text}"),
        ),
        (
            "already encoded",
            "GET",
            "/bytes/20000",
            format!("{GZIP}{text}x-respond-content-encoding: br\r\n"),
        ),
        (
            "no-transform",
            "GET",
            "/bytes/20000",
            format!("{GZIP}{text}x-respond-cache-control: max-age=5, no-transform\r\n"),
        ),
        (
            "unlisted type",
            "GET",
            "/bytes/20000",
            format!("{GZIP}x-respond-content-type: image/png\r\n"),
        ),
        ("no type", "GET", "/bytes/20000", GZIP.to_string()),
        ("HEAD", "HEAD", "/bytes/20000", format!("{GZIP}{text}")),
        ("304", "GET", "/status/304", format!("{GZIP}{text}")),
        ("404", "GET", "/status/404", format!("{GZIP}{text}")),
        (
            "close-delimited",
            "GET",
            "/bytes-close/20000",
            format!("{GZIP}{text}"),
        ),
    ];
    for (what, method, path, extra) in cases {
        let raw = format!("{method} {path} HTTP/1.1\r\nHost: h\r\n{extra}\r\n");
        let r = ask(addr, method, &raw);
        let direct = ask(b.addr(), method, &raw);
        assert_eq!(r.status, direct.status, "{what}");
        assert_eq!(
            r.header("content-encoding"),
            direct.header("content-encoding"),
            "{what}"
        );
        assert!(r.header_values("vary").is_empty(), "{what}: Vary added");
        assert!(r.body == direct.body, "{what}: the body changed");
    }
    // An HTTP/1.0 client is not sent a compressed body.
    let r = ask(
        addr,
        "GET",
        &format!("GET /bytes/20000 HTTP/1.0\r\n{GZIP}{text}\r\n"),
    );
    assert_eq!(r.header("content-encoding"), None);
    assert!(r.body == pattern(20000));
}

#[test]
fn weak_etag_and_vary_appended() {
    let b = TestBackend::start("b");
    let lb = ringlb_cfg(&cfg(&b, "    compression algo gzip\n"));
    let r = get(
        lb.addr("www"),
        "/bytes/5000",
        &format!("{GZIP}x-respond-etag: \"abc\"\r\nx-respond-vary: Origin\r\n"),
    );
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("etag"), Some("W/\"abc\""));
    assert_eq!(r.header_values("vary"), ["Origin", "Accept-Encoding"]);
    // Two ETags: HAProxy does not compress.
    let r = get(
        lb.addr("www"),
        "/bytes/5000",
        &format!("{GZIP}x-respond-etag: \"a\"\r\nx-respond-Etag: \"b\"\r\n"),
    );
    assert_eq!(r.header("content-encoding"), None);
}

#[test]
fn offload_hides_accept_encoding_from_the_server() {
    let b = TestBackend::start("b");
    let seen = |lines: &str, ae: &str| {
        let lb = ringlb_cfg(&cfg(&b, lines));
        let r = get(
            lb.addr("www"),
            "/headers",
            &format!("Accept-Encoding: {ae}\r\n"),
        );
        let body = match r.header("content-encoding") {
            Some("gzip") => gunzip(&r.body),
            _ => r.body.clone(),
        };
        String::from_utf8(body)
            .unwrap()
            .lines()
            .any(|l| l.to_ascii_lowercase().starts_with("accept-encoding:"))
    };
    assert!(!seen(
        "    compression algo gzip\n    compression offload\n",
        "gzip"
    ));
    assert!(seen("    compression algo gzip\n", "gzip"));
    // Nothing chosen: the header goes on.
    assert!(seen(
        "    compression algo gzip\n    compression offload\n",
        "br"
    ));
}

#[test]
fn defaults_and_backend_settings() {
    let b = TestBackend::start("b");
    // `defaults` lines reach every proxy; a backend's algorithms come first.
    let text = format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n    compression algo gzip\nfrontend www\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    compression algo deflate\n    server s1 {}\n",
        b.addr()
    );
    let lb = ringlb_cfg(&text);
    // The backend's list: deflate (its own), then gzip (from defaults).
    for (ae, want) in [
        ("*", "deflate"),
        ("deflate", "deflate"),
        ("gzip", "gzip"),
        ("gzip, deflate", "gzip"),
    ] {
        let r = get(
            lb.addr("www"),
            "/bytes/3000",
            &format!("Accept-Encoding: {ae}\r\n"),
        );
        assert_eq!(r.header("content-encoding"), Some(want), "{ae}");
    }
}

#[test]
fn toml_compression_table() {
    let b = TestBackend::start("b");
    let lb = RingLb::start(&format!(
        r#"
[runtime]
shards = 1
comp_maxlevel = 6

[frontend.www]
bind = "127.0.0.1:0"
mode = "http"
default_backend = "app"

[frontend.www.compression]
algo = ["gzip"]
type = ["text/plain"]

[backend.app]
[[backend.app.server]]
addr = "{}"
"#,
        b.addr()
    ));
    let r = get(
        lb.addr("www"),
        "/bytes/30000",
        &format!("{GZIP}x-respond-content-type: text/plain\r\n"),
    );
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(gunzip(&r.body) == pattern(30000));
    let r = get(lb.addr("www"), "/bytes/30000", GZIP);
    assert_eq!(r.header("content-encoding"), None);
}

#[test]
fn bad_values_refused_with_their_line() {
    let check = |lines: &str, global: &str| {
        let b = "127.0.0.1:9";
        let text = format!(
            "global\n{global}defaults\n    mode http\nfrontend www\n    bind 127.0.0.1:0\n{lines}    default_backend app\nbackend app\n    server s1 {b}\n"
        );
        let f = write_cfg(&text);
        check_config_file(f.path().to_str().unwrap())
    };
    let out = check("    compression algo br\n", "");
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.contains(":6: ") && out.stderr.contains("'br' is not a supported algorithm"),
        "{}",
        out.stderr
    );
    let out = check("    compression type\n", "");
    assert!(
        out.stderr.contains(":6: ") && out.stderr.contains("expects <type>"),
        "{}",
        out.stderr
    );
    let out = check("    compression fast\n", "");
    assert!(
        out.stderr.contains(":6: ") && out.stderr.contains("'algo', 'type' or 'offload'"),
        "{}",
        out.stderr
    );
    let out = check("", "    tune.comp.maxlevel 10\n");
    assert!(
        out.stderr.contains(":2: ") && out.stderr.contains("tune.comp.maxlevel"),
        "{}",
        out.stderr
    );
    let out = check("", "    maxcomprate 100\n");
    assert!(
        out.stderr.contains(":2: ") && out.stderr.contains("maxcomprate"),
        "{}",
        out.stderr
    );
    let out = check(
        "    compression algo gzip deflate\n    compression type text/html\n",
        "    tune.comp.maxlevel 5\n",
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let out = check_config(
        "[frontend.w]\nbind = \"127.0.0.1:0\"\nmode = \"http\"\ndefault_backend = \"a\"\n[frontend.w.compression]\nalgo = [\"zstd\"]\n[backend.a]\n[[backend.a.server]]\naddr = \"127.0.0.1:9\"\n",
    );
    assert!(
        out.stderr.contains("frontend.w.compression.algo"),
        "{}",
        out.stderr
    );
}

/// Feeds the whole chunks of `raw[*pos..]` to `dec`; true once the last chunk came.
fn feed_chunks(raw: &[u8], pos: &mut usize, dec: &mut flate2::write::GzDecoder<Vec<u8>>) -> bool {
    use std::io::Write;
    loop {
        let Some(nl) = raw[*pos..].windows(2).position(|w| w == b"\r\n") else {
            return false;
        };
        let line = std::str::from_utf8(&raw[*pos..*pos + nl]).unwrap();
        let size = usize::from_str_radix(line, 16).unwrap();
        let data = *pos + nl + 2;
        if raw.len() < data + size + 2 {
            return false;
        }
        if size == 0 {
            return true;
        }
        dec.write_all(&raw[data..data + size]).unwrap();
        dec.flush().unwrap();
        *pos = data + size + 2;
    }
}

/// A body is compressed as it arrives: the server sends the first part of a chunked
/// body and waits; the client decodes that part before the server sends the rest (a
/// proxy that compressed the whole body first would never answer: the server waits
/// for the client).
#[test]
fn compressed_as_it_streams() {
    use std::io::Write;
    use std::sync::mpsc;
    use std::sync::Mutex;
    use std::time::Duration;
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = Mutex::new(go_rx);
    let first = pattern(40_000);
    let first_server = first.clone();
    let server = RawServer::start(move |mut s| {
        if common::raw::read_head(&mut s).is_none() {
            return;
        }
        let mut head =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        head.extend_from_slice(format!("{:x}\r\n", first_server.len()).as_bytes());
        head.extend_from_slice(&first_server);
        head.extend_from_slice(b"\r\n");
        let _ = s.write_all(&head);
        // The rest only once the client has decoded the first part.
        let _ = go_rx.lock().unwrap().recv_timeout(Duration::from_secs(10));
        let _ = s.write_all(b"5\r\nhello\r\n0\r\n\r\n");
    });
    let text = format!(
        "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\nfrontend www\n    bind 127.0.0.1:0\n    compression algo gzip\n    default_backend app\nbackend app\n    server s1 {}\n",
        server.addr()
    );
    let lb = ringlb_cfg(&text);
    let mut c = std::net::TcpStream::connect(lb.addr("www")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(format!("GET / HTTP/1.1\r\nHost: h\r\n{GZIP}\r\n").as_bytes())
        .unwrap();
    let mut dec = flate2::write::GzDecoder::new(Vec::new());
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    let mut pos = None;
    let mut done = false;
    let mut released = false;
    while !done {
        let n = c.read(&mut buf).expect("the compressed body as it comes");
        assert!(n > 0, "closed early");
        raw.extend_from_slice(&buf[..n]);
        if pos.is_none() {
            pos = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
            if let Some(at) = pos {
                let head = String::from_utf8_lossy(&raw[..at]).to_ascii_lowercase();
                assert!(head.contains("content-encoding: gzip"), "{head}");
            }
        }
        let Some(p) = pos.as_mut() else { continue };
        done = feed_chunks(&raw, p, &mut dec);
        if !released && dec.get_ref().len() >= first.len() {
            // The first part decoded while the server still holds the rest.
            assert!(dec.get_ref()[..] == first[..]);
            go_tx.send(()).unwrap();
            released = true;
        }
    }
    assert!(
        released,
        "the first part came only with the end of the body"
    );
    let all = dec.finish().unwrap();
    let mut want = first.clone();
    want.extend_from_slice(b"hello");
    assert!(all == want);
}

/// `tune.comp.maxlevel`: the same body compressed at level 9 is smaller than at the
/// default level 1; were the keyword ignored, both would be the same size.
#[test]
fn tune_comp_maxlevel_sets_the_deflate_level() {
    let b = TestBackend::start("b");
    let size = |level: Option<u32>| {
        let mut text = cfg(
            &b,
            "    compression algo gzip\n    compression type text/plain\n",
        );
        if let Some(l) = level {
            text = text.replace(
                "    nbthread 1\n",
                &format!("    nbthread 1\n    tune.comp.maxlevel {l}\n"),
            );
        }
        let lb = common::haproxy::ringlb_cfg(&text);
        let r = get(
            lb.addr("www"),
            "/bytes/200000",
            &format!("{GZIP}x-respond-content-type: text/plain\r\n"),
        );
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert!(gunzip(&r.body) == pattern(200000));
        r.body.len()
    };
    let (default, nine) = (size(None), size(Some(9)));
    assert!(
        nine < default,
        "level 9: {nine} bytes, default (1): {default}"
    );
}
