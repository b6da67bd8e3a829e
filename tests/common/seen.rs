//! The Python h2 server of tests/fixtures/h2/seen_server.py (Python's h2 package):
//! it answers each request with the header block it received, pseudo-headers
//! included (the h2 crate's server cannot show `:scheme` without `:authority`), and
//! reports the DATA frames, GOAWAY and end of its connections. Killed by its PID when
//! dropped. The other Python h2 servers of tests/fixtures/h2/ start the same way
//! (`start_fixture`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

pub struct SeenServer {
    child: Child,
    pub addr: SocketAddr,
    events: Arc<Mutex<Vec<String>>>,
}

impl SeenServer {
    /// Cleartext, or TLS offering h2 with `pem` (certificate and key). `None` when
    /// python3 lacks the h2 package (scripts/test-all installs it).
    pub fn start(pem: Option<&Path>) -> Option<SeenServer> {
        Self::start_fixture("seen_server.py", pem)
    }

    /// Another server of `tests/fixtures/h2/` (`script`) that prints its port first,
    /// such as status_server.py (answers written in the request path).
    pub fn start_fixture(script: &str, pem: Option<&Path>) -> Option<SeenServer> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/h2")
            .join(script);
        let mut cmd = Command::new("python3");
        cmd.arg(script).stdout(Stdio::piped()).stderr(Stdio::null());
        if let Some(p) = pem {
            cmd.arg(p);
        }
        let mut child = cmd.spawn().ok()?;
        let mut out = BufReader::new(child.stdout.take()?);
        let mut line = String::new();
        let _ = out.read_line(&mut line);
        let Ok(port) = line.trim().parse::<u16>() else {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        };
        let events = Arc::new(Mutex::new(Vec::new()));
        let ev = events.clone();
        std::thread::spawn(move || {
            for l in out.lines() {
                let Ok(l) = l else { break };
                ev.lock().unwrap().push(l);
            }
        });
        Some(SeenServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            events,
        })
    }

    /// The connection events so far: `data LEN`, `goaway CODE`, `closed`.
    pub fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

impl Drop for SeenServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
