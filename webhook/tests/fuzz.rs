//! Property tests: arbitrary bytes, arbitrary JSON and arbitrary-but-well-formed AdmissionReviews fed to both
//! admission endpoints. The handlers must never panic (a panic would surface as HTTP 500 from the panic
//! guard, which these tests refuse): every answer is 200 with the request's uid, or 400 with a JSON error.

mod common;
#[path = "../../crates/policy/tests/shapes/mod.rs"]
mod shapes;

use std::sync::{
    LazyLock,
    atomic::{AtomicU64, Ordering},
};

use axum::http::StatusCode;
use common::*;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use tprotect_webhook::{
    AdmissionConfig, AmrCache,
    admission::{MUTATE_PATH, VALIDATE_PATH},
    router,
};

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
});

static INPUTS: AtomicU64 = AtomicU64::new(0);
static DENIED: AtomicU64 = AtomicU64::new(0);
static PATCHED: AtomicU64 = AtomicU64::new(0);
static ANSWERED: AtomicU64 = AtomicU64::new(0);

fn app() -> axum::Router {
    let skip_rules = tprotect_policy::namespace::SkipRules::from_vars(|var| match var {
        "RESTORE_SKIP_NAMESPACE_ANNOTATIONS" => Some("a/b,openshift.io/sa.scc.uid-range".into()),
        "RESTORE_SKIP_NAMESPACE_LABELS" => Some("name,team".into()),
        "RESTORE_FORCE_NAMESPACE_ANNOTATIONS" => Some("a/b".into()),
        _ => None,
    })
    .unwrap();
    let config = AdmissionConfig {
        skip_rules,
        ..AdmissionConfig::default()
    };
    let cache = AmrCache::from_objects([{
        let mut amr =
            kube::api::DynamicObject::new("r", &tprotect_webhook::amr_cache::amr_api_resource()).within("d");
        amr.data = json!({"spec": {"namespaceMapping": [{"source": "s", "destination": "d"}]}});
        amr
    }]);
    router(state(config, cache))
}

/// Sends `body` to both endpoints; returns the statuses. Panics (failing the property) on anything but a
/// 200 AdmissionReview echoing `uid` or a 400/413 JSON error.
fn check(body: Vec<u8>, uid: Option<&str>) -> Vec<StatusCode> {
    let app = app();
    [VALIDATE_PATH, MUTATE_PATH]
        .into_iter()
        .map(|path| {
            INPUTS.fetch_add(1, Ordering::Relaxed);
            let reply = RUNTIME.block_on(call(app.clone(), path, body.clone()));
            match reply.status {
                StatusCode::OK => {
                    assert_eq!(reply.json["kind"], "AdmissionReview");
                    let response = &reply.json["response"];
                    assert!(response["allowed"].is_boolean(), "{response}");
                    ANSWERED.fetch_add(1, Ordering::Relaxed);
                    if response["allowed"] == false {
                        DENIED.fetch_add(1, Ordering::Relaxed);
                        assert!(
                            response["status"]["message"]
                                .as_str()
                                .is_some_and(|m| !m.is_empty()),
                            "{response}"
                        );
                        assert!(
                            matches!(response["status"]["code"].as_u64(), Some(403 | 422)),
                            "{response}"
                        );
                    }
                    if let Some(uid) = uid {
                        assert_eq!(response["uid"], uid);
                    }
                    if let Some(patch) = response.get("patch") {
                        PATCHED.fetch_add(1, Ordering::Relaxed);
                        assert_eq!(response["patchType"], "JSONPatch");
                        assert!(patch.is_string());
                    }
                }
                StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => {
                    assert_eq!(reply.json["kind"], "Status", "{}", reply.json);
                }
                other => panic!("{path}: HTTP {other}: {}", reply.json),
            }
            reply.status
        })
        .collect()
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => shapes::plain_leaf(),
        1 => ".{0,12}".prop_map(Value::String),
        // Values the rules care about, so arbitrary objects reach deep into them.
        1 => prop_oneof![
            Just("Custom"),
            Just("custom"),
            Just("Hourly"),
            Just("0"),
            Just("2"),
            Just("007"),
            Just("true"),
            Just("Established"),
            Just("Promoted"),
            Just("GenericS3"),
            Just("generic-s3"),
            Just("ns-1"),
            Just("s"),
            Just("d"),
            Just("DTSTART:20220101T000200Z\nRRULE:FREQ=MINUTELY;INTERVAL=5"),
            Just("DTSTART:20990101T000200Z\nRRULE:FREQ=HOURLY"),
            Just("DTSTART:2022\nRRULE:FREQ=;INTERVAL=-1"),
            Just("7498d32c-328e-4ddd-9029-122540866aeb"),
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ]
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    shapes::arbitrary_json(json_leaf().boxed())
}

