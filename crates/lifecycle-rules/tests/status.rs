//! `kubectl tprotect status`, table-driven without a cluster: every state, lag against the RPO, an unreachable
//! peer, an operation in progress, and how each shows in the view and its health.

mod fixtures;

use fixtures::*;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tprotect_api::{AppMirrorRelationshipStatus, DesiredState, LastTransfer, LastTransferredSnapshot};
use tprotect_lifecycle_rules::record::begin_record;
use tprotect_lifecycle_rules::status::{StatusView, status_view};
use tprotect_lifecycle_rules::*;

fn now() -> Timestamp {
    "2026-12-02T12:00:00Z".parse().unwrap()
}

fn ago(seconds: i64) -> Time {
    Time(now() - SignedDuration::from_secs(seconds))
}

fn amr_mut(observed: &mut Observed, key: ClusterKey) -> &mut AmrView {
    match observed.cluster_mut(key) {
        Reach::Reachable(state) => state.amr.as_mut().expect("the AMR"),
        Reach::Unreachable { .. } => panic!("unreachable"),
    }
}

fn status_mut(observed: &mut Observed) -> &mut AppMirrorRelationshipStatus {
    amr_mut(observed, DST).status.get_or_insert_default()
}

/// Established, with the last transfer `seconds` ago (the interval is 5 minutes).
fn transferred(seconds: i64) -> Observed {
    let mut observed = established();
    status_mut(&mut observed).last_transfer = Some(LastTransfer {
        completion_timestamp: Some(ago(seconds)),
        start_timestamp: Some(ago(seconds + 10)),
    });
    observed
}

/// Asserts that one of the view's health problems mentions `word`.
#[track_caller]
fn assert_problem(view: &StatusView, word: &str) {
    assert!(
        view.health.problems.iter().any(|p| p.contains(word)),
        "no problem mentions {word:?}: {:?}",
        view.health
    );
}

type Check = fn(&StatusView);
type Change = fn() -> Observed;

