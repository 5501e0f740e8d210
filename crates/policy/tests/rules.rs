//! Table-driven tests of every admission rule: each case starts from a valid object, changes it, and states
//! exactly which fields must be reported and a fragment of each message. A case fails if an expected field is
//! missing, if its message lacks the fragment, or if any other field is reported.

#[path = "../../api/tests/seed-003/examples.rs"]
mod seed;

use jiff::Timestamp;
use serde_json::{Value, json};
use tprotect_policy::{Operation, Violation, denial_message, mutate, validate};

const NOW: &str = "2025-01-07T12:25:48Z";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

const RULE: &str = "DTSTART:20220101T000200Z\nRRULE:FREQ=MINUTELY;INTERVAL=5";

/// Seed 003's replication Schedule.
fn replication_schedule() -> Value {
    seed::replication_schedule()
}

fn labelled_replication_schedule() -> Value {
    let mut s = replication_schedule();
    s["metadata"] = json!({"name": "rep", "labels": {"tprotect.io/replication-schedule": "true"}});
    s
}

fn plain_schedule() -> Value {
    json!({
        "apiVersion": "protect.trident.netapp.io/v1",
        "kind": "Schedule",
        "metadata": {"name": "hourly-snapshots", "namespace": "my-app-namespace"},
        "spec": {
            "appVaultRef": "vault",
            "applicationRef": "my-app-name",
            "backupRetention": "3",
            "snapshotRetention": "3",
            "granularity": "Hourly",
            "minute": "15"
        }
    })
}

/// Seed 003's AppMirrorRelationship, named `amr1`.
fn amr() -> Value {
    let mut amr = seed::amr();
    amr["metadata"]["name"] = "amr1".into();
    amr
}

fn appvault(provider: &str) -> Value {
    let config = match provider {
        "Azure" => {
            json!({"azure": {"accountName": "acct", "bucketName": "b", "endpoint": "core.windows.net"}})
        }
        "GCP" => json!({"gcp": {"bucketName": "b", "projectID": "p"}}),
        _ => {
            json!({"s3": {"bucketName": "b", "endpoint": "s3.example.com", "secure": "true", "useIAM": false}})
        }
    };
    json!({
        "apiVersion": "protect.trident.netapp.io/v1",
        "kind": "AppVault",
        "metadata": {"name": "vault", "namespace": "trident-protect"},
        "spec": {
            "providerType": provider,
            "providerConfig": config,
            "providerCredentials": {
                "accessKeyID": {"valueFromSecret": {"key": "accessKeyID", "name": "s3-secret"}},
                "secretAccessKey": {"valueFromSecret": {"key": "secretAccessKey", "name": "s3-secret"}}
            }
        }
    })
}

fn application() -> Value {
    json!({
        "apiVersion": "protect.trident.netapp.io/v1",
        "kind": "Application",
        "metadata": {"name": "my-app-name", "namespace": "my-app-namespace"},
        "spec": {"includedNamespaces": [{"namespace": "my-app-namespace", "labelSelector": {}}]}
    })
}

fn vm_application() -> Value {
    json!({
        "kind": "Application",
        "metadata": {"name": "vms"},
        "spec": {"includedVirtualMachines": [{"namespace": "vm-ns", "names": ["vm-1", "vm-2"]}]}
    })
}

fn snapshot(kind: &str) -> Value {
    json!({
        "apiVersion": "protect.trident.netapp.io/v1",
        "kind": kind,
        "metadata": {"name": "replication-shutdown-snapshot-afc4c564", "namespace": "my-app-namespace"},
        "spec": {
            "appVaultRef": "generic-s3-trident-protect-src-bucket-04b6b4ec-46a3-420a-b351-45795e1b5e34",
            "applicationRef": "my-app-name"
        }
    })
}

/// Sets (or with `Value::Null`-free semantics, removes when `value` is None) the value at a JSON pointer.
fn set(mut object: Value, pointer: &str, value: Option<Value>) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = if parent.is_empty() {
        &mut object
    } else {
        object.pointer_mut(parent).expect(pointer)
    };
    match (parent, value) {
        (Value::Object(map), Some(v)) => {
            map.insert(key.replace("~1", "/").replace("~0", "~"), v);
        }
        (Value::Object(map), None) => {
            map.remove(&key.replace("~1", "/").replace("~0", "~"));
        }
        (Value::Array(items), Some(v)) => items[key.parse::<usize>().unwrap()] = v,
        (Value::Array(items), None) => {
            items.remove(key.parse::<usize>().unwrap());
        }
        _ => panic!("{pointer} has no object or list parent"),
    }
    object
}

/// Asserts that exactly the `expected` fields are reported, each with its fragment in the rule or fix.
#[track_caller]
fn assert_violations(case: &str, violations: &[Violation], expected: &[(&str, &str)]) {
    for (field, fragment) in expected {
        assert!(
            violations
                .iter()
                .any(|v| v.field == *field && v.to_string().contains(fragment)),
            "{case}: expected {field} with {fragment:?}, got:\n{}",
            render(violations)
        );
    }
    for v in violations {
        assert!(
            expected.iter().any(|(field, _)| v.field == *field),
            "{case}: unexpected violation {v}\nall:\n{}",
            render(violations)
        );
        assert!(!v.rule.is_empty() && !v.fix.is_empty(), "{case}: {v:?}");
    }
}

fn render(violations: &[Violation]) -> String {
    violations.iter().map(|v| format!("  {v}\n")).collect()
}

type Case = (&'static str, Value, &'static [(&'static str, &'static str)]);
type UpdateCase = (
    &'static str,
    Value,
    Value,
    &'static [(&'static str, &'static str)],
);

fn run_create_cases(kind: &str, cases: Vec<Case>) {
    for (name, object, expected) in cases {
        let violations = validate(kind, Operation::Create, &object, None, now());
        assert_violations(name, &violations, expected);
    }
}

