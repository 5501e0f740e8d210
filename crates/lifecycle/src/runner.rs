//! The loop of a lifecycle command: locate → plan → confirm → lock → { observe → plan → act or wait } →
//! release, returning a [`RunReport`] of what was done.
//!
//! `args -> clusters -> locate -> plan -> confirm -> acquire lock -> loop { observe -> plan -> step } -> release
//! lock -> report`. Killed at any point, the same command run again observes where things are and continues:
//! the only state kept outside the clusters' own objects is the [`OperationRecord`] in the lock. Every decision
//! (the next step, which steps need a confirmation, what a record in the lock means) is a pure function of
//! `tprotect-lifecycle-rules`; this module only moves data between the clusters and those functions.
//!
//! Test-only switch: the environment variable `TPROTECT_TEST_KILL_AFTER_STEP=k` makes the process exit with
//! status 137 (as if SIGKILLed) right after it performed its k-th action (1-based). The kill/resume tests use
//! it to stop a run after every possible step; it is not a user feature.

// RunError is large (it names cluster, namespace and object); it ends a run, so its size costs nothing.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, ObjectReference};
use kube::api::{Api, PostParams};
use kube::core::ObjectMeta;
use serde::Serialize;
use tprotect_lifecycle_rules::describe::{self, Description};
use tprotect_lifecycle_rules::plan::{may_still_appear, plan};
use tprotect_lifecycle_rules::record::{Standing, begin_record, standing};
use tprotect_lifecycle_rules::wait::{Fingerprint, observed_fingerprint};
use tprotect_lifecycle_rules::{confirm, simulate};

use crate::PlanError;
use crate::clusters::Clusters;
use crate::error::RunError;
use crate::execute::{Executed, Executor};
use crate::lock::{self, LockGuard, LockPlace};
use crate::model::*;
use crate::observe::{Located, Observer, Scope, locate};
use crate::wait::{WaitOutcome, wait_for_relevant_change};

/// Environment variable of the test-only kill switch (see the module documentation).
pub const KILL_AFTER_STEP_ENV: &str = "TPROTECT_TEST_KILL_AFTER_STEP";

/// `--dry-run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DryRun {
    #[default]
    None,
    /// Plan only: nothing is sent, no lock is taken.
    Client,
    /// Every write sent with `dryRun=All`; the run continues over a simulation of its effects.
    Server,
}

/// What happened, as it happens (the plugin prints these on stderr). Counting and results are in the
/// [`RunReport`]; these are for people watching.
#[derive(Debug, Clone)]
pub enum Progress {
    /// Where the relationship's AMR was found.
    Located {
        cluster: String,
        namespace: String,
        name: String,
    },
    /// The lock was taken (`resumed`: an interrupted operation's record was found in it).
    Locked {
        cluster: String,
        namespace: String,
        lease: String,
        resumed: Option<Operation>,
    },
    /// The next step, and the cluster it concerns.
    Planned { step: Step, cluster: String },
    /// An action was performed (or, in a server dry run, sent with dryRun=All).
    Acted {
        action: Action,
        description: Description,
        result: Executed,
    },
    /// Waiting on the cluster: what for, and the awaited object's current state and error.
    Waiting {
        what: WaitFor,
        description: Description,
        state: String,
        error: Option<String>,
    },
    /// A detail for `-v`: how something was found or decided.
    Note(String),
    /// Something the user should know that does not stop the run (a peer unreachable, a transient error).
    Warning(String),
}

