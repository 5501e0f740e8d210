//! Monitoring of replication (`manifests/monitoring/`) and the DR viewer role (`manifests/rbac/dr-viewer.yaml`).
//!
//! - The shipped alert rules pass `promtool check rules`, and their unit tests (`tests/monitoring/`, every alert
//!   driven with series as two webhook replicas export them) pass `promtool test rules`. The PrometheusRule
//!   holds the same groups as the plain rules file.
//! - End to end: a REAL Prometheus (Debian's) scrapes two real webhook replicas on loopback, with the shipped
//!   rules file loaded unchanged, while the Trident protect stand-in replicates two relationships on real API
//!   servers. One keeps replicating: no alert for it, ever. The other's transfers are stalled (the stand-in's
//!   fault injection): the lag warning, then the critical alert, become firing, read from Prometheus' own API.
//!   The relationships' interval is one minute (`FREQ=MINUTELY;INTERVAL=1`, which NetApp allows for an AMR), so
//!   the shipped thresholds (lag > 2 and >= 3 intervals, each for 1m) are reached in minutes, without touching
//!   the rules.
//! - The DR viewer role grants no access to Secrets and changes nothing; with only it bound, `status`, `check`
//!   and `preview` run end to end (check reporting what it may not read as "not verified").

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Api, ApiResource, DynamicObject};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tprotect_e2e::Identity;
use tprotect_localenv::manifests::{apply_manifest, read_yaml};
use tprotect_localenv::{
    DESTINATION, Fixtures, LocalEnv, LocalEnvOptions, Output, Plugin, ServeOptions, Setup, TRIDENT, Webhook,
    WebhookOptions, WebhookTarget, apply, eventually, free_port, protect,
};
use tprotect_standin::{Faults, StandInConfig, Transition};
use tprotect_testbed::process::{Lifetime, ManagedProcess};

const RULES: &str = "manifests/monitoring/tprotect.rules.yaml";
const PROMETHEUS_RULE: &str = "manifests/monitoring/prometheusrule.yaml";
const RULE_TESTS: &str = "tests/monitoring/tprotect.rules.test.yaml";
const VIEWER_ROLE: &str = "manifests/rbac/dr-viewer.yaml";
const VIEWER_BINDING: &str = "manifests/rbac/dr-viewer-binding-example.yaml";

fn root() -> PathBuf {
    tprotect_e2e::workspace_root()
}

fn yaml_documents(path: &Path) -> Vec<Value> {
    read_yaml(path).unwrap_or_else(|e| panic!("{e}"))
}

fn promtool() -> PathBuf {
    tprotect_testbed::install::ensure_prometheus()
        .expect("Debian's prometheus package (promtool)")
        .promtool
}

fn run(command: &mut Command) -> (bool, String) {
    let output = command.output().expect("the command starts");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

// ---------------------------------------------------------------------------------------------------------------
// The rules, without a cluster

#[test]
fn the_shipped_rules_pass_promtool_check_in_both_forms() {
    let (ok, out) = run(Command::new(promtool())
        .args(["check", "rules"])
        .arg(root().join(RULES)));
    assert!(ok, "promtool check rules {RULES}:\n{out}");
    assert!(out.contains("SUCCESS: 5 rules found"), "{out}");
    // The PrometheusRule's groups, as the operator hands them to Prometheus.
    let rule = yaml_documents(&root().join(PROMETHEUS_RULE)).remove(0);
    let dir = tempfile::tempdir().unwrap();
    let extracted = dir.path().join("from-prometheusrule.yaml");
    std::fs::write(
        &extracted,
        serde_norway::to_string(&json!({"groups": rule["spec"]["groups"]})).unwrap(),
    )
    .unwrap();
    let (ok, out) = run(Command::new(promtool()).args(["check", "rules"]).arg(&extracted));
    assert!(ok && out.contains("SUCCESS: 5 rules found"), "{out}");
}

#[test]
fn the_prometheusrule_holds_the_same_groups_as_the_rules_file() {
    let plain = yaml_documents(&root().join(RULES)).remove(0);
    let rule = yaml_documents(&root().join(PROMETHEUS_RULE)).remove(0);
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(
        rule["spec"]["groups"], plain["groups"],
        "{PROMETHEUS_RULE} and {RULES} differ"
    );
}

#[test]
fn promtool_unit_tests_drive_every_alert() {
    let (ok, out) = run(Command::new(promtool())
        .args(["test", "rules"])
        .arg(root().join(RULE_TESTS)));
    assert!(
        ok && out.contains("SUCCESS"),
        "promtool test rules {RULE_TESTS}:\n{out}"
    );
    // Each alert of the rules is asserted to fire somewhere in the tests (an expected alert names it).
    let tests = yaml_documents(&root().join(RULE_TESTS)).remove(0);
    let mut fired: BTreeMap<String, usize> = BTreeMap::new();
    for test in tests["tests"].as_array().unwrap() {
        for case in test["alert_rule_test"].as_array().into_iter().flatten() {
            let expected = case["exp_alerts"].as_array().map_or(0, Vec::len);
            *fired
                .entry(case["alertname"].as_str().unwrap().to_string())
                .or_default() += expected;
        }
    }
    let plain = yaml_documents(&root().join(RULES)).remove(0);
    for group in plain["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let alert = rule["alert"].as_str().unwrap();
            assert!(
                fired.get(alert).is_some_and(|n| *n > 0),
                "no promtool test expects {alert} to fire: {fired:?}"
            );
            // Every alert names the relationship (or, for the absent metrics, the placeholder) and the command.
            let command = rule["annotations"]["command"].as_str().unwrap_or_default();
            assert!(
                command.starts_with("kubectl tprotect status ")
                    || command.starts_with("kubectl tprotect check "),
                "{alert}: {command}"
            );
        }
    }
}

