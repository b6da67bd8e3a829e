//! HTTP/2 flood defences on the real binary, frames written by hand over real sockets
//! (`bind ... proto h2`): a PING flood, a SETTINGS flood, empty DATA frames, a
//! CONTINUATION flood (CVE-2024-27316), Rapid Reset (CVE-2023-44487, in one burst and
//! paced so that every stream is accepted first) and MadeYouReset (CVE-2025-8671:
//! malformed HEADERS provoke a reset per stream) each end their connection with
//! GOAWAY(ENHANCE_YOUR_CALM); a client on another connection, opened before the flood,
//! is still served after it; the server sees a bounded number of requests; and the
//! Prometheus exporter counts the connection under its cause.

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::h2::{block, frame, END_HEADERS, END_STREAM, PREFACE};
use common::haproxy::ringlb_cfg;
use common::*;

const ENHANCE_YOUR_CALM: u32 = 0xb;

fn get(path: &str) -> Vec<u8> {
    block(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "t.test"),
    ])
}

/// A connection past its preface and SETTINGS.
fn open(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = PREFACE.to_vec();
    out.extend(frame(4, 0, 0, &[]));
    s.write_all(&out).unwrap();
    s
}

/// Reads frames until a GOAWAY: its error code (`None`: the connection closed or
/// timed out first). Frames for streams are skipped.
fn goaway_code(s: &mut TcpStream) -> Option<u32> {
    loop {
        let mut h = [0u8; 9];
        s.read_exact(&mut h).ok()?;
        let len = (h[0] as usize) << 16 | (h[1] as usize) << 8 | h[2] as usize;
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).ok()?;
        if h[3] == 7 {
            return Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()));
        }
    }
}

/// Stream `id`'s response status on `s` (after `GET /`), skipping other frames.
fn answered(s: &mut TcpStream, id: u32) -> bool {
    s.write_all(&frame(1, END_STREAM | END_HEADERS, id, &get("/")))
        .unwrap();
    loop {
        let mut h = [0u8; 9];
        if s.read_exact(&mut h).is_err() {
            return false;
        }
        let len = (h[0] as usize) << 16 | (h[1] as usize) << 8 | h[2] as usize;
        let mut payload = vec![0u8; len];
        if s.read_exact(&mut payload).is_err() {
            return false;
        }
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        match h[3] {
            7 => return false,
            3 if stream == id => return false,
            1 if stream == id => return true,
            // A PING from the server is answered.
            6 if h[4] & 1 == 0 => s.write_all(&frame(6, 1, 0, &payload)).unwrap(),
            _ => {}
        }
    }
}

struct Setup {
    app: TestBackend,
    _lb: RingLb,
    addr: SocketAddr,
    metrics: SocketAddr,
}

fn setup() -> Setup {
    let app = TestBackend::start("app");
    let lb = ringlb_cfg(&format!(
        "global\n    nbthread 1\n\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\n\
frontend web\n    bind 127.0.0.1:0 proto h2\n    default_backend app\n\n\
frontend stats\n    bind 127.0.0.1:0\n    http-request use-service prometheus-exporter if {{ path /metrics }}\n\n\
backend app\n    server s1 {}\n",
        app.addr()
    ));
    let addr = lb.addr("web");
    let metrics = lb.addr("stats");
    Setup {
        app,
        _lb: lb,
        addr,
        metrics,
    }
}

/// `ringlb_h2_calm_total` for `cause` on frontend web.
fn calm(metrics: SocketAddr, cause: &str) -> f64 {
    let r = http_get(metrics, "/metrics");
    metric(
        &r.body_str(),
        &format!("ringlb_h2_calm_total{{proxy=\"web\",cause=\"{cause}\"}}"),
    )
    .unwrap_or_else(|| panic!("no ringlb_h2_calm_total for {cause}"))
}

/// Runs `flood` on a fresh connection while another, opened before it, waits: the
/// flood gets GOAWAY(ENHANCE_YOUR_CALM), the other client is served after it, and the
/// connection is counted under `cause`.
fn flood_is_calmed(t: &Setup, cause: &str, flood: impl FnOnce(&mut TcpStream)) {
    let mut bystander = open(t.addr);
    assert!(
        answered(&mut bystander, 1),
        "the bystander is served before"
    );
    let before = calm(t.metrics, cause);
    let mut s = open(t.addr);
    flood(&mut s);
    assert_eq!(
        goaway_code(&mut s),
        Some(ENHANCE_YOUR_CALM),
        "{cause}: GOAWAY(ENHANCE_YOUR_CALM)"
    );
    assert!(answered(&mut bystander, 3), "the bystander is served after");
    assert!(answered(&mut open(t.addr), 1), "a new client is served");
    wait_for("the cause counted", Duration::from_secs(5), || {
        calm(t.metrics, cause) == before + 1.0
    });
}

