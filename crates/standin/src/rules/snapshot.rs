//! Snapshot and ShutdownSnapshot: `Running`, then after the configured delay `Completed` with an archive path, or
//! `Failed` with `status.error` when the Application or AppVault is missing.
//!
//! Missing references fail the snapshot at completion time rather than leaving it Running: a snapshot of nothing
//! cannot succeed later, and a terminal state with an error is what a waiting caller can act on. (Whether Trident
//! protect retries until `completionTimeout` instead is unverified; callers treat both the same way, as a failure.)

use std::time::Duration;

use jiff::Timestamp;
use tprotect_api::{SNAPSHOT_STATE_COMPLETED, SNAPSHOT_STATE_FAILED, SNAPSHOT_STATE_RUNNING};

/// `<app>_<app-uid>/snapshots/<yyyymmddhhmmss>_<snapshot-name>_<snapshot-uid>`: the shape of
/// `status.appArchivePath` NetApp shows (`…/snapshots/20250107122548_bboxdrlastsnap_5fa90108-…`). Its basename is
/// what `AppMirrorRelationship.spec.promotedSnapshot` takes.
pub fn archive_path(
    app: &str,
    app_uid: &str,
    started: Timestamp,
    snapshot: &str,
    snapshot_uid: &str,
) -> String {
    format!(
        "{app}_{app_uid}/snapshots/{}_{snapshot}_{snapshot_uid}",
        started.strftime("%Y%m%d%H%M%S")
    )
}

/// What the stand-in found of the AppVault a snapshot goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultState {
    Missing,
    /// Exists, no verdict yet.
    Pending,
    Available,
    /// Exists with `status.state: Error`.
    Error(String),
}

/// What the stand-in observed of one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation<'a> {
    pub namespace: &'a str,
    pub state: Option<&'a str>,
    pub in_phase_for: Duration,
    pub delay: Duration,
    pub stalled: bool,
    /// `spec.applicationRef`.
    pub application: Option<&'a str>,
    /// The Application's uid, when it exists.
    pub application_uid: Option<&'a str>,
    /// `spec.appVaultRef`.
    pub app_vault: Option<&'a str>,
    pub vault: VaultState,
}

/// What to do with a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write `Running`.
    Start,
    /// Look again after this long.
    Wait(Duration),
    /// Nothing to do until something changes.
    Idle,
    /// Write `Completed` (for a ShutdownSnapshot: after recording the shutdown on the Application).
    Complete {
        application: String,
        application_uid: String,
    },
    /// Write `Failed` with this error.
    Fail(String),
}

/// Decides the next step of a snapshot.
pub fn decide(o: &Observation<'_>) -> Step {
    match o.state.unwrap_or_default() {
        "" => return Step::Start,
        SNAPSHOT_STATE_RUNNING => {}
        // Completed, Failed, or a state someone else wrote: terminal for the stand-in.
        _ => return Step::Idle,
    }
    if o.stalled {
        return Step::Idle;
    }
    if o.in_phase_for < o.delay {
        return Step::Wait(o.delay - o.in_phase_for);
    }
    let Some(application) = o.application.filter(|a| !a.is_empty()) else {
        return Step::Fail("spec.applicationRef is not set".into());
    };
    let Some(app_vault) = o.app_vault.filter(|v| !v.is_empty()) else {
        return Step::Fail("spec.appVaultRef is not set".into());
    };
    let mut problems = Vec::new();
    if o.application_uid.is_none() {
        problems.push(format!(
            "Application {application:?} not found in namespace {:?}",
            o.namespace
        ));
    }
    match &o.vault {
        VaultState::Missing => problems.push(format!(
            "AppVault {app_vault:?} not found in namespace {:?}",
            tprotect_api::TRIDENT_PROTECT_NAMESPACE
        )),
        VaultState::Error(error) => {
            problems.push(format!("AppVault {app_vault:?} is not Available: {error}"))
        }
        // The vault's own verdict is due shortly; wait for it rather than fail on a race.
        VaultState::Pending if problems.is_empty() => {
            return Step::Wait(o.delay.max(Duration::from_millis(50)));
        }
        VaultState::Pending | VaultState::Available => {}
    }
    match (problems.is_empty(), o.application_uid) {
        (true, Some(uid)) => Step::Complete {
            application: application.to_string(),
            application_uid: uid.to_string(),
        },
        _ => Step::Fail(problems.join("; ")),
    }
}

