//! What the planner sees and what it asks for. Plain data: observations are built from the two clusters by
//! `tprotect-lifecycle`'s `observe`, steps are carried out by its `execute`, and in between [`crate::plan`]
//! decides.
//!
//! Clusters are named by the kubeconfig context the user passed ([`ClusterKey`]), never by role: roles move when a
//! relationship is reversed. A cluster's durable identity is the UID of its `kube-system` namespace.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tprotect_api::{AppMirrorRelationshipSpec, AppMirrorRelationshipStatus, DesiredState, ScheduleSpec};

/// One of the two clusters of a command: the one named by `--context` or the one named by `--peer-context`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ClusterKey {
    Context,
    Peer,
}

impl ClusterKey {
    pub const BOTH: [ClusterKey; 2] = [ClusterKey::Context, ClusterKey::Peer];

    pub fn other(self) -> Self {
        match self {
            ClusterKey::Context => ClusterKey::Peer,
            ClusterKey::Peer => ClusterKey::Context,
        }
    }
}

/// The kubeconfig context names of the two clusters of a command, for words about them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Contexts {
    /// `--context` (or the current context).
    pub context: String,
    /// `--peer-context`.
    pub peer: String,
}

impl Contexts {
    pub fn new(context: impl Into<String>, peer: impl Into<String>) -> Self {
        Contexts {
            context: context.into(),
            peer: peer.into(),
        }
    }

    pub fn name(&self, key: ClusterKey) -> &str {
        match key {
            ClusterKey::Context => &self.context,
            ClusterKey::Peer => &self.peer,
        }
    }
}

/// The lifecycle operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    Setup,
    Failover,
    Resync,
    ReverseResync,
    Reverse,
    Failback,
    Delete,
}

impl Operation {
    /// The command name, as typed after `kubectl tprotect`.
    pub fn command(self) -> &'static str {
        match self {
            Operation::Setup => "setup",
            Operation::Failover => "failover",
            Operation::Resync => "resync",
            Operation::ReverseResync => "reverse-resync",
            Operation::Reverse => "reverse",
            Operation::Failback => "failback",
            Operation::Delete => "delete",
        }
    }

    /// Operations whose intermediate states are ambiguous without the record kept in the lock
    /// (the AMR is deleted on one cluster and re-created on the other).
    pub fn needs_record(self) -> bool {
        matches!(
            self,
            Operation::ReverseResync | Operation::Reverse | Operation::Failback
        )
    }

    /// Operations that keep a record in the lock from their start to their end (also across `--no-wait` and
    /// interruptions), so `status` and every other command see them in progress. Setup is seen in its objects;
    /// delete ends everything.
    pub fn keeps_record(self) -> bool {
        self.needs_record() || matches!(self, Operation::Failover | Operation::Resync)
    }

    pub const ALL: [Operation; 7] = [
        Operation::Setup,
        Operation::Failover,
        Operation::Resync,
        Operation::ReverseResync,
        Operation::Reverse,
        Operation::Failback,
        Operation::Delete,
    ];
}

/// The parameters of `setup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetupParams {
    pub source: ClusterKey,
    pub app: String,
    pub source_namespace: String,
    pub destination_namespace: String,
    pub source_vault: String,
    pub destination_vault: String,
    pub storage_class: Option<String>,
    /// Storage class on the source cluster, used when the relationship is reversed.
    pub source_storage_class: Option<String>,
    /// `DTSTART:…\nRRULE:FREQ=MINUTELY;INTERVAL=5` (DTSTART fixed when the command starts).
    pub recurrence_rule: String,
    pub create_app: bool,
    pub initial_snapshot: bool,
}

/// What a command asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Goal {
    Setup(SetupParams),
    Failover {
        /// Fail over even if the relationship has never completed a transfer.
        force: bool,
    },
    Resync,
    ReverseResync,
    Reverse,
    Failback,
    Delete,
}

impl Goal {
    pub fn operation(&self) -> Operation {
        match self {
            Goal::Setup(_) => Operation::Setup,
            Goal::Failover { .. } => Operation::Failover,
            Goal::Resync => Operation::Resync,
            Goal::ReverseResync => Operation::ReverseResync,
            Goal::Reverse => Operation::Reverse,
            Goal::Failback => Operation::Failback,
            Goal::Delete => Operation::Delete,
        }
    }
}

