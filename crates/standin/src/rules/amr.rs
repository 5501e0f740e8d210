//! AppMirrorRelationship: the state machine of a replication relationship, seen from the cluster the AMR lives on
//! (the destination). Its peer cluster is the source.
//!
//! ```text
//!  desiredState Established:  (none) ─► Establishing ──(prerequisites, delay)──► Established ─┐ transfer at
//!                              Promoting ─► Establishing                            ▲        │ each recurrence
//!                              Promoted ──(resync delay: discard, stop app)──► Establishing   └──┘
//!  desiredState Promoted:     (none) | Establishing | Established ─► Promoting ──(delay)──► Promoted
//! ```
//!
//! Establishing waits, with `status.error` naming every missing piece (cluster, namespace, name), until the source
//! Application exists with the AMR's `sourceApplicationUID`, the source AppVault exists on both clusters and the
//! destination AppVault on the destination. Promoting needs nothing from the source (failover must work with the
//! source down) except, for a planned swap (`promotedSnapshot`), a ShutdownSnapshot on the source whose archive
//! has that basename.
//!
//! That is the documented profile. The variant ([`crate::Profile::Variant`], [`crate::rules::forms`]) differs:
//!
//! ```text
//!  desiredState Established:  (none) ─► Pending ──(prerequisites)──► Establishing ──(delay)──► Established
//!                              Establishing ──(a prerequisite gone)──► Pending
//!                              Promoted ──(prerequisites, incl. the source; resync delay)──► Established
//!  desiredState Promoted:     … ─► Promoting ──(delay)──► Promoted ──(delay)──► destination Application created
//!  any desired state:          a failure fault ─► Error (documented: Failed) ─► carries on once recovered
//! ```

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde_json::{Value, json};
use tprotect_api::{
    AMR_STATE_ESTABLISHED, AMR_STATE_ESTABLISHING, AMR_STATE_PROMOTED, AMR_STATE_PROMOTING, DesiredState,
    TRIDENT_PROTECT_NAMESPACE,
};

use crate::Profile;
use crate::conditions::{ConditionUpdate, upsert};
use crate::rules::forms::{AMR_STATE_PENDING, Phase};

/// Condition: True while the relationship replicates.
pub const CONDITION_ESTABLISHED: &str = "Established";
/// Condition: True once failed over.
pub const CONDITION_PROMOTED: &str = "Promoted";
/// Condition written at promotion: True when the source namespaces' labels and annotations were merged into the
/// destination namespaces, False (reason `SourceUnreachable`) when the source could not be read.
pub const CONDITION_NAMESPACE_METADATA_MERGED: &str = "NamespaceMetadataMerged";
/// Condition written by a resync (Promoted → Established): True, every change written on the destination since
/// the failover was discarded and the destination Application deleted (stopped).
pub const CONDITION_DESTINATION_CHANGES_DISCARDED: &str = "DestinationChangesDiscarded";

/// Reason of `NamespaceMetadataMerged=False` when the source was unreachable at promotion.
pub const REASON_SOURCE_UNREACHABLE: &str = "SourceUnreachable";

/// How long each AMR transition takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delays {
    pub establish: Duration,
    pub promote: Duration,
    pub resync: Duration,
    /// How soon to look again while blocked (watches also wake the stand-in).
    pub retry: Duration,
}

/// Transitions a test has stalled for this AMR.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stalls {
    pub establish: bool,
    pub promote: bool,
    pub resync: bool,
    pub transfer: bool,
}

/// What the stand-in found of the source Application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceApp {
    /// Found in this namespace with the AMR's uid.
    Found { namespace: String },
    /// Found, with another uid.
    UidMismatch { namespace: String, uid: String },
    /// Not in any of these namespaces.
    Missing { namespaces: Vec<String> },
    /// The source cluster did not answer.
    Unreachable,
}

/// What establishing a relationship needs, as the stand-in found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prerequisites {
    pub source_cluster: String,
    pub destination_cluster: String,
    /// `Err(reason)` when the source cluster did not answer.
    pub source_reachable: Result<(), String>,
    /// `spec.sourceApplicationName`, `spec.sourceApplicationUID`, `spec.sourceAppVaultRef`,
    /// `spec.destinationAppVaultRef`.
    pub application_name: Option<String>,
    pub application_uid: Option<String>,
    pub source_vault: Option<String>,
    pub destination_vault: Option<String>,
    pub source_app: SourceApp,
    /// `None` when the source cluster did not answer.
    pub source_vault_on_source: Option<bool>,
    pub source_vault_on_destination: bool,
    pub destination_vault_on_destination: bool,
    /// A problem with `spec.recurrenceRule`, if any.
    pub recurrence_problem: Option<String>,
}

