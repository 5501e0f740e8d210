//! # A STAND-IN for Trident protect's controller — for tests and the demo only
//!
//! Trident protect's controller is closed source and needs ONTAP storage, so it cannot run on the project's local
//! clusters. This crate plays its documented behaviour (`../shared/docs/trident-protect.md`), driven only by the
//! custom resources as the real one is, so that the plugin's lifecycle commands and the webhook's namespace rules
//! can be exercised end to end on real API servers. It is run by the end-to-end tests and by `cargo xtask sim`; it
//! is **never** part of the product or its manifests, and nothing in the product may depend on it.
//!
//! It watches BOTH clusters (kube-runtime controllers, no polling loops) and acts under the clients it is given,
//! which should be the controller's identity (`system:serviceaccount:trident-protect:trident-protect-controller-manager`,
//! context suffix `-controller` in the testbed kubeconfig), so RBAC, audit logs and the webhook see its requests as
//! the real controller's.
//!
//! ## What it plays, per cluster, for the resources on that cluster
//!
//! | Resource | Behaviour |
//! |---|---|
//! | AppVault | after `appvault_delay`: `status.state: Available`, or `Error` with `status.error` naming each missing Secret or key (`providerCredentials.*.valueFromSecret`, Secret in the AppVault's namespace). Later Secret changes flip it at once. |
//! | Snapshot, ShutdownSnapshot | `Running`, then after `snapshot_delay` `Completed` with `appArchivePath` `<app>_<app-uid>/snapshots/<yyyymmddhhmmss>_<name>_<snapshot-uid>` (creation time, UTC), `completionTimestamp`, `appVaultRef`; or `Failed` with `status.error` when the Application (same namespace) or the AppVault (`trident-protect`) is missing or the AppVault is in `Error`. Condition [`SNAPSHOT_READY_CONDITION`]. |
//! | ShutdownSnapshot | also records that the application was shut down for a planned swap: before reporting Completed it sets the condition [`APPLICATION_SHUTDOWN_CONDITION`] (status True, reason [`APPLICATION_SHUTDOWN_REASON`], message naming the ShutdownSnapshot and its archive) on the Application's `status.conditions`. No workload is touched (none runs here). |
//! | Schedule | enabled, with `snapshotRetention` > 0: a Snapshot at each occurrence (owner reference to the Schedule, label [`SCHEDULE_LABEL`]` = <schedule>`, name `<schedule>-<yyyymmddhhmmss of the occurrence>`), then prunes the Schedule's Snapshots to `snapshotRetention`, oldest first, and sets `status.lastScheduleTime`. `Custom` follows `recurrenceRule`; Hourly/Daily/Weekly/Monthly are approximated by their period. No snapshot for occurrences before the stand-in first saw the Schedule. Disabled: nothing. |
//! | AppMirrorRelationship | see [`rules::amr`]: `Establishing` → `Established` once the source Application (uid = `sourceApplicationUID`, in a mapped source namespace), the source AppVault on both clusters and the destination AppVault exist — else `status.error` names each missing piece with cluster, namespace and name and the state stays. Transfers (`lastTransfer`, `lastTransferredSnapshot` = the newest Completed source Snapshot) at each occurrence of `recurrenceRule`. `Promoted`: `Promoting` → `Promoted`, creating the destination namespaces and Application and merging the source namespaces' labels and annotations into the destination's. `Promoted` → `Established`: resync. |
//!
//! The AMR's peer is the other cluster: an AMR on the destination cluster replicates from the source cluster, and
//! one on the source cluster (after a reverse resync) from the destination cluster.
//!
//! ### Promotion
//! - The destination namespaces are created if missing. With the source reachable, each mapped destination
//!   namespace gets `tprotect_policy::namespace::merge(source, destination, &SkipRules::none())` — the documented
//!   add/overwrite/keep merge with the `name` label rule — as a merge-patch UPDATE of the Namespace conditional on
//!   the resourceVersion read (never a partial server-side apply that could drop keys). The stand-in applies NO skip
//!   lists: in this project the admission webhook enforces them on the controller's write.
//! - With the source unreachable it promotes anyway (the disaster case), skips the merge and says so in the
//!   condition [`rules::amr::CONDITION_NAMESPACE_METADATA_MERGED`] (False, reason `SourceUnreachable`).
//! - The destination Application is named like the source one, lives in the AMR's namespace, includes the mapped
//!   destination namespaces and carries the AMR's `tprotect.io/relationship` label; `status.destinationApplicationRef`
//!   names it. It has no owner reference: deleting the AMR leaves it independent (the stand-in adds no finalizer).
//! - With `spec.promotedSnapshot`, promotion waits (state `Promoting`, `status.error`) until a ShutdownSnapshot on
//!   the source has an `appArchivePath` of that basename; `lastTransferredSnapshot` then names it.
//!
//! ### Resync (`Promoted` → `Established`)
//! Deletes (stops) the destination Application, sets the condition
//! [`rules::amr::CONDITION_DESTINATION_CHANGES_DISCARDED`] (True, reason `Resync`: every change written on the
//! destination since the failover is discarded), and goes `Establishing` → `Established`.
//!
//! ## Profiles
//! [`StandInConfig::profile`]: [`Profile::Documented`] (default) plays the forms above; [`Profile::Variant`] the other
//! plausible form of every field NetApp leaves undocumented (`docs/trident-protect-fields.md`): AMR `Pending`
//! while a prerequisite is missing, no transitional state during a resync (which then waits for the source),
//! `Error` for failures, a progress `status.error` while `Establishing` / `Promoting`,
//! `destinationApplicationRef` as `namespace/name`, the destination Application named `<source>-<uid prefix>`,
//! created after `Promoted` and kept on resync, no `lastTransferredSnapshot`, `conditions: []`, a finalizer on
//! AMRs, microsecond timestamps, AppVault `available`/`error` with the problem in `status.message`, snapshots
//! without a status until they end and `Error` when they fail, archive paths with a prefix and a trailing `/`,
//! missing namespaces created with their merged metadata. Each choice is a method in [`rules::forms`], whose table
//! lists them all. [`StandInConfig::from_env`] reads [`PROFILE_ENV`] (`TPROTECT_STANDIN_PROFILE`).
//!
//! ## Writes
//! Status only through the status subresource, as JSON merge patches of the fields the stand-in owns, conditional
//! on the `resourceVersion` the decision was based on; a 409 Conflict means: read again, decide again. Conditions
//! are `metav1.Condition`s with `observedGeneration` and a `lastTransitionTime` that moves only with the status.
//!
//! ## Time
//! Every transition waits its delay ([`StandInConfig`]); recurrences run on a simulated clock `time_scale` times
//! faster than real time ([`clock`]). Timestamps written are real time.
//!
//! ## Faults
//! [`Faults`] (in [`StandInConfig::faults`], shared, changed at run time): stall a transition so it never completes,
//! inject a transient `status.error` (set at one reconcile, cleared at the next), make the next status write
//! carry a stale `resourceVersion` (a real 409 from the API server, which the stand-in recovers from), or make an
//! AMR report a failure (the profile's failure state with `status.error`) until it is recovered.
//!
//! The pure decisions live in [`rules`] and are unit-tested without a cluster; [`StandIn`] wires them to
//! kube-runtime controllers.

