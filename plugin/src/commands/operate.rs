//! What the lifecycle verbs share: the two clusters from `--context`/`--peer-context`, running an operation with
//! the lifecycle runner (progress on stderr, its report on stdout), the confirmation prompt, exit codes.

use std::sync::Arc;

use anyhow::anyhow;
use clap::Args;
use tprotect_lifecycle::execute::Executed;
use tprotect_lifecycle::runner::{self, Confirm, ProgressFn};
use tprotect_lifecycle::{ClusterKey, Clusters, Goal, Progress, RunError, RunOptions, RunReport, RunResult};

use crate::args::{
    AbandonArgs, ConfirmArgs, ConnectionArgs, DryRun, OperationArgs, OperationSettings, OutputArgs,
    relationship_name,
};
use crate::commands::BeforeVerb;
use crate::confirm::{self, Prompt};
use crate::exit::{CodedError, USAGE};
use crate::output::Printer;
use crate::progress::Progress as Reporter;
use crate::render;

/// A usage error (exit 2): the command line cannot work as given.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(CodedError {
        code: USAGE,
        message: message.into(),
    })
}

/// A run error as the plugin reports it: a timeout has its own exit code, anything else exits 1.
pub fn run_error(error: RunError) -> anyhow::Error {
    if error.is_timeout() {
        CodedError::timeout(error.to_string())
    } else {
        anyhow::Error::new(error)
    }
}

/// A failed API request, naming the cluster, the namespace and the object.
pub fn kube_error(
    error: kube::Error,
    context: &str,
    namespace: &str,
    kind: &str,
    name: &str,
) -> anyhow::Error {
    let resource = format!("{}s", kind.to_ascii_lowercase());
    anyhow::Error::new(RunError::kube(context, "get", &resource, namespace, name, error))
}

/// The clusters of `--context` and `--peer-context`, for commands on an existing relationship. A context that
/// is not in the kubeconfig, or whose credentials cannot be loaded, is bad input: refused before any request. A
/// cluster that is merely down is not (failover must work without its peer).
pub async fn connect(connection: &ConnectionArgs) -> anyhow::Result<Clusters> {
    let Some(peer) = connection.peer_context.as_deref() else {
        return Err(usage(
            "pass the other cluster of the relationship with --peer-context CONTEXT (the order of --context and --peer-context does not matter)",
        ));
    };
    connect_contexts(connection, connection.context.as_deref(), Some(peer)).await
}

/// Like [`connect`], but the peer is optional (`status` can show one side).
pub async fn connect_optional_peer(connection: &ConnectionArgs) -> anyhow::Result<Clusters> {
    connect_contexts(
        connection,
        connection.context.as_deref(),
        connection.peer_context.as_deref(),
    )
    .await
}

/// For `setup`: the source as `--context`, the destination as `--peer-context`.
pub async fn connect_roles(
    connection: &ConnectionArgs,
    source: &str,
    destination: &str,
) -> anyhow::Result<Clusters> {
    connect_contexts(connection, Some(source), Some(destination)).await
}

async fn connect_contexts(
    connection: &ConnectionArgs,
    context: Option<&str>,
    peer: Option<&str>,
) -> anyhow::Result<Clusters> {
    let clusters = Clusters::from_kubeconfig(connection.kubeconfig.as_deref(), context, peer)
        .await
        .map_err(|e| anyhow!(e))?;
    for key in ClusterKey::BOTH {
        let handle = clusters.get(key);
        if key == ClusterKey::Peer && handle.context.is_empty() {
            continue;
        }
        if let Err(reason) = handle.client() {
            return Err(anyhow!("cannot use context {:?}: {reason}", handle.context));
        }
    }
    if clusters.context.context == clusters.peer.context {
        return Err(usage(format!(
            "--context and --peer-context both name {:?}: a relationship spans two clusters",
            clusters.context.context
        )));
    }
    Ok(clusters)
}

/// The namespace a command works in on cluster `key`: `-n`, else the context's default.
pub fn namespace(clusters: &Clusters, key: ClusterKey, connection: &ConnectionArgs) -> String {
    connection
        .namespace
        .clone()
        .unwrap_or_else(|| clusters.get(key).default_namespace.clone())
}

