//! Keeps README.md's two configuration tables honest. The haproxy.cfg keyword table
//! (`| keyword | status | notes |`) is walked row by row against
//! `tests/keyword_tests.toml`: every `supported` row names tests that exist (a `#[test]`
//! function, not ignored) and would fail if the keyword were ignored; every `error` row
//! is refused by `ringlb -c` on the line of its keyword, every `accepted, warning` row
//! draws a `warning:` on its line. The TOML key table (`| key | default | meaning |`) is
//! walked too: each key, with a sample value, passes `ringlb -c`.

use crate::common;
use crate::tls_util;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;
use toml::Value;

use common::check_config_file;

const STATUSES: [&str; 3] = ["supported", "accepted, warning", "error"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Mapping {
    row: Vec<Row>,
    toml_keys: BTreeMap<String, Value>,
    /// Keys a sample needs beside it (`hash_key` needs `balance = "hash"`).
    #[serde(default)]
    toml_with: BTreeMap<String, BTreeMap<String, Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    keyword: String,
    status: String,
    #[serde(default)]
    tests: Vec<String>,
    #[serde(default)]
    probes: Vec<Probe>,
}

/// One line placed in a generated haproxy.cfg: `at` is `global`, `defaults`,
/// `frontend`, `backend` (a line in that section), `bind` or `server` (words appended to
/// the bind or server line) or `top` (a section of its own, after the others).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Probe {
    at: String,
    line: String,
}

fn mapping() -> Mapping {
    let p = root().join("tests/keyword_tests.toml");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The cells of each body row of the README table whose header row is `header`.
fn readme_table(header: &str) -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let mut lines = readme.lines().skip_while(|l| l.trim() != header);
    assert!(lines.next().is_some(), "README.md has no table `{header}`");
    let rows: Vec<Vec<String>> = lines
        .take_while(|l| l.starts_with('|'))
        .filter(|l| !l.starts_with("| ---"))
        .map(cells)
        .collect();
    assert!(!rows.is_empty(), "README.md's table `{header}` is empty");
    rows
}

