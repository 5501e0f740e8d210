//! The lifecycle engine (`tprotect_lifecycle::runner::run`) on two REAL local clusters with the Trident protect
//! stand-in: every operation driven through the runner as the plugin drives it, both clusters asserted after each
//! step; resumption after an interruption at every step; the lock; dry runs; the peer down; waits that time out
//! or fail. (The plugin-level tests — processes killed, concurrent commands, exit codes — live with the plugin.)

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::jiff;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use tprotect_api::{AppMirrorRelationship, AppVault, Application, Schedule, ShutdownSnapshot, Snapshot};
use tprotect_e2e::localenv::{assert_unchanged, audit};
use tprotect_e2e::{DESTINATION as DST, LocalEnv, LocalEnvOptions, SOURCE as SRC, TRIDENT as TP, eventually};
use tprotect_lifecycle::checks::probe_webhooks;
use tprotect_lifecycle::observe::{Scope, locate, observe, saved_schedules_of};
use tprotect_lifecycle::rules::checks::{Level, preflight};
use tprotect_lifecycle::rules::objects::saved_schedules_config_map;
use tprotect_lifecycle::rules::status::status_view;
use tprotect_lifecycle::runner::{DryRun, Progress, RunOptions, plan_only, run};
use tprotect_lifecycle::wait::{Fingerprint, WaitOutcome, object_fingerprint, wait_for_change};
use tprotect_lifecycle::{Action, ClusterKey, Clusters, Goal, RunError, SetupParams, Step, WaitFor};
use tprotect_standin::{Faults, StandInConfig, Transition};

const NS: &str = "app1";
const APP: &str = "app1";
const REL: &str = "rel1";

struct World {
    env: LocalEnv,
    clusters: Clusters,
    faults: Faults,
}

impl World {
    async fn start() -> World {
        let faults = Faults::new();
        let standin = StandInConfig {
            // Real time, and an hourly rule whose next occurrence is half an hour away (rule()): no
            // transfer or scheduled snapshot changes an object while a test compares them.
            time_scale: 1.0,
            faults: faults.clone(),
            ..Default::default()
        }
        .with_delays(Duration::from_millis(100));
        let env = LocalEnv::start(LocalEnvOptions::netapp().with_standin(standin))
            .await
            .expect("environment started (NetApp's CRDs are read from ../shared)");
        // The engine's clusters, exactly as the plugin builds them: from the kubeconfig and two context names.
        let clusters = Clusters::from_kubeconfig(Some(env.kubeconfig()), Some(SRC), Some(DST))
            .await
            .expect("kubeconfig");
        World {
            env,
            clusters,
            faults,
        }
    }

    fn client(&self, context: &str) -> kube::Client {
        self.env.client(context).expect("a cluster of the testbed")
    }

    /// Runs `goal` as `--dry-run=<mode>`; its progress goes to `events`.
    async fn dry_run(
        &self,
        goal: Goal,
        mode: DryRun,
        events: &Events,
    ) -> Result<tprotect_lifecycle::RunReport, RunError> {
        let options = RunOptions {
            dry_run: mode,
            ..options(events)
        };
        self.run(goal, options).await
    }

    /// Runs `goal` on the relationship, through the engine as the plugin does.
    async fn run(&self, goal: Goal, options: RunOptions) -> Result<tprotect_lifecycle::RunReport, RunError> {
        run(&self.clusters, REL, goal, options).await
    }

