//! `cargo xtask bench webhook`: benchmarks of tprotect-webhook; results are written to BENCHMARKS.md.
//!
//! 1. HTTPS on loopback with `oha`: the release `tprotect-webhook` answering a realistic AppMirrorRelationship
//!    UPDATE review on `/validate`, side by side with a no-op axum+rustls server on the same TLS stack
//!    (`webhook/examples/noop_admission_server.rs`) answering a fixed review. Rounds alternate the two servers
//!    (the order flips every round) and the medians are reported, because the machine is shared and noisy:
//!    a saturation run at a fixed connection count, and a fixed-rate run. A third server, the no-op server
//!    checking that the body is JSON (`--parse syntax`), shows what reading the review at all costs.
//! 1. Instructions per request of the three servers under valgrind's callgrind: counted, not timed, so the
//!    same on a busy machine as on a quiet one.
//! 2. RSS of the webhook: VmRSS right after start, VmHWM (peak) after the load, and the VmHWM of a fresh
//!    webhook under a flood of connections each holding a near-limit body.
//! 3. The wall time of creating Schedules through a real kube-apiserver (the testbed) with no webhook
//!    registered, with the no-op server registered in the webhook's place (`--parse uid`: it echoes the
//!    review's uid, as the API server requires), and with the webhook registered, in interleaved batches, each
//!    batch in its own namespace. The no-op registration shows what calling any webhook costs the API server.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use serde_json::{Value, json};
use tprotect_testbed::{
    CrdSource, TestbedOptions,
    process::{Lifetime, ManagedProcess},
};
use tprotect_webhook::testing::{RULE, amr_update_review};

use crate::bench_report::{Machine, Provenance, Section, invocation, median, verdict};

const BEGIN_MARKER: &str = "<!-- BEGIN bench webhook -->";
const END_MARKER: &str = "<!-- END bench webhook -->";
/// Name of both webhook configurations in `manifests/webhook/base/webhooks.yaml`.
const CONFIGURATION_NAME: &str = "tprotect-webhook";

#[derive(Debug, clap::Args)]
pub struct BenchWebhookArgs {
    /// Rounds per server; each round runs both servers, the order flipping every round.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of each oha run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Connections of the saturation runs.
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// Requests per second of the fixed-rate runs.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Connections of the fixed-rate runs.
    #[arg(long, default_value_t = 10)]
    rate_connections: usize,
    /// Schedules created per API-server batch.
    #[arg(long, default_value_t = 500)]
    schedules: usize,
    /// API-server batches per condition (no webhook, the no-op, the webhook), interleaved.
    #[arg(long, default_value_t = 3)]
    schedule_rounds: usize,
    /// Concurrent creates in an API-server batch.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Requests counted per server by the instruction count (callgrind); 0 skips it.
    #[arg(long, default_value_t = 2000)]
    counted_requests: u64,
    /// Connections of the memory flood, each holding a body of 7 MiB less 1 KiB; 0 skips it.
    #[arg(long, default_value_t = 40)]
    flood_connections: usize,
    /// Skip the API-server measurement.
    #[arg(long)]
    skip_apiserver: bool,
    /// Print the results without rewriting BENCHMARKS.md.
    #[arg(long)]
    no_write: bool,
}

pub fn run(args: BenchWebhookArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rounds > 0 && args.schedule_rounds > 0,
        "rounds must be at least 1"
    );
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let command = invocation();
    let machine_before = Machine::read();
    eprintln!(
        "machine: {} cores, load {} ({})",
        machine_before.nproc, machine_before.load, machine_before.cpu
    );

    let work = tempfile::tempdir().context("creating a scratch directory")?;
    let oha_runner = Oha::sending_amr_review(work.path())?;
    let (webhook_bin, noop_bin) = build_servers()?;
    let certs = gen_certs(work.path())?;

    let webhook = start_webhook(&webhook_bin, &certs, work.path(), None)?;
    let noop = start_noop(&noop_bin, NoopParse::None, &certs, work.path(), None)?;
    let floor = start_noop(&noop_bin, NoopParse::Syntax, &certs, work.path(), None)?;
    let idle = Memory::read(webhook.process.pid)?;
    let noop_idle = Memory::read(noop.process.pid)?;
    eprintln!(
        "webhook idle RSS {:.1} MiB; no-op idle RSS {:.1} MiB",
        idle.rss_mib(),
        noop_idle.rss_mib()
    );

    // Warm both up (page faults, allocator pools, TLS session setup) and check they answer 200.
    for (name, addr) in [
        ("tprotect-webhook", webhook.https),
        ("no-op", noop.https),
        ("no-op checking JSON", floor.https),
    ] {
        let warm = oha_runner.run(
            addr,
            Load::Saturate {
                connections: args.connections,
            },
            2,
        )?;
        anyhow::ensure!(
            warm.successes > 0 && warm.failures == 0,
            "{name} warm-up: {} answered 200, {} failed ({})",
            warm.successes,
            warm.failures,
            warm.failure_summary
        );
    }

    let mut runs: BTreeMap<(&'static str, ServerKind), Vec<OhaResult>> = BTreeMap::new();
    for round in 0..args.rounds {
        let mut order = ServerKind::ALL;
        order.rotate_left(round % ServerKind::ALL.len());
        let loads = [
            (
                "saturation",
                Load::Saturate {
                    connections: args.connections,
                },
            ),
            (
                "rate",
                Load::Rate {
                    connections: args.rate_connections,
                    per_second: args.rate,
                },
            ),
        ];
        for (label, load) in loads {
            for kind in order {
                let server = match kind {
                    ServerKind::Webhook => &webhook,
                    ServerKind::Noop => &noop,
                    ServerKind::JsonFloor => &floor,
                };
                let cpu_before = cpu_seconds(server.process.pid)?;
                let mut result = oha_runner.run(server.https, load, args.seconds)?;
                let cpu = cpu_seconds(server.process.pid)? - cpu_before;
                result.server_cpu_us = cpu * 1e6 / (result.successes + result.failures).max(1) as f64;
                eprintln!(
                    "round {}/{} {label:<10} {:<16} {:>8.0} req/s  p50 {:.3} ms  p99 {:.3} ms  failed {}  \
                     server CPU {:.0} µs/request",
                    round + 1,
                    args.rounds,
                    kind.name(),
                    result.requests_per_second,
                    result.p50_ms,
                    result.p99_ms,
                    result.failures,
                    result.server_cpu_us
                );
                runs.entry((label, kind)).or_default().push(result);
            }
        }
    }
    let loaded = Memory::read(webhook.process.pid)?;
    let noop_loaded = Memory::read(noop.process.pid)?;
    let answered = webhook.amr_answers()?;
    let sent: u64 = runs
        .iter()
        .filter(|((_, kind), _)| *kind == ServerKind::Webhook)
        .flat_map(|(_, results)| results.iter().map(|r| r.successes))
        .sum();
    // The webhook really reviewed the AMR (and allowed it) for every request oha saw answered.
    anyhow::ensure!(
        answered.denied == 0 && answered.allowed >= sent,
        "the webhook's metrics count {} allowed and {} denied AMR reviews, oha saw {sent} answered",
        answered.allowed,
        answered.denied
    );
    drop((noop, floor));

    let flood = if args.flood_connections == 0 {
        None
    } else {
        let fresh = start_webhook(&webhook_bin, &certs, work.path(), None)?;
        let result = flood_memory(&fresh, &certs.ca, args.flood_connections)?;
        eprintln!(
            "flood of {} connections: VmHWM {:.1} MiB (idle {:.1} MiB), RSS {:.1} MiB 3 s after; {} answered 503, \
             {} answered 408",
            args.flood_connections,
            result.peak.hwm_mib(),
            result.idle.rss_mib(),
            result.after.rss_mib(),
            result.busy,
            result.timed_out
        );
        Some(result)
    };

    let instructions = if args.counted_requests == 0 {
        Vec::new()
    } else {
        count_instructions(&oha_runner, args.counted_requests, |kind, callgrind| match kind {
            ServerKind::Webhook => start_webhook(&webhook_bin, &certs, work.path(), Some(callgrind)),
            ServerKind::Noop => start_noop(&noop_bin, NoopParse::None, &certs, work.path(), Some(callgrind)),
            ServerKind::JsonFloor => {
                start_noop(&noop_bin, NoopParse::Syntax, &certs, work.path(), Some(callgrind))
            }
        })?
    };

    let apiserver = if args.skip_apiserver {
        None
    } else {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let registrable_noop = start_noop(&noop_bin, NoopParse::Uid, &certs, work.path(), None)?;
        Some(runtime.block_on(schedules_through_apiserver(
            &args,
            &webhook,
            &registrable_noop,
            &certs,
        ))?)
    };
    drop(webhook);

    let report = Report {
        run: Provenance::ended(command, machine_before),
        args: &args,
        runs,
        idle,
        loaded,
        noop_idle,
        noop_loaded,
        instructions,
        flood,
        apiserver,
    };
    SECTION.publish(&report.markdown(), args.no_write)
}

