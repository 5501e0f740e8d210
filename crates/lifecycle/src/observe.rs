//! Reading both clusters into the planner's [`Observed`].
//!
//! Requests are few and scoped: one LIST per kind and relationship namespace (never a GET per object where one
//! LIST serves), cluster-wide only where the object can be anywhere (the AMR and the lock while locating, the
//! Namespaces that also give the cluster id). Kinds an operation does not plan with are not read at all
//! ([`Scope`]). Trident protect objects are read as JSON and converted leniently, field by field, so one odd
//! object (a value our types do not know) never hides the others. Secrets are reduced to their key names as
//! soon as they arrive: their data is never kept.

// RunError is large (it names cluster, namespace and object); it ends a run, so its size costs nothing.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::ObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tprotect_api::{
    AppMirrorRelationship, AppMirrorRelationshipSpec, AppMirrorRelationshipStatus, AppVault, Application,
    RELATIONSHIP_LABEL, Schedule, ScheduleSpec, ShutdownSnapshot, Snapshot, TRIDENT_PROTECT_NAMESPACE,
};

use crate::clusters::{ClusterHandle, Clusters};
use crate::error::{RunError, is_connection_error, with_causes};
use crate::lock::{self, LeaseInfo};
use crate::model::*;

/// Name of the ConfigMap (in `trident-protect`) keeping the Schedules removed from a cluster while it was a
/// destination of relationship `relationship`.
pub fn saved_schedules_config_map(relationship: &str) -> String {
    format!("tprotect-saved-schedules-{relationship}")
}

/// Key of the saved-schedules ConfigMap holding the JSON of [`SavedSchedules`].
pub const SAVED_SCHEDULES_KEY: &str = "schedules.json";

/// The API resource of a Trident protect kind, for JSON reads and writes.
pub fn resource<K: kube::Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

/// Where a relationship is: its AMR(s), its lock, and the clusters' ids.
#[derive(Debug, Clone, Default)]
pub struct Located {
    pub relationship: String,
    /// The relationship's AMRs (normally one; two means a half-finished manual change, which the planner
    /// reports).
    pub amrs: Vec<(ClusterKey, AmrView)>,
    /// The relationship's lock, on whichever cluster it is.
    pub lease: Option<LeaseInfo>,
    /// Clusters that could not be reached (or have no usable context), with the reason.
    pub unreachable: BTreeMap<ClusterKey, String>,
    /// Where the AMR was looked for, for "not found" messages.
    pub searched: Vec<String>,
}

impl Located {
    /// The AMR, when exactly one was found.
    pub fn amr(&self) -> Option<(ClusterKey, &AmrView)> {
        match self.amrs.as_slice() {
            [(key, amr)] => Some((*key, amr)),
            _ => None,
        }
    }

    /// The namespaces the relationship spans, as far as the AMR(s) and the lock's record say.
    pub fn namespaces(&self) -> BTreeSet<String> {
        let mut namespaces = BTreeSet::new();
        for (_, amr) in &self.amrs {
            namespaces.insert(amr.namespace.clone());
            for (source, destination) in amr.mapping() {
                namespaces.insert(source);
                namespaces.insert(destination);
            }
        }
        if let Some(record) = self.lease.as_ref().and_then(|l| l.record.as_ref()) {
            namespaces.insert(record.amr_namespace.clone());
            for (source, destination) in record.mapping() {
                namespaces.insert(source);
                namespaces.insert(destination);
            }
        }
        namespaces
    }
}

/// What [`observe`] reads besides the Namespaces (always: they give the cluster id) and the AMR.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// The relationship's namespaces (read on both clusters).
    pub namespaces: BTreeSet<String>,
    pub applications: bool,
    pub schedules: bool,
    /// AppVaults and the key names of the Secrets they reference.
    pub vaults: bool,
    pub snapshots: bool,
    pub shutdown_snapshots: bool,
    pub storage_classes: bool,
    pub saved_schedules: bool,
}

impl Scope {
    /// Everything (status, check).
    pub fn everything(namespaces: BTreeSet<String>) -> Self {
        Self {
            namespaces,
            applications: true,
            schedules: true,
            vaults: true,
            snapshots: true,
            shutdown_snapshots: true,
            storage_classes: true,
            saved_schedules: true,
        }
    }

