//! `snapmirror update` and `snapmirror status`: the decisions (pure) and the sequence of requests.
//!
//! Unlike Ansible's `na_ontap_snapmirror` with `state: present`, nothing here creates, initializes, resyncs or
//! resumes a relationship: the only write is the transfer POST, made after every check passed. It is sent again
//! only after ONTAP answered that another transfer was in progress (so nothing of ours started) and that
//! transfer ended; a POST whose answer was lost is never sent again ([`OntapError::PostAnswerLost`]).

use serde::Serialize;
use serde_with::skip_serializing_none;

use crate::client::{OntapClient, TransferStarted};
use crate::error::{OntapError, state_hint};
use crate::model::{
    BusySeen, BusyTransfer, CodedMessage, Job, JobState, Relationship, RelationshipState, Transfer,
    TransferState, TransferSummary,
};
use crate::path::VolumePath;

/// What to do when another transfer runs on the relationship (ONTAP's own schedule, or a run before a rerun).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IfBusy {
    /// Wait for it to end, then start a new transfer. The running one replicates a snapshot taken when it
    /// started, which may miss data written since; so it is never taken as this update.
    #[default]
    Wait,
    /// Start nothing, and say so.
    Skip,
    /// Fail with [`OntapError::Busy`].
    Fail,
}

impl IfBusy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wait => "wait",
            Self::Skip => "skip",
            Self::Fail => "fail",
        }
    }
}

/// What the caller asked for.
#[derive(Debug, Clone)]
pub struct UpdateRequest {
    pub source: VolumePath,
    pub destination: VolumePath,
    /// Update an unhealthy relationship anyway (never overrides a missing relationship, a source mismatch or a
    /// state other than `snapmirrored`).
    pub force: bool,
    /// Follow the job and the transfer to a terminal state.
    pub wait: bool,
    /// Check everything, start nothing.
    pub dry_run: bool,
    pub if_busy: IfBusy,
}

/// The checks passed; `forced_past` lists the unhealthy reasons `--force` overrode.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Preconditions {
    pub forced_past: Vec<CodedMessage>,
}

/// Decides whether `relationship` may be updated from `source`. Pure: tested without a cluster.
pub fn check_preconditions(
    relationship: &Relationship,
    source: &VolumePath,
    destination: &VolumePath,
    force: bool,
) -> Result<Preconditions, OntapError> {
    let expected_source = source.to_string();
    let destination_text = destination.to_string();
    match relationship.source_path() {
        Some(actual) if actual == expected_source => {}
        actual => {
            return Err(OntapError::SourceMismatch {
                destination: destination_text,
                expected: expected_source,
                actual: actual.unwrap_or("(ONTAP gave no source path)").to_owned(),
            });
        }
    }
    match &relationship.state {
        Some(RelationshipState::Snapmirrored) => {}
        state => {
            let state = state
                .as_ref()
                .map_or("in an unknown state".to_owned(), ToString::to_string);
            let hint = relationship
                .state
                .as_ref()
                .map_or(state_hint(&RelationshipState::Other(String::new())), state_hint);
            return Err(OntapError::NotSnapmirrored {
                destination: destination_text,
                state,
                hint,
            });
        }
    }
    // A missing `healthy` is not taken as healthy: it was asked for in `fields`.
    if relationship.healthy != Some(true) {
        let reasons = relationship.unhealthy_reason.clone();
        if !force {
            return Err(OntapError::Unhealthy {
                destination: destination_text,
                reasons,
            });
        }
        return Ok(Preconditions {
            forced_past: if reasons.is_empty() {
                vec![CodedMessage {
                    code: None,
                    message: Some("ONTAP gave no reason".into()),
                }]
            } else {
                reasons
            },
        });
    }
    Ok(Preconditions::default())
}

/// The relationship's current transfer when it is still running. Pure.
pub fn running_transfer(relationship: &Relationship) -> Option<BusyTransfer> {
    let transfer = relationship.transfer.as_ref().filter(|t| t.is_running())?;
    Some(BusyTransfer {
        uuid: transfer.uuid.clone(),
        state: transfer.state.clone(),
        seen: BusySeen::BeforePost,
        refusal: None,
    })
}

