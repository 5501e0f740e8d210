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
//! A body that is not an AdmissionReview v1 with a `request` gets HTTP 400 with a JSON `Status` body saying
//! what is wrong; one above [`MAX_BODY_BYTES`] (or with more than [`MAX_REVIEW_VALUES`] values in what the
//! rules read) gets 413 naming the limit. A panic in a rule becomes HTTP 500 for that request only.
//!
//! The review is read borrowing from the body ([`parse_review`]): only what the webhook and the rules read is
//! built, as [`Json`] whose strings are slices of the body. A quick one-pass reading (`fast`) builds it
//! where it is sure; the serde reading, its reference, decides everything else and words every refusal.

use std::{
    any::Any, borrow::Cow, cell::Cell, collections::HashSet, sync::Arc, sync::OnceLock, time::Instant,
};

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State, rejection::BytesRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::Engine;
use kube::core::{Status, admission, response::StatusSummary};
use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor},
};
use tower_http::catch_panic::CatchPanicLayer;
use tprotect_policy::{
    Operation, VALIDATED_KINDS,
    json::{BorrowedKey, Json},
    namespace::{NamespaceMeta, SkipRules},
};

mod fast;

use crate::{
    amr_cache::AmrCache,
    limits::{
        self, CHARGE_PER_VALUE, MAX_ANSWER_MESSAGE_BYTES, MAX_REVIEW_VALUES, MemoryBudget, VALUES_COVERED,
    },
    metrics::{Endpoint, EndpointLabels, KindLabels, Metrics, RejectLabels, RequestLabels},
};

pub use crate::limits::MAX_BODY_BYTES;

/// Path of the validating webhook.
pub const VALIDATE_PATH: &str = "/validate";
/// Path of the mutating webhook.
pub const MUTATE_PATH: &str = "/mutate";

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
    /// The server's request memory, once a server serves this state: a large review reserves more of it.
    memory_budget: OnceLock<Arc<MemoryBudget>>,
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
                memory_budget: OnceLock::new(),
            }),
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Large reviews reserve from `budget` what the rules may report about them (the first budget given
    /// stays).
    pub fn use_memory_budget(&self, budget: Arc<MemoryBudget>) {
        let _ = self.inner.memory_budget.set(budget);
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
        StatusCode::REQUEST_TIMEOUT => "Timeout",
        StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
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

/// An AdmissionReview v1 as the endpoints read it: borrowed from the request body, typed where the webhook
/// reads a field itself, [`Json`] where the rules read it. Fields nobody reads are skipped by the parser,
/// never built: the review's `requestKind`, `options` and the like, and in each object everything but
/// `metadata` and `spec` (`status` above all) and in `metadata` everything but what a rule or the webhook
/// reads (`managedFields` above all). Unknown fields are never refused.
#[derive(Debug, Deserialize)]
#[serde(
    rename_all = "camelCase",
    expecting = "an AdmissionReview: a JSON object with apiVersion, kind and request"
)]
struct IncomingReview<'a> {
    #[serde(borrow)]
    api_version: Cow<'a, str>,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    request: Option<ReviewRequest<'a>>,
}

/// An AdmissionReview v1 `request`, as the handlers use it.
#[derive(Debug, Deserialize)]
#[serde(
    rename_all = "camelCase",
    expecting = "a request: a JSON object with uid, kind, resource, operation and userInfo"
)]
pub struct ReviewRequest<'a> {
    #[serde(borrow)]
    pub uid: Cow<'a, str>,
    #[serde(borrow)]
    pub kind: ReviewKind<'a>,
    #[serde(borrow, rename = "resource")]
    _resource: ReviewResource<'a>,
    #[serde(borrow, default)]
    pub name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub namespace: Option<Cow<'a, str>>,
    pub operation: ReviewOperation,
    #[serde(borrow)]
    pub user_info: ReviewUser<'a>,
    /// The new object as the rules read it: `metadata` (name, namespace, generateName, labels, annotations,
    /// deletionTimestamp) and `spec`.
    #[serde(borrow, default, deserialize_with = "rule_object")]
    pub object: Option<Json<'a>>,
    #[serde(borrow, default, deserialize_with = "rule_object")]
    pub old_object: Option<Json<'a>>,
}