/// Asks the user to confirm what the run will do (each line a warning): `Ok` to go ahead, or why not (refused,
/// no terminal to ask on). Called once, before the run writes anything, and off the async runtime.
pub type Confirm = Arc<dyn Fn(&[String]) -> Result<(), String> + Send + Sync>;
/// Receives progress events.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// How to run.
#[derive(Clone, educe::Educe)]
#[educe(Debug)]
pub struct RunOptions {
    /// `-n`: where to look for the AMR first.
    pub namespace: Option<String>,
    pub dry_run: DryRun,
    /// The whole run, waits included (`--timeout`).
    pub timeout: Duration,
    /// How long an object the controller may still be creating (the promoted Application, a moment after the
    /// AMR reports Promoted) is looked for again before the run fails.
    pub error_grace: Duration,
    /// Stop at the first wait (after acting) instead of following the operation to its end.
    pub no_wait: bool,
    #[educe(Debug(ignore))]
    pub progress: ProgressFn,
    /// Asked before a run that needs a confirmation writes anything (`--yes`: a function answering true).
    #[educe(Debug(ignore))]
    pub confirm: Confirm,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            namespace: None,
            dry_run: DryRun::None,
            timeout: Duration::from_secs(15 * 60),
            error_grace: Duration::from_secs(60),
            no_wait: false,
            progress: Arc::new(|_| {}),
            confirm: Arc::new(|_| Err("nobody to ask".into())),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunResult {
    /// The goal holds, and this run changed something to get there.
    Done,
    /// The goal already held: nothing was changed.
    AlreadyDone,
    /// `--no-wait`: the operation was started (or continued) and is under way on the clusters.
    Started,
    /// `--dry-run=client`: the plan, nothing sent.
    DryRunClient,
    /// `--dry-run=server`: every write sent with dryRun=All, nothing stored.
    DryRunServer,
    /// `--abandon`: the operation's record was given up; the clusters were left as they were.
    Abandoned,
}

/// One step of a run: the planner's step, its one description, and what became of it (`None`: planned only,
/// or a wait).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub cluster: String,
    pub change: String,
    pub step: Step,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executed: Option<Executed>,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub relationship: String,
    pub operation: Operation,
    pub result: RunResult,
    /// One line for the user.
    pub message: String,
    /// The steps: for a dry run, the whole plan; otherwise the actions performed (waits are not listed).
    pub steps: Vec<StepReport>,
    /// Actions that changed something (or, in a server dry run, were accepted).
    pub actions: usize,
    /// Context of the cluster holding the AMR at the end (none after delete).
    pub amr_cluster: Option<String>,
}

/// The namespaces a run observes: the relationship's as located, plus a setup's.
fn namespaces(located: &Located, goal: &Goal) -> BTreeSet<String> {
    let mut namespaces = located.namespaces();
    if let Goal::Setup(params) = goal {
        namespaces.extend(Scope::setup_namespaces(params));
    }
    namespaces
}

/// A short random id (6 lowercase hex digits) naming one run of an operation.
fn record_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..6].to_string()
}

fn now_text() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Sharper errors than the planner can give without knowing why a cluster is missing.
fn explain(error: PlanError, located: &Located, clusters: &Clusters, goal: &Goal) -> PlanError {
    match error {
        PlanError::NotFound { .. } | PlanError::NoRecord { .. } if !located.unreachable.is_empty() => {
            let (key, reason) = located
                .unreachable
                .iter()
                .next()
                .map(|(k, r)| (*k, r.clone()))
                .unwrap_or((ClusterKey::Peer, String::new()));
            PlanError::Unreachable {
                context: clusters.context_of(key).to_string(),
                error: reason,
                needed_for: format!("finding relationship {:?}", located.relationship),
            }
        }
        PlanError::NoRecord { name, .. } if located.amrs.is_empty() => PlanError::NotFound {
            name,
            searched: located.searched.join("; "),
        },
        PlanError::NotFound { name, .. } if !matches!(goal, Goal::Setup(_)) => PlanError::NotFound {
            name,
            searched: located.searched.join("; "),
        },
        other => other,
    }
}

/// The report entries of a plan (numbered; the final "done" is not a step), none executed yet.
pub fn plan_reports(steps: &[Step], contexts: &Contexts, relationship: &str) -> Vec<StepReport> {
    describe::plan_entries(steps, contexts, relationship)
        .into_iter()
        .map(|e| StepReport {
            index: e.index,
            cluster: e.cluster,
            change: e.change,
            step: e.step,
            executed: None,
        })
        .collect()
}

/// The whole plan, computed without writing anything and without taking the lock (`--dry-run=client`): the
/// same [`run`], stopped before its first write.
pub async fn plan_only(
    clusters: &Clusters,
    relationship: &str,
    goal: &Goal,
    namespace: Option<&str>,
) -> Result<Vec<Step>, RunError> {
    let options = RunOptions {
        namespace: namespace.map(str::to_string),
        dry_run: DryRun::Client,
        ..RunOptions::default()
    };
    let report = run(clusters, relationship, goal.clone(), options).await?;
    Ok(report.steps.into_iter().map(|s| s.step).collect())
}

