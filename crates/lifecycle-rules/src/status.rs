//! `kubectl tprotect status`: both clusters' view of a relationship, and the one judgement of its health that
//! `status`, `check` and the webhook's metrics share ([`replication_health`] judges one AMR on its own; the
//! webhook sees only its own cluster's AMRs). Pure: a function of an observation and the time.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::Serialize;
use tprotect_api::{AMR_STATE_ESTABLISHED, DesiredState};

use crate::checks::schedules_on_destination;
use crate::model::*;
use crate::or_dash;
use crate::plan::{goal_of, plan};
use crate::read;

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
    /// The one judgement of the relationship's health. Its AMR part is [`replication_health`], which the
    /// webhook's metrics export.
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
        cluster: observed.context_of(key).to_string(),
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
    let replication = amr.map(|a| replication_health(a, now));
    let transfer_time = replication.as_ref().and_then(|r| r.last_transfer);
    let interval_seconds = replication.as_ref().and_then(|r| r.interval_seconds);
    let lag = replication.as_ref().and_then(|r| r.lag_seconds);
    let rpo = replication
        .as_ref()
        .map_or(Rpo::Unknown, |r| r.rpo)
        .as_str()
        .to_string();

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
        replication: replication.as_ref(),
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
        interval_seconds,
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
    replication: Option<&'a ReplicationHealth>,
    schedules_left: &'a [String],
    operation: Option<&'a OperationStatus>,
}

/// The whole judgement: both clusters reachable, the AMR's own [`replication_health`], no Schedules left on
/// the destination, no operation under way.
fn health(inputs: HealthInputs<'_>) -> Health {
    let mut problems = Vec::new();
    for key in ClusterKey::BOTH {
        if let Reach::Unreachable { context, error } = inputs.observed.cluster(key) {
            problems.push(format!("cluster {context} is unreachable: {error}"));
        }
    }
    match (inputs.location, inputs.replication) {
        (Some((key, _)), Some(replication)) => {
            let ctx = inputs.observed.context_of(key);
            problems.extend(replication.problems.iter().map(|p| p.message(ctx)));
        }
        _ => problems.push(format!(
            "no AppMirrorRelationship for {:?} on either cluster",
            inputs.observed.relationship
        )),
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

// ---------------------------------------------------------------------------------------------------------------
// One AMR on its own: the part of the judgement that needs nothing but the AMR and the time. `status` builds its
// health on it; the webhook, which sees only its own cluster's AMRs, exports it as metrics.

/// Whether the lag is within the relationship's RPO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Rpo {
    /// The last transfer completed at most two intervals ago (one transfer may be running).
    Ok,
    /// More than two intervals ago.
    Behind,
    /// No completed transfer, or no readable recurrence rule.
    Unknown,
    /// Failed over (desired state Promoted): nothing replicates, there is no RPO to keep.
    NotReplicating,
}

impl Rpo {
    /// As `status` prints it: `ok`, `behind`, `unknown`, or empty while failed over.
    pub fn as_str(self) -> &'static str {
        match self {
            Rpo::Ok => "ok",
            Rpo::Behind => "behind",
            Rpo::Unknown => "unknown",
            Rpo::NotReplicating => "",
        }
    }
}

/// `status.state` reduced to the states NetApp documents, every failure spelling, and the rest: a closed set, so
/// a metric label of it cannot grow without bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StatePhase {
    Establishing,
    Established,
    Promoting,
    Promoted,
    /// Any of [`read::FAILURE_STATES`], in any case.
    Failed,
    /// Empty, or a state NetApp does not document.
    Other,
}

impl StatePhase {
    pub const ALL: [StatePhase; 6] = [
        StatePhase::Establishing,
        StatePhase::Established,
        StatePhase::Promoting,
        StatePhase::Promoted,
        StatePhase::Failed,
        StatePhase::Other,
    ];