// ---------------------------------------------------------------------------------------------------------
// Tools and servers

fn tools_root() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    Ok(PathBuf::from(home).join(".cache/kubectl-tprotect/tools"))
}

/// oha from the tools cache, installed there with `cargo install` if missing.
fn ensure_oha() -> anyhow::Result<PathBuf> {
    let root = tools_root()?;
    let oha = root.join("bin/oha");
    if oha.is_file() {
        return Ok(oha);
    }
    eprintln!("installing oha into {} (once)", root.display());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["install", "oha", "--locked", "--root"])
        .arg(&root)
        .status()
        .context("running cargo install oha")?;
    if !status.success() || !oha.is_file() {
        bail!("cargo install oha --locked --root {} failed", root.display());
    }
    Ok(oha)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tprotect_testbed::repo_root().join("target"))
}

/// Release builds of the webhook and the no-op comparison server.
pub(crate) fn build_servers() -> anyhow::Result<(PathBuf, PathBuf)> {
    eprintln!("building tprotect-webhook and noop_admission_server (release)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "tprotect-webhook",
            "--bin",
            "tprotect-webhook",
            "--example",
            "noop_admission_server",
        ])
        .current_dir(tprotect_testbed::repo_root())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("building the release webhook and no-op server failed");
    }
    let release = target_dir().join("release");
    Ok((
        release.join("tprotect-webhook"),
        release.join("examples/noop_admission_server"),
    ))
}

