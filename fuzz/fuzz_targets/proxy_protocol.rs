//! The PROXY protocol parser (v1 and v2): no panic; a complete header lies within the
//! input, and every shorter prefix of it asks for more bytes or fails the same way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringlb::proxy_protocol::parse;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((_, len))) = parse(data) {
        assert!(len > 0 && len <= data.len());
        assert!(matches!(parse(&data[..len]), Ok(Some((_, l))) if l == len));
        for k in 0..len {
            assert!(!matches!(parse(&data[..k]), Ok(Some(_))), "complete at {k} < {len}");
        }
    }
});
