//! What the lifecycle commands share: the two clusters from `--context`/`--peer-context`, running an
//! operation with the lifecycle runner (progress on stderr, the result on stdout), dry runs that print the
//! plan, confirmation of destructive steps before anything is written, and exit codes.

use std::sync::{Arc, Mutex};

use anyhow::anyhow;
use tprotect_lifecycle::execute::Executed;
use tprotect_lifecycle::runner::{self, describe_action};
use tprotect_lifecycle::{ClusterKey, Clusters, Goal, Outcome, Progress, RunError, RunOptions, Step};

use crate::cli::{DryRun, GlobalArgs};
use crate::confirm::{self, Prompt};
use crate::exit::{CodedError, USAGE};
use crate::output;
use crate::progress::Progress as Reporter;
use crate::render::{self, Contexts};

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

/// The clusters of `--context` and `--peer-context`, for commands on an existing relationship. A context
/// that is not in the kubeconfig, or whose credentials cannot be loaded, is bad input: refused before any
/// request. A cluster that is merely down is not (failover must work without its peer).
pub async fn connect(global: &GlobalArgs) -> anyhow::Result<Clusters> {
    let Some(peer) = global.peer_context.as_deref() else {
        return Err(usage(
            "pass the other cluster of the relationship with --peer-context CONTEXT (the order of --context and --peer-context does not matter)",
        ));
    };
    connect_contexts(global, global.context.as_deref(), Some(peer)).await
}

/// Like [`connect`], but the peer is optional (`status` can show one side).
pub async fn connect_optional_peer(global: &GlobalArgs) -> anyhow::Result<Clusters> {
    connect_contexts(global, global.context.as_deref(), global.peer_context.as_deref()).await
}

/// For `setup`: the source as `--context`, the destination as `--peer-context`.
pub async fn connect_roles(global: &GlobalArgs, source: &str, destination: &str) -> anyhow::Result<Clusters> {
    if global.context.is_some() || global.peer_context.is_some() {
        return Err(usage(
            "setup names the clusters by role: use --source-context and --destination-context (not --context/--peer-context)",
        ));
    }
    connect_contexts(global, Some(source), Some(destination)).await
}

async fn connect_contexts(
    global: &GlobalArgs,
    context: Option<&str>,
    peer: Option<&str>,
) -> anyhow::Result<Clusters> {
    let clusters = Clusters::from_kubeconfig(global.kubeconfig.as_deref(), context, peer)
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

pub fn contexts(clusters: &Clusters) -> Contexts {
    Contexts {
        context: clusters.context.context.clone(),
        peer: clusters.peer.context.clone(),
    }
}

/// The namespace a command works in on cluster `key`: `-n`, else the context's default.
pub fn namespace(clusters: &Clusters, key: ClusterKey, global: &GlobalArgs) -> String {
    global
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
pub async fn locate(clusters: &Clusters, global: &GlobalArgs, name: &str) -> anyhow::Result<Found> {
    let located = tprotect_lifecycle::observe::locate(clusters, name, global.namespace.as_deref())
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
        None => {
            let mut message = format!(
                "relationship {name:?} not found: no AppMirrorRelationship of that name (or labelled tprotect.io/relationship={name}) in {}",
                located.searched.join("; ")
            );
            for (key, reason) in &located.unreachable {
                message.push_str(&format!(
                    "; cluster {} is unreachable: {reason}",
                    clusters.context_of(*key)
                ));
            }
            Err(anyhow!(message))
        }
    }
}

/// The lifecycle runner's options from the global flags.
fn options(global: &GlobalArgs, progress: runner::ProgressFn, confirm: runner::Confirm) -> RunOptions {
    RunOptions {
        namespace: global.namespace.clone(),
        dry_run: match global.dry_run {
            DryRun::None => tprotect_lifecycle::DryRun::None,
            DryRun::Client => tprotect_lifecycle::DryRun::Client,
            DryRun::Server => tprotect_lifecycle::DryRun::Server,
        },
        timeout: global.timeout,
        no_wait: global.no_wait,
        progress,
        confirm,
        ..RunOptions::default()
    }
}

/// One progress event as a line on stderr.
pub fn progress_line(event: &Progress, clusters: &Clusters) -> Option<(bool, String)> {
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
        Progress::Acted { action, result, .. } => {
            let what = describe_action(action, clusters);
            (
                false,
                match result {
                    Executed::Applied => format!("done: {what}"),
                    Executed::AlreadyDone => format!("done: {what} (already so)"),
                    Executed::Conflict(reason) => {
                        format!("changed meanwhile: {what} ({reason}); looking again")
                    }
                    Executed::NotSent(reason) => format!("not sent: {what} ({reason})"),
                },
            )
        }
        Progress::Waiting {
            what,
            cluster,
            state,
            error,
        } => {
            let mut now = if state.is_empty() {
                "no state yet".to_string()
            } else {
                state.clone()
            };
            if let Some(error) = error {
                now.push_str(&format!(", error: {error}"));
            }
            let line = format!(
                "waiting for {} on {cluster} (now: {now})",
                tprotect_lifecycle::wait::describe_wait(what)
            );
            (true, line)
        }
        Progress::Warning(text) => (false, format!("warning: {text}")),
    })
}

