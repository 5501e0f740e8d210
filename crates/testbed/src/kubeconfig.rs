//! The kubeconfig the tests, the demo and a user at a shell share: one context per cluster and identity.

use std::path::Path;

use serde_json::json;

use crate::{Error, Identity};

/// What the kubeconfig needs to know about one cluster.
pub(crate) struct ClusterEntry<'a> {
    pub context: &'a str,
    pub server: &'a str,
    pub ca_file: &'a Path,
    /// Token per identity, in [`Identity::ALL`] order.
    pub tokens: &'a [(Identity, String)],
}

/// Renders the kubeconfig; the first cluster's admin context is the current one.
pub(crate) fn render(clusters: &[ClusterEntry<'_>], namespace: &str) -> Result<String, Error> {
    let mut kube_clusters = Vec::new();
    let mut users = Vec::new();
    let mut contexts = Vec::new();
    for entry in clusters {
        kube_clusters.push(json!({
            "name": entry.context,
            "cluster": { "server": entry.server, "certificate-authority": entry.ca_file.to_string_lossy() },
        }));
        for (identity, token) in entry.tokens {
            let name = format!("{}{}", entry.context, identity.context_suffix());
            users.push(json!({ "name": name, "user": { "token": token } }));
            contexts.push(json!({
                "name": name,
                "context": { "cluster": entry.context, "user": name, "namespace": namespace },
            }));
        }
    }
    let current = clusters.first().map(|c| c.context).unwrap_or_default();
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": kube_clusters,
        "users": users,
        "contexts": contexts,
        "current-context": current,
        "preferences": {},
    });
    serde_norway::to_string(&config).map_err(|e| Error::Kubeconfig(e.to_string()))
}

/// A kube client for one context of a kubeconfig file.
pub(crate) async fn client(kubeconfig: &Path, context: &str) -> Result<kube::Client, Error> {
    let config =
        kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| Error::Kubeconfig(e.to_string()))?;
    let options = kube::config::KubeConfigOptions {
        context: Some(context.to_string()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(config, &options)
        .await
        .map_err(|e| Error::Kubeconfig(e.to_string()))?;
    Ok(kube::Client::try_from(config)?)
}
