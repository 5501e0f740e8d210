//! The whole replication lifecycle through the real `kubectl-tprotect` binary, on two real local clusters
//! with the Trident protect stand-in and the real webhook: setup → status → failover → resync → failover →
//! reverse-resync → reverse → failback → delete, with both clusters asserted after each step.
//!
//! Every command runs as the testbed's `dr-operator` (contexts `*-operator`), who has nothing but the DR
//! operator roles of `manifests/rbac/`: that they suffice for every command is part of what this proves.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::ApiResource;
use serde_json::Value;
use tprotect_api::{AppVault, Application, Schedule};
use tprotect_e2e::localenv::observe::resource;
use tprotect_e2e::localenv::plugin::read_until;
use tprotect_e2e::localenv::{Fixtures, Setup, apply, assert_unchanged, audit};
use tprotect_e2e::{
    DESTINATION as DST, LocalEnv, SOURCE as SRC, TRIDENT as TP, WebhookOptions, fast_standin_as, plugin,
    plugin_env, webhook_binary,
};
use tprotect_standin::Profile;

/// The DR operator's contexts (only the operator ClusterRoles bound).
const SRC_OP: &str = "tprotect-source-operator";
const DST_OP: &str = "tprotect-destination-operator";
/// An annotation both Trident protect (its ConfigMap) and the webhook are told to leave alone on failover.
const SKIPPED: &str = "team.example.com/owner";

const REL: &str = "rel1";
const APP: &str = "app1";
const DST_NS: &str = "app1-dr";

/// Both contexts, in the order given.
fn on<'a>(context: &'a str, peer: &'a str, namespace: &'a str) -> Vec<&'a str> {
    vec!["--context", context, "--peer-context", peer, "-n", namespace]
}

fn args<'a>(base: &[&'a str], rest: &[&'a str]) -> Vec<&'a str> {
    base.iter().chain(rest).copied().collect()
}

/// `rest` run by the source's operator: the source context, the destination as peer, the app's namespace.
fn from_source<'a>(rest: &[&'a str]) -> Vec<&'a str> {
    args(&on(SRC_OP, DST_OP, APP), rest)
}

/// `rest` run by the destination's operator: the destination context, the source as peer, its namespace.
fn from_destination<'a>(rest: &[&'a str]) -> Vec<&'a str> {
    args(&on(DST_OP, SRC_OP, DST_NS), rest)
}

#[track_caller]
fn assert_amr(amr: &Option<Value>, namespace: &str, desired: &str, state: &str) -> Value {
    let amr = amr
        .clone()
        .unwrap_or_else(|| panic!("no AMR (expected {desired}/{state} in {namespace})"));
    assert_eq!(amr["metadata"]["namespace"], namespace, "{amr:#}");
    assert_eq!(amr["spec"]["desiredState"], desired, "{amr:#}");
    assert_eq!(amr["status"]["state"], state, "{amr:#}");
    assert_eq!(
        amr["metadata"]["labels"]["tprotect.io/relationship"], REL,
        "{amr:#}"
    );
    amr
}

async fn uid_of(
    env: &LocalEnv,
    context: &str,
    resource: &ApiResource,
    namespace: &str,
    name: &str,
) -> anyhow::Result<String> {
    let object = env
        .get(context, resource, Some(namespace), name)
        .await?
        .unwrap_or_else(|| panic!("{} {namespace}/{name} on {context}", resource.kind));
    Ok(object["metadata"]["uid"].as_str().unwrap().to_string())
}

