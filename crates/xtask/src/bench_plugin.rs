//! `cargo xtask bench plugin`: benchmarks of kubectl tprotect; results are written to BENCHMARKS.md.

#[derive(Debug, clap::Args)]
pub struct BenchPluginArgs {}

pub fn run(_args: BenchPluginArgs) -> anyhow::Result<()> {
    anyhow::bail!("`cargo xtask bench plugin` is being written")
}
