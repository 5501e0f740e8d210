//! `tprotect-webhook`: the admission webhook that guards Trident protect replication resources.
//!
//! The rules live in `tprotect-policy` as pure functions; this crate only moves data between the network and
//! them: `HTTPS body -> AdmissionReview -> (kind, operation, user, old, new) -> policy -> AdmissionReview`.
//!
//! - [`admission`]: the two admission endpoints ([`admission::VALIDATE_PATH`], [`admission::MUTATE_PATH`]),
//!   built by [`router`] so tests drive them with `tower::ServiceExt::oneshot`.
//! - [`health`]: `/livez`, `/readyz` and `/metrics` on a separate plain-HTTP listener.
//! - [`tls`]: the serving certificate, reloaded from its files (Secret volume symlink swaps included) without
//!   dropping a request; a certificate that fails to load never replaces a working one.
//! - [`server`]: both listeners, readiness only once the TLS listener is up, graceful drain on shutdown;
//!   [`server::HttpsServer`] serves any router on the same stack (a benchmark's no-op comparison server).
//! - [`limits`]: what any client can make the server hold, in memory and in time, and the memory budget.
//! - [`amr_cache`]: a watch-fed cache of AppMirrorRelationships, for the namespace `name` label rule and the
//!   AMR metrics.
//! - [`amr_metrics`]: every AppMirrorRelationship's lag, RPO target, states and health on `/metrics`, judged by
//!   the same pure function as `kubectl tprotect status`.
//! - [`certs`]: a self-signed CA and serving certificate for clusters without cert-manager.
//! - [`config`]: command-line flags and environment variables.
//! - [`testing`]: realistic admission requests for benchmarks and load tests.

pub mod admission;
pub mod amr_cache;
pub mod amr_metrics;
pub mod certs;
pub mod config;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod server;
pub mod telemetry;
pub mod testing;
pub mod tls;

use std::{io, net::SocketAddr, path::PathBuf};

pub use admission::{AdmissionConfig, AppState, PatchEncoding, router};
pub use amr_cache::AmrCache;
pub use limits::Limits;
pub use metrics::Metrics;
pub use server::{RunningServer, Server, ServerConfig};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read {path}: {source}")]
    ReadFile { path: PathBuf, source: io::Error },
    #[error("failed to write {path}: {source}")]
    WriteFile { path: PathBuf, source: io::Error },
    #[error("no PEM certificate in {0}")]
    NoCertificate(PathBuf),
    #[error("invalid PEM in {path}: {source}")]
    Pem {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("certificate {cert} and key {key} are not a usable pair: {source}")]
    CertifiedKey {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("TLS configuration: {0}")]
    Tls(#[source] rustls::Error),
    #[error("failed to watch {path} for changes: {source}")]
    Watch { path: PathBuf, source: notify::Error },
    #[error("failed to listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("{listener} listener failed: {source}")]
    Serve {
        listener: &'static str,
        source: io::Error,
    },
    #[error("Kubernetes client configuration: {0}")]
    KubeConfig(String),
    #[error("Kubernetes client: {0}")]
    Kube(#[from] kube::Error),
    #[error("certificate generation failed: {0}")]
    CertGeneration(#[from] rcgen::Error),
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Result of this crate's fallible functions.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Installs rustls' ring provider as the process default (the project uses ring only). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
