//! Metrics of every AppMirrorRelationship on the cluster, computed at each scrape from the watch-fed
//! [`AmrCache`] (no API call per scrape) through the same pure judgement `kubectl tprotect status` makes
//! ([`replication_health`]).
//!
//! Every series carries `namespace`, `relationship` and `source_application`: values of Kubernetes object
//! names, one set per AMR, never error text. `relationship` is the AMR's `tprotect.io/relationship` label (the
//! name `kubectl tprotect status` takes), else its name; where two AMRs of a namespace carry the same label each
//! is exported under its own name, so series never collide. States are closed sets ([`StatePhase`]).
//!
//! Every webhook replica exports the same series (each watches the same AMRs): aggregate across replicas, as
//! the shipped rules do (`manifests/monitoring/`).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use jiff::Timestamp;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Unit,
};
use tprotect_api::{DesiredState, RELATIONSHIP_LABEL};
use tprotect_lifecycle_rules::status::{ReplicationHealth, StatePhase, replication_health};

use crate::amr_cache::AmrCache;

/// Prefix of the AMR metrics (they describe relationships, not the webhook).
pub const PREFIX: &str = "tprotect_amr";

/// The clock of a scrape (a fixed one in tests).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The desired states a relationship can have, as label values of `tprotect_amr_desired_state`.
const DESIRED_STATES: [DesiredState; 2] = [DesiredState::Established, DesiredState::Promoted];

/// One AMR's series labels and values, as of one scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct AmrRow {
    pub namespace: String,
    pub relationship: String,
    pub source_application: String,
    pub health: ReplicationHealth,
    /// Transfers completed while this webhook watched.
    pub transfers: u64,
}

impl AmrRow {
    fn labels(&self) -> [(&'static str, &str); 3] {
        [
            ("namespace", &self.namespace),
            ("relationship", &self.relationship),
            ("source_application", &self.source_application),
        ]
    }
}

/// The rows of every AMR in `cache` as of `now`, sorted by namespace and relationship.
pub fn rows(cache: &AmrCache, now: Timestamp) -> Vec<AmrRow> {
    let amrs = cache.replication();
    fn labelled(view: &tprotect_lifecycle_rules::AmrView) -> Option<&str> {
        view.labels
            .get(RELATIONSHIP_LABEL)
            .filter(|l| !l.is_empty())
            .map(String::as_str)
    }
    let mut per_label: HashMap<(&str, &str), usize> = HashMap::new();
    for (view, _) in &amrs {
        if let Some(label) = labelled(view) {
            *per_label.entry((view.namespace.as_str(), label)).or_default() += 1;
        }
    }
    let mut rows: Vec<AmrRow> = amrs
        .iter()
        .map(|(view, transfers)| {
            let relationship = labelled(view)
                .filter(|label| per_label.get(&(view.namespace.as_str(), *label)) == Some(&1))
                .unwrap_or(&view.name)
                .to_string();
            AmrRow {
                namespace: view.namespace.clone(),
                relationship,
                source_application: view.spec.source_application_name.clone().unwrap_or_default(),
                health: replication_health(view, now),
                transfers: *transfers,
            }
        })
        .collect();
    rows.sort_by(|a, b| (&a.namespace, &a.relationship).cmp(&(&b.namespace, &b.relationship)));
    rows
}

/// The AMR metrics' collector, registered in [`crate::Metrics`] at start; it exports nothing until a cache is
/// attached ([`crate::Metrics::export_amrs`]), which [`AmrCache::spawn`] does.
#[derive(Default)]
pub struct AmrCollector {
    source: OnceLock<(AmrCache, Clock)>,
}

impl std::fmt::Debug for AmrCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmrCollector")
            .field("cache", &self.source.get().map(|(cache, _)| cache))
            .finish()
    }
}

impl AmrCollector {
    /// Exports the AMRs of `cache`, judged at `clock()` on each scrape. Only the first call counts (one watch
    /// per process).
    pub fn attach(&self, cache: AmrCache, clock: Clock) {
        let _ = self.source.set((cache, clock));
    }
}

