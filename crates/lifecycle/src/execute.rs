//! Performing one [`Action`] idempotently.
//!
//! Creates treat 409 AlreadyExists as done; changes are JSON merge patches of the fields we own (never a typed
//! object written back whole: typed reads drop fields our types do not know); everything created is labelled
//! `tprotect.io/relationship=<NAME>`; field manager `kubectl-tprotect`. With `dry_run`, every write is sent
//! with `dryRun=All`: the API server (and its admission webhooks) check it, nothing is stored.
//!
//! The request bodies are built by the pure functions below, so tests can hold them to exactly the owned
//! fields.

// RunError is large (it names cluster, namespace and object); it ends a run, so its size costs nothing.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, Preconditions,
};
use kube::core::ObjectMeta;
use serde_json::{Value, json};
use tprotect_api::{
    API_VERSION, AppMirrorRelationship, AppMirrorRelationshipSpec, AppVault, Application,
    DISCARD_DESTINATION_CHANGES_ANNOTATION, DesiredState, FIELD_MANAGER, RELATIONSHIP_LABEL,
    REPLICATION_SCHEDULE_LABEL, Schedule, ShutdownSnapshot, Snapshot, TRIDENT_PROTECT_NAMESPACE,
};

use crate::clusters::Clusters;
use crate::error::{RunError, api_status};
use crate::model::*;
use crate::observe::{
    SAVED_SCHEDULES_KEY, lenient, parse_saved_schedules, resource, saved_schedules_config_map,
};
use crate::plan::DISABLED_BY_ANNOTATION;

/// What became of an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Executed {
    /// Sent and accepted.
    Applied,
    /// Nothing to do: it was already so (e.g. 409 AlreadyExists on a create, 404 on a delete).
    AlreadyDone,
    /// The object changed or vanished under us; observe again and plan again.
    Conflict(String),
    /// Dry run only: not sent, because it acts on an object only an earlier step of this dry run creates.
    NotSent(String),
}

/// Performs actions on the clusters of one relationship.
#[derive(Debug, Clone, Copy)]
pub struct Executor<'a> {
    pub clusters: &'a Clusters,
    pub relationship: &'a str,
    /// Send every write with `dryRun=All`.
    pub dry_run: bool,
}

struct Target<'a> {
    client: kube::Client,
    context: &'a str,
}

impl<'a> Executor<'a> {
    pub fn new(clusters: &'a Clusters, relationship: &'a str, dry_run: bool) -> Self {
        Self {
            clusters,
            relationship,
            dry_run,
        }
    }