    fn api<K>(&self, context: &str, namespace: &str) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client(context), namespace)
    }

    async fn create(&self, context: &str, object: Value) {
        let gvk: kube::api::GroupVersionKind = serde_json::from_value(json!({
            "group": object["apiVersion"].as_str().unwrap().split_once('/').map(|(g, _)| g).unwrap_or(""),
            "version": object["apiVersion"].as_str().unwrap().rsplit('/').next().unwrap(),
            "kind": object["kind"],
        }))
        .unwrap();
        let (ar, _) = kube::discovery::pinned_kind(&self.client(context), &gvk)
            .await
            .unwrap();
        let object: DynamicObject = serde_json::from_value(object).unwrap();
        let api: Api<DynamicObject> = match object.metadata.namespace.as_deref() {
            Some(ns) => Api::namespaced_with(self.client(context), ns, &ar),
            None => Api::all_with(self.client(context), &ar),
        };
        api.create(&PostParams::default(), &object).await.unwrap();
    }

    /// Source: namespace app1, Secret src-creds and AppVault src-vault, Application app1, a user Schedule.
    /// Destination: Secret dst-creds and AppVault dst-vault. Everything else is the engine's job.
    async fn prerequisites(&self) {
        self.create(
            SRC,
            json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": NS, "labels": {"env": "prod"}}}),
        )
        .await;
        for (context, creds, vault) in [(SRC, "src-creds", "src-vault"), (DST, "dst-creds", "dst-vault")] {
            self.create(context, secret(creds)).await;
            self.create(context, app_vault(vault, creds)).await;
        }
        self.create(
            SRC,
            json!({"apiVersion": "protect.trident.netapp.io/v1", "kind": "Application",
            "metadata": {"name": APP, "namespace": NS},
            "spec": {"includedNamespaces": [{"namespace": NS}]}}),
        )
        .await;
        self.create(SRC, user_schedule("daily-backup", "src-vault")).await;
        for (context, vault) in [(SRC, "src-vault"), (DST, "dst-vault")] {
            eventually(&format!("{vault} Available on {context}"), async || {
                let v = self.api::<AppVault>(context, TP).get(vault).await.ok()?;
                (v.state() == Some("Available")).then_some(())
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        }
    }

    async fn amr(&self, context: &str) -> Option<AppMirrorRelationship> {
        self.api::<AppMirrorRelationship>(context, NS)
            .get_opt(REL)
            .await
            .unwrap()
    }

    async fn schedules(&self, context: &str) -> BTreeMap<String, Schedule> {
        self.api::<Schedule>(context, NS)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|s| (s.name_any(), s))
            .collect()
    }

    async fn app_uid(&self, context: &str) -> Option<String> {
        self.api::<Application>(context, NS)
            .get_opt(APP)
            .await
            .unwrap()
            .and_then(|a| a.metadata.uid)
    }

    async fn leases(&self) -> usize {
        let mut n = 0;
        for context in [SRC, DST] {
            let api: Api<Lease> = Api::all(self.client(context));
            n += api
                .list(&ListParams::default().labels(&format!("tprotect.io/relationship={REL}")))
                .await
                .unwrap()
                .items
                .len();
        }
        n
    }

    async fn saved(&self, context: &str) -> Vec<(String, bool)> {
        let cm = self
            .api::<ConfigMap>(context, TP)
            .get_opt(&saved_schedules_config_map(REL))
            .await
            .unwrap();
        cm.map(|cm| {
            saved_schedules_of(&cm)
                .schedules
                .into_iter()
                .map(|s| (s.name, s.was_enabled))
                .collect()
        })
        .unwrap_or_default()
    }

    /// Requests our user agent has made so far, on both clusters (from the API servers' audit logs).
    fn requests(&self) -> usize {
        let testbed = &self.env.testbed;
        let mut events = audit::read_all(&testbed.source.audit_log).unwrap();
        events.extend(audit::read_all(&testbed.destination.audit_log).unwrap());
        audit::plugin_requests(&events)
    }
}

fn secret(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": TP},
        "data": {"accessKeyID": "QUtJQUVYQU1QTEU=", "secretAccessKey": "c2VjcmV0LXZhbHVl"}})
}

fn app_vault(name: &str, creds: &str) -> Value {
    tprotect_e2e::localenv::fixtures::example_app_vault(name, TP, creds)
}

fn user_schedule(name: &str, vault: &str) -> Value {
    json!({"apiVersion": "protect.trident.netapp.io/v1", "kind": "Schedule",
        "metadata": {"name": name, "namespace": NS, "labels": {"team": "db"}},
        "spec": {"applicationRef": APP, "appVaultRef": vault, "granularity": "Daily", "hour": "2", "minute": "0",
            "backupRetention": "3", "snapshotRetention": "3", "enabled": true}})
}

/// Progress events of a run, for assertions, and the API requests it made.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<Progress>>>, Arc<Mutex<usize>>);

impl Events {
    fn requests(&self) -> usize {
        *self.1.lock().unwrap()
    }

    /// What `pick` takes from each event, in order, leaving out the events it returns `None` for.
    fn picked<T>(&self, pick: impl Fn(&Progress) -> Option<T>) -> Vec<T> {
        self.0.lock().unwrap().iter().filter_map(pick).collect()
    }

    fn acted(&self) -> Vec<Action> {
        self.picked(|e| match e {
            Progress::Acted { action, .. } => Some(action.clone()),
            _ => None,
        })
    }

    fn warnings(&self) -> Vec<String> {
        self.picked(|e| match e {
            Progress::Warning(w) => Some(w.clone()),
            _ => None,
        })
    }
}

fn options(events: &Events) -> RunOptions {
    let sink = events.0.clone();
    RunOptions {
        timeout: Duration::from_secs(120),
        progress: Arc::new(move |event| {
            eprintln!(
                "[{}] {event:?}",
                k8s_openapi::jiff::Timestamp::now().strftime("%H:%M:%S%.3f")
            );
            sink.lock().unwrap().push(event)
        }),
        confirm: Arc::new(|_| Ok(())),
        ..Default::default()
    }
}

async fn run_ok(world: &World, goal: Goal) -> (tprotect_lifecycle::RunReport, Events) {
    let events = Events::default();
    let what = format!("{goal:?}");
    let operation = goal.operation().command();
    let before = world.requests();
    match world.run(goal, options(&events)).await {
        Ok(outcome) => {
            let requests = world.requests() - before;
            eprintln!(
                "MEASURED API requests of {operation}: {requests} ({} actions)",
                events.acted().len()
            );
            *events.1.lock().unwrap() = requests;
            (outcome, events)
        }
        Err(e) => panic!("{what} failed: {e}\nevents: {:#?}", events.0.lock().unwrap()),
    }
}

