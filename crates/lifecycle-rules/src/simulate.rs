//! Simulated observations: what a step does to the clusters, and how Trident protect's controller reacts as
//! documented (one plausible reading of it: see [`Controller`] for the variants the planner is tested under). `--dry-run=client` runs the planner over these to print a whole plan without writing anything,
//! and the planner's tests use them to walk every operation from start to end (and from every step in between).

use tprotect_api::{
    AMR_STATE_ESTABLISHED, AMR_STATE_PROMOTED, AppMirrorRelationshipStatus, DesiredState,
    SNAPSHOT_STATE_COMPLETED,
};

use crate::PlanError;
use crate::model::*;
use crate::objects::note_destination_app;
use crate::plan::{DISABLED_BY_ANNOTATION, plan};
use crate::read;

/// UID given to objects a dry run "creates".
pub const SIMULATED_UID: &str = "00000000-0000-4000-8000-000000000000";

/// At most this many steps: a plan that does not converge is a bug, not a reason to loop forever.
const MAX_STEPS: usize = 64;

fn cluster(observed: &mut Observed, key: ClusterKey) -> Option<&mut ClusterState> {
    match observed.cluster_mut(key) {
        Reach::Reachable(state) => Some(state),
        Reach::Unreachable { .. } => None,
    }
}

/// What `action` leaves on the clusters once the API server has accepted it.
pub fn apply(observed: &mut Observed, action: &Action) {
    let relationship = observed.relationship.clone();
    match action {
        Action::CreateNamespace { cluster: key, name } => {
            if let Some(c) = cluster(observed, *key) {
                c.namespaces.entry(name.clone()).or_insert_with(|| NamespaceView {
                    name: name.clone(),
                    ..Default::default()
                });
            }
        }
        Action::CopySecret { from, to, name } => {
            let secret = observed.state(*from).and_then(|c| c.secrets.get(name)).cloned();
            if let (Some(secret), Some(c)) = (secret, cluster(observed, *to)) {
                c.secrets.insert(name.clone(), secret);
            }
        }
        Action::CopyAppVault { from, to, name } => {
            let vault = observed.state(*from).and_then(|c| c.vaults.get(name)).cloned();
            if let (Some(vault), Some(c)) = (vault, cluster(observed, *to)) {
                c.vaults.insert(
                    name.clone(),
                    VaultView {
                        state: String::new(),
                        error: None,
                        ..vault
                    },
                );
            }
        }
        Action::CreateApplication {
            cluster: key,
            namespace,
            name,
            ..
        } => {
            if let Some(c) = cluster(observed, *key)
                && c.application(namespace, name).is_none()
            {
                c.applications.push(AppView {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    uid: SIMULATED_UID.into(),
                    ..Default::default()
                });
            }
        }
        Action::CreateReplicationSchedule {
            cluster: key,
            namespace,
            name,
            application,
            app_vault,
            recurrence_rule,
        } => {
            if let Some(c) = cluster(observed, *key)
                && !c
                    .schedules
                    .iter()
                    .any(|s| &s.namespace == namespace && &s.name == name)
            {
                // What the executor writes, read back as a read of the cluster would.
                let object = crate::objects::replication_schedule_object(
                    namespace,
                    name,
                    application,
                    app_vault,
                    recurrence_rule,
                    &relationship,
                );
                c.schedules.push(ScheduleView {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    labels: object["metadata"]["labels"]
                        .as_object()
                        .map(|labels| {
                            labels
                                .iter()
                                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                                .collect()
                        })
                        .unwrap_or_default(),
                    annotations: Default::default(),
                    spec: read::lenient(object.get("spec")),
                });
            }
        }
        Action::DisableSchedule {
            cluster: key,
            namespace,
            name,
        } => {
            if let Some(c) = cluster(observed, *key)
                && let Some(s) = c
                    .schedules
                    .iter_mut()
                    .find(|s| &s.namespace == namespace && &s.name == name)
            {
                s.spec.enabled = Some(false);
                s.annotations
                    .insert(DISABLED_BY_ANNOTATION.into(), relationship.clone());
            }
        }
        Action::RemoveDestinationSchedules {
            cluster: key,
            namespace,
            names,
        } => {
            if let Some(c) = cluster(observed, *key) {
                let (removed, kept): (Vec<ScheduleView>, Vec<ScheduleView>) =
                    std::mem::take(&mut c.schedules)
                        .into_iter()
                        .partition(|s| &s.namespace == namespace && names.contains(&s.name));
                c.schedules = kept;
                for s in removed.into_iter().filter(|s| !s.is_replication()) {
                    let was_enabled = s.enabled() || s.annotations.contains_key(DISABLED_BY_ANNOTATION);
                    c.saved_schedules
                        .schedules
                        .retain(|saved| !(saved.namespace == s.namespace && saved.name == s.name));
                    c.saved_schedules.schedules.push(SavedSchedule {
                        namespace: s.namespace,
                        name: s.name,
                        labels: s.labels,
                        spec: serde_json::to_value(&s.spec).unwrap_or_default(),
                        was_enabled,
                    });
                }
            }
        }
        Action::RestoreSchedules { cluster: key, names } => {
            if let Some(c) = cluster(observed, *key) {
                let saved = std::mem::take(&mut c.saved_schedules.schedules);
                for s in saved {
                    if !names.contains(&s.name) {
                        c.saved_schedules.schedules.push(s);
                        continue;
                    }
                    let spec = read::lenient(Some(&s.restored_spec()));
                    c.schedules
                        .retain(|x| !(x.namespace == s.namespace && x.name == s.name));
                    c.schedules.push(ScheduleView {
                        namespace: s.namespace,
                        name: s.name,
                        labels: s.labels,
                        annotations: Default::default(),
                        spec,
                    });
                }
            }
        }
        Action::CreateSnapshot {
            cluster: key,
            namespace,
            name,
            shutdown,
            ..
        } => {
            if let Some(c) = cluster(observed, *key) {
                let list = if *shutdown {
                    &mut c.shutdown_snapshots
                } else {
                    &mut c.snapshots
                };
                if !list.iter().any(|s| &s.namespace == namespace && &s.name == name) {
                    list.push(SnapshotView {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        ..Default::default()
                    });
                }
            }
        }
        Action::CreateAmr {
            cluster: key,
            namespace,
            name,
            spec,
            annotations,
        } => {
            if let Some(c) = cluster(observed, *key)
                && c.amr.is_none()
            {
                c.amr = Some(AmrView {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    uid: SIMULATED_UID.into(),
                    labels: [(tprotect_api::RELATIONSHIP_LABEL.to_string(), relationship.clone())].into(),
                    annotations: annotations.clone(),
                    spec: (**spec).clone(),
                    ..Default::default()
                });
            }
        }
        Action::SetDesiredState {
            cluster: key,
            desired,
            promoted_snapshot,
            discard_destination_changes,
            ..
        } => {
            if let Some(c) = cluster(observed, *key)
                && let Some(amr) = c.amr.as_mut()
            {
                amr.spec.desired_state = Some(*desired);
                amr.spec.promoted_snapshot = promoted_snapshot.clone();
                if *discard_destination_changes {
                    amr.annotations.insert(
                        tprotect_api::DISCARD_DESTINATION_CHANGES_ANNOTATION.into(),
                        "true".into(),
                    );
                }
            }
        }
        Action::DeleteAmr { cluster: key, .. } => {
            if let Some(c) = cluster(observed, *key)
                && let Some(amr) = c.amr.as_mut()
            {
                amr.deleting = true;
            }
        }
        Action::RecordDestinationApp {
            cluster: key,
            namespace,
            name,
            ..
        } => {
            let snapshot = observed.clone();
            if let Some(record) = observed.record.as_mut() {
                note_destination_app(record, &snapshot, *key, namespace, name);
            }
        }
        Action::SetRecurrence {
            cluster: key,
            target,
            namespace,
            name,
            recurrence_rule,
            ..
        } => {
            if let Some(c) = cluster(observed, *key) {
                let named = |n: &str, m: &str| n == namespace && m == name;
                let rule = match target {
                    RecurrenceTarget::AppMirrorRelationship => c
                        .amr
                        .as_mut()
                        .filter(|a| named(&a.namespace, &a.name))
                        .map(|a| &mut a.spec.recurrence_rule),
                    RecurrenceTarget::Schedule => c
                        .schedules
                        .iter_mut()
                        .find(|s| named(&s.namespace, &s.name))
                        .map(|s| &mut s.spec.recurrence_rule),
                };
                if let Some(rule) = rule {
                    *rule = Some(recurrence_rule.clone());
                }
            }
        }
    }
}