async fn schedules(env: &LocalEnv, context: &str, namespace: &str) -> anyhow::Result<Vec<(String, bool)>> {
    let mut found: Vec<(String, bool)> = env
        .list(context, &resource::<Schedule>())
        .await?
        .into_iter()
        .filter(|s| s["metadata"]["namespace"] == namespace)
        .map(|s| {
            (
                s["metadata"]["name"].as_str().unwrap().to_string(),
                s["spec"]["enabled"].as_bool().unwrap_or(true),
            )
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Asserts that no Schedule is in `namespace` on `context`.
async fn assert_no_schedules(env: &LocalEnv, context: &str, namespace: &str) -> anyhow::Result<()> {
    let left = schedules(env, context, namespace).await?;
    assert!(left.is_empty(), "schedules in {namespace} on {context}: {left:?}");
    Ok(())
}

/// The source's schedules while it is the source: the application's own and the replication one, enabled.
fn source_schedules() -> Vec<(String, bool)> {
    vec![
        (format!("{APP}-hourly"), true),
        (format!("appmirror-schedule-{REL}"), true),
    ]
}

/// Whether the `K` named `name` (in `namespace`) is on `context`.
async fn exists<K: kube::Resource<DynamicType = ()>>(
    env: &LocalEnv,
    context: &str,
    namespace: Option<&str>,
    name: &str,
) -> anyhow::Result<bool> {
    Ok(env
        .get(context, &resource::<K>(), namespace, name)
        .await?
        .is_some())
}

async fn no_locks(env: &LocalEnv) -> anyhow::Result<()> {
    let summary = env.summary(REL).await?;
    assert_eq!(
        summary[&format!("{SRC} locks")],
        serde_json::json!([]),
        "lock left on {SRC}"
    );
    assert_eq!(
        summary[&format!("{DST} locks")],
        serde_json::json!([]),
        "lock left on {DST}"
    );
    Ok(())
}

/// The one Application in `namespace` on `context`: the promoted one. The stand-in's variant names it otherwise
/// than the source's and creates it a moment after the AMR reports Promoted, as a controller may: waited for.
async fn promoted_app(env: &LocalEnv, context: &str, namespace: &str) -> anyhow::Result<Value> {
    Ok(tprotect_e2e::eventually(
        &format!("one Application in {namespace} on {context}"),
        async || {
            let apps: Vec<Value> = env
                .list(context, &resource::<Application>())
                .await
                .ok()?
                .into_iter()
                .filter(|a| a["metadata"]["namespace"] == namespace)
                .collect();
            match apps.as_slice() {
                [one] => Some(one.clone()),
                _ => None,
            }
        },
    )
    .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_lifecycle_through_the_binary_with_both_clusters_asserted_after_each_step() -> anyhow::Result<()>
{
    whole_lifecycle(fast_standin_as(Profile::Documented)).await
}

/// The same walk against the stand-in's other reading of what NetApp leaves undocumented
/// (docs/trident-protect-fields.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_lifecycle_under_the_variant_reading_of_the_undocumented_parts() -> anyhow::Result<()> {
    whole_lifecycle(fast_standin_as(Profile::Variant)).await
}

async fn whole_lifecycle(standin: tprotect_standin::StandInConfig) -> anyhow::Result<()> {
    let webhook =
        WebhookOptions::new(webhook_binary()).env_on_both("RESTORE_SKIP_NAMESPACE_ANNOTATIONS", SKIPPED);
    let mut env = plugin_env(standin, Some(webhook)).await?;
    let tp = plugin(&env);
    // Timed once the clusters are up (building the binaries and starting the testbed are not counted).
    let started = std::time::Instant::now();
    env.bind_operator_role().await?;
    env.install_fixtures(Fixtures::app(APP)).await?;
    apply(
        &env.client(DST)?,
        Some(TP),
        &resource::<ConfigMap>(),
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "trident-protect-env-config"},
                           "data": {"RESTORE_SKIP_NAMESPACE_ANNOTATIONS": SKIPPED}}),
    )
    .await?;
    let source_app_uid = uid_of(&env, SRC, &resource::<Application>(), APP, APP).await?;

    // setup: everything on both clusters, then Established.
    let out = tp
        .run(
            &Setup {
                contexts: [SRC_OP, DST_OP],
                ..Setup::new(REL, APP, DST_NS)
            }
            .args(&["--interval", "5m"]),
        )
        .await?;
    out.ok().stdout_has(REL);
    let amr = assert_amr(&env.amr(DST, REL).await?, DST_NS, "Established", "Established");
    assert_eq!(amr["spec"]["sourceApplicationUID"], source_app_uid.as_str());
    assert_eq!(amr["spec"]["sourceApplicationName"], APP);
    assert_eq!(amr["spec"]["namespaceMapping"][0]["source"], APP);
    assert_eq!(amr["spec"]["namespaceMapping"][0]["destination"], DST_NS);
    let rule = amr["spec"]["recurrenceRule"].as_str().unwrap();
    assert!(
        rule.starts_with("DTSTART:") && rule.ends_with("Z\nRRULE:FREQ=MINUTELY;INTERVAL=5"),
        "{rule}"
    );
    assert!(env.amr(SRC, REL).await?.is_none(), "no AMR on the source");
    assert!(
        exists::<AppVault>(&env, DST, Some(TP), "src-vault").await?,
        "source vault copied"
    );
    assert!(
        exists::<Secret>(&env, DST, Some(TP), "src-vault-creds").await?,
        "source vault's Secret copied"
    );
    assert!(exists::<Namespace>(&env, DST, None, DST_NS).await?);
    assert_eq!(schedules(&env, SRC, APP).await?, source_schedules());
    assert!(
        !out.stdout.contains("do-not-print-me") && !out.stderr.contains("do-not-print-me"),
        "secret leaked"
    );
    no_locks(&env).await?;

    // status, from either side, in every format.
    let out = tp.run(&from_source(&["status", REL])).await?;
    out.ok()
        .stdout_has("Relationship rel1")
        .stdout_has("Established")
        .stdout_has(&format!("{DST_NS}/{REL} on {DST}"));
    let out = tp.run(&from_destination(&["status", REL, "-o", "json"])).await?;
    out.ok();
    let view: Value = serde_json::from_str(&out.stdout).expect("status -o json");
    assert_eq!(view["amr"]["state"], "Established");
    assert_eq!(view["amr"]["cluster"], DST_OP);
    assert_eq!(view["sourceApplication"]["uid"], source_app_uid.as_str());
    assert_eq!(view["failoverPossible"], true, "{view:#}");
    let out = tp.run(&from_source(&["status", "-A", "-o", "yaml"])).await?;
    out.ok().stdout_has("relationship: rel1");

    // check: every preflight item passes.
    let out = tp.run(&from_destination(&["check", REL])).await?;
    out.ok()
        .stdout_has("passed")
        .stdout_has("tprotect webhook on")
        .stdout_has("answers: it refused an invalid replication Schedule");
    assert!(!out.stdout.contains("FAILED"), "{}", out.stdout);

    // preview: what the failover will do to the destination namespace, skip rules included.
    let out = tp.run(&from_source(&["preview", REL])).await?;
    out.ok()
        .stdout_has("environment")
        .stdout_has("added")
        .stdout_has("skipped");
    let out = tp.run(&from_source(&["preview", REL, "-o", "json"])).await?;
    out.ok();
    let preview: Value = serde_json::from_str(&out.stdout).expect("preview -o json");
    let keys = preview[0]["keys"].as_array().expect("keys");
    let change = |key: &str| {
        keys.iter()
            .find(|k| k["key"] == key)
            .unwrap_or_else(|| panic!("{key} not previewed: {preview:#}"))
            .clone()
    };
    assert_eq!(change("environment")["change"], "added");
    assert_eq!(change("name")["change"], "added");
    assert_eq!(
        change("name")["new"],
        DST_NS,
        "the name label follows the namespace"
    );
    assert_eq!(change(SKIPPED)["change"], "skipped");
    assert!(
        change(SKIPPED)["rule"]
            .as_str()
            .unwrap()
            .contains("RESTORE_SKIP_NAMESPACE_ANNOTATIONS")
    );

    // failover: Promoted; again: already so, exit 0. `status --watch` follows it as it happens.
    let mut watch = tp.spawn(&from_source(&["status", REL, "--watch", "-o", "json"]))?;
    // The first view, before the change.
    // A view ends with its last field, `operationInProgress`.
    let mut seen = read_until(&mut watch, "the first view", |s| {
        s.contains("operationInProgress")
    })
    .await?;
    let out = tp.run(&from_source(&["failover", REL])).await?;
    out.ok();
    seen += &read_until(&mut watch, "a Promoted view", |s| {
        s.rsplit_once("\"state\": \"Promoted\"")
            .is_some_and(|(_, rest)| rest.contains("operationInProgress"))
    })
    .await?;
    let views: Vec<Value> = serde_json::Deserializer::from_str(&seen)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .expect("status --watch -o json prints JSON documents");
    assert!(
        views.len() >= 2,
        "the first view, then at least one change: {seen}"
    );
    assert_eq!(views[0]["amr"]["state"], "Established");
    assert_eq!(views.last().unwrap()["amr"]["state"], "Promoted");
    let _ = watch.start_kill();
    assert_amr(&env.amr(DST, REL).await?, DST_NS, "Promoted", "Promoted");
    promoted_app(&env, DST, DST_NS)
        .await
        .expect("destination app runs");
    assert_eq!(
        env.get(SRC, &resource::<Application>(), Some(APP), APP)
            .await?
            .expect("the source application")["metadata"]["uid"],
        source_app_uid.as_str(),
        "source app untouched"
    );
    let ns = env
        .get(DST, &resource::<Namespace>(), None, DST_NS)
        .await?
        .expect("the destination namespace");
    assert_eq!(
        ns["metadata"]["labels"]["environment"], "production",
        "source labels merged: {ns:#}"
    );
    assert_eq!(
        ns["metadata"]["labels"]["name"], DST_NS,
        "name label follows the namespace: {ns:#}"
    );
    no_locks(&env).await?;
    let out = tp.run(&from_destination(&["failover", REL])).await?;
    out.ok().stdout_has("nothing to do");

    // resync without a terminal and without --yes: refused, nothing changed but the lock taken and released
    // (confirmation is asked under the lock). The stand-in is stopped meanwhile: it writes on its own.
    env.stop_standin().await;
    let before = env.mark().await?;
    let out = tp.run(&from_destination(&["resync", REL])).await?;
    out.expect_code(1).stderr_has("--yes");
    assert_amr(&env.amr(DST, REL).await?, DST_NS, "Promoted", "Promoted");
    assert_nothing_but_the_lock_changed(&env, &before, "refused resync").await?;
    // On a terminal: the relationship's name must be typed. A wrong answer refuses, nothing changed.
    let resync = from_destination(&["resync", REL]);
    let before = env.mark().await?;
    let out = tp.run_on_terminal(&resync, "yes\n").await?;
    out.expect_code(1)
        .stdout_has("Type the relationship name (rel1)")
        .stdout_has("DISCARDING")
        .stdout_has("confirmation failed");
    assert_nothing_but_the_lock_changed(&env, &before, "resync refused on a terminal").await?;
    env.restart_standin().await?;
    // The right name: destination changes discarded, Established again.
    let out = tp.run_on_terminal(&resync, "rel1\n").await?;
    out.ok();
    let amr = assert_amr(&env.amr(DST, REL).await?, DST_NS, "Established", "Established");
    assert_eq!(
        amr["metadata"]["annotations"]["tprotect.io/discard-destination-changes"],
        "true"
    );
    assert!(env.amr(SRC, REL).await?.is_none());
    assert_no_schedules(&env, DST, DST_NS).await?;
    no_locks(&env).await?;

    // failover again.
    tp.run(&from_source(&["failover", REL])).await?.ok();
    assert_amr(&env.amr(DST, REL).await?, DST_NS, "Promoted", "Promoted");
    let promoted_uid = promoted_app(&env, DST, DST_NS).await?["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // reverse-resync: the AMR moves to the original source, replicating the promoted app back; kept.
    tp.run(&from_source(&["reverse-resync", REL])).await?.ok();
    assert!(
        env.amr(DST, REL).await?.is_none(),
        "AMR left the original destination"
    );
    let amr = assert_amr(&env.amr(SRC, REL).await?, APP, "Established", "Established");
    assert_eq!(
        amr["spec"]["sourceApplicationUID"],
        promoted_uid.as_str(),
        "replicates the promoted app"
    );
    assert_eq!(amr["spec"]["namespaceMapping"][0]["source"], DST_NS);
    assert_eq!(amr["spec"]["namespaceMapping"][0]["destination"], APP);
    assert_eq!(amr["spec"]["sourceAppVaultRef"], "dst-vault");
    assert_eq!(amr["spec"]["destinationAppVaultRef"], "src-vault");
    assert!(
        exists::<AppVault>(&env, SRC, Some(TP), "dst-vault").await?,
        "new source vault copied"
    );
    assert_eq!(
        schedules(&env, DST, DST_NS).await?,
        vec![(format!("appmirror-schedule-{REL}"), true)],
        "replication schedule on the new source"
    );
    assert_no_schedules(&env, SRC, APP).await?;
    no_locks(&env).await?;

    // reverse: planned swap back; nothing lost, the original source's schedules come back.
    tp.run(&from_destination(&["reverse", REL])).await?.ok();
    assert!(env.amr(SRC, REL).await?.is_none(), "AMR left the original source");
    let amr = assert_amr(&env.amr(DST, REL).await?, DST_NS, "Established", "Established");
    assert_eq!(amr["spec"]["namespaceMapping"][0]["source"], APP);
    assert_eq!(amr["spec"]["sourceAppVaultRef"], "src-vault");
    assert_eq!(
        schedules(&env, SRC, APP).await?,
        source_schedules(),
        "protection schedule restored and enabled on the source"
    );
    assert_no_schedules(&env, DST, DST_NS).await?;
    assert_eq!(
        env.list(DST, &resource::<tprotect_api::ShutdownSnapshot>())
            .await?
            .len(),
        1,
        "one ShutdownSnapshot taken on the swapped-out source"
    );
    no_locks(&env).await?;

    // failback of a relationship that is not failed over: refused, nothing changed. The stand-in is stopped
    // meanwhile: its replication schedule (5 min, a simulated clock 60 × real time) snapshots every 5 s, a
    // change no command made.
    env.stop_standin().await;
    let before = env.mark().await?;
    let out = tp.run(&from_source(&["failback", REL])).await?;
    out.expect_code(1).stderr_has("not failed over").stderr_has(DST);
    assert_unchanged(&before, &env.mark().await?, "refused failback");
    env.restart_standin().await?;

    // failover, then failback: home again, nothing lost.
    tp.run(&from_source(&["failover", REL])).await?.ok();
    assert_amr(&env.amr(DST, REL).await?, DST_NS, "Promoted", "Promoted");
    tp.run(&from_source(&["failback", REL])).await?.ok();
    assert!(env.amr(SRC, REL).await?.is_none());
    let amr = assert_amr(&env.amr(DST, REL).await?, DST_NS, "Established", "Established");
    assert_eq!(amr["spec"]["namespaceMapping"][0]["source"], APP);
    assert_eq!(amr["spec"]["namespaceMapping"][0]["destination"], DST_NS);
    assert_eq!(
        schedules(&env, SRC, APP).await?,
        source_schedules(),
        "the original source has its schedules, enabled"
    );
    assert_no_schedules(&env, DST, DST_NS).await?;
    no_locks(&env).await?;

    // delete: no AMR anywhere; the applications remain.
    tp.run(&from_destination(&["delete", REL])).await?.ok();
    assert!(env.amr(SRC, REL).await?.is_none() && env.amr(DST, REL).await?.is_none());
    assert!(
        exists::<Application>(&env, SRC, Some(APP), APP).await?,
        "source app remains"
    );
    no_locks(&env).await?;
    // Gone: deleting it again is an error, as kubectl's delete of a missing object is, unless asked not to be.
    let out = tp.run(&from_destination(&["delete", REL])).await?;
    out.expect_code(1)
        .stderr_has("not found")
        .stderr_has("--ignore-not-found");
    let out = tp
        .run(&from_destination(&["delete", REL, "--ignore-not-found"]))
        .await?;
    out.ok().stdout_has("not found");
    eprintln!("whole lifecycle: {:.1}s", started.elapsed().as_secs_f64());

    least_privilege(&env)
}

/// Nothing changed since `before` but the relationship's lock, taken and released (no Lease remains).
async fn assert_nothing_but_the_lock_changed(
    env: &LocalEnv,
    before: &tprotect_e2e::localenv::Mark,
    what: &str,
) -> anyhow::Result<()> {
    let lock = format!("/tprotect-{REL}");
    let changes: Vec<String> = env
        .mark()
        .await?
        .changes_since(before)?
        .into_iter()
        .filter(|change| {
            !((change.contains(" Lease ") || change.contains(" leases ")) && change.contains(&lock))
        })
        .collect();
    assert!(changes.is_empty(), "{what} changed:\n{}", changes.join("\n"));
    no_locks(env).await
}

/// Every rule of the DR operator roles is used by the walk above (per the API servers' audit logs), except
/// the few listed here that only other paths need: the ClusterRole grants what the commands use, nothing more.
fn least_privilege(env: &LocalEnv) -> anyhow::Result<()> {
    use std::collections::BTreeSet;
    // (verb, group/resource) granted for paths this walk does not take, and why.
    let other_paths: BTreeSet<(&str, &str)> = [
        // setup --create-app
        ("create", "protect.trident.netapp.io/applications"),
        // setup --initial-snapshot, and waiting for it
        ("create", "protect.trident.netapp.io/snapshots"),
        ("watch", "protect.trident.netapp.io/snapshots"),
        // a wait happens only when the ShutdownSnapshot is not complete at the first look
        ("watch", "protect.trident.netapp.io/shutdownsnapshots"),
        // a lock found held (two operations at once, plugin_safety), taken over when expired or orphaned
        ("get", "coordination.k8s.io/leases"),
        ("update", "coordination.k8s.io/leases"),
        // a planned swap from a source with enabled protection schedules (plugin_resume's reverse)
        ("patch", "protect.trident.netapp.io/schedules"),
        // saving schedules into an existing saved-schedules ConfigMap
        ("update", "/configmaps"),
        // --abandon keeps the record it gives up in an Event (plugin_guards)
        ("create", "/events"),
    ]
    .into();
    let mut used: BTreeSet<(String, String)> = BTreeSet::new();
    for log in [&env.testbed.source.audit_log, &env.testbed.destination.audit_log] {
        for event in audit::read_all(log)? {
            if event.user.username != "dr-operator" || !event.is_complete() {
                continue;
            }
            let (group, resource) = event
                .object_ref
                .map(|o| (o.api_group, o.resource))
                .unwrap_or_default();
            used.insert((event.verb, format!("{group}/{resource}")));
        }
    }
    let manifests = tprotect_e2e::workspace_root().join("manifests/rbac/dr-operator.yaml");
    let text = std::fs::read_to_string(&manifests).unwrap();
    let mut unused = Vec::new();
    for document in serde_norway::Deserializer::from_str(&text) {
        let role: Value = serde::Deserialize::deserialize(document).unwrap();
        for rule in role["rules"].as_array().into_iter().flatten() {
            for group in rule["apiGroups"].as_array().into_iter().flatten() {
                for resource in rule["resources"].as_array().into_iter().flatten() {
                    for verb in rule["verbs"].as_array().into_iter().flatten() {
                        let (verb, resource) = (
                            verb.as_str().unwrap().to_string(),
                            format!("{}/{}", group.as_str().unwrap(), resource.as_str().unwrap()),
                        );
                        if !used.contains(&(verb.clone(), resource.clone()))
                            && !other_paths.contains(&(verb.as_str(), resource.as_str()))
                        {
                            unused.push(format!("{verb} {resource}"));
                        }
                    }
                }
            }
        }
    }
    let also_used: Vec<String> = other_paths
        .iter()
        .filter(|(v, r)| used.contains(&(v.to_string(), r.to_string())))
        .map(|(v, r)| format!("{v} {r}"))
        .collect();
    eprintln!("DR operator rules used by the walk although listed as needed elsewhere: {also_used:?}");
    assert!(
        unused.is_empty(),
        "granted in {} but used by no command of the walk (and not listed as needed elsewhere): {unused:?}\nused: {used:#?}",
        manifests.display()
    );
    Ok(())
}