/// The result of an operation, as data.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Result_ {
    relationship: String,
    operation: String,
    /// `done`, `already-done`, `started` (`--no-wait`), `dry-run`.
    result: String,
    message: String,
    /// Context of the cluster holding the AMR at the end (none after delete).
    amr_cluster: Option<String>,
    /// Actions performed.
    actions: usize,
}

/// The heading of a printed plan.
fn plan_heading(goal: &Goal, name: &str, dry_run: DryRun) -> String {
    match dry_run {
        DryRun::Server => format!(
            "Plan for {} {name} (--dry-run=server: each write sent with dryRun=All, nothing stored):",
            goal.operation().command()
        ),
        _ => format!(
            "Plan for {} {name} (--dry-run=client: nothing sent, nothing changed):",
            goal.operation().command()
        ),
    }
}

/// Asks before any write when the plan holds a step that discards data. Refused: nothing was written, not
/// even the lock. `Ok(true)`: such a step was confirmed.
fn confirm_up_front(
    steps: &[Step],
    global: &GlobalArgs,
    name: &str,
    clusters: &Clusters,
) -> anyhow::Result<bool> {
    let mut confirmed = false;
    for step in steps {
        if let Step::Act(action) = step
            && action.discards_data()
        {
            let prompt = Prompt {
                relationship: name.to_string(),
                warning: format!("{}.", describe_action(action, clusters)),
            };
            confirm::confirm_interactive(&prompt, global.yes).map_err(|e| anyhow!(e))?;
            confirmed = true;
        }
    }
    Ok(confirmed)
}