    /// What the planner reads for `operation` (see plan.rs): failover and delete need only the AMR.
    pub fn for_operation(operation: Operation, namespaces: BTreeSet<String>) -> Self {
        let mut scope = Scope {
            namespaces,
            ..Default::default()
        };
        match operation {
            Operation::Setup => {
                scope = Scope::everything(scope.namespaces);
                scope.shutdown_snapshots = false;
                scope.saved_schedules = false;
            }
            Operation::Failover | Operation::Delete => {}
            Operation::Resync => scope.schedules = true,
            Operation::ReverseResync => {
                scope.applications = true;
                scope.schedules = true;
                scope.vaults = true;
            }
            Operation::Reverse | Operation::Failback => {
                scope.applications = true;
                scope.schedules = true;
                scope.vaults = true;
                scope.shutdown_snapshots = true;
                scope.saved_schedules = true;
            }
        }
        scope
    }

    /// The namespaces of a `setup`.
    pub fn setup_namespaces(params: &SetupParams) -> BTreeSet<String> {
        [
            params.source_namespace.clone(),
            params.destination_namespace.clone(),
        ]
        .into()
    }
}

/// Finds relationship `relationship` on both clusters: its AMR named `relationship` in `namespace` (when given)
/// or, failing that, labelled `tprotect.io/relationship=<relationship>` in any namespace, or named
/// `relationship` in any namespace if exactly one is; and its lock Lease (labelled likewise) on either cluster.
/// An unreachable cluster is noted, not an error.
pub async fn locate(
    clusters: &Clusters,
    relationship: &str,
    namespace: Option<&str>,
) -> Result<Located, RunError> {
    let (context, peer) = futures::join!(
        locate_on(clusters.get(ClusterKey::Context), relationship, namespace),
        locate_on(clusters.get(ClusterKey::Peer), relationship, namespace),
    );
    // Both searched at once, but when both fail the error reported is always --context's, not whichever
    // answered first.
    let (context, peer) = (context?, peer?);
    let mut located = Located {
        relationship: relationship.to_string(),
        ..Default::default()
    };
    for (key, found) in [(ClusterKey::Context, context), (ClusterKey::Peer, peer)] {
        located
            .searched
            .push(searched_text(&clusters.get(key).context, namespace));
        match found {
            OnCluster::Unreachable(error) => {
                located.unreachable.insert(key, error);
            }
            OnCluster::Found { amr, leases } => {
                if let Some(amr) = amr {
                    located.amrs.push((key, *amr));
                }
                for lease in leases {
                    let info = LeaseInfo::from_lease(key, &lease).map_err(|e| {
                        RunError::Internal(format!(
                            "the lock of {relationship} on {}: {e}",
                            clusters.get(key).context
                        ))
                    })?;
                    // Two locks (two clusters) cannot be made by this program; keep the one with a record.
                    if located.lease.as_ref().is_none_or(|l| l.record.is_none()) {
                        located.lease = Some(info);
                    }
                }
            }
        }
    }
    Ok(located)
}

fn searched_text(context: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("namespace {ns} and all namespaces (by label) on {context}"),
        None => format!("all namespaces on {context}"),
    }
}

enum OnCluster {
    Unreachable(String),
    Found {
        amr: Option<Box<AmrView>>,
        leases: Vec<k8s_openapi::api::coordination::v1::Lease>,
    },
}

async fn locate_on(
    handle: &ClusterHandle,
    relationship: &str,
    namespace: Option<&str>,
) -> Result<OnCluster, RunError> {
    let client = match handle.client() {
        Ok(client) => client.clone(),
        Err(error) => return Ok(OnCluster::Unreachable(error.to_string())),
    };
    let context = handle.context.as_str();
    let amr_resource = resource::<AppMirrorRelationship>();
    let mut amr = None;
    if let Some(ns) = namespace {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &amr_resource);
        match api.get_opt(relationship).await {
            Ok(found) => amr = found.map(|o| amr_view(&o)),
            Err(e) if is_connection_error(&e) => return Ok(OnCluster::Unreachable(with_causes(&e))),
            Err(e) => {
                return Err(RunError::kube(
                    context,
                    "get",
                    "appmirrorrelationships",
                    ns,
                    relationship,
                    e,
                ));
            }
        }
    }
    if amr.is_none() {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &amr_resource);
        let all = match api.list(&ListParams::default()).await {
            Ok(all) => all.items,
            Err(e) if is_connection_error(&e) => return Ok(OnCluster::Unreachable(with_causes(&e))),
            // Allowed in `-n` only: what was found there is the answer.
            Err(e) if namespace.is_some() && crate::error::api_status(&e) == Some(403) => Vec::new(),
            Err(e) => {
                return Err(RunError::kube(
                    context,
                    "list",
                    "appmirrorrelationships",
                    "",
                    "",
                    e,
                ));
            }
        };
        amr = pick_amr(relationship, all.iter().map(amr_view).collect());
    }
    let leases = lock::find_leases(&client, context, relationship, namespace).await?;
    Ok(OnCluster::Found {
        amr: amr.map(Box::new),
        leases,
    })
}

