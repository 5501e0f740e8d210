//! `kubectl tprotect resync NAME`: after a failover, replicate from the source again, DISCARDING every change
//! written on the destination since the failover (desiredState Established with the discard annotation), then
//! remove the schedules left on the destination. It is refused, with nothing changed, unless the source
//! application is confirmed on a reachable source cluster: the destination may be the only running copy. It
//! asks for confirmation (typing the name on a terminal, `--yes` without one); `--yes` never overrides the
//! refusal.

use clap::Args;
use tprotect_lifecycle::Goal;

use crate::args::{AbandonArgs, ConfirmArgs, ConnectionArgs, OperationArgs, OutputArgs, relationship_name};
use crate::commands::BeforeVerb;
use crate::commands::operate::{self, Request};
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
    /// Name of the relationship
    #[arg(value_parser = relationship_name)]
    pub name: String,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub operation: OperationArgs,
    #[command(flatten)]
    pub abandon: AbandonArgs,
    #[command(flatten)]
    pub confirm: ConfirmArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub async fn run(args: ResyncArgs, before: &BeforeVerb, printer: &mut Printer) -> anyhow::Result<()> {
    let connection = args.connection.or(&before.connection);
    let clusters = operate::connect(&connection).await?;
    let request = Request {
        name: &args.name,
        goal: Goal::Resync,
        namespace: connection.namespace.clone(),
        operation: args.operation.settings(&before.flags),
        yes: args.confirm.yes || before.flags.yes,
        abandon: args.abandon.abandon,
        verbose: before.verbose,
    };
    operate::run_operation(&clusters, request, printer).await
}
