//! A whole local environment: two real clusters (the testbed), the Trident protect STAND-IN controller acting on
//! both, the real `tprotect-webhook` registered on both API servers, and an application's fixtures. The demo runs
//! on it, and end-to-end tests can.
//!
//! The webhook registrations are the product's own (`manifests/webhook/base/webhooks.yaml`): the same rules, the
//! same failure policies, with `clientConfig` pointed at the local process by URL instead of the in-cluster
//! Service (there are no Pods here).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde::Deserialize;
use serde_json::{Value, json};
use tprotect_standin::{StandIn, StandInConfig, StandInHandle};
use tprotect_testbed::process::{Lifetime, ManagedProcess};
use tprotect_testbed::{Identity, Testbed, TestbedOptions};

/// What can go wrong starting the environment.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Testbed(#[from] tprotect_testbed::Error),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("webhook: {0}")]
    Webhook(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("fixtures: {0}")]
    Fixtures(String),
}

/// The namespace Trident protect (and AppVaults) live in.
pub const TRIDENT: &str = tprotect_api::TRIDENT_PROTECT_NAMESPACE;
/// Field manager of the environment's own writes.
const FIELD_MANAGER: &str = "tprotect-localenv";

/// The real webhook, run as a process per cluster.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    pub binary: PathBuf,
    /// Extra environment (e.g. the `RESTORE_*` variables).
    pub env: Vec<(String, String)>,
}

/// How to start the environment.
#[derive(Debug, Clone, Default)]
pub struct LocalEnvOptions {
    pub testbed: TestbedOptions,
    /// Run the stand-in controller with this configuration.
    pub standin: Option<StandInConfig>,
    pub webhook: Option<WebhookOptions>,
}

/// The running environment. Dropping it stops everything.
pub struct LocalEnv {
    pub testbed: Testbed,
    standin: Option<StandInHandle>,
    webhooks: Vec<ManagedProcess>,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for LocalEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEnv")
            .field("testbed", &self.testbed)
            .field("webhooks", &self.webhooks.len())
            .finish()
    }
}

