//! The loop of a lifecycle command: locate → lock → { observe → plan → act or wait } → release.
//!
//! `args -> clusters -> locate -> acquire lock -> loop { observe -> plan -> step } -> release lock -> result`.
//! Killed at any point, the same command run again observes where things are and continues: the only state
//! kept outside the clusters' own objects is the [`OperationRecord`] in the lock.
//!
//! Test-only switch: the environment variable `TPROTECT_TEST_KILL_AFTER_STEP=k` makes the process exit with
//! status 137 (as if SIGKILLed) right after it performed its k-th action (1-based). The kill/resume tests use
//! it to stop a run after every possible step; it is not a user feature.

// RunError is large (it names cluster, namespace and object); it ends a run, so its size costs nothing.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tprotect_api::DISCARD_DESTINATION_CHANGES_ANNOTATION;

use crate::PlanError;
use crate::clusters::Clusters;
use crate::error::RunError;
use crate::execute::{Executed, Executor, note_destination_app};
use crate::lock::{self, LockGuard, LockPlace};
use crate::model::*;
use crate::observe::{Located, Observer, Scope, locate, observe};
use crate::plan::plan;
use crate::simulate;
use crate::wait::{Fingerprint, WaitOutcome, describe_wait, observed_fingerprint, wait_for_relevant_change};

/// Environment variable of the test-only kill switch (see the module documentation).
pub const KILL_AFTER_STEP_ENV: &str = "TPROTECT_TEST_KILL_AFTER_STEP";

/// `--dry-run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DryRun {
    #[default]
    None,
    /// Plan only: nothing is sent, no lock is taken.
    Client,
    /// Every write sent with `dryRun=All`; the run continues over a simulation of its effects.
    Server,
}

/// What happened, as it happens (the plugin prints these on stderr).
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
    /// An action was performed.
    Acted {
        action: Action,
        cluster: String,
        result: Executed,
    },
    /// Waiting on the cluster: what for, and the awaited object's current state and error.
    Waiting {
        what: WaitFor,
        cluster: String,
        state: String,
        error: Option<String>,
    },
    /// Something the user should know that does not stop the run (a peer unreachable, a transient error).
    Warning(String),
}

/// Asks the user to confirm a destructive action (`what` describes it); true to go ahead.
pub type Confirm = Arc<dyn Fn(&Action, &str) -> bool + Send + Sync>;
/// Receives progress events.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// How to run.
#[derive(Clone)]
pub struct RunOptions {
    /// `-n`: where to look for the AMR first.
    pub namespace: Option<String>,
    pub dry_run: DryRun,
    /// The whole run, waits included (`--timeout`).
    pub timeout: Duration,
    /// A `status.error` unchanged for this long while waiting fails the run; shorter ones are warnings.
    pub error_grace: Duration,
    /// Stop at the first wait (after acting) instead of following the operation to its end.
    pub no_wait: bool,
    pub progress: ProgressFn,
    /// Called (off the async runtime) before each destructive action.
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
            confirm: Arc::new(|_, _| false),
        }
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("namespace", &self.namespace)
            .field("dry_run", &self.dry_run)
            .field("timeout", &self.timeout)
            .field("error_grace", &self.error_grace)
            .field("no_wait", &self.no_wait)
            .finish_non_exhaustive()
    }
}

/// The record an operation that needs one starts with: the AMR as observed now, on the cluster holding it.
pub fn new_record(operation: Operation, observed: &Observed) -> Option<OperationRecord> {
    let (key, amr) = observed.amr_location().ok().flatten()?;
    let annotations = amr
        .annotations
        .iter()
        .filter(|(k, _)| {
            k.starts_with("tprotect.io/") && k.as_str() != DISCARD_DESTINATION_CHANGES_ANNOTATION
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Some(OperationRecord {
        operation,
        id: record_id(),
        initial_destination: observed.state(key)?.cluster_id.clone(),
        amr_namespace: amr.namespace.clone(),
        spec: amr.spec.clone(),
        annotations,
        started: jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        destination_apps: Default::default(),
    })
}

/// A short random id (6 lowercase hex digits) naming one run of an operation.
fn record_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..6].to_string()
}