/// The engine's request budget of one operation (about 1.5 times what it takes on the testbed, measured from
/// the API servers' audit logs): one observation of both clusters is 4 to 18 LISTs depending on what the
/// operation plans with, and an operation observes once per step and after each wait.
#[track_caller]
fn assert_budget(what: &str, events: &Events, budget: usize) {
    assert!(
        events.requests() <= budget,
        "{what}: {} API requests, budget {budget}",
        events.requests()
    );
}

/// The run reports the AMR on the cluster `key` stands for.
#[track_caller]
fn assert_amr_cluster(world: &World, outcome: &tprotect_lifecycle::RunReport, key: ClusterKey) {
    assert_eq!(
        outcome.amr_cluster.as_deref(),
        Some(world.clusters.context_of(key)),
        "{}",
        outcome.message
    );
}

/// Hourly, the next occurrence half an hour from now (DTSTART fixed once per test process).
fn rule() -> String {
    static RULE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    RULE.get_or_init(|| {
        let start = k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_mins(30);
        format!(
            "DTSTART:{}\nRRULE:FREQ=HOURLY;INTERVAL=1",
            start.strftime("%Y%m%dT%H%M%SZ")
        )
    })
    .clone()
}

fn setup_goal() -> Goal {
    Goal::Setup(SetupParams {
        source: ClusterKey::Context,
        app: APP.into(),
        source_namespace: NS.into(),
        destination_namespace: NS.into(),
        source_vault: "src-vault".into(),
        destination_vault: "dst-vault".into(),
        storage_class: None,
        source_storage_class: None,
        recurrence_rule: rule(),
        create_app: false,
        initial_snapshot: true,
    })
}

/// The AMR on `context`: Established (or `state`), replicating `source_uid`, and the other cluster has none.
async fn assert_amr(world: &World, context: &str, state: &str, source_uid: &str, source_vault: &str) {
    let amr = world
        .amr(context)
        .await
        .unwrap_or_else(|| panic!("an AMR on {context}"));
    let other = if context == SRC { DST } else { SRC };
    assert!(world.amr(other).await.is_none(), "no AMR on {other}");
    assert_eq!(amr.state(), Some(state), "{context}: {:?}", amr.status);
    assert_eq!(amr.spec.source_application_uid.as_deref(), Some(source_uid));
    assert_eq!(amr.spec.source_app_vault_ref.as_deref(), Some(source_vault));
    assert_eq!(
        amr.labels().get("tprotect.io/relationship").map(String::as_str),
        Some(REL)
    );
}

