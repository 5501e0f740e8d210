//! The admission webhook end to end: the real `tprotect-webhook` binary, started by `tprotect-localenv` on
//! both clusters as the product deploys it (its ServiceAccount, RBAC and ConfigMap from `manifests/`, running
//! as that ServiceAccount) and registered by URL with the two real API servers (the product's own webhook
//! configurations with `clientConfig` rewritten to `https://127.0.0.1:<port>`), driven with `kubectl` as a
//! user would.
//!
//! - what the API servers hold is the product's configuration: every field of `webhooks.yaml` but
//!   `clientConfig`;
//! - every invalid example is refused by `kubectl apply` with the webhook's message (field, rule, fix) and
//!   nothing is stored; every valid one is stored;
//! - omitted replication Schedule defaults are filled in, through the API server, with the JSON Patch
//!   encoded as base64 (destination) and as kube-rs' byte array (source): both are checked for real;
//! - namespace writes by the Trident protect controller's identity keep the keys named in
//!   RESTORE_SKIP_NAMESPACE_ANNOTATIONS (destination) and end as the seed's worked example documents
//!   (source, no skip list); writes by anyone else are untouched;
//! - the webhook reads AppMirrorRelationships with exactly the permissions of `manifests/webhook/base/rbac.yaml`
//!   (it runs as the testbed's webhook service account identity);
//! - the deployment manifests pass `kubectl apply --dry-run=server` where a 1.20 API server can take them.

use std::path::PathBuf;

use serde_json::{Value, json};
use tprotect_e2e::localenv::fixtures::{
    EXAMPLE_RULE as RULE, example_amr, example_app_vault, example_replication_schedule,
};
use tprotect_e2e::localenv::webhook::{REGISTRATIONS, validating_webhook_name};
use tprotect_e2e::localenv::{ServeOptions, manifests};
use tprotect_e2e::{
    DESTINATION as DST, Identity, LocalEnv, LocalEnvOptions, SOURCE as SRC, Testbed, TestbedOptions,
    WebhookOptions, eventually, webhook_binary, workspace_root,
};

const APP_NS: &str = "my-app-namespace";

fn manifests() -> PathBuf {
    workspace_root().join("manifests/webhook")
}

/// Output of a kubectl run.
struct Kubectl {
    success: bool,
    stdout: String,
    stderr: String,
}

