//! `kubectl tprotect setup NAME`: every step of NetApp's "set up" recipe on both clusters, then a wait for
//! Established. The only command that names the clusters by role; afterwards NAME is enough.

use std::path::PathBuf;

use clap::Args;
use jiff::Timestamp;
use tprotect_lifecycle::{ClusterKey, Goal, SetupParams};
use tprotect_policy::recurrence::{self, Frequency, RecurrenceRule};

use crate::args::{ConnectionArgs, OperationArgs, OutputArgs, parse_duration, relationship_name};
use crate::commands::BeforeVerb;
use crate::commands::operate::{self, Request};
use crate::output::Printer;

pub const EXAMPLES: &str = "Examples:
  # The plan first: every object it would create on both clusters
  kubectl tprotect setup payments --source-context prod --destination-context dr -n payments --app payments \\
    --source-vault vault-prod --destination-vault vault-dr --interval 5m --dry-run=client

  # Set it up and wait until it is Established
  kubectl tprotect setup payments --source-context prod --destination-context dr -n payments --app payments \\
    --source-vault vault-prod --destination-vault vault-dr --interval 5m

  # Run again with another interval: the relationship's schedule and AMR follow it
  kubectl tprotect setup payments --source-context prod --destination-context dr -n payments --app payments \\
    --source-vault vault-prod --destination-vault vault-dr --interval 15m";

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Name of the relationship: the AppMirrorRelationship's name, used by every later command
    #[arg(value_parser = relationship_name)]
    pub name: String,
    /// Kubeconfig context of the cluster the application runs on now
    #[arg(long, value_name = "CONTEXT")]
    pub source_context: String,
    /// Kubeconfig context of the cluster to replicate to
    #[arg(long, value_name = "CONTEXT")]
    pub destination_context: String,
    /// The source Application (in -n, default the source context's namespace)
    #[arg(long, value_name = "APPLICATION")]
    pub app: String,
    /// AppVault on the source cluster (copied, with its Secret, to the destination)
    #[arg(long, value_name = "APPVAULT")]
    pub source_vault: String,
    /// AppVault on the destination cluster
    #[arg(long, value_name = "APPVAULT")]
    pub destination_vault: String,
    /// Namespace on the destination cluster (default: the source namespace); created if missing
    #[arg(long, value_name = "NAMESPACE")]
    pub destination_namespace: Option<String>,
    /// StorageClass for the replicated volumes on the destination (default: the cluster's default)
    #[arg(long, value_name = "STORAGECLASS")]
    pub storage_class: Option<String>,
    /// StorageClass on the source cluster, used when the relationship is reversed
    #[arg(long, value_name = "STORAGECLASS")]
    pub source_storage_class: Option<String>,
    /// Replication interval: minutes (at least 5m) or whole hours, e.g. 5m, 30m, 2h
    #[arg(long, value_parser = parse_interval, default_value = "5m", value_name = "DURATION")]
    pub interval: Interval,
    /// Create the source Application over the namespace if it does not exist
    #[arg(long)]
    pub create_app: bool,
    /// Take a Snapshot of the source application first and wait for it to complete
    #[arg(long)]
    pub initial_snapshot: bool,
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of the source application (default: the source context's namespace)
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub operation: OperationArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// How often the relationship replicates: what `FREQ` and `INTERVAL` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Minutes(u32),
    Hours(u32),
}

/// `--interval`: whole minutes, at least 5 (Trident protect's minimum for MINUTELY); whole hours become
/// `FREQ=HOURLY`, so `2h` reads as written in the rule.
pub fn parse_interval(text: &str) -> Result<Interval, String> {
    let duration = parse_duration(text)?;
    let seconds = duration.as_secs();
    if duration.subsec_nanos() != 0 || seconds % 60 != 0 || seconds == 0 {
        return Err(format!(
            "interval {text:?} must be whole minutes (e.g. 5m, 30m) or hours (e.g. 2h)"
        ));
    }
    let minutes = u32::try_from(seconds / 60).map_err(|_| format!("interval {text:?} is too long"))?;
    if minutes % 60 == 0 {
        return Ok(Interval::Hours(minutes / 60));
    }
    if minutes < recurrence::MIN_MINUTELY_INTERVAL {
        return Err(format!(
            "interval {text:?} is too short: Trident protect replicates at most every {} minutes",
            recurrence::MIN_MINUTELY_INTERVAL
        ));
    }
    Ok(Interval::Minutes(minutes))
}

/// The relationship's recurrence rule: `DTSTART` is `now` truncated to the minute (UTC, so never in the
/// future), and only FREQ and INTERVAL. Checked against the AMR's and the replication Schedule's rules.
pub fn recurrence_rule(interval: Interval, now: Timestamp) -> Result<String, String> {
    let start = Timestamp::from_second(now.as_second() - now.as_second().rem_euclid(60))
        .map_err(|e| format!("cannot compute DTSTART from {now}: {e}"))?;
    let (frequency, count) = match interval {
        Interval::Minutes(m) => (Frequency::Minutely, m),
        Interval::Hours(h) => (Frequency::Hourly, h),
    };
    let rule = RecurrenceRule::every(start, frequency, count).to_string();
    let problems: Vec<String> = recurrence::check_amr(&rule, now)
        .into_iter()
        .chain(recurrence::check_replication_schedule(&rule, now))
        .map(|p| p.to_string())
        .collect();
    if problems.is_empty() {
        Ok(rule)
    } else {
        Err(format!("recurrence rule {rule:?}: {}", problems.join("; ")))
    }
}

