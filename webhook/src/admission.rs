//! The admission endpoints: AdmissionReview v1 in, AdmissionReview v1 out.
//!
//! - [`VALIDATE_PATH`]: `tprotect_policy::validate` for Schedule, AppMirrorRelationship, AppVault, Application,
//!   Snapshot and ShutdownSnapshot (`protect.trident.netapp.io`). A denial carries
//!   `tprotect_policy::denial_message` (object, field, rule, fix) and an HTTP code the API server passes on to
//!   the client: 422 `Invalid` when the object itself breaks a rule (what `kubectl` shows for schema errors
//!   too), 403 `Forbidden` when every violation is about the change (an immutable field, Promoted →
//!   Established without the acknowledgement annotation) while the new object on its own would be valid.
//! - [`MUTATE_PATH`]: `tprotect_policy::mutate` for Schedules (replication defaults), and for Namespaces
//!   created or updated by the Trident protect controller's identity, `tprotect_policy::namespace::enforce`
//!   with the `RESTORE_*` skip rules and the namespace mappings of the AppMirrorRelationships pointing at the
//!   namespace. Namespace requests by anyone else pass untouched. The identity is checked here, from
//!   `request.userInfo.username`, because API servers before 1.28 silently drop `matchConditions`.
//!
//! A body that is not an AdmissionReview v1 with a `request` gets HTTP 400 with a JSON `Status` body; one
//! above [`MAX_BODY_BYTES`] gets 413. A panic in a rule becomes HTTP 500 for that request only.

use std::{any::Any, collections::HashSet, sync::Arc, time::Instant};

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State, rejection::BytesRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::Engine;
use k8s_openapi::api::authentication::v1::UserInfo;
use kube::core::{
    GroupVersionKind, GroupVersionResource, Status,
    admission::{self, AdmissionResponse},
    response::StatusSummary,
};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use tower_http::catch_panic::CatchPanicLayer;
use tprotect_policy::{
    Operation, VALIDATED_KINDS,
    namespace::{NamespaceMeta, SkipRules},
};

use crate::{
    amr_cache::AmrCache,
    metrics::{Endpoint, EndpointLabels, KindLabels, Metrics, RejectLabels, RequestLabels},
};

/// Path of the validating webhook.
pub const VALIDATE_PATH: &str = "/validate";
/// Path of the mutating webhook.
pub const MUTATE_PATH: &str = "/mutate";
/// Largest request body accepted: an AdmissionReview carries the old and the new object, each up to the API
/// server's 3 MiB object limit (controller-runtime uses the same 7 MiB).
pub const MAX_BODY_BYTES: usize = 7 * 1024 * 1024;

/// How the JSON Patch bytes of a response are written.
///
/// The AdmissionReview `patch` field is Go `[]byte`, which the API documents (and Go's `encoding/json`
/// writes) as a base64 string. kube-rs serialises `AdmissionResponse::patch` (`Vec<u8>`) as an array of
/// numbers (kube-rs issue 1781), which Go's decoder happens to accept as well. The end-to-end tests run both
/// through a real API server; base64 is the default because it is the documented form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PatchEncoding {
    /// A base64 string (the documented form).
    #[default]
    Base64,
    /// An array of byte values, as kube-rs serialises `Vec<u8>`.
    ByteArray,
}

/// What the admission endpoints are configured with.
#[derive(Clone, Debug)]
pub struct AdmissionConfig {
    /// User names whose Namespace writes are held to the restore skip rules (the Trident protect controller).
    pub controller_usernames: Vec<String>,
    /// Trident protect's `RESTORE_*` namespace rules.
    pub skip_rules: SkipRules,
    pub patch_encoding: PatchEncoding,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            controller_usernames: vec![tprotect_api::TRIDENT_CONTROLLER_USERNAME.to_string()],
            skip_rules: SkipRules::none(),
            patch_encoding: PatchEncoding::default(),
        }
    }
}

/// The clock the rules see (DTSTART must not be in the future); replaceable in tests.
pub type Clock = Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>;

