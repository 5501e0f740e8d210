//! Serde behaviour of the typed model: seed 003's example objects round-trip, partial objects serialise to
//! exactly what is set, and the known hazards (unknown fields, wrong enum case) behave as documented.

use serde_json::{Value, json};
use tprotect_api::{
    AppMirrorRelationship, AppMirrorRelationshipSpec, AppVault, DesiredState, Granularity, Schedule,
    ShutdownSnapshot, Snapshot,
};

// The example objects of seed 003 ("Replicate applications using NetApp SnapMirror and Trident protect"). The
// seed's `granularity: custom` is wrong (the enum is case-sensitive):
// `seed_schedule_with_lowercase_custom_is_rejected` keeps that fact.
#[path = "seed-003/examples.rs"]
mod seed;
use seed::{
    AMR as SEED_AMR, SCHEDULE_AS_PRINTED as SEED_SCHEDULE_AS_PRINTED,
    SHUTDOWN_SNAPSHOT as SEED_SHUTDOWN_SNAPSHOT,
};

/// Parses `yaml` into `T`, serialises it back, and checks the JSON equals the YAML's: nothing lost, nothing
/// (no `null`, no default) added.
fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(yaml: &str) -> T {
    let typed: T = serde_norway::from_str(yaml).expect("typed parse");
    let expected: Value = serde_norway::from_str(yaml).expect("untyped parse");
    assert_eq!(serde_json::to_value(&typed).expect("serialise"), expected);
    typed
}

#[test]
fn seed_amr_round_trips_and_reads_typed() {
    let amr: AppMirrorRelationship = round_trip(SEED_AMR);
    assert_eq!(amr.spec.desired_state, Some(DesiredState::Established));
    assert_eq!(
        amr.spec.source_application_uid.as_deref(),
        Some("7498d32c-328e-4ddd-9029-122540866aeb")
    );
    assert_eq!(
        amr.spec.recurrence_rule.as_deref(),
        Some("DTSTART:20220101T000200Z\nRRULE:FREQ=MINUTELY;INTERVAL=5")
    );
    assert_eq!(amr.source_namespaces(), ["my-app-namespace"]);
    assert_eq!(amr.destination_namespaces(), ["my-app-namespace"]);
    assert_eq!(amr.state(), None);
}

#[test]
fn seed_schedule_with_custom_granularity_round_trips() {
    let corrected = SEED_SCHEDULE_AS_PRINTED.replace("granularity: custom", "granularity: Custom");
    let schedule: Schedule = round_trip(&corrected);
    assert_eq!(schedule.spec.granularity, Some(Granularity::Custom));
    assert_eq!(schedule.spec.backup_retention.as_deref(), Some("0"));
    assert_eq!(schedule.spec.snapshot_retention.as_deref(), Some("2"));
    assert!(schedule.is_enabled());
}

#[test]
fn seed_schedule_with_lowercase_custom_is_rejected() {
    let err = serde_norway::from_str::<Schedule>(SEED_SCHEDULE_AS_PRINTED)
        .expect_err("granularity is case-sensitive");
    assert!(err.to_string().contains("custom"), "{err}");
}

#[test]
fn seed_shutdown_snapshot_round_trips() {
    let snapshot: ShutdownSnapshot = round_trip(SEED_SHUTDOWN_SNAPSHOT);
    assert_eq!(snapshot.spec.application_ref.as_deref(), Some("my-app-name"));
    assert!(snapshot.status.is_none());
}

#[test]
fn amr_with_only_desired_state_serialises_to_exactly_that() {
    let spec = AppMirrorRelationshipSpec {
        desired_state: Some(DesiredState::Promoted),
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_value(&spec).unwrap(),
        json!({ "desiredState": "Promoted" })
    );

    // The whole object as a merge-patch body: metadata is empty, status absent, no nulls anywhere.
    let mut amr = AppMirrorRelationship::new("rel1", spec);
    amr.metadata = Default::default();
    assert_eq!(
        serde_json::to_value(&amr).unwrap(),
        json!({
            "apiVersion": "protect.trident.netapp.io/v1",
            "kind": "AppMirrorRelationship",
            "metadata": {},
            "spec": { "desiredState": "Promoted" }
        })
    );
}

#[test]
fn amr_status_with_conditions_and_timestamps_round_trips() {
    let yaml = r#"
apiVersion: protect.trident.netapp.io/v1
kind: AppMirrorRelationship
metadata: {name: rel1, namespace: app}
spec:
  desiredState: Promoted
  promotedSnapshot: 20250107122548_bboxdrlastsnap_5fa90108
status:
  state: Promoted
  error: ""
  conditions:
  - type: Ready
    status: "True"
    reason: Promoted
    message: the application runs on the destination
    lastTransitionTime: "2025-01-07T12:30:00Z"
    observedGeneration: 3
  destinationApplicationRef: my-app-name
  destinationNamespaces: [app]
  lastTransfer: {startTimestamp: "2025-01-07T12:25:00Z", completionTimestamp: "2025-01-07T12:26:00Z"}
  lastTransferredSnapshot: {name: snap-1, completionTimestamp: "2025-01-07T12:26:00Z"}
"#;
    let amr: AppMirrorRelationship = round_trip(yaml);
    assert_eq!(amr.state(), Some(tprotect_api::AMR_STATE_PROMOTED));
    assert_eq!(amr.error(), Some(""));
    assert_eq!(
        amr.status.unwrap().conditions.unwrap()[0].observed_generation,
        Some(3)
    );
}

