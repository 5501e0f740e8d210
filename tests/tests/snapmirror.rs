//! `kubectl tprotect snapmirror` end to end: the REAL built binary against the ONTAP stand-in over real TLS (its
//! CA via --ca-file, --verify-tls=false, and the refusal of its untrusted certificate by default), every
//! scripted scenario, exit codes (`status --fail-on` 4, `update --if-busy=fail` 5), stdout/stderr separation,
//! a grep of all output for the credentials, and `--secret` read from a real local API server (the testbed).
//!
//! The binary is built once per test process by `tprotect_e2e::plugin_binary()` (`cargo build -p
//! kubectl-tprotect`; `CARGO_BIN_EXE_*` exists only for a package's own binaries).

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use tprotect_e2e::{DESTINATION, LocalEnv, LocalEnvOptions, assert_says, plugin_binary};
use tprotect_ontap_standin::{
    ANOTHER_TRANSFER_IN_PROGRESS, DESTINATION_PATH, OntapStandin, PostAnswer, SOURCE_PATH, Scenario,
};

/// Distinctive credentials, so a grep of all output can tell whether they leaked.
const USERNAME: &str = "e2e-admin-5b2f9a";
const PASSWORD: &str = "e2e-Pa55-c81d7e";

fn with_credentials(scenario: Scenario) -> Scenario {
    Scenario {
        username: USERNAME.into(),
        password: PASSWORD.into(),
        ..scenario
    }
}

#[derive(Debug)]
struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Output {
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    fn assert_code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code, expected,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    fn assert_no_credentials(&self) -> &Self {
        for secret in [USERNAME, PASSWORD] {
            assert!(
                !self.all().contains(secret),
                "{secret:?} leaked into the output:\n{}",
                self.all()
            );
        }
        self
    }
}

/// A stand-in, its CA in a file, and the credentials as a mounted-Secret-like directory.
struct Env {
    standin: OntapStandin,
    dir: tempfile::TempDir,
}

impl Env {
    async fn start(scenario: Scenario) -> Self {
        let standin = OntapStandin::start(with_credentials(scenario))
            .await
            .expect("stand-in starts");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), standin.ca_pem()).unwrap();
        let credentials = dir.path().join("secret");
        std::fs::create_dir(&credentials).unwrap();
        // With trailing newlines, as `echo` writes them and Secret volumes often carry them.
        std::fs::write(credentials.join("username"), format!("{USERNAME}\n")).unwrap();
        std::fs::write(credentials.join("password"), format!("{PASSWORD}\n")).unwrap();
        Self { standin, dir }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn credentials_dir(&self) -> PathBuf {
        self.dir.path().join("secret")
    }

    /// `snapmirror <verb> --hostname <stand-in> [--source] --destination` with fast polls; no trust, no
    /// credentials.
    fn bare(&self, verb: &str) -> Vec<String> {
        let mut args: Vec<String> = [
            "snapmirror",
            verb,
            "--hostname",
            &self.standin.hostname(),
            "--poll-interval",
            "20ms",
        ]
        .map(String::from)
        .to_vec();
        if verb == "update" {
            args.extend(["--source".into(), SOURCE_PATH.into()]);
        }
        args.extend(["--destination".into(), DESTINATION_PATH.into()]);
        args
    }

    /// [`Env::bare`] plus the stand-in's CA and the credentials directory.
    fn args(&self, verb: &str) -> Vec<String> {
        let mut args = self.bare(verb);
        args.extend([
            "--ca-file".into(),
            self.ca_file().display().to_string(),
            "--credentials-dir".into(),
            self.credentials_dir().display().to_string(),
        ]);
        args
    }

    fn posts(&self) -> usize {
        self.standin.count("POST", "/api/snapmirror/relationships/")
    }
}

fn plus(mut args: Vec<String>, more: &[&str]) -> Vec<String> {
    args.extend(more.iter().map(|s| s.to_string()));
    args
}

