//! The planner: given both clusters as observed and a goal, the ONE next step. Pure; no I/O, no clock.
//!
//! The recipes are NetApp's (shared/docs/trident-protect.md, "The lifecycle"); each function below says which
//! one it follows. Two rules hold for every operation:
//! - **Every precondition before the first write that cannot be undone** ([`Action::irreversible`]): whatever a
//!   later step needs (both clusters, the applications, the AppVaults and their Secrets, storage classes, the
//!   fields it reads) is resolved first, so a refusal leaves a documented state and running the command again
//!   (once the precondition holds) or `delete` moves on.
//! - **Never discard the only copy**: a step that discards a destination runs only once the source application
//!   is confirmed on a reachable source cluster.

use std::collections::BTreeMap;

use tprotect_api::{
    AMR_STATE_ESTABLISHED, AMR_STATE_PROMOTED, AppMirrorRelationshipSpec, DesiredState, NamespaceMapping,
    REPLICATION_SCHEDULE_PREFIX, SNAPSHOT_STATE_COMPLETED,
};
use tprotect_policy::recurrence::RecurrenceRule;

use crate::PlanError;
use crate::model::*;
use crate::read;

/// AMR annotation: the storage class to use on the other cluster when the relationship is reversed. Swapped with
/// `spec.storageClassName` at each reversal, so both survive any number of them.
pub const PEER_STORAGE_CLASS_ANNOTATION: &str = "tprotect.io/peer-storage-class";
/// Schedule annotation: disabled by the plugin for a planned swap (value: the relationship name).
pub const DISABLED_BY_ANNOTATION: &str = "tprotect.io/disabled-by";

type Plan = Result<Step, PlanError>;

/// The next step towards `goal`.
pub fn plan(observed: &Observed, goal: &Goal) -> Plan {
    // Delete is never blocked by an operation in progress: it ends the relationship whatever its state (the
    // confirmation rule asks first, see `confirm`).
    if let Some(record) = &observed.record
        && record.operation != goal.operation()
        && goal.operation() != Operation::Delete
    {
        return Err(PlanError::OtherOperationInProgress {
            name: observed.relationship.clone(),
            in_progress: record.operation.command().to_string(),
            started: record.started.clone(),
        });
    }
    match goal {
        Goal::Setup(params) => plan_setup(observed, params),
        Goal::Failover { force } => plan_failover(observed, *force),
        Goal::Resync => plan_resync(observed),
        Goal::Delete => plan_delete(observed),
        Goal::ReverseResync | Goal::Reverse | Goal::Failback => {
            let record = observed.record.as_ref().ok_or_else(|| PlanError::NoRecord {
                name: observed.relationship.clone(),
                operation: goal.operation().command(),
            })?;
            let (d0, s0) = record_clusters(observed, record, goal.operation())?;
            let recorded = Leg {
                observed,
                record,
                dst: d0,
                src: s0,
                reversed: false,
            };
            match goal {
                Goal::ReverseResync => {
                    let progress = reverse_resync(recorded)?;
                    Ok(progress.or_done(observed, s0, "reversed: now replicating"))
                }
                Goal::Reverse => plan_reverse(recorded),
                _ => plan_failback(recorded),
            }
        }
    }
}

/// One direction of a reversing operation: the relationship moves its AMR from `dst` to `src`. `reversed`: whether
/// `dst` → `src` is the opposite of the record's original direction.
#[derive(Clone, Copy)]
struct Leg<'a> {
    observed: &'a Observed,
    record: &'a OperationRecord,
    dst: ClusterKey,
    src: ClusterKey,
    reversed: bool,
}

impl Leg<'_> {
    /// The same relationship the other way round (the second half of a failback).
    fn opposite(self) -> Self {
        Leg {
            dst: self.src,
            src: self.dst,
            reversed: !self.reversed,
            ..self
        }
    }
}

/// A sub-plan either asks for a step or reports that its part is finished.
enum Progress {
    Step(Step),
    Finished,
}

impl Progress {
    /// The step asked for; once finished, the [`done`] step saying the relationship `what`.
    fn or_done(self, observed: &Observed, amr_cluster: ClusterKey, what: &str) -> Step {
        match self {
            Progress::Step(step) => step,
            Progress::Finished => done(observed, amr_cluster, what),
        }
    }
}

fn state<'a>(
    observed: &'a Observed,
    key: ClusterKey,
    needed_for: &str,
) -> Result<&'a ClusterState, PlanError> {
    match observed.cluster(key) {
        Reach::Reachable(state) => Ok(state),
        Reach::Unreachable { context, error } => Err(PlanError::Unreachable {
            context: context.clone(),
            error: error.clone(),
            needed_for: needed_for.to_string(),
        }),
    }
}

fn done(observed: &Observed, amr_cluster: ClusterKey, what: &str) -> Step {
    let at = observed.state(amr_cluster).and_then(|s| s.amr.as_ref());
    let state = at.map(|a| a.state().to_string()).unwrap_or_default();
    Step::Done(Outcome {
        message: format!(
            "{} {what}; its AppMirrorRelationship is {state} on {}",
            observed.relationship,
            observed.context_of(amr_cluster)
        ),
        amr_cluster: Some(amr_cluster),
    })
}

fn not_found(observed: &Observed) -> PlanError {
    PlanError::NotFound {
        name: observed.relationship.clone(),
        searched: format!(
            "{} and {}",
            observed.context_of(ClusterKey::Context),
            observed.context_of(ClusterKey::Peer)
        ),
    }
}

/// Fails when the AMR reports a failure state; a `status.error` alone may be transient and is not a failure.
fn check_amr_failed(observed: &Observed, key: ClusterKey, amr: &AmrView) -> Result<(), PlanError> {
    if amr.failed() {
        return Err(PlanError::Failed {
            kind: "AppMirrorRelationship",
            context: observed.context_of(key).to_string(),
            namespace: amr.namespace.clone(),
            name: amr.name.clone(),
            error: amr.error().unwrap_or(amr.state()).to_string(),
        });
    }
    Ok(())
}

fn wait_state(key: ClusterKey, amr: &AmrView, state: &str) -> Step {
    Step::Wait(WaitFor::AmrState {
        cluster: key,
        namespace: amr.namespace.clone(),
        name: amr.name.clone(),
        state: state.to_string(),
    })
}