/// How `status.destinationApplicationRef` is written (NetApp documents only "the name of the destination
/// Application").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppRefForm {
    Name,
    NamespaceSlashName,
    Absent,
}

/// One plausible reading of what NetApp leaves undocumented about the controller. The planner must reach the
/// same ends under every one of them ([`Controller::variants`]); the documented reading is what a client dry run
/// prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Controller {
    pub app_ref: AppRefForm,
    /// The promoted Application is named otherwise than the source's (and carries the AMR's relationship
    /// label, as this project's resources do).
    pub renames_app: bool,
    /// States written in lower case.
    pub lower_case_states: bool,
    /// `appArchivePath` written with a trailing `/`.
    pub archive_slash: bool,
}

impl Controller {
    /// The reading documented in shared/docs/trident-protect.md and played by the stand-in's default profile.
    pub const DOCUMENTED: Controller = Controller {
        app_ref: AppRefForm::Name,
        renames_app: false,
        lower_case_states: false,
        archive_slash: false,
    };

    /// Every reading the planner is held to.
    pub fn variants() -> Vec<Controller> {
        let mut all = Vec::new();
        for app_ref in [
            AppRefForm::Name,
            AppRefForm::NamespaceSlashName,
            AppRefForm::Absent,
        ] {
            for renames_app in [false, true] {
                for lower_case_states in [false, true] {
                    for archive_slash in [false, true] {
                        all.push(Controller {
                            app_ref,
                            renames_app,
                            lower_case_states,
                            archive_slash,
                        });
                    }
                }
            }
        }
        all
    }