#[test]
fn schedule_rules() {
    let rep = replication_schedule;
    let plain = plain_schedule;
    let rule = |text: &str| Some(json!(text));
    let cases: Vec<Case> = vec![
        ("replication schedule by name", rep(), &[]),
        (
            "replication schedule by label",
            labelled_replication_schedule(),
            &[],
        ),
        (
            "replication schedule by generateName",
            set(
                set(rep(), "/metadata/name", None),
                "/metadata/generateName",
                Some(json!("appmirror-schedule-")),
            ),
            &[],
        ),
        ("plain hourly schedule", plain(), &[]),
        (
            "plain custom schedule",
            set(
                set(
                    set(plain(), "/spec/granularity", Some(json!("Custom"))),
                    "/spec/minute",
                    None,
                ),
                "/spec/recurrenceRule",
                rule("DTSTART:20220101T000200Z\nRRULE:FREQ=DAILY;BYHOUR=2"),
            ),
            &[],
        ),
        (
            "unknown fields pass",
            set(
                set(rep(), "/spec/futureField", Some(json!({"x": 1}))),
                "/spec/replicationRetention",
                Some(json!("0")),
            ),
            &[],
        ),
        (
            "label false and plain name is not a replication schedule",
            set(
                set(
                    plain(),
                    "/metadata/labels",
                    Some(json!({"tprotect.io/replication-schedule": "false"})),
                ),
                "/spec/snapshotRetention",
                Some(json!("7")),
            ),
            &[],
        ),
        (
            "replication granularity lower case",
            set(rep(), "/spec/granularity", Some(json!("custom"))),
            &[(
                "spec.granularity",
                "must be \"Custom\" for a replication schedule, got \"custom\" (did you mean \"Custom\"?). Fix: set spec.granularity: Custom",
            )],
        ),
        (
            "replication granularity Hourly",
            set(
                labelled_replication_schedule(),
                "/spec/granularity",
                Some(json!("Hourly")),
            ),
            &[(
                "spec.granularity",
                "must be \"Custom\" for a replication schedule, got \"Hourly\"",
            )],
        ),
        (
            "replication granularity missing",
            set(rep(), "/spec/granularity", None),
            &[(
                "spec.granularity",
                "is required. Fix: set spec.granularity: Custom",
            )],
        ),
        (
            "granularity null counts as missing",
            set(rep(), "/spec/granularity", Some(Value::Null)),
            &[("spec.granularity", "is required")],
        ),
        (
            "granularity not a string",
            set(plain(), "/spec/granularity", Some(json!(1))),
            &[("spec.granularity", "must be a string, got the number 1")],
        ),
        (
            "plain granularity lower case",
            set(plain(), "/spec/granularity", Some(json!("hourly"))),
            &[("spec.granularity", "(did you mean \"Hourly\"?)")],
        ),
        (
            "plain granularity unknown",
            set(plain(), "/spec/granularity", Some(json!("Biweekly"))),
            &[(
                "spec.granularity",
                "must be one of Hourly, Daily, Weekly, Monthly, Custom (case-sensitive), got \"Biweekly\"",
            )],
        ),
        (
            "plain granularity missing",
            set(plain(), "/spec/granularity", None),
            &[(
                "spec.granularity",
                "one of Hourly, Daily, Weekly, Monthly, Custom",
            )],
        ),
        (
            "backupRetention as a number",
            set(rep(), "/spec/backupRetention", Some(json!(0))),
            &[("spec.backupRetention", "quote it: backupRetention: \"0\"")],
        ),
        (
            "snapshotRetention as a number on a plain schedule",
            set(plain(), "/spec/snapshotRetention", Some(json!(5))),
            &[(
                "spec.snapshotRetention",
                "must be a string of digits, got the number 5",
            )],
        ),
        (
            "replication backupRetention not 0",
            set(rep(), "/spec/backupRetention", Some(json!("3"))),
            &[("spec.backupRetention", "must be \"0\" for a replication schedule")],
        ),
        (
            "replication snapshotRetention not 2",
            set(rep(), "/spec/snapshotRetention", Some(json!("5"))),
            &[(
                "spec.snapshotRetention",
                "must be \"2\" for a replication schedule (replication keeps the two most recent snapshots), got \"5\"",
            )],
        ),
        (
            "replication snapshotRetention as number 2",
            set(rep(), "/spec/snapshotRetention", Some(json!(2))),
            &[("spec.snapshotRetention", "quote it: snapshotRetention: \"2\"")],
        ),
        (
            "retention with leading zero",
            set(plain(), "/spec/snapshotRetention", Some(json!("02"))),
            &[("spec.snapshotRetention", "Fix: set spec.snapshotRetention: \"2\"")],
        ),
        (
            "negative retention",
            set(plain(), "/spec/backupRetention", Some(json!("-1"))),
            &[("spec.backupRetention", "pattern ^(0|([1-9][0-9]*))$")],
        ),
        (
            "retention with spaces",
            set(plain(), "/spec/backupRetention", Some(json!(" 3"))),
            &[("spec.backupRetention", "set spec.backupRetention: \"3\"")],
        ),
        (
            "retention 64 digits",
            set(plain(), "/spec/backupRetention", Some(json!("1".repeat(64)))),
            &[("spec.backupRetention", "at most 63 digits")],
        ),
        (
            "retention missing",
            set(plain(), "/spec/snapshotRetention", None),
            &[("spec.snapshotRetention", "is required")],
        ),
        (
            "retention a list",
            set(plain(), "/spec/snapshotRetention", Some(json!(["2"]))),
            &[("spec.snapshotRetention", "got a list")],
        ),
        (
            "replication disabled",
            set(rep(), "/spec/enabled", Some(json!(false))),
            &[("spec.enabled", "must be true for a replication schedule")],
        ),
        (
            "replication enabled missing",
            set(rep(), "/spec/enabled", None),
            &[("spec.enabled", "is required for a replication schedule")],
        ),
        (
            "plain enabled missing is fine",
            set(plain(), "/spec/enabled", None),
            &[],
        ),
        (
            "plain disabled is fine",
            set(plain(), "/spec/enabled", Some(json!(false))),
            &[],
        ),
        (
            "enabled as a string",
            set(plain(), "/spec/enabled", Some(json!("true"))),
            &[("spec.enabled", "write enabled: true without quotes")],
        ),
        (
            "enabled as a number",
            set(plain(), "/spec/enabled", Some(json!(1))),
            &[("spec.enabled", "must be a boolean, got the number 1")],
        ),
        (
            "replication rule missing",
            set(rep(), "/spec/recurrenceRule", None),
            &[(
                "spec.recurrenceRule",
                r#"is required for a replication schedule. Fix: set spec.recurrenceRule: "DTSTART:20250107T122500Z\nRRULE:FREQ=MINUTELY;INTERVAL=5""#,
            )],
        ),
        (
            "replication rule empty",
            set(rep(), "/spec/recurrenceRule", Some(json!(""))),
            &[("spec.recurrenceRule", "is required for a replication schedule")],
        ),
        (
            "replication rule daily",
            set(
                rep(),
                "/spec/recurrenceRule",
                rule("DTSTART:20220101T000200Z\nRRULE:FREQ=DAILY"),
            ),
            &[(
                "spec.recurrenceRule",
                "FREQ=DAILY is not supported in a replication schedule",
            )],
        ),
        (
            "replication rule every minute",
            set(
                rep(),
                "/spec/recurrenceRule",
                rule("DTSTART:20220101T000200Z\nRRULE:FREQ=MINUTELY;INTERVAL=1"),
            ),
            &[(
                "spec.recurrenceRule",
                "needs INTERVAL of at least 5, got INTERVAL=1",
            )],
        ),
        (
            "replication rule hourly",
            set(
                rep(),
                "/spec/recurrenceRule",
                rule("DTSTART:20220101T000200Z\nRRULE:FREQ=HOURLY"),
            ),
            &[],
        ),
        (
            "rule starting in the future",
            set(
                rep(),
                "/spec/recurrenceRule",
                rule("DTSTART:20250107T122600Z\nRRULE:FREQ=HOURLY"),
            ),
            &[("spec.recurrenceRule", "is in the future")],
        ),
        (
            "rule not in UTC",
            set(
                rep(),
                "/spec/recurrenceRule",
                rule("DTSTART:20220101T000200\nRRULE:FREQ=HOURLY"),
            ),
            &[("spec.recurrenceRule", "must be in UTC (end with Z)")],
        ),
        (
            "rule on one line",
            set(
                rep(),
                "/spec/recurrenceRule",
                rule("DTSTART:20220101T000200Z RRULE:FREQ=HOURLY"),
            ),
            &[("spec.recurrenceRule", "DTSTART")],
        ),
        (
            "rule not a string",
            set(rep(), "/spec/recurrenceRule", Some(json!({"freq": "hourly"}))),
            &[("spec.recurrenceRule", "must be a string, got an object")],
        ),
        (
            "rule with non-Custom granularity",
            set(plain(), "/spec/recurrenceRule", rule(RULE)),
            &[(
                "spec.recurrenceRule",
                "only allowed with granularity Custom, granularity is \"Hourly\"",
            )],
        ),
        (
            "Custom without rule",
            set(plain(), "/spec/granularity", Some(json!("Custom"))),
            &[("spec.recurrenceRule", "is required when granularity is Custom")],
        ),
        (
            "plain Custom rule every 2 minutes",
            set(
                set(plain(), "/spec/granularity", Some(json!("Custom"))),
                "/spec/recurrenceRule",
                rule("DTSTART:20220101T000200Z\nRRULE:FREQ=MINUTELY;INTERVAL=2"),
            ),
            &[("spec.recurrenceRule", "at least 5")],
        ),
        (
            "spec missing",
            set(rep(), "/spec", None),
            &[("spec", "is required")],
        ),
        (
            "spec a string",
            set(rep(), "/spec", Some(json!("x"))),
            &[("spec", "must be an object, got the string \"x\"")],
        ),
        (
            "applicationRef missing",
            set(plain(), "/spec/applicationRef", None),
            &[("spec.applicationRef", "is required")],
        ),
        (
            "applicationRef empty",
            set(plain(), "/spec/applicationRef", Some(json!(" "))),
            &[("spec.applicationRef", "must not be empty")],
        ),
        (
            "applicationRef not a name",
            set(plain(), "/spec/applicationRef", Some(json!("My App"))),
            &[("spec.applicationRef", "must be the name of an Application")],
        ),
        (
            "replication appVaultRef missing",
            set(rep(), "/spec/appVaultRef", None),
            &[("spec.appVaultRef", "is required")],
        ),
        (
            "plain appVaultRef missing is fine",
            set(plain(), "/spec/appVaultRef", None),
            &[],
        ),
        (
            "minute out of range",
            set(plain(), "/spec/minute", Some(json!("60"))),
            &[("spec.minute", "must be a number from 0 to 59, got \"60\"")],
        ),
        (
            "hour as a number",
            set(plain(), "/spec/hour", Some(json!(5))),
            &[("spec.hour", "quote it: hour: \"5\"")],
        ),
        (
            "dayOfMonth zero",
            set(plain(), "/spec/dayOfMonth", Some(json!("0"))),
            &[("spec.dayOfMonth", "1 to 31, or -1")],
        ),
        (
            "dayOfMonth last",
            set(plain(), "/spec/dayOfMonth", Some(json!("-1"))),
            &[],
        ),
        (
            "dayOfWeek 8",
            set(plain(), "/spec/dayOfWeek", Some(json!("8"))),
            &[("spec.dayOfWeek", "0 to 7")],
        ),
        (
            "several problems at once",
            set(
                set(
                    set(rep(), "/spec/granularity", Some(json!("custom"))),
                    "/spec/snapshotRetention",
                    Some(json!(3)),
                ),
                "/spec/enabled",
                Some(json!(false)),
            ),
            &[
                ("spec.granularity", "did you mean"),
                ("spec.snapshotRetention", "quote it"),
                ("spec.enabled", "must be true"),
            ],
        ),
    ];
    run_create_cases("Schedule", cases);
}

