//! The planner, table-driven, without a cluster: given an observation and a goal, the next step; and whole
//! operations walked over the simulator from start to end and from every step in between.

use std::collections::{BTreeMap, BTreeSet};

use tprotect_api::{
    AppMirrorRelationshipSpec, AppMirrorRelationshipStatus, DesiredState, NamespaceMapping, ScheduleSpec,
};
use tprotect_lifecycle_rules::plan::{plan, shutdown_snapshot_name};
use tprotect_lifecycle_rules::record::begin_record;
use tprotect_lifecycle_rules::simulate::{apply, controller, dry_run};
use tprotect_lifecycle_rules::*;

const SRC: ClusterKey = ClusterKey::Context;
const DST: ClusterKey = ClusterKey::Peer;
const RULE: &str = "DTSTART:20260101T000000Z\nRRULE:FREQ=MINUTELY;INTERVAL=5";

fn vault(name: &str, secret: &str) -> VaultView {
    VaultView {
        name: name.into(),
        state: "Available".into(),
        error: None,
        secret_refs: [(secret.to_string(), BTreeSet::from(["accessKeyID".to_string()]))].into(),
    }
}

fn secret(name: &str) -> SecretView {
    SecretView {
        name: name.into(),
        keys: BTreeSet::from(["accessKeyID".to_string()]),
    }
}

fn namespace(name: &str) -> NamespaceView {
    NamespaceView {
        name: name.into(),
        ..Default::default()
    }
}

fn schedule(namespace: &str, name: &str, app: &str, replication: bool) -> ScheduleView {
    let mut labels = BTreeMap::new();
    if replication {
        labels.insert(
            tprotect_api::REPLICATION_SCHEDULE_LABEL.to_string(),
            "true".to_string(),
        );
    }
    ScheduleView {
        namespace: namespace.into(),
        name: name.into(),
        labels,
        annotations: BTreeMap::new(),
        spec: ScheduleSpec {
            application_ref: Some(app.into()),
            enabled: Some(true),
            ..Default::default()
        },
    }
}

/// Source cluster `src` (namespace my-app, app my-app, vault src-vault) and destination `dst` (namespace
/// my-app-dr, vault dst-vault), before setup.
fn before_setup() -> Observed {
    let src = ClusterState {
        context: "src".into(),
        cluster_id: "uid-src".into(),
        applications: vec![AppView {
            namespace: "my-app".into(),
            name: "my-app".into(),
            uid: "app-uid-1".into(),
            ..Default::default()
        }],
        schedules: vec![schedule("my-app", "daily", "my-app", false)],
        vaults: [("src-vault".to_string(), vault("src-vault", "src-creds"))].into(),
        secrets: [("src-creds".to_string(), secret("src-creds"))].into(),
        namespaces: [("my-app".to_string(), namespace("my-app"))].into(),
        storage_classes: ["gold".to_string()].into(),
        ..Default::default()
    };
    let dst = ClusterState {
        context: "dst".into(),
        cluster_id: "uid-dst".into(),
        vaults: [("dst-vault".to_string(), vault("dst-vault", "dst-creds"))].into(),
        secrets: [("dst-creds".to_string(), secret("dst-creds"))].into(),
        storage_classes: ["silver".to_string()].into(),
        ..Default::default()
    };
    Observed {
        relationship: "rel1".into(),
        context: Reach::Reachable(Box::new(src)),
        peer: Reach::Reachable(Box::new(dst)),
        record: None,
    }
}

fn setup_params() -> SetupParams {
    SetupParams {
        source: SRC,
        app: "my-app".into(),
        source_namespace: "my-app".into(),
        destination_namespace: "my-app-dr".into(),
        source_vault: "src-vault".into(),
        destination_vault: "dst-vault".into(),
        storage_class: Some("silver".into()),
        source_storage_class: Some("gold".into()),
        recurrence_rule: RULE.into(),
        create_app: false,
        initial_snapshot: true,
    }
}

/// Runs a dry run to the end and returns the final observation with the steps.
fn walk(observed: &Observed, goal: &Goal) -> (Observed, Vec<Step>) {
    let mut observed = observed.clone();
    let steps = dry_run(&observed, goal).expect("the plan converges");
    for step in &steps {
        match step {
            Step::Act(action) => apply(&mut observed, action),
            Step::Wait(_) => controller(&mut observed),
            Step::Done(_) => {}
        }
    }
    (observed, steps)
}