#[tokio::test]
async fn whole_lifecycle_through_the_runner_on_two_clusters() {
    let world = World::start().await;
    world.prerequisites().await;
    let src_uid = world.app_uid(SRC).await.unwrap();

    // ---- setup
    let (outcome, events) = run_ok(&world, setup_goal()).await;
    assert_budget("setup", &events, 160);
    assert_amr_cluster(&world, &outcome, ClusterKey::Peer);
    assert_amr(&world, DST, "Established", &src_uid, "src-vault").await;
    let amr = world.amr(DST).await.unwrap();
    assert_eq!(amr.spec.destination_app_vault_ref.as_deref(), Some("dst-vault"));
    assert_eq!(
        amr.spec.desired_state,
        Some(tprotect_api::DesiredState::Established)
    );
    let schedules = world.schedules(SRC).await;
    let replication = &schedules["appmirror-schedule-rel1"];
    // What we send (the CRD's defaults fill the rest).
    let spec = serde_json::to_value(&replication.spec).unwrap();
    for (field, value) in [
        ("applicationRef", json!(APP)),
        ("appVaultRef", json!("src-vault")),
        ("granularity", json!("Custom")),
        ("backupRetention", json!("0")),
        ("snapshotRetention", json!("2")),
        ("enabled", json!(true)),
        ("recurrenceRule", json!(rule())),
    ] {
        assert_eq!(spec[field], value, "{field}");
    }
    assert_eq!(replication.labels()["tprotect.io/replication-schedule"], "true");
    let initial = world.api::<Snapshot>(SRC, NS).get("rel1-initial").await.unwrap();
    assert_eq!(initial.status.unwrap().state.as_deref(), Some("Completed"));
    // The source AppVault copied AS STORED, and its Secret with the same data.
    let vault_spec = |context| {
        let api: Api<AppVault> = world.api(context, TP);
        async move { serde_json::to_value(api.get("src-vault").await.unwrap().spec).unwrap() }
    };
    assert_eq!(vault_spec(SRC).await, vault_spec(DST).await);
    let copied = world.api::<Secret>(DST, TP).get("src-creds").await.unwrap();
    let original = world.api::<Secret>(SRC, TP).get("src-creds").await.unwrap();
    assert_eq!(copied.data, original.data);
    assert_eq!(copied.labels()["tprotect.io/relationship"], REL);
    let ns: Api<Namespace> = Api::all(world.client(DST));
    assert_eq!(
        ns.get(NS).await.unwrap().labels()["tprotect.io/relationship"],
        REL
    );
    let kinds: Vec<String> = events
        .acted()
        .iter()
        .map(|a| {
            serde_json::to_value(a).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "createReplicationSchedule",
            "createSnapshot",
            "copySecret",
            "copyAppVault",
            "createNamespace",
            "createAmr"
        ]
    );
    assert_eq!(world.leases().await, 0, "the lock is released");

    // ---- status and check
    let located = locate(&world.clusters, REL, None).await.unwrap();
    let observed = observe(&world.clusters, REL, &Scope::everything(located.namespaces()))
        .await
        .unwrap();
    let status = status_view(&observed, jiff::Timestamp::now());
    assert!(status.failover_possible, "{}", status.failover);
    assert_eq!(status.amr.as_ref().unwrap().state, "Established");
    assert_eq!(status.source_application.as_ref().unwrap().uid, src_uid);
    assert_eq!(status.clusters[1].role, "destination");
    let namespaces = [
        (ClusterKey::Context, "default".to_string()),
        (ClusterKey::Peer, "default".to_string()),
    ]
    .into();
    let webhooks = probe_webhooks(&world.clusters, &namespaces).await.unwrap();
    let items = preflight(&observed, &webhooks, jiff::Timestamp::now());
    let named = |level: Level| -> Vec<&str> {
        let at_level = items.iter().filter(|i| i.level == level);
        at_level.map(|i| i.name.as_str()).collect()
    };
    assert!(named(Level::Failed).is_empty(), "{items:#?}");
    // No webhook here: the plugin works without it, so that is a warning, not a failure.
    assert_eq!(
        named(Level::Warning),
        [
            "tprotect webhook on tprotect-source",
            "tprotect webhook on tprotect-destination"
        ],
        "{items:#?}"
    );

    // ---- failover (and again: already done, nothing written)
    let (_, events) = run_ok(&world, Goal::Failover { force: false }).await;
    assert_budget("failover", &events, 35);
    assert_amr(&world, DST, "Promoted", &src_uid, "src-vault").await;
    let dst_uid = world.app_uid(DST).await.expect("the promoted application");
    let before = world.env.mark().await.unwrap();
    let (again, events) = run_ok(&world, Goal::Failover { force: false }).await;
    assert_budget("failover of a failed-over relationship", &events, 10);
    assert!(again.message.contains("failed over"), "{}", again.message);
    assert!(events.acted().is_empty());
    assert_unchanged(
        &before,
        &world.env.mark().await.unwrap(),
        "a failover of a failed-over relationship (idempotent)",
    );
    // The user protects the promoted application on the destination.
    world.create(DST, user_schedule("dst-daily", "dst-vault")).await;

    // ---- resync: refused without confirmation (nothing changed), then confirmed
    let events = Events::default();
    let refused = world
        .run(
            Goal::Resync,
            RunOptions {
                confirm: Arc::new(|_| Err("refused in the test".into())),
                ..options(&events)
            },
        )
        .await;
    assert!(
        matches!(refused, Err(RunError::NotConfirmed { .. })),
        "{refused:?}"
    );
    assert_amr(&world, DST, "Promoted", &src_uid, "src-vault").await;
    assert_eq!(world.leases().await, 0);
    let asked = Arc::new(Mutex::new(Vec::new()));
    let asked_sink = asked.clone();
    let events = Events::default();
    world
        .run(
            Goal::Resync,
            RunOptions {
                confirm: Arc::new(move |warnings: &[String]| {
                    asked_sink.lock().unwrap().push(warnings.join("; "));
                    Ok(())
                }),
                ..options(&events)
            },
        )
        .await
        .unwrap();
    assert_eq!(asked.lock().unwrap().len(), 1, "one confirmation: {asked:?}");
    assert!(asked.lock().unwrap()[0].contains("DISCARD"), "{asked:?}");
    assert_amr(&world, DST, "Established", &src_uid, "src-vault").await;
    let amr = world.amr(DST).await.unwrap();
    assert_eq!(
        amr.annotations()["tprotect.io/discard-destination-changes"],
        "true"
    );
    assert!(
        world.schedules(DST).await.is_empty(),
        "schedules removed from the destination"
    );
    assert_eq!(
        world.saved(DST).await,
        [("dst-daily".to_string(), true)],
        "and kept"
    );
    assert_eq!(world.leases().await, 0);

    // ---- failover, then reverse-resync: the AMR moves to the source cluster, destination data kept
    run_ok(&world, Goal::Failover { force: false }).await;
    let dst_uid2 = world.app_uid(DST).await.expect("promoted again");
    assert_ne!(dst_uid, dst_uid2, "a new promotion, a new application");
    let (outcome, events) = run_ok(&world, Goal::ReverseResync).await;
    assert_budget("reverse-resync", &events, 150);
    assert_amr_cluster(&world, &outcome, ClusterKey::Context);
    assert_amr(&world, SRC, "Established", &dst_uid2, "dst-vault").await;
    let amr = world.amr(SRC).await.unwrap();
    assert_eq!(amr.spec.destination_app_vault_ref.as_deref(), Some("src-vault"));
    let src_schedules = world.schedules(SRC).await;
    assert!(
        src_schedules.is_empty(),
        "schedules removed from the new destination: {src_schedules:?}"
    );
    assert_eq!(world.saved(SRC).await, [("daily-backup".to_string(), true)]);
    let dst_schedules = world.schedules(DST).await;
    assert_eq!(
        dst_schedules.keys().collect::<Vec<_>>(),
        ["appmirror-schedule-rel1"]
    );
    assert_eq!(
        dst_schedules["appmirror-schedule-rel1"]
            .spec
            .app_vault_ref
            .as_deref(),
        Some("dst-vault")
    );
    for (kind, name) in [("AppVault", "dst-vault"), ("Secret", "dst-creds")] {
        let copied = match kind {
            "AppVault" => world
                .api::<AppVault>(SRC, TP)
                .get_opt(name)
                .await
                .unwrap()
                .is_some(),
            _ => world
                .api::<Secret>(SRC, TP)
                .get_opt(name)
                .await
                .unwrap()
                .is_some(),
        };
        assert!(copied, "{kind} {name} copied to the new destination");
    }
    assert_eq!(
        world.leases().await,
        0,
        "the record does not outlive the operation"
    );

    // ---- reverse (planned swap): back to the original direction, schedules re-enabled on the new source
    let (_, events) = run_ok(&world, Goal::Reverse).await;
    assert_budget("reverse", &events, 250);
    let src_uid_now = world.app_uid(SRC).await.unwrap();
    assert_amr(&world, DST, "Established", &src_uid_now, "src-vault").await;
    let shutdowns = world
        .api::<ShutdownSnapshot>(DST, NS)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(shutdowns.items.len(), 1, "one ShutdownSnapshot of the swap");
    assert_eq!(
        shutdowns.items[0].status.as_ref().unwrap().state.as_deref(),
        Some("Completed")
    );
    let src_schedules = world.schedules(SRC).await;
    assert_eq!(
        src_schedules.keys().collect::<Vec<_>>(),
        ["appmirror-schedule-rel1", "daily-backup"],
        "replication schedule created, the user's restored"
    );
    assert_eq!(src_schedules["daily-backup"].spec.enabled, Some(true));
    assert_eq!(
        src_schedules["daily-backup"].labels()["team"],
        "db",
        "restored with its labels"
    );
    assert!(
        world.saved(SRC).await.is_empty(),
        "restored schedules leave the saved list"
    );
    assert!(world.schedules(DST).await.is_empty());
    assert_eq!(world.leases().await, 0);

    // ---- failover, then failback: everything written on the destination kept, original direction again
    run_ok(&world, Goal::Failover { force: false }).await;
    assert_amr(&world, DST, "Promoted", &src_uid_now, "src-vault").await;
    let (outcome, events) = run_ok(&world, Goal::Failback).await;
    assert_budget("failback", &events, 360);
    assert_amr_cluster(&world, &outcome, ClusterKey::Peer);
    let src_uid_final = world.app_uid(SRC).await.unwrap();
    assert_amr(&world, DST, "Established", &src_uid_final, "src-vault").await;
    assert!(
        events.acted().iter().all(|a| !a.discards_data()),
        "a failback never discards: {:?}",
        events.acted()
    );
    let src_schedules = world.schedules(SRC).await;
    assert_eq!(
        src_schedules.keys().collect::<Vec<_>>(),
        ["appmirror-schedule-rel1", "daily-backup"]
    );
    assert_eq!(src_schedules["daily-backup"].spec.enabled, Some(true));
    assert!(world.schedules(DST).await.is_empty());
    assert_eq!(world.leases().await, 0);

    // ---- delete: two independent applications remain
    let (outcome, events) = run_ok(&world, Goal::Delete).await;
    assert_budget("delete", &events, 25);
    assert_eq!(outcome.amr_cluster, None);
    assert!(world.amr(SRC).await.is_none() && world.amr(DST).await.is_none());
    assert!(world.app_uid(SRC).await.is_some());
    assert_eq!(world.leases().await, 0);
    let (again, events) = run_ok(&world, Goal::Delete).await;
    assert!(again.message.contains("deleted"), "{}", again.message);
    assert!(events.acted().is_empty());
}

