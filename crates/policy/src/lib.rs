//! Admission rules for Trident protect replication resources, as pure functions.
//!
//! - [`validate`]: what is wrong with an object about to be stored (every violation names the field path, the
//!   rule and the fix).
//! - [`mutate`]: the JSON Patch that fills omitted replication defaults (idempotent).
//! - [`namespace`]: the documented merge of namespace labels and annotations on restore and failover, with
//!   Trident protect's skip rules, and the webhook's enforcement of those rules.
//! - [`recurrence`]: RFC 5545 recurrence rules as Trident protect takes them.
//!
//! Everything works on raw JSON objects, never on typed structs: a field of the wrong type is reported at its
//! path, and fields this crate does not know are never rejected. The rules read [`json::Json`], which borrows
//! its strings from the text it was read from (the admission webhook's request body); [`validate`] and
//! [`mutate`] take a `serde_json::Value` and read it through the same rules ([`validate_json`] and
//! [`mutate_json`] take the borrowed form). Nothing here does I/O or reads the clock; `now` is a parameter.

use std::{fmt, str::FromStr};

use serde::Serialize;
use serde_json::Value;

mod amr;
mod application;
mod appvault;
pub mod json;
pub mod namespace;
pub mod recurrence;
mod report;
mod schedule;
mod snapshot;

pub use json::Json;
pub use schedule::replication_defaults;

/// Whether a Schedule object is a replication schedule: labelled `tprotect.io/replication-schedule: "true"`,
/// or named (or generate-named) `appmirror-schedule-…` as NetApp's tooling names them.
pub fn is_replication_schedule(object: &Value) -> bool {
    schedule::is_replication_schedule(&Json::from(object))
}

/// Names this crate shares with the rest of the project (defined once, in `tprotect-api`).
pub mod names {
    /// Annotation on an AppMirrorRelationship allowing Promoted → Established (a resync that discards every
    /// change written on the destination since the failover).
    pub use tprotect_api::DISCARD_DESTINATION_CHANGES_ANNOTATION;
    /// Label (value `"true"`) marking a Schedule as a replication schedule.
    pub use tprotect_api::REPLICATION_SCHEDULE_LABEL;
    /// Prefix NetApp's own tooling gives replication schedules (`appmirror-schedule-<uuid>`).
    pub use tprotect_api::REPLICATION_SCHEDULE_PREFIX;
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PolicyError {
    #[error("unknown admission operation {0:?}: expected CREATE, UPDATE, DELETE or CONNECT")]
    UnknownOperation(String),
    #[error("{variable}={value:?} is not a boolean: set it to \"true\" or \"false\" (or leave it unset)")]
    InvalidBooleanVariable { variable: String, value: String },
    #[error("invalid Namespace object: {0}")]
    InvalidNamespace(String),
    #[error("invalid recurrence rule: {0}")]
    RecurrenceRule(String),
}

/// The operation of an admission request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Connect => "CONNECT",
        }
    }
}

impl FromStr for Operation {
    type Err = PolicyError;

    /// Reads the AdmissionReview spelling (`CREATE`, …); other case is accepted too.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "CREATE" => Ok(Self::Create),
            "UPDATE" => Ok(Self::Update),
            "DELETE" => Ok(Self::Delete),
            "CONNECT" => Ok(Self::Connect),
            _ => Err(PolicyError::UnknownOperation(s.to_string())),
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rule an object breaks: where, which rule, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Violation {
    /// Field path, e.g. `spec.granularity` or `spec.namespaceMapping[1].destination`.
    pub field: String,
    /// The rule, phrased to follow the field: `must be "Custom" for a replication schedule, got "custom"`.
    pub rule: String,
    /// What to change.
    pub fix: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}. Fix: {}", self.field, self.rule, self.fix)
    }
}

/// The kinds [`validate`] has rules for.
pub const VALIDATED_KINDS: [&str; 6] = [
    "Schedule",
    "AppMirrorRelationship",
    "AppVault",
    "Application",
    "Snapshot",
    "ShutdownSnapshot",
];

/// Everything wrong with `object` (the new object of a CREATE or UPDATE). Empty when it may be stored.
///
/// DELETE and CONNECT, unknown kinds, and objects being deleted (`metadata.deletionTimestamp` set, so that
/// finalizers can always be removed) have no violations. On UPDATE, a violation the old object already had is
/// not reported again (ratcheting, like the API server's own CRD validation): an object stored before these
/// rules existed can still have its metadata or status changed, and only the fields a user touches are held to
/// the rules. Transition rules (immutable fields, Promoted → Established) always apply.
pub fn validate(
    kind: &str,
    operation: Operation,
    object: &Value,
    old_object: Option<&Value>,
    now: jiff::Timestamp,
) -> Vec<Violation> {
    let old_object = old_object.map(Json::from);
    validate_json(kind, operation, &Json::from(object), old_object.as_ref(), now)
}

