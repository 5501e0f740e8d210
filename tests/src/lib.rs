//! Support for the end-to-end tests: they run against REAL local API servers started by `tprotect-testbed`,
//! and run the project's real binaries.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

pub use tprotect_localenv as localenv;
pub use tprotect_localenv::{
    CrdSource, DEADLINE, DESTINATION, Identity, LocalEnv, LocalEnvOptions, Role, SOURCE, TRIDENT, Testbed,
    TestbedOptions, WebhookOptions, eventually,
};
use tprotect_standin::StandInConfig;

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Cargo's target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Builds `bin` of `package` once per test process (debug profile) and returns its path. End-to-end tests run the
/// binaries a user runs, not library calls.
pub fn binary(package: &str, bin: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(bin) {
        return path.clone();
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--quiet", "--package", package, "--bin", bin])
        .current_dir(workspace_root())
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo build for {bin}: {e}"));
    assert!(
        status.success(),
        "cargo build --package {package} --bin {bin} failed"
    );
    let path = target_dir().join("debug").join(bin);
    assert!(path.is_file(), "{} missing after the build", path.display());
    built.insert(bin.to_string(), path.clone());
    path
}

/// The `kubectl-tprotect` binary.
pub fn plugin_binary() -> PathBuf {
    binary("kubectl-tprotect", "kubectl-tprotect")
}

/// The `tprotect-webhook` binary.
pub fn webhook_binary() -> PathBuf {
    binary("tprotect-webhook", "tprotect-webhook")
}

/// The real plugin bound to `env`'s kubeconfig; every run gets `--timeout 120s`.
pub fn plugin(env: &LocalEnv) -> localenv::Plugin {
    localenv::Plugin::new(plugin_binary(), env.kubeconfig()).with_timeout(Duration::from_secs(120))
}

/// The stand-in the plugin's tests run: transitions in 150 ms, recurrences 60 times faster than real time.
/// Its profile is `TPROTECT_STANDIN_PROFILE`'s (the documented reading when unset).
pub fn fast_standin() -> StandInConfig {
    fast_standin_as(tprotect_standin::Profile::from_env().expect("TPROTECT_STANDIN_PROFILE"))
}

/// [`fast_standin`] playing `profile`'s reading of what NetApp leaves undocumented.
pub fn fast_standin_as(profile: tprotect_standin::Profile) -> StandInConfig {
    StandInConfig {
        time_scale: 60.0,
        profile,
        ..StandInConfig::default()
    }
    .with_delays(Duration::from_millis(150))
}

/// The environment of the plugin's tests: two clusters with the project's CRDs and controller managers, the
/// stand-in playing `standin` (e.g. [`fast_standin`]), and the webhook if given. Times its start.
pub async fn plugin_env(standin: StandInConfig, webhook: Option<WebhookOptions>) -> anyhow::Result<LocalEnv> {
    // Built first, so that the start of the environment is timed alone.
    plugin_binary();
    let started = std::time::Instant::now();
    let env = LocalEnv::start(LocalEnvOptions {
        standin: Some(standin),
        webhook,
        ..Default::default()
    })
    .await?;
    eprintln!(
        "[{:>6.1}s] environment up (clusters, stand-in{})",
        started.elapsed().as_secs_f64(),
        if env.webhook(SOURCE).is_some() {
            ", webhooks"
        } else {
            ""
        }
    );
    Ok(env)
}

/// Pids of live processes whose command line contains `marker`.
pub fn processes_mentioning(marker: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(bytes) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&bytes).replace('\0', " ");
            if cmdline.contains(marker) {
                found.push((pid, cmdline));
            }
        }
    }
    found
}

/// Asserts that `text` contains each of `phrases`, naming the one missing and showing all of `text`.
#[track_caller]
pub fn assert_says(text: &str, phrases: &[&str]) {
    for phrase in phrases {
        assert!(text.contains(phrase), "{phrase:?} is not in:\n{text}");
    }
}