/// Shared state of the admission endpoints.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    controller_usernames: HashSet<String>,
    skip_rules: SkipRules,
    patch_encoding: PatchEncoding,
    amr_cache: AmrCache,
    metrics: Arc<Metrics>,
    clock: Clock,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("controller_usernames", &self.inner.controller_usernames)
            .field("skip_rules", &self.inner.skip_rules)
            .field("patch_encoding", &self.inner.patch_encoding)
            .field("amr_cache", &self.inner.amr_cache)
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(config: AdmissionConfig, amr_cache: AmrCache, metrics: Arc<Metrics>) -> Self {
        Self::with_clock(config, amr_cache, metrics, Arc::new(jiff::Timestamp::now))
    }

    pub fn with_clock(
        config: AdmissionConfig,
        amr_cache: AmrCache,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                controller_usernames: config.controller_usernames.into_iter().collect(),
                skip_rules: config.skip_rules,
                patch_encoding: config.patch_encoding,
                amr_cache,
                metrics,
                clock,
            }),
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }
}

/// The admission router: [`VALIDATE_PATH`] and [`MUTATE_PATH`], body limit, panic guard.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(VALIDATE_PATH, post(validate))
        .route(MUTATE_PATH, post(mutate))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

async fn validate(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    let response = state.handle(Endpoint::validate, body);
    state.inner.metrics.responses.inc();
    response
}

async fn mutate(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    let response = state.handle(Endpoint::mutate, body);
    state.inner.metrics.responses.inc();
    response
}

/// A JSON error body shaped like a Kubernetes `Status`.
pub fn error_response(code: StatusCode, message: &str) -> Response {
    let reason = match code {
        StatusCode::BAD_REQUEST => "BadRequest",
        StatusCode::PAYLOAD_TOO_LARGE => "RequestEntityTooLarge",
        StatusCode::INTERNAL_SERVER_ERROR => "InternalError",
        _ => "Unknown",
    };
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = detail, "admission handler panicked");
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error while reviewing the request",
    )
}

/// The parts of an AdmissionReview v1 request the endpoints read, parsed in one pass straight from the body.
///
/// Not kube's `AdmissionReview<DynamicObject>`: its flattened `TypeMeta` makes serde buffer the whole
/// document before reading it, and `DynamicObject` parses metadata (managed fields included) into typed
/// structs that the rules, which read plain JSON, would only serialise back. The fields and their
/// requirements are kube's (`uid`, `kind`, `resource`, `operation`, `userInfo` required, the rest optional).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IncomingReview {
    api_version: String,
    kind: String,
    #[serde(default)]
    request: Option<ReviewRequest>,
}

/// An AdmissionReview v1 `request`, as the handlers use it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewRequest {
    pub uid: String,
    pub kind: GroupVersionKind,
    #[serde(rename = "resource")]
    _resource: GroupVersionResource,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    pub operation: admission::Operation,
    pub user_info: UserInfo,
    /// The new object as the rules read it: plain JSON without `metadata.managedFields` and `status`.
    #[serde(default, deserialize_with = "rule_object")]
    pub object: Option<Value>,
    #[serde(default, deserialize_with = "rule_object")]
    pub old_object: Option<Value>,
}

/// An object as the rules read it: the JSON the API server sent without `metadata.managedFields` (and the
/// other server-managed metadata in [`SKIPPED_METADATA`]) and the top-level `status`, which no rule reads (the rules judge what a user writes: metadata and spec) and which
/// are much of a stored object's size. They are skipped while parsing, never allocated.
struct RuleObject(Value);

fn rule_object<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Ok(Option::<RuleObject>::deserialize(deserializer)?.map(|object| object.0))
}

impl<'de> Deserialize<'de> for RuleObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_map(PrunedMap { metadata: false })
            .map(RuleObject)
    }
}

/// Metadata fields the server manages and no rule reads, skipped while parsing: `managedFields` (most of a
/// stored object's metadata) and the bookkeeping the API server writes. Parsing is most of the cost of an
/// allowed review; each field is allocated twice per review (object and old object). A rule that needs one of
/// these must take it off this list.
const SKIPPED_METADATA: [&str; 6] = [
    "managedFields",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "selfLink",
];

