//! `cargo xtask demo`: the whole replication lifecycle on two fresh local clusters, each step run as a user runs
//! it (`kubectl tprotect …`, the real binary) and printed as the plugin prints it.
//!
//! The clusters are real API servers; Trident protect's controller is played by the STAND-IN (time-scaled, so a
//! 5-minute replication interval passes in 5 seconds); the real webhook is registered on both clusters.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tprotect_localenv::{LocalEnv, LocalEnvOptions, WebhookOptions};
use tprotect_standin::StandInConfig;

const SOURCE: &str = "tprotect-source";
const DESTINATION: &str = "tprotect-destination";
const APP: &str = "shop";

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tprotect_testbed::repo_root().join("target"))
}

fn build_binaries() -> anyhow::Result<(PathBuf, PathBuf)> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "kubectl-tprotect",
            "-p",
            "tprotect-webhook",
        ])
        .current_dir(tprotect_testbed::repo_root())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("building kubectl-tprotect and tprotect-webhook failed");
    }
    let dir = target_dir().join("debug");
    Ok((dir.join("kubectl-tprotect"), dir.join("tprotect-webhook")))
}

fn banner(text: &str) {
    eprintln!("\n\x1b[1m== {text}\x1b[0m");
}

/// Runs `kubectl tprotect <args>` as a user would (KUBECONFIG in the environment), output passed through.
fn tprotect(plugin: &Path, kubeconfig: &Path, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("\x1b[36m$ kubectl tprotect {}\x1b[0m", args.join(" "));
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
        eprintln!("\x1b[36m$ kubectl --context {context} get amr -A\x1b[0m");
        let _ = Command::new("kubectl")
            .args(["--context", context, "get", "amr", "-A"])
            .env("KUBECONFIG", kubeconfig)
            .status();
    }
}

pub fn demo() -> anyhow::Result<()> {
    let started = Instant::now();
    banner("building kubectl-tprotect and tprotect-webhook");
    let (plugin, webhook) = build_binaries()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        banner(
            "two local clusters (real kube-apiserver 1.20 + etcd), the Trident protect stand-in, the webhook",
        );
        let options = LocalEnvOptions {
            standin: Some(
                StandInConfig {
                    time_scale: 60.0,
                    source_name: SOURCE.into(),
                    destination_name: DESTINATION.into(),
                    ..Default::default()
                }
                .with_delays(Duration::from_millis(500)),
            ),
            webhook: Some(WebhookOptions {
                binary: webhook,
                env: Vec::new(),
            }),
            ..Default::default()
        };
        let env = LocalEnv::start(options)
            .await
            .context("starting the local environment")?;
        env.install_fixtures(APP)
            .await
            .context("installing the demo application")?;
        let kubeconfig = env.kubeconfig().to_path_buf();
        eprintln!(
            "clusters up in {:.1}s; application {APP:?} on {SOURCE}, AppVaults src-vault and dst-vault",
            started.elapsed().as_secs_f64()
        );
        let k = kubeconfig.as_path();
        let between = ["--context", DESTINATION, "--peer-context", SOURCE];
        let with = |verb: &'static str, extra: &[&'static str]| -> Vec<&'static str> {
            let mut args = vec![verb, APP];
            args.extend_from_slice(&between);
            args.extend_from_slice(extra);
            args
        };

        banner("1. set up replication of shop (source → destination), one command for both clusters");
        tprotect(
            &plugin,
            k,
            &[
                "setup",
                APP,
                "--source-context",
                SOURCE,
                "--destination-context",
                DESTINATION,
                "-n",
                APP,
                "--app",
                APP,
                "--source-vault",
                "src-vault",
                "--destination-vault",
                "dst-vault",
                "--destination-namespace",
                "shop-dr",
                "--initial-snapshot",
            ],
        )?;
        show_amrs(k);
        banner("2. status and preflight, seen from both clusters");
        tprotect(&plugin, k, &with("status", &[]))?;
        tprotect(&plugin, k, &with("check", &[]))?;
        banner("3. what a failover will do to the destination namespace's labels and annotations");
        tprotect(&plugin, k, &with("preview", &[]))?;
        banner("4. fail over (first the plan, then for real)");
        tprotect(&plugin, k, &with("failover", &["--dry-run=client"]))?;
        tprotect(&plugin, k, &with("failover", &[]))?;
        tprotect(&plugin, k, &with("failover", &[]))?;
        banner("5. resync: the destination's changes are discarded (confirmed with --yes)");
        tprotect(&plugin, k, &with("resync", &["--yes"]))?;
        banner("6. fail over again, then reverse-resync: keep the destination's changes and replicate back");
        tprotect(&plugin, k, &with("failover", &[]))?;
        tprotect(&plugin, k, &with("reverse-resync", &[]))?;
        show_amrs(k);
        banner("7. reverse: a planned swap through a ShutdownSnapshot");
        tprotect(&plugin, k, &with("reverse", &[]))?;
        show_amrs(k);
        banner("8. fail over and fail back: reverse resync, then reverse; never a plain resync");
        tprotect(&plugin, k, &with("failover", &[]))?;
        tprotect(&plugin, k, &with("failback", &[]))?;
        tprotect(&plugin, k, &with("status", &[]))?;
        banner("9. delete the relationship: two independent applications remain");
        tprotect(&plugin, k, &with("delete", &[]))?;
        show_amrs(k);
        drop(env);
        anyhow::Ok(())
    })?;
    banner(&format!(
        "demo finished in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}
