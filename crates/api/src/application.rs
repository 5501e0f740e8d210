//! Application: the set of namespaced (and cluster-scoped) resources Trident protect protects as one.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

protect_kind_spec! {
    /// Spec of an Application: exactly one of `includedNamespaces` or `includedVirtualMachines`.
    // NetApp enforces "exactly one of" and immutability with CEL rules; this schema does not carry them
    // (Kubernetes 1.20 drops `x-kubernetes-validations`): they belong to admission policy.
    #[kube(
        kind = "Application",
        plural = "applications",
        status = "ApplicationStatus",
        doc = "Application is the Schema for the applications API",
        printcolumn(
            name = "Protection State",
            type_ = "string",
            json_path = ".status.protectionState"
        )
    )]
    pub struct ApplicationSpec {
        /// Cluster-scoped resource types included in the application (immutable).
        pub included_cluster_scoped_resources: Option<Vec<ClusterScopedResourceSelector>>,
        /// Namespaces (optionally narrowed by labels) included in the application (immutable).
        pub included_namespaces: Option<Vec<IncludedNamespace>>,
        /// KubeVirt VirtualMachines included in the application.
        pub included_virtual_machines: Option<Vec<IncludedVirtualMachines>>,
        /// Further narrows the included resources.
        pub resource_filter: Option<ResourceFilter>,
    }
}

/// A cluster-scoped resource type (and label selector) included in an Application.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterScopedResourceSelector {
    /// The kind to include.
    pub group_version_kind: Option<GroupVersionKind>,
    /// Label selector over resources of that kind.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::label_selector")]
    pub label_selector: Option<LabelSelector>,
}

/// Group, version and kind of a resource type.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct GroupVersionKind {
    /// API group.
    pub group: Option<String>,
    /// Kind.
    pub kind: Option<String>,
    /// API version.
    pub version: Option<String>,
}

/// A namespace included in an Application.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncludedNamespace {
    /// Label selector narrowing the resources of the namespace.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::label_selector")]
    pub label_selector: Option<LabelSelector>,
    /// Namespace name.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9][a-z0-9-]*[a-z0-9]$"))]
    pub namespace: String,
}

/// KubeVirt VirtualMachines of one namespace included in an Application.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct IncludedVirtualMachines {
    /// VirtualMachine names.
    #[schemars(length(min = 1))]
    pub names: Vec<String>,
    /// Namespace of the VirtualMachines.
    pub namespace: String,
}

/// Subset of resources an Application protects.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceFilter {
    /// Matchers, each matching one or more resources.
    pub resource_matchers: Option<Vec<ResourceMatcher>>,
    /// Whether matched resources are included or excluded.
    pub resource_selection_criteria: Option<ResourceSelectionCriteria>,
}

/// One matcher of a ResourceFilter.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceMatcher {
    /// API group.
    pub group: Option<String>,
    /// Kind.
    pub kind: Option<String>,
    /// Label selectors on `metadata.labels`.
    pub label_selectors: Option<Vec<String>>,
    /// Resource names.
    pub names: Option<Vec<String>>,
    /// Resource namespaces.
    pub namespaces: Option<Vec<String>>,
    /// API version.
    pub version: Option<String>,
}

/// Whether a ResourceFilter includes or excludes what it matches.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ResourceSelectionCriteria {
    /// Keep only matched resources.
    Include,
    /// Drop matched resources.
    Exclude,
}

/// Observed state of an Application.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationStatus {
    /// Conditions of the application.
    // No `serde(default)`: with it schemars would not mark the field required.
    #[schemars(schema_with = "crate::schema::conditions", required)]
    pub conditions: Option<Vec<Condition>>,
    /// Whether a recent recovery point exists.
    pub protection_health_state: Option<String>,
    /// Protection state (`Fully Protected`, `Partially Protected`, `Not Protected`).
    pub protection_state: Option<String>,
    /// Details of the protection state.
    pub protection_state_details: Option<Vec<String>>,
    /// Number of resources at the last resource backup.
    pub resource_count: Option<i64>,
    /// Sum of PV capacities at the last resource backup.
    pub storage_capacity_bytes: Option<i64>,
    /// Sum of used capacity at the last snapshot.
    pub storage_used_capacity_bytes: Option<i64>,
}

impl Application {
    /// Namespaces named in `spec.includedNamespaces`, in order.
    pub fn included_namespace_names(&self) -> Vec<&str> {
        self.spec
            .included_namespaces
            .iter()
            .flatten()
            .map(|n| n.namespace.as_str())
            .collect()
    }
}
