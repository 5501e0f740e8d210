//! Replication lifecycle operations on two clusters: setup, failover, resync, reverse-resync, reverse, failback,
//! delete — the I/O half.
//!
//! Every decision is a pure function in [`tprotect_lifecycle_rules`] (re-exported as [`rules`]): the next step,
//! the checks, the status view, the record rules, the objects written. This crate reads both clusters into the
//! planner's [`Observed`] ([`observe`]), holds the relationship's lock ([`lock`]), performs one step
//! idempotently ([`execute`]), waits with watches ([`wait`]), and loops until the goal holds ([`runner`]).
//! Killed at any point, the same command started again observes where things are and continues.

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
pub use runner::{DryRun, Progress, RunOptions, RunReport, RunResult, StepReport, abandon, run};
pub use tprotect_lifecycle_rules as rules;
pub use tprotect_lifecycle_rules::model::*;
pub use tprotect_lifecycle_rules::{PlanError, model};