#[test]
fn amr_rules() {
    let rule = |text: &str| Some(json!(text));
    let mut cases: Vec<Case> = vec![
        ("valid", amr(), &[]),
        (
            "valid promoted with snapshot",
            set(
                set(amr(), "/spec/desiredState", Some(json!("Promoted"))),
                "/spec/promotedSnapshot",
                Some(json!("20250107122548_bboxdrlastsnap_5fa90108")),
            ),
            &[],
        ),
        (
            "unknown and newer fields pass",
            set(
                set(
                    set(amr(), "/spec/transformations", Some(json!([{"op": "x"}]))),
                    "/spec/storageClassMapping",
                    Some(json!([{"source": "a", "destination": "b"}])),
                ),
                "/spec/zFuture",
                Some(json!(true)),
            ),
            &[],
        ),
        (
            "storageClassName absent is fine",
            set(amr(), "/spec/storageClassName", None),
            &[],
        ),
        (
            "hourly rule",
            set(
                amr(),
                "/spec/recurrenceRule",
                rule("DTSTART:20220101T000200Z\nRRULE:FREQ=HOURLY;INTERVAL=2"),
            ),
            &[],
        ),
        (
            "desiredState lower case",
            set(amr(), "/spec/desiredState", Some(json!("established"))),
            &[(
                "spec.desiredState",
                "got \"established\" (did you mean \"Established\"?). Fix: set spec.desiredState: Established",
            )],
        ),
        (
            "desiredState upper case promoted",
            set(amr(), "/spec/desiredState", Some(json!("PROMOTED"))),
            &[("spec.desiredState", "did you mean \"Promoted\"")],
        ),
        (
            "desiredState unknown",
            set(amr(), "/spec/desiredState", Some(json!("Failover"))),
            &[(
                "spec.desiredState",
                "must be exactly Established or Promoted (case-sensitive), got \"Failover\"",
            )],
        ),
        (
            "desiredState a boolean",
            set(amr(), "/spec/desiredState", Some(json!(true))),
            &[("spec.desiredState", "must be a string")],
        ),
        (
            "uid not a uuid",
            set(amr(), "/spec/sourceApplicationUID", Some(json!("my-app"))),
            &[("spec.sourceApplicationUID", "must be a UUID")],
        ),
        (
            "uid upper case",
            set(
                amr(),
                "/spec/sourceApplicationUID",
                Some(json!("7498D32C-328E-4DDD-9029-122540866AEB")),
            ),
            &[(
                "spec.sourceApplicationUID",
                "use \"7498d32c-328e-4ddd-9029-122540866aeb\" (Kubernetes UIDs are lower case)",
            )],
        ),
        (
            "uid a number",
            set(amr(), "/spec/sourceApplicationUID", Some(json!(42))),
            &[("spec.sourceApplicationUID", "must be a string")],
        ),
        (
            "rule daily",
            set(
                amr(),
                "/spec/recurrenceRule",
                rule("DTSTART:20220101T000200Z\nRRULE:FREQ=DAILY"),
            ),
            &[(
                "spec.recurrenceRule",
                "FREQ=DAILY is not supported in an AppMirrorRelationship; use MINUTELY or HOURLY",
            )],
        ),
        (
            "rule with BYMINUTE",
            set(
                amr(),
                "/spec/recurrenceRule",
                rule("DTSTART:20220101T000200Z\nRRULE:FREQ=HOURLY;BYMINUTE=5"),
            ),
            &[(
                "spec.recurrenceRule",
                "rule part BYMINUTE is not supported in an AppMirrorRelationship; only FREQ, INTERVAL are",
            )],
        ),
        (
            "rule in the future",
            set(
                amr(),
                "/spec/recurrenceRule",
                rule("DTSTART:20990101T000000Z\nRRULE:FREQ=HOURLY"),
            ),
            &[("spec.recurrenceRule", "in the future")],
        ),
        (
            "rule with TZID",
            set(
                amr(),
                "/spec/recurrenceRule",
                rule("DTSTART;TZID=Europe/Paris:20220101T000200\nRRULE:FREQ=HOURLY"),
            ),
            &[("spec.recurrenceRule", "plain UTC time")],
        ),
        (
            "mapping empty",
            set(amr(), "/spec/namespaceMapping", Some(json!([]))),
            &[("spec.namespaceMapping", "must not be empty")],
        ),
        (
            "mapping a map",
            set(amr(), "/spec/namespaceMapping", Some(json!({"a": "b"}))),
            &[("spec.namespaceMapping", "must be a list, got an object")],
        ),
        (
            "mapping entry a string",
            set(amr(), "/spec/namespaceMapping", Some(json!(["a:b"]))),
            &[(
                "spec.namespaceMapping[0]",
                "must be an object with source and destination",
            )],
        ),
        (
            "mapping entry without destination",
            set(amr(), "/spec/namespaceMapping/0/destination", None),
            &[("spec.namespaceMapping[0].destination", "is required")],
        ),
        (
            "mapping bad name",
            set(
                amr(),
                "/spec/namespaceMapping/0/destination",
                Some(json!("My_NS")),
            ),
            &[("spec.namespaceMapping[0].destination", "DNS-1123")],
        ),
        (
            "mapping upper case name",
            set(amr(), "/spec/namespaceMapping/0/source", Some(json!("App"))),
            &[("spec.namespaceMapping[0].source", "did you mean \"app\"?")],
        ),
        (
            "mapping name too long",
            set(
                amr(),
                "/spec/namespaceMapping/0/source",
                Some(json!("a".repeat(64))),
            ),
            &[("spec.namespaceMapping[0].source", "at most 63 characters, got 64")],
        ),
        (
            "mapping duplicate source",
            set(
                amr(),
                "/spec/namespaceMapping",
                Some(json!([{"source": "a", "destination": "b"}, {"source": "a", "destination": "c"}])),
            ),
            &[(
                "spec.namespaceMapping[1].source",
                "\"a\" appears more than once as a source",
            )],
        ),
        (
            "mapping duplicate destination",
            set(
                amr(),
                "/spec/namespaceMapping",
                Some(json!([{"source": "a", "destination": "c"}, {"source": "b", "destination": "c"}])),
            ),
            &[(
                "spec.namespaceMapping[1].destination",
                "more than once as a destination",
            )],
        ),
        (
            "mapping swap is fine",
            set(
                amr(),
                "/spec/namespaceMapping",
                Some(json!([{"source": "a", "destination": "b"}, {"source": "b", "destination": "a"}])),
            ),
            &[],
        ),
        (
            "promotedSnapshot with Established",
            set(amr(), "/spec/promotedSnapshot", Some(json!("snap"))),
            &[("spec.promotedSnapshot", "only allowed with desiredState Promoted")],
        ),
        (
            "empty promotedSnapshot is ignored",
            set(amr(), "/spec/promotedSnapshot", Some(json!(""))),
            &[],
        ),
        (
            "promotedSnapshot a path",
            set(
                set(amr(), "/spec/desiredState", Some(json!("Promoted"))),
                "/spec/promotedSnapshot",
                Some(json!("app_1/snapshots/20250107_x")),
            ),
            &[(
                "spec.promotedSnapshot",
                "use only the part after the last '/': \"20250107_x\"",
            )],
        ),
        (
            "storageClassName a number",
            set(amr(), "/spec/storageClassName", Some(json!(2))),
            &[("spec.storageClassName", "must be a string")],
        ),
        (
            "vault ref not a name",
            set(amr(), "/spec/sourceAppVaultRef", Some(json!("Bucket_1"))),
            &[("spec.sourceAppVaultRef", "must be the name of an AppVault")],
        ),
        (
            "spec missing",
            set(amr(), "/spec", None),
            &[("spec", "is required")],
        ),
    ];
    for (pointer, field) in [
        ("/spec/desiredState", "spec.desiredState"),
        ("/spec/destinationAppVaultRef", "spec.destinationAppVaultRef"),
        ("/spec/sourceAppVaultRef", "spec.sourceAppVaultRef"),
        ("/spec/sourceApplicationName", "spec.sourceApplicationName"),
        ("/spec/sourceApplicationUID", "spec.sourceApplicationUID"),
        ("/spec/recurrenceRule", "spec.recurrenceRule"),
        ("/spec/namespaceMapping", "spec.namespaceMapping"),
    ] {
        let expected: &'static [(&'static str, &'static str)] =
            Box::leak(Box::new([(field, "is required. Fix:")]));
        cases.push(("required field missing", set(amr(), pointer, None), expected));
    }
    run_create_cases("AppMirrorRelationship", cases);
}

