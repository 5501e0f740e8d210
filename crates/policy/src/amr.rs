//! AppMirrorRelationship rules.

use std::collections::BTreeSet;

use crate::json::Json;

use crate::{
    names::DISCARD_DESTINATION_CHANGES_ANNOTATION,
    recurrence,
    report::{self, Report, child, describe, did_you_mean, quote},
};

const DESIRED_STATES: [&str; 2] = ["Established", "Promoted"];

/// Fields that identify the relationship: changing one in place would silently point an existing
/// relationship elsewhere.
const IMMUTABLE: [&str; 5] = [
    "sourceApplicationUID",
    "sourceApplicationName",
    "sourceAppVaultRef",
    "destinationAppVaultRef",
    "namespaceMapping",
];

pub(crate) fn validate(report: &mut Report, object: &Json<'_>, now: jiff::Timestamp) {
    let Some(spec) = report::spec(
        report,
        object,
        "add spec with desiredState, sourceAppVaultRef, destinationAppVaultRef, sourceApplicationName, \
         sourceApplicationUID, recurrenceRule and namespaceMapping",
    ) else {
        return;
    };

    let desired_state = check_desired_state(report, spec);

    for (key, what, fix) in [
        (
            "sourceAppVaultRef",
            "AppVault",
            "set spec.sourceAppVaultRef to the name of the source application's AppVault (a copy of it must exist \
             on this cluster)",
        ),
        (
            "destinationAppVaultRef",
            "AppVault",
            "set spec.destinationAppVaultRef to the name of this cluster's AppVault",
        ),
        (
            "sourceApplicationName",
            "Application",
            "set spec.sourceApplicationName to the name of the Application on the source cluster",
        ),
    ] {
        if let Some(name) = report::required_string(report, spec, "spec", key, fix)
            && !report::is_dns1123_subdomain(name)
        {
            report::check_object_name(report, &format!("spec.{key}"), what, name);
        }
    }

    let uid_fix = "set spec.sourceApplicationUID to the source Application's uid: on the source cluster run \
                   kubectl get application <sourceApplicationName> -n <namespace> -o jsonpath='{.metadata.uid}'";
    if let Some(uid) = report::required_string(report, spec, "spec", "sourceApplicationUID", uid_fix)
        && !report::is_kubernetes_uid(uid)
    {
        let lowered = uid.trim().to_ascii_lowercase();
        let fix = if report::is_kubernetes_uid(&lowered) {
            format!("use {} (Kubernetes UIDs are lower case)", quote(&lowered))
        } else {
            uid_fix.to_string()
        };
        report.push(
            "spec.sourceApplicationUID",
            format!(
                "must be a UUID such as 7498d32c-328e-4ddd-9029-122540866aeb, got {}",
                quote(uid)
            ),
            fix,
        );
    }

    // The fix hint is built only when needed: validation of a valid object stays cheap.
    let text = match child(spec, "recurrenceRule") {
        Some(Json::String(text)) if !text.trim().is_empty() => Some(text.as_ref()),
        _ => report::required_string(
            report,
            spec,
            "spec",
            "recurrenceRule",
            &recurrence::example_fix(now),
        ),
    };
    for problem in text
        .map(|text| recurrence::check_amr(text, now))
        .unwrap_or_default()
    {
        report.push("spec.recurrenceRule", problem.rule, problem.fix);
    }

    check_namespace_mapping(report, spec);

    report::optional_string(
        report,
        spec,
        "spec",
        "storageClassName",
        "remove spec.storageClassName to use the cluster default, or name a StorageClass",
    );

    check_promoted_snapshot(report, spec, desired_state);
}

fn check_desired_state<'a>(report: &mut Report, spec: &'a Json<'_>) -> Option<&'a str> {
    let path = "spec.desiredState";
    let fix = "set spec.desiredState: Established (replicate) or Promoted (fail over)";
    let Some(value) = child(spec, "desiredState") else {
        report.push(path, "is required", fix);
        return None;
    };
    let Some(state) = value.as_str() else {
        report.push(path, format!("must be a string, got {}", describe(value)), fix);
        return None;
    };
    if DESIRED_STATES.contains(&state) {
        return Some(state);
    }
    match did_you_mean(state, &DESIRED_STATES) {
        Some(s) => report.push(
            path,
            format!(
                "must be exactly Established or Promoted (case-sensitive), got {} (did you mean {}?)",
                quote(state),
                quote(s)
            ),
            format!("set spec.desiredState: {s}"),
        ),
        None => report.push(
            path,
            format!(
                "must be exactly Established or Promoted (case-sensitive), got {}",
                quote(state)
            ),
            fix,
        ),
    }
    None
}