impl Prerequisites {
    /// Every missing piece, each naming the cluster, namespace and name; empty when the relationship can be
    /// established.
    pub fn missing(&self) -> Vec<String> {
        let mut missing = Vec::new();
        let unset = |field: &str| format!("spec.{field} is not set");
        let (Some(app), Some(uid), Some(source_vault), Some(destination_vault)) = (
            self.application_name.as_deref().filter(|s| !s.is_empty()),
            self.application_uid.as_deref().filter(|s| !s.is_empty()),
            self.source_vault.as_deref().filter(|s| !s.is_empty()),
            self.destination_vault.as_deref().filter(|s| !s.is_empty()),
        ) else {
            for (field, value) in [
                ("sourceApplicationName", &self.application_name),
                ("sourceApplicationUID", &self.application_uid),
                ("sourceAppVaultRef", &self.source_vault),
                ("destinationAppVaultRef", &self.destination_vault),
            ] {
                if value.as_deref().is_none_or(str::is_empty) {
                    missing.push(unset(field));
                }
            }
            return missing;
        };
        let (source, destination) = (&self.source_cluster, &self.destination_cluster);
        if let Err(reason) = &self.source_reachable {
            missing.push(format!("cannot reach source cluster {source:?}: {reason}"));
        }
        match &self.source_app {
            SourceApp::Found { .. } | SourceApp::Unreachable => {}
            SourceApp::UidMismatch { namespace, uid: found } => missing.push(format!(
                "source Application {app:?} in namespace {namespace:?} on cluster {source:?} has uid {found:?}, \
                 not sourceApplicationUID {uid:?}"
            )),
            SourceApp::Missing { namespaces } => missing.push(format!(
                "source Application {app:?} not found in namespace {} on cluster {source:?}",
                namespaces
                    .iter()
                    .map(|n| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )),
        }
        let vault_missing = |role: &str, name: &str, cluster: &str| {
            format!(
                "{role} AppVault {name:?} not found in namespace {TRIDENT_PROTECT_NAMESPACE:?} on cluster {cluster:?}"
            )
        };
        if self.source_vault_on_source == Some(false) {
            missing.push(vault_missing("source", source_vault, source));
        }
        if !self.source_vault_on_destination {
            missing.push(vault_missing("source", source_vault, destination));
        }
        if !self.destination_vault_on_destination {
            missing.push(vault_missing("destination", destination_vault, destination));
        }
        if let Some(problem) = &self.recurrence_problem {
            missing.push(problem.clone());
        }
        missing
    }
}

/// What the stand-in found of `spec.promotedSnapshot`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromotedSnapshot {
    /// Not set: an unplanned failover.
    NotRequested,
    /// The ShutdownSnapshot (name, completion) whose archive has that basename.
    Found {
        name: String,
        completion: Option<Timestamp>,
    },
    /// No ShutdownSnapshot on the source has an archive of that basename.
    NotFound { basename: String },
    /// The source cluster did not answer.
    Unverifiable { basename: String, reason: String },
}

/// Whether a transfer is due (while Established).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferClock {
    Due,
    NotDue(Duration),
    Invalid(String),
}

/// What the stand-in observed of one AMR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub desired: Option<DesiredState>,
    pub state: Option<String>,
    /// Time since the stand-in first saw this (state, desired state) pair.
    pub in_phase_for: Duration,
    /// [`Prerequisites::missing`].
    pub missing: Vec<String>,
    /// `Err(reason)` when the source cluster did not answer.
    pub source_reachable: Result<(), String>,
    pub promoted_snapshot: PromotedSnapshot,
    pub transfer: TransferClock,
    pub stalls: Stalls,
    /// A failure a test injected ([`crate::Faults::fail_relationship`]).
    pub failure: Option<String>,
    /// Whether the destination Application exists (looked at only while Promoted, by a profile that creates it
    /// after reporting Promoted; true otherwise).
    pub destination_application_exists: bool,
}

/// Why an AMR cannot move on; written to `status.error`, the state stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    /// Establishing (or resyncing, under the variant), something is missing.
    Prerequisites(String),
    /// Established, a transfer could not run.
    Transfer(String),
    /// Promoting, `promotedSnapshot` is not (or cannot be) found.
    PromotedSnapshot(String),
}

impl Blocker {
    pub fn message(&self) -> &str {
        match self {
            Blocker::Prerequisites(m) | Blocker::Transfer(m) | Blocker::PromotedSnapshot(m) => m,
        }
    }
}

/// The next step for an AMR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do until something changes.
    Idle,
    /// Look again after this long.
    Wait(Duration),
    /// Write this state (`Establishing`, `Pending` or `Promoting`).
    Enter(&'static str),
    /// Write `status.error`; the state does not move.
    Blocked(Blocker),
    /// Report a failure (an injected fault): the profile's failure state and `status.error`.
    Fail(String),
    /// Establishing → Established, with the first transfer.
    Establish,
    /// A transfer while Established.
    Transfer,
    /// Promoting → Promoted: merge the namespaces' metadata and (documented profile) create the destination
    /// Application.
    Promote,
    /// Promoted, and the destination Application is not there yet: create it (variant profile).
    CreateApplication,
    /// Promoted → Establishing: discard the destination's changes, delete (stop) the destination Application.
    /// Under the variant, Promoted → Established in one step, the destination Application kept (stopped).
    Resync,
}

fn remaining(delay: Duration, elapsed: Duration) -> Option<Duration> {
    (elapsed < delay).then(|| delay - elapsed)
}

/// Waits out `delay` (measured in the current phase) unless `stalled`, then `step`.
fn after(delay: Duration, o: &Observation, stalled: bool, step: Step) -> Step {
    if stalled {
        Step::Idle
    } else if let Some(wait) = remaining(delay, o.in_phase_for) {
        Step::Wait(wait)
    } else {
        step
    }
}

