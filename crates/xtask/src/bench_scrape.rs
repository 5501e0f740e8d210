//! `cargo xtask bench scrape`: what a Prometheus scrape of tprotect-webhook's `/metrics` costs with 1,000
//! AppMirrorRelationships in its cache, and whether scraping changes the latency of admission reviews. Results
//! are written to their own section of BENCHMARKS.md.
//!
//! A testbed cluster (a real kube-apiserver 1.20 and etcd) holds the AMRs, created through the API with a status
//! written through the status subresource as a controller writes it; the release `tprotect-webhook` watches them
//! (as the testbed's admin: the bench needs no RBAC fixture), exactly as it runs in a cluster. Then:
//!
//! 1. Scrape time: `GET /metrics` on loopback, one after another: wall time per scrape (median, p99, max), the
//!    size of the answer, its series, and the webhook's CPU time per scrape (`/proc/<pid>/stat`).
//! 2. Review latency: oha at a fixed rate (`POST /validate`, the realistic AMR review of `bench webhook`) with
//!    nobody scraping, and with a scraper fetching `/metrics` at fixed intervals (every second, 15 times what a
//!    Prometheus scraping every 15 s asks, and every 100 ms, a stress 150 times that), in rounds rotating the
//!    order; medians of p50 and p99 side by side.

use std::{
    fmt::Write as _,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;
use tprotect_testbed::{CrdSource, TestbedOptions, process::ManagedProcess};
use tprotect_webhook::testing::RULE;

use crate::bench_report::{Machine, Provenance, Section, invocation, median, percentile, verdict};
use crate::bench_webhook::{
    Load, Oha, OhaResult, build_servers, cpu_seconds, gen_certs, http_get, spawn_webhook,
};

const BEGIN_MARKER: &str = "<!-- BEGIN bench scrape -->";
const END_MARKER: &str = "<!-- END bench scrape -->";

const SECTION: Section = Section {
    begin: BEGIN_MARKER,
    end: END_MARKER,
    heading: "Scraping the webhook's metrics",
};

#[derive(Debug, clap::Args)]
pub struct BenchScrapeArgs {
    /// AppMirrorRelationships in the webhook's cache.
    #[arg(long, default_value_t = 1000)]
    amrs: usize,
    /// Namespaces they are spread over.
    #[arg(long, default_value_t = 20)]
    namespaces: usize,
    /// Scrapes timed one after another.
    #[arg(long, default_value_t = 200)]
    scrapes: usize,
    /// Rounds of the latency comparison (each runs both conditions, the order flipping every round).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of each oha run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Requests per second of the oha runs.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Connections of the oha runs.
    #[arg(long, default_value_t = 10)]
    connections: usize,
    /// Milliseconds between the scrapes of the "scraped" runs, one condition each (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1000, 100])]
    scrape_every_ms: Vec<u64>,
    /// Print the results without rewriting BENCHMARKS.md.
    #[arg(long)]
    no_write: bool,
}

/// Wall times of a series of scrapes and what they returned.
#[derive(Debug, Default)]
struct Scrapes {
    millis: Vec<f64>,
    bytes: usize,
    series: usize,
    amr_series: usize,
}

impl Scrapes {
    fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.millis.clone();
        sorted.sort_by(f64::total_cmp);
        percentile(&sorted, p)
    }
}

/// One scrape: its wall time in ms and the body.
fn scrape(health: SocketAddr) -> anyhow::Result<(f64, String)> {
    let start = Instant::now();
    let (status, body) = http_get(health, "/metrics")?;
    let millis = start.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(status == 200, "GET /metrics answered {status}");
    Ok((millis, body))
}

fn scrape_series(
    health: SocketAddr,
    count: usize,
    stop: Option<&AtomicBool>,
    every: Duration,
) -> anyhow::Result<Scrapes> {
    let mut scrapes = Scrapes::default();
    for _ in 0..count {
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            break;
        }
        let (millis, body) = scrape(health)?;
        scrapes.millis.push(millis);
        scrapes.bytes = body.len();
        let samples = body.lines().filter(|l| !l.starts_with('#') && !l.is_empty());
        scrapes.series = samples.clone().count();
        scrapes.amr_series = samples.filter(|l| l.starts_with("tprotect_amr_")).count();
        std::thread::sleep(every);
    }
    Ok(scrapes)
}