/// `request.kind`: group, version and kind, all required.
#[derive(Debug, Deserialize)]
#[serde(expecting = "a kind: a JSON object with group, version and kind")]
pub struct ReviewKind<'a> {
    #[serde(borrow)]
    pub group: Cow<'a, str>,
    #[serde(borrow)]
    pub version: Cow<'a, str>,
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
}

/// `request.resource`: required with group, version and resource, as kube's types required it; not read.
#[derive(Debug, Deserialize)]
#[serde(expecting = "a resource: a JSON object with group, version and resource")]
struct ReviewResource<'a> {
    #[serde(borrow, rename = "group")]
    _group: Cow<'a, str>,
    #[serde(borrow, rename = "version")]
    _version: Cow<'a, str>,
    #[serde(borrow, rename = "resource")]
    _resource: Cow<'a, str>,
}

/// `request.operation`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum ReviewOperation {
    Create,
    Update,
    Delete,
    Connect,
}

/// `request.userInfo`: only the username is read (required object, as kube's types required it).
#[derive(Debug, Deserialize)]
#[serde(expecting = "userInfo: a JSON object")]
pub struct ReviewUser<'a> {
    #[serde(borrow, default)]
    pub username: Option<Cow<'a, str>>,
}

thread_local! {
    /// JSON values the review being parsed on this thread may still build (parsing is synchronous, so the
    /// count belongs to one review at a time).
    static VALUES_LEFT: Cell<usize> = const { Cell::new(0) };
}

/// Counts one value built; fails once the review holds more than [`MAX_REVIEW_VALUES`].
fn count_value<E: de::Error>() -> Result<(), E> {
    VALUES_LEFT.with(|left| match left.get() {
        0 => Err(E::custom(TOO_MANY_VALUES)),
        n => {
            left.set(n - 1);
            Ok(())
        }
    })
}

const TOO_MANY_VALUES: &str = "too many JSON values";

/// A string value, counted.
fn counted_string<'de, E: de::Error>(text: Cow<'de, str>) -> Result<Json<'de>, E> {
    count_value()?;
    Ok(Json::String(text))
}

fn rule_object<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Json<'de>>, D::Error> {
    deserializer.deserialize_option(ObjectSeed)
}

/// A visitor used as a seed, with what the deserializer is asked for (any value, an option, a string).
struct Seed<V> {
    ask: Ask,
    visitor: V,
}

#[derive(Clone, Copy)]
enum Ask {
    Any,
    Option,
    Str,
}

impl<V> Seed<V> {
    fn any(visitor: V) -> Self {
        Self {
            ask: Ask::Any,
            visitor,
        }
    }

    fn option(visitor: V) -> Self {
        Self {
            ask: Ask::Option,
            visitor,
        }
    }

    fn str(visitor: V) -> Self {
        Self {
            ask: Ask::Str,
            visitor,
        }
    }
}

impl<'de, V: Visitor<'de>> DeserializeSeed<'de> for Seed<V> {
    type Value = V::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        match self.ask {
            Ask::Any => deserializer.deserialize_any(self.visitor),
            Ask::Option => deserializer.deserialize_option(self.visitor),
            Ask::Str => deserializer.deserialize_str(self.visitor),
        }
    }
}

/// An object as the rules read it: its `metadata` (some of it) and `spec`; `null` is no object.
struct ObjectSeed;

impl<'de> Visitor<'de> for ObjectSeed {
    type Value = Option<Json<'de>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a Kubernetes object (a JSON object) or null")
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        count_value()?;
        let mut entries = Vec::with_capacity(2);
        while let Some(key) = map.next_key_seed(BorrowedKey)? {
            match key.as_ref() {
                "metadata" => {
                    let metadata = map.next_value_seed(Seed::option(MetadataSeed))?;
                    entries.push((key, metadata));
                }
                "spec" => {
                    let spec = map.next_value_seed(Seed::any(Counted))?;
                    entries.push((key, spec));
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(Json::Object(entries)))
    }
}

/// The metadata fields a rule or the webhook reads, type-checked as kube's `ObjectMeta` would: strings for
/// names, maps of strings for labels and annotations (null for any of them is absent).
struct MetadataSeed;

impl<'de> Visitor<'de> for MetadataSeed {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("metadata: a JSON object")
    }

    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Json<'de>, D::Error> {
        deserializer.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        count_value()?;
        let mut entries = Vec::with_capacity(4);
        while let Some(key) = map.next_key_seed(BorrowedKey)? {
            let value = match key.as_ref() {
                "name" | "namespace" | "generateName" => {
                    map.next_value_seed(Seed::any(Text(FieldName(key.clone()))))?
                }
                "labels" | "annotations" => {
                    map.next_value_seed(Seed::any(StringMap(FieldName(key.clone()))))?
                }
                "deletionTimestamp" => map.next_value_seed(Seed::any(Counted))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            entries.push((key, value));
        }
        Ok(Json::Object(entries))
    }
}

