//! The replication lifecycle's decisions, as pure functions of plain data: what the two clusters hold
//! ([`model::Observed`]), the ONE next step towards a goal ([`plan::plan`]), what a step does to the clusters and
//! how Trident protect reacts ([`simulate`]), every preflight check ([`checks`]), the status view ([`status`]),
//! the operation record kept in the lock ([`record`]), the objects written ([`objects`]), what a wait waits for
//! ([`wait`]), which steps need a confirmation ([`confirm`]), and the one description of every step
//! ([`describe`]). Reading Trident protect's objects tolerantly is here too ([`read`]): it is a decision about
//! what a field means.
//!
//! Nothing here talks to a cluster, reads a clock or draws a random number: those come in as arguments, so
//! every rule is tested by tables without a cluster. `tprotect-lifecycle` does the I/O and drives these
//! functions.

pub mod checks;
pub mod confirm;
pub mod describe;
pub mod model;
pub mod objects;
pub mod plan;
pub mod read;
pub mod record;
pub mod simulate;
pub mod states;
pub mod status;
pub mod wait;

pub use model::*;

/// `-` for an empty text, as the check and status tables show a value Trident protect has not written.
pub(crate) fn or_dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

/// Why an operation cannot proceed. Every message names the cluster, the namespace and the object, and says
/// what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "relationship {name:?} not found: no AppMirrorRelationship of that name (or labelled tprotect.io/relationship={name}) in {searched}"
    )]
    NotFound { name: String, searched: String },
    #[error(
        "relationship {name:?} has an AppMirrorRelationship on BOTH clusters; only the destination may hold one. Delete the stale one (kubectl --context <cluster> delete amr {name} -n <namespace>) and run the command again"
    )]
    AmrOnBothClusters { name: String },
    #[error("cluster {context} is unreachable ({error}); {needed_for} needs it")]
    Unreachable {
        context: String,
        error: String,
        needed_for: String,
    },
    #[error("{what} {namespace}/{name} not found on cluster {context}. {hint}")]
    Missing {
        what: &'static str,
        context: String,
        namespace: String,
        name: String,
        hint: String,
    },
    #[error("{operation} cannot start: {object} on {context} is {state}. {hint}")]
    WrongState {
        operation: &'static str,
        context: String,
        /// `Kind namespace/name`: the AppMirrorRelationship, or the Application it replicates.
        object: String,
        state: String,
        hint: String,
    },
    #[error("{kind} {namespace}/{name} on {context} failed: {error}")]
    Failed {
        kind: &'static str,
        context: String,
        namespace: String,
        name: String,
        error: String,
    },
    #[error(
        "a {in_progress} of relationship {name:?} is in progress (started {started}); finish it: kubectl tprotect {in_progress} {name}; or give it up, leaving both clusters as they are: kubectl tprotect {in_progress} {name} --abandon. (kubectl tprotect delete {name} deletes the relationship whatever is in progress)"
    )]
    OtherOperationInProgress {
        name: String,
        in_progress: String,
        started: String,
    },
    #[error("relationship {name:?}: {message}")]
    Conflict { name: String, message: String },
    #[error(
        "relationship {name:?}: the {operation} record in the lock is missing; run the command again to start it"
    )]
    NoRecord { name: String, operation: &'static str },
}

impl PlanError {
    /// Relationship `name` conflicts with what the clusters hold; `message` says how and what to do.
    pub(crate) fn conflict(name: &str, message: impl Into<String>) -> Self {
        PlanError::Conflict {
            name: name.to_string(),
            message: message.into(),
        }
    }

    /// `operation` cannot start from the state of AppMirrorRelationship `amr` on cluster `context`.
    pub(crate) fn wrong_state(
        operation: &'static str,
        context: &str,
        amr: &AmrView,
        state: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        PlanError::WrongState {
            operation,
            context: context.to_string(),
            object: format!("AppMirrorRelationship {}/{}", amr.namespace, amr.name),
            state: state.into(),
            hint: hint.into(),
        }
    }
}