/// The relationship as it was when an operation that moves the AMR started: enough to re-create it in the
/// other direction after the AMR is gone. Kept in the lock (a Lease annotation), so a re-run resumes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationRecord {
    pub operation: Operation,
    /// Short random id of this run of the operation; names the ShutdownSnapshot.
    pub id: String,
    /// Cluster id (kube-system UID) of the cluster that held the AMR when the operation started.
    pub initial_destination: String,
    /// Namespace of the AMR when the operation started.
    pub amr_namespace: String,
    /// Owned fields of the AMR spec when the operation started.
    pub spec: AppMirrorRelationshipSpec,
    /// Our annotations on the AMR when the operation started (e.g. the peer storage class).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// When the operation started (RFC 3339), for messages.
    pub started: String,
    /// The Application a promotion created (`namespace/name`; a bare name in records of earlier versions), by
    /// cluster id, noted before the AMR that names it is deleted.
    #[serde(default)]
    pub destination_apps: BTreeMap<String, String>,
}

impl OperationRecord {
    /// The namespace mapping at the start as (source, destination) pairs.
    pub fn mapping(&self) -> Vec<(String, String)> {
        mapping_of(&self.spec)
    }
}

/// `spec.namespaceMapping` as (source, destination) pairs.
fn mapping_of(spec: &AppMirrorRelationshipSpec) -> Vec<(String, String)> {
    spec.namespace_mapping
        .iter()
        .flatten()
        .map(|m| (m.source.clone(), m.destination.clone()))
        .collect()
}

/// An AMR as observed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AmrView {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    pub generation: i64,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub spec: AppMirrorRelationshipSpec,
    pub status: Option<AppMirrorRelationshipStatus>,
    pub deleting: bool,
}

impl AmrView {
    pub fn desired(&self) -> Option<DesiredState> {
        self.spec.desired_state
    }

    /// `status.state`, empty when unset.
    pub fn state(&self) -> &str {
        self.status
            .as_ref()
            .and_then(|s| s.state.as_deref())
            .unwrap_or("")
    }

    /// Whether `status.state` is `state` (read tolerantly: see [`crate::states::state_is`]).
    pub fn is(&self, state: &str) -> bool {
        crate::states::state_is(self.state(), state)
    }

    /// Whether `status.state` is a failure state (every plausible spelling: [`crate::states::FAILURE_STATES`]).
    pub fn failed(&self) -> bool {
        crate::states::is_failure_state(self.state())
    }

    /// `status.error`, when set and not empty.
    pub fn error(&self) -> Option<&str> {
        self.status
            .as_ref()
            .and_then(|s| s.error.as_deref())
            .filter(|e| !e.is_empty())
    }

    /// The namespace mapping as (source, destination) pairs.
    pub fn mapping(&self) -> Vec<(String, String)> {
        mapping_of(&self.spec)
    }
}

/// An Application as observed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppView {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
}

/// A Schedule as observed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScheduleView {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub spec: ScheduleSpec,
}

impl ScheduleView {
    /// A replication schedule by the project's label or by NetApp's naming.
    pub fn is_replication(&self) -> bool {
        self.labels
            .get(tprotect_api::REPLICATION_SCHEDULE_LABEL)
            .is_some_and(|v| v == "true")
            || self.name.starts_with(tprotect_api::REPLICATION_SCHEDULE_PREFIX)
    }

    pub fn enabled(&self) -> bool {
        self.spec.enabled.unwrap_or(true)
    }

    pub fn application(&self) -> &str {
        self.spec.application_ref.as_deref().unwrap_or("")
    }
}

/// An AppVault as observed (in the `trident-protect` namespace).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VaultView {
    pub name: String,
    pub state: String,
    pub error: Option<String>,
    /// Names of the Secrets its providerCredentials reference, with the keys they need.
    pub secret_refs: BTreeMap<String, BTreeSet<String>>,
}

/// A Secret as observed: its name and key names, never its data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecretView {
    pub name: String,
    pub keys: BTreeSet<String>,
}

/// A Snapshot or ShutdownSnapshot as observed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnapshotView {
    pub namespace: String,
    pub name: String,
    pub state: String,
    pub error: Option<String>,
    pub app_archive_path: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// A Namespace as observed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NamespaceView {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// Schedules the plugin removed from a cluster while it was a destination, kept to be restored when it becomes
