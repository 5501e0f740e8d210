//! Real local Kubernetes control planes for tests and the demo: one etcd and two `kube-apiserver`s (plus
//! `kube-controller-manager`s) on loopback, as a `source` and a `destination` cluster.
//!
//! Nothing here is a mock: the API servers are Kubernetes 1.20.2 built from Debian's source package
//! ([`install`]), with RBAC, token authentication for several identities ([`Identity`]) and an audit log each.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tprotect_testbed::Error> {
//! let testbed = tprotect_testbed::Testbed::start().await?;
//! let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(testbed.source.client.clone());
//! # Ok(()) }
//! ```

pub mod install;
pub mod process;
pub mod wait;

mod cluster;
mod kubeconfig;

use std::path::{Path, PathBuf};

pub use cluster::{Cluster, Role, install_crds, read_crds};
pub use install::{Binaries, cache_dir, ensure_binaries};
pub use process::Lifetime;
pub use wait::{DEADLINE, eventually, eventually_within};

/// Everything that can go wrong bringing clusters up or down.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("installing the control plane binaries failed: {0}")]
    Install(String),
    #[error("starting the test clusters failed: {0}")]
    Start(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("CRD manifests in {path}: {message}")]
    Crds { path: PathBuf, message: String },
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("timed out after {after:?} waiting for {what}")]
    TimedOut {
        what: String,
        after: std::time::Duration,
    },
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Which CustomResourceDefinitions to install on both clusters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrdSource {
    /// The project's own CRDs, generated from its Rust types into `manifests/crds/`.
    Project,
    /// NetApp's CRDs from the Trident protect chart in `shared/` (all `protect.trident.netapp.io_*.yaml`).
    NetApp,
    /// CRDs from another directory.
    Dir(PathBuf),
    /// None.
    None,
}

/// The identities the API servers know (token authentication). Each has a context in the kubeconfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Identity {
    /// `admin`, group `system:masters`.
    Admin,
    /// Trident protect's controller service account; bound to `cluster-admin` like the real controller.
    Controller,
    /// `dr-operator` in group `tprotect:dr-operators`, with no permissions until a test binds some (the
    /// operator ClusterRole in `manifests/`).
    Operator,
    /// `alice`: authenticated, no permissions. For RBAC denials.
    Viewer,
    /// The webhook's service account `system:serviceaccount:tprotect-system:tprotect-webhook`; no permissions
    /// until the webhook's manifests bind some.
    Webhook,
}

impl Identity {
    pub const ALL: [Identity; 5] = [
        Identity::Admin,
        Identity::Controller,
        Identity::Operator,
        Identity::Viewer,
        Identity::Webhook,
    ];

    /// The user name the API server sees.
    pub fn username(self) -> &'static str {
        match self {
            Identity::Admin => "admin",
            Identity::Controller => {
                "system:serviceaccount:trident-protect:trident-protect-controller-manager"
            }
            Identity::Operator => "dr-operator",
            Identity::Viewer => "alice",
            Identity::Webhook => "system:serviceaccount:tprotect-system:tprotect-webhook",
        }
    }

    fn groups(self) -> &'static str {
        match self {
            Identity::Admin => "system:masters",
            Identity::Controller => "system:serviceaccounts,system:serviceaccounts:trident-protect",
            Identity::Operator => "tprotect:dr-operators",
            Identity::Viewer => "",
            Identity::Webhook => "system:serviceaccounts,system:serviceaccounts:tprotect-system",
        }
    }

    /// Suffix of this identity's kubeconfig context (`tprotect-source` is admin, `tprotect-source-operator` …).
    pub fn context_suffix(self) -> &'static str {
        match self {
            Identity::Admin => "",
            Identity::Controller => "-controller",
            Identity::Operator => "-operator",
            Identity::Viewer => "-viewer",
            Identity::Webhook => "-webhook",
        }
    }
}

/// How to start a testbed.
#[derive(Debug, Clone)]
pub struct TestbedOptions {
    pub crds: CrdSource,
    /// Run a `kube-controller-manager` per cluster (namespace deletion, garbage collection).
    pub controller_manager: bool,
    pub lifetime: Lifetime,
    /// Where to keep the run's files; default a fresh directory under `/dev/shm` (etcd fsyncs are free there).
    pub dir: Option<PathBuf>,
}

impl Default for TestbedOptions {
    fn default() -> Self {
        Self {
            crds: CrdSource::Project,
            controller_manager: true,
            lifetime: Lifetime::TiedToProcess,
            dir: None,
        }
    }
}

/// Two running clusters. Dropping it stops every process it started and removes its files
/// (set `TPROTECT_KEEP_TESTBED=1` to keep the files for a post-mortem).
#[derive(Debug)]
pub struct Testbed {
    pub source: Cluster,
    pub destination: Cluster,
    /// One kubeconfig with a context per cluster and identity; `tprotect-source` is the current context.
    pub kubeconfig: PathBuf,
    /// The run directory (logs, audit logs, data).
    pub dir: PathBuf,
    etcd: std::sync::Mutex<Option<process::ManagedProcess>>,
    lifetime: Lifetime,
}

