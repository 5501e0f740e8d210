//! The argument groups verbs compose: each verb flattens only the groups it uses, so its help shows only the
//! flags it reads. kubectl passes everything after `tprotect` to us unchanged, so we implement `--kubeconfig`,
//! `--context` and `-n` ourselves. `--kubeconfig` is deliberately NOT bound to `KUBECONFIG`: that variable may
//! be a colon-separated list, which kube-rs merges itself.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// The two clusters of a relationship and the namespace.
#[derive(Debug, Args, Clone, Default, PartialEq, Eq)]
pub struct ConnectionArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context of one cluster of the relationship (default: the current context)
    #[arg(long, value_name = "CONTEXT")]
    pub context: Option<String>,
    /// Kubeconfig context of the other cluster of the relationship (either order)
    #[arg(long, value_name = "CONTEXT")]
    pub peer_context: Option<String>,
    /// Namespace (default: the context's namespace)
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}

impl ConnectionArgs {
    /// These flags, with those given before the verb (`kubectl tprotect --context a status …`) filling in what
    /// the verb's own did not set.
    pub fn or(&self, before_verb: &ConnectionArgs) -> ConnectionArgs {
        ConnectionArgs {
            kubeconfig: self.kubeconfig.clone().or_else(|| before_verb.kubeconfig.clone()),
            context: self.context.clone().or_else(|| before_verb.context.clone()),
            peer_context: self
                .peer_context
                .clone()
                .or_else(|| before_verb.peer_context.clone()),
            namespace: self.namespace.clone().or_else(|| before_verb.namespace.clone()),
        }
    }
}

/// A verb that reads one relationship: its name, the clusters, `-o`.
#[derive(Debug, Args)]
pub struct ReadRelationshipArgs {
    /// Name of the relationship
    #[arg(value_parser = relationship_name)]
    pub name: String,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `-o`.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct OutputArgs {
    /// Output format of the data printed on stdout (default: table)
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
}

impl OutputArgs {
    pub fn format(&self, before_verb: &BeforeVerbFlags) -> OutputFormat {
        self.output.or(before_verb.output).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
    Yaml,
}

/// How a lifecycle operation runs.
#[derive(Debug, Args, Clone, Default)]
pub struct OperationArgs {
    /// `client` prints the plan without sending anything; `server` sends every write with dryRun=All (default:
    /// none)
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: Option<DryRun>,
    /// How long to wait for the operation to finish, e.g. 90s, 15m, 1h (default: 15m)
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// Start the operation and return without waiting for it to finish (run the same command again to follow it)
    #[arg(long)]
    pub no_wait: bool,
}

/// [`OperationArgs`] with the defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationSettings {
    pub dry_run: DryRun,
    pub timeout: Duration,
    pub no_wait: bool,
}

/// `--timeout` when none is given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

impl OperationArgs {
    /// The verb's flags, those given before it filling in, then the defaults.
    pub fn settings(&self, before_verb: &BeforeVerbFlags) -> OperationSettings {
        OperationSettings {
            dry_run: self.dry_run.or(before_verb.dry_run).unwrap_or(DryRun::None),
            timeout: self.timeout.or(before_verb.timeout).unwrap_or(DEFAULT_TIMEOUT),
            no_wait: self.no_wait || before_verb.no_wait,
        }
    }
}

/// The verbs' own flags, accepted before the verb too (`kubectl tprotect --dry-run failover …`), as scripts
/// written for earlier versions put them. Hidden from help: each verb shows the flags it reads; one that does
/// not read a flag given here refuses it.
#[derive(Debug, Args, Clone, Default)]
pub struct BeforeVerbFlags {
    #[arg(long, hide = true, value_enum, num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: Option<DryRun>,
    #[arg(long, hide = true, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    #[arg(long, hide = true)]
    pub no_wait: bool,
    #[arg(short = 'y', long, hide = true)]
    pub yes: bool,
    #[arg(short = 'o', long, hide = true, value_enum)]
    pub output: Option<OutputFormat>,
}

impl BeforeVerbFlags {
    /// The flags given before a verb that does not read them, by name.
    pub fn unused_by(&self, reads_operation: bool, reads_yes: bool, reads_output: bool) -> Vec<&'static str> {
        let mut unused = Vec::new();
        if !reads_operation {
            if self.dry_run.is_some() {
                unused.push("--dry-run");
            }
            if self.timeout.is_some() {
                unused.push("--timeout");
            }
            if self.no_wait {
                unused.push("--no-wait");
            }
        }
        if !reads_yes && self.yes {
            unused.push("--yes");
        }
        if !reads_output && self.output.is_some() {
            unused.push("--output");
        }
        unused
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DryRun {
    None,
    Client,
    Server,
}

impl From<DryRun> for tprotect_lifecycle::DryRun {
    fn from(dry_run: DryRun) -> Self {
        match dry_run {
            DryRun::None => tprotect_lifecycle::DryRun::None,
            DryRun::Client => tprotect_lifecycle::DryRun::Client,
            DryRun::Server => tprotect_lifecycle::DryRun::Server,
        }
    }
}

/// `--yes`, for the verbs that may ask.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct ConfirmArgs {
    /// Answer yes to the confirmation (required without a terminal)
    #[arg(short = 'y', long)]
    pub yes: bool,
}

/// `--abandon`, for the operations that keep a record in the relationship's lock.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct AbandonArgs {
    /// Give up this operation, interrupted and unfinishable: forget its record in the lock (kept in an Event),
    /// leaving both clusters as they are. Asks for confirmation
    #[arg(long)]
    pub abandon: bool,
}

/// Every flag the `snapmirror` commands read (they take the Kubernetes flags only for `--secret`).
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context of the cluster holding --secret (default: the current context)
    #[arg(long, global = true, value_name = "CONTEXT")]
    pub context: Option<String>,
    /// Namespace of --secret (default: the context's namespace)
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Output format of data printed on stdout
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// `client` shows what would be sent without sending
    #[arg(long, global = true, value_enum, default_value_t = DryRun::None, num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: DryRun,
    /// How long to wait (e.g. 90s, 15m, 1h)
    #[arg(long, global = true, value_parser = parse_duration, default_value = "15m", value_name = "DURATION")]
    pub timeout: Duration,
    /// Start the update and return without following it
    #[arg(long, global = true)]
    pub no_wait: bool,
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
    fn names_are_dns_labels() {
        for good in ["rel1", "a", "my-app-dr", "0abc"] {
            assert_eq!(relationship_name(good).as_deref(), Ok(good));
        }
        for bad in ["", "Rel1", "-rel", "rel-", "rel_1", "rel.1", &"a".repeat(64)] {
            assert!(relationship_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn flags_after_the_verb_win_over_those_before_it() {
        let before = ConnectionArgs {
            context: Some("a".into()),
            namespace: Some("ns-before".into()),
            ..Default::default()
        };
        let after = ConnectionArgs {
            namespace: Some("ns".into()),
            peer_context: Some("b".into()),
            ..Default::default()
        };
        let merged = after.or(&before);
        assert_eq!(merged.context.as_deref(), Some("a"));
        assert_eq!(merged.peer_context.as_deref(), Some("b"));
        assert_eq!(merged.namespace.as_deref(), Some("ns"));
    }
}
