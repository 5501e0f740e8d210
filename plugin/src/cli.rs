//! The command line: the verbs ([`crate::commands::Command`]) and the few flags that may come before one.
//! Help reads `kubectl tprotect …` because kubectl runs us as a plugin.

use clap::Parser;

use crate::args::{BeforeVerbFlags, ConnectionArgs};
use crate::commands::{BeforeVerb, Command};

#[derive(Debug, Parser)]
#[command(
    name = "kubectl-tprotect",
    bin_name = "kubectl tprotect",
    version,
    about = "Replicate applications between clusters with NetApp Trident protect: one safe, resumable command per lifecycle step",
    propagate_version = true
)]
pub struct Cli {
    /// The cluster flags may come before the verb too (`kubectl tprotect --context dr status payments`); those
    /// after it win.
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub flags: BeforeVerbFlags,
    /// More detail on stderr (-v, -vv)
    #[arg(short = 'v', long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// What the verb may read of the flags given before it.
    pub fn before_verb(&self) -> BeforeVerb {
        BeforeVerb {
            connection: self.connection.clone(),
            flags: self.flags.clone(),
            verbose: self.verbose,
        }
    }
}

/// Command lines for the verbs' tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// The verbs that act on an existing relationship.
    pub(crate) const VERBS_ON_A_RELATIONSHIP: [&str; 9] = [
        "status",
        "check",
        "failover",
        "resync",
        "reverse-resync",
        "reverse",
        "failback",
        "delete",
        "preview",
    ];

    pub(crate) fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kubectl-tprotect").chain(args.iter().copied()))
    }

    /// `setup rel1` with every required flag and `--interval interval`.
    pub(crate) fn parse_setup(interval: &str) -> Result<Cli, clap::Error> {
        parse(&[
            "setup",
            "rel1",
            "--source-context",
            "a",
            "--destination-context",
            "b",
            "--app",
            "app",
            "--source-vault",
            "sv",
            "--destination-vault",
            "dv",
            "--interval",
            interval,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{VERBS_ON_A_RELATIONSHIP, parse, parse_setup};
    use super::*;
    use crate::args::{DryRun, OutputFormat};
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_reads_kubectl_tprotect() {
        let help = Cli::command().render_help().to_string();
        assert!(help.contains("kubectl tprotect"), "{help}");
    }

    #[test]
    fn every_lifecycle_verb_takes_the_cluster_flags_after_it_and_before_it() {
        for verb in VERBS_ON_A_RELATIONSHIP {
            let after = parse(&[verb, "rel1", "--context", "a", "--peer-context", "b", "-n", "ns"])
                .unwrap_or_else(|e| panic!("{verb}: {e}"));
            let before = parse(&["--context", "a", "-n", "ns", verb, "rel1", "--peer-context", "b"])
                .unwrap_or_else(|e| panic!("{verb}: {e}"));
            for cli in [after, before] {
                let connection = connection_of(&cli.command).or(&cli.before_verb().connection);
                assert_eq!(connection.context.as_deref(), Some("a"), "{verb}");
                assert_eq!(connection.peer_context.as_deref(), Some("b"), "{verb}");
                assert_eq!(connection.namespace.as_deref(), Some("ns"), "{verb}");
            }
        }
    }

    fn connection_of(command: &Command) -> ConnectionArgs {
        match command {
            Command::Status(a) => a.connection.clone(),
            Command::Check(a) => a.connection.clone(),
            Command::Failover(a) => a.common.connection.clone(),
            Command::Resync(a) => a.common.connection.clone(),
            Command::ReverseResync(a) => a.common.connection.clone(),
            Command::Reverse(a) => a.common.connection.clone(),
            Command::Failback(a) => a.common.connection.clone(),
            Command::Delete(a) => a.connection.clone(),
            Command::Preview(a) => a.connection.clone(),
            other => panic!("no connection flags: {other:?}"),
        }
    }

    #[test]
    fn each_verb_shows_only_the_flags_it_uses() {
        let help = |verb: &str| {
            Cli::command()
                .find_subcommand_mut(verb)
                .unwrap_or_else(|| panic!("{verb}"))
                .render_long_help()
                .to_string()
        };
        for read_only in ["status", "check", "preview"] {
            let text = help(read_only);
            for flag in ["--yes", "--dry-run", "--no-wait", "--timeout", "--abandon"] {
                assert!(!text.contains(flag), "{read_only} shows {flag}:\n{text}");
            }
            assert!(text.contains("--peer-context"), "{read_only}:\n{text}");
        }
        let failover = help("failover");
        for flag in [
            "--dry-run",
            "--no-wait",
            "--timeout",
            "--abandon",
            "--force",
            "-o, --output",
        ] {
            assert!(failover.contains(flag), "failover lacks {flag}:\n{failover}");
        }
        let setup = help("setup");
        assert!(
            !setup.contains("--peer-context") && !setup.contains("--yes"),
            "{setup}"
        );
        assert!(setup.contains("--source-context"), "{setup}");
        let version = help("version");
        assert!(!version.contains("--context"), "{version}");
    }

    #[test]
    fn every_verb_has_examples() {
        let mut cli = Cli::command();
        cli.build();
        for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name = sub.get_name();
            if matches!(name, "version" | "snapmirror" | "help") {
                continue;
            }
            let help = sub.clone().render_long_help().to_string();
            assert!(help.contains("Examples:"), "{name} has no examples:\n{help}");
            assert!(
                help.contains(&format!("kubectl tprotect {name}")),
                "{name}:\n{help}"
            );
        }
    }

    #[test]
    fn failover_force_output_timeout_and_dry_run_forms() {
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
        assert!(args.force && args.common.operation.no_wait && args.common.confirm.yes);
        assert_eq!(args.common.output.output, Some(OutputFormat::Json));
        let settings = args.common.operation.settings(&Default::default());
        assert_eq!(settings.timeout, std::time::Duration::from_secs(90));
        let dry = |words: &[&str]| match parse(words) {
            Ok(Cli {
                command: Command::Delete(a),
                flags,
                ..
            }) => Ok(a.operation.settings(&flags).dry_run),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(dry(&["delete", "rel1"]).unwrap(), DryRun::None);
        assert_eq!(dry(&["delete", "rel1", "--dry-run"]).unwrap(), DryRun::Client);
        assert_eq!(
            dry(&["delete", "rel1", "--dry-run=server"]).unwrap(),
            DryRun::Server
        );
        assert_eq!(
            dry(&["--dry-run=server", "delete", "rel1"]).unwrap(),
            DryRun::Server,
            "before the verb, as earlier versions took it"
        );
        assert!(dry(&["delete", "rel1", "--dry-run=maybe"]).is_err());
    }

    #[test]
    fn bad_input_is_a_usage_error() {
        assert!(parse(&["failover"]).is_err(), "NAME is required");
        assert!(parse(&["failover", "Bad_Name"]).is_err());
        assert!(parse(&["status", "--yes"]).is_err(), "status takes no --yes");
        assert!(
            parse(&["setup", "rel1", "--app", "a"]).is_err(),
            "setup needs both contexts and vaults"
        );
        assert!(parse_setup("1m").is_err(), "below the 5-minute minimum");
        assert!(parse_setup("5m").is_ok());
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
        let help = Cli::command().render_help().to_string();
        for verb in VERBS_ON_A_RELATIONSHIP.iter().chain(&["setup", "snapmirror"]) {
            assert!(help.contains(verb), "{verb} missing from help:\n{help}");
        }
        let sub = parse(&["failover", "--help"]).unwrap_err().to_string();
        assert!(sub.contains("Usage: kubectl tprotect failover"), "{sub}");
    }
}
