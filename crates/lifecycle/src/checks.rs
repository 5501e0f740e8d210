//! What `kubectl tprotect check` must ask the clusters beyond an observation: whether the project's admission
//! webhook is registered and ANSWERS. A registered webhook that does not answer makes every write it guards fail
//! (`failurePolicy: Fail`), so listing its configuration is not enough: a server-side dry-run create of a
//! replication Schedule it must refuse proves it runs. The verdicts are pure ([`tprotect_lifecycle_rules::checks`]).

// RunError is large (it names cluster, namespace and object); it ends a run, so its size costs nothing.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use tprotect_api::Schedule;
use tprotect_lifecycle_rules::checks::{
    WEBHOOK_CONFIGURATION_PREFIX, WebhookProbe, Webhooks, classify_probe, webhook_probe_schedule,
};

use crate::clusters::Clusters;
use crate::error::{RunError, api_status, is_connection_error, with_causes};
use crate::model::ClusterKey;
use crate::observe::resource;

/// Probes the webhook on both clusters: lists the project's ValidatingWebhookConfigurations, and where one is
/// registered, sends the probe Schedule with `dryRun=All` into `namespaces[key]` (a namespace of the
/// relationship on that cluster, where the webhook's namespace selector applies).
pub async fn probe_webhooks(
    clusters: &Clusters,
    namespaces: &BTreeMap<ClusterKey, String>,
) -> Result<Webhooks, RunError> {
    let mut found = BTreeMap::new();
    for key in ClusterKey::BOTH {
        let handle = clusters.get(key);
        let probe = match handle.client() {
            Err(e) => WebhookProbe::NotVerified(format!("cluster unusable: {e}")),
            Ok(client) => match namespaces.get(&key) {
                None => WebhookProbe::NotVerified("no namespace of the relationship on this cluster".into()),
                Some(namespace) => probe_one(client, &handle.context, namespace).await?,
            },
        };
        found.insert(key, probe);
    }
    Ok(found)
}

async fn probe_one(client: &kube::Client, context: &str, namespace: &str) -> Result<WebhookProbe, RunError> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let configurations: Vec<String> = match api.list_metadata(&ListParams::default()).await {
        Ok(list) => list
            .items
            .into_iter()
            .filter_map(|w| w.metadata.name)
            .filter(|n| n.starts_with(WEBHOOK_CONFIGURATION_PREFIX))
            .collect(),
        Err(e) if is_connection_error(&e) => return Ok(WebhookProbe::NotVerified(with_causes(&e))),
        Err(e) if api_status(&e) == Some(403) => {
            return Ok(WebhookProbe::NotVerified(format!(
                "no permission to list ValidatingWebhookConfigurations ({e})"
            )));
        }
        Err(e) => {
            return Err(RunError::kube(
                context,
                "list",
                "validatingwebhookconfigurations",
                "",
                "",
                e,
            ));
        }
    };
    if configurations.is_empty() {
        return Ok(WebhookProbe::Absent);
    }
    let schedules: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &resource::<Schedule>());
    let probe: DynamicObject = serde_json::from_value(webhook_probe_schedule(namespace))
        .map_err(|e| RunError::Internal(format!("the webhook probe Schedule: {e}")))?;
    let params = PostParams {
        dry_run: true,
        field_manager: Some(tprotect_api::FIELD_MANAGER.to_string()),
    };
    let answer = match schedules.create(&params, &probe).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err((status.code, status.message.clone())),
        Err(e) if is_connection_error(&e) => return Ok(WebhookProbe::NotVerified(with_causes(&e))),
        Err(e) => Err((0, e.to_string())),
    };
    Ok(classify_probe(configurations, answer))
}
