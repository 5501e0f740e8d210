//! `kubectl tprotect check` (a read-only preflight of everything an operation needs) and `kubectl tprotect
//! status` (both clusters' view of a relationship). Pure functions of an observation; the plugin prints them
//! as a table, JSON or YAML.

// RunError is large (it names cluster, namespace and object); it ends a run, so its size costs nothing.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::api::{Api, ListParams};
use serde::Serialize;
use tprotect_api::{
    AMR_STATE_ESTABLISHED, APP_VAULT_STATE_AVAILABLE, DesiredState, TRIDENT_PROTECT_NAMESPACE,
};

use crate::clusters::Clusters;
use crate::error::{RunError, is_connection_error};
use crate::model::*;
use crate::plan::{PEER_STORAGE_CLASS_ANNOTATION, plan};

/// Name prefix of the project's ValidatingWebhookConfiguration (manifests/webhook/).
pub const WEBHOOK_CONFIGURATION_PREFIX: &str = "tprotect-webhook";

/// One preflight item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckItem {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

fn item(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> CheckItem {
    CheckItem {
        name: name.into(),
        ok,
        detail: detail.into(),
    }
}

/// ValidatingWebhookConfigurations of the project found on each cluster (or why they could not be read).
pub type Webhooks = BTreeMap<ClusterKey, Result<BTreeSet<String>, String>>;

/// Reads the names of the project's ValidatingWebhookConfigurations on both clusters (one LIST each).
pub async fn read_webhooks(clusters: &Clusters) -> Result<Webhooks, RunError> {
    let mut found = BTreeMap::new();
    for key in ClusterKey::BOTH {
        let handle = clusters.get(key);
        let client = match handle.client() {
            Ok(client) => client.clone(),
            Err(e) => {
                found.insert(key, Err(e.to_string()));
                continue;
            }
        };
        let api: Api<ValidatingWebhookConfiguration> = Api::all(client);
        match api.list_metadata(&ListParams::default()).await {
            Ok(list) => {
                let names = list
                    .items
                    .into_iter()
                    .filter_map(|w| w.metadata.name)
                    .filter(|n| n.starts_with(WEBHOOK_CONFIGURATION_PREFIX))
                    .collect();
                found.insert(key, Ok(names));
            }
            Err(e) if is_connection_error(&e) || crate::error::api_status(&e) == Some(403) => {
                found.insert(key, Err(e.to_string()));
            }
            Err(e) => {
                return Err(RunError::kube(
                    &handle.context,
                    "list",
                    "validatingwebhookconfigurations",
                    "",
                    "",
                    e,
                ));
            }
        }
    }
    Ok(found)
}

fn context(observed: &Observed, key: ClusterKey) -> String {
    match observed.cluster(key) {
        Reach::Reachable(s) => s.context.clone(),
        Reach::Unreachable { context, .. } => context.clone(),
    }
}

/// Everything an operation on the relationship needs, each item passed or failed. Read-only.
pub fn preflight(observed: &Observed, webhooks: &Webhooks, now: Timestamp) -> Vec<CheckItem> {
    let mut items = Vec::new();
    for key in ClusterKey::BOTH {
        let ctx = context(observed, key);
        items.push(match observed.cluster(key) {
            Reach::Reachable(_) => item(format!("cluster {ctx} reachable"), true, "API server answered"),
            Reach::Unreachable { error, .. } => {
                item(format!("cluster {ctx} reachable"), false, error.clone())
            }
        });
    }
    let (dst_key, amr) = match observed.amr_location() {
        Ok(Some(found)) => found,
        Ok(None) => {
            items.push(item(
                "AppMirrorRelationship found",
                false,
                format!(
                    "no AppMirrorRelationship for {:?} on either cluster",
                    observed.relationship
                ),
            ));
            return items;
        }
        Err(e) => {
            items.push(item("AppMirrorRelationship found", false, e.to_string()));
            return items;
        }
    };
    let src_key = dst_key.other();
    let (dst_ctx, src_ctx) = (context(observed, dst_key), context(observed, src_key));
    items.push(item(
        "AppMirrorRelationship found",
        true,
        format!(
            "{}/{} on {dst_ctx}: desired {}, state {}",
            amr.namespace,
            amr.name,
            amr.desired().map(|d| d.as_str()).unwrap_or("-"),
            or_dash(amr.state())
        ),
    ));
    if let Some(error) = amr.error() {
        items.push(item("AppMirrorRelationship without error", false, error));
    }
    let dst = observed.state(dst_key);
    let src = observed.state(src_key);
    let source_vault = amr.spec.source_app_vault_ref.clone().unwrap_or_default();
    let destination_vault = amr.spec.destination_app_vault_ref.clone().unwrap_or_default();

    // Vaults Available on both sides, and their Secrets with the keys they need.
    let vault_checks = [
        (dst_key, dst, &destination_vault, "destination AppVault"),
        (
            dst_key,
            dst,
            &source_vault,
            "source AppVault (copy on the destination)",
        ),
        (src_key, src, &source_vault, "source AppVault"),
    ];
    for (key, state, vault, what) in vault_checks {
        let ctx = context(observed, key);
        let name = format!("{what} {TRIDENT_PROTECT_NAMESPACE}/{vault} on {ctx}");
        let Some(state) = state else {
            items.push(item(name, false, "cluster unreachable"));
            continue;
        };
        let Some(view) = state.vaults.get(vault.as_str()) else {
            items.push(item(name, false, "not found"));
            continue;
        };
        let available = view.state == APP_VAULT_STATE_AVAILABLE;
        let mut detail = format!("state {}", or_dash(&view.state));
        if let Some(error) = &view.error {
            detail.push_str(&format!(", error: {error}"));
        }
        items.push(item(name, available, detail));
        for (secret, keys) in &view.secret_refs {
            let name = format!("Secret {TRIDENT_PROTECT_NAMESPACE}/{secret} on {ctx} (AppVault {vault})");
            match state.secrets.get(secret) {
                None => items.push(item(name, false, "not found")),
                Some(found) => {
                    let missing: Vec<&str> = keys
                        .iter()
                        .filter(|k| !found.keys.contains(*k))
                        .map(String::as_str)
                        .collect();
                    if missing.is_empty() {
                        items.push(item(name, true, "present with the keys the AppVault needs"));
                    } else {
                        items.push(item(name, false, format!("missing keys: {}", missing.join(", "))));
                    }
                }
            }
        }
    }

    // Storage classes: the destination's, and the one kept for a reversal.
    if let Some(state) = dst
        && let Some(class) = &amr.spec.storage_class_name
    {
        let ok = state.storage_classes.contains(class);
        items.push(item(
            format!("StorageClass {class} on {dst_ctx}"),
            ok,
            if ok {
                "exists".to_string()
            } else {
                "not found".to_string()
            },
        ));
    }
    if let Some(state) = src
        && let Some(class) = amr.annotations.get(PEER_STORAGE_CLASS_ANNOTATION)
    {
        let ok = state.storage_classes.contains(class);
        items.push(item(
            format!("StorageClass {class} on {src_ctx} (for a reversal)"),
            ok,
            if ok {
                "exists".to_string()
            } else {
                "not found".to_string()
            },
        ));
    }

    // The source application, with the UID the AMR names.
    let app_name = amr.spec.source_application_name.clone().unwrap_or_default();
    let source_namespaces: Vec<String> = amr.mapping().into_iter().map(|(s, _)| s).collect();
    let promoted = amr.desired() == Some(DesiredState::Promoted);
    if let Some(state) = src {
        let name = format!("source Application {app_name} on {src_ctx}");
        let found = state
            .applications
            .iter()
            .find(|a| a.name == app_name && source_namespaces.contains(&a.namespace));
        items.push(match found {
            None => item(
                name,
                false,
                format!("not found in {}", source_namespaces.join(", ")),
            ),
            Some(app) if Some(&app.uid) == amr.spec.source_application_uid.as_ref() => item(
                name,
                true,
                format!("{}/{} uid {} as the AMR says", app.namespace, app.name, app.uid),
            ),
            Some(app) => item(
                name,
                false,
                format!(
                    "uid {} but the AMR names {} (the application was re-created?)",
                    app.uid,
                    amr.spec.source_application_uid.clone().unwrap_or_default()
                ),
            ),
        });

        // Its replication schedule, valid per the admission rules.
        let schedules: Vec<&ScheduleView> = state
            .schedules
            .iter()
            .filter(|s| {
                s.is_replication() && s.application() == app_name && source_namespaces.contains(&s.namespace)
            })
            .collect();
        let name = format!("replication Schedule of {app_name} on {src_ctx}");
        match schedules.as_slice() {
            [] if promoted => items.push(item(name, true, "none needed while failed over")),
            [] => items.push(item(name, false, "not found")),
            found => {
                for schedule in found {
                    let object = schedule_json(schedule);
                    let violations = tprotect_policy::validate(
                        "Schedule",
                        tprotect_policy::Operation::Create,
                        &object,
                        None,
                        now,
                    );
                    let label = format!("{name}: {}/{}", schedule.namespace, schedule.name);
                    if violations.is_empty() {
                        items.push(item(label, true, "valid"));
                    } else {
                        let detail: Vec<String> = violations.iter().map(ToString::to_string).collect();
                        items.push(item(label, false, detail.join("; ")));
                    }
                }
            }
        }
    } else {
        items.push(item(
            format!("source Application {app_name}"),
            false,
            "source cluster unreachable",
        ));
    }

    // No protection schedules left on the destination (they make its volume snapshots fail).
    if let Some(state) = dst
        && !promoted
    {
        let left = schedules_on_destination(state, amr);
        items.push(item(
            format!("no Schedules on the destination {dst_ctx}"),
            left.is_empty(),
            if left.is_empty() {
                "none".to_string()
            } else {
                format!(
                    "found {} (run kubectl tprotect resync to remove them)",
                    left.join(", ")
                )
            },
        ));
    }

    // The admission webhook on both clusters.
    for key in ClusterKey::BOTH {
        let ctx = context(observed, key);
        let name = format!("tprotect webhook installed on {ctx}");
        items.push(match webhooks.get(&key) {
            Some(Ok(names)) if !names.is_empty() => item(
                name,
                true,
                format!(
                    "ValidatingWebhookConfiguration {}",
                    names.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            ),
            Some(Ok(_)) => item(
                name,
                false,
                format!("no ValidatingWebhookConfiguration named {WEBHOOK_CONFIGURATION_PREFIX}*"),
            ),
            Some(Err(e)) => item(name, false, e.clone()),
            None => item(name, false, "not checked"),
        });
    }

    if let Some(record) = &observed.record {
        items.push(item(
            "no operation in progress",
            false,
            format!(
                "a {} started {} is not finished; run: kubectl tprotect {} {}",
                record.operation.command(),
                record.started,
                record.operation.command(),
                observed.relationship
            ),
        ));
    }
    items
}

fn or_dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

fn schedule_json(schedule: &ScheduleView) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": tprotect_api::API_VERSION,
        "kind": "Schedule",
        "metadata": {"name": schedule.name, "namespace": schedule.namespace, "labels": schedule.labels},
        "spec": schedule.spec,
    })
}

