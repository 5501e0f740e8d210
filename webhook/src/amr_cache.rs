//! A watch-fed cache of AppMirrorRelationships (all namespaces), so a namespace admission request finds the
//! namespace mappings that point at it without an API call, and a scrape of `/metrics` finds every AMR's
//! replication state ([`crate::amr_metrics`]) without one either.
//!
//! Objects are read as [`DynamicObject`]s, not typed: one malformed AMR in the cluster must not break the
//! list for all the others. The cache keeps only the fields those two read (see [`trim`]): the object
//! reference, the relationship label, four spec fields and four status fields, to keep the webhook's memory flat
//! however large the AMRs are (managed fields, annotations, conditions and transformations are dropped).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};

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
use prometheus_client::metrics::gauge::Gauge;
use tokio_util::sync::CancellationToken;
use tprotect_lifecycle_rules::AmrView;
use tprotect_policy::namespace::NamespaceMapping;

/// The cache's own gauges, registered in [`crate::Metrics`]; the cache sets them, the metrics export them.
#[derive(Debug, Clone, Default)]
pub struct CacheGauges {
    /// 1 once the first list completed.
    pub synced: Gauge<i64, AtomicI64>,
    /// AMRs in the cache.
    pub objects: Gauge<i64, AtomicI64>,
}

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
    /// Every AMR as the replication judgement reads it, fed by the same watch.
    replication: Arc<ReplicationIndex>,
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

/// `spec` fields the cache keeps: the namespace mapping (admission) and what the replication judgement reads.
const KEPT_SPEC: [&str; 4] = [
    "namespaceMapping",
    "desiredState",
    "recurrenceRule",
    "sourceApplicationName",
];
/// `status` fields the cache keeps (the judgement's; `error` only decides health, it is never exported).
const KEPT_STATUS: [&str; 4] = ["state", "error", "lastTransfer", "lastTransferredSnapshot"];

/// Keeps only what the cache's readers need: the object reference, the relationship label, [`KEPT_SPEC`] and
/// [`KEPT_STATUS`].
fn trim(object: &mut DynamicObject) {
    let meta = &mut object.metadata;
    meta.managed_fields = None;
    meta.annotations = None;
    meta.owner_references = None;
    meta.finalizers = None;
    meta.labels = meta
        .labels
        .take()
        .and_then(|mut labels| labels.remove_entry(tprotect_api::RELATIONSHIP_LABEL))
        .map(|kept| [kept].into());
    let keep = |section: &str, fields: &[&str]| -> Option<serde_json::Value> {
        let source = object.data.get(section)?.as_object()?;
        let kept: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .filter_map(|field| Some((field.to_string(), source.get(*field)?.clone())))
            .collect();
        Some(serde_json::Value::Object(kept))
    };
    let mut data = serde_json::Map::new();
    if let Some(spec) = keep("spec", &KEPT_SPEC) {
        data.insert("spec".into(), spec);
    }
    if let Some(status) = keep("status", &KEPT_STATUS) {
        data.insert("status".into(), status);
    }
    object.data = serde_json::Value::Object(data);
}

/// Every AMR as the replication judgement reads it, kept up to date from the watch: its view
/// ([`tprotect_lifecycle_rules::read::amr_view`], read once per watch event rather than once per scrape) and the
/// transfers completed while the webhook watched. A transfer is a later completion time
/// ([`tprotect_lifecycle_rules::status::last_transfer_time`]) than the one last seen; what an AMR shows when the
/// webhook first sees it is the baseline, not a transfer seen. A re-list (after a lost watch) keeps the counts
/// of the AMRs still there and forgets the others.
#[derive(Debug, Default)]
pub struct ReplicationIndex {
    state: Mutex<IndexState>,
}

#[derive(Debug, Default)]
struct IndexState {
    amrs: HashMap<(String, String), IndexedAmr>,
    /// Keys listed so far while a re-list is under way.
    relisting: Option<HashSet<(String, String)>>,
}

#[derive(Debug)]
struct IndexedAmr {
    view: Arc<AmrView>,
    last: Option<jiff::Timestamp>,
    transfers: u64,
}

fn object_key(object: &DynamicObject) -> (String, String) {
    (
        object.metadata.namespace.clone().unwrap_or_default(),
        object.metadata.name.clone().unwrap_or_default(),
    )
}

impl ReplicationIndex {
    /// Takes one watch event into account.
    pub fn apply(&self, event: &watcher::Event<DynamicObject>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Init => state.relisting = Some(HashSet::new()),
            watcher::Event::InitApply(object) => {
                let key = object_key(object);
                state.note(object, key.clone());
                if let Some(listed) = state.relisting.as_mut() {
                    listed.insert(key);
                }
            }
            watcher::Event::InitDone => {
                if let Some(listed) = state.relisting.take() {
                    state.amrs.retain(|key, _| listed.contains(key));
                }
            }
            watcher::Event::Apply(object) => {
                let key = object_key(object);
                state.note(object, key);
            }
            watcher::Event::Delete(object) => {
                state.amrs.remove(&object_key(object));
            }
        }
    }

    /// Every AMR's view with the transfers seen of it.
    pub fn snapshot(&self) -> Vec<(Arc<AmrView>, u64)> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .amrs
            .values()
            .map(|amr| (amr.view.clone(), amr.transfers))
            .collect()
    }

    /// Transfers of the AMR `namespace/name` completed while the webhook watched.
    pub fn transfers(&self, namespace: &str, name: &str) -> u64 {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .amrs
            .get(&(namespace.to_string(), name.to_string()))
            .map_or(0, |amr| amr.transfers)
    }
}

