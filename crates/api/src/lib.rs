//! Typed model of the Trident protect resources kubectl-tprotect reads and writes
//! (`protect.trident.netapp.io/v1`), the constants the project shares, and generation of our own CRD
//! manifests for them.
//!
//! Every top-level spec and status field is an `Option` that is skipped when `None`, so a typed object
//! serialises only what was set: build merge patches and server-side apply bodies from these types and they
//! carry only the fields we own. Typed reads drop fields this model does not know; never write an object
//! back whole after a typed read.
//!
//! NetApp-required top-level fields are `Option`s too (the schema still lists them as required). Enums follow
//! NetApp's schema enums; where NetApp has a free string (`status.state`, `spec.providerType`) so do we, with
//! the known values as constants.
//!
//! CRD manifests: use [`crds`] / [`crds_yaml`], not `Kind::crd()`. kube's `crd()` marks every optional field
//! `nullable`, unlike NetApp's CRDs; [`crds`] regenerates the schema without that, and a conformance test holds
//! it equal to NetApp's chart 26.05 (minus NetApp's CEL rules, which Kubernetes 1.20 ignores).

#![warn(missing_docs)]

/// Declares the spec struct of one of our Trident protect kinds: the derives, the `#[kube]` arguments every
/// kind shares (group, version, namespaced, the `Age` column last) and skipping of `None` fields, around the
/// kind's own `#[kube]` arguments (kind, plural, status, doc, its other columns) and fields. The group and
/// version spell [`GROUP`] and [`VERSION`] (attributes take no constants; a test holds them equal).
macro_rules! protect_kind_spec {
    (
        $(#[doc = $doc:literal])*
        #[kube($($kube:tt)*)]
        pub struct $name:ident $fields:tt
    ) => {
        $(#[doc = $doc])*
        #[serde_with::skip_serializing_none]
        #[derive(
            kube_derive::CustomResource,
            serde::Serialize,
            serde::Deserialize,
            Clone,
            Debug,
            Default,
            PartialEq,
            schemars::JsonSchema
        )]
        #[kube(
            crates(kube_core = "::kube_core"),
            group = "protect.trident.netapp.io",
            version = "v1",
            namespaced,
            derive = "Default",
            derive = "PartialEq",
            $($kube)*,
            printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
        )]
        #[serde(rename_all = "camelCase")]
        pub struct $name $fields
    };
}

mod amr;
mod app_vault;
mod application;
mod crd;
mod schedule;
mod schema;
mod snapshot;

pub use amr::{
    AppMirrorRelationship, AppMirrorRelationshipSpec, AppMirrorRelationshipStatus, DesiredState,
    LastTransfer, LastTransferredSnapshot, NamespaceMapping, Transformation, TransformationOp,
    TransformationOperation, TransformationResource, TransformationsRef, TransformationsRefKind,
};
pub use app_vault::{
    AppVault, AppVaultSpec, AppVaultStatus, AzureConfig, BoolString, GcpConfig, ProviderConfig,
    ProviderCredential, S3Config, SecretKeyRef,
};
pub use application::{
    Application, ApplicationSpec, ApplicationStatus, ClusterScopedResourceSelector, GroupVersionKind,
    IncludedNamespace, IncludedVirtualMachines, ResourceFilter, ResourceMatcher, ResourceSelectionCriteria,
};
pub use crd::{crd_file_name, crds, crds_yaml};
pub use schedule::{
    DataMover, Granularity, ImmediateRunStatus, LastRecoveryPoints, ReclaimPolicy, RecoveryPoint, Schedule,
    ScheduleSpec, ScheduleStatus,
};
pub use snapshot::{
    ExecHookFailure, ExecHookRunResult, NamespacedName, ShutdownSnapshot, ShutdownSnapshotSpec, Snapshot,
    SnapshotSpec, SnapshotStatus, VmSnapshotProgress, VolumeCapacity, VolumeInfo,
};

/// API group of Trident protect.
pub const GROUP: &str = "protect.trident.netapp.io";
/// API version of the Trident protect kinds we use.
pub const VERSION: &str = "v1";
/// `apiVersion` of the Trident protect kinds we use.
pub const API_VERSION: &str = "protect.trident.netapp.io/v1";

