//! The forms the stand-in writes, per [`Profile`]: one function per field or behaviour of
//! `docs/trident-protect-fields.md` that NetApp leaves undocumented. [`Profile::Documented`] gives what NetApp
//! documents or shows (and the stand-in's guess where it shows nothing); [`Profile::Variant`] the other plausible
//! form. Pure: no I/O, no clock.
//!
//! | Field or behaviour | Documented profile | Variant profile |
//! |---|---|---|
//! | AMR transitional state while setting up | `Establishing` | `Pending` while a prerequisite is missing, then `Establishing` |
//! | AMR state during a resync | `Establishing`, then `Established` | none: stays `Promoted` until `Established` (and waits, discarding nothing, while a prerequisite such as the source is missing) |
//! | AMR failure state ([`crate::Faults::fail_relationship`]) | `Failed` | `Error` |
//! | AMR `status.error` during a transition | none | a progress message while `Establishing` / `Promoting` |
//! | AMR `status.destinationApplicationRef` | `<name>` | `<namespace>/<name>` |
//! | destination Application name | the source's (`spec.sourceApplicationName`) | `<source>-<first 8 characters of the AMR's uid>` |
//! | destination Application created | before the AMR reports `Promoted` | `promote_delay` after the AMR reports `Promoted` |
//! | destination Application on resync | deleted | kept (its workloads would be stopped; none run here) |
//! | destination Application label `tprotect.io/relationship` | copied from the AMR | none |
//! | AMR `lastTransferredSnapshot` | written with `lastTransfer` | never written (only `lastTransfer`) |
//! | AMR `status.conditions` | the stand-in's conditions | `[]` (the CRD requires the list) |
//! | AMR deletion | immediate (no finalizer) | the finalizer [`RELATIONSHIP_FINALIZER`], removed `delete_delay` after the deletion |
//! | timestamps written | RFC 3339, whole seconds, `Z` | RFC 3339 with microseconds, `Z` |
//! | AppVault `status.state` | `Available` / `Error` | `available` / `error` |
//! | AppVault problem text | `status.error` | `status.message` |
//! | Snapshot transitional state | `Running` | none: no status until it ends |
//! | Snapshot failure state | `Failed` | `Error` |
//! | Snapshot `status.conditions` | `Ready` | none |
//! | Snapshot `status.appArchivePath` | `<app>_<app-uid>/snapshots/<yyyymmddhhmmss>_<name>_<uid>` | `<vault prefix>/` before it and `/` after it |
//! | ShutdownSnapshot recorded on the source Application | condition `ShutdownForSwap` | nothing |
//! | missing destination namespace at promotion | created empty, then the merge as an UPDATE | created with the merged labels and annotations (one CREATE) |
//!
//! Kept exact in both: the final states `Established`, `Promoted` and `Completed` (observed in NetApp's
//! documentation) and the transitional state `Promoting`.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;
use tprotect_api::{
    AMR_STATE_ESTABLISHED, AMR_STATE_ESTABLISHING, AMR_STATE_PROMOTED, AMR_STATE_PROMOTING,
    APP_VAULT_STATE_AVAILABLE, APP_VAULT_STATE_ERROR, SNAPSHOT_STATE_FAILED, SNAPSHOT_STATE_RUNNING,
};

use crate::Profile;

/// AMR state of the variant profile while a prerequisite of the relationship is missing.
pub const AMR_STATE_PENDING: &str = "Pending";
/// AMR failure state of the documented profile.
pub const AMR_STATE_FAILED: &str = "Failed";
/// AMR failure state of the variant profile.
pub const AMR_STATE_ERROR: &str = "Error";
/// Snapshot failure state of the variant profile.
pub const SNAPSHOT_STATE_ERROR: &str = "Error";
/// Finalizer the variant profile puts on every AppMirrorRelationship (a controller that cleans up on delete).
pub const RELATIONSHIP_FINALIZER: &str = "standin.tprotect.io/relationship-cleanup";
/// Prefix of the variant's archive paths when the AppVault sets no `spec.prefix`.
pub const DEFAULT_ARCHIVE_PREFIX: &str = "trident-protect";

