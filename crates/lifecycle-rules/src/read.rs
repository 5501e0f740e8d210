//! Reading Trident protect's objects into the planner's views, tolerantly.
//!
//! NetApp documents the shape of its resources (the CRDs) but not every format the controller writes (see
//! `docs/trident-protect-fields.md`). Every field whose format is not documented is read here, in one place,
//! accepting every plausible form, with a fallback to what the plugin itself knows where a field is unusable.
//! Objects are read as JSON and converted field by field, so one odd value (one our types do not know) never
//! hides the others. Secrets are reduced to their key names: their data is never kept.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;
use kube_core::{DynamicObject, ObjectMeta};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tprotect_api::{
    AppMirrorRelationshipSpec, AppMirrorRelationshipStatus, RELATIONSHIP_LABEL, ScheduleSpec,
};

use crate::model::*;
pub use crate::states::{FAILURE_STATES, is_failure_state, state_is};

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

/// The non-empty string at `path` in `value`.
pub fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

// ---------------------------------------------------------------------------------------------------------------
// The destination Application. `status.destinationApplicationRef` is documented only as "the name of the
// destination Application": a bare name, `namespace/name`, or absent are all plausible. When it names nothing
// that exists, the plugin falls back to what it knows: the AMR's `sourceApplicationName` in a mapped destination
// namespace, then the one Application there labelled with the relationship.

/// A reference to an Application as `status.destinationApplicationRef` may write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRef {
    pub namespace: Option<String>,
    pub name: String,
}

/// Parses `name` or `namespace/name` (white space trimmed). `None` for an empty or malformed reference.
pub fn parse_app_ref(text: &str) -> Option<AppRef> {
    let text = text.trim();
    let (namespace, name) = match text.split_once('/') {
        Some((namespace, name)) => (Some(namespace.trim()), name.trim()),
        None => (None, text),
    };
    let valid = |s: &str| !s.is_empty() && !s.contains('/') && !s.contains(char::is_whitespace);
    if !valid(name) || namespace.is_some_and(|ns| !valid(ns)) {
        return None;
    }
    Some(AppRef {
        namespace: namespace.map(str::to_string),
        name: name.to_string(),
    })
}

