//! The admission router driven in-process (`tower::ServiceExt::oneshot`): allow, deny, patch, 400, 413, uid
//! echo; and the health router: readiness, liveness, metrics.

mod common;

use std::sync::Arc;

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use base64::Engine;
use common::*;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use tprotect_policy::{
    Operation,
    namespace::{NamespaceMapping, SkipRules},
};
use tprotect_webhook::{
    AdmissionConfig, AmrCache, PatchEncoding,
    admission::{MAX_BODY_BYTES, MUTATE_PATH, VALIDATE_PATH},
    amr_cache::amr_api_resource,
    health::{self, Readiness},
    router,
};

fn review_response(reply: &Reply) -> &Value {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(reply.json["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(reply.json["kind"], "AdmissionReview");
    &reply.json["response"]
}

fn decoded_patch(response: &Value) -> json_patch::Patch {
    assert_eq!(response["patchType"], "JSONPatch", "{response}");
    let encoded = response["patch"]
        .as_str()
        .unwrap_or_else(|| panic!("patch is not base64 text: {response}"));
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn apply(object: &Value, patch: &json_patch::Patch) -> Value {
    let mut patched = object.clone();
    json_patch::patch(&mut patched, patch).unwrap();
    patched
}

#[tokio::test]
async fn valid_replication_schedule_is_allowed_and_uid_echoed() {
    let review = Review::protect("Schedule", "CREATE", replication_schedule());
    let reply = call(router(default_state()), VALIDATE_PATH, review.body()).await;
    let response = review_response(&reply);
    assert_eq!(response["uid"], review.uid.as_str());
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none());
}

#[tokio::test]
async fn invalid_schedule_is_denied_with_field_rule_and_fix_and_422() {
    let mut schedule = replication_schedule();
    schedule["spec"]["granularity"] = json!("custom");
    schedule["spec"]["snapshotRetention"] = json!("5");
    let review = Review::protect("Schedule", "CREATE", schedule.clone());
    let reply = call(router(default_state()), VALIDATE_PATH, review.body()).await;
    let response = review_response(&reply);
    assert_eq!(response["uid"], review.uid.as_str());
    assert_eq!(response["allowed"], false);
    let status = &response["status"];
    assert_eq!(status["code"], 422, "{status}");
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(status["status"], "Failure");
    let now = NOW.parse().unwrap();
    let violations = tprotect_policy::validate("Schedule", Operation::Create, &schedule, None, now);
    assert_eq!(violations.len(), 2, "{violations:?}");
    let expected = tprotect_policy::denial_message("Schedule", &review.name, &violations);
    assert_eq!(status["message"], expected.as_str());
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("appmirror-schedule-0e1f88ab-f013-4bce-8ae9-6afed9df59a1"),
        "{message}"
    );
    assert!(message.contains("spec.granularity"), "{message}");
    assert!(message.contains("did you mean \"Custom\""), "{message}");
    assert!(message.contains("spec.snapshotRetention"), "{message}");
    assert!(message.contains("Fix:"), "{message}");
}

#[tokio::test]
async fn resync_without_acknowledgement_is_forbidden_with_403() {
    let response = validate_amr_update(amr("Established"), amr("Promoted")).await;
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 403, "{response}");
    assert_eq!(response["status"]["reason"], "Forbidden");
    let message = response["status"]["message"].as_str().unwrap();
    assert!(message.contains("spec.desiredState"), "{message}");
    assert!(
        message.contains("tprotect.io/discard-destination-changes"),
        "{message}"
    );
    assert!(message.contains("kubectl tprotect resync"), "{message}");

    let mut acknowledged = amr("Established");
    acknowledged["metadata"]["annotations"]["tprotect.io/discard-destination-changes"] = json!("true");
    let response = validate_amr_update(acknowledged, amr("Promoted")).await;
    assert_eq!(response["allowed"], true, "{response}");
}

/// The validating endpoint's answer to an UPDATE of an AppMirrorRelationship from `old` to `new`.
async fn validate_amr_update(new: Value, old: Value) -> Value {
    let review = Review::protect("AppMirrorRelationship", "UPDATE", new).with_old(old);
    let reply = call(router(default_state()), VALIDATE_PATH, review.body()).await;
    review_response(&reply).clone()
}

fn response_allowed(reply: &Reply) -> bool {
    review_response(reply)["allowed"].as_bool().unwrap()
}

