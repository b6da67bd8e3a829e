//! The haproxy.cfg reader and mapper: any text gives a config or errors with their
//! lines, never a panic (no environment variables, no DNS while fuzzing).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ringlb::config::from_haproxy_str(text, &|_| None);
    }
});
