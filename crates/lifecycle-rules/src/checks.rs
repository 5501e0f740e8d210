//! `kubectl tprotect check`: everything the relationship's operations need, each item passed, failed, a warning,
//! or not verified (the user may not read it). Pure: a function of an observation and of what the webhook probe
//! found.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};
use tprotect_api::{APP_VAULT_STATE_AVAILABLE, DesiredState, TRIDENT_PROTECT_NAMESPACE};

use crate::model::*;
use crate::or_dash;
use crate::plan::PEER_STORAGE_CLASS_ANNOTATION;
use crate::read;

/// Name prefix of the project's webhook configurations (manifests/webhook/base/webhooks.yaml).
pub const WEBHOOK_CONFIGURATION_PREFIX: &str = "tprotect-webhook";
/// Name of the Schedule `check` sends with `dryRun=All` to prove the webhook answers (never stored).
pub const WEBHOOK_PROBE_NAME: &str = "tprotect-check-webhook-probe";

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Level {
    Passed,
    /// Worth knowing, not in the way of any operation.
    Warning,
    /// Could not be looked at with the user's permissions; not counted as a failure.
    NotVerified,
    Failed,
}

impl Level {
    /// The RESULT column.
    pub fn word(self) -> &'static str {
        match self {
            Level::Passed => "passed",
            Level::Warning => "warning",
            Level::NotVerified => "not verified",
            Level::Failed => "FAILED",
        }
    }
}

/// One preflight item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckItem {
    pub name: String,
    pub level: Level,
    pub detail: String,
}

impl CheckItem {
    pub fn ok(&self) -> bool {
        self.level != Level::Failed
    }
}

fn item(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> CheckItem {
    CheckItem {
        name: name.into(),
        level: if ok { Level::Passed } else { Level::Failed },
        detail: detail.into(),
    }
}

fn leveled(name: impl Into<String>, level: Level, detail: impl Into<String>) -> CheckItem {
    CheckItem {
        name: name.into(),
        level,
        detail: detail.into(),
    }
}

/// What was found of the project's admission webhook on one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookProbe {
    /// Could not be asked: the cluster is unreachable, or the user may not list webhook configurations or create
    /// a Schedule (even as a dry run) there.
    NotVerified(String),
    /// No webhook configuration of the project is registered.
    Absent,
    /// Registered (these configurations) and it answered: it refused the invalid dry-run Schedule itself.
    Answers { configurations: Vec<String> },
    /// Registered, but the API server could not call it: every write of the kinds it guards fails.
    NotAnswering {
        configurations: Vec<String>,
        error: String,
    },
    /// Registered, but the invalid dry-run Schedule was not refused by it (accepted, or refused by something
    /// else).
    Unexpected {
        configurations: Vec<String>,
        outcome: String,
    },
}

/// The webhook probe of each cluster.
pub type Webhooks = BTreeMap<ClusterKey, WebhookProbe>;

/// The Schedule that proves the webhook answers: a replication Schedule with `backupRetention: "1"`, which the
/// validating webhook must refuse. Sent with `dryRun=All` only: it is never stored.
pub fn webhook_probe_schedule(namespace: &str) -> Value {
    json!({
        "apiVersion": tprotect_api::API_VERSION,
        "kind": "Schedule",
        "metadata": {
            "name": WEBHOOK_PROBE_NAME,
            "namespace": namespace,
            "labels": {tprotect_api::REPLICATION_SCHEDULE_LABEL: "true"},
        },
        "spec": {
            "applicationRef": "tprotect-check-webhook-probe",
            "appVaultRef": "tprotect-check-webhook-probe",
            "granularity": "Custom",
            "recurrenceRule": "DTSTART:20260101T000000Z\nRRULE:FREQ=MINUTELY;INTERVAL=5",
            "backupRetention": "1",
            "snapshotRetention": "2",
            "enabled": true,
        },
    })
}

