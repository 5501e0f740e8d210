//! `cargo xtask bench plugin`: benchmarks of kubectl tprotect (release build); results are written to the
//! plugin's section of BENCHMARKS.md.
//!
//! 1. API requests per command: the whole lifecycle (the demo's walk) on fresh local clusters, each request of
//!    the plugin's user agent counted from both API servers' audit logs (distinct audit IDs), by cluster and
//!    verb, against a budget derived from what the command has to do.
//! 2. Status-change notice latency: `kubectl tprotect status NAME --watch -o json` runs as a child; the AMR's
//!    `status.error` is patched (as Trident protect's controller, the stand-in stopped so nothing else writes)
//!    to a new marker; the time from the patch's response to the plugin printing the marker on stdout.
//! 3. Cold start of `kubectl-tprotect --help` (hyperfine), and through kubectl for information.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use tprotect_localenv::audit::{self, PLUGIN_USER_AGENT_PREFIX};
use tprotect_localenv::{LocalEnv, Plugin, protect};
use tprotect_testbed::Identity;

use crate::bench_report::{self, Section, date_utc, percentile, verdict};
use xtask::lifecycle_walk::{self, APP, DESTINATION, Profile, SOURCE, Step};

const SECTION: Section = Section {
    begin: "<!-- BEGIN bench plugin -->",
    end: "<!-- END bench plugin -->",
    heading: "kubectl tprotect",
};
const LATENCY_TARGET_MS: f64 = 200.0;
const COLD_START_TARGET_MS: f64 = 10.0;
/// How long one status change may take to show before it counts as missed.
const NOTICE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct BenchPluginArgs {
    /// How many status changes to time (at least 20)
    #[arg(long, default_value_t = 30)]
    pub changes: usize,
    /// Print the results without rewriting BENCHMARKS.md
    #[arg(long)]
    pub no_write: bool,
}

pub fn run(args: BenchPluginArgs) -> anyhow::Result<()> {
    if args.changes < 20 {
        bail!("--changes must be at least 20 for a meaningful p95");
    }
    let started = Instant::now();
    let date = date_utc();
    let load_before = command_output(&mut Command::new("uptime"));
    eprintln!("== building kubectl-tprotect and tprotect-webhook (release)");
    let binaries = lifecycle_walk::build_binaries(Profile::Release)?;
    let hyperfine = ensure_hyperfine()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (commands, latency) = runtime.block_on(async {
        eprintln!("== two local clusters (real kube-apiservers), the stand-in, the webhook");
        let mut env = lifecycle_walk::start_env(binaries.webhook.clone()).await?;
        let plugin = Plugin::new(binaries.plugin.clone(), env.kubeconfig());
        let mut audit = AuditLogs::new(&env);
        let mut commands = Vec::new();
        let mut latency = None;
        for step in lifecycle_walk::lifecycle() {
            let Step::Run(argv) = step else { continue };
            if argv[0] == "delete" {
                // Time status changes while the relationship still exists. Nothing but the bench may write the
                // AMR's status meanwhile, so the stand-in stops first (delete needs no controller action).
                env.stop_standin().await;
                let mut measured = notice_latency(&env, &binaries.plugin, args.changes).await?;
                // The watching status command's own requests are not the delete's.
                tokio::time::sleep(Duration::from_millis(800)).await;
                measured.watch_requests = audit.new_requests()?.len();
                latency = Some(measured);
            }
            let label = label(&argv, &commands);
            commands.push(count_command(&mut audit, &plugin, label, &argv).await?);
        }
        drop(env);
        anyhow::Ok((commands, latency.context("the walk has no delete step")?))
    })?;
    let load_after_clusters = command_output(&mut Command::new("uptime"));
    eprintln!("== cold start (hyperfine)");
    let cold = cold_start(&hyperfine, &binaries.plugin)?;
    let host = bench_report::Machine::read();
    let machine = Machine {
        date,
        cpus: host.nproc,
        cpu_model: host.cpu,
        load: vec![
            ("start", load_before),
            ("after the clusters", load_after_clusters),
            ("end", command_output(&mut Command::new("uptime"))),
        ],
        duration: started.elapsed(),
    };
    SECTION.publish(&render(&machine, &commands, &latency, &cold), args.no_write)
}

