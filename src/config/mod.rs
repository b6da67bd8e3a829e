//! The validated configuration model. Both front doors (TOML today, haproxy.cfg later)
//! end here; the data path only ever sees these types.

mod duration;
mod raw;
mod validate;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub use duration::parse_duration;
pub use validate::from_toml_str;

/// Which io driver a shard runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverChoice {
    /// io_uring, falling back to epoll where the kernel refuses it.
    Auto,
    IoUring,
    Legacy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Http,
    Tcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalanceAlgo {
    RoundRobin,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub runtime: Runtime,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub pool: PoolSettings,
    pub frontends: Vec<Frontend>,
    pub backends: Vec<Backend>,
}

#[derive(Debug, Clone)]
pub struct Runtime {
    pub shards: usize,
    pub driver: DriverChoice,
    /// Core for each shard, by shard index; `None` = the usable cores in order.
    pub cpus: Option<Vec<usize>>,
}

#[derive(Debug, Clone)]
pub struct Timeouts {
    pub connect: Duration,
    pub client: Duration,
    pub server: Duration,
    pub http_request: Duration,
    pub http_keep_alive: Duration,
    pub shutdown: Duration,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_header_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_idle_per_server: usize,
    pub idle_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Frontend {
    pub name: String,
    pub binds: Vec<SocketAddr>,
    pub mode: Mode,
    pub routes: Vec<Route>,
    /// Index into `Config::backends`.
    pub default_backend: Option<usize>,
    pub forward_for: bool,
}

#[derive(Debug, Clone)]
pub struct Route {
    /// Lower-cased, compared without the port.
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub backend: usize,
}

#[derive(Debug, Clone)]
pub struct Backend {
    pub name: String,
    pub balance: BalanceAlgo,
    pub servers: Vec<Server>,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub name: String,
    pub addr: SocketAddr,
    pub weight: u32,
}

/// Every problem found in a config file, each with its path or line.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<String>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Reads a config file; the syntax is chosen by its name (`.toml` = native).
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigErrors(vec![format!("{}: cannot read: {e}", path.display())]))?;
        let is_toml = path.extension().is_some_and(|e| e == "toml");
        if !is_toml {
            return Err(ConfigErrors(vec![format!(
                "{}: haproxy.cfg syntax is not supported yet; use a .toml file",
                path.display()
            )]));
        }
        from_toml_str(&text).map_err(|ConfigErrors(errs)| {
            ConfigErrors(
                errs.into_iter()
                    .map(|e| format!("{}: {e}", path.display()))
                    .collect(),
            )
        })
    }

    pub fn backend_index(&self, name: &str) -> Option<usize> {
        self.backends.iter().position(|b| b.name == name)
    }
}

/// The number of cores this process may run on.
pub fn usable_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
