//! # tprotect-ontap-standin — a STAND-IN for an ONTAP cluster, for tests only. Never shipped.
//!
//! An HTTPS server on `127.0.0.1:<random port>` that answers the few ONTAP REST endpoints `kubectl tprotect
//! snapmirror` uses, the way ONTAP documents them, so the client and the command can be tested end to end over
//! real TLS without a storage cluster. It is not ONTAP: it knows nothing of volumes or snapshots, and its
//! relationships, jobs and transfers are scripted by a [`Scenario`].
//!
//! Endpoints (everything else answers 404 in ONTAP's error format, and is recorded):
//! - `GET  /api/snapmirror/relationships?destination.path=SVM:VOL&fields=...`
//! - `POST /api/snapmirror/relationships/{uuid}/transfers` → `201 Created` + `Location`, or `202 Accepted` +
//!   `{"job": {...}}`; while another transfer runs on the relationship, ONTAP's refusal (code `13303844`, "Another
//!   transfer is in progress"), as an error answer or as a failed job ([`BusyRefusal`]); or a transfer started
//!   and its answer lost ([`PostAnswer::DropConnectionAfterStart`], [`PostAnswer::NoAnswerAfterStart`])
//! - `GET  /api/snapmirror/relationships/{uuid}/transfers/{transfer_uuid}`
//! - `GET  /api/cluster/jobs/{uuid}`
//!
//! Every request needs HTTP basic auth with the scenario's username and password (401 otherwise). The TLS
//! certificate is made at start by a throw-away CA ([`OntapStandin::ca_pem`]), so a client must be given that CA
//! (or skip verification) — exactly the situation of a real cluster with a self-signed certificate.
//!
//! Jobs and transfers advance by being looked at: each GET moves them one step (`queued` → `running` /
//! `transferring` → the scripted outcome after [`Scenario::polls_to_finish`] GETs), so tests need no clocks. A
//! running transfer also advances with each lookup of its relationship: ONTAP documents both as ways to watch
//! it, and a client waiting for a transfer it did not start ([`Scenario::other_transfer`]: ONTAP's own
//! schedule, or an earlier run's) only knows it from the relationship.
//!
//! Where ONTAP's documentation leaves a detail open — the HTTP status of a refused POST, whether the refusal
//! comes as an error answer or as a failed job — the stand-in plays each plausible variant, chosen by the
//! scenario, so the client is tested against all of them rather than against one guess.
//! Every request is recorded ([`OntapStandin::requests`]) so tests can assert what was — and was not — sent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use base64::Engine;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum StandinError {
    #[error("cannot make the stand-in's certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("cannot configure TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
}

/// One relationship the stand-in knows.
#[derive(Debug, Clone)]
pub struct RelationshipFixture {
    pub uuid: String,
    pub source_path: String,
    pub destination_path: String,
    pub state: String,
    pub healthy: bool,
    /// `(code, message)` pairs, as ONTAP lists them in `unhealthy_reason`.
    pub unhealthy_reasons: Vec<(String, String)>,
    pub lag_time: String,
    /// The transfer ONTAP shows before any update: `(uuid, state)`.
    pub last_transfer: Option<(String, String)>,
}

impl RelationshipFixture {
    /// A healthy, `snapmirrored` relationship `svm_src:vol_src` → `svm_dst:vol_dst`.
    pub fn healthy(source_path: &str, destination_path: &str) -> Self {
        Self {
            uuid: uuid::Uuid::new_v4().to_string(),
            source_path: source_path.to_owned(),
            destination_path: destination_path.to_owned(),
            state: "snapmirrored".into(),
            healthy: true,
            unhealthy_reasons: Vec::new(),
            lag_time: "PT8H35M42S".into(),
            last_transfer: Some((uuid::Uuid::new_v4().to_string(), "success".into())),
        }
    }
}

/// How the transfer POST is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostAnswer {
    /// `201 Created` with `Location: /api/snapmirror/relationships/{uuid}/transfers/{transfer_uuid}`.
    Created,
    /// `202 Accepted` with `{"job": {"uuid": ..., "_links": ...}}`; the job starts the transfer.
    AcceptedWithJob,
    /// An ONTAP error answer, e.g. `503` (to show the POST is not retried) or `400` with a documented code.
    Error {
        status: u16,
        code: String,
        message: String,
    },
    /// The transfer is started, then the connection is dropped before the answer is complete: a network failure
    /// after the request arrived. The client cannot know whether anything started.
    DropConnectionAfterStart,
    /// The transfer is started and no answer ever comes; the client's own timeout ends the wait.
    NoAnswerAfterStart,
}