fn command_output(command: &mut Command) -> String {
    command
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// A label for a run of the walk: the verb, with what distinguishes repeated runs of it.
fn label(argv: &[&str], done: &[CommandRequests]) -> String {
    let verb = argv[0];
    let mut label = verb.to_string();
    if argv.contains(&"--dry-run=client") {
        label.push_str(" --dry-run=client");
    } else if verb == "failover"
        && done
            .last()
            .is_some_and(|last| last.label.starts_with("failover ("))
    {
        label.push_str(" (again: already Promoted)");
    }
    if verb == "failover" && !label.contains("again") && !label.contains("dry-run") {
        let before = done
            .last()
            .map(|l| l.label.split(' ').next().unwrap_or_default().to_string())
            .unwrap_or_default();
        label.push_str(&format!(" (after {before})"));
    }
    label
}

// ---------------------------------------------------------------------------------------------------------
// API requests per command

/// Both API servers' audit logs, read incrementally.
struct AuditLogs {
    logs: Vec<(String, PathBuf, u64)>,
    /// Audit IDs already attributed (a watch logs a second line when it ends, maybe after its command).
    seen: BTreeSet<String>,
}

/// One request of the plugin.
#[derive(Debug, Clone)]
struct Request {
    cluster: String,
    verb: String,
    resource: String,
}

impl AuditLogs {
    fn new(env: &LocalEnv) -> Self {
        let mut logs = Vec::new();
        for cluster in [&env.testbed.source, &env.testbed.destination] {
            let offset = std::fs::metadata(&cluster.audit_log).map_or(0, |m| m.len());
            logs.push((cluster.context.clone(), cluster.audit_log.clone(), offset));
        }
        Self {
            logs,
            seen: BTreeSet::new(),
        }
    }

    /// The plugin's requests logged since the last call, each once.
    fn new_requests(&mut self) -> anyhow::Result<Vec<Request>> {
        let mut requests = Vec::new();
        for (cluster, path, offset) in &mut self.logs {
            let (events, next) = audit::read_from(path, *offset)?;
            *offset = next;
            for event in events {
                if !event.by_plugin() || !self.seen.insert(event.audit_id.clone()) {
                    continue;
                }
                requests.push(Request {
                    cluster: cluster.clone(),
                    resource: event.resource(),
                    verb: event.verb,
                });
            }
        }
        Ok(requests)
    }
}

/// A command of the walk and the requests it made.
#[derive(Debug)]
struct CommandRequests {
    label: String,
    argv: Vec<String>,
    requests: Vec<Request>,
    elapsed: Duration,
}

impl CommandRequests {
    /// "list 12, get 3" for one cluster.
    fn verbs(&self, cluster: &str) -> String {
        tally(
            self.requests
                .iter()
                .filter(|r| r.cluster == cluster)
                .map(|r| r.verb.as_str()),
        )
    }

    /// "appmirrorrelationships 20, namespaces 4" over both clusters, the most frequent first.
    fn resources(&self, verbs: &[&str]) -> String {
        tally(
            self.requests
                .iter()
                .filter(|r| verbs.contains(&r.verb.as_str()))
                .map(|r| r.resource.as_str()),
        )
    }

    fn count(&self, verbs: &[&str]) -> usize {
        self.requests
            .iter()
            .filter(|r| verbs.contains(&r.verb.as_str()))
            .count()
    }
}

const READS: [&str; 2] = ["get", "list"];
const WATCHES: [&str; 1] = ["watch"];
const WRITES: [&str; 5] = audit::WRITE_VERBS;

/// Runs one command of the walk and attributes the requests logged meanwhile to it.
async fn count_command(
    audit: &mut AuditLogs,
    plugin: &Plugin,
    label: String,
    argv: &[&str],
) -> anyhow::Result<CommandRequests> {
    eprintln!("$ kubectl tprotect {}", argv.join(" "));
    let output = plugin.run(argv).await?;
    output.success()?;
    let elapsed = output.elapsed;
    // The API server logs a request when its response is complete, which may be a moment after the plugin
    // got it and exited; a watch's last line comes when the connection closes.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let requests = audit.new_requests()?;
    let result = CommandRequests {
        label,
        argv: argv.iter().map(|a| a.to_string()).collect(),
        requests,
        elapsed,
    };
    eprintln!(
        "   {} requests in {:.1}s ({SOURCE}: {}; {DESTINATION}: {})",
        result.requests.len(),
        elapsed.as_secs_f64(),
        result.verbs(SOURCE),
        result.verbs(DESTINATION)
    );
    Ok(result)
}

/// The budget of a command of the walk, and why. Units (see the report's text): locate L = 2, lock lookup
/// K = 2, full observation F = 22, narrow observation N = 4, a step's observation R ≈ 12, the lock 2.
fn budget(label: &str) -> (usize, &'static str) {
    let verb = label.split(' ').next().unwrap_or_default();
    match (verb, label) {
        (_, l) if l.contains("dry-run=client") => (
            12,
            "L + K + N for the plan (8), + N spare for a re-read; no lock, no writes",
        ),
        (_, l) if l.contains("again") => (
            10,
            "L + K + N (8): already Promoted, so no lock, no write; + 2 spare",
        ),
        ("status", _) => (26, "L + K + F"),
        ("check", _) => (
            30,
            "L + K + F (26) + the webhook registrations on both clusters (≈ 4)",
        ),
        ("preview", _) => (
            12,
            "L + K + N (8) + the destination namespace and its workloads (≈ 4)",
        ),
        ("failover", _) => (
            25,
            "L + K + 3 narrow observations (plan, under the lock, after the wait: 12) + lock 2 + 1 patch + 1 \
             watch ≈ 20, + 5 spare (a 409 re-read, a reopened watch)",
        ),
        ("resync", _) => (
            35,
            "as failover (20) with the destination Schedules in each of its 3 observations (+ 6), the discard \
             annotation and the AMR patch (+ 1) ≈ 27, + 8 spare (one Schedule delete per destination schedule)",
        ),
        ("setup", _) => (
            130,
            "L + K + F (26) + lock 2 + ≈ 6 steps (Secret copy, destination namespace, initial Snapshot, wait \
             Completed, AMR, wait Established) × R (72) + ≈ 8 writes + 2 watches ≈ 110, + 20 spare",
        ),
        ("reverse-resync", _) => (
            130,
            "L + K + F (26) + lock 2 + ≈ 6 steps (save and remove the destination schedules, the reverse AMR \
             on the old source, waits) × R (72) + ≈ 11 writes + 2 watches ≈ 113, + 17 spare",
        ),
        ("reverse", _) => (
            200,
            "L + K + F (26) + lock 2 + ≈ 10 steps (ShutdownSnapshot, wait Completed, basename, \
             promotedSnapshot, reverse resync, waits, schedules re-enabled) × R ≈ 13 (130) + ≈ 12 writes + 3 \
             watches ≈ 173, + 27 spare",
        ),
        ("failback", _) => (
            300,
            "reverse-resync's and reverse's work under one lock, one start: 113 + 173 − 28 ≈ 258, + 42 spare",
        ),
        ("delete", _) => (
            20,
            "L + K + N (8) + lock 2 + 1 delete + a watch until gone + N after ≈ 16, + 4 spare",
        ),
        _ => (0, "no budget set"),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Status-change notice latency

#[derive(Debug)]
struct Latency {
    samples_ms: Vec<f64>,
    missed: usize,
    write_ms: Vec<f64>,
    /// Requests the watching `status` made in all (its start, its watches, one observation per change).
    watch_requests: usize,
}

/// Where the relationship's AMR is, as the controller sees it.
async fn find_amr(env: &LocalEnv) -> anyhow::Result<Api<DynamicObject>> {
    let ar = protect("AppMirrorRelationship", "appmirrorrelationships");
    for cluster in [&env.testbed.destination, &env.testbed.source] {
        let all: Api<DynamicObject> = Api::all_with(cluster.client.clone(), &ar);
        for amr in all.list(&Default::default()).await?.items {
            if amr.metadata.name.as_deref() == Some(APP) {
                let namespace = amr.metadata.namespace.clone().unwrap_or_default();
                let controller = cluster.client_as(Identity::Controller).await?;
                return Ok(Api::namespaced_with(controller, &namespace, &ar));
            }
        }
    }
    bail!("no AppMirrorRelationship {APP} on either cluster")
}

/// Reads the JSON documents `status --watch -o json` prints, each with the time its last line arrived.
fn spawn_reader(stdout: std::process::ChildStdout) -> tokio::sync::mpsc::UnboundedReceiver<(Instant, Value)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let mut document = String::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            document.push_str(&line);
            document.push('\n');
            // Pretty JSON: a top-level document ends with a `}` in the first column.
            if line == "}" {
                let arrived = Instant::now();
                if let Ok(value) = serde_json::from_str::<Value>(&document)
                    && tx.send((arrived, value)).is_err()
                {
                    break;
                }
                document.clear();
            }
        }
    });
    rx
}

