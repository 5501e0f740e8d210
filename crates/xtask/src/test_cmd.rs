//! `cargo xtask test`: what CI runs. Installs what is missing, then formatting, lints and every test.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Only run tests whose name matches (passed to the test runner); skips fmt and clippy
    filter: Option<String>,
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn step(name: &str, command: &mut Command) -> anyhow::Result<()> {
    let started = Instant::now();
    eprintln!("==> {name}");
    let status = command.status().with_context(|| format!("starting {name}"))?;
    eprintln!(
        "<== {name}: {} in {:.1}s",
        if status.success() { "ok" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn run(args: TestArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let deps = Instant::now();
    eprintln!(
        "==> dependencies (Debian packages, kube-apiserver build; cached in {})",
        tprotect_testbed::cache_dir().display()
    );
    tprotect_testbed::ensure_binaries().context("installing the local control plane")?;
    eprintln!("<== dependencies: ok in {:.1}s", deps.elapsed().as_secs_f64());

    if args.filter.is_none() {
        step("rustfmt", cargo().args(["fmt", "--all", "--check"]))?;
        step(
            "clippy",
            cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]),
        )?;
    }
    if !has_nextest() {
        step(
            "install cargo-nextest",
            cargo().args(["install", "cargo-nextest", "--locked"]),
        )?;
    }
    let mut nextest = cargo();
    nextest.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    if let Some(filter) = &args.filter {
        nextest.arg(filter);
    }
    step(
        "tests (unit, integration, end-to-end on local clusters)",
        &mut nextest,
    )?;
    if args.filter.is_none() {
        step("doc tests", cargo().args(["test", "--workspace", "--doc"]))?;
    }
    eprintln!("all checks passed in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}