/// A transfer on the relationship that no request to the stand-in started: ONTAP's own schedule, or the run
/// before a rerun.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherTransfer {
    pub starts: OtherTransferStart,
    /// Looks at it (lookups of its relationship, GETs of the transfer) until it ends in success, the first
    /// look showing `queued`, the ones before the last `transferring` (at least 1).
    pub looks_to_finish: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtherTransferStart {
    /// Already running when the stand-in starts: a lookup before the POST sees it.
    Running,
    /// Started by the schedule as the first POST arrives: the lookup before the POST saw the relationship idle,
    /// and the POST is refused.
    AtFirstPost,
}

/// How the transfer POST is refused while another transfer runs on the relationship. ONTAP documents the code
/// (`13303844`, update failed) but neither the HTTP status nor whether the refusal comes at once or from the
/// job, so each is a scenario choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusyRefusal {
    /// An error answer `{"error": {"code": "13303844", "message": ...}}` with this HTTP status.
    Error { status: u16, message: String },
    /// `202 Accepted` with a job that fails with code `13303844` and this message.
    FailedJob { message: String },
}

/// ONTAP's message when an update meets a running transfer.
pub const ANOTHER_TRANSFER_IN_PROGRESS: &str = "Another transfer is in progress.";

/// How a job ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Success,
    Failure { code: i64, message: String },
}

/// How a transfer ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferOutcome {
    Success,
    Failed { code: i64, message: String },
    Aborted,
    HardAborted,
}

/// The script the stand-in follows. Start from one of the named constructors and adjust fields.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub username: String,
    pub password: String,
    pub relationships: Vec<RelationshipFixture>,
    pub post_answer: PostAnswer,
    pub job_outcome: JobOutcome,
    pub transfer_outcome: TransferOutcome,
    /// GETs of a job or transfer before it reaches its outcome (at least 1).
    pub polls_to_finish: u32,
    /// Another transfer on the (first) relationship, not started by a POST here.
    pub other_transfer: Option<OtherTransfer>,
    /// How a POST is refused while any transfer of the relationship is `queued` or `transferring`.
    pub busy_refusal: BusyRefusal,
    /// Relationship lookups after a job succeeded before the relationship shows the new transfer.
    pub transfer_reveal_delay: u32,
    /// Delay before every answer ("slow responses").
    pub response_delay: Duration,
    /// The first N GETs answer `503 Service Unavailable` (retry tests).
    pub transient_get_failures: u32,
    /// Answer every request `401`, whatever the credentials.
    pub reject_all_credentials: bool,
    /// Answer every request with a `302` to another path on this server.
    pub redirect_everything: bool,
    /// Names in the server certificate (IP addresses become IP SANs).
    pub certificate_names: Vec<String>,
}

/// The source and destination paths of the one relationship in the named scenarios.
pub const SOURCE_PATH: &str = "svm_src:vol_src";
pub const DESTINATION_PATH: &str = "svm_dst:vol_dst";

impl Scenario {
    fn base(post_answer: PostAnswer) -> Self {
        Self {
            username: "standin-admin".into(),
            password: "standin-password".into(),
            relationships: vec![RelationshipFixture::healthy(SOURCE_PATH, DESTINATION_PATH)],
            post_answer,
            job_outcome: JobOutcome::Success,
            transfer_outcome: TransferOutcome::Success,
            polls_to_finish: 2,
            other_transfer: None,
            busy_refusal: BusyRefusal::Error {
                status: 400,
                message: ANOTHER_TRANSFER_IN_PROGRESS.into(),
            },
            transfer_reveal_delay: 1,
            response_delay: Duration::ZERO,
            transient_get_failures: 0,
            reject_all_credentials: false,
            redirect_everything: false,
            certificate_names: vec!["127.0.0.1".into(), "localhost".into(), "::1".into()],
        }
    }

    /// The POST answers `201 Created` and the transfer succeeds.
    pub fn created() -> Self {
        Self::base(PostAnswer::Created)
    }

