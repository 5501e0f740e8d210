//! `kubectl tprotect status`: both clusters' view of a relationship, and the one judgement of its health that
//! `status`, `check` and the webhook's metrics share. Pure: a function of an observation and the time.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::Serialize;
use tprotect_api::{AMR_STATE_ESTABLISHED, DesiredState};

use crate::checks::schedules_on_destination;
use crate::model::*;
use crate::plan::{goal_of, plan};
use crate::read;

fn context(observed: &Observed, key: ClusterKey) -> String {
    match observed.cluster(key) {
        Reach::Reachable(s) => s.context.clone(),
        Reach::Unreachable { context, .. } => context.clone(),
    }
}

fn or_dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

/// Both clusters' view of a relationship, for `kubectl tprotect status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    pub relationship: String,
    pub clusters: Vec<ClusterStatus>,
    /// The AMR, on the current destination.
    pub amr: Option<AmrStatus>,
    pub source_application: Option<AppStatus>,
    pub destination_application: Option<AppStatus>,
    /// Completion of the last transfer (RFC 3339).
    pub last_transfer: Option<String>,
    pub last_transferred_snapshot: Option<String>,
    /// Nominal time between transfers, from the recurrence rule.
    pub interval_seconds: Option<u64>,
    /// Time since the last transfer completed.
    pub lag_seconds: Option<i64>,
    /// `ok` while the lag is within two intervals (one transfer may be running), `behind` beyond, `unknown`
    /// without a transfer or a readable rule; empty while failed over (nothing replicates).
    pub rpo: String,
    /// Schedules left in the destination namespaces (they make its snapshots fail).
    pub schedules_on_destination: Vec<String>,
    pub failover_possible: bool,
    /// Why (not), or what a failover would do.
    pub failover: String,
    pub operation_in_progress: Option<OperationStatus>,
    /// The one judgement of the relationship's health (also what the webhook's metrics export).
    pub health: Health,
}

