//! `kubectl tprotect failover NAME`: desiredState Promoted on the cluster holding the AppMirrorRelationship (the
//! destination), then a wait for Promoted. It exists for the disaster: it works with the source cluster
//! unreachable (with a warning). Already Promoted: says so and exits 0. It never asks: it discards nothing.

use clap::Args;
use tprotect_lifecycle::Goal;

use crate::args::{AbandonArgs, ConfirmArgs, ConnectionArgs, OperationArgs, OutputArgs, relationship_name};
use crate::commands::BeforeVerb;
use crate::commands::operate::{self, Request};
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
    /// Name of the relationship
    #[arg(value_parser = relationship_name)]
    pub name: String,
    /// Fail over even if the relationship has never completed a transfer
    #[arg(long)]
    pub force: bool,
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

pub async fn run(args: FailoverArgs, before: &BeforeVerb, printer: &mut Printer) -> anyhow::Result<()> {
    let connection = args.connection.or(&before.connection);
    let clusters = operate::connect(&connection).await?;
    let request = Request {
        name: &args.name,
        goal: Goal::Failover { force: args.force },
        namespace: connection.namespace.clone(),
        operation: args.operation.settings(&before.flags),
        yes: args.confirm.yes || before.flags.yes,
        abandon: args.abandon.abandon,
        verbose: before.verbose,
    };
    operate::run_operation(&clusters, request, printer).await
}