/// The object's top level (skipping `status`) or its metadata (skipping [`SKIPPED_METADATA`]).
#[derive(Clone, Copy)]
struct PrunedMap {
    metadata: bool,
}

impl<'de> serde::de::DeserializeSeed<'de> for PrunedMap {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for PrunedMap {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        let skipped: &[&str] = if self.metadata {
            &SKIPPED_METADATA
        } else {
            &["status"]
        };
        while let Some(key) = map.next_key::<String>()? {
            if skipped.contains(&key.as_str()) {
                map.next_value::<serde::de::IgnoredAny>()?;
                continue;
            }
            let value = if !self.metadata && key == "metadata" {
                map.next_value_seed(Nullable(PrunedMap { metadata: true }))?
            } else {
                map.next_value()?
            };
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// `null`, or what the inner seed reads.
struct Nullable(PrunedMap);

impl<'de> serde::de::DeserializeSeed<'de> for Nullable {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Nullable {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object or null")
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_map(self.0)
    }
}

/// Reads an AdmissionReview v1 request; the error is the HTTP 400 message.
pub fn parse_review(body: &[u8]) -> Result<ReviewRequest, String> {
    // One UTF-8 check of the whole body, then parsing from `str`: parsing from bytes checks every string
    // on its own, which cost a tenth of an allowed review (many short strings).
    let body = std::str::from_utf8(body)
        .map_err(|e| format!("body is not an AdmissionReview: not UTF-8 JSON ({e})"))?;
    let review: IncomingReview =
        serde_json::from_str(body).map_err(|e| format!("body is not an AdmissionReview: {e}"))?;
    if review.api_version != admission::META_API_VERSION_V1 || review.kind != admission::META_KIND {
        return Err(format!(
            "expected apiVersion {:?} and kind {:?}, got apiVersion {:?} and kind {:?}",
            admission::META_API_VERSION_V1,
            admission::META_KIND,
            review.api_version,
            review.kind
        ));
    }
    let mut request = review
        .request
        .ok_or_else(|| "AdmissionReview has no request".to_string())?;
    for (field, object) in [
        ("object", &mut request.object),
        ("oldObject", &mut request.old_object),
    ] {
        if let Some(value) = object {
            normalise_object(value)
                .map_err(|e| format!("body is not an AdmissionReview: request.{field}{e}"))?;
        }
    }
    Ok(request)
}

/// Holds an object to what kube's `DynamicObject` accepted (a JSON object whose metadata, if any, is an
/// object with string name, namespace and generateName and string-to-string labels and annotations; a null
/// object is no object), and gives it an empty `metadata` when it has none, as `DynamicObject` did.
fn normalise_object(object: &mut Value) -> Result<(), String> {
    let Value::Object(map) = object else {
        return Err(": expected a JSON object".to_string());
    };
    let metadata = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    if metadata.is_null() {
        *metadata = Value::Object(Default::default());
    }
    let Value::Object(metadata) = metadata else {
        return Err(".metadata: expected a JSON object".to_string());
    };
    for key in ["name", "namespace", "generateName"] {
        if let Some(value) = metadata.get(key)
            && !(value.is_string() || value.is_null())
        {
            return Err(format!(".metadata.{key}: expected a string"));
        }
    }
    for key in ["labels", "annotations"] {
        match metadata.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Object(entries)) if entries.values().all(Value::is_string) => {}
            Some(_) => return Err(format!(".metadata.{key}: expected a map of strings")),
        }
    }
    Ok(())
}

fn policy_operation(operation: &admission::Operation) -> Operation {
    match operation {
        admission::Operation::Create => Operation::Create,
        admission::Operation::Update => Operation::Update,
        admission::Operation::Delete => Operation::Delete,
        admission::Operation::Connect => Operation::Connect,
    }
}

/// A bounded label value for a kind.
fn kind_label(group: &str, kind: &str) -> &'static str {
    if group.is_empty() && kind == "Namespace" {
        return "Namespace";
    }
    if group == tprotect_api::GROUP
        && let Some(known) = VALIDATED_KINDS.iter().find(|k| **k == kind)
    {
        return known;
    }
    "other"
}

