//! The client against the ONTAP stand-in over real TLS: every scenario, retries, redirects, timeouts, trust.

use std::path::PathBuf;
use std::time::Duration;

use tprotect_ontap::{
    BusySeen, ClientOptions, CredentialSource, Credentials, IfBusy, OntapClient, OntapError, Progress,
    RelationshipState, RetryPolicy, TlsOptions, TransferStarted, TransferState, UpdateOutcome, UpdateRequest,
    UpdateResult,
};
use tprotect_ontap_standin::{
    ANOTHER_TRANSFER_IN_PROGRESS, BusyRefusal, DESTINATION_PATH, OntapStandin, PostAnswer, SOURCE_PATH,
    Scenario, TransferOutcome,
};

struct Fixture {
    standin: OntapStandin,
    ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn start(scenario: Scenario) -> Self {
        let standin = OntapStandin::start(scenario).await.expect("stand-in starts");
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, standin.ca_pem()).unwrap();
        Self {
            standin,
            ca_file,
            _dir: dir,
        }
    }

    /// Fast polls and retries; the stand-in's CA only (no system roots), so trust comes from the CA file.
    fn options(&self) -> ClientOptions {
        ClientOptions {
            tls: TlsOptions {
                verify: true,
                ca_files: vec![self.ca_file.clone()],
                system_roots: false,
            },
            poll_interval: Duration::from_millis(10),
            retry: RetryPolicy {
                max_attempts: 4,
                initial_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(40),
            },
            ..ClientOptions::default()
        }
    }

    fn client_with(&self, options: ClientOptions) -> OntapClient {
        let credentials = Credentials::new(
            self.standin.username(),
            self.standin.password(),
            CredentialSource::Caller,
        )
        .unwrap();
        OntapClient::new(self.standin.hostname().parse().unwrap(), credentials, options).unwrap()
    }

    /// A client whose whole operation gives up after `overall` (each request keeps its own timeout).
    fn client_giving_up_after(&self, overall: Duration) -> OntapClient {
        self.client_with(ClientOptions {
            overall_timeout: Some(overall),
            ..self.options()
        })
    }

    fn client(&self) -> OntapClient {
        self.client_with(self.options())
    }

    fn posts(&self) -> usize {
        self.standin.count("POST", "/api/snapmirror/relationships/")
    }
}

fn request(wait: bool) -> UpdateRequest {
    UpdateRequest {
        source: SOURCE_PATH.parse().unwrap(),
        destination: DESTINATION_PATH.parse().unwrap(),
        force: false,
        wait,
        dry_run: false,
        if_busy: IfBusy::Wait,
    }
}

/// Asserts that `text` (a message, or anything displayed as one) contains each of `phrases`, naming the one
/// missing.
#[track_caller]
fn assert_says(text: &impl std::fmt::Display, phrases: &[&str]) {
    let text = text.to_string();
    for phrase in phrases {
        assert!(text.contains(phrase), "{phrase:?} is not in: {text}");
    }
}

/// `request`, as a dry run.
fn dry_run(request: UpdateRequest) -> UpdateRequest {
    UpdateRequest {
        dry_run: true,
        ..request
    }
}

/// The error a run of `request` through `client` ends in (it must fail).
async fn update_error(client: &OntapClient, request: &UpdateRequest) -> OntapError {
    let (result, _) = run_update(client, request).await;
    result.unwrap_err()
}

async fn run_update(
    client: &OntapClient,
    request: &UpdateRequest,
) -> (Result<UpdateOutcome, OntapError>, Vec<String>) {
    let mut events = Vec::new();
    let result = tprotect_ontap::update(client, request, &mut |progress| {
        events.push(match progress {
            Progress::Found(r) => format!("found {}", r.uuid),
            Progress::ForcedPastUnhealthy(reasons) => format!("forced past {}", reasons.len()),
            Progress::Started(TransferStarted::Created { .. }) => "started 201".into(),
            Progress::Started(TransferStarted::Accepted { .. }) => "started 202".into(),
            Progress::Job(job) => format!("job {}", job.state),
            Progress::TransferIdentified(_) => "transfer identified".into(),
            Progress::Transfer(t) => format!("transfer {}", t.state),
            Progress::Busy(busy) => format!("busy {:?}", busy.seen),
            Progress::BusyTransferNow(t) => format!("busy now {}", t.state.as_ref().unwrap()),
            Progress::BusyEnded(_) => "busy ended".into(),
            Progress::Finished(r) => format!("finished, lag {}", r.lag_time.as_ref().unwrap().iso8601),
        })
    })
    .await;
    (result, events)
}

