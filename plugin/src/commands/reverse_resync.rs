//! `kubectl tprotect reverse-resync NAME`: after a failover, KEEP the destination's changes and replicate them back:
//! the AppMirrorRelationship moves to the original source, replicating from the promoted application. Every
//! precondition (the promoted application, both AppVaults and their Secrets, storage classes) is checked before
//! the AppMirrorRelationship is deleted.

use clap::Args;
use tprotect_lifecycle::Goal;

use crate::commands::BeforeVerb;
use crate::commands::operate::{self, RecordedOperationArgs};
use crate::output::Printer;

pub const EXAMPLES: &str = "Examples:
  # Keep what was written on dr since the failover and replicate it back to prod
  kubectl tprotect reverse-resync payments --context dr --peer-context prod

  # Interrupted and unfinishable (its precondition gone): give it up, leaving both clusters as they are
  kubectl tprotect reverse-resync payments --context dr --peer-context prod --abandon";

#[derive(Debug, Args)]
pub struct ReverseResyncArgs {
    #[command(flatten)]
    pub common: RecordedOperationArgs,
}

pub async fn run(args: ReverseResyncArgs, before: &BeforeVerb, printer: &mut Printer) -> anyhow::Result<()> {
    operate::run_recorded(&args.common, Goal::ReverseResync, before, printer).await
}
