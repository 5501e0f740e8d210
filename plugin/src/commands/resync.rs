//! `kubectl tprotect resync NAME`: after a failover, replicate from the source again. Every change written on
//! the destination since the failover is DISCARDED: typed confirmation on a terminal, refused without one
//! unless --yes. Sets the webhook's discard annotation, removes the destination's schedules, waits for
//! Established.

use clap::Args;
use tprotect_lifecycle::Goal;

use crate::cli::GlobalArgs;
use crate::commands::{operate, relationship_name};

#[derive(Debug, Args)]
pub struct ResyncArgs {
    /// Name of the relationship
    #[arg(value_parser = relationship_name)]
    pub name: String,
}

pub async fn run(global: &GlobalArgs, args: ResyncArgs) -> anyhow::Result<()> {
    let clusters = operate::connect(global).await?;
    operate::run_goal(global, clusters, &args.name, Goal::Resync).await
}