fn missing(
    what: &'static str,
    context: &str,
    namespace: &str,
    name: &str,
    hint: impl Into<String>,
) -> PlanError {
    PlanError::Missing {
        what,
        context: context.to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        hint: hint.into(),
    }
}

/// The name of a relationship's replication Schedule.
pub fn replication_schedule_name(relationship: &str) -> String {
    format!("{REPLICATION_SCHEDULE_PREFIX}{relationship}")
}

/// Name of the ShutdownSnapshot of one run of a planned swap.
pub fn shutdown_snapshot_name(relationship: &str, record_id: &str) -> String {
    format!("{relationship}-shutdown-{record_id}")
}

/// Name of the initial Snapshot `setup --initial-snapshot` takes.
pub fn initial_snapshot_name(relationship: &str) -> String {
    format!("{relationship}-initial")
}

/// `FREQ` and `INTERVAL` of a recurrence rule, which is what two rules must share to mean the same interval
/// (DTSTART is fixed when a command runs, so it differs between runs).
fn cadence(rule: &str) -> Option<(String, u32)> {
    RecurrenceRule::parse(rule)
        .ok()
        .map(|r| (r.frequency().as_str().to_string(), r.interval_count()))
}

// ---------------------------------------------------------------------------------------------------------------
// Set up (source: AppVault, Application, replication Schedule, optional Snapshot; destination: copy of the
// source AppVault and its Secret, destination AppVault, namespace, AMR; wait Established). One relationship per
// application and per destination namespace; run again with other parameters, it reconciles the interval and
// refuses any other difference.

fn plan_setup(observed: &Observed, params: &SetupParams) -> Plan {
    let (src_key, dst_key) = (params.source, params.source.other());
    let src = state(observed, src_key, "setup")?;
    let dst = state(observed, dst_key, "setup")?;
    let (src_ctx, dst_ctx) = (src.context.clone(), dst.context.clone());
    let name = &observed.relationship;

    // An AMR of that name already: this relationship (reconciled or finished), or refused.
    if let Some((key, amr)) = observed.amr_location()? {
        let same = key == dst_key
            && amr.namespace == params.destination_namespace
            && amr.spec.source_application_name.as_deref() == Some(params.app.as_str());
        if !same {
            return Err(PlanError::conflict(
                name,
                format!(
                    "an AppMirrorRelationship {}/{} already exists on {} for application {:?}; choose another name or delete it",
                    amr.namespace,
                    amr.name,
                    observed.context_of(key),
                    amr.spec.source_application_name.clone().unwrap_or_default()
                ),
            ));
        }
        check_amr_failed(observed, key, amr)?;
        refuse_setup_differences(name, params, amr, &dst_ctx)?;
        if let Some(step) = reconcile_recurrence(params, src, src_key, amr, dst_key, name) {
            return Ok(step);
        }
        return Ok(if amr.is(AMR_STATE_ESTABLISHED) {
            done(observed, key, "is set up")
        } else {
            wait_state(key, amr, AMR_STATE_ESTABLISHED)
        });
    }

    // Preconditions the plugin cannot fix: checked before any write.
    refuse_duplicates(name, params, src, dst)?;
    if !src.namespaces.contains_key(&params.source_namespace) {
        return Err(missing(
            "Namespace",
            &src_ctx,
            "",
            &params.source_namespace,
            "Create the application's namespace first.",
        ));
    }
    let trident = tprotect_api::TRIDENT_PROTECT_NAMESPACE;
    let Some(src_vault) = src.vaults.get(&params.source_vault) else {
        return Err(missing(
            "AppVault",
            &src_ctx,
            trident,
            &params.source_vault,
            "Create the source AppVault (an administrator's job) and run setup again.",
        ));
    };
    for secret in src_vault.secret_refs.keys() {
        if !src.secrets.contains_key(secret) {
            return Err(missing(
                "Secret",
                &src_ctx,
                trident,
                secret,
                format!(
                    "AppVault {} references it; create it and run setup again.",
                    params.source_vault
                ),
            ));
        }
    }
    if src.application(&params.source_namespace, &params.app).is_none() && !params.create_app {
        return Err(missing(
            "Application",
            &src_ctx,
            &params.source_namespace,
            &params.app,
            "Create it, or pass --create-app to create one over the namespace.",
        ));
    }
    if !dst.vaults.contains_key(&params.destination_vault) {
        return Err(missing(
            "AppVault",
            &dst_ctx,
            trident,
            &params.destination_vault,
            "Create the destination AppVault on the destination cluster and run setup again.",
        ));
    }
    if let Some(class) = &params.storage_class
        && !dst.storage_classes.contains(class)
    {
        return Err(missing(
            "StorageClass",
            &dst_ctx,
            "",
            class,
            format!("Available: {}.", join_or_none(dst.storage_classes.iter())),
        ));
    }

    // Source side.
    let Some(app) = src.application(&params.source_namespace, &params.app) else {
        return Ok(Step::Act(Action::CreateApplication {
            cluster: src_key,
            namespace: params.source_namespace.clone(),
            name: params.app.clone(),
            namespaces: vec![params.source_namespace.clone()],
        }));
    };
    let replication_schedule = src
        .schedules_of(&params.source_namespace, &params.app)
        .find(|s| s.is_replication());
    match replication_schedule {
        None => {
            return Ok(Step::Act(Action::CreateReplicationSchedule {
                cluster: src_key,
                namespace: params.source_namespace.clone(),
                name: replication_schedule_name(name),
                application: params.app.clone(),
                app_vault: params.source_vault.clone(),
                recurrence_rule: params.recurrence_rule.clone(),
            }));
        }
        // A half-done setup run again with another interval: the schedule follows the new one.
        Some(schedule) => {
            if let Some(step) = schedule_recurrence_step(params, schedule, src_key) {
                return Ok(step);
            }
        }
    }
    if params.initial_snapshot {
        let snapshot = initial_snapshot_name(name);
        match src.snapshot(&params.source_namespace, &snapshot) {
            None => {
                return Ok(Step::Act(Action::CreateSnapshot {
                    cluster: src_key,
                    namespace: params.source_namespace.clone(),
                    name: snapshot,
                    application: params.app.clone(),
                    app_vault: params.source_vault.clone(),
                    shutdown: false,
                }));
            }
            Some(s) if read::is_failure_state(&s.state) => {
                return Err(PlanError::Failed {
                    kind: "Snapshot",
                    context: src_ctx,
                    namespace: s.namespace.clone(),
                    name: s.name.clone(),
                    error: s.error.clone().unwrap_or_else(|| s.state.clone()),
                });
            }
            Some(s) if !read::state_is(&s.state, SNAPSHOT_STATE_COMPLETED) => {
                return Ok(Step::Wait(WaitFor::SnapshotCompleted {
                    cluster: src_key,
                    namespace: s.namespace.clone(),
                    name: s.name.clone(),
                    shutdown: false,
                }));
            }
            Some(_) => {}
        }
    }

    // Destination side: the source AppVault (and its Secrets) copied, the namespace, then the AMR.
    if let Some(step) = copy_vault_step(src, dst, src_key, dst_key, &params.source_vault) {
        return Ok(step);
    }
    if !dst.namespaces.contains_key(&params.destination_namespace) {
        return Ok(Step::Act(Action::CreateNamespace {
            cluster: dst_key,
            name: params.destination_namespace.clone(),
        }));
    }
    let mut annotations = BTreeMap::new();
    if let Some(class) = &params.source_storage_class {
        annotations.insert(PEER_STORAGE_CLASS_ANNOTATION.to_string(), class.clone());
    }
    let spec = AppMirrorRelationshipSpec {
        desired_state: Some(DesiredState::Established),
        destination_app_vault_ref: Some(params.destination_vault.clone()),
        namespace_mapping: Some(vec![NamespaceMapping {
            source: params.source_namespace.clone(),
            destination: params.destination_namespace.clone(),
        }]),
        recurrence_rule: Some(params.recurrence_rule.clone()),
        source_app_vault_ref: Some(params.source_vault.clone()),
        source_application_name: Some(params.app.clone()),
        source_application_uid: Some(app.uid.clone()),
        storage_class_name: params.storage_class.clone(),
        ..Default::default()
    };
    Ok(Step::Act(Action::CreateAmr {
        cluster: dst_key,
        namespace: params.destination_namespace.clone(),
        name: name.clone(),
        spec: Box::new(spec),
        annotations,
    }))
}