/// The ServiceMonitor scrapes what the webhook's Service serves, keeps the metrics' `namespace`, and the
/// kustomization builds both operator objects.
#[test]
fn the_servicemonitor_scrapes_the_webhook_service_and_the_kustomization_builds() {
    let monitor = yaml_documents(&root().join("manifests/monitoring/servicemonitor.yaml")).remove(0);
    let service = yaml_documents(&root().join("manifests/webhook/base/service.yaml")).remove(0);
    assert_eq!(monitor["kind"], "ServiceMonitor");
    assert_eq!(monitor["metadata"]["namespace"], service["metadata"]["namespace"]);
    assert_eq!(
        monitor["spec"]["namespaceSelector"]["matchNames"],
        json!([service["metadata"]["namespace"]])
    );
    for (key, value) in monitor["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&service["metadata"]["labels"][key], value, "Service label {key}");
    }
    let endpoints = monitor["spec"]["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1);
    let port = &endpoints[0]["port"];
    assert!(
        service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| &p["name"] == port),
        "the Service has no port {port}"
    );
    assert_eq!(endpoints[0]["path"], "/metrics");
    assert_eq!(
        endpoints[0]["honorLabels"], true,
        "the metrics' own namespace label must win"
    );
    let (ok, out) = run(Command::new("kubectl")
        .args(["kustomize"])
        .arg(root().join("manifests/monitoring")));
    assert!(ok, "kubectl kustomize manifests/monitoring: {out}");
    let kinds: Vec<Value> = serde_norway::Deserializer::from_str(&out)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .map(|v: Value| v["kind"].clone())
        .collect();
    assert_eq!(kinds.len(), 2, "{out}");
    assert!(
        kinds.contains(&json!("ServiceMonitor")) && kinds.contains(&json!("PrometheusRule")),
        "{out}"
    );
}

/// The verbs a role's rules grant on each `group/resource` (resourceNames noted).
fn grants(role: &Value) -> Vec<(String, String, Option<Value>)> {
    let mut out = Vec::new();
    for rule in role["rules"].as_array().into_iter().flatten() {
        for group in rule["apiGroups"].as_array().into_iter().flatten() {
            for resource in rule["resources"].as_array().into_iter().flatten() {
                for verb in rule["verbs"].as_array().into_iter().flatten() {
                    out.push((
                        verb.as_str().unwrap().to_string(),
                        format!("{}/{}", group.as_str().unwrap(), resource.as_str().unwrap()),
                        rule.get("resourceNames").cloned(),
                    ));
                }
            }
        }
    }
    out
}

