//! The I/O half: one kube-runtime `Controller` per kind and cluster, each reconcile observing the cluster (and, for
//! an AMR, its peer), asking `crate::rules` what to do, and doing it.

mod amr;
mod appvault;
mod schedule;
mod snapshot;
mod write;

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tprotect_api::{AppMirrorRelationship, AppVault, Application, Schedule, ShutdownSnapshot, Snapshot};

use crate::clock::{PhaseClock, SimClock};
use crate::faults::{Kind, Target};
use crate::{Error, StandInConfig};

/// One cluster as the stand-in sees it.
#[derive(Clone)]
pub(crate) struct Cluster {
    pub name: String,
    pub client: kube::Client,
}

/// Shared by every reconcile of one cluster's controllers.
pub(crate) struct Ctx {
    pub local: Cluster,
    /// The other cluster: the source of the AMRs that live on `local`.
    pub peer: Cluster,
    pub config: StandInConfig,
    pub clock: SimClock,
    pub phases: PhaseClock,
    /// Index of the last occurrence run, by object uid (Schedules and AMR transfers).
    pub last_runs: Mutex<HashMap<String, i64>>,
    /// Objects carrying an injected transient error, and the error to put back at their next reconcile.
    pub restore_errors: Mutex<HashMap<Target, Option<String>>>,
}

impl Ctx {
    pub fn phase_key(&self, kind: Kind, uid: &str) -> String {
        format!("{}/{}/{uid}", self.local.name, kind.as_str())
    }

    pub fn last_run(&self, uid: &str) -> Option<i64> {
        self.last_runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(uid)
            .copied()
    }

    pub fn set_last_run(&self, uid: &str, index: Option<i64>) {
        let mut runs = self.last_runs.lock().unwrap_or_else(|e| e.into_inner());
        match index {
            Some(index) => runs.insert(uid.to_string(), index),
            None => runs.remove(uid),
        };
    }

    /// Runs a request against the peer cluster: `Ok(Err(reason))` when the peer did not answer (connection
    /// failure, timeout, or a 5xx of an API server that is going down or coming up).
    pub async fn on_peer<T>(
        &self,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<Result<T, String>, Error> {
        match tokio::time::timeout(self.config.peer_timeout, request).await {
            Err(_) => Ok(Err(format!(
                "no answer from cluster {:?} within {:?}",
                self.peer.name, self.config.peer_timeout
            ))),
            Ok(Ok(value)) => Ok(Ok(value)),
            Ok(Err(kube::Error::Api(status))) if status.code < 500 => Err(kube::Error::Api(status).into()),
            Ok(Err(error)) => Ok(Err(error.to_string())),
        }
    }
}

/// Turns a watch of every `K` on `cluster` into a stream of "something changed" ticks, with its own backoff,
/// dropping its errors: a watch of a peer cluster that is down must not slow down the triggers of the local
/// cluster.
fn changes<K>(cluster: &Cluster) -> impl Stream<Item = ()> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let what = K::plural(&()).into_owned();
    let cluster_name = cluster.name.clone();
    watcher(Api::<K>::all(cluster.client.clone()), watcher::Config::default())
        .default_backoff()
        .touched_objects()
        .filter_map(move |event| {
            if let Err(error) = &event {
                tracing::debug!(cluster = %cluster_name, what = what.as_str(), %error, "watch error (retrying with backoff)");
            }
            futures::future::ready(event.ok().map(|_| ()))
        })
}

/// Ticks whenever the faults change.
fn fault_changes(ctx: &Ctx) -> impl Stream<Item = ()> + Send + 'static {
    futures::stream::unfold(ctx.config.faults.subscribe(), |mut changes| async move {
        changes.changed().await.ok()?;
        Some(((), changes))
    })
}

fn error_policy<K>(object: Arc<K>, error: &Error, ctx: Arc<Ctx>) -> Action
where
    K: Resource,
{
    tracing::warn!(
        cluster = %ctx.local.name,
        namespace = object.meta().namespace.as_deref().unwrap_or_default(),
        name = object.meta().name.as_deref().unwrap_or_default(),
        %error,
        "reconcile failed; retrying"
    );
    Action::requeue(ctx.config.retry_interval)
}

async fn drain<S, T, E>(stream: S, cluster: String, kind: &'static str)
where
    S: Stream<Item = Result<T, E>>,
    E: std::fmt::Display,
{
    stream
        .for_each(|result| {
            if let Err(error) = result {
                tracing::debug!(%cluster, kind, %error, "controller");
            }
            futures::future::ready(())
        })
        .await
}

/// Runs every controller of one cluster until dropped.
pub(crate) async fn run_cluster(ctx: Arc<Ctx>) {
    let local = ctx.local.client.clone();
    let name = ctx.local.name.clone();
    let config = || watcher::Config::default();

    let appvaults = Controller::new(Api::<AppVault>::all(local.clone()), config())
        .reconcile_all_on(changes::<PartialObjectMeta<Secret>>(&ctx.local))
        .reconcile_all_on(fault_changes(&ctx))
        .run(appvault::reconcile, error_policy, ctx.clone());

    let snapshots = Controller::new(Api::<Snapshot>::all(local.clone()), config())
        .reconcile_all_on(fault_changes(&ctx))
        .run(snapshot::reconcile::<Snapshot>, error_policy, ctx.clone());

    let shutdown_snapshots = Controller::new(Api::<ShutdownSnapshot>::all(local.clone()), config())
        .reconcile_all_on(fault_changes(&ctx))
        .run(snapshot::reconcile::<ShutdownSnapshot>, error_policy, ctx.clone());

    let schedules = Controller::new(Api::<Schedule>::all(local.clone()), config())
        .reconcile_all_on(fault_changes(&ctx))
        .run(schedule::reconcile, error_policy, ctx.clone());

    // An AMR depends on objects of both clusters; there are few AMRs, so any change reconciles them all.
    let amrs = Controller::new(Api::<AppMirrorRelationship>::all(local.clone()), config())
        .reconcile_all_on(changes::<AppVault>(&ctx.local))
        .reconcile_all_on(changes::<AppVault>(&ctx.peer))
        .reconcile_all_on(changes::<Application>(&ctx.peer))
        .reconcile_all_on(changes::<ShutdownSnapshot>(&ctx.peer))
        .reconcile_all_on(fault_changes(&ctx))
        .run(amr::reconcile, error_policy, ctx.clone());

    futures::join!(
        drain(appvaults, name.clone(), "AppVault"),
        drain(snapshots, name.clone(), "Snapshot"),
        drain(shutdown_snapshots, name.clone(), "ShutdownSnapshot"),
        drain(schedules, name.clone(), "Schedule"),
        drain(amrs, name.clone(), "AppMirrorRelationship"),
    );
}

/// Namespace and name of an object, for logs and fault targets.
pub(crate) fn target<K: Resource>(kind: Kind, object: &K) -> Target {
    Target::new(
        kind,
        object.meta().namespace.as_deref().unwrap_or_default(),
        object.meta().name.as_deref().unwrap_or_default(),
    )
}

/// A short requeue after the stand-in's own write (whose watch event normally wakes it first).
pub(crate) const AFTER_WRITE: Duration = Duration::from_millis(500);

pub(crate) fn uid<K: Resource>(object: &K) -> String {
    object.meta().uid.clone().unwrap_or_else(|| object.name_any())
}
