//! The command line: parse arguments, set up logging, hand over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The system allocator, with each configuration built in a region of its own so that a
/// reload gives the replaced one back whole (`memory::region`).
#[global_allocator]
static ALLOCATOR: ringlb::memory::region::ConfigRegions = ringlb::memory::region::ConfigRegions;

#[derive(Parser)]
#[command(
    name = "ringlb",
    version,
    about = "io_uring, thread-per-core L4/L7 load balancer"
)]
struct Cli {
    /// Configuration file: `.toml` is native, anything else is haproxy.cfg syntax.
    #[arg(short = 'f', value_name = "FILE")]
    file: Option<PathBuf>,
    /// Check the configuration, print every problem, and exit (0 = valid, 1 = invalid).
    #[arg(short = 'c')]
    check: bool,
    /// Take over the listeners of these running processes, then tell them to finish
    /// (HAProxy's `-sf PID...`).
    #[arg(long = "sf", value_name = "PID", num_args = 1..)]
    sf: Vec<u32>,
    /// Run in the background (as the config's `daemon`): the command returns once the
    /// process listens.
    #[arg(short = 'D')]
    daemon: bool,
    /// Stay in the foreground whatever the config says (HAProxy's `-db`).
    #[arg(long = "db")]
    foreground: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Start three local demo backends and a balancer in front of them.
    Demo {
        /// Port of the demo balancer on 127.0.0.1.
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RINGLB_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    // HAProxy spells them `-sf PID...` and `-db`; clap's short flags are one letter.
    let args = std::env::args().map(|a| match a.as_str() {
        "-sf" | "-db" => format!("-{a}"),
        _ => a,
    });
    let cli = Cli::parse_from(args);
    if let Some(Command::Demo { port }) = cli.command {
        return finish(ringlb::demo::run(port));
    }
    let Some(file) = cli.file else {
        eprintln!("ringlb: no configuration file given (use -f FILE, or `ringlb demo`)");
        return ExitCode::from(2);
    };
    // A running process builds its configs on the builder threads (see
    // `memory::build_in_turn`); a check has no reload to come.
    let loaded = if cli.check {
        ringlb::config::Config::load_with_warnings(&file)
    } else {
        let path = file.clone();
        ringlb::memory::build_in_turn(move || ringlb::config::Config::load_with_warnings(&path))
    };
    let cfg = match loaded {
        Ok((c, warnings)) => {
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            c
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            eprintln!("configuration is invalid: {} error(s)", errors.0.len());
            return ExitCode::from(1);
        }
    };
    if cli.check {
        println!("configuration is valid");
        // The process ends here: freeing a large config piece by piece would cost
        // `-c` a tenth of its time.
        std::mem::forget(cfg);
        return ExitCode::SUCCESS;
    }
    // `daemon` forks before any thread runs (the config builders end first).
    let mut detached = None;
    if (cli.daemon || cfg.runtime.process.daemon) && !cli.foreground {
        ringlb::memory::stop_builders();
        match ringlb::process::daemonize() {
            Ok(d) => detached = Some(d),
            Err(e) => {
                eprintln!("ringlb: cannot fork into the background: {e}");
                return ExitCode::from(1);
            }
        }
    }
    finish(ringlb::run_upgrading(cfg, Some(file), &cli.sf, |_| {
        if let Some(d) = detached.take() {
            d.ready();
        }
    }))
}

fn finish(result: Result<(), ringlb::Error>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringlb: {e}");
            ExitCode::from(1)
        }
    }
}
