//! AppVault: `Available` when every credential's Secret and key exist in the AppVault's namespace, else `Error`
//! naming what is missing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tprotect_api::ProviderCredential;

use crate::Profile;
use crate::rules::forms::VaultStatus;

/// What the stand-in found of one Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretState {
    Missing,
    /// The Secret exists with these data keys.
    Keys(BTreeSet<String>),
}

/// Whether the AppVault is usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Available,
    Error(String),
}

impl Verdict {
    /// What makes the AppVault unusable, if anything.
    pub fn problem(&self) -> Option<&str> {
        match self {
            Verdict::Available => None,
            Verdict::Error(message) => Some(message),
        }
    }

    /// The status `profile` writes for this verdict.
    pub fn status(&self, profile: Profile) -> VaultStatus {
        profile.app_vault_status(self.problem())
    }
}

/// Checks every `providerCredentials` entry against the Secrets found (keyed by Secret name). An AppVault without
/// credentials (e.g. `useIAM`) is available.
pub fn check(
    namespace: &str,
    credentials: &BTreeMap<String, ProviderCredential>,
    secrets: &BTreeMap<String, SecretState>,
) -> Verdict {
    let problems: Vec<String> = credentials
        .iter()
        .filter_map(|(credential, source)| {
            let secret = &source.value_from_secret;
            match secrets.get(&secret.name) {
                Some(SecretState::Keys(keys)) if keys.contains(&secret.key) => None,
                Some(SecretState::Keys(_)) => Some(format!(
                    "Secret {:?} in namespace {namespace:?} has no key {:?} (providerCredentials.{credential})",
                    secret.name, secret.key
                )),
                Some(SecretState::Missing) | None => Some(format!(
                    "Secret {:?} not found in namespace {namespace:?} (providerCredentials.{credential})",
                    secret.name
                )),
            }
        })
        .collect();
    if problems.is_empty() {
        Verdict::Available
    } else {
        Verdict::Error(problems.join("; "))
    }
}

/// What to do with an AppVault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write this status (`state`, `error`, `message`; None clears a field).
    Write(VaultStatus),
    /// Check again after this long (the first verdict waits for the configured delay).
    Wait(Duration),
    /// Nothing to do until something changes.
    Idle,
}

/// The first verdict comes after `delay` (or never while `stalled`); later changes (a Secret deleted or fixed)
/// are written at once, in the forms of `profile`.
pub fn decide(
    current: &VaultStatus,
    verdict: &Verdict,
    in_phase_for: Duration,
    delay: Duration,
    stalled: bool,
    profile: Profile,
) -> Step {
    if current.state.as_deref().is_none_or(str::is_empty) {
        if stalled {
            return Step::Idle;
        }
        if in_phase_for < delay {
            return Step::Wait(delay - in_phase_for);
        }
    }
    let wanted = verdict.status(profile);
    if *current == wanted {
        Step::Idle
    } else {
        Step::Write(wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tprotect_api::SecretKeyRef;

    fn credentials(entries: &[(&str, &str, &str)]) -> BTreeMap<String, ProviderCredential> {
        entries
            .iter()
            .map(|(credential, name, key)| {
                (
                    credential.to_string(),
                    ProviderCredential {
                        value_from_secret: SecretKeyRef {
                            key: key.to_string(),
                            name: name.to_string(),
                        },
                    },
                )
            })
            .collect()
    }

    fn keys(names: &[&str]) -> SecretState {
        SecretState::Keys(names.iter().map(|k| k.to_string()).collect())
    }

    #[test]
    fn available_when_every_secret_and_key_exists() {
        let creds = credentials(&[
            ("accessKeyID", "s3-creds", "accessKeyID"),
            ("secretAccessKey", "s3-creds", "secretAccessKey"),
        ]);
        let secrets = BTreeMap::from([("s3-creds".to_string(), keys(&["accessKeyID", "secretAccessKey"]))]);
        assert_eq!(check("trident-protect", &creds, &secrets), Verdict::Available);
        assert_eq!(
            check("trident-protect", &BTreeMap::new(), &BTreeMap::new()),
            Verdict::Available
        );
    }

    #[test]
    fn errors_name_the_missing_secret_or_key() {
        let creds = credentials(&[
            ("accessKeyID", "s3-creds", "accessKeyID"),
            ("secretAccessKey", "other", "secretAccessKey"),
        ]);
        let secrets = BTreeMap::from([
            ("s3-creds".to_string(), keys(&["wrong"])),
            ("other".to_string(), SecretState::Missing),
        ]);
        let Verdict::Error(message) = check("trident-protect", &creds, &secrets) else {
            panic!("expected an error")
        };
        assert_eq!(
            message,
            "Secret \"s3-creds\" in namespace \"trident-protect\" has no key \"accessKeyID\" \
             (providerCredentials.accessKeyID); Secret \"other\" not found in namespace \"trident-protect\" \
             (providerCredentials.secretAccessKey)"
        );
    }

    fn status(state: Option<&str>, error: Option<&str>) -> VaultStatus {
        VaultStatus {
            state: state.map(str::to_string),
            error: error.map(str::to_string),
            message: None,
        }
    }

    #[test]
    fn the_first_verdict_waits_for_the_delay_later_ones_do_not() {
        use Profile::Documented;
        let delay = Duration::from_millis(200);
        let error = Verdict::Error("x".into());
        let none = VaultStatus::default();
        assert_eq!(
            decide(
                &none,
                &Verdict::Available,
                Duration::from_millis(50),
                delay,
                false,
                Documented
            ),
            Step::Wait(Duration::from_millis(150))
        );
        assert_eq!(
            decide(&none, &Verdict::Available, delay, delay, true, Documented),
            Step::Idle
        );
        assert_eq!(
            decide(&none, &Verdict::Available, delay, delay, false, Documented),
            Step::Write(status(Some("Available"), None))
        );
        assert_eq!(
            decide(
                &status(Some("Available"), None),
                &error,
                Duration::ZERO,
                delay,
                false,
                Documented
            ),
            Step::Write(status(Some("Error"), Some("x")))
        );
        assert_eq!(
            decide(
                &status(Some("Error"), Some("x")),
                &error,
                Duration::ZERO,
                delay,
                false,
                Documented
            ),
            Step::Idle
        );
        assert_eq!(
            decide(
                &status(Some("Error"), Some("x")),
                &Verdict::Available,
                Duration::ZERO,
                delay,
                true,
                Documented
            ),
            Step::Write(status(Some("Available"), None)),
            "a stall holds only the first verdict"
        );
    }

    #[test]
    fn the_variant_writes_lowercase_states_and_the_problem_as_a_message() {
        use Profile::Variant;
        let delay = Duration::ZERO;
        let error = Verdict::Error("Secret \"s\" not found".into());
        let written = VaultStatus {
            state: Some("error".into()),
            error: None,
            message: Some("Secret \"s\" not found".into()),
        };
        assert_eq!(
            decide(&VaultStatus::default(), &error, delay, delay, false, Variant),
            Step::Write(written.clone())
        );
        assert_eq!(decide(&written, &error, delay, delay, false, Variant), Step::Idle);
        assert_eq!(
            decide(&written, &Verdict::Available, delay, delay, false, Variant),
            Step::Write(VaultStatus {
                state: Some("available".into()),
                ..Default::default()
            }),
            "the message is cleared"
        );
    }
}