fn established() -> Observed {
    walk(&before_setup(), &Goal::Setup(setup_params())).0
}

fn with_record(mut observed: Observed, operation: Operation) -> Observed {
    observed.record = begin_record(&observed, operation, "abc123", "2026-11-22T00:00:00Z");
    observed
}

fn failed_over() -> Observed {
    walk(&established(), &Goal::Failover { force: false }).0
}

fn amr(observed: &Observed, key: ClusterKey) -> Option<&AmrView> {
    observed.state(key).and_then(|s| s.amr.as_ref())
}

fn actions(steps: &[Step]) -> Vec<&'static str> {
    steps
        .iter()
        .map(|s| match s {
            Step::Act(a) => match a {
                Action::CreateNamespace { .. } => "CreateNamespace",
                Action::CopySecret { .. } => "CopySecret",
                Action::CopyAppVault { .. } => "CopyAppVault",
                Action::CreateApplication { .. } => "CreateApplication",
                Action::CreateReplicationSchedule { .. } => "CreateReplicationSchedule",
                Action::SetRecurrence { .. } => "SetRecurrence",
                Action::DisableSchedule { .. } => "DisableSchedule",
                Action::RemoveDestinationSchedules { .. } => "RemoveDestinationSchedules",
                Action::RestoreSchedules { .. } => "RestoreSchedules",
                Action::CreateSnapshot { shutdown: false, .. } => "CreateSnapshot",
                Action::CreateSnapshot { shutdown: true, .. } => "CreateShutdownSnapshot",
                Action::CreateAmr { .. } => "CreateAmr",
                Action::SetDesiredState { .. } => "SetDesiredState",
                Action::DeleteAmr { .. } => "DeleteAmr",
                Action::RecordDestinationApp { .. } => "RecordDestinationApp",
            },
            Step::Wait(_) => "Wait",
            Step::Done(_) => "Done",
        })
        .collect()
}

#[test]
fn setup_walks_the_documented_steps_and_creates_the_amr_with_the_source_app_uid() {
    let (end, steps) = walk(&before_setup(), &Goal::Setup(setup_params()));
    assert_eq!(
        actions(&steps),
        [
            "CreateReplicationSchedule",
            "CreateSnapshot",
            "Wait",
            "CopySecret",
            "CopyAppVault",
            "CreateNamespace",
            "CreateAmr",
            "Wait",
            "Done"
        ]
    );
    let amr = amr(&end, DST).expect("AMR on the destination");
    assert_eq!(amr.namespace, "my-app-dr");
    assert_eq!(amr.spec.source_application_uid.as_deref(), Some("app-uid-1"));
    assert_eq!(amr.spec.source_app_vault_ref.as_deref(), Some("src-vault"));
    assert_eq!(amr.spec.destination_app_vault_ref.as_deref(), Some("dst-vault"));
    assert_eq!(amr.spec.storage_class_name.as_deref(), Some("silver"));
    assert_eq!(
        amr.annotations
            .get(tprotect_lifecycle_rules::plan::PEER_STORAGE_CLASS_ANNOTATION)
            .map(String::as_str),
        Some("gold")
    );
    assert_eq!(amr.mapping(), [("my-app".to_string(), "my-app-dr".to_string())]);
    assert!(
        end.state(DST).unwrap().vaults.contains_key("src-vault"),
        "source vault copied"
    );
    // Running setup again changes nothing.
    assert_eq!(
        actions(&dry_run(&end, &Goal::Setup(setup_params())).unwrap()),
        ["Done"]
    );
}