#[test]
fn the_dr_viewer_role_grants_nothing_on_secrets_and_changes_nothing() {
    let roles = yaml_documents(&root().join(VIEWER_ROLE));
    assert_eq!(roles.len(), 2);
    for role in &roles {
        assert_eq!(role["kind"], "ClusterRole");
        assert!(
            role.get("aggregationRule").is_none(),
            "an aggregated role could gain anything"
        );
        for (verb, resource, _) in grants(role) {
            assert!(
                ["get", "list", "watch"].contains(&verb.as_str()),
                "{}: {verb} {resource} is not read-only",
                role["metadata"]["name"]
            );
            assert!(
                !resource.ends_with("/secrets") && !resource.contains('*'),
                "{}: {verb} {resource} reaches Secrets",
                role["metadata"]["name"]
            );
        }
        assert!(
            role["rules"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r.get("nonResourceURLs").is_none()),
            "{role:#}"
        );
    }
    // The binding example binds exactly these two roles.
    let bound: Vec<Value> = yaml_documents(&root().join(VIEWER_BINDING))
        .iter()
        .map(|b| b["roleRef"]["name"].clone())
        .collect();
    assert_eq!(
        bound,
        vec![
            json!("tprotect-dr-viewer"),
            json!("tprotect-dr-viewer-trident-protect")
        ]
    );
    // The webhook's ServiceAccount reads AppMirrorRelationships and nothing else, metrics or not.
    let webhook = yaml_documents(&root().join("manifests/webhook/base/rbac.yaml"))
        .into_iter()
        .find(|d| d["kind"] == "ClusterRole")
        .unwrap();
    let mut granted: Vec<(String, String)> = grants(&webhook).into_iter().map(|(v, r, _)| (v, r)).collect();
    granted.sort();
    let amr = "protect.trident.netapp.io/appmirrorrelationships".to_string();
    assert_eq!(
        granted,
        vec![
            ("get".to_string(), amr.clone()),
            ("list".to_string(), amr.clone()),
            ("watch".to_string(), amr)
        ]
    );
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP on loopback (Prometheus' API, the webhook's /metrics). HTTP/1.0: no chunked bodies, the server closes.

async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.ok()?;
    let response = String::from_utf8_lossy(&response);
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    Some((status, body.to_string()))
}

/// `text` percent-encoded for a query string.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------------------
// Prometheus with the shipped rules

/// Alert rules are evaluated, and the webhooks scraped, this often (the shipped rules' thresholds and `for`s
/// are unchanged).
const PROMETHEUS_INTERVAL: &str = "2s";

struct Prometheus {
    process: ManagedProcess,
    addr: SocketAddr,
}

impl Prometheus {
    async fn start(dir: &Path, targets: &[SocketAddr]) -> Prometheus {
        let binaries = tprotect_testbed::install::ensure_prometheus().expect("Debian's prometheus package");
        let addr: SocketAddr = ([127, 0, 0, 1], free_port().expect("a free port")).into();
        let targets: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
        let config = json!({
            "global": {"scrape_interval": PROMETHEUS_INTERVAL, "evaluation_interval": PROMETHEUS_INTERVAL},
            "rule_files": [root().join(RULES)],
            "scrape_configs": [{
                "job_name": "tprotect-webhook",
                // As the shipped ServiceMonitor: the metrics' own `namespace` label wins.
                "honor_labels": true,
                "static_configs": [{"targets": targets}],
            }],
        });
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, serde_norway::to_string(&config).unwrap()).unwrap();
        let args = vec![
            format!("--config.file={}", config_path.display()),
            format!("--storage.tsdb.path={}", dir.join("prometheus-data").display()),
            format!("--web.listen-address={addr}"),
        ];
        let setpriv = tprotect_testbed::install::which("setpriv").expect("setpriv (util-linux)");
        let process = ManagedProcess::spawn(
            "prometheus",
            &setpriv,
            &binaries.prometheus,
            &args,
            &dir.join("prometheus.log"),
            Lifetime::TiedToProcess,
        )
        .expect("prometheus starts");
        let prometheus = Prometheus { process, addr };
        eventually("Prometheus ready", async || {
            let (status, _) = http_get(prometheus.addr, "/-/ready").await?;
            (status == 200).then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}; its log ends:\n{}", prometheus.process.log_tail(20)));
        prometheus
    }

    async fn api(&self, path: &str) -> Option<Value> {
        let (status, body) = http_get(self.addr, path).await?;
        let value: Value = serde_json::from_str(&body).ok()?;
        (status == 200 && value["status"] == "success").then(|| value["data"].clone())
    }

