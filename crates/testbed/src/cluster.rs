//! Starting and stopping the processes of a testbed, and preparing the clusters (namespaces, RBAC, CRDs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::install::Binaries;
use crate::kubeconfig::{self, ClusterEntry};
use crate::process::{self, Lifetime, ManagedProcess};
use crate::{CrdSource, Error, Identity, Testbed, TestbedOptions, free_port};

const FIELD_MANAGER: &str = "tprotect-testbed";
/// Generous: under a full test run on 2 cores an API server once took over 90 s to become ready. The
/// deadline only stops a broken one from hanging.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// Which side of a replication relationship a cluster starts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Source,
    Destination,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Destination => "destination",
        }
    }

    /// The admin context of this cluster in the testbed kubeconfig.
    pub fn context(self) -> String {
        format!("tprotect-{}", self.name())
    }
}

/// One running cluster.
pub struct Cluster {
    pub role: Role,
    /// The admin context (`tprotect-source` / `tprotect-destination`).
    pub context: String,
    /// `https://127.0.0.1:<port>`.
    pub server: String,
    /// An admin client.
    pub client: kube::Client,
    /// The API server's audit log (level Metadata, one line per request, with the user agent).
    pub audit_log: PathBuf,
    /// The kubeconfig shared by both clusters.
    pub kubeconfig: PathBuf,
    /// The API server's serving CA (for clients that need it, e.g. a webhook's kubeconfig).
    pub ca_file: PathBuf,
    apiserver: Mutex<Option<ManagedProcess>>,
    apiserver_args: Vec<String>,
    controller_manager: Mutex<Option<ManagedProcess>>,
    binaries: Binaries,
    dir: PathBuf,
    lifetime: Lifetime,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("role", &self.role)
            .field("context", &self.context)
            .field("server", &self.server)
            .field("pids", &self.pids())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// The context of `identity` on this cluster.
    pub fn context_as(&self, identity: Identity) -> String {
        format!("{}{}", self.context, identity.context_suffix())
    }

    /// A client acting as `identity`.
    pub async fn client_as(&self, identity: Identity) -> Result<kube::Client, Error> {
        kubeconfig::client(&self.kubeconfig, &self.context_as(identity)).await
    }

    /// Stops the API server (the cluster becomes unreachable; etcd keeps its data).
    pub fn stop_apiserver(&self) {
        if let Some(mut server) = self.apiserver.lock().ok().and_then(|mut s| s.take()) {
            server.kill();
        }
    }

    /// Starts the API server again on the same port, and waits until it is ready.
    pub async fn start_apiserver(&self) -> Result<(), Error> {
        self.stop_apiserver();
        let server = spawn_apiserver(
            &self.binaries,
            &self.dir,
            self.role,
            &self.apiserver_args,
            self.lifetime,
        )?;
        *self
            .apiserver
            .lock()
            .map_err(|_| Error::Start("apiserver lock poisoned".into()))? = Some(server);
        wait_ready(&self.client, &self.apiserver).await
    }

    /// True while the API server process runs.
    pub fn apiserver_running(&self) -> bool {
        self.apiserver
            .lock()
            .ok()
            .is_some_and(|mut s| s.as_mut().is_some_and(ManagedProcess::is_running))
    }

    /// Pids of this cluster's processes.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        for slot in [&self.apiserver, &self.controller_manager] {
            if let Ok(slot) = slot.lock()
                && let Some(p) = slot.as_ref()
            {
                pids.push(p.pid);
            }
        }
        pids
    }

    pub(crate) fn kill_processes(&self) {
        for slot in [&self.controller_manager, &self.apiserver] {
            if let Some(mut p) = slot.lock().ok().and_then(|mut s| s.take()) {
                p.kill();
            }
        }
    }

    pub(crate) fn release_processes(&mut self) -> Vec<u32> {
        let mut pids = Vec::new();
        for slot in [&mut self.controller_manager, &mut self.apiserver] {
            if let Some(p) = slot.get_mut().ok().and_then(Option::take) {
                pids.push(p.release());
            }
        }
        pids
    }
}