/// The relationship's AMR among all of a cluster's: the one labelled with it (named like it first), else the
/// only one named like it.
fn pick_amr(relationship: &str, amrs: Vec<AmrView>) -> Option<AmrView> {
    let labelled = |a: &AmrView| {
        a.labels
            .get(RELATIONSHIP_LABEL)
            .is_some_and(|v| v == relationship)
    };
    if let Some(found) = amrs
        .iter()
        .find(|a| labelled(a) && a.name == relationship)
        .or_else(|| amrs.iter().find(|a| labelled(a)))
    {
        return Some(found.clone());
    }
    let mut named = amrs.into_iter().filter(|a| a.name == relationship);
    match (named.next(), named.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    }
}

/// Every AMR on both clusters (for `status -A`), with the clusters that could not be read.
pub async fn locate_all(
    clusters: &Clusters,
) -> Result<(Vec<(ClusterKey, AmrView)>, BTreeMap<ClusterKey, String>), RunError> {
    let mut found = Vec::new();
    let mut unreachable = BTreeMap::new();
    for key in ClusterKey::BOTH {
        let handle = clusters.get(key);
        let client = match handle.client() {
            Ok(client) => client.clone(),
            Err(error) => {
                unreachable.insert(key, error.to_string());
                continue;
            }
        };
        let api: Api<DynamicObject> = Api::all_with(client, &resource::<AppMirrorRelationship>());
        match api.list(&ListParams::default()).await {
            Ok(list) => found.extend(list.items.iter().map(|o| (key, amr_view(o)))),
            Err(e) if is_connection_error(&e) => {
                unreachable.insert(key, with_causes(&e));
            }
            Err(e) => {
                return Err(RunError::kube(
                    &handle.context,
                    "list",
                    "appmirrorrelationships",
                    "",
                    "",
                    e,
                ));
            }
        }
    }
    Ok((found, unreachable))
}

/// Both clusters as they are now, for `scope`. The record is left `None`: it lives in the lock, which the
/// runner holds.
pub async fn observe(clusters: &Clusters, relationship: &str, scope: &Scope) -> Result<Observed, RunError> {
    Observer::new(clusters, relationship).observe(scope).await
}

/// What changes only when this program changes it (or, for namespaces, when a promotion creates them): the
/// cluster id, the relationship's namespaces, AppVaults, Secrets (key names), StorageClasses, saved schedules.
#[derive(Debug, Clone, PartialEq, Default)]
struct Stable {
    cluster_id: String,
    namespaces: BTreeMap<String, NamespaceView>,
    vaults: BTreeMap<String, VaultView>,
    secrets: BTreeMap<String, SecretView>,
    storage_classes: BTreeSet<String>,
    saved_schedules: SavedSchedules,
}

/// Observes repeatedly within one run, reading the [`Stable`] parts of a cluster again only when told they may
/// have changed ([`Observer::forget`]): after this program wrote one of them, or after a wait (the controller
/// acted). The relationship's own objects (AMR, Applications, Schedules, snapshots) are read every time.
pub struct Observer<'a> {
    clusters: &'a Clusters,
    relationship: &'a str,
    stable: BTreeMap<ClusterKey, (Scope, Stable)>,
}