/// The relationship as found: the cluster holding its AMR (the destination) and its namespace mapping.
#[derive(Debug, Clone)]
pub struct Found {
    pub cluster: ClusterKey,
    pub mapping: Vec<(String, String)>,
}

/// Finds the relationship's AMR on either cluster, or says where it looked.
pub async fn locate(clusters: &Clusters, namespace: Option<&str>, name: &str) -> anyhow::Result<Found> {
    let located = tprotect_lifecycle::observe::locate(clusters, name, namespace)
        .await
        .map_err(run_error)?;
    if located.amrs.len() > 1 {
        return Err(anyhow!(RunError::Plan(
            tprotect_lifecycle::PlanError::AmrOnBothClusters {
                name: name.to_string()
            }
        )));
    }
    match located.amr() {
        Some((cluster, amr)) => Ok(Found {
            cluster,
            mapping: amr.mapping(),
        }),
        None => Err(anyhow!(not_found_message(
            name,
            &located.searched,
            &located.unreachable,
            clusters
        ))),
    }
}

/// "relationship X not found", saying where it looked and which cluster could not be asked.
pub fn not_found_message(
    name: &str,
    searched: &[String],
    unreachable: &std::collections::BTreeMap<ClusterKey, String>,
    clusters: &Clusters,
) -> String {
    let mut message = format!(
        "relationship {name:?} not found: no AppMirrorRelationship of that name (or labelled tprotect.io/relationship={name}) in {}",
        searched.join("; ")
    );
    for (key, reason) in unreachable {
        message.push_str(&format!(
            "; cluster {} is unreachable: {reason}",
            clusters.context_of(*key)
        ));
    }
    message
}

/// What the verbs on an existing relationship that keep a record (failover, resync, reverse-resync, reverse,
/// failback) take: its NAME, the clusters, how to run, `--abandon`, `--yes`, `-o`.
#[derive(Debug, Args)]
pub struct RecordedOperationArgs {
    /// Name of the relationship
    #[arg(value_parser = relationship_name)]
    pub name: String,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub operation: OperationArgs,
    #[command(flatten)]
    pub abandon: AbandonArgs,
    #[command(flatten)]
    pub confirm: ConfirmArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Runs such a verb: connect, then run (or with `--abandon` give up) `goal`.
pub async fn run_recorded(
    args: &RecordedOperationArgs,
    goal: Goal,
    before: &BeforeVerb,
    printer: &mut Printer,
) -> anyhow::Result<()> {
    let connection = args.connection.or(&before.connection);
    let clusters = connect(&connection).await?;
    let request = Request {
        name: &args.name,
        goal,
        namespace: connection.namespace.clone(),
        operation: args.operation.settings(&before.flags),
        yes: args.confirm.yes || before.flags.yes,
        abandon: args.abandon.abandon,
        verbose: before.verbose,
    };
    run_operation(&clusters, request, printer).await
}

/// How a lifecycle verb asks for its operation.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub name: &'a str,
    pub goal: Goal,
    /// `-n`: where to look for the AMR first.
    pub namespace: Option<String>,
    pub operation: OperationSettings,
    /// `--yes`.
    pub yes: bool,
    /// `--abandon`: give the operation up instead of running it.
    pub abandon: bool,
    /// `-v`.
    pub verbose: u8,
}