/// the source again (a ConfigMap in `trident-protect`), so protection policies are never lost.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SavedSchedules {
    pub schedules: Vec<SavedSchedule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedSchedule {
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The spec exactly as it was stored (raw JSON): fields this version does not know survive the round trip.
    pub spec: serde_json::Value,
    /// The schedule was enabled before the plugin disabled it for a planned swap.
    #[serde(default)]
    pub was_enabled: bool,
}

impl SavedSchedule {
    /// The spec as it is re-created: as stored, `enabled` as it was before the plugin disabled it.
    pub fn restored_spec(&self) -> serde_json::Value {
        let mut spec = match &self.spec {
            serde_json::Value::Object(fields) => fields.clone(),
            _ => serde_json::Map::new(),
        };
        spec.insert("enabled".to_string(), self.was_enabled.into());
        serde_json::Value::Object(spec)
    }
}

/// Everything observed on one reachable cluster that concerns one relationship.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClusterState {
    pub context: String,
    /// UID of the `kube-system` namespace.
    pub cluster_id: String,
    /// The relationship's AMR on this cluster, if any.
    pub amr: Option<AmrView>,
    /// Applications in the relationship's namespaces.
    pub applications: Vec<AppView>,
    /// Schedules in the relationship's namespaces.
    pub schedules: Vec<ScheduleView>,
    /// AppVaults by name (all of `trident-protect`).
    pub vaults: BTreeMap<String, VaultView>,
    /// Secrets in `trident-protect` referenced by vaults, by name.
    pub secrets: BTreeMap<String, SecretView>,
    /// Why the Secrets of `trident-protect` could not be read (no permission), if they could not.
    pub secrets_unreadable: Option<String>,
    /// The relationship's namespaces that exist, by name.
    pub namespaces: BTreeMap<String, NamespaceView>,
    /// Snapshots in the relationship's namespaces.
    pub snapshots: Vec<SnapshotView>,
    /// ShutdownSnapshots in the relationship's namespaces.
    pub shutdown_snapshots: Vec<SnapshotView>,
    pub storage_classes: BTreeSet<String>,
    pub saved_schedules: SavedSchedules,
    /// The AMRs of OTHER relationships on this cluster (read for `setup` only: one relationship per
    /// application and per destination namespace).
    pub other_amrs: Vec<AmrView>,
}

impl ClusterState {
    pub fn application(&self, namespace: &str, name: &str) -> Option<&AppView> {
        self.applications
            .iter()
            .find(|a| a.namespace == namespace && a.name == name)
    }

    pub fn shutdown_snapshot(&self, namespace: &str, name: &str) -> Option<&SnapshotView> {
        self.shutdown_snapshots
            .iter()
            .find(|s| s.namespace == namespace && s.name == name)
    }

    pub fn snapshot(&self, namespace: &str, name: &str) -> Option<&SnapshotView> {
        self.snapshots
            .iter()
            .find(|s| s.namespace == namespace && s.name == name)
    }

    /// Schedules of `app` in `namespace`.
    pub fn schedules_of<'a>(
        &'a self,
        namespace: &'a str,
        app: &'a str,
    ) -> impl Iterator<Item = &'a ScheduleView> + 'a {
        self.schedules
            .iter()
            .filter(move |s| s.namespace == namespace && s.application() == app)
    }
}

/// One cluster: observed, or why not.
#[derive(Debug, Clone, PartialEq)]
pub enum Reach {
    Reachable(Box<ClusterState>),
    Unreachable { context: String, error: String },
}

impl Reach {
    pub fn state(&self) -> Option<&ClusterState> {
        match self {
            Reach::Reachable(state) => Some(state),
            Reach::Unreachable { .. } => None,
        }
    }

    /// The kubeconfig context of the cluster, reached or not.
    pub fn context(&self) -> &str {
        match self {
            Reach::Reachable(state) => &state.context,
            Reach::Unreachable { context, .. } => context,
        }
    }
}

/// Both clusters, as observed at one moment, plus the operation record from the lock.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub relationship: String,
    pub context: Reach,
    pub peer: Reach,
    pub record: Option<OperationRecord>,
}

impl Observed {
    pub fn cluster(&self, key: ClusterKey) -> &Reach {
        match key {
            ClusterKey::Context => &self.context,
            ClusterKey::Peer => &self.peer,
        }
    }

    pub fn cluster_mut(&mut self, key: ClusterKey) -> &mut Reach {
        match key {
            ClusterKey::Context => &mut self.context,
            ClusterKey::Peer => &mut self.peer,
        }
    }