impl std::fmt::Debug for Observer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("relationship", &self.relationship)
            .field("cached", &self.stable.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<'a> Observer<'a> {
    pub fn new(clusters: &'a Clusters, relationship: &'a str) -> Self {
        Self {
            clusters,
            relationship,
            stable: BTreeMap::new(),
        }
    }

    /// Read the stable parts of `key` again at the next observation.
    pub fn forget(&mut self, key: ClusterKey) {
        self.stable.remove(&key);
    }

    /// Read everything again at the next observation.
    pub fn forget_all(&mut self) {
        self.stable.clear();
    }

    /// Both clusters, for `scope` (record left `None`).
    pub async fn observe(&mut self, scope: &Scope) -> Result<Observed, RunError> {
        let cached = |key| {
            self.stable
                .get(&key)
                .filter(|(cached_scope, _)| cached_scope == scope)
                .map(|(_, stable)| stable.clone())
        };
        let (context_cached, peer_cached) = (cached(ClusterKey::Context), cached(ClusterKey::Peer));
        let (context, peer) = futures::join!(
            read_cluster(
                self.clusters.get(ClusterKey::Context),
                self.relationship,
                scope,
                context_cached
            ),
            read_cluster(
                self.clusters.get(ClusterKey::Peer),
                self.relationship,
                scope,
                peer_cached
            ),
        );
        // As in `locate`: when both clusters fail, --context's error is the one reported, every time.
        let ((context, context_stable), (peer, peer_stable)) = (context?, peer?);
        for (key, stable) in [
            (ClusterKey::Context, context_stable),
            (ClusterKey::Peer, peer_stable),
        ] {
            match stable {
                Some(stable) => {
                    self.stable.insert(key, (scope.clone(), stable));
                }
                None => {
                    self.stable.remove(&key);
                }
            }
        }
        let mut observed = Observed {
            relationship: self.relationship.to_string(),
            context,
            peer,
            record: None,
        };
        // Keep the Secrets referenced by an AppVault on EITHER cluster: a copy is planned from one to the other.
        let referenced: BTreeSet<String> = ClusterKey::BOTH
            .into_iter()
            .filter_map(|k| observed.state(k))
            .flat_map(|s| s.vaults.values().flat_map(|v| v.secret_refs.keys().cloned()))
            .collect();
        for key in ClusterKey::BOTH {
            if let Reach::Reachable(state) = observed.cluster_mut(key) {
                state.secrets.retain(|name, _| referenced.contains(name));
            }
        }
        Ok(observed)
    }
}

/// One cluster, for `scope` (Secrets not yet filtered to those vaults reference: see [`observe`]).
pub async fn observe_cluster(
    handle: &ClusterHandle,
    relationship: &str,
    scope: &Scope,
) -> Result<Reach, RunError> {
    Ok(read_cluster(handle, relationship, scope, None).await?.0)
}

/// One cluster: the stable parts from `cached` when given, else read; the relationship's objects always read.
/// Returns the stable parts used, to cache (None when the cluster is unreachable).
async fn read_cluster(
    handle: &ClusterHandle,
    relationship: &str,
    scope: &Scope,
    cached: Option<Stable>,
) -> Result<(Reach, Option<Stable>), RunError> {
    let context = handle.context.clone();
    let unreachable = |error: String| {
        Ok((
            Reach::Unreachable {
                context: context.clone(),
                error,
            },
            None,
        ))
    };
    let client = match handle.client() {
        Ok(client) => client.clone(),
        Err(error) => return unreachable(error.to_string()),
    };
    let reader = Reader {
        client: &client,
        context: &context,
    };
    let stable = match cached {
        Some(stable) => stable,
        None => match read_stable(&reader, relationship, scope).await {
            Ok(stable) => stable,
            Err(e) if e.is_connection_error() => return unreachable(e.connection_error_text()),
            Err(e) => return Err(e),
        },
    };
    let mut state = ClusterState {
        context: context.clone(),
        cluster_id: stable.cluster_id.clone(),
        namespaces: stable.namespaces.clone(),
        vaults: stable.vaults.clone(),
        secrets: stable.secrets.clone(),
        storage_classes: stable.storage_classes.clone(),
        saved_schedules: stable.saved_schedules.clone(),
        ..Default::default()
    };
    // Only namespaces that exist can hold anything.
    let namespaces: Vec<String> = state.namespaces.keys().cloned().collect();
    let per_namespace = futures::future::try_join_all(namespaces.iter().map(|ns| {
        let reader = &reader;
        async move {
            futures::try_join!(
                reader.list::<AppMirrorRelationship>(ns, true),
                reader.list::<Application>(ns, scope.applications),
                reader.list::<Schedule>(ns, scope.schedules),
                reader.list::<Snapshot>(ns, scope.snapshots),
                reader.list::<ShutdownSnapshot>(ns, scope.shutdown_snapshots),
            )
        }
    }))
    .await;
    let per_namespace = match per_namespace {
        Ok(lists) => lists,
        Err(e) if e.is_connection_error() => return unreachable(e.connection_error_text()),
        Err(e) => return Err(e),
    };
    let mut amrs = Vec::new();
    for (ns_amrs, apps, schedules, snapshots, shutdowns) in per_namespace {
        amrs.extend(ns_amrs.iter().map(amr_view));
        state.applications.extend(apps.iter().map(app_view));
        state.schedules.extend(schedules.iter().map(schedule_view));
        state.snapshots.extend(snapshots.iter().map(snapshot_view));
        state
            .shutdown_snapshots
            .extend(shutdowns.iter().map(snapshot_view));
    }
    state.amr = pick_amr(relationship, amrs);
    Ok((Reach::Reachable(Box::new(state)), Some(stable)))
}

async fn read_stable(reader: &Reader<'_>, relationship: &str, scope: &Scope) -> Result<Stable, RunError> {
    let all_namespaces: Api<Namespace> = Api::all(reader.client.clone());
    let listed = all_namespaces
        .list(&ListParams::default())
        .await
        .map_err(|e| RunError::kube(reader.context, "list", "namespaces", "", "", e))?;
    let mut stable = Stable::default();
    for ns in listed.items {
        let name = ns.metadata.name.clone().unwrap_or_default();
        if name == "kube-system" {
            stable.cluster_id = ns.metadata.uid.clone().unwrap_or_default();
        }
        if scope.namespaces.contains(&name) {
            stable.namespaces.insert(
                name.clone(),
                NamespaceView {
                    name,
                    labels: ns.metadata.labels.clone().unwrap_or_default(),
                    annotations: ns.metadata.annotations.clone().unwrap_or_default(),
                },
            );
        }
    }
    let (vaults, secrets, storage_classes, saved) = futures::try_join!(
        reader.list::<AppVault>(TRIDENT_PROTECT_NAMESPACE, scope.vaults),
        reader.secrets(scope.vaults),
        reader.storage_classes(scope.storage_classes),
        reader.saved_schedules(relationship, scope.saved_schedules),
    )?;
    for vault in vaults.iter().map(vault_view) {
        stable.vaults.insert(vault.name.clone(), vault);
    }
    stable.secrets = secrets.into_iter().map(|s| (s.name.clone(), s)).collect();
    stable.storage_classes = storage_classes;
    stable.saved_schedules = saved;
    Ok(stable)
}

struct Reader<'a> {
    client: &'a kube::Client,
    context: &'a str,
}