#[test]
fn setup_refuses_what_it_cannot_fix_before_writing_anything() {
    type Mutation = Box<dyn Fn(&mut Observed, &mut SetupParams)>;
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "missing source vault",
            Box::new(|_, p| p.source_vault = "nope".into()),
            "AppVault trident-protect/nope not found on cluster src",
        ),
        (
            "missing destination vault",
            Box::new(|_, p| p.destination_vault = "nope".into()),
            "AppVault trident-protect/nope not found on cluster dst",
        ),
        (
            "missing app",
            Box::new(|_, p| p.app = "other".into()),
            "Application my-app/other not found on cluster src",
        ),
        (
            "missing storage class",
            Box::new(|_, p| p.storage_class = Some("bronze".into())),
            "StorageClass /bronze not found on cluster dst. Available: silver",
        ),
        (
            "missing namespace",
            Box::new(|_, p| p.source_namespace = "ghost".into()),
            "Namespace /ghost not found on cluster src",
        ),
        (
            "missing vault secret",
            Box::new(|o, _| {
                if let Reach::Reachable(s) = &mut o.context {
                    s.secrets.clear();
                }
            }),
            "Secret trident-protect/src-creds not found on cluster src",
        ),
    ];
    for (case, mutate, expected) in cases {
        let mut observed = before_setup();
        let mut params = setup_params();
        mutate(&mut observed, &mut params);
        let err = plan(&observed, &Goal::Setup(params)).expect_err(case).to_string();
        assert!(err.contains(expected), "{case}: {err}");
    }
}

#[test]
fn setup_creates_the_application_only_when_asked() {
    let mut params = setup_params();
    params.app = "new-app".into();
    assert!(
        plan(&before_setup(), &Goal::Setup(params.clone()))
            .unwrap_err()
            .to_string()
            .contains("--create-app")
    );
    params.create_app = true;
    let step = plan(&before_setup(), &Goal::Setup(params)).unwrap();
    assert!(
        matches!(step, Step::Act(Action::CreateApplication { ref name, .. }) if name == "new-app"),
        "{step:?}"
    );
}

#[test]
fn setup_refuses_a_name_taken_by_another_relationship() {
    let mut params = setup_params();
    params.destination_namespace = "elsewhere".into();
    let err = plan(&established(), &Goal::Setup(params)).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
}

#[test]
fn failover_promotes_and_is_idempotent() {
    let (end, steps) = walk(&established(), &Goal::Failover { force: false });
    assert_eq!(actions(&steps), ["SetDesiredState", "Wait", "Done"]);
    assert!(matches!(
        &steps[0],
        Step::Act(Action::SetDesiredState {
            desired: DesiredState::Promoted,
            cluster: DST,
            promoted_snapshot: None,
            discard_destination_changes: false,
            ..
        })
    ));
    assert_eq!(amr(&end, DST).unwrap().state(), "Promoted");
    // Again: nothing to do, and it says so.
    let again = dry_run(&end, &Goal::Failover { force: false }).unwrap();
    assert!(
        matches!(&again[..], [Step::Done(outcome)] if outcome.message.contains("is failed over")),
        "{again:?}"
    );
}

#[test]
fn failover_works_with_the_source_cluster_unreachable() {
    let mut observed = established();
    observed.context = Reach::Unreachable {
        context: "src".into(),
        error: "connection refused".into(),
    };
    let step = plan(&observed, &Goal::Failover { force: false }).unwrap();
    assert!(matches!(
        step,
        Step::Act(Action::SetDesiredState {
            cluster: DST,
            desired: DesiredState::Promoted,
            ..
        })
    ));
}

#[test]
fn failover_refuses_a_relationship_that_never_replicated_unless_forced() {
    let mut observed = established();
    if let Reach::Reachable(s) = &mut observed.peer {
        s.amr.as_mut().unwrap().status = Some(AppMirrorRelationshipStatus {
            state: Some("Establishing".into()),
            ..Default::default()
        });
    }
    let err = plan(&observed, &Goal::Failover { force: false })
        .unwrap_err()
        .to_string();
    assert!(err.contains("--force") && err.contains("dst"), "{err}");
    assert!(plan(&observed, &Goal::Failover { force: true }).is_ok());
}

#[test]
fn a_failed_amr_fails_the_wait_with_its_error() {
    let mut observed = established();
    if let Reach::Reachable(s) = &mut observed.peer {
        let amr = s.amr.as_mut().unwrap();
        amr.spec.desired_state = Some(DesiredState::Promoted);
        amr.status = Some(AppMirrorRelationshipStatus {
            state: Some("Failed".into()),
            error: Some("snapmirror break failed".into()),
            ..Default::default()
        });
    }
    let err = plan(&observed, &Goal::Failover { force: false })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("snapmirror break failed") && err.contains("my-app-dr/rel1") && err.contains("dst"),
        "{err}"
    );
}