    fn target(&self, key: ClusterKey) -> Result<Target<'a>, RunError> {
        let handle = self.clusters.get(key);
        let client = handle.client().map_err(|e| {
            RunError::Plan(crate::PlanError::Unreachable {
                context: handle.context.clone(),
                error: e.to_string(),
                needed_for: "this step".into(),
            })
        })?;
        Ok(Target {
            client: client.clone(),
            context: &handle.context,
        })
    }

    fn post_params(&self) -> PostParams {
        PostParams {
            dry_run: self.dry_run,
            field_manager: Some(FIELD_MANAGER.to_string()),
        }
    }

    fn patch_params(&self) -> PatchParams {
        PatchParams {
            dry_run: self.dry_run,
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..Default::default()
        }
    }

    fn delete_params(&self, preconditions: Option<Preconditions>) -> DeleteParams {
        DeleteParams {
            dry_run: self.dry_run,
            preconditions,
            ..Default::default()
        }
    }

    /// Performs `action`. [`Action::RecordDestinationApp`] changes the lock, not a cluster object: the runner
    /// does it ([`crate::runner`]); here it is an internal error.
    pub async fn execute(&self, action: &Action) -> Result<Executed, RunError> {
        let name = self.relationship;
        match action {
            Action::CreateNamespace { cluster, name: ns } => {
                let t = self.target(*cluster)?;
                let api: Api<Namespace> = Api::all(t.client.clone());
                let object: Namespace = from_json(namespace_object(ns, name))?;
                self.create(&t, &api, &object, "namespaces", "", ns).await
            }
            Action::CopySecret {
                from,
                to,
                name: secret,
            } => self.copy_secret(*from, *to, secret).await,
            Action::CopyAppVault {
                from,
                to,
                name: vault,
            } => self.copy_app_vault(*from, *to, vault).await,
            Action::CreateApplication {
                cluster,
                namespace,
                name: app,
                namespaces,
            } => {
                let t = self.target(*cluster)?;
                let object = application_object(namespace, app, namespaces, name);
                self.create_json::<Application>(&t, namespace, app, object).await
            }
            Action::CreateReplicationSchedule {
                cluster,
                namespace,
                name: schedule,
                application,
                app_vault,
                recurrence_rule,
            } => {
                let t = self.target(*cluster)?;
                let object = replication_schedule_object(
                    namespace,
                    schedule,
                    application,
                    app_vault,
                    recurrence_rule,
                    name,
                );
                self.create_json::<Schedule>(&t, namespace, schedule, object)
                    .await
            }
            Action::DisableSchedule {
                cluster,
                namespace,
                name: schedule,
            } => {
                let t = self.target(*cluster)?;
                let api: Api<DynamicObject> =
                    Api::namespaced_with(t.client.clone(), namespace, &resource::<Schedule>());
                self.patch(
                    &t,
                    &api,
                    "schedules",
                    namespace,
                    schedule,
                    disable_schedule_patch(name),
                )
                .await
            }
            Action::RemoveDestinationSchedules {
                cluster,
                namespace,
                names,
            } => self.remove_schedules(*cluster, namespace, names).await,
            Action::RestoreSchedules { cluster, names } => self.restore_schedules(*cluster, names).await,
            Action::CreateSnapshot {
                cluster,
                namespace,
                name: snapshot,
                application,
                app_vault,
                shutdown,
            } => {
                let t = self.target(*cluster)?;
                let object = snapshot_object(*shutdown, namespace, snapshot, application, app_vault, name);
                if *shutdown {
                    self.create_json::<ShutdownSnapshot>(&t, namespace, snapshot, object)
                        .await
                } else {
                    self.create_json::<Snapshot>(&t, namespace, snapshot, object)
                        .await
                }
            }
            Action::CreateAmr {
                cluster,
                namespace,
                name: amr,
                spec,
                annotations,
            } => {
                let t = self.target(*cluster)?;
                let object = amr_object(namespace, amr, spec, annotations, name)?;
                self.create_json::<AppMirrorRelationship>(&t, namespace, amr, object)
                    .await
            }
            Action::SetDesiredState {
                cluster,
                namespace,
                name: amr,
                desired,
                promoted_snapshot,
                discard_destination_changes,
            } => {
                let t = self.target(*cluster)?;
                let api: Api<DynamicObject> =
                    Api::namespaced_with(t.client.clone(), namespace, &resource::<AppMirrorRelationship>());
                let body = desired_state_patch(
                    *desired,
                    promoted_snapshot.as_deref(),
                    *discard_destination_changes,
                );
                self.patch(&t, &api, "appmirrorrelationships", namespace, amr, body)
                    .await
            }
            Action::DeleteAmr {
                cluster,
                namespace,
                name: amr,
                uid,
            } => {
                let t = self.target(*cluster)?;
                let api: Api<DynamicObject> =
                    Api::namespaced_with(t.client.clone(), namespace, &resource::<AppMirrorRelationship>());
                let params = self.delete_params(Some(Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                }));
                match api.delete(amr, &params).await {
                    Ok(_) => Ok(Executed::Applied),
                    Err(e) if api_status(&e) == Some(404) => {
                        Ok(self.missing_ok(uid, "AppMirrorRelationship", namespace, amr))
                    }
                    Err(e) if api_status(&e) == Some(409) => Ok(Executed::Conflict(format!(
                        "AppMirrorRelationship {namespace}/{amr} on {} is not the one observed (uid changed)",
                        t.context
                    ))),
                    Err(e) => Err(RunError::kube(
                        t.context,
                        "delete",
                        "appmirrorrelationships",
                        namespace,
                        amr,
                        e,
                    )),
                }
            }
            Action::RecordDestinationApp { .. } => Err(RunError::Internal(
                "RecordDestinationApp changes the lock; the runner performs it".into(),
            )),
        }
    }

    /// A delete that found nothing: done, unless this is a dry run over an object only the dry run created.
    fn missing_ok(&self, uid: &str, kind: &str, namespace: &str, name: &str) -> Executed {
        if self.dry_run && uid == crate::simulate::SIMULATED_UID {
            Executed::NotSent(format!("{kind} {namespace}/{name} exists only in this dry run"))
        } else {
            Executed::AlreadyDone
        }
    }

    async fn create<K>(
        &self,
        t: &Target<'_>,
        api: &Api<K>,
        object: &K,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Executed, RunError>
    where
        K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        match api.create(&self.post_params(), object).await {
            Ok(_) => Ok(Executed::Applied),
            Err(e) if api_status(&e) == Some(409) => Ok(Executed::AlreadyDone),
            Err(e) if self.dry_run && api_status(&e) == Some(404) && !namespace.is_empty() => {
                Ok(Executed::NotSent(format!(
                    "namespace {namespace} does not exist yet on {} (an earlier step of this dry run creates it)",
                    t.context
                )))
            }
            Err(e) => Err(RunError::kube(t.context, "create", resource, namespace, name, e)),
        }
    }

    async fn create_json<K: kube::Resource<DynamicType = ()>>(
        &self,
        t: &Target<'_>,
        namespace: &str,
        name: &str,
        object: Value,
    ) -> Result<Executed, RunError> {
        let ar = resource::<K>();
        let api: Api<DynamicObject> = Api::namespaced_with(t.client.clone(), namespace, &ar);
        let object: DynamicObject = from_json(object)?;
        self.create(t, &api, &object, &ar.plural, namespace, name).await
    }

    async fn patch(
        &self,
        t: &Target<'_>,
        api: &Api<DynamicObject>,
        resource: &str,
        namespace: &str,
        name: &str,
        body: Value,
    ) -> Result<Executed, RunError> {
        match api.patch(name, &self.patch_params(), &Patch::Merge(&body)).await {
            Ok(_) => Ok(Executed::Applied),
            Err(e) if api_status(&e) == Some(404) && self.dry_run => Ok(Executed::NotSent(format!(
                "{resource} {namespace}/{name} does not exist yet on {} (an earlier step of this dry run creates it)",
                t.context
            ))),
            Err(e) if api_status(&e) == Some(404) => Ok(Executed::Conflict(format!(
                "{resource} {namespace}/{name} on {} is gone",
                t.context
            ))),
            Err(e) if api_status(&e) == Some(409) => Ok(Executed::Conflict(format!(
                "{resource} {namespace}/{name} on {} changed",
                t.context
            ))),
            Err(e) => Err(RunError::kube(t.context, "patch", resource, namespace, name, e)),
        }
    }

    /// Copies a Secret of `trident-protect`. Its data is read here, written there, and goes nowhere else.
    async fn copy_secret(&self, from: ClusterKey, to: ClusterKey, name: &str) -> Result<Executed, RunError> {
        let source = self.target(from)?;
        let api: Api<Secret> = Api::namespaced(source.client.clone(), TRIDENT_PROTECT_NAMESPACE);
        let secret = api.get(name).await.map_err(|e| {
            RunError::kube(
                source.context,
                "get",
                "secrets",
                TRIDENT_PROTECT_NAMESPACE,
                name,
                e,
            )
        })?;
        let copy = secret_copy(&secret, self.relationship);
        let target = self.target(to)?;
        let api: Api<Secret> = Api::namespaced(target.client.clone(), TRIDENT_PROTECT_NAMESPACE);
        self.create(&target, &api, &copy, "secrets", TRIDENT_PROTECT_NAMESPACE, name)
            .await
    }

    /// Copies an AppVault with its spec as stored (fields our types do not know included).
    async fn copy_app_vault(
        &self,
        from: ClusterKey,
        to: ClusterKey,
        name: &str,
    ) -> Result<Executed, RunError> {
        let ar = resource::<AppVault>();
        let source = self.target(from)?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(source.client.clone(), TRIDENT_PROTECT_NAMESPACE, &ar);
        let vault = api.get(name).await.map_err(|e| {
            RunError::kube(
                source.context,
                "get",
                "appvaults",
                TRIDENT_PROTECT_NAMESPACE,
                name,
                e,
            )
        })?;
        let copy = app_vault_copy(&vault, self.relationship);
        let target = self.target(to)?;
        self.create_json::<AppVault>(&target, TRIDENT_PROTECT_NAMESPACE, name, copy)
            .await
    }

    /// Saves the non-replication Schedules among `names` into the saved-schedules ConfigMap, THEN deletes all
    /// of `names`: a schedule is never deleted before it is saved.
    async fn remove_schedules(
        &self,
        cluster: ClusterKey,
        namespace: &str,
        names: &[String],
    ) -> Result<Executed, RunError> {
        let t = self.target(cluster)?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(t.client.clone(), namespace, &resource::<Schedule>());
        let listed = api
            .list(&ListParams::default())
            .await
            .map_err(|e| RunError::kube(t.context, "list", "schedules", namespace, "", e))?;
        let schedules: Vec<&DynamicObject> = listed
            .items
            .iter()
            .filter(|s| s.metadata.name.as_ref().is_some_and(|n| names.contains(n)))
            .collect();
        let to_save: Vec<SavedSchedule> = schedules.iter().filter_map(|s| saved_schedule(s)).collect();
        if !to_save.is_empty() {
            self.update_saved(&t, |saved| merge_saved(saved, to_save.clone()))
                .await?;
        }
        let mut any = false;
        for schedule in schedules {
            let name = schedule.metadata.name.clone().unwrap_or_default();
            let params = self.delete_params(schedule.metadata.uid.clone().map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }));
            match api.delete(&name, &params).await {
                Ok(_) => any = true,
                Err(e) if matches!(api_status(&e), Some(404) | Some(409)) => {}
                Err(e) => {
                    return Err(RunError::kube(
                        t.context,
                        "delete",
                        "schedules",
                        namespace,
                        &name,
                        e,
                    ));
                }
            }
        }
        Ok(if any {
            Executed::Applied
        } else {
            Executed::AlreadyDone
        })
    }

    /// Re-creates the saved Schedules named `names` (enabled as they were), THEN removes them from the
    /// ConfigMap.
    async fn restore_schedules(&self, cluster: ClusterKey, names: &[String]) -> Result<Executed, RunError> {
        let t = self.target(cluster)?;
        let cm_name = saved_schedules_config_map(self.relationship);
        let cm_api: Api<ConfigMap> = Api::namespaced(t.client.clone(), TRIDENT_PROTECT_NAMESPACE);
        let Some(cm) = cm_api.get_opt(&cm_name).await.map_err(|e| {
            RunError::kube(
                t.context,
                "get",
                "configmaps",
                TRIDENT_PROTECT_NAMESPACE,
                &cm_name,
                e,
            )
        })?
        else {
            return Ok(Executed::AlreadyDone);
        };
        let saved = parse_saved_schedules(&cm);
        let restoring: Vec<&SavedSchedule> = saved
            .schedules
            .iter()
            .filter(|s| names.contains(&s.name))
            .collect();
        if restoring.is_empty() {
            return Ok(Executed::AlreadyDone);
        }
        for schedule in &restoring {
            let object = restored_schedule_object(schedule, self.relationship);
            self.create_json::<Schedule>(&t, &schedule.namespace, &schedule.name, object)
                .await?;
        }
        self.update_saved(&t, |saved| {
            saved.schedules.retain(|s| !names.contains(&s.name));
        })
        .await?;
        Ok(Executed::Applied)
    }

    /// Read-modify-write of the saved-schedules ConfigMap under its resourceVersion (409: read again). Deleted
    /// when it ends up empty.
    async fn update_saved(
        &self,
        t: &Target<'_>,
        change: impl Fn(&mut SavedSchedules),
    ) -> Result<(), RunError> {
        let cm_name = saved_schedules_config_map(self.relationship);
        let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), TRIDENT_PROTECT_NAMESPACE);
        let err = |verb: &str, e| {
            RunError::kube(
                t.context,
                verb,
                "configmaps",
                TRIDENT_PROTECT_NAMESPACE,
                &cm_name,
                e,
            )
        };
        for _ in 0..8 {
            let current = api.get_opt(&cm_name).await.map_err(|e| err("get", e))?;
            let mut saved = current.as_ref().map(parse_saved_schedules).unwrap_or_default();
            change(&mut saved);
            let result = match (&current, saved.schedules.is_empty()) {
                (None, true) => return Ok(()),
                (None, false) => api
                    .create(
                        &self.post_params(),
                        &saved_config_map(&cm_name, self.relationship, &saved, None)?,
                    )
                    .await
                    .map(|_| ()),
                (Some(cm), true) => {
                    let params = self.delete_params(Some(Preconditions {
                        uid: cm.metadata.uid.clone(),
                        resource_version: cm.metadata.resource_version.clone(),
                    }));
                    api.delete(&cm_name, &params).await.map(|_| ())
                }
                (Some(cm), false) => {
                    let object = saved_config_map(
                        &cm_name,
                        self.relationship,
                        &saved,
                        cm.metadata.resource_version.clone(),
                    )?;
                    api.replace(&cm_name, &self.post_params(), &object)
                        .await
                        .map(|_| ())
                }
            };
            match result {
                Ok(()) => return Ok(()),
                Err(e) if matches!(api_status(&e), Some(409) | Some(404)) => continue,
                Err(e) => return Err(err("write", e)),
            }
        }
        Err(RunError::Internal(format!(
            "ConfigMap {TRIDENT_PROTECT_NAMESPACE}/{cm_name} on {} kept changing",
            t.context
        )))
    }
}

fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, RunError> {
    serde_json::from_value(value).map_err(|e| RunError::Internal(format!("building an object: {e}")))
}

fn relationship_labels(relationship: &str) -> Value {
    json!({ RELATIONSHIP_LABEL: relationship })
}

// ---------------------------------------------------------------------------------------------------------------
// Request bodies (pure).

/// A Namespace labelled with the relationship.
pub fn namespace_object(name: &str, relationship: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": relationship_labels(relationship)},
    })
}

/// An Application over `namespaces`.
pub fn application_object(namespace: &str, name: &str, namespaces: &[String], relationship: &str) -> Value {
    let included: Vec<Value> = namespaces.iter().map(|ns| json!({"namespace": ns})).collect();
    json!({
        "apiVersion": API_VERSION,
        "kind": "Application",
        "metadata": {"name": name, "namespace": namespace, "labels": relationship_labels(relationship)},
        "spec": {"includedNamespaces": included},
    })
}

/// A replication Schedule (shared/docs/trident-protect.md): Custom, backupRetention "0", snapshotRetention
/// "2", enabled, with the relationship's recurrence rule.
pub fn replication_schedule_object(
    namespace: &str,
    name: &str,
    application: &str,
    app_vault: &str,
    recurrence_rule: &str,
    relationship: &str,
) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": "Schedule",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {RELATIONSHIP_LABEL: relationship, REPLICATION_SCHEDULE_LABEL: "true"},
        },
        "spec": {
            "applicationRef": application,
            "appVaultRef": app_vault,
            "granularity": "Custom",
            "backupRetention": "0",
            "snapshotRetention": "2",
            "enabled": true,
            "recurrenceRule": recurrence_rule,
        },
    })
}