/// Where an AMR is in its life, whichever profile wrote its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No state yet.
    New,
    /// Waiting for a missing prerequisite (variant).
    Pending,
    Establishing,
    Established,
    Promoting,
    Promoted,
    /// `Failed` or `Error`.
    Failed,
    /// A state neither profile writes (someone else wrote it).
    Other,
}

impl Phase {
    /// The phase of an AMR `status.state` written by either profile.
    pub fn of(state: Option<&str>) -> Phase {
        match state.unwrap_or_default() {
            "" => Phase::New,
            AMR_STATE_PENDING => Phase::Pending,
            AMR_STATE_ESTABLISHING => Phase::Establishing,
            AMR_STATE_ESTABLISHED => Phase::Established,
            AMR_STATE_PROMOTING => Phase::Promoting,
            AMR_STATE_PROMOTED => Phase::Promoted,
            AMR_STATE_FAILED | AMR_STATE_ERROR => Phase::Failed,
            _ => Phase::Other,
        }
    }
}

/// What an AppVault's status says, as written or read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VaultStatus {
    pub state: Option<String>,
    pub error: Option<String>,
    pub message: Option<String>,
}

impl From<tprotect_api::AppVaultStatus> for VaultStatus {
    fn from(status: tprotect_api::AppVaultStatus) -> Self {
        Self {
            state: status.state,
            error: status.error,
            message: status.message,
        }
    }
}

impl Profile {
    // ------------------------------------------------------------------------------- AppMirrorRelationship

