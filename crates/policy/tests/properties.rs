//! Properties over generated inputs.
//!
//! Case counts are fixed below; each property prints how many inputs it really ran (`cargo test -p
//! tprotect-policy --test properties -- --nocapture`). `PROPTEST_CASES` in the environment overrides them.

mod shapes;

use std::{
    cell::Cell,
    collections::{BTreeMap, BTreeSet},
};

use jiff::Timestamp;
use proptest::prelude::*;
use serde_json::{Value, json};
use tprotect_policy::{
    Operation, denial_message, mutate,
    namespace::{self, NamespaceMapping, NamespaceMeta, SkipRules},
    recurrence::{self, Frequency, RecurrenceRule},
    validate,
};

const JSON_CASES: u32 = 4_000;
const NAMESPACE_CASES: u32 = 3_000;
const RECURRENCE_CASES: u32 = 3_000;

fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Runs `property` over `strategy` for `cases` cases, then prints how many inputs ran.
fn check<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let ran = Cell::new(0usize);
    let mut runner = proptest::test_runner::TestRunner::new(config(cases));
    let result = runner.run(&strategy, |input| {
        ran.set(ran.get() + 1);
        property(input)
    });
    eprintln!("property {name}: {} inputs ran", ran.get());
    if let Err(e) = result {
        panic!("property {name} failed: {e}");
    }
}

fn now() -> Timestamp {
    "2025-01-07T12:25:48Z".parse().unwrap()
}

/// The kinds with rules, and two without (whose objects are always allowed).
fn kinds() -> Vec<&'static str> {
    let mut kinds = tprotect_policy::VALIDATED_KINDS.to_vec();
    kinds.extend(["Namespace", "X"]);
    kinds
}
/// Strings that hit the rules' edge cases, plus arbitrary ones.
fn tricky_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("Custom".to_string()),
        Just("custom".to_string()),
        Just("Promoted".to_string()),
        Just("Established".to_string()),
        Just("generic-s3".to_string()),
        Just("GCP".to_string()),
        Just("0".to_string()),
        Just("2".to_string()),
        Just("true".to_string()),
        Just("appmirror-schedule-1".to_string()),
        Just("7498d32c-328e-4ddd-9029-122540866aeb".to_string()),
        Just("DTSTART:20220101T000200Z\nRRULE:FREQ=MINUTELY;INTERVAL=5".to_string()),
        Just("DTSTART;TZID=X:1\nRRULE;FREQ".to_string()),
        Just("DTSTART:".to_string()),
        Just("RRULE:".to_string()),
        Just("ä/ß~é".to_string()),
        "\\PC{0,24}",
        "(DTSTART|RRULE|dtstart)[:;]?[0-9TZ=A-Z;,+-]{0,24}(\n(DTSTART|RRULE)[:;]?[0-9TZ=A-Z;,+-]{0,24})?",
    ]
}

/// Arbitrary JSON of [`tricky_string`]s and other leaves, in objects keyed mostly by the rules' field names.
fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        4 => shapes::plain_leaf(),
        1 => tricky_string().prop_map(Value::String),
    ];
    shapes::arbitrary_json(leaf.boxed())
}

/// An object of a validated kind: metadata that sometimes marks a replication schedule, and a spec of known
/// fields with arbitrary values.
fn shaped_object() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(kinds()),
        prop_oneof![
            Just("appmirror-schedule-x".to_string()),
            Just("amr1".to_string()),
            tricky_string()
        ],
        any::<bool>(),
        prop::collection::btree_map(shapes::field_name(), arbitrary_json(), 0..10),
    )
        .prop_map(|(kind, name, label, spec)| {
            let mut metadata = json!({"name": name});
            if label {
                metadata["labels"] = json!({"tprotect.io/replication-schedule": "true"});
            }
            json!({"kind": kind, "metadata": metadata, "spec": Value::Object(spec.into_iter().collect())})
        })
}

