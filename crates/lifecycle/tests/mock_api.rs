//! The lock and the executor against scripted API servers (tower-test mocks): each test lists the exact requests
//! it expects — method, path, query, body — and the answers, so what is sent (only owned fields, the right
//! preconditions, the resourceVersion on takeovers) is pinned down, including on 409s.

use std::collections::BTreeMap;
use std::pin::pin;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock;
use tprotect_api::{AppMirrorRelationshipSpec, DesiredState, NamespaceMapping};
use tprotect_lifecycle::error::RunError;
use tprotect_lifecycle::execute::{Executed, Executor};
use tprotect_lifecycle::lock::{self, LockPlace, holder_identity};
use tprotect_lifecycle::{Action, ClusterHandle, ClusterKey, Clusters, Operation, OperationRecord};

/// One expected request and its answer.
struct Exchange {
    method: Method,
    /// Path without the query.
    path: String,
    /// Query pairs that must be present (others are allowed).
    query: Vec<(&'static str, &'static str)>,
    /// The exact JSON body, when it matters.
    body: Option<Value>,
    status: u16,
    response: Value,
}

fn exchange(method: Method, path: &str) -> Exchange {
    Exchange {
        method,
        path: path.to_string(),
        query: Vec::new(),
        body: None,
        status: 200,
        response: json!({}),
    }
}

impl Exchange {
    fn query(mut self, pairs: &[(&'static str, &'static str)]) -> Self {
        self.query = pairs.to_vec();
        self
    }
    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
    fn answer(mut self, status: u16, response: Value) -> Self {
        self.status = status;
        self.response = response;
        self
    }
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": format!("mock {reason}"),
        "reason": reason, "code": code})
}

type Handle = mock::Handle<Request<Body>, Response<Body>>;

/// Serves `script` in order on `handle`, asserting each request; then asserts nothing else is sent. Returns
/// the bodies received.
fn serve(handle: Handle, script: Vec<Exchange>) -> tokio::task::JoinHandle<Vec<Value>> {
    tokio::spawn(async move {
        let mut handle = pin!(handle);
        let mut bodies = Vec::new();
        for (i, expected) in script.into_iter().enumerate() {
            let (request, send) = handle
                .next_request()
                .await
                .unwrap_or_else(|| panic!("request {i} ({} {}) never came", expected.method, expected.path));
            let uri = request.uri().clone();
            assert_eq!(request.method(), expected.method, "request {i}: {uri}");
            assert_eq!(uri.path(), expected.path, "request {i}");
            let query: Vec<(String, String)> = uri
                .query()
                .unwrap_or_default()
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (k.to_string(), v.to_string())
                })
                .collect();
            for (k, v) in &expected.query {
                assert!(
                    query.iter().any(|(qk, qv)| qk == k && qv == v),
                    "request {i} {uri}: query lacks {k}={v}"
                );
            }
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            };
            if let Some(want) = &expected.body {
                assert_eq!(&body, want, "request {i}: {} {uri}", expected.method);
            }
            bodies.push(body);
            let response = Response::builder()
                .status(StatusCode::from_u16(expected.status).unwrap())
                .body(Body::from(serde_json::to_vec(&expected.response).unwrap()))
                .unwrap();
            send.send_response(response);
        }
        if let Some((request, _)) = handle.next_request().await {
            panic!("unexpected request {} {}", request.method(), request.uri());
        }
        bodies
    })
}

/// Two clusters over mock services: `context` and `peer`.
fn clusters() -> (Clusters, Handle, Handle) {
    let (context_service, context_handle) = mock::pair::<Request<Body>, Response<Body>>();
    let (peer_service, peer_handle) = mock::pair::<Request<Body>, Response<Body>>();
    let clusters = Clusters::new(
        ClusterHandle::from_client("ctx-a", kube::Client::new(context_service, "default")),
        ClusterHandle::from_client("ctx-b", kube::Client::new(peer_service, "default")),
    );
    (clusters, context_handle, peer_handle)
}

