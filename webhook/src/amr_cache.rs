//! A watch-fed cache of AppMirrorRelationships (all namespaces), so a namespace admission request finds the
//! namespace mappings that point at it without an API call.
//!
//! Objects are read as [`DynamicObject`]s, not typed: one malformed AMR in the cluster must not break the
//! list for all the others, and only `spec.namespaceMapping` is read. The cache keeps nothing else (metadata
//! is trimmed to the object reference) to keep the webhook's memory flat however large the AMRs are.

use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind},
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        watcher,
    },
};
use tokio_util::sync::CancellationToken;
use tprotect_policy::namespace::NamespaceMapping;

use crate::metrics::Metrics;

/// The API resource of AppMirrorRelationships.
pub fn amr_api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(
            tprotect_api::GROUP,
            tprotect_api::VERSION,
            "AppMirrorRelationship",
        ),
        "appmirrorrelationships",
    )
}

/// A client for the AMR watch: `kubeconfig` (with `context`) when given, else in-cluster, else $KUBECONFIG or
/// `~/.kube/config` (kube's inference), with `context` applied where a kubeconfig is used.
pub async fn kube_client(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> crate::Result<Client> {
    use kube::config::{Config, KubeConfigOptions, Kubeconfig};
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match (kubeconfig, context) {
        (Some(path), _) => {
            let file = Kubeconfig::read_from(path).map_err(|e| crate::Error::KubeConfig(e.to_string()))?;
            Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| crate::Error::KubeConfig(e.to_string()))?
        }
        (None, Some(_)) => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| crate::Error::KubeConfig(e.to_string()))?,
        (None, None) => Config::infer()
            .await
            .map_err(|e| crate::Error::KubeConfig(e.to_string()))?,
    };
    Ok(Client::try_from(config)?)
}

/// Namespace mappings of the AppMirrorRelationships the webhook knows about.
#[derive(Clone)]
pub struct AmrCache {
    /// `None` when watching is switched off: no mappings, and nothing to wait for.
    store: Option<Store<DynamicObject>>,
    /// Held only by [`AmrCache::never_synced`]: a dropped writer would read as "failed", not "not yet".
    _writer: Option<Arc<reflector::store::Writer<DynamicObject>>>,
}

impl std::fmt::Debug for AmrCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmrCache")
            .field("enabled", &self.store.is_some())
            .field("synced", &self.is_synced())
            .field("objects", &self.len())
            .finish()
    }
}

/// Keeps only what the cache needs: the object reference and `spec.namespaceMapping`.
fn trim(object: &mut DynamicObject) {
    let meta = &mut object.metadata;
    meta.managed_fields = None;
    meta.annotations = None;
    meta.labels = None;
    meta.owner_references = None;
    meta.finalizers = None;
    let mapping = object
        .data
        .get("spec")
        .and_then(|spec| spec.get("namespaceMapping"))
        .cloned();
    object.data = match mapping {
        Some(mapping) => serde_json::json!({ "spec": { "namespaceMapping": mapping } }),
        None => serde_json::json!({}),
    };
}

impl AmrCache {
    /// No watch: namespace requests see no mappings (the `name` label is then copied unchanged).
    pub fn disabled() -> Self {
        Self {
            store: None,
            _writer: None,
        }
    }

