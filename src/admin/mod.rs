//! The admin side: HAProxy's runtime API on unix and TCP sockets (`cli`), `show stat` CSV
//! (`csv`), and an HTTP listener with Prometheus `/metrics`, `/stats` JSON and `/ready`
//! (`http`). It runs on its own threads, asks shards for snapshots over channels and
//! merges them; a shard never waits for it.

mod cli;
mod csv;
mod dns;
mod fields;
mod http;
mod info;
mod maps;
mod metrics;
mod metrics_own;
mod page;
mod page_admin;
mod rows;
mod servers;
mod sessions;
mod ssl;
mod tables;

pub use metrics::Scope;

use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::Sender;

use crate::config::Service;
use crate::control::{Core, ServiceAnswer, ServiceQuery};

/// Runs one runtime API command (as if from the stats socket).
pub fn run_command(core: &Core, words: &[&str]) -> String {
    cli::run(core, words)
}

/// `set server SPEC addr|fqdn VALUE` made on another node: made here without sharing
/// it again, unless in force already (`None`); the runtime API's answer.
pub fn apply_shared_address(core: &Core, spec: &str, fqdn: bool, value: &str) -> Option<String> {
    dns::apply_shared(core, spec, fqdn, value)
}

pub struct Admin {
    pub core: Arc<Core>,
    /// The admin HTTP listener's address (port 0 in the config: the one picked).
    pub listen: Option<std::net::SocketAddr>,
    /// The TCP `stats socket` addresses (with the ports picked for port 0).
    pub stats_tcp: Vec<std::net::SocketAddr>,
    sockets: Vec<PathBuf>,
    /// Where shards send the requests for stats pages and metrics they received.
    pub services: Sender<ServiceQuery>,
}

impl Admin {
    /// Starts the runtime API and the HTTP listener that `cfg.admin` asks for.
    pub fn start(core: Arc<Core>) -> std::io::Result<Admin> {
        let cfg = core.cfg();
        for path in cfg.admin.unix_sockets() {
            // A socket file left by a previous run would make bind fail.
            if path.exists() && std::os::unix::net::UnixStream::connect(path).is_err() {
                let _ = std::fs::remove_file(path);
            }
            let listener = UnixListener::bind(path).map_err(|e| {
                std::io::Error::new(e.kind(), format!("stats socket {}: {e}", path.display()))
            })?;
            let core = core.clone();
            std::thread::Builder::new()
                .name("ringlb-cli".into())
                .spawn(move || cli::serve(core, listener))?;
        }
        let mut stats_tcp = Vec::new();
        for addr in &cfg.admin.stats_tcp {
            let listener = std::net::TcpListener::bind(addr)
                .map_err(|e| std::io::Error::new(e.kind(), format!("stats socket {addr}: {e}")))?;
            stats_tcp.push(listener.local_addr()?);
            let core = core.clone();
            std::thread::Builder::new()
                .name("ringlb-cli-tcp".into())
                .spawn(move || cli::serve_tcp(core, listener))?;
        }
        let mut listen = None;
        if let Some(addr) = cfg.admin.listen {
            let listener = std::net::TcpListener::bind(addr).map_err(|e| {
                std::io::Error::new(e.kind(), format!("admin listener {addr}: {e}"))
            })?;
            listen = listener.local_addr().ok();
            let core = core.clone();
            std::thread::Builder::new()
                .name("ringlb-admin-http".into())
                .spawn(move || http::serve(core, listener))?;
        }
        let (services, queries) = crossbeam_channel::unbounded::<ServiceQuery>();
        {
            let core = core.clone();
            std::thread::Builder::new()
                .name("ringlb-admin-svc".into())
                .spawn(move || {
                    for q in queries {
                        let answer = answer(&core, &q);
                        let _ = q.reply.send(answer);
                    }
                })?;
        }
        Ok(Admin {
            core,
            listen,
            stats_tcp,
            sockets: cfg.admin.unix_sockets().cloned().collect(),
            services,
        })
    }

    pub fn set_stopping(&self) {
        self.core.stopping.store(true, Ordering::Relaxed);
    }
}

/// The page a shard's admin service request gets.
fn answer(core: &Core, q: &ServiceQuery) -> ServiceAnswer {
    let query = q.target.split_once('?').map_or("", |(_, q)| q);
    match &q.service {
        Service::Prometheus => match metrics::Scope::parse(query) {
            Ok(scope) => {
                ServiceAnswer::ok("text/plain; version=0.0.4", metrics::render(core, scope))
            }
            Err(_) => ServiceAnswer {
                status: 400,
                content_type: "text/plain",
                location: None,
                body: "Bad request: invalid query string.\n".into(),
            },
        },
        Service::Stats { refresh, scope, .. } => page::serve(core, q, *refresh, scope),
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        for p in &self.sockets {
            let _ = std::fs::remove_file(p);
        }
    }
}