/// A Kubernetes-shaped object: metadata (maybe odd) and a spec built from known field names.
fn object() -> impl Strategy<Value = Value> {
    let labels = prop::collection::btree_map(
        prop_oneof![
            Just("name".to_string()),
            Just("tprotect.io/replication-schedule".to_string()),
            "[a-z/.]{1,8}"
        ],
        prop_oneof![
            Just("true".to_string()),
            Just("s".to_string()),
            Just("ns-1".to_string()),
            ".{0,6}"
        ],
        0..4,
    );
    let annotations = prop::collection::btree_map(
        prop_oneof![
            Just("tprotect.io/discard-destination-changes".to_string()),
            Just("a/b".to_string()),
            "[a-z/.]{1,8}"
        ],
        prop_oneof![Just("true".to_string()), ".{0,6}"],
        0..4,
    );
    let name = prop_oneof![
        Just("appmirror-schedule-1".to_string()),
        Just("d".to_string()),
        "[a-z0-9-]{0,12}"
    ];
    let spec = prop::collection::btree_map(shapes::field_name(), arbitrary_json(), 0..10);
    (name, labels, annotations, spec, arbitrary_json(), any::<bool>()).prop_map(
        |(name, labels, annotations, spec, extra, odd_metadata)| {
            let metadata = if odd_metadata {
                json!({"name": name, "labels": extra})
            } else {
                json!({"name": name, "namespace": "d", "labels": labels, "annotations": annotations})
            };
            json!({"metadata": metadata, "spec": spec.into_iter().collect::<Map<_, _>>(), "status": extra})
        },
    )
}

fn kind() -> impl Strategy<Value = (&'static str, &'static str)> {
    prop::sample::select(vec![
        ("protect.trident.netapp.io", "Schedule"),
        ("protect.trident.netapp.io", "AppMirrorRelationship"),
        ("protect.trident.netapp.io", "AppVault"),
        ("protect.trident.netapp.io", "Application"),
        ("protect.trident.netapp.io", "Snapshot"),
        ("protect.trident.netapp.io", "ShutdownSnapshot"),
        ("protect.trident.netapp.io", "AppMirrorUpdate"),
        ("", "Namespace"),
        ("", "Pod"),
    ])
}

/// Runs `property` over `cases` inputs of `strategy`; returns how many HTTP requests were made.
fn run<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let before = INPUTS.load(Ordering::Relaxed);
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    if let Err(error) = runner.run(&strategy, property) {
        panic!("{name}: {error}");
    }
    // Other tests in this binary run in parallel; the count is this property's own only when run alone.
    let requests = INPUTS.load(Ordering::Relaxed) - before;
    eprintln!("{name}: {cases} inputs passed ({requests} requests to the two endpoints, shrinking included)");
}

#[test]
fn arbitrary_bytes_never_panic() {
    run(
        "arbitrary bytes",
        2000,
        prop::collection::vec(any::<u8>(), 0..512),
        |body| {
            check(body, None);
            Ok(())
        },
    );
}

#[test]
fn arbitrary_json_never_panics() {
    run("arbitrary JSON", 2000, arbitrary_json(), |value| {
        check(serde_json::to_vec(&value).unwrap(), None);
        Ok(())
    });
}

#[test]
fn arbitrary_envelopes_never_panic() {
    // Right at the top, arbitrary inside.
    run(
        "arbitrary AdmissionReview contents",
        2000,
        arbitrary_json(),
        |request| {
            let review =
                json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request});
            check(serde_json::to_vec(&review).unwrap(), None);
            Ok(())
        },
    );
}

/// Whether kube's `ObjectMeta` can read this object's metadata (labels must be a map of strings).
fn readable(object: Option<&Value>) -> bool {
    object.is_none_or(|o| match &o["metadata"]["labels"] {
        Value::Null => true,
        Value::Object(map) => map.values().all(Value::is_string),
        _ => false,
    })
}

#[test]
fn well_formed_reviews_of_arbitrary_objects_are_answered() {
    let strategy = (
        kind(),
        prop::sample::select(vec!["CREATE", "UPDATE", "DELETE", "CONNECT"]),
        prop::sample::select(vec![CONTROLLER, "alice", ""]),
        object(),
        prop::option::of(object()),
        any::<bool>(),
    );
    run(
        "well-formed reviews of arbitrary objects",
        3000,
        strategy,
        |((group, kind), operation, user, object, old, no_object)| {
            let mut review = if group.is_empty() && kind == "Namespace" {
                Review::namespace(operation, object, old, user)
            } else {
                let mut review = Review::protect(kind, operation, object);
                review.group = group.to_string();
                review.old_object = old;
                review.username = user.to_string();
                review
            };
            if no_object {
                review.object = None;
            }
            let statuses = check(review.body(), Some(&review.uid));
            if readable(review.object.as_ref()) && readable(review.old_object.as_ref()) {
                prop_assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
            }
            Ok(())
        },
    );
    let (answered, denied, patched) = (
        ANSWERED.load(Ordering::Relaxed),
        DENIED.load(Ordering::Relaxed),
        PATCHED.load(Ordering::Relaxed),
    );
    eprintln!("reached the rules: {answered} answered, {denied} denied, {patched} patched");
    // The generated objects must reach the rules, not just bounce off the envelope. Counters are shared with
    // the other properties, which cannot deny or patch (their objects are never well-formed enough).
    assert!(denied > 50 && patched > 5, "denied {denied}, patched {patched}");
}