/// One relationship per application and per destination namespace: another relationship that already replicates
/// the source application, fills the destination namespace, or replicates INTO the source namespace is named.
fn refuse_duplicates(
    name: &str,
    params: &SetupParams,
    src: &ClusterState,
    dst: &ClusterState,
) -> Result<(), PlanError> {
    let source_uid = src
        .application(&params.source_namespace, &params.app)
        .map(|a| a.uid.as_str());
    let relationship_of = |amr: &AmrView| {
        amr.labels
            .get(tprotect_api::RELATIONSHIP_LABEL)
            .cloned()
            .unwrap_or_else(|| amr.name.clone())
    };
    for amr in &dst.other_amrs {
        let mapping = amr.mapping();
        let same_app = source_uid.is_some_and(|uid| amr.spec.source_application_uid.as_deref() == Some(uid))
            || (amr.spec.source_application_name.as_deref() == Some(params.app.as_str())
                && mapping.iter().any(|(s, _)| *s == params.source_namespace));
        if same_app {
            return Err(PlanError::conflict(
                name,
                format!(
                    "application {}/{} is already replicated to {} by relationship {:?} (AppMirrorRelationship {}/{}); one relationship per application: use that one (kubectl tprotect status {}) or delete it first",
                    params.source_namespace,
                    params.app,
                    dst.context,
                    relationship_of(amr),
                    amr.namespace,
                    amr.name,
                    relationship_of(amr)
                ),
            ));
        }
        if mapping.iter().any(|(_, d)| *d == params.destination_namespace) {
            return Err(PlanError::conflict(
                name,
                format!(
                    "destination namespace {} on {} is already filled by relationship {:?} (AppMirrorRelationship {}/{}); choose another --destination-namespace",
                    params.destination_namespace,
                    dst.context,
                    relationship_of(amr),
                    amr.namespace,
                    amr.name
                ),
            ));
        }
    }
    for amr in &src.other_amrs {
        if amr.mapping().iter().any(|(_, d)| *d == params.source_namespace) {
            return Err(PlanError::conflict(
                name,
                format!(
                    "namespace {} on {} is itself the destination of relationship {:?} (AppMirrorRelationship {}/{}): replicating out of a replication destination would copy a copy; fail over or delete that relationship first",
                    params.source_namespace,
                    src.context,
                    relationship_of(amr),
                    amr.namespace,
                    amr.name
                ),
            ));
        }
    }
    // A replication schedule of the application made for another relationship is that relationship's.
    if let Some(schedule) = src
        .schedules_of(&params.source_namespace, &params.app)
        .find(|s| s.is_replication())
        && let Some(owner) = schedule.labels.get(tprotect_api::RELATIONSHIP_LABEL)
        && owner != name
    {
        return Err(PlanError::conflict(
            name,
            format!(
                "application {}/{} already has the replication Schedule {} of relationship {owner:?} on {}; one relationship per application",
                params.source_namespace, params.app, schedule.name, src.context
            ),
        ));
    }
    Ok(())
}

/// `setup` run again for an existing relationship: a difference other than the interval is refused, naming
/// the field, what the relationship has and what was asked.
fn refuse_setup_differences(
    name: &str,
    params: &SetupParams,
    amr: &AmrView,
    dst_ctx: &str,
) -> Result<(), PlanError> {
    let spec = &amr.spec;
    let mapping = amr.mapping();
    let differences: Vec<(&str, String, String)> = [
        (
            "--source-vault",
            spec.source_app_vault_ref.clone().unwrap_or_default(),
            params.source_vault.clone(),
        ),
        (
            "--destination-vault",
            spec.destination_app_vault_ref.clone().unwrap_or_default(),
            params.destination_vault.clone(),
        ),
        (
            "-n (source namespace)",
            mapping.first().map(|(s, _)| s.clone()).unwrap_or_default(),
            params.source_namespace.clone(),
        ),
        (
            "--storage-class",
            spec.storage_class_name.clone().unwrap_or_default(),
            params.storage_class.clone().unwrap_or_default(),
        ),
    ]
    .into_iter()
    .filter(|(_, has, asked)| has != asked)
    .collect();
    if differences.is_empty() {
        return Ok(());
    }
    let listed: Vec<String> = differences
        .iter()
        .map(|(flag, has, asked)| format!("{flag}: it has {has:?}, this command asks {asked:?}"))
        .collect();
    Err(PlanError::conflict(
        name,
        format!(
            "is already set up (AppMirrorRelationship {}/{} on {dst_ctx}) with other parameters, which setup does not change: {}. Run setup with the existing values, or delete the relationship and set it up again",
            amr.namespace,
            amr.name,
            listed.join("; ")
        ),
    ))
}

