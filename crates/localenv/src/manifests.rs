//! Writing objects and the product's manifests (`manifests/`) to a cluster.

use std::path::{Path, PathBuf};

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde::Deserialize;
use serde_json::Value;

use crate::Error;

/// Field manager of the environment's own writes.
pub const FIELD_MANAGER: &str = "tprotect-localenv";

/// A file of the repository's `manifests/` directory.
pub fn product_manifest(relative: &str) -> PathBuf {
    tprotect_testbed::repo_root().join("manifests").join(relative)
}

/// ApiResource of a Trident protect kind.
pub fn protect(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(tprotect_api::GROUP, tprotect_api::VERSION, kind),
        plural,
    )
}

/// The API of `resource` in `namespace`, or cluster-wide.
pub fn dynamic_api(
    client: &kube::Client,
    namespace: Option<&str>,
    resource: &ApiResource,
) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

/// Server-side apply of a JSON object (creates or updates; a re-run is harmless).
pub async fn apply(
    client: &kube::Client,
    namespace: Option<&str>,
    resource: &ApiResource,
    object: Value,
) -> Result<(), Error> {
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    dynamic_api(client, namespace, resource)
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await?;
    Ok(())
}

/// Every document of a YAML file, as JSON.
pub fn read_yaml(path: &Path) -> Result<Vec<Value>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut documents = Vec::new();
    for document in serde_norway::Deserializer::from_str(&text) {
        let value = Value::deserialize(document).map_err(|e| Error::Manifest {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

/// Applies every object of a manifest file as it is written (the kind's resource found by discovery, so any
/// kind the API server serves), each in its own namespace.
pub async fn apply_manifest(client: &kube::Client, path: &Path) -> Result<(), Error> {
    for object in read_yaml(path)? {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let kind = object["kind"].as_str().unwrap_or_default();
        let (resource, capabilities) =
            kube::discovery::pinned_kind(client, &GroupVersionKind::gvk(group, version, kind)).await?;
        let namespace = match capabilities.scope {
            kube::discovery::Scope::Namespaced => Some(
                object["metadata"]["namespace"]
                    .as_str()
                    .ok_or_else(|| Error::Manifest {
                        path: path.to_path_buf(),
                        message: format!("{kind} {} has no metadata.namespace", object["metadata"]["name"]),
                    })?
                    .to_string(),
            ),
            kube::discovery::Scope::Cluster => None,
        };
        apply(client, namespace.as_deref(), &resource, object).await?;
    }
    Ok(())
}
