//! `tprotect-ontap`: an ONTAP REST client for SnapMirror — look a relationship up by its destination, check it,
//! start one update transfer, and follow the job and the transfer to the end.
//!
//! ```no_run
//! # async fn example() -> Result<(), tprotect_ontap::OntapError> {
//! use tprotect_ontap::{ClientOptions, CredentialSource, Credentials, IfBusy, OntapClient, UpdateRequest};
//!
//! let credentials = Credentials::from_dir("/mnt/secret".as_ref())?;
//! let client = OntapClient::new("cluster1.example.com".parse()?, credentials, ClientOptions::default())?;
//! let request = UpdateRequest {
//!     source: "svm1:vol1".parse()?,
//!     destination: "svm2:vol1_dst".parse()?,
//!     force: false,
//!     wait: true,
//!     dry_run: false,
//!     if_busy: IfBusy::Wait,
//! };
//! let outcome = tprotect_ontap::update(&client, &request, &mut |_progress| {}).await?;
//! # let _ = (outcome, CredentialSource::Caller);
//! # Ok(())
//! # }
//! ```
//!
//! Design notes:
//! - TLS is rustls with the ring provider, configured here ([`tls`]): system roots plus an optional CA file, or
//!   no verification at all when asked.
//! - GETs are retried with exponential backoff on connection failures, request timeouts and 429/502/503/504.
//!   The transfer POST is never retried: a second one is sent only after ONTAP refused the first because
//!   another transfer was running, once that transfer ended ([`IfBusy::Wait`]); a POST whose answer was lost is
//!   reported as such ([`OntapError::PostAnswerLost`]), never as "cannot reach". Redirects are never followed.
//! - Credentials never appear in Debug, Display, logs or errors ([`Credentials`]).

mod client;
mod credentials;
mod duration;
mod error;
mod gate;
mod model;
mod path;
pub mod tls;
mod update;

pub use client::{ClientOptions, OntapClient, RetryPolicy, TransferStarted};
pub use credentials::{CredentialSource, Credentials, PASSWORD_ENV, USERNAME_ENV};
pub use duration::{DurationParseError, parse_iso8601_duration};
pub use error::{OntapError, format_duration};
pub use gate::{CONDITION_FORMS, Condition, HeldCondition, held_conditions};
pub use model::{
    ApiError, BusySeen, BusyTransfer, CodedMessage, Collection, EndpointRef, ErrorResponse, Job, JobState,
    LagTime, RELATIONSHIP_FIELDS, Relationship, RelationshipState, Transfer, TransferState, TransferSummary,
};
pub use path::{ClusterHost, VolumePath};
pub use tls::TlsOptions;
pub use update::{
    IfBusy, Preconditions, Progress, RelationshipStatus, UpdateOutcome, UpdateRequest, UpdateResult,
    UpdateSummary, check_preconditions, running_transfer, status, update, update_refusal, wait_for_job,
    wait_for_transfer,
};
