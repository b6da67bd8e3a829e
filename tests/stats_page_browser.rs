//! The stats page in a real browser (issue 22): headless Chromium (Debian's
//! `chromium`) loads ringlb's page and the test reads the DOM it built: a row per
//! server, HAProxy's column groups and ringlb's latency group, the process block,
//! the legend, the tooltips, `stats refresh`, "Hide 'DOWN' servers", the CSV and
//! JSON links; a screenshot is taken and checked to be a real picture. Then the
//! admin form's actions (`stats admin if COND`): drain takes effect before the
//! answer (no request reaches the server after it), the page reports the outcome,
//! a client the condition refuses is denied.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::*;

/// Runs headless Chromium on `url` with `extra` flags and a fresh profile; returns
/// its stdout (the DOM with `--dump-dom`).
fn chromium(url: &str, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let dir = format!("--user-data-dir={}", profile.path().display());
    let mut args = vec![
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1600,1000",
        dir.as_str(),
    ];
    args.extend_from_slice(extra);
    args.push(url);
    let out = common::haproxy::run_with_env("chromium", &args, &[], Duration::from_secs(90));
    assert!(
        out.status.success(),
        "chromium failed on {url}: {}",
        out.stderr
    );
    out.stdout
}

fn start(b: &[&TestBackend]) -> RingLb {
    let cfg = format!(
        "global\n    nbthread 2\n\ndefaults\n    mode http\n    timeout connect 500ms\n    timeout client 5s\n    timeout server 5s\n\n\
         frontend web\n    bind 127.0.0.1:0\n    stats enable\n    stats uri /stats\n    stats refresh 5s\n    stats admin if LOCALHOST\n    default_backend app\n\n\
         listen readonly\n    bind 127.0.0.1:0\n    stats enable\n    stats uri /stats\n    stats admin if {{ src 10.9.9.9 }}\n\n\
         backend app\n    option httpchk GET /\n    default-server inter 200ms fall 1 rise 1\n    server s1 {} check\n    server s2 {} check\n    server bk1 {} check backup\n    server dead 127.0.0.1:1 check\n",
        b[0].addr(),
        b[1].addr(),
        b[2].addr()
    );
    let file = tempfile::Builder::new().suffix(".cfg").tempfile().unwrap();
    std::fs::write(file.path(), cfg).unwrap();
    let path = file.path().to_str().unwrap().to_string();
    RingLb::launch(&["-f", &path], Some(file), |l| l.starts_with("ready"))
}

/// Waits until `app/dead` is DOWN on the page.
fn settled(url: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let addr: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    while std::time::Instant::now() < deadline {
        let page = http_get(addr, "/stats;csv").body_str();
        if page
            .lines()
            .any(|l| l.starts_with("app,dead,") && l.contains(",DOWN,"))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("app/dead never went DOWN");
}

/// The `<tr>` of row `px/name` in a DOM.
fn row<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!("data-row=\"{id}\""))
        .unwrap_or_else(|| panic!("no row {id} in the page"));
    let start = dom[..at].rfind("<tr").unwrap();
    // Tooltips nest tables: the row runs to the next row or the form below.
    let rest = &dom[at + 9..];
    let end = [
        rest.find("data-row=\""),
        rest.find("</form>"),
        rest.find("class=\"tbl"),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(rest.len());
    &dom[start..at + 9 + end]
}

