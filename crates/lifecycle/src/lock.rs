//! The lock of a relationship: a `coordination.k8s.io/v1` Lease `tprotect-<NAME>`, labelled
//! `tprotect.io/relationship=<NAME>`, in the AMR's namespace on the cluster holding the AMR when an operation
//! starts. It stops two operations on one relationship at once, and carries the [`OperationRecord`] of the
//! operations that move the AMR between clusters (annotation `tprotect.io/operation-record`), so a re-run of an
//! interrupted one resumes.
//!
//! Acquisition is atomic: create, and on 409 read and decide. A Lease held by a live holder and not expired is
//! refused ([`RunError::Locked`]); an expired one is taken over with an update carrying its resourceVersion
//! (409: read again and decide again); one held by a process of this host that no longer runs is taken over at
//! once (a killed run being resumed). While held, a background task renews it every 10 s. At the end of a
//! successful operation it is deleted (precondition: its uid and resourceVersion), so a record never outlives
//! its operation; after a failure or a timeout it is kept with its record but without a holder, so a re-run from
//! anywhere resumes at once.

// RunError is large (it names cluster, namespace and object); it ends a run, so its size costs nothing.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::core::ObjectMeta;
use serde_json::json;
use tokio::sync::Mutex;
use tprotect_api::RELATIONSHIP_LABEL;

use crate::clusters::Clusters;
use crate::error::{RunError, api_status, is_connection_error};
use crate::model::{ClusterKey, OperationRecord};

pub use tprotect_lifecycle_rules::record::{
    LEASE_DURATION_SECONDS, LeaseInfo, RECORD_ANNOTATION, lease_name,
};

/// How often the holder renews.
pub const RENEW_INTERVAL: Duration = Duration::from_secs(10);

/// This process, as a Lease holder: `<user>@<hostname>/pid <pid>`.
pub fn holder_identity() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    tprotect_lifecycle_rules::record::holder_identity(&user, &host_name(), std::process::id())
}

fn host_name() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Whether process `pid` of this host is alive. Only Linux can tell (`/proc`); elsewhere a holder is assumed
/// alive and its lock expires normally.
fn pid_alive(pid: u32) -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Every Lease labelled with `relationship` on one cluster (all namespaces; where that is not allowed, the one
/// Lease of that name in `namespace`).
pub async fn find_leases(
    client: &kube::Client,
    context: &str,
    relationship: &str,
    namespace: Option<&str>,
) -> Result<Vec<Lease>, RunError> {
    let api: Api<Lease> = Api::all(client.clone());
    let params = ListParams::default().labels(&format!("{RELATIONSHIP_LABEL}={relationship}"));
    match api.list(&params).await {
        Ok(list) => Ok(list.items),
        Err(e) if api_status(&e) == Some(403) && namespace.is_some() => {
            let namespace = namespace.unwrap_or_default();
            let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
            let name = lease_name(relationship);
            match api.get_opt(&name).await {
                Ok(found) => Ok(found.into_iter().collect()),
                Err(e) => Err(RunError::kube(context, "get", "leases", namespace, &name, e)),
            }
        }
        Err(e) => Err(RunError::kube(context, "list", "leases", "", "", e)),
    }
}

/// Where to create the Lease when none exists yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockPlace {
    pub cluster: ClusterKey,
    pub namespace: String,
}

struct Held {
    resource_version: String,
    record: Option<OperationRecord>,
    /// Why the lock was lost, once it is.
    lost: Option<String>,
    /// Last successful renewal.
    renewed: std::time::Instant,
}

struct Shared {
    api: Api<Lease>,
    context: String,
    relationship: String,
    namespace: String,
    name: String,
    uid: String,
    holder: String,
    held: Mutex<Held>,
}

