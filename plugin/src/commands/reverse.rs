//! `kubectl tprotect reverse NAME`: a planned swap of directions with nothing lost (source schedules disabled,
//! ShutdownSnapshot, failover to it, reverse resync, schedules re-enabled on the new source).

use clap::Args;
use tprotect_lifecycle::Goal;

use crate::cli::GlobalArgs;
use crate::commands::{operate, relationship_name};

#[derive(Debug, Args)]
pub struct ReverseArgs {
    /// Name of the relationship
    #[arg(value_parser = relationship_name)]
    pub name: String,
}

pub async fn run(global: &GlobalArgs, args: ReverseArgs) -> anyhow::Result<()> {
    let clusters = operate::connect(global).await?;
    operate::run_goal(global, clusters, &args.name, Goal::Reverse).await
}