/// Schedules in the destination namespaces of `amr` (none belong there while it replicates).
fn schedules_on_destination(state: &ClusterState, amr: &AmrView) -> Vec<String> {
    let destinations: Vec<String> = amr.mapping().into_iter().map(|(_, d)| d).collect();
    state
        .schedules
        .iter()
        .filter(|s| destinations.contains(&s.namespace))
        .map(|s| format!("{}/{}", s.namespace, s.name))
        .collect()
}

/// Both clusters' view of a relationship, for `kubectl tprotect status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    pub relationship: String,
    pub clusters: Vec<ClusterStatus>,
    /// The AMR, on the current destination.
    pub amr: Option<AmrStatus>,
    pub source_application: Option<AppStatus>,
    pub destination_application: Option<AppStatus>,
    /// Completion of the last transfer (RFC 3339).
    pub last_transfer: Option<String>,
    pub last_transferred_snapshot: Option<String>,
    /// Nominal time between transfers, from the recurrence rule.
    pub interval_seconds: Option<u64>,
    /// Time since the last transfer completed.
    pub lag_seconds: Option<i64>,
    /// `ok` while the lag is within two intervals (one transfer may be running), `behind` beyond, `unknown`
    /// without a transfer or a readable rule; empty while failed over (nothing replicates).
    pub rpo: String,
    /// Schedules left in the destination namespaces (they make its snapshots fail).
    pub schedules_on_destination: Vec<String>,
    pub failover_possible: bool,
    /// Why (not), or what a failover would do.
    pub failover: String,
    pub operation_in_progress: Option<OperationStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    pub context: String,
    /// `destination` (holds the AMR), `source`, or `unknown`.
    pub role: String,
    pub reachable: bool,
    pub error: Option<String>,
    pub cluster_id: Option<String>,
    /// AppVaults of the relationship on this cluster, name → state.
    pub vaults: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AmrStatus {
    pub cluster: String,
    pub namespace: String,
    pub name: String,
    pub desired_state: String,
    pub state: String,
    pub error: Option<String>,
    pub conditions: Vec<ConditionStatus>,
    pub source_application: String,
    pub source_application_uid: String,
    pub source_vault: String,
    pub destination_vault: String,
    pub namespace_mapping: Vec<String>,
    pub recurrence_rule: String,
    pub storage_class: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionStatus {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    pub cluster: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationStatus {
    pub operation: String,
    pub id: String,
    pub started: String,
}

/// The status of a relationship as observed at `now`.
pub fn status_view(observed: &Observed, now: Timestamp) -> StatusView {
    let location = observed.amr_location().ok().flatten();
    let amr_key = location.map(|(k, _)| k);
    let amr = location.map(|(_, a)| a);
    let vault_names: BTreeSet<String> = amr
        .map(|a| {
            [&a.spec.source_app_vault_ref, &a.spec.destination_app_vault_ref]
                .into_iter()
                .flatten()
                .cloned()
                .collect()
        })
        .unwrap_or_default();

    let clusters = ClusterKey::BOTH
        .into_iter()
        .map(|key| {
            let role = match amr_key {
                Some(k) if k == key => "destination",
                Some(_) => "source",
                None => "unknown",
            };
            match observed.cluster(key) {
                Reach::Reachable(state) => ClusterStatus {
                    context: state.context.clone(),
                    role: role.into(),
                    reachable: true,
                    error: None,
                    cluster_id: Some(state.cluster_id.clone()),
                    vaults: vault_names
                        .iter()
                        .map(|v| {
                            let state = state
                                .vaults
                                .get(v)
                                .map(|view| or_dash(&view.state).to_string())
                                .unwrap_or_else(|| "missing".into());
                            (v.clone(), state)
                        })
                        .collect(),
                },
                Reach::Unreachable { context, error } => ClusterStatus {
                    context: context.clone(),
                    role: role.into(),
                    reachable: false,
                    error: Some(error.clone()),
                    cluster_id: None,
                    vaults: BTreeMap::new(),
                },
            }
        })
        .collect();

    let amr_status = location.map(|(key, a)| AmrStatus {
        cluster: context(observed, key),
        namespace: a.namespace.clone(),
        name: a.name.clone(),
        desired_state: a.desired().map(|d| d.to_string()).unwrap_or_default(),
        state: a.state().to_string(),
        error: a.error().map(str::to_string),
        conditions: a
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .map(|conditions| {
                conditions
                    .iter()
                    .map(|c| ConditionStatus {
                        type_: c.type_.clone(),
                        status: c.status.clone(),
                        reason: c.reason.clone(),
                        message: c.message.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        source_application: a.spec.source_application_name.clone().unwrap_or_default(),
        source_application_uid: a.spec.source_application_uid.clone().unwrap_or_default(),
        source_vault: a.spec.source_app_vault_ref.clone().unwrap_or_default(),
        destination_vault: a.spec.destination_app_vault_ref.clone().unwrap_or_default(),
        namespace_mapping: a.mapping().into_iter().map(|(s, d)| format!("{s}:{d}")).collect(),
        recurrence_rule: a.spec.recurrence_rule.clone().unwrap_or_default(),
        storage_class: a.spec.storage_class_name.clone(),
    });

    let find_app = |key: ClusterKey, name: &str, namespaces: &[String]| {
        observed.state(key).and_then(|s| {
            s.applications
                .iter()
                .find(|a| a.name == name && namespaces.contains(&a.namespace))
                .map(|a| AppStatus {
                    cluster: s.context.clone(),
                    namespace: a.namespace.clone(),
                    name: a.name.clone(),
                    uid: a.uid.clone(),
                })
        })
    };
    let source_application = location.and_then(|(key, a)| {
        let namespaces: Vec<String> = a.mapping().into_iter().map(|(s, _)| s).collect();
        find_app(
            key.other(),
            a.spec.source_application_name.as_deref()?,
            &namespaces,
        )
    });
    let destination_application = location.and_then(|(key, a)| {
        let namespaces: Vec<String> = a.mapping().into_iter().map(|(_, d)| d).collect();
        let name = a.status.as_ref()?.destination_application_ref.clone()?;
        find_app(key, &name, &namespaces)
    });

    let status = amr.and_then(|a| a.status.as_ref());
    let transfer_time = status.and_then(|s| {
        s.last_transfer
            .as_ref()
            .and_then(|t| t.completion_timestamp.as_ref())
            .or_else(|| {
                s.last_transferred_snapshot
                    .as_ref()
                    .and_then(|t| t.completion_timestamp.as_ref())
            })
            .map(|t| t.0)
    });
    let interval = amr
        .and_then(|a| a.spec.recurrence_rule.as_deref())
        .and_then(|rule| tprotect_policy::recurrence::RecurrenceRule::parse(rule).ok())
        .map(|rule| rule.interval());
    let lag = transfer_time.map(|t| (now - t).get_seconds());
    let promoted = amr.is_some_and(|a| a.desired() == Some(DesiredState::Promoted));
    let rpo = match (promoted, lag, interval) {
        (true, _, _) => String::new(),
        (false, Some(lag), Some(interval)) if lag <= 2 * interval.as_secs() as i64 => "ok".into(),
        (false, Some(_), Some(_)) => "behind".into(),
        _ => "unknown".into(),
    };

    let schedules_left = location
        .and_then(|(key, a)| {
            let state = observed.state(key)?;
            (a.desired() != Some(DesiredState::Promoted)).then(|| schedules_on_destination(state, a))
        })
        .unwrap_or_default();

    let (failover_possible, failover) = match plan(observed, &Goal::Failover { force: false }) {
        Ok(Step::Act(_)) => (
            true,
            format!(
                "possible: kubectl tprotect failover {} promotes the destination{}",
                observed.relationship,
                if amr.is_some_and(|a| a.state() == AMR_STATE_ESTABLISHED) {
                    ""
                } else {
                    " (from the last transferred snapshot)"
                }
            ),
        ),
        Ok(Step::Wait(_)) => (false, "a failover is already under way".into()),
        Ok(Step::Done(_)) => (false, "already failed over".into()),
        Err(e) => (false, e.to_string()),
    };

    StatusView {
        relationship: observed.relationship.clone(),
        clusters,
        amr: amr_status,
        source_application,
        destination_application,
        last_transfer: transfer_time.map(|t| t.to_string()),
        last_transferred_snapshot: status
            .and_then(|s| s.last_transferred_snapshot.as_ref())
            .and_then(|s| s.name.clone()),
        interval_seconds: interval.map(|i| i.as_secs()),
        lag_seconds: lag,
        rpo,
        schedules_on_destination: schedules_left,
        failover_possible,
        failover,
        operation_in_progress: observed.record.as_ref().map(|r| OperationStatus {
            operation: r.operation.command().to_string(),
            id: r.id.clone(),
            started: r.started.clone(),
        }),
    }
}