    pub fn state(&self, key: ClusterKey) -> Option<&ClusterState> {
        self.cluster(key).state()
    }

    /// The kubeconfig context of one cluster, reached or not.
    pub fn context_of(&self, key: ClusterKey) -> &str {
        self.cluster(key).context()
    }

    /// The cluster whose kube-system UID is `cluster_id`.
    pub fn key_of(&self, cluster_id: &str) -> Option<ClusterKey> {
        ClusterKey::BOTH
            .into_iter()
            .find(|k| self.state(*k).is_some_and(|s| s.cluster_id == cluster_id))
    }

    /// Where the relationship's AMR is: `Ok(None)` when on neither cluster; an error when on both.
    pub fn amr_location(&self) -> Result<Option<(ClusterKey, &AmrView)>, crate::PlanError> {
        let found: Vec<(ClusterKey, &AmrView)> = ClusterKey::BOTH
            .into_iter()
            .filter_map(|k| self.state(k).and_then(|s| s.amr.as_ref()).map(|a| (k, a)))
            .collect();
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            _ => Err(crate::PlanError::AmrOnBothClusters {
                name: self.relationship.clone(),
            }),
        }
    }
}

/// The cluster-level change one step makes. Each is idempotent: performing it again changes nothing.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum Action {
    /// Create a namespace (labelled with the relationship).
    CreateNamespace { cluster: ClusterKey, name: String },
    /// Copy a Secret from one cluster's `trident-protect` namespace to the other's (data never leaves the executor).
    CopySecret {
        from: ClusterKey,
        to: ClusterKey,
        name: String,
    },
    /// Copy an AppVault (spec as stored, unknown fields included) to the other cluster.
    CopyAppVault {
        from: ClusterKey,
        to: ClusterKey,
        name: String,
    },
    /// Create an Application over `namespaces`.
    CreateApplication {
        cluster: ClusterKey,
        namespace: String,
        name: String,
        namespaces: Vec<String>,
    },
    /// Change the recurrence rule of the relationship's AMR or replication Schedule (`setup` run again with
    /// another interval).
    SetRecurrence {
        cluster: ClusterKey,
        target: RecurrenceTarget,
        namespace: String,
        name: String,
        recurrence_rule: String,
        /// The rule it had.
        was: String,
    },
    /// Create the replication Schedule of an application.
    CreateReplicationSchedule {
        cluster: ClusterKey,
        namespace: String,
        name: String,
        application: String,
        app_vault: String,
        recurrence_rule: String,
    },
    /// Disable an enabled Schedule before a planned swap, marking it so it is enabled again afterwards.
    DisableSchedule {
        cluster: ClusterKey,
        namespace: String,
        name: String,
    },
    /// Save the Schedules of a (new) destination, then delete them: schedules left on a destination make its
    /// volume snapshots fail. Replication schedules are not saved (they are re-created for each direction).
    RemoveDestinationSchedules {
        cluster: ClusterKey,
        namespace: String,
        names: Vec<String>,
    },
    /// Re-create and enable the Schedules saved for this cluster, now that it is the source again.
    RestoreSchedules { cluster: ClusterKey, names: Vec<String> },
    /// Create a Snapshot (`shutdown`: a ShutdownSnapshot) of an application.
    CreateSnapshot {
        cluster: ClusterKey,
        namespace: String,
        name: String,
        application: String,
        app_vault: String,
        shutdown: bool,
    },
    /// Create the AMR.
    CreateAmr {
        cluster: ClusterKey,
        namespace: String,
        name: String,
        spec: Box<AppMirrorRelationshipSpec>,
        annotations: BTreeMap<String, String>,
    },
    /// Change `spec.desiredState` (with `promotedSnapshot` for a planned swap; with the discard annotation for a
    /// resync) by a merge patch of only those fields.
    SetDesiredState {
        cluster: ClusterKey,
        namespace: String,
        name: String,
        desired: DesiredState,
        promoted_snapshot: Option<String>,
        discard_destination_changes: bool,
    },
    /// Delete the AMR (precondition: its UID).
    DeleteAmr {
        cluster: ClusterKey,
        namespace: String,
        name: String,
        uid: String,
    },
    /// Note in the lock's operation record the Application a promotion created on `cluster`, before the AMR
    /// that names it is deleted.
    RecordDestinationApp {
        cluster: ClusterKey,
        namespace: String,
        name: String,
        found_by: FoundBy,
    },
}