/// Sets the AMR's `status.error` as Trident protect's controller would (`null` clears it).
async fn set_status_error(amrs: &Api<AppMirrorRelationship>, error: Value) {
    amrs.patch_status(
        REL,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"error": error}})),
    )
    .await
    .unwrap();
}

/// Runs `goal` one action at a time, each in a fresh run that is dropped right after its action (as a killed
/// process would stop), until a run finds nothing left to do. Returns the number of runs.
async fn run_one_action_at_a_time(world: &World, goal: &Goal) -> usize {
    for round in 1..=60 {
        let events = Events::default();
        let sink = events.0.clone();
        let (acted_tx, acted_rx) = tokio::sync::oneshot::channel::<()>();
        let acted_tx = Mutex::new(Some(acted_tx));
        let opts = RunOptions {
            progress: Arc::new(move |event| {
                if matches!(event, Progress::Acted { .. })
                    && let Some(tx) = acted_tx.lock().unwrap().take()
                {
                    let _ = tx.send(());
                }
                sink.lock().unwrap().push(event);
            }),
            ..options(&Events::default())
        };
        let finished = tokio::select! {
            result = world.run(goal.clone(), opts) => Some(result),
            _ = acted_rx => None,
        };
        match finished {
            Some(Ok(_)) if events.acted().is_empty() => return round,
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!(
                "run {round} of {goal:?} failed: {e}\n{:#?}",
                events.0.lock().unwrap()
            ),
            None => {}
        }
    }
    panic!("{goal:?} did not finish in 60 interrupted runs");
}

