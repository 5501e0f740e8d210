//! Snapshot and ShutdownSnapshot: an application snapshot in an AppVault (the latter also stops the app).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::schedule::ReclaimPolicy;

/// Defines a snapshot spec struct; Snapshot and ShutdownSnapshot share one schema in NetApp's CRDs.
macro_rules! snapshot_spec {
    ($(#[doc = $doc:literal])* #[kube($($kube:tt)*)] $name:ident) => {
        protect_kind_spec! {
            $(#[doc = $doc])*
            #[kube($($kube)*)]
            pub struct $name {
                /// AppVault the snapshot goes to (exclusive with `appVaultTargetsRef`).
                pub app_vault_ref: Option<String>,
                /// AppVaultTargets CR (NetApp Backup and Recovery service only).
                pub app_vault_targets_ref: Option<String>,
                /// The Application to snapshot.
                #[schemars(required)]
                pub application_ref: Option<String>,
                /// Delete the snapshot and its CR once complete (default false).
                #[schemars(extend("default" = false))]
                pub cleanup_snapshot: Option<bool>,
                /// Timeout for the whole snapshot (a Go duration; default 60 minutes).
                pub completion_timeout: Option<String>,
                /// What happens to the AppArchive when the CR is deleted (default `Delete`).
                #[schemars(extend("default" = "Delete"))]
                pub reclaim_policy: Option<ReclaimPolicy>,
                /// What happens to a ReplicateSnapshot when its CR is deleted (default `Retain`).
                #[schemars(extend("default" = "Retain"))]
                pub replicate_snapshot_reclaim_policy: Option<ReclaimPolicy>,
                /// Timeout for VolumeSnapshot creation times to be set (default 5 minutes).
                pub volume_snapshots_created_timeout: Option<String>,
                /// Timeout for VolumeSnapshots to be ready to use (default 30 minutes).
                pub volume_snapshots_ready_to_use_timeout: Option<String>,
            }
        }
    };
}

snapshot_spec! {
    /// Spec of a Snapshot: which application to snapshot into which AppVault.
    #[kube(
        kind = "Snapshot",
        plural = "snapshots",
        status = "SnapshotStatus",
        doc = "Snapshot is the Schema for the snapshots API",
        printcolumn(name = "App", type_ = "string", json_path = ".spec.applicationRef"),
        printcolumn(name = "Reclaim Policy", type_ = "string", json_path = ".spec.reclaimPolicy"),
        printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
        printcolumn(name = "Error", type_ = "string", json_path = ".status.error")
    )]
    SnapshotSpec
}

snapshot_spec! {
    /// Spec of a ShutdownSnapshot: stop the application, then snapshot it (planned failover).
    #[kube(
        kind = "ShutdownSnapshot",
        plural = "shutdownsnapshots",
        status = "SnapshotStatus",
        doc = "ShutdownSnapshot is the Schema for the shutdownsnapshots API",
        printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
        printcolumn(name = "Error", type_ = "string", json_path = ".status.error")
    )]
    ShutdownSnapshotSpec
}

/// Observed state of a Snapshot or ShutdownSnapshot.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotStatus {
    /// Path of the archive in the AppVault; its basename is what `promotedSnapshot` takes.
    pub app_archive_path: Option<String>,
    /// AppVault holding the snapshot contents.
    pub app_vault_ref: Option<String>,
    /// When the snapshot completed.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::nullable_date_time")]
    pub completion_timestamp: Option<Time>,
    /// Conditions of the snapshot.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Option<Vec<Condition>>,
    /// Most recent error; may be transient.
    pub error: Option<String>,
    /// Results of post-snapshot exec hooks.
    pub post_snapshot_exec_hooks_run_results: Option<Vec<ExecHookRunResult>>,
    /// Results of pre-snapshot exec hooks.
    pub pre_snapshot_exec_hooks_run_results: Option<Vec<ExecHookRunResult>>,
    /// Size of the snapshot in bytes.
    pub restore_size: Option<i64>,
    /// High-level state: a free string, see `SNAPSHOT_STATE_*`.
    #[schemars(required)]
    pub state: Option<String>,
    /// Per-VM freeze/snapshot/unfreeze progress.
    pub vm_snapshot_progress: Option<Vec<VmSnapshotProgress>>,
    /// Volumes in the snapshot.
    pub volume_infos: Option<Vec<VolumeInfo>>,
    /// VolumeSnapshots tracked internally.
    pub volume_snapshots: Option<Vec<NamespacedName>>,
    /// Warnings raised while snapshotting.
    pub warnings: Option<Vec<String>>,
}

