//! The Kubeflow example (`examples/kubeflow/`): compiled by the real `kfp` and `kfp-kubernetes` from PyPI, its
//! IR checked for the image, the command and arguments, the outputs, the Secret and CA mounts and the run-time
//! parameters; and the compiled step run with the real binary against the ONTAP stand-in by
//! `examples/kubeflow/run_step_locally.py`, which resolves the step's placeholders (`{{$}}` included) and reads
//! its outputs back with the kfp SDK's own local-runner code, as a run would hand them to the next step.
//!
//! The packages go into a virtualenv under the target directory (`kfp-venv`), installed once and reused while
//! `examples/kubeflow/requirements.txt` is unchanged. No network access to PyPI is a FAILURE, never a skip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{Value, json};
use tprotect_e2e::{assert_says, plugin_binary, target_dir, workspace_root};
use tprotect_ontap_standin::{DESTINATION_PATH, OntapStandin, SOURCE_PATH, Scenario};

fn example_dir() -> PathBuf {
    workspace_root().join("examples/kubeflow")
}

/// Runs `command` (`what` it does) and returns its stdout; panics unless it succeeds.
fn run_checked(command: &mut Command, what: &str) -> String {
    eprintln!("{what}");
    String::from_utf8_lossy(&tprotect_testbed::run_ok(command).stdout).into_owned()
}

/// The venv's python with `kfp` and `kfp-kubernetes` installed from PyPI.
fn venv_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let venv = target_dir().join("kfp-venv");
        let python = venv.join("bin/python");
        // nextest runs each test in its own process: without this lock, one test could find the venv half
        // made by another (python present, pip not yet) and fail.
        let lock_path = target_dir().join("kfp-venv.lock");
        let lock = std::fs::File::create(&lock_path).expect("kfp-venv.lock");
        lock.lock().expect("locking kfp-venv.lock");
        let requirements = example_dir().join("requirements.txt");
        let wanted = std::fs::read_to_string(&requirements).expect("examples/kubeflow/requirements.txt");
        let marker = venv.join(".tprotect-requirements");
        let installed = std::fs::read_to_string(&marker).is_ok_and(|text| text == wanted)
            && Command::new(&python)
                .args(["-c", "import kfp, kfp.kubernetes"])
                .status()
                .is_ok_and(|s| s.success());
        if !installed {
            let has_pip = Command::new(&python)
                .args(["-m", "pip", "--version"])
                .output()
                .is_ok_and(|o| o.status.success());
            if !has_pip {
                // Absent, or left half made by an interrupted run.
                run_checked(
                    Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv),
                    "python3 -m venv",
                );
            }
            run_checked(
                Command::new(&python)
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                        "-r",
                    ])
                    .arg(&requirements),
                "pip install kfp kfp-kubernetes from PyPI (this test needs PyPI and fails without it)",
            );
            std::fs::write(&marker, wanted).unwrap();
        }
        drop(lock);
        python
    })
}

/// The two YAML documents of a compiled pipeline: the pipeline spec and the platform (Kubernetes) spec.
struct CompiledPipeline {
    yaml: String,
    pipeline: Value,
    platform: Value,
}

fn compile(env: &[(&str, &str)]) -> CompiledPipeline {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("pipeline.yaml");
    let mut command = Command::new(venv_python());
    command
        .arg(example_dir().join("snapmirror_pipeline.py"))
        .arg(&output)
        .env_remove("TPROTECT_STEP_IMAGE");
    for (key, value) in env {
        command.env(key, value);
    }
    run_checked(&mut command, "compiling snapmirror_pipeline.py");
    let yaml = std::fs::read_to_string(&output).unwrap();
    let documents: Vec<Value> = serde_norway::Deserializer::from_str(&yaml)
        .map(|document| Value::deserialize(document).expect("IR YAML document"))
        .collect();
    assert_eq!(documents.len(), 2, "pipeline spec + platform spec:\n{yaml}");
    let mut documents = documents.into_iter();
    CompiledPipeline {
        yaml,
        pipeline: documents.next().unwrap(),
        platform: documents.next().unwrap(),
    }
}

