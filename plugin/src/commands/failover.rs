//! `kubectl tprotect failover NAME`: desiredState Promoted on the cluster holding the AppMirrorRelationship (the
//! destination), then a wait for Promoted. It exists for the disaster: it works with the source cluster
//! unreachable (with a warning). Already Promoted: says so and exits 0.

use clap::Args;
use tprotect_lifecycle::Goal;

use crate::cli::GlobalArgs;
use crate::commands::{operate, relationship_name};

#[derive(Debug, Args)]
pub struct FailoverArgs {
    /// Name of the relationship
    #[arg(value_parser = relationship_name)]
    pub name: String,
    /// Fail over even if the relationship has never completed a transfer
    #[arg(long)]
    pub force: bool,
}

pub async fn run(global: &GlobalArgs, args: FailoverArgs) -> anyhow::Result<()> {
    let clusters = operate::connect(global).await?;
    operate::run_goal(global, clusters, &args.name, Goal::Failover { force: args.force }).await
}
