//! The TOML config reader and validator: any text gives a config or errors, never a
//! panic (server names are not resolved while fuzzing).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ringlb::config::from_toml_str(text);
    }
});