/// Runs `goal` on relationship `relationship` to its end (or to the first wait with `no_wait`, or, for a dry
/// run, through its plan), and reports what was done.
pub async fn run(
    clusters: &Clusters,
    relationship: &str,
    goal: Goal,
    options: RunOptions,
) -> Result<RunReport, RunError> {
    let progress = options.progress.clone();
    let contexts = clusters.contexts();
    let operation = goal.operation();
    let report = |result: RunResult, message: String, steps: Vec<StepReport>, amr: Option<ClusterKey>| {
        let actions = steps
            .iter()
            .filter(|s| matches!(s.executed, Some(Executed::Applied)))
            .count();
        RunReport {
            relationship: relationship.to_string(),
            operation,
            result,
            message,
            steps,
            actions,
            amr_cluster: amr.map(|k| clusters.context_of(k).to_string()),
        }
    };

    let started = Instant::now();
    let deadline = started + options.timeout;
    let located = locate(clusters, relationship, options.namespace.as_deref()).await?;
    if options.dry_run != DryRun::Client {
        for (key, reason) in &located.unreachable {
            progress(Progress::Warning(format!(
                "cluster {} is unreachable ({reason}); going on without it where the operation allows",
                clusters.context_of(*key)
            )));
        }
        if let Some((key, amr)) = located.amr() {
            progress(Progress::Located {
                cluster: clusters.context_of(key).to_string(),
                namespace: amr.namespace.clone(),
                name: amr.name.clone(),
            });
        }
    }
    let base_namespaces = namespaces(&located, &goal);
    let scope_for = |observed: Option<&Observed>| {
        let mut names = base_namespaces.clone();
        if let Some(observed) = observed {
            for key in ClusterKey::BOTH {
                if let Some(amr) = observed.state(key).and_then(|s| s.amr.as_ref()) {
                    names.insert(amr.namespace.clone());
                    for (s, d) in amr.mapping() {
                        names.insert(s);
                        names.insert(d);
                    }
                }
            }
        }
        Scope::for_operation(operation, names)
    };

    // What the record in the lock (if any) means for this command, and the record this run works with.
    let mut observer = Observer::new(clusters, relationship);
    let mut observed = observer.observe(&scope_for(None)).await?;
    let recorded = located.lease.as_ref().and_then(|l| l.record.clone());
    observed.record = recorded.clone();
    let standing = standing(&observed, &goal);
    let record = match &standing {
        Standing::Blocks(error) => return Err(RunError::Plan(error.clone())),
        Standing::Resume => recorded.clone(),
        Standing::None | Standing::Finished => begin_record(&observed, operation, &record_id(), &now_text()),
        Standing::OverriddenByDelete => None,
    };
    if standing == Standing::Finished
        && let Some(finished) = &recorded
    {
        progress(Progress::Note(format!(
            "the {} started {} has finished on the clusters; its record in the lock is cleared",
            finished.operation.command(),
            finished.started
        )));
    }
    observed.record = record.clone();

    // The plan from here, as the documented controller would take it: printed by a client dry run, and what
    // is confirmed before anything is written. Bad input and "already done" change nothing, not even a Lease.
    let settle_until = Instant::now() + options.error_grace;
    let steps = loop {
        match simulate::dry_run(&observed, &goal) {
            Ok(steps) => break steps,
            Err(e) if may_still_appear(&observed, &e) && Instant::now() < settle_until.min(deadline) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                observer.forget_all();
                let record = observed.record.take();
                observed = observer.observe(&scope_for(None)).await?;
                observed.record = record;
            }
            Err(e) => return Err(RunError::Plan(explain(e, &located, clusters, &goal))),
        }
    };
    let amr_at_end = |steps: &[Step]| match steps.last() {
        Some(Step::Done(outcome)) => outcome.amr_cluster,
        _ => None,
    };
    let final_message = |steps: &[Step]| match steps.last() {
        Some(Step::Done(outcome)) => outcome.message.clone(),
        _ => String::new(),
    };
    if options.dry_run == DryRun::Client {
        let message = format!(
            "dry run (client), nothing was sent. At the end: {}",
            final_message(&steps)
        );
        return Ok(report(
            RunResult::DryRunClient,
            message,
            plan_reports(&steps, &contexts, relationship),
            amr_at_end(&steps),
        ));
    }
    if let [Step::Done(outcome)] = steps.as_slice()
        && located.lease.is_none()
    {
        return Ok(report(
            RunResult::AlreadyDone,
            format!("nothing to do: {}", outcome.message),
            Vec::new(),
            outcome.amr_cluster,
        ));
    }

    let warnings = confirm::run_warnings(&steps, &standing, recorded.as_ref(), &contexts, relationship);
    let confirmed = if warnings.is_empty() || options.dry_run == DryRun::Server {
        true
    } else {
        ask(&options.confirm, warnings.clone()).await?;
        true
    };

    let mut runner = Runner {
        clusters,
        relationship,
        goal: &goal,
        options: &options,
        located: &located,
        contexts: contexts.clone(),
        lock: None,
        observer,
        record,
        reports: Vec::new(),
        acted: 0,
        confirmed,
        kill_after: std::env::var(KILL_AFTER_STEP_ENV)
            .ok()
            .and_then(|v| v.parse().ok()),
        error_seen: None,
        missing_since: None,
        warned: None,
    };

    if options.dry_run == DryRun::Server {
        let outcome = runner.run_server_dry_run(observed, deadline).await?;
        let steps = std::mem::take(&mut runner.reports);
        return Ok(report(
            RunResult::DryRunServer,
            format!(
                "dry run (server): every write was accepted with dryRun=All, nothing was stored. At the end: {}",
                outcome.message
            ),
            steps,
            outcome.amr_cluster,
        ));
    }

    let place = lock_place(&goal, &located, &observed);
    let keeps = operation.keeps_record();
    let guard = lock::acquire(
        clusters,
        relationship,
        located.lease.as_ref(),
        &place,
        if keeps { runner.record.clone() } else { None },
    )
    .await?;
    // A record the planner no longer goes by (a finished operation's, or one a delete overrides) is replaced.
    match (&standing, keeps, runner.record.clone()) {
        (Standing::Finished, true, Some(new)) => guard.set_record(new).await?,
        (Standing::Finished, false, _) => guard.clear_record().await?,
        _ => {}
    }
    let (lock_cluster, lock_namespace, lease) = guard.location();
    let resumed_record = guard.record().await;
    progress(Progress::Locked {
        cluster: lock_cluster.to_string(),
        namespace: lock_namespace.to_string(),
        lease: lease.to_string(),
        resumed: resumed_record
            .as_ref()
            .filter(|_| standing == Standing::Resume)
            .map(|r| r.operation),
    });
    if standing != Standing::OverriddenByDelete {
        runner.record = resumed_record;
    }
    runner.lock = Some(guard);

    let result = runner.run_loop(deadline, &scope_for).await;
    let guard = runner.lock.take();
    let released = match (&result, guard) {
        (_, None) => Ok(()),
        (Ok(Finish::Done(_)), Some(guard)) => guard.release().await,
        (Ok(Finish::Started(_)), Some(guard)) => guard.release_keep_record().await,
        (Err(_), Some(guard)) => {
            // A record this run created and never acted on is bad input, not an operation to resume.
            let release = if runner.acted == 0 && guard.created_record {
                guard.release().await
            } else {
                guard.release_keep_record().await
            };
            if let Err(e) = release {
                progress(Progress::Warning(format!("releasing the lock failed: {e}")));
            }
            Ok(())
        }
    };
    let finish = result?;
    released?;
    let steps = std::mem::take(&mut runner.reports);
    let acted = steps
        .iter()
        .any(|s| matches!(s.executed, Some(Executed::Applied)));
    Ok(match finish {
        // A record resumed or cleared is something this run finished, even when its last step was already done.
        Finish::Done(outcome) if acted || located.lease.is_some() => {
            report(RunResult::Done, outcome.message, steps, outcome.amr_cluster)
        }
        Finish::Done(outcome) => report(
            RunResult::AlreadyDone,
            format!("nothing to do: {}", outcome.message),
            steps,
            outcome.amr_cluster,
        ),
        Finish::Started(outcome) => report(RunResult::Started, outcome.message, steps, outcome.amr_cluster),
    })
}