fn operation() -> impl Strategy<Value = Operation> {
    prop::sample::select(vec![
        Operation::Create,
        Operation::Update,
        Operation::Delete,
        Operation::Connect,
    ])
}

fn check_validate_and_mutate(
    kind: &str,
    op: Operation,
    object: &Value,
    old: Option<&Value>,
) -> Result<(), TestCaseError> {
    let violations = validate(kind, op, object, old, now());
    for v in &violations {
        prop_assert!(
            !v.field.is_empty() && !v.rule.is_empty() && !v.fix.is_empty(),
            "{v:?}"
        );
    }
    let message = denial_message(kind, "n", &violations);
    prop_assert!(message.matches("Fix:").count() >= violations.len());

    let patch = mutate(kind, op, object);
    let mut mutated = object.clone();
    prop_assert!(
        json_patch::patch(&mut mutated, &patch.0).is_ok(),
        "mutation patch must apply: {patch:?}"
    );
    prop_assert!(
        mutate(kind, op, &mutated).0.is_empty(),
        "mutation must be idempotent on {object}"
    );
    // Mutation only adds: every value the user wrote is still there.
    if let (Some(before), Some(after)) = (object.get("spec").and_then(Value::as_object), mutated.get("spec"))
    {
        for (key, value) in before {
            if !value.is_null() {
                prop_assert_eq!(after.get(key), Some(value));
            }
        }
    }
    Ok(())
}

#[test]
fn validate_and_mutate_never_panic_on_arbitrary_json() {
    let strategy = (
        prop::sample::select(kinds()),
        operation(),
        arbitrary_json(),
        proptest::option::of(arbitrary_json()),
    );
    check(
        "validate/mutate on arbitrary JSON",
        JSON_CASES,
        strategy,
        |(kind, op, object, old)| check_validate_and_mutate(kind, op, &object, old.as_ref()),
    );
}

#[test]
fn validate_and_mutate_never_panic_on_shaped_objects() {
    let strategy = (
        operation(),
        shaped_object(),
        proptest::option::of(shaped_object()),
    );
    check(
        "validate/mutate on shaped objects",
        JSON_CASES,
        strategy,
        |(op, object, old)| {
            let kind = object["kind"].as_str().unwrap_or_default().to_string();
            check_validate_and_mutate(&kind, op, &object, old.as_ref())
        },
    );
}

const KEYS: [&str; 7] = [
    "a",
    "b",
    "name",
    "x/y",
    "t~z",
    "openshift.io/sa.scc.mcs",
    "annotation.one/key",
];
const VALUES: [&str; 5] = ["1", "2", "ns-1", "ns-2", ""];
const NAMES: [&str; 3] = ["ns-1", "ns-2", "ns-3"];

fn key_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        prop::sample::select(KEYS.to_vec()).prop_map(str::to_string),
        prop::sample::select(VALUES.to_vec()).prop_map(str::to_string),
        0..6,
    )
}

fn ns_meta(name: impl Strategy<Value = String>) -> impl Strategy<Value = NamespaceMeta> {
    (name, key_map(), key_map()).prop_map(|(name, labels, annotations)| NamespaceMeta {
        name,
        labels,
        annotations,
    })
}

fn ns_name() -> impl Strategy<Value = String> {
    prop::sample::select(NAMES.to_vec()).prop_map(str::to_string)
}

fn key_set() -> impl Strategy<Value = BTreeSet<String>> {
    prop::collection::btree_set(prop::sample::select(KEYS.to_vec()).prop_map(str::to_string), 0..4)
}

fn skip_rules() -> impl Strategy<Value = SkipRules> {
    (key_set(), key_set(), key_set(), any::<bool>(), any::<bool>()).prop_map(
        |(skip_annotations, skip_labels, force_annotations, skip_all_annotations, skip_all_labels)| {
            SkipRules {
                skip_annotations,
                skip_labels,
                force_annotations,
                skip_all_annotations,
                skip_all_labels,
            }
        },
    )
}