#[tokio::test]
async fn immutable_field_change_is_forbidden_and_bad_value_on_update_is_invalid() {
    let mut changed = amr("Established");
    changed["spec"]["sourceApplicationUID"] = json!("11111111-2222-4333-8444-555555555555");
    let response = validate_amr_update(changed, amr("Established")).await;
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 403, "{response}");
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .contains("spec.sourceApplicationUID")
    );

    let mut bad = amr("Established");
    bad["spec"]["desiredState"] = json!("promoted");
    let response = validate_amr_update(bad, amr("Established")).await;
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 422, "{response}");
}

#[tokio::test]
async fn deletes_and_other_kinds_pass_validation() {
    let mut review = Review::protect("Schedule", "DELETE", json!(null));
    review.object = None;
    review.old_object = Some(replication_schedule());
    let reply = call(router(default_state()), VALIDATE_PATH, review.body()).await;
    assert!(response_allowed(&reply));

    let mut pod = Review::protect("Pod", "CREATE", json!({"metadata": {"name": "p"}, "spec": {}}));
    pod.group = String::new();
    let reply = call(router(default_state()), VALIDATE_PATH, pod.body()).await;
    assert!(response_allowed(&reply));

    // An unknown protect kind is not ours to judge.
    let review = Review::protect(
        "AppMirrorUpdate",
        "CREATE",
        json!({"metadata": {"name": "u"}, "spec": {}}),
    );
    let reply = call(router(default_state()), VALIDATE_PATH, review.body()).await;
    assert!(response_allowed(&reply));
}

#[tokio::test]
async fn replication_schedule_defaults_are_patched_idempotently() {
    let mut schedule = replication_schedule();
    let spec = schedule["spec"].as_object_mut().unwrap();
    for field in ["granularity", "backupRetention", "snapshotRetention", "enabled"] {
        spec.remove(field);
    }
    let review = Review::protect("Schedule", "CREATE", schedule.clone());
    let reply = call(router(default_state()), MUTATE_PATH, review.body()).await;
    let response = review_response(&reply);
    assert_eq!(response["uid"], review.uid.as_str());
    assert_eq!(response["allowed"], true);
    let patched = apply(&schedule, &decoded_patch(response));
    assert_eq!(patched["spec"]["granularity"], "Custom");
    assert_eq!(patched["spec"]["backupRetention"], "0");
    assert_eq!(patched["spec"]["snapshotRetention"], "2");
    assert_eq!(patched["spec"]["enabled"], true);
    assert_eq!(
        patched,
        replication_schedule(),
        "the patched object is the complete replication schedule"
    );

    // Reinvoked on its own output: nothing more to do.
    let again = Review::protect("Schedule", "CREATE", patched);
    let reply = call(router(default_state()), MUTATE_PATH, again.body()).await;
    let response = review_response(&reply);
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none(), "{response}");
    assert!(response.get("patchType").is_none(), "{response}");
}

#[tokio::test]
async fn byte_array_patch_encoding_carries_the_same_patch() {
    let mut schedule = replication_schedule();
    schedule["spec"].as_object_mut().unwrap().remove("enabled");
    let review = Review::protect("Schedule", "CREATE", schedule.clone());
    let config = AdmissionConfig {
        patch_encoding: PatchEncoding::ByteArray,
        ..AdmissionConfig::default()
    };
    let reply = mutate(config, AmrCache::from_objects([]), &review).await;
    let response = review_response(&reply);
    let bytes: Vec<u8> = response["patch"]
        .as_array()
        .unwrap_or_else(|| panic!("patch is not a number array: {response}"))
        .iter()
        .map(|n| u8::try_from(n.as_u64().unwrap()).unwrap())
        .collect();
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(apply(&schedule, &patch)["spec"]["enabled"], true);
}

/// The webhook's configuration with the controller's `var` (a `RESTORE_*` variable) set to `keys`.
fn skipping(var: &'static str, keys: &str) -> AdmissionConfig {
    let skip_rules = SkipRules::from_vars(|name| (name == var).then(|| keys.to_string())).unwrap();
    AdmissionConfig {
        skip_rules,
        ..AdmissionConfig::default()
    }
}

/// `review` through the mutating endpoint of a webhook with `config` and `cache`.
async fn mutate(config: AdmissionConfig, cache: AmrCache, review: &Review) -> Reply {
    call(router(state(config, cache)), MUTATE_PATH, review.body()).await
}