pub(crate) struct Certs {
    pub(crate) ca: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

/// A CA and a serving certificate for loopback, written into `dir/certs`: what `tprotect-webhook`
/// [`LOOPBACK_GEN_CERTS`](tprotect_webhook::testing::LOOPBACK_GEN_CERTS) writes, made by the same library
/// functions.
pub(crate) fn gen_certs(dir: &Path) -> anyhow::Result<Certs> {
    use clap::Parser;
    use tprotect_webhook::{
        certs,
        config::{Cli, Command},
    };
    let out = dir.join("certs");
    // The command's own flags, parsed by its own definition: its defaults (service, namespace, validity)
    // and how it composes the names stay the webhook's.
    let cli = Cli::try_parse_from(
        std::iter::once("tprotect-webhook")
            .chain(tprotect_webhook::testing::LOOPBACK_GEN_CERTS)
            .map(std::ffi::OsString::from)
            .chain([out.clone().into_os_string()]),
    )?;
    let Command::GenCerts(args) = cli.command else {
        unreachable!("parsed as gen-certs");
    };
    let generated = certs::generate(
        &args.names(),
        args.valid_days,
        k8s_openapi::jiff::Timestamp::now(),
    )?;
    certs::write_files(&args.out_dir, &generated)?;
    Ok(Certs {
        ca: out.join(certs::CA_FILE),
        cert: out.join(certs::CERT_FILE),
        key: out.join(certs::KEY_FILE),
    })
}

pub(crate) fn setpriv() -> anyhow::Result<PathBuf> {
    tprotect_testbed::install::which("setpriv").context("setpriv (util-linux) not found on PATH")
}

struct RunningServer {
    process: ManagedProcess,
    https: SocketAddr,
    /// Plain HTTP: the webhook's health and metrics listener, the no-op's `/count`.
    health: Option<SocketAddr>,
}

/// `program args`, or the same under valgrind's callgrind writing its counts to `callgrind` (a server under
/// callgrind runs about 50 times slower and counts only when switched on: see [`count_instructions`]).
fn command_line(
    binary: &Path,
    args: Vec<String>,
    callgrind: Option<&Path>,
) -> anyhow::Result<(PathBuf, Vec<String>)> {
    let Some(out) = callgrind else {
        return Ok((binary.to_path_buf(), args));
    };
    let valgrind = tprotect_testbed::install::which("valgrind").context("valgrind not found on PATH")?;
    let mut line = vec![
        "--tool=callgrind".to_string(),
        "--instr-atstart=no".to_string(),
        format!("--callgrind-out-file={}", out.display()),
        binary.display().to_string(),
    ];
    line.extend(args);
    Ok((valgrind, line))
}

fn start_webhook(
    binary: &Path,
    certs: &Certs,
    dir: &Path,
    callgrind: Option<&Path>,
) -> anyhow::Result<RunningServer> {
    let (process, https, health) =
        spawn_webhook(binary, certs, dir, &["--no-amr-watch".to_string()], callgrind)?;
    let server = RunningServer {
        process,
        https,
        health: Some(health),
    };
    server.wait_ready(|| http_get(health, "/readyz").is_ok_and(|(status, _)| status == 200))?;
    Ok(server)
}

/// What the no-op server does with a body (its `--parse`).
#[derive(Debug, Clone, Copy)]
enum NoopParse {
    None,
    Syntax,
    /// Echo the request's uid (registrable with a real API server); also serves `/count`.
    Uid,
}

/// Starts the release `tprotect-webhook serve` on two free loopback ports (HTTPS, health) with `certs` and
/// `extra` arguments, under callgrind if asked; returns it with its two addresses, not waiting for it.
pub(crate) fn spawn_webhook(
    binary: &Path,
    certs: &Certs,
    dir: &Path,
    extra: &[String],
    callgrind: Option<&Path>,
) -> anyhow::Result<(ManagedProcess, SocketAddr, SocketAddr)> {
    let https: SocketAddr = ([127, 0, 0, 1], tprotect_testbed::free_port()?).into();
    let health: SocketAddr = ([127, 0, 0, 1], tprotect_testbed::free_port()?).into();
    let mut args = vec![
        "serve".to_string(),
        format!("--listen={https}"),
        format!("--health-listen={health}"),
        format!("--tls-cert={}", certs.cert.display()),
        format!("--tls-key={}", certs.key.display()),
    ];
    args.extend_from_slice(extra);
    let (program, args) = command_line(binary, args, callgrind)?;
    // Through `env`: the default log level, whatever the caller's RUST_LOG says.
    let mut env_args = vec!["RUST_LOG=info".to_string(), program.display().to_string()];
    env_args.extend(args);
    let process = ManagedProcess::spawn(
        "tprotect-webhook",
        &setpriv()?,
        Path::new("/usr/bin/env"),
        &env_args,
        &dir.join("webhook.log"),
        Lifetime::TiedToProcess,
    )?;
    Ok((process, https, health))
}

fn start_noop(
    binary: &Path,
    parse: NoopParse,
    certs: &Certs,
    dir: &Path,
    callgrind: Option<&Path>,
) -> anyhow::Result<RunningServer> {
    let https: SocketAddr = ([127, 0, 0, 1], tprotect_testbed::free_port()?).into();
    let parse_arg = match parse {
        NoopParse::None => "none",
        NoopParse::Syntax => "syntax",
        NoopParse::Uid => "uid",
    };
    let mut args = vec![
        format!("--listen={https}"),
        format!("--tls-cert={}", certs.cert.display()),
        format!("--tls-key={}", certs.key.display()),
        format!("--parse={parse_arg}"),
    ];
    let count: Option<SocketAddr> = if matches!(parse, NoopParse::Uid) {
        let count = ([127, 0, 0, 1], tprotect_testbed::free_port()?).into();
        args.push(format!("--count-listen={count}"));
        Some(count)
    } else {
        None
    };
    let (program, args) = command_line(binary, args, callgrind)?;
    let process = ManagedProcess::spawn(
        "noop_admission_server",
        &setpriv()?,
        &program,
        &args,
        &dir.join(format!("noop-{parse_arg}.log")),
        Lifetime::TiedToProcess,
    )?;
    let server = RunningServer {
        process,
        https,
        health: count,
    };
    // The count listener is bound before the HTTPS one.
    server.wait_ready(|| std::net::TcpStream::connect(https).is_ok())?;
    Ok(server)
}

impl RunningServer {
    /// Waits until `ready` (the process's `exec` through setpriv/env done, its listener up).
    fn wait_ready(&self, ready: impl Fn() -> bool) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready() {
            if Instant::now() > deadline {
                bail!(
                    "{} not ready after 30s:\n{}",
                    self.process.name,
                    self.process.log_tail(20)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Reviews the no-op server answered (`--parse uid` only).
    fn noop_answered(&self) -> anyhow::Result<u64> {
        let count = self.health.context("this server does not count")?;
        let (status, text) = http_get(count, "/count")?;
        anyhow::ensure!(status == 200, "GET /count answered {status}");
        text.trim()
            .parse()
            .with_context(|| format!("GET /count answered {text:?}"))
    }

    /// AppMirrorRelationship reviews answered, from the webhook's own metrics.
    fn amr_answers(&self) -> anyhow::Result<Answers> {
        self.answers("AppMirrorRelationship", "validate")
    }

    fn answers(&self, kind: &str, webhook: &str) -> anyhow::Result<Answers> {
        let health = self.health.context("this server has no metrics")?;
        let (status, text) = http_get(health, "/metrics")?;
        anyhow::ensure!(status == 200, "GET /metrics answered {status}");
        let mut answers = Answers::default();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("tprotect_webhook_admission_requests_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.split_once("} ") else {
                continue;
            };
            if !labels.contains(&format!("kind=\"{kind}\""))
                || !labels.contains(&format!("webhook=\"{webhook}\""))
            {
                continue;
            }
            let count: u64 = value.trim().parse().unwrap_or(0);
            if labels.contains("allowed=\"true\"") {
                answers.allowed += count;
            } else {
                answers.denied += count;
            }
        }
        Ok(answers)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Answers {
    allowed: u64,
    denied: u64,
}

/// A plain HTTP/1.1 GET on the health listener: (status, body).
pub(crate) fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status line")?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// VmRSS and VmHWM of a process, in KiB.
#[derive(Debug, Clone, Copy)]
struct Memory {
    rss_kib: u64,
    hwm_kib: u64,
}

impl Memory {
    fn read(pid: u32) -> anyhow::Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .with_context(|| format!("no {name} in /proc/{pid}/status"))
        };
        Ok(Self {
            rss_kib: field("VmRSS:")?,
            hwm_kib: field("VmHWM:")?,
        })
    }

    fn rss_mib(self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }

    fn hwm_mib(self) -> f64 {
        self.hwm_kib as f64 / 1024.0
    }
}

/// The webhook's memory under a flood of connections each holding a near-limit body.
struct FloodResult {
    idle: Memory,
    /// Read when every flood connection has ended: VmHWM is the flood's peak.
    peak: Memory,
    /// 3 s after the flood.
    after: Memory,
    busy: usize,
    timed_out: usize,
}

/// Opens `connections` TLS connections to the webhook at once, each sending the head and all but the last byte
/// of a 7 MiB (less 1 KiB) body and then waiting for the server to answer and close (503 when it has no
/// memory for the body, 408 at the body timeout).
fn flood_memory(server: &RunningServer, ca: &Path, connections: usize) -> anyhow::Result<FloodResult> {
    use std::io::{Read, Write};

    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(ca).context("reading the CA")?)?;
    let config = std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let idle = Memory::read(server.process.pid)?;
    let length = tprotect_webhook::admission::MAX_BODY_BYTES - 1024;
    let addr = server.https;
    let clients: Vec<_> = (0..connections)
        .map(|_| {
            let config = config.clone();
            std::thread::spawn(move || -> anyhow::Result<String> {
                let tcp = std::net::TcpStream::connect(addr)?;
                tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
                let connection =
                    rustls::ClientConnection::new(config, ServerName::try_from("localhost")?.to_owned())?;
                let mut tls = rustls::StreamOwned::new(connection, tcp);
                let head = format!(
                    "POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
                     content-length: {length}\r\n\r\n"
                );
                // A refused body is never read: the write fails once the server has answered and closed.
                let _ = tls
                    .write_all(head.as_bytes())
                    .and_then(|()| tls.write_all(&vec![b' '; length - 1]))
                    .and_then(|()| tls.flush());
                let mut answer = Vec::new();
                let _ = tls.read_to_end(&mut answer);
                Ok(String::from_utf8_lossy(&answer)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string())
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for client in clients {
        statuses.push(
            client
                .join()
                .map_err(|_| anyhow::anyhow!("a flood client panicked"))??,
        );
    }
    let peak = Memory::read(server.process.pid)?;
    std::thread::sleep(Duration::from_secs(3));
    let after = Memory::read(server.process.pid)?;
    // A refused client is still writing when the server answers 503 and closes, so it usually sees the reset
    // rather than the answer: every connection not cut with 408 was refused.
    let timed_out = statuses.iter().filter(|s| s.contains(" 408 ")).count();
    let busy = connections - timed_out;
    anyhow::ensure!(
        timed_out >= 1
            && statuses
                .iter()
                .all(|s| s.is_empty() || s.contains(" 408 ") || s.contains(" 503 ")),
        "flood connections must be cut with 408 or refused (503, or closed unread): {statuses:?}"
    );
    Ok(FloodResult {
        idle,
        peak,
        after,
        busy,
        timed_out,
    })
}

// ---------------------------------------------------------------------------------------------------------
// oha

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ServerKind {
    Webhook,
    Noop,
    /// The no-op server checking that the body is JSON: the least any webhook does before answering.
    JsonFloor,
}

impl ServerKind {
    const ALL: [ServerKind; 3] = [ServerKind::Webhook, ServerKind::Noop, ServerKind::JsonFloor];

    fn name(self) -> &'static str {
        match self {
            ServerKind::Webhook => "tprotect-webhook",
            ServerKind::Noop => "no-op (same server)",
            ServerKind::JsonFloor => "no-op + JSON syntax check",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Load {
    Saturate { connections: usize },
    Rate { connections: usize, per_second: u32 },
}

pub(crate) struct Oha {
    binary: PathBuf,
    body: PathBuf,
}

#[derive(Debug, Clone)]
pub(crate) struct OhaResult {
    pub(crate) requests_per_second: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) successes: u64,
    pub(crate) failures: u64,
    pub(crate) failure_summary: String,
    /// CPU time (user + system) of the server process per request answered, in µs.
    server_cpu_us: f64,
}

impl Oha {
    /// oha (installed when missing) sending the realistic AMR UPDATE review, written into `dir`.
    pub(crate) fn sending_amr_review(dir: &Path) -> anyhow::Result<Self> {
        let body = dir.join("amr-update-review.json");
        std::fs::write(&body, serde_json::to_vec(&amr_update_review())?)?;
        Ok(Self {
            binary: ensure_oha()?,
            body,
        })
    }

    pub(crate) fn run(&self, addr: SocketAddr, load: Load, seconds: u64) -> anyhow::Result<OhaResult> {
        self.run_with(
            addr,
            load,
            // Requests in flight at the deadline finish and count, rather than being reported as errors.
            &["-z".to_string(), format!("{seconds}s"), "-w".to_string()],
        )
    }

    /// Exactly `requests` requests.
    fn run_count(&self, addr: SocketAddr, connections: usize, requests: u64) -> anyhow::Result<OhaResult> {
        self.run_with(
            addr,
            Load::Saturate { connections },
            &["-n".to_string(), requests.to_string()],
        )
    }

    fn run_with(&self, addr: SocketAddr, load: Load, amount: &[String]) -> anyhow::Result<OhaResult> {
        let mut command = Command::new(&self.binary);
        command
            .args(["--no-tui", "--output-format", "json", "--insecure", "-m", "POST"])
            .args(["-H", "content-type: application/json", "-D"])
            .arg(&self.body)
            .args(amount);
        match load {
            Load::Saturate { connections } => {
                command.args(["-c", &connections.to_string()]);
            }
            Load::Rate {
                connections,
                per_second,
            } => {
                command.args(["-c", &connections.to_string(), "-q", &per_second.to_string()]);
            }
        }
        command.arg(format!("https://{addr}/validate"));
        let output = command.output().context("running oha")?;
        if !output.status.success() {
            bail!(
                "oha failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let report: Value = serde_json::from_slice(&output.stdout).with_context(|| {
            format!(
                "oha printed no JSON report: {}",
                String::from_utf8_lossy(&output.stdout)
            )
        })?;
        parse_oha(&report)
    }
}

/// Instructions one server executed per request answered.
#[derive(Debug, Clone, Copy)]
struct InstructionCount {
    kind: ServerKind,
    per_request: f64,
}

/// Starts each server under callgrind with counting off, warms it up, switches counting on, sends exactly
/// `requests` requests (4 connections), and reads the count it dumps. Counted instructions do not depend on
/// what else the machine is doing, so these ratios hold on a shared machine.
fn count_instructions(
    oha: &Oha,
    requests: u64,
    start: impl Fn(ServerKind, &Path) -> anyhow::Result<RunningServer>,
) -> anyhow::Result<Vec<InstructionCount>> {
    let callgrind_control = tprotect_testbed::install::which("callgrind_control")
        .context("callgrind_control (valgrind) not found on PATH")?;
    let dir = tempfile::tempdir()?;
    let mut counts = Vec::new();
    for kind in ServerKind::ALL {
        let out = dir.path().join(format!("callgrind.{kind:?}"));
        let server = start(kind, &out)?;
        let pid = server.process.pid.to_string();
        let control = |option: &str| -> anyhow::Result<()> {
            let status = Command::new(&callgrind_control)
                .args([option, &pid])
                .stdout(std::process::Stdio::null())
                .status()
                .context("running callgrind_control")?;
            anyhow::ensure!(status.success(), "callgrind_control {option} {pid} failed");
            Ok(())
        };
        let warm = oha.run_count(server.https, 4, 200)?;
        anyhow::ensure!(
            warm.failures == 0,
            "{} under callgrind: {}",
            kind.name(),
            warm.failure_summary
        );
        control("--instr=on")?;
        let counted = oha.run_count(server.https, 4, requests)?;
        control("--dump")?;
        anyhow::ensure!(
            counted.successes == requests && counted.failures == 0,
            "{} under callgrind answered {} of {requests} ({})",
            kind.name(),
            counted.successes,
            counted.failure_summary
        );
        let dump = std::path::PathBuf::from(format!("{}.1", out.display()));
        let total = read_callgrind_total(&dump)?;
        let per_request = total as f64 / requests as f64;
        eprintln!(
            "{:<26} {per_request:>9.0} instructions per request (callgrind)",
            kind.name()
        );
        counts.push(InstructionCount { kind, per_request });
    }
    Ok(counts)
}

/// The `summary:` (or `totals:`) line of a callgrind dump: instructions executed.
fn read_callgrind_total(path: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .find_map(|line| {
            line.strip_prefix("summary:")
                .or_else(|| line.strip_prefix("totals:"))
        })
        .and_then(|value| value.trim().parse().ok())
        .with_context(|| format!("{} has no summary line", path.display()))
}

fn parse_oha(report: &Value) -> anyhow::Result<OhaResult> {
    let number = |pointer: &str| {
        report
            .pointer(pointer)
            .and_then(Value::as_f64)
            .with_context(|| format!("oha's JSON report has no number at {pointer}"))
    };
    let statuses = report
        .pointer("/statusCodeDistribution")
        .and_then(Value::as_object)
        .context("oha's JSON report has no statusCodeDistribution")?;
    let mut successes = 0;
    let mut failures = 0;
    let mut failure_summary = Vec::new();
    for (status, count) in statuses {
        let count = count.as_u64().unwrap_or(0);
        if status == "200" {
            successes += count;
        } else {
            failures += count;
            failure_summary.push(format!("HTTP {status}: {count}"));
        }
    }
    if let Some(errors) = report.pointer("/errorDistribution").and_then(Value::as_object) {
        for (error, count) in errors {
            let count = count.as_u64().unwrap_or(0);
            failures += count;
            failure_summary.push(format!("{error}: {count}"));
        }
    }
    Ok(OhaResult {
        requests_per_second: number("/summary/requestsPerSec")?,
        p50_ms: number("/latencyPercentiles/p50")? * 1000.0,
        p99_ms: number("/latencyPercentiles/p99")? * 1000.0,
        successes,
        failures,
        failure_summary: failure_summary.join(", "),
        server_cpu_us: f64::NAN,
    })
}

// ---------------------------------------------------------------------------------------------------------
// Request bodies and objects

/// A valid replication Schedule (label `tprotect.io/replication-schedule: "true"`), as `kubectl tprotect`
/// and NetApp's tooling create them.
fn replication_schedule(name: &str, namespace: &str) -> Value {
    json!({
        "apiVersion": "protect.trident.netapp.io/v1",
        "kind": "Schedule",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"tprotect.io/replication-schedule": "true", "app.kubernetes.io/part-of": "bench"}
        },
        "spec": {
            "appVaultRef": "generic-s3-trident-protect-src-bucket-04b6b4ec-46a3-420a-b351-45795e1b5e34",
            "applicationRef": "my-app-name",
            "backupRetention": "0",
            "enabled": true,
            "granularity": "Custom",
            "recurrenceRule": RULE,
            "snapshotRetention": "2"
        }
    })
}

// ---------------------------------------------------------------------------------------------------------
// Schedules through the API server

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Registration {
    /// No admission webhook.
    Without,
    /// The no-op server registered in the webhook's place: what calling any webhook costs.
    Noop,
    /// tprotect-webhook.
    With,
}

impl Registration {
    const ALL: [Registration; 3] = [Registration::Without, Registration::Noop, Registration::With];

    fn slug(self) -> &'static str {
        match self {
            Registration::Without => "without",
            Registration::Noop => "noop",
            Registration::With => "with",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Registration::Without => "not registered",
            Registration::Noop => "no-op server registered (echoes the uid)",
            Registration::With => "tprotect-webhook registered",
        }
    }
}

struct ApiServerResult {
    batches: Vec<Batch>,
    /// Schedule validations the webhook counted.
    reviewed: u64,
    /// Reviews the no-op server answered.
    noop_reviewed: u64,
}

/// One batch: its wall time and the CPU time the API server and the registered admission server spent
/// during it.
struct Batch {
    registration: Registration,
    wall: Duration,
    apiserver_cpu: f64,
    admission_cpu: f64,
}

impl ApiServerResult {
    fn median_of(&self, registration: Registration, value: impl Fn(&Batch) -> f64) -> f64 {
        median(
            self.batches
                .iter()
                .filter(|b| b.registration == registration)
                .map(value),
        )
    }

    fn median_seconds(&self, registration: Registration) -> f64 {
        self.median_of(registration, |b| b.wall.as_secs_f64())
    }

    /// Wall time added by `registration` over `baseline`, in percent of the baseline.
    fn added_percent(&self, registration: Registration, baseline: Registration) -> f64 {
        let before = self.median_seconds(baseline);
        (self.median_seconds(registration) - before) / before * 100.0
    }
}

async fn schedules_through_apiserver(
    args: &BenchWebhookArgs,
    webhook: &RunningServer,
    noop: &RunningServer,
    certs: &Certs,
) -> anyhow::Result<ApiServerResult> {
    eprintln!("starting a testbed (real kube-apiserver + etcd) for the Schedule batches");
    let testbed = tprotect_testbed::Testbed::start_with(TestbedOptions {
        crds: CrdSource::Project,
        controller_manager: false,
        ..TestbedOptions::default()
    })
    .await
    .context("starting the testbed")?;
    let client = testbed.source.client.clone();
    let apiserver_pid = *testbed
        .source
        .pids()
        .first()
        .context("the testbed's API server has no pid")?;
    let ca = std::fs::read(&certs.ca).with_context(|| format!("reading {}", certs.ca.display()))?;
    let servers = Registered {
        webhook_base: format!("https://{}", webhook.https),
        noop_base: format!("https://{}", noop.https),
        ca,
    };
    let schedules = tprotect_localenv::protect("Schedule", "schedules");
    let reviewed_before = webhook.answers("Schedule", "validate")?.allowed;
    let noop_before = noop.noop_answered()?;

    // A warm-up batch per registered server (not counted): API server caches, connections, client pools.
    for (registration, namespace) in [
        (Registration::Noop, "bench-warmup-noop"),
        (Registration::With, "bench-warmup-with"),
    ] {
        create_namespace(&client, namespace).await?;
        servers.register(&client, registration).await?;
        wait_registration_effective(&client, &schedules, namespace, registration, noop).await?;
        let warmup = (args.schedules / 5).max(10);
        create_batch(&client, &schedules, namespace, warmup, args.concurrency).await?;
    }

    let mut batches = Vec::new();
    for round in 0..args.schedule_rounds {
        // Rotate the order every round, so no condition always follows the same one.
        let mut order = Registration::ALL;
        order.rotate_left(round % Registration::ALL.len());
        for registration in order {
            let namespace = format!("bench-{}-{round}", registration.slug());
            create_namespace(&client, &namespace).await?;
            servers.register(&client, registration).await?;
            wait_registration_effective(&client, &schedules, &namespace, registration, noop).await?;
            let admission_pid = match registration {
                Registration::Without => None,
                Registration::Noop => Some(noop.process.pid),
                Registration::With => Some(webhook.process.pid),
            };
            let admission_cpu_now = || admission_pid.map_or(Ok(0.0), cpu_seconds);
            let (apiserver_before, admission_before) = (cpu_seconds(apiserver_pid)?, admission_cpu_now()?);
            let elapsed =
                create_batch(&client, &schedules, &namespace, args.schedules, args.concurrency).await?;
            let apiserver_cpu = cpu_seconds(apiserver_pid)? - apiserver_before;
            let admission_cpu = admission_cpu_now()? - admission_before;
            eprintln!(
                "round {}/{} {:<42} {} Schedules in {:.2}s (CPU: API server {:.2}s, admission server {:.2}s)",
                round + 1,
                args.schedule_rounds,
                registration.title(),
                args.schedules,
                elapsed.as_secs_f64(),
                apiserver_cpu,
                admission_cpu
            );
            batches.push(Batch {
                registration,
                wall: elapsed,
                apiserver_cpu,
                admission_cpu,
            });
        }
    }
    // Every Schedule of a batch with a server registered went through that server (plus warm-up and probes):
    // one validation by the webhook; a mutation and a validation by the no-op.
    let expected = (args.schedules * args.schedule_rounds) as u64;
    let reviewed = webhook.answers("Schedule", "validate")?.allowed - reviewed_before;
    anyhow::ensure!(
        reviewed >= expected,
        "the webhook reviewed {reviewed} Schedules, expected at least {expected}"
    );
    let noop_reviewed = noop.noop_answered()? - noop_before;
    anyhow::ensure!(
        noop_reviewed >= 2 * expected,
        "the no-op server answered {noop_reviewed} reviews, expected at least {}",
        2 * expected
    );
    testbed.stop();
    Ok(ApiServerResult {
        batches,
        reviewed,
        noop_reviewed,
    })
}

/// The two admission servers the API server can be pointed at, and where they listen.
struct Registered {
    webhook_base: String,
    noop_base: String,
    /// The CA of both servers' certificate.
    ca: Vec<u8>,
}

impl Registered {
    /// Points both webhook configurations of `manifests/webhook/base/webhooks.yaml` at the server of
    /// `registration`, or deletes them.
    async fn register(&self, client: &kube::Client, registration: Registration) -> anyhow::Result<()> {
        use k8s_openapi::api::admissionregistration::v1::{
            MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
        };
        let base = match registration {
            Registration::With => &self.webhook_base,
            Registration::Noop => &self.noop_base,
            Registration::Without => {
                let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
                let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
                for result in [
                    validating
                        .delete(CONFIGURATION_NAME, &DeleteParams::default())
                        .await
                        .map(|_| ()),
                    mutating
                        .delete(CONFIGURATION_NAME, &DeleteParams::default())
                        .await
                        .map(|_| ()),
                ] {
                    match result {
                        Ok(()) => {}
                        Err(kube::Error::Api(status)) if status.code == 404 => {}
                        Err(error) => return Err(error).context("removing the webhook registration"),
                    }
                }
                return Ok(());
            }
        };
        tprotect_localenv::register_webhooks(client, base, &self.ca)
            .await
            .with_context(|| format!("registering {}", registration.title()))
    }
}

/// User plus system CPU time of a process so far, in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the parenthesised command name (which may contain spaces): state is field 3, utime 14.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(index)
            .and_then(|f| f.parse::<u64>().ok())
            .with_context(|| format!("malformed /proc/{pid}/stat"))? as f64)
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the name; Linux reports them in USER_HZ
    // (100 on every mainstream architecture).
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

async fn create_namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    Ok(())
}

/// The API server learns of webhook configurations through informers (one per kind); waits until it acts on
/// the change. Probes with dry-run creates: a replication Schedule with `enabled: false` is refused only by
/// the validating webhook, one without `granularity` passes the CRD's required fields only when the mutating
/// webhook fills it in, and a valid one reaches the no-op server twice (mutating and validating) exactly when
/// both configurations point at it.
async fn wait_registration_effective(
    client: &kube::Client,
    resource: &kube::api::ApiResource,
    namespace: &str,
    registration: Registration,
    noop: &RunningServer,
) -> anyhow::Result<()> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
    let dry_run = PostParams {
        dry_run: true,
        field_manager: None,
    };
    let mut disabled = replication_schedule("bench-probe-disabled", namespace);
    disabled["spec"]["enabled"] = json!(false);
    let mut no_granularity = replication_schedule("bench-probe-defaults", namespace);
    if let Some(spec) = no_granularity["spec"].as_object_mut() {
        spec.remove("granularity");
    }
    let disabled: DynamicObject = serde_json::from_value(disabled)?;
    let no_granularity: DynamicObject = serde_json::from_value(no_granularity)?;
    let valid: DynamicObject = serde_json::from_value(replication_schedule("bench-probe-valid", namespace))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let validated = api.create(&dry_run, &disabled).await.is_err();
        let mutated = api.create(&dry_run, &no_granularity).await.is_ok();
        let noop_before = noop.noop_answered()?;
        let valid_created = api.create(&dry_run, &valid).await.is_ok();
        let noop_calls = noop.noop_answered()? - noop_before;
        let webhook_wanted = registration == Registration::With;
        let noop_wanted = if registration == Registration::Noop { 2 } else { 0 };
        if validated == webhook_wanted
            && mutated == webhook_wanted
            && valid_created
            && noop_calls == noop_wanted
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "webhook registration {registration:?} not in effect after 60s (validating {validated}, \
                 mutating {mutated}, valid Schedule accepted {valid_created}, no-op server called \
                 {noop_calls} times)"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates `count` Schedules in `namespace`, `concurrency` at a time; returns the wall time.
async fn create_batch(
    client: &kube::Client,
    resource: &kube::api::ApiResource,
    namespace: &str,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
    let objects = (0..count)
        .map(|i| serde_json::from_value(replication_schedule(&format!("replication-{i:04}"), namespace)))
        .collect::<Result<Vec<DynamicObject>, _>>()?;
    let started = Instant::now();
    futures::stream::iter(objects.iter())
        .map(|object| {
            let api = api.clone();
            async move { api.create(&PostParams::default(), object).await.map(|_| ()) }
        })
        .buffer_unordered(concurrency)
        .try_collect::<()>()
        .await
        .with_context(|| format!("creating Schedules in {namespace}"))?;
    Ok(started.elapsed())
}

// ---------------------------------------------------------------------------------------------------------
// Report

struct Report<'a> {
    run: Provenance,
    args: &'a BenchWebhookArgs,
    runs: BTreeMap<(&'static str, ServerKind), Vec<OhaResult>>,
    idle: Memory,
    loaded: Memory,
    noop_idle: Memory,
    noop_loaded: Memory,
    instructions: Vec<InstructionCount>,
    flood: Option<FloodResult>,
    apiserver: Option<ApiServerResult>,
}

impl Report<'_> {
    fn median_cpu(&self, label: &str, kind: ServerKind) -> f64 {
        median(
            self.runs
                .get(&(label, kind))
                .into_iter()
                .flatten()
                .map(|r| r.server_cpu_us),
        )
    }