/// [`validate`] of objects read as [`Json`] (the admission webhook's form: nothing copied from the request).
pub fn validate_json(
    kind: &str,
    operation: Operation,
    object: &Json<'_>,
    old_object: Option<&Json<'_>>,
    now: jiff::Timestamp,
) -> Vec<Violation> {
    if !matches!(operation, Operation::Create | Operation::Update) {
        return Vec::new();
    }
    if report::child(object, "metadata")
        .and_then(|m| report::child(m, "deletionTimestamp"))
        .is_some()
    {
        return Vec::new();
    }
    let mut violations = object_rules(kind, object, now);
    if let (Operation::Update, Some(old)) = (operation, old_object) {
        // Only a violation can be one the old object already had (the common, valid update skips this).
        if !violations.is_empty() {
            let already = object_rules(kind, old, now);
            violations.retain(|v| !already.contains(v));
        }
        violations.extend(transition_rules(kind, object, old));
    }
    violations
}

/// Rules on one object by itself.
fn object_rules(kind: &str, object: &Json<'_>, now: jiff::Timestamp) -> Vec<Violation> {
    let mut report = report::Report::default();
    match kind {
        "Schedule" => schedule::validate(&mut report, object, now),
        "AppMirrorRelationship" => amr::validate(&mut report, object, now),
        "AppVault" => appvault::validate(&mut report, object),
        "Application" => application::validate(&mut report, object),
        "Snapshot" | "ShutdownSnapshot" => snapshot::validate(&mut report, object),
        _ => {}
    }
    report.violations
}

/// Rules on the change from `old` to `new`.
fn transition_rules(kind: &str, new: &Json<'_>, old: &Json<'_>) -> Vec<Violation> {
    let mut report = report::Report::default();
    if kind == "AppMirrorRelationship" {
        amr::validate_update(&mut report, new, old);
    }
    report.violations
}

/// One message naming the object and every violation (field, rule and fix), for an admission denial or a CLI
/// error. Violations are numbered and kept on one line each so that `kubectl` shows them readably.
pub fn denial_message(kind: &str, name: &str, violations: &[Violation]) -> String {
    let name = if name.is_empty() {
        "(unnamed)".to_string()
    } else {
        format!("{name:?}")
    };
    match violations {
        [] => format!("{kind} {name} is valid"),
        [only] => format!("{kind} {name} refused: {only}"),
        many => {
            let mut message = format!("{kind} {name} refused, {} problems:", many.len());
            for (i, v) in many.iter().enumerate() {
                message.push_str(&format!("\n({}) {v}", i + 1));
            }
            message
        }
    }
}

/// The JSON Patch that fills omitted defaults of `object`; empty when there is nothing to do.
///
/// Replication Schedules on CREATE and UPDATE get `granularity: Custom`, `backupRetention: "0"`,
/// `snapshotRetention: "2"` and `enabled: true` where those fields are absent. A value the user wrote is never
/// overwritten, even a wrong one: [`validate`] refuses it with an explanation instead. Applied to its own
/// output, `mutate` returns an empty patch.
pub fn mutate(kind: &str, operation: Operation, object: &Value) -> json_patch::Patch {
    mutate_json(kind, operation, &Json::from(object))
}

/// [`mutate`] of an object read as [`Json`].
pub fn mutate_json(kind: &str, operation: Operation, object: &Json<'_>) -> json_patch::Patch {
    match (kind, operation) {
        ("Schedule", Operation::Create | Operation::Update) => schedule::mutate(object),
        _ => json_patch::Patch(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_round_trips() {
        for op in [
            Operation::Create,
            Operation::Update,
            Operation::Delete,
            Operation::Connect,
        ] {
            assert_eq!(op.as_str().parse::<Operation>().unwrap(), op);
        }
        assert_eq!("create".parse::<Operation>().unwrap(), Operation::Create);
        assert!(
            matches!("PATCH".parse::<Operation>(), Err(PolicyError::UnknownOperation(s)) if s == "PATCH")
        );
    }

    #[test]
    fn violation_display() {
        let v = Violation {
            field: "spec.granularity".into(),
            rule: "must be \"Custom\" for a replication schedule, got \"custom\" (did you mean \"Custom\"?)"
                .into(),
            fix: "set spec.granularity: Custom".into(),
        };
        assert_eq!(
            v.to_string(),
            "spec.granularity: must be \"Custom\" for a replication schedule, got \"custom\" (did you mean \
             \"Custom\"?). Fix: set spec.granularity: Custom"
        );
    }

    #[test]
    fn denial_message_names_object_and_every_violation() {
        let a = Violation {
            field: "spec.a".into(),
            rule: "is required".into(),
            fix: "set spec.a".into(),
        };
        let b = Violation {
            field: "spec.b".into(),
            rule: "must be true".into(),
            fix: "set spec.b: true".into(),
        };
        let one = denial_message("Schedule", "s1", std::slice::from_ref(&a));
        assert_eq!(
            one,
            "Schedule \"s1\" refused: spec.a: is required. Fix: set spec.a"
        );
        let two = denial_message("Schedule", "s1", &[a, b]);
        assert!(two.starts_with("Schedule \"s1\" refused, 2 problems:"), "{two}");
        assert!(two.contains("(1) spec.a: is required. Fix: set spec.a"), "{two}");
        assert!(
            two.contains("(2) spec.b: must be true. Fix: set spec.b: true"),
            "{two}"
        );
        assert!(denial_message("AppVault", "", &[]).contains("(unnamed)"));
    }
}
