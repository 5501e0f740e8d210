//! No dead ends: for every operation, under every reading of what NetApp leaves undocumented, from every state
//! the operation passes through, each precondition is taken away in turn (a cluster goes down; an Application,
//! AppVault, Secret, StorageClass or Namespace is deleted; `status.destinationApplicationRef` is garbled). Then:
//! - an operation that performs a step that cannot be undone ([`Action::irreversible`]) reaches its end: every
//!   precondition of the rest was resolved before that step;
//! - an operation that stops instead leaves a state from which, once the precondition is back, the same command
//!   reaches its end, and from which `delete` always ends the relationship.

mod fixtures;

use fixtures::*;
use tprotect_lifecycle_rules::plan::plan;
use tprotect_lifecycle_rules::simulate::{Controller, apply, controller_as};
use tprotect_lifecycle_rules::*;

/// One precondition taken away.
#[derive(Debug, Clone, PartialEq)]
enum Failure {
    Unreachable(ClusterKey),
    Application(ClusterKey, String, String),
    Vault(ClusterKey, String),
    Secret(ClusterKey, String),
    StorageClass(ClusterKey, String),
    Namespace(ClusterKey, String),
    /// `status.destinationApplicationRef` garbled (a form no reader accepts).
    GarbledReference(ClusterKey),
}

impl Failure {
    /// The cluster it happens on.
    fn cluster(&self) -> ClusterKey {
        match self {
            Failure::Unreachable(key)
            | Failure::Application(key, ..)
            | Failure::Vault(key, _)
            | Failure::Secret(key, _)
            | Failure::StorageClass(key, _)
            | Failure::Namespace(key, _)
            | Failure::GarbledReference(key) => *key,
        }
    }
}

/// Every precondition that `observed` has and that can be taken away.
fn failures(observed: &Observed) -> Vec<Failure> {
    let mut all = Vec::new();
    for key in ClusterKey::BOTH {
        let Some(state) = observed.state(key) else {
            continue;
        };
        all.push(Failure::Unreachable(key));
        for app in &state.applications {
            all.push(Failure::Application(key, app.namespace.clone(), app.name.clone()));
        }
        all.extend(state.vaults.keys().map(|v| Failure::Vault(key, v.clone())));
        all.extend(state.secrets.keys().map(|s| Failure::Secret(key, s.clone())));
        all.extend(
            state
                .storage_classes
                .iter()
                .map(|c| Failure::StorageClass(key, c.clone())),
        );
        all.extend(
            state
                .namespaces
                .keys()
                .map(|n| Failure::Namespace(key, n.clone())),
        );
        if state.amr.as_ref().and_then(|a| a.status.as_ref()).is_some() {
            all.push(Failure::GarbledReference(key));
        }
    }
    all
}

fn reachable(observed: &mut Observed, key: ClusterKey) -> Option<&mut ClusterState> {
    match observed.cluster_mut(key) {
        Reach::Reachable(state) => Some(state),
        Reach::Unreachable { .. } => None,
    }
}

fn inject(observed: &mut Observed, failure: &Failure) {
    if let Failure::Unreachable(key) = failure {
        cut_off(observed, *key, "connection refused");
        return;
    }
    // Everything else is taken from a cluster that is still reachable.
    let Some(s) = reachable(observed, failure.cluster()) else {
        return;
    };
    match failure {
        Failure::Unreachable(_) => unreachable!("handled above"),
        Failure::Application(_, namespace, name) => s
            .applications
            .retain(|a| !(&a.namespace == namespace && &a.name == name)),
        Failure::Vault(_, name) => {
            s.vaults.remove(name);
        }
        Failure::Secret(_, name) => {
            s.secrets.remove(name);
        }
        Failure::StorageClass(_, name) => {
            s.storage_classes.remove(name);
        }
        Failure::Namespace(_, name) => {
            s.namespaces.remove(name);
        }
        Failure::GarbledReference(_) => {
            if let Some(status) = s.amr.as_mut().and_then(|a| a.status.as_mut()) {
                status.destination_application_ref = Some("a/b/c d".into());
            }
        }
    }
}

/// `end` with what `failure` took away given back, as it was in `before`.
fn repair(end: &mut Observed, before: &Observed, failure: &Failure) {
    let was = |key: ClusterKey| before.state(key).cloned().unwrap_or_default();
    match failure {
        Failure::Unreachable(key) => {
            if matches!(end.cluster(*key), Reach::Unreachable { .. }) {
                *end.cluster_mut(*key) = Reach::Reachable(Box::new(was(*key)));
            }
        }
        Failure::Application(key, namespace, name) => {
            let app = was(*key).application(namespace, name).cloned();
            if let (Some(s), Some(app)) = (reachable(end, *key), app)
                && s.application(namespace, name).is_none()
            {
                s.applications.push(app);
            }
        }
        Failure::Vault(key, name) => {
            if let (Some(v), Some(s)) = (was(*key).vaults.get(name).cloned(), reachable(end, *key)) {
                s.vaults.entry(name.clone()).or_insert(v);
            }
        }
        Failure::Secret(key, name) => {
            if let (Some(v), Some(s)) = (was(*key).secrets.get(name).cloned(), reachable(end, *key)) {
                s.secrets.entry(name.clone()).or_insert(v);
            }
        }
        Failure::StorageClass(key, name) => {
            if let Some(s) = reachable(end, *key) {
                s.storage_classes.insert(name.clone());
            }
        }
        Failure::Namespace(key, name) => {
            if let (Some(v), Some(s)) = (was(*key).namespaces.get(name).cloned(), reachable(end, *key)) {
                s.namespaces.entry(name.clone()).or_insert(v);
            }
        }
        // The controller writes the reference; the plugin reads around a garbled one.
        Failure::GarbledReference(_) => {}
    }
}

