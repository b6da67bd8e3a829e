//! Question: what does one TLS handshake cost ringlb (the binary, and its adapter
//! `tls::accept` alone) on one core, next to HAProxy 2.6 `bind ssl` (OpenSSL 3.0,
//! nbthread 1) in the same run? Full handshakes (TLS 1.3 ECDSA P-256, TLS 1.3
//! RSA-2048) and resumed ones (TLS 1.3 tickets), over loopback.
//!
//! Servers, each pinned to the last CPU, the clients (rustls, 2 threads) on CPU 0:
//! the adapter in a monoio io_uring runtime on one thread (its thread's CPU time), and
//! the ringlb binary and HAProxy on the same haproxy.cfg (`mode http`, `bind ssl`,
//! nbthread 1; each connection is a handshake and a close: the process's
//! utime+stime from /proc, every thread). The figure is CPU time per handshake, not
//! the rate, which the clients bound on two cores. Each row is the median of `RUNS`
//! runs, interleaved. The binary is `RINGLB_BIN` or target/release/ringlb (build it
//! first: `cargo build --release`).
//!
//!   cargo bench --bench tls_handshake            # HANDSHAKES=2000 RUNS=5 by default
//!   cargo test --bench tls_handshake             # 20 handshakes, ringlb only: a check
//!
//! Certificates are generated at start (rcgen); nothing is written but a temp dir.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pin(cpu: usize) {
    let _ = core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer for clock_gettime.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn proc_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command's closing parenthesis: state, ppid, ..., utime (14th field of
    // the line, 12th here), stime. Some fields may be negative (tpgid): index, do not
    // filter.
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    let ticks = num(11) + num(12);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_micros(ticks * 1_000_000 / hz.max(1))
}

fn write_cert(dir: &Path, name: &str, rsa: bool) -> std::path::PathBuf {
    let key = if rsa {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap()
    } else {
        rcgen::KeyPair::generate().unwrap()
    };
    let cert = rcgen::CertificateParams::new(vec!["bench.test".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let p = dir.join(name);
    std::fs::write(&p, format!("{}{}", cert.pem(), key.serialize_pem())).unwrap();
    p
}

/// `n` handshakes from 2 client threads on CPU 0; `resume`: one ticket per thread first.
fn clients(addr: SocketAddr, n: usize, resume: bool) -> (Duration, usize) {
    let started = Instant::now();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                pin(0);
                let mut cfg = rustls::ClientConfig::builder_with_provider(ringlb::tls::provider())
                    .with_protocol_versions(&[&rustls::version::TLS13])
                    .unwrap()
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(NoVerify(ringlb::tls::provider())))
                    .with_no_client_auth();
                if !resume {
                    cfg.resumption = rustls::client::Resumption::disabled();
                }
                let cfg = Arc::new(cfg);
                let mut resumed = 0;
                for _ in 0..n / 2 {
                    let name = ServerName::try_from("bench.test").unwrap();
                    let mut c = rustls::ClientConnection::new(cfg.clone(), name).unwrap();
                    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
                        continue;
                    };
                    let _ = s.set_nodelay(true);
                    // Never block for good on a server that stopped answering.
                    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut ok = true;
                    while c.is_handshaking() && ok {
                        ok = c.complete_io(&mut s).is_ok();
                    }
                    // TLS 1.3 tickets follow the handshake: read them.
                    if resume && ok {
                        let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
                        let _ = c.complete_io(&mut s);
                    }
                    if c.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                        resumed += 1;
                    }
                    c.send_close_notify();
                    let _ = c.complete_io(&mut s);
                    let _ = s.flush();
                }
                resumed
            })
        })
        .collect();
    let resumed = threads.into_iter().map(|t| t.join().unwrap()).sum();
    (started.elapsed(), resumed)
}

#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One run against ringlb's adapter: server CPU per handshake, rate, resumed share.
fn ringlb_run(cert: &Path, n: usize, resume: bool, server_cpu: usize) -> (f64, f64, f64) {
    let spec = ringlb::tls::BindTlsSpec {
        crts: vec![ringlb::tls::CrtSource::Crt(cert.to_path_buf())],
        lifetime: 300,
        ..Default::default()
    };
    let keys = ringlb::tls::tickets::process_keys(300);
    let mut f = ringlb::tls::Findings::default();
    let bind = ringlb::tls::BindTls::load(&spec, &keys, &mut f).expect("bind");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        pin(server_cpu);
        let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async move {
            use monoio::io::AsyncReadRent;
            let set = Rc::new(ringlb::tls::ServerSet::new(&bind).unwrap());
            listener.set_nonblocking(true).unwrap();
            let l = monoio::net::TcpListener::from_std(listener).unwrap();
            let done = Rc::new(std::cell::Cell::new(0usize));
            let cpu0 = thread_cpu();
            let mut accepted_n = 0;
            while accepted_n < n {
                let accepted = monoio::time::timeout(Duration::from_secs(10), l.accept()).await;
                let s = match accepted {
                    Ok(Ok((s, _))) => s,
                    // A connection that failed before it was accepted.
                    Ok(Err(_)) => continue,
                    // No client for 10 s: they are done (some connects failed).
                    Err(_) => break,
                };
                accepted_n += 1;
                let (set, done) = (set.clone(), done.clone());
                monoio::spawn(async move {
                    let deadline = monoio::time::Instant::now() + Duration::from_secs(5);
                    if let Ok((mut t, _)) = ringlb::tls::accept(
                        s,
                        &set,
                        deadline,
                        ringlb::tls::Acceptor::default(),
                        None,
                    )
                    .await
                    {
                        let (_, _) = t.read(Vec::with_capacity(64)).await;
                    }
                    done.set(done.get() + 1);
                });
            }
            while done.get() < accepted_n {
                monoio::time::sleep(Duration::from_millis(1)).await;
            }
            let _ = tx.send(thread_cpu() - cpu0);
        });
    });
    let (wall, resumed) = clients(addr, n, resume);
    let cpu = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
    server.join().unwrap();
    (
        cpu.as_secs_f64() * 1e6 / n as f64,
        n as f64 / wall.as_secs_f64(),
        resumed as f64 / n as f64,
    )
}

