//! Schedule: periodic snapshots and backups of an Application (and the replication schedule).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

protect_kind_spec! {
    /// Spec of a Schedule: when to take snapshots/backups of which application, and how many to keep.
    #[kube(
        kind = "Schedule",
        plural = "schedules",
        status = "ScheduleStatus",
        doc = "Schedule is the Schema for the schedules API",
        printcolumn(name = "Enabled", type_ = "boolean", json_path = ".spec.enabled"),
        printcolumn(name = "Granularity", type_ = "string", json_path = ".spec.granularity"),
        printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
        printcolumn(name = "Error", type_ = "string", json_path = ".status.error")
    )]
    pub struct ScheduleSpec {
        /// AppVault the snapshots/backups go to (exclusive with `appVaultTargetsRef`).
        pub app_vault_ref: Option<String>,
        /// AppVaultTargets CR (NetApp Backup and Recovery service only).
        pub app_vault_targets_ref: Option<String>,
        /// The Application.
        #[schemars(required)]
        pub application_ref: Option<String>,
        /// What happens to a Backup deleted within its retention period (default `Retain`).
        #[schemars(extend("default" = "Retain"))]
        pub backup_reclaim_policy: Option<ReclaimPolicy>,
        /// Backups to keep, a decimal string; `"0"` creates none.
        #[schemars(required, length(min = 0, max = 63), regex(pattern = r"^(0|([1-9][0-9]*))$"))]
        pub backup_retention: Option<String>,
        /// Data mover for backups (immutable once set).
        pub data_mover: Option<DataMover>,
        /// Day of month (`1`–`31`, `-1` for the last), for `Monthly`.
        pub day_of_month: Option<String>,
        /// Day of week (`0`–`7`), for `Weekly`.
        pub day_of_week: Option<String>,
        /// Whether the schedule is active (default true).
        #[schemars(extend("default" = true))]
        pub enabled: Option<bool>,
        /// Granularity of the schedule.
        #[schemars(required)]
        pub granularity: Option<Granularity>,
        /// Hour of day (`0`–`23`), for `Daily`, `Weekly`, `Monthly`.
        pub hour: Option<String>,
        /// Minute of hour (`0`–`59`), for all but `Custom`.
        pub minute: Option<String>,
        /// RFC 5545 recurrence rule, only with `Custom` (MINUTELY needs INTERVAL ≥ 5).
        pub recurrence_rule: Option<String>,
        /// What happens to a ReplicateSnapshot deleted within its retention period (default `Retain`).
        #[schemars(extend("default" = "Retain"))]
        pub replicate_snapshot_reclaim_policy: Option<ReclaimPolicy>,
        /// ReplicateSnapshots to keep, a decimal string (default `"0"`).
        #[schemars(
            extend("default" = "0"),
            length(min = 0, max = 63),
            regex(pattern = r"^(0|([1-9][0-9]*))$")
        )]
        pub replication_retention: Option<String>,
        /// Run once immediately on creation (default false).
        #[schemars(extend("default" = false))]
        pub run_immediately: Option<bool>,
        /// What happens to a Snapshot deleted within its retention period (default `Delete`).
        #[schemars(extend("default" = "Delete"))]
        pub snapshot_reclaim_policy: Option<ReclaimPolicy>,
        /// Snapshots to keep, a decimal string; `"0"` creates none.
        #[schemars(required, length(min = 0, max = 63), regex(pattern = r"^(0|([1-9][0-9]*))$"))]
        pub snapshot_retention: Option<String>,
    }
}

/// Granularity of a Schedule (case-sensitive).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Granularity {
    /// Every hour at `minute`.
    Hourly,
    /// Every day at `hour:minute`.
    Daily,
    /// Every week on `dayOfWeek`.
    Weekly,
    /// Every month on `dayOfMonth`.
    Monthly,
    /// Per `recurrenceRule`.
    Custom,
}

/// What happens to a recovery point whose CR is deleted within its retention period.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ReclaimPolicy {
    /// Keep the data.
    Retain,
    /// Delete the data.
    Delete,
}

/// Data mover used for backups.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum DataMover {
    /// Kopia.
    Kopia,
    /// Restic.
    Restic,
    /// NetApp Backup and Recovery service.
    #[serde(rename = "CBS")]
    Cbs,
}

/// Observed state of a Schedule.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleStatus {
    /// Most recent error; may be transient.
    pub error: Option<String>,
    /// Progress of a `runImmediately` request.
    pub immediate_run_status: Option<ImmediateRunStatus>,
    /// Last recovery points the schedule created.
    pub last_recovery_points: Option<LastRecoveryPoints>,
    /// When the schedule last ran.
    pub last_schedule_time: Option<Time>,
    /// State: a free string.
    pub state: Option<String>,
}

/// Progress of a Schedule's immediate run.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ImmediateRunStatus {
    /// `""`: none, not started.
    #[serde(rename = "")]
    None,
    /// Not requested.
    NotRequested,
    /// Running.
    InProgress,
    /// Done.
    Completed,
    /// Failed.
    Failed,
}

/// The last backup, snapshot and replicate snapshot a Schedule created.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastRecoveryPoints {
    /// Last Backup.
    pub backup: Option<RecoveryPoint>,
    /// When these were recorded.
    pub creation_timestamp: Option<Time>,
    /// Whether the newest recovery point is younger than `maxAge`.
    pub is_healthy: Option<bool>,
    /// Maximum healthy age of a recovery point (a Go duration in nanoseconds).
    pub max_age: Option<i64>,
    /// Last ReplicateSnapshot.
    pub replicate_snapshot: Option<RecoveryPoint>,
    /// Last Snapshot.
    pub snapshot: Option<RecoveryPoint>,
}

/// Name and creation time of one recovery point.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryPoint {
    /// When it was created.
    pub creation_timestamp: Option<Time>,
    /// Its name.
    pub name: Option<String>,
}

impl Schedule {
    /// Whether the schedule is enabled (NetApp's default is true).
    pub fn is_enabled(&self) -> bool {
        self.spec.enabled.unwrap_or(true)
    }
}