/// Encodes one gauge family: a series per row that has a value.
fn gauge_family<T: prometheus_client::encoding::EncodeGaugeValue + Send + Sync + std::fmt::Debug>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: &[AmrRow],
    value: impl Fn(&AmrRow) -> Option<T>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for row in rows {
        if let Some(value) = value(row) {
            ConstGauge::new(value).encode(family.encode_family(&row.labels())?)?;
        }
    }
    Ok(())
}

/// Encodes a state set as gauges: one series per row and state, 1 for the row's state and 0 for the others.
fn state_family<S: Copy + PartialEq>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[AmrRow],
    states: &[(S, &str)],
    current: impl Fn(&AmrRow) -> Option<S>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for row in rows {
        let current = current(row);
        for (state, label) in states {
            let labels = (row.labels(), [("state", *label)]);
            ConstGauge::new(i64::from(current == Some(*state))).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

impl Collector for AmrCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some((cache, clock)) = self.source.get() else {
            return Ok(());
        };
        let rows = rows(cache, clock());
        if rows.is_empty() {
            return Ok(());
        }
        let name = |metric: &str| format!("{PREFIX}_{metric}");
        gauge_family(
            &mut encoder,
            &name("lag"),
            "Time since the AppMirrorRelationship's last completed transfer (the later of status.lastTransfer and status.lastTransferredSnapshot completionTimestamp); absent before the first.",
            Some(&Unit::Seconds),
            &rows,
            |r| r.health.lag_seconds,
        )?;
        gauge_family(
            &mut encoder,
            &name("rpo"),
            "RPO target: the interval of spec.recurrenceRule; absent when the rule cannot be read.",
            Some(&Unit::Seconds),
            &rows,
            |r| r.health.interval_seconds.and_then(|s| i64::try_from(s).ok()),
        )?;
        gauge_family(
            &mut encoder,
            &name("last_transfer_timestamp"),
            "Completion of the last transfer, Unix time; absent before the first.",
            Some(&Unit::Seconds),
            &rows,
            |r| r.health.last_transfer.map(|t| t.as_second()),
        )?;
        let transfers_name = name("transfers");
        let mut transfers = encoder.encode_descriptor(
            &transfers_name,
            "Transfers completed (a later completion time) while this webhook replica watched; what an AMR showed when first seen is not counted.",
            None,
            MetricType::Counter,
        )?;
        for row in &rows {
            ConstCounter::new(row.transfers).encode(transfers.encode_family(&row.labels())?)?;
        }
        let desired: Vec<(DesiredState, &str)> = DESIRED_STATES.iter().map(|d| (*d, d.as_str())).collect();
        state_family(
            &mut encoder,
            &name("desired_state"),
            "spec.desiredState: 1 for the relationship's, 0 for the other (both 0 when unset).",
            &rows,
            &desired,
            |r| r.health.desired,
        )?;
        let phases: Vec<(StatePhase, &str)> = StatePhase::ALL.iter().map(|p| (*p, p.as_str())).collect();
        state_family(
            &mut encoder,
            &name("state"),
            "status.state: 1 for the relationship's, 0 for the others; Failed is any failure spelling, Other anything undocumented or unset.",
            &rows,
            &phases,
            |r| Some(r.health.phase),
        )?;
        gauge_family(
            &mut encoder,
            &name("healthy"),
            "1 when the AMR is healthy as kubectl tprotect status judges it from the AMR alone: Established, lag within twice the interval, no error; 0 otherwise.",
            None,
            &rows,
            |r| Some(i64::from(r.health.healthy())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amr_cache::amr_api_resource;
    use kube::api::DynamicObject;
    use serde_json::{Value, json};

    const NOW: &str = "2025-06-01T12:00:00Z";

    fn amr(namespace: &str, name: &str, label: Option<&str>, spec: Value, status: Value) -> DynamicObject {
        let mut object = DynamicObject::new(name, &amr_api_resource()).within(namespace);
        object.metadata.uid = Some(format!("uid-{namespace}-{name}"));
        object.metadata.labels = label.map(|l| [(RELATIONSHIP_LABEL.to_string(), l.to_string())].into());
        object.data = json!({"spec": spec, "status": status});
        object
    }

    fn spec(desired: &str, interval_minutes: u32) -> Value {
        json!({
            "desiredState": desired,
            "recurrenceRule": format!("DTSTART:20220101T000200Z\nRRULE:FREQ=MINUTELY;INTERVAL={interval_minutes}"),
            "sourceApplicationName": "shop",
            "namespaceMapping": [{"source": "shop", "destination": "shop-dr"}],
        })
    }

    fn completed(at: &str) -> Value {
        json!({"state": "Established", "lastTransfer": {"startTimestamp": at, "completionTimestamp": at}})
    }

    fn encoded(cache: AmrCache) -> String {
        let metrics = crate::Metrics::new();
        let now: Timestamp = NOW.parse().unwrap();
        metrics.export_amrs_at(cache, Arc::new(move || now));
        metrics.encode()
    }

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[track_caller]
    fn value(text: &str, series: &str) -> f64 {
        let line = line(text, &format!("{series} ")).unwrap_or_else(|| panic!("no {series} in\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    /// The metric values of AMR fixtures: lag, RPO, states and health are those of `replication_health`.
    #[test]
    fn exports_each_amr_through_the_status_judgement() {
        let cache = AmrCache::from_objects([
            // 2 minutes behind a 5-minute interval: fine.
            amr(
                "shop-dr",
                "shop",
                Some("shop"),
                spec("Established", 5),
                completed("2025-06-01T11:58:00Z"),
            ),
            // 11 minutes behind: more than twice the interval.
            amr(
                "pay-dr",
                "pay",
                Some("pay"),
                spec("Established", 5),
                completed("2025-06-01T11:49:00Z"),
            ),
            // Failed over; an error text that must never become a label.
            amr(
                "crm-dr",
                "crm",
                None,
                spec("Promoted", 10),
                json!({"state": "Promoted", "error": "ONTAP \"svm1\" unreachable\nretrying"}),
            ),
        ]);
        let text = encoded(cache);
        let shop = r#"{namespace="shop-dr",relationship="shop",source_application="shop"}"#;
        let pay = r#"{namespace="pay-dr",relationship="pay",source_application="shop"}"#;
        let crm = r#"{namespace="crm-dr",relationship="crm",source_application="shop"}"#;
        assert_eq!(value(&text, &format!("tprotect_amr_lag_seconds{shop}")), 120.0);
        assert_eq!(value(&text, &format!("tprotect_amr_lag_seconds{pay}")), 660.0);
        assert_eq!(value(&text, &format!("tprotect_amr_rpo_seconds{pay}")), 300.0);
        assert_eq!(value(&text, &format!("tprotect_amr_rpo_seconds{crm}")), 600.0);
        assert_eq!(
            value(
                &text,
                &format!("tprotect_amr_last_transfer_timestamp_seconds{shop}")
            ),
            "2025-06-01T11:58:00Z".parse::<Timestamp>().unwrap().as_second() as f64
        );
        assert!(
            line(&text, &format!("tprotect_amr_lag_seconds{crm}")).is_none(),
            "no transfer, no lag series:\n{text}"
        );
        assert_eq!(value(&text, &format!("tprotect_amr_healthy{shop}")), 1.0);
        assert_eq!(
            value(&text, &format!("tprotect_amr_healthy{pay}")),
            0.0,
            "behind its RPO"
        );
        assert_eq!(
            value(&text, &format!("tprotect_amr_healthy{crm}")),
            0.0,
            "failed over"
        );
        let with_state =
            |labels: &str, state: &str| format!("{},state=\"{state}\"}}", labels.trim_end_matches('}'));
        assert_eq!(
            value(
                &text,
                &format!("tprotect_amr_desired_state{}", with_state(crm, "Promoted"))
            ),
            1.0
        );
        assert_eq!(
            value(
                &text,
                &format!("tprotect_amr_desired_state{}", with_state(crm, "Established"))
            ),
            0.0
        );
        for phase in StatePhase::ALL {
            let expected = if phase == StatePhase::Established {
                1.0
            } else {
                0.0
            };
            assert_eq!(
                value(
                    &text,
                    &format!("tprotect_amr_state{}", with_state(shop, phase.as_str()))
                ),
                expected,
                "{phase:?}"
            );
        }
        assert_eq!(value(&text, &format!("tprotect_amr_transfers_total{shop}")), 0.0);
        assert!(!text.contains("svm1") && !text.contains("retrying"), "{text}");
        assert!(text.contains("# TYPE tprotect_amr_transfers counter"), "{text}");
        assert!(text.contains("# UNIT tprotect_amr_lag_seconds seconds"), "{text}");
        assert!(text.ends_with("# EOF\n"));

        // The same numbers as the pure function, row by row.
        let now: Timestamp = NOW.parse().unwrap();
        let cache = AmrCache::from_objects([amr(
            "pay-dr",
            "pay",
            Some("pay"),
            spec("Established", 5),
            completed("2025-06-01T11:49:00Z"),
        )]);
        let row = &rows(&cache, now)[0];
        let (view, _) = &cache.replication()[0];
        assert_eq!(row.health, replication_health(view, now));
    }

    #[test]
    fn the_relationship_label_names_the_series_unless_two_amrs_of_a_namespace_share_it() {
        let now: Timestamp = NOW.parse().unwrap();
        let status = completed("2025-06-01T11:58:00Z");
        let cache = AmrCache::from_objects([
            amr("a", "amr-1", Some("rel"), spec("Established", 5), status.clone()),
            amr("b", "amr-2", Some("rel"), spec("Established", 5), status.clone()),
            amr("b", "amr-3", Some("rel"), spec("Established", 5), status.clone()),
            amr("c", "plain", None, spec("Established", 5), status),
        ]);
        let names: Vec<(String, String)> = rows(&cache, now)
            .into_iter()
            .map(|r| (r.namespace, r.relationship))
            .collect();
        let expected: Vec<(String, String)> = [("a", "rel"), ("b", "amr-2"), ("b", "amr-3"), ("c", "plain")]
            .into_iter()
            .map(|(n, r)| (n.to_string(), r.to_string()))
            .collect();
        assert_eq!(names, expected);
    }

    #[test]
    fn nothing_is_exported_without_a_synced_cache() {
        for cache in [AmrCache::disabled(), AmrCache::never_synced()] {
            let text = encoded(cache);
            assert!(!text.contains("tprotect_amr_"), "{text}");
        }
        let text = crate::Metrics::new().encode();
        assert!(!text.contains("tprotect_amr_"), "nothing attached:\n{text}");
        assert!(text.contains("tprotect_webhook_amr_cache_synced"), "{text}");
    }

    /// The shipped alert rules read only series the webhook exports: a renamed metric fails here, not in
    /// production as an alert that can never fire.
    #[test]
    fn every_metric_the_shipped_rules_read_is_exported() {
        let rules = include_str!("../../manifests/monitoring/tprotect.rules.yaml");
        let cache = AmrCache::from_objects([amr(
            "shop-dr",
            "shop",
            Some("shop"),
            spec("Established", 5),
            completed("2025-06-01T11:58:00Z"),
        )]);
        let text = encoded(cache);
        let exported: std::collections::BTreeSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        let mut read = std::collections::BTreeSet::new();
        for (start, _) in rules.match_indices("tprotect_") {
            let name: String = rules[start..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.ends_with('_') {
                read.insert(name);
            }
        }
        assert!(read.len() >= 5, "{read:?}");
        for name in &read {
            assert!(
                exported.contains(name.as_str()),
                "the rules read {name}, which the webhook does not export: {exported:?}"
            );
        }
    }
}
