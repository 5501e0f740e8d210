//! The Kubeflow example (`examples/kubeflow/`): compiled by the real `kfp` and `kfp-kubernetes` from PyPI, its
//! IR checked for the image, the command and arguments, the Secret and the run-time parameters, and the step's
//! arguments, as compiled, run with the real binary against the ONTAP stand-in.
//!
//! The packages go into a virtualenv under the target directory (`kfp-venv`), installed once and reused while
//! `examples/kubeflow/requirements.txt` is unchanged. No network access to PyPI is a FAILURE, never a skip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;
use tprotect_e2e::{plugin_binary, target_dir, workspace_root};
use tprotect_ontap_standin::{DESTINATION_PATH, OntapStandin, SOURCE_PATH, Scenario};

fn example_dir() -> PathBuf {
    workspace_root().join("examples/kubeflow")
}

fn run_checked(command: &mut Command, what: &str) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
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
    let text = std::fs::read_to_string(&output).unwrap();
    let documents: Vec<Value> = serde_norway::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).expect("IR YAML document"))
        .collect();
    assert_eq!(documents.len(), 2, "pipeline spec + platform spec:\n{text}");
    let mut documents = documents.into_iter();
    CompiledPipeline {
        pipeline: documents.next().unwrap(),
        platform: documents.next().unwrap(),
    }
}

fn compiled() -> &'static CompiledPipeline {
    static COMPILED: OnceLock<CompiledPipeline> = OnceLock::new();
    COMPILED.get_or_init(|| compile(&[]))
}

const EXECUTOR: &str = "exec-snapmirror-update";
const TASK: &str = "snapmirror-update";

fn container(pipeline: &Value) -> &Value {
    &pipeline["deploymentSpec"]["executors"][EXECUTOR]["container"]
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
        "--timeout".into(),
        "1h".into(),
        "-o".into(),
        "json".into(),
    ];
    assert_eq!(args, expected);
}

#[test]
fn ir_mounts_the_secret_named_by_the_run_time_parameter() {
    let compiled = compiled();
    let executor = &compiled.platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][EXECUTOR];
    let volumes = executor["secretAsVolume"].as_array().expect("secretAsVolume");
    assert_eq!(volumes.len(), 1);
    assert_eq!(volumes[0]["mountPath"], "/mnt/secret");
    assert_eq!(volumes[0]["optional"], false);
    assert_eq!(
        volumes[0]["secretNameParameter"]["componentInputParameter"],
        "ontap_cluster_admin_acct_k8s_secret"
    );
    assert!(
        executor.get("secretAsEnv").is_none(),
        "credentials come through the volume only: {executor}"
    );
    assert_eq!(executor["securityContext"]["runAsNonRoot"], true);
    assert_eq!(executor["securityContext"]["runAsUser"], "65532");
    assert_eq!(executor["activeDeadlineSeconds"], "3900");

    // The Secret's name is a run-time parameter with the seed's default.
    let inputs = &compiled.pipeline["root"]["inputDefinitions"]["parameters"];
    assert_eq!(
        inputs["ontap_cluster_admin_acct_k8s_secret"]["defaultValue"],
        "ontap-cluster-mgmt-account"
    );
}

#[test]
fn ir_has_the_seeds_run_time_parameters_and_never_caches_the_update() {
    let pipeline = &compiled().pipeline;
    let inputs: BTreeMap<String, Value> =
        serde_json::from_value(pipeline["root"]["inputDefinitions"]["parameters"].clone()).unwrap();
    let defaults: BTreeMap<&str, &str> = [
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

/// Resolves the step's arguments the way the KFP launcher does: each `{{$.inputs.parameters['x']}}` becomes the
/// task input `x` (wired to the pipeline parameter the IR names), each `{"Concat": [...]}` is joined.
fn resolve_args(pipeline: &Value, run_parameters: &BTreeMap<&str, String>) -> Vec<String> {
    let task_inputs = &pipeline["root"]["dag"]["tasks"][TASK]["inputs"]["parameters"];
    let resolve_one = |text: &str| -> String {
        let mut out = text.to_owned();
        while let Some(start) = out.find("{{$.inputs.parameters['") {
            let rest = &out[start + "{{$.inputs.parameters['".len()..];
            let name = &rest[..rest.find("']}}").expect("closed placeholder")];
            let pipeline_parameter = task_inputs[name]["componentInputParameter"]
                .as_str()
                .expect("wired to a pipeline parameter");
            let value = run_parameters[pipeline_parameter].clone();
            out = out.replacen(&format!("{{{{$.inputs.parameters['{name}']}}}}"), &value, 1);
        }
        out
    };
    strings(&container(pipeline)["args"])
        .iter()
        .map(|arg| match serde_json::from_str::<Value>(arg) {
            Ok(Value::Object(map)) if map.contains_key("Concat") => strings(&map["Concat"])
                .iter()
                .map(|part| resolve_one(part))
                .collect::<String>(),
            _ => resolve_one(arg),
        })
        .collect()
}

/// The compiled step's own arguments, run by the real binary against the stand-in: the pipeline's parameter
/// values (`yes`/`no` included) are accepted, and the update is started and followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compiled_step_runs_against_the_ontap_stand_in() {
    let pipeline = compiled().pipeline.clone();
    let standin = OntapStandin::start(Scenario::accepted_job()).await.unwrap();
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(secret.path().join("username"), standin.username()).unwrap();
    std::fs::write(secret.path().join("password"), standin.password()).unwrap();
    let (source_svm, source_volume) = SOURCE_PATH.split_once(':').unwrap();
    let (destination_svm, destination_volume) = DESTINATION_PATH.split_once(':').unwrap();

    let mut outcomes = Vec::new();
    for verify in ["no", "yes"] {
        let parameters: BTreeMap<&str, String> = [
            ("ontap_cluster_mgmt_hostname", standin.hostname()),
            (
                "ontap_cluster_admin_acct_k8s_secret",
                "ontap-cluster-mgmt-account".into(),
            ),
            ("ontap_api_verify_ssl_cert", verify.into()),
            ("source_svm", source_svm.into()),
            ("source_volume", source_volume.into()),
            ("destination_svm", destination_svm.into()),
            ("destination_volume", destination_volume.into()),
        ]
        .into();
        // The Secret is mounted at /mnt/secret in the pod; here it is a temporary directory.
        let args: Vec<String> = resolve_args(&pipeline, &parameters)
            .into_iter()
            .map(|arg| {
                if arg == "/mnt/secret" {
                    secret.path().display().to_string()
                } else {
                    arg
                }
            })
            .collect();
        let output = tokio::process::Command::new(plugin_binary())
            .args(&args)
            .env_remove("ONTAP_USERNAME")
            .env_remove("ONTAP_PASSWORD")
            .output()
            .await
            .unwrap();
        outcomes.push((
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ));
    }
    let (code, stdout, stderr) = &outcomes[0];
    assert_eq!(*code, Some(0), "verify=no:\n{stdout}\n{stderr}");
    assert!(stderr.contains("warning: --verify-tls=false"), "{stderr}");
    let report: Value = serde_json::from_str(stdout).expect("-o json");
    assert_eq!(report["transfer"]["state"], "success");
    // `yes` verifies: the stand-in's self-signed CA is not in the system roots, so the step fails, clearly.
    let (code, stdout, stderr) = &outcomes[1];
    assert_eq!(*code, Some(1), "verify=yes:\n{stdout}\n{stderr}");
    assert!(stderr.contains("is not trusted"), "{stderr}");
    assert_eq!(standin.count("POST", "/api/snapmirror/relationships/"), 1);
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