fn namespace_meta(object: &Value, request_name: &str) -> NamespaceMeta {
    let metadata = object.get("metadata");
    let string_map = |key: &str| {
        metadata
            .and_then(|m| m.get(key))
            .and_then(Value::as_object)
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    };
    NamespaceMeta {
        name: metadata
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .map_or_else(|| request_name.to_string(), str::to_string),
        labels: string_map("labels"),
        annotations: string_map("annotations"),
    }
}

/// The response to `request` before any rule speaks: allowed, echoing the uid.
fn allowed_response(request: &ReviewRequest) -> AdmissionResponse {
    // `AdmissionResponse` is non-exhaustive; `invalid` is its only constructor without a kube request.
    let mut response = AdmissionResponse::invalid("");
    response.uid = request.uid.clone();
    response.allowed = true;
    response.result = Status::default();
    response
}

/// Logs which request was being reviewed if a rule panics (the panic guard then answers HTTP 500).
struct PanicContext<'a> {
    endpoint: Endpoint,
    request: &'a ReviewRequest,
}

impl Drop for PanicContext<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let request = self.request;
            tracing::error!(
                webhook = ?self.endpoint,
                uid = %request.uid,
                kind = %request.kind.kind,
                namespace = request.namespace.as_deref().unwrap_or(""),
                name = %request.name,
                "panicked while reviewing this request"
            );
        }
    }
}

/// Decrements the in-flight gauge however the handler ends.
struct InFlight<'a>(&'a Metrics);

