//! Both listeners and their lifecycle, and the HTTPS server that keeps every client within [`Limits`].
//!
//! Start: load the certificate (a webhook without one cannot serve), bind the plain-HTTP health listener,
//! bind the HTTPS listener, and only when it accepts connections report ready. Shutdown: report not ready
//! (and keep serving for the shutdown delay), stop accepting, drain: idle connections close at once, a
//! request head or body still arriving gets [`DRAIN_READ_GRACE`], requests being reviewed finish (bounded by
//! the shutdown timeout); then stop the health listener and the certificate watcher.
//!
//! The HTTPS server is hyper's HTTP/1.1 and HTTP/2 connections on tokio-rustls, with a supervisor per
//! connection that knows its phase (idle, reading a request head, serving requests) and closes it when the
//! phase's time is up, and a service in front of the router that reserves the request's memory from the
//! [`MemoryBudget`], reads the whole body within its deadline and only then calls the router.

use std::{
    convert::Infallible,
    future::Future,
    io,
    net::SocketAddr,
    pin::{Pin, pin},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{Router, body::Body};
use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::{
    body::Incoming,
    server::conn::{http1, http2},
};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::{OwnedSemaphorePermit, Semaphore},
    task::JoinHandle,
};
use tokio_rustls::TlsAcceptor;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt;