pub mod clock;
pub mod conditions;
pub mod faults;
pub mod profile;
mod reconcile;
pub mod rules;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;

pub use faults::{Faults, Kind, Target, Transition};
pub use profile::{PROFILE_ENV, Profile};

/// Field manager of the stand-in's writes.
pub const FIELD_MANAGER: &str = "trident-protect-standin";
/// Label on the Snapshots a Schedule creates; the value is the Schedule's name. (Which label the real controller
/// uses is unverified: rely on the owner reference to the Schedule, which the stand-in also sets.)
pub const SCHEDULE_LABEL: &str = "standin.tprotect.io/schedule";
/// Condition on an Application's `status.conditions` recording that a ShutdownSnapshot shut it down.
pub const APPLICATION_SHUTDOWN_CONDITION: &str = "ShutdownForSwap";
/// Reason of [`APPLICATION_SHUTDOWN_CONDITION`].
pub const APPLICATION_SHUTDOWN_REASON: &str = "ShutdownSnapshotCompleted";
/// Condition on a Snapshot or ShutdownSnapshot: True once Completed.
pub const SNAPSHOT_READY_CONDITION: &str = "Ready";

/// Errors of the stand-in.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to an API server failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// An object could not be converted to or from JSON.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Writes kept conflicting with other writers.
    #[error("gave up after repeated 409 Conflicts writing {0}")]
    Conflicts(String),
    /// An object the stand-in reads has an unexpected shape.
    #[error("invalid object: {0}")]
    Invalid(String),
    /// The environment names a profile that does not exist.
    #[error(
        "{variable}={value:?} is not a stand-in profile: set it to documented or variant (or leave it unset for \
         documented)"
    )]
    Profile { variable: &'static str, value: String },
}

impl Error {
    /// A 409 Conflict on an update (not an AlreadyExists on a create).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Kube(kube::Error::Api(status)) if status.is_conflict() && !status.is_already_exists())
    }
}

