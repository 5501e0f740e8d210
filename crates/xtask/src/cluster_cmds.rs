//! `up`, `down` and `demo`: the local clusters for a person at a shell.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use tprotect_testbed::{CrdSource, Lifetime, Testbed, TestbedOptions, process};

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Install NetApp's CRDs from ../shared instead of the project's generated ones
    #[arg(long)]
    netapp_crds: bool,
}

fn up_dir() -> PathBuf {
    tprotect_testbed::cache_dir().join("up").join("current")
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

pub fn up(args: UpArgs) -> anyhow::Result<()> {
    down()?;
    let started = Instant::now();
    let options = TestbedOptions {
        crds: if args.netapp_crds {
            CrdSource::NetApp
        } else {
            CrdSource::Project
        },
        lifetime: Lifetime::Detached,
        dir: Some(up_dir()),
        ..TestbedOptions::default()
    };
    let testbed = runtime()?
        .block_on(Testbed::start_with(options))
        .context("starting the local clusters")?;
    let kubeconfig = testbed.kubeconfig.clone();
    let (source, destination) = (testbed.source.server.clone(), testbed.destination.server.clone());
    testbed.detach();
    eprintln!(
        "clusters up in {:.1}s: source {source}, destination {destination}",
        started.elapsed().as_secs_f64()
    );
    eprintln!(
        "contexts: tprotect-source, tprotect-destination (admin); suffixes -operator, -viewer, -controller"
    );
    eprintln!("stop them with: cargo xtask down");
    println!("export KUBECONFIG={}", kubeconfig.display());
    Ok(())
}

pub fn down() -> anyhow::Result<()> {
    let dir = up_dir();
    if !dir.exists() {
        return Ok(());
    }
    let marker = dir.to_string_lossy().to_string();
    let pids: Vec<u32> = std::fs::read_to_string(dir.join(process::PIDS_FILE))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let mut stopped = 0;
    for pid in pids {
        if process::pid_alive_with(pid, &marker) {
            process::kill_pid(pid);
            stopped += 1;
        }
    }
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    eprintln!("stopped {stopped} processes and removed {}", dir.display());
    Ok(())
}