/// `status.state` a step writes, if any.
pub fn state_written(step: &Step) -> Option<&'static str> {
    match step {
        Step::Start => Some(SNAPSHOT_STATE_RUNNING),
        Step::Complete { .. } => Some(SNAPSHOT_STATE_COMPLETED),
        Step::Fail(_) => Some(SNAPSHOT_STATE_FAILED),
        Step::Wait(_) | Step::Idle => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running<'a>() -> Observation<'a> {
        Observation {
            namespace: "ns-1",
            state: Some("Running"),
            in_phase_for: Duration::from_millis(300),
            delay: Duration::from_millis(200),
            stalled: false,
            application: Some("my-app"),
            application_uid: Some("uid-1"),
            app_vault: Some("src-vault"),
            vault: VaultState::Available,
        }
    }

    #[test]
    fn archive_path_has_the_documented_shape() {
        let started: Timestamp = "2025-01-07T12:25:48Z".parse().unwrap();
        let path = archive_path("bbox", "6e1f-uid", started, "bboxdrlastsnap", "5fa90108-aaaa");
        assert_eq!(
            path,
            "bbox_6e1f-uid/snapshots/20250107122548_bboxdrlastsnap_5fa90108-aaaa"
        );
        assert_eq!(
            tprotect_api::archive_basename(&path),
            Some("20250107122548_bboxdrlastsnap_5fa90108-aaaa")
        );
    }

    #[test]
    fn new_snapshots_start_running_then_complete_after_the_delay() {
        let new = Observation {
            state: None,
            ..running()
        };
        assert_eq!(decide(&new), Step::Start);
        let early = Observation {
            in_phase_for: Duration::from_millis(50),
            ..running()
        };
        assert_eq!(decide(&early), Step::Wait(Duration::from_millis(150)));
        assert_eq!(
            decide(&running()),
            Step::Complete {
                application: "my-app".into(),
                application_uid: "uid-1".into()
            }
        );
        let stalled = Observation {
            stalled: true,
            ..running()
        };
        assert_eq!(decide(&stalled), Step::Idle);
        for terminal in ["Completed", "Failed", "SomethingElse"] {
            let done = Observation {
                state: Some(terminal),
                ..running()
            };
            assert_eq!(decide(&done), Step::Idle, "{terminal}");
        }
    }

    #[test]
    fn missing_references_fail_with_what_is_missing() {
        let missing = Observation {
            application_uid: None,
            vault: VaultState::Missing,
            ..running()
        };
        assert_eq!(
            decide(&missing),
            Step::Fail(
                "Application \"my-app\" not found in namespace \"ns-1\"; AppVault \"src-vault\" not found in \
                 namespace \"trident-protect\""
                    .into()
            )
        );
        let vault_error = Observation {
            vault: VaultState::Error("Secret \"s\" not found".into()),
            ..running()
        };
        assert_eq!(
            decide(&vault_error),
            Step::Fail("AppVault \"src-vault\" is not Available: Secret \"s\" not found".into())
        );
        let no_ref = Observation {
            app_vault: None,
            ..running()
        };
        assert_eq!(decide(&no_ref), Step::Fail("spec.appVaultRef is not set".into()));
        let pending = Observation {
            vault: VaultState::Pending,
            ..running()
        };
        assert!(
            matches!(decide(&pending), Step::Wait(_)),
            "a vault without a verdict yet"
        );
        let pending_no_app = Observation {
            vault: VaultState::Pending,
            application_uid: None,
            ..running()
        };
        assert!(matches!(decide(&pending_no_app), Step::Fail(_)));
    }

    #[test]
    fn states_written() {
        assert_eq!(state_written(&Step::Start), Some("Running"));
        assert_eq!(state_written(&Step::Fail("x".into())), Some("Failed"));
        assert_eq!(state_written(&Step::Idle), None);
    }
}