async fn notice_latency(env: &LocalEnv, plugin: &Path, changes: usize) -> anyhow::Result<Latency> {
    eprintln!("== status-change notice latency: {changes} changes");
    let amr = find_amr(env).await?;
    let mut child = Command::new(plugin)
        .args([
            "status",
            APP,
            "--context",
            DESTINATION,
            "--peer-context",
            SOURCE,
            "-o",
            "json",
            "--watch",
        ])
        .env("KUBECONFIG", env.kubeconfig())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting kubectl tprotect status --watch")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut printed = spawn_reader(stdout);
    let result = time_changes(&amr, &mut printed, changes).await;
    // Our own child, by its handle.
    let _ = child.kill();
    let _ = child.wait();
    result
}

async fn time_changes(
    amr: &Api<DynamicObject>,
    printed: &mut tokio::sync::mpsc::UnboundedReceiver<(Instant, Value)>,
    changes: usize,
) -> anyhow::Result<Latency> {
    tokio::time::timeout(Duration::from_secs(30), printed.recv())
        .await
        .context("status --watch printed nothing in 30s")?
        .context("status --watch exited")?;
    // Its watches start after the first print; give them time to be established.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut latency = Latency {
        samples_ms: Vec::new(),
        missed: 0,
        write_ms: Vec::new(),
        watch_requests: 0,
    };
    for i in 0..changes {
        let marker = format!("tprotect bench change {i}");
        let sent = Instant::now();
        amr.patch_status(
            APP,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"error": marker}})),
        )
        .await
        .context("patching the AMR's status as the controller")?;
        let acknowledged = Instant::now();
        latency.write_ms.push(ms(acknowledged - sent));
        let deadline = tokio::time::Instant::now() + NOTICE_TIMEOUT;
        let noticed = loop {
            match tokio::time::timeout_at(deadline, printed.recv()).await {
                Ok(Some((arrived, view))) if view["amr"]["error"] == marker.as_str() => break Some(arrived),
                Ok(Some(_)) => continue,
                Ok(None) => bail!("status --watch exited during the benchmark"),
                Err(_) => break None,
            }
        };
        match noticed {
            // The plugin may print before the patch's response reaches us: that is a zero.
            Some(arrived) => latency
                .samples_ms
                .push(ms(arrived.saturating_duration_since(acknowledged))),
            None => latency.missed += 1,
        }
        // Changes a moment apart, so each is its own event and not batched with the previous one.
        tokio::time::sleep(Duration::from_millis(250 + (i as u64 * 37) % 200)).await;
    }
    amr.patch_status(
        APP,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"error": null}})),
    )
    .await?;
    Ok(latency)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------------------------------------