#[test]
fn amr_update_rules() {
    let promoted = || set(amr(), "/spec/desiredState", Some(json!("Promoted")));
    let annotate = |object: Value, value: &str| {
        set(
            object,
            "/metadata/annotations",
            Some(json!({"tprotect.io/discard-destination-changes": value})),
        )
    };
    let cases: Vec<UpdateCase> = vec![
        ("fail over", amr(), promoted(), &[]),
        ("no change", promoted(), promoted(), &[]),
        (
            "resync without consent",
            promoted(),
            amr(),
            &[
                (
                    "spec.desiredState",
                    "discards every change written on the destination since the failover",
                ),
                ("spec.desiredState", "kubectl tprotect resync amr1"),
                (
                    "spec.desiredState",
                    "tprotect.io/discard-destination-changes: \"true\"",
                ),
            ],
        ),
        ("resync with consent", promoted(), annotate(amr(), "true"), &[]),
        (
            "resync with a consent that is not \"true\"",
            promoted(),
            annotate(amr(), "yes"),
            &[("spec.desiredState", "is a resync")],
        ),
        (
            "consent only on the old object does not count",
            annotate(promoted(), "true"),
            amr(),
            &[("spec.desiredState", "is a resync")],
        ),
        (
            "Established to Established with consent annotation",
            amr(),
            annotate(amr(), "true"),
            &[],
        ),
        (
            "uid changed",
            amr(),
            set(
                amr(),
                "/spec/sourceApplicationUID",
                Some(json!("11111111-2222-3333-4444-555555555555")),
            ),
            &[("spec.sourceApplicationUID", "is immutable")],
        ),
        (
            "uid changed says how",
            amr(),
            set(
                amr(),
                "/spec/sourceApplicationUID",
                Some(json!("11111111-2222-3333-4444-555555555555")),
            ),
            &[(
                "spec.sourceApplicationUID",
                "delete and recreate it, or to swap direction use `kubectl tprotect reverse-resync amr1`",
            )],
        ),
        (
            "name changed",
            amr(),
            set(amr(), "/spec/sourceApplicationName", Some(json!("other"))),
            &[("spec.sourceApplicationName", "was \"my-app-name\", now \"other\"")],
        ),
        (
            "source vault changed",
            amr(),
            set(amr(), "/spec/sourceAppVaultRef", Some(json!("other"))),
            &[("spec.sourceAppVaultRef", "is immutable")],
        ),
        (
            "destination vault changed",
            amr(),
            set(amr(), "/spec/destinationAppVaultRef", Some(json!("other"))),
            &[("spec.destinationAppVaultRef", "is immutable")],
        ),
        (
            "mapping changed",
            amr(),
            set(
                amr(),
                "/spec/namespaceMapping/0/destination",
                Some(json!("other")),
            ),
            &[("spec.namespaceMapping", "is immutable")],
        ),
        (
            "mapping removed",
            amr(),
            set(amr(), "/spec/namespaceMapping", None),
            &[
                ("spec.namespaceMapping", "is required"),
                ("spec.namespaceMapping", "now absent"),
            ],
        ),
        (
            "mapping reordered",
            set(
                amr(),
                "/spec/namespaceMapping",
                Some(json!([{"source": "a", "destination": "b"}, {"source": "c", "destination": "d"}])),
            ),
            set(
                amr(),
                "/spec/namespaceMapping",
                Some(json!([{"destination": "d", "source": "c"}, {"source": "a", "destination": "b"}])),
            ),
            &[],
        ),
        (
            "mapping set where the old object had none",
            set(amr(), "/spec/namespaceMapping", None),
            amr(),
            &[],
        ),
        (
            "mutable fields change freely",
            amr(),
            set(
                set(amr(), "/spec/storageClassName", Some(json!("gold"))),
                "/spec/recurrenceRule",
                Some(json!("DTSTART:20220101T000200Z\nRRULE:FREQ=HOURLY")),
            ),
            &[],
        ),
        (
            "an old violation is not reported again (ratcheting)",
            set(
                amr(),
                "/spec/recurrenceRule",
                Some(json!("DTSTART:20220101T000200Z\nRRULE:FREQ=DAILY")),
            ),
            set(
                set(
                    amr(),
                    "/spec/recurrenceRule",
                    Some(json!("DTSTART:20220101T000200Z\nRRULE:FREQ=DAILY")),
                ),
                "/metadata/labels",
                Some(json!({"x": "y"})),
            ),
            &[],
        ),
        (
            "a changed violation is reported",
            set(
                amr(),
                "/spec/recurrenceRule",
                Some(json!("DTSTART:20220101T000200Z\nRRULE:FREQ=DAILY")),
            ),
            set(
                amr(),
                "/spec/recurrenceRule",
                Some(json!("DTSTART:20220101T000200Z\nRRULE:FREQ=WEEKLY")),
            ),
            &[("spec.recurrenceRule", "FREQ=WEEKLY")],
        ),
    ];
    for (name, old, new, expected) in cases {
        let violations = validate(
            "AppMirrorRelationship",
            Operation::Update,
            &new,
            Some(&old),
            now(),
        );
        assert_violations(name, &violations, expected);
    }
    // UPDATE without an old object validates the new object like CREATE.
    let violations = validate(
        "AppMirrorRelationship",
        Operation::Update,
        &set(amr(), "/spec/desiredState", None),
        None,
        now(),
    );
    assert_violations(
        "update without old",
        &violations,
        &[("spec.desiredState", "is required")],
    );
}