/// Whether a relationship protects its application as it should now, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Established, replicating within its RPO, nothing in the way.
    pub healthy: bool,
    /// What is wrong, one line each (empty when healthy).
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    pub context: String,
    /// `destination` (holds the AMR), `source`, or `unknown`.
    pub role: String,
    pub reachable: bool,
    pub error: Option<String>,
    pub cluster_id: Option<String>,
    /// AppVaults of the relationship on this cluster, name → state.
    pub vaults: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AmrStatus {
    pub cluster: String,
    pub namespace: String,
    pub name: String,
    pub desired_state: String,
    pub state: String,
    pub error: Option<String>,
    pub conditions: Vec<ConditionStatus>,
    pub source_application: String,
    pub source_application_uid: String,
    pub source_vault: String,
    pub destination_vault: String,
    pub namespace_mapping: Vec<String>,
    pub recurrence_rule: String,
    pub storage_class: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionStatus {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    pub cluster: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationStatus {
    pub operation: String,
    pub id: String,
    pub started: String,
    /// The operation has reached its end on the clusters; only its record is left (the next command clears it).
    pub finished: bool,
}

/// The status of a relationship as observed at `now`.
pub fn status_view(observed: &Observed, now: Timestamp) -> StatusView {
    let location = observed.amr_location().ok().flatten();
    let amr_key = location.map(|(k, _)| k);
    let amr = location.map(|(_, a)| a);
    let vault_names: BTreeSet<String> = amr
        .map(|a| {
            [&a.spec.source_app_vault_ref, &a.spec.destination_app_vault_ref]
                .into_iter()
                .flatten()
                .cloned()
                .collect()
        })
        .unwrap_or_default();

    let clusters = ClusterKey::BOTH
        .into_iter()
        .map(|key| {
            let role = match amr_key {
                Some(k) if k == key => "destination",
                Some(_) => "source",
                None => "unknown",
            };
            match observed.cluster(key) {
                Reach::Reachable(state) => ClusterStatus {
                    context: state.context.clone(),
                    role: role.into(),
                    reachable: true,
                    error: None,
                    cluster_id: Some(state.cluster_id.clone()),
                    vaults: vault_names
                        .iter()
                        .map(|v| {
                            let state = state
                                .vaults
                                .get(v)
                                .map(|view| or_dash(&view.state).to_string())
                                .unwrap_or_else(|| "missing".into());
                            (v.clone(), state)
                        })
                        .collect(),
                },
                Reach::Unreachable { context, error } => ClusterStatus {
                    context: context.clone(),
                    role: role.into(),
                    reachable: false,
                    error: Some(error.clone()),
                    cluster_id: None,
                    vaults: BTreeMap::new(),
                },
            }
        })
        .collect();

    let amr_status = location.map(|(key, a)| AmrStatus {
        cluster: context(observed, key),
        namespace: a.namespace.clone(),
        name: a.name.clone(),
        desired_state: a.desired().map(|d| d.to_string()).unwrap_or_default(),
        state: a.state().to_string(),
        error: a.error().map(str::to_string),
        conditions: a
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .map(|conditions| {
                conditions
                    .iter()
                    .map(|c| ConditionStatus {
                        type_: c.type_.clone(),
                        status: c.status.clone(),
                        reason: c.reason.clone(),
                        message: c.message.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        source_application: a.spec.source_application_name.clone().unwrap_or_default(),
        source_application_uid: a.spec.source_application_uid.clone().unwrap_or_default(),
        source_vault: a.spec.source_app_vault_ref.clone().unwrap_or_default(),
        destination_vault: a.spec.destination_app_vault_ref.clone().unwrap_or_default(),
        namespace_mapping: a.mapping().into_iter().map(|(s, d)| format!("{s}:{d}")).collect(),
        recurrence_rule: a.spec.recurrence_rule.clone().unwrap_or_default(),
        storage_class: a.spec.storage_class_name.clone(),
    });

    let find_app = |key: ClusterKey, name: &str, namespaces: &[String]| {
        observed.state(key).and_then(|s| {
            s.applications
                .iter()
                .find(|a| a.name == name && namespaces.contains(&a.namespace))
                .map(|a| AppStatus {
                    cluster: s.context.clone(),
                    namespace: a.namespace.clone(),
                    name: a.name.clone(),
                    uid: a.uid.clone(),
                })
        })
    };
    let source_application = location.and_then(|(key, a)| {
        let namespaces: Vec<String> = a.mapping().into_iter().map(|(s, _)| s).collect();
        find_app(
            key.other(),
            a.spec.source_application_name.as_deref()?,
            &namespaces,
        )
    });
    // Only a promotion makes one (read tolerantly: see `read::destination_application`).
    let destination_application = location.and_then(|(key, a)| {
        if a.desired() != Some(DesiredState::Promoted) {
            return None;
        }
        let state = observed.state(key)?;
        read::destination_application(a, state).map(|(app, _)| AppStatus {
            cluster: state.context.clone(),
            namespace: app.namespace.clone(),
            name: app.name.clone(),
            uid: app.uid.clone(),
        })
    });

    let status = amr.and_then(|a| a.status.as_ref());
    // Either field may be the one a controller keeps current (undocumented): the later of the two counts.
    let transfer_time = status.and_then(|s| {
        let transfer = s
            .last_transfer
            .as_ref()
            .and_then(|t| t.completion_timestamp.as_ref());
        let snapshot = s
            .last_transferred_snapshot
            .as_ref()
            .and_then(|t| t.completion_timestamp.as_ref());
        transfer.into_iter().chain(snapshot).map(|t| t.0).max()
    });
    let interval = amr
        .and_then(|a| a.spec.recurrence_rule.as_deref())
        .and_then(|rule| tprotect_policy::recurrence::RecurrenceRule::parse(rule).ok())
        .map(|rule| rule.interval());
    let lag = transfer_time.map(|t| (now - t).get_seconds());
    let promoted = amr.is_some_and(|a| a.desired() == Some(DesiredState::Promoted));
    let rpo = match (promoted, lag, interval) {
        (true, _, _) => String::new(),
        (false, Some(lag), Some(interval)) if lag <= 2 * interval.as_secs() as i64 => "ok".into(),
        (false, Some(_), Some(_)) => "behind".into(),
        _ => "unknown".into(),
    };

    let schedules_left = location
        .and_then(|(key, a)| {
            let state = observed.state(key)?;
            (a.desired() != Some(DesiredState::Promoted)).then(|| schedules_on_destination(state, a))
        })
        .unwrap_or_default();

    // The lock's record counts: a failover is not possible while another operation is under way (unless that
    // one has finished on the clusters and only its record is left).
    let goal = Goal::Failover { force: false };
    let record_finished = observed
        .record
        .as_ref()
        .and_then(|r| goal_of(r.operation))
        .is_some_and(|recorded| matches!(plan(observed, &recorded), Ok(Step::Done(_))));
    let mut as_planned = observed.clone();
    if record_finished {
        as_planned.record = None;
    }
    let (failover_possible, failover) = match plan(&as_planned, &goal) {
        Ok(Step::Act(_)) => (
            true,
            format!(
                "possible: kubectl tprotect failover {} promotes the destination{}",
                observed.relationship,
                if amr.is_some_and(|a| a.is(AMR_STATE_ESTABLISHED)) {
                    ""
                } else {
                    " (from the last transferred snapshot)"
                }
            ),
        ),
        Ok(Step::Wait(_)) => (false, "a failover is already under way".into()),
        Ok(Step::Done(_)) => (false, "already failed over".into()),
        Err(e) => (false, e.to_string()),
    };

    let operation = observed.record.as_ref().map(|r| OperationStatus {
        operation: r.operation.command().to_string(),
        id: r.id.clone(),
        started: r.started.clone(),
        finished: record_finished,
    });
    let health = health(HealthInputs {
        observed,
        location,
        rpo: &rpo,
        lag,
        interval_seconds: interval.map(|i| i.as_secs()),
        schedules_left: &schedules_left,
        operation: operation.as_ref(),
    });
    StatusView {
        relationship: observed.relationship.clone(),
        clusters,
        amr: amr_status,
        source_application,
        destination_application,
        last_transfer: transfer_time.map(|t| t.to_string()),
        last_transferred_snapshot: status
            .and_then(|s| s.last_transferred_snapshot.as_ref())
            .and_then(|s| s.name.clone()),
        interval_seconds: interval.map(|i| i.as_secs()),
        lag_seconds: lag,
        rpo,
        schedules_on_destination: schedules_left,
        failover_possible,
        failover,
        operation_in_progress: operation,
        health,
    }
}

struct HealthInputs<'a> {
    observed: &'a Observed,
    location: Option<(ClusterKey, &'a AmrView)>,
    rpo: &'a str,
    lag: Option<i64>,
    interval_seconds: Option<u64>,
    schedules_left: &'a [String],
    operation: Option<&'a OperationStatus>,
}

fn health(inputs: HealthInputs<'_>) -> Health {
    let mut problems = Vec::new();
    for key in ClusterKey::BOTH {
        if let Reach::Unreachable { context, error } = inputs.observed.cluster(key) {
            problems.push(format!("cluster {context} is unreachable: {error}"));
        }
    }
    match inputs.location {
        None => problems.push(format!(
            "no AppMirrorRelationship for {:?} on either cluster",
            inputs.observed.relationship
        )),
        Some((key, amr)) => {
            let ctx = context(inputs.observed, key);
            if amr.failed() {
                problems.push(format!(
                    "AppMirrorRelationship is {}: {}",
                    amr.state(),
                    amr.error().unwrap_or("(no error given)")
                ));
            } else if let Some(error) = amr.error() {
                problems.push(format!("AppMirrorRelationship reports an error: {error}"));
            }
            match amr.desired() {
                Some(DesiredState::Promoted) => problems.push(format!(
                    "failed over: the application runs on {ctx} and nothing replicates it"
                )),
                _ if !amr.is(AMR_STATE_ESTABLISHED) => {
                    problems.push(format!("not Established yet (state {})", or_dash(amr.state())))
                }
                _ => {}
            }
            match (inputs.rpo, inputs.lag, inputs.interval_seconds) {
                ("behind", Some(lag), Some(interval)) => problems.push(format!(
                    "behind its RPO: the last transfer completed {lag}s ago, more than twice the interval of {interval}s"
                )),
                ("unknown", None, _) => problems.push("no transfer has completed yet".into()),
                ("unknown", _, None) => problems.push("the recurrence rule cannot be read".into()),
                _ => {}
            }
        }
    }
    if !inputs.schedules_left.is_empty() {
        problems.push(format!(
            "Schedules on the destination make its snapshots fail: {}",
            inputs.schedules_left.join(", ")
        ));
    }
    if let Some(op) = inputs.operation.filter(|op| !op.finished) {
        problems.push(format!(
            "a {} started {} is in progress",
            op.operation, op.started
        ));
    }
    Health {
        healthy: problems.is_empty(),
        problems,
    }
}
