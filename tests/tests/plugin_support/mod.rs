//! Shared by the plugin's end-to-end tests (`plugin_*.rs`): two real local clusters (the testbed), the
//! Trident protect stand-in controller acting on both, optionally the real webhook registered on both API
//! servers, the real `kubectl-tprotect` binary, fixtures, and ways to look at both clusters.

#![allow(dead_code)] // each test file uses its own part of this module

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::Resource;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tprotect_api::{AppMirrorRelationship, AppVault, Application, Schedule, ShutdownSnapshot, Snapshot};
use tprotect_e2e::{Identity, Testbed};
use tprotect_standin::{StandIn, StandInConfig, StandInHandle};

pub const SRC: &str = "tprotect-source";
pub const DST: &str = "tprotect-destination";
pub const TP: &str = "trident-protect";

/// How a test environment is started.
#[derive(Debug, Clone, Default)]
pub struct EnvOptions {
    /// Run the real webhook, one process per cluster, registered by URL on its API server.
    pub webhook: bool,
    /// `RESTORE_*` variables for the webhooks.
    pub webhook_env: Vec<(String, String)>,
}

/// One test's world.
pub struct Env {
    pub testbed: Testbed,
    standin: Option<StandInHandle>,
    /// The stand-in's clients (Trident protect's controller identity), to start it again.
    controller_clients: (kube::Client, kube::Client),
    webhooks: Vec<Webhook>,
    pub plugin: PathBuf,
    _dir: tempfile::TempDir,
}

/// What a run of the plugin did.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub args: Vec<String>,
}

impl Out {
    /// Panics with everything the run printed unless it exited `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            code,
            "kubectl tprotect {} exited {} (expected {code})\n--- stdout\n{}\n--- stderr\n{}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.expect_code(0)
    }

    /// Shows what the command said on stderr (in the test's log: the messages users get).
    pub fn show(&self) -> &Self {
        eprintln!("    stderr of kubectl tprotect {}:", self.args.join(" "));
        for line in self.stderr.lines() {
            eprintln!("    | {line}");
        }
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "stderr of kubectl tprotect {} lacks {text:?}:\n{}\n--- stdout\n{}",
            self.args.join(" "),
            self.stderr,
            self.stdout
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, text: &str) -> &Self {
        assert!(
            self.stdout.contains(text),
            "stdout of kubectl tprotect {} lacks {text:?}:\n{}\n--- stderr\n{}",
            self.args.join(" "),
            self.stdout,
            self.stderr
        );
        self
    }
}

