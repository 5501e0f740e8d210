//! One module per verb, as `kubectl cnpg` has it: the verb's arguments (composed of the shared groups in
//! [`crate::args`]), a thin `run` that connects and hands the work to a function, and that function's tests.
//! Verbs print only through the [`Printer`] they are given, so a test reads what a user would see. What the
//! lifecycle verbs share (connecting to the two clusters, running an operation, confirmation, exit codes) is in
//! [`operate`].

pub mod check;
pub mod complete;
pub mod completion;
pub mod delete;
pub mod failback;
pub mod failover;
pub mod operate;
pub mod preview;
pub mod resync;
pub mod reverse;
pub mod reverse_resync;
pub mod setup;
pub mod snapmirror;
pub mod status;

use clap::Subcommand;

use crate::args::{BeforeVerbFlags, ConnectionArgs, OutputFormat};
use crate::output::Printer;

/// What every verb may read of the flags given before it (`kubectl tprotect -v --context a status …`).
#[derive(Debug, Clone, Default)]
pub struct BeforeVerb {
    pub connection: ConnectionArgs,
    pub flags: BeforeVerbFlags,
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set up replication of an application from one cluster to another (every step, both clusters)
    #[command(after_help = setup::EXAMPLES)]
    Setup(Box<setup::SetupArgs>),
    /// Show relationships as both clusters see them: state, transfers, lag against the interval, problems
    #[command(after_help = status::EXAMPLES)]
    Status(status::StatusArgs),
    /// Check, without changing anything, everything the relationship's operations need
    #[command(after_help = check::EXAMPLES)]
    Check(check::CheckArgs),
    /// Fail over: run the application on the destination (works with the source cluster down)
    #[command(after_help = failover::EXAMPLES)]
    Failover(failover::FailoverArgs),
    /// Resync after a failover: DISCARD the destination's changes and replicate from the source again
    #[command(after_help = resync::EXAMPLES)]
    Resync(resync::ResyncArgs),
    /// Reverse resync after a failover: KEEP the destination's changes and replicate them back to the source
    #[command(after_help = reverse_resync::EXAMPLES)]
    ReverseResync(reverse_resync::ReverseResyncArgs),
    /// Swap directions in a planned way: the destination becomes the source, with no data lost
    #[command(after_help = reverse::EXAMPLES)]
    Reverse(reverse::ReverseArgs),
    /// Fail back after a failover: reverse resync, then reverse, so the original source runs the application again
    #[command(after_help = failback::EXAMPLES)]
    Failback(failback::FailbackArgs),
    /// Delete the relationship (its AppMirrorRelationship); both applications remain
    #[command(after_help = delete::EXAMPLES)]
    Delete(delete::DeleteArgs),
    /// Show what a failover would do to the destination namespace's labels and annotations
    #[command(after_help = preview::EXAMPLES)]
    Preview(preview::PreviewArgs),
    /// Trigger and watch an ONTAP SnapMirror volume update, or show a relationship's state
    Snapmirror(snapmirror::SnapmirrorArgs),
    /// Print the plugin's version
    Version,
    /// Print a shell completion script, or the kubectl completion shim (for `kubectl tprotect <TAB>`)
    #[command(long_about = completion::LONG_ABOUT, after_help = completion::EXAMPLES)]
    Completion(completion::CompletionArgs),
    /// Cobra's completion protocol, run by the kubectl_complete-tprotect shim
    #[command(name = "__complete", hide = true, disable_help_flag = true)]
    Complete(complete::CompleteArgs),
}

impl Command {
    /// The `-o` the verb was given (table for verbs without one).
    fn output(&self, before: &BeforeVerbFlags) -> OutputFormat {
        match self {
            Command::Setup(a) => a.output.format(before),
            Command::Status(a) => a.output.format(before),
            Command::Check(a) => a.output.format(before),
            Command::Failover(a) => a.common.output.format(before),
            Command::Resync(a) => a.common.output.format(before),
            Command::ReverseResync(a) => a.common.output.format(before),
            Command::Reverse(a) => a.common.output.format(before),
            Command::Failback(a) => a.common.output.format(before),
            Command::Delete(a) => a.output.format(before),
            Command::Preview(a) => a.output.format(before),
            Command::Snapmirror(a) => a.global.output,
            Command::Version | Command::Completion(_) | Command::Complete(_) => OutputFormat::Table,
        }
    }

    /// Which of the verbs' flags this one reads: (`--dry-run`/`--timeout`/`--no-wait`, `--yes`, `-o`).
    fn reads(&self) -> (bool, bool, bool) {
        match self {
            Command::Setup(_) => (true, false, true),
            Command::Status(_) | Command::Check(_) | Command::Preview(_) => (false, false, true),
            Command::Failover(_)
            | Command::Resync(_)
            | Command::ReverseResync(_)
            | Command::Reverse(_)
            | Command::Failback(_)
            | Command::Delete(_) => (true, true, true),
            Command::Snapmirror(_) | Command::Version | Command::Completion(_) | Command::Complete(_) => {
                (false, false, false)
            }
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Command::Setup(_) => "setup",
            Command::Status(_) => "status",
            Command::Check(_) => "check",
            Command::Failover(_) => "failover",
            Command::Resync(_) => "resync",
            Command::ReverseResync(_) => "reverse-resync",
            Command::Reverse(_) => "reverse",
            Command::Failback(_) => "failback",
            Command::Delete(_) => "delete",
            Command::Preview(_) => "preview",
            Command::Snapmirror(_) => "snapmirror",
            Command::Version => "version",
            Command::Completion(_) => "completion",
            Command::Complete(_) => "__complete",
        }
    }
}

/// Runs a verb. `root` is the whole CLI definition (completion reads it).
pub async fn run(command: Command, before: &BeforeVerb, root: clap::Command) -> anyhow::Result<()> {
    // A flag before the verb that the verb does not read changes nothing (a script's common prefix of flags);
    // after the verb, clap refuses it.
    let (operation, yes, output) = command.reads();
    let unused = before.flags.unused_by(operation, yes, output);
    if !unused.is_empty() {
        tracing::info!(
            "{} given before `{}` {} nothing: it does not read {}",
            unused.join(", "),
            command.name(),
            if unused.len() == 1 { "changes" } else { "change" },
            if unused.len() == 1 { "it" } else { "them" }
        );
    }
    let mut printer = Printer::stdout(command.output(&before.flags));
    let printer = &mut printer;
    match command {
        Command::Setup(args) => setup::run(*args, before, printer).await,
        Command::Status(args) => status::run(args, before, printer).await,
        Command::Check(args) => check::run(args, before, printer).await,
        Command::Failover(args) => failover::run(args, before, printer).await,
        Command::Resync(args) => resync::run(args, before, printer).await,
        Command::ReverseResync(args) => reverse_resync::run(args, before, printer).await,
        Command::Reverse(args) => reverse::run(args, before, printer).await,
        Command::Failback(args) => failback::run(args, before, printer).await,
        Command::Delete(args) => delete::run(args, before, printer).await,
        Command::Preview(args) => preview::run(args, before, printer).await,
        Command::Snapmirror(args) => snapmirror::run(&args.global, args.command).await,
        Command::Completion(args) => completion::run(args, root, printer),
        Command::Complete(args) => complete::run(args, root).await,
        Command::Version => printer.text(&format!("kubectl-tprotect {}\n", env!("CARGO_PKG_VERSION"))),
    }
}
