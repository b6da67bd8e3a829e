//! The response parser: any bytes are parsed without a panic; an accepted response is
//! rewritten into a head that parses again with the same status and framing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringlb::http::head::{parse_response, Origin, Parsed, TunnelAsk};

fuzz_target!(|data: &[u8]| {
    let (flags, data) = match data.split_first() {
        Some((f, d)) => (*f, d),
        None => return,
    };
    let (is_head, minor) = (flags & 1 != 0, (flags >> 2) & 1);
    let origin = match flags & 2 {
        0 => Origin::Http1,
        _ => Origin::Http2,
    };
    let ask = match (flags >> 4) & 3 {
        1 => TunnelAsk::Upgrade,
        2 => TunnelAsk::Connect,
        _ => TunnelAsk::No,
    };
    let mut ka = flags & 8 != 0;
    let mut out = Vec::new();
    let Parsed::Done(r) = parse_response(data, origin, 101, is_head, ask, minor, &mut ka, &mut out)
    else {
        return;
    };
    assert!(r.head_len <= data.len());
    let mut ka2 = ka;
    let mut out2 = Vec::new();
    // The rewrite may add one field (`Connection: close` / `keep-alive` / `upgrade`).
    match parse_response(&out, origin, 102, is_head, ask, minor, &mut ka2, &mut out2) {
        Parsed::Done(r2) => {
            assert_eq!(r2.status, r.status);
            assert_eq!(r2.framing, r.framing);
            assert_eq!(r2.head_len, out.len());
        }
        _ => panic!("the rewritten head does not parse: {:?}", String::from_utf8_lossy(&out)),
    }
});
