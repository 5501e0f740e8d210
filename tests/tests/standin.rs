//! The Trident protect stand-in controller on two real local clusters: every transition driven by editing the
//! custom resources with kubectl (as an operator following NetApp's guide would), its status and side effects
//! asserted on both clusters.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::str::FromStr;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tprotect_api::{AppMirrorRelationship, AppVault, Application, Schedule, ShutdownSnapshot, Snapshot};
use tprotect_e2e::{
    DEADLINE, DESTINATION as DST, Identity, LocalEnv, LocalEnvOptions, SOURCE as SRC, TRIDENT as TP,
    eventually,
};
use tprotect_standin::rules::amr::{
    CONDITION_DESTINATION_CHANGES_DISCARDED, CONDITION_ESTABLISHED, CONDITION_NAMESPACE_METADATA_MERGED,
    CONDITION_PROMOTED,
};
use tprotect_standin::rules::forms::{RELATIONSHIP_FINALIZER, archive_basename};
use tprotect_standin::{
    APPLICATION_SHUTDOWN_CONDITION, Faults, Kind, Profile, SCHEDULE_LABEL, StandInConfig, Transition,
};

struct World {
    env: LocalEnv,
    faults: Faults,
    profile: Profile,
}

impl World {
    async fn start(config: StandInConfig) -> World {
        let started = Instant::now();
        let faults = config.faults.clone();
        let profile = config.profile;
        eprintln!("stand-in profile {profile}");
        let env = LocalEnv::start(LocalEnvOptions::netapp().with_standin(config))
            .await
            .expect("testbed and stand-in started (NetApp's CRDs are read from ../shared)");
        eprintln!("testbed up in {:.1}s", started.elapsed().as_secs_f64());
        World { env, faults, profile }
    }

    /// A world at `time_scale` under the profile TPROTECT_STANDIN_PROFILE names (documented if unset).
    async fn start_at_scale(time_scale: f64) -> World {
        World::start(StandInConfig {
            time_scale,
            ..StandInConfig::from_env().unwrap()
        })
        .await
    }

    fn client(&self, context: &str) -> kube::Client {
        self.env.client(context).unwrap()
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
        let output = self
            .env
            .testbed
            .run_kubectl(context, args, stdin)
            .expect("kubectl runs");
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

    /// Sets `spec.desiredState` of the destination AMR `namespace/name`, as an operator would.
    #[track_caller]
    fn desire(&self, namespace: &str, name: &str, state: &str) {
        self.patch(
            DST,
            namespace,
            &format!("amr/{name}"),
            &format!(r#"{{"spec":{{"desiredState":"{state}"}}}}"#),
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

type StateAndError = (String, Option<String>);

/// Records every `status.state` (and `status.error`) an object passes through, from a watch started now.
struct StateLog {
    task: tokio::task::JoinHandle<()>,
    /// `(state, error)` in the order seen.
    seen: std::sync::Arc<std::sync::Mutex<Vec<StateAndError>>>,
}

impl StateLog {
    /// Starts watching `name`, which need not exist yet, and returns once the watch has listed what exists (so
    /// every later write is seen, in order).
    async fn start<K>(api: &Api<K>, name: &str, read: fn(&K) -> StateAndError) -> StateLog
    where
        K: Resource + Clone + Debug + Send + Sync + DeserializeOwned + 'static,
    {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let (listed, ready) = tokio::sync::oneshot::channel();
        let stream = watcher(
            api.clone(),
            watcher::Config::default().fields(&format!("metadata.name={name}")),
        );
        let task = tokio::spawn(async move {
            let mut listed = Some(listed);
            let mut stream = std::pin::pin!(stream);
            while let Ok(Some(event)) = stream.try_next().await {
                match event {
                    watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                        let entry = read(&object);
                        let mut log = log.lock().unwrap();
                        if log.last() != Some(&entry) {
                            log.push(entry);
                        }
                    }
                    watcher::Event::InitDone => {
                        if let Some(listed) = listed.take() {
                            let _ = listed.send(());
                        }
                    }
                    watcher::Event::Init | watcher::Event::Delete(_) => {}
                }
            }
        });
        tokio::time::timeout(DEADLINE, ready)
            .await
            .expect("the state log's watch lists within the deadline")
            .expect("the state log's watch runs");
        StateLog { task, seen }
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
        .unwrap()
    }

    fn errors(&self) -> Vec<Option<String>> {
        self.seen.lock().unwrap().iter().map(|(_, e)| e.clone()).collect()
    }

    /// The errors seen while in `state`.
    fn errors_in(&self, state: &str) -> Vec<Option<String>> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _)| s == state)
            .map(|(_, e)| e.clone())
            .collect()
    }
}

impl Drop for StateLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn amr_state(amr: &AppMirrorRelationship) -> StateAndError {
    (
        amr.state().unwrap_or_default().to_string(),
        amr.error().map(str::to_string),
    )
}

fn snapshot_state(snapshot: &Snapshot) -> StateAndError {
    (
        snapshot.state().unwrap_or_default().to_string(),
        snapshot.status.as_ref().and_then(|s| s.error.clone()),
    )
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

/// The status (`True`/`False`/`Unknown`) of the AMR's condition `type_`, which must be there.
#[track_caller]
fn condition_status<'a>(amr: &'a AppMirrorRelationship, type_: &str) -> &'a str {
    let found = condition(amr, type_).unwrap_or_else(|| panic!("no {type_} condition: {amr:#?}"));
    &found.status
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
    vaults_and_source_application(world).await
}