#[test]
fn resync_discards_destination_changes_and_removes_destination_schedules() {
    let mut observed = failed_over();
    // A protection schedule created on the promoted app, as NetApp's failover recipe suggests.
    if let Reach::Reachable(s) = &mut observed.peer {
        s.schedules
            .push(schedule("my-app-dr", "dr-hourly", "my-app", false));
    }
    let (end, steps) = walk(&observed, &Goal::Resync);
    assert_eq!(
        actions(&steps),
        ["SetDesiredState", "RemoveDestinationSchedules", "Wait", "Done"]
    );
    match &steps[0] {
        Step::Act(action) => assert!(action.discards_data(), "resync is the destructive step"),
        other => panic!("{other:?}"),
    }
    let dst = end.state(DST).unwrap();
    assert!(dst.schedules.is_empty());
    assert_eq!(dst.saved_schedules.schedules.len(), 1, "saved, not lost");
    assert_eq!(amr(&end, DST).unwrap().state(), "Established");
    assert!(
        dst.application("my-app-dr", "my-app").is_none(),
        "the destination app is stopped"
    );
}

#[test]
fn reverse_resync_moves_the_amr_keeping_destination_changes() {
    let observed = with_record(failed_over(), Operation::ReverseResync);
    let (end, steps) = walk(&observed, &Goal::ReverseResync);
    assert_eq!(
        actions(&steps),
        [
            "RecordDestinationApp",
            "DeleteAmr",
            "Wait",
            "RemoveDestinationSchedules",
            "CopySecret",
            "CopyAppVault",
            "CreateReplicationSchedule",
            "CreateAmr",
            "Wait",
            "Done"
        ]
    );
    assert!(amr(&end, DST).is_none(), "gone from the former destination");
    let reversed = amr(&end, SRC).expect("AMR on the former source");
    assert_eq!(reversed.namespace, "my-app");
    assert_eq!(
        reversed.mapping(),
        [("my-app-dr".to_string(), "my-app".to_string())]
    );
    assert_eq!(reversed.spec.source_app_vault_ref.as_deref(), Some("dst-vault"));
    assert_eq!(
        reversed.spec.destination_app_vault_ref.as_deref(),
        Some("src-vault")
    );
    assert_eq!(
        reversed.spec.storage_class_name.as_deref(),
        Some("gold"),
        "the peer storage class"
    );
    assert_eq!(
        reversed
            .annotations
            .get(tprotect_lifecycle_rules::plan::PEER_STORAGE_CLASS_ANNOTATION)
            .map(String::as_str),
        Some("silver")
    );
    let promoted_uid = end
        .state(DST)
        .unwrap()
        .application("my-app-dr", "my-app")
        .unwrap()
        .uid
        .clone();
    assert_eq!(
        reversed.spec.source_application_uid.as_deref(),
        Some(promoted_uid.as_str())
    );
    assert_eq!(reversed.state(), "Established");
    // The new destination's schedules were saved before removal; the new source replicates on its own schedule.
    let src = end.state(SRC).unwrap();
    assert!(src.schedules.is_empty());
    assert_eq!(
        src.saved_schedules
            .schedules
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["daily"]
    );
    assert!(
        end.state(DST)
            .unwrap()
            .schedules
            .iter()
            .any(|s| s.is_replication() && s.application() == "my-app")
    );
}