    /// The samples of an instant query, as (labels, value).
    async fn query(&self, query: &str) -> Vec<(Value, f64)> {
        let data = self
            .api(&format!("/api/v1/query?query={}", url_encode(query)))
            .await
            .unwrap_or_else(|| panic!("query {query} failed; log:\n{}", self.process.log_tail(20)));
        data["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["metric"].clone(),
                    s["value"][1].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect()
    }

    async fn alerts(&self) -> Vec<Value> {
        self.api("/api/v1/alerts").await.expect("GET /api/v1/alerts")["alerts"]
            .as_array()
            .unwrap()
            .clone()
    }
}

/// An AppMirrorRelationship `name` in `<name>-dr` replicating Application `name` (namespace `name`) every minute.
fn amr(name: &str, app_uid: &str) -> Value {
    // DTSTART in the past, on a whole minute (UTC), as NetApp requires.
    let start = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    let start = jiff::Timestamp::from_second(start.as_second() - start.as_second() % 60).unwrap();
    let dtstart = start.strftime("%Y%m%dT%H%M%SZ");
    json!({
        "apiVersion": tprotect_api::API_VERSION,
        "kind": "AppMirrorRelationship",
        "metadata": {"name": name, "namespace": format!("{name}-dr"),
                     "labels": {tprotect_api::RELATIONSHIP_LABEL: name}},
        "spec": {
            "desiredState": "Established",
            "sourceAppVaultRef": "src-vault",
            "destinationAppVaultRef": "dst-vault",
            "sourceApplicationName": name,
            "sourceApplicationUID": app_uid,
            "namespaceMapping": [{"source": name, "destination": format!("{name}-dr")}],
            "recurrenceRule": format!("DTSTART:{dtstart}\nRRULE:FREQ=MINUTELY;INTERVAL=1"),
        },
    })
}

fn completion_of(amr: &DynamicObject) -> Option<jiff::Timestamp> {
    amr.data["status"]["lastTransfer"]["completionTimestamp"]
        .as_str()?
        .parse()
        .ok()
}

/// Seconds since `since`, for the log.
fn secs(since: jiff::Timestamp, at: jiff::Timestamp) -> f64 {
    at.duration_since(since).as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_fires_the_lag_alerts_of_stalled_transfers_and_never_of_replicating_ones() {
    let faults = Faults::new();
    let webhook_binary = tprotect_e2e::webhook_binary();
    let standin = StandInConfig {
        // A one-minute interval passes in 10 s: both relationships transfer every 10 real seconds
        // (timestamps written are real time, so the lag the webhook measures is real).
        time_scale: 6.0,
        faults: faults.clone(),
        ..StandInConfig::from_env().expect("TPROTECT_STANDIN_PROFILE")
    }
    .with_delays(Duration::from_millis(200));
    // The webhook on both clusters, from the product's manifests, as its own ServiceAccount (which may read
    // AppMirrorRelationships and nothing else).
    let webhook = WebhookOptions::new(webhook_binary.clone());
    let env = LocalEnv::start(
        LocalEnvOptions::netapp()
            .with_standin(standin)
            .with_webhook(webhook),
    )
    .await
    .expect("clusters, stand-in and webhooks started (NetApp's CRDs are read from ../shared)");
    let (src, dst) = (
        env.testbed.source.client.clone(),
        env.testbed.destination.client.clone(),
    );
    let dir = tempfile::tempdir().unwrap();

    // Two applications on the source, their relationships on the destination (the source AppVault copied there,
    // as setup would; AMRs written as NetApp's guides write them, through the registered webhook).
    let mut uids = BTreeMap::new();
    for app in ["shop", "pay"] {
        env.install_fixtures(Fixtures::app(app)).await.unwrap();
        let apps: Api<DynamicObject> =
            Api::namespaced_with(src.clone(), app, &protect("Application", "applications"));
        uids.insert(app, apps.get(app).await.unwrap().metadata.uid.unwrap());
        apply(
            &dst,
            None,
            &ApiResource::erase::<Namespace>(&()),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("{app}-dr")}}),
        )
        .await
        .unwrap();
    }
    let vault =
        Api::<DynamicObject>::namespaced_with(src.clone(), TRIDENT, &protect("AppVault", "appvaults"))
            .get("src-vault")
            .await
            .unwrap();
    let secret = Api::<Secret>::namespaced(src.clone(), TRIDENT)
        .get("src-vault-creds")
        .await
        .unwrap();
    apply(
        &dst,
        Some(TRIDENT),
        &ApiResource::erase::<Secret>(&()),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "src-vault-creds"}, "data": secret.data}),
    )
    .await
    .unwrap();
    apply(
        &dst,
        Some(TRIDENT),
        &protect("AppVault", "appvaults"),
        json!({"apiVersion": tprotect_api::API_VERSION, "kind": "AppVault",
               "metadata": {"name": "src-vault"}, "spec": vault.data["spec"]}),
    )
    .await
    .unwrap();
    let amr_resource = protect("AppMirrorRelationship", "appmirrorrelationships");
    for app in ["shop", "pay"] {
        apply(
            &dst,
            Some(&format!("{app}-dr")),
            &amr_resource,
            amr(app, &uids[app]),
        )
        .await
        .unwrap();
    }
    let amr_api =
        |app: &str| Api::<DynamicObject>::namespaced_with(dst.clone(), &format!("{app}-dr"), &amr_resource);
    for app in ["shop", "pay"] {
        eventually(&format!("{app} Established with a transfer"), async || {
            let amr = amr_api(app).get(app).await.ok()?;
            (amr.data["status"]["state"] == "Established" && completion_of(&amr).is_some()).then_some(())
        })
        .await
        .unwrap();
    }

    // Two webhook replicas on the destination, as the Deployment runs two: the environment's, and a second one
    // started the same way (it takes over the registration; both watch and export). Prometheus scrapes both.
    let first = env.webhook(DESTINATION).expect("the destination's webhook");
    let second = Webhook::start_on(
        dir.path(),
        &WebhookTarget {
            client: dst.clone(),
            context: DESTINATION.into(),
            kubeconfig: env.kubeconfig().to_path_buf(),
            watch_context: env.testbed.destination.context_as(Identity::Webhook),
        },
        &webhook_binary,
        &ServeOptions::default(),
    )
    .await
    .expect("a second webhook replica");
    let prometheus = Prometheus::start(dir.path(), &[first.health, second.health]).await;
    eventually(
        "both replicas' RPO targets of both relationships in Prometheus",
        async || (prometheus.query("tprotect_amr_rpo_seconds == 60").await.len() == 4).then_some(()),
    )
    .await
    .unwrap();
    let rules = eventually("the shipped rules loaded and evaluated", async || {
        let data = prometheus.api("/api/v1/rules").await?;
        let rules: Vec<Value> = data["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        (rules.len() == 5 && rules.iter().all(|r| r["health"] == "ok")).then_some(rules)
    })
    .await
    .unwrap();
    eprintln!("Prometheus evaluates {} rules from {RULES}", rules.len());

    // Stall pay's transfers; the lag is measured from the last one pay completed.
    faults.stall(Transition::Transfer, Some("pay"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stalled_at = completion_of(&amr_api("pay").get("pay").await.unwrap()).unwrap();
    eprintln!("pay's transfers stalled; its last transfer completed at {stalled_at}");

    // Until pay's critical alert fires: never an alert for shop, nor any other alert; one alert per severity for
    // pay, however many replicas export it.
    // Per severity: when Prometheus made the alert active (pending), and when this test first saw it firing.
    let mut active_at: BTreeMap<String, jiff::Timestamp> = BTreeMap::new();
    let mut firing_seen: BTreeMap<String, jiff::Timestamp> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(480);
    let last_alerts = loop {
        let alerts = prometheus.alerts().await;
        for alert in &alerts {
            let labels = &alert["labels"];
            assert_eq!(labels["alertname"], "TProtectReplicationLag", "{alert:#}");
            assert_eq!(
                labels["relationship"], "pay",
                "only the stalled relationship alerts: {alert:#}"
            );
            assert_eq!(labels["namespace"], "pay-dr", "{alert:#}");
            assert!(
                labels.get("instance").is_none(),
                "aggregated across replicas: {alert:#}"
            );
            let severity = labels["severity"].as_str().unwrap().to_string();
            let active: jiff::Timestamp = alert["activeAt"].as_str().unwrap().parse().unwrap();
            active_at.entry(severity.clone()).or_insert(active);
            if alert["state"] == "firing" {
                firing_seen.entry(severity).or_insert_with(jiff::Timestamp::now);
            }
        }
        let per_severity = |severity: &str| {
            alerts
                .iter()
                .filter(|a| a["labels"]["severity"] == severity)
                .count()
        };
        assert!(
            per_severity("warning") <= 1 && per_severity("critical") <= 1,
            "{alerts:#?}"
        );
        if alerts
            .iter()
            .any(|a| a["labels"]["severity"] == "critical" && a["state"] == "firing")
        {
            break alerts;
        }
        assert!(
            Instant::now() < deadline,
            "pay's critical alert not firing {}s after its transfers stalled; active: {active_at:?}; firing: {firing_seen:?}; alerts: {alerts:#?}",
            secs(stalled_at, jiff::Timestamp::now())
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let (warning_active, critical_active) = (active_at["warning"], active_at["critical"]);
    let warning_firing = *firing_seen
        .get("warning")
        .expect("the warning fired before the critical alert");
    let critical_firing = firing_seen["critical"];
    eprintln!(
        "after the last transfer: warning active (pending) at {:.0}s, seen firing at {:.0}s; critical active at {:.0}s, seen firing at {:.0}s",
        secs(stalled_at, warning_active),
        secs(stalled_at, warning_firing),
        secs(stalled_at, critical_active),
        secs(stalled_at, critical_firing),
    );
    // The thresholds hold: no alert before the lag passed 2 (warning) and 3 (critical) intervals of 60 s, and
    // the warning fired first.
    assert!(
        secs(stalled_at, warning_active) > 120.0,
        "warning active too early"
    );
    assert!(
        secs(stalled_at, critical_active) >= 180.0,
        "critical active too early"
    );
    assert!(warning_firing < critical_firing);
    let warning = last_alerts
        .iter()
        .find(|a| a["labels"]["severity"] == "warning")
        .expect("the warning still fires with the critical alert");
    assert_eq!(
        warning["annotations"]["command"],
        "kubectl tprotect status pay -n pay-dr --context <this cluster> --peer-context <its peer>"
    );
    assert_eq!(warning["labels"]["source_application"], "pay");

    // shop replicated all along: transfers counted by both replicas, lag within the interval.
    let shop_transfers = prometheus
        .query(r#"min(tprotect_amr_transfers_total{relationship="shop"})"#)
        .await;
    assert!(
        shop_transfers[0].1 >= 10.0,
        "shop transfers seen: {shop_transfers:?}"
    );
    let shop_lag = prometheus
        .query(r#"max(tprotect_amr_lag_seconds{relationship="shop"})"#)
        .await;
    assert!(shop_lag[0].1 < 60.0, "shop's lag: {shop_lag:?}");
    let healthy = prometheus
        .query("min by (relationship) (tprotect_amr_healthy)")
        .await;
    let healthy: BTreeMap<String, f64> = healthy
        .into_iter()
        .map(|(labels, v)| (labels["relationship"].as_str().unwrap().to_string(), v))
        .collect();
    assert_eq!(
        healthy,
        BTreeMap::from([("pay".into(), 0.0), ("shop".into(), 1.0)])
    );

    // Transfers again: the alerts resolve.
    faults.release(Transition::Transfer, Some("pay"));
    let released = Instant::now();
    eventually("pay's alerts resolved", async || {
        prometheus.alerts().await.is_empty().then_some(())
    })
    .await
    .unwrap();
    eprintln!(
        "after the stall was released, no alert after {:.0}s",
        released.elapsed().as_secs_f64()
    );
    drop(second);
}

// ---------------------------------------------------------------------------------------------------------------
// The DR viewer role end to end

/// `kubectl tprotect <args>`, never printing a Secret's value.
async fn tprotect(plugin: &Plugin, args: &[&str]) -> Output {
    let out = plugin.run(args).await.expect("kubectl-tprotect runs");
    eprintln!("{}{}", out.stdout, out.stderr);
    assert!(
        !out.stdout.contains("do-not-print-me") && !out.stderr.contains("do-not-print-me"),
        "a Secret's value was printed"
    );
    out
}

fn can_i(env: &LocalEnv, context: &str, args: &[&str]) -> String {
    let output = env
        .testbed
        .kubectl(context)
        .args(["auth", "can-i"])
        .args(args)
        .output()
        .expect("kubectl runs");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_check_and_preview_work_with_only_the_dr_viewer_role() {
    let options = LocalEnvOptions::netapp()
        .with_standin(StandInConfig::from_env().expect("TPROTECT_STANDIN_PROFILE"))
        .with_webhook(WebhookOptions::new(tprotect_e2e::webhook_binary()));
    let env = LocalEnv::start(options)
        .await
        .expect("clusters, stand-in and webhooks started (NetApp's CRDs are read from ../shared)");
    env.install_fixtures(Fixtures::app("shop")).await.unwrap();
    let plugin = Plugin::new(tprotect_e2e::plugin_binary(), env.kubeconfig());
    let setup = tprotect(
        &plugin,
        &Setup::new("shop", "shop", "shop-dr").args(&["--interval", "5m"]),
    )
    .await;
    assert_eq!(setup.code, 0, "setup as admin");

    // The viewer (`alice`, no other permission) gets the viewer roles on both clusters, bound as the example
    // binds them, with alice as the subject.
    for cluster in [&env.testbed.source, &env.testbed.destination] {
        apply_manifest(&cluster.client, &root().join(VIEWER_ROLE))
            .await
            .unwrap();
        for mut binding in yaml_documents(&root().join(VIEWER_BINDING)) {
            binding["subjects"] =
                json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]);
            let namespace = binding["metadata"]["namespace"].as_str().map(str::to_string);
            let resource = match binding["kind"].as_str().unwrap() {
                "ClusterRoleBinding" => ApiResource::erase::<ClusterRoleBinding>(&()),
                "RoleBinding" => ApiResource::erase::<RoleBinding>(&()),
                other => panic!("unexpected {other} in {VIEWER_BINDING}"),
            };
            apply(&cluster.client, namespace.as_deref(), &resource, binding)
                .await
                .unwrap();
        }
    }
    let (viewer_src, viewer_dst) = (
        env.testbed.source.context_as(Identity::Viewer),
        env.testbed.destination.context_as(Identity::Viewer),
    );
    for viewer in [&viewer_src, &viewer_dst] {
        assert_eq!(
            can_i(&env, viewer, &["list", "appmirrorrelationships", "-A"]),
            "yes"
        );
        for refused in [
            vec!["list", "secrets", "-n", TRIDENT],
            vec!["get", "secrets", "-n", TRIDENT],
            vec!["list", "secrets", "-A"],
            vec!["patch", "appmirrorrelationships", "-n", "shop-dr"],
            vec!["create", "schedules", "-n", "shop"],
            vec!["delete", "leases", "-n", "shop-dr"],
        ] {
            assert_eq!(can_i(&env, viewer, &refused), "no", "{viewer}: {refused:?}");
        }
    }

    let on = [
        "--context",
        viewer_dst.as_str(),
        "--peer-context",
        viewer_src.as_str(),
        "-n",
        "shop-dr",
    ];
    let with = |verb: &[&'static str]| -> Vec<String> {
        verb.iter().chain(on.iter()).map(|s| s.to_string()).collect()
    };
    fn args(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    let out = tprotect(&plugin, &args(&with(&["status", "shop", "-o", "json"]))).await;
    assert_eq!(out.code, 0, "status as the viewer");
    let view: Value = serde_json::from_str(&out.stdout).expect("status -o json");
    assert_eq!(view["amr"]["state"], "Established", "{view:#}");
    assert_eq!(view["amr"]["cluster"], viewer_dst.as_str());

    let out = tprotect(&plugin, &args(&with(&["check", "shop"]))).await;
    assert_eq!(
        out.code, 0,
        "check as the viewer: nothing fails, what it may not read is not verified"
    );
    assert!(out.stdout.contains("not verified"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("no permission to read Secret objects in trident-protect"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("FAILED") && !out.stderr.contains("checks failed"),
        "{}{}",
        out.stdout,
        out.stderr
    );

    let out = tprotect(&plugin, &args(&with(&["preview", "shop"]))).await;
    assert_eq!(out.code, 0, "preview as the viewer");
    assert!(out.stdout.contains("environment"), "{}", out.stdout);

    // And the viewer cannot change anything: a failover is refused by RBAC, the AMR untouched.
    let out = tprotect(&plugin, &args(&with(&["failover", "shop", "--yes"]))).await;
    assert_ne!(out.code, 0, "a failover as the viewer must fail");
    assert!(
        out.stderr.contains("alice"),
        "the refusal names the user: {}",
        out.stderr
    );
    let amrs: Api<DynamicObject> = Api::namespaced_with(
        env.testbed.destination.client.clone(),
        "shop-dr",
        &protect("AppMirrorRelationship", "appmirrorrelationships"),
    );
    assert_eq!(
        amrs.get("shop").await.unwrap().data["spec"]["desiredState"],
        "Established"
    );
}
