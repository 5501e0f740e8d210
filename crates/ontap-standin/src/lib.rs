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
//!   `{"job": {...}}`
//! - `GET  /api/snapmirror/relationships/{uuid}/transfers/{transfer_uuid}`
//! - `GET  /api/cluster/jobs/{uuid}`
//!
//! Every request needs HTTP basic auth with the scenario's username and password (401 otherwise). The TLS
//! certificate is made at start by a throw-away CA ([`OntapStandin::ca_pem`]), so a client must be given that CA
//! (or skip verification) — exactly the situation of a real cluster with a self-signed certificate.
//!
//! Jobs and transfers advance by being looked at: each GET moves them one step (`queued` → `running` /
//! `transferring` → the scripted outcome after [`Scenario::polls_to_finish`] GETs), so tests need no clocks.
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
}

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
}

#[derive(Debug)]
struct TransferRecord {
    relationship_uuid: String,
    polls: u32,
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
        }));
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
    for record in inner.relationships.iter_mut() {
        if destination.is_some_and(|d| *d != record.fixture.destination_path) {
            continue;
        }
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

fn new_transfer(inner: &mut Inner, relationship_uuid: &str) -> String {
    let transfer_uuid = uuid::Uuid::new_v4().to_string();
    inner.transfers.insert(
        transfer_uuid.clone(),
        TransferRecord {
            relationship_uuid: relationship_uuid.to_owned(),
            polls: 0,
        },
    );
    transfer_uuid
}

async fn start_transfer(State(shared): State<Shared>, Path(relationship_uuid): Path<String>) -> Response {
    let mut inner = lock(&shared);
    let Some(record) = inner
        .relationships
        .iter()
        .find(|r| r.fixture.uuid == relationship_uuid)
    else {
        return ontap_error(StatusCode::NOT_FOUND, "4", "entry doesn't exist", Some("uuid"));
    };
    if record.fixture.state != "snapmirrored" {
        return ontap_error(
            StatusCode::BAD_REQUEST,
            "13303844",
            &format!("Update failed: the relationship is {}.", record.fixture.state),
            None,
        );
    }
    match inner.scenario.post_answer.clone() {
        PostAnswer::Error {
            status,
            code,
            message,
        } => ontap_error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &code,
            &message,
            None,
        ),
        PostAnswer::Created => {
            let transfer_uuid = new_transfer(&mut inner, &relationship_uuid);
            set_relationship_transfer(&mut inner, &relationship_uuid, &transfer_uuid, "queued");
            let location =
                format!("/api/snapmirror/relationships/{relationship_uuid}/transfers/{transfer_uuid}");
            let mut response = StatusCode::CREATED.into_response();
            response
                .headers_mut()
                .insert(header::LOCATION, HeaderValue::from_str(&location).expect("ASCII"));
            response
        }
        PostAnswer::AcceptedWithJob => {
            let job_uuid = uuid::Uuid::new_v4().to_string();
            inner.jobs.insert(
                job_uuid.clone(),
                JobRecord {
                    relationship_uuid: relationship_uuid.clone(),
                    polls: 0,
                    transfer_started: false,
                },
            );
            hal_json(
                StatusCode::ACCEPTED,
                json!({"job": {"uuid": job_uuid, "_links": {"self": {"href": format!("/api/cluster/jobs/{job_uuid}")}}}}),
            )
        }
    }
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
    let outcome = inner.scenario.job_outcome.clone();
    let reveal_delay = inner.scenario.transfer_reveal_delay;
    let Some(job) = inner.jobs.get_mut(&job_uuid) else {
        return ontap_error(StatusCode::NOT_FOUND, "4", "entry doesn't exist", Some("uuid"));
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
        let transfer_uuid = new_transfer(&mut inner, &relationship_uuid);
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
    let polls_to_finish = inner.scenario.polls_to_finish.max(1);
    let outcome = inner.scenario.transfer_outcome.clone();
    let Some(transfer) = inner
        .transfers
        .get_mut(&transfer_uuid)
        .filter(|t| t.relationship_uuid == relationship_uuid)
    else {
        return ontap_error(StatusCode::NOT_FOUND, "4", "entry doesn't exist", Some("uuid"));
    };
    transfer.polls += 1;
    let polls = transfer.polls;
    let mut body = json!({
        "uuid": transfer_uuid,
        "relationship": {"uuid": relationship_uuid},
        "bytes_transferred": 0,
        "_links": {"self": {"href": format!("/api/snapmirror/relationships/{relationship_uuid}/transfers/{transfer_uuid}")}},
    });
    let state = if polls < polls_to_finish {
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
    set_relationship_transfer(&mut inner, &relationship_uuid, &transfer_uuid, state);
    if state == "success"
        && let Some(record) = inner
            .relationships
            .iter_mut()
            .find(|r| r.fixture.uuid == relationship_uuid)
    {
        record.fixture.lag_time = "PT1M2S".into();
    }
    hal_json(StatusCode::OK, body)
}

#[cfg(test)]
mod tests;
