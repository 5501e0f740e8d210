//! `cargo xtask demo`: the whole replication lifecycle on two fresh local clusters, each step run as a user runs
//! it (`kubectl tprotect …`, the real binary) and printed as the plugin prints it.
//!
//! The clusters are real API servers; Trident protect's controller is played by the STAND-IN (time-scaled, so a
//! 5-minute replication interval passes in 5 seconds); the real webhook is registered on both clusters.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::lifecycle_walk::{self, APP, DESTINATION, Profile, SOURCE, Step};

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
    let binaries = lifecycle_walk::build_binaries(Profile::Debug)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        banner(
            "two local clusters (real kube-apiserver 1.20 + etcd), the Trident protect stand-in, the webhook",
        );
        let env = lifecycle_walk::start_env(binaries.webhook.clone()).await?;
        eprintln!(
            "clusters up in {:.1}s; application {APP:?} on {SOURCE}, AppVaults src-vault and dst-vault",
            started.elapsed().as_secs_f64()
        );
        let kubeconfig = env.kubeconfig();
        for step in lifecycle_walk::lifecycle() {
            match step {
                Step::Banner(text) => banner(text),
                Step::Run(args) => tprotect(&binaries.plugin, kubeconfig, &args)?,
                Step::ShowAmrs => show_amrs(kubeconfig),
            }
        }
        drop(env);
        anyhow::Ok(())
    })?;
    banner(&format!(
        "demo finished in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}
