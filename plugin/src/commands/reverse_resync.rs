//! `kubectl tprotect reverse-resync NAME`: after a failover, KEEP the destination's changes and replicate them back:
//! the AppMirrorRelationship moves to the original source, replicating from the promoted application. Every
//! precondition (the promoted application, both AppVaults and their Secrets, storage classes) is checked before
//! the AppMirrorRelationship is deleted.

use clap::Args;
use tprotect_lifecycle::Goal;

use crate::args::{AbandonArgs, ConfirmArgs, ConnectionArgs, OperationArgs, OutputArgs, relationship_name};
use crate::commands::BeforeVerb;
use crate::commands::operate::{self, Request};
use crate::output::Printer;

pub const EXAMPLES: &str = "Examples:
  # Keep what was written on dr since the failover and replicate it back to prod
  kubectl tprotect reverse-resync payments --context dr --peer-context prod

  # Interrupted and unfinishable (its precondition gone): give it up, leaving both clusters as they are
  kubectl tprotect reverse-resync payments --context dr --peer-context prod --abandon";

#[derive(Debug, Args)]
pub struct ReverseResyncArgs {
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

pub async fn run(args: ReverseResyncArgs, before: &BeforeVerb, printer: &mut Printer) -> anyhow::Result<()> {
    let connection = args.connection.or(&before.connection);
    let clusters = operate::connect(&connection).await?;
    let request = Request {
        name: &args.name,
        goal: Goal::ReverseResync,
        namespace: connection.namespace.clone(),
        operation: args.operation.settings(&before.flags),
        yes: args.confirm.yes || before.flags.yes,
        abandon: args.abandon.abandon,
        verbose: before.verbose,
    };
    operate::run_operation(&clusters, request, printer).await
}
