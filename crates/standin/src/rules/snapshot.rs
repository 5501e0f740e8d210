//! Snapshot and ShutdownSnapshot: `Running`, then after the configured delay `Completed` with an archive path, or
//! `Failed` with `status.error` when the Application or AppVault is missing (the variant profile: no state until
//! it ends, and `Error`; see [`crate::rules::forms`]).
//!
//! Missing references fail the snapshot at completion time rather than leaving it Running: a snapshot of nothing
//! cannot succeed later, and a terminal state with an error is what a waiting caller can act on. (Whether Trident
//! protect retries until `completionTimeout` instead is unverified; callers treat both the same way, as a failure.)

use std::time::Duration;

use tprotect_api::{SNAPSHOT_STATE_COMPLETED, SNAPSHOT_STATE_RUNNING};

use crate::Profile;
use crate::rules::forms::{VaultStatus, app_vault_available, app_vault_failed};

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

impl VaultState {
    /// The state of an AppVault whose status either profile wrote (`None`: the AppVault does not exist).
    pub fn of(status: Option<&VaultStatus>) -> VaultState {
        let Some(status) = status else {
            return VaultState::Missing;
        };
        let state = status.state.as_deref();
        if app_vault_available(state) {
            VaultState::Available
        } else if app_vault_failed(state) {
            VaultState::Error(
                status
                    .error
                    .clone()
                    .or_else(|| status.message.clone())
                    .filter(|e| !e.is_empty())
                    .unwrap_or_else(|| format!("state {}", state.unwrap_or_default())),
            )
        } else {
            VaultState::Pending
        }
    }
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
pub fn decide(o: &Observation<'_>, profile: Profile) -> Step {
    match o.state.unwrap_or_default() {
        "" if profile.snapshot_running_state().is_some() => return Step::Start,
        // The variant: in progress without a state.
        "" => {}
        SNAPSHOT_STATE_RUNNING => {}
        // Completed, Failed / Error, or a state someone else wrote: terminal for the stand-in.
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
pub fn state_written(step: &Step, profile: Profile) -> Option<&'static str> {
    match step {
        Step::Start => profile.snapshot_running_state(),
        Step::Complete { .. } => Some(SNAPSHOT_STATE_COMPLETED),
        Step::Fail(_) => Some(profile.snapshot_failure_state()),
        Step::Wait(_) | Step::Idle => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide_documented(o: &Observation<'_>) -> Step {
        decide(o, Documented)
    }

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

    use Profile::{Documented, Variant};

    #[test]
    fn new_snapshots_start_running_then_complete_after_the_delay() {
        let new = Observation {
            state: None,
            ..running()
        };
        assert_eq!(decide_documented(&new), Step::Start);
        let early = Observation {
            in_phase_for: Duration::from_millis(50),
            ..running()
        };
        assert_eq!(decide_documented(&early), Step::Wait(Duration::from_millis(150)));
        assert_eq!(
            decide_documented(&running()),
            Step::Complete {
                application: "my-app".into(),
                application_uid: "uid-1".into()
            }
        );
        let stalled = Observation {
            stalled: true,
            ..running()
        };
        assert_eq!(decide_documented(&stalled), Step::Idle);
        for terminal in ["Completed", "Failed", "SomethingElse"] {
            let done = Observation {
                state: Some(terminal),
                ..running()
            };
            assert_eq!(decide_documented(&done), Step::Idle, "{terminal}");
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
            decide_documented(&missing),
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
            decide_documented(&vault_error),
            Step::Fail("AppVault \"src-vault\" is not Available: Secret \"s\" not found".into())
        );
        let no_ref = Observation {
            app_vault: None,
            ..running()
        };
        assert_eq!(
            decide_documented(&no_ref),
            Step::Fail("spec.appVaultRef is not set".into())
        );
        let pending = Observation {
            vault: VaultState::Pending,
            ..running()
        };
        assert!(
            matches!(decide_documented(&pending), Step::Wait(_)),
            "a vault without a verdict yet"
        );
        let pending_no_app = Observation {
            vault: VaultState::Pending,
            application_uid: None,
            ..running()
        };
        assert!(matches!(decide_documented(&pending_no_app), Step::Fail(_)));
    }

    #[test]
    fn states_written() {
        assert_eq!(state_written(&Step::Start, Documented), Some("Running"));
        assert_eq!(state_written(&Step::Fail("x".into()), Documented), Some("Failed"));
        assert_eq!(state_written(&Step::Idle, Documented), None);
        assert_eq!(state_written(&Step::Start, Variant), None);
        assert_eq!(state_written(&Step::Fail("x".into()), Variant), Some("Error"));
        let complete = Step::Complete {
            application: "a".into(),
            application_uid: "u".into(),
        };
        for profile in Profile::ALL {
            assert_eq!(state_written(&complete, profile), Some("Completed"), "{profile}");
        }
    }

    #[test]
    fn the_variant_runs_without_a_state_and_ends_like_the_documented_one() {
        let new = Observation {
            state: None,
            in_phase_for: Duration::from_millis(50),
            ..running()
        };
        assert_eq!(decide(&new, Documented), Step::Start);
        assert_eq!(decide(&new, Variant), Step::Wait(Duration::from_millis(150)));
        let due = Observation {
            state: None,
            ..running()
        };
        assert_eq!(decide(&due, Variant), decide(&running(), Documented));
        for terminal in ["Completed", "Error", "Failed"] {
            let done = Observation {
                state: Some(terminal),
                ..running()
            };
            assert_eq!(decide(&done, Variant), Step::Idle, "{terminal}");
        }
    }

    #[test]
    fn vault_states_of_either_profile() {
        for profile in Profile::ALL {
            assert_eq!(
                VaultState::of(Some(&profile.app_vault_status(None))),
                VaultState::Available,
                "{profile}"
            );
            assert_eq!(
                VaultState::of(Some(&profile.app_vault_status(Some("no Secret")))),
                VaultState::Error("no Secret".into()),
                "{profile}"
            );
        }
        assert_eq!(VaultState::of(None), VaultState::Missing);
        assert_eq!(VaultState::of(Some(&VaultStatus::default())), VaultState::Pending);
    }
}