/// The Application a promotion of `amr` created on `cluster` (the cluster holding the AMR), and how it was
/// found; `None` when none of the ways finds one.
pub fn destination_application<'a>(
    amr: &AmrView,
    cluster: &'a ClusterState,
) -> Option<(&'a AppView, FoundBy)> {
    let destinations: Vec<String> = amr.mapping().into_iter().map(|(_, d)| d).collect();
    let in_destination = |app: &&AppView| destinations.contains(&app.namespace);
    let by_ref = amr
        .status
        .as_ref()
        .and_then(|s| s.destination_application_ref.as_deref())
        .and_then(parse_app_ref)
        .and_then(|r| {
            cluster
                .applications
                .iter()
                .filter(in_destination)
                .find(|a| a.name == r.name && r.namespace.as_ref().is_none_or(|ns| *ns == a.namespace))
        });
    if let Some(app) = by_ref {
        return Some((app, FoundBy::StatusRef));
    }
    if let Some(source_name) = amr.spec.source_application_name.as_deref()
        && let Some(app) = destinations
            .iter()
            .find_map(|ns| cluster.application(ns, source_name))
    {
        return Some((app, FoundBy::SourceName));
    }
    let relationship = amr.labels.get(RELATIONSHIP_LABEL)?;
    let mut labelled = cluster
        .applications
        .iter()
        .filter(in_destination)
        .filter(|a| a.labels.get(RELATIONSHIP_LABEL) == Some(relationship));
    match (labelled.next(), labelled.next()) {
        (Some(one), None) => Some((one, FoundBy::RelationshipLabel)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// JSON objects to views.

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

/// An Application (JSON).
pub fn app_view(object: &DynamicObject) -> AppView {
    let meta = &object.metadata;
    AppView {
        namespace: namespace_of(meta),
        name: name_of(meta),
        uid: meta.uid.clone().unwrap_or_default(),
        labels: meta.labels.clone().unwrap_or_default(),
    }
}

/// A Schedule (JSON).
pub fn schedule_view(object: &DynamicObject) -> ScheduleView {
    let meta = &object.metadata;
    ScheduleView {
        namespace: namespace_of(meta),
        name: name_of(meta),
        labels: meta.labels.clone().unwrap_or_default(),
        annotations: meta.annotations.clone().unwrap_or_default(),
        spec: lenient::<ScheduleSpec>(object.data.get("spec")),
    }
}

/// A Snapshot or ShutdownSnapshot (JSON).
pub fn snapshot_view(object: &DynamicObject) -> SnapshotView {
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
    let state = str_at(&status, &["state"]).unwrap_or_default().to_string();
    // The reason of an unusable vault: `status.error`, or (undocumented) `status.message` beside a state that is
    // not Available.
    let error = str_at(&status, &["error"])
        .or_else(|| {
            str_at(&status, &["message"])
                .filter(|_| !state_is(&state, tprotect_api::APP_VAULT_STATE_AVAILABLE))
        })
        .map(str::to_string);
    VaultView {
        name: name_of(&object.metadata),
        state,
        error,
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

/// The relationship's AMR among all of a cluster's: the one labelled with it (named like it first), else the
/// only one named like it.
pub fn pick_amr(relationship: &str, amrs: Vec<AmrView>) -> Option<AmrView> {
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

/// The saved schedules a ConfigMap's JSON holds (empty when it holds none, or nothing readable).
pub fn parse_saved_schedules(text: Option<&str>) -> SavedSchedules {
    text.and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tprotect_api::NamespaceMapping;

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

    #[test]
    fn states_are_read_without_regard_to_case_and_every_failure_spelling_fails() {
        assert!(state_is("Established", "Established"));
        assert!(state_is("established", "Established"));
        assert!(state_is(" PROMOTED ", "Promoted"));
        assert!(!state_is("Establishing", "Established"));
        for failed in ["Failed", "failed", "Error", "ERROR", "Failure", "Errored"] {
            assert!(is_failure_state(failed), "{failed}");
        }
        for not_failed in [
            "",
            "Establishing",
            "Promoting",
            "Running",
            "Available",
            "Completed",
            "Pending",
        ] {
            assert!(!is_failure_state(not_failed), "{not_failed}");
        }
    }

    #[test]
    fn an_application_reference_is_a_bare_name_or_namespace_slash_name() {
        assert_eq!(
            parse_app_ref("app1"),
            Some(AppRef {
                namespace: None,
                name: "app1".into()
            })
        );
        assert_eq!(
            parse_app_ref(" ns-2/app1 "),
            Some(AppRef {
                namespace: Some("ns-2".into()),
                name: "app1".into()
            })
        );
        for bad in ["", "/", "ns/", "/app", "a/b/c", "a b"] {
            assert_eq!(parse_app_ref(bad), None, "{bad:?}");
        }
    }

    fn promoted_amr(reference: Option<&str>) -> AmrView {
        AmrView {
            namespace: "dst".into(),
            name: "rel1".into(),
            labels: [(RELATIONSHIP_LABEL.to_string(), "rel1".to_string())].into(),
            spec: AppMirrorRelationshipSpec {
                source_application_name: Some("shop".into()),
                namespace_mapping: Some(vec![NamespaceMapping {
                    source: "src".into(),
                    destination: "dst".into(),
                }]),
                ..Default::default()
            },
            status: Some(AppMirrorRelationshipStatus {
                destination_application_ref: reference.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn cluster_with(apps: Vec<AppView>) -> ClusterState {
        ClusterState {
            applications: apps,
            ..Default::default()
        }
    }

    fn app(namespace: &str, name: &str, relationship: Option<&str>) -> AppView {
        AppView {
            namespace: namespace.into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            labels: relationship
                .map(|r| [(RELATIONSHIP_LABEL.to_string(), r.to_string())].into())
                .unwrap_or_default(),
        }
    }

    #[test]
    fn the_destination_application_is_found_by_every_plausible_reference_and_by_fallbacks() {
        // Named as documented, or with its namespace.
        for reference in ["shop-dr", "dst/shop-dr"] {
            let cluster = cluster_with(vec![app("dst", "shop-dr", None)]);
            let (found, by) = destination_application(&promoted_amr(Some(reference)), &cluster).unwrap();
            assert_eq!(
                (found.name.as_str(), by),
                ("shop-dr", FoundBy::StatusRef),
                "{reference}"
            );
        }
        // A reference naming another namespace than the mapped destination is not trusted: fall back.
        let cluster = cluster_with(vec![app("dst", "shop", None)]);
        let (found, by) = destination_application(&promoted_amr(Some("elsewhere/shop")), &cluster).unwrap();
        assert_eq!((found.namespace.as_str(), by), ("dst", FoundBy::SourceName));
        // Absent, or naming nothing: the source application's name in the destination namespace.
        for reference in [None, Some("gone"), Some("dst/dst/shop")] {
            let cluster = cluster_with(vec![app("dst", "shop", None)]);
            let (found, by) = destination_application(&promoted_amr(reference), &cluster).unwrap();
            assert_eq!(
                (found.name.as_str(), by),
                ("shop", FoundBy::SourceName),
                "{reference:?}"
            );
        }
        // Named otherwise and not referenced: the one labelled with the relationship.
        let cluster = cluster_with(vec![
            app("dst", "restored-1", Some("rel1")),
            app("dst", "other", None),
        ]);
        let (found, by) = destination_application(&promoted_amr(None), &cluster).unwrap();
        assert_eq!(
            (found.name.as_str(), by),
            ("restored-1", FoundBy::RelationshipLabel)
        );
        // Two labelled: ambiguous, none chosen.
        let cluster = cluster_with(vec![app("dst", "a", Some("rel1")), app("dst", "b", Some("rel1"))]);
        assert_eq!(destination_application(&promoted_amr(None), &cluster), None);
        // Applications outside the destination namespaces never count.
        let cluster = cluster_with(vec![app("src", "shop", Some("rel1"))]);
        assert_eq!(
            destination_application(&promoted_amr(Some("shop")), &cluster),
            None
        );
    }
}
