//! `up`, `down` and `webhook`: the local clusters for a person at a shell.
//!
//! `up` starts detached processes in one directory (`$TPROTECT_UP_DIR`, default `<cache>/up/current`) and
//! `down` stops them. `up` never stops clusters it finds running there (another shell may be using them): it
//! refuses and names them. `webhook` runs the real `tprotect-webhook` on loopback for those clusters, registered
//! by URL from the product's manifests, until Ctrl-C.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kube::api::{Api, DeleteParams};
use tprotect_testbed::process::Lifetime;
use tprotect_testbed::{CrdSource, Identity, Testbed, TestbedOptions, process};

use xtask::lifecycle_walk::{self, DESTINATION, Profile, SOURCE};

/// Overrides the directory `up`, `down`, `sim` and `webhook` use, for a second pair of clusters beside the first.
pub const UP_DIR_ENV: &str = "TPROTECT_UP_DIR";

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Install NetApp's CRDs from ../shared instead of the project's generated ones
    #[arg(long)]
    netapp_crds: bool,
}

/// Where `up` keeps its clusters: `$TPROTECT_UP_DIR`, else `<cache>/up/current`.
pub fn up_dir() -> PathBuf {
    std::env::var_os(UP_DIR_ENV)
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| tprotect_testbed::cache_dir().join("up").join("current"))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// A process an earlier `up` recorded in its directory that still runs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Recorded {
    pid: u32,
    program: String,
}

/// The processes recorded in `dir` that still run (a pid counts only while its command line names `dir`,
/// which guards against pid reuse).
fn recorded_processes(dir: &Path) -> Vec<Recorded> {
    let marker = dir.to_string_lossy();
    std::fs::read_to_string(dir.join(process::PIDS_FILE))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse::<u32>().ok())
        .filter(|pid| process::pid_alive_with(*pid, &marker))
        .map(|pid| Recorded {
            pid,
            program: program_of(pid),
        })
        .collect()
}

/// The file name of a process's executable, from its command line.
fn program_of(pid: u32) -> String {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let first = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    first.rsplit('/').next().unwrap_or_default().to_string()
}

/// Why `up` does not start: clusters already run in `dir`.
fn in_use(dir: &Path, running: &[Recorded]) -> String {
    let list: Vec<String> = running
        .iter()
        .map(|p| format!("{} (pid {})", p.program, p.pid))
        .collect();
    format!(
        "local clusters already run in {dir}: {list}; they may be another shell's, so nothing was stopped.\n\
         Use them: export KUBECONFIG={kubeconfig}\n\
         Stop them: cargo xtask down\n\
         Or start another pair beside them: {UP_DIR_ENV}=/some/other/dir cargo xtask up",
        dir = dir.display(),
        list = list.join(", "),
        kubeconfig = shell_quote(&dir.join("kubeconfig").to_string_lossy()),
    )
}

