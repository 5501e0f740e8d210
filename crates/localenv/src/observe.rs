//! Both clusters read back: objects, a relationship's state, and what changed between two moments.
//!
//! "Nothing changed" is judged only on what the plugin could have changed, so that it can fail only because
//! of the plugin: a [`Mark`] holds the resourceVersions of the kinds the plugin writes, minus the objects
//! Kubernetes' own controllers create and maintain (the kube-controller-manager publishes `kube-root-ca.crt`
//! and a token Secret into every new namespace, seconds after it appears), and a position in each API
//! server's audit log. Between two marks, a changed resourceVersion or any write the plugin's user agent had
//! carried out is a change (a delete of a custom resource whose dry run the log cannot show is judged by the
//! resourceVersions alone, see [`audit::AuditEvent::stored_a_change`]). Keep the stand-in stopped meanwhile:
//! it writes on its own.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::Resource;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde_json::{Value, json};
use tprotect_api::{AppMirrorRelationship, AppVault, Application, Schedule, ShutdownSnapshot, Snapshot};

use crate::manifests::dynamic_api;
use crate::{DESTINATION, Error, LocalEnv, SOURCE, TRIDENT, audit, eventually};

/// The ApiResource of a kind with a Rust type.
pub fn resource<K: Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

/// The kinds the plugin writes (every kind in the DR operator role that it may create, patch or delete).
pub fn plugin_kinds() -> Vec<ApiResource> {
    vec![
        resource::<Namespace>(),
        resource::<Secret>(),
        resource::<ConfigMap>(),
        resource::<Lease>(),
        resource::<AppMirrorRelationship>(),
        resource::<AppVault>(),
        resource::<Application>(),
        resource::<Schedule>(),
        resource::<Snapshot>(),
        resource::<ShutdownSnapshot>(),
    ]
}

/// Namespaces of the cluster's own components (leader-election Leases, node Leases, the controllers' objects).
const SYSTEM_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// True for an object Kubernetes' own controllers create or maintain and no command of the plugin writes:
/// anything in a system namespace (or the namespace itself), the root CA ConfigMap the
/// kube-controller-manager publishes into every namespace, and service account token Secrets.
pub fn maintained_by_kubernetes(kind: &str, object: &Value) -> bool {
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or("");
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    SYSTEM_NAMESPACES.contains(&namespace)
        || (kind == "Namespace" && SYSTEM_NAMESPACES.contains(&name))
        || (kind == "ConfigMap" && name == "kube-root-ca.crt")
        || (kind == "Secret" && object["type"] == "kubernetes.io/service-account-token")
}

/// A moment of the clusters: resourceVersions of what the plugin could change, keyed
/// `<context> <Kind> <namespace>/<name>`, and where each audit log was.
#[derive(Debug, Clone)]
pub struct Mark {
    pub versions: BTreeMap<String, String>,
    audit: BTreeMap<String, (PathBuf, u64)>,
}

impl Mark {
    /// What changed from `before` to this mark, one line each: objects created, deleted or with another
    /// resourceVersion (on the clusters both marks looked at), then every write the plugin had carried out
    /// in between (from the audit logs).
    pub fn changes_since(&self, before: &Mark) -> Result<Vec<String>, Error> {
        let contexts: Vec<&String> = self
            .audit
            .keys()
            .filter(|c| before.audit.contains_key(*c))
            .collect();
        let on_both = |key: &String| contexts.iter().any(|c| key.starts_with(&format!("{c} ")));
        let mut changes: Vec<String> = before
            .versions
            .iter()
            .filter(|(k, v)| on_both(k) && self.versions.get(*k) != Some(v))
            .map(|(k, v)| {
                format!(
                    "{k}: {v} -> {}",
                    self.versions.get(k).map(String::as_str).unwrap_or("(deleted)")
                )
            })
            .collect();
        changes.extend(
            self.versions
                .keys()
                .filter(|k| on_both(k) && !before.versions.contains_key(*k))
                .map(|k| format!("{k}: (created)")),
        );
        for context in contexts {
            let (path, from) = &before.audit[context];
            for event in audit::read_between(path, *from, self.audit[context].1)? {
                if event.by_plugin() && event.stored_a_change() == Some(true) {
                    changes.push(format!("{context}: the plugin wrote: {}", event.describe()));
                }
            }
        }
        Ok(changes)
    }
}

