//! One module per verb: a thin command wiring flags to a function that does the work.

pub mod snapmirror;

use crate::cli::{Cli, Command};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Snapmirror(command) => snapmirror::run(&cli.global, command).await,
        Command::Version => crate::output::print(&format!("kubectl-tprotect {}\n", env!("CARGO_PKG_VERSION"))),
    }
}