/// Holds `<dir>.lock` while `up` or `down` works in `dir`, so two shells cannot start or stop the same clusters
/// at once (the lock goes with the process, however it ends).
fn lock(dir: &Path) -> anyhow::Result<File> {
    let mut path = dir.as_os_str().to_owned();
    path.push(".lock");
    let path = PathBuf::from(path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another `cargo xtask up` or `down` is working in {} right now ({} is locked)",
            dir.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

/// `text` as one shell word.
fn shell_quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:,=@%".contains(c))
    {
        return text.to_string();
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// What each identity's context is for.
fn purpose(identity: Identity) -> &'static str {
    match identity {
        Identity::Admin => "cluster admin (system:masters)",
        Identity::Operator => "a DR operator: no rights until you bind manifests/rbac/dr-operator.yaml",
        Identity::Viewer => "signed in, no rights: to see RBAC denials",
        Identity::Controller => "Trident protect's controller (cluster-admin): `cargo xtask sim` acts as it",
        Identity::Webhook => "the webhook's service account: `cargo xtask webhook` watches as it",
    }
}

/// What `up` prints on stdout: the `export` line for `eval "$(cargo xtask up)"`, then, as shell comments (which
/// `eval` ignores), the clusters, every context and what it is for, and what to run next.
fn up_report(kubeconfig: &Path, source: &str, destination: &str) -> String {
    let mut out = format!(
        "export KUBECONFIG={}\n",
        shell_quote(&kubeconfig.to_string_lossy())
    );
    out.push_str("# Two local clusters (real kube-apiserver 1.20 and etcd; no nodes, so Pods never run):\n");
    out.push_str(&format!(
        "#   source       {source}\n#   destination  {destination}\n"
    ));
    out.push_str("# Contexts (kubectl --context NAME):\n");
    let longest = Identity::ALL
        .iter()
        .map(|i| i.context_suffix().len())
        .max()
        .unwrap_or_default();
    for identity in Identity::ALL {
        let suffix = identity.context_suffix();
        out.push_str(&format!(
            "#   {:<source$}  {:<destination$}  {}\n",
            format!("{SOURCE}{suffix}"),
            format!("{DESTINATION}{suffix}"),
            purpose(identity),
            source = SOURCE.len() + longest,
            destination = DESTINATION.len() + longest,
        ));
    }
    out.push_str(
        "# Next, each in its own shell: `cargo xtask sim` (the Trident protect stand-in) and `cargo xtask webhook`.\n",
    );
    out.push_str("# Stop everything with: cargo xtask down\n");
    out
}

pub fn up(args: UpArgs) -> anyhow::Result<()> {
    let dir = up_dir();
    let _lock = lock(&dir)?;
    let running = recorded_processes(&dir);
    if !running.is_empty() {
        bail!(in_use(&dir, &running));
    }
    // Nothing of an earlier `up` runs there: what is left are its files, which the testbed replaces.
    let started = Instant::now();
    let options = TestbedOptions {
        crds: if args.netapp_crds {
            CrdSource::NetApp
        } else {
            CrdSource::Project
        },
        lifetime: Lifetime::Detached,
        dir: Some(dir),
        ..TestbedOptions::default()
    };
    let testbed = runtime()?
        .block_on(Testbed::start_with(options))
        .context("starting the local clusters")?;
    let report = up_report(
        &testbed.kubeconfig,
        &testbed.source.server,
        &testbed.destination.server,
    );
    testbed.detach();
    eprintln!("clusters up in {:.1}s", started.elapsed().as_secs_f64());
    print!("{report}");
    Ok(())
}

pub fn down() -> anyhow::Result<()> {
    let dir = up_dir();
    if !dir.exists() {
        eprintln!("nothing to stop: {} does not exist", dir.display());
        return Ok(());
    }
    let _lock = lock(&dir)?;
    let running = recorded_processes(&dir);
    for process in &running {
        process::kill_pid(process.pid);
    }
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    let names: Vec<&str> = running.iter().map(|p| p.program.as_str()).collect();
    eprintln!(
        "stopped {} processes ({}) and removed {}",
        running.len(),
        names.join(", "),
        dir.display()
    );
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct WebhookArgs {
    /// Kubeconfig of the clusters [default: the one `cargo xtask up` wrote]
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Admin context of a cluster to serve (repeatable); the webhook watches AppMirrorRelationships as
    /// CONTEXT-webhook, the webhook's service account
    #[arg(long = "context", value_name = "CONTEXT", default_values_t = [SOURCE.to_string(), DESTINATION.to_string()])]
    contexts: Vec<String>,
}

/// One cluster's webhook: the process, and the admin client its registration was written with.
struct Served {
    context: String,
    client: kube::Client,
    webhook: tprotect_localenv::Webhook,
}

/// The product's webhook configurations (`manifests/webhook/base/webhooks.yaml`): (kind, name) of each.
fn configurations() -> anyhow::Result<Vec<(String, String)>> {
    use serde::Deserialize;
    let path = tprotect_testbed::repo_root().join("manifests/webhook/base/webhooks.yaml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut found = Vec::new();
    for document in serde_norway::Deserializer::from_str(&text) {
        let value =
            serde_json::Value::deserialize(document).with_context(|| format!("{}", path.display()))?;
        if let (Some(kind), Some(name)) = (value["kind"].as_str(), value["metadata"]["name"].as_str()) {
            found.push((kind.to_string(), name.to_string()));
        }
    }
    Ok(found)
}

/// Deletes the configurations; true if any existed.
async fn delete_configurations(
    client: &kube::Client,
    configurations: &[(String, String)],
) -> anyhow::Result<bool> {
    use k8s_openapi::api::admissionregistration::v1::{
        MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
    };
    let mut existed = false;
    for (kind, name) in configurations {
        let deleted = match kind.as_str() {
            "ValidatingWebhookConfiguration" => Api::<ValidatingWebhookConfiguration>::all(client.clone())
                .delete(name, &DeleteParams::default())
                .await
                .map(|_| ()),
            "MutatingWebhookConfiguration" => Api::<MutatingWebhookConfiguration>::all(client.clone())
                .delete(name, &DeleteParams::default())
                .await
                .map(|_| ()),
            _ => continue,
        };
        match deleted {
            Ok(()) => existed = true,
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(e).with_context(|| format!("deleting {kind}/{name}")),
        }
    }
    Ok(existed)
}

/// A client for one context of `kubeconfig`.
pub async fn kube_client(
    kubeconfig: &kube::config::Kubeconfig,
    context: &str,
) -> anyhow::Result<kube::Client> {
    let options = kube::config::KubeConfigOptions {
        context: Some(context.to_string()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig.clone(), &options)
        .await
        .with_context(|| format!("kubeconfig context {context}"))?;
    Ok(kube::Client::try_from(config)?)
}

/// Starts the webhook for `context` as the product deploys it (localenv's: its manifests, its ServiceAccount, the
/// registrations of `manifests/webhook/base/webhooks.yaml` by URL), replacing any registration of the same names.
async fn serve(
    binary: &Path,
    dir: &Path,
    kubeconfig_path: &Path,
    kubeconfig: &kube::config::Kubeconfig,
    context: &str,
    configurations: &[(String, String)],
) -> anyhow::Result<Served> {
    let watch_context = format!("{context}{}", Identity::Webhook.context_suffix());
    if !kubeconfig.contexts.iter().any(|c| c.name == watch_context) {
        bail!(
            "{} has no context {watch_context}: the webhook watches AppMirrorRelationships as its own service \
             account (contexts of `cargo xtask up`: tprotect-source-webhook, tprotect-destination-webhook)",
            kubeconfig_path.display()
        );
    }
    let client = kube_client(kubeconfig, context).await?;
    if delete_configurations(&client, configurations).await? {
        // E.g. from `kubectl apply -k manifests/webhook/…`: its Service has no Pods here, and a registration by
        // Service cannot be patched into one by URL.
        eprintln!("{context}: replaced the existing tprotect-webhook registrations");
    }
    let target = tprotect_localenv::WebhookTarget {
        client: client.clone(),
        context: context.to_string(),
        kubeconfig: kubeconfig_path.to_path_buf(),
        watch_context,
    };
    let webhook = tprotect_localenv::Webhook::start_on(
        dir,
        &target,
        binary,
        &tprotect_localenv::ServeOptions::default(),
    )
    .await?;
    eprintln!(
        "{context}: tprotect-webhook on https://{}, registered as {} (log: {})",
        webhook.https,
        configurations
            .iter()
            .map(|(kind, name)| format!("{kind}/{name}"))
            .collect::<Vec<_>>()
            .join(" and "),
        webhook.log_path().display()
    );
    Ok(Served {
        context: context.to_string(),
        client,
        webhook,
    })
}

/// Waits for Ctrl-C or SIGTERM; an error if a webhook exits first.
async fn until_stopped(served: &mut [Served]) -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
            _ = tick.tick() => {
                for one in served.iter_mut() {
                    if !one.webhook.is_running() {
                        bail!("the webhook of {} exited:\n{}", one.context, one.webhook.log_tail(20));
                    }
                }
            }
        }
    }
}

pub fn webhook(args: WebhookArgs) -> anyhow::Result<()> {
    let kubeconfig_path = args.kubeconfig.unwrap_or_else(|| up_dir().join("kubeconfig"));
    anyhow::ensure!(
        kubeconfig_path.is_file(),
        "{} does not exist: start the clusters with `cargo xtask up` first",
        kubeconfig_path.display()
    );
    let kubeconfig = kube::config::Kubeconfig::read_from(&kubeconfig_path)
        .with_context(|| format!("reading {}", kubeconfig_path.display()))?;
    let configurations = configurations()?;
    let binary = lifecycle_walk::build_binaries(Profile::Debug)?.webhook;
    let dir = tempfile::Builder::new()
        .prefix("tprotect-xtask-webhook-")
        .tempdir()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    runtime()?.block_on(async {
        let mut served = Vec::new();
        let mut result = Ok(());
        for context in &args.contexts {
            match serve(
                &binary,
                dir.path(),
                &kubeconfig_path,
                &kubeconfig,
                context,
                &configurations,
            )
            .await
            {
                Ok(one) => served.push(one),
                Err(e) => {
                    result = Err(e.context(format!("starting the webhook for {context}")));
                    break;
                }
            }
        }
        if result.is_ok() {
            eprintln!(
                "the real tprotect-webhook serves {}; Ctrl-C stops it and removes its registrations",
                args.contexts.join(" and ")
            );
            result = until_stopped(&mut served).await;
        }
        // Registrations first: a `failurePolicy: Fail` webhook left registered without its process would refuse
        // every guarded write.
        for one in &served {
            match delete_configurations(&one.client, &configurations).await {
                Ok(_) => eprintln!("{}: removed the tprotect-webhook registrations", one.context),
                Err(e) => eprintln!("{}: could not remove the registrations: {e:#}", one.context),
            }
        }
        drop(served);
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_report_evals_to_the_kubeconfig_and_names_every_context() {
        let kubeconfig = Path::new("/tmp/a dir/it's/kubeconfig");
        let report = up_report(kubeconfig, "https://127.0.0.1:1", "https://127.0.0.1:2");
        for identity in Identity::ALL {
            for cluster in [SOURCE, DESTINATION] {
                let context = format!("{cluster}{}", identity.context_suffix());
                assert!(
                    report.lines().any(|l| l.split_whitespace().any(|w| w == context)),
                    "{context} missing:\n{report}"
                );
            }
            assert!(report.contains(purpose(identity)));
        }
        let output = std::process::Command::new("bash")
            .args([
                "-c",
                "set -e; eval \"$1\"; printf %s \"$KUBECONFIG\"",
                "bash",
                &report,
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            kubeconfig.to_string_lossy()
        );
        assert!(
            output.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    #[test]
    fn finds_recorded_processes_that_still_run_there_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kubeconfig");
        std::fs::write(&file, "").unwrap();
        // `tail -f <dir>/kubeconfig` runs until killed and names the directory, as a cluster's processes do.
        let mut alive = std::process::Command::new("tail")
            .arg("-f")
            .arg(&file)
            .spawn()
            .unwrap();
        let mut elsewhere = std::process::Command::new("tail")
            .args(["-f", "/dev/null"])
            .spawn()
            .unwrap();
        std::fs::write(
            dir.path().join(process::PIDS_FILE),
            format!("{}\n{}\n4194304\n", alive.id(), elsewhere.id()),
        )
        .unwrap();
        let found = recorded_processes(dir.path());
        let _ = (alive.kill(), elsewhere.kill(), alive.wait(), elsewhere.wait());
        assert_eq!(
            found,
            vec![Recorded {
                pid: alive.id(),
                program: "tail".into()
            }]
        );
        let message = in_use(dir.path(), &found);
        assert!(
            message.contains(&format!("tail (pid {})", alive.id())),
            "{message}"
        );
        assert!(
            message.contains("cargo xtask down") && message.contains(UP_DIR_ENV),
            "{message}"
        );
        assert!(
            recorded_processes(dir.path()).is_empty(),
            "killed: nothing runs there any more"
        );
    }

    #[test]
    fn shell_quote_keeps_plain_paths_and_quotes_the_rest() {
        assert_eq!(shell_quote("/root/.cache/up/current"), "/root/.cache/up/current");
        assert_eq!(shell_quote("/a b"), "'/a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn lock_refuses_a_second_holder() {
        let dir = tempfile::tempdir().unwrap();
        let up = dir.path().join("current");
        let held = lock(&up).unwrap();
        let error = lock(&up).unwrap_err().to_string();
        assert!(error.contains("is working in"), "{error}");
        drop(held);
        lock(&up).unwrap();
    }
}
