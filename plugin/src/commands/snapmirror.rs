//! `kubectl tprotect snapmirror update|status`. (Being written: issue 4.)

use clap::Subcommand;

use crate::cli::GlobalArgs;

#[derive(Debug, Subcommand)]
pub enum SnapmirrorCommand {
    /// Show a SnapMirror relationship's state, health, lag and last transfer
    Status,
}

pub async fn run(_global: &GlobalArgs, command: SnapmirrorCommand) -> anyhow::Result<()> {
    match command {
        SnapmirrorCommand::Status => anyhow::bail!("snapmirror status is not implemented yet"),
    }
}
