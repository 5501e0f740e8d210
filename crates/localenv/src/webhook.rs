//! The real `tprotect-webhook`, one process per cluster, deployed as the product's manifests deploy it as far
//! as a cluster without Pods allows:
//!
//! - its namespace, ServiceAccount, RBAC and ConfigMap are `manifests/webhook/base`'s, applied as written;
//! - it runs as that ServiceAccount (the testbed's `Identity::Webhook` token), so it can do exactly what the
//!   product's RBAC grants it — read AppMirrorRelationships — and nothing more;
//! - its registrations are `manifests/webhook/base/webhooks.yaml` with only `clientConfig` changed: the
//!   in-cluster Service becomes `https://127.0.0.1:<port><the Service's path>` with the process's CA.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::api::{ApiResource, DynamicObject, PostParams};
use serde_json::{Value, json};
use tprotect_testbed::process::{Lifetime, ManagedProcess};
use tprotect_testbed::{Cluster, Identity};

use crate::fixtures::example_replication_schedule;
use crate::manifests::{apply, apply_manifest, dynamic_api, product_manifest, protect, read_yaml};
use crate::{Error, eventually};

/// The manifests applied before the webhook starts, in order.
const DEPLOYMENT_MANIFESTS: [&str; 4] = [
    "webhook/base/namespace.yaml",
    "webhook/base/serviceaccount.yaml",
    "webhook/base/rbac.yaml",
    "webhook/base/configmap.yaml",
];
/// The registrations.
pub const REGISTRATIONS: &str = "webhook/base/webhooks.yaml";

/// The webhook on both clusters.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    pub binary: PathBuf,
    pub source: ServeOptions,
    pub destination: ServeOptions,
}

/// What one cluster's webhook process gets beyond what every one gets.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Environment (e.g. the `RESTORE_*` variables the Deployment takes from its ConfigMap). The process
    /// gets nothing else from ours but `RUST_LOG=info`.
    pub env: Vec<(String, String)>,
    /// Extra arguments of `tprotect-webhook serve`.
    pub args: Vec<String>,
}

impl WebhookOptions {
    /// The same webhook, with no extra environment or arguments, on both clusters.
    pub fn new(binary: PathBuf) -> Self {
        Self {
            binary,
            source: ServeOptions::default(),
            destination: ServeOptions::default(),
        }
    }

    /// Sets an environment variable of both clusters' webhooks.
    pub fn env_on_both(mut self, name: &str, value: &str) -> Self {
        for serve in [&mut self.source, &mut self.destination] {
            serve.env.push((name.to_string(), value.to_string()));
        }
        self
    }
}

/// The cluster a webhook serves: an admin client, its kubeconfig, and the context the webhook watches AMRs as
/// (the webhook's own ServiceAccount).
#[derive(Clone, educe::Educe)]
#[educe(Debug)]
pub struct WebhookTarget {
    #[educe(Debug(ignore))]
    pub client: kube::Client,
    /// The admin context (names the files and messages).
    pub context: String,
    pub kubeconfig: PathBuf,
    pub watch_context: String,
}

/// A running webhook (killed on drop).
#[derive(Debug)]
pub struct Webhook {
    /// The admin context of the cluster it serves.
    pub context: String,
    pub https: SocketAddr,
    /// The plain-HTTP listener: `/readyz`, `/livez`, `/metrics`.
    pub health: SocketAddr,
    process: ManagedProcess,
}

impl Webhook {
    /// Deploys the webhook's manifests on `cluster`, starts the process as the webhook's ServiceAccount,
    /// waits until it is ready (its AMR cache synced, unless `--no-amr-watch`), registers it and waits until
    /// the registration is in effect.
    pub(crate) async fn start(
        dir: &Path,
        cluster: &Cluster,
        options: &WebhookOptions,
    ) -> Result<Self, Error> {
        let serve = match cluster.role {
            tprotect_testbed::Role::Source => &options.source,
            tprotect_testbed::Role::Destination => &options.destination,
        };
        let target = WebhookTarget {
            client: cluster.client.clone(),
            context: cluster.context.clone(),
            kubeconfig: cluster.kubeconfig.clone(),
            watch_context: cluster.context_as(Identity::Webhook),
        };
        Self::start_on(dir, &target, &options.binary, serve).await
    }

