//! The operation record kept in a relationship's lock (a Lease), and the rules of the lock itself.
//!
//! Operations that keep a record ([`Operation::keeps_record`]) write it when they start and the lock is deleted,
//! record and all, when they end. A record left by an interrupted run (or `--no-wait`) makes the same command
//! resume; it makes other commands refuse, unless the recorded operation has finished on the clusters (then it is
//! cleared) or the command is `delete` (which ends everything). An operation that cannot be finished is given up
//! with `--abandon`, which is itself recorded. So no state exists in which every command is refused.

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use tprotect_api::DISCARD_DESTINATION_CHANGES_ANNOTATION;

use crate::PlanError;
use crate::model::*;
use crate::plan::{goal_of, plan};

/// Annotation of the Lease carrying the JSON of the [`OperationRecord`].
pub const RECORD_ANNOTATION: &str = "tprotect.io/operation-record";
/// `spec.leaseDurationSeconds`: a holder that has not renewed for this long has lost the lock.
pub const LEASE_DURATION_SECONDS: i32 = 30;

/// Name of the Lease of relationship `relationship`.
pub fn lease_name(relationship: &str) -> String {
    format!("tprotect-{relationship}")
}

/// The record an operation that keeps one starts with: the AMR as observed now, on the cluster holding it. `id`
/// names this run (its ShutdownSnapshot), `started` is when it began (RFC 3339): both come from the caller, so
/// this stays a function of its arguments. `None` for operations that keep no record, or with no AMR to start
/// from.
pub fn begin_record(
    observed: &Observed,
    operation: Operation,
    id: &str,
    started: &str,
) -> Option<OperationRecord> {
    if !operation.keeps_record() {
        return None;
    }
    let (key, amr) = observed.amr_location().ok().flatten()?;
    let annotations = amr
        .annotations
        .iter()
        .filter(|(k, _)| {
            k.starts_with("tprotect.io/") && k.as_str() != DISCARD_DESTINATION_CHANGES_ANNOTATION
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut spec = amr.spec.clone();
    // Only what the relationship is; not what a previous operation asked of it.
    spec.promoted_snapshot = None;
    Some(OperationRecord {
        operation,
        id: id.to_string(),
        initial_destination: observed.state(key)?.cluster_id.clone(),
        amr_namespace: amr.namespace.clone(),
        spec,
        annotations,
        started: started.to_string(),
        destination_apps: Default::default(),
    })
}

/// What a record found in the lock means for a command with `goal`.
#[derive(Debug, Clone, PartialEq)]
pub enum Standing {
    /// No record: start afresh.
    None,
    /// The same operation, interrupted or started with `--no-wait`: resume it.
    Resume,
    /// Another operation that has finished on the clusters (nobody ran it again to close it): clear the record
    /// and go on.
    Finished,
    /// `delete` while another operation is in progress: allowed, after a confirmation.
    OverriddenByDelete,
    /// Another operation is in progress: refused, naming how to finish it or give it up.
    Blocks(PlanError),
}

/// How the record in `observed` (from the lock) stands for a command with `goal`.
pub fn standing(observed: &Observed, goal: &Goal) -> Standing {
    let Some(record) = &observed.record else {
        return Standing::None;
    };
    if record.operation == goal.operation() {
        return Standing::Resume;
    }
    if let Some(recorded) = goal_of(record.operation)
        && matches!(plan(observed, &recorded), Ok(Step::Done(_)))
    {
        return Standing::Finished;
    }
    if goal.operation() == Operation::Delete {
        return Standing::OverriddenByDelete;
    }
    Standing::Blocks(PlanError::OtherOperationInProgress {
        name: observed.relationship.clone(),
        in_progress: record.operation.command().to_string(),
        started: record.started.clone(),
    })
}

/// A relationship's Lease as read.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseInfo {
    pub cluster: ClusterKey,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    /// None or empty: nobody holds it (a record kept for a re-run).
    pub holder: Option<String>,
    pub acquire_time: Option<Timestamp>,
    pub renew_time: Option<Timestamp>,
    pub duration_seconds: i32,
    pub record: Option<OperationRecord>,
}

impl LeaseInfo {
    /// Reads a Lease; an unreadable record is an error (better to stop than to guess where an operation was).
    pub fn from_lease(cluster: ClusterKey, lease: &Lease) -> Result<Self, String> {
        let spec = lease.spec.clone().unwrap_or_default();
        let record = match lease
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(RECORD_ANNOTATION))
        {
            Some(text) => Some(serde_json::from_str(text).map_err(|e| {
                format!(
                    "annotation {RECORD_ANNOTATION} is not a valid record ({e}); remove the annotation (kubectl annotate lease {} {RECORD_ANNOTATION}-) to give the operation up",
                    lease.metadata.name.clone().unwrap_or_default()
                )
            })?),
            None => None,
        };
        Ok(Self {
            cluster,
            namespace: lease.metadata.namespace.clone().unwrap_or_default(),
            name: lease.metadata.name.clone().unwrap_or_default(),
            uid: lease.metadata.uid.clone().unwrap_or_default(),
            resource_version: lease.metadata.resource_version.clone().unwrap_or_default(),
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            acquire_time: spec.acquire_time.map(|t| t.0),
            renew_time: spec.renew_time.map(|t| t.0),
            duration_seconds: spec.lease_duration_seconds.unwrap_or(LEASE_DURATION_SECONDS),
            record,
        })
    }

    /// When the holder's claim runs out.
    pub fn expires(&self) -> Option<Timestamp> {
        let last = self.renew_time.or(self.acquire_time)?;
        last.checked_add(jiff::SignedDuration::from_secs(i64::from(self.duration_seconds)))
            .ok()
    }

    /// Whether this Lease can be taken now by `me` (a holder identity) on host `host`: free, expired, ours, or
    /// held by a process of this host that is gone (`pid_alive` tells).
    pub fn takeable(&self, now: Timestamp, me: &str, host: &str, pid_alive: impl Fn(u32) -> bool) -> bool {
        let Some(holder) = &self.holder else {
            return true;
        };
        if holder == me || self.expires().is_none_or(|e| e <= now) {
            return true;
        }
        matches!(parse_holder(holder), Some((h, pid)) if h == host && !pid_alive(pid))
    }
}