/// Runs `goal` on relationship `name`: `--dry-run=client` prints the plan; otherwise the runner performs it
/// (server dry run: with dryRun=All), reporting progress on stderr and the result (or the plan) on stdout.
pub async fn run_goal(global: &GlobalArgs, clusters: Clusters, name: &str, goal: Goal) -> anyhow::Result<()> {
    let reporter = Arc::new(Reporter::stderr());
    let contexts = contexts(&clusters);

    if global.dry_run == DryRun::Client {
        let steps = runner::plan_only(&clusters, name, &goal, global.namespace.as_deref())
            .await
            .map_err(run_error)?;
        reporter.finish();
        let entries = render::plan_entries(&steps, &contexts, name);
        let heading = plan_heading(&goal, name, global.dry_run);
        return output::print_data(global.output, &entries, || render::plan_table(&heading, &entries));
    }

    // A destructive step is confirmed before anything is written (a refusal must change nothing).
    let mut confirmed = false;
    if global.dry_run == DryRun::None && !global.yes && matches!(goal, Goal::Resync) {
        let steps = runner::plan_only(&clusters, name, &goal, global.namespace.as_deref())
            .await
            .map_err(run_error)?;
        confirmed = confirm_up_front(&steps, global, name, &clusters)?;
    }

    let planned: Arc<Mutex<Vec<Step>>> = Arc::default();
    let acted = Arc::new(Mutex::new(0usize));
    let progress: runner::ProgressFn = {
        let (reporter, clusters, planned, acted) =
            (reporter.clone(), clusters.clone(), planned.clone(), acted.clone());
        Arc::new(move |event: Progress| {
            match &event {
                Progress::Planned { step, .. } => planned
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(step.clone()),
                Progress::Acted { .. } => *acted.lock().unwrap_or_else(|e| e.into_inner()) += 1,
                _ => {}
            }
            if let Some((activity, line)) = progress_line(&event, &clusters) {
                if activity {
                    reporter.activity(&line)
                } else {
                    reporter.line(&line)
                }
            }
        })
    };
    // Confirmed above (or --yes); a discarding step that appears only now (the clusters changed since the
    // plan) is refused rather than performed unasked.
    let confirmed_steps = confirmed || global.yes || global.dry_run == DryRun::Server;
    let confirm: runner::Confirm = Arc::new(move |_, _| confirmed_steps);
    let result = runner::run(&clusters, name, goal.clone(), options(global, progress, confirm)).await;
    reporter.finish();
    let outcome: Outcome = result.map_err(run_error)?;
    let actions = *acted.lock().unwrap_or_else(|e| e.into_inner());

    if global.dry_run == DryRun::Server {
        let steps = planned.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let entries = render::plan_entries(&steps, &contexts, name);
        let heading = plan_heading(&goal, name, global.dry_run);
        return output::print_data(global.output, &entries, || render::plan_table(&heading, &entries));
    }

    let result = if global.no_wait && outcome.message.contains("started") && actions > 0 {
        "started"
    } else if actions == 0 {
        "already-done"
    } else {
        "done"
    };
    let message = if result == "already-done" {
        format!("nothing to do: {}", outcome.message)
    } else {
        outcome.message.clone()
    };
    let data = Result_ {
        relationship: name.to_string(),
        operation: goal.operation().command().to_string(),
        result: result.to_string(),
        message: message.clone(),
        amr_cluster: outcome.amr_cluster.map(|k| clusters.context_of(k).to_string()),
        actions,
    };
    output::print_data(global.output, &data, || format!("{message}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tprotect_lifecycle::{Action, ClusterHandle, Operation, WaitFor};

    fn clusters() -> Clusters {
        Clusters::new(
            ClusterHandle::unusable("dst", "test"),
            ClusterHandle::unusable("src", "test"),
        )
    }

    #[test]
    fn progress_lines_name_the_cluster_and_the_object() {
        let clusters = clusters();
        let line = |event: Progress| progress_line(&event, &clusters);
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
        let (activity, acted) = line(Progress::Acted {
            action: action.clone(),
            cluster: "dst".into(),
            result: Executed::AlreadyDone,
        })
        .unwrap();
        assert!(!activity);
        assert!(
            acted.starts_with("done: delete AppMirrorRelationship ns/rel1 on dst"),
            "{acted}"
        );
        assert!(acted.ends_with("(already so)"), "{acted}");
        let (activity, waiting) = line(Progress::Waiting {
            what: WaitFor::AmrState {
                cluster: ClusterKey::Context,
                namespace: "ns".into(),
                name: "rel1".into(),
                state: "Promoted".into(),
            },
            cluster: "dst".into(),
            state: "Promoting".into(),
            error: Some("volume busy".into()),
        })
        .unwrap();
        assert!(activity, "waits drive the spinner");
        assert!(
            waiting.contains("on dst (now: Promoting, error: volume busy)"),
            "{waiting}"
        );
        assert_eq!(
            line(Progress::Warning("cluster src is unreachable".into())),
            Some((false, "warning: cluster src is unreachable".into()))
        );
        assert_eq!(
            line(Progress::Planned {
                step: Step::Act(action),
                cluster: "dst".into()
            }),
            None,
            "planned steps are reported when performed"
        );
    }

    #[test]
    fn plan_headings_say_what_a_dry_run_does() {
        let client = plan_heading(&Goal::Failback, "rel1", DryRun::Client);
        assert!(
            client.starts_with("Plan for failback rel1") && client.contains("nothing changed"),
            "{client}"
        );
        let server = plan_heading(&Goal::Delete, "rel1", DryRun::Server);
        assert!(server.contains("dryRun=All"), "{server}");
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
}
