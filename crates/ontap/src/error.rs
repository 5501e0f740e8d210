//! Every way a SnapMirror operation can fail, each with a message that says what to do next.
//!
//! No variant carries credentials; URLs in messages are paths on the cluster, never with user info.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;

use crate::credentials::CredentialSource;
use crate::model::{ApiError, CodedMessage, RelationshipState, TransferState};

#[derive(Debug, thiserror::Error)]
pub enum OntapError {
    #[error("invalid SnapMirror path {input:?}: {reason}")]
    InvalidPath { input: String, reason: String },

    #[error("invalid --fail-on condition {input:?}: {reason}")]
    InvalidCondition { input: String, reason: String },

    #[error("invalid ONTAP hostname {input:?}: {reason}")]
    InvalidHostname { input: String, reason: String },

    #[error("cannot use the ONTAP credentials from {source_of}: {problem}")]
    Credentials {
        source_of: CredentialSource,
        problem: String,
    },

    #[error("CA file {}: {problem}", path.display())]
    CaFile { path: PathBuf, problem: String },

    #[error("cannot set up TLS: {0}")]
    TlsSetup(String),

    #[error(
        "no SnapMirror relationship with destination {destination} on {host}; this command never creates one \
         (create and initialize it with ONTAP first, on the cluster that holds the destination volume)"
    )]
    NotFound { host: String, destination: String },

    #[error(
        "the SnapMirror relationship with destination {destination} replicates from {actual}, not from {expected}; \
         check --source and --destination"
    )]
    SourceMismatch {
        destination: String,
        expected: String,
        actual: String,
    },

    #[error("the SnapMirror relationship {destination} is {state}, not snapmirrored; {hint}")]
    NotSnapmirrored {
        destination: String,
        state: String,
        hint: &'static str,
    },

    #[error(
        "the SnapMirror relationship {destination} is unhealthy: {}; fix the cause, or pass --force to update anyway",
        format_reasons(reasons)
    )]
    Unhealthy {
        destination: String,
        reasons: Vec<CodedMessage>,
    },

    #[error(
        "ONTAP at {host} rejected the credentials (401 Unauthorized) from {source_of}; check that account's \
         username and password and that it may use the REST API (http application)"
    )]
    Unauthorized {
        host: String,
        source_of: CredentialSource,
    },

    #[error("the SnapMirror update job {job_uuid} failed: {message} (code {code})")]
    JobFailed {
        job_uuid: String,
        message: String,
        code: String,
    },

    #[error("the SnapMirror transfer {transfer_uuid} ended {state}: {}", error_info.as_ref().map_or_else(|| "ONTAP gave no reason".to_owned(), ToString::to_string))]
    TransferFailed {
        transfer_uuid: String,
        state: TransferState,
        error_info: Option<CodedMessage>,
    },

    #[error("timed out after {} {operation}", format_duration(*after))]
    Timeout { operation: String, after: Duration },

    #[error("the TLS certificate of {host} is not trusted ({reason}); {hint}")]
    UntrustedCertificate {
        host: String,
        reason: String,
        hint: &'static str,
    },

    #[error("TLS with {host} failed: {reason}")]
    Tls { host: String, reason: String },

    #[error("cannot reach ONTAP at {host} ({request})")]
    Connect {
        host: String,
        request: String,
        #[source]
        source: reqwest::Error,
    },

    #[error(
        "{method} {path} answered {status}, a redirect {}; redirects are never followed (is --hostname the \
         cluster management address?)",
        location.as_deref().map_or_else(|| "without a Location header".to_owned(), |l| format!("to {l}"))
    )]
    Redirect {
        method: String,
        path: String,
        status: StatusCode,
        location: Option<String>,
    },

    /// The transfer POST reached ONTAP (or may have), but its answer did not come back: whether a transfer
    /// started is unknown. Never retried: a second POST could start a second transfer.
    #[error(
        "{request} was sent to ONTAP at {host}, but its answer was lost ({reason}): the transfer MAY have \
         started"
    )]
    PostAnswerLost {
        host: String,
        request: String,
        reason: String,
        /// The answer was awaited until a timeout ran out (rather than the connection failing).
        timed_out: bool,
    },

    /// `--if-busy=fail`: another transfer runs on the relationship.
    #[error(
        "the SnapMirror relationship {destination} is busy: {transfer}; nothing was started (--if-busy=fail)"
    )]
    Busy {
        destination: String,
        transfer: crate::model::BusyTransfer,
    },

    #[error("{method} {path} answered {status}{}", error.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    Status {
        method: String,
        path: String,
        status: StatusCode,
        error: Option<Box<ApiError>>,
    },

    #[error("cannot decode ONTAP's answer to {what}: {source}")]
    Decode {
        what: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("unexpected answer to {what}: {problem}")]
    UnexpectedResponse { what: String, problem: String },
}

