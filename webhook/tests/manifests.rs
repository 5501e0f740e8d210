//! The deployment manifests (`manifests/webhook/base`, `manifests/webhook/cert-manager`): schema-valid (`kubernetes-validate --strict`, installed
//! from PyPI into a venv under the target directory), and consistent with the code they deploy (paths, ports,
//! flags, secret names, identities, RBAC).

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use clap::Parser;
use common::stdout_of;
use serde_json::Value;
use tprotect_webhook::{
    admission::{MUTATE_PATH, VALIDATE_PATH},
    config::{Cli, Command as Sub},
};

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/webhook")
}

fn base_dir() -> PathBuf {
    manifests_dir().join("base")
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| serde_norway::with::singleton_map_recursive::deserialize::<Value, _>(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// Every resource of the cert-manager variant (the base plus the Certificate), keyed by kind and name.
fn all_resources() -> Vec<Value> {
    let mut resources = Vec::new();
    for entry in std::fs::read_dir(base_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") && !path.ends_with("kustomization.yaml") {
            resources.extend(documents(&path));
        }
    }
    resources.extend(documents(&manifests_dir().join("cert-manager/certificate.yaml")));
    resources
}

fn find<'a>(resources: &'a [Value], kind: &str, name: &str) -> &'a Value {
    resources
        .iter()
        .find(|r| r["kind"] == kind && r["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// The files kubernetes-validate checks: every manifest except kustomizations.
fn manifest_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(base_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("kustomization.yaml"))
        .collect();
    files.push(manifests_dir().join("cert-manager/certificate.yaml"));
    files.sort();
    files
}

/// `kubernetes-validate`, installed on first use into a venv in the target directory.
fn kubernetes_validate() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kubernetes-validate-venv");
    let tool = venv.join("bin/kubernetes-validate");
    if !tool.exists() {
        let made = Command::new("python3").arg("-m").arg("venv").arg(&venv).status();
        assert!(
            made.is_ok_and(|s| s.success()),
            "python3 -m venv failed: python3 with venv is required"
        );
        let installed = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "kubernetes-validate"])
            .status()
            .expect("pip");
        assert!(
            installed.success(),
            "pip install kubernetes-validate failed (PyPI must be reachable)"
        );
    }
    tool
}

#[test]
fn manifests_pass_kubernetes_validate_strict() {
    let tool = kubernetes_validate();
    // 1.25 is the oldest schema kubernetes-validate ships (Trident protect supports 1.24+), 1.33 the
    // workspace's k8s-openapi version, and the tool's default the newest.
    for version in ["1.25.0", "1.33.0", "1.37.0"] {
        let output = Command::new(&tool)
            .args(["--strict", "--kubernetes-version", version])
            .args(manifest_files())
            .output()
            .unwrap();
        let report =
            String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "kubernetes-validate {version}:\n{report}"
        );
        assert!(
            !report.contains("ERROR"),
            "kubernetes-validate {version}:\n{report}"
        );
        // Each built-in resource is checked, not skipped.
        for resource in [
            "namespace/tprotect-system",
            "serviceaccount/tprotect-webhook",
            "clusterrole/tprotect-webhook",
            "clusterrolebinding/tprotect-webhook",
            "configmap/tprotect-webhook-restore-rules",
            "deployment/tprotect-webhook",
            "service/tprotect-webhook",
            "poddisruptionbudget/tprotect-webhook",
            "networkpolicy/tprotect-webhook",
            "validatingwebhookconfiguration/tprotect-webhook",
            "mutatingwebhookconfiguration/tprotect-webhook",
        ] {
            assert!(
                report.contains(&format!("passed for resource {resource} ")),
                "{resource} not validated:\n{report}"
            );
        }
    }
    // A deliberately broken manifest is refused, so the passes above mean something.
    let broken = Path::new(env!("CARGO_TARGET_TMPDIR")).join("broken-deployment.yaml");
    let deployment = std::fs::read_to_string(base_dir().join("deployment.yaml")).unwrap();
    std::fs::write(
        &broken,
        deployment.replace("revisionHistoryLimit: 5", "revisionHistoryLimit: 5\n  replica: 2"),
    )
    .unwrap();
    let output = Command::new(&tool)
        .args(["--strict"])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "an unknown field must fail strict validation"
    );
}