/// Asks `confirm` off the async runtime; a refusal changes nothing.
async fn ask(confirm: &Confirm, warnings: Vec<String>) -> Result<(), RunError> {
    let confirm = confirm.clone();
    let asked = warnings.clone();
    let answer = tokio::task::spawn_blocking(move || confirm(&asked))
        .await
        .map_err(|e| RunError::Internal(format!("confirmation prompt: {e}")))?;
    answer.map_err(|reason| RunError::NotConfirmed {
        what: warnings.join("; "),
        reason,
    })
}

/// Gives up the interrupted `operation` of `relationship`: after a confirmation, its record is removed from
/// the lock and kept in an Event (reason `OperationAbandoned`) beside the Lease. Nothing else is changed.
pub async fn abandon(
    clusters: &Clusters,
    relationship: &str,
    operation: Operation,
    options: RunOptions,
) -> Result<RunReport, RunError> {
    let located = locate(clusters, relationship, options.namespace.as_deref()).await?;
    let Some(lease) = located.lease.as_ref().filter(|l| l.record.is_some()) else {
        return Err(RunError::Plan(PlanError::Conflict {
            name: relationship.to_string(),
            message: format!(
                "no operation is in progress (no record in a lock {} on {} or {}); nothing to abandon",
                lock::lease_name(relationship),
                clusters.context_of(ClusterKey::Context),
                clusters.context_of(ClusterKey::Peer)
            ),
        }));
    };
    let record = lease
        .record
        .clone()
        .unwrap_or_else(|| unreachable!("filtered above"));
    if record.operation != operation {
        return Err(RunError::Plan(PlanError::Conflict {
            name: relationship.to_string(),
            message: format!(
                "the operation in progress is a {}, not a {}; to give it up: kubectl tprotect {} {relationship} --abandon",
                record.operation.command(),
                operation.command(),
                record.operation.command()
            ),
        }));
    }
    let report = |result, message: String| RunReport {
        relationship: relationship.to_string(),
        operation,
        result,
        message,
        steps: Vec::new(),
        actions: 0,
        amr_cluster: located.amr().map(|(k, _)| clusters.context_of(k).to_string()),
    };
    let what = confirm::abandon_warning(&record, relationship);
    if options.dry_run != DryRun::None {
        return Ok(report(
            if options.dry_run == DryRun::Client {
                RunResult::DryRunClient
            } else {
                RunResult::DryRunServer
            },
            format!("dry run, nothing was changed. It would {what}"),
        ));
    }
    ask(&options.confirm, vec![what]).await?;
    let place = LockPlace {
        cluster: lease.cluster,
        namespace: lease.namespace.clone(),
    };
    let guard = lock::acquire(clusters, relationship, Some(lease), &place, None).await?;
    record_abandoned(clusters, lease, &record, relationship).await?;
    guard.release().await?;
    (options.progress)(Progress::Note(format!(
        "the record was kept in an Event: kubectl --context {} -n {} get events --field-selector reason=OperationAbandoned",
        clusters.context_of(lease.cluster),
        lease.namespace
    )));
    Ok(report(
        RunResult::Abandoned,
        format!(
            "gave up the {} of {relationship} started {}; both clusters are as it left them (kubectl tprotect status {relationship})",
            record.operation.command(),
            record.started
        ),
    ))
}

