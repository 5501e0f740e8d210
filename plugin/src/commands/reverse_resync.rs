//! `kubectl tprotect reverse-resync NAME`: after a failover, KEEP what was written on the destination and
//! replicate it back: the AppMirrorRelationship moves to the original source (NetApp's reverse resync recipe).

use clap::Args;
use tprotect_lifecycle::Goal;

use crate::cli::GlobalArgs;
use crate::commands::{operate, relationship_name};

#[derive(Debug, Args)]
pub struct ReverseResyncArgs {
    /// Name of the relationship
    #[arg(value_parser = relationship_name)]
    pub name: String,
}

pub async fn run(global: &GlobalArgs, args: ReverseResyncArgs) -> anyhow::Result<()> {
    let clusters = operate::connect(global).await?;
    operate::run_goal(global, clusters, &args.name, Goal::ReverseResync).await
}
