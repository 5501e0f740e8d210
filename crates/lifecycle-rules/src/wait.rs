//! What a wait waits for: the fields of the awaited object whose change can change the plan. The runner
//! watches the object and observes again only when one of them changes.

use kube_core::DynamicObject;
use serde_json::Value;
use tprotect_api::SNAPSHOT_STATE_COMPLETED;

use crate::model::*;
use crate::read;

/// What matters about an awaited object: the fields whose change ends a wait. `None`: the object is gone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fingerprint {
    pub state: String,
    pub error: Option<String>,
    pub deleting: bool,
    /// AMR `spec.desiredState`, snapshot `status.appArchivePath`.
    pub detail: Option<String>,
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
            read::state_is(&now.state, state) || read::is_failure_state(&now.state)
        }
        WaitFor::SnapshotCompleted { .. } => {
            read::state_is(&now.state, SNAPSHOT_STATE_COMPLETED) || read::is_failure_state(&now.state)
        }
        WaitFor::AmrGone { .. } => false,
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

    /// A state and an error, as an AMR or snapshot shows them.
    type Shown<'a> = (&'a str, Option<&'a str>);

    /// Whether `wait` ends (or reports) on each change from the first to the second.
    fn assert_matters(wait: &WaitFor, cases: &[(Shown, Shown, bool)]) {
        for &((was, was_error), (now, now_error), expected) in cases {
            assert_eq!(
                matters(
                    wait,
                    print(was, was_error).as_ref(),
                    print(now, now_error).as_ref()
                ),
                expected,
                "{was} {was_error:?} -> {now} {now_error:?}"
            );
        }
    }

    #[test]
    fn intermediate_states_are_progress_the_target_a_failure_and_errors_matter() {
        let wait = amr_wait("Promoted");
        assert_matters(
            &wait,
            &[
                (("Established", None), ("Promoting", None), false),
                (("Promoting", None), ("Promoted", None), true),
                (("Promoting", None), ("Failed", None), true),
                (("Promoting", None), ("Promoting", Some("x")), true),
                (("Promoting", Some("x")), ("Promoting", None), true),
            ],
        );
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
        assert_matters(
            &wait,
            &[
                (("", None), ("Running", None), false),
                (("Running", None), ("Completed", None), true),
                (("Running", None), ("Failed", None), true),
            ],
        );
    }
}
