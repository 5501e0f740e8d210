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
use kube::core::{
    DynamicObject, Status,
    admission::{self, AdmissionRequest, AdmissionResponse, AdmissionReview},
    response::StatusSummary,
};
use serde::{Serialize, Serializer};
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

/// Reads an AdmissionReview v1 request; the error is the HTTP 400 message.
pub fn parse_review(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, String> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(|e| format!("body is not an AdmissionReview: {e}"))?;
    if review.types.api_version != admission::META_API_VERSION_V1 || review.types.kind != admission::META_KIND
    {
        return Err(format!(
            "expected apiVersion {:?} and kind {:?}, got apiVersion {:?} and kind {:?}",
            admission::META_API_VERSION_V1,
            admission::META_KIND,
            review.types.api_version,
            review.types.kind
        ));
    }
    review
        .try_into()
        .map_err(|_| "AdmissionReview has no request".to_string())
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

/// The object as the rules see it: plain JSON.
fn to_value(object: &DynamicObject) -> Value {
    // Serialising a value that was just deserialised from JSON cannot fail; Null makes every rule report
    // the missing fields rather than panicking if it ever did.
    serde_json::to_value(object).unwrap_or(Value::Null)
}

fn namespace_meta(object: &DynamicObject, request_name: &str) -> NamespaceMeta {
    let name = object
        .metadata
        .name
        .clone()
        .unwrap_or_else(|| request_name.to_string());
    NamespaceMeta {
        name,
        labels: object
            .metadata
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        annotations: object
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
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
        let span = tracing::info_span!(
            "admission",
            webhook = ?endpoint,
            uid = %request.uid,
            kind = %request.kind.kind,
            namespace = request.namespace.as_deref().unwrap_or(""),
            name = %request.name,
            operation = operation.as_str(),
            allowed = tracing::field::Empty,
            patched = tracing::field::Empty,
            duration_us = tracing::field::Empty,
        );
        let _entered = span.enter();

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
        span.record("allowed", allowed);
        span.record("patched", patched);
        span.record(
            "duration_us",
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        );
        if !allowed {
            tracing::info!(message = %response.result.message, "denied");
        } else if patched {
            tracing::info!("patched");
        } else {
            tracing::debug!("allowed");
        }
        (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }

    fn review_validate(
        &self,
        request: &AdmissionRequest<DynamicObject>,
        operation: Operation,
    ) -> AdmissionResponse {
        let response = AdmissionResponse::from(request);
        let kind = request.kind.kind.as_str();
        if request.kind.group != tprotect_api::GROUP || !VALIDATED_KINDS.contains(&kind) {
            return response;
        }
        // DELETE and CONNECT carry no new object: nothing to hold to the rules.
        let Some(object) = &request.object else {
            return response;
        };
        let object = to_value(object);
        let old_object = request.old_object.as_ref().map(to_value);
        let now = (self.inner.clock)();
        let violations = tprotect_policy::validate(kind, operation, &object, old_object.as_ref(), now);
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
            let standalone = tprotect_policy::validate(kind, Operation::Create, &object, None, now);
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

    fn review_mutate(
        &self,
        request: &AdmissionRequest<DynamicObject>,
        operation: Operation,
    ) -> AdmissionResponse {
        let response = AdmissionResponse::from(request);
        let Some(object) = &request.object else {
            return response;
        };
        let patch = match (request.kind.group.as_str(), request.kind.kind.as_str()) {
            (tprotect_api::GROUP, kind) => tprotect_policy::mutate(kind, operation, &to_value(object)),
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
            tracing::error!(%error, "failed to serialise a JSON Patch; admitting unchanged");
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