/// What the dry-run create of the probe Schedule tells, given the configurations registered (`configurations`,
/// non-empty) and the API server's answer: `Ok` (accepted) or the HTTP status and message of the refusal.
pub fn classify_probe(configurations: Vec<String>, answer: Result<(), (u16, String)>) -> WebhookProbe {
    match answer {
        Ok(()) => WebhookProbe::Unexpected {
            configurations,
            outcome: "the API server ACCEPTED a replication Schedule with backupRetention \"1\" (dry run): the webhook does not guard Schedules"
                .into(),
        },
        // The project's policy words its refusals `<Kind> "<name>" refused: …` (`tprotect_policy::denial_message`):
        // that text, not the webhook's registered name, proves it was this webhook that answered.
        Err((_, message))
            if message.contains("denied the request")
                && message.contains(&format!("Schedule \"{WEBHOOK_PROBE_NAME}\" refused")) =>
        {
            WebhookProbe::Answers { configurations }
        }
        Err((_, message)) if message.contains("failed calling webhook") => WebhookProbe::NotAnswering {
            configurations,
            error: message,
        },
        Err((403, message)) => WebhookProbe::NotVerified(format!(
            "no permission to create a Schedule as a dry run to ask the webhook ({message})"
        )),
        Err((status, message)) => WebhookProbe::Unexpected {
            configurations,
            outcome: format!("the probe Schedule was refused by something else (HTTP {status}): {message}"),
        },
    }
}

