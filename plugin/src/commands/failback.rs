//! `kubectl tprotect failback NAME`: after a failover, run the application on the original source again KEEPING
//! what was written during the failover: a reverse resync, then a planned swap back. Never a plain resync.

use clap::Args;
use tprotect_lifecycle::Goal;

use crate::commands::BeforeVerb;
use crate::commands::operate::{self, RecordedOperationArgs};
use crate::output::Printer;

pub const EXAMPLES: &str = "Examples:
  # prod is back: run payments there again, keeping what dr wrote meanwhile
  kubectl tprotect failback payments --context dr --peer-context prod

  # Interrupted? Run the same command again: it continues where it stopped
  kubectl tprotect failback payments --context dr --peer-context prod";

#[derive(Debug, Args)]
pub struct FailbackArgs {
    #[command(flatten)]
    pub common: RecordedOperationArgs,
}

pub async fn run(args: FailbackArgs, before: &BeforeVerb, printer: &mut Printer) -> anyhow::Result<()> {
    operate::run_recorded(&args.common, Goal::Failback, before, printer).await
}