/// The namespaces a run observes: the relationship's as located, plus a setup's.
fn namespaces(located: &Located, goal: &Goal) -> BTreeSet<String> {
    let mut namespaces = located.namespaces();
    if let Goal::Setup(params) = goal {
        namespaces.extend(Scope::setup_namespaces(params));
    }
    namespaces
}

/// The record the planner sees before the lock is taken (and in dry runs): the lock's, or a new one.
fn candidate_record(goal: &Goal, located: &Located, observed: &Observed) -> Option<OperationRecord> {
    let existing = located.lease.as_ref().and_then(|l| l.record.clone());
    if existing.is_some() {
        return existing;
    }
    if goal.operation().needs_record() {
        new_record(goal.operation(), observed)
    } else {
        None
    }
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

/// The whole plan, computed without writing anything and without taking the lock (`--dry-run=client`): the
/// planner walked over a simulation of each step's effect, starting from what the clusters hold now.
pub async fn plan_only(
    clusters: &Clusters,
    relationship: &str,
    goal: &Goal,
    namespace: Option<&str>,
) -> Result<Vec<Step>, RunError> {
    let located = locate(clusters, relationship, namespace).await?;
    let scope = Scope::for_operation(goal.operation(), namespaces(&located, goal));
    let mut observed = observe(clusters, relationship, &scope).await?;
    observed.record = candidate_record(goal, &located, &observed);
    simulate::dry_run(&observed, goal).map_err(|e| RunError::Plan(explain(e, &located, clusters, goal)))
}

/// Runs `goal` on relationship `relationship` to its end (or to the first wait with `no_wait`).
pub async fn run(
    clusters: &Clusters,
    relationship: &str,
    goal: Goal,
    options: RunOptions,
) -> Result<Outcome, RunError> {
    let progress = options.progress.clone();
    if options.dry_run == DryRun::Client {
        let steps = plan_only(clusters, relationship, &goal, options.namespace.as_deref()).await?;
        let mut outcome = None;
        for step in steps {
            if let Step::Done(done) = &step {
                outcome = Some(done.clone());
            }
            progress(Progress::Planned {
                cluster: step_context(clusters, &step),
                step,
            });
        }
        let done = outcome.ok_or_else(|| RunError::Internal("the dry run did not end".into()))?;
        return Ok(Outcome {
            message: format!("dry run (client), nothing was sent. At the end: {}", done.message),
            amr_cluster: done.amr_cluster,
        });
    }

    let started = Instant::now();
    let deadline = started + options.timeout;
    let located = locate(clusters, relationship, options.namespace.as_deref()).await?;
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
        Scope::for_operation(goal.operation(), names)
    };

    // Plan once before taking the lock: bad input and "already done" change nothing, not even a Lease.
    let mut observer = Observer::new(clusters, relationship);
    let mut observed = observer.observe(&scope_for(None)).await?;
    observed.record = candidate_record(&goal, &located, &observed);
    let first = plan(&observed, &goal).map_err(|e| RunError::Plan(explain(e, &located, clusters, &goal)))?;
    if let Step::Done(outcome) = &first
        && located.lease.is_none()
    {
        progress(Progress::Planned {
            step: first.clone(),
            cluster: step_context(clusters, &first),
        });
        return Ok(outcome.clone());
    }

    let mut runner = Runner {
        clusters,
        relationship,
        goal: &goal,
        options: &options,
        located: &located,
        lock: None,
        observer,
        record: observed.record.clone(),
        acted: 0,
        kill_after: std::env::var(KILL_AFTER_STEP_ENV)
            .ok()
            .and_then(|v| v.parse().ok()),
        error_seen: None,
        warned: None,
    };

    if options.dry_run == DryRun::Server {
        return runner.run_server_dry_run(observed, deadline).await;
    }

    let place = lock_place(&goal, &located, &observed);
    let guard = lock::acquire(
        clusters,
        relationship,
        located.lease.as_ref(),
        &place,
        if goal.operation().needs_record() {
            runner.record.clone()
        } else {
            None
        },
    )
    .await?;
    let (lock_cluster, lock_namespace, lease) = guard.location();
    let resumed_record = guard.record().await;
    progress(Progress::Locked {
        cluster: lock_cluster.to_string(),
        namespace: lock_namespace.to_string(),
        lease: lease.to_string(),
        resumed: resumed_record
            .as_ref()
            .filter(|_| !guard.created_record)
            .map(|r| r.operation),
    });
    runner.record = resumed_record;
    runner.lock = Some(guard);

    let result = runner.run_loop(deadline, &scope_for).await;
    let guard = runner.lock.take();
    match (&result, guard) {
        (_, None) => result.map(Finish::into_outcome),
        (Ok(Finish::Done(_)), Some(guard)) => {
            guard.release().await?;
            result.map(Finish::into_outcome)
        }
        (Ok(Finish::Started(_)), Some(guard)) => {
            guard.release_keep_record().await?;
            result.map(Finish::into_outcome)
        }
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
            result.map(Finish::into_outcome)
        }
    }
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

