//! Application rules.

use crate::json::Json;

use crate::report::{self, Report, child, describe};

pub(crate) fn validate(report: &mut Report, object: &Json<'_>) {
    let Some(spec) = report::spec(
        report,
        object,
        "add spec.includedNamespaces, e.g. includedNamespaces: [{namespace: my-app-namespace}]",
    ) else {
        return;
    };
    let namespaces = child(spec, "includedNamespaces");
    let machines = child(spec, "includedVirtualMachines");
    match (namespaces, machines) {
        (None, None) => report.push(
            "spec.includedNamespaces",
            "is required: exactly one of includedNamespaces or includedVirtualMachines must be set",
            "add includedNamespaces: [{namespace: my-app-namespace}]",
        ),
        (Some(_), Some(_)) => report.push(
            "spec.includedVirtualMachines",
            "must not be set together with includedNamespaces: exactly one of them is allowed",
            "keep includedNamespaces or includedVirtualMachines, not both",
        ),
        _ => {}
    }
    if let Some(list) = namespaces {
        check_list(
            report,
            list,
            "spec.includedNamespaces",
            "{namespace: my-app-namespace}",
            |report, entry, path| {
                if let Some(labels) = child(entry, "labelSelector")
                    && !labels.is_object()
                {
                    report.push(
                        format!("{path}.labelSelector"),
                        format!("must be a label selector object, got {}", describe(labels)),
                        "write labelSelector: {} to select everything, or {matchLabels: {app: my-app}}",
                    );
                }
            },
        );
    }
    if let Some(list) = machines {
        check_list(
            report,
            list,
            "spec.includedVirtualMachines",
            "{namespace: vm-namespace, names: [my-vm]}",
            |report, entry, path| {
                let names_path = format!("{path}.names");
                let fix = "list the VirtualMachine names, e.g. names: [my-vm]";
                match child(entry, "names") {
                    None => report.push(names_path, "is required", fix),
                    Some(Json::Array(names)) if names.is_empty() => {
                        report.push(names_path, "must list at least one VirtualMachine", fix)
                    }
                    Some(Json::Array(names)) => {
                        for (i, name) in names.iter().enumerate() {
                            match name {
                                Json::String(n) if !n.trim().is_empty() => report::check_object_name(
                                    report,
                                    &format!("{names_path}[{i}]"),
                                    "VirtualMachine",
                                    n,
                                ),
                                other => report.push(
                                    format!("{names_path}[{i}]"),
                                    format!("must be a VirtualMachine name, got {}", describe(other)),
                                    fix,
                                ),
                            }
                        }
                    }
                    Some(other) => report.push(
                        names_path,
                        format!("must be a list, got {}", describe(other)),
                        fix,
                    ),
                }
            },
        );
    }
}

/// A non-empty list of objects each with a valid `namespace`, plus the entry's own checks.
fn check_list(
    report: &mut Report,
    list: &Json<'_>,
    path: &str,
    example: &str,
    entry_checks: impl Fn(&mut Report, &Json<'_>, &str),
) {
    let entries = match list {
        Json::Array(entries) if entries.is_empty() => {
            report.push(
                path,
                "must not be empty",
                format!("list at least one entry, e.g. [{example}]"),
            );
            return;
        }
        Json::Array(entries) => entries,
        other => {
            report.push(
                path,
                format!("must be a list, got {}", describe(other)),
                format!("write [{example}]"),
            );
            return;
        }
    };
    for (i, entry) in entries.iter().enumerate() {
        let entry_path = format!("{path}[{i}]");
        if !report.require_object(&entry_path, entry, format!("write {example}")) {
            continue;
        }
        if let Some(name) = report::required_string(
            report,
            entry,
            &entry_path,
            "namespace",
            "set namespace to the namespace's name",
        ) {
            report::check_namespace_name(report, &format!("{entry_path}.namespace"), name);
        }
        entry_checks(report, entry, &entry_path);
    }
}
