//! Reading raw admission objects ([`Json`], as an AdmissionReview carries them) field by field and collecting violations.
//!
//! Rules read the object as JSON rather than through typed structs so that a field of the wrong type is
//! reported at its exact path instead of failing deserialization as a whole, and so that fields this crate does
//! not know are never rejected.

use crate::{Violation, json::Json};

/// Violations collected while checking one object.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) violations: Vec<Violation>,
}

impl Report {
    pub(crate) fn push(&mut self, field: impl Into<String>, rule: impl Into<String>, fix: impl Into<String>) {
        self.violations.push(Violation {
            field: field.into(),
            rule: rule.into(),
            fix: fix.into(),
        });
    }

    /// Whether `value` is an object; if not, a violation at `path` saying what it is instead. The caller skips
    /// what it would have read inside.
    pub(crate) fn require_object(&mut self, path: &str, value: &Json<'_>, fix: impl Into<String>) -> bool {
        if !value.is_object() {
            self.push(path, format!("must be an object, got {}", describe(value)), fix);
        }
        value.is_object()
    }
}

/// A child of an object. JSON `null` counts as absent: `kubectl apply` of `field:` with no value sends null,
/// and the API server drops nulls of non-nullable CRD fields.
pub(crate) fn child<'a, 'j>(value: &'a Json<'j>, key: &str) -> Option<&'a Json<'j>> {
    value.get(key).filter(|v| !v.is_null())
}

/// The path of a map key below `parent`: `parent.key`, or `parent["key"]` when the key itself contains
/// characters that would make the dotted form ambiguous.
pub(crate) fn key_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{}]", quote(key)),
    }
}

/// A value described for a human: `the number 2`, `the string "x"`, `an object`.
pub(crate) fn describe(value: &Json<'_>) -> String {
    match value {
        Json::Null => "null".to_string(),
        Json::Bool(b) => format!("the boolean {b}"),
        Json::Number(n) => format!("the number {n}"),
        Json::String(s) => format!("the string {}", quote(s)),
        Json::Array(_) => "a list".to_string(),
        Json::Object(_) => "an object".to_string(),
    }
}

/// A string in double quotes, escaped like JSON so that control characters stay visible and the output is
/// bounded by the input.
pub(crate) fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// `spec` of an object: required and an object. Returns `None` (after reporting) when unusable.
pub(crate) fn spec<'a, 'j>(
    report: &mut Report,
    object: &'a Json<'j>,
    example_fix: &str,
) -> Option<&'a Json<'j>> {
    match child(object, "spec") {
        None => {
            report.push("spec", "is required", example_fix);
            None
        }
        Some(spec) if spec.is_object() => Some(spec),
        Some(other) => {
            report.push(
                "spec",
                format!("must be an object, got {}", describe(other)),
                "write spec as a mapping of fields",
            );
            None
        }
    }
}

/// A required, non-empty string field. Returns the value when it is usable.
pub(crate) fn required_string<'a>(
    report: &mut Report,
    parent: &'a Json<'_>,
    parent_path: &str,
    key: &str,
    fix_when_missing: &str,
) -> Option<&'a str> {
    match child(parent, key) {
        None => {
            report.push(key_path(parent_path, key), "is required", fix_when_missing);
            None
        }
        Some(value) => string_value(report, parent_path, key, value, fix_when_missing),
    }
}

/// An optional string field: absent is fine, present must be a non-empty string.
pub(crate) fn optional_string<'a>(
    report: &mut Report,
    parent: &'a Json<'_>,
    parent_path: &str,
    key: &str,
    fix_when_empty: &str,
) -> Option<&'a str> {
    string_value(report, parent_path, key, child(parent, key)?, fix_when_empty)
}

/// The path is built only for a violation: a valid object is checked without allocating one per field.
fn string_value<'a>(
    report: &mut Report,
    parent_path: &str,
    key: &str,
    value: &'a Json<'_>,
    fix_when_empty: &str,
) -> Option<&'a str> {
    match value {
        Json::String(s) if s.trim().is_empty() => {
            report.push(key_path(parent_path, key), "must not be empty", fix_when_empty);
            None
        }
        Json::String(s) => Some(s),
        Json::Number(_) | Json::Bool(_) => {
            report.push(
                key_path(parent_path, key),
                format!("must be a string, got {}", describe(value)),
                format!("quote the value: {key}: \"{value}\""),
            );
            None
        }
        _ => {
            report.push(
                key_path(parent_path, key),
                format!("must be a string, got {}", describe(value)),
                fix_when_empty,
            );
            None
        }
    }
}

/// The allowed value `value` most likely meant: equal ignoring case, or equal once case, `-`, `_` and spaces
/// are ignored (`generic-s3` → `GenericS3`).
pub(crate) fn did_you_mean<'a>(value: &str, allowed: &[&'a str]) -> Option<&'a str> {
    fn squash(s: &str) -> String {
        s.chars()
            .filter(|c| !matches!(c, '-' | '_' | ' '))
            .flat_map(char::to_lowercase)
            .collect()
    }
    let trimmed = value.trim();
    allowed
        .iter()
        .find(|a| a.eq_ignore_ascii_case(trimmed))
        .or_else(|| allowed.iter().find(|a| squash(a) == squash(trimmed)))
        .copied()
        .filter(|a| *a != value)
}