/// One progress event as a line on stderr: `(activity, text)`, where an activity drives the spinner. `None`
/// for what is not shown (planned steps; notes without `-v`).
pub fn progress_line(event: &Progress, verbose: u8, dry_run: DryRun) -> Option<(bool, String)> {
    Some(match event {
        Progress::Located {
            cluster,
            namespace,
            name,
        } => (
            false,
            format!("found AppMirrorRelationship {namespace}/{name} on {cluster}"),
        ),
        Progress::Locked {
            cluster,
            namespace,
            lease,
            resumed,
        } => (
            false,
            match resumed {
                Some(op) => format!(
                    "locked (Lease {namespace}/{lease} on {cluster}); resuming the interrupted {}",
                    op.command()
                ),
                None => format!("locked (Lease {namespace}/{lease} on {cluster})"),
            },
        ),
        Progress::Planned { .. } => return None,
        Progress::Acted {
            description, result, ..
        } => (
            false,
            match (result, dry_run) {
                (Executed::Applied, DryRun::Server) => {
                    format!("would be done (accepted with dryRun=All, not stored): {description}")
                }
                (Executed::Applied, _) => format!("done: {description}"),
                (Executed::AlreadyDone, _) => format!("done: {description} (already so)"),
                (Executed::Conflict(reason), _) => {
                    format!("changed meanwhile: {description} ({reason}); looking again")
                }
                (Executed::NotSent(reason), _) => format!("not sent: {description} ({reason})"),
            },
        ),
        Progress::Waiting {
            description,
            state,
            error,
            ..
        } => {
            let mut now = if state.is_empty() {
                "no state yet".to_string()
            } else {
                state.clone()
            };
            if let Some(error) = error {
                now.push_str(&format!(", error: {error}"));
            }
            (true, format!("{description} (now: {now})"))
        }
        Progress::Note(text) if verbose > 0 => (false, format!("note: {text}")),
        Progress::Note(_) => return None,
        Progress::Warning(text) => (false, format!("warning: {text}")),
    })
}

/// Runs the verb's operation on relationship `request.name`: `--dry-run=client` prints the plan; otherwise the
/// runner performs it (server dry run: with dryRun=All), reporting progress on stderr and its report on stdout.
pub async fn run_operation(
    clusters: &Clusters,
    request: Request<'_>,
    printer: &mut Printer,
) -> anyhow::Result<()> {
    let report = perform(clusters, request).await?;
    print_report(&report, printer)
}

/// Prints a run's report: JSON/YAML as data, for people [`render_report`].
pub fn print_report(report: &RunReport, printer: &mut Printer) -> anyhow::Result<()> {
    printer.print(report, || render_report(report))
}

/// Performs the operation and returns its report (progress on stderr as it goes).
pub async fn perform(clusters: &Clusters, request: Request<'_>) -> anyhow::Result<RunReport> {
    let reporter = Arc::new(Reporter::stderr());
    let dry_run = request.operation.dry_run;
    let progress: ProgressFn = {
        let (reporter, verbose) = (reporter.clone(), request.verbose);
        Arc::new(move |event: Progress| {
            if let Some((activity, line)) = progress_line(&event, verbose, dry_run) {
                if activity {
                    reporter.activity(&line)
                } else {
                    reporter.line(&line)
                }
            }
        })
    };
    let confirm: Confirm = {
        let (reporter, yes, name) = (reporter.clone(), request.yes, request.name.to_string());
        // The spinner is hidden while the prompt waits for an answer: it would erase the question.
        Arc::new(move |warnings: &[String]| {
            let prompt = Prompt {
                relationship: name.clone(),
                warning: warnings.join("\n         "),
            };
            reporter.suspend(|| confirm::confirm_interactive(&prompt, yes).map_err(|e| e.reason()))
        })
    };
    let options = RunOptions {
        namespace: request.namespace.clone(),
        dry_run: dry_run.into(),
        timeout: request.operation.timeout,
        no_wait: request.operation.no_wait,
        progress,
        confirm,
        ..RunOptions::default()
    };
    let result = if request.abandon {
        runner::abandon(clusters, request.name, request.goal.operation(), options).await
    } else {
        runner::run(clusters, request.name, request.goal.clone(), options).await
    };
    reporter.finish();
    result.map_err(run_error)
}