#[test]
fn objects_being_deleted_and_other_operations_are_not_checked() {
    let broken = set(amr(), "/spec", Some(json!("broken")));
    assert!(!validate("AppMirrorRelationship", Operation::Create, &broken, None, now()).is_empty());
    for op in [Operation::Delete, Operation::Connect] {
        assert!(
            validate("AppMirrorRelationship", op, &broken, None, now()).is_empty(),
            "{op}"
        );
    }
    let deleting = set(
        broken.clone(),
        "/metadata/deletionTimestamp",
        Some(json!("2025-01-07T12:00:00Z")),
    );
    assert!(
        validate(
            "AppMirrorRelationship",
            Operation::Update,
            &deleting,
            Some(&broken),
            now()
        )
        .is_empty()
    );
    for kind in ["Namespace", "Backup", "AppMirrorUpdate", "", "schedule"] {
        assert!(
            validate(kind, Operation::Create, &broken, None, now()).is_empty(),
            "{kind}"
        );
    }
}

#[test]
fn appvault_rules() {
    let mut cases: Vec<Case> = ["AWS", "Azure", "GCP", "GenericS3", "OntapS3", "StorageGridS3"]
        .into_iter()
        .map(|p| ("valid provider", appvault(p), &[] as &[(&str, &str)]))
        .collect();
    for (lower, upper) in seed::PROVIDER_TYPES {
        let fragment =
            format!("got \"{lower}\" (did you mean \"{upper}\"?). Fix: set spec.providerType: {upper}");
        let expected: &'static [(&'static str, &'static str)] = Box::leak(Box::new([(
            "spec.providerType",
            &*Box::leak(fragment.into_boxed_str()),
        )]));
        cases.push((
            "documented lower-case provider",
            set(appvault(upper), "/spec/providerType", Some(json!(lower))),
            expected,
        ));
    }
    let s3 = || appvault("GenericS3");
    cases.extend::<Vec<Case>>(vec![
        ("unknown provider", set(s3(), "/spec/providerType", Some(json!("MinIO"))), &[("spec.providerType", "must be one of AWS, Azure, GCP, GenericS3, OntapS3, StorageGridS3 (case-sensitive), got \"MinIO\"")]),
        ("provider missing", set(s3(), "/spec/providerType", None), &[("spec.providerType", "is required")]),
        ("provider a number", set(s3(), "/spec/providerType", Some(json!(3))), &[("spec.providerType", "must be a string")]),
        ("lower-case provider and a missing key are both reported", set(set(s3(), "/spec/providerType", Some(json!("generic-s3"))), "/spec/providerConfig/s3/endpoint", None), &[("spec.providerType", "did you mean"), ("spec.providerConfig.s3.endpoint", "is required")]),
        ("config missing", set(s3(), "/spec/providerConfig", None), &[("spec.providerConfig", "is required")]),
        ("config missing with unknown provider", set(set(s3(), "/spec/providerConfig", None), "/spec/providerType", Some(json!("x"))), &[("spec.providerConfig", "is required"), ("spec.providerType", "must be one of")]),
        ("config a string", set(s3(), "/spec/providerConfig", Some(json!("s3"))), &[("spec.providerConfig", "must be an object")]),
        ("AWS without s3", set(appvault("AWS"), "/spec/providerConfig", Some(json!({}))), &[("spec.providerConfig.s3", "is required for providerType AWS")]),
        ("Azure with an s3 block", set(appvault("Azure"), "/spec/providerConfig", Some(json!({"s3": {"bucketName": "b", "endpoint": "e"}}))), &[("spec.providerConfig.azure", "found providerConfig.s3, which Azure does not read")]),
        ("s3 block not an object", set(s3(), "/spec/providerConfig/s3", Some(json!(["b"]))), &[("spec.providerConfig.s3", "must be an object, got a list")]),
        ("s3 bucketName missing", set(s3(), "/spec/providerConfig/s3/bucketName", None), &[("spec.providerConfig.s3.bucketName", "is required")]),
        ("s3 endpoint empty", set(s3(), "/spec/providerConfig/s3/endpoint", Some(json!(""))), &[("spec.providerConfig.s3.endpoint", "must not be empty")]),
        ("azure accountName missing", set(appvault("Azure"), "/spec/providerConfig/azure/accountName", None), &[("spec.providerConfig.azure.accountName", "is required")]),
        ("azure endpoint missing", set(appvault("Azure"), "/spec/providerConfig/azure/endpoint", None), &[("spec.providerConfig.azure.endpoint", "is required")]),
        ("gcp projectID missing", set(appvault("GCP"), "/spec/providerConfig/gcp/projectID", None), &[("spec.providerConfig.gcp.projectID", "is required")]),
        ("gcp bucketName a number", set(appvault("GCP"), "/spec/providerConfig/gcp/bucketName", Some(json!(7))), &[("spec.providerConfig.gcp.bucketName", "quote the value: bucketName: \"7\"")]),
        ("secure as a boolean", set(s3(), "/spec/providerConfig/s3/secure", Some(json!(false))), &[("spec.providerConfig.s3.secure", "quote it: secure: \"false\"")]),
        ("skipCertValidation yes", set(s3(), "/spec/providerConfig/s3/skipCertValidation", Some(json!("yes"))), &[("spec.providerConfig.s3.skipCertValidation", "must be the string \"true\" or \"false\"")]),
        ("useIAM as a string", set(s3(), "/spec/providerConfig/s3/useIAM", Some(json!("true"))), &[("spec.providerConfig.s3.useIAM", "must be a boolean")]),
        ("credentials absent are fine (useIAM)", set(s3(), "/spec/providerCredentials", None), &[]),
        ("credentials key missing", set(s3(), "/spec/providerCredentials/accessKeyID/valueFromSecret/key", None), &[("spec.providerCredentials.accessKeyID.valueFromSecret.key", "is required")]),
        ("credentials name missing", set(s3(), "/spec/providerCredentials/secretAccessKey/valueFromSecret/name", None), &[("spec.providerCredentials.secretAccessKey.valueFromSecret.name", "is required")]),
        ("credentials name not a name", set(s3(), "/spec/providerCredentials/secretAccessKey/valueFromSecret/name", Some(json!("S3 Secret"))), &[("spec.providerCredentials.secretAccessKey.valueFromSecret.name", "must be the name of a Secret")]),
        ("credentials valueFromSecret missing", set(s3(), "/spec/providerCredentials/accessKeyID", Some(json!({"secretRef": "x"}))), &[("spec.providerCredentials.accessKeyID.valueFromSecret", "is required")]),
        ("credentials valueFromSecret a string", set(s3(), "/spec/providerCredentials/accessKeyID/valueFromSecret", Some(json!("s3-secret"))), &[("spec.providerCredentials.accessKeyID.valueFromSecret", "must be an object with key and name")]),
        ("credentials entry a string", set(s3(), "/spec/providerCredentials/accessKeyID", Some(json!("AKIA"))), &[("spec.providerCredentials.accessKeyID", "must be an object with valueFromSecret")]),
        ("credentials a list", set(s3(), "/spec/providerCredentials", Some(json!([]))), &[("spec.providerCredentials", "must be a map of credential name")]),
        ("credential name with a dot is bracketed", set(s3(), "/spec/providerCredentials/a.b", Some(json!({}))), &[("spec.providerCredentials[\"a.b\"].valueFromSecret", "is required")]),
    ]);
    run_create_cases("AppVault", cases);
}

