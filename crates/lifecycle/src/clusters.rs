//! The two clusters of a command, from kubeconfig contexts.
//!
//! A context that does not exist, or whose credentials cannot be loaded, is kept as an error string rather
//! than failing the command: `failover` must work with the other cluster gone, and the planner decides which
//! operations need which cluster ([`crate::PlanError::Unreachable`]).

use std::path::Path;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::model::{ClusterKey, Contexts};

/// Connecting to an API server that does not answer fails after this long (a stopped server refuses at once).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);
/// A request whose response does not start arriving within this long fails. Watches are re-issued with a
/// server-side timeout below this ([`crate::wait`]), so an idle watch never trips it.
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);
/// Requests are attributed to us in the API servers' audit logs by this user agent.
pub const USER_AGENT: &str = concat!("kubectl-tprotect/", env!("CARGO_PKG_VERSION"));

/// One cluster: its kubeconfig context and a client, or why there is none.
#[derive(Clone)]
pub struct ClusterHandle {
    /// The kubeconfig context name (empty when none was given).
    pub context: String,
    /// A client for the context, or the reason it could not be built (unknown context, bad credentials).
    /// A cluster that is merely down still gets a client: the first request finds out.
    pub client: Result<kube::Client, String>,
    /// The context's default namespace (`default` when it names none).
    pub default_namespace: String,
}

impl std::fmt::Debug for ClusterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterHandle")
            .field("context", &self.context)
            .field("client", &self.client.as_ref().map(|_| "kube::Client"))
            .field("default_namespace", &self.default_namespace)
            .finish()
    }
}

impl ClusterHandle {
    /// A handle over an existing client (tests, or callers that build their own).
    pub fn from_client(context: impl Into<String>, client: kube::Client) -> Self {
        let default_namespace = client.default_namespace().to_string();
        Self {
            context: context.into(),
            client: Ok(client),
            default_namespace,
        }
    }

    /// A handle for a cluster that cannot be used, with the reason.
    pub fn unusable(context: impl Into<String>, error: impl Into<String>) -> Self {
        Self {
            context: context.into(),
            client: Err(error.into()),
            default_namespace: "default".into(),
        }
    }

    /// The client, or the reason there is none.
    pub fn client(&self) -> Result<&kube::Client, &str> {
        self.client.as_ref().map_err(String::as_str)
    }
}

/// The clusters named by `--context` and `--peer-context`.
#[derive(Debug, Clone)]
pub struct Clusters {
    pub context: ClusterHandle,
    pub peer: ClusterHandle,
}

/// The kubeconfig itself could not be read: nothing can be done without it.
#[derive(Debug, thiserror::Error)]
#[error("kubeconfig {source_desc}: {error}")]
pub struct KubeconfigError {
    source_desc: String,
    error: String,
}

impl Clusters {
    /// Reads the kubeconfig (`path`, else `$KUBECONFIG` — a colon-separated list kube-rs merges — else
    /// `~/.kube/config`) and builds a client for each context: `context` (default: the current context) and
    /// `peer_context` (none: the peer is unusable, with a hint to pass `--peer-context`).
    pub async fn from_kubeconfig(
        path: Option<&Path>,
        context: Option<&str>,
        peer_context: Option<&str>,
    ) -> Result<Self, KubeconfigError> {
        let (kubeconfig, source_desc) = match path {
            Some(path) => (Kubeconfig::read_from(path), path.display().to_string()),
            None => (
                Kubeconfig::read(),
                "from $KUBECONFIG or ~/.kube/config".to_string(),
            ),
        };
        let kubeconfig = kubeconfig.map_err(|e| KubeconfigError {
            source_desc: source_desc.clone(),
            error: e.to_string(),
        })?;
        let context_name = match context {
            Some(c) => c.to_string(),
            None => kubeconfig
                .current_context
                .clone()
                .ok_or_else(|| KubeconfigError {
                    source_desc: source_desc.clone(),
                    error: "no current context; pass --context".into(),
                })?,
        };
        let context = handle(&kubeconfig, &context_name).await;
        let peer = match peer_context {
            Some(name) => handle(&kubeconfig, name).await,
            None => ClusterHandle::unusable(
                "",
                "no --peer-context given; pass the other cluster's kubeconfig context",
            ),
        };
        Ok(Self { context, peer })
    }

    /// Two handles built by the caller.
    pub fn new(context: ClusterHandle, peer: ClusterHandle) -> Self {
        Self { context, peer }
    }

    pub fn get(&self, key: ClusterKey) -> &ClusterHandle {
        match key {
            ClusterKey::Context => &self.context,
            ClusterKey::Peer => &self.peer,
        }
    }

    /// The context name of `key`, for messages.
    pub fn context_of(&self, key: ClusterKey) -> &str {
        &self.get(key).context
    }

    /// Both context names, for the words about steps ([`tprotect_lifecycle_rules::describe`]).
    pub fn contexts(&self) -> Contexts {
        Contexts {
            context: self.context.context.clone(),
            peer: self.peer.context.clone(),
        }
    }
}

async fn handle(kubeconfig: &Kubeconfig, context: &str) -> ClusterHandle {
    if !kubeconfig.contexts.iter().any(|c| c.name == context) {
        let known: Vec<&str> = kubeconfig.contexts.iter().map(|c| c.name.as_str()).collect();
        return ClusterHandle::unusable(
            context,
            format!(
                "context {context:?} is not in the kubeconfig (known: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
        );
    }
    let options = KubeConfigOptions {
        context: Some(context.to_string()),
        ..Default::default()
    };
    match kube::Config::from_custom_kubeconfig(kubeconfig.clone(), &options).await {
        Ok(config) => match client_from_config(config) {
            Ok(client) => ClusterHandle::from_client(context, client),
            Err(e) => ClusterHandle::unusable(context, e),
        },
        Err(e) => ClusterHandle::unusable(context, format!("context {context:?}: {e}")),
    }
}

/// A client with short timeouts (an unreachable cluster is detected in seconds) and our user agent.
pub fn client_from_config(mut config: kube::Config) -> Result<kube::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(READ_TIMEOUT);
    // Count the read timeout from when a request is sent, not from when its pooled connection went idle.
    config.reset_reader_on_write = true;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(USER_AGENT),
    ));
    kube::Client::try_from(config).map_err(|e| format!("building a client: {e}"))
}