#[tokio::test]
async fn created_flow_posts_once_and_follows_the_transfer_to_success() {
    let fixture = Fixture::start(Scenario::created()).await;
    let (result, events) = run_update(&fixture.client(), &request(true)).await;
    let outcome = result.unwrap();
    let transfer = outcome.transfer.unwrap();
    assert_eq!(transfer.state, TransferState::Success);
    assert_eq!(transfer.bytes_transferred, Some(1_048_576));
    assert!(
        matches!(outcome.started, Some(TransferStarted::Created { ref transfer_uuid }) if *transfer_uuid == transfer.uuid)
    );
    assert_eq!(
        events[1..],
        [
            "started 201",
            "transfer queued",
            "transfer success",
            "finished, lag PT1M2S"
        ]
    );
    // Read again after the transfer: the lag is the one after it, not the 8h35m42s found before.
    assert_eq!(outcome.relationship.lag_time.unwrap().iso8601, "PT1M2S");
    assert_eq!(outcome.result, UpdateResult::Updated);

    let requests = fixture.standin.requests();
    assert!(requests.iter().all(|r| r.authorization_present));
    let posts: Vec<_> = requests.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].body, "{}");
    assert!(fixture.standin.relationship_writes().is_empty());
    let lookup = &requests[0];
    let query = lookup.query.as_deref().unwrap();
    assert_says(
        &query,
        &[
            "destination.path=svm_dst%3Avol_dst",
            "fields=",
            "unhealthy_reason",
        ],
    );
}

#[tokio::test]
async fn accepted_flow_follows_the_job_then_finds_and_follows_the_new_transfer() {
    let fixture = Fixture::start(Scenario {
        transfer_reveal_delay: 2,
        ..Scenario::accepted_job()
    })
    .await;
    let (result, events) = run_update(&fixture.client(), &request(true)).await;
    let outcome = result.unwrap();
    assert_eq!(outcome.job.unwrap().state, tprotect_ontap::JobState::Success);
    assert_eq!(outcome.transfer.unwrap().state, TransferState::Success);
    assert_eq!(
        events[1..],
        [
            "started 202",
            "job queued",
            "job success",
            "transfer identified",
            "transfer queued",
            "transfer success",
            "finished, lag PT1M2S"
        ]
    );
    assert_eq!(fixture.posts(), 1);
    // One lookup before the POST, three until the new transfer showed (reveal delay 2), two GETs of the
    // transfer, and the lookup after it ended.
    assert_eq!(
        fixture.standin.count("GET", "/api/snapmirror/relationships"),
        1 + 3 + 2 + 1
    );
}

#[tokio::test]
async fn job_failure_reports_ontaps_message_and_code() {
    let fixture = Fixture::start(Scenario::job_failure()).await;
    let (result, _) = run_update(&fixture.client(), &request(true)).await;
    match result.unwrap_err() {
        OntapError::JobFailed { message, code, .. } => {
            assert_eq!(code, "13303844");
            assert_says(&message, &["source volume is offline"]);
        }
        other => panic!("expected JobFailed, got {other}"),
    }
    assert_eq!(fixture.posts(), 1);
}

#[tokio::test]
async fn transfer_failure_reports_error_info() {
    let fixture = Fixture::start(Scenario::transfer_failure()).await;
    let error = update_error(&fixture.client(), &request(true)).await;
    assert_says(&error, &["out of space", "13303812"]);
    match error {
        OntapError::TransferFailed {
            state, error_info, ..
        } => {
            assert_eq!(state, TransferState::Failed);
            assert_eq!(error_info.unwrap().code.as_deref(), Some("13303812"));
        }
        other => panic!("expected TransferFailed, got {other}"),
    }
}