impl LocalEnv {
    /// Starts the clusters, then the stand-in and the webhooks if asked.
    pub async fn start(options: LocalEnvOptions) -> Result<Self, Error> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let testbed = Testbed::start_with(options.testbed.clone()).await?;
        let dir = tempfile::tempdir().map_err(|e| Error::Io {
            path: std::env::temp_dir(),
            source: e,
        })?;
        let mut env = LocalEnv {
            testbed,
            standin: None,
            webhooks: Vec::new(),
            dir,
        };
        if let Some(config) = options.standin {
            let source = env.testbed.source.client_as(Identity::Controller).await?;
            let destination = env.testbed.destination.client_as(Identity::Controller).await?;
            env.standin = Some(StandIn::new(source, destination, config).spawn());
        }
        if let Some(webhook) = &options.webhook {
            for cluster in [&env.testbed.source, &env.testbed.destination] {
                let process =
                    start_webhook(env.dir.path(), &env.testbed.kubeconfig, cluster, webhook).await?;
                env.webhooks.push(process);
            }
        }
        Ok(env)
    }

    /// The kubeconfig of both clusters.
    pub fn kubeconfig(&self) -> &Path {
        &self.testbed.kubeconfig
    }

    /// Stops the stand-in controller (nothing else changes the clusters afterwards).
    pub async fn stop_standin(&mut self) {
        if let Some(standin) = self.standin.take() {
            standin.shutdown().await;
        }
    }

    /// An application ready to replicate: on the source its namespace (labels, annotations), the Application, a
    /// protection Schedule, the source AppVault and its Secret; on the destination the destination AppVault and
    /// its Secret. Waits until both vaults are Available (the stand-in's verdict) when a stand-in runs.
    pub async fn install_fixtures(&self, app: &str) -> Result<(), Error> {
        let (src, dst) = (&self.testbed.source.client, &self.testbed.destination.client);
        apply(
            src,
            None,
            &ApiResource::erase::<Namespace>(&()),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {
                "name": app,
                "labels": {"environment": "production", "name": app},
                "annotations": {"team.example.com/owner": "payments"},
            }}),
        )
        .await?;
        for (client, vault, secret) in [(src, "src-vault", "src-creds"), (dst, "dst-vault", "dst-creds")] {
            apply(
                client,
                Some(TRIDENT),
                &ApiResource::erase::<Secret>(&()),
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret},
                       "stringData": {"accessKeyID": "AKIAEXAMPLE", "secretAccessKey": "do-not-print-me"}}),
            )
            .await?;
            apply(
                client,
                Some(TRIDENT),
                &protect("AppVault", "appvaults"),
                json!({"apiVersion": tprotect_api::API_VERSION, "kind": "AppVault", "metadata": {"name": vault},
                       "spec": {"providerType": "GenericS3",
                                "providerConfig": {"s3": {"bucketName": vault, "endpoint": "s3.example.com"}},
                                "providerCredentials": {
                                    "accessKeyID": {"valueFromSecret": {"key": "accessKeyID", "name": secret}},
                                    "secretAccessKey": {"valueFromSecret": {"key": "secretAccessKey", "name": secret}}}}}),
            )
            .await?;
        }
        apply(
            src,
            Some(app),
            &protect("Application", "applications"),
            json!({"apiVersion": tprotect_api::API_VERSION, "kind": "Application", "metadata": {"name": app},
                   "spec": {"includedNamespaces": [{"namespace": app}]}}),
        )
        .await?;
        apply(
            src,
            Some(app),
            &protect("Schedule", "schedules"),
            json!({"apiVersion": tprotect_api::API_VERSION, "kind": "Schedule",
                   "metadata": {"name": format!("{app}-hourly")},
                   "spec": {"applicationRef": app, "appVaultRef": "src-vault", "granularity": "Hourly",
                            "minute": "15", "snapshotRetention": "3", "backupRetention": "0", "enabled": true}}),
        )
        .await?;
        if self.standin.is_some() {
            for (client, vault) in [(src, "src-vault"), (dst, "dst-vault")] {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(client.clone(), TRIDENT, &protect("AppVault", "appvaults"));
                let deadline = Instant::now() + Duration::from_secs(60);
                // Either profile's spelling (`Available`, or the variant's `available`).
                while !tprotect_standin::rules::forms::app_vault_available(
                    api.get(vault).await?.data["status"]["state"].as_str(),
                ) {
                    if Instant::now() > deadline {
                        return Err(Error::Fixtures(format!(
                            "AppVault {vault} not Available after 60s"
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        Ok(())
    }
}

impl Drop for LocalEnv {
    fn drop(&mut self) {
        // The stand-in's handle stops it on drop; the webhooks are ManagedProcesses (killed on drop). Webhooks
        // go before the API servers so no admission call hangs on a dead endpoint.
        self.webhooks.clear();
    }
}

/// ApiResource of a Trident protect kind.
pub fn protect(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(tprotect_api::GROUP, tprotect_api::VERSION, kind),
        plural,
    )
}

/// Server-side apply of a JSON object (creates or updates; a re-run is harmless).
pub async fn apply(
    client: &kube::Client,
    namespace: Option<&str>,
    resource: &ApiResource,
    object: Value,
) -> Result<(), Error> {
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    };
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&object),
    )
    .await?;
    Ok(())
}

fn free_port() -> Result<u16, Error> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::Webhook(format!("no free port: {e}")))
}

