//! The rules read an object parsed straight into [`Json`] (borrowing from the text, as the admission webhook
//! reads a review) exactly as they read the same text parsed into a `serde_json::Value`: the same violations
//! in the same order, the same patch. Repeated keys included (JSON allows them; a `Value` keeps the last).

mod shapes;

use jiff::Timestamp;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use tprotect_policy::{Json, Operation, VALIDATED_KINDS, mutate, mutate_json, validate, validate_json};

fn now() -> Timestamp {
    "2025-01-07T12:25:48Z".parse().unwrap()
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        Just(json!(2.5)),
        prop::sample::select(vec![
            "Custom",
            "custom",
            "0",
            "2",
            "007",
            "true",
            "Established",
            "Promoted",
            "GenericS3",
            "aws",
            "ns-1",
            "Ns_1",
            "my-app",
            "7498d32c-328e-4ddd-9029-122540866aeb",
            "a/b",
            "é\"\n",
            "DTSTART:20220101T000200Z\nRRULE:FREQ=MINUTELY;INTERVAL=5",
        ])
        .prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(shapes::known_field_name(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object's text, with `spec` maybe written twice (the second wins in a `Value`).
fn object_text() -> impl Strategy<Value = String> {
    let spec = || {
        prop::collection::btree_map(shapes::known_field_name(), value(), 0..9)
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()))
    };
    let labels = prop::sample::select(vec![
        json!({"tprotect.io/replication-schedule": "true"}),
        json!({}),
        json!(null),
    ]);
    let annotations = prop::sample::select(vec![
        json!({"tprotect.io/discard-destination-changes": "true"}),
        json!({"a": "b"}),
    ]);
    let name = prop::sample::select(vec!["appmirror-schedule-1", "s", ""]);
    (
        spec(),
        prop::option::of(spec()),
        labels,
        annotations,
        name,
        any::<bool>(),
    )
        .prop_map(|(spec, repeated, labels, annotations, name, deleting)| {
            let mut metadata = json!({"name": name, "labels": labels, "annotations": annotations});
            if deleting {
                metadata["deletionTimestamp"] = json!("2025-01-07T12:00:00Z");
            }
            let text = json!({"metadata": metadata, "spec": spec}).to_string();
            match repeated {
                Some(second) => format!("{},\"spec\":{second}}}", &text[..text.len() - 1]),
                None => text,
            }
        })
}

#[test]
fn rules_read_borrowed_json_as_they_read_a_value() {
    let strategy = (
        prop::sample::select(VALIDATED_KINDS.to_vec()),
        prop::sample::select(vec![Operation::Create, Operation::Update]),
        object_text(),
        prop::option::of(object_text()),
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 3000,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let denied = std::cell::Cell::new(0usize);
    runner
        .run(&strategy, |(kind, operation, text, old_text)| {
            let value: Value = serde_json::from_str(&text).unwrap();
            let json: Json = serde_json::from_str(&text).unwrap();
            let old_value: Option<Value> = old_text.as_deref().map(|t| serde_json::from_str(t).unwrap());
            let old_json: Option<Json> = old_text.as_deref().map(|t| serde_json::from_str(t).unwrap());
            let through_value = validate(kind, operation, &value, old_value.as_ref(), now());
            let borrowed = validate_json(kind, operation, &json, old_json.as_ref(), now());
            prop_assert_eq!(&through_value, &borrowed, "{}", text);
            if !borrowed.is_empty() {
                denied.set(denied.get() + 1);
            }
            prop_assert_eq!(
                mutate(kind, operation, &value),
                mutate_json(kind, operation, &json)
            );
            Ok(())
        })
        .unwrap();
    let denied = denied.get();
    eprintln!("3000 inputs, {denied} with violations");
    assert!(denied > 1000, "the inputs must reach the rules: {denied} denied");
}
