//! What any client can make the server hold, in memory and in time, and the memory budget that enforces it.
//!
//! The webhook runs with `failurePolicy: Fail`: if it is OOM-killed or stops answering, every write of the kinds
//! it guards fails cluster-wide, and its port is reachable from any pod. So memory is bounded by construction:
//!
//! - at most [`Limits::max_connections`] connections at once; one more is closed as soon as it is accepted;
//! - a request's memory is reserved from one [`MemoryBudget`] before its body is read: [`CHARGE_PER_BODY_BYTE`]
//!   bytes per body byte (the body, the fields read from it, the rules' messages and the answer) plus
//!   [`CHARGE_PER_REQUEST`]; a review whose fields hold more than [`VALUES_COVERED`] JSON values reserves
//!   [`CHARGE_PER_VALUE`] more per value before the rules run;
//! - small requests (every review the API server sends for these kinds) draw on a reserve of their own, so a
//!   flood of large bodies never starves them; a request that cannot have its memory within
//!   [`Limits::budget_wait`] gets 503 at once, its body unread.
//!
//! And time: the TLS handshake and a request's head must arrive within [`Limits::header_read_timeout`], its body
//! within [`Limits::body_read_timeout`] of its head, and a connection with no request for
//! [`Limits::idle_timeout`] is closed (HTTP/2 with GOAWAY). The defaults are the webhook configurations'
//! `timeoutSeconds` (5 s): by then the API server has given up on the review anyway.

use std::{sync::Arc, time::Duration};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// The webhook configurations' `timeoutSeconds` (`manifests/webhook/base/webhooks.yaml`): the API server's
/// patience with one review, and the default of every read timeout.
pub const REVIEW_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest request body: an AdmissionReview carries the old and the new object, each up to the API server's
/// 3 MiB object limit (controller-runtime uses the same 7 MiB).
pub const MAX_BODY_BYTES: usize = 7 * 1024 * 1024;

/// Memory reserved per byte of a request body: the body itself, strings the parser had to unescape (at most
/// the body), the rules' messages quoting those strings (at most twice the body: a quoted string is as long as
/// its JSON text, and a message is built from it), with the answer capped at [`MAX_ANSWER_MESSAGE_BYTES`].
pub const CHARGE_PER_BODY_BYTE: usize = 4;

/// Memory reserved per request whatever its body: the head, connection-level buffers in use for it, the
/// answer, and the values of an ordinary review ([`VALUES_COVERED`] of them).
pub const CHARGE_PER_REQUEST: usize = 64 * 1024;

/// Memory reserved per JSON value the rules read (the value itself, and the few violations a rule reports
/// about one value: path, rule and fix, about 100 bytes each).
pub const CHARGE_PER_VALUE: usize = 256;

/// Values covered by [`CHARGE_PER_REQUEST`]; a review of the realistic AppMirrorRelationship the benchmark
/// sends has about 80.
pub const VALUES_COVERED: usize = 128;

/// Most JSON values read from one review (object and old object together; unknown fields, `status` and
/// `managedFields` are skipped, not counted). No object of the kinds the webhook reviews comes near it; a
/// review above it gets 413.
pub const MAX_REVIEW_VALUES: usize = 20_000;

/// Longest denial message sent back: the rules' messages for an absurd object could be as long as the
/// object; the API server shows the message to the user, who needs the first problems, not megabytes.
pub const MAX_ANSWER_MESSAGE_BYTES: usize = 32 * 1024;

/// Once the server drains (shutdown), how long a request head or body still being read may take to arrive.
/// An API server sends a whole request in milliseconds; a client slower than this is not one.
pub const DRAIN_READ_GRACE: Duration = Duration::from_secs(1);

/// A request whose body is at most this large reserves from the small-request reserve.
pub const SMALL_BODY_BYTES: usize = 64 * 1024;

/// Memory of the process before any request: code, runtime, TLS configuration, metrics (9–10 MiB measured
/// idle, `cargo xtask bench webhook`), rounded up.
pub const BASELINE_MEMORY: usize = 16 * 1024 * 1024;

/// Most memory one open connection can hold outside the budget: rustls' buffers (a TLS record in, 16 KiB of
/// plaintext), the HTTP/1.1 read buffer ([`crate::server`]: at most 32 KiB) or the HTTP/2 flow-control window
/// (64 KiB) and send buffer (16 KiB). An idle connection costs far less (measured in `tests/limits.rs`).
pub const MEMORY_PER_CONNECTION: usize = 160 * 1024;