    /// The POST answers `202 Accepted` with a job; the job and then the transfer succeed.
    pub fn accepted_job() -> Self {
        Self::base(PostAnswer::AcceptedWithJob)
    }

    /// `202` + job, and the job fails with `13303844` (update failed).
    pub fn job_failure() -> Self {
        Self {
            job_outcome: JobOutcome::Failure {
                code: 13303844,
                message: "Update failed: the source volume is offline.".into(),
            },
            ..Self::accepted_job()
        }
    }

    /// `201`, and the transfer fails with an `error_info`.
    pub fn transfer_failure() -> Self {
        Self {
            transfer_outcome: TransferOutcome::Failed {
                code: 13303812,
                message: "Transfer failed: destination volume is out of space.".into(),
            },
            ..Self::created()
        }
    }

    /// No relationship has the destination path.
    pub fn relationship_missing() -> Self {
        Self {
            relationships: Vec::new(),
            ..Self::created()
        }
    }

    /// The relationship is `broken_off` (and, as on ONTAP, unhealthy).
    pub fn broken_off() -> Self {
        let mut scenario = Self::created();
        let relationship = &mut scenario.relationships[0];
        relationship.state = "broken_off".into();
        relationship.healthy = false;
        relationship.unhealthy_reasons = vec![("6619706".into(), "The relationship is broken off.".into())];
        scenario
    }

    /// `snapmirrored` but unhealthy with two reasons.
    pub fn unhealthy() -> Self {
        let mut scenario = Self::created();
        let relationship = &mut scenario.relationships[0];
        relationship.healthy = false;
        relationship.unhealthy_reasons = vec![
            ("6619546".into(), "Transfer failed.".into()),
            ("13303868".into(), "Destination volume is not online.".into()),
        ];
        scenario
    }

    /// Every request answers `401`.
    pub fn unauthorized() -> Self {
        Self {
            reject_all_credentials: true,
            ..Self::created()
        }
    }

    /// Every answer is delayed by `delay`.
    pub fn slow(delay: Duration) -> Self {
        Self {
            response_delay: delay,
            ..Self::created()
        }
    }

    /// The first `count` GETs answer `503 Service Unavailable`; then as [`Scenario::created`].
    pub fn transient_failures(count: u32) -> Self {
        Self {
            transient_get_failures: count,
            ..Self::created()
        }
    }

    /// Every request answers `302` to another path on this server.
    pub fn redirecting() -> Self {
        Self {
            redirect_everything: true,
            ..Self::created()
        }
    }

    /// Healthy and `snapmirrored`, but the last transfer is 26 hours old (`lag_time` `P1DT2H`).
    pub fn lagging() -> Self {
        let mut scenario = Self::created();
        scenario.relationships[0].lag_time = "P1DT2H".into();
        scenario
    }

    /// A transfer is already running when the stand-in starts (four looks to finish); a POST meanwhile is
    /// refused with an error answer (400, `13303844`).
    pub fn busy() -> Self {
        Self {
            other_transfer: Some(OtherTransfer {
                starts: OtherTransferStart::Running,
                looks_to_finish: 4,
            }),
            ..Self::created()
        }
    }

    /// The relationship looks idle, but ONTAP's schedule starts a transfer as the first POST arrives, which is
    /// refused (the race no look before the POST can rule out).
    pub fn busy_at_post() -> Self {
        Self {
            other_transfer: Some(OtherTransfer {
                starts: OtherTransferStart::AtFirstPost,
                looks_to_finish: 4,
            }),
            ..Self::created()
        }
    }

    /// The POST starts a transfer, and the connection drops before its answer arrives.
    pub fn lost_post_answer() -> Self {
        Self::base(PostAnswer::DropConnectionAfterStart)
    }

    /// The POST starts a transfer and is never answered.
    pub fn post_never_answered() -> Self {
        Self::base(PostAnswer::NoAnswerAfterStart)
    }
}

/// One request as the stand-in received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub authorization_present: bool,
    pub body: String,
}

#[derive(Debug)]
struct JobRecord {
    relationship_uuid: String,
    polls: u32,
    transfer_started: bool,
    /// The job refuses the update because another transfer runs: it fails with `13303844` and this message.
    refused_busy: Option<String>,
}