#[test]
fn the_page_renders_every_server_and_column_group() {
    let b = [
        TestBackend::start("s1"),
        TestBackend::start("s2"),
        TestBackend::start("bk1"),
    ];
    let lb = start(&[&b[0], &b[1], &b[2]]);
    let web = lb.addr("web");
    let url = format!("http://{web}/stats");
    settled(&url);
    for _ in 0..20 {
        assert_eq!(http_get(web, "/").status, 200);
    }
    let dom = chromium(&url, &["--dump-dom"]);
    for id in [
        "web/Frontend",
        "app/s1",
        "app/s2",
        "app/bk1",
        "app/dead",
        "app/Backend",
        "readonly/Frontend",
    ] {
        row(&dom, id);
    }
    // HAProxy's column groups in every proxy table, then ringlb's latencies.
    let tables = dom.matches("class=\"tbl proxy\"").count();
    assert_eq!(tables, 3, "a table per proxy (web, readonly, app)");
    for group in [
        "Queue",
        "Session rate",
        "Sessions",
        "Bytes",
        "Denied",
        "Errors",
        "Warnings",
        "Server",
        "Latency",
    ] {
        let n = dom
            .matches(&format!("class=\"group\">{group}</th>"))
            .count();
        assert_eq!(n, tables, "column group {group}");
    }
    for col in [
        "LbTot", "LastChk", "Wght", "Dwntme", "Thrtle", "p50", "p99", "p99.9",
    ] {
        assert!(dom.contains(&format!("<th>{col}</th>")), "column {col}");
    }
    assert!(dom.contains("id=\"process\"") && dom.contains("General process information"));
    assert!(dom.contains("id=\"legend\"") && dom.contains("class=\"maintain\""));
    assert!(dom.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
    assert!(dom.contains("class=\"tips\""), "tooltips");
    assert!(dom.contains("href=\"/stats;csv;norefresh\""));
    assert!(dom.contains("href=\"/stats;json;norefresh\""));
    assert!(dom.contains("href=\"/stats;up\""), "hide DOWN servers");
    // Colours follow the states; latencies are filled for servers that answered.
    assert!(row(&dom, "app/s1").contains("class=\"active_up\""));
    assert!(row(&dom, "app/bk1").contains("class=\"backup_up\""));
    assert!(row(&dom, "app/dead").contains("class=\"active_down\""));
    assert!(
        row(&dom, "app/s1").contains(" ms</td>"),
        "{}",
        row(&dom, "app/s1")
    );
    assert!(row(&dom, "app/Backend").contains(" ms</td>"));

    let up = chromium(&format!("{url};up"), &["--dump-dom"]);
    assert!(!up.contains("data-row=\"app/dead\"") && up.contains("data-row=\"app/s1\""));
    let fixed = chromium(&format!("{url};norefresh"), &["--dump-dom"]);
    assert!(!fixed.contains("http-equiv=\"refresh\""));

    // The export links answer.
    let csv = http_get(web, "/stats;csv;norefresh");
    assert!(csv.body_str().starts_with("# pxname,svname,"));
    let json: serde_json::Value =
        serde_json::from_str(&http_get(web, "/stats;json;norefresh").body_str()).unwrap();
    assert_eq!(json.as_array().map(Vec::len), Some(8), "one array per row");

    // A screenshot: a PNG of the window's size.
    let shot = tempfile::tempdir().unwrap();
    let png = shot.path().join("stats.png");
    chromium(&url, &[&format!("--screenshot={}", png.display())]);
    check_png(&png, 1600, 1000);
    if let Ok(dir) = std::env::var("RINGLB_SCREENSHOT_DIR") {
        let _ = std::fs::copy(&png, Path::new(&dir).join("stats.png"));
    }
}

/// A PNG file whose header says `width` × `height`, with more than a blank page in it.
fn check_png(path: &Path, width: u32, height: u32) {
    let bytes = std::fs::read(path).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((w, h), (width, height));
    assert!(bytes.len() > 20_000, "{} bytes: a blank page?", bytes.len());
}

fn post(addr: std::net::SocketAddr, body: &str) -> Response {
    let mut c = HttpClient::connect(addr);
    c.request(format!(
        "POST /stats HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ))
}

#[test]
fn admin_actions_apply_before_the_answer() {
    let b = [
        TestBackend::start("s1"),
        TestBackend::start("s2"),
        TestBackend::start("bk1"),
    ];
    let lb = start(&[&b[0], &b[1], &b[2]]);
    let web = lb.addr("web");
    let url = format!("http://{web}/stats");
    settled(&url);
    // The form's own fields: the backend by id, as the page writes it.
    let dom = chromium(&url, &["--dump-dom"]);
    let app = &dom[dom.find("id=\"px-app\"").expect("app's table")..];
    let id = app
        .split("name=\"b\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the admin form's backend field")
        .to_string();
    let r = post(
        web,
        &format!("s=s2&action=drain&b={}", id.replace('#', "%23")),
    );
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/stats;st=DONE"));
    // In force when answered: no new request reaches s2 (health checks still do: they
    // ask for `/`, the traffic for `/t`).
    let before = b[1].requests_to("/t");
    for _ in 0..20 {
        assert_eq!(http_get(web, "/t").status, 200);
    }
    assert_eq!(
        b[1].requests_to("/t"),
        before,
        "a drained server got requests"
    );
    let page = chromium(&format!("{url};st=DONE"), &["--dump-dom"]);
    assert!(page.contains("Action processed successfully."));
    assert!(row(&page, "app/s2").contains("class=\"active_draining\""));
    assert!(row(&page, "app/s2").contains("DRAIN"));
    // The same as the runtime API's: `show stat` says DRAIN.
    assert!(http_get(web, "/stats;csv")
        .body_str()
        .lines()
        .any(|l| l.starts_with("app,s2,") && l.contains(",DRAIN,")));
    // Partly applied: one known server, one unknown.
    let r = post(web, "s=s2&s=nope&action=ready&b=app");
    assert_eq!(r.header("location"), Some("/stats;st=PART"));
    let r = post(web, "s=s1&action=maint&b=app");
    assert_eq!(r.header("location"), Some("/stats;st=DONE"));
    let before = b[0].requests_to("/t");
    assert_eq!(http_get(web, "/t").status, 200);
    assert_eq!(
        b[0].requests_to("/t"),
        before,
        "s1 in maintenance got a request"
    );
    let r = post(web, "s=s1&action=ready&b=app");
    assert_eq!(r.header("location"), Some("/stats;st=DONE"));
    // Bad parameters, no server, and a client the condition refuses.
    let r = post(web, "s=s1&action=explode&b=app");
    assert_eq!(r.header("location"), Some("/stats;st=ERRP"));
    let r = post(web, "action=drain&b=app");
    assert_eq!(r.header("location"), Some("/stats;st=NONE"));
    let r = post(lb.addr("readonly"), "s=s1&action=maint&b=app");
    assert_eq!(r.header("location"), Some("/stats;st=DENY"));
    let denied = chromium(
        &format!("http://{}/stats;st=DENY", lb.addr("readonly")),
        &["--dump-dom"],
    );
    assert!(denied.contains("Action denied."));
    assert!(
        !denied.contains("name=\"action\""),
        "no form without stats admin"
    );
    assert!(http_get(web, "/stats;csv")
        .body_str()
        .lines()
        .any(|l| l.starts_with("app,s1,") && l.contains(",UP,")));
}