    /// The state a relationship that is (re-)established enters first.
    pub fn establish_entry_state(self) -> &'static str {
        match self {
            Profile::Documented => AMR_STATE_ESTABLISHING,
            Profile::Variant => AMR_STATE_PENDING,
        }
    }

    /// Whether a missing prerequisite keeps the AMR in a state of its own ([`AMR_STATE_PENDING`]) rather than in
    /// `Establishing`.
    pub fn has_pending_state(self) -> bool {
        self == Profile::Variant
    }

    /// Whether a resync (Promoted → Established) passes through `Establishing`; if not, the AMR stays `Promoted`
    /// until it is `Established`, and the resync waits (discarding nothing) while a prerequisite is missing.
    pub fn resync_passes_through_establishing(self) -> bool {
        self == Profile::Documented
    }

    /// The AMR state that reports a failure.
    pub fn amr_failure_state(self) -> &'static str {
        match self {
            Profile::Documented => AMR_STATE_FAILED,
            Profile::Variant => AMR_STATE_ERROR,
        }
    }

    /// `status.error` while the AMR is in the transitional `state` (a progress message, not a failure).
    pub fn progress_error(self, state: &str) -> Option<&'static str> {
        match (self, state) {
            (Profile::Variant, AMR_STATE_ESTABLISHING) => {
                Some("waiting for the baseline transfer of the application's volumes to complete")
            }
            (Profile::Variant, AMR_STATE_PROMOTING) => {
                Some("waiting for the replication of the application's volumes to be broken off")
            }
            _ => None,
        }
    }

    /// Name of the Application a promotion creates on the destination.
    pub fn destination_application_name(self, source_application: &str, amr_uid: &str) -> String {
        match self {
            Profile::Documented => source_application.to_string(),
            Profile::Variant => {
                let short: String = amr_uid.chars().filter(|c| *c != '-').take(8).collect();
                format!("{source_application}-{short}")
            }
        }
    }

    /// `status.destinationApplicationRef` for the Application `name` in `namespace`.
    pub fn destination_application_ref(self, namespace: &str, name: &str) -> String {
        match self {
            Profile::Documented => name.to_string(),
            Profile::Variant => format!("{namespace}/{name}"),
        }
    }

    /// Whether the destination Application exists before the AMR reports `Promoted` (else it follows
    /// `promote_delay` later).
    pub fn creates_application_before_promoted(self) -> bool {
        self == Profile::Documented
    }

    /// Whether a resync deletes the destination Application (else it stays, stopped).
    pub fn resync_deletes_application(self) -> bool {
        self == Profile::Documented
    }

    /// Whether the destination Application carries the AMR's `tprotect.io/relationship` label.
    pub fn labels_destination_application(self) -> bool {
        self == Profile::Documented
    }

    /// Whether `status.lastTransferredSnapshot` is written (`status.lastTransfer` always is).
    pub fn writes_last_transferred_snapshot(self) -> bool {
        self == Profile::Documented
    }

    /// Whether the stand-in writes its conditions (AMR, Snapshot, the shutdown on the Application). Without
    /// them an AMR carries `conditions: []`, which NetApp's CRD requires.
    pub fn writes_conditions(self) -> bool {
        self == Profile::Documented
    }

    /// The finalizer the stand-in keeps on every AMR until it has cleaned up after its deletion.
    pub fn relationship_finalizer(self) -> Option<&'static str> {
        match self {
            Profile::Documented => None,
            Profile::Variant => Some(RELATIONSHIP_FINALIZER),
        }
    }

    /// Whether a destination namespace missing at promotion is created with the merged labels and annotations
    /// (one CREATE) rather than empty and then merged (an UPDATE).
    pub fn creates_namespace_with_metadata(self) -> bool {
        self == Profile::Variant
    }

    /// A timestamp as the stand-in writes it (`format: date-time`).
    pub fn timestamp(self, t: Timestamp) -> Value {
        match self {
            Profile::Documented => serde_json::to_value(Time(t)).unwrap_or(Value::Null),
            Profile::Variant => Value::String(t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
        }
    }

    // ------------------------------------------------------------------------------------------- AppVault

    /// The status of an AppVault that is usable (`problem` None) or not.
    pub fn app_vault_status(self, problem: Option<&str>) -> VaultStatus {
        let state = match problem {
            None => APP_VAULT_STATE_AVAILABLE,
            Some(_) => APP_VAULT_STATE_ERROR,
        };
        match self {
            Profile::Documented => VaultStatus {
                state: Some(state.to_string()),
                error: problem.map(str::to_string),
                message: None,
            },
            Profile::Variant => VaultStatus {
                state: Some(state.to_lowercase()),
                error: None,
                message: problem.map(str::to_string),
            },
        }
    }

    // --------------------------------------------------------------------------- Snapshot, ShutdownSnapshot

    /// The state of a snapshot in progress; `None`: it has no status until it ends.
    pub fn snapshot_running_state(self) -> Option<&'static str> {
        match self {
            Profile::Documented => Some(SNAPSHOT_STATE_RUNNING),
            Profile::Variant => None,
        }
    }

    /// The state of a snapshot that failed.
    pub fn snapshot_failure_state(self) -> &'static str {
        match self {
            Profile::Documented => SNAPSHOT_STATE_FAILED,
            Profile::Variant => SNAPSHOT_STATE_ERROR,
        }
    }

    /// `status.appArchivePath`: `<app>_<app-uid>/snapshots/<yyyymmddhhmmss>_<snapshot>_<snapshot-uid>`, the
    /// shape NetApp shows (`…/snapshots/20250107122548_bboxdrlastsnap_5fa90108-…`); the variant puts the
    /// AppVault's `spec.prefix` (NetApp: "prefixed to the names of all entities stored in the vault"; default
    /// [`DEFAULT_ARCHIVE_PREFIX`]) before it and a `/` after it. Its basename is what
    /// `AppMirrorRelationship.spec.promotedSnapshot` takes.
    pub fn archive_path(self, archive: &Archive<'_>) -> String {
        let path = format!(
            "{}_{}/snapshots/{}_{}_{}",
            archive.application,
            archive.application_uid,
            archive.started.strftime("%Y%m%d%H%M%S"),
            archive.snapshot,
            archive.snapshot_uid
        );
        match self {
            Profile::Documented => path,
            Profile::Variant => {
                let prefix = archive
                    .vault_prefix
                    .map(|p| p.trim_matches('/'))
                    .filter(|p| !p.is_empty())
                    .unwrap_or(DEFAULT_ARCHIVE_PREFIX);
                format!("{prefix}/{path}/")
            }
        }
    }
}