/// The record of an abandoned operation, kept in an Event beside the Lease (who, when, and the record itself).
async fn record_abandoned(
    clusters: &Clusters,
    lease: &lock::LeaseInfo,
    record: &OperationRecord,
    relationship: &str,
) -> Result<(), RunError> {
    let handle = clusters.get(lease.cluster);
    let client = handle.client().map_err(|e| RunError::Internal(e.to_string()))?;
    let api: Api<Event> = Api::namespaced(client.clone(), &lease.namespace);
    let record_json = serde_json::to_string(record).unwrap_or_default();
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now());
    let event = Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-abandoned-", lock::lease_name(relationship))),
            namespace: Some(lease.namespace.clone()),
            labels: Some(
                [(
                    tprotect_api::RELATIONSHIP_LABEL.to_string(),
                    relationship.to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("coordination.k8s.io/v1".into()),
            kind: Some("Lease".into()),
            name: Some(lease.name.clone()),
            namespace: Some(lease.namespace.clone()),
            uid: Some(lease.uid.clone()),
            ..Default::default()
        },
        reason: Some("OperationAbandoned".into()),
        type_: Some("Warning".into()),
        message: Some(format!(
            "{} gave up the {} of relationship {relationship} started {} (run {}); record: {record_json}",
            lock::holder_identity(),
            record.operation.command(),
            record.started,
            record.id
        )),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        source: Some(k8s_openapi::api::core::v1::EventSource {
            component: Some("kubectl-tprotect".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    api.create(&PostParams::default(), &event)
        .await
        .map(|_| ())
        .map_err(|e| RunError::kube(&handle.context, "create", "events", &lease.namespace, "", e))
}

/// Where a new Lease goes: the AMR's namespace on its cluster; for a setup, the destination namespace if it
/// exists, else the source namespace (it must exist).
fn lock_place(goal: &Goal, located: &Located, observed: &Observed) -> LockPlace {
    if let Goal::Setup(params) = goal {
        let destination = params.source.other();
        let exists = observed
            .state(destination)
            .is_some_and(|s| s.namespaces.contains_key(&params.destination_namespace));
        return if exists {
            LockPlace {
                cluster: destination,
                namespace: params.destination_namespace.clone(),
            }
        } else {
            LockPlace {
                cluster: params.source,
                namespace: params.source_namespace.clone(),
            }
        };
    }
    match located.amr() {
        Some((key, amr)) => LockPlace {
            cluster: key,
            namespace: amr.namespace.clone(),
        },
        None => LockPlace {
            cluster: ClusterKey::Context,
            namespace: located
                .namespaces()
                .into_iter()
                .next()
                .unwrap_or_else(|| "default".into()),
        },
    }
}

/// The kubeconfig context a step concerns.
pub fn step_context(clusters: &Clusters, step: &Step) -> String {
    let key = match step {
        Step::Act(action) => action.cluster(),
        Step::Wait(wait) => Some(wait.cluster()),
        Step::Done(outcome) => outcome.amr_cluster,
    };
    key.map(|k| clusters.context_of(k).to_string())
        .unwrap_or_default()
}

enum Finish {
    Done(Outcome),
    /// `--no-wait`: started, not finished.
    Started(Outcome),
}

struct Runner<'a> {
    clusters: &'a Clusters,
    relationship: &'a str,
    goal: &'a Goal,
    options: &'a RunOptions,
    located: &'a Located,
    contexts: Contexts,
    lock: Option<LockGuard>,
    observer: Observer<'a>,
    record: Option<OperationRecord>,
    reports: Vec<StepReport>,
    acted: usize,
    /// The run's warnings were confirmed (or it needed none).
    confirmed: bool,
    kill_after: Option<usize>,
    /// The awaited object's error last reported.
    error_seen: Option<String>,
    /// Since when the planner has reported an object missing right after a wait (the controller may still be
    /// creating it).
    missing_since: Option<Instant>,
    /// The last wait reported, to report each distinct one once.
    warned: Option<(WaitFor, Option<Fingerprint>)>,
}

impl<'a> Runner<'a> {
    fn progress(&self, event: Progress) {
        (self.options.progress)(event)
    }

    fn describe(&self, step: &Step) -> Description {
        describe::step(step, &self.contexts, self.relationship)
    }

    fn plan(&self, observed: &Observed) -> Result<Step, RunError> {
        plan(observed, self.goal)
            .map_err(|e| RunError::Plan(explain(e, self.located, self.clusters, self.goal)))
    }

    fn after_action(&mut self) {
        self.acted += 1;
        if self.kill_after == Some(self.acted) {
            // Test-only: die as a SIGKILL would, right after the k-th action (see the module docs).
            std::process::exit(137);
        }
    }

    async fn run_loop(
        &mut self,
        deadline: Instant,
        scope_for: &dyn Fn(Option<&Observed>) -> Scope,
    ) -> Result<Finish, RunError> {
        let mut last: Option<Observed> = None;
        let mut repeated: Option<(Action, u32)> = None;
        loop {
            if let Some(lock) = &self.lock {
                lock.check().await?;
            }
            let mut observed = self.observer.observe(&scope_for(last.as_ref())).await?;
            observed.record = self.record.clone();
            let step = match self.plan(&observed) {
                Ok(step) => {
                    self.missing_since = None;
                    step
                }
                // An object the controller creates (the promoted Application) may appear a moment after the
                // state it reports: NetApp documents no order. Look again for a while.
                Err(RunError::Plan(e))
                    if may_still_appear(&observed, &e) && self.still_settling(deadline) =>
                {
                    self.observer.forget_all();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let cluster = step_context(self.clusters, &step);
            match step {
                Step::Done(outcome) => {
                    self.progress(Progress::Planned {
                        step: Step::Done(outcome.clone()),
                        cluster,
                    });
                    return Ok(Finish::Done(outcome));
                }
                Step::Act(action) => {
                    self.progress(Progress::Planned {
                        step: Step::Act(action.clone()),
                        cluster: cluster.clone(),
                    });
                    let description = self.describe(&Step::Act(action.clone()));
                    if Instant::now() >= deadline {
                        return Err(self.timeout_before(&description, &observed));
                    }
                    // A step needing a confirmation that the plan confirmed up front did not show (the clusters
                    // changed since): refused rather than performed unasked.
                    if !self.confirmed
                        && let Some(warning) =
                            confirm::action_warning(&action, &self.contexts, self.relationship)
                    {
                        return Err(RunError::NotConfirmed {
                            what: warning,
                            reason: "the clusters changed since the plan was confirmed".into(),
                        });
                    }
                    if let Some(lock) = &self.lock {
                        lock.check().await?;
                    }
                    // The same action again right after it was done: the observation does not show its effect,
                    // and acting again would change nothing. A bug to report, not a loop to spin in.
                    if let Some((previous, times)) = &mut repeated
                        && *previous == action
                    {
                        *times += 1;
                        if *times >= 3 {
                            return Err(RunError::Internal(format!(
                                "the plan does not move on: {description} was done {times} times and is planned again"
                            )));
                        }
                    } else {
                        repeated = Some((action.clone(), 0));
                    }
                    let result = self.perform(&action, &observed).await?;
                    self.error_seen = None;
                    match (&result, changes_stable_parts(&action)) {
                        (Executed::Conflict(_), _) => self.observer.forget_all(),
                        (_, Some(key)) => self.observer.forget(key),
                        _ => {}
                    }
                    self.record_step(Step::Act(action.clone()), description.clone(), result.clone());
                    self.progress(Progress::Acted {
                        action,
                        description,
                        result,
                    });
                    self.after_action();
                }
                Step::Wait(wait) => {
                    let seen = observed_fingerprint(&observed, &wait);
                    let description = self.describe(&Step::Wait(wait.clone()));
                    self.report_wait(&wait, &description, seen.as_ref());
                    if self.options.no_wait {
                        return Ok(Finish::Started(Outcome {
                            message: format!(
                                "{} started; now: {description}. Run the same command again to follow it",
                                self.goal.operation().command(),
                            ),
                            amr_cluster: observed.amr_location().ok().flatten().map(|(k, _)| k),
                        }));
                    }
                    self.report_error(&wait, seen.as_ref(), &cluster);
                    let until = deadline;
                    if Instant::now() >= deadline {
                        return Err(self.timeout(&description, seen.as_ref(), &cluster));
                    }
                    let progress = self.options.progress.clone();
                    let (what, shown) = (wait.clone(), description.clone());
                    let report = move |now: &Fingerprint| {
                        progress(Progress::Waiting {
                            what: what.clone(),
                            description: shown.clone(),
                            state: now.state.clone(),
                            error: now.error.clone(),
                        })
                    };
                    // Whatever the controller did meanwhile (a promotion creates namespaces) is read afresh.
                    self.observer.forget_all();
                    match wait_for_relevant_change(self.clusters, &wait, seen.as_ref(), until, &report)
                        .await?
                    {
                        WaitOutcome::Changed(_) => {}
                        WaitOutcome::Deadline(last) => {
                            return Err(self.timeout(&description, last.as_ref(), &cluster));
                        }
                    }
                }
            }
            last = Some(observed);
        }
    }

    /// Whether a missing object may still be on its way: within the error grace since first seen missing.
    fn still_settling(&mut self, deadline: Instant) -> bool {
        let since = *self.missing_since.get_or_insert_with(Instant::now);
        Instant::now() < (since + self.options.error_grace).min(deadline)
    }

    fn record_step(&mut self, step: Step, description: Description, executed: Executed) {
        self.reports.push(StepReport {
            index: Some(self.reports.len() + 1),
            cluster: description.cluster,
            change: description.change,
            step,
            executed: Some(executed),
        });
    }

    /// Performs an action for real (or, for a server dry run, sent with dryRun=All).
    async fn perform(&mut self, action: &Action, observed: &Observed) -> Result<Executed, RunError> {
        if let Action::RecordDestinationApp {
            cluster,
            namespace,
            name,
            found_by,
        } = action
        {
            let mut record = self
                .record
                .clone()
                .ok_or_else(|| RunError::Internal("no operation record to note the application in".into()))?;
            tprotect_lifecycle_rules::objects::note_destination_app(
                &mut record,
                observed,
                *cluster,
                namespace,
                name,
            );
            self.progress(Progress::Note(format!(
                "the promoted Application {namespace}/{name} on {}: found {}",
                self.clusters.context_of(*cluster),
                found_by.describe()
            )));
            if let Some(lock) = &self.lock {
                lock.set_record(record.clone()).await?;
            }
            self.record = Some(record);
            return Ok(Executed::Applied);
        }
        let executor = Executor::new(
            self.clusters,
            self.relationship,
            self.options.dry_run == DryRun::Server,
        );
        let result = executor.execute(action).await?;
        if let Executed::Conflict(reason) = &result {
            self.progress(Progress::Warning(format!("{reason}; observing again")));
        }
        Ok(result)
    }

    fn report_wait(&mut self, wait: &WaitFor, description: &Description, seen: Option<&Fingerprint>) {
        let key = (wait.clone(), seen.cloned());
        if self.warned.as_ref() == Some(&key) {
            return;
        }
        self.warned = Some(key);
        self.progress(Progress::Waiting {
            what: wait.clone(),
            description: description.clone(),
            state: seen.map(|f| f.state.clone()).unwrap_or_default(),
            error: seen.and_then(|f| f.error.clone()),
        });
    }

    /// Reports the awaited object's error, each distinct text once. An error alone never fails a run: NetApp
    /// documents `status.error` as the most recent error, "may not be permanent, so progress may continue" (a
    /// controller may report progress there through a long transfer). Only a failure state does, or the timeout,
    /// whose message carries the last error.
    fn report_error(&mut self, wait: &WaitFor, seen: Option<&Fingerprint>, cluster: &str) {
        let Some(error) = seen.and_then(|f| f.error.clone()) else {
            self.error_seen = None;
            return;
        };
        if self.error_seen.as_ref() == Some(&error) {
            return;
        }
        let (kind, namespace, name) = describe::wait_object(wait);
        self.progress(Progress::Warning(format!(
            "{kind} {namespace}/{name} on {cluster} reports (it may be transient; waiting on): {error}"
        )));
        self.error_seen = Some(error);
    }

    fn timeout(&self, description: &Description, seen: Option<&Fingerprint>, cluster: &str) -> RunError {
        RunError::Timeout {
            waiting_for: description.change.clone(),
            cluster: cluster.to_string(),
            last_state: seen
                .map(|f| {
                    if f.state.is_empty() {
                        "(no state yet)".to_string()
                    } else {
                        f.state.clone()
                    }
                })
                .unwrap_or_else(|| "(object not found)".into()),
            last_error: seen.and_then(|f| f.error.clone()),
            after: self.options.timeout,
        }
    }

    fn timeout_before(&self, description: &Description, observed: &Observed) -> RunError {
        let amr = observed.amr_location().ok().flatten();
        RunError::Timeout {
            waiting_for: format!("the next step ({})", description.change),
            cluster: description.cluster.clone(),
            last_state: amr.map(|(_, a)| a.state().to_string()).unwrap_or_default(),
            last_error: amr.and_then(|(_, a)| a.error().map(str::to_string)),
            after: self.options.timeout,
        }
    }

    /// `--dry-run=server`: each write sent with dryRun=All; nothing persists, so the run goes on over a
    /// simulation of the effects (and of the controller), from the real observation.
    async fn run_server_dry_run(
        &mut self,
        mut observed: Observed,
        deadline: Instant,
    ) -> Result<Outcome, RunError> {
        for _ in 0..64 {
            if Instant::now() >= deadline {
                return Err(RunError::Timeout {
                    waiting_for: "the dry run".into(),
                    cluster: String::new(),
                    last_state: String::new(),
                    last_error: None,
                    after: self.options.timeout,
                });
            }
            let step = self.plan(&observed)?;
            let cluster = step_context(self.clusters, &step);
            self.progress(Progress::Planned {
                step: step.clone(),
                cluster: cluster.clone(),
            });
            let description = self.describe(&step);
            match step {
                Step::Done(outcome) => return Ok(outcome),
                Step::Act(action) => {
                    let result = if action.writes() {
                        self.perform(&action, &observed).await?
                    } else {
                        Executed::NotSent("changes only this run's record in the lock".into())
                    };
                    if let Executed::NotSent(reason) = &result {
                        self.progress(Progress::Warning(format!("not sent: {reason}")));
                    }
                    simulate::apply(&mut observed, &action);
                    self.record_step(Step::Act(action.clone()), description.clone(), result.clone());
                    self.progress(Progress::Acted {
                        action,
                        description,
                        result,
                    });
                }
                Step::Wait(_) => simulate::controller(&mut observed),
            }
        }
        Err(RunError::Internal("the dry run did not converge".into()))
    }
}

/// The cluster whose namespaces, AppVaults, Secrets or saved schedules `action` changes, if any.
fn changes_stable_parts(action: &Action) -> Option<ClusterKey> {
    match action {
        Action::CreateNamespace { cluster, .. }
        | Action::RemoveDestinationSchedules { cluster, .. }
        | Action::RestoreSchedules { cluster, .. } => Some(*cluster),
        Action::CopySecret { to, .. } | Action::CopyAppVault { to, .. } => Some(*to),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tprotect_lifecycle_rules::plan::abandon_hint;

    #[test]
    fn an_operation_in_progress_is_refused_naming_every_way_out() {
        let error = PlanError::OtherOperationInProgress {
            name: "rel1".into(),
            in_progress: "reverse-resync".into(),
            started: "2026-12-01T10:00:00Z".into(),
        };
        let text = error.to_string();
        for way_out in [
            "kubectl tprotect reverse-resync rel1",
            "kubectl tprotect reverse-resync rel1 --abandon",
            "kubectl tprotect delete rel1",
        ] {
            assert!(text.contains(way_out), "{way_out:?} missing from {text}");
        }
    }

    #[test]
    fn abandon_hint_names_the_command() {
        assert_eq!(
            abandon_hint("rel1", Operation::Failback),
            "To give the failback up, leaving both clusters as they are: kubectl tprotect failback rel1 --abandon"
        );
    }
}