/// Runs `goal` interrupted after each of its planned actions: one run per action, then one that finds it done.
async fn interrupted_after_every_action(world: &World, goal: Goal) {
    let planned = plan_only(&world.clusters, REL, &goal, None).await.unwrap();
    let actions = planned.iter().filter(|s| matches!(s, Step::Act(_))).count();
    let runs = run_one_action_at_a_time(world, &goal).await;
    assert_eq!(
        runs,
        actions + 1,
        "one run per planned action, then one that finds it done: {planned:#?}"
    );
}

#[tokio::test]
async fn interrupted_after_every_step_reverse_and_failback_end_where_an_uninterrupted_run_ends() {
    let world = World::start().await;
    world.prerequisites().await;
    run_ok(&world, setup_goal()).await;
    let src_uid = world.app_uid(SRC).await.unwrap();

    // --dry-run=client of a failback changes nothing, takes no lock, and lists the steps.
    run_ok(&world, Goal::Failover { force: false }).await;
    let before = world.env.mark().await.unwrap();
    let steps = plan_only(&world.clusters, REL, &Goal::Failback, None)
        .await
        .unwrap();
    assert!(matches!(steps.last(), Some(Step::Done(_))), "{steps:#?}");
    assert!(steps.len() > 15, "{steps:#?}");
    let events = Events::default();
    let dry = world
        .dry_run(Goal::Failback, DryRun::Client, &events)
        .await
        .unwrap();
    assert!(dry.message.contains("nothing was sent"), "{}", dry.message);
    assert_unchanged(&before, &world.env.mark().await.unwrap(), "--dry-run=client");

    // --dry-run=server: every write sent with dryRun=All, nothing stored.
    let events = Events::default();
    let dry = world
        .dry_run(Goal::Failback, DryRun::Server, &events)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{:#?}", events.0.lock().unwrap()));
    assert!(dry.message.contains("dryRun=All"), "{}", dry.message);
    assert!(!events.acted().is_empty());
    assert_unchanged(&before, &world.env.mark().await.unwrap(), "--dry-run=server");
    let events = audit::read_all(&world.env.testbed.destination.audit_log).unwrap();
    assert!(
        events.iter().any(|e| e.by_plugin() && e.is_dry_run()),
        "dry-run writes reached the API server, attributed to our user agent"
    );

    // Failback, interrupted after each of its steps, then reverse the same way.
    interrupted_after_every_action(&world, Goal::Failback).await;
    let src_uid_final = world.app_uid(SRC).await.unwrap();
    assert_eq!(
        src_uid_final, src_uid,
        "the source application is the original one again"
    );
    assert_amr(&world, DST, "Established", &src_uid, "src-vault").await;
    let schedules = world.schedules(SRC).await;
    assert_eq!(
        schedules.keys().collect::<Vec<_>>(),
        ["appmirror-schedule-rel1", "daily-backup"]
    );
    assert_eq!(schedules["daily-backup"].spec.enabled, Some(true), "nothing lost");
    assert!(world.schedules(DST).await.is_empty());
    assert!(world.saved(SRC).await.is_empty() && world.saved(DST).await.is_empty());
    assert_eq!(world.leases().await, 0);

    interrupted_after_every_action(&world, Goal::Reverse).await;
    let dst_uid = world.app_uid(DST).await.unwrap();
    assert_amr(&world, SRC, "Established", &dst_uid, "dst-vault").await;
    let schedules = world.schedules(DST).await;
    assert_eq!(schedules.keys().collect::<Vec<_>>(), ["appmirror-schedule-rel1"]);
    assert_eq!(
        world.saved(SRC).await,
        [("daily-backup".to_string(), true)],
        "kept for the way back"
    );
    assert_eq!(world.leases().await, 0);
}

#[tokio::test]
async fn lock_refusal_takeover_and_other_operation_in_progress() {
    let world = World::start().await;
    world.prerequisites().await;
    run_ok(&world, setup_goal()).await;
    run_ok(&world, Goal::Failover { force: false }).await;
    let leases: Api<Lease> = world.api(DST, NS);
    let lease = |holder: &str, renewed: jiff::Timestamp| {
        let at = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(renewed);
        Lease {
            metadata: kube::core::ObjectMeta {
                name: Some("tprotect-rel1".into()),
                namespace: Some(NS.into()),
                labels: Some([("tprotect.io/relationship".to_string(), REL.to_string())].into()),
                ..Default::default()
            },
            spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(30),
                acquire_time: Some(at.clone()),
                renew_time: Some(at),
                ..Default::default()
            }),
        }
    };
    let now = jiff::Timestamp::now();
    // Held by a live holder elsewhere: refused, with who and since when; nothing changed.
    leases
        .create(&PostParams::default(), &lease("alice@elsewhere/pid 42", now))
        .await
        .unwrap();
    let before = world.env.mark().await.unwrap();
    let refused = world.run(Goal::Failback, options(&Events::default())).await;
    let Err(RunError::Locked { holder, cluster, .. }) = &refused else {
        panic!("{refused:?}")
    };
    assert_eq!(holder, "alice@elsewhere/pid 42");
    assert_eq!(cluster, DST);
    let text = refused.unwrap_err().to_string();
    assert!(
        text.contains("is locked by alice@elsewhere/pid 42 since") && text.contains("run it again after"),
        "{text}"
    );
    assert_unchanged(
        &before,
        &world.env.mark().await.unwrap(),
        "a failback refused by the lock",
    );

    // Expired: taken over, the failback runs, the Lease is gone at the end.
    leases.delete("tprotect-rel1", &Default::default()).await.unwrap();
    let old = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(120);
    leases
        .create(&PostParams::default(), &lease("alice@elsewhere/pid 42", old))
        .await
        .unwrap();
    run_ok(&world, Goal::Failback).await;
    assert_eq!(world.leases().await, 0);
    let src_uid = world.app_uid(SRC).await.unwrap();
    assert_amr(&world, DST, "Established", &src_uid, "src-vault").await;

    // A record of another operation: the planner refuses, and the record is kept for its own command.
    run_ok(&world, Goal::Failover { force: false }).await;
    let events = Events::default();
    let stalled = world
        .run(
            Goal::ReverseResync,
            RunOptions {
                no_wait: true,
                ..options(&events)
            },
        )
        .await
        .unwrap();
    assert!(stalled.message.contains("started"), "{}", stalled.message);
    assert_eq!(world.leases().await, 1, "the record is kept for the re-run");
    let other = world
        .run(Goal::Failover { force: false }, options(&Events::default()))
        .await;
    assert!(
        matches!(
            &other,
            Err(RunError::Plan(
                tprotect_lifecycle::PlanError::OtherOperationInProgress { .. }
            ))
        ),
        "{other:?}"
    );
    assert_eq!(world.leases().await, 1);
    run_ok(&world, Goal::ReverseResync).await;
    assert_eq!(world.leases().await, 0);
    let src_dst_uid = world.app_uid(DST).await.unwrap();
    assert_amr(&world, SRC, "Established", &src_dst_uid, "dst-vault").await;
}