/// The step bringing the AMR's and the replication Schedule's interval to the one asked for, if they differ.
fn reconcile_recurrence(
    params: &SetupParams,
    src: &ClusterState,
    src_key: ClusterKey,
    amr: &AmrView,
    dst_key: ClusterKey,
    relationship: &str,
) -> Option<Step> {
    let asked = cadence(&params.recurrence_rule);
    let has = amr.spec.recurrence_rule.clone().unwrap_or_default();
    if asked.is_some() && cadence(&has) != asked {
        return Some(Step::Act(Action::SetRecurrence {
            cluster: dst_key,
            target: RecurrenceTarget::AppMirrorRelationship,
            namespace: amr.namespace.clone(),
            name: amr.name.clone(),
            recurrence_rule: params.recurrence_rule.clone(),
            was: has,
        }));
    }
    src.schedules_of(&params.source_namespace, &params.app)
        .filter(|s| s.is_replication())
        .filter(|s| {
            s.labels
                .get(tprotect_api::RELATIONSHIP_LABEL)
                .is_none_or(|owner| owner == relationship)
        })
        .find_map(|s| schedule_recurrence_step(params, s, src_key))
}

fn schedule_recurrence_step(params: &SetupParams, schedule: &ScheduleView, key: ClusterKey) -> Option<Step> {
    let asked = cadence(&params.recurrence_rule)?;
    let has = schedule.spec.recurrence_rule.clone().unwrap_or_default();
    (cadence(&has) != Some(asked)).then(|| {
        Step::Act(Action::SetRecurrence {
            cluster: key,
            target: RecurrenceTarget::Schedule,
            namespace: schedule.namespace.clone(),
            name: schedule.name.clone(),
            recurrence_rule: params.recurrence_rule.clone(),
            was: has,
        })
    })
}

/// The Secrets of `vault` and then the AppVault itself, copied from `from` to `to` where missing.
fn copy_vault_step(
    from: &ClusterState,
    to: &ClusterState,
    from_key: ClusterKey,
    to_key: ClusterKey,
    vault: &str,
) -> Option<Step> {
    let source = from.vaults.get(vault)?;
    for secret in source.secret_refs.keys() {
        if !to.secrets.contains_key(secret) {
            return Some(Step::Act(Action::CopySecret {
                from: from_key,
                to: to_key,
                name: secret.clone(),
            }));
        }
    }
    if !to.vaults.contains_key(vault) {
        return Some(Step::Act(Action::CopyAppVault {
            from: from_key,
            to: to_key,
            name: vault.to_string(),
        }));
    }
    None
}

