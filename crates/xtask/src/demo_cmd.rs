//! `cargo xtask demo`: the whole replication lifecycle on two fresh local clusters, each step run as a user runs
//! it (`kubectl tprotect …`, the real binary) and printed as the plugin prints it.
//!
//! The clusters are real API servers; Trident protect's controller is played by the STAND-IN (time-scaled, so a
//! 5-minute replication interval passes in 5 seconds); the real webhook is registered on both clusters.
//!
//! Long set-up steps (the first run builds kube-apiserver for minutes) print a line every [`TICK`] saying what
//! runs and for how long; the demo ends with a table of its steps and their times. Everything goes to stderr
//! (the plugin's data goes to stdout) through anstream: colour only on a terminal, never with `NO_COLOR`.

use std::path::Path;
use std::process::Command;
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use xtask::lifecycle_walk::{self, APP, DESTINATION, Profile, SOURCE, Step};

/// How often a long step says it still runs.
const TICK: Duration = Duration::from_secs(20);

const BOLD: &str = "\x1b[1m";
const CYAN: &str = "\x1b[36m";
const RESET: &str = "\x1b[0m";

fn banner(text: &str) {
    anstream::eprintln!("\n{BOLD}== {text}{RESET}");
}

fn echo(command: &str) {
    anstream::eprintln!("{CYAN}$ {command}{RESET}");
}

