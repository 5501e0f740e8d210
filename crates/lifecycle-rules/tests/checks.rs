//! `kubectl tprotect check`, table-driven without a cluster: each check passing and failing (or a warning, or not
//! verified), from an Established relationship with one thing changed per case.

mod fixtures;

use fixtures::*;
use jiff::Timestamp;
use tprotect_lifecycle_rules::checks::{CheckItem, Level, WebhookProbe, Webhooks, preflight};
use tprotect_lifecycle_rules::*;

fn answering() -> Webhooks {
    ClusterKey::BOTH
        .into_iter()
        .map(|k| {
            (
                k,
                WebhookProbe::Answers {
                    configurations: vec!["tprotect-webhook".into()],
                },
            )
        })
        .collect()
}

fn cluster(observed: &mut Observed, key: ClusterKey) -> &mut ClusterState {
    match observed.cluster_mut(key) {
        Reach::Reachable(state) => state,
        Reach::Unreachable { .. } => panic!("unreachable in the fixture"),
    }
}

fn amr_mut(observed: &mut Observed) -> &mut AmrView {
    cluster(observed, DST).amr.as_mut().expect("the AMR")
}

type Change = fn(&mut Observed, &mut Webhooks);

/// (what, the change, the item whose name contains this, its level)
const CASES: &[(&str, Change, &str, Level)] = &[
    (
        "all well: reachable",
        |_, _| {},
        "cluster src reachable",
        Level::Passed,
    ),
    (
        "source down",
        |o, _| cut_off(o, SRC, "connection refused"),
        "cluster src reachable",
        Level::Failed,
    ),
    (
        "all well: AMR found",
        |_, _| {},
        "AppMirrorRelationship found",
        Level::Passed,
    ),
    (
        "no AMR",
        |o, _| cluster(o, DST).amr = None,
        "AppMirrorRelationship found",
        Level::Failed,
    ),
    (
        "AMR failed (any spelling)",
        |o, _| amr_mut(o).status.get_or_insert_default().state = Some("error".into()),
        "AppMirrorRelationship not failed",
        Level::Failed,
    ),
    (
        "AMR reports an error once Established",
        |o, _| amr_mut(o).status.get_or_insert_default().error = Some("volume busy".into()),
        "AppMirrorRelationship without error",
        Level::Failed,
    ),
    (
        "AMR reports an error while establishing (it may be progress)",
        |o, _| {
            let status = amr_mut(o).status.get_or_insert_default();
            status.state = Some("Establishing".into());
            status.error = Some("baseline transfer 40% done".into());
        },
        "AppMirrorRelationship without error",
        Level::Warning,
    ),
    (
        "all well: destination vault",
        |_, _| {},
        "destination AppVault trident-protect/dst-vault",
        Level::Passed,
    ),
    (
        "destination vault in Error",
        |o, _| cluster(o, DST).vaults.get_mut("dst-vault").unwrap().state = "Error".into(),
        "destination AppVault trident-protect/dst-vault",
        Level::Failed,
    ),
    (
        "destination vault state in lower case is still Available",
        |o, _| cluster(o, DST).vaults.get_mut("dst-vault").unwrap().state = "available".into(),
        "destination AppVault trident-protect/dst-vault",
        Level::Passed,
    ),
    (
        "the source vault's copy is gone",
        |o, _| {
            cluster(o, DST).vaults.remove("src-vault");
        },
        "source AppVault (copy on the destination)",
        Level::Failed,
    ),
    (
        "the source vault is gone",
        |o, _| {
            cluster(o, SRC).vaults.remove("src-vault");
        },
        "source AppVault trident-protect/src-vault on src",
        Level::Failed,
    ),
    (
        "all well: Secret",
        |_, _| {},
        "Secret trident-protect/src-creds on src",
        Level::Passed,
    ),
    (
        "Secret gone",
        |o, _| {
            cluster(o, SRC).secrets.remove("src-creds");
        },
        "Secret trident-protect/src-creds on src",
        Level::Failed,
    ),
    (
        "Secret without the key the vault needs",
        |o, _| {
            cluster(o, SRC).secrets.get_mut("src-creds").unwrap().keys.clear();
        },
        "Secret trident-protect/src-creds on src",
        Level::Failed,
    ),
    (
        "Secrets not readable (viewer role)",
        |o, _| cluster(o, SRC).secrets_unreadable = Some("forbidden".into()),
        "Secret trident-protect/src-creds on src",
        Level::NotVerified,
    ),
    (
        "all well: storage class",
        |_, _| {},
        "StorageClass silver on dst",
        Level::Passed,
    ),
    (
        "storage class gone",
        |o, _| cluster(o, DST).storage_classes.clear(),
        "StorageClass silver on dst",
        Level::Failed,
    ),
    (
        "storage class for a reversal gone",
        |o, _| cluster(o, SRC).storage_classes.clear(),
        "StorageClass gold on src (for a reversal)",
        Level::Failed,
    ),
    (
        "all well: source application",
        |_, _| {},
        "source Application my-app on src",
        Level::Passed,
    ),
    (
        "source application re-created (other uid)",
        |o, _| cluster(o, SRC).applications[0].uid = "another".into(),
        "source Application my-app on src",
        Level::Failed,
    ),
    (
        "source application gone",
        |o, _| cluster(o, SRC).applications.clear(),
        "source Application my-app on src",
        Level::Failed,
    ),
    (
        "all well: replication schedule",
        |_, _| {},
        "replication Schedule of my-app on src: my-app/appmirror-schedule-rel1",
        Level::Passed,
    ),
    (
        "replication schedule keeps backups",
        |o, _| {
            let s = cluster(o, SRC)
                .schedules
                .iter_mut()
                .find(|s| s.is_replication())
                .unwrap();
            s.spec.backup_retention = Some("1".into());
        },
        "replication Schedule of my-app on src: my-app/appmirror-schedule-rel1",
        Level::Failed,
    ),
    (
        "replication schedule gone",
        |o, _| cluster(o, SRC).schedules.retain(|s| !s.is_replication()),
        "replication Schedule of my-app on src",
        Level::Failed,
    ),
    (
        "all well: nothing scheduled on the destination",
        |_, _| {},
        "no Schedules on the destination dst",
        Level::Passed,
    ),
    (
        "a schedule left on the destination",
        |o, _| {
            cluster(o, DST)
                .schedules
                .push(schedule("my-app-dr", "hourly", "my-app", false))
        },
        "no Schedules on the destination dst",
        Level::Failed,
    ),
    (
        "webhook answers",
        |_, _| {},
        "tprotect webhook on dst",
        Level::Passed,
    ),
    (
        "webhook not installed",
        |_, w| {
            w.insert(DST, WebhookProbe::Absent);
        },
        "tprotect webhook on dst",
        Level::Warning,
    ),
    (
        "webhook registered but not answering",
        |_, w| {
            w.insert(
                DST,
                WebhookProbe::NotAnswering {
                    configurations: vec!["tprotect-webhook".into()],
                    error: "failed calling webhook".into(),
                },
            );
        },
        "tprotect webhook on dst",
        Level::Failed,
    ),
    (
        "webhook registered but accepts what it must refuse",
        |_, w| {
            w.insert(
                DST,
                WebhookProbe::Unexpected {
                    configurations: vec!["tprotect-webhook".into()],
                    outcome: "accepted".into(),
                },
            );
        },
        "tprotect webhook on dst",
        Level::Failed,
    ),
    (
        "webhook cannot be asked (permissions)",
        |_, w| {
            w.insert(DST, WebhookProbe::NotVerified("forbidden".into()));
        },
        "tprotect webhook on dst",
        Level::NotVerified,
    ),
    (
        "an operation in progress",
        |o, _| {
            o.record = tprotect_lifecycle_rules::record::begin_record(o, Operation::Failback, "abc123", "t");
        },
        "no operation in progress",
        Level::Failed,
    ),
];

