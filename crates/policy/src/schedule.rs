//! Schedule rules: every Schedule, and the stricter replication schedule of seed 003 step 3.

use json_patch::{AddOperation, Patch, PatchOperation, jsonptr::PointerBuf};
use serde_json::{Map, Value, json};

use crate::json::Json;

use crate::{
    names::{REPLICATION_SCHEDULE_LABEL, REPLICATION_SCHEDULE_PREFIX},
    recurrence,
    report::{self, Report, child, describe, did_you_mean, quote},
};

const GRANULARITIES: [&str; 5] = ["Hourly", "Daily", "Weekly", "Monthly", "Custom"];

/// The values a replication schedule must have (seed 003, step 3), in the order `mutate` adds them. The
/// plugin writes its replication schedules with exactly these.
pub fn replication_defaults() -> [(&'static str, Value); 4] {
    [
        ("granularity", json!("Custom")),
        ("backupRetention", json!("0")),
        ("snapshotRetention", json!("2")),
        ("enabled", json!(true)),
    ]
}

/// Whether a Schedule object is a replication schedule: labelled `tprotect.io/replication-schedule: "true"`, or
/// named (or generate-named) `appmirror-schedule-…` as NetApp's tooling names them.
pub(crate) fn is_replication_schedule(object: &Json<'_>) -> bool {
    let Some(metadata) = child(object, "metadata") else {
        return false;
    };
    let labelled = child(metadata, "labels")
        .and_then(|labels| child(labels, REPLICATION_SCHEDULE_LABEL))
        .and_then(Json::as_str)
        == Some("true");
    let named = ["name", "generateName"].iter().any(|key| {
        child(metadata, key)
            .and_then(Json::as_str)
            .is_some_and(|n| n.starts_with(REPLICATION_SCHEDULE_PREFIX))
    });
    labelled || named
}

pub(crate) fn validate(report: &mut Report, object: &Json<'_>, now: jiff::Timestamp) {
    let replication = is_replication_schedule(object);
    let example_spec = if replication {
        "add spec with applicationRef, appVaultRef, granularity: Custom, backupRetention: \"0\", \
         snapshotRetention: \"2\", enabled: true and a recurrenceRule"
    } else {
        "add spec with applicationRef, granularity, backupRetention and snapshotRetention"
    };
    let Some(spec) = report::spec(report, object, example_spec) else {
        return;
    };

    let application_fix = "set spec.applicationRef to the name of the Application";
    if let Some(name) = report::required_string(report, spec, "spec", "applicationRef", application_fix) {
        report::check_object_name(report, "spec.applicationRef", "Application", name);
    }
    let vault_fix = "set spec.appVaultRef to the name of the source application's AppVault";
    let vault = if replication {
        report::required_string(report, spec, "spec", "appVaultRef", vault_fix)
    } else {
        report::optional_string(report, spec, "spec", "appVaultRef", vault_fix)
    };
    if let Some(name) = vault {
        report::check_object_name(report, "spec.appVaultRef", "AppVault", name);
    }

    let granularity = check_granularity(report, spec, replication);
    let expected = |v: &'static str| replication.then_some(v);
    check_retention(
        report,
        spec,
        "backupRetention",
        expected("0"),
        "replication keeps no backups",
    );
    check_retention(
        report,
        spec,
        "snapshotRetention",
        expected("2"),
        "replication keeps the two most recent snapshots",
    );
    check_enabled(report, spec, replication);
    check_recurrence_rule(report, spec, granularity, replication, now);
    for (key, low, high, example) in [
        ("minute", 0, 59, "0"),
        ("hour", 0, 23, "2"),
        ("dayOfWeek", 0, 7, "1"),
        ("dayOfMonth", -1, 31, "1"),
    ] {
        check_numeric_string(report, spec, key, low, high, example);
    }
}

/// Returns the granularity when it is one of the enum values.
fn check_granularity<'a>(report: &mut Report, spec: &'a Json<'_>, replication: bool) -> Option<&'a str> {
    let path = "spec.granularity";
    let enum_list = GRANULARITIES.join(", ");
    let Some(value) = child(spec, "granularity") else {
        let fix = if replication {
            "set spec.granularity: Custom".to_string()
        } else {
            format!("set spec.granularity to one of {enum_list}")
        };
        report.push(path, "is required", fix);
        return None;
    };
    let Some(granularity) = value.as_str() else {
        report.push(
            path,
            format!("must be a string, got {}", describe(value)),
            if replication {
                "set spec.granularity: Custom".to_string()
            } else {
                format!("use one of {enum_list}")
            },
        );
        return None;
    };
    let suggestion = did_you_mean(granularity, &GRANULARITIES);
    let hint = suggestion
        .map(|s| format!(" (did you mean {}?)", quote(s)))
        .unwrap_or_default();
    if replication {
        if granularity != "Custom" {
            report.push(
                path,
                format!(
                    "must be \"Custom\" for a replication schedule, got {}{hint}",
                    quote(granularity)
                ),
                "set spec.granularity: Custom",
            );
        }
    } else if !GRANULARITIES.contains(&granularity) {
        report.push(
            path,
            format!(
                "must be one of {enum_list} (case-sensitive), got {}{hint}",
                quote(granularity)
            ),
            match suggestion {
                Some(s) => format!("set spec.granularity: {s}"),
                None => format!("use one of {enum_list}"),
            },
        );
    }
    GRANULARITIES.contains(&granularity).then_some(granularity)
}

fn check_retention(
    report: &mut Report,
    spec: &Json<'_>,
    key: &str,
    expected: Option<&'static str>,
    why: &str,
) {
    let path = format!("spec.{key}");
    let example = expected.unwrap_or("3");
    let set = format!("set spec.{key}: \"{example}\"");
    let Some(value) = child(spec, key) else {
        report.push(path, "is required", set);
        return;
    };
    let text = match value {
        Json::String(s) => s.as_ref(),
        Json::Number(n) => {
            let quoted = match expected {
                Some(e) => format!("\"{e}\""),
                None => format!("\"{n}\""),
            };
            report.push(
                path,
                format!(
                    "must be a string of digits, got {} (the CRD types it as a string)",
                    describe(value)
                ),
                format!("quote it: {key}: {quoted}"),
            );
            return;
        }
        other => {
            report.push(
                path,
                format!("must be a string of digits, got {}", describe(other)),
                set,
            );
            return;
        }
    };
    let digits_ok = text.len() <= 63
        && !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !digits_ok {
        let cleaned = text.trim().trim_start_matches('0');
        let cleaned = if cleaned.is_empty() && !text.trim().is_empty() {
            "0"
        } else {
            cleaned
        };
        let fix = match expected {
            Some(_) => set,
            None if !cleaned.is_empty()
                && cleaned.len() <= 63
                && cleaned.bytes().all(|b| b.is_ascii_digit()) =>
            {
                format!("set spec.{key}: \"{cleaned}\"")
            }
            None => format!("write a whole number in quotes, e.g. {key}: \"3\""),
        };
        report.push(
            path,
            format!(
                "must be a whole number without leading zeros, written as a string (pattern ^(0|([1-9][0-9]*))$, \
                 at most 63 digits), got {}",
                quote(&truncate(text))
            ),
            fix,
        );
        return;
    }
    if let Some(expected) = expected
        && text != expected
    {
        report.push(
            path,
            format!(
                "must be \"{expected}\" for a replication schedule ({why}), got {}",
                quote(text)
            ),
            set,
        );
    }
}

fn truncate(s: &str) -> String {
    if s.chars().count() <= 70 {
        s.to_string()
    } else {
        s.chars().take(70).collect::<String>() + "…"
    }
}

fn check_enabled(report: &mut Report, spec: &Json<'_>, replication: bool) {
    let path = "spec.enabled";
    match child(spec, "enabled") {
        // The CRD defaults `enabled` to true, and so does `mutate`; a replication schedule still requires it
        // when neither ran, because a Go controller may read an absent boolean as false (unverified).
        None if replication => report.push(
            path,
            "is required for a replication schedule (and must be true)",
            "set spec.enabled: true",
        ),
        None | Some(Json::Bool(true)) => {}
        Some(Json::Bool(false)) if replication => report.push(
            path,
            "must be true for a replication schedule: a disabled replication schedule stops replication",
            "set spec.enabled: true",
        ),
        Some(Json::Bool(false)) => {}
        Some(Json::String(s)) if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") => report
            .push(
                path,
                format!("must be a boolean, got the string {}", quote(s)),
                format!("write enabled: {} without quotes", s.to_ascii_lowercase()),
            ),
        Some(other) => report.push(
            path,
            format!("must be a boolean, got {}", describe(other)),
            "write enabled: true or enabled: false",
        ),
    }
}

fn check_recurrence_rule(
    report: &mut Report,
    spec: &Json<'_>,
    granularity: Option<&str>,
    replication: bool,
    now: jiff::Timestamp,
) {
    let path = "spec.recurrenceRule";
    let example_fix = || recurrence::example_fix(now);
    let text = match child(spec, "recurrenceRule") {
        Some(Json::String(s)) if !s.trim().is_empty() => Some(s.as_ref()),
        Some(Json::String(_)) | None => None,
        Some(other) => {
            report.push(
                path,
                format!("must be a string, got {}", describe(other)),
                example_fix(),
            );
            return;
        }
    };
    match text {
        None if replication => report.push(path, "is required for a replication schedule", example_fix()),
        None if granularity == Some("Custom") => {
            report.push(path, "is required when granularity is Custom", example_fix())
        }
        None => {}
        // A replication schedule's granularity must become Custom (reported above), so its rule is checked
        // as a Custom rule whatever the granularity says now.
        Some(_) if !replication && granularity.is_some_and(|g| g != "Custom") => report.push(
            path,
            format!(
                "is only allowed with granularity Custom, granularity is {}",
                quote(granularity.unwrap_or_default())
            ),
            "remove spec.recurrenceRule, or set spec.granularity: Custom",
        ),
        Some(text) => {
            let problems = if replication {
                recurrence::check_replication_schedule(text, now)
            } else {
                recurrence::check_schedule(text, now)
            };
            for problem in problems {
                report.push(path, problem.rule, problem.fix);
            }
        }
    }
}

/// `minute`, `hour`, `dayOfWeek`, `dayOfMonth`: optional strings holding a number in range.
fn check_numeric_string(report: &mut Report, spec: &Json<'_>, key: &str, low: i64, high: i64, example: &str) {
    let path = format!("spec.{key}");
    let range = if key == "dayOfMonth" {
        "1 to 31, or -1 for the last day of the month".to_string()
    } else {
        format!("{low} to {high}")
    };
    match child(spec, key) {
        None => {}
        Some(Json::String(s)) if s.is_empty() => {}
        Some(Json::String(s)) => {
            let ok = s.len() <= 3
                && s.parse::<i64>()
                    .is_ok_and(|n| (low..=high).contains(&n) && !(key == "dayOfMonth" && n == 0));
            if !ok {
                report.push(
                    path,
                    format!("must be a number from {range}, got {}", quote(&truncate(s))),
                    format!("e.g. {key}: \"{example}\""),
                );
            }
        }
        Some(Json::Number(n)) => report.push(
            path,
            format!("must be a string, got the number {n} (the CRD types it as a string)"),
            format!("quote it: {key}: \"{n}\""),
        ),
        Some(other) => report.push(
            path,
            format!(
                "must be a string holding a number from {range}, got {}",
                describe(other)
            ),
            format!("e.g. {key}: \"{example}\""),
        ),
    }
}

pub(crate) fn mutate(object: &Json<'_>) -> Patch {
    if !is_replication_schedule(object) {
        return Patch(Vec::new());
    }
    let add = |path: PointerBuf, value: Value| PatchOperation::Add(AddOperation { path, value });
    match object.get("spec") {
        None | Some(Json::Null) => {
            let spec: Map<String, Value> = replication_defaults()
                .into_iter()
                .map(|(key, value)| (key.to_string(), value))
                .collect();
            Patch(vec![add(PointerBuf::from_tokens(["spec"]), Value::Object(spec))])
        }
        // Anything but an object is left for validation to refuse.
        Some(spec @ Json::Object(_)) => Patch(
            replication_defaults()
                .into_iter()
                .filter(|(key, _)| spec.get(key).is_none_or(Json::is_null))
                .map(|(key, value)| add(PointerBuf::from_tokens(["spec", key]), value))
                .collect(),
        ),
        Some(_) => Patch(Vec::new()),
    }
}