#[derive(Debug)]
struct TransferRecord {
    relationship_uuid: String,
    polls: u32,
    /// For a transfer of [`Scenario::other_transfer`]: its looks to finish. It always succeeds.
    other_looks_to_finish: Option<u32>,
}

#[derive(Debug)]
struct RelationshipRecord {
    fixture: RelationshipFixture,
    /// Lookups left before a job's new transfer shows (see [`Scenario::transfer_reveal_delay`]).
    hidden_transfer: Option<(String, u32)>,
}

#[derive(Debug)]
struct Inner {
    scenario: Scenario,
    relationships: Vec<RelationshipRecord>,
    jobs: HashMap<String, JobRecord>,
    transfers: HashMap<String, TransferRecord>,
    requests: Vec<RecordedRequest>,
    gets_seen: u32,
    /// POSTs refused because a transfer was running.
    refused_busy_posts: u32,
    /// [`OtherTransferStart::AtFirstPost`] already happened.
    other_transfer_started: bool,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Inner> {
    // A test that panicked while holding the lock must not hide its own failure behind a poison error.
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running stand-in. Dropping it stops the server.
#[derive(Debug)]
pub struct OntapStandin {
    addr: SocketAddr,
    ca_pem: String,
    shared: Shared,
    handle: Handle<SocketAddr>,
    username: String,
    password: String,
}

impl OntapStandin {
    /// Makes a CA and a server certificate, and serves HTTPS on `127.0.0.1:0` in the current tokio runtime.
    pub async fn start(scenario: Scenario) -> Result<Self, StandinError> {
        let (ca_pem, tls) = make_tls(&scenario.certificate_names)?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let username = scenario.username.clone();
        let password = scenario.password.clone();
        let shared: Shared = Arc::new(Mutex::new(Inner {
            relationships: scenario
                .relationships
                .iter()
                .cloned()
                .map(|fixture| RelationshipRecord {
                    fixture,
                    hidden_transfer: None,
                })
                .collect(),
            scenario,
            jobs: HashMap::new(),
            transfers: HashMap::new(),
            requests: Vec::new(),
            gets_seen: 0,
            refused_busy_posts: 0,
            other_transfer_started: false,
        }));
        {
            let mut inner = lock(&shared);
            if let Some(other) = inner.scenario.other_transfer.clone()
                && other.starts == OtherTransferStart::Running
            {
                start_other_transfer(&mut inner, other.looks_to_finish);
            }
        }
        let handle = Handle::new();
        let server = axum_server::from_tcp_rustls(listener, RustlsConfig::from_config(Arc::new(tls)))?
            .handle(handle.clone());
        let app = router(shared.clone());
        tokio::spawn(async move {
            if let Err(err) = server.serve(app.into_make_service()).await {
                tracing::error!(%err, "ONTAP stand-in stopped");
            }
        });
        Ok(Self {
            addr,
            ca_pem,
            shared,
            handle,
            username,
            password,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`, what `--hostname` takes.
    pub fn hostname(&self) -> String {
        self.addr.to_string()
    }

    /// The PEM of the CA that signed the server certificate (for `--ca-file`).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// The UUID of the first scripted relationship.
    pub fn relationship_uuid(&self) -> Option<String> {
        lock(&self.shared)
            .relationships
            .first()
            .map(|r| r.fixture.uuid.clone())
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared).requests.clone()
    }

    /// Requests with `method` whose path starts with `path_prefix`.
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        lock(&self.shared)
            .requests
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(path_prefix))
            .count()
    }

    /// POSTs refused because a transfer was running on the relationship.
    pub fn refused_busy_posts(&self) -> u32 {
        lock(&self.shared).refused_busy_posts
    }

    /// The UUID and state of the first relationship's current (or last) transfer.
    pub fn current_transfer(&self) -> Option<(String, String)> {
        lock(&self.shared)
            .relationships
            .first()
            .and_then(|r| r.fixture.last_transfer.clone())
    }

    /// Requests that would change a relationship itself (create, PATCH for resync/resume/quiesce, DELETE): a
    /// SnapMirror update must never send any.
    pub fn relationship_writes(&self) -> Vec<RecordedRequest> {
        lock(&self.shared)
            .requests
            .iter()
            .filter(|r| r.path.starts_with("/api/snapmirror/relationships"))
            .filter(|r| r.method != "GET" && !(r.method == "POST" && r.path.ends_with("/transfers")))
            .cloned()
            .collect()
    }
}

impl Drop for OntapStandin {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// A throw-away CA and a server certificate for `names`, signed by it.
fn make_tls(names: &[String]) -> Result<(String, rustls::ServerConfig), StandinError> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "tprotect ONTAP stand-in test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut server_params = CertificateParams::new(names.to_vec())?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "ontap-standin");
    let server_key = KeyPair::generate()?;
    let server_cert = server_params.signed_by(&server_key, &issuer)?;

    let chain = vec![CertificateDer::from(server_cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
    Ok((ca_cert.pem(), config))
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/api/snapmirror/relationships", get(list_relationships))
        .route(
            "/api/snapmirror/relationships/{relationship}/transfers",
            post(start_transfer),
        )
        .route(
            "/api/snapmirror/relationships/{relationship}/transfers/{transfer}",
            get(get_transfer),
        )
        .route("/api/cluster/jobs/{job}", get(get_job))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), record_and_gate))
        .with_state(shared)
}

fn ontap_error(status: StatusCode, code: &str, message: &str, target: Option<&str>) -> Response {
    let mut error = json!({"code": code, "message": message});
    if let Some(target) = target {
        error["target"] = json!(target);
    }
    (
        status,
        [(header::CONTENT_TYPE, "application/hal+json")],
        json!({ "error": error }).to_string(),
    )
        .into_response()
}

fn hal_json(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/hal+json")],
        body.to_string(),
    )
        .into_response()
}

async fn not_found() -> Response {
    ontap_error(StatusCode::NOT_FOUND, "3", "API not found", None)
}

fn basic_auth_matches(headers: &HeaderMap, username: &str, password: &str) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .is_some_and(|decoded| decoded == format!("{username}:{password}"))
}

/// Records the request, then applies the scenario's delay, redirects, transient failures and authentication.
async fn record_and_gate(State(shared): State<Shared>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let (delay, gate) = {
        let mut inner = lock(&shared);
        inner.requests.push(RecordedRequest {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            authorization_present: parts.headers.contains_key(header::AUTHORIZATION),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let scenario = &inner.scenario;
        let gate = if scenario.redirect_everything {
            let mut response = StatusCode::FOUND.into_response();
            response
                .headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/api/redirected-here"));
            Some(response)
        } else if scenario.reject_all_credentials
            || !basic_auth_matches(&parts.headers, &scenario.username, &scenario.password)
        {
            let mut response = ontap_error(StatusCode::UNAUTHORIZED, "6", "Authentication failed.", None);
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"ONTAP\""),
            );
            Some(response)
        } else {
            None
        };
        let gate = match gate {
            Some(response) => Some(response),
            None if parts.method == Method::GET => {
                inner.gets_seen += 1;
                (inner.gets_seen <= inner.scenario.transient_get_failures).then(|| {
                    ontap_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "8",
                        "The API is temporarily unavailable.",
                        None,
                    )
                })
            }
            None => None,
        };
        (inner.scenario.response_delay, gate)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(response) = gate {
        return response;
    }
    next.run(Request::from_parts(parts, Body::from(body))).await
}

fn relationship_json(record: &RelationshipRecord) -> Value {
    let fixture = &record.fixture;
    let mut value = json!({
        "uuid": fixture.uuid,
        "source": {"path": fixture.source_path, "svm": {"name": fixture.source_path.split(':').next()}},
        "destination": {"path": fixture.destination_path, "svm": {"name": fixture.destination_path.split(':').next()}},
        "state": fixture.state,
        "healthy": fixture.healthy,
        "lag_time": fixture.lag_time,
        "_links": {"self": {"href": format!("/api/snapmirror/relationships/{}", fixture.uuid)}},
    });
    if !fixture.healthy {
        value["unhealthy_reason"] = fixture
            .unhealthy_reasons
            .iter()
            .map(|(code, message)| json!({"code": code, "message": message, "arguments": []}))
            .collect();
    }
    if let Some((uuid, state)) = &fixture.last_transfer {
        value["transfer"] = json!({"uuid": uuid, "state": state});
    }
    value
}

/// ONTAP returns only `uuid`, the paths and links unless `fields` asks for more; unknown fields are ignored.
fn select_fields(full: Value, fields: Option<&String>) -> Value {
    let requested: Vec<&str> = match fields {
        None => vec!["uuid", "source", "destination", "_links"],
        Some(list) if list.split(',').any(|f| f.trim() == "*") => return full,
        Some(list) => {
            let mut top: Vec<&str> = list
                .split(',')
                .map(|f| f.trim().split('.').next().unwrap_or(""))
                .collect();
            top.extend(["uuid", "_links"]);
            top
        }
    };
    match full {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(key, _)| requested.contains(&key.as_str()))
                .collect(),
        ),
        other => other,
    }
}

async fn list_relationships(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = lock(&shared);
    let destination = query.get("destination.path");
    let mut records = Vec::new();
    for index in 0..inner.relationships.len() {
        if destination.is_some_and(|d| *d != inner.relationships[index].fixture.destination_path) {
            continue;
        }
        // Looking at the relationship is one way to watch its transfer (ONTAP documents both).
        if let Some((uuid, state)) = inner.relationships[index].fixture.last_transfer.clone()
            && is_running(&state)
            && inner.transfers.contains_key(&uuid)
        {
            advance_transfer(&mut inner, &uuid);
        }
        let record = &mut inner.relationships[index];
        if let Some((uuid, remaining)) = record.hidden_transfer.take() {
            if remaining == 0 {
                record.fixture.last_transfer = Some((uuid, "queued".into()));
            } else {
                record.hidden_transfer = Some((uuid, remaining - 1));
            }
        }
        records.push(select_fields(relationship_json(record), query.get("fields")));
    }
    let count = records.len();
    hal_json(
        StatusCode::OK,
        json!({"records": records, "num_records": count, "_links": {"self": {"href": "/api/snapmirror/relationships"}}}),
    )
}

fn is_running(transfer_state: &str) -> bool {
    matches!(transfer_state, "queued" | "transferring")
}

/// Keeps `record` under a new UUID (as ONTAP names its jobs and transfers) and returns the UUID.
fn insert_new<R>(records: &mut HashMap<String, R>, record: R) -> String {
    let uuid = uuid::Uuid::new_v4().to_string();
    records.insert(uuid.clone(), record);
    uuid
}

fn new_transfer(inner: &mut Inner, relationship_uuid: &str, other_looks_to_finish: Option<u32>) -> String {
    let record = TransferRecord {
        relationship_uuid: relationship_uuid.to_owned(),
        polls: 0,
        other_looks_to_finish,
    };
    insert_new(&mut inner.transfers, record)
}

/// Starts [`Scenario::other_transfer`] on the first relationship.
fn start_other_transfer(inner: &mut Inner, looks_to_finish: u32) {
    inner.other_transfer_started = true;
    let Some(relationship_uuid) = inner.relationships.first().map(|r| r.fixture.uuid.clone()) else {
        return;
    };
    let transfer_uuid = new_transfer(inner, &relationship_uuid, Some(looks_to_finish.max(1)));
    set_relationship_transfer(inner, &relationship_uuid, &transfer_uuid, "queued");
}

/// What the POST handler answers, decided under the lock and sent after it is released.
enum PostReply {
    Now(Response),
    /// Drop the connection mid-answer.
    Drop,
    /// Never answer.
    Hang,
}

async fn start_transfer(State(shared): State<Shared>, Path(relationship_uuid): Path<String>) -> Response {
    let reply = decide_post(&mut lock(&shared), &relationship_uuid);
    match reply {
        PostReply::Now(response) => response,
        PostReply::Drop => {
            // A 201 head, then a body that fails: hyper aborts the connection, and the client never gets a
            // complete answer.
            let body = Body::from_stream(futures::stream::once(async {
                Err::<axum::body::Bytes, _>(std::io::Error::other("stand-in drops the connection"))
            }));
            (StatusCode::CREATED, body).into_response()
        }
        PostReply::Hang => {
            std::future::pending::<()>().await;
            unreachable!("pending never completes")
        }
    }
}

fn decide_post(inner: &mut Inner, relationship_uuid: &str) -> PostReply {
    let Some(record) = inner
        .relationships
        .iter()
        .find(|r| r.fixture.uuid == relationship_uuid)
    else {
        return PostReply::Now(ontap_error(
            StatusCode::NOT_FOUND,
            "4",
            "entry doesn't exist",
            Some("uuid"),
        ));
    };
    if record.fixture.state != "snapmirrored" {
        return PostReply::Now(ontap_error(
            StatusCode::BAD_REQUEST,
            "13303844",
            &format!("Update failed: the relationship is {}.", record.fixture.state),
            None,
        ));
    }
    if let Some(other) = inner.scenario.other_transfer.clone()
        && other.starts == OtherTransferStart::AtFirstPost
        && !inner.other_transfer_started
    {
        start_other_transfer(inner, other.looks_to_finish);
    }
    let running = inner
        .relationships
        .iter()
        .find(|r| r.fixture.uuid == relationship_uuid)
        .and_then(|r| r.fixture.last_transfer.as_ref())
        .is_some_and(|(_, state)| is_running(state));
    if running {
        inner.refused_busy_posts += 1;
        return PostReply::Now(match inner.scenario.busy_refusal.clone() {
            BusyRefusal::Error { status, message } => ontap_error(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                "13303844",
                &message,
                None,
            ),
            BusyRefusal::FailedJob { message } => accept_as_job(inner, relationship_uuid, Some(message)),
        });
    }
    match inner.scenario.post_answer.clone() {
        PostAnswer::Error {
            status,
            code,
            message,
        } => PostReply::Now(ontap_error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &code,
            &message,
            None,
        )),
        PostAnswer::Created => {
            let transfer_uuid = new_transfer(inner, relationship_uuid, None);
            set_relationship_transfer(inner, relationship_uuid, &transfer_uuid, "queued");
            let location =
                format!("/api/snapmirror/relationships/{relationship_uuid}/transfers/{transfer_uuid}");
            let mut response = StatusCode::CREATED.into_response();
            response
                .headers_mut()
                .insert(header::LOCATION, HeaderValue::from_str(&location).expect("ASCII"));
            PostReply::Now(response)
        }
        PostAnswer::AcceptedWithJob => PostReply::Now(accept_as_job(inner, relationship_uuid, None)),
        PostAnswer::DropConnectionAfterStart | PostAnswer::NoAnswerAfterStart => {
            let transfer_uuid = new_transfer(inner, relationship_uuid, None);
            set_relationship_transfer(inner, relationship_uuid, &transfer_uuid, "queued");
            if inner.scenario.post_answer == PostAnswer::NoAnswerAfterStart {
                PostReply::Hang
            } else {
                PostReply::Drop
            }
        }
    }
}

/// `202 Accepted` with a new job; with `refused_busy`, the job fails instead of starting a transfer.
fn accept_as_job(inner: &mut Inner, relationship_uuid: &str, refused_busy: Option<String>) -> Response {
    let record = JobRecord {
        relationship_uuid: relationship_uuid.to_owned(),
        polls: 0,
        transfer_started: false,
        refused_busy,
    };
    let job_uuid = insert_new(&mut inner.jobs, record);
    hal_json(
        StatusCode::ACCEPTED,
        json!({"job": {"uuid": job_uuid, "_links": {"self": {"href": format!("/api/cluster/jobs/{job_uuid}")}}}}),
    )
}

fn set_relationship_transfer(inner: &mut Inner, relationship_uuid: &str, transfer_uuid: &str, state: &str) {
    if let Some(record) = inner
        .relationships
        .iter_mut()
        .find(|r| r.fixture.uuid == relationship_uuid)
    {
        record.fixture.last_transfer = Some((transfer_uuid.to_owned(), state.to_owned()));
    }
}

async fn get_job(State(shared): State<Shared>, Path(job_uuid): Path<String>) -> Response {
    let mut inner = lock(&shared);
    let polls_to_finish = inner.scenario.polls_to_finish.max(1);
    let reveal_delay = inner.scenario.transfer_reveal_delay;
    let scripted = inner.scenario.job_outcome.clone();
    let Some(job) = inner.jobs.get_mut(&job_uuid) else {
        return ontap_error(StatusCode::NOT_FOUND, "4", "entry doesn't exist", Some("uuid"));
    };
    let outcome = match &job.refused_busy {
        Some(message) => JobOutcome::Failure {
            code: 13303844,
            message: message.clone(),
        },
        None => scripted,
    };
    job.polls += 1;
    let finished = job.polls >= polls_to_finish;
    let relationship_uuid = job.relationship_uuid.clone();
    let mut body = json!({
        "uuid": job_uuid,
        "description": format!("POST /api/snapmirror/relationships/{relationship_uuid}/transfers"),
        "state": if job.polls == 1 { "queued" } else { "running" },
        "message": "Queued",
        "code": 0,
        "start_time": "2026-11-22T00:00:00+00:00",
        "_links": {"self": {"href": format!("/api/cluster/jobs/{job_uuid}")}},
    });
    // The job starts the transfer when it succeeds, once.
    let mut starts_transfer = false;
    if finished {
        body["end_time"] = json!("2026-11-22T00:00:05+00:00");
        match outcome {
            JobOutcome::Success => {
                body["state"] = json!("success");
                body["message"] = json!("success");
                starts_transfer = !job.transfer_started;
                job.transfer_started = true;
            }
            JobOutcome::Failure { code, message } => {
                body["state"] = json!("failure");
                body["message"] = json!(message);
                body["code"] = json!(code);
                body["error"] = json!({"code": code.to_string(), "message": message});
            }
        }
    }
    if starts_transfer {
        let transfer_uuid = new_transfer(&mut inner, &relationship_uuid, None);
        if let Some(record) = inner
            .relationships
            .iter_mut()
            .find(|r| r.fixture.uuid == relationship_uuid)
        {
            record.hidden_transfer = Some((transfer_uuid, reveal_delay));
        }
    }
    hal_json(StatusCode::OK, body)
}

async fn get_transfer(
    State(shared): State<Shared>,
    Path((relationship_uuid, transfer_uuid)): Path<(String, String)>,
) -> Response {
    let mut inner = lock(&shared);
    if inner
        .transfers
        .get(&transfer_uuid)
        .is_none_or(|t| t.relationship_uuid != relationship_uuid)
    {
        return ontap_error(StatusCode::NOT_FOUND, "4", "entry doesn't exist", Some("uuid"));
    }
    let body = advance_transfer(&mut inner, &transfer_uuid);
    hal_json(StatusCode::OK, body)
}

/// One look at a transfer: it moves one step (the first look shows `queued`, looks before the last
/// `transferring`, the last its outcome) unless it already ended, and the relationship shows its state.
fn advance_transfer(inner: &mut Inner, transfer_uuid: &str) -> Value {
    let polls_to_finish = inner.scenario.polls_to_finish.max(1);
    let scripted = inner.scenario.transfer_outcome.clone();
    let transfer = inner
        .transfers
        .get_mut(transfer_uuid)
        .expect("the caller checked the transfer exists");
    let (to_finish, outcome) = match transfer.other_looks_to_finish {
        // Another client's transfer is not this scenario's to fail.
        Some(looks) => (looks, TransferOutcome::Success),
        None => (polls_to_finish, scripted),
    };
    // A finished transfer stays as it ended.
    transfer.polls = transfer.polls.saturating_add(1).min(to_finish);
    let polls = transfer.polls;
    let relationship_uuid = transfer.relationship_uuid.clone();
    let mut body = json!({
        "uuid": transfer_uuid,
        "relationship": {"uuid": relationship_uuid},
        "bytes_transferred": 0,
        "_links": {"self": {"href": format!("/api/snapmirror/relationships/{relationship_uuid}/transfers/{transfer_uuid}")}},
    });
    let state = if polls < to_finish {
        if polls == 1 { "queued" } else { "transferring" }
    } else {
        body["end_time"] = json!("2026-11-22T00:01:00+00:00");
        match &outcome {
            TransferOutcome::Success => {
                body["bytes_transferred"] = json!(1_048_576);
                "success"
            }
            TransferOutcome::Failed { code, message } => {
                body["error_info"] = json!({"code": code, "message": message});
                "failed"
            }
            TransferOutcome::Aborted => "aborted",
            TransferOutcome::HardAborted => "hard_aborted",
        }
    };
    if state == "transferring" {
        body["bytes_transferred"] = json!(524_288);
    }
    body["state"] = json!(state);
    set_relationship_transfer(inner, &relationship_uuid, transfer_uuid, state);
    if state == "success"
        && let Some(record) = inner
            .relationships
            .iter_mut()
            .find(|r| r.fixture.uuid == relationship_uuid)
    {
        record.fixture.lag_time = "PT1M2S".into();
    }
    body
}

#[cfg(test)]
mod tests;
