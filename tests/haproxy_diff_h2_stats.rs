//! HAProxy's HTTP/2 module counters (`show stat`'s `h2_*` columns) against HAProxy 2.6:
//! the same haproxy.cfg with a `proto h2` bind on both, the same connections written
//! frame by frame (a GET, a POST in two DATA frames, a PING, a stream the client
//! resets, a client GOAWAY, a stream error and a connection error), and the
//! frontend's `h2_*` columns must be the same once every connection is closed.

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::h2::{block, frame, END_HEADERS, END_STREAM, PREFACE};
use common::twins::{stat_rows, Side, Srv, Twins};

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;

fn get(path: &str) -> Vec<u8> {
    block(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "t.test"),
    ])
}

/// Writes the preface, an empty SETTINGS and `frames`, then reads frames until one
/// of type `kind` on `stream` with `flags` set, or a GOAWAY, then writes `after` and
/// closes. An answer missing within 10 s fails the test.
fn session(addr: SocketAddr, frames: &[Vec<u8>], until: (u8, u32, u8), after: &[Vec<u8>]) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    for f in frames {
        out.extend_from_slice(f);
    }
    s.write_all(&out).unwrap();
    let (kind, stream, flags) = until;
    loop {
        let mut h = [0u8; 9];
        s.read_exact(&mut h)
            .expect("the awaited frame before the deadline");
        let len = (h[0] as usize) << 16 | (h[1] as usize) << 8 | h[2] as usize;
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).unwrap();
        let id = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        if h[3] == GOAWAY || (h[3] == kind && id == stream && h[4] & flags == flags) {
            break;
        }
    }
    let mut rest = Vec::new();
    for f in after {
        rest.extend_from_slice(f);
    }
    let _ = s.write_all(&rest);
}

/// The frontend's `h2_*` columns.
fn h2_columns(s: &Side) -> Vec<(String, u64)> {
    let rows = stat_rows(&s.cli("show stat"));
    let fe = rows
        .iter()
        .find(|r| r["pxname"] == "web" && r["svname"] == "FRONTEND")
        .expect("the frontend's row");
    fe.iter()
        .filter(|(k, _)| k.starts_with("h2_"))
        .map(|(k, v)| (k.clone(), v.parse().unwrap_or(u64::MAX)))
        .collect()
}

/// `now` less `before`, column by column.
fn delta(now: &[(String, u64)], before: &[(String, u64)]) -> Vec<(String, u64)> {
    now.iter()
        .zip(before)
        .map(|((k, n), (_, b))| (k.clone(), n.saturating_sub(*b)))
        .collect()
}

#[test]
fn h2_counters_match_haproxy() {
    let t = Twins::start(
        r#"
frontend web
    bind "127.0.0.1:${PORT}" proto h2
    default_backend app

backend app
    server s1 "${APP}"
"#,
        &[("web", "PORT")],
        &[("APP", Srv::Up("app"))],
    );
    // HAProxy's readiness probe was an HTTP/2 connection too: counted from here.
    let before = t.both(h2_columns);
    t.both(|s| {
        let addr = s.addr("web");
        // A GET, answered; the client says goodbye.
        session(
            addr,
            &[frame(HEADERS, END_HEADERS | END_STREAM, 1, &get("/"))],
            (DATA, 1, END_STREAM),
            &[frame(GOAWAY, 0, 0, &[0, 0, 0, 1, 0, 0, 0, 0])],
        );
        // A POST in two DATA frames and a PING; then a stream the client resets.
        let post = block(&[
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/echo"),
            (":authority", "t.test"),
            ("content-length", "6"),
        ]);
        session(
            addr,
            &[
                frame(HEADERS, END_HEADERS, 1, &post),
                frame(DATA, 0, 1, b"abc"),
                frame(DATA, END_STREAM, 1, b"def"),
                frame(PING, 0, 0, &[0; 8]),
            ],
            (DATA, 1, END_STREAM),
            &[
                frame(HEADERS, END_HEADERS, 3, &get("/slow")),
                frame(RST, 0, 3, &[0, 0, 0, 8]),
            ],
        );
        // A stream error: a connection-specific header.
        session(
            addr,
            &[frame(
                HEADERS,
                END_HEADERS | END_STREAM,
                1,
                &block(&[
                    (":method", "GET"),
                    (":scheme", "http"),
                    (":path", "/"),
                    (":authority", "t.test"),
                    ("connection", "close"),
                ]),
            )],
            (RST, 1, 0),
            &[],
        );
        // A connection error: DATA on stream 0.
        session(addr, &[frame(DATA, 0, 0, b"x")], (GOAWAY, 0, 0), &[]);
    });
    t.wait_both(
        "every HTTP/2 connection closed",
        Duration::from_secs(10),
        |s| {
            h2_columns(s)
                .iter()
                .any(|(k, v)| k == "h2_open_connections" && *v == 0)
        },
    );
    let after = t.both(h2_columns);
    let (hx, lb) = (delta(&after.0, &before.0), delta(&after.1, &before.1));
    let column = |d: &[(String, u64)], name: &str| {
        d.iter().find(|(k, _)| k == name).map_or(u64::MAX, |c| c.1)
    };
    // HAProxy 2.6 counts the SETTINGS frame that must open a connection twice (the
    // preface's state, then the frame loop): 2 a connection where ringlb counts the 1
    // frame each client sent.
    assert_eq!(column(&lb, "h2_settings_rcvd"), 4);
    assert_eq!(column(&hx, "h2_settings_rcvd"), 8);
    let same = |d: &[(String, u64)]| -> Vec<(String, u64)> {
        d.iter()
            .filter(|(k, _)| k != "h2_settings_rcvd")
            .cloned()
            .collect()
    };
    assert_eq!(
        same(&lb),
        same(&hx),
        "ringlb's h2_* columns, then HAProxy's"
    );
    assert_eq!(column(&lb, "h2_total_connections"), 4);
}