fn namespace(name: &str, labels: Value, annotations: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels, "annotations": annotations, "uid": "ns-uid", "resourceVersion": "7"},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"}
    })
}

fn amr_object(namespace: &str, name: &str, mapping: Value) -> kube::api::DynamicObject {
    let mut object = kube::api::DynamicObject::new(name, &amr_api_resource()).within(namespace);
    object.data = json!({"spec": {"namespaceMapping": mapping}});
    object
}

/// The seed's worked example: before the failover, `ns-2` as the destination; what a controller that copies
/// every source key writes; and what the documented result is.
fn seed_example() -> (Value, Value) {
    let before = namespace(
        "ns-2",
        json!({"role": "database"}),
        json!({"annotation.one/key": "true", "annotation.three/key": "false"}),
    );
    let written = namespace(
        "ns-2",
        json!({"role": "database", "environment": "production", "compliance": "hipaa", "name": "ns-1"}),
        json!({"annotation.one/key": "updatedvalue", "annotation.two/key": "true", "annotation.three/key": "false"}),
    );
    (before, written)
}

fn seed_cache() -> AmrCache {
    AmrCache::from_objects([amr_object(
        "ns-2",
        "rel",
        json!([{"source": "ns-1", "destination": "ns-2"}]),
    )])
}

#[tokio::test]
async fn controller_namespace_write_follows_the_seed_example() {
    let (before, written) = seed_example();
    let review = Review::namespace("UPDATE", written.clone(), Some(before), CONTROLLER);
    let reply = mutate(AdmissionConfig::default(), seed_cache(), &review).await;
    let response = review_response(&reply);
    assert_eq!(response["uid"], review.uid.as_str());
    let after = apply(&written, &decoded_patch(response));
    assert_eq!(
        after["metadata"]["labels"],
        json!({"name": "ns-2", "compliance": "hipaa", "environment": "production", "role": "database"})
    );
    assert_eq!(
        after["metadata"]["annotations"],
        json!({"annotation.one/key": "updatedvalue", "annotation.two/key": "true", "annotation.three/key": "false"})
    );
}

#[tokio::test]
async fn controller_namespace_write_keeps_skipped_keys() {
    let (before, written) = seed_example();
    let config = skipping("RESTORE_SKIP_NAMESPACE_ANNOTATIONS", "annotation.one/key");
    let review = Review::namespace("UPDATE", written.clone(), Some(before), CONTROLLER);
    let reply = mutate(config, seed_cache(), &review).await;
    let after = apply(&written, &decoded_patch(review_response(&reply)));
    assert_eq!(after["metadata"]["annotations"]["annotation.one/key"], "true");
    assert_eq!(after["metadata"]["annotations"]["annotation.two/key"], "true");
    assert_eq!(after["metadata"]["labels"]["name"], "ns-2");

    // A skipped key the controller adds on CREATE is removed.
    let config = skipping("RESTORE_SKIP_NAMESPACE_LABELS", "compliance");
    let created = namespace("ns-3", json!({"compliance": "hipaa", "team": "a"}), json!({}));
    let review = Review::namespace("CREATE", created.clone(), None, CONTROLLER);
    let reply = mutate(config, AmrCache::from_objects([]), &review).await;
    let after = apply(&created, &decoded_patch(review_response(&reply)));
    assert_eq!(after["metadata"]["labels"], json!({"team": "a"}));
}

#[tokio::test]
async fn namespace_writes_by_anyone_else_pass_untouched() {
    let (before, written) = seed_example();
    let config = skipping("RESTORE_SKIP_NAMESPACE_ANNOTATIONS", "annotation.one/key");
    for user in ["alice", "system:serviceaccount:trident-protect:other", ""] {
        let review = Review::namespace("UPDATE", written.clone(), Some(before.clone()), user);
        let reply = mutate(config.clone(), seed_cache(), &review).await;
        let response = review_response(&reply);
        assert_eq!(response["allowed"], true);
        assert!(response.get("patch").is_none(), "user {user:?}: {response}");
    }
    // A configured list replaces the default identity.
    let config = AdmissionConfig {
        controller_usernames: vec!["stand-in".into()],
        ..config
    };
    let review = Review::namespace("UPDATE", written.clone(), Some(before.clone()), CONTROLLER);
    let reply = mutate(config.clone(), seed_cache(), &review).await;
    assert!(review_response(&reply).get("patch").is_none());
    let review = Review::namespace("UPDATE", written, Some(before), "stand-in");
    let reply = mutate(config, seed_cache(), &review).await;
    assert!(review_response(&reply).get("patch").is_some());
}