    /// [`Webhook::start`] for a cluster known by its kubeconfig (the clusters of `cargo xtask up`).
    pub async fn start_on(
        dir: &Path,
        target: &WebhookTarget,
        binary: &Path,
        serve: &ServeOptions,
    ) -> Result<Self, Error> {
        for manifest in DEPLOYMENT_MANIFESTS {
            apply_manifest(&target.client, &product_manifest(manifest)).await?;
        }
        let certs = dir.join(format!("certs-{}", target.context));
        let generated = std::process::Command::new(binary)
            .args(["gen-certs", "--ip", "127.0.0.1", "--out-dir"])
            .arg(&certs)
            .output()
            .map_err(|e| Error::Webhook(format!("{}: {e}", binary.display())))?;
        if !generated.status.success() {
            return Err(Error::Webhook(format!(
                "tprotect-webhook gen-certs failed: {}",
                String::from_utf8_lossy(&generated.stderr)
            )));
        }
        // `env -i`: nothing of the test runner's environment (a RESTORE_* variable, RUST_LOG) reaches it.
        let mut args = vec!["-i".to_string(), "RUST_LOG=info".to_string()];
        args.extend(serve.env.iter().map(|(k, v)| format!("{k}={v}")));
        args.push(binary.display().to_string());
        args.extend(
            [
                "serve",
                // Port 0: the process picks free ports and logs them (no race for a port picked before).
                "--listen=127.0.0.1:0",
                "--health-listen=127.0.0.1:0",
                "--log-format=json",
            ]
            .map(String::from),
        );
        args.push(format!("--tls-cert={}", certs.join("tls.crt").display()));
        args.push(format!("--tls-key={}", certs.join("tls.key").display()));
        args.push(format!("--kubeconfig={}", target.kubeconfig.display()));
        args.push(format!("--context={}", target.watch_context));
        args.extend(serve.args.iter().cloned());
        let program = tprotect_testbed::install::which("env")
            .ok_or_else(|| Error::Webhook("env (coreutils) not found on PATH".into()))?;
        let setpriv = tprotect_testbed::install::which("setpriv")
            .ok_or_else(|| Error::Webhook("setpriv (util-linux) not found on PATH".into()))?;
        let log = dir.join(format!("webhook-{}.log", target.context));
        let mut process = ManagedProcess::spawn(
            &format!("tprotect-webhook ({})", target.context),
            &setpriv,
            &program,
            &args,
            &log,
            Lifetime::TiedToProcess,
        )
        .map_err(|e| Error::Webhook(e.to_string()))?;
        let (https, health) = listening_addresses(&mut process).await?;
        let webhook = Webhook {
            context: target.context.clone(),
            https,
            health,
            process,
        };
        let watches_amrs = !serve.args.iter().any(|a| a == "--no-amr-watch");
        eventually(&format!("the webhook of {} ready", target.context), async || {
            let ready = webhook
                .get("/readyz")
                .await
                .is_ok_and(|(status, _)| status == 200);
            let synced =
                !watches_amrs || webhook.metric("tprotect_webhook_amr_cache_synced").await == Some(1.0);
            (ready && synced).then_some(())
        })
        .await
        .map_err(|e| Error::Webhook(format!("{e}; its log ends:\n{}", webhook.process.log_tail(20))))?;
        let ca = std::fs::read(certs.join("ca.crt")).map_err(|e| Error::io(&certs.join("ca.crt"), e))?;
        register_webhooks(&target.client, &format!("https://{https}"), &ca).await?;
        wait_until_in_effect(&target.client).await?;
        Ok(webhook)
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// The last `lines` of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// Where its log is.
    pub fn log_path(&self) -> &Path {
        &self.process.log
    }

    /// The process's log (JSON lines).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.process.log).unwrap_or_default()
    }

    /// `GET path` on the health listener: status and body.
    pub async fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        http_get(self.health, path).await
    }

    /// A sample of the webhook's `/metrics` (`name` with its labels, as printed), if present.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics").await.ok()?;
        body.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    }
}

/// The addresses the webhook logs once it serves (`serving admission reviews`, JSON log format).
async fn listening_addresses(process: &mut ManagedProcess) -> Result<(SocketAddr, SocketAddr), Error> {
    let log = process.log.clone();
    let found = eventually("the webhook to log its addresses", async || {
        if !process.is_running() {
            return Some(None);
        }
        let text = std::fs::read_to_string(&log).ok()?;
        text.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| line["fields"]["message"] == "serving admission reviews")
            .map(|line| {
                let address = |key: &str| line["fields"][key].as_str()?.parse::<SocketAddr>().ok();
                Some((address("https_addr")?, address("health_addr")?))
            })
    })
    .await?;
    found.ok_or_else(|| {
        Error::Webhook(format!(
            "the webhook exited or logged no addresses; its log ends:\n{}",
            process.log_tail(20)
        ))
    })
}

/// A plain-HTTP `GET` on loopback: status and body.
pub async fn http_get(address: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:.200}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// The product's webhook configurations (`manifests/webhook/base/webhooks.yaml`) with each webhook's
/// `clientConfig` pointed at `base` + its Service's path, with `ca_pem` as its CA. Nothing else changes but
/// cert-manager's CA-injection annotation, which has nothing to do here.
pub fn product_registrations(base: &str, ca_pem: &[u8]) -> Result<Vec<Value>, Error> {
    use base64::Engine;
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let path = product_manifest(REGISTRATIONS);
    let mut configurations = read_yaml(&path)?;
    for configuration in &mut configurations {
        for webhook in configuration["webhooks"].as_array_mut().into_iter().flatten() {
            let service_path = webhook["clientConfig"]["service"]["path"]
                .as_str()
                .ok_or_else(|| Error::Manifest {
                    path: path.clone(),
                    message: format!("webhook {} has no clientConfig.service.path", webhook["name"]),
                })?
                .to_string();
            webhook["clientConfig"] = json!({"url": format!("{base}{service_path}"), "caBundle": ca_bundle});
        }
        if let Some(annotations) = configuration
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            annotations.remove("cert-manager.io/inject-ca-from");
        }
    }
    Ok(configurations)
}