fn mappings() -> impl Strategy<Value = Vec<NamespaceMapping>> {
    prop::collection::vec(
        (ns_name(), ns_name()).prop_map(|(source, destination)| NamespaceMapping { source, destination }),
        0..3,
    )
}

fn namespace_object(meta: &NamespaceMeta, with_empty_maps: bool) -> Value {
    let mut metadata = json!({"name": meta.name});
    for (field, map) in [("labels", &meta.labels), ("annotations", &meta.annotations)] {
        if with_empty_maps || !map.is_empty() {
            metadata[field] = serde_json::to_value(map).unwrap();
        }
    }
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})
}

/// Every key of `before` is still in `merged`, and skipped keys kept their values.
fn kept(
    before: &BTreeMap<String, String>,
    merged: &BTreeMap<String, String>,
    skipped: impl Fn(&str) -> bool,
) -> Result<(), TestCaseError> {
    for (key, value) in before {
        prop_assert!(merged.contains_key(key), "destination key {} deleted", key);
        if skipped(key) {
            prop_assert_eq!(merged.get(key), Some(value), "skipped key {} changed", key);
        }
    }
    Ok(())
}

/// Every annotation of `written` that no rule skips is in `result` with the value written.
fn unskipped_annotations_as_written(
    written: &BTreeMap<String, String>,
    result: &BTreeMap<String, String>,
    rules: &SkipRules,
) -> Result<(), TestCaseError> {
    for (key, value) in written {
        if !rules.skips_annotation(key) {
            prop_assert_eq!(result.get(key), Some(value), "annotation {} changed", key);
        }
    }
    Ok(())
}

#[test]
fn merge_never_deletes_a_destination_key() {
    let strategy = (ns_meta(ns_name()), ns_meta(ns_name()), skip_rules());
    check(
        "merge never deletes a destination key",
        NAMESPACE_CASES,
        strategy,
        |(source, destination, rules)| {
            let after = namespace::merge(&source, &destination, &rules);
            prop_assert_eq!(&after.name, &destination.name);
            kept(&destination.labels, &after.labels, |k| rules.skips_label(k))?;
            kept(&destination.annotations, &after.annotations, |k| {
                rules.skips_annotation(k)
            })?;
            // Nothing appears from nowhere, and every unskipped source annotation arrives as written.
            for key in after.labels.keys() {
                prop_assert!(destination.labels.contains_key(key) || source.labels.contains_key(key));
            }
            unskipped_annotations_as_written(&source.annotations, &after.annotations, &rules)
        },
    );
}

#[test]
fn enforce_applied_to_its_own_output_is_empty() {
    let strategy = (
        proptest::option::of(ns_meta(Just("ns-2".to_string()))),
        ns_meta(Just("ns-2".to_string())),
        skip_rules(),
        mappings(),
        any::<bool>(),
    );
    check(
        "enforce(apply(enforce)) is empty",
        NAMESPACE_CASES,
        strategy,
        |(old, new, rules, mappings, empty_maps)| {
            let patch = namespace::enforce(old.as_ref(), &new, &rules, &mappings);
            let mut object = namespace_object(&new, empty_maps);
            json_patch::patch(&mut object, &patch.0)
                .map_err(|e| TestCaseError::fail(format!("{e}: {patch:?}")))?;
            let patched = NamespaceMeta::from_object(&object).unwrap();
            let again = namespace::enforce(old.as_ref(), &patched, &rules, &mappings);
            prop_assert!(again.0.is_empty(), "second patch {:?}", again);
            // Skipped keys hold their old values (or are absent where old had none).
            let empty = BTreeMap::new();
            let old_labels = old.as_ref().map_or(&empty, |o| &o.labels);
            let old_annotations = old.as_ref().map_or(&empty, |o| &o.annotations);
            for key in KEYS {
                if rules.skips_label(key) {
                    prop_assert_eq!(patched.labels.get(key), old_labels.get(key));
                }
                if rules.skips_annotation(key) {
                    prop_assert_eq!(patched.annotations.get(key), old_annotations.get(key));
                }
            }
            // Annotations no rule touches are left as the writer wrote them.
            unskipped_annotations_as_written(&new.annotations, &patched.annotations, &rules)
        },
    );
}