/// Both clusters: the Secret and the source AppVault; the destination: the destination AppVault; the source:
/// Application my-app in ns-1. Returns the Application's uid.
async fn vaults_and_source_application(world: &World) -> String {
    for context in [SRC, DST] {
        world.apply(context, &secret(&["accessKeyID", "secretAccessKey"]));
        world.apply(context, &app_vault("src-vault"));
    }
    world.apply(DST, &app_vault("dst-vault"));
    source_application(world).await
}

/// Applies Application my-app in ns-1 on the source; returns its uid once it exists.
async fn source_application(world: &World) -> String {
    world.apply(SRC, &application("my-app", "ns-1"));
    let app = wait_for(&world.api::<Application>(SRC, "ns-1"), "my-app", "exists", |_| {
        true
    })
    .await;
    app.metadata.uid.unwrap()
}

/// Waits until the Snapshot `name` is Completed.
async fn completed(snapshots: &Api<Snapshot>, name: &str) -> Snapshot {
    wait_for(snapshots, name, "Completed", |s| s.state() == Some("Completed")).await
}

/// Applies a ShutdownSnapshot `name` of my-app on the source; returns its archive path once it is Completed.
async fn completed_shutdown_snapshot(world: &World, name: &str) -> String {
    world.apply(SRC, &snapshot("ShutdownSnapshot", name, "ns-1", "my-app"));
    let shutdowns = world.api::<ShutdownSnapshot>(SRC, "ns-1");
    let shutdown = wait_for(&shutdowns, name, "Completed", |s| s.state() == Some("Completed")).await;
    shutdown.status.unwrap().app_archive_path.unwrap()
}

/// The source AppVault must be Available before a snapshot can complete.
async fn vault_available(world: &World, context: &str, name: &str) {
    let available = vault_state(world.profile, true);
    wait_for(&world.api::<AppVault>(context, TP), name, "Available", |v| {
        v.state() == Some(available.as_str())
    })
    .await;
}

/// The profile's spelling of an AppVault's state: `Available` / `Error`, or `available` / `error`.
fn vault_state(profile: Profile, available: bool) -> String {
    let problem = (!available).then_some("any");
    profile.app_vault_status(problem).state.unwrap()
}

/// An AppVault's problem text, from the field the profile writes it to; the other field must be empty.
fn vault_problem(profile: Profile, vault: &AppVault) -> Option<String> {
    let status = vault.status.clone().unwrap_or_default();
    let (used, unused) = match profile {
        Profile::Documented => (status.error, status.message),
        Profile::Variant => (status.message, status.error),
    };
    assert_eq!(unused, None, "{profile}: the problem text is in one field only");
    used
}

