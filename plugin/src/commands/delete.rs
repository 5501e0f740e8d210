//! `kubectl tprotect delete NAME`: delete the AppMirrorRelationship; the two applications remain, independent.

use clap::Args;
use tprotect_lifecycle::Goal;

use crate::cli::GlobalArgs;
use crate::commands::{operate, relationship_name};

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Name of the relationship
    #[arg(value_parser = relationship_name)]
    pub name: String,
}

pub async fn run(global: &GlobalArgs, args: DeleteArgs) -> anyhow::Result<()> {
    let clusters = operate::connect(global).await?;
    operate::run_goal(global, clusters, &args.name, Goal::Delete).await
}
