//! Prometheus metrics, served as text on the plain-HTTP port at `/metrics`: the webhook's own
//! (`tprotect_webhook_*`) and, from the AMR cache, every AppMirrorRelationship's ([`crate::amr_metrics`],
//! `tprotect_amr_*`).
//!
//! The webhook's label values are all `&'static str` from closed sets (kinds the webhook knows, else `other`), so
//! a client sending arbitrary kinds cannot grow the series without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64};

use crate::amr_cache::{AmrCache, CacheGauges};
use crate::amr_metrics::{AmrCollector, Clock};
use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Metric, Registry},
};

/// Upper bounds (seconds) of the handling-latency buckets: sub-millisecond resolution where an admission
/// review normally lands, up to the API server's 10 s maximum webhook timeout.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.000_75, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.5, 1.0, 10.0,
];

/// Which endpoint served a request.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Endpoint {
    validate,
    mutate,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub webhook: Endpoint,
    pub kind: &'static str,
    pub operation: &'static str,
    pub allowed: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub webhook: Endpoint,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    /// `bad_request` (malformed body, wrong apiVersion or kind, no request), `too_large`, `busy` (no memory
    /// left for it), `body_timeout`, `draining` (shutdown while its body arrived) or `broken_body`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    /// Why the server closed it: `over_limit`, `tls_error`, `tls_handshake_timeout`, `header_timeout`,
    /// `idle_timeout`, `close_timeout`, `shutdown_timeout`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `loaded` or `rejected`.
    pub result: &'static str,
}

/// Every metric the webhook exports, registered in one [`Registry`].
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    amrs: Arc<AmrCollector>,
    pub requests: Family<RequestLabels, Counter>,
    pub responses: Counter<u64, AtomicU64>,
    pub denials: Family<KindLabels, Counter>,
    pub patches: Family<KindLabels, Counter>,
    pub rejected_requests: Family<RejectLabels, Counter>,
    pub latency: Family<EndpointLabels, Histogram>,
    pub in_flight: Gauge<i64, AtomicI64>,
    pub certificate_reloads: Family<ResultLabels, Counter>,
    /// `amr_cache_synced` and `amr_cache_objects`, set by the cache.
    pub amr_cache: CacheGauges,
    pub namespace_mutations_without_cache: Counter<u64, AtomicU64>,
    pub connections_closed: Family<ConnectionLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Registers `metric` as `name` and hands it back for [`Metrics`] to keep: the registry holds a clone, and
/// clones of a metric share its value.
fn register<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut root = Registry::default();
        let amrs = Arc::new(AmrCollector::default());
        root.register_collector(Box::new(amrs.clone()));
        let registry = root.sub_registry_with_prefix("tprotect_webhook");
        Self {
            requests: register(
                registry,
                "admission_requests",
                "Admission reviews answered, by endpoint, kind, operation and whether the request was allowed",
                Family::default(),
            ),
            responses: register(
                registry,
                "admission_responses",
                "Responses produced by the admission endpoints, whatever their HTTP status",
                Counter::default(),
            ),
            denials: register(
                registry,
                "denials",
                "Admission requests denied by a validation rule",
                Family::default(),
            ),
            patches: register(
                registry,
                "patches",
                "Admission responses that carried a JSON Patch",
                Family::default(),
            ),
            rejected_requests: register(
                registry,
                "rejected_requests",
                "HTTP requests refused before admission (malformed review, body too large)",
                Family::default(),
            ),
            latency: register(
                registry,
                "admission_duration_seconds",
                "Time from a complete request body to a serialised response",
                Family::new_with_constructor(latency_histogram as fn() -> _),
            ),
            in_flight: register(
                registry,
                "in_flight_requests",
                "Admission reviews being handled",
                Gauge::default(),
            ),
            certificate_reloads: register(
                registry,
                "certificate_reloads",
                "Serving certificate changes seen on disk: loaded, or rejected (the previous one kept serving)",
                Family::default(),
            ),
            amr_cache: CacheGauges {
                synced: register(
                    registry,
                    "amr_cache_synced",
                    "1 once the AppMirrorRelationship cache has completed its first list",
                    Gauge::default(),
                ),
                objects: register(
                    registry,
                    "amr_cache_objects",
                    "AppMirrorRelationships in the watch-fed cache",
                    Gauge::default(),
                ),
            },
            namespace_mutations_without_cache: register(
                registry,
                "namespace_mutations_without_cache",
                "Namespace mutations answered before the AppMirrorRelationship cache was synced",
                Counter::default(),
            ),
            connections_closed: register(
                registry,
                "connections_closed",
                "HTTPS connections the server closed on its own: over the connection limit, or out of time",
                Family::default(),
            ),
            // Last: the registrations above borrow `root` through `registry`.
            registry: root,
            amrs,
        }
    }

    /// Exports every AppMirrorRelationship of `cache` (judged at each scrape's time) from now on.
    pub fn export_amrs(&self, cache: AmrCache) {
        self.export_amrs_at(cache, Arc::new(jiff::Timestamp::now));
    }

    /// [`Self::export_amrs`] with the scrape's time from `clock`.
    pub fn export_amrs_at(&self, cache: AmrCache, clock: Clock) {
        self.amrs.attach(cache, clock);
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Content type of [`Metrics::encode`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_labelled_counters_and_sub_millisecond_buckets() {
        let metrics = Metrics::new();
        metrics
            .requests
            .get_or_create(&RequestLabels {
                webhook: Endpoint::validate,
                kind: "Schedule",
                operation: "CREATE",
                allowed: "false",
            })
            .inc();
        metrics
            .latency
            .get_or_create(&EndpointLabels {
                webhook: Endpoint::validate,
            })
            .observe(0.0003);
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"tprotect_webhook_admission_requests_total{webhook="validate",kind="Schedule",operation="CREATE",allowed="false"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"tprotect_webhook_admission_duration_seconds_bucket{le="0.0005",webhook="validate"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"tprotect_webhook_admission_duration_seconds_bucket{le="0.00025",webhook="validate"} 0"#
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