/// A webhook process; killed on drop.
struct Webhook {
    child: tokio::process::Child,
    cluster: String,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

pub fn resource<K: Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

/// The stand-in, fast: transitions in 150 ms, recurrences 60 times faster than real time.
fn spawn_standin(clients: &(kube::Client, kube::Client)) -> StandInHandle {
    StandIn::new(
        clients.0.clone(),
        clients.1.clone(),
        StandInConfig {
            time_scale: 60.0,
            source_name: SRC.into(),
            destination_name: DST.into(),
            ..StandInConfig::default()
        }
        .with_delays(Duration::from_millis(150)),
    )
    .spawn()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Env {
    pub async fn start(options: EnvOptions) -> Env {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let clock = Instant::now();
        let plugin = tprotect_e2e::plugin_binary();
        let webhook_binary = options.webhook.then(tprotect_e2e::webhook_binary);
        eprintln!(
            "[{:>6.1}s] binaries built (cargo build)",
            clock.elapsed().as_secs_f64()
        );
        let clock = Instant::now();
        let testbed = Testbed::start().await.expect("testbed started");
        eprintln!("[{:>6.1}s] testbed started", clock.elapsed().as_secs_f64());
        let dir = tempfile::tempdir().expect("temp dir");
        let controller_clients = (
            testbed
                .source
                .client_as(Identity::Controller)
                .await
                .expect("controller client"),
            testbed
                .destination
                .client_as(Identity::Controller)
                .await
                .expect("controller client"),
        );
        let standin = spawn_standin(&controller_clients);
        let mut env = Env {
            testbed,
            standin: Some(standin),
            controller_clients,
            webhooks: Vec::new(),
            plugin,
            _dir: dir,
        };
        if let Some(binary) = webhook_binary {
            for context in [SRC, DST] {
                let webhook = env.start_webhook(&binary, context, &options.webhook_env).await;
                env.webhooks.push(webhook);
            }
            eprintln!("[{:>6.1}s] webhooks registered", clock.elapsed().as_secs_f64());
        }
        env
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.testbed.kubeconfig
    }

    /// Admin client of a cluster by context name.
    pub fn client(&self, context: &str) -> kube::Client {
        match context {
            SRC => self.testbed.source.client.clone(),
            DST => self.testbed.destination.client.clone(),
            other => panic!("no cluster {other}"),
        }
    }

    /// Stops the stand-in (nothing but the plugin changes the clusters afterwards).
    pub async fn stop_standin(&mut self) {
        if let Some(standin) = self.standin.take() {
            standin.shutdown().await;
        }
    }

    /// Starts the stand-in again after [`Env::stop_standin`].
    pub async fn restart_standin(&mut self) {
        self.stop_standin().await;
        self.standin = Some(spawn_standin(&self.controller_clients));
    }

    async fn start_webhook(&self, binary: &Path, context: &str, env: &[(String, String)]) -> Webhook {
        let certs = self._dir.path().join(format!("certs-{context}"));
        let status = tokio::process::Command::new(binary)
            .args(["gen-certs", "--ip", "127.0.0.1", "--out-dir"])
            .arg(&certs)
            .stdout(Stdio::null())
            .status()
            .await
            .expect("run tprotect-webhook gen-certs");
        assert!(status.success(), "tprotect-webhook gen-certs failed");
        let (port, health) = (free_port(), free_port());
        let log = std::fs::File::create(self._dir.path().join(format!("webhook-{context}.log"))).unwrap();
        let mut command = tokio::process::Command::new(binary);
        command
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--health-listen", &format!("127.0.0.1:{health}")])
            .arg("--tls-cert")
            .arg(certs.join("tls.crt"))
            .arg("--tls-key")
            .arg(certs.join("tls.key"))
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(["--context", context])
            .env_remove("KUBECONFIG")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().expect("start tprotect-webhook");
        // Ready once its health port says so.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = tokio::net::TcpStream::connect(("127.0.0.1", health))
                .await
                .is_ok()
                && http_ok(health, "/readyz").await;
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "webhook for {context} not ready in 60s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let ca = std::fs::read(certs.join("ca.crt")).expect("ca.crt");
        register_webhook(&self.client(context), port, &ca).await;
        Webhook {
            child,
            cluster: context.to_string(),
        }
    }

    /// Runs `kubectl tprotect` with the testbed kubeconfig and `args`.
    pub async fn tprotect(&self, args: &[&str]) -> Out {
        self.tprotect_env(args, &[]).await
    }

    pub async fn tprotect_env(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut command = tokio::process::Command::new(&self.plugin);
        command
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(["--timeout", "120s"])
            .args(args)
            .env_remove("KUBECONFIG")
            .env_remove("TPROTECT_TEST_KILL_AFTER_STEP")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for (k, v) in env {
            command.env(k, v);
        }
        let started = Instant::now();
        let output = tokio::time::timeout(Duration::from_secs(300), command.output())
            .await
            .unwrap_or_else(|_| panic!("kubectl tprotect {} did not end in 300s", args.join(" ")))
            .expect("run kubectl-tprotect");
        eprintln!(
            "[{:>6.1}s] kubectl tprotect {} -> exit {:?}",
            started.elapsed().as_secs_f64(),
            args.join(" "),
            output.status.code()
        );
        Out {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Runs `kubectl tprotect` on a pseudo-terminal (util-linux `script`), typing `input`. stdout and stderr
    /// both arrive in `Out::stdout`, as on a terminal.
    pub async fn tprotect_tty(&self, args: &[&str], input: &str) -> Out {
        use tokio::io::AsyncWriteExt;
        let line = std::iter::once(self.plugin.display().to_string())
            .chain([
                "--kubeconfig".to_string(),
                self.kubeconfig().display().to_string(),
            ])
            .chain(["--timeout".to_string(), "120s".to_string()])
            .chain(args.iter().map(|a| a.to_string()))
            .map(|word| format!("'{word}'"))
            .collect::<Vec<_>>()
            .join(" ");
        let mut child = tokio::process::Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .env_remove("KUBECONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run script (util-linux) for a pseudo-terminal");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).await.expect("type the answer");
        let output = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
            .await
            .expect("kubectl-tprotect on a terminal ended")
            .expect("kubectl-tprotect output");
        drop(stdin);
        eprintln!(
            "[tty] kubectl tprotect {} -> exit {:?}",
            args.join(" "),
            output.status.code()
        );
        Out {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Starts `kubectl tprotect` in the background with stdout piped (for `--watch`); killed on drop.
    pub fn tprotect_spawn(&self, args: &[&str]) -> tokio::process::Child {
        tokio::process::Command::new(&self.plugin)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start kubectl-tprotect")
    }

    /// Runs `kubectl tprotect` with its stdout closed before it writes (as `| head` does once satisfied).
    pub async fn tprotect_closed_stdout(&self, args: &[&str]) -> Out {
        let mut child = tokio::process::Command::new(&self.plugin)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run kubectl-tprotect");
        drop(child.stdout.take());
        let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .expect("kubectl-tprotect ended")
            .expect("kubectl-tprotect output");
        Out {
            code: output.status.code().unwrap_or(-1),
            stdout: String::new(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Applies a YAML file with kubectl on `context`.
    pub async fn kubectl_apply(&self, context: &str, file: &Path) {
        let output = tokio::process::Command::from(self.testbed.kubectl(context))
            .args(["apply", "-f"])
            .arg(file)
            .output()
            .await
            .expect("run kubectl");
        assert!(
            output.status.success(),
            "kubectl apply -f {} on {context}: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Binds the DR operator ClusterRole(s) of `manifests/rbac/` to the testbed's `dr-operator` on both clusters.
    pub async fn bind_operator_role(&self) {
        let dir = tprotect_e2e::workspace_root().join("manifests/rbac");
        for context in [SRC, DST] {
            self.kubectl_apply(context, &dir.join("dr-operator.yaml")).await;
            self.kubectl_apply(context, &dir.join("dr-operator-binding-example.yaml"))
                .await;
        }
    }

    /// The fixtures of one application: on the source its namespace (with labels and annotations), the
    /// Application, a protection Schedule, the source AppVault and its Secret; on the destination the
    /// destination AppVault and its Secret. Waits until the stand-in reports both vaults Available.
    pub async fn fixtures(&self, app: &str) {
        self.fixtures_with(app, "src-vault", "dst-vault").await
    }

    /// [`Env::fixtures`] with the vaults named (their Secrets are `<vault>-creds`).
    pub async fn fixtures_with(&self, app: &str, src_vault: &str, dst_vault: &str) {
        let (src, dst) = (self.client(SRC), self.client(DST));
        create(
            &src,
            None,
            &ApiResource::erase::<Namespace>(&()),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {
                "name": app,
                "labels": {"environment": "production", "name": app},
                "annotations": {"team.example.com/owner": "payments"},
            }}),
        )
        .await;
        for (client, vault) in [(&src, src_vault), (&dst, dst_vault)] {
            let secret = format!("{vault}-creds");
            create(
                client,
                Some(TP),
                &ApiResource::erase::<Secret>(&()),
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret},
                       "stringData": {"accessKeyID": "AKIAEXAMPLE", "secretAccessKey": "do-not-print-me"}}),
            )
            .await;
            create(
                client,
                Some(TP),
                &resource::<AppVault>(),
                json!({"apiVersion": "protect.trident.netapp.io/v1", "kind": "AppVault", "metadata": {"name": vault},
                       "spec": {"providerType": "GenericS3",
                                "providerConfig": {"s3": {"bucketName": vault, "endpoint": "s3.example.com"}},
                                "providerCredentials": {
                                    "accessKeyID": {"valueFromSecret": {"key": "accessKeyID", "name": secret}},
                                    "secretAccessKey": {"valueFromSecret": {"key": "secretAccessKey", "name": secret}}}}}),
            )
            .await;
        }
        create(
            &src,
            Some(app),
            &resource::<Application>(),
            json!({"apiVersion": "protect.trident.netapp.io/v1", "kind": "Application", "metadata": {"name": app},
                   "spec": {"includedNamespaces": [{"namespace": app}]}}),
        )
        .await;
        create(
            &src,
            Some(app),
            &resource::<Schedule>(),
            json!({"apiVersion": "protect.trident.netapp.io/v1", "kind": "Schedule",
                   "metadata": {"name": format!("{app}-hourly")},
                   "spec": {"applicationRef": app, "appVaultRef": src_vault, "granularity": "Hourly",
                            "minute": "15", "snapshotRetention": "3", "backupRetention": "0", "enabled": true}}),
        )
        .await;
        for (context, vault) in [(SRC, src_vault), (DST, dst_vault)] {
            self.wait_for(
                &format!("AppVault {vault} Available on {context}"),
                || async move {
                    self.get(context, &resource::<AppVault>(), Some(TP), vault)
                        .await
                        .is_some_and(|v| v["status"]["state"] == "Available")
                },
            )
            .await;
        }
    }

    /// Polls `check` until it holds (tests only: the product waits with watches).
    pub async fn wait_for<F, Fut>(&self, what: &str, check: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !check().await {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An object as JSON, if it exists.
    pub async fn get(
        &self,
        context: &str,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let client = self.client(context);
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(client, ns, resource),
            None => Api::all_with(client, resource),
        };
        api.get_opt(name)
            .await
            .unwrap_or_else(|e| panic!("get {} {name} on {context}: {e}", resource.kind))
            .map(|o| serde_json::to_value(o).unwrap())
    }

    /// Every object of a kind on a cluster (all namespaces).
    pub async fn list(&self, context: &str, resource: &ApiResource) -> Vec<Value> {
        let api: Api<DynamicObject> = Api::all_with(self.client(context), resource);
        api.list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("list {} on {context}: {e}", resource.plural))
            .items
            .into_iter()
            .map(|o| serde_json::to_value(o).unwrap())
            .collect()
    }

    /// The AMRs on a cluster, as (namespace/name, object).
    pub async fn amrs(&self, context: &str) -> Vec<Value> {
        self.list(context, &resource::<AppMirrorRelationship>()).await
    }

    /// The one AMR of the relationship on `context`, if any.
    pub async fn amr(&self, context: &str, name: &str) -> Option<Value> {
        self.amrs(context)
            .await
            .into_iter()
            .find(|a| a["metadata"]["name"] == name)
    }

    /// resourceVersion of every object the plugin could touch on both clusters (system namespaces excluded),
    /// keyed `context kind namespace/name`.
    pub async fn resource_versions(&self) -> BTreeMap<String, String> {
        let mut versions = self.resource_versions_of(SRC).await;
        versions.extend(self.resource_versions_of(DST).await);
        versions
    }

    /// [`Env::resource_versions`] of one cluster.
    pub async fn resource_versions_of(&self, context: &str) -> BTreeMap<String, String> {
        let kinds = [
            ApiResource::erase::<Namespace>(&()),
            ApiResource::erase::<Secret>(&()),
            ApiResource::erase::<ConfigMap>(&()),
            ApiResource::erase::<k8s_openapi::api::coordination::v1::Lease>(&()),
            resource::<AppMirrorRelationship>(),
            resource::<AppVault>(),
            resource::<Application>(),
            resource::<Schedule>(),
            resource::<Snapshot>(),
            resource::<ShutdownSnapshot>(),
        ];
        let system = ["kube-system", "kube-public", "kube-node-lease"];
        let mut versions = BTreeMap::new();
        {
            for kind in &kinds {
                for object in self.list(context, kind).await {
                    let namespace = object["metadata"]["namespace"].as_str().unwrap_or("");
                    let name = object["metadata"]["name"].as_str().unwrap_or("");
                    if system.contains(&namespace) || system.contains(&name) {
                        continue;
                    }
                    versions.insert(
                        format!("{context} {} {namespace}/{name}", kind.kind),
                        object["metadata"]["resourceVersion"]
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                    );
                }
            }
        }
        versions
    }

    /// A summary of the relationship's state on both clusters that an interrupted-then-resumed operation and an
    /// uninterrupted one must agree on: where the AMR is and its spec (DTSTART aside), its state; every
    /// Application, Schedule (spec and enabled) and AppVault; the saved schedules; whether a lock remains;
    /// how many ShutdownSnapshots each namespace has. Uids, resourceVersions and timestamps are left out.
    pub async fn summary(&self, relationship: &str) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for context in [SRC, DST] {
            for amr in self.amrs(context).await {
                let mut spec = amr["spec"].clone();
                spec.as_object_mut().unwrap().remove("sourceApplicationUID");
                out.insert(
                    format!("{context} amr {}/{}", amr["metadata"]["namespace"].as_str().unwrap(), amr["metadata"]["name"].as_str().unwrap()),
                    json!({"spec": spec, "state": amr["status"]["state"], "labels": amr["metadata"]["labels"], "annotations": strip_system_annotations(&amr["metadata"]["annotations"])}),
                );
            }
            for app in self.list(context, &resource::<Application>()).await {
                out.insert(
                    format!(
                        "{context} app {}/{}",
                        app["metadata"]["namespace"].as_str().unwrap(),
                        app["metadata"]["name"].as_str().unwrap()
                    ),
                    app["spec"].clone(),
                );
            }
            for schedule in self.list(context, &resource::<Schedule>()).await {
                out.insert(
                    format!("{context} schedule {}/{}", schedule["metadata"]["namespace"].as_str().unwrap(), schedule["metadata"]["name"].as_str().unwrap()),
                    json!({"spec": schedule["spec"], "annotations": strip_system_annotations(&schedule["metadata"]["annotations"])}),
                );
            }
            for vault in self.list(context, &resource::<AppVault>()).await {
                out.insert(
                    format!(
                        "{context} appvault {}",
                        vault["metadata"]["name"].as_str().unwrap()
                    ),
                    vault["spec"].clone(),
                );
            }
            let mut shutdowns: BTreeMap<String, usize> = BTreeMap::new();
            for s in self.list(context, &resource::<ShutdownSnapshot>()).await {
                *shutdowns
                    .entry(s["metadata"]["namespace"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
            out.insert(format!("{context} shutdownsnapshots"), json!(shutdowns));
            for cm in self.list(context, &ApiResource::erase::<ConfigMap>(&())).await {
                if cm["metadata"]["namespace"] == TP {
                    out.insert(
                        format!("{context} configmap {}", cm["metadata"]["name"].as_str().unwrap()),
                        cm["data"].clone(),
                    );
                }
            }
            let leases: Vec<String> = self
                .list(
                    context,
                    &ApiResource::erase::<k8s_openapi::api::coordination::v1::Lease>(&()),
                )
                .await
                .into_iter()
                .filter(|l| l["metadata"]["labels"]["tprotect.io/relationship"] == relationship)
                .map(|l| l["metadata"]["name"].as_str().unwrap().to_string())
                .collect();
            out.insert(format!("{context} locks"), json!(leases));
        }
        out
    }

    /// [`Env::summary`] restricted to one relationship (its namespaces, vaults, ConfigMaps and Lease), with
    /// `token` (a name unique to the relationship, e.g. its app) replaced by `X` and DTSTART blanked, so the
    /// summaries of two relationships built alike compare equal.
    pub async fn relationship_summary(
        &self,
        token: &str,
        namespaces: &[&str],
        vaults: &[&str],
    ) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for (key, value) in self.summary(token).await {
            let mut parts = key.splitn(3, ' ');
            let (context, kind, object) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            let keep = match kind {
                "amr" | "app" | "schedule" => {
                    namespaces.iter().any(|ns| object.starts_with(&format!("{ns}/")))
                }
                "appvault" => vaults.contains(&object),
                "configmap" => object.contains(token),
                "locks" => true,
                "shutdownsnapshots" => {
                    let counts: BTreeMap<String, Value> = value
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .filter(|(ns, _)| namespaces.contains(&ns.as_str()))
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect()
                        })
                        .unwrap_or_default();
                    out.insert(
                        normalize_text(&format!("{context} {kind}"), token),
                        normalize(&json!(counts), token),
                    );
                    continue;
                }
                _ => false,
            };
            if keep {
                out.insert(normalize_text(&key, token), normalize(&value, token));
            }
        }
        out
    }

    /// Deletes an object (admin), ignoring NotFound.
    pub async fn delete(&self, context: &str, resource: &ApiResource, namespace: Option<&str>, name: &str) {
        let client = self.client(context);
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(client, ns, resource),
            None => Api::all_with(client, resource),
        };
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => panic!("delete {} {name} on {context}: {e}", resource.kind),
        }
    }

    /// Merge-patches an object (admin).
    pub async fn merge_patch(
        &self,
        context: &str,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
        patch: Value,
    ) {
        let client = self.client(context);
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(client, ns, resource),
            None => Api::all_with(client, resource),
        };
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("patch {} {name} on {context}: {e}", resource.kind));
    }
}