    /// Watches AppMirrorRelationships in all namespaces until `cancel` fires. Watch errors (the CRD not
    /// installed yet, a lost connection) are logged and retried with backoff; the cache stays unsynced
    /// until the first complete list.
    pub fn spawn(client: Client, metrics: Arc<Metrics>, cancel: CancellationToken) -> Self {
        let resource = amr_api_resource();
        let api = Api::<DynamicObject>::all_with(client, &resource);
        let writer = reflector::store::Writer::<DynamicObject>::new(resource);
        let store = writer.as_reader();
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(trim)
            // Every event, not only applied objects: an empty first list (InitDone alone) is a sync too.
            .reflect(writer);
        let reader = store.clone();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            let mut synced = false;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    item = stream.next() => match item {
                        Some(Ok(_)) => {}
                        Some(Err(error)) => {
                            tracing::warn!(%error, "AppMirrorRelationship watch failed; retrying");
                        }
                        None => return,
                    },
                }
                metrics
                    .amr_cache_objects
                    .set(i64::try_from(reader.len()).unwrap_or(i64::MAX));
                if reader
                    .wait_until_ready()
                    .now_or_never()
                    .is_some_and(|r| r.is_ok())
                    && !synced
                {
                    synced = true;
                    metrics.amr_cache_synced.set(1);
                    tracing::info!(objects = reader.len(), "AppMirrorRelationship cache synced");
                }
            }
        });
        Self {
            store: Some(store),
            _writer: None,
        }
    }

    /// A synced cache holding exactly `objects` (for tests and tools).
    pub fn from_objects(objects: impl IntoIterator<Item = DynamicObject>) -> Self {
        let mut writer = reflector::store::Writer::<DynamicObject>::new(amr_api_resource());
        let store = writer.as_reader();
        writer.apply_watcher_event(&watcher::Event::Init);
        for mut object in objects {
            trim(&mut object);
            writer.apply_watcher_event(&watcher::Event::InitApply(object));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        Self {
            store: Some(store),
            _writer: None,
        }
    }

    /// A cache whose first list never completes (for tests of the unsynced path).
    pub fn never_synced() -> Self {
        let writer = reflector::store::Writer::<DynamicObject>::new(amr_api_resource());
        let store = writer.as_reader();
        Self {
            store: Some(store),
            _writer: Some(Arc::new(writer)),
        }
    }

    /// Whether the first complete list has arrived (always true when watching is off).
    pub fn is_synced(&self) -> bool {
        match &self.store {
            None => true,
            Some(store) => store
                .wait_until_ready()
                .now_or_never()
                .is_some_and(|ready| ready.is_ok()),
        }
    }

    /// AppMirrorRelationships in the cache.
    pub fn len(&self) -> usize {
        self.store.as_ref().map_or(0, Store::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every `namespaceMapping` entry, of any AMR, whose destination is `namespace`; sorted, no duplicates.
    pub fn mappings_to(&self, namespace: &str) -> Vec<NamespaceMapping> {
        let Some(store) = &self.store else {
            return Vec::new();
        };
        let mut found: Vec<NamespaceMapping> = store
            .state()
            .iter()
            .flat_map(|amr| NamespaceMapping::from_amr(&amr.data))
            .filter(|mapping| mapping.destination == namespace)
            .collect();
        found.sort();
        found.dedup();
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amr(namespace: &str, name: &str, mapping: serde_json::Value) -> DynamicObject {
        let mut object = DynamicObject::new(name, &amr_api_resource()).within(namespace);
        object.metadata.managed_fields = Some(Vec::new());
        object.data = serde_json::json!({
            "spec": { "namespaceMapping": mapping, "desiredState": "Established" },
            "status": { "state": "Established" },
        });
        object
    }

    #[test]
    fn finds_mappings_by_destination_across_amrs() {
        let cache = AmrCache::from_objects([
            amr(
                "ns-2",
                "a",
                serde_json::json!([{ "source": "ns-1", "destination": "ns-2" }]),
            ),
            amr(
                "app",
                "b",
                serde_json::json!([
                    { "source": "x", "destination": "ns-2" },
                    { "source": "y", "destination": "other" },
                    { "source": 3, "destination": "ns-2" },
                    "garbage",
                ]),
            ),
            amr("ns-9", "c", serde_json::json!("not a list")),
        ]);
        assert!(cache.is_synced());
        assert_eq!(cache.len(), 3);
        assert_eq!(
            cache.mappings_to("ns-2"),
            vec![
                NamespaceMapping {
                    source: "ns-1".into(),
                    destination: "ns-2".into()
                },
                NamespaceMapping {
                    source: "x".into(),
                    destination: "ns-2".into()
                },
            ]
        );
        assert_eq!(
            cache.mappings_to("other"),
            vec![NamespaceMapping {
                source: "y".into(),
                destination: "other".into()
            }]
        );
        assert!(cache.mappings_to("nowhere").is_empty());
    }

    #[test]
    fn trimming_keeps_only_the_mapping() {
        let mut object = amr(
            "ns",
            "a",
            serde_json::json!([{ "source": "s", "destination": "d" }]),
        );
        trim(&mut object);
        assert_eq!(
            object.data,
            serde_json::json!({ "spec": { "namespaceMapping": [{ "source": "s", "destination": "d" }] } })
        );
        assert!(object.metadata.managed_fields.is_none());
        assert_eq!(object.metadata.name.as_deref(), Some("a"));
    }

    /// The watch against a mock API server: an empty first list is a completed sync (the metric says so),
    /// and a watch event reaches the mappings.
    #[tokio::test]
    async fn watch_syncs_on_an_empty_list_and_applies_events() {
        use http::{Request, Response};
        use kube::client::Body;
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let metrics = Arc::new(Metrics::new());
        let cancel = CancellationToken::new();
        let cache = AmrCache::spawn(Client::new(service, "default"), metrics.clone(), cancel.clone());
        assert!(!cache.is_synced());

        let (list, respond) = handle.next_request().await.expect("list request");
        assert_eq!(
            list.uri().path(),
            "/apis/protect.trident.netapp.io/v1/appmirrorrelationships"
        );
        assert!(
            !list.uri().query().unwrap_or_default().contains("watch=true"),
            "{}",
            list.uri()
        );
        let empty = serde_json::json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "5"}, "items": []});
        respond.send_response(Response::new(Body::from(serde_json::to_vec(&empty).unwrap())));

        let (watch, respond) = handle.next_request().await.expect("watch request");
        assert!(
            watch.uri().query().unwrap_or_default().contains("watch=true"),
            "{}",
            watch.uri()
        );
        // Synced on the empty list alone, before any object arrives.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while metrics.amr_cache_synced.get() != 1 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "an empty first list never counted as synced"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(cache.is_synced());
        assert_eq!(metrics.amr_cache_objects.get(), 0);
        let mut object = amr(
            "ns-2",
            "rel",
            serde_json::json!([{"source": "ns-1", "destination": "ns-2"}]),
        );
        object.metadata.resource_version = Some("6".into());
        let event = serde_json::json!({"type": "ADDED", "object": object});
        let mut line = serde_json::to_vec(&event).unwrap();
        line.push(b'\n');
        respond.send_response(Response::new(Body::from(line)));

        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while cache.mappings_to("ns-2").is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the watch event never reached the cache"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(cache.is_synced());
        assert_eq!(metrics.amr_cache_synced.get(), 1);
        assert_eq!(metrics.amr_cache_objects.get(), 1);
        cancel.cancel();
    }

    #[test]
    fn unsynced_and_disabled() {
        assert!(!AmrCache::never_synced().is_synced());
        assert!(AmrCache::disabled().is_synced());
        assert!(AmrCache::disabled().mappings_to("x").is_empty());
    }
}