async fn start_webhook(
    dir: &Path,
    kubeconfig: &Path,
    cluster: &tprotect_testbed::Cluster,
    options: &WebhookOptions,
) -> Result<ManagedProcess, Error> {
    let certs = dir.join(format!("certs-{}", cluster.context));
    let status = std::process::Command::new(&options.binary)
        .args(["gen-certs", "--ip", "127.0.0.1", "--out-dir"])
        .arg(&certs)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| Error::Webhook(format!("{}: {e}", options.binary.display())))?;
    if !status.success() {
        return Err(Error::Webhook("tprotect-webhook gen-certs failed".into()));
    }
    let (port, health) = (free_port()?, free_port()?);
    let mut args = vec![
        "serve".to_string(),
        format!("--listen=127.0.0.1:{port}"),
        format!("--health-listen=127.0.0.1:{health}"),
        format!("--tls-cert={}", certs.join("tls.crt").display()),
        format!("--tls-key={}", certs.join("tls.key").display()),
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--context={}", cluster.context_as(Identity::Webhook)),
    ];
    // The webhook reads the RESTORE_* variables from its environment; pass them as env of a wrapper-free
    // process by prefixing with `env`.
    let mut program = options.binary.clone();
    if !options.env.is_empty() {
        let mut env_args: Vec<String> = options.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env_args.push(options.binary.display().to_string());
        env_args.append(&mut args);
        args = env_args;
        program = PathBuf::from("/usr/bin/env");
    }
    let setpriv = tprotect_testbed::install::which("setpriv")
        .ok_or_else(|| Error::Webhook("setpriv not found".into()))?;
    let process = ManagedProcess::spawn(
        &format!("tprotect-webhook ({})", cluster.context),
        &setpriv,
        &program,
        &args,
        &dir.join(format!("webhook-{}.log", cluster.context)),
        Lifetime::TiedToProcess,
    )
    .map_err(|e| Error::Webhook(e.to_string()))?;
    // The webhook identity may read AMRs (its cache), as the product's RBAC grants.
    grant_webhook_rbac(&cluster.client).await?;
    wait_ready(health, &process).await?;
    let ca = std::fs::read(certs.join("ca.crt")).map_err(|e| Error::Io {
        path: certs.join("ca.crt"),
        source: e,
    })?;
    register_webhooks(&cluster.client, &format!("https://127.0.0.1:{port}"), &ca).await?;
    Ok(process)
}

/// Waits until the webhook whose health listener is on loopback port `health` answers `/readyz` (60 s at most).
pub async fn wait_ready(health: u16, process: &ManagedProcess) -> Result<(), Error> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", health)).await {
            let _ = stream
                .write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .await;
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response).await;
            if response.starts_with("HTTP/1.1 200") {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(Error::Webhook(format!(
                "not ready after 60s:\n{}",
                process.log_tail(20)
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The product's RBAC for the webhook (`manifests/webhook/base/rbac.yaml`). Its ServiceAccount subject matches the
/// testbed's webhook token user, `system:serviceaccount:tprotect-system:tprotect-webhook`, as RBAC matches any
/// service account's user name.
pub async fn grant_webhook_rbac(client: &kube::Client) -> Result<(), Error> {
    let path = tprotect_testbed::repo_root().join("manifests/webhook/base/rbac.yaml");
    for object in read_yaml(&path)? {
        let resource = match object["kind"].as_str() {
            Some("ClusterRole") => ApiResource::erase::<k8s_openapi::api::rbac::v1::ClusterRole>(&()),
            Some("ClusterRoleBinding") => {
                ApiResource::erase::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>(&())
            }
            _ => continue,
        };
        apply(client, None, &resource, object).await?;
    }
    Ok(())
}

fn read_yaml(path: &Path) -> Result<Vec<Value>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let mut documents = Vec::new();
    for document in serde_norway::Deserializer::from_str(&text) {
        let value =
            Value::deserialize(document).map_err(|e| Error::Webhook(format!("{}: {e}", path.display())))?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

/// Registers the product's webhook configurations with `clientConfig.url` = `base` + the Service path.
pub async fn register_webhooks(client: &kube::Client, base: &str, ca_pem: &[u8]) -> Result<(), Error> {
    use base64::Engine;
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let path = tprotect_testbed::repo_root().join("manifests/webhook/base/webhooks.yaml");
    for mut configuration in read_yaml(&path)? {
        let resource = match configuration["kind"].as_str() {
            Some("ValidatingWebhookConfiguration") => ApiResource::erase::<
                k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration,
            >(&()),
            Some("MutatingWebhookConfiguration") => ApiResource::erase::<
                k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration,
            >(&()),
            _ => continue,
        };
        for webhook in configuration["webhooks"].as_array_mut().into_iter().flatten() {
            let service_path = webhook["clientConfig"]["service"]["path"]
                .as_str()
                .unwrap_or("/")
                .to_string();
            webhook["clientConfig"] = json!({"url": format!("{base}{service_path}"), "caBundle": ca_bundle});
        }
        if let Some(annotations) = configuration["metadata"]["annotations"].as_object_mut() {
            // cert-manager's CA injection has nothing to do here.
            annotations.remove("cert-manager.io/inject-ca-from");
        }
        apply(client, None, &resource, configuration).await?;
    }
    Ok(())
}