fn kubectl(testbed: &Testbed, context: &str, args: &[&str], stdin: &str) -> Kubectl {
    let output = testbed.run_kubectl(context, args, stdin).expect("kubectl runs");
    Kubectl {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[track_caller]
fn kubectl_ok(testbed: &Testbed, context: &str, args: &[&str], stdin: &str) -> String {
    let out = kubectl(testbed, context, args, stdin);
    assert!(
        out.success,
        "kubectl --context {context} {} failed:\n{}",
        args.join(" "),
        out.stderr
    );
    out.stdout
}

fn get_json(testbed: &Testbed, context: &str, args: &[&str]) -> Option<Value> {
    let mut all = vec!["get", "-o", "json"];
    all.extend_from_slice(args);
    let out = kubectl(testbed, context, &all, "");
    out.success.then(|| serde_json::from_str(&out.stdout).unwrap())
}

/// What the API server holds is the product's configuration (`manifests/webhook/base/webhooks.yaml`): every
/// field as written but `clientConfig`, which points at `webhook` by URL with a CA.
fn assert_registered_as_the_product(testbed: &Testbed, context: &str, https: std::net::SocketAddr) {
    let product = manifests::read_yaml(&manifests::product_manifest(REGISTRATIONS)).unwrap();
    assert_eq!(product.len(), 2, "one validating, one mutating configuration");
    for configuration in &product {
        let kind = configuration["kind"].as_str().unwrap().to_lowercase();
        let name = configuration["metadata"]["name"].as_str().unwrap();
        let stored = get_json(testbed, context, &[&kind, name]).unwrap_or_else(|| panic!("{kind} {name}"));
        assert_eq!(
            stored["metadata"]["labels"], configuration["metadata"]["labels"],
            "{context}: {kind} {name}"
        );
        let (written, registered) = (
            configuration["webhooks"].as_array().unwrap(),
            stored["webhooks"].as_array().unwrap(),
        );
        assert_eq!(written.len(), registered.len(), "{context}: {kind} {name}");
        for (written, registered) in written.iter().zip(registered) {
            for (field, value) in written.as_object().unwrap() {
                if field == "clientConfig" {
                    let path = value["service"]["path"].as_str().unwrap();
                    assert_eq!(
                        registered["clientConfig"]["url"],
                        format!("https://{https}{path}"),
                        "{context}: {}",
                        written["name"]
                    );
                    assert!(
                        registered["clientConfig"]["caBundle"]
                            .as_str()
                            .is_some_and(|ca| !ca.is_empty())
                    );
                } else {
                    assert_eq!(
                        &registered[field], value,
                        "{context}: {} {field} differs from {REGISTRATIONS}",
                        written["name"]
                    );
                }
            }
        }
    }
}

fn replication_schedule(name: &str) -> Value {
    example_replication_schedule(name, APP_NS, "my-app-name", "src-vault")
}

/// NetApp's example AMR `name` in `namespace`, replicating each of `sources` into it.
fn amr(name: &str, namespace: &str, sources: &[&str]) -> Value {
    let mut amr = example_amr(name, namespace);
    amr["spec"]["namespaceMapping"] = sources
        .iter()
        .map(|source| json!({"source": source, "destination": namespace}))
        .collect();
    amr["spec"]["sourceApplicationName"] = json!("my-app-name");
    amr
}

fn app_vault(provider: &str) -> Value {
    let mut vault = example_app_vault("src-vault", APP_NS, "s3-secret");
    vault["spec"]["providerType"] = json!(provider);
    vault
}

fn application() -> Value {
    json!({
        "apiVersion": "protect.trident.netapp.io/v1",
        "kind": "Application",
        "metadata": {"name": "my-app-name", "namespace": APP_NS},
        "spec": {"includedNamespaces": [{"namespace": APP_NS}]}
    })
}

fn snapshot(kind: &str) -> Value {
    json!({
        "apiVersion": "protect.trident.netapp.io/v1",
        "kind": kind,
        "metadata": {"name": format!("{}-1", kind.to_lowercase()), "namespace": APP_NS},
        "spec": {"appVaultRef": "src-vault", "applicationRef": "my-app-name"}
    })
}

fn resource_of(object: &Value) -> String {
    format!(
        "{}.protect.trident.netapp.io",
        object["kind"].as_str().unwrap().to_lowercase()
    )
}

fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap()
}

/// `kubectl apply` of an invalid object is refused by the webhook with every violation the rules find (field
/// and fix), and nothing is stored.
#[track_caller]
fn assert_refused(testbed: &Testbed, context: &str, object: &Value, expected_code: &str) {
    let webhook_name = validating_webhook_name().unwrap();
    let now = jiff::Timestamp::now();
    let kind = object["kind"].as_str().unwrap();
    let violations = tprotect_policy::validate(kind, tprotect_policy::Operation::Create, object, None, now);
    assert!(!violations.is_empty(), "the example must be invalid: {object}");
    let out = kubectl(testbed, context, &["apply", "-f", "-"], &object.to_string());
    assert!(
        !out.success,
        "kubectl apply of an invalid {kind} succeeded: {object}"
    );
    let stderr = out.stderr.replace("\\\"", "\"");
    assert!(
        stderr.contains(&format!(
            "admission webhook \"{webhook_name}\" denied the request"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(expected_code),
        "expected {expected_code:?} in: {stderr}"
    );
    assert!(stderr.contains(name_of(object)), "{stderr}");
    // Digits masked: a rule or fix may quote the current time, which moves between here and the webhook.
    let masked = |text: &str| {
        text.chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .collect::<String>()
    };
    let stderr_masked = masked(&stderr);
    for violation in &violations {
        assert!(
            stderr.contains(&violation.field),
            "{} missing from: {stderr}",
            violation.field
        );
        assert!(
            stderr_masked.contains(&masked(&violation.rule)),
            "rule {:?} missing from: {stderr}",
            violation.rule
        );
        assert!(
            stderr_masked.contains(&masked(&violation.fix)),
            "fix {:?} missing from: {stderr}",
            violation.fix
        );
    }
    let namespace = object["metadata"]["namespace"].as_str().unwrap();
    assert!(
        get_json(
            testbed,
            context,
            &["-n", namespace, &resource_of(object), name_of(object)]
        )
        .is_none(),
        "a refused {kind} must not be stored"
    );
}

#[track_caller]
fn assert_stored(testbed: &Testbed, context: &str, object: &Value) -> Value {
    let out = kubectl(testbed, context, &["apply", "-f", "-"], &object.to_string());
    assert!(
        out.success,
        "kubectl apply of a valid {} failed:\n{}",
        object["kind"], out.stderr
    );
    let namespace = object["metadata"]["namespace"].as_str().unwrap();
    get_json(
        testbed,
        context,
        &["-n", namespace, &resource_of(object), name_of(object)],
    )
    .expect("stored")
}

/// Creates a namespace as admin with exactly these labels and annotations (`kubectl create`: no
/// last-applied annotation).
fn create_namespace(testbed: &Testbed, context: &str, name: &str, labels: Value, annotations: Value) {
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": labels, "annotations": annotations}});
    kubectl_ok(testbed, context, &["create", "-f", "-"], &namespace.to_string());
}

fn namespace_meta(testbed: &Testbed, context: &str, name: &str) -> (Value, Value) {
    let namespace = get_json(testbed, context, &["namespace", name]).unwrap();
    let mut labels = namespace["metadata"]["labels"].clone();
    // Set by API servers from 1.21 on; absent on 1.20. Not part of the seed's example either way.
    if let Some(labels) = labels.as_object_mut() {
        labels.remove("kubernetes.io/metadata.name");
    }
    (labels, namespace["metadata"]["annotations"].clone())
}

/// What a controller that copies every source key writes onto the destination namespace (the seed's
/// example: source `ns-1`), as a merge patch by the Trident protect controller's identity.
fn controller_copies_source_keys(testbed: &Testbed, cluster: &str, namespace: &str) {
    let patch = json!({"metadata": {
        "labels": {"environment": "production", "compliance": "hipaa", "name": "ns-1"},
        "annotations": {"annotation.one/key": "updatedvalue", "annotation.two/key": "true"},
    }});
    let context = format!("{cluster}{}", Identity::Controller.context_suffix());
    kubectl_ok(
        testbed,
        &context,
        &[
            "patch",
            "namespace",
            namespace,
            "--type",
            "merge",
            "-p",
            &patch.to_string(),
        ],
        "",
    );
}

#[tokio::test]
async fn webhook_guards_replication_resources_through_real_api_servers() {
    let started = std::time::Instant::now();
    let stage = |what: &str| eprintln!("[{:>6.1}s] {what}", started.elapsed().as_secs_f64());
    // Destination: skip list set, documented base64 patches. Source: no skip list, kube-rs' byte-array patches.
    let env = LocalEnv::start(LocalEnvOptions {
        testbed: TestbedOptions {
            crds: tprotect_e2e::CrdSource::NetApp,
            ..Default::default()
        },
        standin: None,
        webhook: Some(WebhookOptions {
            binary: webhook_binary(),
            source: ServeOptions {
                args: vec!["--patch-encoding".into(), "byte-array".into()],
                ..Default::default()
            },
            destination: ServeOptions {
                env: vec![(
                    "RESTORE_SKIP_NAMESPACE_ANNOTATIONS".into(),
                    "annotation.one/key".into(),
                )],
                ..Default::default()
            },
        }),
    })
    .await
    .expect("environment");
    let testbed = &env.testbed;
    let (destination, source) = (env.webhook(DST).unwrap(), env.webhook(SRC).unwrap());
    for (context, webhook) in [(DST, destination), (SRC, source)] {
        assert_eq!(webhook.get("/readyz").await.unwrap().0, 200);
        // The AMR cache lists and watches with only the manifests' RBAC, as the webhook's ServiceAccount.
        assert_eq!(
            webhook.metric("tprotect_webhook_amr_cache_synced").await,
            Some(1.0)
        );
        assert_registered_as_the_product(testbed, context, webhook.https);
        kubectl_ok(testbed, context, &["create", "namespace", APP_NS], "");
    }
    // It runs as its ServiceAccount: every request of that user reads AMRs, and none was refused.
    let webhook_user = Identity::Webhook.username();
    for cluster in [&testbed.source, &testbed.destination] {
        let requests: Vec<_> = tprotect_e2e::localenv::audit::read_all(&cluster.audit_log)
            .unwrap()
            .into_iter()
            .filter(|e| e.user.username == webhook_user)
            .collect();
        assert!(
            !requests.is_empty(),
            "no request of {webhook_user} on {}",
            cluster.context
        );
        for request in &requests {
            let code = request.response_status.as_ref().map_or(200, |s| s.code);
            assert!(
                request.resource() == "appmirrorrelationships"
                    && ["get", "list", "watch"].contains(&request.verb.as_str())
                    && code < 400,
                "{}: {}",
                cluster.context,
                request.describe()
            );
        }
    }
    stage("webhooks serving and registered");
    // --- Invalid examples: refused with the webhook's message, nothing stored.
    let mut schedule = replication_schedule("appmirror-schedule-0e1f88ab-f013-4bce-8ae9-6afed9df59a1");
    schedule["spec"]["snapshotRetention"] = json!("5");
    schedule["spec"]["enabled"] = json!(false);
    assert_refused(testbed, DST, &schedule, "is invalid");
    let mut schedule = replication_schedule("appmirror-schedule-future");
    schedule["spec"]["recurrenceRule"] = json!("DTSTART:20990101T000200Z\nRRULE:FREQ=MINUTELY;INTERVAL=2");
    assert_refused(testbed, DST, &schedule, "is invalid");
    let mut labelled = replication_schedule("nightly-replication");
    labelled["metadata"]["labels"] = json!({"tprotect.io/replication-schedule": "true"});
    labelled["spec"]["backupRetention"] = json!("3");
    assert_refused(testbed, DST, &labelled, "is invalid");
    let mut relationship = amr("amr-bad-uid", APP_NS, &["a"]);
    relationship["spec"]["sourceApplicationUID"] = json!("my-app-uid");
    relationship["spec"]["recurrenceRule"] = json!("DTSTART:20220101T000200Z\nRRULE:FREQ=DAILY");
    assert_refused(testbed, DST, &relationship, "is invalid");
    let duplicated = amr("amr-duplicate", APP_NS, &["a", "b"]);
    assert_refused(testbed, DST, &duplicated, "is invalid");
    let mut premature = amr("amr-promoted-snapshot", APP_NS, &["a"]);
    premature["spec"]["promotedSnapshot"] = json!("20250107122548_bboxdrlastsnap_5fa90108");
    assert_refused(testbed, DST, &premature, "is invalid");
    assert_refused(testbed, DST, &app_vault("generic-s3"), "is invalid");
    let mut both = application();
    both["spec"]["includedVirtualMachines"] = json!([{"namespace": "vm-ns", "names": ["vm-1"]}]);
    assert_refused(testbed, DST, &both, "is invalid");
    for kind in ["Snapshot", "ShutdownSnapshot"] {
        let mut snap = snapshot(kind);
        snap["spec"].as_object_mut().unwrap().remove("appVaultRef");
        assert_refused(testbed, DST, &snap, "is invalid");
    }
    // The seed's own `granularity: custom`: refused (NetApp's CRD enum catches it before validating webhooks
    // run; the webhook's "did you mean" is the message where the CRD has no enum) and not stored.
    let mut seed = replication_schedule("appmirror-schedule-seed");
    seed["spec"]["granularity"] = json!("custom");
    let out = kubectl(testbed, DST, &["apply", "-f", "-"], &seed.to_string());
    assert!(
        !out.success && out.stderr.contains("spec.granularity"),
        "{}",
        out.stderr
    );
    assert!(
        get_json(
            testbed,
            DST,
            &[
                "-n",
                APP_NS,
                "schedules.protect.trident.netapp.io",
                "appmirror-schedule-seed"
            ]
        )
        .is_none()
    );

    stage("invalid examples refused");
    // --- Valid examples: stored.
    for object in [
        replication_schedule("appmirror-schedule-0e1f88ab-f013-4bce-8ae9-6afed9df59a1"),
        amr("amr-1", APP_NS, &[APP_NS]),
        app_vault("GenericS3"),
        application(),
        snapshot("Snapshot"),
        snapshot("ShutdownSnapshot"),
    ] {
        let stored = assert_stored(testbed, DST, &object);
        // Stored as written (the CRDs' own defaults may add fields).
        for (field, value) in object["spec"].as_object().unwrap() {
            assert_eq!(&stored["spec"][field], value, "{} spec.{field}", object["kind"]);
        }
    }

    // --- A resync without the acknowledgement is forbidden (403); with it, allowed.
    let mut promoted = amr("amr-1", APP_NS, &[APP_NS]);
    promoted["spec"]["desiredState"] = json!("Promoted");
    assert_stored(testbed, DST, &promoted);
    let resync = amr("amr-1", APP_NS, &[APP_NS]);
    let out = kubectl(testbed, DST, &["apply", "-f", "-"], &resync.to_string());
    assert!(!out.success);
    assert!(
        out.stderr.contains("Error from server (Forbidden)"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("kubectl tprotect resync"), "{}", out.stderr);
    let stored = get_json(testbed, DST, &["-n", APP_NS, "amr", "amr-1"]).unwrap();
    assert_eq!(
        stored["spec"]["desiredState"], "Promoted",
        "the refused update changed nothing"
    );
    let mut acknowledged = resync.clone();
    acknowledged["metadata"]["annotations"] = json!({"tprotect.io/discard-destination-changes": "true"});
    assert_eq!(
        assert_stored(testbed, DST, &acknowledged)["spec"]["desiredState"],
        "Established"
    );

    // --- Defaults filled in through both API servers, with both patch encodings.
    for (context, webhook) in [(DST, destination), (SRC, source)] {
        let minimal = json!({
            "apiVersion": "protect.trident.netapp.io/v1",
            "kind": "Schedule",
            "metadata": {"name": "appmirror-schedule-defaults", "namespace": APP_NS},
            "spec": {"appVaultRef": "src-vault", "applicationRef": "my-app-name", "recurrenceRule": RULE}
        });
        // kubectl checks required fields on the client against a 1.20 server (no server-side field
        // validation before 1.25); the API server itself runs mutating webhooks before schema validation.
        let out = kubectl(
            testbed,
            context,
            &["apply", "--validate=false", "-f", "-"],
            &minimal.to_string(),
        );
        assert!(out.success, "{context}: {}\n{}", out.stderr, webhook.log());
        let stored = get_json(
            testbed,
            context,
            &[
                "-n",
                APP_NS,
                "schedules.protect.trident.netapp.io",
                name_of(&minimal),
            ],
        )
        .unwrap();
        assert_eq!(
            stored["spec"]["granularity"],
            "Custom",
            "{context}: {}",
            webhook.log()
        );
        assert_eq!(stored["spec"]["backupRetention"], "0");
        assert_eq!(stored["spec"]["snapshotRetention"], "2");
        assert_eq!(stored["spec"]["enabled"], true);
        assert!(
            webhook
                .metric("tprotect_webhook_patches_total{kind=\"Schedule\"}")
                .await
                .unwrap_or(0.0)
                >= 1.0
        );
    }

    stage("valid examples stored, resync guard, defaults");
    // --- Namespaces: the seed's worked example, ns-1 → ns-2, written by the controller identity.
    for (context, webhook) in [(DST, destination), (SRC, source)] {
        create_namespace(
            testbed,
            context,
            "ns-2",
            json!({"role": "database"}),
            json!({"annotation.one/key": "true", "annotation.three/key": "false"}),
        );
        let before = webhook
            .metric("tprotect_webhook_amr_cache_objects")
            .await
            .unwrap_or(0.0);
        assert_stored(testbed, context, &amr("rel-ns", "ns-2", &["ns-1"]));
        eventually("the AMR reached the webhook's cache", async || {
            let now = webhook.metric("tprotect_webhook_amr_cache_objects").await;
            (now.unwrap_or(0.0) > before).then_some(())
        })
        .await
        .unwrap();
        controller_copies_source_keys(testbed, context, "ns-2");
    }
    let documented_labels =
        json!({"name": "ns-2", "compliance": "hipaa", "environment": "production", "role": "database"});
    // Source: no skip list, so exactly the seed's "after" table.
    let (labels, annotations) = namespace_meta(testbed, SRC, "ns-2");
    assert_eq!(labels, documented_labels);
    assert_eq!(
        annotations,
        json!({"annotation.one/key": "updatedvalue", "annotation.two/key": "true", "annotation.three/key": "false"})
    );
    // Destination: annotation.one/key is in RESTORE_SKIP_NAMESPACE_ANNOTATIONS, so it keeps "true".
    let (labels, annotations) = namespace_meta(testbed, DST, "ns-2");
    assert_eq!(labels, documented_labels);
    assert_eq!(
        annotations,
        json!({"annotation.one/key": "true", "annotation.two/key": "true", "annotation.three/key": "false"})
    );
    // A skipped key the controller adds when it creates a namespace is taken out again.
    let created = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns-created",
        "annotations": {"annotation.one/key": "from-source", "annotation.two/key": "true"}}});
    let controller = format!("{DST}{}", Identity::Controller.context_suffix());
    kubectl_ok(testbed, &controller, &["create", "-f", "-"], &created.to_string());
    let (_, annotations) = namespace_meta(testbed, DST, "ns-created");
    assert_eq!(annotations, json!({"annotation.two/key": "true"}));
    // Anyone else may change a skipped key.
    let patch = json!({"metadata": {"annotations": {"annotation.one/key": "set-by-admin"}}}).to_string();
    kubectl_ok(
        testbed,
        DST,
        &["patch", "namespace", "ns-2", "--type", "merge", "-p", &patch],
        "",
    );
    assert_eq!(
        namespace_meta(testbed, DST, "ns-2").1["annotation.one/key"],
        "set-by-admin"
    );

    stage("namespace rules");
    // --- The deployment manifests on a real (1.20) API server, server-side dry run.
    let mut refused = Vec::new();
    for file in [
        "namespace.yaml",
        "serviceaccount.yaml",
        "rbac.yaml",
        "configmap.yaml",
        "deployment.yaml",
        "service.yaml",
        "networkpolicy.yaml",
        "webhooks.yaml",
        "pdb.yaml",
    ] {
        let path = manifests().join("base").join(file);
        // The registrations exist already (server-side applied with a URL): a client-side apply would merge
        // the manifest's Service into them; a replace sends the manifest as the whole object.
        let verb = if file == "webhooks.yaml" {
            "replace"
        } else {
            "apply"
        };
        let out = kubectl(
            testbed,
            DST,
            &[verb, "--dry-run=server", "-f", path.to_str().unwrap()],
            "",
        );
        if !out.success {
            refused.push((file, out.stderr));
        }
    }
    // policy/v1 PodDisruptionBudget is served from 1.21 on; the clusters the product serves are 1.24+.
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, "pdb.yaml");
    assert!(refused[0].1.contains("policy/v1"), "{}", refused[0].1);
    let stored = get_json(
        testbed,
        DST,
        &["validatingwebhookconfiguration", "tprotect-webhook"],
    )
    .unwrap();
    assert!(
        stored["webhooks"][0]["clientConfig"]["url"].is_string(),
        "a dry run changes nothing"
    );

    eprintln!(
        "webhook end to end: denials {} (destination), patches {} / {} (destination base64 / source byte array)",
        destination
            .metric("tprotect_webhook_denials_total{kind=\"Schedule\"}")
            .await
            .unwrap_or(0.0),
        destination
            .metric("tprotect_webhook_patches_total{kind=\"Schedule\"}")
            .await
            .unwrap_or(0.0),
        source
            .metric("tprotect_webhook_patches_total{kind=\"Schedule\"}")
            .await
            .unwrap_or(0.0),
    );
}