#[test]
fn application_rules() {
    let cases: Vec<Case> = vec![
        ("namespaces", application(), &[]),
        ("virtual machines", vm_application(), &[]),
        (
            "neither",
            set(application(), "/spec/includedNamespaces", None),
            &[(
                "spec.includedNamespaces",
                "exactly one of includedNamespaces or includedVirtualMachines",
            )],
        ),
        (
            "both",
            set(
                application(),
                "/spec/includedVirtualMachines",
                Some(json!([{"namespace": "a", "names": ["v"]}])),
            ),
            &[(
                "spec.includedVirtualMachines",
                "must not be set together with includedNamespaces",
            )],
        ),
        (
            "empty namespaces",
            set(application(), "/spec/includedNamespaces", Some(json!([]))),
            &[("spec.includedNamespaces", "must not be empty")],
        ),
        (
            "namespaces not a list",
            set(
                application(),
                "/spec/includedNamespaces",
                Some(json!("my-app-namespace")),
            ),
            &[("spec.includedNamespaces", "must be a list")],
        ),
        (
            "entry a string",
            set(
                application(),
                "/spec/includedNamespaces",
                Some(json!(["my-app-namespace"])),
            ),
            &[("spec.includedNamespaces[0]", "must be an object")],
        ),
        (
            "bad namespace name",
            set(
                application(),
                "/spec/includedNamespaces/0/namespace",
                Some(json!("My-App")),
            ),
            &[("spec.includedNamespaces[0].namespace", "did you mean \"my-app\"?")],
        ),
        (
            "namespace missing",
            set(application(), "/spec/includedNamespaces/0/namespace", None),
            &[("spec.includedNamespaces[0].namespace", "is required")],
        ),
        (
            "labelSelector a string",
            set(
                application(),
                "/spec/includedNamespaces/0/labelSelector",
                Some(json!("app=x")),
            ),
            &[(
                "spec.includedNamespaces[0].labelSelector",
                "must be a label selector object",
            )],
        ),
        (
            "vm names empty",
            set(
                vm_application(),
                "/spec/includedVirtualMachines/0/names",
                Some(json!([])),
            ),
            &[(
                "spec.includedVirtualMachines[0].names",
                "at least one VirtualMachine",
            )],
        ),
        (
            "vm names missing",
            set(vm_application(), "/spec/includedVirtualMachines/0/names", None),
            &[("spec.includedVirtualMachines[0].names", "is required")],
        ),
        (
            "vm name a number",
            set(
                vm_application(),
                "/spec/includedVirtualMachines/0/names/1",
                Some(json!(3)),
            ),
            &[("spec.includedVirtualMachines[0].names[1]", "got the number 3")],
        ),
        (
            "vm namespace bad",
            set(
                vm_application(),
                "/spec/includedVirtualMachines/0/namespace",
                Some(json!("-x")),
            ),
            &[("spec.includedVirtualMachines[0].namespace", "DNS-1123")],
        ),
        (
            "unknown fields pass",
            set(
                set(
                    application(),
                    "/spec/resourceFilter",
                    Some(json!({"resourceSelectionCriteria": "Include"})),
                ),
                "/spec/includedClusterScopedResources",
                Some(json!([])),
            ),
            &[],
        ),
        (
            "spec missing",
            set(application(), "/spec", None),
            &[("spec", "includedNamespaces")],
        ),
    ];
    run_create_cases("Application", cases);
}