impl OntapError {
    /// A wait or request ran out of time (the operation may still finish on the cluster).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. } | Self::PostAnswerLost { timed_out: true, .. }
        )
    }
}

/// What to do about a relationship in `state`; this client never resyncs, resumes or initializes by itself.
pub(crate) fn state_hint(state: &RelationshipState) -> &'static str {
    match state {
        RelationshipState::BrokenOff => {
            "it was broken off; this command never resyncs (resync it with ONTAP if you mean to, then update)"
        }
        RelationshipState::Paused => {
            "it is quiesced; this command never resumes it (resume it with ONTAP if you mean to)"
        }
        RelationshipState::Uninitialized => {
            "it was never initialized; this command never initializes (initialize it with ONTAP first)"
        }
        _ => "an update needs an initialized, idle asynchronous relationship",
    }
}

fn format_reasons(reasons: &[CodedMessage]) -> String {
    if reasons.is_empty() {
        return "ONTAP gave no reason".to_owned();
    }
    CodedMessage::join(reasons)
}

/// `90s`, `15m`, `1h30m`, `250ms`.
pub fn format_duration(duration: Duration) -> String {
    let total_ms = duration.as_millis();
    if total_ms < 1000 {
        return format!("{total_ms}ms");
    }
    let total = duration.as_secs();
    let (hours, minutes, seconds) = (total / 3600, total % 3600 / 60, total % 60);
    let mut text = String::new();
    if hours > 0 {
        text.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        text.push_str(&format!("{minutes}m"));
    }
    if seconds > 0 || text.is_empty() {
        text.push_str(&format!("{seconds}s"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that `text` contains each of `phrases`, naming the one missing.
    #[track_caller]
    fn assert_says(text: &str, phrases: &[&str]) {
        for phrase in phrases {
            assert!(text.contains(phrase), "{phrase:?} is not in: {text}");
        }
    }

    #[test]
    fn durations_format_compactly() {
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(900)), "15m");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(3601)), "1h1s");
    }

    #[test]
    fn unhealthy_lists_every_reason() {
        let error = OntapError::Unhealthy {
            destination: "svm2:dst".into(),
            reasons: vec![
                CodedMessage {
                    code: Some("6619546".into()),
                    message: Some("Transfer failed.".into()),
                },
                CodedMessage {
                    code: None,
                    message: Some("Destination volume is offline.".into()),
                },
            ],
        };
        assert_says(
            &error.to_string(),
            &[
                "Transfer failed. (code 6619546); Destination volume is offline.",
                "--force",
            ],
        );
    }

    #[test]
    fn unauthorized_names_the_source_of_the_credentials() {
        let error = OntapError::Unauthorized {
            host: "cluster1".into(),
            source_of: CredentialSource::Secret {
                namespace: "kubeflow".into(),
                name: "ontap".into(),
            },
        };
        assert_says(&error.to_string(), &["Secret kubeflow/ontap (--secret)"]);
    }

    #[test]
    fn redirects_name_the_location_in_plain_words() {
        let redirect = |location: Option<&str>| {
            OntapError::Redirect {
                method: "GET".into(),
                path: "/api/cluster".into(),
                status: StatusCode::FOUND,
                location: location.map(str::to_owned),
            }
            .to_string()
        };
        assert_says(
            &redirect(Some("/api/elsewhere")),
            &["answered 302 Found, a redirect to /api/elsewhere;"],
        );
        assert_says(&redirect(None), &["a redirect without a Location header"]);
        for text in [redirect(Some("/x")), redirect(None)] {
            assert!(!text.contains("Some(") && !text.contains("None"), "{text}");
        }
    }

    #[test]
    fn a_lost_post_answer_says_the_transfer_may_have_started() {
        let lost = |timed_out| OntapError::PostAnswerLost {
            host: "cluster1".into(),
            request: "POST /api/snapmirror/relationships/r1/transfers".into(),
            reason: "connection closed before the answer was complete".into(),
            timed_out,
        };
        let text = lost(false).to_string();
        assert_says(&text, &["MAY have started"]);
        assert!(!text.contains("cannot reach"), "{text}");
        assert!(!lost(false).is_timeout());
        assert!(lost(true).is_timeout(), "a timeout keeps its exit code");
    }

    #[test]
    fn state_hints_never_suggest_this_tool_fixes_the_state() {
        let error = OntapError::NotSnapmirrored {
            destination: "svm2:dst".into(),
            state: "broken_off".into(),
            hint: state_hint(&RelationshipState::BrokenOff),
        };
        assert_says(
            &error.to_string(),
            &["is broken_off, not snapmirrored", "never resyncs"],
        );
    }
}