impl IndexState {
    fn note(&mut self, object: &DynamicObject, key: (String, String)) {
        let view = Arc::new(tprotect_lifecycle_rules::read::amr_view(object));
        let last = tprotect_lifecycle_rules::status::last_transfer_time(&view);
        match self.amrs.get_mut(&key) {
            // Another object of the same name (deleted and created again): its state is a new baseline.
            Some(amr) if amr.view.uid != view.uid => {
                amr.view = view;
                amr.last = last;
            }
            Some(amr) => {
                if last > amr.last {
                    amr.transfers += 1;
                    amr.last = last;
                }
                amr.view = view;
            }
            None => {
                self.amrs.insert(
                    key,
                    IndexedAmr {
                        view,
                        last,
                        transfers: 0,
                    },
                );
            }
        }
    }
}

impl AmrCache {
    /// No watch: namespace requests see no mappings (the `name` label is then copied unchanged).
    pub fn disabled() -> Self {
        Self {
            store: None,
            _writer: None,
            replication: Arc::default(),
        }
    }

    /// Watches AppMirrorRelationships in all namespaces until `cancel` fires. Watch errors (the CRD not
    /// installed yet, a lost connection) are logged and retried with backoff; the cache stays unsynced
    /// until the first complete list.
    pub fn spawn(client: Client, gauges: CacheGauges, cancel: CancellationToken) -> Self {
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
        let replication = Arc::new(ReplicationIndex::default());
        let indexing = replication.clone();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            let mut synced = false;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    item = stream.next() => match item {
                        Some(Ok(event)) => indexing.apply(&event),
                        Some(Err(error)) => {
                            tracing::warn!(%error, "AppMirrorRelationship watch failed; retrying");
                        }
                        None => return,
                    },
                }
                gauges
                    .objects
                    .set(i64::try_from(reader.len()).unwrap_or(i64::MAX));
                if reader
                    .wait_until_ready()
                    .now_or_never()
                    .is_some_and(|r| r.is_ok())
                    && !synced
                {
                    synced = true;
                    gauges.synced.set(1);
                    tracing::info!(objects = reader.len(), "AppMirrorRelationship cache synced");
                }
            }
        });
        Self {
            store: Some(store),
            _writer: None,
            replication,
        }
    }

    /// A synced cache holding exactly `objects` (for tests and tools).
    pub fn from_objects(objects: impl IntoIterator<Item = DynamicObject>) -> Self {
        let mut writer = reflector::store::Writer::<DynamicObject>::new(amr_api_resource());
        let store = writer.as_reader();
        let replication = Arc::new(ReplicationIndex::default());
        let mut apply = |event: watcher::Event<DynamicObject>| {
            replication.apply(&event);
            writer.apply_watcher_event(&event);
        };
        apply(watcher::Event::Init);
        for mut object in objects {
            trim(&mut object);
            apply(watcher::Event::InitApply(object));
        }
        apply(watcher::Event::InitDone);
        Self {
            store: Some(store),
            _writer: None,
            replication,
        }
    }

    /// A cache whose first list never completes (for tests of the unsynced path).
    pub fn never_synced() -> Self {
        let writer = reflector::store::Writer::<DynamicObject>::new(amr_api_resource());
        let store = writer.as_reader();
        Self {
            store: Some(store),
            _writer: Some(Arc::new(writer)),
            replication: Arc::default(),
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

    /// Every AMR's view and the transfers seen of it, once the cache is synced; none before, and none when
    /// watching is off.
    pub fn replication(&self) -> Vec<(Arc<AmrView>, u64)> {
        if self.store.is_some() && self.is_synced() {
            self.replication.snapshot()
        } else {
            Vec::new()
        }
    }

    /// The index behind [`Self::replication`].
    pub fn replication_index(&self) -> &ReplicationIndex {
        &self.replication
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

    /// A realistic AMR (managed fields, annotations, conditions, every spec field) keeps only the reference,
    /// the relationship label and the fields the mapping and the replication judgement read.
    #[test]
    fn trimming_keeps_only_what_the_readers_need() {
        let mut object: DynamicObject = serde_json::from_value(crate::testing::amr("Established")).unwrap();
        object
            .metadata
            .labels
            .get_or_insert_default()
            .insert("team".into(), "payments".into());
        trim(&mut object);
        assert_eq!(
            object.data,
            serde_json::json!({
                "spec": {
                    "namespaceMapping": [{"destination": "my-app-namespace", "source": "my-app-namespace"}],
                    "desiredState": "Established",
                    "recurrenceRule": crate::testing::RULE,
                    "sourceApplicationName": "my-app-name",
                },
                "status": {
                    "state": "Established",
                    "lastTransfer": {"startTimestamp": "2025-01-07T12:20:00Z", "completionTimestamp": "2025-01-07T12:20:31Z"},
                },
            })
        );
        assert!(object.metadata.managed_fields.is_none());
        assert!(object.metadata.annotations.is_none());
        assert_eq!(
            object.metadata.labels,
            Some([(tprotect_api::RELATIONSHIP_LABEL.to_string(), "rel1".to_string())].into())
        );
        assert_eq!(
            object.metadata.name.as_deref(),
            Some("amr-16061e80-1b05-4e80-9d26-d326dc1953d8")
        );
        let mut bare = amr("ns", "a", serde_json::json!([]));
        bare.data = serde_json::json!({"spec": "not an object"});
        trim(&mut bare);
        assert_eq!(bare.data, serde_json::json!({}));
    }

    fn transferred(namespace: &str, name: &str, uid: &str, completion: Option<&str>) -> DynamicObject {
        let mut object = amr(namespace, name, serde_json::json!([]));
        object.metadata.uid = Some(uid.into());
        if let Some(at) = completion {
            object.data["status"]["lastTransfer"] = serde_json::json!({"completionTimestamp": at});
        }
        object
    }

    #[test]
    fn transfers_are_counted_from_later_completion_times_after_the_baseline() {
        use watcher::Event;
        let counts = ReplicationIndex::default();
        let at = |minute: u32| format!("2025-06-01T12:{minute:02}:00Z");
        counts.apply(&Event::Init);
        counts.apply(&Event::InitApply(transferred("ns", "a", "u1", Some(&at(0)))));
        counts.apply(&Event::InitApply(transferred("ns", "b", "u2", None)));
        counts.apply(&Event::InitDone);
        assert_eq!(
            counts.transfers("ns", "a"),
            0,
            "what the first list shows is the baseline"
        );
        for (minute, expected) in [(5, 1), (5, 1), (10, 2), (7, 2)] {
            counts.apply(&Event::Apply(transferred("ns", "a", "u1", Some(&at(minute)))));
            assert_eq!(
                counts.transfers("ns", "a"),
                expected,
                "completion at minute {minute}"
            );
        }
        // No transfer yet, then a first one: that one counts.
        counts.apply(&Event::Apply(transferred("ns", "b", "u2", Some(&at(1)))));
        assert_eq!(counts.transfers("ns", "b"), 1);
        // Deleted and created again while the watch was away: a new baseline, the count kept.
        counts.apply(&Event::Init);
        counts.apply(&Event::InitApply(transferred("ns", "a", "u9", Some(&at(30)))));
        counts.apply(&Event::InitDone);
        assert_eq!(counts.transfers("ns", "a"), 2);
        assert_eq!(counts.transfers("ns", "b"), 0, "gone from the re-list: forgotten");
        counts.apply(&Event::Apply(transferred("ns", "a", "u9", Some(&at(35)))));
        assert_eq!(counts.transfers("ns", "a"), 3);
        // The view follows the object: read once per event, what a scrape judges.
        let mut failed = transferred("ns", "a", "u9", Some(&at(35)));
        failed.data["status"]["state"] = serde_json::json!("Failed");
        counts.apply(&Event::Apply(failed));
        let snapshot = counts.snapshot();
        assert_eq!(snapshot.len(), 1);
        assert_eq!((snapshot[0].0.state(), snapshot[0].1), ("Failed", 3));
        counts.apply(&Event::Delete(transferred("ns", "a", "u9", None)));
        assert_eq!(counts.transfers("ns", "a"), 0);
        assert!(counts.snapshot().is_empty());
    }

    /// Polls `done` every 10 ms until it holds; after 30 s the test fails, saying `what` never happened.
    async fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// The watch against a mock API server: an empty first list is a completed sync (the metric says so),
    /// and a watch event reaches the mappings.
    #[tokio::test]
    async fn watch_syncs_on_an_empty_list_and_applies_events() {
        use http::{Request, Response};
        use kube::client::Body;
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let gauges = CacheGauges::default();
        let cancel = CancellationToken::new();
        let cache = AmrCache::spawn(Client::new(service, "default"), gauges.clone(), cancel.clone());
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
        until("an empty first list never counted as synced", || {
            gauges.synced.get() == 1
        })
        .await;
        assert!(cache.is_synced());
        assert_eq!(gauges.objects.get(), 0);
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

        until("the watch event never reached the cache", || {
            !cache.mappings_to("ns-2").is_empty()
        })
        .await;
        assert!(cache.is_synced());
        assert_eq!(gauges.synced.get(), 1);
        assert_eq!(gauges.objects.get(), 1);
        cancel.cancel();
    }

    #[test]
    fn unsynced_and_disabled() {
        assert!(!AmrCache::never_synced().is_synced());
        assert!(AmrCache::disabled().is_synced());
        assert!(AmrCache::disabled().mappings_to("x").is_empty());
    }
}