#[test]
fn deployment_runs_the_binary_as_configured() {
    let resources = all_resources();
    let deployment = find(&resources, "Deployment", "tprotect-webhook");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 2);
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    let pod = &spec["template"]["spec"];
    assert!(pod["affinity"]["podAntiAffinity"].is_object());
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));

    // The args and environment parse with the real command line.
    let args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().into())
        .collect();
    let env: Vec<(String, String)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().into(),
                e["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    let cli = Cli::try_parse_from(std::iter::once("tprotect-webhook".to_string()).chain(args)).unwrap();
    let Sub::Serve(serve) = cli.command else {
        panic!("the container must run `serve`")
    };
    let value = |name: &str| {
        env.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(
        value("TPROTECT_WEBHOOK_CONTROLLER_USERNAMES"),
        tprotect_api::TRIDENT_CONTROLLER_USERNAME
    );
    let listen: std::net::SocketAddr = value("TPROTECT_WEBHOOK_LISTEN").parse().unwrap();
    let health: std::net::SocketAddr = value("TPROTECT_WEBHOOK_HEALTH_LISTEN").parse().unwrap();
    let port = |name: &str| {
        container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["containerPort"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(u64::from(listen.port()), port("https"));
    assert_eq!(u64::from(health.port()), port("health"));
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "health");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/livez");

    // preStop runs the binary's own subcommand (no shell in the image).
    let pre_stop: Vec<String> = container["lifecycle"]["preStop"]["exec"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().into())
        .collect();
    assert_eq!(pre_stop[0], "/tprotect-webhook");
    let cli = Cli::try_parse_from(pre_stop).unwrap();
    let Sub::PreStop(pre_stop) = cli.command else {
        panic!("preStop must run `pre-stop`")
    };
    // The grace period covers preStop, the shutdown delay and the drain.
    let budget = pre_stop.delay + serve.shutdown_delay + serve.shutdown_timeout;
    assert!(
        pod["terminationGracePeriodSeconds"].as_u64().unwrap() > budget.as_secs(),
        "{budget:?}"
    );

    // The certificate is mounted where the binary reads it, from the Secret cert-manager writes.
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "tls")
        .unwrap();
    let mount_path = mount["mountPath"].as_str().unwrap();
    assert_eq!(
        Path::new(&value("TPROTECT_WEBHOOK_TLS_CERT")),
        Path::new(mount_path).join("tls.crt")
    );
    assert_eq!(
        Path::new(&value("TPROTECT_WEBHOOK_TLS_KEY")),
        Path::new(mount_path).join("tls.key")
    );
    let secret = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "tls")
        .unwrap()["secret"]["secretName"]
        .clone();
    let certificate = find(&resources, "Certificate", "tprotect-webhook");
    assert_eq!(certificate["spec"]["secretName"], secret);
    assert!(!serve.no_amr_watch, "the AMR watch must be on");

    // The memory limit is the stated bound plus the headroom the README and the manifest write down.
    let limit = container["resources"]["limits"]["memory"].as_str().unwrap();
    let limit_mib: usize = limit.strip_suffix("Mi").unwrap().parse().unwrap();
    let bound_mib = tprotect_webhook::limits::memory_bound(&serve.server_config().limits) / (1024 * 1024);
    assert_eq!(
        (bound_mib, limit_mib),
        (84, 112),
        "bound and limit: update the README and the manifest"
    );
    let readme = std::fs::read_to_string(manifests_dir().join("README.md")).unwrap();
    assert!(
        readme.contains("84 MiB") && readme.contains("112Mi"),
        "the README states the bound and the limit"
    );
}

#[test]
fn read_timeouts_default_to_the_webhooks_timeout_seconds() {
    let resources = all_resources();
    let cli = Cli::try_parse_from(["tprotect-webhook", "serve"]).unwrap();
    let Sub::Serve(serve) = cli.command else {
        panic!("expected serve")
    };
    let limits = serve.server_config().limits;
    for kind in ["ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"] {
        for webhook in find(&resources, kind, "tprotect-webhook")["webhooks"]
            .as_array()
            .unwrap()
        {
            let seconds = webhook["timeoutSeconds"].as_u64().unwrap();
            assert_eq!(seconds, tprotect_webhook::limits::REVIEW_TIMEOUT.as_secs());
            if std::env::vars().all(|(name, _)| !name.starts_with("TPROTECT_WEBHOOK_")) {
                for timeout in [
                    limits.header_read_timeout,
                    limits.body_read_timeout,
                    limits.idle_timeout,
                ] {
                    assert_eq!(timeout.as_secs(), seconds, "{}", webhook["name"]);
                }
            }
        }
    }
}

