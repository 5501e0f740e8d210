//! `kubectl tprotect failover NAME`: desiredState Promoted on the cluster holding the AppMirrorRelationship (the
//! destination), then a wait for Promoted. It exists for the disaster: it works with the source cluster
//! unreachable (with a warning). Already Promoted: says so and exits 0. It never asks: it discards nothing.

use clap::Args;
use tprotect_lifecycle::Goal;

use crate::commands::BeforeVerb;
use crate::commands::operate::{self, RecordedOperationArgs};
use crate::output::Printer;

pub const EXAMPLES: &str = "Examples:
  # What a failover would do, without doing it
  kubectl tprotect failover payments --context dr --peer-context prod --dry-run

  # Fail over to dr (works with prod unreachable)
  kubectl tprotect failover payments --context dr --peer-context prod

  # Start it and return at once; run the same command again to follow it
  kubectl tprotect failover payments --context dr --peer-context prod --no-wait";

#[derive(Debug, Args)]
pub struct FailoverArgs {
    /// Fail over even if the relationship has never completed a transfer
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub common: RecordedOperationArgs,
}

pub async fn run(args: FailoverArgs, before: &BeforeVerb, printer: &mut Printer) -> anyhow::Result<()> {
    operate::run_recorded(
        &args.common,
        Goal::Failover { force: args.force },
        before,
        printer,
    )
    .await
}