/// Runs the real binary without inheriting anything that could change its behaviour.
async fn run(args: &[String], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(plugin_binary());
    command
        .args(args)
        .env_remove("ONTAP_USERNAME")
        .env_remove("ONTAP_PASSWORD")
        .env_remove("TPROTECT_LOG")
        .env_remove("KUBECONFIG")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .stdin(std::process::Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("kubectl-tprotect finished within 120s")
        .expect("kubectl-tprotect runs");
    Output {
        code: output.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_flow_waits_for_the_transfer_and_posts_once() {
    let env = Env::start(Scenario::created()).await;
    let out = run(&plus(env.args("update"), &["--wait"]), &[]).await;
    out.assert_code(0).assert_no_credentials();
    assert_says(&out.stdout, &["transfer ", ": success, 1.0 MiB"]);
    assert_says(&out.stderr, &["Found relationship", "(201 Created)"]);
    assert!(
        out.stderr.contains(": transferring") || out.stderr.contains(": queued"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stdout.contains("Found relationship"),
        "progress belongs on stderr"
    );
    assert_eq!(env.posts(), 1);
    assert!(env.standin.relationship_writes().is_empty());
    assert!(env.standin.requests().iter().all(|r| r.authorization_present));
}

/// What `update --wait -o json` reports after the transfer: the relationship read again (its lag is the
/// stand-in's post-transfer `PT1M2S`, not the `PT8H35M42S` it showed before), the bytes and the end time.
fn assert_post_transfer_values(report: &Value) {
    assert_eq!(report["result"], "updated");
    assert_eq!(report["state"], "snapmirrored");
    assert_eq!(report["healthy"], true);
    assert_eq!(report["lag_time"], "PT1M2S");
    assert_eq!(report["lag_seconds"], 62);
    assert_eq!(report["relationship"]["lag_time"], "PT1M2S");
    assert_eq!(report["relationship"]["transfer"]["state"], "success");
    assert_eq!(report["bytes_transferred"], 1_048_576);
    assert_eq!(report["transfer_end_time"], "2026-11-22T00:01:00+00:00");
    assert_eq!(report["transfer"]["end_time"], report["transfer_end_time"]);
    assert_eq!(report["transfer_uuid"], report["transfer"]["uuid"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_job_flow_reports_json_on_stdout() {
    let env = Env::start(Scenario::accepted_job()).await;
    let out = run(&plus(env.args("update"), &["--wait", "-o", "json"]), &[]).await;
    out.assert_code(0).assert_no_credentials();
    let report: Value = serde_json::from_str(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(report["started"]["accepted_as"], "accepted");
    assert_eq!(report["job"]["state"], "success");
    assert_eq!(report["transfer"]["state"], "success");
    assert_eq!(report["relationship"]["state"], "snapmirrored");
    assert_eq!(report["source"], SOURCE_PATH);
    assert_eq!(report["waited"], true);
    assert_post_transfer_values(&report);
    assert_says(&out.stderr, &["(202 Accepted)", "started by the job"]);
    assert_eq!(env.posts(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yaml_output_works_too() {
    let env = Env::start(Scenario::created()).await;
    let out = run(&plus(env.args("update"), &["--wait", "-o", "yaml"]), &[]).await;
    out.assert_code(0);
    let report: Value = serde_norway::from_str(&out.stdout).expect("stdout is YAML");
    assert_eq!(report["transfer"]["state"], "success");
    assert_eq!(report["started"]["accepted_as"], "created");
    assert_post_transfer_values(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_failure_exits_1_with_ontaps_message_and_code() {
    let env = Env::start(Scenario::job_failure()).await;
    let out = run(&plus(env.args("update"), &["--wait"]), &[]).await;
    out.assert_code(1).assert_no_credentials();
    assert_says(
        &out.stderr,
        &["job", "failed", "source volume is offline", "code 13303844"],
    );
    assert!(
        !out.stderr.contains("may still complete"),
        "a failed job is final: {}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "no data on failure: {}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_failure_exits_1_with_error_info() {
    let env = Env::start(Scenario::transfer_failure()).await;
    let out = run(&plus(env.args("update"), &["--wait"]), &[]).await;
    out.assert_code(1).assert_no_credentials();
    assert_says(&out.stderr, &["ended failed", "out of space. (code 13303812)"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_relationship_is_refused_and_never_created() {
    let env = Env::start(Scenario::relationship_missing()).await;
    let out = run(&plus(env.args("update"), &["--wait", "--force"]), &[]).await;
    out.assert_code(1);
    assert_says(
        &out.stderr,
        &[
            "no SnapMirror relationship with destination svm_dst:vol_dst",
            "never creates",
        ],
    );
    assert_eq!(env.posts(), 0);
    assert!(env.standin.relationship_writes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_off_is_refused_even_with_force_and_never_resynced() {
    let env = Env::start(Scenario::broken_off()).await;
    for extra in [&["--wait"][..], &["--wait", "--force"][..]] {
        let out = run(&plus(env.args("update"), extra), &[]).await;
        out.assert_code(1);
        assert_says(&out.stderr, &["is broken_off, not snapmirrored", "never resyncs"]);
    }
    assert_eq!(env.posts(), 0);
    assert!(
        env.standin.relationship_writes().is_empty(),
        "no PATCH (resync/resume), no create"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhealthy_is_refused_with_reasons_and_force_overrides_it() {
    let env = Env::start(Scenario::unhealthy()).await;
    let out = run(&plus(env.args("update"), &["--wait"]), &[]).await;
    out.assert_code(1);
    for reason in [
        "Transfer failed. (code 6619546)",
        "Destination volume is not online. (code 13303868)",
    ] {
        assert!(out.stderr.contains(reason), "{reason} missing: {}", out.stderr);
    }
    assert_says(&out.stderr, &["--force"]);
    assert_eq!(env.posts(), 0);

    let out = run(&plus(env.args("update"), &["--wait", "--force"]), &[]).await;
    out.assert_code(0);
    assert_says(
        &out.stderr,
        &["warning: updating an unhealthy relationship because of --force"],
    );
    assert_eq!(env.posts(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_mismatch_is_refused() {
    let env = Env::start(Scenario::created()).await;
    let mut args = env.args("update");
    let source = args.iter().position(|a| a == "--source").unwrap() + 1;
    args[source] = "svm_src:another_vol".into();
    let out = run(&args, &[]).await;
    out.assert_code(1);
    assert_says(
        &out.stderr,
        &["replicates from svm_src:vol_src, not from svm_src:another_vol"],
    );
    assert_eq!(env.posts(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_names_where_the_credentials_came_from() {
    let env = Env::start(Scenario::unauthorized()).await;
    let out = run(&env.args("update"), &[]).await;
    out.assert_code(1).assert_no_credentials();
    let expected = format!("files in {} (--credentials-dir)", env.credentials_dir().display());
    assert_says(&out.stderr, &["401 Unauthorized", &expected]);

    let mut args = env.bare("update");
    args.extend(["--ca-file".into(), env.ca_file().display().to_string()]);
    let out = run(
        &args,
        &[("ONTAP_USERNAME", USERNAME), ("ONTAP_PASSWORD", PASSWORD)],
    )
    .await;
    out.assert_code(1).assert_no_credentials();
    assert_says(
        &out.stderr,
        &["environment variables ONTAP_USERNAME/ONTAP_PASSWORD"],
    );
    assert_eq!(env.standin.requests().len(), 2, "a 401 is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_the_environment_work() {
    let env = Env::start(Scenario::created()).await;
    let mut args = env.bare("update");
    args.extend([
        "--ca-file".into(),
        env.ca_file().display().to_string(),
        "--wait".into(),
    ]);
    let out = run(
        &args,
        &[("ONTAP_USERNAME", USERNAME), ("ONTAP_PASSWORD", PASSWORD)],
    )
    .await;
    out.assert_code(0).assert_no_credentials();
    assert_eq!(env.posts(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_the_three_sources_are_named() {
    let env = Env::start(Scenario::created()).await;
    let mut args = env.bare("update");
    args.extend(["--ca-file".into(), env.ca_file().display().to_string()]);
    let out = run(&args, &[]).await;
    out.assert_code(1);
    for hint in [
        "--secret NAME",
        "--credentials-dir DIR",
        "ONTAP_USERNAME and ONTAP_PASSWORD",
    ] {
        assert!(out.stderr.contains(hint), "{hint}: {}", out.stderr);
    }
    assert!(env.standin.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_cluster_hits_the_timeout_with_exit_code_3() {
    let env = Env::start(Scenario::slow(Duration::from_secs(30))).await;
    let out = run(&plus(env.args("update"), &["--wait", "--timeout", "1s"]), &[]).await;
    out.assert_code(3).assert_no_credentials();
    assert_says(&out.stderr, &["timed out after 1s while looking up"]);
    assert!(
        !out.stderr.contains("may still complete"),
        "nothing was started: {}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_that_outlasts_the_timeout_exits_3_and_says_it_may_still_complete() {
    let env = Env::start(Scenario {
        polls_to_finish: u32::MAX,
        ..Scenario::created()
    })
    .await;
    let out = run(&plus(env.args("update"), &["--wait", "--timeout", "2s"]), &[]).await;
    out.assert_code(3);
    assert_says(
        &out.stderr,
        &["timed out after 2s", "may still complete", "snapmirror status"],
    );
    assert_eq!(env.posts(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_answers_within_the_timeout_are_fine() {
    let env = Env::start(Scenario::slow(Duration::from_millis(200))).await;
    run(&plus(env.args("update"), &["--wait"]), &[])
        .await
        .assert_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_post_is_never_retried_but_gets_are() {
    let scenario = Scenario {
        post_answer: PostAnswer::Error {
            status: 503,
            code: "6620237".into(),
            message: "Relationship database write failed.".into(),
        },
        ..Scenario::transient_failures(1)
    };
    let env = Env::start(scenario).await;
    let out = run(&plus(env.args("update"), &["--wait"]), &[]).await;
    out.assert_code(1);
    assert_says(
        &out.stderr,
        &["Relationship database write failed. (code 6620237)"],
    );
    assert!(
        out.stderr.contains("retrying"),
        "the first GET's 503 is retried: {}",
        out.stderr
    );
    assert_eq!(env.posts(), 1);
    assert_eq!(env.standin.count("GET", "/api/snapmirror/relationships"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed() {
    let env = Env::start(Scenario::redirecting()).await;
    let out = run(&env.args("status"), &[]).await;
    out.assert_code(1);
    assert_says(
        &out.stderr,
        &[
            "redirects are never followed",
            "a redirect to /api/redirected-here;",
        ],
    );
    assert!(
        !out.stderr.contains("Some("),
        "user terms, not Rust's: {}",
        out.stderr
    );
    assert_eq!(env.standin.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_tls_false_works_and_warns() {
    let env = Env::start(Scenario::created()).await;
    for value in ["--verify-tls=false", "--verify-tls=no"] {
        let mut args = env.bare("update");
        args.extend([
            value.into(),
            "--credentials-dir".into(),
            env.credentials_dir().display().to_string(),
            "--wait".into(),
        ]);
        let out = run(&args, &[]).await;
        out.assert_code(0).assert_no_credentials();
        assert_says(&out.stderr, &["warning: --verify-tls=false"]);
    }
    assert_eq!(env.posts(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_self_signed_certificate_is_refused_by_default_with_a_hint() {
    let env = Env::start(Scenario::created()).await;
    let mut args = env.bare("update");
    args.extend([
        "--credentials-dir".into(),
        env.credentials_dir().display().to_string(),
    ]);
    let out = run(&args, &[]).await;
    out.assert_code(1).assert_no_credentials();
    assert_says(&out.stderr, &["is not trusted", "--ca-file PEM"]);
    assert!(
        env.standin.requests().is_empty(),
        "no request (and no credentials) sent over an untrusted connection"
    );

    // --ca-file together with --verify-tls=false is a contradiction, not silently ignored.
    let out = run(&plus(env.args("update"), &["--verify-tls=false"]), &[]).await;
    out.assert_code(2);
    assert_says(&out.stderr, &["--ca-file has no effect with --verify-tls=false"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_checks_and_sends_nothing() {
    let env = Env::start(Scenario::created()).await;
    let out = run(&plus(env.args("update"), &["--dry-run"]), &[]).await;
    out.assert_code(0);
    assert_says(&out.stdout, &["dry run: every check passed; would POST"]);
    assert_eq!(env.posts(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_wait_the_update_is_started_and_not_followed() {
    let env = Env::start(Scenario::accepted_job()).await;
    let out = run(&env.args("update"), &[]).await;
    out.assert_code(0);
    assert_says(&out.stdout, &["update started: job "]);
    assert_eq!(env.posts(), 1);
    assert_eq!(env.standin.count("GET", "/api/cluster/jobs"), 0);

    let out = run(&plus(env.args("update"), &["--wait", "--no-wait"]), &[]).await;
    out.assert_code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_state_health_reasons_lag_and_last_transfer() {
    let env = Env::start(Scenario::unhealthy()).await;
    let out = run(&plus(env.args("status"), &["-o", "json"]), &[]).await;
    out.assert_code(0).assert_no_credentials();
    let status: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(status["state"], "snapmirrored");
    assert_eq!(status["healthy"], false);
    assert_eq!(status["unhealthy_reason"].as_array().unwrap().len(), 2);
    assert_eq!(status["unhealthy_reason"][0]["code"], "6619546");
    assert_eq!(status["lag_time"], "PT8H35M42S");
    assert_eq!(status["lag_seconds"], 8 * 3600 + 35 * 60 + 42);
    assert_eq!(status["last_transfer"]["state"], "success");
    assert_eq!(status["source"], SOURCE_PATH);

    let out = run(&env.args("status"), &[]).await;
    out.assert_code(0);
    for line in [
        "STATE          snapmirrored",
        "HEALTHY        false",
        "UNHEALTHY      Transfer failed.",
        "LAG            8h35m42s (PT8H35M42S)",
    ] {
        assert!(out.stdout.contains(line), "{line:?} missing:\n{}", out.stdout);
    }
    assert_eq!(env.posts(), 0, "status never writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_after_an_update_shows_the_finished_transfer() {
    let env = Env::start(Scenario::created()).await;
    run(&plus(env.args("update"), &["--wait"]), &[])
        .await
        .assert_code(0);
    let out = run(&plus(env.args("status"), &["-o", "json"]), &[]).await;
    out.assert_code(0);
    let status: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(status["last_transfer"]["state"], "success");
    assert_eq!(status["last_transfer"]["bytes_transferred"], 1_048_576);
    assert_eq!(status["lag_time"], "PT1M2S");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_paths_and_hosts_are_usage_errors_naming_the_flag() {
    let env = Env::start(Scenario::created()).await;
    let mut args = env.args("update");
    let source = args.iter().position(|a| a == "--source").unwrap() + 1;
    args[source] = "svm_src/vol_src".into();
    let out = run(&args, &[]).await;
    out.assert_code(2);
    assert_says(&out.stderr, &["--source <SVM:VOL>", "SVM:VOLUME"]);

    let mut args = env.args("status");
    let host = args.iter().position(|a| a == "--hostname").unwrap() + 1;
    args[host] = format!("https://{}", env.standin.hostname());
    let out = run(&args, &[]).await;
    out.assert_code(2);
    assert_says(&out.stderr, &["--hostname", "without a scheme"]);
    assert!(env.standin.requests().is_empty());
}

/// Every path that could print something — success, failures, refusals, TLS errors, at -vv and with tracing
/// at `trace` — and not one line may carry the username or the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_appear_in_any_output_even_at_trace() {
    let scenarios = [
        Scenario::created(),
        Scenario::accepted_job(),
        Scenario::job_failure(),
        Scenario::transfer_failure(),
        Scenario::unhealthy(),
        Scenario::unauthorized(),
        Scenario::transient_failures(1),
        Scenario::busy_at_post(),
        Scenario::lost_post_answer(),
    ];
    let mut runs = 0;
    for scenario in scenarios {
        let env = Env::start(scenario).await;
        for (extra, log) in [(&["-vv"][..], None), (&["-vv", "-o", "json"][..], Some("trace"))] {
            let args = plus(plus(env.args("update"), &["--wait"]), extra);
            let log_env: Vec<(&str, &str)> = log.map(|level| ("TPROTECT_LOG", level)).into_iter().collect();
            let out = run(&args, &log_env).await;
            assert!(!out.stderr.is_empty(), "-vv prints something on stderr");
            out.assert_no_credentials();
            runs += 1;
        }
        let out = run(&plus(env.args("status"), &["-vv"]), &[]).await;
        out.assert_no_credentials();
        // The TLS refusal path, verbose.
        let mut args = env.bare("update");
        args.extend([
            "--credentials-dir".into(),
            env.credentials_dir().display().to_string(),
            "-vv".into(),
        ]);
        run(&args, &[("TPROTECT_LOG", "trace")])
            .await
            .assert_no_credentials();
        runs += 2;
    }
    assert_eq!(runs, 36);
}

async fn create_secret(client: &kube::Client, namespace: &str, name: &str, data: &[(&str, &str)]) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace},
        "stringData": data.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("Secret created");
}

fn secret_args(env: &Env, kubeconfig: &Path, name: &str) -> Vec<String> {
    let mut args = env.bare("update");
    args.extend(
        [
            "--ca-file",
            &env.ca_file().display().to_string(),
            "--kubeconfig",
            &kubeconfig.display().to_string(),
            "--context",
            "tprotect-destination",
            "-n",
            "kubeflow",
            "--secret",
            name,
            "--wait",
            "-vv",
        ]
        .map(String::from),
    );
    args
}

/// `--secret` reads a real Secret through a real local API server (the testbed's destination cluster), as the
/// seed's `ontap-cluster-mgmt-account` in namespace `kubeflow`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_is_read_from_a_real_api_server() {
    let clusters = LocalEnv::start(LocalEnvOptions::without_crds())
        .await
        .expect("testbed starts (real etcd + kube-apiservers)");
    let client = clusters.client(DESTINATION).unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": "kubeflow"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    // The value ends in a newline, as `echo password | base64` would make it.
    create_secret(
        &client,
        "kubeflow",
        "ontap-cluster-mgmt-account",
        &[("username", USERNAME), ("password", &format!("{PASSWORD}\n"))],
    )
    .await;
    create_secret(
        &client,
        "kubeflow",
        "wrong-password",
        &[("username", USERNAME), ("password", "not-it")],
    )
    .await;
    create_secret(&client, "kubeflow", "no-password", &[("username", USERNAME)]).await;

    let env = Env::start(Scenario::accepted_job()).await;
    let out = run(
        &secret_args(&env, clusters.kubeconfig(), "ontap-cluster-mgmt-account"),
        &[],
    )
    .await;
    out.assert_code(0).assert_no_credentials();
    assert_eq!(env.posts(), 1);

    let out = run(&secret_args(&env, clusters.kubeconfig(), "wrong-password"), &[]).await;
    out.assert_code(1).assert_no_credentials();
    assert_says(&out.stderr, &["Secret kubeflow/wrong-password (--secret)"]);

    let out = run(&secret_args(&env, clusters.kubeconfig(), "no-password"), &[]).await;
    out.assert_code(1).assert_no_credentials();
    assert_says(
        &out.stderr,
        &["Secret kubeflow/no-password has no key `password`"],
    );

    let out = run(&secret_args(&env, clusters.kubeconfig(), "absent"), &[]).await;
    out.assert_code(1);
    assert_says(
        &out.stderr,
        &["Secret kubeflow/absent not found in tprotect-destination"],
    );

    // The Secret lives only on the destination cluster: the source context does not have it.
    let mut args = secret_args(&env, clusters.kubeconfig(), "ontap-cluster-mgmt-account");
    let context = args.iter().position(|a| a == "tprotect-destination").unwrap();
    args[context] = "tprotect-source".into();
    let out = run(&args, &[]).await;
    out.assert_code(1);
    assert_says(&out.stderr, &["not found in tprotect-source"]);
    assert_eq!(
        env.posts(),
        1,
        "only the run with the right Secret reached the POST"
    );
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", out.stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_fail_on_passes_a_healthy_relationship() {
    let env = Env::start(Scenario::created()).await;
    let gate = ["--fail-on", "unhealthy,lag=12h,state!=snapmirrored"];
    let out = run(&plus(env.args("status"), &gate), &[]).await;
    out.assert_code(0);
    assert_says(
        &out.stdout,
        &["FAIL-ON        none of unhealthy,lag=12h,state!=snapmirrored holds"],
    );
    let out = run(&plus(plus(env.args("status"), &gate), &["-o", "json"]), &[]).await;
    out.assert_code(0);
    let report = json(&out);
    assert_eq!(report["fail_on"]["conditions"].as_array().unwrap().len(), 3);
    assert_eq!(report["fail_on"]["held"], json!([]));
    // Without --fail-on, nothing is judged.
    let out = run(&plus(env.args("status"), &["-o", "json"]), &[]).await;
    out.assert_code(0);
    assert!(json(&out).get("fail_on").is_none(), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_fail_on_exits_4_for_an_unhealthy_relationship_naming_the_condition() {
    let env = Env::start(Scenario::unhealthy()).await;
    let out = run(
        &plus(env.args("status"), &["--fail-on", "unhealthy,lag=12h"]),
        &[],
    )
    .await;
    out.assert_code(4).assert_no_credentials();
    assert!(
        out.stderr.contains(
            "error: --fail-on: a condition holds for svm_dst:vol_dst: unhealthy (ONTAP reports it unhealthy: \
             Transfer failed. (code 6619546); Destination volume is not online. (code 13303868))"
        ),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("lag=12h"),
        "only what holds is named: {}",
        out.stderr
    );
    // The status is still shown, for the pipeline's log.
    assert_says(&out.stdout, &["HEALTHY        false"]);
    assert_eq!(env.posts(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_fail_on_exits_4_for_a_lagging_relationship() {
    let env = Env::start(Scenario::lagging()).await;
    let out = run(
        &plus(
            env.args("status"),
            &["--fail-on", "unhealthy", "--fail-on", "lag=2h", "-o", "json"],
        ),
        &[],
    )
    .await;
    out.assert_code(4);
    let report = json(&out);
    assert_eq!(report["lag_time"], "P1DT2H");
    assert_eq!(
        report["fail_on"]["held"],
        json!([{"condition": "lag=2h", "why": "the lag is 26h, longer than 2h"}])
    );
    assert_says(&out.stderr, &["lag=2h (the lag is 26h, longer than 2h)"]);
    // A limit as long as the lag passes (the lag must be longer); days in ISO 8601, as ONTAP writes lags.
    run(&plus(env.args("status"), &["--fail-on", "lag=P1DT2H"]), &[])
        .await
        .assert_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_fail_on_state_and_bad_conditions() {
    let env = Env::start(Scenario::broken_off()).await;
    let out = run(
        &plus(env.args("status"), &["--fail-on", "state!=snapmirrored"]),
        &[],
    )
    .await;
    out.assert_code(4);
    assert_says(&out.stderr, &["state!=snapmirrored (the state is broken_off)"]);
    let out = run(
        &plus(env.args("status"), &["--fail-on", "unhealthy,state=broken_off"]),
        &[],
    )
    .await;
    out.assert_code(4);
    assert_says(&out.stderr, &["2 conditions hold"]);

    let requests = env.standin.requests().len();
    for (bad, says) in [
        ("lagging", "expected one of: unhealthy, lag=DURATION"),
        (
            "state!=snapmirored",
            "\"snapmirored\" is not a SnapMirror relationship state",
        ),
        ("lag=soon", "invalid duration \"soon\""),
    ] {
        let out = run(&plus(env.args("status"), &["--fail-on", bad]), &[]).await;
        out.assert_code(2);
        assert!(out.stderr.contains(says), "{bad}: {}", out.stderr);
    }
    assert_eq!(env.standin.requests().len(), requests, "bad flags send nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_busy_wait_is_the_default_and_starts_a_new_transfer_after_the_running_one() {
    let env = Env::start(Scenario::busy()).await;
    let (running, _) = env.standin.current_transfer().unwrap();
    let out = run(&plus(env.args("update"), &["--wait", "-o", "json"]), &[]).await;
    out.assert_code(0).assert_no_credentials();
    assert!(
        out.stderr.contains(&format!(
            "Busy: transfer {running} is queued; waiting for it to end"
        )),
        "{}",
        out.stderr
    );
    assert_says(&out.stderr, &["ended: success"]);
    let report = json(&out);
    assert_eq!(report["if_busy"], "wait");
    assert_eq!(report["waited_for"][0]["uuid"], running.as_str());
    assert_eq!(report["waited_for"][0]["seen"], "before_post");
    assert_ne!(
        report["transfer"]["uuid"],
        running.as_str(),
        "ours is a new transfer"
    );
    assert_post_transfer_values(&report);
    assert_eq!(env.posts(), 1);
    assert_eq!(env.standin.refused_busy_posts(), 0, "no POST while it ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_busy_skip_exits_0_and_starts_nothing() {
    let env = Env::start(Scenario::busy()).await;
    let out = run(
        &plus(env.args("update"), &["--wait", "--if-busy", "skip", "-o", "json"]),
        &[],
    )
    .await;
    out.assert_code(0);
    assert_says(&out.stderr, &["Nothing started: transfer ", "(--if-busy=skip)"]);
    let report = json(&out);
    assert_eq!(report["result"], "skipped");
    assert_eq!(report["bytes_transferred"], 0);
    assert!(
        report.get("started").is_none() && report.get("transfer").is_none(),
        "{report}"
    );
    assert_eq!(env.posts(), 0);
    let out = run(&plus(env.args("update"), &["--if-busy", "skip"]), &[]).await;
    out.assert_code(0);
    assert_says(&out.stdout, &["skipped: transfer ", "nothing was started"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_busy_fail_exits_5_and_starts_nothing() {
    let env = Env::start(Scenario::busy()).await;
    let out = run(&plus(env.args("update"), &["--wait", "--if-busy", "fail"]), &[]).await;
    out.assert_code(5).assert_no_credentials();
    assert_says(
        &out.stderr,
        &[
            "svm_dst:vol_dst is busy: transfer ",
            "nothing was started (--if-busy=fail)",
        ],
    );
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert_eq!(env.posts(), 0);
}

/// The lookup saw the relationship idle, the schedule started a transfer as the POST arrived, and ONTAP refused
/// the POST with 13303844.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_refused_by_a_transfer_in_progress_follows_the_policy() {
    let env = Env::start(Scenario::busy_at_post()).await;
    let out = run(&plus(env.args("update"), &["--wait", "-o", "json"]), &[]).await;
    out.assert_code(0);
    assert!(
        out.stderr.contains(&format!(
            "Busy: ONTAP refused the update ({ANOTHER_TRANSFER_IN_PROGRESS} (code 13303844))"
        )),
        "{}",
        out.stderr
    );
    assert_eq!(json(&out)["waited_for"][0]["seen"], "post_refused");
    assert_eq!(env.posts(), 2, "refused, then ours once the other ended");
    assert_eq!(env.standin.refused_busy_posts(), 1);

    let env = Env::start(Scenario::busy_at_post()).await;
    let out = run(&plus(env.args("update"), &["--wait", "--if-busy", "fail"]), &[]).await;
    out.assert_code(5);
    assert_says(&out.stderr, &["code 13303844"]);
    assert_eq!(env.posts(), 1);

    let env = Env::start(Scenario::busy_at_post()).await;
    let out = run(&plus(env.args("update"), &["--wait", "--if-busy", "skip"]), &[]).await;
    out.assert_code(0);
    assert_says(&out.stderr, &["Nothing started: ONTAP refused"]);
    assert_eq!(env.posts(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_post_answer_says_the_transfer_may_have_started_and_how_to_check() {
    let env = Env::start(Scenario::lost_post_answer()).await;
    let (before, _) = env.standin.current_transfer().unwrap();
    let out = run(&plus(env.args("update"), &["--wait"]), &[]).await;
    out.assert_code(1).assert_no_credentials();
    assert_says(
        &out.stderr,
        &[
            "but its answer was lost (the connection failed before the answer was complete): the transfer MAY have started",
        ],
    );
    let check = format!(
        "kubectl tprotect snapmirror status --hostname {} --destination {DESTINATION_PATH}",
        env.standin.hostname()
    );
    assert_says(&out.stderr, &[&check]);
    assert!(!out.stderr.contains("cannot reach"), "{}", out.stderr);
    assert_eq!(env.posts(), 1, "never sent again");
    // The way to check works: the transfer did start, and status shows it.
    let (started, _) = env.standin.current_transfer().unwrap();
    assert_ne!(started, before);
    let out = run(&plus(env.args("status"), &["-o", "json"]), &[]).await;
    out.assert_code(0);
    assert_eq!(json(&out)["last_transfer"]["uuid"], started.as_str());

    let env = Env::start(Scenario::post_never_answered()).await;
    let out = run(&plus(env.args("update"), &["--wait", "--timeout", "2s"]), &[]).await;
    out.assert_code(3);
    assert!(
        out.stderr.contains("MAY have started")
            && out
                .stderr
                .contains(&format!("--hostname {}", env.standin.hostname())),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("cannot reach"), "{}", out.stderr);
    assert_eq!(env.posts(), 1);
}