fn check_namespace_mapping(report: &mut Report, spec: &Json<'_>) {
    let path = "spec.namespaceMapping";
    let fix = "list the application's namespaces, e.g. namespaceMapping: [{source: my-app-namespace, destination: \
               my-app-namespace}]";
    let entries = match child(spec, "namespaceMapping") {
        None => {
            report.push(path, "is required", fix);
            return;
        }
        Some(Json::Array(entries)) if entries.is_empty() => {
            report.push(path, "must not be empty", fix);
            return;
        }
        Some(Json::Array(entries)) => entries,
        Some(other) => {
            report.push(path, format!("must be a list, got {}", describe(other)), fix);
            return;
        }
    };
    let mut sources = BTreeSet::new();
    let mut destinations = BTreeSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let entry_path = format!("{path}[{i}]");
        if !entry.is_object() {
            report.push(
                &entry_path,
                format!(
                    "must be an object with source and destination, got {}",
                    describe(entry)
                ),
                "write {source: <namespace on the source cluster>, destination: <namespace here>}",
            );
            continue;
        }
        for (key, seen, fix) in [
            (
                "source",
                &mut sources,
                "set it to a namespace of the source application",
            ),
            (
                "destination",
                &mut destinations,
                "set it to the namespace on this cluster to restore into",
            ),
        ] {
            let Some(name) = report::required_string(report, entry, &entry_path, key, fix) else {
                continue;
            };
            // The field path is built only for a violation.
            let field = || format!("{entry_path}.{key}");
            let valid =
                report::is_dns1123_label(name) || report::check_namespace_name(report, &field(), name);
            if valid && !seen.insert(name) {
                report.push(
                    field(),
                    format!("{} appears more than once as a {key}", quote(name)),
                    format!("map each {key} namespace exactly once"),
                );
            }
        }
    }
}

fn check_promoted_snapshot(report: &mut Report, spec: &Json<'_>, desired_state: Option<&str>) {
    let path = "spec.promotedSnapshot";
    let snapshot = match child(spec, "promotedSnapshot") {
        // An empty string names no snapshot: treated like an absent field.
        None => return,
        Some(Json::String(s)) if s.trim().is_empty() => return,
        Some(Json::String(s)) => s.as_ref(),
        Some(other) => {
            report.push(
                path,
                format!("must be a string, got {}", describe(other)),
                "set it to the basename of a ShutdownSnapshot's status.appArchivePath",
            );
            return;
        }
    };
    if desired_state == Some("Established") {
        report.push(
            path,
            "is only allowed with desiredState Promoted (it selects the snapshot of a planned failover)",
            "remove spec.promotedSnapshot, or set spec.desiredState: Promoted for a planned failover",
        );
    }
    if let Some((_, basename)) = snapshot.rsplit_once('/') {
        report.push(
            path,
            format!(
                "must be the basename of the ShutdownSnapshot's status.appArchivePath, got a path {}",
                quote(snapshot)
            ),
            format!("use only the part after the last '/': {}", quote(basename)),
        );
    }
}

/// Rules on the change from `old` to `new`.
pub(crate) fn validate_update(report: &mut Report, new: &Json<'_>, old: &Json<'_>) {
    let (Some(new_spec), Some(old_spec)) = (child(new, "spec"), child(old, "spec")) else {
        return;
    };
    let name = child(new, "metadata")
        .and_then(|m| child(m, "name"))
        .and_then(Json::as_str)
        .unwrap_or("<name>");

    for key in IMMUTABLE {
        // Setting a field an older object never had is allowed: only a change of a stored value is refused.
        let Some(old_value) = child(old_spec, key) else {
            continue;
        };
        let new_value = child(new_spec, key);
        // Equal values are unchanged however they read; the set comparison is only for a reordered mapping.
        let changed = new_value != Some(old_value)
            && match (key, new_value) {
                ("namespaceMapping", Some(new_value)) => {
                    match (mapping_set(old_value), mapping_set(new_value)) {
                        (Some(old_set), Some(new_set)) => old_set != new_set,
                        _ => old_value != new_value,
                    }
                }
                (_, new_value) => new_value != Some(old_value),
            };
        if changed {
            report.push(
                format!("spec.{key}"),
                format!(
                    "is immutable: it identifies the relationship (was {}, now {})",
                    short(old_value),
                    new_value.map(short).unwrap_or_else(|| "absent".to_string())
                ),
                format!(
                    "keep the old value; to point the relationship elsewhere delete and recreate it, or to swap \
                     direction use `kubectl tprotect reverse-resync {name}`"
                ),
            );
        }
    }

    let state = |spec| child(spec, "desiredState").and_then(Json::as_str);
    if state(old_spec) == Some("Promoted") && state(new_spec) == Some("Established") {
        let consented = child(new, "metadata")
            .and_then(|m| child(m, "annotations"))
            .and_then(|a| child(a, DISCARD_DESTINATION_CHANGES_ANNOTATION))
            .and_then(Json::as_str)
            == Some("true");
        if !consented {
            report.push(
                "spec.desiredState",
                "changing Promoted to Established is a resync: it stops the destination application and discards \
                 every change written on the destination since the failover; refused without the annotation \
                 tprotect.io/discard-destination-changes: \"true\"",
                format!(
                    "run `kubectl tprotect resync {name}` (it asks for confirmation and sets the annotation), or \
                     add annotation {DISCARD_DESTINATION_CHANGES_ANNOTATION}: \"true\" in the same change; to keep \
                     the destination's changes use `kubectl tprotect reverse-resync {name}` instead"
                ),
            );
        }
    }
}

/// A namespace mapping as a set of pairs: reordering the list changes nothing.
fn mapping_set<'a>(value: &'a Json<'_>) -> Option<BTreeSet<(&'a str, &'a str)>> {
    value
        .as_array()?
        .iter()
        .map(|entry| {
            let get = |key| child(entry, key).and_then(Json::as_str);
            Some((get("source")?, get("destination")?))
        })
        .collect()
}

fn short(value: &Json<'_>) -> String {
    let text = match value {
        Json::String(s) => quote(s),
        other => other.to_string(),
    };
    if text.chars().count() > 120 {
        text.chars().take(120).collect::<String>() + "…"
    } else {
        text
    }
}
