//! The Trident protect stand-in controller on two real local clusters: every transition driven by editing the
//! custom resources with kubectl (as an operator following NetApp's guide would), its status and side effects
//! asserted on both clusters.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tprotect_api::{AppMirrorRelationship, AppVault, Application, Schedule, ShutdownSnapshot, Snapshot};
use tprotect_e2e::{CrdSource, Identity, Testbed, TestbedOptions};
use tprotect_standin::rules::amr::{
    CONDITION_DESTINATION_CHANGES_DISCARDED, CONDITION_ESTABLISHED, CONDITION_NAMESPACE_METADATA_MERGED,
    CONDITION_PROMOTED,
};
use tprotect_standin::{
    APPLICATION_SHUTDOWN_CONDITION, Faults, Kind, SCHEDULE_LABEL, StandIn, StandInConfig, StandInHandle,
    Transition,
};

const SRC: &str = "tprotect-source";
const DST: &str = "tprotect-destination";
const TP: &str = "trident-protect";
/// Generous: the machine is shared; waits end as soon as the condition holds.
const DEADLINE: Duration = Duration::from_secs(90);

struct World {
    testbed: Testbed,
    _standin: StandInHandle,
    faults: Faults,
}

impl World {
    async fn start(config: StandInConfig) -> World {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let started = Instant::now();
        let testbed = Testbed::start_with(TestbedOptions {
            crds: CrdSource::NetApp,
            controller_manager: false,
            ..Default::default()
        })
        .await
        .expect("testbed started (NetApp's CRDs are read from ../shared)");
        eprintln!("testbed up in {:.1}s", started.elapsed().as_secs_f64());
        let faults = config.faults.clone();
        let standin = StandIn::new(
            testbed.source.client_as(Identity::Controller).await.unwrap(),
            testbed.destination.client_as(Identity::Controller).await.unwrap(),
            StandInConfig {
                source_name: SRC.into(),
                destination_name: DST.into(),
                ..config
            },
        )
        .spawn();
        World {
            testbed,
            _standin: standin,
            faults,
        }
    }

    fn client(&self, context: &str) -> kube::Client {
        match context {
            SRC => self.testbed.source.client.clone(),
            DST => self.testbed.destination.client.clone(),
            other => panic!("no cluster {other}"),
        }
    }

    fn api<K>(&self, context: &str, namespace: &str) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client(context), namespace)
    }

    /// `kubectl <args>` on `context`, with `stdin`; panics unless it succeeds. Returns stdout.
    #[track_caller]
    fn kubectl(&self, context: &str, args: &[&str], stdin: &str) -> String {
        let mut child = self
            .testbed
            .kubectl(context)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "kubectl --context {context} {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    #[track_caller]
    fn apply(&self, context: &str, yaml: &str) {
        self.kubectl(context, &["apply", "-f", "-"], yaml);
    }

    /// `kubectl create` (no last-applied annotation: namespaces' annotations are asserted exactly).
    #[track_caller]
    fn create(&self, context: &str, yaml: &str) {
        self.kubectl(context, &["create", "-f", "-"], yaml);
    }

    #[track_caller]
    fn patch(&self, context: &str, namespace: &str, what: &str, patch: &str) {
        self.kubectl(
            context,
            &["patch", "-n", namespace, what, "--type", "merge", "-p", patch],
            "",
        );
    }
}

/// Waits (on a watch) until the object exists and `condition` holds; panics with the last state seen otherwise.
async fn wait_for<K>(api: &Api<K>, name: &str, what: &str, condition: impl Fn(&K) -> bool) -> K
where
    K: Resource + Clone + Debug + Send + DeserializeOwned + 'static,
{
    let started = Instant::now();
    let result = tokio::time::timeout(
        DEADLINE,
        kube::runtime::wait::await_condition(api.clone(), name, |o: Option<&K>| o.is_some_and(&condition)),
    )
    .await;
    match result {
        Ok(Ok(Some(object))) => {
            eprintln!("{name}: {what} after {:.2}s", started.elapsed().as_secs_f64());
            object
        }
        other => {
            let last = api.get_opt(name).await.ok().flatten();
            panic!("{name}: {what} did not happen within {DEADLINE:?} ({other:?}); last seen: {last:#?}")
        }
    }
}

/// Bounded polling for what a single watch cannot express (a count over several objects).
async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{what} did not happen within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

type StateAndError = (String, Option<String>);

/// Records every `status.state` (and `status.error`) an AMR passes through, from a watch started now.
struct StateLog {
    task: tokio::task::JoinHandle<()>,
    /// `(state, error)` in the order seen.
    seen: std::sync::Arc<std::sync::Mutex<Vec<StateAndError>>>,
}