/// The planner's parameters. The source cluster is `--context`, the destination `--peer-context`, in the
/// connection made from `--source-context`/`--destination-context`.
pub fn params(args: &SetupArgs, source_namespace: &str, now: Timestamp) -> Result<SetupParams, String> {
    Ok(SetupParams {
        source: ClusterKey::Context,
        app: args.app.clone(),
        source_namespace: source_namespace.to_string(),
        destination_namespace: args
            .destination_namespace
            .clone()
            .unwrap_or_else(|| source_namespace.to_string()),
        source_vault: args.source_vault.clone(),
        destination_vault: args.destination_vault.clone(),
        storage_class: args.storage_class.clone(),
        source_storage_class: args.source_storage_class.clone(),
        recurrence_rule: recurrence_rule(args.interval, now)?,
        create_app: args.create_app,
        initial_snapshot: args.initial_snapshot,
    })
}

pub async fn run(args: SetupArgs, before: &BeforeVerb, printer: &mut Printer) -> anyhow::Result<()> {
    if before.connection.context.is_some() || before.connection.peer_context.is_some() {
        return Err(operate::usage(
            "setup names the clusters by role: use --source-context and --destination-context (not --context/--peer-context)",
        ));
    }
    let connection = ConnectionArgs {
        kubeconfig: args.kubeconfig.clone(),
        namespace: args.namespace.clone(),
        ..Default::default()
    }
    .or(&before.connection);
    let clusters =
        operate::connect_roles(&connection, &args.source_context, &args.destination_context).await?;
    let source_namespace = operate::namespace(&clusters, ClusterKey::Context, &connection);
    let params = params(&args, &source_namespace, Timestamp::now()).map_err(operate::usage)?;
    let request = Request {
        name: &args.name,
        goal: Goal::Setup(params),
        namespace: connection.namespace.clone(),
        operation: args.operation.settings(&before.flags),
        yes: false,
        abandon: false,
        verbose: before.verbose,
    };
    operate::run_operation(&clusters, request, printer).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn intervals_parse_to_minutes_or_hours() {
        assert_eq!(parse_interval("5m"), Ok(Interval::Minutes(5)));
        assert_eq!(parse_interval("90m"), Ok(Interval::Minutes(90)));
        assert_eq!(parse_interval("300s"), Ok(Interval::Minutes(5)));
        assert_eq!(parse_interval("60m"), Ok(Interval::Hours(1)));
        assert_eq!(parse_interval("2h"), Ok(Interval::Hours(2)));
        assert_eq!(parse_interval("1h30m"), Ok(Interval::Minutes(90)));
        for bad in ["4m", "1m", "0m", "30s", "90s", "5x", "", "500ms"] {
            assert!(parse_interval(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_interval("4m").unwrap_err().contains("5 minutes"));
    }

    #[test]
    fn rule_starts_at_the_minute_in_utc_and_never_in_the_future() {
        let now = at("2026-11-22T00:51:13.5Z");
        assert_eq!(
            recurrence_rule(Interval::Minutes(5), now).unwrap(),
            "DTSTART:20261122T005100Z\nRRULE:FREQ=MINUTELY;INTERVAL=5"
        );
        assert_eq!(
            recurrence_rule(Interval::Hours(2), now).unwrap(),
            "DTSTART:20261122T005100Z\nRRULE:FREQ=HOURLY;INTERVAL=2"
        );
        // Exactly on the minute: DTSTART is now, which is not in the future.
        let on_the_minute = at("2026-11-22T00:51:00Z");
        assert_eq!(
            recurrence_rule(Interval::Minutes(15), on_the_minute).unwrap(),
            "DTSTART:20261122T005100Z\nRRULE:FREQ=MINUTELY;INTERVAL=15"
        );
    }

    #[test]
    fn rules_pass_the_policy_checks_they_will_meet() {
        let now = at("2026-01-01T12:34:56Z");
        for interval in [
            Interval::Minutes(5),
            Interval::Minutes(59),
            Interval::Hours(1),
            Interval::Hours(24),
        ] {
            let rule = recurrence_rule(interval, now).unwrap();
            assert!(recurrence::check_amr(&rule, now).is_empty(), "{rule}");
            assert!(
                recurrence::check_replication_schedule(&rule, now).is_empty(),
                "{rule}"
            );
        }
        // Built by hand past the parser: the checks still catch it.
        assert!(recurrence_rule(Interval::Minutes(2), now).is_err());
    }

    #[test]
    fn destination_namespace_defaults_to_the_source_namespace() {
        let cli = crate::cli::testing::parse_setup("10m").unwrap();
        let crate::commands::Command::Setup(args) = cli.command else {
            panic!("not setup")
        };
        let p = params(&args, "app-ns", at("2026-01-01T00:00:30Z")).unwrap();
        assert_eq!(p.destination_namespace, "app-ns");
        assert_eq!(p.source_namespace, "app-ns");
        assert_eq!(p.source, ClusterKey::Context);
        assert_eq!(
            p.recurrence_rule,
            "DTSTART:20260101T000000Z\nRRULE:FREQ=MINUTELY;INTERVAL=10"
        );
        assert!(!p.create_app && !p.initial_snapshot);
    }
}