/// The merge patch disabling a Schedule for a planned swap, marked so it is enabled again afterwards.
pub fn disable_schedule_patch(relationship: &str) -> Value {
    json!({
        "metadata": {"annotations": {DISABLED_BY_ANNOTATION: relationship}},
        "spec": {"enabled": false},
    })
}

/// A Snapshot or ShutdownSnapshot of `application`.
pub fn snapshot_object(
    shutdown: bool,
    namespace: &str,
    name: &str,
    application: &str,
    app_vault: &str,
    relationship: &str,
) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": if shutdown { "ShutdownSnapshot" } else { "Snapshot" },
        "metadata": {"name": name, "namespace": namespace, "labels": relationship_labels(relationship)},
        "spec": {"applicationRef": application, "appVaultRef": app_vault},
    })
}

/// The AMR: the planner's spec (only the fields it set), our label and annotations.
pub fn amr_object(
    namespace: &str,
    name: &str,
    spec: &AppMirrorRelationshipSpec,
    annotations: &BTreeMap<String, String>,
    relationship: &str,
) -> Result<Value, RunError> {
    let spec = serde_json::to_value(spec).map_err(|e| RunError::Internal(format!("AMR spec: {e}")))?;
    let mut metadata =
        json!({"name": name, "namespace": namespace, "labels": relationship_labels(relationship)});
    if !annotations.is_empty() {
        metadata["annotations"] = json!(annotations);
    }
    Ok(json!({
        "apiVersion": API_VERSION,
        "kind": "AppMirrorRelationship",
        "metadata": metadata,
        "spec": spec,
    }))
}