/// "4m05s", "12.3s".
fn human(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if seconds < 60.0 {
        format!("{seconds:.1}s")
    } else {
        let whole = duration.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

/// While alive, prints "… WHAT: still running (ELAPSED)" on stderr every `period`, from its own thread.
struct Ticker {
    stop: Option<Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    fn start(what: &str, period: Duration) -> Self {
        Self::with(what, period, |line| eprintln!("{line}"))
    }

    fn with(what: &str, period: Duration, report: impl Fn(String) + Send + 'static) -> Self {
        let (stop, stopped) = channel::<()>();
        let what = what.to_string();
        let started = Instant::now();
        let thread = std::thread::spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                report(format!(
                    "   … {what}: still running ({})",
                    human(started.elapsed())
                ));
            }
        });
        Self {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The demo's steps and how long each took.
#[derive(Debug, Default)]
struct Steps {
    done: Vec<(String, Duration)>,
    current: Option<(String, Instant)>,
}

impl Steps {
    /// Ends the current step (if any) and starts `name`.
    fn begin(&mut self, name: &str) {
        self.end();
        self.current = Some((name.to_string(), Instant::now()));
    }

    fn end(&mut self) {
        if let Some((name, started)) = self.current.take() {
            self.done.push((name, started.elapsed()));
        }
    }

    /// Runs `work` as step `name`, with a progress line every [`TICK`].
    fn run<T>(&mut self, name: &str, work: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
        self.begin(name);
        let _ticker = Ticker::start(name, TICK);
        let result = work();
        if result.is_ok() {
            self.end();
        }
        result
    }

    /// The table: one row per step, the failed one (still current) marked, and the total.
    fn table(&self, total: Duration) -> String {
        let mut rows: Vec<(String, String)> = self
            .done
            .iter()
            .map(|(name, took)| (name.clone(), human(*took)))
            .collect();
        if let Some((name, started)) = &self.current {
            rows.push((name.clone(), format!("FAILED after {}", human(started.elapsed()))));
        }
        rows.push(("total".into(), human(total)));
        let width = rows
            .iter()
            .map(|(name, _)| name.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = format!("{:<width$}  TIME\n", "STEP");
        for (name, took) in rows {
            out.push_str(&format!("{name:<width$}  {took}\n"));
        }
        out
    }
}

/// Runs `kubectl tprotect <args>` as a user would (KUBECONFIG in the environment), output passed through.
fn tprotect(plugin: &Path, kubeconfig: &Path, args: &[&str]) -> anyhow::Result<()> {
    echo(&format!("kubectl tprotect {}", args.join(" ")));
    let status = Command::new(plugin)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .status()
        .with_context(|| format!("running kubectl tprotect {}", args.join(" ")))?;
    if !status.success() {
        bail!("kubectl tprotect {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Shows both clusters' AMRs the way an operator would look at them.
fn show_amrs(kubeconfig: &Path) {
    for context in [SOURCE, DESTINATION] {
        echo(&format!("kubectl --context {context} get amr -A"));
        let _ = Command::new("kubectl")
            .args(["--context", context, "get", "amr", "-A"])
            .env("KUBECONFIG", kubeconfig)
            .status();
    }
}

pub fn demo() -> anyhow::Result<()> {
    let started = Instant::now();
    let mut steps = Steps::default();
    let result = walk(&mut steps);
    banner(&match &result {
        Ok(()) => format!("demo finished in {}", human(started.elapsed())),
        Err(_) => format!("demo FAILED after {}", human(started.elapsed())),
    });
    anstream::eprint!("{}", steps.table(started.elapsed()));
    result
}

fn walk(steps: &mut Steps) -> anyhow::Result<()> {
    banner("building kubectl-tprotect and tprotect-webhook");
    let binaries = steps.run(
        "build kubectl-tprotect and tprotect-webhook (cargo build)",
        || lifecycle_walk::build_binaries(Profile::Debug),
    )?;
    banner("the local control plane: etcd and kube-apiserver 1.20 (built from source once, then cached)");
    let control_plane = steps.run(
        "install the control plane (first run: about 5 min on 2 cores)",
        || Ok(tprotect_testbed::ensure_binaries()?),
    )?;
    eprintln!("kube-apiserver: {}", control_plane.kube_apiserver.display());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        banner(
            "two local clusters (real kube-apiserver 1.20 + etcd), the Trident protect stand-in, the webhook",
        );
        let env = {
            steps.begin("start the clusters, the stand-in and the webhook");
            let _ticker = Ticker::start("starting the clusters, the stand-in and the webhook", TICK);
            lifecycle_walk::start_env(binaries.webhook.clone()).await?
        };
        steps.end();
        eprintln!("application {APP:?} on {SOURCE}, AppVaults src-vault and dst-vault");
        let kubeconfig = env.kubeconfig();
        for step in lifecycle_walk::lifecycle() {
            match step {
                Step::Banner(text) => {
                    steps.begin(text);
                    banner(text)
                }
                Step::Run(args) => tprotect(&binaries.plugin, kubeconfig, &args)?,
                Step::ShowAmrs => show_amrs(kubeconfig),
            }
        }
        steps.end();
        drop(env);
        anyhow::Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(human(Duration::from_secs(245)), "4m05s");
    }

    #[test]
    fn table_lists_each_step_the_failed_one_and_the_total() {
        let mut steps = Steps::default();
        steps.run("build", || Ok(())).unwrap();
        steps.begin("1. set up replication");
        steps.end();
        let failed: anyhow::Result<()> = steps.run("start the clusters", || bail!("no etcd"));
        assert!(failed.is_err());
        let table = steps.table(Duration::from_secs(75));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        // Aligned: every time starts in the same column.
        let column = lines[0].find("TIME").unwrap();
        assert!(
            lines
                .iter()
                .all(|l| l.len() > column && l[..column].ends_with("  ")),
            "{table}"
        );
        let (names, times): (Vec<&str>, Vec<&str>) = lines
            .iter()
            .map(|l| (l[..column].trim_end(), &l[column..]))
            .unzip();
        assert_eq!(
            names,
            [
                "STEP",
                "build",
                "1. set up replication",
                "start the clusters",
                "total"
            ],
            "{table}"
        );
        assert_eq!(times[0], "TIME", "{table}");
        assert!(times[1].ends_with('s'), "{table}");
        assert!(times[3].starts_with("FAILED after"), "{table}");
        assert_eq!(times[4], "1m15s", "{table}");
    }

    #[test]
    fn ticker_reports_while_a_step_runs_and_stops_with_it() {
        // A zero period: every wait for a tick times out at once, so lines come as fast as the thread runs and
        // the test waits for lines, never for the clock. A bounded, lossy sink keeps the flood small.
        let (sink, lines) = std::sync::mpsc::sync_channel(2);
        let ticker = Ticker::with("building", Duration::ZERO, move |line| {
            let _ = sink.try_send(line);
        });
        let first = lines.recv().unwrap();
        let second = lines.recv().unwrap();
        assert!(first.contains("building: still running ("), "{first}");
        assert!(second.contains("building: still running ("), "{second}");
        drop(ticker);
        // Lines sent before it ended may still wait in the sink; after them, the sink must be closed.
        lines.try_iter().for_each(drop);
        assert_eq!(
            lines.try_recv(),
            Err(std::sync::mpsc::TryRecvError::Disconnected),
            "no line after the step ended: the ticker's thread and its report are gone"
        );
    }
}