#[test]
fn snapshot_rules() {
    for kind in ["Snapshot", "ShutdownSnapshot"] {
        let cases: Vec<Case> = vec![
            ("valid", snapshot(kind), &[]),
            (
                "applicationRef missing",
                set(snapshot(kind), "/spec/applicationRef", None),
                &[("spec.applicationRef", "is required")],
            ),
            (
                "appVaultRef missing",
                set(snapshot(kind), "/spec/appVaultRef", None),
                &[("spec.appVaultRef", "is required")],
            ),
            (
                "appVaultRef a number",
                set(snapshot(kind), "/spec/appVaultRef", Some(json!(1))),
                &[("spec.appVaultRef", "must be a string")],
            ),
            (
                "appVaultTargetsRef stands in for appVaultRef",
                set(
                    set(snapshot(kind), "/spec/appVaultRef", None),
                    "/spec/appVaultTargetsRef",
                    Some(json!("targets")),
                ),
                &[],
            ),
            (
                "both missing",
                set(snapshot(kind), "/spec", Some(json!({}))),
                &[
                    ("spec.applicationRef", "is required"),
                    ("spec.appVaultRef", "is required"),
                ],
            ),
            (
                "spec missing",
                set(snapshot(kind), "/spec", None),
                &[("spec", "applicationRef and appVaultRef")],
            ),
            (
                "unknown fields pass",
                set(snapshot(kind), "/spec/cleanupSnapshot", Some(json!(true))),
                &[],
            ),
        ];
        run_create_cases(kind, cases);
    }
}