/// How the stand-in behaves.
#[derive(Debug, Clone)]
pub struct StandInConfig {
    /// Simulated time runs this many times faster than real time for recurrences (60.0: a 5-minute interval
    /// passes in 5 seconds).
    pub time_scale: f64,
    /// AppVault: no state → first verdict.
    pub appvault_delay: Duration,
    /// Snapshot / ShutdownSnapshot: Running → Completed or Failed.
    pub snapshot_delay: Duration,
    /// AMR: Establishing → Established (at least; longer while prerequisites are missing).
    pub establish_delay: Duration,
    /// AMR: Promoting → Promoted.
    pub promote_delay: Duration,
    /// AMR: Promoted → Establishing (resync).
    pub resync_delay: Duration,
    /// AMR deleted → its finalizer removed (variant profile only; the documented one has no finalizer).
    pub delete_delay: Duration,
    /// How long a request to the peer cluster may take before it counts as unreachable.
    pub peer_timeout: Duration,
    /// How soon to look again at an object that is blocked or whose reconcile failed.
    pub retry_interval: Duration,
    /// Names of the two clusters in messages (`status.error`, conditions).
    pub source_name: String,
    pub destination_name: String,
    /// Injected faults (shared: keep a clone to change them while the stand-in runs).
    pub faults: Faults,
    /// Which plausible form of each undocumented field and behaviour the stand-in plays.
    pub profile: Profile,
}

impl Default for StandInConfig {
    fn default() -> Self {
        let delay = Duration::from_millis(200);
        Self {
            time_scale: 1.0,
            appvault_delay: delay,
            snapshot_delay: delay,
            establish_delay: delay,
            promote_delay: delay,
            resync_delay: delay,
            delete_delay: delay,
            peer_timeout: Duration::from_secs(3),
            retry_interval: Duration::from_secs(1),
            source_name: "source".into(),
            destination_name: "destination".into(),
            faults: Faults::new(),
            profile: Profile::Documented,
        }
    }
}

impl StandInConfig {
    /// The defaults, with the profile [`PROFILE_ENV`] names (documented when unset): what tests start from, so
    /// that `TPROTECT_STANDIN_PROFILE=variant` runs them against the variant.
    pub fn from_env() -> Result<Self, Error> {
        Ok(Self {
            profile: Profile::from_env()?,
            ..Self::default()
        })
    }

    /// Every transition delay set to `delay`.
    pub fn with_delays(mut self, delay: Duration) -> Self {
        self.appvault_delay = delay;
        self.snapshot_delay = delay;
        self.establish_delay = delay;
        self.promote_delay = delay;
        self.resync_delay = delay;
        self.delete_delay = delay;
        self
    }
}

/// The stand-in controller for a pair of clusters.
#[derive(Clone, educe::Educe)]
#[educe(Debug)]
pub struct StandIn {
    #[educe(Debug(ignore))]
    source: kube::Client,
    #[educe(Debug(ignore))]
    destination: kube::Client,
    config: StandInConfig,
}

impl StandIn {
    /// A stand-in for `source` and `destination`; both clients should act as Trident protect's controller.
    pub fn new(source: kube::Client, destination: kube::Client, config: StandInConfig) -> Self {
        Self {
            source,
            destination,
            config,
        }
    }

    /// The faults handle (shared with the running stand-in).
    pub fn faults(&self) -> Faults {
        self.config.faults.clone()
    }

    /// Runs until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let clock = clock::SimClock::new(Timestamp::now(), self.config.time_scale);
        let source = reconcile::Cluster {
            name: self.config.source_name.clone(),
            client: self.source.clone(),
        };
        let destination = reconcile::Cluster {
            name: self.config.destination_name.clone(),
            client: self.destination.clone(),
        };
        let context = |local: &reconcile::Cluster, peer: &reconcile::Cluster| {
            Arc::new(reconcile::Ctx {
                local: local.clone(),
                peer: peer.clone(),
                config: self.config.clone(),
                clock,
                phases: clock::PhaseClock::default(),
                last_runs: Mutex::default(),
                restore_errors: Mutex::default(),
            })
        };
        let clusters = futures::future::join(
            reconcile::run_cluster(context(&source, &destination)),
            reconcile::run_cluster(context(&destination, &source)),
        );
        tracing::info!(time_scale = clock.scale(), "Trident protect stand-in running");
        tokio::select! {
            _ = clusters => {}
            () = shutdown => {}
        }
        tracing::info!("Trident protect stand-in stopped");
    }

    /// Runs on a tokio task until the handle is shut down or dropped.
    pub fn spawn(self) -> StandInHandle {
        let faults = self.faults();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(self.run(async move {
            let _ = stopped.await;
        }));
        StandInHandle {
            stop: Some(stop),
            task: Some(task),
            faults,
        }
    }
}

/// A running stand-in; stops when dropped or shut down.
#[derive(Debug)]
pub struct StandInHandle {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    faults: Faults,
}

impl StandInHandle {
    /// The faults handle of the running stand-in.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Stops the stand-in and waits until it has stopped.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for StandInHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