/// How a run from some state went.
struct Run {
    end: Observed,
    irreversible: Vec<Action>,
    outcome: Result<(), String>,
}

/// The planner, the simulated effects and the controller, from `observed` until the goal holds or the planner
/// refuses (a run that does not end within the bound is reported as refused: a loop is a dead end too).
fn run(observed: &Observed, goal: &Goal, variant: Controller) -> Run {
    let mut end = observed.clone();
    let mut irreversible = Vec::new();
    for _ in 0..64 {
        match plan(&end, goal) {
            Ok(Step::Act(action)) => {
                if action.irreversible() {
                    irreversible.push(action.clone());
                }
                apply(&mut end, &action);
            }
            Ok(Step::Wait(_)) => controller_as(&mut end, variant),
            Ok(Step::Done(_)) => {
                return Run {
                    end,
                    irreversible,
                    outcome: Ok(()),
                };
            }
            Err(e) => {
                return Run {
                    end,
                    irreversible,
                    outcome: Err(e.to_string()),
                };
            }
        }
    }
    Run {
        end,
        irreversible,
        outcome: Err("did not end within 64 steps".into()),
    }
}

/// Every state an operation passes through (before each of its steps), under `variant`.
fn states(start: &Observed, goal: &Goal, variant: Controller) -> Vec<Observed> {
    let mut observed = start.clone();
    let mut seen = vec![observed.clone()];
    for _ in 0..64 {
        match plan(&observed, goal).expect("the operation runs from its start") {
            Step::Act(action) => apply(&mut observed, &action),
            Step::Wait(_) => controller_as(&mut observed, variant),
            Step::Done(_) => return seen,
        }
        seen.push(observed.clone());
    }
    panic!("{goal:?} did not end")
}

#[test]
fn no_state_is_a_dead_end_and_no_irreversible_step_runs_without_its_preconditions() {
    let mut pairs = 0usize;
    let mut refusals = 0usize;
    let variants = Controller::variants();
    for variant in &variants {
        let established = walk_as(&before_setup(), &Goal::Setup(setup_params()), *variant).0;
        let failed_over = walk_as(&established, &Goal::Failover { force: false }, *variant).0;
        let starts: Vec<(Operation, Observed)> = vec![
            (Operation::Setup, before_setup()),
            (
                Operation::Failover,
                with_record(established.clone(), Operation::Failover),
            ),
            (
                Operation::Resync,
                with_record(failed_over.clone(), Operation::Resync),
            ),
            (
                Operation::ReverseResync,
                with_record(failed_over.clone(), Operation::ReverseResync),
            ),
            (
                Operation::Failback,
                with_record(failed_over.clone(), Operation::Failback),
            ),
            (
                Operation::Reverse,
                with_record(established.clone(), Operation::Reverse),
            ),
            (Operation::Delete, established.clone()),
            (Operation::Delete, failed_over.clone()),
        ];
        for (operation, start) in starts {
            let goal = goal_of(operation);
            for (k, state) in states(&start, &goal, *variant).iter().enumerate() {
                for failure in failures(state) {
                    pairs += 1;
                    let mut broken = state.clone();
                    inject(&mut broken, &failure);
                    let context = format!("{operation:?} at step {k}, {failure:?}, {variant:?}");
                    let attempt = run(&broken, &goal, *variant);
                    if let Err(refusal) = &attempt.outcome {
                        refusals += 1;
                        assert!(
                            attempt.irreversible.is_empty(),
                            "{context}: refused ({refusal}) AFTER {:?}",
                            attempt.irreversible
                        );
                        // Once the precondition is back, the same command reaches its end.
                        let mut repaired = attempt.end.clone();
                        repair(&mut repaired, state, &failure);
                        let again = run(&repaired, &goal, *variant);
                        assert!(
                            again.outcome.is_ok(),
                            "{context}: refused ({refusal}), and again once repaired: {:?}",
                            again.outcome
                        );
                    }
                    // Delete always ends the relationship, whatever the operation left.
                    let deleted = run(&attempt.end, &Goal::Delete, *variant);
                    assert!(
                        deleted.outcome.is_ok(),
                        "{context}: delete: {:?}",
                        deleted.outcome
                    );
                }
            }
        }
    }
    eprintln!(
        "no dead end: {pairs} (state, failure) pairs over 8 starts of 7 operations and {} readings of the controller; {refusals} refused, every one with a way on",
        variants.len()
    );
    assert!(pairs > 5_000, "the search covered only {pairs} pairs");
    assert!(
        refusals > 500,
        "only {refusals} refusals: the failures did not bite"
    );
}
