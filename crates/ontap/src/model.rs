//! Typed ONTAP REST responses for SnapMirror relationships, transfers and jobs.
//!
//! Only the fields this client reads are modelled; ONTAP sends more and serde ignores them. Enumerations keep
//! values this client does not know (`Other`) instead of failing, because newer ONTAP releases add states.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use serde_with::skip_serializing_none;

use crate::duration::parse_iso8601_duration;

/// Defines a string-valued ONTAP enumeration that round-trips unknown values through `Other`.
macro_rules! ontap_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $($variant,)+
            /// A value this client does not know (kept verbatim).
            Other(String),
        }

        impl $name {
            /// ONTAP's spelling of the value.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Other(text) => text,
                }
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                match text.as_str() {
                    $($text => Self::$variant,)+
                    _ => Self::Other(text),
                }
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.as_str().to_owned()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

ontap_enum!(
    /// `snapmirror.relationship.state`.
    RelationshipState {
        BrokenOff => "broken_off",
        Paused => "paused",
        Snapmirrored => "snapmirrored",
        Uninitialized => "uninitialized",
        InSync => "in_sync",
        OutOfSync => "out_of_sync",
        Synchronizing => "synchronizing",
        Expanding => "expanding",
        Shrinking => "shrinking",
    }
);

ontap_enum!(
    /// `snapmirror.transfer.state`.
    TransferState {
        Aborted => "aborted",
        Failed => "failed",
        HardAborted => "hard_aborted",
        Queued => "queued",
        Success => "success",
        Transferring => "transferring",
    }
);

ontap_enum!(
    /// `cluster.job.state`.
    JobState {
        Queued => "queued",
        Running => "running",
        Paused => "paused",
        Success => "success",
        Failure => "failure",
    }
);

impl TransferState {
    /// A transfer in this state will not change any more. Unknown states are treated as still running: the
    /// caller's timeout bounds the wait.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Success | Self::Failed | Self::Aborted | Self::HardAborted
        )
    }
}

impl JobState {
    /// `success` and `failure` are the only terminal job states.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Success | Self::Failure)
    }
}

/// ONTAP sends codes as strings in error objects and as integers in jobs and `error_info`; both become text.
fn code_as_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Code {
        Text(String),
        Number(serde_json::Number),
    }
    Ok(Option::<Code>::deserialize(deserializer)?.map(|code| match code {
        Code::Text(text) => text,
        Code::Number(number) => number.to_string(),
    }))
}

/// `null` and absent both mean "none".
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// A code and message pair: `unhealthy_reason[]`, `error_info`, and an error's `arguments[]`.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CodedMessage {
    #[serde(default, deserialize_with = "code_as_text")]
    pub code: Option<String>,
    pub message: Option<String>,
}

impl CodedMessage {
    /// The messages, each as [`Display`](fmt::Display) shows it, joined with `; `.
    pub fn join(messages: &[CodedMessage]) -> String {
        let texts: Vec<String> = messages.iter().map(ToString::to_string).collect();
        texts.join("; ")
    }
}

impl fmt::Display for CodedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = self.message.as_deref().unwrap_or("(no message)");
        match &self.code {
            Some(code) => write!(f, "{message} (code {code})"),
            None => f.write_str(message),
        }
    }
}

/// The body of an ONTAP error response: `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErrorResponse {
    pub error: ApiError,
}

/// ONTAP's error object.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ApiError {
    #[serde(default, deserialize_with = "code_as_text")]
    pub code: Option<String>,
    pub message: Option<String>,
    pub target: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub arguments: Vec<CodedMessage>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message.as_deref().unwrap_or("(no message)"))?;
        let mut details = Vec::new();
        if let Some(code) = &self.code {
            details.push(format!("code {code}"));
        }
        if let Some(target) = &self.target {
            details.push(format!("target {target}"));
        }
        if !details.is_empty() {
            write!(f, " ({})", details.join(", "))?;
        }
        for argument in &self.arguments {
            write!(f, "; {argument}")?;
        }
        Ok(())
    }
}

/// A collection answer: `{"records": [...], "num_records": N, "_links": {...}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct Collection<T> {
    #[serde(default = "Vec::new", deserialize_with = "null_as_empty")]
    pub records: Vec<T>,
    #[serde(default)]
    pub num_records: Option<u64>,
}

/// A relationship endpoint (`source` or `destination`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRef {
    pub path: String,
}

/// The relationship's `transfer`: the current transfer, or the last one when none is running.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TransferSummary {
    pub uuid: Option<String>,
    pub state: Option<TransferState>,
}

