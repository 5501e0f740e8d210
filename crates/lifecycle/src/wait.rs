//! Waiting for Trident protect to act, with WATCHES (never sleep loops): a wait returns as soon as the awaited
//! object changes in a way that matters (its state, its error, its deletion), and the runner observes again
//! and plans again. The watch is scoped to the one object (field selector on its name).

// RunError is large (it names cluster, namespace and object); it ends a run, so its size costs nothing.
#![allow(clippy::result_large_err)]

use std::time::Instant;

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use tprotect_api::{AppMirrorRelationship, ShutdownSnapshot, Snapshot};
pub use tprotect_lifecycle_rules::wait::{Fingerprint, matters, object_fingerprint, observed_fingerprint};

use crate::clusters::Clusters;
use crate::error::RunError;
use crate::model::*;
use crate::observe::resource;

/// Server-side timeout of each watch request: below the client's read timeout
/// ([`crate::clusters::READ_TIMEOUT`]), so a quiet watch ends normally and is re-issued, never cut as dead.
pub const WATCH_TIMEOUT_SECS: u32 = 15;

/// How a wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitOutcome {
    /// The object changed (now as given; `None`: gone): observe and plan again.
    Changed(Option<Fingerprint>),
    /// `until` came first, with nothing that [`matters`]; the object as last seen (`None`: not there).
    Deadline(Option<Fingerprint>),
}

/// Waits until the object `wait` is about differs from `seen` (what the runner last observed) in any way, or
/// until `until`. Watches the one object; an object that changed between the observation and the start of the
/// watch is caught by the watch's initial list.
pub async fn wait_for_change(
    clusters: &Clusters,
    wait: &WaitFor,
    seen: Option<&Fingerprint>,
    until: Instant,
) -> Result<WaitOutcome, RunError> {
    watch_until(clusters, wait, seen, until, &|_, _| true, &|_| {}).await
}

/// Waits until the object `wait` is about changes in a way that [`matters`] to the plan, or until `until`.
/// Other changes (intermediate states) are passed to `progress` as they come, without ending the wait.
pub async fn wait_for_relevant_change(
    clusters: &Clusters,
    wait: &WaitFor,
    seen: Option<&Fingerprint>,
    until: Instant,
    progress: &(dyn Fn(&Fingerprint) + Send + Sync),
) -> Result<WaitOutcome, RunError> {
    watch_until(
        clusters,
        wait,
        seen,
        until,
        &|before, now| matters(wait, before, now),
        progress,
    )
    .await
}

async fn watch_until(
    clusters: &Clusters,
    wait: &WaitFor,
    seen: Option<&Fingerprint>,
    until: Instant,
    ends_wait: &(dyn Fn(Option<&Fingerprint>, Option<&Fingerprint>) -> bool + Send + Sync),
    progress: &(dyn Fn(&Fingerprint) + Send + Sync),
) -> Result<WaitOutcome, RunError> {
    let mut seen: Option<Fingerprint> = seen.cloned();
    let handle = clusters.get(wait.cluster());
    let (namespace, name, ar) = match wait {
        WaitFor::AmrState { namespace, name, .. } | WaitFor::AmrGone { namespace, name, .. } => {
            (namespace, name, resource::<AppMirrorRelationship>())
        }
        WaitFor::SnapshotCompleted {
            namespace,
            name,
            shutdown,
            ..
        } => (
            namespace,
            name,
            if *shutdown {
                resource::<ShutdownSnapshot>()
            } else {
                resource::<Snapshot>()
            },
        ),
    };
    let client = handle.client().map_err(|e| {
        RunError::Plan(crate::PlanError::Unreachable {
            context: handle.context.clone(),
            error: e.to_string(),
            needed_for: format!("waiting for {}", waited_object(wait)),
        })
    })?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
    let config = watcher::Config::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(WATCH_TIMEOUT_SECS);
    let stream = watcher(api, config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let deadline = tokio::time::Instant::from_std(until);
    // Objects of the current (re)list, to tell "gone" at its end.
    let mut listed: Option<Fingerprint> = None;
    let mut consecutive_errors = 0u32;
    loop {
        let event = tokio::select! {
            event = stream.next() => event,
            () = tokio::time::sleep_until(deadline) => return Ok(WaitOutcome::Deadline(seen)),
        };
        let event = match event {
            Some(Ok(event)) => {
                consecutive_errors = 0;
                event
            }
            Some(Err(e)) => {
                // The watcher retries with backoff; an answer that will not change is fatal.
                if let watcher::Error::InitialListFailed(kube::Error::Api(status))
                | watcher::Error::WatchStartFailed(kube::Error::Api(status)) = &e
                    && matches!(status.code, 401 | 403 | 404)
                {
                    let source = kube::Error::Api(status.clone());
                    return Err(RunError::kube(
                        &handle.context,
                        "watch",
                        &ar.plural,
                        namespace,
                        name,
                        source,
                    ));
                }
                consecutive_errors += 1;
                tracing::debug!(error = %e, attempt = consecutive_errors, "watch failed; retrying");
                // The watcher backs off between attempts; this many in a row is not a blip.
                if consecutive_errors >= 8 {
                    return Err(match e {
                        watcher::Error::InitialListFailed(source)
                        | watcher::Error::WatchStartFailed(source)
                        | watcher::Error::WatchFailed(source) => {
                            RunError::kube(&handle.context, "watch", &ar.plural, namespace, name, source)
                        }
                        watcher::Error::WatchError(status) => RunError::kube(
                            &handle.context,
                            "watch",
                            &ar.plural,
                            namespace,
                            name,
                            kube::Error::Api(status),
                        ),
                        other => RunError::Internal(format!(
                            "watching {} on {} keeps failing: {other}",
                            waited_object(wait),
                            handle.context
                        )),
                    });
                }
                continue;
            }
            None => {
                return Err(RunError::Internal(format!(
                    "the watch of {} on {} ended",
                    waited_object(wait),
                    handle.context
                )));
            }
        };
        // What the object is now, once the event says it; a (re)list says it only when complete.
        let now = match event {
            watcher::Event::Init => {
                listed = None;
                continue;
            }
            watcher::Event::InitApply(object) => {
                listed = Some(object_fingerprint(wait, &object));
                continue;
            }
            watcher::Event::InitDone => listed.take(),
            watcher::Event::Apply(object) => Some(object_fingerprint(wait, &object)),
            watcher::Event::Delete(_) => return Ok(WaitOutcome::Changed(None)),
        };
        if now != seen {
            if ends_wait(seen.as_ref(), now.as_ref()) {
                return Ok(WaitOutcome::Changed(now));
            }
            if let Some(now) = &now {
                progress(now);
            }
            seen = now;
        }
    }
}

/// `Kind namespace/name` of the awaited object, for messages.
fn waited_object(wait: &WaitFor) -> String {
    let (kind, namespace, name) = tprotect_lifecycle_rules::describe::wait_object(wait);
    format!("{kind} {namespace}/{name}")
}