/// A controller that copies every source key verbatim (no skip lists, no `name` rule), followed by the
/// webhook's enforce, ends exactly where the documented merge does — except the one case `enforce` documents:
/// the source has no `name` label while the destination already carried `name=<source namespace>`.
#[test]
fn naive_controller_write_plus_enforce_equals_merge() {
    let strategy = (
        ns_meta(Just("ns-1".to_string())),
        ns_meta(Just("ns-2".to_string())),
        skip_rules(),
    );
    check(
        "naive controller write + enforce == merge",
        NAMESPACE_CASES,
        strategy,
        |(source, destination, rules)| {
            if !source.labels.contains_key("name")
                && destination.labels.get("name").map(String::as_str) == Some("ns-1")
            {
                return Ok(()); // the documented exception
            }
            let mut written = destination.clone();
            written.labels.extend(source.labels.clone());
            written.annotations.extend(source.annotations.clone());
            let mappings = [NamespaceMapping {
                source: "ns-1".into(),
                destination: "ns-2".into(),
            }];
            let patch = namespace::enforce(Some(&destination), &written, &rules, &mappings);
            let mut object = namespace_object(&written, false);
            json_patch::patch(&mut object, &patch.0).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(
                NamespaceMeta::from_object(&object).unwrap(),
                namespace::merge(&source, &destination, &rules)
            );
            Ok(())
        },
    );
}

#[test]
fn recurrence_checks_never_panic() {
    let strategy = (tricky_string(), -10_000_000_000i64..10_000_000_000i64);
    check(
        "recurrence checks never panic",
        RECURRENCE_CASES,
        strategy,
        |(text, seconds)| {
            let now = Timestamp::from_second(seconds).unwrap();
            let _ = recurrence::check_amr(&text, now);
            let _ = recurrence::check_schedule(&text, now);
            let _ = recurrence::check_replication_schedule(&text, now);
            if let Ok(rule) = RecurrenceRule::parse(&text) {
                let _ = rule.next_after(now);
                let _ = rule.latest_at_or_before(now);
                let _ = rule.interval();
                prop_assert_eq!(RecurrenceRule::parse(&rule.to_string()).ok(), Some(rule));
            }
            Ok(())
        },
    );
}

#[test]
fn recurrence_display_round_trips_and_occurrences_are_one_interval_apart() {
    let strategy = (
        0i64..4_000_000_000i64,
        prop::sample::select(Frequency::ALL.to_vec()),
        1u32..10_000,
        0i64..4_000_000_000i64,
    );
    check(
        "recurrence round trip and occurrences",
        RECURRENCE_CASES,
        strategy,
        |(start, frequency, interval, at)| {
            let rule = RecurrenceRule::every(Timestamp::from_second(start).unwrap(), frequency, interval);
            let parsed = RecurrenceRule::parse(&rule.to_string())
                .map_err(|p| TestCaseError::fail(format!("{p:?}")))?;
            prop_assert_eq!(&parsed, &rule);
            let at = Timestamp::from_second(at).unwrap();
            if let Some(latest) = rule.latest_at_or_before(at) {
                prop_assert!(latest <= at);
                let next = rule.next_after(at).unwrap();
                prop_assert!(next > at);
                prop_assert_eq!(
                    (next.as_second() - latest.as_second()) as u64,
                    rule.interval().as_secs()
                );
            }
            Ok(())
        },
    );
}