impl Reader<'_> {
    /// A LIST of kind `K` in `namespace` as JSON objects (nothing when `wanted` is false).
    async fn list<K: kube::Resource<DynamicType = ()>>(
        &self,
        namespace: &str,
        wanted: bool,
    ) -> Result<Vec<DynamicObject>, RunError> {
        if !wanted {
            return Ok(Vec::new());
        }
        let ar = resource::<K>();
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &ar);
        match api.list(&ListParams::default()).await {
            Ok(list) => Ok(list.items),
            Err(e) => Err(RunError::kube(self.context, "list", &ar.plural, namespace, "", e)),
        }
    }

    /// Secrets of `trident-protect`: names and key names only (the data is dropped here).
    async fn secrets(&self, wanted: bool) -> Result<Vec<SecretView>, RunError> {
        if !wanted {
            return Ok(Vec::new());
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), TRIDENT_PROTECT_NAMESPACE);
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| RunError::kube(self.context, "list", "secrets", TRIDENT_PROTECT_NAMESPACE, "", e))?;
        Ok(list.items.into_iter().map(secret_view).collect())
    }

    async fn storage_classes(&self, wanted: bool) -> Result<BTreeSet<String>, RunError> {
        if !wanted {
            return Ok(BTreeSet::new());
        }
        let api: Api<StorageClass> = Api::all(self.client.clone());
        let list = api
            .list_metadata(&ListParams::default())
            .await
            .map_err(|e| RunError::kube(self.context, "list", "storageclasses", "", "", e))?;
        Ok(list.items.into_iter().filter_map(|s| s.metadata.name).collect())
    }

    async fn saved_schedules(&self, relationship: &str, wanted: bool) -> Result<SavedSchedules, RunError> {
        if !wanted {
            return Ok(SavedSchedules::default());
        }
        let name = saved_schedules_config_map(relationship);
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), TRIDENT_PROTECT_NAMESPACE);
        let found = api.get_opt(&name).await.map_err(|e| {
            RunError::kube(
                self.context,
                "get",
                "configmaps",
                TRIDENT_PROTECT_NAMESPACE,
                &name,
                e,
            )
        })?;
        Ok(found.map(|cm| parse_saved_schedules(&cm)).unwrap_or_default())
    }
}

