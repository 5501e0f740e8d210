//! The one local environment the demo, the benchmarks and every end-to-end test start: two real clusters (the
//! testbed), the Trident protect STAND-IN controller acting on both, the real `tprotect-webhook` registered on
//! both API servers from the product's own manifests and running as its own service account, an
//! application's fixtures, and what tests need to drive and judge it:
//!
//! - [`plugin`]: the real `kubectl-tprotect` binary run as a user runs it (output captured, on a
//!   pseudo-terminal, in the background);
//! - [`observe`]: both clusters read back — objects, summaries of a relationship, and [`observe::Mark`]s that
//!   say what changed between two moments, judged only on what the plugin could have changed;
//! - [`audit`]: the API servers' audit logs, for who made which request;
//! - [`webhook`]: the webhook processes and their registration.
//!
//! Waiting is [`eventually`]; a port is [`free_port`]. One of each, for every test.

pub mod audit;
pub mod fixtures;
pub mod manifests;
pub mod observe;
pub mod plugin;
pub mod webhook;

use std::path::{Path, PathBuf};

use tprotect_standin::{StandIn, StandInConfig, StandInHandle};
pub use tprotect_testbed::{
    CrdSource, DEADLINE, Identity, Role, Testbed, TestbedOptions, eventually, eventually_within, free_port,
};

pub use fixtures::Fixtures;
pub use manifests::{apply, protect};
pub use observe::{Mark, assert_unchanged};
pub use plugin::{Output, Plugin, Setup};
pub use webhook::{ServeOptions, Webhook, WebhookOptions, WebhookTarget, register_webhooks};

/// What can go wrong starting, driving or observing the environment.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Testbed(#[from] tprotect_testbed::Error),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("webhook: {0}")]
    Webhook(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("no cluster with context {0} (the testbed's are tprotect-source and tprotect-destination)")]
    UnknownContext(String),
    #[error("kubectl tprotect {args}: {message}")]
    Plugin { args: String, message: String },
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The namespace Trident protect (and AppVaults) live in.
pub const TRIDENT: &str = tprotect_api::TRIDENT_PROTECT_NAMESPACE;
/// The source cluster's admin context.
pub const SOURCE: &str = "tprotect-source";
/// The destination cluster's admin context.
pub const DESTINATION: &str = "tprotect-destination";

/// How to start the environment.
#[derive(Debug, Clone, Default)]
pub struct LocalEnvOptions {
    pub testbed: TestbedOptions,
    /// Run the stand-in controller with this configuration (its profile, delays and time scale are the
    /// caller's choice; the cluster names in its messages are set to the contexts').
    pub standin: Option<StandInConfig>,
    pub webhook: Option<WebhookOptions>,
}

impl LocalEnvOptions {
    /// Clusters with NetApp's own CRDs (from the chart in `shared/`) and no controller managers (nothing these
    /// tests watch needs garbage collection): the environment of the stand-in's, the lifecycle's and the
    /// monitoring's tests. Add the stand-in and the webhook with [`Self::with_standin`], [`Self::with_webhook`].
    pub fn netapp() -> Self {
        Self::clusters(CrdSource::NetApp)
    }

    /// Bare clusters: no CRDs, no controller managers (for what needs only an API server, e.g. a Secret).
    pub fn without_crds() -> Self {
        Self::clusters(CrdSource::None)
    }

    fn clusters(crds: CrdSource) -> Self {
        LocalEnvOptions {
            testbed: TestbedOptions {
                crds,
                controller_manager: false,
                ..TestbedOptions::default()
            },
            ..LocalEnvOptions::default()
        }
    }

    pub fn with_standin(self, standin: StandInConfig) -> Self {
        LocalEnvOptions {
            standin: Some(standin),
            ..self
        }
    }

    pub fn with_webhook(self, webhook: WebhookOptions) -> Self {
        LocalEnvOptions {
            webhook: Some(webhook),
            ..self
        }
    }
}

