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
use tprotect_api::{
    AppMirrorRelationship, AppVault, Application, Schedule, ShutdownSnapshot, Snapshot,
    TRIDENT_PROTECT_NAMESPACE,
};
use tprotect_lifecycle_rules::objects::{SAVED_SCHEDULES_KEY, saved_schedules_config_map};
use tprotect_lifecycle_rules::read::{
    amr_view, app_view, parse_saved_schedules, pick_amr, schedule_view, secret_view, snapshot_view,
    vault_view,
};
use tprotect_lifecycle_rules::record::LeaseInfo;

use crate::clusters::{ClusterHandle, Clusters};
use crate::error::{RunError, api_status, is_connection_error, with_causes};
use crate::lock;
use crate::model::*;

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
    /// Every AMR of the cluster, for the relationships that are not this one (setup: one relationship per
    /// application and per destination namespace).
    pub other_amrs: bool,
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
            other_amrs: false,
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
                scope.other_amrs = true;
            }
            Operation::Failover | Operation::Delete => {}
            // The source application is confirmed before the destination is discarded.
            Operation::Resync => {
                scope.applications = true;
                scope.schedules = true;
            }
            Operation::ReverseResync => {
                scope.applications = true;
                scope.schedules = true;
                scope.vaults = true;
                scope.storage_classes = true;
            }
            Operation::Reverse | Operation::Failback => {
                scope.applications = true;
                scope.schedules = true;
                scope.vaults = true;
                scope.storage_classes = true;
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
    secrets_unreadable: Option<String>,
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
        secrets_unreadable: stable.secrets_unreadable.clone(),
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
    if scope.other_amrs {
        // All of the cluster's, for the relationships that are not this one.
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource::<AppMirrorRelationship>());
        match api.list(&ListParams::default()).await {
            Ok(list) => amrs = list.items.iter().map(amr_view).collect(),
            Err(e) if is_connection_error(&e) => return unreachable(with_causes(&e)),
            Err(e) => {
                return Err(RunError::kube(
                    &context,
                    "list",
                    "appmirrorrelationships",
                    "",
                    "",
                    e,
                ));
            }
        }
    }
    state.amr = pick_amr(relationship, amrs.clone());
    state.other_amrs = amrs
        .into_iter()
        .filter(|a| {
            state
                .amr
                .as_ref()
                .is_none_or(|mine| !(mine.namespace == a.namespace && mine.name == a.name))
        })
        .collect();
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
    match secrets {
        Ok(secrets) => stable.secrets = secrets.into_iter().map(|s| (s.name.clone(), s)).collect(),
        Err(reason) => stable.secrets_unreadable = Some(reason),
    }
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

    /// Secrets of `trident-protect`: names and key names only (the data is dropped here). A user who may not
    /// read Secrets (the DR viewer role) gets the reason instead, so checks say "not verified" rather than fail.
    async fn secrets(&self, wanted: bool) -> Result<Result<Vec<SecretView>, String>, RunError> {
        if !wanted {
            return Ok(Ok(Vec::new()));
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), TRIDENT_PROTECT_NAMESPACE);
        match api.list(&ListParams::default()).await {
            Ok(list) => Ok(Ok(list.items.into_iter().map(secret_view).collect())),
            Err(e) if api_status(&e) == Some(403) => Ok(Err(format!(
                "no permission to read Secret objects in {TRIDENT_PROTECT_NAMESPACE}"
            ))),
            Err(e) => Err(RunError::kube(
                self.context,
                "list",
                "secrets",
                TRIDENT_PROTECT_NAMESPACE,
                "",
                e,
            )),
        }
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
        Ok(found.map(|cm| saved_schedules_of(&cm)).unwrap_or_default())
    }
}

/// The saved schedules a ConfigMap holds (empty when it holds none, or nothing readable).
pub fn saved_schedules_of(config_map: &ConfigMap) -> SavedSchedules {
    parse_saved_schedules(
        config_map
            .data
            .as_ref()
            .and_then(|d| d.get(SAVED_SCHEDULES_KEY))
            .map(String::as_str),
    )
}
