//! The examples of seed 003 (NetApp's "Replicate applications using NetApp SnapMirror and Trident protect"),
//! held against the rules.
//!
//! The seed's YAML snippets lost their structural lines (`apiVersion`, `metadata:`, `spec:`) and the body of
//! `recurrenceRule` when the page was captured. Each test below restores those lines, and first checks that
//! every other line it uses appears verbatim in the seed, so the examples cannot drift from the source.

use std::{collections::BTreeMap, path::PathBuf};

use jiff::Timestamp;
use serde_json::Value;
use tprotect_policy::{
    Operation, denial_message,
    namespace::{self, NamespaceMeta, SkipRules},
    validate,
};

fn shared_dir() -> PathBuf {
    match std::env::var_os("TPROTECT_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

fn seed_003() -> String {
    let dir = shared_dir().join("seeds");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); set TPROTECT_SHARED_DIR to the shared directory",
            dir.display()
        )
    });
    let path = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("003_"))
        })
        .unwrap_or_else(|| panic!("no seed 003_*.txt in {}", dir.display()));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Lines restored because the capture lost them; everything else must be in the seed.
const RESTORED: &[&str] = &[
    "apiVersion: protect.trident.netapp.io/v1",
    "kind: Schedule",
    "kind: AppMirrorRelationship",
    "kind: ShutdownSnapshot",
    "kind: Application",
    "metadata:",
    "spec:",
    "includedNamespaces:",
    "namespaceMapping:",
    "recurrenceRule: |-",
    // The rule body the seed lost, as NetApp's CRD documentation and docs/trident-protect.md give it.
    "DTSTART:20220101T000200Z",
    "RRULE:FREQ=MINUTELY;INTERVAL=5",
];

/// Parses a reconstructed example after checking its lines against the seed.
fn from_seed(yaml: &str) -> Value {
    let seed = seed_003();
    let seed_lines: Vec<&str> = seed.lines().map(str::trim).collect();
    for line in yaml.lines().map(str::trim).filter(|l| !l.is_empty()) {
        assert!(
            RESTORED.contains(&line) || seed_lines.contains(&line),
            "line {line:?} of the reconstructed example is not in seed 003"
        );
    }
    serde_norway::from_str(yaml).expect("reconstructed example is YAML")
}

fn now() -> Timestamp {
    "2025-01-07T12:25:48Z".parse().unwrap()
}

/// The reconstructed examples of seed 003, shared with the model's round-trip tests.
#[path = "../../api/tests/seed-003/examples.rs"]
mod examples;
use examples::{
    AMR as SEED_AMR, APPLICATION as SEED_APPLICATION, SCHEDULE_AS_PRINTED as SEED_SCHEDULE,
    SHUTDOWN_SNAPSHOT as SEED_SHUTDOWN_SNAPSHOT,
};

#[test]
fn seed_schedule_is_refused_for_its_lower_case_granularity() {
    let schedule = from_seed(SEED_SCHEDULE);
    let violations = validate("Schedule", Operation::Create, &schedule, None, now());
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(
        violations[0].to_string(),
        "spec.granularity: must be \"Custom\" for a replication schedule, got \"custom\" (did you mean \
         \"Custom\"?). Fix: set spec.granularity: Custom"
    );
    let message = denial_message(
        "Schedule",
        "appmirror-schedule-0e1f88ab-f013-4bce-8ae9-6afed9df59a1",
        &violations,
    );
    assert!(message.contains("did you mean \"Custom\""), "{message}");

    // Mutation does not paper over it: the user's value is kept and refused.
    assert!(
        tprotect_policy::mutate("Schedule", Operation::Create, &schedule)
            .0
            .is_empty()
    );

    // With the documented value the seed's schedule is valid.
    let mut corrected = schedule.clone();
    corrected["spec"]["granularity"] = "Custom".into();
    assert!(validate("Schedule", Operation::Create, &corrected, None, now()).is_empty());
}

#[test]
fn seed_relationship_is_valid() {
    let amr = from_seed(SEED_AMR);
    let violations = validate("AppMirrorRelationship", Operation::Create, &amr, None, now());
    assert!(violations.is_empty(), "{violations:?}");

    // The seed's failover edit, then its resync edit: the resync is refused without consent.
    let mut promoted = amr.clone();
    promoted["spec"]["desiredState"] = "Promoted".into();
    assert!(
        validate(
            "AppMirrorRelationship",
            Operation::Update,
            &promoted,
            Some(&amr),
            now()
        )
        .is_empty()
    );
    let resync = validate(
        "AppMirrorRelationship",
        Operation::Update,
        &amr,
        Some(&promoted),
        now(),
    );
    assert_eq!(resync.len(), 1, "{resync:?}");
    assert!(
        resync[0]
            .fix
            .contains("kubectl tprotect resync amr-16061e80-1b05-4e80-9d26-d326dc1953d8"),
        "{resync:?}"
    );
}

