//! The stand-in answers the way ONTAP documents, over real TLS. (Client behaviour is tested in tprotect-ontap.)

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use serde_json::Value;

use super::*;

fn client_trusting(ca_pem: Option<&str>) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca_pem) = ca_pem {
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

struct Session {
    standin: OntapStandin,
    http: reqwest::Client,
}

impl Session {
    async fn start(scenario: Scenario) -> Self {
        let standin = OntapStandin::start(scenario).await.unwrap();
        let http = client_trusting(Some(standin.ca_pem()));
        Self { standin, http }
    }

    /// A session whose transfers and jobs end at their first poll.
    async fn start_finishing_at_once(scenario: Scenario) -> Self {
        Self::start(Scenario {
            polls_to_finish: 1,
            ..scenario
        })
        .await
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("https://{}{path_and_query}", self.standin.hostname())
    }

    /// A GET of a job with the stand-in's user name and `password` (no credentials at all when `None`).
    async fn get_as(&self, password: Option<&str>) -> reqwest::Response {
        let request = self.http.get(self.url("/api/cluster/jobs/x"));
        let request = match password {
            Some(password) => request.basic_auth(self.standin.username(), Some(password)),
            None => request,
        };
        request.send().await.unwrap()
    }

    async fn get(&self, path_and_query: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(self.url(path_and_query))
            .basic_auth(self.standin.username(), Some(self.standin.password()))
            .send()
            .await
            .unwrap();
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post_transfer(&self) -> reqwest::Response {
        let uuid = self.standin.relationship_uuid().unwrap();
        self.http
            .post(self.url(&format!("/api/snapmirror/relationships/{uuid}/transfers")))
            .basic_auth(self.standin.username(), Some(self.standin.password()))
            .json(&json!({}))
            .send()
            .await
            .unwrap()
    }

    /// The job a `202 Accepted` answer names, as one GET shows it.
    async fn job_of(&self, accepted: reqwest::Response) -> Value {
        let body: Value = accepted.json().await.unwrap();
        let (_, job) = self
            .get(&format!(
                "/api/cluster/jobs/{}",
                body["job"]["uuid"].as_str().unwrap()
            ))
            .await;
        job
    }

    async fn lookup(&self) -> Value {
        let (status, body) = self
            .get(&format!(
                "/api/snapmirror/relationships?destination.path={DESTINATION_PATH}&fields=state,healthy,transfer.uuid"
            ))
            .await;
        assert_eq!(status, StatusCode::OK);
        body
    }
}

#[tokio::test]
async fn requests_without_valid_basic_auth_get_401_and_are_recorded() {
    let session = Session::start(Scenario::created()).await;
    let response = session.get_as(None).await;
    assert_eq!(response.status().as_u16(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    let response = session.get_as(Some("wrong")).await;
    assert_eq!(response.status().as_u16(), 401);
    let requests = session.standin.requests();
    assert_eq!(requests.len(), 2);
    assert!(!requests[0].authorization_present);
    assert!(requests[1].authorization_present);
}

#[tokio::test]
async fn lookup_filters_by_destination_and_honours_fields() {
    let session = Session::start(Scenario::unhealthy()).await;
    let body = session.lookup().await;
    assert_eq!(body["num_records"], 1);
    let record = &body["records"][0];
    assert_eq!(record["state"], "snapmirrored");
    assert_eq!(record["healthy"], false);
    assert!(record.get("lag_time").is_none(), "not asked for: {record}");
    assert!(
        record.get("unhealthy_reason").is_none(),
        "not asked for: {record}"
    );

    let (_, body) = session
        .get("/api/snapmirror/relationships?destination.path=svm_dst:other")
        .await;
    assert_eq!(body["num_records"], 0);

    let (_, body) = session.get("/api/snapmirror/relationships").await;
    let record = &body["records"][0];
    assert!(record.get("state").is_none(), "default fields only: {record}");
    assert_eq!(record["destination"]["path"], DESTINATION_PATH);
}

#[tokio::test]
async fn created_flow_answers_201_with_location_then_the_transfer_advances() {
    let session = Session::start(Scenario::created()).await;
    let response = session.post_transfer().await;
    assert_eq!(response.status().as_u16(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let (status, first) = session.get(&location).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["state"], "queued");
    let (_, second) = session.get(&location).await;
    assert_eq!(second["state"], "success");
    assert_eq!(second["bytes_transferred"], 1_048_576);
    let relationship = session.lookup().await;
    assert_eq!(relationship["records"][0]["transfer"]["uuid"], second["uuid"]);
}

#[tokio::test]
async fn accepted_flow_runs_a_job_that_starts_the_transfer() {
    let session = Session::start(Scenario::accepted_job()).await;
    let before = session.lookup().await["records"][0]["transfer"]["uuid"].clone();
    let response = session.post_transfer().await;
    assert_eq!(response.status().as_u16(), 202);
    let body: Value = response.json().await.unwrap();
    let job_uuid = body["job"]["uuid"].as_str().unwrap().to_owned();
    let (_, job) = session.get(&format!("/api/cluster/jobs/{job_uuid}")).await;
    assert_eq!(job["state"], "queued");
    let (_, job) = session.get(&format!("/api/cluster/jobs/{job_uuid}")).await;
    assert_eq!(job["state"], "success");
    // The new transfer shows after one more lookup (transfer_reveal_delay = 1).
    assert_eq!(session.lookup().await["records"][0]["transfer"]["uuid"], before);
    let after = session.lookup().await["records"][0]["transfer"]["uuid"].clone();
    assert_ne!(after, before);
    assert!(after.is_string());
}

#[tokio::test]
async fn job_failure_carries_message_and_code() {
    let session = Session::start_finishing_at_once(Scenario::job_failure()).await;
    let job = session.job_of(session.post_transfer().await).await;
    assert_eq!(job["state"], "failure");
    assert_eq!(job["code"], 13303844);
    assert!(job["message"].as_str().unwrap().contains("Update failed"));
}

#[tokio::test]
async fn transfer_failure_carries_error_info() {
    let session = Session::start_finishing_at_once(Scenario::transfer_failure()).await;
    let response = session.post_transfer().await;
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let (_, transfer) = session.get(&location).await;
    assert_eq!(transfer["state"], "failed");
    assert_eq!(transfer["error_info"]["code"], 13303812);
}

#[tokio::test]
async fn transient_failures_redirects_and_unknown_paths() {
    let session = Session::start(Scenario::transient_failures(1)).await;
    let (status, body) = session.get("/api/cluster/jobs/nope").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["error"]["message"].is_string());
    let (status, body) = session.get("/api/cluster/jobs/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "4");
    let (status, _) = session.get("/api/storage/volumes").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let session = Session::start(Scenario::redirecting()).await;
    let response = session.get_as(None).await;
    assert_eq!(response.status().as_u16(), 302);
}

#[tokio::test]
async fn relationship_writes_lists_creates_and_patches_but_not_transfers() {
    let session = Session::start(Scenario::created()).await;
    session.post_transfer().await;
    assert!(session.standin.relationship_writes().is_empty());
    let uuid = session.standin.relationship_uuid().unwrap();
    session
        .http
        .patch(session.url(&format!("/api/snapmirror/relationships/{uuid}")))
        .basic_auth(session.standin.username(), Some(session.standin.password()))
        .json(&json!({"state": "snapmirrored"}))
        .send()
        .await
        .unwrap();
    let writes = session.standin.relationship_writes();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].method, "PATCH");
    assert!(writes[0].body.contains("snapmirrored"));
}

#[tokio::test]
async fn the_certificate_is_trusted_only_with_the_ca() {
    let standin = OntapStandin::start(Scenario::created()).await.unwrap();
    let error = client_trusting(None)
        .get(format!("https://{}/api/cluster/jobs/x", standin.hostname()))
        .send()
        .await;
    assert!(
        error.is_err(),
        "a client without the stand-in's CA must refuse it"
    );
    assert!(standin.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    let response = client_trusting(Some(standin.ca_pem()))
        .get(format!(
            "https://localhost:{}/api/cluster/jobs/x",
            standin.addr().port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        401,
        "the name localhost is in the certificate"
    );
}

#[tokio::test]
async fn slow_scenario_delays_answers() {
    let delay = Duration::from_millis(300);
    let session = Session::start(Scenario::slow(delay)).await;
    let started = std::time::Instant::now();
    session.get("/api/cluster/jobs/x").await;
    // A lower bound only: the machine may be slow, never fast beyond the delay.
    assert!(started.elapsed() >= delay);
}

impl Session {
    async fn post_transfer_result(&self) -> Result<reqwest::Response, reqwest::Error> {
        let uuid = self.standin.relationship_uuid().unwrap();
        self.http
            .post(self.url(&format!("/api/snapmirror/relationships/{uuid}/transfers")))
            .basic_auth(self.standin.username(), Some(self.standin.password()))
            .timeout(Duration::from_millis(500))
            .json(&json!({}))
            .send()
            .await
    }

    async fn transfer_state(&self) -> Value {
        self.lookup().await["records"][0]["transfer"]["state"].clone()
    }
}

async fn refusal(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn a_running_transfer_refuses_posts_until_looks_finish_it() {
    let session = Session::start(Scenario::busy()).await;
    // Four looks: queued, transferring, transferring, success.
    assert_eq!(session.transfer_state().await, "queued");
    let (status, body) = refusal(session.post_transfer().await).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "13303844");
    assert_eq!(body["error"]["message"], ANOTHER_TRANSFER_IN_PROGRESS);
    assert_eq!(session.transfer_state().await, "transferring");
    assert_eq!(session.transfer_state().await, "transferring");
    assert_eq!(session.transfer_state().await, "success");
    assert_eq!(
        session.transfer_state().await,
        "success",
        "a finished transfer stays finished"
    );
    let relationship = &session.lookup().await["records"][0];
    assert_eq!(relationship["transfer"]["state"], "success");
    assert_eq!(session.post_transfer().await.status().as_u16(), 201);
    assert_eq!(session.standin.refused_busy_posts(), 1);
}

#[tokio::test]
async fn a_transfer_started_by_the_schedule_at_the_post_is_refused_with_it() {
    let session = Session::start(Scenario::busy_at_post()).await;
    assert_eq!(session.transfer_state().await, "success", "idle before the POST");
    let (status, body) = refusal(session.post_transfer().await).await;
    assert_eq!((status, body["error"]["code"].clone()), (400, json!("13303844")));
    assert_eq!(session.transfer_state().await, "queued");
    assert_eq!(session.standin.refused_busy_posts(), 1);
}

#[tokio::test]
async fn the_busy_refusal_can_come_from_the_job_with_any_status() {
    let session = Session::start(Scenario {
        busy_refusal: BusyRefusal::FailedJob {
            message: ANOTHER_TRANSFER_IN_PROGRESS.into(),
        },
        polls_to_finish: 1,
        ..Scenario::busy()
    })
    .await;
    let response = session.post_transfer().await;
    assert_eq!(response.status().as_u16(), 202);
    let job = session.job_of(response).await;
    assert_eq!(job["state"], "failure");
    assert_eq!(job["code"], 13303844);
    assert_eq!(job["message"], ANOTHER_TRANSFER_IN_PROGRESS);

    let session = Session::start(Scenario {
        busy_refusal: BusyRefusal::Error {
            status: 409,
            message: ANOTHER_TRANSFER_IN_PROGRESS.into(),
        },
        ..Scenario::busy()
    })
    .await;
    assert_eq!(refusal(session.post_transfer().await).await.0, 409);
}

#[tokio::test]
async fn a_lost_answer_leaves_the_transfer_started() {
    for scenario in [Scenario::lost_post_answer(), Scenario::post_never_answered()] {
        let session = Session::start(scenario.clone()).await;
        // The answer never arrives complete: either no status at all or a body cut off.
        let outcome = match session.post_transfer_result().await {
            Ok(response) => response.bytes().await.map(|_| ()),
            Err(err) => Err(err),
        };
        let error = outcome.expect_err("no complete answer");
        if scenario.post_answer == PostAnswer::NoAnswerAfterStart {
            assert!(error.is_timeout(), "{error:?}");
        } else {
            assert!(!error.is_connect(), "the request was sent: {error:?}");
        }
        assert_eq!(
            session.transfer_state().await,
            "queued",
            "{:?}",
            scenario.post_answer
        );
        assert_eq!(session.standin.count("POST", "/api/snapmirror/relationships/"), 1);
    }
}

#[tokio::test]
async fn lagging_relationships_report_a_long_lag() {
    let session = Session::start(Scenario::lagging()).await;
    let (_, body) = session
        .get(&format!(
            "/api/snapmirror/relationships?destination.path={DESTINATION_PATH}&fields=lag_time,healthy"
        ))
        .await;
    assert_eq!(body["records"][0]["lag_time"], "P1DT2H");
    assert_eq!(body["records"][0]["healthy"], true);
}
