//! `cargo xtask bench webhook`: benchmarks of tprotect-webhook; results are written to BENCHMARKS.md.

#[derive(Debug, clap::Args)]
pub struct BenchWebhookArgs {}

pub fn run(_args: BenchWebhookArgs) -> anyhow::Result<()> {
    anyhow::bail!("`cargo xtask bench webhook` is being written")
}
