//! Text for people: kubectl-style tables (no borders, upper-case headers) and plans. Pure functions of plain
//! data, so every rendering is unit-tested.

use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;
use tprotect_api::TRIDENT_PROTECT_NAMESPACE;
use tprotect_lifecycle::{Action, ClusterKey, Step, WaitFor};

/// The kubeconfig context names of the two clusters of a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contexts {
    /// `--context` (or the current context).
    pub context: String,
    /// `--peer-context`.
    pub peer: String,
}

impl Contexts {
    pub fn name(&self, key: ClusterKey) -> &str {
        match key {
            ClusterKey::Context => &self.context,
            ClusterKey::Peer => &self.peer,
        }
    }
}

/// A kubectl-style table: no borders, columns separated by three spaces, no trailing blanks.
pub fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().map(|h| h.to_string()));
    for row in rows {
        table.add_row(row);
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 3));
    }
    let mut text = String::new();
    for line in table.lines() {
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// `namespace/name`, or `name` for cluster-scoped objects.
fn object(namespace: &str, name: &str) -> String {
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

/// One step of a plan, for people: the cluster it touches and the change it makes.
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

/// The words for one step.
pub fn describe(step: &Step, contexts: &Contexts, relationship: &str) -> (String, String) {
    let ctx = |key: ClusterKey| contexts.name(key).to_string();
    let tp = TRIDENT_PROTECT_NAMESPACE;
    match step {
        Step::Act(action) => match action {
            Action::CreateNamespace { cluster, name } => (
                ctx(*cluster),
                format!("create Namespace {name} (label tprotect.io/relationship={relationship})"),
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
                    "create Schedule {}: applicationRef {application}, appVaultRef {app_vault}, granularity Custom, recurrenceRule \"{}\", snapshotRetention \"2\", backupRetention \"0\", enabled",
                    object(namespace, name),
                    one_line(recurrence_rule)
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
                        ", annotation {}=\"true\" (DISCARDS every change written on this cluster since the failover)",
                        tprotect_api::DISCARD_DESTINATION_CHANGES_ANNOTATION
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
            Action::RecordDestinationApp { cluster, name } => (
                String::new(),
                format!(
                    "note in the relationship's lock: the promoted Application {name} on {}",
                    ctx(*cluster)
                ),
            ),
        },
        Step::Wait(wait) => match wait {
            WaitFor::AmrState {
                cluster,
                namespace,
                name,
                state,
            } => (
                ctx(*cluster),
                format!(
                    "wait until AppMirrorRelationship {} has status.state {state}",
                    object(namespace, name)
                ),
            ),
            WaitFor::SnapshotCompleted {
                cluster,
                namespace,
                name,
                shutdown,
            } => (
                ctx(*cluster),
                format!(
                    "wait until {} {} has status.state Completed",
                    if *shutdown { "ShutdownSnapshot" } else { "Snapshot" },
                    object(namespace, name)
                ),
            ),
            WaitFor::AmrGone {
                cluster,
                namespace,
                name,
            } => (
                ctx(*cluster),
                format!(
                    "wait until AppMirrorRelationship {} is gone",
                    object(namespace, name)
                ),
            ),
        },
        Step::Done(outcome) => (String::new(), format!("done: {}", outcome.message)),
    }
}

/// A plan as entries, numbering the steps (the final "done" is not a step).
pub fn plan_entries(steps: &[Step], contexts: &Contexts, relationship: &str) -> Vec<PlanEntry> {
    let mut index = 0;
    steps
        .iter()
        .map(|step| {
            let (cluster, change) = describe(step, contexts, relationship);
            let index = match step {
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
                step: step.clone(),
            }
        })
        .collect()
}

/// A plan for people: a heading, then one row per step.
pub fn plan_table(heading: &str, entries: &[PlanEntry]) -> String {
    let rows = entries.iter().map(|e| {
        vec![
            e.index.map(|i| i.to_string()).unwrap_or_default(),
            if e.cluster.is_empty() {
                "-".into()
            } else {
                e.cluster.clone()
            },
            e.change.clone(),
        ]
    });
    format!("{heading}\n{}", table(&["STEP", "CLUSTER", "CHANGE"], rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tprotect_api::{AppMirrorRelationshipSpec, DesiredState, NamespaceMapping};
    use tprotect_lifecycle::Outcome;

    fn contexts() -> Contexts {
        Contexts {
            context: "tprotect-destination".into(),
            peer: "tprotect-source".into(),
        }
    }

    #[test]
    fn tables_have_no_borders_and_no_trailing_blanks() {
        let text = table(
            &["NAME", "STATE"],
            [
                vec!["rel1".into(), "Established".into()],
                vec!["relationship-two".into(), "".into()],
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("NAME"), "{text}");
        assert!(lines[1].starts_with("rel1"), "{text}");
        assert!(lines.iter().all(|l| !l.ends_with(' ')), "{text:?}");
        assert!(
            !text.contains('|') && !text.contains('+') && !text.contains('─'),
            "{text}"
        );
        // Columns line up: STATE starts where Established starts.
        assert_eq!(lines[0].find("STATE"), lines[1].find("Established"), "{text}");
    }

    #[test]
    fn failover_plan_names_cluster_object_and_change() {
        let steps = vec![
            Step::Act(Action::SetDesiredState {
                cluster: ClusterKey::Context,
                namespace: "app-dr".into(),
                name: "rel1".into(),
                desired: DesiredState::Promoted,
                promoted_snapshot: None,
                discard_destination_changes: false,
            }),
            Step::Wait(WaitFor::AmrState {
                cluster: ClusterKey::Context,
                namespace: "app-dr".into(),
                name: "rel1".into(),
                state: "Promoted".into(),
            }),
            Step::Done(Outcome {
                message: "rel1 is failed over".into(),
                amr_cluster: Some(ClusterKey::Context),
            }),
        ];
        let entries = plan_entries(&steps, &contexts(), "rel1");
        assert_eq!(
            entries.iter().map(|e| e.index).collect::<Vec<_>>(),
            [Some(1), Some(2), None]
        );
        let text = plan_table("Plan for failover rel1 (dry run: nothing was changed)", &entries);
        assert!(text.starts_with("Plan for failover rel1"), "{text}");
        assert!(text.contains("STEP   CLUSTER"), "{text}");
        let first = text.lines().nth(2).unwrap();
        assert!(first.starts_with("1 "), "{first}");
        assert!(first.contains("tprotect-destination"), "{first}");
        assert!(
            first.contains("patch AppMirrorRelationship app-dr/rel1: spec.desiredState Promoted"),
            "{first}"
        );
        assert!(text.contains("wait until AppMirrorRelationship app-dr/rel1 has status.state Promoted"));
        assert!(
            text.lines().last().unwrap().contains("done: rel1 is failed over"),
            "{text}"
        );
    }

    #[test]
    fn copies_name_both_clusters_and_never_show_secret_data() {
        let (cluster, change) = describe(
            &Step::Act(Action::CopySecret {
                from: ClusterKey::Peer,
                to: ClusterKey::Context,
                name: "s3-creds".into(),
            }),
            &contexts(),
            "rel1",
        );
        assert_eq!(cluster, "tprotect-destination");
        assert!(change.contains("trident-protect/s3-creds"), "{change}");
        assert!(change.contains("tprotect-source"), "{change}");
        assert!(change.contains("data not shown"), "{change}");
    }

    #[test]
    fn resync_plan_warns_of_discarded_changes_and_amr_creation_lists_the_spec() {
        let (_, resync) = describe(
            &Step::Act(Action::SetDesiredState {
                cluster: ClusterKey::Peer,
                namespace: "ns".into(),
                name: "rel1".into(),
                desired: DesiredState::Established,
                promoted_snapshot: None,
                discard_destination_changes: true,
            }),
            &contexts(),
            "rel1",
        );
        assert!(
            resync.contains("tprotect.io/discard-destination-changes"),
            "{resync}"
        );
        assert!(resync.contains("DISCARDS"), "{resync}");

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
        let (cluster, create) = describe(
            &Step::Act(Action::CreateAmr {
                cluster: ClusterKey::Context,
                namespace: "app-dr".into(),
                name: "rel1".into(),
                spec: Box::new(spec),
                annotations: [("tprotect.io/peer-storage-class".to_string(), "silver".to_string())].into(),
            }),
            &contexts(),
            "rel1",
        );
        assert_eq!(cluster, "tprotect-destination");
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
            assert!(create.contains(part), "{part:?} missing from {create}");
        }
    }

    #[test]
    fn plans_serialise_with_context_names() {
        let steps = vec![Step::Act(Action::DeleteAmr {
            cluster: ClusterKey::Peer,
            namespace: "ns".into(),
            name: "rel1".into(),
            uid: "u".into(),
        })];
        let json = serde_json::to_value(plan_entries(&steps, &contexts(), "rel1")).unwrap();
        assert_eq!(json[0]["index"], 1);
        assert_eq!(json[0]["cluster"], "tprotect-source");
        assert_eq!(json[0]["step"]["step"], "act");
        assert_eq!(json[0]["step"]["action"], "deleteAmr");
    }
}
