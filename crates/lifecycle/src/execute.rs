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

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, Preconditions,
};
use serde_json::Value;
use tprotect_api::{
    AppMirrorRelationship, AppVault, Application, FIELD_MANAGER, Schedule, ShutdownSnapshot, Snapshot,
    TRIDENT_PROTECT_NAMESPACE,
};

use tprotect_lifecycle_rules::objects::*;

use crate::clusters::Clusters;
use crate::error::{RunError, api_status};
use crate::model::*;
use crate::observe::{resource, saved_schedules_of};

/// What became of an action.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "result", content = "reason", rename_all = "kebab-case")]
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
            Action::SetRecurrence {
                cluster,
                target,
                namespace,
                name: object,
                recurrence_rule,
                ..
            } => {
                let t = self.target(*cluster)?;
                let body = recurrence_patch(recurrence_rule);
                match target {
                    RecurrenceTarget::AppMirrorRelationship => {
                        self.patch_json::<AppMirrorRelationship>(&t, namespace, object, body)
                            .await
                    }
                    RecurrenceTarget::Schedule => {
                        self.patch_json::<Schedule>(&t, namespace, object, body).await
                    }
                }
            }
            Action::DisableSchedule {
                cluster,
                namespace,
                name: schedule,
            } => {
                let t = self.target(*cluster)?;
                self.patch_json::<Schedule>(&t, namespace, schedule, disable_schedule_patch(name))
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
                let object = amr_object(namespace, amr, spec, annotations, name);
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
                let body = desired_state_patch(
                    *desired,
                    promoted_snapshot.as_deref(),
                    *discard_destination_changes,
                );
                self.patch_json::<AppMirrorRelationship>(&t, namespace, amr, body)
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
        if self.dry_run && uid == tprotect_lifecycle_rules::simulate::SIMULATED_UID {
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

    /// A JSON merge patch of the `K` named `name`.
    async fn patch_json<K: kube::Resource<DynamicType = ()>>(
        &self,
        t: &Target<'_>,
        namespace: &str,
        name: &str,
        body: Value,
    ) -> Result<Executed, RunError> {
        let ar = resource::<K>();
        let resource = &ar.plural;
        let api: Api<DynamicObject> = Api::namespaced_with(t.client.clone(), namespace, &ar);
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
        let saved = saved_schedules_of(&cm);
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
            let mut saved = current.as_ref().map(saved_schedules_of).unwrap_or_default();
            change(&mut saved);
            let result = match (&current, saved.schedules.is_empty()) {
                (None, true) => return Ok(()),
                (None, false) => api
                    .create(
                        &self.post_params(),
                        &saved_config_map(&cm_name, self.relationship, &saved, None),
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
                    );
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