/// What a [`Action::SetRecurrence`] changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RecurrenceTarget {
    AppMirrorRelationship,
    Schedule,
}

impl RecurrenceTarget {
    pub fn kind(self) -> &'static str {
        match self {
            RecurrenceTarget::AppMirrorRelationship => "AppMirrorRelationship",
            RecurrenceTarget::Schedule => "Schedule",
        }
    }
}

impl Action {
    /// The cluster the action writes to.
    pub fn cluster(&self) -> Option<ClusterKey> {
        match self {
            Action::CreateNamespace { cluster, .. }
            | Action::CreateApplication { cluster, .. }
            | Action::CreateReplicationSchedule { cluster, .. }
            | Action::SetRecurrence { cluster, .. }
            | Action::DisableSchedule { cluster, .. }
            | Action::RemoveDestinationSchedules { cluster, .. }
            | Action::RestoreSchedules { cluster, .. }
            | Action::CreateSnapshot { cluster, .. }
            | Action::CreateAmr { cluster, .. }
            | Action::SetDesiredState { cluster, .. }
            | Action::DeleteAmr { cluster, .. } => Some(*cluster),
            Action::CopySecret { to, .. } | Action::CopyAppVault { to, .. } => Some(*to),
            Action::RecordDestinationApp { .. } => None,
        }
    }

    /// Destroys data on a cluster (the destination's changes since a failover).
    pub fn discards_data(&self) -> bool {
        matches!(
            self,
            Action::SetDesiredState {
                discard_destination_changes: true,
                ..
            }
        )
    }

    /// Cannot be undone by the plugin: deleting the AMR (the one object that names the relationship), discarding
    /// a destination, shutting the source down for a planned swap. The planner resolves every precondition of
    /// the rest of an operation before such a step.
    pub fn irreversible(&self) -> bool {
        self.discards_data()
            || matches!(
                self,
                Action::DeleteAmr { .. } | Action::CreateSnapshot { shutdown: true, .. }
            )
    }

    /// Changes an object on a cluster (not only the lock's record).
    pub fn writes(&self) -> bool {
        !matches!(self, Action::RecordDestinationApp { .. })
    }
}

/// What to wait for before observing again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "waitFor", rename_all = "camelCase")]
pub enum WaitFor {
    /// The AMR's `status.state` reaches `state`.
    AmrState {
        cluster: ClusterKey,
        namespace: String,
        name: String,
        state: String,
    },
    /// The (Shutdown)Snapshot completes.
    SnapshotCompleted {
        cluster: ClusterKey,
        namespace: String,
        name: String,
        shutdown: bool,
    },
    /// The AMR is gone (it was being deleted).
    AmrGone {
        cluster: ClusterKey,
        namespace: String,
        name: String,
    },
}

impl WaitFor {
    pub fn cluster(&self) -> ClusterKey {
        match self {
            WaitFor::AmrState { cluster, .. }
            | WaitFor::SnapshotCompleted { cluster, .. }
            | WaitFor::AmrGone { cluster, .. } => *cluster,
        }
    }
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// One line for the user, e.g. "rel1 is Promoted on tprotect-destination".
    pub message: String,
    /// Where the AMR is at the end (None after delete).
    pub amr_cluster: Option<ClusterKey>,
}

/// The planner's answer: the one next thing to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "camelCase")]
pub enum Step {
    Act(Action),
    Wait(WaitFor),
    Done(Outcome),
}

/// How the destination Application was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FoundBy {
    /// `status.destinationApplicationRef`, as a bare name or `namespace/name`.
    StatusRef,
    /// The AMR's `sourceApplicationName` in a mapped destination namespace (the reference was absent or named
    /// nothing that exists).
    SourceName,
    /// The only Application in the destination namespaces labelled with the relationship.
    RelationshipLabel,
}

impl FoundBy {
    /// For `-v` output: where the name came from.
    pub fn describe(self) -> &'static str {
        match self {
            FoundBy::StatusRef => "from status.destinationApplicationRef",
            FoundBy::SourceName => {
                "status.destinationApplicationRef named no existing Application: by the AMR's sourceApplicationName in its destination namespace"
            }
            FoundBy::RelationshipLabel => {
                "status.destinationApplicationRef named no existing Application: the one Application labelled with the relationship in its destination namespaces"
            }
        }
    }
}
