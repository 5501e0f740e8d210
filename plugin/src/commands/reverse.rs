//! `kubectl tprotect reverse NAME`: a planned swap of directions without losing data: the source's protection
//! schedules are disabled, a ShutdownSnapshot is taken, the destination is promoted from it, and the
//! relationship is re-created the other way; the schedules are enabled again on the new source.

use clap::Args;
use tprotect_lifecycle::Goal;

use crate::commands::BeforeVerb;
use crate::commands::operate::{self, RecordedOperationArgs};
use crate::output::Printer;

pub const EXAMPLES: &str = "Examples:
  # Swap directions: dr becomes the source, prod the destination
  kubectl tprotect reverse payments --context dr --peer-context prod

  # The plan first
  kubectl tprotect reverse payments --context dr --peer-context prod --dry-run";

#[derive(Debug, Args)]
pub struct ReverseArgs {
    #[command(flatten)]
    pub common: RecordedOperationArgs,
}

pub async fn run(args: ReverseArgs, before: &BeforeVerb, printer: &mut Printer) -> anyhow::Result<()> {
    operate::run_recorded(&args.common, Goal::Reverse, before, printer).await
}