/// The report for people: a dry run's plan as a table, otherwise the one-line result.
pub fn render_report(report: &RunReport) -> String {
    let command = report.operation.command();
    let name = &report.relationship;
    match report.result {
        RunResult::DryRunClient => render::plan_table(
            &format!("Plan for {command} {name} (--dry-run=client: nothing sent, nothing changed):"),
            &report.steps,
            false,
        ),
        RunResult::DryRunServer => render::plan_table(
            &format!(
                "Plan for {command} {name} (--dry-run=server: each write was sent with dryRun=All and accepted; nothing was stored):"
            ),
            &report.steps,
            true,
        ),
        _ => format!("{}\n", report.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tprotect_lifecycle::rules::describe::Description;
    use tprotect_lifecycle::{Action, Operation, Step, WaitFor};

    fn description(change: &str) -> Description {
        Description {
            cluster: "dst".into(),
            change: change.into(),
        }
    }

    #[test]
    fn progress_lines_use_the_step_descriptions() {
        let line = |event: Progress| progress_line(&event, 0, DryRun::None);
        assert_eq!(
            line(Progress::Located {
                cluster: "dst".into(),
                namespace: "ns".into(),
                name: "rel1".into()
            }),
            Some((false, "found AppMirrorRelationship ns/rel1 on dst".into()))
        );
        let (_, locked) = line(Progress::Locked {
            cluster: "dst".into(),
            namespace: "ns".into(),
            lease: "tprotect-rel1".into(),
            resumed: Some(Operation::Failback),
        })
        .unwrap();
        assert!(
            locked.contains("Lease ns/tprotect-rel1 on dst")
                && locked.contains("resuming the interrupted failback")
        );
        let action = Action::DeleteAmr {
            cluster: ClusterKey::Context,
            namespace: "ns".into(),
            name: "rel1".into(),
            uid: "u".into(),
        };
        let acted = |result: Executed, dry_run: DryRun| {
            progress_line(
                &Progress::Acted {
                    action: action.clone(),
                    description: description("delete AppMirrorRelationship ns/rel1"),
                    result,
                },
                0,
                dry_run,
            )
            .unwrap()
            .1
        };
        assert_eq!(
            acted(Executed::AlreadyDone, DryRun::None),
            "done: delete AppMirrorRelationship ns/rel1 on dst (already so)"
        );
        let server = acted(Executed::Applied, DryRun::Server);
        assert!(
            server.starts_with("would be done") && !server.starts_with("done"),
            "{server}"
        );
        let (activity, waiting) = line(Progress::Waiting {
            what: WaitFor::AmrState {
                cluster: ClusterKey::Context,
                namespace: "ns".into(),
                name: "rel1".into(),
                state: "Promoted".into(),
            },
            description: description("wait until AppMirrorRelationship ns/rel1 has status.state Promoted"),
            state: "Promoting".into(),
            error: Some("volume busy".into()),
        })
        .unwrap();
        assert!(activity, "waits drive the spinner");
        assert!(
            waiting.ends_with("has status.state Promoted on dst (now: Promoting, error: volume busy)"),
            "{waiting}"
        );
        assert_eq!(
            line(Progress::Planned {
                step: Step::Act(action),
                cluster: "dst".into()
            }),
            None,
            "planned steps are reported when performed"
        );
        assert_eq!(line(Progress::Note("how".into())), None, "notes only with -v");
        assert_eq!(
            progress_line(&Progress::Note("how".into()), 1, DryRun::None),
            Some((false, "note: how".into()))
        );
    }

    #[test]
    fn timeouts_have_their_own_exit_code() {
        let timeout = run_error(RunError::Timeout {
            waiting_for: "x".into(),
            cluster: "dst".into(),
            last_state: "Promoting".into(),
            last_error: None,
            after: std::time::Duration::from_secs(1),
        });
        assert_eq!(
            timeout.downcast_ref::<CodedError>().map(|e| e.code),
            Some(crate::exit::TIMEOUT)
        );
        let other = run_error(RunError::Internal("x".into()));
        assert!(
            other.downcast_ref::<CodedError>().is_none(),
            "anything else exits 1"
        );
    }

    #[test]
    fn results_are_rendered_without_guessing_from_the_message() {
        let report = |result: RunResult, message: &str| RunReport {
            relationship: "started".into(),
            operation: Operation::Resync,
            result,
            message: message.into(),
            steps: Vec::new(),
            actions: 0,
            amr_cluster: None,
        };
        // A relationship named "started" is not a started operation: the result says what happened.
        let done = report(RunResult::Done, "started is resynced");
        assert_eq!(render_report(&done), "started is resynced\n");
        let json = serde_json::to_value(&done).unwrap();
        assert_eq!(json["result"], "done");
        let plan = render_report(&report(RunResult::DryRunServer, ""));
        assert!(
            plan.contains("dryRun=All") && plan.contains("nothing was stored"),
            "{plan}"
        );
    }
}
