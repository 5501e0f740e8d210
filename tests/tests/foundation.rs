//! The foundation: real API servers, the project's CRDs, AppMirrorRelationships written the ways the product
//! writes them, unknown fields kept, identities and RBAC, and no process left behind.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tprotect_e2e::localenv::fixtures::example_amr;
use tprotect_e2e::{
    CrdSource, Identity, LocalEnv, LocalEnvOptions, TestbedOptions, eventually, processes_mentioning,
};

fn amr_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("protect.trident.netapp.io", "v1", "AppMirrorRelationship"),
        "appmirrorrelationships",
    )
}

/// The environment with nothing but its clusters: what this suite tests is the testbed under it.
async fn clusters(testbed: TestbedOptions) -> LocalEnv {
    LocalEnv::start(LocalEnvOptions {
        testbed,
        ..Default::default()
    })
    .await
    .expect("the testbed's clusters")
}

async fn create_namespace(client: &kube::Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    api.create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
}

/// The next object a watch reports (10 s at most).
async fn next_change(
    events: &mut (impl futures::Stream<Item = Result<DynamicObject, watcher::Error>> + Unpin),
) -> DynamicObject {
    tokio::time::timeout(Duration::from_secs(10), events.try_next())
        .await
        .expect("a change within 10 s")
        .expect("the watch")
        .expect("the watch goes on")
}

/// Patches AMR rel1 with `patch`, then returns it as the watch `events` next reports it.
async fn patch_and_watch<P: serde::Serialize + std::fmt::Debug>(
    api: &Api<DynamicObject>,
    events: &mut (impl futures::Stream<Item = Result<DynamicObject, watcher::Error>> + Unpin),
    params: &PatchParams,
    patch: &Patch<P>,
) -> DynamicObject {
    api.patch("rel1", params, patch).await.unwrap();
    next_change(events).await
}

#[tokio::test]
async fn amr_create_read_merge_patch_apply_and_watch_on_a_real_api_server() {
    let env = clusters(TestbedOptions::default()).await;
    let testbed = &env.testbed;
    let client = testbed.destination.client.clone();
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "20"),
        "a real 1.20 API server"
    );
    create_namespace(&client, "my-app").await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "my-app", &amr_resource());

    let created: DynamicObject = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(example_amr("rel1", "my-app")).unwrap(),
        )
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    let read = api.get("rel1").await.unwrap();
    assert_eq!(read.data["spec"]["sourceApplicationName"], "my-app");

    // Watch from the current version, then change desiredState twice: by merge patch and by server-side apply.
    let mut events = watcher(
        api.clone(),
        watcher::Config::default().fields("metadata.name=rel1"),
    )
    .applied_objects()
    .boxed();
    let first = next_change(&mut events).await;
    assert_eq!(first.data["spec"]["desiredState"], "Established");

    let merge = Patch::Merge(json!({"spec": {"desiredState": "Promoted"}}));
    let seen = patch_and_watch(&api, &mut events, &PatchParams::default(), &merge).await;
    assert_eq!(
        seen.data["spec"]["desiredState"], "Promoted",
        "the watch saw the merge patch"
    );

    let apply = json!({
        "apiVersion": "protect.trident.netapp.io/v1", "kind": "AppMirrorRelationship",
        "metadata": {"name": "rel1"}, "spec": {"desiredState": "Established"}
    });
    let params = PatchParams::apply("kubectl-tprotect").force();
    let seen = patch_and_watch(&api, &mut events, &params, &Patch::Apply(&apply)).await;
    assert_eq!(
        seen.data["spec"]["desiredState"], "Established",
        "the watch saw the server-side apply"
    );
    assert_eq!(
        seen.data["spec"]["storageClassName"], "sc-vsim-2",
        "apply of one field kept the others"
    );
    let managers: Vec<String> = seen
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.iter().any(|m| m == "kubectl-tprotect"),
        "field manager recorded: {managers:?}"
    );

    // Status is a subresource: a status patch changes status and nothing else.
    api.patch_status(
        "rel1",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"state": "Established", "conditions": []}})),
    )
    .await
    .unwrap();
    assert_eq!(
        api.get("rel1").await.unwrap().data["status"]["state"],
        "Established"
    );
}

