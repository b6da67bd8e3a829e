//! Question: what does taking an idle upstream connection from a shard's pool and
//! giving it back cost? Connection setup is not measured, only the checkout + checkin
//! pair a keep-alive request pays: `Upstreams::pooled` then `Upstreams::release_conn`.
//!
//! Every take makes sure the connection has nothing to read (the server neither closed
//! it nor wrote to it while it idled: a non-blocking one-byte peek, one syscall). With
//! 1 and 256 idle connections in the pool, to show the cost does not grow with the
//! pool.
//!
//! The connections are real loopback TCP connections made once in setup (a std
//! listener accepts them in a thread and keeps the server ends open, silent), inside a
//! monoio runtime (io_uring, or epoll with `MONOIO_FORCE_LEGACY_DRIVER=1`).
//!
//! Run: `cargo bench --bench pool` (criterion; figures in target/criterion/, a recent
//! run in benches/results/micro.md).

use std::net::TcpListener;
use std::time::Instant;

use std::rc::Rc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use monoio::net::TcpStream;
use ringlb::upstream::{Pools, Upstreams};

/// `count` connected loopback pairs: the client ends, and the server ends (keep them:
/// dropping one would make its client end look closed to the checked take).
fn connections(count: usize) -> (Vec<std::net::TcpStream>, Vec<std::net::TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let acceptor = std::thread::spawn(move || {
        (0..count)
            .map(|_| listener.accept().expect("accept").0)
            .collect::<Vec<_>>()
    });
    let clients = (0..count)
        .map(|_| std::net::TcpStream::connect(addr).expect("connect loopback"))
        .collect();
    (clients, acceptor.join().expect("acceptor thread"))
}

/// One backend with one server; pool limits as shipped (no cap in reach, 30 s idle).
fn upstreams() -> Upstreams {
    let cfg = ringlb::config::from_toml_str(
        r#"
[pool]
idle_timeout = "30s"

[frontend.web]
bind = "127.0.0.1:0"
mode = "http"
default_backend = "app"

[backend.app]
[[backend.app.server]]
name = "app1"
addr = "127.0.0.1:9"
"#,
    )
    .expect("bench config");
    Upstreams::new(
        &cfg,
        0,
        None,
        &ringlb::limits::Shared::new(&cfg, None),
        Rc::new(Pools::new(usize::MAX)),
        Default::default(),
    )
}

fn bench_pool(c: &mut Criterion) {
    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .build()
        .expect("monoio runtime");
    // Everything that holds a monoio stream lives and dies inside the runtime.
    rt.block_on(async {
        let mut group = c.benchmark_group("pool_checkout_checkin");
        for idle in [1usize, 256] {
            let (clients, _servers) = connections(idle);
            let up = upstreams();
            for s in clients {
                let s = TcpStream::from_std(s).expect("monoio stream");
                up.release_conn(0, 0, ringlb::tls::MaybeTls::Plain(s), 0);
            }
            // The pool must hand out a connection every time, or this measures an
            // empty pool.
            let s = up
                .pooled(0, 0, Instant::now(), 0)
                .expect("an idle connection");
            up.release_conn(0, 0, s, 0);
            group.bench_with_input(BenchmarkId::new("checked", idle), &idle, |b, _| {
                // The request path passes a clock reading it already has.
                let now = Instant::now();
                b.iter(|| {
                    let Some(s) = up.pooled(0, 0, now, 0) else {
                        panic!("the pool ran dry");
                    };
                    up.release_conn(0, 0, s, 0);
                })
            });
        }
        group.finish();
    });
}

criterion_group!(benches, bench_pool);
criterion_main!(benches);
