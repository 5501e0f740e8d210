//! `kubectl tprotect failback NAME`: after a failover, bring the application home: reverse resync (keeping the
//! data written during the failover), then reverse. Never a plain resync, which would discard that data.

use clap::Args;
use tprotect_lifecycle::Goal;

use crate::cli::GlobalArgs;
use crate::commands::{operate, relationship_name};

#[derive(Debug, Args)]
pub struct FailbackArgs {
    /// Name of the relationship
    #[arg(value_parser = relationship_name)]
    pub name: String,
}

pub async fn run(global: &GlobalArgs, args: FailbackArgs) -> anyhow::Result<()> {
    let clusters = operate::connect(global).await?;
    operate::run_goal(global, clusters, &args.name, Goal::Failback).await
}