impl TransferSummary {
    /// `queued`, `transferring`, or a state this client does not know (so not known to have ended). A summary
    /// without a state says nothing is running.
    pub fn is_running(&self) -> bool {
        self.state.as_ref().is_some_and(|state| !state.is_terminal())
    }
}

/// How far the destination is behind the source: ONTAP's ISO-8601 text and the parsed duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LagTime {
    pub iso8601: String,
    pub duration: Duration,
}

impl<'de> Deserialize<'de> for LagTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let iso8601 = String::deserialize(deserializer)?;
        let duration = parse_iso8601_duration(&iso8601).map_err(serde::de::Error::custom)?;
        Ok(LagTime { iso8601, duration })
    }
}

impl Serialize for LagTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.iso8601)
    }
}

/// `snapmirror.relationship`, with the fields requested by [`RELATIONSHIP_FIELDS`].
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relationship {
    pub uuid: String,
    pub state: Option<RelationshipState>,
    pub healthy: Option<bool>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub unhealthy_reason: Vec<CodedMessage>,
    pub lag_time: Option<LagTime>,
    pub source: Option<EndpointRef>,
    pub destination: Option<EndpointRef>,
    pub transfer: Option<TransferSummary>,
}

/// The `fields` the relationship lookup asks for (ONTAP returns only `uuid` and the paths otherwise).
pub const RELATIONSHIP_FIELDS: &str =
    "uuid,state,healthy,unhealthy_reason,lag_time,source.path,destination.path,transfer.state,transfer.uuid";

impl Relationship {
    pub fn source_path(&self) -> Option<&str> {
        self.source.as_ref().map(|s| s.path.as_str())
    }

    pub fn destination_path(&self) -> Option<&str> {
        self.destination.as_ref().map(|d| d.path.as_str())
    }

    pub fn transfer_uuid(&self) -> Option<&str> {
        self.transfer.as_ref().and_then(|t| t.uuid.as_deref())
    }
}

/// `snapmirror.transfer`.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub uuid: String,
    pub state: TransferState,
    pub bytes_transferred: Option<u64>,
    pub end_time: Option<String>,
    pub error_info: Option<CodedMessage>,
}

/// `cluster.job`.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub uuid: String,
    pub state: JobState,
    pub message: Option<String>,
    #[serde(default, deserialize_with = "code_as_text")]
    pub code: Option<String>,
    pub description: Option<String>,
    pub error: Option<ApiError>,
}

/// The body of a `202 Accepted`: `{"job": {"uuid": ..., "_links": ...}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct JobAccepted {
    pub job: JobLink,
}

#[derive(Debug, Clone, Deserialize)]
pub struct JobLink {
    pub uuid: String,
}

/// How a running transfer was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BusySeen {
    /// The lookup before the POST showed it `queued` or `transferring`.
    BeforePost,
    /// ONTAP refused the POST (code 13303844): one started between the lookup and the POST.
    PostRefused,
    /// The POST was accepted as a job, and the job failed with code 13303844.
    JobRefused,
}

/// A transfer that was running on the relationship when this update wanted to start one.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BusyTransfer {
    pub uuid: Option<String>,
    pub state: Option<TransferState>,
    pub seen: BusySeen,
    /// ONTAP's refusal, when it refused the POST or the job.
    pub refusal: Option<String>,
}