/// Everything an operation on the relationship needs, each item passed, failed, a warning or not verified.
pub fn preflight(observed: &Observed, webhooks: &Webhooks, now: Timestamp) -> Vec<CheckItem> {
    let mut items = Vec::new();
    for key in ClusterKey::BOTH {
        let ctx = observed.context_of(key);
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
    let (dst_ctx, src_ctx) = (
        observed.context_of(dst_key).to_string(),
        observed.context_of(src_key).to_string(),
    );
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
    if amr.failed() {
        items.push(item(
            "AppMirrorRelationship not failed",
            false,
            format!(
                "state {}: {}",
                amr.state(),
                amr.error().unwrap_or("(no error given)")
            ),
        ));
    } else if let Some(error) = amr.error() {
        // NetApp: the most recent error, "may not be permanent, so progress may continue". In a final state it
        // is worth failing the check; while a transition is under way it may be the controller's progress.
        let settled = match amr.desired() {
            Some(DesiredState::Promoted) => amr.is(tprotect_api::AMR_STATE_PROMOTED),
            _ => amr.is(tprotect_api::AMR_STATE_ESTABLISHED),
        };
        items.push(leveled(
            "AppMirrorRelationship without error",
            if settled { Level::Failed } else { Level::Warning },
            error,
        ));
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
        let ctx = observed.context_of(key);
        let name = format!("{what} {TRIDENT_PROTECT_NAMESPACE}/{vault} on {ctx}");
        let Some(state) = state else {
            items.push(item(name, false, "cluster unreachable"));
            continue;
        };
        let Some(view) = state.vaults.get(vault.as_str()) else {
            items.push(item(name, false, "not found"));
            continue;
        };
        let available = read::state_is(&view.state, APP_VAULT_STATE_AVAILABLE);
        let mut detail = format!("state {}", or_dash(&view.state));
        if let Some(error) = &view.error {
            detail.push_str(&format!(", error: {error}"));
        }
        items.push(item(name, available, detail));
        for (secret, keys) in &view.secret_refs {
            let name = format!("Secret {TRIDENT_PROTECT_NAMESPACE}/{secret} on {ctx} (AppVault {vault})");
            if let Some(reason) = &state.secrets_unreadable {
                items.push(leveled(
                    name,
                    Level::NotVerified,
                    format!("not verified: {reason}"),
                ));
                continue;
            }
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
    let class_checks = [
        (dst, amr.spec.storage_class_name.as_ref(), dst_ctx.clone(), ""),
        (
            src,
            amr.annotations.get(PEER_STORAGE_CLASS_ANNOTATION),
            src_ctx.clone(),
            " (for a reversal)",
        ),
    ];
    for (state, class, ctx, why) in class_checks {
        if let (Some(state), Some(class)) = (state, class) {
            let ok = state.storage_classes.contains(class);
            items.push(item(
                format!("StorageClass {class} on {ctx}{why}"),
                ok,
                if ok { "exists" } else { "not found" },
            ));
        }
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
                    let violations = tprotect_policy::validate(
                        "Schedule",
                        tprotect_policy::Operation::Create,
                        &schedule_json(schedule),
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

    // The admission webhook on both clusters: it must answer if it is registered (it guards writes with
    // failurePolicy: Fail); without it the plugin works, so its absence is a warning.
    for key in ClusterKey::BOTH {
        let ctx = observed.context_of(key);
        let name = format!("tprotect webhook on {ctx}");
        items.push(match webhooks.get(&key) {
            Some(WebhookProbe::Answers { configurations }) => item(
                name,
                true,
                format!(
                    "answers: it refused an invalid replication Schedule (dry run) itself ({})",
                    configurations.join(", ")
                ),
            ),
            Some(WebhookProbe::Absent) => leveled(
                name,
                Level::Warning,
                "not installed: the plugin works without it, but nothing refuses replication resources that would break replication at kubectl apply time (install it: manifests/webhook/README.md)",
            ),
            Some(WebhookProbe::NotAnswering {
                configurations,
                error,
            }) => item(
                name,
                false,
                format!(
                    "registered ({}) but NOT ANSWERING: every write of the kinds it guards fails on {ctx} ({error}). Fix: make the webhook run (kubectl --context {ctx} -n tprotect-system get pods), or remove its registration (kubectl --context {ctx} delete validatingwebhookconfiguration,mutatingwebhookconfiguration {WEBHOOK_CONFIGURATION_PREFIX})",
                    configurations.join(", ")
                ),
            ),
            Some(WebhookProbe::Unexpected {
                configurations,
                outcome,
            }) => item(
                name,
                false,
                format!("registered ({}) but {outcome}", configurations.join(", ")),
            ),
            Some(WebhookProbe::NotVerified(reason)) => leveled(name, Level::NotVerified, reason.clone()),
            None => leveled(name, Level::NotVerified, "not checked"),
        });
    }

    if let Some(record) = &observed.record {
        items.push(item(
            "no operation in progress",
            false,
            format!(
                "a {} started {} is not finished; finish it: kubectl tprotect {} {name}, or give it up: kubectl tprotect {} {name} --abandon",
                record.operation.command(),
                record.started,
                record.operation.command(),
                record.operation.command(),
                name = observed.relationship
            ),
        ));
    }
    items
}

fn schedule_json(schedule: &ScheduleView) -> Value {
    json!({
        "apiVersion": tprotect_api::API_VERSION,
        "kind": "Schedule",
        "metadata": {"name": schedule.name, "namespace": schedule.namespace, "labels": schedule.labels},
        "spec": schedule.spec,
    })
}

/// Schedules in the destination namespaces of `amr` (none belong there while it replicates).
pub fn schedules_on_destination(state: &ClusterState, amr: &AmrView) -> Vec<String> {
    let destinations: Vec<String> = amr.mapping().into_iter().map(|(_, d)| d).collect();
    state
        .schedules
        .iter()
        .filter(|s| destinations.contains(&s.namespace))
        .map(|s| format!("{}/{}", s.namespace, s.name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured() -> Vec<String> {
        vec!["tprotect-webhook".into()]
    }

    #[test]
    fn the_probe_tells_an_answering_webhook_from_one_that_does_not_answer() {
        let denied = format!(
            "admission webhook \"replication.validate.tprotect.io\" denied the request: Schedule \"{WEBHOOK_PROBE_NAME}\" refused: spec.backupRetention: must be \"0\""
        );
        assert_eq!(
            classify_probe(configured(), Err((422, denied))),
            WebhookProbe::Answers {
                configurations: configured()
            }
        );
        let down = "Internal error occurred: failed calling webhook \"replication.validate.tprotect.io\": connection refused";
        assert!(matches!(
            classify_probe(configured(), Err((500, down.into()))),
            WebhookProbe::NotAnswering { .. }
        ));
        assert!(matches!(
            classify_probe(configured(), Ok(())),
            WebhookProbe::Unexpected { .. }
        ));
        let other = "admission webhook \"trident\" denied the request: nope";
        assert!(matches!(
            classify_probe(configured(), Err((400, other.into()))),
            WebhookProbe::Unexpected { .. }
        ));
        assert!(matches!(
            classify_probe(configured(), Err((403, "forbidden".into()))),
            WebhookProbe::NotVerified(_)
        ));
    }

    #[test]
    fn the_probe_is_what_the_webhook_must_refuse() {
        let probe = webhook_probe_schedule("shop");
        let violations = tprotect_policy::validate(
            "Schedule",
            tprotect_policy::Operation::Create,
            &probe,
            None,
            Timestamp::now(),
        );
        assert!(
            violations.iter().any(|v| v.field == "spec.backupRetention"),
            "{violations:?}"
        );
        let message = tprotect_policy::denial_message("Schedule", WEBHOOK_PROBE_NAME, &violations);
        assert!(
            message.contains(&format!("Schedule \"{WEBHOOK_PROBE_NAME}\" refused")),
            "{message}"
        );
    }
}