    /// The phase of a `status.state` (read tolerantly: case and white space aside).
    pub fn of(state: &str) -> Self {
        use tprotect_api::{AMR_STATE_ESTABLISHING, AMR_STATE_PROMOTED, AMR_STATE_PROMOTING};
        [
            (AMR_STATE_ESTABLISHING, StatePhase::Establishing),
            (AMR_STATE_ESTABLISHED, StatePhase::Established),
            (AMR_STATE_PROMOTING, StatePhase::Promoting),
            (AMR_STATE_PROMOTED, StatePhase::Promoted),
        ]
        .into_iter()
        .find(|(name, _)| read::state_is(state, name))
        .map(|(_, phase)| phase)
        .unwrap_or(if read::is_failure_state(state) {
            StatePhase::Failed
        } else {
            StatePhase::Other
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StatePhase::Establishing => "Establishing",
            StatePhase::Established => "Established",
            StatePhase::Promoting => "Promoting",
            StatePhase::Promoted => "Promoted",
            StatePhase::Failed => "Failed",
            StatePhase::Other => "Other",
        }
    }
}

/// What is wrong with one AMR, as far as the AMR itself tells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum ReplicationProblem {
    /// `status.state` is a failure state.
    Failed { state: String, error: Option<String> },
    /// `status.error` is set (it may be transient) while the state is not a failure.
    Error { error: String },
    /// Desired state Promoted: the application runs on this cluster and nothing replicates it.
    FailedOver,
    /// Desired state Established but `status.state` is not (yet).
    NotEstablished { state: String },
    /// The last transfer completed more than two intervals ago.
    BehindRpo { lag_seconds: i64, interval_seconds: u64 },
    /// No transfer has completed (no `completionTimestamp` in `lastTransfer` or `lastTransferredSnapshot`).
    NoTransfer,
    /// `spec.recurrenceRule` cannot be read, so there is no interval to measure the lag against.
    UnreadableRule,
}

impl ReplicationProblem {
    /// One line for a person; `cluster` names the cluster holding the AMR.
    pub fn message(&self, cluster: &str) -> String {
        match self {
            ReplicationProblem::Failed { state, error } => format!(
                "AppMirrorRelationship is {state}: {}",
                error.as_deref().unwrap_or("(no error given)")
            ),
            ReplicationProblem::Error { error } => {
                format!("AppMirrorRelationship reports an error: {error}")
            }
            ReplicationProblem::FailedOver => {
                format!("failed over: the application runs on {cluster} and nothing replicates it")
            }
            ReplicationProblem::NotEstablished { state } => {
                format!("not Established yet (state {})", or_dash(state))
            }
            ReplicationProblem::BehindRpo {
                lag_seconds,
                interval_seconds,
            } => format!(
                "behind its RPO: the last transfer completed {lag_seconds}s ago, more than twice the interval of {interval_seconds}s"
            ),
            ReplicationProblem::NoTransfer => "no transfer has completed yet".into(),
            ReplicationProblem::UnreadableRule => "the recurrence rule cannot be read".into(),
        }
    }
}

/// How one AMR replicates at a given time, judged from the AMR alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationHealth {
    pub desired: Option<DesiredState>,
    /// `status.state` as written (empty when unset).
    pub state: String,
    pub phase: StatePhase,
    /// Completion of the last transfer: the later of `lastTransfer` and `lastTransferredSnapshot`.
    pub last_transfer: Option<Timestamp>,
    /// Nominal time between transfers, from `spec.recurrenceRule`: the RPO target.
    pub interval_seconds: Option<u64>,
    /// Time since the last transfer completed.
    pub lag_seconds: Option<i64>,
    pub rpo: Rpo,
    /// Empty when the AMR is healthy.
    pub problems: Vec<ReplicationProblem>,
}

impl ReplicationHealth {
    /// Established, replicating within its RPO, no error: the AMR's part of [`Health::healthy`].
    pub fn healthy(&self) -> bool {
        self.problems.is_empty()
    }

    /// `status.state` is a failure state.
    pub fn failed(&self) -> bool {
        self.phase == StatePhase::Failed
    }
}

/// Completion of the AMR's last transfer. Which of `lastTransfer` and `lastTransferredSnapshot` a controller
/// keeps current is undocumented: the later of the two counts.
pub fn last_transfer_time(amr: &AmrView) -> Option<Timestamp> {
    let status = amr.status.as_ref()?;
    let transfer = status
        .last_transfer
        .as_ref()
        .and_then(|t| t.completion_timestamp.as_ref());
    let snapshot = status
        .last_transferred_snapshot
        .as_ref()
        .and_then(|t| t.completion_timestamp.as_ref());
    transfer.into_iter().chain(snapshot).map(|t| t.0).max()
}

