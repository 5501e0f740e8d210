//! `cargo xtask <command>`: the project's task runner (the alias lives in `.cargo/config.toml`).

mod bench_plugin;
mod bench_report;
mod bench_scrape;
mod bench_webhook;
mod cluster_cmds;
mod demo_cmd;
mod sim_cmd;
mod test_cmd;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "kubectl-tprotect's task runner"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install what the local clusters need (Debian packages, kube-apiserver built from source), cached
    Deps,
    /// Start the two local clusters (source, destination) in the background; print the KUBECONFIG line and
    /// their contexts (`eval "$(cargo xtask up)"`). Refuses while clusters run in its directory
    /// ($TPROTECT_UP_DIR, default ~/.cache/kubectl-tprotect/up/current)
    Up(cluster_cmds::UpArgs),
    /// Stop the clusters started by `up` and remove their data
    Down,
    /// Run the real tprotect-webhook on 127.0.0.1 for the clusters of `up`, registered by URL from the product's
    /// manifests, until Ctrl-C (which removes the registrations). RESTORE_* variables pass through to it
    Webhook(cluster_cmds::WebhookArgs),
    /// Everything CI checks: dependencies, rustfmt, clippy (warnings denied), every test including end-to-end
    Test(test_cmd::TestArgs),
    /// The main job end to end on fresh local clusters
    Demo,
    /// Run the Trident protect STAND-IN controller (tests and demo only) on the clusters of `up`, until Ctrl-C
    Sim(sim_cmd::SimArgs),
    /// Benchmarks (release builds, side-by-side comparisons); results go to BENCHMARKS.md
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Build the plugin's release archives into dist/ and write their sha256 into krew/tprotect.yaml
    Release(xtask::release_cmd::ReleaseArgs),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// tprotect-webhook over HTTPS against a no-op axum+rustls server, RSS, and API-server overhead
    Webhook(bench_webhook::BenchWebhookArgs),
    /// kubectl tprotect: API requests per command, status-change notice latency, cold start
    Plugin(bench_plugin::BenchPluginArgs),
    /// A scrape of tprotect-webhook's /metrics with 1,000 AppMirrorRelationships cached, and its effect on
    /// review latency
    Scrape(bench_scrape::BenchScrapeArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Deps => {
            let binaries = tprotect_testbed::ensure_binaries()?;
            println!("kube-apiserver:          {}", binaries.kube_apiserver.display());
            println!(
                "kube-controller-manager: {}",
                binaries.kube_controller_manager.display()
            );
            println!("etcd:                    {}", binaries.etcd.display());
            Ok(())
        }
        Command::Up(args) => cluster_cmds::up(args),
        Command::Down => cluster_cmds::down(),
        Command::Webhook(args) => cluster_cmds::webhook(args),
        Command::Test(args) => test_cmd::run(args),
        Command::Demo => demo_cmd::demo(),
        Command::Sim(args) => sim_cmd::run(args),
        Command::Bench(BenchCommand::Webhook(args)) => bench_webhook::run(args),
        Command::Bench(BenchCommand::Plugin(args)) => bench_plugin::run(args),
        Command::Bench(BenchCommand::Scrape(args)) => bench_scrape::run(args),
        Command::Release(args) => Ok(xtask::release_cmd::run(args)?),
    }
}
