//! `ringlb demo`: three small HTTP backends inside the process, and a balancer in front
//! of them built from an embedded config through the same code path as `ringlb -f`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::from_toml_str;
use crate::Error;

/// The embedded default; `{PORT}` and `{S1}`..`{S3}` are filled in at start.
pub const DEMO_CONFIG: &str = r#"
# ringlb demo: one HTTP frontend, round robin over three local backends.
[timeout]
connect = "1s"
server = "10s"

[frontend.demo]
bind = "127.0.0.1:{PORT}"
mode = "http"
default_backend = "demo"
forward_for = true

[backend.demo]
balance = "round_robin"
[[backend.demo.server]]
name = "backend1"
addr = "{S1}"
[[backend.demo.server]]
name = "backend2"
addr = "{S2}"
[[backend.demo.server]]
name = "backend3"
addr = "{S3}"
"#;

pub fn run(port: u16) -> Result<(), Error> {
    let mut counters = Vec::new();
    let mut text = DEMO_CONFIG.replace("{PORT}", &port.to_string());
    for i in 1..=3 {
        let served = Arc::new(AtomicU64::new(0));
        let addr = start_backend(i, served.clone()).map_err(Error::Io)?;
        text = text.replace(&format!("{{S{i}}}"), &addr.to_string());
        counters.push(served);
    }
    let cfg = from_toml_str(&text).map_err(Error::Config)?;
    crate::run_with(cfg, None, |running| {
        if let Some((_, addr)) = running.listening.first() {
            println!("demo: three backends behind http://{addr}/ — try: curl http://{addr}/");
        }
        std::thread::Builder::new()
            .name("ringlb-demo-report".into())
            .spawn(move || report(counters))
            .ok();
    })
}

/// Once a second, while traffic flows, prints what each backend served.
fn report(counters: Vec<Arc<AtomicU64>>) {
    let mut last = vec![0u64; counters.len()];
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        if now != last {
            let parts: Vec<String> = now
                .iter()
                .enumerate()
                .map(|(i, n)| format!("backend{}={n}", i + 1))
                .collect();
            println!("served: {}", parts.join(" "));
            let _ = std::io::stdout().flush();
            last = now;
        }
    }
}

fn start_backend(id: usize, served: Arc<AtomicU64>) -> std::io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new()
        .name(format!("ringlb-demo-backend{id}"))
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let served = served.clone();
                std::thread::spawn(move || serve_backend(id, stream, served));
            }
        })?;
    Ok(addr)
}

/// A minimal keep-alive HTTP/1.1 server: reads a head (and a Content-Length body),
/// answers with its name.
fn serve_backend(id: usize, stream: TcpStream, served: Arc<AtomicU64>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut content_length = 0usize;
        let mut close = false;
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let is_head = line.starts_with("HEAD ");
        loop {
            let mut h = String::new();
            match reader.read_line(&mut h) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((name, value)) = h.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = value.parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("connection")
                    && value.eq_ignore_ascii_case("close")
                {
                    close = true;
                }
            }
        }
        if content_length > 0
            && std::io::copy(
                &mut (&mut reader).take(content_length as u64),
                &mut std::io::sink(),
            )
            .is_err()
        {
            return;
        }
        let n = served.fetch_add(1, Ordering::Relaxed) + 1;
        let body = format!("hello from backend {id} (request {n})\n");
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Backend: backend{id}\r\n\r\n",
            body.len()
        );
        let mut out = head.into_bytes();
        if !is_head {
            out.extend_from_slice(body.as_bytes());
        }
        if writer.write_all(&out).is_err() || close {
            return;
        }
    }
}
