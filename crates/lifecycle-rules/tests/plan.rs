//! The planner, table-driven, without a cluster: given an observation and a goal, the next step; and whole
//! operations walked over the simulator from start to end and from every step in between.

mod fixtures;

use fixtures::*;
use tprotect_api::{AppMirrorRelationshipSpec, AppMirrorRelationshipStatus, DesiredState, NamespaceMapping};
use tprotect_lifecycle_rules::plan::{plan, shutdown_snapshot_name};
use tprotect_lifecycle_rules::record::begin_record;
use tprotect_lifecycle_rules::simulate::{apply, controller, dry_run};
use tprotect_lifecycle_rules::*;

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
    assert_says(
        &refusal(&before_setup(), &Goal::Setup(params.clone())),
        &["--create-app"],
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
    let err = refusal(&established(), &Goal::Setup(params));
    assert_says(&err, &["already exists"]);
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
    cut_off(&mut observed, SRC, "connection refused");
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
    let err = refusal(&observed, &Goal::Failover { force: false });
    assert_says(&err, &["--force", "dst"]);
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
    let err = refusal(&observed, &Goal::Failover { force: false });
    assert_says(&err, &["snapmirror break failed", "my-app-dr/rel1", "dst"]);
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

/// How every reversal ends: the AMR moved to the other cluster, the new destination's schedules put aside.
const MOVE_THE_AMR: [&str; 10] = [
    "RecordDestinationApp",
    "DeleteAmr",
    "Wait",
    "RemoveDestinationSchedules",
    "CopySecret",
    "CopyAppVault",
    "CreateReplicationSchedule",
    "CreateAmr",
    "Wait",
    "Done",
];

#[test]
fn reverse_resync_moves_the_amr_keeping_destination_changes() {
    let observed = with_record(failed_over(), Operation::ReverseResync);
    let (end, steps) = walk(&observed, &Goal::ReverseResync);
    assert_eq!(actions(&steps), MOVE_THE_AMR);
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
    let swap = [
        "DisableSchedule",
        "CreateShutdownSnapshot",
        "Wait",
        "SetDesiredState",
        "Wait",
    ];
    assert_eq!(actions(&steps), [&swap[..], &MOVE_THE_AMR].concat());
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
    let err = refusal(&observed, &Goal::Reverse);
    assert_says(&err, &["kubectl tprotect failback rel1"]);
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
    let err = refusal(&observed, &Goal::Failback);
    assert_says(&err, &["not failed over", "kubectl tprotect reverse rel1"]);
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
    let err = refusal(&observed, &Goal::Failover { force: false });
    assert_says(&err, &["failback", "kubectl tprotect failback rel1"]);
}

#[test]
fn an_amr_on_both_clusters_is_refused() {
    let mut observed = established();
    let copy = amr(&observed, DST).cloned();
    if let Reach::Reachable(s) = &mut observed.context {
        s.amr = copy;
    }
    let err = refusal(&observed, &Goal::Failover { force: false });
    assert_says(&err, &["BOTH clusters"]);
}

#[test]
fn unknown_relationship_names_both_clusters() {
    let err = refusal(&before_setup(), &Goal::Failover { force: false });
    assert_says(&err, &["\"rel1\" not found", "src and dst"]);
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
    cut_off(&mut observed, SRC, "connection refused");
    let err = refusal(&observed, &Goal::ReverseResync);
    assert_says(&err, &["src is unreachable", "reverse-resync"]);
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

// ---------------------------------------------------------------------------------------------------------------
// Lifecycle safety under the unknown (issue 12).

use tprotect_lifecycle_rules::record::{Standing, standing};
use tprotect_lifecycle_rules::simulate::{AppRefForm, Controller};

/// Where the AMR is, what it is asked to be, and whether it is that (read tolerantly).
type Ending = (ClusterKey, Option<DesiredState>, bool);

fn ending(observed: &Observed) -> Ending {
    let (key, amr) = observed.amr_location().unwrap().expect("an AMR");
    let reached = match amr.desired() {
        Some(DesiredState::Promoted) => amr.is("Promoted"),
        _ => amr.is("Established"),
    };
    (key, amr.desired(), reached)
}

#[test]
fn every_operation_reaches_the_documented_end_under_every_reading_of_the_undocumented_parts() {
    for variant in Controller::variants() {
        let established = walk_as(&before_setup(), &Goal::Setup(setup_params()), variant).0;
        assert_eq!(
            ending(&established),
            (DST, Some(DesiredState::Established), true),
            "{variant:?}"
        );
        let failed_over = walk_as(&established, &Goal::Failover { force: false }, variant).0;
        assert_eq!(
            ending(&failed_over),
            (DST, Some(DesiredState::Promoted), true),
            "{variant:?}"
        );
        let on_dst: Ending = (DST, Some(DesiredState::Established), true);
        let on_src: Ending = (SRC, Some(DesiredState::Established), true);
        let cases = [
            (&failed_over, Operation::Resync, on_dst),
            (&failed_over, Operation::ReverseResync, on_src),
            (&failed_over, Operation::Failback, on_dst),
            (&established, Operation::Reverse, on_src),
        ];
        for (start, operation, expected) in cases {
            let goal = goal_of(operation);
            let (end, steps) = walk_as(&with_record(start.clone(), operation), &goal, variant);
            assert_eq!(ending(&end), expected, "{goal:?} under {variant:?}");
            assert!(
                matches!(steps.last(), Some(Step::Done(_))),
                "{goal:?} under {variant:?}"
            );
        }
    }
}

#[test]
fn the_promoted_application_is_noted_however_the_controller_names_it() {
    let renamed = Controller {
        app_ref: AppRefForm::Absent,
        renames_app: true,
        lower_case_states: false,
        archive_slash: true,
    };
    let established = walk_as(&before_setup(), &Goal::Setup(setup_params()), renamed).0;
    let failed_over = walk_as(&established, &Goal::Failover { force: false }, renamed).0;
    let start = with_record(failed_over, Operation::ReverseResync);
    let (_, steps) = walk_as(&start, &Goal::ReverseResync, renamed);
    let noted = steps.iter().find_map(|s| match s {
        Step::Act(Action::RecordDestinationApp { name, found_by, .. }) => Some((name.clone(), *found_by)),
        _ => None,
    });
    assert_eq!(
        noted,
        Some(("my-app-promoted".to_string(), FoundBy::RelationshipLabel))
    );
    // The reversed AMR replicates from that application.
    let created = steps.iter().find_map(|s| match s {
        Step::Act(Action::CreateAmr { spec, .. }) => spec.source_application_name.clone(),
        _ => None,
    });
    assert_eq!(created.as_deref(), Some("my-app-promoted"));
}

#[test]
fn a_promoted_application_that_cannot_be_found_refuses_before_the_amr_is_deleted() {
    let mut observed = with_record(failed_over(), Operation::ReverseResync);
    // The application the promotion created is gone (or named in a way nothing can find).
    if let Reach::Reachable(dst) = observed.cluster_mut(DST) {
        dst.applications.retain(|a| a.namespace != "my-app-dr");
    }
    let err = refusal(&observed, &Goal::ReverseResync);
    assert_says(&err, &["Application", "Nothing was changed"]);
}

#[test]
fn a_reversal_missing_a_vault_a_secret_or_a_storage_class_refuses_before_deleting_the_amr() {
    type Break = fn(&mut Observed);
    let breaks: [(&str, Break); 4] = [
        ("AppVault", |o| {
            if let Reach::Reachable(s) = o.cluster_mut(SRC) {
                s.vaults.remove("src-vault");
            }
        }),
        ("AppVault", |o| {
            if let Reach::Reachable(s) = o.cluster_mut(DST) {
                s.vaults.remove("dst-vault");
            }
        }),
        ("Secret", |o| {
            if let Reach::Reachable(s) = o.cluster_mut(DST) {
                s.secrets.remove("dst-creds");
            }
        }),
        ("StorageClass", |o| {
            if let Reach::Reachable(s) = o.cluster_mut(SRC) {
                s.storage_classes.clear();
            }
        }),
    ];
    for operation in [Operation::ReverseResync, Operation::Failback] {
        for (what, damage) in breaks {
            let mut observed = with_record(failed_over(), operation);
            damage(&mut observed);
            let goal = fixtures::goal_of(operation);
            let mut walked = observed.clone();
            // Whatever it does first (noting the promoted application), it never gets to the delete.
            for _ in 0..4 {
                match plan(&walked, &goal) {
                    Ok(Step::Act(action)) => {
                        assert!(!action.irreversible(), "{operation:?} without {what}: {action:?}");
                        apply(&mut walked, &action);
                    }
                    Ok(other) => panic!("{operation:?} without {what}: {other:?}"),
                    Err(e) => {
                        assert!(e.to_string().contains(what), "{operation:?} without {what}: {e}");
                        break;
                    }
                }
            }
        }
    }
}

#[test]
fn resync_never_discards_the_destination_without_a_running_source() {
    let observed = failed_over();
    // The source cluster is down: the destination may be the only running copy.
    let mut down = observed.clone();
    cut_off(&mut down, SRC, "connection refused");
    let err = refusal(&down, &Goal::Resync);
    assert_says(&err, &["src is unreachable", "Nothing was changed"]);
    // The source application is gone.
    let mut gone = observed.clone();
    if let Reach::Reachable(s) = gone.cluster_mut(SRC) {
        s.applications.clear();
    }
    let err = refusal(&gone, &Goal::Resync);
    assert_says(&err, &["Application", "my-app"]);
    // Re-created: another uid than the AMR's.
    let mut recreated = observed.clone();
    if let Reach::Reachable(s) = recreated.cluster_mut(SRC) {
        s.applications[0].uid = "another-uid".into();
    }
    let err = refusal(&recreated, &Goal::Resync);
    // It names the Application whose uid changed, as an Application.
    assert_says(
        &err,
        &["resync cannot start: Application ", "another-uid", "re-created"],
    );
    // With the source there, it discards (after a confirmation, see confirm.rs).
    assert!(matches!(plan(&observed, &Goal::Resync), Ok(Step::Act(a)) if a.discards_data()));
}

/// An AMR of another relationship on `key`, replicating `app` in `source_ns` into `destination_ns`.
fn other_amr(name: &str, app: &str, uid: &str, source_ns: &str, destination_ns: &str) -> AmrView {
    AmrView {
        namespace: destination_ns.into(),
        name: name.into(),
        labels: [(tprotect_api::RELATIONSHIP_LABEL.to_string(), name.to_string())].into(),
        spec: AppMirrorRelationshipSpec {
            source_application_name: Some(app.into()),
            source_application_uid: Some(uid.into()),
            namespace_mapping: Some(vec![NamespaceMapping {
                source: source_ns.into(),
                destination: destination_ns.into(),
            }]),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn one_relationship_per_application_and_per_destination_namespace() {
    let cases = [
        (
            DST,
            other_amr("payments", "my-app", "app-uid-1", "my-app", "elsewhere"),
            "already replicated",
        ),
        (
            DST,
            other_amr("payments", "other", "x", "other", "my-app-dr"),
            "already filled",
        ),
        (
            SRC,
            other_amr("inbound", "x", "y", "x", "my-app"),
            "itself the destination",
        ),
    ];
    for (key, existing, expected) in cases {
        let mut observed = before_setup();
        if let Reach::Reachable(s) = observed.cluster_mut(key) {
            s.other_amrs.push(existing);
        }
        let err = refusal(&observed, &Goal::Setup(setup_params()));
        assert!(err.contains(expected), "{expected}: {err}");
    }
    // The application's replication schedule belongs to another relationship.
    let mut observed = before_setup();
    if let Reach::Reachable(s) = observed.cluster_mut(SRC) {
        let mut shared = schedule("my-app", "appmirror-schedule-payments", "my-app", true);
        shared
            .labels
            .insert(tprotect_api::RELATIONSHIP_LABEL.into(), "payments".into());
        s.schedules.push(shared);
    }
    let err = refusal(&observed, &Goal::Setup(setup_params()));
    assert_says(&err, &["relationship \"payments\""]);
}

#[test]
fn setup_run_again_reconciles_the_interval_and_refuses_other_differences() {
    let established = established();
    let mut params = setup_params();
    params.recurrence_rule = "DTSTART:20260301T000000Z\nRRULE:FREQ=MINUTELY;INTERVAL=15".into();
    let (end, steps) = walk(&established, &Goal::Setup(params.clone()));
    let changed: Vec<(RecurrenceTarget, String)> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Act(Action::SetRecurrence { target, was, .. }) => Some((*target, was.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        changed,
        [
            (RecurrenceTarget::AppMirrorRelationship, RULE.to_string()),
            (RecurrenceTarget::Schedule, RULE.to_string())
        ]
    );
    assert!(matches!(steps.last(), Some(Step::Done(_))));
    // Run once more with the same interval (another DTSTART, as every run has): nothing to do.
    let mut again = params.clone();
    again.recurrence_rule = "DTSTART:20260302T000000Z\nRRULE:FREQ=MINUTELY;INTERVAL=15".into();
    assert!(matches!(plan(&end, &Goal::Setup(again)), Ok(Step::Done(_))));
    // Another vault: refused, naming the flag, what it has and what was asked.
    let mut other = setup_params();
    other.source_vault = "another-vault".into();
    let err = refusal(&established, &Goal::Setup(other));
    assert_says(&err, &["--source-vault", "\"src-vault\"", "\"another-vault\""]);
}

#[test]
fn a_record_resumes_its_operation_blocks_others_is_cleared_when_finished_and_never_blocks_delete() {
    let in_progress = with_record(failed_over(), Operation::ReverseResync);
    assert_eq!(standing(&in_progress, &Goal::ReverseResync), Standing::Resume);
    assert!(matches!(
        standing(&in_progress, &Goal::Resync),
        Standing::Blocks(PlanError::OtherOperationInProgress { .. })
    ));
    assert_eq!(
        standing(&in_progress, &Goal::Delete),
        Standing::OverriddenByDelete
    );
    assert!(matches!(
        plan(&in_progress, &Goal::Delete),
        Ok(Step::Act(Action::DeleteAmr { .. }))
    ));
    // A resync started with --no-wait that has since finished on the clusters does not block a failover.
    let resynced = walk(&with_record(failed_over(), Operation::Resync), &Goal::Resync).0;
    let mut left_over = resynced.clone();
    left_over.record = begin_record(&failed_over(), Operation::Resync, "abc123", "t");
    assert_eq!(
        standing(&left_over, &Goal::Failover { force: false }),
        Standing::Finished
    );
    assert_eq!(
        standing(&resynced_without_record(resynced), &Goal::Resync),
        Standing::None
    );
}

fn resynced_without_record(mut observed: Observed) -> Observed {
    observed.record = None;
    observed
}

#[test]
fn only_a_promoted_application_missing_right_after_promotion_is_looked_for_again() {
    use tprotect_lifecycle_rules::plan::may_still_appear;
    let mut observed = with_record(failed_over(), Operation::ReverseResync);
    if let Reach::Reachable(dst) = observed.cluster_mut(DST) {
        dst.applications.clear();
    }
    let missing = plan(&observed, &Goal::ReverseResync).unwrap_err();
    assert!(may_still_appear(&observed, &missing), "{missing}");
    // Not while establishing, not for another kind of object, not once the AMR is gone.
    let vault = PlanError::Missing {
        what: "AppVault",
        context: "dst".into(),
        namespace: "trident-protect".into(),
        name: "dst-vault".into(),
        hint: String::new(),
    };
    assert!(!may_still_appear(&observed, &vault));
    assert!(!may_still_appear(&established(), &missing));
    let mut gone = observed.clone();
    if let Reach::Reachable(dst) = gone.cluster_mut(DST) {
        dst.amr = None;
    }
    assert!(!may_still_appear(&gone, &missing));
}
