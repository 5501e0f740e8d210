//! Both listeners and their lifecycle.
//!
//! Start: load the certificate (a webhook without one cannot serve), bind the plain-HTTP health listener,
//! bind the HTTPS listener, and only when it accepts connections report ready. Shutdown: report not ready,
//! stop accepting, let every request in progress finish (bounded by the shutdown timeout), then stop the
//! health listener and the certificate watcher.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::Router;
use axum_server::{Handle, tls_rustls::RustlsConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    Error, Result,
    admission::{self, AppState},
    health::{self, Readiness},
    metrics::Metrics,
    tls::{CertificateFiles, ReloadingCertificate},
};

/// Where and how to serve.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// HTTPS admission listener.
    pub listen: SocketAddr,
    /// Plain-HTTP listener for probes and metrics.
    pub health_listen: SocketAddr,
    pub certificate: CertificateFiles,
    /// Re-read the certificate files this often even without a change notification.
    pub certificate_reload_interval: Duration,
    /// Once shutdown begins, keep serving this long (not ready, and telling HTTP/1.1 clients to close their
    /// connections after each response) before the listener closes, so that clients holding keep-alive
    /// connections move off them instead of racing the close of an idle connection.
    pub shutdown_delay: Duration,
    /// Longest wait for requests in progress once the listener has closed.
    pub shutdown_timeout: Duration,
}

/// The webhook server, not yet started.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    state: AppState,
}

/// A started server.
#[derive(Debug)]
pub struct RunningServer {
    https_addr: SocketAddr,
    health_addr: SocketAddr,
    readiness: Readiness,
    handle: Handle<SocketAddr>,
    background: CancellationToken,
    https_task: JoinHandle<std::io::Result<()>>,
    health_task: JoinHandle<std::io::Result<()>>,
    watch_task: JoinHandle<()>,
    certificate: Arc<ReloadingCertificate>,
    metrics: Arc<Metrics>,
    shutdown_delay: Duration,
    shutdown_timeout: Duration,
}

/// Serves `router` over HTTPS on an already bound listener with the given rustls configuration, until
/// `handle` shuts it down. The admission server uses this; so can a comparison server in a benchmark.
pub fn serve_https(
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    handle: Handle<SocketAddr>,
) -> std::io::Result<JoinHandle<std::io::Result<()>>> {
    listener.set_nonblocking(true)?;
    let server = axum_server::from_tcp_rustls(listener, RustlsConfig::from_config(tls))?.handle(handle);
    Ok(tokio::spawn(server.serve(router.into_make_service())))
}

/// Adds `Connection: close` to HTTP/1.1 responses once shutdown has begun (HTTP/2 gets GOAWAY from the
/// graceful shutdown itself).
fn close_connections_while_draining(router: Router, readiness: Readiness) -> Router {
    router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let readiness = readiness.clone();
            async move {
                let http11 = request.version() == http::Version::HTTP_11;
                let mut response = next.run(request).await;
                if http11 && readiness.is_draining() {
                    response
                        .headers_mut()
                        .insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
                }
                response
            }
        },
    ))
}

impl Server {
    pub fn new(config: ServerConfig, state: AppState) -> Self {
        Self { config, state }
    }

    /// Starts both listeners; returns once the HTTPS listener accepts connections (and `/readyz` says so).
    pub async fn start(self) -> Result<RunningServer> {
        let Self { config, state } = self;
        let metrics = state.metrics().clone();
        let certificate = Arc::new(ReloadingCertificate::load(
            config.certificate.clone(),
            metrics.clone(),
        )?);
        let tls = certificate.server_config()?;
        let readiness = Readiness::default();
        let background = CancellationToken::new();

        let health_listener = tokio::net::TcpListener::bind(config.health_listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.health_listen,
                source,
            })?;
        let health_addr = health_listener.local_addr().map_err(|source| Error::Bind {
            addr: config.health_listen,
            source,
        })?;
        let health_router = health::router(readiness.clone(), metrics.clone());
        let stop_health = background.clone();
        let health_task = tokio::spawn(async move {
            axum::serve(health_listener, health_router)
                .with_graceful_shutdown(stop_health.cancelled_owned())
                .await
        });

        let https_listener = std::net::TcpListener::bind(config.listen).map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        let handle = Handle::new();
        let router = close_connections_while_draining(admission::router(state), readiness.clone());
        let https_task =
            serve_https(https_listener, tls, router, handle.clone()).map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        let Some(https_addr) = handle.listening().await else {
            background.cancel();
            let source = match https_task.await {
                Ok(Err(error)) => error,
                Ok(Ok(())) => std::io::Error::other("HTTPS listener stopped before it started"),
                Err(join) => std::io::Error::other(join),
            };
            return Err(Error::Serve {
                listener: "HTTPS",
                source,
            });
        };
        readiness.set_listening();

        let watch_task = tokio::spawn(
            certificate
                .clone()
                .watch(config.certificate_reload_interval, background.clone()),
        );
        tracing::info!(%https_addr, %health_addr, "serving admission reviews");
        Ok(RunningServer {
            https_addr,
            health_addr,
            readiness,
            handle,
            background,
            https_task,
            health_task,
            watch_task,
            certificate,
            metrics,
            shutdown_delay: config.shutdown_delay,
            shutdown_timeout: config.shutdown_timeout,
        })
    }
}

impl RunningServer {
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }

    pub fn health_addr(&self) -> SocketAddr {
        self.health_addr
    }

    pub fn certificate(&self) -> &Arc<ReloadingCertificate> {
        &self.certificate
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// Connections open on the HTTPS listener.
    pub fn connection_count(&self) -> usize {
        self.handle.connection_count()
    }

    /// Serves until `signal` completes (or the HTTPS listener fails), then shuts down gracefully.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> Result<()> {
        tokio::select! {
            () = signal => {}
            finished = &mut self.https_task => {
                self.background.cancel();
                return match finished {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(source)) => Err(Error::Serve { listener: "HTTPS", source }),
                    Err(join) => Err(Error::Serve { listener: "HTTPS", source: std::io::Error::other(join) }),
                };
            }
        }
        self.shutdown().await
    }

    /// Starts draining: `/readyz` fails and HTTP/1.1 responses carry `Connection: close`; requests are still
    /// served. [`RunningServer::shutdown`] does this itself; calling it earlier only starts the clock sooner.
    pub fn begin_drain(&self) {
        self.readiness.set_draining();
    }

    /// Drains for the shutdown delay, stops accepting, waits for the requests in progress (at most the
    /// shutdown timeout), then stops the health listener and the certificate watcher.
    pub async fn shutdown(self) -> Result<()> {
        self.begin_drain();
        if !self.shutdown_delay.is_zero() {
            tracing::info!(delay = ?self.shutdown_delay, "shutting down: not ready, still serving");
            tokio::time::sleep(self.shutdown_delay).await;
        }
        tracing::info!(
            connections = self.handle.connection_count(),
            timeout = ?self.shutdown_timeout,
            "shutting down: draining requests in progress"
        );
        self.handle.graceful_shutdown(Some(self.shutdown_timeout));
        let served = self.https_task.await;
        self.background.cancel();
        let _ = self.health_task.await;
        let _ = self.watch_task.await;
        tracing::info!(responses = self.metrics.responses.get(), "shutdown complete");
        match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(Error::Serve {
                listener: "HTTPS",
                source,
            }),
            Err(join) => Err(Error::Serve {
                listener: "HTTPS",
                source: std::io::Error::other(join),
            }),
        }
    }
}