/// Writes `bytes`; the server may close before all of them are taken.
fn send(s: &mut TcpStream, bytes: &[u8]) {
    let _ = s.write_all(bytes);
}

#[test]
fn a_ping_flood_is_calmed() {
    let t = setup();
    flood_is_calmed(&t, "ping", |s| {
        let pings: Vec<u8> = (0..300u64)
            .flat_map(|i| frame(6, 0, 0, &i.to_be_bytes()))
            .collect();
        send(s, &pings);
    });
}

#[test]
fn a_settings_flood_is_calmed() {
    let t = setup();
    flood_is_calmed(&t, "settings", |s| {
        let settings: Vec<u8> = (0..300).flat_map(|_| frame(4, 0, 0, &[])).collect();
        send(s, &settings);
    });
}

#[test]
fn empty_data_frames_are_calmed() {
    let t = setup();
    flood_is_calmed(&t, "empty_data", |s| {
        let mut out = frame(
            1,
            END_HEADERS,
            1,
            &block(&[
                (":method", "POST"),
                (":scheme", "http"),
                (":path", "/echo"),
                (":authority", "t.test"),
            ]),
        );
        for _ in 0..300 {
            out.extend(frame(0, 0, 1, &[]));
        }
        send(s, &out);
    });
    assert!(t.app.requests() <= 3, "{} requests", t.app.requests());
}

#[test]
fn a_continuation_flood_is_calmed() {
    let t = setup();
    flood_is_calmed(&t, "continuation", |s| {
        let mut out = frame(1, 0, 1, &get("/"));
        let field = block(&[("x-a", "b")]);
        for _ in 0..1000 {
            out.extend(frame(9, 0, 1, &field));
        }
        send(s, &out);
    });
}

/// 10,000 HEADERS + RST_STREAM pairs in one burst: GOAWAY, and at most 100 requests
/// at the server.
#[test]
fn a_rapid_reset_burst_is_calmed_and_costs_the_server_little() {
    let t = setup();
    flood_is_calmed(&t, "rapid_reset", |s| {
        let mut out = Vec::new();
        let head = get("/");
        for i in 0..10_000u32 {
            let id = 2 * i + 1;
            out.extend(frame(1, END_STREAM | END_HEADERS, id, &head));
            out.extend(frame(3, 0, id, &8u32.to_be_bytes()));
        }
        let mut w = s.try_clone().unwrap();
        // Written from a thread while this one reads the GOAWAY.
        std::thread::spawn(move || send(&mut w, &out));
    });
    // The bystander's and the new client's requests, plus the flood's.
    assert!(t.app.requests() <= 100, "{} requests", t.app.requests());
}

/// Rapid Reset paced so that ringlb accepts each stream and sends its request to the
/// server before the reset arrives (the h2 crate's pending-accept limit never sees
/// it): the connection is still ended, within the reset budget.
#[test]
fn a_paced_rapid_reset_is_calmed() {
    let t = setup();
    let head = get("/sleep/2000");
    flood_is_calmed(&t, "rapid_reset", |s| {
        let mut w = s.try_clone().unwrap();
        std::thread::spawn(move || {
            for i in 0..1000u32 {
                let id = 2 * i + 1;
                if w.write_all(&frame(1, END_STREAM | END_HEADERS, id, &head))
                    .is_err()
                {
                    return;
                }
                std::thread::sleep(Duration::from_millis(2));
                if w.write_all(&frame(3, 0, id, &8u32.to_be_bytes())).is_err() {
                    return;
                }
            }
        });
    });
    assert!(t.app.requests() <= 100, "{} requests", t.app.requests());
}

/// MadeYouReset: each stream's HEADERS carries a `connection` field, which ringlb
/// answers with RST_STREAM(PROTOCOL_ERROR): past the budget of resets, GOAWAY, and
/// none of these requests reaches the server.
#[test]
fn made_you_reset_is_calmed() {
    let t = setup();
    flood_is_calmed(&t, "local_resets", |s| {
        let mut out = Vec::new();
        let mut head = get("/");
        head.extend(block(&[("connection", "keep-alive")]));
        for i in 0..300u32 {
            out.extend(frame(1, END_STREAM | END_HEADERS, 2 * i + 1, &head));
        }
        let mut w = s.try_clone().unwrap();
        std::thread::spawn(move || send(&mut w, &out));
    });
    // The bystander's two requests and the new client's.
    assert_eq!(t.app.requests(), 3);
}