fn apply(object: &Value, patch: &json_patch::Patch) -> Value {
    let mut doc = object.clone();
    json_patch::patch(&mut doc, &patch.0).expect("mutation patch applies to its object");
    doc
}

#[test]
fn mutation_fills_omitted_replication_defaults_and_is_idempotent() {
    let mut bare = replication_schedule();
    for key in ["granularity", "backupRetention", "snapshotRetention", "enabled"] {
        bare["spec"].as_object_mut().unwrap().remove(key);
    }
    let before = validate("Schedule", Operation::Create, &bare, None, now());
    assert_eq!(before.len(), 4, "{before:?}");

    for op in [Operation::Create, Operation::Update] {
        let patch = mutate("Schedule", op, &bare);
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!([
                {"op": "add", "path": "/spec/granularity", "value": "Custom"},
                {"op": "add", "path": "/spec/backupRetention", "value": "0"},
                {"op": "add", "path": "/spec/snapshotRetention", "value": "2"},
                {"op": "add", "path": "/spec/enabled", "value": true},
            ])
        );
        let mutated = apply(&bare, &patch);
        assert_eq!(mutated, replication_schedule());
        assert!(validate("Schedule", op, &mutated, None, now()).is_empty());
        assert!(mutate("Schedule", op, &mutated).0.is_empty(), "idempotent");
    }
}

#[test]
fn mutation_cases() {
    let rep = replication_schedule;
    // (case, object, expected patch as JSON)
    let cases: Vec<(&str, Value, Value)> = vec![
        ("complete replication schedule", rep(), json!([])),
        (
            "only enabled missing",
            set(rep(), "/spec/enabled", None),
            json!([{"op": "add", "path": "/spec/enabled", "value": true}]),
        ),
        (
            "null counts as missing",
            set(rep(), "/spec/backupRetention", Some(Value::Null)),
            json!([{"op": "add", "path": "/spec/backupRetention", "value": "0"}]),
        ),
        (
            "a wrong value is never overwritten",
            set(rep(), "/spec/granularity", Some(json!("custom"))),
            json!([]),
        ),
        (
            "a disabled schedule stays disabled",
            set(rep(), "/spec/enabled", Some(json!(false))),
            json!([]),
        ),
        (
            "labelled replication schedule",
            set(labelled_replication_schedule(), "/spec/snapshotRetention", None),
            json!([{"op": "add", "path": "/spec/snapshotRetention", "value": "2"}]),
        ),
        (
            "no spec at all",
            set(rep(), "/spec", None),
            json!([{"op": "add", "path": "/spec", "value": {"granularity": "Custom", "backupRetention": "0", "snapshotRetention": "2", "enabled": true}}]),
        ),
        (
            "spec not an object is left to validation",
            set(rep(), "/spec", Some(json!([1]))),
            json!([]),
        ),
        (
            "plain schedule untouched",
            set(plain_schedule(), "/spec/granularity", None),
            json!([]),
        ),
    ];
    for (name, object, expected) in cases {
        let patch = mutate("Schedule", Operation::Create, &object);
        assert_eq!(serde_json::to_value(&patch).unwrap(), expected, "{name}");
        let mutated = apply(&object, &patch);
        assert!(
            mutate("Schedule", Operation::Create, &mutated).0.is_empty(),
            "{name}: idempotent"
        );
    }
    let bare = set(rep(), "/spec/enabled", None);
    for (kind, op) in [
        ("Schedule", Operation::Delete),
        ("Schedule", Operation::Connect),
        ("AppMirrorRelationship", Operation::Create),
        ("Namespace", Operation::Update),
    ] {
        assert!(mutate(kind, op, &bare).0.is_empty(), "{kind} {op}");
    }
}

#[test]
fn denial_message_for_a_real_refusal() {
    let object = set(
        set(replication_schedule(), "/spec/granularity", Some(json!("custom"))),
        "/spec/enabled",
        Some(json!(false)),
    );
    let violations = validate("Schedule", Operation::Create, &object, None, now());
    let message = denial_message(
        "Schedule",
        "appmirror-schedule-0e1f88ab-f013-4bce-8ae9-6afed9df59a1",
        &violations,
    );
    assert!(
        message.starts_with(
            "Schedule \"appmirror-schedule-0e1f88ab-f013-4bce-8ae9-6afed9df59a1\" refused, 2 problems:"
        ),
        "{message}"
    );
    assert!(
        message.contains("(1) spec.granularity: must be \"Custom\""),
        "{message}"
    );
    assert!(message.contains("(2) spec.enabled: must be true"), "{message}");
    assert_eq!(message.matches("Fix:").count(), 2, "{message}");
}