// Cold start

fn ensure_hyperfine() -> anyhow::Result<PathBuf> {
    if let Some(path) = tprotect_testbed::install::which("hyperfine") {
        return Ok(path);
    }
    eprintln!("== installing hyperfine (Debian package)");
    for args in [
        vec!["update", "-q"],
        vec!["install", "-y", "-q", "--no-install-recommends", "hyperfine"],
    ] {
        let status = Command::new("apt-get")
            .args(&args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("running apt-get")?;
        if !status.success() {
            bail!(
                "apt-get {} failed ({status}); install hyperfine and run again",
                args.join(" ")
            );
        }
    }
    tprotect_testbed::install::which("hyperfine").context("hyperfine not found after apt-get install")
}

#[derive(Debug)]
struct Timing {
    mean_ms: f64,
    stddev_ms: f64,
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
    runs: usize,
}

#[derive(Debug)]
struct ColdStart {
    binary: Timing,
    through_kubectl: Option<Timing>,
}

fn hyperfine_run(hyperfine: &Path, command: &str, path_env: &str) -> anyhow::Result<Timing> {
    let export = tempfile_path("hyperfine.json");
    let status = Command::new(hyperfine)
        .args([
            "-N",
            "--warmup",
            "3",
            "--runs",
            "50",
            "--style",
            "basic",
            "--export-json",
        ])
        .arg(&export)
        .arg(command)
        .env("PATH", path_env)
        .stdout(Stdio::null())
        .status()
        .context("running hyperfine")?;
    if !status.success() {
        bail!("hyperfine {command:?} failed ({status})");
    }
    let text = std::fs::read_to_string(&export).with_context(|| format!("{}", export.display()))?;
    let _ = std::fs::remove_file(&export);
    let json: Value = serde_json::from_str(&text)?;
    let result = &json["results"][0];
    let seconds = |key: &str| result[key].as_f64().unwrap_or(f64::NAN) * 1000.0;
    Ok(Timing {
        mean_ms: seconds("mean"),
        stddev_ms: seconds("stddev"),
        median_ms: seconds("median"),
        min_ms: seconds("min"),
        max_ms: seconds("max"),
        runs: result["times"].as_array().map_or(0, |t| t.len()),
    })
}

fn tempfile_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tprotect-bench-{}-{name}", std::process::id()))
}