/// Asserts nothing changed between `before` and `after` (a test assertion: panics listing every change).
#[track_caller]
pub fn assert_unchanged(before: &Mark, after: &Mark, what: &str) {
    match after.changes_since(before) {
        Ok(changes) => assert!(
            changes.is_empty(),
            "{what} changed what the plugin could change:\n{}",
            changes.join("\n")
        ),
        Err(error) => panic!("{what}: cannot tell what changed: {error}"),
    }
}

/// Makes the names of the audit markers unique in this process.
static MARKS: AtomicU64 = AtomicU64::new(0);

impl LocalEnv {
    /// An object as JSON, if it exists (admin).
    pub async fn get(
        &self,
        context: &str,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, Error> {
        let object = dynamic_api(&self.client(context)?, namespace, resource)
            .get_opt(name)
            .await?;
        Ok(object.map(to_json))
    }

    /// Every object of a kind on a cluster (all namespaces).
    pub async fn list(&self, context: &str, resource: &ApiResource) -> Result<Vec<Value>, Error> {
        let api: Api<DynamicObject> = Api::all_with(self.client(context)?, resource);
        Ok(api
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .map(to_json)
            .collect())
    }

    /// The AMRs on a cluster.
    pub async fn amrs(&self, context: &str) -> Result<Vec<Value>, Error> {
        self.list(context, &resource::<AppMirrorRelationship>()).await
    }

    /// The AMR named `name` on `context`, in whatever namespace.
    pub async fn amr(&self, context: &str, name: &str) -> Result<Option<Value>, Error> {
        Ok(self
            .amrs(context)
            .await?
            .into_iter()
            .find(|a| a["metadata"]["name"] == name))
    }

    /// resourceVersions of what the plugin could change on `context` (see [`maintained_by_kubernetes`]).
    pub async fn resource_versions_of(&self, context: &str) -> Result<BTreeMap<String, String>, Error> {
        let mut versions = BTreeMap::new();
        for kind in plugin_kinds() {
            for object in self.list(context, &kind).await? {
                if maintained_by_kubernetes(&kind.kind, &object) {
                    continue;
                }
                let namespace = object["metadata"]["namespace"].as_str().unwrap_or("");
                let name = object["metadata"]["name"].as_str().unwrap_or("");
                versions.insert(
                    format!("{context} {} {namespace}/{name}", kind.kind),
                    object["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                );
            }
        }
        Ok(versions)
    }

    /// [`LocalEnv::resource_versions_of`] both clusters.
    pub async fn resource_versions(&self) -> Result<BTreeMap<String, String>, Error> {
        let mut versions = self.resource_versions_of(SOURCE).await?;
        versions.extend(self.resource_versions_of(DESTINATION).await?);
        Ok(versions)
    }

    /// A [`Mark`] of both clusters.
    pub async fn mark(&self) -> Result<Mark, Error> {
        self.mark_on(&[SOURCE, DESTINATION]).await
    }

    /// A [`Mark`] of the clusters of `contexts` (e.g. only the one whose API server is running).
    ///
    /// The audit position is taken after a marker request of this mark's own has been logged: every request
    /// answered before the mark was taken is then in the log before that position.
    pub async fn mark_on(&self, contexts: &[&str]) -> Result<Mark, Error> {
        let mut versions = BTreeMap::new();
        let mut positions = BTreeMap::new();
        for context in contexts {
            versions.extend(self.resource_versions_of(context).await?);
            let cluster = self.cluster(context)?;
            let path = cluster.audit_log.clone();
            let start = std::fs::metadata(&path).map_or(0, |m| m.len());
            let marker = format!(
                "tprotect-localenv-mark-{}-{}",
                std::process::id(),
                MARKS.fetch_add(1, Ordering::Relaxed)
            );
            let configmaps: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), "default");
            configmaps.get_opt(&marker).await?;
            let mut scanned = start;
            let end = eventually(
                &format!("the audit log of {context} to log {marker}"),
                async || {
                    let (events, next) = audit::read_from(&path, scanned).ok()?;
                    let logged = events.iter().any(|e| e.request_uri.ends_with(&marker));
                    if logged {
                        return Some(next);
                    }
                    scanned = next;
                    None
                },
            )
            .await?;
            positions.insert(context.to_string(), (path, end));
        }
        Ok(Mark {
            versions,
            audit: positions,
        })
    }

    /// A summary of the relationship's state on both clusters that an interrupted-then-resumed operation and
    /// an uninterrupted one must agree on: where the AMR is and its spec (the source application's uid
    /// aside), its state; every Application, Schedule (spec and enabled) and AppVault; the saved schedules;
    /// whether a lock remains; how many ShutdownSnapshots each namespace has. Uids, resourceVersions and
    /// timestamps are left out.
    pub async fn summary(&self, relationship: &str) -> Result<BTreeMap<String, Value>, Error> {
        let mut out = BTreeMap::new();
        let key = |object: &Value| {
            format!(
                "{}/{}",
                object["metadata"]["namespace"].as_str().unwrap_or(""),
                object["metadata"]["name"].as_str().unwrap_or("")
            )
        };
        for context in [SOURCE, DESTINATION] {
            for amr in self.amrs(context).await? {
                let mut spec = amr["spec"].clone();
                if let Some(spec) = spec.as_object_mut() {
                    spec.remove("sourceApplicationUID");
                }
                out.insert(
                    format!("{context} amr {}", key(&amr)),
                    json!({"spec": spec, "state": amr["status"]["state"], "labels": amr["metadata"]["labels"],
                           "annotations": strip_system_annotations(&amr["metadata"]["annotations"])}),
                );
            }
            for app in self.list(context, &resource::<Application>()).await? {
                out.insert(format!("{context} app {}", key(&app)), app["spec"].clone());
            }
            for schedule in self.list(context, &resource::<Schedule>()).await? {
                out.insert(
                    format!("{context} schedule {}", key(&schedule)),
                    json!({"spec": schedule["spec"],
                           "annotations": strip_system_annotations(&schedule["metadata"]["annotations"])}),
                );
            }
            for vault in self.list(context, &resource::<AppVault>()).await? {
                let name = vault["metadata"]["name"].as_str().unwrap_or("");
                out.insert(format!("{context} appvault {name}"), vault["spec"].clone());
            }
            let mut shutdowns: BTreeMap<String, usize> = BTreeMap::new();
            for s in self.list(context, &resource::<ShutdownSnapshot>()).await? {
                let namespace = s["metadata"]["namespace"].as_str().unwrap_or("");
                *shutdowns.entry(namespace.to_string()).or_default() += 1;
            }
            out.insert(format!("{context} shutdownsnapshots"), json!(shutdowns));
            for cm in self.list(context, &resource::<ConfigMap>()).await? {
                if cm["metadata"]["namespace"] == TRIDENT {
                    let name = cm["metadata"]["name"].as_str().unwrap_or("");
                    out.insert(format!("{context} configmap {name}"), cm["data"].clone());
                }
            }
            let leases: Vec<Value> = self
                .list(context, &resource::<Lease>())
                .await?
                .into_iter()
                .filter(|l| l["metadata"]["labels"]["tprotect.io/relationship"] == relationship)
                .map(|l| l["metadata"]["name"].clone())
                .collect();
            out.insert(format!("{context} locks"), json!(leases));
        }
        Ok(out)
    }

    /// [`LocalEnv::summary`] restricted to one relationship (its namespaces, vaults, ConfigMaps and Lease),
    /// with `token` (a name unique to the relationship, e.g. its app) replaced by `X` and DTSTART blanked, so
    /// the summaries of two relationships built alike compare equal.
    pub async fn relationship_summary(
        &self,
        token: &str,
        namespaces: &[&str],
        vaults: &[&str],
    ) -> Result<BTreeMap<String, Value>, Error> {
        let mut out = BTreeMap::new();
        for (key, value) in self.summary(token).await? {
            // `<context> <kind> <object>`
            let mut parts = key.splitn(3, ' ').skip(1);
            let (kind, object) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let in_namespaces =
                |object: &str| namespaces.iter().any(|ns| object.starts_with(&format!("{ns}/")));
            let value = match kind {
                "amr" | "app" | "schedule" if in_namespaces(object) => value,
                "appvault" if vaults.contains(&object) => value,
                "configmap" if object.contains(token) => value,
                "locks" => value,
                "shutdownsnapshots" => {
                    let mut counts = value;
                    if let Some(map) = counts.as_object_mut() {
                        map.retain(|ns, _| namespaces.contains(&ns.as_str()));
                    }
                    counts
                }
                _ => continue,
            };
            out.insert(normalize_text(&key, token), normalize(&value, token));
        }
        Ok(out)
    }
}

fn to_json(object: DynamicObject) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

fn normalize_text(text: &str, token: &str) -> String {
    let text = text.replace(token, "X");
    match text.strip_prefix("DTSTART:") {
        Some(rest) => format!("DTSTART:*{}", rest.find('\n').map(|i| &rest[i..]).unwrap_or("")),
        None => text,
    }
}

/// Every string (and key) with `token` replaced and DTSTART blanked; JSON held in strings (the saved
/// schedules) is normalised too.
fn normalize(value: &Value, token: &str) -> Value {
    match value {
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(inner @ (Value::Object(_) | Value::Array(_))) => normalize(&inner, token),
            _ => Value::String(normalize_text(s, token)),
        },
        Value::Array(items) => Value::Array(items.iter().map(|v| normalize(v, token)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (normalize_text(k, token), normalize(v, token)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `kubectl.kubernetes.io/last-applied-configuration` and the like are not the relationship's state.
fn strip_system_annotations(annotations: &Value) -> Value {
    let mut annotations = annotations.clone();
    if let Some(map) = annotations.as_object_mut() {
        map.retain(|k, _| !k.starts_with("kubectl.kubernetes.io/"));
    }
    annotations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(namespace: &str, name: &str) -> Value {
        json!({"metadata": {"namespace": namespace, "name": name}})
    }

    #[test]
    fn what_kubernetes_maintains_is_not_the_plugins() {
        // What the kube-controller-manager creates in a new namespace.
        assert!(maintained_by_kubernetes(
            "ConfigMap",
            &object("shop", "kube-root-ca.crt")
        ));
        let mut token = object("shop", "default-token-x7k2p");
        token["type"] = json!("kubernetes.io/service-account-token");
        assert!(maintained_by_kubernetes("Secret", &token));
        // The system namespaces and what is in them.
        assert!(maintained_by_kubernetes(
            "Lease",
            &object("kube-system", "kube-controller-manager")
        ));
        assert!(maintained_by_kubernetes(
            "Lease",
            &object("kube-node-lease", "node-1")
        ));
        assert!(maintained_by_kubernetes("Namespace", &object("", "kube-public")));
        // What the plugin writes.
        assert!(!maintained_by_kubernetes(
            "Secret",
            &object("trident-protect", "src-vault-creds")
        ));
        let mut opaque = object("trident-protect", "src-vault-creds");
        opaque["type"] = json!("Opaque");
        assert!(!maintained_by_kubernetes("Secret", &opaque));
        assert!(!maintained_by_kubernetes(
            "ConfigMap",
            &object("trident-protect", "tprotect-rel1-schedules")
        ));
        assert!(!maintained_by_kubernetes(
            "Lease",
            &object("shop-dr", "tprotect-rel1")
        ));
        assert!(!maintained_by_kubernetes("Namespace", &object("", "shop-dr")));
    }

    #[test]
    fn a_relationship_summary_names_no_relationship() {
        let value = json!({"r07-dr/r07": "DTSTART:20250101T000000Z\nRRULE:FREQ=HOURLY",
                           "saved": "[{\"name\":\"r07-hourly\"}]"});
        assert_eq!(
            normalize(&value, "r07"),
            json!({"X-dr/X": "DTSTART:*\nRRULE:FREQ=HOURLY", "saved": [{"name": "X-hourly"}]})
        );
    }
}