use std::rc::Rc;

/// A server process measured on the same haproxy.cfg: HAProxy 2.6, or the ringlb
/// binary (its whole path: accept loop, handshake turns, the HTTP connection that
/// waits for a request and sees the close).
#[derive(Clone, Copy)]
enum Binary<'a> {
    Haproxy,
    Ringlb(&'a Path),
}

/// One run against a server process (`bind ssl`, nbthread 1, pinned with taskset),
/// `mode http`: each client connection is a handshake and a close_notify; the server
/// is never contacted. The figure is the process's utime+stime (all its threads).
fn process_run(
    bin: Binary,
    cert: &Path,
    n: usize,
    resume: bool,
    server_cpu: usize,
) -> Option<(f64, f64, f64)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let dir = tempfile::tempdir().ok()?;
    let cfg = dir.path().join("h.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n    nbthread 1\n    ssl-default-bind-options ssl-min-ver TLSv1.3\ndefaults\n    mode http\n    timeout client 5s\n    timeout connect 1s\n    timeout server 5s\n    timeout http-request 5s\nfrontend fe\n    bind {addr} ssl crt {}\n    default_backend be\nbackend be\n    server s1 127.0.0.1:9\n",
            cert.display()
        ),
    )
    .ok()?;
    let cpu_list = server_cpu.to_string();
    let mut cmd = std::process::Command::new("taskset");
    cmd.args(["-c", &cpu_list]);
    match bin {
        Binary::Haproxy => cmd.args(["haproxy", "-db", "-f", cfg.to_str()?]),
        Binary::Ringlb(path) => cmd.arg(path).args(["-f", cfg.to_str()?]),
    };
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let up = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        if up.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let cpu0 = proc_cpu(child.id());
    let (wall, resumed) = clients(addr, n, resume);
    std::thread::sleep(Duration::from_millis(200));
    let cpu = proc_cpu(child.id()) - cpu0;
    let _ = child.kill();
    let _ = child.wait();
    Some((
        cpu.as_secs_f64() * 1e6 / n as f64,
        n as f64 / wall.as_secs_f64(),
        resumed as f64 / n as f64,
    ))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    // `cargo test --benches` runs this without `--bench`: a few handshakes, ringlb
    // only, to check the setup holds (timing is for `cargo bench`).
    let quick = !std::env::args().any(|a| a == "--bench");
    let n = if quick { 20 } else { env("HANDSHAKES", 2000) };
    let runs = if quick { 1 } else { env("RUNS", 5) };
    let server_cpu = core_affinity::get_core_ids().map_or(1, |c| c.len().saturating_sub(1));
    let dir = tempfile::tempdir().unwrap();
    let ecdsa = write_cert(dir.path(), "ecdsa.pem", false);
    let rsa = write_cert(dir.path(), "rsa.pem", true);
    // The binary measured: RINGLB_BIN, else the release build next to this bench.
    let bin = std::env::var_os("RINGLB_BIN")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/ringlb");
            p.exists().then_some(p)
        });
    println!("| scenario | server | CPU µs/handshake (median of {runs}) | handshakes/s | resumed | ringlb / HAProxy |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, cert, resume) in [
        ("full, TLS 1.3, ECDSA P-256", &ecdsa, false),
        ("full, TLS 1.3, RSA-2048", &rsa, false),
        ("resumed, TLS 1.3 (ECDSA)", &ecdsa, true),
    ] {
        let mut adapter = Vec::new();
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for _ in 0..runs {
            adapter.push(ringlb_run(cert, n, resume, server_cpu));
            if quick {
                continue;
            }
            if let Some(bin) = &bin {
                if let Some(r) = process_run(Binary::Ringlb(bin), cert, n, resume, server_cpu) {
                    ours.push(r);
                }
            }
            if let Some(h) = process_run(Binary::Haproxy, cert, n, resume, server_cpu) {
                theirs.push(h);
            }
        }
        let row = |v: &[(f64, f64, f64)]| {
            (
                median(v.iter().map(|x| x.0).collect()),
                median(v.iter().map(|x| x.1).collect()),
                median(v.iter().map(|x| x.2).collect()),
            )
        };
        let a = row(&adapter);
        assert!(
            !resume || a.2 >= 0.5,
            "{name}: only {:.0} % resumed",
            a.2 * 100.0
        );
        let h = (!theirs.is_empty()).then(|| row(&theirs));
        let ratio = |x: f64| h.map_or(String::new(), |h| format!("{:.2} ×", x / h.0));
        println!(
            "| {name} | ringlb adapter (in-process) | {:.0} | {:.0} | {:.0} % | {} |",
            a.0,
            a.1,
            a.2 * 100.0,
            ratio(a.0)
        );
        if !ours.is_empty() {
            let o = row(&ours);
            println!(
                "| {name} | ringlb binary | {:.0} | {:.0} | {:.0} % | {} |",
                o.0,
                o.1,
                o.2 * 100.0,
                ratio(o.0)
            );
        }
        if let Some(h) = h {
            println!(
                "| {name} | HAProxy 2.6 | {:.0} | {:.0} | {:.0} % | |",
                h.0,
                h.1,
                h.2 * 100.0
            );
        }
    }
}