/// A one-line description of an action (names, never data).
pub fn describe_action(action: &Action, clusters: &Clusters) -> String {
    let ctx = |k: &ClusterKey| clusters.context_of(*k).to_string();
    let trident = tprotect_api::TRIDENT_PROTECT_NAMESPACE;
    match action {
        Action::CreateNamespace { cluster, name } => format!("create Namespace {name} on {}", ctx(cluster)),
        Action::CopySecret { from, to, name } => {
            format!("copy Secret {trident}/{name} from {} to {}", ctx(from), ctx(to))
        }
        Action::CopyAppVault { from, to, name } => {
            format!("copy AppVault {trident}/{name} from {} to {}", ctx(from), ctx(to))
        }
        Action::CreateApplication {
            cluster,
            namespace,
            name,
            namespaces,
        } => format!(
            "create Application {namespace}/{name} over namespaces {} on {}",
            namespaces.join(", "),
            ctx(cluster)
        ),
        Action::CreateReplicationSchedule {
            cluster,
            namespace,
            name,
            application,
            app_vault,
            recurrence_rule,
        } => format!(
            "create replication Schedule {namespace}/{name} (application {application}, AppVault {app_vault}, {}) on {}",
            recurrence_rule.replace('\n', " "),
            ctx(cluster)
        ),
        Action::DisableSchedule {
            cluster,
            namespace,
            name,
        } => format!(
            "disable Schedule {namespace}/{name} on {} (re-enabled at the end)",
            ctx(cluster)
        ),
        Action::RemoveDestinationSchedules {
            cluster,
            namespace,
            names,
        } => format!(
            "save and delete Schedules {} in {namespace} on {} (schedules on a destination make its snapshots fail)",
            names.join(", "),
            ctx(cluster)
        ),
        Action::RestoreSchedules { cluster, names } => {
            format!("restore saved Schedules {} on {}", names.join(", "), ctx(cluster))
        }
        Action::CreateSnapshot {
            cluster,
            namespace,
            name,
            application,
            shutdown,
            ..
        } => format!(
            "create {} {namespace}/{name} of application {application} on {}",
            if *shutdown { "ShutdownSnapshot" } else { "Snapshot" },
            ctx(cluster)
        ),
        Action::CreateAmr {
            cluster,
            namespace,
            name,
            spec,
            ..
        } => format!(
            "create AppMirrorRelationship {namespace}/{name} (desiredState {}, source application {} uid {}) on {}",
            spec.desired_state.map(|d| d.as_str()).unwrap_or(""),
            spec.source_application_name.as_deref().unwrap_or(""),
            spec.source_application_uid.as_deref().unwrap_or(""),
            ctx(cluster)
        ),
        Action::SetDesiredState {
            cluster,
            namespace,
            name,
            desired,
            promoted_snapshot,
            discard_destination_changes,
        } => {
            let mut text = format!(
                "set AppMirrorRelationship {namespace}/{name} desiredState: {desired} on {}",
                ctx(cluster)
            );
            if let Some(snapshot) = promoted_snapshot {
                text.push_str(&format!(" with promotedSnapshot {snapshot}"));
            }
            if *discard_destination_changes {
                text.push_str(", DISCARDING every change made on the destination since the failover");
            }
            text
        }
        Action::DeleteAmr {
            cluster,
            namespace,
            name,
            ..
        } => format!(
            "delete AppMirrorRelationship {namespace}/{name} on {}",
            ctx(cluster)
        ),
        Action::RecordDestinationApp { cluster, name } => format!(
            "note in the lock that the promoted application on {} is {name}",
            ctx(cluster)
        ),
    }
}

