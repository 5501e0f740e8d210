//! A fake cluster for the verbs' tests, as cnpg tests its verbs against a fake client: a kube client whose API
//! server is an in-memory list of objects answering GETs and LISTs (by namespace, name and label selector).
//! Writes are refused (405): the read-only verbs are tested here; the writing ones end to end on real API
//! servers.

use std::pin::pin;

use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock;

/// Objects of one cluster, as the API server would return them.
#[derive(Debug, Clone, Default)]
pub struct FakeCluster {
    objects: Vec<Value>,
}

impl FakeCluster {
    pub fn new(objects: Vec<Value>) -> Self {
        Self { objects }
    }

    /// A client answered by this cluster (served by a task on the current runtime).
    pub fn client(self) -> kube::Client {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        tokio::spawn(async move {
            let mut handle = pin!(handle);
            while let Some((request, send)) = handle.next_request().await {
                let (status, body) = self.answer(&request);
                let response = Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&body).unwrap_or_default()))
                    .unwrap_or_else(|_| Response::new(Body::empty()));
                send.send_response(response);
            }
        });
        kube::Client::new(service, "default")
    }

    fn answer(&self, request: &Request<Body>) -> (u16, Value) {
        if request.method() != http::Method::GET {
            return (
                405,
                status(405, "MethodNotAllowed", "the fake cluster is read-only"),
            );
        }
        let uri = request.uri();
        let parts: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
        // /api/v1/... or /apis/<group>/<version>/...
        let rest = match parts.as_slice() {
            ["api", _, rest @ ..] => rest,
            ["apis", _, _, rest @ ..] => rest,
            _ => return (404, status(404, "NotFound", "no such path")),
        };
        let (namespace, plural, name) = match rest {
            ["namespaces", ns, plural] => (Some(*ns), *plural, None),
            ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name)),
            [plural] => (None, *plural, None),
            [plural, name] => (None, *plural, Some(*name)),
            _ => return (404, status(404, "NotFound", "no such path")),
        };
        let selector: Vec<(String, String)> = uri
            .query()
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter_map(|pair| pair.strip_prefix("labelSelector="))
            .flat_map(|s| {
                let decoded = s.replace("%3D", "=").replace("%2F", "/").replace("%2C", ",");
                decoded
                    .split(',')
                    .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
                    .collect::<Vec<_>>()
            })
            .collect();
        let matching: Vec<&Value> = self
            .objects
            .iter()
            .filter(|o| plural_of(o) == plural)
            .filter(|o| namespace.is_none_or(|ns| o["metadata"]["namespace"] == ns))
            .filter(|o| name.is_none_or(|n| o["metadata"]["name"] == n))
            .filter(|o| {
                selector
                    .iter()
                    .all(|(k, v)| o["metadata"]["labels"][k.as_str()].as_str() == Some(v.as_str()))
            })
            .collect();
        match name {
            Some(name) => match matching.first() {
                Some(object) => (200, (*object).clone()),
                None => (
                    404,
                    status(404, "NotFound", &format!("{plural} \"{name}\" not found")),
                ),
            },
            None => (
                200,
                json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": matching}),
            ),
        }
    }
}

/// The resource name of an object's kind (the kinds the verbs read).
fn plural_of(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or_default().to_ascii_lowercase();
    if kind.ends_with("class") {
        format!("{kind}es")
    } else {
        format!("{kind}s")
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code})
}

/// An object of `kind` (apiVersion `api_version`) named `namespace/name` with the given `extra` fields merged in.
pub fn object(api_version: &str, kind: &str, namespace: Option<&str>, name: &str, extra: Value) -> Value {
    let mut object = json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "uid": format!("uid-{name}"), "resourceVersion": "1"},
    });
    if let Some(namespace) = namespace {
        object["metadata"]["namespace"] = json!(namespace);
    }
    json_patch::merge(&mut object, &extra);
    object
}

/// Two clusters with relationship `rel1` Established: `app1` on the source (`src`) replicated into `app1-dr`
/// on the destination (`dst`), its last transfer `lag_seconds` ago, every AppVault and Secret in place.
pub fn established_pair(lag_seconds: i64) -> (FakeCluster, FakeCluster) {
    let v1 = "v1";
    let tp = "protect.trident.netapp.io/v1";
    let trident = Some("trident-protect");
    let completed = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(lag_seconds)).to_string();
    let rule = "DTSTART:20260101T000000Z\nRRULE:FREQ=MINUTELY;INTERVAL=5";
    let vault = |name: &str, secret: &str| {
        object(
            tp,
            "AppVault",
            trident,
            name,
            json!({"spec": {"providerType": "GenericS3", "providerCredentials": {
                "accessKeyID": {"valueFromSecret": {"name": secret, "key": "accessKeyID"}}}},
                "status": {"state": "Available"}}),
        )
    };
    let secret = |name: &str| {
        object(
            v1,
            "Secret",
            trident,
            name,
            json!({"data": {"accessKeyID": "QUtJQQ=="}}),
        )
    };
    let namespace = |name: &str| object(v1, "Namespace", None, name, json!({}));
    let source = FakeCluster::new(vec![
        namespace("kube-system"),
        namespace("app1"),
        namespace("trident-protect"),
        object(
            tp,
            "Application",
            Some("app1"),
            "app1",
            json!({"metadata": {"uid": "app-uid"}}),
        ),
        object(
            tp,
            "Schedule",
            Some("app1"),
            "appmirror-schedule-rel1",
            json!({"metadata": {"labels": {"tprotect.io/relationship": "rel1", "tprotect.io/replication-schedule": "true"}},
                "spec": {"applicationRef": "app1", "appVaultRef": "src-vault", "granularity": "Custom",
                    "recurrenceRule": rule, "backupRetention": "0", "snapshotRetention": "2", "enabled": true}}),
        ),
        vault("src-vault", "src-creds"),
        secret("src-creds"),
    ]);
    let destination = FakeCluster::new(vec![
        namespace("kube-system"),
        namespace("app1-dr"),
        namespace("trident-protect"),
        object(
            tp,
            "AppMirrorRelationship",
            Some("app1-dr"),
            "rel1",
            json!({"metadata": {"labels": {"tprotect.io/relationship": "rel1"}},
                "spec": {"desiredState": "Established", "sourceApplicationName": "app1", "sourceApplicationUID": "app-uid",
                    "sourceAppVaultRef": "src-vault", "destinationAppVaultRef": "dst-vault", "recurrenceRule": rule,
                    "namespaceMapping": [{"source": "app1", "destination": "app1-dr"}]},
                "status": {"state": "Established", "lastTransfer": {"completionTimestamp": completed}}}),
        ),
        vault("src-vault", "src-creds"),
        vault("dst-vault", "dst-creds"),
        secret("src-creds"),
        secret("dst-creds"),
    ]);
    (source, destination)
}

/// The two clusters as a command would have them: `--context dst --peer-context src`.
pub fn clusters(source: FakeCluster, destination: FakeCluster) -> tprotect_lifecycle::Clusters {
    use tprotect_lifecycle::{ClusterHandle, Clusters};
    Clusters::new(
        ClusterHandle::from_client("dst", destination.client()),
        ClusterHandle::from_client("src", source.client()),
    )
}