/// The saved schedules a ConfigMap holds (empty when it holds none, or nothing readable).
pub fn parse_saved_schedules(config_map: &ConfigMap) -> SavedSchedules {
    config_map
        .data
        .as_ref()
        .and_then(|d| d.get(SAVED_SCHEDULES_KEY))
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------------------------
// JSON objects to views. Lenient: a field our types cannot read is left out, the rest is kept.

/// Reads `value` as `T`; when that fails, keeps every top-level field that reads on its own.
pub fn lenient<T: DeserializeOwned + Default>(value: Option<&Value>) -> T {
    let Some(value) = value else {
        return T::default();
    };
    if let Ok(parsed) = serde_json::from_value(value.clone()) {
        return parsed;
    }
    let Some(object) = value.as_object() else {
        return T::default();
    };
    let kept: serde_json::Map<String, Value> = object
        .iter()
        .filter(|(key, field)| {
            let single = Value::Object([((*key).clone(), (*field).clone())].into_iter().collect());
            serde_json::from_value::<T>(single).is_ok()
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    serde_json::from_value(Value::Object(kept)).unwrap_or_default()
}

fn name_of(meta: &ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

fn namespace_of(meta: &ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_default()
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// An AMR (JSON) as the planner sees it.
pub fn amr_view(object: &DynamicObject) -> AmrView {
    let meta = &object.metadata;
    AmrView {
        namespace: namespace_of(meta),
        name: name_of(meta),
        uid: meta.uid.clone().unwrap_or_default(),
        resource_version: meta.resource_version.clone().unwrap_or_default(),
        generation: meta.generation.unwrap_or_default(),
        labels: meta.labels.clone().unwrap_or_default(),
        annotations: meta.annotations.clone().unwrap_or_default(),
        spec: lenient::<AppMirrorRelationshipSpec>(object.data.get("spec")),
        status: object
            .data
            .get("status")
            .map(|s| lenient::<AppMirrorRelationshipStatus>(Some(s))),
        deleting: meta.deletion_timestamp.is_some(),
    }
}

fn app_view(object: &DynamicObject) -> AppView {
    let meta = &object.metadata;
    AppView {
        namespace: namespace_of(meta),
        name: name_of(meta),
        uid: meta.uid.clone().unwrap_or_default(),
        labels: meta.labels.clone().unwrap_or_default(),
    }
}

fn schedule_view(object: &DynamicObject) -> ScheduleView {
    let meta = &object.metadata;
    ScheduleView {
        namespace: namespace_of(meta),
        name: name_of(meta),
        labels: meta.labels.clone().unwrap_or_default(),
        annotations: meta.annotations.clone().unwrap_or_default(),
        spec: lenient::<ScheduleSpec>(object.data.get("spec")),
    }
}

fn snapshot_view(object: &DynamicObject) -> SnapshotView {
    let meta = &object.metadata;
    let status = object.data.get("status").cloned().unwrap_or(Value::Null);
    SnapshotView {
        namespace: namespace_of(meta),
        name: name_of(meta),
        state: str_at(&status, &["state"]).unwrap_or_default().to_string(),
        error: str_at(&status, &["error"]).map(str::to_string),
        app_archive_path: str_at(&status, &["appArchivePath"]).map(str::to_string),
        labels: meta.labels.clone().unwrap_or_default(),
    }
}

/// An AppVault (JSON): state, error and the Secrets (with keys) its credentials reference.
pub fn vault_view(object: &DynamicObject) -> VaultView {
    let status = object.data.get("status").cloned().unwrap_or(Value::Null);
    let mut secret_refs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    if let Some(credentials) = object
        .data
        .get("spec")
        .and_then(|s| s.get("providerCredentials"))
        .and_then(Value::as_object)
    {
        for credential in credentials.values() {
            if let Some(name) = str_at(credential, &["valueFromSecret", "name"]) {
                let keys = secret_refs.entry(name.to_string()).or_default();
                if let Some(key) = str_at(credential, &["valueFromSecret", "key"]) {
                    keys.insert(key.to_string());
                }
            }
        }
    }
    VaultView {
        name: name_of(&object.metadata),
        state: str_at(&status, &["state"]).unwrap_or_default().to_string(),
        error: str_at(&status, &["error"]).map(str::to_string),
        secret_refs,
    }
}

/// A Secret reduced to its name and key names; the data is dropped with `secret`.
pub fn secret_view(secret: Secret) -> SecretView {
    let mut keys: BTreeSet<String> = secret.data.unwrap_or_default().into_keys().collect();
    keys.extend(secret.string_data.unwrap_or_default().into_keys());
    SecretView {
        name: secret.metadata.name.unwrap_or_default(),
        keys,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dynamic(value: Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn lenient_reading_keeps_the_fields_it_can_read() {
        let spec: ScheduleSpec = lenient(Some(&json!({
            "granularity": "custom",
            "enabled": false,
            "applicationRef": "app1",
        })));
        assert_eq!(spec.enabled, Some(false));
        assert_eq!(spec.application_ref.as_deref(), Some("app1"));
        assert_eq!(
            spec.granularity, None,
            "an unknown enum value is left out, not fatal"
        );
    }

    #[test]
    fn vault_view_lists_referenced_secrets_with_their_keys() {
        let vault = vault_view(&dynamic(json!({
            "apiVersion": "protect.trident.netapp.io/v1", "kind": "AppVault",
            "metadata": {"name": "v1", "namespace": "trident-protect"},
            "spec": {"providerType": "GenericS3", "providerCredentials": {
                "accessKeyID": {"valueFromSecret": {"name": "s3-creds", "key": "accessKeyID"}},
                "secretAccessKey": {"valueFromSecret": {"name": "s3-creds", "key": "secretAccessKey"}},
            }},
            "status": {"state": "Available"}
        })));
        assert_eq!(vault.state, "Available");
        assert_eq!(
            vault.secret_refs["s3-creds"],
            BTreeSet::from(["accessKeyID".to_string(), "secretAccessKey".to_string()])
        );
    }

    #[test]
    fn secret_view_keeps_key_names_only() {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "s3-creds"},
            "data": {"accessKeyID": "QUtJQQ==", "secretAccessKey": "c2VjcmV0"}
        }))
        .unwrap();
        let view = secret_view(secret);
        let debug = format!("{view:?}");
        assert!(
            !debug.contains("QUtJQQ") && !debug.contains("c2VjcmV0"),
            "{debug}"
        );
        assert_eq!(view.keys.len(), 2);
    }

    fn amr(name: &str, label: Option<&str>) -> AmrView {
        AmrView {
            name: name.into(),
            labels: label
                .map(|l| [(RELATIONSHIP_LABEL.to_string(), l.to_string())].into())
                .unwrap_or_default(),
            ..Default::default()
        }
    }

    #[test]
    fn pick_amr_prefers_the_label_then_a_unique_name() {
        let picked = pick_amr("rel1", vec![amr("rel1", None), amr("other", Some("rel1"))]).unwrap();
        assert_eq!(picked.name, "other");
        assert_eq!(pick_amr("rel1", vec![amr("rel1", None)]).unwrap().name, "rel1");
        let mut a = amr("rel1", None);
        a.namespace = "a".into();
        let mut b = amr("rel1", None);
        b.namespace = "b".into();
        assert_eq!(
            pick_amr("rel1", vec![a, b]),
            None,
            "two unlabelled AMRs of that name: ambiguous"
        );
        assert_eq!(pick_amr("rel1", vec![amr("other", None)]), None);
    }
}
