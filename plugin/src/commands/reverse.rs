//! `kubectl tprotect reverse NAME`: a planned swap of directions without losing data: the source's protection
//! schedules are disabled, a ShutdownSnapshot is taken, the destination is promoted from it, and the
//! relationship is re-created the other way; the schedules are enabled again on the new source.

use clap::Args;
use tprotect_lifecycle::Goal;

use crate::args::{AbandonArgs, ConfirmArgs, ConnectionArgs, OperationArgs, OutputArgs, relationship_name};
use crate::commands::BeforeVerb;
use crate::commands::operate::{self, Request};
use crate::output::Printer;

pub const EXAMPLES: &str = "Examples:
  # Swap directions: dr becomes the source, prod the destination
  kubectl tprotect reverse payments --context dr --peer-context prod

  # The plan first
  kubectl tprotect reverse payments --context dr --peer-context prod --dry-run";

#[derive(Debug, Args)]
pub struct ReverseArgs {
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

pub async fn run(args: ReverseArgs, before: &BeforeVerb, printer: &mut Printer) -> anyhow::Result<()> {
    let connection = args.connection.or(&before.connection);
    let clusters = operate::connect(&connection).await?;
    let request = Request {
        name: &args.name,
        goal: Goal::Reverse,
        namespace: connection.namespace.clone(),
        operation: args.operation.settings(&before.flags),
        yes: args.confirm.yes || before.flags.yes,
        abandon: args.abandon.abandon,
        verbose: before.verbose,
    };
    operate::run_operation(&clusters, request, printer).await
}