/// The metadata field being read, for messages.
struct FieldName<'de>(Cow<'de, str>);

impl std::fmt::Display for FieldName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "metadata.{}", self.0)
    }
}

/// A string or null.
struct Text<'de>(FieldName<'de>);

impl<'de> Visitor<'de> for Text<'de> {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: a string", self.0)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json<'de>, E> {
        count_value()?;
        Ok(Json::Null)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Json<'de>, E> {
        counted_string(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json<'de>, E> {
        counted_string(Cow::Owned(v.to_string()))
    }
}

/// A map of strings (labels, annotations) or null.
struct StringMap<'de>(FieldName<'de>);

impl<'de> Visitor<'de> for StringMap<'de> {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: a map of strings", self.0)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        count_value()?;
        let mut entries = Vec::new();
        while let Some(key) = map.next_key_seed(BorrowedKey)? {
            let value = map.next_value_seed(Seed::str(StringValue(&self.0, &key)))?;
            entries.push((key, value));
        }
        Ok(Json::Object(entries))
    }
}

/// One label or annotation value: a string.
struct StringValue<'s, 'de>(&'s FieldName<'de>, &'s str);

impl<'de> Visitor<'de> for StringValue<'_, 'de> {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{:?}]: a string", self.0, self.1)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Json<'de>, E> {
        counted_string(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json<'de>, E> {
        counted_string(Cow::Owned(v.to_string()))
    }
}

/// Any JSON value, counted.
struct Counted;

impl<'de> Visitor<'de> for Counted {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json<'de>, E> {
        count_value()?;
        Ok(Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json<'de>, E> {
        count_value()?;
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json<'de>, E> {
        count_value()?;
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json<'de>, E> {
        count_value()?;
        Ok(serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Json<'de>, E> {
        counted_string(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json<'de>, E> {
        counted_string(Cow::Owned(v.to_string()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json<'de>, E> {
        count_value()?;
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        count_value()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Seed::any(Counted))? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        count_value()?;
        let mut entries = Vec::new();
        while let Some(key) = map.next_key_seed(BorrowedKey)? {
            let value = map.next_value_seed(Seed::any(Counted))?;
            entries.push((key, value));
        }
        Ok(Json::Object(entries))
    }
}

/// Why a body is not a review the webhook can answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not an AdmissionReview v1 with a request (HTTP 400); the message says what is wrong.
    Invalid(String),
    /// More than [`MAX_REVIEW_VALUES`] values in the fields the rules read (HTTP 413).
    TooManyValues,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(message) => f.write_str(message),
            Self::TooManyValues => write!(
                f,
                "the review's objects hold more than {MAX_REVIEW_VALUES} JSON values in metadata and spec, \
                 more than the webhook reviews (no object of the kinds it guards comes near it)"
            ),
        }
    }
}

/// A review read from its body, and how many JSON values its objects hold.
#[derive(Debug)]
pub struct ParsedReview<'a> {
    pub request: ReviewRequest<'a>,
    pub values: usize,
}