#[tokio::test]
async fn failover_with_the_source_down_timeouts_failures_and_watch_latency() {
    let world = World::start().await;
    world.prerequisites().await;
    run_ok(&world, setup_goal()).await;

    // A promotion that never completes: a timeout, with the last state seen.
    world.faults.stall(Transition::Promote, Some(REL));
    let events = Events::default();
    let timed_out = world
        .run(
            Goal::Failover { force: false },
            RunOptions {
                timeout: Duration::from_secs(3),
                ..options(&events)
            },
        )
        .await;
    let Err(RunError::Timeout {
        last_state, cluster, ..
    }) = &timed_out
    else {
        panic!("{timed_out:?}")
    };
    assert_eq!(cluster, DST);
    assert_eq!(last_state, "Promoting");
    // The failover stays recorded in the Lease (without a holder): `status` shows it in progress, other
    // operations refuse until it is finished (the same command, again) or given up (--abandon).
    assert_eq!(
        world.leases().await,
        1,
        "the failover's record is kept for the next run"
    );

    // While a run waits, it renews its Lease every 10 s.
    let leases: Api<Lease> = world.api(DST, NS);
    let long_run = world.run(
        Goal::Failover { force: false },
        RunOptions {
            timeout: Duration::from_secs(25),
            ..options(&Events::default())
        },
    );
    let watch_renewals = async {
        let mut renewed = false;
        for _ in 0..240 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let spec = leases
                .get_opt("tprotect-rel1")
                .await
                .unwrap()
                .and_then(|l| l.spec);
            if let Some(spec) = spec
                && spec.renew_time.is_some()
                && spec.renew_time != spec.acquire_time
            {
                renewed = true;
                break;
            }
        }
        renewed
    };
    let (long_run, renewed) = tokio::join!(long_run, watch_renewals);
    assert!(matches!(long_run, Err(RunError::Timeout { .. })), "{long_run:?}");
    assert!(renewed, "the Lease was renewed while the run waited");
    assert_eq!(world.leases().await, 1, "resumed, and kept again");

    // An error alone never fails the run (NetApp: "may not be permanent, so progress may continue"): it is
    // reported once, and the run waits on until its timeout, whose message carries it.
    let amrs: Api<AppMirrorRelationship> = world.api(DST, NS);
    let events = Events::default();
    let run_waiting = world.run(
        Goal::Failover { force: false },
        RunOptions {
            timeout: Duration::from_secs(4),
            ..options(&events)
        },
    );
    let inject = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        set_status_error(&amrs, json!("ONTAP: SVM peer relationship missing")).await;
    };
    let (waited, ()) = tokio::join!(run_waiting, inject);
    let Err(RunError::Timeout { last_error, .. }) = &waited else {
        panic!("{waited:?}")
    };
    assert!(
        last_error
            .as_deref()
            .is_some_and(|e| e.contains("SVM peer relationship missing")),
        "{last_error:?}"
    );
    assert_eq!(
        events
            .warnings()
            .iter()
            .filter(|w| w.contains("SVM peer"))
            .count(),
        1,
        "reported once: {:?}",
        events.warnings()
    );
    set_status_error(&amrs, json!(null)).await;

    // Watch latency: time from a status change to the wait noticing it.
    let wait = WaitFor::AmrState {
        cluster: ClusterKey::Peer,
        namespace: NS.into(),
        name: REL.into(),
        state: "Promoted".into(),
    };
    let amr_resource = tprotect_lifecycle::observe::resource::<AppMirrorRelationship>();
    let dynamic: Api<DynamicObject> = Api::namespaced_with(world.client(DST), NS, &amr_resource);
    let mut latencies = Vec::new();
    for i in 0..5 {
        let seen: Fingerprint = object_fingerprint(&wait, &dynamic.get(REL).await.unwrap());
        let waiter = async {
            let outcome = wait_for_change(
                &world.clusters,
                &wait,
                Some(&seen),
                Instant::now() + Duration::from_secs(30),
            )
            .await;
            (outcome, Instant::now())
        };
        let change = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let sent = Instant::now();
            set_status_error(&amrs, json!(format!("probe {i}"))).await;
            (sent, Instant::now())
        };
        let ((outcome, noticed_at), (sent, stored)) = tokio::join!(waiter, change);
        assert!(
            matches!(outcome, Ok(WaitOutcome::Changed(Some(_)))),
            "{outcome:?}"
        );
        assert!(
            noticed_at >= sent,
            "the wait returned before the change was sent: it saw an older one"
        );
        latencies.push((noticed_at - sent, noticed_at.saturating_duration_since(stored)));
    }
    latencies.sort();
    eprintln!(
        "MEASURED watch latency, 5 samples of (status patch sent -> wait returned, patch answered -> wait returned): {latencies:?}"
    );
    set_status_error(&amrs, json!(null)).await;
    world.faults.release(Transition::Promote, Some(REL));
    eventually("Promoted once released", async || {
        (world.amr(DST).await?.state() == Some("Promoted")).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    run_ok(&world, Goal::Resync).await;

    // The source API server down: a failover still works, with a warning.
    world.env.testbed.source.stop_apiserver();
    let (outcome, events) = run_ok(&world, Goal::Failover { force: false }).await;
    assert_amr_cluster(&world, &outcome, ClusterKey::Peer);
    assert!(
        events
            .warnings()
            .iter()
            .any(|w| w.contains(SRC) && w.contains("unreachable")),
        "{:?}",
        events.warnings()
    );
    assert_eq!(world.amr(DST).await.unwrap().state(), Some("Promoted"));
    // An operation that needs both clusters is refused, naming the unreachable one; nothing changes.
    let refused = world.run(Goal::ReverseResync, options(&Events::default())).await;
    let text = refused
        .as_ref()
        .map(|o| o.message.clone())
        .unwrap_or_else(|e| e.to_string());
    assert!(
        matches!(
            &refused,
            Err(RunError::Plan(tprotect_lifecycle::PlanError::Unreachable { .. }))
        ),
        "{text}"
    );
    assert!(text.contains(SRC), "{text}");
    assert_eq!(world.amr(DST).await.unwrap().state(), Some("Promoted"));
    world.env.testbed.source.start_apiserver().await.unwrap();
}
