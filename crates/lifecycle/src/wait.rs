//! Waiting for Trident protect to act, with WATCHES (never sleep loops): a wait returns as soon as the awaited
//! object changes in a way that matters (its state, its error, its deletion), and the runner observes again
//! and plans again. The watch is scoped to the one object (field selector on its name).

// RunError is large (it names cluster, namespace and object); it ends a run, so its size costs nothing.
#![allow(clippy::result_large_err)]

use std::time::Instant;

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use tprotect_api::{
    AppMirrorRelationship, SNAPSHOT_STATE_COMPLETED, SNAPSHOT_STATE_FAILED, ShutdownSnapshot, Snapshot,
};

use crate::clusters::Clusters;
use crate::error::RunError;
use crate::model::*;
use crate::observe::resource;

/// Server-side timeout of each watch request: below the client's read timeout
/// ([`crate::clusters::READ_TIMEOUT`]), so a quiet watch ends normally and is re-issued, never cut as dead.
pub const WATCH_TIMEOUT_SECS: u32 = 15;

/// What matters about an awaited object: the fields whose change ends a wait. `None`: the object is gone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fingerprint {
    pub state: String,
    pub error: Option<String>,
    pub deleting: bool,
    /// AMR `spec.desiredState`, snapshot `status.appArchivePath`.
    pub detail: Option<String>,
}

/// How a wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitOutcome {
    /// The object changed (now as given; `None`: gone): observe and plan again.
    Changed(Option<Fingerprint>),
    /// `until` came first, with nothing that [`matters`]; the object as last seen (`None`: not there).
    Deadline(Option<Fingerprint>),
}

/// The fingerprint of the awaited object in an observation (`None`: not there).
pub fn observed_fingerprint(observed: &Observed, wait: &WaitFor) -> Option<Fingerprint> {
    let state = observed.state(wait.cluster())?;
    match wait {
        WaitFor::AmrState { namespace, name, .. } | WaitFor::AmrGone { namespace, name, .. } => {
            let amr = state
                .amr
                .as_ref()
                .filter(|a| &a.namespace == namespace && &a.name == name)?;
            Some(Fingerprint {
                state: amr.state().to_string(),
                error: amr.error().map(str::to_string),
                deleting: amr.deleting,
                detail: amr.desired().map(|d| d.to_string()),
            })
        }
        WaitFor::SnapshotCompleted {
            namespace,
            name,
            shutdown,
            ..
        } => {
            let snapshot = if *shutdown {
                state.shutdown_snapshot(namespace, name)
            } else {
                state.snapshot(namespace, name)
            }?;
            Some(Fingerprint {
                state: snapshot.state.clone(),
                error: snapshot.error.clone(),
                deleting: false,
                detail: snapshot.app_archive_path.clone(),
            })
        }
    }
}