/// The running environment. Dropping it stops everything.
pub struct LocalEnv {
    pub testbed: Testbed,
    standin: Option<StandInHandle>,
    standin_config: Option<StandInConfig>,
    webhooks: Vec<Webhook>,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for LocalEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEnv")
            .field("testbed", &self.testbed)
            .field("standin", &self.standin.is_some())
            .field("webhooks", &self.webhooks.len())
            .finish()
    }
}

impl LocalEnv {
    /// Starts the clusters, then the stand-in and the webhooks if asked. The webhooks are registered and in
    /// effect when this returns.
    pub async fn start(options: LocalEnvOptions) -> Result<Self, Error> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let testbed = Testbed::start_with(options.testbed.clone()).await?;
        let dir = tempfile::tempdir().map_err(|e| Error::io(&std::env::temp_dir(), e))?;
        let mut env = LocalEnv {
            testbed,
            standin: None,
            standin_config: options.standin.map(|config| StandInConfig {
                source_name: SOURCE.into(),
                destination_name: DESTINATION.into(),
                ..config
            }),
            webhooks: Vec::new(),
            dir,
        };
        env.start_standin().await?;
        if let Some(options) = &options.webhook {
            for cluster in [&env.testbed.source, &env.testbed.destination] {
                let webhook = Webhook::start(env.dir.path(), cluster, options).await?;
                env.webhooks.push(webhook);
            }
        }
        Ok(env)
    }

    /// The kubeconfig of both clusters (a context per cluster and identity).
    pub fn kubeconfig(&self) -> &Path {
        &self.testbed.kubeconfig
    }

    /// The cluster whose admin context is `context`.
    pub fn cluster(&self, context: &str) -> Result<&tprotect_testbed::Cluster, Error> {
        [&self.testbed.source, &self.testbed.destination]
            .into_iter()
            .find(|c| c.context == context)
            .ok_or_else(|| Error::UnknownContext(context.to_string()))
    }

    /// The admin client of the cluster whose admin context is `context`.
    pub fn client(&self, context: &str) -> Result<kube::Client, Error> {
        Ok(self.cluster(context)?.client.clone())
    }

    /// The webhook serving the cluster whose admin context is `context`, if webhooks run.
    pub fn webhook(&self, context: &str) -> Option<&Webhook> {
        self.webhooks.iter().find(|w| w.context == context)
    }

    /// Stops the webhook of one cluster; its registration stays (the API server then calls a webhook that
    /// does not answer).
    pub fn stop_webhook(&mut self, context: &str) {
        self.webhooks.retain(|w| w.context != context);
    }

    /// Stops the stand-in controller (nothing but the tests and the plugin change the clusters afterwards).
    pub async fn stop_standin(&mut self) {
        if let Some(standin) = self.standin.take() {
            standin.shutdown().await;
        }
    }

    /// Starts the stand-in again after [`LocalEnv::stop_standin`], with the configuration it started with
    /// (its faults are shared, so a clone taken before still changes them).
    pub async fn restart_standin(&mut self) -> Result<(), Error> {
        self.stop_standin().await;
        self.start_standin().await
    }

    async fn start_standin(&mut self) -> Result<(), Error> {
        if let Some(config) = &self.standin_config {
            let source = self.testbed.source.client_as(Identity::Controller).await?;
            let destination = self.testbed.destination.client_as(Identity::Controller).await?;
            self.standin = Some(StandIn::new(source, destination, config.clone()).spawn());
        }
        Ok(())
    }

    /// True when a stand-in was configured (running or stopped).
    pub fn has_standin(&self) -> bool {
        self.standin_config.is_some()
    }
}

impl Drop for LocalEnv {
    fn drop(&mut self) {
        // The stand-in's handle stops it on drop; webhooks are killed on drop. Webhooks go before the API
        // servers so that no admission call hangs on a dead endpoint.
        self.webhooks.clear();
    }
}