/// The memory bound the process stays within whatever clients send: the baseline, every connection at its
/// most, and the whole request budget. The Deployment's `limits.memory` is this plus headroom for the
/// allocator (`manifests/webhook/README.md`).
pub fn memory_bound(limits: &Limits) -> usize {
    BASELINE_MEMORY + limits.max_connections * MEMORY_PER_CONNECTION + limits.memory_budget_bytes
}

/// Limits on connections, memory and time; see the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once on the HTTPS listener.
    pub max_connections: usize,
    /// Largest request body (HTTP 413 above).
    pub max_body_bytes: usize,
    /// Memory all requests in progress may reserve at once, in bytes.
    pub memory_budget_bytes: usize,
    /// The part of [`Limits::memory_budget_bytes`] kept for small requests (bodies up to [`SMALL_BODY_BYTES`]).
    pub small_request_reserve_bytes: usize,
    /// How long a request may wait for memory before it is refused (HTTP 503).
    pub budget_wait: Duration,
    /// TLS handshake, and a request's head from its first byte.
    pub header_read_timeout: Duration,
    /// A request's body, from its complete head.
    pub body_read_timeout: Duration,
    /// A connection with no request in progress.
    pub idle_timeout: Duration,
    /// Streams at once on one HTTP/2 connection.
    pub max_concurrent_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 128,
            max_body_bytes: MAX_BODY_BYTES,
            memory_budget_bytes: 48 * 1024 * 1024,
            small_request_reserve_bytes: 8 * 1024 * 1024,
            budget_wait: Duration::from_secs(1),
            header_read_timeout: REVIEW_TIMEOUT,
            body_read_timeout: REVIEW_TIMEOUT,
            idle_timeout: REVIEW_TIMEOUT,
            max_concurrent_streams: 32,
        }
    }
}

impl Limits {
    /// Memory a request with this body length reserves before its body is read.
    pub fn charge_for_body(body_bytes: usize) -> usize {
        body_bytes
            .saturating_mul(CHARGE_PER_BODY_BYTE)
            .saturating_add(CHARGE_PER_REQUEST)
    }

    /// Whether the limits can serve at all: the largest body fits in the budget, the reserve leaves room.
    pub fn check(&self) -> Result<(), String> {
        let largest = Self::charge_for_body(self.max_body_bytes) + MAX_REVIEW_VALUES * CHARGE_PER_VALUE;
        let large_pool = self
            .memory_budget_bytes
            .saturating_sub(self.small_request_reserve_bytes);
        if largest > large_pool {
            return Err(format!(
                "the memory budget ({} bytes) minus the small-request reserve ({} bytes) must hold the largest \
                 request, {largest} bytes ({CHARGE_PER_BODY_BYTE} × the body limit of {} bytes, + \
                 {CHARGE_PER_REQUEST} + {MAX_REVIEW_VALUES} values × {CHARGE_PER_VALUE}): raise the budget or \
                 lower the body limit",
                self.memory_budget_bytes, self.small_request_reserve_bytes, self.max_body_bytes
            ));
        }
        if self.small_request_reserve_bytes < Self::charge_for_body(SMALL_BODY_BYTES) {
            return Err(format!(
                "the small-request reserve ({} bytes) must hold one small request ({} bytes)",
                self.small_request_reserve_bytes,
                Self::charge_for_body(SMALL_BODY_BYTES)
            ));
        }
        if self.max_connections == 0 || self.max_concurrent_streams == 0 {
            return Err("max connections and HTTP/2 streams must be at least 1".to_string());
        }
        Ok(())
    }
}

/// Permits are bytes; a semaphore holds at most `u32::MAX` per acquisition, far above any budget here.
fn permits(bytes: usize) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// The memory all requests in progress may hold, as two semaphores of bytes: the small-request reserve and
/// the rest.
#[derive(Debug)]
pub struct MemoryBudget {
    small: Arc<Semaphore>,
    large: Arc<Semaphore>,
    total: usize,
}

/// Memory reserved for one request; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
}

impl Reservation {
    pub fn bytes(&self) -> usize {
        self._permit.num_permits()
    }
}

