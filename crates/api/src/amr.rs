//! AppMirrorRelationship: the replication relationship, on the destination cluster.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

protect_kind_spec! {
    /// Spec of an AppMirrorRelationship: which source app replicates where, and what state is wanted.
    // Every field is an `Option`, even those NetApp requires (the schema still marks them required), so that
    // a partial spec serialises to exactly the fields that are set, as merge patches and server-side apply need.
    #[kube(
        kind = "AppMirrorRelationship",
        plural = "appmirrorrelationships",
        shortname = "amr",
        status = "AppMirrorRelationshipStatus",
        doc = "AppMirrorRelationship is the Schema for the appmirrorrelationships API",
        printcolumn(name = "Desired State", type_ = "string", json_path = ".spec.desiredState"),
        printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
        printcolumn(name = "Error", type_ = "string", json_path = ".status.error")
    )]
    pub struct AppMirrorRelationshipSpec {
        /// The desired state of the relationship.
        #[schemars(required)]
        pub desired_state: Option<DesiredState>,
        /// Name of the destination AppVault.
        #[schemars(required)]
        pub destination_app_vault_ref: Option<String>,
        /// Mapping from source namespaces to destination namespaces.
        pub namespace_mapping: Option<Vec<NamespaceMapping>>,
        /// Basename of a ShutdownSnapshot's `status.appArchivePath`, for a planned failover.
        pub promoted_snapshot: Option<String>,
        /// RFC 5545 recurrence rule (`DTSTART:…Z` line and `RRULE:FREQ=MINUTELY|HOURLY;INTERVAL=n` line).
        #[schemars(required)]
        pub recurrence_rule: Option<String>,
        /// Name of the source AppVault.
        #[schemars(required)]
        pub source_app_vault_ref: Option<String>,
        /// Name of the source Application.
        #[schemars(required)]
        pub source_application_name: Option<String>,
        /// `metadata.uid` of the source Application on the source cluster.
        #[serde(rename = "sourceApplicationUID")]
        #[schemars(required)]
        pub source_application_uid: Option<String>,
        /// StorageClass for new PVCs on the destination (cluster default when absent).
        pub storage_class_name: Option<String>,
        /// Transformations applied to resources restored during promotion.
        pub transformations: Option<Vec<Transformation>>,
        /// Reference to a (cluster) transformation rule applied during promotion.
        pub transformations_ref: Option<TransformationsRef>,
    }
}

/// The states a user can ask an AppMirrorRelationship for.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum DesiredState {
    /// Replicating from the source.
    Established,
    /// Failed over: the destination app runs.
    Promoted,
}

impl DesiredState {
    /// The string NetApp's API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Established => "Established",
            Self::Promoted => "Promoted",
        }
    }
}

impl std::fmt::Display for DesiredState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One source namespace and the destination namespace it replicates into.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct NamespaceMapping {
    /// Destination namespace.
    pub destination: String,
    /// Source namespace.
    pub source: String,
}

/// A JSON-patch-like transformation of one restored resource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct Transformation {
    /// Operations to perform on the resource.
    pub operations: Vec<TransformationOperation>,
    /// The resource to transform.
    pub resource: TransformationResource,
}

/// One operation of a Transformation.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct TransformationOperation {
    /// Source path for copy and move.
    pub from: Option<String>,
    /// The operation.
    pub op: TransformationOp,
    /// Destination path for all operations.
    pub path: String,
    /// Value to add, replace or test: any JSON, kept as is (`Some(Value::Null)` for an explicit `null`).
    #[serde(default, deserialize_with = "null_is_a_value")]
    #[schemars(schema_with = "crate::schema::any_value")]
    pub value: Option<serde_json::Value>,
}

/// Reads a present `null` as `Some(Value::Null)`: `add` with a null value differs from no value.
fn null_is_a_value<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(deserializer).map(Some)
}

/// JSON patch operation of a TransformationOperation.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TransformationOp {
    /// Add a value.
    Add,
    /// Copy `from` to `path`.
    Copy,
    /// Move `from` to `path`.
    Move,
    /// Remove a value.
    Remove,
    /// Replace a value.
    Replace,
    /// Test a value.
    Test,
}

/// The resource a Transformation applies to.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct TransformationResource {
    /// API group.
    pub group: Option<String>,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: Option<String>,
    /// API version.
    pub version: Option<String>,
}

/// Reference to a ResourceTransformationRule or ResourceTransformationClusterRule.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct TransformationsRef {
    /// Kind of the referenced rule.
    pub kind: TransformationsRefKind,
    /// Name of the referenced rule.
    pub name: String,
}

/// Kinds a TransformationsRef may point at.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum TransformationsRefKind {
    /// A namespaced rule.
    ResourceTransformationRule,
    /// A cluster-scoped rule.
    ResourceTransformationClusterRule,
}

/// Observed state of an AppMirrorRelationship, written by Trident protect.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppMirrorRelationshipStatus {
    /// Conditions of the relationship.
    // No `serde(default)`: with it schemars would not mark the field required.
    #[schemars(schema_with = "crate::schema::conditions", required)]
    pub conditions: Option<Vec<Condition>>,
    /// Name of the destination Application.
    pub destination_application_ref: Option<String>,
    /// Application namespaces on the destination.
    pub destination_namespaces: Option<Vec<String>>,
    /// Most recent error; may be transient.
    pub error: Option<String>,
    /// Start and completion of the last transfer.
    pub last_transfer: Option<LastTransfer>,
    /// Name and completion of the last transferred snapshot.
    pub last_transferred_snapshot: Option<LastTransferredSnapshot>,
    /// Current state: a free string, see the `AMR_STATE_*` constants.
    #[schemars(required)]
    pub state: Option<String>,
}

/// Timestamps of the last transfer of an AppMirrorRelationship.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastTransfer {
    /// When the transfer completed.
    pub completion_timestamp: Option<Time>,
    /// When the transfer started.
    pub start_timestamp: Option<Time>,
}

/// The last snapshot an AppMirrorRelationship transferred.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastTransferredSnapshot {
    /// When the snapshot completed.
    pub completion_timestamp: Option<Time>,
    /// Snapshot name.
    pub name: Option<String>,
}

impl AppMirrorRelationship {
    /// Source namespaces of `spec.namespaceMapping`, in order.
    pub fn source_namespaces(&self) -> Vec<&str> {
        self.namespace_mappings()
            .iter()
            .map(|m| m.source.as_str())
            .collect()
    }

    /// Destination namespaces of `spec.namespaceMapping`, in order.
    pub fn destination_namespaces(&self) -> Vec<&str> {
        self.namespace_mappings()
            .iter()
            .map(|m| m.destination.as_str())
            .collect()
    }

    /// `spec.namespaceMapping`, empty when absent.
    pub fn namespace_mappings(&self) -> &[NamespaceMapping] {
        self.spec.namespace_mapping.as_deref().unwrap_or_default()
    }

    /// `status.state`, if Trident protect has written one.
    pub fn state(&self) -> Option<&str> {
        self.status.as_ref()?.state.as_deref()
    }

    /// `status.error`, if any.
    pub fn error(&self) -> Option<&str> {
        self.status.as_ref()?.error.as_deref()
    }
}