use crate::{
    Error, Result,
    admission::{self, AppState, error_response},
    health::{self, Readiness},
    limits::{DRAIN_READ_GRACE, Limits, MemoryBudget, Reservation, SMALL_BODY_BYTES, mib},
    metrics::{ConnectionLabels, Metrics, RejectLabels},
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
    /// Connections, memory and time any client may take.
    pub limits: Limits,
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
    https: HttpsServer,
    health_addr: SocketAddr,
    readiness: Readiness,
    background: CancellationToken,
    health_task: JoinHandle<std::io::Result<()>>,
    watch_task: JoinHandle<()>,
    certificate: Arc<ReloadingCertificate>,
    metrics: Arc<Metrics>,
    shutdown_delay: Duration,
    shutdown_timeout: Duration,
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
                        .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
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
        config.limits.check().map_err(Error::Config)?;
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
        let budget = MemoryBudget::new(&config.limits);
        state.use_memory_budget(budget.clone());
        let router = close_connections_while_draining(admission::router(state), readiness.clone());
        let https = HttpsServer::start(
            https_listener,
            tls,
            router,
            config.limits.clone(),
            budget,
            metrics.clone(),
        )
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        readiness.set_listening();

        let watch_task = tokio::spawn(
            certificate
                .clone()
                .watch(config.certificate_reload_interval, background.clone()),
        );
        tracing::info!(https_addr = %https.local_addr(), %health_addr, "serving admission reviews");
        Ok(RunningServer {
            https,
            health_addr,
            readiness,
            background,
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
        self.https.local_addr()
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
        self.https.connection_count()
    }

    /// Request memory reserved now, in bytes.
    pub fn memory_reserved(&self) -> usize {
        self.https.budget().reserved()
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> Result<()> {
        signal.await;
        self.shutdown().await
    }

    /// Starts draining: `/readyz` fails and HTTP/1.1 responses carry `Connection: close`; requests are still
    /// served. [`RunningServer::shutdown`] does this itself; calling it earlier only starts the clock sooner.
    pub fn begin_drain(&self) {
        self.readiness.set_draining();
    }

    /// Keeps serving for the shutdown delay (not ready), stops accepting, drains the connections (at most the
    /// shutdown timeout), then stops the health listener and the certificate watcher.
    pub async fn shutdown(self) -> Result<()> {
        self.begin_drain();
        if !self.shutdown_delay.is_zero() {
            tracing::info!(delay = ?self.shutdown_delay, "shutting down: not ready, still serving");
            tokio::time::sleep(self.shutdown_delay).await;
        }
        tracing::info!(
            connections = self.https.connection_count(),
            timeout = ?self.shutdown_timeout,
            "shutting down: draining requests in progress"
        );
        self.https.shutdown(self.shutdown_timeout).await;
        self.background.cancel();
        let _ = self.health_task.await;
        let _ = self.watch_task.await;
        tracing::info!(responses = self.metrics.responses.get(), "shutdown complete");
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------------
// The HTTPS server

/// An HTTPS server of any router, within [`Limits`]: the admission server, and the benchmark's no-op server
/// on the same stack.
#[derive(Debug)]
pub struct HttpsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop_accepting: CancellationToken,
    accept_task: JoinHandle<()>,
}

struct Shared {
    router: Router,
    limits: Limits,
    budget: Arc<MemoryBudget>,
    metrics: Arc<Metrics>,
    connections: Arc<Semaphore>,
    tasks: TaskTracker,
    /// Shutdown: stop reading what is slow to arrive, close what is idle.
    drain: CancellationToken,
    drain_started: OnceLock<Instant>,
    /// Shutdown timeout reached: drop every connection.
    force: CancellationToken,
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// After a connection is asked to close (idle, or shutdown), how long it may take before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// HTTP/2 flow-control windows: what a client can make a connection buffer before the body is read.
const H2_STREAM_WINDOW: u32 = 64 * 1024;
const H2_CONNECTION_WINDOW: u32 = 64 * 1024;
/// Largest request head: HTTP/1.1 read buffer (also the most of a body buffered ahead of the reader), and
/// HTTP/2 header list.
const MAX_HEAD_BYTES: usize = 32 * 1024;

impl HttpsServer {
    /// Serves `router` on an already bound listener; `budget` is the memory the requests may reserve (the
    /// admission router's reviews reserve more from it as they read a review).
    pub fn start(
        listener: std::net::TcpListener,
        tls: Arc<rustls::ServerConfig>,
        router: Router,
        limits: Limits,
        budget: Arc<MemoryBudget>,
        metrics: Arc<Metrics>,
    ) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let addr = listener.local_addr()?;
        let mut http1 = http1::Builder::new();
        http1
            // The supervisor times the head from its first byte; hyper's own timer would start at idle.
            .header_read_timeout(None)
            .max_buf_size(MAX_HEAD_BYTES)
            .keep_alive(true);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_concurrent_streams)
            .initial_stream_window_size(H2_STREAM_WINDOW)
            .initial_connection_window_size(H2_CONNECTION_WINDOW)
            .max_header_list_size(MAX_HEAD_BYTES as u32)
            .max_send_buf_size(16 * 1024)
            .max_pending_accept_reset_streams(32)
            .max_local_error_reset_streams(64);
        let shared = Arc::new(Shared {
            router,
            connections: Arc::new(Semaphore::new(limits.max_connections)),
            limits,
            budget,
            metrics,
            tasks: TaskTracker::new(),
            drain: CancellationToken::new(),
            drain_started: OnceLock::new(),
            force: CancellationToken::new(),
            http1,
            http2,
        });
        let stop_accepting = CancellationToken::new();
        let acceptor = TlsAcceptor::from(tls);
        let accept_task = tokio::spawn(accept_loop(
            listener,
            acceptor,
            shared.clone(),
            stop_accepting.clone(),
        ));
        Ok(Self {
            addr,
            shared,
            stop_accepting,
            accept_task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections open now.
    pub fn connection_count(&self) -> usize {
        self.shared.limits.max_connections - self.shared.connections.available_permits()
    }

    pub fn budget(&self) -> &Arc<MemoryBudget> {
        &self.shared.budget
    }

    /// Stops accepting and drains: idle connections close, heads and bodies still arriving get
    /// [`DRAIN_READ_GRACE`], requests being served finish; after `timeout` every connection is dropped.
    pub async fn shutdown(self, timeout: Duration) {
        self.stop_accepting.cancel();
        let _ = self.accept_task.await;
        let _ = self.shared.drain_started.set(Instant::now());
        self.shared.drain.cancel();
        self.shared.tasks.close();
        if tokio::time::timeout(timeout, self.shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                connections = self.shared.tasks.len(),
                ?timeout,
                "shutdown timeout reached; closing the remaining connections"
            );
            self.shared.force.cancel();
            self.shared.tasks.wait().await;
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, _peer)) => {
                let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
                    // Refused quickly: the connections already open keep being served.
                    shared.count_closed("over_limit");
                    drop(tcp);
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let task = connection(shared.clone(), tcp, acceptor.clone(), permit);
                shared.tasks.spawn(task);
            }
            Err(error) => {
                // Out of file descriptors and the like: back off rather than spin.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

impl Shared {
    fn count_closed(&self, reason: &'static str) {
        self.metrics
            .connections_closed
            .get_or_create(&ConnectionLabels { reason })
            .inc();
    }

    /// Until when a read that started before the drain may go on.
    fn drain_deadline(&self) -> Option<Instant> {
        self.drain
            .is_cancelled()
            .then(|| *self.drain_started.get_or_init(Instant::now) + DRAIN_READ_GRACE)
    }
}

async fn connection(
    shared: Arc<Shared>,
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    _permit: OwnedSemaphorePermit,
) {
    let handshake = tokio::time::timeout(shared.limits.header_read_timeout, acceptor.accept(tcp));
    let tls = tokio::select! {
        result = handshake => match result {
            Ok(Ok(tls)) => tls,
            Ok(Err(_)) => return shared.count_closed("tls_error"),
            Err(_) => return shared.count_closed("tls_handshake_timeout"),
        },
        () = shared.drain.cancelled() => return,
    };
    let http2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let state = Arc::new(ConnectionState::new());
    let io = TokioIo::new(Watched {
        inner: tls,
        state: state.clone(),
        track_heads: !http2,
    });
    let service = ConnectionService {
        shared: shared.clone(),
        state: state.clone(),
    };
    if http2 {
        supervise(shared.http2.serve_connection(io, service), &shared, &state).await;
    } else {
        supervise(shared.http1.serve_connection(io, service), &shared, &state).await;
    }
}

/// What a connection's supervisor does next.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Look again then.
    CheckAt(Instant),
    /// Ask the connection to close (idle): HTTP/1.1 closes, HTTP/2 says GOAWAY.
    Close,
    /// Drop it now, for this reason.
    Drop(&'static str),
}

/// The phase of one connection, shared by its IO (which sees bytes arrive), its service (which sees
/// requests start and end) and its supervisor (which reads the phase only when its timer fires, so the hot
/// path never wakes it).
#[derive(Debug)]
struct ConnectionState {
    epoch: Instant,
    /// Requests being served.
    in_flight: AtomicUsize,
    /// Nanoseconds after `epoch` when the connection last became idle.
    idle_since: AtomicU64,
    /// Nanoseconds after `epoch` + 1 when the first byte of a request head arrived; 0: none arriving.
    head_since: AtomicU64,
}

impl ConnectionState {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn at(&self, nanos: u64) -> Instant {
        self.epoch + Duration::from_nanos(nanos)
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(0, Ordering::Release);
    }

    fn request_finished(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle_since
                .store(self.nanos(Instant::now()), Ordering::Release);
        }
    }

    /// Bytes arrived on an HTTP/1.1 connection: when no request is being served they begin a request head.
    fn bytes_arrived(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 && self.head_since.load(Ordering::Acquire) == 0 {
            let now = self.nanos(Instant::now());
            let _ = self
                .head_since
                .compare_exchange(0, now + 1, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// What to do at `now`: `closing` is when the connection was asked to close, `drain_deadline` the end of
    /// reads begun before a shutdown.
    fn next(
        &self,
        now: Instant,
        limits: &Limits,
        closing: Option<Instant>,
        drain_deadline: Option<Instant>,
    ) -> Next {
        // Never sleep longer than the header timeout: a head that begins meanwhile is then caught at its
        // own deadline, without the IO waking the supervisor for every request.
        let soon = now + limits.header_read_timeout.min(limits.idle_timeout);
        if self.in_flight.load(Ordering::Acquire) > 0 {
            // Serving: the service bounds the body; a handler is microseconds.
            return Next::CheckAt(soon);
        }
        if let Some(closing) = closing {
            return if now >= closing + CLOSE_GRACE {
                Next::Drop("close_timeout")
            } else {
                Next::CheckAt(closing + CLOSE_GRACE)
            };
        }
        let head = self.head_since.load(Ordering::Acquire);
        if head != 0 {
            let mut deadline = self.at(head - 1) + limits.header_read_timeout;
            if let Some(drain) = drain_deadline {
                deadline = deadline.min(drain);
            }
            return if now >= deadline {
                Next::Drop("header_timeout")
            } else {
                Next::CheckAt(deadline)
            };
        }
        let idle_deadline = self.at(self.idle_since.load(Ordering::Acquire)) + limits.idle_timeout;
        if now >= idle_deadline || drain_deadline.is_some() {
            Next::Close
        } else {
            Next::CheckAt(idle_deadline.min(soon))
        }
    }
}

/// Drives one connection, closing it when its phase's time is up or the server drains.
async fn supervise(
    connection: impl GracefulConnection<Error = hyper::Error>,
    shared: &Shared,
    state: &ConnectionState,
) {
    let mut connection = pin!(connection);
    let mut timer = pin!(tokio::time::sleep(
        shared.limits.header_read_timeout.min(shared.limits.idle_timeout)
    ));
    let mut closing: Option<Instant> = None;
    let mut drain_seen = false;
    loop {
        tokio::select! {
            biased;
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            () = shared.force.cancelled() => return shared.count_closed("shutdown_timeout"),
            () = shared.drain.cancelled(), if !drain_seen => {
                drain_seen = true;
                connection.as_mut().graceful_shutdown();
                // Heads still arriving and idle HTTP/2 connections get the drain grace, then are dropped.
                let now = Instant::now();
                closing = Some(now);
                timer.as_mut().reset((now + CLOSE_GRACE.min(DRAIN_READ_GRACE)).into());
            }
            () = &mut timer => {
                let now = Instant::now();
                match state.next(now, &shared.limits, closing, shared.drain_deadline()) {
                    Next::CheckAt(at) => timer.as_mut().reset(at.into()),
                    Next::Close => {
                        shared.count_closed("idle_timeout");
                        connection.as_mut().graceful_shutdown();
                        closing = Some(now);
                        timer.as_mut().reset((now + CLOSE_GRACE).into());
                    }
                    Next::Drop(reason) => return shared.count_closed(reason),
                }
            }
        }
    }
}

/// The TLS stream, telling the connection's state when bytes of a request head arrive.
struct Watched<T> {
    inner: T,
    state: Arc<ConnectionState>,
    track_heads: bool,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.track_heads && matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.bytes_arrived();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Reads a request's body within its limits, then hands the whole request to the router.
#[derive(Clone)]
struct ConnectionService {
    shared: Arc<Shared>,
    state: Arc<ConnectionState>,
}

/// Marks a request in progress on its connection until dropped.
struct InProgress(Arc<ConnectionState>);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = std::result::Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.state.request_started();
        let in_progress = InProgress(self.state.clone());
        let shared = self.shared.clone();
        Box::pin(async move {
            let response = shared.respond(request).await;
            drop(in_progress);
            Ok(response)
        })
    }
}

/// Why a body was not read to its end.
enum BodyRefused {
    TooLarge,
    Busy,
    Timeout,
    Draining,
    /// The client broke off (closed the connection, or sent a malformed body).
    Broken(hyper::Error),
}

impl Shared {
    async fn respond(&self, request: Request<Incoming>) -> Response<Body> {
        let head_complete = Instant::now();
        let http11 = request.version() == http::Version::HTTP_11;
        let (parts, body) = request.into_parts();
        let response = match self.read_body(&parts.headers, body, head_complete).await {
            Ok((bytes, reservation)) => {
                let request = Request::from_parts(parts, Body::from(bytes));
                let response = match self.router.clone().oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                drop(reservation);
                return response;
            }
            Err(refused) => self.refusal(refused),
        };
        // The body was not read to its end: the connection cannot carry another request.
        let mut response = response;
        if http11 {
            response
                .headers_mut()
                .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
        }
        response
    }

    fn refusal(&self, refused: BodyRefused) -> Response<Body> {
        let limits = &self.limits;
        let (status, reason, message) = match refused {
            BodyRefused::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "request body is larger than the webhook's limit of {} ({} bytes)",
                    mib(limits.max_body_bytes),
                    limits.max_body_bytes
                ),
            ),
            BodyRefused::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!(
                    "the webhook is busy: the requests in progress hold its whole request memory ({}); retry",
                    mib(self.budget.total())
                ),
            ),
            BodyRefused::Timeout => (
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "request body not received within {:?} of the request head",
                    limits.body_read_timeout
                ),
            ),
            BodyRefused::Draining => (
                StatusCode::SERVICE_UNAVAILABLE,
                "draining",
                "the webhook is shutting down and the request body was still arriving; retry".to_string(),
            ),
            BodyRefused::Broken(error) => (
                StatusCode::BAD_REQUEST,
                "broken_body",
                format!("the request body could not be read: {error}"),
            ),
        };
        self.metrics
            .rejected_requests
            .get_or_create(&RejectLabels { reason })
            .inc();
        tracing::debug!(
            status = status.as_u16(),
            reason,
            "refused a request before reading all of it"
        );
        error_response(status, &message)
    }

    /// The whole body, with the memory reserved for it (and for reviewing it).
    async fn read_body(
        &self,
        headers: &http::HeaderMap,
        mut body: Incoming,
        head_complete: Instant,
    ) -> std::result::Result<(Bytes, Reservation), BodyRefused> {
        let max = self.limits.max_body_bytes;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        if declared.is_some_and(|n| n > max) {
            return Err(BodyRefused::TooLarge);
        }
        // Without a length the body is taken for small until it grows past the small size.
        let expected = declared.unwrap_or(SMALL_BODY_BYTES);
        let mut reservation = self
            .budget
            .reserve(
                Limits::charge_for_body(expected),
                expected,
                self.limits.budget_wait,
            )
            .await
            .ok_or(BodyRefused::Busy)?;
        let deadline = head_complete + self.limits.body_read_timeout;
        let mut first: Option<Bytes> = None;
        let mut rest: Option<BytesMut> = None;
        let mut length = 0usize;
        while let Some(frame) = self.next_frame(&mut body, deadline).await? {
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            length += data.len();
            if length > max || declared.is_some_and(|n| length > n) {
                return Err(BodyRefused::TooLarge);
            }
            if declared.is_none() && length > expected && reservation.bytes() < Limits::charge_for_body(max) {
                reservation = self
                    .budget
                    .reserve(Limits::charge_for_body(max), max, self.limits.budget_wait)
                    .await
                    .ok_or(BodyRefused::Busy)?;
            }
            match (&mut first, &mut rest) {
                (None, _) => first = Some(data),
                (Some(head), None) => {
                    let mut buffer = BytesMut::with_capacity(declared.unwrap_or(length).max(length));
                    buffer.extend_from_slice(head);
                    buffer.extend_from_slice(&data);
                    rest = Some(buffer);
                }
                (Some(_), Some(buffer)) => buffer.extend_from_slice(&data),
            }
        }
        let bytes = match (first, rest) {
            (_, Some(buffer)) => buffer.freeze(),
            (Some(only), None) => only,
            (None, None) => Bytes::new(),
        };
        Ok((bytes, reservation))
    }

    /// The next frame of a body, by `deadline` (or the drain's).
    async fn next_frame(
        &self,
        body: &mut Incoming,
        deadline: Instant,
    ) -> std::result::Result<Option<hyper::body::Frame<Bytes>>, BodyRefused> {
        // Most frames are already there: no timer for them.
        if let Some(frame) = body.frame().now_or_never() {
            return frame.transpose().map_err(BodyRefused::Broken);
        }
        loop {
            let drain_deadline = self.drain_deadline();
            let until = drain_deadline.map_or(deadline, |drain| drain.min(deadline));
            tokio::select! {
                frame = tokio::time::timeout_at(until.into(), body.frame()) => {
                    return match frame {
                        Ok(frame) => frame.transpose().map_err(BodyRefused::Broken),
                        Err(_) if until < deadline => Err(BodyRefused::Draining),
                        Err(_) => Err(BodyRefused::Timeout),
                    };
                }
                () = self.drain.cancelled(), if drain_deadline.is_none() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
            ..Limits::default()
        }
    }

    #[test]
    fn an_idle_connection_closes_after_the_idle_timeout() {
        let state = ConnectionState::new();
        let limits = limits();
        let start = state.epoch;
        assert_eq!(
            state.next(start + Duration::from_secs(1), &limits, None, None),
            Next::CheckAt(start + Duration::from_secs(6)),
            "never sleeps past the header timeout"
        );
        assert_eq!(
            state.next(start + Duration::from_secs(10), &limits, None, None),
            Next::Close
        );
    }

    #[test]
    fn a_head_must_arrive_within_the_header_timeout_of_its_first_byte() {
        let state = ConnectionState::new();
        let limits = limits();
        let start = state.epoch;
        std::thread::sleep(Duration::from_millis(5));
        state.bytes_arrived();
        let head = state.at(state.head_since.load(Ordering::Acquire) - 1);
        assert!(head > start);
        assert_eq!(
            state.next(head + Duration::from_secs(1), &limits, None, None),
            Next::CheckAt(head + Duration::from_secs(5))
        );
        assert_eq!(
            state.next(head + Duration::from_secs(5), &limits, None, None),
            Next::Drop("header_timeout")
        );
        // Draining cuts it short.
        let drain = head + Duration::from_secs(2);
        assert_eq!(
            state.next(head + Duration::from_secs(1), &limits, None, Some(drain)),
            Next::CheckAt(drain)
        );
    }

    #[test]
    fn a_connection_serving_a_request_is_left_alone() {
        let state = ConnectionState::new();
        let limits = limits();
        state.bytes_arrived();
        state.request_started();
        let now = state.epoch + Duration::from_secs(60);
        assert_eq!(
            state.next(now, &limits, None, None),
            Next::CheckAt(now + Duration::from_secs(5))
        );
        state.request_finished();
        assert_eq!(state.head_since.load(Ordering::Acquire), 0);
        let idle = state.at(state.idle_since.load(Ordering::Acquire));
        assert_eq!(
            state.next(idle + Duration::from_secs(10), &limits, None, None),
            Next::Close
        );
        assert_eq!(
            state.next(idle, &limits, Some(idle), None),
            Next::CheckAt(idle + CLOSE_GRACE)
        );
        assert_eq!(
            state.next(idle + CLOSE_GRACE, &limits, Some(idle), None),
            Next::Drop("close_timeout")
        );
    }
}