impl MemoryBudget {
    pub fn new(limits: &Limits) -> Arc<Self> {
        let small = limits.small_request_reserve_bytes.min(limits.memory_budget_bytes);
        Arc::new(Self {
            small: Arc::new(Semaphore::new(small)),
            large: Arc::new(Semaphore::new(limits.memory_budget_bytes - small)),
            total: limits.memory_budget_bytes,
        })
    }

    /// Bytes reserved now.
    pub fn reserved(&self) -> usize {
        self.total - self.small.available_permits() - self.large.available_permits()
    }

    pub fn total(&self) -> usize {
        self.total
    }

    /// Reserves `bytes` for a request whose body is `body_bytes` long, waiting at most `wait`; `None` when the
    /// budget stays exhausted that long.
    pub async fn reserve(&self, bytes: usize, body_bytes: usize, wait: Duration) -> Option<Reservation> {
        let n = permits(bytes);
        if body_bytes <= SMALL_BODY_BYTES {
            if let Some(reservation) = self.try_reserve_small(n) {
                return Some(reservation);
            }
            // The reserve is exhausted: take from the rest if it has room, else wait for the reserve.
            if let Ok(permit) = self.large.clone().try_acquire_many_owned(n) {
                return Some(Reservation { _permit: permit });
            }
            return self.wait(&self.small, n, wait).await;
        }
        match self.large.clone().try_acquire_many_owned(n) {
            Ok(permit) => Some(Reservation { _permit: permit }),
            Err(_) => self.wait(&self.large, n, wait).await,
        }
    }

    fn try_reserve_small(&self, n: u32) -> Option<Reservation> {
        match self.small.clone().try_acquire_many_owned(n) {
            Ok(permit) => Some(Reservation { _permit: permit }),
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => None,
        }
    }

    async fn wait(&self, pool: &Arc<Semaphore>, n: u32, wait: Duration) -> Option<Reservation> {
        match tokio::time::timeout(wait, pool.clone().acquire_many_owned(n)).await {
            Ok(Ok(permit)) => Some(Reservation { _permit: permit }),
            _ => None,
        }
    }

    /// Reserves `bytes` more without waiting (while a review runs: it cannot wait); `None` if they are not
    /// free now.
    pub fn try_reserve(&self, bytes: usize) -> Option<Reservation> {
        let n = permits(bytes);
        self.large
            .clone()
            .try_acquire_many_owned(n)
            .or_else(|_| self.small.clone().try_acquire_many_owned(n))
            .ok()
            .map(|permit| Reservation { _permit: permit })
    }
}

/// Mebibytes, for messages.
pub fn mib(bytes: usize) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib.fract() == 0.0 {
        format!("{mib:.0} MiB")
    } else {
        format!("{mib:.1} MiB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_limits_hold_the_largest_request() {
        Limits::default().check().unwrap();
        let too_small = Limits {
            memory_budget_bytes: 16 * 1024 * 1024,
            ..Limits::default()
        };
        assert!(too_small.check().unwrap_err().contains("largest request"));
    }

    #[tokio::test]
    async fn small_requests_keep_their_reserve_when_large_ones_exhaust_the_rest() {
        let limits = Limits::default();
        let budget = MemoryBudget::new(&limits);
        let large = Limits::charge_for_body(MAX_BODY_BYTES);
        let held = budget
            .reserve(large, MAX_BODY_BYTES, Duration::ZERO)
            .await
            .unwrap();
        assert!(
            budget
                .reserve(large, MAX_BODY_BYTES, Duration::from_millis(10))
                .await
                .is_none(),
            "a second largest request does not fit beside the first"
        );
        let small = budget
            .reserve(Limits::charge_for_body(4096), 4096, Duration::ZERO)
            .await
            .expect("a small request still gets memory");
        assert_eq!(budget.reserved(), held.bytes() + small.bytes());
        drop((held, small));
        assert_eq!(budget.reserved(), 0, "memory is given back");
    }

    #[test]
    fn the_default_bound() {
        assert_eq!(memory_bound(&Limits::default()), 84 * 1024 * 1024);
    }

    #[test]
    fn mebibytes() {
        assert_eq!(mib(MAX_BODY_BYTES), "7 MiB");
        assert_eq!(mib(1536 * 1024), "1.5 MiB");
    }
}
