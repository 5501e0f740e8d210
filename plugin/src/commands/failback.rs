//! `kubectl tprotect failback NAME`: after a failover, run the application on the original source again KEEPING
//! what was written during the failover: a reverse resync, then a planned swap back. Never a plain resync.

use clap::Args;
use tprotect_lifecycle::Goal;

use crate::args::{AbandonArgs, ConfirmArgs, ConnectionArgs, OperationArgs, OutputArgs, relationship_name};
use crate::commands::BeforeVerb;
use crate::commands::operate::{self, Request};
use crate::output::Printer;

pub const EXAMPLES: &str = "Examples:
  # prod is back: run payments there again, keeping what dr wrote meanwhile
  kubectl tprotect failback payments --context dr --peer-context prod

  # Interrupted? Run the same command again: it continues where it stopped
  kubectl tprotect failback payments --context dr --peer-context prod";

#[derive(Debug, Args)]
pub struct FailbackArgs {
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

pub async fn run(args: FailbackArgs, before: &BeforeVerb, printer: &mut Printer) -> anyhow::Result<()> {
    let connection = args.connection.or(&before.connection);
    let clusters = operate::connect(&connection).await?;
    let request = Request {
        name: &args.name,
        goal: Goal::Failback,
        namespace: connection.namespace.clone(),
        operation: args.operation.settings(&before.flags),
        yes: args.confirm.yes || before.flags.yes,
        abandon: args.abandon.abandon,
        verbose: before.verbose,
    };
    operate::run_operation(&clusters, request, printer).await
}