/// The one merge patch of a state change: `spec.desiredState`, `spec.promotedSnapshot` (null removes it) and,
/// for a resync, the annotation acknowledging that destination changes are discarded.
pub fn desired_state_patch(desired: DesiredState, promoted_snapshot: Option<&str>, discard: bool) -> Value {
    let mut body = json!({
        "spec": {"desiredState": desired.as_str(), "promotedSnapshot": promoted_snapshot},
    });
    if discard {
        body["metadata"] = json!({"annotations": {DISCARD_DESTINATION_CHANGES_ANNOTATION: "true"}});
    }
    body
}

/// The copy of a Secret: same name, type and data; its labels plus ours. Nothing else of the original.
pub fn secret_copy(secret: &Secret, relationship: &str) -> Secret {
    let mut labels = secret.metadata.labels.clone().unwrap_or_default();
    labels.insert(RELATIONSHIP_LABEL.to_string(), relationship.to_string());
    Secret {
        metadata: ObjectMeta {
            name: secret.metadata.name.clone(),
            namespace: Some(TRIDENT_PROTECT_NAMESPACE.to_string()),
            labels: Some(labels),
            ..Default::default()
        },
        type_: secret.type_.clone(),
        data: secret.data.clone(),
        string_data: secret.string_data.clone(),
        immutable: secret.immutable,
    }
}