impl StateLog {
    /// Starts watching, and returns once the watch has delivered the object's current state.
    async fn start(api: &Api<AppMirrorRelationship>, name: &str) -> StateLog {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let stream = watcher(
            api.clone(),
            watcher::Config::default().fields(&format!("metadata.name={name}")),
        )
        .applied_objects();
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Ok(Some(amr)) = stream.try_next().await {
                let entry = (
                    amr.state().unwrap_or_default().to_string(),
                    amr.error().map(str::to_string),
                );
                let mut log = log.lock().unwrap();
                if log.last() != Some(&entry) {
                    log.push(entry);
                }
            }
        });
        let log = StateLog { task, seen };
        eventually("the state log's first event", async || {
            (!log.states().is_empty()).then_some(())
        })
        .await;
        log
    }

    /// The states seen, consecutive duplicates removed.
    fn states(&self) -> Vec<String> {
        let mut states: Vec<String> = Vec::new();
        for (state, _) in self.seen.lock().unwrap().iter() {
            if states.last() != Some(state) {
                states.push(state.clone());
            }
        }
        states
    }

    /// The states seen once the log's own watch has delivered `last` (another watch may have seen it first).
    async fn states_until(&self, last: &str) -> Vec<String> {
        eventually(&format!("the state log reaching {last}"), async || {
            let states = self.states();
            (states.last().map(String::as_str) == Some(last)).then_some(states)
        })
        .await
    }

    fn errors(&self) -> Vec<Option<String>> {
        self.seen.lock().unwrap().iter().map(|(_, e)| e.clone()).collect()
    }
}

impl Drop for StateLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn condition<'a>(
    amr: &'a AppMirrorRelationship,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    amr.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn state_is(state: &'static str) -> impl Fn(&AppMirrorRelationship) -> bool {
    move |amr| amr.state() == Some(state)
}

// ---------------------------------------------------------------------------------------------- fixtures

fn secret(keys: &[&str]) -> String {
    let data: String = keys.iter().map(|k| format!("  {k}: dmFsdWU=\n")).collect();
    format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s3-creds\n  namespace: {TP}\ndata:\n{data}")
}

fn app_vault(name: &str) -> String {
    format!(
        "apiVersion: protect.trident.netapp.io/v1
kind: AppVault
metadata:
  name: {name}
  namespace: {TP}
spec:
  providerType: GenericS3
  providerConfig:
    s3:
      bucketName: {name}-bucket
      endpoint: s3.example.com
  providerCredentials:
    accessKeyID:
      valueFromSecret: {{name: s3-creds, key: accessKeyID}}
    secretAccessKey:
      valueFromSecret: {{name: s3-creds, key: secretAccessKey}}
"
    )
}

fn application(name: &str, namespace: &str) -> String {
    format!(
        "apiVersion: protect.trident.netapp.io/v1
kind: Application
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  includedNamespaces:
  - namespace: {namespace}
    labelSelector: {{matchLabels: {{tier: db}}}}
"
    )
}

fn snapshot(kind: &str, name: &str, namespace: &str, app: &str) -> String {
    format!(
        "apiVersion: protect.trident.netapp.io/v1
kind: {kind}
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{applicationRef: {app}, appVaultRef: src-vault}}
"
    )
}

