//! `show servers state` as the server-state tests compare it (tests/server_state_file.rs,
//! tests/haproxy_diff_server_state.rs): the fields two processes must agree on.

/// The fields both processes must agree on, per server line of `show servers state`:
/// be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight
/// srv_iweight and srv_port (not the times, nor the check fields of unchecked servers).
pub fn state_rows(dump: &str) -> Vec<Vec<String>> {
    assert!(dump.starts_with("1\n# be_id "), "{dump}");
    dump.lines()
        .skip(2)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            assert!(w.len() >= 20, "short line {l:?}");
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 18]
                .iter()
                .map(|&i| w[i].to_string())
                .collect()
        })
        .collect()
}

/// The row of server `name`.
pub fn row<'a>(rows: &'a [Vec<String>], name: &str) -> &'a Vec<String> {
    rows.iter()
        .find(|r| r[3] == name)
        .unwrap_or_else(|| panic!("no server {name} in {rows:?}"))
}

/// Waits (5s at most) until `text()` (a process's output, read by another thread)
/// contains `needle`; panics with what it has then.
pub fn await_text(text: impl Fn() -> String, needle: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !text().contains(needle) {
        if std::time::Instant::now() >= deadline {
            panic!("no {needle:?} in:\n{}", text());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