/// The copy of an AppVault: its spec exactly as stored (raw JSON), its labels plus ours; no status, no
/// server-set metadata.
pub fn app_vault_copy(vault: &DynamicObject, relationship: &str) -> Value {
    let mut labels = vault.metadata.labels.clone().unwrap_or_default();
    labels.insert(RELATIONSHIP_LABEL.to_string(), relationship.to_string());
    json!({
        "apiVersion": API_VERSION,
        "kind": "AppVault",
        "metadata": {
            "name": vault.metadata.name,
            "namespace": TRIDENT_PROTECT_NAMESPACE,
            "labels": labels,
        },
        "spec": vault.data.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}

/// What to keep of a Schedule being removed from a destination; replication schedules are not kept (they are
/// re-created for each direction).
pub fn saved_schedule(schedule: &DynamicObject) -> Option<SavedSchedule> {
    let view = ScheduleView {
        namespace: schedule.metadata.namespace.clone().unwrap_or_default(),
        name: schedule.metadata.name.clone().unwrap_or_default(),
        labels: schedule.metadata.labels.clone().unwrap_or_default(),
        annotations: schedule.metadata.annotations.clone().unwrap_or_default(),
        spec: lenient(schedule.data.get("spec")),
    };
    if view.is_replication() {
        return None;
    }
    // Disabled by us for a planned swap: it was enabled before, and is enabled again when restored.
    let was_enabled = view.enabled() || view.annotations.contains_key(DISABLED_BY_ANNOTATION);
    Some(SavedSchedule {
        namespace: view.namespace,
        name: view.name,
        labels: view.labels,
        spec: schedule.data.get("spec").cloned().unwrap_or_else(|| json!({})),
        was_enabled,
    })
}

/// `saved` with `more` added; a schedule saved again replaces its earlier copy.
pub fn merge_saved(saved: &mut SavedSchedules, more: Vec<SavedSchedule>) {
    for schedule in more {
        saved
            .schedules
            .retain(|s| !(s.namespace == schedule.namespace && s.name == schedule.name));
        saved.schedules.push(schedule);
    }
}

fn saved_config_map(
    name: &str,
    relationship: &str,
    saved: &SavedSchedules,
    resource_version: Option<String>,
) -> Result<ConfigMap, RunError> {
    let text = serde_json::to_string_pretty(saved)
        .map_err(|e| RunError::Internal(format!("saved schedules: {e}")))?;
    Ok(ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(TRIDENT_PROTECT_NAMESPACE.to_string()),
            labels: Some([(RELATIONSHIP_LABEL.to_string(), relationship.to_string())].into()),
            resource_version,
            ..Default::default()
        },
        data: Some([(SAVED_SCHEDULES_KEY.to_string(), text)].into()),
        ..Default::default()
    })
}