#[test]
fn snapshot_status_round_trips_and_gives_the_archive_basename() {
    let yaml = r#"
apiVersion: protect.trident.netapp.io/v1
kind: Snapshot
metadata: {name: snap-1, namespace: app}
spec: {applicationRef: my-app-name, appVaultRef: vault, reclaimPolicy: Retain}
status:
  state: Completed
  appArchivePath: my-app-name_7498d32c/snapshots/20250107122548_bboxdrlastsnap_5fa90108
  completionTimestamp: "2025-01-07T12:26:00Z"
  restoreSize: 1073741824
  volumeInfos:
  - pvcName: data
    pvcUID: 0b7c
    capacity: {allocated: 2048, used: 1024}
  vmSnapshotProgress:
  - vmName: vm1
    vmNamespace: app
    podName: virt-launcher-vm1
    podUID: 11aa
    pvcNames: [disk0]
    frozen: true
    unfrozen: true
  preSnapshotExecHooksRunResults:
  - containerImage: busybox
    containerName: c
    execHookRef: hook
    execHookUID: 22bb
    namespace: app
    podName: p
    podUID: 33cc
    failures: [{isExecError: true, isTimeout: false, exitCode: 2, timeoutMinutes: 25}]
"#;
    let snapshot: Snapshot = round_trip(yaml);
    assert_eq!(snapshot.state(), Some(tprotect_api::SNAPSHOT_STATE_COMPLETED));
    let status = snapshot.status.unwrap();
    assert_eq!(
        status.archive_basename(),
        Some("20250107122548_bboxdrlastsnap_5fa90108")
    );
    assert_eq!(
        status.volume_infos.unwrap()[0].capacity.as_ref().unwrap().used,
        Some(1024)
    );
}

#[test]
fn app_vault_round_trips_and_lists_its_credential_secrets() {
    let yaml = r#"
apiVersion: protect.trident.netapp.io/v1
kind: AppVault
metadata: {name: vault, namespace: trident-protect}
spec:
  providerType: GenericS3
  providerConfig:
    s3: {bucketName: b, endpoint: "s3.example:443", secure: "true", skipCertValidation: "false", useIAM: false}
  providerCredentials:
    accessKeyID: {valueFromSecret: {name: s3-creds, key: accessKeyID}}
    secretAccessKey: {valueFromSecret: {name: s3-creds, key: secretAccessKey}}
status: {state: Available, uid: abc}
"#;
    let vault: AppVault = round_trip(yaml);
    assert_eq!(vault.credential_secret_names(), ["s3-creds"]);
    assert_eq!(vault.state(), Some(tprotect_api::APP_VAULT_STATE_AVAILABLE));
    let secure = vault.spec.provider_config.unwrap().s3.unwrap().secure.unwrap();
    assert!(bool::from(secure));
}

#[test]
fn transformation_values_keep_any_json() {
    let yaml = r#"
apiVersion: protect.trident.netapp.io/v1
kind: AppMirrorRelationship
metadata: {name: rel1}
spec:
  transformations:
  - resource: {kind: Deployment, group: apps, version: v1}
    operations:
    - {op: replace, path: /spec/replicas, value: 0}
    - {op: add, path: /metadata/labels, value: {a: "1", nested: [true, null, 2.5]}}
    - {op: remove, path: /spec/paused}
    - {op: add, path: /spec/x, value: null}
  transformationsRef: {kind: ResourceTransformationClusterRule, name: rule}
"#;
    round_trip::<AppMirrorRelationship>(yaml);
}

#[test]
fn typed_reads_drop_unknown_fields_so_never_write_them_back_whole() {
    // The hazard the crate documents: NetApp may add spec fields (26.06 adds storageClassMapping). A typed
    // read loses them, which is why writes must be merge patches or server-side applies of owned fields.
    let yaml = SEED_AMR.replace(
        "  storageClassName: sc-vsim-2",
        "  storageClassName: sc-vsim-2\n  storageClassMapping: []",
    );
    let amr: AppMirrorRelationship = serde_norway::from_str(&yaml).unwrap();
    let written = serde_json::to_value(&amr).unwrap();
    assert!(written["spec"].get("storageClassMapping").is_none());
    assert_eq!(written["spec"]["storageClassName"], "sc-vsim-2");
}

#[test]
fn constants_agree_with_the_types() {
    use kube_core::Resource;
    assert_eq!(AppMirrorRelationship::api_version(&()), tprotect_api::API_VERSION);
    assert_eq!(AppMirrorRelationship::group(&()), tprotect_api::GROUP);
    assert_eq!(Schedule::version(&()), tprotect_api::VERSION);
    assert_eq!(
        format!("{}/{}", tprotect_api::GROUP, tprotect_api::VERSION),
        tprotect_api::API_VERSION
    );
    assert_eq!(
        tprotect_api::TRIDENT_CONTROLLER_USERNAME,
        format!(
            "system:serviceaccount:{}:trident-protect-controller-manager",
            tprotect_api::TRIDENT_PROTECT_NAMESPACE
        )
    );
    assert_eq!(
        DesiredState::Promoted.to_string(),
        tprotect_api::AMR_STATE_PROMOTED
    );
    assert_eq!(
        DesiredState::Established.as_str(),
        tprotect_api::AMR_STATE_ESTABLISHED
    );
}