#[tokio::test]
async fn aborted_transfers_are_failures() {
    for (outcome, state) in [
        (TransferOutcome::Aborted, TransferState::Aborted),
        (TransferOutcome::HardAborted, TransferState::HardAborted),
    ] {
        let fixture = Fixture::start(Scenario {
            transfer_outcome: outcome,
            ..Scenario::created()
        })
        .await;
        let (result, _) = run_update(&fixture.client(), &request(true)).await;
        match result.unwrap_err() {
            OntapError::TransferFailed {
                state: got,
                error_info,
                ..
            } => {
                assert_eq!(got, state);
                assert!(error_info.is_none());
            }
            other => panic!("expected TransferFailed, got {other}"),
        }
    }
}

#[tokio::test]
async fn refusals_send_no_post_and_no_relationship_write() {
    type IsExpected = fn(&OntapError) -> bool;
    let cases: [(Scenario, IsExpected); 3] = [
        (Scenario::relationship_missing(), |e| {
            matches!(e, OntapError::NotFound { .. })
        }),
        (
            Scenario::broken_off(),
            |e| matches!(e, OntapError::NotSnapmirrored { state, .. } if state == "broken_off"),
        ),
        (
            Scenario::unhealthy(),
            |e| matches!(e, OntapError::Unhealthy { reasons, .. } if reasons.len() == 2),
        ),
    ];
    for (scenario, expected) in cases {
        let fixture = Fixture::start(scenario).await;
        let error = update_error(&fixture.client(), &request(true)).await;
        assert!(expected(&error), "unexpected error: {error}");
        assert_eq!(fixture.posts(), 0, "{error}");
        assert!(fixture.standin.relationship_writes().is_empty());
        assert_eq!(fixture.standin.requests().len(), 1, "only the lookup");
    }
}

#[tokio::test]
async fn broken_off_is_refused_even_with_force_but_unhealthy_is_not() {
    let fixture = Fixture::start(Scenario::broken_off()).await;
    let forced = UpdateRequest {
        force: true,
        ..request(true)
    };
    let (result, _) = run_update(&fixture.client(), &forced).await;
    assert!(matches!(result, Err(OntapError::NotSnapmirrored { .. })));
    assert_eq!(fixture.posts(), 0);

    let fixture = Fixture::start(Scenario::unhealthy()).await;
    let (result, events) = run_update(&fixture.client(), &forced).await;
    let outcome = result.unwrap();
    assert_eq!(outcome.forced_past.len(), 2);
    assert_eq!(events[1], "forced past 2");
    assert_eq!(fixture.posts(), 1);
}

#[tokio::test]
async fn source_mismatch_is_refused() {
    let fixture = Fixture::start(Scenario::created()).await;
    let wrong_source = UpdateRequest {
        source: "svm_src:other_vol".parse().unwrap(),
        ..request(true)
    };
    let (result, _) = run_update(&fixture.client(), &wrong_source).await;
    let text = result.unwrap_err().to_string();
    assert_says(
        &text,
        &["replicates from svm_src:vol_src, not from svm_src:other_vol"],
    );
    assert_eq!(fixture.posts(), 0);
}

#[tokio::test]
async fn unauthorized_names_the_credential_source_and_is_not_retried() {
    let fixture = Fixture::start(Scenario::created()).await;
    let credentials = Credentials::new(
        fixture.standin.username(),
        "wrong-password",
        CredentialSource::Secret {
            namespace: "kubeflow".into(),
            name: "ontap-cluster-mgmt-account".into(),
        },
    )
    .unwrap();
    let client = OntapClient::new(
        fixture.standin.hostname().parse().unwrap(),
        credentials,
        fixture.options(),
    )
    .unwrap();
    let error = update_error(&client, &request(true)).await;
    assert!(matches!(error, OntapError::Unauthorized { .. }));
    let text = error.to_string();
    assert_says(&text, &["Secret kubeflow/ontap-cluster-mgmt-account (--secret)"]);
    assert!(
        !text.contains("wrong-password") && !text.contains(fixture.standin.username()),
        "{text}"
    );
    assert_eq!(fixture.standin.requests().len(), 1);
}