fn compiled() -> &'static CompiledPipeline {
    static COMPILED: OnceLock<CompiledPipeline> = OnceLock::new();
    COMPILED.get_or_init(|| compile(&[]))
}

const EXECUTOR: &str = "exec-snapmirror-update";
const COMPONENT: &str = "comp-snapmirror-update";
const TASK: &str = "snapmirror-update";

fn container(pipeline: &Value) -> &Value {
    &pipeline["deploymentSpec"]["executors"][EXECUTOR]["container"]
}

fn platform_executor(compiled: &CompiledPipeline) -> &Value {
    &compiled.platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][EXECUTOR]
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

#[test]
fn ir_carries_the_image_command_and_arguments() {
    let container = container(&compiled().pipeline);
    assert_eq!(container["image"], "ghcr.io/tprotect/kubectl-tprotect:0.1.0");
    assert_eq!(strings(&container["command"]), ["kubectl-tprotect"]);
    let args = strings(&container["args"]);
    let param = |name: &str| format!("{{{{$.inputs.parameters['{name}']}}}}");
    let concat = |a: &str, b: &str| format!(r#"{{"Concat": ["{}", ":", "{}"]}}"#, param(a), param(b));
    let ca_file = |dir: &str| format!(r#"{{"Concat": ["{dir}/", "{}"]}}"#, param("ontap_ca_key"));
    let expected = [
        "snapmirror".to_owned(),
        "update".into(),
        "--wait".into(),
        "--hostname".into(),
        param("ontap_cluster_mgmt_hostname"),
        "--source".into(),
        concat("source_svm", "source_volume"),
        "--destination".into(),
        concat("destination_svm", "destination_volume"),
        "--credentials-dir".into(),
        "/mnt/secret".into(),
        "--verify-tls".into(),
        param("ontap_api_verify_ssl_cert"),
        "--ca-file-if-present".into(),
        ca_file("/mnt/ontap-ca/secret"),
        "--ca-file-if-present".into(),
        ca_file("/mnt/ontap-ca/configmap"),
        "--timeout".into(),
        param("update_timeout"),
        "--if-busy".into(),
        param("if_busy"),
        "--kfp-executor-input".into(),
        "{{$}}".into(),
        "-o".into(),
        "json".into(),
    ];
    assert_eq!(args, expected);
}

#[test]
fn ir_declares_the_outputs_and_a_metrics_artifact() {
    let outputs = &compiled().pipeline["components"][COMPONENT]["outputDefinitions"];
    let parameters: BTreeMap<String, Value> =
        serde_json::from_value(outputs["parameters"].clone()).expect("output parameters");
    let types: BTreeMap<&str, &str> = parameters
        .iter()
        .map(|(name, spec)| (name.as_str(), spec["parameterType"].as_str().unwrap()))
        .collect();
    assert_eq!(
        types,
        BTreeMap::from([
            ("bytes_transferred", "NUMBER_INTEGER"),
            ("lag_seconds", "NUMBER_INTEGER"),
            ("result", "STRING"),
            ("state", "STRING"),
            ("transfer_end_time", "STRING"),
        ])
    );
    assert_eq!(
        outputs["artifacts"]["metrics"]["artifactType"]["schemaTitle"],
        "system.Metrics"
    );
}

#[test]
fn ir_mounts_the_credentials_and_the_optional_ca_sources_named_by_run_time_parameters() {
    let compiled = compiled();
    let executor = platform_executor(compiled);
    let secrets = executor["secretAsVolume"].as_array().expect("secretAsVolume");
    assert_eq!(secrets.len(), 2, "{executor}");
    let by_path = |path: &str| {
        secrets
            .iter()
            .find(|v| v["mountPath"] == path)
            .unwrap_or_else(|| panic!("no Secret mounted at {path}: {executor}"))
    };
    let credentials = by_path("/mnt/secret");
    assert_eq!(credentials["optional"], false);
    assert_eq!(
        credentials["secretNameParameter"]["componentInputParameter"],
        "ontap_cluster_admin_acct_k8s_secret"
    );
    let ca_secret = by_path("/mnt/ontap-ca/secret");
    assert_eq!(ca_secret["optional"], true);
    assert_eq!(
        ca_secret["secretNameParameter"]["componentInputParameter"],
        "ontap_ca_secret"
    );
    let config_maps = executor["configMapAsVolume"]
        .as_array()
        .expect("configMapAsVolume");
    assert_eq!(config_maps.len(), 1);
    assert_eq!(config_maps[0]["mountPath"], "/mnt/ontap-ca/configmap");
    assert_eq!(config_maps[0]["optional"], true);
    assert_eq!(
        config_maps[0]["configMapNameParameter"]["componentInputParameter"],
        "ontap_ca_config_map"
    );
    assert!(
        executor.get("secretAsEnv").is_none(),
        "credentials come through the volume only: {executor}"
    );
    assert_eq!(executor["securityContext"]["runAsNonRoot"], true);
    assert_eq!(executor["securityContext"]["runAsUser"], "65532");
    // The backstop outlasts the longest documented update_timeout (6h).
    assert_eq!(executor["activeDeadlineSeconds"], (6 * 3600 + 5 * 60).to_string());
}

#[test]
fn ir_has_the_run_time_parameters_and_never_caches_the_update() {
    let pipeline = &compiled().pipeline;
    let inputs: BTreeMap<String, Value> =
        serde_json::from_value(pipeline["root"]["inputDefinitions"]["parameters"].clone()).unwrap();
    let defaults: BTreeMap<&str, &str> = [
        // The seed's.
        ("ontap_cluster_mgmt_hostname", ""),
        (
            "ontap_cluster_admin_acct_k8s_secret",
            "ontap-cluster-mgmt-account",
        ),
        ("ontap_api_verify_ssl_cert", "yes"),
        ("source_svm", "ailab"),
        ("source_volume", "sm"),
        ("destination_svm", "ai221_data"),
        ("destination_volume", "sm_dest"),
        // The CA, the timeout and the busy policy.
        ("ontap_ca_secret", "ontap-ca"),
        ("ontap_ca_config_map", "ontap-ca"),
        ("ontap_ca_key", "ca.crt"),
        ("update_timeout", "1h"),
        ("if_busy", "wait"),
    ]
    .into();
    assert_eq!(
        inputs.keys().map(String::as_str).collect::<Vec<_>>(),
        defaults.keys().copied().collect::<Vec<_>>()
    );
    for (name, default) in defaults {
        assert_eq!(inputs[name]["defaultValue"], default, "{name}");
        assert_eq!(inputs[name]["parameterType"], "STRING", "{name}");
    }
    let task = &pipeline["root"]["dag"]["tasks"][TASK];
    for (input, parameter) in [
        ("update_timeout", "update_timeout"),
        ("if_busy", "if_busy"),
        ("ontap_ca_key", "ontap_ca_key"),
    ] {
        assert_eq!(
            task["inputs"]["parameters"][input]["componentInputParameter"], parameter,
            "{task}"
        );
    }
    assert_ne!(
        task["cachingOptions"]["enableCache"], true,
        "a cached step would skip the update: {task}"
    );
    assert_eq!(pipeline["pipelineInfo"]["name"], "replicate-data");
}

#[test]
fn the_step_image_can_be_chosen_at_compile_time() {
    let compiled = compile(&[("TPROTECT_STEP_IMAGE", "registry.example/kubectl-tprotect:test")]);
    assert_eq!(
        container(&compiled.pipeline)["image"],
        "registry.example/kubectl-tprotect:test"
    );
}

/// What `run_step_locally.py` reports: the step's exit code, output, and its outputs as KFP reads them.
#[derive(Debug, Deserialize)]
struct StepRun {
    exit_code: i32,
    command: Vec<String>,
    stdout: String,
    stderr: String,
    outputs: Value,
}

impl StepRun {
    #[track_caller]
    fn assert_exit(&self, code: i32) -> &Self {
        assert_eq!(self.exit_code, code, "{self:#?}");
        self
    }
}

/// Where the pipeline mounts the CA: from a Secret, or from a ConfigMap.
const CA_FROM_SECRET: Option<&str> = Some("/mnt/ontap-ca/secret");
const CA_FROM_CONFIG_MAP: Option<&str> = Some("/mnt/ontap-ca/configmap");

/// The stand-in, the credentials as the mounted Secret, and a directory holding the stand-in's CA under `key`.
struct Step {
    standin: OntapStandin,
    secret: tempfile::TempDir,
    ca: tempfile::TempDir,
}

impl Step {
    async fn start(scenario: Scenario, ca_key: &str) -> Self {
        let standin = OntapStandin::start(scenario).await.unwrap();
        let secret = tempfile::tempdir().unwrap();
        std::fs::write(secret.path().join("username"), standin.username()).unwrap();
        std::fs::write(secret.path().join("password"), standin.password()).unwrap();
        let ca = tempfile::tempdir().unwrap();
        std::fs::write(ca.path().join(ca_key), standin.ca_pem()).unwrap();
        Self { standin, secret, ca }
    }

    /// Runs the compiled step with the stand-in's address and paths, `params` on top; the credentials Secret is
    /// always mounted, the CA directory at `ca_mount` when given.
    async fn run(&self, params: &[(&str, &str)], ca_mount: Option<&str>) -> StepRun {
        let dir = tempfile::tempdir().unwrap();
        let pipeline = dir.path().join("pipeline.yaml");
        std::fs::write(&pipeline, &compiled().yaml).unwrap();
        let (source_svm, source_volume) = SOURCE_PATH.split_once(':').unwrap();
        let (destination_svm, destination_volume) = DESTINATION_PATH.split_once(':').unwrap();
        let hostname = self.standin.hostname();
        let mut all: Vec<(&str, &str)> = vec![
            ("ontap_cluster_mgmt_hostname", &hostname),
            ("source_svm", source_svm),
            ("source_volume", source_volume),
            ("destination_svm", destination_svm),
            ("destination_volume", destination_volume),
        ];
        all.extend(params);
        let mut command = tokio::process::Command::new(venv_python());
        command
            .arg(example_dir().join("run_step_locally.py"))
            .arg(&pipeline)
            .arg("--binary")
            .arg(plugin_binary())
            .arg("--mount")
            .arg(format!("/mnt/secret={}", self.secret.path().display()));
        if let Some(mount) = ca_mount {
            command
                .arg("--mount")
                .arg(format!("{mount}={}", self.ca.path().display()));
        }
        for (name, value) in all {
            command.arg("--param").arg(format!("{name}={value}"));
        }
        command
            .env_remove("ONTAP_USERNAME")
            .env_remove("ONTAP_PASSWORD")
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR");
        let output = command.output().await.expect("run_step_locally.py runs");
        assert!(
            output.status.success(),
            "run_step_locally.py failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("run_step_locally.py prints JSON")
    }

    fn posts(&self) -> usize {
        self.standin.count("POST", "/api/snapmirror/relationships/")
    }
}

/// The outputs KFP reads after a successful update against the stand-in (its post-transfer lag is `PT1M2S`).
fn assert_updated_outputs(run: &StepRun) {
    let outputs = &run.outputs;
    assert_eq!(outputs["result"], "updated", "{run:#?}");
    assert_eq!(outputs["state"], "snapmirrored");
    assert_eq!(outputs["lag_seconds"], 62);
    assert_eq!(outputs["bytes_transferred"], 1_048_576);
    assert_eq!(outputs["transfer_end_time"], "2026-11-22T00:01:00+00:00");
    let metrics = &outputs["metrics"];
    assert_eq!(metrics["name"], "metrics");
    assert_eq!(
        metrics["metadata"],
        json!({"lag_seconds": 62.0, "bytes_transferred": 1_048_576.0})
    );
    assert!(
        metrics["uri"]
            .as_str()
            .is_some_and(|uri| uri.ends_with("/metrics")),
        "{metrics}"
    );
}

/// The acceptance run: `verify TLS = yes` (the default), the CA from a mounted Secret, outputs read back by KFP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compiled_step_updates_with_a_ca_from_a_mounted_secret_and_verify_tls_yes() {
    let step = Step::start(Scenario::accepted_job(), "ca.crt").await;
    let run = step.run(&[], CA_FROM_SECRET).await;
    run.assert_exit(0);
    assert!(
        run.command.windows(2).any(|w| w == ["--verify-tls", "yes"]),
        "{:?}",
        run.command
    );
    assert!(!run.stderr.contains("--verify-tls=false"), "{}", run.stderr);
    assert_updated_outputs(&run);
    let report: Value = serde_json::from_str(&run.stdout).expect("-o json");
    assert_eq!(report["transfer"]["state"], "success");
    assert_eq!(step.posts(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_can_come_from_a_config_map_under_another_key() {
    let step = Step::start(Scenario::created(), "bundle.pem").await;
    let run = step
        .run(&[("ontap_ca_key", "bundle.pem")], CA_FROM_CONFIG_MAP)
        .await;
    run.assert_exit(0);
    assert_updated_outputs(&run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_ca_verify_tls_yes_fails_naming_where_it_looked() {
    let step = Step::start(Scenario::created(), "ca.crt").await;
    let run = step.run(&[], None).await;
    run.assert_exit(1);
    assert_says(
        &run.stderr,
        &[
            "is not trusted",
            "no CA was found at ",
            "/ca.crt (--ca-file-if-present)",
        ],
    );
    assert_eq!(run.outputs, json!({}), "a failed step has no outputs");
    assert_eq!(step.posts(), 0);

    // verify = no still works, and says what it gives up.
    let run = step.run(&[("ontap_api_verify_ssl_cert", "no")], None).await;
    run.assert_exit(0);
    assert_says(&run.stderr, &["warning: --verify-tls=false"]);
    assert_eq!(run.outputs["result"], "updated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_busy_policy_and_the_timeout_are_run_time_parameters() {
    let step = Step::start(Scenario::busy(), "ca.crt").await;
    let run = step.run(&[("if_busy", "skip")], CA_FROM_SECRET).await;
    run.assert_exit(0);
    assert_eq!(run.outputs["result"], "skipped");
    assert_eq!(run.outputs["bytes_transferred"], 0);
    assert_eq!(run.outputs["transfer_end_time"], "");
    assert_eq!(run.outputs["state"], "snapmirrored");
    assert_eq!(step.posts(), 0);

    // The default, wait, meets a transfer that outlasts a 1 s update_timeout: exit 3, nothing started.
    let run = step.run(&[("update_timeout", "1s")], CA_FROM_SECRET).await;
    run.assert_exit(3);
    assert_says(
        &run.stderr,
        &["timed out after 1s while waiting for the transfer in progress"],
    );
    assert_eq!(step.posts(), 0);

    let run = step.run(&[("if_busy", "fail")], CA_FROM_SECRET).await;
    run.assert_exit(5);
}

/// The Dockerfile builds the image the pipeline runs: multi-stage, the binary on PATH under the name the
/// component's command uses, and the non-root user the pipeline's security context names.
#[test]
fn dockerfile_matches_the_pipeline() {
    let dockerfile = std::fs::read_to_string(example_dir().join("Dockerfile")).unwrap();
    let froms: Vec<&str> = dockerfile.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "a build stage and a runtime stage: {froms:?}");
    assert!(froms[0].contains(" AS build"), "{froms:?}");
    assert!(
        dockerfile.contains("cargo build --release --locked -p kubectl-tprotect"),
        "{dockerfile}"
    );
    assert!(dockerfile.contains("COPY --from=build /out/kubectl-tprotect /usr/local/bin/kubectl-tprotect"));
    let user = dockerfile
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert_eq!(user, "USER 65532:65532");
    let ignore = std::fs::read_to_string(example_dir().join("Dockerfile.dockerignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l == "target"),
        "the build context must not carry target/"
    );
}