/// Runs `act` on two mock clusters whose API servers answer the `context` and `peer` scripts (and nothing
/// else); returns what `act` returned and the bodies each server received.
async fn scripted<T>(
    context: Vec<Exchange>,
    peer: Vec<Exchange>,
    act: impl AsyncFnOnce(&Clusters) -> T,
) -> (T, Vec<Value>, Vec<Value>) {
    let (clusters, context_handle, peer_handle) = clusters();
    let context_server = serve(context_handle, context);
    let peer_server = serve(peer_handle, peer);
    let result = act(&clusters).await;
    drop(clusters);
    (result, context_server.await.unwrap(), peer_server.await.unwrap())
}

/// The operation record a Lease body carries in its annotation.
fn carried_record(lease: &Value) -> OperationRecord {
    let annotation = lease["metadata"]["annotations"]["tprotect.io/operation-record"]
        .as_str()
        .unwrap();
    serde_json::from_str(annotation).unwrap()
}

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/app1/leases";
const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/app1/leases/tprotect-rel1";

fn record() -> OperationRecord {
    OperationRecord {
        operation: Operation::Failback,
        id: "abc123".into(),
        initial_destination: "uid-of-kube-system".into(),
        amr_namespace: "app1".into(),
        spec: AppMirrorRelationshipSpec {
            desired_state: Some(DesiredState::Promoted),
            source_application_name: Some("app1".into()),
            ..Default::default()
        },
        annotations: BTreeMap::new(),
        started: "2026-01-01T00:00:00Z".into(),
        destination_apps: BTreeMap::new(),
    }
}

fn lease(holder: Option<&str>, renewed_ago_secs: i64, rv: &str, record: Option<&OperationRecord>) -> Value {
    let at = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(renewed_ago_secs))
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string();
    let mut annotations = serde_json::Map::new();
    if let Some(record) = record {
        annotations.insert(
            "tprotect.io/operation-record".into(),
            json!(serde_json::to_string(record).unwrap()),
        );
    }
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "tprotect-rel1", "namespace": "app1", "uid": "lease-uid", "resourceVersion": rv,
            "labels": {"tprotect.io/relationship": "rel1"}, "annotations": annotations},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 30, "acquireTime": at, "renewTime": at}})
}

/// The refusal of an acquire without a record, the Lease's cluster answering `script`.
async fn acquire_refused(script: Vec<Exchange>) -> RunError {
    let (refused, _, _) = scripted(script, vec![], async |clusters| {
        lock::acquire(clusters, "rel1", None, &place(), None)
            .await
            .unwrap_err()
    })
    .await;
    refused
}

fn place() -> LockPlace {
    LockPlace {
        cluster: ClusterKey::Context,
        namespace: "app1".into(),
    }
}

#[tokio::test]
async fn acquire_creates_the_lease_with_the_record_and_release_deletes_it_under_preconditions() {
    let created = lease(Some(&holder_identity()), 0, "5", Some(&record()));
    let script = vec![
        exchange(Method::POST, LEASES).answer(201, created),
        exchange(Method::DELETE, LEASE).body(json!({
            "preconditions": {"uid": "lease-uid", "resourceVersion": "5"}
        })),
    ];
    let ((), bodies, _) = scripted(script, vec![], async |clusters| {
        let guard = lock::acquire(clusters, "rel1", None, &place(), Some(record()))
            .await
            .unwrap();
        assert!(guard.created_record);
        assert_eq!(guard.record().await, Some(record()));
        guard.release().await.unwrap();
    })
    .await;
    let sent = &bodies[0];
    assert_eq!(sent["metadata"]["name"], "tprotect-rel1");
    assert_eq!(
        sent["metadata"]["labels"],
        json!({"tprotect.io/relationship": "rel1"})
    );
    assert_eq!(sent["spec"]["holderIdentity"], json!(holder_identity()));
    assert_eq!(sent["spec"]["leaseDurationSeconds"], 30);
    assert!(sent["spec"]["acquireTime"].is_string() && sent["spec"]["renewTime"].is_string());
    assert_eq!(carried_record(sent), record());
}

