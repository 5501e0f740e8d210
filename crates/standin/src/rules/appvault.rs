//! AppVault: `Available` when every credential's Secret and key exist in the AppVault's namespace, else `Error`
//! naming what is missing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tprotect_api::{APP_VAULT_STATE_AVAILABLE, APP_VAULT_STATE_ERROR, ProviderCredential};

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
    /// `status.state` for this verdict.
    pub fn state(&self) -> &'static str {
        match self {
            Verdict::Available => APP_VAULT_STATE_AVAILABLE,
            Verdict::Error(_) => APP_VAULT_STATE_ERROR,
        }
    }

    /// `status.error` for this verdict.
    pub fn error(&self) -> Option<&str> {
        match self {
            Verdict::Available => None,
            Verdict::Error(message) => Some(message),
        }
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
    /// Write `state` and `error` (None clears it).
    Write(Verdict),
    /// Check again after this long (the first verdict waits for the configured delay).
    Wait(Duration),
    /// Nothing to do until something changes.
    Idle,
}

/// The first verdict comes after `delay` (or never while `stalled`); later changes (a Secret deleted or fixed)
/// are written at once.
pub fn decide(
    current_state: Option<&str>,
    current_error: Option<&str>,
    verdict: Verdict,
    in_phase_for: Duration,
    delay: Duration,
    stalled: bool,
) -> Step {
    if current_state.is_none_or(str::is_empty) {
        if stalled {
            return Step::Idle;
        }
        if in_phase_for < delay {
            return Step::Wait(delay - in_phase_for);
        }
    }
    if current_state == Some(verdict.state()) && current_error == verdict.error() {
        Step::Idle
    } else {
        Step::Write(verdict)
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

    #[test]
    fn the_first_verdict_waits_for_the_delay_later_ones_do_not() {
        let delay = Duration::from_millis(200);
        let error = Verdict::Error("x".into());
        assert_eq!(
            decide(
                None,
                None,
                Verdict::Available,
                Duration::from_millis(50),
                delay,
                false
            ),
            Step::Wait(Duration::from_millis(150))
        );
        assert_eq!(
            decide(None, None, Verdict::Available, delay, delay, true),
            Step::Idle
        );
        assert_eq!(
            decide(None, None, Verdict::Available, delay, delay, false),
            Step::Write(Verdict::Available)
        );
        assert_eq!(
            decide(
                Some("Available"),
                None,
                error.clone(),
                Duration::ZERO,
                delay,
                false
            ),
            Step::Write(error.clone())
        );
        assert_eq!(
            decide(Some("Error"), Some("x"), error, Duration::ZERO, delay, false),
            Step::Idle
        );
        assert_eq!(
            decide(
                Some("Error"),
                Some("x"),
                Verdict::Available,
                Duration::ZERO,
                delay,
                true
            ),
            Step::Write(Verdict::Available),
            "a stall holds only the first verdict"
        );
    }
}
