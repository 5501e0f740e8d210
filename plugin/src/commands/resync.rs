//! `kubectl tprotect resync NAME`: after a failover, replicate from the source again, DISCARDING every change
//! written on the destination since the failover (desiredState Established with the discard annotation), then
//! remove the schedules left on the destination. It is refused, with nothing changed, unless the source
//! application is confirmed on a reachable source cluster: the destination may be the only running copy. It
//! asks for confirmation (typing the name on a terminal, `--yes` without one); `--yes` never overrides the
//! refusal.

use clap::Args;
use tprotect_lifecycle::Goal;

use crate::commands::BeforeVerb;
use crate::commands::operate::{self, RecordedOperationArgs};
use crate::output::Printer;

pub const EXAMPLES: &str = "Examples:
  # See what would be discarded, without doing it
  kubectl tprotect resync payments --context dr --peer-context prod --dry-run

  # Discard dr's changes since the failover and replicate from prod again (asks you to type the name)
  kubectl tprotect resync payments --context dr --peer-context prod

  # The same in a script (no terminal to ask on)
  kubectl tprotect resync payments --context dr --peer-context prod --yes";

#[derive(Debug, Args)]
pub struct ResyncArgs {
    #[command(flatten)]
    pub common: RecordedOperationArgs,
}

pub async fn run(args: ResyncArgs, before: &BeforeVerb, printer: &mut Printer) -> anyhow::Result<()> {
    operate::run_recorded(&args.common, Goal::Resync, before, printer).await
}
