//! Fault injection: a handle tests hold and change while the stand-in runs. Every change makes the stand-in
//! reconcile everything at once, so a released stall or an injected error takes effect without waiting for a watch
//! event.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// The kinds the stand-in reconciles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    AppVault,
    Snapshot,
    ShutdownSnapshot,
    Schedule,
    AppMirrorRelationship,
}

impl Kind {
    /// The kind's name as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::AppVault => "AppVault",
            Kind::Snapshot => "Snapshot",
            Kind::ShutdownSnapshot => "ShutdownSnapshot",
            Kind::Schedule => "Schedule",
            Kind::AppMirrorRelationship => "AppMirrorRelationship",
        }
    }
}

/// The transitions a test can stall (make never complete).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    /// AppVault: no state → Available / Error.
    AppVaultCheck,
    /// Snapshot or ShutdownSnapshot: Running → Completed / Failed.
    SnapshotCompletion,
    /// AMR: Establishing → Established.
    Establish,
    /// AMR: Promoting → Promoted.
    Promote,
    /// AMR: Promoted → Establishing (resync).
    Resync,
    /// AMR: a transfer at a recurrence while Established.
    Transfer,
}

/// An object named by kind, namespace and name, on whichever cluster it lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl Target {
    pub fn new(kind: Kind, namespace: &str, name: &str) -> Self {
        Self {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// `(transition, None)` stalls the transition for every object; `(transition, Some(name))` for objects of
    /// that name only.
    stalled: HashSet<(Transition, Option<String>)>,
    errors: HashMap<Target, String>,
    conflicts: HashSet<Target>,
    /// AMRs reported failed, by name (None: every AMR), with the error.
    failures: HashMap<Option<String>, String>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    conflicts_handled: AtomicU64,
    errors_injected: AtomicU64,
}

/// The faults the stand-in plays, shared between the stand-in and whoever drives it. Cloning shares.
#[derive(Debug, Clone)]
pub struct Faults {
    inner: Arc<Inner>,
}

impl Default for Faults {
    fn default() -> Self {
        Self::new()
    }
}

impl Faults {
    /// No faults.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::default(),
                changed: watch::channel(0).0,
                conflicts_handled: AtomicU64::new(0),
                errors_injected: AtomicU64::new(0),
            }),
        }
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.inner.state.lock().unwrap_or_else(|e| e.into_inner()));
        self.inner.changed.send_modify(|generation| *generation += 1);
    }

    fn read<T>(&self, read: impl FnOnce(&mut State) -> T) -> T {
        read(&mut self.inner.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Makes `transition` never complete, for objects named `name` or (None) for every object, until
    /// [`Self::release`].
    pub fn stall(&self, transition: Transition, name: Option<&str>) {
        self.update(|s| {
            s.stalled.insert((transition, name.map(str::to_string)));
        });
    }

    /// Undoes [`Self::stall`] with the same arguments.
    pub fn release(&self, transition: Transition, name: Option<&str>) {
        self.update(|s| {
            s.stalled.remove(&(transition, name.map(str::to_string)));
        });
    }

    /// Whether `transition` is stalled for the object named `name`.
    pub fn is_stalled(&self, transition: Transition, name: &str) -> bool {
        self.read(|s| {
            s.stalled.contains(&(transition, None))
                || s.stalled.contains(&(transition, Some(name.to_string())))
        })
    }

    /// AMRs named `name` (None: every AMR) report a failure until [`Self::recover_relationship`]: the profile's
    /// failure state (`Failed`, or `Error` under the variant) with `status.error: message`. Then they carry on
    /// from where they failed (`Establishing` or `Promoting` again, as their desired state says).
    pub fn fail_relationship(&self, name: Option<&str>, message: &str) {
        self.update(|s| {
            s.failures.insert(name.map(str::to_string), message.to_string());
        });
    }

    /// Undoes [`Self::fail_relationship`] with the same name.
    pub fn recover_relationship(&self, name: Option<&str>) {
        self.update(|s| {
            s.failures.remove(&name.map(str::to_string));
        });
    }

    /// The failure injected for the AMR named `name`, if any.
    pub fn relationship_failure(&self, name: &str) -> Option<String> {
        self.read(|s| {
            s.failures
                .get(&Some(name.to_string()))
                .or_else(|| s.failures.get(&None))
                .cloned()
        })
    }

    /// At its next reconcile the object gets `status.error: message` (nothing else changes); at the reconcile
    /// after that the error is cleared again (restored to what it was), and the object carries on.
    pub fn inject_transient_error(&self, kind: Kind, namespace: &str, name: &str, message: &str) {
        self.update(|s| {
            s.errors
                .insert(Target::new(kind, namespace, name), message.to_string());
        });
    }

    pub(crate) fn take_transient_error(&self, target: &Target) -> Option<String> {
        let message = self.read(|s| s.errors.remove(target));
        if message.is_some() {
            self.inner.errors_injected.fetch_add(1, Ordering::Relaxed);
        }
        message
    }

    /// The next status write for the object is sent with a stale `resourceVersion` (a 409 Conflict from the API
    /// server), which the stand-in must handle by reading the object again.
    pub fn conflict_once(&self, kind: Kind, namespace: &str, name: &str) {
        self.update(|s| {
            s.conflicts.insert(Target::new(kind, namespace, name));
        });
    }

    pub(crate) fn take_conflict(&self, target: &Target) -> bool {
        self.read(|s| s.conflicts.remove(target))
    }

    /// 409 Conflicts the stand-in met and recovered from by reading again (injected or real).
    pub fn conflicts_handled(&self) -> u64 {
        self.inner.conflicts_handled.load(Ordering::Relaxed)
    }

    pub(crate) fn record_conflict(&self) {
        self.inner.conflicts_handled.fetch_add(1, Ordering::Relaxed);
    }

    /// Transient errors written so far.
    pub fn transient_errors_written(&self) -> u64 {
        self.inner.errors_injected.load(Ordering::Relaxed)
    }

    /// Ticks whenever the faults change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stalls_apply_to_one_name_or_all() {
        let faults = Faults::new();
        faults.stall(Transition::Promote, Some("rel-a"));
        assert!(faults.is_stalled(Transition::Promote, "rel-a"));
        assert!(!faults.is_stalled(Transition::Promote, "rel-b"));
        assert!(!faults.is_stalled(Transition::Establish, "rel-a"));
        faults.stall(Transition::Promote, None);
        assert!(faults.is_stalled(Transition::Promote, "rel-b"));
        faults.release(Transition::Promote, None);
        faults.release(Transition::Promote, Some("rel-a"));
        assert!(!faults.is_stalled(Transition::Promote, "rel-a"));
    }

    #[test]
    fn injected_errors_and_conflicts_are_taken_once() {
        let faults = Faults::new();
        let target = Target::new(Kind::AppMirrorRelationship, "ns", "rel");
        faults.inject_transient_error(Kind::AppMirrorRelationship, "ns", "rel", "boom");
        faults.conflict_once(Kind::AppMirrorRelationship, "ns", "rel");
        let other = Target::new(Kind::Snapshot, "ns", "rel");
        assert_eq!(faults.take_transient_error(&other), None, "kind matters");
        assert_eq!(faults.take_transient_error(&target).as_deref(), Some("boom"));
        assert_eq!(faults.take_transient_error(&target), None);
        assert_eq!(faults.transient_errors_written(), 1);
        assert!(faults.take_conflict(&target));
        assert!(!faults.take_conflict(&target));
    }

    #[test]
    fn relationship_failures_apply_to_one_name_or_all_until_recovered() {
        let faults = Faults::new();
        faults.fail_relationship(Some("rel-a"), "SnapMirror broken");
        assert_eq!(
            faults.relationship_failure("rel-a").as_deref(),
            Some("SnapMirror broken")
        );
        assert_eq!(faults.relationship_failure("rel-b"), None);
        faults.fail_relationship(None, "everything");
        assert_eq!(
            faults.relationship_failure("rel-b").as_deref(),
            Some("everything")
        );
        assert_eq!(
            faults.relationship_failure("rel-a").as_deref(),
            Some("SnapMirror broken")
        );
        faults.recover_relationship(Some("rel-a"));
        faults.recover_relationship(None);
        assert_eq!(faults.relationship_failure("rel-a"), None);
    }

    #[test]
    fn every_change_ticks_subscribers() {
        let faults = Faults::new();
        let mut changes = faults.subscribe();
        assert!(!changes.has_changed().unwrap());
        faults.stall(Transition::Establish, None);
        assert!(changes.has_changed().unwrap());
        changes.borrow_and_update();
        faults.clone().release(Transition::Establish, None);
        assert!(changes.has_changed().unwrap(), "clones share");
    }
}