/// Label on everything the plugin creates; its value is the relationship name.
pub const RELATIONSHIP_LABEL: &str = "tprotect.io/relationship";
/// Label (value `"true"`) marking a replication Schedule.
pub const REPLICATION_SCHEDULE_LABEL: &str = "tprotect.io/replication-schedule";
/// Name prefix of replication Schedules, as NetApp's own tooling names them.
pub const REPLICATION_SCHEDULE_PREFIX: &str = "appmirror-schedule-";
/// Annotation acknowledging that a resync discards the changes made on the destination.
pub const DISCARD_DESTINATION_CHANGES_ANNOTATION: &str = "tprotect.io/discard-destination-changes";
/// Namespace Trident protect runs in (and AppVaults live in).
pub const TRIDENT_PROTECT_NAMESPACE: &str = "trident-protect";
/// User name of Trident protect's controller, as admission requests show it.
pub const TRIDENT_CONTROLLER_USERNAME: &str =
    "system:serviceaccount:trident-protect:trident-protect-controller-manager";
/// Field manager of our server-side applies and patches.
pub const FIELD_MANAGER: &str = "kubectl-tprotect";

/// AMR `status.state` while the relationship is being set up.
pub const AMR_STATE_ESTABLISHING: &str = "Establishing";
/// AMR `status.state` once replication runs.
pub const AMR_STATE_ESTABLISHED: &str = "Established";
/// AMR `status.state` while failing over.
pub const AMR_STATE_PROMOTING: &str = "Promoting";
/// AMR `status.state` once failed over.
pub const AMR_STATE_PROMOTED: &str = "Promoted";

/// Snapshot/ShutdownSnapshot `status.state` while running.
pub const SNAPSHOT_STATE_RUNNING: &str = "Running";
/// Snapshot/ShutdownSnapshot `status.state` when done.
pub const SNAPSHOT_STATE_COMPLETED: &str = "Completed";
/// Snapshot/ShutdownSnapshot `status.state` when failed.
pub const SNAPSHOT_STATE_FAILED: &str = "Failed";

/// AppVault `status.state` when usable.
pub const APP_VAULT_STATE_AVAILABLE: &str = "Available";
/// AppVault `status.state` when not usable.
pub const APP_VAULT_STATE_ERROR: &str = "Error";

/// AppVault `spec.providerType` for AWS S3.
pub const PROVIDER_TYPE_AWS: &str = "AWS";
/// AppVault `spec.providerType` for Azure.
pub const PROVIDER_TYPE_AZURE: &str = "Azure";
/// AppVault `spec.providerType` for Google Cloud.
pub const PROVIDER_TYPE_GCP: &str = "GCP";
/// AppVault `spec.providerType` for a generic S3 store.
pub const PROVIDER_TYPE_GENERIC_S3: &str = "GenericS3";
/// AppVault `spec.providerType` for ONTAP S3.
pub const PROVIDER_TYPE_ONTAP_S3: &str = "OntapS3";
/// AppVault `spec.providerType` for StorageGRID S3.
pub const PROVIDER_TYPE_STORAGE_GRID_S3: &str = "StorageGridS3";

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A CRD or object could not be rendered as YAML.
    #[error("failed to render YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    /// A CRD or object could not be converted to or from JSON.
    #[error("failed to convert JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result of this crate's fallible functions.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The basename of a snapshot's `status.appArchivePath` (everything after the last `/`), which is what
/// `AppMirrorRelationship.spec.promotedSnapshot` takes. `None` when the path or its basename is empty.
pub fn archive_basename(app_archive_path: &str) -> Option<&str> {
    // NetApp shows the path without a trailing slash; one written with it names the same archive.
    let basename = app_archive_path
        .trim()
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    (!basename.is_empty()).then_some(basename)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_basename_takes_everything_after_the_last_slash() {
        assert_eq!(
            archive_basename("app_6e1f/snapshots/20250107122548_bboxdrlastsnap_5fa90108"),
            Some("20250107122548_bboxdrlastsnap_5fa90108")
        );
        assert_eq!(archive_basename("no-slash"), Some("no-slash"));
        assert_eq!(archive_basename(""), None);
        assert_eq!(archive_basename("app/snapshots/trailing/"), Some("trailing"));
        assert_eq!(archive_basename("/"), None);
    }
}
