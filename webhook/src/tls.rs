//! The serving certificate, read from PEM files and swapped in place when they change.
//!
//! Every TLS handshake asks [`CertResolver`] for the current certificate, an `ArcSwap` load: a reload
//! never touches a connection in progress, and new handshakes see the new certificate at once. A reload is
//! triggered by a change notification on the directories holding the files (a Kubernetes Secret volume
//! updates them by swapping the `..data` symlink, which changes the directory, not the files' own inodes) and
//! also on a timer, because notifications can be missed (a remounted volume, an overlay file system). A new
//! pair that does not load (unparsable PEM, key not matching the certificate, half-written files) is
//! logged and ignored: the previous certificate keeps serving and the next trigger tries again.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher};
use rustls::{
    ServerConfig,
    crypto::CryptoProvider,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio_util::sync::CancellationToken;

use crate::{Error, Result, metrics::Metrics, metrics::ResultLabels};

/// Where the serving certificate (chain, leaf first) and its private key live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Hands every TLS handshake the current certificate.
pub struct CertResolver {
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// What a reload attempt did.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// The files hold what is already serving.
    Unchanged,
    /// A new certificate is serving.
    Loaded,
    /// The files changed but do not load; the previous certificate keeps serving.
    Rejected(Error),
}

/// The PEM bytes last seen on disk, to tell a change from a periodic re-read of the same files.
#[derive(Default, PartialEq, Eq)]
struct SeenPems {
    cert: Vec<u8>,
    key: Vec<u8>,
}

/// A serving certificate that follows its files.
pub struct ReloadingCertificate {
    files: CertificateFiles,
    provider: Arc<CryptoProvider>,
    resolver: Arc<CertResolver>,
    /// The pair serving now, and the last pair rejected (so the same bad pair is logged once, not per tick).
    seen: Mutex<(SeenPems, Option<SeenPems>)>,
    metrics: Arc<Metrics>,
}

impl fmt::Debug for ReloadingCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCertificate")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// The ring provider: the project's only TLS crypto.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a certificate chain and a private key from PEM and checks that they belong together.
pub fn certified_key_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    files: &CertificateFiles,
    provider: &CryptoProvider,
) -> Result<CertifiedKey> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::Pem {
            path: files.cert.clone(),
            source,
        })?;
    if chain.is_empty() {
        return Err(Error::NoCertificate(files.cert.clone()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| Error::Pem {
        path: files.key.clone(),
        source,
    })?;
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|source| Error::CertifiedKey {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    })?;
    // `from_der` lets "cannot tell" pass; a serving certificate must be provably ours.
    certified.keys_match().map_err(|source| Error::CertifiedKey {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    })?;
    Ok(certified)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    })
}

impl ReloadingCertificate {
    /// Loads the certificate for the first time; fails if it does not load (there is nothing to fall back on).
    pub fn load(files: CertificateFiles, metrics: Arc<Metrics>) -> Result<Self> {
        let provider = crypto_provider();
        let seen = SeenPems {
            cert: read(&files.cert)?,
            key: read(&files.key)?,
        };
        let certified = certified_key_from_pem(&seen.cert, &seen.key, &files, &provider)?;
        Ok(Self {
            resolver: Arc::new(CertResolver {
                current: ArcSwap::from_pointee(certified),
            }),
            files,
            provider,
            seen: Mutex::new((seen, None)),
            metrics,
        })
    }

    pub fn files(&self) -> &CertificateFiles {
        &self.files
    }

    /// The end-entity certificate serving now (DER).
    pub fn current_leaf(&self) -> Option<CertificateDer<'static>> {
        self.resolver.current.load().cert.first().cloned()
    }

    /// A rustls server configuration that always serves the current certificate; HTTP/2 and HTTP/1.1.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(Error::Tls)?
            .with_no_client_auth()
            .with_cert_resolver(self.resolver.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Re-reads the files; swaps the certificate if they changed and load, keeps the old one otherwise.
    pub fn reload(&self) -> ReloadOutcome {
        let read_both = read(&self.files.cert).and_then(|cert| {
            Ok(SeenPems {
                cert,
                key: read(&self.files.key)?,
            })
        });
        let mut seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let fresh = match read_both {
            Ok(fresh) => fresh,
            Err(error) => {
                // A file missing for a moment (being replaced) is no reason to stop serving.
                tracing::warn!(%error, "cannot read the serving certificate; keeping the current one");
                self.metrics
                    .certificate_reloads
                    .get_or_create(&ResultLabels { result: "rejected" })
                    .inc();
                return ReloadOutcome::Rejected(error);
            }
        };
        if fresh == seen.0 {
            return ReloadOutcome::Unchanged;
        }
        match certified_key_from_pem(&fresh.cert, &fresh.key, &self.files, &self.provider) {
            Ok(certified) => {
                self.resolver.current.store(Arc::new(certified));
                *seen = (fresh, None);
                self.metrics
                    .certificate_reloads
                    .get_or_create(&ResultLabels { result: "loaded" })
                    .inc();
                tracing::info!(cert = %self.files.cert.display(), "loaded a new serving certificate");
                ReloadOutcome::Loaded
            }
            Err(error) => {
                if seen.1.as_ref() != Some(&fresh) {
                    tracing::warn!(
                        %error,
                        "the serving certificate files changed but do not load; keeping the current certificate"
                    );
                    self.metrics
                        .certificate_reloads
                        .get_or_create(&ResultLabels { result: "rejected" })
                        .inc();
                    seen.1 = Some(fresh);
                }
                ReloadOutcome::Rejected(error)
            }
        }
    }

    /// Reloads on every change in the files' directories and every `interval`, until `cancel` fires. If the
    /// directories cannot be watched, logs it and relies on the timer alone.
    pub async fn watch(self: Arc<Self>, interval: Duration, cancel: CancellationToken) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        // Kept alive for the whole loop: dropping it stops the notifications.
        let _watcher = match self.watch_directories(tx) {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::warn!(%error, ?interval, "cannot watch the certificate directory; re-reading on a timer only");
                None
            }
        };
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate: one reload right after the watch is set up catches a change made
        // between the initial load and now, which no notification will report.
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = ticker.tick() => {}
                Some(()) = rx.recv() => {
                    // Writers replace a pair in several steps; let them finish before reading.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    while rx.try_recv().is_ok() {}
                }
            }
            let this = self.clone();
            let _ = tokio::task::spawn_blocking(move || this.reload()).await;
        }
    }

    fn watch_directories(&self, tx: tokio::sync::mpsc::Sender<()>) -> Result<notify::RecommendedWatcher> {
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Access events (reads of the files, including our own) are noise.
            if event.is_ok_and(|e| !e.kind.is_access()) {
                // A full channel already means "reload pending"; coalesce.
                let _ = tx.try_send(());
            }
        })
        .map_err(|source| Error::Watch {
            path: self.files.cert.clone(),
            source,
        })?;
        let mut dirs: Vec<PathBuf> = [&self.files.cert, &self.files.key]
            .into_iter()
            .map(|p| {
                p.parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .to_path_buf()
            })
            .collect();
        dirs.dedup();
        for dir in &dirs {
            watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|source| Error::Watch {
                    path: dir.clone(),
                    source,
                })?;
        }
        Ok(watcher)
    }
}