impl std::fmt::Display for BusyTransfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let running = match (&self.uuid, &self.state) {
            (Some(uuid), Some(state)) => format!("transfer {uuid} is {state}"),
            (None, Some(state)) => format!("a transfer is {state}"),
            _ => "another transfer is in progress".to_owned(),
        };
        match &self.refusal {
            Some(refusal) => write!(f, "ONTAP refused the update ({refusal}); {running}"),
            None => f.write_str(&running),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn relationship_parses_every_field() {
        let body = json!({
            "uuid": "7f3b2c1e-0000-4000-8000-000000000001",
            "state": "snapmirrored",
            "healthy": false,
            "unhealthy_reason": [{"code": "6619546", "message": "Transfer failed.", "arguments": []}],
            "lag_time": "PT8H35M42S",
            "source": {"path": "svm1:vol1", "svm": {"name": "svm1"}},
            "destination": {"path": "svm2:vol1_dst"},
            "transfer": {"state": "success", "uuid": "t-1"},
            "_links": {"self": {"href": "/api/snapmirror/relationships/x"}}
        });
        let relationship: Relationship = serde_json::from_value(body).unwrap();
        assert_eq!(relationship.state, Some(RelationshipState::Snapmirrored));
        assert_eq!(relationship.healthy, Some(false));
        assert_eq!(relationship.unhealthy_reason[0].code.as_deref(), Some("6619546"));
        assert_eq!(
            relationship.unhealthy_reason[0].message.as_deref(),
            Some("Transfer failed.")
        );
        let lag = relationship.lag_time.as_ref().unwrap();
        assert_eq!(lag.duration, Duration::from_secs(8 * 3600 + 35 * 60 + 42));
        assert_eq!(lag.iso8601, "PT8H35M42S");
        assert_eq!(relationship.source_path(), Some("svm1:vol1"));
        assert_eq!(relationship.destination_path(), Some("svm2:vol1_dst"));
        assert_eq!(relationship.transfer_uuid(), Some("t-1"));
        assert_eq!(relationship.transfer.unwrap().state, Some(TransferState::Success));
    }

    #[test]
    fn relationship_tolerates_missing_and_null_fields() {
        let relationship: Relationship =
            serde_json::from_value(json!({"uuid": "u", "unhealthy_reason": null})).unwrap();
        assert_eq!(relationship.state, None);
        assert!(relationship.unhealthy_reason.is_empty());
        assert_eq!(relationship.lag_time, None);
        assert_eq!(relationship.transfer_uuid(), None);
    }

    #[test]
    fn malformed_lag_time_is_an_error_not_a_silent_zero() {
        let result = serde_json::from_value::<Relationship>(json!({"uuid": "u", "lag_time": "8 hours"}));
        assert!(result.is_err());
    }

    #[test]
    fn unknown_states_are_kept_verbatim() {
        let state: RelationshipState = serde_json::from_value(json!("quiesced_someday")).unwrap();
        assert_eq!(state, RelationshipState::Other("quiesced_someday".into()));
        assert_eq!(serde_json::to_value(&state).unwrap(), json!("quiesced_someday"));
        assert_eq!(
            serde_json::to_value(RelationshipState::BrokenOff).unwrap(),
            json!("broken_off")
        );
        let transfer: TransferState = serde_json::from_value(json!("finalizing")).unwrap();
        assert!(!transfer.is_terminal());
    }

    #[test]
    fn terminal_states() {
        for state in ["success", "failed", "aborted", "hard_aborted"] {
            assert!(TransferState::from(state.to_owned()).is_terminal(), "{state}");
        }
        for state in ["queued", "transferring"] {
            assert!(!TransferState::from(state.to_owned()).is_terminal(), "{state}");
        }
        assert!(JobState::Success.is_terminal() && JobState::Failure.is_terminal());
        assert!(!JobState::Queued.is_terminal() && !JobState::Running.is_terminal());
        assert!(!JobState::Paused.is_terminal());
    }

    #[test]
    fn job_code_may_be_a_number_and_error_may_be_present() {
        let job: Job = serde_json::from_value(json!({
            "uuid": "j", "state": "failure", "message": "Update failed.", "code": 13303844,
            "error": {"code": "13303844", "message": "Update failed."}
        }))
        .unwrap();
        assert_eq!(job.state, JobState::Failure);
        assert_eq!(job.code.as_deref(), Some("13303844"));
        assert_eq!(job.error.unwrap().code.as_deref(), Some("13303844"));
    }

    #[test]
    fn transfer_error_info_parses() {
        let transfer: Transfer = serde_json::from_value(json!({
            "uuid": "t", "state": "failed", "bytes_transferred": 1024,
            "error_info": {"code": 13303812, "message": "Destination volume is offline."}
        }))
        .unwrap();
        assert_eq!(transfer.state, TransferState::Failed);
        assert_eq!(transfer.bytes_transferred, Some(1024));
        let info = transfer.error_info.unwrap();
        assert_eq!(info.to_string(), "Destination volume is offline. (code 13303812)");
    }

    #[test]
    fn error_body_parses_and_displays_code_target_arguments() {
        let body: ErrorResponse = serde_json::from_value(json!({"error": {
            "code": "13303847", "message": "Invalid property.", "target": "source_snapshot",
            "arguments": [{"code": "1", "message": "name too long"}]
        }}))
        .unwrap();
        assert_eq!(body.error.code.as_deref(), Some("13303847"));
        assert_eq!(
            body.error.to_string(),
            "Invalid property. (code 13303847, target source_snapshot); name too long (code 1)"
        );
    }

    #[test]
    fn collections_and_job_links_parse() {
        let collection: Collection<Relationship> =
            serde_json::from_value(json!({"records": [], "num_records": 0, "_links": {}})).unwrap();
        assert!(collection.records.is_empty());
        assert_eq!(collection.num_records, Some(0));
        let accepted: JobAccepted = serde_json::from_value(
            json!({"job": {"uuid": "j-1", "_links": {"self": {"href": "/api/cluster/jobs/j-1"}}}}),
        )
        .unwrap();
        assert_eq!(accepted.job.uuid, "j-1");
    }
}