/// Decides the next step of an AMR, playing `profile`.
pub fn decide(o: &Observation, delays: &Delays, profile: Profile) -> Step {
    let Some(desired) = o.desired else {
        return Step::Idle;
    };
    if let Some(failure) = &o.failure {
        return Step::Fail(failure.clone());
    }
    let phase = Phase::of(o.state.as_deref());
    let prerequisites = || Step::Blocked(Blocker::Prerequisites(o.missing.join("; ")));
    match desired {
        DesiredState::Established => match phase {
            Phase::Promoted => {
                if !profile.resync_passes_through_establishing() && !o.missing.is_empty() {
                    // Resyncing starts from the source: without it nothing is discarded.
                    prerequisites()
                } else {
                    after(delays.resync, o, o.stalls.resync, Step::Resync)
                }
            }
            Phase::Pending | Phase::Establishing => {
                if !o.missing.is_empty() {
                    if phase == Phase::Establishing && profile.has_pending_state() {
                        Step::Enter(AMR_STATE_PENDING)
                    } else {
                        prerequisites()
                    }
                } else if phase == Phase::Pending {
                    Step::Enter(AMR_STATE_ESTABLISHING)
                } else {
                    after(delays.establish, o, o.stalls.establish, Step::Establish)
                }
            }
            Phase::Established => match &o.transfer {
                TransferClock::NotDue(wait) => Step::Wait(*wait),
                TransferClock::Invalid(problem) => Step::Blocked(Blocker::Transfer(problem.clone())),
                TransferClock::Due if o.stalls.transfer => Step::Idle,
                TransferClock::Due => match &o.source_reachable {
                    Ok(()) => Step::Transfer,
                    Err(reason) => Step::Blocked(Blocker::Transfer(format!(
                        "transfer skipped, cannot reach the source cluster: {reason}"
                    ))),
                },
            },
            Phase::New | Phase::Promoting | Phase::Failed | Phase::Other => {
                Step::Enter(profile.establish_entry_state())
            }
        },
        DesiredState::Promoted => match phase {
            Phase::Promoted => {
                if profile.creates_application_before_promoted() || o.destination_application_exists {
                    Step::Idle
                } else {
                    after(delays.promote, o, false, Step::CreateApplication)
                }
            }
            Phase::Promoting => match &o.promoted_snapshot {
                PromotedSnapshot::NotFound { basename } => Step::Blocked(Blocker::PromotedSnapshot(format!(
                    "promotedSnapshot {basename:?}: no ShutdownSnapshot on the source cluster has an \
                     appArchivePath with that basename"
                ))),
                PromotedSnapshot::Unverifiable { basename, reason } => {
                    Step::Blocked(Blocker::PromotedSnapshot(format!(
                        "promotedSnapshot {basename:?} cannot be checked, cannot reach the source cluster: {reason}"
                    )))
                }
                PromotedSnapshot::NotRequested | PromotedSnapshot::Found { .. } => {
                    after(delays.promote, o, o.stalls.promote, Step::Promote)
                }
            },
            _ => Step::Enter(AMR_STATE_PROMOTING),
        },
    }
}

/// What to do about the finalizer the variant keeps on an AMR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalizerStep {
    /// Put it on (first sight of the AMR).
    Add,
    /// The AMR is being deleted: clean up for this long, then remove it.
    Wait(Duration),
    /// Remove it: the AMR goes.
    Remove,
}

/// The finalizer's next step: `deleting_for` is the time since the stand-in first saw the deletion. Our
/// finalizer on a deleted AMR is removed after `delay` whatever the profile (so a switch of profile never leaves
/// an AMR stuck).
pub fn finalizer_step(
    profile: Profile,
    deleting: bool,
    has_finalizer: bool,
    deleting_for: Duration,
    delay: Duration,
) -> Option<FinalizerStep> {
    match (deleting, has_finalizer) {
        (true, true) => Some(match remaining(delay, deleting_for) {
            Some(wait) => FinalizerStep::Wait(wait),
            None => FinalizerStep::Remove,
        }),
        (false, false) if profile.relationship_finalizer().is_some() => Some(FinalizerStep::Add),
        _ => None,
    }
}

/// What a promotion did to the namespaces' metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceMerge {
    /// Merged `(source, destination)` pairs; source namespaces that did not exist are listed apart.
    Merged {
        merged: Vec<(String, String)>,
        missing_sources: Vec<String>,
    },
    /// The source cluster could not be read: nothing merged.
    SourceUnreachable(String),
}

/// What a status write needs besides the step.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusInputs {
    pub now: Timestamp,
    pub generation: Option<i64>,
    /// `status.state`, `status.conditions` and `status.error` as read.
    pub state: Option<String>,
    pub conditions: Vec<Condition>,
    pub error: Option<String>,
    pub source_cluster: String,
    pub destination_cluster: String,
    /// The AMR's namespace (where the destination Application lives).
    pub namespace: String,
    /// `spec.namespaceMapping` destinations.
    pub destination_namespaces: Vec<String>,
    /// `spec.sourceApplicationName`.
    pub application: String,
    /// Name of the destination Application ([`Profile::destination_application_name`]).
    pub destination_application: String,
    /// Newest Completed Snapshot of the source Application: the one a transfer carries.
    pub latest_snapshot: Option<(String, Option<Timestamp>)>,
    /// For Promote: the ShutdownSnapshot of a planned swap.
    pub promoted_snapshot: PromotedSnapshot,
    /// For Promote: what happened to the namespaces' metadata.
    pub namespace_merge: Option<NamespaceMerge>,
}