#[test]
fn reverse_is_a_planned_swap_through_a_shutdown_snapshot() {
    let observed = with_record(established(), Operation::Reverse);
    let (end, steps) = walk(&observed, &Goal::Reverse);
    assert_eq!(
        actions(&steps),
        [
            "DisableSchedule",
            "CreateShutdownSnapshot",
            "Wait",
            "SetDesiredState",
            "Wait",
            "RecordDestinationApp",
            "DeleteAmr",
            "Wait",
            "RemoveDestinationSchedules",
            "CopySecret",
            "CopyAppVault",
            "CreateReplicationSchedule",
            "CreateAmr",
            "Wait",
            "Done"
        ]
    );
    let promote = steps.iter().find_map(|s| match s {
        Step::Act(Action::SetDesiredState {
            promoted_snapshot, ..
        }) => promoted_snapshot.clone(),
        _ => None,
    });
    let shutdown = shutdown_snapshot_name("rel1", "abc123");
    let promote = promote.expect("promoted with a snapshot");
    let disabled: Vec<&Step> = steps
        .iter()
        .filter(|s| matches!(s, Step::Act(Action::DisableSchedule { .. })))
        .collect();
    assert!(
        matches!(disabled[..], [Step::Act(Action::DisableSchedule { cluster: SRC, name, .. })] if name == "daily"),
        "only the protection schedule is disabled, never the replication schedule: {disabled:?}"
    );
    assert!(
        promote.contains(&shutdown) && !promote.contains('/'),
        "the archive's basename: {promote}"
    );
    assert_eq!(amr(&end, SRC).unwrap().state(), "Established");
    assert!(amr(&end, DST).is_none());
    // The disabled schedules were saved (not lost) with their enabled state, to come back when src is source again.
    let saved = &end.state(SRC).unwrap().saved_schedules.schedules;
    assert_eq!(saved.len(), 1);
    assert!(saved[0].was_enabled);
}

#[test]
fn reverse_refuses_a_failed_over_relationship_and_points_to_failback() {
    let observed = with_record(failed_over(), Operation::Reverse);
    let err = plan(&observed, &Goal::Reverse).unwrap_err().to_string();
    assert!(err.contains("kubectl tprotect failback rel1"), "{err}");
}

#[test]
fn failback_reverse_resyncs_then_swaps_back_to_the_original_direction() {
    let observed = with_record(failed_over(), Operation::Failback);
    let (end, steps) = walk(&observed, &Goal::Failback);
    let acts = actions(&steps);
    assert_eq!(acts.iter().filter(|a| **a == "DeleteAmr").count(), 2, "{acts:?}");
    assert_eq!(acts.iter().filter(|a| **a == "CreateAmr").count(), 2, "{acts:?}");
    assert!(
        !steps
            .iter()
            .any(|s| matches!(s, Step::Act(a) if a.discards_data())),
        "never a plain resync"
    );
    assert_eq!(acts.last(), Some(&"Done"));
    // Original direction again: AMR on the original destination, replicating from the original source app.
    let amr = amr(&end, DST).expect("AMR back on the original destination");
    assert_eq!(amr.state(), "Established");
    assert_eq!(amr.namespace, "my-app-dr");
    assert_eq!(amr.mapping(), [("my-app".to_string(), "my-app-dr".to_string())]);
    assert_eq!(amr.spec.source_app_vault_ref.as_deref(), Some("src-vault"));
    assert_eq!(amr.spec.storage_class_name.as_deref(), Some("silver"));
    assert!(end.state(SRC).unwrap().amr.is_none());
    // The original source's protection schedule is back and enabled; the destination has none left.
    let src = end.state(SRC).unwrap();
    let daily = src
        .schedules
        .iter()
        .find(|s| s.name == "daily")
        .expect("daily restored");
    assert!(daily.enabled());
    assert!(src.saved_schedules.schedules.is_empty());
    assert!(
        end.state(DST)
            .unwrap()
            .schedules
            .iter()
            .all(|s| s.namespace != "my-app-dr" || s.is_replication())
    );
}

#[test]
fn failback_refuses_a_relationship_that_is_not_failed_over() {
    let observed = with_record(established(), Operation::Failback);
    let err = plan(&observed, &Goal::Failback).unwrap_err().to_string();
    assert!(
        err.contains("not failed over") && err.contains("kubectl tprotect reverse rel1"),
        "{err}"
    );
}