/// A holder identity: `<user>@<hostname>/pid <pid>`.
pub fn holder_identity(user: &str, host: &str, pid: u32) -> String {
    format!("{user}@{host}/pid {pid}")
}

/// The host and pid of a holder identity written by [`holder_identity`].
pub fn parse_holder(holder: &str) -> Option<(&str, u32)> {
    let (who, pid) = holder.rsplit_once("/pid ")?;
    let host = who.rsplit_once('@').map(|(_, h)| h)?;
    Some((host, pid.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(holder: Option<&str>, renewed_secs_ago: i64) -> LeaseInfo {
        let renew = Timestamp::now() - jiff::SignedDuration::from_secs(renewed_secs_ago);
        LeaseInfo {
            cluster: ClusterKey::Context,
            namespace: "app1".into(),
            name: "tprotect-rel1".into(),
            uid: "u".into(),
            resource_version: "1".into(),
            holder: holder.map(str::to_string),
            acquire_time: Some(renew),
            renew_time: Some(renew),
            duration_seconds: LEASE_DURATION_SECONDS,
            record: None,
        }
    }

    const ALIVE: fn(u32) -> bool = |_| true;
    const DEAD: fn(u32) -> bool = |_| false;

    #[test]
    fn holder_identities_parse_back() {
        let me = holder_identity("alice", "host-1", 42);
        assert_eq!(parse_holder(&me), Some(("host-1", 42)));
        assert_eq!(parse_holder("garbage"), None);
    }

    #[test]
    fn a_live_unexpired_holder_keeps_the_lock() {
        let now = Timestamp::now();
        let lease = info(Some("alice@elsewhere/pid 42"), 5);
        assert!(!lease.takeable(now, "bob@here/pid 7", "here", DEAD));
    }

    #[test]
    fn an_expired_lock_a_free_lock_and_our_own_lock_are_takeable() {
        let now = Timestamp::now();
        assert!(info(Some("alice@elsewhere/pid 42"), 31).takeable(now, "bob@here/pid 7", "here", ALIVE));
        assert!(info(None, 1).takeable(now, "bob@here/pid 7", "here", ALIVE));
        assert!(info(Some("bob@here/pid 7"), 1).takeable(now, "bob@here/pid 7", "here", ALIVE));
    }

    #[test]
    fn a_dead_process_of_this_host_loses_the_lock_at_once() {
        let now = Timestamp::now();
        assert!(info(Some("alice@here/pid 999"), 1).takeable(now, "bob@x/pid 7", "here", DEAD));
        assert!(!info(Some("alice@here/pid 999"), 1).takeable(now, "bob@x/pid 7", "here", ALIVE));
        // A dead pid on ANOTHER host proves nothing.
        assert!(!info(Some("alice@other-host/pid 999"), 1).takeable(now, "bob@x/pid 7", "here", DEAD));
    }
}