/// Creates `amrs` AppMirrorRelationships over `namespaces` namespaces, each with a status (Established, a
/// transfer 0–10 minutes ago), 16 requests at a time.
async fn create_amrs(client: &kube::Client, amrs: usize, namespaces: usize) -> anyhow::Result<()> {
    let resource = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk(
            tprotect_api::GROUP,
            tprotect_api::VERSION,
            "AppMirrorRelationship",
        ),
        "appmirrorrelationships",
    );
    let namespace_api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for n in 0..namespaces {
        let namespace = serde_json::from_value(json!({"metadata": {"name": format!("bench-{n:02}")}}))?;
        namespace_api
            .create(&PostParams::default(), &namespace)
            .await
            .with_context(|| format!("creating namespace bench-{n:02}"))?;
    }
    let now = k8s_openapi::jiff::Timestamp::now();
    futures::stream::iter(0..amrs)
        .map(|i| {
            let client = client.clone();
            let resource = resource.clone();
            async move {
                let namespace = format!("bench-{:02}", i % namespaces);
                let name = format!("rel-{i:04}");
                let api: Api<DynamicObject> = Api::namespaced_with(client, &namespace, &resource);
                let object: DynamicObject = serde_json::from_value(json!({
                    "apiVersion": tprotect_api::API_VERSION,
                    "kind": "AppMirrorRelationship",
                    "metadata": {"name": name, "namespace": namespace,
                                 "labels": {tprotect_api::RELATIONSHIP_LABEL: name}},
                    "spec": {
                        "desiredState": "Established",
                        "sourceAppVaultRef": "src-vault",
                        "destinationAppVaultRef": "dst-vault",
                        "sourceApplicationName": format!("app-{i:04}"),
                        "sourceApplicationUID": format!("00000000-0000-4000-8000-{i:012}"),
                        "namespaceMapping": [{"source": format!("app-{i:04}"), "destination": namespace}],
                        "recurrenceRule": RULE,
                    },
                }))?;
                api.create(&PostParams::default(), &object)
                    .await
                    .with_context(|| format!("creating AMR {namespace}/{name}"))?;
                let completed = now - k8s_openapi::jiff::SignedDuration::from_secs((i as i64 * 7) % 600);
                let status = json!({"status": {
                    "state": "Established",
                    "lastTransfer": {"startTimestamp": completed.to_string(), "completionTimestamp": completed.to_string()},
                    "lastTransferredSnapshot": {"name": format!("snap-{i:04}"), "completionTimestamp": completed.to_string()},
                    "conditions": [],
                }});
                api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                    .await
                    .with_context(|| format!("writing the status of AMR {namespace}/{name}"))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Waits until the webhook's cache holds `amrs` AMRs (its own metric says so).
fn wait_cached(process: &ManagedProcess, health: SocketAddr, amrs: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok((200, body)) = http_get(health, "/metrics")
            && body
                .lines()
                .any(|l| l == format!("tprotect_webhook_amr_cache_objects {amrs}"))
        {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the webhook's cache did not reach {amrs} AMRs in 120 s:\n{}",
            process.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    Quiet,
    /// A scrape every this many milliseconds (each waits for the previous one).
    ScrapedEvery(u64),
}

impl Condition {
    fn name(self) -> String {
        match self {
            Condition::Quiet => "nobody scraping".into(),
            Condition::ScrapedEvery(ms) if ms % 1000 == 0 => format!("scraped every {} s", ms / 1000),
            Condition::ScrapedEvery(ms) => format!("scraped every {ms} ms"),
        }
    }
}

/// One fixed-rate oha run under `condition`; with scraping, also the scrapes made meanwhile.
fn latency_run(
    oha: &Oha,
    https: SocketAddr,
    health: SocketAddr,
    args: &BenchScrapeArgs,
    condition: Condition,
) -> anyhow::Result<(OhaResult, Scrapes)> {
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = match condition {
        Condition::Quiet => None,
        Condition::ScrapedEvery(ms) => {
            let stop = stop.clone();
            Some(std::thread::spawn(move || {
                scrape_series(health, usize::MAX, Some(&stop), Duration::from_millis(ms))
            }))
        }
    };
    let load = Load::Rate {
        connections: args.connections,
        per_second: args.rate,
    };
    let result = oha.run(https, load, args.seconds);
    stop.store(true, Ordering::Relaxed);
    let scrapes = match scraper {
        Some(thread) => thread
            .join()
            .map_err(|_| anyhow::anyhow!("the scraper thread panicked"))??,
        None => Scrapes::default(),
    };
    let result = result?;
    anyhow::ensure!(
        result.failures == 0,
        "oha under {}: {}",
        condition.name(),
        result.failure_summary
    );
    Ok((result, scrapes))
}

pub fn run(args: BenchScrapeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.amrs > 0 && args.namespaces > 0,
        "--amrs and --namespaces must be at least 1"
    );
    anyhow::ensure!(
        args.rounds > 0 && args.scrapes > 0,
        "--rounds and --scrapes must be at least 1"
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let command = invocation();
    let machine_before = Machine::read();
    let work = tempfile::tempdir().context("creating a scratch directory")?;
    let oha = Oha::sending_amr_review(work.path())?;
    let (webhook_bin, _) = build_servers()?;
    let certs = gen_certs(work.path())?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let testbed = runtime.block_on(tprotect_testbed::Testbed::start_with(TestbedOptions {
        crds: CrdSource::Project,
        controller_manager: false,
        ..Default::default()
    }))?;
    let created = Instant::now();
    runtime.block_on(create_amrs(
        &testbed.destination.client,
        args.amrs,
        args.namespaces,
    ))?;
    eprintln!(
        "{} AMRs with status created in {:.1} s",
        args.amrs,
        created.elapsed().as_secs_f64()
    );
    let watch = [
        format!("--kubeconfig={}", testbed.kubeconfig.display()),
        "--context=tprotect-destination".to_string(),
    ];
    let (process, https, health) = spawn_webhook(&webhook_bin, &certs, work.path(), &watch, None)?;
    wait_cached(&process, health, args.amrs)?;

    // 1. One scrape after another (after a warm-up).
    scrape_series(health, 10, None, Duration::ZERO)?;
    let cpu_before = cpu_seconds(process.pid)?;
    let quiet = scrape_series(health, args.scrapes, None, Duration::ZERO)?;
    let cpu_per_scrape_ms = (cpu_seconds(process.pid)? - cpu_before) * 1e3 / args.scrapes as f64;
    anyhow::ensure!(
        quiet.amr_series >= args.amrs,
        "a scrape holds {} tprotect_amr_ series for {} AMRs",
        quiet.amr_series,
        args.amrs
    );
    eprintln!(
        "scrape: median {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} bytes, {} series ({} of AMRs); webhook CPU {:.2} ms per scrape",
        quiet.percentile(50.0),
        quiet.percentile(99.0),
        quiet.percentile(100.0),
        quiet.bytes,
        quiet.series,
        quiet.amr_series,
        cpu_per_scrape_ms
    );

    // 2. Review latency with and without scraping. Warm up first.
    oha.run(
        https,
        Load::Rate {
            connections: args.connections,
            per_second: args.rate,
        },
        2,
    )?;
    let conditions: Vec<Condition> = std::iter::once(Condition::Quiet)
        .chain(args.scrape_every_ms.iter().map(|ms| Condition::ScrapedEvery(*ms)))
        .collect();
    let mut results: Vec<(Condition, OhaResult, Scrapes)> = Vec::new();
    for round in 0..args.rounds {
        let mut order = conditions.clone();
        order.rotate_left(round % conditions.len());
        for condition in order {
            let (result, scrapes) = latency_run(&oha, https, health, &args, condition)?;
            eprintln!(
                "round {}/{} {:<20} {:>6.0} req/s  p50 {:.3} ms  p99 {:.3} ms  scrapes {} (median {:.2} ms)",
                round + 1,
                args.rounds,
                condition.name(),
                result.requests_per_second,
                result.p50_ms,
                result.p99_ms,
                scrapes.millis.len(),
                scrapes.percentile(50.0)
            );
            results.push((condition, result, scrapes));
        }
    }
    drop(process);
    drop(testbed);

    let report = Report {
        run: Provenance::ended(command, machine_before),
        args: &args,
        quiet,
        cpu_per_scrape_ms,
        results,
    };
    SECTION.publish(&report.markdown(), args.no_write)
}

struct Report<'a> {
    run: Provenance,
    args: &'a BenchScrapeArgs,
    quiet: Scrapes,
    cpu_per_scrape_ms: f64,
    results: Vec<(Condition, OhaResult, Scrapes)>,
}

impl Report<'_> {
    fn medians(&self, condition: Condition) -> (f64, f64, f64, usize) {
        let runs: Vec<&(Condition, OhaResult, Scrapes)> =
            self.results.iter().filter(|(c, _, _)| *c == condition).collect();
        (
            median(runs.iter().map(|(_, r, _)| r.requests_per_second)),
            median(runs.iter().map(|(_, r, _)| r.p50_ms)),
            median(runs.iter().map(|(_, r, _)| r.p99_ms)),
            runs.iter().map(|(_, _, s)| s.millis.len()).sum(),
        )
    }

    fn markdown(&self) -> String {
        let a = self.args;
        let mut out = self
            .run
            .markdown("oha, the scraper, the API server and the webhook share the cores.");
        let _ = writeln!(
            out,
            "The release `tprotect-webhook` watching {} AppMirrorRelationships (in {} namespaces, each with a status: Established, a transfer 0–10 minutes ago) on a real kube-apiserver 1.20 (testbed). Its `/metrics` then holds {} series ({} of them `tprotect_amr_*`), {} bytes.\n",
            a.amrs, a.namespaces, self.quiet.series, self.quiet.amr_series, self.quiet.bytes
        );
        let q = &self.quiet;
        let _ = writeln!(
            out,
            "**One scrape** (`GET /metrics` on loopback, {} one after another, after 10 warm-up scrapes): median {:.2} ms, p99 {:.2} ms, max {:.2} ms; the webhook's CPU time {:.2} ms per scrape.\n",
            q.millis.len(),
            q.percentile(50.0),
            q.percentile(99.0),
            q.percentile(100.0),
            self.cpu_per_scrape_ms
        );
        let intervals: Vec<String> = a
            .scrape_every_ms
            .iter()
            .map(|ms| Condition::ScrapedEvery(*ms).name().replace("scraped ", ""))
            .collect();
        let _ = writeln!(
            out,
            "**Review latency while scraped**: oha `-q {} -c {} -z {}s` `POST /validate` (the AMR UPDATE review of `bench webhook`), with nobody scraping and with a scraper fetching `/metrics` {} (each scrape waits for the previous one; one Prometheus scrapes a target every 15–60 s); {} rounds, rotating the order; medians.\n",
            a.rate,
            a.connections,
            a.seconds,
            intervals.join(", then "),
            a.rounds
        );
        let _ = writeln!(
            out,
            "| Condition | req/s | p50 | p99 | p99 / quiet p99 | scrapes during the runs (median time) | p99 per round |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---|");
        let conditions: Vec<Condition> = std::iter::once(Condition::Quiet)
            .chain(a.scrape_every_ms.iter().map(|ms| Condition::ScrapedEvery(*ms)))
            .collect();
        let (_, _, quiet_p99, _) = self.medians(Condition::Quiet);
        for condition in &conditions {
            let (rps, p50, p99, scrapes) = self.medians(*condition);
            let runs = || self.results.iter().filter(|(c, _, _)| c == condition);
            let per_round: Vec<String> = runs().map(|(_, r, _)| format!("{:.3}", r.p99_ms)).collect();
            let scrape_times = Scrapes {
                millis: runs().flat_map(|(_, _, s)| s.millis.iter().copied()).collect(),
                ..Default::default()
            };
            let scrape_column = if scrapes == 0 {
                "0".to_string()
            } else {
                format!("{scrapes} ({:.2} ms)", scrape_times.percentile(50.0))
            };
            let _ = writeln!(
                out,
                "| {} | {rps:.0} | {p50:.3} ms | {p99:.3} ms | {:.2} | {scrape_column} | {} |",
                condition.name(),
                p99 / quiet_p99,
                per_round.join(", ")
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "| Target | Measured | Verdict |");
        let _ = writeln!(out, "|---|---|---|");
        let _ = writeln!(
            out,
            "| one scrape with {} AMRs ≤ 10 ms (median of {} scrapes) | median {:.2} ms (p99 {:.2} ms) | {} |",
            a.amrs,
            q.millis.len(),
            q.percentile(50.0),
            q.percentile(99.0),
            verdict(q.percentile(50.0) <= 10.0)
        );
        // "None measurable": the p99 of scraped runs within the spread of the quiet runs' p99 across rounds.
        let quiet_p99s: Vec<f64> = self
            .results
            .iter()
            .filter(|(c, _, _)| *c == Condition::Quiet)
            .map(|(_, r, _)| r.p99_ms)
            .collect();
        let spread = quiet_p99s.iter().copied().fold(f64::MIN, f64::max)
            - quiet_p99s.iter().copied().fold(f64::MAX, f64::min);
        for condition in conditions.iter().skip(1) {
            let (_, _, p99, _) = self.medians(*condition);
            let _ = writeln!(
                out,
                "| no measurable effect on review p99 at {} req/s, {} | {:.3} ms vs {:.3} ms quiet (quiet rounds spread {:.3} ms) | {} |",
                a.rate,
                condition.name(),
                p99,
                quiet_p99,
                spread,
                verdict(p99 - quiet_p99 <= spread.max(0.0))
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_rank() {
        let scrapes = Scrapes {
            millis: (1..=100).map(f64::from).collect(),
            ..Default::default()
        };
        assert_eq!(scrapes.percentile(50.0), 50.0);
        assert_eq!(scrapes.percentile(99.0), 99.0);
        assert_eq!(scrapes.percentile(100.0), 100.0);
        assert!(Scrapes::default().percentile(50.0).is_nan());
    }

    #[test]
    fn the_section_is_appended_once_then_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("BENCHMARKS.md");
        std::fs::write(&path, "# Benchmarks\n\nother section\n").unwrap();
        SECTION.write(&path, "first\n").unwrap();
        SECTION.write(&path, "second\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# Benchmarks\n\nother section\n"), "{text}");
        assert_eq!(text.matches(BEGIN_MARKER).count(), 1, "{text}");
        assert!(text.contains("second\n") && !text.contains("first"), "{text}");
    }
}