impl<'a> InFlight<'a> {
    fn enter(metrics: &'a Metrics) -> Self {
        metrics.in_flight.inc();
        Self(metrics)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

impl AppState {
    fn reject(&self, code: StatusCode, message: &str) -> Response {
        let reason = if code == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "bad_request"
        };
        self.inner
            .metrics
            .rejected_requests
            .get_or_create(&RejectLabels { reason })
            .inc();
        tracing::warn!(
            status = code.as_u16(),
            message,
            "rejected a request that is not a usable AdmissionReview"
        );
        error_response(code, message)
    }

    fn handle(&self, endpoint: Endpoint, body: Result<Bytes, BytesRejection>) -> Response {
        let started = Instant::now();
        let body = match body {
            Ok(body) => body,
            Err(rejection) => return self.reject(rejection.status(), &rejection.body_text()),
        };
        let request = match parse_review(&body) {
            Ok(request) => request,
            Err(message) => return self.reject(StatusCode::BAD_REQUEST, &message),
        };
        let metrics = &self.inner.metrics;
        let _in_flight = InFlight::enter(metrics);
        let operation = policy_operation(&request.operation);
        // The request's log context is built only when something is logged (a denial, a patch, debug
        // level): formatting a span per request was a measurable part of the cost of an allowed review. A
        // panic in a rule still gets the context, from this guard.
        let _context = PanicContext {
            endpoint,
            request: &request,
        };

        let response = match endpoint {
            Endpoint::validate => self.review_validate(&request, operation),
            Endpoint::mutate => self.review_mutate(&request, operation),
        };
        let allowed = response.allowed;
        let patched = response.patch.is_some();
        let body = match encode_review(&response, self.inner.patch_encoding) {
            Ok(body) => body,
            Err(error) => {
                tracing::error!(%error, "failed to serialise the AdmissionReview response");
                return error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "failed to serialise the response",
                );
            }
        };

        let kind = kind_label(&request.kind.group, &request.kind.kind);
        metrics
            .requests
            .get_or_create(&RequestLabels {
                webhook: endpoint,
                kind,
                operation: operation.as_str(),
                allowed: if allowed { "true" } else { "false" },
            })
            .inc();
        if !allowed {
            metrics.denials.get_or_create(&KindLabels { kind }).inc();
        }
        if patched {
            metrics.patches.get_or_create(&KindLabels { kind }).inc();
        }
        let elapsed = started.elapsed();
        metrics
            .latency
            .get_or_create(&EndpointLabels { webhook: endpoint })
            .observe(elapsed.as_secs_f64());
        let logged = if allowed && !patched {
            tracing::enabled!(tracing::Level::DEBUG)
        } else {
            tracing::enabled!(tracing::Level::INFO)
        };
        if logged {
            let span = tracing::info_span!(
                "admission",
                webhook = ?endpoint,
                uid = %request.uid,
                kind = %request.kind.kind,
                namespace = request.namespace.as_deref().unwrap_or(""),
                name = %request.name,
                operation = operation.as_str(),
                allowed,
                patched,
                duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            );
            let _entered = span.enter();
            if !allowed {
                tracing::info!(message = %response.result.message, "denied");
            } else if patched {
                tracing::info!("patched");
            } else {
                tracing::debug!("allowed");
            }
        }
        (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }

    fn review_validate(&self, request: &ReviewRequest, operation: Operation) -> AdmissionResponse {
        let response = allowed_response(request);
        let kind = request.kind.kind.as_str();
        if request.kind.group != tprotect_api::GROUP || !VALIDATED_KINDS.contains(&kind) {
            return response;
        }
        // DELETE and CONNECT carry no new object: nothing to hold to the rules.
        let Some(object) = &request.object else {
            return response;
        };
        let now = (self.inner.clock)();
        let violations = tprotect_policy::validate(kind, operation, object, request.old_object.as_ref(), now);
        if violations.is_empty() {
            return response;
        }
        let name = if request.name.is_empty() {
            object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
        } else {
            request.name.as_str()
        };
        let message = tprotect_policy::denial_message(kind, name, &violations);
        // Violations the new object would not have on its own are about the change, not the object.
        let only_transitions = operation == Operation::Update && {
            let standalone = tprotect_policy::validate(kind, Operation::Create, object, None, now);
            violations.iter().all(|v| !standalone.contains(v))
        };
        let mut response = response.deny(message);
        response.result.status = Some(StatusSummary::Failure);
        if only_transitions {
            response.result.code = StatusCode::FORBIDDEN.as_u16();
            response.result.reason = "Forbidden".to_string();
        } else {
            response.result.code = StatusCode::UNPROCESSABLE_ENTITY.as_u16();
            response.result.reason = "Invalid".to_string();
        }
        response
    }

    fn review_mutate(&self, request: &ReviewRequest, operation: Operation) -> AdmissionResponse {
        let response = allowed_response(request);
        let Some(object) = &request.object else {
            return response;
        };
        let patch = match (request.kind.group.as_str(), request.kind.kind.as_str()) {
            (tprotect_api::GROUP, kind) => tprotect_policy::mutate(kind, operation, object),
            ("", "Namespace") if matches!(operation, Operation::Create | Operation::Update) => {
                let username = request.user_info.username.as_deref().unwrap_or_default();
                if !self.inner.controller_usernames.contains(username) {
                    return response;
                }
                let new = namespace_meta(object, &request.name);
                let old = request
                    .old_object
                    .as_ref()
                    .map(|old| namespace_meta(old, &request.name));
                let cache = &self.inner.amr_cache;
                let synced = cache.is_synced();
                if !synced {
                    // Better the skip rules without the `name` mapping than nothing: they protect what the
                    // operator chose to keep.
                    self.inner.metrics.namespace_mutations_without_cache.inc();
                    tracing::warn!(
                        uid = %request.uid,
                        namespace = %new.name,
                        "AppMirrorRelationship cache not synced yet; namespace name mapping may be missing"
                    );
                }
                let mappings = cache.mappings_to(&new.name);
                let patch = tprotect_policy::namespace::enforce(
                    old.as_ref(),
                    &new,
                    &self.inner.skip_rules,
                    &mappings,
                );
                if !synced && !patch.0.is_empty() {
                    let mut response = with_patch(response, patch);
                    response.warnings = Some(vec![
                        "tprotect-webhook: AppMirrorRelationship cache not synced; the `name` label mapping may \
                         be missing"
                            .to_string(),
                    ]);
                    return response;
                }
                patch
            }
            _ => return response,
        };
        if patch.0.is_empty() {
            response
        } else {
            with_patch(response, patch)
        }
    }
}

fn with_patch(response: AdmissionResponse, patch: json_patch::Patch) -> AdmissionResponse {
    let fallback = response.clone();
    match response.with_patch(patch) {
        Ok(patched) => patched,
        Err(error) => {
            // A Patch of JSON values always serialises; if it ever did not, admit unchanged rather than fail.
            tracing::error!(%error, uid = %fallback.uid, "failed to serialise a JSON Patch; admitting unchanged");
            fallback
        }
    }
}

/// Patch bytes in the chosen encoding.
struct PatchBytes<'a>(&'a [u8], PatchEncoding);

