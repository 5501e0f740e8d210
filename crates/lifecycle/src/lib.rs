//! Replication lifecycle operations on two clusters: setup, failover, resync, reverse-resync, reverse, failback,
//! delete.
//!
//! Operations reconcile, they do not script: [`plan::plan`] is a pure function from what is observed on both
//! clusters (and the operation record kept in the lock) to the ONE next step. The runner observes, plans,
//! performs that step idempotently, and observes again until the goal holds. Killed at any point, the same
//! command started again observes where things are and continues. `--dry-run=client` is the same planner run
//! over simulated observations ([`simulate`]).

pub mod model;
pub mod plan;
pub mod simulate;

// The I/O half: clusters from kubeconfig contexts, observation, the lock, execution, waits, the run loop.
pub mod checks;
pub mod clusters;
pub mod error;
pub mod execute;
pub mod lock;
pub mod observe;
pub mod runner;
pub mod wait;

pub use clusters::{ClusterHandle, Clusters};
pub use error::RunError;
pub use model::*;
pub use runner::{DryRun, Progress, RunOptions, plan_only, run};

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
    #[error("{operation} cannot start: AppMirrorRelationship {object} on {context} is {state}. {hint}")]
    WrongState {
        operation: &'static str,
        context: String,
        /// `namespace/name`
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
        "a {in_progress} of relationship {name:?} is in progress (started {started}); finish it first with: kubectl tprotect {in_progress} {name}"
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
