//! The command-line definition. Help reads `kubectl tprotect …` because kubectl runs us as a plugin.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::commands;

#[derive(Debug, Parser)]
#[command(
    name = "kubectl-tprotect",
    bin_name = "kubectl tprotect",
    version,
    about = "Replicate applications between clusters with NetApp Trident protect: one safe, resumable command per lifecycle step",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes. kubectl passes everything after `tprotect` to us unchanged, so we implement
/// `--kubeconfig`, `--context` and `-n` ourselves. `--kubeconfig` is deliberately NOT bound to `KUBECONFIG`:
/// that variable may be a colon-separated list, which kube-rs merges itself.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Kubeconfig context of one cluster (default: the current context)
    #[arg(long, global = true, value_name = "CONTEXT")]
    pub context: Option<String>,
    /// Kubeconfig context of the other cluster of the relationship
    #[arg(long, global = true, value_name = "CONTEXT")]
    pub peer_context: Option<String>,
    /// Namespace (default: the context's namespace)
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Output format of data printed on stdout
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// `client` prints the plan without sending; `server` sends every write with dryRun=All
    #[arg(long, global = true, value_enum, default_value_t = DryRun::None, num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: DryRun,
    /// How long to wait for the operation to finish (e.g. 90s, 15m, 1h)
    #[arg(long, global = true, value_parser = parse_duration, default_value = "15m", value_name = "DURATION")]
    pub timeout: Duration,
    /// Start the operation and return without waiting for it to finish
    #[arg(long, global = true)]
    pub no_wait: bool,
    /// Answer yes to confirmations (required for destructive steps when stdin is not a terminal)
    #[arg(short = 'y', long, global = true)]
    pub yes: bool,
    /// More detail on stderr (-v, -vv)
    #[arg(short = 'v', long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DryRun {
    None,
    Client,
    Server,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set up replication of an application from one cluster to another (every step, both clusters)
    Setup(commands::setup::SetupArgs),
    /// Show relationships as both clusters see them: state, transfers, lag against the interval, problems
    Status(commands::status::StatusArgs),
    /// Check, without changing anything, everything the relationship's operations need
    Check(commands::check::CheckArgs),
    /// Fail over: run the application on the destination (works with the source cluster down)
    Failover(commands::failover::FailoverArgs),
    /// Resync after a failover: DISCARD the destination's changes and replicate from the source again
    Resync(commands::resync::ResyncArgs),
    /// Reverse resync after a failover: KEEP the destination's changes and replicate them back to the source
    ReverseResync(commands::reverse_resync::ReverseResyncArgs),
    /// Swap directions in a planned way: the destination becomes the source, with no data lost
    Reverse(commands::reverse::ReverseArgs),
    /// Fail back after a failover: reverse resync, then reverse, so the original source runs the application again
    Failback(commands::failback::FailbackArgs),
    /// Delete the relationship (its AppMirrorRelationship); both applications remain
    Delete(commands::delete::DeleteArgs),
    /// Show what a failover would do to the destination namespace's labels and annotations
    Preview(commands::preview::PreviewArgs),
    /// Trigger and watch an ONTAP SnapMirror volume update, or show a relationship's state
    #[command(subcommand)]
    Snapmirror(commands::snapmirror::SnapmirrorCommand),
    /// Print the plugin's version
    Version,
    /// Print a shell completion script, or the kubectl completion shim (for `kubectl tprotect <TAB>`)
    #[command(long_about = commands::completion::LONG_ABOUT)]
    Completion(commands::completion::CompletionArgs),
    /// Cobra's completion protocol, run by the kubectl_complete-tprotect shim
    #[command(name = "__complete", hide = true, disable_help_flag = true)]
    Complete(commands::complete::CompleteArgs),
}

/// Parses `90s`, `15m`, `1h30m`, `500ms` (jiff's friendly duration format, ISO 8601 `PT15M` too) or a bare
/// number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let signed: jiff::SignedDuration = text
        .parse()
        .map_err(|e| format!("invalid duration {text:?} (use e.g. 90s, 15m, 1h30m): {e}"))?;
    Duration::try_from(signed).map_err(|_| format!("duration {text:?} must not be negative"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("42"), Ok(Duration::from_secs(42)));
        assert!(parse_duration("15x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("10m5").is_err());
        assert!(parse_duration("-5m").is_err());
    }

    #[test]
    fn help_reads_kubectl_tprotect() {
        let help = Cli::command().render_help().to_string();
        assert!(help.contains("kubectl tprotect"), "{help}");
    }
}