/// NetApp's CRD knows `spec.transformations`; a future CRD (simulated by adding `spec.storageClassMapping` to
/// NetApp's 26.05 schema in memory) knows more. Changing desiredState the way the product does must keep both.
#[tokio::test]
async fn unknown_fields_survive_a_desired_state_change_with_netapp_crds() {
    let Some(netapp) = tprotect_testbed::netapp_crd_dir() else {
        panic!(
            "NetApp's CRDs are required for this test: expected ../shared/trident-protect/chart-26.05 (or set TPROTECT_SHARED_DIR)"
        );
    };
    let env = clusters(TestbedOptions {
        crds: CrdSource::NetApp,
        ..Default::default()
    })
    .await;
    let testbed = &env.testbed;
    let client = testbed.destination.client.clone();

    // Simulate the next chart version: NetApp's AMR CRD plus one property our types have never heard of.
    let mut crds =
        tprotect_testbed::read_crds(&[netapp.join("protect.trident.netapp.io_appmirrorrelationships.yaml")])
            .unwrap();
    let mut crd = serde_json::to_value(crds.remove(0)).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["storageClassMapping"] = json!({
        "type": "array",
        "items": {"type": "object", "properties": {"source": {"type": "string"}, "destination": {"type": "string"}}}
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("amr-next.yaml");
    std::fs::write(&file, serde_json::to_string(&crd).unwrap()).unwrap();
    tprotect_testbed::install_crds(&client, &[file]).await.unwrap();

    create_namespace(&client, "my-app").await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "my-app", &amr_resource());
    let mut object = example_amr("rel1", "my-app");
    object["spec"]["transformations"] = json!([{
        "resource": {"kind": "ConfigMap", "name": "settings"},
        "operations": [{"op": "replace", "path": "/data/mode", "value": {"nested": ["kept", 1, true]}}]
    }]);
    object["spec"]["storageClassMapping"] = json!([{"source": "gold", "destination": "silver"}]);
    api.create(
        &PostParams::default(),
        &serde_json::from_value(object.clone()).unwrap(),
    )
    .await
    .unwrap();
    let before = api.get("rel1").await.unwrap();
    assert_eq!(
        before.data["spec"]["transformations"], object["spec"]["transformations"],
        "the API server kept it"
    );

    // The product changes desiredState with a merge patch of the one field it owns.
    let patch = json!({"spec": {"desiredState": "Promoted"}});
    api.patch("rel1", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let after = api.get("rel1").await.unwrap();
    assert_eq!(after.data["spec"]["desiredState"], "Promoted");
    assert_eq!(
        after.data["spec"]["transformations"],
        object["spec"]["transformations"]
    );
    assert_eq!(
        after.data["spec"]["storageClassMapping"],
        object["spec"]["storageClassMapping"]
    );
}

#[tokio::test]
async fn identities_contexts_rbac_and_audit_log() {
    let env = clusters(TestbedOptions::default()).await;
    let testbed = &env.testbed;
    // One kubeconfig, a context per cluster and identity, usable by kubectl.
    for cluster in [&testbed.source, &testbed.destination] {
        let output = tprotect_testbed::run_ok(testbed.kubectl(&cluster.context).args([
            "get",
            "ns",
            "trident-protect",
            "-o",
            "name",
        ]));
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            "namespace/trident-protect"
        );
    }
    // The non-admin identity is denied; the controller identity is allowed.
    let viewer = testbed.source.client_as(Identity::Viewer).await.unwrap();
    let denied = Api::<DynamicObject>::namespaced_with(viewer, "default", &amr_resource())
        .list(&Default::default())
        .await;
    match denied {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("the viewer must be forbidden, got {other:?}"),
    }
    let controller = testbed.source.client_as(Identity::Controller).await.unwrap();
    Api::<DynamicObject>::namespaced_with(controller, "default", &amr_resource())
        .list(&Default::default())
        .await
        .unwrap();

    // Every request is in the audit log with its user and user agent.
    let audit = std::fs::read_to_string(&testbed.source.audit_log).unwrap();
    let events: Vec<serde_json::Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        events
            .iter()
            .any(|e| e["user"]["username"] == "alice" && e["responseStatus"]["code"] == 403)
    );
    assert!(
        events
            .iter()
            .any(|e| e["user"]["username"] == Identity::Controller.username())
    );
    assert!(
        events.iter().all(|e| e["stage"] != "RequestReceived"),
        "one event per request"
    );
}

#[tokio::test]
async fn an_api_server_can_be_stopped_and_started_again_keeping_its_data() {
    let env = clusters(TestbedOptions::default()).await;
    let testbed = &env.testbed;
    let client = testbed.source.client.clone();
    create_namespace(&client, "kept").await;
    testbed.source.stop_apiserver();
    assert!(!testbed.source.apiserver_running());
    let api: Api<Namespace> = Api::all(client.clone());
    assert!(
        api.get("kept").await.is_err(),
        "the stopped cluster is unreachable"
    );
    // The other cluster is unaffected.
    Api::<Namespace>::all(testbed.destination.client.clone())
        .get("default")
        .await
        .unwrap();
    testbed.source.start_apiserver().await.unwrap();
    assert_eq!(
        api.get("kept").await.unwrap().metadata.name.as_deref(),
        Some("kept")
    );
}

#[tokio::test]
async fn namespace_deletion_completes_with_the_controller_manager() {
    let env = clusters(TestbedOptions::default()).await;
    let testbed = &env.testbed;
    let api: Api<Namespace> = Api::all(testbed.destination.client.clone());
    create_namespace(&testbed.destination.client, "doomed").await;
    api.delete("doomed", &Default::default()).await.unwrap();
    eventually("the namespace deleted, not left Terminating", async || {
        api.get_opt("doomed").await.unwrap().is_none().then_some(())
    })
    .await
    .unwrap();
}

/// Runs the victim binary, which starts a testbed and then dies as told; returns the run dir and cluster pids.
fn run_victim(mode: &str) -> (String, Vec<u32>, std::process::Child) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_testbed-victim"))
        .arg(mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let dir = lines.next().expect("victim printed its run dir").unwrap();
    let pids = lines.next().expect("victim printed its pids").unwrap();
    let pids: Vec<u32> = pids.split(',').filter_map(|p| p.parse().ok()).collect();
    assert!(
        pids.len() >= 4,
        "two API servers and two controller managers: {pids:?}"
    );
    assert!(
        !processes_mentioning(&dir).is_empty(),
        "the victim's clusters are running"
    );
    (dir, pids, child)
}

fn assert_all_gone(dir: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = processes_mentioning(dir);
        if left.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "processes left behind: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn no_cluster_process_outlives_a_test_that_panics() {
    let (dir, _pids, mut child) = run_victim("panic");
    let status = child.wait().unwrap();
    assert!(!status.success(), "the victim panicked");
    assert_all_gone(&dir);
    assert!(!std::path::Path::new(&dir).exists(), "run directory removed");
}

#[test]
fn no_cluster_process_outlives_a_test_that_is_killed() {
    let (dir, _pids, mut child) = run_victim("hang");
    child.kill().unwrap(); // SIGKILL: no destructor runs; the kernel's parent-death signal must do it.
    child.wait().unwrap();
    assert_all_gone(&dir);
}