#[test]
fn seed_shutdown_snapshot_and_application_are_valid() {
    let shutdown = from_seed(SEED_SHUTDOWN_SNAPSHOT);
    assert!(validate("ShutdownSnapshot", Operation::Create, &shutdown, None, now()).is_empty());

    let application = from_seed(SEED_APPLICATION);
    assert!(validate("Application", Operation::Create, &application, None, now()).is_empty());
}

#[test]
fn seed_provider_types_get_did_you_mean() {
    let seed = seed_003();
    for (documented, expected) in examples::PROVIDER_TYPES {
        assert!(
            seed.lines().any(|l| l.trim() == format!("• {documented}")),
            "seed lists {documented}"
        );
        let vault = serde_json::json!({
            "metadata": {"name": "v"},
            "spec": {
                "providerType": documented,
                "providerConfig": {
                    "s3": {"bucketName": "b", "endpoint": "e"},
                    "azure": {"accountName": "a", "bucketName": "b", "endpoint": "e"},
                    "gcp": {"bucketName": "b", "projectID": "p"}
                }
            }
        });
        let violations = validate("AppVault", Operation::Create, &vault, None, now());
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert_eq!(violations[0].field, "spec.providerType");
        assert!(
            violations[0]
                .rule
                .contains(&format!("did you mean \"{expected}\"")),
            "{violations:?}"
        );
    }
}

/// A namespace's metadata as docs/trident-protect.md states it: `annotations {key: "value", ...}, labels
/// {key=value, ...}`.
fn stated_meta(name: &str, stated: &str) -> NamespaceMeta {
    let entries = |opening: &str, separator: &str| -> BTreeMap<String, String> {
        let start = stated.find(opening).expect(opening) + opening.len();
        let list = &stated[start..start + stated[start..].find('}').unwrap()];
        list.split(", ")
            .map(|entry| {
                let (key, value) = entry.split_once(separator).expect(entry);
                (key.to_string(), value.trim_matches('"').to_string())
            })
            .collect()
    };
    NamespaceMeta {
        name: name.into(),
        labels: entries("labels {", "="),
        annotations: entries("annotations {", ": "),
    }
}

/// The worked example as docs/trident-protect.md states it (the seed capture lost the first annotation's
/// key); the test checks that the document still says exactly this, and merges what it says.
#[test]
fn seed_namespace_worked_example() {
    let doc_path = shared_dir().join("docs/trident-protect.md");
    let doc = std::fs::read_to_string(&doc_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", doc_path.display()))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let stated @ [source, destination, after] = [
        r#"source `ns-1` annotations {annotation.one/key: "updatedvalue", annotation.two/key: "true"}, labels {environment=production, compliance=hipaa, name=ns-1}"#,
        r#"destination `ns-2` annotations {annotation.one/key: "true", annotation.three/key: "false"}, labels {role=database}"#,
        r#"After: annotations {annotation.one/key: "updatedvalue", annotation.two/key: "true", annotation.three/key: "false"}, labels {name=ns-2, compliance=hipaa, environment=production, role=database}"#,
    ];
    for stated in stated {
        assert!(
            doc.contains(stated),
            "docs/trident-protect.md no longer states: {stated}"
        );
    }
    let source = stated_meta("ns-1", source);
    let destination = stated_meta("ns-2", destination);
    // The seed's result: the source's labels and annotations over the destination's.
    let merged = stated_meta("ns-2", after);
    // What was read from the stated text: every entry, each value without its quotes.
    assert_eq!(
        [&source, &destination, &merged].map(|m| (m.labels.len(), m.annotations.len())),
        [(3, 2), (1, 2), (4, 3)],
        "{source:?} {destination:?} {merged:?}"
    );
    assert_eq!(merged.labels["name"], "ns-2");
    assert_eq!(merged.annotations["annotation.one/key"], "updatedvalue");

    assert_eq!(
        namespace::merge(&source, &destination, &SkipRules::none()),
        merged
    );

    let vars = BTreeMap::from([("RESTORE_SKIP_NAMESPACE_ANNOTATIONS", "annotation.one/key")]);
    let rules = SkipRules::from_vars(|k| vars.get(k).map(|v| v.to_string())).unwrap();
    let skipped = namespace::merge(&source, &destination, &rules);
    let mut kept = merged;
    kept.annotations
        .insert("annotation.one/key".into(), "true".into());
    assert_eq!(
        skipped, kept,
        "the skipped annotation keeps the destination's value"
    );
}