/// A held lock. Renewed in the background until released or dropped (dropping stops the renewal and leaves
/// the Lease to expire, as a killed process would).
pub struct LockGuard {
    shared: Arc<Shared>,
    renewer: tokio::task::JoinHandle<()>,
    /// The record was created by this run (not resumed).
    pub created_record: bool,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field(
                "lease",
                &format!("{}/{}", self.shared.namespace, self.shared.name),
            )
            .field("cluster", &self.shared.context)
            .field("holder", &self.shared.holder)
            .finish()
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

fn micro_now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// Takes the lock of `relationship`: the existing Lease `existing` (found by [`crate::observe::locate`]) or a new
/// one at `place`. `new_record` is written when the Lease has no record yet (an operation that needs one
/// starting); an existing record is kept (resumed), whatever operation it is for — the planner refuses a
/// different one.
pub async fn acquire(
    clusters: &Clusters,
    relationship: &str,
    existing: Option<&LeaseInfo>,
    place: &LockPlace,
    new_record: Option<OperationRecord>,
) -> Result<LockGuard, RunError> {
    let (cluster, namespace) = match existing {
        Some(lease) => (lease.cluster, lease.namespace.clone()),
        None => (place.cluster, place.namespace.clone()),
    };
    let handle = clusters.get(cluster);
    let context = handle.context.clone();
    let client = handle.client().map_err(|e| RunError::LostLock {
        relationship: relationship.to_string(),
        cluster: context.clone(),
        namespace: namespace.clone(),
        lease: lease_name(relationship),
        reason: format!("its cluster cannot be used: {e}"),
    })?;
    let api: Api<Lease> = Api::namespaced(client.clone(), &namespace);
    let name = lease_name(relationship);
    let me = holder_identity();
    let host = host_name();
    let kube_err =
        |verb: &str, e: kube::Error| RunError::kube(&context, verb, "leases", &namespace, &name, e);

    let mut try_create = existing.is_none();
    for _ in 0..8 {
        if try_create {
            let lease = new_lease(relationship, &namespace, &me, new_record.as_ref())?;
            match api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    return Ok(start(
                        api,
                        &context,
                        relationship,
                        &created,
                        &me,
                        new_record.clone(),
                        new_record.is_some(),
                    ));
                }
                Err(e) if api_status(&e) == Some(409) => {}
                Err(e) => return Err(kube_err("create", e)),
            }
        }
        let Some(current) = api.get_opt(&name).await.map_err(|e| kube_err("get", e))? else {
            try_create = true;
            continue;
        };
        let info = LeaseInfo::from_lease(cluster, &current)
            .map_err(|e| RunError::Internal(format!("Lease {namespace}/{name} on {context}: {e}")))?;
        let now = Timestamp::now();
        if !info.takeable(now, &me, &host, pid_alive) {
            return Err(locked(relationship, &context, &info));
        }
        // Take over: the update carries the resourceVersion, so of two racing takeovers one gets 409.
        let record = info.record.clone().or_else(|| new_record.clone());
        let created_record = info.record.is_none() && record.is_some();
        let mut lease = current.clone();
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = Some(me.clone());
        spec.acquire_time = Some(micro_now());
        spec.renew_time = Some(micro_now());
        spec.lease_duration_seconds = Some(LEASE_DURATION_SECONDS);
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        if let Some(record) = &record {
            lease
                .metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(RECORD_ANNOTATION.to_string(), record_json(record)?);
        }
        match api.replace(&name, &PostParams::default(), &lease).await {
            Ok(updated) => {
                return Ok(start(
                    api,
                    &context,
                    relationship,
                    &updated,
                    &me,
                    record,
                    created_record,
                ));
            }
            Err(e) if matches!(api_status(&e), Some(409) | Some(404)) => {
                try_create = api_status(&e) == Some(404);
                continue;
            }
            Err(e) => return Err(kube_err("update", e)),
        }
    }
    Err(RunError::Internal(format!(
        "could not take the lock Lease {namespace}/{name} on {context}: it kept changing"
    )))
}

fn locked(relationship: &str, context: &str, info: &LeaseInfo) -> RunError {
    let fmt = |t: Option<Timestamp>| {
        t.map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|| "an unknown time".into())
    };
    RunError::Locked {
        relationship: relationship.to_string(),
        holder: info.holder.clone().unwrap_or_default(),
        since: fmt(info.acquire_time),
        by: info
            .record
            .as_ref()
            .map(|r| format!(", by a {}", r.operation.command()))
            .unwrap_or_default(),
        cluster: context.to_string(),
        namespace: info.namespace.clone(),
        lease: info.name.clone(),
        expires: fmt(info.expires()),
    }
}

fn record_json(record: &OperationRecord) -> Result<String, RunError> {
    serde_json::to_string(record).map_err(|e| RunError::Internal(format!("serializing the record: {e}")))
}

fn new_lease(
    relationship: &str,
    namespace: &str,
    holder: &str,
    record: Option<&OperationRecord>,
) -> Result<Lease, RunError> {
    let annotations = match record {
        Some(record) => Some([(RECORD_ANNOTATION.to_string(), record_json(record)?)].into()),
        None => None,
    };
    Ok(Lease {
        metadata: ObjectMeta {
            name: Some(lease_name(relationship)),
            namespace: Some(namespace.to_string()),
            labels: Some([(RELATIONSHIP_LABEL.to_string(), relationship.to_string())].into()),
            annotations,
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.to_string()),
            acquire_time: Some(micro_now()),
            renew_time: Some(micro_now()),
            lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
            lease_transitions: Some(0),
            ..Default::default()
        }),
    })
}