/// Result of running one exec hook.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecHookRunResult {
    /// When the run finished, failed or not.
    pub completion_timestamp: Option<Time>,
    /// Image of the container the hook ran in.
    pub container_image: String,
    /// Name of the container the hook ran in.
    pub container_name: String,
    /// The ExecHook.
    pub exec_hook_ref: String,
    /// UID of the ExecHook.
    #[serde(rename = "execHookUID")]
    pub exec_hook_uid: String,
    /// Failures of the run.
    pub failures: Option<Vec<ExecHookFailure>>,
    /// Job that ran the hook.
    pub job_name: Option<String>,
    /// Namespace of the container.
    pub namespace: String,
    /// Pod of the container.
    pub pod_name: String,
    /// UID of the pod.
    #[serde(rename = "podUID")]
    pub pod_uid: String,
    /// When the run started.
    pub start_timestamp: Option<Time>,
}

/// One failure of an exec hook run.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecHookFailure {
    /// Error outside the script itself.
    pub error: Option<String>,
    /// Non-zero exit code of the script.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::integer")]
    pub exit_code: Option<i64>,
    /// Whether the script itself failed.
    pub is_exec_error: bool,
    /// Whether the hook timed out.
    pub is_timeout: bool,
    /// Captured stderr.
    pub stderr: Option<String>,
    /// Time the hook was given, in minutes.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::integer")]
    pub timeout_minutes: Option<i64>,
}

/// Freeze/snapshot/unfreeze progress of one VirtualMachine.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VmSnapshotProgress {
    /// Error of the freeze, if any.
    pub freeze_warning: Option<String>,
    /// Whether the VM was frozen.
    pub frozen: bool,
    /// The virt-launcher pod.
    pub pod_name: String,
    /// UID of the virt-launcher pod at freeze time.
    #[serde(rename = "podUID")]
    pub pod_uid: String,
    /// PVCs attached to the VM.
    #[serde(rename = "pvcNames")]
    pub pvc_names: Vec<String>,
    /// Error of the unfreeze, if any.
    pub unfreeze_warning: Option<String>,
    /// Whether the VM was unfrozen (or skipped).
    pub unfrozen: bool,
    /// VirtualMachine name.
    #[serde(rename = "vmName")]
    pub vm_name: String,
    /// VirtualMachine namespace.
    #[serde(rename = "vmNamespace")]
    pub vm_namespace: String,
}

/// One volume of a snapshot.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeInfo {
    /// Capacity of the volume.
    pub capacity: Option<VolumeCapacity>,
    /// CBS volume ID.
    #[serde(rename = "cbsVolumeID")]
    pub cbs_volume_id: Option<String>,
    /// CBS volume name.
    pub cbs_volume_name: Option<String>,
    /// When the volume was last snapshotted.
    pub last_snapshot_time: Option<Time>,
    /// PersistentVolume name.
    pub pv_name: Option<String>,
    /// PersistentVolumeClaim name.
    pub pvc_name: Option<String>,
    /// PersistentVolumeClaim namespace.
    pub pvc_namespace: Option<String>,
    /// PersistentVolumeClaim UID.
    #[serde(rename = "pvcUID")]
    pub pvc_uid: Option<String>,
    /// ID of the storage system.
    #[serde(rename = "systemID")]
    pub system_id: Option<String>,
    /// Name of the storage system.
    pub system_name: Option<String>,
    /// Trident backend UUID.
    #[serde(rename = "tridentBackendID")]
    pub trident_backend_id: Option<String>,
}

/// Capacity of one snapshot volume, in bytes.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeCapacity {
    /// Allocated bytes.
    pub allocated: Option<i64>,
    /// Logical used bytes.
    pub logical_used_size: Option<i64>,
    /// Used bytes.
    pub used: Option<i64>,
}

/// Name and namespace of an object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct NamespacedName {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
}

impl SnapshotStatus {
    /// Basename of `appArchivePath`: the value `AppMirrorRelationship.spec.promotedSnapshot` takes.
    pub fn archive_basename(&self) -> Option<&str> {
        crate::archive_basename(self.app_archive_path.as_deref()?)
    }
}

impl Snapshot {
    /// `status.state`, if Trident protect has written one.
    pub fn state(&self) -> Option<&str> {
        self.status.as_ref()?.state.as_deref()
    }
}

impl ShutdownSnapshot {
    /// `status.state`, if Trident protect has written one.
    pub fn state(&self) -> Option<&str> {
        self.status.as_ref()?.state.as_deref()
    }
}