#[tokio::test]
async fn unsynced_cache_still_enforces_skip_rules_and_warns() {
    let (before, written) = seed_example();
    let config = skipping("RESTORE_SKIP_NAMESPACE_ANNOTATIONS", "annotation.one/key");
    let state = state(config, AmrCache::never_synced());
    let metrics = state.metrics().clone();
    let review = Review::namespace("UPDATE", written.clone(), Some(before), CONTROLLER);
    let reply = call(router(state), MUTATE_PATH, review.body()).await;
    let response = review_response(&reply);
    let after = apply(&written, &decoded_patch(response));
    assert_eq!(after["metadata"]["annotations"]["annotation.one/key"], "true");
    assert_eq!(
        after["metadata"]["labels"]["name"], "ns-1",
        "no mapping known yet"
    );
    assert!(
        response["warnings"][0].as_str().unwrap().contains("not synced"),
        "{response}"
    );
    assert_eq!(metrics.namespace_mutations_without_cache.get(), 1);
}

#[test]
fn cache_mappings_feed_enforce() {
    let cache = seed_cache();
    assert_eq!(
        cache.mappings_to("ns-2"),
        vec![NamespaceMapping {
            source: "ns-1".into(),
            destination: "ns-2".into()
        }]
    );
}

async fn raw(path: &str, body: Vec<u8>) -> Reply {
    call(router(default_state()), path, body).await
}

fn assert_bad_request(reply: &Reply, fragment: &str) {
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.json);
    assert_eq!(reply.json["kind"], "Status");
    assert_eq!(reply.json["code"], 400);
    assert_eq!(reply.json["reason"], "BadRequest");
    let message = reply.json["message"].as_str().unwrap();
    assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
}

