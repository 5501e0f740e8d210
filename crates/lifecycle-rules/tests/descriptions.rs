//! One description of every step: the words a plan shows, the words progress prints as the step is done, and the
//! `change` of the JSON output are one text, for every kind of step.

mod fixtures;

use fixtures::*;
use tprotect_api::DesiredState;
use tprotect_lifecycle_rules::describe::{self, plan_entries};
use tprotect_lifecycle_rules::*;

fn contexts() -> Contexts {
    Contexts::new("src", "dst")
}

/// The plan's words, the progress line's words (the description as displayed) and the JSON's `change` agree,
/// and name the cluster the step touches.
fn same_words(step: Step) {
    let in_plan = plan_entries(std::slice::from_ref(&step), &contexts(), "rel1").remove(0);
    let as_progress = describe::step(&step, &contexts(), "rel1");
    let json = serde_json::to_value(&in_plan).unwrap();
    assert_eq!(in_plan.change, as_progress.change, "{step:?}");
    assert_eq!(json["change"], in_plan.change.as_str(), "{step:?}");
    assert_eq!(json["cluster"], as_progress.cluster.as_str(), "{step:?}");
    let line = as_progress.to_string();
    assert!(line.starts_with(&in_plan.change), "{line}");
    if !as_progress.cluster.is_empty() {
        assert!(line.ends_with(&format!(" on {}", as_progress.cluster)), "{line}");
    }
    assert!(!in_plan.change.is_empty());
}

#[test]
fn create_namespace() {
    same_words(Step::Act(Action::CreateNamespace {
        cluster: DST,
        name: "my-app-dr".into(),
    }));
}

#[test]
fn copy_secret() {
    same_words(Step::Act(Action::CopySecret {
        from: SRC,
        to: DST,
        name: "src-creds".into(),
    }));
}

#[test]
fn copy_app_vault() {
    same_words(Step::Act(Action::CopyAppVault {
        from: SRC,
        to: DST,
        name: "src-vault".into(),
    }));
}

#[test]
fn create_application() {
    same_words(Step::Act(Action::CreateApplication {
        cluster: SRC,
        namespace: "my-app".into(),
        name: "my-app".into(),
        namespaces: vec!["my-app".into()],
    }));
}

#[test]
fn create_replication_schedule() {
    same_words(Step::Act(Action::CreateReplicationSchedule {
        cluster: SRC,
        namespace: "my-app".into(),
        name: "appmirror-schedule-rel1".into(),
        application: "my-app".into(),
        app_vault: "src-vault".into(),
        recurrence_rule: RULE.into(),
    }));
}

#[test]
fn set_recurrence() {
    same_words(Step::Act(Action::SetRecurrence {
        cluster: DST,
        target: RecurrenceTarget::AppMirrorRelationship,
        namespace: "my-app-dr".into(),
        name: "rel1".into(),
        recurrence_rule: RULE.into(),
        was: RULE.into(),
    }));
}

#[test]
fn disable_schedule() {
    same_words(Step::Act(Action::DisableSchedule {
        cluster: SRC,
        namespace: "my-app".into(),
        name: "daily".into(),
    }));
}

#[test]
fn remove_destination_schedules() {
    same_words(Step::Act(Action::RemoveDestinationSchedules {
        cluster: DST,
        namespace: "my-app-dr".into(),
        names: vec!["hourly".into()],
    }));
}

#[test]
fn restore_schedules() {
    same_words(Step::Act(Action::RestoreSchedules {
        cluster: SRC,
        names: vec!["daily".into()],
    }));
}

#[test]
fn create_snapshot() {
    same_words(Step::Act(Action::CreateSnapshot {
        cluster: SRC,
        namespace: "my-app".into(),
        name: "rel1-shutdown-abc123".into(),
        application: "my-app".into(),
        app_vault: "src-vault".into(),
        shutdown: true,
    }));
}

#[test]
fn create_amr() {
    same_words(Step::Act(Action::CreateAmr {
        cluster: DST,
        namespace: "my-app-dr".into(),
        name: "rel1".into(),
        spec: Box::default(),
        annotations: Default::default(),
    }));
}

#[test]
fn set_desired_state() {
    same_words(Step::Act(Action::SetDesiredState {
        cluster: DST,
        namespace: "my-app-dr".into(),
        name: "rel1".into(),
        desired: DesiredState::Promoted,
        promoted_snapshot: None,
        discard_destination_changes: false,
    }));
}

#[test]
fn delete_amr() {
    same_words(Step::Act(Action::DeleteAmr {
        cluster: DST,
        namespace: "my-app-dr".into(),
        name: "rel1".into(),
        uid: "u".into(),
    }));
}

#[test]
fn record_destination_app() {
    same_words(Step::Act(Action::RecordDestinationApp {
        cluster: DST,
        namespace: "my-app-dr".into(),
        name: "my-app".into(),
        found_by: FoundBy::StatusRef,
    }));
}

#[test]
fn wait_amr_state() {
    same_words(Step::Wait(WaitFor::AmrState {
        cluster: DST,
        namespace: "my-app-dr".into(),
        name: "rel1".into(),
        state: "Established".into(),
    }));
}

#[test]
fn wait_snapshot_completed() {
    same_words(Step::Wait(WaitFor::SnapshotCompleted {
        cluster: SRC,
        namespace: "my-app".into(),
        name: "rel1-initial".into(),
        shutdown: false,
    }));
}

#[test]
fn wait_amr_gone() {
    same_words(Step::Wait(WaitFor::AmrGone {
        cluster: DST,
        namespace: "my-app-dr".into(),
        name: "rel1".into(),
    }));
}

#[test]
fn done() {
    same_words(Step::Done(Outcome {
        message: "rel1 is set up".into(),
        amr_cluster: Some(DST),
    }));
}