impl Testbed {
    /// Starts two clusters with the project's CRDs installed.
    pub async fn start() -> Result<Self, Error> {
        Self::start_with(TestbedOptions::default()).await
    }

    /// Starts two clusters as `options` says.
    pub async fn start_with(options: TestbedOptions) -> Result<Self, Error> {
        cluster::start(options).await
    }

    /// A `kubectl` command bound to this testbed's kubeconfig and `context`.
    pub fn kubectl(&self, context: &str) -> std::process::Command {
        let mut command = std::process::Command::new("kubectl");
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--context")
            .arg(context);
        command
    }

    /// Runs `kubectl <args>` on `context` with `stdin` as its input, and returns what it did.
    pub fn run_kubectl(
        &self,
        context: &str,
        args: &[&str],
        stdin: &str,
    ) -> Result<std::process::Output, Error> {
        use std::io::Write;
        use std::process::Stdio;
        let kubectl = Path::new("kubectl");
        let mut child = self
            .kubectl(context)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io(kubectl, e))?;
        if let Some(mut input) = child.stdin.take() {
            input
                .write_all(stdin.as_bytes())
                .map_err(|e| Error::io(kubectl, e))?;
        }
        child.wait_with_output().map_err(|e| Error::io(kubectl, e))
    }

    /// The cluster playing `role`.
    pub fn cluster(&self, role: Role) -> &Cluster {
        match role {
            Role::Source => &self.source,
            Role::Destination => &self.destination,
        }
    }

    /// Leaves the processes running (for `cargo xtask up`) and returns their pids.
    pub fn detach(self) -> Vec<u32> {
        let mut pids = Vec::new();
        // Not dropped: dropping would stop the processes we are handing over.
        let mut this = std::mem::ManuallyDrop::new(self);
        let this = &mut *this;
        pids.extend(this.source.release_processes());
        pids.extend(this.destination.release_processes());
        if let Some(etcd) = this.etcd.get_mut().ok().and_then(Option::take) {
            pids.push(etcd.release());
        }
        pids
    }

    /// Stops everything now (also done on drop).
    pub fn stop(self) {
        drop(self)
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        // Controller managers first (they would log errors when the API servers go), then API servers, then etcd.
        for cluster in [&self.source, &self.destination] {
            cluster.kill_processes();
        }
        if let Ok(mut etcd) = self.etcd.lock()
            && let Some(mut etcd) = etcd.take()
        {
            etcd.kill();
        }
        let keep = std::env::var("TPROTECT_KEEP_TESTBED").is_ok_and(|v| v == "1");
        if self.lifetime == Lifetime::TiedToProcess && !keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A loopback port that was free a moment ago. Whoever binds it next wins: use it at once.
///
/// Picked below Linux's ephemeral range (32768–60999 by default), where the OS puts the local end of every
/// outgoing connection: a port taken from that range (as binding port 0 does) can be grabbed by any connection
/// on the machine before the server that was meant to bind it starts (seen with parallel test runs: "address
/// already in use"). Distinct picks in one process never repeat.
pub fn free_port() -> Result<u16, Error> {
    use std::sync::atomic::{AtomicU16, Ordering};
    const LOW: u16 = 20_000;
    const HIGH: u16 = 32_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // A start of its own per process, far from that of the next pid (parallel test processes have consecutive
    // pids), so parallel processes do not walk the same ports.
    let start = LOW + ((std::process::id().wrapping_mul(2_654_435_761) >> 16) % u32::from(HIGH - LOW)) as u16;
    for _ in 0..(HIGH - LOW) {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % (HIGH - LOW);
        let port = LOW + (start - LOW + offset) % (HIGH - LOW);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::Start(format!("no free loopback port: {e}")))?;
    Ok(listener
        .local_addr()
        .map_err(|e| Error::Start(format!("no free loopback port: {e}")))?
        .port())
}

/// Runs `command` for a test and returns what it did; panics, with its exit status, stdout and stderr, unless
/// it ran and succeeded.
#[track_caller]
pub fn run_ok(command: &mut std::process::Command) -> std::process::Output {
    let described = format!("{command:?}");
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{described}: cannot run: {e}"));
    assert!(
        output.status.success(),
        "{described}: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The repository root (this crate lives in `crates/testbed`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// The `shared/` directory beside the repository (`$TPROTECT_SHARED_DIR` overrides), if it exists.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("TPROTECT_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared"));
    dir.is_dir().then_some(dir)
}

/// NetApp's Trident protect CRD directory in `shared/`, if present.
pub fn netapp_crd_dir() -> Option<PathBuf> {
    shared_dir()
        .map(|d| d.join("trident-protect/chart-26.05"))
        .filter(|d| d.is_dir())
}