/// What a snapshot's archive path is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive<'a> {
    pub application: &'a str,
    pub application_uid: &'a str,
    /// When the snapshot was taken (its creation time, UTC).
    pub started: Timestamp,
    pub snapshot: &'a str,
    pub snapshot_uid: &'a str,
    /// The AppVault's `spec.prefix`.
    pub vault_prefix: Option<&'a str>,
}

/// The basename of an archive path in either profile's form (the model's reader: everything after the last
/// `/`, a trailing one ignored).
pub use tprotect_api::archive_basename;

/// The destination Application a `status.destinationApplicationRef` written by either profile names:
/// `(namespace, name)`, the namespace `default_namespace` for a bare name.
pub fn parse_destination_application_ref<'a>(
    reference: &'a str,
    default_namespace: &'a str,
) -> Option<(&'a str, &'a str)> {
    let reference = reference.trim();
    match reference.split_once('/') {
        Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() => Some((namespace, name)),
        Some(_) => None,
        None if reference.is_empty() => None,
        None => Some((default_namespace, reference)),
    }
}

/// Whether an AppVault's `status.state` written by either profile says it is usable.
pub fn app_vault_available(state: Option<&str>) -> bool {
    state.is_some_and(|s| s.eq_ignore_ascii_case(APP_VAULT_STATE_AVAILABLE))
}