const CASES: &[(&str, Change, Check)] = &[
    (
        "established and within its RPO",
        || transferred(120),
        |v| {
            assert_eq!(v.rpo, "ok");
            assert_eq!(v.lag_seconds, Some(120));
            assert_eq!(v.interval_seconds, Some(300));
            assert!(v.health.healthy, "{:?}", v.health);
            assert!(v.failover_possible, "{}", v.failover);
        },
    ),
    (
        "one transfer late is still ok (one may be running)",
        || transferred(599),
        |v| {
            assert_eq!(v.rpo, "ok");
            assert!(v.health.healthy);
        },
    ),
    (
        "behind its RPO",
        || transferred(601),
        |v| {
            assert_eq!(v.rpo, "behind");
            assert!(!v.health.healthy);
            assert_problem(v, "behind its RPO");
        },
    ),
    ("no transfer yet", established, |v| {
        assert_eq!(v.rpo, "unknown");
        assert_eq!(v.lag_seconds, None);
        assert_problem(v, "no transfer");
    }),
    (
        "the later of lastTransfer and lastTransferredSnapshot counts",
        || {
            let mut o = transferred(900);
            status_mut(&mut o).last_transferred_snapshot = Some(LastTransferredSnapshot {
                completion_timestamp: Some(ago(60)),
                name: Some("snap-2".into()),
            });
            o
        },
        |v| {
            assert_eq!(v.lag_seconds, Some(60));
            assert_eq!(v.last_transferred_snapshot.as_deref(), Some("snap-2"));
            assert_eq!(v.rpo, "ok");
        },
    ),
    (
        "an unreadable recurrence rule",
        || {
            let mut o = transferred(60);
            amr_mut(&mut o, DST).spec.recurrence_rule = Some("FREQ=SOMETIMES".into());
            o
        },
        |v| {
            assert_eq!(v.rpo, "unknown");
            assert_eq!(v.interval_seconds, None);
            assert!(!v.health.healthy);
        },
    ),
    (
        "establishing",
        || {
            let mut o = transferred(60);
            status_mut(&mut o).state = Some("Establishing".into());
            o
        },
        |v| {
            assert_eq!(v.amr.as_ref().unwrap().state, "Establishing");
            assert_problem(v, "not Established");
            assert!(v.failover_possible, "it has transferred: {}", v.failover);
        },
    ),
    ("failed over", failed_over, |v| {
        assert_eq!(v.rpo, "", "nothing replicates while failed over");
        assert!(!v.failover_possible);
        assert_eq!(v.failover, "already failed over");
        assert_problem(v, "failed over");
        let app = v
            .destination_application
            .as_ref()
            .expect("the promoted application");
        assert_eq!(
            (app.namespace.as_str(), app.name.as_str()),
            ("my-app-dr", "my-app")
        );
    }),
    (
        "promoted application found by namespace/name",
        || {
            let mut o = failed_over();
            status_mut(&mut o).destination_application_ref = Some("my-app-dr/my-app".into());
            o
        },
        |v| assert!(v.destination_application.is_some()),
    ),
    (
        "promoted application found although the reference is absent",
        || {
            let mut o = failed_over();
            status_mut(&mut o).destination_application_ref = None;
            o
        },
        |v| assert!(v.destination_application.is_some()),
    ),
    (
        "promoting",
        || {
            let mut o = transferred(60);
            amr_mut(&mut o, DST).spec.desired_state = Some(DesiredState::Promoted);
            status_mut(&mut o).state = Some("Promoting".into());
            o
        },
        |v| {
            assert!(!v.failover_possible);
            assert_eq!(v.failover, "a failover is already under way");
            assert!(
                v.destination_application.is_none(),
                "none until the promotion ends"
            );
        },
    ),
    (
        "failed (any spelling)",
        || {
            let mut o = transferred(60);
            status_mut(&mut o).state = Some("Error".into());
            status_mut(&mut o).error = Some("SnapMirror broken".into());
            o
        },
        |v| {
            assert!(!v.failover_possible);
            assert!(v.failover.contains("SnapMirror broken"), "{}", v.failover);
            assert_problem(v, "Error");
        },
    ),
    (
        "an error reported while established",
        || {
            let mut o = transferred(60);
            status_mut(&mut o).error = Some("transient".into());
            o
        },
        |v| {
            assert_eq!(v.amr.as_ref().unwrap().error.as_deref(), Some("transient"));
            assert!(!v.health.healthy);
        },
    ),
    (
        "the source cluster unreachable",
        || {
            let mut o = transferred(60);
            cut_off(&mut o, SRC, "connection refused");
            o
        },
        |v| {
            let src = v.clusters.iter().find(|c| c.context == "src").unwrap();
            assert!(!src.reachable);
            assert_eq!(src.error.as_deref(), Some("connection refused"));
            assert!(v.source_application.is_none());
            assert!(
                v.failover_possible,
                "a failover works without the source: {}",
                v.failover
            );
            assert_problem(v, "unreachable");
        },
    ),
    (
        "the destination unreachable: no AMR seen",
        || {
            let mut o = transferred(60);
            cut_off(&mut o, DST, "timeout");
            o
        },
        |v| {
            assert!(v.amr.is_none());
            assert!(!v.failover_possible);
            assert!(v.clusters.iter().all(|c| c.role == "unknown"), "{:?}", v.clusters);
        },
    ),
    (
        "a resync in progress (started with --no-wait)",
        || {
            let mut o = failed_over();
            o.record = begin_record(&o, Operation::Resync, "abc123", "2026-12-02T11:59:00Z");
            amr_mut(&mut o, DST).spec.desired_state = Some(DesiredState::Established);
            status_mut(&mut o).state = Some("Establishing".into());
            o
        },
        |v| {
            let op = v.operation_in_progress.as_ref().expect("shown");
            assert_eq!((op.operation.as_str(), op.finished), ("resync", false));
            assert!(!v.failover_possible, "not while a resync runs: {}", v.failover);
            assert!(v.failover.contains("resync"), "{}", v.failover);
            assert_problem(v, "resync");
        },
    ),
    (
        "a resync that finished on the clusters, its record left",
        || {
            let mut o = transferred(60);
            o.record = begin_record(&o, Operation::Resync, "abc123", "t");
            o
        },
        |v| {
            let op = v.operation_in_progress.as_ref().expect("shown");
            assert!(op.finished);
            assert!(v.failover_possible, "{}", v.failover);
            assert!(v.health.healthy, "{:?}", v.health);
        },
    ),
    (
        "schedules left on the destination",
        || {
            let mut o = transferred(60);
            if let Reach::Reachable(dst) = o.cluster_mut(DST) {
                dst.schedules
                    .push(schedule("my-app-dr", "hourly", "my-app", false));
            }
            o
        },
        |v| {
            assert_eq!(v.schedules_on_destination, ["my-app-dr/hourly"]);
            assert!(!v.health.healthy);
        },
    ),
    (
        "roles and vaults per cluster",
        || transferred(60),
        |v| {
            let dst = v.clusters.iter().find(|c| c.context == "dst").unwrap();
            assert_eq!(dst.role, "destination");
            assert_eq!(dst.vaults.get("dst-vault").map(String::as_str), Some("Available"));
            let src = v.clusters.iter().find(|c| c.context == "src").unwrap();
            assert_eq!(src.role, "source");
            assert_eq!(src.vaults.get("dst-vault").map(String::as_str), Some("missing"));
        },
    ),
];

#[test]
fn every_state_lag_unreachable_peer_and_operation_in_progress() {
    for (what, observed, check) in CASES {
        let view = status_view(&observed(), now());
        let result = std::panic::catch_unwind(|| check(&view));
        assert!(result.is_ok(), "{what}: {view:#?}");
    }
    assert!(CASES.len() >= 15, "{} cases", CASES.len());
}