/// The AMR's replication as of `now`: lag against the RPO target (the recurrence interval), desired and actual
/// state, failure, and what is wrong. The one judgement `kubectl tprotect status` and the webhook's metrics share.
pub fn replication_health(amr: &AmrView, now: Timestamp) -> ReplicationHealth {
    let last_transfer = last_transfer_time(amr);
    let interval_seconds = amr
        .spec
        .recurrence_rule
        .as_deref()
        .and_then(|rule| tprotect_policy::recurrence::RecurrenceRule::parse(rule).ok())
        .map(|rule| rule.interval().as_secs());
    let lag_seconds = last_transfer.map(|t| (now - t).get_seconds());
    let promoted = amr.desired() == Some(DesiredState::Promoted);
    let rpo = match (promoted, lag_seconds, interval_seconds) {
        (true, _, _) => Rpo::NotReplicating,
        (false, Some(lag), Some(interval)) if lag <= 2 * i64::try_from(interval).unwrap_or(i64::MAX) => {
            Rpo::Ok
        }
        (false, Some(_), Some(_)) => Rpo::Behind,
        _ => Rpo::Unknown,
    };

    let mut problems = Vec::new();
    if amr.failed() {
        problems.push(ReplicationProblem::Failed {
            state: amr.state().to_string(),
            error: amr.error().map(str::to_string),
        });
    } else if let Some(error) = amr.error() {
        problems.push(ReplicationProblem::Error {
            error: error.to_string(),
        });
    }
    if promoted {
        problems.push(ReplicationProblem::FailedOver);
    } else if !amr.is(AMR_STATE_ESTABLISHED) {
        problems.push(ReplicationProblem::NotEstablished {
            state: amr.state().to_string(),
        });
    }
    match (rpo, lag_seconds, interval_seconds) {
        (Rpo::Behind, Some(lag_seconds), Some(interval_seconds)) => {
            problems.push(ReplicationProblem::BehindRpo {
                lag_seconds,
                interval_seconds,
            })
        }
        (Rpo::Unknown, None, _) => problems.push(ReplicationProblem::NoTransfer),
        (Rpo::Unknown, _, None) => problems.push(ReplicationProblem::UnreadableRule),
        _ => {}
    }
    ReplicationHealth {
        desired: amr.desired(),
        state: amr.state().to_string(),
        phase: StatePhase::of(amr.state()),
        last_transfer,
        interval_seconds,
        lag_seconds,
        rpo,
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use tprotect_api::{
        AppMirrorRelationshipSpec, AppMirrorRelationshipStatus, LastTransfer, LastTransferredSnapshot,
    };

    const NOW: &str = "2025-06-01T12:00:00Z";
    const EVERY_5_MINUTES: &str = "DTSTART:20220101T000200Z\nRRULE:FREQ=MINUTELY;INTERVAL=5";

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    /// An AMR with the given desired state, `status.state`, rule, and completion times of `lastTransfer` and
    /// `lastTransferredSnapshot` (seconds before [`NOW`]).
    fn amr(
        desired: Option<DesiredState>,
        state: &str,
        rule: Option<&str>,
        transfer_ago: Option<i64>,
        snapshot_ago: Option<i64>,
    ) -> AmrView {
        let ago = |seconds: i64| Time(ts(NOW) - jiff::SignedDuration::from_secs(seconds));
        AmrView {
            namespace: "app-dr".into(),
            name: "rel1".into(),
            spec: AppMirrorRelationshipSpec {
                desired_state: desired,
                recurrence_rule: rule.map(str::to_string),
                source_application_name: Some("app".into()),
                ..Default::default()
            },
            status: Some(AppMirrorRelationshipStatus {
                state: (!state.is_empty()).then(|| state.to_string()),
                last_transfer: transfer_ago.map(|s| LastTransfer {
                    completion_timestamp: Some(ago(s)),
                    start_timestamp: Some(ago(s + 10)),
                }),
                last_transferred_snapshot: snapshot_ago.map(|s| LastTransferredSnapshot {
                    completion_timestamp: Some(ago(s)),
                    name: Some("snap".into()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// An AMR replicating every five minutes, with no transferred snapshot noted.
    fn amr_every_5_minutes(desired: DesiredState, state: &str, transfer_ago: Option<i64>) -> AmrView {
        amr(Some(desired), state, Some(EVERY_5_MINUTES), transfer_ago, None)
    }

    fn established(transfer_ago: Option<i64>) -> AmrView {
        amr_every_5_minutes(DesiredState::Established, "Established", transfer_ago)
    }

    #[test]
    fn lag_is_measured_from_the_later_of_the_two_completion_times() {
        let now = ts(NOW);
        for (transfer, snapshot, lag) in [
            (Some(30), None, Some(30)),
            (None, Some(45), Some(45)),
            (Some(400), Some(20), Some(20)),
            (Some(20), Some(400), Some(20)),
            (None, None, None),
        ] {
            let view = amr(
                Some(DesiredState::Established),
                "Established",
                Some(EVERY_5_MINUTES),
                transfer,
                snapshot,
            );
            let health = replication_health(&view, now);
            assert_eq!(health.lag_seconds, lag, "{transfer:?} {snapshot:?}");
            assert_eq!(
                health.last_transfer,
                lag.map(|l| now - jiff::SignedDuration::from_secs(l))
            );
        }
        let mut no_status = established(None);
        no_status.status = None;
        assert_eq!(replication_health(&no_status, now).lag_seconds, None);
    }

    #[test]
    fn the_rpo_target_is_the_recurrence_interval() {
        let now = ts(NOW);
        for (rule, interval) in [
            (Some(EVERY_5_MINUTES), Some(300)),
            (
                Some("DTSTART:20220101T000200Z\nRRULE:FREQ=HOURLY;INTERVAL=2"),
                Some(7200),
            ),
            (Some("DTSTART:20220101T000200Z\nRRULE:FREQ=MINUTELY"), Some(60)),
            (Some("every five minutes"), None),
            (None, None),
        ] {
            let view = amr(
                Some(DesiredState::Established),
                "Established",
                rule,
                Some(10),
                None,
            );
            assert_eq!(
                replication_health(&view, now).interval_seconds,
                interval,
                "{rule:?}"
            );
        }
    }

    /// The table of the judgement: lag against twice the interval, desired and actual state, failures.
    #[test]
    fn judges_lag_state_and_failures() {
        use ReplicationProblem as P;
        let now = ts(NOW);
        let failed = {
            let mut view = established(Some(60));
            let status = view.status.as_mut().unwrap();
            status.state = Some("failed".into());
            status.error = Some("SnapMirror broken".into());
            view
        };
        let transient_error = {
            let mut view = established(Some(60));
            view.status.as_mut().unwrap().error = Some("retrying".into());
            view
        };
        let cases: Vec<(&str, AmrView, Rpo, StatePhase, Vec<P>)> = vec![
            (
                "fresh",
                established(Some(60)),
                Rpo::Ok,
                StatePhase::Established,
                vec![],
            ),
            (
                "exactly two intervals: a transfer may be running",
                established(Some(600)),
                Rpo::Ok,
                StatePhase::Established,
                vec![],
            ),
            (
                "one second past two intervals",
                established(Some(601)),
                Rpo::Behind,
                StatePhase::Established,
                vec![P::BehindRpo {
                    lag_seconds: 601,
                    interval_seconds: 300,
                }],
            ),
            (
                "never transferred",
                established(None),
                Rpo::Unknown,
                StatePhase::Established,
                vec![P::NoTransfer],
            ),
            (
                "unreadable rule",
                amr(
                    Some(DesiredState::Established),
                    "Established",
                    Some("garbage"),
                    Some(10),
                    None,
                ),
                Rpo::Unknown,
                StatePhase::Established,
                vec![P::UnreadableRule],
            ),
            (
                "establishing, first transfer pending",
                amr_every_5_minutes(DesiredState::Established, "Establishing", None),
                Rpo::Unknown,
                StatePhase::Establishing,
                vec![
                    P::NotEstablished {
                        state: "Establishing".into(),
                    },
                    P::NoTransfer,
                ],
            ),
            (
                "no state at all",
                amr_every_5_minutes(DesiredState::Established, "", None),
                Rpo::Unknown,
                StatePhase::Other,
                vec![P::NotEstablished { state: "".into() }, P::NoTransfer],
            ),
            (
                "failed, in another spelling",
                failed,
                Rpo::Ok,
                StatePhase::Failed,
                vec![
                    P::Failed {
                        state: "failed".into(),
                        error: Some("SnapMirror broken".into()),
                    },
                    P::NotEstablished {
                        state: "failed".into(),
                    },
                ],
            ),
            (
                "an error while Established",
                transient_error,
                Rpo::Ok,
                StatePhase::Established,
                vec![P::Error {
                    error: "retrying".into(),
                }],
            ),
            (
                "failed over, long ago: no RPO to keep",
                amr_every_5_minutes(DesiredState::Promoted, "Promoted", Some(86_400)),
                Rpo::NotReplicating,
                StatePhase::Promoted,
                vec![P::FailedOver],
            ),
            (
                "promoting",
                amr_every_5_minutes(DesiredState::Promoted, "Promoting", Some(30)),
                Rpo::NotReplicating,
                StatePhase::Promoting,
                vec![P::FailedOver],
            ),
            (
                "resync under way after a failover: behind until the next transfer",
                amr_every_5_minutes(DesiredState::Established, "Promoted", Some(7_200)),
                Rpo::Behind,
                StatePhase::Promoted,
                vec![
                    P::NotEstablished {
                        state: "Promoted".into(),
                    },
                    P::BehindRpo {
                        lag_seconds: 7_200,
                        interval_seconds: 300,
                    },
                ],
            ),
        ];
        for (case, view, rpo, phase, problems) in cases {
            let health = replication_health(&view, now);
            assert_eq!(health.rpo, rpo, "{case}");
            assert_eq!(health.phase, phase, "{case}");
            assert_eq!(health.healthy(), problems.is_empty(), "{case}");
            assert_eq!(health.failed(), phase == StatePhase::Failed, "{case}");
            assert_eq!(health.problems, problems, "{case}");
            assert_eq!(health.desired, view.desired(), "{case}");
        }
    }

    #[test]
    fn state_phases_are_a_closed_set_read_tolerantly() {
        for (state, phase) in [
            ("Established", StatePhase::Established),
            (" established ", StatePhase::Established),
            ("ESTABLISHING", StatePhase::Establishing),
            ("Promoting", StatePhase::Promoting),
            ("promoted", StatePhase::Promoted),
            ("Error", StatePhase::Failed),
            ("Errored", StatePhase::Failed),
            ("", StatePhase::Other),
            ("Reversing", StatePhase::Other),
        ] {
            assert_eq!(StatePhase::of(state), phase, "{state:?}");
        }
        let names: BTreeSet<&str> = StatePhase::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(names.len(), StatePhase::ALL.len());
    }

    fn observed_with(amr: AmrView, peer_reachable: bool) -> Observed {
        let cluster = |context: &str, amr: Option<AmrView>| ClusterState {
            context: context.into(),
            cluster_id: format!("{context}-id"),
            amr,
            ..Default::default()
        };
        Observed {
            relationship: "rel1".into(),
            context: Reach::Reachable(Box::new(cluster("dr", Some(amr)))),
            peer: if peer_reachable {
                Reach::Reachable(Box::new(cluster("prod", None)))
            } else {
                Reach::Unreachable {
                    context: "prod".into(),
                    error: "connection refused".into(),
                }
            },
            record: None,
        }
    }

    /// `status` takes lag, interval, RPO and the AMR's problems from [`replication_health`], and adds only what
    /// one AMR cannot show (the peer cluster, Schedules left behind, operations under way).
    #[test]
    fn status_view_judges_the_amr_through_replication_health() {
        let now = ts(NOW);
        for view in [
            established(Some(60)),
            established(Some(900)),
            established(None),
            amr_every_5_minutes(DesiredState::Promoted, "Promoted", Some(900)),
        ] {
            let replication = replication_health(&view, now);
            let status = status_view(&observed_with(view, true), now);
            assert_eq!(status.lag_seconds, replication.lag_seconds);
            assert_eq!(status.interval_seconds, replication.interval_seconds);
            assert_eq!(status.rpo, replication.rpo.as_str());
            assert_eq!(
                status.last_transfer,
                replication.last_transfer.map(|t| t.to_string())
            );
            let expected: Vec<String> = replication.problems.iter().map(|p| p.message("dr")).collect();
            assert_eq!(status.health.problems, expected);
            assert_eq!(status.health.healthy, replication.healthy());
        }
        // The peer down: the AMR's judgement is unchanged, and status adds the peer.
        let status = status_view(&observed_with(established(Some(60)), false), now);
        assert!(!status.health.healthy);
        assert_eq!(
            status.health.problems,
            vec!["cluster prod is unreachable: connection refused".to_string()]
        );
    }

    #[test]
    fn problem_messages_name_what_is_wrong() {
        assert_eq!(
            ReplicationProblem::BehindRpo {
                lag_seconds: 700,
                interval_seconds: 300
            }
            .message("dr"),
            "behind its RPO: the last transfer completed 700s ago, more than twice the interval of 300s"
        );
        assert_eq!(
            ReplicationProblem::FailedOver.message("dr"),
            "failed over: the application runs on dr and nothing replicates it"
        );
        assert_eq!(
            ReplicationProblem::Failed {
                state: "Failed".into(),
                error: None
            }
            .message("dr"),
            "AppMirrorRelationship is Failed: (no error given)"
        );
    }
}