impl Serialize for PatchBytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.1 {
            PatchEncoding::Base64 => {
                serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(self.0))
            }
            PatchEncoding::ByteArray => serializer.collect_seq(self.0),
        }
    }
}

/// The AdmissionReview v1 response as it goes on the wire (kube's `AdmissionResponse`, with the patch
/// encoding under our control).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireReview<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: WireResponse<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<PatchBytes<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<&'a [String]>,
    #[serde(skip_serializing_if = "std::collections::HashMap::is_empty")]
    audit_annotations: &'a std::collections::HashMap<String, String>,
}

/// Serialises `response` as an AdmissionReview v1.
pub fn encode_review(response: &AdmissionResponse, encoding: PatchEncoding) -> serde_json::Result<Vec<u8>> {
    let wire = WireReview {
        api_version: admission::META_API_VERSION_V1,
        kind: admission::META_KIND,
        response: WireResponse {
            uid: &response.uid,
            allowed: response.allowed,
            status: (!response.allowed).then_some(&response.result),
            patch: response.patch.as_deref().map(|bytes| PatchBytes(bytes, encoding)),
            patch_type: response.patch.as_ref().map(|_| "JSONPatch"),
            warnings: response.warnings.as_deref(),
            audit_annotations: &response.audit_annotations,
        },
    };
    serde_json::to_vec(&wire)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn review(object: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u",
                "kind": {"group": "protect.trident.netapp.io", "version": "v1", "kind": "Schedule"},
                "resource": {"group": "protect.trident.netapp.io", "version": "v1", "resource": "schedules"},
                "operation": "UPDATE",
                "userInfo": {"username": "alice"},
                "object": object,
                "oldObject": null,
            }
        }))
        .unwrap()
    }

    #[test]
    fn objects_reach_the_rules_without_managed_fields_and_status() {
        let request = parse_review(&review(json!({
            "apiVersion": "protect.trident.netapp.io/v1",
            "kind": "Schedule",
            "metadata": {
                "name": "s", "labels": {"a": "b"}, "managedFields": [{"manager": "kubectl"}],
                "uid": "3c0c6f1e-3f3c-4b8f-9d8e-0a0b0c0d0e0f", "resourceVersion": "1", "generation": 2,
                "creationTimestamp": "2025-01-07T10:00:00Z", "finalizers": ["kept"],
            },
            "spec": {"enabled": true, "status": "kept: only the top-level status is skipped"},
            "status": {"state": "Ready"},
        })))
        .unwrap();
        assert_eq!(
            request.object.unwrap(),
            json!({
                "apiVersion": "protect.trident.netapp.io/v1",
                "kind": "Schedule",
                "metadata": {"name": "s", "labels": {"a": "b"}, "finalizers": ["kept"]},
                "spec": {"enabled": true, "status": "kept: only the top-level status is skipped"},
            })
        );
        assert_eq!(request.old_object, None);
    }

    #[test]
    fn objects_are_held_to_what_kube_dynamic_object_accepted() {
        let request = parse_review(&review(json!({"spec": {}}))).unwrap();
        assert_eq!(request.object.unwrap(), json!({"metadata": {}, "spec": {}}));
        let request = parse_review(&review(json!({"metadata": null}))).unwrap();
        assert_eq!(request.object.unwrap(), json!({"metadata": {}}));
        for bad in [
            json!("a string"),
            json!([1]),
            json!({"metadata": 5}),
            json!({"metadata": {"name": 5}}),
            json!({"metadata": {"labels": {"a": 1}}}),
            json!({"metadata": {"annotations": "x"}}),
        ] {
            let error = parse_review(&review(bad.clone())).unwrap_err();
            assert!(error.contains("not an AdmissionReview"), "{bad}: {error}");
        }
    }
}