/// The fingerprint of an object as a watch delivers it.
pub fn object_fingerprint(wait: &WaitFor, object: &DynamicObject) -> Fingerprint {
    let status = object.data.get("status");
    let text = |v: Option<&Value>, key: &str| {
        v.and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let detail = match wait {
        WaitFor::SnapshotCompleted { .. } => text(status, "appArchivePath"),
        _ => text(object.data.get("spec"), "desiredState"),
    };
    Fingerprint {
        state: text(status, "state").unwrap_or_default(),
        error: text(status, "error"),
        deleting: object.metadata.deletion_timestamp.is_some(),
        detail,
    }
}

/// A human description of a wait, for progress and timeouts.
pub fn describe_wait(wait: &WaitFor) -> String {
    match wait {
        WaitFor::AmrState {
            namespace,
            name,
            state,
            ..
        } => format!("AppMirrorRelationship {namespace}/{name} to be {state}"),
        WaitFor::SnapshotCompleted {
            namespace,
            name,
            shutdown,
            ..
        } => format!(
            "{} {namespace}/{name} to complete",
            if *shutdown { "ShutdownSnapshot" } else { "Snapshot" }
        ),
        WaitFor::AmrGone { namespace, name, .. } => {
            format!("AppMirrorRelationship {namespace}/{name} to be deleted")
        }
    }
}

/// AMR states that mean the relationship failed (Trident's failure states are unverified; both spellings, as
/// the planner reads them).
const AMR_FAILURE_STATES: [&str; 2] = ["Failed", "Error"];

/// Whether the change from `before` to `now` can change the plan: the awaited state reached or failed, an
/// error set, changed or cleared, a deletion, the desired state or the archive path changed, the object gone or
/// back. A move between intermediate states (Establishing, Promoting, Running) is only progress.
pub fn matters(wait: &WaitFor, before: Option<&Fingerprint>, now: Option<&Fingerprint>) -> bool {
    let (Some(before), Some(now)) = (before, now) else {
        return before != now;
    };
    if before.error != now.error || before.deleting != now.deleting || before.detail != now.detail {
        return true;
    }
    if before.state == now.state {
        return false;
    }
    match wait {
        WaitFor::AmrState { state, .. } => {
            now.state == *state || AMR_FAILURE_STATES.contains(&now.state.as_str())
        }
        WaitFor::SnapshotCompleted { .. } => {
            now.state == SNAPSHOT_STATE_COMPLETED || now.state == SNAPSHOT_STATE_FAILED
        }
        WaitFor::AmrGone { .. } => false,
    }
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
            needed_for: describe_wait(wait),
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
                            describe_wait(wait),
                            handle.context
                        )),
                    });
                }
                continue;
            }
            None => {
                return Err(RunError::Internal(format!(
                    "the watch of {} on {} ended",
                    describe_wait(wait),
                    handle.context
                )));
            }
        };
        match event {
            watcher::Event::Init => listed = None,
            watcher::Event::InitApply(object) => listed = Some(object_fingerprint(wait, &object)),
            watcher::Event::InitDone => {
                let now = listed.take();
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
            watcher::Event::Apply(object) => {
                let now = Some(object_fingerprint(wait, &object));
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
            watcher::Event::Delete(_) => return Ok(WaitOutcome::Changed(None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn print(state: &str, error: Option<&str>) -> Option<Fingerprint> {
        Some(Fingerprint {
            state: state.into(),
            error: error.map(str::to_string),
            deleting: false,
            detail: Some("Promoted".into()),
        })
    }

    fn amr_wait(state: &str) -> WaitFor {
        WaitFor::AmrState {
            cluster: ClusterKey::Peer,
            namespace: "ns".into(),
            name: "rel1".into(),
            state: state.into(),
        }
    }

    #[test]
    fn intermediate_states_are_progress_the_target_a_failure_and_errors_matter() {
        let wait = amr_wait("Promoted");
        assert!(!matters(
            &wait,
            print("Established", None).as_ref(),
            print("Promoting", None).as_ref()
        ));
        assert!(matters(
            &wait,
            print("Promoting", None).as_ref(),
            print("Promoted", None).as_ref()
        ));
        assert!(matters(
            &wait,
            print("Promoting", None).as_ref(),
            print("Failed", None).as_ref()
        ));
        assert!(matters(
            &wait,
            print("Promoting", None).as_ref(),
            print("Promoting", Some("x")).as_ref()
        ));
        assert!(matters(
            &wait,
            print("Promoting", Some("x")).as_ref(),
            print("Promoting", None).as_ref()
        ));
        assert!(matters(&wait, print("Promoting", None).as_ref(), None), "gone");
        let mut redirected = print("Promoting", None);
        redirected.as_mut().unwrap().detail = Some("Established".into());
        assert!(
            matters(&wait, print("Promoting", None).as_ref(), redirected.as_ref()),
            "desired changed"
        );
    }

    #[test]
    fn snapshots_matter_when_completed_or_failed() {
        let wait = WaitFor::SnapshotCompleted {
            cluster: ClusterKey::Context,
            namespace: "ns".into(),
            name: "s".into(),
            shutdown: true,
        };
        assert!(!matters(
            &wait,
            print("", None).as_ref(),
            print("Running", None).as_ref()
        ));
        assert!(matters(
            &wait,
            print("Running", None).as_ref(),
            print("Completed", None).as_ref()
        ));
        assert!(matters(
            &wait,
            print("Running", None).as_ref(),
            print("Failed", None).as_ref()
        ));
    }
}