fn join_or_none<'a>(items: impl Iterator<Item = &'a String>) -> String {
    let items: Vec<&str> = items.map(String::as_str).collect();
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Fail over (destination: desiredState Promoted; wait Promoted). Works with the source unreachable.

fn plan_failover(observed: &Observed, force: bool) -> Plan {
    let Some((key, amr)) = observed.amr_location()? else {
        return Err(not_found(observed));
    };
    check_amr_failed(observed, key, amr)?;
    match amr.desired() {
        Some(DesiredState::Promoted) if amr.is(AMR_STATE_PROMOTED) => {
            Ok(done(observed, key, "is failed over"))
        }
        Some(DesiredState::Promoted) => Ok(wait_state(key, amr, AMR_STATE_PROMOTED)),
        _ => {
            let replicated = amr.is(AMR_STATE_ESTABLISHED)
                || amr.status.as_ref().is_some_and(|s| {
                    s.last_transferred_snapshot.is_some()
                        || s.last_transfer
                            .as_ref()
                            .is_some_and(|t| t.completion_timestamp.is_some())
                });
            if !replicated && !force {
                return Err(PlanError::wrong_state(
                    "failover",
                    observed.context_of(key),
                    amr,
                    format!("{:?} and has never transferred a snapshot", amr.state()),
                    "There is nothing to fail over to yet; wait for Established, or pass --force.",
                ));
            }
            Ok(Step::Act(Action::SetDesiredState {
                cluster: key,
                namespace: amr.namespace.clone(),
                name: amr.name.clone(),
                desired: DesiredState::Promoted,
                promoted_snapshot: None,
                discard_destination_changes: false,
            }))
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Resync (destination: desiredState Established — destination changes are DISCARDED; remove schedules left on
// the destination; wait Established). NetApp's resync starts with a snapshot of the source application: it
// cannot be done without the source, and it must not discard the destination when the destination is the only
// running copy.

fn plan_resync(observed: &Observed) -> Plan {
    let Some((key, amr)) = observed.amr_location()? else {
        return Err(not_found(observed));
    };
    check_amr_failed(observed, key, amr)?;
    if amr.desired() == Some(DesiredState::Promoted) {
        confirm_source_running(observed, key, amr)?;
        return Ok(Step::Act(Action::SetDesiredState {
            cluster: key,
            namespace: amr.namespace.clone(),
            name: amr.name.clone(),
            desired: DesiredState::Established,
            promoted_snapshot: None,
            discard_destination_changes: true,
        }));
    }
    let dst = state(observed, key, "resync")?;
    if let Some(step) = remove_schedules_step(dst, key, amr.mapping().iter().map(|(_, d)| d.as_str())) {
        return Ok(step);
    }
    Ok(if amr.is(AMR_STATE_ESTABLISHED) {
        done(observed, key, "is resynced")
    } else {
        wait_state(key, amr, AMR_STATE_ESTABLISHED)
    })
}

/// Before discarding the destination of `amr` (on `dst`): the source application it replicates from exists, with
/// the UID the AMR names, on a reachable source cluster. Otherwise the destination may be the only running copy.
fn confirm_source_running(observed: &Observed, dst: ClusterKey, amr: &AmrView) -> Result<(), PlanError> {
    let name = &observed.relationship;
    let keep = format!(
        "Nothing was changed: the destination's copy on {} is kept. To keep what was written there, run: kubectl tprotect failback {name}",
        observed.context_of(dst)
    );
    let source = match observed.cluster(dst.other()) {
        Reach::Reachable(state) => state,
        Reach::Unreachable { context, error } => {
            return Err(PlanError::Unreachable {
                context: context.clone(),
                error: error.clone(),
                needed_for: format!(
                    "resync (it replicates from the source application and DISCARDS the destination, which may be the only running copy). {keep}"
                ),
            });
        }
    };
    let app_name = amr.spec.source_application_name.clone().unwrap_or_default();
    let source_namespaces: Vec<String> = amr.mapping().into_iter().map(|(s, _)| s).collect();
    let Some(app) = source
        .applications
        .iter()
        .find(|a| a.name == app_name && source_namespaces.contains(&a.namespace))
    else {
        return Err(missing(
            "Application",
            &source.context,
            &source_namespaces.join(","),
            &app_name,
            format!("resync would replicate from it and DISCARD the destination, the only copy left. {keep}"),
        ));
    };
    if amr.spec.source_application_uid.as_deref() != Some(app.uid.as_str()) {
        return Err(PlanError::WrongState {
            operation: "resync",
            context: source.context.clone(),
            object: format!("Application {}/{}", app.namespace, app.name),
            state: format!(
                "uid {} while the AppMirrorRelationship names uid {} (the source application was re-created)",
                app.uid,
                amr.spec.source_application_uid.clone().unwrap_or_default()
            ),
            hint: keep,
        });
    }
    Ok(())
}

/// Every Schedule in `namespaces` of a destination, saved and removed (one namespace per step).
fn remove_schedules_step<'a>(
    cluster: &ClusterState,
    key: ClusterKey,
    namespaces: impl Iterator<Item = &'a str>,
) -> Option<Step> {
    for namespace in namespaces {
        let names: Vec<String> = cluster
            .schedules
            .iter()
            .filter(|s| s.namespace == namespace)
            .map(|s| s.name.clone())
            .collect();
        if !names.is_empty() {
            return Some(Step::Act(Action::RemoveDestinationSchedules {
                cluster: key,
                namespace: namespace.to_string(),
                names,
            }));
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------------------------
// Delete (current destination: delete the AMR; two independent applications remain). Never blocked by an
// operation in progress: it is the way out of any state.

fn plan_delete(observed: &Observed) -> Plan {
    // None on the clusters that answered: deleted (or never there; `delete` tells which, and names a cluster that
    // did not answer).
    let Some((key, amr)) = observed.amr_location()? else {
        return Ok(Step::Done(Outcome {
            message: format!(
                "{} is deleted: no AppMirrorRelationship remains",
                observed.relationship
            ),
            amr_cluster: None,
        }));
    };
    if amr.deleting {
        return Ok(Step::Wait(WaitFor::AmrGone {
            cluster: key,
            namespace: amr.namespace.clone(),
            name: amr.name.clone(),
        }));
    }
    Ok(Step::Act(Action::DeleteAmr {
        cluster: key,
        namespace: amr.namespace.clone(),
        name: amr.name.clone(),
        uid: amr.uid.clone(),
    }))
}

// ---------------------------------------------------------------------------------------------------------------
// The operations that move the AMR to the other cluster, driven by the record kept in the lock.

/// The record's initial destination (the cluster that held the AMR when the operation started) and the other.
fn record_clusters(
    observed: &Observed,
    record: &OperationRecord,
    operation: Operation,
) -> Result<(ClusterKey, ClusterKey), PlanError> {
    for key in ClusterKey::BOTH {
        state(observed, key, operation.command())?;
    }
    let d0 = observed.key_of(&record.initial_destination).ok_or_else(|| {
        PlanError::conflict(
            &observed.relationship,
            format!(
                "the {} in progress started on a cluster that is neither {} nor {} (cluster id {}); run it with that cluster's context",
                operation.command(),
                observed.context_of(ClusterKey::Context),
                observed.context_of(ClusterKey::Peer),
                record.initial_destination
            ),
        )
    })?;
    Ok((d0, d0.other()))
}

/// The relationship's spec as it is after `n` reversals from the record's: vaults, mapping and storage classes
/// swapped when `n` is odd.
fn oriented(
    record: &OperationRecord,
    reversed: bool,
) -> (AppMirrorRelationshipSpec, BTreeMap<String, String>) {
    let mut spec = record.spec.clone();
    let mut annotations = record.annotations.clone();
    if reversed {
        std::mem::swap(
            &mut spec.source_app_vault_ref,
            &mut spec.destination_app_vault_ref,
        );
        spec.namespace_mapping = spec.namespace_mapping.map(|mapping| {
            mapping
                .into_iter()
                .map(|m| NamespaceMapping {
                    source: m.destination,
                    destination: m.source,
                })
                .collect()
        });
        let peer = annotations.remove(PEER_STORAGE_CLASS_ANNOTATION);
        if let Some(class) = spec.storage_class_name.take() {
            annotations.insert(PEER_STORAGE_CLASS_ANNOTATION.to_string(), class);
        }
        spec.storage_class_name = peer;
    }
    (spec, annotations)
}

/// The namespaces of a spec's mapping: sources (`destination == false`) or destinations.
fn namespaces_of(spec: &AppMirrorRelationshipSpec, destination: bool) -> Vec<String> {
    spec.namespace_mapping
        .iter()
        .flatten()
        .map(|m| {
            if destination {
                m.destination.clone()
            } else {
                m.source.clone()
            }
        })
        .collect()
}

/// What creating the relationship in the opposite direction needs, beyond the promoted application: on `dst`
/// (the new source) the new source AppVault and the Secrets it references (copied over), on `src` (the new
/// destination) the new destination AppVault and the storage class the AMR will name. All of it is checked
/// before the AMR on `dst` is deleted, so a missing piece refuses the operation while nothing is lost.
fn check_reversal_needs(leg: Leg<'_>) -> Result<(), PlanError> {
    let Leg { observed, record, .. } = leg;
    let operation = record.operation.command();
    let old_dst = state(observed, leg.dst, operation)?;
    let new_dst = state(observed, leg.src, operation)?;
    let (next, _) = oriented(record, !leg.reversed);
    let trident = tprotect_api::TRIDENT_PROTECT_NAMESPACE;
    let new_source_vault = next.source_app_vault_ref.clone().unwrap_or_default();
    let new_destination_vault = next.destination_app_vault_ref.clone().unwrap_or_default();
    let abandon = abandon_hint(&observed.relationship, record.operation);
    let Some(vault) = old_dst.vaults.get(&new_source_vault) else {
        return Err(missing(
            "AppVault",
            &old_dst.context,
            trident,
            &new_source_vault,
            format!(
                "It is the destination AppVault of the relationship, and the source AppVault once it is reversed; re-create it, then run the command again. {abandon}"
            ),
        ));
    };
    for secret in vault.secret_refs.keys() {
        if !old_dst.secrets.contains_key(secret) && !new_dst.secrets.contains_key(secret) {
            return Err(missing(
                "Secret",
                &old_dst.context,
                trident,
                secret,
                format!(
                    "AppVault {new_source_vault} references it and is copied to {} with it; create it, then run the command again. {abandon}",
                    new_dst.context
                ),
            ));
        }
    }
    if !new_dst.vaults.contains_key(&new_destination_vault) {
        return Err(missing(
            "AppVault",
            &new_dst.context,
            trident,
            &new_destination_vault,
            format!(
                "It was the source AppVault of the relationship, and is the destination AppVault once it is reversed; re-create it on its cluster, then run the command again. {abandon}"
            ),
        ));
    }
    if let Some(class) = &next.storage_class_name
        && !new_dst.storage_classes.contains(class)
    {
        return Err(missing(
            "StorageClass",
            &new_dst.context,
            "",
            class,
            format!(
                "The reversed relationship restores into it (the {PEER_STORAGE_CLASS_ANNOTATION} annotation); create it, then run the command again. Available: {}. {abandon}",
                join_or_none(new_dst.storage_classes.iter())
            ),
        ));
    }
    if next.recurrence_rule.as_deref().is_none_or(str::is_empty) {
        return Err(PlanError::conflict(
            &observed.relationship,
            format!(
                "the recorded relationship has no recurrenceRule to create the reversed one with. {abandon}"
            ),
        ));
    }
    Ok(())
}

/// How to give up an operation whose record cannot be finished.
pub fn abandon_hint(relationship: &str, operation: Operation) -> String {
    format!(
        "To give the {} up, leaving both clusters as they are: kubectl tprotect {} {relationship} --abandon",
        operation.command(),
        operation.command()
    )
}

/// Reverse resync with the AMR moving from `dst` (where it is Promoted) to `src`; destination changes are KEPT.
/// NetApp's recipe: delete the AMR on the original destination; remove schedules on the new destination; make
/// the AppVaults ready on each cluster; create the relationship in the opposite direction.
fn reverse_resync(leg: Leg<'_>) -> Result<Progress, PlanError> {
    let Leg { observed, record, .. } = leg;
    let name = &observed.relationship;
    let operation = record.operation.command();
    let old_dst = state(observed, leg.dst, operation)?;
    let new_dst = state(observed, leg.src, operation)?;
    // The relationship as it is while the AMR is on `dst`, and as it will be once on `src`.
    let (current, _) = oriented(record, leg.reversed);
    let (next, next_annotations) = oriented(record, !leg.reversed);
    let abandon = abandon_hint(name, record.operation);

    match observed.amr_location()? {
        Some((key, amr)) if key == leg.dst => {
            check_amr_failed(observed, key, amr)?;
            if amr.deleting {
                return Ok(Progress::Step(Step::Wait(WaitFor::AmrGone {
                    cluster: key,
                    namespace: amr.namespace.clone(),
                    name: amr.name.clone(),
                })));
            }
            if amr.desired() != Some(DesiredState::Promoted) {
                return Err(PlanError::wrong_state(
                    "reverse-resync",
                    &old_dst.context,
                    amr,
                    format!(
                        "{} (desired {:?})",
                        amr.state(),
                        amr.desired().map(|d| d.as_str()).unwrap_or("")
                    ),
                    format!("Fail over first: kubectl tprotect failover {name}"),
                ));
            }
            if !amr.is(AMR_STATE_PROMOTED) {
                return Ok(Progress::Step(wait_state(key, amr, AMR_STATE_PROMOTED)));
            }
            // Everything the reversed relationship needs, before the AMR (the one object naming it all) goes.
            let Some((app, found_by)) = read::destination_application(amr, old_dst) else {
                return Err(missing(
                    "Application",
                    &old_dst.context,
                    &namespaces_of(&current, true).join(","),
                    &destination_app_label(amr),
                    format!(
                        "The promoted application becomes the source of the reversed relationship, and none was found (by status.destinationApplicationRef, by the source application's name, or by the label {}={name}). Nothing was changed: the relationship is still failed over. Make the promoted Application exist there, then run the command again.",
                        tprotect_api::RELATIONSHIP_LABEL
                    ),
                ));
            };
            check_reversal_needs(leg)?;
            if record.operation == Operation::Failback && !leg.reversed {
                // The second half (a planned swap back) needs the same vaults the other way round.
                check_reversal_needs(leg.opposite())?;
            }
            let noted = format!("{}/{}", app.namespace, app.name);
            if record.destination_apps.get(&old_dst.cluster_id) != Some(&noted) {
                return Ok(Progress::Step(Step::Act(Action::RecordDestinationApp {
                    cluster: leg.dst,
                    namespace: app.namespace.clone(),
                    name: app.name.clone(),
                    found_by,
                })));
            }
            Ok(Progress::Step(Step::Act(Action::DeleteAmr {
                cluster: key,
                namespace: amr.namespace.clone(),
                name: amr.name.clone(),
                uid: amr.uid.clone(),
            })))
        }
        Some((key, amr)) => {
            // On `src`: created by this step earlier (or by hand, which we refuse to touch).
            let new_source_uid = recorded_app(record, old_dst, &current).map(|a| a.uid.clone());
            if new_source_uid.is_none() || amr.spec.source_application_uid != new_source_uid {
                return Err(PlanError::conflict(
                    name,
                    format!(
                        "AppMirrorRelationship {}/{} on {} does not replicate the application this {operation} promoted; resolve it by hand. {abandon}",
                        amr.namespace,
                        amr.name,
                        observed.context_of(key)
                    ),
                ));
            }
            check_amr_failed(observed, key, amr)?;
            if amr.is(AMR_STATE_ESTABLISHED) {
                Ok(Progress::Finished)
            } else {
                Ok(Progress::Step(wait_state(key, amr, AMR_STATE_ESTABLISHED)))
            }
        }
        None => {
            // Between deleting the AMR on `dst` and creating it on `src`. Its preconditions were checked
            // before the delete; one that has gone since is named with the way out.
            let Some(app) = recorded_app(record, old_dst, &current) else {
                let noted = record
                    .destination_apps
                    .get(&old_dst.cluster_id)
                    .cloned()
                    .unwrap_or_default();
                return Err(missing(
                    "Application",
                    &old_dst.context,
                    &namespaces_of(&current, true).join(","),
                    &noted,
                    format!(
                        "It is the application this {operation} promoted, the source of the reversed relationship, and it is gone. Re-create it there, then run the command again. {abandon}; the relationship is then deleted (no AppMirrorRelationship remains) and can be set up again."
                    ),
                ));
            };
            check_reversal_needs(leg)?;
            let new_source_ns = app.namespace.clone();
            // Remove schedules left on the new destination (the namespaces the AMR will restore into).
            let new_destination_namespaces = namespaces_of(&next, true);
            if let Some(step) = remove_schedules_step(
                new_dst,
                leg.src,
                new_destination_namespaces.iter().map(String::as_str),
            ) {
                return Ok(Progress::Step(step));
            }
            // AppVaults: the new source vault on both clusters, the new destination vault on the new destination.
            let new_source_vault = next.source_app_vault_ref.clone().unwrap_or_default();
            if let Some(step) = copy_vault_step(old_dst, new_dst, leg.dst, leg.src, &new_source_vault) {
                return Ok(Progress::Step(step));
            }
            // The replication schedule of the new source.
            if !old_dst
                .schedules_of(&new_source_ns, &app.name)
                .any(ScheduleView::is_replication)
            {
                return Ok(Progress::Step(Step::Act(Action::CreateReplicationSchedule {
                    cluster: leg.dst,
                    namespace: new_source_ns,
                    name: replication_schedule_name(name),
                    application: app.name.clone(),
                    app_vault: new_source_vault,
                    recurrence_rule: record.spec.recurrence_rule.clone().unwrap_or_default(),
                })));
            }
            for namespace in &new_destination_namespaces {
                if !new_dst.namespaces.contains_key(namespace) {
                    return Ok(Progress::Step(Step::Act(Action::CreateNamespace {
                        cluster: leg.src,
                        name: namespace.clone(),
                    })));
                }
            }
            let mut spec = next;
            spec.desired_state = Some(DesiredState::Established);
            spec.promoted_snapshot = None;
            spec.source_application_name = Some(app.name.clone());
            spec.source_application_uid = Some(app.uid.clone());
            Ok(Progress::Step(Step::Act(Action::CreateAmr {
                cluster: leg.src,
                namespace: new_destination_namespaces.first().cloned().unwrap_or_default(),
                name: name.clone(),
                spec: Box::new(spec),
                annotations: next_annotations,
            })))
        }
    }
}

/// The name to show for a promoted application that was not found.
fn destination_app_label(amr: &AmrView) -> String {
    amr.status
        .as_ref()
        .and_then(|s| s.destination_application_ref.clone())
        .or_else(|| amr.spec.source_application_name.clone())
        .unwrap_or_default()
}

/// The promoted application noted in the record for `cluster`, as it is now on that cluster (in the namespaces
/// the AMR restored into). Records of earlier versions noted a bare name.
fn recorded_app<'a>(
    record: &OperationRecord,
    cluster: &'a ClusterState,
    current: &AppMirrorRelationshipSpec,
) -> Option<&'a AppView> {
    let noted = read::parse_app_ref(record.destination_apps.get(&cluster.cluster_id)?)?;
    let namespaces = namespaces_of(current, true);
    cluster.applications.iter().find(|a| {
        a.name == noted.name
            && namespaces.contains(&a.namespace)
            && noted.namespace.as_ref().is_none_or(|ns| *ns == a.namespace)
    })
}

/// Reverse direction (planned swap) with the AMR Established on `dst`, replicating from `src`. NetApp's recipe:
/// disable the source's schedules; ShutdownSnapshot; wait Completed; fail over with promotedSnapshot = the
/// archive's basename; reverse resync; enable schedules on the new source.
fn reverse(leg: Leg<'_>) -> Result<Progress, PlanError> {
    let Leg { observed, record, .. } = leg;
    let name = &observed.relationship;
    let operation = record.operation.command();
    let source = state(observed, leg.src, operation)?;
    let shutdown = shutdown_snapshot_name(name, &record.id);

    if let Some((key, amr)) = observed.amr_location()?
        && key == leg.dst
    {
        check_amr_failed(observed, key, amr)?;
        // While the AMR is here, it says what the source is.
        let source_ns = amr.mapping().first().map(|(s, _)| s.clone()).unwrap_or_default();
        let source_app = amr.spec.source_application_name.clone().unwrap_or_default();
        let source_vault = amr.spec.source_app_vault_ref.clone().unwrap_or_default();
        let snapshot = source.shutdown_snapshot(&source_ns, &shutdown);
        if amr.desired() == Some(DesiredState::Promoted) {
            // Promoted by this swap (its ShutdownSnapshot exists): carry on with the reverse resync. Promoted by
            // a failover: a planned swap must not start from there.
            if snapshot.is_none() {
                return Err(PlanError::wrong_state(
                    "reverse",
                    observed.context_of(key),
                    amr,
                    format!("{} (failed over)", amr.state()),
                    format!(
                        "A planned swap starts from an Established relationship. To keep what was written since the failover, run: kubectl tprotect failback {name} (or reverse-resync {name})"
                    ),
                ));
            }
        } else {
            if !amr.is(AMR_STATE_ESTABLISHED) {
                return Err(PlanError::wrong_state(
                    "reverse",
                    observed.context_of(key),
                    amr,
                    amr.state(),
                    "A planned swap starts from an Established relationship; wait for it (kubectl tprotect status).",
                ));
            }
            // The swap shuts the source application down: everything the rest needs is checked first.
            if source.application(&source_ns, &source_app).is_none() {
                return Err(missing(
                    "Application",
                    &source.context,
                    &source_ns,
                    &source_app,
                    "A planned swap starts from the running source application; nothing was changed.",
                ));
            }
            check_reversal_needs(leg)?;
            // NetApp's recipe disables the source's *protection* schedules. The replication schedule stays on
            // (the admission webhook refuses a disabled one): the reverse resync removes it with the rest of the
            // new destination's schedules.
            if let Some(schedule) = source
                .schedules_of(&source_ns, &source_app)
                .find(|s| s.enabled() && !s.is_replication())
            {
                return Ok(Progress::Step(Step::Act(Action::DisableSchedule {
                    cluster: leg.src,
                    namespace: schedule.namespace.clone(),
                    name: schedule.name.clone(),
                })));
            }
            let Some(snapshot) = snapshot else {
                return Ok(Progress::Step(Step::Act(Action::CreateSnapshot {
                    cluster: leg.src,
                    namespace: source_ns,
                    name: shutdown,
                    application: source_app,
                    app_vault: source_vault,
                    shutdown: true,
                })));
            };
            if read::is_failure_state(&snapshot.state) {
                return Err(PlanError::Failed {
                    kind: "ShutdownSnapshot",
                    context: source.context.clone(),
                    namespace: snapshot.namespace.clone(),
                    name: snapshot.name.clone(),
                    error: snapshot.error.clone().unwrap_or_else(|| snapshot.state.clone()),
                });
            }
            let basename = snapshot
                .app_archive_path
                .as_deref()
                .and_then(tprotect_api::archive_basename);
            let (true, Some(basename)) = (
                read::state_is(&snapshot.state, SNAPSHOT_STATE_COMPLETED),
                basename,
            ) else {
                return Ok(Progress::Step(Step::Wait(WaitFor::SnapshotCompleted {
                    cluster: leg.src,
                    namespace: snapshot.namespace.clone(),
                    name: snapshot.name.clone(),
                    shutdown: true,
                })));
            };
            return Ok(Progress::Step(Step::Act(Action::SetDesiredState {
                cluster: key,
                namespace: amr.namespace.clone(),
                name: amr.name.clone(),
                desired: DesiredState::Promoted,
                promoted_snapshot: Some(basename.to_string()),
                discard_destination_changes: false,
            })));
        }
    }
    match reverse_resync(leg)? {
        Progress::Step(step) => Ok(Progress::Step(step)),
        Progress::Finished => {
            // Enable the protection schedules of the new source (`dst`), saved when it was a destination.
            let new_source = state(observed, leg.dst, operation)?;
            let names: Vec<String> = new_source
                .saved_schedules
                .schedules
                .iter()
                .map(|s| s.name.clone())
                .collect();
            if !names.is_empty() {
                return Ok(Progress::Step(Step::Act(Action::RestoreSchedules {
                    cluster: leg.dst,
                    names,
                })));
            }
            Ok(Progress::Finished)
        }
    }
}

fn plan_reverse(recorded: Leg<'_>) -> Plan {
    Ok(reverse(recorded)?.or_done(
        recorded.observed,
        recorded.src,
        "is reversed: the former destination is now the source",
    ))
}

/// Fail back: reverse resync (keeping what was written during the failover), then reverse direction. Never a
/// plain resync, which would discard it.
fn plan_failback(recorded: Leg<'_>) -> Plan {
    let Leg {
        observed,
        record,
        dst: d0,
        src: s0,
        ..
    } = recorded;
    let name = &observed.relationship;
    let d0_state = state(observed, d0, "failback")?;
    // The swap of the second half runs on d0's application: its ShutdownSnapshot marks that we got there.
    let second_half = d0_state
        .shutdown_snapshots
        .iter()
        .any(|s| s.name == shutdown_snapshot_name(name, &record.id));
    let location = observed.amr_location()?.map(|(key, amr)| (key, amr.desired()));
    let first_half = match location {
        Some((key, Some(DesiredState::Promoted))) if key == d0 => true,
        Some((key, _)) if key == d0 => false,
        Some(_) => false,
        None => !second_half,
    };
    if let Some((key, Some(DesiredState::Established))) = location
        && key == d0
        && !second_half
    {
        let amr = observed.state(d0).and_then(|s| s.amr.as_ref());
        return Err(PlanError::WrongState {
            operation: "failback",
            context: d0_state.context.clone(),
            object: format!(
                "AppMirrorRelationship {}/{}",
                amr.map(|a| a.namespace.clone()).unwrap_or_default(),
                name.clone()
            ),
            state: amr.map(|a| a.state().to_string()).unwrap_or_default(),
            hint: format!(
                "Nothing to fail back: the relationship is not failed over. To swap directions, run: kubectl tprotect reverse {name}"
            ),
        });
    }
    if first_half {
        return match reverse_resync(recorded)? {
            Progress::Step(step) => Ok(step),
            Progress::Finished => unreachable_finished(name),
        };
    }
    if let Some((key, _)) = location
        && key == s0
        && !second_half
    {
        // First half finishing: the AMR replicates d0 → s0 until it is Established.
        if let Progress::Step(step) = reverse_resync(recorded)? {
            return Ok(step);
        }
    }
    // Second half: a planned swap of the reversed relationship (AMR on s0, replicating from d0) back to d0.
    Ok(reverse(recorded.opposite())?.or_done(
        observed,
        d0,
        "is failed back: the original source is the source again",
    ))
}

fn unreachable_finished(name: &str) -> Plan {
    Err(PlanError::conflict(
        name,
        "internal: first half of failback finished while the AMR is still on the original destination",
    ))
}

/// Whether `error` is about an object the controller may still be creating: the promoted Application, missing
/// while the AMR reports Promoted. NetApp documents no order between the two (a controller may create the
/// Application a moment after it reports the state), so the runner looks again for a while before refusing.
pub fn may_still_appear(observed: &Observed, error: &PlanError) -> bool {
    let PlanError::Missing {
        what: "Application", ..
    } = error
    else {
        return false;
    };
    matches!(
        observed.amr_location(),
        Ok(Some((_, amr))) if amr.desired() == Some(DesiredState::Promoted) && amr.is(AMR_STATE_PROMOTED)
    )
}

/// The goal a record's operation resumes with (failover: as forced, since it was already under way).
pub fn goal_of(operation: Operation) -> Option<Goal> {
    Some(match operation {
        Operation::Setup => return None,
        Operation::Failover => Goal::Failover { force: true },
        Operation::Resync => Goal::Resync,
        Operation::ReverseResync => Goal::ReverseResync,
        Operation::Reverse => Goal::Reverse,
        Operation::Failback => Goal::Failback,
        Operation::Delete => Goal::Delete,
    })
}