    fn medians(&self, label: &str, kind: ServerKind) -> (f64, f64, f64, u64) {
        let results = self
            .runs
            .get(&(label, kind))
            .map(Vec::as_slice)
            .unwrap_or_default();
        (
            median(results.iter().map(|r| r.requests_per_second)),
            median(results.iter().map(|r| r.p50_ms)),
            median(results.iter().map(|r| r.p99_ms)),
            results.iter().map(|r| r.failures).sum(),
        )
    }

    fn per_round(&self, label: &str, kind: ServerKind, value: impl Fn(&OhaResult) -> f64) -> String {
        self.runs
            .get(&(label, kind))
            .map(|results| {
                results
                    .iter()
                    .map(|r| format!("{:.0}", value(r)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    }

    fn markdown(&self) -> String {
        let a = self.args;
        let mut out = self.run.markdown("oha runs on the same cores as the servers.");
        let _ = writeln!(
            out,
            "oha over HTTPS on loopback (HTTP/1.1, keep-alive), `POST /validate` with a realistic \
             AppMirrorRelationship UPDATE review ({} bytes: old and new object with managed fields and status). \
             Release builds. The no-op server is an axum router on the webhook's own HTTPS server (hyper + \
             rustls, the same limits; `webhook/examples/noop_admission_server.rs`), answering a fixed review; \
             the same server with `--parse syntax` also checks that the body is JSON (serde_json, nothing \
             allocated), the least any webhook must do with a review. {} rounds, rotating which server goes \
             first; medians shown. Saturation: `-c {} -z {}s`; fixed rate: `-q {} -c {} -z {}s`.\n",
            serde_json::to_vec(&amr_update_review()).map_or(0, |b| b.len()),
            a.rounds,
            a.connections,
            a.seconds,
            a.rate,
            a.rate_connections,
            a.seconds
        );
        let _ = writeln!(
            out,
            "| Run | Server | req/s | p50 | p99 | server CPU per request | failed | req/s per round |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---|");
        for (label, title) in [
            ("saturation", format!("saturation, {} connections", a.connections)),
            ("rate", format!("fixed rate {} req/s", a.rate)),
        ] {
            for kind in ServerKind::ALL {
                let (rps, p50, p99, failed) = self.medians(label, kind);
                let cpu = self.median_cpu(label, kind);
                let _ = writeln!(
                    out,
                    "| {title} | {} | {rps:.0} | {p50:.3} ms | {p99:.3} ms | {cpu:.0} µs | {failed} | {} |",
                    kind.name(),
                    self.per_round(label, kind, |r| r.requests_per_second)
                );
            }
            let (n_rps, n_p50, n_p99, _) = self.medians(label, ServerKind::Noop);
            for (kind, name) in [
                (ServerKind::Webhook, "webhook"),
                (ServerKind::JsonFloor, "JSON syntax check"),
            ] {
                let (rps, p50, p99, _) = self.medians(label, kind);
                let _ = writeln!(
                    out,
                    "| {title} | ratio {name} / no-op | {:.2} | {:.2} | {:.2} | {:.2} | | |",
                    rps / n_rps,
                    p50 / n_p50,
                    p99 / n_p99,
                    self.median_cpu(label, kind) / self.median_cpu(label, ServerKind::Noop)
                );
            }
        }
        if let Some(noop) = self.instructions.iter().find(|c| c.kind == ServerKind::Noop) {
            let _ = writeln!(
                out,
                "\nInstructions per request, counted by valgrind's callgrind (the same on a busy machine as on a \
                 quiet one): each server warmed up with 200 requests, then {} requests on 4 connections \
                 counted. Everything the server process executes is counted: TLS, HTTP, the handler, the \
                 allocator.\n",
                a.counted_requests
            );
            let _ = writeln!(
                out,
                "| Server | instructions per request | × no-op | added to the no-op's |"
            );
            let _ = writeln!(out, "|---|---:|---:|---:|");
            for count in &self.instructions {
                let _ = writeln!(
                    out,
                    "| {} | {:.0} | {:.2} | {:+.0} |",
                    count.kind.name(),
                    count.per_request,
                    count.per_request / noop.per_request,
                    count.per_request - noop.per_request
                );
            }
        }
        let _ = writeln!(
            out,
            "\nRSS of tprotect-webhook: {:.1} MiB idle (VmRSS after start), {:.1} MiB peak under load (VmHWM \
             after all runs). No-op server for comparison: {:.1} MiB idle, {:.1} MiB peak.\n",
            self.idle.rss_mib(),
            self.loaded.hwm_mib(),
            self.noop_idle.rss_mib(),
            self.noop_loaded.hwm_mib()
        );
        if let Some(flood) = &self.flood {
            let _ = writeln!(
                out,
                "Memory flood (a fresh webhook): {} TLS connections at once, each sending a body of 7 MiB less \
                 1 KiB ({:.0} MiB in all) without its last byte. VmHWM {:.1} MiB (idle {:.1} MiB); {} refused \
                 (503 and closed unread: no memory for the body within 1 s), {} cut with 408 at the body timeout; RSS {:.1} MiB \
                 3 s after. The stated bound with the default flags is {:.0} MiB \
                 (`manifests/webhook/README.md`).\n",
                a.flood_connections,
                (a.flood_connections * (tprotect_webhook::admission::MAX_BODY_BYTES - 1024)) as f64
                    / (1024.0 * 1024.0),
                flood.peak.hwm_mib(),
                flood.idle.rss_mib(),
                flood.busy,
                flood.timed_out,
                flood.after.rss_mib(),
                tprotect_webhook::limits::memory_bound(&tprotect_webhook::Limits::default()) as f64
                    / (1024.0 * 1024.0)
            );
        }

        let (w_rps, _, _, _) = self.medians("saturation", ServerKind::Webhook);
        let (n_rps, _, _, _) = self.medians("saturation", ServerKind::Noop);
        let ratio = w_rps / n_rps;
        let (rate_rps, _, rate_p99, _) = self.medians("rate", ServerKind::Webhook);
        let rss = self.loaded.hwm_mib();

        if let Some(api) = &self.apiserver {
            let list = |registration| {
                api.batches
                    .iter()
                    .filter(|b| b.registration == registration)
                    .map(|b| format!("{:.2}", b.wall.as_secs_f64()))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                out,
                "Creating {} replication Schedules through a real kube-apiserver 1.20 (testbed, etcd on \
                 /dev/shm), {} at a time, each batch in its own namespace; {} batches per condition, \
                 interleaved in rotating order, after a warm-up batch per server. With a server registered the \
                 API server calls `/mutate` and `/validate` for each Schedule (both configurations of \
                 `manifests/webhook/base/webhooks.yaml`, registered by URL). The no-op server \
                 (`--parse uid`) reads only the review's uid and allows everything: what calling any webhook \
                 costs. The webhook counted {} Schedule validations, the no-op server {} reviews.\n",
                a.schedules, a.concurrency, a.schedule_rounds, api.reviewed, api.noop_reviewed
            );
            let _ = writeln!(
                out,
                "| Admission webhook | median wall time | batches (s) | API server CPU (median) | admission \
                 server CPU (median) |"
            );
            let _ = writeln!(out, "|---|---:|---|---:|---:|");
            for registration in Registration::ALL {
                let _ = writeln!(
                    out,
                    "| {} | {:.2} s | {} | {:.2} s | {:.2} s |",
                    registration.title(),
                    api.median_seconds(registration),
                    list(registration),
                    api.median_of(registration, |b| b.apiserver_cpu),
                    api.median_of(registration, |b| b.admission_cpu),
                );
            }
            let apiserver_added = |registration| {
                api.median_of(registration, |b| b.apiserver_cpu)
                    - api.median_of(Registration::Without, |b| b.apiserver_cpu)
            };
            let webhook_cpu = api.median_of(Registration::With, |b| b.admission_cpu);
            let _ = writeln!(
                out,
                "\nAdded wall time: {:+.1} % by the webhook, {:+.1} % by the no-op server; the webhook over the \
                 no-op: {:+.1} %. Per batch, compared with no webhook, the API server spent {:+.2} s CPU with \
                 the no-op registered and {:+.2} s with the webhook; the webhook itself {webhook_cpu:.2} s \
                 ({:.0} µs per Schedule, for its two reviews). The machine has {} cores, shared by the client, \
                 the API server, etcd and the admission server.\n",
                api.added_percent(Registration::With, Registration::Without),
                api.added_percent(Registration::Noop, Registration::Without),
                api.added_percent(Registration::With, Registration::Noop),
                apiserver_added(Registration::Noop),
                apiserver_added(Registration::With),
                webhook_cpu * 1e6 / a.schedules as f64,
                self.run.before.nproc
            );
        } else {
            let _ = writeln!(
                out,
                "The API-server measurement was skipped (`--skip-apiserver`).\n"
            );
        }

        let _ = writeln!(out, "| Target | Measured | Verdict |");
        let _ = writeln!(out, "|---|---|---|");
        match (
            self.instructions.iter().find(|c| c.kind == ServerKind::Webhook),
            self.instructions.iter().find(|c| c.kind == ServerKind::Noop),
            self.instructions.iter().find(|c| c.kind == ServerKind::JsonFloor),
        ) {
            (Some(webhook), Some(noop), floor) => {
                let times = webhook.per_request / noop.per_request;
                let _ = writeln!(
                    out,
                    "| instructions per request ≤ 2.5 × the no-op's | {times:.2} × ({:.0} vs {:.0}; the JSON \
                     syntax floor: {}) | {} |",
                    webhook.per_request,
                    noop.per_request,
                    floor.map_or("not measured".to_string(), |f| format!(
                        "{:.2} ×",
                        f.per_request / noop.per_request
                    )),
                    verdict(times <= 2.5)
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "| instructions per request ≤ 2.5 × the no-op's | not measured | **NOT checked** |"
                );
            }
        }
        let _ = writeln!(
            out,
            "| (recorded) saturation throughput, webhook / no-op | {ratio:.2} × ({w_rps:.0} vs {n_rps:.0} \
             req/s; the JSON syntax check alone: {:.2} ×) | for information |",
            self.medians("saturation", ServerKind::JsonFloor).0 / n_rps,
        );
        let rate_reached = rate_rps >= f64::from(a.rate) * 0.95;
        let _ = writeln!(
            out,
            "| p99 ≤ 1 ms at {} req/s | {rate_p99:.3} ms at {rate_rps:.0} req/s | {} |",
            a.rate,
            verdict(rate_p99 <= 1.0 && rate_reached)
        );
        let _ = writeln!(
            out,
            "| RSS ≤ 30 MiB under load | {rss:.1} MiB (VmHWM) | {} |",
            verdict(rss <= 30.0)
        );
        match &self.flood {
            Some(flood) => {
                let peak = flood.peak.hwm_mib();
                let _ = writeln!(
                    out,
                    "| RSS ≤ 64 MiB under the flood | {peak:.1} MiB (VmHWM, {} × 7 MiB bodies) | {} |",
                    a.flood_connections,
                    verdict(peak <= 64.0)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "| RSS ≤ 64 MiB under the flood | not measured | **NOT checked** |"
                );
            }
        }
        match &self.apiserver {
            Some(api) => {
                let added = api.added_percent(Registration::With, Registration::Noop);
                let _ = writeln!(
                    out,
                    "| ≤ 5 % added to creating {} Schedules over the no-op server registered in the webhook's \
                     place | {added:+.1} % (over no webhook: {:+.1} %; the no-op over no webhook: {:+.1} %) | {} |",
                    a.schedules,
                    api.added_percent(Registration::With, Registration::Without),
                    api.added_percent(Registration::Noop, Registration::Without),
                    verdict(added <= 5.0)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "| ≤ 5 % added to creating {} Schedules over the no-op server | not measured | **NOT \
                     checked** |",
                    a.schedules
                );
            }
        }
        out
    }
}

const SECTION: Section = Section {
    begin: BEGIN_MARKER,
    end: END_MARKER,
    heading: "Admission webhook",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gen_certs_writes_a_pair_the_webhook_serves() {
        let dir = tempfile::tempdir().unwrap();
        let certs = gen_certs(dir.path()).unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let files = tprotect_webhook::tls::CertificateFiles {
            cert: certs.cert.clone(),
            key: certs.key.clone(),
        };
        tprotect_webhook::tls::ReloadingCertificate::load(
            files,
            std::sync::Arc::new(tprotect_webhook::Metrics::new()),
        )
        .unwrap();
        assert!(
            std::fs::read_to_string(&certs.ca)
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );
    }

    #[test]
    fn reads_an_oha_report() {
        let report = json!({
            "summary": {"requestsPerSec": 12345.6},
            "latencyPercentiles": {"p50": 0.0004, "p99": 0.0012},
            "statusCodeDistribution": {"200": 100, "500": 2},
            "errorDistribution": {"connection closed": 1}
        });
        let result = parse_oha(&report).unwrap();
        assert_eq!(result.successes, 100);
        assert_eq!(result.failures, 3);
        assert!((result.p99_ms - 1.2).abs() < 1e-9);
        assert!(parse_oha(&json!({"summary": {}})).is_err());
    }

    #[test]
    fn added_wall_time_compares_medians_of_two_conditions() {
        let batch = |registration, seconds: f64| Batch {
            registration,
            wall: Duration::from_secs_f64(seconds),
            apiserver_cpu: 0.0,
            admission_cpu: 0.0,
        };
        let result = ApiServerResult {
            batches: vec![
                batch(Registration::Without, 2.0),
                batch(Registration::Noop, 2.4),
                batch(Registration::With, 3.0),
                batch(Registration::Without, 1.0),
                batch(Registration::Noop, 1.1),
                batch(Registration::With, 1.5),
                batch(Registration::Without, 1.2),
                batch(Registration::Noop, 1.5),
                batch(Registration::With, 1.8),
            ],
            reviewed: 0,
            noop_reviewed: 0,
        };
        // Medians: without 1.2 s, no-op 1.5 s, webhook 1.8 s.
        let added = |r, base| result.added_percent(r, base);
        assert!((added(Registration::With, Registration::Without) - 50.0).abs() < 1e-9);
        assert!((added(Registration::Noop, Registration::Without) - 25.0).abs() < 1e-9);
        assert!((added(Registration::With, Registration::Noop) - 20.0).abs() < 1e-9);
    }

    #[test]
    fn reads_the_total_of_a_callgrind_dump() {
        let dir = tempfile::tempdir().unwrap();
        let dump = dir.path().join("callgrind.out.1");
        std::fs::write(
            &dump,
            "# callgrind format\nversion: 1\nevents: Ir\nsummary: 394765994\n\nob=(1) x\n",
        )
        .unwrap();
        assert_eq!(read_callgrind_total(&dump).unwrap(), 394_765_994);
        std::fs::write(&dump, "events: Ir\ntotals: 12\n").unwrap();
        assert_eq!(read_callgrind_total(&dump).unwrap(), 12);
        std::fs::write(&dump, "events: Ir\n").unwrap();
        assert!(
            read_callgrind_total(&dump)
                .unwrap_err()
                .to_string()
                .contains("no summary line")
        );
    }
}
