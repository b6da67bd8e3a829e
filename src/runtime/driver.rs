//! The shard's io runtime: io_uring with the cheapest completion mode the kernel
//! offers, or the legacy epoll driver where io_uring is refused or asked against.

use super::rescue::Survive;
use super::{control::shard_main, Adopted, ShardEnv};
use crate::config::DriverChoice;
use crate::control::FromShard;

/// Builds a runtime (io_uring, or epoll where refused) and runs the shard on it.
pub(super) fn run_runtime(
    spec: &ShardEnv,
    listeners: Vec<(crate::config::BindRef, std::net::TcpListener)>,
    queued: Adopted,
    survive: &Survive,
    core: Option<usize>,
) {
    let id = spec.id;
    let fail = |error: String| {
        let _ = spec.events.send(FromShard::Failed { shard: id, error });
    };
    // Only the choice: a config held here would stay alive as long as the runtime.
    let choice = survive.borrow().config.runtime.driver;
    let force_legacy = std::env::var("MONOIO_FORCE_LEGACY_DRIVER")
        .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
        .unwrap_or(false);
    let want_uring = match choice {
        DriverChoice::Legacy => false,
        DriverChoice::IoUring => true,
        DriverChoice::Auto => !force_legacy && monoio::utils::detect_uring(),
    };
    if want_uring {
        match uring_runtime() {
            Ok((mut rt, driver)) => {
                return rt.block_on(shard_main(spec, listeners, queued, survive, driver, core))
            }
            Err(e) if choice == DriverChoice::Auto => {
                tracing::warn!(shard = id, error = %e, "io_uring refused, falling back to the legacy epoll driver");
            }
            Err(e) => return fail(format!("io_uring runtime: {e}")),
        }
    }
    match monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
    {
        Ok(mut rt) => rt.block_on(shard_main(spec, listeners, queued, survive, "legacy", core)),
        Err(e) => fail(format!("legacy runtime: {e}")),
    }
}

type UringRuntime = monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>>;

/// An io_uring runtime with the cheapest completion mode the kernel offers. Completions
/// are finished by "task work" in the shard's thread; by default the kernel interrupts
/// the thread (an IPI) for each one. With DEFER_TASKRUN (6.1+, one submitting thread)
/// they wait until the shard asks for completions, all at once; COOP_TASKRUN (5.19+)
/// at least runs them at the next kernel entry without an interrupt. Older kernels get
/// the plain ring.
fn uring_runtime() -> std::io::Result<(UringRuntime, &'static str)> {
    type Setup = fn(&mut io_uring::Builder);
    let modes: [(&'static str, Setup); 3] = [
        ("io_uring", |b| {
            b.setup_single_issuer().setup_defer_taskrun();
        }),
        ("io_uring (coop taskrun)", |b| {
            b.setup_coop_taskrun();
        }),
        ("io_uring (plain)", |_| {}),
    ];
    let mut last = None;
    for (name, setup) in modes {
        let mut urb = io_uring::IoUring::builder();
        setup(&mut urb);
        match monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .with_entries(4096)
            .uring_builder(urb)
            .enable_timer()
            .build()
        {
            Ok(rt) => return Ok((rt, name)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no io_uring mode")))
}