#[tokio::test]
async fn gets_are_retried_with_backoff_until_they_succeed() {
    let fixture = Fixture::start(Scenario::transient_failures(2)).await;
    let (result, _) = run_update(&fixture.client(), &request(false)).await;
    result.unwrap();
    // Two 503s, then the lookup that worked.
    assert_eq!(fixture.standin.count("GET", "/api/snapmirror/relationships"), 3);
    assert_eq!(fixture.posts(), 1);
}

#[tokio::test]
async fn gets_give_up_after_max_attempts() {
    let fixture = Fixture::start(Scenario::transient_failures(10)).await;
    let error = update_error(&fixture.client(), &request(false)).await;
    assert!(
        matches!(&error, OntapError::Status { status, .. } if status.as_u16() == 503),
        "{error}"
    );
    assert_eq!(fixture.standin.count("GET", "/api/snapmirror/relationships"), 4);
    assert_eq!(fixture.posts(), 0);
}

#[tokio::test]
async fn the_post_is_never_retried() {
    let scenario = Scenario {
        post_answer: PostAnswer::Error {
            status: 503,
            code: "6620237".into(),
            message: "Relationship database write failed.".into(),
        },
        ..Scenario::created()
    };
    let fixture = Fixture::start(scenario).await;
    let error = update_error(&fixture.client(), &request(true)).await;
    assert_says(
        &error,
        &["503", "Relationship database write failed. (code 6620237)"],
    );
    assert_eq!(fixture.posts(), 1);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let fixture = Fixture::start(Scenario::redirecting()).await;
    let error = update_error(&fixture.client(), &request(true)).await;
    assert!(matches!(error, OntapError::Redirect { .. }), "{error}");
    assert_says(&error, &["/api/redirected-here"]);
    assert_eq!(fixture.standin.requests().len(), 1);
    assert_eq!(fixture.standin.count("GET", "/api/redirected-here"), 0);
}

#[tokio::test]
async fn the_overall_timeout_bounds_a_slow_cluster() {
    let fixture = Fixture::start(Scenario::slow(Duration::from_secs(5))).await;
    let client = fixture.client_giving_up_after(Duration::from_millis(300));
    let error = update_error(&client, &request(true)).await;
    assert!(error.is_timeout(), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("timed out after 300ms while looking up"),
        "{error}"
    );
}

#[tokio::test]
async fn the_overall_timeout_bounds_a_transfer_that_never_ends() {
    let fixture = Fixture::start(Scenario {
        polls_to_finish: u32::MAX,
        ..Scenario::created()
    })
    .await;
    let client = fixture.client_giving_up_after(Duration::from_millis(400));
    let error = update_error(&client, &request(true)).await;
    assert!(error.is_timeout(), "{error}");
    // The deadline falls during a poll request or a pause between polls; both name the transfer.
    assert_says(&error, &["transfer"]);
    assert_eq!(fixture.posts(), 1);
}

#[tokio::test]
async fn slow_answers_within_the_request_timeout_succeed() {
    let fixture = Fixture::start(Scenario::slow(Duration::from_millis(50))).await;
    let (result, _) = run_update(&fixture.client(), &request(true)).await;
    assert_eq!(result.unwrap().transfer.unwrap().state, TransferState::Success);
}