#[test]
fn each_check_passes_and_fails_as_the_relationship_does() {
    let base = established();
    for (what, change, item, level) in CASES {
        let mut observed = base.clone();
        let mut webhooks = answering();
        change(&mut observed, &mut webhooks);
        let items = preflight(&observed, &webhooks, Timestamp::now());
        let found: Vec<&CheckItem> = items.iter().filter(|i| i.name.contains(item)).collect();
        assert!(!found.is_empty(), "{what}: no item {item:?} in {items:#?}");
        assert!(
            found.iter().any(|i| i.level == *level),
            "{what}: {item:?} is {:?}, expected {level:?}: {items:#?}",
            found.iter().map(|i| (i.level, &i.detail)).collect::<Vec<_>>()
        );
        if *level == Level::Failed {
            let failed = items
                .iter()
                .find(|i| i.name.contains(item) && i.level == Level::Failed)
                .unwrap();
            assert!(!failed.detail.is_empty(), "{what}: a failure says why");
        }
    }
    assert!(CASES.len() >= 20, "{} cases", CASES.len());
}

#[test]
fn an_established_relationship_with_its_webhook_passes_every_check() {
    let items = preflight(&established(), &answering(), Timestamp::now());
    let not_passed: Vec<&CheckItem> = items.iter().filter(|i| i.level != Level::Passed).collect();
    assert!(not_passed.is_empty(), "{not_passed:#?}");
    assert!(items.len() >= 14, "{items:#?}");
}