/// The seed's worked example, before the operation.
const NS_1: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: ns-1
  labels: {environment: production, compliance: hipaa, name: ns-1}
  annotations: {annotation.one/key: updatedvalue, annotation.two/key: \"true\"}
";
const NS_2: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: ns-2
  labels: {role: database}
  annotations: {annotation.one/key: \"true\", annotation.three/key: \"false\"}
";

fn amr(name: &str, namespace: &str, source_namespace: &str, uid: &str) -> String {
    format!(
        "apiVersion: protect.trident.netapp.io/v1
kind: AppMirrorRelationship
metadata:
  name: {name}
  namespace: {namespace}
  labels: {{tprotect.io/relationship: {name}}}
spec:
  desiredState: Established
  destinationAppVaultRef: dst-vault
  sourceAppVaultRef: src-vault
  sourceApplicationName: my-app
  sourceApplicationUID: {uid}
  namespaceMapping:
  - {{source: {source_namespace}, destination: {namespace}}}
  recurrenceRule: |-
    DTSTART:20220101T000200Z
    RRULE:FREQ=MINUTELY;INTERVAL=5
  storageClassName: sc-vsim-2
"
    )
}

/// Source: ns-1 (seed labels), the source AppVault and its Secret, Application my-app, a Completed snapshot.
/// Destination: the Secret, both AppVaults, ns-2 (seed labels). Returns the source Application's uid.
async fn replication_prerequisites(world: &World) -> String {
    world.create(SRC, NS_1);
    world.create(DST, NS_2);
    for context in [SRC, DST] {
        world.apply(context, &secret(&["accessKeyID", "secretAccessKey"]));
        world.apply(context, &app_vault("src-vault"));
    }
    world.apply(DST, &app_vault("dst-vault"));
    world.apply(SRC, &application("my-app", "ns-1"));
    let app = wait_for(&world.api::<Application>(SRC, "ns-1"), "my-app", "exists", |_| {
        true
    })
    .await;
    app.metadata.uid.unwrap()
}

/// The source AppVault must be Available before a snapshot can complete.
async fn vault_available(world: &World, context: &str, name: &str) {
    wait_for(&world.api::<AppVault>(context, TP), name, "Available", |v| {
        v.state() == Some("Available")
    })
    .await;
}

async fn namespace_meta(
    client: kube::Client,
    name: &str,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let ns = Api::<Namespace>::all(client).get(name).await.unwrap();
    (
        ns.metadata.labels.unwrap_or_default(),
        ns.metadata.annotations.unwrap_or_default(),
    )
}

fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Audit events of `user` on `resource` (and `subresource`) of a cluster.
fn audit_events(
    cluster: &tprotect_testbed::Cluster,
    user: &str,
    resource: &str,
    subresource: Option<&str>,
) -> Vec<serde_json::Value> {
    std::fs::read_to_string(&cluster.audit_log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["user"]["username"] == user)
        .filter(|e| e["objectRef"]["resource"] == resource)
        .filter(|e| e["objectRef"]["subresource"].as_str() == subresource)
        .collect()
}

// ---------------------------------------------------------------------------------------------- tests

#[tokio::test]
async fn appvaults_snapshots_and_shutdown_snapshots() {
    let world = World::start(StandInConfig::default()).await;
    let vaults = world.api::<AppVault>(SRC, TP);

    // No Secret: Error naming it. Secret without one key: Error naming the key. Complete: Available.
    world.apply(SRC, &app_vault("src-vault"));
    let vault = wait_for(&vaults, "src-vault", "state Error", |v| {
        v.state() == Some("Error")
    })
    .await;
    let error = vault.status.unwrap().error.unwrap();
    assert!(
        error.contains(
            "Secret \"s3-creds\" not found in namespace \"trident-protect\" (providerCredentials.accessKeyID)"
        ),
        "{error}"
    );
    world.apply(SRC, &secret(&["accessKeyID"]));
    let vault = wait_for(&vaults, "src-vault", "error names the key", |v| {
        v.status
            .as_ref()
            .and_then(|s| s.error.as_deref())
            .is_some_and(|e| e.contains("has no key"))
    })
    .await;
    assert_eq!(
        vault.status.unwrap().error.unwrap(),
        "Secret \"s3-creds\" in namespace \"trident-protect\" has no key \"secretAccessKey\" \
         (providerCredentials.secretAccessKey)"
    );
    world.apply(SRC, &secret(&["accessKeyID", "secretAccessKey"]));
    let vault = wait_for(&vaults, "src-vault", "Available", |v| {
        v.state() == Some("Available")
    })
    .await;
    assert_eq!(vault.status.unwrap().error, None, "the error is cleared");
    // The other cluster is watched too.
    world.apply(DST, &secret(&["accessKeyID", "secretAccessKey"]));
    world.apply(DST, &app_vault("dst-vault"));
    vault_available(&world, DST, "dst-vault").await;

    // A Snapshot: Running, then Completed with the documented archive path.
    world.create(SRC, NS_1);
    world.apply(SRC, &application("my-app", "ns-1"));
    let app = wait_for(&world.api::<Application>(SRC, "ns-1"), "my-app", "exists", |_| {
        true
    })
    .await;
    let app_uid = app.metadata.uid.clone().unwrap();
    let snapshots = world.api::<Snapshot>(SRC, "ns-1");
    world.apply(SRC, &snapshot("Snapshot", "snap-1", "ns-1", "my-app"));
    wait_for(&snapshots, "snap-1", "Running", |s| s.state() == Some("Running")).await;
    let snap = wait_for(&snapshots, "snap-1", "Completed", |s| {
        s.state() == Some("Completed")
    })
    .await;
    let status = snap.status.clone().unwrap();
    let path = status.app_archive_path.clone().unwrap();
    let prefix = format!("my-app_{app_uid}/snapshots/");
    let suffix = format!("_snap-1_{}", snap.metadata.uid.clone().unwrap());
    assert!(path.starts_with(&prefix) && path.ends_with(&suffix), "{path}");
    let stamp = &path[prefix.len()..path.len() - suffix.len()];
    assert!(
        stamp.len() == 14 && stamp.bytes().all(|b| b.is_ascii_digit()),
        "yyyymmddhhmmss: {stamp}"
    );
    assert!(status.completion_timestamp.is_some());
    assert_eq!(status.app_vault_ref.as_deref(), Some("src-vault"));
    assert_eq!(status.error, None);
    let ready = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.observed_generation),
        ("True", Some(1))
    );

    // A Snapshot of a missing Application fails, naming it.
    world.apply(SRC, &snapshot("Snapshot", "snap-orphan", "ns-1", "no-such-app"));
    let orphan = wait_for(&snapshots, "snap-orphan", "Failed", |s| {
        s.state() == Some("Failed")
    })
    .await;
    assert_eq!(
        orphan.status.unwrap().error.as_deref(),
        Some("Application \"no-such-app\" not found in namespace \"ns-1\"")
    );

    // A ShutdownSnapshot completes the same way and records the shutdown on the Application first.
    world.apply(SRC, &snapshot("ShutdownSnapshot", "shutdown-1", "ns-1", "my-app"));
    let shutdown = wait_for(
        &world.api::<ShutdownSnapshot>(SRC, "ns-1"),
        "shutdown-1",
        "Completed",
        |s| s.state() == Some("Completed"),
    )
    .await;
    let basename = shutdown
        .status
        .as_ref()
        .unwrap()
        .archive_basename()
        .unwrap()
        .to_string();
    assert!(basename.contains("_shutdown-1_"), "{basename}");
    let app = world.api::<Application>(SRC, "ns-1").get("my-app").await.unwrap();
    let shut = app
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == APPLICATION_SHUTDOWN_CONDITION)
        .expect("the Application records the shutdown");
    assert_eq!(shut.status, "True");
    assert!(
        shut.message.contains("\"shutdown-1\"") && shut.message.contains(&basename),
        "{}",
        shut.message
    );
    // Nothing of this happened on the destination.
    assert!(
        world
            .api::<Snapshot>(DST, "ns-1")
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn schedules_snapshot_at_their_recurrence_and_prune_to_retention() {
    // 300x: a 5-minute recurrence every second.
    let world = World::start(StandInConfig {
        time_scale: 300.0,
        ..Default::default()
    })
    .await;
    world.apply(SRC, &secret(&["accessKeyID", "secretAccessKey"]));
    world.apply(SRC, &app_vault("src-vault"));
    world.create(SRC, NS_1);
    world.apply(SRC, &application("my-app", "ns-1"));
    let schedule = |name: &str, enabled: bool| {
        format!(
            "apiVersion: protect.trident.netapp.io/v1
kind: Schedule
metadata: {{name: {name}, namespace: ns-1}}
spec:
  applicationRef: my-app
  appVaultRef: src-vault
  backupRetention: \"0\"
  snapshotRetention: \"2\"
  enabled: {enabled}
  granularity: Custom
  recurrenceRule: |-
    DTSTART:20220101T000200Z
    RRULE:FREQ=MINUTELY;INTERVAL=5
"
        )
    };
    world.apply(SRC, &schedule("fast", true));
    world.apply(SRC, &schedule("paused", false));
    let snapshots = world.api::<Snapshot>(SRC, "ns-1");
    let owned_by = |name: &str| ListParams::default().labels(&format!("{SCHEDULE_LABEL}={name}"));
    let (fast_seen, fast_watch) = track(&snapshots, "fast");
    let (paused_seen, paused_watch) = track(&snapshots, "paused");
    let count = |seen: &Seen| seen.lock().unwrap().len();

    // Four occurrences later: only the retention is kept, the newest ones. Snapshots keep coming while
    // this looks, so the list is compared with what the watch had seen just before and just after it:
    // only a list taken while nothing new arrived says which ones pruning kept. Keeping the oldest (or
    // keeping too many) never satisfies this, and the wait fails.
    let kept = eventually("four scheduled snapshots, the newest two kept", async || {
        let before: Vec<String> = fast_seen.lock().unwrap().iter().cloned().collect();
        let mut kept: Vec<String> = snapshots
            .list(&owned_by("fast"))
            .await
            .ok()?
            .items
            .iter()
            .map(|s| s.name_any())
            .collect();
        let after: Vec<String> = fast_seen.lock().unwrap().iter().cloned().collect();
        kept.sort();
        // Names end in the snapshot's UTC timestamp, so the set's order is the order taken.
        let newest = before.get(before.len().saturating_sub(2)..)?;
        (before == after && before.len() >= 4 && kept == newest).then_some(kept)
    })
    .await;
    let fast = world.api::<Schedule>(SRC, "ns-1").get("fast").await.unwrap();
    for name in &kept {
        let snap = snapshots.get(name).await.unwrap();
        assert!(
            name.starts_with("fast-") && name.len() == "fast-".len() + 14,
            "{name}"
        );
        let owner = &snap.owner_references()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Schedule", "fast"));
        assert_eq!(owner.uid, fast.metadata.uid.clone().unwrap());
        assert_eq!(snap.spec.application_ref.as_deref(), Some("my-app"));
        assert_eq!(snap.spec.app_vault_ref.as_deref(), Some("src-vault"));
    }
    assert!(fast.status.unwrap().last_schedule_time.is_some());
    assert_eq!(count(&paused_seen), 0, "a disabled schedule takes no snapshot");

    // Swap: disable one, enable the other. Both changes come through one watch, in order, so once the
    // re-enabled schedule has taken a snapshot the stand-in has seen the other one disabled.
    world.patch(SRC, "ns-1", "schedule/fast", r#"{"spec":{"enabled":false}}"#);
    world.patch(SRC, "ns-1", "schedule/paused", r#"{"spec":{"enabled":true}}"#);
    eventually("the re-enabled schedule's first snapshot", async || {
        (count(&paused_seen) >= 1).then_some(())
    })
    .await;
    let cut = count(&fast_seen);
    eventually("three more occurrences", async || {
        (count(&paused_seen) >= 4).then_some(())
    })
    .await;
    assert_eq!(
        count(&fast_seen),
        cut,
        "the disabled schedule took no more snapshots"
    );
    fast_watch.abort();
    paused_watch.abort();
}

type Seen = std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>;

/// Every Snapshot of a schedule ever created, from a watch.
fn track(snapshots: &Api<Snapshot>, schedule: &str) -> (Seen, tokio::task::JoinHandle<()>) {
    let seen = Seen::default();
    let log = seen.clone();
    let stream = watcher(
        snapshots.clone(),
        watcher::Config::default().labels(&format!("{SCHEDULE_LABEL}={schedule}")),
    )
    .applied_objects();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Ok(Some(snapshot)) = stream.try_next().await {
            log.lock().unwrap().insert(snapshot.name_any());
        }
    });
    (seen, task)
}

#[tokio::test]
async fn relationship_establish_transfer_promote_resync_and_delete() {
    let world = World::start(StandInConfig {
        time_scale: 300.0,
        ..Default::default()
    })
    .await;
    let amrs = world.api::<AppMirrorRelationship>(DST, "ns-2");

    // The AMR first, before anything it needs: Establishing, with every missing piece named.
    world.create(SRC, NS_1);
    world.create(DST, NS_2);
    world.apply(
        DST,
        &amr("rel1", "ns-2", "ns-1", "7498d32c-328e-4ddd-9029-122540866aeb"),
    );
    let blocked = wait_for(&amrs, "rel1", "an error naming what is missing", |a| {
        a.error().is_some_and(|e| e.contains("destination AppVault"))
    })
    .await;
    assert_eq!(
        blocked.state(),
        Some("Establishing"),
        "the state does not advance"
    );
    assert_eq!(
        blocked.error().unwrap(),
        "source Application \"my-app\" not found in namespace \"ns-1\" on cluster \"tprotect-source\"; \
         source AppVault \"src-vault\" not found in namespace \"trident-protect\" on cluster \"tprotect-source\"; \
         source AppVault \"src-vault\" not found in namespace \"trident-protect\" on cluster \"tprotect-destination\"; \
         destination AppVault \"dst-vault\" not found in namespace \"trident-protect\" on cluster \"tprotect-destination\""
    );
    assert_eq!(
        condition(&blocked, CONDITION_ESTABLISHED).unwrap().reason,
        "PrerequisitesMissing"
    );

    // Everything but the right uid: the error says so.
    for context in [SRC, DST] {
        world.apply(context, &secret(&["accessKeyID", "secretAccessKey"]));
        world.apply(context, &app_vault("src-vault"));
    }
    world.apply(DST, &app_vault("dst-vault"));
    world.apply(SRC, &application("my-app", "ns-1"));
    let app = wait_for(&world.api::<Application>(SRC, "ns-1"), "my-app", "exists", |_| {
        true
    })
    .await;
    let uid = app.metadata.uid.clone().unwrap();
    let mismatch = wait_for(&amrs, "rel1", "only the uid mismatch left", |a| {
        a.error()
            .is_some_and(|e| e.contains("has uid") && !e.contains("AppVault"))
    })
    .await;
    assert_eq!(
        mismatch.error().unwrap(),
        format!(
            "source Application \"my-app\" in namespace \"ns-1\" on cluster \"tprotect-source\" has uid \"{uid}\", \
             not sourceApplicationUID \"7498d32c-328e-4ddd-9029-122540866aeb\""
        )
    );
    assert_eq!(mismatch.state(), Some("Establishing"));

    // A Completed snapshot on the source for the transfers to carry; then the right uid: Established.
    vault_available(&world, SRC, "src-vault").await;
    world.apply(SRC, &snapshot("Snapshot", "snap-1", "ns-1", "my-app"));
    wait_for(&world.api::<Snapshot>(SRC, "ns-1"), "snap-1", "Completed", |s| {
        s.state() == Some("Completed")
    })
    .await;
    world.patch(
        DST,
        "ns-2",
        "amr/rel1",
        &format!(r#"{{"spec":{{"sourceApplicationUID":"{uid}"}}}}"#),
    );
    let established = wait_for(&amrs, "rel1", "Established", state_is("Established")).await;
    let status = established.status.clone().unwrap();
    assert_eq!(status.error, None);
    assert_eq!(status.destination_namespaces, Some(vec!["ns-2".to_string()]));
    assert_eq!(
        condition(&established, CONDITION_ESTABLISHED).unwrap().status,
        "True"
    );
    assert_eq!(
        status.last_transferred_snapshot.as_ref().unwrap().name.as_deref(),
        Some("snap-1")
    );

    // Transfers at each recurrence (every second at 300x).
    let first = status.last_transfer.unwrap().start_timestamp.unwrap();
    let advanced = wait_for(&amrs, "rel1", "a later transfer", |a| {
        let start = a
            .status
            .as_ref()
            .and_then(|s| s.last_transfer.as_ref())
            .and_then(|t| t.start_timestamp.clone());
        start.is_some_and(|s| s > first)
    })
    .await;
    let transfer = advanced.status.unwrap().last_transfer.unwrap();
    assert!(transfer.completion_timestamp.unwrap() >= transfer.start_timestamp.unwrap());

    // Fail over: Promoting, then Promoted; the destination app; the seed's namespace example, exactly.
    let log = StateLog::start(&amrs, "rel1").await;
    world.patch(DST, "ns-2", "amr/rel1", r#"{"spec":{"desiredState":"Promoted"}}"#);
    let promoted = wait_for(&amrs, "rel1", "Promoted", state_is("Promoted")).await;
    let states = log.states_until("Promoted").await;
    assert_eq!(
        states.iter().rev().take(2).rev().collect::<Vec<_>>(),
        ["Promoting", "Promoted"],
        "{states:?}"
    );
    assert_eq!(
        promoted
            .status
            .as_ref()
            .unwrap()
            .destination_application_ref
            .as_deref(),
        Some("my-app")
    );
    assert_eq!(condition(&promoted, CONDITION_PROMOTED).unwrap().status, "True");
    assert_eq!(
        condition(&promoted, CONDITION_NAMESPACE_METADATA_MERGED)
            .unwrap()
            .status,
        "True"
    );
    let dest_app = world
        .api::<Application>(DST, "ns-2")
        .get("my-app")
        .await
        .expect("destination Application");
    let included = dest_app.spec.included_namespaces.clone().unwrap();
    assert_eq!(included.len(), 1);
    assert_eq!(included[0].namespace, "ns-2");
    assert_eq!(
        included[0].label_selector.as_ref().unwrap().match_labels,
        Some(map(&[("tier", "db")])),
        "the source's selector"
    );
    assert_eq!(
        dest_app
            .labels()
            .get("tprotect.io/relationship")
            .map(String::as_str),
        Some("rel1")
    );
    assert!(dest_app.owner_references().is_empty(), "independent of the AMR");
    let (labels, annotations) = namespace_meta(world.client(DST), "ns-2").await;
    assert_eq!(
        labels,
        map(&[
            ("name", "ns-2"),
            ("compliance", "hipaa"),
            ("environment", "production"),
            ("role", "database")
        ])
    );
    assert_eq!(
        annotations,
        map(&[
            ("annotation.one/key", "updatedvalue"),
            ("annotation.two/key", "true"),
            ("annotation.three/key", "false")
        ])
    );
    // The merge was an UPDATE (PATCH) of the Namespace by the controller's identity; the source is untouched.
    let writes = audit_events(
        &world.testbed.destination,
        Identity::Controller.username(),
        "namespaces",
        None,
    );
    assert!(
        writes.iter().any(|e| e["verb"] == "patch"
            && e["objectRef"]["name"] == "ns-2"
            && e["responseStatus"]["code"] == 200),
        "{writes:#?}"
    );
    let (source_labels, _) = namespace_meta(world.client(SRC), "ns-1").await;
    assert_eq!(source_labels["name"], "ns-1");

    // Resync: destination changes discarded, the destination app stopped (deleted), Establishing → Established.
    let log = StateLog::start(&amrs, "rel1").await;
    world.patch(
        DST,
        "ns-2",
        "amr/rel1",
        r#"{"spec":{"desiredState":"Established"}}"#,
    );
    let resynced = wait_for(&amrs, "rel1", "Established again", |a| {
        a.state() == Some("Established") && condition(a, CONDITION_DESTINATION_CHANGES_DISCARDED).is_some()
    })
    .await;
    let states = log.states_until("Established").await;
    assert_eq!(
        states.iter().rev().take(3).rev().collect::<Vec<_>>(),
        ["Promoted", "Establishing", "Established"],
        "{states:?}"
    );
    let discarded = condition(&resynced, CONDITION_DESTINATION_CHANGES_DISCARDED).unwrap();
    assert_eq!(
        (discarded.status.as_str(), discarded.reason.as_str()),
        ("True", "Resync")
    );
    assert!(discarded.message.contains("discarded"), "{}", discarded.message);
    assert_eq!(
        resynced.status.as_ref().unwrap().destination_application_ref,
        None
    );
    assert!(
        world
            .api::<Application>(DST, "ns-2")
            .get_opt("my-app")
            .await
            .unwrap()
            .is_none(),
        "stopped"
    );

    // Promote again, then delete the AMR: two independent applications remain.
    world.patch(DST, "ns-2", "amr/rel1", r#"{"spec":{"desiredState":"Promoted"}}"#);
    let promoted = wait_for(&amrs, "rel1", "Promoted again", state_is("Promoted")).await;
    assert_eq!(
        condition(&promoted, CONDITION_DESTINATION_CHANGES_DISCARDED)
            .unwrap()
            .status,
        "False"
    );
    assert!(promoted.finalizers().is_empty(), "no finalizer holds the AMR");
    world.kubectl(DST, &["delete", "-n", "ns-2", "amr/rel1", "--wait=true"], "");
    assert!(amrs.get_opt("rel1").await.unwrap().is_none());
    // A new AMR reaching Establishing shows the stand-in has reconciled past the deletion.
    world.apply(DST, &amr("rel2", "ns-2", "ns-1", "other-uid"));
    wait_for(&amrs, "rel2", "Establishing", state_is("Establishing")).await;
    assert!(
        world
            .api::<Application>(DST, "ns-2")
            .get_opt("my-app")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        world
            .api::<Application>(SRC, "ns-1")
            .get_opt("my-app")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn failover_with_the_source_down_then_a_planned_swap() {
    let world = World::start(StandInConfig {
        time_scale: 60.0,
        peer_timeout: Duration::from_secs(2),
        ..Default::default()
    })
    .await;
    let uid = replication_prerequisites(&world).await;
    let amrs = world.api::<AppMirrorRelationship>(DST, "ns-2");
    world.apply(DST, &amr("rel1", "ns-2", "ns-1", &uid));
    wait_for(&amrs, "rel1", "Established", state_is("Established")).await;

    // Disaster: the source is gone. Failover still works, from the last transferred state, without the merge.
    world.testbed.source.stop_apiserver();
    world.patch(DST, "ns-2", "amr/rel1", r#"{"spec":{"desiredState":"Promoted"}}"#);
    let promoted = wait_for(
        &amrs,
        "rel1",
        "Promoted with the source down",
        state_is("Promoted"),
    )
    .await;
    let merge = condition(&promoted, CONDITION_NAMESPACE_METADATA_MERGED).unwrap();
    assert_eq!(
        (merge.status.as_str(), merge.reason.as_str()),
        ("False", "SourceUnreachable")
    );
    assert!(
        merge.message.contains("unreachable") && merge.message.contains("not merged"),
        "{}",
        merge.message
    );
    assert!(
        world
            .api::<Application>(DST, "ns-2")
            .get_opt("my-app")
            .await
            .unwrap()
            .is_some()
    );
    let (labels, _) = namespace_meta(world.client(DST), "ns-2").await;
    assert_eq!(labels, map(&[("role", "database")]), "nothing merged");

    // The source is back: resync, then a planned swap with a ShutdownSnapshot.
    world.testbed.source.start_apiserver().await.unwrap();
    world.patch(
        DST,
        "ns-2",
        "amr/rel1",
        r#"{"spec":{"desiredState":"Established"}}"#,
    );
    wait_for(
        &amrs,
        "rel1",
        "Established after the resync",
        state_is("Established"),
    )
    .await;
    world.apply(SRC, &snapshot("ShutdownSnapshot", "swap-1", "ns-1", "my-app"));
    let shutdown = wait_for(
        &world.api::<ShutdownSnapshot>(SRC, "ns-1"),
        "swap-1",
        "Completed",
        |s| s.state() == Some("Completed"),
    )
    .await;
    let basename = shutdown
        .status
        .as_ref()
        .unwrap()
        .archive_basename()
        .unwrap()
        .to_string();

    // A basename no ShutdownSnapshot has: Promoting, with an error, and no further.
    world.patch(
        DST,
        "ns-2",
        "amr/rel1",
        r#"{"spec":{"desiredState":"Promoted","promotedSnapshot":"20250101000000_nope_0000"}}"#,
    );
    let blocked = wait_for(&amrs, "rel1", "an error about promotedSnapshot", |a| {
        a.error().is_some_and(|e| e.contains("promotedSnapshot"))
    })
    .await;
    assert_eq!(blocked.state(), Some("Promoting"));
    assert!(
        blocked.error().unwrap().contains("\"20250101000000_nope_0000\""),
        "{:?}",
        blocked.error()
    );
    assert!(
        world
            .api::<Application>(DST, "ns-2")
            .get_opt("my-app")
            .await
            .unwrap()
            .is_none()
    );

    // The real basename: Promoted from that archive.
    world.patch(
        DST,
        "ns-2",
        "amr/rel1",
        &format!(r#"{{"spec":{{"promotedSnapshot":"{basename}"}}}}"#),
    );
    let promoted = wait_for(
        &amrs,
        "rel1",
        "Promoted from the shutdown snapshot",
        state_is("Promoted"),
    )
    .await;
    let status = promoted.status.clone().unwrap();
    assert_eq!(status.error, None);
    assert_eq!(
        status.last_transferred_snapshot.unwrap().name.as_deref(),
        Some("swap-1")
    );
    assert!(
        condition(&promoted, CONDITION_PROMOTED)
            .unwrap()
            .message
            .contains("swap-1")
    );
    assert_eq!(
        condition(&promoted, CONDITION_NAMESPACE_METADATA_MERGED)
            .unwrap()
            .status,
        "True"
    );
    let (labels, _) = namespace_meta(world.client(DST), "ns-2").await;
    assert_eq!(labels["name"], "ns-2");
    assert_eq!(labels["compliance"], "hipaa");
}

#[tokio::test]
async fn faults_a_stalled_promotion_a_transient_error_and_a_write_conflict() {
    let world = World::start(StandInConfig {
        time_scale: 1.0,
        ..Default::default()
    })
    .await;
    let uid = replication_prerequisites(&world).await;
    world.create(DST, "apiVersion: v1\nkind: Namespace\nmetadata: {name: ns-b}\n");
    let amrs_a = world.api::<AppMirrorRelationship>(DST, "ns-2");
    let amrs_b = world.api::<AppMirrorRelationship>(DST, "ns-b");
    world.apply(DST, &amr("rel-a", "ns-2", "ns-1", &uid));
    world.apply(DST, &amr("rel-b", "ns-b", "ns-1", &uid));
    wait_for(&amrs_a, "rel-a", "Established", state_is("Established")).await;
    wait_for(&amrs_b, "rel-b", "Established", state_is("Established")).await;

    // rel-a's promotion never completes while stalled; rel-b, asked later, completes.
    world.faults.stall(Transition::Promote, Some("rel-a"));
    world.patch(
        DST,
        "ns-2",
        "amr/rel-a",
        r#"{"spec":{"desiredState":"Promoted"}}"#,
    );
    wait_for(&amrs_a, "rel-a", "Promoting", state_is("Promoting")).await;
    world.patch(
        DST,
        "ns-b",
        "amr/rel-b",
        r#"{"spec":{"desiredState":"Promoted"}}"#,
    );
    wait_for(&amrs_b, "rel-b", "Promoted", state_is("Promoted")).await;
    assert_eq!(
        amrs_a.get("rel-a").await.unwrap().state(),
        Some("Promoting"),
        "stuck"
    );
    world.faults.release(Transition::Promote, Some("rel-a"));
    wait_for(&amrs_a, "rel-a", "Promoted once released", state_is("Promoted")).await;

    // A transient error: set at one reconcile, cleared at the next; the state never moves.
    let log = StateLog::start(&amrs_b, "rel-b").await;
    world.faults.inject_transient_error(
        Kind::AppMirrorRelationship,
        "ns-b",
        "rel-b",
        "transient: ONTAP busy",
    );
    eventually("the transient error set and cleared", async || {
        let errors = log.errors();
        let set = errors
            .iter()
            .position(|e| e.as_deref() == Some("transient: ONTAP busy"))?;
        errors[set + 1..].iter().any(Option::is_none).then_some(())
    })
    .await;
    assert_eq!(log.states(), ["Promoted"]);
    assert_eq!(world.faults.transient_errors_written(), 1);
    assert_eq!(amrs_b.get("rel-b").await.unwrap().error(), None);

    // A write with a stale resourceVersion: the API server answers 409, the stand-in reads again and carries on.
    let conflicts_before = world.faults.conflicts_handled();
    world
        .faults
        .conflict_once(Kind::AppMirrorRelationship, "ns-2", "rel-a");
    world.patch(
        DST,
        "ns-2",
        "amr/rel-a",
        r#"{"spec":{"desiredState":"Established"}}"#,
    );
    wait_for(
        &amrs_a,
        "rel-a",
        "Established after the resync",
        state_is("Established"),
    )
    .await;
    assert!(world.faults.conflicts_handled() > conflicts_before);
    let status_writes = audit_events(
        &world.testbed.destination,
        Identity::Controller.username(),
        "appmirrorrelationships",
        Some("status"),
    );
    let conflict = status_writes
        .iter()
        .position(|e| e["objectRef"]["name"] == "rel-a" && e["responseStatus"]["code"] == 409)
        .expect("a 409 answered to the stand-in's status write");
    assert!(
        status_writes[conflict + 1..]
            .iter()
            .any(|e| e["objectRef"]["name"] == "rel-a" && e["responseStatus"]["code"] == 200),
        "a successful write after the conflict"
    );
}
