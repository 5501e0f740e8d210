//! One module per verb: a thin command wiring flags to a function that does the work. What the lifecycle
//! commands share (connecting to the two clusters, running an operation, dry runs, exit codes) is in
//! [`operate`].

pub mod check;
pub mod complete;
pub mod completion;
pub mod delete;
pub mod failback;
pub mod failover;
pub mod operate;
pub mod preview;
#[cfg(test)]
mod reference;
pub mod resync;
pub mod reverse;
pub mod reverse_resync;
pub mod setup;
pub mod snapmirror;
pub mod status;

use crate::cli::{Cli, Command};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let global = &cli.global;
    match cli.command {
        Command::Setup(args) => setup::run(global, args).await,
        Command::Status(args) => status::run(global, args).await,
        Command::Check(args) => check::run(global, args).await,
        Command::Failover(args) => failover::run(global, args).await,
        Command::Resync(args) => resync::run(global, args).await,
        Command::ReverseResync(args) => reverse_resync::run(global, args).await,
        Command::Reverse(args) => reverse::run(global, args).await,
        Command::Failback(args) => failback::run(global, args).await,
        Command::Delete(args) => delete::run(global, args).await,
        Command::Preview(args) => preview::run(global, args).await,
        Command::Snapmirror(command) => snapmirror::run(global, command).await,
        Command::Completion(args) => completion::run(args),
        Command::Complete(args) => complete::run(args).await,
        Command::Version => {
            crate::output::print(&format!("kubectl-tprotect {}\n", env!("CARGO_PKG_VERSION")))
        }
    }
}

/// A relationship NAME: it names the AppMirrorRelationship, its Lease (`tprotect-NAME`) and is the value of
/// the `tprotect.io/relationship` label, so it must be a DNS-1123 label (at most 63 characters).
pub fn relationship_name(text: &str) -> Result<String, String> {
    let valid_chars = text
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let valid_ends = text
        .bytes()
        .next()
        .zip(text.bytes().last())
        .is_some_and(|(first, last)| first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric());
    if text.is_empty() || text.len() > 63 || !valid_chars || !valid_ends {
        return Err(format!(
            "invalid relationship name {text:?}: use 1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit (it names the AppMirrorRelationship and its Lease tprotect-NAME)"
        ));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, DryRun, OutputFormat};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kubectl-tprotect").chain(args.iter().copied()))
    }

    #[test]
    fn names_are_dns_labels() {
        for good in ["rel1", "a", "my-app-dr", "0abc"] {
            assert_eq!(relationship_name(good).as_deref(), Ok(good));
        }
        for bad in ["", "Rel1", "-rel", "rel-", "rel_1", "rel.1", &"a".repeat(64)] {
            assert!(relationship_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn every_lifecycle_verb_parses_with_global_flags_anywhere() {
        for verb in [
            "status",
            "check",
            "failover",
            "resync",
            "reverse-resync",
            "reverse",
            "failback",
            "delete",
            "preview",
        ] {
            let cli = parse(&[
                "--context",
                "a",
                verb,
                "rel1",
                "--peer-context",
                "b",
                "-n",
                "ns",
                "--dry-run=client",
            ])
            .unwrap_or_else(|e| panic!("{verb}: {e}"));
            assert_eq!(cli.global.context.as_deref(), Some("a"), "{verb}");
            assert_eq!(cli.global.peer_context.as_deref(), Some("b"), "{verb}");
            assert_eq!(cli.global.namespace.as_deref(), Some("ns"), "{verb}");
            assert_eq!(cli.global.dry_run, DryRun::Client, "{verb}");
        }
    }

    #[test]
    fn failover_force_and_output_and_timeout() {
        let cli = parse(&[
            "failover",
            "rel1",
            "--force",
            "-o",
            "json",
            "--timeout",
            "90s",
            "--no-wait",
            "-y",
        ])
        .unwrap();
        let Command::Failover(args) = cli.command else {
            panic!("not failover")
        };
        assert!(args.force);
        assert_eq!(cli.global.output, OutputFormat::Json);
        assert_eq!(cli.global.timeout, std::time::Duration::from_secs(90));
        assert!(cli.global.no_wait && cli.global.yes);
    }

    #[test]
    fn dry_run_forms() {
        assert_eq!(parse(&["delete", "rel1"]).unwrap().global.dry_run, DryRun::None);
        assert_eq!(
            parse(&["delete", "rel1", "--dry-run"]).unwrap().global.dry_run,
            DryRun::Client
        );
        assert_eq!(
            parse(&["delete", "rel1", "--dry-run=server"])
                .unwrap()
                .global
                .dry_run,
            DryRun::Server
        );
        assert!(parse(&["delete", "rel1", "--dry-run=maybe"]).is_err());
    }

    #[test]
    fn bad_input_is_a_usage_error() {
        assert!(parse(&["failover"]).is_err(), "NAME is required");
        assert!(parse(&["failover", "Bad_Name"]).is_err());
        assert!(
            parse(&["setup", "rel1", "--app", "a"]).is_err(),
            "setup needs both contexts and vaults"
        );
        assert!(
            parse(&[
                "setup",
                "rel1",
                "--source-context",
                "a",
                "--destination-context",
                "b",
                "--app",
                "x",
                "--source-vault",
                "v",
                "--destination-vault",
                "w",
                "--interval",
                "1m"
            ])
            .is_err()
        );
        assert!(parse(&["frobnicate", "rel1"]).is_err());
    }

    #[test]
    fn status_forms() {
        let cli = parse(&["status", "-A", "--watch"]).unwrap();
        let Command::Status(args) = cli.command else {
            panic!("not status")
        };
        assert!(args.name.is_none() && args.all_namespaces && args.watch);
        let cli = parse(&["status", "rel1"]).unwrap();
        let Command::Status(args) = cli.command else {
            panic!("not status")
        };
        assert_eq!(args.name.as_deref(), Some("rel1"));
    }

    #[test]
    fn help_lists_every_verb_as_kubectl_tprotect() {
        use clap::CommandFactory;
        let help = Cli::command().render_help().to_string();
        for verb in [
            "setup",
            "status",
            "check",
            "failover",
            "resync",
            "reverse-resync",
            "reverse",
            "failback",
            "delete",
            "preview",
            "snapmirror",
        ] {
            assert!(help.contains(verb), "{verb} missing from help:\n{help}");
        }
        let sub = parse(&["failover", "--help"]).unwrap_err().to_string();
        assert!(sub.contains("Usage: kubectl tprotect failover"), "{sub}");
    }
}