#[tokio::test]
async fn a_live_holder_elsewhere_refuses_with_who_since_and_when_it_expires() {
    let script = vec![
        exchange(Method::POST, LEASES).answer(409, status(409, "AlreadyExists")),
        exchange(Method::GET, LEASE).answer(200, lease(Some("alice@host/pid 42"), 3, "9", Some(&record()))),
    ];
    let refused = acquire_refused(script).await;
    let RunError::Locked {
        holder, by, cluster, ..
    } = &refused
    else {
        panic!("{refused:?}")
    };
    assert_eq!(holder, "alice@host/pid 42");
    assert_eq!(by, ", by a failback");
    assert_eq!(cluster, "ctx-a");
    let text = refused.to_string();
    assert!(
        text.starts_with("relationship rel1 is locked by alice@host/pid 42 since 20")
            && text.contains("by a failback")
            && text.contains("; wait or run it again after 20"),
        "{text}"
    );
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_with_its_resource_version_and_its_record_resumed() {
    let expired = lease(Some("alice@host/pid 42"), 120, "7", Some(&record()));
    let mut taken = lease(Some(&holder_identity()), 0, "8", Some(&record()));
    taken["metadata"]["resourceVersion"] = json!("8");
    let script = vec![
        exchange(Method::POST, LEASES).answer(409, status(409, "AlreadyExists")),
        exchange(Method::GET, LEASE).answer(200, expired),
        exchange(Method::PUT, LEASE).answer(200, taken),
    ];
    // A new record is offered, but the Lease's own (an interrupted failback) is the one resumed.
    let mut other = record();
    other.id = "zzz999".into();
    let ((), bodies, _) = scripted(script, vec![], async |clusters| {
        let guard = lock::acquire(clusters, "rel1", None, &place(), Some(other))
            .await
            .unwrap();
        assert!(!guard.created_record);
        assert_eq!(guard.record().await, Some(record()));
    })
    .await;
    let update = &bodies[2];
    assert_eq!(
        update["metadata"]["resourceVersion"], "7",
        "optimistic: the version read"
    );
    assert_eq!(update["spec"]["holderIdentity"], json!(holder_identity()));
    assert_eq!(update["spec"]["leaseTransitions"], 1);
    assert_eq!(carried_record(update), record());
}

#[tokio::test]
async fn a_takeover_that_loses_the_race_reads_again_and_refuses() {
    let script = vec![
        exchange(Method::POST, LEASES).answer(409, status(409, "AlreadyExists")),
        exchange(Method::GET, LEASE).answer(200, lease(Some("alice@host/pid 42"), 120, "7", None)),
        exchange(Method::PUT, LEASE).answer(409, status(409, "Conflict")),
        exchange(Method::GET, LEASE).answer(200, lease(Some("bob@other/pid 7"), 0, "8", None)),
    ];
    let refused = acquire_refused(script).await;
    assert!(
        matches!(&refused, RunError::Locked { holder, .. } if holder == "bob@other/pid 7"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn an_existing_lease_found_on_the_peer_is_taken_where_it_is() {
    let free = lease(None, 300, "3", Some(&record()));
    let info = lock::LeaseInfo::from_lease(ClusterKey::Peer, &serde_json::from_value(free.clone()).unwrap())
        .unwrap();
    let peer_script = vec![
        exchange(Method::GET, LEASE).answer(200, free),
        exchange(Method::PUT, LEASE).answer(200, lease(Some(&holder_identity()), 0, "4", Some(&record()))),
        // Released after a failure: the record stays, the holder goes.
        exchange(Method::PATCH, LEASE).body(json!({
            "metadata": {"resourceVersion": "4"},
            "spec": {"holderIdentity": null, "renewTime": null, "acquireTime": null}
        })),
    ];
    scripted(vec![], peer_script, async |clusters| {
        let guard = lock::acquire(clusters, "rel1", Some(&info), &place(), None)
            .await
            .unwrap();
        assert_eq!(guard.location().0, "ctx-b");
        guard.release_keep_record().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_record_update_that_finds_another_holder_reports_the_lock_lost() {
    let mut updated = record();
    updated
        .destination_apps
        .insert("uid-of-kube-system".into(), "app1".into());
    let script = vec![
        exchange(Method::POST, LEASES).answer(201, lease(Some(&holder_identity()), 0, "5", Some(&record()))),
        exchange(Method::PATCH, LEASE)
            .body(json!({"metadata": {"resourceVersion": "5", "annotations": {
                "tprotect.io/operation-record": serde_json::to_string(&updated).unwrap()}}}))
            .answer(409, status(409, "Conflict")),
        exchange(Method::GET, LEASE).answer(200, lease(Some("mallory@x/pid 1"), 0, "6", Some(&record()))),
    ];
    scripted(script, vec![], async |clusters| {
        let guard = lock::acquire(clusters, "rel1", None, &place(), Some(record()))
            .await
            .unwrap();
        let lost = guard.set_record(updated).await.unwrap_err();
        assert!(
            matches!(&lost, RunError::LostLock { reason, .. } if reason.contains("mallory")),
            "{lost:?}"
        );
        assert!(guard.check().await.is_err(), "and stays lost");
    })
    .await;
}

// ---------------------------------------------------------------------------------------------------------------
// The executor.

const AMRS: &str = "/apis/protect.trident.netapp.io/v1/namespaces/app1/appmirrorrelationships";
const SCHEDULES: &str = "/apis/protect.trident.netapp.io/v1/namespaces/app1/schedules";

async fn execute(
    action: Action,
    dry_run: bool,
    context: Vec<Exchange>,
    peer: Vec<Exchange>,
) -> (Executed, Vec<Value>, Vec<Value>) {
    scripted(context, peer, async |clusters| {
        Executor::new(clusters, "rel1", dry_run)
            .execute(&action)
            .await
            .unwrap()
    })
    .await
}

#[tokio::test]
async fn a_resync_is_one_merge_patch_of_the_desired_state_the_cleared_snapshot_and_the_discard_annotation() {
    let action = Action::SetDesiredState {
        cluster: ClusterKey::Context,
        namespace: "app1".into(),
        name: "rel1".into(),
        desired: DesiredState::Established,
        promoted_snapshot: None,
        discard_destination_changes: true,
    };
    let patch = exchange(Method::PATCH, &format!("{AMRS}/rel1"))
        .query(&[("fieldManager", "kubectl-tprotect")])
        .body(json!({
            "metadata": {"annotations": {"tprotect.io/discard-destination-changes": "true"}},
            "spec": {"desiredState": "Established", "promotedSnapshot": null}
        }));
    let (result, _, _) = execute(action, false, vec![patch], vec![]).await;
    assert_eq!(result, Executed::Applied);
}

#[tokio::test]
async fn a_planned_failover_patches_only_state_and_snapshot_and_a_server_dry_run_says_so() {
    let action = Action::SetDesiredState {
        cluster: ClusterKey::Peer,
        namespace: "app1".into(),
        name: "rel1".into(),
        desired: DesiredState::Promoted,
        promoted_snapshot: Some("20250107122548_bboxdrlastsnap_5fa90108".into()),
        discard_destination_changes: false,
    };
    let patch = exchange(Method::PATCH, &format!("{AMRS}/rel1"))
        .query(&[("fieldManager", "kubectl-tprotect"), ("dryRun", "All")])
        .body(json!({
            "spec": {"desiredState": "Promoted", "promotedSnapshot": "20250107122548_bboxdrlastsnap_5fa90108"}
        }));
    let (result, _, _) = execute(action, true, vec![], vec![patch]).await;
    assert_eq!(result, Executed::Applied);
}

#[tokio::test]
async fn disabling_a_schedule_patches_enabled_and_marks_it() {
    let action = Action::DisableSchedule {
        cluster: ClusterKey::Context,
        namespace: "app1".into(),
        name: "daily".into(),
    };
    let patch = exchange(Method::PATCH, &format!("{SCHEDULES}/daily")).body(
        json!({"metadata": {"annotations": {"tprotect.io/disabled-by": "rel1"}}, "spec": {"enabled": false}}),
    );
    let (result, _, _) = execute(action, false, vec![patch], vec![]).await;
    assert_eq!(result, Executed::Applied);
}

#[tokio::test]
async fn the_replication_schedule_is_created_exactly_and_an_existing_one_is_done() {
    let action = Action::CreateReplicationSchedule {
        cluster: ClusterKey::Context,
        namespace: "app1".into(),
        name: "appmirror-schedule-rel1".into(),
        application: "app1".into(),
        app_vault: "src-vault".into(),
        recurrence_rule: "DTSTART:20250101T000000Z\nRRULE:FREQ=MINUTELY;INTERVAL=5".into(),
    };
    let create = exchange(Method::POST, SCHEDULES)
        .query(&[("fieldManager", "kubectl-tprotect")])
        .body(json!({
            "apiVersion": "protect.trident.netapp.io/v1", "kind": "Schedule",
            "metadata": {"name": "appmirror-schedule-rel1", "namespace": "app1",
                "labels": {"tprotect.io/relationship": "rel1", "tprotect.io/replication-schedule": "true"}},
            "spec": {"applicationRef": "app1", "appVaultRef": "src-vault", "granularity": "Custom",
                "backupRetention": "0", "snapshotRetention": "2", "enabled": true,
                "recurrenceRule": "DTSTART:20250101T000000Z\nRRULE:FREQ=MINUTELY;INTERVAL=5"}
        }))
        .answer(409, status(409, "AlreadyExists"));
    let (result, _, _) = execute(action, false, vec![create], vec![]).await;
    assert_eq!(result, Executed::AlreadyDone);
}

#[tokio::test]
async fn the_amr_is_created_with_only_the_planned_spec_our_label_and_annotations() {
    let spec = AppMirrorRelationshipSpec {
        desired_state: Some(DesiredState::Established),
        destination_app_vault_ref: Some("dst-vault".into()),
        source_app_vault_ref: Some("src-vault".into()),
        source_application_name: Some("app1".into()),
        source_application_uid: Some("uid-1".into()),
        recurrence_rule: Some("DTSTART:20250101T000000Z\nRRULE:FREQ=MINUTELY;INTERVAL=5".into()),
        namespace_mapping: Some(vec![NamespaceMapping {
            source: "app1".into(),
            destination: "app1".into(),
        }]),
        ..Default::default()
    };
    let action = Action::CreateAmr {
        cluster: ClusterKey::Peer,
        namespace: "app1".into(),
        name: "rel1".into(),
        spec: Box::new(spec),
        annotations: [("tprotect.io/peer-storage-class".to_string(), "gold".to_string())].into(),
    };
    let create = exchange(Method::POST, AMRS).body(json!({
        "apiVersion": "protect.trident.netapp.io/v1", "kind": "AppMirrorRelationship",
        "metadata": {"name": "rel1", "namespace": "app1", "labels": {"tprotect.io/relationship": "rel1"},
            "annotations": {"tprotect.io/peer-storage-class": "gold"}},
        "spec": {"desiredState": "Established", "destinationAppVaultRef": "dst-vault",
            "sourceAppVaultRef": "src-vault", "sourceApplicationName": "app1", "sourceApplicationUID": "uid-1",
            "recurrenceRule": "DTSTART:20250101T000000Z\nRRULE:FREQ=MINUTELY;INTERVAL=5",
            "namespaceMapping": [{"source": "app1", "destination": "app1"}]}
    }));
    let (result, _, _) = execute(action, false, vec![], vec![create.answer(201, json!({}))]).await;
    assert_eq!(result, Executed::Applied);
}

#[tokio::test]
async fn deleting_the_amr_carries_its_uid_as_a_precondition_and_a_changed_uid_is_a_conflict() {
    let action = Action::DeleteAmr {
        cluster: ClusterKey::Context,
        namespace: "app1".into(),
        name: "rel1".into(),
        uid: "uid-amr".into(),
    };
    let delete = exchange(Method::DELETE, &format!("{AMRS}/rel1"))
        .body(json!({"preconditions": {"uid": "uid-amr"}}))
        .answer(409, status(409, "Conflict"));
    let (result, _, _) = execute(action, false, vec![delete], vec![]).await;
    assert!(matches!(result, Executed::Conflict(_)), "{result:?}");
}

#[tokio::test]
async fn an_app_vault_is_copied_with_its_spec_as_stored_unknown_fields_included_and_nothing_else() {
    let stored = json!({
        "apiVersion": "protect.trident.netapp.io/v1", "kind": "AppVault",
        "metadata": {"name": "src-vault", "namespace": "trident-protect", "uid": "u1", "resourceVersion": "42",
            "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"team": "storage"},
            "managedFields": [{"manager": "kubectl"}]},
        "spec": {"providerType": "GenericS3", "futureField": {"nested": [1, 2]},
            "providerConfig": {"s3": {"bucketName": "b", "endpoint": "e", "newKnob": "x"}},
            "providerCredentials": {"accessKeyID": {"valueFromSecret": {"name": "creds", "key": "accessKeyID"}}}},
        "status": {"state": "Available", "uid": "vault-uid"}
    });
    let action = Action::CopyAppVault {
        from: ClusterKey::Context,
        to: ClusterKey::Peer,
        name: "src-vault".into(),
    };
    let get = exchange(
        Method::GET,
        "/apis/protect.trident.netapp.io/v1/namespaces/trident-protect/appvaults/src-vault",
    )
    .answer(200, stored.clone());
    let create = exchange(
        Method::POST,
        "/apis/protect.trident.netapp.io/v1/namespaces/trident-protect/appvaults",
    )
    .body(json!({
        "apiVersion": "protect.trident.netapp.io/v1", "kind": "AppVault",
        "metadata": {"name": "src-vault", "namespace": "trident-protect",
            "labels": {"team": "storage", "tprotect.io/relationship": "rel1"}},
        "spec": stored["spec"],
    }))
    .answer(201, json!({}));
    let (result, _, _) = execute(action, false, vec![get], vec![create]).await;
    assert_eq!(result, Executed::Applied);
}

#[tokio::test]
async fn a_secret_is_copied_with_its_data_type_and_labels_only() {
    let action = Action::CopySecret {
        from: ClusterKey::Peer,
        to: ClusterKey::Context,
        name: "creds".into(),
    };
    let get = exchange(Method::GET, "/api/v1/namespaces/trident-protect/secrets/creds").answer(
        200,
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "creds", "namespace": "trident-protect", "uid": "s1", "resourceVersion": "3",
                "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "y", "uid": "z"}]},
            "type": "Opaque", "data": {"accessKeyID": "QUtJQQ=="}}),
    );
    let create = exchange(Method::POST, "/api/v1/namespaces/trident-protect/secrets")
        .body(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "creds", "namespace": "trident-protect",
                "labels": {"tprotect.io/relationship": "rel1"}},
            "type": "Opaque", "data": {"accessKeyID": "QUtJQQ=="}}))
        .answer(201, json!({}));
    let (result, _, _) = execute(action, false, vec![create], vec![get]).await;
    assert_eq!(result, Executed::Applied);
}

#[tokio::test]
async fn destination_schedules_are_saved_before_they_are_deleted_and_replication_ones_are_not_saved() {
    let schedules = json!({"apiVersion": "protect.trident.netapp.io/v1", "kind": "ScheduleList",
    "metadata": {"resourceVersion": "10"},
    "items": [
        {"apiVersion": "protect.trident.netapp.io/v1", "kind": "Schedule",
         "metadata": {"name": "daily", "namespace": "app1", "uid": "s-daily", "labels": {"team": "db"},
             "annotations": {"tprotect.io/disabled-by": "rel1"}},
         "spec": {"applicationRef": "app1", "appVaultRef": "v", "granularity": "Daily",
             "backupRetention": "3", "snapshotRetention": "3", "enabled": false}},
        {"apiVersion": "protect.trident.netapp.io/v1", "kind": "Schedule",
         "metadata": {"name": "appmirror-schedule-rel1", "namespace": "app1", "uid": "s-repl"},
         "spec": {"applicationRef": "app1", "granularity": "Custom", "backupRetention": "0",
             "snapshotRetention": "2"}},
        {"apiVersion": "protect.trident.netapp.io/v1", "kind": "Schedule",
         "metadata": {"name": "not-listed", "namespace": "app1", "uid": "s-other"},
         "spec": {"applicationRef": "other"}}
    ]});
    let action = Action::RemoveDestinationSchedules {
        cluster: ClusterKey::Context,
        namespace: "app1".into(),
        names: vec!["daily".into(), "appmirror-schedule-rel1".into()],
    };
    let cm_path = "/api/v1/namespaces/trident-protect/configmaps";
    let script = vec![
        exchange(Method::GET, SCHEDULES).answer(200, schedules),
        exchange(Method::GET, &format!("{cm_path}/tprotect-saved-schedules-rel1"))
            .answer(404, status(404, "NotFound")),
        exchange(Method::POST, cm_path).answer(201, json!({})),
        exchange(Method::DELETE, &format!("{SCHEDULES}/daily"))
            .body(json!({"preconditions": {"uid": "s-daily"}})),
        exchange(Method::DELETE, &format!("{SCHEDULES}/appmirror-schedule-rel1"))
            .body(json!({"preconditions": {"uid": "s-repl"}})),
    ];
    let (result, bodies, _) = execute(action, false, script, vec![]).await;
    assert_eq!(result, Executed::Applied);
    let cm = &bodies[2];
    assert_eq!(
        cm["metadata"]["labels"],
        json!({"tprotect.io/relationship": "rel1"})
    );
    let saved: Value = serde_json::from_str(cm["data"]["schedules.json"].as_str().unwrap()).unwrap();
    assert_eq!(
        saved,
        json!({"schedules": [{"namespace": "app1", "name": "daily", "labels": {"team": "db"},
            "spec": {"applicationRef": "app1", "appVaultRef": "v", "granularity": "Daily",
                "backupRetention": "3", "snapshotRetention": "3", "enabled": false},
            "wasEnabled": true}]}),
        "only the protection schedule, remembered as enabled (we disabled it)"
    );
}

#[tokio::test]
async fn restored_schedules_are_created_enabled_as_they_were_then_leave_the_saved_list() {
    let saved = json!({"schedules": [
        {"namespace": "app1", "name": "daily", "labels": {"team": "db"},
         "spec": {"applicationRef": "app1", "granularity": "Daily", "backupRetention": "3",
             "snapshotRetention": "3", "enabled": false}, "wasEnabled": true},
        {"namespace": "app1", "name": "weekly", "labels": {},
         "spec": {"applicationRef": "app1", "granularity": "Weekly", "backupRetention": "1",
             "snapshotRetention": "1", "enabled": false}, "wasEnabled": false}
    ]});
    let cm = |rv: &str, saved: &Value| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "tprotect-saved-schedules-rel1", "namespace": "trident-protect", "uid": "cm",
                "resourceVersion": rv},
            "data": {"schedules.json": serde_json::to_string(saved).unwrap()}})
    };
    let cm_path = "/api/v1/namespaces/trident-protect/configmaps/tprotect-saved-schedules-rel1";
    let action = Action::RestoreSchedules {
        cluster: ClusterKey::Peer,
        names: vec!["daily".into()],
    };
    let script = vec![
        exchange(Method::GET, cm_path).answer(200, cm("20", &saved)),
        exchange(Method::POST, SCHEDULES)
            .body(
                json!({"apiVersion": "protect.trident.netapp.io/v1", "kind": "Schedule",
                "metadata": {"name": "daily", "namespace": "app1",
                    "labels": {"team": "db", "tprotect.io/relationship": "rel1"}},
                "spec": {"applicationRef": "app1", "granularity": "Daily", "backupRetention": "3",
                    "snapshotRetention": "3", "enabled": true}}),
            )
            .answer(201, json!({})),
        exchange(Method::GET, cm_path).answer(200, cm("20", &saved)),
        exchange(Method::PUT, cm_path).answer(409, status(409, "Conflict")),
        exchange(Method::GET, cm_path).answer(200, cm("21", &saved)),
        exchange(Method::PUT, cm_path).answer(200, json!({})),
    ];
    let (result, _, bodies) = execute(action, false, vec![], script).await;
    assert_eq!(result, Executed::Applied);
    let update = &bodies[5];
    assert_eq!(
        update["metadata"]["resourceVersion"], "21",
        "re-read after the conflict"
    );
    let left: Value = serde_json::from_str(update["data"]["schedules.json"].as_str().unwrap()).unwrap();
    let names: Vec<&str> = left["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["weekly"]);
}

#[tokio::test]
async fn a_release_that_finds_a_newer_version_of_our_own_lease_deletes_that_one() {
    let script = vec![
        exchange(Method::POST, LEASES).answer(201, lease(Some(&holder_identity()), 0, "5", None)),
        exchange(Method::DELETE, LEASE)
            .body(json!({"preconditions": {"uid": "lease-uid", "resourceVersion": "5"}}))
            .answer(409, status(409, "Conflict")),
        // A renewal landed meanwhile: still ours, at version 6.
        exchange(Method::GET, LEASE).answer(200, lease(Some(&holder_identity()), 0, "6", None)),
        exchange(Method::DELETE, LEASE)
            .body(json!({"preconditions": {"uid": "lease-uid", "resourceVersion": "6"}})),
    ];
    scripted(script, vec![], async |clusters| {
        let guard = lock::acquire(clusters, "rel1", None, &place(), None)
            .await
            .unwrap();
        guard.release().await.unwrap();
    })
    .await;
}
