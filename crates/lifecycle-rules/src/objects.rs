//! The objects and patches the lifecycle writes, built from plain data. Everything created is labelled
//! `tprotect.io/relationship=<NAME>`; changes are merge patches of only the fields the plugin owns (never a typed
//! object written back whole: typed reads drop fields our types do not know). The replication defaults come from
//! the policy crate, the one place they are written.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube_core::{DynamicObject, ObjectMeta};
use serde_json::{Value, json};
use tprotect_api::{
    API_VERSION, AppMirrorRelationshipSpec, DISCARD_DESTINATION_CHANGES_ANNOTATION, DesiredState,
    RELATIONSHIP_LABEL, REPLICATION_SCHEDULE_LABEL, TRIDENT_PROTECT_NAMESPACE,
};

use crate::model::*;
use crate::plan::DISABLED_BY_ANNOTATION;
use crate::read::lenient;

/// Name of the ConfigMap (in `trident-protect`) keeping the Schedules removed from a cluster while it was a
/// destination of relationship `relationship`.
pub fn saved_schedules_config_map(relationship: &str) -> String {
    format!("tprotect-saved-schedules-{relationship}")
}

/// Key of the saved-schedules ConfigMap holding the JSON of [`SavedSchedules`].
pub const SAVED_SCHEDULES_KEY: &str = "schedules.json";

fn relationship_labels(relationship: &str) -> Value {
    json!({ RELATIONSHIP_LABEL: relationship })
}

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

/// A replication Schedule (shared/docs/trident-protect.md): the policy's replication defaults (Custom,
/// backupRetention "0", snapshotRetention "2", enabled) with the relationship's recurrence rule.
pub fn replication_schedule_object(
    namespace: &str,
    name: &str,
    application: &str,
    app_vault: &str,
    recurrence_rule: &str,
    relationship: &str,
) -> Value {
    let mut spec = json!({
        "applicationRef": application,
        "appVaultRef": app_vault,
        "recurrenceRule": recurrence_rule,
    });
    for (field, value) in tprotect_policy::replication_defaults() {
        spec[field] = value;
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": "Schedule",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {RELATIONSHIP_LABEL: relationship, REPLICATION_SCHEDULE_LABEL: "true"},
        },
        "spec": spec,
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
) -> Value {
    // A spec of strings and lists always serialises.
    let spec = serde_json::to_value(spec).unwrap_or_else(|_| json!({}));
    let mut metadata =
        json!({"name": name, "namespace": namespace, "labels": relationship_labels(relationship)});
    if !annotations.is_empty() {
        metadata["annotations"] = json!(annotations);
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": "AppMirrorRelationship",
        "metadata": metadata,
        "spec": spec,
    })
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

/// The saved-schedules ConfigMap holding `saved` (with `resource_version` for a conditional replace).
pub fn saved_config_map(
    name: &str,
    relationship: &str,
    saved: &SavedSchedules,
    resource_version: Option<String>,
) -> ConfigMap {
    // Strings, bools and raw JSON specs always serialise.
    let text = serde_json::to_string_pretty(saved).unwrap_or_default();
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(TRIDENT_PROTECT_NAMESPACE.to_string()),
            labels: Some([(RELATIONSHIP_LABEL.to_string(), relationship.to_string())].into()),
            resource_version,
            ..Default::default()
        },
        data: Some([(SAVED_SCHEDULES_KEY.to_string(), text)].into()),
        ..Default::default()
    }
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

/// The merge patch of a new recurrence rule (`setup` run again with another interval).
pub fn recurrence_patch(recurrence_rule: &str) -> Value {
    json!({"spec": {"recurrenceRule": recurrence_rule}})
}

/// Notes in `record` the Application a promotion created on `cluster`, as `namespace/name`.
pub fn note_destination_app(
    record: &mut OperationRecord,
    observed: &Observed,
    cluster: ClusterKey,
    namespace: &str,
    name: &str,
) {
    let id = observed
        .state(cluster)
        .map(|s| s.cluster_id.clone())
        .unwrap_or_default();
    record.destination_apps.insert(id, format!("{namespace}/{name}"));
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