/// Killed after any step, the same command run again observes where things are and ends where an
/// uninterrupted run ends. With the planner a function of the observation, this holds if every intermediate
/// observation plans onwards to the same end.
#[test]
fn every_operation_resumes_from_every_intermediate_state_to_the_same_end() {
    let cases: Vec<(Observed, Goal)> = vec![
        (before_setup(), Goal::Setup(setup_params())),
        (established(), Goal::Failover { force: false }),
        (failed_over(), Goal::Resync),
        (
            with_record(failed_over(), Operation::ReverseResync),
            Goal::ReverseResync,
        ),
        (with_record(established(), Operation::Reverse), Goal::Reverse),
        (with_record(failed_over(), Operation::Failback), Goal::Failback),
        (established(), Goal::Delete),
    ];
    for (start, goal) in cases {
        let (end, steps) = walk(&start, &goal);
        let mut observed = start.clone();
        for (k, step) in steps.iter().enumerate() {
            match step {
                Step::Act(action) => {
                    apply(&mut observed, action);
                    // Performing the same action twice changes nothing (the executor may be killed after the
                    // write but before it learns the answer).
                    let mut twice = observed.clone();
                    apply(&mut twice, action);
                    assert_eq!(
                        twice, observed,
                        "{goal:?}: step {k} is not idempotent: {action:?}"
                    );
                }
                Step::Wait(_) => controller(&mut observed),
                Step::Done(_) => break,
            }
            let (resumed_end, resumed) = walk(&observed, &goal);
            assert_eq!(
                resumed_end, end,
                "{goal:?}: resuming after step {k} ends elsewhere: {resumed:?}"
            );
            assert_eq!(
                resumed.len(),
                steps.len() - k - 1,
                "{goal:?}: resuming after step {k} repeats work"
            );
        }
    }
}

#[test]
fn an_operation_in_progress_blocks_another() {
    let observed = with_record(failed_over(), Operation::Failback);
    let err = plan(&observed, &Goal::Failover { force: false })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("failback") && err.contains("kubectl tprotect failback rel1"),
        "{err}"
    );
}

#[test]
fn an_amr_on_both_clusters_is_refused() {
    let mut observed = established();
    let copy = amr(&observed, DST).cloned();
    if let Reach::Reachable(s) = &mut observed.context {
        s.amr = copy;
    }
    let err = plan(&observed, &Goal::Failover { force: false })
        .unwrap_err()
        .to_string();
    assert!(err.contains("BOTH clusters"), "{err}");
}

#[test]
fn unknown_relationship_names_both_clusters() {
    let err = plan(&before_setup(), &Goal::Failover { force: false })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"rel1\" not found") && err.contains("src and dst"),
        "{err}"
    );
}

#[test]
fn delete_deletes_the_amr_and_is_idempotent() {
    let (end, steps) = walk(&established(), &Goal::Delete);
    assert_eq!(actions(&steps), ["DeleteAmr", "Wait", "Done"]);
    assert!(amr(&end, DST).is_none() && amr(&end, SRC).is_none());
    assert_eq!(actions(&dry_run(&end, &Goal::Delete).unwrap()), ["Done"]);
    // Two independent applications remain.
    assert!(end.state(SRC).unwrap().application("my-app", "my-app").is_some());
}

#[test]
fn reversal_operations_need_both_clusters() {
    let mut observed = with_record(failed_over(), Operation::ReverseResync);
    observed.context = Reach::Unreachable {
        context: "src".into(),
        error: "connection refused".into(),
    };
    let err = plan(&observed, &Goal::ReverseResync).unwrap_err().to_string();
    assert!(
        err.contains("src is unreachable") && err.contains("reverse-resync"),
        "{err}"
    );
}

#[test]
fn records_for_every_operation_but_setup_and_delete() {
    let observed = established();
    for operation in [Operation::Setup, Operation::Delete] {
        assert!(
            begin_record(&observed, operation, "x", "t").is_none(),
            "{operation:?}"
        );
    }
    for operation in [
        Operation::Failover,
        Operation::Resync,
        Operation::ReverseResync,
        Operation::Reverse,
        Operation::Failback,
    ] {
        assert!(
            begin_record(&observed, operation, "x", "t").is_some(),
            "{operation:?}"
        );
    }
    let record = begin_record(&observed, Operation::Reverse, "x", "t").unwrap();
    assert_eq!(record.initial_destination, "uid-dst");
    assert_eq!(record.amr_namespace, "my-app-dr");
    assert_eq!(
        record.spec,
        AppMirrorRelationshipSpec {
            desired_state: Some(DesiredState::Established),
            destination_app_vault_ref: Some("dst-vault".into()),
            namespace_mapping: Some(vec![NamespaceMapping {
                source: "my-app".into(),
                destination: "my-app-dr".into()
            }]),
            recurrence_rule: Some(RULE.into()),
            source_app_vault_ref: Some("src-vault".into()),
            source_application_name: Some("my-app".into()),
            source_application_uid: Some("app-uid-1".into()),
            storage_class_name: Some("silver".into()),
            ..Default::default()
        }
    );
}
