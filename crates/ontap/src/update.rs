//! `snapmirror update` and `snapmirror status`: the decisions (pure) and the sequence of requests.
//!
//! Unlike Ansible's `na_ontap_snapmirror` with `state: present`, nothing here creates, initializes, resyncs or
//! resumes a relationship: the only write is the transfer POST, made once, after every check passed.

use serde::Serialize;

use crate::client::{OntapClient, TransferStarted};
use crate::error::{OntapError, state_hint};
use crate::model::{CodedMessage, Job, JobState, Relationship, RelationshipState, Transfer, TransferState};
use crate::path::VolumePath;

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

/// Steps of an update, reported as they happen (the command prints them on stderr).
#[derive(Debug)]
pub enum Progress<'a> {
    Found(&'a Relationship),
    ForcedPastUnhealthy(&'a [CodedMessage]),
    Started(&'a TransferStarted),
    Job(&'a Job),
    TransferIdentified(&'a str),
    Transfer(&'a Transfer),
}

/// What an update did.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateOutcome {
    pub relationship: Relationship,
    /// `None` on a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<TransferStarted>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<Job>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<Transfer>,
    /// Unhealthy reasons overridden by `force`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub forced_past: Vec<CodedMessage>,
}

/// Looks the relationship up, checks it, starts one transfer and, with `wait`, follows it to the end.
pub async fn update(
    client: &OntapClient,
    request: &UpdateRequest,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<UpdateOutcome, OntapError> {
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
        relationship,
        started: None,
        job: None,
        transfer: None,
        forced_past: checks.forced_past,
    };
    if request.dry_run {
        return Ok(outcome);
    }
    let relationship_uuid = outcome.relationship.uuid.clone();
    let previous_transfer = outcome.relationship.transfer_uuid().map(str::to_owned);
    let started = client.start_transfer(&relationship_uuid).await?;
    progress(Progress::Started(&started));
    outcome.started = Some(started.clone());
    if !request.wait {
        return Ok(outcome);
    }
    let transfer_uuid = match started {
        TransferStarted::Created { transfer_uuid } => transfer_uuid,
        TransferStarted::Accepted { job_uuid } => {
            outcome.job = Some(wait_for_job(client, &job_uuid, progress).await?);
            let uuid =
                wait_for_new_transfer(client, &request.destination, previous_transfer.as_deref()).await?;
            progress(Progress::TransferIdentified(&uuid));
            uuid
        }
    };
    outcome.transfer = Some(wait_for_transfer(client, &relationship_uuid, &transfer_uuid, progress).await?);
    Ok(outcome)
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

    #[test]
    fn healthy_snapmirrored_relationship_passes() {
        let r = relationship("snapmirrored", Some(true), &[]);
        assert_eq!(check(&r, "svm1:src", false).unwrap(), Preconditions::default());
    }

    #[test]
    fn source_mismatch_is_refused_even_with_force() {
        let r = relationship("snapmirrored", Some(true), &[]);
        for force in [false, true] {
            let error = check(&r, "svm1:other", force).unwrap_err();
            assert!(
                matches!(&error, OntapError::SourceMismatch { actual, .. } if actual == "svm1:src"),
                "{error}"
            );
        }
        let mut no_source = r.clone();
        no_source.source = None;
        assert!(matches!(
            check(&no_source, "svm1:src", false),
            Err(OntapError::SourceMismatch { .. })
        ));
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
                let error = check(&r, "svm1:src", force).unwrap_err();
                assert!(
                    matches!(&error, OntapError::NotSnapmirrored { state: s, .. } if s == state),
                    "{state}: {error}"
                );
            }
        }
        let mut no_state = relationship("snapmirrored", Some(true), &[]);
        no_state.state = None;
        assert!(matches!(
            check(&no_state, "svm1:src", false),
            Err(OntapError::NotSnapmirrored { .. })
        ));
    }

    #[test]
    fn unhealthy_is_refused_with_reasons_unless_forced() {
        let r = relationship(
            "snapmirrored",
            Some(false),
            &[("6619546", "Transfer failed."), ("1", "Lagging.")],
        );
        match check(&r, "svm1:src", false).unwrap_err() {
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
        assert!(matches!(
            check(&r, "svm1:src", false),
            Err(OntapError::Unhealthy { .. })
        ));
        let forced = check(&r, "svm1:src", true).unwrap();
        assert_eq!(
            forced.forced_past[0].message.as_deref(),
            Some("ONTAP gave no reason")
        );
    }

    #[test]
    fn order_of_checks_source_then_state_then_health() {
        // A broken-off, unhealthy relationship from another source reports the source first.
        let r = relationship("broken_off", Some(false), &[("1", "x")]);
        assert!(matches!(
            check(&r, "svm9:src", false),
            Err(OntapError::SourceMismatch { .. })
        ));
        assert!(matches!(
            check(&r, "svm1:src", true),
            Err(OntapError::NotSnapmirrored { .. })
        ));
    }
}