/// A one-line description of any step.
pub fn describe_step(step: &Step, clusters: &Clusters) -> String {
    match step {
        Step::Act(action) => describe_action(action, clusters),
        Step::Wait(wait) => format!(
            "wait for {} on {}",
            describe_wait(wait),
            clusters.context_of(wait.cluster())
        ),
        Step::Done(outcome) => outcome.message.clone(),
    }
}

enum Finish {
    Done(Outcome),
    /// `--no-wait`: started, not finished.
    Started(Outcome),
}

impl Finish {
    fn into_outcome(self) -> Outcome {
        match self {
            Finish::Done(o) | Finish::Started(o) => o,
        }
    }
}

struct Runner<'a> {
    clusters: &'a Clusters,
    relationship: &'a str,
    goal: &'a Goal,
    options: &'a RunOptions,
    located: &'a Located,
    lock: Option<LockGuard>,
    observer: Observer<'a>,
    record: Option<OperationRecord>,
    acted: usize,
    kill_after: Option<usize>,
    /// The awaited object's error and when it was first seen.
    error_seen: Option<(String, Instant)>,
    /// The last wait reported, to report each distinct one once.
    warned: Option<(WaitFor, Option<Fingerprint>)>,
}

impl<'a> Runner<'a> {
    fn progress(&self, event: Progress) {
        (self.options.progress)(event)
    }

    fn plan(&self, observed: &Observed) -> Result<Step, RunError> {
        plan(observed, self.goal)
            .map_err(|e| RunError::Plan(explain(e, self.located, self.clusters, self.goal)))
    }

    async fn confirm(&self, action: &Action) -> Result<(), RunError> {
        let what = describe_action(action, self.clusters);
        let confirm = self.options.confirm.clone();
        let (action_copy, what_copy) = (action.clone(), what.clone());
        let yes = tokio::task::spawn_blocking(move || confirm(&action_copy, &what_copy))
            .await
            .map_err(|e| RunError::Internal(format!("confirmation prompt: {e}")))?;
        if yes {
            Ok(())
        } else {
            Err(RunError::NotConfirmed { what })
        }
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
            let step = self.plan(&observed)?;
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
                    if Instant::now() >= deadline {
                        return Err(self.timeout_before(&action, &observed));
                    }
                    if action.discards_data() {
                        self.confirm(&action).await?;
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
                                "the plan does not move on: {} was done {times} times and is planned again",
                                describe_action(&action, self.clusters)
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
                    self.progress(Progress::Acted {
                        action,
                        cluster,
                        result,
                    });
                    self.after_action();
                }
                Step::Wait(wait) => {
                    let seen = observed_fingerprint(&observed, &wait);
                    self.report_wait(&wait, seen.as_ref(), &cluster);
                    if self.options.no_wait {
                        return Ok(Finish::Started(Outcome {
                            message: format!(
                                "{} started; now waiting for {}. Run the same command again to follow it",
                                self.goal.operation().command(),
                                describe_wait(&wait)
                            ),
                            amr_cluster: observed.amr_location().ok().flatten().map(|(k, _)| k),
                        }));
                    }
                    let until = self.check_error(&wait, seen.as_ref(), &cluster, deadline)?;
                    if Instant::now() >= deadline {
                        return Err(self.timeout(&wait, seen.as_ref(), &cluster));
                    }
                    let progress = self.options.progress.clone();
                    let (what, at) = (wait.clone(), cluster.clone());
                    let report = move |now: &Fingerprint| {
                        progress(Progress::Waiting {
                            what: what.clone(),
                            cluster: at.clone(),
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
                        WaitOutcome::Deadline(last) if Instant::now() >= deadline => {
                            return Err(self.timeout(&wait, last.as_ref(), &cluster));
                        }
                        // The error grace ran out: the next round fails with the error (or finds it cleared).
                        WaitOutcome::Deadline(_) => {}
                    }
                }
            }
            last = Some(observed);
        }
    }

