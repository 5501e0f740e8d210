//! What `cargo xtask demo` and `cargo xtask bench plugin` share: the plugin and webhook binaries, two fresh
//! local clusters with the Trident protect STAND-IN and the real webhook, the demo application, and the whole
//! replication lifecycle as a user walks it, one `kubectl tprotect` command at a time.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use tprotect_localenv::{Fixtures, LocalEnv, LocalEnvOptions, WebhookOptions};
use tprotect_standin::StandInConfig;

pub use tprotect_localenv::{DESTINATION, SOURCE};
pub const APP: &str = "shop";

/// Which cargo profile the binaries are built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

impl Profile {
    fn dir(self) -> &'static str {
        match self {
            Profile::Debug => "debug",
            Profile::Release => "release",
        }
    }
}

/// The binaries a walk runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub plugin: PathBuf,
    pub webhook: PathBuf,
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tprotect_testbed::repo_root().join("target"))
}

/// Builds `kubectl-tprotect` and `tprotect-webhook` with `profile`.
pub fn build_binaries(profile: Profile) -> anyhow::Result<Binaries> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args([
        "build",
        "--quiet",
        "-p",
        "kubectl-tprotect",
        "-p",
        "tprotect-webhook",
    ]);
    if profile == Profile::Release {
        command.arg("--release");
    }
    let status = command
        .current_dir(tprotect_testbed::repo_root())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("building kubectl-tprotect and tprotect-webhook failed");
    }
    let dir = target_dir().join(profile.dir());
    Ok(Binaries {
        plugin: dir.join("kubectl-tprotect"),
        webhook: dir.join("tprotect-webhook"),
    })
}

/// Two fresh clusters with the stand-in (time-scaled: a 5-minute replication interval passes in 5 seconds;
/// the profile `TPROTECT_STANDIN_PROFILE` names) and the webhook, and the application [`APP`] ready to replicate.
pub async fn start_env(webhook: PathBuf) -> anyhow::Result<LocalEnv> {
    let options = LocalEnvOptions {
        standin: Some(StandInConfig {
            time_scale: 60.0,
            ..StandInConfig::from_env()?.with_delays(Duration::from_millis(500))
        }),
        webhook: Some(WebhookOptions::new(webhook)),
        ..Default::default()
    };
    let env = LocalEnv::start(options)
        .await
        .context("starting the local environment")?;
    env.install_fixtures(Fixtures::app(APP))
        .await
        .context("installing the demo application")?;
    Ok(env)
}

/// One step of the walk.
#[derive(Debug, Clone)]
pub enum Step {
    /// A heading for people watching.
    Banner(&'static str),
    /// `kubectl tprotect <args>`.
    Run(Vec<&'static str>),
    /// Show both clusters' AMRs (`kubectl get amr -A`).
    ShowAmrs,
}

/// The whole lifecycle: setup → status → check → preview → failover (plan, real, again) → resync → failover →
/// reverse-resync → reverse → failover → failback → status → delete.
pub fn lifecycle() -> Vec<Step> {
    use Step::{Banner, Run, ShowAmrs};
    let with = |verb: &'static str, extra: &[&'static str]| -> Step {
        let mut args = vec![verb, APP, "--context", DESTINATION, "--peer-context", SOURCE];
        args.extend_from_slice(extra);
        Run(args)
    };
    vec![
        Banner("1. set up replication of shop (source → destination), one command for both clusters"),
        Run(vec![
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
        ]),
        ShowAmrs,
        Banner("2. status and preflight, seen from both clusters"),
        with("status", &[]),
        with("check", &[]),
        Banner("3. what a failover will do to the destination namespace's labels and annotations"),
        with("preview", &[]),
        Banner("4. fail over (first the plan, then for real)"),
        with("failover", &["--dry-run=client"]),
        with("failover", &[]),
        with("failover", &[]),
        Banner("5. resync: the destination's changes are discarded (confirmed with --yes)"),
        with("resync", &["--yes"]),
        Banner("6. fail over again, then reverse-resync: keep the destination's changes and replicate back"),
        with("failover", &[]),
        with("reverse-resync", &[]),
        ShowAmrs,
        Banner("7. reverse: a planned swap through a ShutdownSnapshot"),
        with("reverse", &[]),
        ShowAmrs,
        Banner("8. fail over and fail back: reverse resync, then reverse; never a plain resync"),
        with("failover", &[]),
        with("failback", &[]),
        with("status", &[]),
        Banner("9. delete the relationship: two independent applications remain"),
        with("delete", &[]),
        ShowAmrs,
    ]
}