fn start(
    api: Api<Lease>,
    context: &str,
    relationship: &str,
    lease: &Lease,
    holder: &str,
    record: Option<OperationRecord>,
    created_record: bool,
) -> LockGuard {
    let shared = Arc::new(Shared {
        api,
        context: context.to_string(),
        relationship: relationship.to_string(),
        namespace: lease.metadata.namespace.clone().unwrap_or_default(),
        name: lease.metadata.name.clone().unwrap_or_default(),
        uid: lease.metadata.uid.clone().unwrap_or_default(),
        holder: holder.to_string(),
        held: Mutex::new(Held {
            resource_version: lease.metadata.resource_version.clone().unwrap_or_default(),
            record,
            lost: None,
            renewed: std::time::Instant::now(),
        }),
    });
    let renewer = tokio::spawn(renew_loop(Arc::downgrade(&shared)));
    LockGuard {
        shared,
        renewer,
        created_record,
    }
}

async fn renew_loop(shared: std::sync::Weak<Shared>) {
    loop {
        tokio::time::sleep(RENEW_INTERVAL).await;
        let Some(shared) = shared.upgrade() else { return };
        if shared.renew().await.is_err() {
            return;
        }
    }
}

impl Shared {
    fn lost(&self, reason: String) -> RunError {
        RunError::LostLock {
            relationship: self.relationship.clone(),
            cluster: self.context.clone(),
            namespace: self.namespace.clone(),
            lease: self.name.clone(),
            reason,
        }
    }

    /// Patches the Lease under the held resourceVersion (optimistic concurrency). On 409: re-read; if we
    /// still hold it, patch again on the new version; if not, the lock is lost.
    async fn patch(&self, held: &mut Held, body: serde_json::Value) -> Result<(), RunError> {
        if let Some(reason) = &held.lost {
            return Err(self.lost(reason.clone()));
        }
        for _ in 0..5 {
            let mut body = body.clone();
            body["metadata"]["resourceVersion"] = json!(held.resource_version);
            match self
                .api
                .patch(&self.name, &PatchParams::default(), &Patch::Merge(&body))
                .await
            {
                Ok(lease) => {
                    held.resource_version = lease.metadata.resource_version.unwrap_or_default();
                    held.renewed = std::time::Instant::now();
                    return Ok(());
                }
                Err(e) if api_status(&e) == Some(409) => match self.api.get_opt(&self.name).await {
                    Ok(Some(lease)) if self.still_ours(&lease) => {
                        held.resource_version = lease.metadata.resource_version.unwrap_or_default();
                    }
                    Ok(Some(lease)) => {
                        let holder = lease.spec.and_then(|s| s.holder_identity).unwrap_or_default();
                        let reason = format!("it is now held by {holder:?}");
                        held.lost = Some(reason.clone());
                        return Err(self.lost(reason));
                    }
                    Ok(None) => {
                        held.lost = Some("the Lease was deleted".into());
                        return Err(self.lost("the Lease was deleted".into()));
                    }
                    Err(e) => return Err(self.transient(held, e)),
                },
                Err(e) if api_status(&e) == Some(404) => {
                    held.lost = Some("the Lease was deleted".into());
                    return Err(self.lost("the Lease was deleted".into()));
                }
                Err(e) => return Err(self.transient(held, e)),
            }
        }
        Err(self.lost("the Lease kept changing".into()))
    }

    /// A failed renewal that may succeed later; fatal once the Lease would have expired.
    fn transient(&self, held: &mut Held, e: kube::Error) -> RunError {
        let expired = held.renewed.elapsed() >= Duration::from_secs(LEASE_DURATION_SECONDS as u64);
        if expired || !is_connection_error(&e) {
            let reason = format!("renewing it failed: {e}");
            held.lost = Some(reason.clone());
            return self.lost(reason);
        }
        RunError::kube(&self.context, "patch", "leases", &self.namespace, &self.name, e)
    }

    fn still_ours(&self, lease: &Lease) -> bool {
        lease.metadata.uid.as_deref() == Some(self.uid.as_str())
            && lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(self.holder.as_str())
    }

    /// Renews once; an error that means the lock is lost ends the renewal loop.
    async fn renew(&self) -> Result<(), ()> {
        let mut held = self.held.lock().await;
        if held.lost.is_some() {
            return Err(());
        }
        let body = json!({"spec": {"renewTime": micro_now()}});
        match self.patch(&mut held, body).await {
            Ok(()) => Ok(()),
            Err(RunError::LostLock { reason, .. }) => {
                tracing::warn!(lease = %self.name, cluster = %self.context, %reason, "lost the lock");
                Err(())
            }
            Err(e) => {
                tracing::warn!(lease = %self.name, cluster = %self.context, error = %e, "renewing the lock failed; retrying");
                Ok(())
            }
        }
    }
}