    fn state(self, state: &str) -> String {
        if self.lower_case_states {
            state.to_ascii_lowercase()
        } else {
            state.to_string()
        }
    }
}

/// Trident protect's documented reactions, all at once: AMRs reach their desired state (a promotion creates the
/// destination Application; a resync removes it), snapshots complete, deleted AMRs go.
pub fn controller(observed: &mut Observed) {
    controller_as(observed, Controller::DOCUMENTED)
}

/// The controller's reactions as `variant` reads the undocumented parts.
pub fn controller_as(observed: &mut Observed, variant: Controller) {
    let relationship = observed.relationship.clone();
    for key in ClusterKey::BOTH {
        // Replicating (establishing, resyncing) reads the source: it cannot progress while that cluster is down.
        let peer_reachable = observed.state(key.other()).is_some();
        let Some(c) = cluster(observed, key) else { continue };
        for vault in c.vaults.values_mut().filter(|v| v.state.is_empty()) {
            vault.state = variant.state(tprotect_api::APP_VAULT_STATE_AVAILABLE);
        }
        if c.amr.as_ref().is_some_and(|a| a.deleting) {
            c.amr = None;
        }
        for snapshot in c.snapshots.iter_mut().chain(c.shutdown_snapshots.iter_mut()) {
            if !read::state_is(&snapshot.state, SNAPSHOT_STATE_COMPLETED) {
                let app = c
                    .applications
                    .iter()
                    .find(|a| a.namespace == snapshot.namespace)
                    .map(|a| format!("{}_{}", a.name, a.uid))
                    .unwrap_or_else(|| "app".into());
                snapshot.state = variant.state(SNAPSHOT_STATE_COMPLETED);
                snapshot.app_archive_path = Some(format!(
                    "{app}/snapshots/20260101000000_{}_{SIMULATED_UID}{}",
                    snapshot.name,
                    if variant.archive_slash { "/" } else { "" }
                ));
            }
        }
        let Some(amr) = c.amr.as_mut() else { continue };
        let destination_ns = amr.mapping().first().map(|(_, d)| d.clone()).unwrap_or_default();
        let source_name = amr.spec.source_application_name.clone().unwrap_or_default();
        let promoted_name = if variant.renames_app {
            format!("{source_name}-promoted")
        } else {
            source_name.clone()
        };
        let status = amr
            .status
            .get_or_insert_with(AppMirrorRelationshipStatus::default);
        let state = status.state.clone().unwrap_or_default();
        match amr.spec.desired_state {
            Some(DesiredState::Promoted) if !read::state_is(&state, AMR_STATE_PROMOTED) => {
                status.state = Some(variant.state(AMR_STATE_PROMOTED));
                status.destination_application_ref = match variant.app_ref {
                    AppRefForm::Name => Some(promoted_name.clone()),
                    AppRefForm::NamespaceSlashName => Some(format!("{destination_ns}/{promoted_name}")),
                    AppRefForm::Absent => None,
                };
                if c.application(&destination_ns, &promoted_name).is_none() {
                    c.applications.push(AppView {
                        namespace: destination_ns,
                        name: promoted_name,
                        uid: format!("{SIMULATED_UID}-{}", c.context),
                        labels: [(tprotect_api::RELATIONSHIP_LABEL.to_string(), relationship.clone())].into(),
                    });
                }
            }
            Some(DesiredState::Established)
                if !read::state_is(&state, AMR_STATE_ESTABLISHED) && peer_reachable =>
            {
                let was_promoted = read::state_is(&state, AMR_STATE_PROMOTED);
                status.state = Some(variant.state(AMR_STATE_ESTABLISHED));
                if was_promoted {
                    status.destination_application_ref = None;
                    c.applications
                        .retain(|a| !(a.namespace == destination_ns && a.name == promoted_name));
                }
            }
            _ => {}
        }
    }
}

/// The whole plan from `observed` to `goal`, as the planner would walk it if every step succeeded and the
/// controller behaved as documented. Each entry: the step, and the observation it was planned from.
pub fn dry_run(observed: &Observed, goal: &Goal) -> Result<Vec<Step>, PlanError> {
    dry_run_as(observed, goal, Controller::DOCUMENTED)
}

/// [`dry_run`] with the controller reading the undocumented parts as `variant` does.
pub fn dry_run_as(observed: &Observed, goal: &Goal, variant: Controller) -> Result<Vec<Step>, PlanError> {
    let mut observed = observed.clone();
    let mut steps = Vec::new();
    for _ in 0..MAX_STEPS {
        let step = plan(&observed, goal)?;
        match &step {
            Step::Act(action) => apply(&mut observed, action),
            Step::Wait(_) => controller_as(&mut observed, variant),
            Step::Done(_) => {
                steps.push(step);
                return Ok(steps);
            }
        }
        steps.push(step);
    }
    Err(PlanError::conflict(
        &observed.relationship,
        format!("internal: the plan did not converge in {MAX_STEPS} steps"),
    ))
}