/// ONTAP documents 13303844 as "update failed", for a transfer in progress among other causes.
const UPDATE_FAILED: &str = "13303844";

/// An "update failed" refusal of the POST or its job: ONTAP's message, and whether it says a transfer is in
/// progress. Pure.
pub fn update_refusal(error: &OntapError) -> Option<(String, bool)> {
    let (code, message) = match error {
        OntapError::Status { error: Some(api), .. } => (api.code.as_deref(), api.to_string()),
        OntapError::JobFailed {
            job_uuid,
            code,
            message,
        } => (
            Some(code.as_str()),
            format!("job {job_uuid}: {message} (code {code})"),
        ),
        _ => return None,
    };
    if code != Some(UPDATE_FAILED) {
        return None;
    }
    let lower = message.to_lowercase();
    let says_busy = lower.contains("another transfer") || lower.contains("in progress");
    Some((message, says_busy))
}

/// Steps of an update, reported as they happen (the command prints them on stderr).
#[derive(Debug)]
pub enum Progress<'a> {
    Found(&'a Relationship),
    ForcedPastUnhealthy(&'a [CodedMessage]),
    /// Another transfer runs; with [`IfBusy::Wait`] the update waits for it.
    Busy(&'a BusyTransfer),
    /// The running transfer moved on (state or UUID changed).
    BusyTransferNow(&'a TransferSummary),
    /// It ended; the relationship as it is then.
    BusyEnded(&'a Relationship),
    Started(&'a TransferStarted),
    Job(&'a Job),
    TransferIdentified(&'a str),
    Transfer(&'a Transfer),
    /// The relationship read again after this update's transfer ended.
    Finished(&'a Relationship),
}

/// What an update did, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateResult {
    /// A transfer was started and not followed (no `wait`).
    Started,
    /// A transfer was started and ended in success.
    Updated,
    /// Another transfer was running and [`IfBusy::Skip`] started nothing.
    Skipped,
    /// Every check passed and nothing was sent.
    DryRun,
}

impl UpdateResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Updated => "updated",
            Self::Skipped => "skipped",
            Self::DryRun => "dry_run",
        }
    }
}

/// What an update did.
#[skip_serializing_none]
#[derive(Debug, Clone, Serialize)]
pub struct UpdateOutcome {
    #[serde(skip)]
    pub result: UpdateResult,
    /// As read after this update's transfer ended when it was followed; as found otherwise.
    pub relationship: Relationship,
    /// `None` on a dry run or when skipped.
    pub started: Option<TransferStarted>,
    pub job: Option<Job>,
    pub transfer: Option<Transfer>,
    /// Unhealthy reasons overridden by `force`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub forced_past: Vec<CodedMessage>,
    /// The running transfer that made this update skip (or, on a dry run, that it would wait for).
    pub busy: Option<BusyTransfer>,
    /// Running transfers this update waited for before starting its own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waited_for: Vec<BusyTransfer>,
}

/// The figures a pipeline reads from an update: the relationship after it, and the transfer it made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateSummary {
    pub result: UpdateResult,
    pub state: Option<RelationshipState>,
    pub healthy: Option<bool>,
    pub lag_time: Option<String>,
    pub lag_seconds: Option<u64>,
    pub transfer_uuid: Option<String>,
    /// 0 when no transfer was started; `None` when ONTAP did not say.
    pub bytes_transferred: Option<u64>,
    pub transfer_end_time: Option<String>,
}

impl UpdateOutcome {
    /// Pure.
    pub fn summary(&self) -> UpdateSummary {
        let relationship = &self.relationship;
        let nothing_started = matches!(self.result, UpdateResult::Skipped | UpdateResult::DryRun);
        UpdateSummary {
            result: self.result,
            state: relationship.state.clone(),
            healthy: relationship.healthy,
            lag_time: relationship.lag_time.as_ref().map(|lag| lag.iso8601.clone()),
            lag_seconds: relationship.lag_time.as_ref().map(|lag| lag.duration.as_secs()),
            transfer_uuid: self
                .transfer
                .as_ref()
                .map(|t| t.uuid.clone())
                .or_else(|| match &self.started {
                    Some(TransferStarted::Created { transfer_uuid }) => Some(transfer_uuid.clone()),
                    _ => None,
                }),
            bytes_transferred: if nothing_started {
                Some(0)
            } else {
                self.transfer.as_ref().and_then(|t| t.bytes_transferred)
            },
            transfer_end_time: self.transfer.as_ref().and_then(|t| t.end_time.clone()),
        }
    }
}

/// Whether to go round again after meeting a running transfer.
enum Next {
    Done(Box<UpdateOutcome>),
    Again,
}

/// Looks the relationship up, checks it, deals with a running transfer as `if_busy` says, starts one transfer
/// and, with `wait`, follows it to the end and reads the relationship again.
pub async fn update(
    client: &OntapClient,
    request: &UpdateRequest,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<UpdateOutcome, OntapError> {
    let mut waited_for: Vec<BusyTransfer> = Vec::new();
    loop {
        let relationship = client.find_relationship(&request.destination).await?;
        progress(Progress::Found(&relationship));
        let checks = check_preconditions(
            &relationship,
            &request.source,
            &request.destination,
            request.force,
        )?;
        if !checks.forced_past.is_empty() {
            progress(Progress::ForcedPastUnhealthy(&checks.forced_past));
        }
        let mut outcome = UpdateOutcome {
            result: UpdateResult::Started,
            relationship,
            started: None,
            job: None,
            transfer: None,
            forced_past: checks.forced_past,
            busy: None,
            waited_for: waited_for.clone(),
        };
        if let Some(busy) = running_transfer(&outcome.relationship) {
            match on_busy(client, request, busy, outcome, &mut waited_for, progress).await? {
                Next::Done(outcome) => return Ok(*outcome),
                Next::Again => continue,
            }
        }
        if request.dry_run {
            outcome.result = UpdateResult::DryRun;
            return Ok(outcome);
        }
        let relationship_uuid = outcome.relationship.uuid.clone();
        let previous_transfer = outcome.relationship.transfer_uuid().map(str::to_owned);
        let started = match client.start_transfer(&relationship_uuid).await {
            Ok(started) => started,
            Err(error) => match refused_as_busy(client, request, &error, BusySeen::PostRefused).await {
                Some(busy) => match on_busy(client, request, busy, outcome, &mut waited_for, progress).await?
                {
                    Next::Done(outcome) => return Ok(*outcome),
                    Next::Again => continue,
                },
                None => return Err(error),
            },
        };
        progress(Progress::Started(&started));
        outcome.started = Some(started.clone());
        if !request.wait {
            return Ok(outcome);
        }
        let transfer_uuid = match started {
            TransferStarted::Created { transfer_uuid } => transfer_uuid,
            TransferStarted::Accepted { job_uuid } => {
                match wait_for_job(client, &job_uuid, progress).await {
                    Ok(job) => outcome.job = Some(job),
                    Err(error) => {
                        match refused_as_busy(client, request, &error, BusySeen::JobRefused).await {
                            Some(busy) => {
                                outcome.started = None;
                                match on_busy(client, request, busy, outcome, &mut waited_for, progress)
                                    .await?
                                {
                                    Next::Done(outcome) => return Ok(*outcome),
                                    Next::Again => continue,
                                }
                            }
                            None => return Err(error),
                        }
                    }
                }
                let uuid =
                    wait_for_new_transfer(client, &request.destination, previous_transfer.as_deref()).await?;
                progress(Progress::TransferIdentified(&uuid));
                uuid
            }
        };
        outcome.transfer =
            Some(wait_for_transfer(client, &relationship_uuid, &transfer_uuid, progress).await?);
        outcome.result = UpdateResult::Updated;
        // The lag and state the lookup showed were those from before this transfer.
        outcome.relationship = client.find_relationship(&request.destination).await?;
        progress(Progress::Finished(&outcome.relationship));
        return Ok(outcome);
    }
}

/// `error` is ONTAP refusing an update because a transfer runs: the running transfer, read again to say which.
async fn refused_as_busy(
    client: &OntapClient,
    request: &UpdateRequest,
    error: &OntapError,
    seen: BusySeen,
) -> Option<BusyTransfer> {
    let (refusal, says_busy) = update_refusal(error)?;
    // 13303844 has other causes: a transfer seen running confirms this one; a message that says so suffices
    // (the transfer may have ended since).
    let running = client
        .find_relationship(&request.destination)
        .await
        .ok()
        .and_then(|relationship| running_transfer(&relationship));
    if running.is_none() && !says_busy {
        return None;
    }
    let running = running.unwrap_or(BusyTransfer {
        uuid: None,
        state: None,
        seen,
        refusal: None,
    });
    Some(BusyTransfer {
        seen,
        refusal: Some(refusal),
        ..running
    })
}

async fn on_busy(
    client: &OntapClient,
    request: &UpdateRequest,
    busy: BusyTransfer,
    mut outcome: UpdateOutcome,
    waited_for: &mut Vec<BusyTransfer>,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Next, OntapError> {
    match request.if_busy {
        IfBusy::Fail => Err(OntapError::Busy {
            destination: request.destination.to_string(),
            transfer: busy,
        }),
        IfBusy::Skip => {
            outcome.result = UpdateResult::Skipped;
            outcome.busy = Some(busy);
            Ok(Next::Done(Box::new(outcome)))
        }
        IfBusy::Wait if request.dry_run => {
            outcome.result = UpdateResult::DryRun;
            outcome.busy = Some(busy);
            Ok(Next::Done(Box::new(outcome)))
        }
        IfBusy::Wait => {
            progress(Progress::Busy(&busy));
            let idle = wait_until_idle(client, &request.destination, progress).await?;
            progress(Progress::BusyEnded(&idle));
            waited_for.push(busy);
            Ok(Next::Again)
        }
    }
}

/// Polls the relationship until its transfer is no longer `queued` or `transferring`.
async fn wait_until_idle(
    client: &OntapClient,
    destination: &VolumePath,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Relationship, OntapError> {
    let mut last: Option<TransferSummary> = None;
    loop {
        client
            .pause_before_next_poll(&format!(
                "waiting for the transfer in progress on {destination} to end (nothing of this update was started)"
            ))
            .await?;
        let relationship = client.find_relationship(destination).await?;
        match &relationship.transfer {
            Some(transfer) if transfer.is_running() => {
                if last.as_ref() != Some(transfer) {
                    progress(Progress::BusyTransferNow(transfer));
                    last = Some(transfer.clone());
                }
            }
            _ => return Ok(relationship),
        }
    }
}

/// Follows a job to `success` (returned) or `failure` ([`OntapError::JobFailed`] with ONTAP's message and code).
pub async fn wait_for_job(
    client: &OntapClient,
    job_uuid: &str,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Job, OntapError> {
    let mut last_state: Option<JobState> = None;
    loop {
        let job = client.job(job_uuid).await?;
        if last_state.as_ref() != Some(&job.state) {
            progress(Progress::Job(&job));
            last_state = Some(job.state.clone());
        }
        match job.state {
            JobState::Success => return Ok(job),
            JobState::Failure => {
                let error = job.error.clone().unwrap_or_default();
                return Err(OntapError::JobFailed {
                    job_uuid: job.uuid,
                    message: job
                        .message
                        .or(error.message)
                        .unwrap_or_else(|| "ONTAP gave no message".into()),
                    code: job.code.or(error.code).unwrap_or_else(|| "none".into()),
                });
            }
            _ => {}
        }
        client
            .pause_before_next_poll(&format!("waiting for job {job_uuid} (last state: {})", job.state))
            .await?;
    }
}

/// After a job started the transfer: the relationship's `transfer.uuid` once it names a transfer other than
/// the one there before the POST.
async fn wait_for_new_transfer(
    client: &OntapClient,
    destination: &VolumePath,
    previous: Option<&str>,
) -> Result<String, OntapError> {
    loop {
        let relationship = client.find_relationship(destination).await?;
        if let Some(uuid) = relationship.transfer_uuid()
            && Some(uuid) != previous
        {
            return Ok(uuid.to_owned());
        }
        client
            .pause_before_next_poll("waiting for the relationship to show the new transfer")
            .await?;
    }
}

/// Follows a transfer to `success` (returned) or `failed`/`aborted`/`hard_aborted`
/// ([`OntapError::TransferFailed`] with ONTAP's `error_info`).
pub async fn wait_for_transfer(
    client: &OntapClient,
    relationship_uuid: &str,
    transfer_uuid: &str,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Transfer, OntapError> {
    let mut last: Option<(TransferState, Option<u64>)> = None;
    loop {
        let transfer = client.transfer(relationship_uuid, transfer_uuid).await?;
        let seen = (transfer.state.clone(), transfer.bytes_transferred);
        if last.as_ref() != Some(&seen) {
            progress(Progress::Transfer(&transfer));
            last = Some(seen);
        }
        if transfer.state == TransferState::Success {
            return Ok(transfer);
        }
        if transfer.state.is_terminal() {
            return Err(OntapError::TransferFailed {
                transfer_uuid: transfer.uuid,
                state: transfer.state,
                error_info: transfer.error_info,
            });
        }
        client
            .pause_before_next_poll(&format!(
                "waiting for transfer {transfer_uuid} (last state: {})",
                transfer.state
            ))
            .await?;
    }
}

/// `snapmirror status`: the relationship and, when ONTAP still has it, its last transfer.
#[derive(Debug, Clone, Serialize)]
pub struct RelationshipStatus {
    pub relationship: Relationship,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transfer: Option<Transfer>,
}

pub async fn status(
    client: &OntapClient,
    destination: &VolumePath,
) -> Result<RelationshipStatus, OntapError> {
    let relationship = client.find_relationship(destination).await?;
    let last_transfer = match relationship.transfer_uuid() {
        None => None,
        Some(transfer_uuid) => match client.transfer(&relationship.uuid, transfer_uuid).await {
            Ok(transfer) => Some(transfer),
            // ONTAP keeps transfer records for a limited time; the relationship's summary still says the state.
            Err(OntapError::Status { status, .. }) if status == reqwest::StatusCode::NOT_FOUND => None,
            Err(err) => return Err(err),
        },
    };
    Ok(RelationshipStatus {
        relationship,
        last_transfer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EndpointRef;

    fn path(text: &str) -> VolumePath {
        text.parse().unwrap()
    }

    fn relationship(state: &str, healthy: Option<bool>, reasons: &[(&str, &str)]) -> Relationship {
        Relationship {
            uuid: "r1".into(),
            state: Some(RelationshipState::from(state.to_owned())),
            healthy,
            unhealthy_reason: reasons
                .iter()
                .map(|(code, message)| CodedMessage {
                    code: Some((*code).into()),
                    message: Some((*message).into()),
                })
                .collect(),
            lag_time: None,
            source: Some(EndpointRef {
                path: "svm1:src".into(),
            }),
            destination: Some(EndpointRef {
                path: "svm2:dst".into(),
            }),
            transfer: None,
        }
    }

    fn check(relationship: &Relationship, source: &str, force: bool) -> Result<Preconditions, OntapError> {
        check_preconditions(relationship, &path(source), &path("svm2:dst"), force)
    }

    /// What `check` refuses with; a pass fails the test.
    fn refusal(relationship: &Relationship, source: &str, force: bool) -> OntapError {
        check(relationship, source, force).expect_err("the check should refuse")
    }

    #[test]
    fn healthy_snapmirrored_relationship_passes() {
        let r = relationship("snapmirrored", Some(true), &[]);
        assert_eq!(check(&r, "svm1:src", false).unwrap(), Preconditions::default());
    }

    #[test]
    fn source_mismatch_is_refused_even_with_force() {
        let r = relationship("snapmirrored", Some(true), &[]);
        for force in [false, true] {
            let error = refusal(&r, "svm1:other", force);
            assert!(
                matches!(&error, OntapError::SourceMismatch { actual, .. } if actual == "svm1:src"),
                "{error}"
            );
        }
        let mut no_source = r.clone();
        no_source.source = None;
        let error = refusal(&no_source, "svm1:src", false);
        assert!(matches!(error, OntapError::SourceMismatch { .. }), "{error}");
    }

    #[test]
    fn every_state_but_snapmirrored_is_refused_even_with_force() {
        for state in [
            "broken_off",
            "paused",
            "uninitialized",
            "in_sync",
            "out_of_sync",
            "synchronizing",
            "new",
        ] {
            let r = relationship(state, Some(true), &[]);
            for force in [false, true] {
                let error = refusal(&r, "svm1:src", force);
                assert!(
                    matches!(&error, OntapError::NotSnapmirrored { state: s, .. } if s == state),
                    "{state}: {error}"
                );
            }
        }
        let mut no_state = relationship("snapmirrored", Some(true), &[]);
        no_state.state = None;
        let error = refusal(&no_state, "svm1:src", false);
        assert!(matches!(error, OntapError::NotSnapmirrored { .. }), "{error}");
    }

    #[test]
    fn unhealthy_is_refused_with_reasons_unless_forced() {
        let r = relationship(
            "snapmirrored",
            Some(false),
            &[("6619546", "Transfer failed."), ("1", "Lagging.")],
        );
        match refusal(&r, "svm1:src", false) {
            OntapError::Unhealthy { reasons, .. } => assert_eq!(reasons.len(), 2),
            other => panic!("expected Unhealthy, got {other}"),
        }
        let forced = check(&r, "svm1:src", true).unwrap();
        assert_eq!(forced.forced_past.len(), 2);
        assert_eq!(forced.forced_past[0].code.as_deref(), Some("6619546"));
    }

    #[test]
    fn unknown_health_counts_as_unhealthy() {
        let r = relationship("snapmirrored", None, &[]);
        let error = refusal(&r, "svm1:src", false);
        assert!(matches!(error, OntapError::Unhealthy { .. }), "{error}");
        let forced = check(&r, "svm1:src", true).unwrap();
        assert_eq!(
            forced.forced_past[0].message.as_deref(),
            Some("ONTAP gave no reason")
        );
    }

    fn with_transfer(state: Option<&str>) -> Relationship {
        let mut r = relationship("snapmirrored", Some(true), &[]);
        r.transfer = Some(TransferSummary {
            uuid: Some("t0".into()),
            state: state.map(|s| TransferState::from(s.to_owned())),
        });
        r
    }

    #[test]
    fn queued_transferring_and_unknown_transfer_states_are_running() {
        for state in ["queued", "transferring", "finalizing"] {
            let busy = running_transfer(&with_transfer(Some(state))).expect(state);
            assert_eq!(busy.uuid.as_deref(), Some("t0"));
            assert_eq!(busy.seen, BusySeen::BeforePost);
            assert_eq!(busy.to_string(), format!("transfer t0 is {state}"));
        }
        for state in [
            Some("success"),
            Some("failed"),
            Some("aborted"),
            Some("hard_aborted"),
            None,
        ] {
            assert_eq!(running_transfer(&with_transfer(state)), None, "{state:?}");
        }
        assert_eq!(
            running_transfer(&relationship("snapmirrored", Some(true), &[])),
            None
        );
    }

    fn status_error(code: &str, message: &str) -> OntapError {
        OntapError::Status {
            method: "POST".into(),
            path: "/api/snapmirror/relationships/r1/transfers".into(),
            status: reqwest::StatusCode::BAD_REQUEST,
            error: Some(Box::new(crate::model::ApiError {
                code: Some(code.into()),
                message: Some(message.into()),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn update_failed_refusals_are_recognised_and_read_for_a_transfer_in_progress() {
        let (message, says_busy) =
            update_refusal(&status_error("13303844", "Another transfer is in progress.")).unwrap();
        assert!(says_busy);
        assert!(
            message.contains("Another transfer is in progress. (code 13303844)"),
            "{message}"
        );
        let (_, says_busy) = update_refusal(&status_error(
            "13303844",
            "Update failed: the source volume is offline.",
        ))
        .unwrap();
        assert!(!says_busy, "the same code has other causes");
        assert_eq!(update_refusal(&status_error("6620237", "in progress")), None);
        let job = OntapError::JobFailed {
            job_uuid: "j1".into(),
            message: "Transfer failed: another transfer is in progress".into(),
            code: "13303844".into(),
        };
        let (message, says_busy) = update_refusal(&job).unwrap();
        assert!(says_busy && message.starts_with("job j1: "), "{message}");
        let timeout = OntapError::Timeout {
            operation: "x".into(),
            after: std::time::Duration::from_secs(1),
        };
        assert_eq!(update_refusal(&timeout), None);
    }

    #[test]
    fn a_refused_busy_transfer_says_what_ontap_said_and_what_runs() {
        let busy = BusyTransfer {
            uuid: Some("t9".into()),
            state: Some(TransferState::Transferring),
            seen: BusySeen::PostRefused,
            refusal: Some("Another transfer is in progress. (code 13303844)".into()),
        };
        assert_eq!(
            busy.to_string(),
            "ONTAP refused the update (Another transfer is in progress. (code 13303844)); transfer t9 is transferring"
        );
        let unknown = BusyTransfer {
            uuid: None,
            state: None,
            ..busy
        };
        assert!(unknown.to_string().ends_with("; another transfer is in progress"));
    }

    fn outcome(result: UpdateResult) -> UpdateOutcome {
        let mut relationship = relationship("snapmirrored", Some(true), &[]);
        relationship.lag_time = serde_json::from_value(serde_json::json!("PT1M2S")).unwrap();
        UpdateOutcome {
            result,
            relationship,
            started: None,
            job: None,
            transfer: None,
            forced_past: Vec::new(),
            busy: None,
            waited_for: Vec::new(),
        }
    }

    #[test]
    fn the_summary_holds_the_relationship_after_and_the_transfer_made() {
        let mut updated = outcome(UpdateResult::Updated);
        updated.transfer = Some(Transfer {
            uuid: "t1".into(),
            state: TransferState::Success,
            bytes_transferred: Some(1_048_576),
            end_time: Some("2026-11-22T00:01:00+00:00".into()),
            error_info: None,
        });
        let summary = updated.summary();
        assert_eq!(summary.result, UpdateResult::Updated);
        assert_eq!(summary.state, Some(RelationshipState::Snapmirrored));
        assert_eq!(summary.lag_seconds, Some(62));
        assert_eq!(summary.lag_time.as_deref(), Some("PT1M2S"));
        assert_eq!(summary.bytes_transferred, Some(1_048_576));
        assert_eq!(
            summary.transfer_end_time.as_deref(),
            Some("2026-11-22T00:01:00+00:00")
        );
        assert_eq!(summary.transfer_uuid.as_deref(), Some("t1"));

        let skipped = outcome(UpdateResult::Skipped).summary();
        assert_eq!(
            skipped.bytes_transferred,
            Some(0),
            "nothing started, nothing transferred"
        );
        assert_eq!((skipped.transfer_uuid, skipped.transfer_end_time), (None, None));

        let mut started = outcome(UpdateResult::Started);
        started.started = Some(TransferStarted::Created {
            transfer_uuid: "t2".into(),
        });
        let started = started.summary();
        assert_eq!(started.transfer_uuid.as_deref(), Some("t2"));
        assert_eq!(started.bytes_transferred, None, "not followed: unknown");
    }

    #[test]
    fn order_of_checks_source_then_state_then_health() {
        // A broken-off, unhealthy relationship from another source reports the source first.
        let r = relationship("broken_off", Some(false), &[("1", "x")]);
        let error = refusal(&r, "svm9:src", false);
        assert!(matches!(error, OntapError::SourceMismatch { .. }), "{error}");
        let error = refusal(&r, "svm1:src", true);
        assert!(matches!(error, OntapError::NotSnapmirrored { .. }), "{error}");
    }
}