fn random_token() -> Result<String, Error> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::Start(format!("cannot read /dev/urandom: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn runs_root(lifetime: Lifetime) -> PathBuf {
    match lifetime {
        Lifetime::Detached => crate::cache_dir().join("up"),
        Lifetime::TiedToProcess => {
            let shm = Path::new("/dev/shm");
            if shm.is_dir() {
                shm.join("tprotect-testbed")
            } else {
                std::env::temp_dir().join("tprotect-testbed")
            }
        }
    }
}

fn write(path: &Path, contents: &str) -> Result<(), Error> {
    std::fs::write(path, contents).map_err(|e| Error::io(path, e))
}

pub(crate) async fn start(options: TestbedOptions) -> Result<Testbed, Error> {
    let binaries = crate::ensure_binaries()?;
    let root = runs_root(options.lifetime);
    std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
    process::reap_stale_runs(&root);
    let dir = match &options.dir {
        Some(dir) => dir.clone(),
        None => root.join(format!(
            "run-{}-{}",
            std::process::id(),
            random_token()?.get(..8).unwrap_or("0")
        )),
    };
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    write(&dir.join(process::OWNER_FILE), &std::process::id().to_string())?;
    if options.lifetime == Lifetime::Detached {
        // Nobody owns a detached run: `cargo xtask down` stops it. Mark it so reaping skips it.
        write(&dir.join(process::OWNER_FILE), "1")?;
    }

    // Keys and configuration shared by both clusters.
    let sa_key = dir.join("sa.key");
    let sa_pub = dir.join("sa.pub");
    openssl(&binaries, &["genrsa", "-out", &sa_key.to_string_lossy(), "2048"])?;
    openssl(
        &binaries,
        &[
            "rsa",
            "-in",
            &sa_key.to_string_lossy(),
            "-pubout",
            "-out",
            &sa_pub.to_string_lossy(),
        ],
    )?;
    // Metadata for every request, and the request body of deletes too: a delete's dry run travels in its body
    // (DeleteOptions), not its URL, and whoever reads the log must tell a dry run from a deletion. A delete's
    // body holds no object data.
    write(
        &dir.join("audit-policy.yaml"),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [\"RequestReceived\"]\nrules:\n\
         - level: Request\n  verbs: [\"delete\", \"deletecollection\"]\n- level: Metadata\n",
    )?;
    let mut tokens: BTreeMap<Role, Vec<(Identity, String)>> = BTreeMap::new();
    for role in [Role::Source, Role::Destination] {
        let mut list = Vec::new();
        for identity in Identity::ALL {
            list.push((identity, random_token()?));
        }
        tokens.insert(role, list);
    }

    // etcd: one for both clusters, separated by key prefix.
    let etcd_port = free_port()?;
    let peer_port = free_port()?;
    let etcd_url = format!("http://127.0.0.1:{etcd_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let etcd_args = vec![
        "--name".into(),
        "testbed".into(),
        "--data-dir".into(),
        dir.join("etcd").to_string_lossy().to_string(),
        "--listen-client-urls".into(),
        etcd_url.clone(),
        "--advertise-client-urls".into(),
        etcd_url.clone(),
        "--listen-peer-urls".into(),
        peer_url.clone(),
        "--initial-advertise-peer-urls".into(),
        peer_url.clone(),
        "--initial-cluster".into(),
        format!("testbed={peer_url}"),
        "--log-level".into(),
        "warn".into(),
    ];
    let etcd = ManagedProcess::spawn(
        "etcd",
        &binaries.setpriv,
        &binaries.etcd,
        &etcd_args,
        &dir.join("etcd.log"),
        options.lifetime,
    )?;
    process::record_child(&dir, etcd.pid);
    let mut etcd_slot = Some(etcd);
    // Guard: if anything below fails, what has started is stopped by the drops on the error path.

    let mut ports = BTreeMap::new();
    for role in [Role::Source, Role::Destination] {
        ports.insert(role, free_port()?);
    }
    let mut apiservers = BTreeMap::new();
    for role in [Role::Source, Role::Destination] {
        let cluster_dir = dir.join(role.name());
        std::fs::create_dir_all(cluster_dir.join("certs")).map_err(|e| Error::io(&cluster_dir, e))?;
        let token_lines: String = tokens[&role]
            .iter()
            .map(|(identity, token)| {
                format!(
                    "{token},{},{},\"{}\"\n",
                    identity.username(),
                    identity.username(),
                    identity.groups()
                )
            })
            .collect();
        write(&cluster_dir.join("tokens.csv"), &token_lines)?;
        let args = apiserver_args(
            &dir,
            &cluster_dir,
            role,
            ports[&role],
            &etcd_url,
            &sa_key,
            &sa_pub,
        );
        let server = spawn_apiserver(&binaries, &dir, role, &args, options.lifetime)?;
        apiservers.insert(role, (Mutex::new(Some(server)), args));
    }

    // The serving certificate appears once the API server has started; the kubeconfig refers to it.
    let kubeconfig_path = dir.join("kubeconfig");
    let ca_files: BTreeMap<Role, PathBuf> = [Role::Source, Role::Destination]
        .map(|r| (r, dir.join(r.name()).join("certs/apiserver.crt")))
        .into();
    let servers: BTreeMap<Role, String> = [Role::Source, Role::Destination]
        .map(|r| (r, format!("https://127.0.0.1:{}", ports[&r])))
        .into();
    let contexts: BTreeMap<Role, String> = [Role::Source, Role::Destination].map(|r| (r, r.context())).into();
    let entries: Vec<ClusterEntry<'_>> = [Role::Source, Role::Destination]
        .iter()
        .map(|r| ClusterEntry {
            context: &contexts[r],
            server: &servers[r],
            ca_file: &ca_files[r],
            tokens: &tokens[r],
        })
        .collect();
    write(&kubeconfig_path, &kubeconfig::render(&entries, "default")?)?;

    let mut clusters = BTreeMap::new();
    for role in [Role::Source, Role::Destination] {
        let (server, args) = apiservers.remove(&role).expect("both roles were started");
        wait_for_file(&ca_files[&role], &server).await?;
        let client = kubeconfig::client(&kubeconfig_path, &contexts[&role]).await?;
        wait_ready(&client, &server).await?;
        if let Ok(slot) = server.lock()
            && let Some(p) = slot.as_ref()
        {
            process::record_child(&dir, p.pid);
        }
        clusters.insert(
            role,
            Cluster {
                role,
                context: contexts[&role].clone(),
                server: servers[&role].clone(),
                client,
                audit_log: dir.join(role.name()).join("audit.log"),
                kubeconfig: kubeconfig_path.clone(),
                ca_file: ca_files[&role].clone(),
                apiserver: server,
                apiserver_args: args,
                controller_manager: Mutex::new(None),
                binaries: binaries.clone(),
                dir: dir.clone(),
                lifetime: options.lifetime,
            },
        );
    }
    let source = clusters.remove(&Role::Source).expect("source started");
    let destination = clusters.remove(&Role::Destination).expect("destination started");
    let testbed = Testbed {
        source,
        destination,
        kubeconfig: kubeconfig_path,
        dir: dir.clone(),
        etcd: Mutex::new(etcd_slot.take()),
        lifetime: options.lifetime,
    };

    let crd_files = crd_files(&options.crds)?;
    for cluster in [&testbed.source, &testbed.destination] {
        prepare(cluster).await?;
        if options.controller_manager {
            let manager = spawn_controller_manager(&binaries, &dir, cluster, &sa_key, options.lifetime)?;
            process::record_child(&dir, manager.pid);
            *cluster
                .controller_manager
                .lock()
                .map_err(|_| Error::Start("lock poisoned".into()))? = Some(manager);
        }
    }
    let (a, b) = tokio::join!(
        install_crds(&testbed.source.client, &crd_files),
        install_crds(&testbed.destination.client, &crd_files)
    );
    a?;
    b?;
    Ok(testbed)
}

fn apiserver_args(
    run_dir: &Path,
    cluster_dir: &Path,
    role: Role,
    port: u16,
    etcd_url: &str,
    sa_key: &Path,
    sa_pub: &Path,
) -> Vec<String> {
    let path = |p: &Path| p.to_string_lossy().to_string();
    let run_id = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    vec![
        format!("--etcd-servers={etcd_url}"),
        format!("--etcd-prefix=/{run_id}/{}", role.name()),
        format!("--secure-port={port}"),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        "--insecure-port=0".into(),
        format!("--cert-dir={}", path(&cluster_dir.join("certs"))),
        "--service-account-issuer=https://kubernetes.default.svc".into(),
        format!("--service-account-key-file={}", path(sa_pub)),
        format!("--service-account-signing-key-file={}", path(sa_key)),
        "--service-cluster-ip-range=10.0.0.0/24".into(),
        "--authorization-mode=RBAC".into(),
        format!("--token-auth-file={}", path(&cluster_dir.join("tokens.csv"))),
        "--disable-admission-plugins=ServiceAccount".into(),
        // A loopback advertise address cannot back the `kubernetes` Service's endpoints.
        "--endpoint-reconciler-type=none".into(),
        format!("--audit-log-path={}", path(&cluster_dir.join("audit.log"))),
        format!("--audit-policy-file={}", path(&run_dir.join("audit-policy.yaml"))),
        "--profiling=false".into(),
        "--v=1".into(),
    ]
}

fn spawn_apiserver(
    binaries: &Binaries,
    run_dir: &Path,
    role: Role,
    args: &[String],
    lifetime: Lifetime,
) -> Result<ManagedProcess, Error> {
    let log = run_dir.join(role.name()).join("kube-apiserver.log");
    ManagedProcess::spawn(
        &format!("kube-apiserver ({})", role.name()),
        &binaries.setpriv,
        &binaries.kube_apiserver,
        args,
        &log,
        lifetime,
    )
}

fn spawn_controller_manager(
    binaries: &Binaries,
    run_dir: &Path,
    cluster: &Cluster,
    sa_key: &Path,
    lifetime: Lifetime,
) -> Result<ManagedProcess, Error> {
    // The controller manager reads the shared kubeconfig with its own current context.
    let cluster_dir = run_dir.join(cluster.role.name());
    let own = cluster_dir.join("controller-manager.kubeconfig");
    let text = std::fs::read_to_string(&cluster.kubeconfig).map_err(|e| Error::io(&cluster.kubeconfig, e))?;
    let text = text.replace(
        "current-context: tprotect-source",
        &format!("current-context: {}", cluster.context),
    );
    write(&own, &text)?;
    let args = vec![
        format!("--kubeconfig={}", own.to_string_lossy()),
        format!("--service-account-private-key-file={}", sa_key.to_string_lossy()),
        "--leader-elect=false".into(),
        "--port=0".into(),
        "--secure-port=0".into(),
        "--controllers=*,-nodeipam,-nodelifecycle,-attachdetach,-persistentvolume-binder,-persistentvolume-expander"
            .into(),
        "--v=1".into(),
    ];
    ManagedProcess::spawn(
        &format!("kube-controller-manager ({})", cluster.role.name()),
        &binaries.setpriv,
        &binaries.kube_controller_manager,
        &args,
        &cluster_dir.join("kube-controller-manager.log"),
        lifetime,
    )
}

fn openssl(binaries: &Binaries, args: &[&str]) -> Result<(), Error> {
    let output = std::process::Command::new(&binaries.openssl)
        .args(args)
        .output()
        .map_err(|e| Error::Start(format!("openssl: {e}")))?;
    if !output.status.success() {
        return Err(Error::Start(format!(
            "openssl {}: {}",
            args[0],
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(())
}

async fn wait_for_file(path: &Path, server: &Mutex<Option<ManagedProcess>>) -> Result<(), Error> {
    let deadline = Instant::now() + READY_TIMEOUT;
    while !path.is_file() {
        check_alive(server)?;
        if Instant::now() > deadline {
            return Err(Error::Start(format!("{} did not appear", path.display())));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

fn check_alive(server: &Mutex<Option<ManagedProcess>>) -> Result<(), Error> {
    let mut slot = server.lock().map_err(|_| Error::Start("lock poisoned".into()))?;
    match slot.as_mut() {
        Some(p) => {
            if p.is_running() {
                Ok(())
            } else {
                Err(Error::Start(format!("{} exited:\n{}", p.name, p.log_tail(25))))
            }
        }
        None => Err(Error::Start("the API server is stopped".into())),
    }
}

async fn wait_ready(client: &kube::Client, server: &Mutex<Option<ManagedProcess>>) -> Result<(), Error> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        check_alive(server)?;
        let request = http::Request::get("/readyz?verbose")
            .body(Vec::new())
            .map_err(|e| Error::Start(e.to_string()))?;
        let last_answer = match client.request_text(request).await {
            Ok(body) if body.lines().any(|line| line.starts_with("readyz check passed")) => return Ok(()),
            Ok(body) => body,
            Err(error) => error.to_string(),
        };
        if Instant::now() > deadline {
            return Err(Error::Start(format!(
                "API server not ready after {READY_TIMEOUT:?}; its last /readyz answer: {}",
                failing_checks(&last_answer)
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The checks a verbose `/readyz` answer reports failed (`[-]…` lines), or the answer itself, shortened.
fn failing_checks(answer: &str) -> String {
    let failed: Vec<&str> = answer
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("[-]"))
        .collect();
    if failed.is_empty() {
        answer.chars().take(500).collect()
    } else {
        failed.join(", ")
    }
}

/// Namespaces and bindings every test expects: `trident-protect` (AppVaults live there), and the controller
/// identity bound to `cluster-admin` like Trident protect's own controller.
async fn prepare(cluster: &Cluster) -> Result<(), Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "trident-protect"}});
    namespaces
        .patch("trident-protect", &params, &Patch::Apply(&ns))
        .await?;
    let bindings: Api<ClusterRoleBinding> = Api::all(cluster.client.clone());
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "testbed:trident-protect-controller"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": Identity::Controller.username()}],
    });
    bindings
        .patch(
            "testbed:trident-protect-controller",
            &params,
            &Patch::Apply(&binding),
        )
        .await?;
    Ok(())
}

fn crd_files(source: &CrdSource) -> Result<Vec<PathBuf>, Error> {
    let (dir, filter): (PathBuf, fn(&str) -> bool) = match source {
        CrdSource::None => return Ok(Vec::new()),
        CrdSource::Project => (crate::repo_root().join("manifests/crds"), |n| {
            n.ends_with(".yaml")
        }),
        CrdSource::NetApp => (
            crate::netapp_crd_dir().ok_or_else(|| Error::Crds {
                path: crate::repo_root().join("../shared/trident-protect/chart-26.05"),
                message: "NetApp's CRDs are not there (set TPROTECT_SHARED_DIR to the shared/ directory)"
                    .into(),
            })?,
            |n| n.starts_with("protect.trident.netapp.io_") && n.ends_with(".yaml"),
        ),
        CrdSource::Dir(dir) => (dir.clone(), |n| n.ends_with(".yaml")),
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| Error::io(&dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| filter(&n.to_string_lossy())))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::Crds {
            path: dir,
            message: "no CRD manifests found".into(),
        });
    }
    Ok(files)
}

/// Parses every CustomResourceDefinition document in `files`.
pub fn read_crds(files: &[PathBuf]) -> Result<Vec<CustomResourceDefinition>, Error> {
    use serde::Deserialize;
    let mut crds = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
        for document in serde_norway::Deserializer::from_str(&text) {
            let value = serde_json::Value::deserialize(document).map_err(|e| Error::Crds {
                path: file.clone(),
                message: e.to_string(),
            })?;
            if value.get("kind").and_then(|k| k.as_str()) != Some("CustomResourceDefinition") {
                continue;
            }
            let crd: CustomResourceDefinition = serde_json::from_value(value).map_err(|e| Error::Crds {
                path: file.clone(),
                message: e.to_string(),
            })?;
            crds.push(crd);
        }
    }
    Ok(crds)
}

/// Removes `x-kubernetes-validations` (CEL, 1.25+). A 1.20 server would drop them on create, but its
/// server-side apply refuses fields its schema does not declare. The rules they carry are not what our
/// correctness rests on: the admission webhook enforces ours.
fn strip_cel_rules(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.remove("x-kubernetes-validations");
            map.values_mut().for_each(strip_cel_rules);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_cel_rules),
        _ => {}
    }
}

/// Applies the CRDs (server-side apply, so re-running is harmless) and waits until each is Established.
pub async fn install_crds(client: &kube::Client, files: &[PathBuf]) -> Result<(), Error> {
    let crds = read_crds(files)?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let mut crd = crd.clone();
        crd.status = None;
        let mut crd = serde_json::to_value(&crd).map_err(|e| Error::Start(e.to_string()))?;
        strip_cel_rules(&mut crd);
        api.patch(&name, &params, &Patch::Apply(&crd)).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        loop {
            let current = api.get(&name).await?;
            let established = current
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Established" && c.status == "True"));
            if established {
                break;
            }
            if Instant::now() > deadline {
                return Err(Error::Start(format!("CRD {name} not Established after 60s")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::failing_checks;

    #[test]
    fn names_the_readiness_checks_that_failed() {
        let answer = "[+]ping ok\n[+]etcd ok\n[-]poststarthook/crd-informer-synced failed: reason withheld\n\
                      [-]poststarthook/rbac/bootstrap-roles failed: reason withheld\nreadyz check failed\n";
        assert_eq!(
            failing_checks(answer),
            "[-]poststarthook/crd-informer-synced failed: reason withheld, \
             [-]poststarthook/rbac/bootstrap-roles failed: reason withheld"
        );
        assert_eq!(failing_checks("connection refused"), "connection refused");
        assert_eq!(failing_checks(&"x".repeat(900)).len(), 500);
    }
}