#[test]
fn webhooks_point_at_the_service_and_paths() {
    let resources = all_resources();
    let service = find(&resources, "Service", "tprotect-webhook");
    let https = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "https")
        .unwrap();
    let certificate = find(&resources, "Certificate", "tprotect-webhook");
    let dns_names = certificate["spec"]["dnsNames"].as_array().unwrap();
    assert!(dns_names.contains(&"tprotect-webhook.tprotect-system.svc".into()));

    let validating = find(&resources, "ValidatingWebhookConfiguration", "tprotect-webhook");
    let mutating = find(&resources, "MutatingWebhookConfiguration", "tprotect-webhook");
    let mut names = Vec::new();
    for (configuration, path) in [(validating, VALIDATE_PATH), (mutating, MUTATE_PATH)] {
        for webhook in configuration["webhooks"].as_array().unwrap() {
            names.push(webhook["name"].as_str().unwrap().to_string());
            let service_ref = &webhook["clientConfig"]["service"];
            assert_eq!(service_ref["name"], "tprotect-webhook");
            assert_eq!(service_ref["namespace"], "tprotect-system");
            assert_eq!(service_ref["path"], path);
            assert_eq!(service_ref["port"], https["port"]);
            assert_eq!(webhook["admissionReviewVersions"], serde_json::json!(["v1"]));
            assert_eq!(webhook["sideEffects"], "None");
            assert!(webhook["timeoutSeconds"].as_u64().unwrap() <= 10);
            let excluded = &webhook["namespaceSelector"]["matchExpressions"][0];
            assert_eq!(excluded["operator"], "NotIn");
            assert_eq!(
                excluded["values"],
                serde_json::json!(["kube-system", "tprotect-system"])
            );
        }
    }
    // Distinct from Trident protect's own webhooks.
    assert!(
        names.iter().all(|n| !n.ends_with("protect.trident.netapp.io")),
        "{names:?}"
    );

    let validate = &validating["webhooks"][0];
    assert_eq!(validate["failurePolicy"], "Fail");
    assert_eq!(validate["timeoutSeconds"], 5);
    let rule = &validate["rules"][0];
    assert_eq!(rule["operations"], serde_json::json!(["CREATE", "UPDATE"]));
    let mut resources_guarded: Vec<String> = rule["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().into())
        .collect();
    resources_guarded.sort();
    let mut expected: Vec<String> = tprotect_policy::VALIDATED_KINDS
        .iter()
        .map(|k| format!("{}s", k.to_lowercase()))
        .collect();
    expected.sort();
    assert_eq!(resources_guarded, expected);

    for webhook in mutating["webhooks"].as_array().unwrap() {
        assert_eq!(webhook["failurePolicy"], "Ignore", "{}", webhook["name"]);
        assert_eq!(webhook["reinvocationPolicy"], "IfNeeded", "{}", webhook["name"]);
    }
}

#[test]
fn service_account_may_only_read_amrs() {
    let resources = all_resources();
    let role = find(&resources, "ClusterRole", "tprotect-webhook");
    assert_eq!(
        role["rules"],
        serde_json::json!([{
            "apiGroups": ["protect.trident.netapp.io"],
            "resources": ["appmirrorrelationships"],
            "verbs": ["get", "list", "watch"],
        }])
    );
    let binding = find(&resources, "ClusterRoleBinding", "tprotect-webhook");
    assert_eq!(binding["subjects"][0]["name"], "tprotect-webhook");
    assert_eq!(binding["subjects"][0]["namespace"], "tprotect-system");
    assert!(
        !resources
            .iter()
            .any(|r| r["kind"] == "Role" || r["kind"] == "RoleBinding"),
        "no other permissions"
    );
    let pdb = find(&resources, "PodDisruptionBudget", "tprotect-webhook");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
}

#[test]
fn kustomizations_render_with_kubectl() {
    // kubectl is on the project's machines; the rendering must include cert-manager's CA injection.
    let rendered = stdout_of(
        Command::new("kubectl")
            .arg("kustomize")
            .arg(manifests_dir().join("cert-manager")),
    );
    let rendered: Vec<Value> = serde_norway::Deserializer::from_str(&rendered)
        .map(|doc| serde_norway::with::singleton_map_recursive::deserialize::<Value, _>(doc).unwrap())
        .collect();
    for kind in ["ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"] {
        let configuration = find(&rendered, kind, "tprotect-webhook");
        assert_eq!(
            configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "tprotect-system/tprotect-webhook"
        );
    }
    assert_eq!(rendered.len(), 13, "base (11) + Issuer + Certificate");
    let plain = stdout_of(Command::new("kubectl").arg("kustomize").arg(base_dir()));
    assert!(!plain.contains("cert-manager.io"));
}