    /// Performs an action for real (or, for a server dry run, sent with dryRun=All).
    async fn perform(&mut self, action: &Action, observed: &Observed) -> Result<Executed, RunError> {
        if let Action::RecordDestinationApp { cluster, name } = action {
            let mut record = self
                .record
                .clone()
                .ok_or_else(|| RunError::Internal("no operation record to note the application in".into()))?;
            note_destination_app(&mut record, observed, *cluster, name);
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

    fn report_wait(&mut self, wait: &WaitFor, seen: Option<&Fingerprint>, cluster: &str) {
        let key = (wait.clone(), seen.cloned());
        if self.warned.as_ref() == Some(&key) {
            return;
        }
        self.warned = Some(key);
        self.progress(Progress::Waiting {
            what: wait.clone(),
            cluster: cluster.to_string(),
            state: seen.map(|f| f.state.clone()).unwrap_or_default(),
            error: seen.and_then(|f| f.error.clone()),
        });
    }

    /// Tracks the awaited object's error: a new one is a warning; one unchanged for longer than the grace
    /// period fails the run. Returns how long to wait at most.
    fn check_error(
        &mut self,
        wait: &WaitFor,
        seen: Option<&Fingerprint>,
        cluster: &str,
        deadline: Instant,
    ) -> Result<Instant, RunError> {
        let Some(error) = seen.and_then(|f| f.error.clone()) else {
            self.error_seen = None;
            return Ok(deadline);
        };
        let since = match &self.error_seen {
            Some((previous, since)) if *previous == error => *since,
            _ => {
                self.progress(Progress::Warning(format!(
                    "{} on {cluster} reports an error (it may be transient; failing if it persists for {}s): {error}",
                    describe_wait(wait)
                        .split(" to ")
                        .next()
                        .unwrap_or_default(),
                    self.options.error_grace.as_secs()
                )));
                let now = Instant::now();
                self.error_seen = Some((error.clone(), now));
                now
            }
        };
        let grace_end = since + self.options.error_grace;
        if Instant::now() >= grace_end {
            let (kind, namespace, name) = wait_object(wait);
            return Err(RunError::Failed {
                kind: kind.to_string(),
                cluster: cluster.to_string(),
                namespace: namespace.to_string(),
                name: name.to_string(),
                error: format!(
                    "{error} (unchanged for {}s while waiting for {})",
                    self.options.error_grace.as_secs(),
                    describe_wait(wait)
                ),
            });
        }
        Ok(grace_end.min(deadline))
    }

    fn timeout(&self, wait: &WaitFor, seen: Option<&Fingerprint>, cluster: &str) -> RunError {
        RunError::Timeout {
            waiting_for: describe_wait(wait),
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

    fn timeout_before(&self, action: &Action, observed: &Observed) -> RunError {
        let amr = observed.amr_location().ok().flatten();
        RunError::Timeout {
            waiting_for: format!("the next step ({})", describe_action(action, self.clusters)),
            cluster: amr
                .map(|(k, _)| self.clusters.context_of(k).to_string())
                .unwrap_or_default(),
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
            match step {
                Step::Done(outcome) => {
                    return Ok(Outcome {
                        message: format!(
                            "dry run (server): every write was accepted with dryRun=All, nothing was stored. At the end: {}",
                            outcome.message
                        ),
                        amr_cluster: outcome.amr_cluster,
                    });
                }
                Step::Act(action) => {
                    let result = if matches!(action, Action::RecordDestinationApp { .. }) {
                        Executed::Applied
                    } else {
                        self.perform(&action, &observed).await?
                    };
                    if let Executed::NotSent(reason) = &result {
                        self.progress(Progress::Warning(format!("not sent: {reason}")));
                    }
                    simulate::apply(&mut observed, &action);
                    self.progress(Progress::Acted {
                        action,
                        cluster,
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

/// Kind, namespace and name of the object a wait is about.
fn wait_object(wait: &WaitFor) -> (&'static str, &str, &str) {
    match wait {
        WaitFor::AmrState { namespace, name, .. } | WaitFor::AmrGone { namespace, name, .. } => {
            ("AppMirrorRelationship", namespace, name)
        }
        WaitFor::SnapshotCompleted {
            namespace,
            name,
            shutdown,
            ..
        } => (
            if *shutdown { "ShutdownSnapshot" } else { "Snapshot" },
            namespace,
            name,
        ),
    }
}