/// Whether an AppVault's `status.state` written by either profile says it is not usable.
pub fn app_vault_failed(state: Option<&str>) -> bool {
    state.is_some_and(|s| s.eq_ignore_ascii_case(APP_VAULT_STATE_ERROR))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Profile::{Documented, Variant};

    #[test]
    fn amr_states_differ_only_where_undocumented() {
        assert_eq!(Documented.establish_entry_state(), "Establishing");
        assert_eq!(Variant.establish_entry_state(), "Pending");
        assert_eq!(Documented.amr_failure_state(), "Failed");
        assert_eq!(Variant.amr_failure_state(), "Error");
        assert!(Documented.resync_passes_through_establishing());
        assert!(!Variant.resync_passes_through_establishing());
        assert_eq!(Documented.progress_error("Establishing"), None);
        assert!(Variant.progress_error("Establishing").is_some());
        assert!(Variant.progress_error("Promoting").is_some());
        assert_eq!(Variant.progress_error("Established"), None);
        for state in [
            "",
            "Pending",
            "Establishing",
            "Established",
            "Promoting",
            "Promoted",
            "Failed",
            "Error",
        ] {
            assert_ne!(Phase::of(Some(state)), Phase::Other, "{state}");
        }
        assert_eq!(Phase::of(None), Phase::New);
        assert_eq!(Phase::of(Some("Error")), Phase::Failed);
        assert_eq!(Phase::of(Some("Reversing")), Phase::Other);
    }

    #[test]
    fn the_destination_application_and_its_reference() {
        let uid = "6e1f88ab-f013-4bce-8ae9-6afed9df59a1";
        assert_eq!(Documented.destination_application_name("shop", uid), "shop");
        assert_eq!(Variant.destination_application_name("shop", uid), "shop-6e1f88ab");
        assert_eq!(Documented.destination_application_ref("ns-2", "shop"), "shop");
        assert_eq!(Variant.destination_application_ref("ns-2", "shop"), "ns-2/shop");
        for profile in Profile::ALL {
            let reference = profile.destination_application_ref("ns-2", "shop");
            assert_eq!(
                parse_destination_application_ref(&reference, "ns-2"),
                Some(("ns-2", "shop")),
                "{profile}"
            );
        }
        assert_eq!(parse_destination_application_ref("", "ns"), None);
        assert_eq!(parse_destination_application_ref("/x", "ns"), None);
        assert!(Documented.creates_application_before_promoted());
        assert!(!Variant.creates_application_before_promoted());
        assert!(Documented.resync_deletes_application() && !Variant.resync_deletes_application());
    }

    #[test]
    fn timestamps_with_and_without_fractional_seconds() {
        let t: Timestamp = "2025-01-07T12:25:48.5Z".parse().unwrap();
        assert_eq!(Documented.timestamp(t), "2025-01-07T12:25:48Z");
        assert_eq!(Variant.timestamp(t), "2025-01-07T12:25:48.500000Z");
        let whole: Timestamp = "2025-01-07T12:25:48Z".parse().unwrap();
        assert_eq!(Variant.timestamp(whole), "2025-01-07T12:25:48.000000Z");
        // Both read back as the same instant (to the second for the documented one).
        let back: Timestamp = Variant.timestamp(t).as_str().unwrap().parse().unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn app_vault_states_and_problem_text() {
        assert_eq!(
            Documented.app_vault_status(Some("no Secret")),
            VaultStatus {
                state: Some("Error".into()),
                error: Some("no Secret".into()),
                message: None
            }
        );
        assert_eq!(
            Variant.app_vault_status(Some("no Secret")),
            VaultStatus {
                state: Some("error".into()),
                error: None,
                message: Some("no Secret".into())
            }
        );
        assert_eq!(Variant.app_vault_status(None).state.as_deref(), Some("available"));
        for profile in Profile::ALL {
            let ok = profile.app_vault_status(None);
            let bad = profile.app_vault_status(Some("x"));
            assert!(app_vault_available(ok.state.as_deref()) && !app_vault_failed(ok.state.as_deref()));
            assert!(app_vault_failed(bad.state.as_deref()) && !app_vault_available(bad.state.as_deref()));
        }
        assert!(!app_vault_available(None));
    }

    #[test]
    fn archive_paths_and_their_basename() {
        let archive = Archive {
            application: "bbox",
            application_uid: "6e1f-uid",
            started: "2025-01-07T12:25:48Z".parse().unwrap(),
            snapshot: "bboxdrlastsnap",
            snapshot_uid: "5fa90108-aaaa",
            vault_prefix: None,
        };
        let documented = Documented.archive_path(&archive);
        assert_eq!(
            documented,
            "bbox_6e1f-uid/snapshots/20250107122548_bboxdrlastsnap_5fa90108-aaaa"
        );
        let variant = Variant.archive_path(&archive);
        assert_eq!(
            variant,
            "trident-protect/bbox_6e1f-uid/snapshots/20250107122548_bboxdrlastsnap_5fa90108-aaaa/"
        );
        let prefixed = Variant.archive_path(&Archive {
            vault_prefix: Some("/team-a/dr/"),
            ..archive
        });
        assert!(prefixed.starts_with("team-a/dr/bbox_"), "{prefixed}");
        for path in [&documented, &variant, &prefixed] {
            assert_eq!(
                archive_basename(path),
                Some("20250107122548_bboxdrlastsnap_5fa90108-aaaa")
            );
        }
        assert_eq!(
            tprotect_api::archive_basename(&variant),
            Some("20250107122548_bboxdrlastsnap_5fa90108-aaaa"),
            "the product's reader reads the variant too"
        );
        assert_eq!(archive_basename("/"), None);
        assert_eq!(Documented.snapshot_running_state(), Some("Running"));
        assert_eq!(Variant.snapshot_running_state(), None);
        assert_eq!(Variant.snapshot_failure_state(), "Error");
    }
}