/// A DNS-1123 label (namespace names): at most 63 characters of `[a-z0-9-]`, starting and ending alphanumeric.
pub(crate) fn is_dns1123_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// A DNS-1123 subdomain (names of most namespaced objects): at most 253 characters, dot-separated segments of
/// `[a-z0-9-]` each starting and ending alphanumeric.
pub(crate) fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|segment| {
            let bytes = segment.as_bytes();
            !bytes.is_empty()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
                && bytes[0] != b'-'
                && bytes[bytes.len() - 1] != b'-'
        })
}

/// Reports a namespace-name field that is not a DNS-1123 label, suggesting a corrected name when lowercasing
/// and trimming produce one.
pub(crate) fn check_namespace_name(report: &mut Report, path: &str, name: &str) -> bool {
    if is_dns1123_label(name) {
        return true;
    }
    let lowered = name.trim().to_ascii_lowercase();
    let suggestion = is_dns1123_label(&lowered).then(|| format!(" (did you mean {}?)", quote(&lowered)));
    let rule = if name.len() > 63 {
        format!(
            "must be a namespace name of at most 63 characters, got {} characters",
            name.len()
        )
    } else {
        format!(
            "must be a namespace name (DNS-1123 label: lowercase letters, digits and '-', starting and ending \
             with a letter or digit), got {}{}",
            quote(name),
            suggestion.as_deref().unwrap_or_default()
        )
    };
    let fix = if suggestion.is_some() {
        format!("use {}", quote(&lowered))
    } else {
        "use the exact name of an existing namespace, e.g. my-app-namespace".to_string()
    };
    report.push(path, rule, fix);
    false
}

/// Reports an object-name reference that is not a DNS-1123 subdomain.
pub(crate) fn check_object_name(report: &mut Report, path: &str, what: &str, name: &str) {
    if is_dns1123_subdomain(name) {
        return;
    }
    let lowered = name.trim().to_ascii_lowercase();
    let fix = if is_dns1123_subdomain(&lowered) {
        format!(
            "use the exact name of the {what} (did you mean {}?)",
            quote(&lowered)
        )
    } else {
        format!("use the exact name of the {what}, as `kubectl get` lists it")
    };
    report.push(
        path,
        format!(
            "must be the name of {} {what} (lowercase letters, digits, '-' and '.'), got {}",
            if what.starts_with(['A', 'E', 'I', 'O', 'U']) {
                "an"
            } else {
                "a"
            },
            quote(name)
        ),
        fix,
    );
}

/// A Kubernetes UID as the API server writes it: a lowercase, hyphenated UUID.
pub(crate) fn is_kubernetes_uid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_path_brackets_keys_with_dots_or_slashes() {
        assert_eq!(key_path("spec", "granularity"), "spec.granularity");
        assert_eq!(key_path("", "spec"), "spec");
        assert_eq!(
            key_path("metadata.annotations", "tprotect.io/x"),
            "metadata.annotations[\"tprotect.io/x\"]"
        );
    }

    #[test]
    fn did_you_mean_matches_case_and_separators_only() {
        let allowed = ["AWS", "GenericS3", "Custom"];
        assert_eq!(did_you_mean("aws", &allowed), Some("AWS"));
        assert_eq!(did_you_mean("generic-s3", &allowed), Some("GenericS3"));
        assert_eq!(did_you_mean("custom", &allowed), Some("Custom"));
        assert_eq!(
            did_you_mean("Custom", &allowed),
            None,
            "an exact match is not a suggestion"
        );
        assert_eq!(did_you_mean("azure", &allowed), None);
    }

    #[test]
    fn dns1123_label() {
        for ok in ["a", "my-app-namespace", "ns-1", "0abc", &"a".repeat(63)] {
            assert!(is_dns1123_label(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "My-App", "a.b", "a_b", &"a".repeat(64), "ä"] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
    }

    #[test]
    fn dns1123_subdomain() {
        assert!(is_dns1123_subdomain("generic-s3.bucket-1"));
        for bad in ["a..b", "Bucket", ""] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
    }

    #[test]
    fn kubernetes_uid() {
        assert!(is_kubernetes_uid("7498d32c-328e-4ddd-9029-122540866aeb"));
        for bad in [
            "7498D32C-328E-4DDD-9029-122540866AEB",
            "7498d32c328e4ddd9029122540866aeb",
            "7498d32c-328e-4ddd-9029-122540866aeg",
        ] {
            assert!(!is_kubernetes_uid(bad), "{bad}");
        }
    }

    /// [`required_string`] of `key` in `spec` (at path `spec`): the value, and the violations reported.
    fn required_string_in(spec: serde_json::Value, key: &str) -> (Option<String>, Vec<Violation>) {
        let mut report = Report::default();
        let value =
            required_string(&mut report, &Json::from(&spec), "spec", key, "set it").map(str::to_string);
        (value, report.violations)
    }

    #[test]
    fn strings_of_the_wrong_type_say_to_quote() {
        let (value, violations) = required_string_in(json!({"snapshotRetention": 2}), "snapshotRetention");
        assert_eq!(value, None);
        assert_eq!(violations[0].field, "spec.snapshotRetention");
        assert!(violations[0].rule.contains("the number 2"));
        assert!(violations[0].fix.contains("snapshotRetention: \"2\""));
    }

    #[test]
    fn null_is_absent() {
        let (value, violations) = required_string_in(json!({"applicationRef": null}), "applicationRef");
        assert_eq!(value, None);
        assert_eq!(violations[0].rule, "is required");
    }
}