/// Reads an AdmissionReview v1 request, borrowing from `body`: the quick reading ([`fast`]) where it is
/// sure, the serde reading otherwise (which also words every refusal).
pub fn parse_review(body: &[u8]) -> Result<ParsedReview<'_>, ParseError> {
    // One UTF-8 check of the whole body, then parsing from `str`: parsing from bytes checks every string
    // on its own, which cost a tenth of an allowed review (many short strings).
    let body = std::str::from_utf8(body).map_err(|e| {
        ParseError::Invalid(format!(
            "body is not an AdmissionReview: it is not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    let (review, values) = match fast::read_review(body) {
        Some(read) => read,
        None => read_with_serde(body)?,
    };
    if review.api_version != admission::META_API_VERSION_V1 || review.kind != admission::META_KIND {
        return Err(ParseError::Invalid(format!(
            "expected apiVersion {:?} and kind {:?}, got apiVersion {:?} and kind {:?}",
            admission::META_API_VERSION_V1,
            admission::META_KIND,
            review.api_version,
            review.kind
        )));
    }
    let request = review.request.ok_or_else(|| {
        ParseError::Invalid("AdmissionReview has no request: the API server always sends one".to_string())
    })?;
    Ok(ParsedReview { request, values })
}

/// The serde reading of a review and how many values it built: the reference the quick reading is held
/// to, and the one that decides (and words the refusal) wherever the quick reading gives up.
fn read_with_serde(body: &str) -> Result<(IncomingReview<'_>, usize), ParseError> {
    VALUES_LEFT.with(|left| left.set(MAX_REVIEW_VALUES));
    let parsed = serde_json::from_str::<IncomingReview>(body);
    let values = MAX_REVIEW_VALUES - VALUES_LEFT.with(Cell::get);
    match parsed {
        Ok(review) => Ok((review, values)),
        Err(_) if values == MAX_REVIEW_VALUES => Err(ParseError::TooManyValues),
        Err(error) => Err(ParseError::Invalid(format!(
            "body is not an AdmissionReview: {}",
            user_terms(&error)
        ))),
    }
}

/// serde_json's message, with its Rust words in JSON's.
fn user_terms(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let text = text
        .replace("invalid type: map", "invalid type: a JSON object")
        .replace("invalid type: sequence", "invalid type: a JSON list")
        .replace("invalid type: unit value", "invalid type: null")
        .replace("invalid type: integer", "invalid type: the number")
        .replace("invalid type: floating point", "invalid type: the number")
        .replace("invalid type: string", "invalid type: the string")
        .replace("invalid type: boolean", "invalid type: the boolean")
        .replace("invalid length", "a JSON list of length")
        .replace("missing field", "missing the field")
        .replace("unknown variant", "unknown value");
    match error.classify() {
        serde_json::error::Category::Eof => format!("{text} (the body ends before the JSON does)"),
        _ => text,
    }
}

fn policy_operation(operation: ReviewOperation) -> Operation {
    match operation {
        ReviewOperation::Create => Operation::Create,
        ReviewOperation::Update => Operation::Update,
        ReviewOperation::Delete => Operation::Delete,
        ReviewOperation::Connect => Operation::Connect,
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

fn namespace_meta(object: &Json<'_>, request_name: &str) -> NamespaceMeta {
    let metadata = object.get("metadata");
    let string_map = |key: &str| {
        metadata
            .and_then(|m| m.get(key))
            .and_then(Json::entries)
            .map(|entries| {
                entries
                    .into_iter()
                    .filter_map(|(k, v)| Some((k.to_string(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    };
    NamespaceMeta {
        name: metadata
            .and_then(|m| m.get("name"))
            .and_then(Json::as_str)
            .map_or_else(|| request_name.to_string(), str::to_string),
        labels: string_map("labels"),
        annotations: string_map("annotations"),
    }
}

/// The answer to a review, before it is written.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub allowed: bool,
    /// Why not (a denial only).
    pub status: Option<Status>,
    /// A JSON Patch, serialised.
    pub patch: Option<Vec<u8>>,
    pub warnings: Option<Vec<String>>,
}

impl Answer {
    pub fn allow() -> Self {
        Self {
            allowed: true,
            ..Self::default()
        }
    }

    /// Allowed with `patch`, or unchanged if it is empty.
    fn patched(patch: json_patch::Patch) -> Self {
        if patch.0.is_empty() {
            return Self::allow();
        }
        match serde_json::to_vec(&patch) {
            Ok(bytes) => Self {
                patch: Some(bytes),
                ..Self::allow()
            },
            Err(error) => {
                // A Patch of JSON values always serialises; if it ever did not, admit unchanged rather than
                // fail.
                tracing::error!(%error, "failed to serialise a JSON Patch; admitting unchanged");
                Self::allow()
            }
        }
    }
}

/// Logs which request was being reviewed if a rule panics (the panic guard then answers HTTP 500).
struct PanicContext<'a> {
    endpoint: Endpoint,
    request: &'a ReviewRequest<'a>,
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
                object_name = %request.name,
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

/// A denial message of at most [`MAX_ANSWER_MESSAGE_BYTES`].
fn capped(mut message: String) -> String {
    if message.len() <= MAX_ANSWER_MESSAGE_BYTES {
        return message;
    }
    let mut end = MAX_ANSWER_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message.truncate(end);
    message.push_str(&format!(
        " … (message cut at {} KiB: fix the problems above and submit again to see the rest)",
        MAX_ANSWER_MESSAGE_BYTES / 1024
    ));
    message
}

impl AppState {
    fn reject(&self, code: StatusCode, reason: &'static str, message: &str) -> Response {
        self.inner
            .metrics
            .rejected_requests
            .get_or_create(&RejectLabels { reason })
            .inc();
        tracing::warn!(
            status = code.as_u16(),
            problem = message,
            "rejected a request that is not a usable AdmissionReview"
        );
        error_response(code, message)
    }

    fn handle(&self, endpoint: Endpoint, body: Result<Bytes, BytesRejection>) -> Response {
        let started = Instant::now();
        let body = match body {
            Ok(body) => body,
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return self.reject(StatusCode::PAYLOAD_TOO_LARGE, "too_large", &too_large_message());
            }
            Err(rejection) => return self.reject(rejection.status(), "bad_request", &rejection.body_text()),
        };
        let ParsedReview { request, values } = match parse_review(&body) {
            Ok(parsed) => parsed,
            Err(ParseError::TooManyValues) => {
                return self.reject(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    &ParseError::TooManyValues.to_string(),
                );
            }
            Err(error) => return self.reject(StatusCode::BAD_REQUEST, "bad_request", &error.to_string()),
        };
        // What the rules may report about a large object is reserved before they run (the body and an
        // ordinary review's values were reserved before the body was read).
        let _more_memory = match (self.inner.memory_budget.get(), values.checked_sub(VALUES_COVERED)) {
            (Some(budget), Some(extra)) if extra > 0 => match budget.try_reserve(extra * CHARGE_PER_VALUE) {
                Some(reservation) => Some(reservation),
                None => {
                    return self.reject(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "busy",
                        &format!(
                            "the webhook is busy: the requests in progress hold its whole request memory ({}); \
                             retry",
                            limits::mib(budget.total())
                        ),
                    );
                }
            },
            _ => None,
        };
        let metrics = &self.inner.metrics;
        let _in_flight = InFlight::enter(metrics);
        let operation = policy_operation(request.operation);
        // The request's log context is built only when something is logged (a denial, a patch, debug
        // level): formatting a span per request was a measurable part of the cost of an allowed review. A
        // panic in a rule still gets the context, from this guard.
        let _context = PanicContext {
            endpoint,
            request: &request,
        };

        let answer = match endpoint {
            Endpoint::validate => self.review_validate(&request, operation),
            Endpoint::mutate => self.review_mutate(&request, operation),
        };
        let allowed = answer.allowed;
        let patched = answer.patch.is_some();
        let body = match encode_review(&request.uid, &answer, self.inner.patch_encoding) {
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
                object_name = %request.name,
                operation = operation.as_str(),
                allowed,
                patched,
                duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            );
            let _entered = span.enter();
            if let Some(status) = answer.status.as_ref().filter(|_| !allowed) {
                tracing::info!(denial = %status.message, "denied");
            } else if patched {
                tracing::info!("patched");
            } else {
                tracing::debug!("allowed");
            }
        }
        (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }

    fn review_validate(&self, request: &ReviewRequest<'_>, operation: Operation) -> Answer {
        let kind = request.kind.kind.as_ref();
        if request.kind.group != tprotect_api::GROUP || !VALIDATED_KINDS.contains(&kind) {
            return Answer::allow();
        }
        // DELETE and CONNECT carry no new object: nothing to hold to the rules.
        let Some(object) = &request.object else {
            return Answer::allow();
        };
        let now = (self.inner.clock)();
        let violations =
            tprotect_policy::validate_json(kind, operation, object, request.old_object.as_ref(), now);
        if violations.is_empty() {
            return Answer::allow();
        }
        let name = if request.name.is_empty() {
            object
                .get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(Json::as_str)
                .unwrap_or_default()
        } else {
            request.name.as_ref()
        };
        let message = capped(tprotect_policy::denial_message(kind, name, &violations));
        // Violations the new object would not have on its own are about the change, not the object.
        let only_transitions = operation == Operation::Update && {
            let standalone = tprotect_policy::validate_json(kind, Operation::Create, object, None, now);
            violations.iter().all(|v| !standalone.contains(v))
        };
        let (code, reason) = if only_transitions {
            (StatusCode::FORBIDDEN, "Forbidden")
        } else {
            (StatusCode::UNPROCESSABLE_ENTITY, "Invalid")
        };
        let mut status = Status::failure(&message, reason).with_code(code.as_u16());
        status.status = Some(StatusSummary::Failure);
        Answer {
            allowed: false,
            status: Some(status),
            ..Answer::default()
        }
    }

    fn review_mutate(&self, request: &ReviewRequest<'_>, operation: Operation) -> Answer {
        let Some(object) = &request.object else {
            return Answer::allow();
        };
        match (request.kind.group.as_ref(), request.kind.kind.as_ref()) {
            (tprotect_api::GROUP, kind) => {
                Answer::patched(tprotect_policy::mutate_json(kind, operation, object))
            }
            ("", "Namespace") if matches!(operation, Operation::Create | Operation::Update) => {
                let username = request.user_info.username.as_deref().unwrap_or_default();
                if !self.inner.controller_usernames.contains(username) {
                    return Answer::allow();
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
                let unpatched = patch.0.is_empty();
                let mut answer = Answer::patched(patch);
                if !synced && !unpatched {
                    answer.warnings = Some(vec![
                        "tprotect-webhook: AppMirrorRelationship cache not synced; the `name` label mapping may \
                         be missing"
                            .to_string(),
                    ]);
                }
                answer
            }
            _ => Answer::allow(),
        }
    }
}

/// The 413 message: the limit, in MiB and bytes.
fn too_large_message() -> String {
    format!(
        "request body is larger than the webhook's limit of {} ({MAX_BODY_BYTES} bytes)",
        limits::mib(MAX_BODY_BYTES)
    )
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

/// The AdmissionReview v1 response as it goes on the wire.
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
}

/// Serialises `answer` to the review `uid` as an AdmissionReview v1.
pub fn encode_review(uid: &str, answer: &Answer, encoding: PatchEncoding) -> serde_json::Result<Vec<u8>> {
    let wire = WireReview {
        api_version: admission::META_API_VERSION_V1,
        kind: admission::META_KIND,
        response: WireResponse {
            uid,
            allowed: answer.allowed,
            status: answer.status.as_ref().filter(|_| !answer.allowed),
            patch: answer.patch.as_deref().map(|bytes| PatchBytes(bytes, encoding)),
            patch_type: answer.patch.as_ref().map(|_| "JSONPatch"),
            warnings: answer.warnings.as_deref(),
        },
    };
    let mut out = Vec::with_capacity(160);
    // A plain allow (the common answer) is written without the serializer, byte for byte what it writes
    // (a test holds the two equal).
    if wire.response.allowed
        && wire.response.status.is_none()
        && wire.response.patch.is_none()
        && wire.response.warnings.is_none()
    {
        out.extend_from_slice(
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"#,
        );
        if uid.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
            serde_json::to_writer(&mut out, uid)?;
        } else {
            out.push(b'"');
            out.extend_from_slice(uid.as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(br#","allowed":true}}"#);
        return Ok(out);
    }
    serde_json::to_writer(&mut out, &wire)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

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
    fn a_plain_allow_is_written_as_the_serializer_writes_it() {
        for uid in [
            "00000000-0000-4000-8000-000000000001",
            "",
            "quote\" back\\ tab\t \u{1} é",
        ] {
            let wire = WireReview {
                api_version: admission::META_API_VERSION_V1,
                kind: admission::META_KIND,
                response: WireResponse {
                    uid,
                    allowed: true,
                    status: None,
                    patch: None,
                    patch_type: None,
                    warnings: None,
                },
            };
            let written = encode_review(uid, &Answer::allow(), PatchEncoding::Base64).unwrap();
            assert_eq!(
                String::from_utf8(written).unwrap(),
                serde_json::to_string(&wire).unwrap()
            );
        }
    }

    #[test]
    fn objects_reach_the_rules_without_what_no_rule_reads() {
        let body = review(json!({
            "apiVersion": "protect.trident.netapp.io/v1",
            "kind": "Schedule",
            "metadata": {
                "name": "s", "labels": {"a": "b"}, "managedFields": [{"manager": "kubectl"}],
                "uid": "3c0c6f1e-3f3c-4b8f-9d8e-0a0b0c0d0e0f", "resourceVersion": "1", "generation": 2,
                "creationTimestamp": "2025-01-07T10:00:00Z", "finalizers": ["skipped"],
            },
            "spec": {"enabled": true, "status": "kept: only the top-level status is skipped", "unknown": [1]},
            "status": {"state": "Ready"},
        }));
        let parsed = parse_review(&body).unwrap();
        assert_eq!(
            parsed.request.object.unwrap().to_value(),
            json!({
                "metadata": {"name": "s", "labels": {"a": "b"}},
                "spec": {"enabled": true, "status": "kept: only the top-level status is skipped", "unknown": [1]},
            })
        );
        assert!(parsed.request.old_object.is_none());
        // object, metadata, name, labels, one label, spec, its three fields and the list's element.
        assert_eq!(parsed.values, 10);
    }

    #[test]
    fn strings_are_borrowed_from_the_body() {
        let body = review(json!({"metadata": {"name": "s"}, "spec": {"applicationRef": "app"}}));
        let parsed = parse_review(&body).unwrap();
        assert!(matches!(parsed.request.uid, Cow::Borrowed("u")));
        let spec = parsed.request.object.as_ref().unwrap().get("spec").unwrap();
        assert!(matches!(
            spec.get("applicationRef"),
            Some(Json::String(Cow::Borrowed("app")))
        ));
    }

    #[test]
    fn metadata_is_held_to_what_kube_object_meta_accepts() {
        for ok in [
            json!({"spec": {}}),
            json!({"metadata": null}),
            json!({"metadata": {"labels": null}}),
        ] {
            parse_review(&review(ok.clone())).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, says) in [
            (json!("a string"), "a Kubernetes object"),
            (json!([1]), "a Kubernetes object"),
            (json!({"metadata": 5}), "metadata: a JSON object"),
            (json!({"metadata": {"name": 5}}), "metadata.name: a string"),
            (
                json!({"metadata": {"labels": {"a": 1}}}),
                "metadata.labels[\"a\"]: a string",
            ),
            (
                json!({"metadata": {"annotations": "x"}}),
                "metadata.annotations: a map of strings",
            ),
        ] {
            let error = parse_review(&review(bad.clone())).unwrap_err().to_string();
            assert!(
                error.contains("not an AdmissionReview") && error.contains(says),
                "{bad}: {error}"
            );
            assert!(!error.contains("struct") && !error.contains("Review<"), "{error}");
        }
    }

    #[test]
    fn errors_name_the_problem_in_json_terms() {
        let error = parse_review(b"[]").unwrap_err().to_string();
        assert!(
            error.contains("a JSON list of length 0") && error.contains("an AdmissionReview: a JSON object"),
            "{error}"
        );
        let error = parse_review(b"{\"apiVersion\": ").unwrap_err().to_string();
        assert!(error.contains("ends before the JSON does"), "{error}");
    }

    #[test]
    fn a_review_with_too_many_values_is_refused() {
        let many: Vec<u8> = vec![0; MAX_REVIEW_VALUES];
        let error = parse_review(&review(json!({"spec": {"list": many}}))).unwrap_err();
        assert_eq!(error, ParseError::TooManyValues);
        assert!(error.to_string().contains(&MAX_REVIEW_VALUES.to_string()));
        // Skipped fields are not counted.
        let skipped: Vec<u8> = vec![0; MAX_REVIEW_VALUES * 2];
        parse_review(&review(json!({"status": {"list": skipped}, "spec": {}}))).unwrap();
    }

    #[test]
    fn long_denials_are_cut() {
        let message = capped("é".repeat(MAX_ANSWER_MESSAGE_BYTES));
        assert!(
            message.len() < MAX_ANSWER_MESSAGE_BYTES + 200,
            "{}",
            message.len()
        );
        assert!(message.ends_with("to see the rest)"));
        assert_eq!(capped("short".to_string()), "short");
    }
}