/// A Markdown table row split on the `|` that are not escaped (`\|` stays in a cell).
fn cells(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev = ' ';
    for c in line.trim().trim_start_matches('|').chars() {
        if c == '|' && prev != '\\' {
            out.push(cur.trim().to_string());
            cur.clear();
        } else {
            cur.push(c);
        }
        prev = c;
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// The `#[test]` functions of a Rust file that are not `#[ignore]`d.
fn test_fns(src: &str) -> BTreeSet<String> {
    let lines: Vec<&str> = src.lines().map(str::trim).collect();
    let mut out = BTreeSet::new();
    for (i, l) in lines.iter().enumerate() {
        if !l.starts_with("#[test]") {
            continue;
        }
        let attr = |l: &str| l.starts_with("#[") || l.starts_with("//");
        let mut first = i;
        while first > 0 && attr(lines[first - 1]) {
            first -= 1;
        }
        let mut decl = i + 1;
        while decl < lines.len() && attr(lines[decl]) {
            decl += 1;
        }
        if lines[first..decl].iter().any(|l| l.starts_with("#[ignore")) {
            continue;
        }
        let decl = lines.get(decl).copied().unwrap_or("");
        let name = decl
            .split("fn ")
            .nth(1)
            .and_then(|r| r.split(|c: char| !(c.is_alphanumeric() || c == '_')).next());
        if let Some(n) = name {
            out.insert(n.to_string());
        }
    }
    out
}

/// Why `test` (`tests/FILE.rs::fn` or `src/PATH.rs::tests::fn`) does not name a test
/// that runs, if it does not.
fn missing_test(
    test: &str,
    cache: &mut BTreeMap<String, Option<BTreeSet<String>>>,
) -> Option<String> {
    let Some((file, name)) = test.split_once("::") else {
        return Some(format!("`{test}` is not FILE.rs::fn_name"));
    };
    let name = name.strip_prefix("tests::").unwrap_or(name);
    if !(file.starts_with("tests/") || file.starts_with("src/")) || !file.ends_with(".rs") {
        return Some(format!(
            "`{test}`: the file must be tests/*.rs or src/**/*.rs"
        ));
    }
    let fns = cache.entry(file.to_string()).or_insert_with(|| {
        std::fs::read_to_string(root().join(file))
            .ok()
            .map(|s| test_fns(&s))
    });
    match fns {
        None => Some(format!("`{test}`: no file {file}")),
        Some(f) if !f.contains(name) => Some(format!(
            "`{test}`: {file} has no #[test] fn {name} (or it is #[ignore]d)"
        )),
        Some(_) => None,
    }
}

#[test]
fn every_row_has_an_allowed_status_and_every_supported_row_real_tests() {
    let rows = readme_table("| keyword | status | notes |");
    let map = mapping();
    let mut problems = Vec::new();
    let mut by_kw: BTreeMap<&str, &Row> = BTreeMap::new();
    for r in &map.row {
        if by_kw.insert(&r.keyword, r).is_some() {
            problems.push(format!("{}: mapped twice", r.keyword));
        }
        if !STATUSES.contains(&r.status.as_str()) {
            problems.push(format!(
                "{}: mapping status `{}` is none of {STATUSES:?}",
                r.keyword, r.status
            ));
        }
    }
    let mut cache = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for cells in &rows {
        let (kw, status) = match cells.as_slice() {
            [kw, status, _notes] => (kw.as_str(), status.as_str()),
            _ => {
                problems.push(format!("row {cells:?}: not three cells"));
                continue;
            }
        };
        if !seen.insert(kw) {
            problems.push(format!("{kw}: two rows start with the same cell"));
        }
        if !STATUSES.contains(&status) {
            problems.push(format!(
                "{kw}: status `{status}` is none of {STATUSES:?} (write `accepted, warning` for a warned keyword)"
            ));
        }
        if status == "accepted, warning" && cells[2].trim().is_empty() {
            problems.push(format!(
                "{kw}: an `accepted, warning` row must say why in its notes"
            ));
        }
        let Some(m) = by_kw.get(kw) else {
            problems.push(format!(
                "{kw}: no [[row]] with this keyword in tests/keyword_tests.toml"
            ));
            continue;
        };
        if m.status != status {
            problems.push(format!(
                "{kw}: README says `{status}`, the mapping `{}`",
                m.status
            ));
        }
        if status == "supported" && m.tests.is_empty() {
            problems.push(format!("{kw}: supported, but the mapping names no test"));
        }
        if status != "supported" && !m.tests.is_empty() {
            problems.push(format!(
                "{kw}: tests are for supported rows (this one is `{status}`)"
            ));
        }
        if status != "supported" && m.probes.is_empty() {
            problems.push(format!("{kw}: `{status}` needs at least one probe line"));
        }
        for t in &m.tests {
            if let Some(why) = missing_test(t, &mut cache) {
                problems.push(format!("{kw}: {why}"));
            }
        }
    }
    for r in &map.row {
        if !seen.contains(r.keyword.as_str()) {
            problems.push(format!(
                "{}: mapped, but README.md has no such row",
                r.keyword
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "README.md's keyword table and tests/keyword_tests.toml disagree ({} problems):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

/// The generated haproxy.cfg for `probe`, and the line it is on.
fn probe_cfg(probe: &Probe) -> Result<(String, usize), String> {
    let mut out: Vec<String> = Vec::new();
    let mut at_line = 0;
    let mut push = |out: &mut Vec<String>, l: String, mine: bool| {
        out.push(l);
        if mine {
            at_line = out.len();
        }
    };
    let p = probe.line.as_str();
    let here = |s: &str| probe.at == s;
    push(&mut out, "global".into(), false);
    push(&mut out, "    nbthread 1".into(), false);
    if here("global") {
        push(&mut out, format!("    {p}"), true);
    }
    for l in [
        "defaults",
        "    mode http",
        "    timeout connect 1s",
        "    timeout client 5s",
        "    timeout server 5s",
    ] {
        push(&mut out, l.into(), false);
    }
    if here("defaults") {
        push(&mut out, format!("    {p}"), true);
    }
    push(&mut out, "frontend web".into(), false);
    match here("bind") {
        true => push(&mut out, format!("    bind 127.0.0.1:0 {p}"), true),
        false => push(&mut out, "    bind 127.0.0.1:0".into(), false),
    }
    if here("frontend") {
        push(&mut out, format!("    {p}"), true);
    }
    push(&mut out, "    default_backend app".into(), false);
    push(&mut out, "backend app".into(), false);
    if here("backend") {
        push(&mut out, format!("    {p}"), true);
    }
    match here("server") {
        true => push(&mut out, format!("    server s1 127.0.0.1:1 {p}"), true),
        false => push(&mut out, "    server s1 127.0.0.1:1".into(), false),
    }
    if here("top") {
        for (i, l) in p.split('\n').enumerate() {
            let l = if i == 0 {
                l.to_string()
            } else {
                format!("    {l}")
            };
            push(&mut out, l, i == 0);
        }
    }
    if at_line == 0 {
        return Err(format!(
            "probe `at = \"{}\"` is none of global, defaults, frontend, backend, bind, server, top",
            probe.at
        ));
    }
    Ok((out.join("\n") + "\n", at_line))
}

#[test]
fn error_rows_are_refused_and_warning_rows_warned_on_their_line_by_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    // The frame alone is valid and draws no warning: whatever a probe draws is its own.
    let base = Probe {
        at: "top".into(),
        line: "# nothing".into(),
    };
    let (text, _) = probe_cfg(&base).unwrap();
    let path = dir.path().join("base.cfg");
    std::fs::write(&path, &text).unwrap();
    let out = check_config_file(path.to_str().unwrap());
    assert_eq!(
        out.code(),
        Some(0),
        "the probe frame must pass:\n{text}\n{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("warning:"),
        "the probe frame warns:\n{}",
        out.stderr
    );

    let mut problems = Vec::new();
    for (i, row) in mapping().row.iter().enumerate() {
        for (j, probe) in row.probes.iter().enumerate() {
            let (text, line) = match probe_cfg(probe) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(format!("{}: {e}", row.keyword));
                    continue;
                }
            };
            let path = dir.path().join(format!("r{i}p{j}.cfg"));
            std::fs::write(&path, &text).unwrap();
            let out = check_config_file(path.to_str().unwrap());
            let at = format!("{}:{line}:", path.display());
            let errors = out.stderr.lines().filter(|l| l.starts_with(&at)).count();
            let warned = out
                .stderr
                .lines()
                .any(|l| l.starts_with(&format!("warning: {at}")));
            let verdict = match row.status.as_str() {
                "error" if out.code() != Some(1) || errors == 0 => Some("refused on its line"),
                "accepted, warning" if out.code() != Some(0) || !warned => {
                    Some("accepted with a warning on its line")
                }
                "supported" if out.code() != Some(0) || warned => {
                    Some("accepted without a warning")
                }
                _ => None,
            };
            if let Some(want) = verdict {
                problems.push(format!(
                    "{}: `{}` ({}) should be {want} (line {line}); ringlb -c exited {:?}:\n      {}",
                    row.keyword,
                    probe.line,
                    probe.at,
                    out.code(),
                    out.stderr.trim().replace('\n', "\n      ")
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "rows whose status ringlb -c contradicts ({}):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

/// The keys one cell of the TOML table names: `a.b.c`, or `a.b.c` / `d` (a sibling of
/// `c`) / `e.f` (a full key); `, ` separates full keys too.
fn toml_keys(cell: &str) -> Vec<String> {
    let parts: Vec<&str> = cell
        .split(" / ")
        .flat_map(|p| p.split(", "))
        .map(|p| p.trim().trim_matches('`'))
        .collect();
    let first = parts[0];
    let parent = first.rsplit_once('.').map_or("", |(p, _)| p);
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| match i {
            0 => p.to_string(),
            _ if p.contains('.') => p.to_string(),
            _ => format!("{parent}.{p}"),
        })
        .collect()
}

/// A valid config for the key table: frontend `web` (NAME) with backend `app`, one
/// server; in samples `${CERT}` names a certificate, `${CA}` its CA, `${CRL}` a CRL,
/// `${CRTLIST}` a crt-list of the certificate, `${TICKETS}` a tls-ticket-keys file.
fn toml_base() -> Value {
    toml::from_str(
        "[runtime]\nshards = 1\n[frontend.web]\nbind = \"127.0.0.1:0\"\ndefault_backend = \"app\"\n[[backend.app.server]]\naddr = \"127.0.0.1:1\"\n",
    )
    .unwrap()
}

/// Sets `key` (dotted; `NAME` is web for a frontend, app for a backend; `server[]` is
/// the first server, `route[]` or `rate_limit[]` the whole list) to `value` in `doc`.
fn set_key(doc: &mut Value, key: &str, value: Value) -> Result<(), String> {
    let segs: Vec<&str> = key.split('.').collect();
    let mut cur = doc;
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        let seg = match *seg {
            "NAME" if segs.first() == Some(&"frontend") => "web",
            "NAME" if segs.first() == Some(&"backend") => "app",
            s => s,
        };
        let (name, elem) = match seg.strip_suffix("[]") {
            Some(n) => (n, true),
            None => (seg, false),
        };
        let table = cur
            .as_table_mut()
            .ok_or(format!("{key}: `{name}` is under a non-table"))?;
        if last {
            table.insert(name.into(), value);
            return Ok(());
        }
        let next = table
            .entry(name)
            .or_insert_with(|| Value::Table(Default::default()));
        cur = match (elem, next) {
            (true, Value::Array(a)) => a.first_mut().ok_or(format!("{key}: empty `{name}`"))?,
            (false, v) => v,
            (true, _) => return Err(format!("{key}: `{name}` is not a list")),
        };
    }
    Ok(())
}

/// `v` with `f` applied to every string in it.
fn subst_value(v: &Value, f: &dyn Fn(&str) -> String) -> Value {
    match v {
        Value::String(s) => Value::String(f(s)),
        Value::Array(a) => Value::Array(a.iter().map(|x| subst_value(x, f)).collect()),
        Value::Table(t) => Value::Table(
            t.iter()
                .map(|(k, x)| (k.clone(), subst_value(x, f)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[test]
fn every_key_of_the_toml_table_passes_the_check_with_its_sample_value() {
    let pki = tls_util::Pki::new("Key CA");
    pki.server(
        "cert.pem",
        &["a.test"],
        "a.test",
        tls_util::Alg::Ecdsa,
        false,
    );
    let crl = pki.crl("crl.pem", &[]);
    let cert = pki.path("cert.pem");
    let crt_list = pki.path("crt-list.txt");
    std::fs::write(&crt_list, format!("{} a.test\n", cert.display())).unwrap();
    // HAProxy's tls-ticket-keys file: base64 keys of 80 bytes, one a line.
    let tickets = pki.path("tickets.key");
    let key = |b: u8| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode([b; 80])
    };
    std::fs::write(&tickets, format!("{}\n{}\n{}\n", key(1), key(2), key(3))).unwrap();
    let subst = |s: &str| {
        s.replace("${CERT}", cert.to_str().unwrap())
            .replace("${CA}", pki.ca_path().to_str().unwrap())
            .replace("${CRL}", crl.to_str().unwrap())
            .replace("${CRTLIST}", crt_list.to_str().unwrap())
            .replace("${TICKETS}", tickets.to_str().unwrap())
    };
    let map = mapping();
    let mut problems = Vec::new();
    let mut listed = BTreeSet::new();
    for cells in readme_table("| key | default | meaning |") {
        for key in toml_keys(&cells[0]) {
            listed.insert(key.clone());
            let Some(sample) = map.toml_keys.get(&key) else {
                problems.push(format!(
                    "{key}: no sample value under [toml_keys] in tests/keyword_tests.toml"
                ));
                continue;
            };
            let sample = subst_value(sample, &subst);
            let mut doc = toml_base();
            if key.starts_with("frontend.NAME.tls.") && key != "frontend.NAME.tls.crt" {
                let crt = Value::Array(vec![Value::String(subst("${CERT}"))]);
                set_key(&mut doc, "frontend.NAME.tls.crt", crt).unwrap();
            }
            for (k, v) in map.toml_with.get(&key).into_iter().flatten() {
                if let Err(e) = set_key(&mut doc, k, subst_value(v, &subst)) {
                    problems.push(e);
                }
            }
            if let Err(e) = set_key(&mut doc, &key, sample) {
                problems.push(e);
                continue;
            }
            let text = toml::to_string(&doc).unwrap();
            let path = pki.path(&format!("{}.toml", key.replace(['.', '[', ']'], "_")));
            std::fs::write(&path, &text).unwrap();
            let out = check_config_file(path.to_str().unwrap());
            if out.code() != Some(0) {
                problems.push(format!(
                    "{key}: ringlb -c refuses it:\n      {}\n      {}",
                    text.trim().replace('\n', "\n      "),
                    out.stderr.trim().replace('\n', "\n      ")
                ));
            }
        }
    }
    for key in map.toml_keys.keys().chain(map.toml_with.keys()) {
        if !listed.contains(key) {
            problems.push(format!(
                "{key}: a sample value for a key README.md's table no longer lists"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "README.md's TOML key table and the parser disagree ({}):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}
