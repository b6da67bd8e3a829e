//! A shard's view of its backends: per server state, the balancer and the idle
//! connection pool, and getting a connection to a server (pooled or new).

mod balance;
mod pool;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

pub use balance::Balancer;
pub use pool::Pool;

use crate::config::Config;

pub struct ServerState {
    pub name: String,
    pub addr: SocketAddr,
    pub weight: u32,
    pub pool: RefCell<Pool>,
}

pub struct BackendState {
    pub name: String,
    pub balancer: Balancer,
    pub servers: Vec<ServerState>,
}

/// A connection to one server of a backend.
pub struct Upstream {
    pub server: usize,
    pub stream: TcpStream,
    /// Came from the pool: it may have been closed by the server in the meantime.
    pub reused: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectError {
    /// Every server was tried and refused, timed out or failed.
    AllFailed,
    /// No server is usable at all.
    NoServer,
}

pub struct Upstreams {
    pub backends: Vec<BackendState>,
    connect_timeout: Duration,
    pool_max_idle: usize,
    pool_idle_timeout: Duration,
}

impl Upstreams {
    pub fn new(cfg: &Config, shard: usize) -> Self {
        Upstreams {
            backends: cfg
                .backends
                .iter()
                .map(|b| BackendState {
                    name: b.name.clone(),
                    balancer: Balancer::new(b.balance, shard),
                    servers: b
                        .servers
                        .iter()
                        .map(|s| ServerState {
                            name: s.name.clone(),
                            addr: s.addr,
                            weight: s.weight,
                            pool: RefCell::new(Pool::default()),
                        })
                        .collect(),
                })
                .collect(),
            connect_timeout: cfg.timeouts.connect,
            pool_max_idle: cfg.pool.max_idle_per_server,
            pool_idle_timeout: cfg.pool.idle_timeout,
        }
    }

    /// Picks a server and returns a connection to it, trying each server at most once.
    /// With `pooled`, an idle connection to the chosen server is preferred.
    pub async fn connect(&self, backend: usize, pooled: bool) -> Result<Upstream, ConnectError> {
        let b = &self.backends[backend];
        let usable = |i: usize| b.servers[i].weight > 0;
        let mut tried = 0;
        while tried < b.servers.len() {
            let Some(server) = b.balancer.pick(b.servers.len(), usable) else {
                break;
            };
            tried += 1;
            let s = &b.servers[server];
            if pooled {
                let idle = s
                    .pool
                    .borrow_mut()
                    .take(Instant::now(), self.pool_idle_timeout);
                if let Some(stream) = idle {
                    return Ok(Upstream {
                        server,
                        stream,
                        reused: true,
                    });
                }
            }
            match self.connect_to(s).await {
                Ok(stream) => {
                    return Ok(Upstream {
                        server,
                        stream,
                        reused: false,
                    })
                }
                Err(e) => {
                    tracing::warn!(backend = %b.name, server = %s.name, addr = %s.addr, error = %e, "connect failed");
                }
            }
        }
        if tried == 0 {
            Err(ConnectError::NoServer)
        } else {
            Err(ConnectError::AllFailed)
        }
    }

    /// A fresh connection to one server (for a retry after a stale pooled one).
    pub async fn connect_fresh(&self, backend: usize, server: usize) -> std::io::Result<TcpStream> {
        self.connect_to(&self.backends[backend].servers[server])
            .await
    }

    async fn connect_to(&self, s: &ServerState) -> std::io::Result<TcpStream> {
        match monoio::time::timeout(self.connect_timeout, TcpStream::connect_addr(s.addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                Ok(stream)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timeout",
            )),
        }
    }

    /// Returns a connection whose last exchange completed cleanly.
    pub fn release(&self, backend: usize, server: usize, stream: TcpStream) {
        self.backends[backend].servers[server]
            .pool
            .borrow_mut()
            .put(stream, Instant::now(), self.pool_max_idle);
    }

    /// Periodic clean-up from the shard's control tick.
    pub fn purge_idle(&self) {
        let now = Instant::now();
        for b in &self.backends {
            for s in &b.servers {
                s.pool.borrow_mut().purge(now, self.pool_idle_timeout);
            }
        }
    }

    pub fn clear_pools(&self) {
        for b in &self.backends {
            for s in &b.servers {
                s.pool.borrow_mut().clear();
            }
        }
    }
}
