//! `kubectl tprotect delete NAME`: delete the AppMirrorRelationship; the two applications remain, independent.
//! It is never blocked by an operation in progress (it is the way out of any state): deleting in the middle of
//! one asks for confirmation first. A relationship that does not exist is an error, as with kubectl, unless
//! `--ignore-not-found`.

use clap::Args;
use tprotect_lifecycle::{ClusterKey, Goal, RunReport, RunResult};

use crate::args::{ConfirmArgs, ConnectionArgs, OperationArgs, OutputArgs, relationship_name};
use crate::commands::BeforeVerb;
use crate::commands::operate::{self, Request};
use crate::output::Printer;

pub const EXAMPLES: &str = "Examples:
  # End the relationship; both applications stay, each on its cluster
  kubectl tprotect delete payments --context dr --peer-context prod

  # In a cleanup script: no error if it is already gone
  kubectl tprotect delete payments --context dr --peer-context prod --ignore-not-found";

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Name of the relationship
    #[arg(value_parser = relationship_name)]
    pub name: String,
    /// Succeed when the relationship does not exist (as kubectl delete --ignore-not-found)
    #[arg(long)]
    pub ignore_not_found: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub operation: OperationArgs,
    #[command(flatten)]
    pub confirm: ConfirmArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub async fn run(args: DeleteArgs, before: &BeforeVerb, printer: &mut Printer) -> anyhow::Result<()> {
    let connection = args.connection.or(&before.connection);
    let clusters = operate::connect(&connection).await?;
    let request = Request {
        name: &args.name,
        goal: Goal::Delete,
        namespace: connection.namespace.clone(),
        operation: args.operation.settings(&before.flags),
        yes: args.confirm.yes || before.flags.yes,
        abandon: false,
        verbose: before.verbose,
    };
    let report = operate::perform(&clusters, request).await?;
    // Nothing to delete and nothing was there (no AMR, no lock on either cluster): not found, as with kubectl.
    if report.result == RunResult::AlreadyDone && report.amr_cluster.is_none() {
        let message = format!(
            "relationship {:?} not found: no AppMirrorRelationship of that name (or labelled tprotect.io/relationship={}) and no lock on {} or {}",
            args.name,
            args.name,
            clusters.context_of(ClusterKey::Context),
            clusters.context_of(ClusterKey::Peer)
        );
        if !args.ignore_not_found {
            anyhow::bail!("{message}. Use --ignore-not-found where that is fine");
        }
        let report = RunReport { message, ..report };
        return operate::print_report(&report, printer);
    }
    operate::print_report(&report, printer)
}
