//! The one description of every step: the plan of a dry run, the progress of a run, the errors that name a
//! step and the JSON output all use these words, so what a user reads in a plan is what they read while it runs.

use serde::Serialize;
use tprotect_api::{DISCARD_DESTINATION_CHANGES_ANNOTATION, RELATIONSHIP_LABEL, TRIDENT_PROTECT_NAMESPACE};

use crate::model::*;

/// A step in words: the kubeconfig context of the cluster it touches (empty when it touches none) and the
/// change it makes (names and values, never Secret data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Description {
    pub cluster: String,
    pub change: String,
}

impl std::fmt::Display for Description {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.cluster.is_empty() {
            f.write_str(&self.change)
        } else {
            write!(f, "{} on {}", self.change, self.cluster)
        }
    }
}

/// `namespace/name`, or `name` for cluster-scoped objects.
pub fn object(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}/{name}")
    }
}

/// A recurrence rule on one line (its two lines joined by `\n` as written in YAML).
fn one_line(rule: &str) -> String {
    rule.replace('\n', "\\n")
}

/// The replication defaults as the plan shows them (`granularity Custom, … enabled`), from the policy crate's
/// one list.
fn replication_defaults_text() -> String {
    tprotect_policy::replication_defaults()
        .iter()
        .map(|(field, value)| match value {
            serde_json::Value::Bool(true) => field.to_string(),
            serde_json::Value::String(text) if text.parse::<u64>().is_ok() => format!("{field} \"{text}\""),
            serde_json::Value::String(text) => format!("{field} {text}"),
            other => format!("{field} {other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The words for one action.
pub fn action(action: &Action, contexts: &Contexts, relationship: &str) -> Description {
    let ctx = |key: ClusterKey| contexts.name(key).to_string();
    let tp = TRIDENT_PROTECT_NAMESPACE;
    let (cluster, change) = match action {
        Action::CreateNamespace { cluster, name } => (
            ctx(*cluster),
            format!("create Namespace {name} (label {RELATIONSHIP_LABEL}={relationship})"),
        ),
        Action::CopySecret { from, to, name } => (
            ctx(*to),
            format!(
                "create Secret {}: copy of the Secret on {} (data not shown)",
                object(tp, name),
                ctx(*from)
            ),
        ),
        Action::CopyAppVault { from, to, name } => (
            ctx(*to),
            format!(
                "create AppVault {}: copy of the AppVault on {}",
                object(tp, name),
                ctx(*from)
            ),
        ),
        Action::CreateApplication {
            cluster,
            namespace,
            name,
            namespaces,
        } => (
            ctx(*cluster),
            format!(
                "create Application {}: includedNamespaces [{}]",
                object(namespace, name),
                namespaces.join(", ")
            ),
        ),
        Action::CreateReplicationSchedule {
            cluster,
            namespace,
            name,
            application,
            app_vault,
            recurrence_rule,
        } => (
            ctx(*cluster),
            format!(
                "create Schedule {}: applicationRef {application}, appVaultRef {app_vault}, recurrenceRule \"{}\", {}",
                object(namespace, name),
                one_line(recurrence_rule),
                replication_defaults_text()
            ),
        ),
        Action::SetRecurrence {
            cluster,
            target,
            namespace,
            name,
            recurrence_rule,
            was,
        } => (
            ctx(*cluster),
            format!(
                "patch {} {}: spec.recurrenceRule \"{}\" (was \"{}\")",
                target.kind(),
                object(namespace, name),
                one_line(recurrence_rule),
                one_line(was)
            ),
        ),
        Action::DisableSchedule {
            cluster,
            namespace,
            name,
        } => (
            ctx(*cluster),
            format!(
                "patch Schedule {}: spec.enabled false (re-enabled when the swap ends)",
                object(namespace, name)
            ),
        ),
        Action::RemoveDestinationSchedules {
            cluster,
            namespace,
            names,
        } => (
            ctx(*cluster),
            format!(
                "save then delete Schedule{} {} in {namespace} (schedules on a destination make its snapshots fail; restored when it is the source again)",
                if names.len() == 1 { "" } else { "s" },
                names.join(", ")
            ),
        ),
        Action::RestoreSchedules { cluster, names } => (
            ctx(*cluster),
            format!("re-create and enable saved Schedules {}", names.join(", ")),
        ),
        Action::CreateSnapshot {
            cluster,
            namespace,
            name,
            application,
            app_vault,
            shutdown,
        } => (
            ctx(*cluster),
            format!(
                "create {} {}: applicationRef {application}, appVaultRef {app_vault}",
                if *shutdown { "ShutdownSnapshot" } else { "Snapshot" },
                object(namespace, name)
            ),
        ),
        Action::CreateAmr {
            cluster,
            namespace,
            name,
            spec,
            annotations,
        } => {
            let mapping: Vec<String> = spec
                .namespace_mapping
                .iter()
                .flatten()
                .map(|m| format!("{} -> {}", m.source, m.destination))
                .collect();
            let mut change = format!(
                "create AppMirrorRelationship {}: desiredState {}, source Application {} (uid {}), AppVaults {} -> {}, namespaces {}, recurrenceRule \"{}\"",
                object(namespace, name),
                spec.desired_state.map(|d| d.as_str()).unwrap_or("Established"),
                spec.source_application_name.as_deref().unwrap_or(""),
                spec.source_application_uid.as_deref().unwrap_or(""),
                spec.source_app_vault_ref.as_deref().unwrap_or(""),
                spec.destination_app_vault_ref.as_deref().unwrap_or(""),
                mapping.join(", "),
                one_line(spec.recurrence_rule.as_deref().unwrap_or("")),
            );
            if let Some(class) = &spec.storage_class_name {
                change.push_str(&format!(", storageClassName {class}"));
            }
            for (key, value) in annotations {
                change.push_str(&format!(", annotation {key}={value}"));
            }
            (ctx(*cluster), change)
        }
        Action::SetDesiredState {
            cluster,
            namespace,
            name,
            desired,
            promoted_snapshot,
            discard_destination_changes,
        } => {
            let mut change = format!(
                "patch AppMirrorRelationship {}: spec.desiredState {desired}",
                object(namespace, name)
            );
            if let Some(snapshot) = promoted_snapshot {
                change.push_str(&format!(", spec.promotedSnapshot {snapshot}"));
            }
            if *discard_destination_changes {
                change.push_str(&format!(
                    ", annotation {DISCARD_DESTINATION_CHANGES_ANNOTATION}=\"true\" (DISCARDS every change written on this cluster since the failover)"
                ));
            }
            (ctx(*cluster), change)
        }
        Action::DeleteAmr {
            cluster,
            namespace,
            name,
            uid,
        } => (
            ctx(*cluster),
            format!(
                "delete AppMirrorRelationship {} (precondition uid {uid})",
                object(namespace, name)
            ),
        ),
        Action::RecordDestinationApp {
            cluster,
            namespace,
            name,
            found_by,
        } => (
            String::new(),
            format!(
                "note in the relationship's lock: the promoted Application {} on {} ({})",
                object(namespace, name),
                ctx(*cluster),
                found_by.describe()
            ),
        ),
    };
    Description { cluster, change }
}

/// The words for one wait.
pub fn wait(wait: &WaitFor, contexts: &Contexts) -> Description {
    let change = match wait {
        WaitFor::AmrState {
            namespace,
            name,
            state,
            ..
        } => format!(
            "wait until AppMirrorRelationship {} has status.state {state}",
            object(namespace, name)
        ),
        WaitFor::SnapshotCompleted {
            namespace,
            name,
            shutdown,
            ..
        } => format!(
            "wait until {} {} has status.state Completed",
            if *shutdown { "ShutdownSnapshot" } else { "Snapshot" },
            object(namespace, name)
        ),
        WaitFor::AmrGone { namespace, name, .. } => {
            format!(
                "wait until AppMirrorRelationship {} is gone",
                object(namespace, name)
            )
        }
    };
    Description {
        cluster: contexts.name(wait.cluster()).to_string(),
        change,
    }
}

/// The words for one step of any kind.
pub fn step(step: &Step, contexts: &Contexts, relationship: &str) -> Description {
    match step {
        Step::Act(a) => action(a, contexts, relationship),
        Step::Wait(w) => wait(w, contexts),
        Step::Done(outcome) => Description {
            cluster: String::new(),
            change: format!("done: {}", outcome.message),
        },
    }
}

/// Kind, namespace and name of the object a wait is about (for errors that name it).
pub fn wait_object(wait: &WaitFor) -> (&'static str, &str, &str) {
    match wait {
        WaitFor::AmrState { namespace, name, .. } | WaitFor::AmrGone { namespace, name, .. } => {
            ("AppMirrorRelationship", namespace, name)
        }
        WaitFor::SnapshotCompleted {
            namespace,
            name,
            shutdown,
            ..
        } => (
            if *shutdown { "ShutdownSnapshot" } else { "Snapshot" },
            namespace,
            name,
        ),
    }
}

/// One step of a plan, for people and for JSON: its position, the one description, and the step as data.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanEntry {
    /// 1-based position; `None` for the final "done" line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// The kubeconfig context of the cluster touched (empty when none is).
    pub cluster: String,
    /// What changes, in words.
    pub change: String,
    /// The planner's step, as data.
    pub step: Step,
}

/// A plan as entries, numbering the steps (the final "done" is not a step).
pub fn plan_entries(steps: &[Step], contexts: &Contexts, relationship: &str) -> Vec<PlanEntry> {
    let mut index = 0;
    steps
        .iter()
        .map(|s| {
            let Description { cluster, change } = step(s, contexts, relationship);
            let index = match s {
                Step::Done(_) => None,
                _ => {
                    index += 1;
                    Some(index)
                }
            };
            PlanEntry {
                index,
                cluster,
                change,
                step: s.clone(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tprotect_api::{AppMirrorRelationshipSpec, DesiredState, NamespaceMapping};

    fn contexts() -> Contexts {
        Contexts::new("tprotect-destination", "tprotect-source")
    }

    #[test]
    fn copies_name_both_clusters_and_never_show_secret_data() {
        let d = action(
            &Action::CopySecret {
                from: ClusterKey::Peer,
                to: ClusterKey::Context,
                name: "s3-creds".into(),
            },
            &contexts(),
            "rel1",
        );
        assert_eq!(d.cluster, "tprotect-destination");
        assert!(d.change.contains("trident-protect/s3-creds"), "{d}");
        assert!(d.change.contains("tprotect-source"), "{d}");
        assert!(d.change.contains("data not shown"), "{d}");
    }

    #[test]
    fn the_replication_schedule_shows_the_policy_defaults() {
        let d = action(
            &Action::CreateReplicationSchedule {
                cluster: ClusterKey::Peer,
                namespace: "shop".into(),
                name: "appmirror-schedule-rel1".into(),
                application: "shop".into(),
                app_vault: "v".into(),
                recurrence_rule: "DTSTART:20260101T000000Z\nRRULE:FREQ=MINUTELY;INTERVAL=5".into(),
            },
            &contexts(),
            "rel1",
        );
        assert!(
            d.change
                .ends_with("granularity Custom, backupRetention \"0\", snapshotRetention \"2\", enabled"),
            "{d}"
        );
    }

    #[test]
    fn resync_warns_of_discarded_changes_and_amr_creation_lists_the_spec() {
        let resync = action(
            &Action::SetDesiredState {
                cluster: ClusterKey::Peer,
                namespace: "ns".into(),
                name: "rel1".into(),
                desired: DesiredState::Established,
                promoted_snapshot: None,
                discard_destination_changes: true,
            },
            &contexts(),
            "rel1",
        );
        assert!(
            resync.change.contains("tprotect.io/discard-destination-changes"),
            "{resync}"
        );
        assert!(resync.change.contains("DISCARDS"), "{resync}");

        let spec = AppMirrorRelationshipSpec {
            desired_state: Some(DesiredState::Established),
            source_app_vault_ref: Some("src-vault".into()),
            destination_app_vault_ref: Some("dst-vault".into()),
            source_application_name: Some("app".into()),
            source_application_uid: Some("uid-1".into()),
            namespace_mapping: Some(vec![NamespaceMapping {
                source: "app".into(),
                destination: "app-dr".into(),
            }]),
            recurrence_rule: Some("DTSTART:20260101T000000Z\nRRULE:FREQ=MINUTELY;INTERVAL=5".into()),
            storage_class_name: Some("gold".into()),
            ..Default::default()
        };
        let create = action(
            &Action::CreateAmr {
                cluster: ClusterKey::Context,
                namespace: "app-dr".into(),
                name: "rel1".into(),
                spec: Box::new(spec),
                annotations: [("tprotect.io/peer-storage-class".to_string(), "silver".to_string())].into(),
            },
            &contexts(),
            "rel1",
        );
        assert_eq!(create.cluster, "tprotect-destination");
        for part in [
            "create AppMirrorRelationship app-dr/rel1",
            "desiredState Established",
            "source Application app (uid uid-1)",
            "AppVaults src-vault -> dst-vault",
            "namespaces app -> app-dr",
            "DTSTART:20260101T000000Z\\nRRULE:FREQ=MINUTELY;INTERVAL=5",
            "storageClassName gold",
            "annotation tprotect.io/peer-storage-class=silver",
        ] {
            assert!(create.change.contains(part), "{part:?} missing from {create}");
        }
    }

    #[test]
    fn plans_number_the_steps_and_serialise_with_context_names() {
        let steps = vec![
            Step::Act(Action::DeleteAmr {
                cluster: ClusterKey::Peer,
                namespace: "ns".into(),
                name: "rel1".into(),
                uid: "u".into(),
            }),
            Step::Wait(WaitFor::AmrGone {
                cluster: ClusterKey::Peer,
                namespace: "ns".into(),
                name: "rel1".into(),
            }),
            Step::Done(Outcome {
                message: "rel1 is deleted".into(),
                amr_cluster: None,
            }),
        ];
        let entries = plan_entries(&steps, &contexts(), "rel1");
        assert_eq!(
            entries.iter().map(|e| e.index).collect::<Vec<_>>(),
            [Some(1), Some(2), None]
        );
        let json = serde_json::to_value(&entries).unwrap();
        assert_eq!(json[0]["index"], 1);
        assert_eq!(json[0]["cluster"], "tprotect-source");
        assert_eq!(json[0]["step"]["step"], "act");
        assert_eq!(json[0]["step"]["action"], "deleteAmr");
        assert_eq!(json[2]["change"], "done: rel1 is deleted");
    }
}
