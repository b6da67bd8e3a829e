//! The command line: parse arguments, set up logging, hand over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    let cli = Cli::parse();
    if let Some(Command::Demo { port }) = cli.command {
        return finish(ringlb::demo::run(port));
    }
    let Some(file) = cli.file else {
        eprintln!("ringlb: no configuration file given (use -f FILE, or `ringlb demo`)");
        return ExitCode::from(2);
    };
    let cfg = match ringlb::config::Config::load_with_warnings(&file) {
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
        return ExitCode::SUCCESS;
    }
    finish(ringlb::run_with(cfg, Some(file), |_| {}))
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