/// `status.<field>` of an object as the API server stores it (no typed parsing), via kubectl.
fn raw_status(world: &World, context: &str, namespace: &str, what: &str, field: &str) -> String {
    world.kubectl(
        context,
        &[
            "get",
            "-n",
            namespace,
            what,
            "-o",
            &format!("jsonpath={{.status.{field}}}"),
        ],
        "",
    )
}

/// Asserts the RFC 3339 form the profile writes: whole seconds, or microseconds; always UTC `Z`.
#[track_caller]
fn assert_timestamp_form(profile: Profile, text: &str) {
    let (seconds, fraction) = text
        .strip_suffix('Z')
        .unwrap_or_else(|| panic!("{text}: not UTC"))
        .split_at(19);
    assert!(
        jiff::Timestamp::from_str(text).is_ok() && seconds.len() == 19,
        "{text}"
    );
    match profile {
        Profile::Documented => assert_eq!(fraction, "", "{text}"),
        Profile::Variant => assert!(
            fraction.len() == 7
                && fraction.starts_with('.')
                && fraction[1..].bytes().all(|b| b.is_ascii_digit()),
            "{text}: microseconds"
        ),
    }
}

/// The destination Application a profile's promotion creates for the AMR `amr` of `my-app`.
fn destination_app(profile: Profile, amr: &AppMirrorRelationship) -> String {
    profile.destination_application_name("my-app", amr.metadata.uid.as_deref().unwrap())
}