/// The `status` merge patch for `step`, in the forms of `profile`; `None` when the step writes nothing or would
/// change nothing (so a blocked AMR does not write, and wake itself, in a loop).
pub fn status_patch(step: &Step, inputs: &StatusInputs, profile: Profile) -> Option<Value> {
    let StatusInputs {
        now,
        generation,
        source_cluster,
        destination_cluster,
        application,
        destination_application,
        ..
    } = inputs;
    let mut conditions = inputs.conditions.clone();
    let mut set = |update: ConditionUpdate<'_>| {
        if profile.writes_conditions() {
            upsert(&mut conditions, update, *generation, *now)
        }
    };
    let mut patch = serde_json::Map::new();
    let snapshot_json = |name: &str, completion: Option<Timestamp>| {
        let mut snapshot = json!({ "name": name });
        if let Some(completion) = completion {
            snapshot["completionTimestamp"] = profile.timestamp(completion);
        }
        snapshot
    };
    let transfer = |patch: &mut serde_json::Map<String, Value>| {
        patch.insert(
            "lastTransfer".into(),
            json!({ "startTimestamp": profile.timestamp(*now), "completionTimestamp": profile.timestamp(*now) }),
        );
        if let Some((name, completion)) = &inputs.latest_snapshot
            && profile.writes_last_transferred_snapshot()
        {
            patch.insert("lastTransferredSnapshot".into(), snapshot_json(name, *completion));
        }
    };
    match step {
        Step::Idle | Step::Wait(_) | Step::CreateApplication => return None,
        Step::Enter(state) => {
            patch.insert("state".into(), json!(state));
            patch.insert("error".into(), json!(profile.progress_error(state)));
            if *state == AMR_STATE_PROMOTING {
                set(ConditionUpdate::new(
                    CONDITION_PROMOTED,
                    false,
                    "Promoting",
                    "failing over",
                ));
                set(ConditionUpdate::new(
                    CONDITION_ESTABLISHED,
                    false,
                    "Promoting",
                    "failing over",
                ));
            } else {
                set(ConditionUpdate::new(
                    CONDITION_ESTABLISHED,
                    false,
                    "Establishing",
                    "setting up replication",
                ));
                set(ConditionUpdate::new(CONDITION_PROMOTED, false, "NotPromoted", ""));
            }
        }
        Step::Blocked(blocker) => {
            match blocker {
                Blocker::Prerequisites(message) => set(ConditionUpdate::new(
                    CONDITION_ESTABLISHED,
                    false,
                    "PrerequisitesMissing",
                    message.clone(),
                )),
                Blocker::PromotedSnapshot(message) => set(ConditionUpdate::new(
                    CONDITION_PROMOTED,
                    false,
                    "PromotedSnapshotNotFound",
                    message.clone(),
                )),
                Blocker::Transfer(_) => {}
            }
            if inputs.error.as_deref() == Some(blocker.message()) && conditions == inputs.conditions {
                return None;
            }
            patch.insert("error".into(), json!(blocker.message()));
        }
        Step::Fail(message) => {
            let state = profile.amr_failure_state();
            set(ConditionUpdate::new(
                CONDITION_ESTABLISHED,
                false,
                "Failed",
                message.clone(),
            ));
            if inputs.state.as_deref() == Some(state)
                && inputs.error.as_deref() == Some(message)
                && conditions == inputs.conditions
            {
                return None;
            }
            patch.insert("state".into(), json!(state));
            patch.insert("error".into(), json!(message));
        }
        Step::Establish => {
            patch.insert("state".into(), json!(AMR_STATE_ESTABLISHED));
            transfer(&mut patch);
            set(ConditionUpdate::new(
                CONDITION_ESTABLISHED,
                true,
                "Established",
                format!("replicating Application {application:?} from cluster {source_cluster:?}"),
            ));
            set(ConditionUpdate::new(CONDITION_PROMOTED, false, "NotPromoted", ""));
        }
        Step::Transfer => transfer(&mut patch),
        Step::Promote => {
            patch.insert("state".into(), json!(AMR_STATE_PROMOTED));
            patch.insert(
                "destinationApplicationRef".into(),
                json!(profile.destination_application_ref(&inputs.namespace, destination_application)),
            );
            let mut message = format!(
                "Application {:?} in namespace {:?} runs on cluster {destination_cluster:?}",
                destination_application, inputs.namespace
            );
            if let PromotedSnapshot::Found { name, completion } = &inputs.promoted_snapshot {
                if profile.writes_last_transferred_snapshot() {
                    patch.insert("lastTransferredSnapshot".into(), snapshot_json(name, *completion));
                }
                message.push_str(&format!(", restored from ShutdownSnapshot {name:?}"));
            }
            set(ConditionUpdate::new(
                CONDITION_PROMOTED,
                true,
                "Promoted",
                message,
            ));
            set(ConditionUpdate::new(
                CONDITION_ESTABLISHED,
                false,
                "Promoted",
                "failed over",
            ));
            match &inputs.namespace_merge {
                Some(NamespaceMerge::Merged {
                    merged,
                    missing_sources,
                }) => {
                    let mut message = merged
                        .iter()
                        .map(|(s, d)| format!("{s} -> {d}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    message = format!("labels and annotations merged: {message}");
                    if !missing_sources.is_empty() {
                        message.push_str(&format!(
                            "; source namespaces not found: {}",
                            missing_sources.join(", ")
                        ));
                    }
                    set(ConditionUpdate::new(
                        CONDITION_NAMESPACE_METADATA_MERGED,
                        true,
                        "Merged",
                        message,
                    ));
                }
                Some(NamespaceMerge::SourceUnreachable(reason)) => set(ConditionUpdate::new(
                    CONDITION_NAMESPACE_METADATA_MERGED,
                    false,
                    REASON_SOURCE_UNREACHABLE,
                    format!(
                        "source cluster {source_cluster:?} unreachable at promotion ({reason}): promoted from \
                         the last transferred state; destination namespace labels and annotations were not \
                         merged from the source"
                    ),
                )),
                None => {}
            }
            if crate::conditions::find(&inputs.conditions, CONDITION_DESTINATION_CHANGES_DISCARDED).is_some()
            {
                set(ConditionUpdate::new(
                    CONDITION_DESTINATION_CHANGES_DISCARDED,
                    false,
                    "Promoted",
                    "",
                ));
            }
        }
        Step::Resync if !profile.resync_passes_through_establishing() => {
            // Promoted → Established at once: the destination's changes discarded, replication running again.
            patch.insert("state".into(), json!(AMR_STATE_ESTABLISHED));
            patch.insert("destinationApplicationRef".into(), Value::Null);
            transfer(&mut patch);
        }
        Step::Resync => {
            patch.insert("state".into(), json!(AMR_STATE_ESTABLISHING));
            patch.insert("destinationApplicationRef".into(), Value::Null);
            set(ConditionUpdate::new(
                CONDITION_DESTINATION_CHANGES_DISCARDED,
                true,
                "Resync",
                format!(
                    "resync discarded every change written on cluster {destination_cluster:?} since the \
                     failover: Application {destination_application:?} in namespace {:?} was deleted (stopped); \
                     replication from cluster {source_cluster:?} restarts",
                    inputs.namespace
                ),
            ));
            set(ConditionUpdate::new(
                CONDITION_PROMOTED,
                false,
                "Resync",
                "resynchronising from the source",
            ));
            set(ConditionUpdate::new(
                CONDITION_ESTABLISHED,
                false,
                "Establishing",
                "setting up replication",
            ));
        }
    }
    // Every step that moves on clears the last error (unless it set one).
    patch.entry("error").or_insert(Value::Null);
    if !matches!(step, Step::Transfer) {
        patch.insert(
            "destinationNamespaces".into(),
            json!(inputs.destination_namespaces),
        );
    }
    let conditions = if profile.writes_conditions() {
        serde_json::to_value(&conditions).unwrap_or(Value::Null)
    } else {
        json!([])
    };
    patch.insert("conditions".into(), conditions);
    Some(Value::Object(patch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Profile::{Documented, Variant};

    const DELAYS: Delays = Delays {
        establish: Duration::from_millis(200),
        promote: Duration::from_millis(300),
        resync: Duration::from_millis(100),
        retry: Duration::from_secs(1),
    };

    /// The step decided for `o` with the test [`DELAYS`].
    fn next_step(o: &Observation, profile: Profile) -> Step {
        decide(o, &DELAYS, profile)
    }

    fn observation(desired: DesiredState, state: &str) -> Observation {
        Observation {
            desired: Some(desired),
            state: (!state.is_empty()).then(|| state.to_string()),
            in_phase_for: Duration::from_secs(1),
            missing: Vec::new(),
            source_reachable: Ok(()),
            promoted_snapshot: PromotedSnapshot::NotRequested,
            transfer: TransferClock::NotDue(Duration::from_secs(2)),
            stalls: Stalls::default(),
            failure: None,
            destination_application_exists: true,
        }
    }

    fn prerequisites() -> Prerequisites {
        Prerequisites {
            source_cluster: "source".into(),
            destination_cluster: "destination".into(),
            source_reachable: Ok(()),
            application_name: Some("my-app".into()),
            application_uid: Some("uid-1".into()),
            source_vault: Some("src-vault".into()),
            destination_vault: Some("dst-vault".into()),
            source_app: SourceApp::Found {
                namespace: "ns-1".into(),
            },
            source_vault_on_source: Some(true),
            source_vault_on_destination: true,
            destination_vault_on_destination: true,
            recurrence_problem: None,
        }
    }

    #[test]
    fn establishing_needs_every_prerequisite_and_names_what_is_missing() {
        assert!(prerequisites().missing().is_empty());
        let p = Prerequisites {
            source_app: SourceApp::Missing {
                namespaces: vec!["ns-1".into()],
            },
            source_vault_on_source: Some(false),
            source_vault_on_destination: false,
            destination_vault_on_destination: false,
            ..prerequisites()
        };
        assert_eq!(
            p.missing(),
            [
                "source Application \"my-app\" not found in namespace \"ns-1\" on cluster \"source\"",
                "source AppVault \"src-vault\" not found in namespace \"trident-protect\" on cluster \"source\"",
                "source AppVault \"src-vault\" not found in namespace \"trident-protect\" on cluster \"destination\"",
                "destination AppVault \"dst-vault\" not found in namespace \"trident-protect\" on cluster \
                 \"destination\"",
            ]
        );
        let p = Prerequisites {
            source_app: SourceApp::UidMismatch {
                namespace: "ns-1".into(),
                uid: "uid-2".into(),
            },
            ..prerequisites()
        };
        assert_eq!(
            p.missing(),
            [
                "source Application \"my-app\" in namespace \"ns-1\" on cluster \"source\" has uid \"uid-2\", not \
              sourceApplicationUID \"uid-1\""
            ]
        );
        let p = Prerequisites {
            source_reachable: Err("connection refused".into()),
            source_app: SourceApp::Unreachable,
            source_vault_on_source: None,
            ..prerequisites()
        };
        assert_eq!(
            p.missing(),
            ["cannot reach source cluster \"source\": connection refused"]
        );
        let p = Prerequisites {
            application_uid: None,
            destination_vault: Some(String::new()),
            ..prerequisites()
        };
        assert_eq!(
            p.missing(),
            [
                "spec.sourceApplicationUID is not set",
                "spec.destinationAppVaultRef is not set"
            ]
        );
        let p = Prerequisites {
            recurrence_problem: Some("spec.recurrenceRule: bad".into()),
            ..prerequisites()
        };
        assert_eq!(p.missing(), ["spec.recurrenceRule: bad"]);
    }

    #[test]
    fn establish_path() {
        use DesiredState::Established;
        let establishing = || observation(Established, "Establishing");
        let cases = [
            (
                "no state yet",
                observation(Established, ""),
                Step::Enter("Establishing"),
            ),
            (
                "from Promoting",
                observation(Established, "Promoting"),
                Step::Enter("Establishing"),
            ),
            (
                "prerequisites missing",
                Observation {
                    missing: vec!["a".into(), "b".into()],
                    ..establishing()
                },
                Step::Blocked(Blocker::Prerequisites("a; b".into())),
            ),
            (
                "before its delay",
                Observation {
                    in_phase_for: Duration::from_millis(50),
                    ..establishing()
                },
                Step::Wait(Duration::from_millis(150)),
            ),
            ("after its delay", establishing(), Step::Establish),
            (
                "stalled",
                Observation {
                    stalls: Stalls {
                        establish: true,
                        ..Default::default()
                    },
                    ..establishing()
                },
                Step::Idle,
            ),
        ];
        for (case, o, expected) in cases {
            assert_eq!(next_step(&o, Documented), expected, "{case}");
        }
    }

    #[test]
    fn transfers_at_each_recurrence_while_established() {
        use DesiredState::Established;
        assert_eq!(
            next_step(&observation(Established, "Established"), Documented),
            Step::Wait(Duration::from_secs(2))
        );
        let due = Observation {
            transfer: TransferClock::Due,
            ..observation(Established, "Established")
        };
        assert_eq!(next_step(&due, Documented), Step::Transfer);
        let unreachable = Observation {
            source_reachable: Err("refused".into()),
            ..due.clone()
        };
        assert_eq!(
            next_step(&unreachable, Documented),
            Step::Blocked(Blocker::Transfer(
                "transfer skipped, cannot reach the source cluster: refused".into()
            ))
        );
        let stalled = Observation {
            stalls: Stalls {
                transfer: true,
                ..Default::default()
            },
            ..due
        };
        assert_eq!(next_step(&stalled, Documented), Step::Idle);
    }

    #[test]
    fn promote_path_works_without_the_source_but_checks_a_promoted_snapshot() {
        use DesiredState::Promoted;
        for from in ["", "Establishing", "Established"] {
            assert_eq!(
                next_step(&observation(Promoted, from), Documented),
                Step::Enter("Promoting"),
                "{from}"
            );
        }
        let promoting = || observation(Promoted, "Promoting");
        let cases = [
            (
                "failover with the source down",
                Observation {
                    source_reachable: Err("refused".into()),
                    missing: vec!["cannot reach".into()],
                    ..promoting()
                },
                Step::Promote,
            ),
            (
                "before its delay",
                Observation {
                    in_phase_for: Duration::from_millis(100),
                    ..promoting()
                },
                Step::Wait(Duration::from_millis(200)),
            ),
            (
                "promoted snapshot not found",
                Observation {
                    promoted_snapshot: PromotedSnapshot::NotFound {
                        basename: "2025_x_uid".into(),
                    },
                    ..promoting()
                },
                Step::Blocked(Blocker::PromotedSnapshot(
                    "promotedSnapshot \"2025_x_uid\": no ShutdownSnapshot on the source cluster has an \
                     appArchivePath with that basename"
                        .into(),
                )),
            ),
            (
                "promoted snapshot found",
                Observation {
                    promoted_snapshot: PromotedSnapshot::Found {
                        name: "shutdown".into(),
                        completion: None,
                    },
                    ..promoting()
                },
                Step::Promote,
            ),
            (
                "stuck in Promoting",
                Observation {
                    stalls: Stalls {
                        promote: true,
                        ..Default::default()
                    },
                    ..promoting()
                },
                Step::Idle,
            ),
            ("already promoted", observation(Promoted, "Promoted"), Step::Idle),
        ];
        for (case, o, expected) in cases {
            assert_eq!(next_step(&o, Documented), expected, "{case}");
        }
        let unverifiable = Observation {
            promoted_snapshot: PromotedSnapshot::Unverifiable {
                basename: "b".into(),
                reason: "refused".into(),
            },
            ..promoting()
        };
        assert!(matches!(next_step(&unverifiable, Documented), Step::Blocked(_)));
    }

    #[test]
    fn resync_after_its_delay() {
        use DesiredState::Established;
        assert_eq!(
            next_step(&observation(Established, "Promoted"), Documented),
            Step::Resync
        );
        let early = Observation {
            in_phase_for: Duration::from_millis(40),
            ..observation(Established, "Promoted")
        };
        assert_eq!(
            next_step(&early, Documented),
            Step::Wait(Duration::from_millis(60))
        );
        assert_eq!(
            next_step(
                &Observation {
                    desired: None,
                    ..early
                },
                Documented
            ),
            Step::Idle
        );
    }

    fn inputs() -> StatusInputs {
        StatusInputs {
            now: "2025-01-07T12:00:00Z".parse().unwrap(),
            generation: Some(3),
            state: None,
            conditions: Vec::new(),
            error: None,
            source_cluster: "source".into(),
            destination_cluster: "destination".into(),
            namespace: "ns-2".into(),
            destination_namespaces: vec!["ns-2".into()],
            application: "my-app".into(),
            destination_application: "my-app".into(),
            latest_snapshot: Some(("snap-1".into(), Some("2025-01-07T11:59:00Z".parse().unwrap()))),
            promoted_snapshot: PromotedSnapshot::NotRequested,
            namespace_merge: None,
        }
    }

    fn condition<'a>(patch: &'a Value, type_: &str) -> &'a Value {
        patch["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == type_)
            .unwrap_or_else(|| panic!("no {type_} condition in {patch}"))
    }

    #[test]
    fn establish_writes_state_transfer_namespaces_and_conditions() {
        let patch = status_patch(&Step::Establish, &inputs(), Documented).unwrap();
        assert_eq!(patch["state"], "Established");
        assert_eq!(patch["error"], Value::Null);
        assert_eq!(patch["destinationNamespaces"], json!(["ns-2"]));
        assert_eq!(
            patch["lastTransfer"],
            json!({"startTimestamp": "2025-01-07T12:00:00Z", "completionTimestamp": "2025-01-07T12:00:00Z"})
        );
        assert_eq!(
            patch["lastTransferredSnapshot"],
            json!({"name": "snap-1", "completionTimestamp": "2025-01-07T11:59:00Z"})
        );
        let established = condition(&patch, "Established");
        assert_eq!(established["status"], "True");
        assert_eq!(established["observedGeneration"], 3);
        assert_eq!(established["lastTransitionTime"], "2025-01-07T12:00:00Z");
        assert!(status_patch(&Step::Wait(Duration::ZERO), &inputs(), Documented).is_none());
        assert!(status_patch(&Step::Idle, &inputs(), Documented).is_none());
    }

    #[test]
    fn a_blocked_amr_writes_its_error_once() {
        let step = Step::Blocked(Blocker::Prerequisites("missing x".into()));
        let patch = status_patch(&step, &inputs(), Documented).unwrap();
        assert_eq!(patch["error"], "missing x");
        assert!(patch.get("state").is_none(), "the state does not advance");
        assert_eq!(condition(&patch, "Established")["reason"], "PrerequisitesMissing");
        let conditions: Vec<Condition> = serde_json::from_value(patch["conditions"].clone()).unwrap();
        let again = StatusInputs {
            conditions,
            error: Some("missing x".into()),
            ..inputs()
        };
        assert_eq!(
            status_patch(&step, &again, Documented),
            None,
            "nothing changed: no write"
        );
    }

    #[test]
    fn promote_writes_the_application_ref_and_the_merge_outcome() {
        let merged = StatusInputs {
            namespace_merge: Some(NamespaceMerge::Merged {
                merged: vec![("ns-1".into(), "ns-2".into())],
                missing_sources: vec![],
            }),
            ..inputs()
        };
        let patch = status_patch(&Step::Promote, &merged, Documented).unwrap();
        assert_eq!(patch["state"], "Promoted");
        assert_eq!(patch["destinationApplicationRef"], "my-app");
        assert_eq!(condition(&patch, "Promoted")["status"], "True");
        assert_eq!(condition(&patch, "NamespaceMetadataMerged")["status"], "True");
        assert!(patch.get("lastTransferredSnapshot").is_none());

        let down = StatusInputs {
            namespace_merge: Some(NamespaceMerge::SourceUnreachable("connection refused".into())),
            promoted_snapshot: PromotedSnapshot::Found {
                name: "shutdown-1".into(),
                completion: None,
            },
            ..inputs()
        };
        let patch = status_patch(&Step::Promote, &down, Documented).unwrap();
        let merge = condition(&patch, "NamespaceMetadataMerged");
        assert_eq!(
            (merge["status"].as_str(), merge["reason"].as_str()),
            (Some("False"), Some("SourceUnreachable"))
        );
        assert!(merge["message"].as_str().unwrap().contains("unreachable"));
        assert_eq!(patch["lastTransferredSnapshot"], json!({"name": "shutdown-1"}));
    }

    #[test]
    fn resync_records_that_destination_changes_were_discarded() {
        let patch = status_patch(&Step::Resync, &inputs(), Documented).unwrap();
        assert_eq!(patch["state"], "Establishing");
        assert_eq!(patch["destinationApplicationRef"], Value::Null);
        let discarded = condition(&patch, "DestinationChangesDiscarded");
        assert_eq!(discarded["status"], "True");
        assert!(
            discarded["message"]
                .as_str()
                .unwrap()
                .contains("deleted (stopped)")
        );
        // The next promotion turns it False again.
        let conditions: Vec<Condition> = serde_json::from_value(patch["conditions"].clone()).unwrap();
        let next = StatusInputs {
            conditions,
            ..inputs()
        };
        let patch = status_patch(&Step::Promote, &next, Documented).unwrap();
        assert_eq!(
            condition(&patch, "DestinationChangesDiscarded")["status"],
            "False"
        );
    }

    // ---------------------------------------------------------------------------------- the variant profile

    #[test]
    fn the_variant_waits_in_pending_while_something_is_missing() {
        use DesiredState::Established;
        assert_eq!(
            next_step(&observation(Established, ""), Variant),
            Step::Enter("Pending")
        );
        let missing = |state| Observation {
            missing: vec!["a".into()],
            ..observation(Established, state)
        };
        assert_eq!(
            next_step(&missing("Pending"), Variant),
            Step::Blocked(Blocker::Prerequisites("a".into()))
        );
        assert_eq!(
            next_step(&missing("Establishing"), Variant),
            Step::Enter("Pending"),
            "back to Pending when a prerequisite goes"
        );
        assert_eq!(
            next_step(&missing("Establishing"), Documented),
            Step::Blocked(Blocker::Prerequisites("a".into()))
        );
        assert_eq!(
            next_step(&observation(Established, "Pending"), Variant),
            Step::Enter("Establishing")
        );
        assert_eq!(
            next_step(&observation(Established, "Establishing"), Variant),
            Step::Establish
        );
    }

    #[test]
    fn the_variant_resyncs_without_a_transitional_state_and_not_without_the_source() {
        use DesiredState::Established;
        let down = Observation {
            missing: vec!["cannot reach source cluster \"source\"".into()],
            source_reachable: Err("refused".into()),
            ..observation(Established, "Promoted")
        };
        assert_eq!(
            next_step(&down, Variant),
            Step::Blocked(Blocker::Prerequisites(
                "cannot reach source cluster \"source\"".into()
            )),
            "nothing is discarded without the source"
        );
        assert_eq!(next_step(&down, Documented), Step::Resync);
        assert_eq!(
            next_step(&observation(Established, "Promoted"), Variant),
            Step::Resync
        );
        let patch = status_patch(&Step::Resync, &inputs(), Variant).unwrap();
        assert_eq!(
            patch["state"], "Established",
            "Promoted → Established in one step"
        );
        assert_eq!(patch["destinationApplicationRef"], Value::Null);
        assert_eq!(
            patch["lastTransfer"]["startTimestamp"],
            "2025-01-07T12:00:00.000000Z"
        );
        assert!(patch.get("lastTransferredSnapshot").is_none());
        assert_eq!(patch["conditions"], json!([]));
    }

    #[test]
    fn failures_use_the_profile_spelling_and_are_written_once() {
        use DesiredState::{Established, Promoted};
        for (profile, spelling) in [(Documented, "Failed"), (Variant, "Error")] {
            for desired in [Established, Promoted] {
                let failing = Observation {
                    failure: Some("SnapMirror relationship broken".into()),
                    ..observation(desired, "Established")
                };
                assert_eq!(
                    next_step(&failing, profile),
                    Step::Fail("SnapMirror relationship broken".into())
                );
            }
            let step = Step::Fail("SnapMirror relationship broken".into());
            let patch = status_patch(&step, &inputs(), profile).unwrap();
            assert_eq!(patch["state"], spelling, "{profile}");
            assert_eq!(patch["error"], "SnapMirror relationship broken");
            let conditions: Vec<Condition> = serde_json::from_value(patch["conditions"].clone()).unwrap();
            let again = StatusInputs {
                state: Some(spelling.into()),
                error: Some("SnapMirror relationship broken".into()),
                conditions,
                ..inputs()
            };
            assert_eq!(status_patch(&step, &again, profile), None, "{profile}");
            // Recovered: the relationship carries on from its failure state.
            assert_eq!(
                next_step(&observation(Established, spelling), profile),
                Step::Enter(profile.establish_entry_state())
            );
            assert_eq!(
                next_step(&observation(Promoted, spelling), profile),
                Step::Enter("Promoting")
            );
        }
    }

    #[test]
    fn the_variant_reports_progress_in_status_error_while_transitioning() {
        let patch = status_patch(&Step::Enter("Establishing"), &inputs(), Variant).unwrap();
        assert!(
            patch["error"].as_str().unwrap().contains("baseline transfer"),
            "{patch}"
        );
        let patch = status_patch(&Step::Enter("Promoting"), &inputs(), Variant).unwrap();
        assert!(patch["error"].is_string(), "{patch}");
        let patch = status_patch(&Step::Enter("Pending"), &inputs(), Variant).unwrap();
        assert_eq!(patch["error"], Value::Null);
        for profile in Profile::ALL {
            let patch = status_patch(&Step::Establish, &inputs(), profile).unwrap();
            assert_eq!(
                patch["error"],
                Value::Null,
                "the final state clears it ({profile})"
            );
        }
        let patch = status_patch(&Step::Enter("Establishing"), &inputs(), Documented).unwrap();
        assert_eq!(patch["error"], Value::Null);
    }

    #[test]
    fn the_variant_promotes_with_a_namespaced_reference_then_creates_the_application() {
        use DesiredState::Promoted;
        let renamed = StatusInputs {
            destination_application: "my-app-6e1f88ab".into(),
            promoted_snapshot: PromotedSnapshot::Found {
                name: "shutdown-1".into(),
                completion: None,
            },
            ..inputs()
        };
        let patch = status_patch(&Step::Promote, &renamed, Variant).unwrap();
        assert_eq!(patch["state"], "Promoted");
        assert_eq!(patch["destinationApplicationRef"], "ns-2/my-app-6e1f88ab");
        assert!(patch.get("lastTransferredSnapshot").is_none());
        assert_eq!(patch["conditions"], json!([]));
        let patch = status_patch(&Step::Promote, &renamed, Documented).unwrap();
        assert_eq!(patch["destinationApplicationRef"], "my-app-6e1f88ab");

        let missing_app = Observation {
            destination_application_exists: false,
            in_phase_for: Duration::from_millis(100),
            ..observation(Promoted, "Promoted")
        };
        assert_eq!(
            next_step(&missing_app, Variant),
            Step::Wait(Duration::from_millis(200)),
            "the Application follows promote_delay after Promoted"
        );
        let later = Observation {
            in_phase_for: DELAYS.promote,
            ..missing_app.clone()
        };
        assert_eq!(next_step(&later, Variant), Step::CreateApplication);
        assert_eq!(status_patch(&Step::CreateApplication, &inputs(), Variant), None);
        assert_eq!(
            next_step(&later, Documented),
            Step::Idle,
            "documented: created before Promoted, never again"
        );
        let there = Observation {
            destination_application_exists: true,
            ..later
        };
        assert_eq!(next_step(&there, Variant), Step::Idle);
    }

    #[test]
    fn the_variant_transfers_with_fractional_timestamps_and_no_snapshot_name() {
        let patch = status_patch(&Step::Transfer, &inputs(), Variant).unwrap();
        assert_eq!(
            patch["lastTransfer"],
            json!({"startTimestamp": "2025-01-07T12:00:00.000000Z", "completionTimestamp": "2025-01-07T12:00:00.000000Z"})
        );
        assert!(patch.get("lastTransferredSnapshot").is_none());
        let blocked = Step::Blocked(Blocker::Prerequisites("missing x".into()));
        let patch = status_patch(&blocked, &inputs(), Variant).unwrap();
        assert_eq!(patch["conditions"], json!([]));
        let again = StatusInputs {
            error: Some("missing x".into()),
            ..inputs()
        };
        assert_eq!(status_patch(&blocked, &again, Variant), None);
    }

    #[test]
    fn the_variant_keeps_a_finalizer_until_the_clean_up_after_a_deletion() {
        let delay = Duration::from_millis(300);
        let step = |profile, deleting, has, since| finalizer_step(profile, deleting, has, since, delay);
        assert_eq!(
            step(Variant, false, false, Duration::ZERO),
            Some(FinalizerStep::Add)
        );
        assert_eq!(step(Variant, false, true, Duration::ZERO), None);
        assert_eq!(
            step(Variant, true, true, Duration::from_millis(100)),
            Some(FinalizerStep::Wait(Duration::from_millis(200)))
        );
        assert_eq!(step(Variant, true, true, delay), Some(FinalizerStep::Remove));
        assert_eq!(step(Variant, true, false, delay), None, "already removed");
        assert_eq!(step(Documented, false, false, Duration::ZERO), None);
        assert_eq!(
            step(Documented, true, true, delay),
            Some(FinalizerStep::Remove),
            "a finalizer left by a variant run is still removed"
        );
    }
}