#[tokio::test]
async fn unusable_reviews_get_400_with_a_json_error() {
    for path in [VALIDATE_PATH, MUTATE_PATH] {
        assert_bad_request(&raw(path, b"{not json".to_vec()).await, "not an AdmissionReview");
        assert_bad_request(&raw(path, Vec::new()).await, "not an AdmissionReview");
        assert_bad_request(&raw(path, b"[]".to_vec()).await, "not an AdmissionReview");
        // A well-formed review but for one Latin-1 "é" (not UTF-8) inside its uid.
        let review = Review::protect("Schedule", "CREATE", replication_schedule()).to_json();
        let mut latin1 = serde_json::to_vec(&review).unwrap();
        let uid = latin1.windows(7).position(|w| w == br#""uid":""#).unwrap() + 7;
        latin1.insert(uid, 0xE9);
        assert_bad_request(&raw(path, latin1).await, "not UTF-8");

        let mut review = Review::protect("Schedule", "CREATE", replication_schedule()).to_json();
        review["apiVersion"] = json!("admission.k8s.io/v1beta1");
        assert_bad_request(
            &raw(path, serde_json::to_vec(&review).unwrap()).await,
            "expected apiVersion",
        );

        let mut review = Review::protect("Schedule", "CREATE", replication_schedule()).to_json();
        review["kind"] = json!("TokenReview");
        assert_bad_request(&raw(path, serde_json::to_vec(&review).unwrap()).await, "kind");

        let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"});
        assert_bad_request(
            &raw(path, serde_json::to_vec(&review).unwrap()).await,
            "no request",
        );

        let mut review = Review::protect("Schedule", "CREATE", replication_schedule()).to_json();
        review["request"].as_object_mut().unwrap().remove("uid");
        assert_bad_request(&raw(path, serde_json::to_vec(&review).unwrap()).await, "uid");

        let mut review = Review::protect("Schedule", "CREATE", replication_schedule()).to_json();
        review["request"]["operation"] = json!("PATCH");
        assert_bad_request(
            &raw(path, serde_json::to_vec(&review).unwrap()).await,
            "not an AdmissionReview",
        );
    }
}

#[tokio::test]
async fn bodies_above_seven_mib_get_413_and_just_below_are_served() {
    let state = default_state();
    let metrics = state.metrics().clone();
    let reply = call(
        router(state.clone()),
        VALIDATE_PATH,
        vec![b' '; MAX_BODY_BYTES + 1],
    )
    .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", reply.json);
    assert_eq!(reply.json["code"], 413);

    // A review close to the limit (a large annotation, as a big last-applied-configuration would be).
    let mut schedule = replication_schedule();
    let base = Review::protect("Schedule", "CREATE", schedule.clone())
        .body()
        .len();
    let padding = MAX_BODY_BYTES - base - 64;
    schedule["metadata"]["annotations"] = json!({ "big": "x".repeat(padding) });
    let review = Review::protect("Schedule", "CREATE", schedule);
    let body = review.body();
    assert!(
        body.len() <= MAX_BODY_BYTES && body.len() > MAX_BODY_BYTES - 1024,
        "{}",
        body.len()
    );
    let reply = call(router(state), VALIDATE_PATH, body).await;
    assert_eq!(review_response(&reply)["uid"], review.uid.as_str());
    assert!(
        metrics
            .encode()
            .contains(r#"tprotect_webhook_rejected_requests_total{reason="too_large"} 1"#)
    );
}

#[tokio::test]
async fn wrong_method_and_path() {
    let app = router(default_state());
    let response = app
        .clone()
        .oneshot(Request::get(VALIDATE_PATH).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let response = app
        .oneshot(Request::post("/nope").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

async fn get_text(app: axum::Router, path: &str) -> (StatusCode, String) {
    let response = app
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn readiness_follows_listener_and_drain() {
    let readiness = Readiness::default();
    let app = health::router(readiness.clone(), Arc::new(tprotect_webhook::Metrics::new()));
    assert_eq!(get_text(app.clone(), "/livez").await.0, StatusCode::OK);
    assert_eq!(
        get_text(app.clone(), "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    readiness.set_listening();
    assert_eq!(get_text(app.clone(), "/readyz").await.0, StatusCode::OK);
    readiness.set_draining();
    assert_eq!(
        get_text(app.clone(), "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        get_text(app, "/livez").await.0,
        StatusCode::OK,
        "alive while draining"
    );
}

#[tokio::test]
async fn metrics_count_requests_denials_patches_and_latency() {
    let state = default_state();
    let metrics = state.metrics().clone();
    let app = router(state);
    let valid = Review::protect("Schedule", "CREATE", replication_schedule());
    call(app.clone(), VALIDATE_PATH, valid.body()).await;
    let mut invalid = replication_schedule();
    invalid["spec"]["granularity"] = json!("custom");
    call(
        app.clone(),
        VALIDATE_PATH,
        Review::protect("Schedule", "CREATE", invalid).body(),
    )
    .await;
    let mut partial = replication_schedule();
    partial["spec"].as_object_mut().unwrap().remove("enabled");
    call(
        app.clone(),
        MUTATE_PATH,
        Review::protect("Schedule", "CREATE", partial).body(),
    )
    .await;
    call(app.clone(), MUTATE_PATH, b"garbage".to_vec()).await;
    let mut odd = Review::protect("Widget", "CREATE", json!({"metadata": {"name": "w"}}));
    odd.group = "example.com".into();
    call(app, VALIDATE_PATH, odd.body()).await;

    let (status, text) = get_text(health::router(Readiness::default(), metrics), "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for line in [
        r#"tprotect_webhook_admission_requests_total{webhook="validate",kind="Schedule",operation="CREATE",allowed="true"} 1"#,
        r#"tprotect_webhook_admission_requests_total{webhook="validate",kind="Schedule",operation="CREATE",allowed="false"} 1"#,
        r#"tprotect_webhook_admission_requests_total{webhook="mutate",kind="Schedule",operation="CREATE",allowed="true"} 1"#,
        r#"tprotect_webhook_admission_requests_total{webhook="validate",kind="other",operation="CREATE",allowed="true"} 1"#,
        r#"tprotect_webhook_denials_total{kind="Schedule"} 1"#,
        r#"tprotect_webhook_patches_total{kind="Schedule"} 1"#,
        r#"tprotect_webhook_rejected_requests_total{reason="bad_request"} 1"#,
        r#"tprotect_webhook_admission_duration_seconds_count{webhook="validate"} 3"#,
        r#"tprotect_webhook_admission_duration_seconds_bucket{le="0.0001",webhook="validate"}"#,
        r#"tprotect_webhook_in_flight_requests 0"#,
    ] {
        assert!(text.contains(line), "missing {line}\n{text}");
    }
    assert!(!text.contains("Widget"), "kind labels are bounded");
}
