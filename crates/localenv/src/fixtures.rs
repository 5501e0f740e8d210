//! What a user has before the plugin runs: an application to replicate and its AppVaults, and the DR operator
//! role of `manifests/rbac/` bound to the testbed's operator. And the example objects tests write, each
//! defined once (a test changes the field it is about).

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ApiResource, DynamicObject};
use serde_json::{Value, json};

/// The examples' recurrence rule: every 5 minutes since 2022 (as NetApp's examples write it).
pub const EXAMPLE_RULE: &str = "DTSTART:20220101T000200Z\nRRULE:FREQ=MINUTELY;INTERVAL=5";

/// An Established AppMirrorRelationship replicating application `my-app` (a fixed uid) every 5 minutes from
/// AppVault `src-vault` to `dst-vault`, `namespace` onto itself, storage class `sc-vsim-2`.
pub fn example_amr(name: &str, namespace: &str) -> Value {
    json!({
        "apiVersion": tprotect_api::API_VERSION,
        "kind": "AppMirrorRelationship",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "desiredState": "Established",
            "destinationAppVaultRef": "dst-vault",
            "namespaceMapping": [{"source": namespace, "destination": namespace}],
            "recurrenceRule": EXAMPLE_RULE,
            "sourceAppVaultRef": "src-vault",
            "sourceApplicationName": "my-app",
            "sourceApplicationUID": "7498d32c-328e-4ddd-9029-122540866aeb",
            "storageClassName": "sc-vsim-2"
        }
    })
}

/// A GenericS3 AppVault (bucket named after it) whose credentials are the keys of Secret `secret`.
pub fn example_app_vault(name: &str, namespace: &str, secret: &str) -> Value {
    json!({
        "apiVersion": tprotect_api::API_VERSION,
        "kind": "AppVault",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "providerType": "GenericS3",
            "providerConfig": {"s3": {"bucketName": name, "endpoint": "s3.example.com", "secure": "true"}},
            "providerCredentials": {
                "accessKeyID": {"valueFromSecret": {"key": "accessKeyID", "name": secret}},
                "secretAccessKey": {"valueFromSecret": {"key": "secretAccessKey", "name": secret}}
            }
        }
    })
}

/// A replication Schedule of application `app` through AppVault `vault`, as the plugin writes one (Custom
/// granularity, two snapshots kept, no backups) on [`EXAMPLE_RULE`].
pub fn example_replication_schedule(name: &str, namespace: &str, app: &str, vault: &str) -> Value {
    json!({
        "apiVersion": tprotect_api::API_VERSION,
        "kind": "Schedule",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "appVaultRef": vault,
            "applicationRef": app,
            "backupRetention": "0",
            "enabled": true,
            "granularity": "Custom",
            "recurrenceRule": EXAMPLE_RULE,
            "snapshotRetention": "2"
        }
    })
}

use crate::manifests::{apply, apply_manifest, product_manifest, protect};
use crate::{Error, LocalEnv, TRIDENT, eventually};

/// One application ready to replicate, and the vaults it replicates through.
#[derive(Debug, Clone, Copy)]
pub struct Fixtures<'a> {
    /// The application, its namespace on the source, and its protection Schedule `<app>-hourly`.
    pub app: &'a str,
    /// The source AppVault; its Secret is `<vault>-creds`.
    pub source_vault: &'a str,
    /// The destination AppVault; its Secret is `<vault>-creds`.
    pub destination_vault: &'a str,
}

impl<'a> Fixtures<'a> {
    /// `app` with the vaults `src-vault` and `dst-vault`.
    pub fn app(app: &'a str) -> Self {
        Self {
            app,
            source_vault: "src-vault",
            destination_vault: "dst-vault",
        }
    }
}

impl LocalEnv {
    /// Installs `fixtures`: on the source the application's namespace (labels, annotations), the Application,
    /// a protection Schedule, the source AppVault and its Secret; on the destination the destination AppVault
    /// and its Secret. Waits until both vaults are Available (the stand-in's verdict) when a stand-in runs.
    pub async fn install_fixtures(&self, fixtures: Fixtures<'_>) -> Result<(), Error> {
        let Fixtures {
            app,
            source_vault,
            destination_vault,
        } = fixtures;
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
        for (client, vault) in [(src, source_vault), (dst, destination_vault)] {
            let secret = format!("{vault}-creds");
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
                example_app_vault(vault, TRIDENT, &secret),
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
                   "spec": {"applicationRef": app, "appVaultRef": source_vault, "granularity": "Hourly",
                            "minute": "15", "snapshotRetention": "3", "backupRetention": "0", "enabled": true}}),
        )
        .await?;
        if self.has_standin() {
            for (client, vault) in [(src, source_vault), (dst, destination_vault)] {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(client.clone(), TRIDENT, &protect("AppVault", "appvaults"));
                eventually(&format!("AppVault {vault} Available"), async || {
                    let vault = api.get(vault).await.ok()?;
                    // Either profile's spelling (`Available`, or the variant's `available`).
                    tprotect_standin::rules::forms::app_vault_available(
                        vault.data["status"]["state"].as_str(),
                    )
                    .then_some(())
                })
                .await?;
            }
        }
        Ok(())
    }

    /// Binds the DR operator ClusterRoles of `manifests/rbac/` to the testbed's `dr-operator` (group
    /// `tprotect:dr-operators`, as the example binding names it) on both clusters.
    pub async fn bind_operator_role(&self) -> Result<(), Error> {
        for cluster in [&self.testbed.source, &self.testbed.destination] {
            for file in ["rbac/dr-operator.yaml", "rbac/dr-operator-binding-example.yaml"] {
                apply_manifest(&cluster.client, &product_manifest(file)).await?;
            }
        }
        Ok(())
    }
}