/// Registers [`product_registrations`] on a cluster (server-side apply: re-registering moves them).
pub async fn register_webhooks(client: &kube::Client, base: &str, ca_pem: &[u8]) -> Result<(), Error> {
    for configuration in product_registrations(base, ca_pem)? {
        let resource = match configuration["kind"].as_str() {
            Some("ValidatingWebhookConfiguration") => {
                ApiResource::erase::<ValidatingWebhookConfiguration>(&())
            }
            Some("MutatingWebhookConfiguration") => ApiResource::erase::<MutatingWebhookConfiguration>(&()),
            _ => continue,
        };
        apply(client, None, &resource, configuration).await?;
    }
    Ok(())
}

/// The name of the product's validating webhook (as it appears in a denial).
pub fn validating_webhook_name() -> Result<String, Error> {
    let path = product_manifest(REGISTRATIONS);
    read_yaml(&path)?
        .iter()
        .find(|c| c["kind"] == "ValidatingWebhookConfiguration")
        .and_then(|c| c["webhooks"][0]["name"].as_str().map(String::from))
        .ok_or_else(|| Error::Manifest {
            path,
            message: "no ValidatingWebhookConfiguration with a webhook".into(),
        })
}

/// An API server applies a new registration asynchronously: waits until a server-side dry run of an invalid
/// replication Schedule is refused by the webhook. Without the Schedule CRD there is nothing to guard.
async fn wait_until_in_effect(client: &kube::Client) -> Result<(), Error> {
    let webhook_name = validating_webhook_name()?;
    let schedules = dynamic_api(client, Some("default"), &protect("Schedule", "schedules"));
    // Five snapshots to keep: a replication Schedule must keep two (`crates/policy`).
    let mut probe = example_replication_schedule(
        "appmirror-schedule-localenv-probe",
        "default",
        "probe-app",
        "probe-vault",
    );
    probe["spec"]["snapshotRetention"] = json!("5");
    let probe: DynamicObject =
        serde_json::from_value(probe).map_err(|e| Error::Webhook(format!("the registration probe: {e}")))?;
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let mut last = String::new();
    eventually("the webhook registration in effect", async || {
        match schedules.create(&dry_run, &probe).await {
            Err(kube::Error::Api(status))
                if status.code == 404 && status.message.contains("the server could not find") =>
            {
                Some(Ok(()))
            }
            Err(kube::Error::Api(status)) if status.message.contains(&webhook_name) => Some(Ok(())),
            Err(error @ kube::Error::Api(_)) => Some(Err(error)),
            Err(error) => {
                last = error.to_string();
                None
            }
            Ok(_) => {
                last = "a dry run of an invalid replication Schedule was allowed".into();
                None
            }
        }
    })
    .await
    .map_err(|e| Error::Webhook(format!("{e} (last: {last})")))??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The registrations differ from the product's manifest in `clientConfig` alone.
    #[test]
    fn registrations_are_the_products_with_a_url() {
        let product = read_yaml(&product_manifest(REGISTRATIONS)).unwrap();
        let registered = product_registrations("https://127.0.0.1:8443", b"CA").unwrap();
        assert_eq!(product.len(), registered.len());
        let mut webhooks = 0;
        for (product, registered) in product.iter().zip(&registered) {
            assert_eq!(product["kind"], registered["kind"]);
            assert_eq!(product["metadata"], registered["metadata"]);
            let (product_hooks, registered_hooks) = (
                product["webhooks"].as_array().unwrap(),
                registered["webhooks"].as_array().unwrap(),
            );
            assert_eq!(product_hooks.len(), registered_hooks.len());
            for (p, r) in product_hooks.iter().zip(registered_hooks) {
                let (mut p, mut r) = (p.clone(), r.clone());
                let path = p["clientConfig"]["service"]["path"].as_str().unwrap().to_string();
                assert_eq!(r["clientConfig"]["url"], format!("https://127.0.0.1:8443{path}"));
                assert_eq!(r["clientConfig"]["caBundle"], "Q0E=");
                p.as_object_mut().unwrap().remove("clientConfig");
                r.as_object_mut().unwrap().remove("clientConfig");
                assert_eq!(p, r);
                webhooks += 1;
            }
        }
        assert_eq!(webhooks, 3, "one validating and two mutating webhooks");
        assert_eq!(
            validating_webhook_name().unwrap(),
            "replication.validate.tprotect.io"
        );
    }
}