fn cold_start(hyperfine: &Path, plugin: &Path) -> anyhow::Result<ColdStart> {
    let dir = plugin.parent().context("plugin path has no directory")?;
    // kubectl finds plugins on PATH: the release directory first, so it runs the binary just built.
    let path_env = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    let binary = hyperfine_run(hyperfine, &format!("{} --help", plugin.display()), &path_env)?;
    let through_kubectl = if tprotect_testbed::install::which("kubectl").is_some() {
        Some(hyperfine_run(hyperfine, "kubectl tprotect --help", &path_env)?)
    } else {
        eprintln!("WARNING: kubectl not on PATH: `kubectl tprotect --help` not measured");
        None
    };
    Ok(ColdStart {
        binary,
        through_kubectl,
    })
}

// ---------------------------------------------------------------------------------------------------------
// The report

#[derive(Debug)]
struct Machine {
    date: String,
    cpus: usize,
    cpu_model: String,
    load: Vec<(&'static str, String)>,
    duration: Duration,
}

fn render(machine: &Machine, commands: &[CommandRequests], latency: &Latency, cold: &ColdStart) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Command: `cargo xtask bench plugin` (release build; took {:.0} s).",
        machine.duration.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "Run on {}: {} CPUs ({}).",
        machine.date, machine.cpus, machine.cpu_model
    );
    let _ = writeln!(
        out,
        "Load (`uptime`, shared machine; other builds and tests may run meanwhile):"
    );
    let _ = writeln!(out);
    for (when, load) in &machine.load {
        let _ = writeln!(out, "- {when}: `{load}`");
    }

    // Requests.
    let over: Vec<&str> = commands
        .iter()
        .filter(|c| c.requests.len() > budget(&c.label).0)
        .map(|c| c.label.as_str())
        .collect();
    let _ = writeln!(out);
    let _ = writeln!(out, "### API requests per command");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "The whole lifecycle (the walk of `cargo xtask demo`) on two fresh local clusters (real kube-apiserver \
         1.20 + etcd, the Trident protect stand-in, the real webhook), each command run once with \
         `--context {DESTINATION} --peer-context {SOURCE}` (setup with its own contexts). Requests are the \
         distinct audit IDs with user agent `{PLUGIN_USER_AGENT_PREFIX}…` in both API servers' audit logs while the \
         command ran; a watch counts once. The delete ran after the stand-in was stopped (for the latency \
         benchmark); it needs no controller action."
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Budgets are set from what each command has to do, in these units: **L** = 2, locating the \
         relationship (a LIST of AMRs on each cluster); **K** = 2, looking for an operation in progress (a \
         LIST of Leases on each cluster); **F** = 22, a full observation of both clusters (on each: LISTs of \
         the relationship's AMRs, Applications, Schedules, Snapshots, ShutdownSnapshots, and of the stable \
         objects — namespaces, AppVaults, Secrets, StorageClasses, saved-schedule ConfigMaps — plus a GET of \
         the cluster id); **N** = 4, the narrow observation a failover needs (AMRs and namespaces on each \
         cluster); **R** ≈ 12, one step's re-observation (the relationship's objects; stable objects again \
         only on a cluster this run wrote or a wait let the controller act on); the lock = 2 (Lease create \
         and delete); each write 1; each wait 1 watch per cluster waited on. A budget is that sum plus \
         10–20 % spare; a command above it is reported OVER."
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| command | requests | budget | | reads (get/list) | watches | writes | on {SOURCE} | on {DESTINATION} | time |"
    );
    let _ = writeln!(out, "|---|---:|---:|---|---:|---:|---:|---|---|---:|");
    for c in commands {
        let (limit, _) = budget(&c.label);
        let total = c.requests.len();
        let _ = writeln!(
            out,
            "| `{}` | {total} | {limit} | {} | {} | {} | {} | {} | {} | {:.1} s |",
            c.label,
            if total <= limit { "within" } else { "**OVER**" },
            c.count(&READS),
            c.count(&WATCHES),
            c.count(&WRITES),
            c.verbs(SOURCE),
            c.verbs(DESTINATION),
            c.elapsed.as_secs_f64()
        );
    }
    let _ = writeln!(out);
    if over.is_empty() {
        let _ = writeln!(out, "Every command is within its budget.");
    } else {
        let _ = writeln!(out, "**Over budget: {}.**", over.join(", "));
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Why each budget, and what the requests were (both clusters, most frequent first):"
    );
    let _ = writeln!(out);
    let mut explained = BTreeSet::new();
    for c in commands {
        let (limit, why) = budget(&c.label);
        let _ = writeln!(
            out,
            "- `kubectl tprotect {}`: {} requests.{} Reads: {}. Writes: {}. Watches: {}.",
            c.argv.join(" "),
            c.requests.len(),
            if explained.insert(why) {
                format!(" Budget {limit}: {why}.")
            } else {
                String::new()
            },
            c.resources(&READS),
            c.resources(&WRITES),
            c.resources(&WATCHES),
        );
    }

    // Latency.
    let mut sorted = latency.samples_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let mut writes = latency.write_ms.clone();
    writes.sort_by(f64::total_cmp);
    let (p50, p95, max) = (
        percentile(&sorted, 50.0),
        percentile(&sorted, 95.0),
        percentile(&sorted, 100.0),
    );
    let latency_ok = latency.missed == 0 && p95 <= LATENCY_TARGET_MS;
    let _ = writeln!(out);
    let _ = writeln!(out, "### Status change → the plugin notices");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "`kubectl tprotect status {APP} --context {DESTINATION} --peer-context {SOURCE} -o json --watch` runs; \
         the bench patches the AMR's `status.error` to a new value as Trident protect's controller identity \
         ({} changes, 250–450 ms apart, the stand-in stopped) and times from the patch's response to the \
         plugin's stdout carrying the new value. The plugin watches the AMRs on both clusters, waits 20 ms for \
         a burst of events to settle, then observes both clusters and prints if the view changed.",
        latency.samples_ms.len() + latency.missed
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "| | p50 | p95 | max | target | |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---|");
    let _ = writeln!(
        out,
        "| status change → printed | {p50:.0} ms | {p95:.0} ms | {max:.0} ms | p95 ≤ {LATENCY_TARGET_MS:.0} ms | {} |",
        verdict(latency_ok)
    );
    let _ = writeln!(
        out,
        "| (the status patch's round trip, for reference) | {:.0} ms | {:.0} ms | {:.0} ms | | |",
        percentile(&writes, 50.0),
        percentile(&writes, 95.0),
        percentile(&writes, 100.0)
    );
    let _ = writeln!(out);
    if latency.missed > 0 {
        let _ = writeln!(
            out,
            "**{} of the changes were not printed within {} s.**",
            latency.missed,
            NOTICE_TIMEOUT.as_secs()
        );
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "The watching `status` made {} API requests in all: its start (≈ 26, as `status`), a watch per \
         cluster, and one observation of both clusters per change it looked at.",
        latency.watch_requests
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Not measured separately: the lifecycle's own waits (a watch on the AMR/Snapshot, then an observation) \
         use the same watch-then-observe path."
    );

    // Cold start.
    let b = &cold.binary;
    let _ = writeln!(out);
    let _ = writeln!(out, "### Cold start");
    let _ = writeln!(out);
    let _ = writeln!(out, "`hyperfine -N --warmup 3 --runs 50`, release build.");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| command | mean ± σ | median | min | max | runs | target | |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---|");
    let _ = writeln!(
        out,
        "| `kubectl-tprotect --help` | {:.1} ± {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {} | ≤ {COLD_START_TARGET_MS:.0} ms | {} |",
        b.mean_ms,
        b.stddev_ms,
        b.median_ms,
        b.min_ms,
        b.max_ms,
        b.runs,
        verdict(b.mean_ms <= COLD_START_TARGET_MS)
    );
    match &cold.through_kubectl {
        Some(k) => {
            let _ = writeln!(
                out,
                "| `kubectl tprotect --help` (includes kubectl's own start and plugin lookup) | {:.1} ± {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {} | for information | |",
                k.mean_ms, k.stddev_ms, k.median_ms, k.min_ms, k.max_ms, k.runs
            );
        }
        None => {
            let _ = writeln!(
                out,
                "| `kubectl tprotect --help` | not measured: kubectl not on PATH | | | | | | |"
            );
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Targets: notice latency {}; cold start {}; requests {}.",
        verdict(latency_ok),
        verdict(b.mean_ms <= COLD_START_TARGET_MS),
        if over.is_empty() {
            "every command within budget".to_string()
        } else {
            format!("**over budget: {}**", over.join(", "))
        }
    );
    out
}

/// "list 12, get 3": how often each name occurs, the most frequent first; "-" for none.
fn tally<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for name in names {
        *counts.entry(name).or_default() += 1;
    }
    let mut parts: Vec<(&str, usize)> = counts.into_iter().collect();
    parts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let text: Vec<String> = parts.iter().map(|(name, n)| format!("{name} {n}")).collect();
    if text.is_empty() {
        "-".into()
    } else {
        text.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::tally;

    #[test]
    fn tally_orders_by_count_then_name() {
        assert_eq!(
            tally(["get", "list", "list", "watch", "get", "list"].into_iter()),
            "list 3, get 2, watch 1"
        );
        assert_eq!(tally(std::iter::empty()), "-");
    }
}