impl LockGuard {
    /// The operation record the lock carries.
    pub async fn record(&self) -> Option<OperationRecord> {
        self.shared.held.lock().await.record.clone()
    }

    /// Replaces the record (e.g. noting a destination application).
    pub async fn set_record(&self, record: OperationRecord) -> Result<(), RunError> {
        let mut held = self.shared.held.lock().await;
        let body = json!({"metadata": {"annotations": {RECORD_ANNOTATION: record_json(&record)?}}});
        self.shared.patch(&mut held, body).await?;
        held.record = Some(record);
        Ok(())
    }

    /// Removes the record (a finished operation's, or one given up with `--abandon`).
    pub async fn clear_record(&self) -> Result<(), RunError> {
        let mut held = self.shared.held.lock().await;
        if held.record.is_none() {
            return Ok(());
        }
        let body = json!({"metadata": {"annotations": {RECORD_ANNOTATION: null}}});
        self.shared.patch(&mut held, body).await?;
        held.record = None;
        Ok(())
    }

    /// Fails when the lock was lost (taken over, deleted, or not renewed in time).
    pub async fn check(&self) -> Result<(), RunError> {
        let held = self.shared.held.lock().await;
        if let Some(reason) = &held.lost {
            return Err(self.shared.lost(reason.clone()));
        }
        if held.renewed.elapsed() >= Duration::from_secs(LEASE_DURATION_SECONDS as u64) {
            return Err(self.shared.lost("it could not be renewed in time".into()));
        }
        Ok(())
    }

    /// Where the Lease is, for messages: (context, namespace, name).
    pub fn location(&self) -> (&str, &str, &str) {
        (&self.shared.context, &self.shared.namespace, &self.shared.name)
    }

    /// Releases the lock at the end of a successful operation: deletes the Lease (preconditions: its uid and
    /// the resourceVersion we last wrote), record and all.
    pub async fn release(self) -> Result<(), RunError> {
        // Holding the state first waits out a renewal in flight (it holds it across its request); only then
        // stop the renewer, so no renewal lands after the resourceVersion we delete under.
        let mut held = self.shared.held.lock().await;
        self.renewer.abort();
        if let Some(reason) = &held.lost {
            return Err(self.shared.lost(reason.clone()));
        }
        for _ in 0..3 {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some(self.shared.uid.clone()),
                    resource_version: Some(held.resource_version.clone()),
                }),
                ..Default::default()
            };
            match self.shared.api.delete(&self.shared.name, &params).await {
                Ok(_) => return Ok(()),
                Err(e) if api_status(&e) == Some(404) => return Ok(()),
                // Changed since we last wrote it: delete it only if it is still ours.
                Err(e) if api_status(&e) == Some(409) => {
                    match self.shared.api.get_opt(&self.shared.name).await {
                        Ok(Some(lease)) if self.shared.still_ours(&lease) => {
                            held.resource_version = lease.metadata.resource_version.unwrap_or_default();
                        }
                        Ok(None) => return Ok(()),
                        Ok(Some(_)) => {
                            return Err(self
                                .shared
                                .lost("another run took it over before it was released".into()));
                        }
                        Err(e) => return Err(self.kube_error("get", e)),
                    }
                }
                Err(e) => return Err(self.kube_error("delete", e)),
            }
        }
        Err(self
            .shared
            .lost("the Lease kept changing while being released".into()))
    }

    fn kube_error(&self, verb: &str, e: kube::Error) -> RunError {
        RunError::kube(
            &self.shared.context,
            verb,
            "leases",
            &self.shared.namespace,
            &self.shared.name,
            e,
        )
    }

    /// Lets go of the lock but keeps the Lease and its record, for a re-run to resume at once (from any host).
    /// Without a record there is nothing to keep, and the Lease is deleted.
    pub async fn release_keep_record(self) -> Result<(), RunError> {
        let mut held = self.shared.held.lock().await;
        if held.record.is_none() {
            drop(held);
            return self.release().await;
        }
        self.renewer.abort();
        let body = json!({"spec": {"holderIdentity": null, "renewTime": null, "acquireTime": null}});
        self.shared.patch(&mut held, body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_identity_names_this_host_and_pid_and_this_process_is_alive() {
        let me = holder_identity();
        let (host, pid) = tprotect_lifecycle_rules::record::parse_holder(&me).expect(&me);
        assert_eq!(host, host_name());
        assert_eq!(pid, std::process::id());
        assert!(pid_alive(pid));
        assert!(!pid_alive(u32::MAX - 1), "no such process");
    }
}