/// An object's resourceVersion as a number: the etcd revision of its last write. One etcd serves a cluster, so
/// revisions order the writes to that cluster.
fn revision<K: Resource>(object: &K) -> u64 {
    object
        .meta()
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
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

/// Two tests running `scenario` under each profile, each on its own clusters, so a failure names the profile.
macro_rules! under_both_profiles {
    ($($scenario:ident: $documented:ident, $variant:ident;)*) => {$(
        #[tokio::test]
        async fn $documented() {
            $scenario(Profile::Documented).await;
        }

        #[tokio::test]
        async fn $variant() {
            $scenario(Profile::Variant).await;
        }
    )*};
}

under_both_profiles! {
    appvaults_snapshots_and_shutdown_snapshots_as:
        appvaults_snapshots_and_shutdown_snapshots,
        appvaults_snapshots_and_shutdown_snapshots_under_the_variant;
    relationship_establish_transfer_promote_resync_and_delete_as:
        relationship_establish_transfer_promote_resync_and_delete,
        relationship_establish_transfer_promote_resync_and_delete_under_the_variant;
    failover_with_the_source_down_then_a_planned_swap_as:
        failover_with_the_source_down_then_a_planned_swap,
        failover_with_the_source_down_then_a_planned_swap_under_the_variant;
}

async fn appvaults_snapshots_and_shutdown_snapshots_as(profile: Profile) {
    let world = World::start(StandInConfig {
        profile,
        ..Default::default()
    })
    .await;
    let vaults = world.api::<AppVault>(SRC, TP);
    let (available, error) = (vault_state(profile, true), vault_state(profile, false));

    // No Secret: Error naming it. Secret without one key: Error naming the key. Complete: Available.
    world.apply(SRC, &app_vault("src-vault"));
    let vault = wait_for(&vaults, "src-vault", "state Error", |v| {
        v.state() == Some(error.as_str())
    })
    .await;
    let problem = vault_problem(profile, &vault).unwrap();
    assert!(
        problem.contains(
            "Secret \"s3-creds\" not found in namespace \"trident-protect\" (providerCredentials.accessKeyID)"
        ),
        "{problem}"
    );
    world.apply(SRC, &secret(&["accessKeyID"]));
    let vault = wait_for(&vaults, "src-vault", "the problem names the key", |v| {
        let status = v.status.clone().unwrap_or_default();
        status
            .error
            .or(status.message)
            .is_some_and(|e| e.contains("has no key"))
    })
    .await;
    assert_eq!(
        vault_problem(profile, &vault).unwrap(),
        "Secret \"s3-creds\" in namespace \"trident-protect\" has no key \"secretAccessKey\" \
         (providerCredentials.secretAccessKey)"
    );
    world.apply(SRC, &secret(&["accessKeyID", "secretAccessKey"]));
    let vault = wait_for(&vaults, "src-vault", "Available", |v| {
        v.state() == Some(available.as_str())
    })
    .await;
    assert_eq!(vault_problem(profile, &vault), None, "the problem is cleared");
    // The other cluster is watched too.
    world.apply(DST, &secret(&["accessKeyID", "secretAccessKey"]));
    world.apply(DST, &app_vault("dst-vault"));
    vault_available(&world, DST, "dst-vault").await;

    // A Snapshot: Running (documented) or no state (variant), then Completed with the archive path.
    world.create(SRC, NS_1);
    let app_uid = source_application(&world).await;
    let snapshots = world.api::<Snapshot>(SRC, "ns-1");
    let log = StateLog::start(&snapshots, "snap-1", snapshot_state).await;
    world.apply(SRC, &snapshot("Snapshot", "snap-1", "ns-1", "my-app"));
    let snap = completed(&snapshots, "snap-1").await;
    let states = log.states_until("Completed").await;
    let running: &[&str] = match profile {
        Profile::Documented => &["", "Running", "Completed"],
        Profile::Variant => &["", "Completed"],
    };
    assert_eq!(states, running, "{profile}");
    let status = snap.status.clone().unwrap();
    let path = status.app_archive_path.clone().unwrap();
    let (before, after) = match profile {
        Profile::Documented => ("", ""),
        Profile::Variant => ("trident-protect/", "/"),
    };
    let prefix = format!("{before}my-app_{app_uid}/snapshots/");
    let suffix = format!("_snap-1_{}{after}", snap.metadata.uid.clone().unwrap());
    assert!(path.starts_with(&prefix) && path.ends_with(&suffix), "{path}");
    let stamp = &path[prefix.len()..path.len() - suffix.len()];
    assert!(
        stamp.len() == 14 && stamp.bytes().all(|b| b.is_ascii_digit()),
        "yyyymmddhhmmss: {stamp}"
    );
    assert!(status.completion_timestamp.is_some());
    assert_timestamp_form(
        profile,
        &raw_status(&world, SRC, "ns-1", "snapshot/snap-1", "completionTimestamp"),
    );
    assert_eq!(status.app_vault_ref.as_deref(), Some("src-vault"));
    assert_eq!(status.error, None);
    match profile {
        Profile::Documented => {
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
        }
        Profile::Variant => assert_eq!(status.conditions, None, "no conditions"),
    }

    // A Snapshot of a missing Application fails, naming it.
    let failed = profile.snapshot_failure_state();
    world.apply(SRC, &snapshot("Snapshot", "snap-orphan", "ns-1", "no-such-app"));
    let orphan = wait_for(&snapshots, "snap-orphan", failed, |s| s.state() == Some(failed)).await;
    assert_eq!(
        orphan.status.unwrap().error.as_deref(),
        Some("Application \"no-such-app\" not found in namespace \"ns-1\"")
    );

    // A ShutdownSnapshot completes the same way; the documented profile records the shutdown on the Application
    // first.
    let path = completed_shutdown_snapshot(&world, "shutdown-1").await;
    let basename = archive_basename(&path).unwrap().to_string();
    assert!(
        basename.contains("_shutdown-1_") && !basename.contains('/'),
        "{basename}"
    );
    let app = world.api::<Application>(SRC, "ns-1").get("my-app").await.unwrap();
    let shut = app
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == APPLICATION_SHUTDOWN_CONDITION);
    match profile {
        Profile::Documented => {
            let shut = shut.expect("the Application records the shutdown");
            assert_eq!(shut.status, "True");
            assert!(
                shut.message.contains("\"shutdown-1\"") && shut.message.contains(&basename),
                "{}",
                shut.message
            );
        }
        Profile::Variant => assert_eq!(shut, None, "nothing recorded on the Application"),
    }
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
    let world = World::start_at_scale(300.0).await;
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
    .await
    .unwrap();
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
    assert_timestamp_form(
        world.profile,
        &raw_status(&world, SRC, "ns-1", "schedule/fast", "lastScheduleTime"),
    );
    assert_eq!(count(&paused_seen), 0, "a disabled schedule takes no snapshot");

    // Swap: disable one, enable the other. Both changes come through one watch, in order, so once the
    // re-enabled schedule has taken a snapshot the stand-in has seen the other one disabled.
    world.patch(SRC, "ns-1", "schedule/fast", r#"{"spec":{"enabled":false}}"#);
    world.patch(SRC, "ns-1", "schedule/paused", r#"{"spec":{"enabled":true}}"#);
    eventually("the re-enabled schedule's first snapshot", async || {
        (count(&paused_seen) >= 1).then_some(())
    })
    .await
    .unwrap();
    let cut = count(&fast_seen);
    eventually("three more occurrences", async || {
        (count(&paused_seen) >= 4).then_some(())
    })
    .await
    .unwrap();
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

async fn relationship_establish_transfer_promote_resync_and_delete_as(profile: Profile) {
    let documented = profile == Profile::Documented;
    let world = World::start(StandInConfig {
        time_scale: 300.0,
        profile,
        delete_delay: Duration::from_secs(10),
        ..Default::default()
    })
    .await;
    let amrs = world.api::<AppMirrorRelationship>(DST, "ns-2");
    let setting_up = profile.establish_entry_state();

    // The AMR first, before anything it needs: Establishing (variant: Pending), every missing piece named.
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
    assert_eq!(blocked.state(), Some(setting_up), "the state does not advance");
    assert_eq!(
        blocked.error().unwrap(),
        "source Application \"my-app\" not found in namespace \"ns-1\" on cluster \"tprotect-source\"; \
         source AppVault \"src-vault\" not found in namespace \"trident-protect\" on cluster \"tprotect-source\"; \
         source AppVault \"src-vault\" not found in namespace \"trident-protect\" on cluster \"tprotect-destination\"; \
         destination AppVault \"dst-vault\" not found in namespace \"trident-protect\" on cluster \"tprotect-destination\""
    );
    if documented {
        assert_eq!(
            condition(&blocked, CONDITION_ESTABLISHED).unwrap().reason,
            "PrerequisitesMissing"
        );
        assert!(blocked.finalizers().is_empty());
    } else {
        assert_eq!(
            blocked.status.as_ref().unwrap().conditions,
            Some(vec![]),
            "no conditions (the CRD requires the list)"
        );
        assert_eq!(blocked.finalizers(), [RELATIONSHIP_FINALIZER]);
    }

    // Everything but the right uid: the error says so.
    let uid = vaults_and_source_application(&world).await;
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
    assert_eq!(mismatch.state(), Some(setting_up));

    // A Completed snapshot on the source for the transfers to carry; then the right uid: Established.
    vault_available(&world, SRC, "src-vault").await;
    world.apply(SRC, &snapshot("Snapshot", "snap-1", "ns-1", "my-app"));
    completed(&world.api::<Snapshot>(SRC, "ns-1"), "snap-1").await;
    let log = StateLog::start(&amrs, "rel1", amr_state).await;
    world.patch(
        DST,
        "ns-2",
        "amr/rel1",
        &format!(r#"{{"spec":{{"sourceApplicationUID":"{uid}"}}}}"#),
    );
    let established = wait_for(&amrs, "rel1", "Established", state_is("Established")).await;
    let states = log.states_until("Established").await;
    if documented {
        assert_eq!(states, ["Establishing", "Established"]);
        let errors = log.errors_in("Establishing");
        assert!(
            errors.iter().flatten().all(|e| e.contains("has uid")),
            "no progress message: {errors:?}"
        );
    } else {
        assert_eq!(states, ["Pending", "Establishing", "Established"]);
        let progress = log.errors_in("Establishing");
        assert!(
            progress
                .iter()
                .all(|e| e.as_ref().is_some_and(|e| e.contains("baseline"))),
            "a progress message while Establishing: {progress:?}"
        );
    }
    drop(log);
    let status = established.status.clone().unwrap();
    assert_eq!(status.error, None);
    assert_eq!(status.destination_namespaces, Some(vec!["ns-2".to_string()]));
    let transferred = status.last_transferred_snapshot.as_ref();
    if documented {
        assert_eq!(condition_status(&established, CONDITION_ESTABLISHED), "True");
        assert_eq!(transferred.unwrap().name.as_deref(), Some("snap-1"));
    } else {
        assert_eq!(status.conditions, Some(vec![]));
        assert_eq!(transferred, None, "only lastTransfer");
    }
    assert_timestamp_form(
        profile,
        &raw_status(&world, DST, "ns-2", "amr/rel1", "lastTransfer.startTimestamp"),
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
    let log = StateLog::start(&amrs, "rel1", amr_state).await;
    world.desire("ns-2", "rel1", "Promoted");
    let promoted = wait_for(&amrs, "rel1", "Promoted", state_is("Promoted")).await;
    let states = log.states_until("Promoted").await;
    assert_eq!(
        states.iter().rev().take(2).rev().collect::<Vec<_>>(),
        ["Promoting", "Promoted"],
        "{states:?}"
    );
    let app_name = destination_app(profile, &promoted);
    assert_eq!(
        promoted
            .status
            .as_ref()
            .unwrap()
            .destination_application_ref
            .as_deref(),
        Some(profile.destination_application_ref("ns-2", &app_name).as_str())
    );
    if documented {
        assert_eq!(app_name, "my-app");
        assert_eq!(condition_status(&promoted, CONDITION_PROMOTED), "True");
        assert_eq!(
            condition_status(&promoted, CONDITION_NAMESPACE_METADATA_MERGED),
            "True"
        );
    } else {
        assert_ne!(app_name, "my-app", "named unlike the source");
        assert!(log.errors_in("Promoting").iter().all(Option::is_some));
        assert_eq!(promoted.status.as_ref().unwrap().conditions, Some(vec![]));
    }
    drop(log);
    let dest_apps = world.api::<Application>(DST, "ns-2");
    let dest_app = wait_for(&dest_apps, &app_name, "the destination Application", |_| true).await;
    // Documented: the Application exists before the AMR says Promoted; variant: it follows.
    assert_eq!(
        revision(&dest_app) < revision(&promoted),
        documented,
        "Application at revision {}, AMR Promoted at revision {}",
        revision(&dest_app),
        revision(&promoted)
    );
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
        documented.then_some("rel1")
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
        &world.env.testbed.destination,
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

    // Resync: destination changes discarded, replication restarts. Documented: the destination app deleted,
    // Promoted → Establishing → Established; variant: the app kept (stopped), Promoted → Established.
    let log = StateLog::start(&amrs, "rel1", amr_state).await;
    world.desire("ns-2", "rel1", "Established");
    let resynced = wait_for(&amrs, "rel1", "Established again", |a| {
        a.state() == Some("Established")
            && (!documented || condition(a, CONDITION_DESTINATION_CHANGES_DISCARDED).is_some())
    })
    .await;
    let states = log.states_until("Established").await;
    let resync: &[&str] = if documented {
        &["Promoted", "Establishing", "Established"]
    } else {
        &["Promoted", "Established"]
    };
    assert_eq!(
        states[states.len().saturating_sub(resync.len())..],
        *resync,
        "{states:?}"
    );
    drop(log);
    assert_eq!(
        resynced.status.as_ref().unwrap().destination_application_ref,
        None
    );
    let kept = dest_apps.get_opt(&app_name).await.unwrap();
    if documented {
        let discarded = condition(&resynced, CONDITION_DESTINATION_CHANGES_DISCARDED).unwrap();
        assert_eq!(
            (discarded.status.as_str(), discarded.reason.as_str()),
            ("True", "Resync")
        );
        assert!(discarded.message.contains("discarded"), "{}", discarded.message);
        assert!(kept.is_none(), "stopped");
    } else {
        assert!(kept.is_some(), "the Application is kept (stopped)");
    }

    // Promote again, then delete the AMR: two independent applications remain.
    world.desire("ns-2", "rel1", "Promoted");
    let promoted = wait_for(&amrs, "rel1", "Promoted again", state_is("Promoted")).await;
    if documented {
        assert_eq!(
            condition_status(&promoted, CONDITION_DESTINATION_CHANGES_DISCARDED),
            "False"
        );
        assert!(promoted.finalizers().is_empty(), "no finalizer holds the AMR");
    } else {
        assert_eq!(promoted.finalizers(), [RELATIONSHIP_FINALIZER]);
    }
    wait_for(&dest_apps, &app_name, "the destination Application", |_| true).await;
    world.kubectl(DST, &["delete", "-n", "ns-2", "amr/rel1", "--wait=false"], "");
    if !documented {
        // Held by the finalizer until the stand-in has cleaned up (delete_delay, 10 s here).
        let deleting = amrs.get("rel1").await.expect("the AMR waits for its clean-up");
        assert!(deleting.metadata.deletion_timestamp.is_some());
        assert_eq!(deleting.finalizers(), [RELATIONSHIP_FINALIZER]);
    }
    eventually("the AMR gone", async || {
        amrs.get_opt("rel1").await.unwrap().is_none().then_some(())
    })
    .await
    .unwrap();
    // A new AMR reaching its first state shows the stand-in has reconciled past the deletion.
    world.apply(DST, &amr("rel2", "ns-2", "ns-1", "other-uid"));
    wait_for(&amrs, "rel2", setting_up, state_is(setting_up)).await;
    assert!(dest_apps.get_opt(&app_name).await.unwrap().is_some());
    assert!(
        world
            .api::<Application>(SRC, "ns-1")
            .get_opt("my-app")
            .await
            .unwrap()
            .is_some()
    );
}

async fn failover_with_the_source_down_then_a_planned_swap_as(profile: Profile) {
    let documented = profile == Profile::Documented;
    let world = World::start(StandInConfig {
        time_scale: 60.0,
        peer_timeout: Duration::from_secs(2),
        profile,
        ..Default::default()
    })
    .await;
    let uid = replication_prerequisites(&world).await;
    let amrs = world.api::<AppMirrorRelationship>(DST, "ns-2");
    let dest_apps = world.api::<Application>(DST, "ns-2");
    world.apply(DST, &amr("rel1", "ns-2", "ns-1", &uid));
    wait_for(&amrs, "rel1", "Established", state_is("Established")).await;

    // Disaster: the source is gone. Failover still works, from the last transferred state, without the merge.
    world.env.testbed.source.stop_apiserver();
    world.desire("ns-2", "rel1", "Promoted");
    let promoted = wait_for(
        &amrs,
        "rel1",
        "Promoted with the source down",
        state_is("Promoted"),
    )
    .await;
    if documented {
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
    } else {
        assert_eq!(promoted.status.as_ref().unwrap().conditions, Some(vec![]));
    }
    let app_name = destination_app(profile, &promoted);
    wait_for(&dest_apps, &app_name, "the destination Application", |_| true).await;
    let (labels, _) = namespace_meta(world.client(DST), "ns-2").await;
    assert_eq!(labels, map(&[("role", "database")]), "nothing merged");

    // Resync while the source is still down. Documented: the destination is discarded at once (its Application
    // deleted) and the AMR waits in Establishing; variant: nothing is discarded, the AMR stays Promoted and says
    // why.
    world.desire("ns-2", "rel1", "Established");
    let waiting = wait_for(&amrs, "rel1", "an error: the source is unreachable", |a| {
        a.error()
            .is_some_and(|e| e.contains("cannot reach source cluster \"tprotect-source\""))
    })
    .await;
    let app = dest_apps.get_opt(&app_name).await.unwrap();
    if documented {
        assert_eq!(waiting.state(), Some("Establishing"));
        assert!(app.is_none(), "discarded");
    } else {
        assert_eq!(waiting.state(), Some("Promoted"));
        assert!(app.is_some(), "nothing discarded without the source");
    }

    // The source is back: the resync completes, then a planned swap with a ShutdownSnapshot.
    world.env.testbed.source.start_apiserver().await.unwrap();
    wait_for(
        &amrs,
        "rel1",
        "Established after the resync",
        state_is("Established"),
    )
    .await;
    let path = completed_shutdown_snapshot(&world, "swap-1").await;
    assert_eq!(path.ends_with('/'), !documented, "{path}");
    let basename = archive_basename(&path).unwrap().to_string();

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
    assert_eq!(
        dest_apps.get_opt(&app_name).await.unwrap().is_some(),
        !documented,
        "documented: deleted by the resync; variant: kept, stopped"
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
    if documented {
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
            condition_status(&promoted, CONDITION_NAMESPACE_METADATA_MERGED),
            "True"
        );
    } else {
        assert_eq!(status.last_transferred_snapshot, None);
    }
    wait_for(&dest_apps, &app_name, "the destination Application", |_| true).await;
    let (labels, _) = namespace_meta(world.client(DST), "ns-2").await;
    assert_eq!(labels["name"], "ns-2");
    assert_eq!(labels["compliance"], "hipaa");
}

#[tokio::test]
async fn faults_a_stalled_promotion_a_transient_error_a_write_conflict_and_a_failure() {
    let world = World::start_at_scale(1.0).await;
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
    world.desire("ns-2", "rel-a", "Promoted");
    wait_for(&amrs_a, "rel-a", "Promoting", state_is("Promoting")).await;
    world.desire("ns-b", "rel-b", "Promoted");
    wait_for(&amrs_b, "rel-b", "Promoted", state_is("Promoted")).await;
    assert_eq!(
        amrs_a.get("rel-a").await.unwrap().state(),
        Some("Promoting"),
        "stuck"
    );
    world.faults.release(Transition::Promote, Some("rel-a"));
    wait_for(&amrs_a, "rel-a", "Promoted once released", state_is("Promoted")).await;

    // A transient error: set at one reconcile, cleared at the next; the state never moves.
    let log = StateLog::start(&amrs_b, "rel-b", amr_state).await;
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
    .await
    .unwrap();
    assert_eq!(log.states(), ["Promoted"]);
    assert_eq!(world.faults.transient_errors_written(), 1);
    assert_eq!(amrs_b.get("rel-b").await.unwrap().error(), None);

    // A write with a stale resourceVersion: the API server answers 409, the stand-in reads again and carries on.
    let conflicts_before = world.faults.conflicts_handled();
    world
        .faults
        .conflict_once(Kind::AppMirrorRelationship, "ns-2", "rel-a");
    world.desire("ns-2", "rel-a", "Established");
    wait_for(
        &amrs_a,
        "rel-a",
        "Established after the resync",
        state_is("Established"),
    )
    .await;
    assert!(world.faults.conflicts_handled() > conflicts_before);
    let status_writes = audit_events(
        &world.env.testbed.destination,
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

    // A failure: the profile's failure state (Failed, or Error under the variant) with the error, until it is
    // recovered; then the relationship carries on.
    let failed = world.profile.amr_failure_state();
    world
        .faults
        .fail_relationship(Some("rel-a"), "SnapMirror relationship broken");
    let failing = wait_for(&amrs_a, "rel-a", failed, state_is(failed)).await;
    assert_eq!(failing.error(), Some("SnapMirror relationship broken"));
    assert_eq!(
        amrs_b.get("rel-b").await.unwrap().state(),
        Some("Promoted"),
        "only rel-a fails"
    );
    world.faults.recover_relationship(Some("rel-a"));
    let recovered = wait_for(&amrs_a, "rel-a", "Established again", state_is("Established")).await;
    assert_eq!(recovered.error(), None);
}