fn normalize_text(text: &str, token: &str) -> String {
    let text = text.replace(token, "X");
    match text.strip_prefix("DTSTART:") {
        Some(rest) => format!("DTSTART:*{}", rest.find('\n').map(|i| &rest[i..]).unwrap_or("")),
        None => text,
    }
}

/// Every string (and key) with `token` replaced and DTSTART blanked; JSON held in strings (the saved
/// schedules) is normalised too.
fn normalize(value: &Value, token: &str) -> Value {
    match value {
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(inner @ (Value::Object(_) | Value::Array(_))) => normalize(&inner, token),
            _ => Value::String(normalize_text(s, token)),
        },
        Value::Array(items) => Value::Array(items.iter().map(|v| normalize(v, token)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (normalize_text(k, token), normalize(v, token)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `kubectl.kubernetes.io/last-applied-configuration` and the like are not the relationship's state.
fn strip_system_annotations(annotations: &Value) -> Value {
    let mut annotations = annotations.clone();
    if let Some(map) = annotations.as_object_mut() {
        map.retain(|k, _| !k.starts_with("kubectl.kubernetes.io/"));
    }
    annotations
}

/// Reads a background command's stdout until what was read satisfies `done` (60 s at most); returns it.
pub async fn read_until(
    child: &mut tokio::process::Child,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    use tokio::io::AsyncReadExt;
    let stdout = child.stdout.as_mut().expect("stdout piped");
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buffer = [0u8; 4096];
    while !done(&String::from_utf8_lossy(&seen)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stdout.read(&mut buffer)).await {
            Ok(Ok(0)) => panic!("output ended before {what}: {}", String::from_utf8_lossy(&seen)),
            Ok(Ok(n)) => seen.extend_from_slice(&buffer[..n]),
            Ok(Err(e)) => panic!("reading output: {e}"),
            Err(_) => panic!("no {what} within 60s: {}", String::from_utf8_lossy(&seen)),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// Creates an object (admin).
pub async fn create(client: &kube::Client, namespace: Option<&str>, resource: &ApiResource, object: Value) {
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    };
    let object: DynamicObject = serde_json::from_value(object).expect("object");
    api.create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("create {} {:?}: {e}", resource.kind, object.metadata.name));
}

async fn http_ok(port: u16, path: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    response.starts_with("HTTP/1.1 200")
}

/// Registers the webhook at `https://127.0.0.1:<port>` on a cluster: validating for the replication kinds
/// (failurePolicy Fail), mutating for Schedules and Namespaces (failurePolicy Ignore), as the project's
/// deployment does.
async fn register_webhook(client: &kube::Client, port: u16, ca: &[u8]) {
    use base64::Engine;
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(ca);
    let base = format!("https://127.0.0.1:{port}");
    let protect_rule = json!({
        "apiGroups": ["protect.trident.netapp.io"], "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE"],
        "resources": ["appmirrorrelationships", "schedules", "appvaults", "applications", "snapshots", "shutdownsnapshots"],
    });
    let validating = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "tprotect-webhook"},
        "webhooks": [{
            "name": "validate.tprotect.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "timeoutSeconds": 10, "failurePolicy": "Fail",
            "clientConfig": {"url": format!("{base}/validate"), "caBundle": ca_bundle},
            "rules": [protect_rule],
            "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}]},
        }],
    });
    let mutating = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "tprotect-webhook"},
        "webhooks": [{
            "name": "mutate.tprotect.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "timeoutSeconds": 10, "failurePolicy": "Ignore", "reinvocationPolicy": "IfNeeded",
            "clientConfig": {"url": format!("{base}/mutate"), "caBundle": ca_bundle},
            "rules": [
                {"apiGroups": ["protect.trident.netapp.io"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["schedules"]},
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["namespaces"]},
            ],
        }],
    });
    let validating_resource = ApiResource::erase::<
        k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration,
    >(&());
    let mutating_resource =
        ApiResource::erase::<k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration>(&());
    create(client, None, &validating_resource, validating).await;
    create(client, None, &mutating_resource, mutating).await;
}
