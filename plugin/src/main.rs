//! `kubectl tprotect`: one safe, resumable command per Trident protect replication lifecycle operation.
//!
//! `main` stays thin: parse, dispatch to one module per verb, map the outcome to an exit code.

mod args;
mod cli;
mod commands;
mod confirm;
mod exit;
#[cfg(test)]
mod fake;
mod output;
mod progress;
#[cfg(test)]
mod reference;
mod render;

use clap::{CommandFactory, Parser};

fn main() -> std::process::ExitCode {
    // Shell completion reads the half-typed line raw, before clap would refuse it.
    if let Some(code) = commands::complete::intercept(cli::Cli::command) {
        return code;
    }
    let cli = cli::Cli::parse();
    exit::init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => return exit::report(&anyhow::Error::new(err)),
    };
    let before = cli.before_verb();
    match runtime.block_on(commands::run(cli.command, &before, cli::Cli::command())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => exit::report(&err),
    }
}