#[tokio::test]
async fn a_request_timeout_is_retried_for_gets() {
    let fixture = Fixture::start(Scenario::slow(Duration::from_secs(2))).await;
    let options = ClientOptions {
        request_timeout: Duration::from_millis(100),
        retry: RetryPolicy {
            max_attempts: 2,
            ..fixture.options().retry
        },
        ..fixture.options()
    };
    let error = update_error(&fixture.client_with(options), &request(true)).await;
    assert_says(&error, &["waiting for ONTAP at"]);
    assert_eq!(fixture.standin.count("GET", "/api/snapmirror/relationships"), 2);
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_with_a_hint() {
    let fixture = Fixture::start(Scenario::created()).await;
    let options = ClientOptions {
        tls: TlsOptions::default(),
        ..fixture.options()
    };
    let error = update_error(&fixture.client_with(options), &request(true)).await;
    assert!(
        matches!(error, OntapError::UntrustedCertificate { .. }),
        "{error}"
    );
    let text = error.to_string();
    assert_says(&text, &["--ca-file", "UnknownIssuer"]);
    assert!(
        fixture.standin.requests().is_empty(),
        "nothing is sent before the handshake succeeds"
    );
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let fixture = Fixture::start(Scenario {
        certificate_names: vec!["cluster-a.example.com".into()],
        ..Scenario::created()
    })
    .await;
    let error = update_error(&fixture.client(), &request(true)).await;
    assert!(
        matches!(error, OntapError::UntrustedCertificate { .. }),
        "{error}"
    );
    let text = error.to_string();
    assert_says(&text, &["not valid for name", "--hostname"]);
}

#[tokio::test]
async fn verification_can_be_turned_off() {
    let fixture = Fixture::start(Scenario::created()).await;
    let options = ClientOptions {
        tls: TlsOptions {
            verify: false,
            ..TlsOptions::default()
        },
        ..fixture.options()
    };
    let (result, _) = run_update(&fixture.client_with(options), &request(true)).await;
    assert_eq!(result.unwrap().transfer.unwrap().state, TransferState::Success);
}

#[tokio::test]
async fn dry_run_checks_everything_and_posts_nothing() {
    let fixture = Fixture::start(Scenario::created()).await;
    let (result, _) = run_update(&fixture.client(), &dry_run(request(true))).await;
    let outcome = result.unwrap();
    assert!(outcome.started.is_none());
    assert_eq!(fixture.posts(), 0);
    let fixture = Fixture::start(Scenario::unhealthy()).await;
    let (result, _) = run_update(&fixture.client(), &dry_run(request(true))).await;
    assert!(matches!(result, Err(OntapError::Unhealthy { .. })));
}

#[tokio::test]
async fn without_wait_the_transfer_is_started_and_not_followed() {
    let fixture = Fixture::start(Scenario::accepted_job()).await;
    let (result, _) = run_update(&fixture.client(), &request(false)).await;
    assert!(matches!(
        result.unwrap().started,
        Some(TransferStarted::Accepted { .. })
    ));
    assert_eq!(fixture.standin.count("GET", "/api/cluster/jobs"), 0);
    assert_eq!(fixture.posts(), 1);
}

#[tokio::test]
async fn status_reports_state_health_reasons_lag_and_last_transfer() {
    let fixture = Fixture::start(Scenario::unhealthy()).await;
    let client = fixture.client();
    let status = tprotect_ontap::status(&client, &DESTINATION_PATH.parse().unwrap())
        .await
        .unwrap();
    let relationship = &status.relationship;
    assert_eq!(relationship.state, Some(RelationshipState::Snapmirrored));
    assert_eq!(relationship.healthy, Some(false));
    assert_eq!(relationship.unhealthy_reason.len(), 2);
    assert_eq!(
        relationship.lag_time.as_ref().unwrap().duration,
        Duration::from_secs(8 * 3600 + 35 * 60 + 42)
    );
    // The fixture's last transfer predates the stand-in, so ONTAP no longer has its record.
    assert!(status.last_transfer.is_none());
    assert_eq!(fixture.posts(), 0);

    let fixture = Fixture::start(Scenario::created()).await;
    let client = fixture.client();
    run_update(&client, &request(true)).await.0.unwrap();
    let status = tprotect_ontap::status(&client, &DESTINATION_PATH.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(status.last_transfer.unwrap().state, TransferState::Success);
    assert_eq!(status.relationship.lag_time.unwrap().iso8601, "PT1M2S");
}

#[tokio::test]
async fn status_of_a_missing_relationship_is_not_found() {
    let fixture = Fixture::start(Scenario::relationship_missing()).await;
    let error = tprotect_ontap::status(&fixture.client(), &DESTINATION_PATH.parse().unwrap())
        .await
        .unwrap_err();
    let text = error.to_string();
    assert_says(
        &text,
        &[
            "no SnapMirror relationship with destination svm_dst:vol_dst",
            "never creates",
        ],
    );
}

fn with_policy(if_busy: IfBusy) -> UpdateRequest {
    UpdateRequest {
        if_busy,
        ..request(true)
    }
}

#[tokio::test]
async fn a_transfer_running_before_the_post_is_waited_for_then_a_new_one_started() {
    let fixture = Fixture::start(Scenario::busy()).await;
    let other = fixture.standin.current_transfer().unwrap().0;
    let (result, events) = run_update(&fixture.client(), &with_policy(IfBusy::Wait)).await;
    let outcome = result.unwrap();
    assert_eq!(
        events[..6],
        [
            format!("found {}", fixture.standin.relationship_uuid().unwrap()),
            "busy BeforePost".into(),
            "busy now transferring".into(),
            "busy ended".into(),
            format!("found {}", fixture.standin.relationship_uuid().unwrap()),
            "started 201".into(),
        ]
    );
    assert_eq!(outcome.waited_for.len(), 1);
    assert_eq!(outcome.waited_for[0].uuid.as_deref(), Some(other.as_str()));
    assert_eq!(outcome.waited_for[0].state, Some(TransferState::Queued));
    let ours = outcome.transfer.unwrap();
    assert_ne!(ours.uuid, other, "the running transfer is not taken as ours");
    assert_eq!(ours.state, TransferState::Success);
    assert_eq!(fixture.posts(), 1);
    assert_eq!(fixture.standin.refused_busy_posts(), 0, "no POST while it ran");
}

#[tokio::test]
async fn skip_and_fail_start_nothing_while_a_transfer_runs() {
    let fixture = Fixture::start(Scenario::busy()).await;
    let (result, _) = run_update(&fixture.client(), &with_policy(IfBusy::Skip)).await;
    let outcome = result.unwrap();
    assert_eq!(outcome.result, UpdateResult::Skipped);
    assert!(outcome.started.is_none() && outcome.transfer.is_none());
    assert_eq!(outcome.busy.as_ref().unwrap().seen, BusySeen::BeforePost);
    assert_eq!(outcome.summary().bytes_transferred, Some(0));

    let error = update_error(&fixture.client(), &with_policy(IfBusy::Fail)).await;
    let text = error.to_string();
    assert!(matches!(error, OntapError::Busy { .. }), "{text}");
    assert_says(
        &text,
        &["svm_dst:vol_dst is busy: transfer ", "nothing was started"],
    );
    assert_eq!(fixture.posts(), 0);
}

#[tokio::test]
async fn a_post_refused_because_a_transfer_started_meanwhile_is_handled_by_the_policy() {
    // The lookup saw the relationship idle; the schedule started a transfer as the POST came.
    let fixture = Fixture::start(Scenario::busy_at_post()).await;
    let (result, events) = run_update(&fixture.client(), &with_policy(IfBusy::Wait)).await;
    let outcome = result.unwrap();
    assert!(events.contains(&"busy PostRefused".to_owned()), "{events:?}");
    let refused = &outcome.waited_for[0];
    assert_eq!(refused.seen, BusySeen::PostRefused);
    assert!(
        refused
            .refusal
            .as_deref()
            .unwrap()
            .contains(ANOTHER_TRANSFER_IN_PROGRESS),
        "{refused:?}"
    );
    assert!(refused.uuid.is_some(), "the re-read names the running transfer");
    assert_eq!(outcome.transfer.unwrap().state, TransferState::Success);
    assert_eq!(fixture.posts(), 2, "refused, then ours after the other ended");
    assert_eq!(fixture.standin.refused_busy_posts(), 1);

    for (policy, posts) in [(IfBusy::Skip, 1), (IfBusy::Fail, 1)] {
        let fixture = Fixture::start(Scenario::busy_at_post()).await;
        let (result, _) = run_update(&fixture.client(), &with_policy(policy)).await;
        match policy {
            IfBusy::Skip => assert_eq!(result.unwrap().result, UpdateResult::Skipped),
            _ => assert!(matches!(result, Err(OntapError::Busy { .. }))),
        }
        assert_eq!(fixture.posts(), posts, "{policy:?}");
    }
}

#[tokio::test]
async fn a_busy_refusal_from_the_job_is_handled_like_one_from_the_post() {
    let fixture = Fixture::start(Scenario {
        busy_refusal: BusyRefusal::FailedJob {
            message: ANOTHER_TRANSFER_IN_PROGRESS.into(),
        },
        ..Scenario::busy_at_post()
    })
    .await;
    let (result, _) = run_update(&fixture.client(), &with_policy(IfBusy::Wait)).await;
    let outcome = result.unwrap();
    assert_eq!(outcome.waited_for[0].seen, BusySeen::JobRefused);
    assert_eq!(outcome.transfer.unwrap().state, TransferState::Success);
    assert_eq!(fixture.posts(), 2);
}

#[tokio::test]
async fn update_failed_for_another_reason_is_not_taken_for_busy() {
    let fixture = Fixture::start(Scenario {
        post_answer: PostAnswer::Error {
            status: 400,
            code: "13303844".into(),
            message: "Update failed: the source volume is offline.".into(),
        },
        ..Scenario::created()
    })
    .await;
    let error = update_error(&fixture.client(), &with_policy(IfBusy::Wait)).await;
    assert!(matches!(error, OntapError::Status { .. }), "{error}");
    assert_says(&error, &["source volume is offline"]);
    assert_eq!(fixture.posts(), 1);
}

#[tokio::test]
async fn a_dry_run_reports_the_running_transfer_it_would_wait_for() {
    let fixture = Fixture::start(Scenario::busy()).await;
    let (result, _) = run_update(&fixture.client(), &dry_run(with_policy(IfBusy::Wait))).await;
    let outcome = result.unwrap();
    assert_eq!(outcome.result, UpdateResult::DryRun);
    assert!(outcome.busy.is_some());
    assert_eq!(fixture.posts(), 0);
}

#[tokio::test]
async fn a_lost_post_answer_may_have_started_a_transfer_and_is_not_retried() {
    let fixture = Fixture::start(Scenario::lost_post_answer()).await;
    let error = update_error(&fixture.client(), &request(true)).await;
    let text = error.to_string();
    assert!(
        matches!(error, OntapError::PostAnswerLost { timed_out: false, .. }),
        "{text}"
    );
    assert_says(&text, &["MAY have started"]);
    assert!(!text.contains("cannot reach"), "{text}");
    assert!(!error.is_timeout());
    assert_eq!(fixture.posts(), 1);
    // It did start: the relationship shows it.
    assert_eq!(fixture.standin.current_transfer().unwrap().1, "queued");

    let fixture = Fixture::start(Scenario::post_never_answered()).await;
    let options = ClientOptions {
        request_timeout: Duration::from_millis(300),
        ..fixture.options()
    };
    let error = update_error(&fixture.client_with(options), &request(true)).await;
    let text = error.to_string();
    assert!(error.is_timeout(), "{text}");
    assert_says(&text, &["no answer within 300ms", "MAY have started"]);
    assert_eq!(fixture.posts(), 1);
}

#[tokio::test]
async fn the_overall_timeout_during_the_post_says_it_may_have_started() {
    let fixture = Fixture::start(Scenario::post_never_answered()).await;
    let client = fixture.client_giving_up_after(Duration::from_millis(500));
    let error = update_error(&client, &request(true)).await;
    assert!(error.is_timeout(), "{error}");
    assert_says(&error, &["MAY have started"]);
}
