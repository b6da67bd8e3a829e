//! The stats page's admin form (`stats admin if COND`): a POST of
//! `action=ready|drain|maint&s=SERVER...&b=BACKEND` applies the state to each
//! server through the runtime API's own path (in force on every shard when
//! answered); the outcome is HAProxy's code for the redirect (`;st=DONE`).

use super::Core;

/// The admin form's actions (`action=drain&s=s1&s=s2&b=app`, `b` a name or `#ID`),
/// applied through the runtime API's own path (in force when answered). Returns
/// HAProxy's outcome code: DONE, PART, NONE, ERRP.
pub(super) fn apply(core: &Core, body: &[u8]) -> &'static str {
    let text = String::from_utf8_lossy(body);
    let mut action = None;
    let mut backend = None;
    let mut servers = Vec::new();
    for pair in text.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = url_decode(v);
        match k {
            "action" => action = Some(v),
            "b" => backend = Some(v),
            "s" => servers.push(v),
            _ => {}
        }
    }
    let cfg = core.cfg();
    let Some(b) = backend.and_then(|b| match b.strip_prefix('#') {
        Some(id) => cfg
            .backends
            .iter()
            .enumerate()
            .position(|(i, _)| super::csv::proxy_id(&cfg, false, i).to_string() == id),
        None => cfg.backends.iter().position(|x| x.name == b),
    }) else {
        return "ERRP";
    };
    let state = match action.as_deref() {
        Some(a @ ("ready" | "drain" | "maint")) => a.to_string(),
        _ => return "ERRP",
    };
    if servers.is_empty() {
        return "NONE";
    }
    let mut altered = 0;
    for s in &servers {
        if let Some(si) = cfg.backends[b].servers.iter().position(|x| &x.name == s) {
            if super::servers::set_state(core, b, si, &state).is_empty() {
                altered += 1;
            }
        }
    }
    match altered {
        0 => "ERRP",
        n if n == servers.len() => "DONE",
        _ => "PART",
    }
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space).
fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn form_values_decode() {
        assert_eq!(super::url_decode("%233+x%2Fy"), "#3 x/y");
        assert_eq!(super::url_decode("100%"), "100%");
    }
}