/// A saved Schedule re-created: its labels, its spec, enabled as it was.
pub fn restored_schedule_object(schedule: &SavedSchedule, relationship: &str) -> Value {
    let spec = schedule.restored_spec();
    let mut labels = schedule.labels.clone();
    labels.insert(RELATIONSHIP_LABEL.to_string(), relationship.to_string());
    json!({
        "apiVersion": API_VERSION,
        "kind": "Schedule",
        "metadata": {"name": schedule.name, "namespace": schedule.namespace, "labels": labels},
        "spec": spec,
    })
}

/// Notes in `record` the Application a promotion created on `cluster` (before the AMR naming it goes).
pub fn note_destination_app(
    record: &mut OperationRecord,
    observed: &Observed,
    cluster: ClusterKey,
    name: &str,
) {
    let id = observed
        .state(cluster)
        .map(|s| s.cluster_id.clone())
        .unwrap_or_default();
    record.destination_apps.insert(id, name.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(spec: Value, annotations: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": API_VERSION,
            "kind": "Schedule",
            "metadata": {"name": "daily", "namespace": "shop", "labels": {"team": "a"}, "annotations": annotations},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn a_saved_schedule_is_restored_with_the_fields_this_version_does_not_know() {
        let spec = json!({
            "applicationRef": "shop",
            "appVaultRef": "vault",
            "granularity": "Daily",
            "hour": "2",
            "enabled": false,
            "dataMover": "Kopia",
            "someFutureField": {"nested": [1, 2]},
        });
        let disabled_by_us = json!({DISABLED_BY_ANNOTATION: "planned swap"});
        let saved =
            saved_schedule(&schedule(spec.clone(), disabled_by_us)).expect("a protection schedule is kept");
        assert!(saved.was_enabled, "disabled by the plugin, so enabled before");

        // Through the ConfigMap and back, then re-created.
        let text = serde_json::to_string(&SavedSchedules {
            schedules: vec![saved],
        })
        .unwrap();
        let back: SavedSchedules = serde_json::from_str(&text).unwrap();
        let object = restored_schedule_object(&back.schedules[0], "rel");
        let mut expected = spec;
        expected["enabled"] = json!(true);
        assert_eq!(object["spec"], expected);
        assert_eq!(object["metadata"]["labels"]["team"], "a");
        assert_eq!(object["metadata"]["labels"][RELATIONSHIP_LABEL], "rel");
    }

    #[test]
    fn replication_schedules_are_not_saved() {
        let mut object = schedule(json!({"granularity": "Custom"}), json!({}));
        object.metadata.labels.get_or_insert_default().insert(
            tprotect_api::REPLICATION_SCHEDULE_LABEL.to_string(),
            "true".to_string(),
        );
        assert_eq!(saved_schedule(&object), None);
    }
}
